"""Zonal modes on S^{d-1}: densities rho = 1 + eps P_l(<x,e>) with P_l the Gegenbauer polynomial normalised
to P_l(1) = 1, sampled exactly, and the projection estimator of their amplitude (docs/theory.md §g).

Shapes: tokens ``Float[Array, "N d"]``; the axis ``e`` ``Float[Array, " d"]`` (default e_1); scores
t = <x, e> ``Float[Array, " N"]``. ``key`` is a JAX PRNG key.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import InputError, check_array, check_int, check_real
from .._numerics.arrays import default_float, namespace

__all__ = [
    "harmonic_dimension",
    "gegenbauer",
    "zonal_density_bound",
    "sample_zonal",
    "mode_amplitude",
    "zonal_spectrum",
    "mode_gain",
]


def _check_heat_d(d) -> int:
    return check_int("d", d, minimum=2)


def _check_l(l) -> int:
    return check_int("l", l, minimum=0)


def _axis(e, d: int, dtype):
    """The unit axis e (default e_1), validated."""
    if e is None:
        return jnp.zeros((d,), dtype).at[0].set(1)
    check_array("e", e, ndim=1, last_dim=d)
    if not isinstance(e, jax.core.Tracer):
        nrm = float(np.linalg.norm(np.asarray(e, dtype=np.float64)))
        if nrm == 0:
            raise InputError("e must be a nonzero vector (the axis of the zonal mode), got the zero vector")
    e = jnp.asarray(e, dtype)
    return e / jnp.linalg.norm(e)


def harmonic_dimension(d: int, l: int) -> int:
    """dim of degree-l spherical harmonics on S^{d-1}: N(d,l) = (2l+d-2)/(l+d-2) binom(l+d-2, l).

    Also 1 / E_unif[P_l(t)^2] for the normalised Gegenbauer P_l (Funk-Hecke / addition theorem).

    >>> harmonic_dimension(3, 2)
    5
    """
    d, l = _check_heat_d(d), _check_l(l)
    if l == 0:
        return 1
    return (2 * l + d - 2) * math.comb(l + d - 3, l - 1) // l if d > 2 else 2


def gegenbauer(t, d: int, l: int, *, derivative: bool = False):
    """Normalised Gegenbauer polynomial P_l(t) = C_l^{(d-2)/2}(t) / C_l^{(d-2)/2}(1), P_l(1) = 1.

    Host (NumPy float64) or device (JAX) by the type of ``t``.
    d = 3: Legendre; d = 2: Chebyshev T_l; d = 4: U_l/(l+1). Three-term recurrence
    (l+d-3) P_l = (2l+d-4) t P_{l-1} - (l-1) P_{l-2}, P_0 = 1, P_1 = t (docs/theory.md §g). With
    ``derivative=True`` returns (P_l(t), P_l'(t)) from the differentiated recurrence.

    >>> float(gegenbauer(0.5, 3, 2))  # (3 t^2 - 1)/2
    -0.125
    """
    d, l = _check_heat_d(d), _check_l(l)
    ns = namespace(t)
    t = ns.asarray(t)
    p0, p1 = ns.xp.ones_like(t), t
    dp0, dp1 = ns.xp.zeros_like(t), ns.xp.ones_like(t)
    if l == 0:
        return (p0, dp0) if derivative else p0
    if ns.is_jax and l > 16:  # a traced loop: compile time independent of l (unrolled, it grows superlinearly)

        def step(k, c):
            p0, p1, dp0, dp1 = c
            a, b, cc = ((jnp.asarray(v, t.dtype)) for v in (2 * k + d - 4, k - 1, k + d - 3))
            return p1, (a * t * p1 - b * p0) / cc, dp1, (a * (p1 + t * dp1) - b * dp0) / cc

        _, p1, _, dp1 = jax.lax.fori_loop(2, l + 1, step, (p0, p1, dp0, dp1))
        return (p1, dp1) if derivative else p1
    for k in range(2, l + 1):
        a, b, c = 2 * k + d - 4, k - 1, k + d - 3
        p0, p1, dp0, dp1 = p1, (a * t * p1 - b * p0) / c, dp1, (a * (p1 + t * dp1) - b * dp0) / c
    return (p1, dp1) if derivative else p1


def zonal_density_bound(d: int, l: int) -> tuple[float, float]:
    """The eps for which rho = 1 + eps P_l(t) >= 0 on [-1, 1]: eps in [-1/max P_l, -1/min P_l].

    max P_l = 1 (at t=1); min P_l is -1 for odd l and found on a fine grid (refined) for even l.

    >>> zonal_density_bound(3, 2)  # P_2 in [-1/2, 1]
    (-1.0, 2.0)
    """
    d, l = _check_heat_d(d), _check_l(l)
    if l == 0:
        return (-1.0, math.inf)
    with jax.default_device(jax.devices("cpu")[0]):
        t = np.linspace(-1.0, 1.0, 20001)
        p = np.asarray(gegenbauer(jnp.asarray(t, jnp.float32), d, l))
    pmin = float(p.min())
    if l % 2 == 1:
        pmin = -1.0
    else:  # refine the minimum in float64 with numpy
        i = int(np.argmin(p))
        tt = np.linspace(t[max(i - 2, 0)], t[min(i + 2, t.size - 1)], 4001)
        pmin = float(min(pmin, _gegenbauer_np(tt, d, l).min()))
    return (-1.0, -1.0 / pmin)


def _gegenbauer_np(t, d, l):
    p0, p1 = np.ones_like(t), t
    if l == 0:
        return p0
    for k in range(2, l + 1):
        p0, p1 = p1, ((2 * k + d - 4) * t * p1 - (k - 1) * p0) / (k + d - 3)
    return p1


def _check_eps(eps, d, l) -> float:
    eps = check_real("eps", eps)
    if l == 0:
        raise InputError("l must be >= 1 for a zonal mode (l = 0 is the uniform density), got 0")
    lo, hi = zonal_density_bound(d, l)
    if not (lo <= eps <= hi):
        raise InputError(
            f"eps = {eps!r} makes rho = 1 + eps P_{l}(t) negative on S^{d - 1}; "
            f"accepted for d={d}, l={l}: {lo:.6g} <= eps <= {hi:.6g}"
        )
    return eps


@functools.partial(jax.jit, static_argnames=("m", "d", "l"))
def _zonal_candidates(key, e, eps, *, m, d, l):
    g = jax.random.normal(key, (m + 1, d), e.dtype)
    x = g[:m] / jnp.linalg.norm(g[:m], axis=1, keepdims=True)
    t = jnp.clip(x @ e, -1, 1)
    u = jax.random.uniform(jax.random.fold_in(key, 1), (m,), e.dtype)
    accept = u * (1 + jnp.abs(eps)) < 1 + eps * gegenbauer(t, d, l)
    return x, accept


def sample_zonal(
    key: PRNGKeyArray, n: int | float, d: int, l: int, eps, *, e: Float[ArrayLike, " d"] | None = None, dtype=None
) -> Float[Array, "n d"]:
    """n i.i.d. tokens with density rho(x) = 1 + eps P_l(<x,e>) (w.r.t. the uniform law on S^{d-1}).

    Exact rejection sampling: x uniform (normalised Gaussian), accepted with probability
    (1 + eps P_l(t)) / (1 + |eps|), t = <x,e> (|P_l| <= 1). The acceptance rate is 1/(1+|eps|); the
    first n accepted of an i.i.d. stream are i.i.d. from rho. Equivalently t has the 1-D density
    c_d (1-t^2)^{(d-3)/2} (1 + eps P_l(t)) and the part of x orthogonal to e is uniform (docs/theory.md §a, §g).
    eps must keep rho >= 0 (:func:`zonal_density_bound`).

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 1000, 3, 2, 0.5)
    >>> x.shape
    (1000, 3)
    """
    n = check_int("n", n, minimum=1)
    d, l = _check_heat_d(d), _check_l(l)
    eps = _check_eps(eps, d, l)
    dtype = dtype or default_float()
    e = _axis(e, d, dtype)
    rate = 1.0 / (1.0 + abs(eps))
    m = int(n / rate + 6 * math.sqrt(n / rate) + 64)
    out, have, i = [], 0, 0
    while have < n:
        x, acc = _zonal_candidates(jax.random.fold_in(key, i), e, eps, m=m, d=d, l=l)
        idx = np.flatnonzero(np.asarray(acc))[: n - have]
        out.append(x[jnp.asarray(idx)])
        have += idx.size
        i += 1
    return out[0] if len(out) == 1 else jnp.concatenate(out)


def mode_amplitude(x: Float[ArrayLike, "N d"], l: int, *, e: Float[ArrayLike, " d"] | None = None):
    """Projection estimator of the degree-l zonal amplitude: hat_eps = N(d,l) mean_i P_l(<x_i,e>/|x_i|).

    Unbiased for rho = 1 + sum_k eps_k P_k: E_rho[P_l(t)] = eps_l E_unif[P_l^2] = eps_l / N(d,l)
    (orthogonality; docs/theory.md §g).

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 100000, 3, 2, 0.5)
    >>> abs(float(mode_amplitude(x, 2)) - 0.5) < 0.05
    True
    """
    check_array("x", x, ndim=2)
    d = np.shape(x)[1]
    l = _check_l(l)
    x = jnp.asarray(x)
    e = _axis(e, d, x.dtype)
    t = jnp.clip((x @ e) / jnp.linalg.norm(x, axis=1), -1, 1)
    return harmonic_dimension(d, l) * jnp.mean(gegenbauer(t, d, l))


@functools.partial(jax.jit, static_argnames=("m_max",))
def _spectrum(x, e, m_max):
    d = x.shape[1]
    t = jnp.clip((x @ e) / jnp.linalg.norm(x, axis=1), -1, 1)
    p0, p1 = jnp.ones_like(t), t
    out = [jnp.mean(p1)]
    for k in range(2, m_max + 1):
        p0, p1 = p1, ((2 * k + d - 4) * t * p1 - (k - 1) * p0) / (k + d - 3)
        out.append(jnp.mean(p1))
    return jnp.stack(out)


def zonal_spectrum(x: Float[ArrayLike, "N d"], m_max: int, *, e: Float[ArrayLike, " d"] | None = None):
    """All zonal amplitudes hat_eps_m = N(d,m) mean_i P_m(<x_i,e>/|x_i|), m = 1..m_max, in one pass.

    Same estimator as :func:`mode_amplitude` (docs/theory.md §g); for a uniform cloud each has sd sqrt(N(d,m)/N).

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 50000, 3, 2, 0.5)
    >>> s = zonal_spectrum(x, 4)
    >>> abs(float(s[1]) - 0.5) < 0.05 and abs(float(s[3])) < 0.1
    True
    """
    check_array("x", x, ndim=2)
    m_max = check_int("m_max", m_max, minimum=1)
    x = jnp.asarray(x)
    d = x.shape[1]
    dims = jnp.asarray([harmonic_dimension(d, m) for m in range(1, m_max + 1)], x.dtype)
    return dims * _spectrum(x, _axis(e, d, x.dtype), m_max)


def mode_gain(x: Float[ArrayLike, "N d"], y: Float[ArrayLike, "N d"], l: int, *, e=None):
    """Amplification of mode l from tokens x to tokens y: G = hat_eps(y) / hat_eps(x) (ratio estimator).

    Using the same tokens before and after cancels most of the sampling noise of hat_eps(x).

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 2000, 3, 2, 0.5)
    >>> float(mode_gain(x, x, 2))
    1.0
    """
    return mode_amplitude(y, l, e=e) / mode_amplitude(x, l, e=e)
