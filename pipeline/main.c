/*
 * qes: the command line.  Subcommands replay, simulate, run, help; exit
 * status 0 success, 1 usage or configuration error, 2 input or device error,
 * 3 success but data was lost or flagged (see DESIGN.md).
 */
#include "common/err.h"
#include "common/utctime.h"
#include "hw/sigmf.h"
#include "hw/source_sigmf.h"
#include "hw/source_sim.h"
#include "bench/bench.h"
#include "bench/bench_live.h"
#include "pipeline/cmd_adev.h"
#include "pipeline/cmd_export.h"
#include "pipeline/config.h"
#include "pipeline/hash.h"
#include "pipeline/live.h"
#include "pipeline/record.h"
#include "pipeline/runtime.h"
#include "qes_version.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_USAGE = 1, EXIT_INPUT = 2, EXIT_FLAGGED = 3 };

#define MAX_SETS  256
#define MAX_SINKS 16

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

struct opts {
    const char *positional;
    const char *config;
    const char *out;
    const char *sets[MAX_SETS];
    size_t n_sets;
    const char *sinks[MAX_SINKS];
    size_t n_sinks;
    double seconds;
    int has_seconds;
    int no_verify;
    uint64_t mc;
    int quiet;
    int help;
    int ini;
    int quick;
    const char *json;
};

static const char *const usage_main =
        "usage: qes COMMAND [ARGS]\n"
        "\n"
        "qes processes digitizer data from quantum electrical standards (Josephson voltage\n"
        "standards, quantum Hall bridges): block lock-in detection of a reference frequency and\n"
        "its harmonics, with a GUM uncertainty on every value, recorded to SQLite, JSON Lines or\n"
        "CSV.\n"
        "\n"
        "commands:\n"
        "  replay CAPTURE.sigmf-meta... [-c CONFIG.ini] [--set K=V]... [-o SINK]...\n"
        "                      process a recorded SigMF capture (deterministic, bit-for-bit)\n"
        "  simulate CONFIG.ini --out NAME [--seconds S] [--set K=V]...\n"
        "                      write a simulated rig as a SigMF capture NAME.sigmf-{meta,data}\n"
        "  run CONFIG.ini [--set K=V]... [-o SINK]...\n"
        "                      process a live source in real time (kind = sim for now)\n"
        "  bench [--quick] [--json FILE]\n"
        "                      measure the lock-in kernels against baselines\n"
        "  adev INPUT [--kind K] [--json FILE]\n"
        "                      Allan-family deviations with confidence intervals and noise\n"
        "                      type of a series (text column, or block results from a .db)\n"
        "  export DB --to csv|jsonl [--run ID] [-o FILE]\n"
        "                      write a results database's records as CSV or JSON Lines\n"
        "  runs DB             list the runs in a results database\n"
        "  help config [--ini] every configuration key with unit, range, default and meaning\n"
        "\n"
        "options: --help (also after each command), --version\n"
        "\n"
        "sinks (-o, repeatable): results.db (SQLite), results.jsonl, results.csv, - (JSON Lines\n"
        "on stdout).  Without -o, results go to qes-results.db.  A one-line summary per\n"
        "measurement and harmonic goes to stderr (value, expanded uncertainty U, k, dof).\n"
        "\n"
        "exit status: 0 success; 1 usage or configuration error; 2 input, device or recorder\n"
        "error; 3 finished, but samples were lost or blocks flagged (gap, clip).\n";

static const char *const usage_replay =
        "usage: qes replay CAPTURE.sigmf-meta... [-c CONFIG.ini] [--set SECTION.KEY=VALUE]...\n"
        "                  [-o SINK]... [--no-verify] [-q]\n"
        "\n"
        "Replays a SigMF capture through the lock-in.  Several captures replay as one run:\n"
        "the files of a rotated raw recording of qes run ([run] record_raw), e.g.\n"
        "`qes replay rec-*.sigmf-meta`, taken in qes:part order whatever the order given.\n"
        "They must share qes:run_id, datatype, sample rate and channels, with no part\n"
        "missing and run indices increasing from file to file; samples lost live (also\n"
        "before a file's first sample) are flagged as they were live.  The configuration\n"
        "comes from -c, or else from the (first) capture's own qes:config (captures written\n"
        "by qes simulate or qes run carry one).\n"
        "--set overrides any key, e.g. --set measure.fund.window=hann.\n"
        "\n"
        "  -c, --config FILE   configuration (INI); see qes help config\n"
        "  --set K=V           override a key (repeatable)\n"
        "  -o, --output SINK   results.db | results.jsonl | results.csv | - (repeatable)\n"
        "  --no-verify         do not check core:sha512 against the data before processing\n"
        "  --mc N              also propagate every final summary by Monte Carlo (GUM\n"
        "                      Supplement 1, N trials): summaries gain \"mc\": standard\n"
        "                      deviation and shortest coverage interval of r (or value)\n"
        "  -q, --quiet         no summary lines on stderr\n"
        "\n"
        "The same captures, configuration and build always give byte-identical block and\n"
        "summary records: times come from core:datetime, the run id from the hashes of the\n"
        "capture metadata and the resolved configuration.\n";

static const char *const usage_simulate =
        "usage: qes simulate CONFIG.ini --out NAME [--seconds S] [--set SECTION.KEY=VALUE]...\n"
        "\n"
        "Writes NAME.sigmf-meta and NAME.sigmf-data from the [source] and [sim.NAME] sections:\n"
        "sines with harmonics, white noise, drift and offset, quantised by an ADC of\n"
        "[source] adc_bits with each channel's gain.  The truth used is stored in the\n"
        "capture's metadata (qes:sim) and the configuration as qes:config, so that\n"
        "`qes replay NAME.sigmf-meta` needs no further arguments.\n"
        "\n"
        "  --out NAME          base name of the capture (required)\n"
        "  --seconds S         length; overrides [source] seconds\n"
        "  --set K=V           override a key (repeatable)\n";

