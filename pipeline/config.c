#include "pipeline/config.h"
#include "common/err.h"

#include <ini.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRC(field) \
    offsetof(struct qes_cfg_source, field), sizeof(((struct qes_cfg_source *)0)->field), 0
#define CH(field) \
    offsetof(struct qes_cfg_channel, field), sizeof(((struct qes_cfg_channel *)0)->field), 0
#define MS(field) \
    offsetof(struct qes_cfg_measure, field), sizeof(((struct qes_cfg_measure *)0)->field), 0
#define TB(field) \
    offsetof(struct qes_cfg_typeb, field), sizeof(((struct qes_cfg_typeb *)0)->field), 0
#define REC(field) \
    offsetof(struct qes_cfg_record, field), sizeof(((struct qes_cfg_record *)0)->field), 0
#define RUN(field) offsetof(struct qes_cfg_run, field), sizeof(((struct qes_cfg_run *)0)->field), 0
#define MS_LIST(field)                                         \
    offsetof(struct qes_cfg_measure, field), QES_CFG_MAX_LIST, \
            offsetof(struct qes_cfg_measure, n_##field)
#define SIM(field) offsetof(struct qes_cfg_sim, field), 0, 0
#define SIM_LIST(field) \
    offsetof(struct qes_cfg_sim, field), QES_CFG_MAX_LIST, offsetof(struct qes_cfg_sim, n_##field)

#define BIG 1e300

/*
 * The option table.  Order is the order of `qes help config`, of the
 * canonical configuration and of configs/reference.ini.
 */
const struct qes_option qes_options[] = {
        {QES_SEC_SOURCE, "kind", QES_OPT_ENUM, SRC(kind), "", 0, 0, "sigmf", "sigmf|sim|iio",
         "where samples come from: a SigMF capture (replay), the simulator, or a live ADC/SDR "
         "through libiio (qes run)"},
        {QES_SEC_SOURCE, "path", QES_OPT_STRING, SRC(path), "", 0, 0, "", NULL,
         "kind = sigmf: the capture's .sigmf-meta file (the replay command line sets it)"},
        {QES_SEC_SOURCE, "sample_rate_hz", QES_OPT_DOUBLE, SRC(sample_rate_hz), "Hz", 0, 1e10,
         "100000", NULL,
         "kind = sim: sample rate of the simulated digitizer (> 0); kind = iio: written to the "
         "device's sampling_frequency and read back, a mismatch is an error (0 = keep the "
         "device's rate)"},
        {QES_SEC_SOURCE, "seconds", QES_OPT_DOUBLE, SRC(seconds), "s", 0, 1e7, "10", NULL,
         "kind = sim: length of the simulation; kind = iio: length of the run in samples x "
         "rate (lost samples count); 0 runs until stopped (qes run only)"},
        {QES_SEC_SOURCE, "adc_bits", QES_OPT_UINT, SRC(adc_bits), "bit", 0, 32, "24", NULL,
         "kind = sim: ADC resolution; samples are rounded to counts of the channel gain and clipped "
         "to the signed range; 0 disables quantisation (float samples)"},
        {QES_SEC_SOURCE, "datatype", QES_OPT_ENUM, SRC(datatype), "", 0, 0, "auto",
         "auto|ri16_le|ri32_le|rf32_le|rf64_le",
         "qes simulate: capture datatype; auto picks ri16_le up to 16 bits, ri32_le up to 32, "
         "rf64_le without quantisation"},
        {QES_SEC_SOURCE, "seed", QES_OPT_U64, SRC(seed), "", 0, 1.8446744073709552e19, "1", NULL,
         "kind = sim: seed of the noise generator; equal seeds give equal samples"},
        {QES_SEC_SOURCE, "start_time", QES_OPT_STRING, SRC(start_time), "UTC", 0, 0, "now", NULL,
         "kind = sim: UTC time of sample 0 as YYYY-MM-DDTHH:MM:SS[.f]Z, or now"},
        {QES_SEC_SOURCE, "uri", QES_OPT_STRING, SRC(uri), "", 0, 0, "", NULL,
         "kind = iio: libiio context, ip:HOST[:PORT] (iiod), usb:BUS.DEV.INTF or local:; empty = "
         "libiio's default (IIOD_REMOTE, else local)"},
        {QES_SEC_SOURCE, "device", QES_OPT_STRING, SRC(device), "", 0, 0, "", NULL,
         "kind = iio: the ADC, by name, id (iio:device0) or label (iio_info -u URI lists them)"},
        {QES_SEC_SOURCE, "buffer_samples", QES_OPT_UINT, SRC(buffer_samples), "samples", 16, 1e7,
         "4096", NULL,
         "kind = iio: samples per channel per buffer refill; latency grows with it, overhead "
         "shrinks"},
        {QES_SEC_SOURCE, "kernel_buffers", QES_OPT_UINT, SRC(kernel_buffers), "", 1, 64, "4", NULL,
         "kind = iio: buffers queued in the kernel (absorb scheduling hiccups)"},
        {QES_SEC_SOURCE, "timeout_ms", QES_OPT_UINT, SRC(timeout_ms), "ms", 1, 600000, "2000", NULL,
         "kind = iio: a refill that takes longer is a device loss (reconnection follows)"},
        {QES_SEC_SOURCE, "reconnect_max_s", QES_OPT_DOUBLE, SRC(reconnect_max_s), "s", 0.01, 3600,
         "5", NULL,
         "kind = iio: longest wait between reconnection attempts (back-off doubles from 0.1 s)"},
        {QES_SEC_SOURCE, "give_up_s", QES_OPT_DOUBLE, SRC(give_up_s), "s", 0, 1e7, "0", NULL,
         "kind = iio: end the run (final summaries written, exit 2) after the device has been "
         "away this long; 0 = keep trying until stopped"},

        {QES_SEC_CHANNEL, "index", QES_OPT_UINT, CH(index), "", 0, 65535, NULL, NULL,
         "channel index in the source (SigMF interleaved channel, from 0)"},
        {QES_SEC_CHANNEL, "gain", QES_OPT_DOUBLE_AUTO, CH(gain), "unit/count", -BIG, BIG, "auto",
         NULL,
         "value = gain * raw + offset; the ADC scale for integer samples, 1 for float captures "
         "already in the unit; auto = the device's scale attribute (kind = iio; mV per count "
         "in IIO, so 1e-3 x scale for V), else 1"},
        {QES_SEC_CHANNEL, "offset", QES_OPT_DOUBLE, CH(offset), "unit", -BIG, BIG, "0", NULL,
         "added after the gain"},
        {QES_SEC_CHANNEL, "iio_channel", QES_OPT_STRING, CH(iio_channel), "", 0, 0, "", NULL,
         "kind = iio: the device channel (id or name, e.g. voltage0) delivered at this index; "
         "empty = the index-th input scan element (give all or none)"},
        {QES_SEC_CHANNEL, "unit", QES_OPT_STRING, CH(unit), "", 0, 0, "V", NULL,
         "unit of the channel's values (V, A, ...)"},
        {QES_SEC_CHANNEL, "u_gain_rel", QES_OPT_DOUBLE, CH(u_gain_rel), "1", 0, 1, "0", NULL,
         "Type B standard uncertainty of the gain, relative (normal, infinite degrees of freedom)"},
        {QES_SEC_CHANNEL, "clip_counts", QES_OPT_DOUBLE, CH(clip_counts), "count", 0, BIG, "0",
         NULL,
         "raw magnitude at or above which a sample counts as clipped and flags its block `clip`; "
         "0 = off (a simulated ADC sets its full scale)"},

        {QES_SEC_CHANNEL, "freq_response", QES_OPT_STRING, CH(freq_response), "", 0, 0, "", NULL,
         "calibration: CSV file (relative to the configuration file) of f_hz, gain_rel, "
         "u_gain_rel, phase_rad, u_phase_rad rows; phasors are divided by the interpolated "
         "response and its uncertainty enters the budget; \"\" = flat"},
        {QES_SEC_CHANNEL, "aperture_s", QES_OPT_DOUBLE, CH(aperture_s), "s", 0, 1, "0", NULL,
         "calibration: sampling aperture t_a; values are divided by sinc(pi f t_a); 0 = none"},
        {QES_SEC_CHANNEL, "u_aperture_s", QES_OPT_DOUBLE, CH(u_aperture_s), "s", 0, 1, "0", NULL,
         "calibration: standard uncertainty of aperture_s"},
        {QES_SEC_CHANNEL, "aperture_ref", QES_OPT_ENUM, CH(aperture_ref), "", 0, 0, "centred",
         "centred|ends|starts", "calibration: where the aperture sits relative to the time stamp"},
        {QES_SEC_CHANNEL, "u_timebase_rel", QES_OPT_DOUBLE, CH(u_timebase_rel), "1", 0, 1e-2, "0",
         NULL,
         "calibration: standard uncertainty of the sample clock's relative frequency (an "
         "uncertainty term only: correct a known offset in the capture's sample rate)"},
        {QES_SEC_CHANNEL, "delay_s", QES_OPT_DOUBLE, CH(delay_s), "s", -1, 1, "0", NULL,
         "calibration: delay of this channel (late by delay_s); phases are corrected by "
         "2 pi f delay_s"},
        {QES_SEC_CHANNEL, "u_delay_s", QES_OPT_DOUBLE, CH(u_delay_s), "s", 0, 1, "0", NULL,
         "calibration: standard uncertainty of delay_s"},

        {QES_SEC_MEASURE, "channel", QES_OPT_STRING, MS(channel), "", 0, 0, "", NULL,
         "name of the [channel.NAME] section measured (every method but ratio)"},
        {QES_SEC_MEASURE, "method", QES_OPT_ENUM, MS(method), "", 0, 0, "fft",
         "fft|dft|sinefit3|sinefit4|ipdft|demod|reversal|steps|ratio",
         "estimator: fft/dft = coherent block lock-in; sinefit3 = IEEE 1241 fit at freq_hz "
         "(several harmonics: multi-harmonic fit); sinefit4 = the same with the frequency "
         "estimated; ipdft = interpolated DFT (Hann); demod = streaming dual-phase "
         "demodulator; reversal = DC polarity reversals; steps = AC-PJVS differential sampling; "
         "ratio = complex ratio of two other measurements, times a quantum reference"},
        {QES_SEC_MEASURE, "freq_hz", QES_OPT_DOUBLE_AUTO, MS(freq_hz), "Hz", 0, 1e10, "0", NULL,
         "reference (fundamental) frequency, or auto to estimate it in every block (sinefit4, "
         "ipdft); required by every method but reversal; fft/dft need block_periods * fs / "
         "freq_hz to be an integer"},
        {QES_SEC_MEASURE, "harmonics", QES_OPT_ULIST, MS_LIST(harmonics), "", 1, 1e6, "1", NULL,
         "harmonics of freq_hz to measure, comma-separated (1 = fundamental)"},
        {QES_SEC_MEASURE, "block_periods", QES_OPT_UINT, MS(block_periods), "periods", 1, 1e7, "10",
         NULL, "block length in reference periods"},
        {QES_SEC_MEASURE, "block_samples", QES_OPT_UINT, MS(block_samples), "samples", 0, 1e9, "0",
         NULL,
         "block length in samples for non-coherent methods (sinefit3/4, ipdft); 0 = "
         "block_periods / freq_hz * fs rounded (needed with freq_hz = auto)"},
        {QES_SEC_MEASURE, "window", QES_OPT_ENUM, MS(window), "", 0, 0, "rect",
         "rect|hann|blackmanharris|flattop|kaiser",
         "window with coherent-gain correction (fft, dft); flattop = HFT248D; windows leaking "
         "L bins need harmonic bins h*block_periods more than L apart"},
        {QES_SEC_MEASURE, "kaiser_beta", QES_OPT_DOUBLE, MS(kaiser_beta), "", 0.1, 50, "8.6", NULL,
         "shape of the Kaiser window"},
        {QES_SEC_MEASURE, "coverage", QES_OPT_DOUBLE, MS(coverage), "1", 0.5, 0.9999, "0.95", NULL,
         "coverage probability of the expanded uncertainty U = k u"},
        {QES_SEC_MEASURE, "typeA_horizon_s", QES_OPT_DOUBLE, MS(typeA_horizon_s), "s", 0, 1e12, "0",
         NULL,
         "time over which the value is claimed to hold (e.g. the interval a reference's value "
         "is used for); when the block results are not white, each octave between the run's "
         "length and this horizon adds Allan variance to Type A (flicker: half an AVAR per "
         "octave; dsp/allan.h); 0 = the run itself. White noise is not affected"},
        {QES_SEC_MEASURE, "include_flagged", QES_OPT_BOOL, MS(include_flagged), "", 0, 0, "false",
         NULL,
         "include blocks flagged clip or quality in the summary (gap and partial blocks have "
         "no value and are never included)"},
        {QES_SEC_MEASURE, "quality", QES_OPT_BOOL, MS(quality), "", 0, 0, "false", NULL,
         "compute THD, SINAD and SFDR of every block (block methods) and add them to the block "
         "records"},
        {QES_SEC_MEASURE, "thd_max", QES_OPT_DOUBLE, MS(thd_max), "1", 0, 1e6, "0", NULL,
         "flag a block `quality` when its THD (ratio) exceeds this; 0 = no bound"},
        {QES_SEC_MEASURE, "sinad_min_db", QES_OPT_DOUBLE, MS(sinad_min_db), "dB", 0, 400, "0", NULL,
         "flag a block `quality` when its SINAD is below this; 0 = no bound"},
        {QES_SEC_MEASURE, "sfdr_min_db", QES_OPT_DOUBLE, MS(sfdr_min_db), "dB", 0, 400, "0", NULL,
         "flag a block `quality` when its SFDR is below this; 0 = no bound"},
        {QES_SEC_MEASURE, "tau_s", QES_OPT_DOUBLE, MS(tau_s), "s", 1e-9, 1e6, "0.1", NULL,
         "demod: time constant of each first-order low-pass stage"},
        {QES_SEC_MEASURE, "order", QES_OPT_UINT, MS(order), "", 1, 8, "4", NULL,
         "demod: number of identical first-order stages, H(s) = 1/(1 + s tau)^order"},
        {QES_SEC_MEASURE, "output_rate_hz", QES_OPT_DOUBLE, MS(output_rate_hz), "Hz", 1e-6, 1e9,
         "100", NULL, "demod: output rate; fs / output_rate_hz must be an integer"},
        {QES_SEC_MEASURE, "settle_tau", QES_OPT_DOUBLE, MS(settle_tau), "tau", 0, 1e3, "5", NULL,
         "demod: outputs are flagged `settling` for this many time constants after the start, "
         "a gap or any change"},
        {QES_SEC_MEASURE, "sinc_periods", QES_OPT_UINT, MS(sinc_periods), "periods", 0, 1e6, "0",
         NULL,
         "demod: moving average over this many reference periods (nulls the 2f ripple); 0 = off"},
        {QES_SEC_MEASURE, "half_period_s", QES_OPT_DOUBLE, MS(half_period_s), "s", 0, 1e6, "0",
         NULL,
         "reversal: time per polarity when the sequence is a schedule starting at sample 0 with "
         "the pattern's first sign; 0 = use polarity_channel"},
        {QES_SEC_MEASURE, "polarity_channel", QES_OPT_STRING, MS(polarity_channel), "", 0, 0, "",
         NULL, "reversal: channel whose sign gives the polarity (when half_period_s = 0)"},
        {QES_SEC_MEASURE, "pattern", QES_OPT_ENUM, MS(pattern), "", 0, 0, "+--+", "+--+|+-",
         "reversal: one cycle of the polarity sequence: +--+ (groups of four readings) or +- "
         "(drift-cancelling triples of half-cycles); no two estimates share a half-cycle"},
        {QES_SEC_MEASURE, "settle_s", QES_OPT_DOUBLE, MS(settle_s), "s", 0, 1e6, "0", NULL,
         "reversal: discarded after each reversal"},
        {QES_SEC_MEASURE, "steps_per_period", QES_OPT_UINT, MS(steps_per_period), "", 0, 1e6, "0",
         NULL, "steps: PJVS steps per period of freq_hz"},
        {QES_SEC_MEASURE, "f_j_hz", QES_OPT_DOUBLE, MS(f_j_hz), "Hz", 0, 1e13, "0", NULL,
         "steps: Josephson drive frequency f_J (a step of n junctions is n f_J / K_J)"},
        {QES_SEC_MEASURE, "steps", QES_OPT_DLIST, offsetof(struct qes_cfg_measure, steps),
         QES_CFG_MAX_LIST * 4, offsetof(struct qes_cfg_measure, n_steps), "junctions", -1e9, 1e9,
         "0", NULL, "steps: signed junction count of each step over one period"},
        {QES_SEC_MEASURE, "numerator", QES_OPT_STRING, MS(numerator), "", 0, 0, "", NULL,
         "ratio: the [measure.NAME] (a phasor method) on top of the complex ratio"},
        {QES_SEC_MEASURE, "denominator", QES_OPT_STRING, MS(denominator), "", 0, 0, "", NULL,
         "ratio: the [measure.NAME] below it; both must have the same block length, and their "
         "simultaneous blocks give the covariance carried into the ratio's uncertainty"},
        {QES_SEC_MEASURE, "reference", QES_OPT_ENUM, MS(reference), "", 0, 0, "none",
         "none|pjvs|qhr",
         "ratio: quantum value the ratio multiplies: pjvs V = pjvs_n f_j_hz / K_J (the "
         "denominator measures the Josephson voltage), qhr R = R_K / qhr_plateau; K_J = 2e/h and "
         "R_K = h/e^2 exact (SI 2019)"},
        {QES_SEC_MEASURE, "pjvs_n", QES_OPT_DOUBLE, MS(pjvs_n), "junctions", -1e9, 1e9, "0", NULL,
         "ratio, reference = pjvs: junctions n of the reference voltage (RMS of the synthesised "
         "waveform in units of f_J / K_J)"},
        {QES_SEC_MEASURE, "u_fj_rel", QES_OPT_DOUBLE, MS(u_fj_rel), "1", 0, 1e-3, "0", NULL,
         "ratio, reference = pjvs: relative standard uncertainty of f_j_hz (the microwave "
         "reference)"},
        {QES_SEC_MEASURE, "qhr_plateau", QES_OPT_UINT, MS(qhr_plateau), "", 0, 1000, "0", NULL,
         "ratio, reference = qhr: plateau i (R = R_K / i)"},
        {QES_SEC_MEASURE, "mask_after", QES_OPT_UINT_AUTO, MS(mask_after), "samples", 0, 1e9, "60",
         NULL, "steps: samples masked after each edge, or auto"},
        {QES_SEC_MEASURE, "mask_before", QES_OPT_UINT_AUTO, MS(mask_before), "samples", 0, 1e9,
         "10", NULL, "steps: samples masked before each edge, or auto"},

        {QES_SEC_SIM, "freq_hz", QES_OPT_DOUBLE, SIM(freq_hz), "Hz", 0, 1e10, "1000", NULL,
         "simulated fundamental frequency"},
        {QES_SEC_SIM, "harmonics", QES_OPT_ULIST, SIM_LIST(harmonics), "", 1, 1e6, "1", NULL,
         "simulated harmonics"},
        {QES_SEC_SIM, "rms", QES_OPT_DLIST, SIM_LIST(rms), "unit", 0, BIG, "1", NULL,
         "RMS amplitude of each simulated harmonic"},
        {QES_SEC_SIM, "phase_rad", QES_OPT_DLIST, SIM_LIST(phase_rad), "rad", -1e6, 1e6, "0", NULL,
         "phase at sample 0 of each simulated harmonic (same count as harmonics)"},
        {QES_SEC_SIM, "noise_rms", QES_OPT_DOUBLE, SIM(noise_rms), "unit", 0, BIG, "0", NULL,
         "white Gaussian noise, RMS"},
        {QES_SEC_SIM, "flicker_rms", QES_OPT_DOUBLE, SIM(flicker_rms), "unit", 0, BIG, "0", NULL,
         "1/f (flicker) noise: standard deviation of the noise averaged over one second; added "
         "to the DC level of a channel without harmonics (a Zener reference, a bridge "
         "detector), an amplitude noise of the harmonics otherwise (a drifting AC source)"},
        {QES_SEC_SIM, "offset", QES_OPT_DOUBLE, SIM(offset), "unit", -BIG, BIG, "0", NULL,
         "DC offset of the simulated signal"},
        {QES_SEC_SIM, "drift_per_s", QES_OPT_DOUBLE, SIM(drift_per_s), "unit/s", -BIG, BIG, "0",
         NULL, "linear drift of the simulated signal"},

        {QES_SEC_TYPEB, "measure", QES_OPT_STRING, TB(measure), "", 0, 0, NULL, NULL,
         "the [measure.NAME] whose summary budget gets this component"},
        {QES_SEC_TYPEB, "harmonic", QES_OPT_UINT, TB(harmonic), "", 0, 1e6, "0", NULL,
         "the harmonic it applies to (phasor methods); 0 = every harmonic"},
        {QES_SEC_TYPEB, "distribution", QES_OPT_ENUM, TB(distribution), "", 0, 0, "normal",
         "normal|rectangular|triangular|ushaped",
         "normal: u (with coverage factor k); the others: half_width a, giving a/sqrt(3), "
         "a/sqrt(6), a/sqrt(2)"},
        {QES_SEC_TYPEB, "u", QES_OPT_DOUBLE, TB(u), "unit", 0, BIG, "0", NULL,
         "normal: the uncertainty, expanded with k (k = 1: standard uncertainty)"},
        {QES_SEC_TYPEB, "k", QES_OPT_DOUBLE, TB(k), "", 0.1, 100, "1", NULL,
         "normal: coverage factor of u, as on a certificate"},
        {QES_SEC_TYPEB, "half_width", QES_OPT_DOUBLE, TB(half_width), "unit", 0, BIG, "0", NULL,
         "rectangular, triangular, ushaped: half-width a of the distribution"},
        {QES_SEC_TYPEB, "relative", QES_OPT_BOOL, TB(relative), "", 0, 0, "false", NULL,
         "u and half_width are relative to the measured value (e.g. 1e-6)"},
        {QES_SEC_TYPEB, "sensitivity", QES_OPT_DOUBLE, TB(sensitivity), "", -BIG, BIG, "1", NULL,
         "sensitivity coefficient c of the measured value to this input"},
        {QES_SEC_TYPEB, "dof", QES_OPT_DOUBLE, TB(dof), "", 0, BIG, "0", NULL,
         "degrees of freedom of the component; 0 = infinite (GUM G.4.2 for a Type B taken "
         "as exact)"},

        {QES_SEC_RECORD, "sqlite_synchronous", QES_OPT_ENUM, REC(sqlite_synchronous), "", 0, 0,
         "FULL", "FULL|NORMAL|OFF",
         "SQLite durability: FULL syncs the log at every commit, so an acknowledged record "
         "survives a power loss; NORMAL survives a crash of qes but may lose the last commits on "
         "power loss; OFF is fastest and may corrupt the file on power loss"},
        {QES_SEC_RECORD, "batch_s", QES_OPT_DOUBLE, REC(batch_s), "s", 0.001, 3600, "1", NULL,
         "database sinks commit a transaction at least this often (a record counts as written "
         "only once committed)"},
        {QES_SEC_RECORD, "batch_records", QES_OPT_UINT, REC(batch_records), "", 1, 1e7, "10000",
         NULL, "... or after this many records"},
        {QES_SEC_RECORD, "spool_path", QES_OPT_STRING, REC(spool_path), "", 0, 0, "qes-spool.db",
         NULL,
         "PostgreSQL: local spool (SQLite) that keeps records while the server is unreachable "
         "and drains when it returns"},
        {QES_SEC_RECORD, "spool_max_mb", QES_OPT_DOUBLE, REC(spool_max_mb), "MB", 1, 1e7, "1024",
         NULL, "PostgreSQL: bound of the spool; records beyond it are counted lost (exit 3)"},
        {QES_SEC_RECORD, "zmq_hwm", QES_OPT_UINT, REC(zmq_hwm), "messages", 1, 1e7, "1000", NULL,
         "live stream: ZeroMQ high-water mark; messages dropped beyond it are counted (best "
         "effort, for dashboards)"},

        {QES_SEC_RUN, "summary_every_s", QES_OPT_DOUBLE, RUN(summary_every_s), "s", 0, 1e7, "0",
         NULL, "qes run: write intermediate summaries this often (0 = only at the end)"},
        {QES_SEC_RUN, "progress", QES_OPT_ENUM, RUN(progress), "", 0, 0, "auto", "auto|on|off",
         "progress on stderr: auto = only when stderr is a terminal"},
        {QES_SEC_RUN, "record_raw", QES_OPT_STRING, RUN(record_raw), "", 0, 0, "", NULL,
         "qes run: also write the raw samples as a SigMF capture PATH (.sigmf-meta/-data), gaps "
         "as capture segments, for qes replay later; empty = no raw recording"},
        {QES_SEC_RUN, "raw_rotate_mb", QES_OPT_DOUBLE, RUN(raw_rotate_mb), "MB", 0, 1e9, "0", NULL,
         "start a new raw file PATH-0002, ... after this many MB of data (0 = one file)"},
        {QES_SEC_RUN, "raw_rotate_s", QES_OPT_DOUBLE, RUN(raw_rotate_s), "s", 0, 1e9, "0", NULL,
         "... or after this many seconds of samples (0 = never)"},
        {QES_SEC_RUN, "ring_slots", QES_OPT_UINT, RUN(ring_slots), "buffers", 2, 65536, "256", NULL,
         "qes run, live sources: buffers between acquisition and processing; when all are full "
         "whole buffers are dropped, counted and flagged"},
        {QES_SEC_RUN, "lock_memory", QES_OPT_BOOL, RUN(lock_memory), "", 0, 0, "false", NULL,
         "live: mlockall, so that paging never stalls acquisition (warning if not permitted)"},
        {QES_SEC_RUN, "rt_priority", QES_OPT_UINT, RUN(rt_priority), "", 0, 99, "0", NULL,
         "live: SCHED_FIFO priority of the acquisition thread, 1..99; 0 = normal scheduling "
         "(warning if not permitted)"},
        {QES_SEC_RUN, "busy_poll_us", QES_OPT_UINT, RUN(busy_poll_us), "us", 0, 1e6, "0", NULL,
         "live: the processing thread spins up to this long for the next buffer before "
         "sleeping; longer than the buffer period keeps it spinning, costing a core and "
         "saving the ~100 us wake-up of a sleeping thread (0 = always sleep)"},
        {QES_SEC_RUN, "cpu", QES_OPT_INT, RUN(cpu), "", -1, 1023, "-1", NULL,
         "live: pin the acquisition thread to this CPU; -1 = no pinning"},
};
const size_t qes_n_options = sizeof qes_options / sizeof qes_options[0];

static const char *const section_names[QES_SEC_COUNT] = {"source", "channel", "measure", "sim",
                                                         "run",    "typeb",   "record"};
static const int section_named[QES_SEC_COUNT] = {0, 1, 1, 1, 0, 1, 0};

static const char *const section_help[QES_SEC_COUNT] = {
        "where samples come from",
        "one per digitizer channel used: NAME is how measurements refer to it",
        "one per measurement: NAME appears in every record",
        "simulated signal of channel NAME (kind = sim and qes simulate)",
        "run-time behaviour",
        "a Type B component (certificate, resolution, ...) in a measurement's budget",
        "how results are recorded (sinks given with -o)",
};

/* ---- value parsing ---------------------------------------------------- */

static const char *skip_ws(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

/* Parse a double that fills the whole token. */
static int parse_double(const char *s, double *out)
{
    char *end;
    s = skip_ws(s);
    if (!*s)
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(v))
        return -1;
    end = (char *)skip_ws(end);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    s = skip_ws(s);
    if (!*s || *s == '-' || *s == '+')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno == ERANGE)
        return -1;
    end = (char *)skip_ws(end);
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off",
                                                                             "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcmp(s, t[i])) {
            *out = 1;
            return 0;
        }
        if (!strcmp(s, f[i])) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && !strncmp(p, v, n))
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

