/*
 * Tests of dsp/stats: mean, standard deviation and lag-1 autocorrelation
 * against every NIST StRD univariate data set (certified values parsed from
 * the files' headers), the naive one-pass variance as a control that must
 * fail NumAcc3/NumAcc4, Welford merging, and the effective number of
 * observations of simulated AR(1) series against theory.
 */
#include "dsp/stats.h"

#include "common/err.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(stats, .timeout = 300);

static const double u_rnd = DBL_EPSILON / 2; /* unit roundoff 2^-53 */

/* ------------------------------------------------------------------------ */
/* NIST StRD univariate                                                      */

struct strd_set {
    char name[32];
    double *x;
    size_t n;
    /* certified values and half a unit of their last certified digit (0
     * where the value is exact by construction: NumAcc) */
    double mean, sd, r1;
    double h_mean, h_sd, h_r1;
};

static double half_ulp_printed(const char *s)
{
    const char *dot = strchr(s, '.');
    const char *e = strpbrk(s, "eE");
    const int exp10 = e ? atoi(e + 1) : 0;
    int decimals = 0;
    if (dot)
        for (const char *p = dot + 1; *p >= '0' && *p <= '9'; p++)
            decimals++;
    return 0.5 * pow(10.0, exp10 - decimals);
}

static void push(struct strd_set *s, size_t *cap, double v)
{
    if (s->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        s->x = realloc(s->x, *cap * sizeof *s->x);
        cr_assert_not_null(s->x);
    }
    s->x[s->n++] = v;
}

/* Data set file with a "# certified: mean=.. sample_sd(N-1)=..
 * lag1_autocorrelation=.." header and one value per line. */
static void read_strd_file(const char *path, const char *name, struct strd_set *s)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    size_t cap = 0;
    char line[512];
    bool have_cert = false;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            const char *c = strstr(line, "certified:");
            if (!c)
                continue;
            char m[64], sd[64], r1[64];
            cr_assert_eq(sscanf(c,
                                "certified: mean=%63s sample_sd(N-1)=%63s "
                                "lag1_autocorrelation=%63s",
                                m, sd, r1),
                         3, "%s: bad certified line: %s", path, line);
            s->mean = strtod(m, NULL);
            s->sd = strtod(sd, NULL);
            s->r1 = strtod(r1, NULL);
            s->h_mean = half_ulp_printed(m);
            s->h_sd = half_ulp_printed(sd);
            s->h_r1 = half_ulp_printed(r1);
            have_cert = true;
            continue;
        }
        char *end;
        const double v = strtod(line, &end);
        if (end != line)
            push(s, &cap, v);
    }
    fclose(f);
    cr_assert(have_cert, "%s: no certified values", path);
}

/* NumAcc1..4 are described in the header of strd_univariate_numacc.txt:
 * "# NumAcc1: 3 values 10000001, 10000003, 10000002 -> mean 10000002, sd 1,
 * lag1 -0.5" and "# NumAccK: 1001 values: a then 500 x (b, c) -> mean M,
 * sd S, lag1 R".  The certified values are exact decimals (0 half-unit). */
static size_t read_numacc(const char *path, struct strd_set *sets, size_t cap_sets)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    char line[512];
    size_t k = 0;
    while (fgets(line, sizeof line, f)) {
        int id;
        if (sscanf(line, "# NumAcc%d:", &id) != 1)
            continue;
        cr_assert(k < cap_sets);
        struct strd_set *s = &sets[k++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "NumAcc%d", id);
        size_t cap = 0;
        const char *arrow = strstr(line, "->");
        cr_assert_not_null(arrow, "%s", line);
        cr_assert_eq(sscanf(arrow, "-> mean %lf, sd %lf, lag1 %lf", &s->mean, &s->sd, &s->r1), 3,
                     "%s", line);
        const char *colon = strchr(line, ':');
        size_t nv;
        char *p;
        nv = strtoul(colon + 1, &p, 10);
        if (strncmp(p, " values:", 8) == 0) {
            double a, b, c;
            size_t reps;
            cr_assert_eq(sscanf(p + 8, " %lf then %zu x (%lf, %lf)", &a, &reps, &b, &c), 4, "%s",
                         line);
            push(s, &cap, a);
            for (size_t i = 0; i < reps; i++) {
                push(s, &cap, b);
                push(s, &cap, c);
            }
        } else {
            cr_assert(strncmp(p, " values ", 8) == 0, "%s", line);
            p += 8;
            for (size_t i = 0; i < nv; i++) {
                push(s, &cap, strtod(p, &p));
                while (*p == ',' || *p == ' ')
                    p++;
            }
        }
        cr_assert_eq(s->n, nv, "%s: %zu values, header says %zu", s->name, s->n, nv);
    }
    fclose(f);
    return k;
}

