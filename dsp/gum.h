/*
 * GUM uncertainty helpers (JCGM 100:2008): coverage factors from Student's t,
 * Welch-Satterthwaite effective degrees of freedom, and the summary of a
 * series of block phasors into a mean phasor with a full budget.
 */
#ifndef QES_DSP_GUM_H
#define QES_DSP_GUM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Coverage factor k = t_p(dof): the two-sided Student-t quantile such that
 * P(|T| <= k) = p.  p in (0, 1); dof >= 1, or INFINITY for the normal
 * distribution.  Non-integer dof are accepted.  Returns NaN for bad input.
 * Accurate to better than 1e-10 relative.
 */
double qes_coverage_factor(double p, double dof);

/* CDF of Student's t with dof degrees of freedom (INFINITY: normal). */
double qes_t_cdf(double t, double dof);

/* Inverse of the standard normal CDF, p in (0,1); NaN outside. */
double qes_normal_quantile(double p);

/* One component of an uncertainty budget. */
struct qes_budget_term {
    const char *name; /* static string: "typeA", "gain", ... */
    double u;         /* standard uncertainty contribution to the output, |c_i| u(x_i) */
    double dof;       /* degrees of freedom; INFINITY for a Type B term taken as exact */
};

/*
 * Welch-Satterthwaite: nu_eff = u_c^4 / sum(u_i^4 / nu_i), truncated down to an
 * integer as the GUM recommends (G.4.1 note), or INFINITY when every term has
 * infinite dof or u_c == 0.  Terms with u == 0 are ignored.
 */
double qes_ws_dof(const struct qes_budget_term *terms, size_t n);

/* Running mean and covariance of (x, y) pairs, Welford's algorithm. */
struct qes_phasor_acc {
    uint64_t n;
    double mean_x, mean_y;
    double m2_xx, m2_yy, m2_xy; /* sums of squared deviations */
};

void qes_phasor_acc_reset(struct qes_phasor_acc *acc);
void qes_phasor_acc_add(struct qes_phasor_acc *acc, double x, double y);

#define QES_BUDGET_MAX 16

struct qes_phasor_summary {
    uint64_t n;          /* blocks summarised */
    double x, y;         /* mean phasor */
    double r, phase_rad; /* |mean|, arg(mean) in (-pi, pi] */
    /* combined standard uncertainties (NaN when n < 2: no Type A possible) */
    double u_x, u_y, u_r, u_phase_rad;
    double dof;      /* Welch-Satterthwaite, for r; INFINITY when infinite */
    double k;        /* coverage factor for `coverage` at dof */
    double U_r;      /* k * u_r */
    double coverage; /* as requested */
    /* budget of u_r, each term's contribution */
    struct qes_budget_term budget[QES_BUDGET_MAX];
    size_t n_budget;
    /* how the typeA term was evaluated, for the record ("" = standard
     * deviation of the mean, n - 1 dof) */
    char typeA_rule[192];
    /* Monte Carlo check (GUM Supplement 1) of r, when asked: trials (0 = not
     * run), standard deviation and shortest coverage interval */
    uint64_t mc_trials;
    double mc_u, mc_lo, mc_hi;
};

/*
 * Summarise: mean phasor, Type A from the scatter of the block phasors
 * (standard deviation of the mean, n-1 dof, with the x-y covariance carried
 * into u_r and u_phase), Type B of the gain as u_gain_rel * r on x, y and r
 * (a real gain does not move the phase), combined, W-S dof, k, U_r.
 * Returns 0, or QES_EINVAL (n == 0, coverage outside (0,1), u_gain_rel < 0).
 * With n == 1 the result carries NaN uncertainties.
 */
int qes_phasor_summarize(const struct qes_phasor_acc *acc, double u_gain_rel, double coverage,
                         struct qes_phasor_summary *out);

/* Summary of a scalar series (reversal groups, PJVS periods): mean, Type A
 * as the standard deviation of the mean with n-1 dof, plus any Type B terms. */
struct qes_scalar_summary {
    uint64_t n;
    double value;    /* mean */
    double u;        /* combined standard uncertainty (NaN when n < 2) */
    double dof;      /* Welch-Satterthwaite; INFINITY when infinite */
    double k;        /* coverage factor for `coverage` at dof */
    double U;        /* k * u */
    double coverage; /* as requested */
    struct qes_budget_term budget[QES_BUDGET_MAX];
    size_t n_budget;
    char typeA_rule[192]; /* as in struct qes_phasor_summary */
    uint64_t mc_trials;   /* as in struct qes_phasor_summary, for value */
    double mc_u, mc_lo, mc_hi;
};

/* Running mean and variance, Welford's algorithm. */
struct qes_scalar_acc {
    uint64_t n;
    double mean, m2;
};

void qes_scalar_acc_reset(struct qes_scalar_acc *acc);
void qes_scalar_acc_add(struct qes_scalar_acc *acc, double v);

/*
 * Summarise: mean, typeA = s / sqrt(n) with n-1 dof, and u_rel_b * |mean| as a
 * Type B term named `b_name` with infinite dof (skipped when b_name is NULL).
 * Returns 0 or QES_EINVAL (n == 0, coverage outside (0, 1)).
 */
int qes_scalar_summarize(const struct qes_scalar_acc *acc, const char *b_name, double u_rel_b,
                         double coverage, struct qes_scalar_summary *out);

#endif