static void fmt_range(const struct qes_option *o, char *buf, size_t len)
{
    snprintf(buf, len, "%.10g..%.10g%s%s", o->min, o->max, o->unit[0] ? " " : "", o->unit);
}

/* Store text `value` into the field described by o in section struct base. */
static int store_value(const struct qes_option *o, void *base, const char *value, char *why,
                       size_t whylen)
{
    char *field = (char *)base + o->offset;
    char range[128];
    fmt_range(o, range, sizeof range);
    switch (o->type) {
    case QES_OPT_STRING:
    case QES_OPT_ENUM:
        if (o->type == QES_OPT_ENUM && !in_choices(o->choices, value)) {
            snprintf(why, whylen, "\"%s\" is not one of %s", value, o->choices);
            return -1;
        }
        if (strlen(value) >= o->size) {
            snprintf(why, whylen, "value longer than %zu characters", o->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    case QES_OPT_DOUBLE: {
        double v;
        if (parse_double(value, &v)) {
            snprintf(why, whylen, "\"%s\" is not a finite number", value);
            return -1;
        }
        if (v < o->min || v > o->max) {
            snprintf(why, whylen, "%.17g is out of range %s", v, range);
            return -1;
        }
        *(double *)(void *)field = v;
        return 0;
    }
    case QES_OPT_INT: {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (end == value || *end != '\0' || errno == ERANGE) {
            snprintf(why, whylen, "\"%s\" is not an integer", value);
            return -1;
        }
        if ((double)v < o->min || (double)v > o->max) {
            snprintf(why, whylen, "%lld is out of range %s", v, range);
            return -1;
        }
        *(int *)(void *)field = (int)v;
        return 0;
    }
    case QES_OPT_UINT:
    case QES_OPT_U64: {
        uint64_t v;
        if (parse_u64(value, &v)) {
            snprintf(why, whylen, "\"%s\" is not a non-negative integer", value);
            return -1;
        }
        if ((double)v < o->min || (double)v > o->max) {
            snprintf(why, whylen, "%llu is out of range %s", (unsigned long long)v, range);
            return -1;
        }
        if (o->type == QES_OPT_UINT)
            *(unsigned *)(void *)field = (unsigned)v;
        else
            *(uint64_t *)(void *)field = v;
        return 0;
    }
    case QES_OPT_DOUBLE_AUTO:
    case QES_OPT_UINT_AUTO: {
        if (!strcmp(value, "auto")) {
            if (o->type == QES_OPT_DOUBLE_AUTO)
                *(double *)(void *)field = QES_CFG_AUTO_D;
            else
                *(unsigned *)(void *)field = QES_CFG_AUTO_U;
            return 0;
        }
        struct qes_option plain = *o;
        plain.type = o->type == QES_OPT_DOUBLE_AUTO ? QES_OPT_DOUBLE : QES_OPT_UINT;
        if (store_value(&plain, base, value, why, whylen)) {
            size_t l = strlen(why);
            snprintf(why + l, whylen - l, " (or auto)");
            return -1;
        }
        return 0;
    }
    case QES_OPT_BOOL: {
        int v;
        if (parse_bool(value, &v)) {
            snprintf(why, whylen, "\"%s\" is not a boolean (true/false, yes/no, on/off, 1/0)",
                     value);
            return -1;
        }
        *(int *)(void *)field = v;
        return 0;
    }
    case QES_OPT_DLIST:
    case QES_OPT_ULIST: {
        size_t n = 0;
        double dv[QES_CFG_MAX_LIST];
        unsigned uv[QES_CFG_MAX_LIST];
        const char *p = value;
        char tok[128];
        while (1) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len >= sizeof tok) {
                snprintf(why, whylen, "list element too long");
                return -1;
            }
            memcpy(tok, p, len);
            tok[len] = '\0';
            if (n == o->size) {
                snprintf(why, whylen, "more than %zu elements", o->size);
                return -1;
            }
            if (o->type == QES_OPT_DLIST) {
                if (parse_double(tok, &dv[n]) || dv[n] < o->min || dv[n] > o->max) {
                    snprintf(why, whylen, "element %zu \"%s\" is not a number in %s", n + 1, tok,
                             range);
                    return -1;
                }
            } else {
                uint64_t u;
                if (parse_u64(tok, &u) || (double)u < o->min || (double)u > o->max) {
                    snprintf(why, whylen, "element %zu \"%s\" is not an integer in %s", n + 1, tok,
                             range);
                    return -1;
                }
                uv[n] = (unsigned)u;
            }
            n++;
            if (!comma)
                break;
            p = comma + 1;
        }
        if (o->type == QES_OPT_DLIST)
            memcpy(field, dv, n * sizeof dv[0]);
        else
            memcpy(field, uv, n * sizeof uv[0]);
        *(size_t *)(void *)((char *)base + o->count_offset) = n;
        return 0;
    }
    }
    snprintf(why, whylen, "internal: unknown option type");
    return -1;
}

