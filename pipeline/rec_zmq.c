/*
 * The live stream: a ZeroMQ PUB socket publishing every record as one JSON
 * message, for dashboards (`-o zmq+tcp://HOST:PORT`).
 *
 * The socket binds tcp://HOST:PORT; dashboards connect a SUB socket and
 * subscribe (to "" for everything, or to a prefix such as
 * `{"type":"summary"`).  Each message is the record's JSON text exactly as
 * the JSON Lines sink writes it, without the newline: run record first, then
 * blocks and summaries, and at close the run_end record (record.h), counted
 * like the others.
 *
 * Best effort, by design: the stream must never slow down or stop a
 * measurement, so a send never blocks (ZMQ_DONTWAIT) and a message that
 * cannot be queued is dropped and counted (n_lost), never retried.  To be
 * able to count drops at all, the socket has ZMQ_XPUB_NODROP set: a plain PUB
 * discards silently, for each subscriber separately, when that subscriber's
 * queue is at the high-water mark (ZMQ_SNDHWM, opts->zmq_hwm messages, 1000
 * by default); with NODROP the send fails with EAGAIN instead and the message
 * goes to nobody.  The price: one subscriber that stays connected but stops
 * reading makes every subscriber miss messages once its queue (the HWM plus
 * the kernel's socket buffers) is full, until it reads again or disconnects.
 * A dashboard that exits closes its connection and stops holding the others.
 *
 * What is not delivered:
 *  - with no subscriber at all, ZeroMQ discards messages without an error;
 *    they count as sent (n_acked) because nobody was there to miss them;
 *  - a subscriber that connects after the start misses what was sent before
 *    (the run record included): the ZeroMQ "slow joiner";
 *  - messages still queued at close are discarded, so that the process never
 *    waits long for a slow or vanished dashboard: the socket lingers
 *    CLOSE_LINGER_MS (200 ms) at close, time enough for the I/O thread to
 *    hand the last messages, the run_end among them, to the kernel on a
 *    connection that is flowing; records are never held up meanwhile
 *    (ZMQ_LINGER 0 until close).
 * Other send failures (none is expected on a live socket) are counted as lost
 * too, the first one's message kept in errmsg; no record call fails for the
 * network, only for an invalid record.
 *
 * Thread safety: opened on one thread, then used by one thread at a time
 * (the recorder thread); ZeroMQ sockets may move between threads with the
 * memory barrier that thread creation provides.
 */
#include "pipeline/rec_int.h"
#include "pipeline/record.h"
#include "common/err.h"

#include <zmq.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ZMQ_HWM_DEFAULT 1000
#define CLOSE_LINGER_MS 200

struct rec_zmq {
    struct qes_recorder base;
    void *ctx;
    void *sock;
    char endpoint[300]; /* tcp://HOST:PORT */
    int closed;
    int have_run;
    int send_err; /* errno of the first send failure other than EAGAIN */
    char run_id[37];
    char *run_json; /* the run record, sent again to every new subscriber */
    size_t run_len;
};

/*
 * A dashboard that subscribes after the start would never see the run record
 * (and so the configuration behind the values): the socket is an XPUB in
 * verbose mode, which hands us every subscription, and each new one gets the
 * run record again before the next message.
 */
static void zmq_welcome(struct rec_zmq *z)
{
    char frame[256];
    int n, fresh = 0;
    while ((n = zmq_recv(z->sock, frame, sizeof frame, ZMQ_DONTWAIT)) > 0)
        fresh |= frame[0] == 1; /* 1 = subscribe, 0 = unsubscribe */
    if (!fresh || !z->run_json)
        return;
    /* a repeat, not a record: not counted in n_acked / n_lost */
    (void)zmq_send(z->sock, z->run_json, z->run_len, ZMQ_DONTWAIT);
}

/* Publish the JSON text buf[0..len) of a record formatted with result rc_fmt;
 * frees buf. */
static int zmq_publish(struct rec_zmq *z, int rc_fmt, char *buf, size_t len)
{
    if (rc_fmt) {
        free(buf);
        return rc_fmt;
    }
    zmq_welcome(z);
    int sent;
    do
        sent = zmq_send(z->sock, buf, len, ZMQ_DONTWAIT);
    while (sent < 0 && zmq_errno() == EINTR);
    if (sent >= 0) {
        z->base.n_acked++;
    } else {
        int e = zmq_errno();
        z->base.n_lost++;
        if (e != EAGAIN && !z->send_err) {
            z->send_err = e;
            snprintf(z->base.errmsg, sizeof z->base.errmsg,
                     "ZeroMQ stream %s: sending failed: %s (records are counted as dropped)",
                     z->endpoint, zmq_strerror(e));
        }
    }
    free(buf);
    return 0;
}

enum zmq_kind { ZK_RUN, ZK_BLOCK, ZK_SUMMARY, ZK_END };

