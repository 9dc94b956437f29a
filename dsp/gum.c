/*
 * GUM helpers (see gum.h): Student-t distribution and quantiles, normal
 * quantile, Welch-Satterthwaite, Welford accumulation of phasors and their
 * summary with an uncertainty budget.
 */
#include "dsp/gum.h"

#include "common/err.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

static const double qes__sqrt1_2 = 0.70710678118654752440084436210485;
static const double qes__sqrt_2pi = 2.5066282746310005024157652848110;
static const double qes__log_sqrt_pi = 0.57236494292470008707171367567653; /* ln sqrt(pi) */
static const double qes__pi = 3.1415926535897932384626433832795;

/* ------------------------------------------------------------------------ */
/* Incomplete beta function                                                  */

/*
 * Continued fraction of the incomplete beta function, evaluated by the
 * modified Lentz method (Numerical Recipes, 2nd ed., sec. 6.4 and 5.2).  It
 * converges quickly for x < (a + 1) / (a + b + 2); the caller swaps the
 * arguments otherwise.  The iteration cap only guards against a runaway loop:
 * for the t distribution the count grows about like sqrt(max(a, b)).
 */
static double betacf(double a, double b, double x)
{
    const double tiny = 1e-300;
    const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
    double c = 1.0;
    double d = 1.0 - qab * x / qap;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 1000000; m++) {
        const double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        const double del = d * c;
        h *= del;
        if (fabs(del - 1.0) <= DBL_EPSILON)
            break;
    }
    return h;
}

/*
 * Regularized incomplete beta I_x(a, b) and its complement 1 - I_x(a, b).
 * The caller passes x and y = 1 - x, and their logarithms, each computed
 * without cancellation, plus ln B(a, b).  Whichever of the pair comes out of
 * the continued fraction directly is accurate to a few ulp relative; the
 * other is 1 minus it (accurate in absolute terms).
 */
static void betai_pair(double a, double b, double x, double y, double lx, double ly, double lbeta,
                       double *ix, double *ixc)
{
    if (x <= 0.0) {
        *ix = 0.0;
        *ixc = 1.0;
        return;
    }
    if (y <= 0.0) {
        *ix = 1.0;
        *ixc = 0.0;
        return;
    }
    const double front = exp(a * lx + b * ly - lbeta);
    if (x < (a + 1.0) / (a + b + 2.0)) {
        *ix = front * betacf(a, b, x) / a;
        *ixc = 1.0 - *ix;
    } else {
        *ixc = front * betacf(b, a, y) / b;
        *ix = 1.0 - *ixc;
    }
}

/*
 * ln Gamma(a + 1/2) - ln Gamma(a).  For large a the difference of two
 * lgamma values of size a ln a would lose about log10(a ln a) digits, so it
 * is taken from the Stirling series instead:
 *   ln Gamma(z) = (z - 1/2) ln z - z + ln sqrt(2 pi) + S(z),
 *   S(z) = sum_k B_2k / (2k (2k - 1) z^(2k - 1)),
 * which gives a ln(1 + 1/(2a)) + ln(a)/2 - 1/2 + S(a + 1/2) - S(a).  Eight
 * terms of S at z >= 10 leave a truncation error below 1e-18.
 */
static double stirling_s(double z)
{
    static const double coef[] = {
            1.0 / 12.0,   -1.0 / 360.0,      1.0 / 1260.0, -1.0 / 1680.0,
            1.0 / 1188.0, -691.0 / 360360.0, 1.0 / 156.0,  -3617.0 / 122400.0,
    };
    const double iz = 1.0 / z, iz2 = iz * iz;
    double s = 0.0;
    for (int k = (int)(sizeof coef / sizeof coef[0]) - 1; k >= 0; k--)
        s = s * iz2 + coef[k];
    return s * iz;
}

static double lgamma_half_step(double a)
{
    if (a < 10.0)
        return lgamma(a + 0.5) - lgamma(a);
    return a * log1p(0.5 / a) - 0.5 + 0.5 * log(a) + (stirling_s(a + 0.5) - stirling_s(a));
}

/* ln B(nu/2, 1/2) = ln Gamma(nu/2) + ln sqrt(pi) - ln Gamma(nu/2 + 1/2). */
static double lbeta_t(double nu)
{
    return qes__log_sqrt_pi - lgamma_half_step(0.5 * nu);
}

