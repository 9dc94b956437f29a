/*
 * Tests of dsp/window: names, values, symmetry, leakage widths, the figures
 * of merit against published values, and the coherent-gain-corrected
 * amplitude of a coherent tone for every window.
 *
 * Published reference: G. Heinzel, A. Ruediger, R. Schilling, "Spectrum and
 * spectral density estimation by the Discrete Fourier transform (DFT),
 * including a comprehensive list of window functions and some new flat-top
 * windows", Max-Planck-Institut fuer Gravitationsphysik, Hannover, 2002:
 * NENBW, PSLL (highest sidelobe) and emax (maximum amplitude error, which is
 * the scalloping at 0.5 bin for the non-flat-top windows) of each window.
 * Values quoted there (rounded as printed):
 *   rect     NENBW 1.0000  PSLL -13.3 dB   emax -3.9224 dB
 *   hann     NENBW 1.5000  PSLL -31.5 dB   emax -1.4236 dB
 *   BH92     NENBW 2.0044  PSLL -92.0 dB   emax -0.8256 dB
 *   HFT248D  NENBW 5.6512  PSLL -248.4 dB  emax  0.0009 dB (0.0104 %)
 *   Kaiser3  NENBW 1.7952  PSLL -69.6 dB   emax -1.0226 dB  (alpha 3: beta = 3 pi)
 * Tolerances for those: half a unit of the last printed digit, plus the
 * difference between the periodic window of n points computed here and the
 * large-n values (cosine sums: ENBW is exactly independent of n > 2 K; the
 * others change by O(1/n^2), < 1e-6 relative at n = 4096).
 */
#include "dsp/window.h"

#include "common/err.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

TestSuite(window, .timeout = 120);

static const long double two_pi_l = 6.283185307179586476925286766559L;
static const double pi_d = 3.1415926535897932384626433832795;

static const enum qes_window_kind all_kinds[] = {QES_WINDOW_RECT, QES_WINDOW_HANN,
                                                 QES_WINDOW_BLACKMANHARRIS, QES_WINDOW_FLATTOP,
                                                 QES_WINDOW_KAISER};
#define N_KINDS (sizeof all_kinds / sizeof all_kinds[0])

/* |W(f)| = |sum w[i] e^{-j 2 pi f i / n}| in long double, phase reduced to
 * [0, 1) cycles in long double before cosl/sinl. */
static long double dtft_abs_l(const double *w, size_t n, long double f)
{
    long double re = 0.0L, im = 0.0L;
    for (size_t i = 0; i < n; i++) {
        long double t = f * (long double)i / (long double)n;
        t -= floorl(t);
        re += w[i] * cosl(two_pi_l * t);
        im -= w[i] * sinl(two_pi_l * t);
    }
    return sqrtl(re * re + im * im);
}

Test(window, names_round_trip)
{
    static const char *const nm[] = {"rect", "hann", "blackmanharris", "flattop", "kaiser"};
    for (size_t i = 0; i < N_KINDS; i++) {
        enum qes_window_kind k;
        cr_assert_eq(qes_window_from_name(nm[i], &k), 0, "%s", nm[i]);
        cr_assert_eq(k, all_kinds[i]);
        cr_assert_str_eq(qes_window_name(k), nm[i]);
    }
}

Test(window, bad_names_refused)
{
    static const char *const bad[] = {
            "",         "Hann",   "HANN",   "hanning", "rect ",    " rect",           "rectangular",
            "blackman", "Kaiser", "hann\n", "hft248d", "flat-top", "blackman-harris", "kaiser8.6"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum qes_window_kind k = QES_WINDOW_HANN;
        cr_assert_eq(qes_window_from_name(bad[i], &k), QES_EINVAL, "name \"%s\" accepted", bad[i]);
        cr_assert_eq(k, QES_WINDOW_HANN, "name \"%s\": output written", bad[i]);
    }
    enum qes_window_kind k;
    cr_assert_eq(qes_window_from_name(NULL, &k), QES_EINVAL);
    cr_assert_eq(qes_window_from_name("rect", NULL), QES_EINVAL);
    cr_assert_null(qes_window_name((enum qes_window_kind)7));
    cr_assert_null(qes_window_name((enum qes_window_kind) - 1));
}

