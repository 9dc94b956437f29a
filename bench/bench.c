/*
 * qes bench: the block lock-in kernels next to their baselines, in one run.
 *
 * For each block size every kernel is timed twice, best of N repetitions
 * (the minimum is the timing least disturbed by other load on a shared
 * machine):
 *  - hot: the same block again and again, so it sits in the caches (what the
 *    kernel itself can do);
 *  - stream: consecutive blocks taken from a buffer far larger than the
 *    caches, as a pipeline that reads fresh data would see them.
 * The limit is the single-core memory read rate on that same buffer, in
 * samples (doubles) per second.  Ratios to the limit and to liquid-dsp use
 * the stream figures.  Each row also carries the largest error of its
 * estimate against the long double reference twin (qes_lockin_reference),
 * relative to the fundamental's amplitude.
 *
 * Rows per block size (4096, 65536, 1048576; --quick: the first two): the
 * limit; liquid-dsp's per-sample lock-in (nco_crcf + 4th-order iirfilt_crcf,
 * the comparison point); a naive cos/sin loop; a bare FFTW r2c; the qes
 * streaming demodulator (order 4, one output per period); the qes DFT
 * kernel with 1 and 8 harmonics, folded and not; the qes FFT lock-in, 8
 * harmonics.
 *
 * Test signal: 1 + sqrt(2) (cos(theta + 0.3) + 0.01 cos(3 theta - 0.2)) +
 * 1e-3 sin(7 i), theta = 2 pi periods i / n with the phase index reduced in
 * integers.  "fold" rows use periods = n / 256 (256 samples per period, the
 * usual coherent set-up with an integer number of samples per period: the
 * DFT kernel folds the block onto one period); "no fold" rows use
 * periods = n / 256 + 1, coprime with n, where it cannot.
 *
 * Absolute numbers drift with the machine's load; compare within one run.
 * Benchmarks never gate CI.
 */
#include "bench/bench.h"
#include "common/err.h"
#include "dsp/demod.h"
#include "dsp/lockin.h"

/* fftw3.h before complex.h (via liquid.h): fftw_complex stays double[2]. */
#include <fftw3.h>
#include <liquid/liquid.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_PI           3.14159265358979323846
#define MAX_ROWS           128
#define SAMPLES_PER_PERIOD 256
/* Stream buffer: far larger than the 32 MiB L3 of the reference machine. */
#define STREAM_BYTES ((size_t)256 << 20)

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define BENCH_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define BENCH_CLONES
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static volatile double g_sink;

/* The memory-read limit: a vectorised sum with four independent partial
 * sums (one would be add-latency bound, below the memory rate). */
BENCH_CLONES static double read_sum(const double *restrict a, size_t n)
{
    const size_t q = n / 4;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (size_t i = 0; i < q; i++) {
        s0 += a[i];
        s1 += a[q + i];
        s2 += a[2 * q + i];
        s3 += a[3 * q + i];
    }
    return (s0 + s1) + (s2 + s3);
}

/* The memory-read limit in samples (doubles) per second: best of reps
 * passes over the whole stream buffer. */
static double read_limit(const double *buf, int reps)
{
    const size_t n = STREAM_BYTES / sizeof(double);
    double best = 0;
    g_sink = read_sum(buf, n); /* warm the TLB */
    for (int r = 0; r < reps; r++) {
        const double t0 = now_s();
        g_sink = read_sum(buf, n);
        const double rate = (double)n / (now_s() - t0);
        best = rate > best ? rate : best;
    }
    return best;
}

/* A kernel under test: run() processes one block whose first sample has run
 * index start; result() gives its phasors after a run on the test block at
 * start 0 (nh of them, harmonics 1..nh). */
struct kernel {
    const char *name;
    unsigned nh;
    void (*run)(void *ctx, const double *block, uint64_t start);
    void (*result)(void *ctx, struct qes_phasor *out);
    void *ctx;
    size_t n;
    int nofold;           /* runs on the "no fold" signal */
    int warm_samples;     /* at least this many samples before the error check */
    struct qes_lockin *l; /* qes kernels: for the memory figure */
};

/* ---- naive: cos and sin per sample, the phase in floating point ---- */
struct naive_ctx {
    size_t n;
    unsigned periods;
    double re, im;
};

