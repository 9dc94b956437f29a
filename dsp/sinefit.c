/*
 * Least-squares sine fits (see sinefit.h for the model, the API and the
 * choice of solver).
 *
 * Notation.  n samples, centred index k = i - c0 with c0 = (n - 1) / 2 (an
 * integer or a half-integer, exact in a double), nu = f / fs in cycles per
 * sample.  Internal parameters (centred basis):
 *
 *     x[i] ~ sum_h [ a_h cos(2 pi h nu k) + b_h sin(2 pi h nu k) ] + c
 *            + delta * D(k),  D(k) = (k / hs) sum_h h (-a_h sin + b_h cos)(2 pi h nu k)
 *
 * with hs = n / 2, so that D is of the order of the amplitudes and delta =
 * hs * d(omega) is a frequency step in radians per half record.  Reported
 * parameters (contract): with psi_h = 2 pi h nu c0 (the phase of the centred
 * basis at the first sample),
 *
 *     sqrt(2) x_h =   a_h cos(psi_h) - b_h sin(psi_h)
 *     sqrt(2) y_h = -(a_h sin(psi_h) + b_h cos(psi_h))
 *
 * which is sqrt(2) r cos(2 pi h nu i + phi) = sqrt(2) x cos(.) - sqrt(2) y sin(.)
 * rewritten on the centred axis.
 */
#include "dsp/sinefit.h"

#include "common/err.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double qes__two_pi = 6.283185307179586476925286766559;
static const long double qes__two_pi_l = 6.283185307179586476925286766559L;
static const long double qes__sqrt1_2_l = 0.70710678118654752440084436210484903928L;
static const double qes__pi = 3.1415926535897932384626433832795;

/* ------------------------------------------------------------------------ */
/* Exact phase reduction                                                    */

/*
 * frac(nu * m), in [-1/2, 1/2], for m an integer or half-integer with
 * |m| < 2^52 (exact in a double).  nu * m = p + e exactly (fma), p - round(p)
 * is exact (Sterbenz), so the only rounding is the final addition: the
 * result is within 2^-54 cycles of the exact fractional part of the double
 * product, whatever the size of nu * m.  (2 pi nu m in floating point would
 * lose u |nu m| cycles: ~1e-10 cycles at 1e6 cycles.)
 */
static double cyc_frac(double nu, double m)
{
    const double p = nu * m;
    const double e = fma(nu, m, -p);
    return (p - nearbyint(p)) + e;
}

/* ------------------------------------------------------------------------ */
/* Streamed Householder QR                                                  */

/*
 * Fold a chunk of m rows into the upper-triangular factor R (np x np,
 * row-major, long double).  W holds the chunk column-major (column j at
 * W + j * ldw, rows 0..m-1) and is destroyed.  After folding all chunks of a
 * matrix A (n x np), R^T R = A^T A: R is the triangular factor of A's QR.
 * With the right-hand side as the last column, R[0:p, p] = Q^T y and
 * R[p][p]^2 = the residual sum of squares.
 *
 * Each column j is one Householder reflector (LAPACK dlarfg/dlarf
 * conventions) acting on row j of R and the m chunk rows; rows j+1.. of R
 * are zero in column j and untouched.  R's entries (sums over all chunks)
 * are updated in long double; the chunk's own sums (m terms) in double.
 */
static void qr_fold(long double *R, size_t np, double *W, size_t ldw, size_t m)
{
    for (size_t j = 0; j < np; j++) {
        double *restrict wj = W + j * ldw;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < m; i++)
            s += wj[i] * wj[i];
        if (s == 0.0)
            continue; /* column already triangular for this chunk */
        const long double alpha = R[j * np + j];
        const long double nrm = sqrtl(alpha * alpha + (long double)s);
        const long double beta = alpha > 0 ? -nrm : nrm;
        const long double tau = (beta - alpha) / beta;
        const double scale = (double)(1.0L / (alpha - beta));
#pragma omp simd
        for (size_t i = 0; i < m; i++)
            wj[i] *= scale; /* v = [1; x / (alpha - beta)] */
        for (size_t k = j + 1; k < np; k++) {
            double *restrict wk = W + k * ldw;
            double d = 0.0;
#pragma omp simd reduction(+ : d)
            for (size_t i = 0; i < m; i++)
                d += wj[i] * wk[i];
            const long double tw = tau * (R[j * np + k] + d);
            R[j * np + k] -= tw;
            const double twd = (double)tw;
#pragma omp simd
            for (size_t i = 0; i < m; i++)
                wk[i] -= twd * wj[i];
        }
        R[j * np + j] = beta;
    }
}

/* Every entry finite (a NaN or Inf sample poisons the factor). */
static int qr_finite(const long double *R, size_t np)
{
    for (size_t i = 0; i < np * np; i++)
        if (!isfinite(R[i]))
            return 0;
    return 1;
}

/*
 * Columns 0..p-1 numerically independent: each column's component
 * orthogonal to the previous ones (|R_jj|) is at least QES_SINEFIT_RANK_TOL
 * of its norm (sqrt(sum_i<=j R_ij^2)).  A zero column fails.
 */
static int qr_rank_ok(const long double *R, size_t np, size_t p)
{
    for (size_t j = 0; j < p; j++) {
        long double cn = 0.0L;
        for (size_t i = 0; i <= j; i++)
            cn += R[i * np + j] * R[i * np + j];
        if (!(fabsl(R[j * np + j]) > QES_SINEFIT_RANK_TOL * sqrtl(cn)))
            return 0;
    }
    return 1;
}

/* Solve R[0:p, 0:p] x = R[0:p, rhs] by back substitution. */
static void qr_solve(const long double *R, size_t np, size_t p, size_t rhs, long double *x)
{
    for (size_t jj = p; jj-- > 0;) {
        long double v = R[jj * np + rhs];
        for (size_t k = jj + 1; k < p; k++)
            v -= R[jj * np + k] * x[k];
        x[jj] = v / R[jj * np + jj];
    }
}

/*
 * C = sigma2 (R^T R)^{-1} = sigma2 U U^T with U = R[0:p, 0:p]^{-1} (upper
 * triangular, computed column by column into u, p x p).  C is p x p.
 */
