"""The phase diagram of a key law in the (n, beta) plane, schedules on it, and a critical-beta predictor.

Three things (docs/theory.md §c, §d, §h):

1. **Phase diagram.** For a key law with local exponent alpha and constant C
   (P(u <= s) ~ C s^{alpha/2}; from d, from (alpha, C), from empirical keys through a Hill
   estimate, or from a row of scores through a tail fit), the Poisson limit makes E[max weight]
   a function of lambda = beta / n^{2/alpha} alone: E W_(1)(h, rho = C lambda^{-h}), h = alpha/2.
   :func:`phase_diagram` colours a log-log (n, beta) grid by it and draws
   beta_peak(n) = lambda* n^{2/alpha} and the critical window.
   **Window** (:func:`critical_window`): the lambdas where the Poisson-limit susceptibility
   chi = d E[W_(1)]/d log lambda is at least half its maximum (full width at half maximum), reported
   as lambda/lambda* in [lo, hi]. For d = 3 it is about [0.2, 4.6] x lambda*, i.e. E[max weight]
   from about 0.13 to 0.85. **Where finite-n corrections matter:** the Poisson limit needs
   log n >> (d-1)/2 on the sphere (docs/theory.md §h, crossover); for d = 64 and n <= 1e7 the measured peak is
   far from lambda* n^{2/63} (use the exact finite-n values, ``theory.exact_beta_peak``, or the
   predictor below, which follows them).
2. **Schedules on it.** :func:`schedule_table` gives, for each schedule of
   :mod:`phasejax.schedules` at each n, lambda(n)/lambda*, the Poisson-limit E[max weight] and the
   effective keys exp(E H) and 1/E sum w^2; :func:`leaves_window_at` the context length where a
   schedule leaves the window.
3. **Universal predictor (an empirical claim, tested in experiments/schedules_phase.py).**
   beta_peak(n) ~ (kappa*(h)/h) f(u*)/F(u*), F(u*) = 1/n: the hazard of the gap law at its 1/n
   quantile, with kappa*(h) = lambda* C^{-1/h} = rho*(h)^{-1/h} the Poisson-limit peak in units
   where the mean measure is z^h (:func:`kappa_star_over_h`). Exactly lambda* n^{2/alpha} when
   F = C u^h; for scores with an unbounded Gaussian upper tail (h = infinity, kappa*/h -> 1) it is
   the upper-tail hazard at the 1/n quantile ~ sqrt(2 log n)/sigma = beta_c (docs/theory.md §h, REM).

Shape contracts: ``n`` may be a scalar or 1-D array; per-n results have shape (N,); a phase
diagram's colour array is (B, N) (beta rows, n columns); schedule tables are dicts of (S, N)
arrays, S schedules. Host-level functions return NumPy float64 and compute in float64 on the host,
whatever JAX's dtype setting.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ._checks import InputError, check_array, check_int, check_lengths, check_real
from .estimate.tail import estimate_tail, fit_score_tail
from .laws.scores import GaussianScores
from .schedules import SCHEDULE_NAMES, schedule_beta
from .theory.regimes import CriticalWindow, critical_window, poisson_summary, predict_beta_peak

__all__ = [
    "LawConstants",
    "law_constants",
    "PhaseDiagram",
    "phase_diagram",
    "schedule_betas",
    "schedule_table",
    "leaves_window_at",
    "measured_peak",
]


class LawConstants(NamedTuple):
    """Local law of the gap, P(u <= s) ~ C s^{alpha/2}, and where it came from."""

    alpha: float
    C: float
    alpha_se: float  # 0 for exact laws
    source: str

    @property
    def h(self) -> float:
        return self.alpha / 2.0


def law_constants(law=None, *, d=None, alpha=None, C=None, keys=None, query=None, scores=None, k=None):
    """(alpha, C) of a key law, from exactly one of: a ``KeyLaw``; ``d`` (uniform S^{d-1});
    ``alpha`` (with ``C``, default the PowerLawCap value, on S^{d-1} if ``d`` is given too);
    empirical ``keys`` with a ``query`` (:func:`phasejax.estimate.estimate_tail`: pooled Hill with a
    goodness-of-fit choice of k); or a row of
    ``scores`` (logits; generalised-Pareto tail fit, see :func:`fit_score_tail`; the gap is
    then the distance below the fitted upper endpoint, in the scores' units, so beta multiplies
    those scores).

    >>> law_constants(d=3)
    LawConstants(alpha=2.0, C=0.5, alpha_se=0.0, source='UniformSphere(d=3)')
    """
    from . import theory

    given = [x is not None for x in (law, keys, scores)]
    if sum(given) > 1:
        raise InputError("law_constants: give one of law, keys or scores (got several)")
    if law is not None:
        se = float(getattr(law, "alpha_se", 0.0)) if type(law).__name__ == "Empirical" else 0.0
        return LawConstants(float(law.alpha), float(law.C), se, _law_name(law))
    if keys is not None:
        if query is None:
            raise InputError("law_constants: keys need a query (the gaps are measured from it)")
        fit = estimate_tail(keys, query)[0]
        return LawConstants(float(fit.alpha), float(fit.C), float(fit.alpha_se), f"estimate_tail(Hill, k={fit.k})")
    if scores is not None:
        fit = fit_score_tail(scores, k=k)
        if not fit.xi < 0:
            raise InputError(
                f"scores: the fitted upper tail has shape xi = {fit.xi:.3g} >= 0 (no upper endpoint, alpha = inf); "
                "the phase diagram needs a bounded tail (use predict_beta_peak_from_scores instead)"
            )
        h = -1.0 / fit.xi
        return LawConstants(2.0 * h, fit.C, 2.0 * fit.h_se, f"scores(GPD tail, k={fit.k})")
    if alpha is not None:
        alpha = check_real("alpha", alpha, positive=True)
        c = theory.gap_constant(d, alpha=alpha) if C is None else check_real("C", C, positive=True)
        src = f"alpha={alpha:g}, C={c:.6g}" + ("" if d is None else f", d={d}")
        return LawConstants(alpha, float(c), 0.0, src)
    if d is not None:
        d = check_int("d", d, minimum=2)
        return LawConstants(float(d - 1), float(theory.gap_constant(d)), 0.0, f"UniformSphere(d={d})")
    raise InputError("law_constants: give a law, d, alpha (and C), keys (and query) or scores")


def _law_name(law) -> str:
    name = type(law).__name__
    if hasattr(law, "gap_beta_params"):
        extra = f", alpha={law.alpha:g}" if name == "PowerLawCap" else ""
        return f"{name}(d={law.d}{extra})"
    return name


class PhaseDiagram(NamedTuple):
    """E[max weight] on an (n, beta) grid from the Poisson limit, and the critical curves."""

    n: np.ndarray  # (N,)
    beta: np.ndarray  # (B,)
    E_max_weight: np.ndarray  # (B, N)
    beta_peak: np.ndarray  # (N,) lambda* n^{2/alpha}
    window_lo: np.ndarray  # (N,) lo lambda* n^{2/alpha}
    window_hi: np.ndarray  # (N,)
    window: CriticalWindow
    constants: LawConstants


def phase_diagram(constants: LawConstants, n, beta, *, level: float = 0.5) -> PhaseDiagram:
    """E[max weight](n, beta) = E W_(1)(h, C (beta/n^{2/alpha})^{-h}) on the grid ``beta`` x ``n``.

    The Poisson limit is a function of lambda alone, so it is computed once on a 1-D lambda grid
    (400 points over the range the diagram needs) and interpolated in log lambda (error < 1e-3).

    >>> pd = phase_diagram(law_constants(d=3), [1e3, 1e4], [1.0, 1e3, 1e5])
    >>> pd.E_max_weight.shape
    (3, 2)
    """
    n = check_lengths("n", n)
    beta = np.atleast_1d(np.asarray(beta, np.float64))
    check_array("beta", beta, ndim=1)
    if np.any(beta <= 0):
        raise InputError(f"beta must be > 0 for a log-log phase diagram, got min {beta.min()!r}")
    a, c = constants.alpha, constants.C
    win = critical_window(a, c, level=level)
    lam = beta[:, None] / n[None, :] ** (2.0 / a)
    x = np.log(lam / win.lambda_star)
    span = max(4.0, 30.0 / (a / 2))
    xg = np.linspace(max(x.min(), -3 * span), min(x.max(), 3 * span), 400) if x.max() > x.min() else x.ravel()[:1]
    ew = poisson_summary(a, c, win.lambda_star * np.exp(xg))["E_max_weight"]
    E = np.interp(x, xg, ew, left=ew[0], right=ew[-1])  # noqa: N806
    bp = win.lambda_star * n ** (2.0 / a)
    return PhaseDiagram(n, beta, E, bp, win.lo * bp, win.hi * bp, win, constants)


def schedule_betas(name: str, n, params: dict) -> np.ndarray:
    """beta(n) of schedule ``name`` with the keyword parameters ``params``, as host float64 (N,)."""
    return np.asarray(schedule_beta(name, np.asarray(n, np.float64), **params), np.float64)


def _schedule_setup(constants: LawConstants, level: float, params: dict):
    """(alpha, C, the critical window at ``level``, a copy of ``params`` with ``alpha`` defaulting to the law's
    and ``critical_lambda`` (when None or absent) to lambda*): what the schedule tables start from."""
    a, c = constants.alpha, constants.C
    win = critical_window(a, c, level=level)
    params = dict(params)
    params.setdefault("alpha", a)
    if params.get("critical_lambda") is None:
        params["critical_lambda"] = win.lambda_star
    return a, c, win, params


def schedule_table(constants: LawConstants, n, *, schedules=SCHEDULE_NAMES, level: float = 0.5, d: int | None = None,
                   **params) -> dict:
    """Each schedule at each n: beta, lambda(n)/lambda*, Poisson-limit E[max weight], effective keys.

    ``params`` are those of :func:`phasejax.schedules.schedule_beta` (beta0, train_length, ...);
    ``critical_lambda`` defaults to lambda* of the law and ``alpha`` to the law's. Returns a dict
    of (S, N) float64 arrays ``beta``, ``lambda_ratio``, ``E_max_weight``, ``effective_keys``
    (exp E H, nats), ``inv_sum_w2``, ``in_window`` (bool), plus ``schedule`` (S,), ``n`` (N,) and
    ``window`` (:class:`CriticalWindow`).

    **Validity.** The Poisson-limit numbers describe the top keys of an infinitely long context;
    at finite n they are meaningful only while exp(E H) <= n (fewer effective keys than keys) and
    the quadrature is in range. ``poisson_valid`` (S, N) marks that; elsewhere (deep subcritical,
    e.g. a sqrt(d) head at d = 64) the three Poisson columns are NaN. With ``d`` (uniform keys on
    S^{d-1}) ``effective_keys_subcritical`` adds the fixed-beta Kish value n/R(beta) of docs/theory.md §b
    (``theory.effective_keys_limit``), valid for beta << n^{2/(d-1)}.
    """
    n = check_lengths("n", n)
    a, c, win, params = _schedule_setup(constants, level, params)
    betas = np.stack([schedule_betas(s, n, params) for s in schedules])
    lam = betas / n[None, :] ** (2.0 / a)
    summ = poisson_summary(a, c, lam)
    ratio = lam / win.lambda_star
    valid = (~summ["clipped"]) & np.isfinite(summ["effective_keys"]) & np.isfinite(summ["inv_sum_w2"])
    valid &= summ["effective_keys"] <= n[None, :]
    for key in ("E_max_weight", "effective_keys", "inv_sum_w2"):
        summ[key] = np.where(valid, summ[key], np.nan)
    extra = {}
    if d is not None:
        from .theory.sphere import effective_keys_limit

        extra["effective_keys_subcritical"] = np.asarray(effective_keys_limit(n[None, :], betas, d), np.float64)
    return {
        **extra,
        "poisson_valid": valid,
        "schedule": list(schedules),
        "n": n,
        "beta": betas,
        "lambda_ratio": ratio,
        "E_max_weight": summ["E_max_weight"],
        "effective_keys": summ["effective_keys"],
        "inv_sum_w2": summ["inv_sum_w2"],
        "in_window": (ratio >= win.lo) & (ratio <= win.hi),
        "window": win,
    }


def leaves_window_at(constants: LawConstants, name: str, *, n_min: float, n_max: float, level: float = 0.5,
                     points: int = 2000, **params):
    """The smallest n in [n_min, n_max] where schedule ``name`` goes from inside the window to outside.

    Scans ``points`` log-spaced n, then bisects the crossing on the continuous log n (to 1e-6
    relative; the floor in llama4 makes its curve a staircase, the answer is then the step).
    Returns (n_leave or None, direction) with direction 'below' (lambda/lambda* < lo: drifts
    subcritical), 'above' (supercritical) or None when it never leaves (or is never inside).
    """
    n_min = check_real("n_min", n_min, minimum=1.0)
    n_max = check_real("n_max", n_max, minimum=1.0)
    if not n_max > n_min:
        raise InputError(f"n_max ({n_max:g}) must be larger than n_min ({n_min:g})")
    a, _, win, params = _schedule_setup(constants, level, params)

    def ratio(nn):
        nn = np.atleast_1d(np.asarray(nn, np.float64))
        return schedule_betas(name, nn, params) / nn ** (2.0 / a) / win.lambda_star

    def inside(r):
        return (r >= win.lo) & (r <= win.hi)

    grid = np.geomspace(n_min, n_max, points)
    ins = inside(ratio(grid))
    for i in range(1, points):
        if ins[i - 1] and not ins[i]:
            lo, hi = math.log(grid[i - 1]), math.log(grid[i])
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                if inside(ratio(math.exp(mid)))[0]:
                    lo = mid
                else:
                    hi = mid
                if hi - lo < 1e-7:
                    break
            r = float(ratio(math.exp(hi))[0])
            return math.exp(hi), ("below" if r < win.lo else "above")
    return None, None


def measured_peak(law, n: int | float, *, key, seeds: int = 128, grid=None, m: int | None = None):
    """The susceptibility peak of E[max weight] measured on simulated contexts (DESIGN pipeline).

    BetaGapLaw: ``scaling.nearest_gap_samples`` (m nearest of n; m from ``scaling.choose_m``
    unless given) -> ``gap_curve('max_weight')`` -> ``transition.find_peak``. GaussianScores: all n
    energies per context, shifted by their minimum (softmax is shift invariant). ``grid``: log-beta
    bracket (default log(prediction) + linspace(-1, 1, 13)). Returns the
    :class:`phasejax.transition.Peak` (``beta``, ``beta_se``).
    """
    from .scaling import choose_m, gap_curve, nearest_gap_samples
    from .transition import find_peak

    n = check_int("n", n, minimum=2)
    seeds = check_int("seeds", seeds, minimum=2)
    dtype = jnp.result_type(float)
    if grid is None:
        guess = float(predict_beta_peak(n, law))
        grid = math.log(guess) + np.linspace(-1.0, 1.0, 13)
    grid = jnp.asarray(np.asarray(grid, np.float64), dtype)
    if isinstance(law, GaussianScores):  # all n energies of each context, shifted to a minimum of 0
        gaps = nearest_gap_samples(law, key, n, n, seeds=seeds, sampler="exact")
        gaps = gaps - jnp.min(gaps, axis=1, keepdims=True)
    else:
        lam_min = float(jnp.exp(grid[0])) / n ** (2.0 / law.alpha)
        mm = choose_m(law, n, lam_min) if m is None else min(check_int("m", m, minimum=1), n)
        gaps = nearest_gap_samples(law, key, n, mm, seeds=seeds)
    return find_peak(gap_curve("max_weight"), grid, gaps)
