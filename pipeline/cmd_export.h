/*
 * `qes export` and `qes runs`: the records of a qes SQLite results database
 * as JSON Lines or CSV, and the list of its runs.
 *
 * Export rebuilds each run, block and summary record from its row and hands
 * it to the writers of the jsonl and csv sinks, so that the text is what
 * those sinks wrote when the run was recorded (see cmd_export.c for the
 * exceptions that the database cannot hold).
 */
#ifndef QES_PIPELINE_CMD_EXPORT_H
#define QES_PIPELINE_CMD_EXPORT_H

#include <stdio.h>

/* `qes export --help` and `qes runs --help`, also for `qes help export|runs`. */
extern const char *const qes_usage_export;
extern const char *const qes_usage_runs;

/*
 * Run `qes export DB --to csv|jsonl [--run ID] [-o FILE|-]`.
 *   argc, argv : the arguments after the word `export` (argv[argc] need not be NULL)
 *   out        : the records when there is no -o (or -o -), and `--help`
 *   err        : error messages, each naming the file, run or row concerned
 * Returns the exit status: 0 success; 1 usage error (unknown or malformed option,
 * missing DB or --to); 2 input or output error (missing file, not a qes results
 * database, unknown or ambiguous run, a row that cannot be a record, a failed write).
 * Keeps no global state; reads the database in one read transaction, so a recorder
 * writing concurrently is seen as of one instant.
 */
int qes_cmd_export(int argc, char **argv, FILE *out, FILE *err);

/*
 * Run `qes runs DB`: one line per run (id, command, t_start, config SHA-256
 * prefix, first and last block time, block and summary counts, exit status).
 * Arguments, streams and exit status as for qes_cmd_export.
 */
int qes_cmd_runs(int argc, char **argv, FILE *out, FILE *err);

#endif
