/*
 * Tests of dsp/reversal: exact removal of offset and linear drift behind
 * exponential settling transients, Type A and coverage of the group series
 * in white noise over many seeded runs, why overlapping groups are wrong,
 * schedule vs polarity channel, streaming (chunking, full output), gaps,
 * finish, reset and bad descs.
 *
 * Signal model (make_signal): half-cycle h of L samples has polarity
 * sgn_h = start_sign * pattern[h]; x[t] = sgn_h V + off + drift t / fs
 * + noise, and after each reversal at sample b the reading settles to the
 * new level from the old one as a first-order system:
 * + (sgn_old - sgn_new) V exp(-(t - b) / (tau fs)).  The truth is V.
 */
#include "dsp/reversal.h"

#include "common/err.h"
#include "dsp/gum.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

TestSuite(reversal, .timeout = 120);

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s)
{
    return ((double)(splitmix(s) >> 11) + 0.5) * 0x1p-53;
}

static double gauss(uint64_t *s)
{
    /* Box-Muller; one value per call is enough here */
    return sqrt(-2.0 * log(unif(s))) * cos(6.283185307179586 * unif(s));
}

struct sig {
    enum qes_reversal_pattern pattern;
    double fs, half_s, tau_s;
    double V, off, drift, sigma;
    int start_sign;
    int fancy_pol; /* polarity channel with ramps, ringing and noise */
    uint64_t seed;
};

static int pat_sign(enum qes_reversal_pattern p, uint64_t h)
{
    static const int ppmm[4] = {1, -1, -1, 1};
    return p == QES_REVERSAL_PPMM ? ppmm[h % 4] : (h % 2 ? -1 : 1);
}

static void make_signal(const struct sig *s, size_t n, double *x, double *pol)
{
    const uint64_t L = (uint64_t)nearbyint(s->half_s * s->fs);
    uint64_t rng = s->seed;
    const double A = 5.0; /* polarity channel amplitude, V */
    int prev = s->start_sign * pat_sign(s->pattern, 0);
    double step = 0.0; /* (sgn_old - sgn_new) V at the last reversal */
    uint64_t b = 0;
    for (size_t t = 0; t < n; t++) {
        const uint64_t h = t / L;
        const int sg = s->start_sign * pat_sign(s->pattern, h);
        if (sg != prev) {
            step = (double)(prev - sg) * s->V;
            b = t;
        }
        double v = (double)sg * s->V + s->off + s->drift * ((double)t / s->fs);
        if (step != 0.0)
            v += step * exp(-(double)(t - b) / (s->tau_s * s->fs));
        if (s->sigma > 0)
            v += s->sigma * gauss(&rng);
        x[t] = v;
        if (pol) {
            double p = A * sg;
            if (s->fancy_pol) {
                const uint64_t to_next = (h + 1) * L - t; /* samples to the next boundary */
                const int nxt = s->start_sign * pat_sign(s->pattern, h + 1);
                /* Ramp before a reversal: stays inside the hysteresis band,
                 * |p| < 0.5 A, on the far side of zero. */
                if (nxt != sg && to_next == 2)
                    p = 0.3 * A * sg;
                else if (nxt != sg && to_next == 1)
                    p = -0.4 * A * sg;
                /* Ringing after it: overshoot, then back across zero but
                 * not beyond the band. */
                else if (t == b && t > 0)
                    p = 0.6 * A * sg;
                else if (t == b + 1 && t > 0)
                    p = 1.4 * A * sg;
                else if (t == b + 2 && t > 0)
                    p = -0.3 * A * sg;
                p += 0.05 * A * (2.0 * unif(&rng) - 1.0);
            }
            pol[t] = p;
        }
        prev = sg;
    }
}

/* Feed the whole record in chunks of 1..chunk_max (0: one call), with room
 * for max_out groups per call, then finish.  Returns the groups written. */
static size_t run(struct qes_reversal *r, const double *x, const double *pol, size_t n,
                  size_t chunk_max, size_t max_out, uint64_t seed, struct qes_reversal_group *g,
                  size_t gmax)
{
    size_t ng = 0, i = 0;
    struct qes_reversal_group buf[64];
    cr_assert(max_out >= 2 && max_out <= 64);
    uint64_t rng = seed;
    while (i < n) {
        size_t m = n - i;
        if (chunk_max && m > chunk_max)
            m = 1 + (size_t)(splitmix(&rng) % chunk_max);
        if (m > n - i)
            m = n - i;
        size_t nout = 99;
        const int64_t used =
                qes_reversal_execute(r, x + i, pol ? pol + i : NULL, m, i, buf, max_out, &nout);
        cr_assert(used >= 0 && (size_t)used <= m, "execute returned %lld", (long long)used);
        cr_assert(nout <= max_out);
        cr_assert(used > 0 || nout > 0 || m == 0, "no progress");
        cr_assert(ng + nout <= gmax);
        memcpy(g + ng, buf, nout * sizeof *buf);
        ng += nout;
        i += (size_t)used;
    }
    size_t nout = 99;
    cr_assert_eq(qes_reversal_finish(r, buf, max_out, &nout), 0);
    cr_assert(ng + nout <= gmax);
    memcpy(g + ng, buf, nout * sizeof *buf);
    return ng + nout;
}

static struct qes_reversal *make(enum qes_reversal_pattern p, double fs, double half_s,
                                 double settle_s)
{
    struct qes_reversal_desc d = {
            .fs_hz = fs, .pattern = p, .half_period_s = half_s, .settle_s = settle_s};
    struct qes_reversal *r = NULL;
    cr_assert_eq(qes_reversal_create(&d, &r), 0);
    cr_assert_not_null(r);
    return r;
}

static unsigned group_len(enum qes_reversal_pattern p)
{
    return p == QES_REVERSAL_PPMM ? 4 : 3;
}