static const char *const usage_run =
        "usage: qes run CONFIG.ini [--set SECTION.KEY=VALUE]... [-o SINK]... [-q]\n"
        "\n"
        "Processes a live source in real time until it ends or SIGINT/SIGTERM, then writes\n"
        "final summaries and closes the recorders.  [source] kind = iio reads an ADC or SDR\n"
        "through libiio (uri = ip:HOST, usb:..., local:; device = name, id or label);\n"
        "kind = sim paces the simulator at its sample rate.  An acquisition thread fills a\n"
        "ring of [run] ring_slots buffers; the processing never stalls it.  Every lost\n"
        "sample (timestamp gaps, samples short of the elapsed time, a full ring, a device\n"
        "that went away and came back) is counted, the blocks it touches are flagged gap,\n"
        "and the run exits 3.  [run] record_raw = PATH keeps the raw samples as a SigMF\n"
        "capture that qes replay turns into the same results; summary_every_s writes\n"
        "intermediate summaries; lock_memory, rt_priority and cpu tune the acquisition\n"
        "thread.  The end line gives block latency (last sample in -> record queued).\n"
        "\n"
        "  --set K=V           override a key (repeatable)\n"
        "  -o, --output SINK   results.db | results.jsonl | results.csv | - (repeatable)\n"
        "  --mc N              Monte Carlo check of the final summaries (see qes replay --help)\n"
        "  -q, --quiet         no summary lines on stderr\n";

static const char *const usage_bench =
        "usage: qes bench [--quick] [--json FILE]\n"
        "\n"
        "Measures the lock-in kernels (DFT and FFT block lock-in) side by side with a naive\n"
        "sin/cos loop and the memory-read limit of this machine, at several block sizes, with\n"
        "the largest error against a long double reference.  Figures are ratios within one\n"
        "run; absolute rates drift with the machine's load.  Then the live latency: a\n"
        "simulated ADC paced at 1 MS/s through the acquisition thread, the ring and the\n"
        "DFT lock-in of 4096-sample blocks, last sample in -> record queued, p50/p99/max,\n"
        "next to liquid-dsp's per-block compute time (3 s with --quick, else 20 s).\n";

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qes%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(try: qes %s%s--help)\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

/* Parse subcommand arguments.  Returns -1 to continue, else an exit status. */
static int parse_args(const char *cmd, int argc, char **argv, struct opts *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_ARG()                                          \
    do {                                                    \
        if (!next)                                          \
            return usage_error(cmd, "%s needs a value", a); \
        i++;                                                \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            o->help = 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            NEED_ARG();
            o->config = next;
        } else if (!strcmp(a, "--set")) {
            NEED_ARG();
            if (o->n_sets == MAX_SETS)
                return usage_error(cmd, "too many --set options");
            o->sets[o->n_sets++] = next;
        } else if (!strncmp(a, "--set=", 6)) {
            if (o->n_sets == MAX_SETS)
                return usage_error(cmd, "too many --set options");
            o->sets[o->n_sets++] = a + 6;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            NEED_ARG();
            if (o->n_sinks == MAX_SINKS)
                return usage_error(cmd, "too many -o sinks");
            o->sinks[o->n_sinks++] = next;
        } else if (!strcmp(a, "--out")) {
            NEED_ARG();
            o->out = next;
        } else if (!strcmp(a, "--seconds")) {
            NEED_ARG();
            char *end;
            o->seconds = strtod(next, &end);
            if (end == next || *end || !(o->seconds > 0) || !isfinite(o->seconds))
                return usage_error(cmd, "--seconds %s: expected a positive number", next);
            o->has_seconds = 1;
        } else if (!strcmp(a, "--mc")) {
            NEED_ARG();
            char *end;
            unsigned long long v = strtoull(next, &end, 10);
            if (end == next || *end || v < 1000 || v > 100000000)
                return usage_error(cmd, "--mc %s: expected a number of trials, 1000..1e8", next);
            o->mc = v;
        } else if (!strcmp(a, "--no-verify")) {
            o->no_verify = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (!strcmp(a, "--ini")) {
            o->ini = 1;
        } else if (!strcmp(a, "--quick")) {
            o->quick = 1;
        } else if (!strcmp(a, "--json")) {
            NEED_ARG();
            o->json = next;
        } else if (a[0] == '-' && a[1]) {
            return usage_error(cmd, "unknown option %s", a);
        } else if (!o->positional) {
            o->positional = a;
        } else {
            return usage_error(cmd, "unexpected argument %s", a);
        }
#undef NEED_ARG
    }
    return -1;
}

static int exit_for(int rc)
{
    return rc == QES_ECONFIG || rc == QES_EINVAL ? EXIT_USAGE : EXIT_INPUT;
}

