"""The mean resultant A_d and the moment M_d of the von Mises-Fisher law, in log space (docs/theory.md §b).

With nu = d/2 - 1: A_d(x) = I_{nu+1}(x)/I_nu(x) and M_d(x) = Gamma(nu+1) (2/x)^nu I_nu(x) = 0F1(; nu+1; x^2/4).
One implementation, evaluated on the host (NumPy float64) or on the device (JAX, any float dtype) by
:mod:`phasejax._numerics.arrays`: the power series of 0F1 where it converges fast (sqrt(nu^2 + x^2) below a
switch point, or x^2 < 16 (nu + 1)), Debye's uniform asymptotic expansion (DLMF 10.41) beyond, both in log
space with the differences taken analytically, so 1 - A keeps its relative precision up to x = 1e8 and
beyond in float32 and float64. The Funk-Hecke multipliers a_l = I_{nu+l}/I_nu are products of A's at
nu, nu+1, ..., nu+l-1 (:func:`bessel_ratio`).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import numpy as np

from .arrays import DEVICE, HOST, Namespace

_R_SWITCH = 40.0  # float64: series for sqrt(nu^2 + x^2) < 40 (or x < 4), Debye's expansion beyond
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


def _debye_matrix() -> np.ndarray:
    """(K-1, D+1) matrix of the coefficients of P_1..P_{K-1} (ascending powers of p)."""
    deg = max(len(c) for c in _DEBYE[1:])
    m = np.zeros((len(_DEBYE) - 1, deg))
    for k, c in enumerate(_DEBYE[1:]):
        m[k, : len(c)] = c
    return m


_DEBYE_MAT = _debye_matrix()


def _series_0f1(nu, y, ns: Namespace):
    """(S, S - 1) with S = 0F1(; nu+1; y) = sum_k y^k / (k! (nu+1)_k), Horner from the top.

    All terms are positive; S - 1 = y/(nu+1) (1 + ...) keeps its relative precision at small y."""
    xp = ns.xp
    one = xp.ones_like(y)

    def body(i, acc):
        k = xp.asarray(_N_SERIES - i, dtype=y.dtype)
        return one + acc * y / (k * (nu + k))

    acc = ns.fori(_N_SERIES - 1, body, one)  # terms k >= 2, factored
    sm1 = acc * y / (nu + 1.0)
    return 1.0 + sm1, sm1


def _debye_logsum(mu, x, ns: Namespace):
    """log sum_k u_k(p) / mu^k = log sum_k P_k(p) / R^k with R = sqrt(mu^2 + x^2), p = mu/R."""
    xp = ns.xp
    R = xp.sqrt(mu * mu + x * x)
    p = mu / R
    dt = x.dtype
    kmax, deg = _DEBYE_MAT.shape
    pw = [xp.ones_like(p)]
    for _ in range(deg - 1):  # powers by products: no 0^0 in the gradient at p = 0 (d = 2)
        pw.append(pw[-1] * p)
    pw = xp.stack(pw, axis=-1)  # (..., D+1)
    polys = pw @ xp.asarray(_DEBYE_MAT.T, dtype=dt)  # (..., K-1): P_k(p)
    powers = xp.reshape(xp.arange(1, kmax + 1, dtype=dt), (1,) * R.ndim + (kmax,))
    inv = (1.0 / R)[..., None] ** powers
    return xp.log1p(xp.sum(polys * inv, axis=-1)), R


def _debye_log_ive(mu, x, ns: Namespace):
    """log I_mu(x) - x from Debye's expansion (valid for sqrt(mu^2 + x^2) >~ 12)."""
    xp = ns.xp
    logsum, R = _debye_logsum(mu, x, ns)
    rmx = mu * mu / (R + x)  # R - x
    return rmx - mu * xp.log1p((mu + rmx) / x) - 0.5 * xp.log(2.0 * math.pi * R) + logsum


def _debye_log_ratio(nu, x, ns: Namespace):
    """log I_{nu+1}(x)/I_nu(x) from Debye's expansion, differences taken analytically."""
    xp = ns.xp
    ls0, R0 = _debye_logsum(nu, x, ns)
    ls1, R1 = _debye_logsum(nu + 1.0, x, ns)
    dR = (2.0 * nu + 1.0) / (R0 + R1)
    t_b = -xp.log1p((nu + 1.0 + (nu + 1.0) ** 2 / (R1 + x)) / x)  # log(x / (nu+1+R1))
    t_c = -nu * xp.log1p((1.0 + dR) / (nu + R0))
    t_d = -0.25 * xp.log1p((2.0 * nu + 1.0) / (R0 * R0))
    return dR + t_b + t_c + t_d + (ls1 - ls0)


