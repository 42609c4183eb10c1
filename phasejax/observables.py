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
  y - A_d(beta) q relative to the n -> infinity limit (THEORY b).

Everything is differentiable in beta (``jax.jvp`` gives susceptibilities; THEORY e).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import InputError, check_array, check_betas, check_int, check_unit_vectors
from .geometry import KeyLaw, gaps_from_keys

__all__ = [
    "Observables",
    "OBSERVABLE_NAMES",
    "gap_observables",
    "key_observables",
    "sampled_observables",
    "weights",
    "log_weights",
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


# --------------------------------------------------------------------------- dense helpers


def log_weights(gaps: Float[Array, " n"], beta) -> Float[Array, " n"]:
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


def weights(gaps: Float[Array, " n"], beta) -> Float[Array, " n"]:
    """w_i = softmax(-beta u)_i = softmax(beta <q,k>)_i."""
    return jnp.exp(log_weights(gaps, beta))


# --------------------------------------------------------------------------- streaming core


class _State(eqx.Module):
    m: Array  # running minimum gap ()
    z: Array  # (B,)
    z1: Array
    z2: Array
    q: Array
    topk: Array  # (k,) smallest gaps seen, ascending
    y: Array | None  # (B, d) sum e^{-beta u'} v


def _init_state(betas, top_k, d, dtype):
    zeros = jnp.zeros(betas.shape, dtype)
    return _State(
        m=jnp.asarray(jnp.inf, dtype),
        z=zeros,
        z1=zeros,
        z2=zeros,
        q=zeros,
        topk=jnp.full((top_k,), jnp.inf, dtype),
        y=None if d is None else jnp.zeros((*betas.shape, d), dtype),
    )


def _update(state: _State, betas, u, valid, values=None) -> _State:
    """Fold one chunk of gaps ``u`` (c,) (entries with ``valid`` False are padding) into the state."""
    big = jnp.asarray(jnp.inf, u.dtype)
    cmin = jnp.min(jnp.where(valid, u, big))
    m_new = jnp.minimum(state.m, cmin)
    had = jnp.isfinite(state.m)
    delta = jnp.where(had, state.m - m_new, 0.0)  # >= 0
    scale = jnp.where(had, jnp.exp(-betas * delta), 0.0)  # (B,)
    z1_old = state.z1 + delta * state.z
    z2_old = state.z2 + 2 * delta * state.z1 + delta * delta * state.z
    up = jnp.where(valid, u - m_new, 0.0)  # (c,)
    e = jnp.where(valid[None, :], jnp.exp(-betas[:, None] * up[None, :]), 0.0)  # (B, c)
    z = scale * state.z + jnp.sum(e, axis=1)
    z1 = scale * z1_old + e @ up
    z2 = scale * z2_old + e @ (up * up)
    q = scale * scale * state.q + jnp.sum(e * e, axis=1)
    k = state.topk.shape[0]
    cand = jnp.concatenate([state.topk, jnp.where(valid, u, big)])
    topk = -jax.lax.top_k(-cand, k)[0]
    y = None
    if values is not None:
        y = scale[:, None] * state.y + e @ values
    return _State(m=m_new, z=z, z1=z1, z2=z2, q=q, topk=topk, y=y)


def _finish(state: _State, betas, top_k, query=None, d=None) -> Observables:
    z = state.z
    mean_up = state.z1 / z
    var = jnp.maximum(state.z2 / z - mean_up * mean_up, 0.0)
    entropy = jnp.log(z) + betas * mean_up
    topk_e = jnp.exp(-betas[:, None] * (state.topk[None, :] - state.m))
    topk_e = jnp.where(jnp.isfinite(state.topk)[None, :], topk_e, 0.0)
    output = bias = None
    if state.y is not None:
        from .theory import mean_resultant

        output = state.y / z[:, None]
        if query is not None:
            bias = output - mean_resultant(betas, d)[:, None] * query[None, :]
    return Observables(
        beta=betas,
        max_weight=1.0 / z,
        entropy=entropy,
        effective_keys=jnp.exp(entropy),
        sum_w2=state.q / (z * z),
        inv_sum_w2=(z * z) / state.q,
        top_k_mass=jnp.sum(topk_e, axis=1) / z,
        mean_gap=state.m + mean_up,
        var_gap=var,
        log_partition=-betas * state.m + jnp.log(z),
        min_gap=state.m,
        output=output,
        bias=bias,
        top_k=top_k,
    )


def _as_betas(betas, dtype):
    betas = jnp.asarray(betas, dtype)
    return betas.reshape(-1) if betas.ndim == 0 else betas


def _chunking(n, chunk):
    chunk = int(min(chunk, n))
    n_chunks = -(-n // chunk)
    return chunk, n_chunks


@functools.partial(jax.jit, static_argnames=("top_k", "chunk"))
def _gap_observables(gaps, betas, top_k, chunk):
    n = gaps.shape[0]
    chunk, n_chunks = _chunking(n, chunk)
    pad = n_chunks * chunk - n
    u = jnp.pad(gaps, (0, pad)).reshape(n_chunks, chunk)
    valid = (jnp.arange(n_chunks * chunk) < n).reshape(n_chunks, chunk)
    state = _init_state(betas, top_k, None, gaps.dtype)

    def body(s, xs):
        return _update(s, betas, *xs), None

    state, _ = jax.lax.scan(body, state, (u, valid))
    return _finish(state, betas, top_k)


def gap_observables(
    gaps: Float[Array, " n"],
    betas: Float[Array, " B"],
    *,
    top_k: int = 5,
    chunk: int = DEFAULT_CHUNK,
) -> Observables:
    """All observables of one query from its n gaps, for every beta, in one streaming pass.

    Args:
      gaps: u_i = 1 - <q,k_i> >= 0, shape (n,) (see :func:`phasejax.gaps_from_keys`).
      betas: inverse temperatures >= 0, shape (B,) or scalar.
      top_k: k of the top-k mass (static).
      chunk: keys per streaming chunk (static); memory is O(B * chunk).

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
    return _gap_observables(gaps, _as_betas(betas, gaps.dtype), top_k, chunk)


@functools.partial(jax.jit, static_argnames=("top_k", "chunk"))
def _key_observables(query, keys, values, betas, top_k, chunk):
    n, d = keys.shape
    chunk, n_chunks = _chunking(n, chunk)
    pad = n_chunks * chunk - n
    kc = jnp.pad(keys, ((0, pad), (0, 0))).reshape(n_chunks, chunk, d)
    vc = jnp.pad(values, ((0, pad), (0, 0))).reshape(n_chunks, chunk, values.shape[1])
    valid = (jnp.arange(n_chunks * chunk) < n).reshape(n_chunks, chunk)
    state = _init_state(betas, top_k, values.shape[1], keys.dtype)

    def body(s, xs):
        k, v, ok = xs
        return _update(s, betas, gaps_from_keys(query, k), ok, v), None

    state, _ = jax.lax.scan(body, state, (kc, vc, valid))
    return _finish(state, betas, top_k, query if values.shape[1] == d else None, d)


def key_observables(
    query: Float[Array, " d"],
    keys: Float[Array, "n d"],
    betas: Float[Array, " B"],
    *,
    values: Float[Array, "n dv"] | None = None,
    top_k: int = 5,
    chunk: int = DEFAULT_CHUNK,
) -> Observables:
    """Observables of a unit query against unit keys, plus the output y = sum w_i v_i.

    Gaps are computed as |q-k|^2/2 (full relative precision). ``values`` default to the keys
    (identity values); then ``bias`` = y - A_d(beta) q, the deviation from the n -> infinity
    output (THEORY b), with A_d from :func:`phasejax.theory.mean_resultant`.
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
    return _key_observables(query, keys, values, _as_betas(betas, dtype), top_k, chunk)


@functools.partial(jax.jit, static_argnames=("n", "top_k", "chunk", "dtype"))
def _sampled_observables(law, key, betas, n, top_k, chunk, dtype):
    chunk, n_chunks = _chunking(n, chunk)
    state = _init_state(betas, top_k, None, dtype)
    idx = jnp.arange(chunk)

    def body(s, c):
        u = law.sample_gaps(jax.random.fold_in(key, c), chunk, dtype=dtype)
        return _update(s, betas, u, c * chunk + idx < n), None

    state, _ = jax.lax.scan(body, state, jnp.arange(n_chunks))
    return _finish(state, betas, top_k)


def sampled_observables(
    law: KeyLaw,
    key: PRNGKeyArray,
    n: int,
    betas: Float[Array, " B"],
    *,
    top_k: int = 5,
    chunk: int = DEFAULT_CHUNK,
) -> Observables:
    """Observables of n keys drawn from ``law``, generated chunk by chunk inside the scan.

    Nothing of size n is ever stored: memory is O(B * chunk), so n = 1e8 or more runs on a
    laptop. The gaps of chunk c are ``law.sample_gaps(fold_in(key, c), chunk)``, so the
    same ``key`` gives the same keys for every beta (common random numbers). ``vmap`` over
    ``key`` for a seed ensemble.
    """
    if not law.has_gap_law:
        raise InputError(f"sampled_observables needs a law with an exact gap sampler, got {type(law).__name__}")
    n = check_int("n", n, minimum=1)
    check_betas(betas)
    top_k = check_int("top_k", top_k, minimum=1)
    chunk = check_int("chunk", chunk, minimum=1)
    dtype = jnp.result_type(float)
    return _sampled_observables(law, key, _as_betas(betas, dtype), n, top_k, chunk, dtype)


def _check_gaps(gaps):
    if isinstance(gaps, jax.core.Tracer):
        return
    check_array("gaps", gaps, ndim=1)
    if np.any(np.asarray(gaps) < 0):
        raise InputError(f"gaps must be >= 0 (u = 1 - <q,k>), got min {np.min(gaps)!r}")