static void naive_run(void *vc, const double *x, uint64_t start)
{
    struct naive_ctx *c = vc;
    (void)start;
    double sr = 0, si = 0;
    for (size_t i = 0; i < c->n; i++) {
        double th = 2 * BENCH_PI * (double)c->periods * (double)i / (double)c->n;
        sr += x[i] * cos(th);
        si -= x[i] * sin(th);
    }
    c->re = sr;
    c->im = si;
}

static void naive_result(void *vc, struct qes_phasor *out)
{
    struct naive_ctx *c = vc;
    out[0].x = sqrt(2.0) / (double)c->n * c->re;
    out[0].y = sqrt(2.0) / (double)c->n * c->im;
}

/* ---- liquid-dsp: per-sample NCO mix-down + 4th-order Butterworth ----
 * As a liquid-dsp user writes a lock-in: nco_crcf (LIQUID_NCO, its sine
 * table) at the reference frequency f = fs/256, iirfilt_crcf low-pass at
 * f/8 (second-order sections; its stop band puts the 2f image at -96 dB and
 * the mixed-up DC at -64 dB); the phasor is sqrt(2) times the filter output
 * once settled.  Single precision throughout, as liquid's crcf objects are.
 * A lower cut-off does not help: liquid's single-precision Butterworth
 * design loses its DC gain (measured: 22 % off at f/32, 0.3 % at f/8). */
struct liquid_ctx {
    nco_crcf nco;
    iirfilt_crcf lp;
    size_t n;
    liquid_float_complex y;
};

static void liquid_run(void *vc, const double *x, uint64_t start)
{
    struct liquid_ctx *c = vc;
    (void)start; /* the NCO carries the phase from block to block */
    liquid_float_complex y = c->y;
    for (size_t i = 0; i < c->n; i++) {
        liquid_float_complex v;
        nco_crcf_mix_down(c->nco, (float)x[i], &v);
        nco_crcf_step(c->nco);
        iirfilt_crcf_execute(c->lp, v, &y);
    }
    c->y = y;
}

static void liquid_result(void *vc, struct qes_phasor *out)
{
    struct liquid_ctx *c = vc;
    out[0].x = sqrt(2.0) * crealf(c->y);
    out[0].y = sqrt(2.0) * cimagf(c->y);
}

/* ---- FFTW r2c, FFTW_ESTIMATE, new-array execute on each block ---- */
struct fftw_ctx {
    fftw_plan plan;
    double *in;
    fftw_complex *out;
    size_t n;
    unsigned periods;
    unsigned nh;
};

static void fftw_run(void *vc, const double *x, uint64_t start)
{
    struct fftw_ctx *c = vc;
    (void)start;
    /* r2c out of place preserves its input (FFTW's default for r2c);
     * blocks are aligned as the planned array (checked at set-up). */
    fftw_execute_dft_r2c(c->plan, (double *)(uintptr_t)x, c->out);
}

static void fftw_result(void *vc, struct qes_phasor *out)
{
    struct fftw_ctx *c = vc;
    for (unsigned k = 0; k < c->nh; k++) {
        const size_t b = (size_t)(k + 1) * c->periods;
        out[k].x = sqrt(2.0) / (double)c->n * c->out[b][0];
        out[k].y = sqrt(2.0) / (double)c->n * c->out[b][1];
    }
}

/* ---- qes lock-in ---- */
struct qes_ctx {
    struct qes_lockin *l;
    struct qes_phasor ph[8];
};

static void qes_run(void *vc, const double *x, uint64_t start)
{
    struct qes_ctx *c = vc;
    qes_lockin_execute(c->l, x, start, c->ph);
}

static void qes_result(void *vc, struct qes_phasor *out)
{
    struct qes_ctx *c = vc;
    memcpy(out, c->ph, sizeof c->ph);
}

/* ---- qes streaming demodulator: order 4, one output per period ----
 * f = fs/256 exactly (freq_num/freq_den), tau = 20 periods, decimation 256.
 * A streaming filter needs a continuous run: it numbers the samples itself
 * (every block holds whole periods, so the signal stays continuous).  Its
 * phasor is the last output of a block, once settled; its error is mostly
 * the filter's ripple from the DC offset at f, (2 pi 20)^-4 = 6e-9 of it. */
struct demod_ctx {
    struct qes_demod *d;
    struct qes_demod_out *out; /* cap outputs: enough for one block */
    size_t n, cap;
    uint64_t next; /* run index of the next sample */
    struct qes_phasor last;
    int rc; /* first error of execute, if any */
};

