/*
 * Reversal processing (`method = reversal`): DC Josephson-vs-Zener and CCC
 * bridges, where the quantity is the half-difference (V+ - V-)/2 between the
 * readings at the two polarities of a reversing switch.
 *
 * The stream is cut into half-cycles (one reading at one polarity).  The first
 * settle samples of every half-cycle are discarded (the transient after the
 * reversal); the rest are averaged with compensated summation.  Consecutive
 * half-cycles are combined into NON-overlapping groups that cancel offset and
 * linear drift:
 *
 *   pattern "+--+"  r1..r4 at polarities s, -s, -s, s:
 *                   value = s (r1 - r2 - r3 + r4) / 4      (half-cycles 1-4, 5-8, ...)
 *   pattern "+-"    r1..r3 at polarities s, -s, s:
 *                   value = s (r1 - 2 r2 + r3) / 4         (half-cycles 1-3, 4-6, ...)
 *
 * s is the polarity of r1, so value is always (V+ - V-)/2.  No two groups
 * share a half-cycle: groups that overlap (1-3, 2-4, ...) are correlated
 * (lag-1 correlation +2/3 for triples in white noise) and the standard
 * deviation of their mean understates the uncertainty.  The group values are
 * meant for qes_scalar_acc_add / qes_scalar_summarize (dsp/gum.h), whose Type
 * A is then s / sqrt(n) with n - 1 dof.
 *
 * Where the half-cycles come from:
 *
 * - Schedule (half_period_s > 0).  Half-cycle h covers run samples
 *   [h L, (h + 1) L), L = round(half_period_s fs_hz), with the polarity
 *   pattern[h mod length] ("+--+": + - - + + - - + ...; "+-": + - + - ...).
 *   Run sample 0 starts half-cycle 0, and group g is half-cycles G g .. G g +
 *   G - 1 (G = 4 or 3), with index g.
 *
 * - Polarity channel (half_period_s == 0).  A second channel, fed alongside
 *   the signal, gives the polarity by its sign.  A reversal is recognised at
 *   the first sample where the channel crosses to the other sign beyond
 *   pol_threshold times its running magnitude (hysteresis: noise and ringing
 *   around zero do not count); that sample starts the next half-cycle.  The
 *   running magnitude is max(mean |pol| over the previous half-cycle, mean
 *   |pol| so far in this one).  The first half-cycle starts at run sample 0;
 *   its polarity is the sign of the first non-zero polarity sample.
 *   With "+-", every stretch between two reversals is one half-cycle.  With
 *   "+--+" the two readings at the same polarity (r2 r3, then r4 r5 of the
 *   next group, ...) are not separated by a reversal: the first stretch of
 *   the stream is one reading and gives its length L in samples; every later
 *   stretch is split into a reading of L samples and a reading of the rest.
 *   A half-cycle ends where the next one is recognised, so the last one of a
 *   stream is only complete once the following reversal has been seen.
 *   Group indices count the groups started.
 *
 * Settling: settle samples, S = round(settle_s fs_hz), are discarded at the
 * start of every half-cycle, also where no reversal precedes it ("+--+"
 * between r2 and r3), so that all half-cycles of a group have the same number
 * of averaged samples and symmetric centroids: linear drift then cancels
 * exactly.  Choose settle_s longer than ~10 (better 20-40) time constants of
 * the transient: a residual exp(-settle_s / tau) of the step enters the value.
 *
 * Loss of samples: qes_reversal_gap, or a first_sample beyond the next
 * expected sample, makes the half-cycle in progress invalid.  With a schedule
 * the half-cycle resumed into is invalid unless all its samples arrive (a jump
 * to exactly its start); after qes_reversal_gap between two half-cycles the
 * next one is invalid (the count lost is unknown).  With a polarity channel
 * the stretch resumed into is the one in progress: invalid.  Each group
 * containing an invalid or missing half-cycle is emitted with
 * QES_REVERSAL_GAP and a NaN value.  Groups lost entirely are not emitted
 * (their indices are skipped in schedule mode).
 *
 * Thread safety: one object per stream, used from one thread at a time;
 * different objects are independent.  No allocation after create.
 */
#ifndef QES_DSP_REVERSAL_H
#define QES_DSP_REVERSAL_H

#include <stddef.h>
#include <stdint.h>

enum qes_reversal_pattern {
    QES_REVERSAL_PPMM = 0, /* "+--+": groups of four readings (Zener); the default */
    QES_REVERSAL_PM = 1,   /* "+-": alternation, drift-cancelling triples (CCC) */
};

