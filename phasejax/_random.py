"""Random variates with full relative precision near zero.

``jax.random.uniform`` fills the mantissa of a number in [1, 2) and subtracts 1, so its
values are multiples of 2^-23 (float32): a uniform near 1e-7 is badly quantised. The
nearest keys of a long context live exactly there, so phasejax draws uniforms from 64
random bits: U = (hi + lo 2^-32 + 2^-33) 2^-32, which resolves U down to about 5e-20 in
both float32 and float64.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["key_from_seed", "uniform_open", "uniform_from_bits", "exponential", "log_gamma_variate"]


def key_from_seed(seed: int):
    """The PRNG key of an integer seed ``0 <= seed < 2^63`` from all 64 bits, in float32 and float64 alike.

    The threefry key data is the two uint32 words (hi, lo) = (seed >> 32, seed & (2^32 - 1)) -- exactly what
    ``jax.random.key(seed)`` builds under ``jax_enable_x64`` -- so a seed below 2^31 gives the same key as
    ``jax.random.key(seed)`` in both modes, and ``2^32`` never collapses onto ``0`` (without x64,
    ``jax.random.key`` would take the seed mod 2^32, or overflow).

    >>> import jax
    >>> bool((jax.random.key_data(key_from_seed(7)) == jax.random.key_data(jax.random.key(7))).all())
    True
    >>> [int(w) for w in jax.random.key_data(key_from_seed(2**32))]
    [1, 0]
    """
    import numpy as np

    from ._checks import check_seed

    s = check_seed(seed)
    data = np.array([s >> 32, s & 0xFFFFFFFF], dtype=np.uint32)
    if jax.config.jax_default_prng_impl != "threefry2x32":  # another impl: fold the high word in
        return jax.random.fold_in(jax.random.key(int(data[1]) & 0x7FFFFFFF), int(s >> 31))
    return jax.random.wrap_key_data(data)


def uniform_from_bits(bits, dtype):
    """U in (0, 1), never 0 or 1, from two uint32 words (hi, lo): U = (hi + (lo + 1/2) 2^-32) 2^-32, with
    full relative precision near 0 (down to ~5e-20 in float32 and float64)."""
    two32 = jnp.asarray(2.0**-32, dtype)
    u = (bits[0].astype(dtype) + (bits[1].astype(dtype) + 0.5) * two32) * two32
    # hi = 2^32 - 1 with lo near 2^32 rounds to 1 in float32: keep U < 1.
    return jnp.minimum(u, jnp.asarray(1.0, dtype) - jnp.finfo(dtype).epsneg)


def uniform_open(key, shape=(), dtype=None):
    """U ~ Uniform(0, 1) of the given shape from 64 random bits per draw (:func:`uniform_from_bits`)."""
    dtype = dtype or jnp.result_type(float)
    return uniform_from_bits(jax.random.bits(key, (2, *shape), dtype=jnp.uint32), dtype)


def exponential(key, shape, dtype):
    """Exp(1) with full relative precision at both ends.

    E = -log U with U = V/2 (prob 1/2, E > log 2) or U = 1 - V/2 (prob 1/2, E < log 2, as
    -log1p(-V/2)), V uniform with full precision near 0: U is exactly uniform, and a small E
    (the nearest key) is not quantised by the spacing of floats near 1. One threefry call."""
    bits = jax.random.bits(key, (3, *shape), dtype=jnp.uint32)
    v = 0.5 * uniform_from_bits(bits[:2], dtype)
    upper = (bits[2] & 1) == 1
    return jnp.where(upper, -jnp.log(v), -jnp.log1p(-v))


def _expm1_minus_x(w):
    """e^w - 1 - w without cancellation (series below |w| = 0.5, 16 terms: relative 1e-18)."""
    small = jnp.abs(w) < 0.5
    ws = jnp.where(small, w, 0.0)
    term = 0.5 * ws * ws
    acc = term
    for j in range(3, 18):
        term = term * ws / j
        acc = acc + term
    wl = jnp.where(small, 1.0, w)
    return jnp.where(small, acc, jnp.expm1(wl) - wl)


def log_gamma_variate(key, shape_k: float, dtype):
    """log G, G ~ Gamma(k) for any k >= 1 (up to 1e300), exactly (Marsaglia-Tsang 2000).

    d = k - 1/3, c = 1/sqrt(9 d), x ~ N(0,1), v = (1 + c x)^3, accept when
    log U < x^2/2 + d (1 - v + log v); G = d v. Written as log G = log d + w, w = 3 log1p(c x),
    with d (1 - v + log v) = -d (e^w - 1 - w) summed without cancellation, so the O(k^{-1/2})
    relative fluctuation of G keeps every digit even when c x is below float epsilon."""
    d = shape_k - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    logd = math.log(d)

    def body(state):
        _, _, i = state
        bits = jax.random.bits(jax.random.fold_in(key, i), (4,), dtype=jnp.uint32)
        un = uniform_from_bits(bits[:2], dtype)
        x = jnp.sqrt(jnp.asarray(2.0, dtype)) * jax.scipy.special.erfinv(2.0 * un - 1.0)  # N(0, 1)
        y = c * x
        ok = y > -1.0
        w = 3.0 * jnp.log1p(jnp.where(ok, y, 0.0))
        logu = jnp.log(uniform_from_bits(bits[2:], dtype))
        accept = ok & (logu < 0.5 * x * x - d * _expm1_minus_x(w))
        return w, accept, i + 1

    init = (jnp.zeros((), dtype), jnp.asarray(False), jnp.asarray(0, jnp.uint32))
    w, _, _ = jax.lax.while_loop(lambda st: ~st[1], body, init)
    return jnp.asarray(logd, dtype) + w
