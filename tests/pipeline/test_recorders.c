/*
 * Recorders: the JSON text of records (exact expected strings written by
 * hand from DESIGN.md), the JSON Lines, CSV and SQLite sinks, and the
 * dispatch by target name.
 */
#include "pipeline/record.h"
#include "common/err.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <criterion/redirect.h>
#include <jansson.h>
#include <sqlite3.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- fixtures ---------------------------------------------------------------- */

#define RUN_ID  "0f8e2d1c-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
#define RUN_SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

static struct qes_run_rec test_run(void)
{
    struct qes_run_rec run = {
            .id = RUN_ID,
            .command = "replay",
            .version = "0.1.0",
            .build = "GNU 12.2.0 RelWithDebInfo -O2 -g",
            .config_ini = "[source]\nkind = sigmf\npath = \"cap.sigmf-meta\"\n",
            .config_sha256 = RUN_SHA,
            .input_json = "{\"kind\":\"sigmf\",\"meta\":\"cap.sigmf-meta\"}",
            .t_start_ns = 1795743206123456789LL, /* 2026-11-27T01:33:26.123456789Z */
            .sample_rate_hz = 48000,
    };
    return run;
}

/* Block 3 of 48 samples at 48 kHz: starts 3 ms after sample 0. */
static struct qes_block_rec test_block(void)
{
    struct qes_block_rec b = {
            .measure = "fund",
            .channel = "dut",
            .unit = "V",
            .harmonic = 1,
            .seq = 3,
            .sample_start = 144,
            .n_samples = 48,
            .t_ns = 1795743206126456789LL,
            .freq_hz = 1000,
            .x = 0.75,
            .y = -0.25,
            .r = 0.1,
            .phase_rad = -3.141592653589793,
            .flags = QES_FLAG_GAP | QES_FLAG_PARTIAL,
            .enbw_hz = 1500, /* Hann window over 48 samples at 48 kHz: 1.5 fs / N */
            .thd = NAN,
            .sinad_db = NAN,
            .sfdr_db = NAN,
    };
    return b;
}

/* A DC reversal group (scalar method), 20 ms of 48 kHz samples starting 60 ms
 * after sample 0.  The phasor, enbw and quality fields hold values that a
 * scalar record must not show. */
static struct qes_block_rec test_scalar_block(void)
{
    struct qes_block_rec b = {
            .measure = "zener",
            .channel = "nvm",
            .unit = "V",
            .kind = QES_REC_SCALAR,
            .harmonic = 0,
            .seq = 5,
            .sample_start = 2880,
            .n_samples = 960,
            .t_ns = 1795743206183456789LL,
            .freq_hz = 50,
            .x = 1,
            .y = 2,
            .r = 3,
            .phase_rad = 0.5,
            .value = 9.99998712,
            .u = 2.1e-7,
            .enbw_hz = 25,
            .thd = 0.01,
            .sinad_db = 40,
            .sfdr_db = 50,
            .flags = QES_FLAG_SETTLING,
    };
    return b;
}

/* The summary of 40 reversal groups, with phasor fields that must not show. */
static struct qes_summary_rec test_scalar_summary(void)
{
    struct qes_summary_rec m = {
            .measure = "zener",
            .channel = "nvm",
            .unit = "V",
            .kind = QES_REC_SCALAR,
            .harmonic = 3,
            .seq = 1,
            .freq_hz = 50,
            .n_excluded = 2,
            .flags = QES_FLAG_EXCLUDED,
    };
    m.s.n = 7;
    m.s.x = m.s.y = m.s.r = m.s.u_r = m.s.U_r = 1;
    m.s.dof = 6;
    m.s.k = 2.4;
    m.s.coverage = 0.99;
    m.s.budget[0] = (struct qes_budget_term){"phasor", 1, 6};
    m.s.n_budget = 1;
    m.v.n = 40;
    m.v.value = 9.99998712;
    m.v.u = 3.2e-8;
    m.v.dof = 39;
    m.v.k = 2.0226909117347285;
    m.v.U = 6.4726e-8;
    m.v.coverage = 0.95;
    m.v.budget[0] = (struct qes_budget_term){"typeA", 3e-8, 39};
    m.v.budget[1] = (struct qes_budget_term){"vref", 1.1e-8, INFINITY};
    m.v.n_budget = 2;
    return m;
}

static struct qes_summary_rec test_summary(void)
{
    struct qes_summary_rec m = {
            .measure = "fund",
            .channel = "dut",
            .unit = "V",
            .harmonic = 2,
            .seq = 0,
            .freq_hz = 2000,
            .n_excluded = 1,
            .flags = QES_FLAG_FEW_BLOCKS | QES_FLAG_EXCLUDED,
    };
    m.s.n = 200;
    m.s.x = 0.5;
    m.s.y = NAN;
    m.s.r = 1e-300;
    m.s.phase_rad = -0.0;
    m.s.u_x = NAN;
    m.s.u_y = INFINITY;
    m.s.u_r = 2.5e-6;
    m.s.u_phase_rad = 1.0 / 3.0;
    m.s.dof = INFINITY;
    m.s.k = 1.96;
    m.s.U_r = 5e-324;
    m.s.coverage = 0.95;
    m.s.budget[0] = (struct qes_budget_term){"typeA", 2.5e-6, 199};
    m.s.budget[1] = (struct qes_budget_term){"gain", 0, INFINITY};
    m.s.n_budget = 2;
    return m;
}

/* How the run ended: a gap of 45 samples in 1000 at 1 kHz, exit status 3;
 * live figures (reconnects, drops, latencies) chosen to show their digits. */
static struct qes_run_end test_end(void)
{
    struct qes_run_end e = {
            .status = 3,
            .samples = 955,
            .lost = 45,
            .gaps = 1,
            .reconnects = 2,
            .frames_dropped = 7,
            .latency_n = 100,
            .latency_p50_us = 12.5,
            .latency_p99_us = 250.25,
            .latency_max_us = 1000.125,
            .seconds = 0.1,
            .t_end_ns = 1795743207123456789LL, /* 2026-11-27T01:33:27.123456789Z */
    };
    return e;
}

/* A run that ended with status 0 and nothing measured. */
static const struct qes_run_end g_end0 = {
        .latency_p50_us = NAN, .latency_p99_us = NAN, .latency_max_us = NAN, .seconds = NAN};

/* The records above, by hand. */
static const char run_json[] =
        "{\"type\":\"run\",\"run\":\"" RUN_ID "\",\"command\":\"replay\",\"version\":\"0.1.0\","
        "\"build\":\"GNU 12.2.0 RelWithDebInfo -O2 -g\",\"config_sha256\":\"" RUN_SHA "\","
        "\"config\":\"[source]\\nkind = sigmf\\npath = \\\"cap.sigmf-meta\\\"\\n\","
        "\"input\":{\"kind\":\"sigmf\",\"meta\":\"cap.sigmf-meta\"},"
        "\"t_start\":\"2026-11-27T01:33:26.123456789Z\",\"sample_rate_hz\":48000}";

static const char block_json[] =
        "{\"type\":\"block\",\"run\":\"" RUN_ID "\",\"measure\":\"fund\",\"channel\":\"dut\","
        "\"harmonic\":1,\"seq\":3,\"sample_start\":144,\"n_samples\":48,"
        "\"t\":\"2026-11-27T01:33:26.126456789Z\",\"freq_hz\":1000,\"x\":0.75,\"y\":-0.25,"
        "\"r\":0.10000000000000001,\"phase_rad\":-3.1415926535897931,\"enbw_hz\":1500,"
        "\"unit\":\"V\",\"flags\":[\"gap\",\"partial\"]}";

static const char scalar_block_json[] =
        "{\"type\":\"block\",\"run\":\"" RUN_ID "\",\"measure\":\"zener\",\"channel\":\"nvm\","
        "\"seq\":5,\"sample_start\":2880,\"n_samples\":960,"
        "\"t\":\"2026-11-27T01:33:26.183456789Z\",\"value\":9.9999871200000001,"
        "\"u\":2.1e-07,\"unit\":\"V\",\"flags\":[\"settling\"]}";

static const char scalar_summary_json[] =
        "{\"type\":\"summary\",\"run\":\"" RUN_ID "\",\"measure\":\"zener\",\"channel\":\"nvm\","
        "\"seq\":1,\"n_blocks\":40,\"n_excluded\":2,\"value\":9.9999871200000001,"
        "\"u\":3.2000000000000002e-08,\"dof\":39,\"k\":2.0226909117347285,"
        "\"U\":6.4725999999999993e-08,\"coverage\":0.94999999999999996,\"unit\":\"V\","
        "\"budget\":[{\"name\":\"typeA\",\"u\":2.9999999999999997e-08,\"dof\":39},"
        "{\"name\":\"vref\",\"u\":1.0999999999999999e-08,\"dof\":null}],"
        "\"flags\":[\"excluded\"]}";

