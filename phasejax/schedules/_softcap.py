"""The critical scale of a soft-capped head (docs/theory.md §j).

With the cap f(x) = cap tanh(x / cap) on the scaled logit x = beta t, the weights are proportional to
exp(f(beta t)). Near the top logit x_top = beta t_top (t_top = 1 - u_(1) -> 1 for a query among uniform
keys) the exponent is linear in the gap, f(beta (t_top - v)) = f(x_top) - beta f'(x_top) v + O(v^2), so the
capped head acts as an uncapped one at the effective inverse temperature

    beta_eff = beta f'(beta t_top) = beta sech^2(beta t_top / cap).

beta_eff rises, peaks at beta = y* cap (2 y* tanh y* = 1, y* = 0.771702) with the value
cap (y* - 1/(4 y*)) = 0.447743 cap, and falls back to 0: a capped head is most selective at one finite beta and
spreads out again beyond it (at beta >> cap every key with t > 0 reaches the cap). In the critical
scaling lambda_eff = beta_eff / n^{2/alpha} <= 0.447743 cap / n^{2/alpha}, so the head can reach the
susceptibility peak lambda* only while n <= (0.447743 cap / lambda*)^{alpha/2}.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .._checks import InputError, check_real
from .._numerics.arrays import namespace
from ..theory.poisson import lambda_star as _lambda_star

__all__ = ["SOFT_CAP_Y_STAR", "SoftCapPhase", "soft_cap_effective_beta", "soft_cap_phase"]


def _y_star() -> float:
    # root of 2 y tanh y = 1 by Newton from 0.77 (converges in a few steps; float64)
    y = 0.77
    for _ in range(50):
        t = math.tanh(y)
        g = 2 * y * t - 1
        y_new = y - g / (2 * t + 2 * y * (1 - t * t))
        if abs(y_new - y) < 1e-16:
            break
        y = y_new
    return y_new


#: y* = argmax_y y sech^2 y, the root of 2 y tanh y = 1 (beta at the most selective point / cap).
SOFT_CAP_Y_STAR = _y_star()
_ETA_MAX = SOFT_CAP_Y_STAR - 1.0 / (4.0 * SOFT_CAP_Y_STAR)  # max_y y sech^2 y = y* (1 - tanh^2 y*)


def soft_cap_effective_beta(beta, *, cap, t_top=1.0):
    """beta_eff = beta f'(beta t_top) = beta sech^2(beta t_top / cap), the slope of the capped logit at the top.

    The capped head with weights proportional to exp(cap tanh(beta t / cap)) is, near its largest logit
    beta t_top, an uncapped head at beta_eff (docs/theory.md §j; t_top = 1 for a query among uniform
    keys, the sphere's default). sech^2 is computed as 4 e^{-2|x|} / (1 + e^{-2|x|})^2 (no overflow).
    ``beta`` a number or array (host float64; a JAX array stays on the device, its dtype).

    >>> round(float(soft_cap_effective_beta(0.771702 * 50.0, cap=50.0)), 4)  # the largest: 0.447743 cap
    22.3872
    >>> float(soft_cap_effective_beta(1e4, cap=50.0)) < 1e-100  # saturated: every key at the cap
    True
    """
    c = check_real("cap", cap, positive=True)
    t = check_real("t_top", t_top, positive=True, maximum=1.0)
    ns = namespace(beta)
    b = ns.asarray(beta)
    e = ns.xp.exp(-2.0 * ns.xp.abs(b * t / c))
    return b * 4.0 * e / (1.0 + e) ** 2


class SoftCapPhase(NamedTuple):
    """Where a head with soft cap ``cap`` can sit on the phase diagram of a key law (alpha, C).

    ``beta_at_max`` = y* cap and ``beta_eff_max`` = 0.447743 cap: the most selective beta and its
    beta_eff; ``n_selective_max`` = (beta_eff_max / lambda*)^{alpha/2}: the largest n at which beta_eff can
    reach the Poisson-limit peak lambda* n^{2/alpha}. With ``n``: ``lambda_eff_max`` = beta_eff_max /
    n^{2/alpha} (as a ratio to lambda*: ``lambda_ratio_max``) and ``beta_critical`` = the two beta with
    beta_eff(beta) = lambda* n^{2/alpha}, (rising, falling branch), or None past n_selective_max.
    """

    cap: float
    alpha: float
    C: float
    lambda_star: float
    beta_at_max: float
    beta_eff_max: float
    n_selective_max: float
    n: float | None = None
    lambda_eff_max: float | None = None
    lambda_ratio_max: float | None = None
    beta_critical: tuple[float, float] | None = None


def _log_eta(y: float) -> float:
    # log(y sech^2 y) for y > 0
    return math.log(y) - 2.0 * (y + math.log1p(math.exp(-2.0 * y)) - math.log(2.0))


def _solve(target: float, lo: float, hi: float) -> float:
    # bisection of log(y sech^2 y) = log target on [lo, hi] (monotone there), to float64 resolution
    lt = math.log(target)
    f_lo = _log_eta(lo) - lt
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        f_mid = _log_eta(mid) - lt
        if (f_mid > 0) == (f_lo > 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * hi:
            break
    return 0.5 * (lo + hi)


def soft_cap_phase(cap, *, n=None, d=None, alpha=None, C=None) -> SoftCapPhase:  # noqa: N803 (C: the sheet's name)
    """The critical scale of a head with soft cap ``cap`` (docs/theory.md §j), host float64.

    beta_eff(beta) = beta sech^2(beta / cap) <= 0.447743 cap (at beta = 0.771702 cap), so in the critical
    scaling lambda_eff = beta_eff / n^{2/alpha} <= 0.447743 cap / n^{2/alpha}: the head reaches the
    susceptibility peak lambda* (:func:`phasejax.theory.lambda_star` of ``d`` or ``alpha``, ``C``) only for
    n <= (0.447743 cap / lambda*)^{alpha/2}; beyond, it is subcritical (spread over many keys) at every
    beta. Holds where the linearisation at the query holds: the curvature of the capped exponent over the
    competing keys (beta_eff u ~ 1) is sinh(2 beta / cap) / (2 cap) relative, small for beta <~ cap.

    >>> p = soft_cap_phase(50.0, d=3, n=1000)
    >>> round(p.beta_eff_max, 4), round(p.n_selective_max, 2), p.beta_critical is None
    (22.3872, 58.69, True)
    >>> q = soft_cap_phase(50.0, d=3, n=40)
    >>> [round(b, 3) for b in q.beta_critical]  # beta_eff = lambda* n on the rising and the falling branch
    [17.117, 69.602]
    """
    c = check_real("cap", cap, positive=True)
    if d is None and alpha is None:
        raise InputError("soft_cap_phase needs d (uniform keys on S^(d-1)) or alpha (with C); got neither")
    ls = _lambda_star(d, alpha=alpha, C=C)
    a = 2.0 * ls.h
    b_max, eta_max = SOFT_CAP_Y_STAR * c, _ETA_MAX * c
    n_max = (eta_max / ls.lambda_star) ** (a / 2.0)
    if n is None:
        return SoftCapPhase(c, a, ls.C, ls.lambda_star, b_max, eta_max, n_max)
    n = check_real("n", n, minimum=1.0)
    scale = n ** (2.0 / a)
    lam_max = eta_max / scale
    crit = None
    target = ls.lambda_star * scale / c  # y sech^2 y = target
    if target <= _ETA_MAX:
        hi = 2.0
        while _log_eta(hi) > math.log(target):
            hi *= 2.0
        crit = (c * _solve(target, 1e-300, SOFT_CAP_Y_STAR) if target < _ETA_MAX else b_max,
                c * _solve(target, SOFT_CAP_Y_STAR, hi) if target < _ETA_MAX else b_max)
    return SoftCapPhase(c, a, ls.C, ls.lambda_star, b_max, eta_max, n_max, float(n), lam_max,
                        lam_max / ls.lambda_star, None if crit is None else (float(crit[0]), float(crit[1])))

