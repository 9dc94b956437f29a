/*
 * The fast IIO sample conversion (hw/iio_convert.h) against its reference
 * twin, libiio 0.24's own iio_channel_convert followed by the cast that
 * hw/source_iio.c applied to its result.  The bound is bit-exact equality
 * of every double and every int64_t.
 *
 * Real libiio channels with any format, without hardware: libiio's XML
 * backend (iio_create_xml_context_mem) builds a context from a device
 * description, and parses each channel's `format` with the same code that
 * reads the description iiod sends to the network backend, so the channels
 * carry exactly the struct iio_data_format (is_fully_defined included) a
 * live device of that scan type gives.  Every supported format is tested:
 * storage 8/16/32/64, realbits 1..storage, every shift 0..storage-1,
 * signed and unsigned, little- and big-endian, lower-case (masked or
 * sign-extended) and upper-case (fully defined) types; each on edge values
 * (zero, all ones, the sign bit alone and its complement, the field full
 * or empty with the rest of the storage the opposite, the field's lowest
 * bit) and on random bytes (fixed seed), at an odd address and an odd step.
 * One more test reads real buffers from the emulated ADC
 * (tests/fixtures/iio_fixture.h) through iiod and compares the two on them,
 * timestamps included.
 */
#include "common/err.h"
#include "hw/iio_convert.h"
#include "tests/fixtures/iio_fixture.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <iio.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct qes_iiofx g_fx;
static struct iio_context *g_ctx;
static struct iio_buffer *g_buf;

static void teardown(void)
{
    qes_iiofx_release(&g_fx, &g_ctx, &g_buf);
}

TestSuite(iio_convert, .fini = teardown, .timeout = 300);

/* ---- the reference twin ------------------------------------------------- */

static struct qes_iio_format fmt_of(const struct iio_channel *ch)
{
    const struct iio_data_format *f = iio_channel_get_data_format(ch);
    return (struct qes_iio_format){.length = f->length,
                                   .bits = f->bits,
                                   .shift = f->shift,
                                   .is_signed = f->is_signed,
                                   .is_fully_defined = f->is_fully_defined,
                                   .is_be = f->is_be,
                                   .repeat = f->repeat};
}

/* The storage-width result of iio_channel_convert, read with the format's
 * sign, as an int64_t (a u64 result keeps its bits) and as a double (as
 * hw/source_iio.c converted it before the fast path). */
static void ref_convert(const struct iio_channel *ch, const uint8_t *p, int64_t *i, double *d)
{
    const struct iio_data_format *f = iio_channel_get_data_format(ch);
    int sgn = f->is_signed;
    switch (f->length) {
    case 8: {
        uint8_t v;
        int8_t s;
        iio_channel_convert(ch, &v, p);
        memcpy(&s, &v, 1);
        *i = sgn ? (int64_t)s : (int64_t)v;
        *d = sgn ? (double)s : (double)v;
        break;
    }
    case 16: {
        uint16_t v;
        int16_t s;
        iio_channel_convert(ch, &v, p);
        memcpy(&s, &v, 2);
        *i = sgn ? (int64_t)s : (int64_t)v;
        *d = sgn ? (double)s : (double)v;
        break;
    }
    case 32: {
        uint32_t v;
        int32_t s;
        iio_channel_convert(ch, &v, p);
        memcpy(&s, &v, 4);
        *i = sgn ? (int64_t)s : (int64_t)v;
        *d = sgn ? (double)s : (double)v;
        break;
    }
    default: {
        uint64_t v;
        int64_t s;
        iio_channel_convert(ch, &v, p);
        memcpy(&s, &v, 8);
        *i = s;
        *d = sgn ? (double)s : (double)v;
        break;
    }
    }
}

/* ---- XML contexts -------------------------------------------------------- */

/* libiio 0.24 validates the description against this DTD (its own). */
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
        "]><context name=\"xml\"><device id=\"iio:device0\" name=\"fmt\">";
static const char xml_tail[] = "</device></context>";

/* A context whose device has one input channel per scan type in types[];
 * channel i is types[i]. */
