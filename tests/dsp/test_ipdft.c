/*
 * Tests of dsp/ipdft: the Hann kernel against a direct DTFT and its phase
 * law, noise-free non-coherent sines against analytic truth for 2 and 3
 * points with and without image removal (bounds from the error budget
 * below), DC immunity, linearity, a second tone with hint_bin, the range
 * checks and the table of invalid descs.
 *
 * Error budget (even n; A the peak amplitude, lambda = k + delta).
 * The periodic Hann's DTFT is exactly W(nu) = e^{-j pi nu} sin(pi nu) B(nu),
 * B(nu) = 0.5 cot(pi nu/n) - 0.25 cot(pi (nu-1)/n) - 0.25 cot(pi (nu+1)/n)
 * (sum of the symmetric cosine series; checked below against a direct sum).
 * Bin m holds the tone M_m = (A/2)|W(m - lambda)| plus its image
 * I_m = (A/2)|W(m + lambda)|, so the image moves |X[m]| by at most
 * eps_m M_m with eps_m = |B(m + lambda)| / |B(m - lambda)| (the sines cancel).
 * First order in eps (second order adds < 10 % while eps < 1e-2; the bounds
 * carry a factor 1.1):
 *  2 points, neighbour s: alpha = M_s/M_k, delta = (2 alpha - 1)/(alpha + 1),
 *    |d delta| <= 3 alpha (eps_s + eps_k) / (alpha + 1)^2;
 *  3 points: N = 2 (M_+ - M_-), D = M_- + 2 M_0 + M_+,
 *    |d delta| <= (|dN| + |delta| |dD|) / D, |dN| <= 2 (eps_+ M_+ + eps_- M_-),
 *    |dD| <= eps_- M_- + 2 eps_0 M_0 + eps_+ M_+;
 *  amplitude: |dA/A| <= eps_k (2 points) or |dD|/D (3 points), plus
 *    |d ln|W| / d delta| |d delta| <= (2/3) |d delta| (the largest log-slope
 *    of the main lobe for |delta| <= 1/2, at delta = 1/2);
 *  phase (arg X[k] - pi delta): |d phi| <= eps_k + pi |d delta|.
 * With image removal, the image subtracted is computed from the previous
 * estimate (errors a, p, d); it is then wrong by at most
 * (a + p) I_m + d |dW/dnu|(A/2), |dW/dnu| <= (2 pi + 3/(nu - 1)) |B(nu)|, which
 * becomes the eps of the next pass.
 * Rounding: the bins carry ~3 u sqrt(log2 n) ||w x|| (FFT, signal, window;
 * <= 2e-16 of the smallest bin used at n <= 4096), the kernel a few u; the
 * formulas amplify by at most 1 + 2/3 + pi: asserted 1e-14 on top of the
 * budget above.
 */
#include "dsp/ipdft.h"

#include "common/err.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

TestSuite(ipdft, .timeout = 120);

static const long double two_pi_l = 6.283185307179586476925286766559L;
static const double pi_d = 3.1415926535897932384626433832795;
#define ROUND 1e-14

/* x[i] = dc + sqrt(2) r cos(2 pi lambda i / n + phi), phase in long double
 * reduced to [0, 1) cycles. */
static void synth(double *x, size_t n, double lambda, double r, double phi, double dc)
{
    for (size_t i = 0; i < n; i++) {
        long double t = (long double)lambda * (long double)i / (long double)n;
        t -= floorl(t);
        x[i] = (double)(dc + sqrtl(2.0L) * r * cosl(two_pi_l * t + phi));
    }
}

static double wrap_pi(double a)
{
    while (a > pi_d)
        a -= 2 * pi_d;
    while (a <= -pi_d)
        a += 2 * pi_d;
    return a;
}

/* |B(nu)| of the file header, long double. */
static double env(size_t n, double nu)
{
    const long double pn = (two_pi_l / 2) / (long double)n;
    const long double b =
            0.5L / tanl(pn * nu) - 0.25L / tanl(pn * (nu - 1.0L)) - 0.25L / tanl(pn * (nu + 1.0L));
    return (double)fabsl(b);
}

/* |W(nu)| / (n/2)-free: |sin(pi nu) B(nu)|. */
static double wabs(size_t n, double nu)
{
    return fabs(sin(pi_d * nu)) * env(n, nu);
}