/*
 * Large nu.  The continued fraction for I_x(nu/2, 1/2) with x near 1 is
 * ill-conditioned (1 + aa d with aa near -1): measured against 40-digit
 * references it loses 1e-13 relative at nu = 1e4, 1e-11 at 1e6, 1e-8 at
 * 1e10.  There the Cornish-Fisher expansion of the t quantile in terms of the
 * normal one (Abramowitz and Stegun 26.7.5) is used instead,
 *   t = z + g1(z)/nu + g2(z)/nu^2 + g3(z)/nu^3 + g4(z)/nu^4,
 * inverted for z by Newton, P(|T| > t) = erfc(z / sqrt 2).  Measured against
 * the same references, the truncation error stays below 3e-15 relative on the
 * tail probability while t^2 <= 2.5e-3 nu (for nu >= 1000); outside that
 * region the continued fraction is used, which there is within 6e-14.
 */
#define QES__T_ASYM_NU_MIN 1000.0
#define QES__T_ASYM_T2_NU  2.5e-3

static double cf_t_of_z(double z, double inu, double *dt_dz)
{
    const double z2 = z * z;
    const double g1 = z * (z2 + 1.0) / 4.0;
    const double g2 = z * ((5.0 * z2 + 16.0) * z2 + 3.0) / 96.0;
    const double g3 = z * (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) / 384.0;
    const double g4 =
            z * ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) / 92160.0;
    const double d1 = (3.0 * z2 + 1.0) / 4.0;
    const double d2 = ((25.0 * z2 + 48.0) * z2 + 3.0) / 96.0;
    const double d3 = (((21.0 * z2 + 95.0) * z2 + 51.0) * z2 - 15.0) / 384.0;
    const double d4 =
            ((((711.0 * z2 + 5432.0) * z2 + 7410.0) * z2 - 5760.0) * z2 - 945.0) / 92160.0;
    *dt_dz = 1.0 + inu * (d1 + inu * (d2 + inu * (d3 + inu * d4)));
    return z + inu * (g1 + inu * (g2 + inu * (g3 + inu * g4)));
}

/* z such that the expansion gives t; t >= 0, t^2 <= 2.5e-3 nu. */
static double cf_z_of_t(double t, double nu)
{
    const double inu = 1.0 / nu;
    double z = t - t * (t * t + 1.0) / 4.0 * inu;
    /* t(z) is smooth and its slope within 1e-2 of 1 here: Newton converges
     * quadratically from a start within 1e-5 relative, in 2-3 steps. */
    for (int it = 0; it < 8; it++) {
        double d;
        const double step = (cf_t_of_z(z, inu, &d) - t) / d;
        z -= step;
        if (fabs(step) <= 0.5 * DBL_EPSILON * z)
            break;
    }
    return z;
}

/*
 * Student t, t >= 0: central = P(|T| <= t), tail = P(|T| > t), and the
 * density f(t).  nu finite > 0, or INFINITY for the normal distribution.
 *   P(|T| > t) = I_x(nu/2, 1/2),  x = nu / (nu + t^2)
 *   P(|T| <= t) = I_y(1/2, nu/2), y = t^2 / (nu + t^2)
 *   f(t) = (1 + t^2/nu)^(-(nu+1)/2) / (sqrt(nu) B(nu/2, 1/2))
 */
static void t_abs(double t, double nu, double *central, double *tail, double *pdf)
{
    if (isinf(nu)) {
        const double z = t * qes__sqrt1_2;
        *central = erf(z);
        *tail = erfc(z);
        if (pdf)
            *pdf = exp(-0.5 * t * t) / qes__sqrt_2pi;
        return;
    }
    const double lb = lbeta_t(nu);
    if (t == 0.0) {
        *central = 0.0;
        *tail = 1.0;
    } else if (isinf(t)) {
        *central = 1.0;
        *tail = 0.0;
    } else if (nu >= QES__T_ASYM_NU_MIN && t * t <= QES__T_ASYM_T2_NU * nu) {
        const double z = cf_z_of_t(t, nu) * qes__sqrt1_2;
        *central = erf(z);
        *tail = erfc(z);
    } else if (t * t < nu * DBL_EPSILON) {
        /* P(|T| <= t) = 2 t f(0) (1 - (nu + 1) t^2 / (6 nu) + ...): the
         * correction is below 1 ulp here, and t^2 may have underflowed.
         * (Large nu takes the branch above: ln f(0) would cancel.) */
        *central = 2.0 * t * exp(-0.5 * log(nu) - lb);
        *tail = 1.0 - *central;
    } else {
        const double t2 = t * t;
        const double x = nu / (nu + t2), y = t2 / (nu + t2);
        const double lx = -log1p(t2 / nu), ly = -log1p(nu / t2);
        betai_pair(0.5 * nu, 0.5, x, y, lx, ly, lb, tail, central);
    }
    if (pdf)
        *pdf = exp(-0.5 * (nu + 1.0) * log1p(t * t / nu) - 0.5 * log(nu) - lb);
}

