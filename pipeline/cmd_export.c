/*
 * `qes export` and `qes runs`: reading a qes SQLite results database back.
 *
 * Why export rebuilds records instead of formatting rows itself: the text a
 * sink writes is the output contract (DESIGN.md), and the simplest way to
 * keep an export equal to it is to fill the same structs (qes_run_rec,
 * qes_block_rec, qes_summary_rec) from the rows and call the same writers:
 * qes_run_json / qes_block_json / qes_summary_json for JSON Lines, the CSV
 * sink itself (qes_rec_csv_open, one recorder per run) for CSV.  The SQLite
 * sink stores every field of those writers losslessly: numbers as doubles
 * (exact), times as the 9-digit UTC text the writers print (parsed back
 * exactly), flags and budgets as the JSON the writers print.  What it cannot
 * hold, and so what an export cannot reproduce:
 *  - the Monte Carlo check of a summary (`replay --mc`, the "mc" object): no
 *    column holds it, so exported summaries never carry it;
 *  - NaN and infinity are both NULL; both are written as null (JSON) or an
 *    empty cell (CSV), so this loses nothing in the text.
 *
 * How a run ended (the run_end record, after its summaries; in CSV, comment
 * lines after the rows) comes from the runs table's run end columns.  A
 * database recorded by a qes without them, or a run of it that such a qes
 * recorded (t_end NULL), or a run that did not close (status NULL), is
 * exported without it, as the sinks of that qes wrote it.
 *
 * Order: runs in the order they were recorded, then the run's blocks, then
 * its summaries, each in the order the sink received them (rowid).  That is
 * the order the jsonl/csv sinks wrote for a replay: for one measurement,
 * seq then harmonic; with several measurements, blocks interleave by time as
 * they completed, which no sort by (seq, measure, harmonic) would give back.
 * Only periodic summaries of a live run, which the sinks wrote between
 * blocks, come after the blocks here.
 *
 * Several runs in one CSV: the CSV sink holds one run (comment lines with the
 * run record, the header row, the rows).  The export writes each run as the
 * sink does and keeps the header row of the first run only, so the file is
 * one table whose '#' comment lines introduce each run.  With one run the
 * file is byte for byte what `-o FILE.csv` wrote.
 */
#include "pipeline/cmd_export.h"

#include "common/err.h"
#include "common/utctime.h"
#include "pipeline/rec_int.h"
#include "pipeline/record.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { EX_OK = 0, EX_USAGE = 1, EX_INPUT = 2 };

#define SCHEMA_VERSION_MAX 1

const char *const qes_usage_export =
        "usage: qes export DB --to csv|jsonl [--run ID] [-o FILE|-]\n"
        "\n"
        "Write the records of a qes results database (qes replay/run -o FILE.db) as\n"
        "JSON Lines or CSV: the same text the jsonl and csv sinks write for a run, so a\n"
        "database can be turned into either at any time.\n"
        "\n"
        "  DB            a qes SQLite results database (opened read-only)\n"
        "  --to FORMAT   jsonl: one JSON record per line (run, blocks, summaries);\n"
        "                csv: the CSV sink's table, with the run record in '#' comment\n"
        "                lines before each run's rows (one header row for the file)\n"
        "  --run ID      one run only: its id or a unique prefix (see qes runs DB);\n"
        "                default: every run\n"
        "  -o FILE       write to FILE (replaced); - or no -o: standard output\n"
        "\n"
        "Order: runs as recorded; in each run its run record, its blocks as recorded\n"
        "(seq, then harmonic, for one measurement), then its summaries, then how it\n"
        "ended (run_end; in CSV, '#' comment lines after the rows).  A replay\n"
        "recorded with -o x.db -o x.jsonl exports (--to jsonl) to a copy of x.jsonl,\n"
        "and with -o x.csv (--to csv) to a copy of x.csv.  Not in the database, so not\n"
        "exported: the Monte Carlo check of summaries (replay --mc), and the periodic\n"
        "summaries' place between the blocks of a live run (they come after them).\n"
        "\n"
        "Exit status: 0 success; 1 usage error; 2 input or output error (missing file,\n"
        "not a qes results database, unknown or ambiguous run, unwritable output).\n"
        "Examples:\n"
        "  qes export results.db --to jsonl -o results.jsonl\n"
        "  qes export results.db --to csv --run 3f2a -o run.csv\n";

const char *const qes_usage_runs =
        "usage: qes runs DB\n"
        "\n"
        "List the runs in a qes results database (qes replay/run -o FILE.db), in the\n"
        "order they were recorded, one line each:\n"
        "  id           the run id (qes export --run and qes adev --run take a unique\n"
        "               prefix of it)\n"
        "  command      replay or run\n"
        "  t_start      UTC of the run's sample 0\n"
        "  config       the first 12 hex digits of the SHA-256 of the resolved\n"
        "               configuration: equal for runs with equal configurations\n"
        "  first_block  UTC of the first sample of the earliest block, and\n"
        "  last_block   of the latest: the time span of the results (- when none)\n"
        "  blocks       block records\n"
        "  summaries    summary records\n"
        "  status       the exit status the run recorded (0 success, 3 data lost or\n"
        "               flagged, ...), or `open` when it did not close: still\n"
        "               recording, or stopped by a crash or kill -9\n"
        "\n"
        "Exit status: 0 success; 1 usage error; 2 missing file or not a qes results\n"
        "database.\n"
        "Example:\n"
        "  qes runs results.db\n";