struct errs {
    double d, a, p; /* frequency (bins), amplitude (relative), phase (rad) */
};

/* First-order bound of the file header for interferers eps[0..2] on bins
 * k-1, k, k+1. */
static struct errs first_order(unsigned points, const double M[3], const double eps[3],
                               double delta)
{
    struct errs e;
    if (points == 2) {
        double dd = 0.0;
        for (int s = 0; s <= 2; s += 2) { /* either neighbour may be chosen */
            const double al = M[s] / M[1];
            dd = fmax(dd, 3.0 * al * (eps[s] + eps[1]) / ((al + 1.0) * (al + 1.0)));
        }
        e.d = dd;
        e.a = eps[1] + (2.0 / 3.0) * dd;
    } else {
        const double D = M[0] + 2.0 * M[1] + M[2];
        const double dN = 2.0 * (eps[2] * M[2] + eps[0] * M[0]);
        const double dD = eps[0] * M[0] + 2.0 * eps[1] * M[1] + eps[2] * M[2];
        e.d = (dN + fabs(delta) * dD) / D;
        e.a = dD / D + (2.0 / 3.0) * e.d;
    }
    e.p = eps[1] + pi_d * e.d;
    e.d *= 1.1;
    e.a *= 1.1;
    e.p *= 1.1;
    return e;
}

/*
 * Bound for one tone at lambda with peak bin k, plus fixed interferers
 * other[0..2] (relative to M_m; NULL for none), after `passes` image
 * removals (0: image kept).
 */
static struct errs budget_k(size_t n, unsigned points, double lambda, double k, unsigned passes,
                            const double *other)
{
    const double delta = lambda - k;
    double M[3], I[3], eps[3], deriv[3];
    for (int m = 0; m < 3; m++) {
        const double nu_main = (k + m - 1) - lambda, nu_img = (k + m - 1) + lambda;
        M[m] = wabs(n, nu_main);
        I[m] = wabs(n, nu_img);
        deriv[m] = (2.0 * pi_d + 3.0 / (nu_img - 1.0)) * env(n, nu_img);
        eps[m] = I[m] / M[m] + (other ? other[m] : 0.0);
    }
    struct errs e = first_order(points, M, eps, delta);
    for (unsigned p = 0; p < passes; p++) {
        for (int m = 0; m < 3; m++)
            eps[m] = ((e.a + e.p) * I[m] + e.d * deriv[m]) / M[m] + (other ? other[m] : 0.0);
        e = first_order(points, M, eps, delta);
    }
    e.d += ROUND;
    e.a += ROUND;
    e.p += ROUND;
    return e;
}

/* budget_k for the peak bin: the nearest bin, or either one when lambda is
 * within 0.01 of a half-integer (the image may tip the comparison). */
static struct errs budget(size_t n, unsigned points, double lambda, unsigned passes,
                          const double *other)
{
    const double k = floor(lambda + 0.5);
    struct errs e = budget_k(n, points, lambda, k, passes, other);
    const double alt = lambda - k > 0.49 ? k + 1 : (lambda - k < -0.49 ? k - 1 : k);
    if (alt != k) {
        const struct errs f = budget_k(n, points, lambda, alt, passes, other);
        e.d = fmax(e.d, f.d);
        e.a = fmax(e.a, f.a);
        e.p = fmax(e.p, f.p);
    }
    return e;
}

static struct qes_ipdft *make(size_t n, unsigned points, enum qes_ipdft_image img)
{
    struct qes_ipdft_desc d = {
            .n = n,
            .fs_hz = 1000.0,
            .window = QES_WINDOW_HANN,
            .points = points,
            .image = img,
    };
    struct qes_ipdft *p = NULL;
    cr_assert_eq(qes_ipdft_create(&d, &p), 0);
    return p;
}

/*
 * The closed-form kernel against a long double direct DTFT of the periodic
 * Hann values (error ~1e-18 n).  The closed form adds three Dirichlet terms
 * of magnitude <= n, each with a few u relative, and rounds its phase angle
 * pi nu (n-1)/n to u pi |nu|: asserted 1e-14 n + 2e-16 pi |nu| |W|.  And the
 * phase law used for the phase estimate: W(nu) e^{j pi nu} is real.
 */
