/*
 * UTC timestamps as int64 nanoseconds since 1970-01-01T00:00:00Z and their
 * ISO 8601 text form, as used by SigMF (`core:datetime`) and qes records.
 */
#ifndef QES_COMMON_UTCTIME_H
#define QES_COMMON_UTCTIME_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (fraction of 1..9 digits; more
 * digits are an error rather than silently rounded).  Only UTC ('Z') is
 * accepted: an offset such as "+01:00" or a missing zone is QES_EFORMAT.
 * Returns 0 and *ns_out, or QES_EFORMAT / QES_EINVAL.
 */
int qes_utc_parse(const char *text, int64_t *ns_out);

/*
 * Format ns as "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (always 9 fraction digits).
 * buf must hold at least QES_UTC_LEN bytes.  Returns buf.
 */
#define QES_UTC_LEN 48
char *qes_utc_format(int64_t ns, char *buf);

/* Host wall clock now, ns since the epoch (CLOCK_REALTIME). */
int64_t qes_utc_now_ns(void);

/* Monotonic clock now, ns from an arbitrary origin (CLOCK_MONOTONIC): for
 * intervals and latencies, never for timestamps. */
int64_t qes_mono_ns(void);

#endif
