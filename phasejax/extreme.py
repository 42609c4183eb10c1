"""The m nearest of n keys, exactly, at a cost independent of n (n = 1e15 and beyond).

THEORY.md a. For a key law with a known gap CDF F (every :class:`~phasejax.geometry.BetaGapLaw`:
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
the shifted sums Z, Z1, Z2, Q of :mod:`phasejax.observables` through their conditional mean
(n - m) E[X | u > u_(m)], X = (e^{-beta u'}, e^{-beta u'} u', e^{-beta u'} u'^2, e^{-2 beta u'}),
u' = u - u_(1) (1-D integrals of the gap density, by a trapezoid rule in a logit variable:
jittable, differentiable in beta, exact at beta = 0), plus a Gaussian CLT fluctuation
sqrt(n - m) L xi with L L^T the conditional covariance of X and xi ~ N(0, I_4) drawn once
from ``key`` (the same for every beta: common random numbers).

Shape contract (one query; ``jax.vmap`` over ``key`` for a seed ensemble):

* ``gap_quantile(law, log_p)``: ``log_p`` any shape -> u of the same shape;
* ``nearest_gaps(law, key, n, m)`` -> ``Float[Array, "m"]``, ascending;
* ``nearest_observables(law, key, n, betas)`` -> :class:`~phasejax.observables.Observables`
  with (B,) fields, the same fields and meaning as ``sampled_observables`` for n keys;
* ``nearest_observables_with_bound`` -> ``(Observables, Truncation)``, Truncation fields (B,).

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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import InputError, check_betas, check_int
from .geometry import BetaGapLaw, KeyLaw
from .observables import Observables, _as_betas, _finish, _init_state, _State, _update

__all__ = [
    "gap_quantile",
    "nearest_gaps",
    "nearest_observables",
    "nearest_observables_with_bound",
    "Truncation",
    "DEFAULT_M",
]

DEFAULT_M = 256
DEFAULT_NODES = 512


# --------------------------------------------------------------------------- input checks


def _beta_law(law, who: str) -> tuple[float, float]:
    if not isinstance(law, KeyLaw):
        raise InputError(f"{who}: law must be a phasejax key law (UniformSphere, PowerLawCap, Subsphere), got {law!r}")
    if not (isinstance(law, BetaGapLaw) and law.has_gap_law):
        raise InputError(
            f"{who}: law must have a known gap CDF (UniformSphere, PowerLawCap or Subsphere), "
            f"got {type(law).__name__}; sample keys with phasejax.observables instead"
        )
    a, b = law.gap_beta_params
    return float(a), float(b)


def _check_n_m(n, m):
    n = check_int("n", n, minimum=1)
    m = check_int("m", m, minimum=1)
    if m > n:
        raise InputError(f"m must be <= n (the nearest m of n keys), got m={m} > n={n}")
    return n, m


# --------------------------------------------------------------------------- log-space helpers


def _log1mexp(x):
    """log(1 - e^x) for x <= 0, accurate everywhere (Maechler 2012)."""
    x = jnp.minimum(x, 0.0)
    near = x > -math.log(2.0)
    xs_near = jnp.where(near, x, -1.0)
    xs_far = jnp.where(near, -1.0, x)
    return jnp.where(near, jnp.log(-jnp.expm1(xs_near)), jnp.log1p(-jnp.exp(xs_far)))


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _cf_terms(a: float, b: float) -> int:
    """Continued-fraction depth: converges in O(sqrt(max(a, b))) terms below the switch point."""
    return int(24 + 6 * math.sqrt(max(a, b, 1.0)))


def _betacf(a: float, b: float, x, n_terms: int):
    """1/(1 + d1/(1 + d2/(1 + ...))) of I_x(a,b) = x^a (1-x)^b / (a B(a,b)) * cf (NR 6.4),
    evaluated bottom-up with a fixed depth (jittable)."""

    def coef(j):
        mm = jnp.floor(j / 2.0)
        odd = (j % 2) == 1
        num_odd = -(a + mm) * (a + b + mm) / ((a + 2 * mm) * (a + 2 * mm + 1))
        num_even = mm * (b - mm) / ((a + 2 * mm - 1) * (a + 2 * mm))
        return jnp.where(odd, num_odd, num_even).astype(x.dtype) * x

    def body(i, f):
        j = n_terms - i  # n_terms .. 1
        return 1.0 + coef(jnp.asarray(j, x.dtype)) / f

    f = jax.lax.fori_loop(0, n_terms, body, jnp.ones_like(x))
    return 1.0 / f


def _log_betainc_lower(a: float, b: float, t, n_terms: int):
    """log I_x(a, b) at x = e^t from the continued fraction, valid for x < (a+1)/(a+b+2)."""
    x = jnp.exp(t)
    return a * t + b * jnp.log1p(-x) - (math.log(a) + _lbeta(a, b)) + jnp.log(_betacf(a, b, x, n_terms))


def _log_betainc(a: float, b: float, t):
    """log I_x(a, b) for x = e^t in (0, 1), full relative precision for tiny x (t down to -1e4)."""
    t = jnp.minimum(t, 0.0)
    if b == 1.0:
        return a * t
    if a == 1.0:
        return _log1mexp(b * jnp.log1p(-jnp.exp(t)))
    if a == 2.0 and b == 2.0:  # d = 5: I_x = x^2 (3 - 2x)
        return 2 * t + jnp.log(3.0 - 2.0 * jnp.exp(t))
    k = _cf_terms(a, b)
    switch = (a + 1.0) / (a + b + 2.0)
    low = t < math.log(switch)
    t_lo = jnp.where(low, t, math.log(switch) - 1.0)
    # upper branch: 1 - I_{1-x}(b, a), with 1-x = -expm1(t) (accurate)
    t_hi = jnp.where(low, math.log(switch) + 0.1 * (1.0 - switch), t)
    s_hi = jnp.log(-jnp.expm1(t_hi))  # log(1 - x)
    upper = _log1mexp(jnp.minimum(_log_betainc_lower(b, a, s_hi, k), 0.0))
    return jnp.where(low, _log_betainc_lower(a, b, t_lo, k), upper)


def _log_xdensity(a: float, b: float, t):
    """log(x f(x)) for the Beta(a,b) density f at x = e^t (the derivative of I in t)."""
    return a * t + (b - 1.0) * jnp.log1p(-jnp.exp(jnp.minimum(t, 0.0))) - _lbeta(a, b)


def _solve_log_x(a: float, b: float, lp, iters: int = 40):
    """log x with I_x(a, b) = e^lp, lp <= log(1/2)-ish: safeguarded Newton in t = log x.

    Started from the small-x series x^a / (a B(a,b)); bracketed so each step stays inside
    the current bracket (bisection otherwise). log I is concave in t whenever b >= 1, so
    Newton is monotone after at most one step."""
    t0 = (lp + math.log(a) + _lbeta(a, b)) / a
    t0 = jnp.minimum(t0, -1e-7)
    if b >= 1.0:  # I_x <= x^a / (a B): the series start is a lower bound
        lo = t0 - 1.0
        hi = jnp.zeros_like(t0)
    else:  # I_x >= x^a / (a B): an upper bound
        lo = t0 - 60.0 / a
        hi = t0 + 1e-7
    t = t0

    def body(_, carry):
        t, lo, hi = carry
        li = _log_betainc(a, b, t)
        g = li - lp
        lo = jnp.where(g < 0, t, lo)
        hi = jnp.where(g >= 0, t, hi)
        step = g * jnp.exp(li - _log_xdensity(a, b, t))
        tn = t - step
        ok = (tn >= lo) & (tn <= hi) & jnp.isfinite(tn)
        tn = jnp.where(ok, tn, 0.5 * (lo + hi))
        return tn, lo, hi

    t, _, _ = jax.lax.fori_loop(0, iters, body, (t, lo, hi))
    return t


def _quantile_log_x(a: float, b: float, lp):
    """(log x, log(1-x)) with I_x(a, b) = e^lp; both at full relative precision."""
    lp = jnp.minimum(lp, 0.0)
    if b == 1.0:  # x = p^{1/a} (uniform S^2: u = 2U; PowerLawCap on S^2: u = 2 U^{2/alpha})
        t = lp / a
        return t, _log1mexp(t)
    if a == 1.0:  # 1 - x = (1-p)^{1/b}
        s = _log1mexp(lp) / b
        return _log1mexp(s), s
    half = math.log(0.5)
    low = lp <= half
    lp_lo = jnp.where(low, lp, half)
    lq_hi = _log1mexp(jnp.where(low, half, lp))  # log(1 - p) for the upper branch
    t_lo = _solve_log_x(a, b, lp_lo)
    s_hi = _solve_log_x(b, a, lq_hi)  # log(1 - x), by I_x(a,b) = 1 - I_{1-x}(b,a)
    t = jnp.where(low, t_lo, _log1mexp(s_hi))
    s = jnp.where(low, _log1mexp(t_lo), s_hi)
    return t, s


def gap_quantile(law: KeyLaw, log_p: Float[Array, "..."]) -> Float[Array, "..."]:
    """The gap quantile u = F^{-1}(p) from log p: F(u) = I_{u/2}(a, b) (THEORY a).

    Full relative precision for p down to 1e-300 in float64 (and e^-700 in float32, which is
    why the argument is log p). Closed forms where they exist (b = 1: u = 2 p^{1/a}, so
    u = 2p on S^2; a = 1: u = 2(1 - (1-p)^{1/b})); d = 5 (a = b = 2) inverts x^2 (3 - 2x) = p
    exactly by Newton; otherwise safeguarded Newton on log I_x(a, b) in log x, started from
    the small-x series x^a / (a B(a, b)), with log I_x from a fixed-depth continued fraction
    (and I_x = 1 - I_{1-x}(b, a) above x = (a+1)/(a+b+2)). Jittable; not differentiated.

    >>> import jax.numpy as jnp
    >>> from phasejax.geometry import UniformSphere
    >>> round(float(gap_quantile(UniformSphere(3), jnp.log(1e-30))) / 1e-30, 5)  # u = 2p on S^2
    2.0
    """
    a, b = _beta_law(law, "gap_quantile")
    log_p = jnp.asarray(log_p)
    if not jnp.issubdtype(log_p.dtype, jnp.floating):
        log_p = log_p.astype(jnp.result_type(float))
    if not isinstance(log_p, jax.core.Tracer) and np.any(np.asarray(log_p) > 0):
        raise InputError(f"log_p must be <= 0 (a log probability), got max {float(np.max(log_p))!r}")
    return _gap_quantile(a=a, b=b, log_p=log_p)


@functools.partial(jax.jit, static_argnames=("a", "b"))
def _gap_quantile(a: float, b: float, log_p):
    t, _ = _quantile_log_x(a, b, log_p)
    return 2.0 * jnp.exp(t)


# --------------------------------------------------------------------------- exact variates


def _uniforms_from_bits(bits, dtype):
    """U in (0, 1) from two uint32 words (hi, lo), full relative precision near 0
    (as :func:`phasejax._random.uniform_open`)."""
    two32 = jnp.asarray(2.0**-32, dtype)
    u = (bits[0].astype(dtype) + (bits[1].astype(dtype) + 0.5) * two32) * two32
    return jnp.minimum(u, jnp.asarray(1.0, dtype) - jnp.finfo(dtype).epsneg)


def _exponential(key, shape, dtype):
    """Exp(1) with full relative precision at both ends.

    E = -log U with U = V/2 (prob 1/2, E > log 2) or U = 1 - V/2 (prob 1/2, E < log 2, as
    -log1p(-V/2)), V uniform with full precision near 0: U is exactly uniform, and a small E
    (the nearest key) is not quantised by the spacing of floats near 1. One threefry call."""
    bits = jax.random.bits(key, (3, *shape), dtype=jnp.uint32)
    v = 0.5 * _uniforms_from_bits(bits[:2], dtype)
    upper = (bits[2] & 1) == 1
    return jnp.where(upper, -jnp.log(v), -jnp.log1p(-v))


def _expm1_minus_x(w):
    """e^w - 1 - w without cancellation (series below |w| = 0.5, 16 terms: relative 1e-18)."""
    small = jnp.abs(w) < 0.5
    ws = jnp.where(small, w, 0.0)
    term = 0.5 * ws * ws
    acc = term
    for j in range(3, 18):
        term = term * ws / j
        acc = acc + term
    wl = jnp.where(small, 1.0, w)
    return jnp.where(small, acc, jnp.expm1(wl) - wl)


def _log_gamma_variate(key, shape_k: float, dtype):
    """log G, G ~ Gamma(k) for any k >= 1 (up to 1e300), exactly (Marsaglia-Tsang 2000).

    d = k - 1/3, c = 1/sqrt(9 d), x ~ N(0,1), v = (1 + c x)^3, accept when
    log U < x^2/2 + d (1 - v + log v); G = d v. Written as log G = log d + w, w = 3 log1p(c x),
    with d (1 - v + log v) = -d (e^w - 1 - w) summed without cancellation, so the O(k^{-1/2})
    relative fluctuation of G keeps every digit even when c x is below float epsilon."""
    d = shape_k - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    logd = math.log(d)

    def body(state):
        _, _, i = state
        bits = jax.random.bits(jax.random.fold_in(key, i), (4,), dtype=jnp.uint32)
        un = _uniforms_from_bits(bits[:2], dtype)
        x = jnp.sqrt(jnp.asarray(2.0, dtype)) * jax.scipy.special.erfinv(2.0 * un - 1.0)  # N(0, 1)
        y = c * x
        ok = y > -1.0
        w = 3.0 * jnp.log1p(jnp.where(ok, y, 0.0))
        logu = jnp.log(_uniforms_from_bits(bits[2:], dtype))
        accept = ok & (logu < 0.5 * x * x - d * _expm1_minus_x(w))
        return w, accept, i + 1

    init = (jnp.zeros((), dtype), jnp.asarray(False), jnp.asarray(0, jnp.uint32))
    w, _, _ = jax.lax.while_loop(lambda st: ~st[1], body, init)
    return jnp.asarray(logd, dtype) + w


def _nearest_log_uniforms(key, n: int, m: int, dtype):
    """log U_(1..m), the m smallest of n uniform order statistics, ascending (THEORY a)."""
    ke, kg = jax.random.split(key)
    s = jnp.cumsum(_exponential(ke, (m,), dtype))
    log_g = _log_gamma_variate(kg, float(n) + 1.0 - float(m), dtype)
    log_total = log_g + jnp.log1p(s[-1] * jnp.exp(-log_g))  # log(S_m + G)
    return jnp.minimum(jnp.log(s) - log_total, 0.0)


@functools.partial(jax.jit, static_argnames=("n", "m", "dtype"))
def _nearest_gaps(law, key, n, m, dtype):
    a, b = law.gap_beta_params
    return _gap_quantile(float(a), float(b), _nearest_log_uniforms(key, n, m, dtype))


def nearest_gaps(law: KeyLaw, key: PRNGKeyArray, n: int, m: int, *, dtype=None) -> Float[Array, " m"]:
    """The m smallest of n i.i.d. gaps from ``law``, exactly, ascending, in O(m) for any n.

    THEORY a: E_i iid Exp(1), S_i = E_1 + .. + E_i, G ~ Gamma(n + 1 - m),
    u_(i) = F^{-1}(S_i / (S_m + G)), computed from log U_(i) = log S_i - log(S_m + G) by
    :func:`gap_quantile`. ``n`` may be any integer >= m (1e15 and beyond; a float such as 1e15 is
    accepted); n and m are static. Same law as ``sort(law.sample_gaps(key', n))[:m]``.

    >>> import jax
    >>> from phasejax.geometry import UniformSphere
    >>> u = nearest_gaps(UniformSphere(3), jax.random.key(0), 10**15, 8)
    >>> u.shape, bool(u[0] < 1e-12)
    ((8,), True)
    """
    _beta_law(law, "nearest_gaps")
    n, m = _check_n_m(n, m)
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    return _nearest_gaps(law, key, n, m, dtype)


# --------------------------------------------------------------------------- the bulk


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


_BERRY_ESSEEN = 0.4748


def _bulk_moments(a: float, b: float, log_c, c, d_gap, log_tail, betas, ell, nodes: int):
    """Conditional mean (4, B) and covariance (B, 4, 4) given u > c of
    X = (e^{-beta v}, e^{-beta v} u'', e^{-beta v} u''^2, e^{-2 beta v}), v = u - c, u'' = (u - u_(1))/ell.

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
    log_f = (a - 1.0) * (log_u - log2) + (b - 1.0) * (log_w - log2) - log2 - _lbeta(a, b)
    log_d = jnp.log(jnp.maximum(d_gap, 0.0))  # -inf when m = 1
    log_up = jnp.logaddexp(log_d, log_v) - jnp.log(ell)[:, None]  # log(u'/ell)
    edge = jnp.ones((nodes,), dtype).at[0].set(0.5).at[-1].set(0.5)
    lw = log_f + log_jac + jnp.log(h)[:, None] + jnp.log(edge)[None, :] - log_tail  # log weights (B, G)
    lx0 = -betas[:, None] * jnp.exp(log_v)
    lx = jnp.stack([lx0, lx0 + log_up, lx0 + 2.0 * log_up, 2.0 * lx0])  # log X (4, B, G)
    mean = jnp.sum(jnp.exp(lw + lx), axis=-1)  # (4, B)
    # Without a cut the rule spans the whole support: add its (beta-independent, ~1e-15) defect
    # 1 - sum(w) to the means of e^{-beta v}, e^{-2 beta v} so they are exactly 1 at beta = 0
    # without touching their beta-derivatives. Then the centred covariance is accurate (small
    # beta, where X barely varies). With a cut (e^{-beta v} < e^{-80} beyond it) the centred
    # integrand does not vanish at the cut, but X varies by O(1) and E[XX] - E[X]E[X] is fine.
    centred = (s_hi >= s_top).astype(dtype)  # (B,)
    defect = centred * (1.0 - jnp.sum(jnp.exp(lw), axis=-1))
    mean = jnp.stack([mean[0] + defect, mean[1], mean[2], mean[3] + defect])
    yc = jnp.exp(0.5 * lw + lx) - (centred[:, None] * jnp.exp(0.5 * lw))[None] * mean[:, :, None]
    cov = jnp.einsum("ibg,jbg->bij", yc, yc)
    cov = cov - (1.0 - centred)[:, None, None] * (mean.T[:, :, None] * mean.T[:, None, :])
    return mean, cov


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


def _add_bulk(state: _State, betas, n_bulk: float, log_c, c, log_tail, a, b, xi, nodes):
    """Add the n_bulk keys above u_(m) = c to the shifted sums (mean, plus L xi if xi is given)."""
    u1 = state.m
    d_gap = c - u1
    pos = betas > 0
    ell = jax.lax.stop_gradient(c + jnp.where(pos, jnp.minimum(1.0 / jnp.where(pos, betas, 1.0), 1.0), 1.0))
    mean, cov = _bulk_moments(a, b, log_c, c, d_gap, log_tail, betas, ell, nodes)
    var0 = jnp.maximum(cov[:, 0, 0], 0.0)
    log_n = math.log(n_bulk)
    e1 = jnp.exp(log_n - betas * d_gap)  # N e^{-beta D}
    e2 = jnp.exp(log_n - 2 * betas * d_gap)
    s1 = jnp.exp(0.5 * log_n - betas * d_gap)  # sqrt(N) e^{-beta D}
    s2 = jnp.exp(0.5 * log_n - 2 * betas * d_gap)
    sums = [e1 * mean[0], ell * e1 * mean[1], ell * ell * e1 * mean[2], e2 * mean[3]]
    if xi is not None:
        fl = jnp.einsum("bij,j->bi", _psd_cholesky(cov), xi)  # (B, 4)
        fluct = [s1 * fl[:, 0], ell * s1 * fl[:, 1], ell * ell * s1 * fl[:, 2], s2 * fl[:, 3]]
        sums = [jnp.maximum(x + f, 0.0) for x, f in zip(sums, fluct, strict=True)]
    new = eqx.tree_at(
        lambda s: (s.z, s.z1, s.z2, s.q),
        state,
        (state.z + sums[0], state.z1 + sums[1], state.z2 + sums[2], state.q + sums[3]),
    )
    # diagnostics
    sd_safe = jnp.sqrt(jnp.where(var0 > 0, var0, 1.0))
    clt = jnp.where(var0 > 0, jnp.minimum(_BERRY_ESSEEN / (sd_safe * math.sqrt(n_bulk)), 1.0), 0.0)
    return new, e1 * mean[0], s1 * jnp.where(var0 > 0, sd_safe, 0.0), clt, e1


@functools.partial(
    jax.jit, static_argnames=("n", "m", "top_k", "bulk", "fluctuation", "nodes", "dtype")
)
def _nearest_observables(law, key, betas, n, m, top_k, bulk, fluctuation, nodes, dtype):
    a, b = (float(x) for x in law.gap_beta_params)
    log_uni = _nearest_log_uniforms(key, n, m, dtype)
    t, _ = _quantile_log_x(a, b, log_uni)
    u = 2.0 * jnp.exp(t)
    state = _update(_init_state(betas, top_k, None, dtype), betas, u, jnp.ones((m,), bool))
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
        log_c = math.log(2.0) + t[-1]
        log_tail = _log1mexp(log_uni[-1])  # log(1 - F(u_(m)))
        state, bulk_mean, bulk_sd, clt, _ = _add_bulk(state, betas, n_bulk, log_c, u[-1], log_tail, a, b, xi, nodes)
        z = state.z
        fluct = bulk_sd / z
        frac = bulk_mean / z
        err = fluct * clt if fluctuation else fluct
        bound = jnp.minimum(dropped_abs / z_top, err)
    else:
        frac = fluct = clt = zeros
        bound = dropped_abs / z_top
    trunc = Truncation(dropped=dropped_abs / z_top, bulk_fraction=frac, fluctuation=fluct, clt=clt, bound=bound)
    return _finish(state, betas, top_k), trunc


def nearest_observables_with_bound(
    law: KeyLaw,
    key: PRNGKeyArray,
    n: int,
    betas: Float[Array, " B"],
    *,
    m: int = DEFAULT_M,
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

    conditional expectations given u > u_(m) by quadrature (THEORY a). With ``fluctuation`` the
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
    >>> from phasejax.geometry import UniformSphere
    >>> obs, tr = nearest_observables_with_bound(UniformSphere(3), jax.random.key(0), 10**12,
    ...                                          jnp.array([1e10, 1e12]), m=64)
    >>> bool(tr.bound[1] < 1e-6)
    True
    """
    _beta_law(law, "nearest_observables")
    n, m = _check_n_m(n, m)
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
    n: int,
    betas: Float[Array, " B"],
    *,
    m: int = DEFAULT_M,
    top_k: int = 5,
    bulk: bool = True,
    fluctuation: bool = True,
    nodes: int = DEFAULT_NODES,
) -> Observables:
    """Observables of n keys from ``law`` at cost O(m) independent of n (THEORY a).

    The same fields and meaning as :func:`phasejax.observables.sampled_observables`; see
    :func:`nearest_observables_with_bound` for the method and the truncation error.

    >>> import jax, jax.numpy as jnp
    >>> from phasejax.geometry import UniformSphere
    >>> obs = nearest_observables(UniformSphere(3), jax.random.key(0), 10**15, jnp.array([0.0, 1e17]))
    >>> round(float(obs.max_weight[0]) * 1e15, 6)  # beta = 0: uniform weights 1/n
    1.0
    """
    return nearest_observables_with_bound(
        law, key, n, betas, m=m, top_k=top_k, bulk=bulk, fluctuation=fluctuation, nodes=nodes
    )[0]
