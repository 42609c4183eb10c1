"""Closed forms and limit laws of softmax attention on the sphere (THEORY.md b, c, d, f).

Every quantity is *computed* for the d (or local exponent alpha) it is asked for; nothing is
a stored table of results. Conventions are those of THEORY.md: score t = <q, k>, gap
u = 1 - t, weights softmax(-beta u), h = (d-1)/2 (or alpha/2), critical scaling
beta = lambda n^{2/alpha}, Poisson-limit mean measure rho z^h with rho = C lambda^{-h}.

Shape contracts
---------------
* Elementwise functions (``mean_resultant``, ``log_moment``, ``score_variance``,
  ``mean_resultant_large_beta``, ``one_minus_mean_resultant``, ``subcritical_covariance``,
  ``second_order_mean``, ``effective_keys_limit``, ``entropy_limit``, ``entropy_slope_limit``,
  ``entropy_plateau_slope``, ``supercritical_tail``) take ``beta`` (or ``rho``) of any shape
  and broadcast; ``d``/``h`` are Python numbers (static). They are jittable and
  differentiable in ``beta`` (and ``rho``).
* Poisson-limit expectations (``poisson_expected_*``) take a static ``h`` and a scalar
  ``rho``; they return a scalar, are jittable, and are differentiable in ``rho`` (fixed
  double-exponential quadrature nodes, evaluated in log space; no data-dependent control flow).
* ``poisson_limit_weights(key, h, rho, m)`` returns the first ``m`` ordered weights, shape (m,).
* ``exact_expected_max_weight(n, beta, d)``: ``n`` and ``d`` static, ``beta`` a scalar;
  differentiable in ``beta`` (jax autodiff under the integral).
* Host-level results (``lambda_star``, ``exact_beta_peak``) return named tuples of Python
  floats and always compute in float64 (inside ``jax.enable_x64``) whatever the global mode.

dtype: float32 unless ``jax_enable_x64`` is on; all Bessel quantities are evaluated in log
space (power series for sqrt(nu^2 + beta^2) < 40, Debye's uniform expansion beyond), so beta
up to 1e8 and beyond works in both precisions.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import betainc, exp1, gammaincc, gammaln

from ._checks import InputError, check_int, check_real

__all__ = [
    "C",
    "ExactPeak",
    "LambdaStar",
    "effective_keys_limit",
    "entropy_limit",
    "entropy_plateau_slope",
    "entropy_slope_limit",
    "exact_beta_peak",
    "exact_expected_max_weight",
    "kappa",
    "lambda_star",
    "log_moment",
    "mean_resultant",
    "mean_resultant_large_beta",
    "one_minus_mean_resultant",
    "poisson_expected_entropy",
    "poisson_expected_max_weight",
    "poisson_expected_max_weight_d3",
    "poisson_expected_sum_w2",
    "poisson_limit_weights",
    "poisson_one_minus_max_weight",
    "score_variance",
    "second_order_mean",
    "subcritical_covariance",
    "supercritical_tail",
]


def _dtype():
    return jnp.result_type(float)


def _float(x):
    """x as a floating jax array (the default float dtype unless x is already floating)."""
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.asarray(x)
    return jnp.asarray(x, dtype=_dtype())


def _as(x, dtype=None):
    return jnp.asarray(x, dtype=dtype or _dtype())


def _check_d(d, name: str = "d") -> float:
    if isinstance(d, jax.core.Tracer):
        raise InputError(f"{name} must be a static Python number (got a traced value)")
    return check_real(name, d, minimum=2.0)


def _check_h(h) -> float:
    if isinstance(h, jax.core.Tracer):
        raise InputError("h must be a static Python number (got a traced value)")
    return check_real("h", h, positive=True)


# =========================================================================== Bessel functions
# A_d(beta) = I_{nu+1}(beta) / I_nu(beta), M_d(beta) = 0F1(; nu+1; beta^2/4), nu = d/2 - 1.

_R_SWITCH = 40.0  # series for sqrt(nu^2 + x^2) < 40 (or x < 4), Debye's expansion beyond
_R_SWITCH_F32 = 12.0  # float32: Debye's 14 terms are < 1e-9 relative at R = 12
_N_SERIES = 72  # terms of 0F1: y^K/(K!)^2 at y = 400, K = 72 is e^-100 relative to the sum
_N_DEBYE = 14  # Debye terms u_0 .. u_13: the next is < 1e-17 at R = 40


def _debye_polynomials(K: int) -> list[np.ndarray]:
    """Coefficients of P_k(p) = u_k(p) / p^k (ascending powers of p), k = 0..K-1, exactly.

    u_{k+1}(p) = p^2 (1 - p^2) u_k'(p) / 2 + (1/8) int_0^p (1 - 5 t^2) u_k(t) dt (DLMF 10.41.9).
    """
    us = [[Fraction(1)]]
    for _ in range(K - 1):
        u = us[-1]
        new = [Fraction(0)] * (len(u) + 4)
        for i, c in enumerate(u):
            if i:
                new[i + 1] += i * c / 2
                new[i + 3] -= i * c / 2
            new[i + 1] += c / 8 / (i + 1)
            new[i + 3] -= 5 * c / 8 / (i + 3)
        while new and new[-1] == 0:
            new.pop()
        us.append(new)
    return [np.array([float(c) for c in u[k:]], dtype=np.float64) for k, u in enumerate(us)]


_DEBYE = _debye_polynomials(_N_DEBYE)


def _series_0f1(nu, y):
    """(S, S - 1) with S = 0F1(; nu+1; y) = sum_k y^k / (k! (nu+1)_k), Horner from the top.

    All terms are positive; S - 1 = y/(nu+1) (1 + ...) keeps its relative precision at small y."""
    one = jnp.ones_like(y)

    def body(i, acc):
        k = (_N_SERIES - i).astype(y.dtype)
        return one + acc * y / (k * (nu + k))

    acc = lax.fori_loop(0, _N_SERIES - 1, body, one)  # terms k >= 2, factored
    sm1 = acc * y / (nu + 1.0)
    return 1.0 + sm1, sm1


def _debye_matrix() -> np.ndarray:
    """(K-1, D+1) matrix of the coefficients of P_1..P_{K-1} (ascending powers of p)."""
    deg = max(len(c) for c in _DEBYE[1:])
    m = np.zeros((len(_DEBYE) - 1, deg))
    for k, c in enumerate(_DEBYE[1:]):
        m[k, : len(c)] = c
    return m


_DEBYE_MAT = _debye_matrix()


def _debye_logsum(mu, x):
    """log sum_k u_k(p) / mu^k = log sum_k P_k(p) / R^k with R = sqrt(mu^2 + x^2), p = mu/R."""
    R = jnp.sqrt(mu * mu + x * x)
    p = mu / R
    dt = x.dtype
    kmax, deg = _DEBYE_MAT.shape
    pw = [jnp.ones_like(p)]
    for _ in range(deg - 1):  # powers by products: no 0^0 in the gradient at p = 0 (d = 2)
        pw.append(pw[-1] * p)
    pw = jnp.stack(pw, axis=-1)  # (..., D+1)
    polys = pw @ jnp.asarray(_DEBYE_MAT.T, dtype=dt)  # (..., K-1): P_k(p)
    inv = (1.0 / R)[..., None] ** jnp.arange(1, kmax + 1, dtype=dt)
    return jnp.log1p(jnp.sum(polys * inv, axis=-1)), R


def _debye_log_ive(mu, x):
    """log I_mu(x) - x from Debye's expansion (valid for sqrt(mu^2 + x^2) >~ 40)."""
    logsum, R = _debye_logsum(mu, x)
    rmx = mu * mu / (R + x)  # R - x
    return rmx - mu * jnp.log1p((mu + rmx) / x) - 0.5 * jnp.log(2.0 * math.pi * R) + logsum


