/*
 * The SQLite sink (the default recorder of record).
 *
 * Durability: WAL journal, foreign keys on, busy timeout 5 s so that a reader
 * (a plot, a query) never makes the recorder fail.  The synchronous mode is an
 * option (opts->sqlite_synchronous), because it trades durability for speed:
 *   FULL   (default) the WAL is fsync'd at every commit: an acknowledged
 *          record survives a process crash, a kernel panic and a power cut.
 *   NORMAL the WAL is fsync'd only at checkpoints: an acknowledged record
 *          survives a process crash (kill -9), but the last transactions
 *          before a power cut or kernel panic may be lost (the database stays
 *          consistent).
 *   OFF    no fsync at all: fastest, survives a process crash, but a power
 *          cut may lose recent transactions and can corrupt the file.
 * Only FULL makes n_acked a promise that holds through a power cut.
 *
 * Batching: records are batched into transactions: BEGIN IMMEDIATE at the
 * first record, COMMIT once opts->batch_s of host time (CLOCK_MONOTONIC;
 * default 1 s, 0 < batch_s <= 3600) has passed since the BEGIN or
 * opts->batch_records records (default 10000, 1..10000000) are in it, at
 * flush() and at close.  One fsync per commit instead of one per record is
 * what makes synchronous=FULL affordable; the price is that a crash loses at
 * most the open batch, which was never acknowledged.  The clock is read when
 * a record arrives, so the time bound is enforced at the next record or at
 * flush(), which the recorder thread calls when the pipeline goes idle.
 *
 * Acknowledgement: a block or summary record counts in base.n_acked only once
 * the COMMIT of its transaction has returned.  For tests and diagnostics,
 * when the environment variable QES_ACK_LOG names a file at open, the sink
 * appends "<n_acked>\n" to it after every commit and fsyncs it, so that a
 * process killed at any moment leaves behind a lower bound of what it
 * acknowledged (the kill -9 acceptance test reads it).  The log costs one
 * more fsync per commit; a failure to write it is an error (QES_EIO).
 *
 * Failures of storage: any SQLite error (SQLITE_FULL, SQLITE_IOERR such as a
 * failed fsync, ...) is QES_ENOSPC (full disk) or QES_EDB, sticky, with a
 * message naming the file, SQLite's message and the system error.  The open
 * batch is rolled back (never acknowledged, so nothing acknowledged is lost;
 * the message tells how many records were committed before) and nothing
 * more is written to the file, not even the run status at close: after a
 * failed fsync the kernel may have dropped the dirty pages, so retrying could
 * report as durable what is not.  SQLite's WAL keeps the file consistent:
 * what is in it is exactly the committed transactions (a transaction whose
 * COMMIT failed may or may not be there after recovery, never half of one).
 *
 * Idempotent replays.  The run id is derived from the configuration and input
 * hashes, and (run, measure, harmonic, seq) is UNIQUE, so replaying a spool
 * into the same file must neither duplicate rows nor silently keep rows that
 * differ from the new ones:
 *   - a run record whose id is already in `runs` with a different
 *     config_sha256 or input is refused (QES_EDB);
 *   - with the same ones, the sink notes in errmsg that the run was already
 *     recorded (the call still returns 0) and goes on;
 *   - every insert is INSERT ... ON CONFLICT DO NOTHING; when a row was
 *     already there (no change), it is compared column by column with the new
 *     record (NULL-aware, doubles exactly) and a difference is QES_EDB.
 * So identical replays are no-ops and any disagreement is an error.  Such a
 * disagreement is not a storage failure: what was recorded is committed at
 * close, with the run's status.
 *
 * Schema version 1 lives in `meta`; a newer version is refused, and so is a
 * file holding tables of these names without a `meta` table.  Columns that a
 * later qes added to version 1 (runs: how the run ended, below) are added
 * with ALTER TABLE when a file without them is opened for recording; they
 * stay NULL for runs recorded without them, which is how `qes export` knows
 * to write those runs as the qes that recorded them did.  The version stays
 * 1 because such a file is still one an older qes can record into (its
 * statements name their columns) and read.
 *
 * How the run ended: at close, runs.status (the exit status), closed_utc
 * (the host clock at close) and the fields of struct qes_run_end in columns
 * of the same names (samples, lost, gaps, reconnects, frames_dropped,
 * latency_n: INTEGER, a count above 2^63 - 1 stored as NULL;
 * latency_p50_us, latency_p99_us, latency_max_us, seconds: REAL, NULL when
 * not finite; t_end: the UTC text).  A replay of a recorded run sets them
 * again (to the same values: a replay's run_end depends only on its input).
 *
 * Non-finite numbers are stored as NULL (dof NULL = infinite).  Note that
 * SQLite column names are case-insensitive, so the expanded uncertainties U_r
 * and U cannot share the summaries table with u_r and u under those names:
 * they are the columns `U_r_expanded` and `U_expanded`.
 */
#include "pipeline/rec_int.h"
#include "pipeline/record.h"
#include "common/err.h"
#include "common/utctime.h"

#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 1
/* Defaults and bounds of the options (see the top of this file). */
#define BATCH_RECORDS     10000
#define BATCH_RECORDS_MAX 10000000u
#define BATCH_S           1.0
#define BATCH_S_MAX       3600.0

/*
 * kind is 'phasor' or 'scalar'.  Phasor rows fill harmonic, freq_hz, x, y, r,
 * phase_rad (blocks also enbw_hz and the quality figures thd, sinad_db,
 * sfdr_db; summaries u_x .. u_phase_rad and U_r_expanded); scalar rows have
 * harmonic 0 and fill value and u (summaries also U_expanded = k * u), the
 * phasor columns staying NULL.  dof, k, coverage, budget belong to both.
 */
