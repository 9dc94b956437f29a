/*
 * Coverage of the summaries' expanded uncertainty (issue 4), in process: a
 * simulated source (hw/source_sim.h) built from a configuration in INI text
 * as pipeline/main.c build_sim does, a recorder that keeps the records in
 * memory, and qes_runtime_execute.
 *
 * Rig: fs = 10 kHz, a 1 V RMS sine at 100 Hz, method dft, blocks of 10
 * periods (1000 samples, 0.1 s), 128 blocks per run (12.8 s), no
 * quantisation (adc_bits = 0: the noise, not the ADC, sets the scatter),
 * u_gain_rel = 0, so the summary's u_r is its Type A alone.
 *
 * White noise (noise_rms = 10 mV).  A block amplitude scatters by
 * sigma / sqrt(N) = 0.32 mV (Cramer-Rao for the RMS amplitude); the bias of
 * |mean phasor| from the perpendicular noise, sigma_perp^2 / (2 r) ~ 4e-10 V,
 * is 1e-5 of the run's u_r: the true value is the simulated RMS, 1 V.  With
 * Gaussian block results the t interval k(0.95, 127) s / sqrt(n) covers the
 * mean in exactly 95 % of runs, so the number of covering runs out of R is
 * binomial(R, 0.95): sd = sqrt(0.95 * 0.05 / R) = 0.97 % at R = 500, and the
 * acceptance band 93 % .. 97 % is +-2 sd (a correct pipeline falls outside
 * with probability ~5 %; the seeds are fixed, so the outcome is too).  Runs
 * flagged `nonwhite` use max(u_white, u_allan), which only widens U.
 *
 * False `nonwhite` flags on white noise.  dsp/allan.h says white FM is
 * misread in ~1 % of series at 128 points (n = 128 blocks: identified at
 * m_id = 1 on all 128).  The runtime analyses two independent series (the
 * components along and across the mean phasor), so ~2 % of runs would be
 * flagged.  The actual rate is higher: the lag-1 method reads alpha = +1
 * (flicker PM) when delta = r1 / (1 + r1) <= -0.25, i.e. r1 <= -0.2, and r1
 * of 128 white values after a line removal is ~N(-2/n, 1/n), so P =
 * Phi((-0.2 + 0.016) / 0.088) = 1.9 % per series, 3.7 % per run (measured:
 * 183 of 5000 runs, 3.7 %).  Bound: the 99.9 % point of
 * binomial(R, 0.037) (R = 500: mean 18.5, bound 33).
 *
 * Flicker noise.  On a channel with harmonics the simulator's flicker_rms is
 * 1/f noise of the sine's RMS amplitude (hw/source_sim.h), as a calibrator's
 * output wanders.  flicker_rms = 2 mV (standard deviation of the one-second
 * mean) gives an amplitude Allan deviation of ~0.39 x 2 mV = 0.77 mV, flat
 * from a block to the run, against the white 0.32 mV / sqrt(m): 2.4x the
 * white at tau0, 27x at the run's length, so the block results are
 * dominated by flicker and the rule identifies it in nearly every run.
 *
 * What is the true value under flicker noise?  The amplitude's ensemble mean
 * (rms_0 = 1 V) exists, as the simulated process turns white below
 * 2.4e-9 fs, but a run of 1.28e5 samples sees nothing of the wander slower
 * than itself: its mean scatters around the ensemble mean ~2.3x more than the
 * Allan deviation at the run's length (hw/source_sim.h).  No Type A computed
 * from inside one run can cover that, and the pipeline's rule does not claim
 * to: it estimates the flicker floor, the Allan deviation, which is by
 * definition the scatter of adjacent averages, E[(ybar_A - ybar_B)^2] =
 * 2 AVAR(T) for two adjacent runs A, B of length T.  So the flicker test
 * checks the claim the rule makes: two adjacent runs of one continuous source
 * agree within their expanded uncertainties, |r_A - r_B| <= sqrt(U_A^2 +
 * U_B^2) (E_n <= 1, the criterion of interlaboratory comparisons; for white
 * noise it is a 95 % test too, the difference of two independent means).
 * Each pair has its own seed, so the R pairs are independent.
 *  - Allan-based (the pipeline's U_r): must reach >= 90 % (issue 4).
 *    Measured on 5000 pairs: 98.2 % (conservative: part of the runs read
 *    alpha = -2 and extrapolate upward, and the Allan EDF of ~6 at m_L = 16
 *    gives k ~ 2.4; mean k 2.41).
 *  - Naive (the white rule, k(0.95, 127) s / sqrt(n) of the along
 *    components of the block phasors, recomputed from the block records; the
 *    white test checks that it equals the pipeline's unflagged U_r): for
 *    flicker FM, E[s^2] = B1(n) AVAR(tau0) with B1(128) = n ln n / (2 (n - 1)
 *    ln 2) = 3.53, so u ~ sqrt(3.53 / 128) 0.77 mV (+ white) = 0.13 mV
 *    against sd(r_A - r_B) = sqrt(2) 0.77 mV: expected coverage P(|Z| <
 *    1.98 * 0.13 / 0.77) = 26 % (measured 27.5 % on 5000 pairs).  Bound
 *    40 %: > 6 binomial sd above that at R = 500.
 *  - Flags: the rule must flag >= 95 % of the flicker runs (measured 99.0 %
 *    of 10000; at 95 % the bound is > 10 binomial sd below).
 *  The coverage of the ensemble mean (1 V) by run A without a horizon is
 *  printed for both, for information (measured: Allan-based 74.6 %, naive
 *  11.6 %).
 *  - Horizon: the ensemble mean is the value the source holds over any time
 *    longer than its slowest wander (4^13 samples, 6711 s here).  Told that
 *    horizon ([measure] typeA_horizon_s), the rule adds half an Allan
 *    variance per octave between the run (12.8 s) and the horizon (9.0
 *    octaves: u x 2.35, dsp/allan.h qes_mean_uncertainty_h), which is the
 *    ~2.3x the run mean scatters by.  Run A again with the horizon must cover
 *    1 V in >= 90 % of runs (issue 4), and not above 99 % (see the
 *    assertion).  Measured: 96.6 %, mean ((r - 1 V) / u)^2 = 0.97.
 *
 * R = 500 runs (white) and 500 pairs (flicker), 1.9e8 simulated samples:
 * ~8 s on the 2-core test machine, ~18 s under -DQES_SANITIZE=ON, so no
 * reduced mode is needed.
 */