static int apply_sets(struct qes_config *cfg, const struct opts *o, char *err, size_t errlen)
{
    for (size_t i = 0; i < o->n_sets; i++) {
        int rc = qes_config_set(cfg, o->sets[i], err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- sim description from the configuration ------------------------------ */

static int build_sim(const struct qes_config *cfg, double seconds, int realtime,
                     struct qes_sim_desc *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (!(cfg->source.sample_rate_hz > 0)) {
        snprintf(err, errlen, "[source] sample_rate_hz: the simulator needs a rate > 0");
        return QES_ECONFIG;
    }
    d->sample_rate_hz = cfg->source.sample_rate_hz;
    d->adc_bits = cfg->source.adc_bits;
    d->seed = cfg->source.seed;
    d->realtime = realtime;
    d->n_frames = seconds > 0 ? (uint64_t)llround(seconds * d->sample_rate_hz) : 0;
    if (seconds > 0 && d->n_frames == 0) {
        snprintf(err, errlen, "[source] seconds: %.17g s at %.17g Hz is less than one sample",
                 seconds, d->sample_rate_hz);
        return QES_ECONFIG;
    }
    if (!strcmp(cfg->source.start_time, "now")) {
        d->start_ns = qes_utc_now_ns();
    } else if (qes_utc_parse(cfg->source.start_time, &d->start_ns)) {
        snprintf(err, errlen,
                 "[source] start_time: \"%s\" is not a UTC time YYYY-MM-DDTHH:MM:SS[.f]Z or now",
                 cfg->source.start_time);
        return QES_ECONFIG;
    }
    unsigned nch = 0;
    for (size_t i = 0; i < cfg->n_channel; i++)
        if (cfg->channel[i].index + 1 > nch)
            nch = cfg->channel[i].index + 1;
    if (nch > QES_SIM_MAX_CHANNELS) {
        snprintf(err, errlen, "[channel.*] index: the simulator has at most %d channels",
                 QES_SIM_MAX_CHANNELS);
        return QES_ECONFIG;
    }
    d->n_channels = nch;
    for (unsigned c = 0; c < nch; c++)
        d->ch[c].gain = 1.0;
    for (size_t i = 0; i < cfg->n_channel; i++) {
        const struct qes_cfg_channel *ch = &cfg->channel[i];
        struct qes_sim_channel *sc = &d->ch[ch->index];
        if (d->adc_bits > 0 && !(qes_cfg_gain(ch) > 0)) {
            snprintf(err, errlen, "[channel.%s] gain: the simulated ADC needs a positive gain",
                     ch->name);
            return QES_ECONFIG;
        }
        sc->gain = qes_cfg_gain(ch);
        const struct qes_cfg_sim *s = qes_config_sim(cfg, ch->name);
        if (!s)
            continue;
        sc->freq_hz = s->freq_hz;
        sc->n_harmonics = s->n_harmonics;
        for (size_t k = 0; k < s->n_harmonics; k++) {
            sc->harmonic[k] = s->harmonics[k];
            sc->rms[k] = s->rms[k];
            sc->phase_rad[k] = s->phase_rad[k];
        }
        sc->noise_rms = s->noise_rms;
        sc->flicker_rms = s->flicker_rms;
        sc->offset = s->offset - ch->offset;
        sc->drift_per_s = s->drift_per_s;
    }
    return 0;
}

/* ---- recorders --------------------------------------------------------------- */

struct sinks {
    struct qes_recorder *r[MAX_SINKS];
    size_t n;
};

static int open_sinks(const struct opts *o, const struct qes_config *cfg, struct sinks *s,
                      char *err, size_t errlen)
{
    const struct qes_cfg_record *rc_ = &cfg->record;
    struct qes_recorder_opts ro = {
            .sqlite_synchronous = rc_->sqlite_synchronous,
            .batch_s = rc_->batch_s,
            .batch_records = rc_->batch_records,
            .spool_path = rc_->spool_path,
            .spool_max_mb = rc_->spool_max_mb,
            .zmq_hwm = (int)rc_->zmq_hwm,
    };
    static const char *const def[] = {"qes-results.db"};
    const char *const *names = o->n_sinks ? o->sinks : def;
    size_t n = o->n_sinks ? o->n_sinks : 1;
    for (size_t i = 0; i < n; i++) {
        int rc = qes_recorder_open_ex(names[i], &ro, &s->r[s->n], err, errlen);
        if (rc)
            return rc;
        s->n++;
    }
    return 0;
}

/*
 * How the run ended, into *e (returned), from the runtime's counters.  A
 * replay's run end depends only on its input (replays are byte-identical,
 * also when recorded twice into one database): no wall time (seconds NaN),
 * and t_end from the data, t_start + (samples + lost) / fs.  A live run: the
 * wall time of the loop and the host clock now.  reconnects, frames_dropped
 * and the latencies are not measured yet (0, NaN).
 */
static const struct qes_run_end *run_end_of(struct qes_run_end *e, int status,
                                            const struct qes_runtime_stats *rs,
                                            const struct qes_run_rec *run, int live)
{
    *e = qes_run_end_of_status(status);
    e->samples = rs->frames;
    e->lost = rs->lost;
    e->gaps = rs->gaps;
    if (live) {
        e->seconds = rs->seconds;
        e->t_end_ns = qes_utc_now_ns();
    } else if (run->sample_rate_hz > 0) {
        e->t_end_ns = run->t_start_ns + (int64_t)llroundl((long double)(rs->frames + rs->lost) *
                                                          1e9L / run->sample_rate_hz);
    } else {
        e->t_end_ns = run->t_start_ns;
    }
    return e;
}

/*
 * Close every sink, giving each how the run ended.  Returns the first sink
 * error (message in err), else QES_ERANGE when a sink of record lost records
 * (a full spool), which the caller turns into exit status 3; a best-effort
 * stream's drops are only reported.
 */
static int close_sinks(struct sinks *s, const struct qes_run_end *end, char *err, size_t errlen)
{
    int first = 0, lost = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct qes_recorder *r = s->r[i];
        int rc = r->ops->close(r, end);
        if (rc && !first) {
            first = rc;
            snprintf(err, errlen, "%s", r->errmsg);
        }
        if (r->best_effort && (r->n_acked || r->n_lost))
            fprintf(stderr, "qes: stream %s: %llu record(s) sent, %llu dropped (best effort)\n",
                    r->target, (unsigned long long)r->n_acked, (unsigned long long)r->n_lost);
        else if (r->n_lost) {
            fprintf(stderr,
                    "qes: ERROR: %s could not keep %llu record(s): they are lost (see the "
                    "warnings above)\n",
                    r->target, (unsigned long long)r->n_lost);
            lost = 1;
        }
        qes_recorder_destroy(s->r[i]);
    }
    s->n = 0;
    return first ? first : lost ? QES_ERANGE : 0;
}

static void destroy_sinks(struct sinks *s)
{
    for (size_t i = 0; i < s->n; i++)
        qes_recorder_destroy(s->r[i]);
    s->n = 0;
}

/* Run id: a UUID (RFC 9562 version 8, vendor-defined) from the SHA-256 of the
 * version, the configuration hash and the input identity, so that a replay of
 * the same capture with the same configuration gets the same id. */
static void derive_run_id(const char *config_sha, const char *input_id, char id[37])
{
    char text[1024];
    snprintf(text, sizeof text, "qes-run-v1\n%s\n%s\n%s\n", QES_VERSION, config_sha, input_id);
    unsigned char h[32];
    qes_sha256(text, strlen(text), h);
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80);
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            id[j++] = '-';
        id[j++] = hex[h[i] >> 4];
        id[j++] = hex[h[i] & 15];
    }
    id[j] = '\0';
}