static const char summary_json[] =
        "{\"type\":\"summary\",\"run\":\"" RUN_ID "\",\"measure\":\"fund\",\"channel\":\"dut\","
        "\"harmonic\":2,\"seq\":0,\"n_blocks\":200,\"n_excluded\":1,\"freq_hz\":2000,"
        "\"x\":0.5,\"y\":null,\"r\":1e-300,\"phase_rad\":-0,\"unit\":\"V\",\"u_x\":null,"
        "\"u_y\":null,\"u_r\":2.5000000000000002e-06,\"u_phase_rad\":0.33333333333333331,"
        "\"dof\":null,\"k\":1.96,\"U_r\":4.9406564584124654e-324,"
        "\"coverage\":0.94999999999999996,"
        "\"budget\":[{\"name\":\"typeA\",\"u\":2.5000000000000002e-06,\"dof\":199},"
        "{\"name\":\"gain\",\"u\":0,\"dof\":null}],"
        "\"flags\":[\"few_blocks\",\"excluded\"]}";

static const char run_end_json[] =
        "{\"type\":\"run_end\",\"run\":\"" RUN_ID "\",\"status\":3,\"samples\":955,"
        "\"lost\":45,\"gaps\":1,\"reconnects\":2,\"frames_dropped\":7,\"latency_n\":100,"
        "\"latency_p50_us\":12.5,\"latency_p99_us\":250.25,\"latency_max_us\":1000.125,"
        "\"seconds\":0.10000000000000001,\"t_end\":\"2026-11-27T01:33:27.123456789Z\"}";

/* A memory stream for the formatters. */
struct mstream {
    char *buf;
    size_t len;
};

static FILE *ms_open(struct mstream *m)
{
    m->buf = NULL;
    m->len = 0;
    FILE *f = open_memstream(&m->buf, &m->len);
    cr_assert_not_null(f);
    return f;
}

static char *ms_close(struct mstream *m, FILE *f)
{
    cr_assert_eq(fclose(f), 0);
    return m->buf;
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Every suite has the same timeout: Criterion 2.4's runner leaks (48 bytes,
 * seen by LeakSanitizer) when suites of one file have different ones. */

/* ---- JSON text --------------------------------------------------------------- */

TestSuite(json, .timeout = 120);

Test(json, run_record_exact)
{
    struct qes_run_rec run = test_run();
    int rc;
    struct mstream ms;
    FILE *f = ms_open(&ms);
    rc = qes_run_json(f, &run);
    char *s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, run_json);
    free(s);
}

Test(json, run_end_record_exact)
{
    struct qes_run_end e = test_end();
    struct mstream ms;
    FILE *f = ms_open(&ms);
    int rc = qes_run_end_json(f, RUN_ID, &e);
    char *s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, run_end_json);
    free(s);
    /* nothing measured: null; counts to 2^64 - 1; a negative status */
    e = qes_run_end_of_status(-2);
    e.samples = UINT64_MAX;
    e.t_end_ns = 0;
    f = ms_open(&ms);
    rc = qes_run_end_json(f, RUN_ID, &e);
    s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, "{\"type\":\"run_end\",\"run\":\"" RUN_ID
                        "\",\"status\":-2,\"samples\":18446744073709551615,\"lost\":0,"
                        "\"gaps\":0,\"reconnects\":0,\"frames_dropped\":0,\"latency_n\":0,"
                        "\"latency_p50_us\":null,\"latency_p99_us\":null,"
                        "\"latency_max_us\":null,\"seconds\":null,"
                        "\"t_end\":\"1970-01-01T00:00:00.000000000Z\"}");
    free(s);
    cr_assert_eq(qes_run_end_json(NULL, RUN_ID, &e), QES_EINVAL);
    cr_assert_eq(qes_run_end_json(stdout, RUN_ID, NULL), QES_EINVAL);
}

Test(json, block_record_exact)
{
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    int rc;
    struct mstream ms;
    FILE *f = ms_open(&ms);
    rc = qes_block_json(f, &run, &b);
    char *s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, block_json);
    free(s);
}

Test(json, summary_record_exact_nan_and_inf_are_null)
{
    struct qes_run_rec run = test_run();
    struct qes_summary_rec m = test_summary();
    int rc;
    struct mstream ms;
    FILE *f = ms_open(&ms);
    rc = qes_summary_json(f, &run, &m);
    char *s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, summary_json);
    free(s);
}

/* Format a block record into a malloc'd string; rc from qes_block_json. */
static char *block_text(const struct qes_block_rec *b, int *rc)
{
    struct qes_run_rec run = test_run();
    struct mstream ms;
    FILE *f = ms_open(&ms);
    *rc = qes_block_json(f, &run, b);
    return ms_close(&ms, f);
}

Test(json, scalar_block_exact)
{
    struct qes_block_rec b = test_scalar_block();
    int rc;
    char *s = block_text(&b, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, scalar_block_json);
    free(s);
    /* A scalar block without a value (a gap inside the group). */
    b.value = NAN;
    b.u = INFINITY;
    s = block_text(&b, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(s, ",\"value\":null,\"u\":null,\"unit\":\"V\","), "%s", s);
    free(s);
}

Test(json, scalar_summary_exact)
{
    struct qes_run_rec run = test_run();
    struct qes_summary_rec m = test_scalar_summary();
    int rc;
    struct mstream ms;
    FILE *f = ms_open(&ms);
    rc = qes_summary_json(f, &run, &m);
    char *s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(s, scalar_summary_json);
    free(s);
    /* Infinite dof is null; the budget checked is the scalar one. */
    m.v.dof = INFINITY;
    m.v.n_budget = 0;
    m.s.n_budget = QES_BUDGET_MAX + 1; /* ignored for a scalar summary */
    f = ms_open(&ms);
    rc = qes_summary_json(f, &run, &m);
    s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(s, ",\"dof\":null,"), "%s", s);
    cr_assert_not_null(strstr(s, ",\"budget\":[],"), "%s", s);
    free(s);
    m.v.n_budget = QES_BUDGET_MAX + 1;
    f = ms_open(&ms);
    rc = qes_summary_json(f, &run, &m);
    s = ms_close(&ms, f);
    cr_assert_eq(rc, QES_EINVAL);
    cr_assert_str_eq(s, "");
    free(s);
}

/* The quality figures appear only when at least one was computed, and then
 * all three, in a fixed order, so that the line shape stays predictable. */
