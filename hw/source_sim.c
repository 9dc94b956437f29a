/*
 * Simulated source (see hw/source_sim.h for the signal model).
 *
 * Determinism.  Every sample is a function of (desc, m, the channel's noise
 * stream) only: the deterministic part is computed from the run index m, and
 * each channel owns its own noise generator whose draws are consumed in sample
 * order.  Chunking therefore cannot change a value: reading in frames of 1 or
 * 65536 gives the same samples bit for bit.  Within a chunk channels are
 * generated one after another (channel-major) for speed; since no state is
 * shared between channels this is identical to generating frame by frame.
 * Reproducibility across machines assumes the same libm (cos, log, sqrt) and
 * no FMA contraction (the project builds with -std=c11, which implies
 * -ffp-contract=off in gcc).
 *
 * Phase.  When f/fs = p/q (qes_ratio_approx, q <= SIM_MAX_DEN, relative
 * tolerance SIM_RATIO_TOL) the phase of harmonic h at sample m is
 *     2 pi ((h p m) mod q) / q + phase_k
 * with the residue exact in integers: it is set with qes_mulmod_u64 at the
 * start of each read and advanced by an exact integer step inside it.  When q
 * is small (<= SIM_TABLE_MAX) the harmonic sum over one period is tabulated at
 * create with the same code, so the table and the direct path give the same
 * bits.  Note that a double f/fs of a "non-round" frequency usually has some
 * p/q within the tolerance (fractions with q <= 1e9 are ~1e-18 apart): the
 * simulated frequency is then fs p / q, which differs from freq_hz by at most
 * SIM_RATIO_TOL relative.  Otherwise the cycles h (f/fs) m are computed in
 * long double and reduced with fmodl (error ~ h f m / fs * 2^-63 cycles).
 *
 * Noise.  xoshiro256** seeded through splitmix64 from desc->seed; channel c
 * uses that generator advanced by c jumps of 2^128 draws, so the channel
 * streams never overlap.  Uniforms in [-1, 1) come from the top 53 bits;
 * Gaussian variates from the Marsaglia polar method (the second value of each
 * pair is kept for the next sample of the same channel).
 *
 * Flicker.  phi(m) = sum_k c_k x_k(m), a bank of SIM_FL_K first-order (AR(1))
 * filters x_k(m) = a_k x_k(m - 1) + g(m) driven by ONE standard Gaussian g(m)
 * per sample, a_k = exp(-1 / tau_k), tau_k = 4^k samples (k = 0..13, up to
 * 6.7e7 samples), c_k proportional to tau_k^-1/2.  A common input makes the
 * bank a filter whose transfer sum_k c_k / (1 - a_k z^-1) approximates
 * f^-1/2: the continuous version has impulse response sum_k c_k e^(-t/tau_k),
 * a geometric-grid quadrature of int tau^-3/2 e^(-t/tau) dtau ~ t^-1/2, whose
 * ripple (Poisson summation) is sech(2 pi^2 / ln 4) ~ 1e-6: the flatness is
 * set by the two ends only.  Computed exactly on the discrete transfer,
 * f |H(f)|^2 is constant within +-0.44 dB from 1e-7 fs to fs / 2 (+-0.24 dB
 * up to 0.1 fs, +-0.11 dB from 1e-6 fs to 0.1 fs); below 1 / (2 pi tau_13) ~
 * 2.4e-9 fs the spectrum turns white, so the process is stationary with a
 * finite variance.  The state before sample 0 is drawn from the stationary
 * distribution (covariance P_jk = 1 / (1 - a_j a_k), Cholesky at create), so
 * every window of a run, the first included, has the same statistics: the
 * source has been on for ever.  The scale is set at create so that the mean
 * of phi over n_1 = max(1, round(fs)) consecutive samples (one second) has
 * standard deviation flicker_rms, from the exact variance of that mean,
 *     (1 / n_1^2) sum_jk c_j c_k P_jk [n_1 + S(a_j) + S(a_k)],
 *     S(a) = sum_{l=1}^{n_1-1} (n_1 - l) a^l.
 * Cost: one Gaussian and 2 x 14 multiply-adds per sample (~25 ns on the
 * 2-core test machine, twice the cost of a sample of sine and white noise).  g comes from a
 * stream of its own (the seed's generator long-jumped by 2^192 draws, then
 * jumped by 2^128 per channel), so the white noise stream, and with it every
 * output with flicker_rms = 0, is the same as without the flicker feature.
 * Where phi goes: see hw/source_sim.h (on the level of the DC signal with no
 * harmonics, on the fundamental's RMS amplitude with harmonics).
 *
 * Value and quantisation.  v = (offset + drift_per_s * (m / fs)) + sum_k a_k
 * cos(...) + noise_rms * g (the drift term is skipped when drift_per_s == 0);
 * with flicker the harmonic sum H becomes H + H (phi / rms_0), or phi is
 * added to the offset and drift term when there are no harmonics.
 * With adc_bits > 0 the delivered count is round(v / gain), rounding halves
 * away from zero (C round()), clipped to [-2^(bits-1), 2^(bits-1) - 1]; each
 * clipped sample is counted (qes_source_sim_clipped).
 */