def _debye_log_ratio(nu, x):
    """log I_{nu+1}(x)/I_nu(x) from Debye's expansion, differences taken analytically."""
    ls0, R0 = _debye_logsum(nu, x)
    ls1, R1 = _debye_logsum(nu + 1.0, x)
    dR = (2.0 * nu + 1.0) / (R0 + R1)
    t_b = -jnp.log1p((nu + 1.0 + (nu + 1.0) ** 2 / (R1 + x)) / x)  # log(x / (nu+1+R1))
    t_c = -nu * jnp.log1p((1.0 + dR) / (nu + R0))
    t_d = -0.25 * jnp.log1p((2.0 * nu + 1.0) / (R0 * R0))
    return dR + t_b + t_c + t_d + (ls1 - ls0)


def _bessel_parts(beta, d):
    """(use_series, series pieces, Debye pieces) with double-where safe arguments."""
    x = _float(beta)
    nu = jnp.asarray(d, x.dtype) / 2.0 - 1.0  # traced: one compilation serves every d
    # float32 switches earlier: the series ratio of two sums ~e^x loses ~x ulps of 1 - A
    r_switch = _R_SWITCH if x.dtype == jnp.float64 else _R_SWITCH_F32
    # the series also converges fast whenever y = x^2/4 < 4 (nu + 1): term ratio y/(k(nu+k)) < 4/k
    use_series = (x * x + nu * nu < r_switch**2) | (x < 4.0) | (x * x < 16.0 * (nu + 1.0))
    xs = jnp.where(use_series, x, 0.0)
    xd = jnp.where(use_series, 2.0 * r_switch, x)
    return x, nu, use_series, xs, xd


@jax.jit
def _bessel_core(x, d):
    """(A, 1 - A, log M - x, A/x) elementwise; x >= 0 floating, d static."""
    x, nu, use, xs, xd = _bessel_parts(x, d)
    y = xs * xs / 4.0
    s0, s0m1 = _series_0f1(nu, y)
    s1, _ = _series_0f1(nu + 1.0, y)
    a_over_x_s = s1 / (2.0 * (nu + 1.0) * s0)
    a_s = xs * a_over_x_s
    lm_s = jnp.log1p(s0m1) - xs
    loga_d = _debye_log_ratio(nu, xd)
    lm_d = gammaln(nu + 1.0) + nu * (math.log(2.0) - jnp.log(xd)) + _debye_log_ive(nu, xd)
    a_d = jnp.exp(loga_d)
    a = jnp.where(use, a_s, a_d)
    one_minus = jnp.where(use, 1.0 - a_s, -jnp.expm1(loga_d))
    lm = jnp.where(use, lm_s, lm_d)
    return a, one_minus, lm, jnp.where(use, a_over_x_s, a_d / xd)


@jax.jit
def _score_var_core(x, d):
    return jax.jvp(lambda b: _bessel_core(b, d)[0], (x,), (jnp.ones_like(x),))[1]


def _a_and_logs(beta, d):
    """Validated (A, 1 - A, log M - beta, A/beta, beta) for the elementwise Bessel quantities."""
    d = float(_check_d(d))
    if not isinstance(beta, jax.core.Tracer) and np.any(np.asarray(beta) < 0):
        raise InputError(f"beta must be >= 0 (beta multiplies <q,k>), got {beta!r}")
    x = _float(beta)
    return (*_bessel_core(x, jnp.asarray(d, x.dtype)), x)