double qes_t_cdf(double t, double dof)
{
    if (isnan(t) || isnan(dof) || !(dof > 0.0))
        return NAN;
    double central, tail;
    t_abs(fabs(t), dof, &central, &tail, NULL);
    /* Keep the small side directly: 0.5 tail for t < 0 is relative-accurate. */
    if (t < 0.0)
        return 0.5 * tail;
    return tail < central ? 1.0 - 0.5 * tail : 0.5 + 0.5 * central;
}

/* ------------------------------------------------------------------------ */
/* Normal quantile                                                           */

/*
 * Lower-half quantile, p in (0, 0.5]: P. J. Acklam's rational approximation
 * (relative error < 1.15e-9), then Halley steps on Phi(x) - p with Phi from
 * erfc, which is relative-accurate in the lower tail.  Each Halley step
 * triples the number of correct digits, so two reach the accuracy of erfc.
 */
static double nq_lower(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    const double p_low = 0.02425;
    double x;
    if (p < p_low) {
        const double q = sqrt(-2.0 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    } else {
        const double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
    }
    for (int it = 0; it < 2; it++) {
        const double e = 0.5 * erfc(-x * qes__sqrt1_2) - p;
        const double u = e * qes__sqrt_2pi * exp(0.5 * x * x);
        const double step = u / (1.0 + 0.5 * x * u);
        /* Deep in the tail (p < ~1e-300) Phi underflows: keep Acklam's value. */
        if (!isfinite(step))
            break;
        x -= step;
    }
    return x;
}

double qes_normal_quantile(double p)
{
    if (!(p > 0.0 && p < 1.0))
        return NAN;
    if (p == 0.5)
        return 0.0;
    /* For p > 1/2, 1 - p is exact (Sterbenz), and the lower-tail form keeps
     * the relative accuracy of the small tail probability. */
    if (p > 0.5)
        return -nq_lower(1.0 - p);
    return nq_lower(p);
}

/* ------------------------------------------------------------------------ */
/* Coverage factor                                                           */

double qes_coverage_factor(double p, double dof)
{
    if (!(p > 0.0 && p < 1.0) || isnan(dof) || !(dof >= 1.0))
        return NAN;
    /*
     * Solve P(|T| <= k) = p.  For p >= 1/2 the equation is posed on the tail,
     * P(|T| > k) = 1 - p (1 - p exact), otherwise on the central probability,
     * so that the target is always the small, relative-accurate side.
     */
    const bool on_tail = p >= 0.5;
    const double target = on_tail ? 1.0 - p : p;

    /*
     * Start: normal quantile with the first two Cornish-Fisher terms.  For
     * small p, 0.5 + p/2 would round p away: use P(|Z| <= z) = z sqrt(2/pi)
     * (1 - z^2/6 + ...) instead, so that the start is within ~1 % of the
     * root even for p = 1e-300 (bisection alone could not get there).
     */
    const double z = on_tail    ? -qes_normal_quantile(0.5 * target)
                     : p < 1e-3 ? p * 1.2533141373155002512 /* sqrt(pi/2) */
                                : qes_normal_quantile(0.5 + 0.5 * p);
    double k = z;
    if (isfinite(dof)) {
        const double z2 = z * z;
        k = z + z * (z2 + 1.0) / (4.0 * dof) +
            z * ((5.0 * z2 + 16.0) * z2 + 3.0) / (96.0 * dof * dof);
    }

    /* g(k) = central(k) - p, increasing in k; sign from the posed side. */
#define QES__G(central, tail) (on_tail ? target - (tail) : (central)-target)
    double central, tail, pdf;
    /* Bracket [lo, hi] with g(lo) < 0 <= g(hi): lo = 0 (g(0) = -p), hi just
     * above the start and doubled as needed (nu = 1 and p near 1 need up to
     * ~2^53). */
    double lo = 0.0, hi = k > 0.0 ? 1.01 * k : 1.0;
    for (int it = 0; it < 2100; it++) {
        t_abs(hi, dof, &central, &tail, NULL);
        if (QES__G(central, tail) >= 0.0)
            break;
        lo = hi;
        hi *= 2.0;
    }
    if (!(k > lo && k < hi))
        k = 0.5 * (lo + hi);

    /*
     * Safeguarded Newton (rtsafe): Newton steps on g with g' = 2 f(k), a
     * bisection step whenever Newton would leave the bracket [lo, hi], which
     * shrinks at every evaluation.  Stops when the step is below 2 ulp of k
     * or the bracket has collapsed.
     */
    for (int it = 0; it < 300; it++) {
        t_abs(k, dof, &central, &tail, &pdf);
        const double g = QES__G(central, tail);
        if (g == 0.0)
            return k;
        if (g < 0.0)
            lo = k;
        else
            hi = k;
        double kn = k - g / (2.0 * pdf);
        if (!(kn > lo && kn < hi))
            kn = 0.5 * (lo + hi);
        if (fabs(kn - k) <= 2.0 * DBL_EPSILON * kn || hi - lo <= 2.0 * DBL_EPSILON * hi)
            return kn;
        k = kn;
    }
#undef QES__G
    return k;
}

/* ------------------------------------------------------------------------ */
/* Welch-Satterthwaite                                                       */

double qes_ws_dof(const struct qes_budget_term *terms, size_t n)
{
    if (!terms && n > 0)
        return NAN;
    double umax = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double u = terms[i].u;
        if (u == 0.0)
            continue;
        if (!(u > 0.0) || !isfinite(u) || isnan(terms[i].dof) || !(terms[i].dof > 0.0))
            return NAN;
        umax = fmax(umax, u);
    }
    if (umax == 0.0)
        return INFINITY;
    /* Work with u_i / max u, and sum ((u_i / u_c)^2)^2 / nu_i = 1 / nu_eff,
     * so that neither u^2 nor u^4 can overflow or underflow, whatever the
     * unit. */
    double uc2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double v = terms[i].u / umax;
        uc2 += v * v;
    }
    double den = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double v = terms[i].u / umax;
        if (v == 0.0 || isinf(terms[i].dof))
            continue;
        const double f = v * v / uc2;
        den += f * f / terms[i].dof;
    }
    if (den == 0.0)
        return INFINITY;
    const double nu = 1.0 / den;
    /*
     * Truncate down (GUM G.4.1), but not below a value that is an integer in
     * exact arithmetic: the computed nu carries a relative rounding error of
     * at most about (3n + 8) u (scaling, u_c^2 sum, squares, n-term sum,
     * inverse), so nu is raised by (4n + 8) eps = (8n + 16) u before the
     * floor.  Three equal terms of 2 dof, for example, must give 6, not 5.
     */
    const double guard = (4.0 * (double)n + 8.0) * DBL_EPSILON;
    return floor(nu * (1.0 + guard));
}

