/*
 * Tests of dsp/quality: THD, SINAD, SNR and SFDR against analytic signals
 * (harmonics of known amplitude, white Gaussian noise of known variance),
 * coherent and non-coherent, the clipping count, scaling, the range checks
 * and the table of invalid descs.
 *
 * Budgets.
 *  - Coherent blocks with a cosine-sum window: every tone sits in its group
 *    exactly (the window's spectrum is zero on the other integer bins), so
 *    the figures are exact up to rounding.  Rounding: a bin of a tone of RMS
 *    r carries r sum(w) / sqrt(2); the FFT error per bin is ~u sqrt(log2 n)
 *    ||w x||_2 <= 4e-16 * 7 * sqrt(n) r1 (r1 the largest tone); for the
 *    smallest tone here (2e-4 of r1, n = 4096, sum(w) >= 0.36 n) that is
 *    < 2e-13 relative in amplitude, 4e-13 in power: THD asserted 1e-12
 *    relative, dB figures 1e-11 dB.
 *  - Non-coherent blocks: bin b holds the tone t of its group,
 *    a_b = (A_t/2)|W(b - l_t)|, and interference
 *    i_b = (A_t/2)|W(b + l_t)| + sum_{o != t} (A_o/2)(|W(b - l_o)| + |W(b + l_o)|),
 *    with W the window's DTFT in closed form (a sum of Dirichlet kernels,
 *    long double).  So |X_b| lies in [a_b - i_b, a_b + i_b], which bounds
 *    every group power, the noise floor and the noise total; the truth is
 *    P_t = r_t^2.  The bound on THD, SINAD and SFDR follows by interval
 *    arithmetic (plus the rounding term above).
 *  - White noise of variance s^2: the noise total is a sum over M noise
 *    bins of exponentially distributed powers, correlated between nearby
 *    bins through the window: relative standard deviation
 *    sqrt(nu / M), nu = n sum(w^4) / sum(w^2)^2 (rect 1, hann 1.94).  The
 *    fundamental's power moves by the cross term, relative std
 *    <= 2 (s / r1) sqrt(G / n) (G bins in its group).  Single-block figures
 *    are asserted within 5 standard deviations (deterministic seeds; a 5
 *    sigma excursion has probability 6e-7); the mean over 32 blocks within
 *    5 / sqrt(32) of them.
 */
#include "dsp/quality.h"

#include "common/err.h"
#include "dsp/ipdft.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

TestSuite(quality, .timeout = 120);

static const long double two_pi_l = 6.283185307179586476925286766559L;
static const long double pi_l = 3.1415926535897932384626433832795L;

#define N_BLOCK 4096
#define FS_HZ   48000.0

struct tone {
    double lambda; /* bins (cycles per block) */
    double r;      /* RMS */
    double phi;    /* rad at sample 0 */
};

static void synth(double *x, size_t n, const struct tone *t, size_t nt)
{
    for (size_t i = 0; i < n; i++) {
        long double v = 0.0L;
        for (size_t k = 0; k < nt; k++) {
            long double c = (long double)t[k].lambda * (long double)i / (long double)n;
            c -= floorl(c);
            v += sqrtl(2.0L) * t[k].r * cosl(two_pi_l * c + t[k].phi);
        }
        x[i] = (double)v;
    }
}

/* Deterministic Gaussian noise: 64-bit LCG, Box-Muller. */
static uint64_t lcg_state;
static double lcg_open01(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((double)(lcg_state >> 11) + 0.5) * 0x1p-53;
}
static void add_noise(double *x, size_t n, double sigma, uint64_t seed)
{
    lcg_state = seed;
    for (size_t i = 0; i + 1 < n; i += 2) {
        const double u1 = lcg_open01(), u2 = lcg_open01();
        const double rad = sigma * sqrt(-2.0 * log(u1));
        x[i] += rad * cos(6.283185307179586 * u2);
        x[i + 1] += rad * sin(6.283185307179586 * u2);
    }
}

/* Cosine-sum coefficients, as published (window.h cites the sources). */
struct cs {
    enum qes_window_kind kind;
    unsigned terms;
    double a[11];
};
static const struct cs cs_hann = {QES_WINDOW_HANN, 2, {0.5, -0.5}};
static const struct cs cs_bh4 = {
        QES_WINDOW_BLACKMANHARRIS, 4, {0.35875, -0.48829, 0.14128, -0.01168}};
static const struct cs cs_hft = {QES_WINDOW_FLATTOP,
                                 11,
                                 {1.0, -1.985844164102, 1.791176438506, -1.282075284005,
                                  0.667777530266, -0.240160796576, 0.056656381764, -0.008134974479,
                                  0.000624544650, -0.000019808998, 0.000000132974}};

