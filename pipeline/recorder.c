/*
 * Recorder dispatch: pick a sink from the target's form (see record.h).
 */
#include "pipeline/record.h"
#include "common/err.h"

#include <string.h>
#include <strings.h>

#define ACCEPTED                                                                             \
    "accepted: '-' (JSON Lines on stdout), FILE.jsonl or FILE.json (JSON Lines), FILE.csv, " \
    "FILE.db, FILE.sqlite or FILE.sqlite3 (SQLite)"

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    /* A bare ".csv" is a hidden file name, not a CSV file without a name. */
    return n > m && s[n - m - 1] != '/' && !strcasecmp(s + n - m, suffix);
}

int qes_recorder_open(const char *target, struct qes_recorder **out, char *err, size_t errlen)
{
    static const struct {
        const char *suffix;
        int (*open)(const char *, struct qes_recorder **, char *, size_t);
    } kinds[] = {
            {".jsonl", qes_rec_jsonl_open},   {".json", qes_rec_jsonl_open},
            {".csv", qes_rec_csv_open},       {".db", qes_rec_sqlite_open},
            {".sqlite", qes_rec_sqlite_open}, {".sqlite3", qes_rec_sqlite_open},
    };
    if (out)
        *out = NULL;
    if (!target || !out) {
        if (err && errlen)
            snprintf(err, errlen, "recorder: no target given; " ACCEPTED);
        return QES_EINVAL;
    }
    if (!strcmp(target, "-"))
        return qes_rec_jsonl_open(target, out, err, errlen);
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (has_suffix(target, kinds[i].suffix))
            return kinds[i].open(target, out, err, errlen);
    if (err && errlen) {
        if (!strncmp(target, "postgresql://", 13) || !strncmp(target, "postgres://", 11))
            /* Not echoed: a connection string may carry a password. */
            snprintf(err, errlen,
                     "PostgreSQL sinks (postgresql://...) are not built into this qes; " ACCEPTED);
        else
            snprintf(err, errlen, "'%s': unknown kind of output; " ACCEPTED, target);
    }
    return QES_EINVAL;
}

void qes_recorder_destroy(struct qes_recorder *r)
{
    if (r && r->ops && r->ops->destroy)
        r->ops->destroy(r);
}