static struct iio_context *xml_context(const char *const *types, unsigned n)
{
    size_t cap = sizeof xml_head + sizeof xml_tail + (size_t)n * 128, len = 0;
    char *x = malloc(cap);
    cr_assert_not_null(x);
    len += (size_t)snprintf(x + len, cap - len, "%s", xml_head);
    for (unsigned i = 0; i < n; i++)
        len += (size_t)snprintf(x + len, cap - len,
                                "<channel id=\"voltage%u\" type=\"input\">"
                                "<scan-element index=\"%u\" format=\"%s\" /></channel>",
                                i, i, types[i]);
    len += (size_t)snprintf(x + len, cap - len, "%s", xml_tail);
    cr_assert_lt(len, cap);
    errno = 0;
    struct iio_context *ctx = iio_create_xml_context_mem(x, len);
    int e = errno;
    free(x);
    cr_assert_not_null(ctx, "iio_create_xml_context_mem: %s", strerror(e));
    struct iio_device *dev = iio_context_get_device(ctx, 0);
    cr_assert_not_null(dev);
    cr_assert_eq(iio_device_get_channels_count(dev), n);
    return ctx;
}

/* ---- data ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t ones(unsigned n)
{
    return n >= 64 ? ~0ull : (1ull << n) - 1;
}

/* Store the low len bits of v at p in the given byte order. */
static void store(uint8_t *p, uint64_t v, unsigned len, int be)
{
    unsigned nb = len / 8;
    for (unsigned i = 0; i < nb; i++)
        p[be ? nb - 1 - i : i] = (uint8_t)(v >> (8 * i));
}

#define N_EDGE   10
#define N_RANDOM 64
#define N_SAMP   (N_EDGE + N_RANDOM)
#define PAD      5 /* step = storage bytes + PAD: odd, misaligned elements */
#define OFFSET   3

/* Fill N_SAMP samples of a format into buf (at OFFSET, step returned):
 * edge values of the field [shift, shift + bits) first, then random bytes. */
static ptrdiff_t fill(uint8_t *buf, size_t cap, unsigned len, unsigned bits, unsigned shift, int be,
                      uint64_t *seed)
{
    ptrdiff_t step = (ptrdiff_t)(len / 8 + PAD);
    cr_assert_leq((size_t)OFFSET + N_SAMP * (size_t)step, cap);
    unsigned top = shift + bits - 1 < len ? shift + bits - 1 : len - 1; /* field's top bit */
    uint64_t all = ones(len), field = (ones(bits) << shift) & all, sbit = 1ull << top;
    uint64_t edge[N_EDGE] = {0,
                             all,
                             sbit,
                             all & ~sbit,
                             field,
                             all & ~field,
                             (1ull << shift) & all,
                             sbit | (all & ~field),
                             (field & ~sbit) | (all & ~field),
                             0x5555555555555555ull & all};
    memset(buf, 0xA5, cap);
    for (unsigned k = 0; k < N_SAMP; k++) {
        uint8_t *p = buf + OFFSET + (ptrdiff_t)k * step;
        if (k < N_EDGE)
            store(p, edge[k], len, be);
        else
            store(p, splitmix64(seed), len, 0);
    }
    return step;
}

/* ---- (1) every supported format ----------------------------------------- */

struct tally {
    unsigned long long formats, values, bad;
    char first_bad[512];
};

/* Compare fast and reference on N_SAMP samples of the channel. */
static void compare_channel(const struct iio_channel *ch, const char *type, unsigned len,
                            unsigned bits, unsigned shift, int be, uint64_t *seed, struct tally *t)
{
    uint8_t buf[OFFSET + N_SAMP * (64 / 8 + PAD)];
    ptrdiff_t step = fill(buf, sizeof buf, len, bits, shift, be, seed);
    const uint8_t *first = buf + OFFSET;

    struct qes_iio_format f = fmt_of(ch);
    struct qes_iio_conv cv;
    int rc = qes_iio_conv_init(&cv, &f);
    if (rc != 0) {
        t->bad++;
        if (!t->first_bad[0])
            snprintf(t->first_bad, sizeof t->first_bad, "%s: conv_init refused it (%s)", type,
                     qes_err_name(rc));
        return;
    }
    /* stride 2 with a sentinel between the outputs: the stride is honoured
     * and nothing else is written */
    double out[2 * N_SAMP + 1];
    int64_t io[N_SAMP + 1];
    const double sentinel = -12345.25;
    for (unsigned k = 0; k < 2 * N_SAMP + 1; k++)
        out[k] = sentinel;
    io[N_SAMP] = INT64_MIN + 7;
    qes_iio_conv_f64(&cv, first, step, N_SAMP, out, 2);
    qes_iio_conv_i64(&cv, first, step, N_SAMP, io);
    t->formats++;
    for (unsigned k = 0; k < N_SAMP; k++) {
        int64_t ri;
        double rd;
        ref_convert(ch, first + (ptrdiff_t)k * step, &ri, &rd);
        t->values++;
        int ok = memcmp(&out[2 * k], &rd, sizeof rd) == 0 && io[k] == ri &&
                 memcmp(&out[2 * k + 1], &sentinel, sizeof sentinel) == 0;
        if (!ok) {
            t->bad++;
            if (!t->first_bad[0]) {
                uint64_t raw = 0;
                memcpy(&raw, first + (ptrdiff_t)k * step, len / 8);
                snprintf(t->first_bad, sizeof t->first_bad,
                         "%s sample %u (bytes 0x%0*" PRIx64 " in memory order, LE-read): fast "
                         "%.17g / %" PRId64 ", libiio %.17g / %" PRId64 ", gap %.17g",
                         type, k, (int)(len / 4), raw, out[2 * k], io[k], rd, ri, out[2 * k + 1]);
            }
        }
    }
    if (out[2 * N_SAMP] != sentinel || io[N_SAMP] != INT64_MIN + 7) {
        t->bad++;
        if (!t->first_bad[0])
            snprintf(t->first_bad, sizeof t->first_bad, "%s: wrote past n samples", type);
    }
}

