/*
 * Kernel benchmarks, shared by `qes bench` and the bench_lockin executable.
 */
#ifndef QES_BENCH_BENCH_H
#define QES_BENCH_BENCH_H

#include <stdio.h>

/*
 * Measure the lock-in kernels next to their baselines (single-core memory
 * read limit, liquid-dsp's NCO + IIR lock-in, a naive sin/cos loop, a bare
 * FFTW r2c, the qes streaming demodulator) at block sizes 4096, 65536 and
 * 1048576: for each row the throughput with the block in cache ("hot") and
 * streamed from a 256 MiB buffer ("stream"), its ratios to the limit and to
 * liquid-dsp, and its largest error against the long double reference twin.
 * Prints a table to out; writes JSON to json_path when not NULL.
 * quick: sizes 4096 and 65536 and fewer repetitions (a few seconds; the full
 * run takes ~15 s of CPU).  Allocates ~300 MiB while it runs; single-threaded.
 * Returns 0, or a negative QES_E* code (QES_EIO: the JSON file).
 */
int qes_bench_main(int quick, const char *json_path, FILE *out);

#endif
