/*
 * GUM budgets, linear propagation through a vector model and Monte Carlo
 * propagation of distributions (see budget.h).
 */
#include "dsp/budget.h"

#include "common/err.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const double qes__pi_b = 3.1415926535897932384626433832795;

/* Tolerance on the entries of a correlation matrix (symmetry, diagonal,
 * |r| <= 1): a matrix computed from a covariance in double carries errors
 * of a few ulp; 1e-9 accepts those and still refuses a typing error. */
#define QES__CORR_TOL 1e-9

int qes_input_u(const struct qes_input *in, double *u)
{
    if (!in || !u || !isfinite(in->unc) || in->unc < 0.0)
        return QES_EINVAL;
    switch (in->kind) {
    case QES_UNC_STANDARD:
        *u = in->unc;
        return 0;
    case QES_UNC_EXPANDED:
        if (!(in->k > 0.0) || !isfinite(in->k))
            return QES_EINVAL;
        *u = in->unc / in->k;
        return 0;
    case QES_UNC_RECT:
        *u = in->unc / sqrt(3.0);
        return 0;
    case QES_UNC_TRIANG:
        *u = in->unc / sqrt(6.0);
        return 0;
    case QES_UNC_ARCSINE:
        *u = in->unc / sqrt(2.0);
        return 0;
    }
    return QES_EINVAL;
}

/* Validate the inputs; fill x (may be NULL), u and nu (0 -> INFINITY). */
static int read_inputs(const struct qes_input *in, size_t n, double *x, double *u, double *nu)
{
    for (size_t i = 0; i < n; i++) {
        const int rc = qes_input_u(&in[i], &u[i]);
        if (rc)
            return rc;
        if (!isfinite(in[i].value))
            return QES_EINVAL;
        const double d = in[i].dof;
        if (isnan(d) || d < 0.0)
            return QES_EINVAL;
        nu[i] = d == 0.0 ? INFINITY : d;
        if (x)
            x[i] = in[i].value;
    }
    return 0;
}

static int check_corr(const double *r, size_t n)
{
    if (!r)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs(r[i * n + i] - 1.0) <= QES__CORR_TOL))
            return QES_EINVAL;
        for (size_t j = 0; j < i; j++) {
            const double a = r[i * n + j], b = r[j * n + i];
            if (!(fabs(a - b) <= QES__CORR_TOL) || !(fabs(a) <= 1.0 + QES__CORR_TOL))
                return QES_EINVAL;
        }
    }
    return 0;
}

/* Correlation r_ij, exactly 1 on the diagonal and symmetric (mean of the
 * two triangles, which agree within QES__CORR_TOL). */
static double corr_at(const double *r, size_t n, size_t i, size_t j)
{
    if (i == j)
        return 1.0;
    if (!r)
        return 0.0;
    return 0.5 * (r[i * n + j] + r[j * n + i]);
}

static size_t uf_find(size_t *parent, size_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

static void uf_union(size_t *parent, size_t a, size_t b)
{
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a < b)
        parent[b] = a;
    else if (b < a)
        parent[a] = b;
}

/*
 * Effective dof with correlated groups (see budget.h): group the inputs that
 * contribute (c_i u_i != 0) by r_ij != 0, give each group the variance of its
 * joint contribution and its smallest nu, and run qes_ws_dof over the groups.
 * Scratch: parent[n], var[n], gnu[n], gt[n].
 */
static double ws_grouped(size_t n, const double *c, const double *u, const double *r,
                         const double *nu, size_t *parent, double *var, double *gnu,
                         struct qes_budget_term *gt)
{
    for (size_t i = 0; i < n; i++) {
        parent[i] = i;
        var[i] = 0.0;
        gnu[i] = INFINITY;
    }
    if (r) {
        for (size_t i = 0; i < n; i++) {
            if (c[i] * u[i] == 0.0)
                continue;
            for (size_t j = 0; j < i; j++)
                if (c[j] * u[j] != 0.0 && corr_at(r, n, i, j) != 0.0)
                    uf_union(parent, i, j);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const double ci = c[i] * u[i];
        if (ci == 0.0)
            continue;
        const size_t g = uf_find(parent, i);
        gnu[g] = fmin(gnu[g], nu[i]);
        double s = ci * ci;
        for (size_t j = 0; j < i; j++)
            if (uf_find(parent, j) == g)
                s += 2.0 * ci * c[j] * u[j] * corr_at(r, n, i, j);
        var[g] += s;
    }
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        if (parent[i] != i || var[i] <= 0.0)
            continue;
        gt[ng].name = NULL;
        gt[ng].u = sqrt(var[i]);
        gt[ng].dof = gnu[i];
        ng++;
    }
    return qes_ws_dof(gt, ng);
}

