/*
 * Records and recorders (sinks).
 *
 * Every run writes one run record first, then block records as blocks
 * complete and summary records at the end (and periodically in a live run),
 * and, when it closes, one run_end record saying how it ended.  Field
 * meanings are the output contract of DESIGN.md.  Numbers are written with
 * %.17g in the C locale; NaN and infinities become JSON null / SQL NULL.
 */
#ifndef QES_PIPELINE_RECORD_H
#define QES_PIPELINE_RECORD_H

#include "dsp/gum.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Record flags: one bit each, written as strings in this order. */
#define QES_FLAG_MAP(X)            \
    X(GAP, 0, "gap")               \
    X(CLIP, 1, "clip")             \
    X(SETTLING, 2, "settling")     \
    X(OVERRANGE, 3, "overrange")   \
    X(UNLOCKED, 4, "unlocked")     \
    X(PARTIAL, 5, "partial")       \
    X(FEW_BLOCKS, 6, "few_blocks") \
    X(EXCLUDED, 7, "excluded")     \
    X(QUALITY, 8, "quality")       \
    X(NONWHITE, 9, "nonwhite")

enum qes_flag {
#define QES__FLAG_ENUM(name, bit, str) QES_FLAG_##name = 1u << (bit),
    QES_FLAG_MAP(QES__FLAG_ENUM)
#undef QES__FLAG_ENUM
};

/* Write flags as a JSON array of strings into buf. */
size_t qes_flags_json(unsigned flags, char *buf, size_t len);

struct qes_run_rec {
    char id[37];            /* UUID text */
    const char *command;    /* "replay", "run" */
    const char *version;    /* software version */
    const char *build;      /* compiler and flags */
    const char *config_ini; /* canonical resolved configuration */
    char config_sha256[65];
    const char *input_json; /* JSON object describing the input (path, hashes), or "null" */
    int64_t t_start_ns;     /* UTC of sample 0 */
    double sample_rate_hz;
};

/*
 * Phasor methods (fft, dft, sinefit3/4, ipdft, demod) report x, y, r,
 * phase_rad; scalar methods (reversal, steps) report value and u instead.
 */
enum qes_rec_kind {
    QES_REC_PHASOR = 0,
    QES_REC_SCALAR = 1,
};

struct qes_block_rec {
    const char *measure;
    const char *channel;
    const char *unit;
    unsigned harmonic;         /* 0 for scalar methods */
    uint64_t seq;              /* block (output, group) number, counted from the run start */
    uint64_t sample_start;     /* run index of the block's first sample */
    uint64_t n_samples;        /* samples in the block */
    int64_t t_ns;              /* UTC of the block's first sample */
    double freq_hz;            /* h * reference frequency (estimated with freq_hz = auto) */
    double x, y, r, phase_rad; /* PHASOR; NaN when the block has no value (gap, partial) */
    unsigned flags;
    enum qes_rec_kind kind;
    double value, u;               /* SCALAR: value and its standard uncertainty in the block
                                  (NaN when none) */
    double enbw_hz;                /* equivalent noise bandwidth of the estimate; NaN = not given */
    double thd, sinad_db, sfdr_db; /* quality figures; NaN = not computed (written only when
                                      any is finite) */
};

struct qes_summary_rec {
    const char *measure;
    const char *channel;
    const char *unit;
    unsigned harmonic;
    uint64_t seq; /* 0, 1, ... for periodic summaries; the final one is last */
    double freq_hz;
    uint64_t n_excluded;         /* flagged blocks left out */
    struct qes_phasor_summary s; /* PHASOR */
    unsigned flags;
    enum qes_rec_kind kind;
    struct qes_scalar_summary v; /* SCALAR */
};

/*
 * How a run ended, given to every sink at close (struct qes_run_end).  The
 * JSON text (qes_run_end_json, the last line of a JSON Lines file and the
 * last message of a live stream) is, in this order:
 *   {"type":"run_end","run":ID,"status":S,"samples":N,"lost":N,"gaps":N,
 *    "reconnects":N,"frames_dropped":N,"latency_n":N,"latency_p50_us":X,
 *    "latency_p99_us":X,"latency_max_us":X,"seconds":X,"t_end":"...Z"}
 * with the fields below (X null when not finite).  SQLite and PostgreSQL keep
 * them in the columns of the same names of `runs` (t_end as the UTC text);
 * the CSV sink in '#' comment lines after the rows.
 */
struct qes_run_end {
    int status;              /* the run's exit status (0, 3, ...) */
    uint64_t samples;        /* samples per channel processed */
    uint64_t lost;           /* samples per channel lost in gaps */
    uint64_t gaps;           /* gaps (a jump of the sample counter) */
    uint64_t reconnects;     /* times a live source had to reconnect */
    uint64_t frames_dropped; /* frames the acquisition ring could not keep */
    uint64_t latency_n;      /* block records whose latency was measured */
    /* Latency of block records as the live pipeline measures it, in
     * microseconds: median, 99th percentile, maximum; NaN when
     * latency_n == 0. */
    double latency_p50_us, latency_p99_us, latency_max_us;
    double seconds;   /* host wall time of the run; NaN when not measured (a
                         replay: its records depend only on its input) */
    int64_t t_end_ns; /* UTC of the end of the data (live: host clock at the
                         end; replay: t_start + (samples + lost) / fs) */
};

