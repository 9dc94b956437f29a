/*
 * The PostgreSQL sink and its spool, against a real server.
 *
 * Every test gets its own server (tests/fixtures/pg-server.sh: initdb in a
 * temporary directory, 127.0.0.1 on a free port, trust authentication,
 * fsync off), started by the suite's init and stopped (-m immediate) by its
 * fini, which Criterion runs also after a failed assertion; a report hook in
 * the runner stops what is left should a test crash or time out.  Tests skip with a message
 * when the PostgreSQL binaries are missing.
 *
 * The URI carries a password (ignored by trust authentication) that must
 * never appear in a message.
 */
#include "pipeline/record.h"
#include "pipeline/spool.h"
#include "common/err.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SECRET  "s3cr3t-pw"
#define FIXTURE QES_SOURCE_DIR "/tests/fixtures/pg-server.sh"

/* ---- the server ------------------------------------------------------------------ */

static char g_dir[512];   /* server directory */
static char g_work[4096]; /* spool and other files */
static char g_uri[600];
static int g_port;
static int g_skip;
static char g_skip_msg[600];

/* The server directory of a test, known to the runner too (crash clean-up). */
static void server_dir(char *buf, size_t len, long runner_pid, const char *test)
{
    snprintf(buf, len, "/tmp/qes-pg.%ld.%s", runner_pid, test);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int fixture(const char *cmd, const char *arg)
{
    char sh[1200];
    snprintf(sh, sizeof sh, "sh '%s' %s '%s' %s", FIXTURE, cmd, g_dir, arg ? arg : "");
    int st = system(sh);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void server_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    cr_assert_eq(fixture("start", port), 0, "cannot start PostgreSQL in %s", g_dir);
}

static void server_stop(const char *mode)
{
    cr_assert_eq(fixture("stop", mode), 0, "cannot stop PostgreSQL in %s", g_dir);
}

static void rm_rf(const char *path)
{
    char sh[4200];
    snprintf(sh, sizeof sh, "rm -rf '%s'", path);
    if (system(sh) != 0)
        fprintf(stderr, "cannot remove %s\n", path);
}

static void pg_init(void)
{
    server_dir(g_dir, sizeof g_dir, (long)getppid(), criterion_current_test->name);
    rm_rf(g_dir);
    snprintf(g_work, sizeof g_work, "%s", qes_test_tmpdir());
    g_port = free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    int rc = g_port > 0 ? fixture("start", port) : -1;
    if (rc == 77) {
        g_skip = 1;
        snprintf(g_skip_msg, sizeof g_skip_msg,
                 "PostgreSQL server binaries missing (/usr/lib/postgresql/15/bin, or no postgres "
                 "user): install Debian's postgresql to run these tests");
        return;
    }
    cr_assert_eq(rc, 0, "cannot start PostgreSQL in %s (see its server.log)", g_dir);
    snprintf(g_uri, sizeof g_uri, "postgresql://postgres:" SECRET "@127.0.0.1:%d/postgres", g_port);
}

static void pg_fini(void)
{
    if (!g_skip)
        fixture("stop", "immediate");
    rm_rf(g_dir);
    if (g_work[0])
        rm_rf(g_work);
}

/* Should a test crash or time out, its fini did not run: the runner stops
 * what is left once all tests are done. */
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
    (void)stats;
    char pattern[128];
    server_dir(pattern, sizeof pattern, (long)getpid(), "*");
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char sh[1200];
        snprintf(sh, sizeof sh, "sh '%s' stop '%s' immediate >/dev/null 2>&1; rm -rf '%s'", FIXTURE,
                 g.gl_pathv[i], g.gl_pathv[i]);
        if (system(sh) != 0)
            fprintf(stderr, "cannot clean up %s\n", g.gl_pathv[i]);
    }
    globfree(&g);
}

TestSuite(pg, .init = pg_init, .fini = pg_fini, .timeout = 600);

#define NEED_PG()                           \
    do {                                    \
        if (g_skip)                         \
            cr_skip_test("%s", g_skip_msg); \
    } while (0)

/* ---- client helpers ------------------------------------------------------------ */

static PGconn *db(void)
{
    PGconn *c = PQconnectdb(g_uri);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

static long long q_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1, "%s", sql);
    long long v = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* Rows of the spool file (0 when there is none). */
static long long spool_rows(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    sqlite3 *s = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    cr_assert_eq(sqlite3_prepare_v2(s, "SELECT count(*) FROM spool", -1, &q, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(s));
    cr_assert_eq(sqlite3_step(q), SQLITE_ROW);
    long long n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(s);
    return n;
}

/* stderr into a file, to read what the sink printed. */
static int g_saved_stderr = -1;

static void stderr_to(const char *path)
{
    fflush(stderr);
    g_saved_stderr = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && g_saved_stderr >= 0);
    dup2(fd, 2);
    close(fd);
}

