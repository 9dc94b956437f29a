/*
 * Per-block THD, SINAD, SNR, SFDR and clipping count (see quality.h).
 */
#include "dsp/quality.h"

#include "common/err.h"

#include <fftw3.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

enum {
    BIN_NOISE = 0,
    BIN_DC = 1,
    BIN_FUND = 2,
    BIN_HARM = 3,
    BIN_NYQUIST = 4,
};

struct qes_quality {
    size_t n;
    double fs_hz;
    unsigned max_harmonic;
    unsigned tone_bins;
    double full_scale;
    double sum_w; /* coherent gain times n */
    double enbw;  /* bins */
    double *w;
    double *fft_in;
    fftw_complex *fft_out;
    fftw_plan plan;
    double *power;       /* n/2 + 1 one-sided bin powers */
    unsigned char *kind; /* n/2 + 1 bin classes (BIN_*) */
    double *scratch;     /* n/2 + 1, for the median */
};

int qes_quality_create(const struct qes_quality_desc *desc, struct qes_quality **out)
{
    if (!out)
        return QES_EINVAL;
    *out = NULL;
    if (!desc)
        return QES_EINVAL;
    if (desc->n < 16 || desc->n > (size_t)INT_MAX)
        return QES_EINVAL;
    if (!(desc->fs_hz > 0.0) || isinf(desc->fs_hz))
        return QES_EINVAL;
    if (!qes_window_name(desc->window))
        return QES_EINVAL;
    const double beta =
            desc->kaiser_beta == 0.0 ? QES_WINDOW_KAISER_BETA_DEFAULT : desc->kaiser_beta;
    if (desc->window == QES_WINDOW_KAISER && !(beta > 0.0 && beta <= QES_WINDOW_KAISER_BETA_MAX))
        return QES_EINVAL;
    const unsigned hmax = desc->max_harmonic ? desc->max_harmonic : QES_QUALITY_HARMONIC_DEFAULT;
    if (hmax < 2 || hmax > QES_QUALITY_HARMONIC_MAX)
        return QES_EINVAL;
    if (desc->tone_bins > QES_QUALITY_TONE_BINS_MAX)
        return QES_EINVAL;
    if (!(desc->full_scale >= 0.0) || isinf(desc->full_scale))
        return QES_EINVAL;

    struct qes_quality *q = calloc(1, sizeof *q);
    if (!q)
        return QES_ENOMEM;
    const size_t n = desc->n, nb = n / 2 + 1;
    q->n = n;
    q->fs_hz = desc->fs_hz;
    q->max_harmonic = hmax;
    q->tone_bins = desc->tone_bins ? desc->tone_bins
                                   : (unsigned)ceil(qes_window_mainlobe_bins(desc->window, beta));
    q->full_scale = desc->full_scale;
    q->w = fftw_malloc(n * sizeof(double));
    q->fft_in = fftw_malloc(n * sizeof(double));
    q->fft_out = fftw_malloc(nb * sizeof(fftw_complex));
    q->power = malloc(nb * sizeof(double));
    q->kind = malloc(nb);
    q->scratch = malloc(nb * sizeof(double));
    if (!q->w || !q->fft_in || !q->fft_out || !q->power || !q->kind || !q->scratch)
        goto err_free;
    qes_window_fill_ex(desc->window, beta, n, q->w);
    long double sw = 0.0L, sw2 = 0.0L;
    for (size_t i = 0; i < n; i++) {
        sw += q->w[i];
        sw2 += (long double)q->w[i] * q->w[i];
    }
    q->sum_w = (double)sw;
    q->enbw = (double)(n * sw2 / (sw * sw));
    /* FFTW_ESTIMATE: the same plan, hence the same bits, on every run. */
    q->plan = fftw_plan_dft_r2c_1d((int)n, q->fft_in, q->fft_out, FFTW_ESTIMATE);
    if (!q->plan)
        goto err_free;
    *out = q;
    return 0;

err_free:
    qes_quality_destroy(q);
    return QES_ENOMEM;
}

