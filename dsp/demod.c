/*
 * Streaming dual-phase demodulator (see demod.h).
 *
 * The filter as a linear system.  Let u[t] = x[t] e^{-j theta_t} be the
 * demodulated input and s the state (the m = order stage outputs; with sinc
 * averaging a moving-average state v first, m = order + 1).  The per-sample
 * recursion
 *
 *     v    += (u[t] - u[t-N]) / N             (sinc only: moving average)
 *     y_1  += alpha (in - y_1),  in = v or u[t]
 *     y_i  += alpha (y_{i-1} - y_i),  i = 2..order   (y_{i-1} already updated)
 *
 * is linear and time-invariant, so over L consecutive samples
 *
 *     s[end] = P(L) s[start] + sum_{i<L} w[L-1-i] in[start+i]
 *
 * with P(L) (m x m, lower triangular) the free response after L steps and w[k]
 * (m values) the impulse response at lag k.  Both are computed once at create
 * by running the recursion in long double.  The demodulation is folded into
 * the weights: in[start+i] = x e^{-j(theta_v + phi_i)} with phi_i the
 * reference advance over i samples, so a block costs one multiply-add per
 * sample and table column (2m columns: real and imaginary weight of each
 * state) and one rotation by e^{-j theta_v} at the end.  theta_v is exact in
 * integers for every block, so there is no phase drift.
 *
 * Blocks are cut on a grid of the run (multiples of B and of D), not by the
 * calls, and a block is processed only when complete (partial input is kept
 * in `pend`), so the results do not depend on how the stream is cut into
 * calls.  A block of length L < B uses the last L rows of the tables
 * (virtual block start end - B) and P(L).
 *
 * DC exactness.  For a constant input every state is a fixed point: for each
 * row i, sum_k P_ik + sum_{k<L} w_i[k] = 1 (no sinc; with sinc the input is
 * u[t] - u[t-N] = 0 and sum_k P_ik = 1).  The update is applied as
 * s_i += (P_ii - 1) s_i + sum_{k<i} P_ik s_k + input, with P_ii - 1 taken as
 * minus the sum of the other rounded coefficients of the row, so the identity
 * holds to rounding of the stored values and the DC gain stays 1 even when
 * P_ii is within 1e-12 of 1 (large fs tau), where rounding P_ii itself would
 * misplace the gain by u / (1 - P_ii).
 */
#include "dsp/demod.h"

#include "common/err.h"
#include "common/ratio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double qes__two_pi = 6.283185307179586476925286766559;
static const long double qes__two_pi_l = 6.283185307179586476925286766559L;
static const double qes__sqrt2 = 1.4142135623730950488016887242097;
static const double qes__pi = 3.1415926535897932384626433832795;

#define QES__MAX_STATE (QES_DEMOD_MAX_ORDER + 1)
#define QES__MAX_ROW   20 /* 2 * QES__MAX_STATE padded to a multiple of 4 */
#define QES__CACHE     64 /* rotation cache entries */
#define QES__Q_MAX     (1ULL << 53)

__extension__ typedef unsigned __int128 qes__u128;

typedef void (*qes__dot_fn)(const double *restrict x, const double *restrict tab, size_t n,
                            double *restrict acc);

struct qes__rot {
    uint64_t k; /* phase index, UINT64_MAX when empty */
    double c, s;
};

struct qes_demod {
    struct qes_demod_info info;
    double fs_hz;
    double tau_s;
    double alpha;
    double enbw_analytic;
    double enbw_discrete;
    uint64_t q;    /* f / fs = p / q */
    uint64_t step; /* (h p) mod q */
    uint64_t D;    /* decimation */
    uint64_t N;    /* sinc samples, 0 = off */
    uint64_t settle;
    unsigned order; /* n */
    unsigned m;     /* state size: n, or n + 1 with sinc */
    enum qes_demod_impl impl;

    /* block implementations */
    size_t B;        /* block length */
    size_t R;        /* table row width: 2 m rounded up to a multiple of 4 */
    size_t T;        /* propagation row width: m (m + 1) / 2 */
    uint64_t step_B; /* (step B) mod q */
    uint64_t resync_every;
    qes__dot_fn dot;
    double *tab;     /* B rows of R: weight of lag B-1-j times (cos, sin) phi_j */
    double *prop;    /* B + 1 rows of T: P(L), packed lower triangle, diagonal P_ii - 1 */
    double *cphi;    /* B: cos phi_j (sinc resync) */
    double *sphi;    /* B: sin phi_j */
    double *pend;    /* B: samples of an incomplete block */
    double *scratch; /* B: x[t] - x[t-N] (sinc) */
    struct qes__rot cache[QES__CACHE];

    /* sinc history and twin reference table */
    double *hist; /* N raw samples, position t mod N */
    double *qc;   /* twin: cos of 2 pi k / q, q entries (q <= 2^20) */
    double *qs;