static void demod_run(void *vc, const double *x, uint64_t start)
{
    struct demod_ctx *c = vc;
    (void)start;
    size_t n_out = 0;
    const int rc = qes_demod_execute(c->d, x, c->n, c->next, c->out, c->cap, &n_out);
    if (rc && !c->rc)
        c->rc = rc;
    c->next += c->n;
    if (n_out) {
        c->last.x = c->out[n_out - 1].x;
        c->last.y = c->out[n_out - 1].y;
    }
}

static void demod_result(void *vc, struct qes_phasor *out)
{
    struct demod_ctx *c = vc;
    out[0] = c->last;
}

/* ---- timing ---- */
struct stream {
    const double *buf;
    size_t nblocks; /* of n samples */
    size_t cursor;  /* next block; rolls on so repetitions touch fresh memory */
};

struct timing {
    int reps;
    double rep_s; /* target duration of one repetition */
};

/*
 * Best-of seconds per sample; stream NULL: the hot block x again and again.
 * A repetition lasts about rep_s; in stream mode it also covers at least
 * STREAM_MIN samples (64 MiB), so that one lucky repetition whose blocks are
 * still cached cannot pass for the memory rate (the slow, compute-bound
 * baselines are capped at 4 rep_s per repetition instead), and there are a
 * third as many repetitions (at least 3).
 */
#define STREAM_MIN ((size_t)1 << 23)
static double time_kernel(struct kernel *k, const double *x, struct stream *st,
                          const struct timing *tm)
{
    const size_t n = k->n;
    /* Calls per repetition from one timed call (already warmed up). */
    double t0 = now_s();
    k->run(k->ctx, x, 0);
    const double t1 = now_s() - t0;
    long calls = t1 > 0 ? (long)(tm->rep_s / t1) : 1000;
    int reps = tm->reps;
    if (calls < 1) {
        /* One call is longer than a repetition (the slow baselines): fewer
         * repetitions keep the run short. */
        calls = 1;
        reps = reps < 3 ? reps : 3;
    }
    if (st) {
        long want = (long)((STREAM_MIN + n - 1) / n);
        const long cap = t1 > 0 ? (long)(4 * tm->rep_s / t1) : want;
        want = want < cap ? want : cap;
        calls = calls > want ? calls : want;
        /* Long repetitions: a third as many keep the run short. */
        reps = reps / 3 > 3 ? reps / 3 : (reps < 3 ? reps : 3);
    }
    double best = 1e300;
    for (int r = 0; r < reps; r++) {
        t0 = now_s();
        for (long c = 0; c < calls; c++) {
            if (st) {
                const size_t b = st->cursor;
                k->run(k->ctx, st->buf + b * n, (uint64_t)b * n);
                st->cursor = b + 1 == st->nblocks ? 0 : b + 1;
            } else {
                k->run(k->ctx, x, 0);
            }
        }
        const double dt = (now_s() - t0) / ((double)calls * (double)n);
        best = dt < best ? dt : best;
    }
    return best;
}

/* Largest phasor error relative to the fundamental's amplitude (harmonics
 * absent from the test signal have r ~ 0, so their own r is no scale). */
static double phasor_err(const struct qes_phasor *a, const struct qes_phasor *ref, size_t nh)
{
    double e = 0, r1 = hypot(ref[0].x, ref[0].y);
    for (size_t k = 0; k < nh; k++) {
        double d = hypot(a[k].x - ref[k].x, a[k].y - ref[k].y) / r1;
        e = d > e ? d : e;
    }
    return e;
}

struct row {
    const char *kernel;
    size_t n;
    unsigned nh;
    unsigned periods;
    double hot;     /* samples/s, NaN when not measured */
    double stream;  /* samples/s */
    double limit;   /* the memory-read limit measured for this size */
    double liquid;  /* liquid-dsp's stream rate for this size */
    double max_err; /* NaN when not measured */
    size_t bytes;   /* heap held by the kernel's object, 0 when not known */
};

static void signal_fill(double *x, size_t n, unsigned periods)
{
    for (size_t i = 0; i < n; i++) {
        const uint64_t p = ((uint64_t)periods * i) % n; /* exact phase index */
        const double th = 2 * BENCH_PI * (double)p / (double)n;
        const uint64_t p3 = (3 * p) % n;
        const double th3 = 2 * BENCH_PI * (double)p3 / (double)n;
        x[i] = 1.0 + sqrt(2.0) * (cos(th + 0.3) + 0.01 * cos(th3 - 0.2)) +
               1e-3 * sin(7.0 * (double)i);
    }
}

