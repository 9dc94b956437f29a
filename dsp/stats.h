/*
 * Descriptive statistics of a series of results: numerically stable mean and
 * variance (two-pass and Welford), the sample autocorrelation function, and
 * the effective number of independent observations of a correlated series
 * (for the standard uncertainty of its mean).
 *
 * All functions are reentrant and thread-safe (no global state), allocate
 * nothing and do no I/O.  Sums that matter are carried in long double (64-bit
 * mantissa on x86) with Neumaier compensation, so that data sets with a large
 * common offset (NIST StRD NumAcc4: 1e7 +- 0.1) keep their full precision.
 */
#ifndef QES_DSP_STATS_H
#define QES_DSP_STATS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Two-pass mean and sample variance (n - 1 denominator).  The second pass
 * sums squared deviations from the first-pass mean and applies the
 * corrected-two-pass term -(sum d)^2 / n (Chan, Golub and LeVeque 1983),
 * which removes the residual error of the mean.
 *   x    : n values (finite)
 *   n    : >= 1; with n == 1 the variance is NaN
 *   mean : out, may be NULL
 *   var  : out, may be NULL
 * Returns 0, or QES_EINVAL (x NULL or n == 0).
 */
int qes_stats_mean_var(const double *x, size_t n, double *mean, double *var);

/* Running mean and variance, Welford's update (one pass, stable).  Kept in
 * long double: Welford's rounding error grows like n u |mean| / s, which in
 * double reaches 1e-12 relative on NIST "mavro" (n 50, |mean|/s 5e3) and
 * 1e-5 on NumAcc4; with the 64-bit mantissa it stays below the error of
 * representing the inputs in double. */
struct qes_welford {
    uint64_t n;
    long double mean; /* running mean */
    long double m2;   /* sum of squared deviations from the running mean */
};

void qes_welford_reset(struct qes_welford *w);
void qes_welford_add(struct qes_welford *w, double v);
/* Merge b into a (Chan et al. pairwise update): the accumulator of the
 * concatenated series. */
void qes_welford_merge(struct qes_welford *a, const struct qes_welford *b);
/* Mean (NaN when n == 0) and sample variance (n - 1; NaN when n < 2). */
double qes_welford_mean(const struct qes_welford *w);
double qes_welford_var(const struct qes_welford *w);

/*
 * Sample autocorrelation rho(k) = c(k) / c(0) for k = 0..max_lag, with
 *   c(k) = (1/n) sum_{i=0}^{n-1-k} (x_i - xbar)(x_{i+k} - xbar)
 * (the biased, positive-semidefinite estimator; rho(1) is the "lag-1
 * autocorrelation" certified by NIST StRD).  O(n * max_lag).
 *   x       : n values
 *   n       : >= 2
 *   max_lag : 0 <= max_lag <= n - 1
 *   rho     : out, max_lag + 1 values; rho[0] = 1
 * Returns 0; QES_EINVAL (NULL, n < 2, max_lag >= n); QES_ERANGE when the
 * series is constant (c(0) == 0; rho is then filled with NaN).
 */
int qes_stats_acf(const double *x, size_t n, size_t max_lag, double *rho);

/* Effective number of observations of a correlated series. */
struct qes_neff {
    size_t n;          /* observations */
    double mean;       /* two-pass mean */
    double s;          /* sample standard deviation (n - 1) */
    double var_factor; /* f = 1 + 2 sum_{k=1}^{K} (1 - k/n) rho(k), floored at 1/n */
    size_t cutoff_lag; /* K */
    double n_eff;      /* n / f */
    double u_mean;     /* s * sqrt(f / n): standard uncertainty of the mean */
    double rho1;       /* lag-1 autocorrelation */
};

/*
 * Effective number of independent observations from the sample ACF:
 *   var(mean) = s^2/n * f,  f = 1 + 2 sum_{k=1}^{K} (1 - k/n) rho(k),
 *   n_eff = n / f.
 * Cut-off rule (Geyer 1992, "initial positive sequence"): with the pair sums
 * G_j = rho(2j) + rho(2j+1), j = 0, 1, ..., K is the last lag of the last
 * pair before the first G_j <= 0 (K = 2J - 1 when G_J is the first
 * non-positive pair; K <= n - 1, and the pairs are scanned only while
 * 2j + 1 <= n - 1).  For a positively correlated series this stops where the
 * estimated ACF has sunk into its own noise; for an alternating
 * (negatively correlated) series the pairs stay positive and negative lags
 * are credited, so n_eff may exceed n.  f is floored at 1/n (n_eff <= n^2),
 * the value for the mean of first differences of white noise.
 *   x    : n values
 *   n    : >= 3
 *   work : caller scratch of n doubles (holds the ACF)
 *   out  : result
 * Returns 0; QES_EINVAL (NULL, n < 3); QES_ERANGE (constant series).
 */
int qes_stats_neff(const double *x, size_t n, double *work, struct qes_neff *out);

/*
 * AR(1) approximation n_eff ~ n (1 - phi) / (1 + phi) (large n), for a series
 * x_i = phi x_{i-1} + e_i.  |phi| < 1; NaN otherwise.
 */
double qes_stats_neff_ar1(double n, double phi);

/*
 * Exact finite-n variance factor of the mean of a stationary AR(1) series:
 * f = 1 + 2 sum_{k=1}^{n-1} (1 - k/n) phi^k, in closed form
 * f = (1 + phi)/(1 - phi) - 2 phi (1 - phi^n) / (n (1 - phi)^2).
 * |phi| < 1, n >= 1; NaN otherwise.
 */
double qes_stats_ar1_var_factor(double n, double phi);

#endif
