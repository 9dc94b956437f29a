/*
 * The live acquisition stage: an acquisition thread that reads a source
 * (libiio, or any other) into a preallocated lock-free single-producer /
 * single-consumer ring of frame slots, and a consumer side that is itself a
 * struct qes_source, so the DSP loop (pipeline/runtime.c) reads live data
 * exactly as it reads a capture.
 *
 *   inner source --(acquisition thread)--> ring --(read(), DSP worker)--> runtime
 *
 * The acquisition thread never blocks on processing or on disk: it only
 * calls the inner source's read, copies the frame into a free slot and
 * publishes it (an atomic store and a sem_post, which never block).  When
 * every slot is full it drops the whole frame it just read and accounts for
 * it: the next published frame carries lost_before += the dropped frames'
 * samples and their own lost_before, and first_sample is the inner source's
 * (which already counts every sample, delivered or not), so the runtime
 * flags exactly the blocks the drop touched.  Frames dropped after the last
 * published frame (just before the end of the stream) have no frame to
 * carry them: they show only in qes_acq_stats.  Slot memory is allocated
 * and touched in create; the thread allocates nothing.
 *
 * The consumer's read() returns the oldest published frame (one slot per
 * call, never merging, so arrival_ns stays the slot's), waiting for one with
 * a timeout so that *stop is honoured within ~50 ms; 0 at the end of the
 * inner stream (after the last slot), or the inner source's negative code
 * and message after the frames read before the error.  Each slot's
 * arrival_ns is CLOCK_MONOTONIC taken right after the inner read returned
 * (when the inner source left it 0).
 *
 * Details of read(): a slot larger than max_n is delivered over several
 * calls (the later parts with first_sample, host_time_ns and device_time_ns
 * advanced, lost_before 0 and the slot's arrival_ns); the samples stay valid
 * until the next read.  With *stop set and no published frame waiting,
 * read() returns 0 (the caller tells a stop from the end of the stream by
 * *stop); frames already published are still delivered first.  After the
 * end or an error, every later call returns the same value.
 *
 * Real-time options, each tried and, when not permitted, reported through
 * `log` with the reason and skipped (never fatal): mlockall(MCL_CURRENT |
 * MCL_FUTURE); SCHED_FIFO at `rt_priority` for the acquisition thread;
 * CPU affinity of the acquisition thread.  They are applied in create, from
 * the calling thread, before the acquisition thread reads its first frame;
 * `log` is only ever called from create.
 *
 * Threads: create, read, stats, inner and destroy are called from one
 * consumer thread; the acquisition thread is internal.
 */
#ifndef QES_PIPELINE_ACQ_H
#define QES_PIPELINE_ACQ_H

#include "hw/source.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct qes_acq_desc {
    struct qes_source *inner;    /* owned by the acq source from create on (destroyed with it,
                                    and by create itself when create fails) */
    size_t frame_samples;        /* max samples per channel per slot (= inner read's max_n), >= 1 */
    size_t n_slots;              /* ring size, >= 2 (the consumer holds one while it uses it) */
    int lock_memory;             /* mlockall */
    int rt_priority;             /* 0 = normal scheduling; 1..99 = SCHED_FIFO */
    int cpu;                     /* -1 = no affinity; else pin the acquisition thread
                                    (0 .. CPU_SETSIZE - 1) */
    volatile sig_atomic_t *stop; /* stops the acquisition thread too; may be NULL */
    void (*log)(void *ctx, const char *line); /* warnings; may be NULL */
    void *log_ctx;
    /* Consumer: spin up to this long for a frame before sleeping on the
     * semaphore (0 = sleep at once).  Spinning costs a core while it lasts
     * and saves the wake-up of a sleeping thread. */
    unsigned busy_poll_us;
};

struct qes_acq_stats {
    uint64_t frames_read;     /* frames the inner source delivered */
    uint64_t frames_dropped;  /* ... dropped because the ring was full */
    uint64_t samples_dropped; /* samples per channel in those frames */
    uint64_t inner_lost;      /* samples per channel the inner source reported lost */
    size_t max_fill;          /* most slots in use at once (counting the one the consumer holds) */
    /* Real-time options in effect (what create managed to apply): */
    int memory_locked; /* 1 when mlockall succeeded */
    int rt_priority;   /* SCHED_FIFO priority of the acquisition thread, 0 = normal */
    int cpu;           /* CPU the acquisition thread is pinned to, -1 = none */
};

/*
 * Start the acquisition thread and return the consumer side as a source
 * (same sample_rate_hz and n_channels as the inner one).  Returns 0,
 * QES_ENOMEM, QES_EINVAL, or QES_EIO (thread not started) with a message.
 * Destroying the returned source (qes_source_destroy) stops and joins the
 * acquisition thread (which may take up to one inner read: the inner source
 * should watch the same stop flag), then destroys the inner source.
 */
int qes_acq_create(const struct qes_acq_desc *desc, struct qes_source **out, char *err,
                   size_t errlen);

/* Counters (consistent snapshot, callable from the consumer thread); all
 * zero (cpu -1) for NULL or a source that is not an acq source. */
void qes_acq_stats(const struct qes_source *s, struct qes_acq_stats *out);

/* The inner source (to read its own counters), borrowed.  The acquisition
 * thread uses it until the stream ends: read its counters after read()
 * returned 0 or an error (not merely after a stop).  NULL for NULL or a
 * source that is not an acq source. */
struct qes_source *qes_acq_inner(struct qes_source *s);

#endif
