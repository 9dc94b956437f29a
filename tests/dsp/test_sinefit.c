/*
 * Tests of dsp/sinefit: 3-parameter, 4-parameter and multi-harmonic sine
 * fits against analytic truth (noise-free, non-coherent), the 3-parameter fit
 * against its long double normal-equation twin, the covariance against the
 * Cramer-Rao bound in white noise, properties (time shift, linearity,
 * residual consistency), error handling and bad descs; the multi-frequency
 * Levenberg-Marquardt fit against NIST StRD ENSO (refdata) and synthetic
 * truth.
 *
 * Error budget of the noise-free tests (u = 2^-53 = 1.1e-16):
 *  - test signals are computed in long double (phase h nu i reduced modulo
 *    one cycle in long double, error <= 2^-64 of the cycle count) and
 *    rounded once to double: per-sample error <= u |s|.  They use the same
 *    double nu = f_hz / fs_hz that the fit derives, so no frequency mismatch
 *    enters the known-frequency fits;
 *  - the fit's basis is within ~3 u of exact (phases reduced exactly);
 *  - with zero residual, the least-squares solution moves by at most
 *    ||A^+|| ||dx - dA theta|| <= cond(A) sqrt(2/n) sqrt(n) 4 u max|s| ~
 *    6 cond(A) u max|s| (all errors aligned); cond(A) of the centred basis is
 *    below ~10 for >= 0.8 periods.  So |phasor error| <= ~1e-14 max|s|;
 *    asserted 1e-12 max|s| (the accuracy the value path promises), 10x above
 *    that worst case.  The acceptance criteria of the task (amplitude 1e-10
 *    for the 4-parameter fit, 1e-9 for every harmonic) are looser still.
 *  - 4-parameter: the frequency stops within step_tol = 1e-15 relative of
 *    the Gauss-Newton fixed point, which on noise-free data is within
 *    ~1e-19 of the truth (the rounding acts as noise of ~u: Cramer-Rao) and
 *    is held in a double (half an ulp, 1.1e-16): asserted 1e-15 relative.
 *    The phase at the first sample is extrapolated from mid-record, so it
 *    carries 2 pi c0 d(nu) (c0 = (n-1)/2) on top of the phasor budget.
 * Errors actually observed are logged (cr_log_info).
 */
#include "dsp/sinefit.h"

#include "common/err.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One suite-wide timeout, the same for both suites of this file (per-test
 * timeouts leak under ASan in Criterion 2.4.1). */
TestSuite(sinefit, .timeout = 300);
TestSuite(sinefit_mf, .timeout = 300);

static const long double two_pi_l = 6.283185307179586476925286766559L;
static const double pi_d = 3.1415926535897932384626433832795;
static const double two_pi_d = 6.283185307179586476925286766559;

struct tone {
    unsigned h;
    double r;   /* RMS amplitude */
    double phi; /* phase at sample 0 of the block, rad */
};

/*
 * x[i] = dc + sum sqrt(2) r cos(2 pi h nu (i + i0) + phi), i = 0..n-1, the
 * cycle count h nu (i + i0) reduced modulo 1 in long double.
 */
static void synth(double *x, size_t n, size_t i0, double nu, double dc, const struct tone *t,
                  size_t nt)
{
    for (size_t i = 0; i < n; i++) {
        long double v = dc;
        for (size_t k = 0; k < nt; k++) {
            long double cyc = (long double)nu * (long double)((uint64_t)t[k].h * (i + i0));
            cyc -= floorl(cyc);
            v += sqrtl(2.0L) * t[k].r * cosl(two_pi_l * cyc + t[k].phi);
        }
        x[i] = (double)v;
    }
}

/* Deterministic pseudo-random numbers (64-bit LCG, top 53 bits). */
static uint64_t lcg_state;
static double lcg_open01(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double)(lcg_state >> 11) + 0.5) * 0x1p-53;
}

/* Standard normal deviate (Box-Muller, both outputs used). */
static double gauss(void)
{
    static int have;
    static double spare;
    if (have) {
        have = 0;
        return spare;
    }
    const double u1 = lcg_open01(), u2 = lcg_open01();
    const double m = sqrt(-2.0 * log(u1));
    spare = m * sin(two_pi_d * u2);
    have = 1;
    return m * cos(two_pi_d * u2);
}

static double wrap_pi(double a)
{
    while (a > pi_d)
        a -= 2 * pi_d;
    while (a <= -pi_d)
        a += 2 * pi_d;
    return a;
}

/* Equal to a few ulp (a value computed in long double and rounded, against
 * a function of the rounded covariance). */
static int same(double a, double b)
{
    return fabs(a - b) <= 4 * DBL_EPSILON * fabs(b);
}

static double max_abs(const double *x, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

static struct qes_sinefit *make_fit(size_t n_max, double fs, enum qes_sinefit_kind kind,
                                    const unsigned *h, size_t nh)
{
    struct qes_sinefit_desc d = {
            .n_max = n_max,
            .fs_hz = fs,
            .kind = kind,
            .harmonics = h,
            .n_harmonics = nh,
    };
    struct qes_sinefit *s = NULL;
    cr_assert_eq(qes_sinefit_create(&d, &s), 0, "create");
    cr_assert_not_null(s);
    return s;
}

static struct qes_sinefit_result *new_result(void)
{
    struct qes_sinefit_result *r = malloc(sizeof *r);
    cr_assert_not_null(r);
    return r;
}

/* |phasor error| of tone k against the truth. */
static double phasor_err(const struct qes_sinefit_tone *f, const struct tone *t)
{
    return hypot(f->x - t->r * cos(t->phi), f->y - t->r * sin(t->phi));
}

/* ------------------------------------------------------------------------ */
/* 3-parameter fit                                                          */

/*
 * Noise-free non-coherent sines, including less than one period, a tone
 * near Nyquist, phases near +-pi and large offsets.  Budget in the header:
 * phasor and offset within 1e-12 max|s|; amplitude and phase follow.
 */
Test(sinefit, three_param_noise_free)
{
    static const struct {
        double periods, r, phi, dc;
    } cases[] = {
            {41.95, 1.0, 0.7, 0.1},      {2.3, 0.5, -3.1, -2.0}, {1234.567, 2.0, 3.14159, 0.0},
            {4987.1, 1.0, -0.2, 5.0},    {0.8, 1.0, 1.0, 0.3},   {41.95, 1.0, pi_d, 0.0},
            {173.21, 0.01, -1.5, 100.0},
    };
    const size_t n = 10000;
    const double fs = 10000.0;
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    struct qes_sinefit_result *res = new_result();
    struct qes_sinefit *s = make_fit(n, fs, QES_SINEFIT_KNOWN_FREQ, NULL, 0);
    double worst = 0.0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const double f = cases[c].periods * fs / (double)n;
        const struct tone t = {1, cases[c].r, cases[c].phi};
        synth(x, n, 0, f / fs, cases[c].dc, &t, 1);
        const double tol = 1e-12 * max_abs(x, n);
        cr_assert_eq(qes_sinefit_execute(s, x, n, f, res), 0, "case %zu", c);
        cr_assert_eq(res->n, n);
        cr_assert_eq(res->n_params, 3);
        cr_assert_eq(res->n_tones, 1);
        cr_assert_eq(res->tone[0].harmonic, 1);
        cr_assert_eq(res->f_hz, f);
        cr_assert_eq(res->u_f_hz, 0.0);
        cr_assert_eq(res->iterations, 0);
        const double e = phasor_err(&res->tone[0], &t);
        const double er = fabs(res->tone[0].r - t.r);
        const double ep = fabs(wrap_pi(res->tone[0].phase_rad - t.phi));
        const double eo = fabs(res->offset - cases[c].dc);
        worst = fmax(worst, fmax(e, eo) / max_abs(x, n));
        cr_assert(e <= tol, "case %zu: phasor err %.3g > %.3g", c, e, tol);
        cr_assert(er <= tol, "case %zu: r err %.3g", c, er);
        cr_assert(ep <= tol / t.r, "case %zu: phase err %.3g", c, ep);
        cr_assert(eo <= tol, "case %zu: offset err %.3g", c, eo);
        cr_assert(res->tone[0].phase_rad > -pi_d && res->tone[0].phase_rad <= pi_d);
        /* x, y, r, phase consistent with each other (a few ulp of r) */
        const double ulp4 = 4 * DBL_EPSILON * res->tone[0].r;
        cr_assert(fabs(res->tone[0].x - res->tone[0].r * cos(res->tone[0].phase_rad)) <= ulp4);
        cr_assert(fabs(res->tone[0].y - res->tone[0].r * sin(res->tone[0].phase_rad)) <= ulp4);
        /* zero residual up to rounding: sqrt(n) 4 u max|s| / sqrt(n) */
        cr_assert(res->resid_rms <= tol, "case %zu: resid %.3g", c, res->resid_rms);
    }
    cr_log_info("3-parameter noise-free: max error %.3g of max|s|", worst);
    qes_sinefit_destroy(s);
    free(res);
    free(x);
}

