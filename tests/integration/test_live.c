/*
 * `qes run` on a live ADC: the emulated ADC of tests/fixtures/iio_fixture.h
 * served by the real iiod on 127.0.0.1, read through libiio's network
 * backend, the acquisition thread, the ring, the runtime and the sinks.
 *
 *  - sine: the live results equal, bit for bit, those of `qes replay` of
 *    the raw tee ([run] record_raw), and are as accurate as quantisation
 *    allows;
 *  - overflow: qes stopped (SIGSTOP) while the feeder is paced in real time:
 *    the feeder drops what the pipe cannot take; the run reports exactly
 *    that many lost samples, flags the blocks, and exits 3;
 *  - the feeder killed and restarted mid-run: reconnection, a flagged gap,
 *    final summaries, exit 3;
 *  - a refused attribute write: a clear error naming the attribute;
 *  - SIGINT: a clean stop with final summaries and a closed run record.
 */
#include "tests/fixtures/iio_fixture.h"
#include "tests/integration/itest.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

TestSuite(live, .timeout = 300);

#define FS_HZ  100000.0
#define SINE_F 1000.0
#define SINE_A 4000000.0 /* counts, of a 24-bit ADC */
#define GAIN   1e-6      /* V per count */

static struct qes_iiofx g_fx;
static int g_fx_up;
static int g_gain_auto; /* write gain = auto (the device's scale) instead of GAIN */

static void start_fixture(enum qes_iiofx_pace pace, double fs)
{
    struct qes_iiofx_opts o = {
            .n_channels = 1,
            .scan_type = "le:s24/32>>0",
            .timestamp = 1,
            .sample_rate_hz = fs,
            .scale = 0.001,
            .wave = QES_IIOFX_SINE,
            .sine_freq_hz = SINE_F,
            .sine_amplitude = SINE_A,
            .pace = pace,
    };
    QES_IIOFX_START_OR_SKIP(&o, &g_fx);
    g_fx_up = 1;
}

static void stop_fixture(void)
{
    if (g_fx_up)
        qes_iiofx_stop(&g_fx);
    g_fx_up = 0;
}

/* The configuration of a live run on the fixture; extra is appended. */
static void write_ini(const char *path, double fs, double seconds, const char *extra)
{
    char text[4096], gain[64];
    snprintf(gain, sizeof gain, g_gain_auto ? "auto" : "%.17g", GAIN);
    snprintf(text, sizeof text,
             "[source]\n"
             "kind = iio\n"
             "uri = %s\n"
             "device = qes-adc\n"
             "sample_rate_hz = %.17g\n"
             "seconds = %.17g\n"
             "buffer_samples = 4096\n"
             "timeout_ms = 500\n"
             "reconnect_max_s = 0.5\n"
             "[channel.dut]\n"
             "index = 0\n"
             "iio_channel = voltage0\n"
             "gain = %s\n"
             "unit = V\n"
             "[measure.ac]\n"
             "channel = dut\n"
             "method = dft\n"
             "freq_hz = %.17g\n"
             "harmonics = 1\n"
             "block_periods = 10\n"
             "%s",
             g_fx.uri, fs, seconds, gain, SINE_F, extra ? extra : "");
    cr_assert_eq(qes_test_write(path, text), 0);
}

/* Start the qes executable with argv (argv[0] ignored), stdout and stderr to files. */
static pid_t spawn_qes(char *const argv[], const char *out, const char *err)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0)
            _exit(127);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(QES_EXE, argv);
        _exit(127);
    }
    return pid;
}

static void sleep_s(double s)
{
    struct timespec t = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&t, &t) == -1 && errno == EINTR)
        ;
}

/* Wait for pid at most limit_s seconds (then SIGKILL and fail). */
static int wait_qes(pid_t pid, double limit_s)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) > limit_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            cr_assert_fail("qes did not end within %.0f s (a hang)", limit_s);
        }
        sleep_s(0.02);
    }
}

static json_t *load_jsonl(const char *path)
{
    char *text = qes_test_slurp(path, NULL);
    cr_assert_not_null(text, "cannot read %s", path);
    json_t *a = itest_parse_jsonl(text);
    free(text);
    return a;
}