#include "common/err.h"
#include "dsp/allan.h"
#include "dsp/gum.h"
#include "hw/source_sim.h"
#include "pipeline/config.h"
#include "pipeline/record.h"
#include "pipeline/runtime.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

TestSuite(coverage, .timeout = 600);

#define FS_HZ       10000.0
#define BLOCK_N     1000u /* 10 periods */
#define N_BLOCKS    128u
#define RUN_SAMPLES ((uint64_t)BLOCK_N * N_BLOCKS)
#define RMS_TRUE    1.0 /* [sim.dut] rms */

static const char cfg_text[] = "[source]\n"
                               "kind = sim\n"
                               "sample_rate_hz = 10000\n"
                               "adc_bits = 0\n"
                               "[channel.dut]\n"
                               "index = 0\n"
                               "unit = V\n"
                               "[sim.dut]\n"
                               "freq_hz = 100\n"
                               "harmonics = 1\n"
                               "rms = 1\n"
                               "phase_rad = 0.7\n"
                               "noise_rms = 0.01\n"
                               "[measure.ac]\n"
                               "channel = dut\n"
                               "method = dft\n"
                               "freq_hz = 100\n"
                               "harmonics = 1\n"
                               "block_periods = 10\n"
                               "coverage = 0.95\n";

/* Runs (white) and pairs of runs (flicker). */
#define N_RUNS 500u

/* ---- an in-memory recorder ----------------------------------------------------------------- */

struct memrec {
    struct qes_recorder base; /* first */
    double x[N_BLOCKS + 8], y[N_BLOCKS + 8];
    size_t n_blocks;               /* included blocks of harmonic 1 */
    size_t n_other;                /* blocks with flags or without a value */
    struct qes_phasor_summary sum; /* the last (final) summary */
    unsigned sum_flags;
    size_t n_summaries;
};

static int mr_run(struct qes_recorder *r, const struct qes_run_rec *run)
{
    (void)r;
    (void)run;
    return 0;
}

static int mr_block(struct qes_recorder *r, const struct qes_run_rec *run,
                    const struct qes_block_rec *b)
{
    (void)run;
    struct memrec *m = (struct memrec *)r;
    if (b->kind != QES_REC_PHASOR || b->harmonic != 1 || b->flags || !isfinite(b->x) ||
        m->n_blocks == sizeof m->x / sizeof m->x[0]) {
        m->n_other++;
        return 0;
    }
    m->x[m->n_blocks] = b->x;
    m->y[m->n_blocks] = b->y;
    m->n_blocks++;
    return 0;
}