Test(json, quality_only_when_finite)
{
    struct qes_block_rec b = test_block();
    int rc;
    char *s = block_text(&b, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_null(strstr(s, "thd"), "%s", s);
    cr_assert_null(strstr(s, "sinad"), "%s", s);
    cr_assert_null(strstr(s, "sfdr"), "%s", s);
    free(s);
    /* infinities count as not computed, too */
    b.thd = INFINITY;
    b.sfdr_db = -INFINITY;
    s = block_text(&b, &rc);
    cr_assert_null(strstr(s, "thd"), "%s", s);
    free(s);

    static const struct {
        double thd, sinad_db, sfdr_db;
        const char *text;
    } t[] = {
            {0.0012, NAN, NAN, "\"thd\":0.0011999999999999999,\"sinad_db\":null,\"sfdr_db\":null"},
            {NAN, -62.5, NAN, "\"thd\":null,\"sinad_db\":-62.5,\"sfdr_db\":null"},
            {NAN, NAN, 71.25, "\"thd\":null,\"sinad_db\":null,\"sfdr_db\":71.25"},
            {0, 60, 71.25, "\"thd\":0,\"sinad_db\":60,\"sfdr_db\":71.25"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        b = test_block();
        b.thd = t[i].thd;
        b.sinad_db = t[i].sinad_db;
        b.sfdr_db = t[i].sfdr_db;
        s = block_text(&b, &rc);
        cr_assert_eq(rc, 0);
        char want[300];
        snprintf(want, sizeof want,
                 ",\"phase_rad\":-3.1415926535897931,\"enbw_hz\":1500,%s,"
                 "\"unit\":\"V\",",
                 t[i].text);
        cr_assert_not_null(strstr(s, want), "case %zu: %s", i, s);
        json_error_t e;
        json_t *j = json_loads(s, 0, &e);
        cr_assert_not_null(j, "%s", e.text);
        cr_assert_eq(json_object_size(j), 20, "%s", s);
        json_decref(j);
        free(s);
    }
}

Test(json, enbw_null_when_not_given)
{
    struct qes_block_rec b = test_block();
    b.enbw_hz = NAN;
    int rc;
    char *s = block_text(&b, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(s, ",\"phase_rad\":-3.1415926535897931,\"enbw_hz\":null,"
                                 "\"unit\":\"V\","),
                       "%s", s);
    free(s);
}

/* A record of a kind the formatters do not know writes nothing. */
Test(json, unknown_kind_is_refused)
{
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    struct qes_summary_rec m = test_summary();
    b.kind = (enum qes_rec_kind)2;
    m.kind = (enum qes_rec_kind)2;
    int rc;
    char *s = block_text(&b, &rc);
    cr_assert_eq(rc, QES_EINVAL);
    cr_assert_str_eq(s, "");
    free(s);
    struct mstream ms;
    FILE *f = ms_open(&ms);
    rc = qes_summary_json(f, &run, &m);
    s = ms_close(&ms, f);
    cr_assert_eq(rc, QES_EINVAL);
    cr_assert_str_eq(s, "");
    free(s);
}

/* An independent parser (jansson) reads the three records back. */
Test(json, records_parse_with_jansson)
{
    const char *texts[] = {run_json, block_json, summary_json, scalar_block_json,
                           scalar_summary_json};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_error_t e;
        json_t *j = json_loads(texts[i], 0, &e);
        cr_assert_not_null(j, "record %zu: %s", i, e.text);
        cr_assert_str_eq(json_string_value(json_object_get(j, "run")), RUN_ID);
        json_decref(j);
    }
    json_t *j = json_loads(summary_json, 0, NULL);
    cr_assert(json_is_null(json_object_get(j, "dof")));
    cr_assert(json_is_null(json_object_get(j, "y")));
    cr_assert_eq(json_real_value(json_object_get(j, "k")), 1.96);
    json_decref(j);
    /* Scalar records carry value/u, never a harmonic or a phasor. */
    j = json_loads(scalar_summary_json, 0, NULL);
    cr_assert_eq(json_real_value(json_object_get(j, "U")), 6.4726e-8);
    cr_assert_eq(json_integer_value(json_object_get(j, "n_blocks")), 40);
    cr_assert_null(json_object_get(j, "harmonic"));
    cr_assert_null(json_object_get(j, "U_r"));
    json_decref(j);
    j = json_loads(scalar_block_json, 0, NULL);
    cr_assert_eq(json_real_value(json_object_get(j, "value")), 9.99998712);
    cr_assert_null(json_object_get(j, "x"));
    cr_assert_null(json_object_get(j, "enbw_hz"));
    json_decref(j);
}

Test(json, budget_json)
{
    struct qes_summary_rec m = test_summary();
    char *b = qes_budget_json(&m.s);
    cr_assert_not_null(b);
    cr_assert_str_eq(b, "[{\"name\":\"typeA\",\"u\":2.5000000000000002e-06,\"dof\":199},"
                        "{\"name\":\"gain\",\"u\":0,\"dof\":null}]");
    free(b);
    m.s.n_budget = 0;
    b = qes_budget_json(&m.s);
    cr_assert_str_eq(b, "[]");
    free(b);
    m.s.n_budget = QES_BUDGET_MAX + 1;
    cr_assert_null(qes_budget_json(&m.s));
}

/* %.17g round-trips every double exactly, including the awkward ones. */
Test(json, number_round_trip)
{
    static const double v[] = {0.1,     1e-300,   -0.0,    5e-324, DBL_MAX,
                               DBL_MIN, -DBL_MIN, 1.0 / 3, 2.5e-6, 123456789012345678.0,
                               -1e308,  0.0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct mstream ms;
        FILE *f = ms_open(&ms);
        qes_json_num(f, v[i]);
        char *s = ms_close(&ms, f);
        char *end;
        double back = strtod(s, &end);
        cr_assert_eq(*end, '\0', "%s", s);
        cr_assert_eq(memcmp(&back, &v[i], sizeof back), 0, "%.17g -> %s -> %.17g", v[i], s, back);
        free(s);
    }
    static const struct {
        double v;
        const char *text;
    } exact[] = {
            {0.1, "0.10000000000000001"},
            {1e-300, "1e-300"},
            {-0.0, "-0"},
            {5e-324, "4.9406564584124654e-324"},
            {NAN, "null"},
            {INFINITY, "null"},
            {-INFINITY, "null"},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        struct mstream ms;
        FILE *f = ms_open(&ms);
        qes_json_num(f, exact[i].v);
        char *s = ms_close(&ms, f);
        cr_assert_str_eq(s, exact[i].text);
        free(s);
    }
}

Test(json, string_escaping)
{
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    /* quote, backslash, a control character, newline, valid UTF-8 (micro
     * sign), a stray byte that is not UTF-8 */
    b.measure = "a\"b\\c\x01\n\xc2\xb5\xff";
    b.channel = NULL;
    int rc;
    struct mstream ms;
    FILE *f = ms_open(&ms);
    rc = qes_block_json(f, &run, &b);
    char *s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(s, "\"measure\":\"a\\\"b\\\\c\\u0001\\n\xc2\xb5\\ufffd\","), "%s", s);
    cr_assert_not_null(strstr(s, "\"channel\":null,"), "%s", s);
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    cr_assert_not_null(j, "%s", e.text);
    cr_assert_str_eq(json_string_value(json_object_get(j, "measure")),
                     "a\"b\\c\x01\n\xc2\xb5\xef\xbf\xbd");
    json_decref(j);
    free(s);
}

Test(json, flags)
{
    char buf[256];
    cr_assert_eq(qes_flags_json(0, buf, sizeof buf), 2);
    cr_assert_str_eq(buf, "[]");
    unsigned all = 0;
#define ALL_FLAGS(name, bit, str) all |= QES_FLAG_##name;
    QES_FLAG_MAP(ALL_FLAGS)
#undef ALL_FLAGS
    size_t n = qes_flags_json(all, buf, sizeof buf);
    cr_assert_str_eq(buf, "[\"gap\",\"clip\",\"settling\",\"overrange\",\"unlocked\",\"partial\","
                          "\"few_blocks\",\"excluded\",\"quality\",\"nonwhite\"]");
    cr_assert_eq(n, strlen(buf));
    cr_assert_eq(QES_FLAG_QUALITY, 1u << 8);
    qes_flags_json(QES_FLAG_QUALITY, buf, sizeof buf);
    cr_assert_str_eq(buf, "[\"quality\"]");
    /* A bit without a name still shows. */
    qes_flags_json(QES_FLAG_CLIP | 1u << 12, buf, sizeof buf);
    cr_assert_str_eq(buf, "[\"clip\",\"bit12\"]");
    /* Truncation as snprintf: full length returned, NUL-terminated. */
    char small[5];
    cr_assert_eq(qes_flags_json(QES_FLAG_GAP, small, sizeof small), 7);
    cr_assert_str_eq(small, "[\"ga");
}

/* The input description is raw JSON: checked, and written without the
 * whitespace between tokens so that a record stays on one line. */
Test(json, input_json_minified)
{
    struct qes_run_rec run = test_run();
    run.input_json = " {\n  \"a\" : [1, -2.5e-3, true, null, \"x\\n y\"],\n \"b\":{}\n}\n";
    int rc;
    struct mstream ms;
    FILE *f = ms_open(&ms);
    rc = qes_run_json(f, &run);
    char *s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(s, ",\"input\":{\"a\":[1,-2.5e-3,true,null,\"x\\n y\"],\"b\":{}},"),
                       "%s", s);
    cr_assert_null(strchr(s, '\n'));
    free(s);
    run.input_json = NULL;
    f = ms_open(&ms);
    rc = qes_run_json(f, &run);
    s = ms_close(&ms, f);
    cr_assert_eq(rc, 0);
    cr_assert_not_null(strstr(s, ",\"input\":null,"), "%s", s);
    free(s);
}

struct bad_json {
    char text[32];
};

ParameterizedTestParameters(json, input_json_invalid)
{
    static struct bad_json bad[] = {
            {"{"},     {"[1,]"},  {"{\"a\" 1}"}, {"01"},       {"1."},        {"\"\x01\""},
            {"tru"},   {"{} {}"}, {"\"\\x\""},   {"\"\xff\""}, {""},          {"{\"a\":}"},
            {"[1 2]"}, {"-"},     {"\"abc"},     {"nul"},      {"\"\\u12\""},
    };
    return cr_make_param_array(struct bad_json, bad, sizeof bad / sizeof bad[0]);
}

ParameterizedTest(struct bad_json *p, json, input_json_invalid)
{
    struct qes_run_rec run = test_run();
    run.input_json = p->text;
    int rc;
    struct mstream ms;
    FILE *f = ms_open(&ms);
    rc = qes_run_json(f, &run);
    char *s = ms_close(&ms, f);
    cr_assert_eq(rc, QES_EINVAL, "'%s' accepted", p->text);
    cr_assert_str_eq(s, "", "nothing may be written for a rejected record");
    free(s);
}

/* ---- JSON Lines sink --------------------------------------------------------- */

TestSuite(jsonl, .timeout = 120);

static void write_three(struct qes_recorder *r)
{
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    struct qes_summary_rec m = test_summary();
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->block(r, &run, &b), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->summary(r, &run, &m), 0, "%s", r->errmsg);
}

/* A scalar block and a scalar summary, after write_three. */
static void write_scalar(struct qes_recorder *r)
{
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_scalar_block();
    struct qes_summary_rec m = test_scalar_summary();
    cr_assert_eq(r->ops->block(r, &run, &b), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->summary(r, &run, &m), 0, "%s", r->errmsg);
}

Test(jsonl, file_exact_and_deterministic)
{
    const char *dir = qes_test_tmpdir();
    char expect[4096];
    snprintf(expect, sizeof expect, "%s\n%s\n%s\n%s\n%s\n%s\n", run_json, block_json, summary_json,
             scalar_block_json, scalar_summary_json, run_end_json);
    struct qes_run_end end = test_end();
    char *first = NULL;
    for (int pass = 0; pass < 2; pass++) {
        char *path = path_in(dir, pass ? "b.jsonl" : "a.jsonl");
        struct qes_recorder *r = NULL;
        char err[256] = "";
        cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
        cr_assert_str_eq(r->ops->name, "jsonl");
        write_three(r);
        write_scalar(r);
        cr_assert_eq(r->ops->close(r, &end), 0, "%s", r->errmsg);
        qes_recorder_destroy(r);
        size_t len;
        char *text = qes_test_slurp(path, &len);
        cr_assert_not_null(text);
        cr_assert_str_eq(text, expect);
        if (pass)
            cr_assert_eq(memcmp(first, text, len + 1), 0);
        else
            first = text;
        if (pass)
            free(text);
        free(path);
    }
    free(first);
}

