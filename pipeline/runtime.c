#include "pipeline/runtime.h"
#include "pipeline/recq.h"
#include "common/err.h"
#include "common/utctime.h"
#include "dsp/gum.h"
#include "dsp/lockin.h"
#include "dsp/sinefit.h"
#include "dsp/steps.h"
#include "dsp/reversal.h"
#include "dsp/demod.h"
#include "dsp/ipdft.h"
#include "dsp/quality.h"
#include "dsp/allan.h"
#include "dsp/calib.h"
#include "dsp/budget.h"
#include "common/ratio.h"
#include "dsp/window.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QES_PI 3.14159265358979323846

/* Samples per channel asked of the source at a time. */
#define QES_RT_CHUNK 65536

struct rt;
struct meas;

/* A growing series of included block results, for the Type A analysis. */
struct series {
    double *v;
    size_t n, cap;
};

static int series_add(struct series *s, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        double *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            return QES_ENOMEM;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return 0;
}

/* What a block method computes from one complete block. */
struct block_out {
    struct qes_phasor ph[QES_LOCKIN_MAX_HARMONICS]; /* PHASOR methods, at the run's origin */
    double freq_hz;                                 /* fundamental used (estimated if auto) */
    double enbw_hz;
    double value, u; /* SCALAR methods */
    double thd, sinad_db, sfdr_db;
    unsigned flags;
};

/*
 * A measurement method.  Block methods get a complete block of n samples
 * (aligned on run sample indices, so that a gap touches only the blocks it
 * overlaps); streaming methods get every contiguous run of samples and emit
 * their own records.
 */
struct method {
    const char *name;
    enum qes_rec_kind kind;
    int streaming;
    int derived; /* computed from other measurements at summary time (ratio) */
    /* set m->n (block methods) and m->st; messages name the measurement */
    int (*create)(struct rt *rt, struct meas *m);
    int (*block)(struct rt *rt, struct meas *m, uint64_t sample_start, struct block_out *o);
    int (*feed)(struct rt *rt, struct meas *m, const double *x, const double *pol, size_t n,
                uint64_t first_sample, int64_t t_ns, int gap_before);
    int (*finish)(struct rt *rt, struct meas *m);
    void (*destroy)(struct meas *m);
};

struct meas {
    const struct qes_cfg_measure *cfg;
    const struct qes_cfg_channel *ch;
    const struct qes_cfg_channel *pol_ch; /* reversal: polarity channel, or NULL */
    const struct method *meth;
    void *st;                    /* method state */
    size_t n;                    /* samples per block (block methods) */
    struct qes_lockin *lockin;   /* fft, dft */
    struct qes_ipdft *ipdft;     /* ipdft, and freq_hz = auto */
    struct qes_quality *quality; /* quality = true */
    double *buf;                 /* n values in the channel's unit */
    double *xs, *ps;             /* streaming scratch: one frame of values / polarity */
    struct qes_scalar_acc sacc;
    uint64_t sexcluded;
    /* included results, for the Type A rule: x and y per harmonic (phasor
     * methods) or the values (scalar methods, in sx[0]) */
    struct series sx[QES_LOCKIN_MAX_HARMONICS], sy[QES_LOCKIN_MAX_HARMONICS];
    struct series sq[QES_LOCKIN_MAX_HARMONICS]; /* their block numbers (phasor) */
    struct qes_cfg_channel pseudo;              /* ratio: unit and no gain */
    struct meas *num, *den;                     /* ratio: its two measurements */
    double tau0_sum;                            /* sum of the included results' durations, s */
    /* calibration chain (phasor methods with a known frequency): the
     * correction of each harmonic's phasor, applied to every block */
    struct qes_calib *cal;
    double cal_x[QES_LOCKIN_MAX_HARMONICS], cal_y[QES_LOCKIN_MAX_HARMONICS];
    int open;       /* a block is being filled */
    uint64_t block; /* index of that block */
    size_t pos;     /* next position to fill */
    size_t valid;   /* samples actually received */
    unsigned flags;
    int64_t t_ns;
    struct qes_phasor_acc acc[QES_LOCKIN_MAX_HARMONICS];
    uint64_t excluded[QES_LOCKIN_MAX_HARMONICS];
    uint64_t summary_seq;
};

/* Latency histogram (see struct qes_runtime_stats): fine bins of LAT_FINE_NS
 * up to LAT_FINE_N of them, then coarse bins of LAT_COARSE_NS. */
#define LAT_FINE_NS   100
#define LAT_FINE_N    10000
#define LAT_COARSE_NS 10000
#define LAT_COARSE_N  10000

struct lat_hist {
    uint64_t fine[LAT_FINE_N], coarse[LAT_COARSE_N], over, n;
    int64_t max_ns;
};

static void lat_add(struct lat_hist *h, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    h->n++;
    if (ns > h->max_ns)
        h->max_ns = ns;
    if (ns < (int64_t)LAT_FINE_NS * LAT_FINE_N)
        h->fine[ns / LAT_FINE_NS]++;
    else if (ns < (int64_t)LAT_COARSE_NS * LAT_COARSE_N)
        h->coarse[ns / LAT_COARSE_NS]++;
    else
        h->over++;
}

/* Upper edge of the bin holding the q-quantile, in us; the max for the top. */
static double lat_quantile_us(const struct lat_hist *h, double q)
{
    if (h->n == 0)
        return NAN;
    uint64_t want = (uint64_t)ceil(q * (double)h->n), seen = 0;
    if (want < 1)
        want = 1;
    for (size_t i = 0; i < LAT_FINE_N; i++) {
        seen += h->fine[i];
        if (seen >= want)
            return fmin(1e-3 * (double)((i + 1) * LAT_FINE_NS), 1e-3 * (double)h->max_ns);
    }
    for (size_t i = 0; i < LAT_COARSE_N; i++) {
        seen += h->coarse[i];
        if (seen >= want)
            return fmin(1e-3 * (double)((i + 1) * LAT_COARSE_NS), 1e-3 * (double)h->max_ns);
    }
    return 1e-3 * (double)h->max_ns;
}

struct rt {
    const struct qes_runtime_desc *d;
    struct qes_recq *q;   /* the recorder thread's queue */
    struct lat_hist *lat; /* live runs */
    int64_t arrival_ns;   /* of the frame being processed; 0 = not live */
    struct qes_runtime_stats *st;
    struct meas *m;
    size_t n_m;
    double fs;
    char *err;
    size_t errlen;
};

static double mono_s(void)
{
    return 1e-9 * (double)qes_mono_ns();
}

int qes_block_samples(const struct qes_cfg_measure *m, double fs_hz, size_t *n, char *err,
                      size_t errlen)
{
    long double x = (long double)m->block_periods * fs_hz / m->freq_hz;
    long double r = roundl(x);
    if (!(r >= 4) || fabsl(x - r) > 1e-9L * x || r > 1e12L) {
        qes_errf(err, errlen,
                 "[measure.%s] block_periods: %u periods of %.17g Hz at %.17g Hz are %.6Lf "
                 "samples; a coherent block needs a whole number of at least 4 samples (choose "
                 "block_periods so that block_periods * fs / freq_hz is an integer)",
                 m->name, m->block_periods, m->freq_hz, fs_hz, x);
        return QES_ECONFIG;
    }
    *n = (size_t)r;
    return 0;
}