#include "hw/source_sim.h"

#include "common/err.h"
#include "common/ratio.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIM_CHUNK     65536u      /* frames per read at most (internal buffer) */
#define SIM_MAX_DEN   1000000000u /* largest q of f/fs = p/q handled exactly */
#define SIM_RATIO_TOL 1e-15       /* relative tolerance of that ratio */
#define SIM_TABLE_MAX 131072u     /* tabulate one period when q <= this (1 MiB/channel) */
#define SIM_BLOCK     1024u       /* frames generated per channel in one pass */
#define SIM_FL_K      14          /* flicker filters, tau_k = 4^k samples */

#if defined(__GNUC__)
#define SIM_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SIM_PRINTF(f, a)
#endif

/* 2 pi rounded to double and to long double (M_PI is not ISO C). */
static const double sim_two_pi = 0x1.921fb54442d18p+2;
static const long double sim_two_pi_l = 6.283185307179586476925286766559005768L;

enum sim_mode {
    SIM_NONE,  /* no harmonics */
    SIM_TABLE, /* exact ratio, one period tabulated */
    SIM_EXACT, /* exact ratio, integer residues per sample */
    SIM_LONG,  /* no ratio: long double cycles */
};

struct sim_rng {
    uint64_t s[4];
    int has_spare;
    double spare;
};

enum sim_flicker {
    SIM_FL_OFF,   /* flicker_rms == 0 */
    SIM_FL_LEVEL, /* no harmonics: phi added to the value */
    SIM_FL_AMPL,  /* harmonics: sum scaled by 1 + phi / rms_0 */
};

struct sim_chan {
    enum sim_mode mode;
    size_t nh;
    double amp[QES_SIM_MAX_HARMONICS];     /* sqrt(2) * rms */
    double phase[QES_SIM_MAX_HARMONICS];   /* rad */
    uint64_t p, q;                         /* f/fs = p/q (TABLE, EXACT) */
    uint64_t step[QES_SIM_MAX_HARMONICS];  /* (h p) mod q */
    double *table;                         /* q values (TABLE) */
    long double hx[QES_SIM_MAX_HARMONICS]; /* h f / fs (LONG) */
    double noise_rms, offset, drift_per_s, gain;
    struct sim_rng rng;
    enum sim_flicker fl;
    double fl_a[SIM_FL_K]; /* exp(-1 / tau_k) */
    double fl_c[SIM_FL_K]; /* output weights, scaled (relative to rms_0 for SIM_FL_AMPL) */
    double fl_x[SIM_FL_K]; /* filter states */
    struct sim_rng fl_rng;
};

struct sim {
    struct qes_source base; /* first: the ops table casts back to struct sim */
    double fs;
    unsigned adc_bits;
    double count_min, count_max; /* ADC range in counts */
    uint64_t n_frames;           /* 0 = unlimited */
    int realtime;
    int64_t start_ns;
    uint64_t m;       /* run index of the next sample */
    uint64_t clipped; /* samples clipped so far, all channels */
    int clock_started;
    struct timespec t0; /* CLOCK_MONOTONIC at the first read */
    size_t chunk;       /* frames in buf */
    double *buf;        /* chunk * n_channels */
    struct sim_chan ch[QES_SIM_MAX_CHANNELS];
};

static const struct qes_source_ops sim_ops;

/* ---- random numbers ------------------------------------------------------------------------ */

static uint64_t sim_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static inline uint64_t sim_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** 1.0 (Blackman and Vigna). */
static inline uint64_t sim_xoshiro_next(uint64_t *s)
{
    const uint64_t result = sim_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sim_rotl(s[3], 45);
    return result;
}