/* ---- sections ---------------------------------------------------------- */

static void apply_sentinels(enum qes_section sec, void *base);

static void apply_defaults(enum qes_section sec, void *base)
{
    char why[256];
    for (size_t i = 0; i < qes_n_options; i++) {
        const struct qes_option *o = &qes_options[i];
        if (o->section == sec && o->def) {
            int rc = store_value(o, base, o->def, why, sizeof why);
            (void)rc; /* defaults are checked by a test of the table */
        }
    }
}

void qes_config_init(struct qes_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    apply_defaults(QES_SEC_SOURCE, &cfg->source);
    apply_defaults(QES_SEC_RUN, &cfg->run);
    apply_defaults(QES_SEC_RECORD, &cfg->record);
}

struct load_ctx {
    struct qes_config *cfg;
    const char *name;
    int line;
    int error;
    char *err;
    size_t errlen;
    /* keys already set in this load, to refuse repeats: "section\nkey" */
    char **seen;
    size_t n_seen, cap_seen;
    /* reader state */
    const char *text;
    size_t pos;
    FILE *file;
    int too_long;
};

/* Find or create the section struct for a section name such as "channel.dut".
 * Returns the struct base and *sec, or NULL with why filled. */
static void *section_base(struct qes_config *cfg, const char *section, int line, int create,
                          enum qes_section *sec, char *why, size_t whylen)
{
    const char *dot = strchr(section, '.');
    size_t head = dot ? (size_t)(dot - section) : strlen(section);
    for (int s = 0; s < QES_SEC_COUNT; s++) {
        if (strlen(section_names[s]) != head || strncmp(section_names[s], section, head))
            continue;
        *sec = (enum qes_section)s;
        if (!section_named[s]) {
            if (dot) {
                snprintf(why, whylen, "section [%s] takes no name", section_names[s]);
                return NULL;
            }
            if (s == QES_SEC_SOURCE) {
                if (!cfg->source.line)
                    cfg->source.line = line;
                return &cfg->source;
            }
            if (s == QES_SEC_RECORD) {
                if (!cfg->record.line)
                    cfg->record.line = line;
                return &cfg->record;
            }
            if (!cfg->run.line)
                cfg->run.line = line;
            return &cfg->run;
        }
        const char *name = dot ? dot + 1 : "";
        if (!*name || strlen(name) >= QES_CFG_NAME_LEN) {
            snprintf(why, whylen, "section [%s.NAME] needs a name of 1..%d characters",
                     section_names[s], QES_CFG_NAME_LEN - 1);
            return NULL;
        }
        for (const char *c = name; *c; c++) {
            if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-') {
                snprintf(why, whylen, "name \"%s\" may hold only letters, digits, _ and -", name);
                return NULL;
            }
        }
        char *names;
        size_t stride, *count, max;
        void *arr;
        switch (s) {
        case QES_SEC_CHANNEL:
            arr = cfg->channel;
            stride = sizeof cfg->channel[0];
            count = &cfg->n_channel;
            max = QES_CFG_MAX_CHANNELS;
            break;
        case QES_SEC_MEASURE:
            arr = cfg->measure;
            stride = sizeof cfg->measure[0];
            count = &cfg->n_measure;
            max = QES_CFG_MAX_MEASURES;
            break;
        case QES_SEC_TYPEB:
            arr = cfg->typeb;
            stride = sizeof cfg->typeb[0];
            count = &cfg->n_typeb;
            max = QES_CFG_MAX_MEASURES;
            break;
        default:
            arr = cfg->sim;
            stride = sizeof cfg->sim[0];
            count = &cfg->n_sim;
            max = QES_CFG_MAX_CHANNELS;
            break;
        }
        /* every named struct starts with its name */
        for (size_t i = 0; i < *count; i++) {
            names = (char *)arr + i * stride;
            if (!strcmp(names, name))
                return names;
        }
        if (!create) {
            snprintf(why, whylen, "no section [%s]", section);
            return NULL;
        }
        if (*count == max) {
            snprintf(why, whylen, "more than %zu [%s.NAME] sections", max, section_names[s]);
            return NULL;
        }
        char *base = (char *)arr + (*count)++ * stride;
        memset(base, 0, stride);
        apply_defaults((enum qes_section)s, base);
        apply_sentinels((enum qes_section)s, base);
        memcpy(base, name, strlen(name) + 1);
        int *lp = s == QES_SEC_CHANNEL   ? &((struct qes_cfg_channel *)(void *)base)->line
                  : s == QES_SEC_MEASURE ? &((struct qes_cfg_measure *)(void *)base)->line
                  : s == QES_SEC_TYPEB   ? &((struct qes_cfg_typeb *)(void *)base)->line
                                         : &((struct qes_cfg_sim *)(void *)base)->line;
        *lp = line;
        return base;
    }
    snprintf(why, whylen,
             "unknown section [%s]; expected [source], [channel.NAME], [measure.NAME], "
             "[sim.NAME], [typeb.NAME], [record] or [run]",
             section);
    return NULL;
}

