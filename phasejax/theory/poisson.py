"""The critical window: the Poisson-process limit of the top keys, and lambda* (docs/theory.md §c, §d).

With beta = lambda n^{2/alpha}, the energies z_i = beta u_i of the keys nearest the query converge to a
Poisson point process with mean measure rho z^h, h = alpha/2, rho = C lambda^{-h}. Everything depends on
(h, rho) only. This module computes the exact functionals of that limit (E[max weight], 1 - E[max weight],
E sum w^2, E H) by fixed-node double-exponential quadrature in log space, samples its ordered weights, and
locates lambda*, the peak of the susceptibility chi = d E[max weight] / d log lambda.

Shape contracts: ``h`` is a static Python number; ``rho`` a scalar (``vmap`` for many). Host or device by
the argument (:mod:`phasejax._numerics.arrays`): a Python or NumPy ``rho`` gives a NumPy float64 result; a
JAX ``rho`` (or tracer) a JAX result in its dtype, jittable and differentiable in rho.
:func:`poisson_limit_weights` is JAX (it samples). :func:`lambda_star` returns host floats (float64).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import InputError, check_int, check_real
from .._numerics.arrays import DEVICE, HOST, Namespace, as_float, default_float, namespace
from .._numerics.peak import host_peak
from .._numerics.quadrature import exp_sinh, tanh_sinh
from .sphere import _check_d, gap_constant

__all__ = [
    "LambdaStar",
    "lambda_star",
    "poisson_expected_entropy",
    "poisson_expected_max_weight",
    "poisson_expected_max_weight_d3",
    "poisson_expected_sum_w2",
    "poisson_limit_weights",
    "poisson_one_minus_max_weight",
    "supercritical_tail",
]

_T_CUT = 45.0  # e^{-t} weights are cut at t = 45 (relative error < e^-44)
_RULE_R = exp_sinh(-36.0, math.log(60.0), 1 / 8)  # outer r (weight e^-r), 45 nodes
_RULE_S = exp_sinh(-36.0, math.log(60.0), 1 / 8)  # middle s (weight e^-s), 45 nodes
_RULE_T = tanh_sinh(4.3, 1 / 10)  # inner t in (0, min(s, 45)) (weight e^-t), 87 nodes
_RULE_D3 = exp_sinh(-40.0, math.log(80.0), 1 / 32)


def _check_h(h) -> float:
    if isinstance(h, jax.core.Tracer):
        raise InputError("h must be a static Python number (got a traced value)")
    return check_real("h", h, positive=True)


def _check_rho(rho):
    if isinstance(rho, jax.core.Tracer):
        return rho
    arr = np.asarray(rho)
    if arr.ndim != 0:
        raise InputError(f"rho must be a scalar, got shape {arr.shape}; vmap over rho for many values")
    check_real("rho", rho, positive=True)
    return rho


def _nodes(rule, like, ns: Namespace):
    return tuple(ns.xp.asarray(a, dtype=like.dtype) for a in rule)


def _ppp_inner(h, log_rho, ns: Namespace, *, kernels: bool):
    """rho J(s, z(r)) (and the kernels K, Q) on the (r, s) grid.

    With z0 = rho^{-1/h}, q = r^{1/h} (z = z0 q) and ell = log(s/t)/z0:
      rho J = int_0^min(s,T) e^{-t} [(q+ell)^h - q^h] dt,
      K     = (1/s)   int e^{-t} h (q+ell)^{h-1} ell dt,
      Q     = (1/s^2) int e^{-t} (h/z0) (q+ell)^{h-1} t dt.
    Returns (w_r e^{-r} (Nr, 1), w_s e^{-s} (1, Ns), s, rhoJ, K, Q), K and Q None unless ``kernels``."""
    xp = ns.xp
    lr, lwr = _nodes(_RULE_R, log_rho, ns)
    ls, lws = _nodes(_RULE_S, log_rho, ns)
    lsig, _, lwt = _nodes(_RULE_T, log_rho, ns)
    inv_z0 = xp.exp(log_rho / h)
    q = xp.exp(lr / h)[:, None, None]  # (Nr,1,1)
    lsv = ls[None, :, None]  # (1,Ns,1)
    logb = xp.minimum(lsv, math.log(_T_CUT))
    ell = ((lsv - logb) - lsig[None, None, :]) * inv_z0  # log(s/t) / z0 >= 0
    logt = logb + lsig[None, None, :]
    lw = logb + lwt[None, None, :] - xp.exp(logt)  # log of dt e^{-t}
    log_pow_diff = h * xp.log(q + ell) + xp.log(-xp.expm1(-h * xp.log1p(ell / q)))  # log[(q+ell)^h - q^h]
    rho_j = xp.exp(xp.minimum(ns.logsumexp(lw + log_pow_diff, axis=-1), 30.0))
    k = qq = None
    if kernels:
        lq = xp.log(q + ell) * (h - 1.0)
        k = xp.exp(ns.logsumexp(lw + lq + xp.log(h * ell), axis=-1) - ls[None, :])
        qq = xp.exp(ns.logsumexp(lw + lq + logt, axis=-1) - 2.0 * ls[None, :]) * h * inv_z0
    wr = xp.exp(lwr - xp.exp(lr))[:, None]
    ws = xp.exp(lws - xp.exp(ls))[None, :]
    return wr, ws, xp.exp(ls)[None, :], rho_j, k, qq


def _ppp(h, log_rho, which: int, ns: Namespace):
    """One of (E W_(1), 1 - E W_(1), E sum w^2, E H) at log rho."""
    xp = ns.xp
    wr, ws, s, rho_j, k, qq = _ppp_inner(h, log_rho, ns, kernels=which >= 2)
    if which == 0:
        f = xp.exp(-rho_j)
    elif which == 1:
        f = -xp.expm1(-rho_j)
    elif which == 2:
        f = s * xp.exp(-rho_j) * (1.0 + qq)
    else:
        f = -xp.expm1(-rho_j) / s + xp.exp(-rho_j) * k
    return xp.sum(wr * ws * f)


_ppp_jit = jax.jit(functools.partial(_ppp, ns=DEVICE), static_argnums=(2,))


def _ppp_summary(h: float, log_rho: float) -> tuple[float, float, float]:
    """(E W_(1), E H, E sum w^2) at log rho on the host (float64), from one evaluation of the kernels."""
    wr, ws, s, rho_j, k, qq = _ppp_inner(h, np.float64(log_rho), HOST, kernels=True)
    phi = np.exp(-rho_j)
    w = wr * ws
    return (float(np.sum(w * phi)), float(np.sum(w * (-np.expm1(-rho_j) / s + phi * k))),
            float(np.sum(w * s * phi * (1.0 + qq))))


def _ppp_public(h, rho, which: int):
    h = _check_h(h)
    rho = _check_rho(rho)
    ns = namespace(rho)
    if ns.is_jax:
        lr = jnp.log(as_float(rho))
        return _ppp_jit(jnp.asarray(h, lr.dtype), lr, which)
    return _ppp(h, np.log(np.float64(rho)), which, HOST)


def poisson_expected_max_weight(h, rho):
    """E W_(1) in the Poisson limit with mean measure rho z^h (docs/theory.md §c).

    E W_(1) = int_0^inf dr e^{-r} int_0^inf ds e^{-s} exp(-rho J(s, z(r))), z(r) = (r/rho)^{1/h},
    J(s, z) = int_0^s e^{-t} [(z + log(s/t))^h - z^h] dt. Fixed exp-sinh (r, s) and tanh-sinh (t) nodes
    in log space: ~1e-8 or better in float64 (checked for h in [0.5, 8] across the critical window; the s
    nodes stop at e^-36, so regimes with E sum w^2 below ~1e-12 (e^H beyond ~e^30 keys) are outside the
    rule's range).

    >>> round(float(poisson_expected_max_weight(1.0, 0.5)), 6)
    0.729488
    """
    return _ppp_public(h, rho, 0)


def poisson_one_minus_max_weight(h, rho):
    """1 - E W_(1) with full relative precision (deep supercritical; docs/theory.md §c).

    1 - E W_(1) = int dr e^{-r} int ds e^{-s} (1 - exp(-rho J(s, z(r)))).

    >>> round(float(poisson_one_minus_max_weight(1.0, 0.5)), 6)
    0.270512
    """
    return _ppp_public(h, rho, 1)


def poisson_expected_sum_w2(h, rho):
    """E sum_k W_k^2 in the Poisson limit (docs/theory.md §c).

    Conditioning on the top point (energy z(r)) and writing 1/(1+Z')^2 = int s e^{-s(1+Z')} ds:
    E sum w^2 = int dr e^{-r} int ds s e^{-s} Phi(s, r) [1 + Q(s, r)], Phi = exp(-rho J(s, z(r))),
    Q = int mu(dz' above z) e^{-2(z'-z)} exp(-s e^{-(z'-z)}). This equals the sheet's
    int dr int ds s e^{-s} phi(s e^{z(r)}) but has no heavy tails.

    >>> round(float(poisson_expected_sum_w2(1.0, 0.5)), 6)
    0.635256
    """
    return _ppp_public(h, rho, 2)


def poisson_expected_entropy(h, rho):
    """E H (nats) in the Poisson limit (docs/theory.md §c).

    Given the top point, H = log(1+Z') + sum_j v_j e^{-v_j}/(1+Z') (v_j = z_j - z_(1)), so
    E H = int dr e^{-r} int ds e^{-s} [(1 - Phi)/s + Phi K], K = (1/s) int mu(dz') v e^{-v} exp(-s e^{-v})
    (Frullani for the log, Mecke for the sum). Equal to the sheet's formula with phi(s), without its heavy
    log-tails.

    >>> round(float(poisson_expected_entropy(1.0, 0.5)), 6)
    0.668783
    """
    return _ppp_public(h, rho, 3)


def _ein(s, ns: Namespace):
    """Ein(s) = int_0^s (1 - e^{-t})/t dt = E_1(s) + log s + gamma (series for s <= 2)."""
    xp = ns.xp
    small = s <= 2.0
    ss = xp.where(small, s, 1.0)
    sl = xp.where(small, 4.0, s)
    k = xp.arange(1, 31, dtype=s.dtype)
    k = xp.reshape(k, (1,) * ss.ndim + (30,))
    terms = xp.cumprod(-ss[..., None] / k, axis=-1)  # (-s)^k / k!
    series = -xp.sum(terms / k, axis=-1)
    large = ns.sp.exp1(sl) + xp.log(sl) + np.euler_gamma
    return xp.where(small, series, large)


def poisson_expected_max_weight_d3(rho):
    """The h = 1 (d = 3, uniform S^2) closed form E W_(1) = int_0^inf exp(-s - rho Ein(s)) ds.

    (docs/theory.md §c, a generalised Dickman integral.) Ein(s) = E_1(s) + log s + gamma. A 1-D exp-sinh
    quadrature, independent of the 3-D rule of :func:`poisson_expected_max_weight`.

    >>> round(float(poisson_expected_max_weight_d3(0.5)), 6)
    0.729488
    """
    rho = _check_rho(rho)
    ns = namespace(rho)
    rho = ns.asarray(rho)
    ls, lw = _nodes(_RULE_D3, rho, ns)
    s = ns.xp.exp(ls)
    return ns.xp.sum(ns.xp.exp(lw - s - rho * _ein(s, ns)))


def supercritical_tail(h, rho):
    """Deep supercritical law 1 - E W_(1) ~ log(2) h Gamma(2 - 1/h) rho^{1/h} (h > 1/2; docs/theory.md §c).

    >>> round(float(supercritical_tail(1.0, 1e-4) / 1e-4), 6)  # log 2 for d = 3
    0.693147
    """
    h = _check_h(h)
    if h <= 0.5:
        raise InputError(f"h must be > 1/2 for the supercritical tail law (d > 2), got {h!r}")
    r = namespace(rho).asarray(rho)
    return math.log(2.0) * h * math.gamma(2.0 - 1.0 / h) * r ** (1.0 / h)


def poisson_limit_weights(key: PRNGKeyArray, h, rho, m: int | float) -> Float[Array, " m"]:
    """The first m ordered weights W_(1) >= ... >= W_(m) of the Poisson limit, shape (m,).

    Energies z_(k) = (Gamma_k / rho)^{1/h}, Gamma_k the arrival times of a unit Poisson process
    (docs/theory.md §c). Points beyond the m-th enter the normaliser through their conditional mean
    E[sum_{k>m} e^{-z_k} | z_(m)] = rho Gamma(h+1) Q(h, z_(m)) (Q the regularised upper incomplete gamma),
    so sum(W) = 1 - (tail share). dtype: rho's if it is a floating JAX array, else the default float.

    >>> w = poisson_limit_weights(jax.random.key(0), 1.0, 0.5, 64)
    >>> w.shape, bool(w[0] >= w[1])
    ((64,), True)
    """
    h = _check_h(h)
    m = check_int("m", m, minimum=1)
    rho = _check_rho(rho)
    rho = as_float(rho) if namespace(rho).is_jax else jnp.asarray(rho, default_float())
    dtype = rho.dtype
    gam = jnp.cumsum(jax.random.exponential(key, (m,), dtype))
    z = jnp.exp((jnp.log(gam) - jnp.log(rho)) / h)
    tail = rho * math.gamma(h + 1.0) * jax.scipy.special.gammaincc(jnp.asarray(h, dtype), z[-1])
    num = jnp.exp(-(z - z[0]))
    return num / (jnp.sum(num) + tail * jnp.exp(z[0]))


class LambdaStar(NamedTuple):
    """Peak of the Poisson-limit susceptibility chi = d E[W_(1)]/d log lambda (host floats)."""

    lambda_star: float
    rho_star: float
    chi_max: float
    E_max_weight: float
    h: float
    C: float


def lambda_star(d=None, *, alpha=None, C=None) -> LambdaStar:  # noqa: N803  (C is the sheet's name)
    """lambda* = argmax_lambda d E[W_(1)]/d log lambda in the Poisson limit (docs/theory.md §c, §d).

    With rho = C lambda^{-h}, d/d log lambda = -h d/d log rho, so the peak is that of the universal curve:
    rho*(h) = argmax of -dE/d log rho, found on the host in float64 (the root of the second derivative of a
    Chebyshev interpolant of E(log rho), :func:`phasejax._numerics.peak.host_peak`), then
    lambda* = (C/rho*)^{1/h}, chi_max = h max(-dE/d log rho). ``d``: uniform keys on S^{d-1}; ``alpha``
    (with optional ``C``; default the PowerLawCap value 2^{-alpha/2} on S^2, or on S^{d-1} when ``d`` is
    given too).

    >>> round(lambda_star(3).lambda_star, 6)
    0.381447
    """
    if alpha is None and d is None:
        raise InputError("lambda_star needs d (uniform keys) or alpha (local exponent); got neither")
    if alpha is not None:
        alpha = check_real("alpha", alpha, positive=True)
        h = alpha / 2.0
        c = C if C is not None else gap_constant(d, alpha=alpha)
    else:
        d = _check_d(d)
        h = (d - 1) / 2.0
        c = C if C is not None else gap_constant(d)
    c = check_real("C", c, positive=True)
    if h > H_MAX:
        raise InputError(f"lambda_star: the Poisson-limit peak is verified for h = alpha/2 <= {H_MAX:g} (alpha <= "
                         f"{2 * H_MAX:g}, uniform keys d <= {2 * H_MAX + 1:g}); got h = {h:g}. Beyond it the universal "
                         "curve's quadrature (log rho* < -500) loses the peak; use the exact finite-n engine "
                         "(phasejax.theory.finite_n_beta_peak) at such d")
    lr, chi, ew = _rho_star(float(h))
    log_lam = (math.log(c) - lr) / h
    return LambdaStar(math.exp(log_lam), math.exp(lr), h * chi, ew, h, c)


# Largest h = alpha/2 of lambda_star: lambda*(h) ~ h/2 is smooth up to h = 108 and erratic from h = 110 on (the
# peak search on the universal curve finds spurious extrema once log rho* < -500); checked on a grid of h.
H_MAX = 108.0


@functools.lru_cache(maxsize=256)
def _rho_star(h: float) -> tuple[float, float, float]:
    """(log rho*, max(-dE/dlog rho), E W_(1) at the peak) for the universal curve of h (host float64)."""
    # the window's natural scale: a = h rho^{1/h}, i.e. log rho = h (log a - log h), |log a| <~ 3
    lo, hi = h * (-3.0 - math.log(h)), h * (3.0 - math.log(h))
    x, ew, slope = host_peak(lambda lr: _ppp(h, np.float64(lr), 0, HOST), lo, hi, sign=-1.0)
    return x, -slope, ew
