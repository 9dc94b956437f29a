/*
 * Window functions for block lock-in detection.
 *
 * Windows are periodic ("DFT-even"): w[n] for n = 0..N-1 is one period of a
 * length-N periodic sequence, so that on a coherent block (integer number of
 * periods) a harmonic bin is exact and leaks only into its immediate
 * neighbours (Hann: +-1 bin).
 */
#ifndef QES_DSP_WINDOW_H
#define QES_DSP_WINDOW_H

#include <stddef.h>

enum qes_window_kind {
    QES_WINDOW_RECT = 0,
    QES_WINDOW_HANN = 1,
};

/* Parse "rect" or "hann".  Returns 0, or QES_EINVAL for an unknown name. */
int qes_window_from_name(const char *name, enum qes_window_kind *out);
/* Canonical name of a window kind; NULL for an invalid value. */
const char *qes_window_name(enum qes_window_kind kind);
/*
 * Fill w[0..n-1] with the periodic window.  n >= 1.  Returns 0 or QES_EINVAL.
 */
int qes_window_fill(enum qes_window_kind kind, size_t n, double *w);
/*
 * Half-width, in bins, of the window's main lobe leakage on a coherent block:
 * a coherent tone leaks into bins k-L..k+L (rect: 0, hann: 1).  Harmonic bins
 * must be further apart than L and more than L from DC and Nyquist.
 */
unsigned qes_window_leak_bins(enum qes_window_kind kind);

#endif
