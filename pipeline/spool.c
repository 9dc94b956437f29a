/*
 * The spool of the PostgreSQL sink: see spool.h.
 *
 * Layout (format 1):
 *   spool(id INTEGER PRIMARY KEY AUTOINCREMENT, kind INTEGER, data BLOB)
 *   spool_meta(key TEXT PRIMARY KEY, value)  -- 'format' = 1, 'tag'
 * The bound is PRAGMA max_page_count, so SQLite itself refuses to grow the
 * file (SQLITE_FULL) and a full spool stays a valid database.  The WAL file
 * lives beside it and is truncated back at each checkpoint
 * (journal_size_limit), so the bound holds up to one checkpoint interval.
 */
#include "pipeline/spool.h"
#include "common/err.h"

#include <sqlite3.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SPOOL_FORMAT 1

struct qes_spool {
    sqlite3 *db;
    sqlite3_stmt *ins, *sel, *cnt_below, *del;
    char path[4096];
};

static int sp_code(sqlite3 *db, int rc)
{
    if ((rc & 0xff) == SQLITE_FULL)
        return QES_ENOSPC;
    if ((rc & 0xff) == SQLITE_IOERR && db && sqlite3_system_errno(db) == ENOSPC)
        return QES_ENOSPC;
    return QES_EDB;
}

static int sp_fail(struct qes_spool *s, int rc, const char *what, char *err, size_t errlen)
{
    qes_errf(err, errlen, "spool '%s': %s: %s", s->path, what,
             s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    return sp_code(s->db, rc);
}

static int sp_exec(struct qes_spool *s, const char *sql, const char *what, char *err, size_t errlen)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sp_fail(s, rc, what, err, errlen);
}

static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS spool_meta(key TEXT PRIMARY KEY, value NOT NULL);"
        "CREATE TABLE IF NOT EXISTS spool(id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " kind INTEGER NOT NULL, data BLOB NOT NULL);"
        "INSERT INTO spool_meta(key, value) VALUES('format', 1) ON CONFLICT DO NOTHING;";

/* Inside BEGIN IMMEDIATE: check the format and the tag, create what is
 * missing, claim an empty spool for tag. */
static int check_schema(struct qes_spool *s, const char *tag, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int code;
    if ((code = sp_exec(s, schema_sql, "creating the tables", err, errlen)))
        return code;
    int rc = sqlite3_prepare_v2(s->db, "SELECT value FROM spool_meta WHERE key = 'format'", -1, &st,
                                NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        code = sp_fail(s, rc, "reading the format", err, errlen);
        sqlite3_finalize(st);
        return code;
    }
    sqlite3_int64 fmt = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (fmt != SPOOL_FORMAT) {
        qes_errf(err, errlen,
                 "spool '%s': format %lld, this qes reads format %d: use another "
                 "spool file",
                 s->path, (long long)fmt, SPOOL_FORMAT);
        return QES_EDB;
    }
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT (SELECT value FROM spool_meta WHERE key = 'tag'),"
                            " (SELECT count(*) FROM spool)",
                            -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        code = sp_fail(s, rc, "reading the destination", err, errlen);
        sqlite3_finalize(st);
        return code;
    }
    const char *old = (const char *)sqlite3_column_text(st, 0);
    sqlite3_int64 n = sqlite3_column_int64(st, 1);
    if (n > 0 && old && strcmp(old, tag) != 0) {
        qes_errf(err, errlen,
                 "spool '%s' holds %lld rows for %.300s, not for %.300s: drain it "
                 "into its own destination first, or use another spool file",
                 s->path, (long long)n, old, tag);
        sqlite3_finalize(st);
        return QES_EDB;
    }
    int same = old && !strcmp(old, tag);
    sqlite3_finalize(st);
    if (same)
        return 0;
    rc = sqlite3_prepare_v2(s->db,
                            "INSERT OR REPLACE INTO spool_meta(key, value) VALUES('tag', ?1)", -1,
                            &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    code = rc == SQLITE_DONE ? 0 : sp_fail(s, rc, "recording the destination", err, errlen);
    sqlite3_finalize(st);
    return code;
}

