/*
 * Tests of dsp/lockin: analytic truth on coherent sines, FFT vs DFT vs the
 * long double reference twin, reference phase continuity across blocks and
 * for large run indices, rejection of DC and other bins, linearity, and the
 * table of invalid descriptions.
 *
 * Error budget shared by the tests (u = 2^-53 = 1.1e-16, n = 10000):
 *  - test signals are generated in long double from exact integer phases and
 *    rounded once to double: per-sample error <= u |s|;
 *  - the DFT path rounds each table entry (<= 3 u relative: window, cos, one
 *    product) and accumulates n products in double;
 *  - the FFT path has the FFTW error, O(u log2 n) rms relative to the signal.
 * Worst-case bounds of n-term sums (n u = 1.1e-12 relative to sum |terms|)
 * are far above what happens, because the rounding errors are independent
 * and of both signs: their rms is sqrt(n) u = 1.1e-14 of sum |terms|.  The
 * assertions use 1e-12 relative to the amplitude of the smallest component
 * (the accuracy the value path promises), which is the worst-case n u bound
 * and, with amplitudes within 10x of the peak signal, 10x above the rms
 * estimate.  Errors actually observed are logged (cr_log_info).
 */
#include "dsp/lockin.h"

#include "common/err.h"
#include "common/ratio.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

TestSuite(lockin, .timeout = 60);

#define N_BLOCK 10000
#define PERIODS 10

static const long double two_pi_l = 6.283185307179586476925286766559L;
static const double pi_d = 3.1415926535897932384626433832795;

struct tone {
    unsigned bin; /* DFT bin on the block, = harmonic * periods for a harmonic */
    double r;     /* RMS amplitude */
    double phi;   /* phase at run sample 0, rad */
};

/*
 * s[i] = dc + sum sqrt(2) r cos(2 pi bin m / n + phi), m = start + i, with
 * the phase index (bin m) mod n in integers and the rest in long double.
 */
static void synth(double *s, size_t n, uint64_t start, double dc, const struct tone *t, size_t nt)
{
    for (size_t i = 0; i < n; i++) {
        long double v = dc;
        for (size_t k = 0; k < nt; k++) {
            /* (start + i) mod n without overflow of start + i */
            const uint64_t m = (start % n + i) % n;
            const uint64_t ph = qes_mulmod_u64(t[k].bin, m, n);
            v += sqrtl(2.0L) * t[k].r * cosl(two_pi_l * ph / n + t[k].phi);
        }
        s[i] = (double)v;
    }
}

/* Deterministic pseudo-random numbers in [-1, 1) (64-bit LCG, top bits). */
static uint64_t lcg_state;
static double lcg_uniform(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) * 0x1p-52 - 1.0;
}

static double wrap_pi(double a)
{
    while (a > pi_d)
        a -= 2 * pi_d;
    while (a <= -pi_d)
        a += 2 * pi_d;
    return a;
}

static struct qes_lockin_desc make_desc(enum qes_lockin_method m, enum qes_window_kind w,
                                        const unsigned *h, size_t nh)
{
    struct qes_lockin_desc d = {
            .method = m,
            .window = w,
            .n = N_BLOCK,
            .periods = PERIODS,
            .harmonics = h,
            .n_harmonics = nh,
    };
    return d;
}

static const unsigned harm3[] = {1, 2, 3};
/* Amplitudes within 3x of each other, phases spread over the circle
 * including the neighbourhood of +-pi. */
static const struct tone truth3[] = {
        {1 * PERIODS, 1.0, 0.7},
        {2 * PERIODS, 0.37, -2.9},
        {3 * PERIODS, 0.43, 3.1},
};

static const enum qes_lockin_method methods[] = {QES_LOCKIN_FFT, QES_LOCKIN_DFT};
static const enum qes_window_kind windows[] = {QES_WINDOW_RECT, QES_WINDOW_HANN};

/*
 * Noise-free coherent sines, three harmonics, both methods and windows,
 * block offsets 0 and a non-multiple of n: amplitude within 1e-12 relative,
 * phase within 1e-12 rad of the truth (budget in the file header).
 */
