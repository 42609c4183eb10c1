"""The exactly samplable key laws on S^{d-1} (docs/theory.md §a, §d): uniform keys, the power-law cap
|q-k|^gamma and a great subsphere through the query. All are :class:`~phasejax.laws.BetaGapLaw` s,
u/2 ~ Beta(a, b), with an O(n) gap sampler at full relative precision; see :mod:`phasejax.laws.base`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int, check_real
from .base import BetaGapLaw, orthonormal_complement

__all__ = ["UniformSphere", "PowerLawCap", "Subsphere"]


class UniformSphere(BetaGapLaw):
    """Keys uniform on S^{d-1}: u/2 ~ Beta(h, h), h = (d-1)/2, alpha = d-1 (docs/theory.md §a).

    >>> law = UniformSphere(3)
    >>> law.alpha, round(law.C, 12)
    (2.0, 0.5)
    """

    def __init__(self, d: int):
        self.d = check_int("d", d, minimum=2)

    @property
    def gap_beta_params(self):
        h = (self.d - 1) / 2
        return (h, h)

    def sample_keys(self, key, query, n):
        """n keys uniform on the sphere (normalised Gaussians), independent of the query."""
        n = check_int("n", n, minimum=1)
        query = self._check_query(query)
        g = jax.random.normal(key, (n, self.d), query.dtype)
        return g / jnp.linalg.norm(g, axis=-1, keepdims=True)


class PowerLawCap(BetaGapLaw):
    """Key density on S^{d-1} proportional to |q-k|^gamma, gamma = alpha - (d-1) (docs/theory.md §d).

    u/2 ~ Beta(alpha/2, (d-1)/2), so P(u <= s) ~ C s^{alpha/2}; alpha < d-1 piles keys up
    at the query (density blows up), alpha > d-1 empties the cap (density vanishes).
    On S^2 (d = 3): u = 2 U^{2/alpha} exactly and P(u <= s) = (s/2)^{alpha/2}.

    >>> round(PowerLawCap(3, 4.0).C, 12)
    0.25
    """

    alpha_: float = eqx.field(static=True)

    def __init__(self, d: int, alpha: float):
        self.d = check_int("d", d, minimum=2)
        self.alpha_ = check_real("alpha", alpha, positive=True)

    @property
    def gap_beta_params(self):
        return (self.alpha_ / 2, (self.d - 1) / 2)


class Subsphere(BetaGapLaw):
    """Keys uniform on a great subsphere S^{m-1} through the query (alpha = m - 1).

    The subsphere is spanned by q and the first m-1 columns of
    :func:`orthonormal_complement` (q): deterministic in q, so different queries see
    different subspheres, each containing its query.
    """

    m: int = eqx.field(static=True)

    def __init__(self, d: int, m: int | float):
        self.d = check_int("d", d, minimum=2)
        self.m = check_int("m", m, minimum=2, maximum=self.d)

    @property
    def gap_beta_params(self):
        h = (self.m - 1) / 2
        return (h, h)

    def _perp_basis(self, query):
        return orthonormal_complement(query)[:, : self.m - 1]