static void random_run_id(char id[37])
{
    char seed[128];
    snprintf(seed, sizeof seed, "%lld %ld %p", (long long)qes_utc_now_ns(), (long)getpid(),
             (void *)&seed);
    unsigned char rnd[32] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(rnd, 1, sizeof rnd, f) != sizeof rnd)
            memset(rnd, 0, sizeof rnd);
        fclose(f);
    }
    char mix[256];
    char hexr[65];
    qes_hex(rnd, sizeof rnd, hexr);
    snprintf(mix, sizeof mix, "%s %s", seed, hexr);
    derive_run_id("live", mix, id);
}

static int report(const struct qes_runtime_stats *st, int quiet)
{
    int flagged = st->lost || st->gap_blocks || st->clip_blocks || st->quality_blocks;
    if (flagged)
        fprintf(stderr,
                "qes: WARNING: %llu sample(s) per channel lost in %llu gap(s); block records "
                "flagged: %llu gap, %llu clip, %llu quality (left out of the summaries)\n",
                (unsigned long long)st->lost, (unsigned long long)st->gaps,
                (unsigned long long)st->gap_blocks, (unsigned long long)st->clip_blocks,
                (unsigned long long)st->quality_blocks);
    if (!quiet && st->partial_blocks)
        fprintf(stderr,
                "qes: note: %llu block record(s) flagged partial (the data ended inside a "
                "block; left out of the summaries)\n",
                (unsigned long long)st->partial_blocks);
    return flagged ? EXIT_FLAGGED : EXIT_OK;
}

static FILE *progress_stream(const struct qes_config *cfg)
{
    if (!strcmp(cfg->run.progress, "on"))
        return stderr;
    if (!strcmp(cfg->run.progress, "auto") && isatty(fileno(stderr)))
        return stderr;
    return NULL;
}

/* ---- replay -------------------------------------------------------------------------- */

