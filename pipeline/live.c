/*
 * The live side of `qes run` (pipeline/live.h).
 */
#include "pipeline/live.h"

#include "common/err.h"
#include "hw/sigmf.h"
#include "pipeline/acq.h"
#include "pipeline/rawtee.h"
#ifdef QES_HAVE_IIO
#include "hw/source_iio.h"
#endif

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The raw tee sits between the ring and the runtime: it runs on the DSP
 * worker's thread, never on the acquisition thread. */
struct tee_src {
    struct qes_source base; /* first */
    struct qes_source *in;  /* the ring, borrowed */
    struct qes_rawtee *tee; /* NULL when not recording (or after an error) */
    FILE *log;
    int failed;
    uint64_t end; /* run samples to deliver (from [source] seconds); 0 = no end */
};

struct qes_live {
    struct qes_config *cfg;
    struct qes_source *device; /* inner source (borrowed from acq, which owns it) */
    struct qes_source *acq;    /* the ring */
    struct tee_src tee;        /* what the runtime reads */
    uint64_t total_frames;
    int is_iio;
    enum qes_dtype raw_dtype;
    FILE *log;
};

static void log_line(void *ctx, const char *line)
{
    FILE *f = ctx;
    if (f)
        fprintf(f, "qes run: %s\n", line);
}

static int tee_read(struct qes_source *s, struct qes_frame *f, size_t max_n)
{
    struct tee_src *t = (struct tee_src *)s;
    int r = qes_source_read(t->in, f, max_n);
    if (r < 0) {
        snprintf(s->errmsg, sizeof s->errmsg, "%s", t->in->errmsg);
        return r;
    }
    if (r > 0 && t->end) {
        /* the run's length is counted in run samples, delivered or lost */
        if (f->first_sample >= t->end)
            return 0;
        if (f->first_sample + f->n > t->end)
            f->n = (size_t)(t->end - f->first_sample);
    }
    if (r > 0 && t->tee && qes_rawtee_write(t->tee, f) != 0) {
        /* the measurement goes on; the raw record is what failed */
        if (t->log)
            fprintf(t->log,
                    "qes run: WARNING: raw recording stopped: %s; the run continues without it "
                    "and will exit 3\n",
                    qes_rawtee_errmsg(t->tee));
        t->failed = 1;
    }
    return r;
}

static void tee_destroy(struct qes_source *s)
{
    (void)s; /* embedded in struct qes_live */
}

static const struct qes_source_ops tee_ops = {
        .name = "live", .read = tee_read, .destroy = tee_destroy};

#ifdef QES_HAVE_IIO
/*
 * IIO scales are in the IIO ABI's units: millivolts per count for voltage
 * channels, milliamperes for current.  A channel whose unit is V or A gets
 * 1e-3 x scale; mV and mA take the scale as it is; any other unit cannot be
 * derived and must be given.
 */
static int resolve_gain(struct qes_cfg_channel *ch, double scale, FILE *log, char *err,
                        size_t errlen)
{
    if (ch->gain != QES_CFG_AUTO_D)
        return 0;
    if (!(scale > 0) || !isfinite(scale)) {
        ch->gain = 1.0;
        if (log)
            fprintf(log,
                    "qes run: [channel.%s] gain = auto: the device has no scale attribute for "
                    "this channel; values are in counts (gain 1)\n",
                    ch->name);
        return 0;
    }
    if (!strcmp(ch->unit, "V") || !strcmp(ch->unit, "A")) {
        ch->gain = 1e-3 * scale;
    } else if (!strcmp(ch->unit, "mV") || !strcmp(ch->unit, "mA")) {
        ch->gain = scale;
    } else {
        qes_errf(err, errlen,
                 "[channel.%s] gain = auto: the device's scale (%.17g, in mV or mA per count) "
                 "cannot be converted to unit %s; give gain explicitly",
                 ch->name, scale, ch->unit);
        return QES_ECONFIG;
    }
    return 0;
}