static void qr_cov(const long double *R, size_t np, size_t p, long double sigma2, long double *u,
                   long double *C)
{
    memset(u, 0, p * p * sizeof *u);
    for (size_t c = 0; c < p; c++) {
        u[c * p + c] = 1.0L / R[c * np + c];
        for (size_t jj = c; jj-- > 0;) {
            long double v = 0.0L;
            for (size_t k = jj + 1; k <= c; k++)
                v += R[jj * np + k] * u[k * p + c];
            u[jj * p + c] = -v / R[jj * np + jj];
        }
    }
    for (size_t i = 0; i < p; i++) {
        for (size_t j = i; j < p; j++) {
            long double v = 0.0L;
            for (size_t k = j; k < p; k++) /* U[i][k] U[j][k], nonzero for k >= max(i, j) */
                v += u[i * p + k] * u[j * p + k];
            C[i * p + j] = C[j * p + i] = sigma2 * v;
        }
    }
}

/* out = J C J^T (all p x p, row-major), exactly symmetric; tmp p x p. */
static void sandwich(const long double *J, const long double *C, size_t p, long double *tmp,
                     long double *out)
{
    for (size_t i = 0; i < p; i++) {
        for (size_t j = 0; j < p; j++) {
            long double v = 0.0L;
            for (size_t k = 0; k < p; k++)
                v += J[i * p + k] * C[k * p + j];
            tmp[i * p + j] = v;
        }
    }
    for (size_t i = 0; i < p; i++) {
        for (size_t j = i; j < p; j++) {
            long double v = 0.0L;
            for (size_t k = 0; k < p; k++)
                v += tmp[i * p + k] * J[j * p + k];
            out[i * p + j] = out[j * p + i] = v;
        }
    }
}

static double wrap_phase(double a)
{
    /* atan2 gives [-pi, pi]; the contract is (-pi, pi]. */
    return a <= -qes__pi ? a + 2.0 * qes__pi : a;
}

/* Tone from x, y and their 2x2 covariance (first-order propagation). */
static void fill_tone(struct qes_sinefit_tone *t, unsigned h, long double x, long double y,
                      long double vxx, long double vxy, long double vyy)
{
    const long double r2 = x * x + y * y;
    t->harmonic = h;
    t->x = (double)x;
    t->y = (double)y;
    t->r = (double)sqrtl(r2);
    t->phase_rad = wrap_phase(atan2(t->y, t->x));
    t->u_x = (double)sqrtl(fmaxl(vxx, 0.0L));
    t->u_y = (double)sqrtl(fmaxl(vyy, 0.0L));
    /* dr = (x dx + y dy) / r, dphi = (x dy - y dx) / r^2 */
    if (r2 > 0) {
        const long double vr = (x * x * vxx + 2 * x * y * vxy + y * y * vyy) / r2;
        const long double vp = (y * y * vxx - 2 * x * y * vxy + x * x * vyy) / (r2 * r2);
        t->u_r = (double)sqrtl(fmaxl(vr, 0.0L));
        t->u_phase_rad = (double)sqrtl(fmaxl(vp, 0.0L));
    } else {
        t->u_r = (double)sqrtl(fmaxl(0.5L * (vxx + vyy), 0.0L));
        t->u_phase_rad = NAN;
    }
}

static void result_nan(struct qes_sinefit_result *res)
{
    res->n = 0;
    res->n_params = 0;
    res->f_hz = res->u_f_hz = res->offset = res->u_offset = NAN;
    res->resid_rms = res->sigma = NAN;
    res->iterations = 0;
    res->n_tones = 0;
    for (size_t k = 0; k < QES_SINEFIT_MAX_HARMONICS; k++) {
        struct qes_sinefit_tone *t = &res->tone[k];
        t->harmonic = 0;
        t->x = t->y = t->r = t->phase_rad = NAN;
        t->u_x = t->u_y = t->u_r = t->u_phase_rad = NAN;
    }
    for (size_t i = 0; i < QES_SINEFIT_MAX_PARAMS; i++)
        for (size_t j = 0; j < QES_SINEFIT_MAX_PARAMS; j++)
            res->cov[i][j] = NAN;
}

/* ------------------------------------------------------------------------ */
/* Harmonic sine fits                                                       */

#define QES__CH QES_SINEFIT_CHUNK

struct qes_sinefit {
    size_t n_max;
    double fs_hz;
    enum qes_sinefit_kind kind;
    size_t nh;
    unsigned h[QES_SINEFIT_MAX_HARMONICS];
    unsigned hmax;
    unsigned max_iter;
    double step_tol;
    size_t p; /* parameters: 2 nh + 1, + 1 with FIT_FREQ */
    /* workspaces, sized for p + 1 columns */
    double *w;       /* chunk, column-major, QES__CH rows */
    double *tc, *ts; /* per harmonic: cos, sin of 2 pi h nu i, i < QES__CH */
    long double *r, *r_keep;
    long double *theta;             /* p */
    long double *m1, *m2, *m3, *m4; /* p x p each */
};

