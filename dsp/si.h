/*
 * SI 2019 constants for the quantum standards.
 *
 * Since 20 May 2019 the elementary charge e and the Planck constant h are
 * exact by definition; the Josephson constant K_J = 2e/h and the von Klitzing
 * constant R_K = h/e^2 follow from them.  Their decimal expansions do not
 * terminate, so a typed literal of K_J or R_K is a rounded value with its own
 * error (and a 1990 conventional value K_J-90, R_K-90 is wrong by 1e-7 and
 * 2e-8).  Here only e and h are typed; everything else is computed from them
 * in long double (64-bit mantissa on x86-64: the two literals carry 5e-20
 * relative error each, a quotient adds another, so every value below is
 * within ~2e-19 relative of the exact one and rounds to the correct double
 * except in the rare case where the exact value lies within 2e-19 of a
 * rounding boundary).
 *
 * Header only: static inline functions, no state, thread safe.
 */
#ifndef QES_DSP_SI_H
#define QES_DSP_SI_H

/* Elementary charge e, in C (exact: 1.602176634e-19). */
static inline long double qes_si_e_c(void)
{
    return 1.602176634e-19L;
}

/* Planck constant h, in J s (exact: 6.62607015e-34). */
static inline long double qes_si_h_js(void)
{
    return 6.62607015e-34L;
}

/* Josephson constant K_J = 2e/h, in Hz/V (483597.8484169836... GHz/V). */
static inline long double qes_si_kj_hz_per_v(void)
{
    return 2.0L * qes_si_e_c() / qes_si_h_js();
}

/*
 * Magnetic flux quantum Phi_0 = 1/K_J = h/(2e), in V/Hz (Wb):
 * 2.067833848461929323...e-15.  Computed as h/(2e) directly rather than as
 * 1/K_J, which would round twice.  One junction driven at f_J gives
 * f_J * Phi_0 volts.
 */
static inline long double qes_si_phi0_v_per_hz(void)
{
    return qes_si_h_js() / (2.0L * qes_si_e_c());
}

/* von Klitzing constant R_K = h/e^2, in ohm (25812.80745930450666...). */
static inline long double qes_si_rk_ohm(void)
{
    return qes_si_h_js() / (qes_si_e_c() * qes_si_e_c());
}

/*
 * Voltage of a Josephson array step: n junctions (signed) each on their
 * first Shapiro step at drive frequency f_j_hz: V = n f_J / K_J, in V.
 */
static inline long double qes_si_josephson_v(long double n, long double f_j_hz)
{
    return n * f_j_hz * qes_si_phi0_v_per_hz();
}

#endif