/* ---- messages ---------------------------------------------------------------- */

static int usage_error(FILE *err, const char *cmd, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int usage_error(FILE *err, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(err, "qes %s: ", cmd);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fprintf(err, "\n(try: qes %s --help)\n", cmd);
    return EX_USAGE;
}

static int input_error(FILE *err, const char *cmd, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int input_error(FILE *err, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(err, "qes %s: ", cmd);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputc('\n', err);
    return EX_INPUT;
}

/* ---- the database -------------------------------------------------------------- */

struct db {
    sqlite3 *h;
    const char *path;
    const char *cmd; /* "export" or "runs", for messages */
    FILE *err;
};

/* Open path read-only as a qes results database inside a read transaction.
 * Returns -1 when it is one, else the exit status (message written). */
static int db_open(struct db *d)
{
    struct stat st;
    if (stat(d->path, &st) != 0)
        return input_error(d->err, d->cmd, "%s: %s", d->path,
                           errno == ENOENT ? "no such file" : strerror(errno));
    if (S_ISDIR(st.st_mode))
        return input_error(d->err, d->cmd, "%s: is a directory, not a qes results database",
                           d->path);
    FILE *f = fopen(d->path, "rb");
    if (!f)
        return input_error(d->err, d->cmd, "%s: cannot open: %s", d->path, strerror(errno));
    char head[16] = {0};
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got != sizeof head || memcmp(head, "SQLite format 3", 16) != 0)
        return input_error(d->err, d->cmd,
                           "%s: not a qes results database (not an SQLite file: write one with "
                           "qes replay/run -o FILE.db)",
                           d->path);
    if (sqlite3_open_v2(d->path, &d->h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return input_error(d->err, d->cmd, "%s: cannot open the database: %s", d->path,
                           d->h ? sqlite3_errmsg(d->h) : "out of memory");
    sqlite3_busy_timeout(d->h, 5000);
    /* One snapshot for everything read below, even with a recorder busy. */
    if (sqlite3_exec(d->h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return input_error(d->err, d->cmd, "%s: %s", d->path, sqlite3_errmsg(d->h));
    sqlite3_stmt *v = NULL;
    int rc = sqlite3_prepare_v2(d->h, "SELECT value FROM meta WHERE key = 'schema_version'", -1, &v,
                                NULL);
    if (rc != SQLITE_OK) {
        const char *m = sqlite3_errmsg(d->h);
        return input_error(d->err, d->cmd, "%s: %s%s", d->path,
                           strstr(m, "no such table") ? "not a qes results database: " : "", m);
    }
    rc = sqlite3_step(v);
    int valid = rc == SQLITE_ROW && sqlite3_column_type(v, 0) == SQLITE_INTEGER;
    sqlite3_int64 ver = valid ? sqlite3_column_int64(v, 0) : 0;
    sqlite3_finalize(v);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return input_error(d->err, d->cmd, "%s: %s", d->path, sqlite3_errmsg(d->h));
    if (!valid || ver < 1)
        return input_error(d->err, d->cmd,
                           "%s: not a qes results database (no valid schema_version in its meta "
                           "table)",
                           d->path);
    if (ver > SCHEMA_VERSION_MAX)
        return input_error(d->err, d->cmd,
                           "%s: schema_version %lld is newer than this qes reads (%d): use a "
                           "newer qes",
                           d->path, (long long)ver, SCHEMA_VERSION_MAX);
    return -1;
}

static void db_close(struct db *d)
{
    if (d->h) {
        sqlite3_exec(d->h, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(d->h);
    }
    d->h = NULL;
}

/* Prepare; -1 on success, else the exit status (message written). */
static int db_prepare(struct db *d, const char *sql, sqlite3_stmt **st)
{
    *st = NULL;
    if (sqlite3_prepare_v2(d->h, sql, -1, st, NULL) == SQLITE_OK)
        return -1;
    const char *m = sqlite3_errmsg(d->h);
    return input_error(d->err, d->cmd, "%s: %s%s", d->path,
                       strstr(m, "no such") ? "not a qes results database of this version: " : "",
                       m);
}

/* ---- runs -------------------------------------------------------------------- */

static const char runs_sql[] =
        "SELECT id, command, version, build, config_sha256, config, input, t_start,"
        " sample_rate_hz, status FROM runs ORDER BY rowid";

/* With the run end columns (when runs has them). */
static const char runs_end_sql[] =
        "SELECT id, command, version, build, config_sha256, config, input, t_start,"
        " sample_rate_hz, status, samples, lost, gaps, reconnects, frames_dropped, latency_n,"
        " latency_p50_us, latency_p99_us, latency_max_us, seconds, t_end FROM runs"
        " ORDER BY rowid";

struct run_row {
    char *id, *command, *version, *build, *sha, *config, *input, *t_start;
    double sample_rate_hz;
    int has_end;           /* the run end below is recorded (status and t_end set) */
    char *t_end;           /* its UTC text */
    const char *null_what; /* a run end count that is NULL, for the message */
    struct qes_run_end end;
};

struct runs {
    struct run_row *v;
    size_t n;
};

static void runs_free(struct runs *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        struct run_row *r = &rs->v[i];
        free(r->id);
        free(r->command);
        free(r->version);
        free(r->build);
        free(r->sha);
        free(r->config);
        free(r->input);
        free(r->t_start);
        free(r->t_end);
    }
    free(rs->v);
    rs->v = NULL;
    rs->n = 0;
}

/* A copy of a text column, NULL for NULL; *oom set when a copy failed. */
static char *col_dup(sqlite3_stmt *st, int i, int *oom)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t)
        return NULL;
    char *s = strdup((const char *)t);
    if (!s)
        *oom = 1;
    return s;
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(st, i);
    return v < 0 ? 0 : (uint64_t)v;
}

/* Does runs have the run end columns (t_end, the last of them)?  *yes; -1,
 * else the exit status (message written). */
static int runs_have_end(struct db *d, int *yes)
{
    sqlite3_stmt *st;
    *yes = 0;
    int status = db_prepare(d,
                            "SELECT count(*) FROM pragma_table_info('runs')"
                            " WHERE name = 't_end'",
                            &st);
    if (status >= 0)
        return status;
    if (sqlite3_step(st) == SQLITE_ROW)
        *yes = sqlite3_column_int64(st, 0) > 0;
    else
        status = input_error(d->err, d->cmd, "%s: reading the columns of runs: %s", d->path,
                             sqlite3_errmsg(d->h));
    sqlite3_finalize(st);
    return status;
}

/* The run end of a row of runs_end_sql (columns 9..20) into r. */
static void run_end_from_row(sqlite3_stmt *st, struct run_row *r, int *oom)
{
    static const char *const count_names[] = {"samples",    "lost",           "gaps",
                                              "reconnects", "frames_dropped", "latency_n"};
    uint64_t *counts[] = {&r->end.samples,    &r->end.lost,           &r->end.gaps,
                          &r->end.reconnects, &r->end.frames_dropped, &r->end.latency_n};
    if (sqlite3_column_type(st, 9) == SQLITE_NULL || sqlite3_column_type(st, 20) == SQLITE_NULL)
        return; /* not closed, or closed by a qes without run end columns */
    r->has_end = 1;
    r->end.status = sqlite3_column_int(st, 9);
    for (int i = 0; i < 6; i++) {
        if (sqlite3_column_type(st, 10 + i) == SQLITE_NULL && !r->null_what)
            r->null_what = count_names[i];
        *counts[i] = col_u64(st, 10 + i);
    }
    r->end.latency_p50_us = col_real(st, 16);
    r->end.latency_p99_us = col_real(st, 17);
    r->end.latency_max_us = col_real(st, 18);
    r->end.seconds = col_real(st, 19);
    r->t_end = col_dup(st, 20, oom);
}

/* Every run, in recording order; -1 on success, else the exit status. */
static int runs_load(struct db *d, struct runs *rs)
{
    sqlite3_stmt *st;
    int with_end;
    int status = runs_have_end(d, &with_end);
    if (status >= 0)
        return status;
    status = db_prepare(d, with_end ? runs_end_sql : runs_sql, &st);
    if (status >= 0)
        return status;
    size_t cap = 0;
    int rc, oom = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (rs->n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            struct run_row *nv = realloc(rs->v, ncap * sizeof *nv);
            if (!nv) {
                oom = 1;
                break;
            }
            rs->v = nv;
            cap = ncap;
        }
        struct run_row *r = &rs->v[rs->n++];
        memset(r, 0, sizeof *r);
        r->id = col_dup(st, 0, &oom);
        r->command = col_dup(st, 1, &oom);
        r->version = col_dup(st, 2, &oom);
        r->build = col_dup(st, 3, &oom);
        r->sha = col_dup(st, 4, &oom);
        r->config = col_dup(st, 5, &oom);
        r->input = col_dup(st, 6, &oom);
        r->t_start = col_dup(st, 7, &oom);
        r->sample_rate_hz = col_real(st, 8);
        if (with_end)
            run_end_from_row(st, r, &oom);
        if (oom)
            break;
    }
    if (oom)
        status = input_error(d->err, d->cmd, "%s: out of memory reading the runs", d->path);
    else if (rc != SQLITE_DONE)
        status = input_error(d->err, d->cmd, "%s: reading the runs: %s", d->path,
                             sqlite3_errmsg(d->h));
    sqlite3_finalize(st);
    return status;
}

/* The runs selected by an id or unique prefix (NULL: all): *first, *count.
 * -1 on success, else the exit status. */
static int runs_select(struct db *d, const struct runs *rs, const char *prefix, size_t *first,
                       size_t *count)
{
    *first = 0;
    *count = rs->n;
    if (!prefix)
        return -1;
    size_t len = strlen(prefix), n = 0, at = 0;
    for (size_t i = 0; i < rs->n; i++) {
        if (rs->v[i].id && !strncmp(rs->v[i].id, prefix, len)) {
            /* an exact id wins over longer ids it prefixes */
            if (!strcmp(rs->v[i].id, prefix)) {
                *first = i;
                *count = 1;
                return -1;
            }
            if (n++ == 0)
                at = i;
        }
    }
    if (n == 1) {
        *first = at;
        *count = 1;
        return -1;
    }
    /* Name the candidates (the matches, or every run when none matched), at
     * most 20 of them. */
    fprintf(d->err, "qes %s: %s: --run %s: %s (%s: ", d->cmd, d->path, prefix,
            n ? "matches several runs" : "no such run", n ? "matching" : "runs");
    size_t shown = 0;
    for (size_t i = 0; i < rs->n; i++) {
        const char *id = rs->v[i].id ? rs->v[i].id : "NULL";
        if (n && strncmp(id, prefix, len))
            continue;
        if (shown++ == 20) {
            fputs(", ...", d->err);
            break;
        }
        fprintf(d->err, "%s%s", shown > 1 ? ", " : "", id);
    }
    fputs(shown ? ")\n" : "none)\n", d->err);
    return EX_INPUT;
}

/* ---- rows to records ------------------------------------------------------------ */

static const char blocks_sql[] =
        "SELECT measure, channel, kind, harmonic, seq, sample_start, n_samples, t, freq_hz, x,"
        " y, r, phase_rad, value, u, unit, enbw_hz, thd, sinad_db, sfdr_db, flags"
        " FROM blocks WHERE run = ?1 ORDER BY rowid";

static const char summaries_sql[] =
        "SELECT measure, channel, kind, harmonic, seq, n_blocks, n_excluded, freq_hz, x, y, r,"
        " phase_rad, value, unit, u_x, u_y, u_r, u_phase_rad, u, dof, k, U_r_expanded,"
        " U_expanded, coverage, budget, flags FROM summaries WHERE run = ?1 ORDER BY rowid";

/* Where a row came from, for messages. */
struct where {
    const struct db *d;
    const char *run;
    const char *table;
    const char *measure;
    unsigned long long seq;
};

static int row_error(const struct where *w, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static int row_error(const struct where *w, const char *fmt, ...)
{
    fprintf(w->d->err, "qes %s: %s: run %s, %s row (measure %s, seq %llu): ", w->d->cmd, w->d->path,
            w->run, w->table, w->measure ? w->measure : "NULL", w->seq);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(w->d->err, fmt, ap);
    va_end(ap);
    fputc('\n', w->d->err);
    return EX_INPUT;
}

static int parse_kind(const struct where *w, const char *kind, enum qes_rec_kind *out)
{
    if (kind && !strcmp(kind, "phasor"))
        *out = QES_REC_PHASOR;
    else if (kind && !strcmp(kind, "scalar"))
        *out = QES_REC_SCALAR;
    else
        return row_error(w, "kind '%s': expected phasor or scalar", kind ? kind : "NULL");
    return -1;
}

/* The flags column (the JSON array qes_flags_json wrote; NULL = none). */
static int parse_flags(const struct where *w, const char *text, unsigned *flags)
{
    static const char *const names[] = {
#define QES__FLAG_NAME(name, bit, str) [bit] = str,
            QES_FLAG_MAP(QES__FLAG_NAME)
#undef QES__FLAG_NAME
    };
    *flags = 0;
    if (!text)
        return -1;
    json_error_t je;
    json_t *a = json_loads(text, 0, &je);
    if (!a || !json_is_array(a)) {
        json_decref(a);
        return row_error(w, "flags '%.200s': not a JSON array", text);
    }
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        const char *s = json_string_value(e);
        unsigned bit = 0, n = sizeof names / sizeof names[0];
        while (bit < n && !(s && names[bit] && !strcmp(s, names[bit])))
            bit++;
        /* qes_flags_json writes a bit without a name as "bitN" */
        if (bit == n && s && !strncmp(s, "bit", 3) && s[3] >= '0' && s[3] <= '9') {
            char *end;
            unsigned long b = strtoul(s + 3, &end, 10);
            bit = !*end && b < sizeof *flags * 8 ? (unsigned)b : n;
            if (bit < n && names[bit])
                bit = n; /* a named bit is never written as bitN */
            else if (bit != n) {
                *flags |= 1u << bit;
                continue;
            }
        }
        if (bit == n) {
            int st = row_error(w, "flags %.200s: unknown flag %s%s%s (written by a newer qes?)",
                               text, s ? "'" : "", s ? s : "(not a string)", s ? "'" : "");
            json_decref(a);
            return st;
        }
        *flags |= 1u << bit;
    }
    json_decref(a);
    return -1;
}

/* A budget number: null is NaN (it was not finite; written as null again). */
static int budget_num(const json_t *o, const char *key, double *v)
{
    const json_t *x = json_object_get(o, key);
    if (json_is_null(x)) {
        *v = NAN;
        return 0;
    }
    if (!json_is_number(x))
        return -1;
    *v = json_number_value(x);
    return 0;
}

/*
 * The budget column (the JSON array qes_budget_json wrote) into terms; the
 * names point into *keep, which the caller releases after writing.  A rule
 * (on the typeA term) goes to rule[192].
 */
static int parse_budget(const struct where *w, const char *text, struct qes_budget_term *terms,
                        size_t *n, char *rule, size_t rule_len, json_t **keep)
{
    *n = 0;
    rule[0] = '\0';
    *keep = NULL;
    if (!text)
        return -1;
    json_error_t je;
    /* Every number as a double (strtod of the %.17g text: exact, -0 kept). */
    json_t *a = json_loads(text, JSON_DECODE_INT_AS_REAL, &je);
    if (!a || !json_is_array(a) || json_array_size(a) > QES_BUDGET_MAX) {
        json_decref(a);
        return row_error(w, "budget '%.200s': not a JSON array of at most %d terms", text,
                         QES_BUDGET_MAX);
    }
    size_t i;
    json_t *t;
    json_array_foreach(a, i, t)
    {
        const json_t *name = json_object_get(t, "name");
        const json_t *r = json_object_get(t, "rule");
        if (!json_is_object(t) || (!json_is_string(name) && !json_is_null(name)) ||
            budget_num(t, "u", &terms[i].u) || budget_num(t, "dof", &terms[i].dof) ||
            (r && (!json_is_string(r) || strlen(json_string_value(r)) >= rule_len))) {
            json_decref(a);
            return row_error(w, "budget term %zu of '%.200s': expected {\"name\", \"u\", \"dof\"}",
                             i, text);
        }
        terms[i].name = json_string_value(name);
        if (r)
            strcpy(rule, json_string_value(r));
    }
    *n = json_array_size(a);
    *keep = a;
    return -1;
}

static int parse_utc(const struct where *w, const char *what, const char *text, int64_t *ns)
{
    if (!text || qes_utc_parse(text, ns) != 0)
        return row_error(w, "%s '%s': not a UTC time YYYY-MM-DDTHH:MM:SS.fffffffffZ", what,
                         text ? text : "NULL");
    return -1;
}

/* A block row into b (strings point into the statement's row). */
static int block_from_row(const struct where *w0, sqlite3_stmt *st, struct qes_block_rec *b)
{
    struct where w = *w0;
    w.measure = col_text(st, 0);
    w.seq = (unsigned long long)col_u64(st, 4);
    memset(b, 0, sizeof *b);
    int status;
    if ((status = parse_kind(&w, col_text(st, 2), &b->kind)) >= 0)
        return status;
    b->measure = col_text(st, 0);
    b->channel = col_text(st, 1);
    b->harmonic = (unsigned)sqlite3_column_int64(st, 3);
    b->seq = col_u64(st, 4);
    b->sample_start = col_u64(st, 5);
    b->n_samples = col_u64(st, 6);
    if ((status = parse_utc(&w, "t", col_text(st, 7), &b->t_ns)) >= 0)
        return status;
    b->freq_hz = col_real(st, 8);
    b->x = col_real(st, 9);
    b->y = col_real(st, 10);
    b->r = col_real(st, 11);
    b->phase_rad = col_real(st, 12);
    b->value = col_real(st, 13);
    b->u = col_real(st, 14);
    b->unit = col_text(st, 15);
    b->enbw_hz = col_real(st, 16);
    b->thd = col_real(st, 17);
    b->sinad_db = col_real(st, 18);
    b->sfdr_db = col_real(st, 19);
    if ((status = parse_flags(&w, col_text(st, 20), &b->flags)) >= 0)
        return status;
    if (!b->measure)
        return row_error(&w, "no measure");
    return -1;
}

/* A summary row into m; the budget names live in *keep until released. */
static int summary_from_row(const struct where *w0, sqlite3_stmt *st, struct qes_summary_rec *m,
                            json_t **keep)
{
    struct where w = *w0;
    w.measure = col_text(st, 0);
    w.seq = (unsigned long long)col_u64(st, 4);
    memset(m, 0, sizeof *m);
    *keep = NULL;
    int status;
    if ((status = parse_kind(&w, col_text(st, 2), &m->kind)) >= 0)
        return status;
    m->measure = col_text(st, 0);
    m->channel = col_text(st, 1);
    m->harmonic = (unsigned)sqlite3_column_int64(st, 3);
    m->seq = col_u64(st, 4);
    m->n_excluded = col_u64(st, 6);
    m->freq_hz = col_real(st, 7);
    m->unit = col_text(st, 13);
    if ((status = parse_flags(&w, col_text(st, 25), &m->flags)) >= 0)
        return status;
    if (!m->measure)
        return row_error(&w, "no measure");
    const char *budget = col_text(st, 24);
    if (m->kind == QES_REC_PHASOR) {
        struct qes_phasor_summary *p = &m->s;
        p->n = col_u64(st, 5);
        p->x = col_real(st, 8);
        p->y = col_real(st, 9);
        p->r = col_real(st, 10);
        p->phase_rad = col_real(st, 11);
        p->u_x = col_real(st, 14);
        p->u_y = col_real(st, 15);
        p->u_r = col_real(st, 16);
        p->u_phase_rad = col_real(st, 17);
        p->dof = col_real(st, 19);
        p->k = col_real(st, 20);
        p->U_r = col_real(st, 21);
        p->coverage = col_real(st, 23);
        return parse_budget(&w, budget, p->budget, &p->n_budget, p->typeA_rule,
                            sizeof p->typeA_rule, keep);
    }
    struct qes_scalar_summary *v = &m->v;
    v->n = col_u64(st, 5);
    v->value = col_real(st, 12);
    v->u = col_real(st, 18);
    v->dof = col_real(st, 19);
    v->k = col_real(st, 20);
    v->U = col_real(st, 22);
    v->coverage = col_real(st, 23);
    return parse_budget(&w, budget, v->budget, &v->n_budget, v->typeA_rule, sizeof v->typeA_rule,
                        keep);
}

/* ---- writing ------------------------------------------------------------------ */

enum fmt { FMT_JSONL, FMT_CSV };

struct sink {
    enum fmt fmt;
    FILE *out;                /* JSON Lines go here directly */
    const char *out_name;     /* for messages */
    struct qes_recorder *csv; /* the CSV sink of the current run */
};

/* A writer's failure: -1 when rc is 0, else the exit status. */
static int sink_status(const struct db *d, const struct sink *k, int rc, const char *what)
{
    if (!rc)
        return -1;
    if (k->fmt == FMT_CSV && k->csv && k->csv->errmsg[0])
        return input_error(d->err, d->cmd, "%s", k->csv->errmsg);
    if (rc == QES_EIO || rc == QES_ENOSPC)
        return input_error(d->err, d->cmd, "cannot write to %s: %s", k->out_name, strerror(errno));
    return input_error(d->err, d->cmd, "%s: %s: %s", d->path, what, qes_strerror(rc));
}

static int sink_run(const struct db *d, struct sink *k, const struct qes_run_rec *run)
{
    int rc;
    if (k->fmt == FMT_CSV) {
        rc = k->csv->ops->run(k->csv, run);
    } else {
        errno = 0;
        rc = qes_run_json(k->out, run);
        if (!rc && putc('\n', k->out) == EOF)
            rc = QES_EIO;
    }
    if (rc == QES_EINVAL && k->fmt == FMT_JSONL)
        return input_error(d->err, d->cmd, "%s: run %s: the input column is not valid JSON",
                           d->path, run->id);
    return sink_status(d, k, rc, "run record");
}

static int sink_block(const struct db *d, struct sink *k, const struct qes_run_rec *run,
                      const struct qes_block_rec *b)
{
    int rc;
    if (k->fmt == FMT_CSV) {
        rc = k->csv->ops->block(k->csv, run, b);
    } else {
        errno = 0;
        rc = qes_block_json(k->out, run, b);
        if (!rc && putc('\n', k->out) == EOF)
            rc = QES_EIO;
    }
    return sink_status(d, k, rc, "block record");
}

static int sink_summary(const struct db *d, struct sink *k, const struct qes_run_rec *run,
                        const struct qes_summary_rec *m)
{
    int rc;
    if (k->fmt == FMT_CSV) {
        rc = k->csv->ops->summary(k->csv, run, m);
    } else {
        errno = 0;
        rc = qes_summary_json(k->out, run, m);
        if (!rc && putc('\n', k->out) == EOF)
            rc = QES_EIO;
    }
    return sink_status(d, k, rc, "summary record");
}

/* The run record of a row. */
static int run_from_row(const struct db *d, const struct run_row *r, struct qes_run_rec *run)
{
    memset(run, 0, sizeof *run);
    if (!r->id || strlen(r->id) >= sizeof run->id)
        return input_error(d->err, d->cmd, "%s: a run with the id '%s': not a run id", d->path,
                           r->id ? r->id : "NULL");
    strcpy(run->id, r->id);
    run->command = r->command;
    run->version = r->version;
    run->build = r->build;
    run->config_ini = r->config;
    snprintf(run->config_sha256, sizeof run->config_sha256, "%s", r->sha ? r->sha : "");
    run->input_json = r->input;
    run->sample_rate_hz = r->sample_rate_hz;
    if (!r->t_start || qes_utc_parse(r->t_start, &run->t_start_ns) != 0)
        return input_error(d->err, d->cmd, "%s: run %s: t_start '%s' is not a UTC time", d->path,
                           run->id, r->t_start ? r->t_start : "NULL");
    return -1;
}

/* The run end of a row that has one into *end; -1, else the exit status. */
static int run_end_of_row(const struct db *d, const struct run_row *r, struct qes_run_end *end)
{
    *end = r->end;
    if (r->null_what)
        return input_error(d->err, d->cmd,
                           "%s: run %s: the run end column %s is NULL (a count above 2^63 - 1 "
                           "cannot be exported)",
                           d->path, r->id, r->null_what);
    if (!r->t_end || qes_utc_parse(r->t_end, &end->t_end_ns) != 0)
        return input_error(d->err, d->cmd, "%s: run %s: t_end '%s' is not a UTC time", d->path,
                           r->id, r->t_end ? r->t_end : "NULL");
    return -1;
}

/* The run_end line of a JSON Lines export. */
static int sink_run_end(const struct db *d, struct sink *k, const struct run_row *r)
{
    struct qes_run_end end;
    int status = run_end_of_row(d, r, &end);
    if (status >= 0)
        return status;
    errno = 0;
    int rc = qes_run_end_json(k->out, r->id, &end);
    if (!rc && putc('\n', k->out) == EOF)
        rc = QES_EIO;
    return sink_status(d, k, rc, "run_end record");
}

/* The records of one run: run record, blocks, summaries (and, in JSON Lines,
 * the run_end record; the CSV sink writes it at close). */
static int export_run(const struct db *d, struct sink *k, const struct run_row *r,
                      sqlite3_stmt *bst, sqlite3_stmt *sst)
{
    struct qes_run_rec run;
    int status = run_from_row(d, r, &run);
    if (status >= 0)
        return status;
    if ((status = sink_run(d, k, &run)) >= 0)
        return status;
    struct where w = {.d = d, .run = run.id, .table = "blocks"};
    int rc;
    sqlite3_bind_text(bst, 1, run.id, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(bst)) == SQLITE_ROW) {
        struct qes_block_rec b;
        if ((status = block_from_row(&w, bst, &b)) >= 0 ||
            (status = sink_block(d, k, &run, &b)) >= 0)
            goto out;
    }
    if (rc != SQLITE_DONE) {
        status = input_error(d->err, d->cmd, "%s: reading the blocks of run %s: %s", d->path,
                             run.id, sqlite3_errmsg(d->h));
        goto out;
    }
    w.table = "summaries";
    sqlite3_bind_text(sst, 1, run.id, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(sst)) == SQLITE_ROW) {
        struct qes_summary_rec m;
        json_t *keep = NULL;
        status = summary_from_row(&w, sst, &m, &keep);
        if (status < 0)
            status = sink_summary(d, k, &run, &m);
        json_decref(keep);
        if (status >= 0)
            goto out;
    }
    if (rc != SQLITE_DONE)
        status = input_error(d->err, d->cmd, "%s: reading the summaries of run %s: %s", d->path,
                             run.id, sqlite3_errmsg(d->h));
    else if (k->fmt == FMT_JSONL && r->has_end)
        status = sink_run_end(d, k, r);
out:
    sqlite3_reset(bst);
    sqlite3_reset(sst);
    return status;
}