Test(jsonl, stdout_dash, .init = cr_redirect_stdout)
{
    struct qes_recorder *r = NULL;
    char err[256] = "";
    cr_assert_eq(qes_recorder_open("-", &r, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(r->ops->name, "jsonl");
    write_three(r);
    struct qes_run_end end = test_end();
    cr_assert_eq(r->ops->close(r, &end), 0, "%s", r->errmsg);
    qes_recorder_destroy(r);
    char expect[4096];
    snprintf(expect, sizeof expect, "%s\n%s\n%s\n%s\n", run_json, block_json, summary_json,
             run_end_json);
    cr_assert_stdout_eq_str(expect);
}

/* No run record, no run_end: a sink closed before its run writes nothing
 * (JSON Lines: an empty file; CSV: nothing after what is there). */
Test(jsonl, no_run_no_run_end)
{
    static const char *const names[] = {"empty.jsonl", "empty.csv"};
    for (int i = 0; i < 2; i++) {
        char *path = path_in(qes_test_tmpdir(), names[i]);
        struct qes_recorder *r = NULL;
        char err[256] = "";
        cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
        struct qes_run_end end = test_end();
        cr_assert_eq(r->ops->close(r, &end), 0, "%s", r->errmsg);
        cr_assert_eq(r->ops->close(r, &end), 0, "close twice");
        qes_recorder_destroy(r);
        size_t len = 1;
        char *text = qes_test_slurp(path, &len);
        cr_assert_not_null(text);
        cr_assert_eq(len, 0, "%s: %s", names[i], text);
        free(text);
        free(path);
    }
}

/* Every sink insists on the run record first and on one run. */
struct sink_name {
    char name[16]; /* by value: the test runs in a new process (no pointers) */
};

ParameterizedTestParameters(jsonl, order_of_records)
{
    static struct sink_name names[] = {{"o.jsonl"}, {"o.csv"}, {"o.db"}};
    return cr_make_param_array(struct sink_name, names, sizeof names / sizeof names[0]);
}

ParameterizedTest(struct sink_name *p, jsonl, order_of_records)
{
    char *path = path_in(qes_test_tmpdir(), p->name);
    struct qes_recorder *r = NULL;
    char err[256] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    struct qes_summary_rec m = test_summary();
    cr_assert_eq(r->ops->block(r, &run, &b), QES_EINVAL);
    cr_assert_not_null(strstr(r->errmsg, "before the run record"), "%s", r->errmsg);
    cr_assert_eq(r->ops->summary(r, &run, &m), QES_EINVAL);
    cr_assert_eq(r->ops->run(r, &run), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->run(r, &run), QES_EINVAL, "a second run record");
    struct qes_run_rec other = run;
    other.id[0] = '1';
    cr_assert_eq(r->ops->block(r, &other, &b), QES_EINVAL, "a block of another run");
    b.kind = (enum qes_rec_kind)2;
    cr_assert_eq(r->ops->block(r, &run, &b), QES_EINVAL, "a block of unknown kind");
    cr_assert_not_null(strstr(r->errmsg, "unknown kind"), "%s", r->errmsg);
    m.kind = (enum qes_rec_kind)2;
    cr_assert_eq(r->ops->summary(r, &run, &m), QES_EINVAL, "a summary of unknown kind");
    cr_assert_not_null(strstr(r->errmsg, "unknown kind"), "%s", r->errmsg);
    m = test_scalar_summary();
    m.v.n_budget = QES_BUDGET_MAX + 1;
    cr_assert_eq(r->ops->summary(r, &run, &m), QES_EINVAL, "too many scalar budget terms");
    b = test_block();
    b.measure = NULL;
    cr_assert_eq(r->ops->block(r, &run, &b), QES_EINVAL, "a block without a measure");
    cr_assert_eq(r->ops->close(r, &g_end0), 0, "%s", r->errmsg);
    cr_assert_eq(r->ops->block(r, &run, &b), QES_EINVAL, "a block after close");
    qes_recorder_destroy(r);
    free(path);
}

/* /dev/full: every write fails with ENOSPC.  Few records stay in the buffer
 * until close; many records fail while writing.  Either way the first error
 * is QES_ENOSPC and the message names the file. */
Test(jsonl, disk_full_on_close)
{
    struct qes_recorder *r = NULL;
    char err[256] = "";
    cr_assert_eq(qes_rec_jsonl_open("/dev/full", &r, err, sizeof err), 0, "%s", err);
    write_three(r);
    cr_assert_eq(r->ops->close(r, &g_end0), QES_ENOSPC);
    cr_assert_not_null(strstr(r->errmsg, "/dev/full"), "%s", r->errmsg);
    cr_assert_not_null(strstr(r->errmsg, strerror(ENOSPC)), "%s", r->errmsg);
    qes_recorder_destroy(r);
}

Test(jsonl, disk_full_while_writing)
{
    struct qes_recorder *r = NULL;
    char err[256] = "";
    cr_assert_eq(qes_rec_jsonl_open("/dev/full", &r, err, sizeof err), 0, "%s", err);
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    cr_assert_eq(r->ops->run(r, &run), 0);
    int rc = 0;
    uint64_t i;
    /* ~330 bytes a record: the 256 KiB buffer is full before 1000. */
    for (i = 0; i < 5000 && !rc; i++) {
        b.seq = i;
        rc = r->ops->block(r, &run, &b);
    }
    cr_assert_eq(rc, QES_ENOSPC, "after %llu records", (unsigned long long)i);
    cr_assert_lt(i, 5000);
    cr_assert_not_null(strstr(r->errmsg, "'/dev/full'"), "%s", r->errmsg);
    cr_assert_eq(r->ops->block(r, &run, &b), QES_ENOSPC, "the error is sticky");
    cr_assert_eq(r->ops->close(r, &g_end0), QES_ENOSPC);
    qes_recorder_destroy(r);
}

Test(jsonl, open_in_missing_directory)
{
    char *path = path_in(qes_test_tmpdir(), "no/such/dir/out.jsonl");
    struct qes_recorder *r = NULL;
    char err[512] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), QES_EIO);
    cr_assert_null(r);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, strerror(ENOENT)), "%s", err);
    free(path);
}

/* ---- CSV sink ---------------------------------------------------------------- */

TestSuite(csv, .timeout = 120);

#define CSV_HEADER_ROW                                                                        \
    "type,run,measure,channel,harmonic,seq,sample_start,n_samples,t_utc,freq_hz[Hz],x[unit]," \
    "y[unit],r[unit],phase_rad[rad],value[unit],u[unit],unit,n_blocks,n_excluded,u_x[unit],"  \
    "u_y[unit],u_r[unit],u_phase_rad[rad],dof,k,U_r[unit],U[unit],coverage,enbw_hz[Hz],thd,"  \
    "sinad_db[dB],sfdr_db[dB],flags"
#define CSV_COLUMNS 33

/* Split one CSV line (RFC 4180) into fields, in place; returns the count. */
static size_t csv_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line, *w;
    for (;;) {
        cr_assert_lt(n, max);
        if (*p == '"') {
            fields[n++] = w = ++p;
            for (;;) {
                cr_assert_neq(*p, '\0', "unterminated quote");
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else
                    *w++ = *p++;
            }
            cr_assert(*p == ',' || *p == '\0');
            char sep = *p;
            *w = '\0';
            if (!sep)
                return n;
            p++;
        } else {
            fields[n++] = p;
            p += strcspn(p, ",");
            if (!*p)
                return n;
            *p++ = '\0';
        }
    }
}

