/*
 * Tests of dsp/budget: GUM budgets (JCGM 100 H.1, H.2), the law of
 * propagation through a vector model, degrees of freedom with correlated
 * inputs, and the Monte Carlo propagation of Supplement 1 (JCGM 101).
 *
 * The worked examples are from JCGM 100:2008 Annex H; the expected values
 * are those of ../shared/refdata/gum/gum_examples_expected.md (re-computed
 * there from the raw inputs, agreeing with the GUM's printed digits).  The
 * few raw numbers of H.2 are typed below from that file (they are the
 * GUM's Table H.2).
 *
 * Monte Carlo tolerances are statistical: with M independent trials the
 * standard error of a mean is sigma / sqrt(M), of a standard deviation
 * sigma sqrt((kappa - 1) / (4 M)) (kappa = kurtosis; <= 3 for every
 * distribution used in the linear tests, so 1 / sqrt(2 M) bounds it), of
 * a p-quantile sqrt(p (1 - p) / M) / pdf(quantile), of a correlation
 * coefficient (1 - r^2) / sqrt(M).  Every assertion allows 5 standard
 * errors; the seeds are fixed, so a pass is reproducible, and a 5-sigma
 * bound would still pass for more than 99.9999 % of seeds.
 */
#include "dsp/budget.h"

#include "common/err.h"
#include "dsp/gum.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(budget, .timeout = 300);

static double rel(double a, double b)
{
    return fabs(a - b) / fabs(b);
}

/* ------------------------------------------------------------------------ */
/* Inputs and budgets                                                        */

/* u from each kind.  Budget: one correctly rounded sqrt and one division,
 * each within 1/2 ulp: 2 ulp = 4.5e-16 relative asserted. */
