/*
 * Tests of the simulated source: determinism, noise statistics, exact phase,
 * quantisation, drift and offset, timestamps, bad descs, truth JSON,
 * real-time pacing, and flicker (1/f) noise.
 */
#include "hw/source_sim.h"

#include "common/err.h"
#include "common/ratio.h"
#include "dsp/allan.h" /* chi-squared quantiles, OADEV and EDF for the flicker tests */
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 2^-53, the unit roundoff of double. */
#define U53 0x1.0p-53

static const long double two_pi_l = 6.283185307179586476925286766559005768L;

/* One suite-wide timeout only: a per-test .timeout makes the runner of libcriterion
 * 2.4.1 leak 48 bytes with --jobs=2, which fails the sanitizer build. */
TestSuite(sim, .timeout = 300);

/* ---- helpers ------------------------------------------------------------------------------- */

/* One channel, 1 kHz at 48 kS/s with three harmonics and a little noise. */
static struct qes_sim_desc base_desc(void)
{
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = 48000.0;
    d.n_channels = 1;
    d.seed = 42;
    d.start_ns = INT64_C(1700000000000000000);
    struct qes_sim_channel *c = &d.ch[0];
    c->freq_hz = 1000.0;
    c->n_harmonics = 3;
    c->harmonic[0] = 1;
    c->harmonic[1] = 2;
    c->harmonic[2] = 3;
    c->rms[0] = 1.0;
    c->rms[1] = 0.1;
    c->rms[2] = 0.01;
    c->phase_rad[0] = 0.3;
    c->phase_rad[1] = -2.5;
    c->phase_rad[2] = 3.1;
    c->noise_rms = 0.01;
    c->gain = 1.0;
    return d;
}

static struct qes_source *make(const struct qes_sim_desc *d)
{
    char err[512] = "";
    struct qes_source *s = NULL;
    int rc = qes_source_sim_create(d, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "create: %s (%s)", qes_err_name(rc), err);
    cr_assert_not_null(s);
    cr_assert_eq(s->n_channels, d->n_channels);
    cr_assert_eq(s->sample_rate_hz, d->sample_rate_hz);
    return s;
}

/* Read n frames with reads of at most max_n; checks the frame bookkeeping.
 * Returns n * n_channels interleaved samples (caller frees). */
static double *read_frames(struct qes_source *s, uint64_t n, size_t max_n)
{
    const unsigned nc = s->n_channels;
    double *x = malloc((size_t)n * nc * sizeof *x);
    cr_assert_not_null(x);
    uint64_t got = 0;
    while (got < n) {
        struct qes_frame f;
        size_t want = (size_t)(n - got) < max_n ? (size_t)(n - got) : max_n;
        int rc = qes_source_read(s, &f, want);
        cr_assert_eq(rc, 1, "read at %llu: %d", (unsigned long long)got, rc);
        cr_assert_eq(f.first_sample, got);
        cr_assert_eq(f.n_channels, nc);
        cr_assert_eq(f.lost_before, 0);
        cr_assert_eq(f.has_device_time, 0);
        cr_assert(f.n >= 1 && f.n <= want, "n = %zu, want %zu", f.n, want);
        memcpy(x + got * nc, f.samples, f.n * nc * sizeof *x);
        got += f.n;
    }
    return x;
}

static double *run(const struct qes_sim_desc *d, uint64_t n, size_t max_n)
{
    struct qes_source *s = make(d);
    double *x = read_frames(s, n, max_n);
    qes_source_destroy(s);
    return x;
}

/*
 * Reference value of a noise-free, drift-free channel whose frequency is the
 * integer ratio f/fs = fnum/fden, in long double: the cycles (h fnum m mod
 * fden) / fden are exact as long as h fnum m < 2^64, and the rest carries
 * about 2^-64 relative error, far below the tolerance of the tests.
 */
static long double ref_int(const struct qes_sim_channel *c, uint64_t fnum, uint64_t fden,
                           uint64_t m)
{
    long double s = c->offset;
    for (size_t k = 0; k < c->n_harmonics; k++) {
        long double prod = (long double)c->harmonic[k] * (long double)fnum * (long double)m;
        cr_assert(prod < 0x1.0p63L, "reference would not be exact");
        long double cyc = fmodl(prod, (long double)fden) / (long double)fden;
        s += sqrtl(2.0L) * c->rms[k] * cosl(two_pi_l * cyc + c->phase_rad[k]);
    }
    return s;
}

/*
 * Error budget of the generator for the exact phase paths (unit roundoff u):
 * r/q (1 rounding, < u since r/q < 1), times 2 pi (the constant and the
 * product: 2 roundings, 2 pi * 3u ~ 19u), plus phase_k with |phase_k| <= pi
 * (u * 3 pi ~ 9.5u): the argument is within ~29u rad; glibc cos adds < 1 ulp
 * (2u absolute); sqrt(2) * rms and the product add 3u relative; each addition
 * of the harmonic sum, the offset and the drift adds u of the running sum.
 * Total <= (40 + K) u * (sum of amplitudes + |offset|), ~4.7e-15 of it for
 * K = 3 (and the long double reference is exact to ~1e-19).
 */
static double exact_tol(const struct qes_sim_channel *c)
{
    double a = fabs(c->offset);
    for (size_t k = 0; k < c->n_harmonics; k++)
        a += sqrt(2.0) * c->rms[k];
    return (40.0 + (double)c->n_harmonics) * U53 * a;
}

/* ---- determinism --------------------------------------------------------------------------- */

/* Three noisy channels: 1 kHz at 48 kS/s (q = 48, tabulated), 1000.001 Hz
 * (q = 48000000, residues per sample) and noise with offset and drift. */
static struct qes_sim_desc det_desc(unsigned bits)
{
    struct qes_sim_desc d = base_desc();
    d.n_channels = 3;
    d.adc_bits = bits;
    d.ch[0].gain = 1e-6;
    d.ch[1] = d.ch[0];
    d.ch[1].freq_hz = 1000.001;
    d.ch[1].noise_rms = 0.3;
    /* no harmonics, noise only, with offset and drift */
    d.ch[2] = d.ch[0];
    d.ch[2].n_harmonics = 0;
    d.ch[2].offset = 0.25;
    d.ch[2].drift_per_s = -0.5;
    return d;
}

