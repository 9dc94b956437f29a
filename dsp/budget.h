/*
 * GUM uncertainty budgets and propagation (JCGM 100:2008 and its
 * Supplement 1, JCGM 101:2008).
 *
 *  - A budget of input components with sensitivity coefficients and a
 *    correlation matrix: combined standard uncertainty (GUM 5.2.2), effective
 *    degrees of freedom, coverage factor for any coverage probability, U.
 *  - The law of propagation of uncertainty for a vector measurement model
 *    y = f(x) given as a C callback: numerical Jacobian, output covariance
 *    J V J^T, output correlation coefficients and degrees of freedom.
 *  - Propagation of distributions by Monte Carlo (Supplement 1): normal,
 *    Student-t, rectangular, triangular, arcsine and correlated (multivariate
 *    normal or t) inputs, a seeded xoshiro256** generator, and for each
 *    output the mean, standard deviation, shortest and probabilistically
 *    symmetric coverage intervals.
 *
 * Degrees of freedom with correlated inputs.  The Welch-Satterthwaite
 * formula (GUM G.4.2) assumes independent components and the GUM says
 * nothing about correlated ones.  Here the inputs are grouped into the
 * connected sets of the graph "r_ij != 0" (only inputs that contribute,
 * c_i u_i != 0, take part).  A singleton contributes (c_i u_i)^4 / nu_i as
 * usual.  A group contributes v_E^2 / nu_E, where v_E = sum_{i,j in E} c_i c_j
 * r_ij u_i u_j is the variance of the group's joint contribution: when all
 * members share one nu (the case of several quantities estimated from the
 * same n paired observations, GUM H.2, nu = n - 1) this is Willink's exact
 * generalisation (Metrologia 44 (2007) 340; GTC gives nu = 4 for R in H.2).
 * When the members have different nu the smallest one is taken for the
 * group: a conservative choice that neither the GUM nor Willink prescribes.
 * The W-S sum is then evaluated by qes_ws_dof (dsp/gum.h) over the groups,
 * with its semantics: truncated down to an integer, INFINITY when every
 * contributing group has infinite dof.
 *
 * Pure computation: no I/O, no global state.  The functions that work on a
 * model allocate scratch memory with malloc (they are meant for the end of a
 * run or for configuration, not for a per-sample path) and are thread safe
 * as long as the model callback is.
 */
#ifndef QES_DSP_BUDGET_H
#define QES_DSP_BUDGET_H

#include "dsp/gum.h"

#include <stddef.h>
#include <stdint.h>

/* How the uncertainty of an input is given (JCGM 100 4.3). */
enum qes_unc_kind {
    QES_UNC_STANDARD = 0, /* unc = standard uncertainty u; normal (Student t for finite dof) */
    QES_UNC_EXPANDED,     /* unc = expanded uncertainty U, with k: u = U / k; normal (t) */
    QES_UNC_RECT,         /* unc = half-width a of a rectangular distribution: u = a / sqrt 3 */
    QES_UNC_TRIANG,       /* unc = half-width a of a symmetric triangle: u = a / sqrt 6 */
    QES_UNC_ARCSINE,      /* unc = half-width a, U-shaped (arcsine): u = a / sqrt 2 */
};

/* One input quantity X_i of a budget or of a measurement model. */
struct qes_input {
    const char *name;       /* static string, for the record; may be NULL */
    double value;           /* estimate x_i (the centre of the distribution) */
    enum qes_unc_kind kind; /* how `unc` is to be read */
    double unc;             /* u, U or a half-width (see the kind), >= 0, finite */
    double k;               /* QES_UNC_EXPANDED only: coverage factor, > 0 */
    double c;               /* sensitivity coefficient dY/dX_i (qes_budget_combine only) */
    double dof;             /* degrees of freedom nu_i > 0, or INFINITY; 0 means INFINITY */
};

/*
 * Standard uncertainty of an input from its kind (exact divisions by
 * sqrt 3, sqrt 6, sqrt 2 or k).  Returns 0 and sets *u, or QES_EINVAL for an
 * unknown kind, unc < 0 or not finite, or k <= 0 for an expanded one.
 */
int qes_input_u(const struct qes_input *in, double *u);

/* Result of a combined budget. */
struct qes_budget_result {
    double u_c;      /* combined standard uncertainty of the output */
    double dof;      /* effective degrees of freedom (see the top); INFINITY when infinite */
    double k;        /* coverage factor t_p(dof) for `coverage` */
    double U;        /* expanded uncertainty k u_c */
    double coverage; /* as requested */
};