Test(lockin, coherent_sines_match_truth)
{
    double *s = malloc(N_BLOCK * sizeof *s);
    cr_assert_not_null(s);
    static const uint64_t starts[] = {0, 12345, 3 * N_BLOCK + 77};
    double worst_r = 0.0, worst_phi = 0.0;
    for (size_t si = 0; si < sizeof starts / sizeof starts[0]; si++) {
        synth(s, N_BLOCK, starts[si], 0.0, truth3, 3);
        for (size_t mi = 0; mi < 2; mi++) {
            for (size_t wi = 0; wi < 2; wi++) {
                struct qes_lockin_desc d = make_desc(methods[mi], windows[wi], harm3, 3);
                struct qes_lockin *l;
                cr_assert_eq(qes_lockin_create(&d, &l), 0);
                struct qes_phasor p[3];
                cr_assert_eq(qes_lockin_execute(l, s, starts[si], p), 0);
                for (size_t k = 0; k < 3; k++) {
                    const double r = hypot(p[k].x, p[k].y);
                    const double er = fabs(r - truth3[k].r) / truth3[k].r;
                    const double ep = fabs(wrap_pi(atan2(p[k].y, p[k].x) - truth3[k].phi));
                    worst_r = fmax(worst_r, er);
                    worst_phi = fmax(worst_phi, ep);
                    cr_assert(er <= 1e-12, "method %d window %d start %llu h %u: r rel err %.3g",
                              (int)methods[mi], (int)windows[wi], (unsigned long long)starts[si],
                              harm3[k], er);
                    cr_assert(ep <= 1e-12, "method %d window %d start %llu h %u: phase err %.3g",
                              (int)methods[mi], (int)windows[wi], (unsigned long long)starts[si],
                              harm3[k], ep);
                    /* x, y themselves (the recorded values) */
                    cr_assert(fabs(p[k].x - truth3[k].r * cos(truth3[k].phi)) <= 1e-12);
                    cr_assert(fabs(p[k].y - truth3[k].r * sin(truth3[k].phi)) <= 1e-12);
                }
                qes_lockin_destroy(l);
            }
        }
    }
    cr_log_info("coherent sines: max amplitude rel err %.3g, max phase err %.3g rad", worst_r,
                worst_phi);
    free(s);
}

/*
 * FFT and DFT on the same block (sine plus white noise, so that every bin
 * carries signal): they estimate the same sum by different roundings.
 * Budget: the rms error of each is <= sqrt(n) u = 1.1e-14 times the rms of
 * the windowed terms; with |s| <= 5 here, the difference is asserted at
 * 1e-13 absolute, about 2x the worst-case sum of the two rms estimates.
 */
Test(lockin, fft_and_dft_agree)
{
    double *s = malloc(N_BLOCK * sizeof *s);
    cr_assert_not_null(s);
    synth(s, N_BLOCK, 999, 0.0, truth3, 3);
    lcg_state = 42;
    for (size_t i = 0; i < N_BLOCK; i++)
        s[i] += 0.5 * lcg_uniform();
    double worst = 0.0;
    for (size_t wi = 0; wi < 2; wi++) {
        struct qes_lockin_desc df = make_desc(QES_LOCKIN_FFT, windows[wi], harm3, 3);
        struct qes_lockin_desc dd = make_desc(QES_LOCKIN_DFT, windows[wi], harm3, 3);
        struct qes_lockin *lf, *ld;
        cr_assert_eq(qes_lockin_create(&df, &lf), 0);
        cr_assert_eq(qes_lockin_create(&dd, &ld), 0);
        struct qes_phasor pf[3], pd[3];
        cr_assert_eq(qes_lockin_execute(lf, s, 999, pf), 0);
        cr_assert_eq(qes_lockin_execute(ld, s, 999, pd), 0);
        for (size_t k = 0; k < 3; k++) {
            const double e = hypot(pf[k].x - pd[k].x, pf[k].y - pd[k].y);
            worst = fmax(worst, e);
            cr_assert(e <= 1e-13, "window %d h %u: |fft - dft| = %.3g", (int)windows[wi], harm3[k],
                      e);
        }
        qes_lockin_destroy(lf);
        qes_lockin_destroy(ld);
    }
    cr_log_info("fft vs dft: max |difference| %.3g", worst);
    free(s);
}

/*
 * The fast DFT against the long double reference twin, on sine plus noise,
 * at a large run index.  The twin's own error is ~sqrt(n) 2^-64 (negligible);
 * the fast path's rms error is <= sqrt(n) u |s| = 1.1e-14 * 5.  Asserted:
 * 1e-13 absolute (about 2x that estimate).
 */