Test(ipdft, hann_kernel_matches_direct_dtft)
{
    static const size_t sizes[] = {16, 1000, 4096};
    static const double nus[] = {-1.3, -0.5, -1e-9, 0.0, 0.25, 0.5, 1.0, 1.5, 2.7, 20.6, 201.4};
    double worst = 0.0, worst_im = 0.0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const size_t n = sizes[s];
        double *w = malloc(n * sizeof *w);
        cr_assert_not_null(w);
        cr_assert_eq(qes_window_fill(QES_WINDOW_HANN, n, w), 0);
        for (size_t j = 0; j < sizeof nus / sizeof nus[0]; j++) {
            const double nu = nus[j];
            if (fabs(nu) > 0.5 * (double)n)
                continue;
            long double re = 0.0L, im = 0.0L;
            for (size_t i = 0; i < n; i++) {
                long double t = (long double)nu * (long double)i / (long double)n;
                t -= floorl(t);
                re += w[i] * cosl(two_pi_l * t);
                im -= w[i] * sinl(two_pi_l * t);
            }
            double kr, ki;
            qes_ipdft_hann_kernel(n, nu, &kr, &ki);
            const double e = hypot(kr - (double)re, ki - (double)im);
            const double tol = 1e-14 * (double)n + 2e-16 * pi_d * fabs(nu) * hypot(kr, ki);
            worst = fmax(worst, e / (double)n);
            cr_assert(e <= tol, "n %zu nu %g: |kernel - dtft| = %.3g", n, nu, e);
            /* e^{j pi nu} W(nu) is real */
            const double rot_im = kr * sin(pi_d * nu) + ki * cos(pi_d * nu);
            worst_im = fmax(worst_im, fabs(rot_im) / (double)n);
            cr_assert(fabs(rot_im) <= tol, "n %zu nu %g: Im(e^{j pi nu} W) = %.3g", n, nu, rot_im);
        }
        free(w);
    }
    cr_log_info("hann kernel vs direct DTFT: max |diff|/n %.3g; max |Im(e^{j pi nu} W)|/n %.3g",
                worst, worst_im);
}

struct tone_case {
    size_t n;
    double lambda;
};

static const struct tone_case tone_cases[] = {
        {1000, 10.3},  {1000, 41.95}, {1000, 100.7}, {4096, 10.5},
        {4096, 41.95}, {4096, 100.7}, {4096, 20.02}, {1000, 10.01},
};
#define N_TONE_CASES (sizeof tone_cases / sizeof tone_cases[0])

/*
 * Worst errors over 16 phases spread over the circle for one case; asserts
 * each against the budget.
 */
static struct errs run_case(const struct tone_case *c, unsigned points, enum qes_ipdft_image img,
                            unsigned passes, struct errs *bound)
{
    struct qes_ipdft *p = make(c->n, points, img);
    double *x = malloc(c->n * sizeof *x);
    cr_assert_not_null(x);
    *bound = budget(c->n, points, c->lambda, img == QES_IPDFT_IMAGE_KEEP ? 0 : passes, NULL);
    struct errs worst = {0, 0, 0};
    const double r = 0.7;
    for (int j = 0; j < 16; j++) {
        const double phi = wrap_pi(-3.1 + 0.39 * j);
        synth(x, c->n, c->lambda, r, phi, 0.0);
        struct qes_ipdft_result res;
        cr_assert_eq(qes_ipdft_execute(p, x, 0, &res), 0);
        const double ed = fabs(res.freq_bins - c->lambda);
        const double ea = fabs(res.r - r) / r;
        const double ep = fabs(wrap_pi(res.phase_rad - phi));
        cr_assert(ed <= bound->d && ea <= bound->a && ep <= bound->p,
                  "n %zu lambda %g points %u image %d phi %g: errors freq %.3g amp %.3g phase "
                  "%.3g, bounds %.3g %.3g %.3g",
                  c->n, c->lambda, points, (int)img, phi, ed, ea, ep, bound->d, bound->a, bound->p);
        cr_assert(fabs((double)res.peak_bin - c->lambda) <= 0.51, "peak bin %zu", res.peak_bin);
        /* freq_bins = k + delta, rounded once */
        cr_assert(fabs(res.delta_bins - (res.freq_bins - (double)res.peak_bin)) <=
                  0x1p-52 * res.freq_bins);
        cr_assert(fabs(res.freq_hz - res.freq_bins * 1000.0 / (double)c->n) <= 1e-15 * res.freq_hz);
        cr_assert(res.phase_rad > -pi_d && res.phase_rad <= pi_d);
        worst.d = fmax(worst.d, ed);
        worst.a = fmax(worst.a, ea);
        worst.p = fmax(worst.p, ep);
    }
    free(x);
    qes_ipdft_destroy(p);
    return worst;
}