/* Scratch for ws_grouped, one block. */
struct ws_scratch {
    size_t *parent;
    double *var, *gnu;
    struct qes_budget_term *gt;
};

static int ws_scratch_alloc(struct ws_scratch *s, size_t n)
{
    s->parent = malloc(n * sizeof *s->parent);
    s->var = malloc(2 * n * sizeof *s->var);
    s->gt = malloc(n * sizeof *s->gt);
    s->gnu = s->var ? s->var + n : NULL;
    if (!s->parent || !s->var || !s->gt) {
        free(s->parent);
        free(s->var);
        free(s->gt);
        return QES_ENOMEM;
    }
    return 0;
}

static void ws_scratch_free(struct ws_scratch *s)
{
    free(s->parent);
    free(s->var);
    free(s->gt);
}

int qes_budget_combine(const struct qes_input *in, size_t n, const double *corr, double coverage,
                       struct qes_budget_result *res, struct qes_budget_term *terms)
{
    if (!in || n == 0 || !res || !(coverage > 0.0 && coverage < 1.0))
        return QES_EINVAL;
    if (n > SIZE_MAX / (4 * sizeof(double)))
        return QES_EINVAL;
    int rc = check_corr(corr, n);
    if (rc)
        return rc;
    double *buf = malloc(3 * n * sizeof *buf);
    if (!buf)
        return QES_ENOMEM;
    double *u = buf, *nu = buf + n, *c = buf + 2 * n;
    struct ws_scratch ws = {0};
    rc = read_inputs(in, n, NULL, u, nu);
    if (rc)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(in[i].c)) {
            rc = QES_EINVAL;
            goto out;
        }
        c[i] = in[i].c;
    }
    /* u_c^2 with the sum of |terms| as the scale of its rounding error */
    double u2 = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double ci = c[i] * u[i];
        u2 += ci * ci;
        scale += ci * ci;
        for (size_t j = 0; j < i; j++) {
            const double t = 2.0 * ci * c[j] * u[j] * corr_at(corr, n, i, j);
            u2 += t;
            scale += fabs(t);
        }
    }
    if (u2 < 0.0) {
        if (u2 < -1e-12 * scale) {
            rc = QES_EINVAL;
            goto out;
        }
        u2 = 0.0;
    }
    rc = ws_scratch_alloc(&ws, n);
    if (rc)
        goto out;
    const double dof = ws_grouped(n, c, u, corr, nu, ws.parent, ws.var, ws.gnu, ws.gt);
    ws_scratch_free(&ws);
    res->u_c = sqrt(u2);
    res->dof = dof;
    res->k = qes_coverage_factor(coverage, dof);
    res->U = res->k * res->u_c;
    res->coverage = coverage;
    if (terms) {
        for (size_t i = 0; i < n; i++) {
            terms[i].name = in[i].name;
            terms[i].u = fabs(c[i] * u[i]);
            terms[i].dof = nu[i];
        }
    }
out:
    free(buf);
    return rc;
}

int qes_mean_cov(const double *data, size_t n_obs, size_t n_var, double *mean, double *cov_mean)
{
    if (!data || !mean || !cov_mean || n_obs < 2 || n_var == 0)
        return QES_EINVAL;
    for (size_t j = 0; j < n_var; j++) {
        double s = 0.0;
        for (size_t t = 0; t < n_obs; t++) {
            const double v = data[t * n_var + j];
            if (!isfinite(v))
                return QES_EINVAL;
            s += v;
        }
        mean[j] = s / (double)n_obs;
    }
    const double den = (double)(n_obs - 1) * (double)n_obs;
    for (size_t j = 0; j < n_var; j++) {
        for (size_t l = 0; l <= j; l++) {
            double s = 0.0;
            for (size_t t = 0; t < n_obs; t++)
                s += (data[t * n_var + j] - mean[j]) * (data[t * n_var + l] - mean[l]);
            cov_mean[j * n_var + l] = cov_mean[l * n_var + j] = s / den;
        }
    }
    return 0;
}

