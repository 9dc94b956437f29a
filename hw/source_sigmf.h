/*
 * Replay source: a SigMF capture, or a set of captures that together make
 * one run (a rotated raw recording PATH-0001, PATH-0002, ...), delivered as
 * frames.  Capture segments whose core:global_index jumps ahead of the
 * samples delivered so far become gaps (lost_before).  Host time comes from
 * core:datetime plus n / fs, never from the host clock, so replay is
 * deterministic.
 *
 * Loss before a file's first sample.  A file that carries
 * qes:lost_before_first (the raw tee writes it in every file) reports that
 * value as lost_before on its first frame, as the live run saw it: a run
 * whose first frames were lost, or a gap that fell exactly where a rotated
 * file begins, is flagged on replay as it was live.  A file without the key
 * reports 0 when it comes first, and else the jump from the end of the
 * previous file to its first global index.
 *
 * A set (qes_source_sigmf_open_set) replays as one run: first_sample
 * continues across the files, so every file's samples keep their run
 * indices.  The set is checked completely before the first frame, and
 * every violation is an error naming both files concerned:
 *  - the same core:datatype, core:sample_rate and core:num_channels;
 *  - the same qes:run_id, when present (in all files or in none);
 *  - qes:part consecutive, when present (in all files or in none); the
 *    files are put in qes:part order first, so any order of the arguments
 *    works, a shell glob's included (also past part 9999, where a glob's
 *    order is no longer numeric);
 *  - global indices strictly increasing: a file starts at or after the run
 *    index that follows the previous file's last sample;
 *  - qes:lost_before_first at most the run samples missing between the
 *    previous file's end and the file's first sample.
 * core:sha512 is verified for every file (when verify is set) before the
 * first frame.  Only two files are open at a time (the first, whose
 * metadata stays available, and the one being read), so a set may hold
 * more files than the process may open; a file reopened for reading must
 * still have the metadata and data size it had when it was checked
 * (QES_EIO otherwise).
 */
#ifndef QES_HW_SOURCE_SIGMF_H
#define QES_HW_SOURCE_SIGMF_H

#include "hw/sigmf.h"
#include "hw/source.h"

/* One file of a replay source, as checked when the source was created. */
struct qes_sigmf_file {
    const char *meta_path; /* PATH.sigmf-meta */
    const char *data_path; /* PATH.sigmf-data */
    uint64_t n_frames;     /* samples per channel in the file */
    uint64_t first_index;  /* run index of its first sample (captures[0] global index) */
    uint64_t end_index;    /* run index after its last sample */
    int has_lost_before_first;
    uint64_t lost_before_first; /* qes:lost_before_first, when present */
    const char *sha512;         /* core:sha512, "" when absent */
    int sha512_verified;        /* 1 when the data was hashed and matched */
};

/* Takes ownership of reader (closed by qes_source_destroy, also on error). */
int qes_source_sigmf_create(struct qes_sigmf_reader *reader, size_t chunk_frames,
                            struct qes_source **out, char *err, size_t errlen);

/*
 * Open n >= 1 captures as one run (see the top).  Each name is a
 * PATH.sigmf-meta, a PATH.sigmf-data or a base PATH: the two files of one
 * capture given both (as `qes replay PATH-*` expands) count once, while the
 * same name given twice is QES_EINVAL.  verify: check core:sha512 of every
 * file.  chunk_frames 0 means 65536.  Returns 0, QES_EINVAL, QES_ENOMEM, or
 * the reader's codes (QES_ENOENT, QES_EFORMAT, QES_EHASH, ...); a set whose
 * files do not belong together is QES_EFORMAT.  On error *out is NULL and
 * err names the file(s).
 */
int qes_source_sigmf_open_set(const char *const *names, size_t n, int verify, size_t chunk_frames,
                              struct qes_source **out, char *err, size_t errlen);

/* For a SigMF replay source (0 / NULL for another source): its files in
 * replay order, and the first file's metadata, valid until the source is
 * destroyed. */
size_t qes_source_sigmf_n_files(const struct qes_source *s);
const struct qes_sigmf_file *qes_source_sigmf_file(const struct qes_source *s, size_t k);
const struct qes_sigmf_info *qes_source_sigmf_info(const struct qes_source *s);

#endif
