/*
 * `qes adev`: frequency-stability analysis of a series from the command line.
 *
 * Input is a text file (one number per line, or one column of several) or
 * one measurement's block results in a qes SQLite results database.  Each
 * requested deviation is computed at a tau list (octave, decade or all
 * averaging factors up to dsp/allan's default maximum), with the noise type
 * identified at each tau and the chi-squared interval from Greenhall's EDF,
 * exactly as qes_allan_compute gives them.  Output is a table on stdout and,
 * with --json, the same rows as JSON (numbers %.17g, non-finite as null)
 * together with a description of the input.
 *
 * Why a database series is read the way it is:
 *  - only unflagged blocks (flags NULL or []) are used, as the summaries do;
 *    the remaining blocks are treated as contiguous, and a warning says how
 *    many were left out inside the series (Allan statistics assume no dead
 *    time between points);
 *  - tau0 is the block duration n_samples / runs.sample_rate_hz (the mean
 *    over the blocks used, with a warning when they differ), the same tau0
 *    the runtime uses for its Allan-based Type A uncertainty;
 *  - a phase_rad series is unwrapped (consecutive differences brought into
 *    (-pi, pi]) so that a phase near +-pi does not look like a 2 pi jump;
 *  - one run only: several runs of the same measurement are never silently
 *    concatenated.
 */
#include "pipeline/cmd_adev.h"

#include "common/err.h"
#include "dsp/allan.h"
#include "qes_version.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { ADEV_OK = 0, ADEV_USAGE = 1, ADEV_INPUT = 2 };

/* Two-sided coverage of +-k standard deviations of a normal variable,
 * erf(k / sqrt 2), to 17 digits (mpmath, 30 digits). */
#define COVER_1SIGMA 0.68268949213708590
#define COVER_2SIGMA 0.95449973610364159
#define COVER_3SIGMA 0.99730020393673981

#define PI 3.14159265358979323846

const char *const qes_usage_adev =
        "usage: qes adev INPUT [--kind K[,K]...] [--taus octave|decade|all]\n"
        "                [--confidence P] [--json FILE|-]\n"
        "  text INPUT:     [--type freq|phase] [--tau0 S] [--column N]\n"
        "  database INPUT: --measure NAME [--harmonic H] [--run ID] [--field F]\n"
        "\n"
        "Allan-family deviations of a series at tau = m tau0, the noise type at each tau,\n"
        "and a confidence interval for each deviation (NIST SP 1065; as Stable32).\n"
        "\n"
        "Why: s/sqrt(n) is the uncertainty of a mean only for white noise.  The Allan\n"
        "deviation at tau, the scatter of consecutive tau-averages, falls as tau^-1/2 for\n"
        "white noise, stays flat for flicker noise (longer averaging no longer helps) and\n"
        "rises for random walk and drift: it shows how long averaging pays, and what\n"
        "limits the result.\n"
        "\n"
        "--kind (comma-separated or repeated; default oadev):\n"
        "  oadev   overlapping Allan: start here (narrower interval than adev)\n"
        "  adev    non-overlapping Allan: the textbook definition, wider intervals\n"
        "  mdev    modified Allan: separates white PM (tau^-3/2) from flicker PM (tau^-1)\n"
        "  tdev    time deviation tau MDEV/sqrt 3: stability of the phase (time) itself,\n"
        "          in phase units (s); for clocks and time transfer\n"
        "  hdev    Hadamard: ignores linear frequency drift, finite down to alpha = -4\n"
        "  ohdev   overlapping Hadamard: as hdev, narrower intervals\n"
        "  totdev  total: Allan of the series reflected at both ends; better at long tau\n"
        "  all     every one\n"
        "alpha (S_y(f) ~ f^alpha): 2 white PM, 1 flicker PM, 0 white FM (white scatter of\n"
        "results), -1 flicker FM, -2 random-walk FM; identified by lag-1 autocorrelation\n"
        "with >= 30 averages, else by B1 (and R(n)), else taken from the previous tau.\n"
        "\n"
        "INPUT starting with the SQLite header is a qes results database, else text\n"
        "(- is stdin): one number per line, '#' comments, blank lines skipped, anything\n"
        "else an error naming file:line.\n"
        "  --column N    read column N (1-based) of whitespace-separated columns\n"
        "  --type T      freq: fractional frequency or any result series (default);\n"
        "                phase: time error (s)\n"
        "  --tau0 S      interval between points, s (default 1)\n"
        "Database (qes replay/run -o FILE.db): one measurement's unflagged blocks, in seq\n"
        "order, as if contiguous (a warning counts those left out inside); tau0 = the\n"
        "block duration n_samples / the run's sample rate.\n"
        "  --measure NAME  the [measure.NAME] section (required)\n"
        "  --harmonic H    of a phasor measurement (default: the lowest)\n"
        "  --run ID        id or unique prefix; needed when several runs hold NAME\n"
        "  --field F       r (default), x, y, phase_rad (unwrapped) for phasor rows;\n"
        "                  value for scalar rows (reversal, steps)\n"
        "\n"
        "  --taus T        octave (m = 1, 2, 4, ...; default), decade (1, 2, 4, 10, 20,\n"
        "                  40, 100, ...) or all; up to m = (N-1)/4, totdev (N-1)/2, for\n"
        "                  N phase points\n"
        "  --confidence P  two-sided coverage: 0 < P < 1, 95%, or 1sigma, 2sigma, 3sigma\n"
        "                  (erf(k/sqrt 2)); default 1sigma = 0.6826895.  Stable32's\n"
        "                  \"68.3 %\" is that value rounded: 0.683 is taken as 1sigma.\n"
        "  --json FILE     also write the rows as JSON; - : JSON on stdout, no table\n"
        "\n"
        "Columns: kind, m, tau_s, n (terms, Stable32's #), alpha (used for the EDF), edf,\n"
        "min_sigma, sigma, max_sigma, noise_id (acf, b1, b1_rn, none).  Deviations are in\n"
        "the unit of the series (tdev: times s).\n"
        "Exit status: 0 success; 1 usage error; 2 input error (missing file, bad line,\n"
        "empty or too short series, unknown measurement or run).\n"
        "Examples:\n"
        "  qes adev y.txt --tau0 42\n"
        "  qes adev PHASE.DAT --type phase --kind oadev,mdev,tdev --json out.json\n"
        "  qes adev results.db --measure fund --kind oadev,hdev\n";