struct qes_recorder;

struct qes_recorder_ops {
    const char *name;
    int (*run)(struct qes_recorder *r, const struct qes_run_rec *run);
    int (*block)(struct qes_recorder *r, const struct qes_run_rec *run,
                 const struct qes_block_rec *b);
    int (*summary)(struct qes_recorder *r, const struct qes_run_rec *run,
                   const struct qes_summary_rec *s);
    /* Record how the run ended (end, never NULL; written only when a run
     * record was), commit everything; after close only destroy is called. */
    int (*close)(struct qes_recorder *r, const struct qes_run_end *end);
    /* Optional (may be NULL): commit what is pending; called by the recorder
     * thread when no record has arrived for a while, so that an idle live run
     * does not keep a batch uncommitted. */
    int (*flush)(struct qes_recorder *r);
    void (*destroy)(struct qes_recorder *r);
};

struct qes_recorder {
    const struct qes_recorder_ops *ops;
    char target[4096]; /* file name or "-" */
    char errmsg[8192];
    /* Accounting, read by the pipeline after close: records acknowledged
     * (committed durably, or written for a stream), and records this sink
     * could not keep (a full spool, a stream's high-water mark).  A sink of
     * record that loses data makes the run exit 3. */
    uint64_t n_acked;
    uint64_t n_lost;
    int best_effort; /* a live stream: losses are reported, not an error */
};

/*
 * Open a sink by name: "-" (JSON Lines on stdout), "*.jsonl" / "*.json",
 * "*.csv", "*.db" / "*.sqlite" / "*.sqlite3" (SQLite).  Returns 0,
 * QES_EINVAL (unknown kind), QES_EIO / QES_EDB with a message in err.
 */
int qes_recorder_open(const char *target, struct qes_recorder **out, char *err, size_t errlen);

/* Options of the sinks; a zero field means the default. */
struct qes_recorder_opts {
    const char *sqlite_synchronous; /* "FULL" (default), "NORMAL" or "OFF" */
    double batch_s;                 /* a transaction commits within this time; 1 s */
    unsigned batch_records;         /* ... or after this many records; 10000 */
    const char *spool_path;         /* PostgreSQL's local spool (SQLite); "qes-spool.db" */
    double spool_max_mb;            /* its bound; 1024 MB */
    int zmq_hwm;                    /* ZeroMQ PUB high-water mark, messages; 1000 */
};

/* qes_recorder_open with options (NULL: defaults).  Also accepts
 * "postgresql://..." / "postgres://..." (PostgreSQL, with spool) and
 * "zmq+tcp://HOST:PORT" (ZeroMQ PUB of JSON records, best effort). */
int qes_recorder_open_ex(const char *target, const struct qes_recorder_opts *opts,
                         struct qes_recorder **out, char *err, size_t errlen);

/* No-op for NULL. */
void qes_recorder_destroy(struct qes_recorder *r);

/* The individual sinks. */
int qes_rec_jsonl_open(const char *target, struct qes_recorder **out, char *err, size_t errlen);
int qes_rec_csv_open(const char *target, struct qes_recorder **out, char *err, size_t errlen);
int qes_rec_sqlite_open(const char *target, struct qes_recorder **out, char *err, size_t errlen);
int qes_rec_sqlite_open_ex(const char *target, const struct qes_recorder_opts *opts,
                           struct qes_recorder **out, char *err, size_t errlen);
int qes_rec_pg_open(const char *target, const struct qes_recorder_opts *opts,
                    struct qes_recorder **out, char *err, size_t errlen);
int qes_rec_zmq_open(const char *target, const struct qes_recorder_opts *opts,
                     struct qes_recorder **out, char *err, size_t errlen);

/* JSON text of records, shared by the sinks (no trailing newline). */
int qes_block_json(FILE *f, const struct qes_run_rec *run, const struct qes_block_rec *b);
int qes_summary_json(FILE *f, const struct qes_run_rec *run, const struct qes_summary_rec *s);
int qes_run_json(FILE *f, const struct qes_run_rec *run);
/* The run_end record of run run_id (the id text, at most 36 characters). */
int qes_run_end_json(FILE *f, const char *run_id, const struct qes_run_end *end);
/* A run_end of a status alone: counts 0, latencies and seconds NaN, t_end 0. */
struct qes_run_end qes_run_end_of_status(int status);
/* A budget as a JSON array into a malloc'd string. */
char *qes_budget_json(const struct qes_phasor_summary *s);

/* Write a double as %.17g, or null when not finite. */
void qes_json_num(FILE *f, double v);

#endif
