/*
 * Tests of the fast lock-in kernels (dsp/lockin.c, "The DFT kernel") against
 * the long double reference twin, over every code path of the DFT kernel:
 * folded blocks (common period M < chunk, = chunk, spanning several chunks
 * and several pieces, odd M), unfolded blocks (read in place, with and
 * without a partial last chunk), 1..9 and 64 harmonics (every grouping of
 * the inner loops), every window kind the build knows, small and huge run
 * indices; the FFT method on the same cases.  Also: replay is bit-identical,
 * memory stays bounded whatever the number of harmonics, and a 2^20-sample
 * block with eight harmonics meets the 1e-9 accuracy target by a wide margin.
 *
 * Error budgets (u = 2^-53; max|wx| the largest windowed sample; S1 =
 * sum|w|, S = sum w; the phasor is sqrt(2)/S times the demodulated sum):
 *  - DFT kernel (derivation in lockin.c): |error| <= 2 (G + L/2 + M/L + 16)
 *    u max|x| S1/S, G the fold factor, M = n/G the folded period, L the
 *    chunk length.  L lies in 32..1024 and is not visible from outside, so
 *    the bound takes L/2 + M/L <= 512 + n/32.
 *  - FFT method: Cooley-Tukey's normwise bound (Higham, Accuracy and
 *    Stability of Numerical Algorithms, 2nd ed., thm 24.2) with
 *    eta = u + gamma_4 (sqrt(2) + u) <= 6.7 u gives a per-bin error
 *    <= 6.7 u log2(n) n max|wx|; with the window product and the final
 *    rotation (4 u): |error| <= sqrt(2) (7 log2 n + 4) u n max|wx| / S.
 *  - the twin's own error, n 2^-63 relative, is added to both.
 * These are worst-case bounds, far above the errors observed (logged), but a
 * wrong table entry, a phase off by one sample or a lost chunk gives errors
 * of order 1/n or more, orders of magnitude above them.
 */
#include "dsp/lockin.h"

#include "common/err.h"
#include "common/ratio.h"
#include "dsp/window.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

TestSuite(lockin_fast, .timeout = 120);

static const double u_d = 0x1p-53;
static const long double two_pi_l = 6.283185307179586476925286766559L;

/* Deterministic pseudo-random numbers in [-1, 1) (64-bit LCG, top bits). */
static uint64_t lcg_state;
static double lcg_uniform(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) * 0x1p-52 - 1.0;
}

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        const uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/*
 * Test block: a DC offset, the requested harmonics with amplitudes falling
 * as 1/h and phases spread over the circle, plus uniform noise so that every
 * bin carries signal.  Phases reduced in integers from the run index.
 */
static double make_block(double *s, size_t n, unsigned periods, const unsigned *h, size_t nh,
                         uint64_t start)
{
    double peak = 0.0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t m = (start % n + i) % n;
        long double v = 0.3L;
        for (size_t k = 0; k < nh; k++) {
            const uint64_t b = (uint64_t)h[k] * periods;
            const uint64_t ph = qes_mulmod_u64(b, m, n);
            v += sqrtl(2.0L) / h[k] * cosl(two_pi_l * ph / n + 0.7L * (long double)k - 2.0L);
        }
        s[i] = (double)v + 0.2 * lcg_uniform();
        peak = fmax(peak, fabs(s[i]));
    }
    return peak;
}

struct fast_case {
    size_t n;
    unsigned periods;
    unsigned h[64];
    size_t nh;
    const char *what;
};

static const struct fast_case cases[] = {
        {4, 1, {1}, 1, "smallest block"},
        {5, 1, {1, 2}, 2, "odd n, period padded to an even chunk"},
        {100, 3, {1, 2, 3, 5, 7}, 5, "no fold, block shorter than a chunk, 4 + 1 harmonics"},
        {1000, 10, {1, 2, 3, 4, 5, 6, 7, 8}, 8, "fold 10, period 100 < chunk"},
        {4096, 16, {1}, 1, "fold 16, period 256 = chunk"},
        {10007, 17, {1, 2, 3}, 3, "prime n: no fold, partial last chunk, 2 + 1 harmonics"},
        {65536, 17, {1, 2, 3, 4, 5, 6, 7, 8}, 8, "no fold, read in place, 8 pieces"},
        {65536, 16, {1, 2, 3, 4, 5, 6, 7, 8, 9}, 9, "fold 16, period 4096, 4 + 4 + 1 harmonics"},
        {49158, 2, {1, 3}, 2, "fold 2, odd period 24579 over 4 pieces"},
        {98304, 12, {2, 4, 6, 7}, 4, "fold 12, period 8192 = one piece"},
        {30000, 7, {1, 2, 3, 4, 5, 6, 7}, 7, "no fold, 4 + 2 + 1 harmonics"},
        {6000,
         7,
         {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
          23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
          45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64},
         64,
         "64 harmonics, shortest chunk"},
};

