/*
 * Streaming dual-phase demodulator (`method = demod`): the time-domain lock-in
 * amplifier of the pipeline.
 *
 * Signal model and outputs follow the output contract (DESIGN.md): for
 * s(t) = sqrt(2) r cos(2 pi h f t + phi), t = n / fs counted from run sample 0,
 * the demodulator outputs the RMS phasor
 *
 *     x + j y = r e^{j phi} = sqrt(2) * LPF(s[n] e^{-j theta_n}),
 *
 * with r = hypot(x, y) and phase_rad = atan2(y, x) in (-pi, pi].
 *
 * Reference.  f / fs = p / q exactly (p, q coprime, q <= 2^53), taken from
 * desc->freq_num / freq_den or found from freq_hz / fs_hz (exact when both are
 * integers, else the continued-fraction ratio within one ulp).  The reference
 * phase of run sample n is theta_n = 2 pi ((h p n) mod q) / q, computed in
 * integers: it never drifts, for any run length, and does not depend on how
 * the stream is cut into calls.
 *
 * Low-pass.  `order` identical first-order stages, the same response as common
 * digital lock-ins, H(s) = 1 / (1 + s tau)^order.  Each stage is the exact
 * step-invariant (zero-order-hold) discretisation of 1/(1 + s tau):
 *
 *     y[n] = y[n-1] + alpha (x[n] - y[n-1]),   alpha = 1 - exp(-1 / (fs tau)),
 *
 * whose step response equals the continuous one at every sample (one sample
 * late: 1 - exp(-(n+1)/(fs tau))), whose pole exp(-1/(fs tau)) is the
 * continuous pole mapped exactly, and whose DC gain is exactly 1 whatever the
 * rounding of alpha (the fixed point of the update is y = x).  The bilinear
 * transform would warp the response, and forward Euler (alpha = 1/(fs tau))
 * would shift the time constant by ~1/(2 fs tau) relative.  All arithmetic
 * after the input is double (tables are made in long double).
 *
 * Sinc averaging (optional).  A moving average over N = sinc_periods * q / p
 * samples, i.e. exactly sinc_periods periods of f, placed before the low-pass
 * (on the demodulated signal).  N samples span whole periods of every harmonic
 * of f, so the average nulls exactly the 2hf ripple, a DC offset and every
 * other harmonic of f: with it, any order gives a ripple-free output.
 *
 * Output.  The filter runs at fs; one output is produced after every input
 * sample n with (n + 1) % D == 0, D = fs / output_rate_hz (an integer), so the
 * output grid is tied to the run, not to the calls.  Outputs within
 * settle_samples samples of the start (after create or reset) carry
 * QES_DEMOD_SETTLING.
 *
 * Implementations (desc->impl).  QES_DEMOD_BLOCK (default) propagates the
 * exact state of the linear filter over blocks of B samples (B <= 512, chosen
 * by the order, a divisor of D where one fits): the state after a block is an
 * exact linear function of the state before it and of the block's samples,
 * computed as dot products with tables made at create (the reference rotation
 * folded in), so the hot loop is a vectorised multiply-add with no recursion.
 * It is the same filter as the per-sample recursion, not an approximation of
 * it (no block averaging replaces a stage): only the rounding differs.
 * Error budget (u = 2^-53), relative to the input amplitude:
 *  - table entries rounded once from long double: <= u each;
 *  - a block's dot products: ~sqrt(B) u of the block's contribution, which
 *    is ~B alpha of the state: negligible;
 *  - the state is held as an unevaluated sum hi + lo (TwoSum), so the
 *    rounding of the small per-block increments is not lost: a plain double
 *    state would stall or drift by up to u fs tau / (2 B) on a periodic
 *    signal (2e-12 at fs tau = 1e7; a per-sample double recursion u fs tau / 2
 *    per stage, 5e-10 at fs tau = 1e7);
 *  - the DC gain of every block update is 1 to a few u (the diagonal of the
 *    state transition is taken from the other rounded coefficients of its row,
 *    so a constant input is a fixed point), even when the pole a^B is within
 *    1e-12 of 1;
 *  - the reference angle of each block is exact in integers, then rounded:
 *    <= 2 u rad, never accumulated.
 * Measured: below 1e-14 against the exact response up to fs tau = 1e7, and
 * below 1e-15 at fs tau <= 1e4, against the 1e-8 the value path needs.  With
 * sinc averaging the moving average is a running sum (a state fed with
 * x[n] - x[n-N]), whose rounding on a periodic signal would accumulate; it is
 * recomputed from its definition every max(16 N, 2^20) samples.
 * QES_DEMOD_BLOCK_GENERIC is the same algorithm with baseline SSE2 kernels
 * (QES_DEMOD_BLOCK uses AVX2 where the CPU has it): both give bit-identical
 * results (the same operations in the same order; ISO C mode keeps multiply
 * and add unfused), so a replay gives the same bytes on any x86-64 machine.
 * QES_DEMOD_SAMPLE is the readable per-sample twin: reference cos/sin in
 * double from a table of q entries when q <= 2^20, else computed from the
 * exact integer phase of every sample; mixing in double; the stage recursion
 * in long double (so that the reference does not carry the stall of a double
 * recursion).  It is slow (~20-40 M samples/s); tests use it as the reference.
 *
 * Results are bit-identical whatever the sizes of the calls: samples that do
 * not complete a block are kept (copied) until the next call.
 *
 * Thread safety: create/destroy on one thread; execute and reset on one object
 * from one thread at a time; different objects run in parallel.
 */
