/*
 * SigMF replay source: run sample indices, gaps, host times, chunking;
 * qes:lost_before_first (written with qes_sigmf_writer_set_extra, checked
 * by the reader, reported on the first frame); sets of files replayed as
 * one run, and the sets refused with both files named.
 */
#include "hw/source_sigmf.h"
#include "common/err.h"
#include "common/utctime.h"
#include "tests/hw/sigmf_fixture.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(source_sigmf, .init = qes_fx_setup, .fini = qes_fx_teardown, .timeout = 60);

static const int64_t t0_ns = 1767225600LL * 1000000000LL; /* 2026-01-01T00:00:00Z */

static struct qes_source *open_source(const char *base, size_t chunk)
{
    struct qes_sigmf_reader *r = NULL;
    char err[512];
    int rc = qes_sigmf_open(qes_fx_path(base), 1, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "open: %s", err);
    struct qes_source *s = NULL;
    rc = qes_source_sigmf_create(r, chunk, &s, err, sizeof err);
    cr_assert_eq(rc, 0, "create: %s", err);
    cr_assert_not_null(s);
    return s;
}

struct want_frame {
    uint64_t first_sample;
    size_t n;
    uint64_t lost_before;
    int64_t host_time_ns;
};

static void expect_frames(struct qes_source *s, size_t max_n, const struct want_frame *want,
                          size_t n_want, int check_values)
{
    struct qes_frame f;
    for (size_t i = 0; i < n_want; i++) {
        memset(&f, 0xa5, sizeof f);
        int rc = qes_source_read(s, &f, max_n);
        cr_assert_eq(rc, 1, "frame %zu: rc %d (%s)", i, rc, s->errmsg);
        cr_assert_eq(f.first_sample, want[i].first_sample, "frame %zu: first_sample %llu", i,
                     (unsigned long long)f.first_sample);
        cr_assert_eq(f.n, want[i].n, "frame %zu: n %zu", i, f.n);
        cr_assert_eq(f.lost_before, want[i].lost_before, "frame %zu: lost_before %llu", i,
                     (unsigned long long)f.lost_before);
        cr_assert_eq(f.host_time_ns, want[i].host_time_ns, "frame %zu: host time %lld, want %lld",
                     i, (long long)f.host_time_ns, (long long)want[i].host_time_ns);
        cr_assert_eq(f.n_channels, s->n_channels);
        cr_assert_eq(f.has_device_time, 0);
        cr_assert_not_null(f.samples);
        if (check_values)
            for (size_t j = 0; j < f.n; j++)
                for (unsigned c = 0; c < f.n_channels; c++)
                    cr_assert_eq(f.samples[j * f.n_channels + c],
                                 (double)((f.first_sample + j) * 2 + c),
                                 "frame %zu sample %zu ch %u", i, j, c);
    }
    cr_assert_eq(qes_source_read(s, &f, max_n), 0, "data after the expected frames");
    cr_assert_eq(qes_source_read(s, &f, max_n), 0, "end is not sticky");
}

/* Frames whose values encode their run index: 2 * run + channel. */
static void write_run(struct qes_sigmf_writer *w, uint64_t run, size_t n)
{
    double *v = malloc(n * 2 * sizeof *v);
    cr_assert_not_null(v);
    for (size_t j = 0; j < n; j++)
        for (unsigned c = 0; c < 2; c++)
            v[j * 2 + c] = (double)((run + j) * 2 + c);
    cr_assert_eq(qes_sigmf_writer_write(w, v, n), 0, "%s", qes_sigmf_writer_errmsg(w));
    free(v);
}

