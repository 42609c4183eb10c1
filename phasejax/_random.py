"""Random variates with full relative precision near zero.

``jax.random.uniform`` fills the mantissa of a number in [1, 2) and subtracts 1, so its
values are multiples of 2^-23 (float32): a uniform near 1e-7 is badly quantised. The
nearest keys of a long context live exactly there, so phasejax draws uniforms from 64
random bits: U = (hi + lo 2^-32 + 2^-33) 2^-32, which resolves U down to about 5e-20 in
both float32 and float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def uniform_open(key, shape=(), dtype=None):
    """U ~ Uniform(0, 1), never 0 or 1, with full relative precision near 0 (down to ~5e-20)."""
    dtype = dtype or jnp.result_type(float)
    bits = jax.random.bits(key, (2, *shape), dtype=jnp.uint32)
    hi = bits[0].astype(dtype)
    lo = bits[1].astype(dtype)
    two32 = jnp.asarray(2.0**-32, dtype)
    u = (hi + (lo + 0.5) * two32) * two32
    # hi = 2^32 - 1 with lo near 2^32 rounds to 1 in float32: keep U < 1.
    return jnp.minimum(u, jnp.asarray(1.0, dtype) - jnp.finfo(dtype).epsneg)


def exponential(key, shape=(), dtype=None):
    """E ~ Exp(1) as -log(U), exact in the upper tail (U full-precision near 0)."""
    return -jnp.log(uniform_open(key, shape, dtype))
