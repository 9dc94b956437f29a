/*
 * Tests of dsp/gum: Student-t coverage factors against the published table
 * (refdata) and against high-precision values, the t CDF against closed
 * forms, the normal quantile, Welch-Satterthwaite (GUM H.1), the Welford
 * phasor accumulator (NIST StRD NumAcc, large offsets) and the summary.
 *
 * High-precision values marked "40-digit" were computed independently of
 * this code with mpmath (regularized incomplete beta at 40 significant
 * digits, root found to 1e-35).
 */
#include "dsp/gum.h"

#include "common/err.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(gum, .timeout = 60);

static const double pi_d = 3.1415926535897932384626433832795;
static const long double pi_l = 3.1415926535897932384626433832795029L;

static double rel(double a, double b)
{
    return fabs(a - b) / fabs(b);
}

/* ------------------------------------------------------------------------ */
/* Coverage factors                                                          */

/*
 * Every cell of GUM Table G.2 as tabulated in refdata (k printed to 4
 * decimals): |k - table| <= 0.5e-4 (the printing) + 1e-9 (decimal
 * representation of the printed value and our 1e-12 relative, with margin).
 */
Test(gum, coverage_factor_matches_refdata_table)
{
    const char *ref = qes_test_refdata();
    if (!ref)
        cr_skip_test("../shared/refdata is absent: GUM Table G.2 not checked");
    char path[4200];
    snprintf(path, sizeof path, "%s/gum/student_t_coverage_factors.csv", ref);
    FILE *f = fopen(path, "r");
    if (!f)
        cr_skip_test("%s is absent: GUM Table G.2 not checked", path);

    char line[1024];
    double p[16];
    size_t np = 0, rows = 0, cells = 0;
    double worst = 0.0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (np == 0) {
            /* header: nu,k_68.27,k_90,... */
            cr_assert(strncmp(line, "nu,", 3) == 0, "unexpected header: %s", line);
            for (char *tok = strtok(line + 3, ",\n"); tok; tok = strtok(NULL, ",\n")) {
                cr_assert(strncmp(tok, "k_", 2) == 0 && np < 16, "bad column %s", tok);
                p[np] = strtod(tok + 2, NULL) / 100.0;
                /* GUM G.2 labels the coverages of mu +- 1, 2, 3 sigma of a
                 * normal distribution 68.27, 95.45 and 99.73 %; the table's
                 * entries are for those exact coverages erf(m / sqrt 2)
                 * (nu = 1, "68.27": tan(pi p / 2) = 1.83734 with the exact
                 * p, 1.83741 with 0.6827, printed 1.8373). */
                for (int m = 1; m <= 3; m++) {
                    const double pm = erf(m / sqrt(2.0));
                    if (fabs(p[np] - pm) < 0.5e-4)
                        p[np] = pm;
                }
                np++;
            }
            continue;
        }
        char *tok = strtok(line, ",\n");
        cr_assert_not_null(tok);
        const double nu = strcmp(tok, "inf") == 0 ? INFINITY : strtod(tok, NULL);
        for (size_t j = 0; j < np; j++) {
            tok = strtok(NULL, ",\n");
            cr_assert_not_null(tok, "row nu=%g is short", nu);
            const double table = strtod(tok, NULL);
            const double k = qes_coverage_factor(p[j], nu);
            const double e = fabs(k - table);
            worst = fmax(worst, e);
            cr_assert(e <= 0.5e-4 + 1e-9, "nu=%g p=%g: k=%.10f, table %.4f", nu, p[j], k, table);
            cells++;
        }
        rows++;
    }
    fclose(f);
    cr_assert_eq(np, 6, "expected 6 coverage columns, got %zu", np);
    cr_assert(rows >= 21, "only %zu rows read", rows);
    cr_log_info("GUM table: %zu cells, max |k - table| = %.3g", cells, worst);
}

/*
 * Values known to many digits.  Budget: the solver stops within 2 ulp of the
 * root of the computed CDF; the CDF is within 1e-14 relative of 40-digit
 * values (measured over nu = 1..1e16, t = 0.5..12), which moves k by less
 * than 1e-13 relative for these p.  Asserted: 1e-12 relative (the promise).
 */