    /* stream state */
    int started;
    uint64_t start;       /* first sample after create or reset */
    uint64_t pos;         /* next expected sample */
    uint64_t next_B;      /* next block-grid boundary */
    uint64_t next_D;      /* next output boundary */
    uint64_t last_resync; /* sinc: where the moving average was last recomputed */
    uint64_t k_seg;       /* phase index of the current block start (twin: of pos) */
    uint64_t hist_pos;    /* ring position of the current block start (twin: of pos) */
    size_t n_pend;
    /* block state, each value as an unevaluated sum hi + lo (see block_segment) */
    double s_re[QES__MAX_STATE], s_im[QES__MAX_STATE];
    double l_re[QES__MAX_STATE], l_im[QES__MAX_STATE];
    /* twin state */
    long double y_re[QES__MAX_STATE], y_im[QES__MAX_STATE];
    long double sum_re, sum_im; /* running sum of the moving average */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        const uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Smallest multiple of m strictly above s, saturated at UINT64_MAX. */
static uint64_t next_multiple(uint64_t s, uint64_t m)
{
    return sat_add(s - s % m, m);
}

/* 2 pi k / q reduced to (-pi, pi] before rounding, 0 <= k < q <= 2^53. */
static double ref_angle(uint64_t k, uint64_t q)
{
    const double kk = 2 * k <= q ? (double)k : -(double)(q - k);
    return qes__two_pi * kk / (double)q;
}

static long double ref_angle_l(uint64_t k, uint64_t q)
{
    const long double kk = 2 * k <= q ? (long double)k : -(long double)(q - k);
    return qes__two_pi_l * kk / (long double)q;
}

/* Values this small only cost time (denormal products); they change sums by
 * less than 1e-289 relative. */
static double flush_tiny(long double v)
{
    return fabsl(v) < 0x1p-960L ? 0.0 : (double)v;
}

/* ------------------------------------------------------------------------ */
/* Dot-product kernels: acc[c] = sum_j x[j] tab[j R + c] for every column c.  */
/*
 * The hot loop.  Each row of the table is R doubles (R = 4 V doubles, V = 1..5
 * vectors of 4).  U rows are summed into U separate accumulator sets so that
 * the adds do not wait on each other's latency; the sets are combined in a
 * fixed order at the end.  Every accumulator element is a scalar chain whose
 * operation order does not depend on the vector width, and ISO C mode keeps
 * multiply and add separate (no FMA contraction), so the AVX2 and the SSE2
 * kernels give bit-identical results.  The vectors are GCC vector extensions
 * (elementwise operations only); `GCC unroll` keeps the accumulators in
 * registers.
 */
#define QES__DOT_BODY(VT, W, V, U)                                                                 \
    do {                                                                                           \
        VT a_[U][(V)*4 / (W)];                                                                     \
        _Pragma("GCC unroll 8") for (int u_ = 0; u_ < (U); u_++)                                   \
                _Pragma("GCC unroll 10") for (int v_ = 0; v_ < (V)*4 / (W); v_++) a_[u_][v_] =     \
                        (VT){0};                                                                   \
        const VT *tv_ = (const VT *)(const void *)tab;                                             \
        enum { NV_ = (V)*4 / (W) };                                                                \
        size_t j_ = 0;                                                                             \
        for (; j_ + (U) <= n; j_ += (U)) {                                                         \
            __builtin_prefetch((const void *)((uintptr_t)(x + j_) + 2048));                        \
            _Pragma("GCC unroll 8") for (int u_ = 0; u_ < (U); u_++)                               \
            {                                                                                      \
                const double xs_ = x[j_ + u_];                                                     \
                const VT *row_ = tv_ + (j_ + u_) * NV_;                                            \
                _Pragma("GCC unroll 10") for (int v_ = 0; v_ < NV_; v_++) a_[u_][v_] +=            \
                        xs_ * row_[v_];                                                            \
            }                                                                                      \
        }                                                                                          \
        for (; j_ < n; j_++) {                                                                     \
            const double xs_ = x[j_];                                                              \
            const VT *row_ = tv_ + j_ * NV_;                                                       \
            _Pragma("GCC unroll 10") for (int v_ = 0; v_ < NV_; v_++) a_[0][v_] += xs_ * row_[v_]; \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int u_ = 1; u_ < (U); u_++)                                   \
                _Pragma("GCC unroll 10") for (int v_ = 0; v_ < NV_; v_++) a_[0][v_] += a_[u_][v_]; \
        memcpy(acc, a_[0], sizeof a_[0]);                                                          \
    } while (0)

/* Accumulator sets per row width: enough independent chains, few spills. */
#define QES__U_FOR_V(V) ((V) <= 2 ? 4 : 2)

typedef double qes__v2d __attribute__((vector_size(16), may_alias));

#define QES__DEF_DOT_GENERIC(V)                                                                 \
    static void dot_generic_##V(const double *restrict x, const double *restrict tab, size_t n, \
                                double *restrict acc)                                           \
    {                                                                                           \
        QES__DOT_BODY(qes__v2d, 2, V, QES__U_FOR_V(V));                                         \
    }
QES__DEF_DOT_GENERIC(1)
QES__DEF_DOT_GENERIC(2)
QES__DEF_DOT_GENERIC(3)
QES__DEF_DOT_GENERIC(4)
QES__DEF_DOT_GENERIC(5)

