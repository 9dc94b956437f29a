#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *qes_strerror(int code)
{
    switch (code) {
    case QES_OK:
        return "success";
#define QES__ERR_MSG(name, c, msg) \
    case QES_##name:               \
        return msg;
        QES_ERRNO_MAP(QES__ERR_MSG)
#undef QES__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *qes_err_name(int code)
{
    switch (code) {
    case QES_OK:
        return "QES_OK";
#define QES__ERR_NAME(name, c, msg) \
    case QES_##name:                \
        return "QES_" #name;
        QES_ERRNO_MAP(QES__ERR_NAME)
#undef QES__ERR_NAME
    default:
        return "QES_UNKNOWN";
    }
}

void qes_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