/*
 * The fast fit (centred basis, streamed Householder QR) against the twin
 * (uncentred basis, long double normal equations), on sine plus noise so
 * that the residual and the covariance are not trivial.  The twin's error
 * is ~cond^2 2^-64 (negligible); the fast fit's is the 1e-12 max|s| budget
 * above for the parameters.  Covariances: sigma^2 from the RSS (relative
 * rounding ~u ||x|| / ||residual||, ~1e-14 here) times (A^T A)^{-1}
 * (relative ~cond u): asserted 1e-10 relative.
 */
Test(sinefit, three_param_matches_reference_twin)
{
    static const double periods[] = {41.95, 2.3, 987.65, 0.9};
    const size_t n = 20000;
    const double fs = 48000.0;
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    struct qes_sinefit_result *a = new_result(), *b = new_result();
    struct qes_sinefit *s = make_fit(n, fs, QES_SINEFIT_KNOWN_FREQ, NULL, 0);
    double worst_p = 0.0, worst_c = 0.0;
    lcg_state = 99;
    for (size_t c = 0; c < sizeof periods / sizeof periods[0]; c++) {
        const double f = periods[c] * fs / (double)n;
        const struct tone t = {1, 0.8, -2.2};
        synth(x, n, 0, f / fs, 0.3, &t, 1);
        for (size_t i = 0; i < n; i++)
            x[i] += 0.1 * gauss();
        const double tol = 1e-12 * max_abs(x, n);
        cr_assert_eq(qes_sinefit_execute(s, x, n, f, a), 0);
        cr_assert_eq(qes_sinefit3_reference(x, n, f, fs, b), 0);
        const double ep = hypot(a->tone[0].x - b->tone[0].x, a->tone[0].y - b->tone[0].y);
        const double eo = fabs(a->offset - b->offset);
        worst_p = fmax(worst_p, fmax(ep, eo) / max_abs(x, n));
        cr_assert(ep <= tol, "periods %g: |fast - twin| phasor %.3g", periods[c], ep);
        cr_assert(eo <= tol, "periods %g: offset %.3g", periods[c], eo);
        cr_assert(fabs(a->tone[0].phase_rad - b->tone[0].phase_rad) <= tol / a->tone[0].r);
        const double rel[] = {
                fabs(a->resid_rms / b->resid_rms - 1),
                fabs(a->sigma / b->sigma - 1),
                fabs(a->tone[0].u_r / b->tone[0].u_r - 1),
                fabs(a->tone[0].u_phase_rad / b->tone[0].u_phase_rad - 1),
                fabs(a->u_offset / b->u_offset - 1),
        };
        for (size_t k = 0; k < sizeof rel / sizeof rel[0]; k++) {
            worst_c = fmax(worst_c, rel[k]);
            cr_assert(rel[k] <= 1e-10, "periods %g: quantity %zu differs by %.3g", periods[c], k,
                      rel[k]);
        }
        const double scale = a->cov[0][0];
        for (size_t i = 0; i < 3; i++) {
            for (size_t j = 0; j < 3; j++) {
                const double e = fabs(a->cov[i][j] - b->cov[i][j]) / scale;
                worst_c = fmax(worst_c, e);
                cr_assert(e <= 1e-10, "periods %g: cov[%zu][%zu] %.17g vs %.17g", periods[c], i, j,
                          a->cov[i][j], b->cov[i][j]);
            }
        }
    }
    cr_log_info("fast vs twin: parameters %.3g of max|s|, uncertainties %.3g relative", worst_p,
                worst_c);
    qes_sinefit_destroy(s);
    free(a);
    free(b);
    free(x);
}

/* ------------------------------------------------------------------------ */
/* 4-parameter fit                                                          */

struct fit4_case {
    size_t n;
    double fs, periods, r, phi, dc;
};

/*
 * Noise-free non-coherent sine, n = 1e4 and 1e6 (acceptance: 41.95 periods,
 * amplitude within 1e-10), started from 0, +-1e-3 and +-0.5 bin off; also
 * few periods and a tone 0.7 bin from Nyquist.  Budgets in the header:
 * phasor within 1e-12 max|s|, frequency within 1e-15 relative, phase at the
 * first sample within the phasor budget plus 2 pi c0 nu 1e-15.
 */
static void check_fit4(const struct fit4_case *c, const double *offsets, size_t n_off,
                       double *worst_r, double *worst_f, double *worst_ph)
{
    double *x = malloc(c->n * sizeof *x);
    cr_assert_not_null(x);
    struct qes_sinefit_result *res = new_result();
    struct qes_sinefit *s = make_fit(c->n, c->fs, QES_SINEFIT_FIT_FREQ, NULL, 0);
    const double f = c->periods * c->fs / (double)c->n;
    const double nu = f / c->fs;
    const struct tone t = {1, c->r, c->phi};
    synth(x, c->n, 0, nu, c->dc, &t, 1);
    const double tol = 1e-12 * max_abs(x, c->n);
    const double c0 = 0.5 * (double)(c->n - 1);
    const double tol_ph = tol / c->r + two_pi_d * c0 * nu * 1e-15;
    for (size_t k = 0; k < n_off; k++) {
        const double f0 = f + offsets[k] * c->fs / (double)c->n;
        const int rc = qes_sinefit_execute(s, x, c->n, f0, res);
        cr_assert_eq(rc, 0, "n %zu periods %g start %+g bin: rc %d", c->n, c->periods, offsets[k],
                     rc);
        const double er = fabs(res->tone[0].r - c->r);
        const double ef = fabs(res->f_hz - f) / f;
        const double ep = fabs(wrap_pi(res->tone[0].phase_rad - c->phi));
        const double eo = fabs(res->offset - c->dc);
        *worst_r = fmax(*worst_r, er / c->r);
        *worst_f = fmax(*worst_f, ef);
        *worst_ph = fmax(*worst_ph, ep);
        cr_assert(er <= tol, "n %zu periods %g start %+g: r err %.3g", c->n, c->periods, offsets[k],
                  er);
        cr_assert(er / c->r <= 1e-10, "acceptance: amplitude 1e-10");
        cr_assert(ef <= 1e-15, "n %zu periods %g start %+g: f rel err %.3g", c->n, c->periods,
                  offsets[k], ef);
        cr_assert(ep <= tol_ph, "n %zu periods %g start %+g: phase err %.3g > %.3g", c->n,
                  c->periods, offsets[k], ep, tol_ph);
        cr_assert(eo <= tol, "offset err %.3g", eo);
        cr_assert_eq(res->n_params, 4);
        cr_assert(res->iterations >= 1 && res->iterations <= 50);
        cr_assert(res->resid_rms <= tol, "resid %.3g", res->resid_rms);
    }
    qes_sinefit_destroy(s);
    free(res);
    free(x);
}

Test(sinefit, four_param_noise_free)
{
    static const double offsets[] = {0.0, 1e-3, -1e-3, 0.5, -0.5};
    static const struct fit4_case cases[] = {
            {10000, 10000.0, 41.95, 1.0, 0.7, 0.1},
            {1000000, 1000000.0, 41.95, 1.0, 0.7, 0.1},
            {10000, 10000.0, 2.3, 0.5, -2.9, -1.0},
            {10000, 10000.0, 4999.3, 1.0, 3.0, 0.0}, /* 0.7 bin from Nyquist */
            {4096, 1000.0, 123.456, 3.0, -0.01, 10.0},
    };
    double wr = 0.0, wf = 0.0, wp = 0.0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        check_fit4(&cases[c], offsets, sizeof offsets / sizeof offsets[0], &wr, &wf, &wp);
    cr_log_info("4-parameter noise-free: max rel amplitude err %.3g, rel freq err %.3g, phase err "
                "%.3g rad",
                wr, wf, wp);
}

/* Started too far from the truth with too few passes allowed: QES_ERANGE,
 * and the result is all NaN. */
Test(sinefit, four_param_reports_no_convergence)
{
    const size_t n = 10000;
    const double fs = 10000.0, f = 41.95;
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    const struct tone t = {1, 1.0, 0.3};
    synth(x, n, 0, f / fs, 0.0, &t, 1);
    struct qes_sinefit_desc d = {
            .n_max = n, .fs_hz = fs, .kind = QES_SINEFIT_FIT_FREQ, .max_iter = 2};
    struct qes_sinefit *s;
    cr_assert_eq(qes_sinefit_create(&d, &s), 0);
    struct qes_sinefit_result *res = new_result();
    cr_assert_eq(qes_sinefit_execute(s, x, n, f + 0.4 * fs / (double)n, res), QES_ERANGE);
    cr_assert_eq(res->n, 0);
    cr_assert(isnan(res->tone[0].r) && isnan(res->f_hz) && isnan(res->cov[0][0]));
    /* the same with the default number of passes converges */
    qes_sinefit_destroy(s);
    d.max_iter = 0;
    cr_assert_eq(qes_sinefit_create(&d, &s), 0);
    cr_assert_eq(qes_sinefit_execute(s, x, n, f + 0.4 * fs / (double)n, res), 0);
    cr_assert(fabs(res->tone[0].r - 1.0) <= 1e-12);
    qes_sinefit_destroy(s);
    free(res);
    free(x);
}

