/*
 * Live libiio source (see hw/source_iio.h for the contract).
 *
 * Life cycle.  create() opens the context, finds the device and channels,
 * writes and reads back the rate and reads the scales; the buffer is created
 * by the first read(), since libiio enables the device's buffer (and so
 * starts the acquisition) when the buffer is created: a pipeline that plans
 * its FFTs between create and the first read must not overflow the device.
 *
 * Reading.  One refill holds `avail` samples; read() hands them out from
 * `pos` in frames of at most max_n, converting each value to double as
 * iio_channel_convert into the channel's storage width, read with the
 * format's sign, would: by hw/iio_convert.h (bit-identical, ~10x faster,
 * tested against libiio on every format it takes), or by
 * iio_channel_convert itself for the formats that kernel does not take.
 * Timestamps likewise.
 * A timestamp gap found inside a refill ends the frame before the sample
 * that follows the gap, so that the next frame carries it as lost_before.
 *
 * Loss accounting.  `next` is the run index of the next sample to deliver;
 * `pending` the samples found lost and not yet reported.  A frame gets
 * first_sample = next + pending and lost_before = pending.  stats.lost is
 * increased when a loss is found, so it equals the sum of the lost_before
 * delivered plus `pending`.
 *
 * Reconnection.  A failed refill tears down the buffer and the context and
 * rebuilds them with exponential back-off.  The gap across the outage comes
 * from the timestamps when the first timestamp after the resume is later
 * than the last one before it (the device clock kept running), else from
 * the host clock: (arrival of the first refill - its duration) - arrival of
 * the last refill before the failure, times fs.
 */
#include "hw/source_iio.h"

#include "common/err.h"
#include "hw/iio_convert.h"

#include <errno.h>
#include <iio.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__)
#define IIO_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IIO_PRINTF(f, a)
#endif

#define IIO_DEF_BUFFER_SAMPLES 4096u
#define IIO_DEF_KERNEL_BUFFERS 4u
#define IIO_DEF_TIMEOUT_MS     2000u
#define IIO_DEF_RECONNECT_MIN  0.1
#define IIO_DEF_RECONNECT_MAX  5.0
#define IIO_DEF_RATE_TOL       1e-9
#define IIO_ADI_STATUS_REG     0x80000088u /* AXI ADC core: status, W1C */
#define IIO_ADI_OVF_BIT        (1u << 2)
#define IIO_UTC_WINDOW_NS      (10 * 1000000000LL) /* |device ts - host UTC| for "looks UTC" */
#define IIO_SLEEP_SLICE_NS     20000000L           /* stop flag checked every 20 ms */

struct iio_src {
    struct qes_source base; /* first: the ops table casts back */

    /* configuration (owned copies) */
    char *uri;    /* NULL = default context */
    char *device; /* as given */
    char *chan_name[QES_IIO_MAX_CHANNELS];
    double fs_req; /* requested rate, 0 = keep */
    double rate_tol;
    size_t buffer_samples;
    unsigned kernel_buffers;
    unsigned timeout_ms; /* effective context timeout */
    double reconnect_min_s, reconnect_max_s, give_up_s;
    volatile sig_atomic_t *stop;
    void (*log)(void *ctx, const char *line);
    void *log_ctx;

    /* what the device looked like at create: checked again on reconnection */
    struct iio_data_format fmt[QES_IIO_MAX_CHANNELS];
    unsigned conv_bytes[QES_IIO_MAX_CHANNELS];
    struct qes_iio_conv conv[QES_IIO_MAX_CHANNELS]; /* fast path, when fast[c] */
    int fast[QES_IIO_MAX_CHANNELS];
    struct qes_iio_conv ts_conv; /* of the current connection's timestamp, when ts_fast */
    int ts_fast;
    double scale[QES_IIO_MAX_CHANNELS];
    int has_ts;
    char where[256]; /* "URI: iio:device0 (name)", for messages */

    /* libiio objects of the current connection */
    struct iio_context *ctx;
    struct iio_device *dev;
    struct iio_channel *ch[QES_IIO_MAX_CHANNELS];
    struct iio_channel *ts_ch;
    struct iio_buffer *buf;

    /* the current refill */
    size_t avail, pos;
    ptrdiff_t step;
    const uint8_t *first[QES_IIO_MAX_CHANNELS];
    const uint8_t *ts_first;
    int64_t arrival_mono, arrival_real; /* ns, right after the refill returned */
    int64_t last_arrival_mono;          /* of the refill before */
    int conn_fresh;                     /* no refill yet on this connection */
    int resumed;                        /* this connection follows an outage */
    int ts_utc;                         /* device timestamps look like UTC */
    int started;                        /* a refill succeeded once */
    int ended;                          /* read() returned 0 */

    /* continuity */
    uint64_t next;    /* run index of the next sample */
    uint64_t pending; /* lost, not yet reported */
    int have_prev_ts;
    int64_t prev_ts;

    /* samples vs elapsed host time (no timestamps) */
    int64_t rate_t0;
    double rate_count; /* samples received (plus losses found) since rate_t0 */

    int reg_ok; /* the DMA status register is readable */

