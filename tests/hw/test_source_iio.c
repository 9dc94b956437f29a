/*
 * The libiio source against the emulated ADC of tests/fixtures/iio_fixture.h
 * (Debian's real iiod serving a fake sysfs tree; libiio's network backend
 * end to end).  Tests skip when the fixture cannot run here.
 *
 * Values are checked exactly with the feeder's counter: channel c of
 * sample k is the low b bits of (k n + c).  Since the counter keeps k over
 * dropped samples, over restarted buffers and over a restarted feeder, the
 * run index first_sample + i of every delivered value must map to k by a
 * constant offset: a value check passing on every frame proves that no
 * sample was repeated or reordered and that every gap was counted exactly
 * (modulo 2^b / n samples, far more than any gap here).
 */
#include "common/err.h"
#include "hw/source_iio.h"
#include "tests/fixtures/iio_fixture.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static struct qes_iiofx g_fx;
static int g_fx_on;
static struct qes_source *g_src;

static void fini(void)
{
    qes_source_destroy(g_src);
    g_src = NULL;
    if (g_fx_on)
        qes_iiofx_stop(&g_fx);
    g_fx_on = 0;
}

TestSuite(source_iio, .fini = fini, .timeout = 240);

static void fx_start(const struct qes_iiofx_opts *o)
{
    QES_IIOFX_START_OR_SKIP(o, &g_fx);
    g_fx_on = 1;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Start the fixture with the counter on n channels of the scan type. */
static void fx_counter(unsigned n, const char *scan_type, int timestamp, double fs,
                       enum qes_iiofx_pace pace)
{
    struct qes_iiofx_opts o = {.n_channels = n,
                               .scan_type = scan_type,
                               .timestamp = timestamp,
                               .sample_rate_hz = fs,
                               .wave = QES_IIOFX_COUNTER,
                               .pace = pace};
    fx_start(&o);
}

/* Device qes-adc at uri, rate fs (0: keep the device's), the rest default. */
static struct qes_iio_desc desc_at(const char *uri, double fs)
{
    struct qes_iio_desc d;
    memset(&d, 0, sizeof d);
    d.uri = uri;
    d.device = "qes-adc";
    d.sample_rate_hz = fs;
    return d;
}

static struct qes_iio_desc base_desc(double fs)
{
    return desc_at(g_fx.uri, fs);
}

/* base_desc(fs) read in buffers of buffer_samples with a 300 ms timeout,
 * retrying a lost device from every 0.05 s up to every max_s. */
static struct qes_iio_desc reconnecting_desc(double fs, size_t buffer_samples, double max_s)
{
    struct qes_iio_desc d = base_desc(fs);
    d.buffer_samples = buffer_samples;
    d.timeout_ms = 300;
    d.reconnect_min_s = 0.05;
    d.reconnect_max_s = max_s;
    return d;
}

static void create_or_fail(const struct qes_iio_desc *d)
{
    char err[512] = "";
    int rc = qes_source_iio_create(d, &g_src, err, sizeof err);
    cr_assert_eq(rc, 0, "create: %s (%s)", err, qes_err_name(rc));
    cr_assert_not_null(g_src);
}

/* Create g_src from d, which must fail with code want; the message is in err. */
static void create_fails(const struct qes_iio_desc *d, int want, char *err, size_t errlen)
{
    err[0] = 0;
    int rc = qes_source_iio_create(d, &g_src, err, errlen);
    cr_assert_eq(rc, want, "%s (%s)", qes_err_name(rc), err);
}

/* One read of at most max_n samples into f, which must deliver. */
static void read_ok(struct qes_frame *f, size_t max_n)
{
    int rc = qes_source_read(g_src, f, max_n);
    cr_assert_eq(rc, 1, "read: %d %s", rc, g_src->errmsg);
}

/* Read until the source stops delivering; returns its last code. */
static int read_until_end(size_t max_n)
{
    struct qes_frame f;
    int rc;
    do
        rc = qes_source_read(g_src, &f, max_n);
    while (rc == 1);
    return rc;
}

static struct qes_iio_stats stats(void)
{
    struct qes_iio_stats st;
    qes_source_iio_stats(g_src, &st);
    return st;
}

/* ---- the counter ------------------------------------------------------ */

struct counter {
    unsigned bits, nch;
    int is_signed;
    int have_base;
    uint64_t base; /* (k0 n) mod 2^b, k0 = k of run index 0 */
    uint64_t next; /* run index expected next (first_sample - lost_before) */
    uint64_t bad, lost, frames, samples;
    char first_bad[256];
};

static uint64_t mask_bits(unsigned bits)
{
    return bits >= 64 ? ~0ULL : (1ULL << bits) - 1;
}

static double counter_value(const struct counter *k, uint64_t m, unsigned c)
{
    uint64_t u = (k->base + m * k->nch + c) & mask_bits(k->bits);
    if (k->is_signed && (u >> (k->bits - 1)) & 1)
        return (double)((int64_t)u - (int64_t)(1ULL << k->bits));
    return (double)u;
}

/* Check one frame: continuity of the run index and every value. */
static void counter_check(struct counter *k, const struct qes_frame *f)
{
    cr_assert_eq(f->n_channels, k->nch);
    cr_assert_gt(f->n, 0);
    cr_assert_eq(f->first_sample, k->next + f->lost_before,
                 "frame %llu: first_sample %llu, expected %llu + lost_before %llu",
                 (unsigned long long)k->frames, (unsigned long long)f->first_sample,
                 (unsigned long long)k->next, (unsigned long long)f->lost_before);
    if (!k->have_base) {
        uint64_t v = (uint64_t)(int64_t)f->samples[0] & mask_bits(k->bits);
        k->base = (v - f->first_sample * k->nch) & mask_bits(k->bits);
        k->have_base = 1;
    }
    for (size_t i = 0; i < f->n; i++) {
        for (unsigned c = 0; c < k->nch; c++) {
            double want = counter_value(k, f->first_sample + i, c);
            double got = f->samples[i * k->nch + c];
            if (got != want) {
                if (!k->bad)
                    snprintf(k->first_bad, sizeof k->first_bad,
                             "run sample %llu channel %u: %.17g, expected %.17g",
                             (unsigned long long)(f->first_sample + i), c, got, want);
                k->bad++;
            }
        }
    }
    k->lost += f->lost_before;
    k->next = f->first_sample + f->n;
    k->samples += f->n;
    k->frames++;
}

/* read_ok, then counter_check. */
static void read_counter(struct counter *k, struct qes_frame *f, size_t max_n)
{
    read_ok(f, max_n);
    counter_check(k, f);
}

/* No wrong value so far; what (may be "") names the case. */
static void counter_assert_right(const struct counter *k, const char *what)
{
    cr_assert_eq(k->bad, 0, "%s%s%llu wrong values; first: %s", what, what[0] ? ": " : "",
                 (unsigned long long)k->bad, k->first_bad);
}

/* Criterion's index parameters 0..n-1, written into idx (static, n long). */
static struct criterion_test_params index_params(int *idx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = (int)i;
    return cr_make_param_array(int, idx, n);
}

/* ---- bad descriptions (no device needed) ------------------------------ */

static const char *const bad_names[] = {
        "no desc",           "no device",        "empty device", "17 channels",
        "NULL channel",      "negative rate",    "NaN rate",     "tolerance 1",
        "min > max backoff", "negative give_up", "huge buffer",
};
#define N_BAD (sizeof bad_names / sizeof bad_names[0])

ParameterizedTestParameters(source_iio, bad_desc)
{
    static int idx[N_BAD];
    return index_params(idx, N_BAD);
}

ParameterizedTest(int *i, source_iio, bad_desc)
{
    struct qes_iio_desc d = desc_at("ip:127.0.0.1:1", 0); /* never contacted: checked first */
    const struct qes_iio_desc *dp = &d;
    switch (*i) {
    case 0:
        dp = NULL;
        break;
    case 1:
        d.device = NULL;
        break;
    case 2:
        d.device = "";
        break;
    case 3:
        d.n_channels = QES_IIO_MAX_CHANNELS + 1;
        break;
    case 4:
        d.n_channels = 2;
        d.channels[0] = "voltage0";
        break;
    case 5:
        d.sample_rate_hz = -1;
        break;
    case 6:
        d.sample_rate_hz = NAN;
        break;
    case 7:
        d.rate_tolerance = 1;
        break;
    case 8:
        d.reconnect_min_s = 2;
        d.reconnect_max_s = 1;
        break;
    case 9:
        d.give_up_s = -1;
        break;
    case 10:
        d.buffer_samples = (size_t)1 << 40;
        break;
    }
    struct qes_source *s = (struct qes_source *)&d; /* must be reset to NULL */
    char err[512] = "";
    int rc = qes_source_iio_create(dp, &s, err, sizeof err);
    cr_assert_eq(rc, QES_EINVAL, "%s: %s (%s)", bad_names[*i], qes_err_name(rc), err);
    cr_assert_null(s, "%s", bad_names[*i]);
    cr_assert_neq(err[0], 0, "%s: no message", bad_names[*i]);
}

Test(source_iio, unreachable_context_names_the_uri)
{
    struct qes_iio_desc d = desc_at("ip:127.0.0.1:1", 0); /* port 1: connection refused */
    char err[512];
    create_fails(&d, QES_EIO, err, sizeof err);
    cr_assert_not_null(strstr(err, "ip:127.0.0.1:1"), "%s", err);
}

/* ---- (1) four channels of s24/32 with timestamps, 10 s of samples ----- */

Test(source_iio, counter_s24_four_channels_ten_seconds)
{
    /* The free feeder is flow-controlled: 10 s of samples at 200 kHz
     * (2e6 per channel) are read as fast as iiod serves them. */
    const double fs = 200000;
    fx_counter(4, "le:s24/32>>0", 1, fs, QES_IIOFX_FREE);
    struct qes_iio_desc d = base_desc(fs);
    create_or_fail(&d);
    cr_assert_eq(g_src->n_channels, 4);
    cr_assert_eq(g_src->sample_rate_hz, fs);
    cr_assert_str_eq(qes_source_iio_datatype(g_src), "ri32_le");

    struct counter k = {.bits = 24, .nch = 4, .is_signed = 1};
    const uint64_t target = (uint64_t)(10 * fs);
    const size_t max_n = 3000; /* not a divisor of the 4096-sample buffer: refills split */
    int64_t ts0 = 0, prev_arrival = 0;
    double t0 = mono_s();
    while (k.samples < target) {
        struct qes_frame f;
        read_counter(&k, &f, max_n);
        cr_assert_leq(f.n, max_n);
        cr_assert_eq(f.lost_before, 0, "gap of %llu at %llu", (unsigned long long)f.lost_before,
                     (unsigned long long)f.first_sample);
        /* Timestamps: the feeder's are t_a + round(k 1e9 / fs), 5000 ns a
         * sample exactly at 200 kHz. */
        cr_assert(f.has_device_time);
        if (k.frames == 1)
            ts0 = f.device_time_ns;
        cr_assert_eq(f.device_time_ns - ts0, (int64_t)f.first_sample * 5000,
                     "device time of run sample %llu", (unsigned long long)f.first_sample);
        cr_assert_gt(f.arrival_ns, 0);
        cr_assert_geq(f.arrival_ns, prev_arrival);
        prev_arrival = f.arrival_ns;
    }
    double el = mono_s() - t0;
    counter_assert_right(&k, "");
    struct qes_iio_stats st = stats();
    cr_assert_eq(st.samples, k.samples);
    cr_assert_eq(st.lost, 0);
    cr_assert_eq(st.gaps, 0);
    cr_assert_eq(st.refill_errors, 0);
    cr_assert_eq(st.rate_readback_hz, fs);
    cr_log_info("iio source over the fixture: %llu samples x 4 channels (s24/32 + timestamp) in "
                "%.3f s = %.3g samples/s per channel",
                (unsigned long long)k.samples, el, (double)k.samples / el);
}

/* ---- (2) scan types ----------------------------------------------------- */

static const struct {
    const char *type;
    unsigned bits;
    int is_signed, timestamp;
    const char *datatype;
} scan_cases[] = {
        {"le:s16/16>>0", 16, 1, 1, "ri16_le"}, {"be:s12/16>>4", 12, 1, 1, "ri16_le"},
        {"be:s16/16>>0", 16, 1, 0, "ri16_le"}, {"le:u12/16>>2", 12, 0, 1, "ri16_le"},
        {"be:s24/32>>8", 24, 1, 1, "ri32_le"}, {"le:u16/16>>0", 16, 0, 0, "ri32_le"},
};
#define N_SCAN (sizeof scan_cases / sizeof scan_cases[0])

ParameterizedTestParameters(source_iio, scan_types)
{
    static int idx[N_SCAN];
    return index_params(idx, N_SCAN);
}

ParameterizedTest(int *i, source_iio, scan_types)
{
    const double fs = 50000;
    fx_counter(2, scan_cases[*i].type, scan_cases[*i].timestamp, fs, QES_IIOFX_FREE);
    struct qes_iio_desc d = base_desc(0); /* keep the device's rate */
    d.channels[0] = "voltage0";
    d.channels[1] = "voltage1";
    d.n_channels = 2;
    d.buffer_samples = 1000;
    create_or_fail(&d);
    cr_assert_eq(g_src->sample_rate_hz, fs);
    cr_assert_str_eq(qes_source_iio_datatype(g_src), scan_cases[*i].datatype);

    /* 100000 samples: a 12-bit counter over 2 channels wraps every 2048. */
    struct counter k = {
            .bits = scan_cases[*i].bits, .nch = 2, .is_signed = scan_cases[*i].is_signed};
    while (k.samples < 100000) {
        struct qes_frame f;
        read_counter(&k, &f, 777);
        cr_assert_eq(f.has_device_time, scan_cases[*i].timestamp);
    }
    counter_assert_right(&k, scan_cases[*i].type);
    cr_assert_eq(k.lost, 0);
}

/* ---- (3) scale ---------------------------------------------------------- */

Test(source_iio, scale_attribute_is_the_default_gain)
{
    struct qes_iiofx_opts o = {.n_channels = 3,
                               .scan_type = "le:s16/16>>0",
                               .timestamp = 1,
                               .sample_rate_hz = 10000,
                               .scale = 0.000123,
                               .wave = QES_IIOFX_COUNTER,
                               .pace = QES_IIOFX_FREE};
    fx_start(&o);
    struct qes_iio_desc d = base_desc(0);
    create_or_fail(&d);
    cr_assert_eq(g_src->n_channels, 3);
    /* The attribute travels as text; 0.000123 printed with >= 6
     * significant digits parses back to the same double. */
    for (unsigned c = 0; c < 3; c++)
        cr_assert_eq(qes_source_iio_scale(g_src, c), 0.000123, "channel %u: %.17g", c,
                     qes_source_iio_scale(g_src, c));
    cr_assert_eq(qes_source_iio_scale(g_src, 3), 0);
}

Test(source_iio, no_scale_attribute_gives_zero)
{
    fx_counter(1, "le:s16/16>>0", 0, 10000, QES_IIOFX_FREE);
    struct qes_iio_desc d = base_desc(0);
    create_or_fail(&d);
    cr_assert_eq(qes_source_iio_scale(g_src, 0), 0);
}

/* ---- (4) device and channel lookup -------------------------------------- */

Test(source_iio, device_by_name_id_and_label)
{
    fx_counter(2, "le:s16/16>>0", 1, 10000, QES_IIOFX_FREE);
    const char *names[] = {"qes-adc", "iio:device0", "qes-emulated-adc"};
    for (size_t n = 0; n < 3; n++) {
        struct qes_iio_desc d = base_desc(0);
        d.device = names[n];
        create_or_fail(&d);
        cr_assert_eq(g_src->n_channels, 2, "%s", names[n]);
        struct qes_frame f;
        struct counter k = {.bits = 16, .nch = 2, .is_signed = 1};
        read_counter(&k, &f, 100);
        counter_assert_right(&k, names[n]);
        qes_source_destroy(g_src);
        g_src = NULL;
    }

    struct qes_iio_desc d = base_desc(0);
    char err[512];
    d.device = "no-such-adc";
    create_fails(&d, QES_ENOENT, err, sizeof err);
    cr_assert_not_null(strstr(err, "no-such-adc"), "%s", err);
    cr_assert_not_null(strstr(err, g_fx.uri), "%s", err);

    d = base_desc(0);
    d.channels[0] = "voltage0";
    d.channels[1] = "voltage7";
    d.n_channels = 2;
    create_fails(&d, QES_ENOENT, err, sizeof err);
    cr_assert_not_null(strstr(err, "voltage7"), "%s", err);

    d.channels[1] = "timestamp";
    create_fails(&d, QES_EINVAL, err, sizeof err);
    cr_assert_not_null(strstr(err, "timestamp"), "%s", err);

    d.channels[1] = "voltage0";
    create_fails(&d, QES_EINVAL, err, sizeof err);
}

Test(source_iio, channel_subset_in_the_order_given)
{
    fx_counter(4, "le:s24/32>>0", 1, 10000, QES_IIOFX_FREE);
    struct qes_iio_desc d = base_desc(0);
    d.channels[0] = "voltage3";
    d.channels[1] = "voltage1";
    d.n_channels = 2;
    create_or_fail(&d);
    struct qes_frame f;
    read_ok(&f, 500);
    /* voltage3 - voltage1 = 2 on every sample (n = 4 voltage channels in
     * the counter, whichever are enabled) */
    for (size_t i = 0; i < f.n; i++)
        cr_assert_eq(f.samples[2 * i] - f.samples[2 * i + 1], 2, "sample %zu: %g %g", i,
                     f.samples[2 * i], f.samples[2 * i + 1]);
    for (size_t i = 1; i < f.n; i++)
        cr_assert_eq(f.samples[2 * i + 1] - f.samples[2 * i - 1], 4, "sample %zu", i);
}

/* ---- (5) the rate ------------------------------------------------------- */

Test(source_iio, refused_rate_write_names_the_attribute)
{
    fx_counter(2, "le:s16/16>>0", 1, 48000, QES_IIOFX_FREE);
    cr_assert_eq(qes_iiofx_refuse_attr(&g_fx, "sampling_frequency"), 0);
    struct qes_iio_desc d = base_desc(96000);
    char err[512];
    create_fails(&d, QES_ECONFIG, err, sizeof err);
    cr_assert_null(g_src);
    cr_assert_not_null(strstr(err, "sampling_frequency"), "%s", err);
    cr_assert_not_null(strstr(err, g_fx.uri), "%s", err);
    cr_assert_not_null(strstr(err, "96000"), "%s", err);
    cr_log_info("refused: %s", err);

    /* Keeping the device's rate needs no write. */
    d.sample_rate_hz = 0;
    create_or_fail(&d);
    cr_assert_eq(g_src->sample_rate_hz, 48000);
}

Test(source_iio, rate_read_back_mismatch_is_a_config_error)
{
    /* libiio writes a non-integer rate with "%f": 100.0000004 Hz becomes
     * "100.000000" and is read back as 100 Hz, 4e-9 off (tolerance 1e-9). */
    fx_counter(1, "le:s16/16>>0", 1, 1000, QES_IIOFX_FREE);
    struct qes_iio_desc d = base_desc(100.0000004);
    char err[512];
    create_fails(&d, QES_ECONFIG, err, sizeof err);
    cr_assert_not_null(strstr(err, "sampling_frequency"), "%s", err);
    cr_assert_not_null(strstr(err, "read back as 100 Hz"), "%s", err);
    cr_assert_not_null(strstr(err, "100.0000004"), "%s", err);
    cr_log_info("mismatch: %s", err);

    /* A looser tolerance accepts it, and the source reports the rate read back. */
    d.rate_tolerance = 1e-8;
    create_or_fail(&d);
    cr_assert_eq(g_src->sample_rate_hz, 100);
    cr_assert_eq(stats().rate_readback_hz, 100);
}

/* ---- (6) realtime pacing, slow reader: overflow counted exactly ------- */

/* Read for dur seconds, sleeping nap_s after each read; check every frame. */
static void read_for(struct counter *k, double dur, double nap_s, size_t max_n,
                     uint64_t *frames_with_gap)
{
    double end = mono_s() + dur;
    while (mono_s() < end) {
        struct qes_frame f;
        read_counter(k, &f, max_n);
        cr_assert_leq(f.n, max_n);
        if (f.lost_before && frames_with_gap)
            (*frames_with_gap)++;
        if (nap_s > 0)
            sleep_s(nap_s);
    }
}

/* A source on 2 channels of the scan type paced in real time at fs, read
 * in 4096-sample buffers. */
static void realtime_source(const char *scan_type, int timestamp, double fs)
{
    fx_counter(2, scan_type, timestamp, fs, QES_IIOFX_REALTIME);
    struct qes_iio_desc d = base_desc(fs);
    d.buffer_samples = 4096;
    create_or_fail(&d);
}

Test(source_iio, realtime_overflow_counted_exactly)
{
    /* 100 kHz, 2 x s24/32 + timestamp = 16 bytes a scan: the feeder's
     * 1 MiB pipe holds ~0.65 s.  A reader taking 4096 samples every
     * 100 ms consumes ~41 kS/s, so the pipe overflows after ~1 s. */
    const double fs = 100000;
    realtime_source("le:s24/32>>0", 1, fs);
    struct counter k = {.bits = 24, .nch = 2, .is_signed = 1};
    uint64_t gap_frames = 0;
    read_for(&k, 3.0, 0.1, 4096, &gap_frames);
    cr_assert_gt(gap_frames, 0, "the slow reader saw no gap (feeder dropped %llu)",
                 (unsigned long long)qes_iiofx_dropped(&g_fx));

    /* The count is final once no drop happens any more and every dropped
     * sample lies before a delivered one: catch up, then require the
     * feeder's count to stay put over a further stretch of reading (its
     * statistics are rewritten at least every 100 ms: wait 250 ms before
     * each look). */
    uint64_t d1 = 0, d2 = 1;
    for (int round = 0; round < 10 && d1 != d2; round++) {
        read_for(&k, 1.0, 0, 4096, NULL);
        sleep_s(0.25); /* 25 k samples: well within the pipe */
        d1 = qes_iiofx_dropped(&g_fx);
        read_for(&k, 0.5, 0, 4096, NULL);
        sleep_s(0.25);
        d2 = qes_iiofx_dropped(&g_fx);
    }
    cr_assert_eq(d1, d2, "the feeder kept dropping samples although the reader caught up");
    read_for(&k, 0.3, 0, 4096, NULL); /* deliver samples produced after the last look */

    struct qes_iio_stats st = stats();
    counter_assert_right(&k, "");
    cr_assert_eq(st.lost, d2, "source lost %llu, feeder dropped %llu", (unsigned long long)st.lost,
                 (unsigned long long)d2);
    cr_assert_eq(k.lost, st.lost, "lost_before sum %llu vs stats %llu", (unsigned long long)k.lost,
                 (unsigned long long)st.lost);
    cr_assert_eq(st.gaps, st.gaps_timestamp);
    cr_assert_geq(st.gaps, gap_frames);
    cr_assert_eq(st.samples, k.samples);
    /* The feeder produced at least what the source accounts for (its
     * statistics lag by up to 100 ms: look after 250 ms). */
    sleep_s(0.25);
    uint64_t w = qes_iiofx_written(&g_fx);
    cr_assert_geq(w + qes_iiofx_dropped(&g_fx), st.samples + st.lost);
    cr_log_info("realtime overflow: source lost %llu in %llu gaps, feeder dropped %llu; "
                "delivered %llu, written %llu",
                (unsigned long long)st.lost, (unsigned long long)st.gaps, (unsigned long long)d2,
                (unsigned long long)st.samples, (unsigned long long)w);
}

Test(source_iio, realtime_overflow_without_timestamps_found_from_elapsed_time)
{
    /* No timestamp channel: the loss is inferred from the samples received
     * against host time x fs.  100 kHz, 2 x s16 = 4 bytes a scan: the pipe
     * holds ~2.6 s; reading 4096 samples every 200 ms (20 kS/s) for 8 s
     * overflows by ~3.5 s worth of samples. */
    const double fs = 100000;
    realtime_source("le:s16/16>>0", 0, fs);
    uint64_t got = 0;
    double end = mono_s() + 8;
    while (mono_s() < end) {
        struct qes_frame f;
        read_ok(&f, 4096);
        cr_assert_eq(f.has_device_time, 0);
        got += f.n;
        sleep_s(0.2);
    }
    sleep_s(0.25);
    uint64_t dropped = qes_iiofx_dropped(&g_fx);
    struct qes_iio_stats st = stats();
    cr_log_info("elapsed-time inference: lost %llu in %llu gaps; feeder dropped %llu",
                (unsigned long long)st.lost, (unsigned long long)st.gaps,
                (unsigned long long)dropped);
    cr_assert_gt(dropped, 0);
    cr_assert_geq(st.gaps_rate, 1);
    cr_assert_eq(st.gaps_timestamp, 0);
    /* Budget.  The inference sees expected - received = dropped + queued,
     * and cannot tell queued samples from lost ones: it over-counts by at
     * most what is queued, here the feeder's pipe (at most 1 MiB = 262144
     * scans of 4 bytes; iiod holds no more than the refill it serves).  It
     * under-counts by at most its tolerance, max(kernel_buffers + 2 = 6
     * buffers, 1 % of 8e5), plus what was dropped after the last refill
     * (0.2 s of sleep + 0.25 s of wait: 0.5 s x fs). */
    cr_assert_leq(st.lost, dropped + 262144 + 6 * 4096);
    cr_assert_geq(st.lost + 6 * 4096 + (uint64_t)(0.5 * fs), dropped);
}

/* ---- (7) device loss ---------------------------------------------------- */

struct fault {
    int kill_iiod; /* else the feeder */
    double before_s, away_s;
    int64_t t_kill_ns, t_restart_ns;
    int rc_kill, rc_restart;
    volatile int done;
};

static void *fault_thread(void *arg)
{
    struct fault *ft = arg;
    sleep_s(ft->before_s);
    ft->rc_kill = ft->kill_iiod ? qes_iiofx_kill_iiod(&g_fx) : qes_iiofx_kill_feeder(&g_fx);
    ft->t_kill_ns = mono_ns();
    sleep_s(ft->away_s);
    ft->t_restart_ns = mono_ns();
    ft->rc_restart =
            ft->kill_iiod ? qes_iiofx_restart_iiod(&g_fx) : qes_iiofx_restart_feeder(&g_fx);
    ft->done = 1;
    return NULL;
}

/* The device-loss runs: 2 x s24/32 at fs in real time, with or without
 * timestamps, read in 2048-sample buffers with quick reconnection; a thread
 * kills the feeder (or iiod) after 1 s and restarts it 1.5 s later. */
static pthread_t loss_start(double fs, int timestamp, struct fault *ft, int kill_iiod)
{
    fx_counter(2, "le:s24/32>>0", timestamp, fs, QES_IIOFX_REALTIME);
    struct qes_iio_desc d = reconnecting_desc(fs, 2048, 0.4);
    d.give_up_s = 60; /* never hang the test */
    create_or_fail(&d);
    *ft = (struct fault){.kill_iiod = kill_iiod, .before_s = 1.0, .away_s = 1.5};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fault_thread, ft), 0);
    return th;
}

