/*
 * End to end through the qes executable: simulate -> replay -> compare every
 * summary with the simulated truth; determinism; recorders; bad input at the
 * command line with its exit status and message; gaps; bounded memory.
 */
#define _DEFAULT_SOURCE /* wait4 */
#include "hw/sigmf.h"
#include "tests/integration/itest.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PI 3.14159265358979323846

/* A config for a coherent 1 kHz rig at 100 kS/s (100 samples per period). */
#define RIG_INI                           \
    "[source]\n"                          \
    "kind = sim\n"                        \
    "sample_rate_hz = 100000\n"           \
    "seconds = 1\n"                       \
    "adc_bits = %u\n"                     \
    "seed = %u\n"                         \
    "start_time = 2026-11-27T00:00:00Z\n" \
    "[channel.dut]\n"                     \
    "index = 0\n"                         \
    "gain = 2.98023223876953125e-07\n"    \
    "u_gain_rel = 0\n"                    \
    "[sim.dut]\n"                         \
    "freq_hz = 1000\n"                    \
    "harmonics = 1,2,3\n"                 \
    "rms = 1.0,0.001,0.0005\n"            \
    "phase_rad = 0.7,-1.2,2.5\n"          \
    "noise_rms = %.17g\n"                 \
    "[measure.fund]\n"                    \
    "channel = dut\n"                     \
    "freq_hz = 1000\n"                    \
    "harmonics = 1,2,3\n"                 \
    "block_periods = 10\n"                \
    "coverage = %.17g\n"

static const double truth_rms[3] = {1.0, 0.001, 0.0005};
static const double truth_phase[3] = {0.7, -1.2, 2.5};

/* One suite-wide timeout, the same for every suite: per-test or differing
 * timeouts leak in Criterion 2.4.1's runner, which fails the sanitizer build. */
TestSuite(replay, .timeout = 300);
TestSuite(replay_bad, .timeout = 300);
TestSuite(run, .timeout = 300);

/* Write the rig config and simulate it into DIR/NAME. */
static void simulate(const char *name, unsigned adc_bits, unsigned seed, double noise,
                     double coverage)
{
    char text[4096];
    snprintf(text, sizeof text, RIG_INI, adc_bits, seed, noise, coverage);
    itest_simulate(name, text);
}

/*
 * Noise-free rf64 capture: the lock-in must reproduce the truth to the
 * rounding of double arithmetic.  Error budget: the samples are computed with
 * exact integer phase reduction and one cos() each (<= 1 ulp, ~1e-16 of the
 * amplitude); the estimate sums 1000 products per block (rounding grows like
 * sqrt(n) * 1e-16 ~ 3e-15) and averages 100 blocks.  For the 0.5 mV third
 * harmonic the absolute error of ~1e-16 V from the 1 V fundamental's samples
 * becomes ~2e-13 relative; the bound 1e-12 relative / rad holds with margin.
 */