/* Window sums S = sum w and S1 = sum |w|, as the kernels see them. */
static void window_sums(enum qes_window_kind w, size_t n, double *S, double *S1, double *wmax)
{
    double *v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    cr_assert_eq(qes_window_fill(w, n, v), 0);
    long double s = 0.0L, s1 = 0.0L;
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += v[i];
        s1 += fabs(v[i]);
        mx = fmax(mx, fabs(v[i]));
    }
    *S = (double)s;
    *S1 = (double)s1;
    *wmax = mx;
    free(v);
}

/*
 * Both methods against the twin on every case, every window kind of the
 * build (kinds whose leakage does not fit a case's bins are refused by
 * create, and skipped), at run indices 0 and near 2^64.
 */
Test(lockin_fast, every_path_matches_the_twin)
{
    static const uint64_t starts[] = {0, UINT64_MAX - 12344};
    double worst_dft = 0.0, worst_fft = 0.0; /* observed / bound */
    double worst_dft_abs = 0.0;
    size_t checked = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const struct fast_case *c = &cases[ci];
        double *s = malloc(c->n * sizeof *s);
        cr_assert_not_null(s);
        uint64_t G = c->n;
        for (size_t k = 0; k < c->nh; k++)
            G = gcd_u64(G, (uint64_t)c->h[k] * c->periods);
        for (size_t si = 0; si < sizeof starts / sizeof starts[0]; si++) {
            /* The largest cases at one run index only: the twin is slow. */
            if (si > 0 && c->n * c->nh > 300000)
                continue;
            lcg_state = 1000 + ci;
            const double peak = make_block(s, c->n, c->periods, c->h, c->nh, starts[si]);
            /* Every window kind the build knows (rect and hann, and the
             * others as they are added to window.h). */
            for (int wk = 0; wk < 32 && qes_window_name((enum qes_window_kind)wk); wk++) {
                const enum qes_window_kind win = (enum qes_window_kind)wk;
                if (wk > 1 && c->n * c->nh > 300000)
                    continue;
                struct qes_lockin_desc d = {.window = win,
                                            .n = c->n,
                                            .periods = c->periods,
                                            .harmonics = c->h,
                                            .n_harmonics = c->nh};
                struct qes_phasor ref[64], p[64];
                const int rrc = qes_lockin_reference(&d, s, starts[si], ref);
                if (rrc == QES_EINVAL && wk > 0) {
                    /* A window whose leakage does not fit the bins. */
                    continue;
                }
                cr_assert_eq(rrc, 0, "%s, window %s: twin refused", c->what, qes_window_name(win));
                double S, S1, wmax;
                window_sums(win, c->n, &S, &S1, &wmax);
                const double twin = (double)c->n * 0x1p-63 * peak * S1 / S;
                const double b_dft = 2.0 * ((double)G + 512.0 + (double)c->n / 32.0 + 16.0) * u_d *
                                             peak * S1 / S +
                                     twin;
                const double b_fft = sqrt(2.0) * (7.0 * log2((double)c->n) + 4.0) * u_d *
                                             (double)c->n * peak * wmax / S +
                                     twin;
                for (int mi = 0; mi < 2; mi++) {
                    d.method = mi ? QES_LOCKIN_FFT : QES_LOCKIN_DFT;
                    struct qes_lockin *l;
                    cr_assert_eq(qes_lockin_create(&d, &l), 0, "%s: create", c->what);
                    cr_assert_eq(qes_lockin_execute(l, s, starts[si], p), 0);
                    const double bound = mi ? b_fft : b_dft;
                    for (size_t k = 0; k < c->nh; k++) {
                        const double e = hypot(p[k].x - ref[k].x, p[k].y - ref[k].y);
                        cr_assert(e <= bound,
                                  "%s (n %zu periods %u), window %s, method %s, start %llu, "
                                  "harmonic %u: |fast - twin| = %.3g > bound %.3g",
                                  c->what, c->n, c->periods, qes_window_name(win),
                                  mi ? "fft" : "dft", (unsigned long long)starts[si], c->h[k], e,
                                  bound);
                        if (mi) {
                            worst_fft = fmax(worst_fft, e / bound);
                        } else {
                            worst_dft = fmax(worst_dft, e / bound);
                            worst_dft_abs = fmax(worst_dft_abs, e / peak);
                        }
                    }
                    qes_lockin_destroy(l);
                    checked++;
                }
            }
        }
        free(s);
    }
    cr_log_info("%zu configurations; dft: worst error %.3g of its bound (%.3g of max|x|); "
                "fft: %.3g of its bound",
                checked, worst_dft, worst_dft_abs, worst_fft);
}

