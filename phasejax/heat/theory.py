"""The n = infinity theory of one attention step on a zonal density (docs/theory.md §g): the exact
Funk-Hecke map, its first-order (backward heat) limit, and the exact amplification of a zonal mode.

Funk-Hecke multipliers a_k(beta) = I_{k+nu}(beta)/I_nu(beta), nu = d/2 - 1
(:func:`phasejax.theory.funk_hecke_multiplier`), computed as products of mean resultants in log space, so
every degree and every beta works without overflow and without a data-dependent recurrence bound.
``exact_map``/``zonal_map``/``heat_displacement`` act on token arrays (JAX, the tokens' dtype);
``exact_gain`` and ``linear_gain_spectrum`` follow their beta (host float64 for Python/NumPy numbers).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from .._checks import InputError, check_array, check_int, check_real
from .._numerics.arrays import DEVICE, HOST, Namespace, default_float, namespace
from .._numerics.bessel import bessel_ratio
from ..theory.sphere import log_moment_scaled
from .zonal import _axis, _check_eps, _check_heat_d, _check_l, gegenbauer

__all__ = ["exact_map", "zonal_map", "heat_displacement", "linear_gain_spectrum", "first_order_gain", "exact_gain"]


def _multipliers(d, l, beta, ns: Namespace):
    """(a_1, a_l, a_{l+1}) at beta: the Funk-Hecke multipliers a_k = I_{k+nu}/I_nu (nu = d/2 - 1)."""
    a = bessel_ratio(beta, d / 2 - 1, l + 1, ns)  # a_1 .. a_{l+1}
    return a[..., 0], a[..., l - 1], a[..., l]


def _map_coefficients(d, l, beta, ns: Namespace):
    """T(x) = [c_r x + eps (c_p P_l x + c_t P_l' (e - t x))] / [1 + eps c_n P_l] (all divided by g_0)."""
    a1, al, al1 = _multipliers(d, l, beta, ns)
    return a1, al1 + l * al / beta, al / beta, al


def exact_map(x: Float[ArrayLike, "N d"], beta, l: int, eps, *, e: Float[ArrayLike, " d"] | None = None):
    """The n = infinity attention map T(x) = E_rho[y e^{beta<x,y>}] / E_rho[e^{beta<x,y>}] for
    rho = 1 + eps P_l(<y,e>) (unnormalised: |T(x)| < 1).

    With g_k(r) = Gamma(d/2)(2/r)^{d/2-1} I_{k+d/2-1}(r) (Funk-Hecke: E[e^{beta<x,y>} P_k(<y,e>)] = g_k(beta) P_k(t)),
    T(x) = [g_0'(beta) x + eps (g_l'(beta) P_l(t) x + (g_l(beta)/beta) P_l'(t)(e - t x))]
           / [g_0(beta) + eps g_l(beta) P_l(t)],
    t = <x,e>; for d = 3 g_k = i_k, the modified spherical Bessel functions (docs/theory.md §g). Computed from
    a_k = g_k/g_0: g_0'/g_0 = a_1, g_l'/g_0 = a_{l+1} + l a_l/beta.

    >>> import jax.numpy as jnp
    >>> T = exact_map(jnp.array([[0.0, 0.0, 1.0]]), 100.0, 2, 0.0)
    >>> round(float(T[0, 2]), 6)  # A_3(100) = coth(100) - 1/100
    0.99
    """
    check_array("x", x, ndim=2)
    d = np.shape(x)[1]
    l = _check_l(l)
    if l == 0:
        raise InputError("l must be >= 1 for a zonal mode, got 0")
    check_real("beta", beta, positive=True)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(default_float())
    e = _axis(e, d, x.dtype)
    c_r, c_p, c_t, c_n = _map_coefficients(d, l, jnp.asarray(beta, x.dtype), DEVICE)
    t = x @ e
    p, dp = gegenbauer(t, d, l, derivative=True)
    num = (c_r + eps * c_p * p)[:, None] * x + (eps * c_t * dp)[:, None] * (e[None, :] - t[:, None] * x)
    return num / (1 + eps * c_n * p)[:, None]


def zonal_map(x: Float[ArrayLike, "N d"], beta, coeffs, *, e: Float[ArrayLike, " d"] | None = None):
    """The n = infinity map for a general zonal density rho = 1 + sum_{m>=1} c_m P_m(<x,e>) (docs/theory.md §g).

    Funk-Hecke term by term (a_m = I_{m+nu}/I_nu, nu = d/2 - 1, c_0 = 1):
    T(x) = sum_m c_m [(a_{m+1} + m a_m/beta) P_m(t) x + (a_m/beta) P_m'(t)(e - t x)] / sum_m c_m a_m P_m(t).
    ``coeffs`` = (c_1, ..., c_M); one mode c_l = eps reproduces :func:`exact_map`. With the projection
    estimates c_m = :func:`mode_amplitude` of a sample it is the map of the cloud's *empirical* zonal density.

    >>> import jax.numpy as jnp
    >>> x = jnp.array([[0.6, 0.8, 0.0]])
    >>> bool(jnp.allclose(zonal_map(x, 20.0, [0.0, 0.5]), exact_map(x, 20.0, 2, 0.5), atol=1e-6))
    True
    """
    check_array("x", x, ndim=2)
    check_real("beta", beta, positive=True)
    x = jnp.asarray(x)
    d = x.shape[1]
    e = _axis(e, d, x.dtype)
    c = np.atleast_1d(np.asarray(coeffs, dtype=np.float64))
    m_max = c.size
    b = jnp.asarray(beta, x.dtype)
    a = jnp.concatenate([jnp.ones((1,), x.dtype), bessel_ratio(b, d / 2 - 1, m_max + 1, DEVICE)])
    t = x @ e
    num_x = a[1] * jnp.ones_like(t)
    num_e = jnp.zeros_like(t)
    den = jnp.ones_like(t)
    for m in range(1, m_max + 1):
        if c[m - 1] == 0:
            continue
        p, dp = gegenbauer(t, d, m, derivative=True)
        cm = float(c[m - 1])
        num_x = num_x + cm * (a[m + 1] + m * a[m] / b) * p
        num_e = num_e + cm * (a[m] / b) * dp
        den = den + cm * a[m] * p
    return (num_x[:, None] * x + num_e[:, None] * (e[None, :] - t[:, None] * x)) / den[:, None]


def heat_displacement(x: Float[ArrayLike, "N d"], beta, l: int, eps, *, e: Float[ArrayLike, " d"] | None = None):
    """First-order displacement (1/beta) grad_S log rho(x) - ((d-1)/(2 beta)) x for rho = 1 + eps P_l(<x,e>).

    grad_S log rho = eps P_l'(t) (e - t x) / (1 + eps P_l(t)) (docs/theory.md §g); T(x) - x = this + O(beta^-2).

    >>> import jax.numpy as jnp
    >>> round(float(heat_displacement(jnp.array([[1.0, 0.0, 0.0]]), 10.0, 2, 0.5)[0, 0]), 6)  # -(d-1)/(2 beta)
    -0.1
    """
    check_array("x", x, ndim=2)
    d = np.shape(x)[1]
    check_real("beta", beta, positive=True)
    x = jnp.asarray(x)
    e = _axis(e, d, x.dtype)
    t = x @ e
    p, dp = gegenbauer(t, d, l, derivative=True)
    grad = (eps * dp / (1 + eps * p))[:, None] * (e[None, :] - t[:, None] * x)
    return grad / beta - (d - 1) / (2 * beta) * x


def linear_gain_spectrum(d: int, beta, m_max: int):
    """Small-amplitude exact gains G_m = 1 + m(m+d-2) a_m(beta) / (beta a_1(beta)) for m = 1..m_max (docs/theory.md §g).

    The backward heat equation amplifies every degree; the exact n = infinity gain peaks near m ~ sqrt(2 beta)
    (a_m ~ exp(-m^2/(2 beta))), the fastest-growing degree seeded by finite-N noise. Host, float64.

    >>> g = linear_gain_spectrum(3, 20.0, 12)
    >>> int(g.argmax()) + 1
    6
    """
    d = _check_heat_d(d)
    m_max = check_int("m_max", m_max, minimum=1)
    beta = check_real("beta", beta, positive=True)
    b = np.float64(beta)
    a = bessel_ratio(b, d / 2 - 1, m_max, HOST)
    m = np.arange(1, m_max + 1, dtype=np.float64)
    return 1 + m * (m + d - 2) * a / (b * a[0])


def first_order_gain(d: int, l: int, beta):
    """G_l = 1 + l(l+d-2)/beta, the backward-heat amplification to first order in 1/beta (docs/theory.md §g).

    >>> first_order_gain(3, 2, 20.0)
    1.3
    """
    d, l = _check_heat_d(d), _check_l(l)
    return 1 + l * (l + d - 2) / np.asarray(beta, dtype=float) if np.ndim(beta) else 1 + l * (l + d - 2) / beta


@functools.lru_cache(maxsize=32)
def _jacobi_nodes(d: int, nodes: int):
    from scipy.special import roots_jacobi

    a = (d - 3) / 2
    t, w = roots_jacobi(nodes, a, a)
    return t, w / w.sum()


def _map_parts(d, l, eps, beta, t, ns: Namespace):
    """T(x) = alpha(t) x + gamma(t) (e - t x) for the exact map at beta (beta shape (...,1), t shape (m,))."""
    c_r, c_p, c_t, c_n = (c[..., None] for c in _map_coefficients(d, l, beta[..., 0], ns))
    p, dp = gegenbauer(t, d, l, derivative=True)
    den = 1 + eps * c_n * p
    return (c_r + eps * c_p * p) / den, eps * c_t * dp / den, p, c_n


HEAT_D_MAX = 1024  # Gauss-Jacobi nodes of weight (1-t^2)^((d-3)/2) lose finiteness near d = 1400 (SciPy)


def finite_n_scale(d: int, beta, *, self_interaction: bool = True) -> float:
    """The expansion parameter of the O(1/N) correction of :func:`exact_gain`, times N - 1:
    max(Q, S) over the betas with Q = M_d(2 beta)/M_d(beta)^2 and (self term) S = e^beta/M_d(beta), the
    uniform-key values of the two coefficients (docs/theory.md §g). The first-order correction is
    meaningful only while max(Q, S)/(N - 1) is small; for d = 3 and large beta, Q ~ beta and S ~ 2 beta.

    >>> round(finite_n_scale(3, 1000.0), 3)  # S = 2 beta / (1 - e^{-2 beta})
    2000.0
    """
    b = np.atleast_1d(np.asarray(beta, dtype=np.float64))
    lm1, lm2 = np.asarray(log_moment_scaled(b, d)), np.asarray(log_moment_scaled(2 * b, d))
    q = np.exp(lm2 - 2 * lm1)
    out = np.maximum(q, np.exp(-lm1)) if self_interaction else q
    return float(np.max(out)) if np.all(np.isfinite(out)) else math.inf


def exact_gain(d: int, l: int, eps, beta, *, linear: bool = False, n: int | None = None,
               self_interaction: bool = True, nodes: int = 256):
    """Exact n = infinity amplification of the zonal mode l after one renormalised step (docs/theory.md §g).

    Finite eps (default): G = E_rho[P_l(t')] / E_rho[P_l(t)], t' = <T(x)/|T(x)|, e>, T = :func:`exact_map`,
    by Gauss-Jacobi quadrature in t with weight (1-t^2)^{(d-3)/2} (``nodes`` points). By symmetry
    T(x) = alpha(t) x + gamma(t)(e - t x), so t' = (t + delta (1-t^2)) / sqrt(1 + delta^2 (1-t^2)),
    delta = gamma/alpha. This is what the Monte Carlo ratio estimator converges to as N -> infinity
    (and it reproduces the public anchor d=3, l=1, eps=0.5, beta=1000 -> 1.0019999436428204).

    ``linear=True``: the eps -> 0 limit, G = 1 + l(l+d-2) a_l(beta) / (beta a_1(beta))
    (continuity equation + Gegenbauer ODE), = 1 + l(l+d-2)/beta + O(beta^-2).

    ``n`` (finite number of tokens N): adds the O(1/N) mean-map correction of the finite-N step. The
    ratio estimator over the n' = N - 1 other tokens has E[y|x] = T_beta + (Q/n')(T_beta - T_{2beta}),
    Q(x) = E_rho[k^2]/E_rho[k]^2 = M_d(2beta)(1 + eps a_l(2beta) P_l) / (M_d(beta)^2 (1 + eps a_l(beta) P_l)^2)
    (the second-order mean of docs/theory.md §b for a non-uniform rho); the self term (``self_interaction``)
    adds (S/n')(x - T_beta), S = e^beta / E_rho[k] (its weight). The noise of y (variance O(R/N))
    enters G only at O(eps R/(N beta)) and is neglected. ``beta`` may be an array: a Python/NumPy beta gives
    a host float64 result, a JAX beta a JAX result in its dtype.

    >>> round(float(exact_gain(3, 1, 0.0, 1000.0, linear=True)), 9)  # 1 + 2 a_1/(beta a_1)
    1.002
    """
    d, l = _check_heat_d(d), _check_l(l)
    if l == 0:
        raise InputError("l must be >= 1 for a zonal mode, got 0")
    nodes = check_int("nodes", nodes, minimum=2)
    beta_np = np.asarray(beta)
    if not isinstance(beta, jax.core.Tracer):
        if beta_np.size == 0 or np.any(~np.isfinite(beta_np)) or np.any(beta_np <= 0):
            raise InputError(f"beta must be finite and > 0, got {beta_np.tolist() if beta_np.size < 8 else beta_np}")
    if n is not None:
        n = check_int("n", n, minimum=2)
    ns = namespace(beta)
    xp = ns.xp
    b = ns.asarray(beta)
    if linear:
        c_r, c_p, c_t, c_n = _map_coefficients(d, l, b, ns)
        return 1 + l * (l + d - 2) * c_t / c_r
    eps = _check_eps(eps, d, l)
    if eps == 0 and n is None:
        c_r, c_p, c_t, c_n = _map_coefficients(d, l, b, ns)
        return 1 + l * (l + d - 2) * c_t / c_r
    tn, wn = _jacobi_nodes(d, nodes)
    t = ns.asarray(tn, b.dtype)
    w = ns.asarray(wn, b.dtype)
    alpha, gamma, p, c_n = _map_parts(d, l, eps, b[..., None], t, ns)
    if n is not None:
        a2, g2, _, c_n2 = _map_parts(d, l, eps, 2 * b[..., None], t, ns)
        lm1, lm2 = log_moment_scaled(b, d), log_moment_scaled(2 * b, d)
        r = xp.exp(lm2 - 2 * lm1)[..., None]  # M(2b)/M(b)^2
        q = r * (1 + eps * c_n2 * p) / (1 + eps * c_n * p) ** 2
        nn = n - 1
        da, dg = q * (alpha - a2) / nn, q * (gamma - g2) / nn
        if self_interaction:
            s = xp.exp(-lm1)[..., None] / (1 + eps * c_n * p)
            da, dg = da + s * (1 - alpha) / nn, dg - s * gamma / nn
        alpha, gamma = alpha + da, gamma + dg
    delta = gamma / alpha
    s2 = 1 - t**2
    tp = (t + delta * s2) / xp.sqrt(1 + delta**2 * s2)
    rho = 1 + eps * p
    num = xp.sum(w * rho * gegenbauer(xp.clip(tp, -1, 1), d, l), axis=-1)
    den = xp.sum(w * rho * p, axis=-1)
    return num / den