static int open_iio(struct qes_live *l, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
    struct qes_config *cfg = l->cfg;
    const struct qes_cfg_source *sc = &cfg->source;
    if (!sc->device[0]) {
        qes_errf(err, errlen, "[source] device: kind = iio needs the device's name, id or label");
        return QES_ECONFIG;
    }
    struct qes_iio_desc d;
    memset(&d, 0, sizeof d);
    d.uri = sc->uri[0] ? sc->uri : NULL;
    d.device = sc->device;
    d.sample_rate_hz = sc->sample_rate_hz;
    d.rate_tolerance = 1e-9;
    d.buffer_samples = sc->buffer_samples;
    d.kernel_buffers = sc->kernel_buffers;
    d.timeout_ms = sc->timeout_ms;
    d.reconnect_min_s = 0.1 < sc->reconnect_max_s ? 0.1 : sc->reconnect_max_s;
    d.reconnect_max_s = sc->reconnect_max_s;
    d.give_up_s = sc->give_up_s;
    d.stop = stop;
    d.log = log_line;
    d.log_ctx = l->log;
    /* channel list: all named or none */
    size_t named = 0;
    unsigned max_index = 0;
    for (size_t i = 0; i < cfg->n_channel; i++) {
        named += cfg->channel[i].iio_channel[0] != '\0';
        if (cfg->channel[i].index > max_index)
            max_index = cfg->channel[i].index;
    }
    if (named) {
        if (named != cfg->n_channel || max_index + 1 != cfg->n_channel ||
            cfg->n_channel > QES_IIO_MAX_CHANNELS) {
            qes_errf(err, errlen,
                     "[channel.*] iio_channel: give it for every channel or for none, with "
                     "indices 0..%zu each used once (at most %d channels)",
                     cfg->n_channel ? cfg->n_channel - 1 : 0, QES_IIO_MAX_CHANNELS);
            return QES_ECONFIG;
        }
        for (size_t i = 0; i < cfg->n_channel; i++)
            d.channels[cfg->channel[i].index] = cfg->channel[i].iio_channel;
        d.n_channels = (unsigned)cfg->n_channel;
    }
    int rc = qes_source_iio_create(&d, &l->device, err, errlen);
    if (rc)
        return rc;
    if (max_index >= l->device->n_channels) {
        qes_errf(err, errlen,
                 "[channel.*] index %u: device %s delivers %u channel(s) (indices 0..%u)",
                 max_index, sc->device, l->device->n_channels, l->device->n_channels - 1);
        return QES_ECONFIG;
    }
    for (size_t i = 0; i < cfg->n_channel; i++) {
        struct qes_cfg_channel *ch = &cfg->channel[i];
        rc = resolve_gain(ch, qes_source_iio_scale(l->device, ch->index), l->log, err, errlen);
        if (rc)
            return rc;
    }
    rc = qes_dtype_parse(qes_source_iio_datatype(l->device), &l->raw_dtype);
    if (rc) {
        qes_errf(err, errlen, "%s: raw datatype %s not supported", sc->device,
                 qes_source_iio_datatype(l->device));
        return QES_EUNSUPPORTED;
    }
    l->is_iio = 1;
    return 0;
}
#endif

int qes_live_open(struct qes_config *cfg, struct qes_source *inner, uint64_t total_frames,
                  volatile sig_atomic_t *stop, FILE *log, struct qes_live **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    struct qes_live *l = calloc(1, sizeof *l);
    if (!l) {
        qes_source_destroy(inner);
        return QES_ENOMEM;
    }
    l->cfg = cfg;
    l->log = log;
    l->total_frames = total_frames;
    int rc = 0;
    size_t frame = 4096;
    (void)stop; /* used by the iio source */
    if (inner) {
        l->device = inner;
        for (size_t i = 0; i < cfg->n_channel; i++)
            cfg->channel[i].gain = qes_cfg_gain(&cfg->channel[i]);
        l->raw_dtype = cfg->source.adc_bits == 0    ? QES_DT_RF64_LE
                       : cfg->source.adc_bits <= 16 ? QES_DT_RI16_LE
                                                    : QES_DT_RI32_LE;
    } else if (!strcmp(cfg->source.kind, "iio")) {
#ifdef QES_HAVE_IIO
        rc = open_iio(l, stop, err, errlen);
        frame = cfg->source.buffer_samples;
        if (!rc && cfg->source.seconds > 0)
            l->total_frames = (uint64_t)llround(cfg->source.seconds * l->device->sample_rate_hz);
#else
        qes_errf(err, errlen,
                 "[source] kind = iio: this qes was built without libiio (cmake "
                 "-DQES_WITH_IIO=ON, package libiio-dev)");
        rc = QES_EUNSUPPORTED;
#endif
    } else {
        qes_errf(err, errlen, "[source] kind = %s: not a live source (use qes replay)",
                 cfg->source.kind);
        rc = QES_ECONFIG;
    }
    if (rc) {
        qes_source_destroy(l->device);
        free(l);
        return rc;
    }
    struct qes_acq_desc ad = {
            .inner = l->device,
            .frame_samples = frame,
            .n_slots = cfg->run.ring_slots,
            .lock_memory = cfg->run.lock_memory,
            .rt_priority = (int)cfg->run.rt_priority,
            .cpu = cfg->run.cpu,
            .busy_poll_us = cfg->run.busy_poll_us,
            .stop = stop,
            .log = log_line,
            .log_ctx = log,
    };
    rc = qes_acq_create(&ad, &l->acq, err, errlen);
    if (rc) {
        free(l);
        return rc;
    }
    if (cfg->run.rt_priority > 0 && cfg->run.busy_poll_us > 0) {
        /* a SCHED_FIFO thread that spins is throttled by the kernel's real-time
         * bandwidth limit (sched_rt_runtime_us: 50 ms in every second by
         * default), which is far worse than any wake-up: measured here, p99
         * 39 ms against 94 us at normal priority */
        if (log)
            fprintf(log, "qes run: note: [run] busy_poll_us: the processing thread spins, so it "
                         "stays at normal priority (rt_priority applies to acquisition only)\n");
    } else if (cfg->run.rt_priority > 0) {
        /* the DSP worker (this thread) consumes the ring: with the acquisition
         * thread alone at real-time priority, a busy machine delays the
         * processing, not the reading, and the latency tail grows */
        struct sched_param sp = {
                .sched_priority = cfg->run.rt_priority > 1 ? (int)cfg->run.rt_priority - 1 : 1};
        int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
        if (e && log)
            fprintf(log,
                    "qes run: WARNING: [run] rt_priority: SCHED_FIFO %d for the processing "
                    "thread not permitted (%s); it runs at normal priority\n",
                    sp.sched_priority, strerror(e));
    }
    l->tee.base.ops = &tee_ops;
    l->tee.base.sample_rate_hz = l->acq->sample_rate_hz;
    l->tee.base.n_channels = l->acq->n_channels;
    l->tee.in = l->acq;
    l->tee.log = log;
    l->tee.end = l->is_iio ? l->total_frames : 0; /* the simulator ends by itself */
    *out = l;
    return 0;
}

