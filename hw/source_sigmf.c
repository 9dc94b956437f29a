/*
 * Replay source over SigMF captures: one file, or a checked set of files
 * that make one run (see source_sigmf.h).
 *
 * Run sample index of file frame k inside capture i:
 *     global_index_i + (k - sample_start_i)
 * Frames never straddle a capture boundary nor a file boundary, so each
 * frame maps to one contiguous run range and a jump of global_index shows
 * up as lost_before on the first frame of the capture.  The first frame of
 * a file reports qes:lost_before_first when the file carries it, else the
 * jump from the previous file's last frame (0 for the first file).  Host
 * time is derived from the most recent core:datetime at or before the
 * capture, in the same file ("anchor"), plus the run samples elapsed since
 * it, divided by fs, rounded to the nanosecond in long double.
 *
 * A set is checked when it is created: every file is opened (its sha512
 * verified), summarised in a struct qes__file and closed; the files are put
 * in qes:part order and checked pair by pair.  The first file stays open
 * for the source's life (its metadata is the set's); the others are opened
 * again, without hashing, when the replay reaches them, and must still
 * have the metadata and data size they were checked with.
 */
#include "hw/source_sigmf.h"
#include "common/err.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QES__SIGMF_DEFAULT_CHUNK 65536u

struct qes__anchor {
    int has;
    int64_t datetime_ns;
    uint64_t global_index; /* run index at datetime_ns */
};

/* A file as checked when the source was created. */
struct qes__file {
    struct qes_sigmf_file pub; /* its strings point into the members below */
    char *meta_path, *data_path, *run_id;
    char sha512[129];
    uint64_t part; /* 0 when absent */
    enum qes_dtype dtype;
    double fs;
    unsigned nch;
    uint64_t data_bytes;
    json_t *meta; /* the metadata checked (a reference), NULL when never reopened */
};

struct qes__source_sigmf {
    struct qes_source base; /* first: the ops receive &base */
    struct qes__file *files;
    size_t n_files;
    size_t cur;                        /* file being read; n_files at the end */
    struct qes_sigmf_reader *first;    /* file 0, open for the source's life */
    struct qes_sigmf_reader *reader;   /* file cur, NULL until (re)opened */
    const struct qes_sigmf_info *info; /* of reader */
    size_t chunk_frames;
    double *buf;
    size_t cap;                  /* current capture index in file cur */
    uint64_t next_run;           /* run index following the last frame delivered */
    int started;                 /* a frame was delivered */
    int file_started;            /* a frame of file cur was delivered */
    struct qes__anchor *anchors; /* one per capture of file cur */
    size_t n_anchors;            /* allocated */
};

static const struct qes_source_ops qes__sigmf_ops;

/* anchor time + (run - anchor index) / fs, in ns, saturating at the int64
 * range.  The offset is rounded on its own, then added, so the result does
 * not depend on the magnitude of the datetime; long double holds every
 * uint64 exactly, so the difference is exact also for a run index before
 * the anchor (data before the first capture). */
static int64_t anchor_time(const struct qes__anchor *a, uint64_t run, double fs)
{
    if (!a->has)
        return 0;
    long double off = ((long double)run - (long double)a->global_index) * 1e9L / (long double)fs;
    if (off >= 9.2e18L)
        return INT64_MAX;
    if (off <= -9.2e18L)
        return INT64_MIN;
    int64_t o = (int64_t)llroundl(off);
    if (o > 0 && a->datetime_ns > INT64_MAX - o)
        return INT64_MAX;
    if (o < 0 && a->datetime_ns < INT64_MIN - o)
        return INT64_MIN;
    return a->datetime_ns + o;
}

static void file_free(struct qes__file *f)
{
    free(f->meta_path);
    free(f->data_path);
    free(f->run_id);
    json_decref(f->meta);
}

static void files_free(struct qes__file *files, size_t n)
{
    for (size_t i = 0; files && i < n; i++)
        file_free(&files[i]);
    free(files);
}

/* Summarise an open file; keep_meta: hold its metadata for the reopen
 * check.  Returns 0, QES_EFORMAT or QES_ENOMEM. */