/* ------------------------------------------------------------------------ */
/* Multi-harmonic fits                                                      */

/* Five harmonics spanning 40 dB, listed out of order; phases over the
 * whole circle. */
static const unsigned harm5[] = {1, 3, 2, 7, 5};
static const struct tone truth5[] = {
        {1, 1.0, 0.7}, {3, 0.1, 3.1}, {2, 0.3, -2.9}, {7, 0.01, -0.4}, {5, 0.03, 1.9},
};

/*
 * Noise-free, known frequency and fitted frequency (started 0.3 bin off):
 * every harmonic within 1e-12 max|s| (header budget; acceptance 1e-9 of
 * truth).  Fitted frequency within 1e-15 relative; phases of harmonic h
 * carry 2 pi h c0 d(nu).
 */
Test(sinefit, multi_harmonic_noise_free)
{
    const size_t n = 10000;
    const double fs = 10000.0, f = 41.95, nu = f / fs;
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    synth(x, n, 0, nu, 0.25, truth5, 5);
    const double tol = 1e-12 * max_abs(x, n);
    struct qes_sinefit_result *res = new_result();
    double worst[2] = {0.0, 0.0};
    for (int kind = 0; kind < 2; kind++) {
        struct qes_sinefit *s = make_fit(n, fs, (enum qes_sinefit_kind)kind, harm5, 5);
        const double f0 = kind ? f + 0.3 * fs / (double)n : f;
        cr_assert_eq(qes_sinefit_execute(s, x, n, f0, res), 0, "kind %d", kind);
        cr_assert_eq(res->n_tones, 5);
        cr_assert_eq(res->n_params, (size_t)(11 + kind));
        if (kind)
            cr_assert(fabs(res->f_hz - f) / f <= 1e-15, "f err %.3g", fabs(res->f_hz - f) / f);
        const double c0 = 0.5 * (double)(n - 1);
        for (size_t k = 0; k < 5; k++) {
            cr_assert_eq(res->tone[k].harmonic, harm5[k]);
            const double e = phasor_err(&res->tone[k], &truth5[k]);
            const double ep = fabs(wrap_pi(res->tone[k].phase_rad - truth5[k].phi));
            const double tol_ph = tol / truth5[k].r + kind * two_pi_d * harm5[k] * c0 * nu * 1e-15;
            worst[kind] = fmax(worst[kind], e);
            if (!kind)
                cr_assert(e <= tol, "known f, h %u: phasor err %.3g", harm5[k], e);
            else
                cr_assert(e <= tol + truth5[k].r * tol_ph, "fitted f, h %u: phasor err %.3g",
                          harm5[k], e);
            cr_assert(e <= 1e-9, "acceptance: h %u within 1e-9", harm5[k]);
            cr_assert(ep <= tol_ph, "kind %d h %u: phase err %.3g", kind, harm5[k], ep);
        }
        cr_assert(fabs(res->offset - 0.25) <= tol);
        qes_sinefit_destroy(s);
    }
    cr_log_info("5 harmonics noise-free: max |phasor err| %.3g (known f), %.3g (fitted f)",
                worst[0], worst[1]);
    free(res);
    free(x);
}

/*
 * In white noise, each harmonic's u_x, u_y is sigma / sqrt(n) (the basis is
 * nearly orthogonal), whatever its amplitude; the reported u are the
 * covariance's diagonal, the covariance is symmetric, and every estimate is
 * within 4 u of the truth.  Budget for u and for sigma-hat: scatter of
 * sigma-hat 1 / sqrt(2 (n - 11)) = 0.7 %, four of them, plus the
 * finite-record terms ~1 / (2 pi periods) = 0.4 %: 3.2 %, asserted 3.5 %.
 */
Test(sinefit, multi_harmonic_uncertainties)
{
    const size_t n = 10000;
    const double fs = 10000.0, f = 41.95, sigma = 0.05;
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    synth(x, n, 0, f / fs, 0.25, truth5, 5);
    lcg_state = 5;
    for (size_t i = 0; i < n; i++)
        x[i] += sigma * gauss();
    struct qes_sinefit_result *res = new_result();
    struct qes_sinefit *s = make_fit(n, fs, QES_SINEFIT_KNOWN_FREQ, harm5, 5);
    cr_assert_eq(qes_sinefit_execute(s, x, n, f, res), 0);
    const double crb = sigma / sqrt((double)n);
    for (size_t k = 0; k < 5; k++) {
        cr_assert(fabs(res->tone[k].u_x / crb - 1) <= 0.035, "h %u: u_x %.4g vs %.4g", harm5[k],
                  res->tone[k].u_x, crb);
        cr_assert(fabs(res->tone[k].u_y / crb - 1) <= 0.035, "h %u: u_y %.4g vs %.4g", harm5[k],
                  res->tone[k].u_y, crb);
        /* the reported u are the covariance's diagonal */
        cr_assert(same(res->tone[k].u_x, sqrt(res->cov[2 * k][2 * k])));
        cr_assert(same(res->tone[k].u_y, sqrt(res->cov[2 * k + 1][2 * k + 1])));
        /* 4-sigma consistency of the estimate with the truth */
        cr_assert(phasor_err(&res->tone[k], &truth5[k]) <= 4 * crb * sqrt(2.0));
    }
    cr_assert(same(res->u_offset, sqrt(res->cov[10][10])));
    for (size_t i = 0; i < 11; i++)
        for (size_t j = 0; j < 11; j++)
            cr_assert_eq(res->cov[i][j], res->cov[j][i]);
    cr_assert(fabs(res->sigma / sigma - 1) <= 0.035, "sigma %.4g", res->sigma);
    qes_sinefit_destroy(s);
    free(res);
    free(x);
}

/* ------------------------------------------------------------------------ */
/* Noise: the covariance against the Cramer-Rao bound                       */

struct stats {
    double n, mean, m2;
};
static void stats_add(struct stats *s, double v)
{
    s->n += 1;
    const double d = v - s->mean;
    s->mean += d / s->n;
    s->m2 += d * (v - s->mean);
}
static double stats_sd(const struct stats *s)
{
    return sqrt(s->m2 / (s->n - 1));
}

/*
 * T = 1000 blocks of n = 4096 samples, r = 1, sigma = 0.1 (SNR 40 dB per
 * sample, so first-order propagation holds), 41.95 periods.
 * Cramer-Rao (PRIMER, Kay): u(r) = sigma / sqrt(n); u(phi) = sigma / (r
 * sqrt(n)) at known frequency; with the frequency fitted, u(nu) = sqrt(12)
 * sigma / (2 pi r sqrt(n (n^2 - 1))) cycles/sample and the phase at the first
 * sample u(phi0) = 2 sigma / (r sqrt(n)) (mid-record phase and frequency are
 * uncorrelated; c0 = n/2 adds 3 sigma^2 / (r^2 n)).
 * Bounds:
 *  - mean of the reported u over T blocks: the asymptotic formulas omit
 *    finite-record terms of relative size ~1 / (2 pi periods) = 0.4 %; the
 *    scatter of sigma-hat, 1 / sqrt(2 (n - p)) = 1.1 % per block, averages
 *    to 0.035 % (4 of them: 0.14 %): 0.54 %, asserted 1 %.
 *  - sample standard deviation of the estimates over T blocks: relative
 *    standard error 1 / sqrt(2 (T - 1)) = 2.2 %; 4 of them plus 0.4 %:
 *    asserted 9.3 %.
 *  - means of the estimates: within 4 u / sqrt(T) of the truth (the bias
 *    of r-hat, ~u^2 / (2 r), is 1e-3 of u here).
 *  - mean sigma-hat: within 4 * 1.1 % / sqrt(T) = 0.14 % (+ E[s] bias 1e-4):
 *    asserted 0.2 %.
 */
#define CRB_N 4096
#define CRB_T 1000