int qes_live_tee(struct qes_live *l, const char *run_id, const char *config_ini, char *err,
                 size_t errlen)
{
    const struct qes_cfg_run *r = &l->cfg->run;
    if (!r->record_raw[0])
        return 0;
    struct qes_rawtee_desc d = {
            .path = r->record_raw,
            .dtype = l->raw_dtype,
            .sample_rate_hz = l->acq->sample_rate_hz,
            .num_channels = l->acq->n_channels,
            .max_bytes = (uint64_t)llround(r->raw_rotate_mb * 1e6),
            .max_seconds = r->raw_rotate_s,
            .run_id = run_id,
            .config_ini = config_ini,
            .description = l->is_iio ? "qes live run: raw samples from libiio"
                                     : "qes live run: raw samples from the simulator",
    };
    char e[1024];
    int rc = qes_rawtee_open(&d, &l->tee.tee, e, sizeof e);
    if (rc)
        qes_errf(err, errlen, "[run] record_raw = %s: %s", r->record_raw, e);
    return rc;
}

struct qes_source *qes_live_source(struct qes_live *l)
{
    return &l->tee.base;
}

double qes_live_sample_rate(const struct qes_live *l)
{
    return l->acq->sample_rate_hz;
}

uint64_t qes_live_total_frames(const struct qes_live *l)
{
    return l->total_frames;
}

char *qes_live_input_json(const struct qes_live *l)
{
    const struct qes_config *cfg = l->cfg;
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "kind", json_string(cfg->source.kind));
    if (l->is_iio) {
        json_object_set_new(o, "uri", json_string(cfg->source.uri));
        json_object_set_new(o, "device", json_string(cfg->source.device));
    }
    if (cfg->run.record_raw[0])
        json_object_set_new(o, "record_raw", json_string(cfg->run.record_raw));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

void qes_live_finish(struct qes_live *l, struct qes_live_stats *st)
{
    memset(st, 0, sizeof *st);
    struct qes_acq_stats as;
    qes_acq_stats(l->acq, &as);
    st->frames_dropped = as.frames_dropped;
    st->samples_dropped = as.samples_dropped;
    st->device_lost = as.inner_lost;
#ifdef QES_HAVE_IIO
    if (l->is_iio) {
        struct qes_iio_stats is;
        qes_source_iio_stats(qes_acq_inner(l->acq), &is);
        st->device_gaps = is.gaps;
        st->reconnects = is.reconnects;
        st->rate_readback_hz = is.rate_readback_hz;
    }
#endif
    /* stop the acquisition first: nothing reads the device after this */
    qes_source_destroy(l->acq);
    if (l->tee.tee) {
        st->raw_files = qes_rawtee_files(l->tee.tee);
        st->raw_bytes = qes_rawtee_bytes(l->tee.tee);
        char e[1024];
        if (qes_rawtee_close(l->tee.tee, e, sizeof e)) {
            if (l->log && !l->tee.failed)
                fprintf(l->log, "qes run: WARNING: closing the raw recording: %s\n", e);
            l->tee.failed = 1;
        } else {
            st->raw_files++;
        }
    }
    st->raw_failed = l->tee.failed;
    free(l);
}
