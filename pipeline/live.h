/*
 * The live side of `qes run`: the source a configuration names (the paced
 * simulator, or an ADC through libiio), behind the acquisition thread and its
 * ring (pipeline/acq.h), optionally teed raw into a SigMF capture
 * (pipeline/rawtee.h), and the run's loss accounting at the end.
 *
 *   qes_live_open      source + acquisition thread; gains resolved (gain =
 *                      auto takes the device's scale); nothing recorded yet
 *   qes_live_tee       start the raw recording (needs the run id and the
 *                      resolved configuration, known after open)
 *   qes_live_source    the source to give the runtime
 *   qes_live_finish    stop, close the tee, fill the accounting
 */
#ifndef QES_PIPELINE_LIVE_H
#define QES_PIPELINE_LIVE_H

#include "hw/source.h"
#include "pipeline/config.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

struct qes_live;

struct qes_live_stats {
    uint64_t frames_dropped;  /* ring full: whole buffers dropped */
    uint64_t samples_dropped; /* ... their samples per channel */
    uint64_t device_lost;     /* samples per channel the source inferred lost */
    uint64_t device_gaps;     /* ... in this many gaps */
    uint64_t reconnects;
    unsigned raw_files;      /* raw capture files completed */
    uint64_t raw_bytes;      /* raw data bytes written */
    int raw_failed;          /* the raw recording stopped on an error (message printed) */
    double rate_readback_hz; /* iio: sampling_frequency read back; 0 otherwise */
};

/*
 * Open the live source of cfg: `inner` when given (the paced simulator, built
 * by the caller; owned from here on, destroyed on error too), else the
 * device of [source] kind = iio.  cfg is updated in place: every gain = auto
 * becomes the number used.  log gets warnings and events (may be NULL).
 * Returns 0, QES_ECONFIG (bad configuration, message naming the key), or the
 * source's error code with its message.
 */
int qes_live_open(struct qes_config *cfg, struct qes_source *inner, uint64_t total_frames,
                  volatile sig_atomic_t *stop, FILE *log, struct qes_live **out, char *err,
                  size_t errlen);

/* Start the raw recording of [run] record_raw (no-op when empty). */
int qes_live_tee(struct qes_live *l, const char *run_id, const char *config_ini, char *err,
                 size_t errlen);

struct qes_source *qes_live_source(struct qes_live *l);
double qes_live_sample_rate(const struct qes_live *l);
uint64_t qes_live_total_frames(const struct qes_live *l); /* 0 = unbounded */
/* JSON object describing the input, for the run record (malloc'd). */
char *qes_live_input_json(const struct qes_live *l);

/* Stop the acquisition, close the raw recording, fill st.  Frees l. */
void qes_live_finish(struct qes_live *l, struct qes_live_stats *st);

#endif
