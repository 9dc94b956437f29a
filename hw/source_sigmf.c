/*
 * Replay source over a SigMF reader.
 *
 * Run sample index of file frame k inside capture i:
 *     global_index_i + (k - sample_start_i)
 * Frames never straddle a capture boundary, so each frame maps to one
 * contiguous run range and a jump of global_index shows up as lost_before on
 * the first frame of the capture.  Host time is derived from the most recent
 * core:datetime at or before the capture ("anchor") plus the run samples
 * elapsed since it, divided by fs, rounded to the nanosecond in long double.
 */
#include "hw/source_sigmf.h"
#include "common/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QES__SIGMF_DEFAULT_CHUNK 65536u

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
/* snprintf without the truncation warning: messages may be cut short. */
static void
msg(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

struct qes__anchor {
    int has;
    int64_t datetime_ns;
    uint64_t global_index; /* run index at datetime_ns */
};

struct qes__source_sigmf {
    struct qes_source base; /* first: the ops receive &base */
    struct qes_sigmf_reader *reader;
    const struct qes_sigmf_info *info;
    size_t chunk_frames;
    double *buf;
    size_t cap;        /* current capture index */
    uint64_t next_run; /* run index following the last frame delivered */
    int started;
    struct qes__anchor *anchors; /* one per capture */
};

/* anchor time + n / fs, in ns, saturating at the int64 range. */
static int64_t anchor_time(const struct qes__anchor *a, uint64_t run, double fs)
{
    if (!a->has)
        return 0;
    long double off = (long double)(run - a->global_index) * 1e9L / (long double)fs;
    if (off >= 9.2e18L)
        return INT64_MAX;
    int64_t o = (int64_t)llroundl(off);
    if (a->datetime_ns > INT64_MAX - o)
        return INT64_MAX;
    return a->datetime_ns + o;
}

static int sigmf_read(struct qes_source *s, struct qes_frame *f, size_t max_n)
{
    struct qes__source_sigmf *ss = (struct qes__source_sigmf *)s;
    const struct qes_sigmf_info *in = ss->info;
    if (!f || max_n == 0) {
        msg(s->errmsg, sizeof s->errmsg, "%s: read with %s", in->meta_path,
            f ? "max_n == 0" : "NULL frame");
        return QES_EINVAL;
    }
    uint64_t pos = qes_sigmf_tell(ss->reader);
    if (pos >= in->n_frames)
        return 0;
    while (ss->cap + 1 < in->n_captures && pos >= in->captures[ss->cap + 1].sample_start)
        ss->cap++;
    const struct qes_sigmf_capture *c = &in->captures[ss->cap];
    uint64_t end =
            ss->cap + 1 < in->n_captures ? in->captures[ss->cap + 1].sample_start : in->n_frames;
    size_t n = ss->chunk_frames < max_n ? ss->chunk_frames : max_n;
    if (end - pos < n)
        n = (size_t)(end - pos);
    long got = qes_sigmf_read(ss->reader, ss->buf, n);
    if (got < 0) {
        msg(s->errmsg, sizeof s->errmsg, "%s", qes_sigmf_errmsg(ss->reader));
        return (int)got;
    }
    if ((size_t)got != n) {
        msg(s->errmsg, sizeof s->errmsg, "%s: short read (%ld of %zu frames)", in->data_path, got,
            n);
        return QES_EIO;
    }
    uint64_t run = c->global_index + (pos - c->sample_start);
    f->first_sample = run;
    f->n = n;
    f->n_channels = in->num_channels;
    f->samples = ss->buf;
    f->host_time_ns = anchor_time(&ss->anchors[ss->cap], run, in->sample_rate_hz);
    f->device_time_ns = 0;
    f->has_device_time = 0;
    f->lost_before = ss->started && run > ss->next_run ? run - ss->next_run : 0;
    ss->next_run = run + n;
    ss->started = 1;
    return 1;
}

static void sigmf_destroy(struct qes_source *s)
{
    struct qes__source_sigmf *ss = (struct qes__source_sigmf *)s;
    qes_sigmf_close(ss->reader);
    free(ss->buf);
    free(ss->anchors);
    free(ss);
}

static const struct qes_source_ops qes__sigmf_ops = {
        .name = "sigmf",
        .read = sigmf_read,
        .destroy = sigmf_destroy,
};

int qes_source_sigmf_create(struct qes_sigmf_reader *reader, size_t chunk_frames,
                            struct qes_source **out, char *err, size_t errlen)
{
    int rc;
    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!reader || !out) {
        rc = QES_EINVAL;
        msg(err, errlen, "qes_source_sigmf_create: NULL argument");
        goto err_reader;
    }
    const struct qes_sigmf_info *in = qes_sigmf_get_info(reader);
    if (chunk_frames == 0)
        chunk_frames = QES__SIGMF_DEFAULT_CHUNK;
    if (chunk_frames > SIZE_MAX / sizeof(double) / in->num_channels) {
        rc = QES_EINVAL;
        msg(err, errlen, "%s: chunk of %zu frames is too large", in->meta_path, chunk_frames);
        goto err_reader;
    }
    struct qes__source_sigmf *ss = calloc(1, sizeof *ss);
    if (!ss)
        goto err_nomem;
    ss->buf = malloc(chunk_frames * in->num_channels * sizeof(double));
    ss->anchors = calloc(in->n_captures, sizeof *ss->anchors);
    if (!ss->buf || !ss->anchors)
        goto err_source;
    for (size_t i = 0; i < in->n_captures; i++) {
        const struct qes_sigmf_capture *c = &in->captures[i];
        if (c->has_datetime)
            ss->anchors[i] = (struct qes__anchor){1, c->datetime_ns, c->global_index};
        else if (i > 0)
            ss->anchors[i] = ss->anchors[i - 1];
    }
    ss->base.ops = &qes__sigmf_ops;
    ss->base.sample_rate_hz = in->sample_rate_hz;
    ss->base.n_channels = in->num_channels;
    ss->reader = reader;
    ss->info = in;
    ss->chunk_frames = chunk_frames;
    *out = &ss->base;
    return 0;

err_source:
    free(ss->buf);
    free(ss->anchors);
    free(ss);
err_nomem:
    rc = QES_ENOMEM;
    msg(err, errlen, "%s: out of memory", qes_sigmf_get_info(reader)->meta_path);
err_reader:
    qes_sigmf_close(reader);
    return rc;
}