Test(gum, coverage_factor_known_values)
{
    static const struct {
        double p, nu, k;
    } known[] = {
            /* 40-digit; the often quoted 2.2281388519649385 is 1e-11 low
             * (P(|T| <= it) = 0.95 - 1.8e-12). */
            {0.95, 10, 2.228138851986274748},
            {0.95, 3.5, 2.940088637982729794}, /* non-integer dof, 40-digit */
            {0.99, 3.5, 5.085702223091258443},
            {0.95, 1e4, 1.960201239890626258}, /* 40-digit, large dof */
            {0.99, 1e4, 2.576321046668528893},
            {0.95, 1e6, 1.959966356814107035},
            {0.99, 1e6, 2.575834220105334154},
            {0.95, 1e12, 1.959963984542426507},
            {0.95, INFINITY, 1.959963984540054236}, /* z_0.975 */
            {0.99, INFINITY, 2.575829303548901253},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const double k = qes_coverage_factor(known[i].p, known[i].nu);
        cr_assert(rel(k, known[i].k) <= 1e-12, "p=%g nu=%g: k=%.17g, expected %.17g (rel %.3g)",
                  known[i].p, known[i].nu, k, known[i].k, rel(k, known[i].k));
    }
    /* GUM H.1: t_99(16) = 2.92 */
    cr_assert(fabs(qes_coverage_factor(0.99, 16) - 2.92) < 0.005);
}

/*
 * Closed forms: nu = 1 (Cauchy) k = tan(pi p / 2); nu = 2 k = p sqrt(2 / (1 -
 * p^2)).  Evaluated in long double (64-bit mantissa): their own error is
 * below 1e-17 relative even where tan is ill-conditioned (p = 0.999: cond
 * 1e3).  Same 1e-12 budget as above, including p < 1/2 where the solver
 * works on the central probability.
 */
Test(gum, coverage_factor_closed_forms)
{
    static const double ps[] = {1e-300, 1e-16, 1e-6, 0.001,  0.1,  0.3,  0.5,
                                0.6827, 0.9,   0.95, 0.9545, 0.99, 0.999};
    double worst = 0.0;
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        const long double p = ps[i];
        const double k1 = (double)tanl(pi_l * p / 2.0L);
        const double k2 = (double)(p * sqrtl(2.0L / (1.0L - p * p)));
        const double e1 = rel(qes_coverage_factor(ps[i], 1.0), k1);
        const double e2 = rel(qes_coverage_factor(ps[i], 2.0), k2);
        worst = fmax(worst, fmax(e1, e2));
        cr_assert(e1 <= 1e-12, "nu=1 p=%g: rel err %.3g", ps[i], e1);
        cr_assert(e2 <= 1e-12, "nu=2 p=%g: rel err %.3g", ps[i], e2);
    }
    cr_log_info("closed forms nu=1,2: max rel err of k %.3g", worst);
    /* normal, tiny p: P(|Z| <= k) = k sqrt(2/pi) (1 - k^2/6 + ...), the
     * correction is below 1e-32 here */
    static const double tiny[] = {1e-300, 1e-100, 1e-16};
    for (size_t i = 0; i < 3; i++) {
        const double k = qes_coverage_factor(tiny[i], INFINITY);
        cr_assert(rel(k, tiny[i] * 1.2533141373155002512) <= 1e-12, "p=%g: k=%.17g", tiny[i], k);
    }
}

/* k decreases with dof and tends to the normal quantile: t - z ~ (z^3 + z)
 * / (4 nu), 3.1e-15 relative at nu = 1e15 for p = 0.95: asserted 1e-13. */
Test(gum, coverage_factor_monotone_in_dof)
{
    double prev = qes_coverage_factor(0.95, 1.0);
    for (double nu = 1.5; nu <= 400.0; nu += 0.5) {
        const double k = qes_coverage_factor(0.95, nu);
        cr_assert(k < prev, "k(0.95, %g) = %.17g not below k at nu - 0.5 (%.17g)", nu, k, prev);
        prev = k;
    }
    const double z = qes_coverage_factor(0.95, INFINITY);
    cr_assert(prev > z);
    cr_assert(rel(qes_coverage_factor(0.95, 1e15), z) <= 1e-13);
    cr_assert(qes_coverage_factor(0.95, 1e300) == qes_coverage_factor(0.95, 1e300));
}

