/*
 * Exact rational frequencies.
 *
 * A reference whose phase is computed as 2*pi*f*t in floating point loses
 * about 1e-12 rad per 1e4 rad of argument.  When f/fs is a ratio p/q of small
 * integers the phase of sample n is 2*pi*((p*n) mod q)/q, exact in integers
 * for any n.  These helpers find that ratio.
 */
#ifndef QES_COMMON_RATIO_H
#define QES_COMMON_RATIO_H

#include <stdint.h>

/*
 * Best rational approximation p/q of x >= 0 with q <= max_den (continued
 * fractions).  Returns 0 and sets *p, *q when |x - p/q| <= rel_tol * |x|
 * (x == 0 gives 0/1); QES_ERANGE when no such ratio exists; QES_EINVAL for a
 * negative or non-finite x or max_den == 0.
 */
int qes_ratio_approx(double x, uint64_t max_den, double rel_tol, uint64_t *p, uint64_t *q);

/* (a * b) mod m without overflow, m > 0. */
uint64_t qes_mulmod_u64(uint64_t a, uint64_t b, uint64_t m);

#endif
