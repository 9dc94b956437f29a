/*
 * The SQLite sink's options and durability contract, through the sink API:
 * synchronous modes (observed as the syncs SQLite asks of the file system),
 * batch bounds in records and in time, flush, acknowledgement only after a
 * commit, the QES_ACK_LOG hook, and storage failures (a failed fsync, a full
 * disk) injected by a VFS shim: a clear error, nothing acknowledged lost, a
 * file that passes PRAGMA integrity_check.
 *
 * The shim wraps the default (unix) VFS and is registered as the default in
 * each test's process (Criterion forks one per test), so the sink uses it
 * without knowing.  It counts xSync calls per kind of file and can make the
 * syncs or writes of the WAL fail.
 */
#include "pipeline/record.h"
#include "common/err.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <sqlite3.h>

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How the runs of these tests end: what close records. */
static const struct qes_run_end g_end = {
        .latency_p50_us = NAN, .latency_p99_us = NAN, .latency_max_us = NAN, .seconds = NAN};

/* ---- VFS shim ---------------------------------------------------------------- */

enum { F_DB, F_WAL, F_OTHER };

static struct {
    int syncs[3];   /* xSync calls by kind of file */
    int fail_sync;  /* the WAL's xSync fails: SQLITE_IOERR_FSYNC, errno EIO */
    int fail_write; /* the WAL's xWrite fails: SQLITE_FULL, errno ENOSPC */
} g;

struct shim_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct in the same allocation */
    int kind;
};

static sqlite3_vfs *g_real;
static sqlite3_vfs g_shim;
static char g_dir[4096]; /* this test's directory */

#define REAL(f) (((struct shim_file *)(f))->real)

static int shim_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int shim_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int shim_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (g.fail_write && ((struct shim_file *)f)->kind == F_WAL) {
        errno = ENOSPC;
        return SQLITE_FULL;
    }
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int shim_sync(sqlite3_file *f, int flags)
{
    int kind = ((struct shim_file *)f)->kind;
    g.syncs[kind]++;
    if (g.fail_sync && kind == F_WAL) {
        errno = EIO;
        return SQLITE_IOERR_FSYNC;
    }
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int shim_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int shim_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int shim_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int shim_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int shim_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int shim_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int shim_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int shim_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}

static int shim_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void shim_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int shim_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int shim_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shim_io = {
        .iVersion = 3,
        .xClose = shim_close,
        .xRead = shim_read,
        .xWrite = shim_write,
        .xTruncate = shim_truncate,
        .xSync = shim_sync,
        .xFileSize = shim_size,
        .xLock = shim_lock,
        .xUnlock = shim_unlock,
        .xCheckReservedLock = shim_reserved,
        .xFileControl = shim_fcntl,
        .xSectorSize = shim_sector,
        .xDeviceCharacteristics = shim_devchar,
        .xShmMap = shim_shm_map,
        .xShmLock = shim_shm_lock,
        .xShmBarrier = shim_shm_barrier,
        .xShmUnmap = shim_shm_unmap,
        .xFetch = shim_fetch,
        .xUnfetch = shim_unfetch,
};

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)vfs;
    struct shim_file *sf = (struct shim_file *)f;
    sf->real = (sqlite3_file *)&sf[1];
    sf->kind = flags & SQLITE_OPEN_WAL ? F_WAL : flags & SQLITE_OPEN_MAIN_DB ? F_DB : F_OTHER;
    int rc = g_real->xOpen(g_real, name, sf->real, flags, out);
    /* The real file's methods must be version 3 for the table above. */
    sf->base.pMethods = rc == SQLITE_OK ? &shim_io : NULL;
    if (rc == SQLITE_OK)
        cr_assert_geq(sf->real->pMethods->iVersion, 3);
    return rc;
}

static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    return g_real->xDelete(g_real, name, sync_dir);
}

static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return g_real->xAccess(g_real, name, flags, out);
}

static int shim_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return g_real->xFullPathname(g_real, name, n, out);
}

static int shim_last_error(sqlite3_vfs *vfs, int n, char *buf)
{
    (void)vfs;
    return g_real->xGetLastError(g_real, n, buf);
}