Test(sim, same_seed_same_samples)
{
    for (unsigned bits = 0; bits <= 24; bits += 24) {
        struct qes_sim_desc d = det_desc(bits);
        const uint64_t n = 200000;
        double *a = run(&d, n, 65536);
        double *b = run(&d, n, 65536);
        cr_assert(memcmp(a, b, (size_t)n * d.n_channels * sizeof *a) == 0,
                  "bits %u: two runs with one seed differ", bits);
        free(a);
        free(b);
    }
}

Test(sim, chunk_size_does_not_change_samples)
{
    /* odd chunk sizes make the cached second Gaussian of a pair cross reads;
     * 1 << 20 is larger than the internal buffer (64 Ki frames) */
    static const size_t chunks[] = {1000, 65536, 7, 1, 1u << 20};
    for (unsigned bits = 0; bits <= 24; bits += 24) {
        struct qes_sim_desc d = det_desc(bits);
        const uint64_t n = 150001;
        double *ref = run(&d, n, 65536);
        for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
            double *x = run(&d, n, chunks[i]);
            cr_assert(memcmp(ref, x, (size_t)n * d.n_channels * sizeof *x) == 0,
                      "bits %u: chunk %zu gives other samples than 65536", bits, chunks[i]);
            free(x);
        }
        free(ref);
    }
}

Test(sim, large_max_n_is_capped_to_internal_buffer)
{
    struct qes_sim_desc d = base_desc();
    struct qes_source *s = make(&d);
    struct qes_frame f;
    cr_assert_eq(qes_source_read(s, &f, (size_t)1 << 24), 1);
    cr_assert(f.n >= 1 && f.n <= 65536, "n = %zu", f.n);
    qes_source_destroy(s);
}

Test(sim, different_seeds_differ)
{
    struct qes_sim_desc d = det_desc(0);
    const uint64_t n = 100000;
    double *a = run(&d, n, 65536);
    d.seed = 43;
    double *b = run(&d, n, 65536);
    /* with noise on every channel two seeds agree on a sample only by chance
     * (probability ~0 for continuous values) */
    size_t same = 0;
    for (size_t i = 0; i < (size_t)n * d.n_channels; i++)
        same += a[i] == b[i];
    cr_assert_eq(same, 0, "%zu samples equal across seeds", same);
    free(a);
    free(b);
}

Test(sim, channel_noise_does_not_depend_on_other_channels)
{
    /* channel 0 of a 1-channel and of a 3-channel source are the same stream */
    struct qes_sim_desc d1 = det_desc(0);
    d1.n_channels = 1;
    struct qes_sim_desc d3 = det_desc(0);
    d3.ch[1].noise_rms = 0.0; /* another channel drawing less must not matter */
    const uint64_t n = 50000;
    double *a = run(&d1, n, 4096);
    double *b = run(&d3, n, 1000);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(a[i], b[3 * i], "sample %zu", i);
    free(a);
    free(b);
}

/* ---- noise --------------------------------------------------------------------------------- */

Test(sim, noise_statistics)
{
    /*
     * Two channels of pure white noise, sigma = 0.5, N = 1e6 samples each.
     * Every bound is 5 standard errors of its estimator under the null
     * hypothesis of i.i.d. N(0, sigma^2) (false alarm ~6e-7 per check; the
     * seed is fixed, so the outcome is too):
     *   mean:             se = sigma / sqrt(N)
     *   std / sigma - 1:  se = 1 / sqrt(2 N)
     *   kurtosis - 3:     se = sqrt(24 / N)
     *   lag-1 autocorrelation, cross-correlation: se = 1 / sqrt(N)
     */
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = 1e6;
    d.n_channels = 2;
    d.seed = 0x0123456789abcdefULL;
    d.ch[0].noise_rms = 0.5;
    d.ch[1].noise_rms = 0.5;
    const size_t n = 1000000;
    const double sigma = 0.5;
    double *x = run(&d, n, 65536);

    double mean[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        mean[0] += x[2 * i];
        mean[1] += x[2 * i + 1];
    }
    mean[0] /= (double)n;
    mean[1] /= (double)n;
    for (int c = 0; c < 2; c++) {
        double m2 = 0, m4 = 0, lag = 0;
        for (size_t i = 0; i < n; i++) {
            double e = x[2 * i + c] - mean[c];
            m2 += e * e;
            m4 += e * e * e * e;
            if (i > 0)
                lag += e * (x[2 * (i - 1) + c] - mean[c]);
        }
        double var = m2 / (double)n;
        double sd = sqrt(m2 / (double)(n - 1));
        double kurt = (m4 / (double)n) / (var * var);
        double r1 = lag / m2;
        cr_assert(fabs(mean[c]) < 5.0 * sigma / sqrt((double)n), "ch %d mean %g", c, mean[c]);
        cr_assert(fabs(sd / sigma - 1.0) < 5.0 / sqrt(2.0 * (double)n), "ch %d std %g", c, sd);
        cr_assert(fabs(kurt - 3.0) < 5.0 * sqrt(24.0 / (double)n), "ch %d kurtosis %g", c, kurt);
        cr_assert(fabs(r1) < 5.0 / sqrt((double)n), "ch %d lag-1 autocorrelation %g", c, r1);
    }
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double a = x[2 * i] - mean[0], b = x[2 * i + 1] - mean[1];
        sxy += a * b;
        sxx += a * a;
        syy += b * b;
    }
    double rho = sxy / sqrt(sxx * syy);
    cr_assert(fabs(rho) < 5.0 / sqrt((double)n), "channels correlated: rho = %g", rho);
    free(x);
}

/* ---- exact phase --------------------------------------------------------------------------- */

