"""The all-queries attention step on a token cloud (docs/theory.md §g).

N tokens x_1..x_N on S^{d-1}; every token is a query over all tokens (self included by default), logits
beta <x_i, x_j>, identity values: y_i = sum_j w_ij x_j, optionally renormalised to the sphere.
:func:`attention_step` is chunked over queries and keys (memory O(N x chunk), an online log-sum-exp);
:func:`attention_step_halves` computes the same step against all keys and against each half of them in one
pass (for the half-sample extrapolation of :mod:`phasejax.heat.measure`).

Shapes: tokens ``Float[Array, "N d"]``; dtype: the tokens' (float32 by default, float64 with x64).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import InputError, check_array, check_int, check_real
from .._numerics.arrays import default_float

__all__ = ["attention_step_halves", "attention_step"]


def _pad_rows(x, pad: int):
    """x with ``pad`` filler rows e_1 appended (unit vectors, so norms stay finite; padded keys get weight 0)."""
    if not pad:
        return x
    filler = jnp.zeros((1, x.shape[1]), x.dtype).at[0, 0].set(1)
    return jnp.concatenate([x, jnp.broadcast_to(filler, (pad, x.shape[1]))])


@functools.partial(jax.jit, static_argnames=("renormalize", "self_interaction", "chunk_q", "chunk_k"))
def _step(x, beta, *, renormalize, self_interaction, chunk_q, chunk_k):
    n, d = x.shape
    dt = x.dtype
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    beta = jnp.asarray(beta, dt)
    nq, nk = -(-n // chunk_q), -(-n // chunk_k)
    pad_q, pad_k = nq * chunk_q - n, nk * chunk_k - n
    xq, xk = _pad_rows(x, pad_q), _pad_rows(x, pad_k)
    keys = xk.reshape(nk, chunk_k, d)
    kidx = jnp.arange(nk * chunk_k).reshape(nk, chunk_k)
    # padded keys get log-weight -inf (only when padding exists: no cost otherwise)
    kbias = jnp.where(kidx < n, 0.0, -jnp.inf).astype(dt)

    def one_query_chunk(args):
        qi, q = args
        qidx = qi * chunk_q + jnp.arange(chunk_q)
        if self_interaction:
            # Unit tokens: beta <x_i, x_j> <= beta, attained by the self term, so the shift beta is an
            # exact running max (every exponent <= 0, every row sum >= 1): no online max needed.
            def body(carry, blk):
                s_sum, acc = carry
                k, kb, ki = blk
                s = beta * (q @ k.T) - beta
                if pad_k:
                    s = s + kb[None, :]
                p = jnp.exp(s)
                return (s_sum + p.sum(axis=1), acc + p @ k), None

            init = (jnp.zeros((chunk_q,), dt), jnp.zeros((chunk_q, d), dt))
            (s_sum, acc), _ = jax.lax.scan(body, init, (keys, kbias, kidx))
            return acc / s_sum[:, None]

        # Self term excluded: online (running-max) log-sum-exp, the nearest other token may be far.
        def body(carry, blk):
            m, s_sum, acc = carry
            k, kb, ki = blk
            s = beta * (q @ k.T) + kb[None, :]
            s = jnp.where(qidx[:, None] == ki[None, :], -jnp.inf, s)
            m_new = jnp.maximum(m, s.max(axis=1))
            m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
            scale = jnp.exp(m - m_safe)
            p = jnp.exp(s - m_safe[:, None])
            return (m_new, s_sum * scale + p.sum(axis=1), acc * scale[:, None] + p @ k), None

        init = (jnp.full((chunk_q,), -jnp.inf, dt), jnp.zeros((chunk_q,), dt), jnp.zeros((chunk_q, d), dt))
        (_, s_sum, acc), _ = jax.lax.scan(body, init, (keys, kbias, kidx))
        return acc / s_sum[:, None]

    y = jax.lax.map(one_query_chunk, (jnp.arange(nq), xq.reshape(nq, chunk_q, d)))
    y = y.reshape(nq * chunk_q, d)[:n]
    if renormalize:
        y = y / jnp.linalg.norm(y, axis=1, keepdims=True)
    return y


def _check_step_args(x, beta, chunk_q, chunk_k, self_interaction, *, min_without_self: int, what: str):
    """Validation shared by the two step entry points; returns (x as a float array, chunk_q, chunk_k)."""
    check_array("x", x, ndim=2)
    n, d = np.shape(x)
    if d < 2:
        raise InputError(f"x must have at least 2 columns (tokens on S^(d-1), d >= 2), got shape {np.shape(x)}")
    if not isinstance(x, jax.core.Tracer) and np.any(np.linalg.norm(np.asarray(x), axis=1) == 0):
        raise InputError("x has a zero row: tokens must be nonzero vectors (they are projected onto the sphere)")
    check_real("beta", beta, nonnegative=True)
    chunk_q = check_int("chunk_q", chunk_q, minimum=1)
    chunk_k = check_int("chunk_k", chunk_k, minimum=1)
    if not self_interaction and n < min_without_self:
        raise InputError(f"{what} needs at least {min_without_self} tokens, got N = {n}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(default_float())
    return x, chunk_q, chunk_k


def _balanced(n: int | float, chunk: int) -> int:
    """The chunk size closest to ``chunk`` (not above) that splits n into equal chunks up to < #chunks padding."""
    return -(-n // -(-n // min(chunk, n)))


def _halves_layout(n: int | float, chunk_k: int) -> tuple[int, int, int, int]:
    """Key chunking for :func:`_step_halves`: an even number ``nk`` of chunks of ``ck`` keys; half A is the
    even-numbered chunks, half B the odd ones (padding, < nk keys, sits at the end of the last, odd, chunk)."""
    nk = 2 * max(1, -(-n // (2 * chunk_k)))
    ck = -(-n // nk)
    idx = np.arange(nk * ck)
    valid = idx < n
    n_a = int(np.sum(valid & ((idx // ck) % 2 == 0)))
    return nk, ck, n_a, n - n_a


@functools.partial(jax.jit, static_argnames=("renormalize", "self_interaction", "chunk_q", "chunk_k"))
def _step_halves(x, beta, *, renormalize, self_interaction, chunk_q, chunk_k):
    """The all-queries step against all keys and against each half of the keys, in one pass.

    Kept beside :func:`_step` rather than replacing it: with the self term the plain step uses the exact
    fixed shift beta (no running max), its fastest path, which a per-half softmax cannot use.

    Every query attends to half A (even key chunks), to half B (odd key chunks) and to all keys; each
    half keeps its own running-max log-sum-exp (so a half never underflows when the other holds the
    nearest key) and the full softmax is their exact log-sum-exp merge. Returns (3, N, d): full, A, B.
    Same cost as :func:`_step` up to a select per block: the exponentials are computed once.
    """
    n, d = x.shape
    dt = x.dtype
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    beta = jnp.asarray(beta, dt)
    nk, ck, _, _ = _halves_layout(n, chunk_k)
    nq = -(-n // chunk_q)
    pad_q, pad_k = nq * chunk_q - n, nk * ck - n
    xq, xk = _pad_rows(x, pad_q), _pad_rows(x, pad_k)
    keys = xk.reshape(nk, ck, d)
    kidx = jnp.arange(nk * ck).reshape(nk, ck)
    kbias = jnp.where(kidx < n, 0.0, -jnp.inf).astype(dt)
    half = jnp.arange(nk) % 2

    def one_query_chunk(args):
        qi, q = args
        qidx = qi * chunk_q + jnp.arange(chunk_q)

        def body(carry, blk):
            m, s_sum, acc = carry  # (2, cq), (2, cq), (2, cq, d): one online log-sum-exp per half
            k, kb, ki, h = blk
            s = beta * (q @ k.T) + kb[None, :]
            if not self_interaction:
                s = jnp.where(qidx[:, None] == ki[None, :], -jnp.inf, s)
            m_h = m[h]
            m_new = jnp.maximum(m_h, s.max(axis=1))
            m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)
            scale = jnp.exp(m_h - m_safe)
            p = jnp.exp(s - m_safe[:, None])
            s_new = s_sum[h] * scale + p.sum(axis=1)
            a_new = acc[h] * scale[:, None] + p @ k
            return (m.at[h].set(m_new), s_sum.at[h].set(s_new), acc.at[h].set(a_new)), None

        init = (jnp.full((2, chunk_q), -jnp.inf, dt), jnp.zeros((2, chunk_q), dt), jnp.zeros((2, chunk_q, d), dt))
        (m, s_sum, acc), _ = jax.lax.scan(body, init, (keys, kbias, kidx, half))
        top = jnp.max(m, axis=0)
        top = jnp.where(jnp.isfinite(top), top, 0.0)
        wgt = jnp.where(jnp.isfinite(m), jnp.exp(m - top[None]), 0.0)  # merge the halves exactly
        full = (wgt[..., None] * acc).sum(0) / (wgt * s_sum).sum(0)[:, None]
        if self_interaction:
            # The self term belongs to the step, not to the key sample: each half gets it too (the half
            # without the query's own chunk adds exp(beta <x_i,x_i>) x_i = e^beta x_i, merged in log space),
            # so that the self weight, like the ratio bias, doubles in a half (Richardson needs that).
            own = (qidx // ck) % 2  # the half holding query i's own key
            other = (jnp.arange(2)[:, None] != own[None, :])  # (2, cq)
            m2 = jnp.maximum(m, beta)
            e_old = jnp.where(jnp.isfinite(m), jnp.exp(m - m2), 0.0)
            e_self = jnp.exp(beta - m2)
            s_sum = jnp.where(other, s_sum * e_old + e_self, s_sum)
            acc = jnp.where(other[..., None], acc * e_old[..., None] + e_self[..., None] * q[None], acc)
        return jnp.stack([full, acc[0] / s_sum[0][:, None], acc[1] / s_sum[1][:, None]])

    y = jax.lax.map(one_query_chunk, (jnp.arange(nq), xq.reshape(nq, chunk_q, d)))  # (nq, 3, cq, d)
    y = jnp.moveaxis(y, 1, 0).reshape(3, nq * chunk_q, d)[:, :n]
    if renormalize:
        y = y / jnp.linalg.norm(y, axis=2, keepdims=True)
    return y


def attention_step_halves(
    x: Float[ArrayLike, "N d"],
    beta,
    *,
    renormalize: bool = True,
    self_interaction: bool = True,
    chunk_q: int = 512,
    chunk_k: int = 2048,
) -> tuple[Float[Array, "N d"], Float[Array, "N d"], Float[Array, "N d"], tuple[int, int]]:
    """The all-queries step with all keys, and with each of two disjoint halves of the keys.

    Returns ``(y, y_a, y_b, (n_a, n_b))``: ``y`` is :func:`attention_step` (all N tokens are keys);
    ``y_a`` (``y_b``) is the same step where every query attends only to the ``n_a`` (``n_b``) tokens of
    half A (B), plus itself when ``self_interaction`` (the self term is part of the step, not of the key
    sample, so each half keeps it). The halves are alternate key chunks, so they are disjoint, together
    all tokens, and of sizes differing by less than the number of chunks; as the tokens are i.i.d. each
    half is an i.i.d. sample of about N/2 keys. This is what a finite-N (Richardson) extrapolation needs: the finite-N
    bias of a softmax average is O(1/N) in the number of keys (:func:`measure_gain`). One pass, the
    cost of :func:`attention_step` plus a select per block. Needs N >= 2.

    >>> import jax
    >>> x = jax.random.normal(jax.random.key(0), (1000, 3))
    >>> y, ya, yb, (na, nb) = attention_step_halves(x, 20.0)
    >>> ya.shape, na + nb
    ((1000, 3), 1000)
    """
    if np.ndim(x) == 2 and np.shape(x)[0] < 2:
        raise InputError(f"x must have at least 2 tokens to split the keys into halves, got N = {np.shape(x)[0]}")
    x, chunk_q, chunk_k = _check_step_args(x, beta, chunk_q, chunk_k, self_interaction,
                                           min_without_self=4, what="self_interaction=False with halves")
    n = x.shape[0]
    _, _, n_a, n_b = _halves_layout(n, chunk_k)
    y = _step_halves(x, beta, renormalize=bool(renormalize), self_interaction=bool(self_interaction),
                     chunk_q=_balanced(n, chunk_q), chunk_k=chunk_k)
    return y[0], y[1], y[2], (n_a, n_b)


def attention_step(
    x: Float[ArrayLike, "N d"],
    beta,
    *,
    renormalize: bool = True,
    self_interaction: bool = True,
    chunk_q: int = 512,
    chunk_k: int = 4096,
) -> Float[Array, "N d"]:
    """One all-queries attention step with identity values (docs/theory.md §g).

    y_i = sum_j softmax_j(beta <x_i, x_j>) x_j, then y_i / |y_i| if ``renormalize``. Tokens are
    projected onto the sphere first. Every token queries every token, **itself included** by
    default (``self_interaction=False`` drops the j = i term, at the cost of an online running max).

    Exact streaming softmax: blocks of ``chunk_q`` queries by ``chunk_k`` keys, one matmul
    (chunk_q x d)(d x chunk_k) per block, then exp; memory O(N (chunk_q + chunk_k)), time O(N^2 d).
    With the self term the exponents are beta(<x_i,x_j> - 1) <= 0 (a fixed, exact log-space shift);
    without it a running-max log-sum-exp. N = 2e5 on S^2 takes about 35 s on 2 CPU cores (float32).

    >>> import jax
    >>> x = jax.random.normal(jax.random.key(0), (1000, 3))
    >>> attention_step(x, 20.0).shape
    (1000, 3)
    """
    x, chunk_q, chunk_k = _check_step_args(x, beta, chunk_q, chunk_k, self_interaction,
                                           min_without_self=2, what="self_interaction=False")
    n = x.shape[0]
    return _step(
        x,
        beta,
        renormalize=bool(renormalize),
        self_interaction=bool(self_interaction),
        chunk_q=_balanced(n, chunk_q),
        chunk_k=_balanced(n, chunk_k),
    )