/* Writer gaps come back as lost_before; frames stop at capture boundaries. */
Test(source_sigmf, gap_round_trip)
{
    struct qes_sigmf_writer_desc d = {
            .path = qes_fx_path("gap"),
            .dtype = QES_DT_RI32_LE,
            .sample_rate_hz = 1000.0,
            .num_channels = 2,
            .datetime_ns = t0_ns,
    };
    struct qes_sigmf_writer *w;
    char err[512];
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    write_run(w, 0, 1000);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 1500, t0_ns + 1500000000), 0);
    write_run(w, 1500, 500);
    /* Contiguous segment whose datetime disagrees by 123 ns: it wins. */
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 2000, t0_ns + 2000000123), 0);
    write_run(w, 2000, 700);
    cr_assert_eq(qes_sigmf_writer_close(w, err, sizeof err), 0, "%s", err);

    struct qes_source *s = open_source("gap", 300);
    cr_assert_eq(s->sample_rate_hz, 1000.0);
    cr_assert_eq(s->n_channels, 2);
    cr_assert_str_eq(s->ops->name, "sigmf");
    const int64_t ms = 1000000;
    const struct want_frame want[] = {
            {0, 300, 0, t0_ns},
            {300, 300, 0, t0_ns + 300 * ms},
            {600, 300, 0, t0_ns + 600 * ms},
            {900, 100, 0, t0_ns + 900 * ms},
            {1500, 300, 500, t0_ns + 1500 * ms},
            {1800, 200, 0, t0_ns + 1800 * ms},
            {2000, 300, 0, t0_ns + 2000 * ms + 123},
            {2300, 300, 0, t0_ns + 2300 * ms + 123},
            {2600, 100, 0, t0_ns + 2600 * ms + 123},
    };
    expect_frames(s, SIZE_MAX, want, sizeof want / sizeof want[0], 1);
    qes_source_destroy(s);

    /* max_n below the chunk size limits the frame. */
    s = open_source("gap", 300);
    const struct want_frame small[] = {
            {0, 250, 0, t0_ns},
            {250, 250, 0, t0_ns + 250 * ms},
            {500, 250, 0, t0_ns + 500 * ms},
            {750, 250, 0, t0_ns + 750 * ms},
            {1500, 250, 500, t0_ns + 1500 * ms},
            {1750, 250, 0, t0_ns + 1750 * ms},
            {2000, 250, 0, t0_ns + 2000 * ms + 123},
            {2250, 250, 0, t0_ns + 2250 * ms + 123},
            {2500, 200, 0, t0_ns + 2500 * ms + 123},
    };
    expect_frames(s, 250, small, sizeof small / sizeof small[0], 1);
    qes_source_destroy(s);
}

/* Hand-written meta: derived global_index, captures without datetime, an
 * irrational-in-ns sample period (fs = 3 Hz) rounded to the nanosecond. */
Test(source_sigmf, derived_indices_and_times)
{
    const char *meta = "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.6\","
                       "\"core:sample_rate\":3},\"captures\":["
                       "{\"core:sample_start\":0,\"core:datetime\":\"2026-01-01T00:00:00Z\"},"
                       "{\"core:sample_start\":10,\"core:global_index\":20},"
                       "{\"core:sample_start\":15},"
                       "{\"core:sample_start\":17,\"core:global_index\":40,"
                       "\"core:datetime\":\"2026-01-01T00:01:00.000000001Z\"}],\"annotations\":[]}";
    qes_fx_capture("d", meta, 2 * 20);
    struct qes_source *s = open_source("d", 4);
    const int64_t t1 = t0_ns + 60000000001LL;
    const struct want_frame want[] = {
            {0, 4, 0, t0_ns},
            {4, 4, 0, t0_ns + 1333333333},   /* 4e9/3 = 1333333333.33 */
            {8, 2, 0, t0_ns + 2666666667},   /* 8e9/3 = 2666666666.67 */
            {20, 4, 10, t0_ns + 6666666667}, /* gap of 10; time from capture 0 */
            {24, 1, 0, t0_ns + 8000000000},
            {25, 2, 0, t0_ns + 8333333333}, /* derived global_index 25 */
            {40, 3, 13, t1},                /* own datetime */
    };
    expect_frames(s, SIZE_MAX, want, sizeof want / sizeof want[0], 0);
    qes_source_destroy(s);
}

/* No datetime anywhere: host time 0.  A first capture that starts at a
 * nonzero global_index is not a loss (nothing came before it). */