/* Advance by 2^128 draws: non-overlapping streams for the channels. */
static void sim_xoshiro_jump(uint64_t *s)
{
    static const uint64_t jump[] = {UINT64_C(0x180ec6d33cfd0aba), UINT64_C(0xd5a61266f0c9392c),
                                    UINT64_C(0xa9582618e03fc9aa), UINT64_C(0x39abdc4529b1661c)};
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < sizeof jump / sizeof jump[0]; i++) {
        for (int b = 0; b < 64; b++) {
            if (jump[i] & (UINT64_C(1) << b)) {
                s0 ^= s[0];
                s1 ^= s[1];
                s2 ^= s[2];
                s3 ^= s[3];
            }
            sim_xoshiro_next(s);
        }
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
}

/* Advance by 2^192 draws: the flicker streams start there. */
static void sim_xoshiro_long_jump(uint64_t *s)
{
    static const uint64_t jump[] = {UINT64_C(0x76e15d3efefdcbbf), UINT64_C(0xc5004e441c522fb3),
                                    UINT64_C(0x77710069854ee241), UINT64_C(0x39109bb02acbe635)};
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < sizeof jump / sizeof jump[0]; i++) {
        for (int b = 0; b < 64; b++) {
            if (jump[i] & (UINT64_C(1) << b)) {
                s0 ^= s[0];
                s1 ^= s[1];
                s2 ^= s[2];
                s3 ^= s[3];
            }
            sim_xoshiro_next(s);
        }
    }
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
}

/* Uniform in [-1, 1), exact multiples of 2^-52. */
static inline double sim_uniform_pm1(uint64_t *s)
{
    return (double)(sim_xoshiro_next(s) >> 11) * 0x1.0p-52 - 1.0;
}

/* Standard normal variate, Marsaglia polar method. */
static inline double sim_gauss(struct sim_rng *g)
{
    if (g->has_spare) {
        g->has_spare = 0;
        return g->spare;
    }
    double u, v, r2;
    do {
        u = sim_uniform_pm1(g->s);
        v = sim_uniform_pm1(g->s);
        r2 = u * u + v * v;
    } while (r2 >= 1.0 || r2 == 0.0);
    const double f = sqrt(-2.0 * log(r2) / r2);
    g->spare = v * f;
    g->has_spare = 1;
    return u * f;
}

/* ---- signal -------------------------------------------------------------------------------- */

/* Harmonic sum at residues r[k] = (h_k p m) mod q.  The one formula of the
 * exact path, used both to fill the table and per sample. */
static double sim_harm_exact(const struct sim_chan *c, const uint64_t *r)
{
    const double q = (double)c->q;
    double s = 0.0;
    for (size_t k = 0; k < c->nh; k++)
        s += c->amp[k] * cos(sim_two_pi * ((double)r[k] / q) + c->phase[k]);
    return s;
}

static double sim_harm_long(const struct sim_chan *c, uint64_t m)
{
    double s = 0.0;
    for (size_t k = 0; k < c->nh; k++) {
        const long double cyc = fmodl(c->hx[k] * (long double)m, 1.0L);
        s += c->amp[k] * cos((double)(sim_two_pi_l * cyc) + c->phase[k]);
    }
    return s;
}

/* Residues (h_k p m) mod q for every harmonic of c. */
static void sim_residues(const struct sim_chan *c, uint64_t m, uint64_t *r)
{
    const uint64_t mq = m % c->q;
    for (size_t k = 0; k < c->nh; k++)
        r[k] = qes_mulmod_u64(c->step[k], mq, c->q);
}

static inline double sim_quantise(struct sim *s, double v, const struct sim_chan *c)
{
    double n = round(v / c->gain); /* halves away from zero */
    if (n > s->count_max) {
        n = s->count_max;
        s->clipped++;
    } else if (!(n >= s->count_min)) { /* also NaN (inf - inf), to the lower rail */
        n = s->count_min;
        s->clipped++;
    }
    return n;
}