static const struct qes_option *find_option(enum qes_section sec, const char *key)
{
    for (size_t i = 0; i < qes_n_options; i++)
        if (qes_options[i].section == sec && !strcmp(qes_options[i].key, key))
            return &qes_options[i];
    return NULL;
}

static int set_one(struct qes_config *cfg, const char *section, const char *key, const char *value,
                   int line, char *why, size_t whylen)
{
    enum qes_section sec;
    void *base = section_base(cfg, section, line, 1, &sec, why, whylen);
    if (!base)
        return -1;
    const struct qes_option *o = find_option(sec, key);
    if (!o) {
        int n = snprintf(why, whylen, "unknown key; [%s%s] takes:", section_names[sec],
                         section_named[sec] ? ".NAME" : "");
        for (size_t i = 0; i < qes_n_options && n > 0 && (size_t)n < whylen; i++)
            if (qes_options[i].section == sec)
                n += snprintf(why + n, whylen - (size_t)n, " %s", qes_options[i].key);
        return -1;
    }
    return store_value(o, base, value, why, whylen);
}

static int seen_before(struct load_ctx *c, const char *section, const char *key)
{
    size_t len = strlen(section) + strlen(key) + 2;
    char *k = malloc(len);
    if (!k)
        return -1;
    snprintf(k, len, "%s\n%s", section, key);
    for (size_t i = 0; i < c->n_seen; i++) {
        if (!strcmp(c->seen[i], k)) {
            free(k);
            return 1;
        }
    }
    if (c->n_seen == c->cap_seen) {
        size_t nc = c->cap_seen ? 2 * c->cap_seen : 32;
        char **ns = realloc(c->seen, nc * sizeof *ns);
        if (!ns) {
            free(k);
            return -1;
        }
        c->seen = ns;
        c->cap_seen = nc;
    }
    c->seen[c->n_seen++] = k;
    return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct load_ctx *c = user;
    if (c->error)
        return 0;
    char why[1024];
    if (!*section) {
        qes_errf(c->err, c->errlen, "%s:%d: key \"%s\" outside any section", c->name, c->line,
                 name);
        c->error = 1;
        return 0;
    }
    int dup = seen_before(c, section, name);
    if (dup) {
        qes_errf(c->err, c->errlen, "%s:%d: [%s] %s: %s", c->name, c->line, section, name,
                 dup > 0 ? "set twice in this file" : "out of memory");
        c->error = 1;
        return 0;
    }
    if (set_one(c->cfg, section, name, value, c->line, why, sizeof why)) {
        qes_errf(c->err, c->errlen, "%s:%d: [%s] %s: %s", c->name, c->line, section, name, why);
        c->error = 1;
        return 0;
    }
    return 1;
}