/*
 * Combine a budget: u_c^2 = sum c_i^2 u_i^2 + 2 sum_{i<j} c_i c_j r_ij u_i u_j.
 *   in        n inputs (n >= 1); value is not used, c and the uncertainty are
 *   corr      n x n correlation matrix, row-major, or NULL for independent
 *             inputs: symmetric, unit diagonal, |r_ij| <= 1 (each within
 *             1e-9, so a matrix computed from a covariance is accepted)
 *   coverage  coverage probability p in (0, 1), e.g. 0.95
 *   res       the result
 *   terms     NULL, or n terms filled with {name, |c_i| u_i, nu_i} for the record
 * Returns 0; QES_EINVAL for a bad input (see qes_input_u, dof < 0 or NaN, c
 * not finite), a bad correlation matrix, a coverage outside (0, 1), or a
 * negative u_c^2 (the correlation matrix is not positive semi-definite);
 * QES_ENOMEM.  *res is written only on success.
 */
int qes_budget_combine(const struct qes_input *in, size_t n, const double *corr, double coverage,
                       struct qes_budget_result *res, struct qes_budget_term *terms);

/*
 * Mean and covariance of the mean of n_obs paired observations of n_var
 * quantities (GUM 4.2 and 5.2.3, as used in H.2): cov_mean[j][l] = s_jl /
 * n_obs with s_jl the sample covariance (two-pass).
 *   data      n_obs x n_var, row-major (one row per observation)
 *   mean      n_var outputs
 *   cov_mean  n_var x n_var outputs, row-major
 * The degrees of freedom of every entry are n_obs - 1.
 * Returns 0 or QES_EINVAL (n_obs < 2, n_var == 0, NULL pointers, a value
 * that is not finite).
 */
int qes_mean_cov(const double *data, size_t n_obs, size_t n_var, double *mean, double *cov_mean);

/*
 * Correlation coefficients and standard uncertainties from a covariance
 * matrix: u[i] = sqrt(cov_ii), corr[i][j] = cov_ij / (u_i u_j), 1 on the
 * diagonal and 0 off it where u_i or u_j is 0.  u or corr may be NULL.
 * Returns 0 or QES_EINVAL (n == 0, NULL cov, a negative diagonal).
 */
int qes_cov_to_corr(const double *cov, size_t n, double *u, double *corr);

/* ------------------------------------------------------------------------ */
/* Measurement models                                                        */

/*
 * A measurement model y = f(x) with n_in inputs and n_out outputs.  The
 * callback reads x[0 .. n_in-1], writes y[0 .. n_out-1] and returns 0, or a
 * negative QES_E* code (e.g. QES_ERANGE outside its domain), which the
 * propagation functions return unchanged.  It must be a pure function of x.
 */
struct qes_model {
    int (*f)(const double *x, double *y, void *ctx);
    void *ctx;    /* passed to f */
    size_t n_in;  /* N >= 1 */
    size_t n_out; /* M >= 1 */
};

/*
 * Law of propagation of uncertainty for a vector model (GUM 5.2, JCGM 102
 * 6.2.1): J V J^T.  Every output array is caller-owned and optional (NULL
 * = not wanted).
 */
struct qes_propagation {
    double *y;    /* [M] f at the estimates */
    double *u;    /* [M] standard uncertainties */
    double *cov;  /* [M*M] covariance, row-major */
    double *corr; /* [M*M] correlation coefficients (1 on the diagonal; 0 where a u is 0) */
    double *jac;  /* [M*N] sensitivities dy_k / dx_i, row-major (row k = output k) */
    double *dof;  /* [M] effective dof of each output (see the top), truncated */
};

/*
 * Linear propagation through `m` at x_i = in[i].value with V = diag(u) R
 * diag(u), R = corr (NULL: identity; same checks as qes_budget_combine).
 * The sensitivity `c` of the inputs is ignored: it is computed.
 *
 * Jacobian: central differences (f(x + h e_i) - f(x - h e_i)) / (2 h) with
 * h_i = min(u_i, s max(|x_i|, u_i)), s = 2^-17 (about the cube root of the
 * double epsilon, which balances the O(h^2) truncation against the O(eps/h)
 * rounding of a derivative).  So the step never exceeds u_i, the scale over
 * which the linearisation has to hold anyway (a model that varies on a
 * scale much shorter than |x_i| is safe), and is the optimal s |x_i| when
 * u_i is larger than that.  When u_i < s |x_i| (e.g. 1e-9 relative) the
 * derivative itself carries a rounding error of about eps |y| / u_i, but the
 * quantity that matters, the contribution J_i u_i, is then still accurate
 * to about eps |y| absolute: far below any uncertainty worth stating.  The
 * differences are taken over the representable steps (x + h) - x.  Inputs
 * with u_i = 0 still get a Jacobian column (h = s max(|x_i|, 1)).
 * A model that is not differentiable at x, or whose linearisation fails
 * within +-u (y = x^2 at x = 0 gives u = 0), needs qes_mc_propagate.
 *
 * Returns 0; QES_EINVAL (bad model, inputs or correlations); QES_ENOMEM; or
 * the model's own negative code.  Calls f 2N + 1 times.
 */
