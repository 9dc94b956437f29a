/*
 * `qes export` and `qes runs` end to end: a capture simulated and replayed
 * by the qes executable with -o x.db -o x.jsonl -o x.csv; the export of
 * x.db must be byte for byte x.jsonl (--to jsonl) and x.csv (--to csv),
 * for phasor measurements (two interleaved ones), quality figures and flags,
 * and scalar (reversal) records.  Two runs in one database: `runs` lists
 * both, --run selects one by a prefix, an export of all is the two sinks'
 * outputs one after the other.  How a run ended (the run_end record, CSV
 * comment lines after the rows): the numbers of a replay with a gap, in the
 * JSONL and in the runs table, exported byte for byte; a database of a qes
 * without the run end columns opens, gets them, and exports as that qes
 * wrote.  Bad input: exit status 1 (usage) or 2 (input) with a message
 * naming the problem, nothing on stdout.
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
        struct qes_run_end end = qes_run_end_of_status(0);
        cr_assert_eq(r->ops->close(r, &end), 0, "%s", r->errmsg);
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
    /* the run record, then how it ended (closed with status 0) */
    const char *l2 = strchr(out, '\n') + 1;
    cr_assert_eq(strncmp(l2, "{\"type\":\"run_end\",\"run\":\"abcd1111-", 34), 0, "%s", out);
    cr_assert_eq(strchr(l2, '\n') - out + 1, (long)strlen(out), "two lines: %s", out);
    free(out);
    free(err);
    itest_dir_clean();
}

/* ---- how runs ended ------------------------------------------------------------- */

/* A 1 kHz capture of 1000 samples with samples 55..99 lost (a second capture
 * segment at index 100), one 100 Hz measurement in blocks of 10 samples, as
 * tests/integration/test_replay.c writes it: exit status 3. */
static void write_gap_capture(const char *name)
{
    char err[1024];
    const char *cfg_json =
            "{\"qes:config\":\"[channel.dut]\\nindex = 0\\n[measure.m]\\nchannel = dut\\n"
            "freq_hz = 100\\nblock_periods = 1\\n\"}";
    struct qes_sigmf_writer_desc d = {.path = path_in(name),
                                      .dtype = QES_DT_RF64_LE,
                                      .sample_rate_hz = 1000,
                                      .num_channels = 1,
                                      .datetime_ns = 0,
                                      .extra_global_json = cfg_json};
    struct qes_sigmf_writer *w;
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    double buf[1000];
    for (int i = 0; i < 1000; i++)
        buf[i] = sqrt(2.0) * cos(2 * 3.14159265358979323846 * 100 * i / 1000.0);
    cr_assert_eq(qes_sigmf_writer_write(w, buf, 55), 0);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 100, 100000000), 0);
    cr_assert_eq(qes_sigmf_writer_write(w, buf + 100, 900), 0);
    cr_assert_eq(qes_sigmf_writer_close(w, err, sizeof err), 0, "%s", err);
}

/* The last line of a text (without its newline), malloc'd. */
static char *last_line(const char *text)
{
    size_t n = strlen(text);
    cr_assert(n > 1 && text[n - 1] == '\n');
    const char *p = text + n - 1;
    while (p > text && p[-1] != '\n')
        p--;
    return strndup(p, (size_t)(text + n - 1 - p));
}

/*
 * The run end of a replay with a gap: 955 samples processed, 45 lost in 1
 * gap, exit status 3; nothing live measured (0 and null); no wall time in a
 * replay (seconds null, so that replays stay byte-identical); t_end the end
 * of the data, 1000 samples at 1 kHz after t_start = 0.  The JSONL's last
 * line says so, the CSV's last comment lines too, the runs row holds it, and
 * the export gives both files back byte for byte, also after the same run
 * was replayed into the database again.
 */
