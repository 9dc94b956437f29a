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
};

/*
 * Run to the end of the source (or until *stop).  Returns 0 or a negative
 * code with a message in err (configuration that cannot be processed:
 * QES_ECONFIG; source or recorder failure: the failing code).
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
