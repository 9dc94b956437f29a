#include "hw/source.h"

#include <stddef.h>

void qes_source_destroy(struct qes_source *s)
{
    if (s && s->ops && s->ops->destroy)
        s->ops->destroy(s);
}
