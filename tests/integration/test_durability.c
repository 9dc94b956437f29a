/*
 * Durability of the SQLite recorder of record, through the qes executable
 * (issue 6, acceptance):
 *   - kill -9 of `qes replay` at pseudo-random moments, 24 times: after
 *     each, PRAGMA integrity_check is ok and every acknowledged record is
 *     there;
 *   - a full disk (a small tmpfs; root only): a clear error naming the file,
 *     exit status 2, a sound database holding every acknowledged record;
 *   - a failing fsync/fdatasync (libfiu's fiu-run), from the start and in the
 *     middle of a run: the same;
 *   - the sustained write rate into SQLite with synchronous=FULL and the
 *     default batches (reported, not asserted).
 *
 * What a killed process acknowledged is read from its acknowledgement log:
 * with QES_ACK_LOG set, the SQLite sink appends its acknowledged count after
 * every commit and fsyncs it (pipeline/rec_sqlite.c).  The last complete line
 * is a lower bound of what the database must hold.  Records are committed in
 * order, so the rows of each (measure, harmonic) must also be seq 0..n-1: no
 * hole, nothing of a half-committed batch.
 */
#include "pipeline/record.h"
#include "common/err.h"
#include "tests/integration/itest.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <sqlite3.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How the runs of these tests end: what close records. */
static const struct qes_run_end g_end = {
        .latency_p50_us = NAN, .latency_p99_us = NAN, .latency_max_us = NAN, .seconds = NAN};

/* 20 s at 100 kS/s of a 10 kHz tone in one-period blocks, harmonics 1..3:
 * 600000 block records and 3 summaries, a few seconds of recording. */
#define N_BLOCKS    600000
#define N_SUMMARIES 3
#define LONG_INI                          \
    "[source]\n"                          \
    "kind = sim\n"                        \
    "sample_rate_hz = 100000\n"           \
    "seconds = 20\n"                      \
    "adc_bits = 24\n"                     \
    "seed = 7\n"                          \
    "start_time = 2026-11-27T00:00:00Z\n" \
    "[channel.dut]\n"                     \
    "index = 0\n"                         \
    "gain = 2.98023223876953125e-07\n"    \
    "u_gain_rel = 0\n"                    \
    "[sim.dut]\n"                         \
    "freq_hz = 10000\n"                   \
    "harmonics = 1,2,3\n"                 \
    "rms = 1.0,0.001,0.0005\n"            \
    "phase_rad = 0.7,-1.2,2.5\n"          \
    "noise_rms = 1e-5\n"                  \
    "[measure.fund]\n"                    \
    "channel = dut\n"                     \
    "freq_hz = 10000\n"                   \
    "harmonics = 1,2,3\n"                 \
    "block_periods = 1\n"

TestSuite(durability, .timeout = 600);

/* ---- helpers ------------------------------------------------------------------ */

static char g_meta[4200]; /* the capture */

static void make_capture(void)
{
    itest_dir_make();
    itest_simulate("long", LONG_INI);
    snprintf(g_meta, sizeof g_meta, "%s/long.sigmf-meta", itest_dir());
}

static char *path_in_dir(const char *name)
{
    size_t n = strlen(itest_dir()) + strlen(name) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", itest_dir(), name);
    return p;
}

/*
 * Start `[fiu-run FIU_ARGS...] qes replay CAPTURE -o DB -q --no-verify` with
 * QES_ACK_LOG=ack (removed first), stderr into errfile.  Returns the pid
 * (fiu-run execs the program, so it is qes's pid).
 */
