/*
 * SigMF replay source: run sample indices, gaps, host times, chunking.
 */
#include "hw/source_sigmf.h"
#include "common/err.h"
#include "common/utctime.h"
#include "tests/hw/sigmf_fixture.h"

#include <criterion/criterion.h>
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
