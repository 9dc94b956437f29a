/*
 * Allan family, EDF, chi-squared intervals, noise identification and the
 * uncertainty of the mean for non-white noise (see allan.h).
 */
#include "dsp/allan.h"

#include "common/err.h"
#include "dsp/gum.h"
#include "dsp/stats.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const double qes__pi = 3.1415926535897932384626433832795;
static const double qes__ln2 = 0.69314718055994530941723212145818;

static const char *const kind_names[QES_ALLAN_NKIND] = {
        [QES_ALLAN_ADEV] = "ADEV",     [QES_ALLAN_OADEV] = "OADEV", [QES_ALLAN_MDEV] = "MDEV",
        [QES_ALLAN_TDEV] = "TDEV",     [QES_ALLAN_HDEV] = "HDEV",   [QES_ALLAN_OHDEV] = "OHDEV",
        [QES_ALLAN_TOTDEV] = "TOTDEV",
};

const char *qes_allan_kind_name(enum qes_allan_kind kind)
{
    if ((unsigned)kind >= QES_ALLAN_NKIND)
        return "?";
    return kind_names[kind];
}

/* Neumaier-compensated long double sum. */
struct ksum {
    long double s, c;
};

static void ksum_add(struct ksum *k, long double v)
{
    const long double t = k->s + v;
    if (fabsl(k->s) >= fabsl(v))
        k->c += (k->s - t) + v;
    else
        k->c += (v - t) + k->s;
    k->s = t;
}

static long double ksum_get(const struct ksum *k)
{
    return k->s + k->c;
}

