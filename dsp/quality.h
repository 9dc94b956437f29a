/*
 * Signal quality figures of one block: THD, SINAD, SNR, SFDR and a count of
 * clipped samples.
 *
 * Method (IEEE 1241 / IEC 60748-4 style, from one windowed spectrum):
 * the block is weighted with the chosen window and transformed (FFTW r2c,
 * FFTW_ESTIMATE, plan made at create).  The one-sided power of bin b is
 * P[b] = 2 |X[b]|^2 / sum(w)^2 (DC and Nyquist without the factor 2), so that
 * a tone of RMS r on a bin centre gives r^2 ENBW summed over its leakage bins,
 * and white noise of variance s^2 gives E[P[b]] = 2 s^2 ENBW / n.
 *
 * With lambda = fund_hz n / fs_hz (the fundamental in bins, not necessarily
 * an integer) and L the tone half-width (desc.tone_bins, default the window's
 * main-lobe half-width rounded up: rect 1, hann 2, blackmanharris 4,
 * flattop 11, kaiser ceil(sqrt(1 + (beta/pi)^2))), the bins are grouped:
 *   DC group         b <= L
 *   harmonic h group |b - h lambda| <= L, h = 1..H (H = max_harmonic, lowered
 *                    to the last harmonic whose group ends below Nyquist)
 *   noise bins       every other bin strictly between DC and Nyquist.
 * The noise floor per bin p0 is the median of P over the noise bins divided
 * by ln 2 (P of a noise bin is exponentially distributed; the median ignores
 * spurs and unlisted harmonics).  In bin-equivalents the band is n/2 wide
 * (DC and Nyquist count one half).  Then
 *   P_h     = (sum of P over group h - (bins in group h) p0) / ENBW, >= 0
 *   noise   = (sum of P over the noise bins + p0 (n/2 - noise bins)) / ENBW:
 *             the noise as measured plus the floor under the bins not
 *             measured (white noise covers the whole band)
 *   NAD     = (sum of P over every bin outside the DC and fundamental groups
 *             + p0 (bins hidden by those two groups)) / ENBW: noise,
 *             harmonics and spurs as measured, no clamping (unbiased)
 *   THD     = sqrt(P_2 + ... + P_H) / sqrt(P_1)
 *   SINAD   = 10 log10(P_1 / NAD)
 *   SNR     = 10 log10(P_1 / noise)   (spurs and harmonics above H count as noise)
 *   SFDR    = 10 log10(P_1 / P_spur), P_spur the power summed over +-L bins
 *             around the largest bin outside the DC and fundamental groups
 *             (a harmonic or any other spur).
 *
 * Window choice.  Coherent blocks (integer lambda): rect is exact (each tone
 * in one bin); any cosine-sum window is exact as well.  Non-coherent blocks:
 * a tone leaks beyond its group by its window's sidelobes, which then count
 * as noise and spurs: about -31 dB of the tone for hann, -92 dB for
 * blackmanharris, -248 dB for flattop; use blackmanharris, flattop or kaiser
 * with a large beta.
 *
 * Thread safety: create/destroy on the control thread; execute on one object
 * from one thread at a time.
 */
#ifndef QES_DSP_QUALITY_H
#define QES_DSP_QUALITY_H

#include "dsp/window.h"

#include <stddef.h>

#define QES_QUALITY_HARMONIC_DEFAULT 10
#define QES_QUALITY_HARMONIC_MAX     1000
#define QES_QUALITY_TONE_BINS_MAX    64

struct qes_quality_desc {
    size_t n;                    /* samples per block, 16 <= n <= INT_MAX */
    double fs_hz;                /* sample rate, > 0, finite */
    enum qes_window_kind window; /* rect for coherent blocks; see the header comment */
    double kaiser_beta;          /* 0 = QES_WINDOW_KAISER_BETA_DEFAULT; <= _MAX */
    unsigned max_harmonic;       /* H, 2..QES_QUALITY_HARMONIC_MAX; 0 = default 10 */
    unsigned tone_bins;          /* L, 1..QES_QUALITY_TONE_BINS_MAX; 0 = main lobe */
    double full_scale;           /* |x| >= full_scale counts as clipped; 0 = no count */
};

struct qes_quality_result {
    double fund_hz;     /* as given */
    double fund_rms;    /* sqrt(P_1), in the unit of the samples */
    double noise_rms;   /* sqrt(noise) */
    double thd;         /* ratio (not percent) */
    double thd_db;      /* 20 log10(thd); -inf for no distortion */
    double sinad_db;    /* dB */
    double snr_db;      /* dB */
    double sfdr_db;     /* dB */
    double spur_hz;     /* bin centre of the largest spur */
    unsigned harmonics; /* H used: harmonics 2..harmonics enter THD (1: none fit) */
    size_t clipped;     /* samples with |x| >= full_scale; 0 when full_scale is 0 */
};

struct qes_quality;

/* Make a quality analyser.  Returns 0 and *out, QES_EINVAL (bad desc;
 * *out = NULL), QES_ENOMEM. */
int qes_quality_create(const struct qes_quality_desc *desc, struct qes_quality **out);

/*
 * Figures of one block.  x: n samples; fund_hz: frequency of the fundamental
 * (known, or from qes_ipdft for a free-running source), > 0.
 * Returns 0, QES_EINVAL (NULL argument, fund_hz not finite and > 0), or
 * QES_ERANGE (the fundamental's group overlaps the DC group, lambda <= 2 L,
 * or reaches Nyquist, lambda + L >= n/2; no noise bin is left; or the block
 * holds a non-finite sample); *out is then unchanged.  Allocates nothing.
 */
int qes_quality_execute(struct qes_quality *q, const double *x, double fund_hz,
                        struct qes_quality_result *out);

/* The tone half-width L in bins used by this analyser. */
unsigned qes_quality_tone_bins(const struct qes_quality *q);

/* No-op for NULL. */
void qes_quality_destroy(struct qes_quality *q);

/*
 * Count samples with |x| >= full_scale among x[0], x[stride], ...,
 * x[(n-1) stride] (one channel of an interleaved frame in raw units).
 * stride >= 1; full_scale > 0.  NaN samples are not counted.  Returns the
 * count; 0 for bad arguments.  Thread-safe.
 */
size_t qes_quality_count_clipped(const double *x, size_t n, size_t stride, double full_scale);

#endif