Test(budget, input_kinds)
{
    static const struct {
        enum qes_unc_kind kind;
        double unc, k, u;
    } t[] = {
            {QES_UNC_STANDARD, 0.7, 0, 0.7},
            {QES_UNC_EXPANDED, 75, 3, 25},
            {QES_UNC_EXPANDED, 1.0, 2.0, 0.5},
            {QES_UNC_RECT, 3.0, 0, 1.7320508075688772935},    /* 3 / sqrt 3 = sqrt 3 */
            {QES_UNC_TRIANG, 6.0, 0, 2.4494897427831780982},  /* 6 / sqrt 6 = sqrt 6 */
            {QES_UNC_ARCSINE, 2.0, 0, 1.4142135623730950488}, /* 2 / sqrt 2 = sqrt 2 */
            {QES_UNC_RECT, 0.0, 0, 0.0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const struct qes_input in = {.kind = t[i].kind, .unc = t[i].unc, .k = t[i].k};
        double u = -1;
        cr_assert_eq(qes_input_u(&in, &u), 0, "row %zu", i);
        if (t[i].u == 0.0)
            cr_assert(u == 0.0);
        else
            cr_assert(rel(u, t[i].u) <= 4.5e-16, "row %zu: u = %.17g, expected %.17g", i, u,
                      t[i].u);
    }
    double u;
    const struct qes_input bad[] = {
            {.kind = QES_UNC_EXPANDED, .unc = 1, .k = 0},
            {.kind = QES_UNC_EXPANDED, .unc = 1, .k = -2},
            {.kind = QES_UNC_STANDARD, .unc = -1},
            {.kind = QES_UNC_RECT, .unc = NAN},
            {.kind = QES_UNC_RECT, .unc = INFINITY},
            {.kind = (enum qes_unc_kind)42, .unc = 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(qes_input_u(&bad[i], &u), QES_EINVAL, "bad row %zu accepted", i);
}

/*
 * JCGM 100 H.1, end gauge: the six components of Table H.1 with their
 * distributions as the GUM states them: l_s from a certificate U = 75 nm at
 * k = 3 (nu 18); delta_theta rectangular +-0.05 degC with c = -l_s alpha_s =
 * -575 nm/degC (nu 2); delta_alpha rectangular +-1e-6 /degC with c = -l_s
 * theta = +5e6 nm degC (nu 50); d0, d1, d2 as standard uncertainties.
 * Expected (refdata): u_c = 31.66 nm, nu_eff = 16.75 truncated to 16,
 * t_99(16) = 2.9208, U_99 = 93 nm.  Asserted to the printed digits (half a
 * unit of the last one); the arithmetic error is ~1e-15.
 */
Test(budget, gum_h1_end_gauge)
{
    const struct qes_input in[] = {
            {"l_s", 50000623.6, QES_UNC_EXPANDED, 75.0, 3.0, 1.0, 18},
            {"delta_theta", 0.0, QES_UNC_RECT, 0.05, 0, -575.0, 2},
            {"d2", 0.0, QES_UNC_STANDARD, 6.7, 0, 1.0, 8},
            {"d0", 215.0, QES_UNC_STANDARD, 5.8, 0, 1.0, 24},
            {"d1", 0.0, QES_UNC_STANDARD, 3.9, 0, 1.0, 5},
            {"delta_alpha", 0.0, QES_UNC_RECT, 1e-6, 0, 5e6, 50},
    };
    struct qes_budget_result res;
    struct qes_budget_term terms[6];
    cr_assert_eq(qes_budget_combine(in, 6, NULL, 0.99, &res, terms), 0);
    cr_log_info("H.1: u_c = %.6f nm, nu_eff = %g, k99 = %.6f, U99 = %.4f nm", res.u_c, res.dof,
                res.k, res.U);
    cr_assert(fabs(res.u_c - 31.66) <= 0.005, "u_c = %.6f nm, expected 31.66", res.u_c);
    cr_assert_eq(res.dof, 16.0, "nu_eff = %g, expected 16 (16.75 truncated)", res.dof);
    cr_assert(fabs(res.k - 2.9208) <= 0.5e-4, "k = %.6f", res.k);
    /* U99 = k u_c = 92.48 nm (+-0.015 from the 4 printed digits of u_c).
     * The GUM prints 93 nm because it multiplies the ROUNDED u_c = 32 nm
     * (H.1.6: 2.92 x 32 nm); refdata copies that.  Both are checked. */
    cr_assert(fabs(res.U - 2.9208 * 31.66) <= 2.9208 * 0.005 + 31.66 * 0.5e-4, "U99 = %.4f nm",
              res.U);
    cr_assert(fabs(res.k * round(res.u_c) - 93.0) < 0.5, "k x 32 nm = %.3f, GUM 93 nm",
              res.k * round(res.u_c));
    cr_assert_eq(res.coverage, 0.99);
    /* the terms for the record: |c_i| u_i with their dof, table H.1 */
    static const double tu[] = {25.0, 16.599, 6.7, 5.8, 3.9, 2.8868};
    static const double tnu[] = {18, 2, 8, 24, 5, 50};
    for (size_t i = 0; i < 6; i++) {
        cr_assert_str_eq(terms[i].name, in[i].name);
        cr_assert(fabs(terms[i].u - tu[i]) <= 0.5e-3, "%s: u = %.6f", in[i].name, terms[i].u);
        cr_assert_eq(terms[i].dof, tnu[i]);
    }
    /* independent components: the same dof as qes_ws_dof over the terms */
    cr_assert_eq(qes_ws_dof(terms, 6), res.dof);
}

/* Correlations: r = +1 adds the contributions linearly, r = -1 subtracts
 * them, r in between follows the law (GUM 5.2.2).  Budget: a few roundings
 * in a 2-term sum: 1e-15 relative. */
Test(budget, correlated_pairs)
{
    struct qes_input in[2] = {
            {"a", 1.0, QES_UNC_STANDARD, 3.0, 0, 2.0, 0},
            {"b", 1.0, QES_UNC_STANDARD, 4.0, 0, -0.5, 0},
    };
    /* contributions c u: 6 and -2 */
    static const double rs[] = {1.0, -1.0, 0.0, 0.3, -0.7};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        const double R[4] = {1.0, rs[i], rs[i], 1.0};
        struct qes_budget_result res;
        cr_assert_eq(qes_budget_combine(in, 2, R, 0.95, &res, NULL), 0);
        const double expect = sqrt(36.0 + 4.0 + 2.0 * 6.0 * -2.0 * rs[i]);
        cr_assert(rel(res.u_c, expect) <= 1e-15, "r = %g: u_c = %.17g, expected %.17g", rs[i],
                  res.u_c, expect);
        cr_assert(isinf(res.dof));
        cr_assert(fabs(res.k - 1.959963984540054) <= 1e-14);
        cr_assert(res.U == res.k * res.u_c);
    }
    /* r = +1 with c u = 6 and +2 (sign of c flipped): 8; r = -1: 4 */
    in[1].c = 0.5;
    const double Rp[4] = {1, 1, 1, 1}, Rm[4] = {1, -1, -1, 1};
    struct qes_budget_result res;
    cr_assert_eq(qes_budget_combine(in, 2, Rp, 0.95, &res, NULL), 0);
    cr_assert(rel(res.u_c, 8.0) <= 1e-15);
    cr_assert_eq(qes_budget_combine(in, 2, Rm, 0.95, &res, NULL), 0);
    cr_assert(rel(res.u_c, 4.0) <= 1e-15);
}

/*
 * Degrees of freedom with correlations (the grouping documented in
 * budget.h).  Two means from the same 11 paired observations (nu = 10 each,
 * r = 0.5, c = 1, u = 1): their sum is itself the mean of 11 values, so it
 * has exactly 10 dof (Willink 2007); plain W-S with the correlated u_c
 * would claim u_c^4 / (1/10 + 1/10) = 45.  With nu = 10 and 5 the group
 * takes 5.  An uncorrelated third term joins the W-S sum as usual.
 */
Test(budget, dof_with_correlated_groups)
{
    struct qes_input in[3] = {
            {"a", 0, QES_UNC_STANDARD, 1.0, 0, 1.0, 10},
            {"b", 0, QES_UNC_STANDARD, 1.0, 0, 1.0, 10},
            {"c", 0, QES_UNC_STANDARD, 0.0, 0, 1.0, 3},
    };
    const double R[9] = {1, 0.5, 0, 0.5, 1, 0, 0, 0, 1};
    struct qes_budget_result res;
    cr_assert_eq(qes_budget_combine(in, 3, R, 0.95, &res, NULL), 0);
    cr_assert(rel(res.u_c, sqrt(3.0)) <= 1e-15);
    cr_assert_eq(res.dof, 10.0, "correlated group: nu = %g, expected 10", res.dof);

    in[1].dof = 5;
    cr_assert_eq(qes_budget_combine(in, 3, R, 0.95, &res, NULL), 0);
    cr_assert_eq(res.dof, 5.0, "mixed group: nu = %g, expected the smallest, 5", res.dof);

    /* third term u = sqrt 3, nu = 3, uncorrelated: var 3 (group, nu 10) + 3 (nu 3):
     * nu_eff = 36 / (9/10 + 9/3) = 9.23 -> 9 */
    in[1].dof = 10;
    in[2].unc = sqrt(3.0);
    cr_assert_eq(qes_budget_combine(in, 3, R, 0.95, &res, NULL), 0);
    cr_assert_eq(res.dof, 9.0, "nu = %g, expected 9", res.dof);
    /* without correlations the plain W-S: 25 / (1/10 + 1/10 + 9/3) = 7.8 -> 7 */
    cr_assert_eq(qes_budget_combine(in, 3, NULL, 0.95, &res, NULL), 0);
    cr_assert_eq(res.dof, 7.0, "nu = %g, expected 7", res.dof);
}

/* Bad budgets: index-parameterized rows, each modifying a valid 3-input
 * budget; every one must give QES_EINVAL and leave the result untouched. */
enum { SET_KIND = 1, SET_UNC = 2, SET_K = 4, SET_C = 8, SET_DOF = 16 };

struct bad_budget {
    const char *what;
    int input; /* which input to modify (with `set`) */
    int set;   /* SET_* fields replaced by the values below */
    int kind;
    double unc, k, c, dof;
    int corr; /* correlation matrix id, see bad_corr */
    double coverage;
    size_t n;
};

static const double bad_corr[][9] = {
        {1, 0, 0, 0, 1, 0, 0, 0, 1},                   /* 0: fine */
        {1, 0.2, 0, 0.3, 1, 0, 0, 0, 1},               /* 1: not symmetric */
        {1, 0, 0, 0, 0.9, 0, 0, 0, 1},                 /* 2: diagonal != 1 */
        {1, 1.2, 0, 1.2, 1, 0, 0, 0, 1},               /* 3: |r| > 1 */
        {1, NAN, 0, NAN, 1, 0, 0, 0, 1},               /* 4: NaN */
        {1, -0.9, -0.9, -0.9, 1, -0.9, -0.9, -0.9, 1}, /* 5: not PSD */
};

static const struct bad_budget bad_budgets[] = {
        {"n = 0", 0, 0, 0, 0, 0, 0, 0, 0, 0.95, 0},
        {"coverage 0", 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 3},
        {"coverage 1", 0, 0, 0, 0, 0, 0, 0, 0, 1.0, 3},
        {"coverage NaN", 0, 0, 0, 0, 0, 0, 0, 0, NAN, 3},
        {"negative u", 1, SET_UNC, 0, -1.0, 0, 0, 0, 0, 0.95, 3},
        {"infinite u", 1, SET_UNC, 0, INFINITY, 0, 0, 0, 0, 0.95, 3},
        {"expanded with k = 0", 2, SET_KIND | SET_K, QES_UNC_EXPANDED, 0, 0.0, 0, 0, 0, 0.95, 3},
        {"unknown kind", 0, SET_KIND, 17, 0, 0, 0, 0, 0, 0.95, 3},
        {"negative dof", 0, SET_DOF, 0, 0, 0, 0, -4.0, 0, 0.95, 3},
        {"NaN dof", 0, SET_DOF, 0, 0, 0, 0, NAN, 0, 0.95, 3},
        {"infinite c", 0, SET_C, 0, 0, 0, INFINITY, 0, 0, 0.95, 3},
        {"NaN c", 0, SET_C, 0, 0, 0, NAN, 0, 0, 0.95, 3},
        {"asymmetric corr", 0, 0, 0, 0, 0, 0, 0, 1, 0.95, 3},
        {"corr diagonal 0.9", 0, 0, 0, 0, 0, 0, 0, 2, 0.95, 3},
        {"|r| > 1", 0, 0, 0, 0, 0, 0, 0, 3, 0.95, 3},
        {"NaN r", 0, 0, 0, 0, 0, 0, 0, 4, 0.95, 3},
        {"corr not PSD", 0, 0, 0, 0, 0, 0, 0, 5, 0.95, 3},
};
#define N_BAD_BUDGETS (sizeof bad_budgets / sizeof bad_budgets[0])

ParameterizedTestParameters(budget, bad_budget_refused)
{
    static size_t idx[N_BAD_BUDGETS];
    for (size_t i = 0; i < N_BAD_BUDGETS; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD_BUDGETS);
}

ParameterizedTest(size_t *ip, budget, bad_budget_refused)
{
    const struct bad_budget *b = &bad_budgets[*ip];
    struct qes_input in[3] = {
            {"a", 1, QES_UNC_STANDARD, 1.0, 0, 1.0, 0},
            {"b", 2, QES_UNC_RECT, 1.0, 0, 1.0, 5},
            {"c", 3, QES_UNC_STANDARD, 1.0, 0, 1.0, 9},
    };
    struct qes_input *p = &in[b->input];
    if (b->set & SET_KIND)
        p->kind = (enum qes_unc_kind)b->kind;
    if (b->set & SET_UNC)
        p->unc = b->unc;
    if (b->set & SET_K)
        p->k = b->k;
    if (b->set & SET_C)
        p->c = b->c;
    if (b->set & SET_DOF)
        p->dof = b->dof;
    const struct qes_budget_result sentinel = {.u_c = 12345.0};
    struct qes_budget_result res = sentinel;
    const int rc = qes_budget_combine(in, b->n, bad_corr[b->corr], b->coverage, &res, NULL);
    cr_assert_eq(rc, QES_EINVAL, "%s: got %d", b->what, rc);
    cr_assert_eq(res.u_c, 12345.0, "%s: result written", b->what);
}

/* The valid base of the table above passes (else every row would pass for
 * the wrong reason). */
Test(budget, bad_budget_base_is_valid)
{
    const struct qes_input in[3] = {
            {"a", 1, QES_UNC_STANDARD, 1.0, 0, 1.0, 0},
            {"b", 2, QES_UNC_RECT, 1.0, 0, 1.0, 5},
            {"c", 3, QES_UNC_STANDARD, 1.0, 0, 1.0, 9},
    };
    struct qes_budget_result res;
    cr_assert_eq(qes_budget_combine(in, 3, bad_corr[0], 0.95, &res, NULL), 0);
    cr_assert_eq(qes_budget_combine(in, 3, NULL, 0.95, &res, NULL), 0);
    cr_assert_eq(qes_budget_combine(NULL, 3, NULL, 0.95, &res, NULL), QES_EINVAL);
    cr_assert_eq(qes_budget_combine(in, 3, NULL, 0.95, NULL, NULL), QES_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* GUM H.2: R, X, |Z| from V, I, phi                                         */

/* Table H.2 of JCGM 100 (as typed in refdata gum_examples_expected.md):
 * V / V, I / mA, phi / rad in 5 simultaneous sets. */
static const double h2_data[5][3] = {
        {5.007, 19.663, 1.0456}, {4.994, 19.639, 1.0438}, {5.005, 19.640, 1.0468},
        {4.990, 19.685, 1.0428}, {4.999, 19.678, 1.0433},
};

/* R = V/I cos phi, X = V/I sin phi, Z = V/I, with I in mA */
static int h2_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    const double z = x[0] / (x[1] * 1e-3);
    y[0] = z * cos(x[2]);
    y[1] = z * sin(x[2]);
    y[2] = z;
    return 0;
}

/* |a - b| <= half a unit of the last printed digit `d` */
#define ASSERT_DIGITS(a, b, d, what)                                                          \
    cr_assert(fabs((a) - (b)) <= 0.5 * (d) * (1 + 1e-9), "%s = %.8g, expected %.8g (+-%.2g)", \
              what, (double)(a), (double)(b), 0.5 * (d))

/*
 * Means, standard uncertainties of the means and correlation coefficients
 * of the inputs (GUM H.2.3, Table H.3, refdata to 3-4 digits).
 */
Test(budget, gum_h2_input_statistics)
{
    double mean[3], cov[9], u[3], r[9];
    cr_assert_eq(qes_mean_cov(&h2_data[0][0], 5, 3, mean, cov), 0);
    cr_assert_eq(qes_cov_to_corr(cov, 3, u, r), 0);
    ASSERT_DIGITS(mean[0], 4.9990, 1e-4, "mean V");
    ASSERT_DIGITS(mean[1], 19.6610, 1e-4, "mean I");
    ASSERT_DIGITS(mean[2], 1.04446, 1e-5, "mean phi");
    ASSERT_DIGITS(u[0], 3.2e-3, 1e-4, "u(V)");
    ASSERT_DIGITS(u[1], 9.5e-3, 1e-4, "u(I)");
    ASSERT_DIGITS(u[2], 7.5e-4, 1e-5, "u(phi)");
    ASSERT_DIGITS(r[1], -0.355, 1e-3, "r(V,I)");
    ASSERT_DIGITS(r[2], 0.858, 1e-3, "r(V,phi)");
    ASSERT_DIGITS(r[5], -0.645, 1e-3, "r(I,phi)");
    cr_assert(r[3] == r[1] && r[6] == r[2] && r[7] == r[5] && r[0] == 1 && r[4] == 1);
    cr_log_info("H.2 inputs: u = %.5g %.5g %.5g; r(V,I) %.5f r(V,phi) %.5f r(I,phi) %.5f", u[0],
                u[1], u[2], r[1], r[2], r[5]);
}

/*
 * Approach 1 (GUM H.2.4): propagate the means with their correlations
 * through the vector model.  Expected (refdata, 4 decimals): R = 127.7322
 * u 0.0711, X = 219.8465 u 0.2956, Z = 254.2597 u 0.2363, r(R,X) = -0.5884,
 * r(R,Z) = -0.4853, r(X,Z) = 0.9925.  Budget: the numerical Jacobian is
 * within ~1e-10 relative (checked against the analytic one below), far
 * inside half a unit of the 4th decimal.  dof: all three inputs come from
 * the same 5 sets (nu = 4) and form one correlated group: 4, as GTC.
 */
Test(budget, gum_h2_approach1_vector_propagation)
{
    double mean[3], cov[9], u[3], r[9];
    cr_assert_eq(qes_mean_cov(&h2_data[0][0], 5, 3, mean, cov), 0);
    cr_assert_eq(qes_cov_to_corr(cov, 3, u, r), 0);
    struct qes_input in[3];
    static const char *names[3] = {"V", "I", "phi"};
    for (int i = 0; i < 3; i++)
        in[i] = (struct qes_input){names[i], mean[i], QES_UNC_STANDARD, u[i], 0, 0, 4};
    const struct qes_model m = {.f = h2_model, .n_in = 3, .n_out = 3};
    double y[3], uy[3], covy[9], ry[9], jac[9], dof[3];
    struct qes_propagation p = {y, uy, covy, ry, jac, dof};
    cr_assert_eq(qes_propagate(&m, in, r, &p), 0);
    cr_log_info("H.2 approach 1: R %.6f (%.6f)  X %.6f (%.6f)  Z %.6f (%.6f)", y[0], uy[0], y[1],
                uy[1], y[2], uy[2]);
    cr_log_info("  r(R,X) %.6f r(R,Z) %.6f r(X,Z) %.6f; dof %g %g %g", ry[1], ry[2], ry[5], dof[0],
                dof[1], dof[2]);
    ASSERT_DIGITS(y[0], 127.7322, 1e-4, "R");
    ASSERT_DIGITS(y[1], 219.8465, 1e-4, "X");
    ASSERT_DIGITS(y[2], 254.2597, 1e-4, "Z");
    ASSERT_DIGITS(uy[0], 0.0711, 1e-4, "u(R)");
    ASSERT_DIGITS(uy[1], 0.2956, 1e-4, "u(X)");
    ASSERT_DIGITS(uy[2], 0.2363, 1e-4, "u(Z)");
    ASSERT_DIGITS(ry[1], -0.5884, 1e-4, "r(R,X)");
    ASSERT_DIGITS(ry[2], -0.4853, 1e-4, "r(R,Z)");
    ASSERT_DIGITS(ry[5], 0.9925, 1e-4, "r(X,Z)");
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(dof[k], 4.0, "output %d: dof %g, expected 4 (GTC)", k, dof[k]);
        cr_assert(ry[k * 3 + k] == 1.0);
        cr_assert(covy[k * 3 + k] == uy[k] * uy[k] || rel(covy[k * 3 + k], uy[k] * uy[k]) < 1e-15);
    }
    /* the numerical Jacobian against the analytic one: 1e-9 relative (the
     * step budget of budget.h gives ~1e-10 for this smooth model) */
    const double V = mean[0], I = mean[1] * 1e-3, ph = mean[2];
    const double ja[9] = {
            cos(ph) / I * 1e0, -V * cos(ph) / (I * I) * 1e-3, -V / I * sin(ph),
            sin(ph) / I,       -V * sin(ph) / (I * I) * 1e-3, V / I * cos(ph),
            1.0 / I,           -V / (I * I) * 1e-3,           0.0,
    };
    for (int i = 0; i < 9; i++) {
        if (ja[i] == 0.0)
            cr_assert(fabs(jac[i]) <= 1e-9 * 300.0, "jac[%d] = %g", i, jac[i]);
        else
            cr_assert(rel(jac[i], ja[i]) <= 1e-9, "jac[%d] = %.17g, analytic %.17g (rel %.3g)", i,
                      jac[i], ja[i], rel(jac[i], ja[i]));
    }
    /* GUM Table H.4 (3 significant digits of the correlations) */
    ASSERT_DIGITS(ry[1], -0.588, 1e-3, "r(R,X) GUM");
    ASSERT_DIGITS(ry[2], -0.485, 1e-3, "r(R,Z) GUM");
    ASSERT_DIGITS(ry[5], 0.993, 1e-3, "r(X,Z) GUM");
}

/*
 * Approach 2 (GUM H.2.5): R, X, Z per set, then their means and covariance
 * of the means.  Expected: R = 127.7316 u 0.0713, X = 219.8469 u 0.2955,
 * Z = 254.2600 u 0.2362 (refdata); GUM Table H.4 correlations -0.588,
 * -0.485, 0.993.  Pure arithmetic: error ~1e-13.
 */
Test(budget, gum_h2_approach2_per_set)
{
    double out[5][3];
    for (int t = 0; t < 5; t++)
        h2_model(h2_data[t], out[t], NULL);
    double mean[3], cov[9], u[3], r[9];
    cr_assert_eq(qes_mean_cov(&out[0][0], 5, 3, mean, cov), 0);
    cr_assert_eq(qes_cov_to_corr(cov, 3, u, r), 0);
    cr_log_info("H.2 approach 2: R %.6f (%.6f)  X %.6f (%.6f)  Z %.6f (%.6f); r %.5f %.5f %.5f",
                mean[0], u[0], mean[1], u[1], mean[2], u[2], r[1], r[2], r[5]);
    ASSERT_DIGITS(mean[0], 127.7316, 1e-4, "R");
    ASSERT_DIGITS(mean[1], 219.8469, 1e-4, "X");
    ASSERT_DIGITS(mean[2], 254.2600, 1e-4, "Z");
    ASSERT_DIGITS(u[0], 0.0713, 1e-4, "u(R)");
    ASSERT_DIGITS(u[1], 0.2955, 1e-4, "u(X)");
    ASSERT_DIGITS(u[2], 0.2362, 1e-4, "u(Z)");
    ASSERT_DIGITS(r[1], -0.588, 1e-3, "r(R,X)");
    ASSERT_DIGITS(r[2], -0.485, 1e-3, "r(R,Z)");
    ASSERT_DIGITS(r[5], 0.993, 1e-3, "r(X,Z)");
}

/* The reference file, when present, still holds the numbers typed above
 * (a guard against the two drifting apart). */
Test(budget, gum_h2_refdata_agrees)
{
    const char *ref = qes_test_refdata();
    if (!ref)
        cr_skip_test("../shared/refdata is absent: gum_examples_expected.md not checked");
    char path[4200];
    snprintf(path, sizeof path, "%s/gum/gum_examples_expected.md", ref);
    char *text = qes_test_slurp(path, NULL);
    if (!text)
        cr_skip_test("%s is absent", path);
    static const char *needles[] = {
            "V/V = 5.007 4.994 5.005 4.990 4.999",
            "I/mA = 19.663 19.639 19.640 19.685 19.678",
            "phi/rad = 1.0456 1.0438 1.0468 1.0428 1.0433",
            "R = 127.7322 Ω u=0.0711; X = 219.8465 Ω u=0.2956; |Z| = 254.2597 Ω u=0.2363",
            "r(R,X) = -0.5884, r(R,Z) = -0.4853, r(X,Z) = 0.9925",
            "Expected: u_c(l) = 31.66 nm",
    };
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        cr_expect_not_null(strstr(text, needles[i]), "refdata no longer contains \"%s\"",
                           needles[i]);
    free(text);
}

/* ------------------------------------------------------------------------ */
/* Linear propagation: properties                                            */

/* y0 = 2 a - 3 b + c, y1 = a + b (linear: J exact up to rounding) */
static int linear_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    y[0] = 2.0 * x[0] - 3.0 * x[1] + x[2];
    y[1] = x[0] + x[1];
    return 0;
}

/*
 * A linear model gives the same u as the budget with c = J, and the
 * analytic covariance of the outputs.  Budget: central differences of a
 * linear function are exact up to the rounding of f (eps |y| / h, here
 * ~1e-11 relative on J); asserted 1e-9.
 */
Test(budget, propagate_linear_matches_budget)
{
    const double R[9] = {1, 0.4, -0.2, 0.4, 1, 0.1, -0.2, 0.1, 1};
    struct qes_input in[3] = {
            {"a", 10.0, QES_UNC_STANDARD, 0.5, 0, 2.0, 0},
            {"b", -3.0, QES_UNC_RECT, 0.6, 0, -3.0, 0},
            {"c", 0.0, QES_UNC_EXPANDED, 0.2, 2.0, 1.0, 0},
    };
    const struct qes_model m = {.f = linear_model, .n_in = 3, .n_out = 2};
    double y[2], u[2], cov[4], jac[6];
    struct qes_propagation p = {.y = y, .u = u, .cov = cov, .jac = jac};
    cr_assert_eq(qes_propagate(&m, in, R, &p), 0);
    struct qes_budget_result res;
    cr_assert_eq(qes_budget_combine(in, 3, R, 0.95, &res, NULL), 0);
    cr_assert(rel(u[0], res.u_c) <= 1e-9, "u = %.17g, budget %.17g", u[0], res.u_c);
    cr_assert(y[0] == 2.0 * 10.0 + 9.0 && y[1] == 7.0);
    const double ua = 0.5, ub = 0.6 / sqrt(3.0);
    const double c01 = 2 * ua * ua - 3 * ub * ub + (2 - 3) * 0.4 * ua * ub + 1 * (-0.2) * 0.1 * ua +
                       1 * 0.1 * 0.1 * ub;
    cr_assert(rel(cov[1], c01) <= 1e-9, "cov01 = %.17g, expected %.17g", cov[1], c01);
    cr_assert(cov[1] == cov[2]);
    const double v1 = ua * ua + ub * ub + 2 * 0.4 * ua * ub;
    cr_assert(rel(u[1], sqrt(v1)) <= 1e-9);
    static const double jt[6] = {2, -3, 1, 1, 1, 0};
    for (int i = 0; i < 6; i++)
        cr_assert(fabs(jac[i] - jt[i]) <= 1e-9 * 3, "jac[%d] = %.17g", i, jac[i]);
}

static int cube_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    y[0] = x[0] * x[0] * x[0];
    return 0;
}