/* ------------------------------------------------------------------------ */
/* Welford accumulator and summary                                           */

void qes_phasor_acc_reset(struct qes_phasor_acc *acc)
{
    if (!acc)
        return;
    acc->n = 0;
    acc->mean_x = acc->mean_y = 0.0;
    acc->m2_xx = acc->m2_yy = acc->m2_xy = 0.0;
}

void qes_phasor_acc_add(struct qes_phasor_acc *acc, double x, double y)
{
    if (!acc)
        return;
    acc->n++;
    const double inv_n = 1.0 / (double)acc->n;
    const double dx = x - acc->mean_x, dy = y - acc->mean_y;
    acc->mean_x += dx * inv_n;
    acc->mean_y += dy * inv_n;
    /* Old deviation times new deviation: the exact Welford update (also for
     * the cross term, which uses one of each). */
    const double ex = x - acc->mean_x, ey = y - acc->mean_y;
    acc->m2_xx += dx * ex;
    acc->m2_yy += dy * ey;
    acc->m2_xy += dx * ey;
}

int qes_phasor_summarize(const struct qes_phasor_acc *acc, double u_gain_rel, double coverage,
                         struct qes_phasor_summary *out)
{
    if (!acc || !out || acc->n == 0)
        return QES_EINVAL;
    if (!(coverage > 0.0 && coverage < 1.0) || !(u_gain_rel >= 0.0) || !isfinite(u_gain_rel))
        return QES_EINVAL;

    struct qes_phasor_summary s = {0};
    s.n = acc->n;
    s.coverage = coverage;
    s.x = acc->mean_x;
    s.y = acc->mean_y;
    s.r = hypot(s.x, s.y);
    /* atan2 gives -pi for (-x, -0.0) and +-0 at the origin: normalise both. */
    if (s.r == 0.0) {
        s.phase_rad = 0.0;
    } else {
        s.phase_rad = atan2(s.y, s.x);
        if (s.phase_rad == -qes__pi)
            s.phase_rad = qes__pi;
    }

