/*
 * JSON text of records (shared by the sinks) and the JSON Lines sink.
 *
 * Numbers: %.17g, which round-trips every double.  qes never calls
 * setlocale(), so printf runs in the C locale; should a program embedding the
 * library switch LC_NUMERIC, fmt_num() still maps the radix character back to
 * '.', so the output never depends on the locale.  Non-finite values are
 * written as null (JSON has no NaN or infinity).
 *
 * Strings: '"' and '\\' escaped, control characters as \n \r \t \b \f or
 * \u00XX, valid UTF-8 passed through, and each byte of an invalid UTF-8
 * sequence replaced by \ufffd so that every line stays valid JSON.
 *
 * The JSON Lines sink writes one record per line, buffered; every write is
 * checked and the first failure is sticky (later calls return it again).  On
 * close the run_end record (record.h) is written as the last line, then the
 * stream is flushed and, for a regular file, fsync()ed together with its
 * directory.  Output depends only on the records: the host clock is never
 * read, so identical input gives byte-identical files.
 */
#include "pipeline/rec_int.h"
#include "pipeline/record.h"
#include "common/err.h"
#include "common/utctime.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- formatting helpers ---------------------------------------------------- */

/* A failed stdio call leaves its cause in errno. */
static int io_code(int e)
{
#ifdef EDQUOT
    if (e == EDQUOT)
        return QES_ENOSPC;
#endif
    return e == ENOSPC ? QES_ENOSPC : QES_EIO;
}

/* %.17g of a finite v into buf (>= 32 bytes); returns the length. */
static size_t fmt_num(char *buf, size_t len, double v)
{
    int n = snprintf(buf, len, "%.17g", v);
    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0';
        return 0;
    }
    /* In the C locale only these characters occur; anything else is a
     * locale's radix character (possibly multibyte): make it '.'. */
    for (size_t i = 0; buf[i]; i++) {
        if (!strchr("0123456789+-e", buf[i])) {
            size_t j = i;
            while (buf[j] && !strchr("0123456789+-e", buf[j]))
                j++;
            buf[i] = '.';
            memmove(buf + i + 1, buf + j, (size_t)n - j + 1);
            n -= (int)(j - i - 1);
            break;
        }
    }
    return (size_t)n;
}

static int put_s(FILE *f, const char *s)
{
    return fputs(s, f) < 0 ? -1 : 0;
}

static int put_num(FILE *f, double v)
{
    if (!isfinite(v))
        return put_s(f, "null");
    char buf[40];
    fmt_num(buf, sizeof buf, v);
    return put_s(f, buf);
}

static int put_u64(FILE *f, uint64_t v)
{
    return fprintf(f, "%" PRIu64, v) < 0 ? -1 : 0;
}

/* A JSON string of n bytes at s. */
static int put_jstr_n(FILE *f, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n, *run = p;
    if (putc('"', f) == EOF)
        return -1;
    while (p < end) {
        unsigned c = *p;
        size_t ulen = 0;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0x80 && (ulen = qes__utf8_len(p, end)) > 0) {
            p += ulen;
            continue;
        }
        if (p > run && fwrite(run, 1, (size_t)(p - run), f) != (size_t)(p - run))
            return -1;
        char esc[8];
        switch (c) {
        case '"':
            strcpy(esc, "\\\"");
            break;
        case '\\':
            strcpy(esc, "\\\\");
            break;
        case '\n':
            strcpy(esc, "\\n");
            break;
        case '\r':
            strcpy(esc, "\\r");
            break;
        case '\t':
            strcpy(esc, "\\t");
            break;
        case '\b':
            strcpy(esc, "\\b");
            break;
        case '\f':
            strcpy(esc, "\\f");
            break;
        default:
            if (c < 0x20)
                snprintf(esc, sizeof esc, "\\u%04x", c);
            else
                strcpy(esc, "\\ufffd"); /* a byte of invalid UTF-8 */
        }
        if (put_s(f, esc))
            return -1;
        run = ++p;
    }
    if (p > run && fwrite(run, 1, (size_t)(p - run), f) != (size_t)(p - run))
        return -1;
    return putc('"', f) == EOF ? -1 : 0;
}