static char *stderr_back(const char *path)
{
    fflush(stderr);
    dup2(g_saved_stderr, 2);
    close(g_saved_stderr);
    char *text = qes_test_slurp(path, NULL);
    cr_assert(text);
    fprintf(stderr, "%s", text); /* keep it visible in the test log */
    return text;
}

/* A file in the test's work directory; each name keeps its own buffer (a
 * ring of 8), so a spool path and a log path never overwrite each other. */
static const char *work(const char *name)
{
    static char path[8][4200];
    static unsigned next;
    char *p = path[next++ % 8];
    snprintf(p, sizeof path[0], "%s/%s", g_work, name);
    return p;
}

/* ---- records ----------------------------------------------------------------- */

#define RUN_SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static struct qes_run_rec make_run(const char *id)
{
    struct qes_run_rec run = {
            .command = "replay",
            .version = "0.1.0",
            .build = "GNU 12.2.0 RelWithDebInfo -O2 -g",
            .config_ini = "[source]\nkind = sigmf\npath = \"cap\\x.sigmf-meta\"\t; tab\n",
            .config_sha256 = RUN_SHA,
            .input_json = "{\"kind\":\"sigmf\",\"meta\":\"cap\\\\x.sigmf-meta\",\"n\":[1,2.5]}",
            .t_start_ns = 1795743206123456789LL,
            .sample_rate_hz = 48000,
    };
    snprintf(run.id, sizeof run.id, "%s", id);
    return run;
}

/* Block i of a replay-like sequence: three harmonics of "fund", then one
 * scalar "zener" group every fourth; NaN, flags and quality vary. */
static struct qes_block_rec make_block(uint64_t i)
{
    struct qes_block_rec b = {
            .measure = "fund",
            .channel = "dut",
            .unit = "V",
            .harmonic = (unsigned)(i % 3) + 1,
            .seq = i / 3,
            .sample_start = (i / 3) * 480,
            .n_samples = 480,
            .t_ns = 1795743206123456789LL + (int64_t)(i / 3) * 10000000LL,
            .freq_hz = 1000.0 * (double)((i % 3) + 1),
            .x = 0.7648 + 1e-9 * (double)i,
            .y = -0.6442 / (double)(i + 1),
            .r = sqrt(0.7648 * 0.7648 + 0.6442 * 0.6442) + 1e-17 * (double)i,
            .phase_rad = -3.141592653589793 + 1e-3 * (double)(i % 100),
            .enbw_hz = i % 7 ? 150.0 : NAN,
            .thd = i % 5 ? NAN : 1e-5 * (double)i,
            .sinad_db = i % 5 ? NAN : 90.25,
            .sfdr_db = NAN,
            .flags = (i % 11 == 0 ? QES_FLAG_GAP : 0) | (i % 13 == 0 ? QES_FLAG_PARTIAL : 0),
    };
    if (i % 17 == 0)
        b.x = b.y = b.r = b.phase_rad = NAN;
    if (i % 4 == 3) {
        b.kind = QES_REC_SCALAR;
        b.measure = "zener";
        b.channel = "nvm";
        b.harmonic = 0;
        b.seq = i / 4;
        b.value = 9.99998712 + 1e-9 * (double)i;
        b.u = i % 8 == 7 ? NAN : 2.1e-7;
    }
    return b;
}

static struct qes_summary_rec make_summary(unsigned h)
{
    struct qes_summary_rec m = {
            .measure = "fund",
            .channel = "dut",
            .unit = "V",
            .harmonic = h,
            .seq = 0,
            .freq_hz = 1000.0 * h,
            .n_excluded = 1,
            .flags = QES_FLAG_FEW_BLOCKS | QES_FLAG_EXCLUDED,
    };
    m.s.n = 200;
    m.s.x = 0.5 / h;
    m.s.y = NAN;
    m.s.r = 1e-300;
    m.s.phase_rad = -0.0;
    m.s.u_x = NAN;
    m.s.u_y = INFINITY;
    m.s.u_r = 2.5e-6;
    m.s.u_phase_rad = 1.0 / 3.0;
    m.s.dof = h == 1 ? INFINITY : 199;
    m.s.k = 1.96;
    m.s.U_r = 5e-324;
    m.s.coverage = 0.95;
    m.s.budget[0] = (struct qes_budget_term){"typeA", 2.5e-6, 199};
    m.s.budget[1] = (struct qes_budget_term){"gain", 0, INFINITY};
    m.s.n_budget = 2;
    snprintf(m.s.typeA_rule, sizeof m.s.typeA_rule, "reversal \"triples\"\\ n-1");
    if (h == 4) {
        m.kind = QES_REC_SCALAR;
        m.measure = "zener";
        m.channel = "nvm";
        m.harmonic = 0;
        m.v.n = 40;
        m.v.value = 9.99998712;
        m.v.u = 3.2e-8;
        m.v.dof = 39;
        m.v.k = 2.0226909117347285;
        m.v.U = 6.4726e-8;
        m.v.coverage = 0.95;
        m.v.budget[0] = (struct qes_budget_term){"typeA", 3e-8, 39};
        m.v.budget[1] = (struct qes_budget_term){"vref", 1.1e-8, INFINITY};
        m.v.n_budget = 2;
    }
    return m;
}

