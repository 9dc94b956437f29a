/*
 * Tests of dsp/calib: the frequency-response table, the calibration chain
 * (gain, offset, frequency response, aperture, time base, delay) against
 * analytic values and against brute-force simulations of the physical
 * effect, the complex ratio of two channels (analytic Jacobian against the
 * numerical one and against Monte Carlo), and the quantum reference values
 * against exact rational arithmetic.
 */
#include "dsp/calib.h"

#include "common/err.h"
#include "dsp/budget.h"
#include "dsp/gum.h"
#include "dsp/si.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(calib, .timeout = 300);

static const double pi = 3.1415926535897932384626433832795;

static double rel(double a, double b)
{
    return fabs(a - b) / fabs(b);
}

/* ------------------------------------------------------------------------ */
/* Frequency response table                                                  */

static const double fr_f[3] = {10.0, 1000.0, 10000.0};
static const double fr_g[3] = {1.0, 0.9999, 0.999};
static const double fr_ug[3] = {1e-6, 2e-6, 1e-5};
static const double fr_ph[3] = {0.0, -1e-4, -1e-3};
static const double fr_uph[3] = {1e-6, 3e-6, 2e-5};

/* Exact at the points, linear in between (budget: one multiply-add, 2e-16
 * relative on values of order 1; asserted 1e-15), refused outside. */
Test(calib, freqresp_interpolation)
{
    struct qes_freqresp *fr = NULL;
    cr_assert_eq(qes_freqresp_create(fr_f, fr_g, fr_ug, fr_ph, fr_uph, 3, 0, &fr), 0);
    for (int i = 0; i < 3; i++) {
        double g, ug, ph, uph;
        cr_assert_eq(qes_freqresp_eval(fr, fr_f[i], &g, &ug, &ph, &uph), 0);
        cr_assert(g == fr_g[i] && ug == fr_ug[i] && ph == fr_ph[i] && uph == fr_uph[i]);
    }
    /* 505 Hz: t = 0.5 between 10 and 1000 Hz; 3250 Hz: t = 0.25 */
    double g, ug, ph, uph;
    cr_assert_eq(qes_freqresp_eval(fr, 505.0, &g, &ug, &ph, &uph), 0);
    cr_assert(fabs(g - 0.99995) <= 1e-15 && fabs(ug - 1.5e-6) <= 1e-21);
    cr_assert(fabs(ph + 0.5e-4) <= 1e-19 && fabs(uph - 2e-6) <= 1e-21);
    cr_assert_eq(qes_freqresp_eval(fr, 3250.0, &g, NULL, &ph, NULL), 0);
    cr_assert(fabs(g - (0.9999 - 0.25 * 0.0009)) <= 1e-15, "g = %.17g", g);
    cr_assert(fabs(ph - (-1e-4 - 0.25 * 0.9e-3)) <= 1e-18, "ph = %.17g", ph);
    /* refused outside, never extrapolated */
    cr_assert_eq(qes_freqresp_eval(fr, 9.999, &g, NULL, NULL, NULL), QES_ERANGE);
    cr_assert_eq(qes_freqresp_eval(fr, 10000.001, &g, NULL, NULL, NULL), QES_ERANGE);
    cr_assert_eq(qes_freqresp_eval(fr, 0.0, &g, NULL, NULL, NULL), QES_ERANGE);
    cr_assert_eq(qes_freqresp_eval(fr, NAN, &g, NULL, NULL, NULL), QES_EINVAL);
    cr_assert_eq(qes_freqresp_eval(NULL, 100, &g, NULL, NULL, NULL), QES_EINVAL);
    qes_freqresp_destroy(fr);
    qes_freqresp_destroy(NULL);

    /* a single point: only that frequency */
    cr_assert_eq(
            qes_freqresp_create(fr_f + 1, fr_g + 1, fr_ug + 1, fr_ph + 1, fr_uph + 1, 1, 9, &fr),
            0);
    cr_assert_eq(qes_freqresp_eval(fr, 1000.0, &g, NULL, NULL, NULL), 0);
    cr_assert(g == 0.9999);
    cr_assert_eq(qes_freqresp_eval(fr, 1000.5, &g, NULL, NULL, NULL), QES_ERANGE);
    qes_freqresp_destroy(fr);
}

/* Bad tables: a valid 3-point table with one entry spoiled per row. */
struct bad_fr {
    const char *what;
    int column; /* 0 f, 1 g, 2 ug, 3 ph, 4 uph, -1 none */
    int index;
    double v;
    size_t n;
    double dof;
};

static const struct bad_fr bad_frs[] = {
        {"n = 0", -1, 0, 0, 0, 0},
        {"negative dof", -1, 0, 0, 3, -1},
        {"NaN dof", -1, 0, 0, 3, NAN},
        {"f not increasing", 0, 1, 10.0, 3, 0},
        {"f decreasing", 0, 2, 500.0, 3, 0},
        {"negative f", 0, 0, -1.0, 3, 0},
        {"NaN f", 0, 1, NAN, 3, 0},
        {"infinite f", 0, 2, INFINITY, 3, 0},
        {"zero gain", 1, 0, 0.0, 3, 0},
        {"negative gain", 1, 1, -1.0, 3, 0},
        {"NaN gain", 1, 2, NAN, 3, 0},
        {"negative u(gain)", 2, 0, -1e-6, 3, 0},
        {"phase beyond pi", 3, 1, 3.2, 3, 0},
        {"NaN phase", 3, 1, NAN, 3, 0},
        {"negative u(phase)", 4, 2, -1e-6, 3, 0},
        {"infinite u(phase)", 4, 2, INFINITY, 3, 0},
};
#define N_BAD_FRS (sizeof bad_frs / sizeof bad_frs[0])