/* ------------------------------------------------------------------------ */
/* Exact removal of offset and drift                                          */

/*
 * Zero noise: V = 1 uV, offset 3.7 uV, drift 25 nV/s over 12 groups, transient
 * of the full step 2V with tau = 20 ms, settle_s = 0.8 s = 40 tau.
 * Budget, relative to V = 1 uV: residual transient 2 V e^-40 = 8.5e-18 V
 * per sample (8.5e-18 relative); rounding of the generated samples (|x| <
 * 1.2e-5: half an ulp 8.5e-22 V, a few roundings each) and of the
 * compensated mean (2 ulp) and the 4-term combination: < 1e-20 V, i.e.
 * 1e-14 relative.  Asserted: 1e-12 relative (the requirement), 100x margin.
 */
static void check_exact(enum qes_reversal_pattern p, int channel, int start_sign)
{
    const struct sig s = {.pattern = p,
                          .fs = 50,
                          .half_s = 2,
                          .tau_s = 0.02,
                          .V = 1e-6,
                          .off = 3.7e-6,
                          .drift = 25e-9,
                          .start_sign = start_sign};
    const unsigned G = group_len(p);
    const size_t ng_full = 12, L = 100;
    const size_t n = (ng_full * G + 1) * L; /* one half-cycle more: channel mode needs it */
    double *x = malloc(n * sizeof *x), *pol = malloc(n * sizeof *pol);
    cr_assert(x && pol);
    make_signal(&s, n, x, channel ? pol : NULL);
    struct qes_reversal *r = make(p, s.fs, channel ? 0 : s.half_s, 0.8);
    struct qes_reversal_group g[64];
    const size_t ng = run(r, x, channel ? pol : NULL, n, 0, 64, 1, g, 64);
    size_t valid = 0;
    double worst = 0;
    for (size_t k = 0; k < ng; k++) {
        if (g[k].flags)
            continue;
        valid++;
        const double e = fabs(g[k].value - s.V) / s.V;
        worst = fmax(worst, e);
        cr_assert(e <= 1e-12, "%s %s group %llu: value %.17g, rel err %.3g",
                  qes_reversal_pattern_name(p), channel ? "channel" : "schedule",
                  (unsigned long long)g[k].index, g[k].value, e);
        /* "+-" groups start alternately at + and - */
        const int s1 = p == QES_REVERSAL_PM && g[k].index % 2 ? -1 : 1;
        cr_assert_eq(g[k].sign, (channel ? start_sign : 1) * s1);
        cr_assert_eq(g[k].n_used, (uint64_t)G * (L - 40));
        cr_assert_eq(g[k].n_samples, (uint64_t)G * L);
    }
    cr_assert_eq(valid, ng_full, "%zu valid groups of %zu", valid, ng);
    cr_log_info("%s %s start %+d: %zu groups, max rel err %.3g", qes_reversal_pattern_name(p),
                channel ? "channel" : "schedule", start_sign, valid, worst);
    qes_reversal_destroy(r);
    free(x);
    free(pol);
}

Test(reversal, zero_noise_exact_ppmm_schedule)
{
    check_exact(QES_REVERSAL_PPMM, 0, 1);
}

Test(reversal, zero_noise_exact_pm_schedule)
{
    check_exact(QES_REVERSAL_PM, 0, 1);
}

Test(reversal, zero_noise_exact_channel)
{
    check_exact(QES_REVERSAL_PPMM, 1, 1);
    check_exact(QES_REVERSAL_PM, 1, 1);
    /* a switch that starts at minus: groups - + + - and - + -; value is
     * still (V+ - V-)/2 */
    check_exact(QES_REVERSAL_PPMM, 1, -1);
    check_exact(QES_REVERSAL_PM, 1, -1);
}

/*
 * The exactness above is due to the settling cut, not to the test being
 * blind: without it the transient (area 2 V tau fs per reversal over 60-100
 * samples) leaves an error of order 1e-2 relative; and the schedule cut at
 * every half-cycle keeps the drift exact while a half-difference of
 * neighbours, (r1 - r2)/2, does not (drift * L / fs / 2 = 2.5e-8 V).
 */
Test(reversal, exactness_needs_settling_and_groups)
{
    const struct sig s = {.pattern = QES_REVERSAL_PPMM,
                          .fs = 50,
                          .half_s = 2,
                          .tau_s = 0.02,
                          .V = 1e-6,
                          .off = 3.7e-6,
                          .drift = 25e-9,
                          .start_sign = 1};
    const size_t n = 12 * 4 * 100;
    double *x = malloc(n * sizeof *x);
    cr_assert(x);
    make_signal(&s, n, x, NULL);
    struct qes_reversal *r = make(s.pattern, s.fs, s.half_s, 0);
    struct qes_reversal_group g[64];
    const size_t ng = run(r, x, NULL, n, 0, 64, 1, g, 64);
    cr_assert_eq(ng, 12);
    double worst = 0;
    for (size_t k = 0; k < ng; k++)
        worst = fmax(worst, fabs(g[k].value - s.V) / s.V);
    cr_assert(worst > 1e-3, "settle 0: rel err only %.3g", worst);
    /* neighbours r1, r2 of a group: drift biases the half-difference */
    const double naive = (g[1].half_mean[0] - g[1].half_mean[1]) / 2;
    cr_assert(fabs(naive - s.V) / s.V > 1e-3);
    cr_log_info("settle 0: rel err %.3g; (r1 - r2)/2: rel err %.3g", worst,
                fabs(naive - s.V) / s.V);
    qes_reversal_destroy(r);
    free(x);
}

/* ------------------------------------------------------------------------ */
/* White noise: Type A, coverage, and overlapping groups                      */