/* Format a record with the shared JSON writers and publish it. */
static int zmq_record(struct rec_zmq *z, enum zmq_kind kind, const struct qes_run_rec *run,
                      const void *rec)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        snprintf(z->base.errmsg, sizeof z->base.errmsg, "ZeroMQ stream %s: out of memory",
                 z->endpoint);
        return QES_ENOMEM;
    }
    int rc = kind == ZK_RUN       ? qes_run_json(f, run)
             : kind == ZK_BLOCK   ? qes_block_json(f, run, rec)
             : kind == ZK_SUMMARY ? qes_summary_json(f, run, rec)
                                  : qes_run_end_json(f, z->run_id, rec);
    if (fclose(f) != 0 && !rc)
        rc = QES_ENOMEM;
    if (rc == QES_EINVAL)
        snprintf(z->base.errmsg, sizeof z->base.errmsg, "%s: invalid %s record", z->base.target,
                 kind == ZK_RUN       ? "run (input description not valid JSON)"
                 : kind == ZK_BLOCK   ? "block"
                 : kind == ZK_SUMMARY ? "summary"
                                      : "run_end");
    else if (rc)
        snprintf(z->base.errmsg, sizeof z->base.errmsg, "ZeroMQ stream %s: out of memory",
                 z->endpoint);
    char *keep = NULL;
    if (!rc && kind == ZK_RUN && (keep = malloc(len ? len : 1)))
        memcpy(keep, buf, len);
    rc = zmq_publish(z, rc, buf, len);
    if (keep) {
        /* kept after the first send, so that subscribers present at the
         * start get it once */
        free(z->run_json);
        z->run_json = keep;
        z->run_len = len;
    }
    return rc;
}

static int zmq_run(struct qes_recorder *r, const struct qes_run_rec *run)
{
    struct rec_zmq *z = (struct rec_zmq *)r;
    int rc = qes__rec_check_first_run(r, z->closed, z->have_run, run);
    if (rc)
        return rc;
    rc = zmq_record(z, ZK_RUN, run, NULL);
    if (rc)
        return rc;
    memcpy(z->run_id, run->id, sizeof z->run_id);
    z->run_id[36] = '\0';
    z->have_run = 1;
    return 0;
}

static int zmq_block(struct qes_recorder *r, const struct qes_run_rec *run,
                     const struct qes_block_rec *b)
{
    struct rec_zmq *z = (struct rec_zmq *)r;
    int rc = qes__rec_check_order(r, z->closed, z->have_run, z->run_id, run, "block");
    if (rc)
        return rc;
    if (!b || !b->measure || (b->kind != QES_REC_PHASOR && b->kind != QES_REC_SCALAR)) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "%s: block record without a measure or of unknown kind", r->target);
        return QES_EINVAL;
    }
    return zmq_record(z, ZK_BLOCK, run, b);
}

static int zmq_summary(struct qes_recorder *r, const struct qes_run_rec *run,
                       const struct qes_summary_rec *s)
{
    struct rec_zmq *z = (struct rec_zmq *)r;
    int rc = qes__rec_check_order(r, z->closed, z->have_run, z->run_id, run, "summary");
    if (rc)
        return rc;
    if ((rc = qes__rec_summary_valid(r, s)))
        return rc;
    return zmq_record(z, ZK_SUMMARY, run, s);
}

/* Release the socket and the context; linger 0 (set at open) makes both
 * immediate, whatever is still queued. */
static void zmq_release(struct rec_zmq *z)
{
    if (z->sock)
        zmq_close(z->sock);
    z->sock = NULL;
    if (z->ctx)
        zmq_ctx_term(z->ctx);
    z->ctx = NULL;
}

static int zmq_close_op(struct qes_recorder *r, const struct qes_run_end *end)
{
    struct rec_zmq *z = (struct rec_zmq *)r;
    if (!z->closed) {
        z->closed = 1;
        /* the run_end last; a failure to format it (out of memory) stays in
         * errmsg, as a drop would, and does not fail the run */
        if (end && z->have_run)
            (void)zmq_record(z, ZK_END, NULL, end);
        int linger = CLOSE_LINGER_MS;
        if (z->sock)
            (void)zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_release(z);
    }
    /* Drops are reported through n_lost by the caller, never as an error. */
    return 0;
}

static void zmq_destroy(struct qes_recorder *r)
{
    struct rec_zmq *z = (struct rec_zmq *)r;
    zmq_release(z);
    free(z->run_json);
    free(z);
}

static const struct qes_recorder_ops zmq_ops = {
        .name = "zmq",
        .run = zmq_run,
        .block = zmq_block,
        .summary = zmq_summary,
        .close = zmq_close_op,
        .destroy = zmq_destroy,
};