int qes_sinefit_create(const struct qes_sinefit_desc *desc, struct qes_sinefit **out)
{
    if (!out)
        return QES_EINVAL;
    *out = NULL;
    if (!desc)
        return QES_EINVAL;
    if (!(isfinite(desc->fs_hz) && desc->fs_hz > 0))
        return QES_EINVAL;
    if (desc->kind != QES_SINEFIT_KNOWN_FREQ && desc->kind != QES_SINEFIT_FIT_FREQ)
        return QES_EINVAL;
    if (desc->n_harmonics > QES_SINEFIT_MAX_HARMONICS)
        return QES_EINVAL;
    if (desc->n_harmonics > 0 && !desc->harmonics)
        return QES_EINVAL;
    const int fit = desc->kind == QES_SINEFIT_FIT_FREQ;
    unsigned max_iter = 50;
    double step_tol = 1e-15;
    if (fit) {
        if (desc->max_iter > 1000)
            return QES_EINVAL;
        if (desc->max_iter)
            max_iter = desc->max_iter;
        if (desc->step_tol != 0.0) {
            if (!(desc->step_tol >= 1e-16 && desc->step_tol <= 1e-3))
                return QES_EINVAL;
            step_tol = desc->step_tol;
        }
    }
    unsigned hs[QES_SINEFIT_MAX_HARMONICS];
    size_t nh = desc->n_harmonics;
    unsigned hmax = 0;
    if (nh == 0) {
        nh = 1;
        hs[0] = 1;
    } else {
        for (size_t k = 0; k < nh; k++) {
            const unsigned h = desc->harmonics[k];
            if (h < 1 || h > QES_SINEFIT_MAX_HARMONIC)
                return QES_EINVAL;
            for (size_t j = 0; j < k; j++)
                if (hs[j] == h)
                    return QES_EINVAL;
            hs[k] = h;
        }
    }
    for (size_t k = 0; k < nh; k++)
        hmax = hs[k] > hmax ? hs[k] : hmax;
    const size_t p = 2 * nh + 1 + (size_t)fit;
    if (desc->n_max < p + 1 || desc->n_max > QES_SINEFIT_N_LIMIT)
        return QES_EINVAL;

    struct qes_sinefit *s = calloc(1, sizeof *s);
    if (!s)
        return QES_ENOMEM;
    s->n_max = desc->n_max;
    s->fs_hz = desc->fs_hz;
    s->kind = desc->kind;
    s->nh = nh;
    memcpy(s->h, hs, nh * sizeof hs[0]);
    s->hmax = hmax;
    s->max_iter = max_iter;
    s->step_tol = step_tol;
    s->p = p;
    const size_t np = p + 1;
    s->w = malloc(QES__CH * np * sizeof *s->w);
    s->tc = malloc(QES__CH * nh * sizeof *s->tc);
    s->ts = malloc(QES__CH * nh * sizeof *s->ts);
    s->r = malloc(np * np * sizeof *s->r);
    s->r_keep = malloc(np * np * sizeof *s->r_keep);
    s->theta = malloc(p * sizeof *s->theta);
    s->m1 = malloc(p * p * sizeof *s->m1);
    s->m2 = malloc(p * p * sizeof *s->m2);
    s->m3 = malloc(p * p * sizeof *s->m3);
    s->m4 = malloc(p * p * sizeof *s->m4);
    if (!s->w || !s->tc || !s->ts || !s->r || !s->r_keep || !s->theta || !s->m1 || !s->m2 ||
        !s->m3 || !s->m4)
        goto err_free;
    *out = s;
    return 0;

err_free:
    qes_sinefit_destroy(s);
    return QES_ENOMEM;
}

void qes_sinefit_destroy(struct qes_sinefit *s)
{
    if (!s)
        return;
    free(s->w);
    free(s->tc);
    free(s->ts);
    free(s->r);
    free(s->r_keep);
    free(s->theta);
    free(s->m1);
    free(s->m2);
    free(s->m3);
    free(s->m4);
    free(s);
}

/*
 * One pass over the block: fold [C_1 S_1 .. C_H S_H 1 (D) x] into s->r
 * (np = number of columns).  nu in cycles per sample.  ab: NULL for no
 * derivative column, else a_h, b_h (2 H values) of the current model.
 *
 * Basis: cos/sin(2 pi h nu (k0 + i)) = Re/Im of e^{j 2 pi h nu k0} (one exact
 * reduction per chunk and harmonic) times e^{j 2 pi h nu i} (a table made
 * once per pass); each factor is correctly rounded to within an ulp, so the
 * product is within ~3 ulp, with no error growth along the record.
 */
static void sf_pass(struct qes_sinefit *s, const double *x, size_t n, double nu, const double *ab,
                    size_t np)
{
    const size_t nh = s->nh;
    const size_t mt = n < QES__CH ? n : QES__CH;
    for (size_t q = 0; q < nh; q++) {
        double *tc = s->tc + q * QES__CH, *ts = s->ts + q * QES__CH;
        for (size_t i = 0; i < mt; i++) {
            const double a = qes__two_pi * cyc_frac(nu, (double)s->h[q] * (double)i);
            tc[i] = cos(a);
            ts[i] = sin(a);
        }
    }
    memset(s->r, 0, np * np * sizeof *s->r);
    const double c0 = 0.5 * (double)(n - 1);
    const double inv_hs = 2.0 / (double)n;
    double *w = s->w;
    for (size_t i0 = 0; i0 < n; i0 += QES__CH) {
        const size_t m = n - i0 < QES__CH ? n - i0 : QES__CH;
        const double k0 = (double)i0 - c0; /* exact: an integer or half-integer */
        for (size_t q = 0; q < nh; q++) {
            const double a = qes__two_pi * cyc_frac(nu, (double)s->h[q] * k0);
            const double sc = cos(a), ss = sin(a);
            const double *restrict tc = s->tc + q * QES__CH;
            const double *restrict ts = s->ts + q * QES__CH;
            double *restrict cc = w + (2 * q) * QES__CH;
            double *restrict sn = w + (2 * q + 1) * QES__CH;
#pragma omp simd
            for (size_t i = 0; i < m; i++) {
                cc[i] = sc * tc[i] - ss * ts[i];
                sn[i] = ss * tc[i] + sc * ts[i];
            }
        }
        double *restrict one = w + (2 * nh) * QES__CH;
        for (size_t i = 0; i < m; i++)
            one[i] = 1.0;
        size_t col = 2 * nh + 1;
        if (ab) {
            double *restrict d = w + col * QES__CH;
            for (size_t i = 0; i < m; i++)
                d[i] = 0.0;
            for (size_t q = 0; q < nh; q++) {
                const double ha = (double)s->h[q] * ab[2 * q];
                const double hb = (double)s->h[q] * ab[2 * q + 1];
                const double *restrict cc = w + (2 * q) * QES__CH;
                const double *restrict sn = w + (2 * q + 1) * QES__CH;
#pragma omp simd
                for (size_t i = 0; i < m; i++)
                    d[i] += hb * cc[i] - ha * sn[i];
            }
#pragma omp simd
            for (size_t i = 0; i < m; i++)
                d[i] *= (k0 + (double)i) * inv_hs;
            col++;
        }
        memcpy(w + col * QES__CH, x + i0, m * sizeof *x);
        qr_fold(s->r, np, w, QES__CH, m);
    }
}

/*
 * Reported parameters from the internal ones.  nu: final frequency, cycles
 * per sample; f_hz: the caller's frequency, reported as given for
 * KNOWN_FREQ; theta: p internal values; R: the factor whose covariance
 * applies; rss.  Uses m1..m4.
 */
