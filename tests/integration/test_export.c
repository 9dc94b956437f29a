/*
 * `qes export` and `qes runs` end to end: a capture simulated and replayed
 * by the qes executable with -o x.db -o x.jsonl -o x.csv; the export of
 * x.db must be byte for byte x.jsonl (--to jsonl) and x.csv (--to csv),
 * for phasor measurements (two interleaved ones), quality figures and flags,
 * and scalar (reversal) records.  Two runs in one database: `runs` lists
 * both, --run selects one by a prefix, an export of all is the two sinks'
 * outputs one after the other.  Bad input: exit status 1 (usage) or 2
 * (input) with a message naming the problem, nothing on stdout.
 *
 * The commands run through the qes executable (QES_EXPORT_VIA_EXE 1, the
 * default); with 0 the same tests call qes_cmd_export / qes_cmd_runs in this
 * process.
 */
#include "common/err.h"
#include "hw/sigmf.h"
#include "pipeline/cmd_export.h"
#include "pipeline/record.h"
#include "tests/integration/itest.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef QES_EXPORT_VIA_EXE
#define QES_EXPORT_VIA_EXE 1
#endif

TestSuite(export, .timeout = 300);

/* ---- helpers ------------------------------------------------------------------ */

/*
 * Run `qes CMD ARGS...` (NULL-terminated); stdout and stderr into malloc'd
 * *out and *err.  Returns the exit status.
 */
static int qx(char **out, char **err, const char *cmd, ...)
{
    const char *args[32];
    int n = 0;
    va_list ap;
    va_start(ap, cmd);
    for (const char *a; (a = va_arg(ap, const char *)) && n < 32;)
        args[n++] = a;
    va_end(ap);
#if QES_EXPORT_VIA_EXE
    char line[20000];
    size_t pos = (size_t)snprintf(line, sizeof line, "%s", cmd);
    for (int i = 0; i < n; i++)
        pos += (size_t)snprintf(line + pos, sizeof line - pos, " '%s'", args[i]);
    cr_assert_lt(pos, sizeof line);
    return qes_test_run(line, out, err);
#else
    char *argv[33];
    for (int i = 0; i < n; i++)
        argv[i] = (char *)args[i];
    argv[n] = NULL;
    char *ob = NULL, *eb = NULL;
    size_t ol = 0, el = 0;
    FILE *fo = open_memstream(&ob, &ol), *fe = open_memstream(&eb, &el);
    cr_assert(fo && fe);
    int st = !strcmp(cmd, "export") ? qes_cmd_export(n, argv, fo, fe)
                                    : qes_cmd_runs(n, argv, fo, fe);
    fclose(fo);
    fclose(fe);
    *out = ob;
    *err = eb;
    return st;
#endif
}