static int file_from_info(struct qes__file *f, const struct qes_sigmf_info *in, int keep_meta,
                          char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    const struct qes_sigmf_capture *c0 = &in->captures[0];
    const struct qes_sigmf_capture *cl = &in->captures[in->n_captures - 1];
    if (c0->sample_start > c0->global_index) {
        qes_errf(
                err, errlen,
                "%s: captures[0]: core:global_index %llu is below core:sample_start %llu: the data "
                "before the first capture would have negative run indices",
                in->meta_path, (unsigned long long)c0->global_index,
                (unsigned long long)c0->sample_start);
        return QES_EFORMAT;
    }
    f->meta_path = strdup(in->meta_path);
    f->data_path = strdup(in->data_path);
    f->run_id = in->run_id ? strdup(in->run_id) : NULL;
    if (!f->meta_path || !f->data_path || (in->run_id && !f->run_id)) {
        file_free(f);
        qes_errf(err, errlen, "%s: out of memory", in->meta_path);
        return QES_ENOMEM;
    }
    memcpy(f->sha512, in->sha512, sizeof f->sha512);
    f->part = in->part;
    f->dtype = in->dtype;
    f->fs = in->sample_rate_hz;
    f->nch = in->num_channels;
    f->data_bytes = in->data_bytes;
    if (keep_meta)
        f->meta = json_incref((json_t *)in->meta);
    f->pub = (struct qes_sigmf_file){
            .meta_path = f->meta_path,
            .data_path = f->data_path,
            .n_frames = in->n_frames,
            .first_index = c0->global_index - c0->sample_start,
            .end_index = cl->global_index +
                         (in->n_frames > cl->sample_start ? in->n_frames - cl->sample_start : 0),
            .has_lost_before_first = in->has_lost_before_first,
            .lost_before_first = in->lost_before_first,
            .sha512 = f->sha512,
            .sha512_verified = in->sha512_verified,
    };
    return 0;
}

/* Make reader the current file: anchors for its captures. */
static int set_reader(struct qes__source_sigmf *ss, struct qes_sigmf_reader *r)
{
    const struct qes_sigmf_info *in = qes_sigmf_get_info(r);
    if (in->n_captures > ss->n_anchors) {
        struct qes__anchor *a = realloc(ss->anchors, in->n_captures * sizeof *a);
        if (!a) {
            qes_errf(ss->base.errmsg, sizeof ss->base.errmsg, "%s: out of memory", in->meta_path);
            return QES_ENOMEM;
        }
        ss->anchors = a;
        ss->n_anchors = in->n_captures;
    }
    for (size_t i = 0; i < in->n_captures; i++) {
        const struct qes_sigmf_capture *c = &in->captures[i];
        if (c->has_datetime)
            ss->anchors[i] = (struct qes__anchor){1, c->datetime_ns, c->global_index};
        else if (i > 0)
            ss->anchors[i] = ss->anchors[i - 1];
        else
            ss->anchors[i] = (struct qes__anchor){0, 0, 0};
    }
    ss->reader = r;
    ss->info = in;
    ss->cap = 0;
    ss->file_started = 0;
    return 0;
}

/* Open file k again (already verified): it must be the file checked. */
static int reopen(const struct qes__file *f, struct qes_sigmf_reader **out, char *err,
                  size_t errlen)
{
    int rc = qes_sigmf_open(f->meta_path, 0, out, err, errlen);
    if (rc)
        return rc;
    const struct qes_sigmf_info *in = qes_sigmf_get_info(*out);
    if (in->data_bytes != f->data_bytes || (f->meta && !json_equal((json_t *)in->meta, f->meta))) {
        qes_errf(err, errlen, "%s: changed since the set was checked (%s differ%s): not replayed",
                 f->meta_path, in->data_bytes != f->data_bytes ? "data size" : "metadata",
                 in->data_bytes != f->data_bytes ? "s" : "");
        qes_sigmf_close(*out);
        *out = NULL;
        return QES_EIO;
    }
    return 0;
}

/* Close the current file (but the first, which stays open). */
static void drop_reader(struct qes__source_sigmf *ss)
{
    if (ss->reader && ss->reader != ss->first)
        qes_sigmf_close(ss->reader);
    ss->reader = NULL;
    ss->info = NULL;
}

