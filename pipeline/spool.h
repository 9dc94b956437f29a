/*
 * A bounded, durable, ordered spool of opaque rows on local disk (SQLite).
 *
 * The PostgreSQL sink keeps here what its server could not take yet, and
 * sends it again, in order, when the server returns.  A row is a small kind
 * tag (the sink's own) and a byte string.  Rows get increasing ids that are
 * never reused (AUTOINCREMENT), so reading by id is reading in the order the
 * rows were put, across processes and restarts.
 *
 * Durability: WAL journal, synchronous=FULL: a put that returned survives a
 * crash or a power cut.  Bound: the file never grows beyond max_mb
 * (max_page_count); a put that does not fit keeps what fits and says how
 * much that was.  Rows are removed only by qes_spool_remove(), which the
 * caller runs after the rows reached their destination, so a crash between
 * the two sends them twice, never zero times (the destination must be
 * idempotent).
 *
 * The spool carries a tag naming the destination (without secrets); a spool
 * holding rows for another destination is refused at open, so rows never go
 * to a server they were not meant for.
 *
 * Several processes may share one spool file (SQLite locking, busy timeout
 * 10 s); each row is removed, and counted by qes_spool_remove(), once.
 * Not thread-safe: one thread uses a spool object.
 */
#ifndef QES_PIPELINE_SPOOL_H
#define QES_PIPELINE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct qes_spool;

struct qes_spool_row {
    int kind;         /* the caller's tag, >= 0 */
    const char *data; /* bytes, not NUL-terminated */
    size_t len;
};

/*
 * Open path (create it when create is set and it does not exist).  max_mb:
 * bound of the file size in MB (1 MB = 2^20 bytes), > 0.  tag: the
 * destination, stored in a new or empty spool; a spool holding rows under
 * another tag is refused.  Returns 0 and *out; QES_ENOENT when the file does
 * not exist and create is 0 (no message); QES_EDB / QES_ENOSPC / QES_EINVAL
 * with a message naming the file in err.
 */
int qes_spool_open(const char *path, double max_mb, const char *tag, int create,
                   struct qes_spool **out, char *err, size_t errlen);

/* Append rows[0..n) in one transaction.  *n_kept: how many of the first rows
 * were kept (all unless the spool is full: then the first that fit).
 * Returns 0 (also when full: check *n_kept), or QES_EDB / QES_ENOSPC / QES_EIO
 * with a message (then *n_kept rows were kept). */
int qes_spool_put(struct qes_spool *s, const struct qes_spool_row *rows, size_t n, size_t *n_kept,
                  char *err, size_t errlen);

/* Call fn for each of the first max rows, oldest first; *last_id: id of the
 * last row visited (0 when none).  fn returns 0 to go on, non-zero to stop
 * (that code is returned).  Returns 0, fn's code, or QES_EDB with a message. */
typedef int (*qes_spool_row_fn)(void *arg, const struct qes_spool_row *row);
int qes_spool_read(struct qes_spool *s, size_t max, qes_spool_row_fn fn, void *arg,
                   int64_t *last_id, char *err, size_t errlen);

/* Remove the rows with id <= last_id; *n_removed counts those of kind
 * count_kind_below (kind < count_kind_below) that this call removed (rows
 * another process removed first are not counted).  Returns 0 or QES_EDB. */
int qes_spool_remove(struct qes_spool *s, int64_t last_id, int count_kind_below,
                     uint64_t *n_removed, char *err, size_t errlen);

/* Rows in the spool, and those of kind < kind_below.  Returns 0 or QES_EDB. */
int qes_spool_count(struct qes_spool *s, int kind_below, uint64_t *n_rows, uint64_t *n_below,
                    char *err, size_t errlen);

/* The file name. */
const char *qes_spool_path(const struct qes_spool *s);

/* No-op for NULL. */
void qes_spool_close(struct qes_spool *s);

#endif
