/*
 * The recorder thread: block and summary records are copied into a bounded
 * queue by the DSP loop and written to the sinks, in order, by one consumer
 * thread, so that formatting and disk I/O overlap the signal processing.
 *
 * Records are copied whole; the strings they point to (measure, channel and
 * unit names) belong to the configuration, which outlives the queue.  The
 * producer blocks when the queue is full (replay has no deadline; a live
 * source's acquisition is decoupled elsewhere), so nothing is dropped.  A sink
 * error stops the consumer; the producer sees it at its next push or at
 * close, with the sink's message.
 */
#ifndef QES_PIPELINE_RECQ_H
#define QES_PIPELINE_RECQ_H

#include "pipeline/record.h"

#include <stddef.h>

struct qes_recq;

/* Start the consumer thread writing to recs[0..n_recs).  cap: records the
 * queue holds (>= 2).  Returns 0, QES_ENOMEM or QES_EIO (no thread). */
int qes_recq_start(struct qes_recorder **recs, size_t n_recs, const struct qes_run_rec *run,
                   size_t cap, struct qes_recq **out);

/* Queue a copy of a record.  Returns 0, or the code of an earlier sink error
 * with its message in err. */
int qes_recq_block(struct qes_recq *q, const struct qes_block_rec *b, char *err, size_t errlen);
int qes_recq_summary(struct qes_recq *q, const struct qes_summary_rec *s, char *err, size_t errlen);

/* Drain, stop and free the queue.  Returns 0 or the first sink error (message
 * in err).  No-op for NULL. */
int qes_recq_finish(struct qes_recq *q, char *err, size_t errlen);

#endif