ParameterizedTestParameters(calib, bad_freqresp_refused)
{
    static size_t idx[N_BAD_FRS];
    for (size_t i = 0; i < N_BAD_FRS; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD_FRS);
}

ParameterizedTest(size_t *ip, calib, bad_freqresp_refused)
{
    const struct bad_fr *b = &bad_frs[*ip];
    double cols[5][3];
    memcpy(cols[0], fr_f, sizeof fr_f);
    memcpy(cols[1], fr_g, sizeof fr_g);
    memcpy(cols[2], fr_ug, sizeof fr_ug);
    memcpy(cols[3], fr_ph, sizeof fr_ph);
    memcpy(cols[4], fr_uph, sizeof fr_uph);
    if (b->column >= 0)
        cols[b->column][b->index] = b->v;
    static char sentinel;
    struct qes_freqresp *fr = (struct qes_freqresp *)(void *)&sentinel;
    cr_assert_eq(
            qes_freqresp_create(cols[0], cols[1], cols[2], cols[3], cols[4], b->n, b->dof, &fr),
            QES_EINVAL, "%s: not refused", b->what);
    cr_assert_null(fr, "%s: *out not cleared", b->what);
}

/* ------------------------------------------------------------------------ */
/* Calibration chain                                                         */

static struct qes_calib *make_calib(const struct qes_calib_desc *d)
{
    struct qes_calib *c = NULL;
    const int rc = qes_calib_create(d, &c);
    cr_assert_eq(rc, 0, "qes_calib_create: %s", qes_err_name(rc));
    return c;
}

static const struct qes_calib_term *find_term(const struct qes_calib_result *r, const char *name)
{
    for (size_t i = 0; i < r->n_terms; i++)
        if (strcmp(r->terms[i].name, name) == 0)
            return &r->terms[i];
    return NULL;
}

/*
 * Gain and offset.  At 50 Hz the gain scales the phasor and the offset does
 * not enter; at DC the offset adds.  Budget: a product and a sum, 1e-15
 * relative.
 */
Test(calib, gain_and_offset)
{
    const struct qes_calib_desc d = {
            .gain = {2.0, 1e-6, 50},
            .offset = {0.01, 2e-6, 0},
    };
    struct qes_calib *c = make_calib(&d);
    struct qes_calib_result r;
    cr_assert_eq(qes_calib_apply(c, 50.0, 0.3, 0.4, &r), 0);
    cr_assert(rel(r.x, 0.6) <= 1e-15 && rel(r.y, 0.8) <= 1e-15);
    cr_assert(rel(r.r, 1.0) <= 1e-15 && rel(r.phase_rad, atan2(0.8, 0.6)) <= 1e-15);
    cr_assert_eq(r.n_terms, 1, "no offset term at 50 Hz");
    cr_assert_str_eq(r.terms[0].name, "gain");
    cr_assert(rel(r.terms[0].u_r, 1e-6) <= 1e-15);
    cr_assert(r.terms[0].u_phase_rad == 0.0 && r.terms[0].dof == 50.0);
    cr_assert(rel(r.u_r, 1e-6) <= 1e-15 && r.u_phase_rad == 0.0);
    cr_assert_eq(r.dof_r, 50.0);

    /* DC: -0.3 raw -> -0.6 + 0.01 = -0.59; phase pi */
    cr_assert_eq(qes_calib_apply(c, 0.0, -0.3, 0.0, &r), 0);
    cr_assert(rel(r.x, -0.59) <= 1e-15 && r.y == 0.0);
    cr_assert(rel(r.r, 0.59) <= 1e-15 && r.phase_rad == pi);
    cr_assert_eq(r.n_terms, 2);
    const struct qes_calib_term *o = find_term(&r, "offset");
    cr_assert_not_null(o);
    cr_assert(o->u_r == 2e-6 && isinf(o->dof));
    const double ug = 0.59e-6, uo = 2e-6, uc = sqrt(ug * ug + uo * uo);
    cr_assert(rel(r.u_r, uc) <= 1e-15);
    /* W-S: uc^4 / (ug^4 / 50) = 50 (1 + (uo/ug)^2)^2 -> 6 dof... truncated */
    const double nu = floor(pow(uc, 4) / (pow(ug, 4) / 50.0) * (1 + 1e-12));
    cr_assert_eq(r.dof_r, nu, "dof %g, expected %g", r.dof_r, nu);
    cr_assert_eq(qes_calib_apply(c, 0.0, 0.3, 1e-3, &r), QES_EINVAL, "y != 0 at DC");
    qes_calib_destroy(c);
    qes_calib_destroy(NULL);

    /* gain 0 means the default 1 */
    const struct qes_calib_desc d0 = {0};
    c = make_calib(&d0);
    cr_assert_eq(qes_calib_apply(c, 1e3, 0.3, -0.4, &r), 0);
    cr_assert(r.x == 0.3 && r.y == -0.4 && r.u_r == 0.0 && isinf(r.dof_r));
    qes_calib_destroy(c);
}

/*
 * Frequency response: P / (g e^{i ph}), computed independently with C99
 * complex arithmetic (same roundings order: 1e-15 relative); the term's
 * u(r) is r u_g / g, its u(phase) the table's; the table's dof is carried.
 * The table is copied by create (freed before use here).
 */