static void check_noise_free(const char *method, const char *window)
{
    itest_dir_make();
    simulate("clean", 0, 1, 0.0, 0.95);
    char extra[256];
    snprintf(extra, sizeof extra, "--set measure.fund.method=%s --set measure.fund.window=%s",
             method, window);
    char *out = itest_replay("clean", extra, 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int n_sum = 0, n_block = 0;
    double worst_r = 0, worst_p = 0;
    json_array_foreach(recs, i, r)
    {
        const char *type = json_string_value(json_object_get(r, "type"));
        if (strcmp(type, "block") && strcmp(type, "summary"))
            continue; /* run, run_end */
        int h = (int)json_integer_value(json_object_get(r, "harmonic"));
        cr_assert(h >= 1 && h <= 3);
        double er = fabs(itest_num(r, "r") - truth_rms[h - 1]) / truth_rms[h - 1];
        double ep = fabs(itest_wrap(itest_num(r, "phase_rad") - truth_phase[h - 1]));
        worst_r = er > worst_r ? er : worst_r;
        worst_p = ep > worst_p ? ep : worst_p;
        if (!strcmp(type, "summary"))
            n_sum++;
        else
            n_block++;
    }
    cr_assert_eq(n_sum, 3);
    cr_assert_eq(n_block, 300, "100 blocks x 3 harmonics");
    cr_assert_leq(worst_r, 1e-12, "%s/%s: amplitude error %.3g", method, window, worst_r);
    cr_assert_leq(worst_p, 1e-12, "%s/%s: phase error %.3g rad", method, window, worst_p);
    fprintf(stderr, "noise-free %s/%s: max amplitude error %.3g relative, phase %.3g rad\n", method,
            window, worst_r, worst_p);
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

Test(replay, noise_free_fft_rect)
{
    check_noise_free("fft", "rect");
}
Test(replay, noise_free_dft_rect)
{
    check_noise_free("dft", "rect");
}
Test(replay, noise_free_fft_hann)
{
    check_noise_free("fft", "hann");
}
Test(replay, noise_free_dft_hann)
{
    check_noise_free("dft", "hann");
}

/*
 * 24-bit quantised capture with white noise.  Each summary's error must lie
 * inside its expanded uncertainty, and U must not exceed 3x the value
 * predicted from the noise.  Prediction: white noise of variance
 * s2 = noise^2 + gain^2/12 (quantisation, dithered by the noise, which is 30x
 * the LSB) gives a rect-window block estimate of x or y with variance s2/n;
 * the mean of B blocks has u(x) = u(y) = sqrt(s2/(n B)), and so u(r) too.
 * Coverage 0.999 makes a false failure improbable: 3 harmonics x (r, phase)
 * are 6 comparisons at 1e-3 each, < 0.6 % (the seed is fixed, so the test is
 * deterministic; this bounds how unlucky a different seed could be).
 */
Test(replay, quantised_noise_within_uncertainty)
{
    itest_dir_make();
    const double noise = 10e-6, gain = 2.98023223876953125e-07;
    simulate("noisy", 24, 42, noise, 0.999);
    char *out = itest_replay("noisy", NULL, 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int n_sum = 0;
    double s2 = noise * noise + gain * gain / 12;
    json_array_foreach(recs, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "type")), "summary"))
            continue;
        n_sum++;
        int h = (int)json_integer_value(json_object_get(r, "harmonic"));
        double nb = itest_num(r, "n_blocks");
        cr_assert_eq(nb, 100);
        double u_pred = sqrt(s2 / (1000.0 * nb));
        double k = itest_num(r, "k"), U = itest_num(r, "U_r"), u_r = itest_num(r, "u_r");
        double up = itest_num(r, "u_phase_rad");
        double er = itest_num(r, "r") - truth_rms[h - 1];
        double ep = itest_wrap(itest_num(r, "phase_rad") - truth_phase[h - 1]);
        fprintf(stderr,
                "h%d: r error %.3g V, U %.3g V (k %.3f), predicted U %.3g V; phase error %.3g, "
                "U %.3g rad\n",
                h, er, U, k, k * u_pred, ep, k * up);
        cr_assert_leq(fabs(er), U, "h%d: |error| %.3g > U %.3g", h, fabs(er), U);
        cr_assert_leq(fabs(ep), k * up, "h%d: phase |error| %.3g > U %.3g", h, fabs(ep), k * up);
        cr_assert_leq(U, 3 * k * u_pred, "h%d: U %.3g is over 3x the predicted %.3g", h, U,
                      k * u_pred);
        cr_assert_eq(itest_num(r, "coverage"), 0.999);
        cr_assert_eq(itest_num(r, "dof"), 99, "Type A only: n-1 degrees of freedom");
        (void)u_r;
    }
    cr_assert_eq(n_sum, 3);
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

