/*
 * The emulated IIO ADC fixture (tests/fixtures/iio_fixture.h), proved with
 * libiio's own client (network backend, 0.x API) against the real iiod:
 * sample layout and values for several scan types, timestamps, attribute
 * write refusal, feeder and iiod faults, realtime overflow counting, and
 * that nothing is left running after stop or after a crash of the test
 * process.  Every test starts its own fixture (own port, own work
 * directory); the suite's fini stops it, also after a failed assertion.
 * Tests skip with the reason when the fixture cannot run here.
 */
#include "tests/fixtures/iio_fixture.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <iio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const double PI = 3.1415926535897932384626433832795;

static struct qes_iiofx g_fx;
static struct iio_context *g_ctx;
static struct iio_buffer *g_buf;

static void teardown(void)
{
    qes_iiofx_release(&g_fx, &g_ctx, &g_buf);
}

TestSuite(iio_fixture, .fini = teardown, .timeout = 60);

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct qes_iiofx_opts opts_default(void)
{
    return (struct qes_iiofx_opts){.n_channels = 4,
                                   .scan_type = "le:s24/32>>0",
                                   .timestamp = 1,
                                   .sample_rate_hz = 48000,
                                   .wave = QES_IIOFX_COUNTER,
                                   .pace = QES_IIOFX_FREE};
}

/* Start g_fx and connect g_ctx (5 s timeout); skips the test (ending it)
 * when the fixture cannot run here. */
static void start(const struct qes_iiofx_opts *o)
{
    QES_IIOFX_START_OR_SKIP(o, &g_fx);
    cr_log_info("fixture %s up in %.0f ms (%s)", g_fx.uri, g_fx.startup_ms, g_fx.workdir);
    g_ctx = qes_iiofx_connect(&g_fx, 5000);
    cr_assert_not_null(g_ctx, "%s: %s", g_fx.uri, strerror(errno));
}

static struct iio_device *device(void)
{
    struct iio_device *dev = iio_context_find_device(g_ctx, "qes-adc");
    cr_assert_not_null(dev, "device qes-adc not in %s", g_fx.uri);
    return dev;
}

/* Enable voltage0..n-1 (and the timestamp) and create g_buf. */
static void open_buffer(struct iio_device *dev, unsigned n, int ts, size_t samples)
{
    char id[32];
    for (unsigned c = 0; c < n; c++) {
        snprintf(id, sizeof id, "voltage%u", c);
        struct iio_channel *ch = iio_device_find_channel(dev, id, false);
        cr_assert_not_null(ch, "%s", id);
        iio_channel_enable(ch);
    }
    if (ts) {
        struct iio_channel *t = iio_device_find_channel(dev, "timestamp", false);
        cr_assert_not_null(t, "timestamp channel");
        iio_channel_enable(t);
    }
    g_buf = iio_device_create_buffer(dev, samples, false);
    cr_assert_not_null(g_buf, "iio_device_create_buffer: %s", strerror(errno));
}

/* start(o), then open_buffer on voltage0..n-1 (and the timestamp). */
static struct iio_device *start_streaming(const struct qes_iiofx_opts *o, unsigned n, int ts,
                                          size_t samples)
{
    start(o);
    struct iio_device *dev = device();
    open_buffer(dev, n, ts, samples);
    return dev;
}

static struct iio_channel *chan(struct iio_device *dev, const char *id)
{
    struct iio_channel *ch = iio_device_find_channel(dev, id, false);
    cr_assert_not_null(ch, "%s", id);
    return ch;
}

/* A sample of a channel converted by libiio (sign, shift, endianness), widened. */
static int64_t conv(const struct iio_channel *ch, const void *src)
{
    const struct iio_data_format *f = iio_channel_get_data_format(ch);
    uint8_t dst[8] = {0};
    iio_channel_convert(ch, dst, src);
    switch (f->length) {
    case 8:
        return f->is_signed ? (int64_t) * (int8_t *)dst : (int64_t) * (uint8_t *)dst;
    case 16: {
        uint16_t v;
        memcpy(&v, dst, 2);
        return f->is_signed ? (int64_t)(int16_t)v : (int64_t)v;
    }
    case 32: {
        uint32_t v;
        memcpy(&v, dst, 4);
        return f->is_signed ? (int64_t)(int32_t)v : (int64_t)v;
    }
    default: {
        int64_t v;
        memcpy(&v, dst, 8);
        return v;
    }
    }
}