Test(calib, frequency_response_divides)
{
    struct qes_freqresp *fr = NULL;
    cr_assert_eq(qes_freqresp_create(fr_f, fr_g, fr_ug, fr_ph, fr_uph, 3, 20, &fr), 0);
    const struct qes_calib_desc d = {.gain = {1.5, 0, 0}, .fr = fr};
    struct qes_calib *c = make_calib(&d);
    qes_freqresp_destroy(fr);
    struct qes_calib_result r;
    const double f = 3250.0, g = 0.9999 - 0.25 * 0.0009, ph = -1e-4 - 0.25 * 0.9e-3;
    cr_assert_eq(qes_calib_apply(c, f, 0.7, -0.2, &r), 0);
    const double complex p = 1.5 * (0.7 - 0.2 * I) / (g * cexp(I * ph));
    cr_assert(cabs(r.x + I * r.y - p) <= 1e-15 * cabs(p), "(%.17g, %.17g) vs (%.17g, %.17g)", r.x,
              r.y, creal(p), cimag(p));
    cr_assert(rel(r.r, cabs(p)) <= 1e-15 && fabs(r.phase_rad - carg(p)) <= 1e-15);
    const struct qes_calib_term *t = find_term(&r, "freqresp");
    cr_assert_not_null(t);
    const double ug = 2e-6 + 0.25 * 8e-6, uph = 3e-6 + 0.25 * 17e-6;
    cr_assert(rel(t->u_r, r.r * ug / g) <= 1e-14, "u_r %.17g", t->u_r);
    cr_assert(rel(t->u_phase_rad, uph) <= 1e-14);
    cr_assert_eq(t->dof, 20.0);
    cr_assert_eq(qes_calib_apply(c, 5.0, 0.7, -0.2, &r), QES_ERANGE, "below the table");
    cr_assert_eq(qes_calib_apply(c, 2e4, 0.7, -0.2, &r), QES_ERANGE, "above the table");
    cr_assert_eq(qes_calib_apply(c, 0.0, 0.7, 0.0, &r), QES_ERANGE, "DC is outside the table");
    qes_calib_destroy(c);
}

/*
 * Aperture, analytic: f t_a = 1/2 gives |H| = sinc(pi/2) = 2/pi, so the
 * corrected amplitude is pi/2 times the measured; the phase moves by +pi/2
 * (aperture ending at the time stamp), -pi/2 (starting) or 0 (centred).
 * u: d ln sinc(a)/d t_a = pi f (cot a - 1/a) = -2 f at a = pi/2, second
 * derivative (pi f)^2 (1/a^2 - 1/sin^2 a) = (pi f)^2 (4/pi^2 - 1); u(t_a)
 * = 1e-6 s at f = 1 kHz.  Budget: a few roundings, 1e-14 relative.
 */
Test(calib, aperture_analytic)
{
    const double f = 1000.0, ta = 0.5e-3, uta = 1e-6;
    static const struct {
        enum qes_aperture_ref ref;
        double dphi;
    } cases[] = {{QES_APERTURE_CENTRED, 0.0},
                 {QES_APERTURE_ENDS, 0.5 * 3.1415926535897932},
                 {QES_APERTURE_STARTS, -0.5 * 3.1415926535897932}};
    for (size_t i = 0; i < 3; i++) {
        const struct qes_calib_desc d = {.aperture_s = {ta, uta, 0}, .aperture_ref = cases[i].ref};
        struct qes_calib *c = make_calib(&d);
        struct qes_calib_result r;
        const double phi0 = 0.3;
        cr_assert_eq(qes_calib_apply(c, f, cos(phi0), sin(phi0), &r), 0);
        cr_assert(rel(r.r, pi / 2) <= 1e-14, "r = %.17g, expected pi/2", r.r);
        cr_assert(fabs(r.phase_rad - (phi0 + cases[i].dphi)) <= 1e-14, "case %zu: phase %.17g", i,
                  r.phase_rad);
        const struct qes_calib_term *t = find_term(&r, "aperture");
        cr_assert_not_null(t);
        const double g1 = -2.0 * f, g2 = pi * pi * f * f * (4.0 / (pi * pi) - 1.0);
        const double urel = sqrt(g1 * g1 * uta * uta + 0.5 * pow(g2 * uta * uta, 2));
        cr_assert(rel(t->u_r, urel * r.r) <= 1e-12, "u_r %.17g, expected %.17g", t->u_r,
                  urel * r.r);
        const double uph = cases[i].ref == QES_APERTURE_CENTRED ? 0.0 : pi * f * uta;
        cr_assert(fabs(t->u_phase_rad - uph) <= 1e-14 * pi * f * uta);
        /* at and beyond the first zero of the sinc: refused */
        cr_assert_eq(qes_calib_apply(c, 2000.0, 1.0, 0.0, &r), QES_ERANGE);
        cr_assert_eq(qes_calib_apply(c, 2500.0, 1.0, 0.0, &r), QES_ERANGE);
        qes_calib_destroy(c);
    }
}

/*
 * Aperture, physical: each sample is the mean of s(t) = sqrt2 r cos(2 pi f
 * t + phi) over [t_n - t_a, t_n] (computed with the antiderivative, not
 * with a sinc); the phasor of an integer number of periods (coherent DFT:
 * exact apart from rounding, ~1e-15 per sample sum of 1e4 terms: ~1e-13)
 * corrected by the chain must give back (r, phi).  Asserted 1e-12.
 */
Test(calib, aperture_simulated)
{
    const double fs = 1e4, f = 1e3, ta = 3e-4, r0 = 0.8, phi = -1.1;
    const size_t N = 10000; /* 1000 periods */
    double complex acc = 0;
    for (size_t n = 0; n < N; n++) {
        const double w = 2 * pi * f, tn = (double)(n % 10) / fs; /* phase-exact time mod 1 period */
        const double s = sqrt(2.0) * r0 * (sin(w * tn + phi) - sin(w * (tn - ta) + phi)) / (w * ta);
        acc += s * cexp(-I * 2 * pi * (double)(n % 10) / 10.0);
    }
    const double complex pm = sqrt(2.0) * acc / (double)N;
    const struct qes_calib_desc d = {.aperture_s = {ta, 0, 0}, .aperture_ref = QES_APERTURE_ENDS};
    struct qes_calib *c = make_calib(&d);
    struct qes_calib_result r;
    cr_assert_eq(qes_calib_apply(c, f, creal(pm), cimag(pm), &r), 0);
    cr_log_info("aperture: measured r %.12f phase %.12f -> corrected r %.15f phase %.15f", cabs(pm),
                carg(pm), r.r, r.phase_rad);
    cr_assert(fabs(r.r - r0) <= 1e-12 && fabs(r.phase_rad - phi) <= 1e-12,
              "corrected (%.15f, %.15f), true (%g, %g)", r.r, r.phase_rad, r0, phi);
    qes_calib_destroy(c);
}

