/*
 * The CSV sink: block and summary records in one table.
 *
 * Layout:
 *   # comment lines with the run record (id, command, version, build, config
 *   #   SHA-256, input, t_start, sample rate, then the configuration text)
 *   header row, units in the names: x[unit] is x in the row's `unit` column
 *   one row per block or summary record; cells that do not apply are empty
 *   # comment lines with how the run ended (at close; see below)
 *
 * Columns (CSV_HEADER), and which rows fill them:
 *   type                          block | summary
 *   run, measure, channel, seq    all rows
 *   harmonic, freq_hz[Hz]         phasor rows (empty in scalar rows)
 *   sample_start, n_samples, t_utc                    block rows
 *   x[unit], y[unit], r[unit], phase_rad[rad]         phasor rows
 *   value[unit], u[unit]          scalar rows: the value and its standard
 *                                 uncertainty (of the block, or combined in
 *                                 a summary)
 *   unit                          all rows
 *   n_blocks, n_excluded, dof, k, coverage            summary rows
 *   u_x[unit], u_y[unit], u_r[unit], u_phase_rad[rad], U_r[unit]
 *                                 phasor summary rows
 *   U[unit]                       scalar summary rows (k * u)
 *   enbw_hz[Hz], thd (ratio), sinad_db[dB], sfdr_db[dB]
 *                                 phasor block rows, each empty when not given
 *   flags                         all rows
 * A scalar row is recognisable by its empty harmonic.
 *
 * Numbers are %.17g in the C locale (see rec_json.c for why that holds even
 * if a host program sets LC_NUMERIC); non-finite values are empty cells (in a
 * summary row an empty `dof` means infinite).  Flags are joined with ';'.
 * Fields are quoted per RFC 4180 when they contain ',', '"', CR or LF.  Rows
 * end in LF.  The budget terms are not in the table (see JSON Lines / SQLite).
 *
 * How the run ended (struct qes_run_end) has no place in the table, whose
 * rows are results (a `run_end` row would leave nearly every column empty
 * and need eight new ones): close writes it, like the run record, as comment
 * lines, after the rows, so readers that skip '#' lines skip it too:
 *   # qes run end
 *   # status: 3
 *   # samples: 955
 *   ... one line each for lost, gaps, reconnects, frames_dropped, latency_n,
 *       latency_p50_us, latency_p99_us, latency_max_us, seconds (record.h)
 *   # t_end: 1970-01-01T00:00:01.000000000Z
 * A number that is not finite leaves its value empty ("# seconds:"), as it
 * leaves a cell empty.  Nothing is written without a run record or after a
 * failed write.
 *
 * Writes are buffered and checked; the first failure is sticky.  Close
 * flushes and fsync()s the file and its directory.
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

#define CSV_HEADER                                                                            \
    "type,run,measure,channel,harmonic,seq,sample_start,n_samples,t_utc,freq_hz[Hz],x[unit]," \
    "y[unit],r[unit],phase_rad[rad],value[unit],u[unit],unit,n_blocks,n_excluded,u_x[unit],"  \
    "u_y[unit],u_r[unit],u_phase_rad[rad],dof,k,U_r[unit],U[unit],coverage,enbw_hz[Hz],thd,"  \
    "sinad_db[dB],sfdr_db[dB],flags\n"

#define CSV_IOBUF (256 * 1024)

struct rec_csv {
    struct qes_recorder base;
    FILE *f;
    char *iobuf;
    int err;    /* first failure, returned again by every later call */
    int closed; /* the stream is gone */
    int have_run;
    int header_done;
    char run_id[37];
};

static int io_code(int e)
{
#ifdef EDQUOT
    if (e == EDQUOT)
        return QES_ENOSPC;
#endif
    return e == ENOSPC ? QES_ENOSPC : QES_EIO;
}

