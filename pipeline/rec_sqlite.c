/*
 * The SQLite sink (the default recorder of record).
 *
 * Durability: WAL journal, synchronous=FULL (a committed transaction survives
 * a power cut), foreign keys on, busy timeout 5 s so that a reader (a plot, a
 * query) never makes the recorder fail.  Records are batched into
 * transactions: BEGIN IMMEDIATE at the first record, COMMIT once 1 s of host
 * time (CLOCK_MONOTONIC) has passed since the BEGIN or 10000 records are in
 * it, and at close.  One fsync per commit instead of one per record is what
 * makes synchronous=FULL affordable; the price is that a crash loses at most
 * the open batch.  The clock is read when a record arrives, so an idle
 * pipeline keeps its last batch open until the next record or close.
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
 * So identical replays are no-ops and any disagreement is an error.
 *
 * Schema version 1 lives in `meta`; a newer version is refused, and so is a
 * file holding tables of these names without a `meta` table.
 *
 * Non-finite numbers are stored as NULL (dof NULL = infinite).  Note that
 * SQLite column names are case-insensitive, so the expanded uncertainties U_r
 * and U cannot share the summaries table with u_r and u under those names:
 * they are the columns `U_r_expanded` and `U_expanded`.
 *
 * Errors: any SQLite failure is QES_EDB (QES_ENOSPC for a full disk) with the
 * file name and sqlite3_errmsg in errmsg; the first failure is sticky.
 */
#include "pipeline/rec_int.h"
#include "pipeline/record.h"
#include "common/err.h"
#include "common/utctime.h"

#include <sqlite3.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_VERSION 1
#define BATCH_RECORDS  10000
#define BATCH_NS       1000000000LL

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
        " closed_utc TEXT);"
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
        [ST_STATUS] = "UPDATE runs SET status = ?2, closed_utc = ?3 WHERE id = ?1",
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
    unsigned batch;          /* records in the open transaction */
    struct timespec t_begin; /* CLOCK_MONOTONIC at its BEGIN */
    char run_id[37];
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

/* Record an SQLite failure: code, message with the file name. */
static int sq_fail(struct rec_sqlite *s, int rc, const char *what)
{
    int code = sq_code(s, rc);
    snprintf(s->base.errmsg, sizeof s->base.errmsg, "SQLite database '%s': %s: %s", s->base.target,
             what, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    if (!s->err)
        s->err = code;
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

/* ---- transactions ------------------------------------------------------------ */

static int txn_enter(struct rec_sqlite *s)
{
    if (!sqlite3_get_autocommit(s->db))
        return 0;
    int rc = step_done(s, s->st[ST_BEGIN], "BEGIN");
    if (!rc) {
        s->batch = 0;
        clock_gettime(CLOCK_MONOTONIC, &s->t_begin);
    }
    return rc;
}

static int txn_commit(struct rec_sqlite *s)
{
    if (sqlite3_get_autocommit(s->db))
        return 0;
    int rc = step_done(s, s->st[ST_COMMIT], "COMMIT");
    if (!rc)
        s->batch = 0;
    return rc;
}

/* One more record in the open transaction: commit when the batch is full or
 * old enough. */
static int txn_count(struct rec_sqlite *s)
{
    if (++s->batch >= BATCH_RECORDS)
        return txn_commit(s);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)(now.tv_sec - s->t_begin.tv_sec) * 1000000000LL +
                 (now.tv_nsec - s->t_begin.tv_nsec);
    return ns >= BATCH_NS ? txn_commit(s) : 0;
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

static int sq_run(struct qes_recorder *r, const struct qes_run_rec *run)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    if (s->err)
        return s->err;
    if (s->closed || !run || !run->id[0] || s->have_run) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s: run record %s", r->target,
                 s->closed     ? "after close"
                 : s->have_run ? "twice (a recorder records one run)"
                               : "without a run id");
        return QES_EINVAL;
    }
    char id[37], sha[65], t[QES_UTC_LEN];
    snprintf(id, sizeof id, "%.36s", run->id);
    snprintf(sha, sizeof sha, "%.64s", run->config_sha256);
    qes_utc_format(run->t_start_ns, t);
    const char *input = run->input_json ? run->input_json : "null";
    int rc = txn_enter(s);
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
    return txn_count(s);
}

static int too_big(struct rec_sqlite *s, const char *kind)
{
    snprintf(s->base.errmsg, sizeof s->base.errmsg,
             "%s: %s record with a count above the SQLite integer range (2^63 - 1)", s->base.target,
             kind);
    return QES_ERANGE;
}

static int sq_block(struct qes_recorder *r, const struct qes_run_rec *run,
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
    return txn_count(s);
}

