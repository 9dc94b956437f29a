/*
 * The PostgreSQL sink, with a local spool (issue 6, parts 2 and 3).
 *
 * Schema.  The tables of the SQLite sink (rec_sqlite.c), with the same
 * columns and the same meaning: runs, blocks, summaries, UNIQUE (run, measure,
 * harmonic, seq), non-finite numbers as NULL; types double precision, bigint,
 * text, and jsonb for flags and budget (qes writes those, so they are always
 * valid JSON, and a lab can query them).  The run's input stays text: it is
 * compared as written.  `qes_meta` holds schema_version (1); a newer version
 * is refused, and so are tables of these names without `qes_meta`.  The
 * schema is created (or migrated, once there is more than one version) on
 * every connection, under a transaction-scoped advisory lock, so many qes
 * processes starting together do not race on CREATE TABLE.  As in SQLite,
 * the columns of runs that record how a run ended (samples, lost, gaps,
 * reconnects, frames_dropped, latency_n: bigint; latency_p50_us,
 * latency_p99_us, latency_max_us, seconds: double precision; t_end: text)
 * were added to version 1 after its release: a database without them gets
 * them (ALTER TABLE ... ADD COLUMN IF NOT EXISTS, only when one is missing,
 * under the same lock); runs recorded without them keep NULL there.
 *
 * Batches.  Records are encoded at once as rows of COPY text and kept in
 * memory; a batch is sent when it holds opts->batch_records records (10000)
 * or its first record is opts->batch_s old (1 s), at flush and at close.  One
 * transaction per batch: COPY into session-local temporary tables (no WAL, no
 * index), then INSERT ... SELECT ... ON CONFLICT DO NOTHING into the real
 * tables, runs first, then COMMIT.  As that costs about twice a plain insert,
 * blocks and summaries are first COPYed straight into their tables inside a
 * savepoint: only a batch that meets a key already stored (a retry, a
 * replay) falls back to the temporary tables.  There is no foreign key from
 * blocks to runs (its per-row check halves the insert rate): the sink sends
 * a run's record in the same transaction as its first blocks or an earlier
 * one, and the spool keeps that order.
 * A record is acknowledged (n_acked) once that COMMIT returned.  Idempotency
 * is that of the SQLite sink: a re-sent record whose key exists is compared
 * with the stored row (NULL-aware, doubles exactly: IS DISTINCT FROM), and a
 * difference is QES_EDB; a run id recorded with another config_sha256 or
 * input is refused.  Concurrent writers need nothing more: ON CONFLICT waits
 * for a competing insert of the same key and then skips it, only rows are
 * locked, and a deadlock or serialization failure (SQLSTATE class 40) makes
 * the batch run again, up to 3 times.
 *
 * Spool.  When the server cannot be reached at open, or a batch fails for a
 * reason that is not the data's (connection lost, server shutting down, out
 * of resources: SQLSTATE classes 08, 53, 57, 58, or no SQLSTATE at all), the
 * batch goes to the spool (spool.h; opts->spool_path, "qes-spool.db", at most
 * opts->spool_max_mb, 1024 MB) and one warning goes to stderr.  While the
 * spool holds rows, new batches go there too, so that the server receives
 * everything in order.  Every batch boundary and flush retries the server,
 * with a back-off of 1, 2, 4 s between attempts; once it answers, the spool
 * is sent in batches oldest first, each removed from the spool only after the
 * server committed it (a crash in between sends it again; ON CONFLICT makes
 * that harmless).  The spool is drained for at most 1 s per batch boundary,
 * so records keep flowing meanwhile; at open and at close it is drained until
 * empty (close gives up after 5 s of unreachable server: what remains stays
 * in the spool file for the next run, reported on stderr and in errmsg).  A
 * spool left by an earlier run is drained at open.  When the spool is full,
 * every record that cannot be kept is counted in n_lost (the run exits 3)
 * and stderr says so once, loudly.  The run record is kept aside until it has
 * been committed or spooled, and put in front of the next batch until then,
 * so blocks never reach the server before their run.
 *
 * At open, a server that refuses us for good (authentication, no such
 * database or role) is an error, not an outage; later, every failure to
 * connect is taken as an outage.  Several processes may share one spool file
 * (each row is sent and counted once).
 *
 * Errors that are the data's (a re-sent record that differs, a constraint
 * violated) are sticky: QES_EDB, the batch's records counted lost.  Messages
 * never show the connection URI (it may hold a password): the sink is named
 * postgresql://USER@HOST:PORT/DB, which is also r->target.
 *
 * Limits.  libpq calls block: a dead server is noticed by TCP (connect_timeout
 * 3 s, keepalives, tcp_user_timeout 15 s, each overridable in the URI), but a
 * server that accepts and then stops answering (SIGSTOP) blocks the recorder
 * thread.  n_acked counts block and summary records, including those of an
 * earlier run drained from the spool.
 *
 * Close.  The run's end (status, closed_utc = the host clock at close, and
 * struct qes_run_end) is one row of kind K_END that travels like the others
 * (in the last batch, or through the spool) and UPDATEs the run's row.  A
 * spool written by an earlier qes may hold rows of kind K_CLOSE (id, status,
 * closed_utc only); they are still sent.  An earlier qes meeting a K_END row
 * in a spool refuses it (a row of unknown kind) and leaves it there.
 */
#include "pipeline/rec_int.h"
#include "pipeline/record.h"
#include "pipeline/spool.h"
#include "common/err.h"
#include "common/utctime.h"

#include <libpq-fe.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_VERSION        1
#define DEF_BATCH_RECORDS     10000
#define DEF_BATCH_S           1.0
#define DEF_SPOOL             "qes-spool.db"
#define DEF_SPOOL_MB          1024.0
#define BACKOFF_MIN_NS        1000000000LL
#define BACKOFF_MAX_NS        4000000000LL
#define DRAIN_SLICE_NS        1000000000LL
#define CLOSE_WAIT_NS         5000000000LL
#define RETRIES_SERIALIZATION 3

/* Row kinds, in the order a batch sends them.  Kinds below K_RUN are the
 * records that n_acked and n_lost count.  K_CLOSE: the status row of an
 * earlier qes (in an old spool); K_END: the run end row of this one. */
enum { K_BLOCK = 0, K_SUM = 1, K_RUN = 2, K_CLOSE = 3, K_END = 4, K_N = 5 };

static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS qes_meta(key text PRIMARY KEY, value text NOT NULL);"
        "CREATE TABLE IF NOT EXISTS runs("
        " id text PRIMARY KEY, command text, version text, build text, config_sha256 text,"
        " config text, input text, t_start text, sample_rate_hz double precision,"
        " status integer, closed_utc text, samples bigint, lost bigint, gaps bigint,"
        " reconnects bigint, frames_dropped bigint, latency_n bigint,"
        " latency_p50_us double precision, latency_p99_us double precision,"
        " latency_max_us double precision, seconds double precision, t_end text);"
        "CREATE TABLE IF NOT EXISTS blocks("
        " run text NOT NULL, measure text NOT NULL, channel text,"
        " kind text CHECK (kind IN ('phasor', 'scalar')), harmonic bigint NOT NULL,"
        " seq bigint NOT NULL, sample_start bigint, n_samples bigint, t text,"
        " freq_hz double precision, x double precision, y double precision,"
        " r double precision, phase_rad double precision, value double precision,"
        " u double precision, unit text, enbw_hz double precision, thd double precision,"
        " sinad_db double precision, sfdr_db double precision, flags jsonb,"
        " UNIQUE (run, measure, harmonic, seq));"
        "CREATE TABLE IF NOT EXISTS summaries("
        " run text NOT NULL, measure text NOT NULL, channel text,"
        " kind text CHECK (kind IN ('phasor', 'scalar')), harmonic bigint NOT NULL,"
        " seq bigint NOT NULL, n_blocks bigint, n_excluded bigint, freq_hz double precision,"
        " x double precision, y double precision, r double precision,"
        " phase_rad double precision, value double precision, unit text,"
        " u_x double precision, u_y double precision, u_r double precision,"
        " u_phase_rad double precision, u double precision, dof double precision,"
        " k double precision, U_r_expanded double precision, U_expanded double precision,"
        " coverage double precision, budget jsonb, flags jsonb,"
        " UNIQUE (run, measure, harmonic, seq));"
        "INSERT INTO qes_meta(key, value) VALUES ('schema_version', '1') ON CONFLICT DO NOTHING;";

