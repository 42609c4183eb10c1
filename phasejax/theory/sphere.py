"""Closed forms on the sphere: the von Mises-Fisher moments, the subcritical regime, entropy at n = infinity,
and the local constants of the gap law (docs/theory.md §b, §c, §d, §f, §g).

Conventions: score t = <q, k>, gap u = 1 - t, weights softmax(-beta u), h = (d-1)/2. nu = d/2 - 1.

Shape contract: every function here is elementwise in ``beta`` (any shape, broadcasting); ``d`` and ``l``
are static Python numbers. Host or device by the argument (:mod:`phasejax._numerics.arrays`): a Python
number or NumPy array is evaluated in float64 with NumPy; a JAX array (or a tracer, under ``jit``/``grad``)
in its own dtype with JAX, jittable and differentiable in beta. All Bessel quantities are evaluated in
log space (power series where it converges fast, Debye's uniform expansion beyond), so beta up to 1e8 and
beyond works in float32 and float64.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from .._checks import InputError, check_int, check_real
from .._numerics.arrays import namespace
from .._numerics.bessel import bessel_core, bessel_ratio, score_variance_core
from .._numerics.special import lbeta

__all__ = [
    "beta_gap_constant",
    "effective_keys_limit",
    "entropy_limit",
    "entropy_plateau_slope",
    "entropy_slope_limit",
    "funk_hecke_multiplier",
    "gap_constant",
    "kappa",
    "log_kernel_ratio",
    "log_moment",
    "log_moment_scaled",
    "mean_resultant",
    "mean_resultant_large_beta",
    "one_minus_mean_resultant",
    "score_variance",
    "second_order_mean",
    "subcritical_covariance",
]


def _check_d(d, name: str = "d") -> float:
    if isinstance(d, jax.core.Tracer):
        raise InputError(f"{name} must be a static Python number (got a traced value)")
    return check_real(name, d, minimum=2.0)


def _prepare(beta, d):
    """(namespace, beta as a floating array, nu) with d and (concrete) beta validated."""
    nu = float(_check_d(d)) / 2.0 - 1.0
    ns = namespace(beta)
    if not isinstance(beta, jax.core.Tracer):
        arr = np.asarray(beta)
        if arr.dtype.kind not in "iuf":
            raise InputError(f"beta must be real numbers, got dtype {arr.dtype}")
        if np.any(~np.isfinite(arr)) or np.any(arr < 0):
            raise InputError(f"beta must be finite and >= 0 (beta multiplies <q,k>), got {beta!r}")
    return ns, ns.asarray(beta), nu


def _parts(beta, d):
    ns, x, nu = _prepare(beta, d)
    return (ns, x, *bessel_core(x, nu, ns))


def mean_resultant(beta, d):
    """Mean resultant A_d(beta) = I_{d/2}(beta) / I_{d/2-1}(beta) = E_beta[t] (docs/theory.md §b).

    beta >= 0 of any shape, d >= 2 real (static). Differentiable: d A/d beta = :func:`score_variance`.
    Large beta: A_d = 1 - (d-1)/(2 beta) + O(beta^-2).

    >>> round(float(mean_resultant(10.0, 3)), 6)  # coth(10) - 1/10
    0.9
    """
    return _parts(beta, d)[2]


def one_minus_mean_resultant(beta, d):
    """1 - A_d(beta) with full relative precision: the inward bias of the output (docs/theory.md §b).

    >>> round(float(one_minus_mean_resultant(1e8, 3)) * 1e8, 5)  # ~ (d-1)/(2 beta)
    1.0
    """
    return _parts(beta, d)[3]


def log_moment(beta, d):
    """log M_d(beta) = log E exp(beta t) = log[Gamma(d/2) (2/beta)^{d/2-1} I_{d/2-1}(beta)] (docs/theory.md §b).

    Computed as beta + (log M - beta), so the O(log beta) part keeps its precision.

    >>> import math
    >>> round(float(log_moment(2.0, 3)), 6) == round(math.log(math.sinh(2.0) / 2.0), 6)
    True
    """
    _, x, _, _, lm, _ = _parts(beta, d)
    return lm + x


def log_moment_scaled(beta, d):
    """log(M_d(beta) e^{-beta}) = log E exp(-beta u), u = 1 - t: the log partition function per key of the
    gap law (docs/theory.md §b), without the O(beta) part (so it keeps its precision at large beta).

    >>> import math
    >>> round(float(log_moment_scaled(2.0, 3)), 9) == round(math.log(math.sinh(2.0) / 2.0) - 2.0, 9)
    True
    """
    return _parts(beta, d)[4]


def score_variance(beta, d):
    """A_d'(beta) = Var_beta(t) = 1 - A^2 - (d-1) A / beta >= 0 (docs/theory.md §b).

    On the device: the derivative of A by forward-mode autodiff through the log-space form, which keeps
    its relative precision at large beta where the formula cancels (A' ~ (d-1)/(2 beta^2)); on the host
    the formula in float64 (relative error ~ beta 1e-16).

    >>> round(float(score_variance(1e4, 3)) * 1e8, 4)
    1.0
    """
    ns, x, nu = _prepare(beta, d)
    return score_variance_core(x, nu, ns)


def mean_resultant_large_beta(beta, d):
    """Large-beta expansion A_d = 1 - (d-1)/(2b) + (d-1)(d-3)/(8b^2) + (d-1)(d-3)/(8b^3) + O(b^-4).

    (docs/theory.md §b.) Exact (to exponentially small terms) for d = 3: 1 - 1/b.

    >>> round(float(mean_resultant_large_beta(100.0, 3)), 6)
    0.99
    """
    d = float(_check_d(d))
    b = namespace(beta).asarray(beta)
    return 1.0 - (d - 1) / (2.0 * b) + (d - 1) * (d - 3) / (8.0 * b**2) + (d - 1) * (d - 3) / (8.0 * b**3)


def log_kernel_ratio(beta, d):
    """log R(beta), R = M_d(2 beta) / M_d(beta)^2 = E[e^{2 beta t}] / E[e^{beta t}]^2 (docs/theory.md §b).

    R is the variance factor of a softmax average (n_eff = n/R) and grows like
    sqrt(pi) beta^{(d-1)/2} / (Gamma(d/2) 2^{d-2}) for beta >> 1.

    >>> round(float(log_kernel_ratio(0.0, 3)), 12)
    0.0
    """
    ns, x, nu = _prepare(beta, d)
    lm2 = bessel_core(2.0 * x, nu, ns)[2]
    lm1 = bessel_core(x, nu, ns)[2]
    return lm2 - 2.0 * lm1


def subcritical_covariance(beta, d):
    """Limit covariance of sqrt(n) (y - A_d q) at fixed beta, n -> infinity (docs/theory.md §b).

    Returns (S_par, S_perp) with R = M_d(2b)/M_d(b)^2,
    S_par = R [Var_{2b}(t) + (A(2b) - A(b))^2] (along q) and S_perp = R A(2b)/(2b) (each
    direction orthogonal to q).

    >>> s_par, s_perp = subcritical_covariance(5.0, 3)
    >>> round(float(s_perp), 4)
    0.45
    """
    ns, x, nu = _prepare(beta, d)
    a1, _, lm1, _ = bessel_core(x, nu, ns)
    a2, _, lm2, a2_over_x = bessel_core(2.0 * x, nu, ns)
    r = ns.xp.exp(lm2 - 2.0 * lm1)
    v2 = score_variance_core(2.0 * x, nu, ns)
    return r * (v2 + (a2 - a1) ** 2), r * a2_over_x


def second_order_mean(n, beta, d):
    """E <y, q> = A(b) + R (A(b) - A(2b)) / n + O(n^-2), R = M_d(2b)/M_d(b)^2 (docs/theory.md §b).

    >>> round(float(second_order_mean(1e9, 10.0, 3)), 6)
    0.9
    """
    ns, x, nu = _prepare(beta, d)
    a1, _, lm1, _ = bessel_core(x, nu, ns)
    a2, _, lm2, _ = bessel_core(2.0 * x, nu, ns)
    return a1 + ns.xp.exp(lm2 - 2.0 * lm1) * (a1 - a2) / n


def effective_keys_limit(n, beta, d):
    """Kish effective number of keys n_eff = (sum w)^2 / sum w^2 -> n / R (docs/theory.md §b).

    R = M_d(2b) / M_d(b)^2 ~ sqrt(pi) beta^{(d-1)/2} / (Gamma(d/2) 2^{d-2}) for beta >> 1.

    >>> round(float(effective_keys_limit(1000, 0.0, 3)))
    1000
    """
    return n * namespace(beta).xp.exp(-log_kernel_ratio(beta, d))


def entropy_limit(n, beta, d):
    """H(n, beta) = log n + log M_d(beta) - beta A_d(beta) + o(1) at fixed beta (docs/theory.md §f).

    Computed as log n + (log M - beta) + beta (1 - A), so large beta keeps its precision.

    >>> import math
    >>> round(float(entropy_limit(1e6, 0.0, 3)), 6) == round(math.log(1e6), 6)
    True
    """
    ns, x, _, one_minus, lm, _ = _parts(beta, d)
    return ns.xp.log(ns.asarray(n, x.dtype)) + lm + x * one_minus


def entropy_slope_limit(beta, d):
    """dH/d log beta = -beta^2 A_d'(beta) at n = infinity (docs/theory.md §f).

    >>> round(float(entropy_slope_limit(1e6, 3)), 4)  # plateau -(d-1)/2
    -1.0
    """
    ns, x, nu = _prepare(beta, d)
    return -(x**2) * score_variance_core(x, nu, ns)


def entropy_plateau_slope(beta, d):
    """Plateau of the entropy slope, -(d-1)/2 + (d-1)(d-3)/(4 beta), for 1 << beta << n^{2/(d-1)}
    (docs/theory.md §f).

    >>> round(float(entropy_plateau_slope(10.0, 5)), 6)
    -1.8
    """
    d = float(_check_d(d))
    b = namespace(beta).asarray(beta)
    return -(d - 1) / 2.0 + (d - 1) * (d - 3) / (4.0 * b)


def funk_hecke_multiplier(d: int, l: int, beta):
    """a_l(beta) = I_{l+d/2-1}(beta) / I_{d/2-1}(beta): the kernel exp(beta <x,y>)/M_d(beta) on degree-l
    harmonics (Funk-Hecke; docs/theory.md §g). a_0 = 1, a_1 = A_d.

    a_l = 1 - l(l+d-2)/(2 beta) + O(beta^-2); computed as the product A_d A_{d+2} ... A_{d+2l-2}
    (I_{m+1}/I_m is the mean resultant at dimension 2m+2), each factor in log space, so any l and beta
    work without overflow.

    >>> round(float(funk_hecke_multiplier(3, 1, 100.0)), 10)  # coth(100) - 1/100
    0.99
    """
    d = check_int("d", d, minimum=2)
    l = check_int("l", l, minimum=0)
    ns, x, nu = _prepare(beta, d)
    if l == 0:
        return ns.xp.ones_like(x)
    return bessel_ratio(x, nu, l, ns)[..., -1]


def beta_gap_constant(a: float, b: float) -> float:
    """C = 2^{-a} / (a B(a, b)) of a gap law u/2 ~ Beta(a, b): P(u <= s) ~ C s^a as s -> 0 (docs/theory.md §d).

    >>> beta_gap_constant(1.0, 1.0)  # uniform S^2: P(u <= s) = s/2
    0.5
    """
    a = check_real("a", a, positive=True)
    b = check_real("b", b, positive=True)
    log_c = -a * math.log(2.0) - math.log(a) - lbeta(a, b)
    if log_c > 709.0:
        raise InputError(f"the gap constant C = exp({log_c:.6g}) of u/2 ~ Beta({a:g}, {b:g}) overflows float64")
    return math.exp(log_c)


def gap_constant(d=None, *, alpha=None):
    """C in P(u <= s) ~ C s^{alpha/2} (docs/theory.md §c, §d).

    * ``gap_constant(d)``: uniform keys on S^{d-1}, C_d = 2 kappa_d/(d-1) = 2^{-h}/(h B(h, h)), h = (d-1)/2.
    * ``gap_constant(alpha=a)``: PowerLawCap on S^2, P(u <= s) = (s/2)^{a/2}, C = 2^{-a/2}.
    * ``gap_constant(d, alpha=a)``: PowerLawCap on S^{d-1} (u/2 ~ Beta(a/2, (d-1)/2)),
      C = 2^{-a/2} / ((a/2) B(a/2, (d-1)/2)); alpha = d-1 gives C_d.

    >>> [round(gap_constant(d), 12) for d in (3, 5)], round(gap_constant(alpha=4.0), 12)
    ([0.5, 0.75], 0.25)
    """
    return beta_gap_constant(*_beta_params(d, alpha))


def kappa(d=None, *, alpha=None):
    """kappa in the gap density f(u) ~ kappa u^{alpha/2 - 1} near 0 (docs/theory.md §c): kappa = C alpha/2.

    For uniform keys kappa_d = 2^{(d-3)/2} Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)).

    >>> round(kappa(3), 12), round(kappa(5), 12)
    (0.5, 1.5)
    """
    a, _ = _beta_params(d, alpha)
    return gap_constant(d, alpha=alpha) * a


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