static void sf_finish(struct qes_sinefit *s, size_t n, double nu, double f_hz,
                      const long double *theta, const long double *R, long double rss,
                      unsigned iterations, struct qes_sinefit_result *res)
{
    const size_t p = s->p, np = p + 1, nh = s->nh;
    const int fit = s->kind == QES_SINEFIT_FIT_FREQ;
    const long double sigma2 = rss / (long double)(n - p);
    long double *cint = s->m1, *J = s->m2, *tmp = s->m3, *cout = s->m4;
    qr_cov(R, np, p, sigma2, tmp, cint);

    const double c0 = 0.5 * (double)(n - 1);
    const long double hs = 0.5L * (long double)n;
    long double xy[2 * QES_SINEFIT_MAX_HARMONICS];
    memset(J, 0, p * p * sizeof *J);
    for (size_t q = 0; q < nh; q++) {
        const long double psi = qes__two_pi_l * cyc_frac(nu, (double)s->h[q] * c0);
        const long double cp = cosl(psi), sp = sinl(psi);
        const long double a = theta[2 * q], b = theta[2 * q + 1];
        const long double x = qes__sqrt1_2_l * (a * cp - b * sp);
        const long double y = -qes__sqrt1_2_l * (a * sp + b * cp);
        xy[2 * q] = x;
        xy[2 * q + 1] = y;
        const size_t rx = 2 * q, ry = 2 * q + 1;
        J[rx * p + 2 * q] = qes__sqrt1_2_l * cp;
        J[rx * p + 2 * q + 1] = -qes__sqrt1_2_l * sp;
        J[ry * p + 2 * q] = -qes__sqrt1_2_l * sp;
        J[ry * p + 2 * q + 1] = -qes__sqrt1_2_l * cp;
        if (fit) {
            /* psi_h = 2 pi h nu c0; dx/dpsi = y, dy/dpsi = -x; dnu/ddelta = 1 / (2 pi hs) */
            const long double g = (long double)s->h[q] * (long double)c0 / hs;
            J[rx * p + p - 1] = y * g;
            J[ry * p + p - 1] = -x * g;
        }
    }
    J[(2 * nh) * p + 2 * nh] = 1.0L;
    if (fit)
        J[(p - 1) * p + p - 1] = (long double)s->fs_hz / (qes__two_pi_l * hs);
    sandwich(J, cint, p, tmp, cout);

    res->n = n;
    res->n_params = p;
    res->f_hz = fit ? nu * s->fs_hz : f_hz;
    res->u_f_hz = fit ? (double)sqrtl(fmaxl(cout[(p - 1) * p + p - 1], 0.0L)) : 0.0;
    res->offset = (double)theta[2 * nh];
    res->u_offset = (double)sqrtl(fmaxl(cout[(2 * nh) * p + 2 * nh], 0.0L));
    res->resid_rms = (double)sqrtl(rss / (long double)n);
    res->sigma = (double)sqrtl(sigma2);
    res->iterations = iterations;
    res->n_tones = nh;
    for (size_t q = 0; q < nh; q++) {
        const size_t rx = 2 * q, ry = 2 * q + 1;
        fill_tone(&res->tone[q], s->h[q], xy[rx], xy[ry], cout[rx * p + rx], cout[rx * p + ry],
                  cout[ry * p + ry]);
    }
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++)
            res->cov[i][j] = (double)cout[i * p + j];
}

/* 3-parameter-style fit at a known frequency: columns [C S .. 1 x]. */
static int sf_linear(struct qes_sinefit *s, const double *x, size_t n, double nu, size_t pl,
                     long double *theta)
{
    const size_t np = pl + 1;
    sf_pass(s, x, n, nu, NULL, np);
    if (!qr_finite(s->r, np))
        return QES_EINVAL;
    if (!qr_rank_ok(s->r, np, pl))
        return QES_ERANGE;
    qr_solve(s->r, np, pl, pl, theta);
    return 0;
}

/*
 * Gauss-Newton for the frequency (IEEE 1241 4.1.4.3, generalised to a
 * shared fundamental).  A pass at nu_k, with the derivative column built
 * from amplitudes (a, b), gives the new (a, b, c, delta) and, from the
 * first p - 1 columns of the same factor, the residual of the best linear
 * fit at nu_k itself (R[p-1][p]^2 + R[p][p]^2: the variable-projection
 * objective F(nu)).
 *
 * IEEE 1241 builds the derivative column from the previous pass's
 * amplitudes.  After a large step they can be stale, and the step they give
 * need not lower F.  Safeguard: a step is accepted when F did not grow
 * (within rounding).  When it grew, the pass is repeated at the accepted
 * nu with the amplitudes of the linear optimum there; that step is a
 * descent direction of F (at the linear optimum the gradient has only a
 * frequency component, and a Gauss-Newton direction is a descent
 * direction), so halving it must eventually lower F, and when it cannot
 * even at |d nu| <= step_tol nu, nu is a minimum of F to rounding.
 * Converged when an accepted step is below step_tol nu and its derivative
 * column was not stale.
 */
static int sf_fit_freq(struct qes_sinefit *s, const double *x, size_t n, double nu0,
                       struct qes_sinefit_result *res)
{
    const size_t p = s->p, np = p + 1, nh = s->nh;
    long double *theta = s->theta;
    int rc = sf_linear(s, x, n, nu0, p - 1, theta);
    if (rc)
        return rc;
    double ab[2 * QES_SINEFIT_MAX_HARMONICS];
    for (size_t i = 0; i < 2 * nh; i++)
        ab[i] = (double)theta[i];