static int mr_summary(struct qes_recorder *r, const struct qes_run_rec *run,
                      const struct qes_summary_rec *s)
{
    (void)run;
    struct memrec *m = (struct memrec *)r;
    m->sum = s->s;
    m->sum_flags = s->flags;
    m->n_summaries++;
    return 0;
}

static int mr_close(struct qes_recorder *r, const struct qes_run_end *end)
{
    (void)r;
    (void)end;
    return 0;
}

static void mr_destroy(struct qes_recorder *r)
{
    (void)r; /* lives on the caller's stack */
}

static const struct qes_recorder_ops mr_ops = {
        .name = "memory",
        .run = mr_run,
        .block = mr_block,
        .summary = mr_summary,
        .close = mr_close,
        .destroy = mr_destroy,
};

/* ---- a window on a source: run i of a continuous stream ------------------------------------ */

/* Delivers samples [origin, end) of the inner source renumbered from 0, so
 * that consecutive windows are adjacent runs of one continuous source. */
struct window {
    struct qes_source base; /* first */
    struct qes_source *inner;
    uint64_t origin, pos, end; /* inner sample indices; pos = next to deliver */
};

static int win_read(struct qes_source *s, struct qes_frame *f, size_t max_n)
{
    struct window *w = (struct window *)s;
    struct qes_frame g;
    if (w->pos == w->end)
        return 0;
    const uint64_t left = w->end - w->pos;
    int rc = qes_source_read(w->inner, &g, left < max_n ? (size_t)left : max_n);
    if (rc != 1)
        return rc;
    cr_assert_eq(g.first_sample, w->pos);
    cr_assert_eq(g.lost_before, 0);
    *f = g;
    f->first_sample = g.first_sample - w->origin;
    w->pos += g.n;
    return 1;
}

static void win_destroy(struct qes_source *s)
{
    (void)s;
}

static const struct qes_source_ops win_ops = {
        .name = "window", .read = win_read, .destroy = win_destroy};

/* ---- one run ------------------------------------------------------------------------------- */

struct result {
    double r, U_r;  /* pipeline summary */
    double U_naive; /* white rule recomputed from the blocks */
    double k;       /* pipeline coverage factor */
    int nonwhite;
};

