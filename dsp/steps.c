/*
 * AC-PJVS differential sampling, step-synchronous processing (see steps.h).
 *
 * Everything that touches sample values accumulates in long double: a step
 * mean of ~1e3 samples must keep well below the 1e-9 relative target of the
 * algorithm (PRIMER), and the per-step means are then combined with step
 * voltages of ~1 V that are exact to ~1e-19 relative.
 */
#include "dsp/steps.h"

#include "common/err.h"
#include "dsp/si.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const long double qes__pi_l = 3.141592653589793238462643383279502884L;

struct qes_steps {
    size_t L;      /* samples per step */
    size_t S;      /* steps per period */
    size_t M;      /* samples per period, S L */
    size_t n;      /* samples per block */
    size_t P;      /* periods per block */
    size_t nseg;   /* steps per block, P S */
    long double d; /* 2 pi / M, rad per sample at the fundamental */

    long double *v;           /* S step voltages, V */
    long double *tw_c, *tw_s; /* S twiddles cos, sin(2 pi q / S) */
    long double *means;       /* nseg step means of x, V */
    long double *ybar;        /* S period-averaged step means, V */
    double *period_rms;       /* P */

    unsigned mask_after, mask_before;
    int auto_mask;
    double auto_ratio;

    /* auto masks only */
    double *cos_m, *sin_m; /* M: cos, sin(d i) */
    unsigned *cand_a;      /* na candidate after-masks, ascending, last = largest */
    unsigned *cand_b;      /* nb candidate before-masks, ascending */
    size_t na, nb;
    size_t *cut; /* ncut sorted distinct cut points in [0, L] */
    size_t ncut;
    size_t *ia, *ib;          /* cut index of cand_a[u] and of L - cand_b[v] */
    long double *int1, *int2; /* ncut - 1 interval sums of r, r^2 of one step */
    long double *run1, *run2; /* ncut running sums from one cut on */
    double *maxsd;            /* na nb: largest within-step sd per candidate */
};

size_t qes_steps_samples_per_step(const struct qes_steps *s)
{
    return s ? s->L : 0;
}

void qes_steps_destroy(struct qes_steps *s)
{
    if (!s)
        return;
    free(s->v);
    free(s->tw_c);
    free(s->tw_s);
    free(s->means);
    free(s->ybar);
    free(s->period_rms);
    free(s->cos_m);
    free(s->sin_m);
    free(s->cand_a);
    free(s->cand_b);
    free(s->cut);
    free(s->ia);
    free(s->ib);
    free(s->int1);
    free(s->int2);
    free(s->run1);
    free(s->run2);
    free(s->maxsd);
    free(s);
}