    const double inv_hs = 2.0 / (double)n;
    const double nu_hi = 0.5 / (double)s->hmax;
    const double tol = s->step_tol;
    double nu = nu0, nu_acc = nu0, step = 0.0;
    long double rss_acc = 0.0L;
    int have_acc = 0;
    int pass_fresh = 1; /* this pass's derivative column: amplitudes of the linear optimum at nu */
    int step_fresh = 0; /* the step being tried came from a fresh pass */
    for (unsigned it = 1; it <= s->max_iter; it++) {
        sf_pass(s, x, n, nu, ab, np);
        if (!qr_finite(s->r, np))
            return QES_EINVAL;
        if (!qr_rank_ok(s->r, np, p))
            return QES_ERANGE;
        const long double *R = s->r;
        const long double r1 = R[(p - 1) * np + p], r2 = R[p * np + p];
        const long double rss_lin = r1 * r1 + r2 * r2;
        long double yy = 0.0L;
        for (size_t j = 0; j <= p; j++)
            yy += R[j * np + p] * R[j * np + p];
        /* Below a residual of 1e-12 of the signal, RSS differences are
         * rounding; above it, 1e-12 relative covers the rounding of the RSS. */
        const long double thresh = rss_acc * (1.0L + 1e-12L) + 1e-24L * yy;
        int reject = have_acc && rss_lin > thresh;
        if (!reject) {
            have_acc = 1;
            nu_acc = nu;
            rss_acc = rss_lin;
            memcpy(s->r_keep, s->r, np * np * sizeof *s->r);
            qr_solve(s->r, np, p, p, theta);
            double dab = 0.0, abmax = 0.0;
            for (size_t i = 0; i < 2 * nh; i++) {
                dab = fmax(dab, fabs((double)theta[i] - ab[i]));
                abmax = fmax(abmax, fabs(ab[i]));
            }
            step = (double)theta[p - 1] * inv_hs / qes__two_pi;
            step_fresh = pass_fresh;
            if (fabs(step) <= tol * nu_acc && (pass_fresh || dab <= 1e-3 * abmax)) {
                const long double rss = r2 * r2;
                sf_finish(s, n, nu_acc + step, 0.0, theta, s->r_keep, rss, it, res);
                return 0;
            }
            for (size_t i = 0; i < 2 * nh; i++)
                ab[i] = (double)theta[i];
            nu = nu_acc + step;
            pass_fresh = 0;
            if (nu > 0.0 && nu < nu_hi)
                continue;
            reject = 1; /* the step leaves the band: treat it as a failed step */
        }
        if (!step_fresh) {
            /* Linearise again at nu_acc around the linear optimum there. */
            qr_solve(s->r_keep, np, p - 1, p, theta);
            for (size_t i = 0; i < 2 * nh; i++)
                ab[i] = (double)theta[i];
            nu = nu_acc;
            pass_fresh = 1;
            continue;
        }
        do {
            step *= 0.5;
            if (fabs(step) <= tol * nu_acc) {
                /* No descent along a descent direction: nu_acc is a
                 * minimum of F to rounding.  The linear solution there,
                 * the accepted pass's factor for the covariance. */
                qr_solve(s->r_keep, np, p - 1, p, theta);
                theta[p - 1] = 0.0L;
                sf_finish(s, n, nu_acc, 0.0, theta, s->r_keep, rss_acc, it, res);
                return 0;
            }
        } while (!(nu_acc + step > 0.0 && nu_acc + step < nu_hi));
        nu = nu_acc + step;
        pass_fresh = 0;
    }
    return QES_ERANGE;
}

int qes_sinefit_execute(struct qes_sinefit *s, const double *x, size_t n, double f_hz,
                        struct qes_sinefit_result *res)
{
    if (!res)
        return QES_EINVAL;
    result_nan(res);
    if (!s || !x)
        return QES_EINVAL;
    if (n < s->p + 1 || n > s->n_max)
        return QES_EINVAL;
    if (!(isfinite(f_hz) && f_hz > 0 && (double)s->hmax * f_hz < 0.5 * s->fs_hz))
        return QES_EINVAL;
    const double nu = f_hz / s->fs_hz;
    int rc;
    if (s->kind == QES_SINEFIT_KNOWN_FREQ) {
        rc = sf_linear(s, x, n, nu, s->p, s->theta);
        if (rc == 0) {
            const long double rss = s->r[s->p * (s->p + 1) + s->p] * s->r[s->p * (s->p + 1) + s->p];
            sf_finish(s, n, nu, f_hz, s->theta, s->r, rss, 0, res);
        }
    } else {
        rc = sf_fit_freq(s, x, n, nu, res);
    }
    if (rc)
        result_nan(res);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reference twin of the 3-parameter fit                                    */

int qes_sinefit3_reference(const double *x, size_t n, double f_hz, double fs_hz,
                           struct qes_sinefit_result *res)
{
    if (!res)
        return QES_EINVAL;
    result_nan(res);
    if (!x || n < 4 || n > QES_SINEFIT_N_LIMIT)
        return QES_EINVAL;
    if (!(isfinite(fs_hz) && fs_hz > 0 && isfinite(f_hz) && f_hz > 0 && f_hz < 0.5 * fs_hz))
        return QES_EINVAL;
    const long double nu = (long double)(f_hz / fs_hz); /* the fast path's rounding */
    /* Normal equations N t = g on the uncentred basis [cos, sin, 1]. */
    long double N[3][4] = {{0}};
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return QES_EINVAL;
        const long double cyc = nu * (long double)i;
        const long double a = qes__two_pi_l * (cyc - floorl(cyc + 0.5L));
        const long double v[4] = {cosl(a), sinl(a), 1.0L, x[i]};
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                N[r][c] += v[r] * v[c];
    }
    long double Ninv[3][3];
    {
        /* Gaussian elimination with partial pivoting on [N | I]. */
        long double A[3][6];
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 6; c++)
                A[r][c] = c < 3 ? N[r][c] : (c - 3 == r ? 1.0L : 0.0L);
        for (int c = 0; c < 3; c++) {
            int piv = c;
            for (int r = c + 1; r < 3; r++)
                if (fabsl(A[r][c]) > fabsl(A[piv][c]))
                    piv = r;
            if (fabsl(A[piv][c]) <= 1e-30L * (long double)n)
                return QES_ERANGE;
            if (piv != c) {
                for (int k = 0; k < 6; k++) {
                    const long double t = A[c][k];
                    A[c][k] = A[piv][k];
                    A[piv][k] = t;
                }
            }
            for (int r = 0; r < 3; r++) {
                if (r == c)
                    continue;
                const long double f = A[r][c] / A[c][c];
                for (int k = c; k < 6; k++)
                    A[r][k] -= f * A[c][k];
            }
        }
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 3; c++)
                Ninv[r][c] = A[r][c + 3] / A[r][r];
    }
    long double t[3];
    for (int r = 0; r < 3; r++)
        t[r] = Ninv[r][0] * N[0][3] + Ninv[r][1] * N[1][3] + Ninv[r][2] * N[2][3];
    long double rss = 0.0L;
    for (size_t i = 0; i < n; i++) {
        const long double cyc = nu * (long double)i;
        const long double a = qes__two_pi_l * (cyc - floorl(cyc + 0.5L));
        const long double e = x[i] - (t[0] * cosl(a) + t[1] * sinl(a) + t[2]);
        rss += e * e;
    }
    const long double sigma2 = rss / (long double)(n - 3);
    /* x = t0 / sqrt2, y = -t1 / sqrt2, offset = t2: J = diag(1/sqrt2, -1/sqrt2, 1) */
    const long double jd[3] = {qes__sqrt1_2_l, -qes__sqrt1_2_l, 1.0L};
    long double cov[3][3];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            cov[r][c] = sigma2 * jd[r] * jd[c] * Ninv[r][c];
    res->n = n;
    res->n_params = 3;
    res->f_hz = f_hz;
    res->u_f_hz = 0.0;
    res->offset = (double)t[2];
    res->u_offset = (double)sqrtl(cov[2][2]);
    res->resid_rms = (double)sqrtl(rss / (long double)n);
    res->sigma = (double)sqrtl(sigma2);
    res->iterations = 0;
    res->n_tones = 1;
    fill_tone(&res->tone[0], 1, jd[0] * t[0], jd[1] * t[1], cov[0][0], cov[0][1], cov[1][1]);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            res->cov[r][c] = (double)cov[r][c];
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Multi-frequency Levenberg-Marquardt                                      */