Test(gum, coverage_factor_bad_input)
{
    cr_assert(isnan(qes_coverage_factor(0.0, 10)));
    cr_assert(isnan(qes_coverage_factor(1.0, 10)));
    cr_assert(isnan(qes_coverage_factor(-0.5, 10)));
    cr_assert(isnan(qes_coverage_factor(NAN, 10)));
    cr_assert(isnan(qes_coverage_factor(0.95, 0.5)));
    cr_assert(isnan(qes_coverage_factor(0.95, 0.0)));
    cr_assert(isnan(qes_coverage_factor(0.95, -3)));
    cr_assert(isnan(qes_coverage_factor(0.95, NAN)));
    cr_assert(isnan(qes_coverage_factor(0.95, -INFINITY)));
}

/* ------------------------------------------------------------------------ */
/* t CDF and normal quantile                                                 */

/*
 * Closed forms nu = 1: 1/2 + atan(t)/pi; nu = 2: 1/2 + t / (2 sqrt(2 + t^2)),
 * evaluated in long double.  Budget: the incomplete beta is within a few
 * ulp; asserted 1e-14 absolute, and 1e-13 relative on the lower tail
 * (t < 0), which must keep relative accuracy.
 */
Test(gum, t_cdf_closed_forms)
{
    static const double ts[] = {-1e6, -300, -30, -5, -2, -1, -0.25, -1e-8, 0,
                                1e-8, 0.25, 1,   2,  5,  30, 300,   1e6};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        const long double t = ts[i];
        const double c1 = (double)(0.5L + atanl(t) / pi_l);
        const double c2 = (double)(0.5L + t / (2.0L * sqrtl(2.0L + t * t)));
        const double g1 = qes_t_cdf(ts[i], 1.0), g2 = qes_t_cdf(ts[i], 2.0);
        cr_assert(fabs(g1 - c1) <= 1e-14, "nu=1 t=%g: %.17g vs %.17g", ts[i], g1, c1);
        cr_assert(fabs(g2 - c2) <= 1e-14, "nu=2 t=%g: %.17g vs %.17g", ts[i], g2, c2);
        if (ts[i] < 0) {
            /* lower tail from the Cauchy tail atan(1/|t|)/pi, no cancellation */
            const double l1 = (double)(atanl(-1.0L / t) / pi_l);
            cr_assert(rel(g1, l1) <= 1e-13, "nu=1 t=%g: rel %.3g", ts[i], rel(g1, l1));
        }
    }
}

/* 40-digit values, including the large-dof region and both sides of the
 * switch between the continued fraction and the asymptotic expansion
 * (nu = 4000: t^2 = 10 at t = 3.1623).  Budget: measured <= 1e-14 relative
 * on the tail against the same references over a grid; asserted 1e-13. */
Test(gum, t_cdf_known_values)
{
    static const struct {
        double t, nu, lower; /* P(T <= -t) */
    } known[] = {
            {2.5, 30, 0.009057824534033347051},    {3.16, 4000, 0.000794732442400923015},
            {3.17, 4000, 0.000767949244050627417}, {1, 1e4, 0.1586673521652145620},
            {6, 1e4, 1.020809236461307660e-9},     {2, 1e6, 0.02275026692565960421},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        const double lo = qes_t_cdf(-known[i].t, known[i].nu);
        const double up = qes_t_cdf(known[i].t, known[i].nu);
        cr_assert(rel(lo, known[i].lower) <= 1e-13, "t=%g nu=%g: %.17g vs %.17g", known[i].t,
                  known[i].nu, lo, known[i].lower);
        cr_assert(fabs(up - (1.0 - known[i].lower)) <= 1e-15);
    }
    cr_assert(qes_t_cdf(0.0, 7.0) == 0.5);
    cr_assert(qes_t_cdf(INFINITY, 7.0) == 1.0);
    cr_assert(qes_t_cdf(-INFINITY, 7.0) == 0.0);
    /* normal: Phi(z_0.975) = 0.975 within a few ulp */
    cr_assert(fabs(qes_t_cdf(1.959963984540054, INFINITY) - 0.975) <= 1e-15);
    cr_assert(isnan(qes_t_cdf(1.0, 0.0)));
    cr_assert(isnan(qes_t_cdf(1.0, -1.0)));
    cr_assert(isnan(qes_t_cdf(NAN, 3.0)));
}