/* Samples m0 .. m0 + n - 1 of channel ci into frames (interleaved). */
static void sim_gen_channel(struct sim *s, unsigned ci, uint64_t m0, size_t n, double *frames)
{
    struct sim_chan *c = &s->ch[ci];
    const unsigned nc = s->base.n_channels;
    double *out = frames + ci;
    uint64_t r[QES_SIM_MAX_HARMONICS];
    uint64_t j = 0;

    if (c->mode == SIM_TABLE)
        j = m0 % c->q;
    else if (c->mode == SIM_EXACT)
        sim_residues(c, m0, r);
    /* the filter states in a local copy: out[] could alias them for the compiler */
    double flx[SIM_FL_K];
    memcpy(flx, c->fl_x, sizeof flx);

    for (size_t i = 0; i < n; i++) {
        const uint64_t m = m0 + i;
        double v = c->offset;
        if (c->drift_per_s != 0.0)
            v = c->offset + c->drift_per_s * ((double)m / s->fs);
        double harm = 0.0;
        switch (c->mode) {
        case SIM_NONE:
            break;
        case SIM_TABLE:
            harm = c->table[j];
            if (++j == c->q)
                j = 0;
            break;
        case SIM_EXACT:
            harm = sim_harm_exact(c, r);
            for (size_t k = 0; k < c->nh; k++) {
                /* r < q and step < q, so r + step < 2q <= 2e9: no overflow */
                r[k] += c->step[k];
                if (r[k] >= c->q)
                    r[k] -= c->q;
            }
            break;
        case SIM_LONG:
            harm = sim_harm_long(c, m);
            break;
        }
        if (c->fl != SIM_FL_OFF) {
            /* phi in the unit (LEVEL) or relative to rms_0 (AMPL); four partial sums
             * break the chain of dependent additions */
            const double g = sim_gauss(&c->fl_rng);
            double p4[4] = {0.0, 0.0, 0.0, 0.0};
            for (int k = 0; k < SIM_FL_K; k++) {
                flx[k] = c->fl_a[k] * flx[k] + g;
                p4[k & 3] += c->fl_c[k] * flx[k];
            }
            const double phi = (p4[0] + p4[1]) + (p4[2] + p4[3]);
            if (c->fl == SIM_FL_AMPL)
                harm += harm * phi;
            else
                v += phi;
        }
        /* no addition without harmonics: v + 0.0 would turn -0.0 into +0.0 */
        if (c->mode != SIM_NONE)
            v += harm;
        if (c->noise_rms > 0.0)
            v += c->noise_rms * sim_gauss(&c->rng);
        if (s->adc_bits)
            v = sim_quantise(s, v, c);
        out[i * nc] = v;
    }
    memcpy(c->fl_x, flx, sizeof flx);
}

/* ---- source ops ---------------------------------------------------------------------------- */

static int64_t sim_ts_ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* Sleep until frame end_sample - 1 is due: t0 + end_sample / fs. */
static int sim_pace(struct sim *s, uint64_t end_sample)
{
    const long double due = ceill((long double)end_sample * 1e9L / (long double)s->fs);
    const int64_t deadline = sim_ts_ns(&s->t0) + (int64_t)due;
    struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000),
                          .tv_nsec = (long)(deadline % 1000000000)};
    int rc;
    while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL)) == EINTR)
        ;
    if (rc != 0) {
        snprintf(s->base.errmsg, sizeof s->base.errmsg, "sim: clock_nanosleep: %s", strerror(rc));
        return QES_EIO;
    }
    return 0;
}

static int sim_read(struct qes_source *src, struct qes_frame *f, size_t max_n)
{
    struct sim *s = (struct sim *)src;
    if (!f || max_n == 0) {
        snprintf(s->base.errmsg, sizeof s->base.errmsg,
                 "sim: read needs a frame and max_n >= 1 (got max_n = %zu)", max_n);
        return QES_EINVAL;
    }
    if (s->n_frames != 0 && s->m >= s->n_frames)
        return 0;
    if (s->realtime && !s->clock_started) {
        clock_gettime(CLOCK_MONOTONIC, &s->t0);
        s->clock_started = 1;
    }

    size_t n = max_n < s->chunk ? max_n : s->chunk;
    if (s->n_frames != 0 && s->n_frames - s->m < n)
        n = (size_t)(s->n_frames - s->m);

    /* channel-major within sub-blocks of SIM_BLOCK frames, so that the strided
     * writes of several channels stay in cache */
    const uint64_t m0 = s->m;
    for (size_t b = 0; b < n; b += SIM_BLOCK) {
        const size_t nb = n - b < SIM_BLOCK ? n - b : SIM_BLOCK;
        for (unsigned c = 0; c < s->base.n_channels; c++)
            sim_gen_channel(s, c, m0 + b, nb, s->buf + b * s->base.n_channels);
    }

    /* the noise state has moved on: so does the position, even if pacing fails */
    s->m = m0 + n;
    if (s->realtime) {
        int rc = sim_pace(s, m0 + n);
        if (rc < 0)
            return rc;
    }

    *f = (struct qes_frame){
            .first_sample = m0,
            .n = n,
            .n_channels = s->base.n_channels,
            .samples = s->buf,
            .host_time_ns =
                    s->start_ns + (int64_t)llroundl((long double)m0 * 1e9L / (long double)s->fs),
            .device_time_ns = 0,
            .has_device_time = 0,
            .lost_before = 0,
    };
    return 1;
}