    const double ug_x = u_gain_rel * fabs(s.x);
    const double ug_y = u_gain_rel * fabs(s.y);
    const double ug_r = u_gain_rel * s.r;

    s.n_budget = 2;
    s.budget[0].name = "typeA";
    s.budget[1].name = "gain";
    s.budget[1].u = ug_r;
    s.budget[1].dof = INFINITY;

    if (acc->n < 2) {
        s.u_x = s.u_y = s.u_r = s.u_phase_rad = NAN;
        s.dof = s.k = s.U_r = NAN;
        s.budget[0].u = NAN;
        s.budget[0].dof = 0.0;
        *out = s;
        return 0;
    }

    const double n = (double)acc->n;
    /* Variances and covariance of the mean: s^2 / n with s^2 = m2 / (n - 1). */
    const double vxx = acc->m2_xx / (n - 1.0) / n;
    const double vyy = acc->m2_yy / (n - 1.0) / n;
    const double vxy = acc->m2_xy / (n - 1.0) / n;

    double ua_r2, ua_p2;
    if (s.r > 0.0) {
        /* Propagation through r = |z|, phi = arg z with c = x/r, sn = y/r:
         * dr = c dx + sn dy, r dphi = -sn dx + c dy. */
        const double c = s.x / s.r, sn = s.y / s.r;
        ua_r2 = c * c * vxx + sn * sn * vyy + 2.0 * c * sn * vxy;
        ua_p2 = (sn * sn * vxx + c * c * vyy - 2.0 * c * sn * vxy) / (s.r * s.r);
        /* Quadratic forms of a positive semi-definite matrix: a negative value
         * can only be rounding. */
        ua_r2 = fmax(ua_r2, 0.0);
        ua_p2 = fmax(ua_p2, 0.0);
    } else {
        /* r = 0: phase undefined; r's scatter is that of |z| about 0, not
         * linearisable.  Take the larger axis as a bound for u_r. */
        ua_r2 = fmax(vxx, vyy);
        ua_p2 = NAN;
    }
    const double ua_r = sqrt(ua_r2);

    s.u_x = hypot(sqrt(vxx), ug_x);
    s.u_y = hypot(sqrt(vyy), ug_y);
    s.u_r = hypot(ua_r, ug_r);
    s.u_phase_rad = sqrt(ua_p2); /* a real gain does not move the phase */

    s.budget[0].u = ua_r;
    s.budget[0].dof = n - 1.0;
    s.dof = qes_ws_dof(s.budget, s.n_budget);
    s.k = qes_coverage_factor(coverage, s.dof);
    s.U_r = s.k * s.u_r;
    *out = s;
    return 0;
}

void qes_scalar_acc_reset(struct qes_scalar_acc *acc)
{
    acc->n = 0;
    acc->mean = 0;
    acc->m2 = 0;
}

void qes_scalar_acc_add(struct qes_scalar_acc *acc, double v)
{
    acc->n++;
    double d = v - acc->mean;
    acc->mean += d / (double)acc->n;
    acc->m2 += d * (v - acc->mean);
}

int qes_scalar_summarize(const struct qes_scalar_acc *acc, const char *b_name, double u_rel_b,
                         double coverage, struct qes_scalar_summary *out)
{
    if (!acc || !out || acc->n == 0 || !(coverage > 0 && coverage < 1) || !(u_rel_b >= 0))
        return QES_EINVAL;
    memset(out, 0, sizeof *out);
    out->n = acc->n;
    out->value = acc->mean;
    out->coverage = coverage;
    double ua = acc->n > 1 ? sqrt(acc->m2 / (double)(acc->n - 1) / (double)acc->n) : NAN;
    out->budget[out->n_budget++] = (struct qes_budget_term){"typeA", ua, (double)acc->n - 1};
    double ub = 0;
    if (b_name) {
        ub = u_rel_b * fabs(acc->mean);
        out->budget[out->n_budget++] = (struct qes_budget_term){b_name, ub, INFINITY};
    }
    if (acc->n < 2) {
        out->u = out->dof = out->k = out->U = NAN;
        return 0;
    }
    out->u = sqrt(ua * ua + ub * ub);
    out->dof = qes_ws_dof(out->budget, out->n_budget);
    out->k = qes_coverage_factor(coverage, out->dof);
    out->U = out->k * out->u;
    return 0;
}