static struct qes_config *load_cfg(void)
{
    struct qes_config *cfg = malloc(sizeof *cfg);
    cr_assert_not_null(cfg);
    char err[1024];
    qes_config_init(cfg);
    int rc = qes_config_load_string(cfg, cfg_text, "coverage.ini", err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    rc = qes_config_validate(cfg, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    return cfg;
}

/* The simulator desc of the configuration, as pipeline/main.c build_sim makes it for one
 * channel at index 0 with gain 1 and offset 0, with the seed, flicker and length given. */
static struct qes_source *make_sim(const struct qes_config *cfg, uint64_t seed, double flicker_rms,
                                   uint64_t n_frames)
{
    const struct qes_cfg_sim *t = qes_config_sim(cfg, "dut");
    cr_assert_not_null(t);
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = cfg->source.sample_rate_hz;
    d.adc_bits = cfg->source.adc_bits;
    d.n_channels = 1;
    d.seed = seed;
    d.n_frames = n_frames;
    d.start_ns = INT64_C(1800000000000000000);
    struct qes_sim_channel *c = &d.ch[0];
    c->freq_hz = t->freq_hz;
    c->n_harmonics = t->n_harmonics;
    for (size_t k = 0; k < t->n_harmonics; k++) {
        c->harmonic[k] = t->harmonics[k];
        c->rms[k] = t->rms[k];
        c->phase_rad[k] = t->phase_rad[k];
    }
    c->noise_rms = t->noise_rms;
    c->flicker_rms = flicker_rms;
    c->gain = 1.0;
    struct qes_source *s = NULL;
    char err[512];
    int rc = qes_source_sim_create(&d, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    return s;
}

/* k(0.95, n - 1) s / sqrt(n) of the components along the mean phasor. */
static double naive_U(const struct memrec *m)
{
    const size_t n = m->n_blocks;
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += m->x[i];
        my += m->y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    const double r = hypot(mx, my), cx = mx / r, cy = my / r;
    double ss = 0;
    for (size_t i = 0; i < n; i++) {
        const double a = (m->x[i] - mx) * cx + (m->y[i] - my) * cy;
        ss += a * a;
    }
    const double u = sqrt(ss / (double)(n - 1) / (double)n);
    return qes_coverage_factor(0.95, (double)(n - 1)) * u;
}

static struct result run_once(const struct qes_config *cfg, struct qes_source *src)
{
    struct memrec mr;
    memset(&mr, 0, sizeof mr);
    mr.base.ops = &mr_ops;
    snprintf(mr.base.target, sizeof mr.base.target, "memory");
    struct qes_recorder *recs[1] = {&mr.base};
    struct qes_run_rec run = {
            .id = "00000000-0000-4000-8000-000000000000",
            .command = "test",
            .version = "test",
            .build = "test",
            .config_ini = "",
            .input_json = "null",
            .t_start_ns = 0,
            .sample_rate_hz = FS_HZ,
    };
    struct qes_runtime_desc rd = {
            .cfg = cfg,
            .src = src,
            .recs = recs,
            .n_recs = 1,
            .run = &run,
    };
    struct qes_runtime_stats st;
    char err[1024] = "";
    int rc = qes_runtime_execute(&rd, &st, err, sizeof err);
    cr_assert_eq(rc, 0, "execute: %s: %s", qes_err_name(rc), err);
    cr_assert_eq(mr.n_summaries, 1);
    cr_assert_eq(mr.n_other, 0, "%zu blocks flagged or without a value", mr.n_other);
    cr_assert_eq(mr.n_blocks, N_BLOCKS);
    cr_assert_eq(mr.sum.n, N_BLOCKS);
    return (struct result){
            .r = mr.sum.r,
            .U_r = mr.sum.U_r,
            .U_naive = naive_U(&mr),
            .k = mr.sum.k,
            .nonwhite = (mr.sum_flags & QES_FLAG_NONWHITE) != 0,
    };
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Smallest c with P(binomial(n, p) <= c) >= q. */
static unsigned binom_quantile(unsigned n, double p, double q)
{
    double cdf = 0;
    for (unsigned c = 0; c <= n; c++) {
        cdf += exp(lgamma(n + 1.0) - lgamma(c + 1.0) - lgamma(n - c + 1.0) + c * log(p) +
                   (n - c) * log1p(-p));
        if (cdf >= q)
            return c;
    }
    return n;
}

/* ---- white noise --------------------------------------------------------------------------- */

Test(coverage, white_noise)
{
    const unsigned R = N_RUNS;
    struct qes_config *cfg = load_cfg();
    const double t0 = now_s();
    unsigned covered = 0, flagged = 0;
    for (unsigned i = 0; i < R; i++) {
        struct qes_source *src = make_sim(cfg, 1000 + i, 0.0, RUN_SAMPLES);
        struct result res = run_once(cfg, src);
        qes_source_destroy(src);
        covered += fabs(res.r - RMS_TRUE) <= res.U_r;
        flagged += res.nonwhite;
        if (!res.nonwhite) {
            /* the test's white rule is the pipeline's: both compute s / sqrt(n) of 128
             * values ~1 V with sums of ~1e-7 relative spread; 1e-9 relative is ~1e7 ulp */
            cr_assert(fabs(res.U_naive - res.U_r) <= 1e-9 * res.U_r,
                      "run %u: naive U %.17g, pipeline U %.17g", i, res.U_naive, res.U_r);
        }
    }
    const double cov = (double)covered / R;
    const double sd = sqrt(0.95 * 0.05 / R);
    const unsigned flag_max = binom_quantile(R, 0.037, 0.999);
    printf("coverage white: %u runs of %u blocks: U_r covers 1 V in %.1f %% (band %.1f .. %.1f "
           "%%), %u flagged nonwhite (bound %u); %.1f s\n",
           R, N_BLOCKS, 100 * cov, 100 * (0.95 - 2 * sd), 100 * (0.95 + 2 * sd), flagged, flag_max,
           now_s() - t0);
    cr_assert(fabs(cov - 0.95) <= 2 * sd + 1e-12, "coverage %.3f outside 0.95 +- %.3f", cov,
              2 * sd);
    cr_assert_leq(flagged, flag_max, "%u of %u white runs flagged nonwhite", flagged, R);
    free(cfg);
}

/* ---- flicker noise ------------------------------------------------------------------------- */

#define FLICKER_RMS 2e-3
/* The simulator's slowest flicker section has time constant 4^13 samples (hw/source_sim.c);
 * below 1 / (2 pi 4^13) fs its wander is white, so the value the source holds over any
 * horizon longer than that is its ensemble mean. */
#define HORIZON_S (67108864.0 / FS_HZ)

Test(coverage, flicker_noise)
{
    const unsigned R = N_RUNS;
    struct qes_config *cfg = load_cfg();
    /* the same measurement, its value claimed over the horizon of the simulated wander */
    struct qes_config *cfg_h = load_cfg();
    char err[256], set[128];
    snprintf(set, sizeof set, "measure.ac.typeA_horizon_s=%.17g", HORIZON_S);
    cr_assert_eq(qes_config_set(cfg_h, set, err, sizeof err), 0, "%s", err);
    const double t0 = now_s();
    unsigned en_allan = 0, en_naive = 0, ens_allan = 0, ens_naive = 0, flagged = 0;
    unsigned ens_h = 0;
    double k_sum = 0, z2_h = 0;
    for (unsigned i = 0; i < R; i++) {
        /* two adjacent runs A, B of one continuous source */
        struct qes_source *sim = make_sim(cfg, 5000 + i, FLICKER_RMS, 2 * RUN_SAMPLES);
        struct window w = {.base = {.ops = &win_ops, .sample_rate_hz = FS_HZ, .n_channels = 1},
                           .inner = sim};
        struct result res[2];
        for (int k = 0; k < 2; k++) {
            w.origin = w.pos = (uint64_t)k * RUN_SAMPLES;
            w.end = w.origin + RUN_SAMPLES;
            res[k] = run_once(cfg, &w.base);
            flagged += res[k].nonwhite;
            k_sum += res[k].k;
        }
        qes_source_destroy(sim);
        /* run A again (same seed: the same samples), with the horizon */
        sim = make_sim(cfg, 5000 + i, FLICKER_RMS, RUN_SAMPLES);
        const struct result rh = run_once(cfg_h, sim);
        qes_source_destroy(sim);
        cr_assert(rh.r == res[0].r, "pair %u: the horizon changed the value", i);
        ens_h += fabs(rh.r - RMS_TRUE) <= rh.U_r;
        z2_h += pow((rh.r - RMS_TRUE) / (rh.U_r / rh.k), 2);
        const double d = fabs(res[0].r - res[1].r);
        en_allan += d <= hypot(res[0].U_r, res[1].U_r);
        en_naive += d <= hypot(res[0].U_naive, res[1].U_naive);
        ens_allan += fabs(res[0].r - RMS_TRUE) <= res[0].U_r;
        ens_naive += fabs(res[0].r - RMS_TRUE) <= res[0].U_naive;
    }
    printf("coverage flicker: %u pairs of adjacent runs, |r_A - r_B| <= sqrt(U_A^2 + U_B^2): "
           "pipeline (Allan-based) %.1f %%, naive %.1f %%; %u of %u runs flagged nonwhite; "
           "mean k %.2f; ensemble mean (1 V) covered by run A: pipeline %.1f %%, naive %.1f %%; "
           "%.1f s\n",
           R, 100.0 * en_allan / R, 100.0 * en_naive / R, flagged, 2 * R, k_sum / (2 * R),
           100.0 * ens_allan / R, 100.0 * ens_naive / R, now_s() - t0);
    printf("coverage flicker, horizon %.6g s (the simulated wander's longest time constant): "
           "ensemble mean (1 V) covered by run A in %.1f %% (naive %.1f %%); "
           "mean of ((r - 1 V) / u)^2 = %.2f\n",
           HORIZON_S, 100.0 * ens_h / R, 100.0 * ens_naive / R, z2_h / R);
    cr_assert_geq(en_allan, 0.90 * R, "Allan-based coverage %.3f < 0.90", (double)en_allan / R);
    cr_assert_leq(en_naive, 0.40 * R, "naive coverage %.3f > 0.40: the flicker does not show",
                  (double)en_naive / R);
    cr_assert_geq(flagged, 0.95 * 2 * R, "only %u of %u flicker runs flagged nonwhite", flagged,
                  2 * R);
    cr_assert_geq(ens_h, 0.90 * R, "horizon coverage of the ensemble mean %.3f < 0.90",
                  (double)ens_h / R);
    /* and not by overstating: with the horizon term right and k ~ 2.4 (EDF ~6) the coverage
     * is ~96 %; a term 1.5x too large would cover ~99.9 %.  99 % is 3.4 binomial sd above
     * 96 % at R = 500. */
    cr_assert_leq(ens_h, 0.99 * R, "horizon coverage %.3f > 0.99: the horizon term is too large",
                  (double)ens_h / R);
    free(cfg_h);
    free(cfg);
}
