"""Double-exponential quadrature rules with fixed nodes, as NumPy float64 tables of log nodes and log
weights (cast on use), so nodes at 1e-40 or weights at e^-100 are exact in float32 too.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

__all__ = ["exp_sinh", "tanh_sinh", "rule"]


def exp_sinh(log_lo: float, log_hi: float, step: float):
    """Exp-sinh rule on (0, inf): x = exp(pi/2 sinh tau). Returns (log x, log weight)."""
    t0, t1 = math.asinh(log_lo * 2 / math.pi), math.asinh(log_hi * 2 / math.pi)
    tau = np.arange(t0, t1 + 0.5 * step, step)
    logx = 0.5 * math.pi * np.sinh(tau)
    logw = np.log(step * 0.5 * math.pi * np.cosh(tau)) + logx
    return logx, logw


def tanh_sinh(tmax: float, step: float):
    """Tanh-sinh rule on (0, 1): sigma = (1 + tanh(pi/2 sinh tau))/2.

    Returns (log sigma, log(1 - sigma), log weight), each accurate near both ends."""
    tau = np.arange(-tmax, tmax + 0.5 * step, step)
    y = 0.5 * math.pi * np.sinh(tau)
    log_s = -np.logaddexp(0.0, -2 * y)
    log_1ms = -np.logaddexp(0.0, 2 * y)
    logw = np.log(step * 0.5 * math.pi * np.cosh(tau) * 2.0) + log_s + log_1ms
    return log_s, log_1ms, logw


def rule(rule, dtype):
    return tuple(jnp.asarray(a, dtype=dtype) for a in rule)
