"""Logit transforms: attention weights proportional to exp(f(beta t)), t = <q, k> = 1 - u.

A soft cap f(x) = cap tanh(x / cap) (Gemma-2: 50, Grok-1: 30) is not a temperature: the logit map is
nonlinear, so the weights are w_i = exp(f(beta t_i)) / sum_j exp(f(beta t_j)) and no scalar beta gives
them. The streaming pass of :mod:`phasejax.observables` shifts by the largest logit, which for a
non-decreasing f is that of the smallest gap m; every weight then depends only on the non-negative drop

    g_i = f(beta (1 - m)) - f(beta (1 - u_i)),   with beta (u_i - m) = beta u'_i >= 0 given directly,

and a transform must compute that drop without subtracting two nearly equal values of f (for a cap
much larger than the logits, f(a) - f(b) would otherwise lose everything but cap x eps). The default
(no transform) is g_i = beta u'_i. docs/theory.md §j.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_real

__all__ = ["LogitTransform", "SoftCap"]


class LogitTransform(eqx.Module):
    """A non-decreasing map f of the scaled logit x = beta t: weights proportional to exp(f(beta t)).

    Subclasses give ``__call__`` (f), ``derivative`` (f') and, where f(hi) - f(lo) would cancel, a stable
    ``drop(hi, lo, delta)`` = f(hi) - f(lo) for hi - lo = delta >= 0 (delta computed from the gaps
    directly, beta (u - m), with full relative precision). The base ``drop`` is the plain difference.
    """

    def __call__(self, x):
        raise NotImplementedError

    def derivative(self, x):
        raise NotImplementedError

    def drop(self, hi, lo, delta):
        """f(hi) - f(lo) >= 0, hi - lo = delta >= 0."""
        del delta
        return self(hi) - self(lo)


def _one_minus_abs_tanh(z):
    # 1 - |tanh z| = 2 / (1 + e^{2|z|}) = 2 sigmoid(-2|z|): no cancellation for large |z|
    return 2.0 * jax.nn.sigmoid(-2.0 * jnp.abs(z))


class SoftCap(LogitTransform):
    """The soft cap f(x) = cap tanh(x / cap) on the scaled logit x = beta t (Gemma-2 50, Grok-1 30).

    f'(x) = sech^2(x / cap), bounded logits |f| < cap. The drop uses the identity
    tanh a - tanh b = tanh(a - b) (1 - tanh a tanh b), with 1 - tanh a tanh b = (1 - |tanh a|) +
    |tanh a| (1 - |tanh b|) when a b >= 0 (1 + |tanh a tanh b| otherwise) and 1 - |tanh z| =
    2 sigmoid(-2|z|): relative precision for every cap, logit and gap, and finite derivatives.
    (huggingface/transformers src/transformers/models/gemma2/modeling_gemma2.py: ``attn_weights =
    tanh(attn_weights / softcap) * softcap``.)

    >>> import jax.numpy as jnp
    >>> f = SoftCap(50.0)
    >>> [round(float(v), 4) for v in f(jnp.asarray([0.5, 50.0, 500.0]))]
    [0.5, 38.0797, 50.0]
    >>> x = jnp.asarray(400.0)  # both logits saturated: the drop is cap sech^2-small, not 0 - 0
    >>> float(f.drop(x, x - 1.0, jnp.asarray(1.0))) > 0
    True
    """

    cap: float | Float[Array, ""]

    def __init__(self, cap: float | Float[ArrayLike, ""]):
        self.cap = check_real("cap", cap, positive=True) if not isinstance(cap, jax.Array) else cap

    def _c(self, x):
        return jnp.asarray(self.cap, jnp.asarray(x).dtype)

    def __call__(self, x):
        c = self._c(x)
        return c * jnp.tanh(x / c)

    def derivative(self, x):
        z = x / self._c(x)
        return _one_minus_abs_tanh(z) * (1.0 + jnp.abs(jnp.tanh(z)))

    def second_derivative(self, x):
        """f''(x) = -(2 / cap) tanh(x / cap) sech^2(x / cap)."""
        c = self._c(x)
        return -2.0 / c * jnp.tanh(x / c) * self.derivative(x)

    def drop(self, hi, lo, delta):
        c = self._c(hi)
        a, b = hi / c, lo / c
        ta, tb = jnp.tanh(a), jnp.tanh(b)
        same = (a >= 0) == (b >= 0)
        one_minus = jnp.where(same, _one_minus_abs_tanh(a) + jnp.abs(ta) * _one_minus_abs_tanh(b),
                              1.0 + jnp.abs(ta * tb))
        return c * jnp.tanh(delta / c) * one_minus