/*
 * Append the CSV file at tmp to k->out; skip_header drops its header row
 * (the first line that is not a '#' comment).  -1 or the exit status.
 */
static int csv_append(const struct db *d, struct sink *k, const char *tmp, int skip_header)
{
    FILE *f = fopen(tmp, "r");
    if (!f)
        return input_error(d->err, d->cmd, "%s: cannot read back: %s", tmp, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int in_comments = 1, status = -1;
    errno = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (in_comments && line[0] != '#') {
            in_comments = 0;
            if (skip_header)
                continue;
        }
        if (fwrite(line, 1, (size_t)n, k->out) != (size_t)n) {
            status = input_error(d->err, d->cmd, "cannot write to %s: %s", k->out_name,
                                 strerror(errno));
            break;
        }
    }
    if (status < 0 && ferror(f))
        status = input_error(d->err, d->cmd, "%s: cannot read back: %s", tmp, strerror(errno));
    free(line);
    fclose(f);
    return status;
}

/* One run through the CSV sink into a temporary file, then appended. */
static int export_run_csv(const struct db *d, struct sink *k, const struct run_row *r,
                          sqlite3_stmt *bst, sqlite3_stmt *sst, int first)
{
    const char *dir = getenv("TMPDIR");
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/qes-export-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmp);
    if (fd < 0)
        return input_error(d->err, d->cmd, "cannot create a temporary file %s: %s", tmp,
                           strerror(errno));
    close(fd);
    char msg[4200] = "";
    int rc = qes_rec_csv_open(tmp, &k->csv, msg, sizeof msg);
    int status = rc ? input_error(d->err, d->cmd, "%s", msg) : -1;
    if (status < 0)
        status = export_run(d, k, r, bst, sst);
    struct qes_run_end end;
    if (status < 0 && r->has_end)
        status = run_end_of_row(d, r, &end);
    if (status < 0 &&
        (rc = r->has_end ? k->csv->ops->close(k->csv, &end) : qes__csv_close_without_end(k->csv)))
        status = sink_status(d, k, rc, "closing the CSV");
    qes_recorder_destroy(k->csv);
    k->csv = NULL;
    if (status < 0)
        status = csv_append(d, k, tmp, !first);
    unlink(tmp);
    return status;
}