Test(source_sigmf, no_datetime_and_offset_start)
{
    const char *meta = "{\"global\":{\"core:datatype\":\"rf32_le\",\"core:version\":\"1.2.6\","
                       "\"core:sample_rate\":1e6},\"captures\":[{\"core:sample_start\":0,"
                       "\"core:global_index\":123456789}]}";
    qes_fx_capture("o", meta, 4 * 10);
    struct qes_source *s = open_source("o", 6);
    const struct want_frame want[] = {{123456789, 6, 0, 0}, {123456795, 4, 0, 0}};
    expect_frames(s, SIZE_MAX, want, 2, 0);
    qes_source_destroy(s);

    /* Empty captures array: one capture at 0, no datetime. */
    meta = "{\"global\":{\"core:datatype\":\"rf64_le\",\"core:version\":\"1.2.6\","
           "\"core:sample_rate\":10},\"captures\":[]}";
    qes_fx_capture("e", meta, 8 * 5);
    s = open_source("e", 0);
    const struct want_frame want_e[] = {{0, 5, 0, 0}};
    expect_frames(s, SIZE_MAX, want_e, 1, 0);
    qes_source_destroy(s);

    /* Datetime only from the second capture on: the first has time 0. */
    meta = "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.6\","
           "\"core:sample_rate\":10},\"captures\":[{\"core:sample_start\":0},"
           "{\"core:sample_start\":2,\"core:datetime\":\"2026-01-01T00:00:00Z\"}]}";
    qes_fx_capture("t", meta, 2 * 5);
    s = open_source("t", 0);
    const struct want_frame want_t[] = {{0, 2, 0, 0}, {2, 3, 0, t0_ns}};
    expect_frames(s, SIZE_MAX, want_t, 2, 0);
    qes_source_destroy(s);

    /* Zero frames: end of stream at once. */
    qes_fx_capture("z", meta, 0);
    s = open_source("z", 0);
    expect_frames(s, SIZE_MAX, NULL, 0, 0);
    qes_source_destroy(s);
}

/* chunk_frames 0 means 65536. */
Test(source_sigmf, default_chunk)
{
    struct qes_sigmf_writer_desc d = {
            .path = qes_fx_path("c"),
            .dtype = QES_DT_RI16_LE,
            .sample_rate_hz = 50000,
            .num_channels = 1,
            .datetime_ns = t0_ns,
    };
    struct qes_sigmf_writer *w;
    char err[512];
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    double *v = calloc(100000, sizeof *v);
    cr_assert_not_null(v);
    cr_assert_eq(qes_sigmf_writer_write(w, v, 100000), 0);
    free(v);
    cr_assert_eq(qes_sigmf_writer_close(w, err, sizeof err), 0, "%s", err);
    struct qes_source *s = open_source("c", 0);
    const struct want_frame want[] = {{0, 65536, 0, t0_ns},
                                      {65536, 34464, 0, t0_ns + 65536LL * 20000}};
    expect_frames(s, SIZE_MAX, want, 2, 0);
    qes_source_destroy(s);
}

/* Long runs: host time stays exact to the nanosecond (long double). */
Test(source_sigmf, host_time_exact_far_out)
{
    /* A capture at global index k = 2^40 + 7 at fs = 7 kHz (~5 years in). */
    const uint64_t k = 1099511627783ULL;
    const char *meta = "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.6\","
                       "\"core:sample_rate\":7000},\"captures\":[{\"core:sample_start\":0,"
                       "\"core:global_index\":0,\"core:datetime\":\"2026-01-01T00:00:00Z\"},"
                       "{\"core:sample_start\":1,\"core:global_index\":1099511627783}]}";
    qes_fx_capture("far", meta, 2 * 4);
    struct qes_source *s = open_source("far", 0);
    struct qes_frame f;
    cr_assert_eq(qes_source_read(s, &f, 10), 1);
    cr_assert_eq(f.host_time_ns, t0_ns);
    cr_assert_eq(qes_source_read(s, &f, 10), 1);
    cr_assert_eq(f.first_sample, k);
    cr_assert_eq(f.n, 3);
    cr_assert_eq(f.lost_before, k - 1);
    /* round(k * 1e9 / 7000) = round(k * 1e6 / 7), in integers without overflow
     * (k * 1e6 / 7 is never a half). */
    int64_t off = (int64_t)((k / 7) * 1000000 + ((k % 7) * 1000000 + 3) / 7);
    cr_assert_eq(f.host_time_ns, t0_ns + off, "host time %lld, want %lld",
                 (long long)f.host_time_ns, (long long)(t0_ns + off));
    qes_source_destroy(s);
}