/*
 * The step policy (budget.h).  x = 2, u = 0.1: h = 2^-17 * 2 = 1.5e-5;
 * truncation h^2 f'''/(6 f') = 1.9e-11 and rounding eps |y| / (h |J|) = 1e-11
 * relative on J = 3 x^2: asserted 1e-9.  x = 1e4 with u = 1e-5 (1e-9
 * relative, as for a Josephson voltage): h = u, so J has a rounding error
 * up to ~eps |y| / h = 22 (7e-8 relative; 4 eps asserted: 2.9e-7), and the
 * contribution J u = 3e3 is accurate to ~eps |y| = 2.2e-4 absolute (4 eps
 * |y| = 8.9e-4 asserted), 3e-7 of u.  x = 0 with u = 1 (an offset):
 * h = 2^-17, the cube's difference quotient is h^2 = 5.8e-11 instead of 0
 * (asserted below 1e-9).
 */
Test(budget, propagate_step_policy)
{
    struct qes_input in = {"x", 2.0, QES_UNC_STANDARD, 0.1, 0, 0, 0};
    const struct qes_model m = {.f = cube_model, .n_in = 1, .n_out = 1};
    double jac, u;
    struct qes_propagation p = {.u = &u, .jac = &jac};
    cr_assert_eq(qes_propagate(&m, &in, NULL, &p), 0);
    cr_assert(rel(jac, 12.0) <= 1e-9, "J = %.17g, expected 12 (rel %.3g)", jac, rel(jac, 12.0));
    in.value = 1e4;
    in.unc = 1e-5;
    cr_assert_eq(qes_propagate(&m, &in, NULL, &p), 0);
    cr_log_info("x = 1e4, u = 1e-5: J rel err %.3g, u abs err %.3g", rel(jac, 3e8), u - 3e3);
    cr_assert(rel(jac, 3e8) <= 2.9e-7, "J = %.17g, expected 3e8 (rel %.3g)", jac, rel(jac, 3e8));
    cr_assert(fabs(u - 3e3) <= 8.9e-4, "u = %.17g, expected 3e3", u);
    in.value = 0.0;
    in.unc = 1.0;
    cr_assert_eq(qes_propagate(&m, &in, NULL, &p), 0);
    cr_assert(fabs(jac) <= 1e-9, "J at 0 = %g", jac);
}

