/*
 * The ZeroMQ live stream (pipeline/rec_zmq.c): a SUB socket in the test
 * receives every record as the JSON Lines text without the newline; drops at
 * the high-water mark are counted (n_acked + n_lost == records sent, n_lost >
 * 0 against a subscriber that never reads); close never waits; bad targets
 * and a port in use are clear errors.  Loopback only; each test binds its own
 * port, one the kernel just handed out as free.
 */
#include "pipeline/record.h"
#include "common/err.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <zmq.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

TestSuite(rec_zmq, .timeout = 300);

#define RUN_ID  "0f8e2d1c-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
#define RUN_SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static struct qes_run_rec test_run(void)
{
    struct qes_run_rec run = {
            .id = RUN_ID,
            .command = "run",
            .version = "0.1.0",
            .build = "test",
            .config_ini = "[source]\nkind = sim\n",
            .config_sha256 = RUN_SHA,
            .input_json = "{\"kind\": \"sim\"}",
            .t_start_ns = 1795743206123456789LL,
            .sample_rate_hz = 48000,
    };
    return run;
}

static struct qes_block_rec test_block(uint64_t seq, const char *measure)
{
    struct qes_block_rec b = {
            .measure = measure,
            .channel = "dut",
            .unit = "V",
            .harmonic = 1,
            .seq = seq,
            .sample_start = 48 * seq,
            .n_samples = 48,
            .t_ns = 1795743206123456789LL + (int64_t)seq * 1000000,
            .freq_hz = 1000,
            .x = 0.75,
            .y = -0.25 + 1e-3 * (double)seq,
            .r = 0.79,
            .phase_rad = -0.32,
            .enbw_hz = 1000,
            .thd = NAN,
            .sinad_db = NAN,
            .sfdr_db = NAN,
    };
    return b;
}

static struct qes_summary_rec test_summary(void)
{
    struct qes_summary_rec m = {
            .measure = "fund",
            .channel = "dut",
            .unit = "V",
            .harmonic = 1,
            .freq_hz = 1000,
    };
    m.s.n = 10;
    m.s.x = 0.75;
    m.s.y = -0.25;
    m.s.r = 0.79;
    m.s.u_r = 1e-6;
    m.s.dof = INFINITY;
    m.s.k = 1.96;
    m.s.U_r = 1.96e-6;
    m.s.coverage = 0.95;
    m.s.n_budget = 1;
    m.s.budget[0].name = "typeA";
    m.s.budget[0].u = 1e-6;
    m.s.budget[0].dof = 9;
    return m;
}

/* How the runs of these tests end: what close publishes last. */
static struct qes_run_end test_end(void)
{
    struct qes_run_end e = qes_run_end_of_status(3);
    e.samples = 960;
    e.lost = 40;
    e.gaps = 1;
    e.reconnects = 1;
    e.latency_n = 5;
    e.latency_p50_us = 80.5;
    e.latency_p99_us = 120;
    e.latency_max_us = 121.25;
    e.seconds = 12.75;
    e.t_end_ns = 1795743207123456789LL;
    return e;
}

/* The JSON text the JSON Lines sink writes for a record, without newline. */
enum kind { K_RUN, K_BLOCK, K_SUMMARY };
static char *json_of(enum kind k, const struct qes_run_rec *run, const void *rec)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    int rc = k == K_RUN     ? qes_run_json(f, run)
             : k == K_BLOCK ? qes_block_json(f, run, rec)
                            : qes_summary_json(f, run, rec);
    cr_assert_eq(rc, 0);
    cr_assert_eq(fclose(f), 0);
    return buf;
}