static void crb_run(enum qes_sinefit_kind kind)
{
    const size_t n = CRB_N;
    const double fs = 4096.0, f = 41.95, nu = f / fs, sigma = 0.1;
    const struct tone t = {1, 1.0, 0.7};
    double *clean = malloc(n * sizeof *clean), *x = malloc(n * sizeof *x);
    cr_assert(clean && x);
    synth(clean, n, 0, nu, 0.2, &t, 1);
    struct qes_sinefit_result *res = new_result();
    struct qes_sinefit *s = make_fit(n, fs, kind, NULL, 0);
    struct stats r_hat = {0}, ph_hat = {0}, f_hat = {0}, ur = {0}, uph = {0}, uf = {0}, sg = {0};
    struct stats rho_rep = {0};
    double sum_pf = 0.0; /* for the sample covariance of (phase, f) */
    lcg_state = 20240601u + (unsigned)kind;
    for (int trial = 0; trial < CRB_T; trial++) {
        for (size_t i = 0; i < n; i++)
            x[i] = clean[i] + sigma * gauss();
        const double f0 = kind == QES_SINEFIT_FIT_FREQ ? f + 0.2 * fs / (double)n : f;
        cr_assert_eq(qes_sinefit_execute(s, x, n, f0, res), 0, "trial %d", trial);
        stats_add(&r_hat, res->tone[0].r);
        stats_add(&ph_hat, wrap_pi(res->tone[0].phase_rad - t.phi));
        stats_add(&f_hat, res->f_hz);
        stats_add(&ur, res->tone[0].u_r);
        stats_add(&uph, res->tone[0].u_phase_rad);
        stats_add(&uf, res->u_f_hz);
        stats_add(&sg, res->sigma);
        if (kind == QES_SINEFIT_FIT_FREQ) {
            /* reported correlation of phase and frequency, from cov(x, f),
             * cov(y, f): d phi = (x dy - y dx) / r^2 */
            const double xx = res->tone[0].x, yy = res->tone[0].y, r2 = xx * xx + yy * yy;
            const double c_pf = (xx * res->cov[1][3] - yy * res->cov[0][3]) / r2;
            stats_add(&rho_rep, c_pf / (res->tone[0].u_phase_rad * res->u_f_hz));
            sum_pf += wrap_pi(res->tone[0].phase_rad - t.phi) * (res->f_hz - f);
        }
    }
    const double dn = (double)n;
    const double crb_r = sigma / sqrt(dn);
    const double crb_ph = (kind == QES_SINEFIT_FIT_FREQ ? 2.0 : 1.0) * sigma / (t.r * sqrt(dn));
    const double crb_f = fs * sqrt(12.0) * sigma / (two_pi_d * t.r * sqrt(dn * (dn * dn - 1)));
    const double sdev_tol = 4.0 / sqrt(2.0 * (CRB_T - 1)) + 0.004;
    const char *name = kind == QES_SINEFIT_FIT_FREQ ? "4-param" : "3-param";
    cr_log_info("%s: mean u_r / CRB %.5f, sd(r) / CRB %.4f; mean u_phi / CRB %.5f, sd(phi) / CRB "
                "%.4f; mean sigma-hat / sigma %.5f",
                name, ur.mean / crb_r, stats_sd(&r_hat) / crb_r, uph.mean / crb_ph,
                stats_sd(&ph_hat) / crb_ph, sg.mean / sigma);
    cr_assert(fabs(ur.mean / crb_r - 1) <= 0.01, "%s: mean u_r %.5g vs CRB %.5g", name, ur.mean,
              crb_r);
    cr_assert(fabs(uph.mean / crb_ph - 1) <= 0.01, "%s: mean u_phi %.5g vs CRB %.5g", name,
              uph.mean, crb_ph);
    cr_assert(fabs(stats_sd(&r_hat) / crb_r - 1) <= sdev_tol, "%s: sd(r) %.5g vs CRB %.5g", name,
              stats_sd(&r_hat), crb_r);
    cr_assert(fabs(stats_sd(&ph_hat) / crb_ph - 1) <= sdev_tol, "%s: sd(phi) %.5g vs CRB %.5g",
              name, stats_sd(&ph_hat), crb_ph);
    cr_assert(fabs(r_hat.mean - t.r) <= 4 * crb_r / sqrt(CRB_T), "%s: mean r off by %.3g", name,
              r_hat.mean - t.r);
    cr_assert(fabs(ph_hat.mean) <= 4 * crb_ph / sqrt(CRB_T), "%s: mean phase off by %.3g", name,
              ph_hat.mean);
    cr_assert(fabs(sg.mean / sigma - 1) <= 0.002, "%s: mean sigma-hat %.5g", name, sg.mean);
    if (kind == QES_SINEFIT_FIT_FREQ) {
        cr_log_info("%s: mean u_f / CRB %.5f, sd(f) / CRB %.4f", name, uf.mean / crb_f,
                    stats_sd(&f_hat) / crb_f);
        cr_assert(fabs(uf.mean / crb_f - 1) <= 0.01, "mean u_f %.5g vs CRB %.5g", uf.mean, crb_f);
        cr_assert(fabs(stats_sd(&f_hat) / crb_f - 1) <= sdev_tol, "sd(f) %.5g vs CRB %.5g",
                  stats_sd(&f_hat), crb_f);
        cr_assert(fabs(f_hat.mean - f) <= 4 * crb_f / sqrt(CRB_T), "mean f off by %.3g",
                  f_hat.mean - f);
        /*
         * The phase at the first sample is the mid-record phase minus
         * 2 pi nu c0: an overestimated frequency lowers it.  Its correlation
         * with f is -sqrt(3)/2 (3/4 of its variance comes from f).  The
         * reported one: within the 0.4 % finite-record terms (asserted
         * 0.01); the sample correlation over T blocks: standard error
         * (1 - rho^2) / sqrt(T) = 0.008, asserted 4 of them, 0.035.
         */
        const double rho_emp = (sum_pf / CRB_T - ph_hat.mean * (f_hat.mean - f)) /
                               (stats_sd(&ph_hat) * stats_sd(&f_hat));
        cr_log_info("%s: correlation(phase, f) reported %.4f, sample %.4f, expected %.4f", name,
                    rho_rep.mean, rho_emp, -sqrt(0.75));
        cr_assert(fabs(rho_rep.mean + sqrt(0.75)) <= 0.01, "reported rho %.4f", rho_rep.mean);
        cr_assert(fabs(rho_emp + sqrt(0.75)) <= 0.035, "sample rho %.4f", rho_emp);
    } else {
        cr_assert_eq(uf.mean, 0.0);
    }
    qes_sinefit_destroy(s);
    free(res);
    free(x);
    free(clean);
}

Test(sinefit, three_param_cramer_rao)
{
    crb_run(QES_SINEFIT_KNOWN_FREQ);
}

Test(sinefit, four_param_cramer_rao)
{
    crb_run(QES_SINEFIT_FIT_FREQ);
}

/* ------------------------------------------------------------------------ */
/* Properties                                                               */

/*
 * The phase refers to the block's first sample: the same signal one sample
 * later has its phases advanced by 2 pi h nu.  Budget: each phase within
 * the 1e-12 max|s| / r of the noise-free tests (plus, fitted, 2 pi h c0 nu
 * 1e-15): asserted twice that.
 */
Test(sinefit, time_shift_moves_phase)
{
    const size_t n = 5000;
    const double fs = 5000.0, f = 17.3, nu = f / fs;
    double *x = malloc((n + 1) * sizeof *x);
    cr_assert_not_null(x);
    synth(x, n + 1, 0, nu, -0.4, truth5, 5);
    const double tol = 1e-12 * max_abs(x, n + 1);
    struct qes_sinefit_result *a = new_result(), *b = new_result();
    for (int kind = 0; kind < 2; kind++) {
        struct qes_sinefit *s = make_fit(n, fs, (enum qes_sinefit_kind)kind, harm5, 5);
        cr_assert_eq(qes_sinefit_execute(s, x, n, f, a), 0);
        cr_assert_eq(qes_sinefit_execute(s, x + 1, n, f, b), 0);
        for (size_t k = 0; k < 5; k++) {
            const double adv = two_pi_d * harm5[k] * nu;
            const double d = wrap_pi(b->tone[k].phase_rad - a->tone[k].phase_rad - adv);
            const double bud =
                    2 * (tol / truth5[k].r + kind * two_pi_d * harm5[k] * (n / 2.0) * nu * 1e-15);
            cr_assert(fabs(d) <= bud, "kind %d h %u: shift error %.3g > %.3g", kind, harm5[k],
                      fabs(d), bud);
        }
        qes_sinefit_destroy(s);
    }
    free(a);
    free(b);
    free(x);
}

/*
 * At a known frequency the fit is linear in the data: fit(a s1 + b s2) =
 * a fit(s1) + b fit(s2) for x, y and the offset.  Budget: rounding of each
 * fit, ~1e-15 of max|s| (see header), |a s1 + b s2| <= 6: asserted 1e-13.
 */
Test(sinefit, known_frequency_fit_is_linear)
{
    const size_t n = 3000;
    const double fs = 3000.0, f = 29.7;
    double *s1 = malloc(n * sizeof *s1), *s2 = malloc(n * sizeof *s2), *s3 = malloc(n * sizeof *s3);
    cr_assert(s1 && s2 && s3);
    lcg_state = 77;
    for (size_t i = 0; i < n; i++) {
        s1[i] = gauss();
        s2[i] = gauss();
        s3[i] = 1.5 * s1[i] - 2.0 * s2[i];
    }
    struct qes_sinefit_result *r1 = new_result(), *r2 = new_result(), *r3 = new_result();
    struct qes_sinefit *s = make_fit(n, fs, QES_SINEFIT_KNOWN_FREQ, harm5, 5);
    cr_assert_eq(qes_sinefit_execute(s, s1, n, f, r1), 0);
    cr_assert_eq(qes_sinefit_execute(s, s2, n, f, r2), 0);
    cr_assert_eq(qes_sinefit_execute(s, s3, n, f, r3), 0);
    for (size_t k = 0; k < 5; k++) {
        cr_assert(fabs(r3->tone[k].x - (1.5 * r1->tone[k].x - 2.0 * r2->tone[k].x)) <= 1e-13);
        cr_assert(fabs(r3->tone[k].y - (1.5 * r1->tone[k].y - 2.0 * r2->tone[k].y)) <= 1e-13);
    }
    cr_assert(fabs(r3->offset - (1.5 * r1->offset - 2.0 * r2->offset)) <= 1e-13);
    qes_sinefit_destroy(s);
    free(r1);
    free(r2);
    free(r3);
    free(s1);
    free(s2);
    free(s3);
}