/* Wilson-Hilferty quantile of chi-squared with nu dof; relative error below
 * 1e-3 for nu > 100, far below the margins used here. */
static double chi2_q(double p, double nu)
{
    const double z = qes_normal_quantile(p), c = 2.0 / (9.0 * nu);
    const double b = 1.0 - c + z * sqrt(c);
    return nu * b * b * b;
}

/* Bounds on var(run means) / mean(u^2): numerator chi2(R-1)/(R-1), denominator
 * chi2(R(n-1))/(R(n-1)), independent; each tail 1e-5, so a false failure has
 * probability below 4e-5. */
static void ratio_bounds(double R, double n, double *lo, double *hi)
{
    const double a = 1e-5, n1 = R - 1, n2 = R * (n - 1);
    *lo = (chi2_q(a, n1) / n1) / (chi2_q(1 - a, n2) / n2);
    *hi = (chi2_q(1 - a, n1) / n1) / (chi2_q(a, n2) / n2);
}

struct stat {
    double sum, sum2; /* of the run means, minus the truth */
    double sum_u2;    /* of the reported u^2 */
    size_t runs, hits;
};

static void stat_add(struct stat *st, double mean, double u, double U, double truth)
{
    const double d = mean - truth;
    st->sum += d;
    st->sum2 += d * d;
    st->sum_u2 += u * u;
    st->runs++;
    st->hits += fabs(d) <= U;
}

static double stat_ratio(const struct stat *st)
{
    const double R = (double)st->runs;
    const double var = (st->sum2 - st->sum * st->sum / R) / (R - 1);
    return var / (st->sum_u2 / R);
}

/*
 * R = 1000 seeded runs of 20 groups, with offset, drift, settling and white
 * noise sigma = 50 nV per sample.  Each run's group values go through
 * qes_scalar_summarize (Type A s/sqrt(n), 19 dof, k = t_0.975(19)).
 * Checks: (1) var of the run means / mean reported u^2 within the chi-squared
 * ratio bounds (about [0.80, 1.25]); (2) mean u^2 against the analytic
 * variance of the mean, sigma^2 c / (n_u n) with c = 4/16 ("+--+") or 6/16
 * ("+-"), within chi2(R(n-1)) bounds; (3) 95 % coverage: hits ~ Binomial(R,
 * 0.95) (exact for normal values and the t factor), sd 6.9; asserted within
 * 4.5 sd (false failure 7e-6).
 */
static void check_white(enum qes_reversal_pattern p)
{
    const unsigned G = group_len(p);
    const size_t R = 1000, n_groups = 20, L = 40;
    const double fs = 20, half_s = 2, settle_s = 0.5; /* L = 40, S = 10 */
    const size_t n = n_groups * G * L;
    double *x = malloc(n * sizeof *x);
    cr_assert(x);
    struct qes_reversal *r = make(p, fs, half_s, settle_s);
    struct stat st = {0};
    struct qes_reversal_group g[64];
    for (size_t run_i = 0; run_i < R; run_i++) {
        const struct sig s = {.pattern = p,
                              .fs = fs,
                              .half_s = half_s,
                              .tau_s = 0.5 / 40,
                              .V = 1e-6,
                              .off = -2e-6,
                              .drift = 1e-8,
                              .sigma = 50e-9,
                              .start_sign = 1,
                              .seed = 1000 + run_i};
        make_signal(&s, n, x, NULL);
        qes_reversal_reset(r);
        const size_t ng = run(r, x, NULL, n, 0, 64, 1, g, 64);
        cr_assert_eq(ng, n_groups);
        struct qes_scalar_acc acc;
        qes_scalar_acc_reset(&acc);
        for (size_t k = 0; k < ng; k++) {
            cr_assert_eq(g[k].flags, 0);
            qes_scalar_acc_add(&acc, g[k].value);
        }
        struct qes_scalar_summary sum;
        cr_assert_eq(qes_scalar_summarize(&acc, NULL, 0, 0.95, &sum), 0);
        cr_assert_eq(sum.dof, (double)(n_groups - 1));
        stat_add(&st, sum.value, sum.u, sum.U, s.V);
    }
    double lo, hi;
    ratio_bounds((double)R, (double)n_groups, &lo, &hi);
    const double ratio = stat_ratio(&st);
    cr_assert(ratio >= lo && ratio <= hi, "%s: var(means)/mean(u^2) = %.4f outside [%.3f, %.3f]",
              qes_reversal_pattern_name(p), ratio, lo, hi);
    const double n_u = (double)(L - 10), c = G == 4 ? 4.0 / 16 : 6.0 / 16;
    const double u2_true = 50e-9 * 50e-9 * c / (n_u * (double)n_groups);
    const double nu = (double)R * (double)(n_groups - 1);
    const double q = (st.sum_u2 / (double)R) / u2_true;
    cr_assert(q >= chi2_q(1e-5, nu) / nu && q <= chi2_q(1 - 1e-5, nu) / nu,
              "%s: mean u^2 / analytic = %.4f", qes_reversal_pattern_name(p), q);
    const double Rd = (double)R, sd = sqrt(Rd * 0.95 * 0.05);
    cr_assert(fabs((double)st.hits - 0.95 * Rd) <= 4.5 * sd, "%s: coverage %zu of %zu",
              qes_reversal_pattern_name(p), st.hits, R);
    cr_log_info("%s: var(means)/mean(u^2) = %.4f [%.3f, %.3f], mean u^2/analytic = %.4f, "
                "coverage %zu/%zu",
                qes_reversal_pattern_name(p), ratio, lo, hi, q, st.hits, R);
    qes_reversal_destroy(r);
    free(x);
}

Test(reversal, white_noise_type_a_and_coverage_ppmm)
{
    check_white(QES_REVERSAL_PPMM);
}