Test(sim, exact_phase_up_to_1e9_samples)
{
    /* f/fs = 1/48 (the tabulated exact path); noise-free, unquantised */
    struct qes_sim_desc d = base_desc();
    d.ch[0].noise_rms = 0.0;
    d.ch[0].harmonic[2] = 7;
    d.ch[0].offset = 0.125;
    const uint64_t n_total = UINT64_C(1000000000) + 100000;
    d.n_frames = n_total;
    const struct qes_sim_channel *c = &d.ch[0];
    const double tol = exact_tol(c);
    struct qes_source *s = make(&d);
    struct qes_frame f;
    uint64_t m = 0;
    double worst = 0;
    int rc;
    while ((rc = qes_source_read(s, &f, 65536)) == 1) {
        cr_assert_eq(f.first_sample, m);
        /* near the end every sample, before that the first of each read */
        const size_t check = f.first_sample + f.n > UINT64_C(1000000000) ? f.n : 1;
        for (size_t i = 0; i < check; i++) {
            double err = fabs((double)((long double)f.samples[i] -
                                       ref_int(c, 1000, 48000, f.first_sample + i)));
            worst = err > worst ? err : worst;
            cr_assert(err <= tol, "m = %llu: error %g > %g",
                      (unsigned long long)(f.first_sample + i), err, tol);
        }
        /* periodicity: 48 samples are one period of every harmonic */
        for (size_t i = 0; i + 48 < f.n; i += 997)
            cr_assert_eq(f.samples[i], f.samples[i + 48]);
        m += f.n;
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(m, n_total);
    cr_log_info("exact phase (table path): worst error %.3g (bound %.3g)", worst, tol);
    qes_source_destroy(s);
}

Test(sim, exact_phase_direct_path_and_periodicity)
{
    /* f/fs = 1001 / 200000: q = 200000 is above the table size, so the
     * residues are advanced per sample; three periods */
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = 200000.0;
    d.n_channels = 1;
    struct qes_sim_channel *c = &d.ch[0];
    c->freq_hz = 1001.0;
    c->n_harmonics = 3;
    c->harmonic[0] = 1;
    c->harmonic[1] = 5;
    c->harmonic[2] = 99; /* 99 * 1001 = 99099 < 100000 */
    c->rms[0] = 2.0;
    c->rms[1] = 0.5;
    c->rms[2] = 0.25;
    c->phase_rad[0] = -0.0;
    c->phase_rad[1] = 1.0;
    c->phase_rad[2] = -3.0;
    const uint64_t q = 200000;
    const uint64_t n = 3 * q + 17;
    double *x = run(&d, n, 30000);
    const double tol = exact_tol(c);
    double worst = 0;
    for (uint64_t m = 0; m < n; m++) {
        double err = fabs((double)((long double)x[m] - ref_int(c, 1001, 200000, m)));
        worst = err > worst ? err : worst;
        cr_assert(err <= tol, "m = %llu: error %g > %g", (unsigned long long)m, err, tol);
    }
    for (uint64_t m = 0; m + q < n; m++)
        cr_assert_eq(x[m], x[m + q], "sample %llu and one period later differ",
                     (unsigned long long)m);
    cr_log_info("exact phase (direct path): worst error %.3g (bound %.3g)", worst, tol);
    free(x);
}

Test(sim, long_double_path_without_ratio)
{
    /* f/fs has no ratio with q <= 1e9 within 1e-15: the cycles are computed in
     * long double.  The reference orders the products differently; both carry
     * ~2^-64 relative error on <= 3 cycles, far below the bound of exact_tol. */
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = 1e6;
    d.n_channels = 1;
    struct qes_sim_channel *c = &d.ch[0];
    c->freq_hz = 1.2345678901234567;
    c->n_harmonics = 2;
    c->harmonic[0] = 1;
    c->harmonic[1] = 2;
    c->rms[0] = 1.0;
    c->rms[1] = 0.5;
    c->phase_rad[1] = 0.5;
    uint64_t p, q;
    cr_assert_neq(qes_ratio_approx(c->freq_hz / d.sample_rate_hz, 1000000000, 1e-15, &p, &q), 0,
                  "precondition: this frequency must not have an exact ratio");
    const uint64_t n = 1000000;
    double *x = run(&d, n, 65536);
    const double tol = exact_tol(c);
    for (uint64_t m = 0; m < n; m += 7) {
        long double r = 0;
        for (size_t k = 0; k < c->n_harmonics; k++) {
            long double cyc =
                    fmodl((long double)c->harmonic[k] * (long double)m * (long double)c->freq_hz,
                          1e6L) /
                    1e6L;
            r += sqrtl(2.0L) * c->rms[k] * cosl(two_pi_l * cyc + c->phase_rad[k]);
        }
        double err = fabs((double)((long double)x[m] - r));
        cr_assert(err <= tol, "m = %llu: error %g > %g", (unsigned long long)m, err, tol);
    }
    free(x);
}

/* ---- quantisation -------------------------------------------------------------------------- */

static struct qes_sim_desc quant_desc(unsigned bits, double gain, double rms)
{
    struct qes_sim_desc d = base_desc();
    d.adc_bits = bits;
    d.ch[0].gain = gain;
    d.ch[0].rms[0] = rms;
    d.ch[0].noise_rms = 0.05;
    return d;
}

Test(sim, quantised_counts_are_rounded_values)
{
    /* gain = 2^-14: count * gain and v / gain are exact, so the bound
     * |count * gain - v| <= gain / 2 holds without any slack */
    const double gain = 0x1.0p-14;
    struct qes_sim_desc dq = quant_desc(16, gain, 1.0);
    struct qes_sim_desc dv = dq;
    dv.adc_bits = 0; /* the same samples, unquantised */
    const uint64_t n = 100000;
    double *cq = run(&dq, n, 65536);
    double *v = run(&dv, n, 65536);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(cq[i], floor(cq[i]), "sample %zu: count %.17g not an integer", i, cq[i]);
        cr_assert(cq[i] > -32768.0 && cq[i] < 32767.0, "unexpected clipping");
        cr_assert(fabs(cq[i] * gain - v[i]) <= gain / 2, "sample %zu: %.17g vs %.17g", i,
                  cq[i] * gain, v[i]);
    }
    free(cq);
    free(v);
    struct qes_source *s = make(&dq);
    free(read_frames(s, 1000, 1000));
    cr_assert_eq(qes_source_sim_clipped(s), 0);
    qes_source_destroy(s);
}