static pid_t spawn_replay(const char *db, const char *ack, const char *errfile,
                          const char *const *fiu_args)
{
    unlink(ack);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int devnull = open("/dev/null", O_RDWR);
        if (fd < 0 || devnull < 0)
            _exit(126);
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(fd, 2);
        setenv("QES_ACK_LOG", ack, 1);
        const char *argv[32];
        int n = 0;
        if (fiu_args)
            while (*fiu_args)
                argv[n++] = *fiu_args++;
        argv[n++] = QES_EXE;
        argv[n++] = "replay";
        argv[n++] = g_meta;
        argv[n++] = "-o";
        argv[n++] = db;
        argv[n++] = "-q";
        argv[n++] = "--no-verify";
        argv[n] = NULL;
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* The last complete line of the acknowledgement log; 0 when there is none. */
static uint64_t read_ack(const char *ack)
{
    size_t len = 0;
    char *text = qes_test_slurp(ack, &len);
    if (!text)
        return 0;
    uint64_t last = 0;
    char *p = text;
    for (;;) {
        char *nl = strchr(p, '\n');
        if (!nl)
            break; /* a partial line is no acknowledgement */
        *nl = '\0';
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        cr_assert(end != p && *end == '\0' && !errno, "bad line in %s: '%s'", ack, p);
        cr_assert_geq(v, last, "acknowledgements go backwards in %s", ack);
        last = v;
        p = nl + 1;
    }
    free(text);
    return last;
}

static long long q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s: %s", sql, sqlite3_errmsg(db));
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/*
 * Open db (recovering its WAL, as the next user would), check
 * PRAGMA integrity_check, that its rows are whole prefixes of the record
 * stream, and return the number of block + summary rows (0 for an empty or
 * schema-less file).
 */
static long long check_db(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK,
                 "%s: %s", path, sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s: %s", path, sqlite3_errmsg(db));
    const char *ok = (const char *)sqlite3_column_text(st, 0);
    cr_assert_str_eq(ok ? ok : "(null)", "ok", "%s: integrity_check", path);
    sqlite3_finalize(st);
    long long n = 0;
    if (q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'blocks'")) {
        n = q_int(db, "SELECT count(*) FROM blocks") + q_int(db, "SELECT count(*) FROM summaries");
        /* per (measure, harmonic): rows seq 0 .. n-1 */
        long long bad = q_int(db, "SELECT count(*) FROM (SELECT measure, harmonic FROM blocks"
                                  " GROUP BY measure, harmonic HAVING count(*) != max(seq) + 1)");
        cr_assert_eq(bad, 0, "%s: a hole in the block sequence", path);
        /* no row half-written: columns every block record fills */
        cr_assert_eq(q_int(db, "SELECT count(*) FROM blocks WHERE t IS NULL OR n_samples IS NULL"
                               " OR sample_start IS NULL OR flags IS NULL OR kind IS NULL"),
                     0, "%s: incomplete rows", path);
    }
    sqlite3_close(db);
    return n;
}

/* Copy a file if it exists (a database and its WAL out of a full tmpfs). */
static void copy_if_exists(const char *from, const char *to)
{
    size_t len = 0;
    char *data = qes_test_slurp(from, &len);
    unlink(to);
    if (!data)
        return;
    FILE *f = fopen(to, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    free(data);
}

static int wait_exit(pid_t pid)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "qes did not exit normally (signal %d)",
              WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return WEXITSTATUS(st);
}

/* Deterministic delays: xorshift64*. */
static uint64_t rnd_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void sleep_ms(long ms)
{
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0 && errno == EINTR)
        ;
}