/* sum_{i<n} e^{-j 2 pi x i / n} in closed form. */
static void dirichlet(size_t n, long double x, long double *re, long double *im)
{
    const long double s = sinl(pi_l * x / n);
    const long double d = fabsl(s) < 1e-300L ? (long double)n : sinl(pi_l * x) / s;
    const long double a = pi_l * x * (n - 1) / n;
    *re = d * cosl(a);
    *im = -d * sinl(a);
}

/* |W(nu)| of a cosine-sum window: a0 P(nu) + sum (a_k/2)(P(nu - k) + P(nu + k)). */
static double wabs(const struct cs *c, size_t n, double nu)
{
    long double re, im, sr = 0.0L, si = 0.0L;
    dirichlet(n, nu, &re, &im);
    sr += c->a[0] * re;
    si += c->a[0] * im;
    for (unsigned k = 1; k < c->terms; k++) {
        dirichlet(n, (long double)nu - k, &re, &im);
        sr += 0.5L * c->a[k] * re;
        si += 0.5L * c->a[k] * im;
        dirichlet(n, (long double)nu + k, &re, &im);
        sr += 0.5L * c->a[k] * re;
        si += 0.5L * c->a[k] * im;
    }
    return (double)sqrtl(sr * sr + si * si);
}

static struct qes_quality *make(enum qes_window_kind w, unsigned hmax)
{
    struct qes_quality_desc d = {
            .n = N_BLOCK,
            .fs_hz = FS_HZ,
            .window = w,
            .max_harmonic = hmax,
    };
    struct qes_quality *q = NULL;
    cr_assert_eq(qes_quality_create(&d, &q), 0);
    return q;
}

static double hz(double lambda)
{
    return lambda * FS_HZ / N_BLOCK;
}

static double db10(double r)
{
    return 10.0 * log10(r);
}

/* Harmonics of a 64-bin fundamental; amplitudes 2e-4..3e-3 of it. */
static const struct tone coh[] = {
        {64, 1.0, 0.3}, {128, 1e-3, -1.0}, {192, 3e-3, 2.0}, {256, 2e-4, 3.1}, {320, 5e-4, -2.5},
};

/*
 * Coherent block, every cosine-sum window: figures exact (file header
 * budget).  H = 10: THD over h = 2..5 (6..10 are absent); H = 3: h4 and h5
 * are distortion outside THD, so they count in the noise (SNR) and SINAD.
 */
Test(quality, coherent_harmonics_exact)
{
    double *x = malloc(N_BLOCK * sizeof *x);
    cr_assert_not_null(x);
    synth(x, N_BLOCK, coh, 5);
    const double p1 = 1.0, p2 = 1e-6, p3 = 9e-6, p4 = 4e-8, p5 = 2.5e-7;
    static const enum qes_window_kind ws[] = {QES_WINDOW_RECT, QES_WINDOW_HANN,
                                              QES_WINDOW_BLACKMANHARRIS, QES_WINDOW_FLATTOP};
    for (size_t wi = 0; wi < sizeof ws / sizeof ws[0]; wi++) {
        for (unsigned hm = 3; hm <= 10; hm += 7) {
            struct qes_quality *q = make(ws[wi], hm);
            struct qes_quality_result r;
            cr_assert_eq(qes_quality_execute(q, x, hz(64), &r), 0);
            const double thd = hm == 10 ? sqrt((p2 + p3 + p4 + p5) / p1) : sqrt((p2 + p3) / p1);
            const double sinad = db10(p1 / (p2 + p3 + p4 + p5));
            const double sfdr = db10(p1 / p3);
            const char *nm = qes_window_name(ws[wi]);
            cr_assert(fabs(r.thd - thd) <= 1e-12 * thd, "%s H %u: THD %.17g vs %.17g", nm, hm,
                      r.thd, thd);
            cr_assert(fabs(r.thd_db - 20.0 * log10(thd)) <= 1e-11);
            cr_assert(fabs(r.sinad_db - sinad) <= 1e-11, "%s H %u: SINAD %.15g vs %.15g", nm, hm,
                      r.sinad_db, sinad);
            cr_assert(fabs(r.sfdr_db - sfdr) <= 1e-11, "%s: SFDR %.15g vs %.15g", nm, r.sfdr_db,
                      sfdr);
            cr_assert(fabs(r.fund_rms - 1.0) <= 1e-12, "%s: fund %.17g", nm, r.fund_rms);
            cr_assert_eq(r.spur_hz, hz(192));
            cr_assert_eq(r.fund_hz, hz(64));
            cr_assert_eq(r.harmonics, hm);
            cr_assert_eq(r.clipped, 0);
            if (hm == 3) {
                const double snr = db10(p1 / (p4 + p5));
                cr_assert(fabs(r.snr_db - snr) <= 1e-11, "%s: SNR %.15g vs %.15g", nm, r.snr_db,
                          snr);
                cr_assert(fabs(r.noise_rms - sqrt(p4 + p5)) <= 1e-12 * sqrt(p4 + p5));
            } else {
                /* Only rounding is left as noise. */
                cr_assert(r.snr_db > 200.0, "%s: SNR %.3g", nm, r.snr_db);
            }
            cr_log_info("coherent, %-14s H %2u: THD %.6e (%.3f dB) SINAD %.4f dB SNR %.4g dB "
                        "SFDR %.4f dB",
                        nm, hm, r.thd, r.thd_db, r.sinad_db, r.snr_db, r.sfdr_db);
            qes_quality_destroy(q);
        }
    }
    free(x);
}