static size_t load_all(struct strd_set *sets, size_t cap)
{
    const char *ref = qes_test_refdata();
    if (!ref)
        cr_skip_test("../shared/refdata is absent: NIST StRD not checked");
    static const char *const files[] = {"lew", "lottery", "mavro", "michelson", "pidigits"};
    char path[4300];
    size_t k = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/nist_strd/strd_univariate_%s.txt", ref, files[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            cr_skip_test("%s is absent", path);
        fclose(f);
        read_strd_file(path, files[i], &sets[k++]);
    }
    snprintf(path, sizeof path, "%s/nist_strd/strd_univariate_numacc.txt", ref);
    k += read_numacc(path, sets + k, cap - k);
    return k;
}

/*
 * Error budget of each comparison:
 *  - certified digits: half a unit of the last printed digit (0 for NumAcc,
 *    whose values are exact decimals by construction);
 *  - double rounding of the decimal inputs: each x_i is off by <= u |x_i|,
 *    which moves the mean by <= u max|x|, the SD by <= sqrt(n/(n-1)) u
 *    max|x| (Cauchy-Schwarz on sum d_i dx_i / ((n-1) s)), and r1 by <= 4 of
 *    that divided by s (numerator and denominator each move by <= 2 of it);
 *    for NumAcc4 (|x| = 1e7, s = 0.1) this is 1.1e-8 relative on the SD:
 *    the certified 0.1 is not the SD of the doubles the file turns into;
 *  - our arithmetic: compensated long-double sums, asserted with 16 u of
 *    the value (a few roundings of the final divisions and sqrt);
 *  - Welford only: its running mean is rounded at every update, an error
 *    bounded by n u_ld |mean| / s relative on the SD (u_ld = 2^-64), added
 *    to its SD and mean tolerances.
 */
struct tol {
    double mean, sd, r1;
    double w_mean, w_sd; /* Welford */
};

static struct tol budget(const struct strd_set *s)
{
    double xmax = 0.0;
    for (size_t i = 0; i < s->n; i++)
        xmax = fmax(xmax, fabs(s->x[i]));
    const double in = u_rnd * xmax;
    const double k = sqrt((double)s->n / (double)(s->n - 1));
    struct tol t;
    t.mean = s->h_mean + in + 16 * u_rnd * fabs(s->mean);
    t.sd = s->h_sd + k * in + 16 * u_rnd * s->sd;
    t.r1 = s->h_r1 + 4.0 * k * in / s->sd + 16 * u_rnd;
    const double u_ld = LDBL_EPSILON / 2;
    t.w_mean = t.mean + (double)s->n * u_ld * fabs(s->mean);
    t.w_sd = t.sd + (double)s->n * u_ld * fabs(s->mean);
    return t;
}

Test(stats, nist_strd_two_pass_welford_acf)
{
    struct strd_set sets[16];
    const size_t ns = load_all(sets, 16);
    cr_assert_eq(ns, 9, "expected 5 data files + NumAcc1..4, got %zu sets", ns);
    for (size_t i = 0; i < ns; i++) {
        const struct strd_set *s = &sets[i];
        const struct tol t = budget(s);
        double mean, var;
        cr_assert_eq(qes_stats_mean_var(s->x, s->n, &mean, &var), 0);
        struct qes_welford w;
        qes_welford_reset(&w);
        for (size_t j = 0; j < s->n; j++)
            qes_welford_add(&w, s->x[j]);
        double rho[2];
        cr_assert_eq(qes_stats_acf(s->x, s->n, 1, rho), 0);

        const double em = fabs(mean - s->mean), es = fabs(sqrt(var) - s->sd);
        const double ewm = fabs(qes_welford_mean(&w) - s->mean),
                     ews = fabs(sqrt(qes_welford_var(&w)) - s->sd);
        const double er = fabs(rho[1] - s->r1);
        cr_log_info("%-10s n=%4zu: two-pass |d mean| %.2g (tol %.2g), |d sd| %.2g (tol %.2g); "
                    "Welford %.2g, %.2g; |d r1| %.2g (tol %.2g)",
                    s->name, s->n, em, t.mean, es, t.sd, ewm, ews, er, t.r1);
        cr_assert(em <= t.mean, "%s mean %.17g, certified %.17g", s->name, mean, s->mean);
        cr_assert(es <= t.sd, "%s sd %.17g, certified %.17g", s->name, sqrt(var), s->sd);
        cr_assert(er <= t.r1, "%s r1 %.17g, certified %.17g", s->name, rho[1], s->r1);
        cr_assert(ewm <= t.w_mean, "%s Welford mean %.17g", s->name, qes_welford_mean(&w));
        cr_assert(ews <= t.w_sd, "%s Welford sd %.17g", s->name, sqrt(qes_welford_var(&w)));
    }
    for (size_t i = 0; i < ns; i++)
        free(sets[i].x);
}