static int have_program(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* ---- kill -9 ------------------------------------------------------------------- */

/*
 * 24 kills at 50..1000 ms after the start (the recording takes a few
 * seconds), each into a fresh file.  After each kill the file is opened as
 * the next user would (recovering the WAL the killed process left), must pass
 * integrity_check and hold at least what the killed process acknowledged.
 * At the end, an uninterrupted replay into the last killed file recovers it
 * and completes the run.
 */
Test(durability, kill9_repeated)
{
    enum { KILLS = 24 };
    make_capture();
    char *ack = path_in_dir("ack.log"), *errf = path_in_dir("stderr.txt");
    char db[4300];
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    int with_acks = 0;
    for (int i = 0; i < KILLS; i++) {
        snprintf(db, sizeof db, "%s/kill%02d.db", itest_dir(), i);
        long delay = 50 + (long)(rnd_next(&seed) % 951);
        pid_t pid = spawn_replay(db, ack, errf, NULL);
        sleep_ms(delay);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "kill %d at %ld ms: qes ended before the kill (status %d)", i, delay,
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        uint64_t acked = read_ack(ack);
        long long rows = check_db(db);
        cr_log_info("kill %2d at %4ld ms: %6llu acknowledged, %6lld rows", i, delay,
                    (unsigned long long)acked, rows);
        cr_assert_geq(rows, (long long)acked,
                      "kill %d at %ld ms: %llu records acknowledged, only %lld in %s", i, delay,
                      (unsigned long long)acked, rows, db);
        with_acks += acked > 0;
    }
    /* Not vacuous: most kills came after some commits. */
    cr_assert_geq(with_acks, KILLS / 4, "only %d of %d kills after a commit", with_acks, KILLS);
    pid_t pid = spawn_replay(db, ack, errf, NULL);
    int status = wait_exit(pid);
    char *err = qes_test_slurp(errf, NULL);
    cr_assert_eq(status, 0, "the final replay failed: %s", err ? err : "");
    free(err);
    cr_assert_eq(read_ack(ack), N_BLOCKS + N_SUMMARIES);
    cr_assert_eq(check_db(db), N_BLOCKS + N_SUMMARIES);
    sqlite3 *h = NULL;
    cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(q_int(h, "SELECT count(*) FROM runs"), 1);
    cr_assert_eq(q_int(h, "SELECT status FROM runs"), 0);
    sqlite3_close(h);
    free(ack);
    free(errf);
    itest_dir_clean();
}

/* ---- full disk ------------------------------------------------------------------ */

static char g_mnt[4200];

static void unmount_tmpfs(void)
{
    if (g_mnt[0] && umount(g_mnt) != 0)
        fprintf(stderr, "could not unmount %s: %s\n", g_mnt, strerror(errno));
    g_mnt[0] = '\0';
}

/*
 * An 8 MB tmpfs holds a few 10000-record batches (~2 MB of WAL each) of the
 * 600000 records, so the disk fills in the middle of the run with records
 * acknowledged before: they must survive, the error must be clear, exit 2.
 */
Test(durability, disk_full, .fini = unmount_tmpfs)
{
    if (geteuid() != 0)
        cr_skip_test("not root: cannot mount a small tmpfs to fill (CI runs as root)");
    make_capture();
    char *mnt = path_in_dir("mnt");
    cr_assert_eq(mkdir(mnt, 0755), 0);
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=8m") != 0)
        cr_skip_test("cannot mount a tmpfs on %s: %s", mnt, strerror(errno));
    snprintf(g_mnt, sizeof g_mnt, "%s", mnt);
    char db[4300], wal[4300];
    snprintf(db, sizeof db, "%s/x.db", mnt);
    snprintf(wal, sizeof wal, "%s/x.db-wal", mnt);
    char *ack = path_in_dir("ack.log"), *errf = path_in_dir("stderr.txt");
    int status = wait_exit(spawn_replay(db, ack, errf, NULL));
    char *err = qes_test_slurp(errf, NULL);
    cr_assert_not_null(err);
    cr_assert_eq(status, 2, "exit %d: %s", status, err);
    cr_assert_not_null(strstr(err, db), "the message does not name the file: %s", err);
    cr_assert_not_null(strstr(err, "database or disk is full"), "%s", err);
    cr_assert_not_null(strstr(err, "No space left on device"), "%s", err);
    cr_log_info("full disk: %s", err);
    uint64_t acked = read_ack(ack);
    cr_assert_gt(acked, 0, "nothing was acknowledged before the disk was full");
    cr_assert_lt(acked, N_BLOCKS);
    /* Check a copy, as a user would after moving the file off the full disk;
     * the WAL holds committed records too. */
    char *copy = path_in_dir("copy.db"), *copy_wal = path_in_dir("copy.db-wal");
    copy_if_exists(db, copy);
    copy_if_exists(wal, copy_wal);
    long long rows = check_db(copy);
    cr_log_info("full disk: %llu acknowledged, %lld rows", (unsigned long long)acked, rows);
    cr_assert_geq(rows, (long long)acked);
    unmount_tmpfs();
    free(copy);
    free(copy_wal);
    free(ack);
    free(errf);
    free(err);
    free(mnt);
    itest_dir_clean();
}

/* ---- failing fsync ------------------------------------------------------------- */

/* SQLite syncs with fdatasync on Linux (fsync where it lacks it); both fail
 * with EIO (failinfo = errno). */
#define FIU_FDATASYNC "enable name=posix/io/sync/fdatasync,failinfo=5"
#define FIU_FSYNC     "enable name=posix/io/sync/fsync,failinfo=5"

/*
 * The fiu-run command line in front of qes: fiu-run -x [-f CTL] [-c CMD]...
 *
 * In a build with AddressSanitizer, libfiu's preloaded malloc wrapper and
 * ASan's interceptors crash each other when libfiu comes first (and ASan
 * refuses to start when it is not first).  So there, fiu-run starts a shell
 * that puts the ASan runtime of this test (found in /proc/self/maps) in
 * front of LD_PRELOAD and execs qes: ASan's malloc wins, libfiu's fsync and
 * fdatasync wrappers stay.  Leak checking is off in that qes: libfiu's
 * preload library leaks a string by design, and qes's own leaks are checked
 * by the other tests.  Skips the test when this cannot be arranged.
 */
static void fiu_argv(const char **argv, size_t n, const char *ctl, const char *const *cmds)
{
    size_t k = 0;
    argv[k++] = "fiu-run";
    argv[k++] = "-x";
    argv[k++] = "-f";
    argv[k++] = ctl ? ctl : "";
    for (; cmds && *cmds; cmds++) {
        argv[k++] = "-c";
        argv[k++] = *cmds;
    }
#if defined(__SANITIZE_ADDRESS__)
    static char rt[4096];
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[8192];
    rt[0] = '\0';
    while (maps && !rt[0] && fgets(line, sizeof line, maps)) {
        char *path = strchr(line, '/');
        if (path && strstr(path, "/libasan.so")) {
            path[strcspn(path, "\n")] = '\0';
            snprintf(rt, sizeof rt, "%s", path);
        }
    }
    if (maps)
        fclose(maps);
    if (!rt[0])
        cr_skip_test("sanitized build, but the ASan runtime is not found in /proc/self/maps: "
                     "fiu-run cannot preload libfiu next to it");
    setenv("QES_ASAN_RT", rt, 1);
    const char *old = getenv("ASAN_OPTIONS");
    char opts[1024];
    snprintf(opts, sizeof opts, "%s%sdetect_leaks=0", old ? old : "", old && *old ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    argv[k++] = "sh";
    argv[k++] = "-c";
    argv[k++] = "LD_PRELOAD=\"$QES_ASAN_RT $LD_PRELOAD\" exec \"$0\" \"$@\"";
#endif
    cr_assert_lt(k, n);
    argv[k] = NULL;
}

static void check_fsync_failure(const char *db, const char *ack, const char *errf, int status)
{
    char *err = qes_test_slurp(errf, NULL);
    cr_assert_not_null(err);
    cr_assert_eq(status, 2, "exit %d: %s", status, err);
    cr_assert_not_null(strstr(err, db), "the message does not name the file: %s", err);
    cr_assert_not_null(strstr(err, "disk I/O error"), "%s", err);
    cr_assert_not_null(strstr(err, "fsync"), "%s", err);
    cr_log_info("fsync failure: %s", err);
    free(err);
    uint64_t acked = read_ack(ack);
    long long rows = check_db(db);
    cr_log_info("fsync failure: %llu acknowledged, %lld rows", (unsigned long long)acked, rows);
    cr_assert_geq(rows, (long long)acked);
}

/* Every sync fails from the start: the database cannot even be set up. */
Test(durability, fsync_fails_from_the_start)
{
    if (!have_program("fiu-run"))
        cr_skip_test("fiu-run (fiu-utils) is not installed: fsync failures not tested");
    make_capture();
    char *db = path_in_dir("f.db"), *ack = path_in_dir("ack.log");
    char *errf = path_in_dir("stderr.txt");
    const char *const cmds[] = {FIU_FDATASYNC, FIU_FSYNC, NULL};
    const char *fiu[16];
    fiu_argv(fiu, 16, NULL, cmds);
    int status = wait_exit(spawn_replay(db, ack, errf, fiu));
    check_fsync_failure(db, ack, errf, status);
    cr_assert_eq(read_ack(ack), 0);
    free(db);
    free(ack);
    free(errf);
    itest_dir_clean();
}

/* Syncs start failing in the middle of the recording (fiu-ctrl after the
 * first commits): the records acknowledged before must all be there. */
Test(durability, fsync_fails_mid_run)
{
    if (!have_program("fiu-run") || !have_program("fiu-ctrl"))
        cr_skip_test("fiu-run/fiu-ctrl (fiu-utils) not installed: fsync failures not tested");
    make_capture();
    char *db = path_in_dir("f.db"), *ack = path_in_dir("ack.log");
    char *errf = path_in_dir("stderr.txt"), *ctl = path_in_dir("fiu-ctl");
    const char *fiu[16];
    fiu_argv(fiu, 16, ctl, NULL);
    pid_t pid = spawn_replay(db, ack, errf, fiu);
    /* wait for the first acknowledgement (at most 60 s) */
    uint64_t before = 0;
    for (int i = 0; i < 6000 && !(before = read_ack(ack)); i++) {
        int st;
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "qes ended before its first commit");
        sleep_ms(10);
    }
    cr_assert_gt(before, 0, "no commit within 60 s");
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "fiu-ctrl -f '%s' -c '%s' -c '%s' %ld", ctl, FIU_FDATASYNC, FIU_FSYNC,
             (long)pid);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    int status = wait_exit(pid);
    check_fsync_failure(db, ack, errf, status);
    cr_assert_geq(read_ack(ack), before);
    cr_assert_lt(read_ack(ack), N_BLOCKS, "the run finished before the failure was injected");
    free(db);
    free(ack);
    free(errf);
    free(ctl);
    itest_dir_clean();
}