/* inih reader that counts lines and refuses lines longer than its buffer
 * (inih would otherwise split them and parse the tail as a new line). */
static char *reader(char *str, int num, void *stream)
{
    struct load_ctx *c = stream;
    if (c->too_long)
        return NULL;
    char *got;
    if (c->file) {
        got = fgets(str, num, c->file);
    } else {
        if (!c->text[c->pos])
            return NULL;
        size_t i = 0;
        while (i + 1 < (size_t)num && c->text[c->pos]) {
            char ch = c->text[c->pos++];
            str[i++] = ch;
            if (ch == '\n')
                break;
        }
        str[i] = '\0';
        got = str;
    }
    if (!got)
        return NULL;
    c->line++;
    size_t len = strlen(str);
    int at_eof = c->file ? feof(c->file) : !c->text[c->pos];
    if (len == (size_t)num - 1 && str[len - 1] != '\n' && !at_eof) {
        c->too_long = 1;
        return NULL;
    }
    /* Section headers are checked here, where their line is known, so that
     * an unknown or misspelt section without keys is an error too. */
    const char *p = skip_ws(str);
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close && (size_t)(close - p - 1) < 256) {
            char name[256], why[512];
            memcpy(name, p + 1, (size_t)(close - p - 1));
            name[close - p - 1] = '\0';
            enum qes_section sec;
            if (!section_base(c->cfg, name, c->line, 1, &sec, why, sizeof why)) {
                qes_errf(c->err, c->errlen, "%s:%d: [%s]: %s", c->name, c->line, name, why);
                c->error = 1;
                return NULL;
            }
        }
    }
    return str;
}

