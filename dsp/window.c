/*
 * Periodic windows and their figures of merit (see window.h).
 */
#include "dsp/window.h"

#include "common/err.h"

#include <fftw3.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static const double qes__two_pi = 6.283185307179586476925286766559;
static const double qes__pi = 3.1415926535897932384626433832795;

/* Cosine-sum windows: w[i] = sum_k a[k] cos(2 pi k i / n). */
struct cosine_sum {
    unsigned terms;
    double a[11];
};

static const struct cosine_sum cs_rect = {1, {1.0}};
static const struct cosine_sum cs_hann = {2, {0.5, -0.5}};
/* Harris 1978, 4-term Blackman-Harris with -92 dB sidelobes. */
static const struct cosine_sum cs_bh4 = {4, {0.35875, -0.48829, 0.14128, -0.01168}};
/* Heinzel, Ruediger, Schilling 2002, HFT248D (signs alternate: the published
 * form is 1 - c1 cos z + c2 cos 2z - ...). */
static const struct cosine_sum cs_hft248d = {
        11,
        {1.0, -1.985844164102, 1.791176438506, -1.282075284005, 0.667777530266, -0.240160796576,
         0.056656381764, -0.008134974479, 0.000624544650, -0.000019808998, 0.000000132974}};

static const struct cosine_sum *cosine_sum_of(enum qes_window_kind kind)
{
    switch (kind) {
    case QES_WINDOW_RECT:
        return &cs_rect;
    case QES_WINDOW_HANN:
        return &cs_hann;
    case QES_WINDOW_BLACKMANHARRIS:
        return &cs_bh4;
    case QES_WINDOW_FLATTOP:
        return &cs_hft248d;
    case QES_WINDOW_KAISER:
        return NULL;
    }
    return NULL;
}

static const struct {
    const char *name;
    enum qes_window_kind kind;
} names[] = {
        {"rect", QES_WINDOW_RECT},
        {"hann", QES_WINDOW_HANN},
        {"blackmanharris", QES_WINDOW_BLACKMANHARRIS},
        {"flattop", QES_WINDOW_FLATTOP},
        {"kaiser", QES_WINDOW_KAISER},
};

int qes_window_from_name(const char *name, enum qes_window_kind *out)
{
    if (!name || !out)
        return QES_EINVAL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].kind;
            return 0;
        }
    }
    return QES_EINVAL;
}

const char *qes_window_name(enum qes_window_kind kind)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (names[i].kind == kind)
            return names[i].name;
    }
    return NULL;
}

static int beta_ok(double beta)
{
    return beta >= 0.0 && beta <= QES_WINDOW_KAISER_BETA_MAX; /* false for NaN */
}

/*
 * I0(x) = sum_k ((x/2)^k / k!)^2.  Every term is positive, so the long double
 * sum has a relative error of a few 2^-64 (no cancellation); it stops when a
 * term no longer changes the sum.  For x <= 50 that is at most ~90 terms.
 */
static long double bessel_i0l(double x)
{
    const long double q = 0.25L * (long double)x * (long double)x;
    long double term = 1.0L, sum = 1.0L;
    for (unsigned k = 1; k < 1000; k++) {
        term *= q / ((long double)k * (long double)k);
        if (sum + term == sum)
            break;
        sum += term;
    }
    return sum;
}

int qes_window_fill_ex(enum qes_window_kind kind, double beta, size_t n, double *w)
{
    if (!w || n < 1)
        return QES_EINVAL;
    if (kind == QES_WINDOW_KAISER) {
        if (!beta_ok(beta))
            return QES_EINVAL;
        /*
         * sqrt(1 - (2 i / n - 1)^2) = 2 sqrt(i (n - i)) / n: the product is
         * symmetric in i and n - i, so the window is symmetric bit for bit,
         * and it is exactly 1 at i = n/2.
         */
        const long double i0b = bessel_i0l(beta);
        for (size_t i = 0; i < n; i++) {
            const double r = 2.0 * sqrt((double)i * (double)(n - i)) / (double)n;
            w[i] = (double)(bessel_i0l(beta * r) / i0b);
        }
        return 0;
    }
    const struct cosine_sum *cs = cosine_sum_of(kind);
    if (!cs)
        return QES_EINVAL;
    /*
     * Each angle 2 pi ((k i) mod n) / n is reduced in integers, then folded to
     * [0, pi] (cos is even) before rounding: its error stays <= 1 ulp of pi,
     * and the window is symmetric, w[i] == w[n - i], bit for bit.  For Hann
     * this is 0.5 - 0.5 cos(2 pi min(i, n - i) / n), the same bits as before.
     */
    for (size_t i = 0; i < n; i++) {
        double v = cs->a[0];
        for (unsigned k = 1; k < cs->terms; k++) {
            const uint64_t m = ((uint64_t)k * (uint64_t)i) % (uint64_t)n;
            const uint64_t f = 2 * m <= n ? m : n - m;
            v += cs->a[k] * cos(qes__two_pi * (double)f / (double)n);
        }
        w[i] = v;
    }
    return 0;
}