Test(window, fill_refuses_bad_arguments)
{
    double w[4];
    cr_assert_eq(qes_window_fill(QES_WINDOW_HANN, 0, w), QES_EINVAL);
    cr_assert_eq(qes_window_fill(QES_WINDOW_HANN, 4, NULL), QES_EINVAL);
    cr_assert_eq(qes_window_fill((enum qes_window_kind)7, 4, w), QES_EINVAL);
    cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, -0.1, 4, w), QES_EINVAL);
    cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, QES_WINDOW_KAISER_BETA_MAX * 1.0001, 4, w),
                 QES_EINVAL);
    cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, NAN, 4, w), QES_EINVAL);
    cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, INFINITY, 4, w), QES_EINVAL);
    cr_assert_eq(qes_window_fill_ex((enum qes_window_kind)7, 1.0, 4, w), QES_EINVAL);
    /* beta is ignored for the other kinds, even when it would be invalid */
    cr_assert_eq(qes_window_fill_ex(QES_WINDOW_HANN, NAN, 4, w), 0);
    cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, 0.0, 4, w), 0);
    cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, QES_WINDOW_KAISER_BETA_MAX, 4, w), 0);
}

Test(window, leak_and_mainlobe_bins)
{
    cr_assert_eq(qes_window_leak_bins(QES_WINDOW_RECT), 0);
    cr_assert_eq(qes_window_leak_bins(QES_WINDOW_HANN), 1);
    cr_assert_eq(qes_window_leak_bins(QES_WINDOW_BLACKMANHARRIS), 3);
    cr_assert_eq(qes_window_leak_bins(QES_WINDOW_FLATTOP), 10);
    /* ceil(sqrt(1 + (8.6/pi)^2)) = ceil(2.914) */
    cr_assert_eq(qes_window_leak_bins(QES_WINDOW_KAISER), 3);
    cr_assert_eq(qes_window_leak_bins((enum qes_window_kind)7), 0);
    cr_assert_eq(qes_window_leak_bins_ex(QES_WINDOW_KAISER, 0.0), 1);
    cr_assert_eq(qes_window_leak_bins_ex(QES_WINDOW_KAISER, 3.0 * pi_d), 4); /* sqrt(10) */
    cr_assert_eq(qes_window_leak_bins_ex(QES_WINDOW_KAISER, -1.0), 0);
    cr_assert_eq(qes_window_leak_bins_ex(QES_WINDOW_KAISER, NAN), 0);
    cr_assert_eq(qes_window_leak_bins_ex(QES_WINDOW_FLATTOP, NAN), 10); /* beta ignored */
    cr_assert_eq(qes_window_mainlobe_bins(QES_WINDOW_RECT, 0), 1.0);
    cr_assert_eq(qes_window_mainlobe_bins(QES_WINDOW_HANN, 0), 2.0);
    cr_assert_eq(qes_window_mainlobe_bins(QES_WINDOW_BLACKMANHARRIS, 0), 4.0);
    cr_assert_eq(qes_window_mainlobe_bins(QES_WINDOW_FLATTOP, 0), 11.0);
    cr_assert(fabs(qes_window_mainlobe_bins(QES_WINDOW_KAISER, 3.0 * pi_d) - sqrt(10.0)) <=
              4 * DBL_EPSILON);
    cr_assert(isnan(qes_window_mainlobe_bins(QES_WINDOW_KAISER, -1.0)));
    cr_assert(isnan(qes_window_mainlobe_bins((enum qes_window_kind)7, 0)));
}

Test(window, rect_is_all_ones)
{
    double w[17];
    cr_assert_eq(qes_window_fill(QES_WINDOW_RECT, 17, w), 0);
    for (size_t i = 0; i < 17; i++)
        cr_assert_eq(w[i], 1.0);
    /* Kaiser with beta = 0 is the rectangular window: I0(0) = 1. */
    cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, 0.0, 17, w), 0);
    for (size_t i = 0; i < 17; i++)
        cr_assert_eq(w[i], 1.0);
}