static int sigmf_read(struct qes_source *s, struct qes_frame *f, size_t max_n)
{
    struct qes__source_sigmf *ss = (struct qes__source_sigmf *)s;
    if (!f || max_n == 0) {
        qes_errf(s->errmsg, sizeof s->errmsg, "%s: read with %s", ss->files[0].meta_path,
                 f ? "max_n == 0" : "NULL frame");
        return QES_EINVAL;
    }
    uint64_t pos;
    for (;;) {
        if (ss->cur >= ss->n_files)
            return 0;
        if (!ss->reader) {
            struct qes_sigmf_reader *r = NULL;
            int rc = reopen(&ss->files[ss->cur], &r, s->errmsg, sizeof s->errmsg);
            if (rc)
                return rc;
            rc = set_reader(ss, r);
            if (rc) {
                qes_sigmf_close(r);
                ss->reader = NULL;
                return rc;
            }
        }
        pos = qes_sigmf_tell(ss->reader);
        if (pos < ss->info->n_frames)
            break;
        drop_reader(ss);
        ss->cur++;
    }
    const struct qes_sigmf_info *in = ss->info;
    const struct qes__file *fl = &ss->files[ss->cur];
    while (ss->cap + 1 < in->n_captures && pos >= in->captures[ss->cap + 1].sample_start)
        ss->cap++;
    const struct qes_sigmf_capture *c = &in->captures[ss->cap];
    uint64_t end =
            ss->cap + 1 < in->n_captures ? in->captures[ss->cap + 1].sample_start : in->n_frames;
    size_t n = ss->chunk_frames < max_n ? ss->chunk_frames : max_n;
    if (end - pos < n)
        n = (size_t)(end - pos);
    long got = qes_sigmf_read(ss->reader, ss->buf, n);
    if (got < 0) {
        qes_errf(s->errmsg, sizeof s->errmsg, "%s", qes_sigmf_errmsg(ss->reader));
        return (int)got;
    }
    if ((size_t)got != n) {
        qes_errf(s->errmsg, sizeof s->errmsg, "%s: short read (%ld of %zu frames)", in->data_path,
                 got, n);
        return QES_EIO;
    }
    /* Modulo 2^64: exact also before the first capture (first_index >= 0 checked). */
    uint64_t run = c->global_index + (pos - c->sample_start);
    uint64_t lost = 0;
    if (!ss->file_started && fl->pub.has_lost_before_first)
        lost = fl->pub.lost_before_first; /* as the live run saw it */
    else if (ss->started && run > ss->next_run)
        lost = run - ss->next_run;
    f->first_sample = run;
    f->n = n;
    f->n_channels = in->num_channels;
    f->samples = ss->buf;
    f->host_time_ns = anchor_time(&ss->anchors[ss->cap], run, in->sample_rate_hz);
    f->device_time_ns = 0;
    f->has_device_time = 0;
    f->lost_before = lost;
    f->arrival_ns = 0;
    ss->next_run = run + n;
    ss->started = 1;
    ss->file_started = 1;
    return 1;
}

static void sigmf_destroy(struct qes_source *s)
{
    struct qes__source_sigmf *ss = (struct qes__source_sigmf *)s;
    drop_reader(ss);
    qes_sigmf_close(ss->first);
    files_free(ss->files, ss->n_files);
    free(ss->buf);
    free(ss->anchors);
    free(ss);
}

static const struct qes_source_ops qes__sigmf_ops = {
        .name = "sigmf",
        .read = sigmf_read,
        .destroy = sigmf_destroy,
};

/* The source over checked files, file 0 open as first.  Takes ownership of
 * both (freed on error too). */