static void shim_install(void)
{
    snprintf(g_dir, sizeof g_dir, "%s", qes_test_tmpdir());
    memset(&g, 0, sizeof g);
    g_real = sqlite3_vfs_find(NULL);
    cr_assert_not_null(g_real);
    g_shim = *g_real;
    g_shim.zName = "qes-test-shim";
    g_shim.pNext = NULL;
    g_shim.szOsFile = (int)sizeof(struct shim_file) + g_real->szOsFile;
    g_shim.xOpen = shim_open;
    g_shim.xDelete = shim_delete;
    g_shim.xAccess = shim_access;
    g_shim.xFullPathname = shim_fullpath;
    g_shim.xGetLastError = shim_last_error;
    cr_assert_eq(sqlite3_vfs_register(&g_shim, 1), SQLITE_OK);
}

/* ---- records and helpers ------------------------------------------------------ */

static struct qes_run_rec test_run(void)
{
    struct qes_run_rec run = {
            .id = "5a0e2d1c-3b4a-4c5d-8e6f-7a8b9c0d1e2f",
            .command = "replay",
            .version = "0.1.0",
            .build = "test",
            .config_ini = "[source]\nkind = sigmf\n",
            .config_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            .input_json = "null",
            .t_start_ns = 1795743206000000000LL,
            .sample_rate_hz = 48000,
    };
    return run;
}

static struct qes_block_rec test_block(uint64_t seq)
{
    struct qes_block_rec b = {
            .measure = "fund",
            .channel = "dut",
            .unit = "V",
            .harmonic = 1,
            .seq = seq,
            .sample_start = 48 * seq,
            .n_samples = 48,
            .t_ns = 1795743206000000000LL + 1000000LL * (int64_t)seq,
            .freq_hz = 1000,
            .x = 0.75,
            .y = -0.25,
            .r = 0.790569415042095,
            .phase_rad = -0.321750554396642,
            .kind = QES_REC_PHASOR,
            .value = NAN,
            .u = NAN,
            .enbw_hz = NAN,
            .thd = NAN,
            .sinad_db = NAN,
            .sfdr_db = NAN,
    };
    return b;
}

static char g_path[4200];

static struct qes_recorder *open_sink(const struct qes_recorder_opts *o)
{
    snprintf(g_path, sizeof g_path, "%s/s.db", g_dir);
    struct qes_recorder *r = NULL;
    char err[2048] = "";
    int rc = qes_rec_sqlite_open_ex(g_path, o, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "open: %s", err);
    struct qes_run_rec run = test_run();
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    return r;
}

static int put_block(struct qes_recorder *r, uint64_t seq)
{
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block(seq);
    return r->ops->block(r, &run, &b);
}

/* SELECT count(*) FROM blocks through a reader connection of its own (the
 * real VFS: what another process would see). */
static long long committed_blocks(const char *path)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, g_real ? g_real->zName : NULL),
                 SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*), coalesce(max(seq), -1) FROM blocks", -1,
                                    &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0), max = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* committed in order: the rows are seq 0 .. n-1, no hole */
    cr_assert_eq(max, n - 1, "rows are not a prefix of the records: %lld rows, max seq %lld", n,
                 max);
    return n;
}

static void assert_integrity(const char *path)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, g_real ? g_real->zName : NULL),
                 SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void remove_dir(void)
{
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
}

TestSuite(sqlite_opts, .init = shim_install, .fini = remove_dir, .timeout = 120);

/* ---- options ----------------------------------------------------------------- */

struct bad_opts {
    char sync[16];
    double batch_s;
    unsigned batch_records;
    char expect[32]; /* in the message */
};

ParameterizedTestParameters(sqlite_opts, bad_options_are_refused)
{
    static struct bad_opts p[] = {
            {"EXTRA", 0, 0, "synchronous"}, {"fast", 0, 0, "synchronous"},
            {"FULL ", 0, 0, "synchronous"}, {"", -1, 0, "batch_s"},
            {"", 3601, 0, "batch_s"},       {"", NAN, 0, "batch_s"},
            {"", INFINITY, 0, "batch_s"},   {"", 0, 10000001, "batch_records"},
    };
    return cr_make_param_array(struct bad_opts, p, sizeof p / sizeof p[0]);
}