/* A JSON string, or null for NULL. */
static int put_jstr(FILE *f, const char *s)
{
    return s ? put_jstr_n(f, s, strlen(s)) : put_s(f, "null");
}

/* `,"key":` */
static int put_key(FILE *f, const char *key)
{
    return fprintf(f, ",\"%s\":", key) < 0 ? -1 : 0;
}

static int put_utc(FILE *f, int64_t ns)
{
    char t[QES_UTC_LEN];
    qes_utc_format(ns, t);
    return putc('"', f) == EOF || put_s(f, t) || putc('"', f) == EOF ? -1 : 0;
}

/* The run id (char[37], NUL-terminated within its array). */
static int put_id(FILE *f, const char id[37])
{
    return put_jstr_n(f, id, strnlen(id, 37));
}

/* ---- raw JSON (the input description) --------------------------------------- */

/*
 * Check that text is exactly one JSON value (RFC 8259) and, when f is not
 * NULL, write it without the whitespace outside strings, so that a pretty-
 * printed input description still gives one record per line.  Returns the
 * position after the value, or NULL when the syntax is wrong.  depth bounds
 * the nesting (and the recursion).
 */
static const char *raw_value(FILE *f, const char *p, int depth, int *werr);

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static void raw_put(FILE *f, const char *s, size_t n, int *werr)
{
    if (f && !*werr && fwrite(s, 1, n, f) != n)
        *werr = 1;
}

static const char *raw_string(FILE *f, const char *p, int *werr)
{
    const char *start = p++;
    for (;;) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c < 0x20) /* includes the terminating NUL */
            return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!p[i] || !strchr("0123456789abcdefABCDEF", p[i]))
                        return NULL;
                p += 5;
            } else if (*p && strchr("\"\\/bfnrt", *p)) {
                p++;
            } else
                return NULL;
        } else if (c >= 0x80) {
            size_t n = qes__utf8_len((const unsigned char *)p,
                                     (const unsigned char *)p + strnlen(p, 4));
            if (!n)
                return NULL;
            p += n;
        } else
            p++;
    }
    p++;
    raw_put(f, start, (size_t)(p - start), werr);
    return p;
}

static const char *raw_number(FILE *f, const char *p, int *werr)
{
    const char *start = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    raw_put(f, start, (size_t)(p - start), werr);
    return p;
}

static const char *raw_container(FILE *f, const char *p, int depth, int *werr)
{
    char close = *p == '{' ? '}' : ']';
    int object = *p == '{';
    raw_put(f, p, 1, werr);
    p = skip_ws(p + 1);
    if (*p == close) {
        raw_put(f, p, 1, werr);
        return p + 1;
    }
    for (;;) {
        if (object) {
            if (*p != '"' || !(p = raw_string(f, p, werr)))
                return NULL;
            p = skip_ws(p);
            if (*p != ':')
                return NULL;
            raw_put(f, ":", 1, werr);
            p = skip_ws(p + 1);
        }
        if (!(p = raw_value(f, p, depth - 1, werr)))
            return NULL;
        p = skip_ws(p);
        if (*p == close) {
            raw_put(f, p, 1, werr);
            return p + 1;
        }
        if (*p != ',')
            return NULL;
        raw_put(f, ",", 1, werr);
        p = skip_ws(p + 1);
    }
}

static const char *raw_value(FILE *f, const char *p, int depth, int *werr)
{
    if (depth <= 0)
        return NULL;
    switch (*p) {
    case '{':
    case '[':
        return raw_container(f, p, depth, werr);
    case '"':
        return raw_string(f, p, werr);
    case 't':
    case 'f':
    case 'n': {
        static const char *const lit[] = {"true", "false", "null"};
        for (size_t i = 0; i < 3; i++) {
            size_t n = strlen(lit[i]);
            if (!strncmp(p, lit[i], n)) {
                raw_put(f, p, n, werr);
                return p + n;
            }
        }
        return NULL;
    }
    default:
        return raw_number(f, p, werr);
    }
}