static struct qes_recorder *open_pg(const struct qes_recorder_opts *o)
{
    struct qes_recorder *r = NULL;
    char err[8192] = "";
    int rc = qes_recorder_open_ex(g_uri, o, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "open: %s (%s)", err, qes_err_name(rc));
    cr_assert_str_eq(r->ops->name, "postgresql");
    cr_assert_null(strstr(r->target, SECRET), "the password shows in the target: %s", r->target);
    return r;
}

/* Blocks [from, to) of run; asserts every call succeeds. */
static void send_blocks(struct qes_recorder *r, const struct qes_run_rec *run, uint64_t from,
                        uint64_t to)
{
    for (uint64_t i = from; i < to; i++) {
        struct qes_block_rec b = make_block(i);
        int rc = r->ops->block(r, run, &b);
        cr_assert_eq(rc, 0, "block %" PRIu64 ": %s", i, r->errmsg);
    }
}

static void send_summaries(struct qes_recorder *r, const struct qes_run_rec *run)
{
    for (unsigned h = 1; h <= 4; h++) {
        struct qes_summary_rec m = make_summary(h);
        cr_assert_eq(r->ops->summary(r, run, &m), 0, "%s", r->errmsg);
    }
}

/* How the runs of these tests end (status 0, so that a run's status tells
 * that its close arrived); the live figures show their digits. */
static struct qes_run_end test_end(void)
{
    struct qes_run_end e = qes_run_end_of_status(0);
    e.samples = 1440000;
    e.lost = 480;
    e.gaps = 2;
    e.reconnects = 3;
    e.frames_dropped = 9;
    e.latency_n = 3000;
    e.latency_p50_us = 410.5;
    e.latency_p99_us = 1999.9999999999998;
    e.latency_max_us = 25000.125;
    e.seconds = 30.000000001;
    e.t_end_ns = 1795743236133456789LL;
    return e;
}

/* The run end columns of run id as JSON text (row_to_json), keys as in the
 * run_end record. */
static json_t *run_end_row(PGconn *c, const char *id)
{
    const char *params[1] = {id};
    PGresult *r = PQexecParams(c,
                               "SELECT row_to_json(t)::text FROM (SELECT id AS run, status,"
                               " samples, lost, gaps, reconnects, frames_dropped, latency_n,"
                               " latency_p50_us, latency_p99_us, latency_max_us, seconds, t_end"
                               " FROM runs WHERE id = $1) t",
                               1, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1, "run %s: %d rows", id, PQntuples(r));
    json_error_t je;
    json_t *row = json_loads(PQgetvalue(r, 0, 0), 0, &je);
    cr_assert(row, "row_to_json: %s", je.text);
    PQclear(r);
    return row;
}

static int json_same(json_t *a, json_t *b);

/* The run end columns of run id hold test_end() (the record's JSON text,
 * read back, without its type). */
static void assert_run_end(PGconn *c, const char *id)
{
    struct qes_run_end e = test_end();
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert(f);
    cr_assert_eq(qes_run_end_json(f, id, &e), 0);
    cr_assert_eq(fclose(f), 0);
    json_error_t je;
    json_t *rec = json_loads(buf, 0, &je), *row = run_end_row(c, id);
    cr_assert(rec, "%s", je.text);
    json_object_del(rec, "type");
    char *a = json_dumps(rec, 0), *b = json_dumps(row, 0);
    cr_assert(json_same(rec, row), "run end: record %s, PostgreSQL %s", a, b);
    free(a);
    free(b);
    free(buf);
    json_decref(rec);
    json_decref(row);
}

static void close_ok(struct qes_recorder *r)
{
    struct qes_run_end end = test_end();
    int rc = r->ops->close(r, &end);
    cr_assert_eq(rc, 0, "close: %s", r->errmsg);
    cr_assert_null(strstr(r->errmsg, SECRET), "the password shows: %s", r->errmsg);
}

/* Every stored block and summary key is there once. */
static void assert_unique(PGconn *c)
{
    cr_assert_eq(q_int(c, "SELECT count(*) FROM (SELECT DISTINCT run, measure, harmonic, seq"
                          " FROM blocks) d"),
                 q_int(c, "SELECT count(*) FROM blocks"));
    cr_assert_eq(q_int(c, "SELECT count(*) FROM (SELECT DISTINCT run, measure, harmonic, seq"
                          " FROM summaries) d"),
                 q_int(c, "SELECT count(*) FROM summaries"));
}

/* ---- comparing with the JSON Lines sink ---------------------------------------- */