/*
 * The reported residual RMS is the RMS of x minus the model rebuilt from
 * the reported parameters, and sigma = resid_rms sqrt(n / (n - p)).  The
 * parameters are least-squares optimal, so rounding them to double moves
 * the RSS only to second order; the QR's RSS has a relative rounding error
 * ~u ||x|| / ||residual|| ~ 1e-14: asserted 1e-9 relative (the 4-parameter
 * RSS is the linearised one of the last pass, off by O(step^2)).
 */
Test(sinefit, residual_matches_reported_model)
{
    const size_t n = 8000;
    const double fs = 8000.0, f = 50.123;
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    synth(x, n, 0, f / fs, 1.5, truth5, 5);
    lcg_state = 3;
    for (size_t i = 0; i < n; i++)
        x[i] += 0.02 * gauss();
    struct qes_sinefit_result *res = new_result();
    static const unsigned h1[] = {1};
    const struct {
        int kind;
        const unsigned *h;
        size_t nh;
    } fits[] = {{0, h1, 1}, {1, h1, 1}, {0, harm5, 5}, {1, harm5, 5}};
    for (size_t c = 0; c < sizeof fits / sizeof fits[0]; c++) {
        struct qes_sinefit *s =
                make_fit(n, fs, (enum qes_sinefit_kind)fits[c].kind, fits[c].h, fits[c].nh);
        cr_assert_eq(qes_sinefit_execute(s, x, n, f * (1 + 1e-6 * fits[c].kind), res), 0);
        const long double nu = (long double)res->f_hz / fs;
        long double rss = 0.0L;
        for (size_t i = 0; i < n; i++) {
            long double m = res->offset;
            for (size_t k = 0; k < res->n_tones; k++) {
                long double cyc = nu * (long double)((uint64_t)res->tone[k].harmonic * i);
                cyc -= floorl(cyc);
                const long double a = two_pi_l * cyc;
                m += sqrtl(2.0L) * (res->tone[k].x * cosl(a) - res->tone[k].y * sinl(a));
            }
            rss += (x[i] - m) * (x[i] - m);
        }
        const double rms = (double)sqrtl(rss / n);
        cr_assert(fabs(res->resid_rms / rms - 1) <= 1e-9, "fit %zu: resid %.17g vs %.17g", c,
                  res->resid_rms, rms);
        const double p = (double)res->n_params;
        cr_assert(fabs(res->sigma / (res->resid_rms * sqrt(n / (n - p))) - 1) <= 1e-14);
        /* unmodelled harmonics (fit with {1} only) show in the residual */
        if (fits[c].nh == 1)
            cr_assert(res->resid_rms > 0.3, "fit %zu: resid %.3g", c, res->resid_rms);
        else
            cr_assert(res->resid_rms < 0.021, "fit %zu: resid %.3g", c, res->resid_rms);
        qes_sinefit_destroy(s);
    }
    free(res);
    free(x);
}

/* A block shorter than n_max is fitted as itself; longer is refused. */
Test(sinefit, partial_blocks)
{
    const size_t n_max = 10000, n = 6001;
    const double fs = 1e4, f = 33.3;
    double *x = malloc(n_max * sizeof *x);
    cr_assert_not_null(x);
    const struct tone t = {1, 0.9, -1.1};
    synth(x, n_max, 0, f / fs, 0.0, &t, 1);
    struct qes_sinefit_result *res = new_result();
    for (int kind = 0; kind < 2; kind++) {
        struct qes_sinefit *s = make_fit(n_max, fs, (enum qes_sinefit_kind)kind, NULL, 0);
        cr_assert_eq(qes_sinefit_execute(s, x, n, f, res), 0);
        cr_assert_eq(res->n, n);
        cr_assert(phasor_err(&res->tone[0], &t) <= 1e-12 * 1.3);
        cr_assert_eq(qes_sinefit_execute(s, x, n_max + 1, f, res), QES_EINVAL);
        qes_sinefit_destroy(s);
    }
    free(res);
    free(x);
}

/* ------------------------------------------------------------------------ */
/* Degenerate data and bad arguments                                        */

Test(sinefit, degenerate_data)
{
    const size_t n = 1000;
    const double fs = 1000.0;
    double *x = calloc(n, sizeof *x);
    cr_assert_not_null(x);
    struct qes_sinefit_result *res = new_result();
    /* All zeros at a known frequency: a valid fit with r = 0 exactly, and
     * u_phase NaN (undefined) ... */
    struct qes_sinefit *s3 = make_fit(n, fs, QES_SINEFIT_KNOWN_FREQ, NULL, 0);
    cr_assert_eq(qes_sinefit_execute(s3, x, n, 10.0, res), 0);
    cr_assert(res->tone[0].r == 0.0 && res->offset == 0.0 && res->sigma == 0.0);
    cr_assert(isnan(res->tone[0].u_phase_rad));
    /* ... but no frequency can be fitted to it: the derivative column is
     * exactly zero. */
    struct qes_sinefit *s4 = make_fit(n, fs, QES_SINEFIT_FIT_FREQ, NULL, 0);
    cr_assert_eq(qes_sinefit_execute(s4, x, n, 10.0, res), QES_ERANGE);
    cr_assert(isnan(res->offset));
    /* A constant: amplitude at the rounding level (~u of the offset). */
    for (size_t i = 0; i < n; i++)
        x[i] = 2.5;
    cr_assert_eq(qes_sinefit_execute(s3, x, n, 10.0, res), 0);
    cr_assert(res->tone[0].r <= 1e-15 && fabs(res->offset - 2.5) <= 1e-15);
    /* 1e-6 periods in the block: cosine and offset columns coincide to
     * ~1e-11, below QES_SINEFIT_RANK_TOL. */
    cr_assert_eq(qes_sinefit_execute(s3, x, n, 1e-6, res), QES_ERANGE);
    /* harmonic 7 of 70 Hz at 1 kS/s is 490 Hz: allowed; of 72 Hz: refused */
    static const unsigned h7[] = {1, 7};
    struct qes_sinefit *sh = make_fit(n, fs, QES_SINEFIT_KNOWN_FREQ, h7, 2);
    cr_assert_eq(qes_sinefit_execute(sh, x, n, 70.0, res), 0);
    cr_assert_eq(qes_sinefit_execute(sh, x, n, 72.0, res), QES_EINVAL);
    qes_sinefit_destroy(s3);
    qes_sinefit_destroy(s4);
    qes_sinefit_destroy(sh);
    free(res);
    free(x);
}

