/*
 * Block lock-in on coherent blocks (see lockin.h).
 *
 * Sign convention.  With theta_m = 2 pi b m / n the reference phase of run
 * sample m (b = h * periods the harmonic's bin) and the signal model
 * s[m] = sqrt(2) r cos(theta_m + phi), the demodulated sum over a coherent
 * block is sum_i w[i] s[start + i] e^{-j theta_{start+i}} = r/sqrt(2) sum(w)
 * e^{j phi}.  The FFT path demodulates against the block-local reference
 * e^{-j 2 pi b i / n}, which leaves a factor e^{j theta0} (theta0 = theta at
 * the block's first sample); it removes it by multiplying by e^{-j theta0}.
 * The DFT kernel folds sample_start into the integer phase of each chunk
 * instead.  Either way the phase comes from (b * sample_start) mod n in
 * integers, so it is exact for any run length.
 */
#include "dsp/lockin.h"

#include "common/err.h"
#include "common/ratio.h"

#include <fftw3.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double qes__two_pi = 6.283185307179586476925286766559;
static const long double qes__two_pi_l = 6.283185307179586476925286766559L;

struct qes_lockin {
    enum qes_lockin_method method;
    enum qes_window_kind window;
    size_t n;
    size_t n_harmonics;
    uint64_t bins[QES_LOCKIN_MAX_HARMONICS]; /* h * periods, in desc order */
    double sum_w;                            /* coherent gain times n */
    double sum_w2;                           /* for the ENBW */
    double scale;                            /* sqrt(2) / sum(w) */
    double *w;                               /* n window values; NULL for rect */
    size_t bytes;                            /* heap held, for qes_lockin_memory_bytes */
    /* method FFT */
    double *fft_in;
    fftw_complex *fft_out;
    fftw_plan plan;
    /* method DFT (the fused kernel, see "The DFT kernel" below) */
    size_t fold;                              /* g: the block folds onto g periods */
    size_t period;                            /* M = n / g samples */
    size_t chunk;                             /* L, even */
    size_t piece;                             /* F: multiple of L, folded at a time */
    size_t ylen;                              /* doubles of work before u and v */
    int direct;                               /* rect, no fold: chunks read in place */
    double *tab;                              /* per harmonic: L/2 cos, then L/2 sin */
    double *rot_lo;                           /* (cos, sin) of 2 pi k / 2n, k < 2^shift */
    double *rot_hi;                           /* (cos, sin) of 2 pi (k << shift) / 2n */
    unsigned shift;                           /* log2 of the rot_lo length */
    uint64_t step2[QES_LOCKIN_MAX_HARMONICS]; /* 2 b L mod 2n */
    double *work;                             /* ylen + L doubles: piece, then u and v */
};

/*
 * Validate a desc and compute the bins.  The rules (window.h): every bin b
 * must keep its leakage lobe b-L..b+L clear of DC (b - L >= 1) and strictly
 * below Nyquist (b + L < n/2, tested as 2 (b + L) < n to cover odd n), and
 * two requested bins must be further apart than L, so that neither tone leaks
 * into the other's bin (for rect, L = 0: no duplicates).  Bins 2L apart share
 * a leakage bin but do not disturb each other's estimate.
 */
/* The desc's Kaiser beta, 0 meaning the default. */
static double lockin_beta(const struct qes_lockin_desc *d)
{
    return d->kaiser_beta > 0 ? d->kaiser_beta : QES_WINDOW_KAISER_BETA_DEFAULT;
}

static int check_desc(const struct qes_lockin_desc *d, uint64_t *bins)
{
    if (!d || !d->harmonics)
        return QES_EINVAL;
    if (d->method != QES_LOCKIN_FFT && d->method != QES_LOCKIN_DFT)
        return QES_EINVAL;
    if (!qes_window_name(d->window))
        return QES_EINVAL;
    if (d->n < 4 || d->periods < 1)
        return QES_EINVAL;
    if (d->n_harmonics < 1 || d->n_harmonics > QES_LOCKIN_MAX_HARMONICS)
        return QES_EINVAL;
    /* FFTW takes the length as an int. */
    if (d->method == QES_LOCKIN_FFT && d->n > (size_t)INT_MAX)
        return QES_EINVAL;
    const uint64_t leak = qes_window_leak_bins_ex(d->window, lockin_beta(d));
    const uint64_t n = d->n;
    for (size_t k = 0; k < d->n_harmonics; k++) {
        if (d->harmonics[k] < 1)
            return QES_EINVAL;
        /* Both factors < 2^32: the product cannot overflow. */
        const uint64_t b = (uint64_t)d->harmonics[k] * d->periods;
        if (b < leak + 1)
            return QES_EINVAL;
        /* 2 (b + L) < n  <=>  b + L <= (n - 1) / 2, without overflow. */
        if (b >= n || b + leak > (n - 1) / 2)
            return QES_EINVAL;
        for (size_t j = 0; j < k; j++) {
            const uint64_t dist = b > bins[j] ? b - bins[j] : bins[j] - b;
            if (dist <= leak)
                return QES_EINVAL;
        }
        bins[k] = b;
    }
    return 0;
}