static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value NOT NULL);"
        "CREATE TABLE IF NOT EXISTS runs("
        " id TEXT PRIMARY KEY, command TEXT, version TEXT, build TEXT, config_sha256 TEXT,"
        " config TEXT, input TEXT, t_start TEXT, sample_rate_hz REAL, status INTEGER,"
        " closed_utc TEXT, samples INTEGER, lost INTEGER, gaps INTEGER, reconnects INTEGER,"
        " frames_dropped INTEGER, latency_n INTEGER, latency_p50_us REAL,"
        " latency_p99_us REAL, latency_max_us REAL, seconds REAL, t_end TEXT);"
        "CREATE TABLE IF NOT EXISTS blocks("
        " run TEXT NOT NULL REFERENCES runs(id), measure TEXT NOT NULL, channel TEXT,"
        " kind TEXT CHECK(kind IN ('phasor', 'scalar')), harmonic INTEGER NOT NULL,"
        " seq INTEGER NOT NULL, sample_start INTEGER, n_samples INTEGER, t TEXT, freq_hz REAL,"
        " x REAL, y REAL, r REAL, phase_rad REAL, value REAL, u REAL, unit TEXT, enbw_hz REAL,"
        " thd REAL, sinad_db REAL, sfdr_db REAL, flags TEXT,"
        " UNIQUE(run, measure, harmonic, seq));"
        "CREATE TABLE IF NOT EXISTS summaries("
        " run TEXT NOT NULL REFERENCES runs(id), measure TEXT NOT NULL, channel TEXT,"
        " kind TEXT CHECK(kind IN ('phasor', 'scalar')), harmonic INTEGER NOT NULL,"
        " seq INTEGER NOT NULL, n_blocks INTEGER, n_excluded INTEGER, freq_hz REAL, x REAL,"
        " y REAL, r REAL, phase_rad REAL, value REAL, unit TEXT, u_x REAL, u_y REAL, u_r REAL,"
        " u_phase_rad REAL, u REAL, dof REAL, k REAL, U_r_expanded REAL, U_expanded REAL,"
        " coverage REAL, budget TEXT, flags TEXT, UNIQUE(run, measure, harmonic, seq));"
        "INSERT INTO meta(key, value) VALUES('schema_version', 1) ON CONFLICT DO NOTHING;";

/* Columns of runs added to schema version 1 after its release, in order:
 * added with ALTER TABLE to a file that lacks them (see the top). */
static const struct {
    const char *name, *type;
} runs_added[] = {
        {"samples", "INTEGER"},
        {"lost", "INTEGER"},
        {"gaps", "INTEGER"},
        {"reconnects", "INTEGER"},
        {"frames_dropped", "INTEGER"},
        {"latency_n", "INTEGER"},
        {"latency_p50_us", "REAL"},
        {"latency_p99_us", "REAL"},
        {"latency_max_us", "REAL"},
        {"seconds", "REAL"},
        {"t_end", "TEXT"},
};

/* Every column of the tables above, to recognise a file written by a qes of
 * the same schema version but an earlier (pre-release) layout. */
static const char columns_sql[] =
        "SELECT kind, value, u, enbw_hz, thd, sinad_db, sfdr_db FROM blocks LIMIT 0;"
        "SELECT kind, value, u, U_expanded FROM summaries LIMIT 0";

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_SEL_RUN,
    ST_INS_RUN,
    ST_INS_BLOCK,
    ST_CHK_BLOCK,
    ST_INS_SUM,
    ST_CHK_SUM,
    ST_STATUS,
    ST_COUNT
};

/* The insert and its check take the same parameters in the same order. */
static const char *const stmt_sql[ST_COUNT] = {
        [ST_BEGIN] = "BEGIN IMMEDIATE",
        [ST_COMMIT] = "COMMIT",
        [ST_SEL_RUN] = "SELECT config_sha256, input FROM runs WHERE id = ?1",
        [ST_INS_RUN] = "INSERT INTO runs(id, command, version, build, config_sha256, config,"
                       " input, t_start, sample_rate_hz) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                       " ON CONFLICT DO NOTHING",
        [ST_INS_BLOCK] = "INSERT INTO blocks(run, measure, channel, kind, harmonic, seq,"
                         " sample_start, n_samples, t, freq_hz, x, y, r, phase_rad, value, u,"
                         " unit, enbw_hz, thd, sinad_db, sfdr_db, flags)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
                         " ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22) ON CONFLICT DO NOTHING",
        [ST_CHK_BLOCK] = "SELECT 1 FROM blocks WHERE run = ?1 AND measure = ?2 AND channel IS ?3"
                         " AND kind IS ?4 AND harmonic = ?5 AND seq = ?6 AND sample_start IS ?7"
                         " AND n_samples IS ?8 AND t IS ?9 AND freq_hz IS ?10 AND x IS ?11"
                         " AND y IS ?12 AND r IS ?13 AND phase_rad IS ?14 AND value IS ?15"
                         " AND u IS ?16 AND unit IS ?17 AND enbw_hz IS ?18 AND thd IS ?19"
                         " AND sinad_db IS ?20 AND sfdr_db IS ?21 AND flags IS ?22",
        [ST_INS_SUM] = "INSERT INTO summaries(run, measure, channel, kind, harmonic, seq, n_blocks,"
                       " n_excluded, freq_hz, x, y, r, phase_rad, value, unit, u_x, u_y, u_r,"
                       " u_phase_rad, u, dof, k, U_r_expanded, U_expanded, coverage, budget,"
                       " flags) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
                       " ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)"
                       " ON CONFLICT DO NOTHING",
        [ST_CHK_SUM] = "SELECT 1 FROM summaries WHERE run = ?1 AND measure = ?2"
                       " AND channel IS ?3 AND kind IS ?4 AND harmonic = ?5 AND seq = ?6"
                       " AND n_blocks IS ?7 AND n_excluded IS ?8 AND freq_hz IS ?9 AND x IS ?10"
                       " AND y IS ?11 AND r IS ?12 AND phase_rad IS ?13 AND value IS ?14"
                       " AND unit IS ?15 AND u_x IS ?16 AND u_y IS ?17 AND u_r IS ?18"
                       " AND u_phase_rad IS ?19 AND u IS ?20 AND dof IS ?21 AND k IS ?22"
                       " AND U_r_expanded IS ?23 AND U_expanded IS ?24 AND coverage IS ?25"
                       " AND budget IS ?26 AND flags IS ?27",
        [ST_STATUS] = "UPDATE runs SET status = ?2, closed_utc = ?3, samples = ?4, lost = ?5,"
                      " gaps = ?6, reconnects = ?7, frames_dropped = ?8, latency_n = ?9,"
                      " latency_p50_us = ?10, latency_p99_us = ?11, latency_max_us = ?12,"
                      " seconds = ?13, t_end = ?14 WHERE id = ?1",
};