/* JSON values equal, numbers compared as doubles (exactly). */
static int json_same(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    if (json_is_object(a) && json_is_object(b)) {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (!w || !json_same(v, w))
                return 0;
        }
        return 1;
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_same(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    return json_equal(a, b);
}

/* The stored row of a JSONL record as a JSON object (row_to_json). */
static json_t *row_of(PGconn *c, const char *table, json_t *rec)
{
    const char *run = json_string_value(json_object_get(rec, "run"));
    const char *measure = json_string_value(json_object_get(rec, "measure"));
    json_t *h = json_object_get(rec, "harmonic");
    char harmonic[32], seq[32];
    snprintf(harmonic, sizeof harmonic, "%" JSON_INTEGER_FORMAT, h ? json_integer_value(h) : 0);
    snprintf(seq, sizeof seq, "%" JSON_INTEGER_FORMAT,
             json_integer_value(json_object_get(rec, "seq")));
    const char *params[4] = {run, measure, harmonic, seq};
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT row_to_json(rec)::text FROM %s rec WHERE run = $1 AND measure = $2"
             " AND harmonic = $3 AND seq = $4",
             table);
    PGresult *r = PQexecParams(c, sql, 4, NULL, params, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1, "%s row %s/%s/%s: %d rows", table, measure, harmonic, seq,
                 PQntuples(r));
    json_error_t je;
    json_t *row = json_loads(PQgetvalue(r, 0, 0), 0, &je);
    cr_assert(row, "row_to_json: %s", je.text);
    PQclear(r);
    return row;
}

/* Every field of the JSON record equals its column; every other column is
 * NULL (or the scalar's harmonic 0, or the kind). */
static void assert_row_matches(json_t *rec, json_t *row)
{
    const char *k;
    json_t *v;
    json_object_foreach(rec, k, v)
    {
        if (!strcmp(k, "type"))
            continue;
        const char *col = !strcmp(k, "U_r") ? "u_r_expanded" : !strcmp(k, "U") ? "u_expanded" : k;
        json_t *w = json_object_get(row, col);
        cr_assert(w, "column %s missing", col);
        char *a = json_dumps(v, JSON_ENCODE_ANY), *b = json_dumps(w, JSON_ENCODE_ANY);
        cr_assert(json_same(v, w), "%s: JSONL %s, PostgreSQL %s", k, a, b);
        free(a);
        free(b);
    }
    json_object_foreach(row, k, v)
    {
        if (!strcmp(k, "kind") || !strcmp(k, "harmonic") || !strcmp(k, "u_r_expanded") ||
            !strcmp(k, "u_expanded"))
            continue;
        if (!json_object_get(rec, k))
            cr_assert(json_is_null(v), "column %s is not NULL but absent from the JSONL record", k);
    }
    const char *kind = json_string_value(json_object_get(row, "kind"));
    cr_assert_str_eq(kind, json_object_get(rec, "harmonic") ? "phasor" : "scalar");
}

/* ---- tests -------------------------------------------------------------------- */

#define N_REPLAY 3000