def mean_resultant(beta, d):
    """Mean resultant A_d(beta) = I_{d/2}(beta) / I_{d/2-1}(beta) = E_beta[t] (THEORY b).

    beta >= 0 of any shape, d >= 2 real (static). Power series of 0F1 for small
    sqrt(nu^2 + beta^2), Debye's uniform expansion (log space) beyond: float32 and float64
    accurate up to beta = 1e8 and beyond. Differentiable: d A/d beta = :func:`score_variance`.

    >>> round(float(mean_resultant(10.0, 3)), 6)  # coth(10) - 1/10
    0.9
    """
    return _a_and_logs(beta, d)[0]


def one_minus_mean_resultant(beta, d):
    """1 - A_d(beta) with full relative precision (the inward bias of y, THEORY b).

    >>> round(float(one_minus_mean_resultant(1e8, 3)) * 1e8, 5)  # ~ (d-1)/(2 beta)
    1.0
    """
    return _a_and_logs(beta, d)[1]


def log_moment(beta, d):
    """log M_d(beta) = log E exp(beta t) = log[Gamma(d/2) (2/beta)^{d/2-1} I_{d/2-1}(beta)] (THEORY b).

    Computed as beta + (log M - beta) so the O(log beta) part keeps its precision.

    >>> import math
    >>> round(float(log_moment(2.0, 3)), 6) == round(math.log(math.sinh(2.0) / 2.0), 6)
    True
    """
    _, _, lm, _, x = _a_and_logs(beta, d)
    return lm + x


def _log_moment_minus_beta(beta, d):
    return _a_and_logs(beta, d)[2]


def score_variance(beta, d):
    """A_d'(beta) = Var_beta(t) = 1 - A^2 - (d-1) A / beta (THEORY b), >= 0.

    Evaluated as the derivative of A (forward-mode autodiff through the log-space form), so it
    keeps its relative precision at large beta where the formula above cancels
    (A' ~ (d-1)/(2 beta^2)).

    >>> round(float(score_variance(1e4, 3)) * 1e8, 4)
    1.0
    """
    x = _a_and_logs(beta, d)[-1]
    return _score_var_core(x, jnp.asarray(d, x.dtype))


def mean_resultant_large_beta(beta, d):
    """Large-beta expansion A_d = 1 - (d-1)/(2b) + (d-1)(d-3)/(8b^2) + (d-1)(d-3)/(8b^3) + O(b^-4).

    (THEORY b.) Exact (to exponentially small terms) for d = 3: 1 - 1/b.

    >>> round(float(mean_resultant_large_beta(100.0, 3)), 6)
    0.99
    """
    b = _float(beta)
    return 1.0 - (d - 1) / (2.0 * b) + (d - 1) * (d - 3) / (8.0 * b**2) + (d - 1) * (d - 3) / (8.0 * b**3)


# =========================================================================== subcritical regime


def _log_R(beta, d):
    return _log_moment_minus_beta(2.0 * beta, d) - 2.0 * _log_moment_minus_beta(beta, d)


def _a_over_x(beta, d):
    """A_d(x)/x, finite at x = 0 (= 1/d)."""
    return _a_and_logs(beta, d)[3]


def subcritical_covariance(beta, d):
    """Limit covariance of sqrt(n) (y - A_d q) at fixed beta, n -> infinity (THEORY b).

    Returns (S_par, S_perp) with R = M_d(2b)/M_d(b)^2,
    S_par = R [Var_{2b}(t) + (A(2b) - A(b))^2] (along q) and S_perp = R A(2b)/(2b) (each
    direction orthogonal to q).

    >>> s_par, s_perp = subcritical_covariance(5.0, 3)
    >>> round(float(s_perp), 4)
    0.45
    """
    b = _float(beta)
    R = jnp.exp(_log_R(b, d))
    a1 = mean_resultant(b, d)
    a2 = mean_resultant(2.0 * b, d)
    v2 = score_variance(2.0 * b, d)
    s_par = R * (v2 + (a2 - a1) ** 2)
    s_perp = R * _a_over_x(2.0 * b, d)
    return s_par, s_perp


def second_order_mean(n, beta, d):
    """E <y, q> = A(b) + R (A(b) - A(2b)) / n + O(n^-2), R = M_d(2b)/M_d(b)^2 (THEORY b).

    >>> round(float(second_order_mean(1e9, 10.0, 3)), 6)
    0.9
    """
    b = _float(beta)
    R = jnp.exp(_log_R(b, d))
    a1 = mean_resultant(b, d)
    return a1 + R * (a1 - mean_resultant(2.0 * b, d)) / n


def effective_keys_limit(n, beta, d):
    """Kish effective number of keys n_eff = (sum w)^2 / sum w^2 -> n / R (THEORY b).

    R = M_d(2b) / M_d(b)^2 ~ sqrt(pi) beta^{(d-1)/2} / (Gamma(d/2) 2^{d-2}) for beta >> 1.

    >>> round(float(effective_keys_limit(1000, 0.0, 3)))
    1000
    """
    b = _float(beta)
    return n * jnp.exp(-_log_R(b, d))


# =========================================================================== entropy at n = infinity


def entropy_limit(n, beta, d):
    """H(n, beta) = log n + log M_d(beta) - beta A_d(beta) + o(1) at fixed beta (THEORY f).

    Computed as log n + (log M - beta) + beta (1 - A) so large beta keeps its precision.

    >>> round(float(entropy_limit(1e6, 0.0, 3)), 6) == round(math.log(1e6), 6)
    True
    """
    b = _float(beta)
    _, one_minus, lm, _, b = _a_and_logs(b, d)
    return jnp.log(_as(n, b.dtype)) + lm + b * one_minus