static int make_source(struct qes__file *files, size_t n, struct qes_sigmf_reader *first,
                       size_t chunk_frames, struct qes_source **out, char *err, size_t errlen)
{
    const struct qes_sigmf_info *in = qes_sigmf_get_info(first);
    int rc = QES_ENOMEM;
    if (chunk_frames == 0)
        chunk_frames = QES__SIGMF_DEFAULT_CHUNK;
    if (chunk_frames > SIZE_MAX / sizeof(double) / in->num_channels) {
        qes_errf(err, errlen, "%s: chunk of %zu frames is too large", in->meta_path, chunk_frames);
        rc = QES_EINVAL;
        goto fail;
    }
    struct qes__source_sigmf *ss = calloc(1, sizeof *ss);
    if (!ss)
        goto nomem;
    ss->buf = malloc(chunk_frames * in->num_channels * sizeof(double));
    if (!ss->buf) {
        free(ss);
        goto nomem;
    }
    ss->base.ops = &qes__sigmf_ops;
    ss->base.sample_rate_hz = in->sample_rate_hz;
    ss->base.n_channels = in->num_channels;
    ss->files = files;
    ss->n_files = n;
    ss->first = first;
    ss->chunk_frames = chunk_frames;
    rc = set_reader(ss, first);
    if (rc) {
        qes_errf(err, errlen, "%s", ss->base.errmsg);
        ss->reader = NULL;
        sigmf_destroy(&ss->base);
        return rc;
    }
    *out = &ss->base;
    return 0;
nomem:
    qes_errf(err, errlen, "%s: out of memory", in->meta_path);
fail:
    files_free(files, n);
    qes_sigmf_close(first);
    return rc;
}

int qes_source_sigmf_create(struct qes_sigmf_reader *reader, size_t chunk_frames,
                            struct qes_source **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!reader || !out) {
        qes_errf(err, errlen, "qes_source_sigmf_create: NULL argument");
        qes_sigmf_close(reader);
        return QES_EINVAL;
    }
    const struct qes_sigmf_info *in = qes_sigmf_get_info(reader);
    struct qes__file *files = calloc(1, sizeof *files);
    if (!files) {
        qes_errf(err, errlen, "%s: out of memory", in->meta_path);
        qes_sigmf_close(reader);
        return QES_ENOMEM;
    }
    int rc = file_from_info(&files[0], in, 0, err, errlen);
    if (rc) {
        free(files);
        qes_sigmf_close(reader);
        return rc;
    }
    return make_source(files, 1, reader, chunk_frames, out, err, errlen);
}

/* ---- sets ------------------------------------------------------------------------------------ */

struct qes__name {
    char *base;    /* without .sigmf-meta / .sigmf-data */
    unsigned form; /* 1 .sigmf-meta, 2 .sigmf-data, 4 bare */
    size_t arg;    /* position among the arguments */
};

static int name_cmp(const void *a, const void *b)
{
    const struct qes__name *x = a, *y = b;
    int c = strcmp(x->base, y->base);
    return c ? c : (x->arg > y->arg) - (x->arg < y->arg);
}

static int arg_cmp(const void *a, const void *b)
{
    const struct qes__name *x = a, *y = b;
    return (x->arg > y->arg) - (x->arg < y->arg);
}

static int part_cmp(const void *a, const void *b)
{
    const struct qes__file *x = a, *y = b;
    return (x->part > y->part) - (x->part < y->part);
}

static int ends_with(const char *s, size_t len, const char *ext)
{
    size_t el = strlen(ext);
    return len >= el && strcmp(s + len - el, ext) == 0;
}

/*
 * Base names of the arguments, in argument order, a capture named by both
 * its files counting once.  Returns the count (>= 1) in *m, 0 or an error.
 */
