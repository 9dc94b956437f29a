/*
 * Window functions for block lock-in detection and spectral estimation.
 *
 * Windows are periodic ("DFT-even"): w[i] for i = 0..n-1 is one period of a
 * length-n periodic sequence, symmetric as w[i] == w[n - i] (bit for bit), so
 * that on a coherent block (integer number of periods) a cosine-sum window's
 * spectrum has exact zeros on every bin beyond its leakage half-width.
 *
 * Kinds, config names and published figures (large n; the figures of the
 * periodic windows computed here agree to the digits quoted, see
 * tests/dsp/test_window.c):
 *
 *   kind            name            coefficients a_k of w = sum a_k cos(2 pi k i / n)
 *   rect            rect            1
 *   hann            hann            0.5, -0.5
 *   blackmanharris  blackmanharris  0.35875, -0.48829, 0.14128, -0.01168
 *                                   (4-term, -92 dB; F. J. Harris, Proc. IEEE 66(1), 1978)
 *   flattop         flattop         HFT248D, 11 terms (Heinzel, Ruediger, Schilling,
 *                                   "Spectrum and spectral density estimation by the
 *                                   DFT", MPI Hannover 2002, appendix D):
 *                                   1, -1.985844164102, 1.791176438506,
 *                                   -1.282075284005, 0.667777530266, -0.240160796576,
 *                                   0.056656381764, -0.008134974479, 0.000624544650,
 *                                   -0.000019808998, 0.000000132974
 *   kaiser          kaiser          I0(beta sqrt(1 - (2 i / n - 1)^2)) / I0(beta)
 *
 *   (Heinzel 2002)  ENBW bins  highest sidelobe  scalloping at 0.5 bin  leak bins
 *   rect            1          -13.3 dB          -3.9224 dB             0
 *   hann            1.5        -31.5 dB          -1.4236 dB             1
 *   blackmanharris  2.0044     -92.0 dB          -0.8256 dB             3
 *   flattop         5.6512     -248.4 dB          0.0009 dB (max error) 10
 *   kaiser beta=3pi 1.7952     -69.6 dB          -1.0226 dB             ceil(main lobe)
 *
 * Coherent gain differs per window (rect 1, hann 0.5, blackmanharris 0.35875,
 * flattop 1): amplitude estimates divide by sum(w).
 */
#ifndef QES_DSP_WINDOW_H
#define QES_DSP_WINDOW_H

#include <stddef.h>

enum qes_window_kind {
    QES_WINDOW_RECT = 0,
    QES_WINDOW_HANN = 1,
    QES_WINDOW_BLACKMANHARRIS = 2, /* 4-term Blackman-Harris, -92 dB */
    QES_WINDOW_FLATTOP = 3,        /* HFT248D */
    QES_WINDOW_KAISER = 4,         /* Kaiser(beta), I0 by its power series */
};

/* Kaiser shape used where no beta is given (qes_window_fill,
 * qes_window_leak_bins, and descs whose kaiser_beta is 0): 8.6, sidelobes
 * near -63 dB and a main-lobe half-width of 2.9 bins. */
#define QES_WINDOW_KAISER_BETA_DEFAULT 8.6
/* Largest accepted beta: sidelobes of beta = 50 are far below double
 * precision already, and I0(beta) stays well inside the double range. */
#define QES_WINDOW_KAISER_BETA_MAX 50.0

/*
 * Parse a config name: "rect", "hann", "blackmanharris", "flattop" (HFT248D),
 * "kaiser".  Exact, case-sensitive.  Returns 0, or QES_EINVAL for an unknown
 * name or NULL arguments.
 */
int qes_window_from_name(const char *name, enum qes_window_kind *out);

/* Canonical (config) name of a window kind; NULL for an invalid value. */
const char *qes_window_name(enum qes_window_kind kind);

/*
 * Fill w[0..n-1] with the periodic window, Kaiser with
 * QES_WINDOW_KAISER_BETA_DEFAULT.  n >= 1.  Returns 0 or QES_EINVAL.
 * Same as qes_window_fill_ex(kind, QES_WINDOW_KAISER_BETA_DEFAULT, n, w).
 */
int qes_window_fill(enum qes_window_kind kind, size_t n, double *w);