/* ---- write rate ----------------------------------------------------------------- */

/* Sustained rate of block records into SQLite through the sink, with the
 * defaults (synchronous=FULL, 1 s / 10000-record batches).  Reported only:
 * absolute time depends on the disk and the machine's load (issue 6 target:
 * >= 100 000 records/s). */
Test(durability, sqlite_write_rate)
{
    enum { N = 200000 };
    itest_dir_make();
    char *path = path_in_dir("rate.db");
    struct qes_recorder *r = NULL;
    char err[2048] = "";
    cr_assert_eq(qes_recorder_open_ex(path, NULL, &r, err, sizeof err), 0, "%s", err);
    struct qes_run_rec run = {
            .id = "6b1e2d1c-3b4a-4c5d-8e6f-7a8b9c0d1e2f",
            .command = "replay",
            .version = "test",
            .build = "test",
            .config_ini = "",
            .config_sha256 = "0",
            .input_json = "null",
            .sample_rate_hz = 100000,
    };
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    struct qes_block_rec b = {
            .measure = "fund",
            .channel = "dut",
            .unit = "V",
            .harmonic = 1,
            .n_samples = 10,
            .freq_hz = 10000,
            .kind = QES_REC_PHASOR,
            .value = NAN,
            .u = NAN,
            .enbw_hz = 10000,
            .thd = NAN,
            .sinad_db = NAN,
            .sfdr_db = NAN,
    };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < N; i++) {
        b.seq = i;
        b.sample_start = 10 * i;
        b.t_ns = (int64_t)(100000 * i);
        b.x = 0.75 + 1e-9 * (double)i;
        b.y = -0.25;
        b.r = hypot(b.x, b.y);
        b.phase_rad = atan2(b.y, b.x);
        cr_assert_eq(r->ops->block(r, &run, &b), 0, "%s", r->errmsg);
    }
    cr_assert_eq(r->ops->close(r, &g_end), 0, "%s", r->errmsg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(r->n_acked, N);
    qes_recorder_destroy(r);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_log_info("SQLite: %d block records in %.3f s = %.0f records/s (synchronous=FULL, "
                "1 s / 10000-record batches)",
                N, s, N / s);
    fprintf(stderr, "SQLite write rate: %d block records in %.3f s = %.0f records/s\n", N, s,
            N / s);
    cr_assert_eq(check_db(path), N);
    free(path);
    itest_dir_clean();
}