#define QES__MFP QES_SINEFIT_MF_MAX_PARAMS

struct qes_sinefit_mf {
    size_t n_max;
    size_t nk;
    uint32_t fixed;
    unsigned max_iter;
    double xtol;
    size_t p;
    /* column of a_k, b_k, P_k (SIZE_MAX when fixed) in the parameter vector */
    size_t ia[QES_SINEFIT_MF_MAX_TERMS], ib[QES_SINEFIT_MF_MAX_TERMS], ip[QES_SINEFIT_MF_MAX_TERMS];
    double *w;                      /* chunk workspace, (p + 1) columns */
    long double *r, *r2;            /* (p + 1)^2 */
    long double *m1, *m2, *m3, *m4; /* p x p */
};

int qes_sinefit_mf_create(const struct qes_sinefit_mf_desc *desc, struct qes_sinefit_mf **out)
{
    if (!out)
        return QES_EINVAL;
    *out = NULL;
    if (!desc)
        return QES_EINVAL;
    const size_t nk = desc->n_terms;
    if (nk < 1 || nk > QES_SINEFIT_MF_MAX_TERMS)
        return QES_EINVAL;
    if (desc->period_fixed_mask >> nk)
        return QES_EINVAL;
    if (desc->max_iter > 10000)
        return QES_EINVAL;
    if (desc->xtol != 0.0 && !(desc->xtol >= 1e-15 && desc->xtol <= 1e-3))
        return QES_EINVAL;
    struct qes_sinefit_mf tmpl = {0};
    tmpl.nk = nk;
    tmpl.fixed = desc->period_fixed_mask;
    tmpl.max_iter = desc->max_iter ? desc->max_iter : 200;
    tmpl.xtol = desc->xtol != 0.0 ? desc->xtol : 1e-12;
    size_t p = 1;
    for (size_t k = 0; k < nk; k++) {
        tmpl.ia[k] = p++;
        tmpl.ib[k] = p++;
        tmpl.ip[k] = (tmpl.fixed >> k) & 1u ? SIZE_MAX : p++;
    }
    tmpl.p = p;
    if (desc->n_max < p + 1 || desc->n_max > QES_SINEFIT_N_LIMIT)
        return QES_EINVAL;
    tmpl.n_max = desc->n_max;

    struct qes_sinefit_mf *m = malloc(sizeof *m);
    if (!m)
        return QES_ENOMEM;
    *m = tmpl;
    const size_t np = p + 1;
    m->w = malloc(QES__CH * np * sizeof *m->w);
    m->r = malloc(np * np * sizeof *m->r);
    m->r2 = malloc(np * np * sizeof *m->r2);
    m->m1 = malloc(p * p * sizeof *m->m1);
    m->m2 = malloc(p * p * sizeof *m->m2);
    m->m3 = malloc(p * p * sizeof *m->m3);
    m->m4 = malloc(p * p * sizeof *m->m4);
    if (!m->w || !m->r || !m->r2 || !m->m1 || !m->m2 || !m->m3 || !m->m4) {
        qes_sinefit_mf_destroy(m);
        return QES_ENOMEM;
    }
    *out = m;
    return 0;
}

void qes_sinefit_mf_destroy(struct qes_sinefit_mf *m)
{
    if (!m)
        return;
    free(m->w);
    free(m->r);
    free(m->r2);
    free(m->m1);
    free(m->m2);
    free(m->m3);
    free(m->m4);
    free(m);
}

/*
 * Residuals r = y - model at the internal parameters th (centred amplitudes,
 * periods per[]), abscissae centred on tc.  Returns the RSS (long double
 * sum); with jac, also folds [J r] (J = d model / d th) into m->r.
 */
static long double mf_pass(struct qes_sinefit_mf *m, const double *t, const double *y, size_t n,
                           double tc, const double *th, const double *per, int jac)
{
    const size_t p = m->p, np = p + 1;
    double *w = m->w;
    long double rss = 0.0L;
    if (jac)
        memset(m->r, 0, np * np * sizeof *m->r);
    for (size_t i0 = 0; i0 < n; i0 += QES__CH) {
        const size_t mm = n - i0 < QES__CH ? n - i0 : QES__CH;
        for (size_t i = 0; i < mm; i++) {
            const double tau = t[i0 + i] - tc;
            double model = th[0];
            w[i] = 1.0;
            for (size_t k = 0; k < m->nk; k++) {
                const double q = tau / per[k];
                const double ang = qes__two_pi * (q - nearbyint(q));
                const double cs = cos(ang), sn = sin(ang);
                const double a = th[m->ia[k]], b = th[m->ib[k]];
                model += a * cs + b * sn;
                w[m->ia[k] * QES__CH + i] = cs;
                w[m->ib[k] * QES__CH + i] = sn;
                /* d/dP cos(2 pi tau/P) = sin * 2 pi tau / P^2, d/dP sin = -cos * 2 pi tau / P^2 */
                if (m->ip[k] != SIZE_MAX)
                    w[m->ip[k] * QES__CH + i] = (a * sn - b * cs) * qes__two_pi * q / per[k];
            }
            const double e = y[i0 + i] - model;
            w[p * QES__CH + i] = e;
            rss += (long double)e * e;
        }
        if (jac)
            qr_fold(m->r, np, w, QES__CH, mm);
    }
    return rss;
}