static const struct {
    const char *name;
    enum qes_allan_kind kind;
} kind_names[] = {
        {"adev", QES_ALLAN_ADEV},     {"oadev", QES_ALLAN_OADEV}, {"mdev", QES_ALLAN_MDEV},
        {"tdev", QES_ALLAN_TDEV},     {"hdev", QES_ALLAN_HDEV},   {"ohdev", QES_ALLAN_OHDEV},
        {"totdev", QES_ALLAN_TOTDEV},
};
#define N_KIND_NAMES (sizeof kind_names / sizeof kind_names[0])

static const char *kind_lower(enum qes_allan_kind kind)
{
    for (size_t i = 0; i < N_KIND_NAMES; i++)
        if (kind_names[i].kind == kind)
            return kind_names[i].name;
    return "?";
}

struct adev_opts {
    const char *input;
    enum qes_allan_data type;
    int type_set;
    double tau0_s;
    int tau0_set;
    unsigned long column;
    int column_set;
    enum qes_allan_kind kinds[QES_ALLAN_NKIND];
    size_t n_kinds;
    enum qes_allan_spacing spacing;
    const char *taus;
    double confidence;
    const char *confidence_arg;
    const char *json;
    const char *measure;
    const char *run;
    long harmonic;
    int harmonic_set;
    const char *field;
    int help;
};

/* The series to analyse and what it is. */
struct series {
    double *v;
    size_t n, cap;
    enum qes_allan_data type;
    double tau0_s;
    json_t *desc;    /* the input description for the JSON */
    char label[512]; /* the same in one line, for the table header */
};