Test(sim, quantiser_rounds_halves_away_from_zero)
{
    /* offset-only channels at exactly +-2.5 and +-3.5 counts (gain 0.25 and the
     * values are exact binary fractions): round() gives +-3 and +-4, where
     * round-half-even (nearbyint) would give +-2 and +-4 */
    static const double in[] = {2.5, -2.5, 3.5, -3.5, 0.5, -0.5};
    static const double want[] = {3, -3, 4, -4, 1, -1};
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = 1000;
    d.n_channels = 6;
    d.adc_bits = 12;
    for (unsigned c = 0; c < 6; c++) {
        d.ch[c].gain = 0.25;
        d.ch[c].offset = in[c] * 0.25;
    }
    double *x = run(&d, 10, 10);
    for (unsigned c = 0; c < 6; c++)
        cr_assert_eq(x[c], want[c], "%g counts -> %g, want %g", in[c], x[c], want[c]);
    free(x);
}

Test(sim, clipping_at_the_rails)
{
    static const unsigned bits_list[] = {2, 8, 32};
    for (size_t b = 0; b < sizeof bits_list / sizeof bits_list[0]; b++) {
        const unsigned bits = bits_list[b];
        const double lo = -ldexp(1.0, (int)bits - 1), hi = ldexp(1.0, (int)bits - 1) - 1.0;
        /* peak 1.41 * 2 V against full scale: 283 counts at 8 bits */
        const double gain = bits == 32 ? 1e-9 : (bits == 8 ? 0.01 : 0.5);
        struct qes_sim_desc dq = quant_desc(bits, gain, 2.0);
        struct qes_sim_desc dv = dq;
        dv.adc_bits = 0;
        const uint64_t n = 20000;
        struct qes_source *s = make(&dq);
        double *cq = read_frames(s, n, 4096);
        double *v = run(&dv, n, 4096);
        uint64_t expect_clipped = 0;
        int hit_lo = 0, hit_hi = 0;
        for (size_t i = 0; i < n; i++) {
            double r = round(v[i] / gain);
            if (r > hi || r < lo)
                expect_clipped++;
            double want = r > hi ? hi : (r < lo ? lo : r);
            cr_assert_eq(cq[i], want, "bits %u sample %zu: %.17g want %.17g", bits, i, cq[i], want);
            hit_lo |= cq[i] == lo;
            hit_hi |= cq[i] == hi;
        }
        cr_assert(hit_lo && hit_hi, "bits %u: rails not reached", bits);
        cr_assert(expect_clipped > 0);
        cr_assert_eq(qes_source_sim_clipped(s), expect_clipped, "bits %u: clipped %llu want %llu",
                     bits, (unsigned long long)qes_source_sim_clipped(s),
                     (unsigned long long)expect_clipped);
        qes_source_destroy(s);
        free(cq);
        free(v);
    }
}

/* ---- drift, offset, timestamps, end of stream ---------------------------------------------- */

Test(sim, drift_and_offset)
{
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = 1000.0;
    d.n_channels = 2;
    d.ch[0].offset = 1.5;
    d.ch[0].drift_per_s = 0.25;
    d.ch[1].offset = -2e-6;
    d.ch[1].drift_per_s = 3e-9;
    const uint64_t n = 100000;
    double *x = run(&d, n, 65536);
    for (uint64_t m = 0; m < n; m++) {
        for (unsigned c = 0; c < 2; c++) {
            /* offset + drift * (m / fs): two roundings and an addition, within
             * 3u of the magnitude of the terms */
            long double want = (long double)d.ch[c].offset +
                               (long double)d.ch[c].drift_per_s * (long double)m / 1000.0L;
            long double mag = fabsl((long double)d.ch[c].offset) +
                              fabsl((long double)d.ch[c].drift_per_s * (long double)m / 1000.0L);
            cr_assert(fabsl((long double)x[2 * m + c] - want) <= 3.0L * U53 * mag,
                      "ch %u m %llu: %.17g vs %.17Lg", c, (unsigned long long)m, x[2 * m + c],
                      want);
        }
    }
    cr_assert_eq(x[0], 1.5);
    cr_assert_eq(x[2 * 99999], 1.5 + 0.25 * 99.999);
    free(x);
}

Test(sim, timestamps_and_end_of_stream)
{
    struct qes_sim_desc d = base_desc();
    d.sample_rate_hz = 3.0; /* 1/3 s per sample: rounding of the timestamps shows */
    d.ch[0].freq_hz = 1.0;
    d.ch[0].n_harmonics = 1;
    d.n_frames = 1000;
    struct qes_source *s = make(&d);
    static const size_t expect_n[] = {300, 300, 300, 100};
    struct qes_frame f;
    uint64_t m = 0;
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(qes_source_read(s, &f, 300), 1);
        cr_assert_eq(f.n, expect_n[i]);
        cr_assert_eq(f.first_sample, m);
        /* start + round(m * 1e9 / fs): m = 300 -> exactly 100 s */
        int64_t want = d.start_ns + (int64_t)llroundl((long double)m * 1e9L / 3.0L);
        cr_assert_eq(f.host_time_ns, want);
        m += f.n;
    }
    cr_assert_eq(qes_source_read(s, &f, 300), 0);
    cr_assert_eq(qes_source_read(s, &f, 300), 0, "end of stream is sticky");
    qes_source_destroy(s);

    /* m = 1 and 2: 333333333.33 and 666666666.67 ns round to the nearest */
    d.n_frames = 0;
    s = make(&d);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(qes_source_read(s, &f, 1), 1);
    cr_assert_eq(f.first_sample, 2);
    cr_assert_eq(f.host_time_ns, d.start_ns + 666666667);
    qes_source_destroy(s);
}

Test(sim, read_rejects_zero_max_n)
{
    struct qes_sim_desc d = base_desc();
    struct qes_source *s = make(&d);
    struct qes_frame f;
    cr_assert_eq(qes_source_read(s, &f, 0), QES_EINVAL);
    cr_assert(strstr(s->errmsg, "max_n") != NULL, "%s", s->errmsg);
    qes_source_destroy(s);
}

/* ---- bad descs ----------------------------------------------------------------------------- */

enum bad_field {
    BAD_FS,
    BAD_NCH,
    BAD_BITS,
    BAD_FREQ,
    BAD_NH,
    BAD_H,
    BAD_RMS,
    BAD_PHASE,
    BAD_NOISE,
    BAD_OFFSET,
    BAD_DRIFT,
    BAD_GAIN,
};