Test(export, run_end_of_a_replay_with_a_gap)
{
    itest_dir_make();
    write_gap_capture("gap");
    replay_to("gap.sigmf-meta", NULL, 3, "g.db", "g.jsonl", "g.csv");
    char *jl = slurp("g.jsonl");
    char *end = last_line(jl);
    char id[37];
    run_id_of("g.jsonl", id);
    char want[1024];
    snprintf(want, sizeof want,
             "{\"type\":\"run_end\",\"run\":\"%s\",\"status\":3,\"samples\":955,\"lost\":45,"
             "\"gaps\":1,\"reconnects\":0,\"frames_dropped\":0,\"latency_n\":0,"
             "\"latency_p50_us\":null,\"latency_p99_us\":null,\"latency_max_us\":null,"
             "\"seconds\":null,\"t_end\":\"1970-01-01T00:00:01.000000000Z\"}",
             id);
    cr_assert_str_eq(end, want);
    int n_end = 0;
    for (const char *q = jl; (q = strstr(q, "\"type\":\"run_end\"")); q++)
        n_end++;
    cr_assert_eq(n_end, 1, "one run_end line (the last)");
    free(end);
    free(jl);
    char *csv = slurp("g.csv");
    const char *tail = strstr(csv, "# qes run end\n");
    cr_assert_not_null(tail, "%s", csv);
    cr_assert_str_eq(tail, "# qes run end\n# status: 3\n# samples: 955\n# lost: 45\n# gaps: 1\n"
                           "# reconnects: 0\n# frames_dropped: 0\n# latency_n: 0\n"
                           "# latency_p50_us:\n# latency_p99_us:\n# latency_max_us:\n"
                           "# seconds:\n# t_end: 1970-01-01T00:00:01.000000000Z\n");
    free(csv);

    sqlite3 *h;
    cr_assert_eq(sqlite3_open_v2(path_in("g.db"), &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(h,
                                    "SELECT status, samples, lost, gaps, reconnects,"
                                    " frames_dropped, latency_n, latency_p50_us IS NULL,"
                                    " latency_p99_us IS NULL, latency_max_us IS NULL,"
                                    " seconds IS NULL, t_end FROM runs",
                                    -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(h));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    const long long expect[11] = {3, 955, 45, 1, 0, 0, 0, 1, 1, 1, 1};
    for (int i = 0; i < 11; i++)
        cr_assert_eq(sqlite3_column_int64(st, i), expect[i], "column %d", i);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 11), "1970-01-01T00:00:01.000000000Z");
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "one run");
    sqlite3_finalize(st);
    sqlite3_close(h);

    export_equals("g.jsonl", "g.db", "--to", "jsonl", NULL);
    export_equals("g.csv", "g.db", "--to", "csv", NULL);
    /* the same run again into the database: its run end is set again, to the
     * same values */
    replay_to("gap.sigmf-meta", NULL, 3, "g.db", NULL, NULL);
    export_equals("g.jsonl", "g.db", "--to", "jsonl", NULL);
    export_equals("g.csv", "g.db", "--to", "csv", NULL);
    itest_dir_clean();
}

/* The SQLite schema of a qes whose runs table had no run end columns (its
 * rec_sqlite.c, verbatim), with a run it recorded and closed. */
static const char old_schema_sql[] =
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
        "INSERT INTO meta(key, value) VALUES('schema_version', 1) ON CONFLICT DO NOTHING;"
        "INSERT INTO runs VALUES('0ld00000-0000-8000-8000-000000000000', 'replay', '0.0.9',"
        " 'old', '00', '[x]', 'null', '2026-11-27T00:00:00.000000000Z', 1000, 0,"
        " '2026-11-27T00:00:01.000000000Z');"
        "INSERT INTO blocks(run, measure, channel, kind, harmonic, seq, sample_start, n_samples,"
        " t, freq_hz, x, y, r, phase_rad, unit, enbw_hz, flags) VALUES"
        " ('0ld00000-0000-8000-8000-000000000000', 'm', 'dut', 'phasor', 1, 0, 0, 10,"
        " '2026-11-27T00:00:00.000000000Z', 100, 0.5, -0.25, 0.5590169943749474,"
        " -0.4636476090008061, 'V', 100, '[]');";

/* What that qes's JSON Lines sink wrote for its run: no run_end line. */
static const char old_jsonl[] =
        "{\"type\":\"run\",\"run\":\"0ld00000-0000-8000-8000-000000000000\","
        "\"command\":\"replay\",\"version\":\"0.0.9\",\"build\":\"old\","
        "\"config_sha256\":\"00\",\"config\":\"[x]\",\"input\":null,"
        "\"t_start\":\"2026-11-27T00:00:00.000000000Z\",\"sample_rate_hz\":1000}\n"
        "{\"type\":\"block\",\"run\":\"0ld00000-0000-8000-8000-000000000000\","
        "\"measure\":\"m\",\"channel\":\"dut\",\"harmonic\":1,\"seq\":0,"
        "\"sample_start\":0,\"n_samples\":10,\"t\":\"2026-11-27T00:00:00.000000000Z\","
        "\"freq_hz\":100,\"x\":0.5,\"y\":-0.25,\"r\":0.55901699437494745,"
        "\"phase_rad\":-0.46364760900080609,\"enbw_hz\":100,\"unit\":\"V\",\"flags\":[]}\n";

