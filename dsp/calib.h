/*
 * Calibration chain of a channel, complex ratios of two channels, and the
 * quantum reference values (PJVS, QHR) that make a ratio traceable.
 *
 * Conventions (DESIGN.md "the contract"): a phasor P = x + i y = r e^{i phi}
 * describes s(t) = sqrt(2) r cos(2 pi f t + phi).  A channel that responds
 * to the true phasor P with the indicated phasor H(f) P has the complex
 * response H; a correction divides by H.  All uncertainties are standard
 * uncertainties; every term of the chain is independent of the others.
 *
 * The chain, applied to an estimated phasor P_m (in raw units) at f >= 0:
 *
 *   P = gain * P_m / (H_fr(f) H_ap(f) H_tb(f) H_d(f))  [+ offset if f == 0]
 *
 *   gain     unit per raw unit, relative standard uncertainty u_rel
 *   offset   in unit, added at DC only (a constant offset has no component
 *            at f > 0); u in unit
 *   H_fr     tabulated frequency response (qes_freqresp), linear
 *            interpolation in f of magnitude, phase and their
 *            uncertainties; a frequency outside the table is refused
 *            (QES_ERANGE), never extrapolated
 *   H_ap     sampling aperture: each sample is the mean of the signal over
 *            an aperture t_a.  Averaging e^{i 2 pi f t} over
 *            [t_n - t_a/2 + d, t_n + t_a/2 + d] gives e^{i 2 pi f t_n} times
 *            sinc(pi f t_a) e^{i 2 pi f d}, sinc(x) = sin(x)/x, so
 *              centred on the time stamp (d = 0):     H = sinc(pi f t_a)
 *              ending at the time stamp (d = -t_a/2): H = sinc(pi f t_a) e^{-i pi f t_a}
 *              starting at it (d = +t_a/2):           H = sinc(pi f t_a) e^{+i pi f t_a}
 *            Refused (QES_ERANGE) at and beyond the first zero, f t_a >= 1.
 *   H_tb     time base: the sample clock runs at fs (1 + y) while samples
 *            are time-stamped n / fs, and the signal is on an independent,
 *            true time base (set y = 0, u = 0 when the source and the
 *            digitiser share one reference: then there is no error).  A
 *            signal at true frequency f then appears at f / (1 + y), i.e.
 *            offset by df = -f y / (1 + y) from the analysis frequency f.
 *            For a phasor referred to t = 0 and estimated as the uniform
 *            average over the record [t0, t0 + T] (a rectangular window or a
 *            mean over many blocks; other windows differ only in the
 *            second-order amplitude term):
 *              H_tb = e^{i pi df (2 t0 + T)} sinc(pi df T)
 *            Phase error pi df (2 t0 + T) (first order in y); amplitude error
 *            -(pi df T)^2 / 6 (second order: with y = 0 its linear
 *            sensitivity vanishes, so the budget carries the second-order
 *            term of GUM 5.1.2 note, u_rel = sqrt(g1^2 u^2 + g2^2 u^4 / 2)
 *            with g1, g2 the first two derivatives of ln|H_tb| in y).  The
 *            shift of f by df in H_fr, H_ap and H_d is neglected (relative
 *            effect ~ y).
 *   H_d      inter-channel delay: the channel samples the signal tau late,
 *            s_m(t) = s(t - tau), H_d = e^{-i 2 pi f tau}.
 *
 * Uncertainties: every term gives a contribution to u(r) (absolute, in
 * unit: relative contributions times the corrected r) and to u(phase) (rad),
 * for the record.  Magnitude terms use the first-order sensitivity plus the
 * second-order term above (aperture and time base), the phase terms are
 * linear in their inputs.
 *
 * Pure computation: no I/O.  A qes_calib or qes_freqresp object is
 * immutable after create; apply/eval are thread safe.
 */
#ifndef QES_DSP_CALIB_H
#define QES_DSP_CALIB_H

#include <stddef.h>

