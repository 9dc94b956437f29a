/*
 * Kernel benchmarks, shared by `qes bench` and the bench_lockin executable.
 */
#ifndef QES_BENCH_BENCH_H
#define QES_BENCH_BENCH_H

#include <stdio.h>

/*
 * Measure the block lock-in kernels next to their baselines (memory-read
 * limit, a naive sin/cos loop, a bare FFTW r2c) at several block sizes, each
 * with its largest error against the long double reference twin.  Prints a
 * table to out; writes JSON to json_path when not NULL.  quick: fewer sizes
 * and repetitions.  Returns 0, or a negative code.
 */
int qes_bench_main(int quick, const char *json_path, FILE *out);

#endif