/* Acklam plus refinement: full double precision.  Budget: erfc is within a
 * few ulp, the refinement converges to it: asserted 4e-16 relative. */
Test(gum, normal_quantile)
{
    cr_assert(fabs(qes_normal_quantile(0.975) - 1.959963984540054236) <= 4e-16 * 1.96);
    cr_assert(rel(qes_normal_quantile(1e-10), -6.361340902404056205) <= 4e-16);
    cr_assert(rel(qes_normal_quantile(0.3), -0.5244005127080408160) <= 4e-16);
    cr_assert(qes_normal_quantile(0.5) == 0.0);
    /* exact symmetry for p > 1/2: computed from the exact 1 - p */
    for (double p = 0.5078125; p < 1.0; p += 0.0625)
        cr_assert(qes_normal_quantile(p) == -qes_normal_quantile(1.0 - p), "p=%g", p);
    /* Round trip through the CDF, deep tail included.  An error of 2 ulp in
     * x moves Phi(x) by a relative |x| dx = 2 u x^2, plus a few ulp of erfc:
     * asserted (x^2 + 2) * 4.5e-16 (= 6e-13 at p = 1e-300, x = -37). */
    for (double p = 1e-300; p < 0.5; p *= 1e7) {
        const double x = qes_normal_quantile(p);
        cr_assert(rel(qes_t_cdf(x, INFINITY), p) <= (x * x + 2.0) * 4.5e-16, "p=%g: %.3g", p,
                  rel(qes_t_cdf(x, INFINITY), p));
    }
    cr_assert(isnan(qes_normal_quantile(0.0)));
    cr_assert(isnan(qes_normal_quantile(1.0)));
    cr_assert(isnan(qes_normal_quantile(NAN)));
    cr_assert(isnan(qes_normal_quantile(2.0)));
}

/* ------------------------------------------------------------------------ */
/* Welch-Satterthwaite                                                       */

/*
 * JCGM 100:2008 H.1 (end-gauge calibration), components in nm with their
 * dof (values also in refdata/gum/gum_examples_expected.md): u_c = 31.66 nm,
 * nu_eff = 16.75, truncated to 16; t_99(16) = 2.92; the GUM's U_99 = 2.92 x
 * 32 nm (u_c rounded to two digits) = 93 nm.
 */
Test(gum, welch_satterthwaite_gum_h1)
{
    const struct qes_budget_term t[] = {
            {"l_s", 25.0, 18}, {"delta_theta", 16.599, 2},   {"d2", 6.7, 8}, {"d0", 5.8, 24},
            {"d1", 3.9, 5},    {"delta_alpha", 2.88679, 50},
    };
    double uc2 = 0.0;
    for (size_t i = 0; i < 6; i++)
        uc2 += t[i].u * t[i].u;
    cr_assert(fabs(sqrt(uc2) - 31.66) < 0.005, "u_c = %.4f", sqrt(uc2));
    const double dof = qes_ws_dof(t, 6);
    cr_assert_eq(dof, 16.0, "nu_eff = %g", dof);
    const double k = qes_coverage_factor(0.99, dof);
    cr_assert(fabs(k - 2.9208) <= 0.5e-4 + 1e-9, "k = %.6f", k);
    cr_assert_eq(lround(round(k * 100) / 100 * 32.0), 93);
}