def _core(x, nu, ns: Namespace):
    """(A, 1 - A, log M - x, A/x) elementwise for floating x >= 0 and nu > -1 (broadcasting)."""
    xp = ns.xp
    nu = xp.asarray(nu, dtype=x.dtype)
    # float32 switches earlier: the series ratio of two sums ~e^x loses ~x ulps of 1 - A
    r_switch = _R_SWITCH if x.dtype == np.float64 else _R_SWITCH_F32
    # the series also converges fast whenever y = x^2/4 < 4 (nu + 1): term ratio y/(k(nu+k)) < 4/k
    use = (x * x + nu * nu < r_switch**2) | (x < 4.0) | (x * x < 16.0 * (nu + 1.0))
    xs = xp.where(use, x, 0.0)  # double where: each branch sees only arguments it is valid for
    xd = xp.where(use, 2.0 * r_switch, x)
    y = xs * xs / 4.0
    s0, s0m1 = _series_0f1(nu, y, ns)
    s1, _ = _series_0f1(nu + 1.0, y, ns)
    a_over_x_s = s1 / (2.0 * (nu + 1.0) * s0)
    a_s = xs * a_over_x_s
    lm_s = xp.log1p(s0m1) - xs
    loga_d = _debye_log_ratio(nu, xd, ns)
    lm_d = ns.sp.gammaln(nu + 1.0) + nu * (math.log(2.0) - xp.log(xd)) + _debye_log_ive(nu, xd, ns)
    a_d = xp.exp(loga_d)
    a = xp.where(use, a_s, a_d)
    one_minus = xp.where(use, 1.0 - a_s, -xp.expm1(loga_d))
    lm = xp.where(use, lm_s, lm_d)
    return a, one_minus, lm, xp.where(use, a_over_x_s, a_d / xd)


_core_jit = jax.jit(functools.partial(_core, ns=DEVICE))


def bessel_core(x, nu, ns: Namespace):
    """(A, 1 - A, log M - x, A/x) at x (floating, >= 0, in ``ns``), nu = d/2 - 1 (a number or an array)."""
    if ns.is_jax:
        x, nu = jax.numpy.broadcast_arrays(x, jax.numpy.asarray(nu, x.dtype))
        return _core_jit(x, nu)
    x, nu = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(nu, np.float64))
    return _core(x, nu, HOST)


@jax.jit
def _score_var_jit(x, nu):
    return jax.jvp(lambda b: _core_jit(b, nu)[0], (x,), (jax.numpy.ones_like(x),))[1]


def score_variance_core(x, nu, ns: Namespace):
    """A'(x) = Var(t) = 1 - A^2 - (2 nu + 1) A/x >= 0.

    Device: the derivative of the log-space A by forward-mode autodiff (no cancellation at large x, where
    A' ~ (2 nu + 1)/(2 x^2)). Host: the identity in the form (1 - A)(1 + A) - (2 nu + 1) (A/x), whose
    relative rounding error grows like x eps (1e-8 at x = 1e8 in float64)."""
    if ns.is_jax:
        x, nu = jax.numpy.broadcast_arrays(x, jax.numpy.asarray(nu, x.dtype))
        return _score_var_jit(x, nu)
    a, om, _, a_x = bessel_core(x, nu, ns)
    return np.maximum(om * (1.0 + a) - (2.0 * np.asarray(nu) + 1.0) * a_x, 0.0)


def bessel_ratio(x, nu, k: int, ns: Namespace):
    """(r_1, ..., r_k) with r_j = I_{nu+j}(x)/I_nu(x), shape x.shape + (k,): cumulative products of
    A at orders nu, nu+1, ..., nu+k-1 (I_{m+1}/I_m is A at dimension 2m + 2)."""
    xp = ns.xp
    orders = xp.asarray(np.arange(k, dtype=np.float64), dtype=x.dtype) + nu
    a = bessel_core(x[..., None], orders, ns)[0]
    return xp.cumprod(a, axis=-1)