/* The data file shrinks under the source: QES_EIO with the reader's message. */
Test(source_sigmf, data_shrinks)
{
    const char *meta = "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.6\","
                       "\"core:sample_rate\":10},\"captures\":[]}";
    qes_fx_capture("sh", meta, 2 * 1000);
    struct qes_source *s = open_source("sh", 100);
    struct qes_frame f;
    cr_assert_eq(qes_source_read(s, &f, SIZE_MAX), 1);
    cr_assert_eq(truncate(qes_fx_path("sh.sigmf-data"), 2 * 150), 0);
    int rc = qes_source_read(s, &f, SIZE_MAX);
    cr_assert_eq(rc, QES_EIO, "got %s", qes_err_name(rc));
    cr_assert(strstr(s->errmsg, "sh.sigmf-data"), "%s", s->errmsg);
    qes_source_destroy(s);
}

Test(source_sigmf, bad_arguments)
{
    char err[512];
    struct qes_source *s = (struct qes_source *)1;
    cr_assert_eq(qes_source_sigmf_create(NULL, 0, &s, err, sizeof err), QES_EINVAL);
    cr_assert_null(s);
    qes_source_destroy(NULL);

    /* On error the reader is still closed (checked by LeakSanitizer). */
    const char *meta = "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.6\","
                       "\"core:sample_rate\":10},\"captures\":[]}";
    qes_fx_capture("a", meta, 20);
    struct qes_sigmf_reader *r;
    cr_assert_eq(qes_sigmf_open(qes_fx_path("a"), 1, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_source_sigmf_create(r, SIZE_MAX, &s, err, sizeof err), QES_EINVAL);
    cr_assert(strstr(err, "a.sigmf-meta"), "%s", err);

    s = NULL;
    cr_assert_eq(qes_sigmf_open(qes_fx_path("a"), 1, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_source_sigmf_create(r, 4, &s, err, sizeof err), 0, "%s", err);
    struct qes_frame f;
    cr_assert_eq(qes_source_read(s, &f, 0), QES_EINVAL);
    cr_assert_eq(qes_source_read(s, &f, 3), 1);
    cr_assert_eq(f.n, 3);
    qes_source_destroy(s);
}

/* ---- qes:lost_before_first and the other qes keys ----------------------------------------- */

/* A 2-channel ri32 capture NAME at 1 kHz holding run indices [g, g + n)
 * (values 2 * run + channel), with extra global members (may be NULL). */
static void make_part(const char *name, uint64_t g, size_t n, const char *extra)
{
    struct qes_sigmf_writer_desc d = {
            .path = qes_fx_path(name),
            .dtype = QES_DT_RI32_LE,
            .sample_rate_hz = 1000.0,
            .num_channels = 2,
            .datetime_ns = t0_ns,
            .extra_global_json = extra,
    };
    struct qes_sigmf_writer *w;
    char err[512];
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, g, t0_ns + (int64_t)g * 1000000), 0);
    if (n)
        write_run(w, g, n);
    cr_assert_eq(qes_sigmf_writer_close(w, err, sizeof err), 0, "%s", err);
}

/* The key set after creation is in the metadata (and declares the extension);
 * replay reports it on the first frame only. */
Test(source_sigmf, lost_before_first_round_trip)
{
    struct qes_sigmf_writer_desc d = {
            .path = qes_fx_path("lbf"),
            .dtype = QES_DT_RI32_LE,
            .sample_rate_hz = 1000.0,
            .num_channels = 2,
            .datetime_ns = t0_ns,
    };
    struct qes_sigmf_writer *w;
    char err[512];
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 40, t0_ns + 40 * 1000000LL), 0);
    cr_assert_eq(qes_sigmf_writer_set_extra(w, "qes:lost_before_first", "7"), 0, "%s",
                 qes_sigmf_writer_errmsg(w));
    /* replaced by a later call */
    cr_assert_eq(qes_sigmf_writer_set_extra(w, "qes:lost_before_first", "40"), 0);
    write_run(w, 40, 10);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 60, t0_ns + 60 * 1000000LL), 0);
    write_run(w, 60, 5);
    cr_assert_eq(qes_sigmf_writer_close(w, err, sizeof err), 0, "%s", err);

    char *text = qes_test_slurp(qes_fx_path("lbf.sigmf-meta"), NULL);
    cr_assert_not_null(text);
    cr_assert(strstr(text, "\"qes:lost_before_first\": 40"), "%s", text);
    cr_assert(strstr(text, "\"name\": \"qes\""), "the qes extension is declared: %s", text);
    free(text);

    struct qes_source *s = open_source("lbf", 4);
    const int64_t ms = 1000000;
    const struct want_frame want[] = {
            {40, 4, 40, t0_ns + 40 * ms}, {44, 4, 0, t0_ns + 44 * ms}, {48, 2, 0, t0_ns + 48 * ms},
            {60, 4, 10, t0_ns + 60 * ms}, {64, 1, 0, t0_ns + 64 * ms},
    };
    expect_frames(s, SIZE_MAX, want, sizeof want / sizeof want[0], 1);
    cr_assert_eq(qes_source_sigmf_file(s, 0)->lost_before_first, 40);
    qes_source_destroy(s);
}