Test(gum, welch_satterthwaite_rules)
{
    /* one term: its own dof */
    const struct qes_budget_term one[] = {{"typeA", 0.3, 9}};
    cr_assert_eq(qes_ws_dof(one, 1), 9.0);
    /* three equal terms of 2 dof: 6 exactly; in plain double arithmetic
     * 1/sum((1/3)^2/2) comes out as 5.999..., which a bare floor makes 5 */
    const struct qes_budget_term eq[] = {{"a", 0.37, 2}, {"b", 0.37, 2}, {"c", 0.37, 2}};
    cr_assert_eq(qes_ws_dof(eq, 3), 6.0);
    /* truncation, not rounding: nu_eff = 2 (0.5^2 + 1)^2 / (1 + 0.5^4) = 2.94 */
    const struct qes_budget_term tr[] = {{"a", 1.0, 2}, {"b", 0.5, 2}};
    cr_assert_eq(qes_ws_dof(tr, 2), 2.0);
    /* Type B exact terms only add to u_c: 10 (1 + 1)^2 = 40 */
    const struct qes_budget_term mix[] = {{"typeA", 1.0, 10}, {"gain", 1.0, INFINITY}};
    cr_assert_eq(qes_ws_dof(mix, 2), 40.0);
    /* u == 0 terms are ignored, whatever their dof */
    const struct qes_budget_term z[] = {{"typeA", 0.5, 4}, {"gain", 0.0, 0.0}, {"x", 0.0, NAN}};
    cr_assert_eq(qes_ws_dof(z, 3), 4.0);
    /* infinite results */
    const struct qes_budget_term inf[] = {{"gain", 1.0, INFINITY}, {"x", 2.0, INFINITY}};
    cr_assert(isinf(qes_ws_dof(inf, 2)));
    const struct qes_budget_term zero[] = {{"typeA", 0.0, 5}, {"gain", 0.0, INFINITY}};
    cr_assert(isinf(qes_ws_dof(zero, 2)));
    cr_assert(isinf(qes_ws_dof(NULL, 0)));
    /* scale invariance: no overflow of u^4 for huge or tiny units */
    const struct qes_budget_term big[] = {{"a", 1e200, 2}, {"b", 1e200, 2}, {"c", 1e200, 2}};
    cr_assert_eq(qes_ws_dof(big, 3), 6.0);
    const struct qes_budget_term small[] = {{"a", 1e-200, 2}, {"b", 1e-200, 2}, {"c", 1e-200, 2}};
    cr_assert_eq(qes_ws_dof(small, 3), 6.0);
    /* invalid terms */
    const struct qes_budget_term neg[] = {{"a", -1.0, 2}};
    cr_assert(isnan(qes_ws_dof(neg, 1)));
    const struct qes_budget_term nodof[] = {{"a", 1.0, 0.0}};
    cr_assert(isnan(qes_ws_dof(nodof, 1)));
    cr_assert(isnan(qes_ws_dof(NULL, 2)));
}

/* ------------------------------------------------------------------------ */
/* Welford accumulator                                                       */

static uint64_t lcg_state;
static double lcg_uniform(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) * 0x1p-52 - 1.0;
}

/*
 * Large offset (1e9 and -3e9) with O(1) scatter: Welford against a long
 * double two-pass on the same doubles, and the naive one-pass formula as a
 * control that the data are hard.  Budget for Welford (n = 1000, u = 2^-53):
 *  - mean: each update rounds to ulp(3e9)/2 = 2.4e-7 and an error made at
 *    update k is damped to k/n of itself by the end, so |error| <= (n/2)
 *    2.4e-7 = 1.2e-4 (rigorous);
 *  - m2: the mean error E enters each term at first order with the sign of
 *    the deviation, so the sum grows like 2 E sigma sqrt(n); with E ~
 *    sqrt(n) 2.4e-7 = 7.6e-6 (random rounding) and m2 = n sigma^2 that is a
 *    relative 2 E / (sigma sqrt n) = 8e-7 for sigma = 0.58: asserted 1e-5.
 * The naive sum of squares carries absolute errors of ~n ulp(1e19) = 2e6
 * against m2 ~ 300: its relative error is >> 1.
 */