Test(reversal, white_noise_type_a_and_coverage_pm)
{
    check_white(QES_REVERSAL_PM);
}

/* Pooled lag-1 autocorrelation of deviations from the truth. */
struct lag1 {
    double s01, s00;
};

static void lag1_add(struct lag1 *l, const double *d, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        l->s00 += d[k] * d[k];
        if (k + 1 < n)
            l->s01 += d[k] * d[k + 1];
    }
}

/*
 * Why the groups must not overlap ("+-", white noise, R = 1000 runs of 20
 * triples = 60 half-cycles).  From the same half-cycle means r_k:
 * - overlapping triples s_k (r_k - 2 r_{k+1} + r_{k+2}) / 4, k = 1..58: the
 *   shared r's give lag-1 correlation +4/6 = 2/3 (coefficients (-2)(1) +
 *   (1)(-2) over 1 + 4 + 1, sign flipped by s_k s_{k+1} = -1);
 * - overlapping pairs s_k (r_k - r_{k+1}) / 2: +1/2;
 * - our non-overlapping triples: 0.
 * Pooled over 57000 (19000) pairs, the estimators' standard errors are
 * below 0.012; asserted within 0.05.
 * The mean of the overlapping triples has variance ~ sigma_r^2 / N, but their
 * naive s^2/N ~ (6/16) sigma_r^2 / N: var(run means)/mean(u^2) ~ 2.7, beyond
 * the chi-squared upper bound that our groups satisfy.
 */
Test(reversal, overlapping_groups_are_correlated)
{
    const size_t R = 1000, n_groups = 20, L = 40, H = 3 * n_groups;
    const size_t n = H * L;
    double *x = malloc(n * sizeof *x);
    cr_assert(x);
    struct qes_reversal *r = make(QES_REVERSAL_PM, 20, 2, 0.5);
    struct stat st_ours = {0}, st_ov = {0};
    struct lag1 l_ov = {0}, l_pair = {0}, l_ours = {0};
    struct qes_reversal_group g[64];
    double rh[64 * 3], ov[64 * 3], pr[64 * 3], ours[64];
    for (size_t run_i = 0; run_i < R; run_i++) {
        const struct sig s = {.pattern = QES_REVERSAL_PM,
                              .fs = 20,
                              .half_s = 2,
                              .tau_s = 0.5 / 40,
                              .V = 1e-6,
                              .off = 5e-7,
                              .drift = -2e-8,
                              .sigma = 50e-9,
                              .start_sign = 1,
                              .seed = 777000 + run_i};
        make_signal(&s, n, x, NULL);
        qes_reversal_reset(r);
        const size_t ng = run(r, x, NULL, n, 0, 64, 1, g, 64);
        cr_assert_eq(ng, n_groups);
        struct qes_scalar_acc a_ours, a_ov;
        qes_scalar_acc_reset(&a_ours);
        qes_scalar_acc_reset(&a_ov);
        for (size_t k = 0; k < ng; k++) {
            for (int j = 0; j < 3; j++)
                rh[3 * k + (size_t)j] = g[k].half_mean[j];
            ours[k] = g[k].value - s.V;
            qes_scalar_acc_add(&a_ours, g[k].value);
        }
        for (size_t k = 0; k + 2 < H; k++) {
            const double sk = k % 2 ? -1.0 : 1.0;
            const double v = sk * (rh[k] - 2 * rh[k + 1] + rh[k + 2]) / 4;
            ov[k] = v - s.V;
            qes_scalar_acc_add(&a_ov, v);
        }
        for (size_t k = 0; k + 1 < H; k++)
            pr[k] = (k % 2 ? -1.0 : 1.0) * (rh[k] - rh[k + 1]) / 2 - s.V;
        /* pairs do not cancel drift: remove its constant bias 1/2 drift
         * L/fs (sign alternating with k) before correlating */
        for (size_t k = 0; k + 1 < H; k++)
            pr[k] += (k % 2 ? -1.0 : 1.0) * s.drift * (double)L / s.fs / 2;
        lag1_add(&l_ov, ov, H - 2);
        lag1_add(&l_pair, pr, H - 1);
        lag1_add(&l_ours, ours, ng);
        struct qes_scalar_summary so, sv;
        cr_assert_eq(qes_scalar_summarize(&a_ours, NULL, 0, 0.95, &so), 0);
        cr_assert_eq(qes_scalar_summarize(&a_ov, NULL, 0, 0.95, &sv), 0);
        stat_add(&st_ours, so.value, so.u, so.U, s.V);
        stat_add(&st_ov, sv.value, sv.u, sv.U, s.V);
    }
    const double rho_ov = l_ov.s01 / l_ov.s00, rho_pair = l_pair.s01 / l_pair.s00;
    const double rho_ours = l_ours.s01 / l_ours.s00;
    cr_assert(fabs(rho_ov - 2.0 / 3.0) < 0.05, "overlapping triples: lag-1 %.4f", rho_ov);
    cr_assert(fabs(rho_pair - 0.5) < 0.05, "overlapping pairs: lag-1 %.4f", rho_pair);
    cr_assert(fabs(rho_ours) < 0.05, "non-overlapping triples: lag-1 %.4f", rho_ours);
    double lo, hi;
    ratio_bounds((double)R, (double)n_groups, &lo, &hi);
    const double q_ours = stat_ratio(&st_ours);
    double lo_ov, hi_ov;
    ratio_bounds((double)R, (double)(H - 2), &lo_ov, &hi_ov);
    const double q_ov = stat_ratio(&st_ov);
    cr_assert(q_ours >= lo && q_ours <= hi, "ours: ratio %.4f outside [%.3f, %.3f]", q_ours, lo,
              hi);
    cr_assert(q_ov > hi_ov, "overlapping: ratio %.4f not above %.3f", q_ov, hi_ov);
    cr_log_info("lag-1: overlapping triples %.4f, pairs %.4f, ours %.4f; var(means)/mean(u^2): "
                "ours %.3f, overlapping %.3f; coverage ours %zu, overlapping %zu of %zu",
                rho_ov, rho_pair, rho_ours, q_ours, q_ov, st_ours.hits, st_ov.hits, R);
    qes_reversal_destroy(r);
    free(x);
}