/*
 * Time base, physical: a sine on a true time base is sampled by a clock
 * running at fs (1 + y), y = 1e-5, and analysed at the nominal f with t =
 * n / fs over 10^6 samples (T = 10 s; t0 = 0 and t0 = 5 s).  The effect is
 * large here (phase pi df (2 t0 + T) = -0.31 and -0.63 rad, amplitude
 * sinc(pi df T) = 1 - 1.6e-2).  Error budget of the comparison: the
 * negative-frequency image of the real sine leaks |sin(pi df T)| / (N
 * sin(2 pi f / fs)) = 5e-6 relative; the discrete sum differs from the
 * continuous average by pi df / fs = 3e-7 rad; asserted 1e-5 on the
 * corrected phasor, i.e. the model reproduces the 1.6e-2 amplitude effect
 * to 6e-4 of itself and the phase effect to 3e-5 of itself.
 */
Test(calib, timebase_simulated)
{
    const double fs = 1e5, f = 1e3, y = 1e-5, r0 = 1.3, phi = 0.4;
    const size_t N = 1000000;
    static const size_t starts[2] = {0, 500000};
    for (int k = 0; k < 2; k++) {
        const size_t n0 = starts[k];
        double complex acc = 0;
        for (size_t n = n0; n < n0 + N; n++) {
            /* true time n / (fs (1 + y)); the reference exactly periodic in n */
            const double t_true = (double)n / (fs * (1.0 + y));
            const double s = sqrt(2.0) * r0 * cos(2 * pi * f * t_true + phi);
            acc += s * cexp(-I * 2 * pi * (double)(n % 100) / 100.0);
        }
        const double complex pm = sqrt(2.0) * acc / (double)N;
        const struct qes_calib_desc d = {
                .timebase_rel = {y, 1e-7, 0},
                .record_start_s = (double)n0 / fs,
                .record_span_s = (double)N / fs,
        };
        struct qes_calib *c = make_calib(&d);
        struct qes_calib_result r;
        cr_assert_eq(qes_calib_apply(c, f, creal(pm), cimag(pm), &r), 0);
        const double complex pc = r.x + I * r.y, pt = r0 * cexp(I * phi);
        cr_log_info("time base t0 = %g s: measured r %.9f phase %.9f -> corrected r %.9f "
                    "phase %.9f; |error| %.2e",
                    (double)n0 / fs, cabs(pm), carg(pm), r.r, r.phase_rad, cabs(pc - pt) / r0);
        cr_assert(cabs(pc - pt) <= 1e-5 * r0, "t0 = %g: corrected (%.9f, %.9f)", (double)n0 / fs,
                  r.r, r.phase_rad);
        cr_assert(cabs(pm - pt) >= 0.2 * r0, "the effect is not large: the test is weak");
        /* u(phase) = pi f (2 t0 + T) u(y) / (1 + y)^2 */
        const struct qes_calib_term *t = find_term(&r, "timebase");
        cr_assert_not_null(t);
        const double uph =
                pi * f * (2.0 * (double)n0 / fs + (double)N / fs) * 1e-7 / ((1 + y) * (1 + y));
        cr_assert(rel(t->u_phase_rad, uph) <= 1e-13);
        qes_calib_destroy(c);
    }
}

/*
 * Time base at y = 0 with u(y) > 0: no correction, no first-order amplitude
 * sensitivity, phase u = pi f (2 t0 + T) u(y), amplitude from the second
 * order: ln sinc(a) ~ -a^2/6, a = pi T f y: g2 = -(pi T f)^2 / 3, u_rel =
 * |g2| u^2 / sqrt 2.  Budget: series evaluation, 1e-12 relative.
 */
Test(calib, timebase_second_order)
{
    const double f = 50.0, T = 100.0, t0 = 20.0, uy = 1e-8;
    const struct qes_calib_desc d = {
            .timebase_rel = {0, uy, 0}, .record_start_s = t0, .record_span_s = T};
    struct qes_calib *c = make_calib(&d);
    struct qes_calib_result r;
    cr_assert_eq(qes_calib_apply(c, f, 0.0, 2.0, &r), 0);
    cr_assert(r.x == 0.0 && r.y == 2.0);
    const struct qes_calib_term *t = find_term(&r, "timebase");
    cr_assert_not_null(t);
    cr_assert(rel(t->u_phase_rad, pi * f * (2 * t0 + T) * uy) <= 1e-14);
    const double g2 = pow(pi * T * f, 2) / 3.0;
    cr_assert(rel(t->u_r, 2.0 * g2 * uy * uy / sqrt(2.0)) <= 1e-12, "u_r %.17g", t->u_r);
    qes_calib_destroy(c);
}

/* Delay: phase + 2 pi f tau after correction, u = 2 pi f u(tau).  Budget:
 * one rotation, 1e-15. */
Test(calib, delay)
{
    const double tau = 1.25e-6, utau = 2e-9, f = 2e4;
    const struct qes_calib_desc d = {.delay_s = {tau, utau, 30}};
    struct qes_calib *c = make_calib(&d);
    struct qes_calib_result r;
    cr_assert_eq(qes_calib_apply(c, f, 1.0, 0.0, &r), 0);
    cr_assert(fabs(r.phase_rad - 2 * pi * f * tau) <= 1e-15 && fabs(r.r - 1.0) <= 1e-15);
    const struct qes_calib_term *t = find_term(&r, "delay");
    cr_assert_not_null(t);
    cr_assert(t->u_r == 0.0 && rel(t->u_phase_rad, 2 * pi * f * utau) <= 1e-15);
    cr_assert_eq(t->dof, 30.0);
    qes_calib_destroy(c);
}