/* The run end columns, added to a runs table of version 1 that lacks them;
 * RUN_END_N of them. */
#define RUN_END_N 11
static const char run_end_count_sql[] =
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'runs'::regclass AND attnum > 0"
        " AND NOT attisdropped AND attname IN ('samples', 'lost', 'gaps', 'reconnects',"
        " 'frames_dropped', 'latency_n', 'latency_p50_us', 'latency_p99_us', 'latency_max_us',"
        " 'seconds', 't_end')";
static const char run_end_add_sql[] =
        "ALTER TABLE runs ADD COLUMN IF NOT EXISTS samples bigint,"
        " ADD COLUMN IF NOT EXISTS lost bigint, ADD COLUMN IF NOT EXISTS gaps bigint,"
        " ADD COLUMN IF NOT EXISTS reconnects bigint,"
        " ADD COLUMN IF NOT EXISTS frames_dropped bigint,"
        " ADD COLUMN IF NOT EXISTS latency_n bigint,"
        " ADD COLUMN IF NOT EXISTS latency_p50_us double precision,"
        " ADD COLUMN IF NOT EXISTS latency_p99_us double precision,"
        " ADD COLUMN IF NOT EXISTS latency_max_us double precision,"
        " ADD COLUMN IF NOT EXISTS seconds double precision,"
        " ADD COLUMN IF NOT EXISTS t_end text";

/* Every column of this qes, to recognise tables of an earlier layout. */
static const char columns_sql[] =
        "SELECT kind, value, u, enbw_hz, thd, sinad_db, sfdr_db FROM blocks LIMIT 0;"
        "SELECT kind, value, u, U_expanded, budget, flags FROM summaries LIMIT 0;"
        "SELECT status, closed_utc, samples, lost, gaps, reconnects, frames_dropped, latency_n,"
        " latency_p50_us, latency_p99_us, latency_max_us, seconds, t_end FROM runs LIMIT 0";

/* Per session; ON COMMIT DELETE ROWS empties them after every batch. */
static const char temp_sql[] =
        "CREATE TEMP TABLE IF NOT EXISTS qes_tmp_runs (LIKE runs) ON COMMIT DELETE ROWS;"
        "CREATE TEMP TABLE IF NOT EXISTS qes_tmp_blocks (LIKE blocks) ON COMMIT DELETE ROWS;"
        "CREATE TEMP TABLE IF NOT EXISTS qes_tmp_summaries (LIKE summaries)"
        " ON COMMIT DELETE ROWS;"
        "CREATE TEMP TABLE IF NOT EXISTS qes_tmp_close (id text, status integer,"
        " closed_utc text, samples bigint, lost bigint, gaps bigint, reconnects bigint,"
        " frames_dropped bigint, latency_n bigint, latency_p50_us double precision,"
        " latency_p99_us double precision, latency_max_us double precision,"
        " seconds double precision, t_end text) ON COMMIT DELETE ROWS;";

#define RUN_COLS \
    "id, command, version, build, config_sha256, config, input, t_start, sample_rate_hz"

static const char *const copy_sql[K_N] = {
        [K_BLOCK] = "COPY qes_tmp_blocks FROM STDIN",
        [K_SUM] = "COPY qes_tmp_summaries FROM STDIN",
        [K_RUN] = "COPY qes_tmp_runs(" RUN_COLS ") FROM STDIN",
        [K_CLOSE] = "COPY qes_tmp_close(id, status, closed_utc) FROM STDIN",
        [K_END] = "COPY qes_tmp_close FROM STDIN",
};

/* The fast path: straight into the table, which fails on a key already there
 * (a retry); the batch then takes the temporary table and ON CONFLICT. */
static const char *const direct_sql[K_N] = {
        [K_BLOCK] = "COPY blocks FROM STDIN",
        [K_SUM] = "COPY summaries FROM STDIN",
};

static const char *const insert_sql[K_N] = {
        [K_BLOCK] = "INSERT INTO blocks SELECT * FROM qes_tmp_blocks ON CONFLICT DO NOTHING",
        [K_SUM] = "INSERT INTO summaries SELECT * FROM qes_tmp_summaries ON CONFLICT DO NOTHING",
        [K_RUN] = "INSERT INTO runs(" RUN_COLS ") SELECT " RUN_COLS
                  " FROM qes_tmp_runs ON CONFLICT DO NOTHING",
        /* both close kinds land in qes_tmp_close; one UPDATE takes them */
        [K_CLOSE] = "UPDATE runs r SET status = c.status, closed_utc = c.closed_utc,"
                    " samples = c.samples, lost = c.lost, gaps = c.gaps,"
                    " reconnects = c.reconnects, frames_dropped = c.frames_dropped,"
                    " latency_n = c.latency_n, latency_p50_us = c.latency_p50_us,"
                    " latency_p99_us = c.latency_p99_us, latency_max_us = c.latency_max_us,"
                    " seconds = c.seconds, t_end = c.t_end FROM qes_tmp_close c WHERE r.id = c.id",
};

/* After an insert that skipped rows: a sent row that differs from the stored
 * one with its key. */
static const char *const differ_sql[K_N] = {
        [K_BLOCK] = "SELECT t.run, t.measure, t.harmonic, t.seq FROM qes_tmp_blocks t"
                    " JOIN blocks b USING (run, measure, harmonic, seq)"
                    " WHERE ROW(t.*) IS DISTINCT FROM ROW(b.*) LIMIT 1",
        [K_SUM] = "SELECT t.run, t.measure, t.harmonic, t.seq FROM qes_tmp_summaries t"
                  " JOIN summaries b USING (run, measure, harmonic, seq)"
                  " WHERE ROW(t.*) IS DISTINCT FROM ROW(b.*) LIMIT 1",
        [K_RUN] = "SELECT t.id, r.config_sha256, t.config_sha256 FROM qes_tmp_runs t"
                  " JOIN runs r USING (id)"
                  " WHERE (t.config_sha256, t.input) IS DISTINCT FROM (r.config_sha256, r.input)"
                  " LIMIT 1",
};

/* ---- batches of COPY rows ----------------------------------------------------- */

struct brow {
    int kind;
    size_t off, len; /* in buf; the line with its '\n' */
};

struct batch {
    char *buf;
    size_t len, cap;
    struct brow *rows;
    size_t n, cap_rows;
    size_t n_kind[K_N];
    size_t row_start; /* offset of the row being written */
    int oom;
};

static void b_clear(struct batch *b)
{
    b->len = b->n = 0;
    memset(b->n_kind, 0, sizeof b->n_kind);
    b->oom = 0;
}

static void b_free(struct batch *b)
{
    free(b->buf);
    free(b->rows);
    memset(b, 0, sizeof *b);
}