/* 0 when text is one JSON value (surrounding whitespace allowed), else -1. */
static int raw_json(FILE *f, const char *text, int *werr)
{
    const char *p = raw_value(f, skip_ws(text), 64, werr);
    return p && *skip_ws(p) == '\0' ? 0 : -1;
}

/* ---- public record formatters ----------------------------------------------- */

void qes_json_num(FILE *f, double v)
{
    /* A failure stays in the stream's error indicator (ferror). */
    (void)put_num(f, v);
}

size_t qes_flags_json(unsigned flags, char *buf, size_t len)
{
    static const char *const names[] = {
#define QES__FLAG_NAME(name, bit, str) [bit] = str,
            QES_FLAG_MAP(QES__FLAG_NAME)
#undef QES__FLAG_NAME
    };
    const size_t n_names = sizeof names / sizeof names[0];
    size_t pos = 0;
    /* Append like snprintf: count everything, store what fits. */
#define QES__APPEND(text)        \
    do {                         \
        const char *t_ = (text); \
        for (; *t_; t_++, pos++) \
            if (pos + 1 < len)   \
                buf[pos] = *t_;  \
    } while (0)
    QES__APPEND("[");
    int first = 1;
    for (unsigned bit = 0; bit < sizeof flags * 8; bit++) {
        if (!(flags & (1u << bit)))
            continue;
        if (!first)
            QES__APPEND(",");
        first = 0;
        QES__APPEND("\"");
        if (bit < n_names && names[bit]) {
            QES__APPEND(names[bit]);
        } else {
            /* A bit without a name is a programming error, but it must not
             * vanish from the record. */
            char tmp[16];
            snprintf(tmp, sizeof tmp, "bit%u", bit);
            QES__APPEND(tmp);
        }
        QES__APPEND("\"");
    }
    QES__APPEND("]");
#undef QES__APPEND
    if (len)
        buf[pos < len ? pos : len - 1] = '\0';
    return pos;
}

static int put_flags(FILE *f, unsigned flags)
{
    char buf[256];
    size_t n = qes_flags_json(flags, buf, sizeof buf);
    if (n >= sizeof buf)
        return -1;
    return put_s(f, buf);
}

/* The budget array; the typeA term carries its rule when one is given. */
static int put_budget(FILE *f, const struct qes_budget_term *terms, size_t n, const char *rule)
{
    if (putc('[', f) == EOF)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct qes_budget_term *t = &terms[i];
        if ((i && putc(',', f) == EOF) || put_s(f, "{\"name\":") || put_jstr(f, t->name) ||
            put_key(f, "u") || put_num(f, t->u) || put_key(f, "dof") || put_num(f, t->dof))
            return -1;
        if (rule && rule[0] && t->name && !strcmp(t->name, "typeA") &&
            (put_key(f, "rule") || put_jstr(f, rule)))
            return -1;
        if (putc('}', f) == EOF)
            return -1;
    }
    return putc(']', f) == EOF ? -1 : 0;
}

/* A known kind, and a budget that fits its array. */
static int summary_valid(const struct qes_summary_rec *s)
{
    if (s->kind == QES_REC_PHASOR)
        return s->s.n_budget <= QES_BUDGET_MAX;
    if (s->kind == QES_REC_SCALAR)
        return s->v.n_budget <= QES_BUDGET_MAX;
    return 0;
}

/* Common end of the formatters: a failed write (seen by a return value or by
 * the stream's error indicator) becomes QES_ENOSPC / QES_EIO. */
static int finish(FILE *f, int failed)
{
    if (failed || ferror(f))
        return io_code(errno);
    return 0;
}

/*
 * Block and summary records.  The common head (type, run, measure, channel)
 * and tail (unit, flags) are shared; what lies between depends on the kind:
 * phasor records carry harmonic, freq_hz, x, y, r, phase_rad (and, for
 * blocks, enbw_hz and the quality figures), scalar records value and u.  The
 * fields of the other kind are ignored, so a scalar record never shows a
 * harmonic or a phasor.
 */
static int put_head(FILE *f, const char *type, const struct qes_run_rec *run, const char *measure,
                    const char *channel)
{
    return put_s(f, "{\"type\":\"") || put_s(f, type) || put_s(f, "\",\"run\":") ||
           put_id(f, run->id) || put_key(f, "measure") || put_jstr(f, measure) ||
           put_key(f, "channel") || put_jstr(f, channel);
}

