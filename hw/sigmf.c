/*
 * SigMF reader and writer.
 *
 * Reader: the metadata is parsed and checked completely in qes_sigmf_open, so
 * a bad capture fails before the first sample rather than half-way through a
 * replay.  Samples are read with pread() into a bounded staging buffer and
 * converted to double in a tight loop; rf64_le on a little-endian host is read
 * straight into the caller's array.
 *
 * Writer: samples are checked, converted into a staging buffer and written
 * with write(); the SHA-512 is updated with exactly the bytes handed to the
 * kernel.  The meta file is written last, through PATH.sigmf-meta.tmp,
 * fsync() and rename(), so a meta file on disk always describes a complete
 * data file.
 */
#define _FILE_OFFSET_BITS 64 /* large captures on 32-bit hosts */

#include "hw/sigmf.h"
#include "common/err.h"
#include "common/utctime.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__GNUC__)
#define QES__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define QES__PRINTF(f, a)
#endif

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
        __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define QES__HOST_LE 1
#else
#define QES__HOST_LE 0
#endif

/* Staging buffer for raw samples: large enough that a pread() costs little
 * per byte, small enough to stay in L2 while it is converted. */
#define QES__SIGMF_BUF_BYTES ((size_t)1 << 20)
/* Largest core:num_channels accepted: one frame must fit the staging buffer. */
#define QES__SIGMF_MAX_CHANNELS 65536u
/* core:sample_rate upper bound of the SigMF schema. */
#define QES__SIGMF_MAX_RATE 1e12

static const char qes__meta_ext[] = ".sigmf-meta";
static const char qes__data_ext[] = ".sigmf-data";

/* ------------------------------------------------------------------------ */
/* Datatypes                                                                */

static const char *const qes__dtype_names[] = {"ri16_le", "ri32_le", "rf32_le", "rf64_le"};
static const size_t qes__dtype_sizes[] = {2, 4, 4, 8};

/*
 * Classify a datatype string.  Returns 0 (supported), QES_EUNSUPPORTED or
 * QES_EFORMAT; *why gets a short reason for the two errors.
 */
static int dtype_classify(const char *s, enum qes_dtype *out, const char **why)
{
    static const struct {
        const char *name;
        unsigned bits;
        char kind; /* 'f', 'i', 'u' */
    } types[] = {{"f32", 32, 'f'}, {"f64", 64, 'f'}, {"i8", 8, 'i'},   {"i16", 16, 'i'},
                 {"i32", 32, 'i'}, {"u8", 8, 'u'},   {"u16", 16, 'u'}, {"u32", 32, 'u'}};
    *why = " is not a SigMF datatype ((r|c)(f32|f64|i8|i16|i32|u8|u16|u32), with _le or _be except for 8-bit types)";
    if (!s || (s[0] != 'r' && s[0] != 'c'))
        return QES_EFORMAT;
    size_t k, nt = sizeof types / sizeof types[0];
    const char *rest = NULL;
    for (k = 0; k < nt; k++) {
        size_t len = strlen(types[k].name);
        if (strncmp(s + 1, types[k].name, len) == 0) {
            rest = s + 1 + len;
            break;
        }
    }
    if (!rest)
        return QES_EFORMAT;
    int big = 0;
    if (types[k].bits == 8) {
        /* SigMF: byte types carry no endianness suffix. */
        if (*rest != '\0')
            return QES_EFORMAT;
    } else if (strcmp(rest, "_le") == 0) {
        big = 0;
    } else if (strcmp(rest, "_be") == 0) {
        big = 1;
    } else {
        return QES_EFORMAT;
    }
    if (s[0] == 'c') {
        *why = ": complex datatypes are not supported yet";
        return QES_EUNSUPPORTED;
    }
    if (big) {
        *why = ": big-endian datatypes are not supported yet";
        return QES_EUNSUPPORTED;
    }
    if (types[k].bits == 8) {
        *why = ": 8-bit datatypes are not supported yet";
        return QES_EUNSUPPORTED;
    }
    if (types[k].kind == 'u') {
        *why = ": unsigned datatypes are not supported yet";
        return QES_EUNSUPPORTED;
    }
    *why = NULL;
    if (types[k].kind == 'f')
        *out = types[k].bits == 32 ? QES_DT_RF32_LE : QES_DT_RF64_LE;
    else
        *out = types[k].bits == 16 ? QES_DT_RI16_LE : QES_DT_RI32_LE;
    return 0;
}

int qes_dtype_parse(const char *s, enum qes_dtype *out)
{
    enum qes_dtype dt;
    const char *why;
    if (!s)
        return QES_EINVAL;
    int rc = dtype_classify(s, &dt, &why);
    if (rc == 0 && out)
        *out = dt;
    return rc;
}

static int dtype_valid(enum qes_dtype dt)
{
    return (int)dt >= 0 && (size_t)dt < sizeof qes__dtype_sizes / sizeof qes__dtype_sizes[0];
}

const char *qes_dtype_name(enum qes_dtype dt)
{
    return dtype_valid(dt) ? qes__dtype_names[dt] : "invalid";
}