static char *path_in(const char *name)
{
    static char buf[4][4200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", itest_dir(), name);
    return buf[k];
}

static char *slurp(const char *name)
{
    char *t = qes_test_slurp(path_in(name), NULL);
    cr_assert_not_null(t, "cannot read %s", path_in(name));
    return t;
}

/* `qes replay DIR/CAP.sigmf-meta -q EXTRA -o ...` with each output in DIR. */
static void replay_to(const char *cap, const char *extra, int status, const char *o1,
                      const char *o2, const char *o3)
{
    char args[20000];
    int n = snprintf(args, sizeof args, "replay '%s' -q %s", path_in(cap), extra ? extra : "");
    const char *outs[] = {o1, o2, o3};
    for (int i = 0; i < 3; i++)
        if (outs[i])
            n += snprintf(args + n, sizeof args - (size_t)n, " -o '%s'", path_in(outs[i]));
    char *err = NULL;
    int st = qes_test_run(args, NULL, &err);
    cr_assert_eq(st, status, "qes %s: exit %d, expected %d: %s", args, st, status, err);
    free(err);
}

/* Export succeeds and its stdout equals the file NAME byte for byte. */
static void export_equals(const char *want_file, const char *db, ...)
{
    const char *a[8];
    int n = 0;
    va_list ap;
    va_start(ap, db);
    for (const char *s; (s = va_arg(ap, const char *)) && n < 8;)
        a[n++] = s;
    va_end(ap);
    while (n < 8)
        a[n++] = NULL;
    char *out = NULL, *err = NULL;
    int st = qx(&out, &err, "export", path_in(db), a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
                NULL);
    cr_assert_eq(st, 0, "export %s %s %s: exit %d: %s", db, a[0], a[1], st, err);
    cr_assert_str_empty(err, "export wrote to stderr: %s", err);
    char *want = slurp(want_file);
    cr_assert_gt(strlen(want), 0);
    if (strcmp(out, want)) {
        size_t i = 0;
        while (out[i] && out[i] == want[i])
            i++;
        size_t from = i > 200 ? i - 200 : 0;
        cr_assert_fail("export %s %s %s differs from %s at byte %zu of %zu/%zu:\n"
                       "got:  ...%.400s\nwant: ...%.400s",
                       db, a[0], a[1], want_file, i, strlen(out), strlen(want), out + from,
                       want + from);
    }
    free(want);
    free(out);
    free(err);
}

/* A failing command: the status, every needle in stderr, nothing on stdout. */
static void fails(int status, const char *const needles[], const char *cmd, ...)
{
    const char *a[8] = {NULL};
    int n = 0;
    va_list ap;
    va_start(ap, cmd);
    for (const char *s; (s = va_arg(ap, const char *)) && n < 8;)
        a[n++] = s;
    va_end(ap);
    char *out = NULL, *err = NULL;
    int st = qx(&out, &err, cmd, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], NULL);
    cr_assert_eq(st, status, "qes %s %s %s %s: exit %d, expected %d: %s", cmd, a[0] ? a[0] : "",
                 a[1] ? a[1] : "", a[2] ? a[2] : "", st, status, err);
    for (size_t i = 0; needles[i]; i++)
        cr_assert(strstr(err, needles[i]), "qes %s %s %s: stderr lacks \"%s\": %s", cmd,
                  a[0] ? a[0] : "", a[1] ? a[1] : "", needles[i], err);
    cr_assert_str_empty(out, "qes %s failed but wrote to stdout: %s", cmd, out);
    free(out);
    free(err);
}
#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The run id of the first line of a JSON Lines file. */
static void run_id_of(const char *jsonl_name, char id[37])
{
    char *t = slurp(jsonl_name);
    const char *p = strstr(t, "\"run\":\"");
    cr_assert_not_null(p);
    snprintf(id, 37, "%.36s", p + 7);
    free(t);
}

/* Two measurements of different block lengths, whose blocks the pipeline
 * emits interleaved, as they complete; coarse ADC, noise: ordinary values. */
#define TWO_MEASURES_INI                                                                       \
    "[source]\nkind = sim\nsample_rate_hz = 100000\nseconds = 0.5\nadc_bits = 24\nseed = 7\n"  \
    "start_time = 2026-11-27T00:00:00Z\n[channel.dut]\nindex = 0\n"                            \
    "gain = 2.98023223876953125e-07\nunit = V\nu_gain_rel = 2e-6\n[sim.dut]\nfreq_hz = 1000\n" \
    "harmonics = 1,2,3\nrms = 1.0,0.001,0.0005\nphase_rad = 0.7,-1.2,2.5\nnoise_rms = 10e-6\n" \
    "[measure.fund]\nchannel = dut\nmethod = fft\nfreq_hz = 1000\nharmonics = 1,2,3\n"         \
    "block_periods = 10\nwindow = rect\n[measure.slow]\nchannel = dut\nmethod = dft\n"         \
    "freq_hz = 1000\nharmonics = 1\nblock_periods = 25\nwindow = hann\n"

/* ---- equal to the sinks --------------------------------------------------------- */

