/*
 * Tests of the live acquisition stage (pipeline/acq.h): the ring delivers
 * exactly what the inner source read, in order; drops are whole frames and
 * are accounted for in lost_before; an inner error arrives after the frames
 * before it; the stop flag ends a blocked read; real-time options degrade
 * to a logged warning when not permitted.
 *
 * Most tests use a "counter" source defined here, whose every sample is a
 * function of its run index and channel, so a torn or misplaced slot shows
 * as a wrong value wherever it is read.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_ISSET, CPU_COUNT */

#include "pipeline/acq.h"

#include "common/err.h"
#include "hw/source_sim.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define QES_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QES_TEST_ASAN 1
#endif
#endif
#ifndef QES_TEST_ASAN
#define QES_TEST_ASAN 0
#endif

/* One suite-wide timeout only (a per-test .timeout leaks under ASan with
 * Criterion 2.4.1).  It is only a backstop: no test waits on time to pass. */
TestSuite(acq, .timeout = 120);

/* ---- a counter source ---------------------------------------------------------------------- */

/* Sample of run index m on channel c: exact in a double for m < 2^48. */
static double ctr_value(uint64_t m, unsigned c, unsigned nch)
{
    return (double)(m * nch + c);
}

struct ctr {
    struct qes_source base;
    size_t chunk;       /* samples per channel per frame (at most max_n) */
    uint64_t n_frames;  /* frames before the end of the stream */
    long fail_at;       /* frame index that fails with QES_EIO, -1 = never */
    unsigned gap_every; /* every gap_every-th frame (> 0) reports gap_len samples lost */
    uint64_t gap_len;
    int block;                   /* read waits for *stop, then ends the stream */
    volatile sig_atomic_t *stop; /* for block */
    size_t bad_n;                /* > 0: first frame has this many samples (a bad frame) */
    double *buf;
    uint64_t m;      /* next run index */
    uint64_t frames; /* frames delivered */
    /* Seen by the first read, i.e. on the acquisition thread: */
    int observed, policy, prio, n_cpus, cpu0;
};

static int ctr_destroyed; /* destroy calls, to check ownership */

static int ctr_read(struct qes_source *s, struct qes_frame *f, size_t max_n)
{
    struct ctr *c = (struct ctr *)s;
    if (!c->observed) {
        struct sched_param sp;
        pthread_getschedparam(pthread_self(), &c->policy, &sp);
        c->prio = sp.sched_priority;
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof set, &set) == 0) {
            c->n_cpus = CPU_COUNT(&set);
            c->cpu0 = CPU_ISSET(0, &set);
        }
        c->observed = 1;
    }
    if (c->block) {
        struct timespec ms = {0, 1000000};
        while (!*c->stop)
            nanosleep(&ms, NULL);
        return 0;
    }
    if (c->fail_at >= 0 && c->frames == (uint64_t)c->fail_at) {
        snprintf(s->errmsg, sizeof s->errmsg, "counter: simulated device failure at frame %ld",
                 c->fail_at);
        return QES_EIO;
    }
    if (c->frames == c->n_frames)
        return 0;
    const unsigned nch = s->n_channels;
    size_t n = c->bad_n ? c->bad_n : c->chunk < max_n ? c->chunk : max_n;
    uint64_t lost = c->gap_every && c->frames > 0 && c->frames % c->gap_every == 0 ? c->gap_len : 0;
    c->m += lost;
    for (size_t i = 0; i < n; i++)
        for (unsigned ch = 0; ch < nch; ch++)
            c->buf[i * nch + ch] = ctr_value(c->m + i, ch, nch);
    *f = (struct qes_frame){
            .first_sample = c->m,
            .n = n,
            .n_channels = nch,
            .samples = c->buf,
            .host_time_ns = 1000 + (int64_t)c->m * 1000, /* 1 MS/s */
            .lost_before = lost,
    };
    c->m += n;
    c->frames++;
    return 1;
}

static void ctr_destroy(struct qes_source *s)
{
    struct ctr *c = (struct ctr *)s;
    ctr_destroyed++;
    free(c->buf);
    free(c);
}