def entropy_slope_limit(beta, d):
    """dH/d log beta = -beta^2 A_d'(beta) at n = infinity (THEORY f).

    >>> round(float(entropy_slope_limit(1e6, 3)), 4)  # plateau -(d-1)/2
    -1.0
    """
    b = _float(beta)
    return -(b**2) * score_variance(b, d)


def entropy_plateau_slope(beta, d):
    """Plateau of the entropy slope, -(d-1)/2 + (d-1)(d-3)/(4 beta), for 1 << beta << n^{2/(d-1)}.

    (THEORY f.)

    >>> round(float(entropy_plateau_slope(10.0, 5)), 6)
    -1.8
    """
    b = _float(beta)
    return -(d - 1) / 2.0 + (d - 1) * (d - 3) / (4.0 * b)


# =========================================================================== local constants


def C(d=None, *, alpha=None):
    """C in P(u <= s) ~ C s^{alpha/2} (THEORY c, d).

    * ``C(d)``: uniform keys on S^{d-1}, C_d = 2 kappa_d/(d-1) = 2^{-h}/(h B(h, h)), h = (d-1)/2.
    * ``C(alpha=a)``: PowerLawCap on S^2, P(u <= s) = (s/2)^{a/2}, C = 2^{-a/2}.
    * ``C(d, alpha=a)``: PowerLawCap on S^{d-1} (u/2 ~ Beta(a/2, (d-1)/2)),
      C = 2^{-a/2} / ((a/2) B(a/2, (d-1)/2)); alpha = d-1 gives C_d.

    >>> [round(C(d), 12) for d in (3, 5)], round(C(alpha=4.0), 12)
    ([0.5, 0.75], 0.25)
    """
    a, b = _beta_params(d, alpha)
    return math.exp(-a * math.log(2.0) - math.log(a) - _lbeta(a, b))


def kappa(d=None, *, alpha=None):
    """kappa in the gap density f(u) ~ kappa u^{alpha/2 - 1} near 0 (THEORY c): kappa = C alpha/2.

    For uniform keys kappa_d = 2^{(d-3)/2} Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)).

    >>> round(kappa(3), 12), round(kappa(5), 12)
    (0.5, 1.5)
    """
    a, _ = _beta_params(d, alpha)
    return C(d, alpha=alpha) * a


def _lbeta(a, b):
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta_params(d, alpha):
    """(a, b) with u/2 ~ Beta(a, b) for the key law named by d and/or alpha."""
    if d is None and alpha is None:
        raise InputError("give d (uniform keys on S^(d-1)) or alpha (local exponent); got neither")
    if alpha is None:
        d = _check_d(d)
        return (d - 1) / 2.0, (d - 1) / 2.0
    alpha = check_real("alpha", alpha, positive=True)
    if d is None:
        return alpha / 2.0, 1.0
    d = _check_d(d)
    return alpha / 2.0, (d - 1) / 2.0


# =========================================================================== quadrature rules
# Double-exponential rules with fixed nodes (static numpy float64, cast on use). Everything is
# kept in log form so nodes at 1e-40 or weights at e^-100 are exact in float32 too.


def _exp_sinh(log_lo: float, log_hi: float, step: float):
    """Exp-sinh rule on (0, inf): x = exp(pi/2 sinh tau). Returns (log x, log weight)."""
    t0, t1 = math.asinh(log_lo * 2 / math.pi), math.asinh(log_hi * 2 / math.pi)
    tau = np.arange(t0, t1 + 0.5 * step, step)
    logx = 0.5 * math.pi * np.sinh(tau)
    logw = np.log(step * 0.5 * math.pi * np.cosh(tau)) + logx
    return logx, logw


def _tanh_sinh(tmax: float, step: float):
    """Tanh-sinh rule on (0, 1): sigma = (1 + tanh(pi/2 sinh tau))/2.

    Returns (log sigma, log(1 - sigma), log weight), each accurate near both ends."""
    tau = np.arange(-tmax, tmax + 0.5 * step, step)
    y = 0.5 * math.pi * np.sinh(tau)
    log_s = -np.logaddexp(0.0, -2 * y)
    log_1ms = -np.logaddexp(0.0, 2 * y)
    logw = np.log(step * 0.5 * math.pi * np.cosh(tau) * 2.0) + log_s + log_1ms
    return log_s, log_1ms, logw


_T_CUT = 45.0  # e^{-t} weights are cut at t = 45 (relative error < e^-44)
_RULE_R = _exp_sinh(-36.0, math.log(60.0), 1 / 8)  # outer r (weight e^-r), 45 nodes
_RULE_S = _exp_sinh(-36.0, math.log(60.0), 1 / 8)  # middle s (weight e^-s), 45 nodes
_RULE_T = _tanh_sinh(4.3, 1 / 10)  # inner t in (0, min(s, 45)) (weight e^-t), 87 nodes


def _rule(rule, dtype):
    return tuple(jnp.asarray(a, dtype=dtype) for a in rule)


# =========================================================================== Poisson limit (THEORY c)


def _check_rho(rho):
    if isinstance(rho, jax.core.Tracer):
        return rho
    arr = np.asarray(rho)
    if arr.ndim != 0:
        raise InputError(f"rho must be a scalar, got shape {arr.shape}; vmap over rho for many values")
    return check_real("rho", rho, positive=True)


def _log_pow_diff(q, ell, h):
    """log[(q + ell)^h - q^h] for q > 0, ell >= 0 (cancellation-free)."""
    return h * jnp.log(q + ell) + jnp.log(-jnp.expm1(-h * jnp.log1p(ell / q)))


