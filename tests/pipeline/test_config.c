/*
 * Configuration: the option table, INI parsing with file:line errors, --set,
 * validation, and the canonical form that runs record.
 */
#include "common/err.h"
#include "pipeline/config.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(config, .timeout = 60);

static const char *good_ini = "; a comment\n"
                              "[source]\n"
                              "kind = sim\n"
                              "sample_rate_hz = 48000\n"
                              "seed = 18446744073709551615\n"
                              "\n"
                              "[channel.dut]\n"
                              "index = 1\n"
                              "gain = 2.5e-7   ; inline comment\n"
                              "unit = V\n"
                              "\n"
                              "[measure.fund]\n"
                              "channel = dut\n"
                              "freq_hz = 50\n"
                              "harmonics = 1, 3,5\n"
                              "window = hann\n"
                              "include_flagged = yes\n"
                              "\n"
                              "[sim.dut]\n"
                              "harmonics = 1,2\n"
                              "rms = 1,0.5\n"
                              "phase_rad = 0,-0.25\n";

static struct qes_config *load(const char *text, int *rc, char *err, size_t errlen)
{
    struct qes_config *cfg = malloc(sizeof *cfg);
    cr_assert_not_null(cfg);
    qes_config_init(cfg);
    *rc = qes_config_load_string(cfg, text, "t.ini", err, errlen);
    return cfg;
}

