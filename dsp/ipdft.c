/*
 * Interpolated DFT with the periodic Hann window (see ipdft.h).
 */
#include "dsp/ipdft.h"

#include "common/err.h"

#include <fftw3.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

static const double qes__pi = 3.1415926535897932384626433832795;

struct qes_ipdft {
    size_t n;
    double fs_hz;
    unsigned points;
    unsigned passes; /* image removal passes, 0 for QES_IPDFT_IMAGE_KEEP */
    double *w;
    double *fft_in;
    fftw_complex *fft_out;
    fftw_plan plan;
};

/* sin(pi x), exact at integers: reduced to |x - m| <= 1/2 first (x - m is
 * exact), so near an integer the result keeps its relative accuracy. */
static double sin_pi(double x)
{
    const double m = nearbyint(x);
    const double s = sin(qes__pi * (x - m));
    return fmod(m, 2.0) == 0.0 ? s : -s;
}

/*
 * P(x) = sum_{i<n} e^{-j 2 pi x i / n} = e^{-j pi x (n-1)/n} sin(pi x) / sin(pi x / n),
 * n at x = 0.
 */
static void dirichlet(size_t n, double x, double *re, double *im)
{
    const double dn = (double)n;
    const double den = sin(qes__pi * x / dn);
    const double d = den == 0.0 ? dn : sin_pi(x) / den;
    const double a = qes__pi * (x - x / dn);
    *re = d * cos(a);
    *im = -d * sin(a);
}

void qes_ipdft_hann_kernel(size_t n, double nu, double *re, double *im)
{
    /* w[i] = 0.5 - 0.25 e^{j 2 pi i/n} - 0.25 e^{-j 2 pi i/n} */
    double r0, i0, rm, im_, rp, ip;
    dirichlet(n, nu, &r0, &i0);
    dirichlet(n, nu - 1.0, &rm, &im_);
    dirichlet(n, nu + 1.0, &rp, &ip);
    *re = 0.5 * r0 - 0.25 * (rm + rp);
    *im = 0.5 * i0 - 0.25 * (im_ + ip);
}

static double kernel_abs(size_t n, double nu)
{
    double re, im;
    qes_ipdft_hann_kernel(n, nu, &re, &im);
    return hypot(re, im);
}

int qes_ipdft_create(const struct qes_ipdft_desc *desc, struct qes_ipdft **out)
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
    const unsigned points = desc->points ? desc->points : QES_IPDFT_POINTS_DEFAULT;
    if (points != 2 && points != 3)
        return QES_EINVAL;
    if (desc->image != QES_IPDFT_IMAGE_REMOVE && desc->image != QES_IPDFT_IMAGE_KEEP)
        return QES_EINVAL;
    if (desc->image_passes > QES_IPDFT_PASSES_MAX)
        return QES_EINVAL;
    if (desc->window != QES_WINDOW_HANN)
        return QES_EUNSUPPORTED;

    struct qes_ipdft *p = calloc(1, sizeof *p);
    if (!p)
        return QES_ENOMEM;
    const size_t n = desc->n;
    p->n = n;
    p->fs_hz = desc->fs_hz;
    p->points = points;
    if (desc->image == QES_IPDFT_IMAGE_REMOVE)
        p->passes = desc->image_passes ? desc->image_passes : QES_IPDFT_PASSES_DEFAULT;
    p->w = fftw_malloc(n * sizeof(double));
    p->fft_in = fftw_malloc(n * sizeof(double));
    p->fft_out = fftw_malloc((n / 2 + 1) * sizeof(fftw_complex));
    if (!p->w || !p->fft_in || !p->fft_out)
        goto err_free;
    qes_window_fill(QES_WINDOW_HANN, n, p->w);
    /* FFTW_ESTIMATE: the same plan, hence the same bits, on every run. */
    p->plan = fftw_plan_dft_r2c_1d((int)n, p->fft_in, p->fft_out, FFTW_ESTIMATE);
    if (!p->plan)
        goto err_free;
    *out = p;
    return 0;

err_free:
    qes_ipdft_destroy(p);
    return QES_ENOMEM;
}

void qes_ipdft_destroy(struct qes_ipdft *p)
{
    if (!p)
        return;
    if (p->plan)
        fftw_destroy_plan(p->plan);
    fftw_free(p->fft_out);
    fftw_free(p->fft_in);
    fftw_free(p->w);
    free(p);
}

/*
 * The closed-form delta from the magnitudes a[0..2] of bins k-1, k, k+1.
 * 2 points: *side gets the neighbour used (+1 or -1) when it is < 0 on entry,
 * and is kept otherwise (the model is evaluated on the measured side).
 */
static double delta_of(unsigned points, const double a[3], int *side)
{
    if (points == 3)
        return 2.0 * (a[2] - a[0]) / (a[0] + 2.0 * a[1] + a[2]);
    if (*side == 0)
        *side = a[2] >= a[0] ? 1 : -1;
    const double alpha = (*side > 0 ? a[2] : a[0]) / a[1];
    const double d = (2.0 * alpha - 1.0) / (alpha + 1.0);
    return *side > 0 ? d : -d;
}

struct estimate {
    double delta, amp, phase;
};

