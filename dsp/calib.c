/*
 * Calibration chain, complex ratios and quantum reference values (see
 * calib.h for the models).
 */
#include "dsp/calib.h"

#include "common/err.h"
#include "dsp/gum.h"
#include "dsp/si.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double qes__pi_c = 3.1415926535897932384626433832795;

struct qes_freqresp {
    size_t n;
    double dof;
    double *f, *g, *ug, *ph, *uph; /* one allocation, 5 n doubles */
};

struct qes_calib {
    struct qes_calib_desc d; /* fr replaced by the copy below */
    struct qes_freqresp *fr;
};

static double dof_or_inf(double d)
{
    return d == 0.0 ? INFINITY : d;
}

static int check_dof(double d)
{
    return isnan(d) || d < 0.0 ? QES_EINVAL : 0;
}

int qes_freqresp_create(const double *f_hz, const double *gain_rel, const double *u_gain_rel,
                        const double *phase_rad, const double *u_phase_rad, size_t n, double dof,
                        struct qes_freqresp **out)
{
    if (!out)
        return QES_EINVAL;
    *out = NULL;
    if (!f_hz || !gain_rel || !u_gain_rel || !phase_rad || !u_phase_rad || n == 0 ||
        n > SIZE_MAX / (5 * sizeof(double)) || check_dof(dof))
        return QES_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(f_hz[i]) || f_hz[i] < 0.0 || (i > 0 && !(f_hz[i] > f_hz[i - 1])))
            return QES_EINVAL;
        if (!isfinite(gain_rel[i]) || !(gain_rel[i] > 0.0))
            return QES_EINVAL;
        if (!isfinite(u_gain_rel[i]) || u_gain_rel[i] < 0.0)
            return QES_EINVAL;
        if (!(fabs(phase_rad[i]) <= qes__pi_c))
            return QES_EINVAL;
        if (!isfinite(u_phase_rad[i]) || u_phase_rad[i] < 0.0)
            return QES_EINVAL;
    }
    struct qes_freqresp *fr = calloc(1, sizeof *fr);
    if (!fr)
        return QES_ENOMEM;
    fr->f = malloc(5 * n * sizeof *fr->f);
    if (!fr->f) {
        free(fr);
        return QES_ENOMEM;
    }
    fr->n = n;
    fr->dof = dof_or_inf(dof);
    fr->g = fr->f + n;
    fr->ug = fr->g + n;
    fr->ph = fr->ug + n;
    fr->uph = fr->ph + n;
    memcpy(fr->f, f_hz, n * sizeof *f_hz);
    memcpy(fr->g, gain_rel, n * sizeof *f_hz);
    memcpy(fr->ug, u_gain_rel, n * sizeof *f_hz);
    memcpy(fr->ph, phase_rad, n * sizeof *f_hz);
    memcpy(fr->uph, u_phase_rad, n * sizeof *f_hz);
    *out = fr;
    return 0;
}

void qes_freqresp_destroy(struct qes_freqresp *fr)
{
    if (!fr)
        return;
    free(fr->f);
    free(fr);
}

static struct qes_freqresp *freqresp_clone(const struct qes_freqresp *fr)
{
    struct qes_freqresp *c = NULL;
    if (qes_freqresp_create(fr->f, fr->g, fr->ug, fr->ph, fr->uph, fr->n, fr->dof, &c))
        return NULL;
    return c;
}