static const struct qes_source_ops ctr_ops = {
        .name = "counter", .read = ctr_read, .destroy = ctr_destroy};

static struct ctr *ctr_new(unsigned nch, size_t chunk, uint64_t n_frames)
{
    struct ctr *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    c->base.ops = &ctr_ops;
    c->base.sample_rate_hz = 1e6;
    c->base.n_channels = nch;
    c->chunk = chunk;
    c->n_frames = n_frames;
    c->fail_at = -1;
    c->buf = malloc((chunk + 16) * nch * sizeof *c->buf);
    cr_assert_not_null(c->buf);
    return c;
}

/* Every sample of f is the counter's value at its run index: no torn slot. */
static void check_ctr_frame(const struct qes_frame *f, unsigned nch)
{
    for (size_t i = 0; i < f->n; i++)
        for (unsigned ch = 0; ch < nch; ch++)
            cr_assert_eq(f->samples[i * nch + ch], ctr_value(f->first_sample + i, ch, nch),
                         "frame at %llu, sample %zu channel %u: %.17g (torn or misplaced slot)",
                         (unsigned long long)f->first_sample, i, ch, f->samples[i * nch + ch]);
}

/* ---- helpers ------------------------------------------------------------------------------- */

struct logbuf {
    char text[8192];
    int lines;
};

static void log_line(void *ctx, const char *line)
{
    struct logbuf *b = ctx;
    size_t len = strlen(b->text);
    snprintf(b->text + len, sizeof b->text - len, "%s\n", line);
    b->lines++;
}

static struct qes_acq_desc acq_desc(struct qes_source *inner, size_t frame_samples, size_t n_slots)
{
    struct qes_acq_desc d;
    memset(&d, 0, sizeof d);
    d.inner = inner;
    d.frame_samples = frame_samples;
    d.n_slots = n_slots;
    d.cpu = -1;
    return d;
}

static struct qes_source *acq_make(const struct qes_acq_desc *d)
{
    char err[512] = "";
    struct qes_source *s = NULL;
    int rc = qes_acq_create(d, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "qes_acq_create: %s (%s)", qes_err_name(rc), err);
    cr_assert_not_null(s);
    return s;
}

static struct qes_sim_desc sim_desc(uint64_t n_frames)
{
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = 1e6;
    d.n_channels = 2;
    d.adc_bits = 16;
    d.seed = 7;
    d.n_frames = n_frames;
    d.start_ns = INT64_C(1700000000000000000);
    for (unsigned c = 0; c < 2; c++) {
        struct qes_sim_channel *ch = &d.ch[c];
        ch->freq_hz = 1000.0 + 250.0 * c;
        ch->n_harmonics = 1;
        ch->harmonic[0] = 1;
        ch->rms[0] = 0.5;
        ch->noise_rms = 1e-3;
        ch->gain = 1.0 / 32768.0;
    }
    return d;
}