size_t qes_dtype_size(enum qes_dtype dt)
{
    return dtype_valid(dt) ? qes__dtype_sizes[dt] : 0;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

QES__PRINTF(4, 5)
static int seterr(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int errno_code(int e)
{
    if (e == ENOSPC)
        return QES_ENOSPC;
#ifdef EDQUOT
    if (e == EDQUOT)
        return QES_ENOSPC;
#endif
    if (e == ENOMEM)
        return QES_ENOMEM;
    return QES_EIO;
}

static void to_hex(const unsigned char *d, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

/* pread() until n bytes or end of file; returns bytes read or -1 (errno). */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > ((size_t)1 << 30))
            want = (size_t)1 << 30;
        ssize_t k = pread(fd, (char *)buf + got, want, (off_t)(off + got));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* write() all n bytes; returns 0 or -1 (errno). */
static int write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/*
 * A JSON value as a non-negative integer: a JSON integer, or a real with an
 * exact integral value below 2^53 (JSON Schema counts 3.0 as an integer).
 */
static int json_to_u64(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return -1;
        *out = (uint64_t)i;
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0 && d < 9007199254740992.0) || d != floor(d))
            return -1;
        *out = (uint64_t)d;
        return 0;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                   */

struct qes_sigmf_reader {
    struct qes_sigmf_info info;
    struct qes_sigmf_capture *caps;
    json_t *root;
    int fd;
    uint64_t pos;       /* next frame */
    size_t frame_bytes; /* bytes per frame in the file */
    unsigned char *buf; /* staging buffer, QES__SIGMF_BUF_BYTES */
    char errmsg[512];
};

static void reader_free(struct qes_sigmf_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    json_decref(r->root);
    free(r->caps);
    free(r->buf);
    free(r);
}

/* Hash the whole data file in buffer-sized pieces. */
static int hash_file(struct qes_sigmf_reader *r, char hex[129], char *err, size_t errlen)
{
    const struct qes_sigmf_info *in = &r->info;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return seterr(err, errlen, QES_ENOMEM, "%s: out of memory for SHA-512", in->meta_path);
    int rc = 0;
    if (EVP_DigestInit_ex(md, EVP_sha512(), NULL) != 1) {
        rc = seterr(err, errlen, QES_EIO, "%s: cannot initialise SHA-512", in->meta_path);
        goto out;
    }
    uint64_t off = 0;
    for (;;) {
        ssize_t k = pread_full(r->fd, r->buf, QES__SIGMF_BUF_BYTES, off);
        if (k < 0) {
            rc = seterr(err, errlen, QES_EIO, "%s: data file %s: read error at byte %llu: %s",
                        in->meta_path, in->data_path, (unsigned long long)off, strerror(errno));
            goto out;
        }
        if (k == 0)
            break;
        if (EVP_DigestUpdate(md, r->buf, (size_t)k) != 1) {
            rc = seterr(err, errlen, QES_EIO, "%s: SHA-512 update failed", in->meta_path);
            goto out;
        }
        off += (uint64_t)k;
    }
    if (off != in->data_bytes) {
        rc = seterr(err, errlen, QES_EIO,
                    "%s: data file %s changed size while hashing (%llu bytes, expected %llu)",
                    in->meta_path, in->data_path, (unsigned long long)off,
                    (unsigned long long)in->data_bytes);
        goto out;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    if (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 64) {
        rc = seterr(err, errlen, QES_EIO, "%s: SHA-512 final failed", in->meta_path);
        goto out;
    }
    to_hex(d, 64, hex);
out:
    EVP_MD_CTX_free(md);
    return rc;
}

/* Global object: everything except the data file. */
static int parse_global(struct qes_sigmf_reader *r, const json_t *global, char *err, size_t errlen)
{
    struct qes_sigmf_info *in = &r->info;
    const char *mp = in->meta_path;
    const json_t *v;

    v = json_object_get(global, "core:datatype");
    if (!v)
        return seterr(err, errlen, QES_EFORMAT, "%s: global.core:datatype: missing (required)", mp);
    if (!json_is_string(v))
        return seterr(err, errlen, QES_EFORMAT, "%s: global.core:datatype: must be a string", mp);
    const char *why;
    int rc = dtype_classify(json_string_value(v), &in->dtype, &why);
    if (rc)
        return seterr(err, errlen, rc, "%s: global.core:datatype: \"%s\"%s", mp,
                      json_string_value(v), why);

    v = json_object_get(global, "core:version");
    if (!v)
        return seterr(err, errlen, QES_EFORMAT, "%s: global.core:version: missing (required)", mp);
    if (!json_is_string(v))
        return seterr(err, errlen, QES_EFORMAT, "%s: global.core:version: must be a string", mp);
    const char *ver = json_string_value(v);
    if (strncmp(ver, "1.", 2) != 0) {
        if (isdigit((unsigned char)ver[0]))
            return seterr(err, errlen, QES_EUNSUPPORTED,
                          "%s: global.core:version: \"%s\": only SigMF 1.x is supported", mp, ver);
        return seterr(err, errlen, QES_EFORMAT,
                      "%s: global.core:version: \"%s\" is not a version X.Y.Z", mp, ver);
    }

    v = json_object_get(global, "core:sample_rate");
    if (!v)
        return seterr(err, errlen, QES_EFORMAT,
                      "%s: global.core:sample_rate: missing (required by qes)", mp);
    if (!json_is_number(v))
        return seterr(err, errlen, QES_EFORMAT, "%s: global.core:sample_rate: must be a number",
                      mp);
    in->sample_rate_hz = json_number_value(v);
    if (!(in->sample_rate_hz > 0 && in->sample_rate_hz <= QES__SIGMF_MAX_RATE))
        return seterr(err, errlen, QES_EFORMAT,
                      "%s: global.core:sample_rate: %.17g Hz is outside (0, 1e12]", mp,
                      in->sample_rate_hz);

    in->num_channels = 1;
    v = json_object_get(global, "core:num_channels");
    if (v) {
        uint64_t nc;
        if (json_to_u64(v, &nc) || nc < 1)
            return seterr(err, errlen, QES_EFORMAT,
                          "%s: global.core:num_channels: must be an integer >= 1", mp);
        if (nc > QES__SIGMF_MAX_CHANNELS)
            return seterr(err, errlen, QES_EUNSUPPORTED,
                          "%s: global.core:num_channels: %llu channels exceeds the limit of %u", mp,
                          (unsigned long long)nc, QES__SIGMF_MAX_CHANNELS);
        in->num_channels = (unsigned)nc;
    }

    in->sha512[0] = '\0';
    v = json_object_get(global, "core:sha512");
    if (v) {
        const char *h = json_string_value(v);
        size_t i = 0;
        if (h)
            for (; h[i] && i < 129 && isxdigit((unsigned char)h[i]); i++)
                ;
        if (!h || i != 128 || h[128] != '\0')
            return seterr(err, errlen, QES_EFORMAT,
                          "%s: global.core:sha512: must be a string of 128 hex digits", mp);
        for (i = 0; i < 128; i++)
            in->sha512[i] = (char)tolower((unsigned char)h[i]);
        in->sha512[128] = '\0';
    }
    return 0;
}

static int parse_captures(struct qes_sigmf_reader *r, const json_t *caps, char *err, size_t errlen)
{
    struct qes_sigmf_info *in = &r->info;
    const char *mp = in->meta_path;
    size_t n = json_array_size(caps);
    r->caps = calloc(n ? n : 1, sizeof *r->caps);
    if (!r->caps)
        return seterr(err, errlen, QES_ENOMEM, "%s: out of memory for %zu captures", mp, n);
    in->n_captures = n ? n : 1;
    in->captures = r->caps;
    if (n == 0)
        return 0; /* SigMF: [] means one capture at sample 0, no other metadata */

    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_array_get(caps, i);
        struct qes_sigmf_capture *cp = &r->caps[i];
        if (!json_is_object(c))
            return seterr(err, errlen, QES_EFORMAT, "%s: captures[%zu]: must be an object", mp, i);
        const json_t *v = json_object_get(c, "core:sample_start");
        cp->sample_start = 0;
        if (v && json_to_u64(v, &cp->sample_start))
            return seterr(err, errlen, QES_EFORMAT,
                          "%s: captures[%zu].core:sample_start: must be an integer >= 0", mp, i);
        if (i > 0 && cp->sample_start <= cp[-1].sample_start)
            return seterr(
                    err, errlen, QES_EFORMAT,
                    "%s: captures[%zu].core:sample_start: %llu is not after captures[%zu].core:sample_start %llu (captures must be sorted, without duplicates)",
                    mp, i, (unsigned long long)cp->sample_start, i - 1,
                    (unsigned long long)cp[-1].sample_start);
        if (in->n_frames > 0 && cp->sample_start >= in->n_frames)
            return seterr(
                    err, errlen, QES_EFORMAT,
                    "%s: captures[%zu].core:sample_start: %llu is beyond the end of the data (%llu frames)",
                    mp, i, (unsigned long long)cp->sample_start, (unsigned long long)in->n_frames);

        /* Where the run would be at this capture without a gap. */
        uint64_t contiguous = cp->sample_start;
        if (i > 0) {
            uint64_t delta = cp->sample_start - cp[-1].sample_start;
            if (cp[-1].global_index > UINT64_MAX - delta)
                return seterr(err, errlen, QES_EFORMAT,
                              "%s: captures[%zu].core:global_index: sample index overflows", mp, i);
            contiguous = cp[-1].global_index + delta;
        }
        v = json_object_get(c, "core:global_index");
        if (v) {
            if (json_to_u64(v, &cp->global_index))
                return seterr(err, errlen, QES_EFORMAT,
                              "%s: captures[%zu].core:global_index: must be an integer >= 0", mp,
                              i);
            cp->has_global_index = 1;
            if (i > 0 && cp->global_index < contiguous)
                return seterr(
                        err, errlen, QES_EFORMAT,
                        "%s: captures[%zu].core:global_index: %llu goes backwards (captures[%zu] runs up to %llu)",
                        mp, i, (unsigned long long)cp->global_index, i - 1,
                        (unsigned long long)contiguous);
        } else {
            cp->global_index = contiguous;
        }

        v = json_object_get(c, "core:datetime");
        if (v) {
            if (!json_is_string(v))
                return seterr(err, errlen, QES_EFORMAT,
                              "%s: captures[%zu].core:datetime: must be a string", mp, i);
            if (qes_utc_parse(json_string_value(v), &cp->datetime_ns) != 0)
                return seterr(
                        err, errlen, QES_EFORMAT,
                        "%s: captures[%zu].core:datetime: \"%s\" is not a UTC date-time YYYY-MM-DDTHH:MM:SS[.fraction]Z",
                        mp, i, json_string_value(v));
            cp->has_datetime = 1;
        }
    }
    return 0;
}

/* The qes extension keys of the global object (after the captures: the
 * loss before the first sample cannot exceed the run samples before it). */
static int parse_qes(struct qes_sigmf_reader *r, const json_t *global, char *err, size_t errlen)
{
    struct qes_sigmf_info *in = &r->info;
    const char *mp = in->meta_path;
    const json_t *v = json_object_get(global, "qes:run_id");
    if (v) {
        if (!json_is_string(v))
            return seterr(err, errlen, QES_EFORMAT, "%s: global.qes:run_id: must be a string", mp);
        in->run_id = json_string_value(v);
    }
    v = json_object_get(global, "qes:part");
    if (v && (json_to_u64(v, &in->part) || in->part < 1))
        return seterr(err, errlen, QES_EFORMAT, "%s: global.qes:part: must be an integer >= 1", mp);
    v = json_object_get(global, "qes:lost_before_first");
    if (v) {
        uint64_t lost;
        if (json_to_u64(v, &lost))
            return seterr(err, errlen, QES_EFORMAT,
                          "%s: global.qes:lost_before_first: must be an integer >= 0", mp);
        /* Run index of the file's first sample (data may precede captures[0]). */
        const struct qes_sigmf_capture *c0 = &in->captures[0];
        uint64_t first =
                c0->global_index >= c0->sample_start ? c0->global_index - c0->sample_start : 0;
        if (lost > first)
            return seterr(err, errlen, QES_EFORMAT,
                          "%s: global.qes:lost_before_first: %llu samples lost before the "
                          "file's first sample, which is at run index %llu "
                          "(captures[0].core:global_index)",
                          mp, (unsigned long long)lost, (unsigned long long)first);
        in->has_lost_before_first = 1;
        in->lost_before_first = lost;
    }
    return 0;
}

int qes_sigmf_open(const char *meta_path, int verify, struct qes_sigmf_reader **out, char *err,
                   size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!meta_path || !out)
        return seterr(err, errlen, QES_EINVAL, "qes_sigmf_open: NULL argument");

    struct qes_sigmf_reader *r = calloc(1, sizeof *r);
    if (!r)
        return seterr(err, errlen, QES_ENOMEM, "%s: out of memory", meta_path);
    r->fd = -1;
    struct qes_sigmf_info *in = &r->info;
    int rc;

    /* PATH.sigmf-meta or the base PATH. */
    size_t len = strlen(meta_path), el = sizeof qes__meta_ext - 1;
    size_t base_len = len;
    if (len >= el && strcmp(meta_path + len - el, qes__meta_ext) == 0)
        base_len = len - el;
    if (base_len + el + 1 > sizeof in->meta_path) {
        rc = seterr(err, errlen, QES_EINVAL, "%s: path too long", meta_path);
        goto fail;
    }
    snprintf(in->meta_path, sizeof in->meta_path, "%.*s%s", (int)base_len, meta_path,
             qes__meta_ext);
    snprintf(in->data_path, sizeof in->data_path, "%.*s%s", (int)base_len, meta_path,
             qes__data_ext);
    const char *mp = in->meta_path;

    FILE *f = fopen(mp, "rb");
    if (!f) {
        int e = errno;
        rc = seterr(err, errlen, e == ENOENT ? QES_ENOENT : QES_EIO, "%s: cannot open: %s", mp,
                    strerror(e));
        goto fail;
    }
    json_error_t jerr;
    r->root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (!r->root) {
        rc = seterr(err, errlen, QES_EFORMAT, "%s: line %d, column %d: malformed JSON: %s", mp,
                    jerr.line, jerr.column, jerr.text);
        goto fail;
    }
    in->meta = r->root;
    if (!json_is_object(r->root)) {
        rc = seterr(err, errlen, QES_EFORMAT, "%s: top level: must be a JSON object", mp);
        goto fail;
    }
    const json_t *global = json_object_get(r->root, "global");
    if (!json_is_object(global)) {
        rc = seterr(err, errlen, QES_EFORMAT, "%s: global: %s", mp,
                    global ? "must be an object" : "missing (required)");
        goto fail;
    }
    rc = parse_global(r, global, err, errlen);
    if (rc)
        goto fail;
    const json_t *caps = json_object_get(r->root, "captures");
    if (!json_is_array(caps)) {
        rc = seterr(err, errlen, QES_EFORMAT, "%s: captures: %s", mp,
                    caps ? "must be an array" : "missing (required)");
        goto fail;
    }
    const json_t *ann = json_object_get(r->root, "annotations");
    if (ann && !json_is_array(ann)) {
        rc = seterr(err, errlen, QES_EFORMAT, "%s: annotations: must be an array", mp);
        goto fail;
    }

    r->fd = open(in->data_path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int e = errno;
        rc = seterr(err, errlen, e == ENOENT ? QES_ENOENT : QES_EIO,
                    "%s: data file %s: cannot open: %s", mp, in->data_path, strerror(e));
        goto fail;
    }
    struct stat st;
    if (fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = seterr(err, errlen, QES_EIO, "%s: data file %s: not a regular file", mp,
                    in->data_path);
        goto fail;
    }
    in->data_bytes = (uint64_t)st.st_size;
    r->frame_bytes = qes__dtype_sizes[in->dtype] * in->num_channels;
    if (in->data_bytes % r->frame_bytes != 0) {
        rc = seterr(
                err, errlen, QES_EFORMAT,
                "%s: data file %s: size %llu bytes is not a whole number of frames of %zu bytes (%s x %u channels)",
                mp, in->data_path, (unsigned long long)in->data_bytes, r->frame_bytes,
                qes__dtype_names[in->dtype], in->num_channels);
        goto fail;
    }
    in->n_frames = in->data_bytes / r->frame_bytes;

    rc = parse_captures(r, caps, err, errlen);
    if (rc)
        goto fail;
    rc = parse_qes(r, global, err, errlen);
    if (rc)
        goto fail;

    r->buf = malloc(QES__SIGMF_BUF_BYTES);
    if (!r->buf) {
        rc = seterr(err, errlen, QES_ENOMEM, "%s: out of memory", mp);
        goto fail;
    }
    if (verify && in->sha512[0]) {
        char hex[129];
        rc = hash_file(r, hex, err, errlen);
        if (rc)
            goto fail;
        if (strcmp(hex, in->sha512) != 0) {
            rc = seterr(
                    err, errlen, QES_EHASH,
                    "%s: global.core:sha512: data file %s does not match: metadata says %s, data hashes to %s",
                    mp, in->data_path, in->sha512, hex);
            goto fail;
        }
        in->sha512_verified = 1;
    }
#if defined(POSIX_FADV_SEQUENTIAL)
    (void)posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    *out = r;
    return 0;
fail:
    reader_free(r);
    return rc;
}

