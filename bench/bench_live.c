/*
 * Live latency benchmark (bench/bench_live.h).
 */
#include "bench/bench_live.h"

#include "common/err.h"
#include "common/utctime.h"
#include "hw/source_sim.h"
#include "pipeline/acq.h"
#include "pipeline/config.h"
#include "pipeline/record.h"
#include "pipeline/runtime.h"

#include <complex.h>
#include <liquid/liquid.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIVE_FS    1e6
#define LIVE_BLOCK 4096u
/* 4 periods per block: 1e6 * 4 / 4096 = 976.5625 Hz, exact in binary */
#define LIVE_FREQ (LIVE_FS * 4.0 / LIVE_BLOCK)

static const char live_cfg[] = "[source]\n"
                               "kind = sim\n"
                               "sample_rate_hz = 1000000\n"
                               "adc_bits = 0\n"
                               "[channel.dut]\n"
                               "index = 0\n"
                               "gain = 1\n"
                               "[sim.dut]\n"
                               "freq_hz = 976.5625\n"
                               "harmonics = 1\n"
                               "rms = 1\n"
                               "noise_rms = 1e-4\n"
                               "[measure.ac]\n"
                               "channel = dut\n"
                               "method = dft\n"
                               "freq_hz = 976.5625\n"
                               "harmonics = 1\n"
                               "block_periods = 4\n";

/* A recorder that keeps nothing: the latency ends when a record enters the
 * recorder queue, so what the sink does is not part of it. */
static int null_run(struct qes_recorder *r, const struct qes_run_rec *run)
{
    (void)r;
    (void)run;
    return 0;
}
static int null_block(struct qes_recorder *r, const struct qes_run_rec *run,
                      const struct qes_block_rec *b)
{
    (void)run;
    (void)b;
    r->n_acked++;
    return 0;
}
static int null_summary(struct qes_recorder *r, const struct qes_run_rec *run,
                        const struct qes_summary_rec *s)
{
    (void)r;
    (void)run;
    (void)s;
    return 0;
}
static int null_close(struct qes_recorder *r, const struct qes_run_end *end)
{
    (void)r;
    (void)end;
    return 0;
}
static void null_destroy(struct qes_recorder *r)
{
    (void)r;
}
static const struct qes_recorder_ops null_ops = {.name = "null",
                                                 .run = null_run,
                                                 .block = null_block,
                                                 .summary = null_summary,
                                                 .close = null_close,
                                                 .destroy = null_destroy};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* liquid-dsp's NCO + IIR lock-in (as in bench.c) over one 4096-sample block,
 * timed block by block: what a liquid-dsp user's live loop spends per block. */
static int liquid_block_times(unsigned n_blocks, double *p50, double *p99, double *max)
{
    int64_t *t = malloc(n_blocks * sizeof *t);
    double *x = malloc(LIVE_BLOCK * sizeof *x);
    if (!t || !x) {
        free(t);
        free(x);
        return QES_ENOMEM;
    }
    for (size_t i = 0; i < LIVE_BLOCK; i++)
        x[i] = sqrt(2.0) * cos(2 * 3.14159265358979323846 * LIVE_FREQ * (double)i / LIVE_FS);
    nco_crcf nco = nco_crcf_create(LIQUID_NCO);
    nco_crcf_set_frequency(nco, (float)(2 * 3.14159265358979323846 * LIVE_FREQ / LIVE_FS));
    iirfilt_crcf lp = iirfilt_crcf_create_prototype(LIQUID_IIRDES_BUTTER, LIQUID_IIRDES_LOWPASS,
                                                    LIQUID_IIRDES_SOS, 4,
                                                    (float)(LIVE_FREQ / LIVE_FS / 8), 0, 1, 60);
    liquid_float_complex y = 0;
    for (unsigned b = 0; b < n_blocks; b++) {
        int64_t t0 = qes_mono_ns();
        for (size_t i = 0; i < LIVE_BLOCK; i++) {
            liquid_float_complex v;
            nco_crcf_mix_down(nco, (float)x[i], &v);
            nco_crcf_step(nco);
            iirfilt_crcf_execute(lp, v, &y);
        }
        t[b] = qes_mono_ns() - t0;
    }
    nco_crcf_destroy(nco);
    iirfilt_crcf_destroy(lp);
    qsort(t, n_blocks, sizeof *t, cmp_i64);
    *p50 = 1e-3 * (double)t[n_blocks / 2];
    *p99 = 1e-3 * (double)t[(size_t)ceil(0.99 * n_blocks) - 1];
    *max = 1e-3 * (double)t[n_blocks - 1];
    free(t);
    free(x);
    return crealf(y) == crealf(y) ? 0 : QES_EINVAL; /* keeps y alive */
}