/* H is lowered to the last harmonic whose group ends below Nyquist:
 * 6 * 300 + 1 < 2048 <= 7 * 300 + 1 (rect, L = 1). */
Test(quality, harmonics_limited_by_nyquist)
{
    double *x = malloc(N_BLOCK * sizeof *x);
    cr_assert_not_null(x);
    static const struct tone t[] = {{300, 1.0, 0.0}, {600, 1e-3, 0.0}};
    synth(x, N_BLOCK, t, 2);
    struct qes_quality *q = make(QES_WINDOW_RECT, 20);
    struct qes_quality_result r;
    cr_assert_eq(qes_quality_execute(q, x, hz(300), &r), 0);
    cr_assert_eq(r.harmonics, 6);
    cr_assert(fabs(r.thd - 1e-3) <= 1e-12 * 1e-3);
    qes_quality_destroy(q);
    /* Too few bins for even h = 2: harmonics = 1, THD = 0. */
    q = make(QES_WINDOW_RECT, 0);
    static const struct tone t2[] = {{1500, 1.0, 0.0}};
    synth(x, N_BLOCK, t2, 1);
    cr_assert_eq(qes_quality_execute(q, x, hz(1500), &r), 0);
    cr_assert_eq(r.harmonics, 1);
    cr_assert_eq(r.thd, 0.0);
    qes_quality_destroy(q);
    free(x);
}

/* A non-harmonic spur above the harmonics sets the SFDR and counts as noise. */
Test(quality, sfdr_non_harmonic_spur)
{
    double *x = malloc(N_BLOCK * sizeof *x);
    cr_assert_not_null(x);
    static const struct tone t[] = {{64, 1.0, 0.3}, {128, 1e-3, 0.1}, {777, 2e-3, -0.4}};
    synth(x, N_BLOCK, t, 3);
    struct qes_quality *q = make(QES_WINDOW_RECT, 0);
    struct qes_quality_result r;
    cr_assert_eq(qes_quality_execute(q, x, hz(64), &r), 0);
    cr_assert(fabs(r.sfdr_db - db10(1.0 / 4e-6)) <= 1e-11, "SFDR %.15g", r.sfdr_db);
    cr_assert_eq(r.spur_hz, hz(777));
    cr_assert(fabs(r.thd - 1e-3) <= 1e-12 * 1e-3);
    cr_assert(fabs(r.snr_db - db10(1.0 / 4e-6)) <= 1e-11, "SNR %.15g", r.snr_db);
    cr_assert(fabs(r.sinad_db - db10(1.0 / 5e-6)) <= 1e-11, "SINAD %.15g", r.sinad_db);
    qes_quality_destroy(q);
    free(x);
}

/* Power interval [lo, hi] of group t (file header, non-coherent budget). */
struct interval {
    double lo, hi;
};

/*
 * Interval of sum |X_b|^2 2 / sum(w)^2 over the bins |b - centre| <= L
 * (integer b; with skip, not those of the DC and fundamental groups, as the
 * spur sum does), for tone ti among t[0..nt-1] (all others interfere: the
 * triangle inequality holds whichever tone is taken as the main one);
 * *gcount gets the number of bins.
 */
static struct interval bins_power(const struct cs *c, const struct tone *t, size_t nt, size_t ti,
                                  double centre, double L, double sum_w, int skip, size_t *gcount)
{
    const size_t n = N_BLOCK;
    const double lam = t[ti].lambda;
    double lo = 0.0, hi = 0.0;
    size_t g = 0;
    for (double b = ceil(centre - L); b <= floor(centre + L); b += 1.0) {
        if (skip && (b <= L || fabs(b - t[0].lambda) <= L))
            continue;
        const double at = t[ti].r / sqrt(2.0) * wabs(c, n, b - lam);
        double it = t[ti].r / sqrt(2.0) * wabs(c, n, b + lam);
        for (size_t o = 0; o < nt; o++) {
            if (o != ti)
                it += t[o].r / sqrt(2.0) *
                      (wabs(c, n, b - t[o].lambda) + wabs(c, n, b + t[o].lambda));
        }
        const double l = fmax(at - it, 0.0), h = at + it;
        lo += l * l;
        hi += h * h;
        g++;
    }
    const double k = 2.0 / (sum_w * sum_w);
    /* Rounding (file header): 4e-13 relative in power, on each side. */
    struct interval iv = {lo * k * (1.0 - 4e-13), hi * k * (1.0 + 4e-13)};
    *gcount = g;
    return iv;
}