/* Angle 2 pi k / n for 0 <= k < n, reduced to [-pi, pi] before rounding. */
static double bin_angle(uint64_t k, uint64_t n)
{
    double kk = 2 * k <= n ? (double)k : -(double)(n - k);
    return qes__two_pi * kk / (double)n;
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
 * The DFT kernel.
 *
 * Folding.  Every requested bin is a multiple of G = gcd(n, b_1, ..., b_H),
 * so the reference e^{-j 2 pi b i / n} of every harmonic repeats with period
 * M = n / G samples.  The block is first summed period onto period,
 * y[r] = sum_q w[qM + r] x[qM + r] (q = 0..G-1, in that order), and the
 * harmonics are demodulated on the M samples of y.  This is exact (the sum
 * is only regrouped) and turns the usual coherent set-up, an integer number
 * of samples per period, into one add per sample plus a DFT of one period.
 * With G = 1 (e.g. periods coprime with n) y is the (windowed) block itself.
 *
 * Chunks with mirrored pairs.  y is cut into chunks of L samples (L even,
 * sized so that the tables of all harmonics stay in L1).  Measured from the
 * chunk's centre c + (L-1)/2, sample c + L/2 + s and sample c + L/2 - 1 - s
 * (s = 0..L/2-1) sit at reference phases +phi_s and -phi_s,
 * phi_s = 2 pi b (2s + 1) / 2n.  With u_s and v_s the sum and difference of
 * the pair, the chunk's sum is
 *     e^{-j theta_c} sum_s (u_s cos phi_s - j v_s sin phi_s),
 * theta_c the reference phase at the chunk's centre: one multiply-add per
 * sample and harmonic (instead of two), against per-harmonic tables of L/2
 * cosines and L/2 sines shared by every chunk.  A short last chunk is padded
 * with zeros.
 *
 * Chunk rotations without drift.  theta_c = 2 pi m / 2n with the integer
 * m = b (2 (start + c) + L - 1) mod 2n, advanced by 2 b L mod 2n per chunk in
 * integers, so the phase never accumulates error, whatever the block size or
 * run index.  e^{j theta_c} is the product of two table entries,
 * rot_hi[m >> shift] * rot_lo[m & (2^shift - 1)], each table about sqrt(2n)
 * long: no libm call at execute, and no recurrence whose error would grow.
 *
 * Error budget (u = 2^-53; worst case, relative to sum |w x| of the term
 * magnitudes; random rounding gives about the square root of it in units
 * of u):
 *  - window product and fold, G terms per sample: G u;
 *  - pair sum: u; table entry cos/sin phi_s (argument reduced to [-pi, pi]
 *    and rounded once, glibc's cos/sin < 1 ulp): 2 u; product: u;
 *  - sum of L/2 pair terms in a chunk: L/2 u;
 *  - chunk rotation: two table entries (2 u each) and their complex
 *    product (2 u): 6 u; its product with the chunk's sum: 2 u;
 *  - sum over the M/L chunks: M/L u; final scale sqrt(2)/sum(w): 2 u;
 * in all (G + L/2 + M/L + 16) u per component.  With a factor 2 for two
 * components and the sqrt(2) of the scale, |phasor error| <=
 * 2 (G + L/2 + M/L + 16) u max|x| sum|w| / sum(w): 9.4e-13 max|x| for a
 * 2^20-sample rect block without folding (G = 1, L = 256), whatever the run
 * index (no phase is ever accumulated in floating point).  Observed errors
 * are ~1e-16 (tests/dsp/test_lockin_fast.c, `qes bench`).
 *
 * Speed: the hot loops are plain C over restrict pointers with
 * `omp simd reduction` (needs -fopenmp-simd), several independent partial
 * sums per harmonic so the adds do not wait on each other's latency.  The
 * block driver is compiled twice by target_clones, for x86-64-v3 (AVX2 + FMA)
 * and for the baseline, and the loader picks one per CPU.  The two variants
 * round differently (vector width, FMA contraction), so results can differ in
 * the last bits between machines; on one machine the same variant always
 * runs, and the summation order is fixed by the compiled code, so replay is
 * byte-identical run to run.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define QES__CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
/* FMA contraction on the hot loops only (ISO C mode turns it off globally);
 * the baseline variant has no FMA and is unaffected. */
#define QES__HOT __attribute__((optimize("fp-contract=fast")))
/* Into L2 (prefetcht1): into L1 it would evict the tables (measured: slower). */
#define QES__PREFETCH(p) __builtin_prefetch(p, 0, 2)
/* The leaf loops must be compiled inside each variant of the driver. */
#define QES__INLINE __attribute__((always_inline)) inline
#else
#define QES__CLONES
#define QES__HOT
#define QES__INLINE      inline
#define QES__PREFETCH(p) ((void)(p))
#endif

/* Samples folded at a time (64 KiB of doubles: L2-resident). */
#define QES__PIECE 8192

/* Chunk length: tables of nh harmonics * L doubles within 16 KiB (L1 keeps
 * them next to the samples), L in 32..1024, a multiple of 8, and no longer
 * than the (even-rounded) period. */
static size_t choose_chunk(size_t nh, uint64_t period)
{
    size_t L = 2048 / nh;
    if (L > 1024)
        L = 1024;
    if (L < 32)
        L = 32;
    L &= ~(size_t)7;
    const uint64_t pe = period + (period & 1);
    if (pe < L)
        L = (size_t)pe;
    return L;
}

/* (cos, sin) of 2 pi k / n2 into t[0], t[1]. */
static void fill_cs(double *t, uint64_t k, uint64_t n2)
{
    const double a = bin_angle(k, n2);
    t[0] = cos(a);
    t[1] = sin(a);
}

static int dft_create(struct qes_lockin *l)
{
    const size_t nh = l->n_harmonics;
    const uint64_t n = l->n, n2 = 2 * n;
    uint64_t G = n;
    for (size_t k = 0; k < nh; k++)
        G = gcd_u64(G, l->bins[k]);
    l->fold = (size_t)G;
    l->period = (size_t)(n / G);
    const size_t L = choose_chunk(nh, l->period), half = L / 2;
    l->chunk = L;
    /* The period, rounded up to whole chunks, at most QES__PIECE samples. */
    size_t F = (QES__PIECE / L) * L;
    if ((l->period + L - 1) / L * L < F)
        F = (l->period + L - 1) / L * L;
    l->piece = F;
    /* Rect and nothing to fold: chunks are read in place, and the buffer
     * only holds a zero-padded last chunk. */
    l->direct = !l->w && G == 1;
    l->ylen = l->direct ? L : F;

    /* Smallest shift with 2^(2 shift) >= 2n: both rotation tables ~sqrt(2n). */
    unsigned sh = 0;
    while (sh < 32 && ((uint64_t)1 << (2 * sh)) < n2)
        sh++;
    l->shift = sh;
    const uint64_t n_lo = (uint64_t)1 << sh, n_hi = ((n2 - 1) >> sh) + 1;

    const size_t tab_d = nh * L, rot_d = 2 * (size_t)(n_lo + n_hi), work_d = l->ylen + L;
    l->tab = fftw_malloc(tab_d * sizeof(double));
    l->rot_lo = fftw_malloc(rot_d * sizeof(double));
    l->work = fftw_malloc(work_d * sizeof(double));
    if (!l->tab || !l->rot_lo || !l->work)
        return QES_ENOMEM;
    l->bytes += (tab_d + rot_d + work_d) * sizeof(double);
    l->rot_hi = l->rot_lo + 2 * n_lo;
    for (uint64_t k = 0; k < n_lo; k++)
        fill_cs(l->rot_lo + 2 * k, k, n2);
    for (uint64_t k = 0; k < n_hi; k++)
        fill_cs(l->rot_hi + 2 * k, k << sh, n2);
    for (size_t k = 0; k < nh; k++) {
        const uint64_t b = l->bins[k];
        double *c = l->tab + k * L, *s = c + half;
        for (size_t i = 0; i < half; i++) {
            double cs[2];
            fill_cs(cs, qes_mulmod_u64(b, 2 * (uint64_t)i + 1, n2), n2);
            c[i] = cs[0];
            s[i] = cs[1];
        }
        /* 2 b < n: no overflow. */
        l->step2[k] = qes_mulmod_u64(2 * b, L, n2);
    }
    return 0;
}

int qes_lockin_create(const struct qes_lockin_desc *desc, struct qes_lockin **out)
{
    if (!out)
        return QES_EINVAL;
    *out = NULL;
    uint64_t bins[QES_LOCKIN_MAX_HARMONICS];
    int rc = check_desc(desc, bins);
    if (rc)
        return rc;

    const size_t n = desc->n;
    /* The DFT kernel counts phases modulo 2n in 64 bits. */
    if (n > SIZE_MAX / sizeof(double) || (uint64_t)n > UINT64_MAX / 4)
        return QES_ENOMEM;
    struct qes_lockin *l = calloc(1, sizeof *l);
    if (!l)
        return QES_ENOMEM;
    l->bytes = sizeof *l;
    l->method = desc->method;
    l->window = desc->window;
    l->n = n;
    l->n_harmonics = desc->n_harmonics;
    memcpy(l->bins, bins, desc->n_harmonics * sizeof bins[0]);

    rc = QES_ENOMEM;
    l->w = fftw_malloc(n * sizeof(double));
    if (!l->w)
        goto err_free;
    qes_window_fill_ex(desc->window, lockin_beta(desc), n, l->w);
    /* Long double sums: create is not hot, and the gain enters every value. */
    long double sw = 0.0L, sw2 = 0.0L;
    for (size_t i = 0; i < n; i++) {
        sw += l->w[i];
        sw2 += (long double)l->w[i] * l->w[i];
    }
    l->sum_w = (double)sw;
    l->sum_w2 = (double)sw2;
    l->scale = (double)(sqrtl(2.0L) / sw);
    if (desc->window == QES_WINDOW_RECT) {
        /* All ones: neither method reads it. */
        fftw_free(l->w);
        l->w = NULL;
    } else {
        l->bytes += n * sizeof(double);
    }

    if (desc->method == QES_LOCKIN_FFT) {
        l->fft_in = fftw_malloc(n * sizeof(double));
        l->fft_out = fftw_malloc((n / 2 + 1) * sizeof(fftw_complex));
        if (!l->fft_in || !l->fft_out)
            goto err_free;
        l->bytes += n * sizeof(double) + (n / 2 + 1) * sizeof(fftw_complex);
        /* FFTW_ESTIMATE: the plan, hence every result bit, is the same on
         * every run (FFTW_MEASURE plans can differ and break replay). */
        l->plan = fftw_plan_dft_r2c_1d((int)n, l->fft_in, l->fft_out, FFTW_ESTIMATE);
        if (!l->plan)
            goto err_free;
    } else {
        rc = dft_create(l);
        if (rc)
            goto err_free;
    }
    *out = l;
    return 0;

err_free:
    qes_lockin_destroy(l);
    return rc;
}

/*
 * Gather samples [pos, pos + len) of the folded, windowed period into
 * y[0..pad): y[r] = sum_q w[qM + pos + r] x[qM + pos + r], q = 0..g-1 in
 * that order, zero from len to pad.  w NULL: rect.  Each q reads len
 * consecutive samples: long runs the hardware prefetcher follows.
 */
QES__HOT static QES__INLINE void gather(double *restrict y, const double *restrict x,
                                        const double *restrict w, size_t M, size_t g, size_t pos,
                                        size_t len, size_t pad)
{
    const double *restrict x0 = x + pos;
    if (w) {
        const double *restrict w0 = w + pos;
#pragma omp simd
        for (size_t r = 0; r < len; r++)
            y[r] = w0[r] * x0[r];
        for (size_t q = 1; q < g; q++) {
            const double *restrict xq = x0 + q * M, *restrict wq = w0 + q * M;
#pragma omp simd
            for (size_t r = 0; r < len; r++)
                y[r] += wq[r] * xq[r];
        }
    } else {
        memcpy(y, x0, len * sizeof *y);
        for (size_t q = 1; q < g; q++) {
            const double *restrict xq = x0 + q * M;
#pragma omp simd
            for (size_t r = 0; r < len; r++)
                y[r] += xq[r];
        }
    }
    for (size_t r = len; r < pad; r++)
        y[r] = 0.0;
}

/* Mirrored pairs about the chunk's centre: u_s = y[h + s] + y[h - 1 - s],
 * v_s = y[h + s] - y[h - 1 - s], h = L/2. */
QES__HOT static QES__INLINE void pairs(const double *restrict y, size_t half, double *restrict u,
                                       double *restrict v)
{
    const double *restrict up = y + half;
#pragma omp simd
    for (size_t s = 0; s < half; s++) {
        const double a = up[s], b = y[half - 1 - s];
        u[s] = a + b;
        v[s] = a - b;
    }
}

/* One harmonic: A = sum u c, B = sum v s, as four interleaved quarter sums
 * each (eight independent chains). */
QES__HOT static QES__INLINE void dot1(const double *restrict u, const double *restrict v,
                                      const double *restrict c, const double *restrict s, size_t m,
                                      double *A, double *B)
{
    const size_t q = m / 4;
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    double b0 = 0.0, b1 = 0.0, b2 = 0.0, b3 = 0.0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3)
    for (size_t i = 0; i < q; i++) {
        a0 += u[i] * c[i];
        a1 += u[q + i] * c[q + i];
        a2 += u[2 * q + i] * c[2 * q + i];
        a3 += u[3 * q + i] * c[3 * q + i];
        b0 += v[i] * s[i];
        b1 += v[q + i] * s[q + i];
        b2 += v[2 * q + i] * s[2 * q + i];
        b3 += v[3 * q + i] * s[3 * q + i];
    }
    for (size_t i = 4 * q; i < m; i++) {
        a3 += u[i] * c[i];
        b3 += v[i] * s[i];
    }
    *A = (a0 + a1) + (a2 + a3);
    *B = (b0 + b1) + (b2 + b3);
}

/* Two harmonics (tables t0, t1: m cosines then m sines), halves: eight chains. */
QES__HOT static QES__INLINE void dot2(const double *restrict u, const double *restrict v,
                                      const double *restrict t0, const double *restrict t1,
                                      size_t m, double *A, double *B)
{
    const size_t h = m / 2;
    const double *restrict c0 = t0, *restrict s0 = t0 + m, *restrict c1 = t1, *restrict s1 = t1 + m;
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    double b0 = 0.0, b1 = 0.0, b2 = 0.0, b3 = 0.0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3)
    for (size_t i = 0; i < h; i++) {
        a0 += u[i] * c0[i];
        a1 += u[h + i] * c0[h + i];
        a2 += u[i] * c1[i];
        a3 += u[h + i] * c1[h + i];
        b0 += v[i] * s0[i];
        b1 += v[h + i] * s0[h + i];
        b2 += v[i] * s1[i];
        b3 += v[h + i] * s1[h + i];
    }
    for (size_t i = 2 * h; i < m; i++) {
        a1 += u[i] * c0[i];
        a3 += u[i] * c1[i];
        b1 += v[i] * s0[i];
        b3 += v[i] * s1[i];
    }
    A[0] = a0 + a1;
    A[1] = a2 + a3;
    B[0] = b0 + b1;
    B[1] = b2 + b3;
}