static void print_row(FILE *out, const struct row *r)
{
    char hot[24], rl[16], rq[16], err[16];
    if (isnan(r->hot))
        snprintf(hot, sizeof hot, "%s", "-");
    else
        snprintf(hot, sizeof hot, "%.3e", r->hot);
    snprintf(rl, sizeof rl, "%.3f", r->stream / r->limit);
    if (isnan(r->liquid))
        snprintf(rq, sizeof rq, "%s", "-");
    else
        snprintf(rq, sizeof rq, "%.1f", r->stream / r->liquid);
    if (isnan(r->max_err))
        snprintf(err, sizeof err, "%s", "-");
    else
        snprintf(err, sizeof err, "%.2e", r->max_err);
    fprintf(out, "%-28s %8zu %2u %11s %11.3e %7s %8s %10s\n", r->kernel, r->n, r->nh, hot,
            r->stream, rl, rq, err);
}

static void json_num(FILE *j, const char *key, double v, int last)
{
    if (isnan(v) || isinf(v))
        fprintf(j, "\"%s\":null%s", key, last ? "" : ",");
    else
        fprintf(j, "\"%s\":%.6g%s", key, v, last ? "" : ",");
}

static int write_json(const char *path, int quick, const struct row *rows, size_t nr)
{
    FILE *j = fopen(path, "w");
    if (!j)
        return QES_EIO;
    fprintf(j, "{\"bench\":\"qes block lock-in kernels\",\"quick\":%s,", quick ? "true" : "false");
    fprintf(j, "\"units\":{\"rates\":\"samples (doubles) per second\",\"max_rel_err\":"
               "\"largest |phasor - long double reference| / reference fundamental amplitude\"},");
    fprintf(j, "\"stream_buffer_bytes\":%zu,", STREAM_BYTES);
    fprintf(j, "\"rows\":[");
    for (size_t i = 0; i < nr; i++) {
        const struct row *r = &rows[i];
        fprintf(j, "%s{\"kernel\":\"%s\",\"n\":%zu,\"harmonics\":%u,\"periods\":%u,", i ? "," : "",
                r->kernel, r->n, r->nh, r->periods);
        json_num(j, "hot_samples_per_s", r->hot, 0);
        json_num(j, "stream_samples_per_s", r->stream, 0);
        json_num(j, "limit_samples_per_s", r->limit, 0);
        json_num(j, "ratio_to_limit", r->stream / r->limit, 0);
        json_num(j, "ratio_to_liquid", r->stream / r->liquid, 0);
        json_num(j, "max_rel_err", r->max_err, 0);
        fprintf(j, "\"memory_bytes\":%zu}", r->bytes);
    }
    fprintf(j, "]}\n");
    return fclose(j) ? QES_EIO : 0;
}

