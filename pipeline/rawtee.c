/*
 * Raw tee: see rawtee.h for the contract.
 *
 * Files.  Without rotation there is one writer on PATH for the whole run.
 * With rotation, file k is PATH-%04u; a file is closed (sha512, fsync,
 * rename) as soon as it holds its quota of frames, and the next one is only
 * created when the next sample arrives, so a run never ends with an empty
 * trailing file.  A frame that does not fit the current file is split at
 * the quota, so every file but the last holds exactly the quota.
 *
 * Captures.  The first frame written to any file sets the file's first
 * capture (qes_sigmf_writer_new_capture on a writer that has no frame yet
 * replaces its empty first capture) with the run index and UTC time of that
 * sample; a later frame whose first_sample is not the run index that follows
 * the previous frame, or which has lost_before > 0, starts a new capture.
 * The same first frame sets the file's qes:lost_before_first: the frame's
 * lost_before when the file starts with the frame's first sample, 0 when it
 * starts inside a frame split by rotation (the loss was before the part in
 * the previous file).  lost_before of a frame without samples is carried to
 * the next frame, where replay will show it.
 */
#include "pipeline/rawtee.h"
#include "common/err.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct qes_rawtee {
    char *path;
    enum qes_dtype dtype;
    double fs;
    unsigned nch;
    size_t frame_bytes;
    char *description;
    json_t *meta;               /* qes:run_id and qes:config, for every file */
    int rotate;                 /* files are PATH-%04u */
    uint64_t quota;             /* frames per file; UINT64_MAX without rotation */
    struct qes_sigmf_writer *w; /* current file, NULL between two rotated files */
    char cur[4200];             /* base path of the current (or last) file */
    unsigned file_no;           /* number of the current (or last) file, 1-based */
    unsigned files_done;        /* files closed with their metadata */
    uint64_t file_frames;       /* frames in the current file */
    uint64_t bytes;             /* data bytes written, all files */
    uint64_t next_run;          /* run index after the last frame written */
    uint64_t pending_lost;      /* lost_before of frames without samples, not yet written */
    int started;
    int failed;
    char errmsg[1024];
};

static void tee_free(struct qes_rawtee *t)
{
    free(t->path);
    free(t->description);
    json_decref(t->meta);
    free(t);
}

/* Create the writer of file t->file_no (numbered when rotating). */
static int open_file(struct qes_rawtee *t, char *err, size_t errlen)
{
    if (t->rotate)
        snprintf(t->cur, sizeof t->cur, "%s-%04u", t->path, t->file_no);
    else
        snprintf(t->cur, sizeof t->cur, "%s", t->path);
    /* qes:part numbers the files of a rotated recording (they may be renamed). */
    int bad = t->rotate &&
              json_object_set_new(t->meta, "qes:part", json_integer((json_int_t)t->file_no));
    char *extra = bad ? NULL : json_dumps(t->meta, JSON_COMPACT);
    if (!extra) {
        qes_errf(err, errlen, "raw tee %s: out of memory", t->cur);
        return QES_ENOMEM;
    }
    struct qes_sigmf_writer_desc wd = {
            .path = t->cur,
            .dtype = t->dtype,
            .sample_rate_hz = t->fs,
            .num_channels = t->nch,
            .datetime_ns = 0, /* set with the first frame */
            .description = t->description,
            .extra_global_json = json_object_size(t->meta) ? extra : NULL,
    };
    char e[1024];
    int rc = qes_sigmf_writer_create(&wd, &t->w, e, sizeof e);
    free(extra);
    if (rc) {
        qes_errf(err, errlen, "raw tee: %s", e);
        return rc;
    }
    t->file_frames = 0;
    return 0;
}