struct rec_sqlite {
    struct qes_recorder base;
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    int err;    /* first failure, returned again by every later record */
    int closed; /* close() ran */
    int have_run;
    int replay;              /* the run was already in the file */
    uint64_t n_present;      /* records found already recorded, identical */
    int broken;              /* a storage failure: nothing more is written (1; 2 once settled) */
    uint64_t pending;        /* block and summary records in the open transaction */
    struct timespec t_begin; /* CLOCK_MONOTONIC at its BEGIN */
    int64_t batch_ns;        /* options: a transaction commits once this old, */
    unsigned batch_max;      /* or holding this many records */
    int ack_fd;              /* QES_ACK_LOG, or -1 */
    char run_id[37];
    char ack_path[4096];
};

/* ---- errors ------------------------------------------------------------------ */

static int sq_code(struct rec_sqlite *s, int rc)
{
    if ((rc & 0xff) == SQLITE_FULL)
        return QES_ENOSPC;
    if ((rc & 0xff) == SQLITE_IOERR && s->db && sqlite3_system_errno(s->db) == ENOSPC)
        return QES_ENOSPC;
    return QES_EDB;
}

/* The system call behind an SQLite I/O error, for the message. */
static const char *io_call(int xrc)
{
    switch (xrc) {
    case SQLITE_IOERR_FSYNC:
    case SQLITE_IOERR_DIR_FSYNC:
        return "fsync";
    case SQLITE_IOERR_WRITE:
        return "write";
    case SQLITE_IOERR_SHORT_READ:
    case SQLITE_IOERR_READ:
        return "read";
    case SQLITE_IOERR_TRUNCATE:
        return "truncate";
    case SQLITE_IOERR_FSTAT:
        return "fstat";
    case SQLITE_IOERR_SHMMAP:
    case SQLITE_IOERR_SHMOPEN:
    case SQLITE_IOERR_SHMSIZE:
        return "shared memory";
    case SQLITE_IOERR_LOCK:
    case SQLITE_IOERR_RDLOCK:
    case SQLITE_IOERR_UNLOCK:
        return "lock";
    default:
        return NULL;
    }
}

/*
 * Record an SQLite failure: code, message with the file name, SQLite's
 * message and, for an I/O error, the system call and errno.  Every SQLite
 * error is a storage failure: the sink stops writing (see the top).
 */
static int sq_fail(struct rec_sqlite *s, int rc, const char *what)
{
    int code = sq_code(s, rc);
    char sys[200] = "";
    if (s->db && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL ||
                  (rc & 0xff) == SQLITE_CANTOPEN)) {
        int e = sqlite3_system_errno(s->db);
        /* SQLite keeps no errno for SQLITE_FULL; its unix VFS returns it
         * for ENOSPC (max_page_count is not used here). */
        if ((rc & 0xff) == SQLITE_FULL)
            e = ENOSPC;
        const char *call = io_call(sqlite3_extended_errcode(s->db));
        if (call || e)
            snprintf(sys, sizeof sys, " (%s%s%s)", call ? call : "", call && e ? ": " : "",
                     e ? strerror(e) : " failed");
    }
    snprintf(s->base.errmsg, sizeof s->base.errmsg, "SQLite database '%s': %s: %s%s",
             s->base.target, what, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), sys);
    if (!s->err)
        s->err = code;
    if (!s->broken)
        s->broken = 1;
    return code;
}

/* Record a failure with a message of our own. */
static int sq_fail_msg(struct rec_sqlite *s, int code, const char *msg)
{
    snprintf(s->base.errmsg, sizeof s->base.errmsg, "SQLite database '%s': %s", s->base.target,
             msg);
    if (!s->err)
        s->err = code;
    return code;
}

/* Step a statement that returns no rows, then reset it. */
static int step_done(struct rec_sqlite *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int code = rc == SQLITE_DONE ? 0 : sq_fail(s, rc, what);
    sqlite3_reset(st);
    return code;
}

/*
 * After a storage failure, at the end of the operation (every statement is
 * reset by then): roll back the open batch, whose records were never
 * acknowledged.  SQLite may have rolled it back already (it does for
 * SQLITE_FULL and some I/O errors).  Rolling back a WAL transaction only
 * forgets frames; it cannot damage the file.  The message says what is safe.
 * These records are not counted in base.n_lost: that counts records a working
 * sink had to drop (exit status 3); here the run fails (exit status 2) and no
 * later record is recorded either.  Returns rc.
 */
