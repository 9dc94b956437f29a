/*
 * Least-squares sine fits (IEEE Std 1241-2010, clause 4.1.4): 3-parameter
 * (known frequency), 4-parameter (frequency estimated, Gauss-Newton),
 * multi-harmonic (either way), and a multi-frequency nonlinear fit
 * (Levenberg-Marquardt) for sums of sinusoids with several unknown periods.
 *
 * Signal model of the output contract (DESIGN.md), for the samples x[i],
 * i = 0..n-1, of one block at sample rate fs:
 *
 *     x[i] = offset + sum_h sqrt(2) r_h cos(2 pi h f i / fs + phi_h) + noise
 *
 * r_h is the RMS amplitude (unit of the samples), phi_h the phase in
 * (-pi, pi] at the block's FIRST sample (i = 0; the pipeline shifts it to the
 * run's time origin), x_h = r_h cos(phi_h), y_h = r_h sin(phi_h).
 *
 * How the fits are computed, and why.
 *  - Centred time axis: the basis is evaluated at k = i - (n-1)/2, so that the
 *    cos/sin columns, the offset column and the frequency-derivative column
 *    k (-a sin + b cos) are nearly orthogonal; the phases are rotated back to
 *    the first sample at the end (with the rotation's own uncertainty carried
 *    into the covariance when the frequency is fitted).
 *  - Exact phase arguments: 2 pi (h f / fs) k is reduced modulo one cycle
 *    with an fma-exact product, so long records lose no phase accuracy; the
 *    per-sample basis is a product of a per-execute table and a per-chunk
 *    rotation (2-3 ulp), without a sin/cos call per sample.
 *  - Solver: Householder QR of the design matrix [basis | data], streamed in
 *    chunks of QES_SINEFIT_CHUNK rows into a small triangular factor (a
 *    sequential "tall-skinny" QR).  QR rather than normal equations because
 *    its error grows with cond(A), not cond(A)^2: fits over a fraction of a
 *    period (offset and cosine columns nearly collinear) and 4-parameter fits
 *    stay accurate.  The triangular factor is kept in long double, so that
 *    the accumulation over many chunks (the long-record problem of normal
 *    equations summed in double) adds no error of its own; each chunk's
 *    short sums are in double.  Workspaces are O(QES_SINEFIT_CHUNK * params)
 *    and allocated in create; n_max does not change them.
 *  - 4-parameter: IEEE 1241 Gauss-Newton on [cos, sin, 1, d/domega], started
 *    from the caller's frequency with a 3-parameter fit.  Safeguard: a step
 *    is accepted only if the best 3-parameter residual at the new frequency
 *    did not grow; otherwise the iteration is linearised again around the
 *    3-parameter optimum at the last accepted frequency (a descent direction)
 *    and the step halved.  Tested to converge from +-0.5 bin (fs / n) of the
 *    truth, also for 2.3 periods per block and for a tone 0.7 bin from
 *    Nyquist (where the plain iteration overshoots).  From about 1 bin off
 *    the iteration may head for a sidelobe minimum of the residual: it then
 *    fails with QES_ERANGE, or could converge there (a wrong frequency with a
 *    residual near the signal's RMS): start within +-0.5 bin.
 *  - Covariance: sigma^2 (A^T A)^{-1} = sigma^2 R^{-1} R^{-T}, sigma^2 =
 *    RSS / (n - p), transformed to the reported parameters; u(r), u(phi) are
 *    propagated from it to first order.  In white noise of standard deviation
 *    s this reaches the Cramer-Rao bound: u(x) ~ u(y) ~ u(r) ~ s / sqrt(n),
 *    u(phi) ~ s / (r sqrt(n)) at known frequency and ~ 2 s / (r sqrt(n)) at
 *    the first sample when the frequency is fitted (the mid-record phase
 *    stays at s / (r sqrt(n))).
 *
 * Thread safety: create/destroy on one (control) thread; execute on one
 * object from one thread at a time (objects hold their workspaces);
 * different objects may execute in parallel.  No allocation in execute.
 */
#ifndef QES_DSP_SINEFIT_H
#define QES_DSP_SINEFIT_H