static struct qes_source *sim_make(const struct qes_sim_desc *d)
{
    char err[512] = "";
    struct qes_source *s = NULL;
    int rc = qes_source_sim_create(d, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "sim: %s", err);
    return s;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- (a) the sim through the ring is the sim --------------------------------------------- */

/*
 * 60 frames of 4096 plus a short last one, into a ring of 80 slots: the ring
 * can hold the whole stream, so no drop is possible whatever the scheduling,
 * and every frame must be bit-identical to the sim read directly.
 */
Test(acq, sim_bit_identical)
{
    const size_t fr = 4096;
    const uint64_t total = 60 * fr + 123;
    const struct qes_sim_desc sd = sim_desc(total);
    struct qes_source *ref = sim_make(&sd);
    struct qes_acq_desc ad = acq_desc(sim_make(&sd), fr, 80);
    struct qes_source *s = acq_make(&ad);
    cr_assert_eq(s->n_channels, 2);
    cr_assert_eq(s->sample_rate_hz, 1e6);

    uint64_t frames = 0, samples = 0;
    for (;;) {
        struct qes_frame g, f;
        int rr = qes_source_read(ref, &g, fr);
        int rc = qes_source_read(s, &f, 65536);
        cr_assert_eq(rc, rr, "frame %llu: acq returned %d, the sim %d (%s)",
                     (unsigned long long)frames, rc, rr, s->errmsg);
        if (rr == 0)
            break;
        cr_assert_eq(f.first_sample, g.first_sample, "frame %llu", (unsigned long long)frames);
        cr_assert_eq(f.n, g.n);
        cr_assert_eq(f.n_channels, g.n_channels);
        cr_assert_eq(f.host_time_ns, g.host_time_ns);
        cr_assert_eq(f.lost_before, 0);
        cr_assert_eq(f.has_device_time, g.has_device_time);
        cr_assert(f.arrival_ns > 0, "arrival_ns set by acq when the sim leaves it 0");
        cr_assert(memcmp(f.samples, g.samples, g.n * g.n_channels * sizeof(double)) == 0,
                  "frame %llu: samples differ", (unsigned long long)frames);
        frames++;
        samples += f.n;
    }
    cr_assert_eq(samples, total);
    /* The end of the stream stays the end. */
    struct qes_frame f;
    cr_assert_eq(qes_source_read(s, &f, 4096), 0);
    cr_assert_eq(qes_source_read(s, &f, 4096), 0);

    struct qes_acq_stats st;
    qes_acq_stats(s, &st);
    cr_assert_eq(st.frames_read, frames);
    cr_assert_eq(st.frames_dropped, 0);
    cr_assert_eq(st.samples_dropped, 0);
    cr_assert_eq(st.inner_lost, 0);
    cr_assert(st.max_fill >= 1 && st.max_fill <= 80, "max_fill %zu", st.max_fill);
    cr_assert_eq(st.memory_locked, 0);
    cr_assert_eq(st.rt_priority, 0);
    cr_assert_eq(st.cpu, -1);
    cr_assert_not_null(qes_acq_inner(s));
    cr_assert_null(qes_acq_inner(ref), "the sim is not an acq source");
    qes_source_destroy(s);
    qes_source_destroy(ref);
}

/* Slots larger than the consumer's max_n are handed out in parts that
 * together are the sim's stream, with consistent run indices and times. */
Test(acq, sim_partial_reads)
{
    const size_t fr = 4096, max_n = 1000;
    const uint64_t total = 20 * fr + 7;
    const struct qes_sim_desc sd = sim_desc(total);
    struct qes_source *ref = sim_make(&sd);
    struct qes_acq_desc ad = acq_desc(sim_make(&sd), fr, 32);
    struct qes_source *s = acq_make(&ad);
    double *want = malloc(total * 2 * sizeof *want), *got = malloc(total * 2 * sizeof *got);
    cr_assert(want && got);
    uint64_t nw = 0, ng = 0;
    struct qes_frame f;
    while (qes_source_read(ref, &f, total) == 1) {
        memcpy(want + nw * 2, f.samples, f.n * 2 * sizeof *want);
        nw += f.n;
    }
    int64_t arrival = 0;
    int rc;
    while ((rc = qes_source_read(s, &f, max_n)) == 1) {
        cr_assert(f.n >= 1 && f.n <= max_n, "n = %zu", f.n);
        cr_assert_eq(f.first_sample, ng);
        cr_assert_eq(f.lost_before, 0);
        /* The sim's host time is start + round(m * 1e9 / fs): exact at 1 MS/s. */
        cr_assert_eq(f.host_time_ns, sd.start_ns + (int64_t)f.first_sample * 1000);
        if (f.first_sample % fr != 0)
            cr_assert_eq(f.arrival_ns, arrival, "a part keeps its slot's arrival_ns");
        arrival = f.arrival_ns;
        cr_assert(ng + f.n <= total);
        memcpy(got + ng * 2, f.samples, f.n * 2 * sizeof *got);
        ng += f.n;
    }
    cr_assert_eq(rc, 0, "%s", s->errmsg);
    cr_assert_eq(nw, total);
    cr_assert_eq(ng, total);
    cr_assert(memcmp(want, got, total * 2 * sizeof *got) == 0);
    free(want);
    free(got);
    qes_source_destroy(s);
    qes_source_destroy(ref);
}

/* ---- (b) a slow consumer: whole frames dropped and accounted for ------------------------- */

/*
 * A fast counter into 4 slots; the consumer first waits until the producer
 * has read more frames than the ring holds (so drops are certain, not a
 * matter of timing), then reads slowly, checking every sample after a pause
 * so that a producer writing into the held slot would be caught.
 */
static void slow_consumer(unsigned gap_every, uint64_t gap_len)
{
    const unsigned nch = 3;
    const size_t chunk = 64, n_slots = 4;
    const uint64_t n_frames = 200000; /* ~0.1 s of producing: the two sides overlap */
    struct ctr *c = ctr_new(nch, chunk, n_frames);
    c->gap_every = gap_every;
    c->gap_len = gap_len;
    struct qes_acq_desc ad = acq_desc(&c->base, chunk, n_slots);
    struct qes_source *s = acq_make(&ad);

    struct qes_acq_stats st;
    struct timespec ms = {0, 1000000};
    do {
        nanosleep(&ms, NULL);
        qes_acq_stats(s, &st);
    } while (st.frames_read < n_slots + 20);

    struct timespec pause = {0, 50000}; /* 50 us per frame: the producer laps the consumer */
    uint64_t prev_end = 0, sum_lost = 0, sum_n = 0, delivered = 0;
    struct qes_frame f;
    int rc;
    while ((rc = qes_source_read(s, &f, chunk)) == 1) {
        cr_assert_eq(f.n, chunk, "whole frames only");
        cr_assert_eq(f.first_sample, prev_end + f.lost_before,
                     "frame %llu: first_sample %llu, previous end %llu, lost_before %llu",
                     (unsigned long long)delivered, (unsigned long long)f.first_sample,
                     (unsigned long long)prev_end, (unsigned long long)f.lost_before);
        nanosleep(&pause, NULL);
        check_ctr_frame(&f, nch);
        prev_end = f.first_sample + f.n;
        sum_lost += f.lost_before;
        sum_n += f.n;
        delivered++;
    }
    cr_assert_eq(rc, 0, "%s", s->errmsg);
    qes_acq_stats(s, &st);
    cr_log_info("%llu frames delivered, %llu dropped", (unsigned long long)delivered,
                (unsigned long long)st.frames_dropped);
    /* The counter's run index after its last frame (the end was read, so the
     * acquisition thread is done with it). */
    const uint64_t end = c->m;
    const uint64_t inner_lost = gap_every ? (n_frames - 1) / gap_every * gap_len : 0;
    cr_assert_eq(st.frames_read, n_frames);
    cr_assert_eq(st.frames_read, delivered + st.frames_dropped);
    cr_assert(st.frames_dropped > 0, "the ring of %zu slots cannot hold %llu frames", n_slots,
              (unsigned long long)st.frames_read);
    cr_assert_eq(st.samples_dropped, st.frames_dropped * chunk);
    cr_assert_eq(st.inner_lost, inner_lost);
    cr_assert_eq(st.max_fill, n_slots);
    cr_assert_eq(sum_n + st.samples_dropped, n_frames * chunk);
    /* Every loss reaches the consumer, except losses after the last delivered
     * frame (no frame left to carry them): end - prev_end. */
    cr_assert_eq(sum_lost + (end - prev_end), st.samples_dropped + st.inner_lost,
                 "sum lost_before %llu + trailing %llu vs dropped %llu + inner %llu",
                 (unsigned long long)sum_lost, (unsigned long long)(end - prev_end),
                 (unsigned long long)st.samples_dropped, (unsigned long long)st.inner_lost);
    qes_source_destroy(s);
}

Test(acq, slow_consumer_drops_whole_frames)
{
    slow_consumer(0, 0);
}

/* The inner source's own gaps add to the drops in lost_before. */
Test(acq, slow_consumer_with_inner_gaps)
{
    slow_consumer(7, 5);
}

/* ---- (c) an inner error after the frames before it ---------------------------------------- */

Test(acq, inner_error_after_frames)
{
    const unsigned nch = 2;
    struct ctr *c = ctr_new(nch, 100, 1000);
    c->fail_at = 10;
    struct qes_acq_desc ad = acq_desc(&c->base, 100, 16); /* room for all 10: no drop */
    struct qes_source *s = acq_make(&ad);
    struct qes_frame f;
    for (uint64_t k = 0; k < 10; k++) {
        int rc = qes_source_read(s, &f, 100);
        cr_assert_eq(rc, 1, "frame %llu: %d (%s)", (unsigned long long)k, rc, s->errmsg);
        cr_assert_eq(f.first_sample, k * 100);
        check_ctr_frame(&f, nch);
    }
    int rc = qes_source_read(s, &f, 100);
    cr_assert_eq(rc, QES_EIO, "%s", qes_err_name(rc));
    cr_assert_str_eq(s->errmsg, "counter: simulated device failure at frame 10");
    cr_assert_eq(qes_source_read(s, &f, 100), QES_EIO, "the error stays");
    qes_source_destroy(s);
}

/* A frame larger than the slot is an error of the inner source, not a crash. */
Test(acq, inner_bad_frame)
{
    struct ctr *c = ctr_new(1, 100, 10);
    c->bad_n = 101;
    struct qes_acq_desc ad = acq_desc(&c->base, 100, 4);
    struct qes_source *s = acq_make(&ad);
    struct qes_frame f;
    cr_assert_eq(qes_source_read(s, &f, 100), QES_EIO);
    cr_assert(strstr(s->errmsg, "counter") && strstr(s->errmsg, "bad frame"), "%s", s->errmsg);
    qes_source_destroy(s);
}

/* ---- (d) the stop flag ends a blocked read ------------------------------------------------ */

static volatile sig_atomic_t stop_flag;

static void *set_stop_later(void *arg)
{
    (void)arg;
    struct timespec t = {0, 100000000};
    nanosleep(&t, NULL);
    stop_flag = 1;
    return NULL;
}

/*
 * The inner source never delivers (it waits for the stop flag), so only the
 * stop can end the consumer's read.  The bound asserted is 5 s, two orders
 * above the ~20 ms design (wait slices) plus the 100 ms before the stop is
 * set: on a shared 2-core machine a descheduled process can stall for
 * hundreds of ms, and the point is that the read returns at all, not how
 * fast.
 */
Test(acq, stop_ends_blocked_read)
{
    stop_flag = 0;
    struct ctr *c = ctr_new(1, 100, 10);
    c->block = 1;
    c->stop = &stop_flag;
    struct qes_acq_desc ad = acq_desc(&c->base, 100, 4);
    ad.stop = &stop_flag;
    struct qes_source *s = acq_make(&ad);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, set_stop_later, NULL), 0);
    double t0 = mono_s();
    struct qes_frame f;
    int rc = qes_source_read(s, &f, 100);
    double dt = mono_s() - t0;
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "a stop ends the stream: %d (%s)", rc, s->errmsg);
    cr_assert(stop_flag, "read returned before the stop was set");
    cr_assert(dt < 5.0, "read took %.3f s after a stop", dt);
    qes_source_destroy(s); /* joins the thread: the counter honours the flag too */
}