int qes_propagate(const struct qes_model *m, const struct qes_input *in, const double *corr,
                  struct qes_propagation *out);

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */

/*
 * xoshiro256** 1.0 (Blackman and Vigna, public domain reference algorithm)
 * seeded through splitmix64: deterministic, period 2^256 - 1, not for
 * cryptography.  Plain struct; one generator per thread.
 */
struct qes_rng {
    uint64_t s[4];
    double spare; /* second Box-Muller deviate */
    int has_spare;
};

/* Seed: s[0..3] are four successive splitmix64 outputs from `seed` (any value). */
void qes_rng_seed(struct qes_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t qes_rng_next(struct qes_rng *r);
/* Uniform on [0, 1), multiples of 2^-53. */
double qes_rng_uniform(struct qes_rng *r);
/* Standard normal, Box-Muller (JCGM 101 C.4) with both deviates used. */
double qes_rng_normal(struct qes_rng *r);
/* Gamma(shape, 1), shape > 0 (Marsaglia and Tsang 2000; shape < 1 boosted). NaN for bad shape. */
double qes_rng_gamma(struct qes_rng *r, double shape);
/* Student t with dof > 0 (Z / sqrt(chi^2_dof / dof)); normal for dof = INFINITY. */
double qes_rng_student_t(struct qes_rng *r, double dof);

/* ------------------------------------------------------------------------ */
/* Monte Carlo (JCGM 101)                                                     */

struct qes_mc_desc {
    size_t trials;   /* M >= 2 and large enough that q = pM < M; 0: default 1e6 */
    uint64_t seed;   /* the same seed gives the same result */
    double coverage; /* p in (0, 1); 0: default 0.95 */
};

/* Summary of one output's distribution (JCGM 101 7.6, 7.7). */
struct qes_mc_stat {
    double mean;           /* average of the M model values */
    double u;              /* their standard deviation (divisor M - 1) */
    double lo, hi;         /* shortest coverage interval for p (7.7.2) */
    double lo_sym, hi_sym; /* probabilistically symmetric interval for p (7.7.1) */
};

/*
 * Propagate the distributions of the inputs through `m` with M trials.
 * Distributions assigned (JCGM 101 6.4), centred on in[i].value:
 *   STANDARD, EXPANDED  normal with standard deviation u; for finite dof a
 *                       scaled and shifted t_nu with scale u (6.4.9: its
 *                       standard deviation is u sqrt(nu / (nu - 2)), the
 *                       variance is infinite for nu <= 2)
 *   RECT, TRIANG, ARCSINE  on [x - a, x + a], the dof being ignored
 * Correlated inputs (corr != NULL, r_ij != 0) must be of the normal kinds;
 * each connected group is drawn from a multivariate normal (6.4.8, Cholesky
 * factor of the group's correlation matrix, which may be semi-definite), or
 * from a multivariate t (6.4.9, one chi-square draw shared by the group)
 * when all its members have the same finite dof.
 *   d     trials, seed and coverage
 *   out   n_out statistics, one per output (caller array)
 *   cov   NULL, or the n_out x n_out covariance of the outputs (divisor M - 1)
 * Draws per trial, in order: n_in normal deviates (used by the normal-kind
 * inputs), then for each input in turn its own uniform or chi-square draws.
 * Returns 0; QES_EINVAL (bad desc, model or inputs; a correlation between
 * inputs of other kinds; a matrix that is not positive semi-definite);
 * QES_EUNSUPPORTED (a correlated group whose members have different dof:
 * Supplement 1 prescribes no joint distribution for it); QES_ENOMEM; or
 * the model's negative code.  Memory: M * n_out doubles.
 */
int qes_mc_propagate(const struct qes_model *m, const struct qes_input *in, const double *corr,
                     const struct qes_mc_desc *d, struct qes_mc_stat *out, double *cov);

#endif
