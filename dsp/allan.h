/*
 * Allan family of frequency-stability statistics on a series of results
 * (NIST SP 1065, W. J. Riley, "Handbook of Frequency Stability Analysis",
 * 2008): Allan, overlapping Allan, modified Allan, time, Hadamard,
 * overlapping Hadamard and total deviation at averaging factors m
 * (tau = m tau0); equivalent degrees of freedom (Greenhall and Riley 2003,
 * SP 1065 Table 7 for TOTDEV), chi-squared confidence intervals, power-law
 * noise identification (lag-1 autocorrelation, Riley and Greenhall 2004,
 * with the B1/R(n) ratios for short series), and a standard uncertainty of
 * the mean of a run that is valid when its noise is not white.
 *
 * Conventions.  Deviations are computed from phase data x_i (time error, in
 * seconds when tau0 is in seconds); fractional-frequency data y_i are first
 * integrated, x_0 = 0, x_{i+1} = x_i + y_i tau0 (N_x = N_y + 1).  "alpha" is
 * the exponent of the fractional-frequency PSD S_y(f) ~ f^alpha: +2 white PM,
 * +1 flicker PM, 0 white FM, -1 flicker FM, -2 random-walk FM (-3, -4 for the
 * Hadamard family).  A series of measurement results (block means of a
 * voltage, a ratio) plays the role of y: white scatter is "white FM" here.
 *
 * All functions are reentrant and thread-safe; none allocates (callers pass
 * workspace where needed); no I/O.
 */
#ifndef QES_DSP_ALLAN_H
#define QES_DSP_ALLAN_H

#include <stdbool.h>
#include <stddef.h>

enum qes_allan_kind {
    QES_ALLAN_ADEV = 0, /* non-overlapping Allan deviation */
    QES_ALLAN_OADEV,    /* overlapping Allan deviation */
    QES_ALLAN_MDEV,     /* modified Allan deviation */
    QES_ALLAN_TDEV,     /* time deviation, tau MDEV / sqrt(3) (units of x) */
    QES_ALLAN_HDEV,     /* non-overlapping Hadamard deviation */
    QES_ALLAN_OHDEV,    /* overlapping Hadamard deviation */
    QES_ALLAN_TOTDEV,   /* total deviation (doubly reflected phase, SP 1065 eq. 25) */
    QES_ALLAN_NKIND
};

enum qes_allan_data {
    QES_ALLAN_PHASE = 0, /* x_i, time error (s) */
    QES_ALLAN_FREQ,      /* y_i, fractional frequency (or any result series) */
};

enum qes_allan_spacing {
    QES_ALLAN_ALL = 0, /* m = 1, 2, 3, ..., m_max */
    QES_ALLAN_OCTAVE,  /* m = 1, 2, 4, 8, ... */
    QES_ALLAN_DECADE,  /* m = 1, 2, 4, 10, 20, 40, 100, ... (Stable32 "decade") */
};

/* Symbolic name ("OADEV"); "?" for an unknown kind. */
const char *qes_allan_kind_name(enum qes_allan_kind kind);

/*
 * Integrate fractional frequency into phase: x_0 = 0, x_{i+1} = x_i + y_i
 * tau0_s, with a compensated long-double running sum.
 *   y : n_y values; tau0_s > 0 (finite); x : out, n_y + 1 values (may not alias y)
 * Returns 0 or QES_EINVAL.
 */
int qes_allan_freq_to_phase(const double *y, size_t n_y, double tau0_s, double *x);