    double *out;
    int64_t *ts_buf; /* a frame's timestamps (buffer_samples), when has_ts */
    struct qes_iio_stats st;
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* strdup that passes NULL through (an absent uri means the default context) */
static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

static const char *uri_name(const struct iio_src *s)
{
    return s->uri ? s->uri : "default context";
}

/* libiio's text for a negative errno code. */
static const char *ioerr(int neg, char *buf, size_t len)
{
    iio_strerror(neg < 0 ? -neg : neg, buf, len);
    return buf;
}

static void logf_(struct iio_src *s, const char *fmt, ...) IIO_PRINTF(2, 3);
static void logf_(struct iio_src *s, const char *fmt, ...)
{
    if (!s->log)
        return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->log(s->log_ctx, line);
}

static int stopped(const struct iio_src *s)
{
    return s->stop && *s->stop;
}

/* Sleep for sec seconds, waking every 20 ms to check the stop flag.
 * Returns 1 when stopped. */
static int nap(const struct iio_src *s, double sec)
{
    int64_t end = clock_ns(CLOCK_MONOTONIC) + (int64_t)(sec * 1e9);
    for (;;) {
        if (stopped(s))
            return 1;
        int64_t left = end - clock_ns(CLOCK_MONOTONIC);
        if (left <= 0)
            return 0;
        struct timespec ts = {0, left < IIO_SLEEP_SLICE_NS ? (long)left : IIO_SLEEP_SLICE_NS};
        nanosleep(&ts, NULL);
    }
}

/* Shortest "%.Ng" that reads back as v (messages show 100.0000004, not
 * 100.00000039999999). */
static const char *num(char *buf, size_t len, double v)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

static void describe_device(struct iio_src *s)
{
    const char *id = iio_device_get_id(s->dev);
    const char *name = iio_device_get_name(s->dev);
    if (name && strcmp(name, id))
        snprintf(s->where, sizeof s->where, "%s: %s (%s)", uri_name(s), id, name);
    else
        snprintf(s->where, sizeof s->where, "%s: %s", uri_name(s), id);
}

/*
 * SIGPIPE.  libiio 0.24's network backend writes to its sockets without
 * MSG_NOSIGNAL: a write to a connection the server has closed (iiod gone)
 * raises SIGPIPE, whose default action kills the process.  Every entry
 * point therefore blocks SIGPIPE in the calling thread (a SIGPIPE from a
 * socket write is sent to the writing thread) and discards one raised
 * meanwhile before restoring the mask, so that the process-wide disposition
 * is left alone.  The write itself then fails with EPIPE, which libiio
 * reports.
 */
struct pipe_guard {
    sigset_t old;
    int was_pending;
};

static int pipe_pending(void)
{
    sigset_t p;
    sigemptyset(&p);
    return sigpending(&p) == 0 && sigismember(&p, SIGPIPE) == 1;
}

static void pipe_block(struct pipe_guard *g)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    g->was_pending = pipe_pending();
    pthread_sigmask(SIG_BLOCK, &set, &g->old);
}