/* A loopback TCP port that is free now (the kernel's choice for port 0). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static struct qes_recorder *open_stream(int port, int hwm)
{
    char target[64], err[512] = "";
    snprintf(target, sizeof target, "zmq+tcp://127.0.0.1:%d", port);
    struct qes_recorder_opts o = {.zmq_hwm = hwm};
    struct qes_recorder *r = NULL;
    int rc = qes_recorder_open_ex(target, &o, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", target, err);
    cr_assert_not_null(r);
    cr_assert_str_eq(r->ops->name, "zmq");
    cr_assert_eq(r->best_effort, 1, "a live stream is best effort");
    return r;
}

/*
 * A SUB socket connected to the port, subscribed to everything, and
 * attached.  The slow joiner: a publisher sends to nobody until the
 * subscriber's connection is up and its subscription has reached it.  So
 * wait for the SUB's CONNECTED event (through a socket monitor), then give
 * the subscription 200 ms to cross the loopback, far more than it takes.
 */
static void *open_sub(void *ctx, int port, int rcvhwm)
{
    void *s = zmq_socket(ctx, ZMQ_SUB);
    cr_assert_not_null(s);
    int timeout_ms = 5000, linger = 0;
    cr_assert_eq(zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms), 0);
    cr_assert_eq(zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger), 0);
    if (rcvhwm)
        cr_assert_eq(zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm), 0);
    cr_assert_eq(zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0), 0);
    char ep[64], mon_ep[64];
    snprintf(mon_ep, sizeof mon_ep, "inproc://monitor-%d", port);
    cr_assert_eq(zmq_socket_monitor(s, mon_ep, ZMQ_EVENT_CONNECTED), 0);
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    cr_assert_not_null(mon);
    cr_assert_eq(zmq_setsockopt(mon, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms), 0);
    cr_assert_eq(zmq_connect(mon, mon_ep), 0);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    cr_assert_eq(zmq_connect(s, ep), 0, "%s: %s", ep, zmq_strerror(zmq_errno()));
    /* An event is two frames: 6 bytes (event, value), then the address. */
    zmq_msg_t m;
    zmq_msg_init(&m);
    cr_assert_geq(zmq_msg_recv(&m, mon, 0), 0, "SUB did not connect to %s within 5 s", ep);
    uint16_t event;
    memcpy(&event, zmq_msg_data(&m), sizeof event);
    cr_assert_eq(event, ZMQ_EVENT_CONNECTED);
    cr_assert(zmq_msg_more(&m));
    cr_assert_geq(zmq_msg_recv(&m, mon, 0), 0);
    zmq_msg_close(&m);
    zmq_socket_monitor(s, NULL, 0);
    zmq_close(mon);
    sleep_ms(200);
    return s;
}

/* Receive one message and compare it with the expected text. */
static void expect_msg(void *sub, const char *want, const char *what)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    int n = zmq_msg_recv(&m, sub, 0);
    cr_assert_geq(n, 0, "%s: nothing received: %s", what, zmq_strerror(zmq_errno()));
    cr_assert_eq(zmq_msg_more(&m), 0, "%s: one record is one single-part message", what);
    cr_assert_eq(zmq_msg_size(&m), strlen(want), "%s: %zu bytes, expected %zu: %.*s", what,
                 zmq_msg_size(&m), strlen(want), (int)zmq_msg_size(&m),
                 (const char *)zmq_msg_data(&m));
    cr_assert(!memcmp(zmq_msg_data(&m), want, strlen(want)), "%s: got %.*s\nwant %s", what,
              (int)zmq_msg_size(&m), (const char *)zmq_msg_data(&m), want);
    zmq_msg_close(&m);
}