static int cmd_replay(int argc, char **argv)
{
    /* The captures are every argument that is neither an option nor an
     * option's value (the options taking a value are those of parse_args,
     * which keeps one positional: it sees the first capture only). */
    static const char *const with_value[] = {"-c",    "--config",  "--set", "-o",    "--output",
                                             "--out", "--seconds", "--mc",  "--json"};
    char **args = malloc(((size_t)argc + 1) * sizeof *args);
    const char **names = malloc(((size_t)argc + 1) * sizeof *names);
    if (!args || !names) {
        free(args);
        free(names);
        fprintf(stderr, "qes replay: out of memory\n");
        return EXIT_INPUT;
    }
    int n_args = 0;
    size_t n_names = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!(a[0] == '-' && a[1])) {
            if (n_names == 0)
                args[n_args++] = argv[i];
            names[n_names++] = a;
            continue;
        }
        args[n_args++] = argv[i];
        for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++) {
            if (!strcmp(a, with_value[k]) && i + 1 < argc) {
                args[n_args++] = argv[++i];
                break;
            }
        }
    }
    struct opts o = {0};
    int st = parse_args("replay", n_args, args, &o);
    free(args);
    if (st >= 0) {
        free(names);
        return st;
    }
    if (o.help) {
        free(names);
        fputs(usage_replay, stdout);
        return EXIT_OK;
    }
    if (!n_names) {
        free(names);
        return usage_error("replay", "missing CAPTURE.sigmf-meta");
    }
    char err[9000] = "";
    int rc, status = EXIT_INPUT;
    struct qes_source *src = NULL;
    struct sinks sinks = {0};
    char *canon = NULL, *input_json = NULL, *ids = NULL;
    json_t *in = NULL;
    struct qes_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        free(names);
        fprintf(stderr, "qes replay: out of memory\n");
        return EXIT_INPUT;
    }
    qes_config_init(cfg);

    /* One capture, or the files of one run (checked, each sha512 verified). */
    rc = qes_source_sigmf_open_set(names, n_names, !o.no_verify, 0, &src, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qes replay: %s\n", err);
        status = rc == QES_EINVAL ? EXIT_USAGE : EXIT_INPUT;
        goto out;
    }
    const struct qes_sigmf_info *info = qes_source_sigmf_info(src); /* the first file's */
    const size_t n_files = qes_source_sigmf_n_files(src);
    for (size_t k = 0; k < n_files && !o.quiet; k++) {
        const struct qes_sigmf_file *fk = qes_source_sigmf_file(src, k);
        if (!fk->sha512[0])
            fprintf(stderr,
                    "qes replay: warning: %s has no core:sha512; the data cannot be checked "
                    "for corruption\n",
                    fk->meta_path);
    }

    if (o.config) {
        rc = qes_config_load_file(cfg, o.config, err, sizeof err);
    } else {
        json_t *qc = json_object_get(info->meta, "global");
        qc = qc ? json_object_get(qc, "qes:config") : NULL;
        if (!json_is_string(qc)) {
            fprintf(stderr,
                    "qes replay: %s carries no qes:config; give a configuration with -c "
                    "CONFIG.ini (see qes help config)\n",
                    info->meta_path);
            status = EXIT_USAGE;
            goto out;
        }
        char name[4200];
        snprintf(name, sizeof name, "%s (global.qes:config)", info->meta_path);
        rc = qes_config_load_string(cfg, json_string_value(qc), name, err, sizeof err);
    }
    if (!rc)
        rc = apply_sets(cfg, &o, err, sizeof err);
    if (!rc) {
        snprintf(cfg->source.kind, sizeof cfg->source.kind, "sigmf");
        /* The capture's path is in the run's input record; keeping it out of
         * the configuration keeps the run id the same wherever the capture
         * lies. */
        cfg->source.path[0] = '\0';
        rc = qes_config_validate(cfg, err, sizeof err);
    }
    if (rc) {
        fprintf(stderr, "qes replay: %s\n", err);
        status = EXIT_USAGE;
        goto out;
    }
    if (cfg->n_measure == 0) {
        fprintf(stderr, "qes replay: %s: no [measure.NAME] section: nothing to measure\n",
                o.config ? o.config : info->meta_path);
        status = EXIT_USAGE;
        goto out;
    }

    /* gain = auto is 1 for a capture: the run record shows the number used */
    for (size_t i = 0; i < cfg->n_channel; i++)
        cfg->channel[i].gain = qes_cfg_gain(&cfg->channel[i]);
    canon = qes_config_canonical(cfg);
    if (!canon) {
        fprintf(stderr, "qes replay: out of memory\n");
        goto out;
    }
    /* The input: every file, with the hash of its metadata (which holds its
     * data's sha512); its identity, for the run id, is that hash for one
     * file, else the SHA-256 of the files' hashes in replay order. */
    const struct qes_sigmf_file *f0 = qes_source_sigmf_file(src, 0);
    json_t *files = json_array();
    ids = malloc(n_files * 65 + 1);
    uint64_t total = 0;
    int all_verified = 1, bad = 0;
    char meta_sha[65] = "";
    if (!files || !ids) {
        json_decref(files);
        fprintf(stderr, "qes replay: out of memory\n");
        goto out;
    }
    for (size_t k = 0; k < n_files; k++) {
        const struct qes_sigmf_file *fk = qes_source_sigmf_file(src, k);
        size_t meta_len = 0;
        if (qes_sha256_file(fk->meta_path, meta_sha, &meta_len)) {
            json_decref(files);
            fprintf(stderr, "qes replay: %s: cannot hash the metadata\n", fk->meta_path);
            goto out;
        }
        memcpy(ids + 65 * k, meta_sha, 64);
        ids[65 * k + 64] = '\n';
        total += fk->n_frames;
        all_verified &= fk->sha512_verified;
        bad |= json_array_append_new(files, json_pack("{s:s, s:s, s:s, s:b, s:I, s:I}", "meta",
                                                      fk->meta_path, "meta_sha256", meta_sha,
                                                      "data_sha512", fk->sha512, "sha512_verified",
                                                      fk->sha512_verified, "n_frames",
                                                      (json_int_t)fk->n_frames, "first_index",
                                                      (json_int_t)fk->first_index));
    }
    struct qes_run_rec run = {
            .command = "replay",
            .version = QES_VERSION,
            .build = QES_BUILD_FLAGS,
            .config_ini = canon,
            .sample_rate_hz = info->sample_rate_hz,
    };
    /* UTC of sample 0: before the first sample by the samples lost before
     * it (the run's first frames lost live), as run_end_of counts them. */
    if (info->captures[0].has_datetime)
        run.t_start_ns = info->captures[0].datetime_ns -
                         (int64_t)llroundl((long double)f0->lost_before_first * 1e9L /
                                           (long double)info->sample_rate_hz);
    qes_sha256_hex(canon, strlen(canon), run.config_sha256);
    char input_id[65];
    if (n_files == 1)
        memcpy(input_id, meta_sha, sizeof input_id);
    else
        qes_sha256_hex(ids, 65 * n_files, input_id);
    derive_run_id(run.config_sha256, input_id, run.id);
    if (n_files == 1) {
        json_decref(files);
        in = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:f, s:I}", "kind", "sigmf", "meta",
                       f0->meta_path, "meta_sha256", meta_sha, "data_sha512", f0->sha512,
                       "datatype", qes_dtype_name(info->dtype), "sha512_verified",
                       f0->sha512_verified, "num_channels", (int)info->num_channels,
                       "sample_rate_hz", info->sample_rate_hz, "n_frames", (json_int_t)total);
    } else {
        in = json_pack("{s:s, s:s, s:b, s:i, s:f, s:I, s:o}", "kind", "sigmf", "datatype",
                       qes_dtype_name(info->dtype), "sha512_verified", all_verified, "num_channels",
                       (int)info->num_channels, "sample_rate_hz", info->sample_rate_hz, "n_frames",
                       (json_int_t)total, "files", files);
    }
    input_json = in && !bad ? json_dumps(in, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    if (!input_json) {
        fprintf(stderr, "qes replay: out of memory\n");
        goto out;
    }
    run.input_json = input_json;

    rc = open_sinks(&o, cfg, &sinks, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qes replay: %s\n", err);
        status = rc == QES_EINVAL ? EXIT_USAGE : EXIT_INPUT;
        goto out;
    }
    struct qes_runtime_desc rd_desc = {
            .cfg = cfg,
            .src = src,
            .recs = sinks.r,
            .n_recs = sinks.n,
            .run = &run,
            .human = o.quiet ? NULL : stderr,
            .progress = progress_stream(cfg),
            .total_frames = total,
            .stop = &g_stop,
            .mc_trials = o.mc,
    };
    struct qes_runtime_stats rs;
    rc = qes_runtime_execute(&rd_desc, &rs, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qes replay: %s\n", err);
        status = exit_for(rc);
        char e2[9000];
        close_sinks(&sinks, run_end_of(&(struct qes_run_end){0}, status, &rs, &run, 0), e2,
                    sizeof e2);
        goto out;
    }
    status = report(&rs, o.quiet);
    if (g_stop) {
        fprintf(stderr, "qes replay: interrupted after %llu samples; summaries cover only those\n",
                (unsigned long long)rs.frames);
        status = EXIT_FLAGGED;
    }
    rc = close_sinks(&sinks, run_end_of(&(struct qes_run_end){0}, status, &rs, &run, 0), err,
                     sizeof err);
    if (rc == QES_ERANGE) {
        status = EXIT_FLAGGED; /* records lost by a sink of record */
    } else if (rc) {
        fprintf(stderr, "qes replay: %s\n", err);
        status = EXIT_INPUT;
    }
out:
    destroy_sinks(&sinks);
    qes_source_destroy(src);
    json_decref(in);
    free(canon);
    free(input_json);
    free(ids);
    free(names);
    free(cfg);
    return status;
}