/* ------------------------------------------------------------------------ */
/* Schedule vs polarity channel; streaming                                   */

static int same_group(const struct qes_reversal_group *a, const struct qes_reversal_group *b)
{
    return a->index == b->index && a->sample_start == b->sample_start &&
           a->n_samples == b->n_samples && a->n_used == b->n_used && a->sign == b->sign &&
           a->flags == b->flags && memcmp(&a->value, &b->value, sizeof a->value) == 0 &&
           memcmp(a->half_mean, b->half_mean, sizeof a->half_mean) == 0;
}

/*
 * The same data (offset, drift, settling, noise), processed with the schedule
 * and with a polarity channel that ramps before each reversal and rings after
 * it (inside the hysteresis band) with 5 % noise: the channel recognises each
 * reversal at the schedule's boundary, so the same samples are averaged in
 * the same order and the complete groups are bit-identical.  The channel's
 * last group needs the next reversal, hence one extra half-cycle of data.
 */
static void check_sched_vs_channel(enum qes_reversal_pattern p)
{
    const unsigned G = group_len(p);
    const size_t n_groups = 10, L = 100;
    const size_t n = (n_groups * G + 1) * L;
    const struct sig s = {.pattern = p,
                          .fs = 50,
                          .half_s = 2,
                          .tau_s = 0.02,
                          .V = 1e-6,
                          .off = 1e-6,
                          .drift = 1e-8,
                          .sigma = 20e-9,
                          .start_sign = 1,
                          .fancy_pol = 1,
                          .seed = 42};
    double *x = malloc(n * sizeof *x), *pol = malloc(n * sizeof *pol);
    cr_assert(x && pol);
    make_signal(&s, n, x, pol);
    struct qes_reversal *rs = make(p, s.fs, s.half_s, 0.6);
    struct qes_reversal *rc = make(p, s.fs, 0, 0.6);
    struct qes_reversal_group gs[64], gc[64];
    const size_t ns = run(rs, x, NULL, n, 0, 64, 1, gs, 64);
    const size_t nc = run(rc, x, pol, n, 0, 64, 1, gc, 64);
    cr_assert_eq(ns, n_groups + 1, "schedule: %zu groups", ns);
    cr_assert_eq(gs[n_groups].flags, QES_REVERSAL_PARTIAL);
    cr_assert(isnan(gs[n_groups].value));
    cr_assert_eq(nc, n_groups + 1, "channel: %zu groups", nc);
    cr_assert_eq(gc[n_groups].flags, QES_REVERSAL_PARTIAL);
    if (p == QES_REVERSAL_PPMM)
        cr_assert_eq(qes_reversal_half_samples(rc), L);
    for (size_t k = 0; k < n_groups; k++) {
        cr_assert_eq(gs[k].flags, 0);
        cr_assert(same_group(&gs[k], &gc[k]), "%s group %zu: schedule %.17g, channel %.17g",
                  qes_reversal_pattern_name(p), k, gs[k].value, gc[k].value);
    }
    qes_reversal_destroy(rs);
    qes_reversal_destroy(rc);
    free(x);
    free(pol);
}

Test(reversal, schedule_and_channel_agree)
{
    check_sched_vs_channel(QES_REVERSAL_PPMM);
    check_sched_vs_channel(QES_REVERSAL_PM);
}

/* Chunks of 1..97 samples and an output of 2 groups per call (execute stops
 * early and is called again) give bit-identical groups to one call. */
Test(reversal, streaming_is_chunking_invariant)
{
    for (int mode = 0; mode < 4; mode++) {
        const enum qes_reversal_pattern p = mode % 2 ? QES_REVERSAL_PM : QES_REVERSAL_PPMM;
        const int channel = mode >= 2;
        const size_t n = 30 * 4 * 20 + 20;
        const struct sig s = {.pattern = p,
                              .fs = 10,
                              .half_s = 2,
                              .tau_s = 0.01,
                              .V = 1,
                              .off = 0.1,
                              .drift = 1e-3,
                              .sigma = 0.01,
                              .start_sign = 1,
                              .fancy_pol = 1,
                              .seed = 9 + (uint64_t)mode};
        double *x = malloc(n * sizeof *x), *pol = malloc(n * sizeof *pol);
        cr_assert(x && pol);
        make_signal(&s, n, x, pol);
        struct qes_reversal *r = make(p, s.fs, channel ? 0 : s.half_s, 0.5);
        static struct qes_reversal_group a[256], b[256];
        const size_t na = run(r, x, channel ? pol : NULL, n, 0, 64, 1, a, 256);
        qes_reversal_reset(r);
        const size_t nb = run(r, x, channel ? pol : NULL, n, 97, 2, 5, b, 256);
        cr_assert_eq(na, nb, "mode %d: %zu vs %zu groups", mode, na, nb);
        cr_assert(na >= 30);
        for (size_t k = 0; k < na; k++)
            cr_assert(same_group(&a[k], &b[k]), "mode %d group %zu differs", mode, k);
        qes_reversal_destroy(r);
        free(x);
        free(pol);
    }
}