/* After a device-loss run: the fault was injected and undone, every value
 * was right, and the source reconnected.  Returns the source's statistics. */
static struct qes_iio_stats loss_end(pthread_t th, const struct fault *ft, const struct counter *k)
{
    pthread_join(th, NULL);
    cr_assert_eq(ft->rc_kill, 0, "kill failed");
    cr_assert_eq(ft->rc_restart, 0, "restart failed");
    counter_assert_right(k, "");
    struct qes_iio_stats st = stats();
    cr_assert_geq(st.reconnects, 1);
    return st;
}

static void lose_device(int kill_iiod)
{
    const double fs = 50000;
    struct fault ft;
    pthread_t th = loss_start(fs, 1, &ft, kill_iiod);
    struct counter k = {.bits = 24, .nch = 2, .is_signed = 1};
    uint64_t lost_after_kill = 0, samples_after_resume = 0;
    int64_t first_after_gap_ns = 0;
    double t_end = mono_s() + 60;
    while (mono_s() < t_end) {
        struct qes_frame f;
        read_counter(&k, &f, 1000);
        /* the feeder's realtime timestamps read UTC: they date the frames */
        cr_assert(f.has_device_time);
        cr_assert_eq(f.host_time_ns, f.device_time_ns);
        if (ft.t_kill_ns && f.arrival_ns > ft.t_kill_ns) {
            lost_after_kill += f.lost_before;
            if (f.lost_before && !first_after_gap_ns && ft.done)
                first_after_gap_ns = f.arrival_ns;
        }
        if (first_after_gap_ns)
            samples_after_resume += f.n;
        if (samples_after_resume >= (uint64_t)fs)
            break;
    }
    struct qes_iio_stats st = loss_end(th, &ft, &k);
    cr_assert_geq(st.refill_errors, 1);
    cr_assert_geq(samples_after_resume, (uint64_t)fs, "the data did not continue");
    /* The feeder produces only samples that are due (no read-ahead), so
     * every sample due while it (or iiod) was down is missing: at least
     * away_s x fs, less 1 % + 10 samples for the clock reads around the
     * kill and the restart. */
    double away = (double)(ft.t_restart_ns - ft.t_kill_ns) * 1e-9;
    cr_assert_geq((double)lost_after_kill, away * fs * 0.99 - 10,
                  "gap of %llu samples for %.3f s away", (unsigned long long)lost_after_kill, away);
    cr_assert_eq(k.lost, st.lost);
    cr_log_info("%s killed for %.3f s: gap %llu samples (%.3f s), %llu reconnection(s), "
                "%llu failed refills; first frame %.3f s after the restart",
                kill_iiod ? "iiod" : "feeder", away, (unsigned long long)lost_after_kill,
                (double)lost_after_kill / fs, (unsigned long long)st.reconnects,
                (unsigned long long)st.refill_errors,
                (double)(first_after_gap_ns - ft.t_restart_ns) * 1e-9);
}

