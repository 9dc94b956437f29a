/*
 * End to end for the estimators beyond the coherent lock-in: each method
 * replays a simulated capture through the qes executable and must return the
 * simulated truth within a stated error budget.
 */
#include "dsp/si.h"
#include "hw/sigmf.h"
#include "tests/integration/itest.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define M_PI_VALUE 3.14159265358979323846

TestSuite(methods, .timeout = 300);

/* A non-coherent rig: 1001.3 Hz at 100 kS/s, so 10000-sample blocks hold
 * 100.13 periods and no DFT bin is exact. */
#define NONCOHERENT_INI                   \
    "[source]\n"                          \
    "kind = sim\n"                        \
    "sample_rate_hz = 100000\n"           \
    "seconds = 1\n"                       \
    "adc_bits = 0\n"                      \
    "start_time = 2026-11-27T00:00:00Z\n" \
    "[channel.dut]\n"                     \
    "index = 0\n"                         \
    "[sim.dut]\n"                         \
    "freq_hz = 1001.3\n"                  \
    "harmonics = 1,2,3\n"                 \
    "rms = 1.0,0.001,0.0005\n"            \
    "phase_rad = 0.7,-1.2,2.5\n"          \
    "noise_rms = 0\n"                     \
    "[measure.fit]\n"                     \
    "channel = dut\n"                     \
    "method = %s\n"                       \
    "freq_hz = %s\n"                      \
    "harmonics = 1,2,3\n"                 \
    "block_samples = 10000\n"

static const double truth_rms[3] = {1.0, 0.001, 0.0005};
static const double truth_phase[3] = {0.7, -1.2, 2.5};

/*
 * Worst amplitude (relative) and phase errors of every block and summary
 * record.  With check_phase = 0 only amplitudes are compared.
 */
static void worst_errors(const char *out, int check_phase, double *er_max, double *ep_max,
                         int *n_sum)
{
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    *er_max = *ep_max = 0;
    *n_sum = 0;
    json_array_foreach(recs, i, r)
    {
        if (!itest_is(r, "block") && !itest_is(r, "summary"))
            continue; /* run, run_end */
        int h = (int)json_integer_value(json_object_get(r, "harmonic"));
        cr_assert(h >= 1 && h <= 3);
        double er = fabs(itest_num(r, "r") - truth_rms[h - 1]) / truth_rms[h - 1];
        *er_max = er > *er_max ? er : *er_max;
        if (check_phase) {
            double ep = fabs(itest_wrap(itest_num(r, "phase_rad") - truth_phase[h - 1]));
            *ep_max = ep > *ep_max ? ep : *ep_max;
        }
        *n_sum += itest_is(r, "summary");
    }
    json_decref(recs);
}

/*
 * Noise-free non-coherent capture, multi-harmonic 3-parameter fit at the
 * known frequency.  Budget: the samples carry ~1e-16 V of rounding; a least
 * squares fit over 1e4 samples has condition number ~1 (centred basis) and
 * sums in long double, so the estimates are good to ~1e-15 V; relative to
 * the 0.5 mV third harmonic that is ~1e-12.  Bound: 1e-10.
 */
Test(methods, sinefit3_noncoherent_exact)
{
    itest_dir_make();
    char text[4096];
    snprintf(text, sizeof text, NONCOHERENT_INI, "sinefit3", "1001.3");
    itest_simulate("nc", text);
    char *out = itest_replay("nc", NULL, 0);
    double er, ep;
    int n_sum;
    worst_errors(out, 1, &er, &ep, &n_sum);
    fprintf(stderr, "sinefit3, 100.13 periods per block: amplitude %.3g relative, phase %.3g rad\n",
            er, ep);
    cr_assert_eq(n_sum, 3);
    cr_assert_leq(er, 1e-10);
    cr_assert_leq(ep, 1e-10);
    free(out);
    itest_dir_clean();
}

/*
 * The same with the frequency fitted in every block (4-parameter fit started
 * at the nominal frequency).  Acceptance of issue 3: amplitude within 1e-10
 * relative.  The fitted frequency is exact to rounding (~1e-15 relative),
 * which moves the phase at the run's origin by at most 2 pi f t * 1e-15 ~
 * 6e-12 rad over this 1 s run; bound 1e-9 rad.
 */