ParameterizedTest(struct bad_opts *p, sqlite_opts, bad_options_are_refused)
{
    struct qes_recorder_opts o = {
            .sqlite_synchronous = p->sync,
            .batch_s = p->batch_s,
            .batch_records = p->batch_records,
    };
    char path[4200], err[2048] = "";
    snprintf(path, sizeof path, "%s/bad.db", g_dir);
    struct qes_recorder *r = (struct qes_recorder *)&o; /* must be reset to NULL */
    cr_assert_eq(qes_rec_sqlite_open_ex(path, &o, &r, err, sizeof err), QES_EINVAL);
    cr_assert_null(r);
    cr_assert_not_null(strstr(err, p->expect), "%s", err);
    cr_assert_not_null(strstr(err, path), "%s", err);
    /* and through the dispatcher */
    cr_assert_eq(qes_recorder_open_ex(path, &o, &r, err, sizeof err), QES_EINVAL);
    cr_assert_null(r);
}

struct sync_case {
    char mode[16]; /* "" = default */
    int wal_syncs_per_commit;
    int any_sync;
};

ParameterizedTestParameters(sqlite_opts, synchronous_modes)
{
    static struct sync_case p[] = {
            {"", 1, 1}, {"FULL", 1, 1}, {"full", 1, 1}, {"NORMAL", 0, 1}, {"OFF", 0, 0},
    };
    return cr_make_param_array(struct sync_case, p, sizeof p / sizeof p[0]);
}

/*
 * FULL syncs the WAL at every commit; NORMAL only at checkpoints (none here:
 * a few pages stay far below the 1000-page auto-checkpoint); OFF never.
 */
ParameterizedTest(struct sync_case *p, sqlite_opts, synchronous_modes)
{
    struct qes_recorder_opts o = {.sqlite_synchronous = p->mode[0] ? p->mode : NULL};
    struct qes_recorder *r = open_sink(&o);
    memset(g.syncs, 0, sizeof g.syncs);
    enum { COMMITS = 5 };
    for (uint64_t i = 0; i < COMMITS; i++) {
        cr_assert_eq(put_block(r, i), 0, "%s", r->errmsg);
        cr_assert_eq(r->ops->flush(r), 0, "%s", r->errmsg);
        cr_assert_eq(r->n_acked, i + 1);
    }
    cr_assert_eq(g.syncs[F_WAL], COMMITS * p->wal_syncs_per_commit, "%s: %d WAL syncs", p->mode,
                 g.syncs[F_WAL]);
    cr_assert_eq(g.syncs[F_DB], 0, "%s: %d database syncs", p->mode, g.syncs[F_DB]);
    cr_assert_eq(r->ops->close(r, &g_end), 0, "%s", r->errmsg);
    if (!p->any_sync)
        cr_assert_eq(g.syncs[F_WAL] + g.syncs[F_DB] + g.syncs[F_OTHER], 0);
    qes_recorder_destroy(r);
    cr_assert_eq(committed_blocks(g_path), COMMITS);
}

/* ---- batches, flush, acknowledgement ------------------------------------------- */

Test(sqlite_opts, flush_commits_an_idle_batch)
{
    struct qes_recorder *r = open_sink(NULL);
    for (uint64_t i = 0; i < 7; i++)
        cr_assert_eq(put_block(r, i), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 0, "acknowledged before its commit");
    cr_assert_eq(committed_blocks(g_path), 0);
    cr_assert_eq(r->ops->flush(r), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 7);
    cr_assert_eq(committed_blocks(g_path), 7);
    /* an empty flush is a no-op */
    cr_assert_eq(r->ops->flush(r), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 7);
    cr_assert_eq(r->ops->close(r, &g_end), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 7);
    cr_assert_eq(r->n_lost, 0);
    qes_recorder_destroy(r);
}