/*
 * One deviation of phase data at averaging factor m (tau = m tau0_s).
 *   x       : n_x phase values (s)
 *   tau0_s  : sampling interval, > 0
 *   m       : averaging factor, >= 1
 *   dev     : out, the deviation (fractional frequency; TDEV in units of x)
 *   n_terms : out (may be NULL), the number of terms summed, as Stable32's
 *             "#" column: ADEV floor((N-1)/m) - 1, OADEV N - 2m, MDEV/TDEV
 *             N - 3m + 1, HDEV floor((N-1)/m) - 2, OHDEV N - 3m, TOTDEV N - 2
 * Returns 0; QES_EINVAL (NULL, tau0 <= 0, m == 0, bad kind); QES_ERANGE when
 * m is too large for one term (the minimum N is 2m + 1 for the Allan kinds,
 * 3m + 1 for the Hadamard kinds, 3m for MDEV/TDEV, and for TOTDEV N >= 3 with
 * m <= N - 1).  Sums are long double; O(N) for every kind (MDEV uses a
 * running sum over the inner window).
 */
int qes_allan_dev(enum qes_allan_kind kind, const double *x, size_t n_x, double tau0_s, size_t m,
                  double *dev, size_t *n_terms);

/*
 * Averaging factors for a tau list: fills out[] with up to cap values
 * 1 <= m <= m_max in the given spacing; returns the number written (or, with
 * out NULL, the number that would be written).
 */
size_t qes_allan_m_list(enum qes_allan_spacing spacing, size_t m_max, size_t *out, size_t cap);

/*
 * Default largest averaging factor for n_x phase points, as Stable32's
 * octave runs show: floor((N-1)/4) for every kind (at least 3 non-overlapping
 * Allan terms, 2 Hadamard terms) but TOTDEV, floor((N-1)/2); 0 when the
 * series is too short for m = 1.
 */
size_t qes_allan_m_max(enum qes_allan_kind kind, size_t n_x);

/* ------------------------------------------------------------------------ */
/* Chi-squared distribution                                                  */

/*
 * Regularized lower incomplete gamma P(a, x) and its complement Q(a, x),
 * a > 0, x >= 0 (series below a + 1, Lentz continued fraction above); both
 * accurate to ~1e-14 relative on their own side.  NaN for bad input.
 */
double qes_gamma_p(double a, double x);
double qes_gamma_q(double a, double x);

/* Chi-squared CDF P(chi2_nu <= x) = P(nu/2, x/2); nu > 0. */
double qes_chi2_cdf(double x, double nu);

/*
 * Chi-squared quantile: x with P(chi2_nu <= x) = p, p in (0, 1), nu > 0 (not
 * necessarily an integer).  Newton steps on the side with the small tail
 * probability, safeguarded by bisection; relative accuracy ~1e-13.  NaN for
 * bad input.
 */
double qes_chi2_quantile(double p, double nu);

/*
 * Two-sided chi-squared interval of a deviation (SP 1065 eq. 45):
 *   lo = dev sqrt(edf / chi2_{(1+c)/2}), hi = dev sqrt(edf / chi2_{(1-c)/2})
 *   confidence c in (0, 1) (Stable32: 0.683); edf > 0.
 * Returns 0 or QES_EINVAL.
 */
int qes_allan_ci(double dev, double edf, double confidence, double *lo, double *hi);

/* ------------------------------------------------------------------------ */
/* Equivalent degrees of freedom                                             */

/*
 * EDF of a deviation at averaging factor m from n_x phase points, for noise
 * alpha.  ADEV/OADEV/MDEV/TDEV/HDEV/OHDEV: Greenhall's algorithm (C. A.
 * Greenhall and W. J. Riley, "Uncertainty of stability variances based on
 * finite differences", PTTI 2003), as Stable32 uses it: d = 2 (Allan) or 3
 * (Hadamard); filter factor F = m (unmodified) or 1 (modified); stride S = 1
 * (non-overlapping) or m (overlapping); exact basic sum while J <= 100, the
 * paper's asymptotic tables beyond.  TOTDEV: SP 1065 Table 7,
 * edf = b N/m - c for alpha 0, -1, -2.
 * Valid alpha: Allan kinds -2..2, Hadamard -4..2, TOTDEV -2..0.
 * Returns the EDF, or NaN (alpha out of range, m too large, or the one case
 * of the algorithm not implemented: white PM, unmodified, ceil(M/S) <= d).
 */
