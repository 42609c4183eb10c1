"""The key-law contract (KeyLaw, BetaGapLaw) and the gap of unit vectors, where keys lie relative to a query.

A key law is an :class:`equinox.Module` that samples

* ``sample_keys(key, query, n) -> Float[Array, "n d"]`` unit keys for a unit query ``(d,)``;
* ``sample_gaps(key, n) -> Float[Array, "n"]`` the gaps u = 1 - <q,k> = |q-k|^2/2 of n keys,
  drawn exactly in O(n) without building vectors (laws with a known gap law only).

and knows the local law of the gap near the query, P(u <= s) ~ C s^{alpha/2} as s -> 0
(docs/theory.md §a, §d): ``alpha`` is the local exponent and ``C`` its constant, so the critical
inverse temperature is beta = lambda n^{2/alpha}.

The laws with a known gap law are all Beta laws, u/2 ~ Beta(a, b):

=====================  =====================  ==============  ================================
law                    (a, b)                 alpha           key density on S^{d-1}
=====================  =====================  ==============  ================================
UniformSphere(d)       ((d-1)/2, (d-1)/2)     d - 1           uniform
PowerLawCap(d, alpha)  (alpha/2, (d-1)/2)     alpha           proportional to |q-k|^{alpha-d+1}
Subsphere(d, m)        ((m-1)/2, (m-1)/2)     m - 1           uniform on a great S^{m-1} through q
=====================  =====================  ==============  ================================

so C = 2^{-a} / (a B(a, b)). ``Empirical(keys)`` resamples given keys and estimates
alpha and C from the nearest-neighbour gaps to a query.

Conventions: ``key`` is always a JAX PRNG key; the attention keys are ``keys``. Gap samplers
keep full *relative* precision for the smallest gaps (they are not computed as 1 - t).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .. import _random
from .._checks import InputError, check_array, check_int, check_unit_vectors
from .._numerics.special import beta_quantile_host, lbeta
from ..theory.finite_n import ScoreLaw, beta_gap_score_law
from ..theory.regimes import TailPoint
from ..theory.sphere import beta_gap_constant

__all__ = ["normalize", "gaps_from_keys", "orthonormal_complement", "KeyLaw", "BetaGapLaw"]


def normalize(x: Float[ArrayLike, "... d"], *, axis: int = -1) -> Float[Array, "... d"]:
    """x / |x| along ``axis``. Zero vectors raise :class:`InputError` (when concrete)."""
    if not isinstance(x, jax.core.Tracer):
        arr = np.asarray(x)
        if arr.size and np.any(np.linalg.norm(arr, axis=axis) == 0):
            raise InputError("normalize: x has a zero vector, which has no direction")
    x = jnp.asarray(x)
    return x / jnp.linalg.norm(x, axis=axis, keepdims=True)


def gaps_from_keys(query: Float[ArrayLike, " d"], keys: Float[ArrayLike, "n d"]) -> Float[Array, " n"]:
    """Gaps u_i = |q - k_i|^2 / 2 (= 1 - <q,k_i> for unit vectors), at full relative precision.

    Computing 1 - <q,k> in float32 loses every digit once u is below ~1e-7 (n ~ 1e6 keys
    on S^2); |q-k|^2/2 keeps the relative precision of the difference vector.

    >>> import jax.numpy as jnp
    >>> q = jnp.array([0.0, 0.0, 1.0]); k = jnp.array([[0.0, 0.6, 0.8]])
    >>> round(float(gaps_from_keys(q, k)[0]), 6)  # 1 - 0.8
    0.2
    """
    diff = keys - query[None, :]
    return 0.5 * jnp.sum(diff * diff, axis=-1)


def orthonormal_complement(query: Float[ArrayLike, " d"]) -> Float[Array, "d d-1"]:
    """Columns: an orthonormal basis of the hyperplane orthogonal to the unit vector ``query``.

    Built from the Householder reflection H that maps e_1 to q (H is orthogonal and
    symmetric, H e_1 = q, so H's other columns span q-perp). Deterministic in q.
    """
    d = query.shape[-1]
    e1 = jnp.zeros(d, query.dtype).at[0].set(1.0)
    # Reflect about v = e1 - q; if q is close to e1 use -e1 -> q via v = e1 + q and flip sign.
    close = query[0] > 0
    v = jnp.where(close, e1 + query, e1 - query)
    vv = jnp.sum(v * v)
    h = jnp.eye(d, dtype=query.dtype) - 2.0 * jnp.outer(v, v) / vv
    h = jnp.where(close, -h, h)  # -(I - 2vv^T/vv) maps e1 -> q when v = e1 + q
    return h[:, 1:]


class KeyLaw(eqx.Module):
    """Abstract key law on S^{d-1} (see the module docstring for the contract)."""

    d: int = eqx.field(static=True)

    @property
    def alpha(self) -> float:  # local exponent of the gap law at the query
        raise NotImplementedError

    @property
    def C(self) -> float:  # P(u <= s) ~ C s^{alpha/2}
        raise NotImplementedError

    @property
    def has_gap_law(self) -> bool:
        return False

    def sample_keys(self, key: PRNGKeyArray, query: Float[ArrayLike, " d"], n: int | float) -> Float[Array, "n d"]:
        raise NotImplementedError

    def sample_gaps(self, key: PRNGKeyArray, n: int | float, *, dtype=None) -> Float[Array, " n"]:
        raise NotImplementedError(f"{type(self).__name__} has no exact gap sampler; sample keys instead")

    def _check_query(self, query):
        check_array("query", query, ndim=1, last_dim=self.d)
        check_unit_vectors("query", query)
        return jnp.asarray(query)


class BetaGapLaw(KeyLaw):
    """A key law whose gap satisfies u/2 ~ Beta(a, b) and whose keys are rotationally
    symmetric about the query (possibly inside a subspace). Subclasses set ``a``, ``b``."""

    @property
    def gap_beta_params(self) -> tuple[float, float]:
        raise NotImplementedError

    @property
    def has_gap_law(self) -> bool:
        return True

    @property
    def alpha(self) -> float:
        return 2.0 * self.gap_beta_params[0]

    @property
    def C(self) -> float:  # noqa: N802  (the sheet's name)
        """2^{-a} / (a B(a, b)): P(u <= s) ~ C s^a (:func:`phasejax.theory.beta_gap_constant`)."""
        return beta_gap_constant(*self.gap_beta_params)

    @property
    def energy_law(self) -> tuple[ScoreLaw, float]:
        """The gap law for the exact finite-n integrals (:func:`phasejax.theory.score_law`): beta multiplies
        <q,k> = 1 - u, so the beta factor is 1."""
        return beta_gap_score_law(*(float(v) for v in self.gap_beta_params)), 1.0

    def tail_point(self, n) -> TailPoint:
        """The gap law at its 1/n quantile (for :func:`phasejax.theory.predict_beta_peak`): u* = 2 I^{-1}(1/n)
        at full relative precision, the hazard f(u*)/F(u*) and the local exponent u* f(u*)/F(u*)."""
        a, b = (float(v) for v in self.gap_beta_params)
        n = float(n)
        x = float(beta_quantile_host(a, b, -math.log(n)))
        log_fx = (a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - lbeta(a, b)
        hazard = math.exp(log_fx + math.log(n)) / 2.0  # f_u(u) = f_x(u/2)/2, F = 1/n
        return TailPoint(n, 2.0 * x, hazard, 2.0 * x * hazard)

    # -- the gap law ----------------------------------------------------------------------
    def gap_cdf(self, u: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """F(u) = P(gap <= u) = I_{u/2}(a, b) (regularised incomplete Beta)."""
        a, b = self.gap_beta_params
        return betainc(a, b, jnp.clip(jnp.asarray(u) / 2, 0.0, 1.0))

    def gap_log_density(self, u: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """log f(u) with f the gap density on (0, 2): f(u) = (u/2)^{a-1} (1-u/2)^{b-1} / (2 B(a,b))."""
        a, b = self.gap_beta_params
        x = jnp.asarray(u) / 2
        return (a - 1) * jnp.log(x) + (b - 1) * jnp.log1p(-x) - math.log(2.0) - lbeta(a, b)

    def gap_mean(self) -> float:
        """E u = 2a/(a+b)."""
        a, b = self.gap_beta_params
        return 2 * a / (a + b)

    def gap_var(self) -> float:
        """Var u = 4ab/((a+b)^2 (a+b+1))."""
        a, b = self.gap_beta_params
        return 4 * a * b / ((a + b) ** 2 * (a + b + 1))

    def sample_gaps(self, key: PRNGKeyArray, n: int | float, *, dtype=None) -> Float[Array, " n"]:
        """n i.i.d. gaps, exactly, in O(n), with full relative precision for small gaps.

        Closed-form inverse CDFs where they exist (b = 1: u = 2 U^{1/a}; uniform S^2 is
        u = 2U); a = b half-integer: the gap of a Gaussian direction (2a + 1 normals,
        computed without cancellation); otherwise a log-Gamma ratio.
        """
        n = check_int("n", n, minimum=1)
        dtype = dtype or jnp.result_type(float)
        a, b = self.gap_beta_params
        if a == 1.0 and b == 1.0:  # uniform S^2: u = 2U exactly
            return 2.0 * _random.uniform_open(key, (n,), dtype)
        if b == 1.0:
            logu = jnp.log(_random.uniform_open(key, (n,), dtype))
            return 2.0 * jnp.exp(logu / a)
        if a == b and float(2 * a).is_integer():
            return _gaussian_direction_gaps(key, n, int(2 * a) + 1, dtype)
        k1, k2 = jax.random.split(key)
        l1 = jax.random.loggamma(k1, a, (n,), dtype)
        l2 = jax.random.loggamma(k2, b, (n,), dtype)
        return 2.0 * jnp.exp(l1 - jnp.logaddexp(l1, l2))

    def _directions(self, key, query, n, dtype):
        """Unit vectors orthogonal to q, uniform on the part of q-perp the keys live in."""
        basis = self._perp_basis(query)  # (d, r)
        g = jax.random.normal(key, (n, basis.shape[1]), dtype)
        g = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
        return g @ basis.T

    def _perp_basis(self, query):
        return orthonormal_complement(query)

    def sample_keys(self, key: PRNGKeyArray, query: Float[ArrayLike, " d"], n: int | float) -> Float[Array, "n d"]:
        """n unit keys: k = (1-u) q + sqrt(u (2-u)) xi, u a gap and xi uniform on q-perp."""
        n = check_int("n", n, minimum=1)
        query = self._check_query(query)
        dtype = query.dtype
        kg, kx = jax.random.split(key)
        u = self.sample_gaps(kg, n, dtype=dtype)
        xi = self._directions(kx, query, n, dtype)
        return (1.0 - u)[:, None] * query[None, :] + jnp.sqrt(u * (2.0 - u))[:, None] * xi


def _gaussian_direction_gaps(key, n, k, dtype):
    """Gap of g/|g| to e_1 for g ~ N(0, I_k): u = 1 - g1/|g|, computed without cancellation
    as |g_perp|^2 / (|g| (|g| + g1)) when g1 > 0. u/2 ~ Beta((k-1)/2, (k-1)/2)."""
    g = jax.random.normal(key, (n, k), dtype)
    g1 = g[:, 0]
    perp2 = jnp.sum(g[:, 1:] ** 2, axis=-1)
    r = jnp.sqrt(g1 * g1 + perp2)
    pos = perp2 / (r * (r + jnp.abs(g1)))  # = 1 - |g1|/r
    return jnp.where(g1 > 0, pos, 2.0 - pos)
