/*
 * Fast conversion of IIO scan elements (buffer samples) to numbers.
 *
 * The reference twin is libiio 0.24's iio_channel_convert, followed by the
 * cast that hw/source_iio.c applies to its result: the sample is read as a
 * `length`-bit integer in the element's byte order, shifted right by `shift`
 * (zero fill), then, unless the format is fully defined, masked to its low
 * `bits` bits (unsigned) or sign-extended from bit bits - 1 (signed); the
 * `length`-bit result is then read as a signed integer when is_signed, else
 * as an unsigned one.  A fully defined format (libiio's is_fully_defined:
 * upper-case S/U in the scan type, or bits == length) keeps every bit above
 * `bits`.  The conversion here gives bit-identical values
 * (tests/hw/test_iio_convert.c compares the two on every supported format).
 * Scale and offset are not applied.
 *
 * No libiio dependency: the format is passed as the fields of libiio's
 * struct iio_data_format that matter.
 */
#ifndef QES_HW_IIO_CONVERT_H
#define QES_HW_IIO_CONVERT_H

#include <stddef.h>
#include <stdint.h>

/* The fields of libiio's struct iio_data_format that the conversion uses. */
struct qes_iio_format {
    unsigned length;      /* storage bits: 8, 16, 32 or 64 */
    unsigned bits;        /* significant bits ("realbits"), 1 .. length */
    unsigned shift;       /* right shift, 0 .. length - 1 */
    int is_signed;        /* two's complement */
    int is_fully_defined; /* no masking nor sign extension (see above) */
    int is_be;            /* big-endian storage */
    unsigned repeat;      /* elements per sample: 0 or 1 (only one is converted) */
};

/* A prepared conversion (plan): fill with qes_iio_conv_init. */
struct qes_iio_conv {
    unsigned length, shift;
    uint64_t mask, sign; /* keep `mask`; sign-extend from the bit in `sign` (0: none) */
    int is_be;
    int u64; /* the result is a full-width unsigned 64-bit value */
};

/*
 * Prepare the conversion of format f.  Returns 0, or QES_EUNSUPPORTED for a
 * format outside the ranges above (callers then use iio_channel_convert).
 */
int qes_iio_conv_init(struct qes_iio_conv *c, const struct qes_iio_format *f);

/*
 * Convert n samples to double: sample k is read at first + k * step (any
 * alignment; step in bytes, may be negative) and written to out[k * stride].
 * Values wider than 53 bits round to nearest, as a C cast of the integer
 * does.  Thread-safe (c is only read).
 */
void qes_iio_conv_f64(const struct qes_iio_conv *c, const void *first, ptrdiff_t step, size_t n,
                      double *out, size_t stride);

/*
 * Convert n samples to int64_t (e.g. the kernel's in_timestamp, le:s64/64>>0):
 * the value of the `length`-bit result read as signed or unsigned per the
 * format; a full-width unsigned 64-bit value keeps its bits (as when
 * iio_channel_convert writes into an int64_t).  out is contiguous.
 */
void qes_iio_conv_i64(const struct qes_iio_conv *c, const void *first, ptrdiff_t step, size_t n,
                      int64_t *out);

#endif