/*
 * Non-coherent block (fundamental at 100.37 bins, harmonics 2..4 of 1e-2 to
 * 5e-4), blackmanharris, flattop and hann: THD, SINAD and SFDR within the
 * interval bounds computed from the window's spectrum (hann's -31 dB
 * sidelobes make its bounds wide: it is the wrong window for this; the
 * bounds still hold).
 */
Test(quality, noncoherent_harmonics_within_leakage_bounds)
{
    const size_t n = N_BLOCK;
    double *x = malloc(n * sizeof *x);
    double *w = malloc(n * sizeof *w);
    cr_assert_not_null(x);
    cr_assert_not_null(w);
    static const struct tone t[] = {
            {100.37, 1.0, 0.3}, {200.74, 1e-2, -1.0}, {301.11, 3e-3, 2.0}, {401.48, 5e-4, 3.1}};
    const size_t nt = sizeof t / sizeof t[0];
    synth(x, n, t, nt);
    static const struct cs *const wins[] = {&cs_bh4, &cs_hft, &cs_hann};
    for (size_t wi = 0; wi < sizeof wins / sizeof wins[0]; wi++) {
        const struct cs *c = wins[wi];
        struct qes_quality *q = make(c->kind, 4);
        const double L = (double)qes_quality_tone_bins(q);
        cr_assert_eq(L, (double)c->terms);
        cr_assert_eq(qes_window_fill(c->kind, n, w), 0);
        long double sw = 0.0L, sw2 = 0.0L;
        for (size_t i = 0; i < n; i++) {
            sw += w[i];
            sw2 += (long double)w[i] * w[i];
        }
        const double sum_w = (double)sw, enbw = (double)(n * sw2 / (sw * sw));

        /* Upper bound of every noise bin (outside DC and the tone groups):
         * the noise floor p0 (a median, so <= the largest) and their sum. */
        double pmax = 0.0, psum = 0.0;
        size_t m = 0;
        for (size_t b = 1; b <= (n - 1) / 2; b++) {
            int in_group = (double)b <= L;
            for (size_t k = 0; k < nt; k++)
                in_group |= fabs((double)b - t[k].lambda) <= L;
            if (in_group)
                continue;
            double amp = 0.0;
            for (size_t k = 0; k < nt; k++)
                amp += t[k].r / sqrt(2.0) *
                       (wabs(c, n, (double)b - t[k].lambda) + wabs(c, n, (double)b + t[k].lambda));
            const double p = 2.0 * amp * amp / (sum_w * sum_w);
            pmax = fmax(pmax, p);
            psum += p;
            m++;
        }
        const double p0_hi = pmax / log(2.0);

        /* Groups (raw power intervals and bin counts), then the figures. */
        struct interval G[4];
        size_t gc[4], gsum = 0;
        for (size_t k = 0; k < nt; k++) {
            G[k] = bins_power(c, t, nt, k, t[k].lambda, L, sum_w, 0, &gc[k]);
            gsum += gc[k];
        }
        struct interval P[4];
        for (size_t k = 0; k < nt; k++) {
            P[k].lo = fmax(G[k].lo - (double)gc[k] * p0_hi, 0.0) / enbw;
            P[k].hi = G[k].hi / enbw;
        }
        /* NAD: the noise bins, the harmonic groups, and p0 under the DC and
         * fundamental groups (n/2 - those bins counted; Nyquist has no
         * signal here beyond the noise-bin bound, included through pmax). */
        const double hidden = 0.5 * (double)n - (double)(m + gsum - gc[0]);
        const double nad_lo = (G[1].lo + G[2].lo + G[3].lo) / enbw;
        const double nad_hi =
                (psum + pmax + G[1].hi + G[2].hi + G[3].hi + p0_hi * fmax(hidden, 0.0)) / enbw;
        const double h_lo = P[1].lo + P[2].lo + P[3].lo, h_hi = P[1].hi + P[2].hi + P[3].hi;
        const double thd_lo = sqrt(h_lo / P[0].hi), thd_hi = sqrt(h_hi / P[0].lo);
        const double sinad_lo = db10(P[0].lo / nad_hi), sinad_hi = db10(P[0].hi / nad_lo);
        const double thd_true = sqrt(1e-4 + 9e-6 + 2.5e-7);
        const double sinad_true = db10(1.0 / (1e-4 + 9e-6 + 2.5e-7));

        struct qes_quality_result r;
        cr_assert_eq(qes_quality_execute(q, x, hz(t[0].lambda), &r), 0);
        const char *nm = qes_window_name(c->kind);
        cr_assert(r.thd >= thd_lo && r.thd <= thd_hi, "%s: THD %.9g outside [%.9g, %.9g]", nm,
                  r.thd, thd_lo, thd_hi);
        cr_assert(r.sinad_db >= sinad_lo && r.sinad_db <= sinad_hi,
                  "%s: SINAD %.6f outside [%.6f, %.6f]", nm, r.sinad_db, sinad_lo, sinad_hi);
        /* With the windows meant for non-coherent blocks the truth lies inside
         * the same intervals (they bound the method, not only this
         * implementation of it).  Hann's leakage lowers SINAD below the truth
         * by more than the harmonics' share: its interval excludes it. */
        if (c->kind != QES_WINDOW_HANN) {
            cr_assert(thd_true >= thd_lo && thd_true <= thd_hi, "%s: THD truth outside", nm);
            cr_assert(sinad_true >= sinad_lo && sinad_true <= sinad_hi, "%s: SINAD truth outside",
                      nm);
        }
        /* SFDR: the largest spur is the second harmonic's peak bin (with
         * hann, the fundamental's own sidelobe next to its group); its power
         * is summed over the +-L bins around that bin, outside the DC and
         * fundamental groups. */
        const double sb = nearbyint(r.spur_hz * n / FS_HZ);
        if (c->kind != QES_WINDOW_HANN)
            cr_assert(fabs(sb - t[1].lambda) <= 0.5, "%s: spur at bin %g", nm, sb);
        size_t near = 0;
        for (size_t k = 1; k < nt; k++) {
            if (fabs(t[k].lambda - sb) < fabs(t[near].lambda - sb))
                near = k;
        }
        size_t sc;
        const struct interval S = bins_power(c, t, nt, near, sb, L, sum_w, 1, &sc);
        const double sfdr_lo = db10(P[0].lo / (S.hi / enbw));
        const double sfdr_hi = db10(P[0].hi / (S.lo / enbw));
        cr_assert(r.sfdr_db >= sfdr_lo && r.sfdr_db <= sfdr_hi,
                  "%s: SFDR %.6f outside [%.6f, %.6f]", nm, r.sfdr_db, sfdr_lo, sfdr_hi);
        cr_log_info("non-coherent, %-14s: THD %.6e (truth %.6e, bounds [%.6e, %.6e]) SINAD %.4f "
                    "dB (truth %.4f) [%.4f, %.4f] SFDR %.4f dB [%.4f, %.4f]",
                    nm, r.thd, thd_true, thd_lo, thd_hi, r.sinad_db, sinad_true, sinad_lo, sinad_hi,
                    r.sfdr_db, sfdr_lo, sfdr_hi);
        qes_quality_destroy(q);
    }
    free(w);
    free(x);
}