Test(replay, deterministic_bytes)
{
    itest_dir_make();
    simulate("det", 24, 3, 1e-5, 0.95);
    char *a = itest_replay("det", NULL, 0);
    char *b = itest_replay("det", NULL, 0);
    cr_assert_str_eq(a, b, "two replays differ");
    char *c = itest_replay("det", "--set measure.fund.method=dft", 0);
    cr_assert_str_neq(a, c, "a different configuration must give a different run");
    /* a capture moved elsewhere is the same capture: same run id, same
     * block and summary records (only the run record names the path) */
    char cmd[20000];
    snprintf(cmd, sizeof cmd,
             "cp '%s/det.sigmf-meta' '%s/moved.sigmf-meta' && "
             "cp '%s/det.sigmf-data' '%s/moved.sigmf-data'",
             itest_dir(), itest_dir(), itest_dir(), itest_dir());
    cr_assert_eq(system(cmd), 0);
    char *m = itest_replay("moved", NULL, 0);
    cr_assert_str_eq(strchr(a, '\n'), strchr(m, '\n'), "records changed with the capture's path");
    free(m);
    free(a);
    free(b);
    free(c);
    itest_dir_clean();
}

Test(replay, sqlite_and_csv_sinks)
{
    itest_dir_make();
    simulate("db", 24, 5, 1e-5, 0.95);
    char args[20000], db[4200], csv[4200];
    snprintf(db, sizeof db, "%s/r.db", itest_dir());
    snprintf(csv, sizeof csv, "%s/r.csv", itest_dir());
    snprintf(args, sizeof args, "replay '%s/db.sigmf-meta' -q -o '%s' -o '%s'", itest_dir(), db,
             csv);
    char *err = NULL;
    cr_assert_eq(qes_test_run(args, NULL, &err), 0, "%s", err);
    free(err);
    /* a second replay of the same run into the same database adds nothing */
    cr_assert_eq(qes_test_run(args, NULL, &err), 0, "%s", err);
    free(err);
    sqlite3 *s;
    cr_assert_eq(sqlite3_open(db, &s), SQLITE_OK);
    struct {
        const char *sql;
        long long expect;
    } q[] = {
            {"SELECT count(*) FROM runs", 1},
            {"SELECT count(*) FROM blocks", 300},
            {"SELECT count(*) FROM summaries", 3},
            {"SELECT count(*) FROM blocks WHERE r IS NULL", 0},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        sqlite3_stmt *st;
        cr_assert_eq(sqlite3_prepare_v2(s, q[i].sql, -1, &st, NULL), SQLITE_OK);
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        cr_assert_eq(sqlite3_column_int64(st, 0), q[i].expect, "%s", q[i].sql);
        sqlite3_finalize(st);
    }
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(s, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(s);
    char *text = qes_test_slurp(csv, NULL);
    cr_assert_not_null(text);
    cr_assert_not_null(strstr(text, "freq_hz[Hz]"), "CSV header with units");
    free(text);
    itest_dir_clean();
}

/* Captures corrupted in each way the reader must refuse, at the command line:
 * exit status 2 and a message naming the file and field. */
static void corrupt_and_expect(void (*corrupt)(const char *base), const char *extra,
                               int expect_status, const char *expect_msg)
{
    itest_dir_make();
    simulate("bad", 24, 9, 1e-5, 0.95);
    char base[4200];
    snprintf(base, sizeof base, "%s/bad", itest_dir());
    corrupt(base);
    char args[20000];
    snprintf(args, sizeof args, "replay '%s.sigmf-meta' -q -o - %s", base, extra ? extra : "");
    char *out = NULL, *err = NULL;
    int st = qes_test_run(args, &out, &err);
    cr_assert_eq(st, expect_status, "exit %d, expected %d: %s", st, expect_status, err);
    if (expect_msg)
        cr_assert_not_null(strstr(err, expect_msg), "message \"%s\" lacks \"%s\"", err, expect_msg);
    free(out);
    free(err);
    itest_dir_clean();
}

static void flip_byte(const char *base)
{
    char p[4300];
    snprintf(p, sizeof p, "%s.sigmf-data", base);
    FILE *f = fopen(p, "r+b");
    cr_assert_not_null(f);
    fseek(f, 1000, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 1000, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
}

static void truncate_odd(const char *base)
{
    char p[4300];
    snprintf(p, sizeof p, "%s.sigmf-data", base);
    struct stat stt;
    cr_assert_eq(stat(p, &stt), 0);
    cr_assert_eq(truncate(p, stt.st_size - 3), 0);
}

static void remove_data(const char *base)
{
    char p[4300];
    snprintf(p, sizeof p, "%s.sigmf-data", base);
    cr_assert_eq(unlink(p), 0);
}

static void edit_meta(const char *base, const char *from, const char *to)
{
    char p[4300];
    snprintf(p, sizeof p, "%s.sigmf-meta", base);
    char *t = qes_test_slurp(p, NULL);
    cr_assert_not_null(t);
    char *at = strstr(t, from);
    cr_assert_not_null(at, "\"%s\" not in the meta", from);
    size_t len = strlen(t) + strlen(to) + 1;
    char *n = malloc(len);
    snprintf(n, len, "%.*s%s%s", (int)(at - t), t, to, at + strlen(from));
    cr_assert_eq(qes_test_write(p, n), 0);
    free(t);
    free(n);
}

static void complex_type(const char *base)
{
    edit_meta(base, "\"ri32_le\"", "\"ci32_le\"");
}
static void bad_type(const char *base)
{
    edit_meta(base, "\"ri32_le\"", "\"ri24_le\"");
}
static void local_time(const char *base)
{
    edit_meta(base, "2026-11-27T00:00:00.000000000Z", "2026-11-27T01:00:00+01:00");
}
static void nothing(const char *base)
{
    (void)base;
}

Test(replay_bad, hash_mismatch)
{
    corrupt_and_expect(flip_byte, NULL, 2, "sha512");
}
Test(replay_bad, no_verify_skips_hash)
{
    corrupt_and_expect(flip_byte, "--no-verify", 0, NULL);
}
Test(replay_bad, size_not_whole_samples)
{
    corrupt_and_expect(truncate_odd, NULL, 2, ".sigmf-data");
}
Test(replay_bad, missing_data_file)
{
    corrupt_and_expect(remove_data, NULL, 2, "bad.sigmf-data");
}
Test(replay_bad, complex_refused)
{
    corrupt_and_expect(complex_type, "--no-verify", 2, "core:datatype");
}
Test(replay_bad, bad_datatype)
{
    corrupt_and_expect(bad_type, "--no-verify", 2, "core:datatype");
}
Test(replay_bad, non_utc_datetime)
{
    corrupt_and_expect(local_time, NULL, 2, "core:datetime");
}
Test(replay_bad, unknown_config_key)
{
    corrupt_and_expect(nothing, "--set measure.fund.freqency=5", 1, "freqency");
}
Test(replay_bad, non_coherent_block)
{
    corrupt_and_expect(nothing, "--set measure.fund.freq_hz=1001", 1, "block_periods");
}
Test(replay_bad, harmonic_above_nyquist)
{
    corrupt_and_expect(nothing, "--set measure.fund.harmonics=1,60", 1, "harmonic 60");
}
Test(replay_bad, channel_not_in_capture)
{
    corrupt_and_expect(nothing, "--set channel.dut.index=3", 1, "index");
}
Test(replay_bad, missing_capture)
{
    char *err = NULL;
    int st = qes_test_run("replay /nonexistent/x.sigmf-meta", NULL, &err);
    cr_assert_eq(st, 2);
    cr_assert_not_null(strstr(err, "/nonexistent/x.sigmf-meta"), "%s", err);
    free(err);
}
Test(replay_bad, unknown_option)
{
    char *err = NULL;
    cr_assert_eq(qes_test_run("replay --frobnicate", NULL, &err), 1);
    cr_assert_not_null(strstr(err, "--frobnicate"), "%s", err);
    free(err);
}

/*
 * A capture with a gap (a second capture segment whose global index jumps):
 * blocks touching the gap are flagged and have no value, the summary leaves
 * them out, and the exit status is 3.
 */
Test(replay, gap_flags_blocks_and_exits_3)
{
    itest_dir_make();
    char base[4200], err[1024];
    snprintf(base, sizeof base, "%s/gap", itest_dir());
    const char *cfg_json =
            "{\"qes:config\":\"[channel.dut]\\nindex = 0\\n[measure.m]\\nchannel = dut\\n"
            "freq_hz = 100\\nblock_periods = 1\\n\"}";
    struct qes_sigmf_writer_desc d = {.path = base,
                                      .dtype = QES_DT_RF64_LE,
                                      .sample_rate_hz = 1000,
                                      .num_channels = 1,
                                      .datetime_ns = 0,
                                      .extra_global_json = cfg_json};
    struct qes_sigmf_writer *w;
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    double buf[1000];
    for (int i = 0; i < 1000; i++)
        buf[i] = sqrt(2.0) * cos(2 * PI * 100 * i / 1000.0);
    /* samples 0..54, then 45 lost, then 100..999 (blocks of 10 samples) */
    cr_assert_eq(qes_sigmf_writer_write(w, buf, 55), 0);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 100, 100000000), 0);
    cr_assert_eq(qes_sigmf_writer_write(w, buf + 100, 900), 0);
    cr_assert_eq(qes_sigmf_writer_close(w, err, sizeof err), 0, "%s", err);
    char *out = itest_replay("gap", NULL, 3);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int gap_blocks = 0, good_blocks = 0;
    json_array_foreach(recs, i, r)
    {
        const char *type = json_string_value(json_object_get(r, "type"));
        if (!strcmp(type, "block")) {
            json_t *flags = json_object_get(r, "flags");
            if (json_array_size(flags)) {
                cr_assert_str_eq(json_string_value(json_array_get(flags, 0)), "gap");
                cr_assert(json_is_null(json_object_get(r, "r")), "a gap block has no value");
                cr_assert_eq(itest_num(r, "seq"), 5, "only block 5 (samples 50..59) is touched");
                gap_blocks++;
            } else {
                cr_assert_leq(fabs(itest_num(r, "r") - 1.0), 1e-12);
                good_blocks++;
            }
        } else if (!strcmp(type, "summary")) {
            cr_assert_eq(itest_num(r, "n_blocks"), 95);
            cr_assert_eq(itest_num(r, "n_excluded"), 1);
        }
    }
    cr_assert_eq(gap_blocks, 1);
    cr_assert_eq(good_blocks, 95, "5 before the gap, 90 after; 4 lost whole");
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

/* Run qes and return the child's peak RSS in kB. */
static long child_rss_kb(const char *args, int *status)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        char cmd[20000];
        snprintf(cmd, sizeof cmd, "exec '%s' %s >/dev/null 2>&1", QES_EXE, args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    struct rusage ru;
    cr_assert_eq(wait4(pid, &st, 0, &ru), pid);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return ru.ru_maxrss;
}

/*
 * Streaming: peak memory must not grow with the capture.  Two captures, 10x
 * apart in size (8 MB and 80 MB of ri32_le); the replay's peak RSS may differ
 * by at most 8 MB (allocator and page-cache noise), far below the 72 MB a
 * whole-file load would add, and stays under 100 MB.
 */
Test(replay, bounded_memory)
{
    itest_dir_make();
    char ini[4200], text[4096], args[9000];
    snprintf(ini, sizeof ini, "%s/m.ini", itest_dir());
    snprintf(text, sizeof text, RIG_INI, 24u, 1u, 1e-5, 0.95);
    cr_assert_eq(qes_test_write(ini, text), 0);
    long rss[2];
    const double secs[2] = {20, 200};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "simulate '%s' --out '%s/m%d' --seconds %g", ini, itest_dir(),
                 k, secs[k]);
        cr_assert_eq(qes_test_run(args, NULL, NULL), 0);
        snprintf(args, sizeof args, "replay '%s/m%d.sigmf-meta' -q -o '%s/m%d.jsonl'", itest_dir(),
                 k, itest_dir(), k);
        int st;
        rss[k] = child_rss_kb(args, &st);
        cr_assert_eq(st, 0);
    }
    fprintf(stderr, "peak RSS: %ld kB (8 MB capture), %ld kB (80 MB capture)\n", rss[0], rss[1]);
    cr_assert_lt(rss[1] - rss[0], 8 * 1024, "memory grows with the capture");
    cr_assert_lt(rss[1], 100 * 1024);
    itest_dir_clean();
}

