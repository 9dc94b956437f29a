/*
 * Raw tee: the samples a live run receives, written as a SigMF capture while
 * the run goes on, so the run can be re-processed later with `qes replay`
 * and give the same results.
 *
 * Each frame is written as delivered, in raw counts, with the datatype
 * given.  A gap (lost_before > 0) starts a new capture segment with
 * core:global_index = the frame's first_sample (the run index) and
 * core:datetime = its host time, so replay sees the same gap at the same
 * run index.  The recording is rotated into numbered files PATH-0001,
 * PATH-0002, ... (each a complete SigMF pair with core:sha512, written on
 * close through fsync and rename) when a file reaches max_bytes of data or
 * max_seconds of samples; a rotated file's first capture carries the
 * global_index of its first sample, so every file replays on its own and
 * together they cover the run.  With no rotation the file is PATH itself.
 * Every file also records the run id and the resolved configuration in its
 * global object ("qes:run_id", "qes:config"), a rotated file its number
 * ("qes:part", from 1), and every file the samples per channel the live
 * run lost just before the file's first sample ("qes:lost_before_first":
 * the lost_before of the frame that starts the file, 0 when the file starts
 * inside a frame split by rotation).  With it, replay reports the loss the
 * live run saw before a file's first frame, which its global indices alone
 * cannot tell (a run whose first frames were lost; a gap exactly at a file
 * boundary when the files are replayed as one run with `qes replay
 * PATH-0001.sigmf-meta PATH-0002.sigmf-meta ...`, or a file on its own), so
 * the blocks flagged gap on replay are those flagged live.
 *
 * Rotation in detail: a file holds at most max_bytes of data in whole frames
 * (at least one frame) and at most floor(max_seconds * fs) samples per
 * channel (at least one); a frame that does not fit is split across two
 * files, so every file but the last is exactly full.  A full file is closed
 * at once; the next file is created only when the next sample arrives (no
 * empty trailing file).  The first file is created by qes_rawtee_open, so an
 * unwritable path fails there.  A gap exactly at a file boundary shows as
 * the new file's first global_index being beyond the end of the previous
 * file, and as its qes:lost_before_first.
 *
 * What replays the same: every sample at its run index, and lost_before
 * wherever the live run had it, for sources that keep the contract of
 * hw/source.h (lost_before = the run indices skipped since the previous
 * frame; the first frame's may be less than its run index).  A frame that
 * reports more loss than its run index skips cannot be recorded: it stops
 * the tee (QES_EINVAL).  A frame without samples writes nothing; its
 * lost_before is added to the next frame's.
 *
 * The tee is called from the DSP worker (never from the acquisition
 * thread).  A write error (full disk) stops the tee for good, keeps what was
 * closed, and is reported by qes_rawtee_write's return value and message;
 * the caller decides whether the run goes on (it does, flagged, in qes run).
 * The file being written when the error struck is closed with its metadata
 * when the writer can still do so (a value the datatype cannot hold: nothing
 * of the frame was written); after an I/O error its data file, which has no
 * metadata and so is not a capture, is removed, leaving the space of a full
 * disk to the run's recorders.  The message says which.
 *
 * Not thread-safe: one thread calls write and close.
 */
#ifndef QES_PIPELINE_RAWTEE_H
#define QES_PIPELINE_RAWTEE_H

#include "hw/sigmf.h"
#include "hw/source.h"

#include <stddef.h>
#include <stdint.h>

struct qes_rawtee_desc {
    const char *path;     /* base path, without .sigmf-meta / .sigmf-data */
    enum qes_dtype dtype; /* raw datatype (e.g. QES_DT_RI32_LE) */
    double sample_rate_hz;
    unsigned num_channels;
    uint64_t max_bytes;      /* rotate after this many data bytes; 0 = never */
    double max_seconds;      /* rotate after this many seconds of samples; 0 = never */
    const char *run_id;      /* may be NULL */
    const char *config_ini;  /* may be NULL */
    const char *description; /* core:description; may be NULL */
};

struct qes_rawtee;

int qes_rawtee_open(const struct qes_rawtee_desc *desc, struct qes_rawtee **out, char *err,
                    size_t errlen);

/* Append a frame (gap -> new capture segment; rotation as configured).
 * The frame's samples must be integers in the datatype's range for integer
 * datatypes (QES_ERANGE otherwise).  A gap is a frame with lost_before > 0 or
 * a first_sample beyond the end of the previous frame (a frame going
 * backwards, or reporting more loss than its run index skips, is
 * QES_EINVAL); a frame with n == 0 writes nothing.
 * Returns 0 or a negative code; after an error every later call returns it
 * again without writing. */
int qes_rawtee_write(struct qes_rawtee *t, const struct qes_frame *f);

const char *qes_rawtee_errmsg(const struct qes_rawtee *t);

/* Files completed so far (closed with sha512) and data bytes written. */
unsigned qes_rawtee_files(const struct qes_rawtee *t);
uint64_t qes_rawtee_bytes(const struct qes_rawtee *t);

/* Close the current file (sha512, fsync, rename).  Frees t in every case.
 * Returns 0 or a negative code with a message; after a write error, that
 * error and its message again. */
int qes_rawtee_close(struct qes_rawtee *t, char *err, size_t errlen);

#endif