static int sq_summary(struct qes_recorder *r, const struct qes_run_rec *run,
                      const struct qes_summary_rec *m)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    if (s->err)
        return s->err;
    int rc = check_run(s, run, "summary");
    if (rc)
        return rc;
    int ph = m && m->kind == QES_REC_PHASOR;
    if (!m || !m->measure || (!ph && m->kind != QES_REC_SCALAR) ||
        (ph ? m->s.n_budget : m->v.n_budget) > QES_BUDGET_MAX) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "%s: summary record without a measure, of unknown kind, or with more than %d "
                 "budget terms",
                 r->target, QES_BUDGET_MAX);
        return QES_EINVAL;
    }
    if (m->seq > INT64_MAX || (ph ? m->s.n : m->v.n) > INT64_MAX || m->n_excluded > INT64_MAX)
        return too_big(s, "summary");
    char flags[256];
    qes_flags_json(m->flags, flags, sizeof flags);
    char *budget;
    if (ph) {
        budget = qes_budget_json(&m->s);
    } else {
        /* qes_budget_json() reads only the budget of a phasor summary. */
        struct qes_phasor_summary tmp = {.n_budget = m->v.n_budget};
        memcpy(tmp.budget, m->v.budget, m->v.n_budget * sizeof tmp.budget[0]);
        memcpy(tmp.typeA_rule, m->v.typeA_rule, sizeof tmp.typeA_rule);
        budget = qes_budget_json(&tmp);
    }
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
    rc = txn_count(s);
out:
    free(budget);
    return rc;
}

static int sq_close(struct qes_recorder *r, int status)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    if (s->closed)
        return s->err;
    s->closed = 1;
    int rc = 0;
    /* Even after a failure, commit what was recorded: those rows are valid
     * and the status tells the reader how the run ended. */
    if (s->have_run && !(rc = txn_enter(s))) {
        char t[QES_UTC_LEN];
        qes_utc_format(qes_utc_now_ns(), t);
        sqlite3_stmt *st = s->st[ST_STATUS];
        int src = bind_text(st, 1, s->run_id);
        src = src ? src : sqlite3_bind_int(st, 2, status);
        src = src ? src : bind_text(st, 3, t);
        if (src) {
            sqlite3_reset(st);
            rc = sq_fail(s, src, "binding the run status");
        } else {
            rc = step_done(s, st, "recording the run status");
        }
    }
    int crc = txn_commit(s);
    if (!rc)
        rc = crc;
    return s->err ? s->err : rc;
}

static void sq_destroy(struct qes_recorder *r)
{
    struct rec_sqlite *s = (struct rec_sqlite *)r;
    /* Destroyed without close (an error path): keep the records, which are
     * valid; runs.status stays NULL, telling that the run did not close. */
    if (s->db && !s->closed && !sqlite3_get_autocommit(s->db) && s->st[ST_COMMIT]) {
        sqlite3_step(s->st[ST_COMMIT]);
        sqlite3_reset(s->st[ST_COMMIT]);
    }
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close_v2(s->db); /* rolls back anything still open */
    free(s);
}

static const struct qes_recorder_ops sqlite_ops = {
        .name = "sqlite",
        .run = sq_run,
        .block = sq_block,
        .summary = sq_summary,
        .close = sq_close,
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
    return 0;
}

int qes_rec_sqlite_open(const char *target, struct qes_recorder **out, char *err, size_t errlen)
{
    return qes_rec_sqlite_open_ex(target, NULL, out, err, errlen);
}

int qes_rec_sqlite_open_ex(const char *target, const struct qes_recorder_opts *opts,
                           struct qes_recorder **out, char *err, size_t errlen)
{
    (void)opts; /* synchronous and batch options: being wired */
    struct rec_sqlite *s = NULL;
    int rc, code;
    if (!target || !out || !*target) {
        if (err && errlen)
            snprintf(err, errlen, "SQLite sink: no file name");
        return QES_EINVAL;
    }
    *out = NULL;
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
    if ((code = set_wal(s)) ||
        (code = exec(s, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", "setting pragmas")))
        goto err_close;
    if ((code = exec(s, "BEGIN IMMEDIATE", "locking to check the schema")))
        goto err_close;
    if ((code = schema_check(s))) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        goto err_close;
    }
    if ((code = exec(s, "COMMIT", "creating the tables")))
        goto err_close;
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK) {
            code = sq_fail(s, rc, "preparing statements");
            goto err_close;
        }
    }
    s->err = 0;
    *out = &s->base;
    return 0;

err_close:
    if (err && errlen)
        snprintf(err, errlen, "%s", s->base.errmsg);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close_v2(s->db);
    free(s);
    return code;
}