Test(methods, sinefit4_noncoherent_exact)
{
    itest_dir_make();
    char text[4096];
    snprintf(text, sizeof text, NONCOHERENT_INI, "sinefit4", "1001.3");
    itest_simulate("nc4", text);
    char *out = itest_replay("nc4", NULL, 0);
    double er, ep;
    int n_sum;
    worst_errors(out, 1, &er, &ep, &n_sum);
    fprintf(stderr, "sinefit4, 100.13 periods per block: amplitude %.3g relative, phase %.3g rad\n",
            er, ep);
    cr_assert_eq(n_sum, 3);
    cr_assert_leq(er, 1e-10);
    cr_assert_leq(ep, 1e-9);
    free(out);
    itest_dir_clean();
}

/* fft refuses a non-coherent block instead of returning a biased value. */
Test(methods, fft_refuses_noncoherent)
{
    itest_dir_make();
    char text[4096];
    snprintf(text, sizeof text, NONCOHERENT_INI, "fft", "1001.3");
    itest_simulate("ncf", text);
    char *out = itest_replay("ncf", NULL, 1);
    free(out);
    itest_dir_clean();
}

/*
 * AC-PJVS differential sampling: a capture of DUT - staircase with ringing
 * after every edge, written directly as rf64 (the simulator makes sines, not
 * staircases).  The reconstructed DUT RMS must match the truth within 2e-9
 * relative (issue 3).  Budget with no noise: the ringing starts at 0.1 of the
 * step's jump (|jump| <= 0.45 V: the sine moves sqrt(2) 2 pi / 20 V per step)
 * and decays with a 20-sample time constant; after the 400-sample mask what
 * is left biases a step mean (500-sample window) by at most
 * 0.045 V * 20 * e^-20 / 500 = 3.7e-12 V, and rounding adds ~1e-15 V.  The
 * bound is the 2e-9; the expected error is ~1e-12.
 */