Test(sqlite_opts, batch_records_bound)
{
    struct qes_recorder_opts o = {.batch_records = 5};
    struct qes_recorder *r = open_sink(&o);
    for (uint64_t i = 0; i < 12; i++) {
        cr_assert_eq(put_block(r, i), 0, "%s", r->errmsg);
        /* the batch commits with its 5th record, not before */
        cr_assert_eq(r->n_acked, (i + 1) / 5 * 5, "after record %llu", (unsigned long long)i);
    }
    cr_assert_eq(committed_blocks(g_path), 10);
    cr_assert_eq(r->ops->close(r, &g_end), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 12);
    qes_recorder_destroy(r);
    cr_assert_eq(committed_blocks(g_path), 12);
}

Test(sqlite_opts, batch_time_bound)
{
    struct qes_recorder_opts o = {.batch_s = 0.2};
    struct qes_recorder *r = open_sink(&o);
    cr_assert_eq(put_block(r, 0), 0, "%s", r->errmsg);
    cr_assert_eq(put_block(r, 1), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 0, "a young batch stays open");
    struct timespec nap = {0, 250000000};
    nanosleep(&nap, NULL);
    /* the batch is 0.25 s old: the next record commits it, with itself */
    cr_assert_eq(put_block(r, 2), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 3);
    cr_assert_eq(committed_blocks(g_path), 3);
    cr_assert_eq(put_block(r, 3), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 3, "a new batch began");
    cr_assert_eq(r->ops->close(r, &g_end), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 4);
    qes_recorder_destroy(r);
}

Test(sqlite_opts, summaries_are_acknowledged_too)
{
    struct qes_recorder *r = open_sink(NULL);
    struct qes_run_rec run = test_run();
    struct qes_summary_rec m = {
            .measure = "fund",
            .channel = "dut",
            .unit = "V",
            .harmonic = 1,
            .freq_hz = 1000,
            .kind = QES_REC_PHASOR,
            .s = {.n = 1, .x = 0.75, .y = -0.25, .r = 0.79, .dof = INFINITY, .k = 2},
    };
    cr_assert_eq(put_block(r, 0), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->summary(r, &run, &m), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 0);
    cr_assert_eq(r->ops->close(r, &g_end), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 2, "the run record is not counted, blocks and summaries are");
    qes_recorder_destroy(r);
}

Test(sqlite_opts, ack_log)
{
    char log[4200];
    snprintf(log, sizeof log, "%s/ack.log", g_dir);
    cr_assert_eq(setenv("QES_ACK_LOG", log, 1), 0);
    struct qes_recorder *r = open_sink(NULL);
    for (uint64_t i = 0; i < 3; i++)
        cr_assert_eq(put_block(r, i), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->flush(r), 0, "%s", r->errmsg);
    for (uint64_t i = 3; i < 5; i++)
        cr_assert_eq(put_block(r, i), 0, "%s", r->errmsg);
    char *text = qes_test_slurp(log, NULL);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, "3\n", "only committed records are logged");
    free(text);
    cr_assert_eq(r->ops->close(r, &g_end), 0, "%s", r->errmsg);
    qes_recorder_destroy(r);
    text = qes_test_slurp(log, NULL);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, "3\n5\n");
    free(text);
}

Test(sqlite_opts, ack_log_that_cannot_be_opened)
{
    cr_assert_eq(setenv("QES_ACK_LOG", "/nonexistent-qes-dir/ack.log", 1), 0);
    char path[4200], err[2048] = "";
    snprintf(path, sizeof path, "%s/a.db", g_dir);
    struct qes_recorder *r = NULL;
    cr_assert_eq(qes_rec_sqlite_open_ex(path, NULL, &r, err, sizeof err), QES_EIO);
    cr_assert_null(r);
    cr_assert_not_null(strstr(err, "QES_ACK_LOG"), "%s", err);
    cr_assert_not_null(strstr(err, "/nonexistent-qes-dir/ack.log"), "%s", err);
}

/* ---- storage failures ----------------------------------------------------------- */