Test(gum, welford_large_offset)
{
    enum { N = 1000 };
    static double xs[N], ys[N];
    lcg_state = 99;
    for (size_t i = 0; i < N; i++) {
        const double d = lcg_uniform(), e = lcg_uniform();
        xs[i] = 1e9 + d;
        ys[i] = -3e9 + 0.5 * d + e;
    }
    struct qes_phasor_acc acc;
    qes_phasor_acc_reset(&acc);
    for (size_t i = 0; i < N; i++)
        qes_phasor_acc_add(&acc, xs[i], ys[i]);

    long double mx = 0, my = 0;
    for (size_t i = 0; i < N; i++) {
        mx += xs[i];
        my += ys[i];
    }
    mx /= N;
    my /= N;
    long double sxx = 0, syy = 0, sxy = 0;
    for (size_t i = 0; i < N; i++) {
        sxx += (xs[i] - mx) * (xs[i] - mx);
        syy += (ys[i] - my) * (ys[i] - my);
        sxy += (xs[i] - mx) * (ys[i] - my);
    }
    cr_assert_eq(acc.n, N);
    cr_assert(fabs(acc.mean_x - (double)mx) <= 1.2e-4);
    cr_assert(fabs(acc.mean_y - (double)my) <= 1.2e-4);
    const double exx = rel(acc.m2_xx, (double)sxx);
    const double eyy = rel(acc.m2_yy, (double)syy);
    const double exy = rel(acc.m2_xy, (double)sxy);
    cr_log_info("welford, offset 1e9: rel err m2_xx %.3g m2_yy %.3g m2_xy %.3g", exx, eyy, exy);
    cr_assert(exx <= 1e-5 && eyy <= 1e-5 && exy <= 1e-5, "%.3g %.3g %.3g", exx, eyy, exy);

    /* control: the textbook one-pass formula fails on these data */
    double s = 0, s2 = 0;
    for (size_t i = 0; i < N; i++) {
        s += xs[i];
        s2 += xs[i] * xs[i];
    }
    const double naive = s2 - s * s / N;
    cr_assert(rel(naive, (double)sxx) > 1e-2, "naive one-pass unexpectedly fine: %.3g",
              rel(naive, (double)sxx));
}

/*
 * NIST StRD NumAcc1 and NumAcc4 (data defined in the StRD description:
 * NumAcc4 = 10000000.2, then 500 x (10000000.1, 10000000.3)); certified
 * mean 10000000.2 and sd 0.1.  Budget NumAcc4: the decimal data are rounded
 * to double (ulp(1e7)/2 = 9.3e-10 against deviations of 0.1: 1.9e-8
 * relative on the sd) plus Welford's rounding (2e-8 by the budget of the
 * test above): asserted 1e-7 (also GSL's tolerance for NumAcc4).  NumAcc1
 * is exact in double: asserted to 1e-15.  y = -x checks the sign of m2_xy.
 */
Test(gum, welford_nist_numacc)
{
    struct qes_phasor_acc acc;
    qes_phasor_acc_reset(&acc);
    static const double a1[] = {10000001, 10000003, 10000002};
    for (size_t i = 0; i < 3; i++)
        qes_phasor_acc_add(&acc, a1[i], -a1[i]);
    cr_assert_eq(acc.mean_x, 10000002.0);
    cr_assert(fabs(sqrt(acc.m2_xx / 2) - 1.0) <= 1e-15);
    cr_assert(fabs(acc.m2_xy + acc.m2_xx) <= 1e-15);

    qes_phasor_acc_reset(&acc);
    qes_phasor_acc_add(&acc, 10000000.2, -10000000.2);
    for (int i = 0; i < 500; i++) {
        qes_phasor_acc_add(&acc, 10000000.1, -10000000.1);
        qes_phasor_acc_add(&acc, 10000000.3, -10000000.3);
    }
    cr_assert_eq(acc.n, 1001);
    cr_assert(rel(acc.mean_x, 10000000.2) <= 1e-15);
    const double sd = sqrt(acc.m2_xx / 1000.0);
    cr_log_info("NumAcc4: sd = %.17g (certified 0.1)", sd);
    cr_assert(rel(sd, 0.1) <= 1e-7, "sd = %.17g", sd);
    cr_assert(rel(-acc.m2_xy, acc.m2_xx) <= 1e-15);
}

/* ------------------------------------------------------------------------ */
/* Summary                                                                   */

/*
 * Four phasors about the mean R e^{j alpha}: +-delta along the radius and
 * +-eps across it.  In the rotated frame (radial u, tangential v) the
 * deviations are (d,0), (-d,0), (0,e), (0,-e): s_uu = 2 d^2 / 3, s_vv = 2 e^2
 * / 3, s_uv = 0, and with n = 4 the variances of the mean are d^2/6, e^2/6.
 * Hence u_r(A) = d/sqrt(6), u_phase(A) = e/(sqrt(6) R), and in x, y
 * var_x = c^2 d^2/6 + s^2 e^2/6, var_y = s^2 d^2/6 + c^2 e^2/6, which
 * exercises the covariance term.  Gain: u_gain_rel * (|x|, |y|, R).
 * Budget: deviations of 0.03..0.05 are computed from values ~2 (2 digits
 * lost) and go through ~20 operations: relative error < 1e-13; asserted
 * 1e-12.
 */
