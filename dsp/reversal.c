/*
 * Reversal processing (see reversal.h).
 *
 * Two stages.  A segmenter cuts the stream into half-cycles (from the
 * schedule, or from the polarity channel with hysteresis) and averages each
 * one after its settling interval.  A grouper places every closed half-cycle
 * at its position in a group (position p of G, with the polarity pat[p]
 * relative to r1) and emits the group when its last position is filled, or
 * early, flagged, when a half-cycle arrives that does not continue it (a gap,
 * or a polarity sequence out of order).
 *
 * Why the settling interval is cut from every half-cycle, not only after real
 * reversals: with equal used lengths n_u and equal spacing L, the centroid of
 * half-cycle h is t0 + h L + S + (n_u - 1)/2, so for "+--+" t1 - t2 - t3 + t4
 * = 0 and for "+-" t1 - 2 t2 + t3 = 0: a linear drift c t contributes exactly
 * zero.  Skipping the cut where no reversal precedes (r2 -> r3) would shift
 * one centroid by S/2 and leave c S / 8 in the value.
 *
 * Means use Neumaier's compensated sum: the result is within a few ulp of the
 * exact mean of the (already rounded) samples whatever the record length.
 */
#include "dsp/reversal.h"

#include "common/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 2^52: every sample count stays exact in a double. */
#define QES__REV_MAX_SAMPLES 4503599627370496.0

struct qes__half {
    int active;
    uint64_t start; /* run sample of its first sample (nominal, also when lost) */
    uint64_t end;   /* one past the last sample seen */
    uint64_t seen;  /* samples seen */
    uint64_t n_used;
    double sum, comp; /* Neumaier sum of the used samples */
    int sign;         /* polarity, 0 unknown */
    unsigned pos;     /* position in its group */
    uint64_t group;   /* schedule: group index */
    unsigned flags;   /* QES_REVERSAL_* that invalidate it */
};

struct qes_reversal {
    /* configuration */
    int schedule;  /* 1: schedule, 0: polarity channel */
    unsigned G;    /* half-cycles per group */
    int pat[4];    /* polarity of each position relative to r1 */
    int sched[4];  /* schedule: polarity of half-cycle h is sched[h % plen] */
    unsigned plen; /* pattern length */
    enum qes_reversal_pattern pattern;
    uint64_t L; /* samples per half-cycle (channel "+--+": learned, 0 unknown) */
    uint64_t S; /* settle samples */
    double thr; /* channel hysteresis fraction */

    /* stream */
    uint64_t next;    /* next expected run sample */
    int finished;     /* finish called */
    int gap_explicit; /* qes_reversal_gap since the last execute */
    int gap_next;     /* the next half-cycle started is invalid */
    int gap_mark;     /* a gap since the last half-cycle was grouped */
    struct qes__half h;

    /* polarity channel */
    int state;          /* polarity in force, 0 until known */
    int s0;             /* "+--+": polarity of the first stretch */
    uint64_t run_start; /* run sample at which the current stretch began */
    uint64_t run_no;    /* stretches begun before the current one */
    int run_part;       /* "+--+": 0 first reading of the stretch, 1 second */
    int run_gap;        /* samples lost in the current stretch */
    double mag_prev;    /* mean |pol| over the previous stretch */
    double mag_sum;     /* sum of |pol| over the current stretch */
    uint64_t mag_n;

    /* grouper */
    int g_active;
    uint64_t g_index, g_start, g_end, g_used, g_count;
    unsigned g_next, g_flags;
    int g_sign;
    double g_r[4];
};

int qes_reversal_pattern_parse(const char *s, enum qes_reversal_pattern *out)
{
    if (!s || !out)
        return QES_EINVAL;
    if (strcmp(s, "+--+") == 0)
        *out = QES_REVERSAL_PPMM;
    else if (strcmp(s, "+-") == 0)
        *out = QES_REVERSAL_PM;
    else
        return QES_EINVAL;
    return 0;
}

const char *qes_reversal_pattern_name(enum qes_reversal_pattern p)
{
    switch (p) {
    case QES_REVERSAL_PPMM:
        return "+--+";
    case QES_REVERSAL_PM:
        return "+-";
    }
    return NULL;
}

/* Round a non-negative count in samples; -1 when it does not fit. */
static double round_samples(double v)
{
    const double r = nearbyint(v);
    return (isfinite(r) && r >= 0 && r <= QES__REV_MAX_SAMPLES) ? r : -1.0;
}