Test(config, parses_every_type)
{
    char err[1024] = "";
    int rc;
    struct qes_config *cfg = load(good_ini, &rc, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(qes_config_validate(cfg, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(cfg->source.kind, "sim");
    cr_assert_eq(cfg->source.sample_rate_hz, 48000.0);
    cr_assert_eq(cfg->source.seed, UINT64_MAX);
    cr_assert_eq(cfg->n_channel, 1);
    cr_assert_eq(cfg->channel[0].index, 1);
    cr_assert_eq(cfg->channel[0].gain, 2.5e-7);
    cr_assert_eq(cfg->channel[0].u_gain_rel, 0.0, "default applied");
    cr_assert_eq(cfg->n_measure, 1);
    const struct qes_cfg_measure *m = &cfg->measure[0];
    cr_assert_eq(m->n_harmonics, 3);
    cr_assert_eq(m->harmonics[1], 3);
    cr_assert_eq(m->harmonics[2], 5);
    cr_assert_str_eq(m->method, "fft", "default method");
    cr_assert_eq(m->block_periods, 10, "default block_periods");
    cr_assert_eq(m->include_flagged, 1);
    cr_assert_eq(m->coverage, 0.95);
    cr_assert_eq(cfg->sim[0].n_rms, 2);
    cr_assert_eq(cfg->sim[0].phase_rad[1], -0.25);
    free(cfg);
}

struct bad_case {
    const char *name;
    const char *text;
    int at_load; /* 1: load fails, 0: validate fails */
    const char *expect[3];
};

static const char *const base_ok = "[channel.dut]\nindex = 0\n[measure.m]\nchannel = dut\n"
                                   "freq_hz = 50\n";

static struct bad_case bad_cases[] = {
        {"unknown section",
         "[sourc]\nkind = sim\n",
         1,
         {"t.ini:1", "unknown section [sourc]", NULL}},
        {"unknown key",
         "[source]\nkind = sim\nsample_rate = 5\n",
         1,
         {"t.ini:3", "sample_rate", "unknown key"}},
        {"wrong type",
         "[source]\nsample_rate_hz = fast\n",
         1,
         {"t.ini:2", "sample_rate_hz", "not a finite number"}},
        {"out of range",
         "[measure.m]\ncoverage = 1.5\n",
         1,
         {"t.ini:2", "coverage", "out of range"}},
        {"negative integer", "[channel.a]\nindex = -1\n", 1, {"t.ini:2", "index", "non-negative"}},
        {"bad enum", "[measure.m]\nmethod = wavelet\n", 1, {"t.ini:2", "method", "fft|dft"}},
        {"bad bool",
         "[measure.m]\ninclude_flagged = maybe\n",
         1,
         {"t.ini:2", "include_flagged", NULL}},
        {"bad list", "[measure.m]\nharmonics = 1,x\n", 1, {"t.ini:2", "harmonics", "element 2"}},
        {"zero harmonic", "[measure.m]\nharmonics = 0\n", 1, {"t.ini:2", "harmonics", NULL}},
        {"repeated key", "[source]\nseed = 1\nseed = 2\n", 1, {"t.ini:3", "seed", "twice"}},
        {"key outside section", "seed = 1\n", 1, {"t.ini:1", "outside any section", NULL}},
        {"nameless channel", "[channel]\nindex = 0\n", 1, {"t.ini:1", "needs a name", NULL}},
        {"named source", "[source.x]\nkind = sim\n", 1, {"t.ini:1", "takes no name", NULL}},
        {"syntax",
         "[source]\nthis line has no equals sign\n",
         1,
         {"t.ini:2", "syntax error", NULL}},
        {"long line",
         "[source]\npath = "
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
         1,
         {"t.ini:2", "line longer than", NULL}},
        {"missing freq",
         "[channel.dut]\nindex = 0\n[measure.m]\nchannel = dut\n",
         0,
         {"t.ini:3", "[measure.m] freq_hz", "required key missing"}},
        {"missing index",
         "[channel.dut]\ngain = 1\n",
         0,
         {"[channel.dut] index", "required", NULL}},
        {"unknown channel",
         "[channel.dut]\nindex = 0\n[measure.m]\nchannel = dvm\nfreq_hz = 50\n",
         0,
         {"[measure.m] channel", "no section [channel.dvm]", NULL}},
        {"duplicate index",
         "[channel.a]\nindex = 0\n[channel.b]\nindex = 0\n",
         0,
         {"[channel.b] index", "already used", NULL}},
        {"zero gain", "[channel.a]\nindex = 0\ngain = 0\n", 0, {"[channel.a] gain", NULL, NULL}},
        {"hann with one period",
         "[channel.dut]\nindex = 0\n[measure.m]\nchannel = dut\nfreq_hz = 50\nwindow = hann\n"
         "block_periods = 1\n",
         0,
         {"[measure.m] block_periods", "hann", NULL}},
        {"duplicate harmonic",
         "[channel.dut]\nindex = 0\n[measure.m]\nchannel = dut\nfreq_hz = 50\nharmonics = 1,2,1\n",
         0,
         {"[measure.m] harmonics", "twice", NULL}},
        {"sim list lengths",
         "[channel.dut]\nindex = 0\n[sim.dut]\nharmonics = 1,2\nrms = 1\n",
         0,
         {"[sim.dut] rms", "1 values for 2 harmonics", NULL}},
        {"sim without channel", "[sim.dvm]\nfreq_hz = 50\n", 0, {"[sim.dvm]", "no section", NULL}},
};

#define N_BAD (sizeof bad_cases / sizeof bad_cases[0])

/* Parameters are indices: Criterion may run each test in a freshly executed
 * process, where pointers copied from this one would not be valid. */
ParameterizedTestParameters(config, bad)
{
    static size_t idx[N_BAD];
    for (size_t i = 0; i < N_BAD; i++)
        idx[i] = i;
    return cr_make_param_array(size_t, idx, N_BAD);
}

ParameterizedTest(size_t *ip, config, bad)
{
    const struct bad_case *c = &bad_cases[*ip];
    char err[2048] = "";
    int rc;
    struct qes_config *cfg = load(c->text, &rc, err, sizeof err);
    if (c->at_load) {
        cr_assert_eq(rc, QES_ECONFIG, "%s: load gave %d", c->name, rc);
    } else {
        cr_assert_eq(rc, 0, "%s: load failed early: %s", c->name, err);
        rc = qes_config_validate(cfg, err, sizeof err);
        cr_assert_eq(rc, QES_ECONFIG, "%s: validate gave %d", c->name, rc);
    }
    for (int i = 0; i < 3 && c->expect[i]; i++)
        cr_assert_not_null(strstr(err, c->expect[i]), "%s: message \"%s\" lacks \"%s\"", c->name,
                           err, c->expect[i]);
    free(cfg);
}

Test(config, set_overrides_and_creates)
{
    char err[1024] = "";
    int rc;
    struct qes_config *cfg = load(base_ok, &rc, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(qes_config_set(cfg, "measure.m.freq_hz=60", err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg->measure[0].freq_hz, 60.0);
    cr_assert_eq(qes_config_set(cfg, "measure.m2.channel=dut", err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg->n_measure, 2);
    cr_assert_eq(qes_config_set(cfg, "source.seed=5", err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg->source.seed, 5);
    /* errors name the assignment and the key */
    cr_assert_eq(qes_config_set(cfg, "measure.m.freq_hz", err, sizeof err), QES_ECONFIG);
    cr_assert_not_null(strstr(err, "SECTION.KEY=VALUE"), "%s", err);
    cr_assert_eq(qes_config_set(cfg, "measure.m.freq=5", err, sizeof err), QES_ECONFIG);
    cr_assert_not_null(strstr(err, "[measure.m] freq"), "%s", err);
    cr_assert_eq(qes_config_set(cfg, "nokey=5", err, sizeof err), QES_ECONFIG);
    free(cfg);
}

Test(config, canonical_round_trips)
{
    char err[1024] = "";
    int rc;
    struct qes_config *cfg = load(good_ini, &rc, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    char *a = qes_config_canonical(cfg);
    cr_assert_not_null(a);
    struct qes_config *cfg2 = load(a, &rc, err, sizeof err);
    cr_assert_eq(rc, 0, "canonical text does not parse: %s\n%s", err, a);
    char *b = qes_config_canonical(cfg2);
    cr_assert_str_eq(a, b, "canonical form is not a fixed point");
    /* awkward doubles survive exactly (%.17g) */
    cr_assert_eq(cfg2->channel[0].gain, 2.5e-7);
    free(a);
    free(b);
    free(cfg);
    free(cfg2);
}

Test(config, file_errors_name_the_file)
{
    struct qes_config cfg;
    qes_config_init(&cfg);
    char err[1024] = "";
    int rc = qes_config_load_file(&cfg, "/nonexistent/qes.ini", err, sizeof err);
    cr_assert_eq(rc, QES_ENOENT);
    cr_assert_not_null(strstr(err, "/nonexistent/qes.ini"), "%s", err);
}

/* configs/reference.ini is generated from the option table: it must be what
 * `qes help config --ini` prints now, and every default in it must parse. */
Test(config, reference_ini_matches_table)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/configs/reference.ini", QES_SOURCE_DIR);
    char *committed = qes_test_slurp(path, NULL);
    cr_assert_not_null(committed, "missing %s", path);
    char *out = NULL;
    int st = qes_test_run("help config --ini", &out, NULL);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, committed,
                     "configs/reference.ini is stale: regenerate with "
                     "`qes help config --ini > configs/reference.ini`");
    struct qes_config cfg;
    qes_config_init(&cfg);
    char err[1024] = "";
    cr_assert_eq(qes_config_load_file(&cfg, path, err, sizeof err), 0, "%s", err);
    free(committed);
    free(out);
}

/* Every shipped example configuration loads and validates. */
Test(config, shipped_configs_validate)
{
    static const char *const names[] = {"demo.ini",       "ac-josephson.ini", "zener-reversal.ini",
                                        "pjvs-steps.ini", "lockin-demod.ini", "ccc-bridge.ini",
                                        "live-iio.ini"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[4096], err[1024] = "";
        snprintf(path, sizeof path, "%s/configs/%s", QES_SOURCE_DIR, names[i]);
        struct qes_config cfg;
        qes_config_init(&cfg);
        cr_assert_eq(qes_config_load_file(&cfg, path, err, sizeof err), 0, "%s", err);
        cr_assert_eq(qes_config_validate(&cfg, err, sizeof err), 0, "%s", err);
    }
}
