/*
 * Helpers for the end-to-end tests, which drive the qes executable: a
 * per-test directory, simulating a capture from INI text, replaying it into
 * JSON Lines, and reading the records back.
 */
#ifndef QES_TESTS_ITEST_H
#define QES_TESTS_ITEST_H

#include <jansson.h>

/* A fresh directory for this test; itest_dir() is its path. */
void itest_dir_make(void);
const char *itest_dir(void);
/* Remove it (called at the end of a passing test; a failing one keeps it for
 * inspection). */
void itest_dir_clean(void);

/* Write ini_text to DIR/NAME.ini and run `qes simulate` into DIR/NAME; the
 * test fails when simulate does. */
void itest_simulate(const char *name, const char *ini_text);

/* `qes replay DIR/NAME.sigmf-meta -o - -q EXTRA`: asserts the exit status and
 * returns stdout (malloc'd). */
char *itest_replay(const char *name, const char *extra, int expect_status);

/* JSON Lines text -> array of objects (asserts every line parses). */
json_t *itest_parse_jsonl(const char *text);

/* A numeric field, NaN for null; asserts it is a number. */
double itest_num(const json_t *o, const char *key);

/* Angle wrapped to (-pi, pi]. */
double itest_wrap(double a);

/* Is record o of this type ("run", "block", "summary")? */
int itest_is(const json_t *o, const char *type);

#endif