const struct qes_sigmf_info *qes_sigmf_get_info(const struct qes_sigmf_reader *r)
{
    return r ? &r->info : NULL;
}

uint64_t qes_sigmf_tell(const struct qes_sigmf_reader *r)
{
    return r ? r->pos : 0;
}

const char *qes_sigmf_errmsg(const struct qes_sigmf_reader *r)
{
    return r ? r->errmsg : "";
}

void qes_sigmf_close(struct qes_sigmf_reader *r)
{
    reader_free(r);
}

/*
 * Little-endian raw samples to double.  On a little-endian host memcpy is a
 * plain load; elsewhere the bytes are assembled explicitly.  All conversions
 * are exact (every int16, int32 and float is a double).
 *
 * The loops run in blocks of QES__CVT_BLOCK with a constant inner count so
 * that GCC's -O2 cost model (which refuses loops needing an epilogue) still
 * unrolls and vectorises them; the tail is handled by the same code with a
 * variable count.
 */
#define QES__CVT_BLOCK 16

static inline int16_t ld_i16(const unsigned char *p)
{
    int16_t v;
#if QES__HOST_LE
    memcpy(&v, p, 2);
#else
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8;
    v = (int16_t)((int32_t)u - (int32_t)((u & 0x8000u) << 1));
#endif
    return v;
}