Test(export, jsonl_and_csv_equal_what_the_sinks_wrote)
{
    itest_dir_make();
    itest_simulate("cap", TWO_MEASURES_INI);
    replay_to("cap.sigmf-meta", NULL, 0, "x.db", "x.jsonl", "x.csv");
    export_equals("x.jsonl", "x.db", "--to", "jsonl", NULL);
    export_equals("x.jsonl", "x.db", "--to=jsonl", "-o", "-", NULL);
    export_equals("x.csv", "x.db", "--to", "csv", NULL);

    /* -o FILE: the file, nothing on stdout */
    char *out = NULL, *err = NULL;
    int st = qx(&out, &err, "export", path_in("x.db"), "--to", "csv", "-o", path_in("e.csv"), NULL);
    cr_assert_eq(st, 0, "%s", err);
    cr_assert_str_empty(out);
    free(out);
    free(err);
    char *a = slurp("e.csv"), *b = slurp("x.csv");
    cr_assert_str_eq(a, b, "-o e.csv differs from the CSV sink's x.csv");
    free(a);
    free(b);
    st = qx(&out, &err, "export", path_in("x.db"), "--to", "jsonl", "--run", "", NULL);
    cr_assert_eq(st, 1, "an empty --run is a usage error");
    free(out);
    free(err);
    itest_dir_clean();
}

/* Flags (quality, and the summary's few_blocks/excluded), quality figures,
 * null values of an empty summary; run exit status 3 recorded. */
Test(export, flags_quality_and_nulls)
{
    itest_dir_make();
    itest_simulate("q",
                   "[source]\nkind = sim\nsample_rate_hz = 100000\nseconds = 0.2\nadc_bits = 0\n"
                   "start_time = 2026-11-27T00:00:00Z\n[channel.dut]\nindex = 0\n[sim.dut]\n"
                   "freq_hz = 1000\nharmonics = 1,2,3\nrms = 1.0,0.001,0.0005\n"
                   "phase_rad = 0.7,-1.2,2.5\n[measure.q]\nchannel = dut\nmethod = fft\n"
                   "freq_hz = 1000\nharmonics = 1\nquality = true\n");
    replay_to("q.sigmf-meta", "--set measure.q.thd_max=1e-3", 3, "q.db", "q.jsonl", "q.csv");
    char *t = slurp("q.jsonl");
    cr_assert(strstr(t, "\"flags\":[\"quality\"]") && strstr(t, "\"thd\":") &&
                      strstr(t, "\"x\":null"),
              "the fixture lacks what this test is about");
    free(t);
    export_equals("q.jsonl", "q.db", "--to", "jsonl", NULL);
    export_equals("q.csv", "q.db", "--to", "csv", NULL);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qx(&out, &err, "runs", path_in("q.db"), NULL), 0, "%s", err);
    cr_assert(strstr(out, "          1  3\n"), "status 3 not listed: %s", out);
    free(out);
    free(err);
    itest_dir_clean();
}

/* Scalar records (DC reversals): value/u blocks, settling flags, a scalar
 * summary with its budget, from a two-channel capture with a polarity
 * channel (as tests/integration/test_methods.c writes it). */
Test(export, scalar_records)
{
    itest_dir_make();
    const double fs = 1000, v = 1e-6, offset = 1e-5, drift = 3e-9;
    const int pattern[4] = {+1, -1, -1, +1};
    const char *cfg = "{\"qes:config\":\"[channel.nvm]\\nindex = 0\\nunit = V\\n[channel.sw]\\n"
                      "index = 1\\n[measure.zener]\\nchannel = nvm\\nmethod = reversal\\n"
                      "pattern = +--+\\nsettle_s = 0.3\\npolarity_channel = sw\\n\"}";
    char err_text[1024];
    struct qes_sigmf_writer_desc d = {.path = path_in("z"),
                                      .dtype = QES_DT_RF64_LE,
                                      .sample_rate_hz = fs,
                                      .num_channels = 2,
                                      .datetime_ns = 1795743206000000000LL,
                                      .extra_global_json = cfg};
    struct qes_sigmf_writer *wr;
    cr_assert_eq(qes_sigmf_writer_create(&d, &wr, err_text, sizeof err_text), 0, "%s", err_text);
    double buf[2 * 1000];
    for (unsigned hc = 0; hc < 40; hc++) {
        int s = pattern[hc % 4];
        for (unsigned j = 0; j < 1000; j++) {
            double t = (double)(hc * 1000 + j) / fs;
            buf[2 * j] = s * v + offset + drift * t + 1e-8 * sin(0.37 * (hc * 1000 + j));
            buf[2 * j + 1] = s;
        }
        cr_assert_eq(qes_sigmf_writer_write(wr, buf, 1000), 0);
    }
    cr_assert_eq(qes_sigmf_writer_close(wr, err_text, sizeof err_text), 0, "%s", err_text);
    replay_to("z.sigmf-meta", NULL, 0, "z.db", "z.jsonl", "z.csv");
    char *t = slurp("z.jsonl");
    cr_assert(strstr(t, "\"value\":") && strstr(t, "\"U\":") && strstr(t, "\"budget\":[{"),
              "the fixture has no scalar records: %.300s", t);
    free(t);
    export_equals("z.jsonl", "z.db", "--to", "jsonl", NULL);
    export_equals("z.csv", "z.db", "--to", "csv", NULL);
    itest_dir_clean();
}