static void sim_destroy(struct qes_source *src)
{
    struct sim *s = (struct sim *)src;
    if (!s)
        return;
    for (unsigned c = 0; c < QES_SIM_MAX_CHANNELS; c++)
        free(s->ch[c].table);
    free(s->buf);
    free(s);
}

static const struct qes_source_ops sim_ops = {
        .name = "sim",
        .read = sim_read,
        .destroy = sim_destroy,
};

/* Samples clipped by the ADC quantiser so far, summed over channels. */
uint64_t qes_source_sim_clipped(const struct qes_source *s)
{
    if (!s || s->ops != &sim_ops)
        return 0;
    return ((const struct sim *)s)->clipped;
}

/* ---- create -------------------------------------------------------------------------------- */

static int SIM_PRINTF(3, 4) sim_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return QES_EINVAL;
}

static int sim_validate(const struct qes_sim_desc *d, char *err, size_t errlen)
{
    if (!(d->sample_rate_hz > 0.0) || !isfinite(d->sample_rate_hz))
        return sim_fail(err, errlen, "sim: sample_rate_hz = %g must be finite and > 0",
                        d->sample_rate_hz);
    if (d->n_channels < 1 || d->n_channels > QES_SIM_MAX_CHANNELS)
        return sim_fail(err, errlen, "sim: n_channels = %u must be 1..%d", d->n_channels,
                        QES_SIM_MAX_CHANNELS);
    if (d->adc_bits == 1 || d->adc_bits > 32)
        return sim_fail(err, errlen, "sim: adc_bits = %u must be 0 (no quantisation) or 2..32",
                        d->adc_bits);
    const double nyquist = 0.5 * d->sample_rate_hz;
    for (unsigned c = 0; c < d->n_channels; c++) {
        const struct qes_sim_channel *ch = &d->ch[c];
        if (!(ch->freq_hz >= 0.0) || !isfinite(ch->freq_hz))
            return sim_fail(err, errlen, "sim: channel %u: freq_hz = %g must be finite and >= 0", c,
                            ch->freq_hz);
        if (ch->n_harmonics > QES_SIM_MAX_HARMONICS)
            return sim_fail(err, errlen, "sim: channel %u: n_harmonics = %zu must be <= %d", c,
                            ch->n_harmonics, QES_SIM_MAX_HARMONICS);
        for (size_t k = 0; k < ch->n_harmonics; k++) {
            const unsigned h = ch->harmonic[k];
            if (h < 1)
                return sim_fail(err, errlen, "sim: channel %u: harmonic[%zu] = %u must be >= 1", c,
                                k, h);
            if (!((double)h * ch->freq_hz < nyquist))
                return sim_fail(
                        err, errlen,
                        "sim: channel %u: harmonic[%zu] = %u: h * freq_hz = %.17g Hz must be below sample_rate_hz / 2 = %.17g Hz",
                        c, k, h, (double)h * ch->freq_hz, nyquist);
            if (!(ch->rms[k] >= 0.0) || !isfinite(ch->rms[k]))
                return sim_fail(err, errlen,
                                "sim: channel %u: rms[%zu] = %g must be finite and >= 0", c, k,
                                ch->rms[k]);
            if (!isfinite(ch->phase_rad[k]))
                return sim_fail(err, errlen, "sim: channel %u: phase_rad[%zu] = %g must be finite",
                                c, k, ch->phase_rad[k]);
        }
        if (!(ch->noise_rms >= 0.0) || !isfinite(ch->noise_rms))
            return sim_fail(err, errlen, "sim: channel %u: noise_rms = %g must be finite and >= 0",
                            c, ch->noise_rms);
        if (!(ch->flicker_rms >= 0.0) || !isfinite(ch->flicker_rms))
            return sim_fail(err, errlen,
                            "sim: channel %u: flicker_rms = %g must be finite and >= 0", c,
                            ch->flicker_rms);
        if (ch->flicker_rms > 0.0 && ch->n_harmonics > 0 && !(ch->rms[0] > 0.0))
            return sim_fail(
                    err, errlen,
                    "sim: channel %u: flicker_rms = %g needs rms[0] > 0: with harmonics the flicker modulates the amplitude, relative to rms[0]",
                    c, ch->flicker_rms);
        if (!isfinite(ch->offset))
            return sim_fail(err, errlen, "sim: channel %u: offset = %g must be finite", c,
                            ch->offset);
        if (!isfinite(ch->drift_per_s))
            return sim_fail(err, errlen, "sim: channel %u: drift_per_s = %g must be finite", c,
                            ch->drift_per_s);
        if (d->adc_bits > 0 && (!(ch->gain > 0.0) || !isfinite(ch->gain)))
            return sim_fail(err, errlen,
                            "sim: channel %u: gain = %g must be finite and > 0 when adc_bits > 0",
                            c, ch->gain);
    }
    return 0;
}