int qes_window_fill(enum qes_window_kind kind, size_t n, double *w)
{
    return qes_window_fill_ex(kind, QES_WINDOW_KAISER_BETA_DEFAULT, n, w);
}

double qes_window_mainlobe_bins(enum qes_window_kind kind, double beta)
{
    if (kind == QES_WINDOW_KAISER) {
        if (!beta_ok(beta))
            return NAN;
        /* The Kaiser transform is ~ sin(sqrt((pi f)^2 - beta^2)) / sqrt(...):
         * first zero where sqrt((pi f)^2 - beta^2) = pi. */
        const double a = beta / qes__pi;
        return sqrt(1.0 + a * a);
    }
    const struct cosine_sum *cs = cosine_sum_of(kind);
    /* A K-term cosine sum is a sum of Dirichlet kernels centred on bins
     * -(K-1)..K-1, each zero on every other integer bin. */
    return cs ? (double)cs->terms : NAN;
}

unsigned qes_window_leak_bins_ex(enum qes_window_kind kind, double beta)
{
    if (kind == QES_WINDOW_KAISER) {
        if (!beta_ok(beta))
            return 0;
        return (unsigned)ceil(qes_window_mainlobe_bins(kind, beta));
    }
    const struct cosine_sum *cs = cosine_sum_of(kind);
    return cs ? cs->terms - 1 : 0;
}

unsigned qes_window_leak_bins(enum qes_window_kind kind)
{
    return qes_window_leak_bins_ex(kind, QES_WINDOW_KAISER_BETA_DEFAULT);
}

/*
 * |W(f)| = |sum_i w[i] e^{-j 2 pi f i / n}| by direct summation.  The phase
 * f i / n is formed in long double and reduced to [0, 1) cycles before the
 * double cos/sin, so its error is ~2^-64 (n/2) cycles even at f = n/2.
 */
static double dtft_abs(const double *w, size_t n, double f)
{
    const long double step = (long double)f / (long double)n;
    long double re = 0.0L, im = 0.0L;
    for (size_t i = 0; i < n; i++) {
        long double t = step * (long double)i;
        t -= floorl(t);
        const double a = qes__two_pi * (double)t;
        re += w[i] * cos(a);
        im -= w[i] * sin(a);
    }
    return (double)sqrtl(re * re + im * im);
}

/*
 * Golden-section search on [a, b] for the minimum (sign = +1) or maximum
 * (sign = -1) of |W(f)|, which must be unimodal there.  40 steps shrink a
 * 1/4-bin bracket to ~1e-9 bin.  Returns the abscissa; *val gets |W| there.
 */