struct bad_case {
    enum bad_field field;
    double value;
    unsigned uvalue; /* for the integer fields */
    char expect[80]; /* substring of the message */
};

ParameterizedTestParameters(sim, bad_desc)
{
    static struct bad_case cases[] = {
            {BAD_FS, 0.0, 0, "sample_rate_hz"},
            {BAD_FS, -48000.0, 0, "sample_rate_hz"},
            {BAD_FS, NAN, 0, "sample_rate_hz"},
            {BAD_FS, INFINITY, 0, "sample_rate_hz"},
            {BAD_NCH, 0, 0, "n_channels"},
            {BAD_NCH, 0, 17, "n_channels"},
            {BAD_BITS, 0, 1, "adc_bits"},
            {BAD_BITS, 0, 33, "adc_bits"},
            {BAD_FREQ, -1.0, 0, "channel 1: freq_hz"},
            {BAD_FREQ, NAN, 0, "channel 1: freq_hz"},
            {BAD_FREQ, INFINITY, 0, "channel 1: freq_hz"},
            {BAD_NH, 0, 33, "channel 1: n_harmonics"},
            {BAD_H, 0, 0, "channel 1: harmonic[1]"},
            {BAD_H, 0, 24, "channel 1: harmonic[1] = 24"}, /* 24 kHz = fs / 2 */
            {BAD_H, 0, 100, "channel 1: harmonic[1] = 100"},
            {BAD_RMS, -1e-9, 0, "channel 1: rms[1]"},
            {BAD_RMS, NAN, 0, "channel 1: rms[1]"},
            {BAD_RMS, INFINITY, 0, "channel 1: rms[1]"},
            {BAD_PHASE, NAN, 0, "channel 1: phase_rad[1]"},
            {BAD_PHASE, -INFINITY, 0, "channel 1: phase_rad[1]"},
            {BAD_NOISE, -1e-12, 0, "channel 1: noise_rms"},
            {BAD_NOISE, NAN, 0, "channel 1: noise_rms"},
            {BAD_OFFSET, INFINITY, 0, "channel 1: offset"},
            {BAD_OFFSET, NAN, 0, "channel 1: offset"},
            {BAD_DRIFT, NAN, 0, "channel 1: drift_per_s"},
            {BAD_DRIFT, -INFINITY, 0, "channel 1: drift_per_s"},
            {BAD_GAIN, 0.0, 0, "channel 1: gain"},
            {BAD_GAIN, -1.0, 0, "channel 1: gain"},
            {BAD_GAIN, NAN, 0, "channel 1: gain"},
            {BAD_GAIN, INFINITY, 0, "channel 1: gain"},
    };
    return cr_make_param_array(struct bad_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct bad_case *bc, sim, bad_desc)
{
    struct qes_sim_desc d = base_desc();
    d.n_channels = 2;
    d.adc_bits = 16;
    d.ch[1] = d.ch[0];
    struct qes_sim_channel *c = &d.ch[1];
    switch (bc->field) {
    case BAD_FS:
        d.sample_rate_hz = bc->value;
        break;
    case BAD_NCH:
        d.n_channels = bc->uvalue;
        break;
    case BAD_BITS:
        d.adc_bits = bc->uvalue;
        break;
    case BAD_FREQ:
        c->freq_hz = bc->value;
        break;
    case BAD_NH:
        c->n_harmonics = bc->uvalue;
        break;
    case BAD_H:
        c->harmonic[1] = bc->uvalue;
        break;
    case BAD_RMS:
        c->rms[1] = bc->value;
        break;
    case BAD_PHASE:
        c->phase_rad[1] = bc->value;
        break;
    case BAD_NOISE:
        c->noise_rms = bc->value;
        break;
    case BAD_OFFSET:
        c->offset = bc->value;
        break;
    case BAD_DRIFT:
        c->drift_per_s = bc->value;
        break;
    case BAD_GAIN:
        c->gain = bc->value;
        break;
    }
    char err[512] = "";
    struct qes_source *s = (struct qes_source *)&d; /* must be reset to NULL */
    int rc = qes_source_sim_create(&d, &s, err, sizeof err);
    cr_assert_eq(rc, QES_EINVAL, "rc %s", qes_err_name(rc));
    cr_assert_null(s);
    cr_assert(strstr(err, bc->expect) != NULL, "message \"%s\" does not contain \"%s\"", err,
              bc->expect);
    /* no buffer for the message: still the code, no crash */
    cr_assert_eq(qes_source_sim_create(&d, &s, NULL, 0), QES_EINVAL);
}

Test(sim, null_arguments_and_valid_edge_cases)
{
    struct qes_sim_desc d = base_desc();
    struct qes_source *s = NULL;
    char err[256];
    cr_assert_eq(qes_source_sim_create(NULL, &s, err, sizeof err), QES_EINVAL);
    cr_assert_eq(qes_source_sim_create(&d, NULL, err, sizeof err), QES_EINVAL);
    /* valid edges: gain 0 without quantisation, 16 channels, 32 harmonics,
     * f = 0 (DC through cos(phase)), 2 and 32 bits */
    d.ch[0].gain = 0.0;
    cr_assert_eq(qes_source_sim_create(&d, &s, err, sizeof err), 0, "%s", err);
    qes_source_destroy(s);
    d.ch[0].gain = 1.0;
    d.n_channels = QES_SIM_MAX_CHANNELS;
    for (unsigned c = 1; c < QES_SIM_MAX_CHANNELS; c++)
        d.ch[c] = d.ch[0];
    d.ch[3].freq_hz = 100.0; /* 32 harmonics below 24 kHz */
    d.ch[3].n_harmonics = QES_SIM_MAX_HARMONICS;
    for (unsigned k = 0; k < QES_SIM_MAX_HARMONICS; k++) {
        d.ch[3].harmonic[k] = k + 1;
        d.ch[3].rms[k] = 1.0 / (k + 1);
    }
    d.ch[4].freq_hz = 0.0;
    d.ch[4].n_harmonics = 1;
    d.ch[4].phase_rad[0] = 0.0;
    d.ch[4].noise_rms = 0.0;
    d.adc_bits = 2;
    cr_assert_eq(qes_source_sim_create(&d, &s, err, sizeof err), 0, "%s", err);
    qes_source_destroy(s);
    d.adc_bits = 32;
    d.ch[0].gain = 1e-9;
    s = make(&d);
    double *x = read_frames(s, 1000, 300);
    /* DC channel: sqrt(2) * 1 * cos(0) = sqrt(2) V in counts of gain 1 */
    cr_assert_eq(x[4], round(sqrt(2.0)));
    free(x);
    qes_source_destroy(s);
}

/* ---- truth JSON ---------------------------------------------------------------------------- */

static void expect_bits(json_t *o, const char *key, double want)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_real(v), "%s is not a real", key);
    double got = json_real_value(v);
    cr_assert(memcmp(&got, &want, sizeof got) == 0, "%s: %.17g != %.17g (bits)", key, got, want);
}