/* qes run with the simulator is paced in real time and writes summaries. */
Test(run, sim_paced_real_time)
{
    itest_dir_make();
    char ini[4200], text[4096], args[9000];
    snprintf(ini, sizeof ini, "%s/r.ini", itest_dir());
    snprintf(text, sizeof text, RIG_INI, 24u, 1u, 1e-5, 0.95);
    cr_assert_eq(qes_test_write(ini, text), 0);
    snprintf(args, sizeof args, "run '%s' --set source.seconds=0.5 -q -o -", ini);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *out = NULL, *err = NULL;
    int st = qes_test_run(args, &out, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(st, 0, "%s", err);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_assert_geq(dt, 0.45, "0.5 s of samples delivered in %.3f s: not paced", dt);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int n_sum = 0;
    json_array_foreach(recs, i, r) n_sum +=
            !strcmp(json_string_value(json_object_get(r, "type")), "summary");
    cr_assert_eq(n_sum, 3);
    json_decref(recs);
    free(out);
    free(err);
    itest_dir_clean();
}

/* SIGTERM stops an endless live run cleanly: exit 0, final summaries written,
 * the recorder closed (the JSON Lines file is complete). */
Test(run, sigterm_writes_final_summaries)
{
    itest_dir_make();
    char ini[4200], text[4096], out[4200];
    snprintf(ini, sizeof ini, "%s/r.ini", itest_dir());
    snprintf(out, sizeof out, "%s/live.jsonl", itest_dir());
    snprintf(text, sizeof text, RIG_INI, 24u, 1u, 1e-5, 0.95);
    cr_assert_eq(qes_test_write(ini, text), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execl(QES_EXE, "qes", "run", ini, "--set", "source.seconds=0", "-q", "-o", out,
              (char *)NULL);
        _exit(127);
    }
    struct timespec d = {.tv_sec = 0, .tv_nsec = 600000000};
    nanosleep(&d, NULL);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "qes run did not exit normally after SIGTERM");
    cr_assert_eq(WEXITSTATUS(st), 0);
    char *text_out = qes_test_slurp(out, NULL);
    cr_assert_not_null(text_out);
    json_t *recs = itest_parse_jsonl(text_out);
    size_t i;
    json_t *r;
    int n_sum = 0;
    json_array_foreach(recs, i, r)
    {
        if (!strcmp(json_string_value(json_object_get(r, "type")), "summary")) {
            n_sum++;
            cr_assert_geq(itest_num(r, "n_blocks"), 2, "0.6 s of 10 ms blocks");
        }
    }
    cr_assert_eq(n_sum, 3);
    json_decref(recs);
    free(text_out);
    itest_dir_clean();
}

/* A full disk while recording (a sink that is /dev/full): a clear error
 * naming the file and exit status 2, from the recorder thread. */
Test(replay_bad, full_disk_sink)
{
    itest_dir_make();
    simulate("full", 24, 9, 1e-5, 0.95);
    char link[4200], args[20000];
    snprintf(link, sizeof link, "%s/full.jsonl", itest_dir());
    cr_assert_eq(symlink("/dev/full", link), 0);
    snprintf(args, sizeof args, "replay '%s/full.sigmf-meta' -q -o '%s'", itest_dir(), link);
    char *err = NULL;
    int st = qes_test_run(args, NULL, &err);
    cr_assert_eq(st, 2, "exit %d: %s", st, err);
    cr_assert_not_null(strstr(err, "full.jsonl"), "%s", err);
    cr_assert_not_null(strstr(err, "No space left"), "%s", err);
    free(err);
    itest_dir_clean();
}