/* The variants of (length, bits) in one context: shift 0..len-1 x
 * {s, u, S, U} x {le, be}. */
#define SIGNS "suSU"

Test(iio_convert, every_format_bit_exact)
{
    struct tally t = {0};
    uint64_t seed = 0x51EDC0DEull;
    static const unsigned lengths[] = {8, 16, 32, 64};
    for (unsigned li = 0; li < 4; li++) {
        unsigned len = lengths[li];
        for (unsigned bits = 1; bits <= len; bits++) {
            unsigned n = len * 4 * 2;
            char(*names)[32] = malloc(n * sizeof *names);
            const char **types = malloc(n * sizeof *types);
            cr_assert(names && types);
            unsigned i = 0;
            for (unsigned shift = 0; shift < len; shift++)
                for (unsigned s = 0; s < 4; s++)
                    for (int be = 0; be < 2; be++, i++) {
                        snprintf(names[i], sizeof names[i], "%ce:%c%u/%u>>%u", be ? 'b' : 'l',
                                 SIGNS[s], bits, len, shift);
                        types[i] = names[i];
                    }
            struct iio_context *ctx = xml_context(types, n);
            struct iio_device *dev = iio_context_get_device(ctx, 0);
            i = 0;
            for (unsigned shift = 0; shift < len; shift++)
                for (unsigned s = 0; s < 4; s++)
                    for (int be = 0; be < 2; be++, i++) {
                        char id[32];
                        snprintf(id, sizeof id, "voltage%u", i);
                        struct iio_channel *ch = iio_device_find_channel(dev, id, false);
                        cr_assert_not_null(ch, "%s", id);
                        /* libiio parsed the type we meant (a wrong grid would
                         * test something else silently) */
                        const struct iio_data_format *f = iio_channel_get_data_format(ch);
                        int sgn = SIGNS[s] == 's' || SIGNS[s] == 'S';
                        int upper = SIGNS[s] == 'S' || SIGNS[s] == 'U';
                        cr_assert(f->length == len && f->bits == bits && f->shift == shift &&
                                          f->is_signed == sgn && f->is_be == be &&
                                          f->is_fully_defined == (upper || bits == len) &&
                                          f->repeat == 1,
                                  "%s parsed as len %u bits %u shift %u s %d be %d fd %d", types[i],
                                  f->length, f->bits, f->shift, f->is_signed, f->is_be,
                                  f->is_fully_defined);
                        compare_channel(ch, types[i], len, bits, shift, be, &seed, &t);
                    }
            iio_context_destroy(ctx);
            free(types);
            free(names);
        }
    }
    /* 8 x (8^2 + 16^2 + 32^2 + 64^2) formats */
    cr_assert_eq(t.formats, 8ull * (64 + 256 + 1024 + 4096));
    cr_log_info("%llu formats, %llu values compared", t.formats, t.values);
    cr_assert_eq(t.bad, 0, "%llu mismatches; first: %s", t.bad, t.first_bad);
}

/* ---- (2) layout ---------------------------------------------------------- */