Test(source_iio, feeder_killed_and_restarted)
{
    lose_device(0);
}

Test(source_iio, iiod_killed_and_restarted)
{
    lose_device(1);
}

Test(source_iio, feeder_lost_without_timestamps_gap_from_host_clock)
{
    /* No timestamp channel: the outage is measured on the host clock.  The
     * counter gives the true gap (k jumps by gap + 1), so the estimate is
     * checked against it; continuity is checked exactly between gaps. */
    const double fs = 50000;
    struct fault ft;
    pthread_t th = loss_start(fs, 0, &ft, 0);
    struct counter k = {.bits = 24, .nch = 2, .is_signed = 1};
    const uint64_t mask = mask_bits(24);
    uint64_t last_u = 0, true_lost = 0, reported = 0, after = 0;
    int gaps = 0;
    double t_end = mono_s() + 60;
    while (mono_s() < t_end && after < (uint64_t)fs) {
        struct qes_frame f;
        read_ok(&f, 1000);
        cr_assert_eq(f.has_device_time, 0);
        uint64_t u = (uint64_t)(int64_t)f.samples[0] & mask;
        if (f.lost_before) {
            /* k advanced by (u - last_u) / n over the gap: re-base */
            true_lost += ((u - last_u) & mask) / 2 - 1;
            reported += f.lost_before;
            gaps++;
            k.base = (u - f.first_sample * 2) & mask;
        }
        counter_check(&k, &f);
        last_u = (uint64_t)(int64_t)f.samples[(f.n - 1) * 2] & mask;
        if (gaps)
            after += f.n;
    }
    struct qes_iio_stats st = loss_end(th, &ft, &k);
    cr_assert_geq(gaps, 1);
    cr_assert_eq(st.gaps_timestamp, 0);
    cr_assert_geq(st.gaps_rate, 1);
    /* Budget: each end of the outage is dated by a refill's arrival; the
     * last sample of a refill is produced at most one buffer (2048) before
     * it arrives, plus scheduling delays (0.1 s x fs on this shared 2-core
     * machine), at each end. */
    double err = fabs((double)reported - (double)true_lost);
    cr_log_info("no timestamps, feeder killed for %.3f s: gap %llu estimated, %llu true",
                (double)(ft.t_restart_ns - ft.t_kill_ns) * 1e-9, (unsigned long long)reported,
                (unsigned long long)true_lost);
    cr_assert_leq(err, 2 * (2048 + 0.1 * fs), "estimated %llu, true %llu",
                  (unsigned long long)reported, (unsigned long long)true_lost);
}