Test(gum, summary_known_phasors)
{
    const double R = 2.0, alpha = 0.7, d = 0.03, e = 0.05, g = 0.01;
    const double c = cos(alpha), s = sin(alpha);
    const double pts[4][2] = {
            {(R + d) * c, (R + d) * s},
            {(R - d) * c, (R - d) * s},
            {R * c - e * s, R * s + e * c},
            {R * c + e * s, R * s - e * c},
    };
    struct qes_phasor_acc acc;
    qes_phasor_acc_reset(&acc);
    for (size_t i = 0; i < 4; i++)
        qes_phasor_acc_add(&acc, pts[i][0], pts[i][1]);
    struct qes_phasor_summary sum;
    cr_assert_eq(qes_phasor_summarize(&acc, g, 0.95, &sum), 0);

    const double tol = 1e-12;
    cr_assert_eq(sum.n, 4);
    cr_assert(rel(sum.x, R * c) <= tol && rel(sum.y, R * s) <= tol);
    cr_assert(rel(sum.r, R) <= tol);
    cr_assert(fabs(sum.phase_rad - alpha) <= tol);
    const double ua_r = d / sqrt(6.0), ua_p = e / (sqrt(6.0) * R);
    const double var_x = (c * c * d * d + s * s * e * e) / 6.0;
    const double var_y = (s * s * d * d + c * c * e * e) / 6.0;
    cr_assert(rel(sum.u_x, sqrt(var_x + g * g * R * R * c * c)) <= tol, "u_x %.17g", sum.u_x);
    cr_assert(rel(sum.u_y, sqrt(var_y + g * g * R * R * s * s)) <= tol, "u_y %.17g", sum.u_y);
    const double u_r = sqrt(ua_r * ua_r + g * g * R * R);
    cr_assert(rel(sum.u_r, u_r) <= tol, "u_r %.17g vs %.17g", sum.u_r, u_r);
    cr_assert(rel(sum.u_phase_rad, ua_p) <= tol, "u_phase %.17g vs %.17g", sum.u_phase_rad, ua_p);

    /* budget */
    cr_assert_eq(sum.n_budget, 2);
    cr_assert_str_eq(sum.budget[0].name, "typeA");
    cr_assert(rel(sum.budget[0].u, ua_r) <= tol);
    cr_assert_eq(sum.budget[0].dof, 3.0);
    cr_assert_str_eq(sum.budget[1].name, "gain");
    cr_assert(rel(sum.budget[1].u, g * R) <= tol);
    cr_assert(isinf(sum.budget[1].dof));
    /* W-S: 3 (u_r / u_A)^4 = 3 (1 + 0.02^2 / 0.0122474^2)^2 = 40.3 -> 40 */
    cr_assert_eq(sum.dof, 40.0, "dof %g", sum.dof);
    cr_assert(fabs(sum.k - 2.0211) <= 0.5e-4 + 1e-9, "k %.6f", sum.k); /* GUM table, nu = 40 */
    cr_assert_eq(sum.k, qes_coverage_factor(0.95, 40.0));
    cr_assert(rel(sum.U_r, sum.k * u_r) <= tol);
    cr_assert_eq(sum.coverage, 0.95);
}

/* With u_gain_rel = 0 the gain term is still listed (u = 0), and the dof are
 * those of the Type A term exactly. */
Test(gum, summary_budget_always_lists_components)
{
    struct qes_phasor_acc acc;
    qes_phasor_acc_reset(&acc);
    lcg_state = 5;
    for (int i = 0; i < 25; i++)
        qes_phasor_acc_add(&acc, 1.0 + 0.01 * lcg_uniform(), -0.5 + 0.01 * lcg_uniform());
    struct qes_phasor_summary sum;
    cr_assert_eq(qes_phasor_summarize(&acc, 0.0, 0.9545, &sum), 0);
    cr_assert_eq(sum.n_budget, 2);
    cr_assert_str_eq(sum.budget[0].name, "typeA");
    cr_assert_str_eq(sum.budget[1].name, "gain");
    cr_assert_eq(sum.budget[1].u, 0.0);
    cr_assert_eq(sum.dof, 24.0);
    cr_assert_eq(sum.u_r, sum.budget[0].u);
    cr_assert_eq(sum.k, qes_coverage_factor(0.9545, 24.0));
    /* the phase of a point in the fourth quadrant */
    cr_assert(sum.phase_rad < 0 && sum.phase_rad > -pi_d / 2);
}