Test(source_sigmf, set_extra_errors)
{
    struct qes_sigmf_writer_desc d = {
            .path = qes_fx_path("se"),
            .dtype = QES_DT_RI16_LE,
            .sample_rate_hz = 10.0,
            .num_channels = 1,
            .description = "d",
    };
    struct qes_sigmf_writer *w;
    char err[512];
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_sigmf_writer_set_extra(w, "core:sha512", "\"00\""), QES_EINVAL);
    cr_assert(strstr(qes_sigmf_writer_errmsg(w), "core:sha512"), "%s", qes_sigmf_writer_errmsg(w));
    cr_assert_eq(qes_sigmf_writer_set_extra(w, "core:description", "\"x\""), QES_EINVAL);
    cr_assert_eq(qes_sigmf_writer_set_extra(w, "core:extensions", "{}"), QES_EINVAL);
    cr_assert_eq(qes_sigmf_writer_set_extra(w, "qes:x", "{bad"), QES_EINVAL);
    cr_assert(strstr(qes_sigmf_writer_errmsg(w), "qes:x"), "%s", qes_sigmf_writer_errmsg(w));
    cr_assert_eq(qes_sigmf_writer_set_extra(w, "", "1"), QES_EINVAL);
    cr_assert_eq(qes_sigmf_writer_set_extra(w, "\xff", "1"), QES_EINVAL);
    cr_assert_eq(qes_sigmf_writer_set_extra(w, "qes:x", NULL), QES_EINVAL);
    cr_assert_eq(qes_sigmf_writer_set_extra(NULL, "qes:x", "1"), QES_EINVAL);
    /* Refusals change nothing: the capture is still valid. */
    cr_assert_eq(qes_sigmf_writer_close(w, err, sizeof err), 0, "%s", err);
    struct qes_sigmf_reader *r;
    cr_assert_eq(qes_sigmf_open(qes_fx_path("se"), 1, &r, err, sizeof err), 0, "%s", err);
    cr_assert_null(
            json_object_get(json_object_get(qes_sigmf_get_info(r)->meta, "global"), "qes:x"));
    qes_sigmf_close(r);
}

struct bad_key {
    const char *global; /* extra members of global */
    const char *key;    /* named in the message */
    const char *also;   /* also in the message, may be NULL */
};

static const struct bad_key bad_key_cases[] = {
        {"\"qes:lost_before_first\":\"5\"", "global.qes:lost_before_first", "integer"},
        {"\"qes:lost_before_first\":-1", "global.qes:lost_before_first", "integer"},
        {"\"qes:lost_before_first\":2.5", "global.qes:lost_before_first", "integer"},
        {"\"qes:lost_before_first\":null", "global.qes:lost_before_first", "integer"},
        {"\"qes:lost_before_first\":[1]", "global.qes:lost_before_first", "integer"},
        {"\"qes:lost_before_first\":101", "global.qes:lost_before_first", "run index 100"},
        {"\"qes:part\":0", "global.qes:part", ">= 1"},
        {"\"qes:part\":\"2\"", "global.qes:part", ">= 1"},
        {"\"qes:run_id\":7", "global.qes:run_id", "string"},
};

/* The reader refuses a qes key of the wrong type or range, naming it. */
ParameterizedTestParameters(source_sigmf, bad_qes_keys)
{
    static size_t idx[sizeof bad_key_cases / sizeof bad_key_cases[0]];
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, sizeof idx / sizeof idx[0]);
}

