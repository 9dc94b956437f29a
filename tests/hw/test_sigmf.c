/*
 * SigMF reader and writer.
 *
 * Environment:
 *   QES_TEST_SMALL=1  run the bounded-memory streaming test with 1 M frames
 *                     instead of 50 M (for slow sanitizer or valgrind runs).
 */
#include "hw/sigmf.h"
#include "common/err.h"
#include "common/utctime.h"
#include "tests/hw/sigmf_fixture.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

/* One timeout for the whole suite: Criterion 2.4.1 leaks in its runner
 * (LeakSanitizer reports it in QES_SANITIZE builds) when a test with a longer
 * per-test timeout outlives tests with a shorter one under --jobs=2. */
TestSuite(sigmf, .init = qes_fx_setup, .fini = qes_fx_teardown, .timeout = 300);

static const int64_t t0_ns = 1782864000LL * 1000000000LL + 123456789; /* 2026-07-01 */

static void sha512_hex(const void *data, size_t n, char hex[129])
{
    unsigned char d[64];
    unsigned dl = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    cr_assert_not_null(md);
    cr_assert_eq(EVP_DigestInit_ex(md, EVP_sha512(), NULL), 1);
    cr_assert_eq(EVP_DigestUpdate(md, data, n), 1);
    cr_assert_eq(EVP_DigestFinal_ex(md, d, &dl), 1);
    EVP_MD_CTX_free(md);
    for (unsigned i = 0; i < 64; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static struct qes_sigmf_writer *mk_writer(const char *base, enum qes_dtype dt, unsigned nch,
                                          const char *extra)
{
    struct qes_sigmf_writer_desc d = {
            .path = qes_fx_path(base),
            .dtype = dt,
            .sample_rate_hz = 1000.0,
            .num_channels = nch,
            .datetime_ns = t0_ns,
            .extra_global_json = extra,
    };
    struct qes_sigmf_writer *w = NULL;
    char err[512];
    int rc = qes_sigmf_writer_create(&d, &w, err, sizeof err);
    cr_assert_eq(rc, 0, "create: %s", err);
    cr_assert_not_null(w);
    return w;
}

static void close_writer(struct qes_sigmf_writer *w)
{
    char err[512];
    int rc = qes_sigmf_writer_close(w, err, sizeof err);
    cr_assert_eq(rc, 0, "close: %s", err);
}

/* ---------------------------------------------------------------------- */
/* Datatype grammar                                                       */

struct dt_case {
    const char *s;
    int rc;
    enum qes_dtype dt;
};

static const struct dt_case dtype_parse_cases[] = {
        {"ri16_le", 0, QES_DT_RI16_LE},   {"ri32_le", 0, QES_DT_RI32_LE},
        {"rf32_le", 0, QES_DT_RF32_LE},   {"rf64_le", 0, QES_DT_RF64_LE},
        {"cf32_le", QES_EUNSUPPORTED, 0}, {"ci16_le", QES_EUNSUPPORTED, 0},
        {"ri16_be", QES_EUNSUPPORTED, 0}, {"rf64_be", QES_EUNSUPPORTED, 0},
        {"ri8", QES_EUNSUPPORTED, 0},     {"cu8", QES_EUNSUPPORTED, 0},
        {"ru16_le", QES_EUNSUPPORTED, 0}, {"ru32_le", QES_EUNSUPPORTED, 0},
        {"ri17_le", QES_EFORMAT, 0},      {"rf32", QES_EFORMAT, 0},
        {"float", QES_EFORMAT, 0},        {"", QES_EFORMAT, 0},
        {"ri8_le", QES_EFORMAT, 0}, /* SigMF: byte types have no endianness */
        {"ri16_lee", QES_EFORMAT, 0},     {"ri16_LE", QES_EFORMAT, 0},
        {"Ri16_le", QES_EFORMAT, 0},      {"xi16_le", QES_EFORMAT, 0},
        {"rf16_le", QES_EFORMAT, 0},      {"ri16_le ", QES_EFORMAT, 0},
};

/* Criterion copies parameters across processes: pointers into this
 * executable's data would not survive, so the parameters are indices. */
ParameterizedTestParameters(sigmf, dtype_parse)
{
    static size_t idx[sizeof dtype_parse_cases / sizeof dtype_parse_cases[0]];
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, sizeof idx / sizeof idx[0]);
}

ParameterizedTest(size_t *i, sigmf, dtype_parse)
{
    const struct dt_case *c = &dtype_parse_cases[*i];
    enum qes_dtype dt = (enum qes_dtype)99;
    int rc = qes_dtype_parse(c->s, &dt);
    cr_assert_eq(rc, c->rc, "\"%s\": got %s, want %s", c->s, qes_err_name(rc), qes_err_name(c->rc));
    if (rc == 0) {
        cr_assert_eq(dt, c->dt, "\"%s\"", c->s);
        cr_assert_str_eq(qes_dtype_name(dt), c->s);
    }
}

Test(sigmf, dtype_sizes)
{
    cr_assert_eq(qes_dtype_size(QES_DT_RI16_LE), 2);
    cr_assert_eq(qes_dtype_size(QES_DT_RI32_LE), 4);
    cr_assert_eq(qes_dtype_size(QES_DT_RF32_LE), 4);
    cr_assert_eq(qes_dtype_size(QES_DT_RF64_LE), 8);
    cr_assert_eq(qes_dtype_size((enum qes_dtype)17), 0);
    cr_assert_eq(qes_dtype_parse(NULL, NULL), QES_EINVAL);
}

/* ---------------------------------------------------------------------- */
/* Round trips                                                            */

struct rt_case {
    enum qes_dtype dt;
    unsigned nch;
};

ParameterizedTestParameters(sigmf, round_trip)
{
    static struct rt_case cases[] = {
            {QES_DT_RI16_LE, 1}, {QES_DT_RI16_LE, 3}, {QES_DT_RI32_LE, 1}, {QES_DT_RI32_LE, 3},
            {QES_DT_RF32_LE, 1}, {QES_DT_RF32_LE, 3}, {QES_DT_RF64_LE, 1}, {QES_DT_RF64_LE, 3},
    };
    return cr_make_param_array(struct rt_case, cases, sizeof cases / sizeof cases[0]);
}

/* Values the datatype stores exactly, extremes first, then pseudo-random. */
static double rt_value(enum qes_dtype dt, size_t i, uint64_t *s)
{
    static const double i16[] = {-32768, 32767, 0, -1, 1};
    static const double i32[] = {-2147483648.0, 2147483647.0, 0, -1, 1};
    const double f32[] = {FLT_MAX, -FLT_MAX, FLT_MIN, FLT_TRUE_MIN, -0.0, INFINITY, -INFINITY, NAN};
    const double f64[] = {DBL_MAX, -DBL_MAX, DBL_MIN, DBL_TRUE_MIN, -0.0, INFINITY, -INFINITY, NAN};
    uint64_t u = qes_fx_rand(s);
    switch (dt) {
    case QES_DT_RI16_LE:
        return i < 5 ? i16[i] : (double)(int16_t)(uint16_t)u;
    case QES_DT_RI32_LE:
        return i < 5 ? i32[i] : (double)(int32_t)(uint32_t)u;
    case QES_DT_RF32_LE: {
        if (i < 8)
            return f32[i];
        float f;
        uint32_t b = (uint32_t)u;
        memcpy(&f, &b, 4);
        return isnan(f) ? 0.5 : (double)f; /* any float bit pattern but NaN payloads */
    }
    case QES_DT_RF64_LE: {
        if (i < 8)
            return f64[i];
        double d;
        memcpy(&d, &u, 8);
        return isnan(d) ? 0.25 : d;
    }
    }
    return 0;
}

/* Independent little-endian encoding of one value. */
static void rt_encode(enum qes_dtype dt, double v, unsigned char *p)
{
    switch (dt) {
    case QES_DT_RI16_LE:
        qes_fx_le(p, (uint16_t)(int16_t)v, 2);
        break;
    case QES_DT_RI32_LE:
        qes_fx_le(p, (uint32_t)(int32_t)v, 4);
        break;
    case QES_DT_RF32_LE: {
        float f = (float)v;
        uint32_t b;
        memcpy(&b, &f, 4);
        qes_fx_le(p, b, 4);
        break;
    }
    case QES_DT_RF64_LE: {
        uint64_t b;
        memcpy(&b, &v, 8);
        qes_fx_le(p, b, 8);
        break;
    }
    }
}

ParameterizedTest(struct rt_case *c, sigmf, round_trip)
{
    const size_t nf = 2500, nch = c->nch, ns = nf * nch, ss = qes_dtype_size(c->dt);
    double *v = malloc(ns * sizeof *v), *got = malloc(ns * sizeof *got);
    unsigned char *bytes = malloc(ns * ss);
    cr_assert(v && got && bytes);
    uint64_t seed = 42 + (uint64_t)c->dt;
    for (size_t i = 0; i < ns; i++) {
        v[i] = rt_value(c->dt, i, &seed);
        rt_encode(c->dt, v[i], bytes + i * ss);
    }

    struct qes_sigmf_writer *w = mk_writer("rt", c->dt, c->nch, NULL);
    /* Uneven pieces exercise the writer's staging buffer. */
    for (size_t done = 0, step = 1; done < nf; done += step, step = step * 3 + 1) {
        if (step > nf - done)
            step = nf - done;
        cr_assert_eq(qes_sigmf_writer_write(w, v + done * nch, step), 0, "%s",
                     qes_sigmf_writer_errmsg(w));
    }
    close_writer(w);

    /* The bytes on disk are the independent little-endian encoding. */
    size_t dl = 0;
    char *data = qes_test_slurp(qes_fx_path("rt.sigmf-data"), &dl);
    cr_assert_not_null(data);
    cr_assert_eq(dl, ns * ss);
    cr_assert(memcmp(data, bytes, dl) == 0, "data file bytes differ from LE encoding");
    char hex[129];
    sha512_hex(data, dl, hex);
    free(data);

    struct qes_sigmf_reader *r = NULL;
    char err[512];
    int rc = qes_sigmf_open(qes_fx_path("rt.sigmf-meta"), 1, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "open: %s", err);
    const struct qes_sigmf_info *in = qes_sigmf_get_info(r);
    cr_assert_eq(in->dtype, c->dt);
    cr_assert_eq(in->num_channels, c->nch);
    cr_assert_eq(in->n_frames, nf);
    cr_assert_eq(in->data_bytes, ns * ss);
    cr_assert_eq(in->sample_rate_hz, 1000.0);
    cr_assert_str_eq(in->sha512, hex);
    cr_assert_eq(in->sha512_verified, 1);
    cr_assert_eq(in->n_captures, 1);
    cr_assert_eq(in->captures[0].sample_start, 0);
    cr_assert_eq(in->captures[0].global_index, 0);
    cr_assert_eq(in->captures[0].has_datetime, 1);
    cr_assert_eq(in->captures[0].datetime_ns, t0_ns);

    size_t done = 0, step = 7;
    long k;
    while ((k = qes_sigmf_read(r, got + done * nch, step)) > 0) {
        done += (size_t)k;
        cr_assert_eq(qes_sigmf_tell(r), done);
        step = step * 2 + 3;
    }
    cr_assert_eq(k, 0, "read: %s", qes_sigmf_errmsg(r));
    cr_assert_eq(done, nf);
    for (size_t i = 0; i < ns; i++) {
        double want = c->dt == QES_DT_RF32_LE ? (double)(float)v[i] : v[i];
        cr_assert(memcmp(&want, &got[i], sizeof want) == 0, "sample %zu: got %a, want %a", i,
                  got[i], want);
    }
    cr_assert_eq(qes_sigmf_read(r, got, 10), 0);
    qes_sigmf_close(r);

    /* The base name opens the same capture. */
    rc = qes_sigmf_open(qes_fx_path("rt"), 0, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "open by base name: %s", err);
    cr_assert_eq(qes_sigmf_get_info(r)->sha512_verified, 0);
    qes_sigmf_close(r);
    free(v);
    free(got);
    free(bytes);
}

/* A capture written by hand: the reader decodes known byte patterns. */
Test(sigmf, decode_known_bytes)
{
    static const struct {
        const char *dt;
        unsigned char bytes[16];
        size_t n;
        double want[4];
    } cases[] = {
            {"ri16_le",
             {0x01, 0x00, 0xff, 0xff, 0x00, 0x80, 0xff, 0x7f},
             8,
             {1, -1, -32768, 32767}},
            {"ri32_le",
             {0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0x7f},
             16,
             {1, -1, -2147483648.0, 2147483647.0}},
            {"rf32_le",
             {0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0, 0, 0, 0, 0, 0, 0x20, 0x41},
             16,
             {1.0, -2.0, 0.0, 10.0}},
            {"rf64_le", {0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0}, 16, {1.0, -2.0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char meta[512];
        snprintf(meta, sizeof meta,
                 "{\"global\":{\"core:datatype\":\"%s\",\"core:version\":\"1.0.0\","
                 "\"core:sample_rate\":48000},\"captures\":[{\"core:sample_start\":0}],"
                 "\"annotations\":[]}",
                 cases[i].dt);
        cr_assert_eq(qes_test_write(qes_fx_path("k.sigmf-meta"), meta), 0);
        cr_assert_eq(qes_fx_write_bytes(qes_fx_path("k.sigmf-data"), cases[i].bytes, cases[i].n),
                     0);
        struct qes_sigmf_reader *r;
        char err[512];
        cr_assert_eq(qes_sigmf_open(qes_fx_path("k.sigmf-meta"), 1, &r, err, sizeof err), 0,
                     "%s: %s", cases[i].dt, err);
        size_t ns = cases[i].n / qes_dtype_size(qes_sigmf_get_info(r)->dtype);
        double got[4];
        cr_assert_eq(qes_sigmf_read(r, got, 4), (long)ns);
        for (size_t j = 0; j < ns; j++)
            cr_assert_eq(got[j], cases[i].want[j], "%s [%zu]: got %g want %g", cases[i].dt, j,
                         got[j], cases[i].want[j]);
        cr_assert_eq(qes_sigmf_get_info(r)->sha512[0], '\0');
        cr_assert_eq(qes_sigmf_get_info(r)->sha512_verified, 0);
        qes_sigmf_close(r);
    }
}

/* Unknown keys are ignored, captures may be empty, global_index derived. */
Test(sigmf, lenient_where_the_spec_is)
{
    const char *meta = "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.0\","
                       "\"core:sample_rate\":1e3,\"core:num_channels\":2,\"core:future_key\":[1,2],"
                       "\"other:thing\":{\"a\":1}},\"captures\":[],\"annotations\":[{\"x\":1}],"
                       "\"extra\":true}";
    qes_fx_capture("l", meta, 40);
    struct qes_sigmf_reader *r;
    char err[512];
    cr_assert_eq(qes_sigmf_open(qes_fx_path("l"), 1, &r, err, sizeof err), 0, "%s", err);
    const struct qes_sigmf_info *in = qes_sigmf_get_info(r);
    cr_assert_eq(in->n_frames, 10);
    cr_assert_eq(in->num_channels, 2);
    cr_assert_eq(in->n_captures, 1);
    cr_assert_eq(in->captures[0].sample_start, 0);
    cr_assert_eq(in->captures[0].global_index, 0);
    cr_assert_eq(in->captures[0].has_datetime, 0);
    cr_assert_eq(in->captures[0].has_global_index, 0);
    cr_assert(json_is_object(json_object_get(in->meta, "global")));
    qes_sigmf_close(r);

    meta = "{\"global\":{\"core:datatype\":\"ri16_le\",\"core:version\":\"1.2.6\","
           "\"core:sample_rate\":1000},\"captures\":[{\"core:sample_start\":0,"
           "\"core:global_index\":100},{\"core:sample_start\":4},{\"core:sample_start\":6,"
           "\"core:global_index\":500,\"core:datetime\":\"2026-01-01T00:00:00.5Z\"}]}";
    qes_fx_capture("g", meta, 20);
    cr_assert_eq(qes_sigmf_open(qes_fx_path("g.sigmf-meta"), 1, &r, err, sizeof err), 0, "%s", err);
    in = qes_sigmf_get_info(r);
    cr_assert_eq(in->n_captures, 3);
    cr_assert_eq(in->captures[0].global_index, 100);
    cr_assert_eq(in->captures[1].global_index, 104); /* derived: no gap */
    cr_assert_eq(in->captures[1].has_global_index, 0);
    cr_assert_eq(in->captures[2].global_index, 500);
    cr_assert_eq(in->captures[2].has_global_index, 1);
    cr_assert_eq(in->captures[2].datetime_ns, 1767225600500000000LL);
    qes_sigmf_close(r);
}

/* ---------------------------------------------------------------------- */
/* Bad captures                                                           */

#define META(global, caps)                                                    \
    "{\"global\":{\"core:version\":\"1.2.6\"," global "},\"captures\":[" caps \
    "],\"annotations\":[]}"
#define DT16 "\"core:datatype\":\"ri16_le\""
#define FS   "\"core:sample_rate\":1000"

struct bad_case {
    const char *label;
    const char *meta;
    size_t data_bytes; /* SIZE_MAX: no data file */
    int rc;
    const char *field; /* must appear in the message */
    const char *also;  /* must appear too, may be NULL */
};

static const struct bad_case bad_capture_cases[] = {
        {"datatype ri17_le", META("\"core:datatype\":\"ri17_le\"," FS, ""), 8, QES_EFORMAT,
         "global.core:datatype", "\"ri17_le\" is not a SigMF datatype"},
        {"datatype rf32", META("\"core:datatype\":\"rf32\"," FS, ""), 8, QES_EFORMAT,
         "global.core:datatype", "\"rf32\""},
        {"datatype float", META("\"core:datatype\":\"float\"," FS, ""), 8, QES_EFORMAT,
         "global.core:datatype", "\"float\""},
        {"datatype number", META("\"core:datatype\":16," FS, ""), 8, QES_EFORMAT,
         "global.core:datatype", "string"},
        {"datatype missing", META(FS, ""), 8, QES_EFORMAT, "global.core:datatype", "missing"},
        {"complex", META("\"core:datatype\":\"cf32_le\"," FS, ""), 8, QES_EUNSUPPORTED,
         "global.core:datatype", "complex datatypes are not supported yet"},
        {"big-endian", META("\"core:datatype\":\"ri16_be\"," FS, ""), 8, QES_EUNSUPPORTED,
         "global.core:datatype", "big-endian datatypes are not supported yet"},
        {"8-bit", META("\"core:datatype\":\"ri8\"," FS, ""), 8, QES_EUNSUPPORTED,
         "global.core:datatype", "8-bit"},
        {"unsigned", META("\"core:datatype\":\"ru16_le\"," FS, ""), 8, QES_EUNSUPPORTED,
         "global.core:datatype", "unsigned"},
        {"unsorted captures",
         META(DT16 "," FS, "{\"core:sample_start\":2},{\"core:sample_start\":1}"), 8, QES_EFORMAT,
         "captures[1].core:sample_start", "sorted"},
        {"duplicate sample_start",
         META(DT16 "," FS,
              "{\"core:sample_start\":0},{\"core:sample_start\":2},{\"core:sample_start\":2}"),
         8, QES_EFORMAT, "captures[2].core:sample_start", NULL},
        {"sample_start negative", META(DT16 "," FS, "{\"core:sample_start\":-1}"), 8, QES_EFORMAT,
         "captures[0].core:sample_start", NULL},
        {"sample_start not integer", META(DT16 "," FS, "{\"core:sample_start\":0.5}"), 8,
         QES_EFORMAT, "captures[0].core:sample_start", NULL},
        {"sample_start beyond data",
         META(DT16 "," FS, "{\"core:sample_start\":0},{\"core:sample_start\":4}"), 8, QES_EFORMAT,
         "captures[1].core:sample_start", "beyond"},
        {"capture not object", META(DT16 "," FS, "3"), 8, QES_EFORMAT, "captures[0]", NULL},
        {"global_index backwards",
         META(DT16 "," FS, "{\"core:sample_start\":0,\"core:global_index\":10},"
                           "{\"core:sample_start\":2,\"core:global_index\":11}"),
         8, QES_EFORMAT, "captures[1].core:global_index", "backwards"},
        {"global_index string",
         META(DT16 "," FS, "{\"core:sample_start\":0,\"core:global_index\":\"0\"}"), 8, QES_EFORMAT,
         "captures[0].core:global_index", NULL},
        {"data size not whole frames",
         META(DT16 "," FS ",\"core:num_channels\":3", "{\"core:sample_start\":0}"), 7, QES_EFORMAT,
         "bad.sigmf-data", "7 bytes"},
        {"missing data file", META(DT16 "," FS, ""), SIZE_MAX, QES_ENOENT, "bad.sigmf-data", NULL},
        {"non-UTC datetime",
         META(DT16 "," FS,
              "{\"core:sample_start\":0,\"core:datetime\":\"2026-01-01T00:00:00+01:00\"}"),
         8, QES_EFORMAT, "captures[0].core:datetime", "2026-01-01T00:00:00+01:00"},
        {"datetime without zone",
         META(DT16 "," FS, "{\"core:sample_start\":0},"
                           "{\"core:sample_start\":1,\"core:datetime\":\"2026-01-01T00:00:00\"}"),
         8, QES_EFORMAT, "captures[1].core:datetime", NULL},
        {"datetime number", META(DT16 "," FS, "{\"core:sample_start\":0,\"core:datetime\":0}"), 8,
         QES_EFORMAT, "captures[0].core:datetime", NULL},
        {"missing sample_rate", META(DT16, ""), 8, QES_EFORMAT, "global.core:sample_rate",
         "missing"},
        {"negative sample_rate", META(DT16 ",\"core:sample_rate\":-1000", ""), 8, QES_EFORMAT,
         "global.core:sample_rate", NULL},
        {"zero sample_rate", META(DT16 ",\"core:sample_rate\":0", ""), 8, QES_EFORMAT,
         "global.core:sample_rate", NULL},
        {"string sample_rate", META(DT16 ",\"core:sample_rate\":\"1000\"", ""), 8, QES_EFORMAT,
         "global.core:sample_rate", "number"},
        {"num_channels 0", META(DT16 "," FS ",\"core:num_channels\":0", ""), 8, QES_EFORMAT,
         "global.core:num_channels", NULL},
        {"num_channels string", META(DT16 "," FS ",\"core:num_channels\":\"2\"", ""), 8,
         QES_EFORMAT, "global.core:num_channels", NULL},
        {"num_channels 1.5", META(DT16 "," FS ",\"core:num_channels\":1.5", ""), 8, QES_EFORMAT,
         "global.core:num_channels", NULL},
        {"sha512 short", META(DT16 "," FS ",\"core:sha512\":\"abcd\"", ""), 8, QES_EFORMAT,
         "global.core:sha512", NULL},
        {"version 2",
         "{\"global\":{\"core:version\":\"2.0.0\"," DT16 "," FS "},"
         "\"captures\":[]}",
         8, QES_EUNSUPPORTED, "global.core:version", NULL},
        {"version missing", "{\"global\":{" DT16 "," FS "},\"captures\":[]}", 8, QES_EFORMAT,
         "global.core:version", "missing"},
        {"global missing", "{\"captures\":[]}", 8, QES_EFORMAT, "global", "missing"},
        {"captures missing", "{\"global\":{\"core:version\":\"1.2.6\"," DT16 "," FS "}}", 8,
         QES_EFORMAT, "captures", "missing"},
        {"captures object",
         "{\"global\":{\"core:version\":\"1.2.6\"," DT16 "," FS "},\"captures\":{}}", 8,
         QES_EFORMAT, "captures", "array"},
        {"annotations object",
         "{\"global\":{\"core:version\":\"1.2.6\"," DT16 "," FS "},\"captures\":[],"
         "\"annotations\":{}}",
         8, QES_EFORMAT, "annotations", "array"},
        {"top level array", "[1,2]", 8, QES_EFORMAT, "top level", NULL},
        {"malformed JSON", "{\"global\":{\"core:version\":\"1.2.6\",\n\"core:datatype\":}", 8,
         QES_EFORMAT, "line 2", "column"},
        {"duplicate key",
         "{\"global\":{\"core:version\":\"1.2.6\"," DT16 "," DT16 "," FS "},\"captures\":[]}", 8,
         QES_EFORMAT, "duplicate", NULL},
};

/* Criterion copies parameters across processes: pointers into this
 * executable's data would not survive, so the parameters are indices. */
ParameterizedTestParameters(sigmf, bad_capture)
{
    static size_t idx[sizeof bad_capture_cases / sizeof bad_capture_cases[0]];
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, sizeof idx / sizeof idx[0]);
}

ParameterizedTest(size_t *i, sigmf, bad_capture)
{
    const struct bad_case *c = &bad_capture_cases[*i];
    qes_fx_capture("bad", c->meta, c->data_bytes);
    struct qes_sigmf_reader *r = (struct qes_sigmf_reader *)1;
    char err[512];
    int rc = qes_sigmf_open(qes_fx_path("bad.sigmf-meta"), 1, &r, err, sizeof err);
    cr_log_info("%s: %s", c->label, err);
    cr_assert_eq(rc, c->rc, "%s: got %s, want %s (%s)", c->label, qes_err_name(rc),
                 qes_err_name(c->rc), err);
    cr_assert_null(r, "%s: *out not NULL on error", c->label);
    cr_assert(strstr(err, "bad.sigmf-meta") != NULL, "%s: message does not name the file: %s",
              c->label, err);
    cr_assert(strstr(err, c->field) != NULL, "%s: message does not name %s: %s", c->label, c->field,
              err);
    if (c->also)
        cr_assert(strstr(err, c->also) != NULL, "%s: message lacks \"%s\": %s", c->label, c->also,
                  err);
}

Test(sigmf, missing_meta)
{
    struct qes_sigmf_reader *r;
    char err[512];
    int rc = qes_sigmf_open(qes_fx_path("nothing.sigmf-meta"), 1, &r, err, sizeof err);
    cr_assert_eq(rc, QES_ENOENT, "%s", qes_err_name(rc));
    cr_assert(strstr(err, "nothing.sigmf-meta"), "%s", err);
    cr_assert_eq(qes_sigmf_open(NULL, 1, &r, NULL, 0), QES_EINVAL);
}

/* ---------------------------------------------------------------------- */
/* Hash and file changes                                                  */

static void write_ramp(const char *base, enum qes_dtype dt, size_t nf)
{
    struct qes_sigmf_writer *w = mk_writer(base, dt, 1, NULL);
    double *v = malloc(nf * sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < nf; i++)
        v[i] = (double)(i % 30000);
    cr_assert_eq(qes_sigmf_writer_write(w, v, nf), 0);
    free(v);
    close_writer(w);
}

Test(sigmf, hash_mismatch_and_no_verify)
{
    write_ramp("h", QES_DT_RI16_LE, 5000);
    const char *dp = qes_fx_path("h.sigmf-data");
    size_t n;
    unsigned char *data = (unsigned char *)qes_test_slurp(dp, &n);
    cr_assert_not_null(data);
    char good[129], bad[129];
    sha512_hex(data, n, good);
    data[1234] ^= 0x01;
    sha512_hex(data, n, bad);
    cr_assert_eq(qes_fx_write_bytes(dp, data, n), 0);
    free(data);

    struct qes_sigmf_reader *r;
    char err[1024];
    int rc = qes_sigmf_open(qes_fx_path("h"), 1, &r, err, sizeof err);
    cr_assert_eq(rc, QES_EHASH, "%s: %s", qes_err_name(rc), err);
    cr_assert(strstr(err, "h.sigmf-meta") && strstr(err, "core:sha512"), "%s", err);
    cr_assert(strstr(err, good), "message lacks the metadata hash: %s", err);
    cr_assert(strstr(err, bad), "message lacks the data hash: %s", err);

    /* --no-verify: opens, and the sample is the flipped one. */
    rc = qes_sigmf_open(qes_fx_path("h"), 0, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(qes_sigmf_get_info(r)->sha512_verified, 0);
    cr_assert_str_eq(qes_sigmf_get_info(r)->sha512, good);
    double v[5000];
    cr_assert_eq(qes_sigmf_read(r, v, 5000), 5000);
    cr_assert_eq(v[617], 616.0); /* byte 1234: low byte of sample 617 = 0x269, bit 0 flipped */
    qes_sigmf_close(r);
}

Test(sigmf, uppercase_sha512_accepted)
{
    write_ramp("u", QES_DT_RI16_LE, 100);
    size_t n;
    char *meta = qes_test_slurp(qes_fx_path("u.sigmf-meta"), &n);
    cr_assert_not_null(meta);
    char *h = strstr(meta, "\"core:sha512\": \"");
    cr_assert_not_null(h);
    for (char *p = h + 16; *p != '"'; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    cr_assert_eq(qes_test_write(qes_fx_path("u.sigmf-meta"), meta), 0);
    free(meta);
    struct qes_sigmf_reader *r;
    char err[512];
    cr_assert_eq(qes_sigmf_open(qes_fx_path("u"), 1, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_sigmf_get_info(r)->sha512_verified, 1);
    qes_sigmf_close(r);
}

Test(sigmf, data_shrinks_after_open)
{
    write_ramp("s", QES_DT_RI32_LE, 10000);
    struct qes_sigmf_reader *r;
    char err[512];
    cr_assert_eq(qes_sigmf_open(qes_fx_path("s"), 1, &r, err, sizeof err), 0, "%s", err);
    double v[10000];
    cr_assert_eq(qes_sigmf_read(r, v, 100), 100);
    cr_assert_eq(truncate(qes_fx_path("s.sigmf-data"), 4000 * 4 + 2), 0);
    long k = qes_sigmf_read(r, v, 10000);
    cr_assert_eq(k, QES_EIO, "got %ld", k);
    cr_assert(strstr(qes_sigmf_errmsg(r), "s.sigmf-data"), "%s", qes_sigmf_errmsg(r));
    cr_log_info("%s", qes_sigmf_errmsg(r));
    qes_sigmf_close(r);
}

/* ---------------------------------------------------------------------- */
/* Writer                                                                 */

struct wbad_case {
    const char *label;
    const char *path;
    enum qes_dtype dt;
    double fs;
    unsigned nch;
    const char *extra;
    const char *description;
    int rc;
};

static const struct wbad_case writer_bad_desc_cases[] = {
        {"NULL path", NULL, QES_DT_RI16_LE, 1000, 1, NULL, NULL, QES_EINVAL},
        {"empty path", "", QES_DT_RI16_LE, 1000, 1, NULL, NULL, QES_EINVAL},
        {"bad dtype", "w", (enum qes_dtype)9, 1000, 1, NULL, NULL, QES_EINVAL},
        {"fs 0", "w", QES_DT_RI16_LE, 0, 1, NULL, NULL, QES_EINVAL},
        {"fs NaN", "w", QES_DT_RI16_LE, NAN, 1, NULL, NULL, QES_EINVAL},
        {"fs inf", "w", QES_DT_RI16_LE, INFINITY, 1, NULL, NULL, QES_EINVAL},
        {"0 channels", "w", QES_DT_RI16_LE, 1000, 0, NULL, NULL, QES_EINVAL},
        {"extra malformed", "w", QES_DT_RI16_LE, 1000, 1, "{\"qes:a\":", NULL, QES_EINVAL},
        {"extra array", "w", QES_DT_RI16_LE, 1000, 1, "[1]", NULL, QES_EINVAL},
        {"extra overrides datatype", "w", QES_DT_RI16_LE, 1000, 1,
         "{\"core:datatype\":\"rf64_le\"}", NULL, QES_EINVAL},
        {"extra overrides sha512", "w", QES_DT_RI16_LE, 1000, 1, "{\"core:sha512\":\"0\"}", NULL,
         QES_EINVAL},
        {"description twice", "w", QES_DT_RI16_LE, 1000, 1, "{\"core:description\":\"a\"}", "b",
         QES_EINVAL},
        {"extensions not array", "w", QES_DT_RI16_LE, 1000, 1, "{\"core:extensions\":{}}", NULL,
         QES_EINVAL},
        {"missing directory", "nodir/w", QES_DT_RI16_LE, 1000, 1, NULL, NULL, QES_ENOENT},
};

/* Criterion copies parameters across processes: pointers into this
 * executable's data would not survive, so the parameters are indices. */
ParameterizedTestParameters(sigmf, writer_bad_desc)
{
    static size_t idx[sizeof writer_bad_desc_cases / sizeof writer_bad_desc_cases[0]];
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, sizeof idx / sizeof idx[0]);
}

ParameterizedTest(size_t *i, sigmf, writer_bad_desc)
{
    const struct wbad_case *c = &writer_bad_desc_cases[*i];
    struct qes_sigmf_writer_desc d = {
            .path = c->path ? (c->path[0] ? qes_fx_path(c->path) : "") : NULL,
            .dtype = c->dt,
            .sample_rate_hz = c->fs,
            .num_channels = c->nch,
            .extra_global_json = c->extra,
            .description = c->description,
    };
    struct qes_sigmf_writer *w = (struct qes_sigmf_writer *)1;
    char err[512] = "";
    int rc = qes_sigmf_writer_create(&d, &w, err, sizeof err);
    cr_log_info("%s: %s", c->label, err);
    cr_assert_eq(rc, c->rc, "%s: got %s (%s)", c->label, qes_err_name(rc), err);
    cr_assert_null(w);
    cr_assert(err[0], "%s: no message", c->label);
    struct stat st;
    cr_assert(stat(qes_fx_path("w.sigmf-data"), &st) != 0, "%s: data file created", c->label);
}

struct range_case {
    enum qes_dtype dt;
    double v;
};

ParameterizedTestParameters(sigmf, writer_range)
{
    static struct range_case cases[] = {
            {QES_DT_RI16_LE, 32768.0},       {QES_DT_RI16_LE, -32769.0},
            {QES_DT_RI16_LE, 0.5},           {QES_DT_RI16_LE, NAN},
            {QES_DT_RI16_LE, INFINITY},      {QES_DT_RI32_LE, 2147483648.0},
            {QES_DT_RI32_LE, -2147483649.0}, {QES_DT_RI32_LE, -0.25},
            {QES_DT_RI32_LE, NAN},           {QES_DT_RI32_LE, -INFINITY},
            {QES_DT_RI32_LE, 1e300},         {QES_DT_RF32_LE, 1e39},
            {QES_DT_RF32_LE, -DBL_MAX},
    };
    return cr_make_param_array(struct range_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct range_case *c, sigmf, writer_range)
{
    struct qes_sigmf_writer *w = mk_writer("r", c->dt, 2, NULL);
    double ok[4] = {1, 2, 3, 4};
    double bad[4] = {5, 6, 7, c->v};
    cr_assert_eq(qes_sigmf_writer_write(w, ok, 2), 0);
    int rc = qes_sigmf_writer_write(w, bad, 2);
    cr_assert_eq(rc, QES_ERANGE, "%s %g: got %s", qes_dtype_name(c->dt), c->v, qes_err_name(rc));
    cr_assert(strstr(qes_sigmf_writer_errmsg(w), "frame 3 channel 1"), "%s",
              qes_sigmf_writer_errmsg(w));
    cr_assert_eq(qes_sigmf_writer_write(w, ok, 2), 0, "writer unusable after ERANGE");
    close_writer(w);
    struct qes_sigmf_reader *r;
    char err[512];
    cr_assert_eq(qes_sigmf_open(qes_fx_path("r"), 1, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_sigmf_get_info(r)->n_frames, 4, "rejected frames were written");
    qes_sigmf_close(r);
}

Test(sigmf, writer_float_special_values)
{
    struct qes_sigmf_writer *w = mk_writer("f", QES_DT_RF32_LE, 1, NULL);
    double v[4] = {NAN, INFINITY, -INFINITY, FLT_MAX};
    cr_assert_eq(qes_sigmf_writer_write(w, v, 4), 0, "%s", qes_sigmf_writer_errmsg(w));
    close_writer(w);
}

/* The meta file the writer produces, field by field. */
Test(sigmf, writer_meta_content)
{
    struct qes_sigmf_writer_desc d = {
            .path = qes_fx_path("m"),
            .dtype = QES_DT_RI32_LE,
            .sample_rate_hz = 1234567.25,
            .num_channels = 3,
            .datetime_ns = t0_ns,
            .description = "AC-PJVS run",
            .extra_global_json = "{\"qes:sim\":{\"seed\":7},\"core:hw\":\"rig A\"}",
    };
    struct qes_sigmf_writer *w;
    char err[512];
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    double f[30] = {0};
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 5, t0_ns + 1), 0); /* replaces capture 0 */
    cr_assert_eq(qes_sigmf_writer_write(w, f, 10), 0);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 100, t0_ns + 2), 0);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 200, t0_ns + 3), 0); /* replaces the previous */
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 199, t0_ns + 3), 0); /* still after 5 + 10 */
    cr_assert_eq(qes_sigmf_writer_write(w, f, 4), 0);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 202, 0), QES_EINVAL, "backwards accepted");
    cr_assert(strstr(qes_sigmf_writer_errmsg(w), "m.sigmf-meta"), "%s", qes_sigmf_writer_errmsg(w));
    cr_assert_eq(qes_sigmf_writer_new_capture(w, (uint64_t)INT64_MAX + 1, 0), QES_ERANGE);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 203, t0_ns + 4), 0); /* contiguous: allowed */
    cr_assert_eq(qes_sigmf_writer_write(w, f, 1), 0);
    close_writer(w);

    struct stat st;
    cr_assert(stat(qes_fx_path("m.sigmf-meta.tmp"), &st) != 0, "temporary file left behind");
    json_error_t je;
    json_t *root = json_load_file(qes_fx_path("m.sigmf-meta"), 0, &je);
    cr_assert_not_null(root, "%s", je.text);
    json_t *g = json_object_get(root, "global");
    cr_assert_str_eq(json_string_value(json_object_get(g, "core:datatype")), "ri32_le");
    cr_assert_eq(json_real_value(json_object_get(g, "core:sample_rate")), 1234567.25);
    cr_assert_str_eq(json_string_value(json_object_get(g, "core:version")), "1.2.6");
    cr_assert_eq(json_integer_value(json_object_get(g, "core:num_channels")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(g, "core:recorder")), "qes");
    cr_assert_str_eq(json_string_value(json_object_get(g, "core:description")), "AC-PJVS run");
    cr_assert_str_eq(json_string_value(json_object_get(g, "core:hw")), "rig A");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(g, "qes:sim"), "seed")), 7);
    json_t *ext = json_object_get(g, "core:extensions");
    cr_assert_eq(json_array_size(ext), 1);
    json_t *e0 = json_array_get(ext, 0);
    cr_assert_str_eq(json_string_value(json_object_get(e0, "name")), "qes");
    cr_assert_str_eq(json_string_value(json_object_get(e0, "version")), "0.1.0");
    cr_assert(json_is_true(json_object_get(e0, "optional")));
    cr_assert_eq(json_object_size(e0), 3);
    cr_assert_eq(strlen(json_string_value(json_object_get(g, "core:sha512"))), 128);
    cr_assert(json_is_array(json_object_get(root, "annotations")));
    cr_assert_eq(json_array_size(json_object_get(root, "annotations")), 0);

    json_t *caps = json_object_get(root, "captures");
    cr_assert_eq(json_array_size(caps), 3);
    static const long long ss[] = {0, 10, 14}, gi[] = {5, 199, 203};
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_array_get(caps, i);
        cr_assert_eq(json_integer_value(json_object_get(c, "core:sample_start")), ss[i]);
        cr_assert_eq(json_integer_value(json_object_get(c, "core:global_index")), gi[i]);
        char want[QES_UTC_LEN];
        qes_utc_format(t0_ns + 1 + (int64_t)(i == 0 ? 0 : i + 1), want);
        cr_assert_str_eq(json_string_value(json_object_get(c, "core:datetime")), want);
    }
    json_decref(root);

    /* And the reader agrees. */
    struct qes_sigmf_reader *r;
    cr_assert_eq(qes_sigmf_open(qes_fx_path("m"), 1, &r, err, sizeof err), 0, "%s", err);
    const struct qes_sigmf_info *in = qes_sigmf_get_info(r);
    cr_assert_eq(in->n_frames, 15);
    cr_assert_eq(in->n_captures, 3);
    cr_assert_eq(in->captures[1].global_index, 199);
    cr_assert_eq(in->captures[2].datetime_ns, t0_ns + 4);
    qes_sigmf_close(r);
}