static const json_t *find_type(const json_t *arr, const char *type)
{
    size_t i;
    const json_t *o;
    json_array_foreach(arr, i, o) if (itest_is(o, type)) return o;
    return NULL;
}

static int has_flag(const json_t *o, const char *flag)
{
    const json_t *fl = json_object_get(o, "flags");
    size_t i;
    const json_t *v;
    json_array_foreach(fl, i,
                       v) if (json_is_string(v) && !strcmp(json_string_value(v), flag)) return 1;
    return 0;
}

/* The run_end record, which must be there (the run was closed). */
static const json_t *run_end(const json_t *arr)
{
    const json_t *end = find_type(arr, "run_end");
    cr_assert_not_null(end, "no run_end record: the run was not closed");
    return end;
}

/* A `qes run` of the fixture in the test directory: its files, and its
 * standard error once it has ended. */
struct live_run {
    char ini[4200], out[4200], err[4200];
    char *etext;
};

/* Start the fixture (start_fixture), make the test directory and name the
 * files: live.ini, the output live.<out_ext>, live.err. */
static void live_begin(struct live_run *r, enum qes_iiofx_pace pace, double fs, const char *out_ext)
{
    start_fixture(pace, fs);
    itest_dir_make();
    snprintf(r->ini, sizeof r->ini, "%s/live.ini", itest_dir());
    snprintf(r->out, sizeof r->out, "%s/live.%s", itest_dir(), out_ext);
    snprintf(r->err, sizeof r->err, "%s/live.err", itest_dir());
    r->etext = NULL;
}

/* Start `qes run INI -o OUT`, stdout discarded, stderr to the err file. */
static pid_t live_spawn(struct live_run *r)
{
    char *argv[] = {"qes", "run", r->ini, "-o", r->out, NULL};
    return spawn_qes(argv, "/dev/null", r->err);
}

/* Wait for the run (wait_qes) and read its standard error into r->etext;
 * returns its exit status. */
static int live_wait(struct live_run *r, pid_t pid, double limit_s)
{
    int st = wait_qes(pid, limit_s);
    r->etext = qes_test_slurp(r->err, NULL);
    return st;
}

/* Free what the run holds and the records a, and remove the test directory. */
static void live_done(struct live_run *r, json_t *a)
{
    free(r->etext);
    r->etext = NULL;
    json_decref(a);
    itest_dir_clean();
}

/* ---- the live results are the replay of the raw tee's ------------------------------------ */

