"""Regimes and critical windows of the Poisson limit, and the tail-hazard predictor of beta_peak
(docs/theory.md §c, §d, §h). Host results, float64.

* :func:`critical_window`: the lambdas where chi = d E[max weight]/d log lambda >= level * chi_max (the
  package's one critical window; default the full width at half maximum).
* :func:`max_weight_band`, :func:`regime`, :func:`band_context_lengths`: a band of the Poisson-limit
  E[max weight] (default 0.1 .. 0.9) that names a (beta, n) "sub", "critical" or "super" (a documented
  convenience on top of lambda/lambda* and E[max weight]).
* :func:`poisson_summary`: E[max weight], exp(E H) and 1/E sum w^2 at given lambdas.
* :func:`predict_beta_peak`: beta_peak(n) ~ (kappa*(h)/h) f(u*)/F(u*), F(u*) = 1/n, from any law with a
  ``tail_point(n)`` (:class:`TailPoint`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .._checks import InputError, check_lengths, check_real
from .._numerics.arrays import HOST
from .._numerics.peak import chebyshev
from .poisson import _ppp, _ppp_summary, lambda_star

__all__ = [
    "poisson_summary",
    "CriticalWindow",
    "critical_window",
    "TailPoint",
    "TailFromCDF",
    "tail_at_quantile",
    "kappa_star_over_h",
    "predict_beta_peak",
    "max_weight_band",
    "Regime",
    "regime",
    "band_context_lengths",
]


_LOG_RHO_MAX = 600.0


@functools.lru_cache(maxsize=65536)
def _summary_at(h: float, log_rho: float) -> tuple[float, float, float]:
    return _ppp_summary(h, log_rho)


def poisson_summary(alpha: float, C: float, lam) -> dict:  # noqa: N803
    """Poisson-limit E[max weight], effective keys exp(E H) and 1/E sum w^2 at lambda (docs/theory.md §c).

    rho = C lambda^{-h}, h = alpha/2. ``lam`` of any shape (> 0); float64 arrays of that shape, computed on
    the host. log rho is clipped to [-600, 600] (there E[max weight] is 1 or 0 to double precision);
    ``clipped`` marks those entries. These are n = infinity values: at fixed n they hold when the effective
    keys are << n (deep subcritical, exp(E H) > n means the n keys are all used: read
    :func:`phasejax.theory.effective_keys_limit` instead).

    >>> s = poisson_summary(2.0, 0.5, 1.0)
    >>> round(float(s["E_max_weight"]), 6)
    0.729488
    """
    alpha = check_real("alpha", alpha, positive=True)
    C = check_real("C", C, positive=True)  # noqa: N806
    lam = np.asarray(lam, dtype=np.float64)
    if np.any(~np.isfinite(lam)) or np.any(lam <= 0):
        raise InputError("lam must be finite and > 0")
    h = alpha / 2.0
    log_rho = math.log(C) - h * np.log(lam)
    clipped = np.abs(log_rho) > _LOG_RHO_MAX
    lr = np.clip(log_rho, -_LOG_RHO_MAX, _LOG_RHO_MAX)
    vals = np.array([_summary_at(h, float(x)) for x in lr.ravel()]).reshape(*lam.shape, 3)
    ew, eh, s2 = vals[..., 0], vals[..., 1], vals[..., 2]
    return {
        "lambda": lam,
        "rho": np.exp(log_rho),
        "E_max_weight": ew,
        "effective_keys": np.exp(eh),
        "inv_sum_w2": np.divide(1.0, s2, out=np.full_like(s2, np.inf), where=s2 > 0),
        "clipped": clipped,
    }


class CriticalWindow(NamedTuple):
    """The Poisson-limit critical window: chi >= level * chi_max, as lambda/lambda* in [lo, hi]."""

    lambda_star: float
    lo: float  # lambda/lambda* at the lower edge
    hi: float  # lambda/lambda* at the upper edge
    E_lo: float  # E[max weight] at the edges and at the peak
    E_hi: float
    E_star: float
    chi_max: float
    level: float
    h: float
    C: float
    definition: str


@functools.cache
def _window_cached(h: float, C: float, level: float):  # noqa: N803
    from scipy.optimize import brentq

    ls = lambda_star(alpha=2 * h, C=C)
    span = max(3.0, 3.0 / h)  # log(lambda/lambda*); the window lies well inside
    # E[max weight] as a function of x = log(lambda/lambda*), on the host; chi = dE/dx from its interpolant
    p = chebyshev(lambda x: _ppp(h, np.float64(math.log(ls.rho_star) - h * x), 0, HOST), -span, span, 96)
    chi = p.deriv(1)
    cmax = ls.chi_max
    grid = np.linspace(-span, span, 961)
    inside = chi(grid) >= level * cmax
    i0 = int(np.argmax(inside))
    i1 = len(grid) - 1 - int(np.argmax(inside[::-1]))
    if i0 == 0 or i1 == len(grid) - 1:
        raise InputError(f"critical_window: the half-maximum is outside the scanned range for h = {h}")
    xl = brentq(lambda v: float(chi(v)) - level * cmax, grid[i0 - 1], grid[i0], xtol=1e-13)
    xh = brentq(lambda v: float(chi(v)) - level * cmax, grid[i1], grid[i1 + 1], xtol=1e-13)
    return CriticalWindow(
        ls.lambda_star, math.exp(xl), math.exp(xh), float(p(xl)), float(p(xh)), ls.E_max_weight, cmax, level, h,
        C, f"Poisson-limit chi = dE[max weight]/dlog lambda >= {level:g} chi_max",
    )


def critical_window(alpha: float, C: float, *, level: float = 0.5) -> CriticalWindow:  # noqa: N803
    """The critical window of the Poisson limit: chi(lambda) >= level chi_max (default: FWHM).

    chi = d E[W_(1)]/d log lambda with E[W_(1)] at rho = C lambda^{-h} (docs/theory.md §c), on the host in
    float64: chi is the derivative of a degree-96 Chebyshev interpolant of E[W_(1)](log lambda) and the
    edges its level crossings (Brent, 1e-13). Only the position (lambda*)
    depends on C; lo, hi and E at the edges depend on h = alpha/2 only.

    >>> w = critical_window(2.0, 0.5)
    >>> 0.1 < w.lo < 1 < w.hi < 10
    True
    """
    alpha = check_real("alpha", alpha, positive=True)
    C = check_real("C", C, positive=True)  # noqa: N806
    level = check_real("level", level, minimum=0.01, maximum=0.99)
    return _window_cached(alpha / 2.0, C, level)


class TailPoint(NamedTuple):
    """The gap law at its 1/n quantile: u* (F(u*) = 1/n), hazard f(u*)/F(u*), local exponent u* f/F.

    For score laws without an endpoint (GaussianScores) ``u_star`` is the threshold score
    t* - mean (P(score > t*) = 1/n) and ``h_local`` is infinity."""

    n: float
    u_star: float
    hazard: float
    h_local: float


class TailFromCDF(NamedTuple):
    """Any gap law given by its log CDF and log density on (0, u_max) (host callables, float64).

    ``h``: the exponent used in kappa*(h)/h (the law's local exponent at 0; math.inf for a
    Gumbel-type tail). The 1/n quantile is found by Brent's method on log F(u) = -log n.
    """

    log_cdf: object
    log_density: object
    h: float
    u_max: float = 2.0

    def tail_point(self, n) -> TailPoint:
        from scipy.optimize import brentq

        target = -math.log(float(n))
        lo, hi = self.u_max * 1e-300, self.u_max
        u = brentq(lambda v: float(self.log_cdf(v)) - target, lo, hi, xtol=1e-300, rtol=1e-14, maxiter=500)
        hz = math.exp(float(self.log_density(u)) - target)
        return TailPoint(float(n), u, hz, u * hz)


def tail_at_quantile(law, n) -> TailPoint:
    """The gap law of ``law`` at its 1/n quantile: u*, the hazard f(u*)/F(u*), and u* f/F.

    ``law``: anything with a ``tail_point(n)`` method: the gap laws of :mod:`phasejax.laws` (UniformSphere,
    PowerLawCap, Subsphere: exact incomplete-Beta inverse; GaussianScores), :class:`TailFromCDF`, or a
    fitted tail (:class:`phasejax.estimate.ScoreTailFit`). For F = C u^h the hazard is h/u* exactly.

    >>> tp = tail_at_quantile(TailFromCDF(lambda u: math.log(u / 2), lambda u: -math.log(2.0), 1.0), 1e4)
    >>> round(tp.u_star, 12), round(tp.hazard, 6)  # uniform S^2: F(u) = u/2
    (0.0002, 5000.0)
    """
    n = check_real("n", n, minimum=1.0)
    if not hasattr(law, "tail_point"):
        raise InputError(f"law must have a tail_point(n) method (a gap law, GaussianScores or TailFromCDF); "
                         f"got {law!r}")
    return law.tail_point(n)


_KAPPA_H_MAX = 64.0


@functools.cache
def kappa_star_over_h(h: float) -> float:
    """kappa*(h)/h, kappa*(h) = lambda* C^{-1/h} = rho*(h)^{-1/h} (the peak for mean measure z^h).

    From ``theory.lambda_star(alpha=2h, C=1)``. h = inf (Gaussian / Gumbel tails) gives the
    random-energy limit 1 (the peak sits at the freezing point m = beta_c/beta = 1, docs/theory.md §h).
    For h > 64 the Poisson quadrature's rho* underflows (rho* ~ e^{-h log h}); there the limit 1
    is used (the computed values are 0.979, 0.994, 1.005 at h = 16, 31.5, 64).

    >>> round(kappa_star_over_h(1.0), 6)  # lambda*(d=3) / C_3 = 0.3814472 / 0.5
    0.762894
    """
    h = float(h)
    if math.isinf(h) or h > _KAPPA_H_MAX:
        if h <= 0:
            raise InputError(f"h must be > 0, got {h!r}")
        return 1.0
    h = check_real("h", h, positive=True)
    return lambda_star(alpha=2.0 * h, C=1.0).lambda_star / h


def _resolve_h(law, h, tp: TailPoint) -> float:
    if h is None:
        if hasattr(law, "gap_beta_params"):
            return float(law.alpha) / 2.0
        return float(getattr(law, "h", math.inf))
    if h == "local":
        return tp.h_local
    return check_real("h", h, positive=True) if not (isinstance(h, float) and math.isinf(h)) else h


def predict_beta_peak(n, law, *, h=None) -> np.ndarray | float:
    """The universal predictor beta_peak(n) ~ (kappa*(h)/h) f(u*)/F(u*), F(u*) = 1/n (docs/theory.md §h).

    ``h``: None (the law's local exponent at the query, alpha/2; infinity for Gaussian scores),
    ``"local"`` (the exponent u* f(u*)/F(u*) of the law *at* u*), or a number. Returns a float64
    array of the shape of ``n``. Reduces to lambda* n^{2/alpha} for F = C u^h and to the upper-tail
    hazard at the 1/n quantile (~ sqrt(2 log n)/sigma) for Gaussian scores.

    >>> uniform_s2 = TailFromCDF(lambda u: math.log(u / 2), lambda u: -math.log(2.0), 1.0)  # F(u) = u/2
    >>> round(float(predict_beta_peak(1e4, uniform_s2)) / 1e4, 6)  # lambda*(3) n
    0.381447
    """
    ns = check_lengths("n", n)
    out = []
    for nn in ns:
        tp = tail_at_quantile(law, nn)
        hh = _resolve_h(law, h, tp)
        out.append(kappa_star_over_h(round(hh, 6) if math.isfinite(hh) else hh) * tp.hazard)
    res = np.array(out)
    return res.reshape(np.shape(n)) if np.ndim(n) else res[0]


DEFAULT_BAND = (0.1, 0.9)


@functools.lru_cache(maxsize=256)
def _lambda_at_ew(h: float, C: float, target: float) -> float:  # noqa: N803
    """lambda with Poisson-limit E[max weight] = target (E_W rises with lambda): bisection in log rho."""
    from scipy.optimize import brentq

    def f(lr):
        return float(_ppp(h, np.float64(lr), 0, HOST)) - target

    lo, hi = -20.0, 20.0
    while f(lo) < 0 and lo > -200:
        lo -= 20.0
    while f(hi) > 0 and hi < 200:
        hi += 20.0
    lr = brentq(f, lo, hi, xtol=1e-10)
    return float((C / math.exp(lr)) ** (1 / h))


def max_weight_band(alpha: float, C: float, band: Sequence[float] = DEFAULT_BAND) -> tuple[float, float]:  # noqa: N803
    """(lambda_lo, lambda_hi) with Poisson-limit E[max weight] = band[0], band[1] (docs/theory.md §c, §d).

    rho = C lambda^{-h}; E_W(rho) from :func:`phasejax.theory.poisson_expected_max_weight`, solved by Brent
    in log rho. :func:`regime` calls lambda_lo <= beta / n^{2/alpha} <= lambda_hi "critical". This is a band
    of E[max weight] (default 0.1 to 0.9), for classifying a (beta, n); the package's *critical band*,
    defined by the susceptibility (chi >= chi_max/2), is :func:`critical_window`.

    >>> lo, hi = max_weight_band(2.0, 0.5)
    >>> lo < 0.3814 < hi
    True
    """
    alpha = check_real("alpha", alpha, positive=True)
    C = check_real("C", C, positive=True)  # noqa: N806
    w0, w1 = (check_real("band", w, minimum=0.0, maximum=1.0) for w in band)
    if not 0 < w0 < w1 < 1:
        raise InputError(f"band must satisfy 0 < low < high < 1 (E[max weight]), got {tuple(band)}")
    h = alpha / 2
    return _lambda_at_ew(h, C, w0), _lambda_at_ew(h, C, w1)


class Regime(NamedTuple):
    """Where (beta, n) sits: lambda = beta/n^{2/alpha}, lambda/lambda*, Poisson-limit E[max weight], name."""

    n: np.ndarray
    beta: np.ndarray
    lam: np.ndarray
    lambda_ratio: np.ndarray
    E_max_weight: np.ndarray
    name: tuple
    lambda_star: float
    band: tuple[float, float]
    lambda_band: tuple[float, float]


def regime(beta, n, alpha: float, C: float, *, band: Sequence[float] = DEFAULT_BAND) -> Regime:  # noqa: N803
    """The regime of inverse temperature ``beta`` at context length(s) ``n`` (docs/theory.md §c, §d; DESIGN).

    lambda = beta / n^{2/alpha}, rho = C lambda^{-alpha/2}, E_W = Poisson-limit E[max weight];
    name = "sub" if E_W < band[0], "super" if E_W > band[1], else "critical".

    >>> r = regime(10.0, [2, 50, 1e4], 2.0, 0.5)   # S^2: critical for 3 <~ n <~ 190
    >>> r.name
    ('super', 'critical', 'sub')
    """
    alpha = check_real("alpha", alpha, positive=True)
    C = check_real("C", C, positive=True)  # noqa: N806
    b, nn = np.broadcast_arrays(np.asarray(beta, np.float64), np.asarray(n, np.float64))
    if np.any(~np.isfinite(b)) or np.any(b <= 0):
        raise InputError("beta must be finite and > 0")
    if np.any(nn < 1):
        raise InputError("n must be >= 1")
    h = alpha / 2
    log_lam = np.log(b) - np.log(nn) / h  # in log space: lambda itself may underflow (beta = 5e-324)
    lam = np.exp(log_lam)
    log_rho = math.log(C) - h * log_lam
    if np.any(np.abs(log_rho) > 7e2):
        raise InputError(f"beta = {float(np.min(b)):.4g}..{float(np.max(b)):.4g} at n = {float(np.min(nn)):.4g}.."
                         f"{float(np.max(nn)):.4g} puts rho = C lambda^(-alpha/2) beyond float64 (|log rho| up to "
                         f"{float(np.max(np.abs(log_rho))):.4g} > 700): far outside the critical window; use a beta "
                         "nearer lambda* n^(2/alpha)")
    lo, hi = max_weight_band(alpha, C, band)
    ew = np.array([_ppp(h, np.float64(x), 0, HOST) for x in np.ravel(log_rho)])
    ew = ew.reshape(lam.shape)
    names = tuple("sub" if x < lo else ("super" if x > hi else "critical") for x in lam.ravel())
    ls = float(lambda_star(alpha=alpha, C=C).lambda_star)
    return Regime(n=nn, beta=b, lam=lam, lambda_ratio=lam / ls, E_max_weight=ew, name=names, lambda_star=ls,
                  band=(float(band[0]), float(band[1])), lambda_band=(lo, hi))


def band_context_lengths(beta: float, alpha: float, C: float, *, band=DEFAULT_BAND) -> tuple[float, float]:  # noqa: N803
    """(n_enter, n_exit): a fixed beta is critical for n_enter <= n <= n_exit (super below, sub above).

    n = (beta / lambda)^{alpha/2} at the band edges lambda_hi (enter) and lambda_lo (exit).

    >>> n_in, n_out = band_context_lengths(10.0, 2.0, 0.5)
    >>> n_in < 50 < n_out
    True
    """
    beta = check_real("beta", beta, positive=True)
    lo, hi = max_weight_band(alpha, C, band)
    return (beta / hi) ** (alpha / 2), (beta / lo) ** (alpha / 2)