static int square_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    y[0] = x[0] * x[0];
    return 0;
}

static int failing_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    y[0] = x[0];
    return x[0] > 1.0 ? QES_ERANGE : 0;
}

static int positive_rc_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    y[0] = x[0];
    return 7;
}

Test(budget, propagate_edge_cases)
{
    /* y = x^2 at x = 0: the linearisation gives u = 0 exactly (symmetric
     * differences cancel), which is why Monte Carlo exists (below) */
    const struct qes_input in = {"x", 0.0, QES_UNC_STANDARD, 1.0, 0, 0, 0};
    const struct qes_model sq = {.f = square_model, .n_in = 1, .n_out = 1};
    double u = -1, dof = 0;
    struct qes_propagation p = {.u = &u, .dof = &dof};
    cr_assert_eq(qes_propagate(&sq, &in, NULL, &p), 0);
    cr_assert(u == 0.0, "u = %g", u);
    cr_assert(isinf(dof));
    /* a model error is passed through: x + h > 1 */
    const struct qes_input near = {"x", 1.0, QES_UNC_STANDARD, 0.1, 0, 0, 0};
    const struct qes_model fm = {.f = failing_model, .n_in = 1, .n_out = 1};
    cr_assert_eq(qes_propagate(&fm, &near, NULL, &p), QES_ERANGE);
    const struct qes_model pm = {.f = positive_rc_model, .n_in = 1, .n_out = 1};
    cr_assert_eq(qes_propagate(&pm, &in, NULL, &p), QES_EINVAL);
    /* bad models and inputs */
    const struct qes_model none = {.f = NULL, .n_in = 1, .n_out = 1};
    const struct qes_model zero_in = {.f = square_model, .n_in = 0, .n_out = 1};
    const struct qes_model zero_out = {.f = square_model, .n_in = 1, .n_out = 0};
    cr_assert_eq(qes_propagate(&none, &in, NULL, &p), QES_EINVAL);
    cr_assert_eq(qes_propagate(&zero_in, &in, NULL, &p), QES_EINVAL);
    cr_assert_eq(qes_propagate(&zero_out, &in, NULL, &p), QES_EINVAL);
    cr_assert_eq(qes_propagate(NULL, &in, NULL, &p), QES_EINVAL);
    cr_assert_eq(qes_propagate(&sq, NULL, NULL, &p), QES_EINVAL);
    cr_assert_eq(qes_propagate(&sq, &in, NULL, NULL), QES_EINVAL);
    const struct qes_input nan_x = {"x", NAN, QES_UNC_STANDARD, 1.0, 0, 0, 0};
    cr_assert_eq(qes_propagate(&sq, &nan_x, NULL, &p), QES_EINVAL);
    const double badr[1] = {0.5};
    cr_assert_eq(qes_propagate(&sq, &in, badr, &p), QES_EINVAL);
    /* every output optional */
    struct qes_propagation nothing = {0};
    cr_assert_eq(qes_propagate(&sq, &in, NULL, &nothing), 0);
}

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */

/*
 * splitmix64 from 0 gives the published first outputs 0xe220a8397b1dcdaf,
 * 0x6e789e6aa1b965f4, ...; xoshiro256** from that state was computed by an
 * independent Python transcription of the reference C code (Blackman and
 * Vigna): 0x99ec5f36cb75f2b4, 0xbf6e1f784956452a, 0x1a5f849d4933e6e0.
 */
Test(budget, rng_reference_values)
{
    struct qes_rng r;
    qes_rng_seed(&r, 0);
    cr_assert_eq(r.s[0], 0xe220a8397b1dcdafu);
    cr_assert_eq(r.s[1], 0x6e789e6aa1b965f4u);
    cr_assert_eq(r.s[2], 0x06c45d188009454fu);
    cr_assert_eq(r.s[3], 0xf88bb8a8724c81ecu);
    cr_assert_eq(qes_rng_next(&r), 0x99ec5f36cb75f2b4u);
    cr_assert_eq(qes_rng_next(&r), 0xbf6e1f784956452au);
    cr_assert_eq(qes_rng_next(&r), 0x1a5f849d4933e6e0u);
    for (int i = 0; i < 1000; i++) {
        const double v = qes_rng_uniform(&r);
        cr_assert(v >= 0.0 && v < 1.0);
    }
    cr_assert(isnan(qes_rng_gamma(&r, 0.0)));
    cr_assert(isnan(qes_rng_gamma(&r, -1.0)));
    cr_assert(isnan(qes_rng_student_t(&r, 0.0)));
}

/*
 * Moments of the samplers, n = 1e6 draws each.  Gamma(a): mean a, var a
 * (SE of the mean sqrt(a / n); of the variance ~ sqrt((mu4 - a^2) / n) with
 * mu4 = 3a^2 + 6a: asserted 5 SE).  Normal: mean 0 (SE 1e-3), var 1 (SE
 * sqrt(2/n)).  Student t_5: var 5/3, the kurtosis is 9, SE of var =
 * sqrt((mu4 - var^2)/n) with mu4 = 25: 4.7e-3.
 */