/* A negative step reads backwards; n = 0 writes nothing; n = 1 works. */
Test(iio_convert, step_sign_and_counts)
{
    const char *types[] = {"be:s12/16>>4", "le:s64/64>>0"};
    g_ctx = xml_context(types, 2);
    struct iio_device *dev = iio_context_get_device(g_ctx, 0);
    for (unsigned c = 0; c < 2; c++) {
        struct iio_channel *ch = iio_device_get_channel(dev, c);
        const struct iio_data_format *df = iio_channel_get_data_format(ch);
        uint8_t buf[OFFSET + N_SAMP * (64 / 8 + PAD)];
        uint64_t seed = 42 + c;
        ptrdiff_t step = fill(buf, sizeof buf, df->length, df->bits, df->shift, df->is_be, &seed);
        const uint8_t *first = buf + OFFSET, *last = first + (N_SAMP - 1) * step;
        struct qes_iio_format f = fmt_of(ch);
        struct qes_iio_conv cv;
        cr_assert_eq(qes_iio_conv_init(&cv, &f), 0);
        double back[N_SAMP];
        int64_t iback[N_SAMP];
        qes_iio_conv_f64(&cv, last, -step, N_SAMP, back, 1);
        qes_iio_conv_i64(&cv, last, -step, N_SAMP, iback);
        unsigned distinct = 0;
        for (unsigned k = 0; k < N_SAMP; k++) {
            int64_t ri;
            double rd;
            ref_convert(ch, first + (ptrdiff_t)(N_SAMP - 1 - k) * step, &ri, &rd);
            cr_assert(memcmp(&back[k], &rd, sizeof rd) == 0 && iback[k] == ri,
                      "%s, backwards, sample %u: %.17g / %" PRId64 " vs %.17g / %" PRId64, types[c],
                      k, back[k], iback[k], rd, ri);
            distinct += k > 0 && back[k] != back[k - 1];
        }
        cr_assert_gt(distinct, N_SAMP / 2, "%s: the data do not vary", types[c]);

        /* n = 0 touches nothing; n = 1 converts exactly one sample */
        double d2[2] = {-1.5, -1.5};
        int64_t i2[2] = {-3, -3};
        qes_iio_conv_f64(&cv, first, step, 0, d2, 1);
        qes_iio_conv_i64(&cv, first, step, 0, i2);
        cr_assert(d2[0] == -1.5 && i2[0] == -3);
        qes_iio_conv_f64(&cv, first, step, 1, d2, 1);
        qes_iio_conv_i64(&cv, first, step, 1, i2);
        int64_t ri;
        double rd;
        ref_convert(ch, first, &ri, &rd);
        cr_assert(d2[0] == rd && i2[0] == ri && d2[1] == -1.5 && i2[1] == -3, "%s: n = 1",
                  types[c]);
    }
}

/* ---- (3) formats left to libiio ----------------------------------------- */

struct bad_fmt {
    struct qes_iio_format f;
    const char *why;
};

ParameterizedTestParameters(iio_convert, unsupported)
{
    static int idx[7];
    for (int i = 0; i < 7; i++)
        idx[i] = i;
    return cr_make_param_array(int, idx, 7);
}

ParameterizedTest(int *i, iio_convert, unsupported)
{
    static const struct bad_fmt cases[7] = {
            {{.length = 24, .bits = 24, .repeat = 1}, "24-bit storage"},
            {{.length = 12, .bits = 12, .repeat = 1}, "12-bit storage"},
            {{.length = 0, .bits = 0, .repeat = 1}, "no storage"},
            {{.length = 16, .bits = 0, .repeat = 1}, "0 realbits"},
            {{.length = 16, .bits = 17, .repeat = 1}, "realbits above the storage"},
            {{.length = 16, .bits = 12, .shift = 16, .repeat = 1}, "shift of the whole storage"},
            {{.length = 16, .bits = 16, .repeat = 2}, "repeat 2"},
    };
    struct qes_iio_conv cv;
    cr_assert_eq(qes_iio_conv_init(&cv, &cases[*i].f), QES_EUNSUPPORTED, "%s", cases[*i].why);
}

/* Arguments, and a repeated element as libiio parses it. */
Test(iio_convert, init_arguments)
{
    struct qes_iio_conv cv;
    struct qes_iio_format f = {.length = 16, .bits = 12, .shift = 4, .is_signed = 1, .repeat = 1};
    cr_assert_eq(qes_iio_conv_init(NULL, &f), QES_EINVAL);
    cr_assert_eq(qes_iio_conv_init(&cv, NULL), QES_EINVAL);
    cr_assert_eq(qes_iio_conv_init(&cv, &f), 0);
    f.repeat = 0; /* one element, as libiio converts */
    cr_assert_eq(qes_iio_conv_init(&cv, &f), 0);

    const char *types[] = {"le:s16/16X2>>0"};
    g_ctx = xml_context(types, 1);
    struct iio_channel *ch = iio_device_get_channel(iio_context_get_device(g_ctx, 0), 0);
    struct qes_iio_format r = fmt_of(ch);
    cr_assert_eq(r.repeat, 2);
    cr_assert_eq(qes_iio_conv_init(&cv, &r), QES_EUNSUPPORTED);
}

