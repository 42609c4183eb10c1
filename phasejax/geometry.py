"""Key laws: where the n keys of a context lie on the sphere S^{d-1} relative to a query.

A key law is an :class:`equinox.Module` that samples

* ``sample_keys(key, query, n) -> Float[Array, "n d"]`` unit keys for a unit query ``(d,)``;
* ``sample_gaps(key, n) -> Float[Array, "n"]`` the gaps u = 1 - <q,k> = |q-k|^2/2 of n keys,
  drawn exactly in O(n) without building vectors (laws with a known gap law only).

and knows the local law of the gap near the query, P(u <= s) ~ C s^{alpha/2} as s -> 0
(THEORY.md a, d): ``alpha`` is the local exponent and ``C`` its constant, so the critical
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
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, gammaln
from jaxtyping import Array, Float, PRNGKeyArray

from . import _random
from ._checks import InputError, check_array, check_int, check_real, check_unit_vectors

__all__ = [
    "KeyLaw",
    "BetaGapLaw",
    "UniformSphere",
    "PowerLawCap",
    "Subsphere",
    "Empirical",
    "law_from_name",
    "gaps_from_keys",
    "normalize",
    "orthonormal_complement",
]


# --------------------------------------------------------------------------- vectors -> gaps


def normalize(x: Float[Array, "... d"], *, axis: int = -1) -> Float[Array, "... d"]:
    """x / |x| along ``axis``. Zero vectors raise :class:`InputError` (when concrete)."""
    if not isinstance(x, jax.core.Tracer):
        arr = np.asarray(x)
        if arr.size and np.any(np.linalg.norm(arr, axis=axis) == 0):
            raise InputError("normalize: x has a zero vector, which has no direction")
    x = jnp.asarray(x)
    return x / jnp.linalg.norm(x, axis=axis, keepdims=True)


def gaps_from_keys(query: Float[Array, " d"], keys: Float[Array, "n d"]) -> Float[Array, " n"]:
    """Gaps u_i = |q - k_i|^2 / 2 (= 1 - <q,k_i> for unit vectors), at full relative precision.

    Computing 1 - <q,k> in float32 loses every digit once u is below ~1e-7 (n ~ 1e6 keys
    on S^2); |q-k|^2/2 keeps the relative precision of the difference vector.

    >>> import jax.numpy as jnp
    >>> q = jnp.array([0.0, 0.0, 1.0]); k = jnp.array([[0.0, 0.6, 0.8]])
    >>> float(gaps_from_keys(q, k)[0])  # 1 - 0.8
    0.2...
    """
    diff = keys - query[None, :]
    return 0.5 * jnp.sum(diff * diff, axis=-1)


def orthonormal_complement(query: Float[Array, " d"]) -> Float[Array, "d d-1"]:
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


def _lbeta(a, b):
    return gammaln(a) + gammaln(b) - gammaln(a + b)


# --------------------------------------------------------------------------- laws


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

    def sample_keys(self, key: PRNGKeyArray, query: Float[Array, " d"], n: int) -> Float[Array, "n d"]:
        raise NotImplementedError

    def sample_gaps(self, key: PRNGKeyArray, n: int, *, dtype=None) -> Float[Array, " n"]:
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
    def C(self) -> float:
        a, b = self.gap_beta_params
        lbeta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        return math.exp(-a * math.log(2.0) - math.log(a) - lbeta)

    # -- the gap law ----------------------------------------------------------------------
    def gap_cdf(self, u: Float[Array, "..."]) -> Float[Array, "..."]:
        """F(u) = P(gap <= u) = I_{u/2}(a, b) (regularised incomplete Beta)."""
        a, b = self.gap_beta_params
        return betainc(a, b, jnp.clip(jnp.asarray(u) / 2, 0.0, 1.0))

    def gap_log_density(self, u: Float[Array, "..."]) -> Float[Array, "..."]:
        """log f(u) with f the gap density on (0, 2): f(u) = (u/2)^{a-1} (1-u/2)^{b-1} / (2 B(a,b))."""
        a, b = self.gap_beta_params
        x = jnp.asarray(u) / 2
        return (a - 1) * jnp.log(x) + (b - 1) * jnp.log1p(-x) - math.log(2.0) - _lbeta(a, b)

    def gap_mean(self) -> float:
        """E u = 2a/(a+b)."""
        a, b = self.gap_beta_params
        return 2 * a / (a + b)

    def gap_var(self) -> float:
        """Var u = 4ab/((a+b)^2 (a+b+1))."""
        a, b = self.gap_beta_params
        return 4 * a * b / ((a + b) ** 2 * (a + b + 1))

    def sample_gaps(self, key: PRNGKeyArray, n: int, *, dtype=None) -> Float[Array, " n"]:
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

    def sample_keys(self, key: PRNGKeyArray, query: Float[Array, " d"], n: int) -> Float[Array, "n d"]:
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


class UniformSphere(BetaGapLaw):
    """Keys uniform on S^{d-1}: u/2 ~ Beta(h, h), h = (d-1)/2, alpha = d-1 (THEORY a).

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
    """Key density on S^{d-1} proportional to |q-k|^gamma, gamma = alpha - (d-1) (THEORY d).

    u/2 ~ Beta(alpha/2, (d-1)/2), so P(u <= s) ~ C s^{alpha/2}; alpha < d-1 piles keys up
    at the query (density blows up), alpha > d-1 empties the cap (density vanishes).
    On S^2 (d = 3): u = 2 U^{2/alpha} exactly and P(u <= s) = (s/2)^{alpha/2}.

    >>> PowerLawCap(3, 4.0).C
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

    def __init__(self, d: int, m: int):
        self.d = check_int("d", d, minimum=2)
        self.m = check_int("m", m, minimum=2, maximum=self.d)

    @property
    def gap_beta_params(self):
        h = (self.m - 1) / 2
        return (h, h)

    def _perp_basis(self, query):
        return orthonormal_complement(query)[:, : self.m - 1]


class Empirical(KeyLaw):
    """Keys given as data (an array or a .npy file; pickles are refused).

    ``sample_keys`` draws n rows (without replacement when n <= number of rows, else with
    replacement). ``alpha`` and ``C`` are estimated from the ``k`` smallest gaps to
    ``query`` by maximum likelihood (Hill): with u_(1) <= ... <= u_(k+1),
    1/h = mean_i log(u_(k+1)/u_(i)), alpha = 2h, C = (k/N) u_(k+1)^{-h}, se(alpha) = alpha/sqrt(k).
    """

    keys: Float[Array, "N d"]
    query: Float[Array, " d"] | None
    k: int = eqx.field(static=True)

    def __init__(self, keys, query=None, *, k: int | None = None, normalize_keys: bool = True):
        if isinstance(keys, (str, os.PathLike)):
            keys = load_npy(keys, "keys")
        check_array("keys", keys, ndim=2)
        arr = np.asarray(keys, dtype=np.float64)
        d = check_int("keys.shape[1] (d)", arr.shape[1], minimum=2)
        norms = np.linalg.norm(arr, axis=1)
        if np.any(norms == 0):
            raise InputError(f"keys has a zero vector (row {int(np.argmin(norms))}); keys must be nonzero")
        if normalize_keys:
            arr = arr / norms[:, None]
        else:
            check_unit_vectors("keys", arr)
        self.d = d
        self.keys = jnp.asarray(arr, dtype=jnp.result_type(float))
        if query is not None:
            if isinstance(query, (str, os.PathLike)):
                query = load_npy(query, "query")
            check_array("query", query, ndim=1, last_dim=d)
            q = np.asarray(query, dtype=np.float64)
            if np.linalg.norm(q) == 0:
                raise InputError("query is the zero vector; it must be nonzero")
            self.query = jnp.asarray(q / np.linalg.norm(q), dtype=self.keys.dtype)
        else:
            self.query = None
        n_keys = arr.shape[0]
        default_k = max(2, min(n_keys - 1, int(round(math.sqrt(n_keys)))))
        self.k = check_int("k", default_k if k is None else k, minimum=2, maximum=max(2, n_keys - 1))

    def _tail(self):
        if self.query is None:
            raise InputError("Empirical: alpha and C need a query; pass query=... to Empirical(keys, query)")
        u = np.sort(np.asarray(gaps_from_keys(self.query, self.keys), dtype=np.float64))
        k = self.k
        uk1 = u[k]
        small = u[:k]
        if uk1 <= 0 or np.any(small <= 0):
            raise InputError("Empirical: the query coincides with a key (zero gap); alpha is undefined")
        h = 1.0 / np.mean(np.log(uk1 / small))
        return h, (k / u.size) * uk1 ** (-h)

    @property
    def alpha(self) -> float:
        return 2.0 * self._tail()[0]

    @property
    def alpha_se(self) -> float:
        return self.alpha / math.sqrt(self.k)

    @property
    def C(self) -> float:
        return float(self._tail()[1])

    def sample_keys(self, key, query=None, n: int | None = None):
        n_rows = self.keys.shape[0]
        n = n_rows if n is None else check_int("n", n, minimum=1)
        if n <= n_rows:
            idx = jax.random.permutation(key, n_rows)[:n]
        else:
            idx = jax.random.randint(key, (n,), 0, n_rows)
        return self.keys[idx]

    def sample_gaps(self, key, n: int | None = None, *, dtype=None):
        """Gaps to ``self.query`` of n resampled keys."""
        if self.query is None:
            raise InputError("Empirical.sample_gaps needs a query; pass query=... to Empirical(keys, query)")
        keys = self.sample_keys(key, None, n)
        return gaps_from_keys(self.query, keys).astype(dtype or keys.dtype)

    @property
    def has_gap_law(self) -> bool:
        return False


def load_npy(path, name: str = "file"):
    """Load a .npy array with pickles refused; unreadable files raise :class:`InputError`."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{name}: no such file {path!r}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise InputError(f"{name}: {path!r} is not a plain .npy array (pickles are refused): {e}") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read {path!r}: {e}") from None