/* Values at the points where the periodic Hann is known exactly. */
Test(window, hann_known_points_and_symmetry)
{
    const size_t n = 1000;
    double *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    cr_assert_eq(qes_window_fill(QES_WINDOW_HANN, n, w), 0);
    /* Periodic, not symmetric-length: w[0] = 0 and the peak is at n/2. */
    cr_assert_eq(w[0], 0.0);
    cr_assert_eq(w[n / 2], 1.0);
    /* w[n/4] = 0.5 - 0.5 cos(pi/2): cos of the rounded pi/2 is 6e-17, so
     * within 1 ulp of 0.5. */
    cr_assert(fabs(w[n / 4] - 0.5) <= DBL_EPSILON, "w[n/4] = %.17g", w[n / 4]);
    for (size_t i = 0; i < n; i++)
        cr_assert(w[i] >= 0.0 && w[i] <= 1.0);
    free(w);
}

/* Periodic symmetry w[i] == w[n - i], bit for bit, for every kind, odd and
 * even n (by construction: angles folded in integers, Kaiser from i (n - i)). */
Test(window, symmetric_bit_for_bit)
{
    static const size_t sizes[] = {2, 3, 7, 16, 1001, 1024};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const size_t n = sizes[s];
        double *w = malloc(n * sizeof *w);
        cr_assert_not_null(w);
        for (size_t k = 0; k < N_KINDS; k++) {
            cr_assert_eq(qes_window_fill(all_kinds[k], n, w), 0);
            for (size_t i = 1; i < n; i++)
                cr_assert_eq(w[i], w[n - i], "%s n = %zu i = %zu", qes_window_name(all_kinds[k]), n,
                             i);
        }
        free(w);
    }
}

/*
 * Exact values at i = 0 and i = n/2 (n even): a cosine sum is sum a_k there
 * and sum (-1)^k a_k.  Blackman-Harris: w[0] = 0.00006, w[n/2] = 1;
 * HFT248D: the published coefficients alternate-sum to exactly 0 (in decimal)
 * and sum to 7.032470056320.  Budget: each value is a sum of K terms, each
 * within 2 ulp of its magnitude (<= 2): K * 2 * 2 * 2^-53 <= 1e-14 for K = 11.
 */
Test(window, cosine_sums_known_points)
{
    const size_t n = 1024;
    double *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    cr_assert_eq(qes_window_fill(QES_WINDOW_BLACKMANHARRIS, n, w), 0);
    cr_assert(fabs(w[0] - 0.00006) <= 1e-14, "%.17g", w[0]);
    cr_assert(fabs(w[n / 2] - 1.0) <= 1e-14, "%.17g", w[n / 2]);
    cr_assert_eq(qes_window_fill(QES_WINDOW_FLATTOP, n, w), 0);
    cr_assert(fabs(w[0]) <= 1e-14, "%.17g", w[0]);
    cr_assert(fabs(w[n / 2] - 7.032470056320) <= 1e-14, "%.17g", w[n / 2]);
    /* Quarter period: cos(k pi / 2) = 1, 0, -1, 0, ... for k = 0, 1, 2, 3:
     * BH4 w[n/4] = a0 - a2 = 0.35875 - 0.14128 (the cos(pi/2) terms are
     * ~6e-17 times a coefficient). */
    cr_assert_eq(qes_window_fill(QES_WINDOW_BLACKMANHARRIS, n, w), 0);
    cr_assert(fabs(w[n / 4] - (0.35875 - 0.14128)) <= 1e-14, "%.17g", w[n / 4]);
    free(w);
}

/*
 * Kaiser values against I0 from an independent formula: the integral
 * I0(x) = (1/pi) int_0^pi exp(x cos t) dt by the trapezoid rule, which for
 * this periodic analytic integrand converges geometrically (error below
 * 2^-64 relative with 256 points for x <= 20).  Budget of the window value:
 * the series and the quadrature are both ~1e-18 relative; the argument
 * beta * 2 sqrt(i (n - i)) / n carries <= 1.5 ulp (3.3e-16) relative (sqrt,
 * division, product), which moves I0(x) by x I1(x)/I0(x) <= beta times that;
 * the final ratio rounds once more (<= 1.1e-16): asserted
 * 3.3e-16 beta + 2.2e-16 relative.
 */