Test(pg, replay_rows_equal_jsonl)
{
    NEED_PG();
    struct qes_recorder_opts o = {.spool_path = work("spool.db"), .batch_records = 700};
    struct qes_recorder *pg = open_pg(&o), *jl = NULL;
    char err[8192];
    cr_assert_eq(qes_recorder_open(work("out.jsonl"), &jl, err, sizeof err), 0, "%s", err);
    struct qes_run_rec run = make_run("0f8e2d1c-3b4a-4c5d-8e6f-7a8b9c0d1e2f");
    struct qes_recorder *both[2] = {pg, jl};
    for (int s = 0; s < 2; s++)
        cr_assert_eq(both[s]->ops->run(both[s], &run), 0, "%s", both[s]->errmsg);
    for (int s = 0; s < 2; s++) {
        send_blocks(both[s], &run, 0, N_REPLAY);
        send_summaries(both[s], &run);
    }
    close_ok(pg);
    struct qes_run_end end = test_end();
    cr_assert_eq(jl->ops->close(jl, &end), 0, "%s", jl->errmsg);
    cr_assert_eq(pg->n_acked, N_REPLAY + 4);
    cr_assert_eq(pg->n_lost, 0);
    qes_recorder_destroy(pg);
    qes_recorder_destroy(jl);
    cr_assert_eq(spool_rows(work("spool.db")), 0);

    PGconn *c = db();
    cr_assert_eq(q_int(c, "SELECT count(*) FROM blocks"), N_REPLAY);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM summaries"), 4);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM runs WHERE status = 0 AND closed_utc IS NOT NULL"),
                 1);
    cr_assert_eq(q_int(c, "SELECT value::int FROM qes_meta WHERE key = 'schema_version'"), 1);
    FILE *f = fopen(work("out.jsonl"), "r");
    cr_assert(f);
    char *line = NULL;
    size_t cap = 0;
    int n_block = 0, n_sum = 0, n_run = 0, n_end = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *rec = json_loads(line, 0, &je);
        cr_assert(rec, "%s", je.text);
        const char *type = json_string_value(json_object_get(rec, "type"));
        if (!strcmp(type, "run_end")) {
            n_end++;
            json_t *row = run_end_row(c, json_string_value(json_object_get(rec, "run")));
            json_object_del(rec, "type");
            char *a = json_dumps(rec, 0), *b = json_dumps(row, 0);
            cr_assert(json_same(rec, row), "run_end: JSONL %s, PostgreSQL %s", a, b);
            free(a);
            free(b);
            json_decref(row);
        } else if (!strcmp(type, "run")) {
            n_run++;
            const char *params[1] = {json_string_value(json_object_get(rec, "run"))};
            PGresult *r = PQexecParams(c,
                                       "SELECT row_to_json(t)::text FROM (SELECT id AS run,"
                                       " command, version, build, config_sha256, config,"
                                       " input::json AS input, t_start, sample_rate_hz"
                                       " FROM runs WHERE id = $1) t",
                                       1, NULL, params, NULL, NULL, 0);
            cr_assert_eq(PQntuples(r), 1, "%s", PQresultErrorMessage(r));
            json_t *row = json_loads(PQgetvalue(r, 0, 0), 0, &je);
            PQclear(r);
            json_object_del(rec, "type");
            char *a = json_dumps(rec, 0), *b = json_dumps(row, 0);
            cr_assert(json_same(rec, row), "run: JSONL %s, PostgreSQL %s", a, b);
            free(a);
            free(b);
            json_decref(row);
        } else {
            int blk = !strcmp(type, "block");
            n_block += blk;
            n_sum += !blk;
            json_t *row = row_of(c, blk ? "blocks" : "summaries", rec);
            assert_row_matches(rec, row);
            json_decref(row);
        }
        json_decref(rec);
    }
    free(line);
    fclose(f);
    cr_assert_eq(n_run, 1);
    cr_assert_eq(n_block, N_REPLAY);
    cr_assert_eq(n_sum, 4);
    cr_assert_eq(n_end, 1, "the run_end line is the JSON Lines file's last");
    PQfinish(c);
}

Test(pg, server_stopped_mid_run_and_restarted)
{
    NEED_PG();
    const char *spool = work("spool.db");
    struct qes_recorder_opts o = {.spool_path = spool, .batch_records = 250};
    stderr_to(work("stderr.txt"));
    struct qes_recorder *r = open_pg(&o);
    struct qes_run_rec run = make_run("11111111-2222-4333-8444-555555555555");
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    send_blocks(r, &run, 0, 1000);
    server_stop("fast");
    send_blocks(r, &run, 1000, 2000); /* fails mid-batch, then spools */
    cr_assert_gt(spool_rows(spool), 0, "nothing spooled while the server was down");
    server_start();
    send_blocks(r, &run, 2000, 2500);
    /* past the back-off: the next batches drain the spool during the run */
    sleep(5);
    send_blocks(r, &run, 2500, 3000);
    cr_assert_eq(spool_rows(spool), 0, "the spool did not drain during the run");
    send_summaries(r, &run);
    close_ok(r);
    char *msg = stderr_back(work("stderr.txt"));
    cr_assert(strstr(msg, "qes: WARNING: PostgreSQL postgresql://postgres@127.0.0.1:"),
              "no warning: %s", msg);
    cr_assert(strstr(msg, "spooling to"), "%s", msg);
    cr_assert_null(strstr(msg, SECRET), "the password shows: %s", msg);
    cr_assert_eq(r->n_lost, 0);
    cr_assert_eq(r->n_acked, 3004);
    qes_recorder_destroy(r);
    free(msg);

    cr_assert_eq(spool_rows(spool), 0);
    PGconn *c = db();
    cr_assert_eq(q_int(c, "SELECT count(*) FROM blocks"), 3000);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM summaries"), 4);
    assert_unique(c);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM runs WHERE status = 0"), 1);
    assert_run_end(c, "11111111-2222-4333-8444-555555555555");
    PQfinish(c);
}