static json_t *truth(const struct qes_sim_desc *d)
{
    char *text = qes_sim_truth_json(d);
    cr_assert_not_null(text);
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    cr_assert_not_null(root, "truth does not parse: %s: %s", je.text, text);
    free(text);
    cr_assert(json_is_object(root));
    return root;
}

Test(sim, truth_json_round_trips)
{
    struct qes_sim_desc d = base_desc();
    d.n_channels = 2;
    d.adc_bits = 24;
    d.seed = UINT64_C(1234567890123);
    d.ch[0].freq_hz = 1000.0 / 3.0;
    d.ch[0].rms[1] = 0.1;
    d.ch[0].phase_rad[0] = -0.0;
    d.ch[0].phase_rad[2] = nextafter(0x1.921fb54442d18p+1, 0.0) /* just below pi */;
    d.ch[0].offset = 5e-324; /* smallest denormal */
    d.ch[0].drift_per_s = -1.2345678901234567e-7;
    d.ch[0].gain = 1.1920928955078125e-7 / 3.0;
    d.ch[1] = d.ch[0];
    d.ch[1].freq_hz = 49.999999999999993;
    d.ch[1].n_harmonics = 0;
    d.ch[1].noise_rms = 1e300;
    d.ch[1].offset = -1.7976931348623157e308;
    d.ch[1].gain = 0.1 + 0.2;

    json_t *root = truth(&d);
    json_t *seed = json_object_get(root, "seed");
    cr_assert(json_is_integer(seed));
    cr_assert_eq(json_integer_value(seed), 1234567890123LL);
    expect_bits(root, "sample_rate_hz", d.sample_rate_hz);
    cr_assert_eq(json_integer_value(json_object_get(root, "adc_bits")), 24);
    json_t *chans = json_object_get(root, "channels");
    cr_assert(json_is_array(chans));
    cr_assert_eq(json_array_size(chans), 2);
    for (unsigned c = 0; c < 2; c++) {
        const struct qes_sim_channel *ch = &d.ch[c];
        json_t *jc = json_array_get(chans, c);
        cr_assert_eq(json_integer_value(json_object_get(jc, "index")), (json_int_t)c);
        expect_bits(jc, "freq_hz", ch->freq_hz);
        expect_bits(jc, "noise_rms", ch->noise_rms);
        expect_bits(jc, "offset", ch->offset);
        expect_bits(jc, "drift_per_s", ch->drift_per_s);
        expect_bits(jc, "gain", ch->gain);
        json_t *jh = json_object_get(jc, "harmonics");
        cr_assert(json_is_array(jh));
        cr_assert_eq(json_array_size(jh), ch->n_harmonics);
        for (size_t k = 0; k < ch->n_harmonics; k++) {
            json_t *e = json_array_get(jh, k);
            cr_assert_eq(json_integer_value(json_object_get(e, "h")), (json_int_t)ch->harmonic[k]);
            expect_bits(e, "rms", ch->rms[k]);
            expect_bits(e, "phase_rad", ch->phase_rad[k]);
        }
    }
    json_decref(root);
}

Test(sim, truth_json_large_seed_is_a_string)
{
    struct qes_sim_desc d = base_desc();
    d.seed = UINT64_MAX;
    json_t *root = truth(&d);
    json_t *seed = json_object_get(root, "seed");
    cr_assert(json_is_string(seed));
    cr_assert_str_eq(json_string_value(seed), "18446744073709551615");
    json_decref(root);
    d.seed = (uint64_t)INT64_MAX; /* the largest integer seed */
    root = truth(&d);
    cr_assert_eq(json_integer_value(json_object_get(root, "seed")), INT64_MAX);
    json_decref(root);
}

Test(sim, truth_json_rejects_impossible_desc)
{
    struct qes_sim_desc d = base_desc();
    d.n_channels = QES_SIM_MAX_CHANNELS + 1;
    cr_assert_null(qes_sim_truth_json(&d));
    cr_assert_null(qes_sim_truth_json(NULL));
    d = base_desc();
    d.ch[0].offset = NAN;
    cr_assert_null(qes_sim_truth_json(&d));
}

/* ---- real time ----------------------------------------------------------------------------- */

Test(sim, realtime_pacing)
{
    /* 0.2 s of samples at 10 kS/s must take at least 0.2 s (0.19 s allows for
     * the clock reading before the first read); a lower bound only, the
     * machine may be slow */
    struct qes_sim_desc d = base_desc();
    d.sample_rate_hz = 10000.0;
    d.ch[0].freq_hz = 50.0;
    d.n_frames = 2000;
    d.realtime = 1;
    struct qes_source *s = make(&d);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct qes_frame f;
    uint64_t n = 0;
    int rc;
    while ((rc = qes_source_read(s, &f, 100)) == 1)
        n += f.n;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_eq(rc, 0);
    cr_assert_eq(n, 2000);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_assert(dt >= 0.19, "2000 samples at 10 kS/s took only %.3f s", dt);
    qes_source_destroy(s);
}

/* ---- flicker ------------------------------------------------------------------------------- */

/* FNV-1a 64 of the sample bit patterns (byte order independent). */
static uint64_t fnv_samples(const double *x, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        uint64_t b;
        memcpy(&b, &x[i], sizeof b);
        for (int k = 0; k < 8; k++) {
            h ^= (b >> (8 * k)) & 0xffu;
            h *= UINT64_C(0x100000001b3);
        }
    }
    return h;
}