ParameterizedTest(size_t *i, source_sigmf, bad_qes_keys)
{
    const struct bad_key *p = &bad_key_cases[*i];
    char meta[1024];
    snprintf(meta, sizeof meta,
             "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.6\","
             "\"core:sample_rate\":10,%s},\"captures\":[{\"core:sample_start\":0,"
             "\"core:global_index\":100}]}",
             p->global);
    qes_fx_capture("k", meta, 2 * 4);
    struct qes_sigmf_reader *r = (struct qes_sigmf_reader *)1;
    char err[512] = "";
    int rc = qes_sigmf_open(qes_fx_path("k"), 1, &r, err, sizeof err);
    cr_assert_eq(rc, QES_EFORMAT, "%s: %s (%s)", p->global, qes_err_name(rc), err);
    cr_assert_null(r);
    cr_assert(strstr(err, p->key) && strstr(err, "k.sigmf-meta"), "%s", err);
    cr_assert(!p->also || strstr(err, p->also), "%s", err);
}

/* The boundary value is accepted; 3.0 is an integer (JSON Schema). */
Test(source_sigmf, lost_before_first_limits)
{
    const char *meta = "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.6\","
                       "\"core:sample_rate\":10,\"qes:lost_before_first\":100.0},"
                       "\"captures\":[{\"core:sample_start\":0,\"core:global_index\":100}]}";
    qes_fx_capture("lim", meta, 2 * 4);
    struct qes_source *s = open_source("lim", 0);
    const struct want_frame want[] = {{100, 4, 100, 0}};
    expect_frames(s, SIZE_MAX, want, 1, 0);
    qes_source_destroy(s);
}

/* ---- sets ---------------------------------------------------------------------------------- */

static const char rid_a[] = "\"qes:run_id\":\"aaaaaaaa-0000-8000-8000-000000000001\"";
static const char rid_b[] = "\"qes:run_id\":\"bbbbbbbb-0000-8000-8000-000000000002\"";

static char *part_json(const char *rid, unsigned part, long long lbf)
{
    static char bufs[8][256];
    static int k;
    char *b = bufs[k++ & 7];
    int n = snprintf(b, sizeof bufs[0], "{%s", rid ? rid : "");
    if (part)
        n += snprintf(b + n, sizeof bufs[0] - (size_t)n, "%s\"qes:part\":%u", n > 1 ? "," : "",
                      part);
    if (lbf >= 0)
        n += snprintf(b + n, sizeof bufs[0] - (size_t)n, "%s\"qes:lost_before_first\":%lld",
                      n > 1 ? "," : "", lbf);
    snprintf(b + n, sizeof bufs[0] - (size_t)n, "}");
    return b;
}

static int open_set(const char *const *names, size_t n, struct qes_source **s, char *err,
                    size_t errlen)
{
    const char *full[8];
    char bufs[8][4200];
    for (size_t i = 0; i < n; i++) {
        snprintf(bufs[i], sizeof bufs[i], "%s", qes_fx_path(names[i]));
        full[i] = bufs[i];
    }
    *s = (struct qes_source *)1;
    int rc = qes_source_sigmf_open_set(full, n, 1, 0, s, err, errlen);
    if (rc)
        cr_assert_null(*s);
    return rc;
}

/* Captures without parts chain in the order given; between files, a file
 * with qes:lost_before_first reports it, one without reports the jump. */
Test(source_sigmf, set_continues_the_run)
{
    make_part("p1", 5, 10, part_json(NULL, 0, -1));  /* no key: 0 before the first */
    make_part("p2", 15, 10, part_json(NULL, 0, -1)); /* contiguous */
    make_part("p3", 30, 5, part_json(NULL, 0, -1));  /* jump of 5 */
    make_part("p4", 40, 5, part_json(NULL, 0, 3));   /* the key: 3, not the jump of 5 */
    make_part("p5", 45, 0, part_json(NULL, 0, -1));  /* empty: nothing */
    make_part("p6", 50, 2, part_json(NULL, 0, -1));  /* jump from 45 */
    const char *names[] = {"p1", "p2", "p3", "p4", "p5", "p6"};
    struct qes_source *s;
    char err[2048];
    cr_assert_eq(open_set(names, 6, &s, err, sizeof err), 0, "%s", err);
    const int64_t ms = 1000000;
    const struct want_frame want[] = {
            {5, 8, 0, t0_ns + 5 * ms},   {13, 2, 0, t0_ns + 13 * ms}, {15, 8, 0, t0_ns + 15 * ms},
            {23, 2, 0, t0_ns + 23 * ms}, {30, 5, 5, t0_ns + 30 * ms}, {40, 5, 3, t0_ns + 40 * ms},
            {50, 2, 5, t0_ns + 50 * ms},
    };
    expect_frames(s, 8, want, sizeof want / sizeof want[0], 1);
    qes_source_destroy(s);
}