Test(pg, server_down_at_open_then_drained_on_next_open)
{
    NEED_PG();
    const char *spool = work("spool.db");
    struct qes_recorder_opts o = {.spool_path = spool};
    server_stop("fast");
    stderr_to(work("stderr.txt"));
    struct qes_recorder *r = open_pg(&o);
    struct qes_run_rec run = make_run("22222222-2222-4333-8444-555555555555");
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    send_blocks(r, &run, 0, 1200);
    send_summaries(r, &run);
    close_ok(r); /* gives up after a few seconds: the rows stay spooled */
    char *msg = stderr_back(work("stderr.txt"));
    cr_assert(strstr(msg, "unreachable"), "%s", msg);
    cr_assert(strstr(msg, spool), "the warning does not name the spool: %s", msg);
    cr_assert(strstr(r->errmsg, "1204 record(s) remain in the spool"), "%s", r->errmsg);
    cr_assert_eq(r->n_lost, 0);
    cr_assert_eq(r->n_acked, 0);
    qes_recorder_destroy(r);
    free(msg);
    /* run + 1200 blocks + 4 summaries + the run's status */
    cr_assert_eq(spool_rows(spool), 1206);

    server_start();
    r = open_pg(&o);
    cr_assert_eq(spool_rows(spool), 0, "not drained at open");
    cr_assert_eq(r->n_acked, 1204);
    close_ok(r);
    qes_recorder_destroy(r);
    PGconn *c = db();
    cr_assert_eq(q_int(c, "SELECT count(*) FROM blocks"), 1200);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM summaries"), 4);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM runs WHERE status = 0"), 1);
    /* the run end went through the spool too */
    assert_run_end(c, "22222222-2222-4333-8444-555555555555");
    assert_unique(c);
    PQfinish(c);
}

Test(pg, full_spool_counts_losses)
{
    NEED_PG();
    const char *spool = work("spool.db");
    /* 64 KiB: room for a few hundred rows */
    struct qes_recorder_opts o = {
            .spool_path = spool, .spool_max_mb = 0.0625, .batch_records = 100};
    server_stop("fast");
    stderr_to(work("stderr.txt"));
    struct qes_recorder *r = open_pg(&o);
    struct qes_run_rec run = make_run("33333333-2222-4333-8444-555555555555");
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    send_blocks(r, &run, 0, 3000); /* keeps running: no error */
    close_ok(r);
    char *msg = stderr_back(work("stderr.txt"));
    cr_assert_gt(r->n_lost, 0);
    cr_assert(strstr(msg, "is full") && strstr(msg, "LOST"), "no loud message: %s", msg);
    uint64_t lost = r->n_lost;
    qes_recorder_destroy(r);
    free(msg);
    struct stat st;
    cr_assert_eq(stat(spool, &st), 0);
    cr_assert_leq(st.st_size, 65536, "the spool outgrew its bound: %lld bytes",
                  (long long)st.st_size);
    long long kept = spool_rows(spool);
    cr_assert_gt(kept, 1);

    /* what was kept arrives, once; with what was lost it makes every record */
    server_start();
    r = open_pg(&o);
    close_ok(r);
    qes_recorder_destroy(r);
    PGconn *c = db();
    long long n = q_int(c, "SELECT count(*) FROM blocks");
    cr_assert_eq((uint64_t)n + lost, 3000, "%lld stored + %" PRIu64 " lost", n, lost);
    assert_unique(c);
    PQfinish(c);
    cr_assert_eq(spool_rows(spool), 0);
}

Test(pg, same_records_twice_no_duplicates)
{
    NEED_PG();
    struct qes_recorder_opts o = {.spool_path = work("spool.db"), .batch_records = 333};
    struct qes_run_rec run = make_run("44444444-2222-4333-8444-555555555555");
    for (int pass = 0; pass < 2; pass++) {
        struct qes_recorder *r = open_pg(&o);
        cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
        send_blocks(r, &run, 0, 1000);
        send_blocks(r, &run, 500, 700); /* a retry inside the run as well */
        send_summaries(r, &run);
        close_ok(r);
        if (pass)
            cr_assert(strstr(r->errmsg, "already recorded"), "%s", r->errmsg);
        qes_recorder_destroy(r);
    }
    PGconn *c = db();
    cr_assert_eq(q_int(c, "SELECT count(*) FROM blocks"), 1000);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM summaries"), 4);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM runs"), 1);
    assert_unique(c);

    /* a re-sent record with another value is refused, not kept or skipped */
    struct qes_recorder *r = open_pg(&o);
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    struct qes_block_rec b = make_block(10);
    b.x += 1e-15;
    cr_assert_eq(r->ops->block(r, &run, &b), 0, "%s", r->errmsg);
    struct qes_run_end end = test_end();
    int rc = r->ops->close(r, &end);
    cr_assert_eq(rc, QES_EDB, "%s", qes_err_name(rc));
    cr_assert(strstr(r->errmsg, "already recorded with different values"), "%s", r->errmsg);
    qes_recorder_destroy(r);
    /* and a run id with another configuration */
    struct qes_run_rec other = run;
    other.config_sha256[0] = '0';
    r = open_pg(&o);
    cr_assert_eq(r->ops->run(r, &other), 0, "%s", r->errmsg);
    rc = r->ops->close(r, &end);
    cr_assert_eq(rc, QES_EDB, "%s", qes_err_name(rc));
    cr_assert(strstr(r->errmsg, "different configuration"), "%s", r->errmsg);
    qes_recorder_destroy(r);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM blocks"), 1000);
    PQfinish(c);
}

