"""One attention step on a token cloud is a backward heat step (THEORY.md g).

N tokens x_1..x_N on the sphere S^{d-1}; every token is a query over all tokens (self
included by default), logits beta <x_i, x_j>, identity values:

    y_i = sum_j w_ij x_j,   w_ij = exp(beta <x_i,x_j>) / sum_k exp(beta <x_i,x_k>),

optionally renormalised, y_i / |y_i|. As N -> infinity with tokens i.i.d. with density rho,
y_i -> T(x_i) with T(x) = x + (1/beta) grad_S log rho - ((d-1)/(2 beta)) x + O(beta^-2), and the
pushed-forward density is rho - (1/beta) Laplacian_S rho: the zonal mode of degree l grows by
G_l = 1 + l(l+d-2)/beta per step. This module has

* :func:`attention_step`   the all-queries step, chunked over queries and keys (memory O(N x chunk));
  :func:`attention_step_halves` the same step against all keys and against each half of them (one pass);
* :func:`gegenbauer`, :func:`harmonic_dimension`, :func:`sample_zonal`, :func:`mode_amplitude`
  zonal modes rho = 1 + eps P_l(<x,e>) (P_l the Gegenbauer polynomial normalised to P_l(1) = 1),
  sampled exactly, and the projection estimator of their amplitude;
* :func:`bessel_ratio`, :func:`funk_hecke_multiplier`, :func:`exact_map`, :func:`exact_gain`,
  :func:`first_order_gain`, :func:`heat_displacement`  the n = infinity theory;
* :func:`measure_gain`, :func:`gain_one_cloud`, :func:`compare_displacement`  Monte Carlo measurements
  against it, with a half-sample (Richardson) extrapolation N -> infinity of the measured gain.

Shapes: tokens ``Float[Array, "N d"]``; the axis ``e`` ``Float[Array, " d"]`` (default e_1); scores
``t = <x, e>`` are ``Float[Array, " N"]``. dtype: float32 by default, float64 when ``jax_enable_x64``
is on. ``key`` is a JAX PRNG key.

Definition of the exact gain. For rho = 1 + eps P_l(<x,e>) the n = infinity map T is explicit
(THEORY g; see :func:`exact_map`). ``exact_gain`` pushes rho forward through x -> T(x)/|T(x)| at
*finite* eps and measures the degree-l amplitude of the pushed-forward density with the same
projection as the Monte Carlo estimator: G = E_rho[P_l(t')] / E_rho[P_l(t)], t' = <T(x)/|T(x)|, e>,
a 1-D Gauss-Jacobi quadrature in t. This is the N -> infinity limit of :func:`measure_gain` and
reproduces the public anchor (d=3, l=1, eps=0.5, beta=1000: 1.0019999436428204). Its eps -> 0
limit (``linear=True``) is G = 1 + l(l+d-2) a_l(beta) / (beta A_d(beta)), a_l = I_{l+nu}/I_nu,
A_d = a_1, nu = d/2 - 1.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import InputError, check_array, check_int, check_real

__all__ = [
    "attention_step",
    "attention_step_halves",
    "gegenbauer",
    "harmonic_dimension",
    "zonal_density_bound",
    "sample_zonal",
    "mode_amplitude",
    "mode_gain",
    "zonal_spectrum",
    "bessel_ratio",
    "funk_hecke_multiplier",
    "exact_map",
    "exact_gain",
    "first_order_gain",
    "linear_gain_spectrum",
    "heat_displacement",
    "zonal_map",
    "measure_gain",
    "gain_one_cloud",
    "richardson_weights",
    "GainMeasurement",
    "compare_displacement",
]


def _float():
    return jnp.result_type(float)


def _check_d(d) -> int:
    return check_int("d", d, minimum=2)


def _check_l(l) -> int:
    return check_int("l", l, minimum=0)


def _axis(e, d: int, dtype):
    """The unit axis e (default e_1), validated."""
    if e is None:
        return jnp.zeros((d,), dtype).at[0].set(1)
    check_array("e", e, ndim=1, last_dim=d)
    if not isinstance(e, jax.core.Tracer):
        nrm = float(np.linalg.norm(np.asarray(e, dtype=np.float64)))
        if nrm == 0:
            raise InputError("e must be a nonzero vector (the axis of the zonal mode), got the zero vector")
    e = jnp.asarray(e, dtype)
    return e / jnp.linalg.norm(e)


# --------------------------------------------------------------------------- the attention step


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
        x = x.astype(_float())
    return x, chunk_q, chunk_k


def _balanced(n: int, chunk: int) -> int:
    """The chunk size closest to ``chunk`` (not above) that splits n into equal chunks up to < #chunks padding."""
    return -(-n // -(-n // min(chunk, n)))


def _halves_layout(n: int, chunk_k: int) -> tuple[int, int, int, int]:
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
    x: Float[Array, "N d"],
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
    x: Float[Array, "N d"],
    beta,
    *,
    renormalize: bool = True,
    self_interaction: bool = True,
    chunk_q: int = 512,
    chunk_k: int = 4096,
) -> Float[Array, "N d"]:
    """One all-queries attention step with identity values (THEORY.md g).

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


# --------------------------------------------------------------------------- zonal harmonics


def harmonic_dimension(d: int, l: int) -> int:
    """dim of degree-l spherical harmonics on S^{d-1}: N(d,l) = (2l+d-2)/(l+d-2) binom(l+d-2, l).

    Also 1 / E_unif[P_l(t)^2] for the normalised Gegenbauer P_l (Funk-Hecke / addition theorem).

    >>> harmonic_dimension(3, 2)
    5
    """
    d, l = _check_d(d), _check_l(l)
    if l == 0:
        return 1
    return (2 * l + d - 2) * math.comb(l + d - 3, l - 1) // l if d > 2 else 2


def gegenbauer(t, d: int, l: int, *, derivative: bool = False):
    """Normalised Gegenbauer polynomial P_l(t) = C_l^{(d-2)/2}(t) / C_l^{(d-2)/2}(1), P_l(1) = 1.

    d = 3: Legendre; d = 2: Chebyshev T_l; d = 4: U_l/(l+1). Three-term recurrence
    (l+d-3) P_l = (2l+d-4) t P_{l-1} - (l-1) P_{l-2}, P_0 = 1, P_1 = t (THEORY.md g). With
    ``derivative=True`` returns (P_l(t), P_l'(t)) from the differentiated recurrence.

    >>> float(gegenbauer(0.5, 3, 2))  # (3 t^2 - 1)/2
    -0.125
    """
    d, l = _check_d(d), _check_l(l)
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(_float())
    p0, p1 = jnp.ones_like(t), t
    dp0, dp1 = jnp.zeros_like(t), jnp.ones_like(t)
    if l == 0:
        return (p0, dp0) if derivative else p0
    for k in range(2, l + 1):
        a, b, c = 2 * k + d - 4, k - 1, k + d - 3
        p0, p1, dp0, dp1 = p1, (a * t * p1 - b * p0) / c, dp1, (a * (p1 + t * dp1) - b * dp0) / c
    return (p1, dp1) if derivative else p1


def zonal_density_bound(d: int, l: int) -> tuple[float, float]:
    """The eps for which rho = 1 + eps P_l(t) >= 0 on [-1, 1]: eps in [-1/max P_l, -1/min P_l].

    max P_l = 1 (at t=1); min P_l is -1 for odd l and found on a fine grid (refined) for even l.

    >>> zonal_density_bound(3, 2)  # P_2 in [-1/2, 1]
    (-1.0, 2.0)
    """
    d, l = _check_d(d), _check_l(l)
    if l == 0:
        return (-1.0, math.inf)
    with jax.default_device(jax.devices("cpu")[0]):
        t = np.linspace(-1.0, 1.0, 20001)
        p = np.asarray(gegenbauer(jnp.asarray(t, jnp.float32), d, l))
    pmin = float(p.min())
    if l % 2 == 1:
        pmin = -1.0
    else:  # refine the minimum in float64 with numpy
        i = int(np.argmin(p))
        tt = np.linspace(t[max(i - 2, 0)], t[min(i + 2, t.size - 1)], 4001)
        pmin = float(min(pmin, _gegenbauer_np(tt, d, l).min()))
    return (-1.0, -1.0 / pmin)


def _gegenbauer_np(t, d, l):
    p0, p1 = np.ones_like(t), t
    if l == 0:
        return p0
    for k in range(2, l + 1):
        p0, p1 = p1, ((2 * k + d - 4) * t * p1 - (k - 1) * p0) / (k + d - 3)
    return p1


def _check_eps(eps, d, l) -> float:
    eps = check_real("eps", eps)
    if l == 0:
        raise InputError("l must be >= 1 for a zonal mode (l = 0 is the uniform density), got 0")
    lo, hi = zonal_density_bound(d, l)
    if not (lo <= eps <= hi):
        raise InputError(
            f"eps = {eps!r} makes rho = 1 + eps P_{l}(t) negative on S^{d - 1}; "
            f"accepted for d={d}, l={l}: {lo:.6g} <= eps <= {hi:.6g}"
        )
    return eps


@functools.partial(jax.jit, static_argnames=("m", "d", "l"))
def _zonal_candidates(key, e, eps, *, m, d, l):
    g = jax.random.normal(key, (m + 1, d), e.dtype)
    x = g[:m] / jnp.linalg.norm(g[:m], axis=1, keepdims=True)
    t = jnp.clip(x @ e, -1, 1)
    u = jax.random.uniform(jax.random.fold_in(key, 1), (m,), e.dtype)
    accept = u * (1 + jnp.abs(eps)) < 1 + eps * gegenbauer(t, d, l)
    return x, accept


def sample_zonal(
    key: PRNGKeyArray, n: int, d: int, l: int, eps, *, e: Float[Array, " d"] | None = None, dtype=None
) -> Float[Array, "n d"]:
    """n i.i.d. tokens with density rho(x) = 1 + eps P_l(<x,e>) (w.r.t. the uniform law on S^{d-1}).

    Exact rejection sampling: x uniform (normalised Gaussian), accepted with probability
    (1 + eps P_l(t)) / (1 + |eps|), t = <x,e> (|P_l| <= 1). The acceptance rate is 1/(1+|eps|); the
    first n accepted of an i.i.d. stream are i.i.d. from rho. Equivalently t has the 1-D density
    c_d (1-t^2)^{(d-3)/2} (1 + eps P_l(t)) and the part of x orthogonal to e is uniform (THEORY a, g).
    eps must keep rho >= 0 (:func:`zonal_density_bound`).

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 1000, 3, 2, 0.5)
    >>> x.shape
    (1000, 3)
    """
    n = check_int("n", n, minimum=1)
    d, l = _check_d(d), _check_l(l)
    eps = _check_eps(eps, d, l)
    dtype = dtype or _float()
    e = _axis(e, d, dtype)
    rate = 1.0 / (1.0 + abs(eps))
    m = int(n / rate + 6 * math.sqrt(n / rate) + 64)
    out, have, i = [], 0, 0
    while have < n:
        x, acc = _zonal_candidates(jax.random.fold_in(key, i), e, eps, m=m, d=d, l=l)
        idx = np.flatnonzero(np.asarray(acc))[: n - have]
        out.append(x[jnp.asarray(idx)])
        have += idx.size
        i += 1
    return out[0] if len(out) == 1 else jnp.concatenate(out)


def mode_amplitude(x: Float[Array, "N d"], l: int, *, e: Float[Array, " d"] | None = None):
    """Projection estimator of the degree-l zonal amplitude: hat_eps = N(d,l) mean_i P_l(<x_i,e>/|x_i|).

    Unbiased for rho = 1 + sum_k eps_k P_k: E_rho[P_l(t)] = eps_l E_unif[P_l^2] = eps_l / N(d,l)
    (orthogonality; THEORY.md g).

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 100000, 3, 2, 0.5)
    >>> abs(float(mode_amplitude(x, 2)) - 0.5) < 0.05
    True
    """
    check_array("x", x, ndim=2)
    d = np.shape(x)[1]
    l = _check_l(l)
    x = jnp.asarray(x)
    e = _axis(e, d, x.dtype)
    t = jnp.clip((x @ e) / jnp.linalg.norm(x, axis=1), -1, 1)
    return harmonic_dimension(d, l) * jnp.mean(gegenbauer(t, d, l))


@functools.partial(jax.jit, static_argnames=("m_max",))
def _spectrum(x, e, m_max):
    d = x.shape[1]
    t = jnp.clip((x @ e) / jnp.linalg.norm(x, axis=1), -1, 1)
    p0, p1 = jnp.ones_like(t), t
    out = [jnp.mean(p1)]
    for k in range(2, m_max + 1):
        p0, p1 = p1, ((2 * k + d - 4) * t * p1 - (k - 1) * p0) / (k + d - 3)
        out.append(jnp.mean(p1))
    return jnp.stack(out)


def zonal_spectrum(x: Float[Array, "N d"], m_max: int, *, e: Float[Array, " d"] | None = None):
    """All zonal amplitudes hat_eps_m = N(d,m) mean_i P_m(<x_i,e>/|x_i|), m = 1..m_max, in one pass.

    Same estimator as :func:`mode_amplitude` (THEORY.md g); for a uniform cloud each has sd sqrt(N(d,m)/N).

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 50000, 3, 2, 0.5)
    >>> s = zonal_spectrum(x, 4)
    >>> abs(float(s[1]) - 0.5) < 0.05 and abs(float(s[3])) < 0.1
    True
    """
    check_array("x", x, ndim=2)
    m_max = check_int("m_max", m_max, minimum=1)
    x = jnp.asarray(x)
    d = x.shape[1]
    dims = jnp.asarray([harmonic_dimension(d, m) for m in range(1, m_max + 1)], x.dtype)
    return dims * _spectrum(x, _axis(e, d, x.dtype), m_max)


def mode_gain(x: Float[Array, "N d"], y: Float[Array, "N d"], l: int, *, e=None):
    """Amplification of mode l from tokens x to tokens y: G = hat_eps(y) / hat_eps(x) (ratio estimator).

    Using the same tokens before and after cancels most of the sampling noise of hat_eps(x).

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 2000, 3, 2, 0.5)
    >>> float(mode_gain(x, x, 2))
    1.0
    """
    return mode_amplitude(y, l, e=e) / mode_amplitude(x, l, e=e)


# --------------------------------------------------------------------------- Bessel ratios


def _recurrence_terms(x_max: float) -> int:
    # backward recurrence damps the start error by ~exp(-K^2/x) after K steps (K << x)
    return int(24 + math.ceil(math.sqrt(48.0 * max(x_max, 1.0))))


@functools.partial(jax.jit, static_argnames=("kmax",))
def _bessel_ratios(nu, x, *, kmax, terms):
    """r_k = I_{nu+k+1}(x)/I_{nu+k}(x) for k = 0..kmax-1, shape x.shape + (kmax,)."""
    x = jnp.maximum(x, jnp.finfo(x.dtype).tiny ** 0.5)
    mu_top = nu + kmax + terms
    # Amos (1974) bracket: x/(mu+1/2+sqrt((mu+3/2)^2+x^2)) <= r(mu) <= x/(mu+1/2+sqrt((mu+1/2)^2+x^2))
    r = x / (mu_top + 0.5 + jnp.sqrt((mu_top + 1.0) ** 2 + x**2))

    def down(i, r):  # r(mu-1) = 1 / (2 mu / x + r(mu))
        mu = mu_top - i.astype(x.dtype)
        return 1.0 / (2.0 * mu / x + r)

    r = jax.lax.fori_loop(0, jnp.asarray(terms, jnp.int32), down, r)  # now r = r(nu + kmax); no recompiles
    out = []
    for k in range(kmax, 0, -1):
        r = 1.0 / (2.0 * (nu + k) / x + r)  # r(nu + k - 1)
        out.append(r)
    return jnp.stack(out[::-1], axis=-1)


def bessel_ratio(nu, x, *, k: int = 1, terms: int | None = None):
    """I_{nu+k}(x) / I_nu(x) for x > 0, computed without overflow for any x (float32 and float64).

    Backward recurrence of r(mu) = I_{mu+1}/I_mu = 1/(2(mu+1)/x + r(mu+1)) (Gauss's continued
    fraction, evaluated bottom-up) from an Amos-bracket start ``terms`` orders above; the ratio
    I_{nu+k}/I_nu is the product r(nu) ... r(nu+k-1). Relative accuracy ~ machine precision for
    x up to the bound ``terms`` is chosen for (default: from max(x) when x is concrete, else 1e4).
    k = 1, nu = d/2 - 1 is the mean resultant A_d(beta) (THEORY.md b); nu = d/2 - 1 and k = l is the
    Funk-Hecke multiplier a_l(beta) (THEORY.md g).

    >>> round(float(bessel_ratio(0.5, 10.0)), 8)  # coth(10) - 1/10
    0.9
    """
    k = check_int("k", k, minimum=0)
    check_real("nu", nu, nonnegative=True)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(_float())
    if k == 0:
        return jnp.ones_like(x)
    if terms is None:
        if isinstance(x, jax.core.Tracer):
            terms = _recurrence_terms(1e4)
        else:
            xa = np.asarray(x)
            if np.any(~np.isfinite(xa)) or np.any(xa < 0):
                raise InputError(f"x must be finite and >= 0, got {xa.tolist() if xa.size < 8 else xa}")
            terms = _recurrence_terms(float(xa.max(initial=0.0)))
    r = _bessel_ratios(jnp.asarray(nu, x.dtype), x, kmax=k, terms=int(terms))
    return jnp.prod(r, axis=-1)


def funk_hecke_multiplier(d: int, l: int, beta):
    """a_l(beta) = I_{l+d/2-1}(beta) / I_{d/2-1}(beta): the kernel exp(beta<x,y>)/M_d(beta) on degree l.

    a_l = 1 - l(l+d-2)/(2 beta) + O(beta^-2) (THEORY.md g); a_1 = A_d, the mean resultant (THEORY.md b).

    >>> round(float(funk_hecke_multiplier(3, 1, 100.0)), 10)  # coth(100) - 1/100
    0.99
    """
    d, l = _check_d(d), _check_l(l)
    return bessel_ratio(d / 2 - 1, beta, k=l)


def _multipliers(d, l, beta):
    """(a_1, a_l, a_{l+1}) at beta, one recurrence."""
    beta = jnp.asarray(beta)
    if not jnp.issubdtype(beta.dtype, jnp.floating):
        beta = beta.astype(_float())
    bmax = 1e4 if isinstance(beta, jax.core.Tracer) else float(np.max(np.asarray(beta)))
    r = _bessel_ratios(jnp.asarray(d / 2 - 1, beta.dtype), beta, kmax=l + 1, terms=_recurrence_terms(bmax))
    a = jnp.cumprod(r, axis=-1)  # a_1 .. a_{l+1}
    return a[..., 0], a[..., l - 1], a[..., l]


# --------------------------------------------------------------------------- the n = infinity map


def _map_coefficients(d, l, beta):
    """T(x) = [c_r x + eps (c_p P_l x + c_t P_l' (e - t x))] / [1 + eps c_n P_l] (all divided by g_0)."""
    a1, al, al1 = _multipliers(d, l, beta)
    return a1, al1 + l * al / beta, al / beta, al


def exact_map(x: Float[Array, "N d"], beta, l: int, eps, *, e: Float[Array, " d"] | None = None):
    """The n = infinity attention map T(x) = E_rho[y e^{beta<x,y>}] / E_rho[e^{beta<x,y>}] for
    rho = 1 + eps P_l(<y,e>) (unnormalised: |T(x)| < 1).

    With g_k(r) = Gamma(d/2)(2/r)^{d/2-1} I_{k+d/2-1}(r) (Funk-Hecke: E[e^{beta<x,y>} P_k(<y,e>)] = g_k(beta) P_k(t)),
    T(x) = [g_0'(beta) x + eps (g_l'(beta) P_l(t) x + (g_l(beta)/beta) P_l'(t)(e - t x))]
           / [g_0(beta) + eps g_l(beta) P_l(t)],
    t = <x,e>; for d = 3 g_k = i_k, the modified spherical Bessel functions (THEORY.md g). Computed from
    a_k = g_k/g_0: g_0'/g_0 = a_1, g_l'/g_0 = a_{l+1} + l a_l/beta.

    >>> import jax.numpy as jnp
    >>> T = exact_map(jnp.array([[0.0, 0.0, 1.0]]), 100.0, 2, 0.0)
    >>> round(float(T[0, 2]), 6)  # A_3(100) = coth(100) - 1/100
    0.99
    """
    check_array("x", x, ndim=2)
    d = np.shape(x)[1]
    l = _check_l(l)
    if l == 0:
        raise InputError("l must be >= 1 for a zonal mode, got 0")
    check_real("beta", beta, positive=True)
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(_float())
    e = _axis(e, d, x.dtype)
    c_r, c_p, c_t, c_n = _map_coefficients(d, l, jnp.asarray(beta, x.dtype))
    t = x @ e
    p, dp = gegenbauer(t, d, l, derivative=True)
    num = (c_r + eps * c_p * p)[:, None] * x + (eps * c_t * dp)[:, None] * (e[None, :] - t[:, None] * x)
    return num / (1 + eps * c_n * p)[:, None]


def zonal_map(x: Float[Array, "N d"], beta, coeffs, *, e: Float[Array, " d"] | None = None):
    """The n = infinity map for a general zonal density rho = 1 + sum_{m>=1} c_m P_m(<x,e>) (THEORY.md g).

    Funk-Hecke term by term (a_m = I_{m+nu}/I_nu, nu = d/2 - 1, c_0 = 1):
    T(x) = sum_m c_m [(a_{m+1} + m a_m/beta) P_m(t) x + (a_m/beta) P_m'(t)(e - t x)] / sum_m c_m a_m P_m(t).
    ``coeffs`` = (c_1, ..., c_M); one mode c_l = eps reproduces :func:`exact_map`. With the projection
    estimates c_m = :func:`mode_amplitude` of a sample it is the map of the cloud's *empirical* zonal density.

    >>> import jax.numpy as jnp
    >>> x = jnp.array([[0.6, 0.8, 0.0]])
    >>> bool(jnp.allclose(zonal_map(x, 20.0, [0.0, 0.5]), exact_map(x, 20.0, 2, 0.5), atol=1e-6))
    True
    """
    check_array("x", x, ndim=2)
    check_real("beta", beta, positive=True)
    x = jnp.asarray(x)
    d = x.shape[1]
    e = _axis(e, d, x.dtype)
    c = np.atleast_1d(np.asarray(coeffs, dtype=np.float64))
    m_max = c.size
    b = jnp.asarray(beta, x.dtype)
    bmax = 1e4 if isinstance(beta, jax.core.Tracer) else float(beta)
    a = jnp.concatenate([jnp.ones((1,), x.dtype), jnp.cumprod(
        _bessel_ratios(jnp.asarray(d / 2 - 1, x.dtype), b, kmax=m_max + 1, terms=_recurrence_terms(bmax)))])
    t = x @ e
    num_x = a[1] * jnp.ones_like(t)
    num_e = jnp.zeros_like(t)
    den = jnp.ones_like(t)
    for m in range(1, m_max + 1):
        if c[m - 1] == 0:
            continue
        p, dp = gegenbauer(t, d, m, derivative=True)
        cm = float(c[m - 1])
        num_x = num_x + cm * (a[m + 1] + m * a[m] / b) * p
        num_e = num_e + cm * (a[m] / b) * dp
        den = den + cm * a[m] * p
    return (num_x[:, None] * x + num_e[:, None] * (e[None, :] - t[:, None] * x)) / den[:, None]


def heat_displacement(x: Float[Array, "N d"], beta, l: int, eps, *, e: Float[Array, " d"] | None = None):
    """First-order displacement (1/beta) grad_S log rho(x) - ((d-1)/(2 beta)) x for rho = 1 + eps P_l(<x,e>).

    grad_S log rho = eps P_l'(t) (e - t x) / (1 + eps P_l(t)) (THEORY.md g); T(x) - x = this + O(beta^-2).

    >>> import jax.numpy as jnp
    >>> float(heat_displacement(jnp.array([[1.0, 0.0, 0.0]]), 10.0, 2, 0.5)[0, 0])  # -(d-1)/(2 beta)
    -0.1
    """
    check_array("x", x, ndim=2)
    d = np.shape(x)[1]
    check_real("beta", beta, positive=True)
    x = jnp.asarray(x)
    e = _axis(e, d, x.dtype)
    t = x @ e
    p, dp = gegenbauer(t, d, l, derivative=True)
    grad = (eps * dp / (1 + eps * p))[:, None] * (e[None, :] - t[:, None] * x)
    return grad / beta - (d - 1) / (2 * beta) * x


def linear_gain_spectrum(d: int, beta, m_max: int):
    """Small-amplitude exact gains G_m = 1 + m(m+d-2) a_m(beta) / (beta a_1(beta)) for m = 1..m_max (THEORY.md g).

    The backward heat equation amplifies every degree; the exact n = infinity gain peaks near m ~ sqrt(2 beta)
    (a_m ~ exp(-m^2/(2 beta))), the fastest-growing degree seeded by finite-N noise. One Bessel recurrence.

    >>> g = linear_gain_spectrum(3, 20.0, 12)
    >>> int(g.argmax()) + 1
    6
    """
    d = _check_d(d)
    m_max = check_int("m_max", m_max, minimum=1)
    beta = check_real("beta", beta, positive=True)
    b = jnp.asarray(beta, _float())
    a = jnp.cumprod(_bessel_ratios(jnp.asarray(d / 2 - 1, b.dtype), b, kmax=m_max,
                                   terms=_recurrence_terms(float(beta))))
    m = jnp.arange(1, m_max + 1, dtype=b.dtype)
    return 1 + m * (m + d - 2) * a / (b * a[0])


def first_order_gain(d: int, l: int, beta):
    """G_l = 1 + l(l+d-2)/beta, the backward-heat amplification to first order in 1/beta (THEORY.md g).

    >>> first_order_gain(3, 2, 20.0)
    1.3
    """
    d, l = _check_d(d), _check_l(l)
    return 1 + l * (l + d - 2) / np.asarray(beta, dtype=float) if np.ndim(beta) else 1 + l * (l + d - 2) / beta


@functools.lru_cache(maxsize=32)
def _jacobi_nodes(d: int, nodes: int):
    from scipy.special import roots_jacobi

    a = (d - 3) / 2
    t, w = roots_jacobi(nodes, a, a)
    return t, w / w.sum()


def _map_parts(d, l, eps, beta, t):
    """T(x) = alpha(t) x + gamma(t) (e - t x) for the exact map at beta (beta shape (...,1), t shape (m,))."""
    c_r, c_p, c_t, c_n = (jnp.asarray(c)[..., None] for c in _map_coefficients(d, l, beta[..., 0]))
    p, dp = gegenbauer(t, d, l, derivative=True)
    den = 1 + eps * c_n * p
    return (c_r + eps * c_p * p) / den, eps * c_t * dp / den, p, c_n


def _log_m_scaled(d, beta):
    """log(M_d(beta) e^{-beta}) (THEORY.md b), host float64, from :mod:`phasejax.theory`."""
    from .theory import _log_moment_minus_beta

    with jax.enable_x64(True):
        return np.asarray(_log_moment_minus_beta(np.asarray(beta, dtype=np.float64), d), dtype=np.float64)


def exact_gain(d: int, l: int, eps, beta, *, linear: bool = False, n: int | None = None,
               self_interaction: bool = True, nodes: int = 256):
    """Exact n = infinity amplification of the zonal mode l after one renormalised step (THEORY.md g).

    Finite eps (default): G = E_rho[P_l(t')] / E_rho[P_l(t)], t' = <T(x)/|T(x)|, e>, T = :func:`exact_map`,
    by Gauss-Jacobi quadrature in t with weight (1-t^2)^{(d-3)/2} (``nodes`` points). By symmetry
    T(x) = alpha(t) x + gamma(t)(e - t x), so t' = (t + delta (1-t^2)) / sqrt(1 + delta^2 (1-t^2)),
    delta = gamma/alpha. This is what the Monte Carlo ratio estimator converges to as N -> infinity
    (and it reproduces the public anchor d=3, l=1, eps=0.5, beta=1000 -> 1.0019999436428204).

    ``linear=True``: the eps -> 0 limit, G = 1 + l(l+d-2) a_l(beta) / (beta a_1(beta))
    (continuity equation + Gegenbauer ODE), = 1 + l(l+d-2)/beta + O(beta^-2).

    ``n`` (finite number of tokens N): adds the O(1/N) mean-map correction of the finite-N step. The
    ratio estimator over the n' = N - 1 other tokens has E[y|x] = T_beta + (Q/n')(T_beta - T_{2beta}),
    Q(x) = E_rho[k^2]/E_rho[k]^2 = M_d(2beta)(1 + eps a_l(2beta) P_l) / (M_d(beta)^2 (1 + eps a_l(beta) P_l)^2)
    (the second-order mean of THEORY.md b for a non-uniform rho); the self term (``self_interaction``)
    adds (S/n')(x - T_beta), S = e^beta / E_rho[k] (its weight). The noise of y (variance O(R/N))
    enters G only at O(eps R/(N beta)) and is neglected. ``beta`` may be an array.

    >>> round(float(exact_gain(3, 1, 0.0, 1000.0, linear=True)), 9)  # 1 + 2 a_1/(beta a_1)
    1.002
    """
    d, l = _check_d(d), _check_l(l)
    if l == 0:
        raise InputError("l must be >= 1 for a zonal mode, got 0")
    nodes = check_int("nodes", nodes, minimum=2)
    beta_np = np.asarray(beta)
    if not isinstance(beta, jax.core.Tracer):
        if beta_np.size == 0 or np.any(~np.isfinite(beta_np)) or np.any(beta_np <= 0):
            raise InputError(f"beta must be finite and > 0, got {beta_np.tolist() if beta_np.size < 8 else beta_np}")
    if n is not None:
        n = check_int("n", n, minimum=2)
    dt = _float()
    b = jnp.asarray(beta, dt)
    if linear:
        c_r, c_p, c_t, c_n = _map_coefficients(d, l, b)
        return 1 + l * (l + d - 2) * c_t / c_r
    eps = _check_eps(eps, d, l)
    if eps == 0 and n is None:
        c_r, c_p, c_t, c_n = _map_coefficients(d, l, b)
        return 1 + l * (l + d - 2) * c_t / c_r
    tn, wn = _jacobi_nodes(d, nodes)
    t = jnp.asarray(tn, dt)
    w = jnp.asarray(wn, dt)
    alpha, gamma, p, c_n = _map_parts(d, l, eps, b[..., None], t)
    if n is not None:
        a2, g2, _, c_n2 = _map_parts(d, l, eps, 2 * b[..., None], t)
        lm1, lm2 = _log_m_scaled(d, beta_np), _log_m_scaled(d, 2 * beta_np)
        r = jnp.asarray(np.exp(lm2 - 2 * lm1), dt)[..., None]  # M(2b)/M(b)^2
        q = r * (1 + eps * c_n2 * p) / (1 + eps * c_n * p) ** 2
        nn = n - 1
        da, dg = q * (alpha - a2) / nn, q * (gamma - g2) / nn
        if self_interaction:
            s = jnp.asarray(np.exp(-lm1), dt)[..., None] / (1 + eps * c_n * p)
            da, dg = da + s * (1 - alpha) / nn, dg - s * gamma / nn
        alpha, gamma = alpha + da, gamma + dg
    delta = gamma / alpha
    s2 = 1 - t**2
    tp = (t + delta * s2) / jnp.sqrt(1 + delta**2 * s2)
    rho = 1 + eps * p
    num = jnp.sum(w * rho * gegenbauer(jnp.clip(tp, -1, 1), d, l), axis=-1)
    den = jnp.sum(w * rho * p, axis=-1)
    return num / den


# --------------------------------------------------------------------------- measurements


class GainMeasurement(NamedTuple):
    """Monte Carlo amplification of one zonal mode at one beta, over independent seeds.

    ``G`` mean over seeds of the per-seed ratio estimator at N tokens; ``G_se`` its standard error
    (std over seeds / sqrt(seeds)); ``G_seeds`` the per-seed values. ``G_extrapolated`` (``_se``,
    ``_seeds``) the N -> infinity (Richardson) estimate from the same clouds, see :func:`measure_gain`.
    ``G_exact`` the n = infinity value and ``G_exact_n`` the same with the O(1/N) finite-N correction
    (:func:`exact_gain` with ``n``). ``bias`` = G - G_extrapolated, the measured finite-N bias, with
    ``bias_se``; the theory for it is G_exact_n - G_exact.
    """

    beta: float
    G: float
    G_se: float
    G_seeds: np.ndarray
    G_extrapolated: float
    G_extrapolated_se: float
    G_extrapolated_seeds: np.ndarray
    bias: float
    bias_se: float
    G_exact: float
    G_exact_n: float
    n: int
    d: int
    l: int
    eps: float
    self_interaction: bool


def richardson_weights(n: int, n_a: int, n_b: int) -> tuple[float, float]:
    """Weights (c_full, c_half) with c_full + c_half = 1 that cancel a bias b/n' in the number of keys.

    G_inf = c_full G(all N keys) + c_half (G(half A) + G(half B))/2 removes any c/N bias exactly:
    with h = (1/n_a + 1/n_b)/2, c_full = h/(h - 1/n), c_half = -(1/n)/(h - 1/n); = (2, -1) for equal halves.
    Each key set is an i.i.d. sample, so this is the standard half-sample (jackknife-type) correction.

    >>> richardson_weights(1000, 500, 500)
    (2.0, -1.0)
    """
    h = (1 / n_a + 1 / n_b) / 2
    return h / (h - 1 / n), -(1 / n) / (h - 1 / n)


def gain_one_cloud(x: Float[Array, "N d"], beta, l: int, *, self_interaction: bool = True, chunk_q: int = 512,
                   chunk_k: int = 2048) -> tuple[float, float]:
    """(G, G_extrapolated) of mode l for one cloud ``x`` after one renormalised step at ``beta``.

    G = hat_eps(y)/hat_eps(x) (:func:`mode_gain`), y the step with all N tokens as keys; G_extrapolated
    = c_full G + c_half (G_A + G_B)/2 (:func:`richardson_weights`), G_A, G_B the same with the keys
    restricted to either half (:func:`attention_step_halves`, one pass). The queries are all N tokens in
    every case, so the cancellation of the cloud's sampling noise is kept; and as the key-density
    fluctuations of the two halves average to those of the full cloud, their first-order effect cancels in
    (G_A + G_B)/2 - G.

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 4000, 3, 2, 0.5)
    >>> g, g_inf = gain_one_cloud(x, 20.0, 2)
    >>> abs(g - g_inf) < 0.01
    True
    """
    l = _check_l(l)
    if l == 0:
        raise InputError("l must be >= 1 for a zonal mode (degree 0 is the constant), got 0")
    n = np.shape(x)[0]
    y, ya, yb, (n_a, n_b) = attention_step_halves(x, beta, self_interaction=self_interaction, chunk_q=chunk_q,
                                                   chunk_k=chunk_k)
    before = float(mode_amplitude(x, l))
    g, ga, gb = (float(mode_amplitude(v, l)) / before for v in (y, ya, yb))
    c_full, c_half = richardson_weights(n, n_a, n_b)
    return g, c_full * g + c_half * (ga + gb) / 2


def measure_gain(
    key: PRNGKeyArray,
    beta,
    *,
    n: int,
    d: int = 3,
    l: int = 2,
    eps: float = 0.5,
    seeds: int = 4,
    self_interaction: bool = True,
    chunk_q: int = 512,
    chunk_k: int = 2048,
) -> GainMeasurement:
    """Measured G_l after one renormalised all-queries step, with a standard error over seeds.

    Per seed s: tokens x ~ rho = 1 + eps P_l(<x,e>) (:func:`sample_zonal`, key ``fold_in(key, s)``),
    y = :func:`attention_step`, G_s = hat_eps(y)/hat_eps(x) (:func:`mode_gain`).

    Standard error: over independent seeds (std/sqrt(seeds)). The output tokens are correlated (they
    share keys), so a per-token delta method is not honest. Variance reduction: the ratio of the
    projections of the *same* tokens before and after the step cancels the sampling noise of the cloud
    (the step amplifies the cloud's empirical mode, whatever its size), leaving a per-seed spread ~1e-3
    of G - 1 at N = 2e5; the same ``key`` gives the same clouds at every beta (common random numbers).

    Finite-N bias. A softmax average over n' i.i.d. keys is a ratio estimator, biased by O(R/n'),
    R = M_d(2beta)/M_d(beta)^2 ~ beta^{(d-1)/2} (THEORY.md b): G_s estimates ``G_exact_n``
    (:func:`exact_gain` with ``n``), not the n = infinity ``G_exact``. At N = 2e5 and beta = 200 the bias
    (about 1e-4 for d = 4) is several standard errors. ``G_extrapolated`` removes it without using that
    theory: the same step with the keys restricted to either half of the cloud (same queries, one pass)
    has twice the bias, so the Richardson combination 2 G - (G_A + G_B)/2 (:func:`gain_one_cloud`) is an
    estimate of the N = infinity gain with O(R^2/N^2) bias, at a standard error about 1.5 to 2 times that
    of G. Its per-seed values give its standard error; ``bias`` = G - G_extrapolated (with ``bias_se``
    from the per-seed differences) is a measurement of the finite-N bias, to compare with
    G_exact_n - G_exact. The subcritical regime needs beta << N^{2/(d-1)}.

    >>> import jax
    >>> m = measure_gain(jax.random.key(0), 20.0, n=2000, seeds=2)
    >>> abs(m.G - m.G_exact) < 0.05 and abs(m.G_extrapolated - m.G_exact) < 0.05
    True
    """
    n = check_int("n", n, minimum=4)
    seeds = check_int("seeds", seeds, minimum=1)
    d, l = _check_d(d), _check_l(l)
    eps = _check_eps(eps, d, l)
    if eps == 0:
        raise InputError("eps must be nonzero to measure an amplification (G = hat_eps_after / hat_eps_before)")
    beta = check_real("beta", beta, positive=True)
    gs = np.asarray([
        gain_one_cloud(sample_zonal(jax.random.fold_in(key, s), n, d, l, eps), beta, l,
                       self_interaction=self_interaction, chunk_q=chunk_q, chunk_k=chunk_k)
        for s in range(seeds)
    ])

    def mse(v):
        return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(seeds)) if seeds > 1 else math.nan)

    (g, se), (g_inf, se_inf), (bias, bias_se) = mse(gs[:, 0]), mse(gs[:, 1]), mse(gs[:, 0] - gs[:, 1])
    return GainMeasurement(
        beta=beta, G=g, G_se=se, G_seeds=gs[:, 0], G_extrapolated=g_inf, G_extrapolated_se=se_inf,
        G_extrapolated_seeds=gs[:, 1], bias=bias, bias_se=bias_se,
        G_exact=float(exact_gain(d, l, eps, beta)),
        G_exact_n=float(exact_gain(d, l, eps, beta, n=n, self_interaction=self_interaction)),
        n=n, d=d, l=l, eps=eps, self_interaction=bool(self_interaction),
    )