struct bad_set {
    const char *what;
    const char *a_extra, *b_extra; /* JSON, may be NULL */
    uint64_t a_g, b_g;             /* first run index of a (10 frames) and b */
    double b_fs;
    const char *words[3]; /* expected in the message besides both file names */
};

static const struct bad_set bad_set_cases[] = {
        {"different run ids",
         "{\"qes:run_id\":\"r1\",\"qes:part\":1}",
         "{\"qes:run_id\":\"r2\",\"qes:part\":2}",
         0,
         10,
         1000,
         {"qes:run_id", "r1", "r2"}},
        {"one run id missing",
         "{\"qes:run_id\":\"r1\"}",
         "{}",
         0,
         10,
         1000,
         {"qes:run_id", "none", NULL}},
        {"a missing part",
         "{\"qes:run_id\":\"r1\",\"qes:part\":1}",
         "{\"qes:run_id\":\"r1\",\"qes:part\":3}",
         0,
         10,
         1000,
         {"part 2 is missing", NULL}},
        {"parts missing",
         "{\"qes:part\":2}",
         "{\"qes:part\":5}",
         0,
         10,
         1000,
         {"parts 3 to 4 are missing", NULL}},
        {"the same part",
         "{\"qes:part\":2}",
         "{\"qes:part\":2}",
         0,
         10,
         1000,
         {"both qes:part 2", NULL}},
        {"part in one file", "{\"qes:part\":1}", "{}", 0, 10, 1000, {"has none", NULL}},
        {"overlapping indices",
         "{\"qes:part\":1}",
         "{\"qes:part\":2}",
         0,
         9,
         1000,
         {"starts at run index 9", "up to index 9", "overlap"}},
        {"out of order", "{}", "{}", 100, 0, 1000, {"starts at run index 0", NULL}},
        {"sample rate", "{}", "{}", 0, 10, 2000, {"core:sample_rate", NULL}},
        {"loss beyond the jump",
         "{}",
         "{\"qes:lost_before_first\":3}",
         0,
         12,
         1000,
         {"global.qes:lost_before_first", "only 2 run indices", NULL}},
};

/* Two files that are not one run: refused, the message naming both. */
ParameterizedTestParameters(source_sigmf, bad_sets)
{
    static size_t idx[sizeof bad_set_cases / sizeof bad_set_cases[0]];
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, sizeof idx / sizeof idx[0]);
}

ParameterizedTest(size_t *i, source_sigmf, bad_sets)
{
    const struct bad_set *p = &bad_set_cases[*i];
    make_part("a", p->a_g, 10, p->a_extra);
    struct qes_sigmf_writer_desc d = {
            .path = qes_fx_path("b"),
            .dtype = QES_DT_RI32_LE,
            .sample_rate_hz = p->b_fs,
            .num_channels = 2,
            .datetime_ns = t0_ns,
            .extra_global_json = p->b_extra,
    };
    struct qes_sigmf_writer *w;
    char err[2048];
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, p->b_g, t0_ns), 0);
    write_run(w, p->b_g, 4);
    cr_assert_eq(qes_sigmf_writer_close(w, err, sizeof err), 0, "%s", err);

    const char *names[] = {"a", "b"};
    struct qes_source *s;
    int rc = open_set(names, 2, &s, err, sizeof err);
    cr_assert_eq(rc, QES_EFORMAT, "%s: %s (%s)", p->what, qes_err_name(rc), err);
    cr_log_info("%s: %s", p->what, err);
    cr_assert(strstr(err, "/a.sigmf-meta") && strstr(err, "/b.sigmf-meta"), "%s: %s", p->what, err);
    for (int k = 0; k < 3 && p->words[k]; k++)
        cr_assert(strstr(err, p->words[k]), "%s: \"%s\" not in: %s", p->what, p->words[k], err);
}