/* ---- several runs ------------------------------------------------------------------ */

Test(export, two_runs_listed_and_selected)
{
    itest_dir_make();
    itest_simulate("cap", TWO_MEASURES_INI);
    replay_to("cap.sigmf-meta", NULL, 0, "y.db", "y1.jsonl", "y1.csv");
    /* another configuration: another run id */
    replay_to("cap.sigmf-meta", "--set measure.fund.window=hann", 0, "y.db", "y2.jsonl", "y2.csv");
    /* the first again: identical records are not duplicated */
    replay_to("cap.sigmf-meta", NULL, 0, "y.db", NULL, NULL);
    char id1[37], id2[37];
    run_id_of("y1.jsonl", id1);
    run_id_of("y2.jsonl", id2);
    cr_assert_str_neq(id1, id2);

    char *out = NULL, *err = NULL;
    cr_assert_eq(qx(&out, &err, "runs", path_in("y.db"), NULL), 0, "%s", err);
    cr_assert_str_empty(err);
    /* header + two runs, in recording order */
    const char *l1 = strchr(out, '\n');
    cr_assert_not_null(l1);
    cr_assert(!strncmp(out, "id ", 3), "no header: %s", out);
    const char *r1 = strstr(out, id1), *r2 = strstr(out, id2);
    cr_assert(r1 && r2 && r1 < r2, "runs lacks a run, or not in order:\n%s", out);
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 3, "%s", out);
    /* each line: command, t_start, config prefix, span, counts, status */
    char *y1 = slurp("y1.jsonl");
    const char *sha = strstr(y1, "\"config_sha256\":\"");
    cr_assert_not_null(sha);
    char want[200];
    snprintf(want, sizeof want, "%s  replay   2026-11-27T00:00:00.000000000Z  %.12s  ", id1,
             sha + 17);
    cr_assert(strstr(out, want), "runs lacks \"%s\":\n%s", want, out);
    size_t n_blocks = 0, n_sum = 0;
    for (const char *p = y1; (p = strstr(p, "\"type\":\"block\"")); p++)
        n_blocks++;
    for (const char *p = y1; (p = strstr(p, "\"type\":\"summary\"")); p++)
        n_sum++;
    /* 0.5 s: fund 50 blocks x 3 harmonics, slow 20 blocks; last block of
     * fund starts at 0.49 s, the latest of all */
    cr_assert_eq(n_blocks, 170);
    cr_assert_eq(n_sum, 4);
    snprintf(want, sizeof want,
             "2026-11-27T00:00:00.000000000Z  2026-11-27T00:00:00.490000000Z       170          "
             "4  0\n");
    cr_assert(strstr(r1, want), "runs lacks \"%s\":\n%s", want, out);
    free(y1);
    free(out);
    free(err);

    /* --run by a prefix, by the full id */
    char pre[9];
    snprintf(pre, sizeof pre, "%.8s", id2);
    export_equals("y2.jsonl", "y.db", "--to", "jsonl", "--run", pre, NULL);
    export_equals("y1.jsonl", "y.db", "--to", "jsonl", "--run", id1, NULL);
    export_equals("y1.csv", "y.db", "--to", "csv", "--run", id1, NULL);
    export_equals("y2.csv", "y.db", "--run", pre, "--to", "csv", NULL);

    /* all runs: one after the other; CSV with one header row */
    char *a = slurp("y1.jsonl"), *b = slurp("y2.jsonl");
    char *both = malloc(strlen(a) + strlen(b) + 1);
    strcpy(both, a);
    strcat(both, b);
    cr_assert_eq(qes_test_write(path_in("y12.jsonl"), both), 0);
    free(a);
    free(b);
    free(both);
    export_equals("y12.jsonl", "y.db", "--to", "jsonl", NULL);
    a = slurp("y1.csv");
    b = slurp("y2.csv");
    char *hdr = strstr(b, "\ntype,run,");
    cr_assert_not_null(hdr);
    char *hdr_end = strchr(hdr + 1, '\n');
    memmove(hdr + 1, hdr_end + 1, strlen(hdr_end + 1) + 1);
    both = malloc(strlen(a) + strlen(b) + 1);
    strcpy(both, a);
    strcat(both, b);
    cr_assert_eq(qes_test_write(path_in("y12.csv"), both), 0);
    free(a);
    free(b);
    free(both);
    export_equals("y12.csv", "y.db", "--to", "csv", NULL);

    /* a prefix of no run: the runs are named */
    fails(2, NEEDLES("--run zzzz: no such run", id1, id2), "export", path_in("y.db"), "--to",
          "jsonl", "--run", "zzzz", NULL);
    itest_dir_clean();
}