Test(sinefit, bad_execute_arguments)
{
    const size_t n = 100;
    const double fs = 100.0;
    double x[100];
    for (size_t i = 0; i < n; i++)
        x[i] = sin(0.3 * (double)i);
    struct qes_sinefit_result *res = new_result();
    struct qes_sinefit *s = make_fit(n, fs, QES_SINEFIT_FIT_FREQ, NULL, 0);
    cr_assert_eq(qes_sinefit_execute(NULL, x, n, 5.0, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit_execute(s, NULL, n, 5.0, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit_execute(s, x, n, 5.0, NULL), QES_EINVAL);
    cr_assert_eq(qes_sinefit_execute(s, x, 4, 5.0, res), QES_EINVAL); /* n = p */
    cr_assert_eq(qes_sinefit_execute(s, x, 0, 5.0, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit_execute(s, x, n + 1, 5.0, res), QES_EINVAL);
    static const double bad_f[] = {0.0, -5.0, 50.0, 60.0, NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof bad_f / sizeof bad_f[0]; k++) {
        cr_assert_eq(qes_sinefit_execute(s, x, n, bad_f[k], res), QES_EINVAL, "f %g", bad_f[k]);
        cr_assert_eq(res->n, 0);
        cr_assert(isnan(res->tone[0].x));
    }
    cr_assert_eq(qes_sinefit_execute(s, x, 5, 5.0, res), 0); /* n = p + 1 is enough */
    x[37] = NAN;
    cr_assert_eq(qes_sinefit_execute(s, x, n, 5.0, res), QES_EINVAL);
    x[37] = INFINITY;
    cr_assert_eq(qes_sinefit_execute(s, x, n, 5.0, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit3_reference(x, n, 5.0, fs, res), QES_EINVAL);
    x[37] = 0.0;
    cr_assert_eq(qes_sinefit3_reference(NULL, n, 5.0, fs, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit3_reference(x, n, 5.0, fs, NULL), QES_EINVAL);
    cr_assert_eq(qes_sinefit3_reference(x, 3, 5.0, fs, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit3_reference(x, n, 50.0, fs, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit3_reference(x, n, 5.0, 0.0, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit3_reference(x, n, 5.0, fs, res), 0);
    qes_sinefit_destroy(s);
    qes_sinefit_destroy(NULL);
    struct qes_sinefit_desc d = {.n_max = 10, .fs_hz = 1.0};
    cr_assert_eq(qes_sinefit_create(&d, NULL), QES_EINVAL);
    s = (struct qes_sinefit *)(void *)&d;
    cr_assert_eq(qes_sinefit_create(NULL, &s), QES_EINVAL);
    cr_assert_null(s);
    free(res);
}

/* Table of invalid descs; parameters are indices (Criterion may run each
 * test in a fresh process, where pointers from this one are not valid). */
struct bad_sf {
    const char *what;
    size_t n_max;
    double fs;
    int kind;
    unsigned h[QES_SINEFIT_MAX_HARMONICS + 1];
    size_t nh;
    int null_h;
    unsigned max_iter;
    double step_tol;
};

static const struct bad_sf bad_sf[] = {
        {"n_max 0", 0, 1e4, QES_SINEFIT_KNOWN_FREQ, {1}, 1, 0, 0, 0},
        {"n_max = p (3-parameter)", 3, 1e4, QES_SINEFIT_KNOWN_FREQ, {1}, 1, 0, 0, 0},
        {"n_max = p (4-parameter)", 4, 1e4, QES_SINEFIT_FIT_FREQ, {0}, 0, 1, 0, 0},
        {"n_max = p (3 harmonics)", 7, 1e4, QES_SINEFIT_KNOWN_FREQ, {1, 2, 3}, 3, 0, 0, 0},
        {"n_max above the limit",
         QES_SINEFIT_N_LIMIT + 1,
         1e4,
         QES_SINEFIT_KNOWN_FREQ,
         {1},
         1,
         0,
         0,
         0},
        {"fs 0", 100, 0.0, QES_SINEFIT_KNOWN_FREQ, {1}, 1, 0, 0, 0},
        {"fs negative", 100, -1e4, QES_SINEFIT_KNOWN_FREQ, {1}, 1, 0, 0, 0},
        {"fs NaN", 100, NAN, QES_SINEFIT_KNOWN_FREQ, {1}, 1, 0, 0, 0},
        {"fs infinite", 100, INFINITY, QES_SINEFIT_FIT_FREQ, {1}, 1, 0, 0, 0},
        {"kind 2", 100, 1e4, 2, {1}, 1, 0, 0, 0},
        {"kind -1", 100, 1e4, -1, {1}, 1, 0, 0, 0},
        {"harmonic 0", 100, 1e4, QES_SINEFIT_KNOWN_FREQ, {1, 0}, 2, 0, 0, 0},
        {"harmonic above the maximum",
         100,
         1e4,
         QES_SINEFIT_KNOWN_FREQ,
         {QES_SINEFIT_MAX_HARMONIC + 1},
         1,
         0,
         0,
         0},
        {"duplicate harmonic", 100, 1e4, QES_SINEFIT_FIT_FREQ, {1, 2, 1}, 3, 0, 0, 0},
        {"too many harmonics",
         1000,
         1e4,
         QES_SINEFIT_KNOWN_FREQ,
         {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17,
          18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33},
         QES_SINEFIT_MAX_HARMONICS + 1,
         0,
         0,
         0},
        {"NULL harmonics with n_harmonics 2", 100, 1e4, QES_SINEFIT_KNOWN_FREQ, {1, 2}, 2, 1, 0, 0},
        {"max_iter above 1000", 100, 1e4, QES_SINEFIT_FIT_FREQ, {1}, 1, 0, 1001, 0},
        {"step_tol negative", 100, 1e4, QES_SINEFIT_FIT_FREQ, {1}, 1, 0, 0, -1e-15},
        {"step_tol NaN", 100, 1e4, QES_SINEFIT_FIT_FREQ, {1}, 1, 0, 0, NAN},
        {"step_tol below 1e-16", 100, 1e4, QES_SINEFIT_FIT_FREQ, {1}, 1, 0, 0, 5e-17},
        {"step_tol above 1e-3", 100, 1e4, QES_SINEFIT_FIT_FREQ, {1}, 1, 0, 0, 2e-3},
};

#define N_BAD_SF (sizeof bad_sf / sizeof bad_sf[0])

ParameterizedTestParameters(sinefit, bad_desc_refused)
{
    static size_t idx[N_BAD_SF];
    for (size_t i = 0; i < N_BAD_SF; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD_SF);
}

ParameterizedTest(size_t *ip, sinefit, bad_desc_refused)
{
    const struct bad_sf *b = &bad_sf[*ip];
    const struct qes_sinefit_desc d = {
            .n_max = b->n_max,
            .fs_hz = b->fs,
            .kind = (enum qes_sinefit_kind)b->kind,
            .harmonics = b->null_h ? NULL : b->h,
            .n_harmonics = b->nh,
            .max_iter = b->max_iter,
            .step_tol = b->step_tol,
    };
    static char sentinel;
    struct qes_sinefit *s = (struct qes_sinefit *)(void *)&sentinel; /* must be cleared */
    cr_assert_eq(qes_sinefit_create(&d, &s), QES_EINVAL, "%s: not refused", b->what);
    cr_assert_null(s, "%s: *out not cleared", b->what);
}

/* The edges of the ranges are accepted (and defaults fill zero fields). */
Test(sinefit, boundary_descs_accepted)
{
    static const unsigned h32[QES_SINEFIT_MAX_HARMONICS] = {
            1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
            17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 1000};
    static const unsigned h1[] = {1};
    const struct qes_sinefit_desc ok[] = {
            {.n_max = 4, .fs_hz = 1.0},
            {.n_max = 5, .fs_hz = 1.0, .kind = QES_SINEFIT_FIT_FREQ},
            {.n_max = QES_SINEFIT_N_LIMIT, .fs_hz = 1e9},
            {.n_max = 100, .fs_hz = 1e-300, .harmonics = h1, .n_harmonics = 0},
            {.n_max = 66, .fs_hz = 1.0, .harmonics = h32, .n_harmonics = 32},
            {.n_max = 67,
             .fs_hz = 1.0,
             .kind = QES_SINEFIT_FIT_FREQ,
             .harmonics = h32,
             .n_harmonics = 32,
             .max_iter = 1000,
             .step_tol = 1e-16},
            {.n_max = 5, .fs_hz = 1.0, .kind = QES_SINEFIT_FIT_FREQ, .step_tol = 1e-3},
            {.n_max = 4, .fs_hz = 1.0, .max_iter = 5000, .step_tol = -1}, /* ignored: known f */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct qes_sinefit *s = NULL;
        cr_assert_eq(qes_sinefit_create(&ok[i], &s), 0, "case %zu refused", i);
        cr_assert_not_null(s);
        qes_sinefit_destroy(s);
    }
}

/* ------------------------------------------------------------------------ */
/* Multi-frequency Levenberg-Marquardt                                      */

struct enso {
    double t[200], y[200];
    size_t n;
    double cert[9], cert_sd[9], rss;
    double start[2][9];
    int n_start, n_cert;
};

/* Read the StRD file: certified values and starts from its header, data
 * below.  0 on success, or skips the test when refdata is absent. */
static void read_enso(struct enso *e)
{
    const char *ref = qes_test_refdata();
    if (!ref)
        cr_skip_test("../shared/refdata is absent: NIST StRD ENSO not checked");
    char path[4200];
    snprintf(path, sizeof path, "%s/nist_strd/strd_nls_enso.txt", ref);
    FILE *f = fopen(path, "r");
    if (!f)
        cr_skip_test("%s is absent: NIST StRD ENSO not checked", path);
    memset(e, 0, sizeof *e);
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        int k;
        double v, u;
        if (sscanf(line, "# b%d = %lf (%lf)", &k, &v, &u) == 3) {
            cr_assert(k >= 1 && k <= 9, "bad certified line: %s", line);
            e->cert[k - 1] = v;
            e->cert_sd[k - 1] = u;
            e->n_cert++;
        } else if (sscanf(line, "# residual sum of squares = %lf", &v) == 1) {
            e->rss = v;
        } else if (strncmp(line, "# start ", 8) == 0) {
            char *p = strstr(line, "b =");
            cr_assert_not_null(p, "bad start line: %s", line);
            cr_assert(e->n_start < 2);
            char *q = p + 3;
            for (int j = 0; j < 9; j++) {
                char *end;
                e->start[e->n_start][j] = strtod(q, &end);
                cr_assert(end != q, "start %d: value %d missing", e->n_start + 1, j + 1);
                q = end;
            }
            e->n_start++;
        } else if (line[0] != '#' && line[0] != '\n') {
            cr_assert(e->n < 200);
            cr_assert_eq(sscanf(line, "%lf %lf", &e->t[e->n], &e->y[e->n]), 2, "bad line %s", line);
            e->n++;
        }
    }
    fclose(f);
    cr_assert_eq(e->n, 168, "ENSO has 168 points, read %zu", e->n);
    cr_assert_eq(e->n_cert, 9);
    cr_assert_eq(e->n_start, 2);
    cr_assert(e->rss > 0);
}

/*
 * ENSO (NIST StRD, average difficulty): y = b1 + b2 cos(2 pi x/12) + b3
 * sin(2 pi x/12) + b5 cos(2 pi x/b4) + b6 sin(2 pi x/b4) + b8 cos(2 pi x/b7)
 * + b9 sin(2 pi x/b7), from both NIST starts.  As terms: offset b1; term 0
 * (P = 12 fixed) a = b2, b = b3; term 1 P = b4, a = b5, b = b6; term 2
 * P = b7, a = b8, b = b9.
 * Budget: the certificate prints 11 significant digits (relative rounding
 * <= 5e-11 of each value; 6.3e-12 of the RSS).  The fit stops when its
 * scaled step is below xtol = 1e-12 of ||D p||; ENSO converges linearly
 * (rate ~0.64, large residual), so the remaining error is at most ~3x the
 * last step, which for the worst-scaled parameter (b8, whose column norm is
 * ~1/75 of the period columns') is ~2e-10 relative.  Parameters and their
 * standard deviations (first-order in the parameters) asserted 1e-9
 * relative; the RSS (second-order) 1e-11.  The acceptance asked for 1e-6.
 */
Test(sinefit_mf, nist_enso_certified)
{
    struct enso *e = malloc(sizeof *e);
    cr_assert_not_null(e);
    read_enso(e);
    const struct qes_sinefit_mf_desc d = {.n_max = e->n, .n_terms = 3, .period_fixed_mask = 1};
    struct qes_sinefit_mf *m;
    cr_assert_eq(qes_sinefit_mf_create(&d, &m), 0);
    struct qes_sinefit_mf_result *res = malloc(sizeof *res);
    cr_assert_not_null(res);
    for (int st = 0; st < e->n_start; st++) {
        const double *b = e->start[st];
        const struct qes_sinefit_mf_params p0 = {
                .offset = b[0],
                .a = {b[1], b[4], b[7]},
                .b = {b[2], b[5], b[8]},
                .period = {12.0, b[3], b[6]},
        };
        cr_assert_eq(qes_sinefit_mf_execute(m, e->t, e->y, e->n, &p0, res), 0, "start %d", st + 1);
        cr_assert_eq(res->n, 168);
        cr_assert_eq(res->n_params, 9);
        const double got[9] = {res->p.offset,    res->p.a[0], res->p.b[0],
                               res->p.period[1], res->p.a[1], res->p.b[1],
                               res->p.period[2], res->p.a[2], res->p.b[2]};
        const double got_u[9] = {res->u.offset,    res->u.a[0], res->u.b[0],
                                 res->u.period[1], res->u.a[1], res->u.b[1],
                                 res->u.period[2], res->u.a[2], res->u.b[2]};
        double wp = 0.0, wu = 0.0;
        for (int j = 0; j < 9; j++) {
            const double ep = fabs(got[j] - e->cert[j]) / fabs(e->cert[j]);
            const double eu = fabs(got_u[j] - e->cert_sd[j]) / e->cert_sd[j];
            wp = fmax(wp, ep);
            wu = fmax(wu, eu);
            cr_assert(ep <= 1e-9, "start %d b%d: %.12g vs certified %.12g (rel %.3g)", st + 1,
                      j + 1, got[j], e->cert[j], ep);
            cr_assert(eu <= 1e-9, "start %d sd(b%d): %.12g vs certified %.12g (rel %.3g)", st + 1,
                      j + 1, got_u[j], e->cert_sd[j], eu);
        }
        const double erss = fabs(res->rss - e->rss) / e->rss;
        cr_assert(erss <= 1e-11, "start %d: RSS %.15g vs certified %.11g", st + 1, res->rss,
                  e->rss);
        /* residual SD certified as 2.2269642403 with 159 dof */
        cr_assert(fabs(res->sigma - sqrt(e->rss / 159.0)) <= 1e-10 * res->sigma);
        /* fixed period: reported as given, zero uncertainty */
        cr_assert_eq(res->p.period[0], 12.0);
        cr_assert_eq(res->u.period[0], 0.0);
        cr_log_info("ENSO start %d: %u Jacobians, %u trial steps; max rel err parameters %.3g, "
                    "standard deviations %.3g, RSS %.3g",
                    st + 1, res->iterations, res->evaluations, wp, wu, erss);
    }
    qes_sinefit_mf_destroy(m);
    free(res);
    free(e);
}

/*
 * Synthetic noise-free sum of three sinusoids at irregular abscissae, one
 * period fixed and two fitted, from starts 0.4 % off in period and with
 * amplitudes off by 50 % (or zero).  The truth is the least-squares
 * solution; the fit recovers it to rounding: the model's evaluations carry
 * ~u |t / P| cycles of phase error (t <= 1500: ~1e-13 rad), amplitudes then
 * ~1e-13; asserted 1e-11 (absolute on amplitudes of order 1, relative on
 * periods).  With t offset by 1e6 the amplitudes refer to t = 0, 1.4e5
 * cycles away from the data: the double abscissae themselves carry u 1e6 /
 * 7.3 = 1.5e-11 cycles, 1e-10 rad: asserted 1e-9 there.
 */
Test(sinefit_mf, synthetic_truth_recovered)
{
    const size_t n = 500;
    static const double P[3] = {7.3, 12.0, 31.7}, A[3] = {1.2, 0.5, -0.8}, B[3] = {-0.4, 0.9, 0.3};
    const double c = 2.5;
    double *t = malloc(n * sizeof *t), *y = malloc(n * sizeof *y);
    cr_assert(t && y);
    const struct qes_sinefit_mf_desc d = {.n_max = n, .n_terms = 3, .period_fixed_mask = 2};
    struct qes_sinefit_mf *m;
    cr_assert_eq(qes_sinefit_mf_create(&d, &m), 0);
    struct qes_sinefit_mf_result *res = malloc(sizeof *res);
    cr_assert_not_null(res);
    static const struct {
        double t0, amp_scale, tol;
    } cases[] = {{0.0, 1.5, 1e-11}, {1000.0, 0.0, 1e-11}, {-250.0, 0.5, 1e-11}, {1e6, 1.0, 1e-9}};
    for (size_t cs = 0; cs < sizeof cases / sizeof cases[0]; cs++) {
        for (size_t i = 0; i < n; i++) {
            t[i] = cases[cs].t0 + (double)i + 0.37 * sin((double)i);
            long double v = c;
            for (int k = 0; k < 3; k++) {
                long double q = (long double)t[i] / P[k];
                q -= floorl(q);
                v += A[k] * cosl(two_pi_l * q) + B[k] * sinl(two_pi_l * q);
            }
            y[i] = (double)v;
        }
        struct qes_sinefit_mf_params p0 = {.offset = 0.0};
        for (int k = 0; k < 3; k++) {
            p0.period[k] = k == 1 ? P[k] : P[k] * 1.004;
            p0.a[k] = A[k] * cases[cs].amp_scale;
            p0.b[k] = B[k] * cases[cs].amp_scale;
        }
        cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), 0, "case %zu", cs);
        cr_assert_eq(res->n_params, 9);
        const double tol = cases[cs].tol;
        double w = fabs(res->p.offset - c);
        for (int k = 0; k < 3; k++) {
            w = fmax(w, fabs(res->p.a[k] - A[k]));
            w = fmax(w, fabs(res->p.b[k] - B[k]));
            w = fmax(w, fabs(res->p.period[k] - P[k]) / P[k]);
        }
        cr_assert(w <= tol, "case %zu (t0 %g): max error %.3g", cs, cases[cs].t0, w);
        cr_assert(res->rss <= 1e-18, "case %zu: rss %.3g", cs, res->rss);
        cr_assert_eq(res->p.period[1], 12.0);
        cr_log_info("synthetic case %zu (t0 %g): max error %.3g in %u Jacobians", cs, cases[cs].t0,
                    w, res->iterations);
    }
    qes_sinefit_mf_destroy(m);
    free(res);
    free(t);
    free(y);
}

/*
 * With noise: uncertainties from the covariance match the scatter of the
 * estimates over repeated noise realisations.  T = 300 sets, each with its
 * own white noise (sigma 0.1); the sample standard deviation of each
 * parameter has a relative standard error 1 / sqrt(2 (T - 1)) = 4.1 %;
 * reported u vary with sigma-hat only (1 / sqrt(2 (n - p)) = 3.2 % per set,
 * 0.2 % on the mean).  Asserted: |sd / mean u - 1| <= 4 * 4.1 % + 0.5 % =
 * 17 %; linearisation error at this SNR is ~1e-3.
 */
Test(sinefit_mf, uncertainties_match_scatter)
{
    const size_t n = 500;
    const int T = 300;
    static const double P[2] = {9.1, 23.4}, A[2] = {1.0, -0.6}, B[2] = {0.2, 0.7};
    double *t = malloc(n * sizeof *t), *clean = malloc(n * sizeof *clean),
           *y = malloc(n * sizeof *y);
    cr_assert(t && clean && y);
    for (size_t i = 0; i < n; i++) {
        t[i] = 0.5 * (double)i + 0.2 * cos(0.7 * (double)i);
        long double v = -1.0;
        for (int k = 0; k < 2; k++) {
            long double q = (long double)t[i] / P[k];
            q -= floorl(q);
            v += A[k] * cosl(two_pi_l * q) + B[k] * sinl(two_pi_l * q);
        }
        clean[i] = (double)v;
    }
    const struct qes_sinefit_mf_desc d = {.n_max = n, .n_terms = 2};
    struct qes_sinefit_mf *m;
    cr_assert_eq(qes_sinefit_mf_create(&d, &m), 0);
    struct qes_sinefit_mf_result *res = malloc(sizeof *res);
    cr_assert_not_null(res);
    struct stats est[7], unc[7];
    memset(est, 0, sizeof est);
    memset(unc, 0, sizeof unc);
    lcg_state = 11;
    const struct qes_sinefit_mf_params p0 = {
            .offset = 0.0, .a = {0.9, -0.5}, .b = {0.3, 0.6}, .period = {9.0, 23.0}};
    for (int trial = 0; trial < T; trial++) {
        for (size_t i = 0; i < n; i++)
            y[i] = clean[i] + 0.1 * gauss();
        cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), 0, "trial %d", trial);
        cr_assert_eq(res->n_params, 7);
        const double v[7] = {res->p.offset, res->p.a[0], res->p.b[0],     res->p.period[0],
                             res->p.a[1],   res->p.b[1], res->p.period[1]};
        for (int j = 0; j < 7; j++) {
            stats_add(&est[j], v[j]);
            stats_add(&unc[j], sqrt(res->cov[j][j]));
        }
        cr_assert(same(res->u.period[1], sqrt(res->cov[6][6])));
    }
    for (int j = 0; j < 7; j++) {
        const double ratio = stats_sd(&est[j]) / unc[j].mean;
        cr_log_info("parameter %d: sd over sets / mean u = %.4f", j, ratio);
        cr_assert(fabs(ratio - 1) <= 0.17, "parameter %d: sd %.4g vs u %.4g", j, stats_sd(&est[j]),
                  unc[j].mean);
    }
    qes_sinefit_mf_destroy(m);
    free(res);
    free(t);
    free(clean);
    free(y);
}

Test(sinefit_mf, degenerate_and_bad_arguments)
{
    const size_t n = 200;
    double t[200], y[200];
    for (size_t i = 0; i < n; i++) {
        t[i] = (double)i;
        y[i] = 1.0 + cos(two_pi_d * (double)i / 10.0);
    }
    const struct qes_sinefit_mf_desc d = {.n_max = n, .n_terms = 2};
    struct qes_sinefit_mf *m;
    cr_assert_eq(qes_sinefit_mf_create(&d, &m), 0);
    struct qes_sinefit_mf_result *res = malloc(sizeof *res);
    cr_assert_not_null(res);
    struct qes_sinefit_mf_params p0 = {.offset = 1.0, .a = {1.0, 0.0}, .period = {10.1, 27.0}};
    /* The second term is absent from the data and starts at a = b = 0:
     * its period column is exactly zero in the first Jacobian.  The fit
     * still finds the first term; the second's amplitudes stay at the
     * rounding level, not significant against their u (header: its period
     * is then meaningless). */
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), 0);
    cr_assert(fabs(res->p.period[0] - 10.0) <= 1e-12 && fabs(res->p.a[0] - 1.0) <= 1e-12);
    cr_assert(hypot(res->p.a[1], res->p.b[1]) <= 4 * hypot(res->u.a[1], res->u.b[1]));
    /* One free period, the other term's fixed at exactly the first's:
     * identical columns, QES_ERANGE and an all-NaN result. */
    const struct qes_sinefit_mf_desc dd = {.n_max = n, .n_terms = 2, .period_fixed_mask = 2};
    struct qes_sinefit_mf *md;
    cr_assert_eq(qes_sinefit_mf_create(&dd, &md), 0);
    const struct qes_sinefit_mf_params pd = {
            .offset = 1.0, .a = {1.0, 0.1}, .period = {10.0, 10.0}};
    cr_assert_eq(qes_sinefit_mf_execute(md, t, y, n, &pd, res), QES_ERANGE);
    cr_assert_eq(res->n, 0);
    cr_assert(isnan(res->p.a[0]) && isnan(res->cov[0][0]));
    qes_sinefit_mf_destroy(md);
    /* bad arguments */
    cr_assert_eq(qes_sinefit_mf_execute(NULL, t, y, n, &p0, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit_mf_execute(m, NULL, y, n, &p0, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit_mf_execute(m, t, NULL, n, &p0, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, NULL, res), QES_EINVAL);
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, NULL), QES_EINVAL);
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, 7, &p0, res), QES_EINVAL); /* n = p */
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n + 1, &p0, res), QES_EINVAL);
    p0.period[1] = 0.0;
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), QES_EINVAL);
    p0.period[1] = -27.0;
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), QES_EINVAL);
    p0.period[1] = NAN;
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), QES_EINVAL);
    p0.period[1] = 27.0;
    p0.a[1] = INFINITY;
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), QES_EINVAL);
    p0.a[1] = 0.3;
    y[17] = NAN;
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), QES_EINVAL);
    y[17] = 1.0 + cos(two_pi_d * 17.0 / 10.0);
    t[17] = INFINITY;
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), QES_EINVAL);
    qes_sinefit_mf_destroy(m);
    qes_sinefit_mf_destroy(NULL);
    /* the same data with the absent term's period fixed: a valid fit */
    const struct qes_sinefit_mf_desc d2 = {.n_max = n, .n_terms = 2, .period_fixed_mask = 2};
    cr_assert_eq(qes_sinefit_mf_create(&d2, &m), 0);
    t[17] = 17.0;
    cr_assert_eq(qes_sinefit_mf_execute(m, t, y, n, &p0, res), 0);
    cr_assert(fabs(res->p.period[0] - 10.0) <= 1e-12 && fabs(res->p.a[0] - 1.0) <= 1e-12);
    cr_assert(fabs(res->p.a[1]) <= 1e-12 && fabs(res->p.b[1]) <= 1e-12);
    qes_sinefit_mf_destroy(m);
    cr_assert_eq(qes_sinefit_mf_create(NULL, &m), QES_EINVAL);
    cr_assert_null(m);
    cr_assert_eq(qes_sinefit_mf_create(&d, NULL), QES_EINVAL);
    free(res);
}