static uint64_t b_records(const struct batch *b)
{
    return b->n_kind[K_BLOCK] + b->n_kind[K_SUM];
}

static void b_put(struct batch *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

/*
 * A text field of COPY's text format: backslash, tab, newline and carriage
 * return escaped, NULL as \N.  The server refuses invalid UTF-8, which would
 * leave a batch in the spool for ever, so an invalid byte becomes U+FFFD, as
 * in the JSON sink.
 */
static void b_text(struct batch *b, const char *s)
{
    if (!s) {
        b_put(b, "\\N", 2);
        return;
    }
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s), *run = p;
    while (p < end) {
        unsigned c = *p;
        size_t ulen;
        if (c >= 0x80 && (ulen = qes__utf8_len(p, end)) > 0) {
            p += ulen;
            continue;
        }
        if (c != '\\' && c != '\t' && c != '\n' && c != '\r' && c < 0x80) {
            p++;
            continue;
        }
        b_put(b, (const char *)run, (size_t)(p - run));
        switch (c) {
        case '\\':
            b_put(b, "\\\\", 2);
            break;
        case '\t':
            b_put(b, "\\t", 2);
            break;
        case '\n':
            b_put(b, "\\n", 2);
            break;
        case '\r':
            b_put(b, "\\r", 2);
            break;
        default:
            b_put(b, "\xef\xbf\xbd", 3);
        }
        run = ++p;
    }
    b_put(b, (const char *)run, (size_t)(p - run));
}

/* A double as %.17g (exact round trip through float8in), NULL when not
 * finite. */
static void b_num(struct batch *b, double v)
{
    if (!isfinite(v)) {
        b_put(b, "\\N", 2);
        return;
    }
    char buf[40];
    int n = snprintf(buf, sizeof buf, "%.17g", v);
    /* qes runs in the C locale; should an embedding program change
     * LC_NUMERIC, its radix character must still reach the server as '.' */
    for (int i = 0; i < n; i++)
        if (buf[i] == ',')
            buf[i] = '.';
    b_put(b, buf, (size_t)n);
}

static void b_u64(struct batch *b, uint64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRIu64, v);
    b_put(b, buf, (size_t)n);
}

static void b_tab(struct batch *b)
{
    b_put(b, "\t", 1);
}

static void b_row_begin(struct batch *b)
{
    b->row_start = b->len;
}

/* End the row started by b_row_begin; 0 or QES_ENOMEM (the row is dropped). */
static int b_row_end(struct batch *b, int kind)
{
    b_put(b, "\n", 1);
    if (!b->oom && b->n == b->cap_rows) {
        size_t cap = b->cap_rows ? 2 * b->cap_rows : 1024;
        struct brow *nr = realloc(b->rows, cap * sizeof *nr);
        if (!nr)
            b->oom = 1;
        else {
            b->rows = nr;
            b->cap_rows = cap;
        }
    }
    if (b->oom) {
        b->len = b->row_start;
        b->oom = 0;
        return QES_ENOMEM;
    }
    b->rows[b->n++] =
            (struct brow){.kind = kind, .off = b->row_start, .len = b->len - b->row_start};
    b->n_kind[kind]++;
    return 0;
}

/* Append a ready row (from the spool or kept aside). */
static int b_add_row(struct batch *b, int kind, const char *data, size_t len)
{
    b_row_begin(b);
    /* the stored row ends with its '\n'; b_row_end adds it again */
    b_put(b, data, len && data[len - 1] == '\n' ? len - 1 : len);
    return b_row_end(b, kind);
}

/* ---- the sink ----------------------------------------------------------------- */

enum { SEND_OK = 0, SEND_TRANSIENT = 1, SEND_RETRY = 2, SEND_DUP = 3 };

struct rec_pg {
    struct qes_recorder base;
    char *uri; /* may hold a password: never printed */
    char name[1024];
    PGconn *conn;
    struct qes_spool *spool;
    char spool_path[4096];
    double spool_max_mb;
    int64_t batch_ns;
    unsigned batch_records;

    struct batch pend;  /* records not yet committed or spooled */
    int64_t t_first_ns; /* CLOCK_MONOTONIC of pend's first row */
    struct batch drain; /* rows read back from the spool */
    char *run_line;     /* the run row, until it is committed or spooled */
    size_t run_line_len;
    int run_safe;
    int run_existed; /* a run of the last batch was there already */

    int64_t next_try_ns; /* no connection attempt before this */
    int64_t backoff_ns;
    char why[512]; /* last reason the server was not usable */
    int warned_unreachable, warned_full, spool_unusable;

    int err;
    int closed, have_run;
    char run_id[37];
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* First line of a libpq message, without its "ERROR:  " / "FATAL:  " head. */
static void first_line(char *dst, size_t len, const char *msg)
{
    if (!msg || !*msg)
        msg = "no message";
    size_t n = strcspn(msg, "\n");
    if (n >= len)
        n = len - 1;
    memcpy(dst, msg, n);
    dst[n] = '\0';
}

static int pg_fail_msg(struct rec_pg *p, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Record a sticky failure: "PostgreSQL NAME: " and the message. */
static int pg_fail_msg(struct rec_pg *p, int code, const char *fmt, ...)
{
    int n = snprintf(p->base.errmsg, sizeof p->base.errmsg, "PostgreSQL %s: ", p->name);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof p->base.errmsg)
        vsnprintf(p->base.errmsg + n, sizeof p->base.errmsg - (size_t)n, fmt, ap);
    va_end(ap);
    if (!p->err)
        p->err = code;
    return code;
}

static void drop_conn(struct rec_pg *p)
{
    PQfinish(p->conn);
    p->conn = NULL;
}

static int is_transient_state(const char *st)
{
    if (!st || strlen(st) != 5)
        return 1; /* no SQLSTATE: the client lost the connection */
    return !strncmp(st, "08", 2) || !strncmp(st, "53", 2) || !strncmp(st, "57", 2) ||
           !strncmp(st, "58", 2);
}

/*
 * Look at a result.  Returns SEND_OK when its status is want; otherwise the
 * open transaction is rolled back and the result classified: SEND_TRANSIENT
 * (the connection may be gone), SEND_RETRY (serialization failure or
 * deadlock), or a sticky QES_EDB with the server's message.  Clears res.
 */
static int check(struct rec_pg *p, PGresult *res, ExecStatusType want, const char *what)
{
    if (res && PQresultStatus(res) == want) {
        PQclear(res);
        return SEND_OK;
    }
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char line[400];
    first_line(line, sizeof line, res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn));
    if (!res || !*PQresultErrorMessage(res))
        first_line(line, sizeof line, PQerrorMessage(p->conn));
    int rc;
    if (PQstatus(p->conn) == CONNECTION_BAD || is_transient_state(st)) {
        snprintf(p->why, sizeof p->why, "%s: %s", what, line);
        rc = SEND_TRANSIENT;
    } else if (!strncmp(st, "40", 2)) {
        rc = SEND_RETRY;
    } else {
        char full[2048];
        snprintf(full, sizeof full, "%s", res ? PQresultErrorMessage(res) : line);
        size_t n = strlen(full);
        while (n && full[n - 1] == '\n')
            full[--n] = '\0';
        rc = pg_fail_msg(p, QES_EDB, "%s: %s", what, full);
    }
    PQclear(res);
    if (PQstatus(p->conn) == CONNECTION_BAD) {
        drop_conn(p);
    } else if (PQtransactionStatus(p->conn) != PQTRANS_IDLE) {
        PGresult *rb = PQexec(p->conn, "ROLLBACK");
        PQclear(rb);
        if (PQstatus(p->conn) == CONNECTION_BAD)
            drop_conn(p);
    }
    return rc;
}