/*
 * Default (image removed, 2 passes): every case within its budget, and the
 * acceptance figure: amplitude error <= 1e-6 relative with >= 10 periods.
 */
Test(ipdft, noncoherent_sines_image_removed)
{
    for (unsigned points = 2; points <= 3; points++) {
        for (size_t i = 0; i < N_TONE_CASES; i++) {
            struct errs b;
            const struct errs e = run_case(&tone_cases[i], points, QES_IPDFT_IMAGE_REMOVE,
                                           QES_IPDFT_PASSES_DEFAULT, &b);
            cr_assert(e.a <= 1e-6);
            cr_log_info("ipDFT %u-point, image removed: n %4zu lambda %6.2f: freq err %.2e bins "
                        "(bound %.1e), amp %.2e (%.1e), phase %.2e rad (%.1e)",
                        points, tone_cases[i].n, tone_cases[i].lambda, e.d, b.d, e.a, b.a, e.p,
                        b.p);
        }
    }
}

/* Textbook formulas (image kept): within the first-order image budget. */
Test(ipdft, noncoherent_sines_textbook)
{
    for (unsigned points = 2; points <= 3; points++) {
        for (size_t i = 0; i < N_TONE_CASES; i++) {
            struct errs b;
            const struct errs e = run_case(&tone_cases[i], points, QES_IPDFT_IMAGE_KEEP, 0, &b);
            cr_log_info("ipDFT %u-point, textbook:      n %4zu lambda %6.2f: freq err %.2e bins "
                        "(bound %.1e), amp %.2e (%.1e), phase %.2e rad (%.1e)",
                        points, tone_cases[i].n, tone_cases[i].lambda, e.d, b.d, e.a, b.a, e.p,
                        b.p);
        }
    }
}

/* Few periods per block: the image is larger (eps ~ 1/(8 lambda^3)), more
 * passes are needed; still within the budget. */
Test(ipdft, few_periods)
{
    static const struct tone_case few[] = {{1000, 3.3}, {1000, 4.5}, {4096, 5.7}};
    for (unsigned points = 2; points <= 3; points++) {
        for (size_t i = 0; i < sizeof few / sizeof few[0]; i++) {
            for (unsigned passes = 2; passes <= 4; passes += 2) {
                struct qes_ipdft_desc d = {.n = few[i].n,
                                           .fs_hz = 1000.0,
                                           .window = QES_WINDOW_HANN,
                                           .points = points,
                                           .image_passes = passes};
                struct qes_ipdft *p;
                cr_assert_eq(qes_ipdft_create(&d, &p), 0);
                const struct errs b = budget(few[i].n, points, few[i].lambda, passes, NULL);
                double *x = malloc(few[i].n * sizeof *x);
                cr_assert_not_null(x);
                struct errs w = {0, 0, 0};
                for (int j = 0; j < 16; j++) {
                    const double phi = wrap_pi(-3.1 + 0.39 * j);
                    synth(x, few[i].n, few[i].lambda, 1.0, phi, 0.0);
                    struct qes_ipdft_result res;
                    cr_assert_eq(qes_ipdft_execute(p, x, 0, &res), 0);
                    const double ed = fabs(res.freq_bins - few[i].lambda);
                    const double ea = fabs(res.r - 1.0);
                    const double ep = fabs(wrap_pi(res.phase_rad - phi));
                    cr_assert(ed <= b.d && ea <= b.a && ep <= b.p,
                              "lambda %g points %u passes %u: %.3g %.3g %.3g vs %.3g %.3g %.3g",
                              few[i].lambda, points, passes, ed, ea, ep, b.d, b.a, b.p);
                    w.d = fmax(w.d, ed);
                    w.a = fmax(w.a, ea);
                    w.p = fmax(w.p, ep);
                }
                cr_log_info("ipDFT %u-point, %u passes: lambda %4.2f: freq %.2e amp %.2e phase "
                            "%.2e (bounds %.1e %.1e %.1e)",
                            points, passes, few[i].lambda, w.d, w.a, w.p, b.d, b.a, b.p);
                free(x);
                qes_ipdft_destroy(p);
            }
        }
    }
}