/* A value with its standard uncertainty and degrees of freedom. */
struct qes_calib_qty {
    double value; /* estimate */
    double u;     /* standard uncertainty, >= 0 (relative where the field says so) */
    double dof;   /* > 0 or INFINITY; 0 means INFINITY (a Type B term) */
};

/* ------------------------------------------------------------------------ */
/* Frequency response table                                                  */

struct qes_freqresp;

/*
 * Build a table from arrays of n points (copied; the arrays can be freed).
 *   f_hz         frequencies, strictly increasing, >= 0, finite
 *   gain_rel     magnitude |H| (indicated / true amplitude), > 0, e.g. 0.99998
 *   u_gain_rel   standard uncertainty of gain_rel, >= 0
 *   phase_rad    arg H (indicated - true phase), |phase| <= pi
 *   u_phase_rad  standard uncertainty of phase_rad, >= 0
 *   n            >= 1 (with n == 1 only that frequency can be evaluated)
 *   dof          degrees of freedom of the table's uncertainties (0: INFINITY)
 * The caller parses the file (CSV or calibration certificate).
 * Returns 0 and *out, or QES_EINVAL (and *out = NULL), QES_ENOMEM.
 */
int qes_freqresp_create(const double *f_hz, const double *gain_rel, const double *u_gain_rel,
                        const double *phase_rad, const double *u_phase_rad, size_t n, double dof,
                        struct qes_freqresp **out);

/* No-op for NULL. */
void qes_freqresp_destroy(struct qes_freqresp *fr);

/*
 * Linear interpolation at f_hz between the two neighbouring points (exact
 * at a table point).  Any output pointer may be NULL.  Returns 0,
 * QES_ERANGE when f_hz is outside [f_0, f_(n-1)], QES_EINVAL (NULL fr, f not
 * finite).
 */
int qes_freqresp_eval(const struct qes_freqresp *fr, double f_hz, double *gain_rel,
                      double *u_gain_rel, double *phase_rad, double *u_phase_rad);

/* ------------------------------------------------------------------------ */
/* Calibration chain                                                         */

enum qes_aperture_ref {
    QES_APERTURE_CENTRED = 0, /* the aperture is centred on the time stamp: no phase */
    QES_APERTURE_ENDS,        /* the aperture ends at the time stamp: phase -pi f t_a */
    QES_APERTURE_STARTS,      /* the aperture starts at the time stamp: phase +pi f t_a */
};

struct qes_calib_desc {
    struct qes_calib_qty gain;          /* unit per raw unit, != 0 (0: default 1); u relative */
    struct qes_calib_qty offset;        /* in unit, DC only; u in unit */
    const struct qes_freqresp *fr;      /* NULL: flat response; copied by create */
    struct qes_calib_qty aperture_s;    /* t_a >= 0 in s (0: no aperture); u in s */
    enum qes_aperture_ref aperture_ref; /* where the aperture sits */
    struct qes_calib_qty timebase_rel;  /* y, relative clock error, |y| < 1e-2; u relative */
    double record_start_s;              /* t0 >= 0 of the record, from the phase origin */
    double record_span_s;               /* T >= 0, length of the averaged record */
    struct qes_calib_qty delay_s;       /* tau in s (channel late by tau); u in s */
};

struct qes_calib;

/*
 * Validate and keep a chain.  Returns 0 and *out, or QES_EINVAL (and *out =
 * NULL): gain not finite, an uncertainty < 0 or not finite, a dof < 0 or
 * NaN, t_a < 0, |y| >= 1e-2, t0 or T < 0, an unknown aperture_ref;
 * QES_ENOMEM.
 */
int qes_calib_create(const struct qes_calib_desc *d, struct qes_calib **out);

/* No-op for NULL. */
void qes_calib_destroy(struct qes_calib *c);

/* One term of the chain's budget. */
struct qes_calib_term {
    const char *name;   /* "gain", "offset", "freqresp", "aperture", "timebase", "delay" */
    double u_r;         /* contribution to u(r), in unit */
    double u_phase_rad; /* contribution to u(phase), rad */
    double dof;         /* INFINITY for a Type B term */
};