static int csv_fail(struct rec_csv *c, int e)
{
    int code = io_code(e);
    snprintf(c->base.errmsg, sizeof c->base.errmsg, "cannot write to '%s': %s", c->base.target,
             strerror(e));
    if (!c->err)
        c->err = code;
    return code;
}

/* ---- cells ------------------------------------------------------------------ */

static int put_s(FILE *f, const char *s)
{
    return fputs(s, f) < 0 ? -1 : 0;
}

/* %.17g of a finite v. */
static int put_num(FILE *f, double v)
{
    char buf[40];
    int n = snprintf(buf, sizeof buf, "%.17g", v);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1;
    /* Map a locale's radix character back to '.', as in rec_json.c. */
    for (size_t i = 0; buf[i]; i++) {
        if (!strchr("0123456789+-e", buf[i])) {
            size_t j = i;
            while (buf[j] && !strchr("0123456789+-e", buf[j]))
                j++;
            buf[i] = '.';
            memmove(buf + i + 1, buf + j, (size_t)n - j + 1);
            break;
        }
    }
    return put_s(f, buf);
}

/* ",%.17g", or "," alone for a non-finite value. */
static int cell_num(FILE *f, double v)
{
    if (putc(',', f) == EOF)
        return -1;
    return isfinite(v) ? put_num(f, v) : 0;
}

static int cell_u64(FILE *f, uint64_t v)
{
    return fprintf(f, ",%" PRIu64, v) < 0 ? -1 : 0;
}

/* A text field, quoted when RFC 4180 requires it; NULL is an empty field. */
static int field_str(FILE *f, const char *s)
{
    if (!s || !*s)
        return 0;
    if (!strpbrk(s, ",\"\r\n"))
        return put_s(f, s);
    if (putc('"', f) == EOF)
        return -1;
    for (; *s; s++) {
        if (*s == '"' && putc('"', f) == EOF)
            return -1;
        if (putc(*s, f) == EOF)
            return -1;
    }
    return putc('"', f) == EOF ? -1 : 0;
}

static int cell_str(FILE *f, const char *s)
{
    return putc(',', f) == EOF ? -1 : field_str(f, s);
}

static int cell_empty(FILE *f, int n)
{
    for (int i = 0; i < n; i++)
        if (putc(',', f) == EOF)
            return -1;
    return 0;
}

static int cell_utc(FILE *f, int64_t ns)
{
    char t[QES_UTC_LEN];
    return putc(',', f) == EOF ? -1 : put_s(f, qes_utc_format(ns, t));
}

/* The run id (char[37]). */
static int field_id(FILE *f, const char id[37])
{
    char buf[37];
    memcpy(buf, id, 36);
    buf[36] = '\0';
    return field_str(f, buf);
}

/* Flags joined with ';' in bit order (the QES_FLAG_MAP order). */
static int cell_flags(FILE *f, unsigned flags)
{
    static const char *const names[] = {
#define QES__FLAG_NAME(name, bit, str) [bit] = str,
            QES_FLAG_MAP(QES__FLAG_NAME)
#undef QES__FLAG_NAME
    };
    if (putc(',', f) == EOF)
        return -1;
    int first = 1;
    for (unsigned bit = 0; bit < sizeof flags * 8; bit++) {
        if (!(flags & (1u << bit)))
            continue;
        if (!first && putc(';', f) == EOF)
            return -1;
        first = 0;
        if (bit < sizeof names / sizeof names[0] && names[bit]) {
            if (put_s(f, names[bit]))
                return -1;
        } else if (fprintf(f, "bit%u", bit) < 0) { /* never let a bit vanish */
            return -1;
        }
    }
    return 0;
}

/* ---- comment lines ----------------------------------------------------------- */

/* "# key: value\n" with control characters (which would end the comment)
 * written as spaces.  For the input description, which is JSON, that keeps
 * the value intact: raw control characters are only whitespace there. */