/* Control: the textbook one-pass formula (sum x^2 - n xbar^2) / (n - 1) in
 * double fails NumAcc3 and NumAcc4 by orders of magnitude more than the
 * budget above, so the test above can tell a stable algorithm from it. */
Test(stats, naive_one_pass_fails_numacc)
{
    struct strd_set sets[16];
    const size_t ns = load_all(sets, 16);
    size_t failed = 0;
    for (size_t i = 0; i < ns; i++) {
        const struct strd_set *s = &sets[i];
        if (strcmp(s->name, "NumAcc3") != 0 && strcmp(s->name, "NumAcc4") != 0)
            continue;
        double sx = 0.0, sxx = 0.0;
        for (size_t j = 0; j < s->n; j++) {
            sx += s->x[j];
            sxx += s->x[j] * s->x[j];
        }
        const double var = (sxx - sx * sx / (double)s->n) / (double)(s->n - 1);
        const double sd = var > 0 ? sqrt(var) : 0.0;
        const double e = fabs(sd - s->sd), t = budget(s).sd;
        cr_log_info("%s: naive one-pass sd %.10g (certified %g): error %.3g, %.0f x the budget",
                    s->name, sd, s->sd, e, e / t);
        cr_assert(e > 100.0 * t, "%s: the naive formula passed (err %.3g, tol %.3g)", s->name, e,
                  t);
        failed++;
    }
    cr_assert_eq(failed, 2);
    for (size_t i = 0; i < ns; i++)
        free(sets[i].x);
}

/* Merging two Welford accumulators equals accumulating the concatenation:
 * Chan's update is exact up to rounding (|d| 1e-13 relative asserted for
 * these O(1) data, a few ulp per update times the merge's conditioning). */
Test(stats, welford_merge)
{
    struct qes_welford a, b, all;
    qes_welford_reset(&a);
    qes_welford_reset(&b);
    qes_welford_reset(&all);
    for (int i = 0; i < 1000; i++) {
        const double v = 5.0 + sin(0.37 * i) + 0.01 * i;
        qes_welford_add(i < 300 ? &a : &b, v);
        qes_welford_add(&all, v);
    }
    qes_welford_merge(&a, &b);
    cr_assert_eq(a.n, 1000);
    cr_assert(fabs(qes_welford_mean(&a) - qes_welford_mean(&all)) <=
              1e-13 * fabs(qes_welford_mean(&all)));
    cr_assert(fabs(qes_welford_var(&a) - qes_welford_var(&all)) <= 1e-13 * qes_welford_var(&all));
    struct qes_welford e;
    qes_welford_reset(&e);
    qes_welford_merge(&e, &all);
    cr_assert_eq(e.n, all.n);
    cr_assert(isnan(qes_welford_var(&(struct qes_welford){.n = 1})));
}

Test(stats, bad_input)
{
    double x[4] = {1, 2, 3, 4}, m, v, rho[4], w[4];
    struct qes_neff ne;
    cr_assert_eq(qes_stats_mean_var(NULL, 4, &m, &v), QES_EINVAL);
    cr_assert_eq(qes_stats_mean_var(x, 0, &m, &v), QES_EINVAL);
    cr_assert_eq(qes_stats_mean_var(x, 1, &m, &v), 0);
    cr_assert(isnan(v));
    cr_assert_eq(m, 1.0);
    cr_assert_eq(qes_stats_acf(x, 4, 4, rho), QES_EINVAL);
    cr_assert_eq(qes_stats_acf(x, 1, 0, rho), QES_EINVAL);
    const double c[4] = {2, 2, 2, 2};
    cr_assert_eq(qes_stats_acf(c, 4, 2, rho), QES_ERANGE);
    cr_assert(isnan(rho[1]));
    cr_assert_eq(qes_stats_neff(x, 2, w, &ne), QES_EINVAL);
    cr_assert_eq(qes_stats_neff(c, 4, w, &ne), QES_ERANGE);
    cr_assert(isnan(qes_stats_neff_ar1(100, 1.0)));
    cr_assert(isnan(qes_stats_ar1_var_factor(100, -1.0)));
}

/* ------------------------------------------------------------------------ */
/* Effective number of observations                                          */

/* The finite-n AR(1) factor against its defining sum (long double, exact
 * to ~1e-16 for these n): 1e-12 relative. */
Test(stats, ar1_factor_closed_form)
{
    static const double phis[] = {-0.9, -0.5, 0.0, 0.3, 0.5, 0.8, 0.95};
    static const size_t ns[] = {1, 2, 3, 10, 100, 5000};
    for (size_t i = 0; i < sizeof phis / sizeof phis[0]; i++)
        for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
            long double f = 1.0L, pk = 1.0L;
            for (size_t k = 1; k < ns[j]; k++) {
                pk *= phis[i];
                f += 2.0L * (1.0L - (long double)k / ns[j]) * pk;
            }
            const double g = qes_stats_ar1_var_factor((double)ns[j], phis[i]);
            cr_assert(fabs(g - (double)f) <= 1e-12 * (double)f, "phi %g n %zu: %.17g vs %.17Lg",
                      phis[i], ns[j], g, f);
        }
    cr_assert(fabs(qes_stats_neff_ar1(1000, 0.5) - 1000.0 / 3.0) < 1e-12);
}