/* ---- simulate ------------------------------------------------------------------------ */

static int load_config_arg(const char *cmd, const struct opts *o, struct qes_config *cfg)
{
    char err[9000];
    if (!o->positional)
        return usage_error(cmd, "missing CONFIG.ini");
    int rc = qes_config_load_file(cfg, o->positional, err, sizeof err);
    if (!rc)
        rc = apply_sets(cfg, o, err, sizeof err);
    if (!rc)
        rc = qes_config_validate(cfg, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qes %s: %s\n", cmd, err);
        return EXIT_USAGE;
    }
    return -1;
}

static int cmd_simulate(int argc, char **argv)
{
    struct opts o = {0};
    int st = parse_args("simulate", argc, argv, &o);
    if (st >= 0)
        return st;
    if (o.help) {
        fputs(usage_simulate, stdout);
        return EXIT_OK;
    }
    if (!o.out)
        return usage_error("simulate", "missing --out NAME");
    struct qes_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return EXIT_INPUT;
    qes_config_init(cfg);
    int status = load_config_arg("simulate", &o, cfg);
    char err[9000] = "";
    struct qes_source *src = NULL;
    struct qes_sigmf_writer *w = NULL;
    char *truth = NULL, *extra = NULL, *canon = NULL;
    if (status >= 0)
        goto out;
    status = EXIT_USAGE;
    if (cfg->n_sim == 0) {
        fprintf(stderr, "qes simulate: %s: no [sim.NAME] section: nothing to simulate\n",
                o.positional);
        goto out;
    }
    double seconds = o.has_seconds ? o.seconds : cfg->source.seconds;
    if (!(seconds > 0)) {
        fprintf(stderr, "qes simulate: [source] seconds: a capture needs a length > 0 (or "
                        "--seconds S)\n");
        goto out;
    }
    struct qes_sim_desc sd;
    int rc = build_sim(cfg, seconds, 0, &sd, err, sizeof err);
    if (!rc)
        rc = qes_source_sim_create(&sd, &src, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qes simulate: %s: %s\n", o.positional, err);
        goto out;
    }
    enum qes_dtype dt;
    const char *dts = cfg->source.datatype;
    if (!strcmp(dts, "auto"))
        dts = sd.adc_bits == 0 ? "rf64_le" : sd.adc_bits <= 16 ? "ri16_le" : "ri32_le";
    qes_dtype_parse(dts, &dt);
    if ((dt == QES_DT_RI16_LE && (sd.adc_bits == 0 || sd.adc_bits > 16)) ||
        (dt == QES_DT_RI32_LE && sd.adc_bits == 0)) {
        fprintf(stderr, "qes simulate: [source] datatype: %s cannot hold %u-bit samples%s\n", dts,
                sd.adc_bits,
                sd.adc_bits == 0 ? " (unquantised values need rf32_le or rf64_le)" : "");
        goto out;
    }
    /* The configuration stored in the capture, resolved for replay: the data
     * are raw counts (or values when unquantised), and the ADC's full scale
     * flags clipping. */
    struct qes_config *rc_cfg = malloc(sizeof *rc_cfg);
    if (!rc_cfg) {
        status = EXIT_INPUT;
        goto out;
    }
    *rc_cfg = *cfg;
    snprintf(rc_cfg->source.kind, sizeof rc_cfg->source.kind, "sigmf");
    rc_cfg->source.path[0] = '\0';
    for (size_t i = 0; i < rc_cfg->n_channel; i++) {
        struct qes_cfg_channel *ch = &rc_cfg->channel[i];
        ch->gain = qes_cfg_gain(ch); /* the number the capture was made with */
        if (sd.adc_bits == 0) {
            ch->gain = 1.0;
            ch->offset = 0.0;
        } else if (ch->clip_counts == 0) {
            ch->clip_counts = ldexp(1.0, (int)sd.adc_bits - 1) - 1;
        }
    }
    canon = qes_config_canonical(rc_cfg);
    free(rc_cfg);
    truth = qes_sim_truth_json(&sd);
    json_t *g = json_object();
    json_error_t je;
    json_t *tj = truth ? json_loads(truth, 0, &je) : NULL;
    if (!g || !tj || !canon) {
        json_decref(g);
        json_decref(tj);
        fprintf(stderr, "qes simulate: out of memory\n");
        status = EXIT_INPUT;
        goto out;
    }
    json_object_set_new(g, "qes:sim", tj);
    json_object_set_new(g, "qes:config", json_string(canon));
    extra = json_dumps(g, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(g);
    struct qes_sigmf_writer_desc wd = {
            .path = o.out,
            .dtype = dt,
            .sample_rate_hz = sd.sample_rate_hz,
            .num_channels = sd.n_channels,
            .datetime_ns = sd.start_ns,
            .description = "qes simulated rig",
            .extra_global_json = extra,
    };
    rc = qes_sigmf_writer_create(&wd, &w, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qes simulate: %s\n", err);
        status = EXIT_INPUT;
        goto out;
    }
    struct qes_frame f;
    uint64_t done = 0;
    while ((rc = qes_source_read(src, &f, 65536)) > 0) {
        rc = qes_sigmf_writer_write(w, f.samples, f.n);
        if (rc) {
            fprintf(stderr, "qes simulate: %s\n", qes_sigmf_writer_errmsg(w));
            break;
        }
        done += f.n;
    }
    if (rc < 0) {
        if (src->errmsg[0])
            fprintf(stderr, "qes simulate: %s\n", src->errmsg);
        qes_sigmf_writer_close(w, err, sizeof err);
        w = NULL;
        status = EXIT_INPUT;
        goto out;
    }
    rc = qes_sigmf_writer_close(w, err, sizeof err);
    w = NULL;
    if (rc) {
        fprintf(stderr, "qes simulate: %s\n", err);
        status = EXIT_INPUT;
        goto out;
    }
    fprintf(stderr,
            "qes simulate: wrote %s.sigmf-meta and %s.sigmf-data: %llu samples x %u "
            "channel(s) at %.17g Hz, %s\n",
            o.out, o.out, (unsigned long long)done, sd.n_channels, sd.sample_rate_hz, dts);
    status = EXIT_OK;
out:
    if (w)
        qes_sigmf_writer_close(w, err, sizeof err);
    qes_source_destroy(src);
    free(truth);
    free(extra);
    free(canon);
    free(cfg);
    return status;
}

/* ---- run ------------------------------------------------------------------------------- */

static int cmd_run(int argc, char **argv)
{
    struct opts o = {0};
    int st = parse_args("run", argc, argv, &o);
    if (st >= 0)
        return st;
    if (o.help) {
        fputs(usage_run, stdout);
        return EXIT_OK;
    }
    struct qes_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return EXIT_INPUT;
    qes_config_init(cfg);
    int status = load_config_arg("run", &o, cfg);
    char err[9000] = "";
    struct qes_live *live = NULL;
    struct sinks sinks = {0};
    char *canon = NULL, *input = NULL;
    if (status >= 0)
        goto out;
    status = EXIT_USAGE;
    if (strcmp(cfg->source.kind, "sim") && strcmp(cfg->source.kind, "iio")) {
        fprintf(stderr,
                "qes run: %s: [source] kind = %s: live runs take kind = sim or iio (use qes "
                "replay for captures)\n",
                o.positional, cfg->source.kind);
        goto out;
    }
    if (cfg->n_measure == 0) {
        fprintf(stderr, "qes run: %s: no [measure.NAME] section: nothing to measure\n",
                o.positional);
        goto out;
    }
    /* signals first: a device that takes long to open can be interrupted */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc;
    int64_t t_start_ns;
    if (!strcmp(cfg->source.kind, "sim")) {
        struct qes_sim_desc sd;
        struct qes_source *sim = NULL;
        rc = build_sim(cfg, cfg->source.seconds, 1, &sd, err, sizeof err);
        if (!rc)
            rc = qes_source_sim_create(&sd, &sim, err, sizeof err);
        if (!rc)
            rc = qes_live_open(cfg, sim, sd.n_frames, &g_stop, stderr, &live, err, sizeof err);
        t_start_ns = sd.start_ns;
    } else {
        rc = qes_live_open(cfg, NULL, 0, &g_stop, stderr, &live, err, sizeof err);
        t_start_ns = qes_utc_now_ns();
    }
    if (rc) {
        fprintf(stderr, "qes run: %s: %s\n", o.positional, err);
        status = exit_for(rc);
        goto out;
    }
    canon = qes_config_canonical(cfg); /* gains resolved by qes_live_open */
    input = qes_live_input_json(live);
    if (!canon || !input) {
        status = EXIT_INPUT;
        goto out;
    }
    struct qes_run_rec run = {
            .command = "run",
            .version = QES_VERSION,
            .build = QES_BUILD_FLAGS,
            .config_ini = canon,
            .input_json = input,
            .t_start_ns = t_start_ns,
            .sample_rate_hz = qes_live_sample_rate(live),
    };
    qes_sha256_hex(canon, strlen(canon), run.config_sha256);
    random_run_id(run.id);
    rc = qes_live_tee(live, run.id, canon, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qes run: %s\n", err);
        status = EXIT_INPUT;
        goto out;
    }
    rc = open_sinks(&o, cfg, &sinks, err, sizeof err);
    if (rc) {
        fprintf(stderr, "qes run: %s\n", err);
        status = rc == QES_EINVAL ? EXIT_USAGE : EXIT_INPUT;
        goto out;
    }
    struct qes_runtime_desc rd = {
            .cfg = cfg,
            .src = qes_live_source(live),
            .recs = sinks.r,
            .n_recs = sinks.n,
            .run = &run,
            .live = 1,
            .stop = &g_stop,
            .human = o.quiet ? NULL : stderr,
            .progress = progress_stream(cfg),
            .total_frames = qes_live_total_frames(live),
            .mc_trials = o.mc,
    };
    struct qes_runtime_stats rs;
    rc = qes_runtime_execute(&rd, &rs, err, sizeof err);
    struct qes_live_stats ls;
    qes_live_finish(live, &ls);
    live = NULL;
    if (rc && !rs.source_failed) {
        fprintf(stderr, "qes run: %s\n", err);
        status = exit_for(rc);
    } else {
        if (rc)
            fprintf(stderr, "qes run: the source failed: %s; final summaries written\n", err);
        status = report(&rs, o.quiet);
        if (rc)
            status = EXIT_INPUT;
    }
    if (!o.quiet || rs.lost || ls.raw_failed)
        fprintf(stderr,
                "qes run: %llu samples per channel; lost %llu (%llu inferred at the device in "
                "%llu gap(s), %llu in %llu buffer(s) dropped with the ring full); "
                "reconnections %llu; block latency p50 %.1f us, p99 %.1f us, max %.1f us over "
                "%llu blocks%s\n",
                (unsigned long long)rs.frames, (unsigned long long)rs.lost,
                (unsigned long long)ls.device_lost, (unsigned long long)ls.device_gaps,
                (unsigned long long)ls.samples_dropped, (unsigned long long)ls.frames_dropped,
                (unsigned long long)ls.reconnects, rs.latency_p50_us, rs.latency_p99_us,
                rs.latency_max_us, (unsigned long long)rs.latency_n,
                ls.raw_failed ? "; RAW RECORDING INCOMPLETE" : "");
    if (ls.raw_failed && status == EXIT_OK)
        status = EXIT_FLAGGED; /* the raw data of record is incomplete */
    if (cfg->run.record_raw[0] && !o.quiet)
        fprintf(stderr, "qes run: raw samples in %u file(s) at %s (%llu bytes)\n", ls.raw_files,
                cfg->run.record_raw, (unsigned long long)ls.raw_bytes);
    if (g_stop && !o.quiet)
        fprintf(stderr, "qes run: stopped by signal after %llu samples; final summaries written\n",
                (unsigned long long)rs.frames);
    struct qes_run_end end;
    run_end_of(&end, status, &rs, &run, 1);
    end.reconnects = ls.reconnects;
    end.frames_dropped = ls.frames_dropped;
    end.latency_n = rs.latency_n;
    end.latency_p50_us = rs.latency_p50_us;
    end.latency_p99_us = rs.latency_p99_us;
    end.latency_max_us = rs.latency_max_us;
    int crc = close_sinks(&sinks, &end, err, sizeof err);
    if (crc == QES_ERANGE) {
        if (status == EXIT_OK)
            status = EXIT_FLAGGED; /* records lost by a sink of record */
    } else if (crc) {
        fprintf(stderr, "qes run: %s\n", err);
        status = EXIT_INPUT;
    }
out:
    if (live) {
        struct qes_live_stats ls2;
        qes_live_finish(live, &ls2);
    }
    destroy_sinks(&sinks);
    free(canon);
    free(input);
    free(cfg);
    return status;
}

static int cmd_bench(int argc, char **argv)
{
    struct opts o = {0};
    int st = parse_args("bench", argc, argv, &o);
    if (st >= 0)
        return st;
    if (o.help) {
        fputs(usage_bench, stdout);
        return EXIT_OK;
    }
    if (o.positional)
        return usage_error("bench", "unexpected argument %s", o.positional);
    if (qes_bench_main(o.quick, o.json, stdout))
        return EXIT_INPUT;
    struct qes_bench_live_result lr;
    return qes_bench_live(o.quick, stdout, &lr) ? EXIT_INPUT : EXIT_OK;
}

static int cmd_help(int argc, char **argv)
{
    struct opts o = {0};
    int st = parse_args("help", argc, argv, &o);
    if (st >= 0)
        return st;
    if (!o.positional) {
        fputs(usage_main, stdout);
        return EXIT_OK;
    }
    if (!strcmp(o.positional, "config")) {
        if (o.ini)
            qes_config_print_reference(stdout);
        else
            qes_config_print_help(stdout);
        return EXIT_OK;
    }
    static const struct {
        const char *name, *text;
    } topics[] = {
            {"replay", NULL}, {"simulate", NULL}, {"run", NULL}, {"bench", NULL}, {"adev", NULL}};
    const char *texts[] = {usage_replay, usage_simulate, usage_run, usage_bench, qes_usage_adev};
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        if (!strcmp(o.positional, topics[i].name)) {
            fputs(texts[i], stdout);
            return EXIT_OK;
        }
    return usage_error(
            "help", "no help on \"%s\"; topics: config replay simulate run bench adev export runs",
            o.positional);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage_main, stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("qes %s\nbuild: %s\n", QES_VERSION, QES_BUILD_FLAGS);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "replay"))
        return cmd_replay(argc - 2, argv + 2);
    if (!strcmp(cmd, "simulate"))
        return cmd_simulate(argc - 2, argv + 2);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "help"))
        return cmd_help(argc - 2, argv + 2);
    if (!strcmp(cmd, "adev"))
        return qes_cmd_adev(argc - 2, argv + 2, stdout, stderr);
    if (!strcmp(cmd, "export"))
        return qes_cmd_export(argc - 2, argv + 2, stdout, stderr);
    if (!strcmp(cmd, "runs"))
        return qes_cmd_runs(argc - 2, argv + 2, stdout, stderr);
    fprintf(stderr, "qes: unknown command \"%s\"\n\n%s", cmd, usage_main);
    return EXIT_USAGE;
}
