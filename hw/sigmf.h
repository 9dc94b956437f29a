/*
 * SigMF captures: a `.sigmf-meta` JSON file and a `.sigmf-data` file of raw
 * interleaved samples (SigMF 1.2.x).
 *
 * The reader is strict where the SigMF schema is weak: the datatype grammar,
 * sorted captures, a data size that is a whole number of samples, an existing
 * data file, a matching `core:sha512` and UTC datetimes are all checked, and
 * every error message names the file and the field.  Samples are streamed in
 * chunks: a capture larger than memory replays in bounded memory.
 *
 * Supported for reading and writing: ri16_le, ri32_le, rf32_le, rf64_le.
 * Valid but not supported yet (refused with QES_EUNSUPPORTED): complex types,
 * big-endian types, 8-bit and unsigned types.
 */
#ifndef QES_HW_SIGMF_H
#define QES_HW_SIGMF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum qes_dtype {
    QES_DT_RI16_LE = 0,
    QES_DT_RI32_LE = 1,
    QES_DT_RF32_LE = 2,
    QES_DT_RF64_LE = 3,
};

/*
 * Parse a SigMF datatype string.  Grammar: (r|c)(f32|f64|i8|i16|i32|u8|u16|u32)
 * with _le or _be required for all but 8-bit types.  Returns 0 for a supported
 * type, QES_EUNSUPPORTED for a grammatical but unsupported one, QES_EFORMAT
 * otherwise.
 */
int qes_dtype_parse(const char *s, enum qes_dtype *out);
const char *qes_dtype_name(enum qes_dtype dt);
size_t qes_dtype_size(enum qes_dtype dt); /* bytes per sample of one channel */

struct qes_sigmf_capture {
    uint64_t sample_start; /* core:sample_start: index into the data file, per channel */
    uint64_t
            global_index; /* core:global_index if given, else sample_start + offset of preceding gaps */
    int has_global_index;
    int64_t datetime_ns; /* core:datetime, if has_datetime */
    int has_datetime;
};

struct qes_sigmf_info {
    char meta_path[4096];
    char data_path[4096];
    enum qes_dtype dtype;
    double sample_rate_hz;
    unsigned num_channels;
    uint64_t n_frames;   /* samples per channel in the data file */
    uint64_t data_bytes; /* size of the data file */
    size_t n_captures;
    const struct qes_sigmf_capture *captures; /* sorted by sample_start, >= 1 entry */
    char sha512[129];                         /* lowercase hex, "" when absent */
    int sha512_verified;                      /* 1 when checked against the data */
    const json_t *meta;                       /* the whole parsed metadata (borrowed) */
    /* qes extension keys of the global object, checked by the reader: */
    const char *run_id;         /* qes:run_id (a string, borrowed), NULL when absent */
    uint64_t part;              /* qes:part (an integer >= 1), 0 when absent */
    int has_lost_before_first;  /* qes:lost_before_first present: */
    uint64_t lost_before_first; /* samples per channel lost just before the file's first
                                   sample (an integer <= captures[0].global_index) */
};

struct qes_sigmf_reader;

/*
 * Open a capture by its `.sigmf-meta` path (or base name without extension).
 * The qes extension keys qes:run_id, qes:part and qes:lost_before_first are
 * optional; when present their type and range are checked like the core
 * fields.  When verify is nonzero and `core:sha512` is present, the data file is hashed
 * first and a mismatch is QES_EHASH.  On error *out is NULL and err (errlen
 * bytes, may be NULL) holds a message naming the file and field.
 * Returns 0, QES_ENOENT, QES_EFORMAT, QES_EUNSUPPORTED, QES_EHASH, QES_EIO, QES_ENOMEM.
 */
int qes_sigmf_open(const char *meta_path, int verify, struct qes_sigmf_reader **out, char *err,
                   size_t errlen);

const struct qes_sigmf_info *qes_sigmf_get_info(const struct qes_sigmf_reader *r);

/*
 * Read up to max_frames frames (one sample of every channel, interleaved) in
 * file order, converted to double without scaling (integer types give raw
 * counts, exactly).  Returns the number of frames read, 0 at the end of the
 * data, or a negative code (message in qes_sigmf_errmsg).  A data file that
 * shrank or changed under the reader is QES_EIO.
 */
long qes_sigmf_read(struct qes_sigmf_reader *r, double *out, size_t max_frames);

/* Index of the next frame qes_sigmf_read will return. */
uint64_t qes_sigmf_tell(const struct qes_sigmf_reader *r);

const char *qes_sigmf_errmsg(const struct qes_sigmf_reader *r);

/* No-op for NULL. */
void qes_sigmf_close(struct qes_sigmf_reader *r);

struct qes_sigmf_writer_desc {
    const char *path; /* base path: PATH.sigmf-meta and PATH.sigmf-data are written */
    enum qes_dtype dtype;
    double sample_rate_hz;   /* > 0 */
    unsigned num_channels;   /* >= 1 */
    int64_t datetime_ns;     /* core:datetime of the first capture */
    const char *description; /* core:description, may be NULL */
    /* JSON object text whose members are added to `global` (e.g. "qes:sim"), may
     * be NULL.  Keys in the qes: namespace make the writer declare the qes
     * extension in core:extensions. */
    const char *extra_global_json;
};

struct qes_sigmf_writer;

/*
 * Create a capture.  The data file is written as samples arrive; the meta file
 * is written on close, with core:sha512, through a temporary file renamed into
 * place after fsync, so a crash never leaves a meta file that lies.
 */
int qes_sigmf_writer_create(const struct qes_sigmf_writer_desc *desc, struct qes_sigmf_writer **out,
                            char *err, size_t errlen);

/*
 * Append frames given as double values in the datatype's raw unit.  Integer
 * types: values must be integers inside the type's range (QES_ERANGE
 * otherwise, nothing written).  Returns 0 or a negative code.
 */
int qes_sigmf_writer_write(struct qes_sigmf_writer *w, const double *frames, size_t n_frames);

/* Start a new capture segment at the current data position, after a gap:
 * global_index is the run's sample index of the next frame.  A capture that
 * has no frame yet is replaced, so a call before the first frame sets the
 * first capture (e.g. a file that continues a run at global_index > 0, or a
 * datetime known only when the first frame arrives).  Returns 0,
 * QES_EINVAL (global_index behind the previous capture's end), QES_ERANGE
 * (above 2^63 - 1) or QES_ENOMEM. */
int qes_sigmf_writer_new_capture(struct qes_sigmf_writer *w, uint64_t global_index,
                                 int64_t datetime_ns);

/*
 * Add (or replace) one member of the global object after creation, for
 * values known only once samples arrive (e.g. "qes:lost_before_first").
 * value_json is JSON text of any type.  The rules of extra_global_json apply
 * (keys the writer owns are refused, a qes: key declares the extension).
 * Returns 0, QES_EINVAL (bad key or JSON; message in errmsg) or QES_ENOMEM;
 * after a failed write, that error.
 */
int qes_sigmf_writer_set_extra(struct qes_sigmf_writer *w, const char *key, const char *value_json);

const char *qes_sigmf_writer_errmsg(const struct qes_sigmf_writer *w);

/* Finish: fsync data, write meta with core:sha512.  Frees w in every case.
 * Returns 0 or a negative code with a message in err. */
int qes_sigmf_writer_close(struct qes_sigmf_writer *w, char *err, size_t errlen);

#endif