/* The quality figures, only when at least one was computed. */
static int put_quality(FILE *f, const struct qes_block_rec *b)
{
    if (!isfinite(b->thd) && !isfinite(b->sinad_db) && !isfinite(b->sfdr_db))
        return 0;
    return put_key(f, "thd") || put_num(f, b->thd) || put_key(f, "sinad_db") ||
           put_num(f, b->sinad_db) || put_key(f, "sfdr_db") || put_num(f, b->sfdr_db);
}

int qes_block_json(FILE *f, const struct qes_run_rec *run, const struct qes_block_rec *b)
{
    if (!f || !run || !b || (b->kind != QES_REC_PHASOR && b->kind != QES_REC_SCALAR))
        return QES_EINVAL;
    int failed = put_head(f, "block", run, b->measure, b->channel);
    if (!failed && b->kind == QES_REC_PHASOR)
        failed = put_key(f, "harmonic") || put_u64(f, b->harmonic);
    failed = failed || put_key(f, "seq") || put_u64(f, b->seq) || put_key(f, "sample_start") ||
             put_u64(f, b->sample_start) || put_key(f, "n_samples") || put_u64(f, b->n_samples) ||
             put_key(f, "t") || put_utc(f, b->t_ns);
    if (!failed && b->kind == QES_REC_PHASOR)
        failed = put_key(f, "freq_hz") || put_num(f, b->freq_hz) || put_key(f, "x") ||
                 put_num(f, b->x) || put_key(f, "y") || put_num(f, b->y) || put_key(f, "r") ||
                 put_num(f, b->r) || put_key(f, "phase_rad") || put_num(f, b->phase_rad) ||
                 put_key(f, "enbw_hz") || put_num(f, b->enbw_hz) || put_quality(f, b);
    else if (!failed)
        failed = put_key(f, "value") || put_num(f, b->value) || put_key(f, "u") || put_num(f, b->u);
    failed = failed || put_key(f, "unit") || put_jstr(f, b->unit) || put_key(f, "flags") ||
             put_flags(f, b->flags) || putc('}', f) == EOF;
    return finish(f, failed);
}

/* ,"mc":{...} when a Monte Carlo check was run (GUM Supplement 1). */
static int put_mc(FILE *f, uint64_t trials, double u, double lo, double hi)
{
    if (!trials)
        return 0;
    return put_key(f, "mc") || putc('{', f) == EOF || put_s(f, "\"trials\":") ||
           put_u64(f, trials) || put_key(f, "u") || put_num(f, u) || put_key(f, "lo") ||
           put_num(f, lo) || put_key(f, "hi") || put_num(f, hi) || putc('}', f) == EOF;
}

static int summary_phasor(FILE *f, const struct qes_summary_rec *s)
{
    const struct qes_phasor_summary *p = &s->s;
    return put_key(f, "harmonic") || put_u64(f, s->harmonic) || put_key(f, "seq") ||
           put_u64(f, s->seq) || put_key(f, "n_blocks") || put_u64(f, p->n) ||
           put_key(f, "n_excluded") || put_u64(f, s->n_excluded) || put_key(f, "freq_hz") ||
           put_num(f, s->freq_hz) || put_key(f, "x") || put_num(f, p->x) || put_key(f, "y") ||
           put_num(f, p->y) || put_key(f, "r") || put_num(f, p->r) || put_key(f, "phase_rad") ||
           put_num(f, p->phase_rad) || put_key(f, "unit") || put_jstr(f, s->unit) ||
           put_key(f, "u_x") || put_num(f, p->u_x) || put_key(f, "u_y") || put_num(f, p->u_y) ||
           put_key(f, "u_r") || put_num(f, p->u_r) || put_key(f, "u_phase_rad") ||
           put_num(f, p->u_phase_rad) || put_key(f, "dof") || put_num(f, p->dof) ||
           put_key(f, "k") || put_num(f, p->k) || put_key(f, "U_r") || put_num(f, p->U_r) ||
           put_key(f, "coverage") || put_num(f, p->coverage) || put_key(f, "budget") ||
           put_budget(f, p->budget, p->n_budget, p->typeA_rule) ||
           put_mc(f, p->mc_trials, p->mc_u, p->mc_lo, p->mc_hi);
}