Test(lockin, dft_matches_reference_twin)
{
    double *s = malloc(N_BLOCK * sizeof *s);
    cr_assert_not_null(s);
    const uint64_t start = 1000000000000ULL + 4321;
    synth(s, N_BLOCK, start, 0.25, truth3, 3);
    lcg_state = 7;
    for (size_t i = 0; i < N_BLOCK; i++)
        s[i] += 0.5 * lcg_uniform();
    double worst = 0.0;
    for (size_t mi = 0; mi < 2; mi++) {
        for (size_t wi = 0; wi < 2; wi++) {
            struct qes_lockin_desc d = make_desc(methods[mi], windows[wi], harm3, 3);
            struct qes_lockin *l;
            cr_assert_eq(qes_lockin_create(&d, &l), 0);
            struct qes_phasor p[3], pr[3];
            cr_assert_eq(qes_lockin_execute(l, s, start, p), 0);
            cr_assert_eq(qes_lockin_reference(&d, s, start, pr), 0);
            for (size_t k = 0; k < 3; k++) {
                const double e = hypot(p[k].x - pr[k].x, p[k].y - pr[k].y);
                worst = fmax(worst, e);
                cr_assert(e <= 1e-13, "method %d window %d h %u: |fast - twin| = %.3g",
                          (int)methods[mi], (int)windows[wi], harm3[k], e);
            }
            qes_lockin_destroy(l);
        }
    }
    cr_log_info("fast vs reference twin: max |difference| %.3g", worst);
    free(s);
}

/*
 * A steady sine gives the same phase in every block, whatever the block's
 * offset, including run indices near 1e12 and 2^63 where a floating-point
 * phase 2 pi f t would be off by ~1e-6 rad or more.  Budget as for the
 * truth test: 1e-12 rad.  Blocks whose start differs by a multiple of n hold
 * the same samples and must give bit-identical phasors (the phase is
 * computed in integers).
 */
Test(lockin, phase_continuity_across_blocks)
{
    static const unsigned h1[] = {1, 3};
    static const struct tone tt[] = {{1 * PERIODS, 0.8, -1.234}, {3 * PERIODS, 0.3, 2.5}};
    static const uint64_t starts[] = {0,
                                      N_BLOCK,
                                      7 * N_BLOCK,
                                      1,
                                      2 * N_BLOCK + 5001,
                                      1000000000000ULL,
                                      1000000000000ULL + 3 * N_BLOCK,
                                      1000000000000ULL + 17,
                                      (1ULL << 63) + 12345,
                                      UINT64_MAX - N_BLOCK + 1};
    double *s = malloc(N_BLOCK * sizeof *s);
    cr_assert_not_null(s);
    double worst = 0.0;
    for (size_t mi = 0; mi < 2; mi++) {
        for (size_t wi = 0; wi < 2; wi++) {
            struct qes_lockin_desc d = make_desc(methods[mi], windows[wi], h1, 2);
            struct qes_lockin *l;
            cr_assert_eq(qes_lockin_create(&d, &l), 0);
            struct qes_phasor first[2];
            for (size_t si = 0; si < sizeof starts / sizeof starts[0]; si++) {
                synth(s, N_BLOCK, starts[si], 0.0, tt, 2);
                struct qes_phasor p[2];
                cr_assert_eq(qes_lockin_execute(l, s, starts[si], p), 0);
                for (size_t k = 0; k < 2; k++) {
                    const double e = fabs(wrap_pi(atan2(p[k].y, p[k].x) - tt[k].phi));
                    worst = fmax(worst, e);
                    cr_assert(e <= 1e-12, "start %llu h %u: phase err %.3g",
                              (unsigned long long)starts[si], h1[k], e);
                }
                if (si == 0)
                    memcpy(first, p, sizeof p);
                if (starts[si] % N_BLOCK == 0) {
                    for (size_t k = 0; k < 2; k++) {
                        cr_assert_eq(p[k].x, first[k].x, "start %llu",
                                     (unsigned long long)starts[si]);
                        cr_assert_eq(p[k].y, first[k].y, "start %llu",
                                     (unsigned long long)starts[si]);
                    }
                }
            }
            qes_lockin_destroy(l);
        }
    }
    cr_log_info("phase continuity: max phase err %.3g rad", worst);
    free(s);
}

