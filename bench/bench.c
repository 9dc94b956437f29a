#include "bench/bench.h"
#include "common/err.h"
#include "dsp/lockin.h"

#include <fftw3.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_PI 3.14159265358979323846

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of `reps` timings of `iters` calls, in seconds per call: the minimum is
 * the least disturbed by other load on a shared machine. */
#define TIME_BEST(reps, iters, body, out)                   \
    do {                                                    \
        double best_ = 1e300;                               \
        for (int r_ = 0; r_ < (reps); r_++) {               \
            double t0_ = now_s();                           \
            for (long i_ = 0; i_ < (iters); i_++) {         \
                body;                                       \
            }                                               \
            double dt_ = (now_s() - t0_) / (double)(iters); \
            if (dt_ < best_)                                \
                best_ = dt_;                                \
        }                                                   \
        (out) = best_;                                      \
    } while (0)

static volatile double g_sink;

/* The memory-read limit: a sum over the array, vectorised. */
static double read_sum(const double *restrict a, size_t n)
{
    double s0 = 0;
#pragma omp simd reduction(+ : s0)
    for (size_t i = 0; i < n; i++)
        s0 += a[i];
    return s0;
}

/* The naive baseline: cos and sin per sample. */
static void naive_lockin(const double *x, size_t n, unsigned periods, double *re, double *im)
{
    double sr = 0, si = 0;
    for (size_t i = 0; i < n; i++) {
        double th = 2 * BENCH_PI * (double)periods * (double)i / (double)n;
        sr += x[i] * cos(th);
        si -= x[i] * sin(th);
    }
    *re = sr;
    *im = si;
}

struct row {
    const char *kernel;
    size_t n;
    unsigned nh;
    double sps;     /* samples per second */
    double max_err; /* largest |error| relative to r, NaN when not measured */
};

/* Largest phasor error relative to the fundamental's amplitude (harmonics
 * absent from the test signal have r ~ 0, so their own r is no scale). */
static double phasor_err(const struct qes_phasor *a, const struct qes_phasor *ref, size_t nh)
{
    double e = 0, r1 = hypot(ref[0].x, ref[0].y);
    for (size_t k = 0; k < nh; k++) {
        double d = hypot(a[k].x - ref[k].x, a[k].y - ref[k].y) / r1;
        e = d > e ? d : e;
    }
    return e;
}

int qes_bench_main(int quick, const char *json_path, FILE *out)
{
    static const size_t sizes_full[] = {4096, 65536, 1048576};
    static const size_t sizes_quick[] = {4096, 65536};
    const size_t *sizes = quick ? sizes_quick : sizes_full;
    size_t n_sizes = quick ? 2 : 3;
    int reps = quick ? 3 : 7;
    struct row rows[64];
    size_t nr = 0;
    const unsigned harm1[] = {1}, harm8[] = {1, 2, 3, 4, 5, 6, 7, 8};
    int rc = 0;

    fprintf(out, "qes bench: block lock-in kernels, double precision, one core\n");
    fprintf(out, "%-22s %9s %3s %14s %10s %12s\n", "kernel", "n", "h", "samples/s", "of limit",
            "max rel err");
    for (size_t si = 0; si < n_sizes; si++) {
        size_t n = sizes[si];
        unsigned periods = 16;
        double *x = fftw_malloc(n * sizeof *x);
        double *big = NULL;
        if (!x)
            return QES_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            double th = 2 * BENCH_PI * (double)periods * (double)i / (double)n;
            x[i] = 1.0 + sqrt(2.0) * (cos(th + 0.3) + 0.01 * cos(3 * th - 0.2)) +
                   1e-3 * sin(7.0 * (double)i);
        }
        long iters = (long)(quick ? 2e7 : 8e7) / (long)n;
        if (iters < 1)
            iters = 1;
        /* memory-read limit measured on 256 MiB so that it comes from DRAM */
        size_t nbig = (size_t)32 << 20;
        double t_read;
        big = malloc(nbig * sizeof *big);
        if (!big) {
            fftw_free(x);
            return QES_ENOMEM;
        }
        for (size_t i = 0; i < nbig; i++)
            big[i] = (double)(i & 1023);
        TIME_BEST(reps, 1, g_sink = read_sum(big, nbig), t_read);
        free(big);
        double limit = (double)nbig / t_read;
        rows[nr++] = (struct row){"memory read (limit)", n, 0, limit, NAN};

        double t;
        double re, im;
        TIME_BEST(reps, iters, (naive_lockin(x, n, periods, &re, &im), g_sink = re + im), t);
        rows[nr++] = (struct row){"naive sin/cos loop", n, 1, (double)n / t, NAN};

        fftw_complex *fo = fftw_malloc((n / 2 + 1) * sizeof *fo);
        double *fi = fftw_malloc(n * sizeof *fi);
        fftw_plan plan = fftw_plan_dft_r2c_1d((int)n, fi, fo, FFTW_ESTIMATE);
        memcpy(fi, x, n * sizeof *x);
        TIME_BEST(reps, iters, fftw_execute(plan), t);
        rows[nr++] = (struct row){"fftw r2c (ESTIMATE)", n, 0, (double)n / t, NAN};
        fftw_destroy_plan(plan);
        fftw_free(fo);
        fftw_free(fi);

        struct {
            enum qes_lockin_method m;
            const char *name;
            const unsigned *h;
            size_t nh;
        } cases[] = {
                {QES_LOCKIN_DFT, "qes dft lock-in", harm1, 1},
                {QES_LOCKIN_DFT, "qes dft lock-in", harm8, 8},
                {QES_LOCKIN_FFT, "qes fft lock-in", harm8, 8},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            struct qes_lockin_desc d = {.method = cases[c].m,
                                        .window = QES_WINDOW_RECT,
                                        .n = n,
                                        .periods = periods,
                                        .harmonics = cases[c].h,
                                        .n_harmonics = cases[c].nh};
            struct qes_lockin *l;
            struct qes_phasor ph[8], ref[8];
            if ((rc = qes_lockin_create(&d, &l)))
                break;
            TIME_BEST(reps, iters, qes_lockin_execute(l, x, 0, ph), t);
            qes_lockin_reference(&d, x, 0, ref);
            rows[nr++] = (struct row){cases[c].name, n, (unsigned)cases[c].nh, (double)n / t,
                                      phasor_err(ph, ref, cases[c].nh)};
            qes_lockin_destroy(l);
        }
        fftw_free(x);
        if (rc)
            return rc;
        for (size_t i = nr - 6; i < nr; i++)
            fprintf(out, "%-22s %9zu %3u %14.4g %9.3f%% %12.3g\n", rows[i].kernel, rows[i].n,
                    rows[i].nh, rows[i].sps, 100 * rows[i].sps / limit, rows[i].max_err);
    }
    if (json_path) {
        FILE *j = fopen(json_path, "w");
        if (!j)
            return QES_EIO;
        fprintf(j, "{\"rows\":[");
        for (size_t i = 0; i < nr; i++) {
            char err[32];
            if (isnan(rows[i].max_err))
                snprintf(err, sizeof err, "null");
            else
                snprintf(err, sizeof err, "%.3g", rows[i].max_err);
            fprintf(j,
                    "%s{\"kernel\":\"%s\",\"n\":%zu,\"harmonics\":%u,\"samples_per_s\":%.6g,"
                    "\"max_rel_err\":%s}",
                    i ? "," : "", rows[i].kernel, rows[i].n, rows[i].nh, rows[i].sps, err);
        }
        fprintf(j, "]}\n");
        if (fclose(j))
            return QES_EIO;
    }
    return 0;
}