/* nu = n sum(w^4) / sum(w^2)^2 and ENBW of a window (long double sums). */
static void window_stats(enum qes_window_kind k, double *nu, double *enbw)
{
    const size_t n = N_BLOCK;
    double *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    cr_assert_eq(qes_window_fill(k, n, w), 0);
    long double s1 = 0.0L, s2 = 0.0L, s4 = 0.0L;
    for (size_t i = 0; i < n; i++) {
        const long double v = w[i];
        s1 += v;
        s2 += v * v;
        s4 += v * v * v * v;
    }
    *nu = (double)(n * s4 / (s2 * s2));
    *enbw = (double)(n * s2 / (s1 * s1));
    free(w);
}

/*
 * Sine plus white Gaussian noise at 60 dB SNR: SINAD and SNR within the
 * noise-derived bound of the file header, per block, and their mean over 32
 * blocks within 5/sqrt(32) of it.  Coherent with rect and hann, and
 * non-coherent with blackmanharris (whose leakage into the noise bins,
 * < -140 dB of the tone by the interval bound of the previous test, is
 * negligible here).
 */
Test(quality, sinad_with_white_noise)
{
    const size_t n = N_BLOCK;
    const double sigma = 1e-3, snr_true = db10(1.0 / (sigma * sigma));
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    static const struct {
        enum qes_window_kind k;
        double lambda;
    } cases[] = {
            {QES_WINDOW_RECT, 64.0},
            {QES_WINDOW_HANN, 64.0},
            {QES_WINDOW_BLACKMANHARRIS, 100.37},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        struct qes_quality *q = make(cases[ci].k, 0);
        double nu, enbw;
        window_stats(cases[ci].k, &nu, &enbw);
        const double L = (double)qes_quality_tone_bins(q);
        /* noise bins: below Nyquist, outside DC and the 10 tone groups */
        const double M = (double)((n - 1) / 2) - (L + 1) - 10.0 * (2.0 * L + 1.0);
        const double s_rel = sqrt(nu / M) + 2.0 * sigma * sqrt((2.0 * L + 1.0) / (double)n);
        const double tol1 = -db10(1.0 - 5.0 * s_rel);
        const double tol32 = -db10(1.0 - 5.0 * s_rel / sqrt(32.0));
        static const struct tone t0 = {0, 1.0, 0.7};
        struct tone t = t0;
        t.lambda = cases[ci].lambda;
        double mean_sinad = 0.0, mean_snr = 0.0, worst = 0.0;
        for (uint64_t seed = 1; seed <= 32; seed++) {
            synth(x, n, &t, 1);
            add_noise(x, n, sigma, seed * 7919);
            struct qes_quality_result r;
            cr_assert_eq(qes_quality_execute(q, x, hz(t.lambda), &r), 0);
            cr_assert(fabs(r.sinad_db - snr_true) <= tol1, "%s seed %llu: SINAD %.4f vs %.4f",
                      qes_window_name(cases[ci].k), (unsigned long long)seed, r.sinad_db, snr_true);
            cr_assert(fabs(r.snr_db - snr_true) <= tol1);
            worst = fmax(worst, fabs(r.sinad_db - snr_true));
            mean_sinad += r.sinad_db / 32.0;
            mean_snr += r.snr_db / 32.0;
        }
        cr_assert(fabs(mean_sinad - snr_true) <= tol32, "%s: mean SINAD %.4f vs %.4f (tol %.3g)",
                  qes_window_name(cases[ci].k), mean_sinad, snr_true, tol32);
        cr_assert(fabs(mean_snr - snr_true) <= tol32);
        cr_log_info("noise, %-14s (nu %.3f): SINAD worst |err| %.3f dB (bound %.3f), mean of 32 "
                    "%.4f dB (true %.4f, bound %.3f)",
                    qes_window_name(cases[ci].k), nu, worst, tol1, mean_sinad, snr_true, tol32);
        qes_quality_destroy(q);
    }
    free(x);
}

