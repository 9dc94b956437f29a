#include "pipeline/runtime.h"
#include "common/err.h"
#include "common/utctime.h"
#include "dsp/gum.h"
#include "dsp/lockin.h"
#include "dsp/window.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QES_PI 3.14159265358979323846

struct meas {
    const struct qes_cfg_measure *cfg;
    const struct qes_cfg_channel *ch;
    size_t n;                  /* samples per block */
    struct qes_lockin *lockin; /* NULL when the block is too short to hold the harmonics */
    double *buf;               /* n values in the channel's unit */
    int open;                  /* a block is being filled */
    uint64_t block;            /* index of that block */
    size_t pos;                /* next position to fill */
    size_t valid;              /* samples actually received */
    unsigned flags;
    int64_t t_ns;
    struct qes_phasor ph[QES_LOCKIN_MAX_HARMONICS];
    struct qes_phasor_acc acc[QES_LOCKIN_MAX_HARMONICS];
    uint64_t excluded[QES_LOCKIN_MAX_HARMONICS];
    uint64_t summary_seq;
};

struct rt {
    const struct qes_runtime_desc *d;
    struct qes_runtime_stats *st;
    struct meas *m;
    size_t n_m;
    double fs;
    char *err;
    size_t errlen;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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

/* Finish the open block of measurement m: lock-in if complete, records. */
static int finish_block(struct rt *rt, struct meas *m)
{
    const struct qes_cfg_measure *c = m->cfg;
    if (m->valid < m->n) {
        m->flags |= (m->pos < m->n && !(m->flags & QES_FLAG_GAP)) ? QES_FLAG_PARTIAL : 0;
        if (m->valid < m->pos)
            m->flags |= QES_FLAG_GAP;
    }
    int has_value = m->valid == m->n;
    if (has_value) {
        int rc = qes_lockin_execute(m->lockin, m->buf, m->block * m->n, m->ph);
        if (rc) {
            qes_errf(rt->err, rt->errlen, "[measure.%s]: lock-in failed: %s", c->name,
                     qes_strerror(rc));
            return rc;
        }
    }
    if (m->flags & QES_FLAG_GAP)
        rt->st->gap_blocks++;
    if (m->flags & QES_FLAG_CLIP)
        rt->st->clip_blocks++;
    if (m->flags & QES_FLAG_PARTIAL)
        rt->st->partial_blocks++;
    int include = has_value && (!(m->flags & QES_FLAG_CLIP) || c->include_flagged);
    for (size_t k = 0; k < c->n_harmonics; k++) {
        struct qes_block_rec b = {
                .measure = c->name,
                .channel = c->channel,
                .unit = m->ch->unit,
                .harmonic = c->harmonics[k],
                .seq = m->block,
                .sample_start = m->block * m->n,
                .n_samples = m->pos,
                .t_ns = m->t_ns,
                .freq_hz = c->freq_hz * c->harmonics[k],
                .x = NAN,
                .y = NAN,
                .r = NAN,
                .phase_rad = NAN,
                .flags = m->flags,
        };
        if (has_value) {
            b.x = m->ph[k].x;
            b.y = m->ph[k].y;
            b.r = hypot(b.x, b.y);
            b.phase_rad = wrap_phase(atan2(b.y, b.x));
        }
        if (include)
            qes_phasor_acc_add(&m->acc[k], b.x, b.y);
        else
            m->excluded[k]++;
        int rc = emit_all(rt, 0, &b);
        if (rc)
            return rc;
        rt->st->blocks++;
    }
    m->open = 0;
    return 0;
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

static int process_frame(struct rt *rt, const struct qes_frame *f)
{
    const unsigned nch = f->n_channels;
    for (size_t mi = 0; mi < rt->n_m; mi++) {
        struct meas *m = &rt->m[mi];
        const unsigned ci = m->ch->index;
        const double gain = m->ch->gain, offset = m->ch->offset, clip = m->ch->clip_counts;
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
            const double *restrict src = f->samples + i * nch + ci;
            double *restrict dst = m->buf + off;
            int clipped = 0;
            if (clip > 0) {
#pragma omp simd reduction(| : clipped)
                for (size_t k = 0; k < take; k++)
                    clipped |= fabs(src[k * nch]) >= clip;
            }
            if (nch == 1) {
#pragma omp simd
                for (size_t k = 0; k < take; k++)
                    dst[k] = gain * src[k] + offset;
            } else {
                for (size_t k = 0; k < take; k++)
                    dst[k] = gain * src[k * nch] + offset;
            }
            if (clipped)
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
    }
    return 0;
}

static void fmt_human(FILE *out, const struct qes_summary_rec *s)
{
    const struct qes_phasor_summary *p = &s->s;
    fprintf(out, "%-10s %-8s h%-2u %10.6g Hz  ", s->measure, s->channel, s->harmonic, s->freq_hz);
    if (!isfinite(p->U_r) || p->U_r <= 0) {
        fprintf(out, "r = %.9g %s  (no uncertainty: %llu block(s))\n", p->r, s->unit,
                (unsigned long long)p->n);
        return;
    }
    /* two significant digits of U; the value to the same decimal place */
    int e = (int)floor(log10(p->U_r)) - 1;
    int dec = e < 0 ? -e : 0;
    char dof[32];
    if (isfinite(p->dof) && p->dof < 1e6)
        snprintf(dof, sizeof dof, "%.0f", p->dof);
    else if (isfinite(p->dof))
        snprintf(dof, sizeof dof, "%.1e", p->dof);
    else
        snprintf(dof, sizeof dof, "inf");
    if (dec <= 15) {
        double q = pow(10.0, e);
        fprintf(out, "r = %.*f %s  U = %.*f %s", dec, round(p->r / q) * q, s->unit, dec,
                round(p->U_r / q) * q, s->unit);
    } else {
        fprintf(out, "r = %.3e %s  U = %.1e %s", p->r, s->unit, p->U_r, s->unit);
    }
    fprintf(out, "  (k = %.2f, dof = %s, p = %g %%)  phase = %.6f rad  n = %llu%s\n", p->k, dof,
            100 * p->coverage, p->phase_rad, (unsigned long long)p->n,
            s->n_excluded ? "  (some blocks excluded)" : "");
}

static int summaries(struct rt *rt, int final)
{
    for (size_t mi = 0; mi < rt->n_m; mi++) {
        struct meas *m = &rt->m[mi];
        const struct qes_cfg_measure *c = m->cfg;
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
            if (m->acc[k].n > 0) {
                int rc = qes_phasor_summarize(&m->acc[k], m->ch->u_gain_rel, c->coverage, &s.s);
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
            int rc = emit_all(rt, 1, &s);
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
    const struct qes_config *cfg = d->cfg;
    struct rt rt = {.d = d, .st = st, .fs = d->src->sample_rate_hz, .err = err, .errlen = errlen};
    int rc = 0;
    rt.m = calloc(cfg->n_measure ? cfg->n_measure : 1, sizeof *rt.m);
    if (!rt.m)
        return QES_ENOMEM;
    rt.n_m = cfg->n_measure;
    size_t max_block = 0;
    for (size_t i = 0; i < rt.n_m; i++) {
        struct meas *m = &rt.m[i];
        m->cfg = &cfg->measure[i];
        m->ch = qes_config_channel(cfg, m->cfg->channel);
        if (!m->ch) {
            qes_errf(err, errlen, "[measure.%s] channel: no [channel.%s]", m->cfg->name,
                     m->cfg->channel);
            rc = QES_ECONFIG;
            goto out;
        }
        if (m->ch->index >= d->src->n_channels) {
            qes_errf(err, errlen,
                     "[channel.%s] index: %u, but the source has %u channel(s) (indices 0..%u)",
                     m->ch->name, m->ch->index, d->src->n_channels, d->src->n_channels - 1);
            rc = QES_ECONFIG;
            goto out;
        }
        rc = qes_block_samples(m->cfg, rt.fs, &m->n, err, errlen);
        if (rc)
            goto out;
        struct qes_lockin_desc ld = {
                .method = strcmp(m->cfg->method, "dft") ? QES_LOCKIN_FFT : QES_LOCKIN_DFT,
                .n = m->n,
                .periods = m->cfg->block_periods,
                .harmonics = m->cfg->harmonics,
                .n_harmonics = m->cfg->n_harmonics,
        };
        if (qes_window_from_name(m->cfg->window, &ld.window)) {
            qes_errf(err, errlen, "[measure.%s] window: unknown \"%s\"", m->cfg->name,
                     m->cfg->window);
            rc = QES_ECONFIG;
            goto out;
        }
        rc = qes_lockin_create(&ld, &m->lockin);
        if (rc) {
            unsigned hmax = 0;
            for (size_t k = 0; k < ld.n_harmonics; k++)
                hmax = ld.harmonics[k] > hmax ? ld.harmonics[k] : hmax;
            qes_errf(err, errlen,
                     "[measure.%s] harmonics: cannot measure harmonic %u of %.17g Hz in blocks of "
                     "%zu samples at %.17g Hz with window %s (each harmonic bin h*block_periods, "
                     "widened by the window's leakage, must lie strictly between DC and Nyquist "
                     "and apart from the others): %s",
                     m->cfg->name, hmax, m->cfg->freq_hz, m->n, rt.fs, m->cfg->window,
                     qes_strerror(rc));
            rc = rc == QES_EINVAL ? QES_ECONFIG : rc;
            goto out;
        }
        m->buf = malloc(m->n * sizeof *m->buf);
        if (!m->buf) {
            rc = QES_ENOMEM;
            goto out;
        }
        for (size_t k = 0; k < m->cfg->n_harmonics; k++)
            qes_phasor_acc_reset(&m->acc[k]);
        max_block = m->n > max_block ? m->n : max_block;
    }

    for (size_t i = 0; i < d->n_recs; i++) {
        rc = d->recs[i]->ops->run(d->recs[i], d->run);
        if (rc) {
            qes_errf(err, errlen, "%s", d->recs[i]->errmsg);
            goto out;
        }
    }

    double t0 = mono_s(), last_prog = t0, last_sum = t0;
    size_t chunk = 65536;
    struct qes_frame f;
    for (;;) {
        if (d->stop && *d->stop)
            break;
        int r = qes_source_read(d->src, &f, chunk);
        if (r < 0) {
            qes_errf(err, errlen, "%s", d->src->errmsg[0] ? d->src->errmsg : qes_strerror(r));
            rc = r;
            goto out;
        }
        if (r == 0)
            break;
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
        if (rt.m[i].open) {
            rc = finish_block(&rt, &rt.m[i]);
            if (rc)
                goto out;
        }
    }
    st->seconds = mono_s() - t0;
    if (d->progress)
        progress(&rt, t0, 1);
    rc = summaries(&rt, 1);
out:
    for (size_t i = 0; i < rt.n_m; i++) {
        qes_lockin_destroy(rt.m[i].lockin);
        free(rt.m[i].buf);
    }
    free(rt.m);
    (void)max_block;
    return rc;
}
