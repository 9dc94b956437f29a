/*
 * Live source: an ADC or SDR reached through libiio 0.24 (local, USB, or a
 * network context served by iiod).  Built only with -DQES_WITH_IIO=ON.
 *
 * Samples are delivered as doubles in raw counts, converted from the
 * device's scan type with iio_channel_convert (any sign, width, storage
 * bits, shift and endianness); the pipeline applies each channel's gain and
 * offset.  qes_source_iio_scale() gives the device's `scale` attribute as
 * the default gain.
 *
 * Loss.  libiio 0.24 has no overflow flag, so loss is inferred, and every
 * inference is counted in struct qes_iio_stats:
 *  - the in_timestamp channel, when the device has one: a step between
 *    consecutive samples larger than 1.5 / fs means round(step * fs) - 1
 *    samples were lost.  A gap inside a refill ends the frame before it, so that the sample
 *    after the gap opens the next frame with lost_before set;
 *  - without timestamps: samples received against elapsed host time x fs,
 *    counted from the first refill of a connection and checked at every
 *    refill once the stream has run for a second: a shortfall larger than
 *    max(kernel_buffers + 2 buffers, 1 % of the elapsed count) is a gap of
 *    the shortfall, placed before the refill that revealed it (what is
 *    queued in the device and the network is not missing: the tolerance
 *    covers it, so this inference is late and approximate);
 *  - ADI AXI DMA cores: status register 0x80000088 bit 2 (overflow), read
 *    after each refill and cleared (write 1) when the device has the debug
 *    attribute direct_reg_access and the read succeeds; any failure turns
 *    the check off silently.  gaps_dma counts the flags; the size of the
 *    loss comes from the timestamps, else from the host clock.
 * A gap shows up as lost_before on the next frame; first_sample counts the
 * lost samples, so block alignment in run samples is kept.  stats.lost is
 * the sum of every lost_before delivered plus what the next frame will
 * carry.  A device clock stepped while streaming (CLOCK_REALTIME
 * timestamps and an NTP step) looks like a gap of the step.
 *
 * Device loss.  A failed refill (timeout, connection reset, device gone) is
 * retried: the buffer and context are destroyed and re-created with
 * exponential back-off (reconnect_min_s doubling up to reconnect_max_s)
 * until the stream resumes or *stop is set or give_up_s passes.  The time
 * spent away is a gap, reported on the first frame after the reconnection:
 * from the timestamps when the first one after the resume is later than the
 * last one before (the device clock kept running), else from the host clock
 * (arrival of the first refill less its duration, against the arrival of
 * the last refill before the loss).  A device that comes back with another
 * configuration (a channel missing, another scan type, the rate refused or
 * read back differently) ends the stream with QES_ECONFIG.  A failure of the
 * very first refill is not retried (QES_EIO): a device that never streamed
 * is misconfigured (no trigger, busy) rather than lost.
 *
 * Blocking.  The context timeout is timeout_ms plus the duration of one
 * buffer (buffer_samples / fs), so that a slow rate is not taken for a lost
 * device.  read() checks *stop before every refill and every 20 ms while
 * backing off; a refill blocks at most that timeout, a reconnection attempt
 * at most libiio's connect timeout (5 s in 0.24) plus the timeout.  When
 * *stop is set read() returns 0 (end of stream) at its next refill.
 *
 * Frames.  host_time_ns is the device timestamp when the device's clock
 * reads UTC (within 10 s of the host's at the first refill of a
 * connection), else CLOCK_REALTIME at the refill's arrival less the time of
 * the samples after the first one of the frame; arrival_ns is
 * CLOCK_MONOTONIC right after the refill returned (the same for every frame
 * cut from one refill).
 *
 * Signals.  libiio 0.24 writes to its sockets without MSG_NOSIGNAL; every
 * function here blocks SIGPIPE in the calling thread while it runs and
 * discards a SIGPIPE raised meanwhile, so a vanished iiod is an EPIPE
 * error, not the death of the process.  libiio prints its own "ERROR: ..."
 * lines on stderr when a connection breaks.
 */