/*
 * Free-running source: the fundamental from the ipDFT (Hann, 3 points,
 * image removed: frequency error ~1e-14 bin here) gives the same figures as
 * the true frequency, since the groups are the same bins: the figures do
 * not depend on lambda except through the group edges.
 */
Test(quality, fundamental_from_ipdft)
{
    const size_t n = N_BLOCK;
    double *x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    static const struct tone t[] = {{100.37, 1.0, 0.3}, {200.74, 1e-2, -1.0}, {301.11, 3e-3, 2.0}};
    synth(x, n, t, 3);
    struct qes_ipdft_desc id = {.n = n, .fs_hz = FS_HZ, .window = QES_WINDOW_HANN};
    struct qes_ipdft *ip;
    cr_assert_eq(qes_ipdft_create(&id, &ip), 0);
    double f;
    cr_assert_eq(qes_ipdft_strongest_hz(ip, x, &f), 0);
    struct qes_quality *q = make(QES_WINDOW_BLACKMANHARRIS, 0);
    struct qes_quality_result a, b;
    cr_assert_eq(qes_quality_execute(q, x, f, &a), 0);
    cr_assert_eq(qes_quality_execute(q, x, hz(t[0].lambda), &b), 0);
    cr_assert_eq(a.thd, b.thd);
    cr_assert_eq(a.sinad_db, b.sinad_db);
    cr_assert_eq(a.sfdr_db, b.sfdr_db);
    cr_log_info("ipDFT fundamental %.12f Hz (true %.12f Hz)", f, hz(t[0].lambda));
    qes_quality_destroy(q);
    qes_ipdft_destroy(ip);
    free(x);
}

/* Scaling by a power of two scales every bin power by its square exactly:
 * every ratio is unchanged bit for bit and the RMS values scale exactly. */
Test(quality, scaling_is_exact)
{
    double *x = malloc(N_BLOCK * sizeof *x);
    cr_assert_not_null(x);
    synth(x, N_BLOCK, coh, 5);
    add_noise(x, N_BLOCK, 1e-4, 3);
    struct qes_quality *q = make(QES_WINDOW_BLACKMANHARRIS, 0);
    struct qes_quality_result a, b;
    cr_assert_eq(qes_quality_execute(q, x, hz(64), &a), 0);
    for (size_t i = 0; i < N_BLOCK; i++)
        x[i] *= 8.0;
    cr_assert_eq(qes_quality_execute(q, x, hz(64), &b), 0);
    cr_assert_eq(a.thd, b.thd);
    cr_assert_eq(a.sinad_db, b.sinad_db);
    cr_assert_eq(a.snr_db, b.snr_db);
    cr_assert_eq(a.sfdr_db, b.sfdr_db);
    cr_assert_eq(8.0 * a.fund_rms, b.fund_rms);
    cr_assert_eq(8.0 * a.noise_rms, b.noise_rms);
    qes_quality_destroy(q);
    free(x);
}

