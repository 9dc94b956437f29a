/*
 * Tests of dsp/window: names, values, coherent gain of the periodic Hann.
 */
#include "dsp/window.h"

#include "common/err.h"

#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>

TestSuite(window, .timeout = 30);

Test(window, names_round_trip)
{
    enum qes_window_kind k;
    cr_assert_eq(qes_window_from_name("rect", &k), 0);
    cr_assert_eq(k, QES_WINDOW_RECT);
    cr_assert_str_eq(qes_window_name(k), "rect");
    cr_assert_eq(qes_window_from_name("hann", &k), 0);
    cr_assert_eq(k, QES_WINDOW_HANN);
    cr_assert_str_eq(qes_window_name(k), "hann");
}

Test(window, bad_names_refused)
{
    static const char *const bad[] = {"",      "Hann",        "HANN",     "hanning", "rect ",
                                      " rect", "rectangular", "blackman", "kaiser",  "hann\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum qes_window_kind k = QES_WINDOW_HANN;
        cr_assert_eq(qes_window_from_name(bad[i], &k), QES_EINVAL, "name \"%s\" accepted", bad[i]);
    }
    enum qes_window_kind k;
    cr_assert_eq(qes_window_from_name(NULL, &k), QES_EINVAL);
    cr_assert_eq(qes_window_from_name("rect", NULL), QES_EINVAL);
    cr_assert_null(qes_window_name((enum qes_window_kind)7));
}

Test(window, fill_refuses_bad_arguments)
{
    double w[4];
    cr_assert_eq(qes_window_fill(QES_WINDOW_HANN, 0, w), QES_EINVAL);
    cr_assert_eq(qes_window_fill(QES_WINDOW_HANN, 4, NULL), QES_EINVAL);
    cr_assert_eq(qes_window_fill((enum qes_window_kind)7, 4, w), QES_EINVAL);
}

Test(window, leak_bins)
{
    cr_assert_eq(qes_window_leak_bins(QES_WINDOW_RECT), 0);
    cr_assert_eq(qes_window_leak_bins(QES_WINDOW_HANN), 1);
}

Test(window, rect_is_all_ones)
{
    double w[17];
    cr_assert_eq(qes_window_fill(QES_WINDOW_RECT, 17, w), 0);
    for (size_t i = 0; i < 17; i++)
        cr_assert_eq(w[i], 1.0);
}

/* Values at the points where the periodic Hann is known exactly. */
Test(window, hann_known_points_and_symmetry)
{
    const size_t n = 1000;
    double *w = malloc(n * sizeof *w);
    cr_assert_not_null(w);
    cr_assert_eq(qes_window_fill(QES_WINDOW_HANN, n, w), 0);
    /* Periodic, not symmetric-length: w[0] = 0 and the peak is at n/2. */
    cr_assert_eq(w[0], 0.0);
    cr_assert_eq(w[n / 2], 1.0);
    /* w[n/4] = 0.5 - 0.5 cos(pi/2): cos of the rounded pi/2 is 6e-17, so
     * within 1 ulp of 0.5. */
    cr_assert(fabs(w[n / 4] - 0.5) <= DBL_EPSILON, "w[n/4] = %.17g", w[n / 4]);
    /* Periodic symmetry w[i] = w[n - i], bit for bit by construction. */
    for (size_t i = 1; i < n; i++)
        cr_assert_eq(w[i], w[n - i], "i = %zu", i);
    for (size_t i = 0; i < n; i++)
        cr_assert(w[i] >= 0.0 && w[i] <= 1.0);
    free(w);
}

/*
 * Coherent gain sum(w)/n of the periodic Hann is exactly 1/2 in exact
 * arithmetic for n >= 2 (the cosine sums to zero over a full period).
 * Budget: each w[i] is within ~2 ulp of its true value (cos of an angle
 * rounded to 1 ulp, one multiply-subtract), so |sum(w) - n/2| <= 2 u n, plus
 * the double summation error <= n u sum(w) = n u n/2; relative to n/2 that is
 * (4 + n) u.  For n <= 10001 that is < 1.2e-12; the long double sum used
 * here removes the second term, so the bound asserted is 4 u = 8.9e-16 plus
 * a margin of 2x: 2e-15.
 */
Test(window, hann_coherent_gain_is_one_half)
{
    static const size_t sizes[] = {2, 3, 4, 5, 16, 1000, 1024, 10001};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const size_t n = sizes[k];
        double *w = malloc(n * sizeof *w);
        cr_assert_not_null(w);
        cr_assert_eq(qes_window_fill(QES_WINDOW_HANN, n, w), 0);
        long double s = 0.0L, s2 = 0.0L;
        for (size_t i = 0; i < n; i++) {
            s += w[i];
            s2 += (long double)w[i] * w[i];
        }
        const double gain = (double)(s / n);
        cr_assert(fabs(gain - 0.5) <= 2e-15, "n = %zu: coherent gain %.17g", n, gain);
        /* sum(w^2)/n = 3/8 for n >= 3 (cos^2 averages to 1/2 over a period
         * only when 2/n is not an integer); same budget. */
        if (n >= 3) {
            const double pg = (double)(s2 / n);
            cr_assert(fabs(pg - 0.375) <= 2e-15, "n = %zu: power gain %.17g", n, pg);
        }
        free(w);
    }
}