static int settle(struct rec_sqlite *s, int rc)
{
    if (s->broken != 1)
        return rc;
    if (s->db && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (s->pending || s->base.n_acked) {
        size_t n = strlen(s->base.errmsg);
        snprintf(s->base.errmsg + n, sizeof s->base.errmsg - n,
                 "; the %llu record(s) committed before are safe; the %llu record(s) of the "
                 "open batch were not acknowledged and later ones are not recorded",
                 (unsigned long long)s->base.n_acked, (unsigned long long)s->pending);
    }
    s->pending = 0;
    s->broken = 2; /* settled: later calls return the error and write nothing */
    return rc;
}

/* Append n_acked to the QES_ACK_LOG file and make it durable. */
static int ack_log(struct rec_sqlite *s)
{
    char line[32];
    int n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)s->base.n_acked);
    const char *p = line;
    while (n > 0) {
        ssize_t w = write(s->ack_fd, p, (size_t)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto err;
        p += w;
        n -= (int)w;
    }
    if (fsync(s->ack_fd) != 0)
        goto err;
    return 0;
err:
    snprintf(s->base.errmsg, sizeof s->base.errmsg,
             "SQLite database '%s': acknowledgement log '%.2048s' (QES_ACK_LOG): %s",
             s->base.target, s->ack_path, strerror(errno));
    if (!s->err)
        s->err = QES_EIO;
    return QES_EIO;
}

/* ---- transactions ------------------------------------------------------------ */

static int txn_enter(struct rec_sqlite *s)
{
    if (!sqlite3_get_autocommit(s->db))
        return 0;
    int rc = step_done(s, s->st[ST_BEGIN], "BEGIN");
    if (!rc)
        clock_gettime(CLOCK_MONOTONIC, &s->t_begin);
    return rc;
}

/* Commit the open transaction; its records are acknowledged once COMMIT
 * has returned (after the fsync of the WAL with synchronous=FULL). */
static int txn_commit(struct rec_sqlite *s)
{
    if (sqlite3_get_autocommit(s->db))
        return 0;
    char what[80];
    snprintf(what, sizeof what, "committing %llu record(s)", (unsigned long long)s->pending);
    int rc = step_done(s, s->st[ST_COMMIT], what);
    if (rc)
        return rc;
    s->base.n_acked += s->pending;
    s->pending = 0;
    return s->ack_fd >= 0 ? ack_log(s) : 0;
}

/* One more record in the open transaction (is_data: a block or summary
 * record, acknowledged at commit): commit when the batch is full or old
 * enough. */
static int txn_count(struct rec_sqlite *s, int is_data)
{
    if (is_data && ++s->pending >= s->batch_max)
        return txn_commit(s);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)(now.tv_sec - s->t_begin.tv_sec) * 1000000000LL +
                 (now.tv_nsec - s->t_begin.tv_nsec);
    return ns >= s->batch_ns ? txn_commit(s) : 0;
}

/* ---- binding ----------------------------------------------------------------- */

/* Text, or NULL; the caller keeps s alive until the statement is reset. */
static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* A double, or NULL when not finite. */
static int bind_real(sqlite3_stmt *st, int i, double v)
{
    return isfinite(v) ? sqlite3_bind_double(st, i, v) : sqlite3_bind_null(st, i);
}

/* Callers have checked v <= INT64_MAX. */
static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

struct block_text {
    char t[QES_UTC_LEN];
    char flags[256];
};

static const char *kind_text(enum qes_rec_kind kind)
{
    return kind == QES_REC_SCALAR ? "scalar" : "phasor";
}

/*
 * The fields of the other kind are not stored: a scalar row has harmonic 0
 * and NULL phasor columns, a phasor row NULL value and u, whatever the record
 * held there.  That keeps the UNIQUE key and the replay comparison to what
 * the record means.
 */
static int bind_block(sqlite3_stmt *st, const char *run_id, const struct qes_block_rec *b,
                      const struct block_text *tx)
{
    int ph = b->kind == QES_REC_PHASOR;
    int rc = bind_text(st, 1, run_id);
    rc = rc ? rc : bind_text(st, 2, b->measure);
    rc = rc ? rc : bind_text(st, 3, b->channel);
    rc = rc ? rc : bind_text(st, 4, kind_text(b->kind));
    rc = rc ? rc : bind_u64(st, 5, ph ? b->harmonic : 0);
    rc = rc ? rc : bind_u64(st, 6, b->seq);
    rc = rc ? rc : bind_u64(st, 7, b->sample_start);
    rc = rc ? rc : bind_u64(st, 8, b->n_samples);
    rc = rc ? rc : bind_text(st, 9, tx->t);
    rc = rc ? rc : bind_real(st, 10, ph ? b->freq_hz : NAN);
    rc = rc ? rc : bind_real(st, 11, ph ? b->x : NAN);
    rc = rc ? rc : bind_real(st, 12, ph ? b->y : NAN);
    rc = rc ? rc : bind_real(st, 13, ph ? b->r : NAN);
    rc = rc ? rc : bind_real(st, 14, ph ? b->phase_rad : NAN);
    rc = rc ? rc : bind_real(st, 15, ph ? NAN : b->value);
    rc = rc ? rc : bind_real(st, 16, ph ? NAN : b->u);
    rc = rc ? rc : bind_text(st, 17, b->unit);
    rc = rc ? rc : bind_real(st, 18, ph ? b->enbw_hz : NAN);
    rc = rc ? rc : bind_real(st, 19, ph ? b->thd : NAN);
    rc = rc ? rc : bind_real(st, 20, ph ? b->sinad_db : NAN);
    rc = rc ? rc : bind_real(st, 21, ph ? b->sfdr_db : NAN);
    rc = rc ? rc : bind_text(st, 22, tx->flags);
    return rc;
}