/*
 * Fill w[0..n-1] with the periodic window.
 * beta: Kaiser shape, 0 <= beta <= QES_WINDOW_KAISER_BETA_MAX (0 is the
 *       rectangular window); ignored for the other kinds.
 * n >= 1; w: n values, written.  Values are not normalised: the peak is 1
 * for rect, hann, blackmanharris, kaiser and about 7.03 for flattop (whose
 * coherent gain is 1, as in Heinzel 2002).  Each value is within a few ulp of
 * the exact one.  Returns 0, or QES_EINVAL (bad kind, beta, n or w).
 * Allocates nothing; thread-safe.
 */
int qes_window_fill_ex(enum qes_window_kind kind, double beta, size_t n, double *w);

/*
 * Half-width, in bins, of the window's leakage on a coherent block: a
 * coherent tone leaks into bins k-L..k+L (rect 0, hann 1, blackmanharris 3,
 * flattop 10: the number of cosine terms minus one, exactly).  Harmonic bins
 * must be further apart than L and more than L from DC and Nyquist.
 * Kaiser (default beta): the main-lobe half-width sqrt(1 + (beta/pi)^2)
 * rounded up (3 for beta = 8.6); its leakage beyond it is not exactly zero
 * but the sidelobes (about -63 dB for beta = 8.6, falling 6 dB/octave), so a
 * coherent estimate with Kaiser is not exact to rounding the way the cosine
 * sums are.  Returns 0 for an invalid kind.
 */
unsigned qes_window_leak_bins(enum qes_window_kind kind);

/* qes_window_leak_bins with an explicit Kaiser beta (ignored for the other
 * kinds); 0 for an invalid kind or beta. */
unsigned qes_window_leak_bins_ex(enum qes_window_kind kind, double beta);

/*
 * Half-width of the main lobe, in bins: the first zero of the window's
 * spectrum in the large-n limit (rect 1, hann 2, blackmanharris 4, flattop 11,
 * kaiser sqrt(1 + (beta/pi)^2)).  beta as in qes_window_fill_ex.  NaN for an
 * invalid kind or beta.
 */
double qes_window_mainlobe_bins(enum qes_window_kind kind, double beta);

/* Figures of merit of a window of n points, computed from its values. */
struct qes_window_figures {
    double coherent_gain;   /* sum(w) / n */
    double power_gain;      /* sum(w^2) / n */
    double enbw_bins;       /* n sum(w^2) / sum(w)^2 */
    double enbw_hz;         /* enbw_bins * fs_hz / n; NaN when fs_hz == 0 */
    double scalloping_db;   /* 20 log10(|W(0.5 bin)| / |W(0)|) */
    double first_null_bins; /* first zero of |W(f)| for f > 0 (main-lobe half-width) */
    double sidelobe_db;     /* 20 log10 of the largest |W(f)| / |W(0)| over
                               first_null < f <= n/2; NaN when first_null >= n/2 */
    double sidelobe_bins;   /* where that largest sidelobe is */
};

/*
 * Compute the figures of a periodic window from its values and its DTFT
 * W(f) = sum_i w[i] e^{-j 2 pi f i / n} (f in bins).  The DTFT is sampled on a
 * grid of os points per bin (one zero-padded FFT of os n points,
 * FFTW_ESTIMATE): os = 8, or for Kaiser enough to keep 4 points in its
 * narrowest sidelobe (os = 9 at beta = 8.6, 43 at beta = 50).  The first null
 * and the sidelobe peaks within 3 dB of the largest are then refined by
 * golden-section searches on the directly summed DTFT (to ~1e-9 bin).
 * kind, beta: as in qes_window_fill_ex; n >= 4 and os n <=
 * QES_WINDOW_FIGURES_MAX_GRID (n <= 2^20 for the cosine sums); fs_hz >= 0
 * (0: enbw_hz is NaN).  Returns 0, QES_EINVAL (bad argument), QES_ERANGE (n
 * too large), QES_ENOMEM.
 * Allocates about 8 (os + 1) n bytes and makes an FFTW plan: call it from the
 * control thread (FFTW planning is not thread-safe), never from an execute
 * path.  Takes ~0.1 s at n = 65536.
 * Floor: the DTFT is summed in double, so levels below ~-300 dB are rounding
 * noise.  Only Kaiser with beta above ~40 goes that low: its sidelobe_db is
 * then that floor and first_null_bins where the main lobe meets it.
 */
int qes_window_figures(enum qes_window_kind kind, double beta, size_t n, double fs_hz,
                       struct qes_window_figures *out);

#define QES_WINDOW_FIGURES_MAX_GRID ((size_t)1 << 23)
#define QES_WINDOW_FIGURES_MAX_N    (QES_WINDOW_FIGURES_MAX_GRID / 8)

#endif
