/*
 * Interpolated DFT (ipDFT): frequency, amplitude and phase of the strongest
 * tone of a block that does not hold an integer number of periods.
 *
 * Signal model: x[i] = sqrt(2) r cos(2 pi lambda i / n + phi), i = 0..n-1,
 * lambda = k + delta cycles per block (k the DFT bin of the largest periodic
 * Hann spectrum line, |delta| <= 1/2).  The block is weighted with the
 * periodic Hann window and transformed once (FFTW r2c, FFTW_ESTIMATE, plan
 * made at create).  With X[m] the windowed spectrum and W(nu) the window's
 * DTFT at nu bins, X[m] = (A/2) e^{j phi} W(m - lambda) + (A/2) e^{-j phi}
 * W(m + lambda), A = sqrt(2) r.
 *
 * Frequency.  With the standard large-n Hann kernel
 * |W(nu)| ~ (n/2) |sin(pi nu)| / (pi |nu| |1 - nu^2|):
 *   2 points: alpha = |X[k+1]| / |X[k]| if |X[k+1]| >= |X[k-1]|, then
 *             delta = (2 alpha - 1) / (alpha + 1) (mirrored for k-1);
 *   3 points: delta = 2 (|X[k+1]| - |X[k-1]|) / (|X[k-1]| + 2 |X[k]| + |X[k+1]|)
 *             (Agrez 2002; exact for the large-n kernel).
 * The estimate is then refined by solving the same statistic against the
 * exact finite-n kernel (two secant steps), which removes the O((pi/n)^4)
 * model error of the closed forms.
 * Amplitude: A = 2 |X[k]| / |W(-delta)| (2 points), or
 * 2 (|X[k-1]| + 2 |X[k]| + |X[k+1]|) / (|W(-1-delta)| + 2 |W(-delta)| + |W(1-delta)|)
 * (3 points), with the exact kernel.
 * Phase.  The periodic Hann has w[0] = 0 and w[i] = w[n-i], so its DTFT is
 * W(nu) = e^{-j pi nu} R(nu) with R real, positive on the main lobe: the phase
 * at the first sample is phi = arg X[k] - pi delta (computed as
 * arg(X[k] conj W(-delta))).  (The e^{-j pi nu (n-1)/n} phase belongs to a
 * symmetric window of n points centred on (n-1)/2, not to this one.)
 *
 * Negative-frequency image.  The second term above leaks into the bins used,
 * by a relative amount of about delta (1 - delta^2) / (8 lambda^3) (4e-5 for
 * lambda = 10): the textbook formulas then err by ~1e-5 in amplitude at 10
 * periods.  By default (QES_IPDFT_IMAGE_REMOVE) the image is computed from
 * the current estimate with the exact kernel, subtracted from the bins, and
 * the estimate repeated (image_passes times; each pass multiplies the error
 * by about the image's relative size).
 *
 * Accuracy (noise-free sine, n = 1000 and 4096, worst over 16 phases;
 * tests/dsp/test_ipdft.c logs every figure):
 *   image removed, 2 passes (default), >= 10 periods: 3 points within 2e-15
 *   in frequency (bins) and amplitude (relative), 5e-14 rad in phase;
 *   2 points within 4e-13 bins, 1e-13, 1.5e-12 rad (worst at 10.3 periods);
 *   3.3 periods: 1.5e-9 (3 points) to 7e-9 (2 points); 4 passes: 1e-14.
 *   textbook (QES_IPDFT_IMAGE_KEEP), 3 points: amplitude 1.2e-6 at 10.3
 *   periods, 2.9e-6 at 10.5, 2e-10 at 41.95; 2 points: 1.2e-5 at 10.3.
 * Other tones and noise leak in through the Hann sidelobes (-31.5 dB,
 * falling 18 dB/octave) and are not removed.
 *
 * Thread safety: create/destroy on the control thread; execute on one object
 * from one thread at a time.
 */
#ifndef QES_DSP_IPDFT_H
#define QES_DSP_IPDFT_H

#include "dsp/window.h"

#include <stddef.h>

enum qes_ipdft_image {
    QES_IPDFT_IMAGE_REMOVE = 0, /* default: subtract the negative-frequency image */
    QES_IPDFT_IMAGE_KEEP = 1,   /* textbook formulas, image ignored */
};

#define QES_IPDFT_POINTS_DEFAULT 3
#define QES_IPDFT_PASSES_DEFAULT 2
#define QES_IPDFT_PASSES_MAX     16

struct qes_ipdft_desc {
    size_t n;                    /* samples per block, 16 <= n <= INT_MAX */
    double fs_hz;                /* sample rate, > 0, finite */
    enum qes_window_kind window; /* QES_WINDOW_HANN, the only window the formulas are for */
    unsigned points;             /* 2 or 3; 0 = QES_IPDFT_POINTS_DEFAULT */
    enum qes_ipdft_image image;  /* QES_IPDFT_IMAGE_REMOVE (default) or _KEEP */
    unsigned image_passes;       /* 1..QES_IPDFT_PASSES_MAX; 0 = QES_IPDFT_PASSES_DEFAULT */
};

struct qes_ipdft_result {
    double freq_hz;    /* freq_bins * fs_hz / n */
    double freq_bins;  /* lambda = peak_bin + delta_bins, cycles per block */
    double delta_bins; /* offset from the peak bin, in [-1/2, 1/2] for a clean tone */
    double r;          /* RMS amplitude, in the unit of the samples */
    double phase_rad;  /* phi: phase of the cosine at the block's first sample, (-pi, pi] */
    size_t peak_bin;   /* k */
};

struct qes_ipdft;

/*
 * Make an ipDFT.  Returns 0 and *out, QES_EINVAL (bad desc; *out = NULL),
 * QES_EUNSUPPORTED (a valid window other than hann), QES_ENOMEM.
 */
int qes_ipdft_create(const struct qes_ipdft_desc *desc, struct qes_ipdft **out);

/*
 * Estimate the strongest tone of one block.
 * x: n samples.  hint_bin: 0 to take the largest spectrum line over bins
 * 2..n/2-1 (bins 0 and 1 hold the Hann leakage of DC); otherwise the largest
 * of hint_bin-1..hint_bin+1 (to follow a known tone when a stronger one is
 * present).  The peak bin k must leave k-1 >= 2 and k+1 <= n/2-1: the bins
 * used stay clear of DC leakage and of Nyquist.
 * Returns 0, QES_EINVAL (NULL argument), or QES_ERANGE (hint_bin beyond
 * n/2 - 1, peak too close to DC or Nyquist, or no tone: a zero or non-finite
 * block); *out is then unchanged.  Allocates nothing.
 */
int qes_ipdft_execute(struct qes_ipdft *p, const double *x, size_t hint_bin,
                      struct qes_ipdft_result *out);

/*
 * Frequency of the strongest tone of x, in Hz (for freq_hz = auto: tracking
 * a free-running source block by block).  Same as qes_ipdft_execute with
 * hint_bin 0, returning only the frequency.  Same return codes.
 */
int qes_ipdft_strongest_hz(struct qes_ipdft *p, const double *x, double *freq_hz);

/*
 * The periodic Hann window's DTFT W(nu) = sum_i w[i] e^{-j 2 pi nu i / n}
 * (nu in bins, any real value not a non-zero multiple of n) in closed form:
 * the sum of three shifted Dirichlet kernels.  *re, *im get its parts.
 * For tests and for image removal elsewhere.
 */
void qes_ipdft_hann_kernel(size_t n, double nu, double *re, double *im);

/* No-op for NULL. */
void qes_ipdft_destroy(struct qes_ipdft *p);

#endif