static int run_load(struct load_ctx *c)
{
    int rc = ini_parse_stream(reader, c, handler, c);
    for (size_t i = 0; i < c->n_seen; i++)
        free(c->seen[i]);
    free(c->seen);
    if (c->too_long) {
        qes_errf(c->err, c->errlen, "%s:%d: line longer than %d characters", c->name, c->line,
                 INI_MAX_LINE - 2);
        return QES_ECONFIG;
    }
    if (c->error)
        return QES_ECONFIG;
    if (rc > 0) {
        qes_errf(c->err, c->errlen,
                 "%s:%d: syntax error: expected [section], key = value, or a ; comment", c->name,
                 rc);
        return QES_ECONFIG;
    }
    if (rc < 0) {
        qes_errf(c->err, c->errlen, "%s: cannot parse (error %d)", c->name, rc);
        return QES_ECONFIG;
    }
    return 0;
}

int qes_config_load_file(struct qes_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        qes_errf(err, errlen, "%s: cannot open configuration: %s", path, strerror(errno));
        return errno == ENOENT ? QES_ENOENT : QES_ECONFIG;
    }
    struct load_ctx c = {.cfg = cfg, .name = path, .err = err, .errlen = errlen, .file = f};
    int rc = run_load(&c);
    fclose(f);
    if (!rc)
        snprintf(cfg->path, sizeof cfg->path, "%s", path);
    return rc;
}

int qes_config_load_string(struct qes_config *cfg, const char *text, const char *name, char *err,
                           size_t errlen)
{
    struct load_ctx c = {.cfg = cfg, .name = name, .err = err, .errlen = errlen, .text = text};
    int rc = run_load(&c);
    if (!rc)
        snprintf(cfg->path, sizeof cfg->path, "%s", name);
    return rc;
}

int qes_config_set(struct qes_config *cfg, const char *assignment, char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    char buf[1024];
    if (!eq || strlen(assignment) >= sizeof buf) {
        qes_errf(err, errlen, "--set %s: expected SECTION.KEY=VALUE", assignment);
        return QES_ECONFIG;
    }
    memcpy(buf, assignment, (size_t)(eq - assignment));
    buf[eq - assignment] = '\0';
    char *dot = strrchr(buf, '.');
    if (!dot || dot == buf || !dot[1]) {
        qes_errf(err, errlen, "--set %s: expected SECTION.KEY=VALUE (e.g. measure.fund.freq_hz=50)",
                 assignment);
        return QES_ECONFIG;
    }
    *dot = '\0';
    char why[1024];
    if (set_one(cfg, buf, dot + 1, eq + 1, 0, why, sizeof why)) {
        qes_errf(err, errlen, "--set %s: [%s] %s: %s", assignment, buf, dot + 1, why);
        return QES_ECONFIG;
    }
    return 0;
}

const struct qes_cfg_channel *qes_config_channel(const struct qes_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_channel; i++)
        if (!strcmp(cfg->channel[i].name, name))
            return &cfg->channel[i];
    return NULL;
}

const struct qes_cfg_sim *qes_config_sim(const struct qes_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_sim; i++)
        if (!strcmp(cfg->sim[i].name, name))
            return &cfg->sim[i];
    return NULL;
}

/* A required key (no default) starts as a sentinel that no valid setting can
 * give: "" for text, NaN for numbers, UINT_MAX for integers, count 0 for lists. */
static void apply_sentinels(enum qes_section sec, void *base)
{
    for (size_t i = 0; i < qes_n_options; i++) {
        const struct qes_option *o = &qes_options[i];
        if (o->section != sec || o->def)
            continue;
        char *field = (char *)base + o->offset;
        if (o->type == QES_OPT_DOUBLE || o->type == QES_OPT_DOUBLE_AUTO)
            *(double *)(void *)field = NAN;
        else if (o->type == QES_OPT_UINT || o->type == QES_OPT_UINT_AUTO)
            *(unsigned *)(void *)field = UINT_MAX;
    }
}

static int is_unset(const struct qes_option *o, const void *base)
{
    const char *field = (const char *)base + o->offset;
    switch (o->type) {
    case QES_OPT_STRING:
    case QES_OPT_ENUM:
        return field[0] == '\0';
    case QES_OPT_DOUBLE:
    case QES_OPT_DOUBLE_AUTO:
        return isnan(*(const double *)(const void *)field);
    case QES_OPT_UINT:
    case QES_OPT_UINT_AUTO:
        return *(const unsigned *)(const void *)field == UINT_MAX;
    case QES_OPT_DLIST:
    case QES_OPT_ULIST:
        return *(const size_t *)(const void *)((const char *)base + o->count_offset) == 0;
    default:
        return 0;
    }
}

static int check_section_required(enum qes_section sec, const char *name, const void *base,
                                  int line, const char *where, char *err, size_t errlen)
{
    for (size_t i = 0; i < qes_n_options; i++) {
        const struct qes_option *o = &qes_options[i];
        if (o->section == sec && !o->def && is_unset(o, base)) {
            qes_errf(err, errlen, "%s:%d: [%s%s%s] %s: required key missing (%s)", where, line,
                     section_names[sec], name ? "." : "", name ? name : "", o->key, o->help);
            return QES_ECONFIG;
        }
    }
    return 0;
}

static int check_required(const struct qes_config *cfg, char *err, size_t errlen)
{
    const char *where = cfg->path[0] ? cfg->path : "configuration";
    int rc = 0;
    for (size_t i = 0; i < cfg->n_channel && !rc; i++)
        rc = check_section_required(QES_SEC_CHANNEL, cfg->channel[i].name, &cfg->channel[i],
                                    cfg->channel[i].line, where, err, errlen);
    for (size_t i = 0; i < cfg->n_measure && !rc; i++)
        rc = check_section_required(QES_SEC_MEASURE, cfg->measure[i].name, &cfg->measure[i],
                                    cfg->measure[i].line, where, err, errlen);
    for (size_t i = 0; i < cfg->n_sim && !rc; i++)
        rc = check_section_required(QES_SEC_SIM, cfg->sim[i].name, &cfg->sim[i], cfg->sim[i].line,
                                    where, err, errlen);
    for (size_t i = 0; i < cfg->n_typeb && !rc; i++)
        rc = check_section_required(QES_SEC_TYPEB, cfg->typeb[i].name, &cfg->typeb[i],
                                    cfg->typeb[i].line, where, err, errlen);
    return rc;
}

