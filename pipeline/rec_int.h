/* Internal helpers shared by the recorders. */
#ifndef QES_PIPELINE_REC_INT_H
#define QES_PIPELINE_REC_INT_H

/* fsync the directory holding path, so that a new file's name survives a
 * crash too.  Returns 0, or -1 with errno (file systems that cannot sync a
 * directory count as success). */
int qes__fsync_dir_of(const char *path);

struct qes_recorder;
struct qes_run_rec;

/* Records come in order: a run record first, then only records of that run,
 * none after close.  Returns 0, or QES_EINVAL with r->errmsg naming the
 * sink and what was wrong ("block", "summary" in what). */
int qes__rec_check_order(struct qes_recorder *r, int closed, int have_run, const char *run_id,
                         const struct qes_run_rec *run, const char *what);

/* A run record is accepted once, with a run id, before close.  Returns 0,
 * or QES_EINVAL with r->errmsg naming the sink and what was wrong. */
int qes__rec_check_first_run(struct qes_recorder *r, int closed, int have_run,
                             const struct qes_run_rec *run);

struct qes_summary_rec;

/* A summary record every sink can write: a measure, a known kind, a budget
 * that fits.  Returns 0, or QES_EINVAL with r->errmsg set. */
int qes__rec_summary_valid(struct qes_recorder *r, const struct qes_summary_rec *s);

/* The budget of a summary of either kind as a JSON array (malloc'd), the
 * typeA term with its rule; NULL on allocation failure. */
char *qes__summary_budget_json(const struct qes_summary_rec *s);

/* Close a CSV sink (qes_rec_csv_open) without the run end comment lines:
 * for qes export of a run recorded by a qes that did not keep how runs
 * ended, so that the export is the file that qes wrote. */
int qes__csv_close_without_end(struct qes_recorder *r);

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not valid. */
#include <stddef.h>
size_t qes__utf8_len(const unsigned char *p, const unsigned char *end);

#endif
