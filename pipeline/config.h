/*
 * qes configuration: INI files parsed with libinih, `--set SECTION.KEY=VALUE`
 * overrides, validation, and the resolved configuration that every run
 * records.
 *
 * One option table (config.c, `qes_options`) gives each key its section,
 * type, unit, range, default and help.  The same table drives the parser,
 * --set, validation, `qes help config` and the generated reference
 * configuration (configs/reference.ini, checked by a test), so the four can
 * never disagree.
 *
 * Sections: [source], [channel.NAME], [measure.NAME], [sim.NAME] (the truth a
 * simulated source uses for channel NAME), [run].
 */
#ifndef QES_PIPELINE_CONFIG_H
#define QES_PIPELINE_CONFIG_H

#include <float.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define QES_CFG_MAX_CHANNELS 16
#define QES_CFG_MAX_MEASURES 32
#define QES_CFG_MAX_LIST     32
#define QES_CFG_NAME_LEN     64

enum qes_section {
    QES_SEC_SOURCE = 0,
    QES_SEC_CHANNEL,
    QES_SEC_MEASURE,
    QES_SEC_SIM,
    QES_SEC_RUN,
    QES_SEC_TYPEB,
    QES_SEC_RECORD,
    QES_SEC_COUNT
};

enum qes_opt_type {
    QES_OPT_STRING,
    QES_OPT_DOUBLE,
    QES_OPT_UINT,        /* unsigned, stored as unsigned int */
    QES_OPT_INT,         /* stored as int */
    QES_OPT_U64,         /* stored as uint64_t */
    QES_OPT_BOOL,        /* true/false/yes/no/1/0/on/off, stored as int */
    QES_OPT_ENUM,        /* one of `choices` (|-separated), stored as a string */
    QES_OPT_DLIST,       /* comma-separated doubles, stored as double[] + size_t count */
    QES_OPT_ULIST,       /* comma-separated unsigned, stored as unsigned[] + size_t count */
    QES_OPT_DOUBLE_AUTO, /* a number, or `auto` stored as QES_CFG_AUTO_D */
    QES_OPT_UINT_AUTO,   /* an unsigned, or `auto` stored as QES_CFG_AUTO_U */
};

/* What `auto` is stored as. */
#define QES_CFG_AUTO_D (-DBL_MAX) /* outside every option's range: -1 is a valid gain */
#define QES_CFG_AUTO_U (UINT_MAX - 1u)

struct qes_option {
    enum qes_section section;
    const char *key;
    enum qes_opt_type type;
    size_t offset;       /* of the value in the section struct */
    size_t size;         /* string capacity, or list capacity (elements) */
    size_t count_offset; /* lists: offset of the size_t element count */
    const char *unit;    /* "" when dimensionless */
    double min, max;     /* inclusive range for numbers and list elements */
    const char *def;     /* default as text; NULL = required */
    const char *choices; /* enum: "fft|dft" */
    const char *help;
};

extern const struct qes_option qes_options[];
extern const size_t qes_n_options;

struct qes_cfg_source {
    char kind[16];         /* sigmf | sim | iio */
    char path[4096];       /* capture for kind = sigmf */
    double sample_rate_hz; /* sim */
    double seconds;        /* sim: length, 0 = until stopped (run) */
    unsigned adc_bits;     /* sim: 0 = no quantisation */
    char datatype[16];     /* sim: capture datatype, or auto */
    uint64_t seed;         /* sim */
    char start_time[40];   /* sim: UTC of sample 0, or now */
    /* iio */
    char uri[256];
    char device[128];
    unsigned buffer_samples;
    unsigned kernel_buffers;
    unsigned timeout_ms;
    double reconnect_max_s;
    double give_up_s;
    int line; /* line of the section header, 0 if absent */
};

struct qes_cfg_channel {
    char name[QES_CFG_NAME_LEN];
    unsigned index;
    double gain; /* QES_CFG_AUTO_D: the device's scale (iio), else 1; see qes_cfg_gain */
    double offset;
    char iio_channel[64];
    char unit[16];
    double u_gain_rel;
    double clip_counts;
    /* calibration chain */
    char freq_response[4096]; /* CSV: f_hz, gain_rel, u_gain_rel, phase_rad, u_phase_rad */
    double aperture_s, u_aperture_s;
    char aperture_ref[16]; /* centred | ends | starts */
    double u_timebase_rel;
    double delay_s, u_delay_s;
    int line;
};

struct qes_cfg_measure {
    char name[QES_CFG_NAME_LEN];
    char channel[QES_CFG_NAME_LEN];
    char method[16];
    double freq_hz; /* QES_CFG_AUTO_D: estimated per block */
    unsigned harmonics[QES_CFG_MAX_LIST];
    size_t n_harmonics;
    unsigned block_periods;
    unsigned block_samples;
    char window[16];
    double kaiser_beta;
    double coverage;
    double typeA_horizon_s; /* 0 = the run; see qes_mean_uncertainty_h */
    int include_flagged;
    /* quality figures */
    int quality;
    double thd_max;
    double sinad_min_db;
    double sfdr_min_db;
    /* demod */
    double tau_s;
    unsigned order;
    double output_rate_hz;
    double settle_tau;
    unsigned sinc_periods;
    /* reversal */
    double half_period_s;
    char polarity_channel[QES_CFG_NAME_LEN];
    char pattern[16];
    double settle_s;
    /* steps */
    unsigned steps_per_period;
    double f_j_hz;
    double steps[QES_CFG_MAX_LIST * 4];
    size_t n_steps;
    unsigned mask_after;  /* QES_CFG_AUTO_U: chosen from segment scatter */
    unsigned mask_before; /* QES_CFG_AUTO_U */
    /* ratio and quantum references */
    char numerator[QES_CFG_NAME_LEN];
    char denominator[QES_CFG_NAME_LEN];
    char reference[8]; /* none | pjvs | qhr */
    double pjvs_n;     /* junctions (a signed whole number) */
    double u_fj_rel;
    unsigned qhr_plateau;
    int line;
};