/* ---- qes export ----------------------------------------------------------------- */

struct export_opts {
    const char *db;
    const char *to;
    const char *run;
    const char *out;
    int help;
};

static int export_args(int argc, char **argv, struct export_opts *o, FILE *err)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%.63s", a);
        }
        int takes = !strcmp(name, "--to") || !strcmp(name, "--run") || !strcmp(name, "-o") ||
                    !strcmp(name, "--output");
        if (takes && !val) {
            if (i + 1 >= argc)
                return usage_error(err, "export", "%s needs a value", name);
            val = argv[++i];
        } else if (!takes && val) {
            if (!strcmp(name, "--help"))
                return usage_error(err, "export", "%s takes no value", name);
            return usage_error(err, "export", "unknown option %s", name);
        }
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            o->help = 1;
        } else if (!strcmp(name, "--to")) {
            if (strcmp(val, "csv") && strcmp(val, "jsonl"))
                return usage_error(err, "export", "--to %s: expected csv or jsonl", val);
            o->to = val;
        } else if (!strcmp(name, "--run")) {
            if (!*val)
                return usage_error(err, "export",
                                   "--run needs a run id (or a unique prefix of one)");
            o->run = val;
        } else if (!strcmp(name, "-o") || !strcmp(name, "--output")) {
            if (!*val)
                return usage_error(err, "export", "-o needs a file name (or - for stdout)");
            if (o->out)
                return usage_error(err, "export", "-o given twice (%s, %s): one output", o->out,
                                   val);
            o->out = val;
        } else if (a[0] == '-' && a[1]) {
            return usage_error(err, "export", "unknown option %s", a);
        } else if (!o->db) {
            o->db = a;
        } else {
            return usage_error(err, "export", "unexpected argument %s (DB is already %s)", a,
                               o->db);
        }
    }
    return -1;
}