#ifndef QES_DSP_DEMOD_H
#define QES_DSP_DEMOD_H

#include <stddef.h>
#include <stdint.h>

#define QES_DEMOD_MAX_ORDER 8
/* Largest sinc averaging length, in samples (the history costs 8 bytes each). */
#define QES_DEMOD_MAX_SINC_SAMPLES (1u << 24)
/* Largest q for which the per-sample twin tables the reference. */
#define QES_DEMOD_SAMPLE_TABLE_MAX (1u << 20)

/* Output flags. */
#define QES_DEMOD_SETTLING 1u /* within settle_samples of the start or a reset */

enum qes_demod_impl {
    QES_DEMOD_BLOCK = 0,         /* block state propagation, AVX2 when available */
    QES_DEMOD_BLOCK_GENERIC = 1, /* the same, baseline ISA only (bit-identical) */
    QES_DEMOD_SAMPLE = 2,        /* per-sample reference twin */
};

struct qes_demod_desc {
    /* Sample rate, Hz; finite, > 0. */
    double fs_hz;
    /* Reference (fundamental) frequency f, Hz, > 0.  May be 0 when freq_den
     * is set; when both are set, freq_hz must equal fs * freq_num / freq_den
     * to 1e-9 relative. */
    double freq_hz;
    /* Optional exact f / fs = freq_num / freq_den (1 <= freq_den <= 2^53,
     * freq_num >= 1); freq_den == 0: take the ratio from freq_hz. */
    uint64_t freq_num, freq_den;
    /* Harmonic h >= 1 demodulated (0 = 1); 0 < h f < fs / 2. */
    unsigned harmonic;
    /* Low-pass stages, 1..8 (0 = 4). */
    unsigned order;
    /* Time constant of each stage, s; > 0, fs * tau_s <= 1e15. */
    double tau_s;
    /* Output rate, Hz; fs / output_rate_hz must be an integer >= 1 (to 1e-12
     * relative). */
    double output_rate_hz;
    /* Moving average over this many periods of f before the low-pass; 0 = off.
     * sinc_periods * q / p must be an integer <= QES_DEMOD_MAX_SINC_SAMPLES
     * (any value when fs / f is an integer). */
    unsigned sinc_periods;
    /* Outputs are flagged QES_DEMOD_SETTLING until settle_tau * tau_s (plus
     * the sinc length N, while the average fills) after the start; >= 0.
     * 0 = no mask beyond the sinc fill: not a default, the configuration
     * passes its own (5). */
    double settle_tau;
    /* 0 = QES_DEMOD_BLOCK. */
    enum qes_demod_impl impl;
};

