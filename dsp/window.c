/*
 * Periodic windows for coherent block lock-in (see window.h).
 */
#include "dsp/window.h"

#include "common/err.h"

#include <math.h>
#include <string.h>

int qes_window_from_name(const char *name, enum qes_window_kind *out)
{
    if (!name || !out)
        return QES_EINVAL;
    if (strcmp(name, "rect") == 0) {
        *out = QES_WINDOW_RECT;
        return 0;
    }
    if (strcmp(name, "hann") == 0) {
        *out = QES_WINDOW_HANN;
        return 0;
    }
    return QES_EINVAL;
}

const char *qes_window_name(enum qes_window_kind kind)
{
    switch (kind) {
    case QES_WINDOW_RECT:
        return "rect";
    case QES_WINDOW_HANN:
        return "hann";
    }
    return NULL;
}

int qes_window_fill(enum qes_window_kind kind, size_t n, double *w)
{
    if (!w || n < 1)
        return QES_EINVAL;
    switch (kind) {
    case QES_WINDOW_RECT:
        for (size_t i = 0; i < n; i++)
            w[i] = 1.0;
        return 0;
    case QES_WINDOW_HANN: {
        /*
         * w[i] = 0.5 - 0.5 cos(2 pi i / n).  The angle is taken as
         * 2 pi (i - n) / n for i > n/2 (same cosine) so that its magnitude
         * stays <= pi and its rounding error <= 1 ulp of pi; the window is
         * then symmetric, w[i] == w[n - i], bit for bit.
         */
        const double two_pi = 6.283185307179586476925286766559;
        for (size_t i = 0; i < n; i++) {
            size_t k = 2 * i <= n ? i : n - i;
            w[i] = 0.5 - 0.5 * cos(two_pi * (double)k / (double)n);
        }
        return 0;
    }
    }
    return QES_EINVAL;
}

unsigned qes_window_leak_bins(enum qes_window_kind kind)
{
    switch (kind) {
    case QES_WINDOW_RECT:
        return 0;
    case QES_WINDOW_HANN:
        return 1;
    }
    return 0;
}