/*
 * The whole chain: the corrections commute (the product of the responses),
 * the combined u's are the root sum of squares of the terms, and cov_xy is
 * the polar covariance rotated: trace u_r^2 + r^2 u_phi^2, determinant
 * u_r^2 r^2 u_phi^2 (1e-12 relative).
 */
Test(calib, whole_chain)
{
    struct qes_freqresp *fr = NULL;
    cr_assert_eq(qes_freqresp_create(fr_f, fr_g, fr_ug, fr_ph, fr_uph, 3, 0, &fr), 0);
    const struct qes_calib_desc d = {
            .gain = {0.5, 3e-6, 0},
            .offset = {1e-3, 1e-6, 0},
            .fr = fr,
            .aperture_s = {2e-6, 1e-8, 0},
            .aperture_ref = QES_APERTURE_ENDS,
            .timebase_rel = {2e-7, 1e-8, 0},
            .record_start_s = 0,
            .record_span_s = 10,
            .delay_s = {1e-7, 1e-9, 0},
    };
    struct qes_calib *c = make_calib(&d);
    qes_freqresp_destroy(fr);
    const double f = 1000.0;
    struct qes_calib_result r;
    cr_assert_eq(qes_calib_apply(c, f, 0.2, 0.9, &r), 0);
    cr_assert_eq(r.n_terms, 5, "gain, freqresp, aperture, timebase, delay");
    const double a = pi * f * 2e-6, df = -f * 2e-7 / (1 + 2e-7), b = pi * df * 10;
    const double complex H = 0.9999 * cexp(I * -1e-4) * (sin(a) / a) * cexp(-I * a) * (sin(b) / b) *
                             cexp(I * pi * df * 10) * cexp(-I * 2 * pi * f * 1e-7);
    const double complex p = 0.5 * (0.2 + 0.9 * I) / H;
    cr_assert(cabs(r.x + I * r.y - p) <= 1e-14 * cabs(p));
    double ur2 = 0, up2 = 0;
    for (size_t i = 0; i < r.n_terms; i++) {
        ur2 += r.terms[i].u_r * r.terms[i].u_r;
        up2 += r.terms[i].u_phase_rad * r.terms[i].u_phase_rad;
    }
    cr_assert(rel(r.u_r, sqrt(ur2)) <= 1e-15 && rel(r.u_phase_rad, sqrt(up2)) <= 1e-15);
    const double tr = r.cov_xy[0] + r.cov_xy[2];
    const double det = r.cov_xy[0] * r.cov_xy[2] - r.cov_xy[1] * r.cov_xy[1];
    const double vr = r.u_r * r.u_r, vt = r.r * r.r * r.u_phase_rad * r.u_phase_rad;
    cr_assert(rel(tr, vr + vt) <= 1e-12);
    cr_assert(rel(det, vr * vt) <= 1e-9, "det %.17g vs %.17g", det, vr * vt);
    /* the gain term is 3e-6 of r; the aperture term (1e-8 s at 1 kHz: g1 =
     * pi f (cot a - 1/a) ~ -(pi f)^2 t_a / 3 -> 6.6e-8 relative, plus the
     * second-order g2 = (pi f)^2 (1/a^2 - 1/sin^2 a) ~ -(pi f)^2 / 3 term,
     * 3.5e-3 of the first here).  Closed forms at a = 6.3e-3 lose ~eps/a^2 =
     * 6e-12 relative to cancellation (calib.c uses the series): 1e-9. */
    cr_assert(rel(find_term(&r, "gain")->u_r, 3e-6 * r.r) <= 1e-14);
    const double g1 = pi * f * (cos(a) / sin(a) - 1 / a);
    const double g2 = pi * f * pi * f * (1 / (a * a) - 1 / (sin(a) * sin(a)));
    const double uap = sqrt(pow(g1 * 1e-8, 2) + 0.5 * pow(g2 * 1e-16, 2));
    cr_assert(rel(find_term(&r, "aperture")->u_r, uap * r.r) <= 1e-9, "%.17g vs %.17g",
              find_term(&r, "aperture")->u_r, uap * r.r);
    qes_calib_destroy(c);
}

/* Bad chain descriptions (index table); each must give QES_EINVAL and
 * clear *out. */
struct bad_cd {
    const char *what;
    int field; /* 0 gain, 1 offset, 2 aperture, 3 timebase, 4 delay, 5 t0, 6 T, 7 ref */
    double value, u, dof;
};

static const struct bad_cd bad_cds[] = {
        {"NaN gain", 0, NAN, 0, 0},
        {"infinite gain", 0, INFINITY, 0, 0},
        {"negative u(gain)", 0, 1, -1e-6, 0},
        {"NaN u(offset)", 1, 0, NAN, 0},
        {"negative dof(offset)", 1, 0, 1e-6, -1},
        {"NaN dof(delay)", 4, 0, 1e-9, NAN},
        {"negative aperture", 2, -1e-6, 0, 0},
        {"infinite u(aperture)", 2, 1e-6, INFINITY, 0},
        {"time base error 1 %", 3, 1e-2, 0, 0},
        {"negative u(time base)", 3, 0, -1, 0},
        {"infinite delay", 4, INFINITY, 0, 0},
        {"negative record start", 5, -1, 0, 0},
        {"NaN record span", 6, NAN, 0, 0},
        {"unknown aperture reference", 7, 9, 0, 0},
};
#define N_BAD_CDS (sizeof bad_cds / sizeof bad_cds[0])