/* An ambiguous prefix, in a database written by the SQLite sink with run
 * ids chosen for it (replay ids are hashes: no common prefix to rely on). */
Test(export, ambiguous_prefix_and_empty_runs)
{
    itest_dir_make();
    const char *ids[] = {"abcd0000-0000-8000-8000-000000000000",
                         "abcd1111-0000-8000-8000-000000000000"};
    for (int i = 0; i < 2; i++) {
        struct qes_recorder *r;
        char e[512];
        cr_assert_eq(qes_rec_sqlite_open(path_in("a.db"), &r, e, sizeof e), 0, "%s", e);
        struct qes_run_rec run = {.command = "run",
                                  .version = "t",
                                  .build = "t",
                                  .config_ini = "",
                                  .config_sha256 = "00",
                                  .input_json = "null",
                                  .t_start_ns = 0,
                                  .sample_rate_hz = 1};
        snprintf(run.id, sizeof run.id, "%s", ids[i]);
        cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
        cr_assert_eq(r->ops->close(r, 0), 0, "%s", r->errmsg);
        qes_recorder_destroy(r);
    }
    fails(2, NEEDLES("--run abcd: matches several runs", ids[0], ids[1]), "export", path_in("a.db"),
          "--to", "csv", "--run", "abcd", NULL);
    /* a run without blocks: listed with - for the span, exported alone */
    char *out = NULL, *err = NULL;
    cr_assert_eq(qx(&out, &err, "runs", path_in("a.db"), NULL), 0, "%s", err);
    cr_assert(strstr(out, "abcd0000-0000-8000-8000-000000000000  run      "
                          "1970-01-01T00:00:00.000000000Z  00            -         "),
              "%s", out);
    free(out);
    free(err);
    cr_assert_eq(qx(&out, &err, "export", path_in("a.db"), "--to", "jsonl", "--run", "abcd1", NULL),
                 0, "%s", err);
    cr_assert_eq(strncmp(out, "{\"type\":\"run\",\"run\":\"abcd1111-", 30), 0, "%s", out);
    cr_assert_eq(strchr(out, '\n') - out + 1, (long)strlen(out), "one line: %s", out);
    free(out);
    free(err);
    itest_dir_clean();
}

/* ---- bad input ------------------------------------------------------------------ */