/*
 * A DC offset leaks only into bins 0 and 1 of the periodic Hann spectrum (DC
 * is coherent: W vanishes on every integer bin >= 2), which the estimator
 * never uses: the result moves only by rounding of the larger samples
 * (|x| up to 5.99 instead of 0.99): asserted 10 x ROUND.
 */
Test(ipdft, dc_offset_ignored)
{
    const size_t n = 4096;
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    struct qes_ipdft *p = make(n, 3, QES_IPDFT_IMAGE_REMOVE);
    struct qes_ipdft_result a, b;
    synth(x, n, 41.95, 0.7, 1.0, 0.0);
    cr_assert_eq(qes_ipdft_execute(p, x, 0, &a), 0);
    synth(x, n, 41.95, 0.7, 1.0, 5.0);
    cr_assert_eq(qes_ipdft_execute(p, x, 0, &b), 0);
    cr_assert(fabs(a.freq_bins - b.freq_bins) <= 10 * ROUND);
    cr_assert(fabs(a.r - b.r) <= 10 * ROUND);
    cr_assert(fabs(wrap_pi(a.phase_rad - b.phase_rad)) <= 10 * ROUND);
    qes_ipdft_destroy(p);
    free(x);
}

/*
 * Linearity: scaling the block by c scales r by c and leaves frequency and
 * phase (FFT and formulas are homogeneous; c = 2^-3 and 2^10 are exact in
 * binary, so the results are bit for bit).
 */
Test(ipdft, scaling_is_exact)
{
    const size_t n = 1000;
    double *x = malloc(n * sizeof *x);
    double *y = malloc(n * sizeof *y);
    cr_assert_not_null(x);
    cr_assert_not_null(y);
    struct qes_ipdft *p = make(n, 3, QES_IPDFT_IMAGE_REMOVE);
    synth(x, n, 100.7, 1.3, -2.0, 0.0);
    struct qes_ipdft_result a, b;
    cr_assert_eq(qes_ipdft_execute(p, x, 0, &a), 0);
    static const double scales[] = {0.125, 1024.0};
    for (size_t s = 0; s < 2; s++) {
        for (size_t i = 0; i < n; i++)
            y[i] = scales[s] * x[i];
        cr_assert_eq(qes_ipdft_execute(p, y, 0, &b), 0);
        cr_assert_eq(b.freq_bins, a.freq_bins);
        cr_assert_eq(b.r, scales[s] * a.r);
        cr_assert_eq(b.phase_rad, a.phase_rad);
    }
    qes_ipdft_destroy(p);
    free(y);
    free(x);
}

/*
 * Two tones: the stronger (r 1 at 100.7 bins) is found with hint 0, the
 * weaker (r 0.1 at 41.95) with hint 42.  Each is disturbed by the other
 * (both its positive and negative component), relative to bin m of the
 * target: (r_o / r_t)(|W(m - l_o)| + |W(m + l_o)|) / |W(m - l_t)|, added to
 * the budget's interferers.
 */
