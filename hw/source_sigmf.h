/*
 * Replay source: a SigMF capture delivered as frames.  Capture segments whose
 * core:global_index jumps ahead of the samples delivered so far become gaps
 * (lost_before).  Host time comes from core:datetime plus n / fs, never from
 * the host clock, so replay is deterministic.
 */
#ifndef QES_HW_SOURCE_SIGMF_H
#define QES_HW_SOURCE_SIGMF_H

#include "hw/sigmf.h"
#include "hw/source.h"

/* Takes ownership of reader (closed by qes_source_destroy, also on error). */
int qes_source_sigmf_create(struct qes_sigmf_reader *reader, size_t chunk_frames,
                            struct qes_source **out, char *err, size_t errlen);

#endif