/* The WAL's fsync fails at a commit: QES_EDB with the file, SQLite's message
 * and the call; the records acknowledged before are in the file, the failed
 * batch is not acknowledged, nothing more is written, the file is sound. */
Test(sqlite_opts, fsync_failure)
{
    struct qes_recorder *r = open_sink(NULL);
    for (uint64_t i = 0; i < 5; i++)
        cr_assert_eq(put_block(r, i), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->flush(r), 0, "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 5);
    g.fail_sync = 1;
    for (uint64_t i = 5; i < 8; i++)
        cr_assert_eq(put_block(r, i), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->flush(r), QES_EDB);
    cr_assert_not_null(strstr(r->errmsg, g_path), "%s", r->errmsg);
    cr_assert_not_null(strstr(r->errmsg, "disk I/O error"), "%s", r->errmsg);
    cr_assert_not_null(strstr(r->errmsg, "fsync"), "%s", r->errmsg);
    cr_assert_not_null(strstr(r->errmsg, "5 record(s) committed before are safe"), "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 5, "a failed commit acknowledges nothing");
    g.fail_sync = 0;
    /* sticky: the sink writes nothing more, even with the disk back */
    cr_assert_eq(put_block(r, 8), QES_EDB);
    cr_assert_eq(r->ops->flush(r), QES_EDB);
    int syncs = g.syncs[F_WAL];
    cr_assert_eq(r->ops->close(r, &g_end), QES_EDB);
    cr_assert_eq(g.syncs[F_WAL], syncs, "close wrote after the failure");
    cr_assert_eq(r->n_acked, 5);
    qes_recorder_destroy(r);
    assert_integrity(g_path);
    long long n = committed_blocks(g_path);
    /* The failed batch may be there after recovery (its frames reached the
     * WAL), never part of it. */
    cr_assert(n == 5 || n == 8, "%lld rows", n);
}

Test(sqlite_opts, disk_full)
{
    struct qes_recorder *r = open_sink(NULL);
    for (uint64_t i = 0; i < 4; i++)
        cr_assert_eq(put_block(r, i), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->flush(r), 0, "%s", r->errmsg);
    g.fail_write = 1;
    for (uint64_t i = 4; i < 9; i++)
        cr_assert_eq(put_block(r, i), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->flush(r), QES_ENOSPC);
    cr_assert_not_null(strstr(r->errmsg, g_path), "%s", r->errmsg);
    cr_assert_not_null(strstr(r->errmsg, "database or disk is full"), "%s", r->errmsg);
    cr_assert_not_null(strstr(r->errmsg, strerror(ENOSPC)), "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 4);
    cr_assert_eq(put_block(r, 9), QES_ENOSPC);
    cr_assert_eq(r->ops->close(r, &g_end), QES_ENOSPC);
    g.fail_write = 0;
    qes_recorder_destroy(r);
    assert_integrity(g_path);
    cr_assert_eq(committed_blocks(g_path), 4);
}

/* A failure while inserting (the page cache spills into a full WAL inside a
 * big batch) is handled like one at commit. */
Test(sqlite_opts, disk_full_inside_a_batch)
{
    struct qes_recorder_opts o = {.batch_s = 3600, .batch_records = 10000000};
    struct qes_recorder *r = open_sink(&o);
    cr_assert_eq(put_block(r, 0), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->flush(r), 0, "%s", r->errmsg);
    g.fail_write = 1;
    int rc = 0;
    uint64_t i;
    /* 200000 rows are far more than the default page cache (2 MB) holds */
    for (i = 1; i < 200000 && !rc; i++)
        rc = put_block(r, i);
    cr_assert_eq(rc, QES_ENOSPC, "no failure after %llu records", (unsigned long long)i);
    cr_assert_not_null(strstr(r->errmsg, "inserting a block record: database or disk is full"),
                       "%s", r->errmsg);
    cr_assert_eq(r->n_acked, 1);
    cr_assert_eq(r->ops->close(r, &g_end), QES_ENOSPC);
    g.fail_write = 0;
    qes_recorder_destroy(r);
    assert_integrity(g_path);
    cr_assert_eq(committed_blocks(g_path), 1);
}