Test(export, bad_input_status_and_message)
{
    itest_dir_make();
    const char *missing = path_in("missing.db");
    fails(2, NEEDLES(missing, "no such file"), "export", missing, "--to", "jsonl", NULL);
    fails(2, NEEDLES(missing, "no such file"), "runs", missing, NULL);
    cr_assert_eq(qes_test_write(path_in("text.db"), "not a database\n"), 0);
    fails(2, NEEDLES("text.db", "not a qes results database"), "export", path_in("text.db"), "--to",
          "csv", NULL);
    fails(2, NEEDLES("text.db", "not a qes results database"), "runs", path_in("text.db"), NULL);
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(path_in("other.db"), &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    fails(2, NEEDLES("other.db", "not a qes results database"), "export", path_in("other.db"),
          "--to", "jsonl", NULL);
    fails(2, NEEDLES("other.db", "not a qes results database"), "runs", path_in("other.db"), NULL);
    fails(2, NEEDLES("is a directory"), "export", itest_dir(), "--to", "jsonl", NULL);

    /* usage errors */
    fails(1, NEEDLES("missing DB"), "export", NULL);
    fails(1, NEEDLES("missing --to"), "export", missing, NULL);
    fails(1, NEEDLES("--to xml: expected csv or jsonl"), "export", missing, "--to", "xml", NULL);
    fails(1, NEEDLES("--to needs a value"), "export", missing, "--to", NULL);
    fails(1, NEEDLES("unknown option --frobnicate"), "export", missing, "--frobnicate", NULL);
    fails(1, NEEDLES("unexpected argument b.db"), "export", "a.db", "b.db", "--to", "csv", NULL);
    fails(1, NEEDLES("-o given twice"), "export", "a.db", "--to", "csv", "-o", "x", "-o", "y",
          NULL);
    fails(1, NEEDLES("missing DB"), "runs", NULL);
    fails(1, NEEDLES("unknown option --all"), "runs", missing, "--all", NULL);
    fails(1, NEEDLES("unexpected argument"), "runs", "a.db", "b.db", NULL);

    /* -o onto the database itself is refused before anything is opened */
    itest_simulate("cap", TWO_MEASURES_INI);
    replay_to("cap.sigmf-meta", NULL, 0, "x.db", NULL, NULL);
    fails(1, NEEDLES("is the database itself"), "export", path_in("x.db"), "--to", "csv", "-o",
          path_in("x.db"), NULL);
    fails(2, NEEDLES("cannot open", "nodir/e.csv", "for writing"), "export", path_in("x.db"),
          "--to", "csv", "-o", path_in("nodir/e.csv"), NULL);
    /* the database survived */
    char *out = NULL, *err = NULL;
    cr_assert_eq(qx(&out, &err, "runs", path_in("x.db"), NULL), 0, "%s", err);
    free(out);
    free(err);
    itest_dir_clean();
}

Test(export, help)
{
    char *out = NULL, *err = NULL;
    cr_assert_eq(qx(&out, &err, "export", "--help", NULL), 0);
    cr_assert(strstr(out, "usage: qes export DB --to csv|jsonl [--run ID] [-o FILE|-]"), "%s", out);
    cr_assert_str_empty(err);
    free(out);
    free(err);
    cr_assert_eq(qx(&out, &err, "runs", "-h", NULL), 0);
    cr_assert(strstr(out, "usage: qes runs DB"), "%s", out);
    free(out);
    free(err);
    cr_assert_lt(strlen(qes_usage_export), 4095);
    cr_assert_lt(strlen(qes_usage_runs), 4095);
}

/*
 * Issue 6 acceptance: a real PostgreSQL server (tests/fixtures/pg-server.sh,
 * on 127.0.0.1) receives a replay through the qes executable; its rows equal
 * the JSON Lines output of the same replay, value for value (doubles compared
 * exactly: both come from the same %.17g-round-tripped numbers).
 */
Test(export, replay_into_postgresql_equals_jsonl)
{
    itest_dir_make();
    char cmd[20000], pgdir[4200];
    snprintf(pgdir, sizeof pgdir, "%s/pg", itest_dir());
    /* the server runs as the postgres user, which must reach its directory */
    cr_assert_eq(chmod(itest_dir(), 0755), 0);
    int port = 20000 + (int)(getpid() % 20000);
    snprintf(cmd, sizeof cmd, "sh '%s/tests/fixtures/pg-server.sh' start '%s' %d >/dev/null 2>&1",
             QES_SOURCE_DIR, pgdir, port);
    int st = system(cmd);
    if (WEXITSTATUS(st) == 77)
        cr_skip_test("no PostgreSQL server binaries: replay into PostgreSQL not checked");
    cr_assert_eq(WEXITSTATUS(st), 0, "the PostgreSQL fixture did not start");
    itest_simulate("pgr", "[source]\nkind = sim\nsample_rate_hz = 100000\nseconds = 0.2\n"
                          "adc_bits = 24\nseed = 4\nstart_time = 2026-11-27T00:00:00Z\n"
                          "[channel.dut]\nindex = 0\ngain = 2.98023223876953125e-07\n"
                          "[sim.dut]\nfreq_hz = 1000\nharmonics = 1,2\nrms = 1,0.001\n"
                          "phase_rad = 0.7,-1.2\nnoise_rms = 1e-5\n[measure.fund]\n"
                          "channel = dut\nmethod = dft\nfreq_hz = 1000\nharmonics = 1,2\n");
    char uri[256], args[20000];
    snprintf(uri, sizeof uri, "postgresql://postgres@127.0.0.1:%d/postgres", port);
    snprintf(args, sizeof args,
             "replay '%s/pgr.sigmf-meta' -q -o '%s' -o '%s/pgr.jsonl' --set "
             "record.spool_path='%s/spool.db'",
             itest_dir(), uri, itest_dir(), itest_dir());
    char *err = NULL;
    st = qes_test_run(args, NULL, &err);
    cr_assert_eq(st, 0, "replay into PostgreSQL: exit %d: %s", st, err);
    free(err);
    /* read the rows back with psql as CSV-like text: r of each block by seq */
    snprintf(cmd, sizeof cmd,
             "psql '%s' -At -F ' ' -c \"SELECT harmonic, seq, r, phase_rad FROM blocks ORDER BY "
             "harmonic, seq\" > '%s/rows.txt' 2>'%s/psql.err'",
             uri, itest_dir(), itest_dir());
    st = system(cmd);
    char path[4300];
    snprintf(path, sizeof path, "%s/rows.txt", itest_dir());
    char *rows = qes_test_slurp(path, NULL);
    snprintf(path, sizeof path, "%s/pgr.jsonl", itest_dir());
    char *jl = qes_test_slurp(path, NULL);
    snprintf(cmd, sizeof cmd,
             "sh '%s/tests/fixtures/pg-server.sh' stop '%s' immediate "
             ">/dev/null 2>&1",
             QES_SOURCE_DIR, pgdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not stop the PostgreSQL fixture in %s\n", pgdir);
    cr_assert_eq(WEXITSTATUS(st), 0, "psql failed");
    cr_assert_not_null(rows);
    cr_assert_not_null(jl);
    json_t *recs = itest_parse_jsonl(jl);
    size_t i, n_blocks = 0;
    json_t *r;
    /* psql's rows with a newline in front, so that every row starts with one */
    size_t rl = strlen(rows);
    char *lined = malloc(rl + 2);
    cr_assert_not_null(lined);
    lined[0] = '\n';
    memcpy(lined + 1, rows, rl + 1);
    json_array_foreach(recs, i, r)
    {
        if (!itest_is(r, "block"))
            continue;
        n_blocks++;
        /* find "h seq r phase" in the psql output */
        char want[256];
        int h = (int)json_integer_value(json_object_get(r, "harmonic"));
        long long seq = json_integer_value(json_object_get(r, "seq"));
        snprintf(want, sizeof want, "\n%d %lld ", h, seq);
        char *at = strstr(lined, want);
        cr_assert_not_null(at, "block h%d seq %lld missing in PostgreSQL", h, seq);
        at++;
        double rr, ph;
        cr_assert_eq(sscanf(at, "%*d %*d %lf %lf", &rr, &ph), 2);
        cr_assert_eq(rr, itest_num(r, "r"), "h%d seq %lld: r %.17g vs %.17g", h, seq, rr,
                     itest_num(r, "r"));
        cr_assert_eq(ph, itest_num(r, "phase_rad"));
    }
    size_t n_rows = 0;
    for (const char *p = rows; *p; p++)
        n_rows += *p == '\n';
    cr_assert_eq(n_rows, n_blocks, "PostgreSQL holds %zu block rows, JSONL %zu", n_rows, n_blocks);
    json_decref(recs);
    free(lined);
    free(rows);
    free(jl);
    itest_dir_clean();
}