static inline uint32_t ld_u32(const unsigned char *p)
{
    uint32_t u;
#if QES__HOST_LE
    memcpy(&u, p, 4);
#else
    u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
#endif
    return u;
}

static inline int32_t ld_i32(const unsigned char *p)
{
    int32_t v;
#if QES__HOST_LE
    memcpy(&v, p, 4);
#else
    uint32_t u = ld_u32(p);
    v = (u & 0x80000000u) ? (int32_t)(u - 0x80000000u) - INT32_MAX - 1 : (int32_t)u;
#endif
    return v;
}

static inline float ld_f32(const unsigned char *p)
{
    uint32_t u = ld_u32(p);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

#define QES__CVT_LOOP(name, T, size, load)                                             \
    static void name(double *restrict out, const unsigned char *restrict in, size_t n) \
    {                                                                                  \
        size_t i = 0;                                                                  \
        for (; i + QES__CVT_BLOCK <= n; i += QES__CVT_BLOCK)                           \
            for (size_t j = 0; j < QES__CVT_BLOCK; j++)                                \
                out[i + j] = (double)load(in + (size) * (i + j));                      \
        for (; i < n; i++)                                                             \
            out[i] = (double)load(in + (size)*i);                                      \
    }

QES__CVT_LOOP(cvt_ri16, int16_t, 2, ld_i16)
QES__CVT_LOOP(cvt_ri32, int32_t, 4, ld_i32)
QES__CVT_LOOP(cvt_rf32, float, 4, ld_f32)

static void cvt_rf64(double *restrict out, const unsigned char *restrict in, size_t n)
{
#if QES__HOST_LE
    memcpy(out, in, n * 8);
#else
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = in + 8 * i;
        uint64_t u = 0;
        for (int b = 7; b >= 0; b--)
            u = u << 8 | p[b];
        memcpy(&out[i], &u, 8);
    }
#endif
}