int qes_allan_freq_to_phase(const double *y, size_t n_y, double tau0_s, double *x)
{
    if (!y || !x || !(tau0_s > 0.0) || !isfinite(tau0_s))
        return QES_EINVAL;
    struct ksum acc = {0, 0};
    x[0] = 0.0;
    for (size_t i = 0; i < n_y; i++) {
        ksum_add(&acc, (long double)y[i] * tau0_s);
        x[i + 1] = (double)ksum_get(&acc);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Deviations                                                                */

/* Doubly reflected phase x* of TOTDEV (SP 1065 p. 20), 0-based: for k < 0,
 * x*_k = 2 x_0 - x_{-k}; for k > N-1, x*_k = 2 x_{N-1} - x_{2(N-1)-k}. */
static long double xstar(const double *x, size_t n, long k)
{
    const long last = (long)n - 1;
    if (k < 0)
        return 2.0L * x[0] - x[-k];
    if (k > last)
        return 2.0L * x[last] - x[2 * last - k];
    return x[k];
}

int qes_allan_dev(enum qes_allan_kind kind, const double *x, size_t n_x, double tau0_s, size_t m,
                  double *dev, size_t *n_terms)
{
    if (!x || !dev || m == 0 || !(tau0_s > 0.0) || !isfinite(tau0_s) ||
        (unsigned)kind >= QES_ALLAN_NKIND)
        return QES_EINVAL;
    const size_t N = n_x;
    const long double tau = (long double)m * tau0_s;
    struct ksum acc = {0, 0};
    size_t terms = 0;
    long double var = 0.0L;

    switch (kind) {
    case QES_ALLAN_ADEV:
    case QES_ALLAN_OADEV: {
        if (N < 2 * m + 1)
            return QES_ERANGE;
        const size_t step = kind == QES_ALLAN_ADEV ? m : 1;
        for (size_t i = 0; i + 2 * m <= N - 1; i += step) {
            const long double d = (long double)x[i + 2 * m] - 2.0L * x[i + m] + x[i];
            ksum_add(&acc, d * d);
            terms++;
        }
        var = ksum_get(&acc) / (2.0L * tau * tau * terms);
        break;
    }
    case QES_ALLAN_HDEV:
    case QES_ALLAN_OHDEV: {
        if (N < 3 * m + 1)
            return QES_ERANGE;
        const size_t step = kind == QES_ALLAN_HDEV ? m : 1;
        for (size_t i = 0; i + 3 * m <= N - 1; i += step) {
            const long double d =
                    (long double)x[i + 3 * m] - 3.0L * x[i + 2 * m] + 3.0L * x[i + m] - x[i];
            ksum_add(&acc, d * d);
            terms++;
        }
        var = ksum_get(&acc) / (6.0L * tau * tau * terms);
        break;
    }
    case QES_ALLAN_MDEV:
    case QES_ALLAN_TDEV: {
        if (N < 3 * m)
            return QES_ERANGE;
        /* inner sum s_j = sum_{i=j}^{j+m-1} (x_{i+2m} - 2 x_{i+m} + x_i),
         * slid by one sample per step; re-summed from scratch every 1024
         * steps so that the rounding of the running update cannot drift */
        long double s = 0.0L;
        for (size_t j = 0; j + 3 * m <= N; j++) {
            if (j % 1024 == 0) {
                struct ksum in = {0, 0};
                for (size_t i = j; i < j + m; i++)
                    ksum_add(&in, (long double)x[i + 2 * m] - 2.0L * x[i + m] + x[i]);
                s = ksum_get(&in);
            } else {
                const size_t a = j - 1, b = j - 1 + m;
                s += ((long double)x[b + 2 * m] - 2.0L * x[b + m] + x[b]) -
                     ((long double)x[a + 2 * m] - 2.0L * x[a + m] + x[a]);
            }
            ksum_add(&acc, s * s);
            terms++;
        }
        var = ksum_get(&acc) / (2.0L * (long double)m * m * tau * tau * terms);
        if (kind == QES_ALLAN_TDEV)
            var *= tau * tau / 3.0L;
        break;
    }
    case QES_ALLAN_TOTDEV: {
        if (N < 3 || m > N - 1)
            return QES_ERANGE;
        for (long i = 1; i <= (long)N - 2; i++) {
            const long double d = xstar(x, N, i - (long)m) - 2.0L * x[i] + xstar(x, N, i + (long)m);
            ksum_add(&acc, d * d);
            terms++;
        }
        var = ksum_get(&acc) / (2.0L * tau * tau * (long double)(N - 2));
        break;
    }
    default:
        return QES_EINVAL;
    }
    *dev = (double)sqrtl(var);
    if (n_terms)
        *n_terms = terms;
    return 0;
}

size_t qes_allan_m_list(enum qes_allan_spacing spacing, size_t m_max, size_t *out, size_t cap)
{
    size_t k = 0;
#define QES__PUT(v)          \
    do {                     \
        if (out && k < cap)  \
            out[k] = (v);    \
        if (!out || k < cap) \
            k++;             \
    } while (0)
    switch (spacing) {
    case QES_ALLAN_ALL:
        for (size_t m = 1; m <= m_max; m++)
            QES__PUT(m);
        break;
    case QES_ALLAN_OCTAVE:
        for (size_t m = 1; m <= m_max && m != 0; m *= 2)
            QES__PUT(m);
        break;
    case QES_ALLAN_DECADE:
        for (size_t dec = 1; dec <= m_max && dec != 0; dec *= 10) {
            static const size_t mult[] = {1, 2, 4};
            for (size_t j = 0; j < 3; j++)
                if (dec * mult[j] <= m_max)
                    QES__PUT(dec * mult[j]);
            if (dec > SIZE_MAX / 10)
                break;
        }
        break;
    default:
        break;
    }
#undef QES__PUT
    return k;
}

size_t qes_allan_m_max(enum qes_allan_kind kind, size_t n_x)
{
    if (n_x < 2)
        return 0;
    if (kind == QES_ALLAN_TOTDEV)
        return n_x < 3 ? 0 : (n_x - 1) / 2;
    return (n_x - 1) / 4;
}

/* ------------------------------------------------------------------------ */
/* Chi-squared distribution                                                  */

/* ln(x^a e^-x / Gamma(a)) in long double: the exponent reaches 1e4-1e5 for
 * the EDFs of long series, and its rounding is the whole relative error. */
static long double gamma_log_prefactor(double a, double x)
{
    return (long double)a * logl(x) - (long double)x - lgammal(a);
}

/* P by its series, valid (fast) for x < a + 1. */
static double gamma_p_series(double a, double x)
{
    long double sum = 1.0L / a, term = sum, ap = a;
    for (int n = 0; n < 100000; n++) {
        ap += 1.0L;
        term *= (long double)x / ap;
        sum += term;
        if (fabsl(term) < fabsl(sum) * 1e-19L)
            break;
    }
    return (double)(sum * expl(gamma_log_prefactor(a, x)));
}

/* Q by its continued fraction (modified Lentz), valid for x >= a + 1. */
static double gamma_q_cf(double a, double x)
{
    const long double tiny = 1e-4000L;
    long double b = (long double)x + 1.0L - a, c = 1.0L / tiny, d = 1.0L / b, h = d;
    for (int i = 1; i < 100000; i++) {
        const long double an = -(long double)i * ((long double)i - a);
        b += 2.0L;
        d = an * d + b;
        if (fabsl(d) < tiny)
            d = tiny;
        c = b + an / c;
        if (fabsl(c) < tiny)
            c = tiny;
        d = 1.0L / d;
        const long double del = d * c;
        h *= del;
        if (fabsl(del - 1.0L) < 1e-19L)
            break;
    }
    return (double)(expl(gamma_log_prefactor(a, x)) * h);
}

double qes_gamma_p(double a, double x)
{
    if (!(a > 0.0) || !(x >= 0.0) || isinf(a))
        return NAN;
    if (x == 0.0)
        return 0.0;
    if (isinf(x))
        return 1.0;
    if (x < a + 1.0)
        return gamma_p_series(a, x);
    return 1.0 - gamma_q_cf(a, x);
}

double qes_gamma_q(double a, double x)
{
    if (!(a > 0.0) || !(x >= 0.0) || isinf(a))
        return NAN;
    if (x == 0.0)
        return 1.0;
    if (isinf(x))
        return 0.0;
    if (x < a + 1.0)
        return 1.0 - gamma_p_series(a, x);
    return gamma_q_cf(a, x);
}

double qes_chi2_cdf(double x, double nu)
{
    if (!(nu > 0.0) || isnan(x))
        return NAN;
    if (x <= 0.0)
        return 0.0;
    return qes_gamma_p(0.5 * nu, 0.5 * x);
}

/* P or Q, whichever is the small side of the target, and the pdf. */
static double chi2_side(double x, double nu, int upper)
{
    return upper ? qes_gamma_q(0.5 * nu, 0.5 * x) : qes_gamma_p(0.5 * nu, 0.5 * x);
}

double qes_chi2_quantile(double p, double nu)
{
    if (!(p > 0.0 && p < 1.0) || !(nu > 0.0) || isinf(nu))
        return NAN;
    const double a = 0.5 * nu;
    /* Solve on the side whose probability is small (relative accuracy):
     * lower: P(x) = p; upper: Q(x) = 1 - p (exact for p >= 1/2). */
    const int upper = p > 0.5;
    const double target = upper ? 1.0 - p : p;
    /* start: Wilson-Hilferty, or the small-x series for a tiny lower tail */
    const double z = qes_normal_quantile(p);
    const double c = 2.0 / (9.0 * nu);
    double x = nu * pow(1.0 - c + z * sqrt(c), 3.0);
    const double xs = 2.0 * exp((log(p) + lgamma(a + 1.0)) / a);
    if (!(x > 0.0) || (!upper && xs < 0.5 * nu))
        x = xs;
    if (!(x > 0.0) || !isfinite(x))
        x = nu;
    /* bracket: g(x) = lower ? P - p : (1 - p) - Q, increasing in x */
    double lo = 0.0, hi = x;
    for (int i = 0; i < 2000; i++) {
        const double g = upper ? target - chi2_side(hi, nu, 1) : chi2_side(hi, nu, 0) - target;
        if (g >= 0.0)
            break;
        lo = hi;
        hi *= 2.0;
    }
    for (int it = 0; it < 200; it++) {
        const double side = chi2_side(x, nu, upper);
        const double g = upper ? target - side : side - target;
        if (g == 0.0)
            return x;
        if (g < 0.0)
            lo = x;
        else
            hi = x;
        /* pdf of chi2_nu at x */
        const double lpdf =
                (double)((a - 1.0L) * logl(0.5L * x) - 0.5L * x - lgammal(a)) - qes__ln2;
        const double pdf = exp(lpdf);
        double xn = x - g / pdf;
        if (!(xn > lo && xn < hi) || !isfinite(xn))
            xn = 0.5 * (lo + hi);
        if (fabs(xn - x) <= 4.0 * DBL_EPSILON * x || hi - lo <= 4.0 * DBL_EPSILON * hi)
            return xn;
        x = xn;
    }
    return x;
}

int qes_allan_ci(double dev, double edf, double confidence, double *lo, double *hi)
{
    if (!lo || !hi || !(edf > 0.0) || !(confidence > 0.0 && confidence < 1.0) || !(dev >= 0.0))
        return QES_EINVAL;
    const double tail = 0.5 * (1.0 - confidence);
    const double c_hi = qes_chi2_quantile(1.0 - tail, edf);
    const double c_lo = qes_chi2_quantile(tail, edf);
    *lo = dev * sqrt(edf / c_hi);
    *hi = dev * sqrt(edf / c_lo);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Greenhall's EDF algorithm                                                 */

/* eq. (7): the generalized autocovariance kernel of the power law alpha */
static long double gh_sw(long double t, int alpha)
{
    const long double at = fabsl(t);
    switch (alpha) {
    case 2:
        return -at;
    case 1:
        return at == 0.0L ? 0.0L : t * t * logl(at);
    case 0:
        return at * at * at;
    case -1:
        return at == 0.0L ? 0.0L : t * t * t * t * logl(at);
    case -2:
        return at * at * at * at * at;
    case -3:
        return at == 0.0L ? 0.0L : t * t * t * t * t * t * logl(at);
    case -4:
        return at * at * at * at * at * at * at;
    default:
        return NAN;
    }
}

/* eq. (8); F <= 0 stands for F = infinity */
static long double gh_sx(long double t, long double F, int alpha)
{
    if (F <= 0.0L)
        return gh_sw(t, alpha + 2);
    return F * F *
           (2.0L * gh_sw(t, alpha) - gh_sw(t - 1.0L / F, alpha) - gh_sw(t + 1.0L / F, alpha));
}

/* eq. (9): d-th difference (binomial weights) */
static long double gh_sz(long double t, long double F, int alpha, int d)
{
    static const long double w[4][4] = {
            {0, 0, 0, 0}, {2, -1, 0, 0}, {6, -4, 1, 0}, {20, -15, 6, -1}};
    long double s = w[d][0] * gh_sx(t, F, alpha);
    for (int k = 1; k <= d; k++)
        s += w[d][k] * (gh_sx(t - k, F, alpha) + gh_sx(t + k, F, alpha));
    return s;
}

/* eq. (10) */
static long double gh_basic_sum(long double J, long double M, long double S, long double F,
                                int alpha, int d)
{
    const long double z0 = gh_sz(0.0L, F, alpha, d);
    const long double zJ = gh_sz(J / S, F, alpha, d);
    long double s = z0 * z0 + (1.0L - J / M) * zJ * zJ;
    for (long j = 1; j < (long)J; j++) {
        const long double z = gh_sz((long double)j / S, F, alpha, d);
        s += 2.0L * (1.0L - (long double)j / M) * z * z;
    }
    return s;
}

/* Tables 1 (modified, F = 1) and 2 (unmodified, F = m): (a0, a1), rows
 * alpha = 2..-4, columns d = 1..3; NaN: not defined (alpha + 2d <= 1). */
static const double gh_table1[7][3][2] = {
        {{2.0 / 3, 1.0 / 3}, {7.0 / 9, 1.0 / 2}, {22.0 / 25, 2.0 / 3}},
        {{0.840, 0.345}, {0.997, 0.616}, {1.141, 0.843}},
        {{1.079, 0.368}, {1.033, 0.607}, {1.184, 0.848}},
        {{NAN, NAN}, {1.048, 0.534}, {1.180, 0.816}},
        {{NAN, NAN}, {1.302, 0.535}, {1.175, 0.777}},
        {{NAN, NAN}, {NAN, NAN}, {1.194, 0.703}},
        {{NAN, NAN}, {NAN, NAN}, {1.489, 0.702}},
};
static const double gh_table2[7][3][2] = {
        {{3.0 / 2, 1.0 / 2}, {35.0 / 18, 1.0}, {231.0 / 100, 3.0 / 2}},
        {{78.6, 25.2}, {790.0, 410.0}, {9950.0, 6520.0}},
        {{2.0 / 3, 1.0 / 6}, {2.0 / 3, 1.0 / 3}, {7.0 / 9, 1.0 / 2}},
        {{NAN, NAN}, {0.852, 0.375}, {0.997, 0.617}},
        {{NAN, NAN}, {1.079, 0.368}, {1.033, 0.607}},
        {{NAN, NAN}, {NAN, NAN}, {1.053, 0.553}},
        {{NAN, NAN}, {NAN, NAN}, {1.302, 0.535}},
};
/* Table 3 (alpha = 1, unmodified): (b0, b1) for d = 1..3 */
static const double gh_table3[3][2] = {{6.0, 4.0}, {15.23, 12.0}, {47.8, 40.0}};

static double greenhall_edf(int alpha, int d, size_t m_sz, size_t n_sz, bool overlapping,
                            bool modified)
{
    if (d < 1 || d > 3 || alpha > 2 || alpha < -4 || alpha + 2 * d <= 1)
        return NAN;
    const long double m = (long double)m_sz, N = (long double)n_sz;
    const long double F = modified ? 1.0L : m;
    const long double S = overlapping ? m : 1.0L;
    const long double L = m / F + m * d;
    if (N < L)
        return NAN;
    const long double M = 1.0L + floorl(S * (N - L) / m);
    const long double J = fminl(M, (d + 1) * S);
    const long double Jmax = 100.0L;
    const long double r = M / S;
    const int row = 2 - alpha, col = d - 1;
    long double inv;

    if (modified) {
        /* case 1 */
        const long double z0 = gh_sz(0.0L, 1.0L, alpha, d);
        if (J <= Jmax) {
            inv = gh_basic_sum(J, M, S, 1.0L, alpha, d) / (z0 * z0 * M);
        } else if (r > d + 1) {
            inv = (1.0L / r) * (gh_table1[row][col][0] - gh_table1[row][col][1] / r);
        } else {
            inv = gh_basic_sum(Jmax, Jmax, Jmax / r, 1.0L, alpha, d) / (z0 * z0 * Jmax);
        }
    } else if (alpha <= 0) {
        /* case 2 */
        if (J <= Jmax) {
            const long double mp = m * (d + 1) <= Jmax ? m : 0.0L; /* 0: infinity */
            const long double z0 = gh_sz(0.0L, mp, alpha, d);
            inv = gh_basic_sum(J, M, S, mp, alpha, d) / (z0 * z0 * M);
        } else if (r > d + 1) {
            inv = (1.0L / r) * (gh_table2[row][col][0] - gh_table2[row][col][1] / r);
        } else {
            const long double z0 = gh_sz(0.0L, 0.0L, alpha, d);
            inv = gh_basic_sum(Jmax, Jmax, Jmax / r, 0.0L, alpha, d) / (z0 * z0 * Jmax);
        }
    } else if (alpha == 1) {
        /* case 3 */
        if (J <= Jmax) {
            const long double z0 = gh_sz(0.0L, m, 1, d);
            inv = gh_basic_sum(J, M, S, m, 1, d) / (z0 * z0 * M);
        } else {
            const long double b = gh_table3[col][0] + gh_table3[col][1] * logl(m);
            if (r > d + 1) {
                inv = (gh_table2[row][col][0] - gh_table2[row][col][1] / r) / (b * b * r);
            } else {
                const long double mp = Jmax / r;
                inv = gh_basic_sum(Jmax, Jmax, mp, mp, 1, d) / (b * b * Jmax);
            }
        }
    } else {
        /* case 4, alpha = 2 */
        const long double K = ceill(r);
        if (K <= d)
            return NAN;                   /* the paper's small-r sum: not implemented */
        long double c4 = 1.0L, c2 = 1.0L; /* binom(4d, 2d), binom(2d, d) */
        for (int k = 1; k <= 2 * d; k++)
            c4 = c4 * (2 * d + k) / k;
        for (int k = 1; k <= d; k++)
            c2 = c2 * (d + k) / k;
        const long double a0 = c4 / (c2 * c2), a1 = d / 2.0L;
        inv = (a0 - a1 / r) / M;
    }
    if (!(inv > 0.0L))
        return NAN;
    return (double)(1.0L / inv);
}

double qes_allan_edf(enum qes_allan_kind kind, int alpha, size_t m, size_t n_x)
{
    if (m == 0)
        return NAN;
    switch (kind) {
    case QES_ALLAN_ADEV:
        return alpha < -2 ? NAN : greenhall_edf(alpha, 2, m, n_x, false, false);
    case QES_ALLAN_OADEV:
        return alpha < -2 ? NAN : greenhall_edf(alpha, 2, m, n_x, true, false);
    case QES_ALLAN_MDEV:
    case QES_ALLAN_TDEV:
        return alpha < -2 ? NAN : greenhall_edf(alpha, 2, m, n_x, true, true);
    case QES_ALLAN_HDEV:
        return greenhall_edf(alpha, 3, m, n_x, false, false);
    case QES_ALLAN_OHDEV:
        return greenhall_edf(alpha, 3, m, n_x, true, false);
    case QES_ALLAN_TOTDEV: {
        /* SP 1065 Table 7: edf = b (T / tau) - c, T / tau = N / m */
        static const double bc[3][2] = {{1.50, 0.0}, {1.17, 0.22}, {0.93, 0.36}};
        if (alpha > 0 || alpha < -2 || n_x < 3 || m > n_x - 1)
            return NAN;
        const double e = bc[-alpha][0] * ((double)n_x / (double)m) - bc[-alpha][1];
        return e > 0.0 ? e : NAN;
    }
    default:
        return NAN;
    }
}

/* ------------------------------------------------------------------------ */
/* Noise identification                                                      */

size_t qes_allan_work_len(size_t n)
{
    /* noise ID: n + 1 scratch values and n + 1 phase values (B1 of
     * frequency data); qes_allan_compute keeps its own phase after them */
    return 3 * n + 3;
}

/* Remove the least-squares polynomial of degree deg (1 or 2) in t = 0..n-1,
 * with the discrete orthogonal polynomials of equally spaced points. */
static void detrend(double *v, size_t n, int deg)
{
    const long double tb = 0.5L * (n - 1);
    const long double c2 = ((long double)n * n - 1.0L) / 12.0L;
    struct ksum s0 = {0, 0}, s1 = {0, 0}, s2 = {0, 0}, q1 = {0, 0}, q2 = {0, 0};
    for (size_t i = 0; i < n; i++) {
        const long double u = (long double)i - tb;
        const long double p2 = u * u - c2;
        ksum_add(&s0, v[i]);
        ksum_add(&s1, v[i] * u);
        ksum_add(&q1, u * u);
        ksum_add(&s2, v[i] * p2);
        ksum_add(&q2, p2 * p2);
    }
    const long double b0 = ksum_get(&s0) / n;
    const long double b1 = ksum_get(&q1) > 0 ? ksum_get(&s1) / ksum_get(&q1) : 0.0L;
    const long double b2 = deg >= 2 && ksum_get(&q2) > 0 ? ksum_get(&s2) / ksum_get(&q2) : 0.0L;
    for (size_t i = 0; i < n; i++) {
        const long double u = (long double)i - tb;
        v[i] = (double)((long double)v[i] - b0 - b1 * u - b2 * (u * u - c2));
    }
}

/* lag-1 autocorrelation (Riley and Greenhall 2004, eq. 2) */
static double lag1(const double *v, size_t n)
{
    struct ksum s = {0, 0};
    for (size_t i = 0; i < n; i++)
        ksum_add(&s, v[i]);
    const long double mu = ksum_get(&s) / n;
    struct ksum a = {0, 0}, b = {0, 0};
    for (size_t i = 0; i < n; i++) {
        const long double d = (long double)v[i] - mu;
        ksum_add(&b, d * d);
        if (i + 1 < n)
            ksum_add(&a, d * ((long double)v[i + 1] - mu));
    }
    return ksum_get(&b) > 0 ? (double)(ksum_get(&a) / ksum_get(&b)) : 0.0;
}

/* theoretical B1(N, mu) for r = 1 (Barnes' bias function) */
static double b1_theory(double N, int mu)
{
    if (mu == 0)
        return N * log(N) / (2.0 * (N - 1.0) * qes__ln2);
    return N * (1.0 - pow(N, mu)) / (2.0 * (N - 1.0) * (1.0 - pow(2.0, mu)));
}

static int clamp_alpha(int alpha, int dmax)
{
    const int lo = dmax >= 3 ? -4 : -2;
    if (alpha > 2)
        return 2;
    return alpha < lo ? lo : alpha;
}

int qes_allan_noise_id(const double *data, size_t n, enum qes_allan_data type, size_t m, int dmax,
                       double *work, struct qes_noise_id *out)
{
    if (!data || !work || !out || m == 0 || dmax < 1 || dmax > 3 ||
        (type != QES_ALLAN_PHASE && type != QES_ALLAN_FREQ))
        return QES_EINVAL;
    out->alpha = 0;
    out->alpha_float = out->rho = out->ratio = NAN;
    out->d = 0;
    out->method = QES_NOISE_NONE;

    /* Phase data: the ACF method runs on the phase; each difference counts
     * toward dmax.  Frequency data are one difference already. */
    const int dmax_eff = type == QES_ALLAN_PHASE ? dmax : dmax - 1;
    double *v = work;
    size_t nv = 0;
    if (type == QES_ALLAN_PHASE) {
        for (size_t i = 0; i < n; i += m)
            v[nv++] = data[i];
    } else {
        for (size_t g = 0; (g + 1) * m <= n; g++) {
            struct ksum s = {0, 0};
            for (size_t i = g * m; i < (g + 1) * m; i++)
                ksum_add(&s, data[i]);
            v[nv++] = (double)(ksum_get(&s) / m);
        }
    }

    if (nv >= 30) {
        detrend(v, nv, type == QES_ALLAN_PHASE ? 2 : 1);
        for (int d = 0;; d++) {
            const double r1 = lag1(v, nv);
            const double rho = r1 / (1.0 + r1);
            if (rho < 0.25 || d >= dmax_eff) {
                const double p = -2.0 * (rho + d);
                const int add = type == QES_ALLAN_PHASE ? 2 : 0;
                out->alpha_float = p + add;
                out->rho = rho;
                out->d = d;
                out->alpha = clamp_alpha((int)lround(p) + add, dmax);
                out->method = QES_NOISE_ACF;
                return 0;
            }
            for (size_t i = 0; i + 1 < nv; i++)
                v[i] = v[i + 1] - v[i];
            nv--;
        }
    }

    /* B1 ratio: group means of y and the Allan variance at m */
    const double *x = data;
    size_t nx = n;
    if (type == QES_ALLAN_FREQ) {
        double *xp = work + n + 1;
        qes_allan_freq_to_phase(data, n, 1.0, xp);
        x = xp;
        nx = n + 1;
    }
    const size_t ng = (nx - 1) / m;
    if (ng < 4 || nx < 2 * m + 1)
        return QES_ERANGE;
    struct qes_welford w;
    qes_welford_reset(&w);
    for (size_t g = 0; g < ng; g++)
        qes_welford_add(&w, (x[(g + 1) * m] - x[g * m]) / (double)m);
    /* non-overlapping AVAR: with it, this B1/R(n) rule reproduces the noise
     * types of Stable32's all-tau ADEV run of PHASE.DAT beyond m = 35 */
    double adev;
    qes_allan_dev(QES_ALLAN_ADEV, x, nx, 1.0, m, &adev, NULL);
    const double b1 = qes_welford_var(&w) / (adev * adev);
    out->ratio = b1;
    int mu = 2;
    for (int k = -2; k < 2; k++) {
        const double bound = sqrt(b1_theory((double)ng, k) * b1_theory((double)ng, k + 1));
        if (b1 < bound) {
            mu = k;
            break;
        }
    }
    if (mu > -2) {
        out->alpha = clamp_alpha(-mu - 1, dmax);
        out->method = QES_NOISE_B1;
        return 0;
    }
    /* PM: R(n) = MVAR / AVAR; white PM 1/m, flicker PM with f_h = 1/(2 tau0) */
    double mdev;
    out->method = QES_NOISE_B1_RN;
    if (qes_allan_dev(QES_ALLAN_MDEV, x, nx, 1.0, m, &mdev, NULL) != 0) {
        out->alpha = 2;
        out->method = QES_NOISE_B1;
        return 0;
    }
    const double rn = (mdev * mdev) / (adev * adev);
    const double r_wpm = 1.0 / (double)m;
    const double r_fpm = 1.5 * log(256.0 / 27.0) / (1.038 + 3.0 * log(qes__pi * (double)m));
    out->alpha = rn < sqrt(r_wpm * r_fpm) ? 2 : 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Tau lists                                                                 */

int qes_allan_compute(enum qes_allan_kind kind, enum qes_allan_data type, const double *data,
                      size_t n, double tau0_s, const size_t *m_list, size_t n_m, double confidence,
                      double *work, struct qes_allan_point *out)
{
    if (!data || !work || !out || (n_m > 0 && !m_list) || !(tau0_s > 0.0) || !isfinite(tau0_s) ||
        !(confidence > 0.0 && confidence < 1.0) || (unsigned)kind >= QES_ALLAN_NKIND ||
        (type != QES_ALLAN_PHASE && type != QES_ALLAN_FREQ))
        return QES_EINVAL;
    /* Phase lives in the top third of work; the noise ID uses the lower
     * two thirds as scratch and is given the original data. */
    const double *x = data;
    size_t nx = n;
    if (type == QES_ALLAN_FREQ) {
        double *xp = work + 2 * n + 2;
        int rc = qes_allan_freq_to_phase(data, n, tau0_s, xp);
        if (rc)
            return rc;
        x = xp;
        nx = n + 1;
    }
    const int dmax = kind == QES_ALLAN_HDEV || kind == QES_ALLAN_OHDEV ? 3 : 2;
    int last_alpha = 0;
    for (size_t k = 0; k < n_m; k++) {
        struct qes_allan_point *p = &out[k];
        p->m = m_list[k];
        p->tau_s = (double)m_list[k] * tau0_s;
        int rc = qes_allan_dev(kind, x, nx, tau0_s, p->m, &p->dev, &p->n_terms);
        if (rc)
            return rc;
        rc = qes_allan_noise_id(data, n, type, p->m, dmax, work, &p->noise);
        if (rc == 0)
            last_alpha = p->noise.alpha;
        p->alpha_used = last_alpha;
        p->edf = qes_allan_edf(kind, p->alpha_used, p->m, nx);
        if (isnan(p->edf)) {
            p->lo = p->hi = NAN;
        } else {
            qes_allan_ci(p->dev, p->edf, confidence, &p->lo, &p->hi);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Uncertainty of the mean                                                   */

double qes_horizon_factor2(double octaves, int mu)
{
    if (!(octaves > 0.0))
        return 1.0;
    double f;
    if (mu == 0) {
        f = 1.0 + 0.5 * octaves;
    } else {
        const double g = exp2(octaves * mu);
        f = (g - 1.0) / (2.0 * (exp2((double)mu) - 1.0)) + g;
    }
    return f > 1.0 ? f : 1.0;
}

int qes_mean_uncertainty(const double *y, size_t n, double tau0_s, double *work,
                         struct qes_mean_unc *out)
{
    return qes_mean_uncertainty_h(y, n, tau0_s, 0.0, work, out);
}

int qes_mean_uncertainty_h(const double *y, size_t n, double tau0_s, double horizon_s, double *work,
                           struct qes_mean_unc *out)
{
    if (!y || !work || !out || n < 8 || !(tau0_s > 0.0) || !isfinite(tau0_s) ||
        !(horizon_s >= 0.0) || !isfinite(horizon_s))
        return QES_EINVAL;
    memset(out, 0, sizeof *out);
    out->n = n;
    out->tau0_s = tau0_s;
    double mean, var;
    qes_stats_mean_var(y, n, &mean, &var);
    out->mean = mean;
    if (!(var > 0.0))
        return QES_ERANGE;
    out->u_white = sqrt(var / (double)n);
    out->dof_white = (double)(n - 1);

    size_t mL = 1;
    while (n / (2 * mL) >= 8)
        mL *= 2;
    size_t mid = 1;
    while (2 * mid <= mL && n / (2 * mid) >= 128)
        mid *= 2;
    out->m_L = mL;
    out->m_id = mid;

    int rc = qes_allan_noise_id(y, n, QES_ALLAN_FREQ, mid, 2, work, &out->noise);
    if (rc)
        return rc;
    const int alpha = clamp_alpha(out->noise.alpha, 2);
    out->alpha = alpha;
    out->nonwhite = alpha != 0;

    double *x = work + n + 1; /* noise ID is done: work is free again */
    qes_allan_freq_to_phase(y, n, tau0_s, x);
    rc = qes_allan_dev(QES_ALLAN_OADEV, x, n + 1, tau0_s, mL, &out->oadev_L, NULL);
    if (rc)
        return rc;
    /* AVAR ~ tau^mu: mu = -2 (PM), -1 (WFM), 0 (FFM), +1 (RWFM) */
    const int mu = alpha >= 1 ? -2 : -alpha - 1;
    out->slope = 0.5 * mu;
    out->u_allan = out->oadev_L * pow((double)n / (double)mL, out->slope);
    out->dof_allan = qes_allan_edf(QES_ALLAN_OADEV, alpha, mL, n + 1);
    const double T = (double)n * tau0_s;
    out->horizon_s = horizon_s;
    out->octaves = horizon_s > T ? log2(horizon_s / T) : 0.0;
    out->horizon_factor = sqrt(qes_horizon_factor2(out->octaves, mu));
    out->u_allan *= out->horizon_factor;

    if (out->u_allan > out->u_white) {
        out->u = out->u_allan;
        out->dof = out->dof_allan;
    } else {
        out->u = out->u_white;
        out->dof = out->dof_white;
    }
    static const char *const names[] = {"RWFM", "FFM", "WFM", "FPM", "WPM"};
    int len =
            snprintf(out->rule, sizeof out->rule,
                     "Allan: OADEV(%zu tau0) x (n/m)^%.1f, noise %s (alpha %d, %s at m=%zu), "
                     "EDF %.1f",
                     mL, out->slope, names[alpha + 2], alpha,
                     out->noise.method == QES_NOISE_ACF ? "lag-1 ACF" : "B1", mid, out->dof_allan);
    if (len > 0 && (size_t)len < sizeof out->rule && out->octaves > 0.0)
        len += snprintf(out->rule + len, sizeof out->rule - (size_t)len,
                        "; horizon %.6g s, %.2f octaves past the run: x %.3f", horizon_s,
                        out->octaves, out->horizon_factor);
    if (len > 0 && (size_t)len < sizeof out->rule)
        snprintf(out->rule + len, sizeof out->rule - (size_t)len, "; u = max(s/sqrt(n), Allan)");
    return 0;
}
