/*
 * AC-PJVS differential sampling, step-synchronous processing (`method =
 * steps`).
 *
 * The PJVS synthesises a staircase of S steps per period of freq_hz; step k
 * holds V_k = n_k f_J / K_J exactly.  The digitizer sees x = DUT - staircase.
 * A block holds n = P S L samples (P whole periods, L samples per step,
 * coherent sampling).  Processing of one block:
 *
 *  1. Edges.  The staircase edges sit at o + j L.  The offset o (0..L-1) is
 *     the one maximising sum_j |x[o + jL] - x[o + jL - 1]| over all edges:
 *     the staircase jumps (typ. 1e-1 V) dwarf the change of the DUT over one
 *     sample.  Indices are taken modulo n: a coherent block is n-periodic in
 *     steady state, so the samples before the first edge are the tail of the
 *     last step and every block yields P whole periods.
 *  2. Which step starts at the first edge (step0).  For each rotation r of
 *     the step list the period-averaged step means plus V_{(q + r) mod S}
 *     are projected onto DC + fundamental; the rotation with the smallest
 *     residual is kept (a wrong rotation leaves staircase-sized jumps).
 *  3. Masks.  mask_after samples from each edge on and mask_before samples
 *     before it are dropped; the W = L - after - before remaining samples
 *     of each step are averaged.  Automatic masks: the residual of every
 *     sample against a first estimate of the DUT (DC + sine, from the
 *     largest candidate masks) is formed; for each candidate (after, before)
 *     the largest within-step standard deviation over all steps of the
 *     block is taken; the candidate with the fewest masked samples whose
 *     value is within auto_ratio (default 1.10) of the smallest over all
 *     candidates wins (ties: the smaller after).  The residual, not x
 *     itself, is used because within a step x follows the DUT sine (a ramp
 *     of typ. 0.4 V at 20 steps/period), which would swamp the ringing.
 *  4. Reconstruction and RMS.  y_q = mean_q + V_{(q + step0) mod S}.  Each
 *     mean is the DUT averaged over its window; for the sine part
 *     sqrt(2) R cos(d i + phi), d = 2 pi / (S L) rad/sample, the mean over W
 *     consecutive samples centred on c is exactly G sqrt(2) R cos(d c + phi)
 *     with G = sin(W d / 2) / (W sin(d / 2)).  The window centres are
 *     c_q = o + after + (W - 1)/2 + q L, equally spaced, so the S-point DFT
 *     X1 = (2/S) sum_q y_q e^{-j 2 pi q / S} equals G sqrt(2) R e^{j(d c_0 +
 *     phi)} exactly: R = |X1| / (sqrt(2) G), phi = arg X1 - d c_0.  DC goes to
 *     bin 0 (gain 1) and does not disturb bin 1.  Done per period; the block
 *     value is the mean over periods, u its Type A standard deviation.
 *
 * Limits of the model: the value is the RMS of the DUT fundamental; DUT
 * harmonics h = m S +- 1 alias into bin 1 (19 and 21 at S = 20), others are
 * ignored; an edge offset error of e samples is harmless while 0 <= e <
 * mask_before (windows stay inside their steps; the phase uses the windows'
 * true positions).
 *
 * Thread safety: create/destroy on one thread; execute on one object from
 * one thread at a time; different objects may execute in parallel.
 */
#ifndef QES_DSP_STEPS_H
#define QES_DSP_STEPS_H

#include <stddef.h>

struct qes_steps_desc {
    double fs_hz;              /* sample rate, > 0, finite */
    double freq_hz;            /* staircase (DUT) frequency, > 0; fs/(freq S) an integer L >= 2 */
    unsigned steps_per_period; /* S >= 3 */
    double f_j_hz;             /* Josephson drive frequency, > 0, finite (typ. 70e9) */
    const double *steps;       /* n_k, signed junction counts, whole numbers, |n_k| <= 2^53;
                                * copied at create */
    size_t n_steps;            /* must equal steps_per_period */
    unsigned mask_after;       /* fixed: samples dropped from each edge on;
                                * auto: largest candidate, 0 = L/2 */
    unsigned mask_before;      /* fixed: samples dropped before each edge;
                                * auto: largest candidate, 0 = L/4 */
    int auto_mask;             /* nonzero: choose masks per block (see above) */
    double auto_ratio;         /* auto: tolerance on the scatter, >= 1; 0 = 1.10 */
    unsigned auto_step;        /* auto: candidate grid step in samples; 0 = max(1, L/100) */
    size_t n;                  /* samples per block, a positive multiple of S L */
};

struct qes_steps_result {
    double rms;         /* DUT fundamental RMS, V: mean of the per-period values */
    double u;           /* Type A: sd of the per-period values / sqrt(P); NaN when P = 1 */
    double dof;         /* P - 1; NaN when P = 1 */
    size_t periods;     /* P */
    double phase_rad;   /* DUT = dc + sqrt(2) rms cos(2 pi freq i / fs + phase), i = 0 at the
                         * block's first sample; arg of the mean phasor, in (-pi, pi] */
    double dc;          /* DC of the reconstructed DUT, V */
    size_t edge_offset; /* sample index of the first edge in the block, 0..L-1 */
    unsigned step0;     /* index into steps of the step that starts at edge_offset */
    unsigned mask_after, mask_before; /* masks used */
    unsigned window;                  /* W = L - mask_after - mask_before */
    double gain;                      /* G = sin(W d/2) / (W sin(d/2)) */
    double scatter;                   /* largest within-step sd of the residual at the masks used, V
                         * (auto only; NaN with fixed masks) */
    double scatter_min;       /* smallest such value over the candidates, V (auto; NaN otherwise) */
    const double *period_rms; /* P per-period values, V; owned by the object, valid until the
                               * next execute or destroy */
};

struct qes_steps;

/*
 * Make a step processor.  Returns 0 and *out, or QES_EINVAL (NULL pointers,
 * non-finite or non-positive rates, S < 3, n_steps != S, non-integer junction
 * count, fs/(freq S) not an integer (within 1e-9 relative) or below 2, n not
 * a positive multiple of S L, fixed masks leaving no sample (after + before
 * >= L), auto masks whose largest candidates leave fewer than 2 samples,
 * auto_ratio < 1), or QES_ENOMEM.  *out is untouched on error.
 */
int qes_steps_create(const struct qes_steps_desc *desc, struct qes_steps **out);

/*
 * Process one block of n samples of x = DUT - staircase, in V.  Allocates
 * nothing.  Returns 0 or QES_EINVAL (NULL argument).
 */
int qes_steps_execute(struct qes_steps *s, const double *block, struct qes_steps_result *res);

/* Samples per step L. */
size_t qes_steps_samples_per_step(const struct qes_steps *s);

/* No-op for NULL. */
void qes_steps_destroy(struct qes_steps *s);

#endif