Test(ipdft, hint_selects_tone)
{
    const size_t n = 4096;
    const double l1 = 100.7, r1 = 1.0, l2 = 41.95, r2 = 0.1;
    double *x = malloc(n * sizeof *x);
    double *y = malloc(n * sizeof *y);
    cr_assert_not_null(x);
    cr_assert_not_null(y);
    synth(x, n, l1, r1, 0.3, 0.0);
    synth(y, n, l2, r2, -1.2, 0.0);
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
    struct qes_ipdft *p = make(n, 3, QES_IPDFT_IMAGE_REMOVE);
    const struct {
        size_t hint;
        double l, r, phi, lo, ro;
    } t[] = {{0, l1, r1, 0.3, l2, r2}, {42, l2, r2, -1.2, l1, r1}, {41, l2, r2, -1.2, l1, r1}};
    for (size_t j = 0; j < sizeof t / sizeof t[0]; j++) {
        const double k = floor(t[j].l + 0.5);
        double other[3];
        for (int m = 0; m < 3; m++) {
            const double b = k + m - 1;
            other[m] = (t[j].ro / t[j].r) * (wabs(n, b - t[j].lo) + wabs(n, b + t[j].lo)) /
                       wabs(n, b - t[j].l);
        }
        const struct errs bd = budget(n, 3, t[j].l, QES_IPDFT_PASSES_DEFAULT, other);
        struct qes_ipdft_result res;
        cr_assert_eq(qes_ipdft_execute(p, x, t[j].hint, &res), 0);
        const double ed = fabs(res.freq_bins - t[j].l);
        const double ea = fabs(res.r - t[j].r) / t[j].r;
        const double ep = fabs(wrap_pi(res.phase_rad - t[j].phi));
        cr_assert(ed <= bd.d && ea <= bd.a && ep <= bd.p,
                  "hint %zu: %.3g %.3g %.3g vs %.3g %.3g %.3g", t[j].hint, ed, ea, ep, bd.d, bd.a,
                  bd.p);
        cr_log_info("two tones, hint %3zu: lambda %.2f: freq %.2e amp %.2e phase %.2e (bounds "
                    "%.1e %.1e %.1e)",
                    t[j].hint, t[j].l, ed, ea, ep, bd.d, bd.a, bd.p);
    }
    double f;
    cr_assert_eq(qes_ipdft_strongest_hz(p, x, &f), 0);
    struct qes_ipdft_result res;
    cr_assert_eq(qes_ipdft_execute(p, x, 0, &res), 0);
    cr_assert_eq(f, res.freq_hz);
    qes_ipdft_destroy(p);
    free(y);
    free(x);
}

/* Tones too close to DC or Nyquist, empty and non-finite blocks, bad hints. */
Test(ipdft, out_of_range)
{
    const size_t n = 1000;
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    struct qes_ipdft *p = make(n, 3, QES_IPDFT_IMAGE_REMOVE);
    struct qes_ipdft_result res = {.r = -1.0};
    static const double bad_lambda[] = {1.5, 2.2, 498.7, 499.0};
    for (size_t i = 0; i < sizeof bad_lambda / sizeof bad_lambda[0]; i++) {
        synth(x, n, bad_lambda[i], 1.0, 0.0, 0.0);
        cr_assert_eq(qes_ipdft_execute(p, x, 0, &res), QES_ERANGE, "lambda %g", bad_lambda[i]);
    }
    /* The edges that are still accepted: peak bin 3 and n/2 - 2. */
    synth(x, n, 3.0, 1.0, 0.0, 0.0);
    cr_assert_eq(qes_ipdft_execute(p, x, 0, &res), 0);
    synth(x, n, 498.0, 1.0, 0.0, 0.0);
    cr_assert_eq(qes_ipdft_execute(p, x, 0, &res), 0);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.0;
    res.r = -1.0;
    cr_assert_eq(qes_ipdft_execute(p, x, 0, &res), QES_ERANGE);
    cr_assert_eq(res.r, -1.0, "result written on error");
    synth(x, n, 41.95, 1.0, 0.0, 0.0);
    x[17] = NAN;
    cr_assert_eq(qes_ipdft_execute(p, x, 0, &res), QES_ERANGE);
    x[17] = INFINITY;
    cr_assert_eq(qes_ipdft_execute(p, x, 0, &res), QES_ERANGE);
    synth(x, n, 41.95, 1.0, 0.0, 0.0);
    cr_assert_eq(qes_ipdft_execute(p, x, n / 2, &res), QES_ERANGE);
    cr_assert_eq(qes_ipdft_execute(p, x, 1, &res), QES_ERANGE);
    double f;
    cr_assert_eq(qes_ipdft_strongest_hz(p, x, &f), 0);
    cr_assert_eq(qes_ipdft_execute(NULL, x, 0, &res), QES_EINVAL);
    cr_assert_eq(qes_ipdft_execute(p, NULL, 0, &res), QES_EINVAL);
    cr_assert_eq(qes_ipdft_execute(p, x, 0, NULL), QES_EINVAL);
    cr_assert_eq(qes_ipdft_strongest_hz(p, x, NULL), QES_EINVAL);
    cr_assert_eq(qes_ipdft_strongest_hz(NULL, x, &f), QES_EINVAL);
    qes_ipdft_destroy(p);
    qes_ipdft_destroy(NULL);
    free(x);
}

