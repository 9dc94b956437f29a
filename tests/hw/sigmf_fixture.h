/*
 * Helpers shared by the SigMF tests: a per-test temporary directory removed
 * afterwards, paths inside it, raw files and little-endian encoders written
 * independently of hw/sigmf.c (so a symmetric reader/writer bug cannot hide).
 */
#ifndef QES_TESTS_HW_SIGMF_FIXTURE_H
#define QES_TESTS_HW_SIGMF_FIXTURE_H

#include "tests/testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char qes_fx_dir[4096];

static inline void qes_fx_setup(void)
{
    snprintf(qes_fx_dir, sizeof qes_fx_dir, "%s", qes_test_tmpdir());
}

/* The temporary directory is flat: remove its entries, then itself. */
static inline void qes_fx_teardown(void)
{
    if (!qes_fx_dir[0])
        return;
    DIR *d = opendir(qes_fx_dir);
    if (d) {
        struct dirent *e;
        char p[8192];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", qes_fx_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(qes_fx_dir);
    qes_fx_dir[0] = '\0';
}

/* Path of name inside the test directory, in a rotating static buffer. */
static inline const char *qes_fx_path(const char *name)
{
    static char bufs[4][8192];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", qes_fx_dir, name);
    return b;
}

static inline int qes_fx_write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int rc = n && fwrite(data, 1, n, f) != n ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

/* Write NAME.sigmf-meta with meta and NAME.sigmf-data with n zero bytes
 * (no data file when n == SIZE_MAX). */
static inline void qes_fx_capture(const char *name, const char *meta, size_t n)
{
    char p[8192];
    snprintf(p, sizeof p, "%s/%s.sigmf-meta", qes_fx_dir, name);
    cr_assert_eq(qes_test_write(p, meta), 0, "cannot write %s", p);
    if (n == SIZE_MAX)
        return;
    unsigned char *z = calloc(n ? n : 1, 1);
    cr_assert_not_null(z);
    snprintf(p, sizeof p, "%s/%s.sigmf-data", qes_fx_dir, name);
    cr_assert_eq(qes_fx_write_bytes(p, z, n), 0, "cannot write %s", p);
    free(z);
}

/* Little-endian encoders, byte by byte. */
static inline void qes_fx_le(unsigned char *p, uint64_t u, size_t nbytes)
{
    for (size_t b = 0; b < nbytes; b++)
        p[b] = (unsigned char)(u >> (8 * b));
}

/* splitmix64: deterministic test values. */
static inline uint64_t qes_fx_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#endif