Test(quality, clipping_count)
{
    const double raw[] = {0.0, 32767.0, -32768.0, 32766.9, -32767.0, NAN, 40000.0, -1e9};
    const size_t n = sizeof raw / sizeof raw[0];
    cr_assert_eq(qes_quality_count_clipped(raw, n, 1, 32767.0), 5);
    cr_assert_eq(qes_quality_count_clipped(raw, n, 1, 32768.0), 3);
    cr_assert_eq(qes_quality_count_clipped(raw, n / 2, 2, 32767.0), 3); /* 0, -32768, -32767 ...*/
    cr_assert_eq(qes_quality_count_clipped(raw, 0, 1, 1.0), 0);
    cr_assert_eq(qes_quality_count_clipped(NULL, n, 1, 1.0), 0);
    cr_assert_eq(qes_quality_count_clipped(raw, n, 0, 1.0), 0);
    cr_assert_eq(qes_quality_count_clipped(raw, n, 1, 0.0), 0);
    cr_assert_eq(qes_quality_count_clipped(raw, n, 1, NAN), 0);

    /* In execute: a sine of peak 1 clipped at +-0.9 (samples set to the
     * rails): counted against full_scale = 0.9. */
    double *x = malloc(N_BLOCK * sizeof *x);
    cr_assert_not_null(x);
    synth(x, N_BLOCK, coh, 1);
    size_t expect = 0;
    for (size_t i = 0; i < N_BLOCK; i++) {
        const double lim = 0.9 * sqrt(2.0);
        if (fabs(x[i]) >= lim) {
            x[i] = x[i] > 0 ? lim : -lim;
            expect++;
        }
    }
    cr_assert_gt(expect, 0);
    struct qes_quality_desc d = {
            .n = N_BLOCK, .fs_hz = FS_HZ, .window = QES_WINDOW_RECT, .full_scale = 0.9 * sqrt(2.0)};
    struct qes_quality *q;
    cr_assert_eq(qes_quality_create(&d, &q), 0);
    struct qes_quality_result r;
    cr_assert_eq(qes_quality_execute(q, x, hz(64), &r), 0);
    cr_assert_eq(r.clipped, expect);
    /* clipping is distortion: odd harmonics appear */
    cr_assert_gt(r.thd, 1e-3);
    qes_quality_destroy(q);
    free(x);
}

Test(quality, out_of_range_and_null)
{
    double *x = malloc(N_BLOCK * sizeof *x);
    cr_assert_not_null(x);
    synth(x, N_BLOCK, coh, 1);
    struct qes_quality *q = make(QES_WINDOW_BLACKMANHARRIS, 0); /* L = 4 */
    struct qes_quality_result r = {.thd = -1.0};
    /* lambda must exceed 2 L = 8 and stay below n/2 - L = 2044 */
    cr_assert_eq(qes_quality_execute(q, x, hz(8.0), &r), QES_ERANGE);
    cr_assert_eq(qes_quality_execute(q, x, hz(2044.0), &r), QES_ERANGE);
    cr_assert_eq(r.thd, -1.0, "result written on error");
    cr_assert_eq(qes_quality_execute(q, x, hz(8.01), &r), 0);
    cr_assert_eq(qes_quality_execute(q, x, hz(2043.99), &r), 0);
    cr_assert_eq(qes_quality_execute(q, x, 0.0, &r), QES_EINVAL);
    cr_assert_eq(qes_quality_execute(q, x, -5.0, &r), QES_EINVAL);
    cr_assert_eq(qes_quality_execute(q, x, NAN, &r), QES_EINVAL);
    cr_assert_eq(qes_quality_execute(q, x, INFINITY, &r), QES_EINVAL);
    cr_assert_eq(qes_quality_execute(NULL, x, hz(64), &r), QES_EINVAL);
    cr_assert_eq(qes_quality_execute(q, NULL, hz(64), &r), QES_EINVAL);
    cr_assert_eq(qes_quality_execute(q, x, hz(64), NULL), QES_EINVAL);
    x[100] = NAN;
    cr_assert_eq(qes_quality_execute(q, x, hz(64), &r), QES_ERANGE);
    x[100] = INFINITY;
    cr_assert_eq(qes_quality_execute(q, x, hz(64), &r), QES_ERANGE);
    cr_assert_eq(qes_quality_tone_bins(NULL), 0);
    qes_quality_destroy(q);
    qes_quality_destroy(NULL);
    /* Flattop at n = 64: L = 11 leaves no room (2 L = 22 < lambda, lambda + 11 < 32). */
    struct qes_quality_desc d = {.n = 64, .fs_hz = 64.0, .window = QES_WINDOW_FLATTOP};
    cr_assert_eq(qes_quality_create(&d, &q), 0);
    cr_assert_eq(qes_quality_execute(q, x, 22.5, &r), QES_ERANGE);
    qes_quality_destroy(q);
    free(x);
}

