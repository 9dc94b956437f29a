/*
 * qes error codes, shared by every library of the project.
 *
 * One X-macro table (after libuv's UV_ERRNO_MAP) generates the enum, the
 * names and the messages, so a new code cannot be added to one and forgotten
 * in another.  Library calls return 0 on success and a negative QES_E* code on
 * failure; calls that move samples return a count or a negative code.
 */
#ifndef QES_COMMON_ERR_H
#define QES_COMMON_ERR_H

#define QES_ERRNO_MAP(X)                      \
    X(EINVAL, -1, "invalid argument")         \
    X(ENOMEM, -2, "out of memory")            \
    X(EIO, -3, "input/output error")          \
    X(EFORMAT, -4, "malformed input")         \
    X(EUNSUPPORTED, -5, "not supported")      \
    X(ERANGE, -6, "value out of range")       \
    X(ENOENT, -7, "no such file")             \
    X(EHASH, -8, "hash mismatch")             \
    X(ECONFIG, -9, "configuration error")     \
    X(EDB, -10, "database error")             \
    X(ENOSPC, -11, "no space left on device") \
    X(EDEVICE, -12, "device error")           \
    X(EINTR, -13, "interrupted")

enum qes_err {
    QES_OK = 0,
#define QES__ERR_ENUM(name, code, msg) QES_##name = code,
    QES_ERRNO_MAP(QES__ERR_ENUM)
#undef QES__ERR_ENUM
};

/* Human message for a code; "unknown error" for a code not in the table. */
const char *qes_strerror(int code);
/* Symbolic name ("QES_EINVAL"); "QES_UNKNOWN" for a code not in the table. */
const char *qes_err_name(int code);

#include <stddef.h>

/* snprintf into an error buffer of errlen bytes; no-op when err is NULL. */
void qes_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
