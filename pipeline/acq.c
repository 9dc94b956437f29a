/*
 * Live acquisition stage: see acq.h for the contract.
 *
 * Ring.  head counts the frames the acquisition thread (producer) has
 * published, tail the slots the consumer has released; slot k lives at
 * k % n_slots.  The producer owns [head, tail + n_slots), the consumer
 * [tail, head).  The consumer keeps the slot it returned until its next
 * read (the samples must stay valid until then), so it releases slot tail
 * at the start of the following call.  Both counters are 64-bit and never
 * wrap in practice.  Ordering: the producer fills a slot, then stores head
 * with release; the consumer loads head with acquire before touching the
 * slot, and stores tail with release after its last use, which the producer
 * loads with acquire before overwriting.
 *
 * Wake-up.  A counting semaphore gets one post per published frame and one
 * final post when the producer ends (end of stream, error, stop), so the
 * consumer takes exactly one token per frame plus the end token; sem_post
 * never blocks.  The consumer waits in slices of QES__ACQ_WAIT_NS so that a
 * stop flag set by a signal handler is seen quickly.
 *
 * Counters are written by the producer only and read by the consumer
 * through a sequence lock (single writer, readers retry), so a snapshot is
 * consistent without a mutex in the acquisition loop.
 */
#define _GNU_SOURCE /* pthread_setaffinity_np, CPU_SET, sem_clockwait */

#include "pipeline/acq.h"
#include "common/err.h"
#include "common/utctime.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Consumer wait slice: a stop is seen within this plus a wake-up. */
#define QES__ACQ_WAIT_NS 20000000L
/* Keeps producer and consumer counters on separate cache lines. */
#define QES__ACQ_LINE 64

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
#define QES__HAVE_SEM_CLOCKWAIT 1
#else
#define QES__HAVE_SEM_CLOCKWAIT 0
#endif

struct qes__acq_slot {
    struct qes_frame f; /* f.samples points at buf */
    double *buf;        /* frame_samples * n_channels values */
};

struct qes__acq {
    struct qes_source base; /* first: the ops receive &base */
    struct qes_source *inner;
    size_t frame_samples, n_slots;
    unsigned nch;
    struct qes__acq_slot *slots;
    double *mem; /* all slot buffers */
    volatile sig_atomic_t *stop;
    int64_t busy_poll_ns; /* consumer spins this long before sleeping */

    alignas(QES__ACQ_LINE) _Atomic uint64_t head; /* written by the producer */
    alignas(QES__ACQ_LINE) _Atomic uint64_t tail; /* written by the consumer */

    /* Producer -> consumer at the end: end_code and end_msg are written
     * before done is stored with release. */
    alignas(QES__ACQ_LINE) atomic_int done;
    atomic_int quit; /* consumer -> producer: destroy */
    int end_code;
    char end_msg[sizeof((struct qes_source *)0)->errmsg];

    /* Counters (producer writes, sequence lock). */
    atomic_uint seq;
    _Atomic uint64_t n_read, n_dropped, s_dropped, inner_lost, max_fill;

    sem_t ready; /* one token per published frame, one at the end */
    sem_t gate;  /* releases the producer once the real-time options are set */
    int ready_made, gate_made;
    pthread_t thread;
    int thread_started;

    /* Real-time options in effect (written in create, before the thread runs). */
    int memory_locked, rt_priority, cpu;

