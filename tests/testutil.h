/*
 * Helpers shared by the tests: paths to the source tree, the build tree,
 * the qes executable and the shared reference data; temporary directories;
 * running the qes executable and capturing its exit status and stderr.
 */
#ifndef QES_TESTS_TESTUTIL_H
#define QES_TESTS_TESTUTIL_H

#include <stddef.h>

/* Directory of the shared reference data (../shared/refdata from the source
 * root), or NULL when it is absent: tests must then cr_skip with a message. */
const char *qes_test_refdata(void);

/* Make a fresh temporary directory (under $TMPDIR or /tmp); returns a static
 * buffer path valid until the next call.  Aborts the test on failure. */
const char *qes_test_tmpdir(void);

/* Read a whole file into a NUL-terminated malloc'd buffer; NULL on error. */
char *qes_test_slurp(const char *path, size_t *len);

/* Write text to a file; returns 0 on success. */
int qes_test_write(const char *path, const char *text);

/*
 * Run the qes executable with a shell-quoted argument string, e.g.
 * "replay x.sigmf-meta -o -".  stdout and stderr are captured into
 * malloc'd buffers (*out, *err; may be NULL if not wanted).  Returns the exit
 * status (0..255), or -1 if the process did not exit normally.
 */
int qes_test_run(const char *args, char **out, char **err);

#endif