/* Everything for one block size. */
static int bench_size(size_t n, struct stream *st, double *stream_buf, const struct timing *tm,
                      FILE *out, struct row *rows, size_t *nr)
{
    static const unsigned harm8[] = {1, 2, 3, 4, 5, 6, 7, 8};
    if (*nr + 16 > MAX_ROWS)
        return QES_ERANGE;
    const unsigned p_fold = (unsigned)(n / SAMPLES_PER_PERIOD);
    const unsigned p_nofold = p_fold + 1; /* odd: coprime with n = 2^k */
    int rc = QES_ENOMEM;
    double *x0 = fftw_malloc(n * sizeof *x0), *x1 = fftw_malloc(n * sizeof *x1);
    struct fftw_ctx fc = {.n = n, .periods = p_fold, .nh = 8};
    struct liquid_ctx lc = {.n = n};
    struct demod_ctx dc = {.n = n};
    struct naive_ctx nc = {.n = n, .periods = p_fold};
    struct qes_ctx qc[5];
    memset(qc, 0, sizeof qc);
    if (!x0 || !x1)
        goto out_free;
    signal_fill(x0, n, p_fold);
    signal_fill(x1, n, p_nofold);
    st->buf = stream_buf;
    st->nblocks = STREAM_BYTES / sizeof(double) / n;
    st->cursor = 0;
    for (size_t b = 0; b < st->nblocks; b++)
        memcpy(stream_buf + b * n, x0, n * sizeof *x0);

    /* The truth for both signals: the long double twin, 8 harmonics. */
    struct qes_phasor ref0[8], ref1[8], est[8];
    struct qes_lockin_desc d = {.method = QES_LOCKIN_DFT,
                                .window = QES_WINDOW_RECT,
                                .n = n,
                                .periods = p_fold,
                                .harmonics = harm8,
                                .n_harmonics = 8};
    if ((rc = qes_lockin_reference(&d, x0, 0, ref0)))
        goto out_free;
    d.periods = p_nofold;
    if ((rc = qes_lockin_reference(&d, x1, 0, ref1)))
        goto out_free;

    const size_t first = *nr;
    double limit = read_limit(stream_buf, tm->reps);
    rows[(*nr)++] = (struct row){"memory read (limit)", n, 0, 0, NAN, limit, limit, NAN, NAN, 0};

    /* liquid-dsp first: the other rows are compared with it. */
    rc = QES_ENOMEM;
    lc.nco = nco_crcf_create(LIQUID_NCO);
    lc.lp = iirfilt_crcf_create_prototype(LIQUID_IIRDES_BUTTER, LIQUID_IIRDES_LOWPASS,
                                          LIQUID_IIRDES_SOS, 4,
                                          (float)(1.0 / SAMPLES_PER_PERIOD / 8), 0.0f, 1.0f, 60.0f);
    if (!lc.nco || !lc.lp)
        goto out_free;
    nco_crcf_set_frequency(lc.nco, (float)(2 * BENCH_PI / SAMPLES_PER_PERIOD));
    fc.in = fftw_malloc(n * sizeof *fc.in);
    fc.out = fftw_malloc((n / 2 + 1) * sizeof *fc.out);
    if (!fc.in || !fc.out)
        goto out_free;
    fc.plan = fftw_plan_dft_r2c_1d((int)n, fc.in, fc.out, FFTW_ESTIMATE);
    if (!fc.plan)
        goto out_free;
    /* New-array execute needs the planned alignment: fftw_malloc'd buffers
     * and blocks a multiple of 4096 samples apart have it. */
    rc = QES_EUNSUPPORTED;
    if (fftw_alignment_of(x0) != fftw_alignment_of(fc.in) ||
        fftw_alignment_of(stream_buf) != fftw_alignment_of(fc.in))
        goto out_free;

    struct {
        const char *name;
        enum qes_lockin_method m;
        unsigned periods;
        size_t nh;
    } qcases[] = {
            {"qes dft, fold", QES_LOCKIN_DFT, p_fold, 1},
            {"qes dft, fold", QES_LOCKIN_DFT, p_fold, 8},
            {"qes dft, no fold", QES_LOCKIN_DFT, p_nofold, 1},
            {"qes dft, no fold", QES_LOCKIN_DFT, p_nofold, 8},
            {"qes fft", QES_LOCKIN_FFT, p_fold, 8},
    };
    const double fs = 1e6; /* any rate: the demodulator works in samples */
    const struct qes_demod_desc dd = {.fs_hz = fs,
                                      .freq_num = 1,
                                      .freq_den = SAMPLES_PER_PERIOD,
                                      .harmonic = 1,
                                      .order = 4,
                                      .tau_s = 20.0 * SAMPLES_PER_PERIOD / fs,
                                      .output_rate_hz = fs / SAMPLES_PER_PERIOD,
                                      .settle_tau = 5.0,
                                      .impl = QES_DEMOD_BLOCK};
    if ((rc = qes_demod_create(&dd, &dc.d)))
        goto out_free;
    rc = QES_ENOMEM;
    dc.cap = qes_demod_max_outputs(dc.d, n);
    dc.out = malloc(dc.cap * sizeof *dc.out);
    if (!dc.out)
        goto out_free;
    struct kernel ks[4 + sizeof qcases / sizeof qcases[0]];
    size_t nk = 0;
    ks[nk++] = (struct kernel){
            "liquid-dsp nco+iirfilt", 1, liquid_run, liquid_result, &lc, n, 0, 1 << 18, NULL};
    ks[nk++] =
            (struct kernel){"naive sin/cos loop", 1, naive_run, naive_result, &nc, n, 0, 0, NULL};
    ks[nk++] = (struct kernel){"fftw r2c (ESTIMATE)", 8, fftw_run, fftw_result, &fc, n, 0, 0, NULL};
    ks[nk++] = (struct kernel){
            "qes demod order 4, D 256", 1, demod_run, demod_result, &dc, n, 0, 1 << 18, NULL};
    for (size_t c = 0; c < sizeof qcases / sizeof qcases[0]; c++) {
        struct qes_lockin_desc qd = {.method = qcases[c].m,
                                     .window = QES_WINDOW_RECT,
                                     .n = n,
                                     .periods = qcases[c].periods,
                                     .harmonics = harm8,
                                     .n_harmonics = qcases[c].nh};
        if ((rc = qes_lockin_create(&qd, &qc[c].l)))
            goto out_free;
        ks[nk++] = (struct kernel){qcases[c].name,
                                   (unsigned)qcases[c].nh,
                                   qes_run,
                                   qes_result,
                                   &qc[c],
                                   n,
                                   qcases[c].periods == p_nofold,
                                   0,
                                   qc[c].l};
    }

    double liquid = NAN;
    for (size_t i = 0; i < nk; i++) {
        struct kernel *k = &ks[i];
        const double *x = k->nofold ? x1 : x0;
        const struct qes_phasor *ref = k->nofold ? ref1 : ref0;
        /* Warm up; liquid's filter settles over >= 2^18 samples of whole
         * periods, so its NCO is back at phase 0 at every block start. */
        const size_t warm = (size_t)k->warm_samples / n + 1;
        for (size_t w = 0; w < warm; w++)
            k->run(k->ctx, x, (uint64_t)w * n);
        k->result(k->ctx, est);
        const double err = phasor_err(est, ref, k->nh);
        const double hot = 1.0 / time_kernel(k, x, NULL, tm);
        const double strm = 1.0 / time_kernel(k, x, st, tm);
        if (k->ctx == &lc)
            liquid = strm;
        rows[(*nr)++] = (struct row){k->name, n,   k->nh, k->nofold ? p_nofold : p_fold, hot, strm,
                                     limit,   NAN, err,   qes_lockin_memory_bytes(k->l)};
    }
    if (dc.rc) {
        rc = dc.rc;
        goto out_free;
    }
    /* The limit again after the kernels, keeping the better: the machine's
     * load drifts, and a low limit would flatter every ratio. */
    const double limit2 = read_limit(stream_buf, tm->reps);
    if (limit2 > limit) {
        limit = limit2;
        for (size_t i = first; i < *nr; i++)
            rows[i].limit = limit;
        rows[first].stream = limit;
    }
    for (size_t i = first; i < *nr; i++) {
        rows[i].liquid = liquid;
        print_row(out, &rows[i]);
    }
    rc = 0;

out_free:
    for (size_t c = 0; c < sizeof qc / sizeof qc[0]; c++)
        qes_lockin_destroy(qc[c].l);
    qes_demod_destroy(dc.d);
    free(dc.out);
    if (lc.nco)
        nco_crcf_destroy(lc.nco);
    if (lc.lp)
        iirfilt_crcf_destroy(lc.lp);
    if (fc.plan)
        fftw_destroy_plan(fc.plan);
    fftw_free(fc.in);
    fftw_free(fc.out);
    fftw_free(x0);
    fftw_free(x1);
    return rc;
}