static void pipe_restore(struct pipe_guard *g)
{
    if (!g->was_pending && pipe_pending()) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- connection --------------------------------------------------------- */

static void teardown(struct iio_src *s)
{
    if (s->buf)
        iio_buffer_destroy(s->buf);
    s->buf = NULL;
    if (s->ctx)
        iio_context_destroy(s->ctx);
    s->ctx = NULL;
    s->dev = NULL;
    s->ts_ch = NULL;
    for (unsigned c = 0; c < QES_IIO_MAX_CHANNELS; c++)
        s->ch[c] = NULL;
    s->avail = s->pos = 0;
}

/* iio_context_find_device of 0.24 matches id, label and name; the label is
 * also searched here so that a libiio without label matching still works. */
static struct iio_device *find_device(struct iio_context *ctx, const char *want)
{
    struct iio_device *d = iio_context_find_device(ctx, want);
    if (d)
        return d;
    unsigned n = iio_context_get_devices_count(ctx);
    for (unsigned i = 0; i < n; i++) {
        struct iio_device *e = iio_context_get_device(ctx, i);
        const char *label = iio_device_get_label(e);
        if (label && !strcmp(label, want))
            return e;
    }
    return NULL;
}

static void list_devices(struct iio_context *ctx, char *out, size_t len)
{
    size_t used = 0;
    unsigned n = iio_context_get_devices_count(ctx);
    out[0] = 0;
    for (unsigned i = 0; i < n && used + 1 < len; i++) {
        struct iio_device *e = iio_context_get_device(ctx, i);
        const char *name = iio_device_get_name(e), *label = iio_device_get_label(e);
        int k = snprintf(out + used, len - used, "%s%s%s%s%s%s%s", i ? ", " : "",
                         iio_device_get_id(e), name ? " (" : "", name ? name : "",
                         label ? ", label " : "", label ? label : "", name ? ")" : "");
        if (k < 0)
            break;
        used += (size_t)k;
    }
    if (!n)
        snprintf(out, len, "none");
}

static int is_input_scan(const struct iio_channel *c)
{
    return c && !iio_channel_is_output(c) && iio_channel_is_scan_element(c);
}

static int is_timestamp(const struct iio_channel *c)
{
    const char *id = iio_channel_get_id(c);
    return !strcmp(id, "timestamp");
}

static int same_format(const struct iio_data_format *a, const struct iio_data_format *b)
{
    return a->length == b->length && a->bits == b->bits && a->shift == b->shift &&
           a->is_signed == b->is_signed && a->is_fully_defined == b->is_fully_defined &&
           a->is_be == b->is_be && a->repeat == b->repeat;
}

/* Prepare the fast conversion of format f; 0 when it does not take f. */
static int plan_fast(const struct iio_data_format *f, struct qes_iio_conv *c)
{
    struct qes_iio_format q = {.length = f->length,
                               .bits = f->bits,
                               .shift = f->shift,
                               .is_signed = f->is_signed,
                               .is_fully_defined = f->is_fully_defined,
                               .is_be = f->is_be,
                               .repeat = f->repeat};
    return qes_iio_conv_init(c, &q) == 0;
}

/* Channels in index order when none are named (create only). */
static int pick_all_channels(struct iio_src *s, char *err, size_t errlen)
{
    struct iio_channel *list[QES_IIO_MAX_CHANNELS];
    unsigned n = 0, nc = iio_device_get_channels_count(s->dev);
    for (unsigned i = 0; i < nc; i++) {
        struct iio_channel *c = iio_device_get_channel(s->dev, i);
        if (!is_input_scan(c) || is_timestamp(c))
            continue;
        if (n == QES_IIO_MAX_CHANNELS) {
            qes_errf(err, errlen, "%s: more than %d input channels; name the ones to read",
                     s->where, QES_IIO_MAX_CHANNELS);
            return QES_EINVAL;
        }
        /* insertion sort by scan index */
        unsigned j = n++;
        while (j > 0 && iio_channel_get_index(list[j - 1]) > iio_channel_get_index(c)) {
            list[j] = list[j - 1];
            j--;
        }
        list[j] = c;
    }
    if (!n) {
        qes_errf(err, errlen, "%s: no input scan-element channel", s->where);
        return QES_ENOENT;
    }
    for (unsigned c = 0; c < n; c++) {
        s->chan_name[c] = dupstr(iio_channel_get_id(list[c]));
        if (!s->chan_name[c])
            return QES_ENOMEM;
    }
    s->base.n_channels = n;
    return 0;
}

static struct iio_channel *find_input(struct iio_device *dev, const char *name)
{
    struct iio_channel *c = iio_device_find_channel(dev, name, false);
    if (c)
        return c;
    /* iio_device_find_channel matches id or name; try the name of any input */
    unsigned nc = iio_device_get_channels_count(dev);
    for (unsigned i = 0; i < nc; i++) {
        struct iio_channel *e = iio_device_get_channel(dev, i);
        const char *n = iio_channel_get_name(e);
        if (!iio_channel_is_output(e) && n && !strcmp(n, name))
            return e;
    }
    return NULL;
}

/* Find and check the channels.  first != 0 at create: record formats. */
static int setup_channels(struct iio_src *s, int first, char *err, size_t errlen)
{
    unsigned nc = iio_device_get_channels_count(s->dev);
    for (unsigned i = 0; i < nc; i++)
        iio_channel_disable(iio_device_get_channel(s->dev, i));

    for (unsigned c = 0; c < s->base.n_channels; c++) {
        const char *name = s->chan_name[c];
        struct iio_channel *ch = find_input(s->dev, name);
        if (!ch) {
            qes_errf(err, errlen, "%s: no input channel %s", s->where, name);
            return first ? QES_ENOENT : QES_ECONFIG;
        }
        if (!iio_channel_is_scan_element(ch)) {
            qes_errf(err, errlen, "%s: channel %s is not a scan element (cannot be buffered)",
                     s->where, name);
            return first ? QES_EINVAL : QES_ECONFIG;
        }
        if (is_timestamp(ch)) {
            qes_errf(err, errlen,
                     "%s: channel %s is the timestamp (used for gap detection, not a data channel)",
                     s->where, name);
            return QES_EINVAL;
        }
        for (unsigned k = 0; k < c; k++) {
            if (s->ch[k] == ch) {
                qes_errf(err, errlen, "%s: channel %s listed twice", s->where, name);
                return QES_EINVAL;
            }
        }
        const struct iio_data_format *f = iio_channel_get_data_format(ch);
        if (first) {
            if (f->repeat > 1 ||
                !(f->length == 8 || f->length == 16 || f->length == 32 || f->length == 64)) {
                qes_errf(err, errlen,
                         "%s: channel %s: unsupported scan type (%u-bit storage, repeat %u)",
                         s->where, name, f->length, f->repeat);
                return QES_ECONFIG;
            }
            s->fmt[c] = *f;
            s->conv_bytes[c] = f->length / 8;
            s->fast[c] = plan_fast(f, &s->conv[c]);
        } else if (!same_format(f, &s->fmt[c])) {
            qes_errf(err, errlen, "%s: channel %s changed its scan type after the reconnection",
                     s->where, name);
            return QES_ECONFIG;
        }
        s->ch[c] = ch;
        iio_channel_enable(ch);
    }

    struct iio_channel *ts = iio_device_find_channel(s->dev, "timestamp", false);
    if (ts && is_input_scan(ts)) {
        const struct iio_data_format *f = iio_channel_get_data_format(ts);
        if (f->length != 64 || f->repeat > 1)
            ts = NULL; /* not the kernel's s64 nanoseconds: ignore */
    } else {
        ts = NULL;
    }
    if (first) {
        s->has_ts = ts != NULL;
    } else if ((ts != NULL) != s->has_ts) {
        qes_errf(err, errlen, "%s: the timestamp channel %s after the reconnection", s->where,
                 ts ? "appeared" : "disappeared");
        return QES_ECONFIG;
    }
    s->ts_ch = ts;
    s->ts_fast = ts && plan_fast(iio_channel_get_data_format(ts), &s->ts_conv);
    if (ts)
        iio_channel_enable(ts);
    return 0;
}

/* Where the rate lives: the device attribute, or (ad9361-like cores) the
 * `sampling_frequency` attribute of the first data channel. */
static int rate_read(struct iio_src *s, double *v)
{
    if (iio_device_find_attr(s->dev, "sampling_frequency"))
        return iio_device_attr_read_double(s->dev, "sampling_frequency", v);
    if (iio_channel_find_attr(s->ch[0], "sampling_frequency"))
        return iio_channel_attr_read_double(s->ch[0], "sampling_frequency", v);
    return -ENOENT;
}

static int rate_write(struct iio_src *s, double v)
{
    /* An integer rate is written as an integer: drivers that parse the
     * attribute with kstrtoint refuse "1000000.000000". */
    int integral = v == floor(v) && v < 9e15;
    if (iio_device_find_attr(s->dev, "sampling_frequency"))
        return integral ? iio_device_attr_write_longlong(s->dev, "sampling_frequency", (long long)v)
                        : iio_device_attr_write_double(s->dev, "sampling_frequency", v);
    if (iio_channel_find_attr(s->ch[0], "sampling_frequency"))
        return integral ? iio_channel_attr_write_longlong(s->ch[0], "sampling_frequency",
                                                          (long long)v)
                        : iio_channel_attr_write_double(s->ch[0], "sampling_frequency", v);
    return -ENOENT;
}

static int setup_rate(struct iio_src *s, int first, char *err, size_t errlen)
{
    char eb[128], nb[32], nb2[32];
    double back = 0;
    int rc;
    if (s->fs_req > 0) {
        rc = rate_write(s, s->fs_req);
        if (rc < 0) {
            qes_errf(err, errlen, "%s: writing sampling_frequency = %s: %s", s->where,
                     num(nb, sizeof nb, s->fs_req), ioerr(rc, eb, sizeof eb));
            return QES_ECONFIG;
        }
    }
    rc = rate_read(s, &back);
    if (rc < 0) {
        qes_errf(err, errlen, "%s: reading sampling_frequency: %s", s->where,
                 ioerr(rc, eb, sizeof eb));
        return QES_ECONFIG;
    }
    double want = s->fs_req > 0 ? s->fs_req : (first ? back : s->base.sample_rate_hz);
    if (!(back > 0) || !isfinite(back) || fabs(back - want) > s->rate_tol * want) {
        qes_errf(err, errlen, "%s: sampling_frequency read back as %s Hz, expected %s Hz%s",
                 s->where, num(nb, sizeof nb, back), num(nb2, sizeof nb2, want),
                 s->fs_req > 0 ? " (written)" : " (before the reconnection)");
        return QES_ECONFIG;
    }
    if (first) {
        s->st.rate_readback_hz = back;
        s->base.sample_rate_hz = back;
        logf_(s, "%s: sampling_frequency %s Hz%s", s->where, num(nb, sizeof nb, back),
              s->fs_req > 0 ? " (written and read back)" : " (kept)");
    }
    return 0;
}

/*
 * Open the context and device and configure them.  first != 0 at create.
 * Returns 0, or a QES code with err filled; on reconnection every code but
 * QES_ECONFIG / QES_EINVAL means "try again".
 */
static int connect_dev(struct iio_src *s, int first, char *err, size_t errlen)
{
    char eb[128];
    errno = 0;
    if (s->uri) {
        /* libiio 0.24's network backend cuts ":PORT" off the string it is
         * given (in place): give it a copy. */
        char *u = dupstr(s->uri);
        if (!u) {
            qes_errf(err, errlen, "%s: out of memory", s->uri);
            return QES_ENOMEM;
        }
        s->ctx = iio_create_context_from_uri(u);
        int e = errno;
        free(u);
        errno = e;
    } else {
        s->ctx = iio_create_default_context();
    }
    if (!s->ctx) {
        int e = errno ? errno : EIO;
        qes_errf(err, errlen, "%s: cannot create the IIO context: %s", uri_name(s),
                 ioerr(e, eb, sizeof eb));
        return QES_EIO;
    }
    int rc = iio_context_set_timeout(s->ctx, s->timeout_ms);
    if (rc < 0) {
        qes_errf(err, errlen, "%s: setting the context timeout to %u ms: %s", uri_name(s),
                 s->timeout_ms, ioerr(rc, eb, sizeof eb));
        return QES_EIO;
    }
    s->dev = find_device(s->ctx, s->device);
    if (!s->dev) {
        char list[512];
        list_devices(s->ctx, list, sizeof list);
        qes_errf(err, errlen, "%s: no device with id, name or label '%s' (devices: %s)",
                 uri_name(s), s->device, list);
        return QES_ENOENT;
    }
    describe_device(s);
    if (first && s->base.n_channels == 0) {
        rc = pick_all_channels(s, err, errlen);
        if (rc)
            return rc;
    }
    rc = setup_channels(s, first, err, errlen);
    if (rc)
        return rc;
    rc = setup_rate(s, first, err, errlen);
    if (rc)
        return rc;
    return 0;
}

/* The device's buffer: acquisition starts here. */
static int open_buffer(struct iio_src *s, char *err, size_t errlen)
{
    char eb[128];
    int rc = iio_device_set_kernel_buffers_count(s->dev, s->kernel_buffers);
    if (rc < 0 && rc != -ENOSYS) {
        qes_errf(err, errlen, "%s: setting %u kernel buffers: %s", s->where, s->kernel_buffers,
                 ioerr(rc, eb, sizeof eb));
        return QES_EIO;
    }
    errno = 0;
    s->buf = iio_device_create_buffer(s->dev, s->buffer_samples, false);
    if (!s->buf) {
        int e = errno ? errno : EIO;
        qes_errf(err, errlen, "%s: creating a buffer of %zu samples: %s", s->where,
                 s->buffer_samples, ioerr(e, eb, sizeof eb));
        return QES_EIO;
    }
    /* A stale overflow flag from before this buffer is not a gap of ours.
     * Register access goes through the debug attribute direct_reg_access:
     * without it there is nothing to try. */
    if (s->reg_ok && !iio_device_find_debug_attr(s->dev, "direct_reg_access"))
        s->reg_ok = 0;
    uint32_t v;
    if (s->reg_ok && iio_device_reg_read(s->dev, IIO_ADI_STATUS_REG, &v) == 0) {
        if (v & IIO_ADI_OVF_BIT &&
            iio_device_reg_write(s->dev, IIO_ADI_STATUS_REG, IIO_ADI_OVF_BIT) < 0)
            s->reg_ok = 0;
    } else {
        s->reg_ok = 0;
    }
    s->conn_fresh = 1;
    s->avail = s->pos = 0;
    return 0;
}

/* ---- loss inference ----------------------------------------------------- */

static void add_loss(struct iio_src *s, uint64_t n, uint64_t *kind, const char *how)
{
    if (!n)
        return;
    s->pending += n;
    s->st.lost += n;
    s->st.gaps++;
    if (kind)
        (*kind)++;
    logf_(s, "%s: gap of %" PRIu64 " samples before sample %" PRIu64 " (%s)", s->where, n,
          s->next + s->pending, how);
}

/* Timestamps of samples from .. from + n - 1 of the refill into out. */
static void ts_range(const struct iio_src *s, size_t from, size_t n, int64_t *out)
{
    const uint8_t *p = s->ts_first + (ptrdiff_t)from * s->step;
    if (s->ts_fast) {
        qes_iio_conv_i64(&s->ts_conv, p, s->step, n, out);
        return;
    }
    for (size_t k = 0; k < n; k++, p += s->step)
        iio_channel_convert(s->ts_ch, &out[k], p);
}

static int64_t ts_at(const struct iio_src *s, size_t k)
{
    int64_t t;
    ts_range(s, k, 1, &t);
    return t;
}

/* Host-clock estimate of the samples missing between the last refill of
 * the previous connection and the first one of this connection. */
static uint64_t host_gap(const struct iio_src *s)
{
    double fs = s->base.sample_rate_hz;
    double first_new = (double)s->arrival_mono - (double)(s->avail - 1) * 1e9 / fs;
    double dt = (first_new - (double)s->last_arrival_mono) * 1e-9;
    double lost = floor(dt * fs + 0.5) - 1;
    return lost > 0 ? (uint64_t)lost : 0;
}

/* Bookkeeping of a successful refill of `bytes` bytes. */
static void on_refill(struct iio_src *s, ssize_t bytes)
{
    double fs = s->base.sample_rate_hz;
    s->step = iio_buffer_step(s->buf);
    s->avail = s->step > 0 ? (size_t)bytes / (size_t)s->step : 0;
    s->pos = 0;
    for (unsigned c = 0; c < s->base.n_channels; c++)
        s->first[c] = iio_buffer_first(s->buf, s->ch[c]);
    s->ts_first = s->ts_ch ? iio_buffer_first(s->buf, s->ts_ch) : NULL;
    if (!s->avail)
        return;

    if (s->conn_fresh) {
        s->conn_fresh = 0;
        if (s->ts_ch) {
            int64_t last = ts_at(s, s->avail - 1);
            int64_t d = last - s->arrival_real;
            s->ts_utc = d > -IIO_UTC_WINDOW_NS - (int64_t)(s->avail * 1e9 / fs) &&
                        d < IIO_UTC_WINDOW_NS;
            /* The device clock restarted (a reboot): its steps say nothing
             * about the outage; fall back to the host clock. */
            if (s->resumed && (!s->have_prev_ts || ts_at(s, 0) <= s->prev_ts)) {
                s->have_prev_ts = 0;
                add_loss(s, host_gap(s), &s->st.gaps_rate, "outage, host clock");
            }
        } else if (s->resumed) {
            add_loss(s, host_gap(s), &s->st.gaps_rate, "outage, host clock");
        }
        s->resumed = 0;
        s->rate_t0 = s->arrival_mono;
        s->rate_count = 0;
    } else if (!s->ts_ch) {
        /* The first refill of a connection is the reference: its samples
         * were taken before rate_t0.  Each later refill adds its own. */
        s->rate_count += (double)s->avail;
        double el = (double)(s->arrival_mono - s->rate_t0) * 1e-9;
        if (el >= 1.0) {
            double expected = el * fs;
            double shortfall = expected - s->rate_count;
            double limit = (double)(s->kernel_buffers + 2) * (double)s->buffer_samples;
            if (limit < 0.01 * expected)
                limit = 0.01 * expected;
            if (shortfall > limit) {
                uint64_t n = (uint64_t)floor(shortfall + 0.5);
                s->rate_count += (double)n;
                add_loss(s, n, &s->st.gaps_rate, "samples vs elapsed time");
            }
        }
    }

    if (s->reg_ok) {
        uint32_t v;
        if (iio_device_reg_read(s->dev, IIO_ADI_STATUS_REG, &v) < 0) {
            s->reg_ok = 0;
        } else if (v & IIO_ADI_OVF_BIT) {
            if (iio_device_reg_write(s->dev, IIO_ADI_STATUS_REG, IIO_ADI_OVF_BIT) < 0)
                s->reg_ok = 0;
            s->st.gaps_dma++;
            logf_(s, "%s: DMA overflow flag (status register 0x%08x bit 2) set", s->where,
                  IIO_ADI_STATUS_REG);
            if (!s->ts_ch) {
                /* the size of the loss is what the host clock says is
                 * missing, without the tolerance of the rate check */
                double el = (double)(s->arrival_mono - s->rate_t0) * 1e-9;
                double shortfall = el * fs - s->rate_count;
                uint64_t n = shortfall > 0.5 ? (uint64_t)floor(shortfall + 0.5) : 0;
                s->rate_count += (double)n;
                add_loss(s, n, NULL, "DMA overflow flag, size from the host clock");
            }
        }
    }
}

/* ---- reading ------------------------------------------------------------ */

/* One refill; on success the refill's bookkeeping is done.  Returns the
 * byte count or a negative errno code. */
static ssize_t refill(struct iio_src *s)
{
    ssize_t r = iio_buffer_refill(s->buf);
    int64_t mono = clock_ns(CLOCK_MONOTONIC), real = clock_ns(CLOCK_REALTIME);
    if (r < 0)
        return r;
    if (r == 0 || r < iio_buffer_step(s->buf))
        return -EIO; /* a blocking refill returns whole samples or an error */
    s->last_arrival_mono = s->arrival_mono;
    s->arrival_mono = mono;
    s->arrival_real = real;
    on_refill(s, r);
    return r;
}

/*
 * Rebuild the connection after a failed refill (code rc).  Returns 1 with a
 * fresh refill, 0 when *stop was set, or a negative code (gave up, or the
 * device came back configured differently).
 */
static int reconnect(struct iio_src *s, int rc)
{
    char eb[128], e[512];
    int64_t t_fail = clock_ns(CLOCK_MONOTONIC);
    double delay = s->reconnect_min_s;
    snprintf(e, sizeof e, "%s: refill: %s", s->where, ioerr(rc, eb, sizeof eb));
    logf_(s, "%s; reconnecting", e);
    teardown(s);
    s->resumed = 1;
    for (unsigned attempt = 1;; attempt++) {
        double away = (double)(clock_ns(CLOCK_MONOTONIC) - t_fail) * 1e-9;
        if (s->give_up_s > 0 && away + delay > s->give_up_s) {
            qes_errf(s->base.errmsg, sizeof s->base.errmsg,
                     "gave up reconnecting after %.1f s (%u attempts); last error: %s", away,
                     attempt - 1, e);
            return QES_EIO;
        }
        if (nap(s, delay))
            return 0;
        logf_(s, "%s: reconnection attempt %u", uri_name(s), attempt);
        int r = connect_dev(s, 0, e, sizeof e);
        if (!r)
            r = open_buffer(s, e, sizeof e);
        if (!r) {
            ssize_t got = refill(s);
            if (got < 0) {
                s->st.refill_errors++;
                snprintf(e, sizeof e, "%s: refill: %s", s->where, ioerr((int)got, eb, sizeof eb));
                r = QES_EIO;
            }
        }
        if (r == QES_ECONFIG || r == QES_EINVAL || r == QES_ENOMEM) {
            qes_errf(s->base.errmsg, sizeof s->base.errmsg, "after a reconnection: %s", e);
            teardown(s);
            return r;
        }
        if (r) {
            logf_(s, "%s", e);
            teardown(s);
            delay = 2 * delay < s->reconnect_max_s ? 2 * delay : s->reconnect_max_s;
            continue;
        }
        s->st.reconnects++;
        logf_(s, "%s: resumed after %.3f s away", s->where,
              (double)(s->arrival_mono - t_fail) * 1e-9);
        return 1;
    }
}

/* Make samples available.  1, 0 (stopped) or a negative code. */
static int ensure_data(struct iio_src *s)
{
    char eb[128];
    while (s->pos >= s->avail) {
        if (stopped(s))
            return 0;
        if (!s->buf) {
            int rc = open_buffer(s, s->base.errmsg, sizeof s->base.errmsg);
            if (rc)
                return rc;
        }
        ssize_t r = refill(s);
        if (r > 0) {
            s->started = 1;
            continue;
        }
        s->st.refill_errors++;
        if (!s->started) {
            /* never streamed: a configuration problem (no trigger, device
             * busy) rather than a lost device */
            qes_errf(s->base.errmsg, sizeof s->base.errmsg, "%s: first refill: %s", s->where,
                     ioerr((int)r, eb, sizeof eb));
            return QES_EIO;
        }
        int rc = reconnect(s, (int)r);
        if (rc <= 0)
            return rc;
    }
    return 1;
}

static void convert_channel(const struct iio_src *s, unsigned c, size_t from, size_t n, double *out,
                            unsigned stride)
{
    const struct iio_channel *ch = s->ch[c];
    const uint8_t *p = s->first[c] + (ptrdiff_t)from * s->step;
    if (s->fast[c]) {
        qes_iio_conv_f64(&s->conv[c], p, s->step, n, out, stride);
        return;
    }
    int sgn = s->fmt[c].is_signed;
    switch (s->conv_bytes[c]) {
    case 1:
        for (size_t k = 0; k < n; k++, p += s->step) {
            uint8_t v;
            iio_channel_convert(ch, &v, p);
            out[k * stride] = sgn ? (double)(int8_t)v : (double)v;
        }
        break;
    case 2:
        for (size_t k = 0; k < n; k++, p += s->step) {
            uint16_t v;
            iio_channel_convert(ch, &v, p);
            out[k * stride] = sgn ? (double)(int16_t)v : (double)v;
        }
        break;
    case 4:
        for (size_t k = 0; k < n; k++, p += s->step) {
            uint32_t v;
            iio_channel_convert(ch, &v, p);
            out[k * stride] = sgn ? (double)(int32_t)v : (double)v;
        }
        break;
    default:
        for (size_t k = 0; k < n; k++, p += s->step) {
            uint64_t v;
            iio_channel_convert(ch, &v, p);
            out[k * stride] = sgn ? (double)(int64_t)v : (double)v;
        }
        break;
    }
}

static int read_frame(struct qes_source *base, struct qes_frame *f, size_t max_n)
{
    struct iio_src *s = (struct iio_src *)base;
    if (!f || max_n == 0) {
        qes_errf(s->base.errmsg, sizeof s->base.errmsg, "%s: read with max_n = 0", s->where);
        return QES_EINVAL;
    }
    if (s->ended)
        return 0;
    int rc = ensure_data(s);
    if (rc == 0)
        s->ended = 1;
    if (rc <= 0)
        return rc;

    double fs = s->base.sample_rate_hz;
    size_t n = s->avail - s->pos;
    if (n > max_n)
        n = max_n;
    int64_t ts0 = 0;
    if (s->ts_ch) {
        double limit_ns = 1.5e9 / fs;
        ts_range(s, s->pos, n, s->ts_buf);
        for (size_t k = 0; k < n; k++) {
            int64_t t = s->ts_buf[k];
            if (s->have_prev_ts && (double)(t - s->prev_ts) > limit_ns) {
                double lost = floor((double)(t - s->prev_ts) * 1e-9 * fs + 0.5) - 1;
                if (lost >= 1) {
                    if (k > 0) {
                        n = k; /* the gap opens the next frame */
                        break;
                    }
                    add_loss(s, (uint64_t)lost, &s->st.gaps_timestamp, "timestamp step");
                }
            }
            if (k == 0)
                ts0 = t;
            s->prev_ts = t;
            s->have_prev_ts = 1;
        }
    }
    for (unsigned c = 0; c < s->base.n_channels; c++)
        convert_channel(s, c, s->pos, n, s->out + c, s->base.n_channels);

    f->first_sample = s->next + s->pending;
    f->lost_before = s->pending;
    f->n = n;
    f->n_channels = s->base.n_channels;
    f->samples = s->out;
    f->has_device_time = s->ts_ch != NULL;
    f->device_time_ns = ts0;
    if (s->ts_ch && s->ts_utc)
        f->host_time_ns = ts0;
    else /* the refill's last sample was taken when it arrived */
        f->host_time_ns =
                s->arrival_real - (int64_t)llround((double)(s->avail - 1 - s->pos) * 1e9 / fs);
    f->arrival_ns = s->arrival_mono;
    s->next = f->first_sample + n;
    s->pending = 0;
    s->pos += n;
    s->st.samples += n;
    return 1;
}

static void destroy_src(struct qes_source *base)
{
    struct iio_src *s = (struct iio_src *)base;
    teardown(s);
    free(s->uri);
    free(s->device);
    for (unsigned c = 0; c < QES_IIO_MAX_CHANNELS; c++)
        free(s->chan_name[c]);
    free(s->out);
    free(s->ts_buf);
    free(s);
}

static int iio_read(struct qes_source *base, struct qes_frame *f, size_t max_n)
{
    struct pipe_guard g;
    pipe_block(&g);
    int rc = read_frame(base, f, max_n);
    pipe_restore(&g);
    return rc;
}

static void iio_destroy(struct qes_source *base)
{
    struct pipe_guard g;
    pipe_block(&g);
    destroy_src(base);
    pipe_restore(&g);
}

static const struct qes_source_ops iio_ops = {
        .name = "iio",
        .read = iio_read,
        .destroy = iio_destroy,
};

/* ---- public ------------------------------------------------------------- */

static int check_desc(const struct qes_iio_desc *d, char *err, size_t errlen)
{
    if (!d) {
        qes_errf(err, errlen, "iio source: no description");
        return QES_EINVAL;
    }
    const char *u = d->uri ? d->uri : "default context";
    if (!d->device || !d->device[0]) {
        qes_errf(err, errlen, "%s: no device named (name, id or label)", u);
        return QES_EINVAL;
    }
    if (d->n_channels > QES_IIO_MAX_CHANNELS) {
        qes_errf(err, errlen, "%s: %s: %u channels, at most %d", u, d->device, d->n_channels,
                 QES_IIO_MAX_CHANNELS);
        return QES_EINVAL;
    }
    for (unsigned c = 0; c < d->n_channels; c++) {
        if (!d->channels[c] || !d->channels[c][0]) {
            qes_errf(err, errlen, "%s: %s: channel %u has no name", u, d->device, c);
            return QES_EINVAL;
        }
    }
    if (!(d->sample_rate_hz >= 0) || !isfinite(d->sample_rate_hz)) {
        qes_errf(err, errlen, "%s: %s: sample_rate_hz %g is not >= 0", u, d->device,
                 d->sample_rate_hz);
        return QES_EINVAL;
    }
    if (!(d->rate_tolerance >= 0) || d->rate_tolerance >= 1) {
        qes_errf(err, errlen, "%s: %s: rate_tolerance %g is not in [0, 1)", u, d->device,
                 d->rate_tolerance);
        return QES_EINVAL;
    }
    if (d->buffer_samples > ((size_t)1 << 28)) {
        qes_errf(err, errlen, "%s: %s: buffer_samples %zu is too large", u, d->device,
                 d->buffer_samples);
        return QES_EINVAL;
    }
    if (!(d->reconnect_min_s >= 0) || !(d->reconnect_max_s >= 0) || !(d->give_up_s >= 0) ||
        (d->reconnect_max_s > 0 && d->reconnect_min_s > d->reconnect_max_s)) {
        qes_errf(err, errlen,
                 "%s: %s: reconnection times must be >= 0 with reconnect_min_s <= reconnect_max_s",
                 u, d->device);
        return QES_EINVAL;
    }
    return 0;
}

static int create_src(const struct qes_iio_desc *desc, struct qes_source **out, char *err,
                      size_t errlen)
{
    if (out)
        *out = NULL;
    int rc = check_desc(desc, err, errlen);
    if (rc)
        return rc;
    if (!out) {
        qes_errf(err, errlen, "iio source: no output pointer");
        return QES_EINVAL;
    }
    struct iio_src *s = calloc(1, sizeof *s);
    if (!s)
        goto err_nomem;
    s->base.ops = &iio_ops;
    s->uri = dupstr(desc->uri);
    s->device = dupstr(desc->device);
    if ((desc->uri && !s->uri) || !s->device)
        goto err_nomem_s;
    for (unsigned c = 0; c < desc->n_channels; c++) {
        s->chan_name[c] = dupstr(desc->channels[c]);
        if (!s->chan_name[c])
            goto err_nomem_s;
    }
    s->base.n_channels = desc->n_channels;
    s->fs_req = desc->sample_rate_hz;
    s->rate_tol = desc->rate_tolerance > 0 ? desc->rate_tolerance : IIO_DEF_RATE_TOL;
    s->buffer_samples = desc->buffer_samples ? desc->buffer_samples : IIO_DEF_BUFFER_SAMPLES;
    s->kernel_buffers = desc->kernel_buffers ? desc->kernel_buffers : IIO_DEF_KERNEL_BUFFERS;
    unsigned timeout_ms = desc->timeout_ms ? desc->timeout_ms : IIO_DEF_TIMEOUT_MS;
    s->timeout_ms = timeout_ms;
    s->reconnect_min_s = desc->reconnect_min_s > 0 ? desc->reconnect_min_s : IIO_DEF_RECONNECT_MIN;
    s->reconnect_max_s = desc->reconnect_max_s > 0 ? desc->reconnect_max_s : IIO_DEF_RECONNECT_MAX;
    if (s->reconnect_min_s > s->reconnect_max_s)
        s->reconnect_max_s = s->reconnect_min_s;
    s->give_up_s = desc->give_up_s;
    s->stop = desc->stop;
    s->log = desc->log;
    s->log_ctx = desc->log_ctx;
    s->reg_ok = 1;
    snprintf(s->where, sizeof s->where, "%s: %s", uri_name(s), s->device);

    rc = connect_dev(s, 1, err, errlen);
    if (rc)
        goto err_conn;

    /* A refill waits for a whole buffer: the timeout must cover it, or a
     * slow device would look lost. */
    double buf_ms = ceil((double)s->buffer_samples * 1000.0 / s->base.sample_rate_hz);
    if (buf_ms > 1e9) {
        qes_errf(err, errlen, "%s: a buffer of %zu samples at %g Hz takes too long", s->where,
                 s->buffer_samples, s->base.sample_rate_hz);
        rc = QES_EINVAL;
        goto err_conn;
    }
    s->timeout_ms = timeout_ms + (unsigned)buf_ms;
    rc = iio_context_set_timeout(s->ctx, s->timeout_ms);
    if (rc < 0) {
        char eb[128];
        qes_errf(err, errlen, "%s: setting the context timeout to %u ms: %s", uri_name(s),
                 s->timeout_ms, ioerr(rc, eb, sizeof eb));
        rc = QES_EIO;
        goto err_conn;
    }

    for (unsigned c = 0; c < s->base.n_channels; c++) {
        double v = 0;
        int r = -ENOENT;
        const char *from = "channel";
        if (iio_channel_find_attr(s->ch[c], "scale")) {
            r = iio_channel_attr_read_double(s->ch[c], "scale", &v);
        } else if (iio_device_find_attr(s->dev, "scale")) {
            from = "device";
            r = iio_device_attr_read_double(s->dev, "scale", &v);
        }
        if (r < 0 && r != -ENOENT) {
            char eb[128];
            logf_(s, "%s: channel %s: reading the %s scale: %s; no default gain", s->where,
                  s->chan_name[c], from, ioerr(r, eb, sizeof eb));
        }
        s->scale[c] = r < 0 || !isfinite(v) ? 0 : v;
    }

    s->out = malloc(s->buffer_samples * s->base.n_channels * sizeof *s->out);
    if (!s->out)
        goto err_nomem_s;
    if (s->has_ts) {
        s->ts_buf = malloc(s->buffer_samples * sizeof *s->ts_buf);
        if (!s->ts_buf)
            goto err_nomem_s;
    }
    *out = &s->base;
    return 0;

err_nomem_s:
    destroy_src(&s->base);
err_nomem:
    qes_errf(err, errlen, "%s: out of memory", desc->uri ? desc->uri : "default context");
    return QES_ENOMEM;
err_conn:
    destroy_src(&s->base);
    return rc;
}

int qes_source_iio_create(const struct qes_iio_desc *desc, struct qes_source **out, char *err,
                          size_t errlen)
{
    struct pipe_guard g;
    pipe_block(&g);
    int rc = create_src(desc, out, err, errlen);
    pipe_restore(&g);
    return rc;
}

static const struct iio_src *as_iio(const struct qes_source *s)
{
    return s && s->ops == &iio_ops ? (const struct iio_src *)s : NULL;
}

double qes_source_iio_scale(const struct qes_source *s, unsigned channel)
{
    const struct iio_src *is = as_iio(s);
    if (!is || channel >= is->base.n_channels)
        return 0;
    return is->scale[channel];
}

void qes_source_iio_stats(const struct qes_source *s, struct qes_iio_stats *out)
{
    const struct iio_src *is = as_iio(s);
    if (!out)
        return;
    if (!is) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = is->st;
}

const char *qes_source_iio_datatype(const struct qes_source *s)
{
    const struct iio_src *is = as_iio(s);
    if (!is)
        return NULL;
    /* Bits of a signed integer that holds every converted value: the SigMF
     * writer (hw/sigmf.h) writes ri16_le, ri32_le and rf64_le. */
    unsigned need = 0;
    for (unsigned c = 0; c < is->base.n_channels; c++) {
        const struct iio_data_format *f = &is->fmt[c];
        unsigned bits = f->is_fully_defined ? f->length : f->bits;
        if (!f->is_signed)
            bits++;
        if (bits > need)
            need = bits;
    }
    return need <= 16 ? "ri16_le" : need <= 32 ? "ri32_le" : "rf64_le"; /* rf64: exact to 53 bits */
}
