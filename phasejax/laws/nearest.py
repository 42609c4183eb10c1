"""The m nearest of n keys, exactly, at a cost independent of n (n = 1e15 and beyond).

docs/theory.md §a. For a key law with a known gap CDF F (every :class:`~phasejax.laws.BetaGapLaw`:
u/2 ~ Beta(a, b)), the m smallest of n i.i.d. gaps are drawn exactly in O(m):

    E_1..E_m iid Exp(1),  S_i = E_1 + ... + E_i,  G ~ Gamma(n + 1 - m) independent,
    U_(i) = S_i / (S_m + G)        (the m smallest of n uniform order statistics)
    u_(i) = F^{-1}(U_(i)).

Everything is carried in log space, log U_(i) = log S_i - log(S_m + G); G is drawn by an
exact Marsaglia-Tsang rejection sampler written for huge shapes (as log G = log d + w,
w = 3 log1p(c x) computed without cancellation, so the accept test and the O(1/sqrt(n))
fluctuation are right even when c x is below float epsilon), E_i by an inversion that is
precise at both ends (small E_1 is the nearest key), and the inverse CDF works from log p,
so U down to 1e-300 (float64) or e^-700 (float32, where U itself would underflow) keeps its
full relative precision.

The n - m keys not drawn (the *bulk*) are i.i.d. from F conditioned on u > u_(m). They enter
the shifted sums Z, Z1, Z2, Q of :class:`phasejax.observables.Accumulator` through their conditional mean
(n - m) E[X | u > u_(m)], X = (e^{-beta u'}, e^{-beta u'} u', e^{-beta u'} u'^2, e^{-2 beta u'}),
u' = u - u_(1) (1-D integrals of the gap density, by a trapezoid rule in a logit variable:
jittable, differentiable in beta, exact at beta = 0), plus a Gaussian CLT fluctuation
sqrt(n - m) L xi with L L^T the conditional covariance of X and xi ~ N(0, I_4) drawn once
from ``key`` (the same for every beta: common random numbers).

Shape contract (one query; ``jax.vmap`` over ``key`` for a seed ensemble):

* ``gap_quantile(law, log_p)``: ``log_p`` any shape -> u of the same shape;
* ``nearest_gaps(law, key, n, m)`` -> ``Float[Array, "m"]``, ascending;
* ``nearest_gaps(law, key, n, m)`` -> (m,) ascending; ``nearest_sample`` adds the bulk's threshold;
* ``bulk_sums(...)`` -> the bulk's (Z, Z1, Z2, Q) contributions, (B,) each; the observables built on them
  are :func:`phasejax.observables.nearest_observables` (``_with_bound``).

n and m are static (Python ints; n may be given as 1e15); their cost does not depend on n.

Precision. float64: u_(i) to ~1e-14 relative for every n. float32: log U is a float32 of size
|log U| ~ log n, so u carries a relative error ~ 6e-8 |log U| / a (2e-6 at n = 1e15 on S^2);
u underflows to 0 only where the true u is below float32's smallest normal (possible for
very small alpha at huge n; the bulk integrals and observables stay finite). The bulk's
conditional moments are accurate to ~1e-13 (float64, 512 nodes; see tests). At very small beta
the seed-to-seed spread of some observables (sum w^2 at beta ~ 1e-2, say) is below 1e-6 relative:
float32 cannot resolve it, with either sampler; use float64 there.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import InputError, check_int
from .._numerics.special import beta_quantile_log, lbeta, log1mexp, log_betainc
from .._random import exponential, log_gamma_variate
from .base import BetaGapLaw, KeyLaw

__all__ = [
    "gap_quantile",
    "nearest_gaps",
    "nearest_sample",
    "bulk_sums",
    "bulk_moments",
    "clt_error",
    "tail_log_prob",
    "check_nearest_law",
    "check_n_m",
]


DEFAULT_M = 256


DEFAULT_NODES = 512


def check_nearest_law(law, who: str) -> tuple[float, float]:
    """(a, b) of a gap law u/2 ~ Beta(a, b) for the nearest-m sampler, or an InputError naming ``who``."""
    if not isinstance(law, KeyLaw):
        raise InputError(f"{who}: law must be a phasejax key law (UniformSphere, PowerLawCap, Subsphere), got {law!r}")
    if not (isinstance(law, BetaGapLaw) and law.has_gap_law):
        raise InputError(
            f"{who}: law must have a known gap CDF (UniformSphere, PowerLawCap or Subsphere), "
            f"got {type(law).__name__}; sample keys with phasejax.observables instead"
        )
    a, b = law.gap_beta_params
    return float(a), float(b)


def check_n_m(n, m):
    """(n, m) as ints with 1 <= m <= n, or an InputError."""
    n = check_int("n", n, minimum=1)
    m = check_int("m", m, minimum=1)
    if m > n:
        raise InputError(f"m must be <= n (the nearest m of n keys), got m={m} > n={n}")
    return n, m


def gap_quantile(law: KeyLaw, log_p: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    """The gap quantile u = F^{-1}(p) from log p: F(u) = I_{u/2}(a, b) (docs/theory.md §a).

    Full relative precision for p down to 1e-300 in float64 (and e^-700 in float32, which is
    why the argument is log p). Closed forms where they exist (b = 1: u = 2 p^{1/a}, so
    u = 2p on S^2; a = 1: u = 2(1 - (1-p)^{1/b})); d = 5 (a = b = 2) inverts x^2 (3 - 2x) = p
    exactly by Newton; otherwise safeguarded Newton on log I_x(a, b) in log x, started from
    the small-x series x^a / (a B(a, b)), with log I_x from a fixed-depth continued fraction
    (and I_x = 1 - I_{1-x}(b, a) above x = (a+1)/(a+b+2)). Jittable; not differentiated.

    >>> import jax.numpy as jnp
    >>> from phasejax.laws import UniformSphere
    >>> round(float(gap_quantile(UniformSphere(3), jnp.log(1e-30))) / 1e-30, 5)  # u = 2p on S^2
    2.0
    """
    a, b = check_nearest_law(law, "gap_quantile")
    log_p = jnp.asarray(log_p)
    if not jnp.issubdtype(log_p.dtype, jnp.floating):
        log_p = log_p.astype(jnp.result_type(float))
    if not isinstance(log_p, jax.core.Tracer) and np.any(np.asarray(log_p) > 0):
        raise InputError(f"log_p must be <= 0 (a log probability), got max {float(np.max(log_p))!r}")
    return _gap_quantile(a=a, b=b, log_p=log_p)


@functools.partial(jax.jit, static_argnames=("a", "b"))
def _gap_quantile(a: float, b: float, log_p):
    t, _ = beta_quantile_log(a, b, log_p)
    return 2.0 * jnp.exp(t)


def _nearest_log_uniforms(key, n: int | float, m: int | float, dtype):
    """log U_(1..m), the m smallest of n uniform order statistics, ascending (docs/theory.md §a)."""
    ke, kg = jax.random.split(key)
    s = jnp.cumsum(exponential(ke, (m,), dtype))
    log_g = log_gamma_variate(kg, float(n) + 1.0 - float(m), dtype)
    log_total = log_g + jnp.log1p(s[-1] * jnp.exp(-log_g))  # log(S_m + G)
    return jnp.minimum(jnp.log(s) - log_total, 0.0)


@functools.partial(jax.jit, static_argnames=("n", "m", "dtype"))
def _nearest_gaps(law, key, n, m, dtype):
    a, b = law.gap_beta_params
    return _gap_quantile(float(a), float(b), _nearest_log_uniforms(key, n, m, dtype))


def nearest_gaps(law: KeyLaw, key: PRNGKeyArray, n: int | float, m: int | float, *, dtype=None) -> Float[Array, " m"]:
    """The m smallest of n i.i.d. gaps from ``law``, exactly, ascending, in O(m) for any n.

    docs/theory.md §a: E_i iid Exp(1), S_i = E_1 + .. + E_i, G ~ Gamma(n + 1 - m),
    u_(i) = F^{-1}(S_i / (S_m + G)), computed from log U_(i) = log S_i - log(S_m + G) by
    :func:`gap_quantile`. ``n`` may be any integer >= m (1e15 and beyond; a float such as 1e15 is
    accepted); n and m are static. Same law as ``sort(law.sample_gaps(key', n))[:m]``.

    >>> import jax
    >>> from phasejax.laws import UniformSphere
    >>> u = nearest_gaps(UniformSphere(3), jax.random.key(0), 10**15, 8)
    >>> u.shape, bool(u[0] < 1e-12)
    ((8,), True)
    """
    check_nearest_law(law, "nearest_gaps")
    n, m = check_n_m(n, m)
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    return _nearest_gaps(law, key, n, m, dtype)


def bulk_moments(a: float, b: float, log_c, c, d_gap, log_tail, betas, ell, nodes: int, *, third: bool = False):
    """Conditional mean (4, B) and covariance (B, 4, 4) given u > c of
    X = (e^{-beta v}, e^{-beta v} u'', e^{-beta v} u''^2, e^{-2 beta v}), v = u - c, u'' = (u - u_(1))/ell;
    with ``third`` also the third central moment (B,) of Y = e^{-beta v} (for the CLT error, :func:`clt_error`).

    Trapezoid rule in s = logit(v / (2 - c)): the integrand decays exponentially at both ends
    (like v^{min(1,a)} at v -> 0 and (2-u)^b at u -> 2) and double-exponentially above
    v ~ 1/beta, so the rule converges geometrically; the range is set per beta (40/min(1,a)
    e-folds below the peak, up to e^{-80} above it) and held fixed under differentiation
    (``stop_gradient``: the truncated tails are < e^{-40}). Without a cut the covariance is
    summed from centred values (no E[XX] - E[X]^2 cancellation at small beta). The means of
    e^{-beta v} and e^{-2 beta v} are exactly 1 at beta = 0, with their exact derivatives there."""
    dtype = betas.dtype
    log2 = math.log(2.0)
    log_2mc = jnp.log(jnp.maximum(2.0 - c, jnp.finfo(dtype).tiny))  # c < 2 (guard: float32 with n - m tiny)
    pos = betas > 0
    bsafe = jnp.where(pos, betas, 1.0)
    log_peak = jnp.where(pos, jnp.minimum(-jnp.log(4.0 * bsafe), 0.0), 0.0)  # smallest peak, v ~ 1/(4 beta)
    s_lo = log_peak - log_2mc - 40.0 / min(1.0, a)
    s_top = 40.0 / min(1.0, b) + 2.0
    x_cut = 80.0 / (bsafe * (2.0 - c))  # v/(2-c) beyond which e^{-beta v} < e^{-80}
    x_cs = jnp.where(x_cut < 0.5, x_cut, 0.25)
    s_cut = jnp.where(pos & (x_cut < 0.5), jnp.log(x_cs) - jnp.log1p(-x_cs), s_top)
    s_hi = jnp.minimum(s_top, s_cut)
    s_lo, s_hi = jax.lax.stop_gradient(s_lo), jax.lax.stop_gradient(s_hi)
    grid = jnp.linspace(0.0, 1.0, nodes, dtype=dtype)
    s = s_lo[:, None] + (s_hi - s_lo)[:, None] * grid[None, :]  # (B, G)
    h = (s_hi - s_lo) / (nodes - 1)
    log_v = log_2mc - jax.nn.softplus(-s)
    log_w = log_2mc - jax.nn.softplus(s)  # log(2 - u)
    log_u = jnp.logaddexp(log_c, log_v)
    log_jac = log_2mc - jax.nn.softplus(s) - jax.nn.softplus(-s)
    log_f = (a - 1.0) * (log_u - log2) + (b - 1.0) * (log_w - log2) - log2 - lbeta(a, b)
    log_d = jnp.log(jnp.maximum(d_gap, 0.0))  # -inf when m = 1
    log_up = jnp.logaddexp(log_d, log_v) - jnp.log(ell)[:, None]  # log(u'/ell)
    edge = jnp.ones((nodes,), dtype).at[0].set(0.5).at[-1].set(0.5)
    lw = log_f + log_jac + jnp.log(h)[:, None] + jnp.log(edge)[None, :] - log_tail  # log weights (B, G)
    lx0 = -betas[:, None] * jnp.exp(log_v)
    lx = jnp.stack([lx0, lx0 + log_up, lx0 + 2.0 * log_up, 2.0 * lx0])  # log X (4, B, G)
    mean = jnp.sum(jnp.exp(lw[None] + lx), axis=-1)  # (4, B)
    # Without a cut the rule spans the whole support: add its (beta-independent, ~1e-15) defect
    # 1 - sum(w) to the means of e^{-beta v}, e^{-2 beta v} so they are exactly 1 at beta = 0
    # without touching their beta-derivatives. Then the centred covariance is accurate (small
    # beta, where X barely varies). With a cut (e^{-beta v} < e^{-80} beyond it) the centred
    # integrand does not vanish at the cut, but X varies by O(1) and E[XX] - E[X]E[X] is fine.
    centred = (s_hi >= s_top).astype(dtype)  # (B,)
    defect = centred * (1.0 - jnp.sum(jnp.exp(lw), axis=-1))
    mean = jnp.stack([mean[0] + defect, mean[1], mean[2], mean[3] + defect])
    yc = jnp.exp(0.5 * lw[None] + lx) - (centred[:, None] * jnp.exp(0.5 * lw))[None] * mean[:, :, None]
    cov = jnp.einsum("ibg,jbg->bij", yc, yc)
    cov = cov - (1.0 - centred)[:, None, None] * (mean.T[:, :, None] * mean.T[:, None, :])
    if not third:
        return mean, cov
    w = jnp.exp(lw)
    y0 = jnp.exp(lx0)
    k3_centred = jnp.sum(w * (y0 - mean[0][:, None]) ** 3, axis=-1)
    k3_raw = jnp.sum(w * y0**3, axis=-1) - 3.0 * mean[0] * mean[3] + 2.0 * mean[0] ** 3
    return mean, cov, jnp.where(centred > 0, k3_centred, k3_raw)


def _psd_cholesky(cov):
    """Lower Cholesky factor of the (B, 4, 4) matrices ``cov``, with pivots that are not
    positive (rounding at small beta makes the covariance numerically singular) set to 0:
    the factor of the nearest-from-below PSD matrix; gradient-safe (double where)."""
    p = cov.shape[-1]
    L = [[None] * p for _ in range(p)]
    zero = jnp.zeros(cov.shape[:-2], cov.dtype)
    for j in range(p):
        sjj = cov[..., j, j] - sum((L[j][k] ** 2 for k in range(j)), zero)
        ok = sjj > 64 * jnp.finfo(cov.dtype).eps * jnp.abs(cov[..., j, j])
        ljj = jnp.where(ok, jnp.sqrt(jnp.where(ok, sjj, 1.0)), 0.0)
        L[j][j] = ljj
        for i in range(j + 1, p):
            t = cov[..., i, j] - sum((L[i][k] * L[j][k] for k in range(j)), zero)
            L[i][j] = jnp.where(ok, t / jnp.where(ok, ljj, 1.0), 0.0)
        for i in range(j):
            L[i][j] = zero
    return jnp.stack([jnp.stack(row, axis=-1) for row in L], axis=-2)


_BERRY_ESSEEN = 0.4748


def nearest_sample(a: float, b: float, key, n: int | float, m: int | float, dtype):
    """The m nearest gaps u_(1..m) (ascending) of n from u/2 ~ Beta(a, b), with log u_(m) and
    log(1 - F(u_(m))) (the bulk's conditioning threshold and its probability), jittable (n, m static)."""
    log_uni = _nearest_log_uniforms(key, n, m, dtype)
    t, _ = beta_quantile_log(a, b, log_uni)
    return 2.0 * jnp.exp(t), math.log(2.0) + t[-1], log1mexp(log_uni[-1])


def bulk_sums(a: float, b: float, n_bulk: float | Array, u1, c, log_c, log_tail, betas, xi, nodes: int, *,
              cumulants: bool = False):
    """The n_bulk keys above u_(m) = c in the shifted sums (Z, Z1, Z2, Q) of :mod:`phasejax.observables`
    (shift u_(1) = ``u1``): their conditional mean, plus the CLT term sqrt(n_bulk) L xi when ``xi`` (4,) is
    given (L L^T the conditional covariance; docs/theory.md §a).

    Returns (sums (4 arrays (B,)), bulk mean share numerator N E[e^{-beta u'}], its sd sqrt(N Var), the
    Berry-Esseen bound on the Gaussian approximation (constant 0.4748, Shevtsova 2011)); with ``cumulants``
    a fifth entry, kappa_3 = N e^{-3 beta D} E[(Y - EY)^3] (B,): the third cumulant of the bulk's Z sum
    (D = c - u1, Y = e^{-beta (u - c)}), which the Gaussian leaves out (:func:`clt_error`)."""
    d_gap = c - u1
    pos = betas > 0
    ell = jax.lax.stop_gradient(c + jnp.where(pos, jnp.minimum(1.0 / jnp.where(pos, betas, 1.0), 1.0), 1.0))
    mean, cov, *k3 = bulk_moments(a, b, log_c, c, d_gap, log_tail, betas, ell, nodes, third=cumulants)
    var0 = jnp.maximum(cov[:, 0, 0], 0.0)
    # n_bulk: a Python number (static) or an array (traced, e.g. one compiled curve for every n)
    log_n = math.log(n_bulk) if isinstance(n_bulk, int | float) else jnp.log(n_bulk)
    e1 = jnp.exp(log_n - betas * d_gap)  # N e^{-beta D}
    e2 = jnp.exp(log_n - 2 * betas * d_gap)
    s1 = jnp.exp(0.5 * log_n - betas * d_gap)  # sqrt(N) e^{-beta D}
    s2 = jnp.exp(0.5 * log_n - 2 * betas * d_gap)
    sums = [e1 * mean[0], ell * e1 * mean[1], ell * ell * e1 * mean[2], e2 * mean[3]]
    if xi is not None:
        fl = jnp.einsum("bij,j->bi", _psd_cholesky(cov), xi)  # (B, 4)
        fluct = [s1 * fl[:, 0], ell * s1 * fl[:, 1], ell * ell * s1 * fl[:, 2], s2 * fl[:, 3]]
        sums = [jnp.maximum(x + f, 0.0) for x, f in zip(sums, fluct, strict=True)]
    sd_safe = jnp.sqrt(jnp.where(var0 > 0, var0, 1.0))
    clt = jnp.where(var0 > 0, jnp.minimum(_BERRY_ESSEEN / (sd_safe * jnp.exp(0.5 * log_n)), 1.0), 0.0)
    out = (tuple(sums), e1 * mean[0], s1 * jnp.where(var0 > 0, sd_safe, 0.0), clt)
    if cumulants:
        out = (*out, jnp.exp(log_n - 3 * betas * d_gap) * k3[0])
    return out


def clt_error(z, kappa3, bulk_sd, d_gap, betas):
    """The error in the max weight 1/Z that the Gaussian bulk (mean + CLT term) leaves, per context (B,).

    B: the bulk's Z sum (terms x = e^{-beta (u - u_(1))} in [0, e^{-beta D}], cumulants kappa_j); G: its
    Gaussian (same mean mu, variance sigma^2); Z = Z_top + mu. Expanding f(x) = 1/(Z_top + x) about mu
    (f''' = -6/Z^4, f'''' = 24/Z^5): E f(G) - E f(B) = kappa_3 / Z^4 - kappa_4 / Z^5 + ...

    Returns (bias, bound): the signed leading term kappa_3 / Z^4 (Gaussian minus exact; its log-beta
    derivatives give the error in chi and in the peak), and the bound on the first two terms
    |kappa_3| / Z^4 + 4 sigma^2 e^{-2 beta D} / Z^5 (|kappa_4| <= 4 N x_max^2 Var x for x in [0, x_max]).
    Relative to 1/Z the bound is <= fluct^2 q (1 + 4 q), fluct = sigma/Z, q = e^{-beta D}/Z (the weight of
    the m-th key); further terms carry further powers of q.

    >>> import jax.numpy as jnp
    >>> bias, bound = clt_error(jnp.array([2.0]), jnp.array([0.16]), jnp.array([0.5]), 1.0, jnp.array([0.0]))
    >>> round(float(bias[0]), 6), round(float(bound[0]), 6)
    (0.01, 0.04125)
    """
    z4 = z**4
    bias = kappa3 / z4
    bound = jnp.abs(kappa3) / z4 + 4.0 * bulk_sd**2 * jnp.exp(-2.0 * betas * d_gap) / (z4 * z)
    return bias, bound


def tail_log_prob(a: float, b: float, c):
    """log(1 - F(c)) = log P(u > c) for u/2 ~ Beta(a, b): the bulk's conditioning probability at u_(m) = c.

    >>> import jax.numpy as jnp
    >>> round(float(jnp.exp(tail_log_prob(1.0, 1.0, jnp.asarray(0.5)))), 6)  # S^2: u/2 uniform
    0.75
    """
    return log1mexp(jnp.minimum(log_betainc(a, b, jnp.log(c) - math.log(2.0)), 0.0))