static int summary_scalar(FILE *f, const struct qes_summary_rec *s)
{
    const struct qes_scalar_summary *v = &s->v;
    return put_key(f, "seq") || put_u64(f, s->seq) || put_key(f, "n_blocks") || put_u64(f, v->n) ||
           put_key(f, "n_excluded") || put_u64(f, s->n_excluded) || put_key(f, "value") ||
           put_num(f, v->value) || put_key(f, "u") || put_num(f, v->u) || put_key(f, "dof") ||
           put_num(f, v->dof) || put_key(f, "k") || put_num(f, v->k) || put_key(f, "U") ||
           put_num(f, v->U) || put_key(f, "coverage") || put_num(f, v->coverage) ||
           put_key(f, "unit") || put_jstr(f, s->unit) || put_key(f, "budget") ||
           put_budget(f, v->budget, v->n_budget, v->typeA_rule) ||
           put_mc(f, v->mc_trials, v->mc_u, v->mc_lo, v->mc_hi);
}

int qes_summary_json(FILE *f, const struct qes_run_rec *run, const struct qes_summary_rec *s)
{
    if (!f || !run || !s || !summary_valid(s))
        return QES_EINVAL;
    int failed = put_head(f, "summary", run, s->measure, s->channel) ||
                 (s->kind == QES_REC_PHASOR ? summary_phasor(f, s) : summary_scalar(f, s)) ||
                 put_key(f, "flags") || put_flags(f, s->flags) || putc('}', f) == EOF;
    return finish(f, failed);
}

int qes_run_json(FILE *f, const struct qes_run_rec *run)
{
    if (!f || !run)
        return QES_EINVAL;
    const char *input = run->input_json ? run->input_json : "null";
    int werr = 0;
    /* Check the syntax before writing anything: a broken input description
     * must not leave half a record behind. */
    if (raw_json(NULL, input, &werr))
        return QES_EINVAL;
    int failed = put_s(f, "{\"type\":\"run\",\"run\":") || put_id(f, run->id) ||
                 put_key(f, "command") || put_jstr(f, run->command) || put_key(f, "version") ||
                 put_jstr(f, run->version) || put_key(f, "build") || put_jstr(f, run->build) ||
                 put_key(f, "config_sha256") ||
                 put_jstr_n(f, run->config_sha256, strnlen(run->config_sha256, 65)) ||
                 put_key(f, "config") || put_jstr(f, run->config_ini) || put_key(f, "input");
    if (!failed) {
        raw_json(f, input, &werr);
        failed = werr || put_key(f, "t_start") || put_utc(f, run->t_start_ns) ||
                 put_key(f, "sample_rate_hz") || put_num(f, run->sample_rate_hz) ||
                 putc('}', f) == EOF;
    }
    return finish(f, failed);
}

struct qes_run_end qes_run_end_of_status(int status)
{
    return (struct qes_run_end){.status = status,
                                .latency_p50_us = NAN,
                                .latency_p99_us = NAN,
                                .latency_max_us = NAN,
                                .seconds = NAN};
}

int qes_run_end_json(FILE *f, const char *run_id, const struct qes_run_end *e)
{
    if (!f || !run_id || !e)
        return QES_EINVAL;
    int failed = put_s(f, "{\"type\":\"run_end\",\"run\":") ||
                 put_jstr_n(f, run_id, strnlen(run_id, 36)) || put_key(f, "status") ||
                 fprintf(f, "%d", e->status) < 0 || put_key(f, "samples") ||
                 put_u64(f, e->samples) || put_key(f, "lost") || put_u64(f, e->lost) ||
                 put_key(f, "gaps") || put_u64(f, e->gaps) || put_key(f, "reconnects") ||
                 put_u64(f, e->reconnects) || put_key(f, "frames_dropped") ||
                 put_u64(f, e->frames_dropped) || put_key(f, "latency_n") ||
                 put_u64(f, e->latency_n) || put_key(f, "latency_p50_us") ||
                 put_num(f, e->latency_p50_us) || put_key(f, "latency_p99_us") ||
                 put_num(f, e->latency_p99_us) || put_key(f, "latency_max_us") ||
                 put_num(f, e->latency_max_us) || put_key(f, "seconds") || put_num(f, e->seconds) ||
                 put_key(f, "t_end") || put_utc(f, e->t_end_ns) || putc('}', f) == EOF;
    return finish(f, failed);
}