static int emit_all(struct rt *rt, int is_summary, const void *rec)
{
    if (rt->q) {
        if (is_summary)
            return qes_recq_summary(rt->q, rec, rt->err, rt->errlen);
        int rc = qes_recq_block(rt->q, rec, rt->err, rt->errlen);
        if (!rc && rt->arrival_ns && rt->lat)
            lat_add(rt->lat, qes_mono_ns() - rt->arrival_ns);
        return rc;
    }
    for (size_t i = 0; i < rt->d->n_recs; i++) {
        struct qes_recorder *r = rt->d->recs[i];
        int rc = is_summary ? r->ops->summary(r, rt->d->run, rec)
                            : r->ops->block(r, rt->d->run, rec);
        if (rc) {
            qes_errf(rt->err, rt->errlen, "%s", r->errmsg[0] ? r->errmsg : qes_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static double wrap_phase(double p)
{
    /* atan2 returns [-pi, pi]; the contract is (-pi, pi] */
    return p == -QES_PI ? QES_PI : p;
}

/* Emit one phasor block record and add it to the harmonic's accumulator
 * when it is to be included.  Shared by block and streaming methods. */
static int emit_phasor(struct rt *rt, struct meas *m, size_t k, uint64_t seq, uint64_t sample_start,
                       uint64_t n_samples, int64_t t_ns, double freq_hz, double x, double y,
                       unsigned flags, double enbw_hz, int include, const struct block_out *q)
{
    const struct qes_cfg_measure *c = m->cfg;
    struct qes_block_rec b = {
            .measure = c->name,
            .channel = c->channel,
            .unit = m->ch->unit,
            .harmonic = c->harmonics[k],
            .seq = seq,
            .sample_start = sample_start,
            .n_samples = n_samples,
            .t_ns = t_ns,
            .freq_hz = freq_hz * c->harmonics[k],
            .x = x,
            .y = y,
            .r = NAN,
            .phase_rad = NAN,
            .flags = flags,
            .kind = QES_REC_PHASOR,
            .value = NAN,
            .u = NAN,
            .enbw_hz = enbw_hz,
            .thd = q ? q->thd : NAN,
            .sinad_db = q ? q->sinad_db : NAN,
            .sfdr_db = q ? q->sfdr_db : NAN,
    };
    if (m->cal && isfinite(x) && isfinite(y)) {
        double cx = m->cal_x[k], cy = m->cal_y[k];
        double xc = x * cx - y * cy, yc = x * cy + y * cx;
        b.x = x = xc;
        b.y = y = yc;
    }
    if (isfinite(x) && isfinite(y)) {
        b.r = hypot(x, y);
        b.phase_rad = wrap_phase(atan2(y, x));
    }
    if (include) {
        qes_phasor_acc_add(&m->acc[k], x, y);
        if (series_add(&m->sx[k], x) || series_add(&m->sy[k], y) ||
            series_add(&m->sq[k], (double)seq))
            return QES_ENOMEM;
        if (k == 0)
            m->tau0_sum += (double)n_samples / rt->fs;
    } else {
        m->excluded[k]++;
    }
    rt->st->blocks++;
    return emit_all(rt, 0, &b);
}

/* The same for a scalar method's block (group, period) record. */
static int emit_scalar(struct rt *rt, struct meas *m, uint64_t seq, uint64_t sample_start,
                       uint64_t n_samples, int64_t t_ns, double value, double u, unsigned flags,
                       int include)
{
    const struct qes_cfg_measure *c = m->cfg;
    struct qes_block_rec b = {
            .measure = c->name,
            .channel = c->channel,
            .unit = m->ch->unit,
            .seq = seq,
            .sample_start = sample_start,
            .n_samples = n_samples,
            .t_ns = t_ns,
            .freq_hz = NAN,
            .x = NAN,
            .y = NAN,
            .r = NAN,
            .phase_rad = NAN,
            .flags = flags,
            .kind = QES_REC_SCALAR,
            .value = value,
            .u = u,
            .enbw_hz = NAN,
            .thd = NAN,
            .sinad_db = NAN,
            .sfdr_db = NAN,
    };
    if (include) {
        qes_scalar_acc_add(&m->sacc, value);
        if (series_add(&m->sx[0], value))
            return QES_ENOMEM;
        m->tau0_sum += (double)n_samples / rt->fs;
    } else {
        m->sexcluded++;
    }
    rt->st->blocks++;
    return emit_all(rt, 0, &b);
}

static void count_flags(struct rt *rt, unsigned flags)
{
    if (flags & QES_FLAG_GAP)
        rt->st->gap_blocks++;
    if (flags & QES_FLAG_CLIP)
        rt->st->clip_blocks++;
    if (flags & QES_FLAG_PARTIAL)
        rt->st->partial_blocks++;
    if (flags & QES_FLAG_QUALITY)
        rt->st->quality_blocks++;
}

static int block_quality(struct rt *rt, struct meas *m, struct block_out *o);

/* Finish the open block of measurement m: the method if complete, records. */
static int finish_block(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_measure *c = m->cfg;
    if (m->valid < m->n) {
        m->flags |= (m->pos < m->n && !(m->flags & QES_FLAG_GAP)) ? QES_FLAG_PARTIAL : 0;
        if (m->valid < m->pos)
            m->flags |= QES_FLAG_GAP;
    }
    int has_value = m->valid == m->n;
    struct block_out o = {.freq_hz = c->freq_hz,
                          .enbw_hz = NAN,
                          .value = NAN,
                          .u = NAN,
                          .thd = NAN,
                          .sinad_db = NAN,
                          .sfdr_db = NAN};
    uint64_t start = m->block * m->n;
    if (has_value) {
        int rc = m->meth->block(rt, m, start, &o);
        if (!rc && m->quality)
            rc = block_quality(rt, m, &o);
        if (rc)
            return rc;
        m->flags |= o.flags;
    }
    count_flags(rt, m->flags);
    unsigned excl = QES_FLAG_CLIP | QES_FLAG_QUALITY;
    int include = has_value && (!(m->flags & excl) || c->include_flagged);
    int rc = 0;
    if (m->meth->kind == QES_REC_SCALAR) {
        rc = emit_scalar(rt, m, m->block, start, m->pos, m->t_ns, has_value ? o.value : NAN,
                         has_value ? o.u : NAN, m->flags, include);
    } else {
        for (size_t k = 0; k < c->n_harmonics && !rc; k++)
            rc = emit_phasor(rt, m, k, m->block, start, m->pos, m->t_ns, o.freq_hz,
                             has_value ? o.ph[k].x : NAN, has_value ? o.ph[k].y : NAN, m->flags,
                             o.enbw_hz, include, &o);
    }
    m->open = 0;
    return rc;
}

static void start_block(struct rt *rt, struct meas *m, uint64_t block, const struct qes_frame *f)
{
    m->open = 1;
    m->block = block;
    m->pos = 0;
    m->valid = 0;
    m->flags = 0;
    int64_t ds = (int64_t)(block * m->n) - (int64_t)f->first_sample;
    m->t_ns = f->host_time_ns + (int64_t)llroundl((long double)ds * 1e9L / rt->fs);
}

/* Copy channel ci of take frames into dst as values, checking for clipping. */
static int extract(const double *restrict src, unsigned nch, size_t take, double gain,
                   double offset, double clip, double *restrict dst)
{
    int clipped = 0;
    if (nch == 1) {
        /* one pass, vectorised: the common single-channel capture */
        const double lim = clip > 0 ? clip : INFINITY;
#pragma omp simd reduction(| : clipped)
        for (size_t k = 0; k < take; k++) {
            double v = src[k];
            clipped |= fabs(v) >= lim;
            dst[k] = gain * v + offset;
        }
        return clipped;
    }
    if (clip > 0) {
        for (size_t k = 0; k < take; k++)
            clipped |= fabs(src[k * nch]) >= clip;
    }
    for (size_t k = 0; k < take; k++)
        dst[k] = gain * src[k * nch] + offset;
    return clipped;
}

static int feed_blocks(struct rt *rt, struct meas *m, const struct qes_frame *f)
{
    const unsigned nch = f->n_channels;
    const unsigned ci = m->ch->index;
    const double gain = qes_cfg_gain(m->ch), offset = m->ch->offset, clip = m->ch->clip_counts;
    size_t i = 0;
    while (i < f->n) {
        uint64_t a = f->first_sample + i;
        uint64_t blk = a / m->n;
        size_t off = (size_t)(a % m->n);
        if (m->open && (m->block != blk || m->pos != off)) {
            /* samples are missing between the open block's fill point and a */
            m->flags |= QES_FLAG_GAP;
            if (m->block != blk) {
                m->pos = m->n;
                int rc = finish_block(rt, m);
                if (rc)
                    return rc;
            } else {
                m->pos = off;
            }
        }
        if (!m->open) {
            start_block(rt, m, blk, f);
            if (off) {
                m->flags |= QES_FLAG_GAP;
                m->pos = off;
            }
        }
        size_t take = m->n - off;
        if (take > f->n - i)
            take = f->n - i;
        if (extract(f->samples + i * nch + ci, nch, take, gain, offset, clip, m->buf + off))
            m->flags |= QES_FLAG_CLIP;
        m->pos = off + take;
        m->valid += take;
        i += take;
        if (m->pos == m->n) {
            int rc = finish_block(rt, m);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int feed_stream(struct rt *rt, struct meas *m, const struct qes_frame *f)
{
    const unsigned nch = f->n_channels;
    const struct qes_cfg_channel *ch = m->ch, *pc = m->pol_ch;
    int clipped = extract(f->samples + ch->index, nch, f->n, qes_cfg_gain(ch), ch->offset,
                          ch->clip_counts, m->xs);
    if (pc)
        extract(f->samples + pc->index, nch, f->n, qes_cfg_gain(pc), pc->offset, 0, m->ps);
    if (clipped)
        rt->st->clip_blocks++; /* streaming methods flag their own outputs */
    return m->meth->feed(rt, m, m->xs, pc ? m->ps : NULL, f->n, f->first_sample, f->host_time_ns,
                         f->lost_before > 0);
}

static int process_frame(struct rt *rt, const struct qes_frame *f)
{
    for (size_t mi = 0; mi < rt->n_m; mi++) {
        struct meas *m = &rt->m[mi];
        if (m->meth->derived)
            continue;
        int rc = m->meth->streaming ? feed_stream(rt, m, f) : feed_blocks(rt, m, f);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- methods ----------------------------------------------------------------- */

static int lockin_create(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_measure *c = m->cfg;
    int rc = qes_block_samples(c, rt->fs, &m->n, rt->err, rt->errlen);
    if (rc)
        return rc;
    struct qes_lockin_desc ld = {
            .method = strcmp(c->method, "dft") ? QES_LOCKIN_FFT : QES_LOCKIN_DFT,
            .n = m->n,
            .periods = c->block_periods,
            .harmonics = c->harmonics,
            .n_harmonics = c->n_harmonics,
            .kaiser_beta = c->kaiser_beta,
    };
    if (qes_window_from_name(c->window, &ld.window)) {
        qes_errf(rt->err, rt->errlen, "[measure.%s] window: \"%s\" is not available for method %s",
                 c->name, c->window, c->method);
        return QES_ECONFIG;
    }
    rc = qes_lockin_create(&ld, &m->lockin);
    if (rc) {
        unsigned hmax = 0;
        for (size_t k = 0; k < ld.n_harmonics; k++)
            hmax = ld.harmonics[k] > hmax ? ld.harmonics[k] : hmax;
        qes_errf(rt->err, rt->errlen,
                 "[measure.%s] harmonics: cannot measure harmonic %u of %.17g Hz in blocks of "
                 "%zu samples at %.17g Hz with window %s (each harmonic bin h*block_periods, "
                 "widened by the window's leakage, must lie strictly between DC and Nyquist "
                 "and apart from the others): %s",
                 c->name, hmax, c->freq_hz, m->n, rt->fs, c->window, qes_strerror(rc));
        return rc == QES_EINVAL ? QES_ECONFIG : rc;
    }
    return 0;
}

static int lockin_block(struct rt *rt, struct meas *m, uint64_t sample_start, struct block_out *o)
{
    int rc = qes_lockin_execute(m->lockin, m->buf, sample_start, o->ph);
    if (rc) {
        qes_errf(rt->err, rt->errlen, "[measure.%s]: lock-in failed: %s", m->cfg->name,
                 qes_strerror(rc));
        return rc;
    }
    o->enbw_hz = qes_lockin_enbw_bins(m->lockin) * rt->fs / (double)m->n;
    return 0;
}

static void lockin_destroy(struct meas *m)
{
    qes_lockin_destroy(m->lockin);
    m->lockin = NULL;
}

/* ---- non-coherent methods: common block length and reference phase ------------ */

/* Block length of a non-coherent method: block_samples, or block_periods
 * periods of freq_hz rounded to whole samples. */
static int noncoherent_samples(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_measure *c = m->cfg;
    if (c->block_samples) {
        m->n = c->block_samples;
        return 0;
    }
    long double x = roundl((long double)c->block_periods * rt->fs / c->freq_hz);
    if (!(x >= 8) || x > 1e12L) {
        qes_errf(rt->err, rt->errlen,
                 "[measure.%s] block_periods: %u periods of %.17g Hz at %.17g Hz give %.0Lf "
                 "samples; a block needs at least 8",
                 c->name, c->block_periods, c->freq_hz, rt->fs, x);
        return QES_ECONFIG;
    }
    m->n = (size_t)x;
    return 0;
}

/*
 * Reference phase 2 pi h f t0 (mod 2 pi) of the run sample `start`, exact in
 * integers when f/fs is a ratio p/q (q <= 1e9), otherwise in long double
 * (about 1e-19 relative to the number of cycles elapsed).
 */
static double ref_phase(double f_hz, double fs_hz, unsigned h, uint64_t start)
{
    uint64_t p, q;
    if (qes_ratio_approx(f_hz / fs_hz, 1000000000u, 1e-15, &p, &q) == 0 && q > 0) {
        uint64_t hp = qes_mulmod_u64(h, p, q);
        uint64_t k = qes_mulmod_u64(hp, start % q, q);
        return 2 * QES_PI * (double)k / (double)q;
    }
    long double cyc = (long double)h * f_hz * (long double)start / fs_hz;
    cyc -= floorl(cyc);
    return (double)(2 * 3.14159265358979323846264338327950288L * cyc);
}

/* Rotate a phasor given at the block's first sample to the run's origin. */
static void to_run_origin(struct qes_phasor *ph, double theta)
{
    double c = cos(theta), sn = sin(theta);
    double x = ph->x * c + ph->y * sn, y = ph->y * c - ph->x * sn;
    ph->x = x;
    ph->y = y;
}

static int estimate_freq(struct rt *rt, struct meas *m, double *f_hz);

static int sinefit_create(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_measure *c = m->cfg;
    int rc = noncoherent_samples(rt, m);
    if (rc)
        return rc;
    struct qes_sinefit_desc d = {
            .n_max = m->n,
            .fs_hz = rt->fs,
            .kind = strcmp(c->method, "sinefit4") ? QES_SINEFIT_KNOWN_FREQ : QES_SINEFIT_FIT_FREQ,
            .harmonics = c->harmonics,
            .n_harmonics = c->n_harmonics,
    };
    rc = qes_sinefit_create(&d, (struct qes_sinefit **)&m->st);
    if (rc) {
        qes_errf(rt->err, rt->errlen,
                 "[measure.%s]: cannot make a %s fit of %zu harmonic(s) over %zu samples: %s",
                 c->name, c->method, c->n_harmonics, m->n, qes_strerror(rc));
        return QES_ECONFIG;
    }
    return 0;
}

static int sinefit_block(struct rt *rt, struct meas *m, uint64_t start, struct block_out *o)
{
    const struct qes_cfg_measure *c = m->cfg;
    struct qes_sinefit_result res;
    double f0 = c->freq_hz;
    int rc = 0;
    if (c->freq_hz == QES_CFG_AUTO_D)
        rc = estimate_freq(rt, m, &f0);
    if (rc && rc != QES_ERANGE)
        return rc;
    if (!rc)
        rc = qes_sinefit_execute(m->st, m->buf, m->n, f0, &res);
    if (rc == QES_ERANGE) {
        /* no convergence, or a degenerate block: a block without a value */
        o->flags |= QES_FLAG_UNLOCKED;
        for (size_t k = 0; k < c->n_harmonics; k++)
            o->ph[k].x = o->ph[k].y = NAN;
        return 0;
    }
    if (rc) {
        qes_errf(rt->err, rt->errlen, "[measure.%s]: %s fit failed: %s", c->name, c->method,
                 qes_strerror(rc));
        return rc;
    }
    o->freq_hz = res.f_hz;
    o->enbw_hz = rt->fs / (double)m->n; /* least squares over n samples: one bin */
    for (size_t k = 0; k < c->n_harmonics; k++) {
        o->ph[k].x = res.tone[k].x;
        o->ph[k].y = res.tone[k].y;
        if (c->freq_hz == QES_CFG_AUTO_D) {
            /* no reference frequency: the amplitude only (phase at each block's start) */
            o->ph[k].x = res.tone[k].r;
            o->ph[k].y = 0;
        } else {
            to_run_origin(&o->ph[k], ref_phase(c->freq_hz, rt->fs, c->harmonics[k], start));
        }
    }
    return 0;
}

static void sinefit_destroy(struct meas *m)
{
    qes_sinefit_destroy(m->st);
    m->st = NULL;
}

/* ---- steps: AC-PJVS differential sampling ------------------------------------- */

static int steps_create(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_measure *c = m->cfg;
    int rc = qes_block_samples(c, rt->fs, &m->n, rt->err, rt->errlen);
    if (rc)
        return rc;
    int auto_mask = c->mask_after == QES_CFG_AUTO_U || c->mask_before == QES_CFG_AUTO_U;
    struct qes_steps_desc d = {
            .fs_hz = rt->fs,
            .freq_hz = c->freq_hz,
            .steps_per_period = c->steps_per_period,
            .f_j_hz = c->f_j_hz,
            .steps = c->steps,
            .n_steps = c->n_steps,
            .mask_after = auto_mask ? 0 : c->mask_after,
            .mask_before = auto_mask ? 0 : c->mask_before,
            .auto_mask = auto_mask,
            .n = m->n,
    };
    rc = qes_steps_create(&d, (struct qes_steps **)&m->st);
    if (rc) {
        qes_errf(rt->err, rt->errlen,
                 "[measure.%s] steps: cannot process %u steps per period of %.17g Hz at %.17g Hz "
                 "(samples per step must be a whole number; masks must leave samples in every "
                 "step; junction counts whole numbers): %s",
                 c->name, c->steps_per_period, c->freq_hz, rt->fs, qes_strerror(rc));
        return QES_ECONFIG;
    }
    return 0;
}

static int steps_block(struct rt *rt, struct meas *m, uint64_t start, struct block_out *o)
{
    (void)start;
    struct qes_steps_result res;
    int rc = qes_steps_execute(m->st, m->buf, &res);
    if (rc) {
        qes_errf(rt->err, rt->errlen, "[measure.%s]: steps processing failed: %s", m->cfg->name,
                 qes_strerror(rc));
        return rc;
    }
    o->value = res.rms;
    o->u = res.u;
    return 0;
}

static void steps_destroy(struct meas *m)
{
    qes_steps_destroy(m->st);
    m->st = NULL;
}

/* ---- reversal: DC polarity reversals ------------------------------------------ */

#define REV_OUT 16

struct rev_state {
    struct qes_reversal *r;
    struct qes_reversal_group out[REV_OUT];
    uint64_t t0_sample; /* a sample whose UTC is t0_ns */
    int64_t t0_ns;
};

static int rev_create(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_measure *c = m->cfg;
    struct rev_state *st = calloc(1, sizeof *st);
    if (!st)
        return QES_ENOMEM;
    m->st = st;
    struct qes_reversal_desc d = {
            .fs_hz = rt->fs,
            .half_period_s = c->half_period_s,
            .settle_s = c->settle_s,
    };
    int rc = qes_reversal_pattern_parse(c->pattern, &d.pattern);
    if (!rc)
        rc = qes_reversal_create(&d, &st->r);
    if (rc) {
        qes_errf(rt->err, rt->errlen,
                 "[measure.%s] settle_s: cannot process reversals with pattern %s, half period "
                 "%.17g s and settling %.17g s at %.17g Hz (settling must be shorter than a "
                 "half period): %s",
                 c->name, c->pattern, c->half_period_s, c->settle_s, rt->fs, qes_strerror(rc));
        return QES_ECONFIG;
    }
    return 0;
}

static int rev_emit(struct rt *rt, struct meas *m, size_t n_out)
{
    struct rev_state *st = m->st;
    for (size_t i = 0; i < n_out; i++) {
        const struct qes_reversal_group *g = &st->out[i];
        unsigned flags = 0;
        if (g->flags & QES_REVERSAL_GAP)
            flags |= QES_FLAG_GAP;
        if (g->flags & QES_REVERSAL_PARTIAL)
            flags |= QES_FLAG_PARTIAL;
        if (g->flags & (QES_REVERSAL_SHORT | QES_REVERSAL_SEQUENCE))
            flags |= QES_FLAG_UNLOCKED;
        count_flags(rt, flags);
        int64_t ds = (int64_t)g->sample_start - (int64_t)st->t0_sample;
        int64_t t = st->t0_ns + (int64_t)llroundl((long double)ds * 1e9L / rt->fs);
        int rc = emit_scalar(rt, m, g->index, g->sample_start, g->n_samples, t, g->value, NAN,
                             flags, flags == 0 && isfinite(g->value));
        if (rc)
            return rc;
    }
    return 0;
}

static int rev_feed(struct rt *rt, struct meas *m, const double *x, const double *pol, size_t n,
                    uint64_t first, int64_t t_ns, int gap_before)
{
    struct rev_state *st = m->st;
    st->t0_sample = first;
    st->t0_ns = t_ns;
    if (gap_before) {
        int rc = qes_reversal_gap(st->r);
        if (rc)
            return rc;
    }
    size_t done = 0;
    while (done < n) {
        size_t n_out = 0;
        int64_t used = qes_reversal_execute(st->r, x + done, pol ? pol + done : NULL, n - done,
                                            first + done, st->out, REV_OUT, &n_out);
        if (used < 0) {
            qes_errf(rt->err, rt->errlen, "[measure.%s]: reversal processing failed: %s",
                     m->cfg->name, qes_strerror((int)used));
            return (int)used;
        }
        int rc = rev_emit(rt, m, n_out);
        if (rc)
            return rc;
        done += (size_t)used;
    }
    return 0;
}

static int rev_finish(struct rt *rt, struct meas *m)
{
    struct rev_state *st = m->st;
    size_t n_out = 0;
    int rc = qes_reversal_finish(st->r, st->out, REV_OUT, &n_out);
    if (rc) {
        qes_errf(rt->err, rt->errlen, "[measure.%s]: reversal processing failed: %s", m->cfg->name,
                 qes_strerror(rc));
        return rc;
    }
    return rev_emit(rt, m, n_out);
}

static void rev_destroy(struct meas *m)
{
    struct rev_state *st = m->st;
    if (st)
        qes_reversal_destroy(st->r);
    free(st);
    m->st = NULL;
}

/* ---- demod: streaming dual-phase demodulator --------------------------------- */

/*
 * Outputs of a low-pass filter are correlated over ~order * tau, so their
 * scatter is no Type A.  The summary uses batch means instead: consecutive
 * non-settling outputs are averaged over batches of at least 10 * order * tau
 * (and one output), whose means are nearly independent; the Type A is the
 * standard deviation of the mean of the batch means, with n_batches - 1 dof.
 */
struct demod_state {
    struct qes_demod *d[QES_LOCKIN_MAX_HARMONICS];
    struct qes_demod_out *out;
    size_t max_out;
    double enbw_hz;
    uint64_t decimation;
    uint64_t batch_len; /* outputs per batch */
    uint64_t batch_n[QES_LOCKIN_MAX_HARMONICS];
    double batch_x[QES_LOCKIN_MAX_HARMONICS], batch_y[QES_LOCKIN_MAX_HARMONICS];
    int gap_pending; /* flag the first output after a gap */
};

static int demod_create(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_measure *c = m->cfg;
    struct demod_state *st = calloc(1, sizeof *st);
    if (!st)
        return QES_ENOMEM;
    m->st = st;
    for (size_t k = 0; k < c->n_harmonics; k++) {
        struct qes_demod_desc d = {
                .fs_hz = rt->fs,
                .freq_hz = c->freq_hz,
                .harmonic = c->harmonics[k],
                .order = c->order,
                .tau_s = c->tau_s,
                .output_rate_hz = c->output_rate_hz,
                .sinc_periods = c->sinc_periods,
                .settle_tau = c->settle_tau,
        };
        int rc = qes_demod_create(&d, &st->d[k]);
        if (rc) {
            qes_errf(rt->err, rt->errlen,
                     "[measure.%s] output_rate_hz: cannot demodulate harmonic %u of %.17g Hz at "
                     "%.17g Hz with output rate %.17g Hz, tau %.17g s, order %u, sinc_periods %u "
                     "(fs / output_rate_hz must be an integer; freq_hz / fs a ratio of integers; "
                     "sinc periods whole samples): %s",
                     c->name, c->harmonics[k], c->freq_hz, rt->fs, c->output_rate_hz, c->tau_s,
                     c->order, c->sinc_periods, qes_strerror(rc));
            return QES_ECONFIG;
        }
    }
    struct qes_demod_info info;
    qes_demod_get_info(st->d[0], &info);
    st->decimation = info.decimation;
    st->enbw_hz = qes_demod_enbw_discrete_hz(st->d[0]);
    double out_s = (double)info.decimation / rt->fs;
    double need = 10.0 * c->order * c->tau_s;
    st->batch_len = need > out_s ? (uint64_t)ceil(need / out_s) : 1;
    st->max_out = qes_demod_max_outputs(st->d[0], QES_RT_CHUNK);
    st->out = malloc(st->max_out * sizeof *st->out);
    return st->out ? 0 : QES_ENOMEM;
}

static int demod_feed(struct rt *rt, struct meas *m, const double *x, const double *pol, size_t n,
                      uint64_t first, int64_t t_ns, int gap_before)
{
    (void)pol;
    struct demod_state *st = m->st;
    const struct qes_cfg_measure *c = m->cfg;
    if (gap_before)
        st->gap_pending = 1;
    for (size_t k = 0; k < c->n_harmonics; k++) {
        size_t n_out = 0;
        int rc = qes_demod_execute(st->d[k], x, n, first, st->out, st->max_out, &n_out);
        if (rc == QES_ERANGE) {
            /* not the continuation of the stream (a gap): restart, settle again */
            rc = qes_demod_reset(st->d[k]);
            st->batch_n[k] = 0;
            st->batch_x[k] = st->batch_y[k] = 0;
            if (!rc)
                rc = qes_demod_execute(st->d[k], x, n, first, st->out, st->max_out, &n_out);
        }
        if (rc) {
            qes_errf(rt->err, rt->errlen, "[measure.%s]: demodulator failed: %s", c->name,
                     qes_strerror(rc));
            return rc;
        }
        for (size_t i = 0; i < n_out; i++) {
            const struct qes_demod_out *o = &st->out[i];
            unsigned flags = (o->flags & QES_DEMOD_SETTLING) ? QES_FLAG_SETTLING : 0;
            if (st->gap_pending && k == 0 && i == 0)
                flags |= QES_FLAG_GAP;
            uint64_t start = o->sample + 1 - st->decimation;
            int64_t t = t_ns + (int64_t)llroundl(((long double)start - (long double)first) * 1e9L /
                                                 rt->fs);
            if (!flags) {
                st->batch_x[k] += o->x;
                st->batch_y[k] += o->y;
                if (++st->batch_n[k] == st->batch_len) {
                    double bn = (double)st->batch_n[k];
                    qes_phasor_acc_add(&m->acc[k], st->batch_x[k] / bn, st->batch_y[k] / bn);
                    if (series_add(&m->sx[k], st->batch_x[k] / bn) ||
                        series_add(&m->sy[k], st->batch_y[k] / bn) ||
                        series_add(&m->sq[k], (double)(o->sample / st->decimation)))
                        return QES_ENOMEM;
                    if (k == 0)
                        m->tau0_sum += bn * (double)st->decimation / rt->fs;
                    st->batch_n[k] = 0;
                    st->batch_x[k] = st->batch_y[k] = 0;
                }
            }
            count_flags(rt, flags & QES_FLAG_GAP);
            rc = emit_phasor(rt, m, k, o->sample / st->decimation, start, st->decimation, t,
                             c->freq_hz, o->x, o->y, flags, st->enbw_hz, 0, NULL);
            if (rc)
                return rc;
            /* emit_phasor counted it as excluded: batches feed the summary */
            m->excluded[k] -= 1;
            if (flags)
                m->excluded[k] += 1;
        }
    }
    st->gap_pending = 0;
    return 0;
}

static void demod_destroy(struct meas *m)
{
    struct demod_state *st = m->st;
    if (st) {
        for (size_t k = 0; k < QES_LOCKIN_MAX_HARMONICS; k++)
            qes_demod_destroy(st->d[k]);
        free(st->out);
    }
    free(st);
    m->st = NULL;
}

/* ---- ipdft: interpolated DFT (Hann, 3 points) --------------------------------- */

static int ipdft_create(struct rt *rt, struct meas *m)
{
    return noncoherent_samples(rt, m);
}

static int ipdft_block(struct rt *rt, struct meas *m, uint64_t start, struct block_out *o)
{
    const struct qes_cfg_measure *c = m->cfg;
    int is_auto = c->freq_hz == QES_CFG_AUTO_D;
    double f0 = c->freq_hz;
    int rc = 0;
    if (is_auto)
        rc = estimate_freq(rt, m, &f0);
    if (rc && rc != QES_ERANGE)
        return rc;
    o->freq_hz = f0;
    o->enbw_hz = 1.5 * rt->fs / (double)m->n; /* Hann */
    for (size_t k = 0; k < c->n_harmonics && !rc; k++) {
        double hint = (double)c->harmonics[k] * f0 * (double)m->n / rt->fs;
        struct qes_ipdft_result res;
        rc = qes_ipdft_execute(m->ipdft, m->buf, (size_t)llround(hint), &res);
        if (rc)
            break;
        if (k == 0 && is_auto)
            o->freq_hz = res.freq_hz;
        if (is_auto) {
            o->ph[k].x = res.r; /* no reference: amplitude only */
            o->ph[k].y = 0;
        } else {
            o->ph[k].x = res.r * cos(res.phase_rad);
            o->ph[k].y = res.r * sin(res.phase_rad);
            to_run_origin(&o->ph[k], ref_phase(c->freq_hz, rt->fs, c->harmonics[k], start));
        }
    }
    if (rc == QES_ERANGE) {
        o->flags |= QES_FLAG_UNLOCKED;
        for (size_t k = 0; k < c->n_harmonics; k++)
            o->ph[k].x = o->ph[k].y = NAN;
        return 0;
    }
    if (rc)
        qes_errf(rt->err, rt->errlen, "[measure.%s]: interpolated DFT failed: %s", c->name,
                 qes_strerror(rc));
    return rc;
}

static void no_state(struct meas *m)
{
    (void)m;
}

static int calib_terms(struct rt *rt, struct meas *m, size_t k, struct qes_summary_rec *s);

/* ---- ratio: complex ratio of two measurements, times a quantum value -------------- */

static int ratio_create(struct rt *rt, struct meas *m)
{
    (void)rt;
    (void)m;
    return 0;
}

static int find_harmonic(const struct meas *m, unsigned h)
{
    for (size_t k = 0; k < m->cfg->n_harmonics; k++)
        if (m->cfg->harmonics[k] == h)
            return (int)k;
    return -1;
}

/* Relative Type B of a measurement's summary at harmonic index k: every
 * budget term but typeA, relative to r (gain, calibration chain, Type B). */
static double rel_typeb(struct rt *rt, struct meas *m, size_t k, const char *only)
{
    struct qes_summary_rec s = {.measure = m->cfg->name,
                                .freq_hz = m->cfg->freq_hz * m->cfg->harmonics[k]};
    double ug = m->cal ? 0 : m->ch->u_gain_rel;
    if (qes_phasor_summarize(&m->acc[k], ug, 0.95, &s.s) || !(s.s.r > 0))
        return 0;
    if (m->cal && calib_terms(rt, m, k, &s))
        return 0;
    double u2 = 0;
    for (size_t i = 1; i < s.s.n_budget; i++)
        if (!only || (s.s.budget[i].name && !strcmp(s.s.budget[i].name, only)))
            u2 += s.s.budget[i].u * s.s.budget[i].u;
    return sqrt(u2) / s.s.r;
}

/*
 * Summary of a ratio measurement at harmonic h: blocks of the numerator and
 * the denominator with the same block number are paired (both unflagged);
 * the means of (x1, y1, x2, y2) over the pairs and the covariance of those
 * means (n - 1 dof) give Z = P1 / P2 with the correlation between the
 * channels carried through (dsp/calib.h qes_cratio_compute).  The value is
 * Z times the quantum reference Q (pjvs: n f_J / K_J, qhr: R_K / i, none: 1):
 * x, y, r, phase of Q Z.  Budget of r: typeA (the scatter), gain (both
 * channels' gain and any other Type B term but the frequency response, which
 * is listed apart), freqresp, reference (u(f_J)), and [typeb] components.
 */
static int ratio_summary(struct rt *rt, struct meas *m, size_t k, struct qes_summary_rec *s)
{
    const struct qes_cfg_measure *c = m->cfg;
    unsigned h = c->harmonics[k];
    int kn = find_harmonic(m->num, h), kd = find_harmonic(m->den, h);
    struct qes_phasor_summary *p = &s->s;
    p->x = p->y = p->r = p->phase_rad = p->u_x = p->u_y = p->u_r = p->u_phase_rad = NAN;
    p->dof = p->k = p->U_r = NAN;
    p->coverage = c->coverage;
    if (kn < 0 || kd < 0) {
        qes_errf(rt->err, rt->errlen,
                 "[measure.%s] harmonics: harmonic %u is not measured by both %s and %s", c->name,
                 h, c->numerator, c->denominator);
        return QES_ECONFIG;
    }
    s->freq_hz = m->num->cfg->freq_hz * h;
    const struct series *x1 = &m->num->sx[kn], *y1 = &m->num->sy[kn], *q1 = &m->num->sq[kn];
    const struct series *x2 = &m->den->sx[kd], *y2 = &m->den->sy[kd], *q2 = &m->den->sq[kd];
    size_t cap = x1->n < x2->n ? x1->n : x2->n, n = 0;
    double *d = malloc((cap ? cap : 1) * 4 * sizeof *d);
    if (!d)
        return QES_ENOMEM;
    for (size_t i = 0, j = 0; i < x1->n && j < x2->n;) {
        if (q1->v[i] < q2->v[j]) {
            i++;
        } else if (q2->v[j] < q1->v[i]) {
            j++;
        } else {
            double *row = d + 4 * n++;
            row[0] = x1->v[i];
            row[1] = y1->v[i];
            row[2] = x2->v[j];
            row[3] = y2->v[j];
            i++;
            j++;
        }
    }
    p->n = n;
    s->n_excluded = (x1->n - n) + (x2->n - n);
    if (n < 2) {
        free(d);
        s->flags |= QES_FLAG_FEW_BLOCKS;
        return 0;
    }
    double mean[4], cov[16];
    int rc = qes_mean_cov(d, n, 4, mean, cov);
    free(d);
    struct qes_cratio z;
    if (!rc)
        rc = qes_cratio_compute(mean[0], mean[1], mean[2], mean[3], cov, &z);
    if (rc) {
        qes_errf(rt->err, rt->errlen,
                 "[measure.%s]: the ratio %s / %s at harmonic %u cannot be formed (a zero or "
                 "non-finite phasor): %s",
                 c->name, c->numerator, c->denominator, h, qes_strerror(rc));
        return QES_ECONFIG;
    }
    double q = 1, u_q = 0;
    if (!strcmp(c->reference, "pjvs")) {
        rc = qes_pjvs_voltage((long)c->pjvs_n, c->f_j_hz, c->u_fj_rel, &q, &u_q);
    } else if (!strcmp(c->reference, "qhr")) {
        rc = qes_qhr_resistance((int)c->qhr_plateau, &q);
    }
    if (rc) {
        qes_errf(rt->err, rt->errlen, "[measure.%s] reference: bad quantum reference: %s", c->name,
                 qes_strerror(rc));
        return QES_ECONFIG;
    }
    double aq = fabs(q);
    p->x = z.re * q;
    p->y = z.im * q;
    p->r = z.abs * aq;
    p->phase_rad = z.arg;
    double uA = z.u_abs * aq;
    double g = sqrt(pow(rel_typeb(rt, m->num, (size_t)kn, "gain"), 2) +
                    pow(rel_typeb(rt, m->den, (size_t)kd, "gain"), 2));
    double fr = sqrt(pow(rel_typeb(rt, m->num, (size_t)kn, "freqresp"), 2) +
                     pow(rel_typeb(rt, m->den, (size_t)kd, "freqresp"), 2));
    size_t nb = 0;
    p->budget[nb++] = (struct qes_budget_term){"typeA", uA, (double)n - 1};
    p->budget[nb++] = (struct qes_budget_term){"gain", g * p->r, INFINITY};
    if (m->num->cal || m->den->cal)
        p->budget[nb++] = (struct qes_budget_term){"freqresp", fr * p->r, INFINITY};
    if (strcmp(c->reference, "none"))
        p->budget[nb++] = (struct qes_budget_term){"reference", u_q * z.abs, INFINITY};
    p->n_budget = nb;
    double u2 = 0;
    for (size_t i = 0; i < nb; i++)
        u2 += p->budget[i].u * p->budget[i].u;
    p->u_r = sqrt(u2);
    p->u_phase_rad = z.u_arg;
    p->u_x = sqrt(pow(z.u_re * aq, 2) + pow((g + fr) * p->x, 2));
    p->u_y = sqrt(pow(z.u_im * aq, 2) + pow((g + fr) * p->y, 2));
    p->dof = qes_ws_dof(p->budget, nb);
    p->k = qes_coverage_factor(p->coverage, p->dof);
    p->U_r = p->k * p->u_r;
    return 0;
}

static const struct method methods[] = {
        {.name = "fft",
         .kind = QES_REC_PHASOR,
         .create = lockin_create,
         .block = lockin_block,
         .destroy = lockin_destroy},
        {.name = "dft",
         .kind = QES_REC_PHASOR,
         .create = lockin_create,
         .block = lockin_block,
         .destroy = lockin_destroy},
        {.name = "sinefit3",
         .kind = QES_REC_PHASOR,
         .create = sinefit_create,
         .block = sinefit_block,
         .destroy = sinefit_destroy},
        {.name = "steps",
         .kind = QES_REC_SCALAR,
         .create = steps_create,
         .block = steps_block,
         .destroy = steps_destroy},
        {.name = "reversal",
         .kind = QES_REC_SCALAR,
         .streaming = 1,
         .create = rev_create,
         .feed = rev_feed,
         .finish = rev_finish,
         .destroy = rev_destroy},
        {.name = "demod",
         .kind = QES_REC_PHASOR,
         .streaming = 1,
         .create = demod_create,
         .feed = demod_feed,
         .destroy = demod_destroy},
        {.name = "ipdft",
         .kind = QES_REC_PHASOR,
         .create = ipdft_create,
         .block = ipdft_block,
         .destroy = no_state},
        {.name = "ratio",
         .kind = QES_REC_PHASOR,
         .derived = 1,
         .create = ratio_create,
         .destroy = no_state},
        {.name = "sinefit4",
         .kind = QES_REC_PHASOR,
         .create = sinefit_create,
         .block = sinefit_block,
         .destroy = sinefit_destroy},
};

/* Frequency of the strongest tone of the block (freq_hz = auto), by the
 * interpolated DFT. */
static int estimate_freq(struct rt *rt, struct meas *m, double *f_hz)
{
    int rc = qes_ipdft_strongest_hz(m->ipdft, m->buf, f_hz);
    if (rc && rc != QES_ERANGE) {
        qes_errf(rt->err, rt->errlen, "[measure.%s]: frequency estimate failed: %s", m->cfg->name,
                 qes_strerror(rc));
        return rc;
    }
    return rc; /* QES_ERANGE: no tone; the caller flags the block */
}

/* The interpolated DFT (method ipdft, freq_hz = auto) and the quality
 * figures (quality = true) of a block method. */
static int make_helpers(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_measure *c = m->cfg;
    int rc = 0;
    if (!strcmp(c->method, "ipdft") || c->freq_hz == QES_CFG_AUTO_D) {
        struct qes_ipdft_desc d = {
                .n = m->n, .fs_hz = rt->fs, .window = QES_WINDOW_HANN, .points = 3};
        rc = qes_ipdft_create(&d, &m->ipdft);
        if (rc) {
            qes_errf(rt->err, rt->errlen,
                     "[measure.%s] block_samples: the interpolated DFT needs blocks of at least "
                     "16 samples (%zu): %s",
                     c->name, m->n, qes_strerror(rc));
            return QES_ECONFIG;
        }
    }
    if (c->quality && m->meth->kind == QES_REC_PHASOR) {
        struct qes_quality_desc d = {.n = m->n, .fs_hz = rt->fs, .kaiser_beta = c->kaiser_beta};
        qes_window_from_name(c->window, &d.window);
        rc = qes_quality_create(&d, &m->quality);
        if (rc) {
            qes_errf(rt->err, rt->errlen,
                     "[measure.%s] quality: cannot analyse %zu-sample "
                     "blocks: %s",
                     c->name, m->n, qes_strerror(rc));
            return QES_ECONFIG;
        }
    }
    return 0;
}

/* THD, SINAD, SFDR of a block, and the quality flag when a bound is crossed. */
static int block_quality(struct rt *rt, struct meas *m, struct block_out *o)
{
    const struct qes_cfg_measure *c = m->cfg;
    struct qes_quality_result q;
    int rc = qes_quality_execute(m->quality, m->buf, o->freq_hz, &q);
    if (rc == QES_ERANGE)
        return 0; /* no fundamental to refer to: no figures */
    if (rc) {
        qes_errf(rt->err, rt->errlen, "[measure.%s]: quality figures failed: %s", c->name,
                 qes_strerror(rc));
        return rc;
    }
    o->thd = q.thd;
    o->sinad_db = q.sinad_db;
    o->sfdr_db = q.sfdr_db;
    if ((c->thd_max > 0 && q.thd > c->thd_max) ||
        (c->sinad_min_db > 0 && q.sinad_db < c->sinad_min_db) ||
        (c->sfdr_min_db > 0 && q.sfdr_db < c->sfdr_min_db))
        o->flags |= QES_FLAG_QUALITY;
    return 0;
}

static const struct method *find_method(const char *name)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(methods[i].name, name))
            return &methods[i];
    return NULL;
}

static void fmt_value_u(FILE *out, const char *name, double v, double U, const char *unit);
static void fmt_dof(double dof, char *buf, size_t len);

static void fmt_human(FILE *out, const struct qes_summary_rec *s)
{
    const struct qes_phasor_summary *p = &s->s;
    fprintf(out, "%-10s %-8s h%-2u %10.6g Hz  ", s->measure, s->channel, s->harmonic, s->freq_hz);
    if (p->n == 0) {
        fprintf(out, "no value: no block (or batch of outputs) was complete and unflagged\n");
        return;
    }
    if (!isfinite(p->U_r) || p->U_r <= 0) {
        fprintf(out, "r = %.9g %s  (no uncertainty: %llu block(s))\n", p->r, s->unit,
                (unsigned long long)p->n);
        return;
    }
    char dof[32];
    fmt_dof(p->dof, dof, sizeof dof);
    fmt_value_u(out, "r", p->r, p->U_r, s->unit);
    fprintf(out, "  (k = %.2f, dof = %s, p = %g %%)  phase = %.6f rad  n = %llu%s\n", p->k, dof,
            100 * p->coverage, p->phase_rad, (unsigned long long)p->n,
            s->n_excluded ? "  (some blocks excluded)" : "");
}

/* Print "r = ... U = ..." with U to two significant digits and the value to
 * the same decimal place. */
static void fmt_value_u(FILE *out, const char *name, double v, double U, const char *unit)
{
    int e = (int)floor(log10(U)) - 1;
    int dec = e < 0 ? -e : 0;
    if (dec <= 15) {
        double q = pow(10.0, e);
        fprintf(out, "%s = %.*f %s  U = %.*f %s", name, dec, round(v / q) * q, unit, dec,
                round(U / q) * q, unit);
    } else {
        fprintf(out, "%s = %.3e %s  U = %.1e %s", name, v, unit, U, unit);
    }
}

static void fmt_dof(double dof, char *buf, size_t len)
{
    if (isfinite(dof) && dof < 1e6)
        snprintf(buf, len, "%.0f", dof);
    else if (isfinite(dof))
        snprintf(buf, len, "%.1e", dof);
    else
        snprintf(buf, len, "inf");
}

static void add_typeb(struct rt *rt, struct meas *m, unsigned harmonic, double value,
                      struct qes_budget_term *budget, size_t *n_budget, double *u, double *dof,
                      double *k, double *U, double coverage);
static int mc_check(struct rt *rt, struct meas *m, size_t k, struct qes_summary_rec *s);
static int typeA_scalar(struct meas *m, struct qes_summary_rec *s);

static int scalar_summary(struct rt *rt, struct meas *m, int final)
{
    const struct qes_cfg_measure *c = m->cfg;
    struct qes_summary_rec s = {
            .measure = c->name,
            .channel = c->channel,
            .unit = m->ch->unit,
            .seq = m->summary_seq,
            .freq_hz = NAN,
            .n_excluded = m->sexcluded,
            .kind = QES_REC_SCALAR,
    };
    if (m->sacc.n > 0) {
        int rc = qes_scalar_summarize(&m->sacc, "gain", m->ch->u_gain_rel, c->coverage, &s.v);
        if (rc) {
            qes_errf(rt->err, rt->errlen, "[measure.%s]: summary failed: %s", c->name,
                     qes_strerror(rc));
            return rc;
        }
    } else {
        s.v.value = s.v.u = s.v.dof = s.v.k = s.v.U = NAN;
        s.v.coverage = c->coverage;
    }
    if (m->sacc.n < 2)
        s.flags |= QES_FLAG_FEW_BLOCKS;
    if (m->sexcluded)
        s.flags |= QES_FLAG_EXCLUDED;
    int rc = m->sacc.n > 0 ? typeA_scalar(m, &s) : 0;
    if (rc)
        return rc;
    if (m->sacc.n > 0)
        add_typeb(rt, m, 0, s.v.value, s.v.budget, &s.v.n_budget, &s.v.u, &s.v.dof, &s.v.k, &s.v.U,
                  s.v.coverage);
    if (final && rt->d->mc_trials && m->sacc.n > 1) {
        rc = mc_check(rt, m, 0, &s);
        if (rc)
            return rc;
    }
    rc = emit_all(rt, 1, &s);
    if (rc || !final || !rt->d->human)
        return rc;
    FILE *out = rt->d->human;
    fprintf(out, "%-10s %-8s %-8s ", s.measure, s.channel, c->method);
    if (!isfinite(s.v.U) || s.v.U <= 0) {
        fprintf(out, "value = %.9g %s  (no uncertainty: %llu value(s))\n", s.v.value, s.unit,
                (unsigned long long)s.v.n);
        return 0;
    }
    char dof[32];
    fmt_dof(s.v.dof, dof, sizeof dof);
    fmt_value_u(out, "value", s.v.value, s.v.U, s.unit);
    fprintf(out, "  (k = %.2f, dof = %s, p = %g %%)  n = %llu%s\n", s.v.k, dof, 100 * s.v.coverage,
            (unsigned long long)s.v.n, s.n_excluded ? "  (some excluded)" : "");
    return 0;
}

/*
 * Type A that fits the noise.  The summary's Type A is the standard deviation
 * of the mean of the block results (n - 1 dof) when they scatter like white
 * noise; when the Allan analysis of the series (dsp/allan.h,
 * qes_mean_uncertainty: noise type identified by the lag-1 autocorrelation,
 * OADEV extrapolated to the run's averaging time) finds them not white, the
 * larger Allan-based uncertainty with its EDF replaces it, the summary is
 * flagged `nonwhite`, and the rule with its numbers goes into the budget.
 * With [measure] typeA_horizon_s longer than the run, the Allan-based term
 * also covers the octaves between the run and that horizon
 * (qes_mean_uncertainty_h).
 * tau0 is the mean duration of the included results.  Fewer than 16 results
 * cannot tell the noise type: the white rule stays.
 */
#define TYPEA_MIN_N 16

static int nonwhite_u(const struct meas *m, const double *v, size_t n, double tau0,
                      struct qes_mean_unc *mu)
{
    double *work = malloc(qes_allan_work_len(n) * sizeof *work);
    if (!work)
        return QES_ENOMEM;
    int rc = qes_mean_uncertainty_h(v, n, tau0, m->cfg->typeA_horizon_s, work, mu);
    free(work);
    return rc;
}

static int typeA_phasor(struct meas *m, size_t k, struct qes_summary_rec *s)
{
    struct qes_phasor_summary *p = &s->s;
    size_t n = m->sx[k].n;
    if (n < TYPEA_MIN_N || !(p->r > 0))
        return 0;
    double tau0 = m->tau0_sum / (double)n;
    /* components along and across the mean phasor: their means give u_r and
     * r u_phase */
    double *along = malloc(2 * n * sizeof *along);
    if (!along)
        return QES_ENOMEM;
    double *across = along + n, cx = p->x / p->r, cy = p->y / p->r;
    for (size_t i = 0; i < n; i++) {
        along[i] = m->sx[k].v[i] * cx + m->sy[k].v[i] * cy;
        across[i] = m->sy[k].v[i] * cx - m->sx[k].v[i] * cy;
    }
    struct qes_mean_unc ua, uc, ux, uy;
    int rc = nonwhite_u(m, along, n, tau0, &ua);
    if (!rc)
        rc = nonwhite_u(m, across, n, tau0, &uc);
    if (!rc)
        rc = nonwhite_u(m, m->sx[k].v, n, tau0, &ux);
    if (!rc)
        rc = nonwhite_u(m, m->sy[k].v, n, tau0, &uy);
    free(along);
    if (rc == QES_ERANGE)
        return 0; /* a constant series: nothing to analyse */
    if (rc)
        return rc;
    if (!ua.nonwhite && !uc.nonwhite)
        return 0;
    double ub_r = p->n_budget > 1 ? p->budget[1].u : 0; /* the gain term */
    double g = ub_r / p->r;
    p->budget[0].u = ua.u;
    p->budget[0].dof = ua.dof;
    p->u_r = sqrt(ua.u * ua.u + ub_r * ub_r);
    p->u_phase_rad = uc.u / p->r;
    p->u_x = sqrt(ux.u * ux.u + pow(g * p->x, 2));
    p->u_y = sqrt(uy.u * uy.u + pow(g * p->y, 2));
    p->dof = qes_ws_dof(p->budget, p->n_budget);
    p->k = qes_coverage_factor(p->coverage, p->dof);
    p->U_r = p->k * p->u_r;
    snprintf(p->typeA_rule, sizeof p->typeA_rule, "%s", ua.rule);
    s->flags |= QES_FLAG_NONWHITE;
    return 0;
}

static int typeA_scalar(struct meas *m, struct qes_summary_rec *s)
{
    struct qes_scalar_summary *v = &s->v;
    size_t n = m->sx[0].n;
    if (n < TYPEA_MIN_N)
        return 0;
    struct qes_mean_unc mu;
    int rc = nonwhite_u(m, m->sx[0].v, n, m->tau0_sum / (double)n, &mu);
    if (rc == QES_ERANGE)
        return 0;
    if (rc)
        return rc;
    if (!mu.nonwhite)
        return 0;
    v->budget[0].u = mu.u;
    v->budget[0].dof = mu.dof;
    double ub = v->n_budget > 1 ? v->budget[1].u : 0;
    v->u = sqrt(mu.u * mu.u + ub * ub);
    v->dof = qes_ws_dof(v->budget, v->n_budget);
    v->k = qes_coverage_factor(v->coverage, v->dof);
    v->U = v->k * v->u;
    snprintf(v->typeA_rule, sizeof v->typeA_rule, "%s", mu.rule);
    s->flags |= QES_FLAG_NONWHITE;
    return 0;
}

/*
 * The calibration chain's terms in a phasor summary: the chain (gain,
 * frequency response, aperture, time base, delay; dsp/calib.h) is evaluated
 * at the harmonic's frequency on the uncorrected mean phasor, its terms
 * replace the summary's plain gain term, and u_r, u_phase, dof, k and U are
 * combined again.  Block values were corrected already (emit_phasor).
 */
static int calib_terms(struct rt *rt, struct meas *m, size_t k, struct qes_summary_rec *s)
{
    struct qes_phasor_summary *p = &s->s;
    double cx = m->cal_x[k], cy = m->cal_y[k], d = cx * cx + cy * cy;
    /* undo the correction: raw = corrected / c */
    double rx = (p->x * cx + p->y * cy) / d, ry = (p->y * cx - p->x * cy) / d;
    struct qes_calib_result res;
    int rc = qes_calib_apply(m->cal, s->freq_hz, rx, ry, &res);
    if (rc) {
        qes_errf(rt->err, rt->errlen,
                 "[channel.%s]: calibration at %.17g Hz failed (outside the frequency "
                 "response table?): %s",
                 m->ch->name, s->freq_hz, qes_strerror(rc));
        return QES_ECONFIG;
    }
    double uA_r = p->budget[0].u, uA_ph = p->u_phase_rad;
    /* p->u_phase_rad holds the Type A phase term only (no gain term) */
    size_t n = 1; /* keep typeA, drop the zero gain term */
    double ur2 = uA_r * uA_r, up2 = isfinite(uA_ph) ? uA_ph * uA_ph : 0;
    for (size_t i = 0; i < res.n_terms && n < QES_BUDGET_MAX; i++) {
        p->budget[n++] =
                (struct qes_budget_term){res.terms[i].name, res.terms[i].u_r, res.terms[i].dof};
        ur2 += res.terms[i].u_r * res.terms[i].u_r;
        up2 += res.terms[i].u_phase_rad * res.terms[i].u_phase_rad;
    }
    p->n_budget = n;
    p->u_r = sqrt(ur2);
    p->u_phase_rad = sqrt(up2);
    p->u_x = sqrt(p->u_x * p->u_x + res.cov_xy[0]);
    p->u_y = sqrt(p->u_y * p->u_y + res.cov_xy[2]);
    p->dof = qes_ws_dof(p->budget, p->n_budget);
    p->k = qes_coverage_factor(p->coverage, p->dof);
    p->U_r = p->k * p->u_r;
    return 0;
}

/* Read a frequency-response CSV (f_hz, gain_rel, u_gain_rel, phase_rad,
 * u_phase_rad; # comments) into a table.  Relative paths are taken from the
 * configuration file's folder. */
static int load_freq_response(struct rt *rt, const struct qes_cfg_channel *ch,
                              struct qes_freqresp **out)
{
    char path[8192];
    const char *cfgp = rt->d->cfg->path;
    const char *slash = strrchr(cfgp, '/');
    if (ch->freq_response[0] != '/' && slash && access(cfgp, F_OK) == 0)
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - cfgp), cfgp, ch->freq_response);
    else
        snprintf(path, sizeof path, "%s", ch->freq_response);
    FILE *f = fopen(path, "r");
    if (!f) {
        qes_errf(rt->err, rt->errlen, "[channel.%s] freq_response: cannot open %s", ch->name, path);
        return QES_ECONFIG;
    }
    enum { MAXR = 4096 };
    double *col = malloc(5 * MAXR * sizeof *col);
    if (!col) {
        fclose(f);
        return QES_ENOMEM;
    }
    size_t n = 0;
    int line = 0, rc = 0;
    char buf[1024];
    while (fgets(buf, sizeof buf, f)) {
        line++;
        char *p = buf;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\0' ||
            (line == 1 && (*p < '0' || *p > '9') && *p != '-' && *p != '+' && *p != '.'))
            continue; /* comment, blank, or a header row */
        double v[5];
        int got = sscanf(p, "%lf , %lf , %lf , %lf , %lf", &v[0], &v[1], &v[2], &v[3], &v[4]);
        if (got != 5 || n == MAXR) {
            qes_errf(rt->err, rt->errlen,
                     "%s:%d: expected 5 comma-separated numbers (f_hz, gain_rel, u_gain_rel, "
                     "phase_rad, u_phase_rad)%s",
                     path, line, n == MAXR ? " (too many rows)" : "");
            rc = QES_ECONFIG;
            break;
        }
        for (int j = 0; j < 5; j++)
            col[j * MAXR + n] = v[j];
        n++;
    }
    fclose(f);
    if (!rc) {
        rc = qes_freqresp_create(col, col + MAXR, col + 2 * MAXR, col + 3 * MAXR, col + 4 * MAXR, n,
                                 INFINITY, out);
        if (rc) {
            qes_errf(rt->err, rt->errlen,
                     "%s: not a usable frequency response (at least 2 rows, increasing f_hz, "
                     "positive gains, non-negative uncertainties): %s",
                     path, qes_strerror(rc));
            rc = QES_ECONFIG;
        }
    }
    free(col);
    return rc;
}

/* Make the calibration chain of a phasor measurement when its channel has one. */
static int make_calib(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_channel *ch = m->ch;
    const struct qes_cfg_measure *c = m->cfg;
    int has = ch->freq_response[0] || ch->aperture_s > 0 || ch->u_aperture_s > 0 ||
              ch->u_timebase_rel > 0 || ch->delay_s != 0 || ch->u_delay_s > 0;
    if (!has || m->meth->kind != QES_REC_PHASOR)
        return 0;
    if (c->freq_hz == QES_CFG_AUTO_D) {
        qes_errf(rt->err, rt->errlen,
                 "[measure.%s] freq_hz: channel %s has a calibration chain, which needs a known "
                 "frequency (not auto)",
                 c->name, ch->name);
        return QES_ECONFIG;
    }
    struct qes_freqresp *fr = NULL;
    if (ch->freq_response[0]) {
        int rc = load_freq_response(rt, ch, &fr);
        if (rc)
            return rc;
    }
    struct qes_calib_desc d = {
            .gain = {1.0, ch->u_gain_rel, INFINITY},
            .fr = fr,
            .aperture_s = {ch->aperture_s, ch->u_aperture_s, INFINITY},
            .aperture_ref = !strcmp(ch->aperture_ref, "ends")     ? QES_APERTURE_ENDS
                            : !strcmp(ch->aperture_ref, "starts") ? QES_APERTURE_STARTS
                                                                  : QES_APERTURE_CENTRED,
            .timebase_rel = {0, ch->u_timebase_rel, INFINITY},
            .delay_s = {ch->delay_s, ch->u_delay_s, INFINITY},
    };
    int rc = qes_calib_create(&d, &m->cal);
    qes_freqresp_destroy(fr);
    if (rc) {
        qes_errf(rt->err, rt->errlen, "[channel.%s]: bad calibration chain: %s", ch->name,
                 qes_strerror(rc));
        return QES_ECONFIG;
    }
    for (size_t k = 0; k < c->n_harmonics; k++) {
        struct qes_calib_result res;
        double f = c->freq_hz * c->harmonics[k];
        rc = qes_calib_apply(m->cal, f, 1.0, 0.0, &res);
        if (rc) {
            qes_errf(rt->err, rt->errlen,
                     "[channel.%s]: no calibration at %.17g Hz (harmonic %u of [measure.%s]): "
                     "outside the frequency response table, or beyond the aperture's first "
                     "zero: %s",
                     ch->name, f, c->harmonics[k], c->name, qes_strerror(rc));
            return QES_ECONFIG;
        }
        m->cal_x[k] = res.x;
        m->cal_y[k] = res.y;
    }
    return 0;
}

/*
 * The [typeb.NAME] components of the configuration that apply to this
 * summary: each gives |c| u(x), with u(x) from its distribution (normal u/k;
 * rectangular a/sqrt3; triangular a/sqrt6; U-shaped a/sqrt2), relative to
 * |value| when asked.  They are appended to the budget and combined by root
 * sum of squares (uncorrelated), with Welch-Satterthwaite degrees of freedom.
 */
static void add_typeb(struct rt *rt, struct meas *m, unsigned harmonic, double value,
                      struct qes_budget_term *budget, size_t *n_budget, double *u, double *dof,
                      double *k, double *U, double coverage)
{
    const struct qes_config *cfg = rt->d->cfg;
    int added = 0;
    double u2 = *u * *u;
    for (size_t i = 0; i < cfg->n_typeb && *n_budget < QES_BUDGET_MAX; i++) {
        const struct qes_cfg_typeb *t = &cfg->typeb[i];
        if (strcmp(t->measure, m->cfg->name) || (t->harmonic && t->harmonic != harmonic))
            continue;
        double ux;
        if (!strcmp(t->distribution, "normal"))
            ux = t->u / t->k;
        else if (!strcmp(t->distribution, "rectangular"))
            ux = t->half_width / sqrt(3.0);
        else if (!strcmp(t->distribution, "triangular"))
            ux = t->half_width / sqrt(6.0);
        else
            ux = t->half_width / sqrt(2.0);
        if (t->relative)
            ux *= fabs(value);
        double ui = fabs(t->sensitivity) * ux;
        budget[(*n_budget)++] =
                (struct qes_budget_term){t->name, ui, t->dof > 0 ? t->dof : INFINITY};
        u2 += ui * ui;
        added = 1;
    }
    if (!added || !isfinite(*u))
        return;
    *u = sqrt(u2);
    *dof = qes_ws_dof(budget, *n_budget);
    *k = qes_coverage_factor(coverage, *dof);
    *U = *k * *u;
}

/*
 * Monte Carlo check of a final summary (GUM Supplement 1, --mc N): the
 * same model propagated by sampling.  Phasor: r = |(x, y)| * prod(1 + d_i),
 * with x, y the mean phasor (Student t with the Type A dof, correlated as
 * their scatter), and each Type B term a relative deviation d_i: uniform,
 * triangular or arcsine for [typeb] components of those distributions, else
 * normal.  Scalar: value + sum of the Type B terms as additive deviations.
 * Reports the standard deviation and the shortest coverage interval next to
 * the analytic U, so a user can see where the linearisation holds.
 */
static enum qes_unc_kind mc_kind(struct rt *rt, const char *name, double *half, double value,
                                 double u)
{
    const struct qes_config *cfg = rt->d->cfg;
    for (size_t i = 0; i < cfg->n_typeb; i++) {
        const struct qes_cfg_typeb *t = &cfg->typeb[i];
        if (!name || strcmp(t->name, name) || !strcmp(t->distribution, "normal"))
            continue;
        *half = fabs(t->sensitivity) * t->half_width * (t->relative ? fabs(value) : 1);
        return !strcmp(t->distribution, "rectangular")  ? QES_UNC_RECT
               : !strcmp(t->distribution, "triangular") ? QES_UNC_TRIANG
                                                        : QES_UNC_ARCSINE;
    }
    *half = u;
    return QES_UNC_STANDARD;
}

struct mc_model_ctx {
    int phasor;
    size_t n_in;
};

static int mc_eval(const double *x, double *y, void *ctx)
{
    const struct mc_model_ctx *c = ctx;
    double v = c->phasor ? hypot(x[0], x[1]) : x[0];
    for (size_t i = c->phasor ? 2 : 1; i < c->n_in; i++)
        v = c->phasor ? v * (1 + x[i]) : v + x[i];
    y[0] = v;
    return 0;
}

static int mc_check(struct rt *rt, struct meas *m, size_t k, struct qes_summary_rec *s)
{
    int phasor = s->kind == QES_REC_PHASOR;
    const struct qes_budget_term *b = phasor ? s->s.budget : s->v.budget;
    size_t nb = phasor ? s->s.n_budget : s->v.n_budget;
    double value = phasor ? s->s.r : s->v.value;
    if (nb < 1 || !isfinite(value) || !isfinite(b[0].u) || m->meth->derived)
        return 0;
    enum { NMAX = QES_BUDGET_MAX + 2 };
    struct qes_input in[NMAX];
    double corr[NMAX * NMAX];
    size_t n_in = 0;
    double dofA = b[0].dof > 0 ? b[0].dof : INFINITY, rho = 0;
    if (phasor) {
        const struct qes_phasor_acc *a = &m->acc[k];
        double nn = (double)a->n;
        double sx = sqrt(a->m2_xx / (nn - 1) / nn), sy = sqrt(a->m2_yy / (nn - 1) / nn);
        rho = sx > 0 && sy > 0 ? a->m2_xy / (nn - 1) / nn / (sx * sy) : 0;
        /* the Type A term may have been widened by the noise rule */
        double white = hypot(s->s.x * sx, s->s.y * sy) / s->s.r;
        double scale = white > 0 ? b[0].u / white : 1;
        if (!(scale >= 1))
            scale = 1;
        in[n_in++] = (struct qes_input){"x", s->s.x, QES_UNC_STANDARD, sx * scale, 0, 1, dofA};
        in[n_in++] = (struct qes_input){"y", s->s.y, QES_UNC_STANDARD, sy * scale, 0, 1, dofA};
    } else {
        in[n_in++] = (struct qes_input){"value", value, QES_UNC_STANDARD, b[0].u, 0, 1, dofA};
    }
    for (size_t i = 1; i < nb && n_in < NMAX; i++) {
        double half;
        enum qes_unc_kind kind = mc_kind(rt, b[i].name, &half, value, b[i].u);
        if (phasor)
            half /= value; /* relative deviation */
        in[n_in++] = (struct qes_input){b[i].name, 0, kind, half, 0, 1, b[i].dof};
    }
    memset(corr, 0, sizeof corr);
    for (size_t i = 0; i < n_in; i++)
        corr[i * n_in + i] = 1;
    if (phasor)
        corr[1] = corr[n_in] = rho;
    struct mc_model_ctx ctx = {phasor, n_in};
    struct qes_model model = {mc_eval, &ctx, n_in, 1};
    struct qes_mc_desc d = {.trials = rt->d->mc_trials,
                            .seed = 20191120,
                            .coverage = phasor ? s->s.coverage : s->v.coverage};
    struct qes_mc_stat st;
    int rc = qes_mc_propagate(&model, in, corr, &d, &st, NULL);
    if (rc) {
        qes_errf(rt->err, rt->errlen, "[measure.%s]: Monte Carlo check failed: %s", m->cfg->name,
                 qes_strerror(rc));
        return rc;
    }
    if (phasor) {
        s->s.mc_trials = rt->d->mc_trials;
        s->s.mc_u = st.u;
        s->s.mc_lo = st.lo;
        s->s.mc_hi = st.hi;
    } else {
        s->v.mc_trials = rt->d->mc_trials;
        s->v.mc_u = st.u;
        s->v.mc_lo = st.lo;
        s->v.mc_hi = st.hi;
    }
    return 0;
}

static int summaries(struct rt *rt, int final)
{
    for (size_t mi = 0; mi < rt->n_m; mi++) {
        struct meas *m = &rt->m[mi];
        const struct qes_cfg_measure *c = m->cfg;
        if (m->meth->kind == QES_REC_SCALAR) {
            int rc = scalar_summary(rt, m, final);
            if (rc)
                return rc;
            m->summary_seq++;
            continue;
        }
        for (size_t k = 0; k < c->n_harmonics; k++) {
            struct qes_summary_rec s = {
                    .measure = c->name,
                    .channel = c->channel,
                    .unit = m->ch->unit,
                    .harmonic = c->harmonics[k],
                    .seq = m->summary_seq,
                    .freq_hz = c->freq_hz * c->harmonics[k],
                    .n_excluded = m->excluded[k],
            };
            if (m->meth->derived) {
                int rc = ratio_summary(rt, m, k, &s);
                if (rc)
                    return rc;
                add_typeb(rt, m, c->harmonics[k], s.s.r, s.s.budget, &s.s.n_budget, &s.s.u_r,
                          &s.s.dof, &s.s.k, &s.s.U_r, s.s.coverage);
                rc = emit_all(rt, 1, &s);
                if (rc)
                    return rc;
                if (final && rt->d->human)
                    fmt_human(rt->d->human, &s);
                continue;
            }
            if (m->acc[k].n > 0) {
                /* with a calibration chain the gain term comes from the chain */
                double ug = m->cal ? 0 : m->ch->u_gain_rel;
                int rc = qes_phasor_summarize(&m->acc[k], ug, c->coverage, &s.s);
                if (rc) {
                    qes_errf(rt->err, rt->errlen, "[measure.%s]: summary failed: %s", c->name,
                             qes_strerror(rc));
                    return rc;
                }
            } else {
                s.s.x = s.s.y = s.s.r = s.s.phase_rad = NAN;
                s.s.u_x = s.s.u_y = s.s.u_r = s.s.u_phase_rad = NAN;
                s.s.dof = s.s.k = s.s.U_r = NAN;
                s.s.coverage = c->coverage;
            }
            if (m->acc[k].n < 2)
                s.flags |= QES_FLAG_FEW_BLOCKS;
            if (m->excluded[k])
                s.flags |= QES_FLAG_EXCLUDED;
            int rc = m->acc[k].n > 0 ? typeA_phasor(m, k, &s) : 0;
            if (!rc && m->cal && m->acc[k].n > 0)
                rc = calib_terms(rt, m, k, &s);
            if (rc)
                return rc;
            if (m->acc[k].n > 0)
                add_typeb(rt, m, c->harmonics[k], s.s.r, s.s.budget, &s.s.n_budget, &s.s.u_r,
                          &s.s.dof, &s.s.k, &s.s.U_r, s.s.coverage);
            if (final && rt->d->mc_trials && m->acc[k].n > 1) {
                rc = mc_check(rt, m, k, &s);
                if (rc)
                    return rc;
            }
            rc = emit_all(rt, 1, &s);
            if (rc)
                return rc;
            if (final && rt->d->human)
                fmt_human(rt->d->human, &s);
        }
        m->summary_seq++;
    }
    return 0;
}

static void progress(struct rt *rt, double t0, int done)
{
    FILE *p = rt->d->progress;
    double dt = mono_s() - t0;
    double rate = dt > 0 ? (double)rt->st->frames / dt : 0;
    if (rt->d->total_frames)
        fprintf(p, "\r%5.1f %%  %llu of %llu samples  %.3g samples/s per channel%s",
                100.0 * (double)rt->st->frames / (double)rt->d->total_frames,
                (unsigned long long)rt->st->frames, (unsigned long long)rt->d->total_frames, rate,
                done ? "\n" : "");
    else
        fprintf(p, "\r%llu samples  %.3g samples/s per channel%s",
                (unsigned long long)rt->st->frames, rate, done ? "\n" : "");
    fflush(p);
}

int qes_runtime_execute(const struct qes_runtime_desc *d, struct qes_runtime_stats *st, char *err,
                        size_t errlen)
{
    memset(st, 0, sizeof *st);
    st->latency_p50_us = st->latency_p99_us = st->latency_max_us = NAN;
    const struct qes_config *cfg = d->cfg;
    struct rt rt = {.d = d, .st = st, .fs = d->src->sample_rate_hz, .err = err, .errlen = errlen};
    int rc = 0, src_rc = 0;
    rt.m = calloc(cfg->n_measure ? cfg->n_measure : 1, sizeof *rt.m);
    if (!rt.m)
        return QES_ENOMEM;
    if (d->live) {
        rt.lat = calloc(1, sizeof *rt.lat);
        if (!rt.lat) {
            free(rt.m);
            return QES_ENOMEM;
        }
    }
    rt.n_m = cfg->n_measure;
    size_t max_block = 0;
    for (size_t i = 0; i < rt.n_m; i++) {
        struct meas *m = &rt.m[i];
        m->cfg = &cfg->measure[i];
        if (!strcmp(m->cfg->method, "ratio")) {
            /* no channel of its own: unit from the reference, gain terms from
             * the two channels */
            snprintf(m->pseudo.name, sizeof m->pseudo.name, "(ratio)");
            snprintf(m->pseudo.unit, sizeof m->pseudo.unit, "%s",
                     !strcmp(m->cfg->reference, "pjvs")  ? "V"
                     : !strcmp(m->cfg->reference, "qhr") ? "ohm"
                                                         : "1");
            m->ch = &m->pseudo;
        } else {
            m->ch = qes_config_channel(cfg, m->cfg->channel);
        }
        if (!m->ch) {
            qes_errf(err, errlen, "[measure.%s] channel: no [channel.%s]", m->cfg->name,
                     m->cfg->channel);
            rc = QES_ECONFIG;
            goto out;
        }
        if (m->ch != &m->pseudo && m->ch->index >= d->src->n_channels) {
            qes_errf(err, errlen,
                     "[channel.%s] index: %u, but the source has %u channel(s) (indices 0..%u)",
                     m->ch->name, m->ch->index, d->src->n_channels, d->src->n_channels - 1);
            rc = QES_ECONFIG;
            goto out;
        }
        m->meth = find_method(m->cfg->method);
        if (!m->meth) {
            qes_errf(err, errlen, "[measure.%s] method: %s is not available in this build",
                     m->cfg->name, m->cfg->method);
            rc = QES_ECONFIG;
            goto out;
        }
        if (m->cfg->polarity_channel[0] && !strcmp(m->cfg->method, "reversal") &&
            m->cfg->half_period_s == 0) {
            m->pol_ch = qes_config_channel(cfg, m->cfg->polarity_channel);
            if (!m->pol_ch || m->pol_ch->index >= d->src->n_channels) {
                qes_errf(err, errlen,
                         "[measure.%s] polarity_channel: [channel.%s] is not a channel of the "
                         "source",
                         m->cfg->name, m->cfg->polarity_channel);
                rc = QES_ECONFIG;
                goto out;
            }
        }
        for (size_t k = 0; k < m->cfg->n_harmonics; k++)
            qes_phasor_acc_reset(&m->acc[k]);
        qes_scalar_acc_reset(&m->sacc);
        rc = m->meth->create(&rt, m);
        if (rc)
            goto out;
        if (!m->meth->streaming && !m->meth->derived) {
            rc = make_helpers(&rt, m);
            if (rc)
                goto out;
        }
        rc = make_calib(&rt, m);
        if (rc)
            goto out;
        if (m->meth->derived) {
            /* nothing to allocate */
        } else if (m->meth->streaming) {
            m->xs = malloc(QES_RT_CHUNK * sizeof *m->xs);
            m->ps = malloc(QES_RT_CHUNK * sizeof *m->ps);
            if (!m->xs || !m->ps) {
                rc = QES_ENOMEM;
                goto out;
            }
        } else {
            m->buf = malloc(m->n * sizeof *m->buf);
            if (!m->buf) {
                rc = QES_ENOMEM;
                goto out;
            }
        }
        max_block = m->n > max_block ? m->n : max_block;
    }

    for (size_t i = 0; i < rt.n_m; i++) {
        struct meas *m = &rt.m[i];
        if (!m->meth->derived)
            continue;
        for (size_t j = 0; j < rt.n_m; j++) {
            if (!strcmp(rt.m[j].cfg->name, m->cfg->numerator))
                m->num = &rt.m[j];
            if (!strcmp(rt.m[j].cfg->name, m->cfg->denominator))
                m->den = &rt.m[j];
        }
        if (!m->num || !m->den || m->num->meth->kind != QES_REC_PHASOR ||
            m->den->meth->kind != QES_REC_PHASOR || m->num->meth->derived ||
            m->den->meth->derived) {
            qes_errf(err, errlen,
                     "[measure.%s] numerator: a ratio needs two phasor measurements "
                     "(fft, dft, sinefit3/4, ipdft, demod)",
                     m->cfg->name);
            rc = QES_ECONFIG;
            goto out;
        }
    }

    for (size_t i = 0; i < d->n_recs; i++) {
        rc = d->recs[i]->ops->run(d->recs[i], d->run);
        if (rc) {
            qes_errf(err, errlen, "%s", d->recs[i]->errmsg);
            goto out;
        }
    }

    rc = qes_recq_start(d->recs, d->n_recs, d->run, 4096, &rt.q);
    if (rc) {
        qes_errf(err, errlen, "cannot start the recorder thread: %s", qes_strerror(rc));
        goto out;
    }

    double t0 = mono_s(), last_prog = t0, last_sum = t0;
    size_t chunk = QES_RT_CHUNK;
    struct qes_frame f;
    for (;;) {
        if (d->stop && *d->stop)
            break;
        int r = qes_source_read(d->src, &f, chunk);
        if (r < 0) {
            qes_errf(err, errlen, "%s", d->src->errmsg[0] ? d->src->errmsg : qes_strerror(r));
            if (!d->live) {
                rc = r;
                goto out;
            }
            /* a live source failed: what was measured still gets its summaries */
            src_rc = r;
            st->source_failed = 1;
            break;
        }
        if (r == 0)
            break;
        rt.arrival_ns = f.arrival_ns;
        if (f.lost_before) {
            st->lost += f.lost_before;
            st->gaps++;
        }
        rc = process_frame(&rt, &f);
        if (rc)
            goto out;
        st->frames += f.n;
        double now = mono_s();
        if (d->progress && now - last_prog >= 0.5) {
            progress(&rt, t0, 0);
            last_prog = now;
        }
        if (d->live && cfg->run.summary_every_s > 0 && now - last_sum >= cfg->run.summary_every_s) {
            rc = summaries(&rt, 0);
            if (rc)
                goto out;
            last_sum = now;
        }
    }
    for (size_t i = 0; i < rt.n_m; i++) {
        struct meas *m = &rt.m[i];
        if (m->meth->streaming && m->meth->finish)
            rc = m->meth->finish(&rt, m);
        else if (!m->meth->streaming && m->open)
            rc = finish_block(&rt, m);
        if (rc)
            goto out;
    }
    rt.arrival_ns = 0; /* blocks completed at the end are not latency samples */
    st->seconds = mono_s() - t0;
    if (d->progress)
        progress(&rt, t0, 1);
    rc = summaries(&rt, 1);
    if (!rc && src_rc)
        rc = src_rc; /* err already holds the source's message */
out:
    if (rt.q) {
        /* drain what was queued even after an error, so that every record
         * computed reaches the sinks */
        char qerr[1024];
        int qrc = qes_recq_finish(rt.q, qerr, sizeof qerr);
        if (qrc && !rc) {
            rc = qrc;
            qes_errf(err, errlen, "%s", qerr);
        }
    }
    for (size_t i = 0; i < rt.n_m; i++) {
        struct meas *m = &rt.m[i];
        if (m->meth && m->meth->destroy)
            m->meth->destroy(m);
        qes_ipdft_destroy(m->ipdft);
        qes_calib_destroy(m->cal);
        qes_quality_destroy(m->quality);
        for (size_t k = 0; k < QES_LOCKIN_MAX_HARMONICS; k++) {
            free(m->sx[k].v);
            free(m->sy[k].v);
            free(m->sq[k].v);
        }
        free(m->buf);
        free(m->xs);
        free(m->ps);
    }
    free(rt.m);
    if (rt.lat) {
        st->latency_n = rt.lat->n;
        st->latency_p50_us = lat_quantile_us(rt.lat, 0.50);
        st->latency_p99_us = lat_quantile_us(rt.lat, 0.99);
        st->latency_max_us = rt.lat->n ? 1e-3 * (double)rt.lat->max_ns : NAN;
        free(rt.lat);
    }
    (void)max_block;
    return rc;
}