/* Table of invalid descs, by index (pointers in Criterion parameters are not
 * safe here). */
static const struct bad_desc {
    const char *what;
    size_t n;
    double fs_hz;
    int window;
    unsigned points;
    int image;
    unsigned passes;
    int expect;
} bad_descs[] = {
        {"n 0", 0, 1000.0, QES_WINDOW_HANN, 3, 0, 0, QES_EINVAL},
        {"n 15", 15, 1000.0, QES_WINDOW_HANN, 3, 0, 0, QES_EINVAL},
        {"n above INT_MAX", (size_t)2147483647 + 1, 1000.0, QES_WINDOW_HANN, 3, 0, 0, QES_EINVAL},
        {"fs 0", 1000, 0.0, QES_WINDOW_HANN, 3, 0, 0, QES_EINVAL},
        {"fs negative", 1000, -1.0, QES_WINDOW_HANN, 3, 0, 0, QES_EINVAL},
        {"fs NaN", 1000, NAN, QES_WINDOW_HANN, 3, 0, 0, QES_EINVAL},
        {"fs infinite", 1000, INFINITY, QES_WINDOW_HANN, 3, 0, 0, QES_EINVAL},
        {"window invalid", 1000, 1000.0, 9, 3, 0, 0, QES_EINVAL},
        {"window rect", 1000, 1000.0, QES_WINDOW_RECT, 3, 0, 0, QES_EUNSUPPORTED},
        {"window flattop", 1000, 1000.0, QES_WINDOW_FLATTOP, 3, 0, 0, QES_EUNSUPPORTED},
        {"window kaiser", 1000, 1000.0, QES_WINDOW_KAISER, 2, 0, 0, QES_EUNSUPPORTED},
        {"points 1", 1000, 1000.0, QES_WINDOW_HANN, 1, 0, 0, QES_EINVAL},
        {"points 4", 1000, 1000.0, QES_WINDOW_HANN, 4, 0, 0, QES_EINVAL},
        {"image mode 2", 1000, 1000.0, QES_WINDOW_HANN, 3, 2, 0, QES_EINVAL},
        {"image mode -1", 1000, 1000.0, QES_WINDOW_HANN, 3, -1, 0, QES_EINVAL},
        {"passes too many", 1000, 1000.0, QES_WINDOW_HANN, 3, 0, QES_IPDFT_PASSES_MAX + 1,
         QES_EINVAL},
};
#define N_BAD_DESCS (sizeof bad_descs / sizeof bad_descs[0])

ParameterizedTestParameters(ipdft, bad_desc_refused)
{
    static size_t idx[N_BAD_DESCS];
    for (size_t i = 0; i < N_BAD_DESCS; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD_DESCS);
}

ParameterizedTest(size_t *i, ipdft, bad_desc_refused)
{
    const struct bad_desc *b = &bad_descs[*i];
    struct qes_ipdft_desc d = {
            .n = b->n,
            .fs_hz = b->fs_hz,
            .window = (enum qes_window_kind)b->window,
            .points = b->points,
            .image = (enum qes_ipdft_image)b->image,
            .image_passes = b->passes,
    };
    static char sentinel;
    struct qes_ipdft *p = (struct qes_ipdft *)(void *)&sentinel; /* must be reset */
    const int rc = qes_ipdft_create(&d, &p);
    cr_assert_eq(rc, b->expect, "%s: got %s", b->what, qes_err_name(rc));
    cr_assert_null(p, "%s: *out not cleared", b->what);
}

Test(ipdft, null_and_default_descs)
{
    struct qes_ipdft *p;
    struct qes_ipdft_desc d = {.n = 64, .fs_hz = 1.0, .window = QES_WINDOW_HANN};
    cr_assert_eq(qes_ipdft_create(NULL, &p), QES_EINVAL);
    cr_assert_eq(qes_ipdft_create(&d, NULL), QES_EINVAL);
    /* zero points, image and passes are the defaults */
    cr_assert_eq(qes_ipdft_create(&d, &p), 0);
    qes_ipdft_destroy(p);
    d.points = 2;
    d.image = QES_IPDFT_IMAGE_KEEP;
    d.image_passes = QES_IPDFT_PASSES_MAX;
    cr_assert_eq(qes_ipdft_create(&d, &p), 0);
    qes_ipdft_destroy(p);
}