static char *budget_text(const struct qes_budget_term *terms, size_t n, const char *rule)
{
    if (n > QES_BUDGET_MAX)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    int failed = put_budget(f, terms, n, rule);
    if (fclose(f) != 0 || failed) {
        free(buf);
        return NULL;
    }
    return buf;
}

char *qes_budget_json(const struct qes_phasor_summary *s)
{
    return s ? budget_text(s->budget, s->n_budget, s->typeA_rule) : NULL;
}

char *qes__summary_budget_json(const struct qes_summary_rec *s)
{
    if (!s)
        return NULL;
    return s->kind == QES_REC_PHASOR ? budget_text(s->s.budget, s->s.n_budget, s->s.typeA_rule)
                                     : budget_text(s->v.budget, s->v.n_budget, s->v.typeA_rule);
}

/* ---- the JSON Lines sink ----------------------------------------------------- */

struct rec_jsonl {
    struct qes_recorder base;
    FILE *f;
    char *iobuf;
    int is_stdout;
    int err;    /* first failure, returned again by every later call */
    int closed; /* close() ran: the stream is gone */
    int have_run;
    char run_id[37];
};

#define JSONL_IOBUF (256 * 1024)

static int jsonl_fail(struct rec_jsonl *j, int code, int e, const char *what)
{
    if (code == QES_EIO || code == QES_ENOSPC)
        snprintf(j->base.errmsg, sizeof j->base.errmsg, "%s '%s'%s: %s", what, j->base.target,
                 j->is_stdout ? " (standard output)" : "", strerror(e));
    if (!j->err)
        j->err = code;
    return code;
}

/* Run record first, and every record of this sink from that run. */

static int jsonl_record(struct rec_jsonl *j, int rc)
{
    int e = errno;
    if (rc == QES_EINVAL) {
        snprintf(j->base.errmsg, sizeof j->base.errmsg, "%s: invalid record", j->base.target);
        return rc;
    }
    if (!rc && putc('\n', j->f) == EOF) {
        e = errno;
        rc = io_code(e);
    }
    if (rc)
        return jsonl_fail(j, rc, e, "cannot write to");
    return 0;
}

static int jsonl_run(struct qes_recorder *r, const struct qes_run_rec *run)
{
    struct rec_jsonl *j = (struct rec_jsonl *)r;
    if (j->err)
        return j->err;
    int rc = qes__rec_check_first_run(r, j->closed, j->have_run, run);
    if (rc)
        return rc;
    errno = 0;
    rc = qes_run_json(j->f, run);
    if (rc == QES_EINVAL) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "%s: the input description of run %.36s is not valid JSON", r->target, run->id);
        return rc;
    }
    if ((rc = jsonl_record(j, rc)))
        return rc;
    memcpy(j->run_id, run->id, sizeof j->run_id);
    j->run_id[36] = '\0';
    j->have_run = 1;
    return 0;
}

static int jsonl_block(struct qes_recorder *r, const struct qes_run_rec *run,
                       const struct qes_block_rec *b)
{
    struct rec_jsonl *j = (struct rec_jsonl *)r;
    if (j->err)
        return j->err;
    int rc = qes__rec_check_order(r, j->closed, j->have_run, j->run_id, run, "block");
    if (rc)
        return rc;
    if (!b || !b->measure || (b->kind != QES_REC_PHASOR && b->kind != QES_REC_SCALAR)) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "%s: block record without a measure or of unknown kind", r->target);
        return QES_EINVAL;
    }
    errno = 0;
    return jsonl_record(j, qes_block_json(j->f, run, b));
}