static const qes__dot_fn dot_generic[5] = {dot_generic_1, dot_generic_2, dot_generic_3,
                                           dot_generic_4, dot_generic_5};

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define QES__HAVE_AVX2 1
typedef double qes__v4d __attribute__((vector_size(32), may_alias));
#define QES__DEF_DOT_AVX2(V)                                                                      \
    __attribute__((target("avx2"))) static void dot_avx2_##V(                                     \
            const double *restrict x, const double *restrict tab, size_t n, double *restrict acc) \
    {                                                                                             \
        QES__DOT_BODY(qes__v4d, 4, V, QES__U_FOR_V(V));                                           \
    }
QES__DEF_DOT_AVX2(1)
QES__DEF_DOT_AVX2(2)
QES__DEF_DOT_AVX2(3)
QES__DEF_DOT_AVX2(4)
QES__DEF_DOT_AVX2(5)

static const qes__dot_fn dot_avx2[5] = {dot_avx2_1, dot_avx2_2, dot_avx2_3, dot_avx2_4, dot_avx2_5};

static int cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
}
#else
#define QES__HAVE_AVX2 0
#endif

/* ------------------------------------------------------------------------ */
/* Description                                                               */

struct qes__cfg {
    uint64_t p, q, step, D, N, settle;
    unsigned order, harmonic;
    enum qes_demod_impl impl;
};

static int resolve_ratio(const struct qes_demod_desc *d, uint64_t *p, uint64_t *q)
{
    if (d->freq_den != 0) {
        if (d->freq_num == 0 || d->freq_den > QES__Q_MAX)
            return QES_EINVAL;
        const uint64_t g = gcd_u64(d->freq_num, d->freq_den);
        *p = d->freq_num / g;
        *q = d->freq_den / g;
        if (d->freq_hz != 0.0) {
            const double f = d->fs_hz * ((double)*p / (double)*q);
            if (!(fabs(d->freq_hz - f) <= 1e-9 * f))
                return QES_EINVAL;
        }
        return 0;
    }
    const double f = d->freq_hz, fs = d->fs_hz;
    if (!(f > 0.0) || !isfinite(f))
        return QES_EINVAL;
    /* Integer rates (the usual case): the exact ratio. */
    if (f == floor(f) && fs == floor(fs) && fs <= 0x1p53 && f <= fs) {
        const uint64_t fi = (uint64_t)f, fsi = (uint64_t)fs;
        const uint64_t g = gcd_u64(fi, fsi);
        *p = fi / g;
        *q = fsi / g;
        return 0;
    }
    /* Otherwise the simplest ratio within one ulp of f / fs. */
    if (qes_ratio_approx(f / fs, QES__Q_MAX, 0x1p-52, p, q) != 0 || *p == 0)
        return QES_EINVAL;
    return 0;
}