Test(csv, comments_header_rows)
{
    char *path = path_in(qes_test_tmpdir(), "out.csv");
    struct qes_recorder *r = NULL;
    char err[256] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(r->ops->name, "csv");
    write_three(r);
    write_scalar(r);
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    b.measure = "a,\"b";
    b.x = NAN;
    b.flags = 0;
    b.thd = 0.0012;
    b.sfdr_db = 71.25;
    cr_assert_eq(r->ops->block(r, &run, &b), 0, "%s", r->errmsg);
    b = test_block();
    b.flags = QES_FLAG_QUALITY | QES_FLAG_CLIP;
    cr_assert_eq(r->ops->block(r, &run, &b), 0, "%s", r->errmsg);
    struct qes_run_end end = test_end();
    cr_assert_eq(r->ops->close(r, &end), 0, "%s", r->errmsg);
    qes_recorder_destroy(r);

    char *text = qes_test_slurp(path, NULL);
    cr_assert_not_null(text);
    /* The run record first, as comments. */
    static const char *const must[] = {
            "# run: " RUN_ID "\n",
            "# command: replay\n",
            "# version: 0.1.0\n",
            "# config_sha256: " RUN_SHA "\n",
            "# input: {\"kind\":\"sigmf\",\"meta\":\"cap.sigmf-meta\"}\n",
            "# t_start: 2026-11-27T01:33:26.123456789Z\n",
            "# sample_rate_hz: 48000\n",
            "#   [source]\n#   kind = sigmf\n",
    };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        cr_assert_not_null(strstr(text, must[i]), "missing %s in\n%s", must[i], text);
    cr_assert_eq(text[0], '#');

    char *lines[64];
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < 64;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    size_t h = 0;
    while (h < n && lines[h][0] == '#')
        h++;
    cr_assert_eq(n, h + 7 + 13,
                 "header, six rows and 13 lines of run end after %zu comment lines: %zu lines", h,
                 n);
    /* how the run ended: comment lines after the rows */
    static const char *const tail[13] = {
            "# qes run end",
            "# status: 3",
            "# samples: 955",
            "# lost: 45",
            "# gaps: 1",
            "# reconnects: 2",
            "# frames_dropped: 7",
            "# latency_n: 100",
            "# latency_p50_us: 12.5",
            "# latency_p99_us: 250.25",
            "# latency_max_us: 1000.125",
            "# seconds: 0.10000000000000001",
            "# t_end: 2026-11-27T01:33:27.123456789Z",
    };
    for (size_t i = 0; i < 13; i++)
        cr_assert_str_eq(lines[h + 7 + i], tail[i]);
    cr_assert_str_eq(lines[h], CSV_HEADER_ROW);
    /* phasor block: enbw given, quality not computed */
    cr_assert_str_eq(lines[h + 1],
                     "block," RUN_ID ",fund,dut,1,3,144,48,2026-11-27T01:33:26.126456789Z,1000,"
                     "0.75,-0.25,0.10000000000000001,-3.1415926535897931,,,V,,,,,,,,,,,,1500,,,,"
                     "gap;partial");
    cr_assert_str_eq(lines[h + 2],
                     "summary," RUN_ID ",fund,dut,2,0,,,,2000,0.5,,1e-300,-0,,,V,200,1,,,"
                     "2.5000000000000002e-06,0.33333333333333331,,1.96,4.9406564584124654e-324,,"
                     "0.94999999999999996,,,,,few_blocks;excluded");
    /* scalar rows: no harmonic, no freq_hz, no phasor, enbw or quality */
    cr_assert_str_eq(lines[h + 3],
                     "block," RUN_ID ",zener,nvm,,5,2880,960,2026-11-27T01:33:26.183456789Z,,,,,,"
                     "9.9999871200000001,2.1e-07,V,,,,,,,,,,,,,,,,settling");
    cr_assert_str_eq(lines[h + 4], "summary," RUN_ID ",zener,nvm,,1,,,,,,,,,9.9999871200000001,"
                                   "3.2000000000000002e-08,V,40,2,,,,,39,2.0226909117347285,,"
                                   "6.4725999999999993e-08,0.94999999999999996,,,,,excluded");
    cr_assert_str_eq(lines[h + 5],
                     "block," RUN_ID ",\"a,\"\"b\",dut,1,3,144,48,2026-11-27T01:33:26.126456789Z,"
                     "1000,,-0.25,0.10000000000000001,-3.1415926535897931,,,V,,,,,,,,,,,,1500,"
                     "0.0011999999999999999,,71.25,");
    cr_assert_str_eq(lines[h + 6],
                     "block," RUN_ID ",fund,dut,1,3,144,48,2026-11-27T01:33:26.126456789Z,1000,"
                     "0.75,-0.25,0.10000000000000001,-3.1415926535897931,,,V,,,,,,,,,,,,1500,,,,"
                     "clip;quality");

    /* Parse back: every row has the header's fields, and a number reads
     * back to the very same double. */
    char *hdr[40], *row[40];
    cr_assert_eq(csv_split(lines[h], hdr, 40), CSV_COLUMNS);
    for (size_t i = 1; i <= 6; i++) {
        char *copy = strdup(lines[h + i]);
        cr_assert_eq(csv_split(copy, row, 40), CSV_COLUMNS, "row %zu", i);
        free(copy);
    }
    csv_split(lines[h + 5], row, 40);
    cr_assert_str_eq(row[2], "a,\"b");
    cr_assert_str_eq(hdr[29], "thd");
    cr_assert_str_eq(row[29], "0.0011999999999999999");
    csv_split(lines[h + 3], row, 40);
    cr_assert_str_eq(hdr[14], "value[unit]");
    double v_back = strtod(row[14], NULL), v_true = 9.99998712;
    cr_assert_eq(memcmp(&v_back, &v_true, sizeof v_back), 0);
    csv_split(lines[h + 1], row, 40);
    cr_assert_str_eq(hdr[12], "r[unit]");
    double r_back = strtod(row[12], NULL), r_true = 0.1;
    cr_assert_eq(memcmp(&r_back, &r_true, sizeof r_back), 0);
    free(text);
    free(path);
}

/* A number of the run end that is not finite leaves its value empty, as a
 * cell. */
Test(csv, run_end_not_finite_is_empty)
{
    char *path = path_in(qes_test_tmpdir(), "nan.csv");
    struct qes_recorder *r = NULL;
    char err[256] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
    write_three(r);
    cr_assert_eq(r->ops->close(r, &g_end0), 0, "%s", r->errmsg);
    qes_recorder_destroy(r);
    char *text = qes_test_slurp(path, NULL);
    cr_assert_not_null(text);
    const char *tail = strstr(text, "# qes run end\n");
    cr_assert_not_null(tail, "%s", text);
    cr_assert_str_eq(tail, "# qes run end\n# status: 0\n# samples: 0\n# lost: 0\n# gaps: 0\n"
                           "# reconnects: 0\n# frames_dropped: 0\n# latency_n: 0\n"
                           "# latency_p50_us:\n# latency_p99_us:\n# latency_max_us:\n"
                           "# seconds:\n# t_end: 1970-01-01T00:00:00.000000000Z\n");
    free(text);
    free(path);
}

/* ---- SQLite sink ------------------------------------------------------------- */

TestSuite(sqlite, .timeout = 120);

static sqlite3 *db_open_ro(const char *path)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    return db;
}