/*
 * A DC offset, unrequested harmonics and a coherent tone between the
 * harmonics do not leak into the requested bins: the estimate with and
 * without them differs by rounding only.  On a coherent block the leakage
 * of rect is exactly zero outside the tone's bin, and of the periodic Hann
 * zero outside +-1 bin; the extra tones sit >= 5 bins away.  Budget: the
 * added content (|extra| <= 5 + sqrt(2) 2.6) changes the rounding of n
 * terms: rms sqrt(n) u * 9 = 1e-13; asserted 5e-13 absolute.  Leakage of a
 * non-coherent or symmetric (non-periodic) window would be ~1e-3 or larger.
 */
Test(lockin, dc_and_other_bins_do_not_leak)
{
    static const struct tone extra[] = {
            {4 * PERIODS, 1.3, 0.1},  /* harmonic 4, not requested */
            {7 * PERIODS, 0.9, -1.0}, /* harmonic 7 */
            {15, 0.4, 2.0},           /* between harmonics 1 and 2 */
            {25, 0.4, -2.0},          /* between harmonics 2 and 3 */
    };
    struct tone all[3 + 4];
    memcpy(all, truth3, sizeof truth3);
    memcpy(all + 3, extra, sizeof extra);
    double *clean = malloc(N_BLOCK * sizeof *clean);
    double *dirty = malloc(N_BLOCK * sizeof *dirty);
    cr_assert(clean && dirty);
    synth(clean, N_BLOCK, 555, 0.0, truth3, 3);
    synth(dirty, N_BLOCK, 555, 5.0, all, 7);
    double worst = 0.0;
    for (size_t mi = 0; mi < 2; mi++) {
        for (size_t wi = 0; wi < 2; wi++) {
            struct qes_lockin_desc d = make_desc(methods[mi], windows[wi], harm3, 3);
            struct qes_lockin *l;
            cr_assert_eq(qes_lockin_create(&d, &l), 0);
            struct qes_phasor pc[3], pd[3];
            cr_assert_eq(qes_lockin_execute(l, clean, 555, pc), 0);
            cr_assert_eq(qes_lockin_execute(l, dirty, 555, pd), 0);
            for (size_t k = 0; k < 3; k++) {
                const double e = hypot(pd[k].x - pc[k].x, pd[k].y - pc[k].y);
                worst = fmax(worst, e);
                cr_assert(e <= 5e-13, "method %d window %d h %u: leak %.3g", (int)methods[mi],
                          (int)windows[wi], harm3[k], e);
            }
            qes_lockin_destroy(l);
        }
    }
    cr_log_info("leakage of DC and other bins: max %.3g", worst);
    free(clean);
    free(dirty);
}

/*
 * Linearity: L(a s1 + b s2) = a L(s1) + b L(s2) on noise blocks.  Budget:
 * |a s1 + b s2| <= 3.5; rms rounding of each estimate sqrt(n) u * 3.5
 * = 4e-14, three estimates: asserted 2e-13 absolute.
 */
Test(lockin, linearity)
{
    double *s1 = malloc(N_BLOCK * sizeof *s1);
    double *s2 = malloc(N_BLOCK * sizeof *s2);
    double *s3 = malloc(N_BLOCK * sizeof *s3);
    cr_assert(s1 && s2 && s3);
    const double a = 1.5, b = -2.0;
    lcg_state = 2024;
    for (size_t i = 0; i < N_BLOCK; i++) {
        s1[i] = lcg_uniform();
        s2[i] = lcg_uniform();
        s3[i] = a * s1[i] + b * s2[i];
    }
    for (size_t mi = 0; mi < 2; mi++) {
        for (size_t wi = 0; wi < 2; wi++) {
            struct qes_lockin_desc d = make_desc(methods[mi], windows[wi], harm3, 3);
            struct qes_lockin *l;
            cr_assert_eq(qes_lockin_create(&d, &l), 0);
            struct qes_phasor p1[3], p2[3], p3[3];
            cr_assert_eq(qes_lockin_execute(l, s1, 31, p1), 0);
            cr_assert_eq(qes_lockin_execute(l, s2, 31, p2), 0);
            cr_assert_eq(qes_lockin_execute(l, s3, 31, p3), 0);
            for (size_t k = 0; k < 3; k++) {
                const double ex = p3[k].x - (a * p1[k].x + b * p2[k].x);
                const double ey = p3[k].y - (a * p1[k].y + b * p2[k].y);
                cr_assert(hypot(ex, ey) <= 2e-13, "method %d window %d h %u: %.3g",
                          (int)methods[mi], (int)windows[wi], harm3[k], hypot(ex, ey));
            }
            qes_lockin_destroy(l);
        }
    }
    free(s1);
    free(s2);
    free(s3);
}