Test(gum, summary_single_block_has_nan_uncertainty)
{
    struct qes_phasor_acc acc;
    qes_phasor_acc_reset(&acc);
    qes_phasor_acc_add(&acc, 0.3, -0.4);
    struct qes_phasor_summary sum;
    cr_assert_eq(qes_phasor_summarize(&acc, 1e-6, 0.95, &sum), 0);
    cr_assert_eq(sum.n, 1);
    cr_assert_eq(sum.x, 0.3);
    cr_assert_eq(sum.y, -0.4);
    cr_assert(fabs(sum.r - 0.5) <= 1e-16);
    cr_assert(fabs(sum.phase_rad - atan2(-0.4, 0.3)) <= 1e-16);
    cr_assert(isnan(sum.u_x) && isnan(sum.u_y) && isnan(sum.u_r) && isnan(sum.u_phase_rad));
    cr_assert(isnan(sum.dof) && isnan(sum.k) && isnan(sum.U_r));
    cr_assert_eq(sum.n_budget, 2);
    cr_assert_str_eq(sum.budget[0].name, "typeA");
    cr_assert_str_eq(sum.budget[1].name, "gain");
}

Test(gum, summary_phase_conventions)
{
    /* mean at the origin: phase 0 (not atan2's +-0 or +-pi), u_phase NaN */
    struct qes_phasor_acc acc;
    qes_phasor_acc_reset(&acc);
    qes_phasor_acc_add(&acc, 1.0, 0.0);
    qes_phasor_acc_add(&acc, -1.0, 0.0);
    struct qes_phasor_summary sum;
    cr_assert_eq(qes_phasor_summarize(&acc, 0.0, 0.95, &sum), 0);
    cr_assert_eq(sum.r, 0.0);
    cr_assert_eq(sum.phase_rad, 0.0);
    cr_assert(!signbit(sum.phase_rad));
    cr_assert(isnan(sum.u_phase_rad));

    /* on the negative real axis with y = -0.0: pi, not -pi */
    struct qes_phasor_acc neg = {.n = 2, .mean_x = -1.0, .mean_y = -0.0};
    cr_assert_eq(qes_phasor_summarize(&neg, 0.0, 0.95, &sum), 0);
    cr_assert_eq(sum.phase_rad, pi_d);
}

Test(gum, summary_bad_arguments)
{
    struct qes_phasor_acc acc;
    qes_phasor_acc_reset(&acc);
    struct qes_phasor_summary sum;
    cr_assert_eq(qes_phasor_summarize(&acc, 0.0, 0.95, &sum), QES_EINVAL); /* n == 0 */
    qes_phasor_acc_add(&acc, 1.0, 1.0);
    qes_phasor_acc_add(&acc, 1.1, 0.9);
    cr_assert_eq(qes_phasor_summarize(&acc, 0.0, 0.0, &sum), QES_EINVAL);
    cr_assert_eq(qes_phasor_summarize(&acc, 0.0, 1.0, &sum), QES_EINVAL);
    cr_assert_eq(qes_phasor_summarize(&acc, 0.0, NAN, &sum), QES_EINVAL);
    cr_assert_eq(qes_phasor_summarize(&acc, -1e-6, 0.95, &sum), QES_EINVAL);
    cr_assert_eq(qes_phasor_summarize(&acc, NAN, 0.95, &sum), QES_EINVAL);
    cr_assert_eq(qes_phasor_summarize(NULL, 0.0, 0.95, &sum), QES_EINVAL);
    cr_assert_eq(qes_phasor_summarize(&acc, 0.0, 0.95, NULL), QES_EINVAL);
    cr_assert_eq(qes_phasor_summarize(&acc, 0.0, 0.95, &sum), 0);
}