static sqlite3_int64 q_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    sqlite3_int64 v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* First column of the first row as text (malloc'd), NULL for SQL NULL. */
static char *q_text(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    const unsigned char *t = sqlite3_column_text(st, 0);
    char *v = t ? strdup((const char *)t) : NULL;
    sqlite3_finalize(st);
    return v;
}

static double q_real(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    cr_assert_eq(sqlite3_column_type(st, 0), SQLITE_FLOAT, "%s", sql);
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* run + 3 blocks (the second without a value) + 1 summary. */
static int write_session(const char *path, const struct qes_run_rec *run, double x0, char *errmsg,
                         size_t errlen, int *run_rc)
{
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    int rc = qes_recorder_open(path, &r, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(r->ops->name, "sqlite");
    *run_rc = rc = r->ops->run(r, run);
    snprintf(errmsg, errlen, "%.1000s", r->errmsg);
    if (rc) {
        qes_recorder_destroy(r);
        return rc;
    }
    struct qes_block_rec b = test_block();
    for (uint64_t i = 0; i < 3 && !rc; i++) {
        b.seq = i;
        b.sample_start = 48 * i;
        b.x = i == 0 ? x0 : 0.75;
        b.r = i == 1 ? NAN : 0.1;
        b.flags = i == 1 ? QES_FLAG_GAP : 0;
        rc = r->ops->block(r, run, &b);
    }
    if (!rc) {
        struct qes_summary_rec m = test_summary();
        rc = r->ops->summary(r, run, &m);
    }
    if (rc)
        snprintf(errmsg, errlen, "%.1000s", r->errmsg);
    struct qes_run_end end = test_end();
    int crc = r->ops->close(r, &end);
    if (!rc && crc)
        snprintf(errmsg, errlen, "%.1000s", r->errmsg);
    qes_recorder_destroy(r);
    return rc ? rc : crc;
}

static void check_counts(const char *path, int runs, int blocks, int summaries)
{
    sqlite3 *db = db_open_ro(path);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM runs"), runs);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM blocks"), blocks);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM summaries"), summaries);
    sqlite3_close(db);
}

Test(sqlite, rows_nulls_unique_wal)
{
    char *path = path_in(qes_test_tmpdir(), "r.db");
    struct qes_run_rec run = test_run();
    char msg[1024];
    int run_rc;
    cr_assert_eq(write_session(path, &run, 0.75, msg, sizeof msg, &run_rc), 0, "%s", msg);
    check_counts(path, 1, 3, 1);

    sqlite3 *db = db_open_ro(path);
    char *t = q_text(db, "PRAGMA journal_mode");
    cr_assert_str_eq(t, "wal");
    free(t);
    cr_assert_eq(q_int(db, "SELECT value FROM meta WHERE key = 'schema_version'"), 1);
    /* runs */
    t = q_text(db, "SELECT config FROM runs");
    cr_assert_str_eq(t, run.config_ini);
    free(t);
    t = q_text(db, "SELECT input FROM runs");
    cr_assert_str_eq(t, run.input_json);
    free(t);
    t = q_text(db, "SELECT t_start FROM runs");
    cr_assert_str_eq(t, "2026-11-27T01:33:26.123456789Z");
    free(t);
    cr_assert_eq(q_int(db, "SELECT status FROM runs"), 3);
    cr_assert_eq(q_int(db, "SELECT closed_utc LIKE '____-__-__T__:__:__._________Z' FROM runs"), 1);
    /* how the run ended (test_end), column for field */
    cr_assert_eq(q_int(db, "SELECT samples FROM runs"), 955);
    cr_assert_eq(q_int(db, "SELECT lost FROM runs"), 45);
    cr_assert_eq(q_int(db, "SELECT gaps FROM runs"), 1);
    cr_assert_eq(q_int(db, "SELECT reconnects FROM runs"), 2);
    cr_assert_eq(q_int(db, "SELECT frames_dropped FROM runs"), 7);
    cr_assert_eq(q_int(db, "SELECT latency_n FROM runs"), 100);
    cr_assert_eq(q_real(db, "SELECT latency_p50_us FROM runs"), 12.5);
    cr_assert_eq(q_real(db, "SELECT latency_p99_us FROM runs"), 250.25);
    cr_assert_eq(q_real(db, "SELECT latency_max_us FROM runs"), 1000.125);
    cr_assert_eq(q_real(db, "SELECT seconds FROM runs"), 0.1);
    t = q_text(db, "SELECT t_end FROM runs");
    cr_assert_str_eq(t, "2026-11-27T01:33:27.123456789Z");
    free(t);
    /* blocks: exact doubles, NaN -> NULL, flags JSON */
    cr_assert_eq(q_real(db, "SELECT r FROM blocks WHERE seq = 0"), 0.1);
    cr_assert_eq(q_real(db, "SELECT phase_rad FROM blocks WHERE seq = 0"), -3.141592653589793);
    cr_assert_eq(q_int(db, "SELECT r IS NULL FROM blocks WHERE seq = 1"), 1);
    t = q_text(db, "SELECT flags FROM blocks WHERE seq = 1");
    cr_assert_str_eq(t, "[\"gap\"]");
    free(t);
    t = q_text(db, "SELECT flags FROM blocks WHERE seq = 0");
    cr_assert_str_eq(t, "[]");
    free(t);
    t = q_text(db, "SELECT t FROM blocks WHERE seq = 2");
    cr_assert_str_eq(t, "2026-11-27T01:33:26.126456789Z");
    free(t);
    cr_assert_eq(q_int(db, "SELECT sample_start FROM blocks WHERE seq = 2"), 96);
    /* phasor rows: kind, enbw given, no quality figures, no scalar value */
    cr_assert_eq(q_int(db, "SELECT count(*) FROM blocks WHERE kind = 'phasor'"), 3);
    cr_assert_eq(q_real(db, "SELECT enbw_hz FROM blocks WHERE seq = 0"), 1500);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM blocks WHERE thd IS NULL AND sinad_db IS NULL"
                           " AND sfdr_db IS NULL AND value IS NULL AND u IS NULL"),
                 3);
    t = q_text(db, "SELECT kind FROM summaries");
    cr_assert_str_eq(t, "phasor");
    free(t);
    cr_assert_eq(q_int(db, "SELECT value IS NULL AND u IS NULL AND U_expanded IS NULL"
                           " FROM summaries"),
                 1);
    /* summary: infinite dof and NaN -> NULL, budget JSON */
    cr_assert_eq(q_int(db, "SELECT dof IS NULL AND y IS NULL AND u_x IS NULL AND u_y IS NULL"
                           " FROM summaries"),
                 1);
    cr_assert_eq(q_real(db, "SELECT U_r_expanded FROM summaries"), 5e-324);
    cr_assert_eq(q_real(db, "SELECT r FROM summaries"), 1e-300);
    cr_assert_eq(q_int(db, "SELECT n_blocks FROM summaries"), 200);
    t = q_text(db, "SELECT budget FROM summaries");
    cr_assert_str_eq(t, "[{\"name\":\"typeA\",\"u\":2.5000000000000002e-06,\"dof\":199},"
                        "{\"name\":\"gain\",\"u\":0,\"dof\":null}]");
    free(t);
    sqlite3_close(db);

    /* UNIQUE(run, measure, harmonic, seq) holds for any writer. */
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_extended_result_codes(db, 1);
    int rc = sqlite3_exec(db,
                          "INSERT INTO blocks(run, measure, harmonic, seq) VALUES('" RUN_ID
                          "', 'fund', 1, 2)",
                          NULL, NULL, NULL);
    cr_assert_eq(rc, SQLITE_CONSTRAINT_UNIQUE, "%s", sqlite3_errmsg(db));
    rc = sqlite3_exec(db,
                      "INSERT INTO summaries(run, measure, harmonic, seq) VALUES('" RUN_ID
                      "', 'fund', 2, 0)",
                      NULL, NULL, NULL);
    cr_assert_eq(rc, SQLITE_CONSTRAINT_UNIQUE, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    free(path);
}

/* run + the given blocks and summaries; returns the first failure. */
static int write_records(const char *path, const struct qes_block_rec *b, size_t nb,
                         const struct qes_summary_rec *m, size_t nm, char *errmsg, size_t errlen)
{
    struct qes_run_rec run = test_run();
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
    int rc = r->ops->run(r, &run);
    for (size_t i = 0; i < nb && !rc; i++)
        rc = r->ops->block(r, &run, &b[i]);
    for (size_t i = 0; i < nm && !rc; i++)
        rc = r->ops->summary(r, &run, &m[i]);
    snprintf(errmsg, errlen, "%.1000s", r->errmsg);
    int crc = r->ops->close(r, &g_end0);
    qes_recorder_destroy(r);
    return rc ? rc : crc;
}

/* A run end with nothing measured: NULL where the number is not finite. */
Test(sqlite, run_end_not_finite_is_null)
{
    char *path = path_in(qes_test_tmpdir(), "nan.db");
    char msg[1024];
    struct qes_block_rec b = test_block();
    cr_assert_eq(write_records(path, &b, 1, NULL, 0, msg, sizeof msg), 0, "%s", msg);
    sqlite3 *db = db_open_ro(path);
    cr_assert_eq(q_int(db, "SELECT status = 0 AND samples = 0 AND lost = 0 AND gaps = 0"
                           " AND reconnects = 0 AND frames_dropped = 0 AND latency_n = 0"
                           " AND latency_p50_us IS NULL AND latency_p99_us IS NULL"
                           " AND latency_max_us IS NULL AND seconds IS NULL"
                           " AND t_end = '1970-01-01T00:00:00.000000000Z' FROM runs"),
                 1);
    sqlite3_close(db);
    free(path);
}