/* Periods from the parameter vector (free ones) or the start (fixed ones). */
static void mf_periods(const struct qes_sinefit_mf *m, const double *th, const double *start_per,
                       double *per)
{
    for (size_t k = 0; k < m->nk; k++)
        per[k] = m->ip[k] == SIZE_MAX ? start_per[k] : th[m->ip[k]];
}

static void mf_result_nan(struct qes_sinefit_mf_result *res)
{
    double *v[2][3] = {{res->p.a, res->p.b, res->p.period}, {res->u.a, res->u.b, res->u.period}};
    res->p.offset = res->u.offset = NAN;
    for (int s = 0; s < 2; s++)
        for (int j = 0; j < 3; j++)
            for (size_t k = 0; k < QES_SINEFIT_MF_MAX_TERMS; k++)
                v[s][j][k] = NAN;
    res->n = res->n_params = 0;
    res->rss = res->resid_rms = res->sigma = NAN;
    res->iterations = res->evaluations = 0;
    for (size_t i = 0; i < QES__MFP; i++)
        for (size_t j = 0; j < QES__MFP; j++)
            res->cov[i][j] = NAN;
}

/* Column norms of J from its factor: ||J_j||^2 = sum_i<=j R_ij^2. */
static long double mf_colnorm(const long double *R, size_t np, size_t j)
{
    long double v = 0.0L;
    for (size_t i = 0; i <= j; i++)
        v += R[i * np + j] * R[i * np + j];
    return sqrtl(v);
}