/* Number of run end columns in the runs table of DB. */
static long long run_end_columns(const char *db)
{
    sqlite3 *h;
    cr_assert_eq(sqlite3_open_v2(path_in(db), &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(h,
                                    "SELECT count(*) FROM pragma_table_info('runs') WHERE name"
                                    " IN ('samples', 'lost', 'gaps', 'reconnects',"
                                    " 'frames_dropped', 'latency_n', 'latency_p50_us',"
                                    " 'latency_p99_us', 'latency_max_us', 'seconds', 't_end')",
                                    -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(h));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

/*
 * A database written by a qes without the run end columns: exported as that
 * qes wrote it (no run_end line, no run end comments), before and after this
 * qes records into it; recording adds the columns (schema_version stays 1),
 * and the new run exports byte for byte with its run end.
 */
Test(export, database_without_run_end_columns)
{
    itest_dir_make();
    sqlite3 *h;
    cr_assert_eq(sqlite3_open(path_in("old.db"), &h), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(h, old_schema_sql, NULL, NULL, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(h));
    sqlite3_close(h);
    cr_assert_eq(qes_test_write(path_in("old.jsonl"), old_jsonl), 0);
    cr_assert_eq(run_end_columns("old.db"), 0);
    export_equals("old.jsonl", "old.db", "--to", "jsonl", NULL);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qx(&out, &err, "export", path_in("old.db"), "--to", "csv", NULL), 0, "%s", err);
    static const char head[] = "# qes run record\n# run: 0ld00000-";
    cr_assert(!strncmp(out, head, sizeof head - 1), "%s", out);
    cr_assert_null(strstr(out, "run end"), "%s", out);
    char *last = last_line(out);
    cr_assert(!strncmp(last, "block,0ld00000-", 15), "the block row is not the last line: %s", out);
    free(last);
    free(out);
    free(err);

    /* this qes records into it: the columns are added, the old run keeps
     * NULL there */
    write_gap_capture("gap");
    replay_to("gap.sigmf-meta", NULL, 3, "old.db", "new.jsonl", "new.csv");
    cr_assert_eq(run_end_columns("old.db"), 11);
    cr_assert_eq(sqlite3_open_v2(path_in("old.db"), &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(h,
                                    "SELECT (SELECT value FROM meta WHERE key ="
                                    " 'schema_version'), (SELECT count(*) FROM runs WHERE id LIKE"
                                    " '0ld%' AND status = 0 AND samples IS NULL AND t_end IS NULL),"
                                    " (SELECT samples FROM runs WHERE id NOT LIKE '0ld%')",
                                    -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(h));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int64(st, 0), 1, "schema_version");
    cr_assert_eq(sqlite3_column_int64(st, 1), 1, "the old run, untouched");
    cr_assert_eq(sqlite3_column_int64(st, 2), 955, "the new run's samples");
    sqlite3_finalize(st);
    sqlite3_close(h);

    char id[37];
    run_id_of("new.jsonl", id);
    export_equals("new.jsonl", "old.db", "--to", "jsonl", "--run", id, NULL);
    export_equals("new.csv", "old.db", "--to", "csv", "--run", id, NULL);
    export_equals("old.jsonl", "old.db", "--to", "jsonl", "--run", "0ld", NULL);
    /* all: the old run as it was written, then the new one */
    char *b = slurp("new.jsonl");
    char *both = malloc(strlen(old_jsonl) + strlen(b) + 1);
    cr_assert_not_null(both);
    strcpy(both, old_jsonl);
    strcat(both, b);
    cr_assert_eq(qes_test_write(path_in("both.jsonl"), both), 0);
    free(both);
    free(b);
    export_equals("both.jsonl", "old.db", "--to", "jsonl", NULL);
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