int qes_cov_to_corr(const double *cov, size_t n, double *u, double *corr)
{
    if (!cov || n == 0)
        return QES_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!(cov[i * n + i] >= 0.0))
            return QES_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const double ui = sqrt(cov[i * n + i]);
        if (u)
            u[i] = ui;
        if (!corr)
            continue;
        for (size_t j = 0; j < n; j++) {
            const double uj = sqrt(cov[j * n + j]);
            if (i == j)
                corr[i * n + j] = 1.0;
            else if (ui == 0.0 || uj == 0.0)
                corr[i * n + j] = 0.0;
            else
                corr[i * n + j] = cov[i * n + j] / (ui * uj);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Linear propagation                                                        */

static int check_model(const struct qes_model *m)
{
    if (!m || !m->f || m->n_in == 0 || m->n_out == 0)
        return QES_EINVAL;
    /* every scratch array below is at most max(N, M)^2 doubles */
    const size_t big = m->n_in > m->n_out ? m->n_in : m->n_out;
    if (big > 46340 || m->n_in * m->n_out > SIZE_MAX / 16)
        return QES_EINVAL;
    return 0;
}

/* A model code must be negative; anything else is reported as QES_EINVAL. */
static int model_rc(int rc)
{
    return rc < 0 ? rc : QES_EINVAL;
}

int qes_propagate(const struct qes_model *m, const struct qes_input *in, const double *corr,
                  struct qes_propagation *out)
{
    int rc = check_model(m);
    if (rc)
        return rc;
    if (!in || !out)
        return QES_EINVAL;
    const size_t N = m->n_in, M = m->n_out;
    rc = check_corr(corr, N);
    if (rc)
        return rc;
    /* x, u, nu, xs: 4N; y0, yp, ym: 3M; J: MN; JV: MN; cov: MM */
    const size_t nbuf = 4 * N + 3 * M + 2 * M * N + M * M;
    double *buf = malloc(nbuf * sizeof *buf);
    if (!buf)
        return QES_ENOMEM;
    double *x = buf, *u = x + N, *nu = u + N, *xs = nu + N;
    double *y0 = xs + N, *yp = y0 + M, *ym = yp + M;
    double *J = ym + M, *JV = J + M * N, *cov = JV + M * N;
    struct ws_scratch ws = {0};

    rc = read_inputs(in, N, x, u, nu);
    if (rc)
        goto out;
    rc = m->f(x, y0, m->ctx);
    if (rc) {
        rc = model_rc(rc);
        goto out;
    }
    const double s = 0x1p-17;
    memcpy(xs, x, N * sizeof *xs);
    for (size_t i = 0; i < N; i++) {
        double h = u[i] > 0.0 ? fmin(u[i], s * fmax(fabs(x[i]), u[i])) : s * fmax(fabs(x[i]), 1.0);
        const double xp = x[i] + h, xm = x[i] - h;
        const double dx = (xp - x[i]) + (x[i] - xm);
        xs[i] = xp;
        rc = m->f(xs, yp, m->ctx);
        if (!rc) {
            xs[i] = xm;
            rc = m->f(xs, ym, m->ctx);
        }
        xs[i] = x[i];
        if (rc) {
            rc = model_rc(rc);
            goto out;
        }
        for (size_t k = 0; k < M; k++)
            J[k * N + i] = (yp[k] - ym[k]) / dx;
    }
    /* JV = J diag(u) R diag(u); cov = JV J^T */
    for (size_t k = 0; k < M; k++) {
        for (size_t j = 0; j < N; j++) {
            double a = 0.0;
            for (size_t i = 0; i < N; i++)
                a += J[k * N + i] * u[i] * corr_at(corr, N, i, j);
            JV[k * N + j] = a * u[j];
        }
    }
    for (size_t k = 0; k < M; k++) {
        for (size_t l = 0; l <= k; l++) {
            double a = 0.0;
            for (size_t j = 0; j < N; j++)
                a += JV[k * N + j] * J[l * N + j];
            cov[k * M + l] = cov[l * M + k] = a;
        }
        if (cov[k * M + k] < 0.0) {
            /* J V J^T has a negative diagonal only when V is not PSD (beyond rounding) */
            double scale = 0.0;
            for (size_t j = 0; j < N; j++)
                scale += fabs(J[k * N + j]) * u[j];
            if (cov[k * M + k] < -1e-12 * scale * scale) {
                rc = QES_EINVAL;
                goto out;
            }
            cov[k * M + k] = 0.0;
        }
    }
    if (out->dof) {
        rc = ws_scratch_alloc(&ws, N);
        if (rc)
            goto out;
        for (size_t k = 0; k < M; k++)
            out->dof[k] = ws_grouped(N, &J[k * N], u, corr, nu, ws.parent, ws.var, ws.gnu, ws.gt);
        ws_scratch_free(&ws);
    }
    if (out->y)
        memcpy(out->y, y0, M * sizeof *y0);
    if (out->cov)
        memcpy(out->cov, cov, M * M * sizeof *cov);
    if (out->jac)
        memcpy(out->jac, J, M * N * sizeof *J);
    if (out->u || out->corr)
        qes_cov_to_corr(cov, M, out->u, out->corr);
out:
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Random numbers                                                            */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void qes_rng_seed(struct qes_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
    r->spare = 0.0;
    r->has_spare = 0;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t qes_rng_next(struct qes_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double qes_rng_uniform(struct qes_rng *r)
{
    return (double)(qes_rng_next(r) >> 11) * 0x1p-53;
}

double qes_rng_normal(struct qes_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    const double u1 = 1.0 - qes_rng_uniform(r); /* (0, 1]: log finite */
    const double u2 = qes_rng_uniform(r);
    const double rad = sqrt(-2.0 * log(u1));
    const double th = 2.0 * qes__pi_b * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

double qes_rng_gamma(struct qes_rng *r, double shape)
{
    if (!(shape > 0.0) || !isfinite(shape))
        return NAN;
    if (shape < 1.0) {
        /* Gamma(a) = Gamma(a + 1) U^(1/a) (Marsaglia and Tsang, sec. 6) */
        const double g = qes_rng_gamma(r, shape + 1.0);
        const double v = 1.0 - qes_rng_uniform(r);
        return g * pow(v, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = qes_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        const double uu = 1.0 - qes_rng_uniform(r);
        const double x2 = x * x;
        if (uu < 1.0 - 0.0331 * x2 * x2)
            return d * v;
        if (log(uu) < 0.5 * x2 + d * (1.0 - v + log(v)))
            return d * v;
    }
}

/* sqrt(nu / chi^2_nu): the factor turning a normal deviate into a t deviate */
static double t_scale(struct qes_rng *r, double nu)
{
    if (isinf(nu))
        return 1.0;
    const double chi2 = 2.0 * qes_rng_gamma(r, 0.5 * nu);
    return sqrt(nu / chi2);
}

double qes_rng_student_t(struct qes_rng *r, double dof)
{
    if (!(dof > 0.0))
        return NAN;
    const double z = qes_rng_normal(r);
    return z * t_scale(r, dof);
}

/* ------------------------------------------------------------------------ */
/* Monte Carlo                                                               */

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * Cholesky factor L (lower, row-major) of a positive semi-definite matrix A:
 * a pivot within tol of 0 gives a zero column (the input is a linear
 * combination of earlier ones); a pivot below -tol is refused.
 */
static int cholesky_psd(const double *A, size_t n, double *L)
{
    const double tol = 1e-12 * (double)n;
    memset(L, 0, n * n * sizeof *L);
    for (size_t j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (size_t k = 0; k < j; k++)
            d -= L[j * n + k] * L[j * n + k];
        if (d < -tol)
            return QES_EINVAL;
        if (d <= tol)
            continue; /* zero column */
        const double ljj = sqrt(d);
        L[j * n + j] = ljj;
        for (size_t i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (size_t k = 0; k < j; k++)
                s -= L[i * n + k] * L[j * n + k];
            L[i * n + j] = s / ljj;
        }
    }
    return 0;
}

static bool is_normal_kind(enum qes_unc_kind k)
{
    return k == QES_UNC_STANDARD || k == QES_UNC_EXPANDED;
}

int qes_mc_propagate(const struct qes_model *m, const struct qes_input *in, const double *corr,
                     const struct qes_mc_desc *d, struct qes_mc_stat *out, double *cov)
{
    int rc = check_model(m);
    if (rc)
        return rc;
    if (!in || !d || !out)
        return QES_EINVAL;
    const size_t N = m->n_in, M = m->n_out;
    const size_t T = d->trials ? d->trials : 1000000;
    const double p = d->coverage == 0.0 ? 0.95 : d->coverage;
    if (!(p > 0.0 && p < 1.0) || T < 2 || T > SIZE_MAX / sizeof(double) / M)
        return QES_EINVAL;
    /* q = pM if an integer, else int(pM + 1/2) (JCGM 101 7.7.1) */
    const double pm = p * (double)T;
    const size_t q = pm == floor(pm) ? (size_t)pm : (size_t)floor(pm + 0.5);
    if (q < 1 || q >= T)
        return QES_EINVAL;
    rc = check_corr(corr, N);
    if (rc)
        return rc;

    /* x, u, nu, z, w, scale: 6N; y: M; R, L: 2NN; first: N sizes */
    double *buf = malloc((6 * N + M + 2 * N * N) * sizeof *buf);
    size_t *first = malloc(N * sizeof *first);
    double *ys = malloc(T * M * sizeof *ys);
    if (!buf || !first || !ys) {
        rc = QES_ENOMEM;
        goto out;
    }
    double *x = buf, *u = x + N, *nu = u + N, *z = nu + N, *w = z + N, *scale = w + N;
    double *y = scale + N, *R = y + M, *L = R + N * N;
    rc = read_inputs(in, N, x, u, nu);
    if (rc)
        goto out;
    for (size_t i = 0; i < N; i++)
        first[i] = i;
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            const double r = corr_at(corr, N, i, j);
            R[i * N + j] = r;
            if (i == j || r == 0.0)
                continue;
            if (!is_normal_kind(in[i].kind) || !is_normal_kind(in[j].kind)) {
                rc = QES_EINVAL;
                goto out;
            }
            if (j < i)
                uf_union(first, i, j);
        }
    }
    for (size_t i = 0; i < N; i++)
        first[i] = uf_find(first, i); /* the root is the smallest index of the group */
    for (size_t i = 0; i < N; i++) {
        if (first[i] != i && nu[i] != nu[first[i]]) {
            rc = QES_EUNSUPPORTED;
            goto out;
        }
    }
    rc = cholesky_psd(R, N, L);
    if (rc)
        goto out;

    struct qes_rng rng;
    qes_rng_seed(&rng, d->seed);
    for (size_t t = 0; t < T; t++) {
        for (size_t i = 0; i < N; i++)
            z[i] = qes_rng_normal(&rng);
        for (size_t i = 0; i < N; i++) {
            double a = 0.0;
            for (size_t k = 0; k <= i; k++)
                a += L[i * N + k] * z[k];
            w[i] = a;
        }
        for (size_t i = 0; i < N; i++) {
            const double a = in[i].unc;
            switch (in[i].kind) {
            case QES_UNC_STANDARD:
            case QES_UNC_EXPANDED:
                if (first[i] == i)
                    scale[i] = t_scale(&rng, nu[i]);
                x[i] = in[i].value + u[i] * w[i] * scale[first[i]];
                break;
            case QES_UNC_RECT:
                x[i] = in[i].value + a * (2.0 * qes_rng_uniform(&rng) - 1.0);
                break;
            case QES_UNC_TRIANG: {
                const double u1 = qes_rng_uniform(&rng);
                x[i] = in[i].value + a * (u1 - qes_rng_uniform(&rng));
                break;
            }
            case QES_UNC_ARCSINE:
                x[i] = in[i].value + a * cos(qes__pi_b * qes_rng_uniform(&rng));
                break;
            }
        }
        rc = m->f(x, y, m->ctx);
        if (rc) {
            rc = model_rc(rc);
            goto out;
        }
        for (size_t k = 0; k < M; k++)
            ys[k * T + t] = y[k];
    }

    /* moments before sorting (sorting breaks the pairing across outputs) */
    for (size_t k = 0; k < M; k++) {
        double s = 0.0;
        for (size_t t = 0; t < T; t++)
            s += ys[k * T + t];
        out[k].mean = s / (double)T;
    }
    for (size_t k = 0; k < M; k++) {
        for (size_t l = 0; l <= k; l++) {
            if (!cov && l != k)
                continue;
            double s = 0.0;
            const double mk = out[k].mean, ml = out[l].mean;
            for (size_t t = 0; t < T; t++)
                s += (ys[k * T + t] - mk) * (ys[l * T + t] - ml);
            s /= (double)(T - 1);
            if (cov)
                cov[k * M + l] = cov[l * M + k] = s;
            if (l == k)
                out[k].u = sqrt(s);
        }
    }
    /* coverage intervals over [y_(r), y_(r+q)] (1-based, JCGM 101 7.7) */
    const size_t rs = (T - q) % 2 == 0 ? (T - q) / 2 : (T - q) / 2 + 1;
    for (size_t k = 0; k < M; k++) {
        double *col = &ys[k * T];
        qsort(col, T, sizeof *col, cmp_double);
        size_t best = 0;
        double wbest = col[q] - col[0];
        for (size_t r = 1; r + q < T; r++) {
            const double wr = col[r + q] - col[r];
            if (wr < wbest) {
                wbest = wr;
                best = r;
            }
        }
        out[k].lo = col[best];
        out[k].hi = col[best + q];
        out[k].lo_sym = col[rs - 1];
        out[k].hi_sym = col[rs - 1 + q];
    }
out:
    free(ys);
    free(first);
    free(buf);
    return rc;
}