_LAW_NAMES = ("uniform", "powerlaw", "subsphere", "gaussian")


def law_from_name(name: str, *, d: int, alpha: float | None = None, m: int | None = None,
                  sigma: float | None = None) -> KeyLaw:
    """Build a key law from its CLI name: ``uniform``, ``powerlaw`` (needs alpha), ``subsphere`` (needs m)
    or ``gaussian`` (i.i.d. N(0, sigma^2) scores, :class:`phasejax.scores.GaussianScores`; sigma defaults
    to 1/sqrt(d), the score spread of uniform keys on S^{d-1}; d is then ignored otherwise)."""
    if name == "uniform":
        return UniformSphere(d)
    if name == "powerlaw":
        if alpha is None:
            raise InputError("geometry 'powerlaw' needs --alpha (the local exponent, > 0)")
        return PowerLawCap(d, alpha)
    if name == "subsphere":
        if m is None:
            raise InputError("geometry 'subsphere' needs --subsphere-dim M (2 <= M <= d)")
        return Subsphere(d, m)
    if name == "gaussian":
        from .scores import GaussianScores

        if sigma is None:
            d = check_int("d", d, minimum=1)
            sigma = 1.0 / math.sqrt(d)
        return GaussianScores(sigma)
    raise InputError(f"geometry must be one of {', '.join(map(repr, _LAW_NAMES))}; got {name!r}")