long qes_sigmf_read(struct qes_sigmf_reader *r, double *out, size_t max_frames)
{
    if (!r)
        return QES_EINVAL;
    if (!out && max_frames) {
        seterr(r->errmsg, sizeof r->errmsg, 0, "qes_sigmf_read: NULL output");
        return QES_EINVAL;
    }
    const struct qes_sigmf_info *in = &r->info;
    const size_t nch = in->num_channels, fb = r->frame_bytes;
    uint64_t left = in->n_frames - r->pos;
    size_t want = max_frames;
    if (want > left)
        want = (size_t)left;
    if (want > (size_t)LONG_MAX)
        want = (size_t)LONG_MAX;

    /* rf64_le on a little-endian host: the file bytes are the doubles. */
    const int direct = QES__HOST_LE && in->dtype == QES_DT_RF64_LE;
    const size_t buf_frames = QES__SIGMF_BUF_BYTES / fb;
    size_t done = 0;
    while (done < want) {
        size_t nf = want - done;
        if (!direct && nf > buf_frames)
            nf = buf_frames;
        size_t nbytes = nf * fb;
        double *dst = out + done * nch;
        unsigned char *raw = direct ? (unsigned char *)dst : r->buf;
        uint64_t off = r->pos * (uint64_t)fb;
        ssize_t k = pread_full(r->fd, raw, nbytes, off);
        if (k < 0) {
            seterr(r->errmsg, sizeof r->errmsg, 0, "%s: read error at byte %llu: %s", in->data_path,
                   (unsigned long long)off, strerror(errno));
            return QES_EIO;
        }
        if ((size_t)k != nbytes) {
            seterr(r->errmsg, sizeof r->errmsg, 0,
                   "%s: data file ended at byte %llu, expected %llu bytes (file shrank or changed while reading)",
                   in->data_path, (unsigned long long)(off + (uint64_t)k),
                   (unsigned long long)in->data_bytes);
            return QES_EIO;
        }
        size_t ns = nf * nch;
        switch (in->dtype) {
        case QES_DT_RI16_LE:
            cvt_ri16(dst, raw, ns);
            break;
        case QES_DT_RI32_LE:
            cvt_ri32(dst, raw, ns);
            break;
        case QES_DT_RF32_LE:
            cvt_rf32(dst, raw, ns);
            break;
        case QES_DT_RF64_LE:
            if (!direct)
                cvt_rf64(dst, raw, ns);
            break;
        }
        r->pos += nf;
        done += nf;
    }
    return (long)done;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */

struct qes__wcap {
    uint64_t sample_start, global_index;
    int64_t datetime_ns;
};

struct qes_sigmf_writer {
    char data_path[4096], meta_path[4096], tmp_path[4096];
    enum qes_dtype dtype;
    double sample_rate_hz;
    unsigned nch;
    size_t frame_bytes;
    char *description;
    json_t *extra; /* object, may be NULL */
    int fd;
    unsigned char *buf;
    size_t buf_len;
    EVP_MD_CTX *md;
    uint64_t frames;
    struct qes__wcap *caps;
    size_t n_caps, cap_caps;
    int failed; /* sticky error code after a failed write */
    char errmsg[512];
};

/* Keys the writer owns; extra_global_json may not set them. */
static const char *const qes__writer_keys[] = {"core:datatype", "core:sample_rate",
                                               "core:version",  "core:num_channels",
                                               "core:sha512",   "core:recorder"};

static void writer_free(struct qes_sigmf_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    EVP_MD_CTX_free(w->md);
    json_decref(w->extra);
    free(w->description);
    free(w->buf);
    free(w->caps);
    free(w);
}

/* One member of the extra global object; what names the source in messages
 * ("extra_global_json", "set_extra"). */
static int check_extra_key(const char *key, const json_t *val, const char *path,
                           int has_description, const char *what, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof qes__writer_keys / sizeof qes__writer_keys[0]; i++)
        if (strcmp(key, qes__writer_keys[i]) == 0)
            return seterr(err, errlen, QES_EINVAL, "%s: %s: \"%s\" is written by the writer itself",
                          path, what, key);
    if (strcmp(key, "core:description") == 0 && has_description)
        return seterr(err, errlen, QES_EINVAL,
                      "%s: %s: \"core:description\" given twice (also in the desc)", path, what);
    if (strcmp(key, "core:extensions") == 0 && !json_is_array(val))
        return seterr(err, errlen, QES_EINVAL, "%s: %s: \"core:extensions\" must be an array", path,
                      what);
    return 0;
}