/* Frames published before a stop are still delivered, then 0. */
Test(acq, stop_drains_published_frames)
{
    stop_flag = 0;
    struct ctr *c = ctr_new(1, 10, 5);
    struct qes_acq_desc ad = acq_desc(&c->base, 10, 8);
    ad.stop = &stop_flag;
    struct qes_source *s = acq_make(&ad);
    struct qes_acq_stats st;
    struct timespec ms = {0, 1000000};
    do { /* all 5 frames are in the ring (8 slots) */
        nanosleep(&ms, NULL);
        qes_acq_stats(s, &st);
    } while (st.frames_read < 5);
    stop_flag = 1;
    struct qes_frame f;
    for (int k = 0; k < 5; k++)
        cr_assert_eq(qes_source_read(s, &f, 10), 1, "frame %d", k);
    cr_assert_eq(qes_source_read(s, &f, 10), 0);
    qes_source_destroy(s);
}

/* ---- (e) real-time options ---------------------------------------------------------------- */

/* Read a counter stream to its end through the ring; checks the values. */
static void drain_counter(struct qes_source *s, unsigned nch, uint64_t n_samples)
{
    struct qes_frame f;
    uint64_t got = 0;
    int rc;
    while ((rc = qes_source_read(s, &f, 1000)) == 1) {
        check_ctr_frame(&f, nch);
        got += f.n;
    }
    cr_assert_eq(rc, 0, "%s", s->errmsg);
    cr_assert_eq(got, n_samples);
}

