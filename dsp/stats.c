/*
 * Descriptive statistics (see stats.h): two-pass and Welford mean/variance,
 * autocorrelation, effective number of observations.
 */
#include "dsp/stats.h"

#include "common/err.h"

#include <math.h>

/* Neumaier-compensated long double accumulator. */
struct ksum {
    long double s, c;
};

static void ksum_add(struct ksum *k, long double v)
{
    const long double t = k->s + v;
    if (fabsl(k->s) >= fabsl(v))
        k->c += (k->s - t) + v;
    else
        k->c += (v - t) + k->s;
    k->s = t;
}

static long double ksum_get(const struct ksum *k)
{
    return k->s + k->c;
}

/* Mean in long double, plus the corrected-two-pass residual. */
static long double mean_ld(const double *x, size_t n)
{
    struct ksum k = {0, 0};
    for (size_t i = 0; i < n; i++)
        ksum_add(&k, x[i]);
    long double m = ksum_get(&k) / (long double)n;
    /* one refinement: the residual sum of deviations corrects rounding of m */
    struct ksum r = {0, 0};
    for (size_t i = 0; i < n; i++)
        ksum_add(&r, (long double)x[i] - m);
    return m + ksum_get(&r) / (long double)n;
}

int qes_stats_mean_var(const double *x, size_t n, double *mean, double *var)
{
    if (!x || n == 0)
        return QES_EINVAL;
    const long double m = mean_ld(x, n);
    if (mean)
        *mean = (double)m;
    if (var) {
        if (n < 2) {
            *var = NAN;
        } else {
            struct ksum ss = {0, 0}, sd = {0, 0};
            for (size_t i = 0; i < n; i++) {
                const long double d = (long double)x[i] - m;
                ksum_add(&ss, d * d);
                ksum_add(&sd, d);
            }
            const long double s1 = ksum_get(&sd);
            *var = (double)((ksum_get(&ss) - s1 * s1 / (long double)n) / (long double)(n - 1));
        }
    }
    return 0;
}

void qes_welford_reset(struct qes_welford *w)
{
    w->n = 0;
    w->mean = 0.0L;
    w->m2 = 0.0L;
}

void qes_welford_add(struct qes_welford *w, double v)
{
    w->n++;
    const long double d = (long double)v - w->mean;
    w->mean += d / (long double)w->n;
    w->m2 += d * ((long double)v - w->mean);
}

void qes_welford_merge(struct qes_welford *a, const struct qes_welford *b)
{
    if (b->n == 0)
        return;
    if (a->n == 0) {
        *a = *b;
        return;
    }
    const long double na = (long double)a->n, nb = (long double)b->n, n = na + nb;
    const long double d = b->mean - a->mean;
    a->mean += d * nb / n;
    a->m2 += b->m2 + d * d * na * nb / n;
    a->n += b->n;
}

double qes_welford_mean(const struct qes_welford *w)
{
    return w->n == 0 ? NAN : (double)w->mean;
}

double qes_welford_var(const struct qes_welford *w)
{
    return w->n < 2 ? NAN : (double)(w->m2 / (long double)(w->n - 1));
}

int qes_stats_acf(const double *x, size_t n, size_t max_lag, double *rho)
{
    if (!x || !rho || n < 2 || max_lag >= n)
        return QES_EINVAL;
    const long double m = mean_ld(x, n);
    struct ksum c0 = {0, 0};
    for (size_t i = 0; i < n; i++) {
        const long double d = (long double)x[i] - m;
        ksum_add(&c0, d * d);
    }
    const long double den = ksum_get(&c0);
    if (!(den > 0.0L)) {
        for (size_t k = 0; k <= max_lag; k++)
            rho[k] = NAN;
        return QES_ERANGE;
    }
    rho[0] = 1.0;
    for (size_t k = 1; k <= max_lag; k++) {
        struct ksum ck = {0, 0};
        for (size_t i = 0; i + k < n; i++)
            ksum_add(&ck, ((long double)x[i] - m) * ((long double)x[i + k] - m));
        rho[k] = (double)(ksum_get(&ck) / den);
    }
    return 0;
}

int qes_stats_neff(const double *x, size_t n, double *work, struct qes_neff *out)
{
    if (!x || !work || !out || n < 3)
        return QES_EINVAL;
    double mean, var;
    qes_stats_mean_var(x, n, &mean, &var);
    out->n = n;
    out->mean = mean;
    out->s = sqrt(var);
    /*
     * The ACF is computed lag by lag only as far as the cut-off needs:
     * Geyer's pairs are examined in order and the scan stops at the first
     * non-positive one, so the cost is O(n K), not O(n^2).
     */
    const long double m = mean;
    struct ksum c0 = {0, 0};
    for (size_t i = 0; i < n; i++) {
        const long double d = (long double)x[i] - m;
        ksum_add(&c0, d * d);
        work[i] = x[i] - mean;
    }
    const long double den = ksum_get(&c0);
    if (!(den > 0.0L)) {
        out->var_factor = out->n_eff = out->u_mean = out->rho1 = NAN;
        out->cutoff_lag = 0;
        return QES_ERANGE;
    }
    /* work[] holds deviations in double: their rounding (1 ulp of each
     * deviation) moves rho(k) by ~1e-16 relative, far below its noise. */
    struct ksum f = {0, 0};
    size_t K = 0;
    double rho_prev = 1.0; /* rho(2j) */
    out->rho1 = NAN;
    for (size_t j = 0;; j++) {
        const size_t k1 = 2 * j + 1;
        if (k1 > n - 1)
            break;
        struct ksum ck = {0, 0};
        for (size_t i = 0; i + k1 < n; i++)
            ksum_add(&ck, (long double)work[i] * work[i + k1]);
        const double r1 = (double)(ksum_get(&ck) / den);
        if (j == 0)
            out->rho1 = r1;
        const double r0 = j == 0 ? 1.0 : rho_prev;
        if (!(r0 + r1 > 0.0))
            break;
        /* pair accepted: add rho(2j) (j > 0) and rho(2j + 1) */
        if (j > 0)
            ksum_add(&f, 2.0L * (1.0L - (long double)(2 * j) / n) * r0);
        ksum_add(&f, 2.0L * (1.0L - (long double)k1 / n) * r1);
        K = k1;
        /* next pair's first member rho(2j + 2) */
        const size_t k2 = k1 + 1;
        if (k2 > n - 1)
            break;
        struct ksum ck2 = {0, 0};
        for (size_t i = 0; i + k2 < n; i++)
            ksum_add(&ck2, (long double)work[i] * work[i + k2]);
        rho_prev = (double)(ksum_get(&ck2) / den);
    }
    double fac = (double)(1.0L + ksum_get(&f));
    if (fac < 1.0 / (double)n)
        fac = 1.0 / (double)n;
    out->var_factor = fac;
    out->cutoff_lag = K;
    out->n_eff = (double)n / fac;
    out->u_mean = out->s * sqrt(fac / (double)n);
    return 0;
}

double qes_stats_neff_ar1(double n, double phi)
{
    if (!(fabs(phi) < 1.0) || !(n >= 1.0))
        return NAN;
    return n * (1.0 - phi) / (1.0 + phi);
}

double qes_stats_ar1_var_factor(double n, double phi)
{
    if (!(fabs(phi) < 1.0) || !(n >= 1.0))
        return NAN;
    const double q = 1.0 - phi;
    return (1.0 + phi) / q - 2.0 * phi * (1.0 - pow(phi, n)) / (n * q * q);
}