Test(sim, flicker_off_keeps_the_samples)
{
    /*
     * The flicker has a random stream of its own, so a desc with
     * flicker_rms = 0 gives the samples of the generator before flicker
     * existed.  The hashes are of det_desc(bits), 200000 frames, taken with
     * the source at commit ff503d2 (before flicker_rms) on glibc / x86-64;
     * like every bit-exact check of this file they assume the same libm (cos,
     * log) and no FMA contraction.
     */
    static const struct {
        unsigned bits;
        uint64_t hash;
    } golden[] = {{0, UINT64_C(0x4bcd104d1e3e6736)}, {24, UINT64_C(0xb431f4484b58a688)}};
    const uint64_t n = 200000;
    for (size_t g = 0; g < sizeof golden / sizeof golden[0]; g++) {
        struct qes_sim_desc d = det_desc(golden[g].bits);
        double *a = run(&d, n, 65536);
        const uint64_t h = fnv_samples(a, (size_t)n * d.n_channels);
        cr_assert_eq(h, golden[g].hash, "bits %u: hash 0x%016llx, before flicker 0x%016llx",
                     golden[g].bits, (unsigned long long)h, (unsigned long long)golden[g].hash);
        /* flicker on channel 1 changes channel 1 only */
        d.ch[1].flicker_rms = 0.5;
        double *b = run(&d, n, 4096);
        size_t diff1 = 0;
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(a[3 * i], b[3 * i], "bits %u: channel 0 sample %zu", golden[g].bits, i);
            cr_assert_eq(a[3 * i + 2], b[3 * i + 2], "bits %u: channel 2 sample %zu",
                         golden[g].bits, i);
            diff1 += a[3 * i + 1] != b[3 * i + 1];
        }
        /* 0.5 V on a 1 V sine against a 1e-6 V step (24 bits) or exact doubles: the
         * flicker shows in nearly every sample (its zero crossings aside) */
        cr_assert_geq(diff1, n / 2, "bits %u: flicker changed only %zu samples", golden[g].bits,
                      diff1);
        free(a);
        free(b);
    }
}

/* Channel 0: DC level 0.5 V with flicker; channel 1: a 50 Hz sine with flicker on its
 * amplitude and white noise; fs = 1 kHz. */
static struct qes_sim_desc flicker_desc(uint64_t seed, double white)
{
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = 1000.0;
    d.n_channels = 2;
    d.seed = seed;
    d.ch[0].offset = 0.5;
    d.ch[0].flicker_rms = 1e-3;
    d.ch[0].gain = 1.0;
    d.ch[1].freq_hz = 50.0;
    d.ch[1].n_harmonics = 2;
    d.ch[1].harmonic[0] = 1;
    d.ch[1].harmonic[1] = 3;
    d.ch[1].rms[0] = 2.0;
    d.ch[1].rms[1] = 0.2;
    d.ch[1].phase_rad[0] = 0.4;
    d.ch[1].phase_rad[1] = -1.0;
    d.ch[1].flicker_rms = 1e-3;
    d.ch[1].noise_rms = white;
    d.ch[1].gain = 1.0;
    return d;
}

Test(sim, flicker_deterministic_and_chunk_independent)
{
    /* the filter states and the Gaussian spare carry across reads, also within a
     * pair of Gaussians (chunks of 1 and 7) */
    static const size_t chunks[] = {1, 7, 1000, 65536, (size_t)1 << 20};
    struct qes_sim_desc d = flicker_desc(7, 0.01);
    const uint64_t n = 150001;
    double *ref = run(&d, n, 65536);
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        double *x = run(&d, n, chunks[i]);
        cr_assert(memcmp(ref, x, (size_t)n * d.n_channels * sizeof *x) == 0,
                  "chunk %zu gives other samples than 65536", chunks[i]);
        free(x);
    }
    d.seed = 8;
    double *y = run(&d, n, 65536);
    size_t same = 0;
    for (size_t i = 0; i < (size_t)n * d.n_channels; i++)
        same += ref[i] == y[i];
    cr_assert_eq(same, 0, "%zu samples equal across seeds", same);
    free(y);
    free(ref);
}

Test(sim, flicker_one_second_mean)
{
    /*
     * flicker_rms is the standard deviation of the mean over one second (1000
     * samples at 1 kHz), over the ensemble, of a zero-mean Gaussian process:
     * with M independent seeds, sum y_i^2 / flicker_rms^2 ~ chi2(M) exactly.
     * Checked in the first second (the state before sample 0 is stationary)
     * and in the sixth, for the level (channel 0: y = mean - offset) and for
     * the amplitude (channel 1: y = (sqrt(2)/N) sum v cos(2 pi f m / fs +
     * phase_0) - rms_0, the along component of the coherent DFT over 50
     * periods, which is rms_0 + mean(phi) + (1/N) sum phi cos(2(...)); the
     * last term, phi at 2f = 100 Hz, has ~1e-3 of the variance of mean(phi)).
     * Bounds: the two-sided 99.9 % chi-squared interval at M (4 checks: family
     * false alarm 0.4 %).  Channels must be independent: the correlation of
     * their first-second means, ~N(0, 1/M), within 3.29 / sqrt(M) (99.9 %).
     */
    const unsigned M = 1000;
    const size_t N = 1000, n = 6 * N;
    const double sigma = 1e-3;
    double ss[2][2] = {{0, 0}, {0, 0}}, s01 = 0;
    for (unsigned r = 0; r < M; r++) {
        struct qes_sim_desc d = flicker_desc(100 + r, 0.0);
        double *x = run(&d, n, 4096);
        double y[2][2];
        for (int w = 0; w < 2; w++) {
            const size_t m0 = w ? 5 * N : 0;
            double lv = 0, am = 0;
            for (size_t i = 0; i < N; i++) {
                const size_t m = m0 + i;
                lv += x[2 * m];
                /* 50 Hz at 1 kHz: 20 samples per period, exact phase from m mod 20 */
                const double ph = 2.0 * 3.14159265358979323846 * (double)(m % 20) / 20.0 + 0.4;
                am += x[2 * m + 1] * cos(ph);
            }
            y[w][0] = lv / (double)N - 0.5;
            y[w][1] = sqrt(2.0) * am / (double)N - 2.0;
            for (int c = 0; c < 2; c++)
                ss[w][c] += y[w][c] * y[w][c];
        }
        s01 += y[0][0] * y[0][1];
        free(x);
    }
    const double lo = qes_chi2_quantile(0.0005, M), hi = qes_chi2_quantile(0.9995, M);
    for (int w = 0; w < 2; w++) {
        for (int c = 0; c < 2; c++) {
            const double q = ss[w][c] / (sigma * sigma);
            cr_log_info("flicker %s, second %d: RMS of the 1 s mean %.4g (flicker_rms %g)",
                        c ? "amplitude" : "level", w ? 6 : 1, sqrt(ss[w][c] / M), sigma);
            cr_assert(q >= lo && q <= hi, "%s, second %d: chi2 %.1f outside [%.1f, %.1f] (M = %u)",
                      c ? "amplitude" : "level", w ? 6 : 1, q, lo, hi, M);
        }
    }
    const double rho = s01 / sqrt(ss[0][0] * ss[0][1]);
    cr_assert(fabs(rho) < 3.29 / sqrt((double)M), "channels correlated: %g", rho);
}