Test(sqlite, scalar_rows)
{
    char *path = path_in(qes_test_tmpdir(), "scalar.db");
    struct qes_block_rec b[2] = {test_scalar_block(), test_scalar_block()};
    b[1].seq = 6;
    b[1].harmonic = 4; /* not a field of scalar records: stored as 0 */
    b[1].value = NAN;  /* a group without a value */
    b[1].u = NAN;
    struct qes_summary_rec m = test_scalar_summary();
    char msg[1024];
    cr_assert_eq(write_records(path, b, 2, &m, 1, msg, sizeof msg), 0, "%s", msg);
    check_counts(path, 1, 2, 1);
    sqlite3 *db = db_open_ro(path);
    /* blocks: harmonic 0, no phasor, enbw or quality, the value exact */
    cr_assert_eq(q_int(db, "SELECT count(*) FROM blocks WHERE kind = 'scalar' AND harmonic = 0"
                           " AND freq_hz IS NULL AND x IS NULL AND y IS NULL AND r IS NULL"
                           " AND phase_rad IS NULL AND enbw_hz IS NULL AND thd IS NULL"
                           " AND sinad_db IS NULL AND sfdr_db IS NULL"),
                 2);
    cr_assert_eq(q_real(db, "SELECT value FROM blocks WHERE seq = 5"), 9.99998712);
    cr_assert_eq(q_real(db, "SELECT u FROM blocks WHERE seq = 5"), 2.1e-7);
    cr_assert_eq(q_int(db, "SELECT value IS NULL AND u IS NULL FROM blocks WHERE seq = 6"), 1);
    cr_assert_eq(q_int(db, "SELECT n_samples FROM blocks WHERE seq = 5"), 960);
    char *t = q_text(db, "SELECT flags FROM blocks WHERE seq = 5");
    cr_assert_str_eq(t, "[\"settling\"]");
    free(t);
    /* summary: value, u, U_expanded, dof, k, coverage, the scalar budget */
    cr_assert_eq(q_int(db, "SELECT kind = 'scalar' AND harmonic = 0 AND freq_hz IS NULL"
                           " AND x IS NULL AND r IS NULL AND u_x IS NULL AND u_r IS NULL"
                           " AND u_phase_rad IS NULL AND U_r_expanded IS NULL FROM summaries"),
                 1);
    cr_assert_eq(q_real(db, "SELECT value FROM summaries"), 9.99998712);
    cr_assert_eq(q_real(db, "SELECT u FROM summaries"), 3.2e-8);
    cr_assert_eq(q_real(db, "SELECT U_expanded FROM summaries"), 6.4726e-8);
    cr_assert_eq(q_real(db, "SELECT dof FROM summaries"), 39);
    cr_assert_eq(q_real(db, "SELECT k FROM summaries"), 2.0226909117347285);
    cr_assert_eq(q_real(db, "SELECT coverage FROM summaries"), 0.95);
    cr_assert_eq(q_int(db, "SELECT n_blocks FROM summaries"), 40);
    cr_assert_eq(q_int(db, "SELECT n_excluded FROM summaries"), 2);
    t = q_text(db, "SELECT budget FROM summaries");
    cr_assert_str_eq(t, "[{\"name\":\"typeA\",\"u\":2.9999999999999997e-08,\"dof\":39},"
                        "{\"name\":\"vref\",\"u\":1.0999999999999999e-08,\"dof\":null}]");
    free(t);
    t = q_text(db, "SELECT flags FROM summaries");
    cr_assert_str_eq(t, "[\"excluded\"]");
    free(t);
    sqlite3_close(db);

    /* The key is (run, measure, 0, seq) for scalar rows, for any writer. */
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_extended_result_codes(db, 1);
    int rc = sqlite3_exec(db,
                          "INSERT INTO blocks(run, measure, kind, harmonic, seq) VALUES('" RUN_ID
                          "', 'zener', 'scalar', 0, 5)",
                          NULL, NULL, NULL);
    cr_assert_eq(rc, SQLITE_CONSTRAINT_UNIQUE, "%s", sqlite3_errmsg(db));
    rc = sqlite3_exec(db,
                      "INSERT INTO blocks(run, measure, kind, harmonic, seq) VALUES('" RUN_ID
                      "', 'zener', 'vector', 0, 7)",
                      NULL, NULL, NULL);
    cr_assert_eq(rc, SQLITE_CONSTRAINT_CHECK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    free(path);
}

/* A block's quality figures go to their columns, each NULL when not computed. */
Test(sqlite, quality_columns)
{
    char *path = path_in(qes_test_tmpdir(), "quality.db");
    struct qes_block_rec b[2] = {test_block(), test_block()};
    b[0].seq = 0;
    b[0].thd = 0.0012;
    b[0].sinad_db = -62.5;
    b[0].flags = QES_FLAG_QUALITY;
    b[1].seq = 1;
    b[1].sfdr_db = 71.25;
    b[1].enbw_hz = NAN;
    char msg[1024];
    cr_assert_eq(write_records(path, b, 2, NULL, 0, msg, sizeof msg), 0, "%s", msg);
    sqlite3 *db = db_open_ro(path);
    cr_assert_eq(q_real(db, "SELECT thd FROM blocks WHERE seq = 0"), 0.0012);
    cr_assert_eq(q_real(db, "SELECT sinad_db FROM blocks WHERE seq = 0"), -62.5);
    cr_assert_eq(q_int(db, "SELECT sfdr_db IS NULL FROM blocks WHERE seq = 0"), 1);
    cr_assert_eq(q_real(db, "SELECT sfdr_db FROM blocks WHERE seq = 1"), 71.25);
    cr_assert_eq(q_int(db, "SELECT thd IS NULL AND sinad_db IS NULL AND enbw_hz IS NULL"
                           " FROM blocks WHERE seq = 1"),
                 1);
    char *t = q_text(db, "SELECT flags FROM blocks WHERE seq = 0");
    cr_assert_str_eq(t, "[\"quality\"]");
    free(t);
    sqlite3_close(db);
    free(path);
}

/* Replaying a spool with scalar records and quality figures is a no-op; a
 * difference in any of the new columns is refused, not silently kept. */
struct replay_change {
    char what[16];
};

ParameterizedTestParameters(sqlite, replay_compares_new_columns)
{
    static struct replay_change c[] = {{"value"}, {"u"},        {"sum_value"},  {"sum_u"},
                                       {"sum_U"}, {"sum_dof"},  {"sum_budget"}, {"enbw_hz"},
                                       {"thd"},   {"sinad_db"}, {"sfdr_db"},    {"kind"}};
    return cr_make_param_array(struct replay_change, c, sizeof c / sizeof c[0]);
}

ParameterizedTest(struct replay_change *p, sqlite, replay_compares_new_columns)
{
    char *path = path_in(qes_test_tmpdir(), "replay.db");
    const char *w = p->what;
    struct qes_block_rec b[2] = {test_block(), test_scalar_block()};
    b[0].thd = 0.0012;
    b[0].sinad_db = -62.5;
    b[0].sfdr_db = 71.25;
    if (!strcmp(w, "kind"))
        b[1].value = b[1].u = NAN; /* so that only the kind can differ */
    struct qes_summary_rec m[2] = {test_summary(), test_scalar_summary()};
    char msg[1024];
    cr_assert_eq(write_records(path, b, 2, m, 2, msg, sizeof msg), 0, "%s", msg);
    cr_assert_eq(write_records(path, b, 2, m, 2, msg, sizeof msg), 0, "%s", msg);
    check_counts(path, 1, 2, 2);

    const char *kind = "block";
    if (!strcmp(w, "value"))
        b[1].value = nextafter(b[1].value, 0);
    else if (!strcmp(w, "u"))
        b[1].u = NAN;
    else if (!strcmp(w, "enbw_hz"))
        b[0].enbw_hz = 1500.5;
    else if (!strcmp(w, "thd"))
        b[0].thd = NAN;
    else if (!strcmp(w, "sinad_db"))
        b[0].sinad_db = -62.25;
    else if (!strcmp(w, "sfdr_db"))
        b[0].sfdr_db = 71;
    else if (!strcmp(w, "kind")) {
        /* a phasor block without a value on the key of the scalar one */
        b[1].kind = QES_REC_PHASOR;
        b[1].freq_hz = b[1].x = b[1].y = b[1].r = b[1].phase_rad = NAN;
        b[1].enbw_hz = b[1].thd = b[1].sinad_db = b[1].sfdr_db = NAN;
    } else {
        kind = "summary";
        if (!strcmp(w, "sum_value"))
            m[1].v.value = 10;
        else if (!strcmp(w, "sum_u"))
            m[1].v.u = 3.3e-8;
        else if (!strcmp(w, "sum_U"))
            m[1].v.U = 6.5e-8;
        else if (!strcmp(w, "sum_dof"))
            m[1].v.dof = INFINITY;
        else
            m[1].v.budget[1].u = 1.2e-8;
    }
    int rc = write_records(path, b, 2, m, 2, msg, sizeof msg);
    cr_assert_eq(rc, QES_EDB, "%s changed: %s", w, msg);
    cr_assert_not_null(strstr(msg, "different values"), "%s", msg);
    cr_assert_not_null(strstr(msg, kind), "%s", msg);
    check_counts(path, 1, 2, 2);
    free(path);
}

/* schema_version 1 of a pre-release qes lacked the kind/value/quality
 * columns: say so instead of failing on a statement. */
Test(sqlite, pre_release_layout_is_refused)
{
    char *path = path_in(qes_test_tmpdir(), "old.db");
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE meta(key TEXT PRIMARY KEY, value NOT NULL);"
                              "INSERT INTO meta VALUES('schema_version', 1);"
                              "CREATE TABLE blocks(run TEXT NOT NULL, measure TEXT NOT NULL,"
                              " channel TEXT, harmonic INTEGER NOT NULL, seq INTEGER NOT NULL,"
                              " sample_start INTEGER, n_samples INTEGER, t TEXT, freq_hz REAL,"
                              " x REAL, y REAL, r REAL, phase_rad REAL, unit TEXT, flags TEXT,"
                              " UNIQUE(run, measure, harmonic, seq));",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), QES_EDB);
    cr_assert_null(r);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, "pre-release"), "%s", err);
    cr_assert_not_null(strstr(err, "kind"), "%s", err);
    free(path);
}

Test(sqlite, wal_while_open)
{
    char *path = path_in(qes_test_tmpdir(), "w.sqlite3");
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
    sqlite3 *db = db_open_ro(path);
    char *t = q_text(db, "PRAGMA journal_mode");
    cr_assert_str_eq(t, "wal");
    free(t);
    sqlite3_close(db);
    cr_assert_eq(r->ops->close(r, &g_end0), 0, "%s", r->errmsg);
    qes_recorder_destroy(r);
    free(path);
}

Test(sqlite, same_run_twice_is_idempotent)
{
    char *path = path_in(qes_test_tmpdir(), "twice.db");
    struct qes_run_rec run = test_run();
    char msg[1024];
    int run_rc;
    cr_assert_eq(write_session(path, &run, 0.75, msg, sizeof msg, &run_rc), 0, "%s", msg);
    cr_assert_eq(write_session(path, &run, 0.75, msg, sizeof msg, &run_rc), 0, "%s", msg);
    cr_assert_not_null(strstr(msg, "already recorded"), "%s", msg);
    check_counts(path, 1, 3, 1);
    free(path);
}

Test(sqlite, same_id_other_config_is_refused)
{
    char *path = path_in(qes_test_tmpdir(), "other.db");
    struct qes_run_rec run = test_run();
    char msg[1024];
    int run_rc;
    cr_assert_eq(write_session(path, &run, 0.75, msg, sizeof msg, &run_rc), 0, "%s", msg);
    run.config_sha256[0] = '0';
    cr_assert_eq(write_session(path, &run, 0.75, msg, sizeof msg, &run_rc), QES_EDB);
    cr_assert_eq(run_rc, QES_EDB);
    cr_assert_not_null(strstr(msg, path), "%s", msg);
    cr_assert_not_null(strstr(msg, RUN_ID), "%s", msg);
    run = test_run();
    run.input_json = "{\"kind\":\"sigmf\",\"meta\":\"other.sigmf-meta\"}";
    cr_assert_eq(write_session(path, &run, 0.75, msg, sizeof msg, &run_rc), QES_EDB);
    check_counts(path, 1, 3, 1);
    free(path);
}