static long double i0_quadrature(long double x)
{
    const int m = 256;
    long double s = 0.0L;
    for (int j = 0; j <= m; j++) {
        const long double t = (long double)j * (two_pi_l / 2) / m;
        const long double v = expl(x * cosl(t));
        s += (j == 0 || j == m) ? v / 2 : v;
    }
    return s / m;
}

Test(window, kaiser_values_match_bessel_integral)
{
    static const double betas[] = {0.5, 3.0 * 3.1415926535897932, 8.6, 20.0};
    const size_t n = 1000;
    double *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    double worst = 0.0;
    for (size_t b = 0; b < sizeof betas / sizeof betas[0]; b++) {
        const double beta = betas[b];
        cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, beta, n, w), 0);
        const long double i0b = i0_quadrature(beta);
        for (size_t i = 0; i < n; i += 37) {
            const long double t = 2.0L * i / n - 1.0L;
            const long double ref = i0_quadrature(beta * sqrtl(1.0L - t * t)) / i0b;
            const double e = (double)fabsl((w[i] - ref) / ref);
            worst = fmax(worst, e);
            cr_assert(e <= 3.3e-16 * beta + 2.2e-16, "beta %g i %zu: rel err %.3g", beta, i, e);
        }
        cr_assert_eq(w[n / 2], 1.0);
    }
    cr_log_info("kaiser vs I0 integral: max rel err %.3g", worst);
    /* The default-beta fill is the beta = 8.6 fill. */
    double *w2 = malloc(n * sizeof *w2);
    cr_assert_not_null(w2);
    cr_assert_eq(qes_window_fill(QES_WINDOW_KAISER, n, w), 0);
    cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, QES_WINDOW_KAISER_BETA_DEFAULT, n, w2), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(w[i], w2[i]);
    free(w2);
    free(w);
}

/*
 * Coherent gain sum(w)/n of a cosine sum is exactly a0 for n > K-1 in exact
 * arithmetic (each cosine sums to zero over a full period), and sum(w^2)/n is
 * a0^2 + sum a_k^2 / 2 for n > 2 (K-1) (every size here is > 20).  Budget: each w[i] is within ~2 ulp of
 * its magnitude bound sum |a_k| (<= 7.04); the long double sum adds nothing,
 * so |gain - a0| <= 2 * 2^-53 * 7.04 = 1.6e-15; asserted 2e-15 (power gain:
 * 2 * 7.04 * 1.6e-15 = 2.2e-14, asserted 3e-14).
 */
Test(window, coherent_and_power_gain_exact)
{
    static const struct {
        enum qes_window_kind k;
        double a0, pg;
    } exact[] = {
            {QES_WINDOW_HANN, 0.5, 0.375},
            {QES_WINDOW_BLACKMANHARRIS, 0.35875,
             0.35875 * 0.35875 + (0.48829 * 0.48829 + 0.14128 * 0.14128 + 0.01168 * 0.01168) / 2},
            {QES_WINDOW_FLATTOP, 1.0,
             1.0 + (1.985844164102 * 1.985844164102 + 1.791176438506 * 1.791176438506 +
                    1.282075284005 * 1.282075284005 + 0.667777530266 * 0.667777530266 +
                    0.240160796576 * 0.240160796576 + 0.056656381764 * 0.056656381764 +
                    0.008134974479 * 0.008134974479 + 0.000624544650 * 0.000624544650 +
                    0.000019808998 * 0.000019808998 + 0.000000132974 * 0.000000132974) /
                             2},
    };
    static const size_t sizes[] = {21, 22, 100, 1000, 1024, 10001};
    for (size_t e = 0; e < sizeof exact / sizeof exact[0]; e++) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            const size_t n = sizes[s];
            double *w = malloc(n * sizeof *w);
            cr_assert_not_null(w);
            cr_assert_eq(qes_window_fill(exact[e].k, n, w), 0);
            long double sw = 0.0L, sw2 = 0.0L;
            for (size_t i = 0; i < n; i++) {
                sw += w[i];
                sw2 += (long double)w[i] * w[i];
            }
            const double gain = (double)(sw / n);
            cr_assert(fabs(gain - exact[e].a0) <= 2e-15, "%s n = %zu: coherent gain %.17g",
                      qes_window_name(exact[e].k), n, gain);
            const double pg = (double)(sw2 / n);
            cr_assert(fabs(pg - exact[e].pg) <= 3e-14, "%s n = %zu: power gain %.17g vs %.17g",
                      qes_window_name(exact[e].k), n, pg, exact[e].pg);
            free(w);
        }
    }
}