/*
 * ENBW in bins: rect 1 and periodic Hann 3/2 exactly in exact arithmetic.
 * Budget: sums of n window values in long double, the ratio in double:
 * a few u; asserted 1e-14.
 */
Test(lockin, enbw_bins)
{
    static const unsigned h[] = {1};
    for (size_t mi = 0; mi < 2; mi++) {
        struct qes_lockin_desc d = make_desc(methods[mi], QES_WINDOW_RECT, h, 1);
        struct qes_lockin *l;
        cr_assert_eq(qes_lockin_create(&d, &l), 0);
        cr_assert(fabs(qes_lockin_enbw_bins(l) - 1.0) <= 1e-14);
        qes_lockin_destroy(l);
        d.window = QES_WINDOW_HANN;
        cr_assert_eq(qes_lockin_create(&d, &l), 0);
        cr_assert(fabs(qes_lockin_enbw_bins(l) - 1.5) <= 1e-14, "%.17g", qes_lockin_enbw_bins(l));
        qes_lockin_destroy(l);
    }
}

/* Boundaries of the bin rules that must still be accepted. */
Test(lockin, boundary_descs_accepted)
{
    struct {
        enum qes_window_kind w;
        size_t n;
        unsigned periods;
        unsigned h[3];
        size_t nh;
    } ok[] = {
            {QES_WINDOW_RECT, 4, 1, {1}, 1},         /* bin 1, 2*1 < 4 */
            {QES_WINDOW_RECT, 21, 10, {1}, 1},       /* 2*10 = 20 < 21 */
            {QES_WINDOW_RECT, 100, 1, {1, 2, 3}, 3}, /* adjacent bins, no leakage */
            {QES_WINDOW_HANN, 9, 2, {1}, 1},         /* b - 1 = 1 >= 1; 2*(2+1) = 6 < 9 */
            {QES_WINDOW_HANN, 100, 1, {2, 5, 8}, 3}, /* bins 3 apart: lobes disjoint */
            {QES_WINDOW_HANN, 100, 3, {1, 2, 3}, 3},
            {QES_WINDOW_HANN, 100, 2, {1, 2}, 2}, /* bins 2 apart: a tone leaks only +-1 */
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        for (size_t mi = 0; mi < 2; mi++) {
            struct qes_lockin_desc d = {
                    .method = methods[mi],
                    .window = ok[i].w,
                    .n = ok[i].n,
                    .periods = ok[i].periods,
                    .harmonics = ok[i].h,
                    .n_harmonics = ok[i].nh,
            };
            struct qes_lockin *l = NULL;
            cr_assert_eq(qes_lockin_create(&d, &l), 0, "case %zu refused", i);
            cr_assert_not_null(l);
            qes_lockin_destroy(l);
        }
    }
}

/* Table of invalid descriptions, each refused with QES_EINVAL. */
struct bad_desc {
    const char *what;
    int method;
    int window;
    size_t n;
    unsigned periods;
    unsigned h[QES_LOCKIN_MAX_HARMONICS + 1];
    size_t nh;
    int null_harmonics;
};