static int bind_summary(sqlite3_stmt *st, const char *run_id, const struct qes_summary_rec *m,
                        const char *budget, const char *flags)
{
    const struct qes_phasor_summary *p = &m->s;
    const struct qes_scalar_summary *v = &m->v;
    int ph = m->kind == QES_REC_PHASOR;
    int rc = bind_text(st, 1, run_id);
    rc = rc ? rc : bind_text(st, 2, m->measure);
    rc = rc ? rc : bind_text(st, 3, m->channel);
    rc = rc ? rc : bind_text(st, 4, kind_text(m->kind));
    rc = rc ? rc : bind_u64(st, 5, ph ? m->harmonic : 0);
    rc = rc ? rc : bind_u64(st, 6, m->seq);
    rc = rc ? rc : bind_u64(st, 7, ph ? p->n : v->n);
    rc = rc ? rc : bind_u64(st, 8, m->n_excluded);
    rc = rc ? rc : bind_real(st, 9, ph ? m->freq_hz : NAN);
    rc = rc ? rc : bind_real(st, 10, ph ? p->x : NAN);
    rc = rc ? rc : bind_real(st, 11, ph ? p->y : NAN);
    rc = rc ? rc : bind_real(st, 12, ph ? p->r : NAN);
    rc = rc ? rc : bind_real(st, 13, ph ? p->phase_rad : NAN);
    rc = rc ? rc : bind_real(st, 14, ph ? NAN : v->value);
    rc = rc ? rc : bind_text(st, 15, m->unit);
    rc = rc ? rc : bind_real(st, 16, ph ? p->u_x : NAN);
    rc = rc ? rc : bind_real(st, 17, ph ? p->u_y : NAN);
    rc = rc ? rc : bind_real(st, 18, ph ? p->u_r : NAN);
    rc = rc ? rc : bind_real(st, 19, ph ? p->u_phase_rad : NAN);
    rc = rc ? rc : bind_real(st, 20, ph ? NAN : v->u);
    rc = rc ? rc : bind_real(st, 21, ph ? p->dof : v->dof);
    rc = rc ? rc : bind_real(st, 22, ph ? p->k : v->k);
    rc = rc ? rc : bind_real(st, 23, ph ? p->U_r : NAN);
    rc = rc ? rc : bind_real(st, 24, ph ? NAN : v->U);
    rc = rc ? rc : bind_real(st, 25, ph ? p->coverage : v->coverage);
    rc = rc ? rc : bind_text(st, 26, budget);
    rc = rc ? rc : bind_text(st, 27, flags);
    return rc;
}

/*
 * After an insert that changed nothing (a row with this key exists): is the
 * existing row identical?  chk is bound already.  0 when it is.
 */
static int verify_present(struct rec_sqlite *s, sqlite3_stmt *chk, const char *kind,
                          const char *measure, unsigned harmonic, uint64_t seq)
{
    int rc = sqlite3_step(chk);
    int code = 0;
    if (rc == SQLITE_ROW) {
        s->n_present++;
    } else if (rc == SQLITE_DONE) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "the %s record (run %s, measure '%.200s', harmonic %u, seq %llu) is already "
                 "recorded with different values; a replay must reproduce a recorded run "
                 "exactly: record into another file",
                 kind, s->run_id, measure, harmonic, (unsigned long long)seq);
        code = sq_fail_msg(s, QES_EDB, msg);
    } else {
        code = sq_fail(s, rc, "comparing with a recorded row");
    }
    sqlite3_reset(chk);
    return code;
}

/* ---- operations -------------------------------------------------------------- */

static int check_run(struct rec_sqlite *s, const struct qes_run_rec *run, const char *what)
{
    return qes__rec_check_order(&s->base, s->closed, s->have_run, s->run_id, run, what);
}

static int run_record(struct qes_recorder *r, const struct qes_run_rec *run)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    if (s->err)
        return s->err;
    int rc = qes__rec_check_first_run(r, s->closed, s->have_run, run);
    if (rc)
        return rc;
    char id[37], sha[65], t[QES_UTC_LEN];
    snprintf(id, sizeof id, "%.36s", run->id);
    snprintf(sha, sizeof sha, "%.64s", run->config_sha256);
    qes_utc_format(run->t_start_ns, t);
    const char *input = run->input_json ? run->input_json : "null";
    rc = txn_enter(s);
    if (rc)
        return rc;

    sqlite3_stmt *sel = s->st[ST_SEL_RUN];
    int src = bind_text(sel, 1, id);
    src = src ? src : sqlite3_step(sel);
    if (src == SQLITE_ROW) {
        const char *old_sha = (const char *)sqlite3_column_text(sel, 0);
        const char *old_input = (const char *)sqlite3_column_text(sel, 1);
        int same = old_sha && old_input && !strcmp(old_sha, sha) && !strcmp(old_input, input);
        char msg[700];
        if (!same)
            snprintf(msg, sizeof msg,
                     "run %s is already recorded with a different configuration or input "
                     "(config_sha256 %.64s there, %s here); refusing to mix two runs under one "
                     "id: record into another file",
                     id, old_sha ? old_sha : "NULL", sha);
        sqlite3_reset(sel);
        if (!same)
            return sq_fail_msg(s, QES_EDB, msg);
        s->replay = 1;
        snprintf(r->errmsg, sizeof r->errmsg,
                 "SQLite database '%s': run %s already recorded; identical records are not "
                 "duplicated",
                 r->target, id);
    } else if (src == SQLITE_DONE) {
        sqlite3_reset(sel);
        sqlite3_stmt *ins = s->st[ST_INS_RUN];
        src = bind_text(ins, 1, id);
        src = src ? src : bind_text(ins, 2, run->command);
        src = src ? src : bind_text(ins, 3, run->version);
        src = src ? src : bind_text(ins, 4, run->build);
        src = src ? src : bind_text(ins, 5, sha);
        src = src ? src : bind_text(ins, 6, run->config_ini);
        src = src ? src : bind_text(ins, 7, input);
        src = src ? src : bind_text(ins, 8, t);
        src = src ? src : bind_real(ins, 9, run->sample_rate_hz);
        if (src) {
            sqlite3_reset(ins);
            return sq_fail(s, src, "binding the run record");
        }
        if ((rc = step_done(s, ins, "inserting the run record")))
            return rc;
    } else {
        rc = sq_fail(s, src, "looking up the run");
        sqlite3_reset(sel);
        return rc;
    }
    memcpy(s->run_id, id, sizeof s->run_id);
    s->have_run = 1;
    return txn_count(s, 0);
}