struct qes_reversal_desc {
    double fs_hz;                      /* sample rate, > 0, finite */
    enum qes_reversal_pattern pattern; /* 0 = "+--+" */
    double half_period_s;              /* > 0: schedule, round(half_period_s fs) >= 2 samples;
                                        * 0: polarity channel */
    double settle_s;                   /* discarded at the start of each half-cycle, >= 0;
                                        * schedule: round(settle_s fs) < round(half_period_s fs) */
    double pol_threshold;              /* polarity channel hysteresis, fraction of the running
                                        * magnitude, in (0, 1); 0 = default 0.5.  Must be 0
                                        * with a schedule. */
};

/* Group flags; a group with any flag set is excluded (its value is NaN). */
#define QES_REVERSAL_GAP      1u /* samples lost in or between its half-cycles */
#define QES_REVERSAL_PARTIAL  2u /* the stream ended before the group was complete */
#define QES_REVERSAL_SHORT    4u /* a half-cycle had no sample left after settling */
#define QES_REVERSAL_SEQUENCE 8u /* polarity channel: half-cycles out of pattern order */

struct qes_reversal_group {
    uint64_t index;        /* schedule: group number g from run sample 0; channel: count */
    uint64_t sample_start; /* run sample at which the group's first half-cycle starts */
    uint64_t n_samples;    /* run samples spanned, settling included */
    uint64_t n_used;       /* samples averaged (after settling) */
    double value;          /* (V+ - V-)/2 in the unit of x; NaN when flags != 0 */
    double half_mean[4];   /* r1..r4 (r4 NaN for "+-"); NaN where missing */
    int sign;              /* polarity of r1: +1 or -1 (0 if unknown) */
    unsigned flags;        /* QES_REVERSAL_* */
};

struct qes_reversal;

/*
 * Parse "+--+" or "+-" (exact) into *out.  Returns 0 or QES_EINVAL.
 */
int qes_reversal_pattern_parse(const char *s, enum qes_reversal_pattern *out);

/* "+--+", "+-", or NULL for an unknown value. */
const char *qes_reversal_pattern_name(enum qes_reversal_pattern p);

/*
 * Make a reversal processor.  Returns 0 and *out, or QES_EINVAL (bad desc:
 * fs_hz not finite or <= 0, unknown pattern, half_period_s < 0 or not finite,
 * a schedule of fewer than 2 samples per half-cycle or more than 2^52,
 * settle_s < 0 or not finite, settle samples >= half-cycle samples, threshold
 * outside (0, 1) or set with a schedule), QES_ENOMEM.  *out is NULL on error.
 */
int qes_reversal_create(const struct qes_reversal_desc *desc, struct qes_reversal **out);

/*
 * Stream n samples.
 * x: the signal (e.g. nanovoltmeter reading, V); pol: the polarity channel,
 * n samples, with a polarity channel, NULL with a schedule; first_sample: run
 * index of x[0], >= the next expected sample (sum of the samples consumed so
 * far); beyond it, the skipped samples count as lost (as qes_reversal_gap).
 * out: room for max_out >= 2 groups; *n_out: groups written.
 * Groups are written as they complete.  When out is too full to take the
 * groups a sample could complete, execute stops before that sample and
 * returns the samples consumed: call again with the rest (x + ret, pol + ret,
 * n - ret, first_sample + ret).  Allocates nothing.
 * Returns the number of samples consumed (0..n), or QES_EINVAL (NULL
 * arguments, pol given with a schedule or missing with a channel, max_out < 2,
 * first_sample before the next expected sample, called after finish).
 */
int64_t qes_reversal_execute(struct qes_reversal *r, const double *x, const double *pol, size_t n,
                             uint64_t first_sample, struct qes_reversal_group *out, size_t max_out,
                             size_t *n_out);

/*
 * Mark that samples were lost before the next execute (e.g. an overflow of
 * the capture): the half-cycle in progress becomes invalid.  Returns 0 or
 * QES_EINVAL (NULL).
 */
int qes_reversal_gap(struct qes_reversal *r);

/*
 * End of stream: emit the group in progress, if any, flagged
 * QES_REVERSAL_PARTIAL (with a polarity channel the half-cycle in progress is
 * always incomplete).  out: room for max_out >= 2 groups; *n_out: 0..2
 * written (2 when the half-cycle in progress does not fit the group before
 * it).  Afterwards only reset or destroy.  Returns 0 or QES_EINVAL.
 */
int qes_reversal_finish(struct qes_reversal *r, struct qes_reversal_group *out, size_t max_out,
                        size_t *n_out);

/* Back to the state after create (run sample 0 next).  No-op for NULL. */
void qes_reversal_reset(struct qes_reversal *r);

/* Samples per half-cycle (schedule; channel "+--+": as learned, 0 until then)
 * and settle samples discarded at the start of each.  0 for NULL. */
uint64_t qes_reversal_half_samples(const struct qes_reversal *r);
uint64_t qes_reversal_settle_samples(const struct qes_reversal *r);

/* No-op for NULL. */
void qes_reversal_destroy(struct qes_reversal *r);

#endif