static int check_desc(const struct qes_demod_desc *d, struct qes__cfg *c)
{
    if (!d)
        return QES_EINVAL;
    memset(c, 0, sizeof *c);
    const double fs = d->fs_hz;
    if (!(fs > 0.0) || !isfinite(fs))
        return QES_EINVAL;
    if (!(d->tau_s > 0.0) || !isfinite(d->tau_s) || !(fs * d->tau_s <= 1e15))
        return QES_EINVAL;
    if (!(d->output_rate_hz > 0.0) || !isfinite(d->output_rate_hz))
        return QES_EINVAL;
    if (!(d->settle_tau >= 0.0) || !isfinite(d->settle_tau))
        return QES_EINVAL;
    if (!isfinite(d->freq_hz) || d->freq_hz < 0.0)
        return QES_EINVAL;
    c->order = d->order ? d->order : 4;
    c->harmonic = d->harmonic ? d->harmonic : 1;
    if (c->order > QES_DEMOD_MAX_ORDER)
        return QES_EINVAL;
    if (d->impl != QES_DEMOD_BLOCK && d->impl != QES_DEMOD_BLOCK_GENERIC &&
        d->impl != QES_DEMOD_SAMPLE)
        return QES_EINVAL;
    c->impl = d->impl;

    int rc = resolve_ratio(d, &c->p, &c->q);
    if (rc)
        return rc;
    /* 0 < h f < fs / 2, i.e. 2 h p < q (no overflow: h < 2^32, p < 2^53). */
    const qes__u128 hp = (qes__u128)c->harmonic * c->p;
    if (hp == 0 || 2 * hp >= c->q)
        return QES_EINVAL;
    c->step = (uint64_t)hp; /* < q / 2 */

    /* D = fs / output_rate, an integer. */
    const double ratio = fs / d->output_rate_hz;
    if (!(ratio >= 0.5) || ratio > 0x1p62)
        return QES_EINVAL;
    const double dr = nearbyint(ratio);
    if (dr < 1.0 || !(fabs(ratio - dr) <= 1e-12 * ratio))
        return QES_EINVAL;
    c->D = (uint64_t)dr;

    /* Sinc: N = sinc_periods q / p samples, exactly sinc_periods periods of f. */
    if (d->sinc_periods) {
        if (d->sinc_periods % c->p != 0)
            return QES_EINVAL;
        const qes__u128 n = (qes__u128)(d->sinc_periods / c->p) * c->q;
        if (n > QES_DEMOD_MAX_SINC_SAMPLES)
            return QES_EINVAL;
        c->N = (uint64_t)n;
    }
    const double st = ceil(d->settle_tau * d->tau_s * fs);
    if (!(st <= 0x1p62))
        return QES_EINVAL;
    c->settle = (uint64_t)st + c->N;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* ENBW                                                                      */

double qes_demod_enbw_analytic_hz(unsigned order, double tau_s)
{
    if (order < 1 || order > QES_DEMOD_MAX_ORDER || !(tau_s > 0.0))
        return NAN;
    /* C(2n-2, n-1) / 4^n: exact in double for n <= 8. */
    double c = 1.0;
    for (unsigned k = 1; k <= order - 1; k++)
        c = c * (double)(order - 1 + k) / (double)k;
    return c / (ldexp(1.0, 2 * (int)order) * tau_s);
}

/*
 * ENBW of the discrete filter g = h * box_N, h the impulse response of
 * (alpha / (1 - a z^-1))^n, a = 1 - alpha, box_N the N-sample average
 * (N <= 1: none).  Its DC gain is 1, so ENBW = fs / 2 * sum g^2.
 *
 * With h_j the response of stage j, Q_j = sum_m h_n[m] h_j[m]
 *   = alpha^{n+j} sum_m C(m+n-1, n-1) C(m+j-1, j-1) a^{2m}
 *   = alpha (2 - alpha)^{-(n+j-1)} sum_i C(n-1, i) C(j-1, i) a^{2i}
 * (sum_m C(m+A, A) C(m+B, B) x^m = sum_i C(A,i) C(B,i) x^i / (1-x)^{A+B+1},
 * and 1 - a^2 = alpha (2 - alpha)); sum h^2 = Q_n.  The autocorrelation
 * R[k] = sum_m h_n[m] h_n[m+k] = sum_j T_{n-j}(k) Q_j, where
 * T_d(k) = C(k+d-1, d) alpha^d a^k is the free response of stage j+d k steps
 * after a unit state in stage j; and sum g^2 = sum_{|k|<N} (N-|k|) R[|k|] / N^2.
 * All terms are positive: no cancellation.
 */
static double enbw_discrete(unsigned n, double alpha, uint64_t N, double fs)
{
    const long double al = alpha, a = 1.0L - al, a2 = a * a, tm = 2.0L - al;
    long double binom[QES_DEMOD_MAX_ORDER][QES_DEMOD_MAX_ORDER];
    for (unsigned i = 0; i < n; i++) {
        binom[i][0] = 1.0L;
        for (unsigned k = 1; k <= i; k++)
            binom[i][k] = binom[i][k - 1] * (long double)(i - k + 1) / (long double)k;
    }
    long double Q[QES_DEMOD_MAX_ORDER + 1];
    for (unsigned j = 1; j <= n; j++) {
        long double s = 0.0L, x = 1.0L;
        for (unsigned i = 0; i < j && i < n; i++) {
            s += binom[n - 1][i] * binom[j - 1][i] * x;
            x *= a2;
        }
        Q[j] = al * s / powl(tm, (long double)(n + j - 1));
    }
    if (N <= 1)
        return (double)(0.5L * (long double)fs * Q[n]);

    long double pw[QES_DEMOD_MAX_ORDER]; /* alpha^d */
    long double cb[QES_DEMOD_MAX_ORDER]; /* C(k+d-1, d) */
    pw[0] = 1.0L;
    for (unsigned dd = 1; dd < n; dd++)
        pw[dd] = pw[dd - 1] * al;
    for (unsigned dd = 0; dd < n; dd++)
        cb[dd] = 1.0L; /* k = 1 */
    const long double Nl = (long double)N;
    long double acc = 0.0L, ak = 1.0L;
    for (uint64_t k = 1; k < N; k++) {
        if (k > 1) {
            /* C(k+d-1, d) = C(k+d-2, d) + C(k+d-2, d-1) */
            for (unsigned dd = 1; dd < n; dd++)
                cb[dd] += cb[dd - 1];
        }
        ak *= a;
        long double r = 0.0L;
        for (unsigned j = 1; j <= n; j++)
            r += cb[n - j] * pw[n - j] * Q[j];
        const long double term = (Nl - (long double)k) * ak * r;
        acc += term;
        /* Past the peak of the polynomial-times-exponential, terms only fall. */
        if (ak == 0.0L || (term < 1e-30L * acc && (long double)k * al > (long double)(n + 1)))
            break;
    }
    const long double sum_g2 = (Nl * Q[n] + 2.0L * acc) / (Nl * Nl);
    return (double)(0.5L * (long double)fs * sum_g2);
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                    */

/* One step of the recursion in long double (see the file header), in the
 * form y += alpha (in - y): a = 1 - alpha is not formed, as it would drop
 * alpha's low bits when alpha is small. */
static void sim_step(long double *y, unsigned m, int sinc, long double al, long double in,
                     long double inv_n)
{
    unsigned i0 = 0;
    if (sinc) {
        y[0] += in * inv_n;
        in = y[0];
        i0 = 1;
    }
    for (unsigned i = i0; i < m; i++) {
        y[i] += al * (in - y[i]);
        in = y[i];
    }
}

static size_t choose_block(size_t R, uint64_t D)
{
    /* About 16 KiB of table: it stays in L1 next to the input stream. */
    const size_t bmax = 2048 / R;
    if (D <= bmax)
        return (size_t)D;
    /* A divisor of D keeps every block full (output boundaries fall on the grid). */
    for (size_t b = bmax; b >= bmax / 2; b--)
        if (D % b == 0)
            return b;
    return bmax;
}

static int build_tables(struct qes_demod *d)
{
    const unsigned m = d->m;
    const size_t B = d->B, R = d->R, T = d->T;
    const int sinc = d->N != 0;
    const long double al = d->alpha;
    const long double inv_n = sinc ? 1.0L / (long double)d->N : 0.0L;

    long double *imp = malloc(B * m * sizeof *imp);
    long double *fr = malloc((B + 1) * m * m * sizeof *fr);
    if (!imp || !fr) {
        free(imp);
        free(fr);
        return QES_ENOMEM;
    }
    long double y[QES__MAX_STATE];
    /* Impulse response, lags 0..B-1. */
    memset(y, 0, sizeof y);
    for (size_t t = 0; t < B; t++) {
        sim_step(y, m, sinc, al, t == 0 ? 1.0L : 0.0L, inv_n);
        memcpy(imp + t * m, y, m * sizeof y[0]);
    }
    /* Free responses P(L)[i][k], L = 0..B. */
    for (unsigned k = 0; k < m; k++) {
        memset(y, 0, sizeof y);
        y[k] = 1.0L;
        for (size_t L = 0; L <= B; L++) {
            if (L > 0)
                sim_step(y, m, sinc, al, 0.0L, inv_n);
            for (unsigned i = 0; i < m; i++)
                fr[(L * m + i) * m + k] = y[i];
        }
    }

    /* Weights with the reference advance phi_j folded in. */
    for (size_t j = 0; j < B; j++) {
        const uint64_t kj = (d->step * (uint64_t)j) % d->q; /* step < 2^53, j < 2^10 */
        const long double ph = ref_angle_l(kj, d->q);
        const long double c = cosl(ph), s = sinl(ph);
        const long double *w = imp + (B - 1 - j) * m;
        double *row = d->tab + j * R;
        for (unsigned i = 0; i < m; i++) {
            row[2 * i] = flush_tiny(w[i] * c);
            row[2 * i + 1] = flush_tiny(w[i] * s);
        }
        for (size_t c2 = 2 * m; c2 < R; c2++)
            row[c2] = 0.0;
        if (d->cphi) {
            d->cphi[j] = (double)c;
            d->sphi[j] = (double)s;
        }
    }

    /* Propagation rows; the diagonal as P_ii - 1 from the row identity. */
    long double wsum[QES__MAX_STATE] = {0}; /* sum of rounded w_i over lags < L */
    for (size_t L = 0; L <= B; L++) {
        if (L > 0)
            for (unsigned i = 0; i < m; i++)
                wsum[i] += (long double)flush_tiny(imp[(L - 1) * m + i]);
        double *row = d->prop + L * T;
        for (unsigned i = 0; i < m; i++) {
            double *ri = row + (size_t)i * (i + 1) / 2;
            long double other = sinc ? 0.0L : wsum[i];
            for (unsigned k = 0; k < i; k++) {
                ri[k] = flush_tiny(fr[(L * m + i) * m + k]);
                other += ri[k];
            }
            /* The moving average (row 0 with sinc) has P_00 = 1 exactly. */
            ri[i] = (sinc && i == 0) ? 0.0 : (double)(-other);
        }
    }
    free(imp);
    free(fr);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Create, reset, destroy                                                    */

int qes_demod_create(const struct qes_demod_desc *desc, struct qes_demod **out)
{
    if (!out)
        return QES_EINVAL;
    *out = NULL;
    struct qes__cfg c;
    int rc = check_desc(desc, &c);
    if (rc)
        return rc;

    struct qes_demod *d = calloc(1, sizeof *d);
    if (!d)
        return QES_ENOMEM;
    d->fs_hz = desc->fs_hz;
    d->tau_s = desc->tau_s;
    d->alpha = -expm1(-1.0 / (desc->fs_hz * desc->tau_s));
    d->q = c.q;
    d->step = c.step;
    d->D = c.D;
    d->N = c.N;
    d->settle = c.settle;
    d->order = c.order;
    d->m = c.order + (c.N ? 1u : 0u);
    d->impl = c.impl;
    d->enbw_analytic = qes_demod_enbw_analytic_hz(c.order, desc->tau_s);
    d->enbw_discrete = enbw_discrete(c.order, d->alpha, c.N, desc->fs_hz);
    for (size_t i = 0; i < QES__CACHE; i++)
        d->cache[i].k = UINT64_MAX;

    rc = QES_ENOMEM;
    if (c.N) {
        d->hist = calloc((size_t)c.N, sizeof *d->hist);
        if (!d->hist)
            goto err_free;
    }
    if (c.impl == QES_DEMOD_SAMPLE) {
        d->B = 1;
        if (c.q <= QES_DEMOD_SAMPLE_TABLE_MAX) {
            d->qc = malloc((size_t)c.q * sizeof *d->qc);
            d->qs = malloc((size_t)c.q * sizeof *d->qs);
            if (!d->qc || !d->qs)
                goto err_free;
            for (uint64_t k = 0; k < c.q; k++) {
                const double ph = ref_angle(k, c.q);
                d->qc[k] = cos(ph);
                d->qs[k] = sin(ph);
            }
        }
    } else {
        d->R = (2 * (size_t)d->m + 3) / 4 * 4;
        d->T = (size_t)d->m * (d->m + 1) / 2;
        d->B = choose_block(d->R, c.D);
        d->step_B = (uint64_t)(((qes__u128)d->step * d->B) % d->q);
        d->resync_every = c.N ? (16 * c.N > (1u << 20) ? 16 * c.N : (1u << 20)) : 0;
        const size_t V = d->R / 4;
        d->dot = dot_generic[V - 1];
#if QES__HAVE_AVX2
        if (c.impl == QES_DEMOD_BLOCK && cpu_has_avx2())
            d->dot = dot_avx2[V - 1];
#endif
        /* 32-byte alignment for the vector loads of the table. */
        const size_t tab_bytes = (d->B * d->R * sizeof(double) + 63) / 64 * 64;
        d->tab = aligned_alloc(64, tab_bytes);
        d->prop = malloc((d->B + 1) * d->T * sizeof *d->prop);
        d->pend = malloc(d->B * sizeof *d->pend);
        if (!d->tab || !d->prop || !d->pend)
            goto err_free;
        if (c.N) {
            d->cphi = malloc(d->B * sizeof *d->cphi);
            d->sphi = malloc(d->B * sizeof *d->sphi);
            d->scratch = malloc(d->B * sizeof *d->scratch);
            if (!d->cphi || !d->sphi || !d->scratch)
                goto err_free;
        }
        rc = build_tables(d);
        if (rc)
            goto err_free;
    }

    d->info.freq_num = c.p;
    d->info.freq_den = c.q;
    d->info.phase_step = c.step;
    d->info.decimation = c.D;
    d->info.sinc_samples = c.N;
    d->info.settle_samples = c.settle;
    d->info.block = d->B;
    d->info.alpha = d->alpha;
    d->info.order = c.order;
    d->info.harmonic = c.harmonic;
    d->info.impl = c.impl;
    qes_demod_reset(d);
    *out = d;
    return 0;

err_free:
    qes_demod_destroy(d);
    return rc;
}

int qes_demod_reset(struct qes_demod *d)
{
    if (!d)
        return QES_EINVAL;
    d->started = 0;
    d->n_pend = 0;
    memset(d->s_re, 0, sizeof d->s_re);
    memset(d->s_im, 0, sizeof d->s_im);
    memset(d->l_re, 0, sizeof d->l_re);
    memset(d->l_im, 0, sizeof d->l_im);
    memset(d->y_re, 0, sizeof d->y_re);
    memset(d->y_im, 0, sizeof d->y_im);
    d->sum_re = 0.0L;
    d->sum_im = 0.0L;
    if (d->hist)
        memset(d->hist, 0, (size_t)d->N * sizeof *d->hist);
    return 0;
}

void qes_demod_destroy(struct qes_demod *d)
{
    if (!d)
        return;
    free(d->tab);
    free(d->prop);
    free(d->cphi);
    free(d->sphi);
    free(d->pend);
    free(d->scratch);
    free(d->hist);
    free(d->qc);
    free(d->qs);
    free(d);
}

/* ------------------------------------------------------------------------ */
/* Execute                                                                   */

static void begin_stream(struct qes_demod *d, uint64_t start)
{
    d->started = 1;
    d->start = start;
    d->pos = start;
    d->next_D = next_multiple(start, d->D);
    d->next_B = next_multiple(start, d->B);
    d->last_resync = start;
    d->k_seg = qes_mulmod_u64(d->step, start % d->q, d->q);
    d->hist_pos = d->N ? (uint64_t)(start % d->N) : 0;
}

static void emit(const struct qes_demod *d, uint64_t end, struct qes_demod_out *o)
{
    const unsigned last = d->m - 1;
    o->sample = end - 1;
    if (d->impl == QES_DEMOD_SAMPLE) {
        o->x = (double)(qes__sqrt2 * d->y_re[last]);
        o->y = (double)(qes__sqrt2 * d->y_im[last]);
    } else {
        o->x = qes__sqrt2 * (d->s_re[last] + d->l_re[last]);
        o->y = qes__sqrt2 * (d->s_im[last] + d->l_im[last]);
    }
    o->r = hypot(o->x, o->y);
    double ph = atan2(o->y, o->x);
    if (ph <= -qes__pi)
        ph = qes__pi;
    o->phase_rad = ph;
    o->flags = end - d->start < d->settle ? QES_DEMOD_SETTLING : 0u;
}

/* cos and sin of the reference angle of phase index k (cached: the block
 * starts of a steady grid cycle through few indices). */
static void rotation(struct qes_demod *d, uint64_t k, double *c, double *s)
{
    struct qes__rot *e = &d->cache[k % QES__CACHE];
    if (e->k != k) {
        const double ph = ref_angle(k, d->q);
        e->k = k;
        e->c = cos(ph);
        e->s = sin(ph);
    }
    *c = e->c;
    *s = e->s;
}

/* The moving average recomputed from its definition over the history:
 * ring position p holds x[t] for t = p mod N, and q | N, so its reference
 * phase index is (step p) mod q. */
static void sinc_resync(struct qes_demod *d)
{
    const double *restrict h = d->hist;
    const double *restrict cp = d->cphi;
    const double *restrict sp = d->sphi;
    long double re = 0.0L, im = 0.0L;
    for (uint64_t p0 = 0; p0 < d->N; p0 += d->B) {
        const size_t L = (size_t)(d->N - p0 < d->B ? d->N - p0 : d->B);
        double sa = 0.0, sb = 0.0;
#pragma omp simd reduction(+ : sa, sb)
        for (size_t i = 0; i < L; i++) {
            sa += h[p0 + i] * cp[i];
            sb += h[p0 + i] * sp[i];
        }
        double c, s;
        rotation(d, qes_mulmod_u64(d->step, p0 % d->q, d->q), &c, &s);
        re += (long double)(c * sa - s * sb);
        im -= (long double)(s * sa + c * sb);
    }
    d->s_re[0] = (double)(re / (long double)d->N);
    d->s_im[0] = (double)(im / (long double)d->N);
    d->l_re[0] = 0.0;
    d->l_im[0] = 0.0;
}

/*
 * hi + lo += delta, keeping hi + lo exact (TwoSum, Knuth).  In steady state
 * the increment of a state over a block is a small difference, ~L alpha of
 * the state; added to a plain double, its rounding (u of the state) would be
 * the same every block on a periodic signal and pile up over the filter's
 * memory of 1 / (L alpha) blocks (u fs tau / B of the state: 4e-9 at
 * fs tau = 1e10), or stall the state once an increment falls under half an
 * ulp.  The low word keeps that rounding and feeds it back, so the error stays
 * a few u whatever fs tau.  Six adds per state and block; needs IEEE
 * rounding without contraction or reassociation (no -ffast-math).
 */
static void two_sum_add(double *hi, double *lo, double delta)
{
    const double b = *lo + delta;
    const double sum = *hi + b;
    const double bb = sum - *hi;
    const double err = (*hi - (sum - bb)) + (b - bb);
    *hi = sum;
    *lo = err;
}

/* Advance the block state over the block [end - L, end) with samples xs. */
static void block_segment(struct qes_demod *d, const double *xs, size_t L, uint64_t end)
{
    const unsigned m = d->m;
    const uint64_t q = d->q;
    const double *in = xs;
    if (d->N) {
        /* x[t] - x[t-N] into scratch; x[t] into the history. */
        double *restrict sc = d->scratch;
        double *restrict h = d->hist;
        size_t done = 0;
        uint64_t p = d->hist_pos;
        while (done < L) {
            size_t run = L - done;
            if (run > d->N - p)
                run = (size_t)(d->N - p);
            const double *restrict xr = xs + done;
            double *restrict hr = h + p;
            double *restrict sr = sc + done;
#pragma omp simd
            for (size_t j = 0; j < run; j++) {
                sr[j] = xr[j] - hr[j];
                hr[j] = xr[j];
            }
            done += run;
            p += run;
            if (p == d->N)
                p = 0;
        }
        d->hist_pos = p;
        in = sc;
    }

    double acc[QES__MAX_ROW];
    d->dot(in, d->tab + (d->B - L) * d->R, L, acc);

    /* Phase index of the block end and of the virtual block start end - B. */
    const uint64_t step_l = L == d->B ? d->step_B : (d->step * (uint64_t)L) % q;
    uint64_t k_end = d->k_seg + step_l;
    if (k_end >= q)
        k_end -= q;
    const uint64_t k_v = k_end >= d->step_B ? k_end - d->step_B : k_end + q - d->step_B;
    d->k_seg = k_end;
    double c, s;
    rotation(d, k_v, &c, &s);

    /* s_i += (P_ii - 1) s_i + sum_{k<i} P_ik s_k + e^{-j theta_v} (A - j B),
     * from the last state down so that the lower states are still old. */
    const double *P = d->prop + L * d->T;
    for (unsigned i = m; i-- > 0;) {
        const double *ri = P + (size_t)i * (i + 1) / 2;
        const double ac = acc[2 * i], as = acc[2 * i + 1];
        double dre = c * ac - s * as;
        double dim = -(s * ac + c * as);
        for (unsigned k = 0; k <= i; k++) {
            dre += ri[k] * d->s_re[k] + ri[k] * d->l_re[k];
            dim += ri[k] * d->s_im[k] + ri[k] * d->l_im[k];
        }
        two_sum_add(&d->s_re[i], &d->l_re[i], dre);
        two_sum_add(&d->s_im[i], &d->l_im[i], dim);
    }

    if (d->N && end - d->last_resync >= d->resync_every) {
        sinc_resync(d);
        d->last_resync = end;
    }
}

static size_t run_block(struct qes_demod *d, const double *x, size_t n, struct qes_demod_out *out)
{
    size_t i = 0, n_out = 0;
    while (i < n) {
        const uint64_t seg_start = d->pos - d->n_pend;
        const uint64_t seg_end = d->next_B < d->next_D ? d->next_B : d->next_D;
        const size_t L = (size_t)(seg_end - seg_start);
        const size_t need = L - d->n_pend;
        const size_t avail = n - i;
        if (avail < need) {
            memcpy(d->pend + d->n_pend, x + i, avail * sizeof *x);
            d->n_pend += avail;
            d->pos += avail;
            break;
        }
        const double *xs = x + i;
        if (d->n_pend) {
            memcpy(d->pend + d->n_pend, x + i, need * sizeof *x);
            xs = d->pend;
        }
        i += need;
        d->pos += need;
        d->n_pend = 0;
        block_segment(d, xs, L, seg_end);
        if (seg_end == d->next_B)
            d->next_B = sat_add(d->next_B, d->B);
        if (seg_end == d->next_D) {
            emit(d, seg_end, out + n_out++);
            d->next_D = sat_add(d->next_D, d->D);
        }
    }
    return n_out;
}

/* The per-sample twin. */
static size_t run_sample(struct qes_demod *d, const double *x, size_t n, struct qes_demod_out *out)
{
    const long double al = d->alpha;
    const unsigned order = d->order;
    const int sinc = d->N != 0;
    long double *yr = d->y_re + (sinc ? 1 : 0);
    long double *yi = d->y_im + (sinc ? 1 : 0);
    size_t n_out = 0;
    for (size_t i = 0; i < n; i++) {
        const uint64_t k = d->k_seg;
        double c, s;
        if (d->qc) {
            c = d->qc[k];
            s = d->qs[k];
        } else {
            const double ph = ref_angle(k, d->q);
            c = cos(ph);
            s = sin(ph);
        }
        d->k_seg = k + d->step >= d->q ? k + d->step - d->q : k + d->step;
        long double in_re = x[i] * c, in_im = -(x[i] * s);
        if (sinc) {
            /* u[t] - u[t-N] = (x[t] - x[t-N]) e^{-j theta_t}: q divides N. */
            const double dx = x[i] - d->hist[d->hist_pos];
            d->hist[d->hist_pos] = x[i];
            if (++d->hist_pos == d->N)
                d->hist_pos = 0;
            d->sum_re += (long double)dx * c;
            d->sum_im -= (long double)dx * s;
            in_re = d->sum_re / (long double)d->N;
            in_im = d->sum_im / (long double)d->N;
            d->y_re[0] = in_re;
            d->y_im[0] = in_im;
        }
        for (unsigned st = 0; st < order; st++) {
            yr[st] += al * (in_re - yr[st]);
            yi[st] += al * (in_im - yi[st]);
            in_re = yr[st];
            in_im = yi[st];
        }
        d->pos++;
        if (d->pos == d->next_D) {
            emit(d, d->pos, out + n_out++);
            d->next_D = sat_add(d->next_D, d->D);
        }
    }
    return n_out;
}

size_t qes_demod_max_outputs(const struct qes_demod *d, size_t n)
{
    if (!d)
        return 0;
    return (size_t)(n / d->D) + 1;
}

int qes_demod_execute(struct qes_demod *d, const double *x, size_t n, uint64_t sample_start,
                      struct qes_demod_out *out, size_t max_out, size_t *n_out)
{
    if (!d || !n_out || (n && !x))
        return QES_EINVAL;
    *n_out = 0;
    /* The end index stays below UINT64_MAX, where the boundaries saturate. */
    if ((uint64_t)n >= UINT64_MAX - sample_start)
        return QES_ERANGE;
    if (d->started && sample_start != d->pos)
        return QES_ERANGE;
    if (n == 0)
        return 0;
    /* Outputs in this call: boundaries e with sample_start < e <= end, e % D == 0. */
    const uint64_t end = sample_start + (uint64_t)n;
    const uint64_t first = d->started ? d->next_D : next_multiple(sample_start, d->D);
    const uint64_t count = end >= first ? (end - first) / d->D + 1 : 0;
    if (count > max_out || (count && !out))
        return QES_EINVAL;
    if (!d->started)
        begin_stream(d, sample_start);
    const size_t produced =
            d->impl == QES_DEMOD_SAMPLE ? run_sample(d, x, n, out) : run_block(d, x, n, out);
    *n_out = produced;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                 */

double qes_demod_enbw_hz(const struct qes_demod *d)
{
    return d ? d->enbw_analytic : NAN;
}

double qes_demod_enbw_discrete_hz(const struct qes_demod *d)
{
    return d ? d->enbw_discrete : NAN;
}

int qes_demod_get_info(const struct qes_demod *d, struct qes_demod_info *info)
{
    if (!d || !info)
        return QES_EINVAL;
    *info = d->info;
    return 0;
}