static int comment(FILE *f, const char *key, const char *value)
{
    if (fprintf(f, "# %s: ", key) < 0)
        return -1;
    for (const char *p = value ? value : "null"; *p; p++)
        if (putc((unsigned char)*p < 0x20 ? ' ' : *p, f) == EOF)
            return -1;
    return putc('\n', f) == EOF ? -1 : 0;
}

/* The configuration, one "#   line" per line. */
static int comment_config(FILE *f, const char *ini)
{
    if (put_s(f, "# config:\n"))
        return -1;
    const char *p = ini ? ini : "";
    while (*p) {
        size_t n = strcspn(p, "\r\n");
        if (put_s(f, "#   ") || fwrite(p, 1, n, f) != n || putc('\n', f) == EOF)
            return -1;
        p += n;
        if (*p == '\r')
            p++;
        if (*p == '\n')
            p++;
    }
    return 0;
}

/* ---- operations -------------------------------------------------------------- */

static int check_run(struct rec_csv *c, const struct qes_run_rec *run, const char *what)
{
    return qes__rec_check_order(&c->base, c->closed, c->have_run, c->run_id, run, what);
}

static int csv_run(struct qes_recorder *r, const struct qes_run_rec *run)
{
    struct rec_csv *c = (struct rec_csv *)r;
    if (c->err)
        return c->err;
    int rc = qes__rec_check_first_run(r, c->closed, c->have_run, run);
    if (rc)
        return rc;
    char id[37], sha[65], t[QES_UTC_LEN], rate[40];
    snprintf(id, sizeof id, "%.36s", run->id);
    snprintf(sha, sizeof sha, "%.64s", run->config_sha256);
    snprintf(rate, sizeof rate, "%.17g", run->sample_rate_hz);
    FILE *f = c->f;
    errno = 0;
    int failed = put_s(f, "# qes run record\n") || comment(f, "run", id) ||
                 comment(f, "command", run->command) || comment(f, "version", run->version) ||
                 comment(f, "build", run->build) || comment(f, "config_sha256", sha) ||
                 comment(f, "input", run->input_json) ||
                 comment(f, "t_start", qes_utc_format(run->t_start_ns, t)) ||
                 comment(f, "sample_rate_hz", rate) || comment_config(f, run->config_ini);
    if (!failed && !c->header_done) {
        failed = put_s(f, CSV_HEADER);
        c->header_done = !failed;
    }
    if (failed || ferror(f))
        return csv_fail(c, errno);
    memcpy(c->run_id, id, sizeof c->run_id);
    c->have_run = 1;
    return 0;
}

static int csv_block(struct qes_recorder *r, const struct qes_run_rec *run,
                     const struct qes_block_rec *b)
{
    struct rec_csv *c = (struct rec_csv *)r;
    if (c->err)
        return c->err;
    int rc = check_run(c, run, "block");
    if (rc)
        return rc;
    if (!b || !b->measure || (b->kind != QES_REC_PHASOR && b->kind != QES_REC_SCALAR)) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "%s: block record without a measure or of unknown kind", r->target);
        return QES_EINVAL;
    }
    int phasor = b->kind == QES_REC_PHASOR;
    FILE *f = c->f;
    errno = 0;
    int failed = put_s(f, "block,") || field_id(f, run->id) || cell_str(f, b->measure) ||
                 cell_str(f, b->channel) ||
                 (phasor ? cell_u64(f, b->harmonic) : cell_empty(f, 1)) || cell_u64(f, b->seq) ||
                 cell_u64(f, b->sample_start) || cell_u64(f, b->n_samples) || cell_utc(f, b->t_ns);
    if (!failed && phasor)
        failed = cell_num(f, b->freq_hz) || cell_num(f, b->x) || cell_num(f, b->y) ||
                 cell_num(f, b->r) || cell_num(f, b->phase_rad) ||
                 /* value, u */
                 cell_empty(f, 2);
    else if (!failed)
        failed = /* freq_hz .. phase_rad */
                cell_empty(f, 5) || cell_num(f, b->value) || cell_num(f, b->u);
    failed = failed || cell_str(f, b->unit) ||
             /* n_blocks .. coverage */
             cell_empty(f, 11);
    if (!failed && phasor)
        failed = cell_num(f, b->enbw_hz) || cell_num(f, b->thd) || cell_num(f, b->sinad_db) ||
                 cell_num(f, b->sfdr_db);
    else if (!failed)
        failed = cell_empty(f, 4);
    failed = failed || cell_flags(f, b->flags) || putc('\n', f) == EOF;
    if (failed || ferror(f))
        return csv_fail(c, errno);
    return 0;
}