static int usage_error(FILE *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(FILE *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qes adev: ", err);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputs("\n(try: qes adev --help)\n", err);
    return ADEV_USAGE;
}

static int input_error(FILE *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int input_error(FILE *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qes adev: ", err);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fputc('\n', err);
    return ADEV_INPUT;
}

static int series_push(struct series *s, double v)
{
    if (s->n == s->cap) {
        const size_t cap = s->cap ? 2 * s->cap : 4096;
        double *nv = realloc(s->v, cap * sizeof *nv);
        if (!nv)
            return QES_ENOMEM;
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
    return 0;
}

/* A JSON number, or null for NaN/inf (JSON has no non-finite numbers). */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* ---- option parsing ------------------------------------------------------------------ */

/* A finite double that fills the whole string. */
static int parse_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && *end == '\0' && isfinite(*v) ? 0 : -1;
}

/* A decimal integer >= 0 (digits only: strtoul would take "-1"). */
static int parse_count(const char *s, unsigned long *v)
{
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return -1;
    errno = 0;
    *v = strtoul(s, NULL, 10);
    return errno ? -1 : 0;
}

static int add_kinds(struct adev_opts *o, const char *list, FILE *err)
{
    char buf[256];
    if (strlen(list) >= sizeof buf)
        return usage_error(err, "--kind %.40s...: too long", list);
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    int any = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        t += strspn(t, " ");
        any = 1;
        if (!strcasecmp(t, "all")) {
            for (size_t i = 0; i < N_KIND_NAMES; i++) {
                char one[16];
                snprintf(one, sizeof one, "%s", kind_names[i].name);
                int st = add_kinds(o, one, err);
                if (st >= 0)
                    return st;
            }
            continue;
        }
        size_t i = 0;
        while (i < N_KIND_NAMES && strcasecmp(t, kind_names[i].name))
            i++;
        if (i == N_KIND_NAMES)
            return usage_error(err,
                               "--kind %s: unknown deviation; expected adev, oadev, mdev, tdev, "
                               "hdev, ohdev, totdev or all",
                               t);
        size_t j = 0;
        while (j < o->n_kinds && o->kinds[j] != kind_names[i].kind)
            j++;
        if (j == o->n_kinds)
            o->kinds[o->n_kinds++] = kind_names[i].kind;
    }
    if (!any)
        return usage_error(err, "--kind \"%s\": expected a list such as oadev,mdev", list);
    return -1;
}

static int parse_confidence(struct adev_opts *o, const char *s, FILE *err)
{
    o->confidence_arg = s;
    if (!strcasecmp(s, "1sigma")) {
        o->confidence = COVER_1SIGMA;
        return -1;
    }
    if (!strcasecmp(s, "2sigma")) {
        o->confidence = COVER_2SIGMA;
        return -1;
    }
    if (!strcasecmp(s, "3sigma")) {
        o->confidence = COVER_3SIGMA;
        return -1;
    }
    char num[64];
    const size_t len = strlen(s);
    const int pct = len > 0 && s[len - 1] == '%';
    if (len >= sizeof num)
        return usage_error(err, "--confidence %.40s...: expected a probability", s);
    snprintf(num, sizeof num, "%.*s", (int)(len - (size_t)pct), s);
    double p;
    if (parse_double(num, &p))
        return usage_error(err,
                           "--confidence %s: expected a probability 0 < P < 1, a percentage "
                           "(95%%), or 1sigma, 2sigma, 3sigma",
                           s);
    if (pct)
        p /= 100.0;
    if (!(p > 0.0 && p < 1.0))
        return usage_error(err, "--confidence %s: the coverage must lie strictly between 0 and 1",
                           s);
    /* Stable32's "0.683" is erf(1/sqrt 2) printed to three digits; its
     * intervals are reproduced with the exact value (0.683 itself moves the
     * bounds by up to 5.6e-4 relative). */
    o->confidence = fabs(p - 0.683) < 1e-12 ? COVER_1SIGMA : p;
    return -1;
}

/* Returns -1 to continue, else an exit status. */
static int parse_args(int argc, char **argv, struct adev_opts *o, FILE *err)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        /* --opt=value as well as --opt value */
        const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%.63s", a);
        }
        static const char *const with_value[] = {
                "--type", "--tau0",    "--column", "--kind",     "--taus",  "--confidence",
                "--json", "--measure", "--run",    "--harmonic", "--field",
        };
        int takes = 0;
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
            takes |= !strcmp(name, with_value[k]);
        if (takes && !val) {
            if (i + 1 >= argc)
                return usage_error(err, "%s needs a value", name);
            val = argv[++i];
        } else if (!takes && val) {
            if (!strcmp(name, "--help"))
                return usage_error(err, "%s takes no value", name);
            return usage_error(err, "unknown option %s", name);
        }
        int st = -1;
        if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
            o->help = 1;
        } else if (!strcmp(name, "--type")) {
            if (!strcmp(val, "freq"))
                o->type = QES_ALLAN_FREQ;
            else if (!strcmp(val, "phase"))
                o->type = QES_ALLAN_PHASE;
            else
                return usage_error(err, "--type %s: expected freq or phase", val);
            o->type_set = 1;
        } else if (!strcmp(name, "--tau0")) {
            if (parse_double(val, &o->tau0_s) || !(o->tau0_s > 0.0))
                return usage_error(err, "--tau0 %s: expected a positive number of seconds", val);
            o->tau0_set = 1;
        } else if (!strcmp(name, "--column")) {
            if (parse_count(val, &o->column) || o->column == 0 || o->column > 1000000)
                return usage_error(err, "--column %s: expected a column number 1, 2, ...", val);
            o->column_set = 1;
        } else if (!strcmp(name, "--kind")) {
            st = add_kinds(o, val, err);
        } else if (!strcmp(name, "--taus")) {
            if (!strcmp(val, "octave"))
                o->spacing = QES_ALLAN_OCTAVE;
            else if (!strcmp(val, "decade"))
                o->spacing = QES_ALLAN_DECADE;
            else if (!strcmp(val, "all"))
                o->spacing = QES_ALLAN_ALL;
            else
                return usage_error(err, "--taus %s: expected octave, decade or all", val);
            o->taus = val;
        } else if (!strcmp(name, "--confidence")) {
            st = parse_confidence(o, val, err);
        } else if (!strcmp(name, "--json")) {
            if (!*val)
                return usage_error(err, "--json needs a file name (or - for stdout)");
            o->json = val;
        } else if (!strcmp(name, "--measure")) {
            if (!*val)
                return usage_error(err, "--measure needs a measurement name");
            o->measure = val;
        } else if (!strcmp(name, "--run")) {
            if (!*val)
                return usage_error(err, "--run needs a run id (or a unique prefix of one)");
            o->run = val;
        } else if (!strcmp(name, "--harmonic")) {
            unsigned long h;
            if (parse_count(val, &h) || h > 1000000)
                return usage_error(err, "--harmonic %s: expected a harmonic number 0, 1, 2, ...",
                                   val);
            o->harmonic = (long)h;
            o->harmonic_set = 1;
        } else if (!strcmp(name, "--field")) {
            static const char *const fields[] = {"r", "x", "y", "phase_rad", "value"};
            size_t k = 0;
            while (k < 5 && strcmp(val, fields[k]))
                k++;
            if (k == 5)
                return usage_error(err, "--field %s: expected r, x, y, phase_rad or value", val);
            o->field = fields[k];
        } else if (a[0] == '-' && a[1]) {
            return usage_error(err, "unknown option %s", a);
        } else if (!o->input) {
            o->input = a;
        } else {
            return usage_error(err, "unexpected argument %s (INPUT is already %s)", a, o->input);
        }
        if (st >= 0)
            return st;
    }
    return -1;
}

/* ---- text input ---------------------------------------------------------------------- */