int qes_freqresp_eval(const struct qes_freqresp *fr, double f_hz, double *gain_rel,
                      double *u_gain_rel, double *phase_rad, double *u_phase_rad)
{
    if (!fr || !isfinite(f_hz))
        return QES_EINVAL;
    const size_t n = fr->n;
    if (f_hz < fr->f[0] || f_hz > fr->f[n - 1])
        return QES_ERANGE;
    /* the last point with f_i <= f (binary search) */
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo + 1) / 2;
        if (fr->f[mid] <= f_hz)
            lo = mid;
        else
            hi = mid - 1;
    }
    double v[4];
    const double *col[4] = {fr->g, fr->ug, fr->ph, fr->uph};
    if (fr->f[lo] == f_hz || lo == n - 1) {
        for (int k = 0; k < 4; k++)
            v[k] = col[k][lo];
    } else {
        const double t = (f_hz - fr->f[lo]) / (fr->f[lo + 1] - fr->f[lo]);
        for (int k = 0; k < 4; k++)
            v[k] = col[k][lo] + t * (col[k][lo + 1] - col[k][lo]);
    }
    if (gain_rel)
        *gain_rel = v[0];
    if (u_gain_rel)
        *u_gain_rel = v[1];
    if (phase_rad)
        *phase_rad = v[2];
    if (u_phase_rad)
        *u_phase_rad = v[3];
    return 0;
}

/* ------------------------------------------------------------------------ */
/* ln sinc and its derivatives, |a| < pi                                     */

static double sinc(double a)
{
    return a == 0.0 ? 1.0 : sin(a) / a;
}

/* d/da ln sinc(a) = cot a - 1/a; series below 1e-2 (cancellation) */
static double lnsinc_d1(double a)
{
    if (fabs(a) < 1e-2) {
        const double a2 = a * a;
        return -a * (1.0 / 3.0 + a2 * (1.0 / 45.0 + a2 * (2.0 / 945.0 + a2 / 4725.0)));
    }
    return cos(a) / sin(a) - 1.0 / a;
}

/* d2/da2 ln sinc(a) = 1/a^2 - 1/sin^2 a */
static double lnsinc_d2(double a)
{
    if (fabs(a) < 1e-2) {
        const double a2 = a * a;
        return -(1.0 / 3.0 + a2 * (1.0 / 15.0 + a2 * (2.0 / 189.0 + a2 / 675.0)));
    }
    const double s = sin(a);
    return 1.0 / (a * a) - 1.0 / (s * s);
}

/* Relative u of a magnitude ln|H|(q) from u(q): first order plus the
 * second-order term of GUM 5.1.2 note, sqrt(g1^2 u^2 + g2^2 u^4 / 2). */
static double second_order_u(double g1, double g2, double u)
{
    const double a = g1 * u, b = g2 * u * u;
    return sqrt(a * a + 0.5 * b * b);
}

/* ------------------------------------------------------------------------ */
/* Chain                                                                     */

static int check_qty(const struct qes_calib_qty *q)
{
    if (!isfinite(q->value) || !isfinite(q->u) || q->u < 0.0)
        return QES_EINVAL;
    return check_dof(q->dof);
}

int qes_calib_create(const struct qes_calib_desc *d, struct qes_calib **out)
{
    if (!out)
        return QES_EINVAL;
    *out = NULL;
    if (!d)
        return QES_EINVAL;
    const struct qes_calib_qty *qs[] = {&d->gain, &d->offset, &d->aperture_s, &d->timebase_rel,
                                        &d->delay_s};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++)
        if (check_qty(qs[i]))
            return QES_EINVAL;
    if (d->aperture_s.value < 0.0 || !(fabs(d->timebase_rel.value) < 1e-2))
        return QES_EINVAL;
    if (!(d->record_start_s >= 0.0) || !isfinite(d->record_start_s) || !(d->record_span_s >= 0.0) ||
        !isfinite(d->record_span_s))
        return QES_EINVAL;
    if (d->aperture_ref != QES_APERTURE_CENTRED && d->aperture_ref != QES_APERTURE_ENDS &&
        d->aperture_ref != QES_APERTURE_STARTS)
        return QES_EINVAL;
    struct qes_calib *c = calloc(1, sizeof *c);
    if (!c)
        return QES_ENOMEM;
    c->d = *d;
    c->d.fr = NULL;
    if (c->d.gain.value == 0.0)
        c->d.gain.value = 1.0;
    if (d->fr) {
        c->fr = freqresp_clone(d->fr);
        if (!c->fr) {
            free(c);
            return QES_ENOMEM;
        }
    }
    *out = c;
    return 0;
}