Test(sim, flicker_allan_deviation_is_flat)
{
    /*
     * A 1/f power density has an Allan deviation independent of tau.  2^22
     * samples of the level (fs = 1 kHz, flicker_rms = 1), averaged in blocks of
     * 16, OADEV at tau = 16 .. 2^18 samples (m = 1 .. 2^14).  The model's exact
     * ADEV (from the filter coefficients and the stationary covariance, see
     * hw/source_sim.h) over these tau falls from 0.3478 to 0.3404
     * flicker_rms (-2.1 %, the white corner at 6.7e7 samples approaching):
     * the bound is [0.340, 0.348] widened by the two-sided 99.9 %
     * chi-squared interval of each estimate, EDF from Greenhall's algorithm
     * for flicker FM.  White FM would fall by 2^7 over this range and a
     * random walk rise by 2^7; already over tau = 16 .. 1024 samples the
     * bounds pin the slope of log ADEV against log tau within +-0.015 (PSD
     * slope -1 +- 0.03).
     */
    const size_t n = (size_t)1 << 22, B = 16, ny = n / B;
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = 1000.0;
    d.n_channels = 1;
    d.seed = 2024;
    d.ch[0].flicker_rms = 1.0;
    d.ch[0].gain = 1.0;
    double *x = run(&d, n, 65536);
    double *y = malloc(ny * sizeof *y), *ph = malloc((ny + 1) * sizeof *ph);
    cr_assert(y && ph);
    for (size_t i = 0; i < ny; i++) {
        double s = 0;
        for (size_t j = 0; j < B; j++)
            s += x[i * B + j];
        y[i] = s / (double)B;
    }
    cr_assert_eq(qes_allan_freq_to_phase(y, ny, 1.0, ph), 0);
    for (size_t m = 1; m <= ((size_t)1 << 14); m *= 2) {
        double dev;
        cr_assert_eq(qes_allan_dev(QES_ALLAN_OADEV, ph, ny + 1, 1.0, m, &dev, NULL), 0);
        const double edf = qes_allan_edf(QES_ALLAN_OADEV, -1, m, ny + 1);
        cr_assert(isfinite(edf) && edf > 0, "m %zu: edf %g", m, edf);
        const double lo = 0.340 * sqrt(qes_chi2_quantile(0.0005, edf) / edf);
        const double hi = 0.348 * sqrt(qes_chi2_quantile(0.9995, edf) / edf);
        cr_log_info("flicker OADEV(%zu samples) = %.4f flicker_rms (EDF %.0f, bound %.4f .. %.4f)",
                    m * B, dev, edf, lo, hi);
        cr_assert(dev >= lo && dev <= hi, "tau %zu samples: OADEV %.4f outside [%.4f, %.4f]", m * B,
                  dev, lo, hi);
    }
    free(ph);
    free(y);
    free(x);
}

struct flicker_bad {
    int harmonics; /* 0: DC channel; 1: one harmonic with rms_0 = rms0 */
    double rms0;
    double flicker_rms;
    char expect[64];
};

ParameterizedTestParameters(sim, flicker_bad_desc)
{
    static struct flicker_bad cases[] = {
            {0, 0.0, -1e-9, "channel 1: flicker_rms"},
            {0, 0.0, NAN, "channel 1: flicker_rms"},
            {0, 0.0, INFINITY, "channel 1: flicker_rms"},
            {1, 0.0, 1e-3, "channel 1: flicker_rms = 0.001 needs rms[0] > 0"},
    };
    return cr_make_param_array(struct flicker_bad, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct flicker_bad *fb, sim, flicker_bad_desc)
{
    struct qes_sim_desc d = base_desc();
    d.n_channels = 2;
    d.ch[1] = d.ch[0];
    d.ch[1].n_harmonics = (size_t)fb->harmonics;
    d.ch[1].rms[0] = fb->rms0;
    d.ch[1].flicker_rms = fb->flicker_rms;
    char err[512] = "";
    struct qes_source *s = (struct qes_source *)&d;
    cr_assert_eq(qes_source_sim_create(&d, &s, err, sizeof err), QES_EINVAL);
    cr_assert_null(s);
    cr_assert(strstr(err, fb->expect) != NULL, "message \"%s\" does not contain \"%s\"", err,
              fb->expect);
}

Test(sim, flicker_valid_edges_and_truth)
{
    /* flicker on a DC channel needs nothing else; with harmonics rms_0 > 0 suffices even
     * when a later harmonic is 0; fs < 1.5 Hz averages one sample */
    struct qes_sim_desc d = base_desc();
    d.sample_rate_hz = 0.5;
    d.ch[0].freq_hz = 0.05; /* 3rd harmonic 0.15 Hz < fs / 2 */
    d.ch[0].rms[2] = 0.0;
    d.ch[0].flicker_rms = 2.5e-9;
    struct qes_source *s = make(&d);
    double *x = read_frames(s, 100, 100);
    for (size_t i = 0; i < 100; i++)
        cr_assert(isfinite(x[i]));
    free(x);
    qes_source_destroy(s);
    json_t *root = truth(&d);
    expect_bits(json_array_get(json_object_get(root, "channels"), 0), "flicker_rms", 2.5e-9);
    json_decref(root);
}
