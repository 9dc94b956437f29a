/*
 * bench_iio [--quick]: ns per sample of the IIO sample conversion, libiio's
 * iio_channel_convert (one call per sample, then the cast to double, as
 * hw/source_iio.c did) against hw/iio_convert.h, on 4096-sample buffers
 * laid out as the emulated ADC's (tests/fixtures/iio_fixture.h) and as a
 * few other scan types.  The channels are real libiio channels from an XML
 * context (no device needed).  Each row also gives the numerical error of
 * the fast path against libiio: the count of values that differ (must be
 * 0: the two are bit-identical).  Figures are the median and the minimum
 * over repetitions; the machine is shared, so they never gate anything.
 */
#include "common/utctime.h"
#include "hw/iio_convert.h"

#include <iio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_SAMPLES 4096
#define MAX_REPS  2001

static const char xml_head[] =
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
        "<!DOCTYPE context ["
        "<!ELEMENT context (device | context-attribute)*>"
        "<!ELEMENT context-attribute EMPTY>"
        "<!ELEMENT device (channel | attribute | debug-attribute | buffer-attribute)*>"
        "<!ELEMENT channel (scan-element?, attribute*)>"
        "<!ELEMENT attribute EMPTY>"
        "<!ELEMENT scan-element EMPTY>"
        "<!ELEMENT debug-attribute EMPTY>"
        "<!ELEMENT buffer-attribute EMPTY>"
        "<!ATTLIST context name CDATA #REQUIRED description CDATA #IMPLIED>"
        "<!ATTLIST context-attribute name CDATA #REQUIRED value CDATA #REQUIRED>"
        "<!ATTLIST device id CDATA #REQUIRED name CDATA #IMPLIED label CDATA #IMPLIED>"
        "<!ATTLIST channel id CDATA #REQUIRED type (input|output) #REQUIRED name CDATA #IMPLIED>"
        "<!ATTLIST scan-element index CDATA #REQUIRED format CDATA #REQUIRED scale CDATA #IMPLIED>"
        "<!ATTLIST attribute name CDATA #REQUIRED filename CDATA #IMPLIED value CDATA #IMPLIED>"
        "<!ATTLIST debug-attribute name CDATA #REQUIRED value CDATA #IMPLIED>"
        "<!ATTLIST buffer-attribute name CDATA #REQUIRED value CDATA #IMPLIED>"
        "]><context name=\"xml\"><device id=\"iio:device0\" name=\"bench\">";

/* The rows: a scan type, the scan size in bytes (the element sits at
 * offset 0 of each scan) and whether it is read as a timestamp. */