Test(methods, steps_pjvs_differential)
{
    itest_dir_make();
    const double fs = 1e6, f = 50, vrms = 1.0, phi = 0.3, f_j = 70e9;
    const unsigned S = 20, L = 1000, per = 50;
    const double step_v = (double)qes_si_josephson_v(1, f_j);
    char steps[2048] = "";
    double vk[20];
    size_t w = 0;
    for (unsigned k = 0; k < S; k++) {
        /* junction count nearest the DUT at the step's centre */
        double tc = ((double)k + 0.5) * L / fs;
        double v = sqrt(2.0) * vrms * cos(2 * M_PI_VALUE * f * tc + phi);
        long n = lround(v / step_v);
        vk[k] = (double)qes_si_josephson_v((long double)n, f_j);
        w += (size_t)snprintf(steps + w, sizeof steps - w, "%s%ld", k ? "," : "", n);
    }
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{\"qes:config\":\"[channel.diff]\\nindex = 0\\n[measure.pjvs]\\nchannel = diff\\n"
             "method = steps\\nfreq_hz = 50\\nblock_periods = 10\\nsteps_per_period = 20\\n"
             "f_j_hz = 70e9\\nsteps = %s\\nmask_after = 400\\nmask_before = 100\\n\"}",
             steps);
    char base[4200], err[1024];
    snprintf(base, sizeof base, "%s/pjvs", itest_dir());
    struct qes_sigmf_writer_desc d = {.path = base,
                                      .dtype = QES_DT_RF64_LE,
                                      .sample_rate_hz = fs,
                                      .num_channels = 1,
                                      .extra_global_json = cfg};
    struct qes_sigmf_writer *wr;
    cr_assert_eq(qes_sigmf_writer_create(&d, &wr, err, sizeof err), 0, "%s", err);
    size_t n_per = (size_t)(fs / f);
    double *buf = malloc(n_per * sizeof *buf);
    cr_assert_not_null(buf);
    for (unsigned p = 0; p < per; p++) {
        for (size_t i = 0; i < n_per; i++) {
            size_t k = i / L, j = i % L;
            double t = (double)i / fs; /* phase repeats every period exactly */
            double dut = sqrt(2.0) * vrms * cos(2 * M_PI_VALUE * f * t + phi);
            double jump = vk[k] - vk[(k + S - 1) % S];
            buf[i] = dut - vk[k] + 0.1 * jump * exp(-(double)j / 20.0);
        }
        cr_assert_eq(qes_sigmf_writer_write(wr, buf, n_per), 0);
    }
    free(buf);
    cr_assert_eq(qes_sigmf_writer_close(wr, err, sizeof err), 0, "%s", err);
    char *out = itest_replay("pjvs", NULL, 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int n_sum = 0, n_blk = 0;
    json_array_foreach(recs, i, r)
    {
        if (itest_is(r, "block")) {
            n_blk++;
            cr_assert(json_object_get(r, "value"), "steps blocks are scalar records");
        } else if (itest_is(r, "summary")) {
            n_sum++;
            double e = fabs(itest_num(r, "value") - vrms) / vrms;
            fprintf(stderr, "steps: RMS error %.3g relative over %g blocks\n", e,
                    itest_num(r, "n_blocks"));
            cr_assert_leq(e, 2e-9);
            cr_assert_eq(itest_num(r, "n_blocks"), 5);
        }
    }
    cr_assert_eq(n_sum, 1);
    cr_assert_eq(n_blk, 5);
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

/*
 * DC reversals (Josephson vs Zener): a +--+ schedule, with offset, linear
 * drift and exponential settling after every reversal, written as a
 * two-channel rf64 capture (signal, and the polarity as a second channel).
 * With no noise the drift-free half-difference must equal V exactly, by the
 * schedule and by the polarity channel alike.  Budget: settling (time constant
 * 5 ms) is cut by the 0.3 s settle_s to e^-60 of a 20 uV step, 2e-31 V; the
 * means of 700 samples carry rounding of ~1e-16 of the 10 uV offset: the
 * error is ~1e-20 V against V = 1 uV, i.e. ~1e-14 relative.  Bound: 1e-12.
 */
static void reversal_capture(const char *name, const char *measure_keys)
{
    const double fs = 1000, v = 1e-6, offset = 1e-5, drift = 3e-9, tau = 0.005;
    const int pattern[4] = {+1, -1, -1, +1};
    const unsigned half = 1000, halves = 40;
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "{\"qes:config\":\"[channel.nvm]\\nindex = 0\\n[channel.sw]\\nindex = 1\\n"
             "[measure.zener]\\nchannel = nvm\\nmethod = reversal\\npattern = +--+\\n"
             "settle_s = 0.3\\n%s\"}",
             measure_keys);
    char base[4200], err[1024];
    snprintf(base, sizeof base, "%s/%s", itest_dir(), name);
    struct qes_sigmf_writer_desc d = {.path = base,
                                      .dtype = QES_DT_RF64_LE,
                                      .sample_rate_hz = fs,
                                      .num_channels = 2,
                                      .extra_global_json = cfg};
    struct qes_sigmf_writer *wr;
    cr_assert_eq(qes_sigmf_writer_create(&d, &wr, err, sizeof err), 0, "%s", err);
    double buf[2 * 1000];
    int prev = pattern[0];
    for (unsigned hc = 0; hc < halves; hc++) {
        int s = pattern[hc % 4];
        for (unsigned j = 0; j < half; j++) {
            double t = (double)(hc * half + j) / fs;
            double settle = s != prev ? (prev - s) * v * exp(-(double)j / fs / tau) : 0;
            buf[2 * j] = s * v + offset + drift * t + settle;
            buf[2 * j + 1] = s;
        }
        prev = s;
        cr_assert_eq(qes_sigmf_writer_write(wr, buf, half), 0);
    }
    cr_assert_eq(qes_sigmf_writer_close(wr, err, sizeof err), 0, "%s", err);
}

static void check_reversal(const char *name)
{
    char *out = itest_replay(name, NULL, 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int n_sum = 0;
    json_array_foreach(recs, i, r)
    {
        if (itest_is(r, "block") && json_array_size(json_object_get(r, "flags")) == 0) {
            double e = fabs(itest_num(r, "value") - 1e-6) / 1e-6;
            cr_assert_leq(e, 1e-12, "group %g: error %.3g", itest_num(r, "seq"), e);
        } else if (itest_is(r, "summary")) {
            n_sum++;
            double e = fabs(itest_num(r, "value") - 1e-6) / 1e-6;
            fprintf(stderr, "reversal (%s): %g groups, error %.3g relative\n", name,
                    itest_num(r, "n_blocks"), e);
            cr_assert_geq(itest_num(r, "n_blocks"), 9);
            cr_assert_leq(e, 1e-12);
        }
    }
    cr_assert_eq(n_sum, 1);
    json_decref(recs);
    free(out);
}

Test(methods, reversal_schedule_removes_offset_and_drift)
{
    itest_dir_make();
    reversal_capture("rs", "half_period_s = 1\\n");
    check_reversal("rs");
    itest_dir_clean();
}

Test(methods, reversal_polarity_channel)
{
    itest_dir_make();
    reversal_capture("rp", "polarity_channel = sw\\n");
    check_reversal("rp");
    itest_dir_clean();
}

/*
 * Streaming demodulator on a steady noise-free sine (1 kHz, 2nd and 3rd
 * harmonics): after settling every output is within 1e-8 of the truth in
 * amplitude (relative) and phase (issue 3).  Budget: without averaging, the
 * 4th-order filter (tau = 10 ms) passes a neighbouring component 1 kHz away
 * attenuated by |1 + j 2 pi 1000 tau|^-4 = (1/62.8)^4 = 6.4e-8: the 1 V
 * fundamental would put 6.4e-8 V into the 1 mV second harmonic, 6.4e-5
 * relative.  A one-period moving average (sinc_periods = 1) nulls every
 * harmonic of 1 kHz exactly, including the 2f images, so what remains is the
 * start transient: 4 stages decay as e^-t/tau (1 + t/tau + (t/tau)^2/2 +
 * (t/tau)^3/6).  It is of the order of the largest component (1 V), so for
 * the 0.5 mV harmonic it is 2000x larger relative: at 30 tau, e^-30 * 4.7e3 *
 * 2000 = 9e-7 (measured 3e-9 there), at 50 tau e^-50 * 2.2e4 * 2000 = 9e-14.
 * The test looks from 50 tau on; rounding adds ~1e-14.  Bound 1e-8.
 */
Test(methods, demod_steady_sine)
{
    itest_dir_make();
    char text[4096];
    snprintf(text, sizeof text,
             "[source]\nkind = sim\nsample_rate_hz = 100000\nseconds = 2\nadc_bits = 0\n"
             "start_time = 2026-11-27T00:00:00Z\n[channel.dut]\nindex = 0\n[sim.dut]\n"
             "freq_hz = 1000\nharmonics = 1,2,3\nrms = 1.0,0.001,0.0005\nphase_rad = 0.7,-1.2,2.5\n"
             "[measure.li]\nchannel = dut\nmethod = demod\nfreq_hz = 1000\nharmonics = 1,2,3\n"
             "tau_s = 0.01\norder = 4\noutput_rate_hz = 100\nsettle_tau = 8\nsinc_periods = 1\n");
    itest_simulate("dm", text);
    char *out = itest_replay("dm", NULL, 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    double er = 0, ep = 0;
    int n_ok = 0, n_settling = 0, n_sum = 0;
    json_array_foreach(recs, i, r)
    {
        if (itest_is(r, "summary")) {
            n_sum++;
            cr_assert_geq(itest_num(r, "n_blocks"), 3, "batch means of the outputs");
            continue;
        }
        if (!itest_is(r, "block"))
            continue;
        if (json_array_size(json_object_get(r, "flags"))) {
            n_settling++;
            continue;
        }
        if (itest_num(r, "sample_start") < 0.5 * 100000)
            continue; /* before 50 tau: see the budget */
        int h = (int)json_integer_value(json_object_get(r, "harmonic"));
        double e = fabs(itest_num(r, "r") - truth_rms[h - 1]) / truth_rms[h - 1];
        double p = fabs(itest_wrap(itest_num(r, "phase_rad") - truth_phase[h - 1]));
        er = e > er ? e : er;
        ep = p > ep ? p : ep;
        n_ok++;
    }
    fprintf(stderr, "demod: %d outputs after settling (%d settling): amplitude %.3g, phase %.3g\n",
            n_ok, n_settling, er, ep);
    cr_assert_geq(n_ok, 3 * 140);
    cr_assert_eq(n_sum, 3);
    cr_assert_leq(er, 1e-8);
    cr_assert_leq(ep, 1e-8);
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

/*
 * Interpolated DFT (3-point Hann) on the non-coherent capture: issue 3 asks
 * <= 1e-6 relative with >= 10 periods; the image-corrected estimator of
 * dsp/ipdft.c reaches ~1e-12 for the fundamental.  The harmonics are 1000x and
 * 2000x weaker and sit ~100 bins from the fundamental, whose Hann leakage
 * falls as 3 / (4 pi k^3) ~ 2.4e-7 of 1 V at k = 100 bins: up to 5e-4
 * relative to the 0.5 mV third harmonic.  Bounds: 1e-6 on the fundamental,
 * 1e-3 on the harmonics.
 */
Test(methods, ipdft_noncoherent)
{
    itest_dir_make();
    char text[4096];
    snprintf(text, sizeof text, NONCOHERENT_INI, "ipdft", "1001.3");
    itest_simulate("ip", text);
    char *out = itest_replay("ip", NULL, 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    double e1 = 0, eh = 0;
    json_array_foreach(recs, i, r)
    {
        if (!itest_is(r, "block"))
            continue;
        int h = (int)json_integer_value(json_object_get(r, "harmonic"));
        double e = fabs(itest_num(r, "r") - truth_rms[h - 1]) / truth_rms[h - 1];
        if (h == 1)
            e1 = e > e1 ? e : e1;
        else
            eh = e > eh ? e : eh;
    }
    fprintf(stderr, "ipdft, 100.13 periods: fundamental %.3g, harmonics %.3g relative\n", e1, eh);
    cr_assert_leq(e1, 1e-6);
    cr_assert_leq(eh, 1e-3);
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

/* freq_hz = auto: the 4-parameter fit started from the interpolated DFT's
 * estimate in every block; amplitudes as with a known frequency (1e-10). */
Test(methods, sinefit4_auto_frequency)
{
    itest_dir_make();
    char text[4096];
    snprintf(text, sizeof text, NONCOHERENT_INI, "sinefit4", "auto");
    itest_simulate("au", text);
    char *out = itest_replay("au", NULL, 0);
    double er, ep;
    int n_sum;
    worst_errors(out, 0, &er, &ep, &n_sum);
    fprintf(stderr, "sinefit4, freq_hz = auto: amplitude %.3g relative\n", er);
    cr_assert_eq(n_sum, 3);
    cr_assert_leq(er, 1e-10);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r)
    {
        if (itest_is(r, "block") && json_integer_value(json_object_get(r, "harmonic")) == 1)
            cr_assert_leq(fabs(itest_num(r, "freq_hz") - 1001.3), 1e-9, "estimated frequency %.17g",
                          itest_num(r, "freq_hz"));
    }
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

/* Quality figures: THD of the simulated signal is exactly
 * sqrt(0.001^2 + 0.0005^2) = 1.1180e-3 on coherent noise-free blocks
 * (dsp/quality is exact to 1e-12 relative there; bound 1e-9); a bound of
 * thd_max = 1e-3 flags every block, which is then left out of the summary,
 * and the run exits 3. */
#define COHERENT_INI                                                                           \
    "[source]\nkind = sim\nsample_rate_hz = 100000\nseconds = 0.2\nadc_bits = 0\n"             \
    "start_time = 2026-11-27T00:00:00Z\n[channel.dut]\nindex = 0\n[sim.dut]\nfreq_hz = 1000\n" \
    "harmonics = 1,2,3\nrms = 1.0,0.001,0.0005\nphase_rad = 0.7,-1.2,2.5\n[measure.q]\n"       \
    "channel = dut\nmethod = fft\nfreq_hz = 1000\nharmonics = 1\nquality = true\n"

Test(methods, quality_figures_and_flag)
{
    itest_dir_make();
    itest_simulate("q", COHERENT_INI);
    const double thd = sqrt(0.001 * 0.001 + 0.0005 * 0.0005);
    char *out = itest_replay("q", NULL, 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int n_blk = 0;
    json_array_foreach(recs, i, r)
    {
        if (!itest_is(r, "block"))
            continue;
        n_blk++;
        cr_assert_leq(fabs(itest_num(r, "thd") - thd) / thd, 1e-9, "thd %.17g",
                      itest_num(r, "thd"));
        cr_assert(isfinite(itest_num(r, "sinad_db")) && isfinite(itest_num(r, "sfdr_db")));
        cr_assert_leq(fabs(itest_num(r, "sfdr_db") - 60.0), 1e-6, "largest spur: 1 mV at 2 kHz");
    }
    cr_assert_eq(n_blk, 20);
    json_decref(recs);
    free(out);
    out = itest_replay("q", "--set measure.q.thd_max=1e-3", 3);
    recs = itest_parse_jsonl(out);
    json_array_foreach(recs, i, r)
    {
        if (itest_is(r, "block"))
            cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "flags"), 0)),
                             "quality");
        if (itest_is(r, "summary"))
            cr_assert_eq(itest_num(r, "n_excluded"), 20);
    }
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

/*
 * Calibration chain and Type B components from the configuration: a flat
 * frequency response of gain 1.001 and phase 0.01 rad, a 1 us delay, and a
 * rectangular relative component.  On the noise-free coherent capture every
 * corrected value is exact to rounding: r = truth / 1.001, phase = truth -
 * 0.01 + 2 pi h f 1e-6 (a late channel is advanced).  Bound 1e-12, as for
 * the uncorrected values (one complex multiplication more).  The budget lists
 * typeA, gain, freqresp, delay and the component; u(freqresp) = 1e-5 / 1.001
 * r and u(ref) = 1e-6 / sqrt(3) r to rounding (bound 1e-9 relative).
 */
Test(methods, calibration_chain_and_typeb)
{
    itest_dir_make();
    char csv[4200], ini[8192];
    snprintf(csv, sizeof csv, "%s/fr.csv", itest_dir());
    cr_assert_eq(qes_test_write(csv, "# f_hz, gain_rel, u_gain_rel, phase_rad, u_phase_rad\n"
                                     "500, 1.001, 1e-5, 0.01, 2e-5\n"
                                     "4000, 1.001, 1e-5, 0.01, 2e-5\n"),
                 0);
    snprintf(ini, sizeof ini,
             "%s[channel.dut]\nindex = 0\nu_gain_rel = 2e-6\nfreq_response = %s\n"
             "delay_s = 1e-6\nu_delay_s = 1e-8\n"
             "[typeb.ref]\nmeasure = q\ndistribution = rectangular\nhalf_width = 1e-6\n"
             "relative = true\n",
             "[source]\nkind = sim\nsample_rate_hz = 100000\nseconds = 0.2\nadc_bits = 0\n"
             "start_time = 2026-11-27T00:00:00Z\n[sim.dut]\nfreq_hz = 1000\nharmonics = 1,2,3\n"
             "rms = 1.0,0.001,0.0005\nphase_rad = 0.7,-1.2,2.5\n[measure.q]\nchannel = dut\n"
             "method = dft\nfreq_hz = 1000\nharmonics = 1,2,3\n",
             csv);
    itest_simulate("cal", ini);
    char *out = itest_replay("cal", NULL, 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int n_sum = 0;
    json_array_foreach(recs, i, r)
    {
        if (!itest_is(r, "block") && !itest_is(r, "summary"))
            continue; /* run, run_end */
        int h = (int)json_integer_value(json_object_get(r, "harmonic"));
        double r_exp = truth_rms[h - 1] / 1.001;
        double p_exp = itest_wrap(truth_phase[h - 1] - 0.01 + 2 * M_PI_VALUE * h * 1000 * 1e-6);
        double er = fabs(itest_num(r, "r") - r_exp) / r_exp;
        double ep = fabs(itest_wrap(itest_num(r, "phase_rad") - p_exp));
        cr_assert_leq(er, 1e-12, "h%d: r error %.3g", h, er);
        cr_assert_leq(ep, 1e-12, "h%d: phase error %.3g", h, ep);
        if (!itest_is(r, "summary"))
            continue;
        n_sum++;
        json_t *b = json_object_get(r, "budget");
        const char *want[] = {"typeA", "gain", "freqresp", "delay", "ref"};
        for (size_t w = 0; w < 5; w++) {
            int found = 0;
            for (size_t j = 0; j < json_array_size(b); j++)
                found |= !strcmp(json_string_value(json_object_get(json_array_get(b, j), "name")),
                                 want[w]);
            cr_assert(found, "h%d: budget lacks %s", h, want[w]);
        }
        for (size_t j = 0; j < json_array_size(b); j++) {
            json_t *t = json_array_get(b, j);
            const char *name = json_string_value(json_object_get(t, "name"));
            double u = itest_num(t, "u"), rr = itest_num(r, "r");
            if (!strcmp(name, "freqresp"))
                cr_assert_leq(fabs(u - 1e-5 / 1.001 * rr), 1e-9 * u, "u(freqresp) %.3g", u);
            if (!strcmp(name, "ref"))
                cr_assert_leq(fabs(u - 1e-6 / sqrt(3.0) * rr), 1e-9 * u, "u(ref) %.3g", u);
        }
    }
    cr_assert_eq(n_sum, 3);
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

/*
 * A PJVS-referenced AC comparison: channel 1 digitises a Josephson waveform
 * of RMS n f_J / K_J (n = 6909 at 70 GHz: 1.00008 V), channel 0 the DUT (1 V,
 * 10 uV white noise on each).  The ratio measurement times the quantum value
 * must return the DUT voltage within its expanded uncertainty (issue 4), and
 * its budget must list typeA, gain, freqresp and reference.  Coverage 0.999
 * keeps a false failure improbable (1e-3 for the fixed seed's draw).
 */
Test(methods, pjvs_referenced_ratio)
{
    itest_dir_make();
    const double vj = (double)qes_si_josephson_v(6909, 70e9);
    char csv[4200], ini[8192];
    snprintf(csv, sizeof csv, "%s/fr.csv", itest_dir());
    cr_assert_eq(qes_test_write(csv, "100, 1.0, 2e-6, 0, 1e-6\n10000, 1.0, 2e-6, 0, 1e-6\n"), 0);
    snprintf(ini, sizeof ini,
             "[source]\nkind = sim\nsample_rate_hz = 100000\nseconds = 1\nadc_bits = 0\nseed = 11\n"
             "start_time = 2026-11-27T00:00:00Z\n"
             "[channel.dut]\nindex = 0\nu_gain_rel = 1e-6\nfreq_response = %s\n"
             "[channel.jvs]\nindex = 1\nu_gain_rel = 1e-6\n"
             "[sim.dut]\nfreq_hz = 1000\nrms = 1.0\nphase_rad = 0.1\nnoise_rms = 1e-5\n"
             "[sim.jvs]\nfreq_hz = 1000\nrms = %.17g\nphase_rad = 0\nnoise_rms = 1e-5\n"
             "[measure.dut]\nchannel = dut\nmethod = dft\nfreq_hz = 1000\n"
             "[measure.jvs]\nchannel = jvs\nmethod = dft\nfreq_hz = 1000\n"
             "[measure.v]\nmethod = ratio\nnumerator = dut\ndenominator = jvs\nreference = pjvs\n"
             "pjvs_n = 6909\nf_j_hz = 70e9\nu_fj_rel = 1e-9\ncoverage = 0.999\n",
             csv, vj);
    itest_simulate("pj", ini);
    char *out = itest_replay("pj", NULL, 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int found_v = 0;
    json_array_foreach(recs, i, r)
    {
        if (!itest_is(r, "summary") ||
            strcmp(json_string_value(json_object_get(r, "measure")), "v"))
            continue;
        found_v = 1;
        double v = itest_num(r, "r"), U = itest_num(r, "U_r");
        fprintf(stderr, "PJVS-referenced DUT: %.12f V, U = %.3g V (k = %.3f), error %.3g V\n", v, U,
                itest_num(r, "k"), v - 1.0);
        cr_assert_str_eq(json_string_value(json_object_get(r, "unit")), "V");
        cr_assert_leq(fabs(v - 1.0), U, "error %.3g V > U %.3g V", v - 1.0, U);
        cr_assert_leq(fabs(itest_wrap(itest_num(r, "phase_rad") - 0.1)), 1e-4);
        json_t *b = json_object_get(r, "budget");
        const char *want[] = {"typeA", "gain", "freqresp", "reference"};
        for (size_t w = 0; w < 4; w++) {
            int found = 0;
            for (size_t j = 0; j < json_array_size(b); j++)
                found |= !strcmp(json_string_value(json_object_get(json_array_get(b, j), "name")),
                                 want[w]);
            cr_assert(found, "budget lacks %s", want[w]);
        }
    }
    cr_assert(found_v, "no summary of the ratio measurement");
    json_decref(recs);
    free(out);
    itest_dir_clean();
}

/*
 * --mc N: the Monte Carlo check of every final summary.  For the 1 V
 * fundamental the model is linear to ~u/r = 1e-6, so the MC standard
 * deviation equals the analytic u_r times sqrt(nu / (nu - 2)): Supplement 1
 * samples a Type A input with nu dof from a scaled t distribution, whose
 * standard deviation is u sqrt(nu / (nu - 2)) (1.021 for nu = 49), while the
 * GUM's u is s / sqrt(n).  Sampling error: sd(u_mc)/u ~ 1/sqrt(2M) = 2.2e-3
 * for M = 1e5; bound 5 sd = 1.1e-2.  For an
 * absent harmonic (r at the noise level) the linearisation fails: r - U_r
 * goes below zero, an impossible amplitude, while the MC interval stays
 * at or above zero.
 */
Test(methods, monte_carlo_check)
{
    itest_dir_make();
    itest_simulate("mc",
                   "[source]\nkind = sim\nsample_rate_hz = 100000\nseconds = 0.5\nadc_bits = 0\n"
                   "seed = 5\nstart_time = 2026-11-27T00:00:00Z\n[channel.dut]\nindex = 0\n"
                   "[sim.dut]\nfreq_hz = 1000\nrms = 1.0\nnoise_rms = 1e-4\n"
                   "[measure.q]\nchannel = dut\nmethod = dft\nfreq_hz = 1000\n"
                   "harmonics = 1,4\n");
    char *out = itest_replay("mc", "--mc 100000", 0);
    json_t *recs = itest_parse_jsonl(out);
    size_t i;
    json_t *r;
    int n = 0;
    json_array_foreach(recs, i, r)
    {
        if (!itest_is(r, "summary"))
            continue;
        n++;
        int h = (int)json_integer_value(json_object_get(r, "harmonic"));
        json_t *mc = json_object_get(r, "mc");
        cr_assert_not_null(mc, "h%d: no Monte Carlo result", h);
        double u = itest_num(r, "u_r"), umc = itest_num(mc, "u");
        double rr = itest_num(r, "r"), U = itest_num(r, "U_r");
        fprintf(stderr, "h%d: r %.6g, analytic u %.4g [%.6g, %.6g], MC u %.4g [%.6g, %.6g]\n", h,
                rr, u, rr - U, rr + U, umc, itest_num(mc, "lo"), itest_num(mc, "hi"));
        if (h == 1) {
            double nu = itest_num(json_array_get(json_object_get(r, "budget"), 0), "dof");
            cr_assert_leq(fabs(umc / (u * sqrt(nu / (nu - 2))) - 1), 1.1e-2);
        } else {
            cr_assert_lt(rr - U, 0, "the linearised interval should reach below zero here");
            cr_assert_geq(itest_num(mc, "lo"), 0);
        }
    }
    cr_assert_eq(n, 2);
    json_decref(recs);
    free(out);
    itest_dir_clean();
}