struct qes_cfg_sim {
    char name[QES_CFG_NAME_LEN];
    double freq_hz;
    unsigned harmonics[QES_CFG_MAX_LIST];
    size_t n_harmonics;
    double rms[QES_CFG_MAX_LIST];
    size_t n_rms;
    double phase_rad[QES_CFG_MAX_LIST];
    size_t n_phase_rad;
    double noise_rms;
    double flicker_rms;
    double offset;
    double drift_per_s;
    int line;
};

/* A Type B component added to a measurement's summary budget. */
struct qes_cfg_typeb {
    char name[QES_CFG_NAME_LEN];
    char measure[QES_CFG_NAME_LEN];
    unsigned harmonic;     /* 0: every harmonic */
    char distribution[16]; /* normal | rectangular | triangular | ushaped */
    double u;              /* normal: standard uncertainty (k = 1) or expanded with k */
    double k;              /* normal: coverage factor of u (1 = standard) */
    double half_width;     /* rectangular, triangular, ushaped */
    int relative;          /* u / half_width relative to the value */
    double sensitivity;
    double dof; /* 0 = infinite */
    int line;
};

/* Sink options (pipeline/record.h struct qes_recorder_opts). */
struct qes_cfg_record {
    char sqlite_synchronous[8];
    double batch_s;
    unsigned batch_records;
    char spool_path[4096];
    double spool_max_mb;
    unsigned zmq_hwm;
    int line;
};

struct qes_cfg_run {
    double summary_every_s;
    char progress[8]; /* auto | on | off */
    char record_raw[4096];
    double raw_rotate_mb, raw_rotate_s;
    unsigned ring_slots;
    int lock_memory;
    unsigned rt_priority;
    int cpu;
    unsigned busy_poll_us;
    int line;
};

struct qes_config {
    char path[4096]; /* file the config came from, or "" */
    struct qes_cfg_source source;
    struct qes_cfg_channel channel[QES_CFG_MAX_CHANNELS];
    size_t n_channel;
    struct qes_cfg_measure measure[QES_CFG_MAX_MEASURES];
    size_t n_measure;
    struct qes_cfg_sim sim[QES_CFG_MAX_CHANNELS];
    size_t n_sim;
    struct qes_cfg_run run;
    struct qes_cfg_typeb typeb[QES_CFG_MAX_MEASURES];
    size_t n_typeb;
    struct qes_cfg_record record;
};

/* A config with every default applied and no channel or measurement. */
void qes_config_init(struct qes_config *cfg);

/*
 * Parse an INI file into cfg (initialised by qes_config_init).  Unknown
 * sections and keys, wrong types, out-of-range values, repeated keys and
 * over-long lines are errors: err gets "FILE:LINE: [section] key: what was
 * expected".  Returns 0, QES_ENOENT or QES_ECONFIG.
 */
int qes_config_load_file(struct qes_config *cfg, const char *path, char *err, size_t errlen);

/* The same for INI text in memory; `name` is used in messages. */
int qes_config_load_string(struct qes_config *cfg, const char *text, const char *name, char *err,
                           size_t errlen);

/*
 * Apply one "SECTION.KEY=VALUE" override (SECTION may itself contain a dot:
 * "measure.fund.freq_hz=50").  Creates the section if needed.  Returns 0 or
 * QES_ECONFIG with a message.
 */
int qes_config_set(struct qes_config *cfg, const char *assignment, char *err, size_t errlen);

/*
 * Cross-checks after loading and overrides: required keys present, channels
 * referenced by measurements and simulations exist, list lengths agree,
 * channel indices unique.  Returns 0 or QES_ECONFIG naming the section.
 */
int qes_config_validate(const struct qes_config *cfg, char *err, size_t errlen);

/*
 * The resolved configuration in canonical INI form (every key, defaults
 * included, numbers with %.17g), malloc'd; NULL on allocation failure.  Its
 * SHA-256 identifies the configuration.
 */
char *qes_config_canonical(const struct qes_config *cfg);

/* The gain a channel's values use: gain = auto means 1 unless the caller
 * resolved it (qes run resolves it to the device's scale for kind = iio). */
static inline double qes_cfg_gain(const struct qes_cfg_channel *c)
{
    return c->gain == QES_CFG_AUTO_D ? 1.0 : c->gain;
}

/* Lookups by name; NULL when absent. */
const struct qes_cfg_channel *qes_config_channel(const struct qes_config *cfg, const char *name);
const struct qes_cfg_sim *qes_config_sim(const struct qes_config *cfg, const char *name);

/* Print the option table as help text, and as a commented reference INI. */
void qes_config_print_help(FILE *f);
void qes_config_print_reference(FILE *f);

#endif