/*
 * Replay: the same block through two objects made from the same desc, and
 * through one object before and after other blocks, gives the same bits
 * (the kernels keep no state between blocks; the variant chosen by
 * target_clones is fixed for the process).
 */
Test(lockin_fast, replay_is_bit_identical)
{
    static const unsigned h[] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const unsigned periods[] = {17, 16}; /* no fold, fold */
    const size_t n = 65536;
    double *s = malloc(n * sizeof *s), *other = malloc(n * sizeof *other);
    cr_assert(s && other);
    for (size_t pi = 0; pi < 2; pi++) {
        for (int wk = 0; wk < 2; wk++) {
            for (int mi = 0; mi < 2; mi++) {
                lcg_state = 5;
                make_block(s, n, periods[pi], h, 8, 777);
                make_block(other, n, periods[pi], h, 3, 1);
                struct qes_lockin_desc d = {.method = mi ? QES_LOCKIN_FFT : QES_LOCKIN_DFT,
                                            .window = (enum qes_window_kind)wk,
                                            .n = n,
                                            .periods = periods[pi],
                                            .harmonics = h,
                                            .n_harmonics = 8};
                struct qes_lockin *a, *b;
                cr_assert_eq(qes_lockin_create(&d, &a), 0);
                cr_assert_eq(qes_lockin_create(&d, &b), 0);
                struct qes_phasor p1[8], p2[8], p3[8], junk[8];
                cr_assert_eq(qes_lockin_execute(a, s, 777, p1), 0);
                cr_assert_eq(qes_lockin_execute(a, other, 1, junk), 0);
                cr_assert_eq(qes_lockin_execute(a, s, 777, p2), 0);
                cr_assert_eq(qes_lockin_execute(b, s, 777, p3), 0);
                cr_assert(memcmp(p1, p2, sizeof p1) == 0, "periods %u window %d method %d",
                          periods[pi], wk, mi);
                cr_assert(memcmp(p1, p3, sizeof p1) == 0, "periods %u window %d method %d",
                          periods[pi], wk, mi);
                qes_lockin_destroy(a);
                qes_lockin_destroy(b);
            }
        }
    }
    free(s);
    free(other);
}

/*
 * Memory of the DFT method does not grow with the number of harmonics: the
 * per-harmonic tables (2 n doubles each before this kernel: 128 MiB for 8
 * harmonics at n = 2^20) are now nh * L <= max(2048, 32 nh) doubles in all;
 * rotation tables 2 (2^ceil(log2 sqrt(2n)) + 2n / that) doubles (< 12 KiB
 * doubles at n = 2^20); work buffer <= 8192 + 1024 doubles; plus the object.
 * Asserted: rect <= 256 KiB; hann adds its n window values.
 */