static int csv_summary(struct qes_recorder *r, const struct qes_run_rec *run,
                       const struct qes_summary_rec *s)
{
    struct rec_csv *c = (struct rec_csv *)r;
    if (c->err)
        return c->err;
    int rc = check_run(c, run, "summary");
    if (rc)
        return rc;
    /* The budget is not in the table, but a record that the other sinks
     * refuse is refused here too. */
    if ((rc = qes__rec_summary_valid(r, s)))
        return rc;
    int ph = s->kind == QES_REC_PHASOR;
    const struct qes_phasor_summary *p = &s->s;
    const struct qes_scalar_summary *v = &s->v;
    FILE *f = c->f;
    errno = 0;
    int failed = put_s(f, "summary,") || field_id(f, run->id) || cell_str(f, s->measure) ||
                 cell_str(f, s->channel);
    if (!failed && ph)
        failed = cell_u64(f, s->harmonic) || cell_u64(f, s->seq) ||
                 /* sample_start, n_samples, t_utc */
                 cell_empty(f, 3) || cell_num(f, s->freq_hz) || cell_num(f, p->x) ||
                 cell_num(f, p->y) || cell_num(f, p->r) || cell_num(f, p->phase_rad) ||
                 /* value, u */
                 cell_empty(f, 2) || cell_str(f, s->unit) || cell_u64(f, p->n) ||
                 cell_u64(f, s->n_excluded) || cell_num(f, p->u_x) || cell_num(f, p->u_y) ||
                 cell_num(f, p->u_r) || cell_num(f, p->u_phase_rad) || cell_num(f, p->dof) ||
                 cell_num(f, p->k) || cell_num(f, p->U_r) ||
                 /* U */
                 cell_empty(f, 1) || cell_num(f, p->coverage);
    else if (!failed)
        failed = /* harmonic */
                cell_empty(f, 1) || cell_u64(f, s->seq) ||
                /* sample_start .. phase_rad */
                cell_empty(f, 8) || cell_num(f, v->value) || cell_num(f, v->u) ||
                cell_str(f, s->unit) || cell_u64(f, v->n) || cell_u64(f, s->n_excluded) ||
                /* u_x .. u_phase_rad */
                cell_empty(f, 4) || cell_num(f, v->dof) || cell_num(f, v->k) ||
                /* U_r */
                cell_empty(f, 1) || cell_num(f, v->U) || cell_num(f, v->coverage);
    failed = failed ||
             /* enbw_hz .. sfdr_db */
             cell_empty(f, 4) || cell_flags(f, s->flags) || putc('\n', f) == EOF;
    if (failed || ferror(f))
        return csv_fail(c, errno);
    return 0;
}

/* "# key: N" */
static int comment_u64(FILE *f, const char *key, uint64_t v)
{
    return fprintf(f, "# %s: %" PRIu64 "\n", key, v) < 0 ? -1 : 0;
}

/* "# key: X", or "# key:" when v is not finite. */
static int comment_num(FILE *f, const char *key, double v)
{
    if (fprintf(f, "# %s:", key) < 0)
        return -1;
    if (isfinite(v) && (putc(' ', f) == EOF || put_num(f, v)))
        return -1;
    return putc('\n', f) == EOF ? -1 : 0;
}

