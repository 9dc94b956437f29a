#include "common/utctime.h"
#include "common/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int qes_utc_parse(const char *t, int64_t *ns_out)
{
    if (!t || !ns_out)
        return QES_EINVAL;
    int Y, M, D, h, mi, s;
    if (strlen(t) < 20)
        return QES_EFORMAT;
    if (digits(t, 4, &Y) || t[4] != '-' || digits(t + 5, 2, &M) || t[7] != '-' ||
        digits(t + 8, 2, &D) || t[10] != 'T' || digits(t + 11, 2, &h) || t[13] != ':' ||
        digits(t + 14, 2, &mi) || t[16] != ':' || digits(t + 17, 2, &s))
        return QES_EFORMAT;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || mi > 59 || s > 60)
        return QES_EFORMAT;
    const char *p = t + 19;
    int64_t frac_ns = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        int64_t scale = 100000000;
        while (*p >= '0' && *p <= '9') {
            if (++nd > 9)
                return QES_EFORMAT;
            frac_ns += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
        if (nd == 0)
            return QES_EFORMAT;
    }
    if (p[0] != 'Z' || p[1] != '\0')
        return QES_EFORMAT;
    int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
    *ns_out = ((days * 86400 + h * 3600 + mi * 60 + s) * 1000000000LL) + frac_ns;
    return 0;
}

char *qes_utc_format(int64_t ns, char *buf)
{
    int64_t secs = ns / 1000000000LL, frac = ns % 1000000000LL;
    if (frac < 0) {
        frac += 1000000000LL;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, QES_UTC_LEN, "%04lld-%02u-%02uT%02d:%02d:%02d.%09lldZ", (long long)y, m, d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (long long)frac);
    return buf;
}

int64_t qes_utc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t qes_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