#include <stddef.h>
#include <stdint.h>

/* Harmonics per fit, and parameters: 2 per harmonic, the offset, the frequency. */
#define QES_SINEFIT_MAX_HARMONICS 32
#define QES_SINEFIT_MAX_PARAMS    (2 * QES_SINEFIT_MAX_HARMONICS + 2)
/* Largest harmonic number; with QES_SINEFIT_N_LIMIT it keeps h k exact in a double. */
#define QES_SINEFIT_MAX_HARMONIC 1000
/* Largest block (2^40 samples). */
#define QES_SINEFIT_N_LIMIT ((size_t)1 << 40)
/* Rows per QR chunk (workspace granularity; no effect on results beyond rounding). */
#define QES_SINEFIT_CHUNK 256
/* A column whose component orthogonal to the previous columns is below this
 * fraction of its norm makes the fit QES_ERANGE (numerically rank deficient). */
#define QES_SINEFIT_RANK_TOL 1e-8

enum qes_sinefit_kind {
    /* Known frequency: per harmonic cos and sin, plus the offset (the
     * 3-parameter fit for one harmonic).  Linear, one pass. */
    QES_SINEFIT_KNOWN_FREQ = 0,
    /* Fundamental frequency fitted as well (the 4-parameter fit for one
     * harmonic; shared by all harmonics otherwise).  Gauss-Newton. */
    QES_SINEFIT_FIT_FREQ = 1,
};

struct qes_sinefit_desc {
    size_t n_max;               /* largest block; >= n_params + 1, <= QES_SINEFIT_N_LIMIT */
    double fs_hz;               /* sample rate, Hz; finite, > 0 */
    enum qes_sinefit_kind kind; /* QES_SINEFIT_KNOWN_FREQ or QES_SINEFIT_FIT_FREQ */
    /* Harmonic numbers to fit, each 1..QES_SINEFIT_MAX_HARMONIC, distinct, any
     * order (results come in this order).  Copied in create.  n_harmonics 0
     * means the fundamental only ({1}; harmonics is then ignored). */
    const unsigned *harmonics;
    size_t n_harmonics; /* 0..QES_SINEFIT_MAX_HARMONICS */
    /* FIT_FREQ only (ignored otherwise): */
    unsigned max_iter; /* Gauss-Newton passes over the data; 0 = 50; 1..1000 */
    double step_tol;   /* stop when |df| <= step_tol * f; 0 = 1e-15; 1e-16..1e-3 */
};

/* One fitted harmonic. */
struct qes_sinefit_tone {
    unsigned harmonic;
    double x, y;      /* r cos(phi), r sin(phi), unit of the samples */
    double r;         /* RMS amplitude, >= 0 */
    double phase_rad; /* phi in (-pi, pi], at the block's first sample */
    /* Standard uncertainties from the covariance (first order; u_phase_rad
     * is NaN when r == 0). */
    double u_x, u_y, u_r, u_phase_rad;
};

/*
 * Result of one fit.  Large (~37 kB, the covariance is sized for the maximum
 * number of parameters): keep it with the caller's state or on the heap
 * rather than on a small thread stack.
 */
struct qes_sinefit_result {
    size_t n;         /* samples fitted */
    size_t n_params;  /* p = 2 H + 1, + 1 with QES_SINEFIT_FIT_FREQ */
    double f_hz;      /* fundamental: the given one, or the fitted one */
    double u_f_hz;    /* its standard uncertainty; 0 when given */
    double offset;    /* unit of the samples */
    double u_offset;  /* standard uncertainty */
    double resid_rms; /* sqrt(RSS / n), RSS = sum of squared residuals */
    double sigma;     /* sqrt(RSS / (n - p)): the noise estimate behind cov */
    /* FIT_FREQ: Gauss-Newton passes over the data (one more pass, the
     * 3-parameter fit, starts them); 0 for KNOWN_FREQ */
    unsigned iterations;
    size_t n_tones; /* H, in the order of desc->harmonics */
    struct qes_sinefit_tone tone[QES_SINEFIT_MAX_HARMONICS];
    /*
     * Covariance of the parameters, cov[i][j] for i, j < n_params, in the
     * order x_1, y_1, x_2, y_2, ..., x_H, y_H, offset, and f_hz with FIT_FREQ
     * (units of the samples, and Hz).  sigma^2 (A^T A)^{-1} transformed to
     * these parameters.
     */
    double cov[QES_SINEFIT_MAX_PARAMS][QES_SINEFIT_MAX_PARAMS];
};