void qes_quality_destroy(struct qes_quality *q)
{
    if (!q)
        return;
    if (q->plan)
        fftw_destroy_plan(q->plan);
    fftw_free(q->fft_out);
    fftw_free(q->fft_in);
    fftw_free(q->w);
    free(q->power);
    free(q->kind);
    free(q->scratch);
    free(q);
}

unsigned qes_quality_tone_bins(const struct qes_quality *q)
{
    return q ? q->tone_bins : 0;
}

size_t qes_quality_count_clipped(const double *x, size_t n, size_t stride, double full_scale)
{
    if (!x || stride < 1 || !(full_scale > 0.0))
        return 0;
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += fabs(x[i * stride]) >= full_scale;
    return c;
}

/*
 * k-th smallest of a[0..m-1] (0-based, m >= 1), reordering a: Hoare's
 * selection with the middle element as pivot (after each partition
 * a[lo..j] <= pivot <= a[j+1..hi] with lo <= j < hi, so the range shrinks).
 */
static double select_kth(double *a, size_t m, size_t k)
{
    long lo = 0, hi = (long)m - 1;
    const long kk = (long)k;
    while (lo < hi) {
        const double pivot = a[lo + (hi - lo) / 2];
        long i = lo - 1, j = hi + 1;
        for (;;) {
            do
                i++;
            while (a[i] < pivot);
            do
                j--;
            while (a[j] > pivot);
            if (i >= j)
                break;
            const double t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        if (kk <= j)
            hi = j;
        else
            lo = j + 1;
    }
    return a[kk];
}

/* Mark bins |b - centre| <= half (inside [lo_bin, hi_bin]) as cls; return
 * the sum of their power and count them in *cnt. */
static double group(struct qes_quality *q, double centre, double half, size_t lo_bin, size_t hi_bin,
                    unsigned char cls, size_t *cnt)
{
    double a = ceil(centre - half), b = floor(centre + half);
    if (a < (double)lo_bin)
        a = (double)lo_bin;
    if (b > (double)hi_bin)
        b = (double)hi_bin;
    double s = 0.0;
    size_t c = 0;
    for (double f = a; f <= b; f += 1.0) {
        const size_t i = (size_t)f;
        q->kind[i] = cls;
        s += q->power[i];
        c++;
    }
    *cnt = c;
    return s;
}

static void window_mul(double *restrict out, const double *restrict w, const double *restrict x,
                       size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = w[i] * x[i];
}

int qes_quality_execute(struct qes_quality *q, const double *x, double fund_hz,
                        struct qes_quality_result *out)
{
    if (!q || !x || !out || !(fund_hz > 0.0) || isinf(fund_hz))
        return QES_EINVAL;
    const size_t n = q->n;
    const double half_n = 0.5 * (double)n;
    const double L = (double)q->tone_bins;
    const double lambda = fund_hz * (double)n / q->fs_hz;
    if (!(lambda > 2.0 * L) || !(lambda + L < half_n))
        return QES_ERANGE;
    const size_t nyq = n / 2;        /* last r2c bin; Nyquist itself when n is even */
    const size_t last = (n - 1) / 2; /* last bin strictly below Nyquist */

    window_mul(q->fft_in, q->w, x, n);
    fftw_execute(q->plan);
    const double g = 1.0 / (q->sum_w * q->sum_w);
    for (size_t b = 0; b <= nyq; b++) {
        const double m2 = q->fft_out[b][0] * q->fft_out[b][0] + q->fft_out[b][1] * q->fft_out[b][1];
        /* One-sided: DC and Nyquist have no mirror bin. */
        q->power[b] = (b == 0 || 2 * b == n ? 1.0 : 2.0) * g * m2;
        q->kind[b] = BIN_NOISE;
    }
    if (nyq > last)
        q->kind[nyq] = BIN_NYQUIST;

    size_t cnt;
    group(q, 0.0, L, 0, nyq, BIN_DC, &cnt);
    size_t fund_cnt;
    const double fund_sum = group(q, lambda, L, 0, nyq, BIN_FUND, &fund_cnt);
    unsigned hused = 1;
    double harm_sum[QES_QUALITY_HARMONIC_MAX + 1];
    size_t harm_cnt[QES_QUALITY_HARMONIC_MAX + 1];
    for (unsigned h = 2; h <= q->max_harmonic; h++) {
        const double c = (double)h * lambda;
        if (!(c + L < half_n))
            break;
        harm_sum[h] = group(q, c, L, 0, nyq, BIN_HARM, &harm_cnt[h]);
        hused = h;
    }

    /*
     * Noise bins: strictly between DC and Nyquist, in no group.  NAD bins:
     * every bin outside the DC and fundamental groups (harmonics, spurs and
     * noise as measured), Nyquist included.  In bin-equivalents the band is
     * n/2 wide (DC and Nyquist count one half each: no mirror bin).
     */
    size_t m = 0;
    double noise_sum = 0.0, nad_sum = 0.0, nad_eq = 0.0;
    for (size_t b = 1; b <= nyq; b++) {
        const unsigned char k = q->kind[b];
        if (k == BIN_NOISE) {
            q->scratch[m++] = q->power[b];
            noise_sum += q->power[b];
        }
        if (k != BIN_DC && k != BIN_FUND) {
            nad_sum += q->power[b];
            nad_eq += k == BIN_NYQUIST ? 0.5 : 1.0;
        }
    }
    if (m == 0)
        return QES_ERANGE;
    /* A non-finite sample spreads NaN or inf over the spectrum. */
    if (!isfinite(nad_sum) || !isfinite(fund_sum))
        return QES_ERANGE;
    /* The median of an exponential distribution is ln 2 times its mean. */
    const double p0 = select_kth(q->scratch, m, (m - 1) / 2) / log(2.0);

    const double enbw = q->enbw;
    const double p1 = fmax(fund_sum - (double)fund_cnt * p0, 0.0) / enbw;
    double ph = 0.0;
    for (unsigned h = 2; h <= hused; h++)
        ph += fmax(harm_sum[h] - (double)harm_cnt[h] * p0, 0.0) / enbw;
    /* The noise floor extends under the bins not measured as noise. */
    const double noise = (noise_sum + p0 * (half_n - (double)m)) / enbw;
    const double nad = (nad_sum + p0 * (half_n - nad_eq)) / enbw;

    /* Largest spur: the largest bin outside the DC and fundamental groups. */
    size_t spur = 0;
    double spur_max = -1.0;
    for (size_t b = 1; b <= nyq; b++) {
        if (q->kind[b] != BIN_DC && q->kind[b] != BIN_FUND && q->power[b] > spur_max) {
            spur_max = q->power[b];
            spur = b;
        }
    }
    double spur_pow = 0.0;
    {
        const size_t l = q->tone_bins;
        const size_t a = spur > l ? spur - l : 0;
        const size_t b = spur + l < nyq ? spur + l : nyq;
        for (size_t i = a; i <= b; i++) {
            if (q->kind[i] != BIN_DC && q->kind[i] != BIN_FUND)
                spur_pow += q->power[i];
        }
        spur_pow /= enbw;
    }

    out->fund_hz = fund_hz;
    out->fund_rms = sqrt(p1);
    out->noise_rms = sqrt(noise);
    out->thd = sqrt(ph / p1);
    out->thd_db = 20.0 * log10(out->thd);
    out->sinad_db = 10.0 * log10(p1 / nad);
    out->snr_db = 10.0 * log10(p1 / noise);
    out->sfdr_db = 10.0 * log10(p1 / spur_pow);
    out->spur_hz = (double)spur * q->fs_hz / (double)n;
    out->harmonics = hused;
    out->clipped = q->full_scale > 0.0 ? qes_quality_count_clipped(x, n, 1, q->full_scale) : 0;
    return 0;
}
