/*
 * Block lock-in on coherent blocks (see lockin.h).
 *
 * Sign convention.  With theta_m = 2 pi b m / n the reference phase of run
 * sample m (b = h * periods the harmonic's bin) and the signal model
 * s[m] = sqrt(2) r cos(theta_m + phi), the demodulated sum over a coherent
 * block is sum_i w[i] s[start + i] e^{-j theta_{start+i}} = r/sqrt(2) sum(w)
 * e^{j phi}.  The fast paths demodulate against the block-local reference
 * e^{-j 2 pi b i / n}, which leaves a factor e^{j theta0} (theta0 = theta at
 * the block's first sample); they remove it by multiplying by e^{-j theta0}.
 * theta0 is computed from (b * sample_start) mod n in integers, so it is
 * exact for any run length.
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
    double *w;                               /* n window values */
    /* method FFT */
    double *fft_in;
    fftw_complex *fft_out;
    fftw_plan plan;
    /* method DFT: per harmonic, n values of w cos then n values of w sin */
    double *tab;
};

/*
 * Validate a desc and compute the bins.  The rules (window.h): every bin b
 * must keep its leakage lobe b-L..b+L clear of DC (b - L >= 1) and strictly
 * below Nyquist (b + L < n/2, tested as 2 (b + L) < n to cover odd n), and
 * two requested bins must be further apart than L, so that neither tone leaks
 * into the other's bin (for rect, L = 0: no duplicates).  Bins 2L apart share
 * a leakage bin but do not disturb each other's estimate.
 */
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
    const uint64_t leak = qes_window_leak_bins(d->window);
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
    if (n > SIZE_MAX / sizeof(double))
        return QES_ENOMEM;
    struct qes_lockin *l = calloc(1, sizeof *l);
    if (!l)
        return QES_ENOMEM;
    l->method = desc->method;
    l->window = desc->window;
    l->n = n;
    l->n_harmonics = desc->n_harmonics;
    memcpy(l->bins, bins, desc->n_harmonics * sizeof bins[0]);

    rc = QES_ENOMEM;
    l->w = fftw_malloc(n * sizeof(double));
    if (!l->w)
        goto err_free;
    qes_window_fill(desc->window, n, l->w);
    /* Long double sums: create is not hot, and the gain enters every value. */
    long double sw = 0.0L, sw2 = 0.0L;
    for (size_t i = 0; i < n; i++) {
        sw += l->w[i];
        sw2 += (long double)l->w[i] * l->w[i];
    }
    l->sum_w = (double)sw;
    l->sum_w2 = (double)sw2;
    l->scale = (double)(sqrtl(2.0L) / sw);

    if (desc->method == QES_LOCKIN_FFT) {
        l->fft_in = fftw_malloc(n * sizeof(double));
        l->fft_out = fftw_malloc((n / 2 + 1) * sizeof(fftw_complex));
        if (!l->fft_in || !l->fft_out)
            goto err_free;
        /* FFTW_ESTIMATE: the plan, hence every result bit, is the same on
         * every run (FFTW_MEASURE plans can differ and break replay). */
        l->plan = fftw_plan_dft_r2c_1d((int)n, l->fft_in, l->fft_out, FFTW_ESTIMATE);
        if (!l->plan)
            goto err_free;
    } else {
        const size_t nh = desc->n_harmonics;
        if (n > SIZE_MAX / sizeof(double) / 2 / nh)
            goto err_free;
        l->tab = fftw_malloc(2 * nh * n * sizeof(double));
        if (!l->tab)
            goto err_free;
        for (size_t k = 0; k < nh; k++) {
            double *c = l->tab + 2 * k * n;
            double *s = c + n;
            const uint64_t b = bins[k]; /* < n/2 */
            /* Phase index (b i) mod n advanced by addition: exact integers. */
            uint64_t ph = 0;
            for (size_t i = 0; i < n; i++) {
                const double a = bin_angle(ph, n);
                c[i] = l->w[i] * cos(a);
                s[i] = l->w[i] * sin(a);
                ph += b;
                if (ph >= n)
                    ph -= n;
            }
        }
    }
    *out = l;
    return 0;

err_free:
    qes_lockin_destroy(l);
    return rc;
}

/*
 * The hot path: two dot products sharing one read of the block.
 *
 * A single accumulator pair would make the loop wait on the latency of each
 * add (gcc keeps a plain double reduction as a serial chain; even vectorized
 * by the simd pragma, one vector add per 3-4 cycles).  The block is therefore
 * cut into four contiguous quarters summed side by side: eight independent
 * accumulators, each vectorized by `omp simd reduction` (needs
 * -fopenmp-simd; the pragma is ignored without it) over contiguous, restrict
 * qualified arrays.  The summation order is fixed by the compiled code, so
 * results are reproducible for a given build.  Rounding: each partial sum
 * carries its own n/4-term error; the total error is no worse than a single
 * sum's.
 */
static void dot2(const double *restrict x, const double *restrict c, const double *restrict s,
                 size_t n, double *rc, double *rs)
{
    const size_t q = n / 4;
    const double *restrict x0 = x, *restrict x1 = x + q, *restrict x2 = x + 2 * q,
                           *restrict x3 = x + 3 * q;
    const double *restrict c0 = c, *restrict c1 = c + q, *restrict c2 = c + 2 * q,
                           *restrict c3 = c + 3 * q;
    const double *restrict s0 = s, *restrict s1 = s + q, *restrict s2 = s + 2 * q,
                           *restrict s3 = s + 3 * q;
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    double b0 = 0.0, b1 = 0.0, b2 = 0.0, b3 = 0.0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3)
    for (size_t i = 0; i < q; i++) {
        a0 += x0[i] * c0[i];
        a1 += x1[i] * c1[i];
        a2 += x2[i] * c2[i];
        a3 += x3[i] * c3[i];
        b0 += x0[i] * s0[i];
        b1 += x1[i] * s1[i];
        b2 += x2[i] * s2[i];
        b3 += x3[i] * s3[i];
    }
    for (size_t i = 4 * q; i < n; i++) {
        a3 += x[i] * c[i];
        b3 += x[i] * s[i];
    }
    *rc = (a0 + a1) + (a2 + a3);
    *rs = (b0 + b1) + (b2 + b3);
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
        if (l->window == QES_WINDOW_RECT) {
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
        for (size_t k = 0; k < l->n_harmonics; k++) {
            const double *c = l->tab + 2 * k * n;
            double sc, ss;
            dot2(block, c, c + n, n, &sc, &ss);
            /* X = sum x (cos - j sin) */
            out[k] = finish(l->scale, sc, -ss, l->bins[k], n, sample_start);
        }
    }
    return 0;
}

double qes_lockin_enbw_bins(const struct qes_lockin *l)
{
    if (!l)
        return NAN;
    return (double)l->n * l->sum_w2 / (l->sum_w * l->sum_w);
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
    fftw_free(l->w);
    free(l);
}

/*
 * Reference twin: window value and reference phase recomputed for every
 * sample from their definitions, the phase from the absolute run index
 * (b m) mod n in integers, so no theta0 rotation is needed; long double sums.
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
    const uint64_t m0 = sample_start % n;
    for (size_t k = 0; k < desc->n_harmonics; k++) {
        long double re = 0.0L, im = 0.0L, sw = 0.0L;
        for (uint64_t i = 0; i < n; i++) {
            long double w = 1.0L;
            if (desc->window == QES_WINDOW_HANN)
                w = 0.5L - 0.5L * cosl(qes__two_pi_l * (long double)i / (long double)n);
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
    return 0;
}