/* Four harmonics: eight chains, u and v loaded once for all four. */
QES__HOT static QES__INLINE void dot4(const double *restrict u, const double *restrict v,
                                      const double *restrict t, size_t m, double *A, double *B)
{
    const size_t L = 2 * m;
    const double *restrict c0 = t, *restrict s0 = t + m, *restrict c1 = t + L,
                           *restrict s1 = t + L + m, *restrict c2 = t + 2 * L,
                           *restrict s2 = t + 2 * L + m, *restrict c3 = t + 3 * L,
                           *restrict s3 = t + 3 * L + m;
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    double b0 = 0.0, b1 = 0.0, b2 = 0.0, b3 = 0.0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3)
    for (size_t i = 0; i < m; i++) {
        a0 += u[i] * c0[i];
        a1 += u[i] * c1[i];
        a2 += u[i] * c2[i];
        a3 += u[i] * c3[i];
        b0 += v[i] * s0[i];
        b1 += v[i] * s1[i];
        b2 += v[i] * s2[i];
        b3 += v[i] * s3[i];
    }
    A[0] = a0;
    A[1] = a1;
    A[2] = a2;
    A[3] = a3;
    B[0] = b0;
    B[1] = b1;
    B[2] = b2;
    B[3] = b3;
}

/* The whole DFT of one block (see "The DFT kernel"). */
QES__CLONES QES__HOT static void dft_block(struct qes_lockin *l, const double *x,
                                           uint64_t sample_start, struct qes_phasor *out)
{
    const size_t L = l->chunk, half = L / 2, M = l->period, g = l->fold, nh = l->n_harmonics;
    const size_t F = l->piece;
    const uint64_t n = l->n, n2 = 2 * n, mask = ((uint64_t)1 << l->shift) - 1;
    const unsigned sh = l->shift;
    double *restrict yb = l->work, *restrict u = yb + l->ylen, *restrict v = u + half;
    const double *restrict tab = l->tab, *restrict rlo = l->rot_lo, *restrict rhi = l->rot_hi;
    uint64_t m2[QES_LOCKIN_MAX_HARMONICS];
    double re[QES_LOCKIN_MAX_HARMONICS], im[QES_LOCKIN_MAX_HARMONICS];
    double A[QES_LOCKIN_MAX_HARMONICS], B[QES_LOCKIN_MAX_HARMONICS];

    /* Doubled phase index of the first chunk's centre, start + (L-1)/2. */
    const uint64_t c2 = (2 * (sample_start % n) + L - 1) % n2;
    for (size_t k = 0; k < nh; k++) {
        m2[k] = qes_mulmod_u64(l->bins[k], c2, n2);
        re[k] = 0.0;
        im[k] = 0.0;
    }
    for (size_t pp = 0; pp < M; pp += F) {
        /* One piece of the period: the samples themselves when there is
         * nothing to fold or weigh, else folded into the work buffer. */
        const size_t plen = M - pp < F ? M - pp : F;
        const int direct = l->direct;
        if (!direct)
            gather(yb, x, l->w, M, g, pp, plen, (plen + L - 1) / L * L);
        for (size_t pos = 0; pos < plen; pos += L) {
            const double *y;
            if (!direct) {
                y = yb + pos;
            } else if (plen - pos >= L) {
                y = x + pp + pos;
                /* The next chunk, ahead of time: the pairs read each chunk
                 * from its middle outwards, which the hardware prefetcher
                 * does not anticipate (measured: 2x on blocks from DRAM). */
                if (pp + pos + 2 * L <= M)
                    for (size_t o = 0; o < L; o += 8)
                        QES__PREFETCH(y + L + o);
            } else {
                gather(yb, x, NULL, M, 1, pp + pos, plen - pos, L);
                y = yb;
            }
            pairs(y, half, u, v);
            size_t k = 0;
            if (nh == 1) {
                dot1(u, v, tab, tab + half, half, A, B);
                k = 1;
            }
            for (; k + 4 <= nh; k += 4)
                dot4(u, v, tab + k * L, half, A + k, B + k);
            for (; k + 2 <= nh; k += 2)
                dot2(u, v, tab + k * L, tab + (k + 1) * L, half, A + k, B + k);
            if (k < nh)
                dot1(u, v, tab + k * L, tab + k * L + half, half, A + k, B + k);
            for (k = 0; k < nh; k++) {
                /* e^{j theta} = rot_hi * rot_lo; the chunk's sum is
                 * e^{-j theta} (A - j B). */
                const uint64_t m = m2[k];
                const double *hi = rhi + 2 * (m >> sh), *lo = rlo + 2 * (m & mask);
                const double C = hi[0] * lo[0] - hi[1] * lo[1];
                const double S = hi[1] * lo[0] + hi[0] * lo[1];
                re[k] += C * A[k] - S * B[k];
                im[k] -= C * B[k] + S * A[k];
                const uint64_t next = m + l->step2[k];
                m2[k] = next >= n2 ? next - n2 : next;
            }
        }
    }
    for (size_t k = 0; k < nh; k++) {
        out[k].x = l->scale * re[k];
        out[k].y = l->scale * im[k];
    }
}