Test(sigmf, writer_no_extension_without_qes_keys)
{
    struct qes_sigmf_writer *w = mk_writer("n", QES_DT_RF64_LE, 1, "{\"core:author\":\"me\"}");
    close_writer(w);
    json_error_t je;
    json_t *root = json_load_file(qes_fx_path("n.sigmf-meta"), 0, &je);
    cr_assert_not_null(root);
    json_t *g = json_object_get(root, "global");
    cr_assert_null(json_object_get(g, "core:extensions"));
    cr_assert_null(json_object_get(g, "core:description"));
    cr_assert_str_eq(json_string_value(json_object_get(g, "core:author")), "me");
    json_decref(root);

    /* An empty capture opens: zero frames, one capture. */
    struct qes_sigmf_reader *r;
    char err[512];
    cr_assert_eq(qes_sigmf_open(qes_fx_path("n"), 1, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_sigmf_get_info(r)->n_frames, 0);
    cr_assert_eq(qes_sigmf_get_info(r)->sha512_verified, 1);
    double v;
    cr_assert_eq(qes_sigmf_read(r, &v, 1), 0);
    qes_sigmf_close(r);
}

Test(sigmf, writer_keeps_declared_extensions)
{
    struct qes_sigmf_writer *w = mk_writer(
            "x", QES_DT_RI16_LE, 1,
            "{\"core:extensions\":[{\"name\":\"antenna\",\"version\":\"1.0.0\",\"optional\":true}],"
            "\"qes:cal\":{}}");
    close_writer(w);
    json_t *root = json_load_file(qes_fx_path("x.sigmf-meta"), 0, NULL);
    cr_assert_not_null(root);
    json_t *ext = json_object_get(json_object_get(root, "global"), "core:extensions");
    cr_assert_eq(json_array_size(ext), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(ext, 0), "name")), "antenna");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(ext, 1), "name")), "qes");
    json_decref(root);
}