static int exec_ok(struct rec_pg *p, const char *sql, const char *what)
{
    return check(p, PQexec(p->conn, sql), PGRES_COMMAND_OK, what);
}

/* COPY the rows of one kind (sql: into which table).  allow_dup: a unique
 * violation returns SEND_DUP, the transaction left for the caller to roll
 * back to its savepoint. */
static int copy_kind(struct rec_pg *p, const struct batch *b, int kind, const char *sql,
                     int allow_dup)
{
    int rc = check(p, PQexec(p->conn, sql), PGRES_COPY_IN, "starting COPY");
    if (rc)
        return rc;
    /* rows of a kind mostly lie next to each other: send runs of them */
    for (size_t i = 0; i < b->n;) {
        if (b->rows[i].kind != kind) {
            i++;
            continue;
        }
        size_t off = b->rows[i].off, end = off + b->rows[i].len;
        for (i++; i < b->n && b->rows[i].kind == kind && b->rows[i].off == end; i++)
            end += b->rows[i].len;
        if (PQputCopyData(p->conn, b->buf + off, (int)(end - off)) != 1) {
            snprintf(p->why, sizeof p->why, "sending rows: %.300s", PQerrorMessage(p->conn));
            PQputCopyEnd(p->conn, "qes: client failure");
            while ((p->conn) && PQstatus(p->conn) != CONNECTION_BAD) {
                PGresult *r = PQgetResult(p->conn);
                if (!r)
                    break;
                PQclear(r);
            }
            return check(p, NULL, PGRES_COMMAND_OK, "sending rows");
        }
    }
    if (PQputCopyEnd(p->conn, NULL) != 1)
        return check(p, NULL, PGRES_COMMAND_OK, "ending COPY");
    PGresult *res = PQgetResult(p->conn), *extra;
    while ((extra = PQgetResult(p->conn)))
        PQclear(extra);
    if (allow_dup && res && PQresultStatus(res) == PGRES_FATAL_ERROR &&
        PQstatus(p->conn) == CONNECTION_OK) {
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (st && !strcmp(st, "23505")) {
            PQclear(res);
            return SEND_DUP;
        }
    }
    return check(p, res, PGRES_COMMAND_OK, "copying rows");
}

/* After ON CONFLICT skipped rows: are they identical to the stored ones? */
static int compare_kind(struct rec_pg *p, int kind)
{
    PGresult *res = PQexec(p->conn, differ_sql[kind]);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return check(p, res, PGRES_TUPLES_OK, "comparing with recorded rows");
    int n = PQntuples(res);
    int rc = SEND_OK;
    char msg[1200];
    if (n && kind == K_RUN) {
        snprintf(msg, sizeof msg,
                 "run %.36s is already recorded with a different configuration or input "
                 "(config_sha256 %.64s there, %.64s here); refusing to mix two runs under one "
                 "id: record into another database",
                 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
    } else if (n) {
        snprintf(msg, sizeof msg,
                 "the %s record (run %.36s, measure '%.200s', harmonic %.20s, seq %.20s) is "
                 "already recorded with different values; a replay must reproduce a recorded "
                 "run exactly: record into another database",
                 kind == K_BLOCK ? "block" : "summary", PQgetvalue(res, 0, 0),
                 PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
    }
    PQclear(res);
    if (n) {
        PGresult *rb = PQexec(p->conn, "ROLLBACK");
        PQclear(rb);
        rc = pg_fail_msg(p, QES_EDB, "%s", msg);
    }
    return rc;
}

/* Rows of one kind through the temporary table: INSERT ... ON CONFLICT DO
 * NOTHING, then compare what was skipped.  K_CLOSE takes the rows of both
 * close kinds (K_CLOSE, K_END) and UPDATEs runs. */
static int insert_kind(struct rec_pg *p, const struct batch *b, int k)
{
    int rc = 0;
    if (k != K_CLOSE || b->n_kind[K_CLOSE])
        rc = copy_kind(p, b, k, copy_sql[k], 0);
    if (!rc && k == K_CLOSE && b->n_kind[K_END])
        rc = copy_kind(p, b, K_END, copy_sql[K_END], 0);
    if (rc)
        return rc;
    PGresult *res = PQexec(p->conn, insert_sql[k]);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        return check(p, res, PGRES_COMMAND_OK,
                     k == K_CLOSE ? "recording the run status" : "inserting rows");
    uint64_t n_ins = strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (k == K_CLOSE || n_ins >= b->n_kind[k])
        return SEND_OK;
    if (k == K_RUN)
        p->run_existed = 1;
    return compare_kind(p, k);
}

/*
 * One transaction carrying batch b; SEND_OK once committed.  Runs first, so
 * that no block reaches the server before its run.  Blocks and summaries are
 * first COPYed straight into their tables inside a savepoint; a key already
 * there (a re-sent batch) rolls back to it and takes insert_kind().
 */
static int send_once(struct rec_pg *p, const struct batch *b)
{
    int rc = exec_ok(p, "BEGIN ISOLATION LEVEL READ COMMITTED", "BEGIN");
    if (!rc && b->n_kind[K_RUN])
        rc = insert_kind(p, b, K_RUN);
    static const int data_kinds[2] = {K_BLOCK, K_SUM};
    for (int i = 0; i < 2 && !rc; i++) {
        int k = data_kinds[i];
        if (!b->n_kind[k])
            continue;
        rc = exec_ok(p, "SAVEPOINT qes_fast", "SAVEPOINT");
        rc = rc ? rc : copy_kind(p, b, k, direct_sql[k], 1);
        if (rc == SEND_DUP) {
            rc = exec_ok(p, "ROLLBACK TO SAVEPOINT qes_fast", "ROLLBACK TO SAVEPOINT");
            rc = rc ? rc : insert_kind(p, b, k);
        }
    }
    if (!rc && (b->n_kind[K_CLOSE] || b->n_kind[K_END]))
        rc = insert_kind(p, b, K_CLOSE);
    if (!rc)
        rc = exec_ok(p, "COMMIT", "COMMIT");
    return rc;
}

static int send_batch(struct rec_pg *p, const struct batch *b)
{
    if (!p->conn)
        return SEND_TRANSIENT;
    for (int attempt = 0;; attempt++) {
        int rc = send_once(p, b);
        if (rc == SEND_TRANSIENT)
            drop_conn(p); /* the next attempt waits for the back-off */
        if (rc != SEND_RETRY)
            return rc;
        if (attempt >= RETRIES_SERIALIZATION) {
            snprintf(p->why, sizeof p->why, "serialization failures or deadlocks, %d times",
                     attempt + 1);
            drop_conn(p);
            return SEND_TRANSIENT;
        }
    }
}

/* ---- connecting ------------------------------------------------------------- */

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Inside the schema transaction: refuse what this qes does not understand,
 * create or migrate the rest. */
static int schema_check(struct rec_pg *p)
{
    PGresult *res = PQexec(p->conn, "SELECT to_regclass('qes_meta') IS NOT NULL,"
                                    " (to_regclass('runs') IS NOT NULL)::int"
                                    " + (to_regclass('blocks') IS NOT NULL)::int"
                                    " + (to_regclass('summaries') IS NOT NULL)::int");
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return check(p, res, PGRES_TUPLES_OK, "reading the schema");
    int has_meta = PQgetvalue(res, 0, 0)[0] == 't';
    int n_ours = atoi(PQgetvalue(res, 0, 1));
    PQclear(res);
    if (!has_meta && n_ours)
        return pg_fail_msg(p, QES_EDB,
                           "has tables runs/blocks/summaries but no `qes_meta` table: not a qes "
                           "results database; record into another database");
    long version = 0;
    if (has_meta) {
        res = PQexec(p->conn, "SELECT value FROM qes_meta WHERE key = 'schema_version'");
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
            return check(p, res, PGRES_TUPLES_OK, "reading schema_version");
        char *end = NULL;
        const char *v = PQntuples(res) ? PQgetvalue(res, 0, 0) : "";
        version = strtol(v, &end, 10);
        int valid = *v && end && !*end && version >= 1;
        PQclear(res);
        if (!valid)
            return pg_fail_msg(p, QES_EDB,
                               "its `qes_meta` table has no valid schema_version: not a qes "
                               "results database; record into another database");
        if (version > SCHEMA_VERSION) {
            char msg[200];
            snprintf(msg, sizeof msg, "schema_version %ld is newer than this qes understands (%d)",
                     version, SCHEMA_VERSION);
            return pg_fail_msg(p, QES_EDB, "%s: use a newer qes or another database", msg);
        }
    }
    /* Migrations from version v to v + 1 go here, in order, once there is a
     * version 2; version 1 is created by schema_sql, and a runs table of
     * version 1 without the run end columns gets them (see the top): the
     * catalog is read first, so that ALTER TABLE, whose lock waits for every
     * writer of runs, runs only when a column is missing. */
    int rc = exec_ok(p, schema_sql, "creating the tables");
    if (rc)
        return rc;
    res = PQexec(p->conn, run_end_count_sql);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return check(p, res, PGRES_TUPLES_OK, "reading the columns of runs");
    int n_end = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (n_end < RUN_END_N && (rc = exec_ok(p, run_end_add_sql, "adding the run end columns")))
        return rc;
    res = PQexec(p->conn, columns_sql);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res && PQstatus(p->conn) == CONNECTION_OK &&
            !is_transient_state(PQresultErrorField(res, PG_DIAG_SQLSTATE))) {
            char line[400];
            first_line(line, sizeof line, PQresultErrorMessage(res));
            PQclear(res);
            return pg_fail_msg(p, QES_EDB,
                               "its tables lack columns of this qes (%s): written by a "
                               "pre-release qes; record into another database",
                               line);
        }
        return check(p, res, PGRES_TUPLES_OK, "checking the columns");
    }
    PQclear(res);
    return SEND_OK;
}