/* Is path the database file itself (which -o would destroy)? */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int qes_cmd_export(int argc, char **argv, FILE *out, FILE *err)
{
    struct export_opts o = {0};
    int status = export_args(argc, argv, &o, err);
    if (status >= 0)
        return status;
    if (o.help) {
        fputs(qes_usage_export, out);
        return EX_OK;
    }
    if (!o.db)
        return usage_error(err, "export", "missing DB (a qes results database)");
    if (!o.to)
        return usage_error(err, "export", "missing --to csv|jsonl");
    int to_file = o.out && strcmp(o.out, "-") != 0;
    if (to_file && same_file(o.out, o.db))
        return usage_error(err, "export", "-o %s is the database itself", o.out);

    struct db d = {.path = o.db, .cmd = "export", .err = err};
    struct runs rs = {0};
    sqlite3_stmt *bst = NULL, *sst = NULL;
    struct sink k = {.fmt = !strcmp(o.to, "csv") ? FMT_CSV : FMT_JSONL,
                     .out = out,
                     .out_name = "standard output"};
    size_t first, count;
    if ((status = db_open(&d)) >= 0 || (status = runs_load(&d, &rs)) >= 0 ||
        (status = runs_select(&d, &rs, o.run, &first, &count)) >= 0 ||
        (status = db_prepare(&d, blocks_sql, &bst)) >= 0 ||
        (status = db_prepare(&d, summaries_sql, &sst)) >= 0)
        goto out;
    if (to_file) {
        if (!(k.out = fopen(o.out, "w"))) {
            status = input_error(err, "export", "cannot open '%s' for writing: %s", o.out,
                                 strerror(errno));
            goto out;
        }
        k.out_name = o.out;
    }
    for (size_t i = first; i < first + count && status < 0; i++)
        status = k.fmt == FMT_CSV ? export_run_csv(&d, &k, &rs.v[i], bst, sst, i == first)
                                  : export_run(&d, &k, &rs.v[i], bst, sst);
    if (status < 0 && (fflush(k.out) != 0 || ferror(k.out)))
        status = input_error(err, "export", "cannot write to %s: %s", k.out_name, strerror(errno));
    if (to_file) {
        struct stat st;
        if (status < 0 && fstat(fileno(k.out), &st) == 0 && S_ISREG(st.st_mode) &&
            fsync(fileno(k.out)) != 0)
            status = input_error(err, "export", "cannot write to %s: %s", o.out, strerror(errno));
        if (fclose(k.out) != 0 && status < 0)
            status = input_error(err, "export", "cannot write to %s: %s", o.out, strerror(errno));
        if (status >= 0) {
            /* Half an export is worse than none: it looks complete. */
            unlink(o.out);
            fprintf(err, "qes export: %s removed (incomplete)\n", o.out);
        }
    }
out:
    sqlite3_finalize(bst);
    sqlite3_finalize(sst);
    runs_free(&rs);
    db_close(&d);
    return status < 0 ? EX_OK : status;
}

