/*
 * Sources turn a device, a file or a simulation into frames of samples.
 *
 * Every source implements the same ops table.  Samples are delivered as
 * double values in the source's raw unit (ADC counts for integer devices and
 * captures; the pipeline applies each channel's gain and offset), interleaved
 * by channel.  A gap is never hidden: lost_before counts the samples (per
 * channel) missing between the previous frame and this one, and first_sample
 * already includes them.
 */
#ifndef QES_HW_SOURCE_H
#define QES_HW_SOURCE_H

#include <stddef.h>
#include <stdint.h>

struct qes_frame {
    uint64_t first_sample; /* run index of samples[0], monotonic, counts lost samples */
    size_t n;              /* samples per channel in this frame */
    unsigned n_channels;
    const double *samples;  /* n * n_channels values, interleaved; owned by the source,
                               valid until the next read */
    int64_t host_time_ns;   /* UTC of the first sample (from the capture in replay) */
    int64_t device_time_ns; /* device timestamp, if has_device_time */
    int has_device_time;
    uint64_t lost_before; /* samples per channel lost just before this frame */
    int64_t arrival_ns;   /* CLOCK_MONOTONIC when the frame's last sample reached the host
                             (live sources); 0 = not live (replay, simulation) */
};

struct qes_source;

struct qes_source_ops {
    const char *name;
    /* Next frame, at most max_n samples per channel: returns 1 with *f filled,
     * 0 at the end of the stream, or a negative code. */
    int (*read)(struct qes_source *s, struct qes_frame *f, size_t max_n);
    void (*destroy)(struct qes_source *s);
};

struct qes_source {
    const struct qes_source_ops *ops;
    double sample_rate_hz;
    unsigned n_channels;
    char errmsg[512];
};

static inline int qes_source_read(struct qes_source *s, struct qes_frame *f, size_t max_n)
{
    return s->ops->read(s, f, max_n);
}

/* No-op for NULL. */
void qes_source_destroy(struct qes_source *s);

#endif