/* The counter's value: the low `bits` bits of x, read with the type's sign. */
static int64_t wrap(uint64_t x, unsigned bits, int is_signed)
{
    uint64_t m = bits == 64 ? ~0ULL : (1ULL << bits) - 1;
    uint64_t r = x & m;
    if (is_signed && bits < 64 && (r >> (bits - 1)))
        return (int64_t)r - (int64_t)(1ULL << bits);
    return (int64_t)r;
}

/* Low bits of a converted value (undoes the sign extension). */
static uint64_t lowbits(int64_t v, unsigned bits)
{
    return bits == 64 ? (uint64_t)v : (uint64_t)v & ((1ULL << bits) - 1);
}

/*
 * Check one buffer of the counter on channels voltage0..n-1: every scan must
 * be sample k of the counter with k + 1 for the next scan.  *k is the index
 * expected for the first scan; UINT64_MAX = unknown (taken from voltage0 of
 * the first scan, modulo the wrap period).  Returns the scans checked.
 */
static size_t check_counter(struct iio_device *dev, unsigned n, uint64_t *k)
{
    struct iio_channel *ch[8];
    char id[32];
    for (unsigned c = 0; c < n; c++) {
        snprintf(id, sizeof id, "voltage%u", c);
        ch[c] = chan(dev, id);
    }
    const struct iio_data_format *f = iio_channel_get_data_format(ch[0]);
    ptrdiff_t step = iio_buffer_step(g_buf);
    const uint8_t *end = iio_buffer_end(g_buf);
    size_t scans = 0;
    for (const uint8_t *p = iio_buffer_first(g_buf, ch[0]); p < end; p += step, scans++) {
        if (*k == UINT64_MAX) {
            uint64_t r = lowbits(conv(ch[0], p), f->bits);
            cr_assert_eq(r % n, 0, "voltage0 of the first scan (%" PRIu64 ") is not k*%u", r, n);
            *k = r / n;
        }
        for (unsigned c = 0; c < n; c++) {
            const uint8_t *q = p + ((const uint8_t *)iio_buffer_first(g_buf, ch[c]) -
                                    (const uint8_t *)iio_buffer_first(g_buf, ch[0]));
            int64_t want = wrap(*k * n + c, f->bits, f->is_signed);
            int64_t got = conv(ch[c], q);
            cr_assert_eq(got, want, "voltage%u, k = %" PRIu64 ": %" PRId64 ", want %" PRId64, c, *k,
                         got, want);
        }
        ++*k;
    }
    return scans;
}

static ssize_t refill(void)
{
    ssize_t r = iio_buffer_refill(g_buf);
    cr_assert_gt(r, 0, "iio_buffer_refill: %s", strerror((int)-r));
    return r;
}

/* ---- values and layout ---------------------------------------------------------- */

/*
 * Counter on 4 channels s24/32 plus timestamps, four buffers in a row:
 * continuous across buffers; timestamps t(k) = t0 + round(k * 1e9 / fs).
 */