/* Figures against Heinzel 2002 (file header) at n = 4096. */
Test(window, figures_match_published)
{
    static const struct {
        enum qes_window_kind k;
        double beta;
        double enbw, enbw_tol;
        double psll_db, psll_tol;
        double scal_db, scal_tol;
        double null_bins;
    } pub[] = {
            {QES_WINDOW_RECT, 0, 1.0, 1e-12, -13.3, 0.05, -3.9224, 5e-5, 1.0},
            {QES_WINDOW_HANN, 0, 1.5, 1e-12, -31.5, 0.05, -1.4236, 5e-5, 2.0},
            {QES_WINDOW_BLACKMANHARRIS, 0, 2.0044, 5e-5, -92.0, 0.05, -0.8256, 5e-5, 4.0},
            {QES_WINDOW_FLATTOP, 0, 5.6512, 5e-5, -248.4, 0.05, 0.0, 0.00095, 11.0},
            {QES_WINDOW_KAISER, 3.0 * 3.1415926535897932, 1.7952, 5e-5, -69.6, 0.05, -1.0226, 5e-5,
             NAN},
    };
    for (size_t i = 0; i < sizeof pub / sizeof pub[0]; i++) {
        struct qes_window_figures f;
        cr_assert_eq(qes_window_figures(pub[i].k, pub[i].beta, 4096, 48000.0, &f), 0);
        const char *nm = qes_window_name(pub[i].k);
        cr_log_info("%-14s cg %.6f  ENBW %.6f bins (%.6g Hz)  scalloping %.6f dB  first null "
                    "%.7f bins  highest sidelobe %.3f dB at %.4f bins",
                    nm, f.coherent_gain, f.enbw_bins, f.enbw_hz, f.scalloping_db, f.first_null_bins,
                    f.sidelobe_db, f.sidelobe_bins);
        cr_assert(fabs(f.enbw_bins - pub[i].enbw) <= pub[i].enbw_tol, "%s ENBW %.9g", nm,
                  f.enbw_bins);
        cr_assert(fabs(f.enbw_hz - f.enbw_bins * 48000.0 / 4096) <= 1e-12 * f.enbw_hz);
        cr_assert(fabs(f.sidelobe_db - pub[i].psll_db) <= pub[i].psll_tol, "%s sidelobe %.4f dB",
                  nm, f.sidelobe_db);
        cr_assert(fabs(f.scalloping_db - pub[i].scal_db) <= pub[i].scal_tol, "%s scalloping %.6f",
                  nm, f.scalloping_db);
        /*
         * First null: cosine sums have exact zeros on integer bins.  The
         * golden-section search stops at 1e-9 bin where the zero is simple;
         * HFT248D's zeros beyond its main lobe cluster (that is how it reaches
         * -248 dB), so |W| stays below the rounding floor (~1e-16 W(0)) over
         * a few 1e-6 bin around 11: asserted 1e-5 there, 1e-7 elsewhere.
         */
        if (!isnan(pub[i].null_bins)) {
            const double tol = pub[i].k == QES_WINDOW_FLATTOP ? 1e-5 : 1e-7;
            cr_assert(fabs(f.first_null_bins - pub[i].null_bins) <= tol, "%s null %.9f", nm,
                      f.first_null_bins);
        }
        cr_assert(fabs(f.power_gain - f.enbw_bins * f.coherent_gain * f.coherent_gain) <=
                  1e-14 * f.power_gain);
    }
}