/*
 * Variance of the mean of n consecutive values of the flicker output with
 * weights c (unit input variance): (1 / n^2) sum_jk c_j c_k P_jk [n + S_j +
 * S_k], P_jk = 1 / (1 - a_j a_k), S = sum_{l=1}^{n-1} (n - l) a^l =
 * [n (1 - a) - a (1 - a^n)] / (1 - a)^2 - n.  The closed form cancels when
 * tau >> n (relative error ~eps tau / n): in long double that is < 1e-11 even
 * for n = 1 and tau = 6.7e7, far below what a noise amplitude needs.
 */
static long double sim_fl_mean_var(const long double *a, const long double *c,
                                   long double (*p)[SIM_FL_K], long double n)
{
    long double S[SIM_FL_K];
    for (int k = 0; k < SIM_FL_K; k++) {
        const long double d = 1.0L - a[k];
        S[k] = (n * d - a[k] * (1.0L - powl(a[k], n))) / (d * d) - n;
    }
    long double v = 0.0L;
    for (int j = 0; j < SIM_FL_K; j++)
        for (int k = 0; k < SIM_FL_K; k++)
            v += c[j] * c[k] * p[j][k] * (n + S[j] + S[k]);
    return v / (n * n);
}

/*
 * Flicker filters of one channel (see the comment at the top): coefficients,
 * scale, and a state drawn from the stationary distribution with the
 * channel's flicker stream (already positioned).  Returns 0, or QES_EINVAL
 * when the covariance is not numerically positive definite (cannot happen
 * for the fixed time constants; checked rather than assumed).
 */
static int sim_flicker_init(struct sim_chan *c, const struct qes_sim_channel *d, double fs)
{
    if (!(d->flicker_rms > 0.0)) {
        c->fl = SIM_FL_OFF;
        return 0;
    }
    long double a[SIM_FL_K], w[SIM_FL_K], p[SIM_FL_K][SIM_FL_K], l[SIM_FL_K][SIM_FL_K];
    for (int k = 0; k < SIM_FL_K; k++) {
        const long double tau = ldexpl(1.0L, 2 * k); /* 4^k samples */
        a[k] = expl(-1.0L / tau);
        w[k] = 1.0L / sqrtl(tau);
    }
    for (int j = 0; j < SIM_FL_K; j++) {
        const long double tj = ldexpl(1.0L, 2 * j);
        for (int k = 0; k < SIM_FL_K; k++) {
            const long double tk = ldexpl(1.0L, 2 * k);
            p[j][k] = -1.0L / expm1l(-(1.0L / tj + 1.0L / tk)); /* 1 / (1 - a_j a_k) */
        }
    }
    const long double n1 = fs >= 1.5 ? roundl((long double)fs) : 1.0L;
    const long double scale = (long double)d->flicker_rms / sqrtl(sim_fl_mean_var(a, w, p, n1));
    const long double rel = d->n_harmonics > 0 ? 1.0L / (long double)d->rms[0] : 1.0L;
    for (int k = 0; k < SIM_FL_K; k++) {
        c->fl_a[k] = (double)a[k];
        c->fl_c[k] = (double)(w[k] * scale * rel);
    }
    c->fl = d->n_harmonics > 0 ? SIM_FL_AMPL : SIM_FL_LEVEL;

    /* Cholesky P = L L^T; state before sample 0 = L z */
    for (int j = 0; j < SIM_FL_K; j++) {
        for (int k = 0; k <= j; k++) {
            long double t = p[j][k];
            for (int i = 0; i < k; i++)
                t -= l[j][i] * l[k][i];
            if (j == k) {
                if (!(t > 0.0L))
                    return QES_EINVAL;
                l[j][j] = sqrtl(t);
            } else {
                l[j][k] = t / l[k][k];
            }
        }
    }
    long double z[SIM_FL_K];
    for (int k = 0; k < SIM_FL_K; k++)
        z[k] = sim_gauss(&c->fl_rng);
    for (int j = 0; j < SIM_FL_K; j++) {
        long double x = 0.0L;
        for (int k = 0; k <= j; k++)
            x += l[j][k] * z[k];
        c->fl_x[j] = (double)x;
    }
    return 0;
}

