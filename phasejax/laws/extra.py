"""More key laws for "local, not global" (docs/theory.md §d): the local exponent at q alone sets beta* ~ n^{2/alpha}.

* :class:`BetaCap` ``(d, a, b)``: the general zonal law with u/2 ~ Beta(a, b) (density on S^{d-1} proportional
  to (u/2)^{a-(d-1)/2} (1-u/2)^{b-(d-1)/2} relative to uniform). a > (d-1)/2 empties the cap at q, small b piles
  the keys up at the antipode -q: e.g. ``BetaCap(3, 8, 0.3)`` is a tight far-away cluster with alpha = 16 at q.
* :class:`FarCap` ``(d, width)``: keys in the cap {u >= 2 - width} about the antipode -q (uniform on it for
  d = 3), none near q: alpha = inf, C = 0. A cheap far-away cluster for mixtures.
* :class:`Mixture` ``(near, far, weight)``: each key from ``near`` with probability ``weight``, else ``far``.
  Gap CDF F = w F_near + (1-w) F_far, so the local exponent is the smaller one and C adds over the
  components that attain it: alpha = min(alpha_near, alpha_far), C = w C_near (+ (1-w) C_far if equal).
* :class:`AngularGaussian` ``(scales)``: keys g/|g|, g ~ N(0, diag(scales^2)) in a frame whose last axis is the
  query: a globally anisotropic law (angular central Gaussian) whose density relative to uniform is
  |Sigma|^{-1/2} (x^T Sigma^{-1} x)^{-d/2}, smooth and positive, so alpha = d - 1 at every query and
  C = C_d s_d^d / prod(s) (the density at q times the uniform constant).
* :class:`LocalWarp` ``(base, u0, alpha)``: the base law with the keys inside the cap u < u0 moved along their
  geodesic to q, u -> u0 (u/u0)^p, p = alpha_base/alpha: identical to ``base`` outside the cap (same global
  shape) with local exponent ``alpha``, C = C_base u0^{(alpha_base - alpha)/2} (exact when the base gap law is
  a pure power law below u0, e.g. uniform S^2).

All take ``key`` first. ``sample_gaps(key, n) -> Float[Array, "n"]`` is exact in O(n) (O(n d) for
AngularGaussian, which draws vectors), relative to the law's query; ``sample_keys(key, query, n) ->
Float[Array, "n d"]`` returns unit keys. None of them has ``has_gap_law`` (the m-nearest sampler needs a
Beta gap CDF) except :class:`BetaCap`; :func:`phasejax.scaling.scaling_scan` uses their exact samplers.

>>> import jax
>>> from phasejax.laws import UniformSphere
>>> mix = Mixture(UniformSphere(3), FarCap(3, 0.1), 0.25)
>>> mix.alpha, mix.C
(2.0, 0.125)
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import InputError, check_array, check_int, check_real
from .base import BetaGapLaw, KeyLaw, gaps_from_keys, orthonormal_complement
from .sphere import UniformSphere

__all__ = ["BetaCap", "FarCap", "Mixture", "AngularGaussian", "LocalWarp"]


class BetaCap(BetaGapLaw):
    """Zonal law about q with u/2 ~ Beta(a, b): alpha = 2a, C = 2^{-a}/(a B(a, b)) (docs/theory.md §a, §d).

    ``BetaCap(d, (d-1)/2, (d-1)/2)`` is uniform, ``BetaCap(d, alpha/2, (d-1)/2)`` is PowerLawCap.

    >>> BetaCap(3, 1.0, 1.0).C
    0.5
    """

    a: float = eqx.field(static=True)
    b: float = eqx.field(static=True)

    def __init__(self, d: int, a: float, b: float):
        self.d = check_int("d", d, minimum=2)
        self.a = check_real("a", a, positive=True)
        self.b = check_real("b", b, positive=True)

    @property
    def gap_beta_params(self):
        return (self.a, self.b)


class FarCap(KeyLaw):
    """Keys within gap ``width`` of the antipode -q: v = 2 - u with v/2 = (width/2) U^{1/h}, h = (d-1)/2.

    On S^2 this is the uniform law on the cap {u >= 2 - width}; for d > 3 its density is that of a flat
    (d-1)-ball, close to uniform for a small cap. No key comes near q: ``alpha`` = inf and ``C`` = 0, so in a
    :class:`Mixture` the near component alone sets the local law. Exact O(n) gap sampler.

    >>> import jax
    >>> u = FarCap(3, 0.1).sample_gaps(jax.random.key(0), 1000)
    >>> bool(u.min() >= 1.9)
    True
    """

    width: float = eqx.field(static=True)

    def __init__(self, d: int, width: float):
        self.d = check_int("d", d, minimum=2)
        self.width = check_real("width", width, positive=True, maximum=2.0)

    @property
    def alpha(self) -> float:
        return math.inf

    @property
    def C(self) -> float:  # noqa: N802
        return 0.0

    def gap_cdf(self, u):
        v = jnp.clip(2.0 - jnp.asarray(u), 0.0, self.width)
        return 1.0 - (v / self.width) ** ((self.d - 1) / 2)

    def sample_gaps(self, key: PRNGKeyArray, n: int | float, *, dtype=None) -> Float[Array, " n"]:
        n = check_int("n", n, minimum=1)
        dtype = dtype or jnp.result_type(float)
        uu = jax.random.uniform(key, (n,), dtype, minval=jnp.finfo(dtype).tiny)
        return 2.0 - self.width * uu ** (2.0 / (self.d - 1))

    def sample_keys(self, key: PRNGKeyArray, query: Float[ArrayLike, " d"], n: int | float) -> Float[Array, "n d"]:
        """k = (1-u) q + sqrt(u (2-u)) xi with xi uniform on q-perp."""
        n = check_int("n", n, minimum=1)
        query = self._check_query(query)
        kg, kx = jax.random.split(key)
        u = self.sample_gaps(kg, n, dtype=query.dtype)
        xi = _directions(kx, query, n, query.dtype)
        return (1.0 - u)[:, None] * query[None, :] + jnp.sqrt(u * (2.0 - u))[:, None] * xi


def _directions(key, query, n, dtype):
    basis = orthonormal_complement(query)
    g = jax.random.normal(key, (n, basis.shape[1]), dtype)
    return (g / jnp.linalg.norm(g, axis=-1, keepdims=True)) @ basis.T


class Mixture(KeyLaw):
    """Key i from ``near`` with probability ``weight``, else from ``far`` (both about the same query).

    alpha = min(alpha_near, alpha_far); C = w C_near, (1-w) C_far, or their sum when the exponents tie.

    >>> from phasejax.laws import PowerLawCap
    >>> Mixture(PowerLawCap(3, 1.0), PowerLawCap(3, 4.0), 0.5).alpha
    1.0
    """

    near: KeyLaw
    far: KeyLaw
    weight: float = eqx.field(static=True)

    def __init__(self, near: KeyLaw, far: KeyLaw, weight: float):
        if not (isinstance(near, KeyLaw) and isinstance(far, KeyLaw)):
            raise InputError("Mixture(near, far, weight): near and far must be key laws")
        if near.d != far.d:
            raise InputError(f"Mixture: near (d={near.d}) and far (d={far.d}) must have the same d")
        self.d = near.d
        self.near, self.far = near, far
        self.weight = check_real("weight", weight, minimum=0.0, maximum=1.0)
        if not 0 < self.weight < 1:
            raise InputError(f"Mixture: weight must be in (0, 1), got {weight!r}")

    @property
    def alpha(self) -> float:
        return min(self.near.alpha, self.far.alpha)

    @property
    def C(self) -> float:  # noqa: N802
        c = 0.0
        if self.near.alpha == self.alpha:
            c += self.weight * self.near.C
        if self.far.alpha == self.alpha:
            c += (1 - self.weight) * self.far.C
        return c

    def gap_cdf(self, u):
        return self.weight * self.near.gap_cdf(u) + (1 - self.weight) * self.far.gap_cdf(u)

    def sample_gaps(self, key: PRNGKeyArray, n: int | float, *, dtype=None) -> Float[Array, " n"]:
        """Exact: gaps from both components, chosen per key by a Bernoulli(weight) draw."""
        n = check_int("n", n, minimum=1)
        k1, k2, k3 = jax.random.split(key, 3)
        u1 = self.near.sample_gaps(k1, n, dtype=dtype)
        u2 = self.far.sample_gaps(k2, n, dtype=dtype)
        pick = jax.random.bernoulli(k3, self.weight, (n,))
        return jnp.where(pick, u1, u2)

    def sample_keys(self, key: PRNGKeyArray, query: Float[ArrayLike, " d"], n: int | float) -> Float[Array, "n d"]:
        n = check_int("n", n, minimum=1)
        k1, k2, k3 = jax.random.split(key, 3)
        x1 = self.near.sample_keys(k1, query, n)
        x2 = self.far.sample_keys(k2, query, n)
        pick = jax.random.bernoulli(k3, self.weight, (n,))
        return jnp.where(pick[:, None], x1, x2)


class AngularGaussian(KeyLaw):
    """Keys g/|g|, g ~ N(0, diag(scales^2)) with the last axis along the query (angular central Gaussian).

    Relative to the uniform law the density is |Sigma|^{-1/2} (x^T Sigma^{-1} x)^{-d/2}; at q (the last axis)
    it is s_d^d / prod(s), so alpha = d - 1 and C = C_d s_d^d / prod(s) (C_d of the uniform sphere).

    >>> AngularGaussian((1.0, 1.0, 1.0)).C   # isotropic: uniform S^2
    0.5
    """

    scales: tuple = eqx.field(static=True)

    def __init__(self, scales):
        s = np.asarray(scales, np.float64)
        check_array("scales", s, ndim=1)
        if s.size < 2 or np.any(s <= 0):
            raise InputError(f"AngularGaussian: scales must be >= 2 positive numbers, got {tuple(s)}")
        self.scales = tuple(float(x) for x in s)
        self.d = len(self.scales)

    @property
    def alpha(self) -> float:
        return float(self.d - 1)

    @property
    def C(self) -> float:  # noqa: N802
        s = np.asarray(self.scales)
        return UniformSphere(self.d).C * float(np.exp(self.d * np.log(s[-1]) - np.sum(np.log(s))))

    def _unit(self, key, n, dtype):
        g = jax.random.normal(key, (n, self.d), dtype) * jnp.asarray(self.scales, dtype)[None, :]
        return g / jnp.linalg.norm(g, axis=-1, keepdims=True)

    def sample_gaps(self, key: PRNGKeyArray, n: int | float, *, dtype=None) -> Float[Array, " n"]:
        """Gaps to the last axis e_d, |x - e_d|^2/2 from the vectors (O(n d), exact)."""
        n = check_int("n", n, minimum=1)
        dtype = dtype or jnp.result_type(float)
        x = self._unit(key, n, dtype)
        e = jnp.zeros((self.d,), dtype).at[-1].set(1.0)
        return gaps_from_keys(e, x)

    def sample_keys(self, key: PRNGKeyArray, query: Float[ArrayLike, " d"], n: int | float) -> Float[Array, "n d"]:
        n = check_int("n", n, minimum=1)
        query = self._check_query(query)
        x = self._unit(key, n, query.dtype)
        basis = jnp.concatenate([orthonormal_complement(query), query[:, None]], axis=1)  # (d, d)
        return x @ basis.T


class LocalWarp(KeyLaw):
    """``base`` with the cap u < u0 remapped u -> u0 (u/u0)^{alpha_base/alpha}: new local exponent, same
    global shape (identical law outside the cap). C = C_base u0^{(alpha_base - alpha)/2}.

    >>> LocalWarp(UniformSphere(3), 0.02, 4.0).C   # 0.5 * 0.02^(-1)
    25.0
    """

    base: KeyLaw
    u0: float = eqx.field(static=True)
    alpha_: float = eqx.field(static=True)

    def __init__(self, base: KeyLaw, u0: float, alpha: float):
        if not isinstance(base, KeyLaw):
            raise InputError("LocalWarp(base, u0, alpha): base must be a key law")
        self.base = base
        self.d = base.d
        self.u0 = check_real("u0", u0, positive=True, maximum=2.0)
        self.alpha_ = check_real("alpha", alpha, positive=True)

    @property
    def alpha(self) -> float:
        return self.alpha_

    @property
    def C(self) -> float:  # noqa: N802
        return self.base.C * self.u0 ** ((self.base.alpha - self.alpha_) / 2)

    def _warp(self, u):
        p = self.base.alpha / self.alpha_
        inside = u < self.u0
        safe = jnp.where(inside, u, self.u0)
        return jnp.where(inside, self.u0 * jnp.exp(p * jnp.log(safe / self.u0)), u)

    def sample_gaps(self, key: PRNGKeyArray, n: int | float, *, dtype=None) -> Float[Array, " n"]:
        return self._warp(self.base.sample_gaps(key, n, dtype=dtype))

    def sample_keys(self, key: PRNGKeyArray, query: Float[ArrayLike, " d"], n: int | float) -> Float[Array, "n d"]:
        """Base keys; those in the cap are moved along the geodesic to q to the warped gap."""
        query = self._check_query(query)
        k = self.base.sample_keys(key, query, n)
        u = gaps_from_keys(query, k)
        diff = k - query[None, :]
        perp = diff - jnp.sum(diff * query[None, :], axis=-1, keepdims=True) * query[None, :]
        norm = jnp.linalg.norm(perp, axis=-1, keepdims=True)
        fallback = _directions(jax.random.fold_in(key, 1), query, n, k.dtype)
        xi = jnp.where(norm > 0, perp / jnp.where(norm > 0, norm, 1.0), fallback)
        w = self._warp(u)
        new = (1.0 - w)[:, None] * query[None, :] + jnp.sqrt(w * (2.0 - w))[:, None] * xi
        return jnp.where((u < self.u0)[:, None], new, k)