/* Every record arrives, in order, byte-equal to the JSON Lines text. */
Test(rec_zmq, subscriber_receives_every_record_as_jsonl_text)
{
    int port = free_port();
    struct qes_recorder *r = open_stream(port, 0);
    void *ctx = zmq_ctx_new();
    void *sub = open_sub(ctx, port, 0);

    struct qes_run_rec run = test_run();
    struct qes_block_rec b[5];
    struct qes_summary_rec m = test_summary();
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    for (unsigned i = 0; i < 5; i++) {
        b[i] = test_block(i, "fund");
        cr_assert_eq(r->ops->block(r, &run, &b[i]), 0, "%s", r->errmsg);
    }
    cr_assert_eq(r->ops->summary(r, &run, &m), 0, "%s", r->errmsg);

    char *want = json_of(K_RUN, &run, NULL);
    cr_assert_null(strchr(want, '\n'));
    expect_msg(sub, want, "run record");
    free(want);
    for (unsigned i = 0; i < 5; i++) {
        char what[32];
        snprintf(what, sizeof what, "block %u", i);
        want = json_of(K_BLOCK, &run, &b[i]);
        expect_msg(sub, want, what);
        free(want);
    }
    want = json_of(K_SUMMARY, &run, &m);
    expect_msg(sub, want, "summary");
    free(want);

    /* the run end last: sent at close, which lingers long enough for it */
    struct qes_run_end end = test_end();
    cr_assert_eq(r->ops->close(r, &end), 0);
    cr_assert_eq(r->n_acked, 8);
    cr_assert_eq(r->n_lost, 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(qes_run_end_json(f, run.id, &end), 0);
    cr_assert_eq(fclose(f), 0);
    cr_assert(strstr(buf, "\"type\":\"run_end\"") && strstr(buf, "\"lost\":40"), "%s", buf);
    expect_msg(sub, buf, "run_end");
    free(buf);
    cr_assert_eq(r->ops->close(r, &end), 0, "close twice is harmless");
    cr_assert_eq(r->n_acked, 8, "the run end once");
    qes_recorder_destroy(r);
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

/* A dashboard that subscribes after the start gets the run record (the
 * configuration behind the values) before the next record, once; the
 * repeat is not counted as a record. */
Test(rec_zmq, late_subscriber_gets_the_run_record)
{
    int port = free_port();
    struct qes_recorder *r = open_stream(port, 0);
    struct qes_run_rec run = test_run();
    struct qes_block_rec b0 = test_block(0, "fund"), b1 = test_block(1, "fund");
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->block(r, &run, &b0), 0, "%s", r->errmsg);
    void *ctx = zmq_ctx_new();
    void *sub = open_sub(ctx, port, 0);
    cr_assert_eq(r->ops->block(r, &run, &b1), 0, "%s", r->errmsg);
    char *want = json_of(K_RUN, &run, NULL);
    expect_msg(sub, want, "run record for the late subscriber");
    free(want);
    want = json_of(K_BLOCK, &run, &b1);
    expect_msg(sub, want, "the block after it");
    free(want);
    struct qes_run_end end = test_end();
    cr_assert_eq(r->ops->close(r, &end), 0);
    cr_assert_eq(r->n_acked, 4, "records (run, two blocks, run end), not repeats");
    qes_recorder_destroy(r);
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

/*
 * Drops are counted.  A subscriber that connects and never reads: its
 * receive queue (RCVHWM 1), the kernel's loopback socket buffers (a few MB
 * at most) and the publisher's queue (SNDHWM 4) fill up, after which a send
 * would block and is dropped instead.  20000 records of ~16 kB are 320 MB,
 * two orders of magnitude beyond what those buffers can hold, so drops are
 * certain; every record is either sent or dropped, and the sends never
 * block (the whole loop takes well under the time a blocking publisher
 * would wait: it would wait forever).
 */
Test(rec_zmq, drops_at_the_high_water_mark_are_counted)
{
    int port = free_port();
    struct qes_recorder *r = open_stream(port, 4);
    void *ctx = zmq_ctx_new();
    void *sub = open_sub(ctx, port, 1);

    static char measure[16000];
    memset(measure, 'm', sizeof measure - 1);
    struct qes_run_rec run = test_run();
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    const uint64_t n = 20000;
    for (uint64_t i = 0; i < n; i++) {
        struct qes_block_rec b = test_block(i, measure);
        cr_assert_eq(r->ops->block(r, &run, &b), 0, "%s", r->errmsg);
    }
    struct qes_run_end end = test_end();
    cr_assert_eq(r->ops->close(r, &end), 0, "drops are not an error");
    cr_assert_gt(r->n_lost, 0, "no drop against a subscriber that never reads");
    cr_assert_gt(r->n_acked, 0, "nothing sent at all");
    /* run record, n blocks, run end */
    cr_assert_eq(r->n_acked + r->n_lost, n + 2, "sent %llu + dropped %llu != %llu records",
                 (unsigned long long)r->n_acked, (unsigned long long)r->n_lost,
                 (unsigned long long)(n + 2));
    cr_assert_eq(r->errmsg[0], '\0', "a drop at the HWM is not a send error: %s", r->errmsg);
    qes_recorder_destroy(r);
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

/* With no subscriber ZeroMQ discards without an error: nothing to count as
 * lost, and close does not wait for anyone. */
Test(rec_zmq, no_subscriber_sends_and_close_is_immediate)
{
    int port = free_port();
    struct qes_recorder *r = open_stream(port, 1);
    struct qes_run_rec run = test_run();
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    for (uint64_t i = 0; i < 100; i++) {
        struct qes_block_rec b = test_block(i, "fund");
        cr_assert_eq(r->ops->block(r, &run, &b), 0, "%s", r->errmsg);
    }
    double t0 = now_s();
    struct qes_run_end end = test_end();
    cr_assert_eq(r->ops->close(r, &end), 0);
    cr_assert_lt(now_s() - t0, 2.0, "close waited");
    cr_assert_eq(r->n_acked, 102, "run record, 100 blocks, run end");
    cr_assert_eq(r->n_lost, 0);
    qes_recorder_destroy(r);
}

/* A subscriber that never reads holds queued messages; close (linger 0) and
 * destroy still return at once, and the port is free again afterwards. */
Test(rec_zmq, close_never_waits_for_a_stuck_subscriber)
{
    int port = free_port();
    struct qes_recorder *r = open_stream(port, 1000);
    void *ctx = zmq_ctx_new();
    void *sub = open_sub(ctx, port, 1);
    static char measure[16000];
    memset(measure, 'x', sizeof measure - 1);
    struct qes_run_rec run = test_run();
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    for (uint64_t i = 0; i < 3000; i++) {
        struct qes_block_rec b = test_block(i, measure);
        cr_assert_eq(r->ops->block(r, &run, &b), 0, "%s", r->errmsg);
    }
    double t0 = now_s();
    struct qes_run_end end = test_end();
    cr_assert_eq(r->ops->close(r, &end), 0);
    qes_recorder_destroy(r);
    /* the socket lingers 200 ms at close (rec_zmq.c), far below this bound */
    cr_assert_lt(now_s() - t0, 2.0, "close waited for a subscriber");
    /* Rebinding the same port works: the socket is gone. */
    r = open_stream(port, 0);
    qes_recorder_destroy(r); /* destroy without close releases too */
    zmq_close(sub);
    zmq_ctx_term(ctx);
}

/* Binding a port in use is an error naming the address. */
Test(rec_zmq, port_in_use_is_a_clear_error)
{
    int port = free_port();
    struct qes_recorder *a = open_stream(port, 0);
    char target[64], err[1024] = "", addr[64];
    snprintf(target, sizeof target, "zmq+tcp://127.0.0.1:%d", port);
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", port);
    struct qes_recorder *b = (struct qes_recorder *)&err; /* must be reset to NULL */
    int rc = qes_recorder_open_ex(target, NULL, &b, err, sizeof err);
    cr_assert_eq(rc, QES_EIO, "rc %d (%s)", rc, err);
    cr_assert_null(b);
    cr_assert(strstr(err, addr), "message lacks the address: %s", err);
    cr_assert(strstr(err, "in use"), "message lacks the cause: %s", err);
    qes_recorder_destroy(a);
}

/* Records out of order or malformed are refused like in the other sinks. */
Test(rec_zmq, record_order_and_validity)
{
    int port = free_port();
    struct qes_recorder *r = open_stream(port, 0);
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block(0, "fund");
    cr_assert_eq(r->ops->block(r, &run, &b), QES_EINVAL, "block before the run record");
    cr_assert(strstr(r->errmsg, "before the run record"), "%s", r->errmsg);
    struct qes_run_rec bad = test_run();
    bad.input_json = "{broken";
    cr_assert_eq(r->ops->run(r, &bad), QES_EINVAL);
    cr_assert(strstr(r->errmsg, "not valid JSON"), "%s", r->errmsg);
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->run(r, &run), QES_EINVAL, "run record twice");
    b.kind = (enum qes_rec_kind)7;
    cr_assert_eq(r->ops->block(r, &run, &b), QES_EINVAL);
    struct qes_summary_rec m = test_summary();
    m.s.n_budget = QES_BUDGET_MAX + 1;
    cr_assert_eq(r->ops->summary(r, &run, &m), QES_EINVAL);
    cr_assert_eq(r->n_acked + r->n_lost, 1, "only the run record went out");
    struct qes_run_end end = test_end();
    cr_assert_eq(r->ops->close(r, &end), 0);
    cr_assert_eq(r->n_acked + r->n_lost, 2, "and the run end at close");
    b = test_block(1, "fund");
    cr_assert_eq(r->ops->block(r, &run, &b), QES_EINVAL, "block after close");
    qes_recorder_destroy(r);
}

/* Arrays, not pointers: Criterion runs each parameter in a new process,
 * where a pointer into the parent's image may not be valid (PIE). */
struct bad_target {
    char target[64];
    char needle[32];
};

ParameterizedTestParameters(rec_zmq, bad_targets)
{
    static struct bad_target t[] = {
            {"zmq+tcp://", "HOST:PORT"},
            {"zmq+tcp://127.0.0.1", "HOST:PORT"},
            {"zmq+tcp://:5556", "HOST:PORT"},
            {"zmq+tcp://127.0.0.1:", "port ''"},
            {"zmq+tcp://127.0.0.1:abc", "port 'abc'"},
            {"zmq+tcp://127.0.0.1:0", "port '0'"},
            {"zmq+tcp://127.0.0.1:65536", "port '65536'"},
            {"zmq+tcp://127.0.0.1:5556/x", "HOST:PORT"},
            {"zmq+tcp://::1:5556", "HOST:PORT"},
    };
    return cr_make_param_array(struct bad_target, t, sizeof t / sizeof t[0]);
}

ParameterizedTest(struct bad_target *t, rec_zmq, bad_targets)
{
    char err[1024] = "";
    struct qes_recorder *r = NULL;
    int rc = qes_recorder_open_ex(t->target, NULL, &r, err, sizeof err);
    cr_assert_eq(rc, QES_EINVAL, "%s: rc %d (%s)", t->target, rc, err);
    cr_assert_null(r);
    cr_assert(strstr(err, t->target), "%s: message lacks the target: %s", t->target, err);
    cr_assert(strstr(err, t->needle), "%s: message lacks \"%s\": %s", t->target, t->needle, err);
}

/* A host that is not an address of this machine: an error naming it. */
Test(rec_zmq, foreign_address_is_refused)
{
    char err[1024] = "";
    struct qes_recorder *r = NULL;
    /* 192.0.2.1 (TEST-NET-1, RFC 5737) is never a local address. */
    int rc = qes_recorder_open_ex("zmq+tcp://192.0.2.1:5556", NULL, &r, err, sizeof err);
    cr_assert_eq(rc, QES_EIO, "rc %d (%s)", rc, err);
    cr_assert_null(r);
    cr_assert(strstr(err, "tcp://192.0.2.1:5556"), "%s", err);
}