int qes_bench_main(int quick, const char *json_path, FILE *out)
{
    static const size_t sizes_full[] = {4096, 65536, 1048576};
    static const size_t sizes_quick[] = {4096, 65536};
    const size_t *sizes = quick ? sizes_quick : sizes_full;
    const size_t n_sizes = quick ? 2 : 3;
    const struct timing tm = quick ? (struct timing){5, 0.002} : (struct timing){15, 0.010};
    struct row rows[MAX_ROWS];
    size_t nr = 0;
    struct stream st;
    int rc = 0;

    double *buf = fftw_malloc(STREAM_BYTES);
    if (!buf)
        return QES_ENOMEM;
    fprintf(out, "qes bench%s: block lock-in kernels, double precision, one core; best of %d\n",
            quick ? " --quick" : "", tm.reps);
    fprintf(out,
            "hot: one block again and again (in cache); stream: consecutive blocks from a "
            "%zu MiB buffer;\n/limit, /liquid: stream rate over the memory-read limit and over "
            "liquid-dsp; err: max |phasor - long double twin| / fundamental amplitude\n",
            STREAM_BYTES >> 20);
    fprintf(out, "%-28s %8s %2s %11s %11s %7s %8s %10s\n", "kernel", "n", "h", "hot S/s",
            "stream S/s", "/limit", "/liquid", "err");
    for (size_t si = 0; si < n_sizes && !rc; si++)
        rc = bench_size(sizes[si], &st, buf, &tm, out, rows, &nr);
    fftw_free(buf);
    if (rc)
        return rc;
    if (json_path)
        return write_json(json_path, quick, rows, nr);
    return 0;
}