Test(budget, rng_sampler_moments)
{
    struct qes_rng r;
    qes_rng_seed(&r, 12345);
    const size_t n = 1000000;
    static const double shapes[] = {0.3, 0.5, 1.0, 2.5, 10.0};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const double a = shapes[s];
        double m = 0, m2 = 0;
        for (size_t i = 0; i < n; i++) {
            const double g = qes_rng_gamma(&r, a);
            cr_assert(g > 0.0);
            const double d = g - m;
            m += d / (double)(i + 1);
            m2 += d * (g - m);
        }
        const double var = m2 / (double)(n - 1);
        const double se_m = sqrt(a / n), se_v = sqrt((3 * a * a + 6 * a - a * a) / n);
        cr_assert(fabs(m - a) <= 5 * se_m, "gamma(%g): mean %.6f", a, m);
        cr_assert(fabs(var - a) <= 5 * se_v, "gamma(%g): var %.6f", a, var);
    }
    double m = 0, m2 = 0, tm2 = 0;
    for (size_t i = 0; i < n; i++) {
        const double z = qes_rng_normal(&r);
        const double d = z - m;
        m += d / (double)(i + 1);
        m2 += d * (z - m);
        const double t = qes_rng_student_t(&r, 5.0);
        tm2 += t * t;
    }
    cr_assert(fabs(m) <= 5e-3, "normal mean %g", m);
    cr_assert(fabs(m2 / (n - 1) - 1.0) <= 5 * sqrt(2.0 / n), "normal var %g", m2 / (n - 1));
    cr_assert(fabs(tm2 / n - 5.0 / 3.0) <= 5 * sqrt((25.0 - 25.0 / 9.0) / n), "t5 var %g", tm2 / n);
}

/* ------------------------------------------------------------------------ */
/* Monte Carlo                                                               */

static int identity_model(const double *x, double *y, void *ctx)
{
    const size_t n = *(const size_t *)ctx;
    for (size_t i = 0; i < n; i++)
        y[i] = x[i];
    return 0;
}

/*
 * Each distribution alone: the MC standard deviation equals u from
 * qes_input_u (standard error sqrt((kappa - 1) / (4M)) relative: kappa =
 * 1.8 rectangular, 2.4 triangular, 1.5 arcsine, 3 normal; for t_10 the
 * expected SD is u sqrt(10/8) and kappa = 4).  Means: 5 u / sqrt(M).  The
 * shortest 95 % intervals: rectangular +-0.95 a; arcsine: the density is
 * highest at the ends, so the shortest interval is NOT central; normal and
 * t_10: +-1.96 u and +-t_95(10) u (standard error of
 * a quantile sqrt(p(1-p)/M) / pdf).
 */
Test(budget, mc_single_distributions)
{
    const size_t M = 1000000;
    const size_t n = 5;
    struct qes_input in[5] = {
            {"normal", 1.0, QES_UNC_STANDARD, 0.5, 0, 0, 0},
            {"rect", -2.0, QES_UNC_RECT, 3.0, 0, 0, 7},
            {"triang", 0.0, QES_UNC_TRIANG, 1.0, 0, 0, 0},
            {"arcsine", 5.0, QES_UNC_ARCSINE, 2.0, 0, 0, 0},
            {"t10", 0.0, QES_UNC_EXPANDED, 2.0, 2.0, 0, 10},
    };
    static const double kappa[5] = {3.0, 1.8, 2.4, 1.5, 4.0};
    const struct qes_model m = {.f = identity_model, .ctx = (void *)&n, .n_in = 5, .n_out = 5};
    const struct qes_mc_desc d = {.trials = M, .seed = 1, .coverage = 0.95};
    struct qes_mc_stat st[5];
    double cov[25];
    cr_assert_eq(qes_mc_propagate(&m, in, NULL, &d, st, cov), 0);
    for (int i = 0; i < 5; i++) {
        double u;
        qes_input_u(&in[i], &u);
        const double sd = i == 4 ? u * sqrt(10.0 / 8.0) : u;
        const double bound = 5 * sqrt((kappa[i] - 1) / (4.0 * M));
        cr_log_info("%-8s mean %+.6f u %.6f (expected %.6f, rel %.2e, 5 SE %.2e) shortest "
                    "[%.4f, %.4f] symmetric [%.4f, %.4f]",
                    in[i].name, st[i].mean, st[i].u, sd, rel(st[i].u, sd), bound, st[i].lo,
                    st[i].hi, st[i].lo_sym, st[i].hi_sym);
        cr_assert(rel(st[i].u, sd) <= bound, "%s: u %.6f, expected %.6f", in[i].name, st[i].u, sd);
        cr_assert(fabs(st[i].mean - in[i].value) <= 5 * sd / sqrt((double)M), "%s: mean %.6f",
                  in[i].name, st[i].mean);
        cr_assert(rel(sqrt(cov[i * 6]), st[i].u) <= 1e-12);
    }
    /* independent inputs: sample correlations within 5 / sqrt(M) */
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < i; j++)
            cr_assert(fabs(cov[i * 5 + j] / (st[i].u * st[j].u)) <= 5 / sqrt((double)M),
                      "r(%d,%d) = %g", i, j, cov[i * 5 + j] / (st[i].u * st[j].u));
    /* normal: +-1.96 u; the quantile SE is sqrt(.025 .975 / M) / phi(1.96)
     * = 2.7e-3 u */
    const double z = qes_coverage_factor(0.95, INFINITY);
    cr_assert(fabs(st[0].hi - st[0].lo - 2 * z * 0.5) <= 2 * 5 * 2.7e-3 * 0.5);
    cr_assert(fabs(st[0].hi_sym - (1.0 + z * 0.5)) <= 5 * 2.7e-3 * 0.5);
    /* rectangular on [-5, 1]: any interval of 0.95 * 6 is shortest; the
     * symmetric one is [-4.85, 0.85] (quantile SE sqrt(.025 .975 / M) * 6) */
    cr_assert(fabs(st[1].hi - st[1].lo - 5.7) <= 2 * 5 * 1.6e-4 * 6);
    cr_assert(fabs(st[1].lo_sym + 4.85) <= 5 * 1.6e-4 * 6);
    /* arcsine on [3, 7], CDF 1/2 + asin(t/a)/pi: the density grows towards
     * the ends, so the shortest 95 % interval leaves the 5 % out at ONE end:
     * length a (1 + cos(0.05 pi)) = 3.97538, against the symmetric 2 a
     * sin(0.475 pi) = 3.98767.  Quantile SE: pdf 1.02 at the 5 % point
     * (2.1e-4), 2.03 at the 2.5 % point (7.7e-5); asserted 5 SE on each end. */
    const double pi = 3.14159265358979323846;
    const double sym_len = 2 * 2.0 * sin(0.475 * pi), short_len = 2.0 * (1 + cos(0.05 * pi));
    cr_assert(fabs(st[3].hi_sym - st[3].lo_sym - sym_len) <= 2 * 5 * 7.7e-5, "%.6f",
              st[3].hi_sym - st[3].lo_sym);
    cr_assert(fabs(st[3].hi - st[3].lo - short_len) <= 2 * 5 * 2.1e-4,
              "arcsine shortest %.6f, expected %.6f (symmetric %.6f)", st[3].hi - st[3].lo,
              short_len, sym_len);
    cr_assert(fmin(st[3].lo - 3.0, 7.0 - st[3].hi) < 1e-3, "not at an end: [%g, %g]", st[3].lo,
              st[3].hi);
    /* t_10 with scale u = 1: the 95 % symmetric interval is +-t_95(10) =
     * +-2.228 (pdf 0.0424 there: SE 3.7e-3) */
    const double t95 = qes_coverage_factor(0.95, 10.0);
    cr_assert(fabs(st[4].hi_sym - t95) <= 5 * 3.7e-3, "t10 upper %.5f vs %.5f", st[4].hi_sym, t95);
    cr_assert(fabs(st[4].lo_sym + t95) <= 5 * 3.7e-3);
}