static int read_text(const struct adev_opts *o, struct series *s, FILE *err)
{
    const int is_stdin = !strcmp(o->input, "-");
    const char *name = is_stdin ? "<stdin>" : o->input;
    FILE *f = is_stdin ? stdin : fopen(o->input, "r");
    if (!f)
        return input_error(err, "%s: cannot open: %s", name, strerror(errno));
    const unsigned long col = o->column_set ? o->column : 1;
    char *line = NULL;
    size_t cap = 0;
    unsigned long lineno = 0;
    int status = ADEV_OK;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *save = NULL, *tok = NULL;
        unsigned long ntok = 0;
        for (char *t = strtok_r(line, " \t\r\n\v\f", &save); t;
             t = strtok_r(NULL, " \t\r\n\v\f", &save))
            if (++ntok == col)
                tok = t;
        if (ntok == 0)
            continue;
        if (!o->column_set && ntok > 1) {
            status = input_error(err,
                                 "%s:%lu: %lu columns where one number was expected; choose "
                                 "one with --column N",
                                 name, lineno, ntok);
            goto out;
        }
        if (!tok) {
            status = input_error(err, "%s:%lu: %lu column%s, no column %lu", name, lineno, ntok,
                                 ntok == 1 ? "" : "s", col);
            goto out;
        }
        double v;
        if (parse_double(tok, &v)) {
            status = input_error(err, "%s:%lu: \"%.40s\"%s is not a finite number", name, lineno,
                                 tok, strlen(tok) > 40 ? "..." : "");
            goto out;
        }
        if (series_push(s, v)) {
            status = input_error(err, "%s: out of memory at line %lu", name, lineno);
            goto out;
        }
    }
    if (ferror(f)) {
        status = input_error(err, "%s: read error after line %lu: %s", name, lineno,
                             strerror(errno));
        goto out;
    }
    if (s->n == 0) {
        status = input_error(err, "%s: no data (%lu lines, only comments or blank)", name, lineno);
        goto out;
    }
    s->type = o->type_set ? o->type : QES_ALLAN_FREQ;
    s->tau0_s = o->tau0_set ? o->tau0_s : 1.0;
    s->desc = json_pack("{s:s, s:s, s:I, s:s, s:f, s:I}", "format", "text", "path", name, "column",
                        (json_int_t)col, "type", s->type == QES_ALLAN_PHASE ? "phase" : "freq",
                        "tau0_s", s->tau0_s, "n", (json_int_t)s->n);
    snprintf(s->label, sizeof s->label, "%s (column %lu): %zu %s points, tau0 = %.17g s", name, col,
             s->n, s->type == QES_ALLAN_PHASE ? "phase" : "frequency", s->tau0_s);
out:
    free(line);
    if (!is_stdin)
        fclose(f);
    return status;
}

/* ---- database input ------------------------------------------------------------------ */

/* Does the file start with the SQLite header?  -1 when it cannot be opened. */
static int is_sqlite(const char *path)
{
    if (!strcmp(path, "-"))
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char head[16];
    const size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    return got == sizeof head && !memcmp(head, "SQLite format 3", 16);
}

struct db {
    sqlite3 *h;
    const char *path;
    FILE *err;
};

static int db_prepare(struct db *d, const char *sql, sqlite3_stmt **st)
{
    if (sqlite3_prepare_v2(d->h, sql, -1, st, NULL) != SQLITE_OK) {
        const char *m = sqlite3_errmsg(d->h);
        if (strstr(m, "no such"))
            return input_error(d->err, "%s: not a qes results database (%s)", d->path, m);
        return input_error(d->err, "%s: %s", d->path, m);
    }
    return -1;
}

static int db_step_error(struct db *d, sqlite3_stmt *st)
{
    int st_rc = input_error(d->err, "%s: %s", d->path, sqlite3_errmsg(d->h));
    sqlite3_finalize(st);
    return st_rc;
}

/* Append the distinct values of a one-column query (optionally bound to one
 * text parameter) to buf as "a, b, c"; "(none)" when empty. */
static void db_list(struct db *d, const char *sql, const char *param, char *buf, size_t len)
{
    sqlite3_stmt *st = NULL;
    size_t pos = 0;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(d->h, sql, -1, &st, NULL) == SQLITE_OK) {
        if (param)
            sqlite3_bind_text(st, 1, param, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW && pos + 1 < len) {
            const char *t = (const char *)sqlite3_column_text(st, 0);
            int w = snprintf(buf + pos, len - pos, "%s%s", pos ? ", " : "", t ? t : "NULL");
            if (w < 0)
                break;
            pos += (size_t)w;
        }
    }
    sqlite3_finalize(st);
    if (pos >= len && len > 4)
        snprintf(buf + len - 4, 4, "...");
    if (!buf[0])
        snprintf(buf, len, "(none)");
}

/* Is a flags column value "no flags"?  NULL and [] are; anything else is. */
static int unflagged(const unsigned char *flags)
{
    if (!flags)
        return 1;
    json_error_t je;
    json_t *j = json_loads((const char *)flags, 0, &je);
    const int ok = j && json_is_array(j) && json_array_size(j) == 0;
    json_decref(j);
    return ok;
}