/*
 * One estimate from the (image-corrected) bins c[0..2] = X[k-1], X[k], X[k+1].
 * The closed form is exact for the large-n kernel; its finite-n error is
 * O((pi/n)^4).  The same closed form applied to the exact kernel's
 * magnitudes, F(delta), is delta + O((pi/n)^4) with F' = 1 + O((pi/n)^4), so
 * the fixed-point step delta <- delta - (F(delta) - measured) converges by a
 * factor O((pi/n)^4) per step: two steps reach rounding for n >= 16.
 */
static struct estimate estimate(size_t n, unsigned points, double c[3][2])
{
    double a[3];
    for (int m = 0; m < 3; m++)
        a[m] = hypot(c[m][0], c[m][1]);
    int side = 0;
    const double meas = delta_of(points, a, &side);
    double d = meas;
    double ka[3];
    for (int it = 0; it < 2; it++) {
        for (int m = 0; m < 3; m++)
            ka[m] = kernel_abs(n, (double)(m - 1) - d);
        d -= delta_of(points, ka, &side) - meas;
    }
    for (int m = 0; m < 3; m++)
        ka[m] = kernel_abs(n, (double)(m - 1) - d);
    struct estimate e;
    e.delta = d;
    if (points == 3) {
        e.amp = 2.0 * (a[0] + 2.0 * a[1] + a[2]) / (ka[0] + 2.0 * ka[1] + ka[2]);
    } else {
        e.amp = 2.0 * a[1] / ka[1];
    }
    /* phi = arg(X[k] conj(W(-delta))) */
    double wr, wi;
    qes_ipdft_hann_kernel(n, -d, &wr, &wi);
    e.phase = atan2(c[1][1] * wr - c[1][0] * wi, c[1][0] * wr + c[1][1] * wi);
    if (e.phase == -qes__pi)
        e.phase = qes__pi;
    return e;
}

static void window_mul(double *restrict out, const double *restrict w, const double *restrict x,
                       size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = w[i] * x[i];
}

int qes_ipdft_execute(struct qes_ipdft *p, const double *x, size_t hint_bin,
                      struct qes_ipdft_result *out)
{
    if (!p || !x || !out)
        return QES_EINVAL;
    const size_t n = p->n;
    const size_t top = n / 2 - 1; /* highest bin used: strictly below Nyquist */
    if (hint_bin > top)
        return QES_ERANGE;
    window_mul(p->fft_in, p->w, x, n);
    fftw_execute(p->plan);
    fftw_complex *X = p->fft_out;

    size_t lo = 2, hi = top;
    if (hint_bin) {
        lo = hint_bin > 2 ? hint_bin - 1 : 2;
        hi = hint_bin + 1 < top ? hint_bin + 1 : top;
    }
    size_t k = lo;
    double best = X[lo][0] * X[lo][0] + X[lo][1] * X[lo][1];
    for (size_t b = lo + 1; b <= hi; b++) {
        const double e = X[b][0] * X[b][0] + X[b][1] * X[b][1];
        if (e > best) {
            best = e;
            k = b;
        }
    }
    /* !(best > 0) also catches NaN from a non-finite block. */
    if (!(best > 0.0) || isinf(best) || k < 3 || k + 1 > top)
        return QES_ERANGE;

    const double meas[3][2] = {
            {X[k - 1][0], X[k - 1][1]},
            {X[k][0], X[k][1]},
            {X[k + 1][0], X[k + 1][1]},
    };
    double c[3][2] = {
            {meas[0][0], meas[0][1]},
            {meas[1][0], meas[1][1]},
            {meas[2][0], meas[2][1]},
    };
    struct estimate e = estimate(n, p->points, c);
    for (unsigned pass = 0; pass < p->passes; pass++) {
        /*
         * The image term (A/2) e^{-j phi} W(m + lambda) in bin m, from the
         * current estimate, subtracted from the measured bins.
         */
        const double lambda = (double)k + e.delta;
        const double gr = 0.5 * e.amp * cos(e.phase), gi = -0.5 * e.amp * sin(e.phase);
        for (int m = 0; m < 3; m++) {
            double wr, wi;
            qes_ipdft_hann_kernel(n, (double)(k + (size_t)m - 1) + lambda, &wr, &wi);
            c[m][0] = meas[m][0] - (gr * wr - gi * wi);
            c[m][1] = meas[m][1] - (gr * wi + gi * wr);
        }
        e = estimate(n, p->points, c);
    }

    if (!isfinite(e.delta) || !isfinite(e.amp) || !isfinite(e.phase))
        return QES_ERANGE;
    out->peak_bin = k;
    out->delta_bins = e.delta;
    out->freq_bins = (double)k + e.delta;
    out->freq_hz = out->freq_bins * p->fs_hz / (double)n;
    out->r = e.amp / sqrt(2.0);
    out->phase_rad = e.phase;
    return 0;
}

int qes_ipdft_strongest_hz(struct qes_ipdft *p, const double *x, double *freq_hz)
{
    if (!freq_hz)
        return QES_EINVAL;
    struct qes_ipdft_result r;
    int rc = qes_ipdft_execute(p, x, 0, &r);
    if (rc)
        return rc;
    *freq_hz = r.freq_hz;
    return 0;
}
