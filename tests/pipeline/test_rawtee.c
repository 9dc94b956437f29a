/*
 * Tests of the raw tee (pipeline/rawtee.h): what a run received, written as
 * SigMF and read back with the replay source, is the same samples with the
 * same gaps at the same run indices; rotation makes numbered files that are
 * each a valid capture (sha512 verified by the reader) and together cover
 * the run; replayed as one set (qes_source_sigmf_open_set), the files give
 * back, per run index, the samples and the losses the live consumer saw
 * (also before a file's first sample: qes:lost_before_first), and the
 * runtime's records, flags included, are those of the live run; a write
 * error stops the tee with a message, for good.
 */
#include "pipeline/rawtee.h"
#include "pipeline/config.h"
#include "pipeline/record.h"
#include "pipeline/runtime.h"

#include "common/err.h"
#include "hw/sigmf.h"
#include "hw/source_sigmf.h"
#include "hw/source_sim.h"
#include "tests/hw/sigmf_fixture.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(rawtee, .init = qes_fx_setup, .fini = qes_fx_teardown, .timeout = 120);

#define FS    100000.0 /* 10 us per sample: host times are exact in ns */
#define NCH   2
#define FRAME 1000
#define T0    INT64_C(1700000000000000000)

static const char run_id[] = "0c9f6a2e-5b7d-4e1a-9d3c-2f8b6a1e7c40";
static const char config[] =
        "[run]\nsource = sim\n; a comment with \"quotes\" and UTF-8: \xc2\xb5V\n";

/* A 2-channel 16-bit sim (counts), n samples per channel. */
static struct qes_source *sim_make(uint64_t n)
{
    struct qes_sim_desc d;
    memset(&d, 0, sizeof d);
    d.sample_rate_hz = FS;
    d.n_channels = NCH;
    d.adc_bits = 16;
    d.seed = 11;
    d.n_frames = n;
    d.start_ns = T0;
    for (unsigned c = 0; c < NCH; c++) {
        d.ch[c].freq_hz = 50.0 * (c + 1);
        d.ch[c].n_harmonics = 1;
        d.ch[c].harmonic[0] = 1;
        d.ch[c].rms[0] = 0.6;
        d.ch[c].noise_rms = 0.01;
        d.ch[c].gain = 1.0 / 32768.0;
    }
    char err[512] = "";
    struct qes_source *s = NULL;
    int rc = qes_source_sim_create(&d, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "sim: %s", err);
    return s;
}

static struct qes_rawtee *tee_open(const char *path, uint64_t max_bytes, double max_seconds)
{
    struct qes_rawtee_desc d = {
            .path = path,
            .dtype = QES_DT_RI16_LE,
            .sample_rate_hz = FS,
            .num_channels = NCH,
            .max_bytes = max_bytes,
            .max_seconds = max_seconds,
            .run_id = run_id,
            .config_ini = config,
            .description = "raw tee test",
    };
    char err[1024] = "";
    struct qes_rawtee *t = NULL;
    int rc = qes_rawtee_open(&d, &t, err, sizeof err);
    cr_assert_eq(rc, 0, "open %s: %s (%s)", path, qes_err_name(rc), err);
    return t;
}

static void tee_close_ok(struct qes_rawtee *t)
{
    char err[1024] = "";
    int rc = qes_rawtee_close(t, err, sizeof err);
    cr_assert_eq(rc, 0, "close: %s (%s)", qes_err_name(rc), err);
}

/* What the tee was given: samples kept (interleaved) and the gaps. */
struct record {
    double *x;
    uint64_t n;     /* samples per channel kept */
    uint64_t *run;  /* run index of each kept sample */
    uint64_t *lost; /* lost_before the live consumer saw just before each kept sample
                       (the frame's for its first sample, 0 for the others) */
    uint64_t gap_at[64], gap_len[64];
    size_t n_gaps;
    uint64_t end; /* run index after the last kept sample */
};

static int dropped(uint64_t k, const uint64_t *drop, size_t nd)
{
    for (size_t i = 0; i < nd; i++)
        if (drop[i] == k)
            return 1;
    return 0;
}

/*
 * Read a sim of n_frames frames of FRAME samples and tee every frame except
 * those listed in drop; the frame after a dropped run of frames carries
 * lost_before as a live source would.  Returns what was kept.
 */
static struct record tee_sim(struct qes_rawtee *t, uint64_t n_frames, const uint64_t *drop,
                             size_t nd)
{
    struct record r;
    memset(&r, 0, sizeof r);
    r.x = malloc(n_frames * FRAME * NCH * sizeof *r.x);
    r.run = malloc(n_frames * FRAME * sizeof *r.run);
    r.lost = calloc(n_frames * FRAME, sizeof *r.lost);
    cr_assert(r.x && r.run && r.lost);
    struct qes_source *s = sim_make(n_frames * FRAME);
    uint64_t pending = 0;
    for (uint64_t k = 0; k < n_frames; k++) {
        struct qes_frame f;
        cr_assert_eq(qes_source_read(s, &f, FRAME), 1);
        cr_assert_eq(f.n, FRAME);
        if (dropped(k, drop, nd)) {
            pending += f.n;
            continue;
        }
        f.lost_before = pending;
        if (pending) {
            cr_assert(r.n_gaps < 64);
            r.gap_at[r.n_gaps] = f.first_sample;
            r.gap_len[r.n_gaps++] = pending;
        }
        pending = 0;
        int rc = qes_rawtee_write(t, &f);
        cr_assert_eq(rc, 0, "frame %llu: %s (%s)", (unsigned long long)k, qes_err_name(rc),
                     qes_rawtee_errmsg(t));
        memcpy(r.x + r.n * NCH, f.samples, f.n * NCH * sizeof *r.x);
        for (size_t i = 0; i < f.n; i++)
            r.run[r.n + i] = f.first_sample + i;
        r.lost[r.n] = f.lost_before;
        r.n += f.n;
        r.end = f.first_sample + f.n;
    }
    qes_source_destroy(s);
    return r;
}