struct qes_sinefit;

/*
 * Make a sine fitter.  Returns 0 and *out, or QES_EINVAL (NULL pointer, a
 * field out of the range given in the desc), QES_ENOMEM.  *out is NULL on
 * error.
 */
int qes_sinefit_create(const struct qes_sinefit_desc *desc, struct qes_sinefit **out);

/*
 * Fit one block.
 *  x:    n samples (finite), unit arbitrary;
 *  n:    n_params + 1 <= n <= desc->n_max;
 *  f_hz: KNOWN_FREQ: the fundamental frequency; FIT_FREQ: its initial
 *        estimate (tested to converge from within +-0.5 bin, fs / n, of the
 *        truth, e.g. from an interpolated DFT).  0 < h_max f_hz < fs / 2.
 *  res:  filled on success; on error every value is NaN and n is 0.
 * Returns 0; QES_EINVAL (NULL pointer, n or f_hz out of range, a non-finite
 * sample); QES_ERANGE (numerically rank-deficient basis: too small a
 * fraction of a period, or FIT_FREQ on a block without any sine (an exactly
 * zero derivative column); FIT_FREQ: no convergence within max_iter).
 * Allocates nothing.
 * FIT_FREQ on a block whose sine is at the noise level (amplitude not
 * significant against its u) may also fail to converge, or return a
 * frequency whose linearised u_f_hz means little; check r against u_r.
 */
int qes_sinefit_execute(struct qes_sinefit *s, const double *x, size_t n, double f_hz,
                        struct qes_sinefit_result *res);

/* No-op for NULL. */
void qes_sinefit_destroy(struct qes_sinefit *s);

/*
 * Reference twin of the 3-parameter fit (fundamental only, known frequency):
 * explicit normal equations on the uncentred basis [cos, sin, 1], phases
 * 2 pi (f/fs) i computed in long double, sums and Gaussian elimination with
 * partial pivoting in long double, the residual summed explicitly.  Slow and
 * simple; for tests and benchmarks.  Fills res as qes_sinefit_execute does
 * for a KNOWN_FREQ fit of harmonic 1 (parameters x, y, offset).
 * Returns 0, QES_EINVAL (NULL, n < 4, f_hz or fs_hz out of range, a
 * non-finite sample), QES_ERANGE (singular normal equations).  Accurate for
 * n up to ~1e5 (the long double phase loses ~2^-64 n f/fs cycles).
 */
int qes_sinefit3_reference(const double *x, size_t n, double f_hz, double fs_hz,
                           struct qes_sinefit_result *res);

/* ------------------------------------------------------------------------ */
/* Multi-frequency nonlinear fit                                            */

/*
 * Model, at arbitrary abscissae t[i] (any unit: s, months, ...):
 *
 *     y(t) = offset + sum_{k<K} [ a_k cos(2 pi t / P_k) + b_k sin(2 pi t / P_k) ]
 *
 * with each period P_k (unit of t, > 0) fixed at its start value or fitted.
 * Levenberg-Marquardt (Marquardt 1963 with the gain-ratio damping update of
 * Nielsen 1999, scaling D = column norms of the Jacobian as in MINPACK): each
 * step minimises ||J d - r||^2 + lambda ||D d||^2, solved as a QR of
 * [R; sqrt(lambda) D] where R is the streamed QR factor of the Jacobian (the
 * same chunked Householder QR as above; the Jacobian is never stored).  The
 * abscissae are centred internally (t - mean(t)), which decorrelates the
 * period columns from the amplitude columns; the amplitudes are reported for
 * the phase origin t = 0 (far from the data, e.g. t ~ 1e6 periods, they carry
 * the phase error of the double abscissae, ~u t / P cycles).  Stops when the
 * scaled step ||D d|| falls below xtol ||D p||, or when steps that leave the
 * RSS unchanged to rounding stop shrinking (large-residual problems converge
 * linearly, and RSS comparisons lose meaning before the parameters have
 * converged: such steps are still taken, as the step comes from J^T r).
 *
 * Parameter order (cov, n_params): offset, then for each term k: a_k, b_k,
 * and P_k if it is free.  Covariance sigma^2 (J^T J)^{-1}, sigma^2 = RSS /
 * (n - p), at the solution (what NIST StRD certifies as the standard
 * deviations of the parameters).
 */