static int cmp_size(const void *a, const void *b)
{
    const size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* Index of value in the sorted array cut[0..n); it is known to be there. */
static size_t cut_index(const size_t *cut, size_t n, size_t value)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        if (cut[mid] <= value)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Candidate grid 0, step, 2 step, ... up to max, max itself included.
 * Returns the count; fills out when not NULL.
 */
static size_t grid(unsigned max, unsigned step, unsigned *out)
{
    size_t k = 0;
    for (unsigned a = 0; a < max; a += step) {
        if (out)
            out[k] = a;
        k++;
        if (max - a < step)
            break;
    }
    if (out)
        out[k] = max;
    return k + 1;
}

static int make_auto(struct qes_steps *s, unsigned max_after, unsigned max_before, unsigned step)
{
    s->na = grid(max_after, step, NULL);
    s->nb = grid(max_before, step, NULL);
    s->cos_m = malloc(s->M * sizeof *s->cos_m);
    s->sin_m = malloc(s->M * sizeof *s->sin_m);
    s->cand_a = malloc(s->na * sizeof *s->cand_a);
    s->cand_b = malloc(s->nb * sizeof *s->cand_b);
    s->cut = malloc((s->na + s->nb + 2) * sizeof *s->cut);
    s->ia = malloc(s->na * sizeof *s->ia);
    s->ib = malloc(s->nb * sizeof *s->ib);
    s->int1 = malloc((s->na + s->nb + 2) * sizeof *s->int1);
    s->int2 = malloc((s->na + s->nb + 2) * sizeof *s->int2);
    s->run1 = malloc((s->na + s->nb + 2) * sizeof *s->run1);
    s->run2 = malloc((s->na + s->nb + 2) * sizeof *s->run2);
    s->maxsd = malloc(s->na * s->nb * sizeof *s->maxsd);
    if (!s->cos_m || !s->sin_m || !s->cand_a || !s->cand_b || !s->cut || !s->ia || !s->ib ||
        !s->int1 || !s->int2 || !s->run1 || !s->run2 || !s->maxsd)
        return QES_ENOMEM;
    grid(max_after, step, s->cand_a);
    grid(max_before, step, s->cand_b);

    /* Phases reduced in integers (i < M), so the table is exact to the
     * rounding of cosl/sinl. */
    for (size_t i = 0; i < s->M; i++) {
        const long double ph = 2.0L * qes__pi_l * (long double)i / (long double)s->M;
        s->cos_m[i] = (double)cosl(ph);
        s->sin_m[i] = (double)sinl(ph);
    }

    /* Cut points: every window [a, L - b) starts and ends on one. */
    size_t nc = 0;
    s->cut[nc++] = 0;
    s->cut[nc++] = s->L;
    for (size_t u = 0; u < s->na; u++)
        s->cut[nc++] = s->cand_a[u];
    for (size_t v = 0; v < s->nb; v++)
        s->cut[nc++] = s->L - s->cand_b[v];
    qsort(s->cut, nc, sizeof *s->cut, cmp_size);
    size_t w = 0;
    for (size_t i = 0; i < nc; i++)
        if (w == 0 || s->cut[i] != s->cut[w - 1])
            s->cut[w++] = s->cut[i];
    s->ncut = w;
    for (size_t u = 0; u < s->na; u++)
        s->ia[u] = cut_index(s->cut, s->ncut, s->cand_a[u]);
    for (size_t v = 0; v < s->nb; v++)
        s->ib[v] = cut_index(s->cut, s->ncut, s->L - s->cand_b[v]);
    return 0;
}

int qes_steps_create(const struct qes_steps_desc *desc, struct qes_steps **out)
{
    if (!desc || !out)
        return QES_EINVAL;
    const struct qes_steps_desc *d = desc;
    if (!(isfinite(d->fs_hz) && d->fs_hz > 0) || !(isfinite(d->freq_hz) && d->freq_hz > 0))
        return QES_EINVAL;
    if (d->steps_per_period < 3 || !d->steps || d->n_steps != d->steps_per_period)
        return QES_EINVAL;
    if (!(isfinite(d->f_j_hz) && d->f_j_hz > 0))
        return QES_EINVAL;
    for (size_t k = 0; k < d->n_steps; k++) {
        const double nk = d->steps[k];
        if (!isfinite(nk) || nk != trunc(nk) || fabs(nk) > 0x1p53)
            return QES_EINVAL;
    }
    /* Coherent sampling: an integer number of samples per step. */
    const double lr = d->fs_hz / (d->freq_hz * (double)d->steps_per_period);
    if (!(lr >= 1.5 && lr < 0x1p31))
        return QES_EINVAL;
    const double lround_d = nearbyint(lr);
    if (fabs(lr - lround_d) > 1e-9 * lround_d)
        return QES_EINVAL;
    const size_t L = (size_t)lround_d, S = d->steps_per_period;
    if (L > SIZE_MAX / S)
        return QES_EINVAL;
    const size_t M = L * S;
    if (d->n == 0 || d->n % M != 0)
        return QES_EINVAL;

    unsigned max_after = 0, max_before = 0, step = 0;
    double ratio = 0;
    if (d->auto_mask) {
        max_after = d->mask_after ? d->mask_after : (unsigned)(L / 2);
        max_before = d->mask_before ? d->mask_before : (unsigned)(L / 4);
        if ((size_t)max_after + max_before + 2 > L)
            return QES_EINVAL;
        step = d->auto_step ? d->auto_step : (unsigned)(L / 100 > 1 ? L / 100 : 1);
        ratio = d->auto_ratio == 0 ? 1.10 : d->auto_ratio;
        if (!(ratio >= 1.0 && isfinite(ratio)))
            return QES_EINVAL;
    } else if ((size_t)d->mask_after + d->mask_before >= L) {
        return QES_EINVAL;
    }

    struct qes_steps *s = calloc(1, sizeof *s);
    if (!s)
        return QES_ENOMEM;
    s->L = L;
    s->S = S;
    s->M = M;
    s->n = d->n;
    s->P = d->n / M;
    s->nseg = s->P * S;
    s->d = 2.0L * qes__pi_l / (long double)M;
    s->mask_after = d->mask_after;
    s->mask_before = d->mask_before;
    s->auto_mask = d->auto_mask != 0;
    s->auto_ratio = ratio;

    s->v = malloc(S * sizeof *s->v);
    s->tw_c = malloc(S * sizeof *s->tw_c);
    s->tw_s = malloc(S * sizeof *s->tw_s);
    s->means = malloc(s->nseg * sizeof *s->means);
    s->ybar = malloc(S * sizeof *s->ybar);
    s->period_rms = malloc(s->P * sizeof *s->period_rms);
    if (!s->v || !s->tw_c || !s->tw_s || !s->means || !s->ybar || !s->period_rms)
        goto err_nomem;
    for (size_t k = 0; k < S; k++) {
        s->v[k] = qes_si_josephson_v((long double)d->steps[k], (long double)d->f_j_hz);
        const long double ph = 2.0L * qes__pi_l * (long double)k / (long double)S;
        s->tw_c[k] = cosl(ph);
        s->tw_s[k] = sinl(ph);
    }
    if (s->auto_mask && make_auto(s, max_after, max_before, step) != 0)
        goto err_nomem;
    *out = s;
    return 0;

err_nomem:
    qes_steps_destroy(s);
    return QES_ENOMEM;
}

/* ------------------------------------------------------------------------ */

/*
 * Offset 0..L-1 of the first edge: the one with the largest summed jump
 * |x[e] - x[e - 1]| over all nseg edges e = o + j L (indices modulo n).
 */
static size_t find_edge(const struct qes_steps *s, const double *x)
{
    size_t best = 0;
    double best_score = -1.0;
    for (size_t o = 0; o < s->L; o++) {
        double score = 0.0;
        size_t e = o, prev = o == 0 ? s->n - 1 : o - 1;
        for (size_t j = 0; j < s->nseg; j++) {
            score += fabs(x[e] - x[prev]);
            e += s->L;
            prev += s->L;
            if (e >= s->n)
                e -= s->n;
            if (prev >= s->n)
                prev -= s->n;
        }
        if (score > best_score) {
            best_score = score;
            best = o;
        }
    }
    return best;
}

/* Sum of x[i mod n] for i in [start, start + w), start < n, w <= n. */
static long double wrap_sum(const double *x, size_t n, size_t start, size_t w)
{
    long double acc = 0.0L;
    size_t i = start, end = start + w;
    size_t first_end = end <= n ? end : n;
    for (; i < first_end; i++)
        acc += x[i];
    for (i = 0; i + n < end; i++)
        acc += x[i];
    return acc;
}

/* Step means of x over [edge + a, edge + L - b) for every step of the block;
 * then ybar: their average over periods, by step position in the period. */
static void step_means(struct qes_steps *s, const double *x, size_t o, unsigned a, unsigned b)
{
    const size_t w = s->L - a - b;
    size_t start = (o + a) % s->n;
    for (size_t j = 0; j < s->nseg; j++) {
        s->means[j] = wrap_sum(x, s->n, start, w) / (long double)w;
        start += s->L;
        if (start >= s->n)
            start -= s->n;
    }
    for (size_t q = 0; q < s->S; q++) {
        long double acc = 0.0L;
        for (size_t p = 0; p < s->P; p++)
            acc += s->means[p * s->S + q];
        s->ybar[q] = acc / (long double)s->P;
    }
}

/* Projection of y (S values, one period) onto DC + fundamental:
 * y_q ~ dc + a cos(2 pi q/S) + b sin(2 pi q/S), exact least squares for S >= 3. */
static void project(const struct qes_steps *s, const long double *y, size_t rot, long double *dc,
                    long double *a, long double *b)
{
    long double s0 = 0.0L, sc = 0.0L, ss = 0.0L;
    for (size_t q = 0; q < s->S; q++) {
        size_t k = q + rot;
        if (k >= s->S)
            k -= s->S;
        const long double yq = y[q] + s->v[k];
        s0 += yq;
        sc += yq * s->tw_c[q];
        ss += yq * s->tw_s[q];
    }
    *dc = s0 / (long double)s->S;
    *a = 2.0L * sc / (long double)s->S;
    *b = 2.0L * ss / (long double)s->S;
}

/* Rotation of the step list that makes ybar + V the best DC + sine. */
static size_t find_rotation(const struct qes_steps *s)
{
    size_t best = 0;
    long double best_res = INFINITY;
    for (size_t r = 0; r < s->S; r++) {
        long double dc, a, b, res = 0.0L;
        project(s, s->ybar, r, &dc, &a, &b);
        for (size_t q = 0; q < s->S; q++) {
            size_t k = q + r;
            if (k >= s->S)
                k -= s->S;
            const long double e = s->ybar[q] + s->v[k] - dc - a * s->tw_c[q] - b * s->tw_s[q];
            res += e * e;
        }
        if (res < best_res) {
            best_res = res;
            best = r;
        }
    }
    return best;
}

/* Window gain G = sin(W d/2) / (W sin(d/2)). */
static long double window_gain(const struct qes_steps *s, size_t w)
{
    return sinl((long double)w * s->d / 2.0L) / ((long double)w * sinl(s->d / 2.0L));
}

/*
 * Automatic masks (see steps.h).  Needs the edge offset and the rotation;
 * the first DUT estimate comes from the step means at the largest
 * candidate masks, which the caller has put in ybar.
 */
static void choose_masks(struct qes_steps *s, const double *x, size_t o, size_t rot,
                         unsigned *after, unsigned *before, double *scatter, double *scatter_min)
{
    const unsigned a1 = s->cand_a[s->na - 1], b1 = s->cand_b[s->nb - 1];
    const size_t w1 = s->L - a1 - b1;
    long double dc, a, b;
    project(s, s->ybar, rot, &dc, &a, &b);
    /* X1 = a - j b = G Z e^{j d c0}: Z = (a - j b) e^{-j d c0} / G */
    const long double g1 = window_gain(s, w1);
    const long double c0 = (long double)o + a1 + ((long double)w1 - 1.0L) / 2.0L;
    const long double cr = cosl(s->d * c0), ci = sinl(s->d * c0);
    const long double zr = (a * cr - b * ci) / g1, zi = (-b * cr - a * ci) / g1;
    /* model(i) = dc + Re(Z e^{j d i}) = dc + zr cos(d i) - zi sin(d i) */

    const size_t na = s->na, nb = s->nb, nint = s->ncut - 1;
    for (size_t c = 0; c < na * nb; c++)
        s->maxsd[c] = 0.0;

    size_t start = o;
    for (size_t j = 0; j < s->nseg; j++) {
        size_t k = j % s->S + rot;
        if (k >= s->S)
            k -= s->S;
        const long double vk = s->v[k];
        size_t idx = start, ph = start % s->M;
        size_t c = 0; /* current interval [cut[c], cut[c + 1]) */
        long double s1 = 0.0L, s2 = 0.0L;
        for (size_t t = 0; t < s->L; t++) {
            while (t == s->cut[c + 1]) {
                s->int1[c] = s1;
                s->int2[c] = s2;
                s1 = s2 = 0.0L;
                c++;
            }
            const long double r =
                    (long double)x[idx] + vk - dc - zr * s->cos_m[ph] + zi * s->sin_m[ph];
            s1 += r;
            s2 += r * r;
            if (++idx == s->n)
                idx = 0;
            if (++ph == s->M)
                ph = 0;
        }
        for (; c < nint; c++) {
            s->int1[c] = s1;
            s->int2[c] = s2;
            s1 = s2 = 0.0L;
        }
        /* Window sums from interval sums, so that the large values of the
         * ringing never enter (and cancel in) the sums of the windows that
         * exclude it. */
        for (size_t u = 0; u < na; u++) {
            long double r1 = 0.0L, r2 = 0.0L;
            for (size_t cc = s->ia[u]; cc < s->ncut; cc++) {
                s->run1[cc] = r1;
                s->run2[cc] = r2;
                if (cc < nint) {
                    r1 += s->int1[cc];
                    r2 += s->int2[cc];
                }
            }
            for (size_t v = 0; v < nb; v++) {
                if (s->ib[v] <= s->ia[u])
                    continue; /* empty window: not a candidate */
                const long double w = (long double)(s->L - s->cand_a[u] - s->cand_b[v]);
                const long double m1 = s->run1[s->ib[v]], m2 = s->run2[s->ib[v]];
                long double var = (m2 - m1 * m1 / w) / (w - 1.0L);
                if (!(var > 0.0L))
                    var = 0.0L;
                const double sd = (double)sqrtl(var);
                if (sd > s->maxsd[u * nb + v])
                    s->maxsd[u * nb + v] = sd;
            }
        }
        start += s->L;
        if (start >= s->n)
            start -= s->n;
    }

    double smin = INFINITY;
    for (size_t u = 0; u < na; u++)
        for (size_t v = 0; v < nb; v++)
            if (s->ib[v] > s->ia[u] && s->L - s->cand_a[u] - s->cand_b[v] >= 2 &&
                s->maxsd[u * nb + v] < smin)
                smin = s->maxsd[u * nb + v];
    const double thr = s->auto_ratio * smin;
    size_t bu = na - 1, bv = nb - 1;
    unsigned best_total = a1 + b1;
    for (size_t u = 0; u < na; u++)
        for (size_t v = 0; v < nb; v++) {
            const unsigned tot = s->cand_a[u] + s->cand_b[v];
            if (s->ib[v] <= s->ia[u] || s->L - tot < 2 || !(s->maxsd[u * nb + v] <= thr))
                continue;
            /* fewest masked samples; ties: smaller after (u ascending) */
            if (tot < best_total || (tot == best_total && u < bu)) {
                best_total = tot;
                bu = u;
                bv = v;
            }
        }
    *after = s->cand_a[bu];
    *before = s->cand_b[bv];
    *scatter = s->maxsd[bu * nb + bv];
    *scatter_min = smin;
}

int qes_steps_execute(struct qes_steps *s, const double *block, struct qes_steps_result *res)
{
    if (!s || !block || !res)
        return QES_EINVAL;
    memset(res, 0, sizeof *res);
    res->scatter = res->scatter_min = NAN;

    const size_t o = find_edge(s, block);
    unsigned after = s->mask_after, before = s->mask_before;
    size_t rot = 0;
    if (s->auto_mask) {
        const unsigned a1 = s->cand_a[s->na - 1], b1 = s->cand_b[s->nb - 1];
        step_means(s, block, o, a1, b1);
        rot = find_rotation(s);
        choose_masks(s, block, o, rot, &after, &before, &res->scatter, &res->scatter_min);
    }
    step_means(s, block, o, after, before);
    if (!s->auto_mask)
        rot = find_rotation(s);

    const size_t w = s->L - after - before;
    const long double g = window_gain(s, w);
    /* centre of the window of the first step, in samples from block[0] */
    const long double c0 = (long double)o + after + ((long double)w - 1.0L) / 2.0L;
    const long double cr = cosl(s->d * c0), ci = sinl(s->d * c0);
    const long double norm = 1.0L / (sqrtl(2.0L) * g);

    long double sum_r = 0.0L, sum_zr = 0.0L, sum_zi = 0.0L, sum_dc = 0.0L;
    for (size_t p = 0; p < s->P; p++) {
        long double dc, a, b;
        project(s, s->means + p * s->S, rot, &dc, &a, &b);
        const long double r = hypotl(a, b) * norm;
        s->period_rms[p] = (double)r;
        sum_r += r;
        sum_dc += dc;
        /* Z = (a - j b) e^{-j d c0} / G */
        sum_zr += a * cr - b * ci;
        sum_zi += -b * cr - a * ci;
    }
    const long double P = (long double)s->P;
    const long double mean = sum_r / P;
    long double m2 = 0.0L;
    for (size_t p = 0; p < s->P; p++) {
        const long double dv = (long double)s->period_rms[p] - mean;
        m2 += dv * dv;
    }

    res->rms = (double)mean;
    res->periods = s->P;
    if (s->P > 1) {
        res->u = (double)sqrtl(m2 / (P - 1.0L) / P);
        res->dof = (double)(s->P - 1);
    } else {
        res->u = NAN;
        res->dof = NAN;
    }
    double ph = (double)atan2l(sum_zi, sum_zr);
    if (ph == -(double)qes__pi_l)
        ph = (double)qes__pi_l;
    res->phase_rad = ph;
    res->dc = (double)(sum_dc / P);
    res->edge_offset = o;
    res->step0 = (unsigned)rot;
    res->mask_after = after;
    res->mask_before = before;
    res->window = (unsigned)w;
    res->gain = (double)g;
    res->period_rms = s->period_rms;
    return 0;
}
