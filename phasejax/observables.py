"""Attention observables of one query over a grid of inverse temperatures, in one streaming pass.

Shape contract (one instance; batch over seeds or laws with ``jax.vmap``):

* ``gaps``: ``Float[Array, "n"]``, u_i = 1 - <q,k_i> >= 0;
* ``betas``: ``Float[Array, "B"]`` (a scalar is treated as shape ``(1,)``... and the
  result keeps the leading ``B`` axis);
* result: an :class:`Observables` pytree whose fields have a leading ``B`` axis.

The weights are w_i(beta) = exp(-beta u_i) / sum_j exp(-beta u_j) = softmax(beta <q,k>).
The keys are consumed in chunks with an online (running-minimum) log-sum-exp: since every
beta >= 0, the largest logit is -beta u_min for all betas at once, so the running state is
the minimum gap m and, per beta, the shifted sums (u' = u - m)

    Z = sum e^{-beta u'},  Z1 = sum e^{-beta u'} u',  Z2 = sum e^{-beta u'} u'^2,  Q = sum e^{-2 beta u'},

rescaled by e^{-beta delta} when m drops by delta. Memory is O(B + chunk) whatever n is.
From these, exactly (no further approximation):

* max weight W_(1) = 1/Z; sum w^2 = Q/Z^2 and its inverse (Kish effective keys);
* entropy (nats) H = log Z + beta Z1/Z; effective keys exp(H);
* <u>_w = m + Z1/Z, Var_w(u) = Z2/Z - (Z1/Z)^2; log partition log sum e^{-beta u} = -beta m + log Z;
* top-k mass = sum over the k smallest gaps of e^{-beta u'} / Z (the k smallest are kept exactly);
* with keys: the output y = sum_i w_i v_i (values v = keys unless given) and its bias
  y - A_d(beta) q relative to the n -> infinity limit (docs/theory.md §b).

Everything is differentiable in beta (``jax.jvp`` gives susceptibilities; docs/theory.md §e).

A logit transform (``transform=SoftCap(50.0)``, any :class:`LogitTransform` f) gives weights proportional to
exp(f(beta t)) through its own accumulator (:class:`TransformedAccumulator`, docs/theory.md §j); without one the
pass above runs unchanged.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._checks import InputError, check_array, check_betas, check_int, check_unit_vectors
from ._numerics.logit import LogitTransform, SoftCap
from .laws.base import KeyLaw, gaps_from_keys
from .laws.nearest import DEFAULT_M, DEFAULT_NODES, bulk_sums, check_n_m, check_nearest_law, nearest_sample
from .theory.sphere import mean_resultant

__all__ = [
    "Accumulator",
    "Observables",
    "log_weights",
    "weights",
    "gap_observables",
    "key_observables",
    "sampled_observables",
    "Truncation",
    "nearest_observables_with_bound",
    "nearest_observables",
    "LogitTransform",
    "SoftCap",
    "TransformedAccumulator",
]


DEFAULT_CHUNK = 32768


OBSERVABLE_NAMES = (
    "max_weight",
    "entropy",
    "effective_keys",
    "sum_w2",
    "inv_sum_w2",
    "top_k_mass",
    "mean_gap",
    "var_gap",
    "log_partition",
)


class Observables(eqx.Module):
    """Attention observables; every field has a leading axis over the beta grid (``B``).

    ``output`` (B, d) and ``bias`` (B, d) are present only when keys were given.
    """

    beta: Float[Array, " B"]
    max_weight: Float[Array, " B"]
    entropy: Float[Array, " B"]
    effective_keys: Float[Array, " B"]
    sum_w2: Float[Array, " B"]
    inv_sum_w2: Float[Array, " B"]
    top_k_mass: Float[Array, " B"]
    mean_gap: Float[Array, " B"]
    var_gap: Float[Array, " B"]
    log_partition: Float[Array, " B"]
    min_gap: Float[Array, ""]
    output: Float[Array, "B d"] | None = None
    bias: Float[Array, "B d"] | None = None
    top_k: int = eqx.field(static=True, default=1)

    def as_dict(self) -> dict:
        out = {name: getattr(self, name) for name in ("beta", *OBSERVABLE_NAMES)}
        if self.output is not None:
            out["output"] = self.output
            out["bias"] = self.bias
        return out


def log_weights(gaps: Float[ArrayLike, " n"], beta) -> Float[Array, " n"]:
    """log w_i = -beta u_i - log sum_j exp(-beta u_j), computed from gaps (stable).

    >>> import jax.numpy as jnp
    >>> w = jnp.exp(log_weights(jnp.array([0.0, 1.0]), 1.0))
    >>> [round(float(x), 4) for x in w]
    [0.7311, 0.2689]
    """
    # shift by the smallest gap first: -beta u itself can be huge (beta = 1e6, u = 1), and subtracting
    # two large logits would lose the digits of the small difference (float32 spacing at 512 is 6e-5)
    gaps = jnp.asarray(gaps)
    logits = -jnp.asarray(beta, gaps.dtype) * (gaps - jnp.min(gaps))
    return logits - jax.nn.logsumexp(logits)


def weights(gaps: Float[ArrayLike, " n"], beta) -> Float[Array, " n"]:
    """w_i = softmax(-beta u)_i = softmax(beta <q,k>)_i."""
    return jnp.exp(log_weights(gaps, beta))


class Accumulator(eqx.Module):
    """The streaming state of one query over a beta grid: the public accumulator that every pass reuses.

    Fields: ``m`` the running minimum gap (); per beta (B,), the shifted sums (u' = u - m)
    ``z`` = sum e^{-beta u'}, ``z1`` = sum e^{-beta u'} u', ``z2`` = sum e^{-beta u'} u'^2,
    ``q`` = sum e^{-2 beta u'}; ``topk`` (k,) the k smallest gaps seen, ascending; ``y`` (B, dv) the sum
    e^{-beta u'} v when values are streamed (else None). Folding a chunk rescales the sums by e^{-beta delta}
    when the minimum drops by delta, so any chunking gives the same result (module docstring).

    Use: ``acc = Accumulator.init(betas, top_k=..., values_dim=...)``, then ``acc = acc.update(betas, u, valid)``
    per chunk (inside ``jax.lax.scan``), then ``acc.finish(betas)`` -> :class:`Observables`.

    >>> import jax.numpy as jnp
    >>> b = jnp.array([0.0, 100.0])
    >>> acc = Accumulator.init(b, top_k=1).update(b, jnp.array([0.5, 0.0]), jnp.array([True, True]))
    >>> [round(float(x), 4) for x in acc.update(b, jnp.array([1.0]), jnp.array([True])).finish(b).max_weight]
    [0.3333, 1.0]
    """

    m: Array
    z: Array
    z1: Array
    z2: Array
    q: Array
    topk: Array
    y: Array | None

    @classmethod
    def init(cls, betas: Float[ArrayLike, "*B"], *, top_k: int = 1, values_dim: int | None = None,
             dtype=None) -> Accumulator:
        """The empty state for ``betas`` (B,), keeping the ``top_k`` smallest gaps and, with ``values_dim``,
        the weighted sum of values of that dimension. dtype: ``betas``'s unless given."""
        dtype = dtype or betas.dtype
        zeros = jnp.zeros(betas.shape, dtype)
        return cls(
            m=jnp.asarray(jnp.inf, dtype), z=zeros, z1=zeros, z2=zeros, q=zeros,
            topk=jnp.full((top_k,), jnp.inf, dtype),
            y=None if values_dim is None else jnp.zeros((*betas.shape, values_dim), dtype),
        )

    def update(self, betas, u, valid, values=None) -> Accumulator:
        """Fold one chunk of gaps ``u`` (c,) into the state; entries with ``valid`` False are padding."""
        big = jnp.asarray(jnp.inf, u.dtype)
        cmin = jnp.min(jnp.where(valid, u, big))
        m_new = jnp.minimum(self.m, cmin)
        had = jnp.isfinite(self.m)
        delta = jnp.where(had, self.m - m_new, 0.0)  # >= 0
        scale = jnp.where(had, jnp.exp(-betas * delta), 0.0)  # (B,)
        z1_old = self.z1 + delta * self.z
        z2_old = self.z2 + 2 * delta * self.z1 + delta * delta * self.z
        up = jnp.where(valid, u - m_new, 0.0)  # (c,)
        e = jnp.where(valid[None, :], jnp.exp(-betas[:, None] * up[None, :]), 0.0)  # (B, c)
        k = self.topk.shape[0]
        cand = jnp.concatenate([self.topk, jnp.where(valid, u, big)])
        y = None if values is None else scale[:, None] * self.y + e @ values
        return Accumulator(
            m=m_new, z=scale * self.z + jnp.sum(e, axis=1), z1=scale * z1_old + e @ up,
            z2=scale * z2_old + e @ (up * up), q=scale * scale * self.q + jnp.sum(e * e, axis=1),
            topk=-jax.lax.top_k(-cand, k)[0], y=y,
        )

    def add_sums(self, z, z1, z2, q) -> Accumulator:
        """The state with (z, z1, z2, q) (B,) added to its shifted sums (keys accounted for in aggregate, e.g.
        the bulk of the nearest-m sampler; they must lie above the current minimum)."""
        return eqx.tree_at(lambda s: (s.z, s.z1, s.z2, s.q), self, (self.z + z, self.z1 + z1, self.z2 + z2,
                                                                    self.q + q))

    def finish(self, betas, *, query=None, d=None) -> Observables:
        """The observables of the state (docs/theory.md §b for the bias, relative to A_d(beta) q)."""
        z = self.z
        mean_up = self.z1 / z
        var = jnp.maximum(self.z2 / z - mean_up * mean_up, 0.0)
        entropy = jnp.log(z) + betas * mean_up
        topk_e = jnp.exp(-betas[:, None] * (self.topk[None, :] - self.m))
        topk_e = jnp.where(jnp.isfinite(self.topk)[None, :], topk_e, 0.0)
        output = bias = None
        if self.y is not None:
            output = self.y / z[:, None]
            if query is not None:
                bias = output - mean_resultant(betas, d)[:, None] * query[None, :]
        return Observables(
            beta=betas, max_weight=1.0 / z, entropy=entropy, effective_keys=jnp.exp(entropy),
            sum_w2=self.q / (z * z), inv_sum_w2=(z * z) / self.q, top_k_mass=jnp.sum(topk_e, axis=1) / z,
            mean_gap=self.m + mean_up, var_gap=var, log_partition=-betas * self.m + jnp.log(z), min_gap=self.m,
            output=output, bias=bias, top_k=self.topk.shape[0],
        )


def _as_betas(betas, dtype):
    betas = jnp.asarray(betas, dtype)
    return betas.reshape(-1) if betas.ndim == 0 else betas


def _chunking(n, chunk):
    chunk = int(min(chunk, n))
    n_chunks = -(-n // chunk)
    return chunk, n_chunks


# The three streaming drivers (gaps in memory, keys in memory, gaps sampled inside the scan) are shared by the
# plain pass (transform None: :class:`Accumulator`) and the transformed one (:class:`TransformedAccumulator`):
# ``_new_state``, ``_fold`` and ``_finish`` pick the accumulator, the drivers only chunk, pad and mask.


def _new_state(transform, betas, top_k, dtype, values_dim=None):
    cls = Accumulator if transform is None else TransformedAccumulator
    return cls.init(betas, top_k=top_k, values_dim=values_dim, dtype=dtype)


def _fold(state, transform, betas, u, valid, values=None):
    if transform is None:
        return state.update(betas, u, valid, values)
    return state.update(transform, betas, u, valid, values)


def _finish(state, transform, betas, *, query=None, d=None):
    if transform is None:
        return state.finish(betas, query=query, d=d)
    return state.finish(transform, betas)


@functools.partial(jax.jit, static_argnames=("top_k", "chunk"))
def _gap_observables(gaps, betas, top_k, chunk, transform=None):
    n = gaps.shape[0]
    chunk, n_chunks = _chunking(n, chunk)
    pad = n_chunks * chunk - n
    u = jnp.pad(gaps, (0, pad)).reshape(n_chunks, chunk)
    valid = (jnp.arange(n_chunks * chunk) < n).reshape(n_chunks, chunk)

    def body(s, xs):
        return _fold(s, transform, betas, *xs), None

    state, _ = jax.lax.scan(body, _new_state(transform, betas, top_k, gaps.dtype), (u, valid))
    return _finish(state, transform, betas)


def gap_observables(
    gaps: Float[ArrayLike, " n"],
    betas: Float[ArrayLike, "*B"],
    *,
    top_k: int = 5,
    chunk: int = DEFAULT_CHUNK,
    transform: LogitTransform | None = None,
) -> Observables:
    """All observables of one query from its n gaps, for every beta, in one streaming pass.

    Args:
      gaps: u_i = 1 - <q,k_i> >= 0, shape (n,) (see :func:`phasejax.gaps_from_keys`).
      betas: inverse temperatures >= 0, shape (B,) or scalar.
      top_k: k of the top-k mass (static).
      chunk: keys per streaming chunk (static); memory is O(B * chunk).
      transform: optional logit transform f (:class:`SoftCap`, any :class:`LogitTransform`): weights
        proportional to exp(f(beta t)), t = 1 - u (:class:`TransformedAccumulator`, docs/theory.md §j).

    Returns:
      :class:`Observables` with fields of shape (B,).

    >>> import jax.numpy as jnp
    >>> obs = gap_observables(jnp.array([0.0, 0.5, 1.0]), jnp.array([0.0, 100.0]))
    >>> [round(float(x), 4) for x in obs.max_weight]  # uniform at beta=0, argmin at large beta
    [0.3333, 1.0]
    """
    _check_gaps(gaps)
    check_betas(betas)
    top_k = check_int("top_k", top_k, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    gaps = jnp.asarray(gaps)
    if not jnp.issubdtype(gaps.dtype, jnp.floating):
        gaps = gaps.astype(jnp.result_type(float))
    return _gap_observables(gaps, _as_betas(betas, gaps.dtype), top_k, chunk, _check_transform(transform))


@functools.partial(jax.jit, static_argnames=("top_k", "chunk"))
def _key_observables(query, keys, values, betas, top_k, chunk, transform=None):
    n, d = keys.shape
    chunk, n_chunks = _chunking(n, chunk)
    pad = n_chunks * chunk - n
    kc = jnp.pad(keys, ((0, pad), (0, 0))).reshape(n_chunks, chunk, d)
    vc = jnp.pad(values, ((0, pad), (0, 0))).reshape(n_chunks, chunk, values.shape[1])
    valid = (jnp.arange(n_chunks * chunk) < n).reshape(n_chunks, chunk)
    state = _new_state(transform, betas, top_k, keys.dtype, values_dim=values.shape[1])

    def body(s, xs):
        k, v, ok = xs
        return _fold(s, transform, betas, gaps_from_keys(query, k), ok, v), None

    state, _ = jax.lax.scan(body, state, (kc, vc, valid))
    return _finish(state, transform, betas, query=query if values.shape[1] == d else None, d=d)


def key_observables(
    query: Float[ArrayLike, " d"],
    keys: Float[ArrayLike, "n d"],
    betas: Float[ArrayLike, "*B"],
    *,
    values: Float[ArrayLike, "n dv"] | None = None,
    top_k: int = 5,
    chunk: int = DEFAULT_CHUNK,
    transform: LogitTransform | None = None,
) -> Observables:
    """Observables of a unit query against unit keys, plus the output y = sum w_i v_i.

    Gaps are computed as |q-k|^2/2 (full relative precision). ``values`` default to the keys
    (identity values); then ``bias`` = y - A_d(beta) q, the deviation from the n -> infinity
    output (docs/theory.md §b), with A_d from :func:`phasejax.theory.mean_resultant`.
    ``transform``: as in :func:`gap_observables` (then ``bias`` is None).
    """
    check_array("query", query, ndim=1)
    check_array("keys", keys, ndim=2)
    d = np.shape(query)[0]
    if np.shape(keys)[1] != d:
        raise InputError(f"keys must have shape (n, {d}) to match query of shape ({d},), got {np.shape(keys)}")
    check_unit_vectors("query", query)
    check_unit_vectors("keys", keys)
    if values is not None:
        check_array("values", values, ndim=2)
        if np.shape(values)[0] != np.shape(keys)[0]:
            raise InputError(
                f"values must have one row per key ({np.shape(keys)[0]}), got shape {np.shape(values)}"
            )
    check_betas(betas)
    top_k = check_int("top_k", top_k, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    keys = jnp.asarray(keys)
    dtype = keys.dtype if jnp.issubdtype(keys.dtype, jnp.floating) else jnp.result_type(float)
    keys = keys.astype(dtype)
    query = jnp.asarray(query, dtype)
    values = keys if values is None else jnp.asarray(values, dtype)
    return _key_observables(query, keys, values, _as_betas(betas, dtype), top_k, chunk, _check_transform(transform))


def _chunk_valid(n: int, chunk: int):
    """``valid(c)``: the (chunk,) mask of real keys in chunk c of n keys generated chunk by chunk (all but the last
    chunk full). The last chunk's count is a host int <= chunk, so nothing overflows int32 at n >= 2^31 (the
    plain c * chunk + i < n would)."""
    idx = jnp.arange(chunk)
    last = -(-n // chunk) - 1
    rem = n - last * chunk

    def valid(c):
        return (c < last) | (idx < rem)

    return valid


@functools.partial(jax.jit, static_argnames=("n", "top_k", "chunk", "dtype"))
def _sampled_observables(law, key, betas, n, top_k, chunk, dtype, transform=None):
    chunk, n_chunks = _chunking(n, chunk)
    valid = _chunk_valid(n, chunk)

    def body(s, c):
        u = law.sample_gaps(jax.random.fold_in(key, c), chunk, dtype=dtype)
        return _fold(s, transform, betas, u, valid(c)), None

    state, _ = jax.lax.scan(body, _new_state(transform, betas, top_k, dtype), jnp.arange(n_chunks))
    return _finish(state, transform, betas)


def sampled_observables(
    law: KeyLaw,
    key: PRNGKeyArray,
    n: int | float,
    betas: Float[ArrayLike, "*B"],
    *,
    top_k: int = 5,
    chunk: int = DEFAULT_CHUNK,
    transform: LogitTransform | None = None,
) -> Observables:
    """Observables of n keys drawn from ``law``, generated chunk by chunk inside the scan.

    Nothing of size n is ever stored: memory is O(B * chunk), so n = 1e8 or more runs on a
    laptop. The gaps of chunk c are ``law.sample_gaps(fold_in(key, c), chunk)``, so the
    same ``key`` gives the same keys for every beta (common random numbers). ``vmap`` over
    ``key`` for a seed ensemble. ``transform``: as in :func:`gap_observables`.
    """
    if not law.has_gap_law:
        raise InputError(f"sampled_observables needs a law with an exact gap sampler, got {type(law).__name__}")
    n = check_int("n", n, minimum=1)
    check_betas(betas)
    top_k = check_int("top_k", top_k, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    dtype = jnp.result_type(float)
    if -(-n // min(chunk, n)) >= 2**31:
        raise InputError(f"n = {n} needs {-(-n // min(chunk, n))} chunks of {min(chunk, n)} keys, more than the 2^31 "
                         "a scan can count; raise chunk or use the nearest sampler (--sampler nearest)")
    return _sampled_observables(law, key, _as_betas(betas, dtype), n, top_k, chunk, dtype,
                                _check_transform(transform))


def _check_gaps(gaps):
    if isinstance(gaps, jax.core.Tracer):
        return
    check_array("gaps", gaps, ndim=1)
    if np.any(np.asarray(gaps) < 0):
        raise InputError(f"gaps must be >= 0 (u = 1 - <q,k>), got min {np.min(gaps)!r}")


class Truncation(eqx.Module):
    """How far the nearest-m observables can be from those of all n keys (fields (B,)).

    * ``dropped``: N e^{-beta (u_(m) - u_(1))} / Z_top, N = n - m: a sure upper bound on the
      bulk's share of Z (each bulk key has e^{-beta u'} <= e^{-beta (u_(m) - u_(1))}), hence on
      the relative error of Z (and of the max weight) when the bulk is left out (``bulk=False``).
    * ``bulk_fraction``: the bulk's mean share of Z, N E[X_0] / Z.
    * ``fluctuation``: the standard deviation of the bulk sum of e^{-beta u'} relative to Z,
      sqrt(N Var X_0) / Z: the (1-sigma) relative error of Z when the bulk is replaced by its
      mean (``fluctuation=False``); with ``fluctuation=True`` it is the size of the Gaussian term.
    * ``clt``: Berry-Esseen bound (constant 0.4748, Shevtsova 2011) on the Kolmogorov distance
      between the law of the bulk sum and its Gaussian: 0.4748 / (sigma sqrt(N)), using
      0 <= X_0 e^{beta (u_(m) - u_(1))} <= 1 (so E|X - mu|^3 <= sigma^2 in those units); capped at 1.
    * ``bound``: the headline error of Z relative to Z: ``dropped`` for ``bulk=False``;
      min(dropped, fluctuation) for the mean only; min(dropped, fluctuation * clt) with the CLT
      fluctuation. ``dropped`` is a sure bound; the other terms are 1-sigma error scales.
      Quadrature errors (< 1e-12 relative in float64) are not included.
    """

    dropped: Float[Array, " B"]
    bulk_fraction: Float[Array, " B"]
    fluctuation: Float[Array, " B"]
    clt: Float[Array, " B"]
    bound: Float[Array, " B"]


@functools.partial(
    jax.jit, static_argnames=("n", "m", "top_k", "bulk", "fluctuation", "nodes", "dtype")
)
def _nearest_observables(law, key, betas, n, m, top_k, bulk, fluctuation, nodes, dtype):
    a, b = (float(x) for x in law.gap_beta_params)
    u, log_c, log_tail = nearest_sample(a, b, key, n, m, dtype)
    state = Accumulator.init(betas, top_k=top_k, dtype=dtype).update(betas, u, jnp.ones((m,), bool))
    z_top = state.z
    n_bulk = float(n) - float(m)
    zeros = jnp.zeros_like(z_top)
    if n_bulk > 0:
        d_gap = u[-1] - u[0]
        dropped_abs = jnp.exp(math.log(n_bulk) - betas * d_gap)
    else:
        dropped_abs = zeros
    if bulk and n_bulk > 0:
        xi = jax.random.normal(jax.random.fold_in(key, 1), (4,), dtype) if fluctuation else None
        sums, bulk_mean, bulk_sd, clt = bulk_sums(a, b, n_bulk, state.m, u[-1], log_c, log_tail, betas, xi, nodes)
        state = state.add_sums(*sums)
        z = state.z
        fluct = bulk_sd / z
        frac = bulk_mean / z
        err = fluct * clt if fluctuation else fluct
        bound = jnp.minimum(dropped_abs / z_top, err)
    else:
        frac = fluct = clt = zeros
        bound = dropped_abs / z_top
    trunc = Truncation(dropped=dropped_abs / z_top, bulk_fraction=frac, fluctuation=fluct, clt=clt, bound=bound)
    return state.finish(betas), trunc


def nearest_observables_with_bound(
    law: KeyLaw,
    key: PRNGKeyArray,
    n: int | float,
    betas: Float[ArrayLike, "*B"],
    *,
    m: int | float = DEFAULT_M,
    top_k: int = 5,
    bulk: bool = True,
    fluctuation: bool = True,
    nodes: int = DEFAULT_NODES,
) -> tuple[Observables, Truncation]:
    """Observables of n keys from the m nearest (exact) plus the bulk, and a truncation bound.

    The m nearest gaps are :func:`nearest_gaps` (same ``key``, so the same gaps). The n - m others
    are i.i.d. from the gap law conditioned on u > u_(m); they enter the shifted sums of
    :mod:`phasejax.observables` (u' = u - u_(1))

        Z += N E[e^{-beta u'}] (+ fluctuation),  Z1 += N E[e^{-beta u'} u'],
        Z2 += N E[e^{-beta u'} u'^2],            Q += N E[e^{-2 beta u'}],   N = n - m,

    conditional expectations given u > u_(m) by quadrature (docs/theory.md §a). With ``fluctuation`` the
    bulk sums get the CLT term sqrt(N) L xi, L L^T their conditional covariance (4 x 4, from the
    same quadrature) and xi ~ N(0, I_4) drawn from ``key`` once for every beta (common random
    numbers: each seed's curve stays smooth in beta). The fluctuation is what gives the
    subcritical regime (beta << n^{2/alpha}, where the bulk carries most of Z) its seed-to-seed
    spread, so it is on by default; it vanishes with the bulk itself near and above the critical
    window (then ``Truncation.dropped`` is tiny and nothing from the bulk matters). The Gaussian is
    accurate when many bulk keys contribute (``Truncation.clt`` small), which holds whenever the
    bulk's share of Z is not small (it then involves >~ m keys). ``bulk=False``: the m nearest
    alone, with the sure bound ``Truncation.dropped``.

    Args:
      law: a key law with a known gap CDF (UniformSphere, PowerLawCap, Subsphere).
      key: PRNG key (one context); ``jax.vmap`` over it for seeds.
      n: number of keys (static; any integer >= m, 1e15 written as a float is fine).
      betas: inverse temperatures >= 0, (B,) or scalar.
      m: keys drawn exactly (static, 1 <= m <= n). top_k: k of the top-k mass (k <= m).
      bulk, fluctuation: as above. nodes: quadrature nodes per beta (static).

    Returns:
      (:class:`~phasejax.observables.Observables`, :class:`Truncation`), fields (B,).

    >>> import jax, jax.numpy as jnp
    >>> from phasejax.laws import UniformSphere
    >>> obs, tr = nearest_observables_with_bound(UniformSphere(3), jax.random.key(0), 10**12,
    ...                                          jnp.array([1e10, 1e12]), m=64)
    >>> bool(tr.bound[1] < 1e-6)
    True
    """
    check_nearest_law(law, "nearest_observables")
    n, m = check_n_m(n, m)
    top_k = check_int("top_k", top_k, minimum=1)
    if top_k > m:
        raise InputError(f"top_k must be <= m (the top-k come from the m nearest), got top_k={top_k} > m={m}")
    nodes = check_int("nodes", nodes, minimum=16)
    check_betas(betas)
    dtype = jnp.dtype(jnp.result_type(float))
    return _nearest_observables(
        law, key, _as_betas(betas, dtype), n, m, top_k, bool(bulk), bool(fluctuation), nodes, dtype
    )


def nearest_observables(
    law: KeyLaw,
    key: PRNGKeyArray,
    n: int | float,
    betas: Float[ArrayLike, "*B"],
    *,
    m: int | float = DEFAULT_M,
    top_k: int = 5,
    bulk: bool = True,
    fluctuation: bool = True,
    nodes: int = DEFAULT_NODES,
) -> Observables:
    """Observables of n keys from ``law`` at cost O(m) independent of n (docs/theory.md §a).

    The same fields and meaning as :func:`phasejax.observables.sampled_observables`; see
    :func:`nearest_observables_with_bound` for the method and the truncation error.

    >>> import jax, jax.numpy as jnp
    >>> from phasejax.laws import UniformSphere
    >>> obs = nearest_observables(UniformSphere(3), jax.random.key(0), 10**15, jnp.array([0.0, 1e17]))
    >>> round(float(obs.max_weight[0]) * 1e15, 6)  # beta = 0: uniform weights 1/n
    1.0
    """
    return nearest_observables_with_bound(
        law, key, n, betas, m=m, top_k=top_k, bulk=bulk, fluctuation=fluctuation, nodes=nodes
    )[0]


# =========================================================================== logit transforms (docs/theory.md §j)
# Weights proportional to exp(f(beta t)), t = 1 - u, for a non-decreasing f (a soft cap). Its own accumulator,
# through the same drivers: the default path (no transform) runs the plain Accumulator's ops unchanged.


def _check_transform(transform) -> LogitTransform | None:
    if transform is not None and not isinstance(transform, LogitTransform):
        raise InputError(
            "transform must be None or a phasejax.observables.LogitTransform (e.g. SoftCap(50.0)), "
            f"got {type(transform).__name__}"
        )
    return transform


def _drops(transform, betas, m, u):
    """g = f(beta (1 - m)) - f(beta (1 - u)) >= 0 for u >= m, broadcast over (B, 1) betas and (c,) gaps."""
    return transform.drop(betas * (1.0 - m), betas * (1.0 - u), betas * (u - m))


class TransformedAccumulator(eqx.Module):
    """The streaming state of one query when the weights are exp(f(beta t)) / Z, f a :class:`LogitTransform`.

    As :class:`Accumulator`, with g_i = f(beta (1 - m)) - f(beta (1 - u_i)) >= 0 in place of beta u'_i
    (m the running minimum gap): ``z`` = sum e^{-g}, ``zg`` = sum e^{-g} g (for the entropy), ``z1``,
    ``z2`` = sum e^{-g} u', u'^2, ``q`` = sum e^{-2 g}, ``topk``, ``y``. When the minimum drops from m to
    m' every old term is rescaled by e^{-D}, D = f(beta (1 - m')) - f(beta (1 - m)) (the transform's stable
    drop), and g grows by D. Observables: max weight 1/Z, entropy log Z + zg/Z, sum w^2 = Q/Z^2, mean and
    variance of the gap under w, top-k mass, and log_partition = log sum_i exp(f(beta t_i) - f(beta))
    (log sum e^{-beta u} for f = identity), whose beta-derivative is E_w[f'(beta t) t] - f'(beta).

    >>> import jax.numpy as jnp
    >>> from phasejax.observables import SoftCap
    >>> b, f = jnp.array([1.0, 1e4]), SoftCap(50.0)
    >>> acc = TransformedAccumulator.init(b).update(f, b, jnp.array([0.5, 0.0]), jnp.array([True, True]))
    >>> [round(float(x), 3) for x in acc.finish(f, b).max_weight]  # beta = 1e4: both logits at the cap
    [0.622, 0.5]
    """

    m: Array
    z: Array
    zg: Array
    z1: Array
    z2: Array
    q: Array
    topk: Array
    y: Array | None

    @classmethod
    def init(cls, betas: Float[ArrayLike, "*B"], *, top_k: int = 1, values_dim: int | None = None,
             dtype=None) -> TransformedAccumulator:
        """The empty state (as :meth:`Accumulator.init`)."""
        dtype = dtype or betas.dtype
        zeros = jnp.zeros(betas.shape, dtype)
        return cls(
            m=jnp.asarray(jnp.inf, dtype), z=zeros, zg=zeros, z1=zeros, z2=zeros, q=zeros,
            topk=jnp.full((top_k,), jnp.inf, dtype),
            y=None if values_dim is None else jnp.zeros((*betas.shape, values_dim), dtype),
        )

    def update(self, transform, betas, u, valid, values=None) -> TransformedAccumulator:
        """Fold one chunk of gaps ``u`` (c,) (``valid`` False: padding) under ``transform``."""
        big = jnp.asarray(jnp.inf, u.dtype)
        m_new = jnp.minimum(self.m, jnp.min(jnp.where(valid, u, big)))
        had = jnp.isfinite(self.m)
        m_old = jnp.where(had, self.m, m_new)
        dm = m_old - m_new  # >= 0
        d_g = _drops(transform, betas, m_new, m_old)  # (B,) >= 0
        scale = jnp.where(had, jnp.exp(-d_g), 0.0)
        zg_old = self.zg + d_g * self.z
        z1_old = self.z1 + dm * self.z
        z2_old = self.z2 + 2 * dm * self.z1 + dm * dm * self.z
        uv = jnp.where(valid, u, m_new)
        up = uv - m_new  # (c,)
        g = _drops(transform, betas[:, None], m_new, uv[None, :])  # (B, c)
        e = jnp.where(valid[None, :], jnp.exp(-g), 0.0)
        k = self.topk.shape[0]
        cand = jnp.concatenate([self.topk, jnp.where(valid, u, big)])
        y = None if values is None else scale[:, None] * self.y + e @ values
        return TransformedAccumulator(
            m=m_new, z=scale * self.z + jnp.sum(e, axis=1), zg=scale * zg_old + jnp.sum(e * g, axis=1),
            z1=scale * z1_old + e @ up, z2=scale * z2_old + e @ (up * up),
            q=scale * scale * self.q + jnp.sum(e * e, axis=1), topk=-jax.lax.top_k(-cand, k)[0], y=y,
        )

    def finish(self, transform, betas) -> Observables:
        """The observables (``output`` = sum w v when values were streamed; ``bias`` is None: the n = inf
        limit A_d(beta) q is that of the untransformed head)."""
        z = self.z
        mean_up = self.z1 / z
        var = jnp.maximum(self.z2 / z - mean_up * mean_up, 0.0)
        entropy = jnp.log(z) + self.zg / z
        ok = jnp.isfinite(self.topk)
        g_top = _drops(transform, betas[:, None], self.m, jnp.where(ok, self.topk, self.m)[None, :])
        topk_e = jnp.where(ok[None, :], jnp.exp(-g_top), 0.0)
        log_partition = jnp.log(z) - _drops(transform, betas, jnp.zeros_like(self.m), self.m)
        return Observables(
            beta=betas, max_weight=1.0 / z, entropy=entropy, effective_keys=jnp.exp(entropy),
            sum_w2=self.q / (z * z), inv_sum_w2=(z * z) / self.q, top_k_mass=jnp.sum(topk_e, axis=1) / z,
            mean_gap=self.m + mean_up, var_gap=var, log_partition=log_partition, min_gap=self.m,
            output=None if self.y is None else self.y / z[:, None], bias=None, top_k=self.topk.shape[0],
        )