int qes_spool_open(const char *path, double max_mb, const char *tag, int create,
                   struct qes_spool **out, char *err, size_t errlen)
{
    struct qes_spool *s;
    int code, rc;
    *out = NULL;
    if (!path || !*path || !tag || !(max_mb > 0) || strlen(path) >= sizeof s->path) {
        qes_errf(err, errlen, "spool: no file name, a name too long, or a size bound <= 0");
        return QES_EINVAL;
    }
    struct stat stbuf;
    if (!create && stat(path, &stbuf) != 0)
        return QES_ENOENT;
    if (!(s = calloc(1, sizeof *s))) {
        qes_errf(err, errlen, "spool '%s': out of memory", path);
        return QES_ENOMEM;
    }
    strcpy(s->path, path);
    rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0),
                         NULL);
    if (rc != SQLITE_OK) {
        int e = s->db ? sqlite3_system_errno(s->db) : 0;
        qes_errf(err, errlen, "cannot open spool '%s': %s%s%s", path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), e ? ": " : "",
                 e ? strerror(e) : "");
        code = sp_code(s->db, rc);
        goto err_close;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 10000);
    if (sqlite3_db_readonly(s->db, "main") == 1) {
        qes_errf(err, errlen, "spool '%s': the file is read-only (no write permission)", path);
        code = QES_EDB;
        goto err_close;
    }
    /* The page size is fixed once the file has content; read it back. */
    if ((code = sp_exec(s,
                        "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                        " PRAGMA journal_size_limit=1048576;",
                        "setting pragmas", err, errlen)))
        goto err_close;
    if ((code = sp_exec(s, "BEGIN IMMEDIATE", "locking", err, errlen)))
        goto err_close;
    if ((code = check_schema(s, tag, err, errlen))) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        goto err_close;
    }
    if ((code = sp_exec(s, "COMMIT", "creating the tables", err, errlen)))
        goto err_close;
    {
        sqlite3_stmt *st = NULL;
        long long page = 4096;
        if (sqlite3_prepare_v2(s->db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            page = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        double pages = floor(max_mb * 1048576.0 / (double)page);
        /* the schema takes a few pages; keep room for at least some rows */
        if (pages < 8)
            pages = 8;
        if (pages > 4e9)
            pages = 4e9;
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", (long long)pages);
        if ((code = sp_exec(s, sql, "bounding the size", err, errlen)))
            goto err_close;
    }
    static const char *const sql[4] = {
            "INSERT INTO spool(kind, data) VALUES(?1, ?2)",
            "SELECT id, kind, data FROM spool ORDER BY id LIMIT ?1",
            "SELECT count(*) FROM spool WHERE id <= ?1 AND kind < ?2",
            "DELETE FROM spool WHERE id <= ?1",
    };
    sqlite3_stmt **st[4] = {&s->ins, &s->sel, &s->cnt_below, &s->del};
    for (int i = 0; i < 4; i++) {
        rc = sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, st[i], NULL);
        if (rc != SQLITE_OK) {
            code = sp_fail(s, rc, "preparing statements", err, errlen);
            goto err_close;
        }
    }
    *out = s;
    return 0;

err_close:
    qes_spool_close(s);
    return code;
}

/* Insert rows[0..n); returns the count inserted before a full spool, or -1
 * on another failure (*rc_out then holds the SQLite code). */
static long put_rows(struct qes_spool *s, const struct qes_spool_row *rows, size_t n, int *rc_out)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int rc = sqlite3_bind_int(s->ins, 1, rows[i].kind);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_blob64(s->ins, 2, rows[i].data, rows[i].len, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s->ins);
        sqlite3_reset(s->ins);
        if (rc == SQLITE_DONE)
            continue;
        *rc_out = rc;
        return (rc & 0xff) == SQLITE_FULL ? (long)i : -1;
    }
    return (long)i;
}