void qes_calib_destroy(struct qes_calib *c)
{
    if (!c)
        return;
    qes_freqresp_destroy(c->fr);
    free(c);
}

static void add_term(struct qes_calib_result *r, const char *name, double u_r_rel, double u_phase,
                     double dof)
{
    struct qes_calib_term *t = &r->terms[r->n_terms++];
    t->name = name;
    t->u_r = u_r_rel; /* scaled by r once the corrected phasor is known */
    t->u_phase_rad = u_phase;
    t->dof = dof;
}

int qes_calib_apply(const struct qes_calib *c, double f_hz, double x, double y,
                    struct qes_calib_result *out)
{
    if (!c || !out || !isfinite(f_hz) || f_hz < 0.0 || !isfinite(x) || !isfinite(y))
        return QES_EINVAL;
    if (f_hz == 0.0 && y != 0.0)
        return QES_EINVAL;
    const struct qes_calib_desc *d = &c->d;
    struct qes_calib_result r;
    memset(&r, 0, sizeof r);
    /* ln of the total response: ln|H| and arg H, summed over the terms */
    double lnmag = 0.0, arg = 0.0;

    add_term(&r, "gain", d->gain.u, 0.0, dof_or_inf(d->gain.dof));
    const size_t i_offset = r.n_terms;
    if (f_hz == 0.0)
        add_term(&r, "offset", 0.0, 0.0, dof_or_inf(d->offset.dof)); /* absolute, below */

    if (c->fr) {
        double g, ug, ph, uph;
        const int rc = qes_freqresp_eval(c->fr, f_hz, &g, &ug, &ph, &uph);
        if (rc)
            return rc;
        lnmag += log(g);
        arg += ph;
        add_term(&r, "freqresp", ug / g, uph, c->fr->dof);
    }

    const double ta = d->aperture_s.value, u_ta = d->aperture_s.u;
    if (ta > 0.0 || u_ta > 0.0) {
        if (!(f_hz * ta < 1.0))
            return QES_ERANGE;
        const double w = qes__pi_c * f_hz; /* d a / d t_a */
        const double a = w * ta;
        lnmag += log(sinc(a));
        double u_ph = 0.0;
        if (d->aperture_ref == QES_APERTURE_ENDS) {
            arg -= a;
            u_ph = w * u_ta;
        } else if (d->aperture_ref == QES_APERTURE_STARTS) {
            arg += a;
            u_ph = w * u_ta;
        }
        const double u_rel = second_order_u(lnsinc_d1(a) * w, lnsinc_d2(a) * w * w, u_ta);
        add_term(&r, "aperture", u_rel, u_ph, dof_or_inf(d->aperture_s.dof));
    }

    const double yv = d->timebase_rel.value, u_y = d->timebase_rel.u;
    if (yv != 0.0 || u_y > 0.0) {
        const double t0 = d->record_start_s, T = d->record_span_s;
        const double q = 1.0 + yv;
        const double df = -f_hz * yv / q;
        const double ddf = -f_hz / (q * q);           /* d df / dy */
        const double d2df = 2.0 * f_hz / (q * q * q); /* d2 df / dy2 */
        const double a = qes__pi_c * T * df;
        if (!(fabs(a) < qes__pi_c))
            return QES_ERANGE;
        lnmag += log(sinc(a));
        arg += qes__pi_c * df * (2.0 * t0 + T);
        const double a1 = qes__pi_c * T * ddf, a2 = qes__pi_c * T * d2df;
        const double g1 = lnsinc_d1(a) * a1;
        const double g2 = lnsinc_d2(a) * a1 * a1 + lnsinc_d1(a) * a2;
        const double u_ph = fabs(qes__pi_c * (2.0 * t0 + T) * ddf) * u_y;
        add_term(&r, "timebase", second_order_u(g1, g2, u_y), u_ph,
                 dof_or_inf(d->timebase_rel.dof));
    }