struct bad_mf {
    const char *what;
    size_t n_max, n_terms;
    uint32_t mask;
    unsigned max_iter;
    double xtol;
};

static const struct bad_mf bad_mf[] = {
        {"no terms", 100, 0, 0, 0, 0},
        {"too many terms", 100, QES_SINEFIT_MF_MAX_TERMS + 1, 0, 0, 0},
        {"mask bit beyond the terms", 100, 2, 4, 0, 0},
        {"mask high bit", 100, 8, 0x80000000u, 0, 0},
        {"n_max = p (one free term)", 4, 1, 0, 0, 0},
        {"n_max = p (one fixed term)", 3, 1, 1, 0, 0},
        {"n_max above the limit", QES_SINEFIT_N_LIMIT + 1, 1, 0, 0, 0},
        {"max_iter above 10000", 100, 1, 0, 10001, 0},
        {"xtol negative", 100, 1, 0, 0, -1e-12},
        {"xtol NaN", 100, 1, 0, 0, NAN},
        {"xtol below 1e-15", 100, 1, 0, 0, 1e-16},
        {"xtol above 1e-3", 100, 1, 0, 0, 0.01},
};

#define N_BAD_MF (sizeof bad_mf / sizeof bad_mf[0])

ParameterizedTestParameters(sinefit_mf, bad_desc_refused)
{
    static size_t idx[N_BAD_MF];
    for (size_t i = 0; i < N_BAD_MF; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD_MF);
}