ParameterizedTestParameters(calib, bad_desc_refused)
{
    static size_t idx[N_BAD_CDS];
    for (size_t i = 0; i < N_BAD_CDS; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD_CDS);
}

ParameterizedTest(size_t *ip, calib, bad_desc_refused)
{
    const struct bad_cd *b = &bad_cds[*ip];
    struct qes_calib_desc d = {.gain = {1, 0, 0}};
    const struct qes_calib_qty q = {b->value, b->u, b->dof};
    switch (b->field) {
    case 0:
        d.gain = q;
        break;
    case 1:
        d.offset = q;
        break;
    case 2:
        d.aperture_s = q;
        break;
    case 3:
        d.timebase_rel = q;
        break;
    case 4:
        d.delay_s = q;
        break;
    case 5:
        d.record_start_s = b->value;
        break;
    case 6:
        d.record_span_s = b->value;
        break;
    default:
        d.aperture_ref = (enum qes_aperture_ref)(int)b->value;
        break;
    }
    static char sentinel;
    struct qes_calib *c = (struct qes_calib *)(void *)&sentinel;
    cr_assert_eq(qes_calib_create(&d, &c), QES_EINVAL, "%s: not refused", b->what);
    cr_assert_null(c, "%s: *out not cleared", b->what);
}

