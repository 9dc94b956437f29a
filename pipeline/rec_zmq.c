/* ZeroMQ live stream: being written (issue 6). */
#include "common/err.h"
#include "pipeline/record.h"

#include <stdio.h>

int qes_rec_zmq_open(const char *target, const struct qes_recorder_opts *opts,
                     struct qes_recorder **out, char *err, size_t errlen)
{
    (void)target;
    (void)opts;
    *out = NULL;
    qes_errf(err, errlen, "ZeroMQ streams are not available in this build");
    return QES_EUNSUPPORTED;
}