static int read_db(const struct adev_opts *o, struct series *s, FILE *err)
{
    struct db d = {.path = o->input, .err = err};
    sqlite3_stmt *st = NULL;
    int status;
    char run_id[128] = "", command[64] = "", list[1024];
    if (sqlite3_open_v2(o->input, &d.h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        status = input_error(err, "%s: cannot open the database: %s", o->input,
                             d.h ? sqlite3_errmsg(d.h) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(d.h, 5000);

    /* The run: given (an id or a unique prefix), or the only one holding
     * the measurement. */
    if (o->run) {
        if ((status = db_prepare(&d,
                                 "SELECT id FROM runs WHERE substr(id, 1, length(?1)) = ?1"
                                 " ORDER BY id",
                                 &st)) >= 0)
            goto out;
        sqlite3_bind_text(st, 1, o->run, -1, SQLITE_TRANSIENT);
        int n = 0, rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (n++ == 0)
                snprintf(run_id, sizeof run_id, "%s", (const char *)sqlite3_column_text(st, 0));
        }
        if (rc != SQLITE_DONE) {
            status = db_step_error(&d, st);
            st = NULL;
            goto out;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (n != 1) {
            db_list(&d, "SELECT id FROM runs WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id",
                    n ? o->run : NULL, list, sizeof list);
            if (n == 0)
                db_list(&d, "SELECT id FROM runs ORDER BY t_start, id", NULL, list, sizeof list);
            status = input_error(err, "%s: --run %s: %s (runs: %s)", o->input, o->run,
                                 n ? "matches several runs" : "no such run", list);
            goto out;
        }
    }
    if ((status = db_prepare(
                 &d,
                 "SELECT b.run, COUNT(DISTINCT b.seq), r.command, r.t_start FROM blocks b"
                 " LEFT JOIN runs r ON r.id = b.run WHERE b.measure = ?1"
                 " AND (?2 IS NULL OR b.run = ?2) GROUP BY b.run"
                 " ORDER BY r.t_start, b.run",
                 &st)) >= 0)
        goto out;
    sqlite3_bind_text(st, 1, o->measure, -1, SQLITE_TRANSIENT);
    if (o->run)
        sqlite3_bind_text(st, 2, run_id, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, 2);
    {
        int n = 0, rc;
        size_t pos = 0;
        list[0] = '\0';
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *id = (const char *)sqlite3_column_text(st, 0);
            const char *cmd = (const char *)sqlite3_column_text(st, 2);
            const char *t0 = (const char *)sqlite3_column_text(st, 3);
            if (n++ == 0) {
                snprintf(run_id, sizeof run_id, "%s", id ? id : "");
                snprintf(command, sizeof command, "%s", cmd ? cmd : "");
            }
            if (pos + 1 < sizeof list) {
                int w = snprintf(list + pos, sizeof list - pos, "%s%s (%s, %s, %lld blocks)",
                                 pos ? "; " : "", id ? id : "NULL", cmd ? cmd : "?",
                                 t0 ? t0 : "no start time", (long long)sqlite3_column_int64(st, 1));
                pos += w > 0 ? (size_t)w : 0;
            }
        }
        if (rc != SQLITE_DONE) {
            status = db_step_error(&d, st);
            st = NULL;
            goto out;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (n == 0) {
            char meas[1024];
            db_list(&d,
                    o->run ? "SELECT DISTINCT measure FROM blocks WHERE run = ?1 ORDER BY measure"
                           : "SELECT DISTINCT measure FROM blocks ORDER BY measure",
                    o->run ? run_id : NULL, meas, sizeof meas);
            if (o->run)
                status = input_error(err,
                                     "%s: run %s has no measurement \"%s\" (its measurements: %s)",
                                     o->input, run_id, o->measure, meas);
            else
                status = input_error(err, "%s: no measurement \"%s\" (measurements: %s)", o->input,
                                     o->measure, meas);
            goto out;
        }
        if (n > 1) {
            status = input_error(err,
                                 "%s: measurement \"%s\" comes from %d runs: %s; choose one with "
                                 "--run ID",
                                 o->input, o->measure, n, list);
            goto out;
        }
    }

    /* The harmonic and the kind of rows. */
    if ((status = db_prepare(&d,
                             "SELECT harmonic, kind, COUNT(*) FROM blocks WHERE run = ?1"
                             " AND measure = ?2 GROUP BY harmonic, kind ORDER BY harmonic",
                             &st)) >= 0)
        goto out;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, o->measure, -1, SQLITE_TRANSIENT);
    long harmonic = -1;
    int several = 0;
    char kind[16] = "", harms[512] = "";
    {
        int rc, n = 0;
        size_t pos = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const long h = (long)sqlite3_column_int64(st, 0);
            const char *k = (const char *)sqlite3_column_text(st, 1);
            if (pos + 1 < sizeof harms) {
                int w = snprintf(harms + pos, sizeof harms - pos, "%s%ld", n ? ", " : "", h);
                pos += w > 0 ? (size_t)w : 0;
            }
            if ((n++ == 0 && !o->harmonic_set) || (o->harmonic_set && h == o->harmonic)) {
                harmonic = h;
                snprintf(kind, sizeof kind, "%s", k ? k : "");
            }
        }
        if (rc != SQLITE_DONE) {
            status = db_step_error(&d, st);
            st = NULL;
            goto out;
        }
        sqlite3_finalize(st);
        st = NULL;
        if (harmonic < 0) {
            status = input_error(err,
                                 "%s: --harmonic %ld: measurement \"%s\" (run %s) has no such "
                                 "harmonic (harmonics: %s)",
                                 o->input, o->harmonic, o->measure, run_id, harms);
            goto out;
        }
        several = n > 1;
    }
    const int scalar = !strcmp(kind, "scalar");
    const char *field = o->field ? o->field : scalar ? "value" : "r";
    if (scalar != !strcmp(field, "value")) {
        status = input_error(
                err, "%s: --field %s: measurement \"%s\" is a %s measurement; its field%s %s",
                o->input, field, o->measure, scalar ? "scalar" : "phasor", scalar ? " is" : "s are",
                scalar ? "value" : "r, x, y, phase_rad");
        goto out;
    }
    if (!o->harmonic_set && several)
        fprintf(err,
                "qes adev: measurement \"%s\" has harmonics %s; using harmonic %ld (choose with "
                "--harmonic H)\n",
                o->measure, harms, harmonic);

    /* The block duration comes from the run's sample rate. */
    if ((status = db_prepare(&d, "SELECT sample_rate_hz FROM runs WHERE id = ?1", &st)) >= 0)
        goto out;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_TRANSIENT);
    double fs = NAN;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        fs = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (!(fs > 0.0) || !isfinite(fs)) {
        status = input_error(err,
                             "%s: run %s has no sample_rate_hz in table runs: the block duration "
                             "(tau0) is unknown",
                             o->input, run_id);
        goto out;
    }

    /* The series.  field is one of the whitelisted column names. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT seq, n_samples, %s, flags, unit, channel FROM blocks WHERE run = ?1"
             " AND measure = ?2 AND harmonic = ?3 ORDER BY seq",
             field);
    if ((status = db_prepare(&d, sql, &st)) >= 0)
        goto out;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, o->measure, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, harmonic);
    uint64_t n_excluded = 0, ns_min = UINT64_MAX, ns_max = 0;
    int64_t first_seq = -1, last_seq = -1;
    double ns_sum = 0.0;
    char unit[64] = "", channel[128] = "";
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const int64_t seq = sqlite3_column_int64(st, 0);
        if (!unflagged(sqlite3_column_text(st, 3))) {
            n_excluded++;
            continue;
        }
        if (sqlite3_column_type(st, 2) == SQLITE_NULL) {
            status = input_error(
                    err, "%s: run %s, measurement \"%s\", harmonic %ld, seq %lld: %s is NULL",
                    o->input, run_id, o->measure, harmonic, (long long)seq, field);
            goto out;
        }
        const int64_t ns = sqlite3_column_int64(st, 1);
        if (sqlite3_column_type(st, 1) == SQLITE_NULL || ns <= 0) {
            status = input_error(err,
                                 "%s: run %s, measurement \"%s\", seq %lld: no n_samples: the "
                                 "block duration is unknown",
                                 o->input, run_id, o->measure, (long long)seq);
            goto out;
        }
        if (s->n == 0) {
            const char *u = (const char *)sqlite3_column_text(st, 4);
            const char *c = (const char *)sqlite3_column_text(st, 5);
            snprintf(unit, sizeof unit, "%s", u ? u : "");
            snprintf(channel, sizeof channel, "%s", c ? c : "");
            first_seq = seq;
        }
        last_seq = seq;
        ns_min = (uint64_t)ns < ns_min ? (uint64_t)ns : ns_min;
        ns_max = (uint64_t)ns > ns_max ? (uint64_t)ns : ns_max;
        ns_sum += (double)ns;
        if (series_push(s, sqlite3_column_double(st, 2))) {
            status = input_error(err, "%s: out of memory", o->input);
            goto out;
        }
    }
    if (rc != SQLITE_DONE) {
        status = db_step_error(&d, st);
        st = NULL;
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (s->n == 0) {
        status =
                input_error(err,
                            "%s: run %s, measurement \"%s\", harmonic %ld: no unflagged blocks "
                            "(%llu flagged)",
                            o->input, run_id, o->measure, harmonic, (unsigned long long)n_excluded);
        goto out;
    }
    const int is_phase = !strcmp(field, "phase_rad");
    if (is_phase) {
        /* Unwrap: a phase near +-pi must not look like a 2 pi jump. */
        double off = 0.0;
        for (size_t i = 1; i < s->n; i++) {
            const double raw = s->v[i];
            off -= 2.0 * PI * nearbyint((raw + off - s->v[i - 1]) / (2.0 * PI));
            s->v[i] = raw + off;
        }
    }
    const uint64_t inside = (uint64_t)(last_seq - first_seq + 1) - s->n;
    if (inside)
        fprintf(err,
                "qes adev: warning: %s: %llu block%s between seq %lld and %lld %s flagged or "
                "missing; the %zu blocks used are treated as contiguous\n",
                o->input, (unsigned long long)inside, inside == 1 ? "" : "s", (long long)first_seq,
                (long long)last_seq, inside == 1 ? "is" : "are", s->n);
    const double ns_mean = ns_sum / (double)s->n;
    if (ns_min != ns_max)
        fprintf(err,
                "qes adev: warning: %s: block lengths differ (%llu to %llu samples); tau0 is "
                "their mean, %.17g samples\n",
                o->input, (unsigned long long)ns_min, (unsigned long long)ns_max, ns_mean);
    s->type = QES_ALLAN_FREQ;
    s->tau0_s = ns_mean / fs;
    if (is_phase)
        snprintf(unit, sizeof unit, "rad");
    s->desc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:f, s:f, s:f, s:I, "
                        "s:I, s:I, s:I, s:I, s:b}",
                        "format", "sqlite", "path", o->input, "run", run_id, "command", command,
                        "measure", o->measure, "channel", channel, "harmonic", (json_int_t)harmonic,
                        "row_kind", scalar ? "scalar" : "phasor", "field", field, "unit", unit,
                        "sample_rate_hz", fs, "n_samples", ns_mean, "tau0_s", s->tau0_s, "n",
                        (json_int_t)s->n, "n_excluded", (json_int_t)n_excluded, "n_inside_gaps",
                        (json_int_t)inside, "first_seq", (json_int_t)first_seq, "last_seq",
                        (json_int_t)last_seq, "phase_unwrapped", is_phase);
    if (s->desc)
        json_object_set_new(s->desc, "type", json_string("freq"));
    snprintf(s->label, sizeof s->label,
             "%s: run %s, measurement %s, harmonic %ld, %s (%s): %zu blocks (%llu flagged left "
             "out), tau0 = %.17g s",
             o->input, run_id, o->measure, harmonic, field, unit[0] ? unit : "no unit", s->n,
             (unsigned long long)n_excluded, s->tau0_s);
    status = ADEV_OK;