static int jsonl_summary(struct qes_recorder *r, const struct qes_run_rec *run,
                         const struct qes_summary_rec *s)
{
    struct rec_jsonl *j = (struct rec_jsonl *)r;
    if (j->err)
        return j->err;
    int rc = qes__rec_check_order(r, j->closed, j->have_run, j->run_id, run, "summary");
    if (rc)
        return rc;
    if ((rc = qes__rec_summary_valid(r, s)))
        return rc;
    errno = 0;
    return jsonl_record(j, qes_summary_json(j->f, run, s));
}

static int jsonl_close(struct qes_recorder *r, const struct qes_run_end *end)
{
    struct rec_jsonl *j = (struct rec_jsonl *)r;
    if (j->closed)
        return j->err;
    j->closed = 1;
    int rc = 0, e = 0;
    /* The run_end record last, after the run's records: not without a run
     * record, nor after a failed write (the file ends where writing failed;
     * a failure here is sticky in j->err and the stream is still closed). */
    if (end && j->have_run && !j->err) {
        errno = 0;
        (void)jsonl_record(j, qes_run_end_json(j->f, j->run_id, end));
    }
    if (fflush(j->f) != 0) {
        e = errno;
        rc = io_code(e);
    }
    if (!j->is_stdout) {
        struct stat st;
        int regular = fstat(fileno(j->f), &st) == 0 && S_ISREG(st.st_mode);
        if (!rc && regular && fsync(fileno(j->f)) != 0) {
            e = errno;
            rc = io_code(e);
        }
        if (fclose(j->f) != 0 && !rc) {
            e = errno;
            rc = io_code(e);
        }
        j->f = NULL;
        if (!rc && regular && qes__fsync_dir_of(r->target)) {
            e = errno;
            rc = io_code(e);
        }
    }
    if (rc)
        return jsonl_fail(j, rc, e, "cannot write to");
    return j->err;
}

static void jsonl_destroy(struct qes_recorder *r)
{
    struct rec_jsonl *j = (struct rec_jsonl *)r;
    /* Without close (an error path), still hand the buffered records to the
     * kernel: they are valid records. */
    if (j->f && !j->is_stdout)
        fclose(j->f);
    else if (j->f)
        fflush(j->f);
    free(j->iobuf);
    free(j);
}

static const struct qes_recorder_ops jsonl_ops = {
        .name = "jsonl",
        .run = jsonl_run,
        .block = jsonl_block,
        .summary = jsonl_summary,
        .close = jsonl_close,
        .destroy = jsonl_destroy,
};

int qes_rec_jsonl_open(const char *target, struct qes_recorder **out, char *err, size_t errlen)
{
    struct rec_jsonl *j = NULL;
    int rc, e;
    if (!target || !out || !*target) {
        if (err && errlen)
            snprintf(err, errlen, "JSON Lines sink: no file name");
        return QES_EINVAL;
    }
    *out = NULL;
    if (!(j = calloc(1, sizeof *j))) {
        rc = QES_ENOMEM;
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", target);
        goto err_free;
    }
    if (strlen(target) >= sizeof j->base.target) {
        rc = QES_EINVAL;
        if (err && errlen)
            snprintf(err, errlen, "JSON Lines sink: file name too long: %.64s...", target);
        goto err_free;
    }
    j->base.ops = &jsonl_ops;
    strcpy(j->base.target, target);
    if (!strcmp(target, "-")) {
        /* stdout's buffering belongs to the program; leave it alone. */
        j->is_stdout = 1;
        j->f = stdout;
        *out = &j->base;
        return 0;
    }
    if (!(j->iobuf = malloc(JSONL_IOBUF))) {
        rc = QES_ENOMEM;
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", target);
        goto err_free;
    }
    /* "w": a results file names one run's output; appending a second run
     * would make the file depend on history, not on the input. */
    if (!(j->f = fopen(target, "w"))) {
        e = errno;
        rc = io_code(e);
        if (err && errlen)
            snprintf(err, errlen, "cannot open '%s' for writing: %s", target, strerror(e));
        goto err_free;
    }
    setvbuf(j->f, j->iobuf, _IOFBF, JSONL_IOBUF);
    *out = &j->base;
    return 0;

err_free:
    if (j)
        free(j->iobuf);
    free(j);
    return rc;
}