static void record_free(struct record *r)
{
    free(r->x);
    free(r->run);
    free(r->lost);
}

/* Open a capture with sha512 verification; checks the run metadata. */
static struct qes_sigmf_reader *open_verified(const char *base)
{
    char err[1024] = "";
    struct qes_sigmf_reader *rd = NULL;
    int rc = qes_sigmf_open(base, 1, &rd, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s (%s)", base, qes_err_name(rc), err);
    const struct qes_sigmf_info *in = qes_sigmf_get_info(rd);
    cr_assert_eq(in->sha512_verified, 1, "%s: sha512 present and verified", base);
    cr_assert_eq(in->dtype, QES_DT_RI16_LE);
    cr_assert_eq(in->num_channels, NCH);
    cr_assert_eq(in->sample_rate_hz, FS);
    const json_t *g = json_object_get(in->meta, "global");
    cr_assert_str_eq(json_string_value(json_object_get(g, "qes:run_id")), run_id);
    cr_assert_str_eq(json_string_value(json_object_get(g, "qes:config")), config);
    cr_assert_str_eq(json_string_value(json_object_get(g, "core:description")), "raw tee test");
    return rd;
}

/* Replay state across the files of a recording. */
struct replay {
    uint64_t n;        /* samples per channel replayed */
    uint64_t next_run; /* run index after the last one */
    size_t n_gaps;     /* gaps seen (lost_before, or a jump between files) */
};

/*
 * Replay one file with the SigMF source and compare with the record from
 * sample rep->n on: samples bit-identical, run indices and host times
 * those the tee was given, gaps (lost_before, or for the first frame of a
 * file a jump of first_sample past the previous file's end) where the
 * record has them.
 */
static void replay_file(const char *base, const struct record *r, struct replay *rep)
{
    struct qes_sigmf_reader *rd = open_verified(base);
    char err[1024] = "";
    struct qes_source *s = NULL;
    int rc = qes_source_sigmf_create(rd, 777, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    int first = 1;
    struct qes_frame f;
    while ((rc = qes_source_read(s, &f, 4096)) == 1) {
        cr_assert(rep->n + f.n <= r->n, "%s: more samples than were teed", base);
        cr_assert_eq(f.first_sample, r->run[rep->n], "%s: run index at replay sample %llu", base,
                     (unsigned long long)rep->n);
        cr_assert_eq(f.host_time_ns, T0 + (int64_t)f.first_sample * 10000, "%s: host time", base);
        uint64_t lost = f.lost_before;
        if (first) {
            /* Alone, a file reports the loss just before its first sample
             * (qes:lost_before_first), which is the jump from the end of the
             * previous file (from 0 for the first). */
            cr_assert_eq(f.lost_before, f.first_sample - rep->next_run,
                         "%s: lost_before %llu on the first frame at %llu, after %llu", base,
                         (unsigned long long)f.lost_before, (unsigned long long)f.first_sample,
                         (unsigned long long)rep->next_run);
        }
        if (lost) {
            cr_assert(rep->n_gaps < r->n_gaps, "%s: unexpected gap at %llu", base,
                      (unsigned long long)f.first_sample);
            cr_assert_eq(f.first_sample, r->gap_at[rep->n_gaps], "%s: gap %zu", base, rep->n_gaps);
            cr_assert_eq(lost, r->gap_len[rep->n_gaps], "%s: gap %zu length", base, rep->n_gaps);
            rep->n_gaps++;
        } else {
            cr_assert_eq(f.first_sample, rep->next_run);
        }
        /* Equal as counts: == rather than memcmp, because the sim rounds small
         * negative values to -0.0, which an integer datatype stores as 0 and
         * replays as +0.0 (the same count; a device never delivers -0). */
        for (size_t i = 0; i < f.n * NCH; i++)
            cr_assert(f.samples[i] == r->x[rep->n * NCH + i],
                      "%s: replay sample %llu value %zu: %.17g, teed %.17g", base,
                      (unsigned long long)rep->n, i, f.samples[i], r->x[rep->n * NCH + i]);
        rep->n += f.n;
        rep->next_run = f.first_sample + f.n;
        first = 0;
    }
    cr_assert_eq(rc, 0, "%s: %s", base, s->errmsg);
    qes_source_destroy(s);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- gaps ---------------------------------------------------------------------------------- */

/* Frames 5-6, 17 and 30 lost: three gaps, replayed at the same run indices. */
Test(rawtee, gaps_replay_at_same_run_indices)
{
    const char *base = qes_fx_path("run");
    struct qes_rawtee *t = tee_open(base, 0, 0);
    const uint64_t drop[] = {5, 6, 17, 30};
    struct record r = tee_sim(t, 40, drop, 4);
    cr_assert_eq(r.n_gaps, 3);
    cr_assert_eq(qes_rawtee_bytes(t), r.n * NCH * 2);
    cr_assert_eq(qes_rawtee_files(t), 0, "nothing closed before close");
    tee_close_ok(t);

    struct qes_sigmf_reader *rd = open_verified(base);
    const struct qes_sigmf_info *in = qes_sigmf_get_info(rd);
    cr_assert_eq(in->n_frames, r.n);
    cr_assert_eq(in->n_captures, 1 + r.n_gaps, "one capture segment per gap");
    for (size_t i = 1; i < in->n_captures; i++) {
        cr_assert(in->captures[i].has_global_index);
        cr_assert_eq(in->captures[i].global_index, r.gap_at[i - 1]);
        cr_assert(in->captures[i].has_datetime);
        cr_assert_eq(in->captures[i].datetime_ns, T0 + (int64_t)r.gap_at[i - 1] * 10000);
    }
    qes_sigmf_close(rd);
    cr_assert(!exists(qes_fx_path("run-0001.sigmf-meta")), "no numbered file without rotation");

    struct replay rep = {0, 0, 0};
    replay_file(base, &r, &rep);
    cr_assert_eq(rep.n, r.n);
    cr_assert_eq(rep.n_gaps, r.n_gaps);
    record_free(&r);
}

/* The run's first frames lost: the file's first capture starts at that run
 * index, and qes:lost_before_first makes replay report the loss on its first
 * frame, as the live consumer saw it. */
Test(rawtee, first_frame_at_run_index_g)
{
    const char *base = qes_fx_path("late");
    struct qes_rawtee *t = tee_open(base, 0, 0);
    const uint64_t drop[] = {0, 1, 2};
    struct record r = tee_sim(t, 10, drop, 3);
    tee_close_ok(t);
    struct qes_sigmf_reader *rd = open_verified(base);
    const struct qes_sigmf_info *in = qes_sigmf_get_info(rd);
    cr_assert_eq(in->n_captures, 1);
    cr_assert_eq(in->captures[0].global_index, 3 * FRAME);
    cr_assert_eq(in->captures[0].datetime_ns, T0 + 3 * FRAME * 10000);
    cr_assert_eq(in->has_lost_before_first, 1);
    cr_assert_eq(in->lost_before_first, 3 * FRAME);
    qes_sigmf_close(rd);
    struct replay rep = {0, 0, 0};
    replay_file(base, &r, &rep); /* lost_before 3000 on the first frame */
    cr_assert_eq(rep.n, r.n);
    cr_assert_eq(rep.n_gaps, 1);
    record_free(&r);
}

/* ---- rotation ------------------------------------------------------------------------------ */

/*
 * 2 channels of ri16 are 4 bytes a frame; max_bytes 10002 holds 2500 frames
 * (whole frames, never above the limit).  47 frames of 1000, with frames
 * 10-12 lost (10000 samples kept before: a gap exactly where file 5
 * starts) and frame 25 lost (22000 kept before: a gap inside file 9).
 */
Test(rawtee, rotation_by_bytes)
{
    const char *base = qes_fx_path("rot");
    struct qes_rawtee *t = tee_open(base, 10002, 0);
    const uint64_t drop[] = {10, 11, 12, 25};
    struct record r = tee_sim(t, 47, drop, 4);
    const uint64_t quota = 2500, n_files = (r.n + quota - 1) / quota;
    /* Files close as soon as they are full: all but the last by now. */
    cr_assert_eq(qes_rawtee_files(t), r.n / quota, "full files are closed at once");
    tee_close_ok(t);
    cr_assert_eq(n_files, 18, "43000 samples in files of 2500");

    struct replay rep = {0, 0, 0};
    for (unsigned k = 1; k <= n_files; k++) {
        char name[64];
        snprintf(name, sizeof name, "rot-%04u", k);
        const char *p = qes_fx_path(name);
        struct qes_sigmf_reader *rd = open_verified(p);
        const struct qes_sigmf_info *in = qes_sigmf_get_info(rd);
        const uint64_t want = k < n_files ? quota : r.n - quota * (n_files - 1);
        cr_assert_eq(in->n_frames, want, "%s: %llu frames", p, (unsigned long long)in->n_frames);
        cr_assert(in->data_bytes <= 10002);
        const json_t *g = json_object_get(in->meta, "global");
        cr_assert_eq(json_integer_value(json_object_get(g, "qes:part")), k);
        /* The first capture carries the run index of the file's first sample. */
        cr_assert_eq(in->captures[0].global_index, r.run[(k - 1) * quota]);
        qes_sigmf_close(rd);
        replay_file(p, &r, &rep);
    }
    cr_assert_eq(rep.n, r.n, "together the files cover the run");
    cr_assert_eq(rep.n_gaps, r.n_gaps);
    cr_assert_eq(r.n_gaps, 2);
    char name[64];
    snprintf(name, sizeof name, "rot-%04u.sigmf-meta", (unsigned)n_files + 1);
    cr_assert(!exists(qes_fx_path(name)), "no empty trailing file");
    cr_assert(!exists(qes_fx_path("rot.sigmf-meta")));
    record_free(&r);
}

/* A gap exactly where a file starts: the new file's first capture is
 * beyond the end of the previous file. */
Test(rawtee, rotation_gap_at_file_boundary)
{
    const char *base = qes_fx_path("edge");
    struct qes_rawtee *t = tee_open(base, 4 * NCH * 2 * FRAME, 0); /* 4 frames a file */
    const uint64_t drop[] = {4, 5};
    struct record r = tee_sim(t, 10, drop, 2);
    tee_close_ok(t);
    struct replay rep = {0, 0, 0};
    replay_file(qes_fx_path("edge-0001"), &r, &rep);
    replay_file(qes_fx_path("edge-0002"), &r, &rep);
    cr_assert_eq(rep.n, r.n);
    cr_assert_eq(rep.n_gaps, 1);
    struct qes_sigmf_reader *rd = open_verified(qes_fx_path("edge-0002"));
    cr_assert_eq(qes_sigmf_get_info(rd)->captures[0].global_index, 6 * FRAME);
    cr_assert_eq(qes_sigmf_get_info(rd)->n_captures, 1);
    qes_sigmf_close(rd);
    cr_assert(!exists(qes_fx_path("edge-0003.sigmf-meta")));
    record_free(&r);
}

/* max_seconds 0.025 at 100 kS/s: 2500 samples a file, frames split. */
Test(rawtee, rotation_by_seconds)
{
    const char *base = qes_fx_path("sec");
    struct qes_rawtee *t = tee_open(base, 0, 0.025);
    struct record r = tee_sim(t, 12, NULL, 0);
    tee_close_ok(t);
    struct replay rep = {0, 0, 0};
    for (unsigned k = 1; k <= 5; k++) {
        char name[64];
        snprintf(name, sizeof name, "sec-%04u", k);
        struct qes_sigmf_reader *rd = open_verified(qes_fx_path(name));
        cr_assert_eq(qes_sigmf_get_info(rd)->n_frames, k < 5 ? 2500 : 2000);
        qes_sigmf_close(rd);
        replay_file(qes_fx_path(name), &r, &rep);
    }
    cr_assert_eq(rep.n, 12 * FRAME);
    cr_assert(!exists(qes_fx_path("sec-0006.sigmf-meta")));
    record_free(&r);
}

/* ---- a rotated recording replayed as one run ----------------------------------------------- */

/*
 * Replay the set names[0..n) as one run (qes_source_sigmf_open_set) and
 * compare with what the tee was given, per run index: the replayed frames
 * may be cut differently from the live ones (chunk, max_n, capture and file
 * boundaries), so every sample is checked for its run index, value and host
 * time, and for the loss reported just before it (a frame's lost_before
 * belongs to its first sample, the others have 0), which must be what the
 * live consumer saw there.
 */
static void replay_set_check(const char *const *names, size_t n, const struct record *r,
                             size_t chunk, size_t max_n)
{
    char err[2048] = "";
    struct qes_source *s = NULL;
    int rc = qes_source_sigmf_open_set(names, n, 1, chunk, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "open set: %s (%s)", qes_err_name(rc), err);
    cr_assert_eq(s->sample_rate_hz, FS);
    cr_assert_eq(s->n_channels, NCH);
    uint64_t k = 0, lost_sum = 0, frames = 0;
    struct qes_frame f;
    while ((rc = qes_source_read(s, &f, max_n)) == 1) {
        cr_assert(k + f.n <= r->n, "more samples than were teed");
        cr_assert_eq(f.host_time_ns, T0 + (int64_t)f.first_sample * 10000, "host time at %llu",
                     (unsigned long long)f.first_sample);
        for (size_t i = 0; i < f.n; i++) {
            cr_assert_eq(f.first_sample + i, r->run[k + i], "run index of teed sample %llu",
                         (unsigned long long)(k + i));
            const uint64_t lost = i == 0 ? f.lost_before : 0;
            cr_assert_eq(lost, r->lost[k + i],
                         "loss before run index %llu: replay %llu, live %llu (chunk %zu)",
                         (unsigned long long)r->run[k + i], (unsigned long long)lost,
                         (unsigned long long)r->lost[k + i], chunk);
            for (unsigned c = 0; c < NCH; c++)
                cr_assert(f.samples[i * NCH + c] == r->x[(k + i) * NCH + c],
                          "value at run index %llu channel %u", (unsigned long long)r->run[k + i],
                          c);
        }
        lost_sum += f.lost_before;
        k += f.n;
        frames++;
    }
    cr_assert_eq(rc, 0, "%s", s->errmsg);
    cr_assert_eq(k, r->n, "the set covers the run: %llu of %llu samples", (unsigned long long)k,
                 (unsigned long long)r->n);
    cr_assert_eq(lost_sum, r->end - r->n, "every lost sample is reported once");
    cr_assert_eq(qes_source_read(s, &f, max_n), 0, "the end stays the end");
    qes_source_destroy(s);
}

/*
 * Files of 2500 samples (max_bytes 10000 for 2 x ri16), frames of 1000 (F =
 * frame index, dropped frames give the next kept frame lost_before):
 *   drop 0-2    the run starts at 3000 with lost_before 3000  (start)
 *   keep 3-7    5000 samples: files 1, 2 (frame 5 split across them)
 *   drop 8      frame 9 starts file 3 with lost 1000          (at a boundary)
 *   keep 9-13   files 3, 4
 *   drop 14-15  frame 16 starts file 5 with lost 2000         (at a boundary)
 *   keep 16-17, drop 18, keep 19: a gap inside file 5, and frame 19 split
 *               across files 5 and 6 (file 6 starts inside it: loss 0)
 *   keep 20-21  file 6 full
 *   drop 22     frame 23 starts file 7 with lost 1000         (at a boundary)
 *   keep 23-29  files 7, 8, 9
 */
Test(rawtee, rotated_set_replays_as_the_live_run)
{
    struct qes_rawtee *t = tee_open(qes_fx_path("set"), 10000, 0);
    const uint64_t drop[] = {0, 1, 2, 8, 14, 15, 18, 22};
    struct record r = tee_sim(t, 30, drop, sizeof drop / sizeof drop[0]);
    tee_close_ok(t);
    cr_assert_eq(r.n, 22 * FRAME);
    cr_assert_eq(r.n_gaps, 5);
    const unsigned n_files = 9; /* 22000 / 2500, rounded up */

    /* Each file's qes:lost_before_first: the loss just before its first sample. */
    const uint64_t want_lbf[9] = {3000, 0, 1000, 0, 2000, 0, 1000, 0, 0};
    char names[9][64], *meta[9];
    for (unsigned k = 0; k < n_files; k++) {
        snprintf(names[k], sizeof names[k], "set-%04u", k + 1);
        meta[k] = strdup(qes_fx_path(names[k]));
        cr_assert_not_null(meta[k]);
        struct qes_sigmf_reader *rd = open_verified(meta[k]);
        const struct qes_sigmf_info *in = qes_sigmf_get_info(rd);
        cr_assert_eq(in->has_lost_before_first, 1, "%s", meta[k]);
        cr_assert_eq(in->lost_before_first, want_lbf[k], "%s: qes:lost_before_first %llu", meta[k],
                     (unsigned long long)in->lost_before_first);
        cr_assert_eq(in->part, k + 1);
        cr_assert_str_eq(in->run_id, run_id);
        qes_sigmf_close(rd);
    }
    cr_assert(!exists(qes_fx_path("set-0010.sigmf-meta")));

    /* In order, with several chunk sizes and caller limits. */
    const size_t chunks[] = {0, 777, 1000, 2500, 1};
    const size_t max_ns[] = {4096, 4096, 300, SIZE_MAX, 4096};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++)
        replay_set_check((const char *const *)meta, n_files, &r, chunks[c], max_ns[c]);

    /* In reverse order: put in qes:part order. */
    const char *rev[9];
    for (unsigned k = 0; k < n_files; k++)
        rev[k] = meta[n_files - 1 - k];
    replay_set_check(rev, n_files, &r, 0, 4096);

    /* As `qes replay set-*` expands: data and meta files interleaved, and
     * bare base names mixed in: each capture counts once. */
    char globbed[18][4200];
    const char *g[18];
    for (unsigned k = 0; k < n_files; k++) {
        snprintf(globbed[2 * k], sizeof globbed[0], "%s.sigmf-data", qes_fx_path(names[k]));
        snprintf(globbed[2 * k + 1], sizeof globbed[0], "%s%s", qes_fx_path(names[k]),
                 k % 3 == 0 ? "" : ".sigmf-meta");
        g[2 * k] = globbed[2 * k];
        g[2 * k + 1] = globbed[2 * k + 1];
    }
    replay_set_check(g, 2 * n_files, &r, 0, 4096);

    /* The files as checked. */
    char err[2048];
    struct qes_source *s = NULL;
    cr_assert_eq(qes_source_sigmf_open_set(g, 2 * n_files, 1, 0, &s, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(qes_source_sigmf_n_files(s), n_files);
    cr_assert_str_eq(qes_source_sigmf_info(s)->meta_path, qes_fx_path("set-0001.sigmf-meta"));
    uint64_t kept = 0;
    for (unsigned k = 0; k < n_files; k++) {
        const struct qes_sigmf_file *fk = qes_source_sigmf_file(s, k);
        char want[4200];
        snprintf(want, sizeof want, "%s.sigmf-meta", meta[k]);
        cr_assert_str_eq(fk->meta_path, want);
        cr_assert_eq(fk->n_frames, k + 1 < n_files ? 2500 : 2000);
        cr_assert_eq(fk->first_index, r.run[kept], "%s: first index", fk->meta_path);
        cr_assert_eq(fk->end_index, r.run[kept + fk->n_frames - 1] + 1);
        cr_assert_eq(fk->lost_before_first, want_lbf[k]);
        cr_assert_eq(fk->sha512_verified, 1);
        cr_assert_eq(strlen(fk->sha512), 128);
        kept += fk->n_frames;
    }
    cr_assert_null(qes_source_sigmf_file(s, n_files));
    qes_source_destroy(s);

    /* A tail of the set (parts 5..9) replays as the live run from there on. */
    struct record tail = r;
    tail.x += 4 * 2500 * NCH;
    tail.run += 4 * 2500;
    tail.lost += 4 * 2500;
    tail.n -= 4 * 2500;
    tail.end = tail.n; /* + the samples lost in the tail: its first file's lbf and later gaps */
    for (uint64_t i = 0; i < tail.n; i++)
        tail.end += tail.lost[i];
    cr_assert_eq(tail.end - tail.n, 2000 + 1000 + 1000);
    replay_set_check((const char *const *)meta + 4, 5, &tail, 0, 4096);
    for (unsigned k = 0; k < n_files; k++)
        free(meta[k]);
    record_free(&r);
}

/* A frame without samples carries its loss to the next frame (the tee
 * writes it there, at a file's start as its qes:lost_before_first); a frame
 * reporting more loss than its run index skips cannot be recorded. */
Test(rawtee, empty_frame_loss_and_contract)
{
    struct qes_rawtee *t = tee_open(qes_fx_path("emp"), 0, 0);
    double x[4 * NCH] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct qes_frame f = {.first_sample = 0, .n = 0, .n_channels = NCH, .samples = x};
    f.lost_before = 5;
    cr_assert_eq(qes_rawtee_write(t, &f), 0);
    f.lost_before = 2;
    cr_assert_eq(qes_rawtee_write(t, &f), 0);
    f.first_sample = 7; /* 5 + 2 lost before it, reported on the empty frames */
    f.n = 4;
    f.lost_before = 0;
    cr_assert_eq(qes_rawtee_write(t, &f), 0, "%s", qes_rawtee_errmsg(t));
    f.first_sample = 11;
    f.lost_before = 1; /* nothing skipped: a source bug */
    cr_assert_eq(qes_rawtee_write(t, &f), QES_EINVAL);
    const char *m = qes_rawtee_errmsg(t);
    cr_assert(strstr(m, "run index 11") && strstr(m, "reports 1 samples lost") &&
                      strstr(m, "skips only 0"),
              "%s", m);
    char err[1024];
    cr_assert_eq(qes_rawtee_close(t, err, sizeof err), QES_EINVAL);
    struct qes_sigmf_reader *rd = open_verified(qes_fx_path("emp"));
    const struct qes_sigmf_info *in = qes_sigmf_get_info(rd);
    cr_assert_eq(in->n_frames, 4);
    cr_assert_eq(in->captures[0].global_index, 7);
    cr_assert_eq(in->lost_before_first, 7);
    qes_sigmf_close(rd);
}

/* ---- live and replay flag the same blocks -------------------------------------------------- */

/* A live stand-in: the sim read in frames of FRAME, some frames dropped (the
 * next delivered frame carries lost_before, as the acquisition ring does),
 * every delivered frame teed before the runtime gets it (as qes run does). */
struct lossy {
    struct qes_source base; /* first */
    struct qes_source *sim;
    struct qes_rawtee *tee;
    const uint64_t *drop;
    size_t nd;
    uint64_t k; /* frames read from the sim */
};

static int lossy_read(struct qes_source *s, struct qes_frame *f, size_t max_n)
{
    struct lossy *l = (struct lossy *)s;
    cr_assert(max_n >= FRAME);
    uint64_t pending = 0;
    for (;;) {
        int rc = qes_source_read(l->sim, f, FRAME);
        if (rc <= 0)
            return rc;
        if (!dropped(l->k++, l->drop, l->nd))
            break;
        pending += f->n;
    }
    f->lost_before = pending;
    int rc = qes_rawtee_write(l->tee, f);
    cr_assert_eq(rc, 0, "%s", qes_rawtee_errmsg(l->tee));
    return 1;
}

static void lossy_destroy(struct qes_source *s)
{
    (void)s;
}

static const struct qes_source_ops lossy_ops = {
        .name = "lossy", .read = lossy_read, .destroy = lossy_destroy};

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Block and summary records with their flags, from a JSON Lines file, in
 * sorted order: how the records of different measurements interleave
 * depends on how the samples were cut into frames, which replay does not
 * reproduce (each measurement's own records are in run order either way). */
static char *records(const char *path)
{
    char *text = qes_test_slurp(path, NULL);
    cr_assert_not_null(text, "%s", path);
    size_t len = strlen(text), n = 0, o = 0;
    char **lines = malloc((len / 2 + 1) * sizeof *lines);
    char *out = malloc(len + 1);
    cr_assert(lines && out);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "\"type\":\"block\"") || strstr(line, "\"type\":\"summary\""))
            lines[n++] = line;
    qsort(lines, n, sizeof *lines, str_cmp);
    for (size_t i = 0; i < n; i++)
        o += (size_t)sprintf(out + o, "%s\n", lines[i]);
    out[o] = '\0';
    free(lines);
    free(text);
    return out;
}

static void run_runtime(const struct qes_config *cfg, struct qes_source *src, const char *jsonl,
                        struct qes_runtime_stats *st)
{
    char err[2048] = "";
    struct qes_recorder *rec = NULL;
    int rc = qes_recorder_open(jsonl, &rec, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    struct qes_run_rec run = {
            .id = "0c9f6a2e-5b7d-4e1a-9d3c-2f8b6a1e7c40",
            .command = "test",
            .version = "0",
            .build = "test",
            .config_ini = config,
            .input_json = "null",
            .t_start_ns = T0,
            .sample_rate_hz = FS,
    };
    struct qes_runtime_desc d = {.cfg = cfg, .src = src, .recs = &rec, .n_recs = 1, .run = &run};
    rc = qes_runtime_execute(&d, st, err, sizeof err);
    cr_assert_eq(rc, 0, "runtime: %s", err);
    struct qes_run_end end = qes_run_end_of_status(0);
    cr_assert_eq(rec->ops->close(rec, &end), 0, "%s", rec->errmsg);
    qes_recorder_destroy(rec);
}

/*
 * The run's records, live and replayed from the rotated raw recording, are
 * the same, byte for byte, flags included: an FFT lock-in on blocks of 2000
 * samples (flagged gap by position: a block a gap touches) on channel a,
 * and a streaming demodulator (flagged by lost_before > 0) on channel b.
 * Losses: the run's first 2 frames, a frame just before a file boundary
 * (files of 3000 samples, frames of 1000), and one inside a file.
 */
Test(rawtee, live_and_replay_flag_the_same_blocks)
{
    static const char ini[] = "[source]\nkind = sigmf\n"
                              "[channel.a]\nindex = 0\ngain = 3.0517578125e-05\n"
                              "[channel.b]\nindex = 1\ngain = 3.0517578125e-05\n"
                              "[measure.lock]\nchannel = a\nmethod = fft\nfreq_hz = 50\n"
                              "harmonics = 1\nblock_periods = 1\n"
                              "[measure.dm]\nchannel = b\nmethod = demod\nfreq_hz = 100\n"
                              "tau_s = 0.002\norder = 2\noutput_rate_hz = 500\n";
    struct qes_config *cfg = malloc(sizeof *cfg);
    cr_assert_not_null(cfg);
    qes_config_init(cfg);
    char err[2048] = "";
    int rc = qes_config_load_string(cfg, ini, "parity.ini", err, sizeof err);
    if (!rc)
        rc = qes_config_validate(cfg, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);

    /* frames 0-1 lost; kept 2-4 fill file 1; frame 5 lost: file 2 starts
     * with a gap; kept 6, 7, lost 8, kept 9..: a gap inside file 2 */
    const uint64_t drop[] = {0, 1, 5, 8, 14};
    struct lossy live = {.base = {.ops = &lossy_ops, .sample_rate_hz = FS, .n_channels = NCH},
                         .sim = sim_make(30 * FRAME),
                         .tee = tee_open(qes_fx_path("par"), 3000 * NCH * 2, 0),
                         .drop = drop,
                         .nd = sizeof drop / sizeof drop[0]};
    struct qes_runtime_stats st_live, st_replay;
    char live_jsonl[4200], replay_jsonl[4200];
    snprintf(live_jsonl, sizeof live_jsonl, "%s", qes_fx_path("live.jsonl"));
    snprintf(replay_jsonl, sizeof replay_jsonl, "%s", qes_fx_path("replay.jsonl"));
    run_runtime(cfg, &live.base, live_jsonl, &st_live);
    tee_close_ok(live.tee);
    qes_source_destroy(live.sim);

    const char *names[9];
    char bufs[9][4200];
    for (unsigned k = 0; k < 9; k++) {
        snprintf(bufs[k], sizeof bufs[k], "%s-%04u.sigmf-meta", qes_fx_path("par"), k + 1);
        names[k] = bufs[k];
    }
    cr_assert(!exists(qes_fx_path("par-0010.sigmf-meta")));
    struct qes_source *src = NULL;
    rc = qes_source_sigmf_open_set(names, 9, 1, 0, &src, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    run_runtime(cfg, src, replay_jsonl, &st_replay);
    qes_source_destroy(src);

    cr_assert_eq(st_live.lost, 5 * FRAME);
    cr_assert_eq(st_live.gaps, 4);
    cr_assert(st_live.gap_blocks > 0);
    cr_assert_eq(st_replay.frames, st_live.frames);
    cr_assert_eq(st_replay.lost, st_live.lost);
    cr_assert_eq(st_replay.gaps, st_live.gaps);
    cr_assert_eq(st_replay.blocks, st_live.blocks);
    cr_assert_eq(st_replay.gap_blocks, st_live.gap_blocks, "gap blocks: replay %llu, live %llu",
                 (unsigned long long)st_replay.gap_blocks, (unsigned long long)st_live.gap_blocks);
    char *a = records(live_jsonl), *b = records(replay_jsonl);
    cr_assert(strlen(a) > 1000 && strstr(a, "\"gap\""), "live records flag gaps");
    if (strcmp(a, b) != 0) {
        size_t i = 0;
        while (a[i] && a[i] == b[i])
            i++;
        size_t from = i > 300 ? i - 300 : 0;
        cr_assert_fail(
                "replay records differ from live at byte %zu:\nlive:   %.600s\nreplay: %.600s", i,
                a + from, b + from);
    }
    cr_log_info("live and replay: %zu bytes of records, %llu gap blocks, %llu lost", strlen(a),
                (unsigned long long)st_live.gap_blocks, (unsigned long long)st_live.lost);
    free(a);
    free(b);
    free(cfg);
}

/* ---- errors -------------------------------------------------------------------------------- */

/*
 * A full disk, without privileges or a special file system: file 2's data
 * path is a symlink to /dev/full, where every write fails with ENOSPC.
 * 64000 bytes a file stay in the writer's 1 MiB staging buffer, so the
 * error strikes when file 2 is full and closed.
 */
Test(rawtee, write_error_stops_the_tee)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("/dev/full is not available here");
    cr_assert_eq(symlink("/dev/full", qes_fx_path("full-0002.sigmf-data")), 0);
    struct qes_rawtee *t = tee_open(qes_fx_path("full"), 64000, 0); /* 16 frames a file */
    struct qes_source *s = sim_make(100 * FRAME);
    struct qes_frame f;
    int rc = 0;
    unsigned k;
    for (k = 0; k < 100 && rc == 0; k++) {
        cr_assert_eq(qes_source_read(s, &f, FRAME), 1);
        rc = qes_rawtee_write(t, &f);
    }
    cr_assert_eq(rc, QES_ENOSPC, "%s (%s)", qes_err_name(rc), qes_rawtee_errmsg(t));
    cr_assert_eq(k, 32, "the error comes with the frame that fills file 2");
    char m[1024];
    snprintf(m, sizeof m, "%s", qes_rawtee_errmsg(t)); /* t is freed by close below */
    cr_log_info("%s", m);
    cr_assert(strstr(m, "full-0002.sigmf-data") && strstr(m, "No space left on device"), "%s", m);
    cr_assert(strstr(m, "1 file complete") && strstr(m, "was removed"), "%s", m);
    /* Later writes return the error and write nothing. */
    uint64_t bytes = qes_rawtee_bytes(t);
    cr_assert_eq(qes_source_read(s, &f, FRAME), 1);
    cr_assert_eq(qes_rawtee_write(t, &f), QES_ENOSPC);
    cr_assert_eq(qes_rawtee_write(t, &f), QES_ENOSPC);
    cr_assert_eq(qes_rawtee_bytes(t), bytes);
    cr_assert_eq(qes_rawtee_files(t), 1);
    cr_assert(!exists(qes_fx_path("full-0003.sigmf-data")));
    cr_assert(!exists(qes_fx_path("full-0002.sigmf-meta")));
    char err[1024] = "";
    cr_assert_eq(qes_rawtee_close(t, err, sizeof err), QES_ENOSPC);
    cr_assert_str_eq(err, m);
    qes_source_destroy(s);
    /* What was closed is kept and valid. */
    struct qes_sigmf_reader *rd = open_verified(qes_fx_path("full-0001"));
    cr_assert_eq(qes_sigmf_get_info(rd)->n_frames, 16 * FRAME);
    qes_sigmf_close(rd);
}

/* A value the datatype cannot hold: the file is closed with the frames
 * before it (valid), and the tee stays stopped. */
Test(rawtee, out_of_range_value_stops_the_tee)
{
    struct qes_rawtee *t = tee_open(qes_fx_path("rng"), 0, 0);
    double x[2 * NCH] = {1, 2, 3, 4};
    struct qes_frame f = {.first_sample = 0, .n = 2, .n_channels = NCH, .samples = x};
    cr_assert_eq(qes_rawtee_write(t, &f), 0);
    x[3] = 40000.0; /* above int16 */
    f.first_sample = 2;
    int rc = qes_rawtee_write(t, &f);
    cr_assert_eq(rc, QES_ERANGE);
    const char *m = qes_rawtee_errmsg(t);
    cr_assert(strstr(m, "40000") && strstr(m, "ri16_le") && strstr(m, "closed with the frames"),
              "%s", m);
    cr_assert_eq(qes_rawtee_files(t), 1);
    x[3] = 4;
    cr_assert_eq(qes_rawtee_write(t, &f), QES_ERANGE, "the tee stays stopped");
    char err[1024];
    cr_assert_eq(qes_rawtee_close(t, err, sizeof err), QES_ERANGE);
    struct qes_sigmf_reader *rd = open_verified(qes_fx_path("rng"));
    cr_assert_eq(qes_sigmf_get_info(rd)->n_frames, 2);
    double y[2 * NCH];
    cr_assert_eq(qes_sigmf_read(rd, y, 2), 2);
    cr_assert(memcmp(y, (double[]){1, 2, 3, 4}, sizeof y) == 0);
    qes_sigmf_close(rd);
}

Test(rawtee, open_errors)
{
    char err[1024] = "";
    struct qes_rawtee *t = (struct qes_rawtee *)err;
    struct qes_rawtee_desc d = {.path = qes_fx_path("no/such/dir/run"),
                                .dtype = QES_DT_RI32_LE,
                                .sample_rate_hz = FS,
                                .num_channels = 1};
    int rc = qes_rawtee_open(&d, &t, err, sizeof err);
    cr_assert_eq(rc, QES_ENOENT, "%s (%s)", qes_err_name(rc), err);
    cr_assert_null(t);
    cr_assert(strstr(err, "no/such/dir/run.sigmf-data"), "%s", err);

    d.path = qes_fx_path("ok");
    d.sample_rate_hz = 0;
    cr_assert_eq(qes_rawtee_open(&d, &t, err, sizeof err), QES_EINVAL);
    d.sample_rate_hz = FS;
    d.num_channels = 0;
    cr_assert_eq(qes_rawtee_open(&d, &t, err, sizeof err), QES_EINVAL);
    d.num_channels = 1;
    d.max_seconds = -1;
    cr_assert_eq(qes_rawtee_open(&d, &t, err, sizeof err), QES_EINVAL);
    d.max_seconds = 0;
    d.run_id = "\xff not UTF-8";
    cr_assert_eq(qes_rawtee_open(&d, &t, err, sizeof err), QES_EINVAL);
    cr_assert(strstr(err, "qes:run_id"), "%s", err);
    cr_assert(!exists(qes_fx_path("ok.sigmf-data")));
}

/* A frame going backwards is a caller's bug: refused, and the tee stops. */
Test(rawtee, backwards_frame)
{
    struct qes_rawtee *t = tee_open(qes_fx_path("back"), 0, 0);
    double x[4 * NCH] = {0};
    struct qes_frame f = {.first_sample = 10, .n = 4, .n_channels = NCH, .samples = x};
    cr_assert_eq(qes_rawtee_write(t, &f), 0);
    f.first_sample = 12;
    cr_assert_eq(qes_rawtee_write(t, &f), QES_EINVAL);
    cr_assert(strstr(qes_rawtee_errmsg(t), "backwards"), "%s", qes_rawtee_errmsg(t));
    char err[1024];
    cr_assert_eq(qes_rawtee_close(t, err, sizeof err), QES_EINVAL);
}