/* Same run, but a block value differs from the recorded one: not silent. */
Test(sqlite, same_key_other_values_is_refused)
{
    char *path = path_in(qes_test_tmpdir(), "diff.db");
    struct qes_run_rec run = test_run();
    char msg[1024];
    int run_rc;
    cr_assert_eq(write_session(path, &run, 0.75, msg, sizeof msg, &run_rc), 0, "%s", msg);
    cr_assert_eq(write_session(path, &run, 0.7500000000000001, msg, sizeof msg, &run_rc), QES_EDB);
    cr_assert_eq(run_rc, 0);
    cr_assert_not_null(strstr(msg, "different values"), "%s", msg);
    cr_assert_not_null(strstr(msg, "seq 0"), "%s", msg);
    check_counts(path, 1, 3, 1);
    sqlite3 *db = db_open_ro(path);
    cr_assert_eq(q_real(db, "SELECT x FROM blocks WHERE seq = 0"), 0.75);
    sqlite3_close(db);
    free(path);
}

Test(sqlite, destroy_without_close_keeps_records)
{
    char *path = path_in(qes_test_tmpdir(), "crash.db");
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    cr_assert_eq(r->ops->run(r, &run), 0);
    cr_assert_eq(r->ops->block(r, &run, &b), 0);
    qes_recorder_destroy(r);
    check_counts(path, 1, 1, 0);
    sqlite3 *db = db_open_ro(path);
    cr_assert_eq(q_int(db, "SELECT status IS NULL AND closed_utc IS NULL FROM runs"), 1);
    sqlite3_close(db);
    free(path);
}

Test(sqlite, missing_directory)
{
    char *path = path_in(qes_test_tmpdir(), "no/such/dir/r.db");
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), QES_EDB);
    cr_assert_null(r);
    cr_assert_not_null(strstr(err, path), "%s", err);
    free(path);
}

Test(sqlite, read_only_file)
{
    const char *dir = qes_test_tmpdir();
    char *path = path_in(dir, "ro.db");
    struct qes_run_rec run = test_run();
    char msg[1024];
    int run_rc;
    cr_assert_eq(write_session(path, &run, 0.75, msg, sizeof msg, &run_rc), 0, "%s", msg);
    cr_assert_eq(chmod(path, 0444), 0);
    /* Only the file is protected: the directory stays writable. */
    cr_assert_eq(chmod(dir, 0777), 0);
    if (geteuid() == 0) {
        /* root writes anyway; this test runs in its own process, so drop to
         * nobody for the rest of it. */
        cr_assert_eq(setgid(65534), 0, "%s", strerror(errno));
        cr_assert_eq(setuid(65534), 0, "%s", strerror(errno));
    }
    cr_assert_neq(access(path, W_OK), 0, "file still writable");
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), QES_EDB);
    cr_assert_null(r);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, "read-only"), "%s", err);
    free(path);
}

Test(sqlite, newer_schema_is_refused)
{
    char *path = path_in(qes_test_tmpdir(), "new.db");
    struct qes_run_rec run = test_run();
    char msg[1024];
    int run_rc;
    cr_assert_eq(write_session(path, &run, 0.75, msg, sizeof msg, &run_rc), 0, "%s", msg);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "UPDATE meta SET value = 2 WHERE key = 'schema_version'", NULL,
                              NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), QES_EDB);
    cr_assert_not_null(strstr(err, "schema_version 2"), "%s", err);
    cr_assert_not_null(strstr(err, path), "%s", err);
    free(path);
}

Test(sqlite, foreign_files_are_refused)
{
    const char *dir = qes_test_tmpdir();
    /* not a database at all */
    char *path = path_in(dir, "text.db");
    cr_assert_eq(qes_test_write(path, "time,value\n0,1\n1,2\n3,4\n5,6\n7,8\n9,10\n11,12\n13,14\n"
                                      "15,16\n17,18\n19,20\n21,22\n23,24\n25,26\n27,28\n"),
                 0);
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), QES_EDB);
    cr_assert_not_null(strstr(err, path), "%s", err);
    free(path);
    /* a database of another program with a `runs` table */
    path = path_in(dir, "other.db");
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "CREATE TABLE runs(a, b)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), QES_EDB);
    cr_assert_not_null(strstr(err, "not a qes results database"), "%s", err);
    free(path);
}

/* Batching: records are invisible to readers until their transaction
 * commits, and the transaction commits once it is 1 s old. */
Test(sqlite, batch_commits_after_one_second)
{
    char *path = path_in(qes_test_tmpdir(), "batch.db");
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    cr_assert_eq(r->ops->run(r, &run), 0);
    cr_assert_eq(r->ops->block(r, &run, &b), 0);
    sqlite3 *db = db_open_ro(path);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'blocks'"), 1);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM blocks"), 0, "batched, not yet committed");
    struct timespec nap = {1, 100000000};
    nanosleep(&nap, NULL);
    b.seq++;
    cr_assert_eq(r->ops->block(r, &run, &b), 0);
    cr_assert_eq(q_int(db, "SELECT count(*) FROM blocks"), 2, "committed after 1 s");
    cr_assert_eq(q_int(db, "SELECT status IS NULL FROM runs"), 1, "status only at close");
    cr_assert_eq(r->ops->close(r, &g_end0), 0, "%s", r->errmsg);
    cr_assert_eq(q_int(db, "SELECT status FROM runs"), 0);
    sqlite3_close(db);
    qes_recorder_destroy(r);
    free(path);
}

/* Throughput of block records with synchronous=FULL and 1 s / 10000-record
 * batches.  Reported, not gated (absolute time depends on the disk). */
Test(sqlite, insert_rate_200k)
{
    enum { N = 200000 };
    char *path = path_in(qes_test_tmpdir(), "rate.db");
    struct qes_recorder *r = NULL;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s", err);
    struct qes_run_rec run = test_run();
    struct qes_block_rec b = test_block();
    cr_assert_eq(r->ops->run(r, &run), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < N; i++) {
        b.seq = i;
        b.sample_start = 48 * i;
        b.x = 0.75 + 1e-9 * (double)i;
        int rc = r->ops->block(r, &run, &b);
        cr_assert_eq(rc, 0, "%s", r->errmsg);
    }
    cr_assert_eq(r->ops->close(r, &g_end0), 0, "%s", r->errmsg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    qes_recorder_destroy(r);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    cr_log_info("SQLite sink: %d block records in %.3f s = %.0f records/s (synchronous=FULL)", N, s,
                N / s);
    fprintf(stderr, "SQLite sink: %d block records in %.3f s = %.0f records/s\n", N, s, N / s);
    check_counts(path, 1, N, 0);
    free(path);
}

/* ---- dispatch ---------------------------------------------------------------- */

TestSuite(recorder, .timeout = 120);

Test(recorder, destroy_null_is_noop)
{
    qes_recorder_destroy(NULL);
}

Test(recorder, dispatch_by_suffix)
{
    static const struct {
        const char *name, *kind;
    } t[] = {
            {"a.jsonl", "jsonl"}, {"a.JSON", "jsonl"},    {"a.csv", "csv"},
            {"a.db", "sqlite"},   {"a.sqlite", "sqlite"}, {"a.Sqlite3", "sqlite"},
    };
    const char *dir = qes_test_tmpdir();
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char *path = path_in(dir, t[i].name);
        struct qes_recorder *r = NULL;
        char err[1024] = "";
        cr_assert_eq(qes_recorder_open(path, &r, err, sizeof err), 0, "%s: %s", path, err);
        cr_assert_str_eq(r->ops->name, t[i].kind, "%s", path);
        cr_assert_str_eq(r->target, path);
        cr_assert_eq(r->ops->close(r, &g_end0), 0, "%s", r->errmsg);
        qes_recorder_destroy(r);
        free(path);
    }
}

struct bad_target {
    char target[48];
    int code;
};

ParameterizedTestParameters(recorder, bad_targets)
{
    static struct bad_target bad[] = {
            {"", QES_EINVAL},         {"results.txt", QES_EINVAL},    {"results", QES_EINVAL},
            {"dir/.csv", QES_EINVAL}, {"results.db.bak", QES_EINVAL},
    };
    return cr_make_param_array(struct bad_target, bad, sizeof bad / sizeof bad[0]);
}

ParameterizedTest(struct bad_target *p, recorder, bad_targets)
{
    struct qes_recorder *r = (struct qes_recorder *)1;
    char err[1024] = "";
    cr_assert_eq(qes_recorder_open(p->target, &r, err, sizeof err), p->code, "'%s'", p->target);
    cr_assert_null(r);
    /* The message says what would have been accepted ... */
    cr_assert_not_null(strstr(err, ".jsonl"), "%s", err);
    cr_assert_not_null(strstr(err, ".csv"), "%s", err);
    cr_assert_not_null(strstr(err, ".db"), "%s", err);
    /* ... and never echoes a password. */
    cr_assert_null(strstr(err, "secret"), "%s", err);
}

Test(recorder, null_arguments)
{
    struct qes_recorder *r = NULL;
    char err[256];
    cr_assert_eq(qes_recorder_open(NULL, &r, err, sizeof err), QES_EINVAL);
    cr_assert_eq(qes_recorder_open("a.db", NULL, err, sizeof err), QES_EINVAL);
    cr_assert_eq(qes_recorder_open("x.txt", &r, NULL, 0), QES_EINVAL, "err may be NULL");
}