Test(live, sine_equals_replay_of_raw_tee, .fini = stop_fixture)
{
    struct live_run L;
    live_begin(&L, QES_IIOFX_FREE, FS_HZ, "jsonl");
    char ini2[4200], raw[4200], extra[4400];
    snprintf(raw, sizeof raw, "%s/raw", itest_dir());
    snprintf(extra, sizeof extra, "[run]\nrecord_raw = %s\n", raw);
    g_gain_auto = 1; /* the device's scale, 0.001 mV per count */
    write_ini(L.ini, FS_HZ, 2.0, extra);
    g_gain_auto = 0;
    int st = live_wait(&L, live_spawn(&L), 120);
    cr_assert_eq(st, 0, "qes run exit %d: %s", st, L.etext);
    json_t *a = load_jsonl(L.out);

    /* gain = auto became the device's scale in volts, and the run record says so */
    const json_t *runrec = find_type(a, "run");
    cr_assert_not_null(runrec);
    const char *conf = json_string_value(json_object_get(runrec, "config"));
    cr_assert_not_null(conf);
    const char *sec = strstr(conf, "[channel.dut]");
    cr_assert_not_null(sec);
    const char *gl = strstr(sec, "\ngain = ");
    cr_assert_not_null(gl, "no gain line in the resolved configuration");
    const double gain = strtod(gl + 8, NULL);
    cr_assert_eq(gain, 1e-3 * 0.001, "gain = auto resolved to %.17g, not 1e-3 x scale", gain);

    /* the same configuration replayed from the raw capture */
    char text[2048];
    snprintf(text, sizeof text,
             "[source]\nkind = sigmf\n[channel.dut]\nindex = 0\ngain = %.17g\nunit = V\n"
             "[measure.ac]\nchannel = dut\nmethod = dft\nfreq_hz = %.17g\nharmonics = 1\n"
             "block_periods = 10\n",
             gain, SINE_F);
    snprintf(ini2, sizeof ini2, "%s/replay.ini", itest_dir());
    cr_assert_eq(qes_test_write(ini2, text), 0);
    char args[20000], *rout = NULL, *rerr = NULL;
    snprintf(args, sizeof args, "replay '%s.sigmf-meta' -c '%s' -o - -q", raw, ini2);
    st = qes_test_run(args, &rout, &rerr);
    cr_assert_eq(st, 0, "replay of the raw tee: exit %d: %s", st, rerr);

    json_t *b = itest_parse_jsonl(rout);
    size_t i, nb = 0;
    const json_t *o;
    json_t *bb = json_array(); /* replay's blocks */
    json_array_foreach(b, i, o) if (itest_is(o, "block")) json_array_append(bb, (json_t *)o);
    /* 2 s at 100 kHz = 200 blocks of 1000 samples.  The feeder's sine is rounded to integer
     * counts with exactly 100 samples per period, so its rounding error repeats every period
     * and does not average out: the truth is the amplitude of the rounded waveform, from
     * the feeder's formula (tests/fixtures/iio/qes_iio_feeder.c) over one period.  Every
     * block holds 10 whole periods, cyclically shifted, so has that amplitude exactly. */
    double sx = 0, sy = 0;
    for (int k = 0; k < 100; k++) {
        const long double ph = fmodl((long double)k * (SINE_F / FS_HZ), 1.0L);
        const double v = (double)llround(SINE_A * sin(2.0 * 3.14159265358979323846 * (double)ph));
        sx += v * cos(2.0 * 3.14159265358979323846 * k / 100.0);
        sy += v * sin(2.0 * 3.14159265358979323846 * k / 100.0);
    }
    const double truth = (2.0 / 100.0) * hypot(sx, sy) / sqrt(2.0) * gain;
    const double unrounded = SINE_A * gain / sqrt(2.0);
    double worst = 0;
    json_array_foreach(a, i, o)
    {
        if (!itest_is(o, "block"))
            continue;
        cr_assert_lt(nb, json_array_size(bb), "more live blocks than replayed");
        const json_t *r = json_array_get(bb, nb);
        cr_assert_eq(itest_num(o, "sample_start"), itest_num(r, "sample_start"));
        cr_assert_eq(itest_num(o, "x"), itest_num(r, "x"), "block %zu: live x %.17g, replay %.17g",
                     nb, itest_num(o, "x"), itest_num(r, "x"));
        cr_assert_eq(itest_num(o, "y"), itest_num(r, "y"));
        cr_assert(!has_flag(o, "gap"), "block %zu flagged gap in a free-running capture", nb);
        double e = fabs(itest_num(o, "r") - truth) / truth;
        worst = e > worst ? e : worst;
        nb++;
    }
    cr_assert_eq(nb, 200, "%zu live blocks", nb);
    cr_assert_eq(nb, json_array_size(bb));
    /* Error budget: the DFT of 1000 samples of ~4e6 counts in double, ~1e-15 relative per
     * operation growing as sqrt(n): ~3e-14; bound 1e-12 (as the backbone's end-to-end test). */
    cr_assert_lt(worst, 1e-12, "worst amplitude error %.3g relative", worst);
    const json_t *end = run_end(a);
    cr_assert_eq(itest_num(end, "lost"), 0);
    cr_assert_eq(itest_num(end, "samples"), 200000);
    cr_assert_gt(itest_num(end, "latency_n"), 0);
    printf("live sine: %zu blocks equal to the replay of the raw tee bit for bit; worst "
           "amplitude error %.3g relative (the rounding to counts itself: %.3g); latency p50 %.1f us, p99 %.1f us, max %.1f us\n",
           nb, worst, fabs(truth - unrounded) / unrounded, itest_num(end, "latency_p50_us"),
           itest_num(end, "latency_p99_us"), itest_num(end, "latency_max_us"));
    json_decref(b);
    json_decref(bb);
    free(rout);
    free(rerr);
    live_done(&L, a);
}