def compare_displacement(
    x: Float[Array, "N d"], beta, l: int, eps, *, e=None, y: Float[Array, "N d"] | None = None, bins: int = 20,
    empirical_modes: int = 8, **step_kwargs,
) -> dict:
    """Measured displacement y - x (unrenormalised step) against the exact map and the heat prediction.

    Per token: ``rms_measured`` = rms|y - x|, ``rms_exact_error`` = rms|y - T(x)| (T = :func:`exact_map`),
    ``rms_heat_error`` = rms|y - x - heat_displacement(x)|, ``rms_exact_vs_heat`` = rms|T - x - heat|, and
    the same for the tangential components (``*_tangential``). Per-token errors are dominated by the finite-N
    noise (variance ~ R/(beta N), THEORY.md b), so also the meridian profile: the speed along the meridian
    towards e, v = <y - x, (e - t x)/sqrt(1-t^2)>, averaged in ``bins`` bins of t = <x,e>:
    ``profile_t``, ``profile_measured``, ``profile_exact``, ``profile_heat`` (the heat speed is
    (eps/beta) P_l'(t) sqrt(1-t^2) / (1 + eps P_l(t))), and their rms differences ``profile_exact_error``,
    ``profile_heat_error``, ``profile_rms`` (THEORY.md g). The step responds to the cloud's *empirical*
    density, whose zonal modes fluctuate by ~sqrt(N_m/N): ``profile_empirical`` (and
    ``profile_empirical_error``) is the speed of :func:`zonal_map` with the cloud's projected zonal
    amplitudes of degrees 1..``empirical_modes``, which removes that part of the difference.

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 4000, 3, 2, 0.5)
    >>> r = compare_displacement(x, 20.0, 2, 0.5)
    >>> r["profile_exact_error"] < r["profile_heat_error"] < r["profile_rms"]
    True
    """
    check_array("x", x, ndim=2)
    bins = check_int("bins", bins, minimum=1)
    x = jnp.asarray(x)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    d = x.shape[1]
    ee = _axis(e, d, x.dtype)
    if y is None:
        y = attention_step(x, beta, renormalize=False, **step_kwargs)
    T = exact_map(x, beta, l, eps, e=e)
    H = x + heat_displacement(x, beta, l, eps, e=e)
    empirical_modes = check_int("empirical_modes", empirical_modes, minimum=1)
    E = zonal_map(x, beta, [float(mode_amplitude(x, m, e=e)) for m in range(1, empirical_modes + 1)], e=e)

    def rms(v):
        return float(jnp.sqrt(jnp.mean(jnp.sum(v**2, axis=1))))

    def tang(v):
        return v - jnp.sum(v * x, axis=1, keepdims=True) * x

    t = np.clip(np.asarray(x @ ee, np.float64), -1, 1)
    mer = (ee[None, :] - (x @ ee)[:, None] * x) / jnp.sqrt(jnp.maximum(1 - (x @ ee) ** 2, 1e-30))[:, None]
    speeds = [np.asarray(jnp.sum((z - x) * mer, axis=1), np.float64) for z in (y, T, H, E)]
    edges = np.linspace(-1, 1, bins + 1)
    idx = np.clip(np.digitize(t, edges) - 1, 0, bins - 1)
    cnt = np.bincount(idx, minlength=bins)
    ok = cnt > 0
    prof = [np.bincount(idx, weights=v, minlength=bins)[ok] / cnt[ok] for v in speeds]
    return {
        "rms_measured": rms(y - x),
        "rms_exact_error": rms(y - T),
        "rms_heat_error": rms(y - H),
        "rms_exact_vs_heat": rms(T - H),
        "rms_measured_tangential": rms(tang(y - x)),
        "rms_exact_error_tangential": rms(tang(y - T)),
        "rms_heat_error_tangential": rms(tang(y - H)),
        "profile_t": ((edges[:-1] + edges[1:]) / 2)[ok],
        "profile_count": cnt[ok],
        "profile_measured": prof[0],
        "profile_exact": prof[1],
        "profile_heat": prof[2],
        "profile_empirical": prof[3],
        "profile_rms": float(np.sqrt(np.mean(prof[0] ** 2))),
        "profile_exact_error": float(np.sqrt(np.mean((prof[0] - prof[1]) ** 2))),
        "profile_heat_error": float(np.sqrt(np.mean((prof[0] - prof[2]) ** 2))),
        "profile_empirical_error": float(np.sqrt(np.mean((prof[0] - prof[3]) ** 2))),
    }