/* splitmix64 + Box-Muller: the test's own deterministic generator */
static uint64_t sm_state;
static double sm_u01(void)
{
    uint64_t z = (sm_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return ((z >> 11) + 0.5) * 0x1.0p-53;
}
static double sm_normal(void)
{
    const double u = sm_u01(), v = sm_u01();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* stationary AR(1): x_0 ~ N(0, 1/(1-phi^2)) */
static void ar1(double phi, double *x, size_t n)
{
    x[0] = sm_normal() / sqrt(1.0 - phi * phi);
    for (size_t i = 1; i < n; i++)
        x[i] = phi * x[i - 1] + sm_normal();
}

/*
 * Budget for the bias of f-hat (the variance factor), relative:
 *  - mean removal: each rho-hat(k) is low by ~ f / n (Bartlett), so the
 *    sum over K lags is low by ~ 2 K / n relative; allowed 2.5 x that;
 *  - truncation at K: the dropped tail 2 phi^(K+1) / (1 - phi) / f is
 *    < 0.02 once rho(K) is inside its noise;
 *  - selection (upward, conservative): Geyer's rule keeps a pair when its
 *    noisy sum is positive; each kept noise-only pair adds E[G | G > 0] =
 *    sqrt(2/pi) sd(G), sd(G) ~ sqrt(2 f / n) (Bartlett), and about two are
 *    kept beyond the signal: 2 * 2 sqrt(2/pi) sqrt(2 f / n) / f relative
 *    (0.10 for white noise at n = 2000, where 0.05 is seen).
 * The statistical part: 4 standard errors of the mean over 400 series.
 */
static const double ar1_phis[] = {0.0, 0.5, 0.8, -0.5};
#define N_AR1 (sizeof ar1_phis / sizeof ar1_phis[0])

ParameterizedTestParameters(stats, neff_ar1)
{
    static size_t idx[N_AR1];
    for (size_t i = 0; i < N_AR1; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_AR1);
}

ParameterizedTest(size_t *ip, stats, neff_ar1)
{
    const double phi = ar1_phis[*ip];
    const size_t n = 2000, reps = 400;
    double *x = malloc(n * sizeof *x), *w = malloc(n * sizeof *w);
    cr_assert(x && w);
    sm_state = 12345 + 1000 * *ip;
    const double f_true = qes_stats_ar1_var_factor((double)n, phi);
    double s1 = 0.0, s2 = 0.0, ksum = 0.0;
    for (size_t r = 0; r < reps; r++) {
        ar1(phi, x, n);
        struct qes_neff ne;
        cr_assert_eq(qes_stats_neff(x, n, w, &ne), 0);
        cr_assert(fabs(ne.n_eff * ne.var_factor - (double)n) <= 1e-9 * n);
        const double ratio = ne.var_factor / f_true;
        s1 += ratio;
        s2 += ratio * ratio;
        ksum += (double)ne.cutoff_lag;
    }
    const double mean = s1 / reps;
    const double sd = sqrt((s2 - s1 * s1 / reps) / (reps - 1));
    const double se = sd / sqrt((double)reps);
    const double k_mean = ksum / reps;
    const double bias = 0.02 + 2.5 * 2.0 * k_mean / (double)n +
                        4.0 * sqrt(2.0 / 3.141592653589793) * sqrt(2.0 / (n * f_true));
    cr_log_info("AR(1) phi=%g n=%zu: f_true %.4f (n_eff %.1f; asymptotic %.1f), mean f_hat/f "
                "%.4f, sd %.3f, se %.4f, mean K %.1f, allowed |bias| %.3f + 4 se",
                phi, n, f_true, n / f_true, qes_stats_neff_ar1((double)n, phi), mean, sd, se,
                k_mean, bias);
    cr_assert(fabs(mean - 1.0) <= bias + 4.0 * se,
              "phi=%g: mean f_hat/f_true = %.4f (se %.4f, allowed %.4f)", phi, mean, se,
              bias + 4.0 * se);
    /* The asymptotic AR(1) form is within 1/n-order of the finite-n one. */
    cr_assert(fabs(qes_stats_neff_ar1((double)n, phi) / (n / f_true) - 1.0) <
              2.0 * fabs(phi) / ((1.0 - fabs(phi)) * (1.0 - fabs(phi)) * n) + 1e-12);
    free(x);
    free(w);
}