/* A stale meta file under the same name is removed at create: a crash before
 * close must not leave a meta that describes other data. */
Test(sigmf, writer_removes_stale_meta)
{
    write_ramp("st", QES_DT_RI16_LE, 10);
    struct qes_sigmf_writer *w = mk_writer("st", QES_DT_RI16_LE, 1, NULL);
    struct stat st;
    cr_assert(stat(qes_fx_path("st.sigmf-meta"), &st) != 0, "stale meta still present");
    close_writer(w);
    cr_assert(stat(qes_fx_path("st.sigmf-meta"), &st) == 0);
}

/* ENOSPC: the data file is /dev/full. */
Test(sigmf, writer_enospc)
{
    struct stat st;
    if (stat("/dev/full", &st) != 0)
        cr_skip("no /dev/full on this system");
    cr_assert_eq(symlink("/dev/full", qes_fx_path("full.sigmf-data")), 0);
    struct qes_sigmf_writer *w = mk_writer("full", QES_DT_RI16_LE, 1, NULL);
    double v[16] = {0};
    cr_assert_eq(qes_sigmf_writer_write(w, v, 16), 0); /* buffered */
    char err[512];
    int rc = qes_sigmf_writer_close(w, err, sizeof err);
    cr_assert_eq(rc, QES_ENOSPC, "got %s: %s", qes_err_name(rc), err);
    cr_assert(strstr(err, "full.sigmf-data"), "%s", err);
    cr_assert(stat(qes_fx_path("full.sigmf-meta"), &st) != 0, "meta written after ENOSPC");
    cr_assert(stat(qes_fx_path("full.sigmf-meta.tmp"), &st) != 0, "tmp left after ENOSPC");

    /* A large write fails at once, and the error is sticky. */
    w = mk_writer("full", QES_DT_RI16_LE, 1, NULL);
    size_t n = 1 << 20;
    double *big = calloc(n, sizeof *big);
    cr_assert_not_null(big);
    cr_assert_eq(qes_sigmf_writer_write(w, big, n), QES_ENOSPC);
    cr_assert_eq(qes_sigmf_writer_write(w, big, 1), QES_ENOSPC);
    cr_assert_eq(qes_sigmf_writer_close(w, err, sizeof err), QES_ENOSPC);
    free(big);
}