/* ---- (4) real buffers from the emulated ADC ------------------------------ */

struct fx_case {
    const char *type;
    unsigned n;
};

ParameterizedTestParameters(iio_convert, fixture_buffers)
{
    static int idx[6];
    for (int i = 0; i < 6; i++)
        idx[i] = i;
    return cr_make_param_array(int, idx, 6);
}

/* The feeder's counter over 2 x 4096 samples: for b <= 12 it wraps (a
 * sign change) at least once per refill on every channel. */
ParameterizedTest(int *i, iio_convert, fixture_buffers)
{
    static const struct fx_case cases[6] = {
            {"le:s16/16>>0", 3}, {"be:s12/16>>4", 2}, {"le:u12/16>>2", 1},
            {"be:s24/32>>8", 3}, {"le:s8/8>>0", 2},   {"be:s48/64>>8", 1},
    };
    const struct fx_case *c = &cases[*i];
    struct qes_iiofx_opts o = {.n_channels = c->n,
                               .scan_type = c->type,
                               .timestamp = 1,
                               .sample_rate_hz = 1000000,
                               .wave = QES_IIOFX_COUNTER,
                               .pace = QES_IIOFX_FREE};
    QES_IIOFX_START_OR_SKIP(&o, &g_fx);
    g_ctx = qes_iiofx_connect(&g_fx, 5000);
    cr_assert_not_null(g_ctx, "%s: %s", g_fx.uri, strerror(errno));
    struct iio_device *dev = iio_context_find_device(g_ctx, "qes-adc");
    cr_assert_not_null(dev);

    struct iio_channel *ch[8], *ts = iio_device_find_channel(dev, "timestamp", false);
    cr_assert_not_null(ts);
    for (unsigned k = 0; k < c->n; k++) {
        char id[32];
        snprintf(id, sizeof id, "voltage%u", k);
        ch[k] = iio_device_find_channel(dev, id, false);
        cr_assert_not_null(ch[k], "%s", id);
        iio_channel_enable(ch[k]);
    }
    iio_channel_enable(ts);
    const size_t ns = 4096;
    g_buf = iio_device_create_buffer(dev, ns, false);
    cr_assert_not_null(g_buf, "iio_device_create_buffer: %s", strerror(errno));

    static double out[4096 * 8];
    static int64_t io[4096];
    for (int refill = 0; refill < 2; refill++) {
        ssize_t got = iio_buffer_refill(g_buf);
        ptrdiff_t step = iio_buffer_step(g_buf);
        cr_assert_eq(got, (ssize_t)ns * step, "refill: %zd", got);
        for (unsigned k = 0; k <= c->n; k++) {
            const struct iio_channel *cc = k < c->n ? ch[k] : ts;
            const uint8_t *first = iio_buffer_first(g_buf, cc);
            struct qes_iio_format f = fmt_of(cc);
            struct qes_iio_conv cv;
            cr_assert_eq(qes_iio_conv_init(&cv, &f), 0);
            qes_iio_conv_f64(&cv, first, step, ns, out + k, c->n + 1);
            qes_iio_conv_i64(&cv, first, step, ns, io);
            unsigned neg = 0, bad = 0;
            for (size_t s = 0; s < ns; s++) {
                int64_t ri;
                double rd;
                ref_convert(cc, first + (ptrdiff_t)s * step, &ri, &rd);
                if (memcmp(&out[s * (c->n + 1) + k], &rd, sizeof rd) || io[s] != ri) {
                    if (!bad)
                        cr_log_error("%s %s sample %zu: fast %.17g / %" PRId64
                                     ", libiio %.17g / %" PRId64,
                                     c->type, iio_channel_get_id(cc), s, out[s * (c->n + 1) + k],
                                     io[s], rd, ri);
                    bad++;
                }
                neg += rd < 0;
            }
            cr_assert_eq(bad, 0, "%s %s: %u of %zu samples differ", c->type, iio_channel_get_id(cc),
                         bad, ns);
            /* signed 8..12-bit counters wrap within a refill: negative values occur */
            if (k < c->n && f.is_signed && f.bits <= 12)
                cr_assert_gt(neg, 0, "%s: no negative value in a wrapping counter", c->type);
        }
    }
}