static void window_mul(double *restrict out, const double *restrict w, const double *restrict x,
                       size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = w[i] * x[i];
}

/* Phasor from the block-local sum X = re + j im: scale and remove e^{j theta0}. */
static struct qes_phasor finish(double scale, double re, double im, uint64_t b, uint64_t n,
                                uint64_t sample_start)
{
    const double a = bin_angle(qes_mulmod_u64(b, sample_start, n), n);
    const double c = cos(a), s = sin(a);
    struct qes_phasor p;
    p.x = scale * (re * c + im * s);
    p.y = scale * (im * c - re * s);
    return p;
}

int qes_lockin_execute(struct qes_lockin *l, const double *block, uint64_t sample_start,
                       struct qes_phasor *out)
{
    if (!l || !block || !out)
        return QES_EINVAL;
    const size_t n = l->n;
    if (l->method == QES_LOCKIN_FFT) {
        if (!l->w) {
            memcpy(l->fft_in, block, n * sizeof(double));
        } else {
            window_mul(l->fft_in, l->w, block, n);
        }
        fftw_execute(l->plan);
        for (size_t k = 0; k < l->n_harmonics; k++) {
            const uint64_t b = l->bins[k];
            out[k] = finish(l->scale, l->fft_out[b][0], l->fft_out[b][1], b, n, sample_start);
        }
    } else {
        dft_block(l, block, sample_start, out);
    }
    return 0;
}