double qes_allan_edf(enum qes_allan_kind kind, int alpha, size_t m, size_t n_x);

/* ------------------------------------------------------------------------ */
/* Noise identification                                                      */

enum qes_noise_method {
    QES_NOISE_NONE = 0, /* not identified (series too short) */
    QES_NOISE_ACF,      /* lag-1 autocorrelation (Riley and Greenhall 2004) */
    QES_NOISE_B1,       /* B1 ratio (Barnes), mu in -1..2 */
    QES_NOISE_B1_RN,    /* B1 gave mu = -2 (PM); R(n) = MVAR/AVAR separated alpha 1 and 2 */
};

struct qes_noise_id {
    int alpha;          /* identified power-law exponent (integer) */
    double alpha_float; /* ACF method: the unrounded estimate p (+2 for phase); else NaN */
    double rho;         /* ACF method: delta = r1 / (1 + r1) at the final differencing */
    int d;              /* ACF method: differences taken */
    double ratio;       /* B1 methods: the B1 ratio measured; NaN for ACF */
    enum qes_noise_method method;
};

/*
 * Identify the dominant power-law noise at averaging factor m, as Stable32
 * does:
 *  - Lag-1 ACF method when at least 30 points remain after averaging:
 *    phase data are decimated (x_0, x_m, x_2m, ...) and a quadratic is
 *    removed; frequency data are averaged in non-overlapping groups of m and
 *    a line is removed.  Then, with d = 0: r1 = lag-1 autocorrelation,
 *    delta = r1 / (1 + r1); if delta < 0.25 or d == dmax, stop with
 *    p = -2 (delta + d), alpha = round(p) (+2 for phase data); else
 *    difference the series, d += 1, repeat.
 *  - B1 ratio otherwise (N_avg = floor(N_y / m) >= 4 group means needed):
 *    B1 = (sample variance of the N_avg group means of y) / AVAR(m tau0)
 *    (non-overlapping AVAR);
 *    mu is the value in -2..2 whose theoretical B1(N_avg, mu) =
 *    N (1 - N^mu) / (2 (N - 1)(1 - 2^mu)) (mu = 0: N ln N / (2 (N - 1) ln 2))
 *    is nearest on the geometric-mean boundaries; alpha = -mu - 1; mu = -2
 *    (PM) is split into alpha 1 and 2 with R(n) = MVAR/AVAR against 1/m
 *    (white PM) and the flicker-PM value with f_h = 1/(2 tau0).
 *  The result is clamped to the range the deviation supports: dmax = 2
 *  (Allan kinds): -2..2; dmax = 3 (Hadamard): -4..2.
 *   data, n  : the series as given (phase n_x points, or frequency n_y)
 *   type     : QES_ALLAN_PHASE or QES_ALLAN_FREQ
 *   m        : averaging factor >= 1
 *   dmax     : 2 for the Allan kinds (ADEV, OADEV, MDEV, TDEV, TOTDEV), 3 for HDEV/OHDEV
 *   work     : caller scratch, qes_allan_work_len(n) doubles
 * Returns 0; QES_EINVAL (NULL, m == 0, dmax outside 1..3); QES_ERANGE (fewer
 * than 4 group means: out->method = QES_NOISE_NONE).
 */
int qes_allan_noise_id(const double *data, size_t n, enum qes_allan_data type, size_t m, int dmax,
                       double *work, struct qes_noise_id *out);

/* Scratch needed by qes_allan_noise_id / qes_allan_compute for n data. */
size_t qes_allan_work_len(size_t n);

/* ------------------------------------------------------------------------ */
/* A whole tau list                                                          */