/* Schedule bookkeeping: group g starts at g G L, spans G L, uses G (L - S). */
Test(reversal, schedule_group_fields)
{
    const size_t L = 50, n = 7 * 4 * L;
    double *x = calloc(n, sizeof *x);
    cr_assert(x);
    struct qes_reversal *r = make(QES_REVERSAL_PPMM, 25, 2, 0.4);
    cr_assert_eq(qes_reversal_half_samples(r), L);
    cr_assert_eq(qes_reversal_settle_samples(r), 10);
    struct qes_reversal_group g[16];
    const size_t ng = run(r, x, NULL, n, 0, 16, 1, g, 16);
    cr_assert_eq(ng, 7);
    for (size_t k = 0; k < ng; k++) {
        cr_assert_eq(g[k].index, k);
        cr_assert_eq(g[k].sample_start, k * 4 * L);
        cr_assert_eq(g[k].n_samples, 4 * L);
        cr_assert_eq(g[k].n_used, 4 * (L - 10));
        cr_assert_eq(g[k].sign, 1);
        cr_assert_eq(g[k].flags, 0);
        cr_assert_eq(g[k].value, 0.0);
    }
    qes_reversal_destroy(r);
    free(x);
}

/* ------------------------------------------------------------------------ */
/* Gaps, finish, reset                                                        */

/*
 * Lost samples: groups containing an affected half-cycle are flagged GAP
 * with a NaN value; every other group is bit-identical to the run without
 * loss.  Schedule "+--+", L = 100, 10 groups of 400 samples.
 */
static size_t feed_with_hole(struct qes_reversal *r, const double *x, const double *pol, size_t n,
                             size_t hole_at, size_t hole_len, int explicit_gap,
                             struct qes_reversal_group *g)
{
    size_t nout, ng = 0;
    int64_t used = qes_reversal_execute(r, x, pol, hole_at, 0, g, 64, &nout);
    cr_assert_eq(used, (int64_t)hole_at);
    ng += nout;
    if (explicit_gap)
        cr_assert_eq(qes_reversal_gap(r), 0);
    const size_t at = hole_at + hole_len;
    used = qes_reversal_execute(r, x + at, pol ? pol + at : NULL, n - at, at, g + ng, 64, &nout);
    cr_assert_eq(used, (int64_t)(n - at));
    ng += nout;
    cr_assert_eq(qes_reversal_finish(r, g + ng, 64, &nout), 0);
    return ng + nout;
}

static const struct qes_reversal_group *find_start(const struct qes_reversal_group *g, size_t n,
                                                   uint64_t start)
{
    for (size_t k = 0; k < n; k++)
        if (g[k].sample_start == start && g[k].flags == 0)
            return &g[k];
    return NULL;
}

Test(reversal, gaps_flag_only_the_groups_hit)
{
    static const struct {
        int channel;
        enum qes_reversal_pattern p;
        size_t at, len;
        int explicit_gap;
        unsigned n_bad; /* groups flagged GAP */
    } cases[] = {
            {0, QES_REVERSAL_PPMM, 450, 20, 0, 1},  /* jump inside half-cycle 4 (group 1) */
            {0, QES_REVERSAL_PPMM, 450, 0, 1, 1},   /* explicit gap, indices contiguous */
            {0, QES_REVERSAL_PPMM, 500, 100, 0, 1}, /* half-cycle 5 lost whole */
            {0, QES_REVERSAL_PPMM, 750, 700, 0, 2}, /* groups 1 and 3 hit, 2 lost whole */
            {0, QES_REVERSAL_PPMM, 800, 0, 1, 1},   /* explicit gap at a group boundary */
            {0, QES_REVERSAL_PM, 450, 30, 0, 1},    /* group 1 = half-cycles 3-5 */
            {1, QES_REVERSAL_PM, 450, 30, 0, 1},    {1, QES_REVERSAL_PPMM, 450, 20, 0, 1},
            {1, QES_REVERSAL_PPMM, 620, 0, 1, 1},
    };
    const size_t L = 100, n = 10 * 4 * L + L;
    double *x = malloc(n * sizeof *x), *pol = malloc(n * sizeof *pol);
    cr_assert(x && pol);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct sig s = {.pattern = cases[c].p,
                              .fs = 50,
                              .half_s = 2,
                              .tau_s = 0.02,
                              .V = 1e-6,
                              .off = 1e-6,
                              .drift = 1e-8,
                              .sigma = 20e-9,
                              .start_sign = 1,
                              .seed = 3 + c};
        make_signal(&s, n, x, pol);
        const double *pp = cases[c].channel ? pol : NULL;
        struct qes_reversal *r = make(cases[c].p, s.fs, cases[c].channel ? 0 : s.half_s, 0.6);
        struct qes_reversal_group ref[64], g[64];
        const size_t nref = run(r, x, pp, n, 0, 64, 1, ref, 64);
        qes_reversal_reset(r);
        const size_t ng =
                feed_with_hole(r, x, pp, n, cases[c].at, cases[c].len, cases[c].explicit_gap, g);
        unsigned bad = 0;
        for (size_t k = 0; k < ng; k++) {
            if (g[k].flags & QES_REVERSAL_GAP) {
                cr_assert(isnan(g[k].value), "case %zu: flagged group has a value", c);
                /* it contains the hole (or starts right after it) */
                const uint64_t a = cases[c].at, e = cases[c].at + cases[c].len;
                cr_assert(g[k].sample_start <= e && g[k].sample_start + g[k].n_samples >= a,
                          "case %zu: flagged group %llu at %llu+%llu away from the hole", c,
                          (unsigned long long)g[k].index, (unsigned long long)g[k].sample_start,
                          (unsigned long long)g[k].n_samples);
                bad++;
                continue;
            }
            if (g[k].flags)
                continue; /* the trailing partial group */
            const struct qes_reversal_group *m = find_start(ref, nref, g[k].sample_start);
            cr_assert_not_null(m, "case %zu: group at %llu not in the reference", c,
                               (unsigned long long)g[k].sample_start);
            cr_assert(memcmp(&m->value, &g[k].value, sizeof m->value) == 0,
                      "case %zu: group at %llu changed", c, (unsigned long long)g[k].sample_start);
        }
        cr_assert_eq(bad, cases[c].n_bad, "case %zu: %u groups flagged GAP", c, bad);
        qes_reversal_destroy(r);
    }
    free(x);
    free(pol);
}