static int setup_session(struct rec_pg *p)
{
    PQsetNoticeProcessor(p->conn, quiet_notices, NULL);
    int rc = exec_ok(p, "BEGIN", "BEGIN");
    /* one schema creator at a time, across processes and machines */
    rc = rc ? rc
            : check(p, PQexec(p->conn, "SELECT pg_advisory_xact_lock(7160773625148813414)"),
                    PGRES_TUPLES_OK, "locking the schema");
    rc = rc ? rc : schema_check(p);
    rc = rc ? rc : exec_ok(p, "COMMIT", "creating the tables");
    rc = rc ? rc : exec_ok(p, temp_sql, "creating temporary tables");
    if (rc && rc != SEND_TRANSIENT && rc != SEND_RETRY)
        return rc;
    if (rc)
        drop_conn(p);
    return rc ? SEND_TRANSIENT : SEND_OK;
}

/*
 * Does a failed connection say the server refused us for good (wrong
 * password, no such database or role)?  libpq gives no SQLSTATE for it; the
 * server's FATAL message is there, and those that pass are the transient
 * ones.  Only used at open: later, every failure is taken as an outage.
 */
static int refused_for_good(const char *msg)
{
    if (!strstr(msg, "FATAL:"))
        return 0;
    static const char *const transient[] = {"starting up",
                                            "shutting down",
                                            "in recovery",
                                            "too many clients",
                                            "remaining connection slots",
                                            "not yet accepting"};
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++)
        if (strstr(msg, transient[i]))
            return 0;
    return 1;
}

/* Connect and set up.  SEND_OK, SEND_TRANSIENT (p->why says why), or a
 * sticky error code.  at_open: a refusal by the server is an error. */