static int too_big(struct rec_sqlite *s, const char *kind)
{
    snprintf(s->base.errmsg, sizeof s->base.errmsg,
             "%s: %s record with a count above the SQLite integer range (2^63 - 1)", s->base.target,
             kind);
    return QES_ERANGE;
}

static int block_record(struct qes_recorder *r, const struct qes_run_rec *run,
                        const struct qes_block_rec *b)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    if (s->err)
        return s->err;
    int rc = check_run(s, run, "block");
    if (rc)
        return rc;
    if (!b || !b->measure || (b->kind != QES_REC_PHASOR && b->kind != QES_REC_SCALAR)) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "%s: block record without a measure or of unknown kind", r->target);
        return QES_EINVAL;
    }
    if (b->seq > INT64_MAX || b->sample_start > INT64_MAX || b->n_samples > INT64_MAX)
        return too_big(s, "block");
    struct block_text tx;
    qes_utc_format(b->t_ns, tx.t);
    qes_flags_json(b->flags, tx.flags, sizeof tx.flags);
    if ((rc = txn_enter(s)))
        return rc;
    sqlite3_stmt *ins = s->st[ST_INS_BLOCK];
    int src = bind_block(ins, s->run_id, b, &tx);
    if (src) {
        sqlite3_reset(ins);
        return sq_fail(s, src, "binding a block record");
    }
    if ((rc = step_done(s, ins, "inserting a block record")))
        return rc;
    if (sqlite3_changes(s->db) == 0) {
        sqlite3_stmt *chk = s->st[ST_CHK_BLOCK];
        if ((src = bind_block(chk, s->run_id, b, &tx))) {
            sqlite3_reset(chk);
            return sq_fail(s, src, "binding a block record");
        }
        if ((rc = verify_present(s, chk, "block", b->measure, b->harmonic, b->seq)))
            return rc;
    }
    return txn_count(s, 1);
}

static int summary_record(struct qes_recorder *r, const struct qes_run_rec *run,
                          const struct qes_summary_rec *m)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    if (s->err)
        return s->err;
    int rc = check_run(s, run, "summary");
    if (rc)
        return rc;
    if ((rc = qes__rec_summary_valid(r, m)))
        return rc;
    int ph = m->kind == QES_REC_PHASOR;
    if (m->seq > INT64_MAX || (ph ? m->s.n : m->v.n) > INT64_MAX || m->n_excluded > INT64_MAX)
        return too_big(s, "summary");
    char flags[256];
    qes_flags_json(m->flags, flags, sizeof flags);
    char *budget = qes__summary_budget_json(m);
    if (!budget) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s: out of memory", r->target);
        return QES_ENOMEM;
    }
    if ((rc = txn_enter(s)))
        goto out;
    sqlite3_stmt *ins = s->st[ST_INS_SUM];
    int src = bind_summary(ins, s->run_id, m, budget, flags);
    if (src) {
        sqlite3_reset(ins);
        rc = sq_fail(s, src, "binding a summary record");
        goto out;
    }
    if ((rc = step_done(s, ins, "inserting a summary record")))
        goto out;
    if (sqlite3_changes(s->db) == 0) {
        sqlite3_stmt *chk = s->st[ST_CHK_SUM];
        if ((src = bind_summary(chk, s->run_id, m, budget, flags))) {
            sqlite3_reset(chk);
            rc = sq_fail(s, src, "binding a summary record");
            goto out;
        }
        if ((rc = verify_present(s, chk, "summary", m->measure, m->harmonic, m->seq)))
            goto out;
    }
    rc = txn_count(s, 1);
out:
    free(budget);
    return rc;
}

/* The operations: each ends with settle(), which rolls back after a storage
 * failure. */
static int sq_run(struct qes_recorder *r, const struct qes_run_rec *run)
{
    return settle((struct rec_sqlite *)r, run_record(r, run));
}

static int sq_block(struct qes_recorder *r, const struct qes_run_rec *run,
                    const struct qes_block_rec *b)
{
    return settle((struct rec_sqlite *)r, block_record(r, run, b));
}

static int sq_summary(struct qes_recorder *r, const struct qes_run_rec *run,
                      const struct qes_summary_rec *m)
{
    return settle((struct rec_sqlite *)r, summary_record(r, run, m));
}

/* Commit the open batch now (the recorder thread calls this when idle, so
 * that a quiet live run does not keep records unacknowledged). */
static int sq_flush(struct qes_recorder *r)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    if (s->err || s->closed)
        return s->err;
    return settle(s, txn_commit(s));
}

/* A count, or NULL above the SQLite integer range (see the top). */
static int bind_count(sqlite3_stmt *st, int i, uint64_t v)
{
    return v > INT64_MAX ? sqlite3_bind_null(st, i) : bind_u64(st, i, v);
}

/* The UPDATE of runs at close: status, closed_utc and the run end. */
static int bind_run_end(sqlite3_stmt *st, const char *run_id, const struct qes_run_end *e,
                        const char *closed_utc, const char *t_end)
{
    int rc = bind_text(st, 1, run_id);
    rc = rc ? rc : sqlite3_bind_int(st, 2, e->status);
    rc = rc ? rc : bind_text(st, 3, closed_utc);
    const uint64_t counts[] = {e->samples,    e->lost,           e->gaps,
                               e->reconnects, e->frames_dropped, e->latency_n};
    for (int i = 0; i < 6; i++)
        rc = rc ? rc : bind_count(st, 4 + i, counts[i]);
    rc = rc ? rc : bind_real(st, 10, e->latency_p50_us);
    rc = rc ? rc : bind_real(st, 11, e->latency_p99_us);
    rc = rc ? rc : bind_real(st, 12, e->latency_max_us);
    rc = rc ? rc : bind_real(st, 13, e->seconds);
    rc = rc ? rc : bind_text(st, 14, t_end);
    return rc;
}