#define QES_SINEFIT_MF_MAX_TERMS  8
#define QES_SINEFIT_MF_MAX_PARAMS (1 + 3 * QES_SINEFIT_MF_MAX_TERMS)

struct qes_sinefit_mf_desc {
    size_t n_max;   /* most points per execute; >= n_params + 1, <= QES_SINEFIT_N_LIMIT */
    size_t n_terms; /* K, 1..QES_SINEFIT_MF_MAX_TERMS */
    /* bit k set: P_k is held at its start value; bits >= n_terms must be 0 */
    uint32_t period_fixed_mask;
    unsigned max_iter; /* Jacobian evaluations; 0 = 200; 1..10000 */
    double xtol;       /* relative scaled step to stop at; 0 = 1e-12; 1e-15..1e-3 */
};

struct qes_sinefit_mf_params {
    double offset;                           /* unit of y */
    double a[QES_SINEFIT_MF_MAX_TERMS];      /* cos amplitude, unit of y, phase origin t = 0 */
    double b[QES_SINEFIT_MF_MAX_TERMS];      /* sin amplitude */
    double period[QES_SINEFIT_MF_MAX_TERMS]; /* unit of t, > 0 */
};

struct qes_sinefit_mf_result {
    struct qes_sinefit_mf_params p; /* fitted */
    struct qes_sinefit_mf_params u; /* standard uncertainties (0 for fixed periods) */
    size_t n;                       /* points fitted */
    size_t n_params;                /* 1 + 2 K + number of free periods */
    double rss;                     /* residual sum of squares */
    double resid_rms;               /* sqrt(RSS / n) */
    double sigma;                   /* sqrt(RSS / (n - p)) */
    unsigned iterations;            /* Jacobian evaluations */
    unsigned evaluations;           /* residual-only evaluations (trial steps) */
    /* cov[i][j], i, j < n_params, in the parameter order above */
    double cov[QES_SINEFIT_MF_MAX_PARAMS][QES_SINEFIT_MF_MAX_PARAMS];
};

struct qes_sinefit_mf;

/*
 * Make a multi-frequency fitter.  Returns 0 and *out, QES_EINVAL (NULL, a
 * field out of range), QES_ENOMEM.  *out is NULL on error.
 */
int qes_sinefit_mf_create(const struct qes_sinefit_mf_desc *desc, struct qes_sinefit_mf **out);

/*
 * Fit n points (t[i], y[i]), all finite, n_params + 1 <= n <= n_max, from the
 * start values (periods finite and > 0; the fixed ones are used as given).
 * res: filled on success; on error every value is NaN and n is 0.
 * Returns 0; QES_EINVAL (NULL, n out of range, a bad start value or a
 * non-finite point); QES_ERANGE (no convergence within max_iter, or a
 * numerically rank-deficient Jacobian at the solution: e.g. a free period
 * whose term has a = b = 0 exactly, or two equal free periods).  Allocates
 * nothing.
 * The covariance is the first-order (linearised) one: it is meaningful when
 * every free-period term's amplitude hypot(a, b) is well above its own
 * uncertainty.  A term absent from the data gives amplitudes at the noise
 * (or rounding) level and a period that is not determined at all, whatever
 * its reported u: check hypot(a_k, b_k) against u(a_k), u(b_k) first.
 */
int qes_sinefit_mf_execute(struct qes_sinefit_mf *m, const double *t, const double *y, size_t n,
                           const struct qes_sinefit_mf_params *start,
                           struct qes_sinefit_mf_result *res);

/* No-op for NULL. */
void qes_sinefit_mf_destroy(struct qes_sinefit_mf *m);

#endif