    /* Consumer-only state. */
    uint64_t c_tail; /* tail as the consumer knows it */
    int holding;     /* slot c_tail is out with the caller */
    size_t off;      /* samples of slot c_tail already returned */
    int ended;       /* end token taken: return end_rc from now on */
    int end_rc;
};

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void
logf_desc(const struct qes_acq_desc *d, const char *fmt, ...)
{
    if (!d->log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    d->log(d->log_ctx, line);
}

static const struct qes_source_ops qes__acq_ops;

/* ---- counters (sequence lock, single writer) ------------------------------------------------ */

struct qes__acq_delta {
    uint64_t read, dropped, s_dropped, lost, fill;
};

static void stats_add(struct qes__acq *a, const struct qes__acq_delta *d)
{
    unsigned s = atomic_load_explicit(&a->seq, memory_order_relaxed);
    atomic_store_explicit(&a->seq, s + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
#define QES__BUMP(field, v)                                                                       \
    atomic_store_explicit(&a->field, atomic_load_explicit(&a->field, memory_order_relaxed) + (v), \
                          memory_order_relaxed)
    QES__BUMP(n_read, d->read);
    QES__BUMP(n_dropped, d->dropped);
    QES__BUMP(s_dropped, d->s_dropped);
    QES__BUMP(inner_lost, d->lost);
#undef QES__BUMP
    if (d->fill > atomic_load_explicit(&a->max_fill, memory_order_relaxed))
        atomic_store_explicit(&a->max_fill, d->fill, memory_order_relaxed);
    atomic_store_explicit(&a->seq, s + 2, memory_order_release);
}

void qes_acq_stats(const struct qes_source *s, struct qes_acq_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    out->cpu = -1;
    if (!s || s->ops != &qes__acq_ops)
        return;
    /* The const is cast away only for atomic loads, which do not modify. */
    struct qes__acq *a = (struct qes__acq *)(uintptr_t)s;
    for (;;) {
        unsigned s1 = atomic_load_explicit(&a->seq, memory_order_acquire);
        if (s1 & 1u) {
            sched_yield(); /* the producer is between its two stores */
            continue;
        }
        out->frames_read = atomic_load_explicit(&a->n_read, memory_order_relaxed);
        out->frames_dropped = atomic_load_explicit(&a->n_dropped, memory_order_relaxed);
        out->samples_dropped = atomic_load_explicit(&a->s_dropped, memory_order_relaxed);
        out->inner_lost = atomic_load_explicit(&a->inner_lost, memory_order_relaxed);
        out->max_fill = (size_t)atomic_load_explicit(&a->max_fill, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&a->seq, memory_order_relaxed) == s1)
            break;
    }
    out->memory_locked = a->memory_locked;
    out->rt_priority = a->rt_priority;
    out->cpu = a->cpu;
}

struct qes_source *qes_acq_inner(struct qes_source *s)
{
    return s && s->ops == &qes__acq_ops ? ((struct qes__acq *)s)->inner : NULL;
}

/* ---- acquisition thread (producer) ---------------------------------------------------------- */

static int producer_stopped(struct qes__acq *a)
{
    return atomic_load_explicit(&a->quit, memory_order_relaxed) || (a->stop && *a->stop);
}

static void *acq_thread(void *arg)
{
    struct qes__acq *a = arg;
    while (sem_wait(&a->gate) != 0 && errno == EINTR)
        ;
    const size_t nch = a->nch;
    uint64_t head = 0;
    uint64_t pending = 0; /* lost samples not yet carried by a published frame */
    int code = 0;
    while (!producer_stopped(a)) {
        struct qes_frame f;
        memset(&f, 0, sizeof f);
        int r = qes_source_read(a->inner, &f, a->frame_samples);
        const int64_t now = qes_mono_ns();
        if (r <= 0) {
            code = r;
            if (r < 0)
                qes_errf(a->end_msg, sizeof a->end_msg, "%s",
                         a->inner->errmsg[0] ? a->inner->errmsg : qes_strerror(r));
            break;
        }
        if (f.n > a->frame_samples || f.n_channels != nch || (f.n && !f.samples)) {
            code = QES_EIO;
            qes_errf(
                    a->end_msg, sizeof a->end_msg,
                    "acq: source %s returned a bad frame (%zu samples of %u channels, at most %zu of %u expected)",
                    a->inner->ops->name ? a->inner->ops->name : "?", f.n, f.n_channels,
                    a->frame_samples, a->nch);
            break;
        }
        pending += f.lost_before;
        struct qes__acq_delta d = {.read = 1, .lost = f.lost_before};
        const uint64_t tail = atomic_load_explicit(&a->tail, memory_order_acquire);
        if (head - tail >= a->n_slots) {
            /* Full: drop the whole frame; the next published one carries it. */
            pending += f.n;
            d.dropped = 1;
            d.s_dropped = f.n;
            stats_add(a, &d);
            continue;
        }
        struct qes__acq_slot *sl = &a->slots[head % a->n_slots];
        if (f.n)
            memcpy(sl->buf, f.samples, f.n * nch * sizeof *sl->buf);
        sl->f = f;
        sl->f.samples = sl->buf;
        sl->f.lost_before = pending;
        pending = 0;
        if (sl->f.arrival_ns == 0)
            sl->f.arrival_ns = now;
        d.fill = head + 1 - tail;
        stats_add(a, &d);
        atomic_store_explicit(&a->head, ++head, memory_order_release);
        sem_post(&a->ready);
    }
    a->end_code = code;
    atomic_store_explicit(&a->done, 1, memory_order_release);
    sem_post(&a->ready);
    return NULL;
}

/* ---- consumer side (the source ops) -------------------------------------------------------- */

/* Hand out up to max_n samples of slot c_tail from a->off on. */
static int deliver(struct qes__acq *a, struct qes_frame *f, size_t max_n)
{
    const struct qes__acq_slot *sl = &a->slots[a->c_tail % a->n_slots];
    size_t off = a->off, n = sl->f.n - off;
    if (n > max_n)
        n = max_n;
    *f = sl->f;
    f->n = n;
    if (off) {
        const double dt = (double)off * 1e9 / a->base.sample_rate_hz;
        const int64_t dt_ns = isfinite(dt) && fabs(dt) < 9e18 ? (int64_t)llround(dt) : 0;
        f->first_sample += off;
        f->samples = sl->buf + off * a->nch;
        f->lost_before = 0;
        if (f->host_time_ns)
            f->host_time_ns += dt_ns;
        if (f->has_device_time)
            f->device_time_ns += dt_ns;
    }
    a->off = off + n;
    return 1;
}

/* Wait for one token; 1 when taken, 0 when *stop was seen first.  With
 * busy polling, spin on the semaphore first: a consumer asleep in the kernel
 * takes a wake-up (on a virtual machine, an interrupt to an idle virtual CPU:
 * ~100 us here) that a spinning one does not. */
static int wait_token(struct qes__acq *a)
{
    if (a->busy_poll_ns > 0) {
        const int64_t until = qes_mono_ns() + a->busy_poll_ns;
        unsigned k = 0;
        do {
            if (sem_trywait(&a->ready) == 0)
                return 1;
            if ((++k & 1023u) == 0 && a->stop && *a->stop)
                return 0;
        } while ((k & 63u) != 0 || qes_mono_ns() < until);
    }
    for (;;) {
        if (sem_trywait(&a->ready) == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (a->stop && *a->stop)
            return 0;
        struct timespec ts;
#if QES__HAVE_SEM_CLOCKWAIT
        const clockid_t clk = CLOCK_MONOTONIC;
#else
        const clockid_t clk = CLOCK_REALTIME;
#endif
        clock_gettime(clk, &ts);
        ts.tv_nsec += QES__ACQ_WAIT_NS;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
#if QES__HAVE_SEM_CLOCKWAIT
        if (sem_clockwait(&a->ready, clk, &ts) == 0)
#else
        if (sem_timedwait(&a->ready, &ts) == 0)
#endif
            return 1;
        /* ETIMEDOUT or EINTR: check the stop flag and wait again. */
    }
}

static int acq_read(struct qes_source *s, struct qes_frame *f, size_t max_n)
{
    struct qes__acq *a = (struct qes__acq *)s;
    if (!f || max_n == 0) {
        qes_errf(s->errmsg, sizeof s->errmsg, "acq: read with %s", f ? "max_n == 0" : "NULL frame");
        return QES_EINVAL;
    }
    if (a->ended)
        return a->end_rc;
    if (a->holding) {
        if (a->off < a->slots[a->c_tail % a->n_slots].f.n)
            return deliver(a, f, max_n);
        /* The caller is done with the slot it held. */
        a->holding = 0;
        atomic_store_explicit(&a->tail, ++a->c_tail, memory_order_release);
    }
    if (!wait_token(a))
        return 0; /* stopped, nothing published */
    if (a->c_tail < atomic_load_explicit(&a->head, memory_order_acquire)) {
        a->holding = 1;
        a->off = 0;
        return deliver(a, f, max_n);
    }
    /* No frame behind this token: it is the end token. */
    if (!atomic_load_explicit(&a->done, memory_order_acquire)) {
        qes_errf(s->errmsg, sizeof s->errmsg, "acq: internal error: token without a frame");
        a->end_rc = QES_EIO;
    } else {
        a->end_rc = a->end_code;
        if (a->end_rc < 0)
            qes_errf(s->errmsg, sizeof s->errmsg, "%s", a->end_msg);
    }
    a->ended = 1;
    return a->end_rc;
}

static void acq_free(struct qes__acq *a)
{
    if (a->ready_made)
        sem_destroy(&a->ready);
    if (a->gate_made)
        sem_destroy(&a->gate);
    free(a->slots);
    free(a->mem);
    free(a);
}

static void acq_destroy(struct qes_source *s)
{
    struct qes__acq *a = (struct qes__acq *)s;
    if (a->thread_started) {
        atomic_store_explicit(&a->quit, 1, memory_order_relaxed);
        pthread_join(a->thread, NULL);
    }
    qes_source_destroy(a->inner);
    acq_free(a);
}

static const struct qes_source_ops qes__acq_ops = {
        .name = "acq",
        .read = acq_read,
        .destroy = acq_destroy,
};

/* ---- create -------------------------------------------------------------------------------- */

/* Real-time options of the (gated, not yet running) thread; failures are logged. */
static void apply_thread_options(struct qes__acq *a, const struct qes_acq_desc *d)
{
    if (d->rt_priority > 0) {
        struct sched_param sp;
        memset(&sp, 0, sizeof sp);
        sp.sched_priority = d->rt_priority;
        int rc = pthread_setschedparam(a->thread, SCHED_FIFO, &sp);
        if (rc == 0)
            a->rt_priority = d->rt_priority;
        else
            logf_desc(
                    d,
                    "acq: SCHED_FIFO priority %d for the acquisition thread: %s (skipped; needs CAP_SYS_NICE or RLIMIT_RTPRIO >= %d, and real-time CPU time for the cgroup)",
                    d->rt_priority, strerror(rc), d->rt_priority);
    }
    if (d->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((size_t)d->cpu, &set);
        int rc = pthread_setaffinity_np(a->thread, sizeof set, &set);
        if (rc == 0)
            a->cpu = d->cpu;
        else
            logf_desc(
                    d,
                    "acq: pinning the acquisition thread to CPU %d: %s (skipped; is CPU %d online and allowed for this process?)",
                    d->cpu, strerror(rc), d->cpu);
    }
}

int qes_acq_create(const struct qes_acq_desc *d, struct qes_source **out, char *err, size_t errlen)
{
    int rc;
    struct qes__acq *a = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!d || !out || !d->inner) {
        qes_errf(err, errlen, "acq: NULL %s", !d ? "desc" : !out ? "out" : "inner source");
        rc = QES_EINVAL;
        goto err_inner;
    }
    const unsigned nch = d->inner->n_channels;
    const char *iname = d->inner->ops && d->inner->ops->name ? d->inner->ops->name : "?";
    if (nch == 0 || !(d->inner->sample_rate_hz > 0)) {
        qes_errf(err, errlen, "acq: source %s has %u channels at %g Hz", iname, nch,
                 d->inner->sample_rate_hz);
        rc = QES_EINVAL;
        goto err_inner;
    }
    if (d->frame_samples == 0 || d->n_slots < 2) {
        qes_errf(err, errlen,
                 "acq: frame_samples = %zu (>= 1) and n_slots = %zu (>= 2) are required",
                 d->frame_samples, d->n_slots);
        rc = QES_EINVAL;
        goto err_inner;
    }
    if (d->rt_priority < 0 || d->rt_priority > 99) {
        qes_errf(err, errlen, "acq: rt_priority %d is outside 0..99", d->rt_priority);
        rc = QES_EINVAL;
        goto err_inner;
    }
    if (d->cpu < -1 || d->cpu >= CPU_SETSIZE) {
        qes_errf(err, errlen, "acq: cpu %d is outside -1..%d", d->cpu, CPU_SETSIZE - 1);
        rc = QES_EINVAL;
        goto err_inner;
    }
    const size_t per_slot = d->frame_samples * nch;
    if (d->frame_samples > SIZE_MAX / nch || per_slot > SIZE_MAX / sizeof(double) / d->n_slots) {
        qes_errf(err, errlen, "acq: %zu slots of %zu samples x %u channels overflow", d->n_slots,
                 d->frame_samples, nch);
        rc = QES_EINVAL;
        goto err_inner;
    }

    size_t size = sizeof *a;
    size = (size + QES__ACQ_LINE - 1) / QES__ACQ_LINE * QES__ACQ_LINE;
    a = aligned_alloc(QES__ACQ_LINE, size);
    if (!a)
        goto err_nomem;
    memset(a, 0, sizeof *a);
    atomic_init(&a->head, 0);
    atomic_init(&a->tail, 0);
    atomic_init(&a->done, 0);
    atomic_init(&a->quit, 0);
    atomic_init(&a->seq, 0);
    atomic_init(&a->n_read, 0);
    atomic_init(&a->n_dropped, 0);
    atomic_init(&a->s_dropped, 0);
    atomic_init(&a->inner_lost, 0);
    atomic_init(&a->max_fill, 0);
    a->base.ops = &qes__acq_ops;
    a->base.sample_rate_hz = d->inner->sample_rate_hz;
    a->base.n_channels = nch;
    a->inner = d->inner;
    a->frame_samples = d->frame_samples;
    a->n_slots = d->n_slots;
    a->nch = nch;
    a->stop = d->stop;
    a->busy_poll_ns = d->busy_poll_us > 0 ? (int64_t)d->busy_poll_us * 1000 : 0;
    a->cpu = -1;

    a->slots = calloc(d->n_slots, sizeof *a->slots);
    a->mem = malloc(per_slot * d->n_slots * sizeof *a->mem);
    if (!a->slots || !a->mem)
        goto err_nomem;
    /* Touch every page now, so the acquisition loop takes no page faults. */
    memset(a->mem, 0, per_slot * d->n_slots * sizeof *a->mem);
    for (size_t i = 0; i < d->n_slots; i++)
        a->slots[i].buf = a->mem + i * per_slot;

    if (sem_init(&a->ready, 0, 0) != 0) {
        qes_errf(err, errlen, "acq: sem_init: %s", strerror(errno));
        rc = QES_EIO;
        goto err_free;
    }
    a->ready_made = 1;
    if (sem_init(&a->gate, 0, 0) != 0) {
        qes_errf(err, errlen, "acq: sem_init: %s", strerror(errno));
        rc = QES_EIO;
        goto err_free;
    }
    a->gate_made = 1;

    if (d->lock_memory) {
        if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0)
            a->memory_locked = 1;
        else
            logf_desc(
                    d,
                    "acq: mlockall(MCL_CURRENT | MCL_FUTURE): %s (skipped; needs CAP_IPC_LOCK or RLIMIT_MEMLOCK above the process size)",
                    strerror(errno));
    }

    rc = pthread_create(&a->thread, NULL, acq_thread, a);
    if (rc != 0) {
        qes_errf(err, errlen, "acq: cannot start the acquisition thread: %s", strerror(rc));
        rc = QES_EIO;
        goto err_free;
    }
    a->thread_started = 1;
    apply_thread_options(a, d);
    sem_post(&a->gate);
    *out = &a->base;
    return 0;

err_nomem:
    qes_errf(err, errlen, "acq: out of memory for %zu slots of %zu samples x %u channels",
             d->n_slots, d->frame_samples, d->inner->n_channels);
    rc = QES_ENOMEM;
err_free:
    if (a)
        acq_free(a);
err_inner:
    if (d)
        qes_source_destroy(d->inner);
    return rc;
}