/* One output sample. */
struct qes_demod_out {
    uint64_t sample;  /* run index of the last input sample included; (sample + 1) % D == 0 */
    double x;         /* r cos(phi), unit of the input */
    double y;         /* r sin(phi) */
    double r;         /* RMS amplitude, hypot(x, y) */
    double phase_rad; /* phi = atan2(y, x), in (-pi, pi] */
    unsigned flags;   /* QES_DEMOD_SETTLING */
};

/* Resolved parameters of a demodulator. */
struct qes_demod_info {
    uint64_t freq_num, freq_den; /* f / fs = p / q, coprime */
    uint64_t phase_step;         /* (h p) mod q: reference phase index step per sample */
    uint64_t decimation;         /* D = fs / output_rate_hz */
    uint64_t sinc_samples;       /* N, 0 when off */
    uint64_t settle_samples;     /* ceil(settle_tau tau_s fs) + N */
    size_t block;                /* B, samples per block of the block implementations */
    double alpha;                /* 1 - exp(-1 / (fs tau)) */
    unsigned order;
    unsigned harmonic;
    enum qes_demod_impl impl;
};

struct qes_demod;

/*
 * Make a demodulator.  Plans everything (tables, history) for execute.
 * Returns 0 and *out, or QES_EINVAL (bad desc, see the field comments; *out is
 * set to NULL), QES_ENOMEM.
 */
int qes_demod_create(const struct qes_demod_desc *desc, struct qes_demod **out);

/*
 * Demodulate n samples x[0..n-1] whose run indices are sample_start ..
 * sample_start + n - 1, and write the outputs that fall in them to out[].
 *
 * The first call after create or reset may start anywhere (that sample starts
 * the settling mask; earlier input counts as 0).  Later calls must continue
 * where the previous one stopped (sample_start == previous start + n): on a
 * gap, call qes_demod_reset first.  A call that does not continue returns
 * QES_ERANGE and changes nothing.
 *
 * out must hold the outputs of this call: at most n / D + 1 (see
 * qes_demod_max_outputs); with fewer, QES_EINVAL and nothing changes.  out may
 * be NULL when max_out is 0 and the call produces no output.  x may be NULL
 * when n is 0.  *n_out receives the number written.  Allocates nothing.
 * Returns 0, QES_EINVAL (NULL object or pointers, max_out too small),
 * QES_ERANGE (discontinuity, or sample_start + n >= 2^64 - 1).
 */
int qes_demod_execute(struct qes_demod *d, const double *x, size_t n, uint64_t sample_start,
                      struct qes_demod_out *out, size_t max_out, size_t *n_out);

/* Upper bound of the outputs a call with n samples can produce: n / D + 1. */
size_t qes_demod_max_outputs(const struct qes_demod *d, size_t n);

/* Forget all state (filters, history, pending samples): the next execute starts
 * a new stream at any sample_start.  Returns 0 or QES_EINVAL for NULL. */
int qes_demod_reset(struct qes_demod *d);

/*
 * Equivalent noise bandwidth (one-sided, Hz) of the continuous low-pass
 * 1/(1 + s tau)^order: Gamma(n - 1/2) / (4 sqrt(pi) tau Gamma(n))
 * = C(2n-2, n-1) / (4^n tau).  NaN for order outside 1..8 or tau <= 0.
 */
double qes_demod_enbw_analytic_hz(unsigned order, double tau_s);

/* The analytic ENBW of d's low-pass (the continuous filter, no sinc). */
double qes_demod_enbw_hz(const struct qes_demod *d);

/*
 * Actual ENBW (one-sided, Hz) of d's discrete filter, sinc averaging included:
 * fs / 2 * sum g[m]^2 / (sum g[m])^2 over its impulse response g, from closed
 * forms (long double).  For white input noise of variance sigma^2, x and y
 * each have variance 2 sigma^2 ENBW / fs.  NaN for NULL.
 */
double qes_demod_enbw_discrete_hz(const struct qes_demod *d);

/* Resolved parameters.  Returns 0 or QES_EINVAL for NULL. */
int qes_demod_get_info(const struct qes_demod *d, struct qes_demod_info *info);

/* No-op for NULL. */
void qes_demod_destroy(struct qes_demod *d);

#endif