static const struct row {
    const char *type;
    unsigned step;
    int ts;
    const char *what;
} rows[] = {
        {"le:s24/32>>0", 24, 0, "fixture default: 4 x s24/32 + ts"},
        {"le:s64/64>>0", 24, 1, "its in_timestamp (int64)"},
        {"le:s16/16>>0", 16, 0, "1 x s16 + ts"},
        {"be:s12/16>>4", 4, 0, "2 x be:s12/16>>4"},
        {"be:s24/32>>8", 4, 0, "1 x be:s24/32>>8"},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* libiio per sample, as hw/source_iio.c's convert_channel did. */
static void ref_f64(const struct iio_channel *ch, const uint8_t *p, ptrdiff_t step, size_t n,
                    double *out, size_t stride)
{
    const struct iio_data_format *f = iio_channel_get_data_format(ch);
    int sgn = f->is_signed;
    switch (f->length) {
    case 16:
        for (size_t k = 0; k < n; k++, p += step) {
            uint16_t v;
            iio_channel_convert(ch, &v, p);
            out[k * stride] = sgn ? (double)(int16_t)v : (double)v;
        }
        break;
    case 32:
        for (size_t k = 0; k < n; k++, p += step) {
            uint32_t v;
            iio_channel_convert(ch, &v, p);
            out[k * stride] = sgn ? (double)(int32_t)v : (double)v;
        }
        break;
    default:
        for (size_t k = 0; k < n; k++, p += step) {
            uint64_t v;
            iio_channel_convert(ch, &v, p);
            out[k * stride] = sgn ? (double)(int64_t)v : (double)v;
        }
        break;
    }
}

static void ref_i64(const struct iio_channel *ch, const uint8_t *p, ptrdiff_t step, size_t n,
                    int64_t *out)
{
    for (size_t k = 0; k < n; k++, p += step)
        iio_channel_convert(ch, &out[k], p);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    unsigned reps = quick ? 101 : MAX_REPS;

    char xml[8192];
    size_t len = (size_t)snprintf(xml, sizeof xml, "%s", xml_head);
    for (unsigned r = 0; r < N_ROWS; r++)
        len += (size_t)snprintf(xml + len, sizeof xml - len,
                                "<channel id=\"voltage%u\" type=\"input\"><scan-element "
                                "index=\"%u\" format=\"%s\" /></channel>",
                                r, r, rows[r].type);
    len += (size_t)snprintf(xml + len, sizeof xml - len, "</device></context>");
    struct iio_context *ctx = iio_create_xml_context_mem(xml, len);
    if (!ctx) {
        fprintf(stderr, "bench_iio: cannot create the XML context\n");
        return 1;
    }
    struct iio_device *dev = iio_context_get_device(ctx, 0);

    uint8_t *buf = malloc(N_SAMPLES * 24 + 8);
    double *out_ref = malloc(N_SAMPLES * 4 * sizeof(double));
    double *out_fast = malloc(N_SAMPLES * 4 * sizeof(double));
    int64_t *i_ref = malloc(N_SAMPLES * sizeof(int64_t));
    int64_t *i_fast = malloc(N_SAMPLES * sizeof(int64_t));
    double *t_ref = malloc(reps * sizeof(double)), *t_fast = malloc(reps * sizeof(double));
    if (!buf || !out_ref || !out_fast || !i_ref || !i_fast || !t_ref || !t_fast) {
        fprintf(stderr, "bench_iio: out of memory\n");
        return 1;
    }
    uint64_t seed = 12345;
    for (size_t i = 0; i < N_SAMPLES * 24 + 8; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        buf[i] = (uint8_t)(seed >> 56);
    }

    printf("IIO sample conversion, %d samples per buffer, %u repetitions (ns/sample, median / "
           "min)\n",
           N_SAMPLES, reps);
    printf("%-14s %-34s %17s %17s %8s %6s\n", "scan type", "layout", "libiio", "qes_iio_conv",
           "speed-up", "diffs");
    for (unsigned r = 0; r < N_ROWS; r++) {
        const struct iio_channel *ch = iio_device_get_channel(dev, r);
        const struct iio_data_format *df = iio_channel_get_data_format(ch);
        struct qes_iio_format f = {.length = df->length,
                                   .bits = df->bits,
                                   .shift = df->shift,
                                   .is_signed = df->is_signed,
                                   .is_fully_defined = df->is_fully_defined,
                                   .is_be = df->is_be,
                                   .repeat = df->repeat};
        struct qes_iio_conv cv;
        if (qes_iio_conv_init(&cv, &f)) {
            fprintf(stderr, "bench_iio: %s not supported\n", rows[r].type);
            return 1;
        }
        ptrdiff_t step = rows[r].step;
        size_t stride = rows[r].step == 24 ? 4 : 1; /* 4 channels interleaved in the output */
        for (unsigned i = 0; i < reps; i++) {
            double t0 = (double)qes_mono_ns();
            if (rows[r].ts)
                ref_i64(ch, buf, step, N_SAMPLES, i_ref);
            else
                ref_f64(ch, buf, step, N_SAMPLES, out_ref, stride);
            double t1 = (double)qes_mono_ns();
            if (rows[r].ts)
                qes_iio_conv_i64(&cv, buf, step, N_SAMPLES, i_fast);
            else
                qes_iio_conv_f64(&cv, buf, step, N_SAMPLES, out_fast, stride);
            double t2 = (double)qes_mono_ns();
            t_ref[i] = (t1 - t0) / N_SAMPLES;
            t_fast[i] = (t2 - t1) / N_SAMPLES;
        }
        unsigned diffs = 0;
        for (size_t k = 0; k < N_SAMPLES; k++)
            diffs += rows[r].ts ? i_ref[k] != i_fast[k]
                                : memcmp(&out_ref[k * stride], &out_fast[k * stride],
                                         sizeof(double)) != 0;
        qsort(t_ref, reps, sizeof *t_ref, cmp_d);
        qsort(t_fast, reps, sizeof *t_fast, cmp_d);
        double mr = t_ref[reps / 2], mf = t_fast[reps / 2];
        printf("%-14s %-34s %8.2f / %6.2f %8.2f / %6.2f %7.1fx %6u\n", rows[r].type, rows[r].what,
               mr, t_ref[0], mf, t_fast[0], mr / mf, diffs);
    }
    free(buf);
    free(out_ref);
    free(out_fast);
    free(i_ref);
    free(i_fast);
    free(t_ref);
    free(t_fast);
    iio_context_destroy(ctx);
    return 0;
}
