/*
 * Fast IIO sample conversion (see hw/iio_convert.h).
 *
 * libiio's iio_channel_convert works on a byte array: a byte swap for a
 * big-endian element, a multi-byte right shift, then a mask or a sign
 * extension written byte by byte, each call ~12 ns.  The same value is one
 * load of the element as an unsigned integer (byte order fixed by the
 * load), a right shift, a mask and, for the sign, the identity
 * sext(v) = (v ^ s) - s with s the sign bit (mod 2^64), all in uint64_t.
 * The loops are specialised on the storage width and byte order, so that
 * their bodies have no branch; every other parameter is data.
 *
 * Loads are written as byte assemblies: they are alignment-safe and free
 * of host-endianness assumptions, and gcc and clang turn each one into a
 * single load (plus a bswap for the other byte order).
 */
#include "hw/iio_convert.h"

#include "common/err.h"

#include <string.h>

/* The two's complement value of x: int64_t has no padding and is two's
 * complement (C11 7.20.1.1), so the object representations match. */
static inline int64_t as_i64(uint64_t x)
{
    int64_t v;
    memcpy(&v, &x, sizeof v);
    return v;
}

static inline uint64_t ld8(const uint8_t *p)
{
    return p[0];
}

static inline uint64_t ld16le(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8;
}

static inline uint64_t ld16be(const uint8_t *p)
{
    return (uint64_t)p[1] | (uint64_t)p[0] << 8;
}

static inline uint64_t ld32le(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

static inline uint64_t ld32be(const uint8_t *p)
{
    return (uint64_t)p[3] | (uint64_t)p[2] << 8 | (uint64_t)p[1] << 16 | (uint64_t)p[0] << 24;
}

static inline uint64_t ld64le(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint64_t ld64be(const uint8_t *p)
{
    return (uint64_t)p[7] | (uint64_t)p[6] << 8 | (uint64_t)p[5] << 16 | (uint64_t)p[4] << 24 |
           (uint64_t)p[3] << 32 | (uint64_t)p[2] << 40 | (uint64_t)p[1] << 48 |
           (uint64_t)p[0] << 56;
}

/* The converted bits of the sample at p, LD being the load of its width
 * and byte order. */
#define CONV_BITS(LD, p) ((((LD(p) >> sh) & mask) ^ sign) - sign)

/* Two loops per load: to double and to int64_t. */
#define CONV_LOOPS(LD)                                                                       \
    static void f64_##LD(const struct qes_iio_conv *c, const uint8_t *first, ptrdiff_t step, \
                         size_t n, double *out, size_t stride)                               \
    {                                                                                        \
        const unsigned sh = c->shift;                                                        \
        const uint64_t mask = c->mask, sign = c->sign;                                       \
        for (size_t k = 0; k < n; k++)                                                       \
            out[k * stride] = (double)as_i64(CONV_BITS(LD, first + (ptrdiff_t)k * step));    \
    }                                                                                        \
    static void i64_##LD(const struct qes_iio_conv *c, const uint8_t *first, ptrdiff_t step, \
                         size_t n, int64_t *out)                                             \
    {                                                                                        \
        const unsigned sh = c->shift;                                                        \
        const uint64_t mask = c->mask, sign = c->sign;                                       \
        for (size_t k = 0; k < n; k++)                                                       \
            out[k] = as_i64(CONV_BITS(LD, first + (ptrdiff_t)k * step));                     \
    }

/* To double from a full-width unsigned 64-bit value (64-bit loads only). */
#define CONV_LOOP_U64(LD)                                                                    \
    static void u64_##LD(const struct qes_iio_conv *c, const uint8_t *first, ptrdiff_t step, \
                         size_t n, double *out, size_t stride)                               \
    {                                                                                        \
        const unsigned sh = c->shift;                                                        \
        const uint64_t mask = c->mask, sign = c->sign;                                       \
        for (size_t k = 0; k < n; k++)                                                       \
            out[k * stride] = (double)CONV_BITS(LD, first + (ptrdiff_t)k * step);            \
    }

CONV_LOOPS(ld8)
CONV_LOOPS(ld16le)
CONV_LOOPS(ld16be)
CONV_LOOPS(ld32le)
CONV_LOOPS(ld32be)
CONV_LOOPS(ld64le)
CONV_LOOPS(ld64be)
CONV_LOOP_U64(ld64le)
CONV_LOOP_U64(ld64be)

int qes_iio_conv_init(struct qes_iio_conv *c, const struct qes_iio_format *f)
{
    if (!c || !f)
        return QES_EINVAL;
    memset(c, 0, sizeof *c);
    unsigned len = f->length;
    if (!(len == 8 || len == 16 || len == 32 || len == 64) || f->bits < 1 || f->bits > len ||
        f->shift >= len || f->repeat > 1)
        return QES_EUNSUPPORTED;
    /* A fully defined format keeps all `length` bits after the shift, and
     * the caller reads them with the format's sign: the same as masking or
     * sign-extending at bit length - 1. */
    unsigned eff = f->is_fully_defined ? len : f->bits;
    c->length = len;
    c->shift = f->shift;
    c->mask = eff == 64 ? ~(uint64_t)0 : ((uint64_t)1 << eff) - 1;
    c->sign = f->is_signed ? (uint64_t)1 << (eff - 1) : 0;
    c->is_be = len > 8 && f->is_be;
    /* values of 2^63 and above exist only for an unsigned 64-bit result */
    c->u64 = !f->is_signed && eff == 64;
    return 0;
}

void qes_iio_conv_f64(const struct qes_iio_conv *c, const void *first, ptrdiff_t step, size_t n,
                      double *out, size_t stride)
{
    const uint8_t *p = first;
    switch (c->length) {
    case 8:
        f64_ld8(c, p, step, n, out, stride);
        break;
    case 16:
        (c->is_be ? f64_ld16be : f64_ld16le)(c, p, step, n, out, stride);
        break;
    case 32:
        (c->is_be ? f64_ld32be : f64_ld32le)(c, p, step, n, out, stride);
        break;
    default:
        if (c->u64)
            (c->is_be ? u64_ld64be : u64_ld64le)(c, p, step, n, out, stride);
        else
            (c->is_be ? f64_ld64be : f64_ld64le)(c, p, step, n, out, stride);
        break;
    }
}

void qes_iio_conv_i64(const struct qes_iio_conv *c, const void *first, ptrdiff_t step, size_t n,
                      int64_t *out)
{
    const uint8_t *p = first;
    switch (c->length) {
    case 8:
        i64_ld8(c, p, step, n, out);
        break;
    case 16:
        (c->is_be ? i64_ld16be : i64_ld16le)(c, p, step, n, out);
        break;
    case 32:
        (c->is_be ? i64_ld32be : i64_ld32le)(c, p, step, n, out);
        break;
    default:
        (c->is_be ? i64_ld64be : i64_ld64le)(c, p, step, n, out);
        break;
    }
}