int qes_rawtee_open(const struct qes_rawtee_desc *d, struct qes_rawtee **out, char *err,
                    size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!d || !out || !d->path || !d->path[0]) {
        qes_errf(err, errlen, "raw tee: NULL desc, out or path");
        return QES_EINVAL;
    }
    if (qes_dtype_size(d->dtype) == 0) {
        qes_errf(err, errlen, "raw tee %s: invalid datatype %d", d->path, (int)d->dtype);
        return QES_EINVAL;
    }
    if (!(d->sample_rate_hz > 0 && isfinite(d->sample_rate_hz)) || d->num_channels < 1) {
        qes_errf(err, errlen,
                 "raw tee %s: sample rate %g Hz (> 0) and %u channels (>= 1) are required", d->path,
                 d->sample_rate_hz, d->num_channels);
        return QES_EINVAL;
    }
    if (!(d->max_seconds >= 0 && isfinite(d->max_seconds))) {
        qes_errf(err, errlen, "raw tee %s: max_seconds %g must be finite and >= 0", d->path,
                 d->max_seconds);
        return QES_EINVAL;
    }
    /* Room for "-NNNN" (up to 10 digits) and the writer's ".sigmf-meta.tmp". */
    if (strlen(d->path) + sizeof "-4294967295.sigmf-meta.tmp" > 4096) {
        qes_errf(err, errlen, "raw tee %s: path too long", d->path);
        return QES_EINVAL;
    }

    struct qes_rawtee *t = calloc(1, sizeof *t);
    if (!t) {
        qes_errf(err, errlen, "raw tee %s: out of memory", d->path);
        return QES_ENOMEM;
    }
    t->dtype = d->dtype;
    t->fs = d->sample_rate_hz;
    t->nch = d->num_channels;
    t->frame_bytes = qes_dtype_size(d->dtype) * d->num_channels;
    t->rotate = d->max_bytes > 0 || d->max_seconds > 0;
    t->quota = UINT64_MAX;
    if (d->max_bytes > 0) {
        uint64_t q = d->max_bytes / t->frame_bytes;
        t->quota = q ? q : 1;
    }
    if (d->max_seconds > 0) {
        /* The relative 1e-12 keeps e.g. 0.1 s x 1e4 Hz = 999.9999999999999 at 1000. */
        double q = floor(d->max_seconds * d->sample_rate_hz * (1 + 1e-12));
        uint64_t qs = q < 1 ? 1 : q >= 1.8e19 ? UINT64_MAX : (uint64_t)q;
        if (qs < t->quota)
            t->quota = qs;
    }
    t->path = strdup(d->path);
    t->description = d->description ? strdup(d->description) : NULL;
    t->meta = json_object();
    int bad = !t->path || (d->description && !t->description) || !t->meta;
    const char *const keys[2] = {"qes:run_id", "qes:config"};
    const char *const vals[2] = {d->run_id, d->config_ini};
    for (int i = 0; i < 2 && !bad; i++) {
        if (!vals[i])
            continue;
        json_t *v = json_string(vals[i]);
        if (!v) {
            qes_errf(err, errlen, "raw tee %s: %s is not valid UTF-8", d->path, keys[i]);
            tee_free(t);
            return QES_EINVAL;
        }
        bad |= json_object_set_new(t->meta, keys[i], v);
    }
    if (bad) {
        qes_errf(err, errlen, "raw tee %s: out of memory", d->path);
        tee_free(t);
        return QES_ENOMEM;
    }
    t->file_no = 1;
    int rc = open_file(t, err, errlen);
    if (rc) {
        tee_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

const char *qes_rawtee_errmsg(const struct qes_rawtee *t)
{
    return t ? t->errmsg : "";
}

unsigned qes_rawtee_files(const struct qes_rawtee *t)
{
    return t ? t->files_done : 0;
}

uint64_t qes_rawtee_bytes(const struct qes_rawtee *t)
{
    return t ? t->bytes : 0;
}

/* The current file could not be closed with its metadata: without it the
 * data file is not a capture, and after a full disk its space is better
 * left to the run's recorders, so it is removed.  note says which. */
static void remove_incomplete(const struct qes_rawtee *t, char *note, size_t len)
{
    char data[4300];
    qes_errf(data, sizeof data, "%s.sigmf-data", t->cur);
    int gone = unlink(data) == 0 || errno == ENOENT;
    qes_errf(note, len, "; the incomplete %s %s", data,
             gone ? "was removed" : "is left without metadata");
}

/* Stop the tee for good with code rc.  The current file, if open, is closed
 * with its metadata when the writer still can (a refused value wrote
 * nothing), else removed. */
static int tee_fail(struct qes_rawtee *t, int rc, const char *why_in, const char *note_in)
{
    char why[1024], note[1100];
    qes_errf(why, sizeof why, "%s", why_in); /* may be the writer's message, freed below */
    qes_errf(note, sizeof note, "%s", note_in ? note_in : "");
    if (t->w) {
        char e[1024];
        int crc = qes_sigmf_writer_close(t->w, e, sizeof e);
        t->w = NULL;
        if (crc == 0) {
            t->files_done++;
            qes_errf(note, sizeof note, "; %s was closed with the frames before the error", t->cur);
        } else {
            remove_incomplete(t, note, sizeof note);
        }
    }
    qes_errf(t->errmsg, sizeof t->errmsg, "raw tee stopped: %s (%u file%s complete%s)", why,
             t->files_done, t->files_done == 1 ? "" : "s", note);
    return t->failed = rc;
}

/* Close the current file with its metadata. */
static int close_file(struct qes_rawtee *t)
{
    char e[1024], note[1100];
    int rc = qes_sigmf_writer_close(t->w, e, sizeof e);
    t->w = NULL;
    if (rc) {
        remove_incomplete(t, note, sizeof note);
        return tee_fail(t, rc, e, note);
    }
    t->files_done++;
    return 0;
}

int qes_rawtee_write(struct qes_rawtee *t, const struct qes_frame *f)
{
    if (!t)
        return QES_EINVAL;
    if (t->failed)
        return t->failed;
    char why[1024];
    if (!f || (f->n && !f->samples) || f->n_channels != t->nch) {
        qes_errf(why, sizeof why, "%s: bad frame (%s, %u channels, %u expected)", t->cur,
                 !f ? "NULL" : "no samples", f ? f->n_channels : 0, t->nch);
        return tee_fail(t, QES_EINVAL, why, NULL);
    }
    if (f->n == 0) {
        /* a gap it carries shows with the next frame */
        t->pending_lost = f->lost_before > UINT64_MAX - t->pending_lost
                                  ? UINT64_MAX
                                  : t->pending_lost + f->lost_before;
        return 0;
    }
    if (t->started && f->first_sample < t->next_run) {
        qes_errf(why, sizeof why,
                 "%s: frame at run index %llu goes backwards (expected %llu or later)", t->cur,
                 (unsigned long long)f->first_sample, (unsigned long long)t->next_run);
        return tee_fail(t, QES_EINVAL, why, NULL);
    }
    /* hw/source.h: first_sample includes the samples lost before the frame,
     * so a loss larger than the run indices skipped cannot be recorded (a
     * replay would refuse it or report less). */
    const uint64_t skipped = f->first_sample - (t->started ? t->next_run : 0);
    const uint64_t lost = f->lost_before > UINT64_MAX - t->pending_lost
                                  ? UINT64_MAX
                                  : f->lost_before + t->pending_lost;
    if (lost > skipped) {
        qes_errf(why, sizeof why,
                 "%s: frame at run index %llu reports %llu samples lost before it, but its run "
                 "index skips only %llu (a source that breaks the contract of hw/source.h)",
                 t->cur, (unsigned long long)f->first_sample, (unsigned long long)lost,
                 (unsigned long long)skipped);
        return tee_fail(t, QES_EINVAL, why, NULL);
    }
    if (f->first_sample > (uint64_t)INT64_MAX - f->n) {
        qes_errf(why, sizeof why, "%s: run index %llu out of range", t->cur,
                 (unsigned long long)f->first_sample);
        return tee_fail(t, QES_ERANGE, why, NULL);
    }
    const int gap = t->started && (f->first_sample != t->next_run || lost > 0);
    size_t off = 0;
    while (off < f->n) {
        int rc;
        if (!t->w) {
            t->file_no++;
            rc = open_file(t, why, sizeof why);
            if (rc)
                return tee_fail(t, rc, why, NULL);
        }
        if (t->file_frames == 0 || (off == 0 && gap)) {
            /* The run index and time of sample off of this frame. */
            int64_t when = f->host_time_ns;
            if (off)
                when += (int64_t)llroundl((long double)off * 1e9L / (long double)t->fs);
            rc = qes_sigmf_writer_new_capture(t->w, f->first_sample + off, when);
            if (rc)
                return tee_fail(t, rc, qes_sigmf_writer_errmsg(t->w), NULL);
        }
        if (t->file_frames == 0) {
            /* What the live run saw lost just before the file's first sample. */
            char v[24];
            snprintf(v, sizeof v, "%llu", (unsigned long long)(off == 0 ? lost : 0));
            rc = qes_sigmf_writer_set_extra(t->w, "qes:lost_before_first", v);
            if (rc)
                return tee_fail(t, rc, qes_sigmf_writer_errmsg(t->w), NULL);
        }
        uint64_t room = t->quota - t->file_frames;
        size_t k = f->n - off < room ? f->n - off : (size_t)room;
        rc = qes_sigmf_writer_write(t->w, f->samples + off * t->nch, k);
        if (rc)
            return tee_fail(t, rc, qes_sigmf_writer_errmsg(t->w), NULL);
        t->file_frames += k;
        t->bytes += (uint64_t)k * t->frame_bytes;
        off += k;
        if (t->rotate && t->file_frames >= t->quota) {
            rc = close_file(t);
            if (rc)
                return rc;
        }
    }
    t->next_run = f->first_sample + f->n;
    t->pending_lost = 0;
    t->started = 1;
    return 0;
}

int qes_rawtee_close(struct qes_rawtee *t, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!t) {
        qes_errf(err, errlen, "raw tee: NULL");
        return QES_EINVAL;
    }
    int rc = t->failed;
    if (rc)
        qes_errf(err, errlen, "%s", t->errmsg);
    else if (t->w && (rc = close_file(t)) != 0)
        qes_errf(err, errlen, "%s", t->errmsg);
    tee_free(t);
    return rc;
}