static int sq_close(struct qes_recorder *r, const struct qes_run_end *end)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    if (s->closed)
        return s->err;
    s->closed = 1;
    /* After a storage failure nothing more is written (see the top); the
     * missing runs.status tells a reader that the run did not close. */
    if (s->broken)
        return settle(s, s->err);
    int rc = 0;
    /* Even after another failure (a replay that disagrees with the file),
     * commit what was recorded: those rows are valid and the status tells
     * the reader how the run ended. */
    if (s->have_run && end && !(rc = txn_enter(s))) {
        char t[QES_UTC_LEN], t_end[QES_UTC_LEN];
        qes_utc_format(qes_utc_now_ns(), t);
        qes_utc_format(end->t_end_ns, t_end);
        sqlite3_stmt *st = s->st[ST_STATUS];
        int src = bind_run_end(st, s->run_id, end, t, t_end);
        if (src) {
            sqlite3_reset(st);
            rc = sq_fail(s, src, "binding the run status");
        } else {
            rc = step_done(s, st, "recording the run status");
        }
    }
    int crc = s->broken ? 0 : txn_commit(s);
    if (!rc)
        rc = crc;
    settle(s, rc);
    return s->err ? s->err : rc;
}

static void sq_destroy(struct qes_recorder *r)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    /* Destroyed without close (an error path): keep the records, which are
     * valid; runs.status stays NULL, telling that the run did not close.
     * Not after a storage failure: then close_v2 rolls back. */
    if (s->db && !s->closed && !s->broken && !sqlite3_get_autocommit(s->db) && s->st[ST_COMMIT]) {
        sqlite3_step(s->st[ST_COMMIT]);
        sqlite3_reset(s->st[ST_COMMIT]);
    }
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close_v2(s->db); /* rolls back anything still open */
    if (s->ack_fd >= 0)
        close(s->ack_fd);
    free(s);
}

static const struct qes_recorder_ops sqlite_ops = {
        .name = "sqlite",
        .run = sq_run,
        .block = sq_block,
        .summary = sq_summary,
        .close = sq_close,
        .flush = sq_flush,
        .destroy = sq_destroy,
};

/* ---- opening ----------------------------------------------------------------- */

static int exec(struct rec_sqlite *s, const char *sql, const char *what)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sq_fail(s, rc, what);
}

static int set_wal(struct rec_sqlite *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int code = sq_fail(s, rc, "setting journal_mode=WAL");
        sqlite3_finalize(st);
        return code;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    int code = 0;
    if (!mode || strcmp(mode, "wal") != 0) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "cannot use the WAL journal (journal_mode stays '%s'); WAL needs a local file "
                 "system with shared memory",
                 mode ? mode : "?");
        code = sq_fail_msg(s, QES_EDB, msg);
    }
    sqlite3_finalize(st);
    return code;
}

/* Inside BEGIN IMMEDIATE: add the columns of runs_added that runs lacks (a
 * file recorded by an earlier qes of schema version 1). */
static int add_run_columns(struct rec_sqlite *s)
{
    enum { N_ADDED = sizeof runs_added / sizeof runs_added[0] };
    int have[N_ADDED] = {0};
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT name FROM pragma_table_info('runs')", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        for (size_t i = 0; name && i < N_ADDED; i++)
            if (!strcasecmp(name, runs_added[i].name))
                have[i] = 1;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(s, rc, "reading the columns of runs");
    for (size_t i = 0; i < N_ADDED; i++) {
        if (have[i])
            continue;
        char sql[160];
        snprintf(sql, sizeof sql, "ALTER TABLE runs ADD COLUMN %s %s", runs_added[i].name,
                 runs_added[i].type);
        int code = exec(s, sql, "adding the run end columns to runs");
        if (code)
            return code;
    }
    return 0;
}

/* Inside BEGIN IMMEDIATE: refuse files this version does not understand,
 * then create what is missing. */
static int schema_check(struct rec_sqlite *s)
{
    sqlite3_stmt *st = NULL;
    int has_meta = 0, n_ours = 0, code = 0;
    int rc = sqlite3_prepare_v2(s->db,
                                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN"
                                " ('meta', 'runs', 'blocks', 'summaries')",
                                -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!strcmp((const char *)sqlite3_column_text(st, 0), "meta"))
            has_meta = 1;
        else
            n_ours++;
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        code = sq_fail(s, rc, "reading the schema");
        sqlite3_finalize(st);
        return code;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!has_meta && n_ours)
        return sq_fail_msg(s, QES_EDB,
                           "has tables runs/blocks/summaries but no qes `meta` table: not a qes "
                           "results database; record into another file");
    if (has_meta) {
        rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'schema_version'", -1,
                                &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            code = sq_fail(s, rc, "reading schema_version");
            sqlite3_finalize(st);
            return code;
        }
        int valid = rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER;
        sqlite3_int64 v = valid ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        char msg[300];
        if (!valid || v < 1) {
            return sq_fail_msg(s, QES_EDB,
                               "its `meta` table has no valid schema_version: not a qes "
                               "results database; record into another file");
        }
        if (v > SCHEMA_VERSION) {
            snprintf(msg, sizeof msg,
                     "schema_version %lld is newer than this qes understands (%d): use a newer "
                     "qes or another file",
                     (long long)v, SCHEMA_VERSION);
            return sq_fail_msg(s, QES_EDB, msg);
        }
    }
    if ((code = exec(s, schema_sql, "creating the tables")))
        return code;
    /* CREATE TABLE IF NOT EXISTS keeps an older layout as it is. */
    if (sqlite3_exec(s->db, columns_sql, NULL, NULL, NULL) != SQLITE_OK) {
        char msg[600];
        snprintf(msg, sizeof msg,
                 "its tables lack columns of this qes (%.300s): written by a pre-release qes; "
                 "record into another file",
                 sqlite3_errmsg(s->db));
        return sq_fail_msg(s, QES_EDB, msg);
    }
    return add_run_columns(s);
}