static int pg_connect(struct rec_pg *p, int at_open)
{
    /* Defaults first: the URI's own settings, expanded from dbname, override
     * them; client_encoding comes last because the rows are UTF-8. */
    const char *const keys[] = {"connect_timeout",  "keepalives",
                                "keepalives_idle",  "keepalives_interval",
                                "keepalives_count", "tcp_user_timeout",
                                "application_name", "dbname",
                                "client_encoding",  NULL};
    const char *const vals[] = {"3", "1", "10", "3", "3", "15000", "qes", p->uri, "UTF8", NULL};
    p->conn = PQconnectdbParams(keys, vals, 1);
    if (!p->conn) {
        snprintf(p->why, sizeof p->why, "out of memory");
        return SEND_TRANSIENT;
    }
    if (PQstatus(p->conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(p->conn);
        char line[400];
        /* libpq lists one line per address tried; the last says most */
        first_line(line, sizeof line, msg);
        snprintf(p->why, sizeof p->why, "%s", line);
        int fatal = at_open && refused_for_good(msg);
        drop_conn(p);
        if (fatal)
            return pg_fail_msg(p, QES_EDB, "cannot connect: %s", line);
        return SEND_TRANSIENT;
    }
    return setup_session(p);
}

/* Try the server now if not connected and the back-off allows (or force). */
static void maybe_connect(struct rec_pg *p, int force)
{
    if (p->conn || p->err)
        return;
    int64_t now = mono_ns();
    if (!force && now < p->next_try_ns)
        return;
    int rc = pg_connect(p, 0);
    if (rc == SEND_OK) {
        p->backoff_ns = BACKOFF_MIN_NS;
        return;
    }
    p->next_try_ns = mono_ns() + p->backoff_ns;
    p->backoff_ns = p->backoff_ns * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : p->backoff_ns * 2;
}

/* ---- the spool ---------------------------------------------------------------- */

static int spool_open(struct rec_pg *p, int create)
{
    if (p->spool)
        return 0;
    char err[1024];
    int rc = qes_spool_open(p->spool_path, p->spool_max_mb, p->name, create, &p->spool, err,
                            sizeof err);
    if (rc == QES_ENOENT && !create)
        return rc;
    if (rc)
        snprintf(p->base.errmsg, sizeof p->base.errmsg, "PostgreSQL %s: %s", p->name, err);
    return rc;
}

static void warn_unreachable(struct rec_pg *p)
{
    if (p->warned_unreachable)
        return;
    p->warned_unreachable = 1;
    fprintf(stderr, "qes: WARNING: PostgreSQL %s unreachable (%s): spooling to %s\n", p->name,
            p->why[0] ? p->why : "no connection", p->spool_path);
}

/* Keep rows b in the spool; count what does not fit as lost. */
static void spool_batch(struct rec_pg *p, const struct batch *b)
{
    size_t kept = 0;
    char err[1024] = "";
    int rc = p->spool_unusable ? QES_EIO : spool_open(p, 1);
    if (!rc) {
        warn_unreachable(p);
        struct qes_spool_row *rows = malloc((b->n ? b->n : 1) * sizeof *rows);
        if (!rows) {
            rc = QES_ENOMEM;
            snprintf(err, sizeof err, "out of memory");
        } else {
            for (size_t i = 0; i < b->n; i++)
                rows[i] = (struct qes_spool_row){.kind = b->rows[i].kind,
                                                 .data = b->buf + b->rows[i].off,
                                                 .len = b->rows[i].len};
            rc = qes_spool_put(p->spool, rows, b->n, &kept, err, sizeof err);
            free(rows);
        }
    } else if (!p->spool_unusable) {
        snprintf(err, sizeof err, "%.900s", p->base.errmsg);
        p->spool_unusable = 1; /* say it once, do not retry for every batch */
    }
    if (kept && b->n && b->rows[0].kind == K_RUN)
        p->run_safe = 1;
    uint64_t lost = 0;
    for (size_t i = kept; i < b->n; i++)
        lost += b->rows[i].kind < K_RUN;
    if (!lost)
        return;
    p->base.n_lost += lost;
    if (!p->warned_full) {
        p->warned_full = 1;
        if (kept < b->n && !rc)
            fprintf(stderr,
                    "qes: ERROR: spool %s is full (%g MB) and PostgreSQL %s is unreachable: "
                    "records are being LOST; the run will end with exit status 3\n",
                    p->spool_path, p->spool_max_mb, p->name);
        else
            fprintf(stderr,
                    "qes: ERROR: PostgreSQL %s is unreachable and the spool cannot keep records "
                    "(%s): records are being LOST; the run will end with exit status 3\n",
                    p->name, err[0] ? err : "spool unusable");
    }
}

static int drain_row(void *arg, const struct qes_spool_row *row)
{
    struct batch *b = arg;
    if (row->kind < 0 || row->kind >= K_N)
        return QES_EFORMAT;
    return b_add_row(b, row->kind, row->data, row->len);
}

/*
 * Send the spool, oldest rows first, one transaction per batch_records rows,
 * until it is empty (returns 1), the server fails (0), the deadline passes
 * (0; deadline 0: none) or a sticky error (< 0).
 */
static int drain(struct rec_pg *p, int64_t deadline_ns)
{
    if (!p->spool)
        return 1;
    for (;;) {
        if (p->err)
            return p->err;
        if (!p->conn)
            return 0;
        if (deadline_ns && mono_ns() >= deadline_ns)
            return 0;
        char err[1024];
        int64_t last = 0;
        b_clear(&p->drain);
        int rc = qes_spool_read(p->spool, p->batch_records, drain_row, &p->drain, &last, err,
                                sizeof err);
        if (rc == QES_ENOMEM)
            snprintf(err, sizeof err, "out of memory reading the spool");
        else if (rc == QES_EFORMAT)
            snprintf(err, sizeof err,
                     "the spool %.900s holds a row of unknown kind: not written "
                     "by this qes",
                     p->spool_path);
        if (rc) {
            /* an unreadable spool: its rows stay there, the sink stops */
            snprintf(p->base.errmsg, sizeof p->base.errmsg, "PostgreSQL %s: %s", p->name, err);
            if (!p->err)
                p->err = rc;
            return rc;
        }
        if (!p->drain.n)
            return 1;
        rc = send_batch(p, &p->drain);
        if (rc == SEND_TRANSIENT) {
            p->next_try_ns = mono_ns() + p->backoff_ns;
            return 0;
        }
        if (rc) {
            char tail[200];
            snprintf(tail, sizeof tail, " (while sending the spool %.150s; its rows stay there)",
                     p->spool_path);
            size_t n = strlen(p->base.errmsg);
            snprintf(p->base.errmsg + n, sizeof p->base.errmsg - n, "%s", tail);
            return rc;
        }
        uint64_t removed = 0;
        if ((rc = qes_spool_remove(p->spool, last, K_RUN, &removed, err, sizeof err))) {
            snprintf(p->base.errmsg, sizeof p->base.errmsg, "PostgreSQL %s: %s", p->name, err);
            if (!p->err)
                p->err = rc;
            return rc;
        }
        p->base.n_acked += removed;
    }
}

/* ---- batches ------------------------------------------------------------------ */

/* Put the run row, kept aside, in front of the pending rows. */
static int prepend_run(struct rec_pg *p)
{
    struct batch *b = &p->pend;
    for (size_t i = 0; i < b->n; i++)
        if (b->rows[i].kind == K_RUN)
            return 0;
    if (b_add_row(b, K_RUN, p->run_line, p->run_line_len))
        return QES_ENOMEM;
    struct brow run = b->rows[b->n - 1];
    memmove(b->rows + 1, b->rows, (b->n - 1) * sizeof *b->rows);
    b->rows[0] = run;
    return 0;
}

/*
 * Commit the pending rows: to the server when it answers and the spool is
 * empty, else to the spool.  force: try the server now, whatever the
 * back-off says.
 */
static int commit_pending(struct rec_pg *p, int force)
{
    if (p->err)
        return p->err;
    if (p->have_run && !p->run_safe && p->run_line && prepend_run(p))
        return pg_fail_msg(p, QES_ENOMEM, "out of memory");
    struct batch *b = &p->pend;
    if (!b->n)
        return 0;
    maybe_connect(p, force);
    if (p->err)
        return p->err;
    int empty = 1;
    if (p->conn && p->spool)
        empty = drain(p, force ? 0 : mono_ns() + DRAIN_SLICE_NS);
    if (empty < 0)
        return empty;
    if (p->conn && empty == 1) {
        p->run_existed = 0;
        int rc = send_batch(p, b);
        if (rc == SEND_OK) {
            p->base.n_acked += b_records(b);
            if (b->n_kind[K_RUN] && p->run_existed && !p->run_safe)
                snprintf(p->base.errmsg, sizeof p->base.errmsg,
                         "PostgreSQL %s: run %s already recorded; identical records are not "
                         "duplicated",
                         p->name, p->run_id);
            if (b->n_kind[K_RUN])
                p->run_safe = 1;
            b_clear(b);
            return 0;
        }
        if (rc != SEND_TRANSIENT) {
            p->base.n_lost += b_records(b);
            b_clear(b);
            return rc;
        }
        p->next_try_ns = mono_ns() + p->backoff_ns;
    }
    if (!p->why[0])
        snprintf(p->why, sizeof p->why, "no connection");
    spool_batch(p, b);
    b_clear(b);
    return 0;
}

/* One more pending row: commit when the batch is full or old enough. */
static int count_row(struct rec_pg *p)
{
    int64_t now = mono_ns();
    if (p->pend.n == 1)
        p->t_first_ns = now;
    if (b_records(&p->pend) >= p->batch_records || now - p->t_first_ns >= p->batch_ns)
        return commit_pending(p, 0);
    return 0;
}

/* ---- operations --------------------------------------------------------------- */

static const char *kind_text(enum qes_rec_kind kind)
{
    return kind == QES_REC_SCALAR ? "scalar" : "phasor";
}

static int pg_run(struct qes_recorder *r, const struct qes_run_rec *run)
{
    struct rec_pg *p = (struct rec_pg *)r;
    if (p->err)
        return p->err;
    int rc = qes__rec_check_first_run(r, p->closed, p->have_run, run);
    if (rc)
        return rc;
    char id[37], sha[65], t[QES_UTC_LEN];
    snprintf(id, sizeof id, "%.36s", run->id);
    snprintf(sha, sizeof sha, "%.64s", run->config_sha256);
    qes_utc_format(run->t_start_ns, t);
    struct batch *b = &p->pend;
    b_row_begin(b);
    b_text(b, id);
    b_tab(b);
    b_text(b, run->command);
    b_tab(b);
    b_text(b, run->version);
    b_tab(b);
    b_text(b, run->build);
    b_tab(b);
    b_text(b, sha);
    b_tab(b);
    b_text(b, run->config_ini);
    b_tab(b);
    b_text(b, run->input_json ? run->input_json : "null");
    b_tab(b);
    b_text(b, t);
    b_tab(b);
    b_num(b, run->sample_rate_hz);
    if (b_row_end(b, K_RUN))
        return pg_fail_msg(p, QES_ENOMEM, "out of memory");
    const struct brow *row = &b->rows[b->n - 1];
    p->run_line_len = row->len;
    if (!(p->run_line = malloc(row->len)))
        return pg_fail_msg(p, QES_ENOMEM, "out of memory");
    memcpy(p->run_line, b->buf + row->off, row->len);
    memcpy(p->run_id, id, sizeof p->run_id);
    p->have_run = 1;
    return count_row(p);
}

static int too_big(struct rec_pg *p, const char *kind)
{
    snprintf(p->base.errmsg, sizeof p->base.errmsg,
             "%s: %s record with a count above the PostgreSQL bigint range (2^63 - 1)",
             p->base.target, kind);
    return QES_ERANGE;
}

/* As the SQLite sink: the fields of the other kind are not stored. */
static int pg_block(struct qes_recorder *r, const struct qes_run_rec *run,
                    const struct qes_block_rec *bl)
{
    struct rec_pg *p = (struct rec_pg *)r;
    if (p->err)
        return p->err;
    int rc = qes__rec_check_order(r, p->closed, p->have_run, p->run_id, run, "block");
    if (rc)
        return rc;
    if (!bl || !bl->measure || (bl->kind != QES_REC_PHASOR && bl->kind != QES_REC_SCALAR)) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "%s: block record without a measure or of unknown kind", r->target);
        return QES_EINVAL;
    }
    if (bl->seq > INT64_MAX || bl->sample_start > INT64_MAX || bl->n_samples > INT64_MAX)
        return too_big(p, "block");
    int ph = bl->kind == QES_REC_PHASOR;
    char t[QES_UTC_LEN], flags[256];
    qes_utc_format(bl->t_ns, t);
    qes_flags_json(bl->flags, flags, sizeof flags);
    struct batch *b = &p->pend;
    b_row_begin(b);
    b_text(b, p->run_id);
    b_tab(b);
    b_text(b, bl->measure);
    b_tab(b);
    b_text(b, bl->channel);
    b_tab(b);
    b_text(b, kind_text(bl->kind));
    b_tab(b);
    b_u64(b, ph ? bl->harmonic : 0);
    b_tab(b);
    b_u64(b, bl->seq);
    b_tab(b);
    b_u64(b, bl->sample_start);
    b_tab(b);
    b_u64(b, bl->n_samples);
    b_tab(b);
    b_text(b, t);
    const double nums[] = {ph ? bl->freq_hz : NAN, ph ? bl->x : NAN,         ph ? bl->y : NAN,
                           ph ? bl->r : NAN,       ph ? bl->phase_rad : NAN, ph ? NAN : bl->value,
                           ph ? NAN : bl->u};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        b_tab(b);
        b_num(b, nums[i]);
    }
    b_tab(b);
    b_text(b, bl->unit);
    const double q[] = {ph ? bl->enbw_hz : NAN, ph ? bl->thd : NAN, ph ? bl->sinad_db : NAN,
                        ph ? bl->sfdr_db : NAN};
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        b_tab(b);
        b_num(b, q[i]);
    }
    b_tab(b);
    b_text(b, flags);
    if (b_row_end(b, K_BLOCK))
        return pg_fail_msg(p, QES_ENOMEM, "out of memory");
    return count_row(p);
}