/* Child: one writer of run id (and of the shared run), then _exit. */
static void writer(const char *id, const char *spool)
{
    struct qes_recorder_opts o = {.spool_path = spool, .batch_records = 500};
    struct qes_recorder *r[2] = {NULL, NULL};
    char err[8192];
    struct qes_run_rec run = make_run(id),
                       shared = make_run("99999999-2222-4333-8444-555555555555");
    int ok = qes_recorder_open_ex(g_uri, &o, &r[0], err, sizeof err) == 0 &&
             qes_recorder_open_ex(g_uri, &o, &r[1], err, sizeof err) == 0 &&
             r[0]->ops->run(r[0], &run) == 0 && r[1]->ops->run(r[1], &shared) == 0;
    for (uint64_t i = 0; ok && i < 20000; i++) {
        struct qes_block_rec b = make_block(i);
        ok = r[0]->ops->block(r[0], &run, &b) == 0 && r[1]->ops->block(r[1], &shared, &b) == 0;
    }
    struct qes_run_end end = test_end();
    ok = ok && r[0]->ops->close(r[0], &end) == 0 && r[1]->ops->close(r[1], &end) == 0 &&
         !r[0]->n_lost && !r[1]->n_lost;
    if (!ok)
        fprintf(stderr, "writer %s: %s | %s | %s\n", id, err, r[0] ? r[0]->errmsg : "",
                r[1] ? r[1]->errmsg : "");
    qes_recorder_destroy(r[0]);
    qes_recorder_destroy(r[1]);
    fflush(NULL);
    _exit(ok ? 0 : 1);
}

Test(pg, two_writers_one_database)
{
    NEED_PG();
    pid_t pid[2];
    const char *ids[2] = {"aaaaaaaa-2222-4333-8444-555555555555",
                          "bbbbbbbb-2222-4333-8444-555555555555"};
    char spools[2][4200];
    for (int i = 0; i < 2; i++) {
        snprintf(spools[i], sizeof spools[i], "%s/spool%d.db", g_work, i);
        fflush(NULL);
        pid[i] = fork();
        cr_assert_geq(pid[i], 0);
        if (pid[i] == 0)
            writer(ids[i], spools[i]);
    }
    for (int i = 0; i < 2; i++) {
        int st = 0;
        cr_assert_eq(waitpid(pid[i], &st, 0), pid[i]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d failed", i);
    }
    PGconn *c = db();
    cr_assert_eq(q_int(c, "SELECT count(*) FROM blocks"), 3 * 20000);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM runs"), 3);
    assert_unique(c);
    PQfinish(c);
}

/* The schema of a qes whose runs table had no run end columns (its
 * rec_pg.c, verbatim), and a run it recorded and closed with status 3. */
static const char old_schema_sql[] =
        "CREATE TABLE IF NOT EXISTS qes_meta(key text PRIMARY KEY, value text NOT NULL);"
        "CREATE TABLE IF NOT EXISTS runs("
        " id text PRIMARY KEY, command text, version text, build text, config_sha256 text,"
        " config text, input text, t_start text, sample_rate_hz double precision,"
        " status integer, closed_utc text);"
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
        "INSERT INTO qes_meta(key, value) VALUES ('schema_version', '1') ON CONFLICT DO NOTHING;"
        "INSERT INTO runs(id, command, status, closed_utc) VALUES"
        " ('66666666-0000-4000-8000-000000000000', 'replay', 3,"
        " '2026-01-01T00:00:00.000000000Z');";

#define RUN_END_COLUMNS                                                                     \
    "SELECT count(*) FROM pg_attribute WHERE attrelid = 'runs'::regclass AND attnum > 0"    \
    " AND NOT attisdropped AND attname IN ('samples', 'lost', 'gaps', 'reconnects',"        \
    " 'frames_dropped', 'latency_n', 'latency_p50_us', 'latency_p99_us', 'latency_max_us'," \
    " 'seconds', 't_end')"

/* A database of a qes without the run end columns: opening it adds them
 * (still schema_version 1), its old run keeps NULL there, a new run records
 * them; a second open leaves the table alone. */
Test(pg, old_schema_gets_the_run_end_columns)
{
    NEED_PG();
    PGconn *c = db();
    PGresult *res = PQexec(c, old_schema_sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    cr_assert_eq(q_int(c, RUN_END_COLUMNS), 0);
    struct qes_recorder_opts o = {.spool_path = work("spool.db")};
    const char *id = "77777777-2222-4333-8444-555555555555";
    for (int pass = 0; pass < 2; pass++) {
        struct qes_recorder *r = open_pg(&o);
        cr_assert_eq(q_int(c, RUN_END_COLUMNS), 11, "pass %d", pass);
        struct qes_run_rec run = make_run(id);
        cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
        send_blocks(r, &run, 0, 30);
        close_ok(r);
        cr_assert_eq(r->n_lost, 0);
        qes_recorder_destroy(r);
    }
    cr_assert_eq(q_int(c, "SELECT value::int FROM qes_meta WHERE key = 'schema_version'"), 1);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM runs WHERE id = '66666666-0000-4000-8000-"
                          "000000000000' AND status = 3 AND samples IS NULL AND lost IS NULL"
                          " AND gaps IS NULL AND reconnects IS NULL AND frames_dropped IS NULL"
                          " AND latency_n IS NULL AND latency_p50_us IS NULL"
                          " AND latency_p99_us IS NULL AND latency_max_us IS NULL"
                          " AND seconds IS NULL AND t_end IS NULL"),
                 1);
    assert_run_end(c, id);
    cr_assert_eq(q_int(c, "SELECT count(*) FROM blocks"), 30);
    PQfinish(c);
}