int qes_spool_put(struct qes_spool *s, const struct qes_spool_row *rows, size_t n, size_t *n_kept,
                  char *err, size_t errlen)
{
    *n_kept = 0;
    if (!n)
        return 0;
    /* SQLite may roll the whole transaction back on SQLITE_FULL: then put
     * again the rows that fitted, which fit again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        int code = sp_exec(s, "BEGIN IMMEDIATE", "locking", err, errlen);
        if (code)
            return code;
        int rc = SQLITE_OK;
        long k = put_rows(s, rows, n, &rc);
        if (k < 0) {
            code = sp_fail(s, rc, "writing", err, errlen);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return code;
        }
        if (sqlite3_get_autocommit(s->db)) { /* rolled back */
            n = (size_t)k;
            continue;
        }
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            code = sp_fail(s, rc, "committing", err, errlen);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return code;
        }
        *n_kept = (size_t)k;
        return 0;
    }
    return 0;
}

int qes_spool_read(struct qes_spool *s, size_t max, qes_spool_row_fn fn, void *arg,
                   int64_t *last_id, char *err, size_t errlen)
{
    *last_id = 0;
    int code = 0;
    int rc = sqlite3_bind_int64(s->sel, 1, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s->sel)) == SQLITE_ROW) {
        struct qes_spool_row row = {
                .kind = sqlite3_column_int(s->sel, 1),
                .data = sqlite3_column_blob(s->sel, 2),
                .len = (size_t)sqlite3_column_bytes(s->sel, 2),
        };
        if (!row.data)
            row.data = "";
        if ((code = fn(arg, &row)))
            break;
        *last_id = sqlite3_column_int64(s->sel, 0);
        rc = SQLITE_OK;
    }
    if (!code && rc != SQLITE_DONE)
        code = sp_fail(s, rc, "reading", err, errlen);
    sqlite3_reset(s->sel);
    return code;
}

int qes_spool_remove(struct qes_spool *s, int64_t last_id, int count_kind_below,
                     uint64_t *n_removed, char *err, size_t errlen)
{
    *n_removed = 0;
    int code = sp_exec(s, "BEGIN IMMEDIATE", "locking", err, errlen);
    if (code)
        return code;
    int rc = sqlite3_bind_int64(s->cnt_below, 1, last_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(s->cnt_below, 2, count_kind_below);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s->cnt_below);
    if (rc == SQLITE_ROW)
        *n_removed = (uint64_t)sqlite3_column_int64(s->cnt_below, 0);
    sqlite3_reset(s->cnt_below);
    if (rc == SQLITE_ROW) {
        rc = sqlite3_bind_int64(s->del, 1, last_id);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s->del);
        sqlite3_reset(s->del);
    }
    if (rc == SQLITE_DONE)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        code = sp_fail(s, rc, "removing sent rows", err, errlen);
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        *n_removed = 0;
    }
    return code;
}

int qes_spool_count(struct qes_spool *s, int kind_below, uint64_t *n_rows, uint64_t *n_below,
                    char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    *n_rows = *n_below = 0;
    int rc = sqlite3_prepare_v2(
            s->db, "SELECT count(*), count(*) FILTER (WHERE kind < ?1) FROM spool", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(st, 1, kind_below);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW) {
        *n_rows = (uint64_t)sqlite3_column_int64(st, 0);
        *n_below = (uint64_t)sqlite3_column_int64(st, 1);
    } else {
        code = sp_fail(s, rc, "counting rows", err, errlen);
    }
    sqlite3_finalize(st);
    return code;
}

const char *qes_spool_path(const struct qes_spool *s)
{
    return s->path;
}

void qes_spool_close(struct qes_spool *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->ins);
    sqlite3_finalize(s->sel);
    sqlite3_finalize(s->cnt_below);
    sqlite3_finalize(s->del);
    sqlite3_close_v2(s->db);
    free(s);
}
