"""Special functions in log space: log(1 - e^x), log Beta, the regularised incomplete Beta and its quantile.

The incomplete Beta I_x(a, b) is the CDF of every gap law of phasejax (u/2 ~ Beta(a, b); docs/theory.md §a).
:func:`log_betainc` and :func:`beta_quantile_log` are jittable JAX functions with full relative precision for
x down to e^-1e4 (the nearest of 1e15 keys and beyond), used inside the nearest-m sampler;
:func:`beta_quantile_host` is the host (NumPy/SciPy, float64) quantile used for the top energies of the exact
finite-n integrals and the 1/n quantiles of the predictor. ``a`` and ``b`` are static Python floats.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["log1mexp", "lbeta", "log_betainc", "beta_quantile_log", "beta_quantile_host"]


def log1mexp(x):
    """log(1 - e^x) for x <= 0, accurate everywhere (Maechler 2012)."""
    x = jnp.minimum(x, 0.0)
    near = x > -math.log(2.0)
    xs_near = jnp.where(near, x, -1.0)
    xs_far = jnp.where(near, -1.0, x)
    return jnp.where(near, jnp.log(-jnp.expm1(xs_near)), jnp.log1p(-jnp.exp(xs_far)))


def lbeta(a: float, b: float) -> float:
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
    return a * t + b * jnp.log1p(-x) - (math.log(a) + lbeta(a, b)) + jnp.log(_betacf(a, b, x, n_terms))


def log_betainc(a: float, b: float, t):
    """log I_x(a, b) for x = e^t in (0, 1), full relative precision for tiny x (t down to -1e4)."""
    t = jnp.minimum(t, 0.0)
    if b == 1.0:
        return a * t
    if a == 1.0:  # 1 - (1 - x)^b; below x = e^-40 it is b x (1 + O(b x)) to full precision (and e^t may underflow)
        tiny = t < -40.0
        big = log1mexp(b * jnp.log1p(-jnp.exp(jnp.where(tiny, -40.0, t))))
        return jnp.where(tiny, math.log(b) + t, big)
    if a == 2.0 and b == 2.0:  # d = 5: I_x = x^2 (3 - 2x)
        return 2 * t + jnp.log(3.0 - 2.0 * jnp.exp(t))
    k = _cf_terms(a, b)
    switch = (a + 1.0) / (a + b + 2.0)
    low = t < math.log(switch)
    t_lo = jnp.where(low, t, math.log(switch) - 1.0)
    # upper branch: 1 - I_{1-x}(b, a), with 1-x = -expm1(t) (accurate)
    t_hi = jnp.where(low, math.log(switch) + 0.1 * (1.0 - switch), t)
    s_hi = jnp.log(-jnp.expm1(t_hi))  # log(1 - x)
    upper = log1mexp(jnp.minimum(_log_betainc_lower(b, a, s_hi, k), 0.0))
    return jnp.where(low, _log_betainc_lower(a, b, t_lo, k), upper)


def _log_xdensity(a: float, b: float, t):
    """log(x f(x)) for the Beta(a,b) density f at x = e^t (the derivative of I in t)."""
    return a * t + (b - 1.0) * jnp.log1p(-jnp.exp(jnp.minimum(t, 0.0))) - lbeta(a, b)


def _solve_log_x(a: float, b: float, lp, iters: int = 40):
    """log x with I_x(a, b) = e^lp, lp <= log(1/2)-ish: safeguarded Newton in t = log x.

    Started from the small-x series x^a / (a B(a,b)); bracketed so each step stays inside
    the current bracket (bisection otherwise). log I is concave in t whenever b >= 1, so
    Newton is monotone after at most one step."""
    t0 = (lp + math.log(a) + lbeta(a, b)) / a
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
        li = log_betainc(a, b, t)
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


def beta_quantile_log(a: float, b: float, lp):
    """(log x, log(1-x)) with I_x(a, b) = e^lp; both at full relative precision."""
    lp = jnp.minimum(lp, 0.0)
    if b == 1.0:  # x = p^{1/a} (uniform S^2: u = 2U; PowerLawCap on S^2: u = 2 U^{2/alpha})
        t = lp / a
        return t, log1mexp(t)
    if a == 1.0:  # 1 - x = (1-p)^{1/b}; below p = e^-40, x = p/b (1 + O(p)) and log(1 - p) may underflow
        tiny = lp < -40.0
        s = log1mexp(jnp.where(tiny, -40.0, lp)) / b
        t = jnp.where(tiny, lp - math.log(b), log1mexp(s))
        return t, jnp.where(tiny, -jnp.exp(t), s)
    half = math.log(0.5)
    low = lp <= half
    lp_lo = jnp.where(low, lp, half)
    lq_hi = log1mexp(jnp.where(low, half, lp))  # log(1 - p) for the upper branch
    t_lo = _solve_log_x(a, b, lp_lo)
    s_hi = _solve_log_x(b, a, lq_hi)  # log(1 - x), by I_x(a,b) = 1 - I_{1-x}(b,a)
    t = jnp.where(low, t_lo, log1mexp(s_hi))
    s = jnp.where(low, log1mexp(t_lo), s_hi)
    return t, s


def _host_log_betainc(a: float, b: float, t):
    """log I_x(a, b) at x = e^t on the host (float64): SciPy's ``betainc`` where it keeps its relative precision,
    the series x^a/(a B(a, b)) (1 - a (b - 1) x/(a + 1) + O(x^2)) below x = 1e-8 (relative error < 1e-15 there)."""
    from scipy import special as sps

    t = np.minimum(np.asarray(t, np.float64), 0.0)
    x = np.exp(t)
    series = a * t - math.log(a) - lbeta(a, b) + np.log1p(-a * (b - 1.0) * np.minimum(x, 1e-8) / (a + 1.0))
    with np.errstate(divide="ignore"):
        direct = np.log(sps.betainc(a, b, x))
    return np.where((x < 1e-8) | ~np.isfinite(direct), series, direct)


def beta_quantile_host(a: float, b: float, log_p):
    """x with I_x(a, b) = p, from log p, on the host in float64 (the one host Beta quantile of the package).

    Started from SciPy's ``betaincinv`` (or, where it underflows, the small-x series x^a / (a B(a, b)) = p), then
    Newton steps in t = log x on log I_x(a, b) = log p, with log I from :func:`_host_log_betainc`: x keeps its
    full relative precision for any p down to the smallest float (and is 0 only where x itself underflows).

    >>> from scipy.special import betaincinv
    >>> bool(abs(beta_quantile_host(1.0, 3.5, math.log(1e-300)) / betaincinv(1.0, 3.5, 1e-300) - 1) < 1e-12)
    True
    """
    from scipy import special as sps

    lp = np.minimum(np.asarray(log_p, np.float64), 0.0)
    lb = lbeta(a, b)
    with np.errstate(divide="ignore"):
        t = np.log(np.asarray(sps.betaincinv(a, b, np.exp(lp)), np.float64))
    t = np.where(np.isfinite(t), t, (lp + math.log(a) + lb) / a)  # small-x series start
    for _ in range(6):
        lf = _host_log_betainc(a, b, t)
        # d log I / dt = x f(x) / I, f the Beta density: log(x f(x)) = a t + (b - 1) log(1 - x) - log B
        ld = a * t + (b - 1.0) * np.log1p(-np.minimum(np.exp(t), 1.0 - 1e-16)) - lb
        t = np.minimum(t - (lf - lp) * np.exp(lf - ld), 0.0)
    return np.exp(t)
