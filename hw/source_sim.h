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
    double flicker_rms; /* 1/f (flicker) noise, unit, >= 0: RMS of the noise averaged over
                           one second (its power density falls as 1/f from the sample
                           rate down to ~1e-7 fs), so the mean of a run does not settle */
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
