/*
 * Live latency benchmark, for `qes bench`: the simulated ADC paced in real
 * time at 1 MS/s, read by the acquisition thread into the ring, 4096-sample
 * blocks through the DFT lock-in, records into the recorder queue; the
 * latency from the arrival of a block's last sample to its record entering
 * the queue, p50, p99 and max (issue 5's target: p99 <= 100 us).  In the
 * same run, the baseline: the time liquid-dsp's NCO + IIR lock-in spends on
 * one such block, per block.  Never gates CI: the machine is shared.
 */
#ifndef QES_BENCH_BENCH_LIVE_H
#define QES_BENCH_BENCH_LIVE_H

#include <stdint.h>
#include <stdio.h>

struct qes_bench_live_result {
    uint64_t blocks;
    double p50_us, p99_us, max_us; /* the consumer sleeps between buffers */
    uint64_t bp_blocks;            /* the same with [run] busy_poll_us = 10000: */
    double bp_p50_us, bp_p99_us, bp_max_us;
    double liquid_p50_us, liquid_p99_us, liquid_max_us;
    uint64_t lost, frames_dropped;
};

/* quick: 3 s of samples, else 20 s.  Prints a table to out.  Returns 0 or a
 * negative code. */
int qes_bench_live(int quick, FILE *out, struct qes_bench_live_result *res);

#endif