static double golden(const double *w, size_t n, double a, double b, double sign, double *val)
{
    const double g = 0.6180339887498949;
    double c = b - g * (b - a), d = a + g * (b - a);
    double fc = sign * dtft_abs(w, n, c), fd = sign * dtft_abs(w, n, d);
    for (int it = 0; it < 40; it++) {
        if (fc < fd) {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = sign * dtft_abs(w, n, c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = sign * dtft_abs(w, n, d);
        }
    }
    const double x = 0.5 * (a + b);
    if (val)
        *val = dtft_abs(w, n, x);
    return x;
}

#define QES__FIG_OS         8     /* DTFT grid points per bin (at least) */
#define QES__FIG_REFINE     0.708 /* refine grid maxima within 3 dB of the best */
#define QES__FIG_MAX_REFINE 64    /* at most this many (bounds the cost) */

/*
 * Is grid point p (0 < p <= half) a maximum of mag?  If so, *peak and *f
 * (in grid units) get its parabolic interpolation.  The spectrum is even
 * about n/2, so a maximum at p == half needs no fit.
 */
static int grid_peak(const double *mag, size_t half, size_t p, double *peak, double *f)
{
    if (p == half) {
        if (!(mag[p] > mag[p - 1]))
            return 0;
        *peak = mag[p];
        *f = (double)p;
        return 1;
    }
    if (!(mag[p] >= mag[p - 1] && mag[p] > mag[p + 1]))
        return 0;
    const double ym = mag[p - 1], y0 = mag[p], yp = mag[p + 1];
    const double den = ym - 2.0 * y0 + yp; /* < 0 at a strict maximum */
    const double off = den < 0.0 ? 0.5 * (ym - yp) / den : 0.0;
    *peak = y0 - 0.25 * (ym - yp) * off;
    *f = (double)p + off;
    return 1;
}

int qes_window_figures(enum qes_window_kind kind, double beta, size_t n, double fs_hz,
                       struct qes_window_figures *out)
{
    if (!out || n < 4 || !(fs_hz >= 0.0) || isinf(fs_hz))
        return QES_EINVAL;
    if (!qes_window_name(kind) || (kind == QES_WINDOW_KAISER && !beta_ok(beta)))
        return QES_EINVAL;
    /*
     * Grid density.  Cosine sums have lobes about one bin wide: 8 points per
     * bin.  Kaiser's lobes next to the main lobe are narrower: its zeros sit
     * at sqrt(m^2 + a^2), a = beta/pi, so the first sidelobe is
     * sqrt(4 + a^2) - sqrt(1 + a^2) wide (0.09 bin at beta = 50); the grid
     * keeps at least 4 points in it, or the walk to the first null could step
     * over that lobe and take the second zero for the first.
     */
    size_t os = QES__FIG_OS;
    if (kind == QES_WINDOW_KAISER) {
        const double a = beta / qes__pi;
        const double need = ceil(4.0 / (sqrt(4.0 + a * a) - sqrt(1.0 + a * a)));
        if (need > (double)os)
            os = (size_t)need;
    }
    if (n > QES_WINDOW_FIGURES_MAX_GRID / os)
        return QES_ERANGE;

    const size_t m = os * n; /* grid length, <= 2^23: fits an int */
    const size_t half = m / 2;
    int rc = QES_ENOMEM;
    double *w = fftw_malloc(n * sizeof *w);
    /* In-place r2c: m + 2 doubles hold the m/2 + 1 complex outputs. */
    double *buf = fftw_malloc((m + 2) * sizeof *buf);
    fftw_plan plan = NULL;
    if (!w || !buf)
        goto err_free;
    plan = fftw_plan_dft_r2c_1d((int)m, buf, (fftw_complex *)(void *)buf, FFTW_ESTIMATE);
    if (!plan)
        goto err_free;
    qes_window_fill_ex(kind, beta, n, w);

    long double sw = 0.0L, sw2 = 0.0L;
    for (size_t i = 0; i < n; i++) {
        sw += w[i];
        sw2 += (long double)w[i] * w[i];
    }
    out->coherent_gain = (double)(sw / n);
    out->power_gain = (double)(sw2 / n);
    out->enbw_bins = (double)(n * sw2 / (sw * sw));
    out->enbw_hz = fs_hz > 0.0 ? out->enbw_bins * fs_hz / (double)n : NAN;

    memcpy(buf, w, n * sizeof *w);
    memset(buf + n, 0, (m + 2 - n) * sizeof *buf);
    fftw_execute(plan);
    /* Magnitudes in place: entry q is written after complex q (at 2q, 2q+1)
     * has been read, and q <= 2q. */
    for (size_t q = 0; q <= half; q++)
        buf[q] = hypot(buf[2 * q], buf[2 * q + 1]);
    const double *mag = buf;
    const double w0 = fabs((double)sw);

    /* Scalloping at 0.5 bin from the direct sum (no FFT rounding). */
    out->scalloping_db = 20.0 * log10(dtft_abs(w, n, 0.5) / w0);

    /*
     * First null: walk past the -6 dB point first (flat-tops rise slightly
     * above W(0) inside the main lobe, so a descent started at f = 0 could
     * stop at once), then down to the first grid minimum, then refine.
     */
    size_t q = 1;
    while (q < half && mag[q] >= 0.5 * w0)
        q++;
    while (q < half && mag[q + 1] < mag[q])
        q++;
    double null_bins;
    if (q >= half) {
        null_bins = (double)half / (double)os;
    } else {
        null_bins =
                golden(w, n, (double)(q - 1) / (double)os, (double)(q + 1) / (double)os, 1.0, NULL);
    }
    out->first_null_bins = null_bins;

    /*
     * Largest sidelobe.  Pass 1: the parabolic peak of every grid maximum
     * beyond the null.  A parabola through three points a grid step apart can be
     * off by tenths of a dB on a narrow lobe next to a zero (Kaiser's first
     * sidelobe is 0.44 bin wide), so pass 2 refines every maximum whose
     * parabolic peak is within 3 dB of the best one by a golden-section search
     * on the direct DTFT, inside the two grid steps around it (the lobe's
     * peak lies there, as both grid neighbours are lower).
     */
    double best_par = 0.0;
    for (size_t p = q + 1; p <= half; p++) {
        double peak, f;
        if (grid_peak(mag, half, p, &peak, &f) && peak > best_par)
            best_par = peak;
    }
    double best = -1.0, best_f = NAN;
    unsigned refined = 0;
    for (size_t p = q + 1; p <= half; p++) {
        double peak, f;
        if (!grid_peak(mag, half, p, &peak, &f))
            continue;
        if (peak >= QES__FIG_REFINE * best_par && p < half && refined < QES__FIG_MAX_REFINE) {
            refined++;
            f = (double)os * golden(w, n, (double)(p - 1) / (double)os,
                                    (double)(p + 1) / (double)os, -1.0, &peak);
        }
        if (peak > best) {
            best = peak;
            best_f = f / (double)os;
        }
    }
    if (best > 0.0 && null_bins < 0.5 * (double)n) {
        out->sidelobe_db = 20.0 * log10(best / w0);
        out->sidelobe_bins = best_f;
    } else {
        out->sidelobe_db = NAN;
        out->sidelobe_bins = NAN;
    }
    rc = 0;

err_free:
    if (plan)
        fftw_destroy_plan(plan);
    fftw_free(buf);
    fftw_free(w);
    return rc;
}