/* Phase machinery of one channel; may allocate the table. */
static int sim_chan_init(struct sim_chan *c, const struct qes_sim_channel *d, double fs)
{
    c->nh = d->n_harmonics;
    for (size_t k = 0; k < c->nh; k++) {
        c->amp[k] = sqrt(2.0) * d->rms[k];
        c->phase[k] = d->phase_rad[k];
    }
    c->noise_rms = d->noise_rms;
    c->offset = d->offset;
    c->drift_per_s = d->drift_per_s;
    c->gain = d->gain;
    if (c->nh == 0) {
        c->mode = SIM_NONE;
        return 0;
    }

    const double x = d->freq_hz / fs;
    uint64_t p, q;
    if (qes_ratio_approx(x, SIM_MAX_DEN, SIM_RATIO_TOL, &p, &q) == 0) {
        c->p = p;
        c->q = q;
        for (size_t k = 0; k < c->nh; k++)
            c->step[k] = qes_mulmod_u64(d->harmonic[k] % q, p % q, q);
        if (q > SIM_TABLE_MAX) {
            c->mode = SIM_EXACT;
            return 0;
        }
        c->mode = SIM_TABLE;
        c->table = malloc((size_t)q * sizeof *c->table);
        if (!c->table)
            return QES_ENOMEM;
        uint64_t r[QES_SIM_MAX_HARMONICS];
        sim_residues(c, 0, r);
        for (uint64_t j = 0; j < q; j++) {
            c->table[j] = sim_harm_exact(c, r);
            for (size_t k = 0; k < c->nh; k++) {
                r[k] += c->step[k];
                if (r[k] >= q)
                    r[k] -= q;
            }
        }
        return 0;
    }
    c->mode = SIM_LONG;
    const long double xl = (long double)d->freq_hz / (long double)fs;
    for (size_t k = 0; k < c->nh; k++)
        c->hx[k] = (long double)d->harmonic[k] * xl;
    return 0;
}

int qes_source_sim_create(const struct qes_sim_desc *desc, struct qes_source **out, char *err,
                          size_t errlen)
{
    if (!desc || !out)
        return sim_fail(err, errlen, "sim: desc and out must not be NULL");
    *out = NULL;
    int rc = sim_validate(desc, err, errlen);
    if (rc < 0)
        return rc;

    struct sim *s = calloc(1, sizeof *s);
    if (!s)
        goto err_nomem;
    s->base.ops = &sim_ops;
    s->base.sample_rate_hz = desc->sample_rate_hz;
    s->base.n_channels = desc->n_channels;
    s->fs = desc->sample_rate_hz;
    s->adc_bits = desc->adc_bits;
    if (desc->adc_bits) {
        s->count_max = ldexp(1.0, (int)desc->adc_bits - 1) - 1.0;
        s->count_min = -ldexp(1.0, (int)desc->adc_bits - 1);
    }
    s->n_frames = desc->n_frames;
    s->realtime = desc->realtime;
    s->start_ns = desc->start_ns;
    s->chunk = SIM_CHUNK;
    if (desc->n_frames != 0 && desc->n_frames < s->chunk)
        s->chunk = (size_t)desc->n_frames;
    s->buf = malloc(s->chunk * desc->n_channels * sizeof *s->buf);
    if (!s->buf)
        goto err_free;

    uint64_t sm = desc->seed;
    uint64_t st[4], fl[4];
    for (int i = 0; i < 4; i++)
        st[i] = sim_splitmix64(&sm);
    memcpy(fl, st, sizeof fl);
    sim_xoshiro_long_jump(fl);
    for (unsigned c = 0; c < desc->n_channels; c++) {
        memcpy(s->ch[c].rng.s, st, sizeof st);
        sim_xoshiro_jump(st);
        memcpy(s->ch[c].fl_rng.s, fl, sizeof fl);
        sim_xoshiro_jump(fl);
        if (sim_chan_init(&s->ch[c], &desc->ch[c], desc->sample_rate_hz) < 0)
            goto err_free;
        if (sim_flicker_init(&s->ch[c], &desc->ch[c], desc->sample_rate_hz) < 0) {
            sim_destroy(&s->base);
            return sim_fail(err, errlen,
                            "sim: channel %u: flicker covariance not positive definite", c);
        }
    }
    *out = &s->base;
    return 0;

err_free:
    sim_destroy(&s->base);
err_nomem:
    if (err && errlen)
        snprintf(err, errlen, "sim: out of memory");
    return QES_ENOMEM;
}