def _ppp_inner(h, log_rho, dtype):
    """rho J(s, z(r)) and the kernels K, Q on the (r, s) grid.

    With z0 = rho^{-1/h}, q = r^{1/h} (z = z0 q) and ell = log(s/t)/z0:
      rho J = int_0^min(s,T) e^{-t} [(q+ell)^h - q^h] dt,
      K     = (1/s)   int e^{-t} h (q+ell)^{h-1} ell dt,
      Q     = (1/s^2) int e^{-t} (h/z0) (q+ell)^{h-1} t dt.
    Returns (logw_r, r, logw_s, s, rhoJ, K, Q) with (Nr, Ns) arrays."""
    lr, lwr = _rule(_RULE_R, dtype)
    ls, lws = _rule(_RULE_S, dtype)
    lsig, _, lwt = _rule(_RULE_T, dtype)
    inv_z0 = jnp.exp(log_rho / h)
    q = jnp.exp(lr / h)[:, None, None]  # (Nr,1,1)
    lsv = ls[None, :, None]  # (1,Ns,1)
    logb = jnp.minimum(lsv, math.log(_T_CUT))
    L = (lsv - logb) - lsig[None, None, :]  # log(s/t) >= 0
    ell = L * inv_z0
    logt = logb + lsig[None, None, :]
    t = jnp.exp(logt)
    lw = logb + lwt[None, None, :] - t  # log of dt e^{-t}
    log_rhoJ = jax.nn.logsumexp(lw + _log_pow_diff(q, ell, h), axis=-1)
    lq = jnp.log(q + ell) * (h - 1.0)
    K = jnp.exp(jax.nn.logsumexp(lw + lq + jnp.log(h * ell), axis=-1) - ls[None, :])
    Q = jnp.exp(jax.nn.logsumexp(lw + lq + logt, axis=-1) - 2.0 * ls[None, :]) * h * inv_z0
    rhoJ = jnp.exp(jnp.minimum(log_rhoJ, 30.0))
    return lwr, jnp.exp(lr), lws, jnp.exp(ls), rhoJ, K, Q


def _outer(lwr, r, lws, s, f):
    """sum_r w_r e^{-r} sum_s w_s e^{-s} f(r, s)."""
    wr = jnp.exp(lwr - r)[:, None]
    ws = jnp.exp(lws - s)[None, :]
    return jnp.sum(wr * ws * f)


@jax.jit
def _ppp_all(h, log_rho):
    """(E W_(1), 1 - E W_(1), E sum w^2, E H) in one pass (h and log rho may be traced)."""
    lwr, r, lws, s, rhoJ, K, Q = _ppp_inner(h, log_rho, log_rho.dtype)
    phi = jnp.exp(-rhoJ)
    om = -jnp.expm1(-rhoJ)
    return (
        _outer(lwr, r, lws, s, phi),
        _outer(lwr, r, lws, s, om),
        _outer(lwr, r, lws, s, s * phi * (1.0 + Q)),
        _outer(lwr, r, lws, s, om / s + phi * K),
    )


def _ppp_public(h, rho, which: int):
    h = _check_h(h)
    rho = _check_rho(rho)
    lr = jnp.log(_float(rho))
    return _ppp_all(jnp.asarray(h, lr.dtype), lr)[which]


def _ew1_logrho(h, log_rho, dtype):
    lwr, r, lws, s, rhoJ, _, _ = _ppp_inner(h, log_rho, dtype)
    return _outer(lwr, r, lws, s, jnp.exp(-rhoJ))


def _one_minus_ew1_logrho(h, log_rho, dtype):
    lwr, r, lws, s, rhoJ, _, _ = _ppp_inner(h, log_rho, dtype)
    return _outer(lwr, r, lws, s, -jnp.expm1(-rhoJ))


def poisson_expected_max_weight(h, rho):
    """E W_(1) in the Poisson limit with mean measure rho z^h (THEORY c).

    E W_(1) = int_0^inf dr e^{-r} int_0^inf ds e^{-s} exp(-rho J(s, z(r))), z(r) = (r/rho)^{1/h},
    J(s, z) = int_0^s e^{-t} [(z + log(s/t))^h - z^h] dt. Fixed exp-sinh (r, s) and tanh-sinh
    (t) nodes in log space: jittable, differentiable in rho, ~1e-8 or better in float64 (checked
    for h in [0.5, 8] across the critical window; the s nodes stop at e^-36, so regimes with
    E sum w^2 below ~1e-12 (e^H beyond ~e^30 keys) are outside the rule's range).

    >>> round(float(poisson_expected_max_weight(1.0, 0.5)), 6)
    0.729488
    """
    return _ppp_public(h, rho, 0)


def poisson_one_minus_max_weight(h, rho):
    """1 - E W_(1) with full relative precision (deep supercritical, THEORY c).

    1 - E W_(1) = int dr e^{-r} int ds e^{-s} (1 - exp(-rho J(s, z(r)))).

    >>> round(float(poisson_one_minus_max_weight(1.0, 0.5)), 6)
    0.270512
    """
    return _ppp_public(h, rho, 1)


def poisson_expected_sum_w2(h, rho):
    """E sum_k W_k^2 in the Poisson limit (THEORY c).

    Conditioning on the top point (energy z(r)) and writing 1/(1+Z')^2 = int s e^{-s(1+Z')} ds:
    E sum w^2 = int dr e^{-r} int ds s e^{-s} Phi(s, r) [1 + Q(s, r)], Phi = exp(-rho J(s, z(r))),
    Q = int mu(dz' above z) e^{-2(z'-z)} exp(-s e^{-(z'-z)}). This equals THEORY's
    int dr int ds s e^{-s} phi(s e^{z(r)}) but has no heavy tails.

    >>> round(float(poisson_expected_sum_w2(1.0, 0.5)), 6)
    0.635256
    """
    return _ppp_public(h, rho, 2)