/*
 * Without privileges (root drops to nobody with RLIMIT_MEMLOCK and
 * RLIMIT_RTPRIO at 0; a normal user lowers the limits) mlockall and
 * SCHED_FIFO are refused, and a CPU that does not exist cannot be pinned:
 * each is logged with its reason and skipped, and the stream still flows.
 */
Test(acq, rt_options_unprivileged)
{
    struct rlimit zero = {0, 0};
    cr_assert_eq(setrlimit(RLIMIT_MEMLOCK, &zero), 0, "%s", strerror(errno));
    cr_assert_eq(setrlimit(RLIMIT_RTPRIO, &zero), 0, "%s", strerror(errno));
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        cr_skip_test("cannot drop root privileges here (%s)", strerror(errno));
    /* setuid makes the process non-dumpable, which stops LeakSanitizer from
     * tracing its own threads at exit. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    struct sched_param sp = {.sched_priority = 1};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) == 0)
        cr_skip_test("this process can still use SCHED_FIFO: no unprivileged condition");

    struct ctr *c = ctr_new(2, 500, 40);
    struct logbuf lb = {"", 0};
    struct qes_acq_desc ad = acq_desc(&c->base, 500, 64);
    ad.lock_memory = 1;
    ad.rt_priority = 10;
    ad.cpu = CPU_SETSIZE - 1; /* no machine here has 1024 CPUs */
    ad.log = log_line;
    ad.log_ctx = &lb;
    struct qes_source *s = acq_make(&ad);
    drain_counter(s, 2, 40 * 500);
    struct qes_acq_stats st;
    qes_acq_stats(s, &st);
    cr_log_info("log:\n%s", lb.text);
    if (QES_TEST_ASAN) {
        /* ASan intercepts mlockall and makes it a successful no-op. */
        cr_log_info("ASan build: mlockall is a no-op returning 0, not checked");
    } else {
        cr_assert_eq(st.memory_locked, 0);
        cr_assert(strstr(lb.text, "mlockall") && strstr(lb.text, "Operation not permitted"), "%s",
                  lb.text);
    }
    cr_assert_eq(st.rt_priority, 0);
    cr_assert(strstr(lb.text, "SCHED_FIFO priority 10") &&
                      strstr(lb.text, "Operation not permitted (skipped"),
              "%s", lb.text);
    cr_assert_eq(st.cpu, -1);
    cr_assert(strstr(lb.text, "CPU 1023: Invalid argument"), "%s", lb.text);
    cr_assert_eq(c->policy, SCHED_OTHER, "the acquisition thread runs with normal scheduling");
    qes_source_destroy(s);
}