/*
 * Flat-top: the amplitude error stays within Heinzel's emax = 0.0009 dB
 * (printed rounded: < 0.00095 dB) over the whole +-0.5 bin, not only at 0.5.
 * |W(f)| from a long double direct DTFT (error ~1e-18 relative).
 */
Test(window, flattop_flatness)
{
    const size_t n = 512;
    double *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    cr_assert_eq(qes_window_fill(QES_WINDOW_FLATTOP, n, w), 0);
    const long double w0 = dtft_abs_l(w, n, 0.0L);
    double worst = 0.0, at = 0.0;
    for (int j = 0; j <= 50; j++) {
        const long double f = j / 100.0L;
        const double db = (double)(20.0L * log10l(dtft_abs_l(w, n, f) / w0));
        if (fabs(db) > fabs(worst)) {
            worst = db;
            at = (double)f;
        }
    }
    cr_log_info("flattop (HFT248D): max amplitude error %.6f dB (%.5f %%) at %.2f bin", worst,
                100.0 * (pow(10.0, worst / 20.0) - 1.0), at);
    cr_assert(fabs(worst) < 0.00095, "flat-top error %.6f dB", worst);
    free(w);
}

/*
 * The figures are properties of the window values: the first null is a
 * minimum of the directly summed DTFT, Kaiser's is at the continuous-time
 * sqrt(1 + (beta/pi)^2), and leak_bins is that rounded up.  Depth of the
 * null: with w[i] = w[n - i], W(f) = w[0] + e^{-j pi f} R(f), R real, so the
 * unpaired end sample w[0] = 1/I0(beta) keeps |W| >= |w[0] sin(pi f)| (for a
 * cosine sum w[0] ~ 0 and the zero is exact); the search stops at 1e-9 bin
 * from the minimum, where |W| has a slope of order W(0) per bin: asserted
 * |W(null)| <= |w[0] sin(pi null)| + 1e-8 W(0).  Kaiser's
 * continuous-time formula ignores the sampling (the periodic window's end
 * sample w[0] = 1/I0(beta)); measured 4e-6 bin at n = 4096; asserted 1e-4.
 */
Test(window, kaiser_null_and_leak)
{
    static const double betas[] = {2.0, 5.0, 8.6, 12.0, 20.0};
    const size_t n = 4096;
    double *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    for (size_t b = 0; b < sizeof betas / sizeof betas[0]; b++) {
        struct qes_window_figures f;
        cr_assert_eq(qes_window_figures(QES_WINDOW_KAISER, betas[b], n, 0.0, &f), 0);
        cr_assert(isnan(f.enbw_hz));
        const double ml = qes_window_mainlobe_bins(QES_WINDOW_KAISER, betas[b]);
        cr_assert(fabs(f.first_null_bins - ml) <= 1e-4, "beta %g: null %.9f vs %.9f", betas[b],
                  f.first_null_bins, ml);
        cr_assert_eq(qes_window_fill_ex(QES_WINDOW_KAISER, betas[b], n, w), 0);
        const long double w0 = dtft_abs_l(w, n, 0.0L);
        const double rel = (double)(dtft_abs_l(w, n, f.first_null_bins) / w0);
        const double floor_rel = fabs(w[0] * sin(pi_d * f.first_null_bins)) / (double)w0;
        cr_assert(rel <= floor_rel + 1e-8, "beta %g: |W(null)|/W(0) = %.3g (end-sample floor %.3g)",
                  betas[b], rel, floor_rel);
        cr_assert_eq(qes_window_leak_bins_ex(QES_WINDOW_KAISER, betas[b]),
                     (unsigned)ceil(f.first_null_bins));
        cr_log_info("kaiser beta %5.2f: ENBW %.5f  scalloping %.4f dB  null %.6f  sidelobe "
                    "%.2f dB  leak_bins %u",
                    betas[b], f.enbw_bins, f.scalloping_db, f.first_null_bins, f.sidelobe_db,
                    qes_window_leak_bins_ex(QES_WINDOW_KAISER, betas[b]));
    }
    free(w);
}