struct qes_allan_point {
    size_t m;                  /* averaging factor */
    double tau_s;              /* m tau0 */
    double dev;                /* deviation */
    size_t n_terms;            /* as qes_allan_dev */
    struct qes_noise_id noise; /* noise identified at m (method NONE: not identified) */
    int alpha_used;            /* alpha for the EDF: identified at m, else the last one identified
                         at a smaller m of the list, else 0 */
    double edf;                /* NaN when not available */
    double lo, hi;             /* chi-squared interval at `confidence`; NaN without EDF */
};

/*
 * Deviation, noise type, EDF and confidence interval for each m in m_list.
 *   data, n  : phase (n_x) or fractional-frequency (n_y) data
 *   tau0_s   : > 0
 *   m_list   : n_m averaging factors (each must give at least one term)
 *   confidence : (0, 1), e.g. 0.683 (Stable32's default)
 *   work     : qes_allan_work_len(n) doubles
 *   out      : n_m points
 * Returns 0; QES_EINVAL; QES_ERANGE (an m without terms).
 */
int qes_allan_compute(enum qes_allan_kind kind, enum qes_allan_data type, const double *data,
                      size_t n, double tau0_s, const size_t *m_list, size_t n_m, double confidence,
                      double *work, struct qes_allan_point *out);

/* ------------------------------------------------------------------------ */
/* Uncertainty of the mean when the noise is not white                       */

struct qes_mean_unc {
    size_t n;      /* results */
    double mean;   /* two-pass mean */
    double tau0_s; /* block duration as given */
    /* (a) white noise: s / sqrt(n), n - 1 dof */
    double u_white;
    double dof_white;
    /* (b) Allan-based, at the total averaging time T = n tau0 */
    double u_allan;
    double dof_allan; /* EDF of OADEV at m_L (alpha used) */
    size_t m_L;       /* averaging factor where OADEV was taken */
    double oadev_L;   /* OADEV(m_L tau0) */
    double slope;     /* mu/2 used to extrapolate from m_L to n: OADEV ~ tau^slope */
    /* (b') horizon: u_allan includes the factor below (1 when horizon_s <= T) */
    double horizon_s;      /* as given (0 = the run itself) */
    double octaves;        /* K = log2(horizon_s / T), 0 when horizon_s <= T */
    double horizon_factor; /* sqrt(F(K, mu)) >= 1 */
    /* (c) noise */
    struct qes_noise_id noise; /* identified at m_id */
    size_t m_id;
    int alpha;     /* alpha used (clamped -2..2) */
    bool nonwhite; /* alpha != 0 */
    /* recommended Type A: max(u_white, u_allan) with the dof of the larger */
    double u;
    double dof;
    /* (d) the rule, for the budget entry (NUL-terminated) */
    char rule[192];
};