Test(reversal, finish_flags_partial_and_reset_restarts)
{
    const size_t L = 50, n = 3 * 4 * L + 130; /* 3 groups and a bit */
    double *x = malloc(n * sizeof *x);
    cr_assert(x);
    for (size_t t = 0; t < n; t++)
        x[t] = (t / L) % 4 == 0 || (t / L) % 4 == 3 ? 2.0 : -2.0;
    struct qes_reversal *r = make(QES_REVERSAL_PPMM, 25, 2, 0.4);
    struct qes_reversal_group g[8];
    size_t nout;
    cr_assert_eq(qes_reversal_execute(r, x, NULL, n, 0, g, 8, &nout), (int64_t)n);
    cr_assert_eq(nout, 3);
    cr_assert_eq(g[2].value, 2.0);
    cr_assert_eq(qes_reversal_finish(r, g, 8, &nout), 0);
    cr_assert_eq(nout, 1);
    cr_assert_eq(g[0].flags, QES_REVERSAL_PARTIAL);
    cr_assert_eq(g[0].index, 3);
    cr_assert(isnan(g[0].value));
    /* the half-cycle means seen are reported, the cut one (30 samples, 20
     * after settling) too */
    cr_assert_eq(g[0].half_mean[0], 2.0);
    cr_assert_eq(g[0].half_mean[1], -2.0);
    cr_assert_eq(g[0].half_mean[2], -2.0);
    cr_assert(isnan(g[0].half_mean[3]));
    cr_assert_eq(g[0].n_used, 40 + 40 + 20);
    cr_assert_eq(g[0].n_samples, 130);
    /* finished: only reset or destroy */
    cr_assert_eq(qes_reversal_finish(r, g, 8, &nout), QES_EINVAL);
    cr_assert_eq(qes_reversal_execute(r, x, NULL, 1, n, g, 8, &nout), QES_EINVAL);
    qes_reversal_reset(r);
    cr_assert_eq(qes_reversal_execute(r, x, NULL, 4 * L, 0, g, 8, &nout), (int64_t)(4 * L));
    cr_assert_eq(nout, 1);
    cr_assert_eq(g[0].index, 0);
    cr_assert_eq(g[0].value, 2.0);
    /* finish at a group boundary emits nothing */
    cr_assert_eq(qes_reversal_finish(r, g, 8, &nout), 0);
    cr_assert_eq(nout, 0);
    qes_reversal_destroy(r);
    free(x);
}

/* A polarity stretch shorter than the settling leaves a half-cycle without
 * samples: its group is flagged SHORT. */
Test(reversal, channel_short_half_cycle)
{
    const size_t n = 1000;
    double *x = calloc(n, sizeof *x), *pol = malloc(n * sizeof *pol);
    cr_assert(x && pol);
    for (size_t t = 0; t < n; t++)
        pol[t] = t < 300 ? 1 : t < 305 ? -1 : t < 600 ? 1 : -1; /* 5-sample glitch */
    struct qes_reversal *r = make(QES_REVERSAL_PM, 10, 0, 2);   /* S = 20 */
    struct qes_reversal_group g[8];
    const size_t ng = run(r, x, pol, n, 0, 8, 1, g, 8);
    cr_assert(ng >= 1);
    cr_assert(g[0].flags & QES_REVERSAL_SHORT, "flags %u", g[0].flags);
    cr_assert(isnan(g[0].value));
    qes_reversal_destroy(r);
    free(x);
    free(pol);
}

/* ------------------------------------------------------------------------ */
/* Descs and arguments                                                        */

struct bad_desc {
    const char *what;
    double fs_hz;
    int pattern;
    double half_period_s, settle_s, thr;
};

static const struct bad_desc bad_descs[] = {
        {"fs 0", 0, 0, 2, 0.5, 0},
        {"fs negative", -50, 0, 2, 0.5, 0},
        {"fs NaN", NAN, 0, 2, 0.5, 0},
        {"fs infinite", INFINITY, 0, 2, 0.5, 0},
        {"unknown pattern 2", 50, 2, 2, 0.5, 0},
        {"unknown pattern -1", 50, -1, 2, 0.5, 0},
        {"half period negative", 50, 0, -2, 0.5, 0},
        {"half period NaN", 50, 0, NAN, 0.5, 0},
        {"half period infinite", 50, 1, INFINITY, 0.5, 0},
        {"settle negative", 50, 0, 2, -0.5, 0},
        {"settle NaN", 50, 0, 2, NAN, 0},
        {"settle equal to half period", 50, 0, 2, 2, 0},
        {"settle longer than half period", 50, 1, 2, 3, 0},
        {"settle rounds up to the half period", 50, 0, 1, 0.995, 0},
        {"half-cycle of one sample", 50, 0, 0.02, 0, 0},
        {"half-cycle rounds to zero samples", 50, 0, 0.001, 0, 0},
        {"half-cycle beyond 2^52 samples", 50, 0, 1e20, 0, 0},
        {"threshold with a schedule", 50, 0, 2, 0.5, 0.5},
        {"threshold 1", 50, 0, 0, 0.5, 1.0},
        {"threshold negative", 50, 1, 0, 0.5, -0.1},
        {"threshold NaN", 50, 1, 0, 0.5, NAN},
        {"channel settle beyond 2^52 samples", 50, 0, 0, 1e300, 0},
};