/*
 * Linear model with correlated normal inputs (Cholesky) and a rectangular
 * one: MC u and the output covariance match J V J^T.  Linear outputs of
 * normal and rectangular inputs have kappa <= 3: relative SE of u
 * 1/sqrt(2M) = 7.1e-4, asserted 5 SE; output correlation SE (1 - r^2)/sqrt M.
 */
Test(budget, mc_linear_matches_analytic)
{
    const size_t M = 1000000;
    const double R[9] = {1, 0.8, 0, 0.8, 1, 0, 0, 0, 1};
    const struct qes_input in[3] = {
            {"a", 10.0, QES_UNC_STANDARD, 0.5, 0, 0, 0},
            {"b", -3.0, QES_UNC_STANDARD, 0.3, 0, 0, 0},
            {"c", 0.0, QES_UNC_RECT, 0.2, 0, 0, 0},
    };
    const struct qes_model m = {.f = linear_model, .n_in = 3, .n_out = 2};
    double y[2], u[2], cov[4], corr[4];
    struct qes_propagation p = {.y = y, .u = u, .cov = cov, .corr = corr};
    cr_assert_eq(qes_propagate(&m, in, R, &p), 0);
    struct qes_mc_stat st[2];
    double mcov[4];
    const struct qes_mc_desc d = {.trials = M, .seed = 99};
    cr_assert_eq(qes_mc_propagate(&m, in, R, &d, st, mcov), 0);
    const double bound = 5 / sqrt(2.0 * M);
    for (int k = 0; k < 2; k++) {
        cr_log_info("linear y%d: MC mean %.6f u %.6f | LPU %.6f u %.6f (rel %.2e, bound %.2e)", k,
                    st[k].mean, st[k].u, y[k], u[k], rel(st[k].u, u[k]), bound);
        cr_assert(rel(st[k].u, u[k]) <= bound, "y%d: MC u %.6f, LPU %.6f", k, st[k].u, u[k]);
        cr_assert(fabs(st[k].mean - y[k]) <= 5 * u[k] / sqrt((double)M));
        /* normal-dominated: the 95 % interval is close to +-1.96 u */
        cr_assert(fabs((st[k].hi - st[k].lo) / (2 * 1.96 * u[k]) - 1) <= 0.01);
    }
    const double rmc = mcov[1] / (st[0].u * st[1].u);
    cr_log_info("output correlation: MC %.5f, LPU %.5f", rmc, corr[1]);
    cr_assert(fabs(rmc - corr[1]) <= 5 * (1 - corr[1] * corr[1]) / sqrt((double)M));
}

static int product_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    y[0] = x[0] * x[1];
    return 0;
}

/*
 * Where the linearisation fails.
 * (1) y = x^2, x ~ N(0, 1): LPU says u = 0; the truth is chi^2_1: mean 1,
 * SD sqrt 2, and (decreasing density) the shortest 95 % interval is
 * [0, 3.841459] (chi^2_1 95 % quantile, pdf there 0.0298: SE 7.3e-3); the
 * symmetric interval is [0.000982, 5.0239].  SD: kappa = 15, relative SE
 * sqrt(14 / (4M)) = 1.9e-3.
 * (2) y = x1 x2 with x1, x2 ~ N(1, 0.5^2) independent: LPU u = sqrt(0.5) =
 * 0.7071; exact u = sqrt(mu1^2 s2^2 + mu2^2 s1^2 + s1^2 s2^2) = 0.75 (the
 * second-order term of GUM 5.1.2 note).  MC must find 0.75 (kurtosis of the
 * product < 6: relative SE < sqrt(5/(4M)) = 1.1e-3), 6 % above LPU.
 */
Test(budget, mc_nonlinear_differs_from_linearisation)
{
    const size_t M = 1000000;
    const struct qes_input x0 = {"x", 0.0, QES_UNC_STANDARD, 1.0, 0, 0, 0};
    const struct qes_model sq = {.f = square_model, .n_in = 1, .n_out = 1};
    const struct qes_mc_desc d = {.trials = M, .seed = 7, .coverage = 0.95};
    struct qes_mc_stat st;
    double u_lpu = -1;
    struct qes_propagation p = {.u = &u_lpu};
    cr_assert_eq(qes_propagate(&sq, &x0, NULL, &p), 0);
    cr_assert_eq(qes_mc_propagate(&sq, &x0, NULL, &d, &st, NULL), 0);
    cr_log_info("y = x^2: LPU u = %g; MC mean %.5f u %.5f shortest [%.6f, %.5f] symmetric "
                "[%.6f, %.5f]",
                u_lpu, st.mean, st.u, st.lo, st.hi, st.lo_sym, st.hi_sym);
    cr_assert(u_lpu == 0.0);
    cr_assert(fabs(st.mean - 1.0) <= 5 * sqrt(2.0) / sqrt((double)M));
    cr_assert(rel(st.u, sqrt(2.0)) <= 5 * 1.9e-3);
    cr_assert(st.lo >= 0.0 && st.lo < 1e-5, "shortest interval starts at %g", st.lo);
    cr_assert(fabs(st.hi - 3.841459) <= 5 * 7.3e-3, "shortest upper end %.5f", st.hi);
    /* symmetric: lower end 0.000982 (pdf there 12.7: SE 1.2e-5), upper
     * 5.0239 (pdf 0.0146: SE 0.0107) */
    cr_assert(fabs(st.lo_sym - 0.000982) <= 5 * 1.2e-5, "%g", st.lo_sym);
    cr_assert(fabs(st.hi_sym - 5.0239) <= 5 * 0.0107, "%g", st.hi_sym);

    const struct qes_input xy[2] = {
            {"x1", 1.0, QES_UNC_STANDARD, 0.5, 0, 0, 0},
            {"x2", 1.0, QES_UNC_STANDARD, 0.5, 0, 0, 0},
    };
    const struct qes_model pm = {.f = product_model, .n_in = 2, .n_out = 1};
    cr_assert_eq(qes_propagate(&pm, xy, NULL, &p), 0);
    cr_assert_eq(qes_mc_propagate(&pm, xy, NULL, &d, &st, NULL), 0);
    cr_log_info("y = x1 x2: LPU u = %.5f; MC u = %.5f (exact 0.75), mean %.5f", u_lpu, st.u,
                st.mean);
    cr_assert(rel(u_lpu, sqrt(0.5)) <= 1e-9);
    cr_assert(rel(st.u, 0.75) <= 5 * 1.1e-3, "MC u %.5f", st.u);
    cr_assert(st.u > 1.05 * u_lpu);
    cr_assert(fabs(st.mean - 1.0) <= 5 * 0.75 / sqrt((double)M));
}

/*
 * A correlated group with a common finite dof is drawn from a multivariate
 * t (JCGM 101 6.4.9): each marginal has SD u sqrt(nu / (nu - 2)), the
 * correlation is kept.  nu = 8: factor sqrt(4/3); kurtosis 3 + 6/(nu - 4)
 * = 4.5: relative SE sqrt(3.5 / (4M)).  The correlation r = -0.6 estimated
 * from t samples: SE ~ (1 - r^2) sqrt(1 + kurtosis excess share) / sqrt M,
 * bounded by 2 (1 - r^2) / sqrt(M) here; asserted 5 of those.
 */