/*
 * As whoever runs the test (root here): each option is either applied, and
 * then seen in effect by the inner source on the acquisition thread, or
 * logged as skipped.  Never fatal.
 */
Test(acq, rt_options_applied_or_logged)
{
    struct ctr *c = ctr_new(2, 500, 40);
    struct logbuf lb = {"", 0};
    struct qes_acq_desc ad = acq_desc(&c->base, 500, 64);
    ad.lock_memory = 1;
    ad.rt_priority = 10;
    ad.cpu = 0;
    ad.log = log_line;
    ad.log_ctx = &lb;
    struct qes_source *s = acq_make(&ad);
    drain_counter(s, 2, 40 * 500);
    struct qes_acq_stats st;
    qes_acq_stats(s, &st);
    cr_log_info("applied: mlockall %d, SCHED_FIFO %d, cpu %d; log:\n%s", st.memory_locked,
                st.rt_priority, st.cpu, lb.text);
    int expected_lines = 0;
    if (st.memory_locked) {
        if (!QES_TEST_ASAN) { /* ASan's mlockall is a no-op */
            char *status = NULL;
            size_t len = 0;
            FILE *fp = fopen("/proc/self/status", "r");
            cr_assert_not_null(fp);
            long vmlck = -1;
            while (getline(&status, &len, fp) > 0)
                if (sscanf(status, "VmLck: %ld", &vmlck) == 1)
                    break;
            free(status);
            fclose(fp);
            cr_assert(vmlck > 0, "mlockall reported applied but VmLck = %ld kB", vmlck);
        }
    } else {
        cr_assert(strstr(lb.text, "mlockall"), "%s", lb.text);
        expected_lines++;
    }
    if (st.rt_priority) {
        cr_assert_eq(st.rt_priority, 10);
        cr_assert_eq(c->policy, SCHED_FIFO);
        cr_assert_eq(c->prio, 10);
    } else {
        cr_assert(strstr(lb.text, "SCHED_FIFO priority 10"), "%s", lb.text);
        cr_assert_eq(c->policy, SCHED_OTHER);
        expected_lines++;
    }
    if (st.cpu == 0) {
        cr_assert_eq(c->n_cpus, 1);
        cr_assert(c->cpu0);
    } else {
        cr_assert_eq(st.cpu, -1);
        cr_assert(strstr(lb.text, "CPU 0"), "%s", lb.text);
        expected_lines++;
    }
    cr_assert_eq(lb.lines, expected_lines, "only skipped options are logged:\n%s", lb.text);
    qes_source_destroy(s);
}