static int collect_names(const char *const *names, size_t n, struct qes__name **out, size_t *m,
                         char *err, size_t errlen)
{
    struct qes__name *nm = calloc(n, sizeof *nm);
    if (!nm) {
        qes_errf(err, errlen, "replay set: out of memory");
        return QES_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (!names[i] || !names[i][0]) {
            qes_errf(err, errlen, "replay set: capture name %zu is %s", i + 1,
                     names[i] ? "empty" : "NULL");
            goto einval;
        }
        size_t len = strlen(names[i]);
        nm[i].form = 4;
        if (ends_with(names[i], len, ".sigmf-meta"))
            nm[i].form = 1, len -= sizeof ".sigmf-meta" - 1;
        else if (ends_with(names[i], len, ".sigmf-data"))
            nm[i].form = 2, len -= sizeof ".sigmf-data" - 1;
        nm[i].arg = i;
        nm[i].base = strndup(names[i], len);
        if (!nm[i].base) {
            qes_errf(err, errlen, "%s: out of memory", names[i]);
            for (size_t j = 0; j < i; j++)
                free(nm[j].base);
            free(nm);
            return QES_ENOMEM;
        }
    }
    /* Same base: merge different forms, refuse a repeated one. */
    qsort(nm, n, sizeof *nm, name_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && strcmp(nm[k - 1].base, nm[i].base) == 0) {
            if (nm[k - 1].form & nm[i].form) {
                qes_errf(err, errlen, "replay set: %s is given twice (arguments %zu and %zu)",
                         names[nm[i].arg], nm[k - 1].arg + 1, nm[i].arg + 1);
                for (size_t j = i; j < n; j++)
                    free(nm[j].base);
                n = k;
                goto einval;
            }
            nm[k - 1].form |= nm[i].form;
            free(nm[i].base);
            continue;
        }
        nm[k++] = nm[i];
    }
    qsort(nm, k, sizeof *nm, arg_cmp);
    *out = nm;
    *m = k;
    return 0;
einval:
    for (size_t j = 0; j < n; j++)
        free(nm[j].base);
    free(nm);
    return QES_EINVAL;
}

/* a and b adjacent in the set (a first): one run, in order. */
static int check_pair(const struct qes__file *a, const struct qes__file *b, char *err,
                      size_t errlen)
{
    const char *pa = a->meta_path, *pb = b->meta_path;
    const char *notone = "the files are not one run";
    if (a->dtype != b->dtype) {
        qes_errf(err, errlen, "%s has core:datatype %s but %s has %s: %s", pa,
                 qes_dtype_name(a->dtype), pb, qes_dtype_name(b->dtype), notone);
        return QES_EFORMAT;
    }
    if (a->fs != b->fs) {
        qes_errf(err, errlen, "%s has core:sample_rate %.17g Hz but %s has %.17g Hz: %s", pa, a->fs,
                 pb, b->fs, notone);
        return QES_EFORMAT;
    }
    if (a->nch != b->nch) {
        qes_errf(err, errlen, "%s has core:num_channels %u but %s has %u: %s", pa, a->nch, pb,
                 b->nch, notone);
        return QES_EFORMAT;
    }
    if ((a->run_id || b->run_id) &&
        (!a->run_id || !b->run_id || strcmp(a->run_id, b->run_id) != 0)) {
        qes_errf(err, errlen, "%s has qes:run_id %s%s%s but %s has %s%s%s: %s", pa,
                 a->run_id ? "\"" : "", a->run_id ? a->run_id : "none", a->run_id ? "\"" : "", pb,
                 b->run_id ? "\"" : "", b->run_id ? b->run_id : "none", b->run_id ? "\"" : "",
                 notone);
        return QES_EFORMAT;
    }
    if (a->part && b->part != a->part + 1) {
        if (b->part == a->part)
            qes_errf(err, errlen, "%s and %s are both qes:part %llu", pa, pb,
                     (unsigned long long)a->part);
        else if (b->part == a->part + 2)
            qes_errf(err, errlen,
                     "%s is qes:part %llu and %s is qes:part %llu: part %llu is missing", pa,
                     (unsigned long long)a->part, pb, (unsigned long long)b->part,
                     (unsigned long long)a->part + 1);
        else
            qes_errf(err, errlen,
                     "%s is qes:part %llu and %s is qes:part %llu: parts %llu to %llu are missing",
                     pa, (unsigned long long)a->part, pb, (unsigned long long)b->part,
                     (unsigned long long)a->part + 1, (unsigned long long)b->part - 1);
        return QES_EFORMAT;
    }
    if (b->pub.first_index < a->pub.end_index) {
        qes_errf(err, errlen,
                 "%s starts at run index %llu, before the end of %s (its samples run up to index "
                 "%llu): the files overlap or are out of order (global indices must increase from "
                 "file to file)",
                 pb, (unsigned long long)b->pub.first_index, pa,
                 (unsigned long long)a->pub.end_index - 1);
        return QES_EFORMAT;
    }
    uint64_t missing = b->pub.first_index - a->pub.end_index;
    if (b->pub.has_lost_before_first && b->pub.lost_before_first > missing) {
        qes_errf(
                err, errlen,
                "%s: global.qes:lost_before_first: %llu samples lost before the file, but only %llu "
                "run indices lie between the end of %s (%llu) and its first sample (%llu)",
                pb, (unsigned long long)b->pub.lost_before_first, (unsigned long long)missing, pa,
                (unsigned long long)a->pub.end_index, (unsigned long long)b->pub.first_index);
        return QES_EFORMAT;
    }
    return 0;
}