Test(quality, tone_bins_defaults)
{
    static const struct {
        enum qes_window_kind k;
        double beta;
        unsigned expect;
    } t[] = {
            {QES_WINDOW_RECT, 0, 1},           {QES_WINDOW_HANN, 0, 2},
            {QES_WINDOW_BLACKMANHARRIS, 0, 4}, {QES_WINDOW_FLATTOP, 0, 11},
            {QES_WINDOW_KAISER, 0, 3},    /* default beta 8.6: ceil(2.914) */
            {QES_WINDOW_KAISER, 20.0, 7}, /* ceil(sqrt(1 + (20/pi)^2)) = ceil(6.44) */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        struct qes_quality_desc d = {
                .n = 1024, .fs_hz = 1.0, .window = t[i].k, .kaiser_beta = t[i].beta};
        struct qes_quality *q;
        cr_assert_eq(qes_quality_create(&d, &q), 0);
        cr_assert_eq(qes_quality_tone_bins(q), t[i].expect, "case %zu", i);
        qes_quality_destroy(q);
    }
    struct qes_quality_desc d = {
            .n = 1024, .fs_hz = 1.0, .window = QES_WINDOW_HANN, .tone_bins = 5};
    struct qes_quality *q;
    cr_assert_eq(qes_quality_create(&d, &q), 0);
    cr_assert_eq(qes_quality_tone_bins(q), 5);
    qes_quality_destroy(q);
}

/* Table of invalid descs, by index (pointers in Criterion parameters are not
 * safe here). */
static const struct bad_desc {
    const char *what;
    size_t n;
    double fs_hz;
    int window;
    double beta;
    unsigned hmax;
    unsigned tone_bins;
    double full_scale;
} bad_descs[] = {
        {"n 0", 0, 1.0, QES_WINDOW_RECT, 0, 0, 0, 0},
        {"n 15", 15, 1.0, QES_WINDOW_RECT, 0, 0, 0, 0},
        {"n above INT_MAX", (size_t)2147483647 + 1, 1.0, QES_WINDOW_RECT, 0, 0, 0, 0},
        {"fs 0", 1024, 0.0, QES_WINDOW_RECT, 0, 0, 0, 0},
        {"fs negative", 1024, -1.0, QES_WINDOW_RECT, 0, 0, 0, 0},
        {"fs NaN", 1024, NAN, QES_WINDOW_RECT, 0, 0, 0, 0},
        {"fs infinite", 1024, INFINITY, QES_WINDOW_RECT, 0, 0, 0, 0},
        {"window invalid", 1024, 1.0, 9, 0, 0, 0, 0},
        {"kaiser beta negative", 1024, 1.0, QES_WINDOW_KAISER, -1.0, 0, 0, 0},
        {"kaiser beta too large", 1024, 1.0, QES_WINDOW_KAISER, 50.5, 0, 0, 0},
        {"kaiser beta NaN", 1024, 1.0, QES_WINDOW_KAISER, NAN, 0, 0, 0},
        {"max harmonic 1", 1024, 1.0, QES_WINDOW_RECT, 0, 1, 0, 0},
        {"max harmonic too large", 1024, 1.0, QES_WINDOW_RECT, 0, QES_QUALITY_HARMONIC_MAX + 1, 0,
         0},
        {"tone bins too large", 1024, 1.0, QES_WINDOW_RECT, 0, 0, QES_QUALITY_TONE_BINS_MAX + 1, 0},
        {"full scale negative", 1024, 1.0, QES_WINDOW_RECT, 0, 0, 0, -1.0},
        {"full scale NaN", 1024, 1.0, QES_WINDOW_RECT, 0, 0, 0, NAN},
        {"full scale infinite", 1024, 1.0, QES_WINDOW_RECT, 0, 0, 0, INFINITY},
};
#define N_BAD_DESCS (sizeof bad_descs / sizeof bad_descs[0])

ParameterizedTestParameters(quality, bad_desc_refused)
{
    static size_t idx[N_BAD_DESCS];
    for (size_t i = 0; i < N_BAD_DESCS; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD_DESCS);
}

ParameterizedTest(size_t *i, quality, bad_desc_refused)
{
    const struct bad_desc *b = &bad_descs[*i];
    struct qes_quality_desc d = {
            .n = b->n,
            .fs_hz = b->fs_hz,
            .window = (enum qes_window_kind)b->window,
            .kaiser_beta = b->beta,
            .max_harmonic = b->hmax,
            .tone_bins = b->tone_bins,
            .full_scale = b->full_scale,
    };
    static char sentinel;
    struct qes_quality *q = (struct qes_quality *)(void *)&sentinel; /* must be reset */
    const int rc = qes_quality_create(&d, &q);
    cr_assert_eq(rc, QES_EINVAL, "%s: got %s", b->what, qes_err_name(rc));
    cr_assert_null(q, "%s: *out not cleared", b->what);
}

Test(quality, null_arguments)
{
    struct qes_quality_desc d = {.n = 1024, .fs_hz = 1.0};
    struct qes_quality *q;
    cr_assert_eq(qes_quality_create(NULL, &q), QES_EINVAL);
    cr_assert_eq(qes_quality_create(&d, NULL), QES_EINVAL);
    cr_assert_eq(qes_quality_create(&d, &q), 0);
    qes_quality_destroy(q);
}
