/*
 * `qes adev`: Allan-family deviations (ADEV, OADEV, MDEV, TDEV, HDEV,
 * OHDEV, TOTDEV) of a series, with the noise type and a chi-squared
 * confidence interval at each tau, from a text file or from the block
 * results of one measurement in a qes results database.  The statistics are
 * dsp/allan.h; this file is the command line around them.
 */
#ifndef QES_PIPELINE_CMD_ADEV_H
#define QES_PIPELINE_CMD_ADEV_H

#include <stdio.h>

/* `qes adev --help`, also for `qes help adev`. */
extern const char *const qes_usage_adev;

/*
 * Run `qes adev`.
 *   argc, argv : the arguments after the word `adev` (argv[argc] need not be NULL)
 *   out        : the table, `--help`, and the JSON for `--json -`
 *   err        : error messages and warnings, each naming the file, line, option or
 *                database object concerned
 * Returns the exit status: 0 success, 1 usage error (unknown or malformed option, missing
 * INPUT or --measure), 2 input error (missing or unreadable file, a line that is not a
 * number, an empty or too short series, an unknown measurement or run, mixed runs,
 * a JSON file that cannot be written).
 * Not thread-safe only in the sense that it writes to out and err; it keeps no global state.
 */
int qes_cmd_adev(int argc, char **argv, FILE *out, FILE *err);

#endif