/* Meta close failure: the .tmp cannot be created (a directory is in the way);
 * close fails with a message and frees the writer. */
Test(sigmf, writer_meta_failure)
{
    struct qes_sigmf_writer *w = mk_writer("mf", QES_DT_RI16_LE, 1, NULL);
    cr_assert_eq(mkdir(qes_fx_path("mf.sigmf-meta.tmp"), 0755), 0);
    char err[512];
    int rc = qes_sigmf_writer_close(w, err, sizeof err);
    cr_assert_eq(rc, QES_EIO, "got %s", qes_err_name(rc));
    cr_assert(strstr(err, "mf.sigmf-meta.tmp"), "%s", err);
    struct stat st;
    cr_assert(stat(qes_fx_path("mf.sigmf-meta"), &st) != 0);
    rmdir(qes_fx_path("mf.sigmf-meta.tmp"));
}

/* ---------------------------------------------------------------------- */
/* Against the SigMF schema (secondary check)                             */

static int run_jsonschema(const char *schema, const char *meta)
{
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "/usr/bin/jsonschema -i '%s' '%s' 2>&1", meta, schema);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[1024];
    while (fgets(line, sizeof line, p))
        if (!strstr(line, "DeprecationWarning") && !strstr(line, "from jsonschema"))
            cr_log_info("jsonschema: %s", line);
    return pclose(p);
}