/* A spool left by a qes that sent only the status at close (rows of kind 3:
 * id, status, closed_utc) is still sent: the run gets its status, and NULL
 * run end columns. */
Test(pg, old_spool_status_row_is_sent)
{
    NEED_PG();
    const char *spool = work("spool.db");
    char tag[256], err[1024];
    snprintf(tag, sizeof tag, "postgresql://postgres@127.0.0.1:%d/postgres", g_port);
    struct qes_spool *sp = NULL;
    cr_assert_eq(qes_spool_open(spool, 1, tag, 1, &sp, err, sizeof err), 0, "%s", err);
    static const char run_row[] = "88888888-2222-4333-8444-555555555555\treplay\t0.1.0\tb\t"
                                  "00\t[x]\tnull\t2026-11-27T01:33:26.123456789Z\t48000\n";
    static const char close_row[] =
            "88888888-2222-4333-8444-555555555555\t3\t2026-11-27T02:00:00.000000000Z\n";
    const struct qes_spool_row rows[2] = {{2, run_row, sizeof run_row - 1},
                                          {3, close_row, sizeof close_row - 1}};
    size_t kept = 0;
    cr_assert_eq(qes_spool_put(sp, rows, 2, &kept, err, sizeof err), 0, "%s", err);
    cr_assert_eq(kept, 2);
    qes_spool_close(sp);
    struct qes_recorder_opts o = {.spool_path = spool};
    struct qes_recorder *r = open_pg(&o);
    cr_assert_eq(spool_rows(spool), 0, "not drained at open: %s", r->errmsg);
    close_ok(r);
    qes_recorder_destroy(r);
    PGconn *c = db();
    cr_assert_eq(q_int(c, "SELECT count(*) FROM runs WHERE id = '88888888-2222-4333-8444-"
                          "555555555555' AND status = 3"
                          " AND closed_utc = '2026-11-27T02:00:00.000000000Z'"
                          " AND samples IS NULL AND t_end IS NULL AND seconds IS NULL"),
                 1);
    PQfinish(c);
}

Test(pg, refused_at_open_is_an_error)
{
    NEED_PG();
    char uri[700], err[8192] = "";
    snprintf(uri, sizeof uri, "postgresql://postgres:" SECRET "@127.0.0.1:%d/nosuchdb", g_port);
    struct qes_recorder_opts o = {.spool_path = work("spool.db")};
    struct qes_recorder *r = NULL;
    int rc = qes_recorder_open_ex(uri, &o, &r, err, sizeof err);
    cr_assert_eq(rc, QES_EDB, "%s: %s", qes_err_name(rc), err);
    cr_assert_null(r);
    cr_assert(strstr(err, "nosuchdb") && strstr(err, "does not exist"), "%s", err);
    cr_assert_null(strstr(err, SECRET), "the password shows: %s", err);
    cr_assert_eq(spool_rows(work("spool.db")), 0);
    rc = qes_recorder_open_ex("postgresql://u:" SECRET "@h:notaport/db?bad=1", &o, &r, err,
                              sizeof err);
    cr_assert_eq(rc, QES_EINVAL, "%s: %s", qes_err_name(rc), err);
    cr_assert_null(strstr(err, SECRET), "the password shows: %s", err);
}

Test(pg, insert_rate)
{
    NEED_PG();
    const uint64_t n = 200000;
    struct qes_recorder_opts o = {.spool_path = work("spool.db")};
    struct qes_recorder *r = open_pg(&o);
    struct qes_run_rec run = make_run("55555555-2222-4333-8444-555555555555");
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    send_blocks(r, &run, 0, n);
    close_ok(r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_assert_eq(r->n_acked, n);
    qes_recorder_destroy(r);
    PGconn *c = db();
    cr_assert_eq(q_int(c, "SELECT count(*) FROM blocks"), (long long)n);
    PQfinish(c);
    /* a figure for the record, not a gate (the target: >= 50 000/s) */
    fprintf(stderr,
            "qes bench: PostgreSQL on loopback: %" PRIu64 " block records in %.2f s = %.0f "
            "records/s (batches of 10000, fsync off)\n",
            n, s, (double)n / s);
}