/* How the run ended, as comment lines after the rows (see the top). */
static int run_end_comments(FILE *f, const struct qes_run_end *e)
{
    char t[QES_UTC_LEN];
    return put_s(f, "# qes run end\n") || fprintf(f, "# status: %d\n", e->status) < 0 ||
           comment_u64(f, "samples", e->samples) || comment_u64(f, "lost", e->lost) ||
           comment_u64(f, "gaps", e->gaps) || comment_u64(f, "reconnects", e->reconnects) ||
           comment_u64(f, "frames_dropped", e->frames_dropped) ||
           comment_u64(f, "latency_n", e->latency_n) ||
           comment_num(f, "latency_p50_us", e->latency_p50_us) ||
           comment_num(f, "latency_p99_us", e->latency_p99_us) ||
           comment_num(f, "latency_max_us", e->latency_max_us) ||
           comment_num(f, "seconds", e->seconds) ||
           comment(f, "t_end", qes_utc_format(e->t_end_ns, t));
}

/* Close; end NULL: without the run end comments (qes export of a run that a
 * qes without them recorded). */
static int close_csv(struct rec_csv *c, const struct qes_run_end *end)
{
    struct qes_recorder *r = &c->base;
    if (c->closed)
        return c->err;
    c->closed = 1;
    int e = 0;
    if (end && c->have_run && !c->err) {
        errno = 0;
        if (run_end_comments(c->f, end) || ferror(c->f))
            csv_fail(c, errno ? errno : EIO);
    }
    struct stat st;
    int regular = fstat(fileno(c->f), &st) == 0 && S_ISREG(st.st_mode);
    if (fflush(c->f) != 0 || (regular && fsync(fileno(c->f)) != 0))
        e = errno;
    if (fclose(c->f) != 0 && !e)
        e = errno;
    c->f = NULL;
    if (!e && regular && qes__fsync_dir_of(r->target))
        e = errno;
    if (e)
        return csv_fail(c, e);
    return c->err;
}

static int csv_close(struct qes_recorder *r, const struct qes_run_end *end)
{
    return close_csv((struct rec_csv *)r, end);
}

int qes__csv_close_without_end(struct qes_recorder *r)
{
    return close_csv((struct rec_csv *)r, NULL);
}

static void csv_destroy(struct qes_recorder *r)
{
    struct rec_csv *c = (struct rec_csv *)r;
    if (c->f)
        fclose(c->f); /* without close: still hand the rows to the kernel */
    free(c->iobuf);
    free(c);
}

static const struct qes_recorder_ops csv_ops = {
        .name = "csv",
        .run = csv_run,
        .block = csv_block,
        .summary = csv_summary,
        .close = csv_close,
        .destroy = csv_destroy,
};

int qes_rec_csv_open(const char *target, struct qes_recorder **out, char *err, size_t errlen)
{
    struct rec_csv *c = NULL;
    int rc, e;
    if (!target || !out || !*target) {
        if (err && errlen)
            snprintf(err, errlen, "CSV sink: no file name");
        return QES_EINVAL;
    }
    *out = NULL;
    if (!(c = calloc(1, sizeof *c)) || !(c->iobuf = malloc(CSV_IOBUF))) {
        rc = QES_ENOMEM;
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", target);
        goto err_free;
    }
    if (strlen(target) >= sizeof c->base.target) {
        rc = QES_EINVAL;
        if (err && errlen)
            snprintf(err, errlen, "CSV sink: file name too long: %.64s...", target);
        goto err_free;
    }
    c->base.ops = &csv_ops;
    strcpy(c->base.target, target);
    if (!(c->f = fopen(target, "w"))) {
        e = errno;
        rc = io_code(e);
        if (err && errlen)
            snprintf(err, errlen, "cannot open '%s' for writing: %s", target, strerror(e));
        goto err_free;
    }
    setvbuf(c->f, c->iobuf, _IOFBF, CSV_IOBUF);
    *out = &c->base;
    return 0;

err_free:
    if (c)
        free(c->iobuf);
    free(c);
    return rc;
}