Test(calib, apply_bad_arguments)
{
    const struct qes_calib_desc d = {0};
    struct qes_calib *c = make_calib(&d);
    struct qes_calib_result r = {.x = 77};
    cr_assert_eq(qes_calib_apply(c, -1.0, 1, 0, &r), QES_EINVAL);
    cr_assert_eq(qes_calib_apply(c, NAN, 1, 0, &r), QES_EINVAL);
    cr_assert_eq(qes_calib_apply(c, 10, INFINITY, 0, &r), QES_EINVAL);
    cr_assert_eq(qes_calib_apply(c, 10, 1, NAN, &r), QES_EINVAL);
    cr_assert_eq(qes_calib_apply(NULL, 10, 1, 0, &r), QES_EINVAL);
    cr_assert_eq(qes_calib_apply(c, 10, 1, 0, NULL), QES_EINVAL);
    cr_assert_eq(r.x, 77.0, "result written on failure");
    qes_calib_destroy(c);
    struct qes_calib *c2 = c;
    cr_assert_eq(qes_calib_create(NULL, &c2), QES_EINVAL);
    cr_assert_null(c2);
    cr_assert_eq(qes_calib_create(&d, NULL), QES_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Complex ratio                                                             */

/* P2 = 1 exactly: Z = P1, and its covariance is P1's; |Z| and arg Z follow
 * the polar Jacobian.  Budget: 1e-15 relative. */
Test(calib, ratio_trivial_denominator)
{
    const double cov4[16] = {4e-6, 1e-6, 0, 0, 1e-6, 9e-6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    struct qes_cratio z;
    cr_assert_eq(qes_cratio_compute(3.0, 4.0, 1.0, 0.0, cov4, &z), 0);
    cr_assert(z.re == 3.0 && z.im == 4.0 && z.abs == 5.0 && rel(z.arg, atan2(4, 3)) <= 1e-15);
    cr_assert(rel(z.u_re, 2e-3) <= 1e-15 && rel(z.u_im, 3e-3) <= 1e-15);
    cr_assert(rel(z.cov[1], 1e-6) <= 1e-15);
    /* |Z|: (3 dx + 4 dy)/5: var (9*4 + 16*9 + 24)/25 e-6 */
    cr_assert(rel(z.cov[10], (36.0 + 144.0 + 24.0) / 25.0 * 1e-6) <= 1e-14);
    /* arg: (3 dy - 4 dx)/25: var (9*9 + 16*4 - 24)/625 e-6 */
    cr_assert(rel(z.cov[15], (81.0 + 64.0 - 24.0) / 625.0 * 1e-6) <= 1e-14);
}

/* (x1, y1, x2, y2) -> (Re, Im, |Z|, arg) of P1 / P2 */
static int ratio_model(const double *x, double *y, void *ctx)
{
    (void)ctx;
    const double complex z = (x[0] + I * x[1]) / (x[2] + I * x[3]);
    y[0] = creal(z);
    y[1] = cimag(z);
    y[2] = cabs(z);
    y[3] = carg(z);
    return 0;
}

/*
 * A synthetic ratio with correlated phasors (covariance A A^T, relative u
 * ~1e-3, correlations up to 0.8 including between the channels, as from
 * simultaneous blocks).  (1) The analytic Jacobian against the numerical
 * one of qes_propagate: 1e-8 relative on the covariance.  (2) Monte Carlo
 * with 10^6 trials of the multivariate normal: u within 5 / sqrt(2M) =
 * 3.5e-3 relative (the linearisation error is (u/|P|)^2 ~ 1e-6), the
 * output correlations within 5 (1 - r^2) / sqrt(M).
 */
Test(calib, ratio_against_propagation_and_mc)
{
    const double p[4] = {1.0, 0.5, 0.8, -0.3};
    static const double A[16] = {
            1.0e-3,  0,      0,      0,      /* */
            0.4e-3,  0.9e-3, 0,      0,      /* */
            0.8e-3,  0.1e-3, 0.5e-3, 0,      /* */
            -0.2e-3, 0.5e-3, 0.2e-3, 0.6e-3, /* */
    };
    double cov4[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double s = 0;
            for (int k = 0; k < 4; k++)
                s += A[i * 4 + k] * A[j * 4 + k];
            cov4[i * 4 + j] = s;
        }
    struct qes_cratio z;
    cr_assert_eq(qes_cratio_compute(p[0], p[1], p[2], p[3], cov4, &z), 0);

    double u[4], R[16];
    cr_assert_eq(qes_cov_to_corr(cov4, 4, u, R), 0);
    struct qes_input in[4];
    for (int i = 0; i < 4; i++)
        in[i] = (struct qes_input){"p", p[i], QES_UNC_STANDARD, u[i], 0, 0, 0};
    const struct qes_model m = {.f = ratio_model, .n_in = 4, .n_out = 4};
    double yl[4], covl[16];
    struct qes_propagation pr = {.y = yl, .cov = covl};
    cr_assert_eq(qes_propagate(&m, in, R, &pr), 0);
    cr_assert(rel(z.re, yl[0]) <= 1e-15 && rel(z.im, yl[1]) <= 1e-15);
    cr_assert(rel(z.abs, yl[2]) <= 1e-15 && rel(z.arg, yl[3]) <= 1e-15);
    for (int i = 0; i < 16; i++) {
        const double scale = sqrt(covl[(i / 4) * 5] * covl[(i % 4) * 5]);
        cr_assert(fabs(z.cov[i] - covl[i]) <= 1e-8 * scale, "cov[%d] %.10g vs %.10g", i, z.cov[i],
                  covl[i]);
    }

    const size_t M = 1000000;
    const struct qes_mc_desc d = {.trials = M, .seed = 31337};
    struct qes_mc_stat st[4];
    double covm[16];
    cr_assert_eq(qes_mc_propagate(&m, in, R, &d, st, covm), 0);
    const double us[4] = {z.u_re, z.u_im, z.u_abs, z.u_arg};
    static const char *names[4] = {"Re Z", "Im Z", "|Z|", "arg Z"};
    for (int k = 0; k < 4; k++) {
        cr_log_info("%-5s analytic u %.6e, MC u %.6e (rel %.2e)", names[k], us[k], st[k].u,
                    rel(st[k].u, us[k]));
        cr_assert(rel(st[k].u, us[k]) <= 5 / sqrt(2.0 * M), "%s: MC %.6e vs %.6e", names[k],
                  st[k].u, us[k]);
        for (int l = 0; l < k; l++) {
            const double ra = z.cov[k * 4 + l] / (us[k] * us[l]);
            const double rm = covm[k * 4 + l] / (st[k].u * st[l].u);
            cr_assert(fabs(ra - rm) <= 5 * (1 - ra * ra) / sqrt((double)M) + 1e-12,
                      "r(%s, %s): analytic %.5f, MC %.5f", names[k], names[l], ra, rm);
        }
    }
    cr_log_info("r(Re, Im) analytic %.5f MC %.5f", z.cov[4] / (us[0] * us[1]),
                covm[4] / (st[0].u * st[1].u));
}

/*
 * Calibrated value = ratio x quantum reference: Z = 0.5 (+-1e-6 on each
 * part), s = R_K / 2 (exact) then s with u_s / s = 1e-8.  |Z| u combines
 * s u(|Z|) and |Z| u_s; arg unchanged.  Budget 1e-14.
 */
Test(calib, ratio_scaled_by_reference)
{
    const double cov4[16] = {1e-12, 0, 0, 0, 0, 1e-12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    struct qes_cratio z, w;
    cr_assert_eq(qes_cratio_compute(0.5, 0.0, 1.0, 0.0, cov4, &z), 0);
    double rk2;
    cr_assert_eq(qes_qhr_resistance(2, &rk2), 0);
    cr_assert_eq(qes_cratio_scale(&z, rk2, 0.0, &w), 0);
    cr_assert(rel(w.re, 0.5 * rk2) <= 1e-15 && rel(w.u_re, 1e-6 * rk2) <= 1e-15);
    cr_assert(w.arg == z.arg && w.u_arg == z.u_arg);
    const double us = 1e-8 * rk2;
    cr_assert_eq(qes_cratio_scale(&z, rk2, us, &w), 0);
    const double ua = sqrt(pow(rk2 * 1e-6, 2) + pow(0.5 * us, 2));
    cr_assert(rel(w.u_abs, ua) <= 1e-14, "u|w| %.17g vs %.17g", w.u_abs, ua);
    /* Re and |Z| share the reference term fully: their covariance */
    cr_assert(rel(w.cov[2], rk2 * rk2 * 1e-12 + 0.25 * us * us) <= 1e-14);
    cr_assert(w.u_arg == z.u_arg);
    /* aliasing allowed */
    cr_assert_eq(qes_cratio_scale(&z, 2.0, 0.0, &z), 0);
    cr_assert(z.re == 1.0);
    cr_assert_eq(qes_cratio_scale(&z, 0.0, 0.0, &w), QES_EINVAL);
    cr_assert_eq(qes_cratio_scale(&z, 1.0, -1.0, &w), QES_EINVAL);
}

Test(calib, ratio_bad_arguments)
{
    double cov4[16] = {0};
    struct qes_cratio z = {.re = 42};
    cr_assert_eq(qes_cratio_compute(1, 0, 0, 0, cov4, &z), QES_EINVAL, "P2 = 0");
    cr_assert_eq(qes_cratio_compute(0, 0, 1, 0, cov4, &z), QES_EINVAL, "P1 = 0");
    cr_assert_eq(qes_cratio_compute(NAN, 0, 1, 0, cov4, &z), QES_EINVAL);
    cr_assert_eq(qes_cratio_compute(1, 0, 1, 0, NULL, &z), QES_EINVAL);
    cov4[5] = -1e-9;
    cr_assert_eq(qes_cratio_compute(1, 0, 1, 0, cov4, &z), QES_EINVAL, "negative variance");
    cov4[5] = 1e-6;
    cov4[0] = 1e-6;
    cov4[1] = 5e-7;
    cr_assert_eq(qes_cratio_compute(1, 0, 1, 0, cov4, &z), QES_EINVAL, "asymmetric");
    cr_assert_eq(z.re, 42.0);
    cov4[4] = 5e-7;
    cr_assert_eq(qes_cratio_compute(1, 0, 1, 0, cov4, &z), 0);
}

/* ------------------------------------------------------------------------ */
/* Quantum references                                                        */

__extension__ typedef unsigned __int128 u128;

/*
 * num / den * 10^exp10 correctly rounded to double: 40 significant decimal
 * digits by exact long division, then strtod (correctly rounding in glibc).
 * The 40-digit truncation can only matter within 1e-40 relative of a
 * rounding boundary.
 */
static double exact_ratio(u128 num, u128 den, int exp10)
{
    char buf[128];
    size_t len = 0;
    u128 q = num / den, rem = num % den;
    char ip[48];
    int ni = 0;
    do {
        ip[ni++] = (char)('0' + (int)(q % 10));
        q /= 10;
    } while (q > 0);
    while (ni > 0)
        buf[len++] = ip[--ni];
    buf[len++] = '.';
    for (int i = 0; i < 40; i++) {
        rem *= 10;
        buf[len++] = (char)('0' + (int)(rem / den));
        rem %= den;
    }
    snprintf(buf + len, sizeof buf - len, "e%d", exp10);
    return strtod(buf, NULL);
}

static double ulps(double a, double b)
{
    if (a == b)
        return 0;
    return fabs(a - b) / (nextafter(fabs(b), INFINITY) - fabs(b));
}

/*
 * QHR: R_K / i from exact rationals.  R_K = h / e^2 = 662607015e-42 /
 * (1602176634e-28)^2 = 662607015 / 1602176634^2 * 1e14.  The long double
 * quotient rounded once must equal the correctly rounded value (si.h: the
 * long double value is within 2e-19 relative, so only a value within that
 * of a double rounding boundary could differ: not the case for these i,
 * asserted exactly).  R_K/2 = 12906.403729652253 ohm (the figure).
 */
Test(calib, qhr_exact)
{
    const u128 e = 1602176634u;
    for (int i = 1; i <= 10; i++) {
        double r;
        cr_assert_eq(qes_qhr_resistance(i, &r), 0);
        const double ex = exact_ratio(662607015u, e * e * (u128)i, 14);
        cr_assert(r == ex, "i = %d: %.17g, exact %.17g (%g ulp)", i, r, ex, ulps(r, ex));
    }
    double r2;
    qes_qhr_resistance(2, &r2);
    cr_assert(r2 == 12906.403729652253, "R_K/2 = %.17g", r2);
    cr_log_info("R_K/2 = %.17g ohm, R_K = %.17g ohm", r2, 2 * r2);
    double r;
    cr_assert_eq(qes_qhr_resistance(0, &r), QES_EINVAL);
    cr_assert_eq(qes_qhr_resistance(-2, &r), QES_EINVAL);
    cr_assert_eq(qes_qhr_resistance(2, NULL), QES_EINVAL);
}

/*
 * PJVS: V = n f_J h / (2 e) = n f_J 662607015 / 3204353268 * 1e-14 V,
 * exact for integer n and f_J.  Asserted within 1 ulp of the correctly
 * rounded value (the promise; measured 0), and 1/K_J (n = 1, f =
 * 1 Hz) = 2.0678338484619293e-15 V/Hz within 1 ulp.  u(V) = |V| u_rel.
 */
Test(calib, pjvs_exact)
{
    static const struct {
        long n;
        double f;
    } t[] = {{1, 1.0},       {1, 70e9},     {3868, 70e9},       {-6451, 70e9},
             {8403, 75.5e9}, {69632, 70e9}, {1, 483597.8484e9}, {262144, 17e9}};
    double worst = 0;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        double v, u;
        cr_assert_eq(qes_pjvs_voltage(t[i].n, t[i].f, 1e-9, &v, &u), 0);
        const u128 nf = (u128)(t[i].n < 0 ? -t[i].n : t[i].n) * (u128)t[i].f;
        double ex = exact_ratio(nf * 662607015u, 3204353268u, -14);
        if (t[i].n < 0)
            ex = -ex;
        const double d = ulps(v, ex);
        worst = fmax(worst, d);
        cr_assert(d <= 1.0, "n = %ld f = %g: %.17g, exact %.17g (%g ulp)", t[i].n, t[i].f, v, ex,
                  d);
        cr_assert(rel(u, fabs(v) * 1e-9) <= 1e-15);
    }
    cr_log_info("PJVS: worst %g ulp from the correctly rounded value", worst);
    double phi0;
    cr_assert_eq(qes_pjvs_voltage(1, 1.0, 0.0, &phi0, NULL), 0);
    cr_assert(ulps(phi0, 2.0678338484619293e-15) <= 1.0, "1/K_J = %.17g", phi0);
    double v70;
    qes_pjvs_voltage(1, 70e9, 0, &v70, NULL);
    cr_log_info("1/K_J = %.17g V/Hz; one junction at 70 GHz: %.15g uV", phi0, v70 * 1e6);
    cr_assert(fabs(v70 * 1e6 - 144.748369392) < 1e-9);
    double v, u;
    cr_assert_eq(qes_pjvs_voltage(0, 70e9, 0, &v, &u), 0);
    cr_assert(v == 0.0 && u == 0.0);
    cr_assert_eq(qes_pjvs_voltage(1, 0.0, 0, &v, NULL), QES_EINVAL);
    cr_assert_eq(qes_pjvs_voltage(1, -70e9, 0, &v, NULL), QES_EINVAL);
    cr_assert_eq(qes_pjvs_voltage(1, 70e9, -1e-9, &v, NULL), QES_EINVAL);
    cr_assert_eq(qes_pjvs_voltage(1, NAN, 0, &v, NULL), QES_EINVAL);
    cr_assert_eq(qes_pjvs_voltage(1, 70e9, 0, NULL, NULL), QES_EINVAL);
}
