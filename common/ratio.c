#include "common/ratio.h"
#include "common/err.h"

#include <math.h>

int qes_ratio_approx(double x, uint64_t max_den, double rel_tol, uint64_t *p, uint64_t *q)
{
    if (!(x >= 0.0) || !isfinite(x) || max_den == 0 || !p || !q)
        return QES_EINVAL;
    if (x == 0.0) {
        *p = 0;
        *q = 1;
        return 0;
    }
    /* Convergents h/k of the continued fraction of x, in long double so that
     * the remainders keep a few more bits than the input has. */
    long double r = x;
    uint64_t h0 = 0, h1 = 1, k0 = 1, k1 = 0;
    for (int it = 0; it < 64; it++) {
        long double a_ld = floorl(r);
        if (a_ld > 1.8e19L)
            break;
        uint64_t a = (uint64_t)a_ld;
        /* next convergent: h = a*h1 + h0, k = a*k1 + k0; stop before overflow */
        if (k1 != 0 && a > (max_den - k0) / k1)
            break;
        if (h1 != 0 && a > (UINT64_MAX - h0) / h1)
            break;
        uint64_t h2 = a * h1 + h0, k2 = a * k1 + k0;
        h0 = h1;
        h1 = h2;
        k0 = k1;
        k1 = k2;
        long double approx = (long double)h1 / (long double)k1;
        if (fabsl(approx - (long double)x) <= (long double)rel_tol * (long double)x)
            break;
        long double frac = r - a_ld;
        if (frac <= 0.0L)
            break;
        r = 1.0L / frac;
    }
    if (k1 == 0)
        return QES_ERANGE;
    long double approx = (long double)h1 / (long double)k1;
    if (fabsl(approx - (long double)x) > (long double)rel_tol * (long double)x)
        return QES_ERANGE;
    *p = h1;
    *q = k1;
    return 0;
}

uint64_t qes_mulmod_u64(uint64_t a, uint64_t b, uint64_t m)
{
    __extension__ typedef unsigned __int128 u128;
    return (uint64_t)(((u128)a * b) % m);
}