/* ---- overflow: qes stopped while the ADC runs on --------------------------------------- */

Test(live, overflow_counted_exactly, .fini = stop_fixture)
{
    const double fs = 200000.0;
    struct live_run L;
    live_begin(&L, QES_IIOFX_REALTIME, fs, "jsonl");
    write_ini(L.ini, fs, 8.0, NULL);
    pid_t pid = live_spawn(&L);
    sleep_s(2.0);
    /* 3 s stopped: more than the pipe, iiod and the socket buffers hold at 200 kS/s */
    kill(pid, SIGSTOP);
    sleep_s(3.0);
    kill(pid, SIGCONT);
    int st = live_wait(&L, pid, 120);
    sleep_s(0.5); /* the feeder's counters are written every 100 ms */
    const uint64_t dropped = qes_iiofx_dropped(&g_fx);
    cr_assert_gt(dropped, 0, "the feeder dropped nothing: the overflow was not provoked");
    cr_assert_eq(st, 3, "exit %d (expected 3: samples lost): %s", st, L.etext);
    json_t *a = load_jsonl(L.out);
    const json_t *end = run_end(a);
    cr_assert_eq((uint64_t)itest_num(end, "lost"), dropped,
                 "qes reports %.0f lost, the feeder dropped %llu: %s", itest_num(end, "lost"),
                 (unsigned long long)dropped, L.etext);
    size_t i, gaps = 0;
    const json_t *o;
    json_array_foreach(a, i, o) if (itest_is(o, "block") && has_flag(o, "gap")) gaps++;
    cr_assert_gt(gaps, 0, "no block flagged gap");
    cr_assert_not_null(find_type(a, "summary"));
    printf("live overflow: feeder dropped %llu samples, qes reported %.0f lost in %.0f gap(s), "
           "%zu block records flagged gap, exit %d\n",
           (unsigned long long)dropped, itest_num(end, "lost"), itest_num(end, "gaps"), gaps, st);
    live_done(&L, a);
}

/* ---- the feeder killed and restarted: reconnection ------------------------------------- */

Test(live, device_loss_reconnects, .fini = stop_fixture)
{
    const double fs = FS_HZ;
    struct live_run L;
    live_begin(&L, QES_IIOFX_REALTIME, fs, "jsonl");
    write_ini(L.ini, fs, 6.0, NULL);
    pid_t pid = live_spawn(&L);
    sleep_s(1.5);
    cr_assert_eq(qes_iiofx_kill_feeder(&g_fx), 0);
    sleep_s(1.0);
    cr_assert_eq(qes_iiofx_restart_feeder(&g_fx), 0);
    int st = live_wait(&L, pid, 120);
    cr_assert_eq(st, 3, "exit %d (expected 3: a gap): %s", st, L.etext);
    json_t *a = load_jsonl(L.out);
    const json_t *end = run_end(a);
    cr_assert_geq(itest_num(end, "reconnects"), 1, "%s", L.etext);
    cr_assert_gt(itest_num(end, "lost"), 0);
    cr_assert_not_null(find_type(a, "summary"), "no final summary");
    size_t i, gaps = 0, good_after = 0;
    const json_t *o;
    int seen_gap = 0;
    json_array_foreach(a, i, o)
    {
        if (!itest_is(o, "block"))
            continue;
        if (has_flag(o, "gap")) {
            gaps++;
            seen_gap = 1;
        } else if (seen_gap) {
            good_after++;
        }
    }
    cr_assert_gt(gaps, 0);
    cr_assert_gt(good_after, 0, "no valid block after the reconnection");
    printf("live device loss: %.0f reconnection(s), %.0f samples lost, %zu blocks flagged gap, "
           "%zu valid blocks after it; exit %d\n",
           itest_num(end, "reconnects"), itest_num(end, "lost"), gaps, good_after, st);
    live_done(&L, a);
}