int qes_config_validate(const struct qes_config *cfg, char *err, size_t errlen)
{
    const char *where = cfg->path[0] ? cfg->path : "configuration";
    int rc = check_required(cfg, err, errlen);
    if (rc)
        return rc;
    for (size_t i = 0; i < cfg->n_channel; i++) {
        const struct qes_cfg_channel *a = &cfg->channel[i];
        if (a->gain == 0) {
            qes_errf(err, errlen, "%s:%d: [channel.%s] gain: must not be 0", where, a->line,
                     a->name);
            return QES_ECONFIG;
        }
        for (size_t j = 0; j < i; j++) {
            if (cfg->channel[j].index == a->index) {
                qes_errf(err, errlen,
                         "%s:%d: [channel.%s] index: %u is already used by [channel.%s]", where,
                         a->line, a->name, a->index, cfg->channel[j].name);
                return QES_ECONFIG;
            }
        }
    }
    for (size_t i = 0; i < cfg->n_measure; i++) {
        const struct qes_cfg_measure *m = &cfg->measure[i];
        if (!strcmp(m->method, "ratio")) {
            const char *names[2] = {m->numerator, m->denominator};
            for (int j = 0; j < 2; j++) {
                int found = 0;
                for (size_t q = 0; q < cfg->n_measure; q++)
                    found |= q != i && names[j][0] && !strcmp(cfg->measure[q].name, names[j]) &&
                             strcmp(cfg->measure[q].method, "ratio");
                if (!found) {
                    qes_errf(err, errlen,
                             "%s:%d: [measure.%s] %s: \"%s\" is not another, non-ratio "
                             "[measure.NAME]",
                             where, m->line, m->name, j ? "denominator" : "numerator", names[j]);
                    return QES_ECONFIG;
                }
            }
            if (!strcmp(m->reference, "pjvs") &&
                (m->pjvs_n == 0 || m->pjvs_n != floor(m->pjvs_n) || !(m->f_j_hz > 0))) {
                qes_errf(err, errlen,
                         "%s:%d: [measure.%s] pjvs_n: reference = pjvs needs a whole, non-zero "
                         "pjvs_n and f_j_hz > 0",
                         where, m->line, m->name);
                return QES_ECONFIG;
            }
            if (!strcmp(m->reference, "qhr") && m->qhr_plateau == 0) {
                qes_errf(err, errlen,
                         "%s:%d: [measure.%s] qhr_plateau: reference = qhr needs the plateau i",
                         where, m->line, m->name);
                return QES_ECONFIG;
            }
            continue;
        }
        if (!m->channel[0]) {
            qes_errf(err, errlen, "%s:%d: [measure.%s] channel: required key missing", where,
                     m->line, m->name);
            return QES_ECONFIG;
        }
        if (!qes_config_channel(cfg, m->channel)) {
            qes_errf(err, errlen, "%s:%d: [measure.%s] channel: no section [channel.%s]", where,
                     m->line, m->name, m->channel);
            return QES_ECONFIG;
        }
        for (size_t a = 0; a < m->n_harmonics; a++)
            for (size_t b = 0; b < a; b++)
                if (m->harmonics[a] == m->harmonics[b]) {
                    qes_errf(err, errlen, "%s:%d: [measure.%s] harmonics: %u is listed twice",
                             where, m->line, m->name, m->harmonics[a]);
                    return QES_ECONFIG;
                }
        if (m->freq_hz == 0 && strcmp(m->method, "reversal") && strcmp(m->method, "ratio")) {
            qes_errf(err, errlen,
                     "%s:%d: [measure.%s] freq_hz: required key missing (method %s needs the "
                     "reference frequency)",
                     where, m->line, m->name, m->method);
            return QES_ECONFIG;
        }
        int coherent = !strcmp(m->method, "fft") || !strcmp(m->method, "dft");
        int is_auto = m->freq_hz == QES_CFG_AUTO_D;
        if (is_auto && (coherent || !strcmp(m->method, "demod") || !strcmp(m->method, "steps") ||
                        !strcmp(m->method, "sinefit3"))) {
            qes_errf(err, errlen,
                     "%s:%d: [measure.%s] freq_hz: auto needs an estimating method (sinefit4 or "
                     "ipdft); method %s needs the frequency",
                     where, m->line, m->name, m->method);
            return QES_ECONFIG;
        }
        if (is_auto && m->block_samples == 0) {
            qes_errf(err, errlen,
                     "%s:%d: [measure.%s] block_samples: freq_hz = auto needs the block length in "
                     "samples",
                     where, m->line, m->name);
            return QES_ECONFIG;
        }
        if (!strcmp(m->method, "reversal")) {
            if (m->half_period_s == 0 && !m->polarity_channel[0]) {
                qes_errf(err, errlen,
                         "%s:%d: [measure.%s] half_period_s: reversal needs a schedule "
                         "(half_period_s > 0) or a polarity_channel",
                         where, m->line, m->name);
                return QES_ECONFIG;
            }
            if (m->half_period_s == 0 && !qes_config_channel(cfg, m->polarity_channel)) {
                qes_errf(err, errlen,
                         "%s:%d: [measure.%s] polarity_channel: no section [channel.%s]", where,
                         m->line, m->name, m->polarity_channel);
                return QES_ECONFIG;
            }
        }
        if (!strcmp(m->method, "steps")) {
            if (m->steps_per_period < 3 || m->n_steps != m->steps_per_period || !(m->f_j_hz > 0)) {
                qes_errf(err, errlen,
                         "%s:%d: [measure.%s] steps: steps needs steps_per_period >= 3, one "
                         "junction count per step (%zu given for %u steps) and f_j_hz > 0",
                         where, m->line, m->name, m->n_steps, m->steps_per_period);
                return QES_ECONFIG;
            }
        }
        if (!strcmp(m->window, "hann") && m->block_periods < 2) {
            qes_errf(err, errlen,
                     "%s:%d: [measure.%s] block_periods: hann leaks one bin each side, so it needs "
                     "block_periods >= 2 to keep harmonics apart",
                     where, m->line, m->name);
            return QES_ECONFIG;
        }
    }
    for (size_t i = 0; i < cfg->n_sim; i++) {
        const struct qes_cfg_sim *s = &cfg->sim[i];
        if (!qes_config_channel(cfg, s->name)) {
            qes_errf(err, errlen, "%s:%d: [sim.%s]: no section [channel.%s] to simulate", where,
                     s->line, s->name, s->name);
            return QES_ECONFIG;
        }
        if (s->n_rms != s->n_harmonics) {
            qes_errf(err, errlen, "%s:%d: [sim.%s] rms: %zu values for %zu harmonics", where,
                     s->line, s->name, s->n_rms, s->n_harmonics);
            return QES_ECONFIG;
        }
        if (s->n_phase_rad != s->n_harmonics) {
            qes_errf(err, errlen, "%s:%d: [sim.%s] phase_rad: %zu values for %zu harmonics", where,
                     s->line, s->name, s->n_phase_rad, s->n_harmonics);
            return QES_ECONFIG;
        }
    }
    for (size_t i = 0; i < cfg->n_typeb; i++) {
        const struct qes_cfg_typeb *t = &cfg->typeb[i];
        int found = 0;
        for (size_t j = 0; j < cfg->n_measure; j++)
            found |= !strcmp(cfg->measure[j].name, t->measure);
        if (!found) {
            qes_errf(err, errlen, "%s:%d: [typeb.%s] measure: no section [measure.%s]", where,
                     t->line, t->name, t->measure);
            return QES_ECONFIG;
        }
        int normal = !strcmp(t->distribution, "normal");
        if ((normal && !(t->u > 0)) || (!normal && !(t->half_width > 0))) {
            qes_errf(err, errlen, "%s:%d: [typeb.%s] %s: a %s component needs %s > 0", where,
                     t->line, t->name, normal ? "u" : "half_width", t->distribution,
                     normal ? "u" : "half_width");
            return QES_ECONFIG;
        }
    }
    if (!strcmp(cfg->source.kind, "sim")) {
        if (cfg->n_sim == 0) {
            qes_errf(err, errlen, "%s: [source] kind = sim needs at least one [sim.NAME] section",
                     where);
            return QES_ECONFIG;
        }
    }
    return 0;
}