def poisson_expected_entropy(h, rho):
    """E H (nats) in the Poisson limit (THEORY c).

    Given the top point, H = log(1+Z') + sum_j v_j e^{-v_j}/(1+Z') (v_j = z_j - z_(1)), so
    E H = int dr e^{-r} int ds e^{-s} [(1 - Phi)/s + Phi K], K = (1/s) int mu(dz') v e^{-v}
    exp(-s e^{-v})... (Frullani for the log, Mecke for the sum). Equal to THEORY's formula with
    phi(s), without its heavy log-tails.

    >>> round(float(poisson_expected_entropy(1.0, 0.5)), 6)
    0.668783
    """
    return _ppp_public(h, rho, 3)


_RULE_D3 = _exp_sinh(-40.0, math.log(80.0), 1 / 32)


def _ein(s):
    """Ein(s) = int_0^s (1 - e^{-t})/t dt = E_1(s) + log s + gamma (series for s <= 2)."""
    small = s <= 2.0
    ss = jnp.where(small, s, 1.0)
    sl = jnp.where(small, 4.0, s)
    k = jnp.arange(1, 31, dtype=s.dtype)
    terms = jnp.cumprod(-ss[..., None] / k, axis=-1)  # (-s)^k / k!
    series = -jnp.sum(terms / k, axis=-1)
    large = exp1(sl) + jnp.log(sl) + np.euler_gamma
    return jnp.where(small, series, large)


def poisson_expected_max_weight_d3(rho):
    """The h = 1 (d = 3, uniform S^2) closed form E W_(1) = int_0^inf exp(-s - rho Ein(s)) ds.

    (THEORY c, a generalised Dickman integral.) Ein(s) = E_1(s) + log s + gamma. A 1-D
    exp-sinh quadrature; jittable, differentiable in rho.

    >>> round(float(poisson_expected_max_weight_d3(0.5)), 6)
    0.729488
    """
    rho = _check_rho(rho)
    dtype = rho.dtype if hasattr(rho, "dtype") and rho.dtype.kind == "f" else _dtype()
    rho = _as(rho, dtype)
    ls, lw = _rule(_RULE_D3, dtype)
    s = jnp.exp(ls)
    return jnp.sum(jnp.exp(lw - s - rho * _ein(s)))


def supercritical_tail(h, rho):
    """Deep supercritical law 1 - E W_(1) ~ log(2) h Gamma(2 - 1/h) rho^{1/h} (h > 1/2, THEORY c).

    >>> round(float(supercritical_tail(1.0, 1e-4) / 1e-4), 6)  # log 2 for d = 3
    0.693147
    """
    h = _check_h(h)
    if h <= 0.5:
        raise InputError(f"h must be > 1/2 for the supercritical tail law (d > 2), got {h!r}")
    r = _float(rho)
    return math.log(2.0) * h * math.gamma(2.0 - 1.0 / h) * r ** (1.0 / h)


def poisson_limit_weights(key, h, rho, m):
    """The first m ordered weights W_(1) >= ... >= W_(m) of the Poisson limit, shape (m,).

    Energies z_(k) = (Gamma_k / rho)^{1/h}, Gamma_k the arrival times of a unit Poisson process
    (THEORY c). Points beyond the m-th enter the normaliser through their conditional mean
    E[sum_{k>m} e^{-z_k} | z_(m)] = rho Gamma(h+1) Q(h, z_(m)) (Q the regularised upper
    incomplete gamma), so sum(W) = 1 - (tail share). Truncation bound: the tail's share is at
    most rho Gamma(h+1) Q(h, z_(m)) e^{z_(1)}; with m >~ rho (40 + h log(40))^h... it is < e^-30.

    >>> w = poisson_limit_weights(jax.random.key(0), 1.0, 0.5, 64)
    >>> w.shape, bool(w[0] >= w[1])
    ((64,), True)
    """
    h = _check_h(h)
    m = check_int("m", m, minimum=1)
    rho = _check_rho(rho)
    dtype = _dtype()
    rho = _as(rho, dtype)
    e = jax.random.exponential(key, (m,), dtype)
    gam = jnp.cumsum(e)
    z = jnp.exp((jnp.log(gam) - jnp.log(rho)) / h)
    zm = z[-1]
    tail = rho * math.gamma(h + 1.0) * gammaincc(_as(h, dtype), zm)
    z1 = z[0]
    num = jnp.exp(-(z - z1))
    return num / (jnp.sum(num) + tail * jnp.exp(z1))


# =========================================================================== lambda*


class LambdaStar(NamedTuple):
    """Peak of the Poisson-limit susceptibility chi = d E[W_(1)]/d log lambda."""

    lambda_star: float
    rho_star: float
    chi_max: float
    E_max_weight: float
    h: float
    C: float


def lambda_star(d=None, *, alpha=None, C=None):  # noqa: N803  (C is THEORY's name)
    """lambda* = argmax_lambda d E[W_(1)]/d log lambda in the Poisson limit (THEORY c, d).

    With rho = C lambda^{-h}, d/d log lambda = -h d/d log rho, so the peak is that of the
    universal curve: rho*(h) = argmax of -dE/d log rho (Newton on its derivative, every
    derivative by jax autodiff of the fixed-node quadrature), then lambda* = (C/rho*)^{1/h},
    chi_max = h max(-dE/d log rho). ``d``: uniform keys on S^{d-1}; ``alpha`` (with optional
    ``C``; default the PowerLawCap value 2^{-alpha/2} on S^2, or on S^{d-1} when ``d`` is given
    too). Always computed in float64.

    >>> round(lambda_star(3).lambda_star, 6)
    0.381447
    """
    if alpha is None and d is None:
        raise InputError("lambda_star needs d (uniform keys) or alpha (local exponent); got neither")
    if alpha is not None:
        alpha = check_real("alpha", alpha, positive=True)
        h = alpha / 2.0
        c = C if C is not None else globals()["C"](d, alpha=alpha)
    else:
        d = _check_d(d)
        h = (d - 1) / 2.0
        c = C if C is not None else globals()["C"](d)
    c = check_real("C", c, positive=True)
    lr, chi, ew = _rho_star(h)
    log_lam = (math.log(c) - lr) / h
    return LambdaStar(math.exp(log_lam), math.exp(lr), h * chi, ew, h, c)