/* ---- a refused attribute ------------------------------------------------------------------ */

Test(live, refused_attribute_named, .fini = stop_fixture)
{
    struct live_run L;
    live_begin(&L, QES_IIOFX_FREE, FS_HZ, "jsonl");
    cr_assert_eq(qes_iiofx_refuse_attr(&g_fx, "sampling_frequency"), 0);
    char args[8500], *e = NULL;
    write_ini(L.ini, 50000.0, 1.0, NULL);
    snprintf(args, sizeof args, "run '%s' -o '%s'", L.ini, L.out);
    int st = qes_test_run(args, NULL, &e);
    cr_assert(st == 1 || st == 2, "exit %d: %s", st, e);
    cr_assert(strstr(e, "sampling_frequency") != NULL, "message does not name the attribute: %s",
              e);
    printf("live refused attribute: exit %d: %s", st, e);
    free(e);
    live_done(&L, NULL);
}

/* ---- SIGINT --------------------------------------------------------------------------------- */

Test(live, sigint_stops_cleanly, .fini = stop_fixture)
{
    struct live_run L;
    live_begin(&L, QES_IIOFX_REALTIME, FS_HZ, "db");
    write_ini(L.ini, FS_HZ, 0.0, NULL); /* until stopped */
    pid_t pid = live_spawn(&L);
    sleep_s(2.0);
    kill(pid, SIGINT);
    int st = live_wait(&L, pid, 30);
    cr_assert_eq(st, 0, "exit %d: %s", st, L.etext);
    char args[8400], *out = NULL;
    snprintf(args, sizeof args, "export '%s' --to jsonl -o -", L.out);
    cr_assert_eq(qes_test_run(args, &out, NULL), 0);
    json_t *a = itest_parse_jsonl(out);
    const json_t *end = run_end(a);
    cr_assert_eq(itest_num(end, "status"), 0);
    cr_assert_gt(itest_num(end, "samples"), 0);
    cr_assert_not_null(find_type(a, "summary"), "no final summary");
    printf("live SIGINT: %.0f samples, summaries written, run closed with status 0\n",
           itest_num(end, "samples"));
    free(out);
    live_done(&L, a);
}

/* ---- a device that does not come back: give_up_s ------------------------------------------ */

Test(live, device_gone_gives_up_with_summaries, .fini = stop_fixture)
{
    struct live_run L;
    live_begin(&L, QES_IIOFX_REALTIME, FS_HZ, "jsonl");
    /* until stopped, but give up 1.5 s after the device went away */
    char text[4096];
    snprintf(text, sizeof text,
             "[source]\nkind = iio\nuri = %s\ndevice = qes-adc\nsample_rate_hz = 100000\n"
             "seconds = 0\ntimeout_ms = 300\nreconnect_max_s = 0.3\ngive_up_s = 1.5\n"
             "[channel.dut]\nindex = 0\niio_channel = voltage0\ngain = 1e-6\nunit = V\n"
             "[measure.ac]\nchannel = dut\nmethod = dft\nfreq_hz = 1000\nharmonics = 1\n"
             "block_periods = 10\n",
             g_fx.uri);
    cr_assert_eq(qes_test_write(L.ini, text), 0);
    pid_t pid = live_spawn(&L);
    sleep_s(1.5);
    cr_assert_eq(qes_iiofx_kill_feeder(&g_fx), 0);
    /* never restarted: qes must end by itself, with its summaries */
    int st = live_wait(&L, pid, 60);
    cr_assert_eq(st, 2, "exit %d (expected 2: the device is gone): %s", st, L.etext);
    cr_assert(strstr(L.etext, "gave up") != NULL, "no give-up message: %s", L.etext);
    json_t *a = load_jsonl(L.out);
    cr_assert_not_null(find_type(a, "summary"), "no final summary");
    const json_t *end = run_end(a);
    cr_assert_eq(itest_num(end, "status"), 2);
    printf("live device gone: exit 2 after give_up_s, %.0f samples, final summaries written\n",
           itest_num(end, "samples"));
    live_done(&L, a);
}