int qes_reversal_create(const struct qes_reversal_desc *d, struct qes_reversal **out)
{
    if (!out)
        return QES_EINVAL;
    *out = NULL;
    if (!d)
        return QES_EINVAL;
    if (!(isfinite(d->fs_hz) && d->fs_hz > 0))
        return QES_EINVAL;
    if (!qes_reversal_pattern_name(d->pattern))
        return QES_EINVAL;
    if (!(isfinite(d->half_period_s) && d->half_period_s >= 0))
        return QES_EINVAL;
    if (!(isfinite(d->settle_s) && d->settle_s >= 0))
        return QES_EINVAL;
    if (!(isfinite(d->pol_threshold) && d->pol_threshold >= 0 && d->pol_threshold < 1))
        return QES_EINVAL;
    const int schedule = d->half_period_s > 0;
    const double S = round_samples(d->settle_s * d->fs_hz);
    if (S < 0)
        return QES_EINVAL;
    double L = 0;
    if (schedule) {
        if (d->pol_threshold != 0)
            return QES_EINVAL;
        L = round_samples(d->half_period_s * d->fs_hz);
        /* At least one averaged sample, and a half-cycle of one sample is
         * no schedule (every sample would be a reversal). */
        if (L < 2 || S >= L)
            return QES_EINVAL;
    }

    struct qes_reversal *r = calloc(1, sizeof *r);
    if (!r)
        return QES_ENOMEM;
    r->schedule = schedule;
    r->pattern = d->pattern;
    r->S = (uint64_t)S;
    r->thr = d->pol_threshold > 0 ? d->pol_threshold : 0.5;
    if (d->pattern == QES_REVERSAL_PPMM) {
        static const int p[4] = {1, -1, -1, 1};
        r->G = 4;
        r->plen = 4;
        memcpy(r->pat, p, sizeof p);
        memcpy(r->sched, p, sizeof p);
    } else {
        static const int p[4] = {1, -1, 1, 0};
        static const int s[4] = {1, -1, 0, 0};
        r->G = 3;
        r->plen = 2;
        memcpy(r->pat, p, sizeof p);
        memcpy(r->sched, s, sizeof s);
    }
    r->L = schedule ? (uint64_t)L : 0; /* qes_reversal_reset keeps a schedule's L */
    qes_reversal_reset(r);
    *out = r;
    return 0;
}

void qes_reversal_reset(struct qes_reversal *r)
{
    if (!r)
        return;
    r->next = 0;
    r->finished = 0;
    r->gap_explicit = r->gap_next = r->gap_mark = 0;
    memset(&r->h, 0, sizeof r->h);
    if (!r->schedule)
        r->L = 0;
    r->state = r->s0 = 0;
    r->run_start = r->run_no = 0;
    r->run_part = r->run_gap = 0;
    r->mag_prev = r->mag_sum = 0;
    r->mag_n = 0;
    r->g_active = 0;
    r->g_count = 0;
}

void qes_reversal_destroy(struct qes_reversal *r)
{
    free(r);
}

uint64_t qes_reversal_half_samples(const struct qes_reversal *r)
{
    return r ? r->L : 0;
}

uint64_t qes_reversal_settle_samples(const struct qes_reversal *r)
{
    return r ? r->S : 0;
}