/*
 * The sidelobe figure is the true maximum: check it against a brute-force
 * scan of the long double DTFT on a 1/1000-bin grid over the first sidelobes
 * (where every window here has its highest one), at n = 256.  Budget, as a
 * relative error of the peak: the scan's grid loses <= (pi 0.0005 / 0.44)^2 / 2
 * = 6e-6 on the narrowest lobe (Kaiser's first, 0.44 bin wide); the figure
 * sums its DTFT in double: n terms of |w| <= 7.04 with ~1 ulp each, random,
 * so 4 sigma = 4 * 7.04 * 2^-53 sqrt(n) absolute, against a sidelobe of
 * n * 10^(sidelobe/20) (this is what matters for HFT248D at -248 dB: 5e-4).
 */
Test(window, sidelobe_matches_brute_force)
{
    const size_t n = 256;
    double *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    for (size_t k = 0; k < N_KINDS; k++) {
        struct qes_window_figures f;
        cr_assert_eq(qes_window_figures(all_kinds[k], 8.6, n, 1.0, &f), 0);
        cr_assert_eq(qes_window_fill_ex(all_kinds[k], 8.6, n, w), 0);
        const long double w0 = dtft_abs_l(w, n, 0.0L);
        long double best = 0.0L;
        for (long double fr = f.first_null_bins + 0.001L; fr < f.first_null_bins + 4.0L;
             fr += 0.001L) {
            const long double v = dtft_abs_l(w, n, fr);
            if (v > best)
                best = v;
        }
        const double db = (double)(20.0L * log10l(best / w0));
        const double rel = 6e-6 + 4.0 * 7.04 * 0x1p-53 * sqrt((double)n) /
                                          ((double)w0 * pow(10.0, f.sidelobe_db / 20.0));
        const double tol = 20.0 * log10(1.0 + rel);
        cr_assert(fabs(db - f.sidelobe_db) <= tol,
                  "%s: brute force %.6f dB, figure %.6f dB (tol %.3g)",
                  qes_window_name(all_kinds[k]), db, f.sidelobe_db, tol);
        cr_log_info("%-14s sidelobe: figure %.6f dB, brute force %.6f dB (tol %.3g dB)",
                    qes_window_name(all_kinds[k]), f.sidelobe_db, db, tol);
    }
    free(w);
}

/*
 * A coherent tone at bin b: 2 |sum w[i] x[i] e^{-j 2 pi b i / n}| / sum(w) is
 * its peak amplitude.  For a cosine sum the negative-frequency image at -b
 * falls on an exact zero of the window's spectrum (2 b > K - 1), so the
 * estimate is exact to rounding: long double sums, signal rounded once,
 * window ~2 ulp: relative error <= ~1e-15; asserted 1e-13 (the value path's
 * 1e-12 with margin).  Kaiser's image leaks through its sidelobes: the bound
 * there is |W(2 b)| / W(0) (direct DTFT) plus the same rounding.
 */
Test(window, coherent_tone_amplitude_for_every_window)
{
    const size_t n = 4096;
    static const unsigned bins[] = {37, 100, 1000};
    double *w = malloc(n * sizeof *w);
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(w);
    cr_assert_not_null(x);
    for (size_t bi = 0; bi < sizeof bins / sizeof bins[0]; bi++) {
        const unsigned b = bins[bi];
        const double amp = 1.7, phi = 0.4;
        for (size_t i = 0; i < n; i++)
            x[i] = (double)(amp * cosl(two_pi_l * (long double)((b * i) % n) / n + phi));
        for (size_t k = 0; k < N_KINDS; k++) {
            cr_assert_eq(qes_window_fill(all_kinds[k], n, w), 0);
            long double re = 0.0L, im = 0.0L, sw = 0.0L;
            for (size_t i = 0; i < n; i++) {
                const long double a = two_pi_l * (long double)((b * i) % n) / n;
                re += w[i] * x[i] * cosl(a);
                im -= w[i] * x[i] * sinl(a);
                sw += w[i];
            }
            const double est = (double)(2.0L * sqrtl(re * re + im * im) / sw);
            const double err = fabs(est - amp) / amp;
            double bound = 1e-13;
            if (all_kinds[k] == QES_WINDOW_KAISER)
                bound += (double)(dtft_abs_l(w, n, 2.0L * b) / sw);
            cr_assert(err <= bound, "%s bin %u: amplitude rel err %.3g > %.3g",
                      qes_window_name(all_kinds[k]), b, err, bound);
            cr_log_info("coherent tone, bin %4u, %-14s: amplitude rel err %.3g (bound %.3g)", b,
                        qes_window_name(all_kinds[k]), err, bound);
        }
    }
    free(x);
    free(w);
}