static volatile sig_atomic_t g_stop;

static void *stop_later(void *arg)
{
    sleep_s(*(double *)arg);
    g_stop = 1;
    return NULL;
}

/* One channel at 50 kHz in real time, read in 1024-sample buffers with
 * quick reconnection, ending on *stop (may be NULL) or after give_up_s (0:
 * never); one read, then iiod is killed. */
static void read_then_kill_iiod(volatile sig_atomic_t *stop, double give_up_s)
{
    const double fs = 50000;
    fx_counter(1, "le:s16/16>>0", 1, fs, QES_IIOFX_REALTIME);
    struct qes_iio_desc d = reconnecting_desc(fs, 1024, 0.2);
    d.stop = stop;
    d.give_up_s = give_up_s;
    create_or_fail(&d);
    struct qes_frame f;
    cr_assert_eq(qes_source_read(g_src, &f, 1024), 1, "%s", g_src->errmsg);
    cr_assert_eq(qes_iiofx_kill_iiod(&g_fx), 0);
}

Test(source_iio, stop_flag_ends_a_reconnection)
{
    read_then_kill_iiod(&g_stop, 0);
    double when = 1.0;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, stop_later, &when), 0);
    /* what was queued, then the refill fails, then retries until stopped */
    int rc = read_until_end(1024);
    pthread_join(th, NULL);
    cr_assert_eq(rc, 0, "read: %d %s", rc, g_src->errmsg);
    struct qes_frame f;
    cr_assert_eq(qes_source_read(g_src, &f, 1024), 0, "a stopped source stays at its end");
    struct qes_iio_stats st = stats();
    cr_assert_geq(st.refill_errors, 1);
    cr_assert_eq(st.reconnects, 0);
}

Test(source_iio, gives_up_after_give_up_s)
{
    read_then_kill_iiod(NULL, 1.0);
    int rc = read_until_end(1024);
    cr_assert_eq(rc, QES_EIO, "read: %d %s", rc, g_src->errmsg);
    cr_assert_not_null(strstr(g_src->errmsg, "gave up"), "%s", g_src->errmsg);
    cr_assert_not_null(strstr(g_src->errmsg, g_fx.uri), "%s", g_src->errmsg);
}