/* Different datatype or channel count. */
Test(source_sigmf, set_format_mismatch)
{
    make_part("m1", 0, 4, NULL);
    const char *meta = "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.6\","
                       "\"core:sample_rate\":1000,\"core:num_channels\":2},\"captures\":[{"
                       "\"core:sample_start\":0,\"core:global_index\":4}]}";
    qes_fx_capture("m2", meta, 2 * 2 * 3);
    const char *names[] = {"m1", "m2"};
    struct qes_source *s;
    char err[2048];
    cr_assert_eq(open_set(names, 2, &s, err, sizeof err), QES_EFORMAT);
    cr_assert(strstr(err, "core:datatype ri32_le") && strstr(err, "ri16_le") &&
                      strstr(err, "m1.sigmf-meta") && strstr(err, "m2.sigmf-meta"),
              "%s", err);
    meta = "{\"global\":{\"core:datatype\":\"ri32_le\",\"core:version\":\"1.2.6\","
           "\"core:sample_rate\":1000,\"core:num_channels\":3},\"captures\":[{"
           "\"core:sample_start\":0,\"core:global_index\":4}]}";
    qes_fx_capture("m3", meta, 4 * 3 * 3);
    names[1] = "m3";
    cr_assert_eq(open_set(names, 2, &s, err, sizeof err), QES_EFORMAT);
    cr_assert(strstr(err, "core:num_channels 2") && strstr(err, "m3.sigmf-meta"), "%s", err);
}

/* Every file is verified; a name given twice is refused; a file changed
 * after the check is refused when the replay reaches it. */
Test(source_sigmf, set_verify_and_names)
{
    make_part("v-1", 0, 10, part_json(rid_a, 1, 0));
    make_part("v-2", 10, 10, part_json(rid_a, 2, 0));
    make_part("v-3", 20, 10, part_json(rid_a, 3, 0));
    struct qes_source *s;
    char err[2048];
    /* Part 2's data altered (same size): its hash no longer matches. */
    unsigned char bytes[4];
    qes_fx_le(bytes, 12345, 4);
    FILE *f = fopen(qes_fx_path("v-2.sigmf-data"), "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(bytes, 1, 4, f), 4);
    cr_assert_eq(fclose(f), 0);
    const char *names[] = {"v-3.sigmf-meta", "v-1.sigmf-meta", "v-2.sigmf-meta"};
    int rc = open_set(names, 3, &s, err, sizeof err);
    cr_assert_eq(rc, QES_EHASH, "%s (%s)", qes_err_name(rc), err);
    cr_assert(strstr(err, "v-2.sigmf-meta"), "%s", err);
    make_part("v-2", 10, 10, part_json(rid_a, 2, 0));

    const char *twice[] = {"v-1.sigmf-meta", "v-2.sigmf-data", "v-1.sigmf-meta"};
    rc = open_set(twice, 3, &s, err, sizeof err);
    cr_assert_eq(rc, QES_EINVAL, "%s (%s)", qes_err_name(rc), err);
    cr_assert(strstr(err, "v-1.sigmf-meta is given twice (arguments 1 and 3)"), "%s", err);
    const char *none[] = {"v-1", "nope"};
    rc = open_set(none, 2, &s, err, sizeof err);
    cr_assert_eq(rc, QES_ENOENT, "%s (%s)", qes_err_name(rc), err);
    cr_assert(strstr(err, "nope.sigmf-meta"), "%s", err);
    struct qes_source *s0 = (struct qes_source *)1;
    cr_assert_eq(qes_source_sigmf_open_set(NULL, 0, 1, 0, &s0, err, sizeof err), QES_EINVAL);
    cr_assert_null(s0);

    /* Checked, then part 3 is rewritten with another run id before the
     * replay reaches it. */
    cr_assert_eq(open_set(names, 3, &s, err, sizeof err), 0, "%s", err);
    make_part("v-3", 20, 10, part_json(rid_b, 3, 0));
    struct qes_frame fr;
    uint64_t n = 0;
    while ((rc = qes_source_read(s, &fr, 100)) == 1)
        n += fr.n;
    cr_assert_eq(rc, QES_EIO, "%s (%s)", qes_err_name(rc), s->errmsg);
    cr_assert_eq(n, 20, "parts 1 and 2 replayed before the changed part 3");
    cr_assert(strstr(s->errmsg, "v-3.sigmf-meta") && strstr(s->errmsg, "changed"), "%s", s->errmsg);
    qes_source_destroy(s);
    /* A different source kind has no files. */
    cr_assert_eq(qes_source_sigmf_n_files(NULL), 0);
    cr_assert_null(qes_source_sigmf_info(NULL));
}