/*
 * Standard uncertainty of the mean of a series of block results y_i
 * (tau0_s = block duration) that is honest when the noise is not white.
 * Rule (documented here and copied, with the numbers, into out->rule):
 *  (a) u_white = s / sqrt(n), dof n - 1.
 *  (b) m_L = the largest power of two with floor(n / m_L) >= 8 (at least 8
 *      non-overlapping tau-averages, so that OADEV has >= ~7 independent
 *      differences).  The noise type alpha is identified (qes_allan_noise_id,
 *      frequency data, dmax 2) at m_id = the largest power of two <= m_L with
 *      floor(n / m_id) >= 128 (m_id = 1 when n < 256): the lag-1 ACF method
 *      when n / m_id >= 30, else B1.  128 points, not the method's minimum of
 *      30: at 30 points the estimate of alpha scatters by +-0.4 (white FM)
 *      to +-0.6 (flicker FM) and misrounds a third of the time; at 128
 *      points white FM is misread in ~2 % of series (1.9 % measured over
 *      5000 simulated series: a lag-1 value <= -0.2 reads as alpha = +1).  Averaged flicker FM
 *      reads -1.4 +- 0.25 at 128 points, so it is reported as -1 or -2
 *      (both flagged; -2 extrapolates upward, the conservative side).  OADEV(m_L tau0) is extrapolated to T = n tau0 along the
 *      slope of the identified noise, AVAR ~ tau^mu:
 *         alpha = 2, 1 (PM)  mu = -2: u = OADEV(m_L) (m_L / n)
 *         alpha = 0 (WFM)    mu = -1: u = OADEV(m_L) sqrt(m_L / n)
 *         alpha = -1 (FFM)   mu =  0: u = OADEV(m_L)            (flicker floor)
 *         alpha = -2 (RWFM)  mu = +1: u = OADEV(m_L) sqrt(n / m_L)
 *      For white FM, AVAR(tau) is exactly the variance of a tau-average, so
 *      (b) estimates the same quantity as (a); for flicker FM the variance
 *      of the mean no longer falls with averaging and the Allan deviation at
 *      the longest tau is its floor.  dof_allan = Greenhall EDF of OADEV at
 *      m_L for the identified alpha (the extrapolation factor is taken as
 *      exact).
 *  (c) nonwhite = (alpha != 0).
 *  The recommended Type A is u = max(u_white, u_allan) with the dof of the
 *  term chosen: anti-correlated (PM-like) noise is not credited.
 *   y     : n results (n >= 8)
 *   tau0_s: block duration, > 0
 *   work  : qes_allan_work_len(n) doubles
 * Returns 0; QES_EINVAL (NULL, n < 8, tau0 <= 0); QES_ERANGE (constant
 * series: no scatter to analyse).
 */
int qes_mean_uncertainty(const double *y, size_t n, double tau0_s, double *work,
                         struct qes_mean_unc *out);

/*
 * The same, for a value claimed to hold over a horizon longer than the run.
 *
 * Under flicker noise a run cannot see the wander slower than itself: the
 * Allan deviation at the run's length T is the scatter of adjacent runs,
 * not of a run around the value the source keeps over a longer time.  The
 * horizon H (horizon_s, e.g. the interval over which a Zener's value is
 * used, or the longest correlation time of the noise) states that time.
 * Let ybar_t be the mean over t.  Telescoping in octaves (a Haar
 * decomposition),
 *     ybar_T - mu = sum_{j=0}^{K-1} (ybar_{2^j T} - ybar_{2^{j+1} T})
 *                   + (ybar_{2^K T} - mu),       2^K T = H,
 * each difference of a 2^j T average from the 2^{j+1} T average holding it
 * is half the difference of two adjacent 2^j T averages, so its variance is
 * AVAR(2^j T) / 2; beyond H the noise is taken to average out like white
 * noise, so the last term has variance AVAR(H).  With the differences
 * uncorrelated (exact for white FM; for flicker FM the Haar coefficients of
 * different scales are nearly so) and AVAR(tau) = AVAR(T) (tau / T)^mu
 * along the identified noise type,
 *     u^2 = AVAR(T) F(K, mu),
 *     F = (2^{K mu} - 1) / (2 (2^mu - 1)) + 2^{K mu}     (mu != 0),
 *     F = 1 + K / 2                                       (mu = 0, flicker FM),
 * with K = log2(H / T) (a real number), and F taken as at least 1.  For
 * white FM F = 1 exactly, whatever H: the horizon changes nothing where
 * the mean converges.  For flicker FM each octave between the run and the
 * horizon adds half an Allan variance.  For random walk FM F grows as
 * 1.5 2^K: a value does not hold over a horizon much longer than the run.
 * horizon_s <= T (0 included) gives qes_mean_uncertainty's result.
 * horizon_s must be finite and >= 0 (QES_EINVAL otherwise).
 */
int qes_mean_uncertainty_h(const double *y, size_t n, double tau0_s, double horizon_s, double *work,
                           struct qes_mean_unc *out);

/* F(K, mu) above, for tests and documentation. */
double qes_horizon_factor2(double octaves, int mu);

#endif