/* ---- bad descs ----------------------------------------------------------------------------- */

enum {
    BAD_NULL_INNER,
    BAD_FRAME0,
    BAD_SLOTS1,
    BAD_PRIO_NEG,
    BAD_PRIO_100,
    BAD_CPU_NEG,
    BAD_CPU_BIG,
    BAD_OVERFLOW,
    BAD_N
};

ParameterizedTestParameters(acq, bad_desc)
{
    static int cases[BAD_N];
    for (int i = 0; i < BAD_N; i++)
        cases[i] = i;
    return cr_make_param_array(int, cases, BAD_N);
}

/* Each bad desc is QES_EINVAL with a message naming the field, and the
 * inner source is destroyed (ownership passes at create, also on error). */
ParameterizedTest(int *which, acq, bad_desc)
{
    static const char *const field[BAD_N] = {"inner",       "frame_samples", "n_slots",
                                             "rt_priority", "rt_priority",   "cpu",
                                             "cpu",         "overflow"};
    ctr_destroyed = 0;
    struct ctr *c = ctr_new(2, 10, 10);
    struct qes_acq_desc d = acq_desc(&c->base, 10, 4);
    switch (*which) {
    case BAD_NULL_INNER:
        d.inner = NULL;
        break;
    case BAD_FRAME0:
        d.frame_samples = 0;
        break;
    case BAD_SLOTS1:
        d.n_slots = 1;
        break;
    case BAD_PRIO_NEG:
        d.rt_priority = -1;
        break;
    case BAD_PRIO_100:
        d.rt_priority = 100;
        break;
    case BAD_CPU_NEG:
        d.cpu = -2;
        break;
    case BAD_CPU_BIG:
        d.cpu = CPU_SETSIZE;
        break;
    case BAD_OVERFLOW:
        d.frame_samples = SIZE_MAX / 2;
        break;
    }
    char err[512] = "";
    struct qes_source *s = (struct qes_source *)&err; /* must be reset to NULL */
    int rc = qes_acq_create(&d, &s, err, sizeof err);
    cr_assert_eq(rc, QES_EINVAL, "case %d: %s (%s)", *which, qes_err_name(rc), err);
    cr_assert_null(s);
    cr_assert(strstr(err, field[*which]), "case %d: message \"%s\" should name %s", *which, err,
              field[*which]);
    if (*which == BAD_NULL_INNER)
        ctr_destroy(&c->base);
    cr_assert_eq(ctr_destroyed, 1, "case %d: the inner source is destroyed once", *which);
}
