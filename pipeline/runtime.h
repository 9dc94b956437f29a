/*
 * The processing loop: frames from a source, per-measurement block
 * assembly, lock-in, block records, running summaries, final summaries, to
 * every recorder.
 *
 * Blocks are aligned on run sample indices (block b holds samples b*N ..
 * b*N+N-1), so a block's reference phase is fixed by its index and a gap can
 * only touch the blocks it overlaps: those are emitted flagged `gap`, without
 * a value, and left out of the summaries.  A last block shorter than N is
 * emitted flagged `partial`, also without a value.
 */
#ifndef QES_PIPELINE_RUNTIME_H
#define QES_PIPELINE_RUNTIME_H

#include "hw/source.h"
#include "pipeline/config.h"
#include "pipeline/record.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

struct qes_runtime_desc {
    const struct qes_config *cfg;
    struct qes_source *src; /* borrowed */
    struct qes_recorder **recs;
    size_t n_recs;
    const struct qes_run_rec *run;
    int live;                    /* periodic summaries by host time */
    volatile sig_atomic_t *stop; /* set from a signal handler to stop cleanly; may be NULL */
    FILE *human;                 /* one line per measurement and harmonic at the end; NULL */
    FILE *progress;              /* progress lines; NULL for none */
    uint64_t total_frames;       /* for progress; 0 = unknown */
    uint64_t mc_trials;          /* > 0: Monte Carlo check of every final summary */
};

struct qes_runtime_stats {
    uint64_t frames; /* samples per channel processed */
    uint64_t lost;   /* samples per channel lost in gaps */
    uint64_t gaps;   /* number of gaps */
    uint64_t blocks; /* block records per harmonic, all measurements */
    uint64_t gap_blocks, clip_blocks, partial_blocks, quality_blocks;
    double seconds; /* host wall time of the loop */
    /* Live sources (frames with arrival_ns): latency from the arrival of a
     * block's last sample to its record entering the recorder queue, over
     * every block record, in microseconds (NaN when latency_n == 0).
     * Percentiles come from a histogram of 0.1 us bins up to 1 ms and 10 us
     * bins up to 100 ms (the bin's upper edge is reported); the max is exact. */
    uint64_t latency_n;
    double latency_p50_us, latency_p99_us, latency_max_us;
    /* a live source failed: the loop stopped early, final summaries were
     * written, and the source's error is returned */
    int source_failed;
};

/*
 * Run to the end of the source (or until *stop).  Returns 0 or a negative
 * code with a message in err (configuration that cannot be processed:
 * QES_ECONFIG; source or recorder failure: the failing code).  In a live run
 * (desc->live) a source failure still finishes the open blocks and writes
 * final summaries before returning its code (stats->source_failed = 1).
 */
int qes_runtime_execute(const struct qes_runtime_desc *desc, struct qes_runtime_stats *stats,
                        char *err, size_t errlen);

/*
 * Samples per block of a measurement: block_periods * fs / freq_hz, which must
 * be an integer (to 1e-9 relative).  Returns 0 and *n, or QES_ECONFIG with a
 * message naming the measurement.
 */
int qes_block_samples(const struct qes_cfg_measure *m, double fs_hz, size_t *n, char *err,
                      size_t errlen);

#endif