Test(lockin_fast, memory_is_bounded)
{
    static unsigned h[64];
    for (unsigned k = 0; k < 64; k++)
        h[k] = k + 1;
    const size_t n = (size_t)1 << 20;
    static const size_t nhs[] = {1, 8, 64};
    for (size_t i = 0; i < 3; i++) {
        for (int wk = 0; wk < 2; wk++) {
            struct qes_lockin_desc d = {.method = QES_LOCKIN_DFT,
                                        .window = (enum qes_window_kind)wk,
                                        .n = n,
                                        .periods = 4099,
                                        .harmonics = h,
                                        .n_harmonics = nhs[i]};
            struct qes_lockin *l;
            cr_assert_eq(qes_lockin_create(&d, &l), 0);
            const size_t bytes = qes_lockin_memory_bytes(l);
            const size_t bound = ((size_t)256 << 10) + (wk ? n * sizeof(double) : 0);
            cr_log_info("dft, %zu harmonics, window %d, n = 2^20: %zu bytes", nhs[i], wk, bytes);
            cr_assert(bytes > 0 && bytes <= bound, "%zu harmonics, window %d: %zu bytes > %zu",
                      nhs[i], wk, bytes, bound);
            qes_lockin_destroy(l);
        }
    }
    cr_assert_eq(qes_lockin_memory_bytes(NULL), 0);
}

/*
 * The accuracy target of the fused kernel: fundamental + 7 harmonics on a
 * 2^20-sample block, error <= 1e-9 of the fundamental's amplitude.  Checked
 * against analytic truth (the tones synthesised from exact integer phases
 * in long double, each sample rounded once), folded (periods 4096) and not
 * (periods 4099), at a run index near 2^63, rect and hann.  The kernel's
 * budget (file header) is 2 (G + 512 + 2^15 + 16) u max|x| S1/S < 1.5e-11
 * here (max|x| < 1.8, G <= 4096); the synthesis adds <= u max|x| per sample
 * (covered by the + 16).  The assertion uses that budget, 50x inside the
 * target.
 */
Test(lockin_fast, eight_harmonics_on_a_megasample_block)
{
    static const unsigned h[] = {1, 2, 3, 4, 5, 6, 7, 8};
    static const unsigned periods[] = {4096, 4099};
    const size_t n = (size_t)1 << 20;
    const uint64_t start = (1ULL << 63) + 12345;
    double *s = malloc(n * sizeof *s);
    cr_assert_not_null(s);
    double worst = 0.0;
    for (size_t pi = 0; pi < 2; pi++) {
        double amp[8], phi[8], peak = 0.0;
        for (size_t k = 0; k < 8; k++) {
            amp[k] = k ? 0.1 / (double)k : 1.0;
            phi[k] = -3.0 + 0.77 * (double)k;
        }
        for (size_t i = 0; i < n; i++) {
            const uint64_t m = (start % n + i) % n;
            long double v = 0.0L;
            for (size_t k = 0; k < 8; k++) {
                const uint64_t ph = qes_mulmod_u64((uint64_t)h[k] * periods[pi], m, n);
                v += sqrtl(2.0L) * amp[k] * cosl(two_pi_l * ph / n + phi[k]);
            }
            s[i] = (double)v;
            peak = fmax(peak, fabs(s[i]));
        }
        const double G = pi ? 1.0 : 4096.0;
        for (int wk = 0; wk < 2; wk++) {
            double S, S1, wmax;
            window_sums((enum qes_window_kind)wk, n, &S, &S1, &wmax);
            const double bound = 2.0 * (G + 512.0 + (double)n / 32.0 + 16.0) * u_d * peak * S1 / S;
            cr_assert(bound < 1e-9 / 50);
            struct qes_lockin_desc d = {.method = QES_LOCKIN_DFT,
                                        .window = (enum qes_window_kind)wk,
                                        .n = n,
                                        .periods = periods[pi],
                                        .harmonics = h,
                                        .n_harmonics = 8};
            struct qes_lockin *l;
            cr_assert_eq(qes_lockin_create(&d, &l), 0);
            struct qes_phasor p[8];
            cr_assert_eq(qes_lockin_execute(l, s, start, p), 0);
            for (size_t k = 0; k < 8; k++) {
                const double e =
                        hypot(p[k].x - amp[k] * cos(phi[k]), p[k].y - amp[k] * sin(phi[k]));
                worst = fmax(worst, e / amp[0]);
                cr_assert(e <= bound, "periods %u window %d h %u: error %.3g > %.3g", periods[pi],
                          wk, h[k], e, bound);
            }
            qes_lockin_destroy(l);
        }
    }
    cr_log_info("2^20 samples, 8 harmonics: worst error %.3g of the fundamental", worst);
    free(s);
}