out:
    sqlite3_finalize(st);
    sqlite3_close(d.h);
    return status;
}

/* ---- computing and printing ---------------------------------------------------------- */

static const char *method_name(enum qes_noise_method m)
{
    switch (m) {
    case QES_NOISE_ACF:
        return "acf";
    case QES_NOISE_B1:
        return "b1";
    case QES_NOISE_B1_RN:
        return "b1_rn";
    default:
        return "none";
    }
}

/* Fewest phase points that give one averaging factor for a kind. */
static size_t min_points(enum qes_allan_kind kind)
{
    size_t n = 1;
    while (qes_allan_m_max(kind, n) == 0)
        n++;
    return n;
}

static void print_row(FILE *f, enum qes_allan_kind kind, const struct qes_allan_point *p)
{
    char edf[32], lo[32], hi[32];
    if (isfinite(p->edf)) {
        snprintf(edf, sizeof edf, "%.3f", p->edf);
        snprintf(lo, sizeof lo, "%.6e", p->lo);
        snprintf(hi, sizeof hi, "%.6e", p->hi);
    } else {
        snprintf(edf, sizeof edf, "-");
        snprintf(lo, sizeof lo, "-");
        snprintf(hi, sizeof hi, "-");
    }
    fprintf(f, "%-6s %8zu %13.6g %9zu %5d %10s %13s %13.6e %13s  %s\n", kind_lower(kind), p->m,
            p->tau_s, p->n_terms, p->alpha_used, edf, lo, p->dev, hi, method_name(p->noise.method));
}