/* One live run of `seconds`, the consumer spinning busy_poll_us before it sleeps. */
static int live_once(double seconds, unsigned busy_poll_us, FILE *out, double lat[3],
                     uint64_t *blocks, uint64_t *lost, uint64_t *dropped)
{
    struct qes_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return QES_ENOMEM;
    char err[1024];
    qes_config_init(cfg);
    int rc = qes_config_load_string(cfg, live_cfg, "bench-live", err, sizeof err);
    if (!rc)
        rc = qes_config_validate(cfg, err, sizeof err);
    if (rc) {
        fprintf(out, "bench live: %s\n", err);
        free(cfg);
        return rc;
    }
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = LIVE_FS;
    d.n_channels = 1;
    d.seed = 1;
    d.n_frames = (uint64_t)(seconds * LIVE_FS);
    d.realtime = 1;
    d.ch[0].freq_hz = LIVE_FREQ;
    d.ch[0].n_harmonics = 1;
    d.ch[0].harmonic[0] = 1;
    d.ch[0].rms[0] = 1.0;
    d.ch[0].noise_rms = 1e-4;
    d.ch[0].gain = 1.0;
    struct qes_source *sim = NULL, *acq = NULL;
    rc = qes_source_sim_create(&d, &sim, err, sizeof err);
    if (!rc) {
        struct qes_acq_desc ad = {.inner = sim,
                                  .frame_samples = LIVE_BLOCK,
                                  .n_slots = 256,
                                  .cpu = -1,
                                  .busy_poll_us = busy_poll_us};
        rc = qes_acq_create(&ad, &acq, err, sizeof err); /* owns sim from here, even on failure */
    }
    if (rc) {
        fprintf(out, "bench live: %s\n", err);
        free(cfg);
        return rc;
    }
    struct qes_recorder rec = {.ops = &null_ops};
    snprintf(rec.target, sizeof rec.target, "null");
    struct qes_recorder *recs[1] = {&rec};
    struct qes_run_rec run = {.id = "00000000-0000-4000-8000-000000000000",
                              .command = "bench",
                              .version = "bench",
                              .build = "bench",
                              .config_ini = "",
                              .input_json = "null",
                              .sample_rate_hz = LIVE_FS};
    struct qes_runtime_desc rd = {
            .cfg = cfg, .src = acq, .recs = recs, .n_recs = 1, .run = &run, .live = 1};
    struct qes_runtime_stats st;
    rc = qes_runtime_execute(&rd, &st, err, sizeof err);
    struct qes_acq_stats as;
    qes_acq_stats(acq, &as);
    qes_source_destroy(acq);
    free(cfg);
    if (rc) {
        fprintf(out, "bench live: %s\n", err);
        return rc;
    }
    lat[0] = st.latency_p50_us;
    lat[1] = st.latency_p99_us;
    lat[2] = st.latency_max_us;
    *blocks = st.latency_n;
    *lost = st.lost;
    *dropped = as.frames_dropped;
    return 0;
}

int qes_bench_live(int quick, FILE *out, struct qes_bench_live_result *res)
{
    memset(res, 0, sizeof *res);
    const double seconds = quick ? 3.0 : 20.0;
    double a[3], b[3];
    uint64_t lost2 = 0, dropped2 = 0;
    int rc = live_once(seconds, 0, out, a, &res->blocks, &res->lost, &res->frames_dropped);
    /* spinning longer than the 4.1 ms buffer period: the consumer never sleeps */
    if (!rc)
        rc = live_once(seconds, 10000, out, b, &res->bp_blocks, &lost2, &dropped2);
    if (rc)
        return rc;
    res->p50_us = a[0], res->p99_us = a[1], res->max_us = a[2];
    res->bp_p50_us = b[0], res->bp_p99_us = b[1], res->bp_max_us = b[2];
    res->lost += lost2;
    res->frames_dropped += dropped2;
    const unsigned n_liquid = quick ? 2000u : 10000u;
    rc = liquid_block_times(n_liquid, &res->liquid_p50_us, &res->liquid_p99_us,
                            &res->liquid_max_us);
    if (rc)
        return rc;
    fprintf(out,
            "\nlive latency: simulated ADC paced at 1 MS/s -> acquisition thread -> ring -> dft "
            "lock-in of %u-sample blocks -> recorder queue, %.0f s each\n",
            LIVE_BLOCK, seconds);
    fprintf(out, "%-36s %10s %10s %10s %8s\n", "", "p50 us", "p99 us", "max us", "blocks");
    fprintf(out, "%-36s %10.1f %10.1f %10.1f %8llu\n", "qes: last sample in -> record queued",
            res->p50_us, res->p99_us, res->max_us, (unsigned long long)res->blocks);
    fprintf(out, "%-36s %10.1f %10.1f %10.1f %8llu\n", "qes, [run] busy_poll_us = 10000",
            res->bp_p50_us, res->bp_p99_us, res->bp_max_us, (unsigned long long)res->bp_blocks);
    fprintf(out, "%-36s %10.1f %10.1f %10.1f %8u\n", "liquid-dsp NCO+IIR lock-in, compute",
            res->liquid_p50_us, res->liquid_p99_us, res->liquid_max_us, n_liquid);
    fprintf(out,
            "p99 / target 100 us: %.2f (busy poll %.2f); p99 / liquid-dsp compute p99: %.2f "
            "(busy poll %.2f); lost %llu samples, %llu buffers dropped\n",
            res->p99_us / 100.0, res->bp_p99_us / 100.0, res->p99_us / res->liquid_p99_us,
            res->bp_p99_us / res->liquid_p99_us, (unsigned long long)res->lost,
            (unsigned long long)res->frames_dropped);
    return 0;
}