Test(sigmf, writer_meta_validates_against_schema)
{
    if (access("/usr/bin/jsonschema", X_OK) != 0)
        cr_skip("/usr/bin/jsonschema not installed (python3-jsonschema); schema check skipped");
    const char *ref = qes_test_refdata();
    if (!ref)
        cr_skip("refdata not found; schema check skipped");
    char schema[4200];
    snprintf(schema, sizeof schema, "%s/sigmf/sigmf-schema-1.2.6.json", ref);
    if (access(schema, R_OK) != 0)
        cr_skip("%s not found; schema check skipped", schema);

    struct qes_sigmf_writer_desc d = {
            .path = qes_fx_path("sch"),
            .dtype = QES_DT_RF32_LE,
            .sample_rate_hz = 48000,
            .num_channels = 2,
            .datetime_ns = t0_ns,
            .description = "schema check",
            .extra_global_json = "{\"qes:rig\":{\"name\":\"demo\"}}",
    };
    struct qes_sigmf_writer *w;
    char err[512];
    cr_assert_eq(qes_sigmf_writer_create(&d, &w, err, sizeof err), 0, "%s", err);
    double f[8] = {0.5, -0.5, 1, 2, 3, 4, 5, 6};
    cr_assert_eq(qes_sigmf_writer_write(w, f, 2), 0);
    cr_assert_eq(qes_sigmf_writer_new_capture(w, 10, t0_ns + 1000), 0);
    cr_assert_eq(qes_sigmf_writer_write(w, f + 4, 2), 0);
    close_writer(w);
    int st = run_jsonschema(schema, qes_fx_path("sch.sigmf-meta"));
    cr_assert_eq(st, 0, "writer meta fails the SigMF schema (status %d)", st);

    /* Negative control: the check can fail. */
    cr_assert_eq(qes_test_write(qes_fx_path("neg.sigmf-meta"),
                                "{\"global\":{\"core:datatype\":5,\"core:version\":\"1.2.6\"},"
                                "\"captures\":[],\"annotations\":[]}"),
                 0);
    st = run_jsonschema(schema, qes_fx_path("neg.sigmf-meta"));
    cr_assert_neq(st, 0, "jsonschema accepted an invalid meta: the check is not working");
}