Test(iio_fixture, counter_and_timestamps_over_four_buffers)
{
    struct qes_iiofx_opts o = opts_default();
    o.scale = 0.000123;
    start(&o);
    struct iio_device *dev = device();

    /* The device as the header describes it. */
    char buf[256];
    cr_assert_gt(iio_device_attr_read(dev, "sampling_frequency", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "48000");
    cr_assert_str_eq(iio_device_get_label(dev), "qes-emulated-adc");
    double scale;
    cr_assert_eq(iio_channel_attr_read_double(chan(dev, "voltage3"), "scale", &scale), 0);
    cr_assert_eq(scale, 0.000123); /* "0.000123" parses to the same double */

    const size_t N = 4096;
    open_buffer(dev, 4, 1, N);
    struct iio_channel *t = chan(dev, "timestamp");
    uint64_t k = UINT64_MAX, k_first = 0;
    int64_t t_first = 0, t_prev = 0;
    size_t total = 0;
    for (int b = 0; b < 4; b++) {
        refill();
        uint64_t k_buf = k;
        size_t scans = check_counter(dev, 4, &k);
        cr_assert_eq(scans, N);
        if (b == 0)
            k_buf = k - scans;
        /*
         * Timestamps: each is t0 + (k - k0) * 1e9/fs rounded to the ns, so
         * a difference is the exact value +/- 1 ns (two roundings of 0.5 ns),
         * and consecutive steps are 20833 or 20834 ns at 48 kHz.
         */
        ptrdiff_t step = iio_buffer_step(g_buf);
        size_t i = 0;
        for (const uint8_t *p = iio_buffer_first(g_buf, t);
             p < (const uint8_t *)iio_buffer_end(g_buf); p += step, i++) {
            int64_t ts = conv(t, p);
            uint64_t kk = k_buf + i;
            if (b == 0 && i == 0) {
                k_first = kk;
                t_first = ts;
            } else {
                int64_t d = ts - t_prev;
                cr_assert(d == 20833 || d == 20834, "timestamp step %" PRId64 " ns at k %" PRIu64,
                          d, kk);
                double exact = (double)(kk - k_first) * 1e9 / 48000.0;
                cr_assert_leq(fabs((double)(ts - t_first) - exact), 1.0,
                              "timestamp of k %" PRIu64 " off by %.1f ns", kk,
                              (double)(ts - t_first) - exact);
            }
            t_prev = ts;
        }
        total += scans;
    }
    /* The feeder counts what it wrote (statistics refreshed every 100 ms). */
    double t_end = now_s() + 2.0;
    while (qes_iiofx_written(&g_fx) < total && now_s() < t_end)
        sleep_ms(20);
    cr_assert_geq(qes_iiofx_written(&g_fx), total);
    cr_assert_eq(qes_iiofx_dropped(&g_fx), 0, "free pace never drops");
}

struct layout_case {
    char type[16];
    unsigned n;
    int ts;
    unsigned bytes; /* scan size the kernel / libiio rule gives */
};

ParameterizedTestParameters(iio_fixture, scan_types)
{
    static struct layout_case p[] = {
            {"be:s12/16>>4", 2, 0, 4},  /* wraps at 2^11: 1024 scans per period with n = 2 */
            {"le:s16/16>>0", 3, 1, 16}, /* 6 bytes, padded to 8 before the s64 timestamp */
            {"le:u16/16>>0", 1, 0, 2},
            {"be:s24/32>>8", 4, 1, 24},
    };
    return cr_make_param_array(struct layout_case, p, sizeof p / sizeof p[0]);
}

/* Layout, sign, shift and endianness through libiio's conversion, over a wrap. */
ParameterizedTest(struct layout_case *p, iio_fixture, scan_types)
{
    struct qes_iiofx_opts o = opts_default();
    o.n_channels = p->n;
    o.scan_type = p->type;
    o.timestamp = p->ts;
    struct iio_device *dev = start_streaming(&o, p->n, p->ts, 4096);
    cr_assert_eq(iio_buffer_step(g_buf), (ptrdiff_t)p->bytes, "%s x %u: scan size", p->type, p->n);
    uint64_t k = UINT64_MAX;
    for (int b = 0; b < 2; b++) {
        refill();
        cr_assert_eq(check_counter(dev, p->n, &k), 4096);
    }
    /* The raw storage of the first channel, without libiio: bits above
     * realbits+shift and below shift are zero. */
    struct iio_channel *c0 = chan(dev, "voltage0");
    const struct iio_data_format *f = iio_channel_get_data_format(c0);
    const uint8_t *q = iio_buffer_first(g_buf, c0);
    uint64_t raw = 0;
    for (unsigned i = 0; i < f->length / 8; i++)
        raw |= (uint64_t)q[f->is_be ? f->length / 8 - 1 - i : i] << (8 * i);
    uint64_t field = ((1ULL << f->bits) - 1) << f->shift;
    cr_assert_eq(raw & ~field, 0, "%s: stray bits in 0x%" PRIx64, p->type, raw);
}

/* Sine: amplitude in counts, phase 0 at k = 0, rounded. */
Test(iio_fixture, sine_wave)
{
    struct qes_iiofx_opts o = opts_default();
    o.n_channels = 1;
    o.scan_type = "le:s16/16>>0";
    o.timestamp = 0;
    o.wave = QES_IIOFX_SINE;
    o.sine_freq_hz = 1000;
    o.sine_amplitude = 1000;
    struct iio_device *dev = start_streaming(&o, 1, 0, 4096);
    refill();
    struct iio_channel *c0 = chan(dev, "voltage0");
    ptrdiff_t step = iio_buffer_step(g_buf);
    const uint8_t *first = iio_buffer_first(g_buf, c0), *end = iio_buffer_end(g_buf);
    /* 48 samples per period: find the phase of the first sample from the first
     * three values (k0 = 0 on a fresh fixture, but do not rely on it). */
    int k0 = -1;
    for (int c = 0; c < 48 && k0 < 0; c++) {
        int ok = 1;
        for (int i = 0; i < 3; i++) {
            double want = 1000 * sin(2 * PI * fmod((double)(c + i) / 48.0, 1.0));
            ok &= fabs((double)conv(c0, first + i * step) - want) <= 0.5 + 1e-9;
        }
        if (ok)
            k0 = c;
    }
    cr_assert_geq(k0, 0, "first samples do not match any phase of the sine");
    int64_t lo = 0, hi = 0;
    size_t i = 0;
    for (const uint8_t *p = first; p < end; p += step, i++) {
        /* Budget: rounding to integers, 0.5 count; the phases agree to ~1e-12 rad. */
        double want = 1000 * sin(2 * PI * fmod((double)(k0 + i) / 48.0, 1.0));
        int64_t v = conv(c0, p);
        cr_assert_leq(fabs((double)v - want), 0.5 + 1e-9, "k %zu: %" PRId64 " vs %.3f", k0 + i, v,
                      want);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    cr_assert_eq(hi, 1000); /* sin = 1 at k = 12 mod 48 */
    cr_assert_eq(lo, -1000);
}

/* ---- faults ------------------------------------------------------------------------ */

Test(iio_fixture, refused_attribute_write_fails)
{
    struct qes_iiofx_opts o = opts_default();
    start(&o);
    struct iio_device *dev = device();
    char buf[64];
    cr_assert_gt(iio_device_attr_write(dev, "sampling_frequency", "2000"), 0);
    cr_assert_gt(iio_device_attr_read(dev, "sampling_frequency", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2000");
    cr_assert_eq(qes_iiofx_refuse_attr(&g_fx, "sampling_frequency"), 0);
    ssize_t r = iio_device_attr_write(dev, "sampling_frequency", "3000");
    int want = geteuid() == 0 ? -EPERM : -EROFS; /* chattr +i, or a read-only bind */
    cr_assert_eq(r, want, "refused write returned %zd (%s)", r, strerror((int)-r));
    cr_assert_gt(iio_device_attr_read(dev, "sampling_frequency", buf, sizeof buf), 0);
    cr_assert_str_eq(buf, "2000");
    cr_assert_eq(qes_iiofx_refuse_attr(&g_fx, "no_such_attr"), -1);
}

/*
 * Killing the feeder: what was already in the pipe is still delivered, then
 * refill times out.  After a restart, a new buffer streams again, and the
 * sample index has continued.
 */
Test(iio_fixture, feeder_kill_then_restart)
{
    struct qes_iiofx_opts o = opts_default();
    struct iio_device *dev = start_streaming(&o, 4, 1, 4096);
    uint64_t k = UINT64_MAX;
    refill();
    check_counter(dev, 4, &k);
    uint64_t k_before = k;
    cr_assert_eq(qes_iiofx_kill_feeder(&g_fx), 0);
    cr_assert_eq(iio_context_set_timeout(g_ctx, 300), 0);
    /* At most the pipe (1 MiB) plus iiod's buffers: < 100 refills of 96 KiB. */
    ssize_t r = 0;
    int n = 0;
    while (n < 100 && (r = iio_buffer_refill(g_buf)) > 0)
        n++;
    cr_assert_eq(r, -ETIMEDOUT, "after %d refills: %zd (%s)", n, r, strerror((int)-r));

    cr_assert_eq(qes_iiofx_restart_feeder(&g_fx), 0);
    iio_buffer_destroy(g_buf);
    g_buf = NULL;
    cr_assert_eq(iio_context_set_timeout(g_ctx, 5000), 0);
    open_buffer(dev, 4, 1, 4096);
    k = UINT64_MAX;
    for (int b = 0; b < 2; b++) {
        refill();
        cr_assert_eq(check_counter(dev, 4, &k), 4096);
    }
    cr_assert_gt(k - 8192, k_before, "index restarted (%" PRIu64 " after %" PRIu64 ")", k - 8192,
                 k_before);
}

Test(iio_fixture, iiod_kill_then_restart)
{
    struct qes_iiofx_opts o = opts_default();
    start(&o);
    iio_context_destroy(g_ctx);
    g_ctx = NULL;
    cr_assert_eq(qes_iiofx_kill_iiod(&g_fx), 0);
    struct iio_context *c = qes_iiofx_connect(&g_fx, 0);
    if (c)
        iio_context_destroy(c);
    cr_assert_null(c, "a context while iiod is dead");
    cr_assert_eq(qes_iiofx_restart_iiod(&g_fx), 0);
    g_ctx = qes_iiofx_connect(&g_fx, 0);
    cr_assert_not_null(g_ctx, "%s after restart: %s", g_fx.uri, strerror(errno));
    struct iio_device *dev = device();
    open_buffer(dev, 4, 1, 1024);
    uint64_t k = UINT64_MAX;
    refill();
    cr_assert_eq(check_counter(dev, 4, &k), 1024);
}

/*
 * Realtime pace at 1 MS/s with a reader that stalls: the feeder drops what
 * the pipe cannot take and counts it; the stream shows the gap in the
 * timestamps and in the counter, and both agree (1e9/fs = 1000 ns exactly).
 */
Test(iio_fixture, realtime_overflow_is_counted_and_visible)
{
    struct qes_iiofx_opts o = opts_default();
    o.sample_rate_hz = 1e6;
    o.pace = QES_IIOFX_REALTIME;
    struct iio_device *dev = start_streaming(&o, 4, 1, 4096);
    refill();
    uint64_t dropped0 = qes_iiofx_dropped(&g_fx);
    sleep_ms(300); /* the pipe holds ~44 ms at 24 MB/s */
    double t_end = now_s() + 2.0;
    while (qes_iiofx_dropped(&g_fx) == dropped0 && now_s() < t_end)
        sleep_ms(20);
    uint64_t dropped = qes_iiofx_dropped(&g_fx);
    cr_assert_gt(dropped, dropped0, "no drop counted during a 300 ms stall");
    cr_log_info("dropped %" PRIu64 " samples per channel during the stall", dropped - dropped0);

    struct iio_channel *v0 = chan(dev, "voltage0"), *t = chan(dev, "timestamp");
    const struct iio_data_format *f = iio_channel_get_data_format(v0);
    uint64_t gaps = 0, lost = 0;
    int have = 0;
    int64_t t_prev = 0;
    uint64_t r_prev = 0;
    for (int b = 0; b < 40 && !gaps; b++) {
        refill();
        ptrdiff_t step = iio_buffer_step(g_buf);
        const uint8_t *pv = iio_buffer_first(g_buf, v0), *pt = iio_buffer_first(g_buf, t);
        for (; pt < (const uint8_t *)iio_buffer_end(g_buf); pv += step, pt += step) {
            int64_t ts = conv(t, pt);
            uint64_t r = lowbits(conv(v0, pv), f->bits);
            if (have) {
                /* Index step from the counter (mod the wrap) and from time. */
                uint64_t dk_c = ((r - r_prev) & ((1ULL << f->bits) - 1)) / 4;
                int64_t dt = ts - t_prev;
                cr_assert_eq(dt % 1000, 0, "timestamp step %" PRId64 " ns", dt);
                cr_assert_eq((uint64_t)(dt / 1000), dk_c,
                             "time says %" PRId64 " samples, "
                             "counter %" PRIu64,
                             dt / 1000, dk_c);
                if (dk_c > 1) {
                    gaps++;
                    lost += dk_c - 1;
                }
            }
            have = 1;
            t_prev = ts;
            r_prev = r;
        }
    }
    cr_assert_gt(gaps, 0, "no gap seen in 40 buffers after the stall");
    cr_log_info("%" PRIu64 " gaps, %" PRIu64 " samples missing in the stream", gaps, lost);
}

/* ---- throughput ------------------------------------------------------------------- */

/* Free pace through iiod for about a second: every sample checked, rate logged
 * (no assertion on time: the machine is shared). */
Test(iio_fixture, free_pace_throughput)
{
    struct qes_iiofx_opts o = opts_default();
    struct iio_device *dev = start_streaming(&o, 4, 1, 4096);
    uint64_t k = UINT64_MAX;
    size_t total = 0;
    double t0 = now_s(), t1;
    do {
        refill();
        total += check_counter(dev, 4, &k);
        t1 = now_s();
    } while (t1 - t0 < 1.0);
    cr_log_info("free pace: %.3g samples/s per channel (4 x s24/32 + timestamp, 4096-sample "
                "refills, values checked)",
                (double)total / (t1 - t0));
    cr_assert_gt(total, 0);
}

/* ---- nothing left behind ----------------------------------------------------------- */

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    close(fd);
    return r;
}

Test(iio_fixture, stop_leaves_nothing)
{
    struct qes_iiofx_opts o = opts_default();
    start(&o);
    iio_context_destroy(g_ctx);
    g_ctx = NULL;
    pid_t group = g_fx.pid;
    int port = g_fx.port;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", g_fx.workdir);
    cr_assert_eq(qes_iiofx_refuse_attr(&g_fx, "label"), 0); /* an immutable file to remove */
    qes_iiofx_stop(&g_fx);
    cr_assert_eq(kill(-group, 0), -1, "processes left in group %d", (int)group);
    cr_assert_eq(errno, ESRCH);
    struct stat st;
    cr_assert_eq(stat(dir, &st), -1, "%s still exists", dir);
    cr_assert_neq(connect_port(port), 0, "something still listens on %d", port);
    qes_iiofx_stop(&g_fx); /* twice is fine */
}

/* What the crashing child of crash_leaves_no_process reports of its start. */
struct start_msg {
    int r;
    struct qes_iiofx fx;
    char why[512];
};

/* A test process that dies without stopping: the fixture goes with it. */
Test(iio_fixture, crash_leaves_no_process)
{
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(pfd[0]);
        struct qes_iiofx fx;
        struct qes_iiofx_opts o = opts_default();
        char why[512];
        int r = qes_iiofx_start(&o, &fx, why, sizeof why);
        struct start_msg msg = {r, fx, ""};
        memcpy(msg.why, why, sizeof why);
        (void)!write(pfd[1], &msg, sizeof msg);
        kill(getpid(), SIGKILL); /* a crash: no stop, no atexit */
        _exit(1);
    }
    close(pfd[1]);
    struct start_msg msg;
    ssize_t got = read(pfd[0], &msg, sizeof msg);
    close(pfd[0]);
    int st;
    waitpid(child, &st, 0);
    cr_assert_eq(got, (ssize_t)sizeof msg, "child wrote nothing");
    if (msg.r == 1)
        cr_skip_test("%s", msg.why);
    cr_assert_eq(msg.r, 0, "%s", msg.why);
    pid_t group = msg.fx.pid;
    double t_end = now_s() + 10.0;
    while (kill(-group, 0) == 0 && now_s() < t_end)
        sleep_ms(20);
    cr_assert_eq(kill(-group, 0), -1, "fixture processes outlived the test process");
    cr_assert_neq(connect_port(msg.fx.port), 0, "iiod still listens on %d", msg.fx.port);
    /* The files stay (a later start sweeps them); clean them now. */
    msg.fx.pid = 0;
    qes_iiofx_stop(&msg.fx);
}