    const double tau = d->delay_s.value, u_tau = d->delay_s.u;
    if (tau != 0.0 || u_tau > 0.0) {
        arg -= 2.0 * qes__pi_c * f_hz * tau;
        add_term(&r, "delay", 0.0, 2.0 * qes__pi_c * f_hz * u_tau, dof_or_inf(d->delay_s.dof));
    }

    /* P = gain P_m / H: multiply by gain e^{-lnmag} e^{-i arg} */
    const double m = d->gain.value * exp(-lnmag);
    const double cs = cos(arg), sn = sin(arg);
    double px = m * (x * cs + y * sn);
    double py = m * (y * cs - x * sn);
    if (f_hz == 0.0) {
        px += d->offset.value;
        py = 0.0;
    }
    r.x = px;
    r.y = py;
    r.r = hypot(px, py);
    r.phase_rad = atan2(py, px);
    if (r.phase_rad == -qes__pi_c)
        r.phase_rad = qes__pi_c;

    /* relative magnitude terms -> absolute; the offset is absolute */
    struct qes_budget_term bt[QES_CALIB_MAX_TERMS];
    double ur2 = 0.0, up2 = 0.0;
    for (size_t i = 0; i < r.n_terms; i++) {
        struct qes_calib_term *t = &r.terms[i];
        if (f_hz == 0.0 && i == i_offset)
            t->u_r = d->offset.u;
        else
            t->u_r *= r.r;
        ur2 += t->u_r * t->u_r;
        up2 += t->u_phase_rad * t->u_phase_rad;
        bt[i].name = t->name;
        bt[i].u = t->u_r;
        bt[i].dof = t->dof;
    }
    r.u_r = sqrt(ur2);
    r.u_phase_rad = sqrt(up2);
    r.dof_r = qes_ws_dof(bt, r.n_terms);
    /* (x, y) = r (cos phi, sin phi): cov = R diag(u_r^2, r^2 u_phi^2) R^T */
    const double c1 = r.r > 0.0 ? px / r.r : 1.0, s1 = r.r > 0.0 ? py / r.r : 0.0;
    const double vr = ur2, vt = r.r * r.r * up2;
    r.cov_xy[0] = c1 * c1 * vr + s1 * s1 * vt;
    r.cov_xy[1] = c1 * s1 * (vr - vt);
    r.cov_xy[2] = s1 * s1 * vr + c1 * c1 * vt;
    *out = r;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Complex ratio                                                             */

static int check_cov(const double *cov, size_t n)
{
    if (!cov)
        return QES_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!(cov[i * n + i] >= 0.0) || !isfinite(cov[i * n + i]))
            return QES_EINVAL;
        for (size_t j = 0; j < i; j++) {
            const double a = cov[i * n + j], b = cov[j * n + i];
            if (!isfinite(a) || !isfinite(b))
                return QES_EINVAL;
            if (fabs(a - b) > 1e-9 * sqrt(cov[i * n + i] * cov[j * n + j]))
                return QES_EINVAL;
        }
    }
    return 0;
}

/* out = J C J^T for a 4 x 4 J and C */
static void sandwich4(const double *J, const double *C, double *out)
{
    double JC[16];
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) {
            double s = 0.0;
            for (int i = 0; i < 4; i++)
                s += J[k * 4 + i] * C[i * 4 + j];
            JC[k * 4 + j] = s;
        }
    for (int k = 0; k < 4; k++)
        for (int l = 0; l <= k; l++) {
            double s = 0.0;
            for (int j = 0; j < 4; j++)
                s += JC[k * 4 + j] * J[l * 4 + j];
            out[k * 4 + l] = out[l * 4 + k] = s;
        }
}