#ifndef QES_HW_SOURCE_IIO_H
#define QES_HW_SOURCE_IIO_H

#include "hw/source.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#define QES_IIO_MAX_CHANNELS 16

struct qes_iio_desc {
    const char *uri;    /* "ip:HOST[:PORT]", "usb:...", "local:"; NULL = default context */
    const char *device; /* name, id ("iio:device0") or label */
    /* Channel ids or names in delivery order ("voltage0"); n_channels == 0 =
     * every scan-element input channel except the timestamp, in index order. */
    const char *channels[QES_IIO_MAX_CHANNELS];
    unsigned n_channels;
    double sample_rate_hz;       /* written to `sampling_frequency` and read back;
                                0 = keep the device's value */
    double rate_tolerance;       /* relative mismatch accepted on read-back (1e-9) */
    size_t buffer_samples;       /* samples per channel per refill (4096) */
    unsigned kernel_buffers;     /* iio_device_set_kernel_buffers_count (4) */
    unsigned timeout_ms;         /* context timeout beyond one buffer's duration (2000) */
    double reconnect_min_s;      /* first back-off (0.1) */
    double reconnect_max_s;      /* longest back-off (5) */
    double give_up_s;            /* stop retrying after this long away; 0 = never (until *stop) */
    volatile sig_atomic_t *stop; /* checked while waiting and retrying; may be NULL */
    /* Called (from the reading thread) with one line per event: rate
     * read-back, gap, reconnect attempt, resumed.  May be NULL. */
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
};

struct qes_iio_stats {
    uint64_t samples;        /* samples per channel delivered */
    uint64_t lost;           /* samples per channel inferred lost (all causes) */
    uint64_t gaps;           /* gap events (each with lost samples) */
    uint64_t gaps_timestamp; /* ... found from in_timestamp */
    uint64_t gaps_rate;      /* ... found from samples vs elapsed host time (or
                                  the host clock across a reconnection) */
    uint64_t gaps_dma;       /* DMA status register overflow flags seen */
    uint64_t refill_errors;  /* refills that failed */
    uint64_t reconnects;     /* successful reconnections */
    double rate_readback_hz; /* sampling_frequency read back after the write */
};

/*
 * Open the context and device, configure the channels and the rate (the
 * rate is written as an integer when it is one, else with libiio's "%f"),
 * and read the scales.  The buffer is created by the first read: libiio
 * enables the device's buffer, and so starts the acquisition, when it
 * creates it, and the time between create and the first read (FFT planning)
 * must not overflow the device.  Call read() promptly after that.  Errors name the URI,
 * the device, the channel or the attribute concerned, with libiio's errno
 * text (e.g. "ip:127.0.0.1:30431: iio:device0 (qes-adc): writing
 * sampling_frequency = 1000000: Operation not permitted").  Returns 0,
 * QES_EIO (context or device), QES_ENOENT (device or channel not found),
 * QES_EINVAL (bad desc), QES_ECONFIG (attribute refused or rate mismatch).
 */
int qes_source_iio_create(const struct qes_iio_desc *desc, struct qes_source **out, char *err,
                          size_t errlen);

/* The device's scale per channel (the `scale` attribute of the channel, or
 * of the device), 0 when it has none. */
double qes_source_iio_scale(const struct qes_source *s, unsigned channel);

/* Counters, safe to read from the thread that calls read(). */
void qes_source_iio_stats(const struct qes_source *s, struct qes_iio_stats *out);

/* Datatype for a raw tee, as a SigMF datatype name the SigMF writer
 * supports: "ri16_le" or "ri32_le", the smallest signed integer type that
 * holds every converted value of every channel (an unsigned channel needs
 * one more bit), or "rf64_le" beyond 32 bits (exact up to 53).  NULL for a
 * source of another kind. */
const char *qes_source_iio_datatype(const struct qes_source *s);

#endif