static int mf_run(struct qes_sinefit_mf *m, const double *t, const double *y, size_t n,
                  const struct qes_sinefit_mf_params *start, struct qes_sinefit_mf_result *res)
{
    const size_t p = m->p, np = p + 1, nk = m->nk;
    long double sum_t = 0.0L;
    for (size_t i = 0; i < n; i++)
        sum_t += t[i];
    const double tc = (double)(sum_t / (long double)n);

    /* Start values on the centred axis: a cos(2 pi t/P) + b sin(2 pi t/P) with
     * t = tau + tc is a' cos(2 pi tau/P) + b' sin(..) with (a', b') = (a, b)
     * rotated by -psi, psi = 2 pi tc / P. */
    double th[QES__MFP], thn[QES__MFP], per[QES_SINEFIT_MF_MAX_TERMS];
    th[0] = start->offset;
    for (size_t k = 0; k < nk; k++) {
        const double q = tc / start->period[k];
        const double psi = qes__two_pi * (q - nearbyint(q));
        const double cp = cos(psi), sp = sin(psi);
        th[m->ia[k]] = start->a[k] * cp + start->b[k] * sp;
        th[m->ib[k]] = -start->a[k] * sp + start->b[k] * cp;
        if (m->ip[k] != SIZE_MAX)
            th[m->ip[k]] = start->period[k];
    }

    mf_periods(m, th, start->period, per);
    long double rss = mf_pass(m, t, y, n, tc, th, per, 1);
    unsigned jevals = 1, fevals = 0;
    if (!isfinite(rss) || !qr_finite(m->r, np))
        return QES_EINVAL;
    long double dsc[QES__MFP];
    for (size_t j = 0; j < p; j++) {
        dsc[j] = mf_colnorm(m->r, np, j);
        if (dsc[j] == 0.0L)
            dsc[j] = 1.0L;
    }
    long double lambda = 1e-3L, grow = 2.0L;
    long double dn_flat = INFINITY; /* last step taken where the RSS was flat to rounding */
    unsigned rejects = 0;
    for (;;) {
        /* Step: min ||R d - z||^2 + lambda ||D d||^2 by folding the rows
         * sqrt(lambda) D_j e_j (right-hand side 0) into a copy of R. */
        memcpy(m->r2, m->r, np * np * sizeof *m->r);
        double *w = m->w;
        memset(w, 0, QES__CH * np * sizeof *w);
        const long double sl = sqrtl(lambda);
        for (size_t j = 0; j < p; j++)
            w[j * QES__CH + j] = (double)(sl * dsc[j]);
        qr_fold(m->r2, np, w, QES__CH, p);
        long double d[QES__MFP];
        qr_solve(m->r2, np, p, p, d);
        long double dn = 0.0L, xn = 0.0L;
        for (size_t j = 0; j < p; j++) {
            dn += (dsc[j] * d[j]) * (dsc[j] * d[j]);
            xn += (dsc[j] * th[j]) * (dsc[j] * th[j]);
        }
        if (!isfinite(dn))
            return QES_ERANGE;
        for (size_t j = 0; j < p; j++)
            thn[j] = (double)(th[j] + d[j]);
        double pern[QES_SINEFIT_MF_MAX_TERMS];
        mf_periods(m, thn, start->period, pern);
        int ok = 1;
        for (size_t k = 0; k < nk; k++)
            ok &= isfinite(pern[k]) && pern[k] > 0.0;
        long double rss_n = INFINITY;
        if (ok) {
            rss_n = mf_pass(m, t, y, n, tc, thn, pern, 0);
            fevals++;
        }
        const long double slack = 32.0L * DBL_EPSILON * rss;
        if (sqrtl(dn) <= m->xtol * sqrtl(xn)) {
            /* Converged: the remaining step is below xtol.  Take it unless
             * it raises the RSS (on a zero-residual problem this last
             * Gauss-Newton step squares the error); the factor at th serves
             * for the covariance (J moves by ~xtol relative). */
            if (isfinite(rss_n) && rss_n <= rss + slack) {
                memcpy(th, thn, p * sizeof th[0]);
                memcpy(per, pern, nk * sizeof per[0]);
                rss = rss_n;
            }
            break;
        }
        /*
         * Near the minimum the RSS is flat to rounding (each residual
         * carries a few ulp of the model), and RSS comparisons stop
         * meaning anything long before the parameters have converged when
         * convergence is linear (large-residual problems such as ENSO:
         * rate ~0.64 per step).  The Gauss-Newton step itself comes from
         * J^T r, which stays accurate, so steps that do not raise the RSS
         * beyond its rounding are taken (without touching lambda), until
         * the step falls below xtol or stops shrinking (its own rounding
         * floor).
         */
        if (isfinite(rss_n) && rss_n <= rss + slack) {
            const int flat = !(rss_n < rss - slack);
            if (flat && dn >= dn_flat)
                break; /* steps no longer shrink: converged to rounding */
            /* Predicted reduction of the linear model: ||R d||^2 + 2 lambda ||D d||^2. */
            long double rd = 0.0L;
            for (size_t i = 0; i < p; i++) {
                long double v = 0.0L;
                for (size_t k = i; k < p; k++)
                    v += m->r[i * np + k] * d[k];
                rd += v * v;
            }
            const long double rho = (rss - rss_n) / (rd + 2.0L * lambda * dn);
            memcpy(th, thn, p * sizeof th[0]);
            memcpy(per, pern, nk * sizeof per[0]);
            if (jevals >= m->max_iter)
                return QES_ERANGE;
            rss = mf_pass(m, t, y, n, tc, th, per, 1);
            jevals++;
            for (size_t j = 0; j < p; j++)
                dsc[j] = fmaxl(dsc[j], mf_colnorm(m->r, np, j));
            if (flat) {
                dn_flat = dn;
            } else {
                /* Nielsen's update: lambda *= max(1/3, 1 - (2 rho - 1)^3) */
                const long double f = 1.0L - powl(2.0L * rho - 1.0L, 3);
                lambda *= f > 1.0L / 3.0L ? f : 1.0L / 3.0L;
                grow = 2.0L;
            }
            rejects = 0;
        } else {
            lambda *= grow;
            grow *= 2.0L;
            if (++rejects > 60)
                return QES_ERANGE;
        }
    }
    if (!qr_rank_ok(m->r, np, p))
        return QES_ERANGE;

    /* Covariance on the internal parameters, then to the reported ones. */
    const long double sigma2 = rss / (long double)(n - p);
    long double *cint = m->m1, *J = m->m2, *tmp = m->m3, *cout = m->m4;
    qr_cov(m->r, np, p, sigma2, tmp, cint);
    memset(J, 0, p * p * sizeof *J);
    J[0] = 1.0L;
    res->p.offset = th[0];
    for (size_t k = 0; k < nk; k++) {
        const double q = tc / per[k];
        const long double psi = qes__two_pi_l * (q - nearbyint(q));
        const long double cp = cosl(psi), sp = sinl(psi);
        const size_t ia = m->ia[k], ib = m->ib[k], ip = m->ip[k];
        const long double a1 = th[ia], b1 = th[ib];
        const long double a = a1 * cp - b1 * sp, b = a1 * sp + b1 * cp;
        res->p.a[k] = (double)a;
        res->p.b[k] = (double)b;
        res->p.period[k] = per[k];
        J[ia * p + ia] = cp;
        J[ia * p + ib] = -sp;
        J[ib * p + ia] = sp;
        J[ib * p + ib] = cp;
        if (ip != SIZE_MAX) {
            /* psi = 2 pi tc / P: da/dpsi = -b, db/dpsi = a, dpsi/dP = -2 pi tc / P^2 */
            const long double dpsi =
                    -qes__two_pi_l * (long double)tc / ((long double)per[k] * per[k]);
            J[ia * p + ip] = -b * dpsi;
            J[ib * p + ip] = a * dpsi;
            J[ip * p + ip] = 1.0L;
        }
    }
    sandwich(J, cint, p, tmp, cout);
    res->u.offset = (double)sqrtl(fmaxl(cout[0], 0.0L));
    for (size_t k = 0; k < nk; k++) {
        const size_t ia = m->ia[k], ib = m->ib[k], ip = m->ip[k];
        res->u.a[k] = (double)sqrtl(fmaxl(cout[ia * p + ia], 0.0L));
        res->u.b[k] = (double)sqrtl(fmaxl(cout[ib * p + ib], 0.0L));
        res->u.period[k] = ip == SIZE_MAX ? 0.0 : (double)sqrtl(fmaxl(cout[ip * p + ip], 0.0L));
    }
    for (size_t k = nk; k < QES_SINEFIT_MF_MAX_TERMS; k++) {
        res->p.a[k] = res->p.b[k] = res->p.period[k] = 0.0;
        res->u.a[k] = res->u.b[k] = res->u.period[k] = 0.0;
    }
    for (size_t i = 0; i < p; i++)
        for (size_t j = 0; j < p; j++)
            res->cov[i][j] = (double)cout[i * p + j];
    res->n = n;
    res->n_params = p;
    res->rss = (double)rss;
    res->resid_rms = (double)sqrtl(rss / (long double)n);
    res->sigma = (double)sqrtl(sigma2);
    res->iterations = jevals;
    res->evaluations = fevals;
    return 0;
}

int qes_sinefit_mf_execute(struct qes_sinefit_mf *m, const double *t, const double *y, size_t n,
                           const struct qes_sinefit_mf_params *start,
                           struct qes_sinefit_mf_result *res)
{
    if (!res)
        return QES_EINVAL;
    mf_result_nan(res);
    if (!m || !t || !y || !start)
        return QES_EINVAL;
    if (n < m->p + 1 || n > m->n_max)
        return QES_EINVAL;
    if (!isfinite(start->offset))
        return QES_EINVAL;
    for (size_t k = 0; k < m->nk; k++) {
        if (!isfinite(start->a[k]) || !isfinite(start->b[k]))
            return QES_EINVAL;
        if (!(isfinite(start->period[k]) && start->period[k] > 0.0))
            return QES_EINVAL;
    }
    const int rc = mf_run(m, t, y, n, start, res);
    if (rc)
        mf_result_nan(res);
    return rc;
}
