/*
 * Simulated source: sums of harmonic sines with white Gaussian noise, linear
 * drift and offset, quantised like an ADC, on several channels, deterministic
 * from a seed.
 *
 * Channel c produces, in its unit (e.g. volts), at run sample m:
 *     v(m) = offset + drift_per_s * m / fs + noise
 *            + sum_k sqrt(2) rms_k cos(2 pi h_k f m / fs + phase_k)
 * with the phase computed exactly in integers when f/fs is a ratio of integers
 * with denominator <= 1e9 (the usual case), in long double otherwise.  With
 * adc_bits > 0 the value is quantised to round(v / gain) and clipped to the
 * signed range of adc_bits; the source then delivers counts.  With
 * adc_bits == 0 it delivers v unquantised (for rf64 captures).
 *
 * Flicker.  flicker_rms > 0 adds a stationary Gaussian 1/f process phi(m),
 * in the channel's unit, to the level of what the source produces, as a
 * Zener reference's output or a calibrator's amplitude wanders:
 *  - no harmonics (a DC source): v(m) = offset + drift + phi(m) + noise;
 *  - with harmonics (an AC source): every harmonic is scaled by
 *    1 + phi(m) / rms_0, so the RMS amplitude of the first listed harmonic
 *    is rms_0 + phi(m) and the waveform keeps its shape (rms_0 must then be
 *    > 0); offset and drift are not modulated.
 * flicker_rms is the standard deviation of the mean of phi over one second,
 * i.e. over max(1, round(fs)) consecutive samples, taken over the ensemble
 * (phi has ensemble mean 0).  The power density of phi falls as 1/f within
 * +-0.44 dB from 1e-7 fs to fs / 2 and is white below ~2.4e-9 fs (longest
 * time constant 4^13 samples), so the mean of a run does not settle as
 * 1/sqrt(n).  Its Allan deviation is flat (within 3.5 % from 1 to 1e5
 * samples, 11 % down at 1e7) at a level below flicker_rms that depends on fs,
 * because the one-second mean also holds the slow wander down to the white
 * corner: 0.35 flicker_rms at fs = 1 kHz, 0.39 at 10 kHz, 0.54 at 1 MHz.
 * Over a run much shorter than 1e7 samples, the run mean therefore scatters
 * around the ensemble mean ~2x more than the Allan deviation at the run's
 * length says (the classical flicker divergence).  phi comes from a random
 * stream of its own: the samples of a desc with flicker_rms = 0 do not depend
 * on this feature.
 */
#ifndef QES_HW_SOURCE_SIM_H
#define QES_HW_SOURCE_SIM_H

#include "hw/source.h"

#define QES_SIM_MAX_HARMONICS 32
#define QES_SIM_MAX_CHANNELS  16

struct qes_sim_channel {
    double freq_hz;                           /* fundamental, >= 0 */
    size_t n_harmonics;                       /* 0..QES_SIM_MAX_HARMONICS */
    unsigned harmonic[QES_SIM_MAX_HARMONICS]; /* h >= 1 */
    double rms[QES_SIM_MAX_HARMONICS];        /* RMS amplitude, unit */
    double phase_rad[QES_SIM_MAX_HARMONICS];  /* phase at sample 0 */
    double noise_rms;                         /* white Gaussian, unit, >= 0 */
    double flicker_rms; /* 1/f (flicker) noise of the source's level, unit, >= 0: the
                           standard deviation of its mean over one second (see the top) */
    double offset;      /* unit */
    double drift_per_s; /* unit per second */
    double gain;        /* unit per count (adc_bits > 0), > 0 */
};

struct qes_sim_desc {
    double sample_rate_hz; /* > 0 */
    unsigned n_channels;   /* 1..QES_SIM_MAX_CHANNELS */
    struct qes_sim_channel ch[QES_SIM_MAX_CHANNELS];
    unsigned adc_bits; /* 0 (no quantisation) or 2..32 */
    uint64_t seed;
    uint64_t n_frames; /* total samples per channel; 0 = unlimited */
    int realtime;      /* nonzero: pace delivery at sample_rate_hz on the host clock */
    int64_t start_ns;  /* UTC of sample 0 */
};

/* Returns 0 and *out, or QES_EINVAL with a message in err. */
int qes_source_sim_create(const struct qes_sim_desc *desc, struct qes_source **out, char *err,
                          size_t errlen);

/* Samples clipped at the ADC rails so far (all channels); 0 for another
 * kind of source. */
uint64_t qes_source_sim_clipped(const struct qes_source *s);

/*
 * The truth of a simulation as a JSON object text (caller frees), for the
 * `qes:sim` member of a capture's metadata.  NULL on allocation failure.
 */
char *qes_sim_truth_json(const struct qes_sim_desc *desc);

#endif