/*
 * "zmq+tcp://HOST:PORT" -> "tcp://HOST:PORT".  HOST is an address or a
 * name of a local interface, "*" for all, or "[IPv6]"; PORT 1..65535 (a
 * dashboard must know it, so no ephemeral port).  Sets *ipv6 for "[...]".
 */
static int parse_target(const char *target, char *endpoint, size_t len, int *ipv6, char *err,
                        size_t errlen)
{
    static const char form[] =
            "expected zmq+tcp://HOST:PORT with HOST an address of this machine (127.0.0.1, "
            "[::1], * for all interfaces) and PORT 1..65535";
    const char *hp = target + strlen("zmq+tcp://");
    const char *colon = strrchr(hp, ':');
    *ipv6 = hp[0] == '[';
    if (!colon || colon == hp || (*ipv6 && colon[-1] != ']') ||
        (!*ipv6 && memchr(hp, ':', (size_t)(colon - hp))) || strpbrk(hp, "/ ")) {
        qes_errf(err, errlen, "'%s': %s", target, form);
        return QES_EINVAL;
    }
    const char *port = colon + 1;
    unsigned long v = 0;
    size_t nd = strspn(port, "0123456789");
    if (nd == 0 || nd > 5 || port[nd] || (v = strtoul(port, NULL, 10)) == 0 || v > 65535) {
        qes_errf(err, errlen, "'%s': port '%s': %s", target, port, form);
        return QES_EINVAL;
    }
    if ((size_t)snprintf(endpoint, len, "tcp://%s", hp) >= len) {
        qes_errf(err, errlen, "'%.64s...': address too long", target);
        return QES_EINVAL;
    }
    return 0;
}

int qes_rec_zmq_open(const char *target, const struct qes_recorder_opts *opts,
                     struct qes_recorder **out, char *err, size_t errlen)
{
    struct rec_zmq *z = NULL;
    int rc, ipv6 = 0;
    if (out)
        *out = NULL;
    if (!target || !out || strncmp(target, "zmq+tcp://", 10) != 0) {
        qes_errf(err, errlen, "ZeroMQ stream: expected a target zmq+tcp://HOST:PORT");
        return QES_EINVAL;
    }
    int hwm = opts && opts->zmq_hwm > 0 ? opts->zmq_hwm : ZMQ_HWM_DEFAULT;
    if (!(z = calloc(1, sizeof *z))) {
        qes_errf(err, errlen, "%s: out of memory", target);
        return QES_ENOMEM;
    }
    if (strlen(target) >= sizeof z->base.target) {
        qes_errf(err, errlen, "ZeroMQ stream: target too long: %.64s...", target);
        rc = QES_EINVAL;
        goto err_free;
    }
    if ((rc = parse_target(target, z->endpoint, sizeof z->endpoint, &ipv6, err, errlen)))
        goto err_free;
    z->base.ops = &zmq_ops;
    z->base.best_effort = 1;
    strcpy(z->base.target, target);

    if (!(z->ctx = zmq_ctx_new())) {
        qes_errf(err, errlen, "%s: cannot create a ZeroMQ context: %s", target,
                 zmq_strerror(zmq_errno()));
        rc = QES_EIO;
        goto err_free;
    }
    if (!(z->sock = zmq_socket(z->ctx, ZMQ_XPUB))) {
        qes_errf(err, errlen, "%s: cannot create a ZeroMQ PUB socket: %s", target,
                 zmq_strerror(zmq_errno()));
        rc = QES_EIO;
        goto err_ctx;
    }
    int linger = 0, nodrop = 1, verbose = 1;
    if (zmq_setsockopt(z->sock, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(z->sock, ZMQ_XPUB_NODROP, &nodrop, sizeof nodrop) ||
        zmq_setsockopt(z->sock, ZMQ_XPUB_VERBOSE, &verbose, sizeof verbose) ||
        (ipv6 && zmq_setsockopt(z->sock, ZMQ_IPV6, &ipv6, sizeof ipv6))) {
        qes_errf(err, errlen, "%s: cannot set the ZeroMQ socket options (high-water mark %d): %s",
                 target, hwm, zmq_strerror(zmq_errno()));
        rc = QES_EIO;
        goto err_sock;
    }
    if (zmq_bind(z->sock, z->endpoint) != 0) {
        int e = zmq_errno();
        qes_errf(err, errlen, "cannot bind the ZeroMQ stream to %s (from %s): %s%s", z->endpoint,
                 target, zmq_strerror(e),
                 e == EADDRINUSE ? " (another program, or another qes, is using that port: "
                                   "choose another port)"
                 : e == EADDRNOTAVAIL || e == ENODEV ? " (HOST must be an address of this machine)"
                                                     : "");
        rc = e == EINVAL ? QES_EINVAL : QES_EIO;
        goto err_sock;
    }
    *out = &z->base;
    return 0;

err_sock:
    zmq_close(z->sock);
err_ctx:
    zmq_ctx_term(z->ctx);
err_free:
    free(z);
    return rc;
}