/* Criterion copies parameters across processes: pointers into this
 * executable's data would not survive, so the parameters are indices. */
ParameterizedTestParameters(reversal, bad_desc_refused)
{
    static size_t idx[sizeof bad_descs / sizeof bad_descs[0]];
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, sizeof idx / sizeof idx[0]);
}

ParameterizedTest(size_t *i, reversal, bad_desc_refused)
{
    const struct bad_desc *b = &bad_descs[*i];
    const struct qes_reversal_desc d = {.fs_hz = b->fs_hz,
                                        .pattern = (enum qes_reversal_pattern)b->pattern,
                                        .half_period_s = b->half_period_s,
                                        .settle_s = b->settle_s,
                                        .pol_threshold = b->thr};
    static char sentinel;
    struct qes_reversal *r = (struct qes_reversal *)(void *)&sentinel; /* must be reset */
    cr_assert_eq(qes_reversal_create(&d, &r), QES_EINVAL, "%s: not refused", b->what);
    cr_assert_null(r, "%s: *out not cleared", b->what);
}

/* The good neighbours of the table's edges are accepted. */
Test(reversal, edge_descs_accepted)
{
    static const struct qes_reversal_desc ok[] = {
            {.fs_hz = 50, .half_period_s = 0.04, .settle_s = 0.02}, /* L 2, S 1 */
            {.fs_hz = 50, .half_period_s = 1, .settle_s = 0.97},    /* S 49 of 50 */
            {.fs_hz = 50, .half_period_s = 0, .settle_s = 100},     /* channel: no bound */
            {.fs_hz = 1e-3, .pattern = QES_REVERSAL_PM, .half_period_s = 3600},
            {.fs_hz = 50, .pattern = QES_REVERSAL_PM, .pol_threshold = 0.9},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct qes_reversal *r = NULL;
        cr_assert_eq(qes_reversal_create(&ok[i], &r), 0, "desc %zu refused", i);
        qes_reversal_destroy(r);
    }
}

Test(reversal, bad_arguments)
{
    struct qes_reversal *r = make(QES_REVERSAL_PPMM, 50, 2, 0.5);
    struct qes_reversal *c = make(QES_REVERSAL_PM, 50, 0, 0.5);
    double x[10] = {0}, pol[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    struct qes_reversal_group g[4];
    size_t nout;
    struct qes_reversal *t = (struct qes_reversal *)(void *)x;
    cr_assert_eq(qes_reversal_create(NULL, &t), QES_EINVAL);
    cr_assert_null(t);
    cr_assert_eq(qes_reversal_create(&(struct qes_reversal_desc){.fs_hz = 1}, NULL), QES_EINVAL);
    cr_assert_eq(qes_reversal_execute(NULL, x, NULL, 10, 0, g, 4, &nout), QES_EINVAL);
    cr_assert_eq(qes_reversal_execute(r, x, NULL, 10, 0, g, 4, NULL), QES_EINVAL);
    cr_assert_eq(qes_reversal_execute(r, NULL, NULL, 10, 0, g, 4, &nout), QES_EINVAL);
    cr_assert_eq(qes_reversal_execute(r, x, NULL, 10, 0, NULL, 4, &nout), QES_EINVAL);
    cr_assert_eq(qes_reversal_execute(r, x, NULL, 10, 0, g, 1, &nout), QES_EINVAL);
    cr_assert_eq(qes_reversal_execute(r, x, pol, 10, 0, g, 4, &nout), QES_EINVAL,
                 "pol with a schedule");
    cr_assert_eq(qes_reversal_execute(c, x, NULL, 10, 0, g, 4, &nout), QES_EINVAL,
                 "no pol with a channel");
    cr_assert_eq(qes_reversal_execute(r, x, NULL, 10, 0, g, 4, &nout), 10);
    cr_assert_eq(qes_reversal_execute(r, x, NULL, 10, 5, g, 4, &nout), QES_EINVAL, "rewind");
    cr_assert_eq(qes_reversal_execute(r, x, NULL, 0, 10, g, 4, &nout), 0);
    cr_assert_eq(qes_reversal_gap(NULL), QES_EINVAL);
    cr_assert_eq(qes_reversal_finish(NULL, g, 4, &nout), QES_EINVAL);
    cr_assert_eq(qes_reversal_finish(r, g, 1, &nout), QES_EINVAL);
    cr_assert_eq(qes_reversal_half_samples(NULL), 0);
    qes_reversal_reset(NULL);
    qes_reversal_destroy(NULL);
    qes_reversal_destroy(r);
    qes_reversal_destroy(c);
}

Test(reversal, pattern_names)
{
    enum qes_reversal_pattern p;
    cr_assert_eq(qes_reversal_pattern_parse("+--+", &p), 0);
    cr_assert_eq(p, QES_REVERSAL_PPMM);
    cr_assert_eq(qes_reversal_pattern_parse("+-", &p), 0);
    cr_assert_eq(p, QES_REVERSAL_PM);
    static const char *bad[] = {"", "+-+", "-+", "+--", "ABBA", "+-- +", "+--+ "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(qes_reversal_pattern_parse(bad[i], &p), QES_EINVAL, "'%s'", bad[i]);
    cr_assert_eq(qes_reversal_pattern_parse(NULL, &p), QES_EINVAL);
    cr_assert_eq(qes_reversal_pattern_parse("+-", NULL), QES_EINVAL);
    cr_assert_str_eq(qes_reversal_pattern_name(QES_REVERSAL_PPMM), "+--+");
    cr_assert_str_eq(qes_reversal_pattern_name(QES_REVERSAL_PM), "+-");
    cr_assert_null(qes_reversal_pattern_name((enum qes_reversal_pattern)7));
}