static json_t *row_json(enum qes_allan_kind kind, const struct qes_allan_point *p)
{
    json_t *r = json_object();
    if (!r)
        return NULL;
    json_object_set_new(r, "kind", json_string(kind_lower(kind)));
    json_object_set_new(r, "m", json_integer((json_int_t)p->m));
    json_object_set_new(r, "tau_s", jnum(p->tau_s));
    json_object_set_new(r, "n", json_integer((json_int_t)p->n_terms));
    json_object_set_new(r, "alpha", json_integer(p->alpha_used));
    json_object_set_new(r, "alpha_method", json_string(method_name(p->noise.method)));
    json_object_set_new(r, "alpha_float", jnum(p->noise.alpha_float));
    json_object_set_new(r, "edf", jnum(p->edf));
    json_object_set_new(r, "min_sigma", jnum(p->lo));
    json_object_set_new(r, "sigma", jnum(p->dev));
    json_object_set_new(r, "max_sigma", jnum(p->hi));
    return r;
}

static int run_analysis(const struct adev_opts *o, struct series *s, FILE *out, FILE *err)
{
    const size_t n_x = s->type == QES_ALLAN_FREQ ? s->n + 1 : s->n;
    const int table = !(o->json && !strcmp(o->json, "-"));
    int status = ADEV_INPUT;
    double *work = NULL;
    size_t *m_list = NULL;
    struct qes_allan_point *pts = NULL;
    json_t *root = NULL, *rows = NULL;
    FILE *jf = NULL;
    int created = 0;

    for (size_t k = 0; k < o->n_kinds; k++) {
        if (qes_allan_m_max(o->kinds[k], n_x) == 0) {
            const size_t need = min_points(o->kinds[k]);
            return input_error(
                    err, "%s: %zu %s points are too few for %s: it needs at least %zu %s", o->input,
                    s->n, s->type == QES_ALLAN_PHASE ? "phase" : "frequency",
                    kind_lower(o->kinds[k]), s->type == QES_ALLAN_PHASE ? need : need - 1,
                    s->type == QES_ALLAN_PHASE ? "phase points" : "frequency values");
        }
    }
    work = malloc(qes_allan_work_len(s->n) * sizeof *work);
    const size_t m_cap = qes_allan_m_list(o->spacing, n_x, NULL, 0);
    m_list = malloc((m_cap ? m_cap : 1) * sizeof *m_list);
    pts = malloc((m_cap ? m_cap : 1) * sizeof *pts);
    /* Open the JSON file first: a bad path fails before any output. */
    if (o->json && table && !(jf = fopen(o->json, "w"))) {
        input_error(err, "--json %s: cannot create: %s", o->json, strerror(errno));
        goto out;
    }
    created = jf != NULL;
    root = json_object();
    rows = json_array();
    if (!work || !m_list || !pts || !root || !rows) {
        input_error(err, "%s: out of memory for %zu points", s->label, s->n);
        goto out;
    }
    const int one_sigma = o->confidence == COVER_1SIGMA;
    if (table) {
        fprintf(out, "# qes adev: %s\n", s->label);
        fprintf(out,
                "# confidence %.7g%s: chi-squared interval with the equivalent degrees of "
                "freedom at the noise type alpha (S_y ~ f^alpha)\n",
                o->confidence, one_sigma ? " (1 sigma)" : "");
        fprintf(out, "%-6s %8s %13s %9s %5s %10s %13s %13s %13s  %s\n", "kind", "m", "tau_s", "n",
                "alpha", "edf", "min_sigma", "sigma", "max_sigma", "noise_id");
    }
    for (size_t k = 0; k < o->n_kinds; k++) {
        const enum qes_allan_kind kind = o->kinds[k];
        const size_t n_m = qes_allan_m_list(o->spacing, qes_allan_m_max(kind, n_x), m_list, m_cap);
        int rc = qes_allan_compute(kind, s->type, s->v, s->n, s->tau0_s, m_list, n_m, o->confidence,
                                   work, pts);
        if (rc) {
            input_error(err, "%s: %s: %s", s->label, kind_lower(kind), qes_strerror(rc));
            goto out;
        }
        for (size_t i = 0; i < n_m; i++) {
            if (table)
                print_row(out, kind, &pts[i]);
            if (json_array_append_new(rows, row_json(kind, &pts[i]))) {
                input_error(err, "out of memory");
                goto out;
            }
        }
    }
    if (o->json) {
        json_t *kinds = json_array();
        for (size_t k = 0; k < o->n_kinds; k++)
            json_array_append_new(kinds, json_string(kind_lower(o->kinds[k])));
        json_object_set_new(root, "command", json_string("adev"));
        json_object_set_new(root, "version", json_string(QES_VERSION));
        json_object_set_new(root, "input", json_incref(s->desc));
        json_object_set_new(root, "kinds", kinds);
        json_object_set_new(root, "taus", json_string(o->taus));
        json_object_set_new(root, "confidence", json_real(o->confidence));
        json_object_set_new(root, "confidence_requested",
                            json_string(o->confidence_arg ? o->confidence_arg : "1sigma"));
        json_object_set_new(root, "results", json_incref(rows));
        const size_t flags = JSON_INDENT(1) | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER;
        if (!table) {
            if (json_dumpf(root, out, flags) || fputc('\n', out) == EOF) {
                input_error(err, "cannot write the JSON to stdout");
                goto out;
            }
        } else {
            int bad = json_dumpf(root, jf, flags) || fputc('\n', jf) == EOF;
            bad |= fclose(jf) != 0;
            jf = NULL;
            if (bad) {
                input_error(err, "--json %s: write error: %s", o->json, strerror(errno));
                goto out;
            }
        }
    }
    if (fflush(out)) {
        input_error(err, "cannot write the output: %s", strerror(errno));
        goto out;
    }
    status = ADEV_OK;
out:
    if (jf)
        fclose(jf);
    /* no half-written JSON left behind */
    if (status != ADEV_OK && o->json && table && created)
        remove(o->json);
    json_decref(rows);
    json_decref(root);
    free(pts);
    free(m_list);
    free(work);
    return status;
}