/* ---------------------------------------------------------------------- */
/* Bounded memory                                                         */

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static double ramp_value(uint64_t i)
{
    return (double)(int16_t)(uint16_t)((i * 2654435761u) >> 7);
}

Test(sigmf, streaming_bounded_memory)
{
    const char *small = getenv("QES_TEST_SMALL");
    const uint64_t nf = small && *small && *small != '0' ? 1000000 : 50000000;
    const size_t chunk = 1 << 18, nch = 1;
    double *buf = malloc(chunk * nch * sizeof *buf);
    cr_assert_not_null(buf);
    memset(buf, 0, chunk * nch * sizeof *buf);
    long rss0 = max_rss_kib();

    struct timeval t0, t1, t2;
    gettimeofday(&t0, NULL);
    struct qes_sigmf_writer *w = mk_writer("big", QES_DT_RI16_LE, (unsigned)nch, NULL);
    uint64_t sum_w = 0;
    for (uint64_t f = 0; f < nf;) {
        size_t k = nf - f < chunk ? (size_t)(nf - f) : chunk;
        for (size_t i = 0; i < k * nch; i++) {
            buf[i] = ramp_value(f * nch + i);
            sum_w = sum_w * 31 + (uint64_t)(int64_t)buf[i];
        }
        cr_assert_eq(qes_sigmf_writer_write(w, buf, k), 0, "%s", qes_sigmf_writer_errmsg(w));
        f += k;
    }
    close_writer(w);
    gettimeofday(&t1, NULL);

    struct qes_sigmf_reader *r;
    char err[512];
    cr_assert_eq(qes_sigmf_open(qes_fx_path("big"), 1, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(qes_sigmf_get_info(r)->n_frames, nf);
    uint64_t sum_r = 0, got = 0, idx = 0;
    long k;
    while ((k = qes_sigmf_read(r, buf, chunk - 1)) > 0) {
        for (size_t i = 0; i < (size_t)k * nch; i++, idx++)
            sum_r = sum_r * 31 + (uint64_t)(int64_t)buf[i];
        got += (uint64_t)k;
    }
    cr_assert_eq(k, 0, "%s", qes_sigmf_errmsg(r));
    qes_sigmf_close(r);
    gettimeofday(&t2, NULL);
    long rss1 = max_rss_kib();

    cr_assert_eq(got, nf);
    cr_assert_eq(sum_r, sum_w, "checksum mismatch");
    double tw = (double)(t1.tv_sec - t0.tv_sec) + 1e-6 * (double)(t1.tv_usec - t0.tv_usec);
    double tr = (double)(t2.tv_sec - t1.tv_sec) + 1e-6 * (double)(t2.tv_usec - t1.tv_usec);
    cr_log_info("%llu frames: write %.2f s, verify+read %.2f s, max RSS %ld -> %ld KiB",
                (unsigned long long)nf, tw, tr, rss0, rss1);
    /* The file is ~100 MB; the reader and writer hold ~1 MiB each. */
    cr_assert_lt(rss1 - rss0, 16 * 1024, "RSS grew by %ld KiB", rss1 - rss0);
    free(buf);
}