_LAMBDA_CACHE: dict[float, tuple[float, float, float]] = {}


def _derivs3(g, x, *args):
    """(g, dg, d2g, d3g) at x of a scalar function g(x, *args), by nested forward-mode autodiff."""

    def d(f):
        return lambda y: jax.jvp(f, (y,), (jnp.ones_like(y),))

    ((g0, g1), (_, g2)), ((_, _), (_, g3)) = d(d(d(lambda y: g(y, *args))))(x)
    return g0, g1, g2, g3


@jax.jit
def _ew1_all3(lr, h):
    return _derivs3(lambda y, hh: _ew1_logrho(hh, y, lr.dtype), lr, h)


@partial(jax.jit, static_argnums=(2, 3))
def _ew1_finite_all3(lb, n, a, b, u1):
    return _derivs3(lambda y: _ew1_finite(y, n, a, b, u1, lb.dtype), lb)


def _newton_peak(all3, grid, sign: float, tol: float = 1e-13):
    """Extremum of g' (max if sign = +1, min if -1): scan on ``grid``, then Newton on g'' = 0."""
    f64 = jnp.float64
    vals = [sign * float(all3(f64(x))[1]) for x in grid]
    k = min(max(int(np.argmax(vals)), 1), len(grid) - 2)
    lo, hi = float(grid[k - 1]), float(grid[k + 1])
    x = float(grid[k])
    for _ in range(40):
        _, _, d2, d3 = (float(v) for v in all3(f64(x)))
        if not (math.isfinite(d2) and math.isfinite(d3)):
            raise FloatingPointError(f"non-finite derivative of the susceptibility at log x = {x!r}")
        if sign * d3 < 0:
            step = -d2 / d3
        else:  # not concave there: move uphill of sign * g' by a quarter bracket
            step = 0.25 * (hi - lo) * (1.0 if sign * d2 > 0 else -1.0)
        new = min(max(x + step, lo), hi)
        done = abs(new - x) < tol * max(1.0, abs(x))
        x = new
        if done:
            break
    return x, tuple(float(v) for v in all3(f64(x)))


def _rho_star(h: float) -> tuple[float, float, float]:
    """(log rho*, max(-dE/dlog rho), E W_(1) at the peak) for the universal curve of h."""
    if h in _LAMBDA_CACHE:
        return _LAMBDA_CACHE[h]
    with jax.enable_x64(True):
        hh = jnp.float64(h)

        def all3(x):
            return _ew1_all3(x, hh)

        # scan in a = h rho^{1/h} (the natural scale of the window), then Newton on g'' = 0
        grid = h * (np.linspace(-3.0, 3.0, 13) - math.log(h))
        x, (g0, g1, _, _) = _newton_peak(all3, grid, -1.0)
    res = (x, -g1, g0)
    _LAMBDA_CACHE[h] = res
    return res


# =========================================================================== exact finite n


class ExactPeak(NamedTuple):
    """beta_peak(n) of the exact finite-n susceptibility d E[W_(1)]/d log beta."""

    beta_peak: float
    lambda_peak: float  # beta_peak / n^{2/alpha}
    chi_max: float
    E_max_weight: float
    n: float


_RULE_R_N = _exp_sinh(-34.0, math.log(60.0), 1 / 10)
_RULE_S_N = _exp_sinh(-34.0, math.log(60.0), 1 / 10)
_RULE_T_N = _tanh_sinh(4.0, 1 / 10)


def _finite_n_setup(n, d, alpha):
    """(n, a, b, u_1 on the r nodes): u_1 = F^{-1}(1 - e^{-r/n}) on the host, in float64."""
    n = check_real("n", n, minimum=1.0)
    a, b = _beta_params(d, alpha)
    from scipy import special as sps

    r = np.exp(_RULE_R_N[0])
    p = -np.expm1(-r / n)  # F(u_1) = 1 - e^{-r/n}, full relative precision
    x1 = sps.betaincinv(a, b, p)
    # polish in log space (keeps relative precision for p down to 1e-300)
    for _ in range(3):
        lf = np.log(sps.betainc(a, b, x1))
        ldens = (a - 1) * np.log(x1) + (b - 1) * np.log1p(-x1) - _lbeta(a, b)
        x1 = np.clip(x1 - (lf - np.log(p)) * np.exp(lf - ldens), 1e-300, 1.0)
    return n, a, b, 2.0 * x1


def _beta_cdf(a: float, b: float, x):
    """I_x(a, b), with the closed forms (b = 1, a = 1, a = b = 2) that avoid betainc's cost."""
    if b == 1.0:
        return x**a
    if a == 1.0:
        return -jnp.expm1(b * jnp.log1p(-x))
    if a == b == 2.0:
        return x * x * (3.0 - 2.0 * x)
    # betainc's derivatives in x are NaN at x = 0 and 1 (where the callers clip): evaluate it strictly
    # inside (0, 1) and put the endpoint values back (double where, so gradients stay finite)
    inside = (x > 0.0) & (x < 1.0)
    val = betainc(a, b, jnp.where(inside, x, 0.5))
    return jnp.where(inside, val, jnp.where(x >= 1.0, 1.0, 0.0))