/* ---- truth --------------------------------------------------------------------------------- */

/* json_object_set_new, failing on a NULL value (json_real of a non-finite
 * number, or an allocation failure); jansson frees nothing in that case. */
static int sim_set(json_t *o, const char *key, json_t *v)
{
    return v ? json_object_set_new(o, key, v) : -1;
}

/*
 * Doubles are written with 17 significant digits (JSON_REAL_PRECISION(17)),
 * which round-trips every finite double.  The seed is an integer when it fits
 * json_int_t (<= INT64_MAX), otherwise its decimal text as a JSON string.
 * Returns NULL also for a desc that qes_source_sim_create would reject
 * because of its channel or harmonic counts or a non-finite number.
 */
char *qes_sim_truth_json(const struct qes_sim_desc *desc)
{
    if (!desc || desc->n_channels > QES_SIM_MAX_CHANNELS)
        return NULL;
    char *text = NULL;
    json_t *root = json_object();
    json_t *chans = json_array();
    int bad = !root || !chans;

    if (!bad) {
        if (desc->seed <= (uint64_t)INT64_MAX) {
            bad |= sim_set(root, "seed", json_integer((json_int_t)desc->seed));
        } else {
            char buf[24];
            snprintf(buf, sizeof buf, "%" PRIu64, desc->seed);
            bad |= sim_set(root, "seed", json_string(buf));
        }
        bad |= sim_set(root, "sample_rate_hz", json_real(desc->sample_rate_hz));
        bad |= sim_set(root, "adc_bits", json_integer((json_int_t)desc->adc_bits));
    }
    for (unsigned c = 0; !bad && c < desc->n_channels; c++) {
        const struct qes_sim_channel *ch = &desc->ch[c];
        if (ch->n_harmonics > QES_SIM_MAX_HARMONICS) {
            bad = 1;
            break;
        }
        json_t *jc = json_object();
        /* append_new and set_new take the reference even when they fail */
        if (!jc || json_array_append_new(chans, jc) < 0) {
            bad = 1;
            break;
        }
        json_t *jh = json_array();
        bad |= sim_set(jc, "index", json_integer((json_int_t)c));
        bad |= sim_set(jc, "freq_hz", json_real(ch->freq_hz));
        bad |= sim_set(jc, "harmonics", jh);
        for (size_t k = 0; !bad && k < ch->n_harmonics; k++) {
            json_t *e = json_object();
            if (!e || json_array_append_new(jh, e) < 0) {
                bad = 1;
                break;
            }
            bad |= sim_set(e, "h", json_integer((json_int_t)ch->harmonic[k]));
            bad |= sim_set(e, "rms", json_real(ch->rms[k]));
            bad |= sim_set(e, "phase_rad", json_real(ch->phase_rad[k]));
        }
        bad |= sim_set(jc, "noise_rms", json_real(ch->noise_rms));
        bad |= sim_set(jc, "flicker_rms", json_real(ch->flicker_rms));
        bad |= sim_set(jc, "offset", json_real(ch->offset));
        bad |= sim_set(jc, "drift_per_s", json_real(ch->drift_per_s));
        bad |= sim_set(jc, "gain", json_real(ch->gain));
    }
    if (!bad) {
        const int rc = sim_set(root, "channels", chans);
        chans = NULL; /* taken by root, even on failure */
        if (rc == 0)
            text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17));
    }
    json_decref(chans);
    json_decref(root);
    return text;
}
