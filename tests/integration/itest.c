#include "tests/integration/itest.h"
#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

static char g_dir[4096];

void itest_dir_make(void)
{
    snprintf(g_dir, sizeof g_dir, "%s", qes_test_tmpdir());
}

const char *itest_dir(void)
{
    return g_dir;
}

void itest_dir_clean(void)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g_dir);
}

void itest_simulate(const char *name, const char *ini_text)
{
    char ini[4200], args[20000];
    snprintf(ini, sizeof ini, "%s/%s.ini", g_dir, name);
    cr_assert_eq(qes_test_write(ini, ini_text), 0);
    snprintf(args, sizeof args, "simulate '%s' --out '%s/%s'", ini, g_dir, name);
    char *err = NULL;
    int st = qes_test_run(args, NULL, &err);
    cr_assert_eq(st, 0, "simulate failed (%d): %s", st, err);
    free(err);
}

char *itest_replay(const char *name, const char *extra, int expect_status)
{
    char args[20000];
    snprintf(args, sizeof args, "replay '%s/%s.sigmf-meta' -o - -q %s", g_dir, name,
             extra ? extra : "");
    char *out = NULL, *err = NULL;
    int st = qes_test_run(args, &out, &err);
    cr_assert_eq(st, expect_status, "replay exit %d, expected %d: %s", st, expect_status, err);
    free(err);
    return out;
}

json_t *itest_parse_jsonl(const char *text)
{
    json_t *arr = json_array();
    const char *p = text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        json_error_t e;
        json_t *o = json_loadb(p, len, 0, &e);
        cr_assert_not_null(o, "bad JSON line: %.*s (%s)", (int)len, p, e.text);
        json_array_append_new(arr, o);
        p = nl ? nl + 1 : NULL;
    }
    return arr;
}

double itest_num(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_null(v))
        return NAN;
    cr_assert(json_is_number(v), "field %s is not a number", key);
    return json_number_value(v);
}

double itest_wrap(double a)
{
    while (a > PI)
        a -= 2 * PI;
    while (a <= -PI)
        a += 2 * PI;
    return a;
}

int itest_is(const json_t *o, const char *type)
{
    const char *t = json_string_value(json_object_get(o, "type"));
    return t && !strcmp(t, type);
}