int qes_source_sigmf_open_set(const char *const *names, size_t n, int verify, size_t chunk_frames,
                              struct qes_source **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!names || n == 0 || !out) {
        qes_errf(err, errlen, "replay set: no capture given");
        return QES_EINVAL;
    }
    struct qes__name *nm = NULL;
    size_t m = 0;
    int rc = collect_names(names, n, &nm, &m, err, errlen);
    if (rc)
        return rc;
    struct qes__file *files = calloc(m, sizeof *files);
    size_t n_ok = 0;
    struct qes_sigmf_reader *first = NULL;
    if (!files) {
        qes_errf(err, errlen, "replay set: out of memory");
        rc = QES_ENOMEM;
        goto out;
    }
    /* Every file checked (and hashed) before the first frame. */
    for (size_t i = 0; i < m; i++) {
        struct qes_sigmf_reader *r = NULL;
        rc = qes_sigmf_open(nm[i].base, verify, &r, err, errlen);
        if (rc)
            goto out;
        rc = file_from_info(&files[i], qes_sigmf_get_info(r), m > 1, err, errlen);
        if (rc) {
            qes_sigmf_close(r);
            goto out;
        }
        n_ok++;
        if (m == 1)
            first = r; /* nothing to reorder: keep it open */
        else
            qes_sigmf_close(r);
    }
    for (size_t i = 1; i < m; i++) {
        if (!files[i].part != !files[0].part) {
            const struct qes__file *with = files[0].part ? &files[0] : &files[i];
            const struct qes__file *without = files[0].part ? &files[i] : &files[0];
            qes_errf(err, errlen, "%s has qes:part %llu but %s has none: the files are not one run",
                     with->meta_path, (unsigned long long)with->part, without->meta_path);
            rc = QES_EFORMAT;
            goto out;
        }
    }
    if (files[0].part)
        qsort(files, m, sizeof *files, part_cmp);
    for (size_t i = 1; i < m; i++) {
        rc = check_pair(&files[i - 1], &files[i], err, errlen);
        if (rc)
            goto out;
    }
    if (!first) {
        rc = reopen(&files[0], &first, err, errlen);
        if (rc)
            goto out;
    }
    for (size_t i = 0; i < m; i++)
        free(nm[i].base);
    free(nm);
    return make_source(files, m, first, chunk_frames, out, err, errlen);
out:
    for (size_t i = 0; i < m; i++)
        free(nm[i].base);
    free(nm);
    files_free(files, n_ok);
    qes_sigmf_close(first);
    return rc;
}

/* ---- accessors ------------------------------------------------------------------------------- */

static const struct qes__source_sigmf *as_sigmf(const struct qes_source *s)
{
    return s && s->ops == &qes__sigmf_ops ? (const struct qes__source_sigmf *)s : NULL;
}

size_t qes_source_sigmf_n_files(const struct qes_source *s)
{
    const struct qes__source_sigmf *ss = as_sigmf(s);
    return ss ? ss->n_files : 0;
}

const struct qes_sigmf_file *qes_source_sigmf_file(const struct qes_source *s, size_t k)
{
    const struct qes__source_sigmf *ss = as_sigmf(s);
    return ss && k < ss->n_files ? &ss->files[k].pub : NULL;
}

const struct qes_sigmf_info *qes_source_sigmf_info(const struct qes_source *s)
{
    const struct qes__source_sigmf *ss = as_sigmf(s);
    return ss ? qes_sigmf_get_info(ss->first) : NULL;
}