/* Table of bad arguments to qes_window_figures, by index (pointers in
 * Criterion parameters are not safe here). */
static const struct bad_fig {
    const char *what;
    int kind;
    double beta;
    size_t n;
    double fs_hz;
    int null_out;
    int expect;
} bad_figs[] = {
        {"n 0", QES_WINDOW_HANN, 0, 0, 1.0, 0, QES_EINVAL},
        {"n 3", QES_WINDOW_HANN, 0, 3, 1.0, 0, QES_EINVAL},
        {"n too large", QES_WINDOW_HANN, 0, QES_WINDOW_FIGURES_MAX_N + 1, 1.0, 0, QES_ERANGE},
        {"kaiser grid too large", QES_WINDOW_KAISER, 50.0, QES_WINDOW_FIGURES_MAX_N, 1.0, 0,
         QES_ERANGE},
        {"bad kind", 9, 0, 64, 1.0, 0, QES_EINVAL},
        {"negative kind", -1, 0, 64, 1.0, 0, QES_EINVAL},
        {"kaiser beta negative", QES_WINDOW_KAISER, -1.0, 64, 1.0, 0, QES_EINVAL},
        {"kaiser beta too large", QES_WINDOW_KAISER, 51.0, 64, 1.0, 0, QES_EINVAL},
        {"kaiser beta NaN", QES_WINDOW_KAISER, NAN, 64, 1.0, 0, QES_EINVAL},
        {"fs negative", QES_WINDOW_HANN, 0, 64, -1.0, 0, QES_EINVAL},
        {"fs NaN", QES_WINDOW_HANN, 0, 64, NAN, 0, QES_EINVAL},
        {"fs infinite", QES_WINDOW_HANN, 0, 64, INFINITY, 0, QES_EINVAL},
        {"out NULL", QES_WINDOW_HANN, 0, 64, 1.0, 1, QES_EINVAL},
};
#define N_BAD_FIGS (sizeof bad_figs / sizeof bad_figs[0])

ParameterizedTestParameters(window, figures_bad_arguments)
{
    static size_t idx[N_BAD_FIGS];
    for (size_t i = 0; i < N_BAD_FIGS; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD_FIGS);
}

ParameterizedTest(size_t *i, window, figures_bad_arguments)
{
    const struct bad_fig *p = &bad_figs[*i];
    struct qes_window_figures f;
    const int rc = qes_window_figures((enum qes_window_kind)p->kind, p->beta, p->n, p->fs_hz,
                                      p->null_out ? NULL : &f);
    cr_assert_eq(rc, p->expect, "%s: got %d (%s), want %d", p->what, rc, qes_err_name(rc),
                 p->expect);
}

/* Small n: the main lobe of HFT248D (11 bins) does not fit below Nyquist at
 * n = 16, so there is no sidelobe to report. */
Test(window, figures_small_n)
{
    struct qes_window_figures f;
    cr_assert_eq(qes_window_figures(QES_WINDOW_FLATTOP, 0, 16, 1.0, &f), 0);
    cr_assert(isnan(f.sidelobe_db));
    cr_assert(fabs(f.coherent_gain - 1.0) <= 2e-15);
    cr_assert_eq(qes_window_figures(QES_WINDOW_RECT, 0, 4, 1.0, &f), 0);
    cr_assert(fabs(f.first_null_bins - 1.0) <= 1e-7);
    cr_assert(isfinite(f.sidelobe_db));
}