def _ew1_finite(log_beta, n, a, b, u1, dtype):
    """E W_(1)(n, beta) = int dr e^{-r} int ds e^{-s} [1 - D/(1-F(u_1))]^{n-1} (THEORY c).

    D/(1-F(u1)) = (1 - exp(-s e^{-beta(2-u1)})) + int_{t_lo}^{min(s,T)} dt e^{-t}
    [F(u1 + log(s/t)/beta) - F(u1)] / (1 - F(u1)), t_lo = s e^{-beta(2-u1)} (integration by
    parts of THEORY's D), 1 - F(u1) = e^{-r/n} exactly."""
    beta = jnp.exp(log_beta)
    lr, lwr = _rule(_RULE_R_N, dtype)
    r = jnp.exp(lr)
    u1 = jnp.asarray(u1, dtype)[:, None, None]
    ls, lws = _rule(_RULE_S_N, dtype)
    lsig, l1ms, lwt = _rule(_RULE_T_N, dtype)
    lsv = ls[None, :, None]
    loga = lsv - beta * (2.0 - u1)
    logb = jnp.maximum(jnp.minimum(lsv, math.log(_T_CUT)), loga)
    lab = jnp.minimum(loga - logb, 0.0)
    logt = logb + jnp.logaddexp(lsig[None, None, :], lab + l1ms[None, None, :])
    L = lsv - logt
    x_hi = jnp.clip((u1 + L / beta) / 2.0, 0.0, 1.0)
    x_lo = jnp.clip(u1 / 2.0, 0.0, 1.0)
    dF = _beta_cdf(a, b, x_hi) - _beta_cdf(a, b, x_lo)
    # log(b - a) = log b + log(1 - a/b); an empty interval (a >= b) gets weight 0
    l1mab = jnp.log(-jnp.expm1(jnp.minimum(lab, -1e-30)))
    w = jnp.exp(logb + l1mab + lwt[None, None, :] - jnp.exp(logt))
    X = -jnp.expm1(-jnp.exp(loga[..., 0])) + jnp.sum(w * dF, axis=-1) * jnp.exp(r / n)[:, None]
    X = jnp.clip(X, 0.0, 1.0 - jnp.finfo(dtype).epsneg)
    integrand = jnp.exp((n - 1.0) * jnp.log1p(-X))
    wr = jnp.exp(lwr - r)[:, None]
    ws = jnp.exp(lws - jnp.exp(ls))[None, :]
    return jnp.sum(wr * ws * integrand)


def exact_expected_max_weight(n, beta, d=None, *, alpha=None):
    """Exact finite-n E[max weight] for n i.i.d. keys (THEORY c, last bullet; THEORY h).

    E W_(1)(n, beta) = int dr e^{-r} int ds e^{-s} [1 - D(s, u_1)/(1 - F(u_1))]^{n-1} with
    u_1 = F^{-1}(1 - e^{-r/n}), F(u) = I_{u/2}(a, b) the gap CDF (a = b = (d-1)/2 for uniform
    keys; a = alpha/2, b = (d-1)/2 for PowerLawCap, d = 3 if omitted) and
    D(s, u) = int_u^2 f(u') (1 - exp(-s e^{-beta(u'-u)})) du'. n and d are static (u_1 is found
    on the host with scipy, to full relative precision for n up to 1e15 and beyond); beta may
    be traced: jittable and differentiable in beta.

    >>> round(float(exact_expected_max_weight(100, 0.0, 3)), 6)
    0.01
    """
    if alpha is not None and d is None:
        d = 3
    n, a, b, u1 = _finite_n_setup(n, d, alpha)
    beta = check_real("beta", beta, nonnegative=True) if not isinstance(beta, jax.core.Tracer) else beta
    dtype = beta.dtype if hasattr(beta, "dtype") and beta.dtype.kind == "f" else _dtype()
    beta = _as(beta, dtype)
    lb = jnp.log(jnp.maximum(beta, 1e-30))  # beta = 0 is the limit beta -> 0+ (E W = 1/n)
    return _ew1_finite(lb, n, a, b, u1, dtype)


def exact_beta_peak(n, d=None, *, alpha=None):
    """beta_peak(n) = argmax over beta of d E[W_(1)](n, beta)/d log beta, exactly (THEORY c).

    Newton on d^2 E/d(log beta)^2 = 0, every derivative by jax autodiff under the integral of
    :func:`exact_expected_max_weight` (no finite differences), started from a scan around
    lambda* n^{2/alpha}. Always float64. Returns :class:`ExactPeak`.

    >>> pk = exact_beta_peak(1e6, 3)
    >>> abs(pk.lambda_peak / lambda_star(3).lambda_star - 1) < 1e-3
    True
    """
    if alpha is not None and d is None:
        d = 3
    n, a, b, u1 = _finite_n_setup(n, d, alpha)
    if n < 2:
        raise InputError(f"n must be >= 2 for a susceptibility peak (one key always has weight 1), got {n!r}")
    ls_ = lambda_star(d, alpha=alpha) if alpha is not None else lambda_star(d)
    scale = n ** (1.0 / ls_.h)
    with jax.enable_x64(True):
        n64, u64 = jnp.float64(n), jnp.asarray(u1, jnp.float64)

        def all3(x):
            return _ew1_finite_all3(x, n64, a, b, u64)

        grid = math.log(ls_.lambda_star * scale) + np.linspace(-1.5, 1.5, 13)
        x, (ew, chi, _, _) = _newton_peak(all3, grid, 1.0, tol=1e-12)
    bp = math.exp(x)
    return ExactPeak(bp, bp / scale, chi, ew, n)
