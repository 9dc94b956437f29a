/*
 * Block lock-in on coherent blocks.
 *
 * A block holds n samples spanning exactly `periods` periods of the reference,
 * so harmonic h sits exactly in DFT bin h*periods.  For the signal model of the
 * output contract, s[m] = sqrt(2) r cos(2 pi h periods m / n + phi) with m the
 * sample index counted from sample 0 of the run, the estimated phasor is
 *
 *     x + j y = r e^{j phi} = sqrt(2) / sum(w) * e^{-j theta0} * sum_i w[i] s[i] e^{-j 2 pi h periods i / n}
 *
 * where i is the index inside the block, s[i] the block's samples, and theta0
 * the reference phase at the block's first sample (computed in integers, so it stays exact for any run
 * length).  Dividing by sum(w) is the coherent-gain correction.
 *
 * method FFT: one FFTW r2c plan made at create (FFTW_ESTIMATE, so plans and
 * therefore results are the same on every run); execute picks the bins.
 * method DFT: only the requested bins, in one pass over the block for all
 * harmonics: the block is folded onto the common period of the requested
 * bins, then demodulated in chunks against small per-harmonic tables, with
 * chunk phases kept in integers (lockin.c, "The DFT kernel", gives the
 * design and its error bound).  Memory besides the window (n doubles,
 * none for rect): per-harmonic tables of at most 2048 doubles in all,
 * rotation tables of at most 6 sqrt(2n) + 2 doubles and a work buffer of at
 * most 9216 doubles; it does not grow with n * harmonics (under 80 KiB at
 * n = 2^20, see qes_lockin_memory_bytes).  Results are the same bits on
 * every run on one machine; the DFT kernel's vector variant is chosen per CPU
 * (AVX2+FMA or baseline), so the last bits can differ between machines.
 *
 * Thread safety: create/destroy on one (control) thread; execute on one
 * object from one thread at a time; different objects may execute in
 * parallel.
 */
#ifndef QES_DSP_LOCKIN_H
#define QES_DSP_LOCKIN_H

#include "dsp/window.h"

#include <stddef.h>
#include <stdint.h>

enum qes_lockin_method {
    QES_LOCKIN_FFT = 0,
    QES_LOCKIN_DFT = 1,
};

struct qes_lockin_desc {
    enum qes_lockin_method method;
    enum qes_window_kind window;
    size_t n;                  /* samples per block, >= 4 */
    unsigned periods;          /* reference periods per block, >= 1 */
    const unsigned *harmonics; /* each >= 1; (h*periods + leak) < n/2 */
    size_t n_harmonics;        /* 1..QES_LOCKIN_MAX_HARMONICS */
    double kaiser_beta;        /* window kaiser: its beta; 0 = QES_WINDOW_KAISER_BETA_DEFAULT */
};

#define QES_LOCKIN_MAX_HARMONICS 64

struct qes_phasor {
    double x; /* r cos(phi), in the unit of the input samples */
    double y; /* r sin(phi) */
};

struct qes_lockin;

/*
 * Make a lock-in.  Returns 0 and *out, or QES_EINVAL (bad desc: n, periods,
 * harmonic out of range, harmonic bins overlapping through window leakage),
 * QES_ENOMEM.
 */
int qes_lockin_create(const struct qes_lockin_desc *desc, struct qes_lockin **out);

/*
 * Estimate the phasor of every harmonic from one block.
 * block: n samples; sample_start: index of block[0] counted from sample 0 of
 * the run (sets the reference phase); out: n_harmonics phasors, in the order
 * of desc->harmonics.  Allocates nothing.  Returns 0 or QES_EINVAL.
 */
int qes_lockin_execute(struct qes_lockin *l, const double *block, uint64_t sample_start,
                       struct qes_phasor *out);

/* Equivalent noise bandwidth of the block estimate, in bins (rect 1, hann 1.5). */
double qes_lockin_enbw_bins(const struct qes_lockin *l);

/*
 * Heap bytes held by the object (window, tables, buffers; FFTW's own plan
 * data not included), for sizing and benchmarks.  0 for NULL.
 */
size_t qes_lockin_memory_bytes(const struct qes_lockin *l);

/* No-op for NULL. */
void qes_lockin_destroy(struct qes_lockin *l);

/*
 * Reference twin: the same estimate by a plain O(n) loop per harmonic with
 * long double accumulation and phases reduced in integers.  Slow; for tests
 * and benchmarks.  Same arguments as qes_lockin_execute.
 */
int qes_lockin_reference(const struct qes_lockin_desc *desc, const double *block,
                         uint64_t sample_start, struct qes_phasor *out);

#endif