/* ---- qes runs ------------------------------------------------------------------- */

static const char runs_list_sql[] = "SELECT r.id, r.command, r.t_start, r.config_sha256,"
                                    " (SELECT MIN(t) FROM blocks WHERE run = r.id),"
                                    " (SELECT MAX(t) FROM blocks WHERE run = r.id),"
                                    " (SELECT COUNT(*) FROM blocks WHERE run = r.id),"
                                    " (SELECT COUNT(*) FROM summaries WHERE run = r.id), r.status"
                                    " FROM runs r ORDER BY r.rowid";

int qes_cmd_runs(int argc, char **argv, FILE *out, FILE *err)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(qes_usage_runs, out);
            return EX_OK;
        }
        if (a[0] == '-' && a[1])
            return usage_error(err, "runs", "unknown option %s", a);
        if (path)
            return usage_error(err, "runs", "unexpected argument %s (DB is already %s)", a, path);
        path = a;
    }
    if (!path)
        return usage_error(err, "runs", "missing DB (a qes results database)");
    struct db d = {.path = path, .cmd = "runs", .err = err};
    sqlite3_stmt *st = NULL;
    int status, rc;
    if ((status = db_open(&d)) >= 0 || (status = db_prepare(&d, runs_list_sql, &st)) >= 0)
        goto out;
    fprintf(out, "%-36s  %-7s  %-30s  %-12s  %-30s  %-30s  %8s  %9s  %s\n", "id", "command",
            "t_start", "config", "first_block", "last_block", "blocks", "summaries", "status");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = col_text(st, 0), *cmd = col_text(st, 1), *t0 = col_text(st, 2);
        const char *sha = col_text(st, 3), *first = col_text(st, 4), *last = col_text(st, 5);
        char stat_text[24];
        if (sqlite3_column_type(st, 8) == SQLITE_NULL)
            snprintf(stat_text, sizeof stat_text, "open");
        else
            snprintf(stat_text, sizeof stat_text, "%lld", (long long)sqlite3_column_int64(st, 8));
        fprintf(out, "%-36s  %-7s  %-30s  %-12.12s  %-30s  %-30s  %8lld  %9lld  %s\n",
                id ? id : "NULL", cmd ? cmd : "-", t0 ? t0 : "-", sha ? sha : "-",
                first ? first : "-", last ? last : "-", (long long)sqlite3_column_int64(st, 6),
                (long long)sqlite3_column_int64(st, 7), stat_text);
    }
    if (rc != SQLITE_DONE)
        status = input_error(err, "runs", "%s: reading the runs: %s", path, sqlite3_errmsg(d.h));
    else if (fflush(out) != 0 || ferror(out))
        status = input_error(err, "runs", "cannot write the list: %s", strerror(errno));
out:
    sqlite3_finalize(st);
    db_close(&d);
    return status < 0 ? EX_OK : status;
}