static int pg_summary(struct qes_recorder *r, const struct qes_run_rec *run,
                      const struct qes_summary_rec *m)
{
    struct rec_pg *p = (struct rec_pg *)r;
    if (p->err)
        return p->err;
    int rc = qes__rec_check_order(r, p->closed, p->have_run, p->run_id, run, "summary");
    if (rc)
        return rc;
    if ((rc = qes__rec_summary_valid(r, m)))
        return rc;
    int ph = m->kind == QES_REC_PHASOR;
    if (m->seq > INT64_MAX || (ph ? m->s.n : m->v.n) > INT64_MAX || m->n_excluded > INT64_MAX)
        return too_big(p, "summary");
    char flags[256];
    qes_flags_json(m->flags, flags, sizeof flags);
    char *budget = qes__summary_budget_json(m);
    if (!budget) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s: out of memory", r->target);
        return QES_ENOMEM;
    }
    const struct qes_phasor_summary *s = &m->s;
    const struct qes_scalar_summary *v = &m->v;
    struct batch *b = &p->pend;
    b_row_begin(b);
    b_text(b, p->run_id);
    b_tab(b);
    b_text(b, m->measure);
    b_tab(b);
    b_text(b, m->channel);
    b_tab(b);
    b_text(b, kind_text(m->kind));
    b_tab(b);
    b_u64(b, ph ? m->harmonic : 0);
    b_tab(b);
    b_u64(b, m->seq);
    b_tab(b);
    b_u64(b, ph ? s->n : v->n);
    b_tab(b);
    b_u64(b, m->n_excluded);
    const double a[] = {ph ? m->freq_hz : NAN, ph ? s->x : NAN,         ph ? s->y : NAN,
                        ph ? s->r : NAN,       ph ? s->phase_rad : NAN, ph ? NAN : v->value};
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        b_tab(b);
        b_num(b, a[i]);
    }
    b_tab(b);
    b_text(b, m->unit);
    const double c[] = {ph ? s->u_x : NAN, ph ? s->u_y : NAN,
                        ph ? s->u_r : NAN, ph ? s->u_phase_rad : NAN,
                        ph ? NAN : v->u,   ph ? s->dof : v->dof,
                        ph ? s->k : v->k,  ph ? s->U_r : NAN,
                        ph ? NAN : v->U,   ph ? s->coverage : v->coverage};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        b_tab(b);
        b_num(b, c[i]);
    }
    b_tab(b);
    b_text(b, budget);
    b_tab(b);
    b_text(b, flags);
    free(budget);
    if (b_row_end(b, K_SUM))
        return pg_fail_msg(p, QES_ENOMEM, "out of memory");
    return count_row(p);
}

static int pg_flush(struct qes_recorder *r)
{
    struct rec_pg *p = (struct rec_pg *)r;
    if (p->err)
        return p->err;
    if (p->pend.n)
        return commit_pending(p, 0);
    /* idle: still bring the spool home when the server is back */
    if (p->spool) {
        maybe_connect(p, 0);
        int rc = drain(p, mono_ns() + DRAIN_SLICE_NS);
        return rc < 0 ? rc : 0;
    }
    return 0;
}

/* A count as bigint text, or NULL above its range. */
static void b_count(struct batch *b, uint64_t v)
{
    if (v > INT64_MAX)
        b_put(b, "\\N", 2);
    else
        b_u64(b, v);
}