static void cratio_fill_u(struct qes_cratio *z)
{
    for (int k = 0; k < 4; k++)
        if (z->cov[k * 5] < 0.0)
            z->cov[k * 5] = 0.0;
    z->u_re = sqrt(z->cov[0]);
    z->u_im = sqrt(z->cov[5]);
    z->u_abs = sqrt(z->cov[10]);
    z->u_arg = sqrt(z->cov[15]);
}

int qes_cratio_compute(double x1, double y1, double x2, double y2, const double *cov4,
                       struct qes_cratio *out)
{
    if (!out || !isfinite(x1) || !isfinite(y1) || !isfinite(x2) || !isfinite(y2))
        return QES_EINVAL;
    if ((x1 == 0.0 && y1 == 0.0) || (x2 == 0.0 && y2 == 0.0) || check_cov(cov4, 4))
        return QES_EINVAL;
    /* 1/P2 and Z = P1/P2 with the scaling of hypot to avoid overflow */
    const double s2 = fmax(fabs(x2), fabs(y2));
    const double a2 = x2 / s2, b2 = y2 / s2, m2 = a2 * a2 + b2 * b2;
    const double ir = a2 / (m2 * s2), ii = -b2 / (m2 * s2); /* 1/P2 */
    const double zr = x1 * ir - y1 * ii, zi = x1 * ii + y1 * ir;
    const double br = -(zr * ir - zi * ii), bi = -(zr * ii + zi * ir); /* -Z/P2 */
    const double za = hypot(zr, zi);
    if (!(za > 0.0) || !isfinite(za))
        return QES_EINVAL;
    double J[16] = {
            ir, -ii, br, -bi, /* d Re Z */
            ii, ir,  bi, br,  /* d Im Z */
    };
    for (int j = 0; j < 4; j++) {
        J[8 + j] = (zr * J[j] + zi * J[4 + j]) / za;         /* d|Z| */
        J[12 + j] = (zr * J[4 + j] - zi * J[j]) / (za * za); /* d arg Z */
    }
    struct qes_cratio z;
    z.re = zr;
    z.im = zi;
    z.abs = za;
    z.arg = atan2(zi, zr);
    if (z.arg == -qes__pi_c)
        z.arg = qes__pi_c;
    double C[16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            C[i * 4 + j] = 0.5 * (cov4[i * 4 + j] + cov4[j * 4 + i]);
    sandwich4(J, C, z.cov);
    cratio_fill_u(&z);
    *out = z;
    return 0;
}

int qes_cratio_scale(const struct qes_cratio *in, double s, double u_s, struct qes_cratio *out)
{
    if (!in || !out || !isfinite(s) || !(s > 0.0) || !isfinite(u_s) || u_s < 0.0)
        return QES_EINVAL;
    const struct qes_cratio z = *in;
    const double v[4] = {z.re, z.im, z.abs, 0.0};
    const double sc[4] = {s, s, s, 1.0};
    struct qes_cratio w = z;
    w.re = s * z.re;
    w.im = s * z.im;
    w.abs = s * z.abs;
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 4; l++)
            w.cov[k * 4 + l] = sc[k] * sc[l] * z.cov[k * 4 + l] + u_s * u_s * v[k] * v[l];
    cratio_fill_u(&w);
    *out = w;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Quantum references                                                        */

int qes_pjvs_voltage(long n, double f_j_hz, double u_fj_rel, double *v_v, double *u_v)
{
    if (!v_v || !isfinite(f_j_hz) || !(f_j_hz > 0.0) || !isfinite(u_fj_rel) || u_fj_rel < 0.0)
        return QES_EINVAL;
    const double v = (double)qes_si_josephson_v((long double)n, (long double)f_j_hz);
    *v_v = v;
    if (u_v)
        *u_v = fabs(v) * u_fj_rel;
    return 0;
}

int qes_qhr_resistance(int i, double *r_ohm)
{
    if (!r_ohm || i < 1)
        return QES_EINVAL;
    *r_ohm = (double)(qes_si_rk_ohm() / (long double)i);
    return 0;
}