/* ---- printing ------------------------------------------------------------ */

static int fmt_value(const struct qes_option *o, const void *base, char *buf, size_t len)
{
    const char *field = (const char *)base + o->offset;
    switch (o->type) {
    case QES_OPT_STRING:
    case QES_OPT_ENUM:
        return snprintf(buf, len, "%s", field);
    case QES_OPT_DOUBLE:
        return snprintf(buf, len, "%.17g", *(const double *)(const void *)field);
    case QES_OPT_UINT:
        return snprintf(buf, len, "%u", *(const unsigned *)(const void *)field);
    case QES_OPT_INT:
        return snprintf(buf, len, "%d", *(const int *)(const void *)field);
    case QES_OPT_U64:
        return snprintf(buf, len, "%llu",
                        (unsigned long long)*(const uint64_t *)(const void *)field);
    case QES_OPT_BOOL:
        return snprintf(buf, len, "%s", *(const int *)(const void *)field ? "true" : "false");
    case QES_OPT_DOUBLE_AUTO: {
        double v = *(const double *)(const void *)field;
        return v == QES_CFG_AUTO_D ? snprintf(buf, len, "auto") : snprintf(buf, len, "%.17g", v);
    }
    case QES_OPT_UINT_AUTO: {
        unsigned v = *(const unsigned *)(const void *)field;
        return v == QES_CFG_AUTO_U ? snprintf(buf, len, "auto") : snprintf(buf, len, "%u", v);
    }
    case QES_OPT_DLIST:
    case QES_OPT_ULIST: {
        size_t n = *(const size_t *)(const void *)((const char *)base + o->count_offset);
        int w = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < n && (size_t)w < len; i++) {
            if (o->type == QES_OPT_DLIST)
                w += snprintf(buf + w, len - (size_t)w, "%s%.17g", i ? "," : "",
                              ((const double *)(const void *)field)[i]);
            else
                w += snprintf(buf + w, len - (size_t)w, "%s%u", i ? "," : "",
                              ((const unsigned *)(const void *)field)[i]);
        }
        return w;
    }
    }
    return 0;
}

struct strbuf {
    char *p;
    size_t n, cap;
    int oom;
};

static void sb_printf(struct strbuf *sb, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    if (sb->oom)
        return;
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0) {
        sb->oom = 1;
        return;
    }
    if (sb->n + (size_t)need + 1 > sb->cap) {
        size_t nc = (sb->cap ? sb->cap * 2 : 4096) + (size_t)need;
        char *np = realloc(sb->p, nc);
        if (!np) {
            sb->oom = 1;
            return;
        }
        sb->p = np;
        sb->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(sb->p + sb->n, sb->cap - sb->n, fmt, ap);
    va_end(ap);
    sb->n += (size_t)need;
}

static void canon_section(struct strbuf *sb, enum qes_section sec, const char *name,
                          const void *base)
{
    if (name)
        sb_printf(sb, "[%s.%s]\n", section_names[sec], name);
    else
        sb_printf(sb, "[%s]\n", section_names[sec]);
    char val[4096];
    for (size_t i = 0; i < qes_n_options; i++) {
        const struct qes_option *o = &qes_options[i];
        if (o->section != sec)
            continue;
        fmt_value(o, base, val, sizeof val);
        sb_printf(sb, "%s = %s\n", o->key, val);
    }
    sb_printf(sb, "\n");
}

char *qes_config_canonical(const struct qes_config *cfg)
{
    struct strbuf sb = {0};
    canon_section(&sb, QES_SEC_SOURCE, NULL, &cfg->source);
    for (size_t i = 0; i < cfg->n_channel; i++)
        canon_section(&sb, QES_SEC_CHANNEL, cfg->channel[i].name, &cfg->channel[i]);
    for (size_t i = 0; i < cfg->n_measure; i++)
        canon_section(&sb, QES_SEC_MEASURE, cfg->measure[i].name, &cfg->measure[i]);
    for (size_t i = 0; i < cfg->n_sim; i++)
        canon_section(&sb, QES_SEC_SIM, cfg->sim[i].name, &cfg->sim[i]);
    for (size_t i = 0; i < cfg->n_typeb; i++)
        canon_section(&sb, QES_SEC_TYPEB, cfg->typeb[i].name, &cfg->typeb[i]);
    canon_section(&sb, QES_SEC_RECORD, NULL, &cfg->record);
    canon_section(&sb, QES_SEC_RUN, NULL, &cfg->run);
    if (sb.oom) {
        free(sb.p);
        return NULL;
    }
    return sb.p;
}

static void describe(FILE *f, const struct qes_option *o, const char *lead)
{
    char range[128] = "";
    switch (o->type) {
    case QES_OPT_DOUBLE:
    case QES_OPT_UINT:
    case QES_OPT_INT:
    case QES_OPT_U64:
    case QES_OPT_DLIST:
    case QES_OPT_ULIST:
        fmt_range(o, range, sizeof range);
        break;
    case QES_OPT_DOUBLE_AUTO:
    case QES_OPT_UINT_AUTO:
        fmt_range(o, range, sizeof range);
        strncat(range, " or auto", sizeof range - strlen(range) - 1);
        break;
    case QES_OPT_ENUM:
        snprintf(range, sizeof range, "%s", o->choices);
        break;
    default:
        break;
    }
    static const char *const tn[] = {
            "text",   "number",          "integer",          "integer", "integer", "boolean",
            "choice", "list of numbers", "list of integers", "number",  "integer"};
    char text[2048];
    snprintf(text, sizeof text, "%s (%s%s%s%s)", o->help, tn[o->type], range[0] ? ", " : "", range,
             o->def ? "" : ", required");
    /* wrap at 96 columns: INI lines, comments included, must stay short */
    const char *p = text;
    while (*p) {
        size_t len = strlen(p), cut = len;
        if (len > 96) {
            cut = 96;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = 96;
        }
        fprintf(f, "%s%.*s\n", lead, (int)cut, p);
        p += cut;
        while (*p == ' ')
            p++;
    }
}

void qes_config_print_help(FILE *f)
{
    fprintf(f, "Configuration keys (INI file, or --set SECTION.KEY=VALUE):\n");
    for (int s = 0; s < QES_SEC_COUNT; s++) {
        fprintf(f, "\n[%s%s]  %s\n", section_names[s], section_named[s] ? ".NAME" : "",
                section_help[s]);
        for (size_t i = 0; i < qes_n_options; i++) {
            const struct qes_option *o = &qes_options[i];
            if (o->section != (enum qes_section)s)
                continue;
            fprintf(f, "  %-16s default %s%s%s\n", o->key,
                    o->def ? (o->def[0] ? o->def : "\"\"") : "(required)",
                    o->unit[0] ? "  unit " : "", o->unit);
            describe(f, o, "      ");
        }
    }
}

void qes_config_print_reference(FILE *f)
{
    fprintf(f,
            "; qes reference configuration: every key with its default, generated from the\n"
            "; option table by `qes help config --ini`.  Do not edit by hand; copy what you need.\n"
            "; Sections NAME-d below (dut) are examples: use your own names.\n");
    for (int s = 0; s < QES_SEC_COUNT; s++) {
        fprintf(f, "\n; %s\n[%s%s]\n", section_help[s], section_names[s],
                section_named[s] ? ".dut" : "");
        for (size_t i = 0; i < qes_n_options; i++) {
            const struct qes_option *o = &qes_options[i];
            if (o->section != (enum qes_section)s)
                continue;
            describe(f, o, "; ");
            if (o->def)
                fprintf(f, "%s = %s\n", o->key, o->def);
            else
                fprintf(f, ";%s =   (required)\n", o->key);
        }
    }
}
