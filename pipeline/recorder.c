/*
 * Recorder dispatch: pick a sink from the target's form (see record.h).
 */
#include "pipeline/rec_int.h"
#include "pipeline/record.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define ACCEPTED                                                                             \
    "accepted: '-' (JSON Lines on stdout), FILE.jsonl or FILE.json (JSON Lines), FILE.csv, " \
    "FILE.db, FILE.sqlite or FILE.sqlite3 (SQLite), postgresql://... (PostgreSQL), "         \
    "zmq+tcp://HOST:PORT (live stream)"

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    /* A bare ".csv" is a hidden file name, not a CSV file without a name. */
    return n > m && s[n - m - 1] != '/' && !strcasecmp(s + n - m, suffix);
}

int qes_recorder_open(const char *target, struct qes_recorder **out, char *err, size_t errlen)
{
    return qes_recorder_open_ex(target, NULL, out, err, errlen);
}

int qes_recorder_open_ex(const char *target, const struct qes_recorder_opts *opts,
                         struct qes_recorder **out, char *err, size_t errlen)
{
    static const struct {
        const char *suffix;
        int (*open)(const char *, struct qes_recorder **, char *, size_t);
    } kinds[] = {
            {".jsonl", qes_rec_jsonl_open},
            {".json", qes_rec_jsonl_open},
            {".csv", qes_rec_csv_open},
    };
    static const char *const sqlite_suffixes[] = {".db", ".sqlite", ".sqlite3"};
    struct qes_recorder_opts none = {0};
    if (!opts)
        opts = &none;
    if (out)
        *out = NULL;
    if (!target || !out) {
        if (err && errlen)
            snprintf(err, errlen, "recorder: no target given; " ACCEPTED);
        return QES_EINVAL;
    }
    if (!strcmp(target, "-"))
        return qes_rec_jsonl_open(target, out, err, errlen);
    if (!strncmp(target, "postgresql://", 13) || !strncmp(target, "postgres://", 11))
        return qes_rec_pg_open(target, opts, out, err, errlen);
    if (!strncmp(target, "zmq+tcp://", 10))
        return qes_rec_zmq_open(target, opts, out, err, errlen);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (has_suffix(target, kinds[i].suffix))
            return kinds[i].open(target, out, err, errlen);
    for (size_t i = 0; i < sizeof sqlite_suffixes / sizeof sqlite_suffixes[0]; i++)
        if (has_suffix(target, sqlite_suffixes[i]))
            return qes_rec_sqlite_open_ex(target, opts, out, err, errlen);
    if (err && errlen)
        snprintf(err, errlen, "'%s': unknown kind of output; " ACCEPTED, target);
    return QES_EINVAL;
}

void qes_recorder_destroy(struct qes_recorder *r)
{
    if (r && r->ops && r->ops->destroy)
        r->ops->destroy(r);
}

/* fsync the directory holding path, so that a new file's name survives a
 * crash too.  Errors are ignored where a file system cannot do it. */
int qes__fsync_dir_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY);
    if (fd < 0)
        return 0;
    int rc = fsync(fd) != 0 && errno != EINVAL && errno != EROFS ? -1 : 0;
    close(fd);
    return rc;
}

int qes__rec_check_order(struct qes_recorder *r, int closed, int have_run, const char *run_id,
                         const struct qes_run_rec *run, const char *what)
{
    if (closed) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s: %s record after close", r->target, what);
        return QES_EINVAL;
    }
    if (!run) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s: %s record without a run", r->target, what);
        return QES_EINVAL;
    }
    if (!have_run) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s: %s record before the run record", r->target,
                 what);
        return QES_EINVAL;
    }
    if (strncmp(run_id, run->id, 37) != 0) {
        snprintf(r->errmsg, sizeof r->errmsg, "%s: %s record of run %.36s, but the run is %s",
                 r->target, what, run->id, run_id);
        return QES_EINVAL;
    }
    return 0;
}

int qes__rec_check_first_run(struct qes_recorder *r, int closed, int have_run,
                             const struct qes_run_rec *run)
{
    if (!closed && run && run->id[0] && !have_run)
        return 0;
    snprintf(r->errmsg, sizeof r->errmsg, "%s: run record %s", r->target,
             closed     ? "after close"
             : have_run ? "twice (a recorder records one run)"
                        : "without a run id");
    return QES_EINVAL;
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not valid. */
size_t qes__utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

int qes__rec_summary_valid(struct qes_recorder *r, const struct qes_summary_rec *s)
{
    int ph = s && s->kind == QES_REC_PHASOR;
    if (!s || !s->measure || (!ph && s->kind != QES_REC_SCALAR) ||
        (ph ? s->s.n_budget : s->v.n_budget) > QES_BUDGET_MAX) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "%s: summary record without a measure, of unknown kind, or with more than %d "
                 "budget terms",
                 r->target, QES_BUDGET_MAX);
        return QES_EINVAL;
    }
    return 0;
}