int qes_cmd_adev(int argc, char **argv, FILE *out, FILE *err)
{
    struct adev_opts o = {
            .type = QES_ALLAN_FREQ,
            .spacing = QES_ALLAN_OCTAVE,
            .taus = "octave",
            .confidence = COVER_1SIGMA,
    };
    int st = parse_args(argc, argv, &o, err);
    if (st >= 0)
        return st;
    if (o.help) {
        fputs(qes_usage_adev, out);
        return ADEV_OK;
    }
    if (!o.input)
        return usage_error(err, "missing INPUT (a text file of numbers, or a results .db)");
    if (o.n_kinds == 0)
        o.kinds[o.n_kinds++] = QES_ALLAN_OADEV;
    const int db = is_sqlite(o.input);
    if (db < 0)
        return input_error(err, "%s: cannot open: %s", o.input, strerror(errno));
    if (db) {
        if (!o.measure) {
            char meas[1024] = "(none)";
            struct db d = {.path = o.input, .err = err};
            if (sqlite3_open_v2(o.input, &d.h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
                db_list(&d, "SELECT DISTINCT measure FROM blocks ORDER BY measure", NULL, meas,
                        sizeof meas);
            sqlite3_close(d.h);
            return usage_error(err,
                               "%s is a results database: choose the series with --measure NAME "
                               "(measurements: %s)",
                               o.input, meas);
        }
        const char *text_only = o.type_set     ? "--type"
                                : o.tau0_set   ? "--tau0"
                                : o.column_set ? "--column"
                                               : NULL;
        if (text_only)
            return usage_error(err,
                               "%s applies to text input; %s is a results database (block "
                               "results are a frequency-like series with tau0 = the block "
                               "duration)",
                               text_only, o.input);
    } else {
        const char *db_only = o.measure        ? "--measure"
                              : o.run          ? "--run"
                              : o.harmonic_set ? "--harmonic"
                              : o.field        ? "--field"
                                               : NULL;
        if (db_only)
            return usage_error(err, "%s applies to a results database; %s is read as text", db_only,
                               o.input);
    }
    struct series s = {0};
    st = db ? read_db(&o, &s, err) : read_text(&o, &s, err);
    if (st == ADEV_OK) {
        if (!s.desc)
            st = input_error(err,
                             "%s: cannot describe the input in JSON (a name that is not "
                             "UTF-8?)",
                             o.input);
        else
            st = run_analysis(&o, &s, out, err);
    }
    json_decref(s.desc);
    free(s.v);
    return st;
}