ParameterizedTestParameters(lockin, bad_desc_refused)
{
    static struct bad_desc p[] = {
            {"n too small", QES_LOCKIN_DFT, QES_WINDOW_RECT, 3, 1, {1}, 1, 0},
            {"n zero", QES_LOCKIN_FFT, QES_WINDOW_RECT, 0, 1, {1}, 1, 0},
            {"periods 0", QES_LOCKIN_DFT, QES_WINDOW_RECT, 100, 0, {1}, 1, 0},
            {"harmonic 0", QES_LOCKIN_DFT, QES_WINDOW_RECT, 100, 1, {0}, 1, 0},
            {"harmonic at Nyquist", QES_LOCKIN_FFT, QES_WINDOW_RECT, 20, 10, {1}, 1, 0},
            {"harmonic above Nyquist", QES_LOCKIN_DFT, QES_WINDOW_RECT, 100, 10, {6}, 1, 0},
            {"harmonic bin beyond n", QES_LOCKIN_DFT, QES_WINDOW_RECT, 100, 10, {11}, 1, 0},
            {"hann lobe reaches Nyquist", QES_LOCKIN_DFT, QES_WINDOW_HANN, 22, 10, {1}, 1, 0},
            {"hann lobe reaches DC", QES_LOCKIN_FFT, QES_WINDOW_HANN, 100, 1, {1}, 1, 0},
            {"duplicate harmonic rect", QES_LOCKIN_DFT, QES_WINDOW_RECT, 100, 1, {2, 3, 2}, 3, 0},
            {"duplicate harmonic hann", QES_LOCKIN_FFT, QES_WINDOW_HANN, 100, 5, {1, 1}, 2, 0},
            {"hann overlap periods 1 harmonics 1,2",
             QES_LOCKIN_DFT,
             QES_WINDOW_HANN,
             100,
             1,
             {1, 2},
             2,
             0},
            {"hann bins adjacent (each leaks into the other)",
             QES_LOCKIN_DFT,
             QES_WINDOW_HANN,
             100,
             1,
             {5, 6},
             2,
             0},
            {"hann bins adjacent (reversed)",
             QES_LOCKIN_FFT,
             QES_WINDOW_HANN,
             100,
             1,
             {7, 6},
             2,
             0},
            {"no harmonics", QES_LOCKIN_DFT, QES_WINDOW_RECT, 100, 1, {1}, 0, 0},
            {"too many harmonics",
             QES_LOCKIN_DFT,
             QES_WINDOW_RECT,
             1000,
             1,
             {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17,
              18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
              35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51,
              52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65},
             QES_LOCKIN_MAX_HARMONICS + 1,
             0},
            {"NULL harmonics", QES_LOCKIN_DFT, QES_WINDOW_RECT, 100, 1, {1}, 1, 1},
            {"bad method", 7, QES_WINDOW_RECT, 100, 1, {1}, 1, 0},
            {"bad window", QES_LOCKIN_DFT, 9, 100, 1, {1}, 1, 0},
            {"huge harmonic times periods",
             QES_LOCKIN_DFT,
             QES_WINDOW_RECT,
             100,
             4000000000u,
             {4000000000u},
             1,
             0},
    };
    return cr_make_param_array(struct bad_desc, p, sizeof p / sizeof p[0]);
}

ParameterizedTest(struct bad_desc *p, lockin, bad_desc_refused)
{
    struct qes_lockin_desc d = {
            .method = (enum qes_lockin_method)p->method,
            .window = (enum qes_window_kind)p->window,
            .n = p->n,
            .periods = p->periods,
            .harmonics = p->null_harmonics ? NULL : p->h,
            .n_harmonics = p->nh,
    };
    static char sentinel;
    struct qes_lockin *l = (struct qes_lockin *)(void *)&sentinel; /* must be reset */
    cr_assert_eq(qes_lockin_create(&d, &l), QES_EINVAL, "%s: not refused", p->what);
    cr_assert_null(l, "%s: *out not cleared", p->what);
    /* The reference twin applies the same rules. */
    double *block = calloc(d.n > 0 ? d.n : 1, sizeof *block);
    cr_assert_not_null(block);
    struct qes_phasor out[QES_LOCKIN_MAX_HARMONICS + 1];
    cr_assert_eq(qes_lockin_reference(&d, block, 0, out), QES_EINVAL, "%s: twin", p->what);
    free(block);
}

Test(lockin, null_arguments)
{
    static const unsigned h[] = {1};
    struct qes_lockin_desc d = make_desc(QES_LOCKIN_DFT, QES_WINDOW_RECT, h, 1);
    struct qes_lockin *l;
    cr_assert_eq(qes_lockin_create(NULL, &l), QES_EINVAL);
    cr_assert_eq(qes_lockin_create(&d, NULL), QES_EINVAL);
    cr_assert_eq(qes_lockin_create(&d, &l), 0);
    double *s = calloc(N_BLOCK, sizeof *s);
    cr_assert_not_null(s);
    struct qes_phasor p[1];
    cr_assert_eq(qes_lockin_execute(NULL, s, 0, p), QES_EINVAL);
    cr_assert_eq(qes_lockin_execute(l, NULL, 0, p), QES_EINVAL);
    cr_assert_eq(qes_lockin_execute(l, s, 0, NULL), QES_EINVAL);
    cr_assert_eq(qes_lockin_reference(NULL, s, 0, p), QES_EINVAL);
    cr_assert_eq(qes_lockin_reference(&d, NULL, 0, p), QES_EINVAL);
    cr_assert_eq(qes_lockin_reference(&d, s, 0, NULL), QES_EINVAL);
    cr_assert(isnan(qes_lockin_enbw_bins(NULL)));
    qes_lockin_destroy(l);
    qes_lockin_destroy(NULL);
    free(s);
}