Test(budget, mc_multivariate_t)
{
    const size_t M = 1000000;
    const size_t n = 2;
    const double R[4] = {1, -0.6, -0.6, 1};
    const struct qes_input in[2] = {
            {"a", 0.0, QES_UNC_STANDARD, 1.0, 0, 0, 8},
            {"b", 3.0, QES_UNC_STANDARD, 2.0, 0, 0, 8},
    };
    const struct qes_model m = {.f = identity_model, .ctx = (void *)&n, .n_in = 2, .n_out = 2};
    const struct qes_mc_desc d = {.trials = M, .seed = 2024};
    struct qes_mc_stat st[2];
    double cov[4];
    cr_assert_eq(qes_mc_propagate(&m, in, R, &d, st, cov), 0);
    const double f = sqrt(8.0 / 6.0), bound = 5 * sqrt(3.5 / (4.0 * M));
    cr_assert(rel(st[0].u, 1.0 * f) <= bound, "u0 %.5f", st[0].u);
    cr_assert(rel(st[1].u, 2.0 * f) <= bound, "u1 %.5f", st[1].u);
    const double r = cov[1] / (st[0].u * st[1].u);
    cr_log_info("multivariate t_8: u %.5f %.5f (expected %.5f %.5f), r %.5f", st[0].u, st[1].u, f,
                2 * f, r);
    cr_assert(fabs(r + 0.6) <= 5 * 2 * 0.64 / sqrt((double)M), "r = %.5f", r);
}

/* Same seed: bit-identical results; another seed: different ones.  A fully
 * correlated pair (semi-definite matrix) is accepted and gives r = 1. */
Test(budget, mc_deterministic_and_semidefinite)
{
    const size_t n = 2;
    const double R[4] = {1, 1, 1, 1};
    const struct qes_input in[2] = {
            {"a", 0.0, QES_UNC_STANDARD, 1.0, 0, 0, 0},
            {"b", 0.0, QES_UNC_STANDARD, 3.0, 0, 0, 0},
    };
    const struct qes_model m = {.f = identity_model, .ctx = (void *)&n, .n_in = 2, .n_out = 2};
    struct qes_mc_desc d = {.trials = 20000, .seed = 5};
    struct qes_mc_stat a[2], b[2];
    double cov[4];
    cr_assert_eq(qes_mc_propagate(&m, in, R, &d, a, cov), 0);
    cr_assert_eq(qes_mc_propagate(&m, in, R, &d, b, NULL), 0);
    cr_assert(memcmp(a, b, sizeof a) == 0, "same seed, different result");
    cr_assert(fabs(cov[1] / (a[0].u * a[1].u) - 1.0) <= 1e-12);
    d.seed = 6;
    cr_assert_eq(qes_mc_propagate(&m, in, R, &d, b, NULL), 0);
    cr_assert(a[0].mean != b[0].mean);
}

/* Bad Monte Carlo requests, index-parameterized; each with its code. */
struct bad_mc {
    const char *what;
    size_t trials;
    double coverage;
    int corr;  /* 0 none, 1 rect correlated, 2 mixed dof group, 3 not PSD */
    int model; /* 0 fine, 1 NULL f, 2 failing */
    int expect;
};

static const struct bad_mc bad_mcs[] = {
        {"trials 1", 1, 0.95, 0, 0, QES_EINVAL},
        {"coverage 1", 1000, 1.0, 0, 0, QES_EINVAL},
        {"coverage -0.5", 1000, -0.5, 0, 0, QES_EINVAL},
        {"q = M (p M rounds to M)", 10, 0.97, 0, 0, QES_EINVAL},
        {"rectangular input correlated", 1000, 0.95, 1, 0, QES_EINVAL},
        {"group with mixed dof", 1000, 0.95, 2, 0, QES_EUNSUPPORTED},
        {"not positive semi-definite", 1000, 0.95, 3, 0, QES_EINVAL},
        {"NULL model function", 1000, 0.95, 0, 1, QES_EINVAL},
        {"model error passed through", 1000, 0.95, 0, 2, QES_ERANGE},
};
#define N_BAD_MCS (sizeof bad_mcs / sizeof bad_mcs[0])

ParameterizedTestParameters(budget, bad_mc_refused)
{
    static size_t idx[N_BAD_MCS];
    for (size_t i = 0; i < N_BAD_MCS; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD_MCS);
}

static int sum3_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    y[0] = x[0] + x[1] + x[2];
    return 0;
}

static int fail3_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    y[0] = x[0] + x[1] + x[2];
    return y[0] > 6.5 ? QES_ERANGE : 0;
}

ParameterizedTest(size_t *ip, budget, bad_mc_refused)
{
    const struct bad_mc *b = &bad_mcs[*ip];
    struct qes_input in[3] = {
            {"a", 1, QES_UNC_STANDARD, 1.0, 0, 0, 0},
            {"b", 2, QES_UNC_RECT, 1.0, 0, 0, 0},
            {"c", 3, QES_UNC_STANDARD, 1.0, 0, 0, 0},
    };
    static const double corrs[3][9] = {
            {1, 0, 0, 0, 1, 0, 0, 0, 1},
            {1, 0.5, 0, 0.5, 1, 0, 0, 0, 1}, /* a-b, b rectangular */
            {1, 0, 0.5, 0, 1, 0, 0.5, 0, 1}, /* a-c, dof differ (below) */
    };
    if (b->corr == 2)
        in[2].dof = 5;
    double not_psd[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const double *R = b->corr < 3 ? corrs[b->corr] : NULL;
    if (b->corr == 3) {
        /* a, c normal; a 3x3 with a negative eigenvalue among normal inputs */
        in[1].kind = QES_UNC_STANDARD;
        const double v = -0.9;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                not_psd[i * 3 + j] = i == j ? 1.0 : v;
        R = not_psd;
    }
    struct qes_model m = {.f = sum3_model, .n_in = 3, .n_out = 1};
    if (b->model == 1)
        m.f = NULL;
    if (b->model == 2)
        m.f = fail3_model;
    const struct qes_mc_desc d = {.trials = b->trials, .seed = 1, .coverage = b->coverage};
    struct qes_mc_stat st = {.mean = 4242.0};
    const int rc = qes_mc_propagate(&m, in, R, &d, &st, NULL);
    cr_assert_eq(rc, b->expect, "%s: got %d (%s), expected %d", b->what, rc, qes_err_name(rc),
                 b->expect);
    cr_assert_eq(st.mean, 4242.0, "%s: output written", b->what);
}

/* Defaults: trials 0 -> 1e6, coverage 0 -> 0.95 (checked through the
 * interval of a normal input, +-1.96 within 5 quantile SE = 0.013). */
Test(budget, mc_defaults)
{
    const struct qes_input in = {"x", 0.0, QES_UNC_STANDARD, 1.0, 0, 0, 0};
    const size_t n = 1;
    const struct qes_model m = {.f = identity_model, .ctx = (void *)&n, .n_in = 1, .n_out = 1};
    const struct qes_mc_desc d = {0};
    struct qes_mc_stat st;
    cr_assert_eq(qes_mc_propagate(&m, &in, NULL, &d, &st, NULL), 0);
    cr_assert(fabs(st.hi_sym - 1.959964) <= 0.0135, "%g", st.hi_sym);
    cr_assert(fabs(st.u - 1.0) <= 5 / sqrt(2e6));
}