/*
 * Options: a zero field is the default.  Fills *sync_mode ("FULL", "NORMAL",
 * "OFF"), s->batch_ns and s->batch_max, or returns QES_EINVAL with a message
 * in err naming the option and its valid values.
 */
static int apply_opts(const char *target, const struct qes_recorder_opts *o, const char **sync_mode,
                      int64_t *batch_ns, unsigned *batch_max, char *err, size_t errlen)
{
    static const char *const modes[] = {"FULL", "NORMAL", "OFF"};
    *sync_mode = modes[0];
    *batch_ns = (int64_t)(BATCH_S * 1e9);
    *batch_max = BATCH_RECORDS;
    if (!o)
        return 0;
    if (o->sqlite_synchronous && o->sqlite_synchronous[0]) {
        *sync_mode = NULL;
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
            if (!strcasecmp(o->sqlite_synchronous, modes[i]))
                *sync_mode = modes[i];
        if (!*sync_mode) {
            qes_errf(err, errlen,
                     "SQLite database '%s': synchronous = '%.64s' is not one of FULL, NORMAL, OFF",
                     target, o->sqlite_synchronous);
            return QES_EINVAL;
        }
    }
    if (o->batch_s != 0) {
        if (!(o->batch_s > 0 && o->batch_s <= BATCH_S_MAX)) {
            qes_errf(err, errlen,
                     "SQLite database '%s': batch_s = %g is out of range (0 < batch_s <= %g s)",
                     target, o->batch_s, BATCH_S_MAX);
            return QES_EINVAL;
        }
        *batch_ns = (int64_t)(o->batch_s * 1e9);
    }
    if (o->batch_records != 0) {
        if (o->batch_records > BATCH_RECORDS_MAX) {
            qes_errf(err, errlen,
                     "SQLite database '%s': batch_records = %u is out of range (1..%u records)",
                     target, o->batch_records, BATCH_RECORDS_MAX);
            return QES_EINVAL;
        }
        *batch_max = o->batch_records;
    }
    return 0;
}

int qes_rec_sqlite_open(const char *target, struct qes_recorder **out, char *err, size_t errlen)
{
    return qes_rec_sqlite_open_ex(target, NULL, out, err, errlen);
}

int qes_rec_sqlite_open_ex(const char *target, const struct qes_recorder_opts *opts,
                           struct qes_recorder **out, char *err, size_t errlen)
{
    struct rec_sqlite *s = NULL;
    int rc, code;
    if (out)
        *out = NULL;
    if (!target || !out || !*target) {
        if (err && errlen)
            snprintf(err, errlen, "SQLite sink: no file name");
        return QES_EINVAL;
    }
    const char *sync_mode;
    int64_t batch_ns;
    unsigned batch_max;
    if ((code = apply_opts(target, opts, &sync_mode, &batch_ns, &batch_max, err, errlen)))
        return code;
    if (!(s = calloc(1, sizeof *s))) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", target);
        return QES_ENOMEM;
    }
    if (strlen(target) >= sizeof s->base.target) {
        if (err && errlen)
            snprintf(err, errlen, "SQLite sink: file name too long: %.64s...", target);
        free(s);
        return QES_EINVAL;
    }
    s->base.ops = &sqlite_ops;
    strcpy(s->base.target, target);
    s->batch_ns = batch_ns;
    s->batch_max = batch_max;
    s->ack_fd = -1;
    const char *ack = getenv("QES_ACK_LOG");
    if (ack && *ack) {
        snprintf(s->ack_path, sizeof s->ack_path, "%s", ack);
        s->ack_fd = open(ack, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (s->ack_fd < 0) {
            snprintf(s->base.errmsg, sizeof s->base.errmsg,
                     "SQLite database '%s': cannot open the acknowledgement log '%s' "
                     "(QES_ACK_LOG): %s",
                     target, ack, strerror(errno));
            code = QES_EIO;
            goto err_close;
        }
    }

    rc = sqlite3_open_v2(target, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        int e = s->db ? sqlite3_system_errno(s->db) : 0;
        snprintf(s->base.errmsg, sizeof s->base.errmsg, "cannot open SQLite database '%s': %s%s%s",
                 target, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), e ? ": " : "",
                 e ? strerror(e) : "");
        code = sq_code(s, rc);
        goto err_close;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);
    /* READWRITE silently falls back to read-only on a write-protected file;
     * say so now rather than at the first insert. */
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        code = sq_fail_msg(s, QES_EDB, "the file is read-only (no write permission)");
        goto err_close;
    }
    char pragmas[80];
    snprintf(pragmas, sizeof pragmas, "PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;", sync_mode);
    if ((code = set_wal(s)) || (code = exec(s, pragmas, "setting pragmas")))
        goto err_close;
    if ((code = exec(s, "BEGIN IMMEDIATE", "locking to check the schema")))
        goto err_close;
    if ((code = schema_check(s))) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        goto err_close;
    }
    if ((code = exec(s, "COMMIT", "creating the tables")))
        goto err_close;
    /* A new file's name must survive a power cut too (SQLite syncs the
     * directory for the WAL it creates, not for the database file). */
    if (strcmp(sync_mode, "OFF") != 0 && qes__fsync_dir_of(target) != 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot fsync the directory holding it: %s", strerror(errno));
        code = sq_fail_msg(s, QES_EDB, msg);
        goto err_close;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK) {
            code = sq_fail(s, rc, "preparing statements");
            goto err_close;
        }
    }
    s->err = 0;
    s->broken = 0;
    *out = &s->base;
    return 0;

err_close:
    if (err && errlen)
        snprintf(err, errlen, "%s", s->base.errmsg);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close_v2(s->db);
    if (s->ack_fd >= 0)
        close(s->ack_fd);
    free(s);
    return code;
}