static int pg_close(struct qes_recorder *r, const struct qes_run_end *end)
{
    struct rec_pg *p = (struct rec_pg *)r;
    if (p->closed)
        return p->err;
    p->closed = 1;
    if (p->err) {
        p->base.n_lost += b_records(&p->pend);
        b_clear(&p->pend);
        return p->err;
    }
    if (p->have_run && end) {
        char t[QES_UTC_LEN], t_end[QES_UTC_LEN];
        qes_utc_format(qes_utc_now_ns(), t);
        qes_utc_format(end->t_end_ns, t_end);
        struct batch *b = &p->pend;
        b_row_begin(b);
        b_text(b, p->run_id);
        b_tab(b);
        char st[16];
        snprintf(st, sizeof st, "%d", end->status);
        b_text(b, st);
        b_tab(b);
        b_text(b, t);
        const uint64_t counts[] = {end->samples,    end->lost,           end->gaps,
                                   end->reconnects, end->frames_dropped, end->latency_n};
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
            b_tab(b);
            b_count(b, counts[i]);
        }
        const double nums[] = {end->latency_p50_us, end->latency_p99_us, end->latency_max_us,
                               end->seconds};
        for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
            b_tab(b);
            b_num(b, nums[i]);
        }
        b_tab(b);
        b_text(b, t_end);
        if (b_row_end(b, K_END))
            return pg_fail_msg(p, QES_ENOMEM, "out of memory");
    }
    int rc = commit_pending(p, 1);
    if (rc)
        return rc;
    /* Bring the spool home, waiting a little for a server that is away. */
    int64_t deadline = mono_ns() + CLOSE_WAIT_NS;
    while (p->spool) {
        maybe_connect(p, 1);
        int done = drain(p, 0);
        if (done < 0)
            return done;
        if (done == 1 || mono_ns() >= deadline)
            break;
        struct timespec ts = {0, 250000000L};
        nanosleep(&ts, NULL);
    }
    if (p->have_run && !p->run_safe) {
        p->base.n_lost++;
        snprintf(r->errmsg, sizeof r->errmsg,
                 "PostgreSQL %s: the run record could be neither sent nor spooled", p->name);
    }
    if (p->spool) {
        uint64_t n_rows = 0, n_rec = 0;
        char err[1024];
        if (qes_spool_count(p->spool, K_RUN, &n_rows, &n_rec, err, sizeof err) == 0 && n_rows) {
            snprintf(r->errmsg, sizeof r->errmsg,
                     "PostgreSQL %s unreachable: %" PRIu64 " record(s) remain in the spool %s "
                     "(kept, not lost); the next qes run with this spool and database sends "
                     "them",
                     p->name, n_rec, p->spool_path);
            fprintf(stderr, "qes: WARNING: %s\n", r->errmsg);
        }
    }
    return 0;
}

static void pg_destroy(struct qes_recorder *r)
{
    struct rec_pg *p = (struct rec_pg *)r;
    /* destroyed without close (an error path): keep what is pending */
    if (!p->closed && !p->err && p->pend.n)
        commit_pending(p, 0);
    PQfinish(p->conn);
    qes_spool_close(p->spool);
    b_free(&p->pend);
    b_free(&p->drain);
    free(p->run_line);
    if (p->uri) {
        memset(p->uri, 0, strlen(p->uri));
        free(p->uri);
    }
    free(p);
}

static const struct qes_recorder_ops pg_ops = {
        .name = "postgresql",
        .run = pg_run,
        .block = pg_block,
        .summary = pg_summary,
        .close = pg_close,
        .flush = pg_flush,
        .destroy = pg_destroy,
};

/* ---- opening ------------------------------------------------------------------ */

/* postgresql://USER@HOST:PORT/DB from the URI, without its password.  0, or
 * -1 when libpq cannot parse it. */
static int redacted_name(const char *uri, char *out, size_t len)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &msg);
    PQfreemem(msg); /* may quote the URI */
    if (!opts)
        return -1;
    const char *host = NULL, *hostaddr = NULL, *port = NULL, *db = NULL, *user = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (!strcmp(o->keyword, "host"))
            host = o->val;
        else if (!strcmp(o->keyword, "hostaddr"))
            hostaddr = o->val;
        else if (!strcmp(o->keyword, "port"))
            port = o->val;
        else if (!strcmp(o->keyword, "dbname"))
            db = o->val;
        else if (!strcmp(o->keyword, "user"))
            user = o->val;
    }
    snprintf(out, len, "postgresql://%.200s%s%.300s%s%.100s/%.300s", user ? user : "",
             user ? "@" : "",
             host       ? host
             : hostaddr ? hostaddr
                        : "(local socket)",
             port ? ":" : "", port ? port : "", db ? db : "(default database)");
    PQconninfoFree(opts);
    return 0;
}

int qes_rec_pg_open(const char *target, const struct qes_recorder_opts *opts,
                    struct qes_recorder **out, char *err, size_t errlen)
{
    struct qes_recorder_opts none = {0};
    struct rec_pg *p;
    int rc;
    if (!out || !target || !*target) {
        qes_errf(err, errlen, "PostgreSQL sink: no connection URI");
        return QES_EINVAL;
    }
    *out = NULL;
    if (!opts)
        opts = &none;
    if ((opts->batch_s && !(opts->batch_s > 0 && opts->batch_s <= 3600)) ||
        (opts->spool_max_mb && !(opts->spool_max_mb > 0)) ||
        (opts->spool_path && !*opts->spool_path) ||
        (opts->spool_path && strlen(opts->spool_path) >= sizeof p->spool_path)) {
        qes_errf(err, errlen,
                 "PostgreSQL sink: batch_s outside (0, 3600] s, spool_max_mb <= 0 "
                 "or a bad spool path");
        return QES_EINVAL;
    }
    if (!(p = calloc(1, sizeof *p))) {
        qes_errf(err, errlen, "PostgreSQL sink: out of memory");
        return QES_ENOMEM;
    }
    p->base.ops = &pg_ops;
    if (redacted_name(target, p->name, sizeof p->name)) {
        qes_errf(err, errlen,
                 "PostgreSQL sink: the connection URI cannot be parsed (libpq "
                 "refused its syntax; see 'Connection URIs' in the libpq manual)");
        free(p);
        return QES_EINVAL;
    }
    snprintf(p->base.target, sizeof p->base.target, "%s", p->name);
    if (!(p->uri = strdup(target))) {
        qes_errf(err, errlen, "PostgreSQL sink: out of memory");
        free(p);
        return QES_ENOMEM;
    }
    snprintf(p->spool_path, sizeof p->spool_path, "%s",
             opts->spool_path ? opts->spool_path : DEF_SPOOL);
    p->spool_max_mb = opts->spool_max_mb ? opts->spool_max_mb : DEF_SPOOL_MB;
    p->batch_ns = (int64_t)((opts->batch_s ? opts->batch_s : DEF_BATCH_S) * 1e9);
    p->batch_records = opts->batch_records ? opts->batch_records : DEF_BATCH_RECORDS;
    p->backoff_ns = BACKOFF_MIN_NS;

    rc = pg_connect(p, 1);
    if (rc < 0)
        goto err_free;
    if (rc == SEND_TRANSIENT) {
        p->next_try_ns = mono_ns() + p->backoff_ns;
        p->backoff_ns *= 2;
    }
    /* A spool left by an earlier run: send it now; create one when the
     * server is away. */
    rc = spool_open(p, rc == SEND_TRANSIENT);
    if (rc && rc != QES_ENOENT) {
        if (!p->conn) {
            size_t n = strlen(p->base.errmsg);
            snprintf(p->base.errmsg + n, sizeof p->base.errmsg - n,
                     "; and the server is unreachable (%s)", p->why);
        }
        goto err_free;
    }
    if (p->spool && p->conn) {
        int done = drain(p, 0);
        if (done < 0) {
            rc = done;
            goto err_free;
        }
    }
    if (!p->conn)
        warn_unreachable(p);
    p->base.errmsg[0] = '\0';
    *out = &p->base;
    return 0;

err_free:
    qes_errf(err, errlen, "%s", p->base.errmsg);
    p->closed = 1;
    pg_destroy(&p->base);
    return rc;
}