#define QES_CALIB_MAX_TERMS 6

struct qes_calib_result {
    double x, y;         /* corrected phasor (in unit) */
    double r, phase_rad; /* |P|, arg P in (-pi, pi] */
    double u_r;          /* combined u(r) of the chain terms (root sum of squares) */
    double u_phase_rad;  /* combined u(phase) of the chain terms */
    double dof_r;        /* Welch-Satterthwaite dof of u_r (qes_ws_dof) */
    double cov_xy[3];    /* chain covariance of (x, y): xx, xy, yy */
    struct qes_calib_term terms[QES_CALIB_MAX_TERMS];
    size_t n_terms; /* gain always; offset at DC; the others when configured */
};

/*
 * Correct the phasor (x, y), in raw units, estimated at f_hz >= 0 (at
 * f_hz == 0 the value is x; y must be 0).  The chain's uncertainties only:
 * the caller adds the phasor's own Type A (cov_xy adds to its covariance).
 * Returns 0; QES_ERANGE (f outside the table, or at/after the aperture's
 * first zero); QES_EINVAL (NULL, f < 0 or not finite, x, y not finite, y != 0
 * at DC).  *out is written only on success.
 */
int qes_calib_apply(const struct qes_calib *c, double f_hz, double x, double y,
                    struct qes_calib_result *out);

/* ------------------------------------------------------------------------ */
/* Complex ratio of two channels                                             */

/* Z = P1 / P2 and the covariance of (Re Z, Im Z, |Z|, arg Z). */
struct qes_cratio {
    double re, im, abs, arg;         /* arg in (-pi, pi] */
    double u_re, u_im, u_abs, u_arg; /* standard uncertainties */
    double cov[16];                  /* 4 x 4 covariance of (re, im, abs, arg), row-major */
};

/*
 * Z = (x1 + i y1) / (x2 + i y2) with the 4 x 4 covariance cov4 of
 * (x1, y1, x2, y2) (row-major; symmetric, non-negative diagonal) carried
 * through the exact Jacobian: dZ = dP1 / P2 - Z dP2 / P2; d|Z| and d arg Z
 * from d ln Z = d ln P1 - d ln P2.  First order (the linearisation is good
 * when u(P)/|P| << 1; see qes_mc_propagate otherwise).
 * Returns 0 or QES_EINVAL (P2 == 0 or P1 == 0, not finite, bad covariance).
 */
int qes_cratio_compute(double x1, double y1, double x2, double y2, const double *cov4,
                       struct qes_cratio *out);

/*
 * Calibrated value = ratio * reference: w = s Z with the reference s > 0
 * and its standard uncertainty u_s (independent of Z).  Re, Im and |Z| scale
 * by s and share the fully correlated relative term u_s / s; arg is
 * unchanged.  in and out may alias.  Returns 0 or QES_EINVAL.
 */
int qes_cratio_scale(const struct qes_cratio *in, double s, double u_s, struct qes_cratio *out);

/* ------------------------------------------------------------------------ */
/* Quantum references (SI 2019, dsp/si.h)                                    */

/*
 * PJVS step voltage V = n f_J / K_J = n f_J h / (2e), computed in long double
 * and rounded once.  n: signed junction count; f_J in Hz (> 0, finite);
 * u_fj_rel: relative standard uncertainty of f_J (>= 0), the only one (the
 * constants are exact): u(V) = |V| u_fj_rel.  u_v may be NULL.
 * Returns 0 or QES_EINVAL.
 */
int qes_pjvs_voltage(long n, double f_j_hz, double u_fj_rel, double *v_v, double *u_v);

/*
 * QHR plateau resistance R = R_K / i, exact (computed in long double from e
 * and h, rounded once); i >= 1.  Returns 0 or QES_EINVAL.
 */
int qes_qhr_resistance(int i, double *r_ohm);

#endif