double qes_lockin_enbw_bins(const struct qes_lockin *l)
{
    if (!l)
        return NAN;
    return (double)l->n * l->sum_w2 / (l->sum_w * l->sum_w);
}

size_t qes_lockin_memory_bytes(const struct qes_lockin *l)
{
    return l ? l->bytes : 0;
}

void qes_lockin_destroy(struct qes_lockin *l)
{
    if (!l)
        return;
    if (l->plan)
        fftw_destroy_plan(l->plan);
    fftw_free(l->fft_in);
    fftw_free(l->fft_out);
    fftw_free(l->tab);
    fftw_free(l->rot_lo);
    fftw_free(l->work);
    fftw_free(l->w);
    free(l);
}

/*
 * Reference twin: window value and reference phase recomputed for every
 * sample from their definitions, the phase from the absolute run index
 * (b m) mod n in integers, so no theta0 rotation is needed; long double sums.
 * Rect and Hann are evaluated in long double from their formulas; any other
 * window kind takes its double values from qes_window_fill (the window
 * itself is tested in test_window), so this twin allocates n doubles then.
 */
int qes_lockin_reference(const struct qes_lockin_desc *desc, const double *block,
                         uint64_t sample_start, struct qes_phasor *out)
{
    uint64_t bins[QES_LOCKIN_MAX_HARMONICS];
    int rc = check_desc(desc, bins);
    if (rc)
        return rc;
    if (!block || !out)
        return QES_EINVAL;
    const uint64_t n = desc->n;
    double *wt = NULL;
    if (desc->window != QES_WINDOW_RECT && desc->window != QES_WINDOW_HANN) {
        if (n > SIZE_MAX / sizeof(double))
            return QES_ENOMEM;
        wt = malloc((size_t)n * sizeof *wt);
        if (!wt)
            return QES_ENOMEM;
        qes_window_fill_ex(desc->window, lockin_beta(desc), (size_t)n, wt);
    }
    const uint64_t m0 = sample_start % n;
    for (size_t k = 0; k < desc->n_harmonics; k++) {
        long double re = 0.0L, im = 0.0L, sw = 0.0L;
        for (uint64_t i = 0; i < n; i++) {
            long double w = 1.0L;
            if (desc->window == QES_WINDOW_HANN)
                w = 0.5L - 0.5L * cosl(qes__two_pi_l * (long double)i / (long double)n);
            else if (wt)
                w = wt[i];
            uint64_t m = m0 + i; /* < 2 n: the run index mod n, up to one n */
            if (m >= n)
                m -= n;
            const long double a =
                    qes__two_pi_l * (long double)qes_mulmod_u64(bins[k], m, n) / (long double)n;
            re += w * block[i] * cosl(a);
            im -= w * block[i] * sinl(a);
            sw += w;
        }
        const long double scale = sqrtl(2.0L) / sw;
        out[k].x = (double)(scale * re);
        out[k].y = (double)(scale * im);
    }
    free(wt);
    return 0;
}