static int check_extra(json_t *extra, const struct qes_sigmf_writer_desc *d, char *err,
                       size_t errlen)
{
    const char *key;
    json_t *val;
    json_object_foreach(extra, key, val)
    {
        int rc = check_extra_key(key, val, d->path, d->description != NULL, "extra_global_json",
                                 err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

int qes_sigmf_writer_create(const struct qes_sigmf_writer_desc *d, struct qes_sigmf_writer **out,
                            char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!d || !out || !d->path || !d->path[0])
        return seterr(err, errlen, QES_EINVAL, "qes_sigmf_writer_create: NULL argument or path");
    if (!dtype_valid(d->dtype))
        return seterr(err, errlen, QES_EINVAL, "%s: invalid datatype %d", d->path, (int)d->dtype);
    if (!(d->sample_rate_hz > 0 && d->sample_rate_hz <= QES__SIGMF_MAX_RATE))
        return seterr(err, errlen, QES_EINVAL, "%s: sample rate %g Hz is outside (0, 1e12]",
                      d->path, d->sample_rate_hz);
    if (d->num_channels < 1 || d->num_channels > QES__SIGMF_MAX_CHANNELS)
        return seterr(err, errlen, QES_EINVAL, "%s: num_channels %u is outside 1..%u", d->path,
                      d->num_channels, QES__SIGMF_MAX_CHANNELS);
    if (strlen(d->path) + sizeof ".sigmf-meta.tmp" > sizeof((struct qes_sigmf_writer *)0)->tmp_path)
        return seterr(err, errlen, QES_EINVAL, "%s: path too long", d->path);

    struct qes_sigmf_writer *w = calloc(1, sizeof *w);
    if (!w)
        return seterr(err, errlen, QES_ENOMEM, "%s: out of memory", d->path);
    w->fd = -1;
    int rc;
    snprintf(w->data_path, sizeof w->data_path, "%s%s", d->path, qes__data_ext);
    snprintf(w->meta_path, sizeof w->meta_path, "%s%s", d->path, qes__meta_ext);
    snprintf(w->tmp_path, sizeof w->tmp_path, "%s%s.tmp", d->path, qes__meta_ext);
    w->dtype = d->dtype;
    w->sample_rate_hz = d->sample_rate_hz;
    w->nch = d->num_channels;
    w->frame_bytes = qes__dtype_sizes[d->dtype] * d->num_channels;

    if (d->extra_global_json) {
        json_error_t jerr;
        w->extra = json_loads(d->extra_global_json, JSON_REJECT_DUPLICATES, &jerr);
        if (!w->extra) {
            rc = seterr(err, errlen, QES_EINVAL, "%s: extra_global_json: line %d, column %d: %s",
                        d->path, jerr.line, jerr.column, jerr.text);
            goto fail;
        }
        if (!json_is_object(w->extra)) {
            rc = seterr(err, errlen, QES_EINVAL, "%s: extra_global_json: must be a JSON object",
                        d->path);
            goto fail;
        }
        rc = check_extra(w->extra, d, err, errlen);
        if (rc)
            goto fail;
    }
    if (d->description && !(w->description = strdup(d->description))) {
        rc = seterr(err, errlen, QES_ENOMEM, "%s: out of memory", d->path);
        goto fail;
    }
    w->buf = malloc(QES__SIGMF_BUF_BYTES);
    w->cap_caps = 8;
    w->caps = malloc(w->cap_caps * sizeof *w->caps);
    w->md = EVP_MD_CTX_new();
    if (!w->buf || !w->caps || !w->md) {
        rc = seterr(err, errlen, QES_ENOMEM, "%s: out of memory", d->path);
        goto fail;
    }
    if (EVP_DigestInit_ex(w->md, EVP_sha512(), NULL) != 1) {
        rc = seterr(err, errlen, QES_EIO, "%s: cannot initialise SHA-512", d->path);
        goto fail;
    }
    w->n_caps = 1;
    w->caps[0] = (struct qes__wcap){0, 0, d->datetime_ns};

    w->fd = open(w->data_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        int e = errno;
        rc = seterr(err, errlen, e == ENOENT ? QES_ENOENT : errno_code(e), "%s: cannot create: %s",
                    w->data_path, strerror(e));
        goto fail;
    }
    /* A meta file left by an earlier capture under this name now describes
     * data that no longer exists: remove it so a crash cannot leave it. */
    if (unlink(w->meta_path) != 0 && errno != ENOENT) {
        int e = errno;
        rc = seterr(err, errlen, QES_EIO, "%s: cannot remove the stale meta file: %s", w->meta_path,
                    strerror(e));
        goto fail;
    }
    (void)unlink(w->tmp_path);
    *out = w;
    return 0;
fail:
    writer_free(w);
    return rc;
}

int qes_sigmf_writer_set_extra(struct qes_sigmf_writer *w, const char *key, const char *value_json)
{
    if (!w)
        return QES_EINVAL;
    if (w->failed)
        return w->failed;
    if (!key || !key[0] || !value_json)
        return seterr(w->errmsg, sizeof w->errmsg, QES_EINVAL,
                      "%s: set_extra: NULL or empty key, or NULL value", w->meta_path);
    json_error_t jerr;
    json_t *v = json_loads(value_json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!v)
        return seterr(w->errmsg, sizeof w->errmsg, QES_EINVAL,
                      "%s: set_extra \"%s\": line %d, column %d: %s", w->meta_path, key, jerr.line,
                      jerr.column, jerr.text);
    int rc = check_extra_key(key, v, w->meta_path, w->description != NULL, "set_extra", w->errmsg,
                             sizeof w->errmsg);
    if (rc) {
        json_decref(v);
        return rc;
    }
    if (!w->extra && !(w->extra = json_object())) {
        json_decref(v);
        return seterr(w->errmsg, sizeof w->errmsg, QES_ENOMEM, "%s: out of memory", w->meta_path);
    }
    /* jansson refuses a key that is not UTF-8 (and steals v either way). */
    if (json_object_set_new(w->extra, key, v) != 0)
        return seterr(w->errmsg, sizeof w->errmsg, QES_EINVAL,
                      "%s: set_extra: key is not valid UTF-8 (or out of memory)", w->meta_path);
    return 0;
}

const char *qes_sigmf_writer_errmsg(const struct qes_sigmf_writer *w)
{
    return w ? w->errmsg : "";
}

static int writer_flush(struct qes_sigmf_writer *w)
{
    if (w->buf_len == 0)
        return 0;
    if (EVP_DigestUpdate(w->md, w->buf, w->buf_len) != 1) {
        seterr(w->errmsg, sizeof w->errmsg, 0, "%s: SHA-512 update failed", w->data_path);
        return w->failed = QES_EIO;
    }
    if (write_full(w->fd, w->buf, w->buf_len) != 0) {
        int e = errno;
        seterr(w->errmsg, sizeof w->errmsg, 0, "%s: write failed: %s", w->data_path, strerror(e));
        return w->failed = errno_code(e);
    }
    w->buf_len = 0;
    return 0;
}

/* Index of the first value that the datatype cannot hold exactly, or n. */
static size_t first_bad(enum qes_dtype dt, const double *v, size_t n)
{
    size_t i = 0;
    switch (dt) {
    case QES_DT_RI16_LE:
        for (; i < n; i++)
            if (!(v[i] >= -32768.0 && v[i] <= 32767.0) || (double)(int32_t)v[i] != v[i])
                break;
        break;
    case QES_DT_RI32_LE:
        for (; i < n; i++)
            if (!(v[i] >= -2147483648.0 && v[i] <= 2147483647.0) || (double)(int64_t)v[i] != v[i])
                break;
        break;
    case QES_DT_RF32_LE:
        /* NaN and infinities are stored; finite values beyond float range
         * would silently become infinities. */
        for (; i < n; i++)
            if (isfinite(v[i]) && fabs(v[i]) > FLT_MAX)
                break;
        break;
    case QES_DT_RF64_LE:
        i = n;
        break;
    }
    return i;
}

static void put_le(unsigned char *p, uint64_t u, size_t n)
{
    for (size_t b = 0; b < n; b++)
        p[b] = (unsigned char)(u >> (8 * b));
}

static void encode(enum qes_dtype dt, unsigned char *restrict out, const double *restrict v,
                   size_t n)
{
    switch (dt) {
    case QES_DT_RI16_LE:
        for (size_t i = 0; i < n; i++) {
            int16_t x = (int16_t)v[i];
#if QES__HOST_LE
            memcpy(out + 2 * i, &x, 2);
#else
            put_le(out + 2 * i, (uint16_t)x, 2);
#endif
        }
        break;
    case QES_DT_RI32_LE:
        for (size_t i = 0; i < n; i++) {
            int32_t x = (int32_t)v[i];
#if QES__HOST_LE
            memcpy(out + 4 * i, &x, 4);
#else
            put_le(out + 4 * i, (uint32_t)x, 4);
#endif
        }
        break;
    case QES_DT_RF32_LE:
        for (size_t i = 0; i < n; i++) {
            float x = (float)v[i];
#if QES__HOST_LE
            memcpy(out + 4 * i, &x, 4);
#else
            uint32_t u;
            memcpy(&u, &x, 4);
            put_le(out + 4 * i, u, 4);
#endif
        }
        break;
    case QES_DT_RF64_LE:
#if QES__HOST_LE
        memcpy(out, v, n * 8);
#else
        for (size_t i = 0; i < n; i++) {
            uint64_t u;
            memcpy(&u, &v[i], 8);
            put_le(out + 8 * i, u, 8);
        }
#endif
        break;
    }
#if QES__HOST_LE
    (void)put_le;
#endif
}

int qes_sigmf_writer_write(struct qes_sigmf_writer *w, const double *frames, size_t n_frames)
{
    if (!w)
        return QES_EINVAL;
    if (w->failed)
        return w->failed;
    if (n_frames == 0)
        return 0;
    if (!frames) {
        seterr(w->errmsg, sizeof w->errmsg, 0, "%s: NULL frames", w->data_path);
        return QES_EINVAL;
    }
    const size_t nch = w->nch;
    if (n_frames > SIZE_MAX / nch / 8) {
        seterr(w->errmsg, sizeof w->errmsg, 0, "%s: too many frames in one call", w->data_path);
        return QES_EINVAL;
    }
    size_t ns = n_frames * nch;
    size_t bad = first_bad(w->dtype, frames, ns);
    if (bad < ns) {
        seterr(w->errmsg, sizeof w->errmsg, 0,
               "%s: frame %llu channel %zu: value %.17g cannot be stored exactly as %s (nothing written)",
               w->data_path, (unsigned long long)(w->frames + bad / nch), bad % nch, frames[bad],
               qes__dtype_names[w->dtype]);
        return QES_ERANGE;
    }
    const size_t ss = qes__dtype_sizes[w->dtype];
    const size_t cap = QES__SIGMF_BUF_BYTES / ss; /* samples per full buffer */
    size_t done = 0;
    while (done < ns) {
        size_t room = cap - w->buf_len / ss;
        size_t k = ns - done < room ? ns - done : room;
        encode(w->dtype, w->buf + w->buf_len, frames + done, k);
        w->buf_len += k * ss;
        done += k;
        if (w->buf_len / ss == cap) {
            int rc = writer_flush(w);
            if (rc)
                return rc;
        }
    }
    w->frames += n_frames;
    return 0;
}

int qes_sigmf_writer_new_capture(struct qes_sigmf_writer *w, uint64_t global_index,
                                 int64_t datetime_ns)
{
    if (!w)
        return QES_EINVAL;
    if (w->failed)
        return w->failed;
    if (global_index > (uint64_t)INT64_MAX) {
        seterr(w->errmsg, sizeof w->errmsg, 0, "%s: global_index %llu exceeds 2^63-1", w->meta_path,
               (unsigned long long)global_index);
        return QES_ERANGE;
    }
    /* A capture without frames is replaced: SigMF captures need strictly
     * increasing sample_start. */
    size_t n = w->n_caps;
    if (w->caps[n - 1].sample_start == w->frames)
        n--;
    if (n > 0) {
        const struct qes__wcap *p = &w->caps[n - 1];
        uint64_t contiguous = p->global_index + (w->frames - p->sample_start);
        if (global_index < contiguous) {
            seterr(w->errmsg, sizeof w->errmsg, 0,
                   "%s: new capture global_index %llu goes backwards (the previous capture runs up to %llu)",
                   w->meta_path, (unsigned long long)global_index, (unsigned long long)contiguous);
            return QES_EINVAL;
        }
    }
    if (n == w->cap_caps) {
        struct qes__wcap *nc = realloc(w->caps, 2 * w->cap_caps * sizeof *nc);
        if (!nc) {
            seterr(w->errmsg, sizeof w->errmsg, 0, "%s: out of memory", w->meta_path);
            return QES_ENOMEM;
        }
        w->caps = nc;
        w->cap_caps *= 2;
    }
    w->caps[n] = (struct qes__wcap){w->frames, global_index, datetime_ns};
    w->n_caps = n + 1;
    return 0;
}

/* Build the metadata document; NULL when out of memory. */
static json_t *writer_meta(const struct qes_sigmf_writer *w, const char *sha_hex)
{
    json_t *root = json_object(), *g = json_object(), *caps = json_array();
    json_t *ann = json_array();
    int bad = !root || !g || !caps || !ann;
    bad |= json_object_set_new(root, "global", g);
    bad |= json_object_set_new(root, "captures", caps);
    bad |= json_object_set_new(root, "annotations", ann);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    bad |= json_object_set_new(g, "core:datatype", json_string(qes__dtype_names[w->dtype]));
    bad |= json_object_set_new(g, "core:sample_rate", json_real(w->sample_rate_hz));
    bad |= json_object_set_new(g, "core:version", json_string("1.2.6"));
    bad |= json_object_set_new(g, "core:num_channels", json_integer((json_int_t)w->nch));
    bad |= json_object_set_new(g, "core:sha512", json_string(sha_hex));
    bad |= json_object_set_new(g, "core:recorder", json_string("qes"));
    if (w->description)
        bad |= json_object_set_new(g, "core:description", json_string(w->description));

    int has_qes = 0;
    if (w->extra) {
        const char *key;
        json_t *val;
        json_object_foreach(w->extra, key, val)
        {
            if (strncmp(key, "qes:", 4) == 0)
                has_qes = 1;
            if (strcmp(key, "core:extensions") != 0)
                bad |= json_object_set(g, key, val);
        }
    }
    json_t *ext = w->extra ? json_object_get(w->extra, "core:extensions") : NULL;
    if (ext || has_qes) {
        json_t *arr = ext ? json_deep_copy(ext) : json_array();
        int declared = 0;
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e)
        {
            const char *name = json_string_value(json_object_get(e, "name"));
            if (name && strcmp(name, "qes") == 0)
                declared = 1;
        }
        if (has_qes && !declared)
            bad |= json_array_append_new(arr, json_pack("{s:s, s:s, s:b}", "name", "qes", "version",
                                                        "0.1.0", "optional", 1));
        bad |= json_object_set_new(g, "core:extensions", arr);
    }

    char dt[QES_UTC_LEN];
    for (size_t i = 0; i < w->n_caps; i++) {
        const struct qes__wcap *c = &w->caps[i];
        json_t *o = json_object();
        bad |= json_array_append_new(caps, o);
        bad |= json_object_set_new(o, "core:sample_start",
                                   json_integer((json_int_t)c->sample_start));
        bad |= json_object_set_new(o, "core:global_index",
                                   json_integer((json_int_t)c->global_index));
        bad |= json_object_set_new(o, "core:datetime",
                                   json_string(qes_utc_format(c->datetime_ns, dt)));
    }
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Directory part of path for fsync after rename. */
static int fsync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    /* Some file systems cannot fsync a directory; nothing more can be done. */
    if (rc != 0 && errno == EINVAL)
        rc = 0;
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int qes_sigmf_writer_close(struct qes_sigmf_writer *w, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!w)
        return seterr(err, errlen, QES_EINVAL, "qes_sigmf_writer_close: NULL writer");
    int rc = w->failed;
    int tmp_fd = -1, tmp_made = 0;
    char *text = NULL;
    json_t *root = NULL;
    if (rc) {
        seterr(err, errlen, rc, "%s (meta file not written)", w->errmsg);
        goto out;
    }
    rc = writer_flush(w);
    if (rc) {
        seterr(err, errlen, rc, "%s (meta file not written)", w->errmsg);
        goto out;
    }
    if (fsync(w->fd) != 0) {
        int e = errno;
        rc = seterr(err, errlen, errno_code(e), "%s: fsync failed: %s", w->data_path, strerror(e));
        goto out;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0) {
        int e = errno;
        rc = seterr(err, errlen, errno_code(e), "%s: close failed: %s", w->data_path, strerror(e));
        goto out;
    }

    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    char hex[129];
    if (EVP_DigestFinal_ex(w->md, d, &dl) != 1 || dl != 64) {
        rc = seterr(err, errlen, QES_EIO, "%s: SHA-512 final failed", w->data_path);
        goto out;
    }
    to_hex(d, 64, hex);
    root = writer_meta(w, hex);
    text = root ? json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) : NULL;
    if (!text) {
        rc = seterr(err, errlen, QES_ENOMEM, "%s: out of memory building the metadata",
                    w->meta_path);
        goto out;
    }

    tmp_fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (tmp_fd < 0) {
        int e = errno;
        rc = seterr(err, errlen, errno_code(e), "%s: cannot create: %s", w->tmp_path, strerror(e));
        goto out;
    }
    tmp_made = 1;
    size_t tl = strlen(text);
    text[tl] = '\n'; /* replaces the NUL: json_dumps text is not used as a string below */
    if (write_full(tmp_fd, text, tl + 1) != 0 || fsync(tmp_fd) != 0) {
        int e = errno;
        rc = seterr(err, errlen, errno_code(e), "%s: write failed: %s", w->tmp_path, strerror(e));
        goto out;
    }
    fd = tmp_fd;
    tmp_fd = -1;
    if (close(fd) != 0) {
        int e = errno;
        rc = seterr(err, errlen, errno_code(e), "%s: close failed: %s", w->tmp_path, strerror(e));
        goto out;
    }
    if (rename(w->tmp_path, w->meta_path) != 0) {
        int e = errno;
        rc = seterr(err, errlen, errno_code(e), "%s: cannot rename to %s: %s", w->tmp_path,
                    w->meta_path, strerror(e));
        goto out;
    }
    tmp_made = 0;
    if (fsync_dir(w->meta_path) != 0) {
        int e = errno;
        rc = seterr(err, errlen, errno_code(e), "%s: fsync of the directory failed: %s",
                    w->meta_path, strerror(e));
        goto out;
    }
out:
    if (tmp_fd >= 0)
        close(tmp_fd);
    if (tmp_made)
        (void)unlink(w->tmp_path);
    free(text);
    json_decref(root);
    writer_free(w);
    return rc;
}