ParameterizedTest(size_t *ip, sinefit_mf, bad_desc_refused)
{
    const struct bad_mf *b = &bad_mf[*ip];
    const struct qes_sinefit_mf_desc d = {
            .n_max = b->n_max,
            .n_terms = b->n_terms,
            .period_fixed_mask = b->mask,
            .max_iter = b->max_iter,
            .xtol = b->xtol,
    };
    static char sentinel;
    struct qes_sinefit_mf *m = (struct qes_sinefit_mf *)(void *)&sentinel;
    cr_assert_eq(qes_sinefit_mf_create(&d, &m), QES_EINVAL, "%s: not refused", b->what);
    cr_assert_null(m, "%s: *out not cleared", b->what);
}

Test(sinefit_mf, boundary_descs_accepted)
{
    const struct qes_sinefit_mf_desc ok[] = {
            {.n_max = 5, .n_terms = 1},
            {.n_max = 4, .n_terms = 1, .period_fixed_mask = 1},
            {.n_max = 26, .n_terms = QES_SINEFIT_MF_MAX_TERMS},
            {.n_max = QES_SINEFIT_N_LIMIT, .n_terms = 8, .period_fixed_mask = 0xff},
            {.n_max = 100, .n_terms = 2, .max_iter = 10000, .xtol = 1e-15},
            {.n_max = 100, .n_terms = 2, .max_iter = 1, .xtol = 1e-3},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct qes_sinefit_mf *m = NULL;
        cr_assert_eq(qes_sinefit_mf_create(&ok[i], &m), 0, "case %zu refused", i);
        cr_assert_not_null(m);
        qes_sinefit_mf_destroy(m);
    }
}