int qes_reversal_gap(struct qes_reversal *r)
{
    if (!r)
        return QES_EINVAL;
    r->gap_explicit = 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Grouper                                                                   */

static void group_emit(struct qes_reversal *r, struct qes_reversal_group *out, size_t *n_out)
{
    struct qes_reversal_group *g = &out[(*n_out)++];
    memset(g, 0, sizeof *g);
    g->index = r->g_index;
    g->sample_start = r->g_start;
    g->n_samples = r->g_end - r->g_start;
    g->n_used = r->g_used;
    g->sign = r->g_sign;
    g->flags = r->g_flags;
    /* an incomplete group always carries its reason (set by the caller) */
    memcpy(g->half_mean, r->g_r, sizeof g->half_mean);
    g->value = NAN;
    if (g->flags == 0) {
        const double *x = r->g_r;
        /* The sign of r1 makes the value (V+ - V-)/2 whichever polarity
         * the group starts with. */
        const double c = r->G == 4 ? (x[0] - x[1]) - (x[2] - x[3]) : (x[0] - x[1]) - (x[1] - x[2]);
        g->value = (double)r->g_sign * c / 4.0;
    }
    r->g_active = 0;
}

/* Place a closed half-cycle; emits 0, 1 or 2 groups. */
static void group_add(struct qes_reversal *r, const struct qes__half *h,
                      struct qes_reversal_group *out, size_t *n_out)
{
    const unsigned why = (r->gap_mark || (h->flags & QES_REVERSAL_GAP)) ? QES_REVERSAL_GAP
                                                                        : QES_REVERSAL_SEQUENCE;
    r->gap_mark = 0;
    if (r->g_active) {
        /* A schedule knows each half-cycle's group: a hole inside one group
         * flags it; a half-cycle of another group closes it. */
        if (r->schedule ? h->group != r->g_index : h->pos != r->g_next) {
            r->g_flags |= why;
            group_emit(r, out, n_out);
        } else if (h->pos != r->g_next) {
            r->g_flags |= why;
        }
    }
    if (!r->g_active) {
        r->g_active = 1;
        r->g_index = r->schedule ? h->group : r->g_count;
        r->g_count++;
        r->g_start = r->schedule ? h->group * r->G * r->L : h->start;
        r->g_used = 0;
        r->g_flags = h->pos != 0 ? why : 0;
        r->g_sign = h->sign * r->pat[h->pos];
        for (int k = 0; k < 4; k++)
            r->g_r[k] = NAN;
    }
    r->g_r[h->pos] = h->n_used ? (h->sum + h->comp) / (double)h->n_used : NAN;
    r->g_used += h->n_used;
    r->g_end = h->end;
    r->g_flags |= h->flags;
    if (h->sign == 0)
        r->g_flags |= QES_REVERSAL_SEQUENCE;
    r->g_next = h->pos + 1;
    if (r->g_next == r->G)
        group_emit(r, out, n_out);
}

static void half_close(struct qes_reversal *r, struct qes_reversal_group *out, size_t *n_out)
{
    struct qes__half *h = &r->h;
    if (r->schedule && h->seen != r->L)
        h->flags |= QES_REVERSAL_GAP;
    if (h->n_used == 0 && !(h->flags & (QES_REVERSAL_GAP | QES_REVERSAL_PARTIAL)))
        h->flags |= QES_REVERSAL_SHORT;
    group_add(r, h, out, n_out);
    h->active = 0;
}

static void half_start(struct qes_reversal *r, uint64_t start, int sign, unsigned pos,
                       uint64_t group)
{
    struct qes__half *h = &r->h;
    memset(h, 0, sizeof *h);
    h->active = 1;
    h->start = h->end = start;
    h->sign = sign;
    h->pos = pos;
    h->group = group;
    if (r->gap_next) {
        h->flags |= QES_REVERSAL_GAP;
        r->gap_next = 0;
    }
}

static inline void half_add(struct qes__half *h, double v)
{
    const double t = h->sum + v;
    if (fabs(h->sum) >= fabs(v))
        h->comp += (h->sum - t) + v;
    else
        h->comp += (v - t) + h->sum;
    h->sum = t;
    h->n_used++;
}

/* ------------------------------------------------------------------------ */
/* Segmenters                                                                */

static size_t run_schedule(struct qes_reversal *r, const double *x, size_t n, uint64_t first,
                           struct qes_reversal_group *out, size_t max_out, size_t *n_out)
{
    const uint64_t L = r->L, S = r->S;
    size_t i = 0;
    while (i < n) {
        const uint64_t t = first + i;
        const uint64_t hidx = t / L, off = t % L;
        if (r->h.active && r->h.start != hidx * L) {
            /* resumed after a gap in another half-cycle: the old one is incomplete */
            if (max_out - *n_out < 2)
                break;
            half_close(r, out, n_out);
        }
        const uint64_t m = (uint64_t)(n - i) < L - off ? (uint64_t)(n - i) : L - off;
        if (off + m == L && max_out - *n_out < 2)
            break;
        if (!r->h.active)
            half_start(r, hidx * L, r->sched[hidx % r->plen], (unsigned)(hidx % r->G), hidx / r->G);
        struct qes__half *h = &r->h;
        for (uint64_t j = off < S ? S - off : 0; j < m; j++)
            half_add(h, x[i + j]);
        h->seen += m;
        h->end = t + m;
        i += (size_t)m;
        if (off + m == L)
            half_close(r, out, n_out);
    }
    return i;
}

/* Position in the group of a half-cycle of the polarity channel. */
static unsigned channel_pos(const struct qes_reversal *r, int sign)
{
    if (r->pattern == QES_REVERSAL_PM)
        return r->g_active ? r->g_next % r->G : 0;
    if (r->run_no == 0)
        return 0;
    /* "+--+" relative to s0: stretches of -s0 hold r2 r3, stretches of s0
     * hold r4 of one group and r1 of the next. */
    if (sign == r->s0)
        return r->run_part == 0 ? 3 : 0;
    return r->run_part == 0 ? 1 : 2;
}

static size_t run_channel(struct qes_reversal *r, const double *x, const double *pol, size_t n,
                          uint64_t first, struct qes_reversal_group *out, size_t max_out,
                          size_t *n_out)
{
    const uint64_t S = r->S;
    const int split = r->pattern == QES_REVERSAL_PPMM;
    size_t i = 0;
    if (!r->h.active && n > 0) {
        /* the first stretch starts at run sample 0 */
        half_start(r, 0, 0, 0, 0);
        r->run_start = 0;
    }
    for (; i < n; i++) {
        const uint64_t t = first + i;
        const double p = pol[i];
        const double mag_cur = r->mag_n ? r->mag_sum / (double)r->mag_n : 0.0;
        const double mag = r->mag_prev > mag_cur ? r->mag_prev : mag_cur;
        int event = 0;
        if (r->state != 0 && isfinite(p) && (double)r->state * p < -r->thr * mag)
            event = 1; /* reversal */
        else if (split && r->run_no > 0 && r->run_part == 0 && r->L > 0 && t - r->run_start >= r->L)
            event = 2; /* second reading of the stretch */
        if (event && max_out - *n_out < 2)
            break;
        if (event == 1) {
            const uint64_t len = t - r->run_start;
            const int learn = split && !r->run_gap && !(r->h.flags & QES_REVERSAL_GAP) &&
                              (r->run_no == 0 || r->run_part == 1 || r->L == 0);
            /* A later stretch that was never split: L unknown after a gap,
             * or the stretch was shorter than one reading. */
            if (split && r->run_no > 0 && r->run_part == 0)
                r->h.flags |= r->L == 0 ? QES_REVERSAL_GAP : QES_REVERSAL_SEQUENCE;
            half_close(r, out, n_out);
            /* The first stretch is one reading; later ones are two (and
             * refine L, which absorbs a constant recognition delay). */
            if (learn)
                r->L = r->run_no == 0 ? len : len / 2;
            r->state = -r->state;
            r->run_start = t;
            r->run_no++;
            r->run_part = 0;
            r->run_gap = 0;
            r->mag_prev = r->mag_n ? r->mag_sum / (double)r->mag_n : r->mag_prev;
            r->mag_sum = 0;
            r->mag_n = 0;
            half_start(r, t, r->state, channel_pos(r, r->state), 0);
        } else if (event == 2) {
            half_close(r, out, n_out);
            r->run_part = 1;
            half_start(r, t, r->state, channel_pos(r, r->state), 0);
        }
        if (r->state == 0 && isfinite(p) && p != 0) {
            r->state = p > 0 ? 1 : -1;
            r->s0 = r->state;
            r->h.sign = r->state;
        }
        struct qes__half *h = &r->h;
        if (t - h->start >= S)
            half_add(h, x[i]);
        h->seen++;
        h->end = t + 1;
        if (isfinite(p)) {
            r->mag_sum += fabs(p);
            r->mag_n++;
        }
    }
    return i;
}

int64_t qes_reversal_execute(struct qes_reversal *r, const double *x, const double *pol, size_t n,
                             uint64_t first_sample, struct qes_reversal_group *out, size_t max_out,
                             size_t *n_out)
{
    if (!r || !n_out)
        return QES_EINVAL;
    *n_out = 0;
    if (r->finished || !out || max_out < 2 || (n > 0 && !x))
        return QES_EINVAL;
    if (r->schedule ? pol != NULL : (n > 0 && !pol))
        return QES_EINVAL;
    if (first_sample < r->next || (uint64_t)n > (uint64_t)INT64_MAX ||
        (double)first_sample + (double)n > QES__REV_MAX_SAMPLES)
        return QES_EINVAL;
    if (n == 0)
        return 0;

    const int jump = first_sample > r->next;
    if (r->gap_explicit || jump) {
        r->gap_mark = 1;
        if (r->h.active) {
            r->h.flags |= QES_REVERSAL_GAP;
            r->run_gap = 1;
        } else if (r->gap_explicit || !r->schedule) {
            /* A schedule judges a resumed half-cycle by its sample count;
             * otherwise the next one cannot be trusted. */
            r->gap_next = 1;
            r->run_gap = 1;
        }
        r->gap_explicit = 0;
    }
    const size_t done = r->schedule ? run_schedule(r, x, n, first_sample, out, max_out, n_out)
                                    : run_channel(r, x, pol, n, first_sample, out, max_out, n_out);
    r->next = first_sample + done;
    return (int64_t)done;
}

int qes_reversal_finish(struct qes_reversal *r, struct qes_reversal_group *out, size_t max_out,
                        size_t *n_out)
{
    if (!r || !n_out)
        return QES_EINVAL;
    *n_out = 0;
    if (r->finished || !out || max_out < 2)
        return QES_EINVAL;
    r->finished = 1;
    if (r->h.active) {
        r->h.flags |= QES_REVERSAL_PARTIAL;
        group_add(r, &r->h, out, n_out);
        r->h.active = 0;
    }
    if (r->g_active) {
        r->g_flags |= QES_REVERSAL_PARTIAL;
        group_emit(r, out, n_out);
    }
    return 0;
}
