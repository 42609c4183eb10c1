"""The phase diagram of a key law in the (n, beta) plane, schedules on it, and a critical-beta predictor.

Three things (THEORY c, d, h):

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
   log n >> (d-1)/2 on the sphere (THEORY h, crossover); for d = 64 and n <= 1e7 the measured peak is
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
   the upper-tail hazard at the 1/n quantile ~ sqrt(2 log n)/sigma = beta_c (THEORY h, REM).

Shape contracts: ``n`` may be a scalar or 1-D array; per-n results have shape (N,); a phase
diagram's colour array is (B, N) (beta rows, n columns); schedule tables are dicts of (S, N)
arrays, S schedules. Host-level functions return NumPy float64 and compute in float64
(``jax.enable_x64``) whatever the global mode.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import InputError, check_array, check_int, check_real
from .schedules import SCHEDULE_NAMES, schedule_beta

__all__ = [
    "CriticalWindow",
    "GaussianScores",
    "LawConstants",
    "PhaseDiagram",
    "ScoreTailFit",
    "TailFromCDF",
    "TailPoint",
    "critical_window",
    "fit_score_tail",
    "kappa_star_over_h",
    "law_constants",
    "leaves_window_at",
    "measured_peak",
    "phase_diagram",
    "plot_phase_diagram",
    "poisson_summary",
    "predict_beta_peak",
    "predict_beta_peak_from_scores",
    "schedule_table",
    "tail_at_quantile",
]


def _ns(n, name="n"):
    arr = np.atleast_1d(np.asarray(n, dtype=np.float64))
    check_array(name, arr, ndim=1)
    if np.any(arr < 1):
        raise InputError(f"{name} must be >= 1 (numbers of keys), got min {arr.min()!r}")
    return arr


# =========================================================================== key-law constants


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
    empirical ``keys`` with a ``query`` (``phasejax.estimate.estimate_tail`` when present, else
    the Hill estimate of :class:`phasejax.geometry.Empirical`, k smallest gaps); or a row of
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
        try:  # the fuller estimator (pooled Hill with goodness of fit), when it is installed
            from .estimate import estimate_tail
        except ImportError:
            estimate_tail = None
        if estimate_tail is not None:
            fit = estimate_tail(keys, query)[0]
            return LawConstants(float(fit.alpha), float(fit.C), float(fit.alpha_se),
                                f"estimate_tail(Hill, k={fit.k})")
        from .geometry import Empirical

        emp = Empirical(keys, query, k=k)
        return LawConstants(float(emp.alpha), float(emp.C), float(emp.alpha_se), f"Empirical(Hill, k={emp.k})")
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
        c = theory.C(d, alpha=alpha) if C is None else check_real("C", C, positive=True)
        src = f"alpha={alpha:g}, C={c:.6g}" + ("" if d is None else f", d={d}")
        return LawConstants(alpha, float(c), 0.0, src)
    if d is not None:
        d = check_int("d", d, minimum=2)
        return LawConstants(float(d - 1), float(theory.C(d)), 0.0, f"UniformSphere(d={d})")
    raise InputError("law_constants: give a law, d, alpha (and C), keys (and query) or scores")


def _law_name(law) -> str:
    name = type(law).__name__
    if hasattr(law, "gap_beta_params"):
        extra = f", alpha={law.alpha:g}" if name == "PowerLawCap" else ""
        return f"{name}(d={law.d}{extra})"
    return name


# =========================================================================== Poisson-limit summaries


@functools.cache
def _vmapped_summary(h: float):
    from .theory import poisson_expected_entropy, poisson_expected_max_weight, poisson_expected_sum_w2

    def one(rho):
        return (poisson_expected_max_weight(h, rho), poisson_expected_entropy(h, rho),
                poisson_expected_sum_w2(h, rho))

    return jax.jit(jax.vmap(one))


_LOG_RHO_MAX = 600.0


def poisson_summary(alpha: float, C: float, lam) -> dict:  # noqa: N803
    """Poisson-limit E[max weight], effective keys exp(E H) and 1/E sum w^2 at lambda (THEORY c).

    rho = C lambda^{-h}, h = alpha/2. ``lam`` of any shape (> 0); float64 arrays of that shape.
    log rho is clipped to [-600, 600] (there E[max weight] is 1 or 0 to double precision);
    ``clipped`` marks those entries. These are n = infinity values: at fixed n they hold when the
    effective keys are << n (deep subcritical, exp(E H) > n means the n keys are all used: read
    ``theory.effective_keys_limit`` instead).

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
    lr = np.clip(log_rho, -_LOG_RHO_MAX, _LOG_RHO_MAX).ravel()
    size = lr.size
    pad = -size % 128  # one compiled shape per h (multiples of 128)
    rho = np.exp(np.concatenate([lr, np.zeros(pad)]))
    with jax.enable_x64(True):
        f = _vmapped_summary(h)
        parts = [f(jnp.asarray(rho[i : i + 128], jnp.float64)) for i in range(0, rho.size, 128)]
    ew, eh, s2 = (np.concatenate([np.asarray(p[j], np.float64) for p in parts])[:size] for j in range(3))
    shape = lam.shape
    return {
        "lambda": lam,
        "rho": np.exp(log_rho),
        "E_max_weight": ew.reshape(shape),
        "effective_keys": np.exp(eh).reshape(shape),
        "inv_sum_w2": np.divide(1.0, s2, out=np.full_like(s2, np.inf), where=s2 > 0).reshape(shape),
        "clipped": clipped,
    }


# =========================================================================== critical window


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
    from .theory import lambda_star, poisson_expected_max_weight

    ls = lambda_star(alpha=2 * h, C=C)
    span = max(3.0, 3.0 / h)
    x = np.linspace(-span, span, 49)  # log(lambda/lambda*); the window lies well inside
    log_rho = math.log(ls.rho_star) - h * x

    def chi_of(lr):  # chi = dE/dlog lambda = -h dE/dlog rho
        return -h * jax.jvp(lambda y: poisson_expected_max_weight(h, jnp.exp(y)), (lr,), (jnp.ones_like(lr),))[1]

    with jax.enable_x64(True):
        f = jax.jit(jax.vmap(lambda lr: (poisson_expected_max_weight(h, jnp.exp(lr)), chi_of(lr))))
        ew, chi = (np.asarray(v, np.float64) for v in f(jnp.asarray(log_rho, jnp.float64)))
    cmax = ls.chi_max
    inside = chi >= level * cmax
    i0 = int(np.argmax(inside))
    i1 = len(x) - 1 - int(np.argmax(inside[::-1]))
    if i0 == 0 or i1 == len(x) - 1:
        raise InputError(f"critical_window: the half-maximum is outside the scanned range for h = {h}")
    from scipy.interpolate import CubicSpline
    from scipy.optimize import brentq

    chi_s, ew_s = CubicSpline(x, chi), CubicSpline(x, ew)
    xl = brentq(lambda v: float(chi_s(v)) - level * cmax, x[i0 - 1], x[i0], xtol=1e-12)
    xh = brentq(lambda v: float(chi_s(v)) - level * cmax, x[i1], x[i1 + 1], xtol=1e-12)
    el, eh = float(ew_s(xl)), float(ew_s(xh))
    return CriticalWindow(
        ls.lambda_star, math.exp(xl), math.exp(xh), float(el), float(eh), ls.E_max_weight, cmax, level, h, C,
        f"Poisson-limit chi = dE[max weight]/dlog lambda >= {level:g} chi_max",
    )


def critical_window(alpha: float, C: float, *, level: float = 0.5) -> CriticalWindow:  # noqa: N803
    """The critical window of the Poisson limit: chi(lambda) >= level chi_max (default: FWHM).

    chi = d E[W_(1)]/d log lambda with E[W_(1)] at rho = C lambda^{-h} (THEORY c); the edges are
    found by a cubic spline through 49 points in log(lambda/lambda*) (relative error of lo/hi
    ~ 1e-4), chi by ``jax.jvp`` of the theory quadrature. Only the position (lambda*)
    depends on C; lo, hi and E at the edges depend on h = alpha/2 only.

    >>> w = critical_window(2.0, 0.5)
    >>> 0.1 < w.lo < 1 < w.hi < 10
    True
    """
    alpha = check_real("alpha", alpha, positive=True)
    C = check_real("C", C, positive=True)  # noqa: N806
    level = check_real("level", level, minimum=0.01, maximum=0.99)
    return _window_cached(alpha / 2.0, C, level)


# =========================================================================== phase diagram


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
    n = _ns(n)
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


# =========================================================================== schedules on the diagram


def _schedule_betas(name, n, params):
    with jax.enable_x64(True):
        return np.asarray(schedule_beta(name, jnp.asarray(n, jnp.float64), **params), np.float64)


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
    S^{d-1}) ``effective_keys_subcritical`` adds the fixed-beta Kish value n/R(beta) of THEORY b
    (``theory.effective_keys_limit``), valid for beta << n^{2/(d-1)}.
    """
    n = _ns(n)
    a, c = constants.alpha, constants.C
    win = critical_window(a, c, level=level)
    params = dict(params)
    params.setdefault("alpha", a)
    if params.get("critical_lambda") is None:
        params["critical_lambda"] = win.lambda_star
    betas = np.stack([_schedule_betas(s, n, params) for s in schedules])
    lam = betas / n[None, :] ** (2.0 / a)
    summ = poisson_summary(a, c, lam)
    ratio = lam / win.lambda_star
    valid = (~summ["clipped"]) & np.isfinite(summ["effective_keys"]) & np.isfinite(summ["inv_sum_w2"])
    valid &= summ["effective_keys"] <= n[None, :]
    for key in ("E_max_weight", "effective_keys", "inv_sum_w2"):
        summ[key] = np.where(valid, summ[key], np.nan)
    extra = {}
    if d is not None:
        from .theory import effective_keys_limit

        with jax.enable_x64(True):
            extra["effective_keys_subcritical"] = np.asarray(
                effective_keys_limit(jnp.asarray(n[None, :], jnp.float64), jnp.asarray(betas, jnp.float64), d),
                np.float64)
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
    a, c = constants.alpha, constants.C
    win = critical_window(a, c, level=level)
    params = dict(params)
    params.setdefault("alpha", a)
    if params.get("critical_lambda") is None:
        params["critical_lambda"] = win.lambda_star

    def ratio(nn):
        nn = np.atleast_1d(np.asarray(nn, np.float64))
        return _schedule_betas(name, nn, params) / nn ** (2.0 / a) / win.lambda_star

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


def plot_phase_diagram(pd: PhaseDiagram, path: str, *, schedules: dict | None = None, leaves: dict | None = None,
                       extra: dict | None = None, title: str | None = None) -> str:
    """Save the phase diagram (log-log n, beta; colour E[max weight]) with schedule curves.

    ``schedules``: name -> beta(n) on ``pd.n``; ``leaves``: name -> (n_leave, beta there) marked
    with an x; ``extra``: label -> (n, beta) drawn as points (e.g. exact finite-n peaks,
    predictor values).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import io

    fig, ax = plt.subplots(figsize=(7.2, 5.2))
    mesh = ax.pcolormesh(pd.n, pd.beta, pd.E_max_weight, shading="auto", cmap="magma", vmin=0.0, vmax=1.0)
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label("E[max weight], Poisson limit (n = inf)")
    w = pd.window
    ax.plot(pd.n, pd.beta_peak, "w-", lw=2, label=f"$\\beta_{{peak}} = \\lambda^* n^{{2/\\alpha}}$, "
            f"$\\lambda^*$={w.lambda_star:.4g}")
    ax.fill_between(pd.n, pd.window_lo, pd.window_hi, color="white", alpha=0.18,
                    label=f"window: $\\chi \\geq \\chi_{{max}}/2$ ({w.lo:.2f}-{w.hi:.2f} $\\lambda^*$)")
    ax.plot(pd.n, pd.window_lo, "w:", lw=1)
    ax.plot(pd.n, pd.window_hi, "w:", lw=1)
    colors = plt.cm.tab10(np.arange(10))
    for i, (name, b) in enumerate((schedules or {}).items()):
        ax.plot(pd.n, b, "-", color=colors[i % 10], lw=1.6, label=name)
        nl = (leaves or {}).get(name)
        if nl is not None and nl[0] is not None:
            ax.plot([nl[0]], [nl[1]], "x", color=colors[i % 10], ms=10, mew=2.5)
    for j, (label, (nn, bb)) in enumerate((extra or {}).items()):
        ax.plot(nn, bb, "o" if j == 0 else "s", mfc="none", color="cyan" if j == 0 else "lime", ms=6, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(pd.n.min(), pd.n.max())
    ax.set_ylim(pd.beta.min(), pd.beta.max())
    ax.set_xlabel("context length n (keys the query can see)")
    ax.set_ylabel("$\\beta$ (multiplies the cosine $\\langle q,k\\rangle$)")
    c = pd.constants
    ax.set_title(title or f"{c.source}: alpha={c.alpha:g}, C={c.C:.4g}  (x: leaves the window)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return io.save_figure(fig, path)


# =========================================================================== the universal predictor


class TailPoint(NamedTuple):
    """The gap law at its 1/n quantile: u* (F(u*) = 1/n), hazard f(u*)/F(u*), local exponent u* f/F.

    For score laws without an endpoint (:class:`GaussianScores`) ``u_star`` is the threshold score
    t* - mean (P(score > t*) = 1/n) and ``h_local`` is infinity."""

    n: float
    u_star: float
    hazard: float
    h_local: float


class GaussianScores(NamedTuple):
    """Scores i.i.d. N(mean, sigma^2) (THEORY h, the random energy model). The gap is the distance
    below any fixed level; the upper tail has no endpoint (h = infinity): the Gumbel domain."""

    sigma: float = 1.0
    mean: float = 0.0

    @property
    def h(self) -> float:
        return math.inf

    def tail_point(self, n) -> TailPoint:
        """t* = sigma Phi^{-1}(1 - 1/n); hazard phi(z)/(sigma Q(z)), z = t*/sigma, in log space."""
        from scipy import special as sps

        sigma = check_real("sigma", self.sigma, positive=True)
        n = float(n)
        z = -sps.ndtri(1.0 / n)
        hz = math.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - sps.log_ndtr(-z)) / sigma
        return TailPoint(n, z * sigma, hz, math.inf)  # u_star: the threshold score t* - mean

    def sample(self, key, shape, dtype=None):
        return self.mean + self.sigma * jax.random.normal(key, shape, dtype or jnp.result_type(float))


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


def _beta_gap_tail_point(a: float, b: float, n: float) -> TailPoint:
    """u/2 ~ Beta(a, b): u* = 2 I^{-1}(1/n), polished in log space (full relative precision)."""
    from scipy import special as sps

    p = 1.0 / n
    lb = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    x = float(sps.betaincinv(a, b, p))
    if x <= 0:  # underflow: the small-x series x^a/(a B(a,b)) = p
        x = math.exp((math.log(p) + math.log(a) + lb) / a)
    for _ in range(4):
        lf = math.log(sps.betainc(a, b, x))
        ld = (a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - lb
        x = min(max(x - (lf - math.log(p)) * math.exp(lf - ld), 1e-300), 1.0)
    ld = (a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - lb
    hz = math.exp(ld - math.log(p)) / 2.0  # f_u(u) = f_x(u/2)/2, F = p
    u = 2.0 * x
    return TailPoint(n, u, hz, u * hz)


def tail_at_quantile(law, n) -> TailPoint:
    """The gap law of ``law`` at its 1/n quantile: u*, the hazard f(u*)/F(u*), and u* f/F.

    ``law``: a :class:`phasejax.geometry.BetaGapLaw` (UniformSphere, PowerLawCap, Subsphere; exact
    incomplete-Beta inverse), :class:`GaussianScores`, :class:`TailFromCDF`, or anything with a
    ``tail_point(n)`` method. For F = C u^h the hazard is h/u* exactly.

    >>> from phasejax.geometry import UniformSphere
    >>> tp = tail_at_quantile(UniformSphere(3), 1e4)
    >>> round(tp.u_star, 12), round(tp.hazard, 6)
    (0.0002, 5000.0)
    """
    n = check_real("n", n, minimum=1.0)
    if hasattr(law, "gap_beta_params"):
        a, b = law.gap_beta_params
        return _beta_gap_tail_point(float(a), float(b), n)
    if hasattr(law, "tail_point"):
        return law.tail_point(n)
    raise InputError(f"law must be a BetaGapLaw, GaussianScores, TailFromCDF or have tail_point(n); got {law!r}")


_KAPPA_H_MAX = 64.0


@functools.cache
def kappa_star_over_h(h: float) -> float:
    """kappa*(h)/h, kappa*(h) = lambda* C^{-1/h} = rho*(h)^{-1/h} (the peak for mean measure z^h).

    From ``theory.lambda_star(alpha=2h, C=1)``. h = inf (Gaussian / Gumbel tails) gives the
    random-energy limit 1 (the peak sits at the freezing point m = beta_c/beta = 1, THEORY h).
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
    from .theory import lambda_star

    return lambda_star(alpha=2.0 * h, C=1.0).lambda_star / h


def _resolve_h(law, h, tp: TailPoint) -> float:
    if h is None:
        if hasattr(law, "gap_beta_params"):
            return float(law.alpha) / 2.0
        return float(getattr(law, "h", math.inf))
    if h == "local":
        return tp.h_local
    return check_real("h", h, positive=True) if not (isinstance(h, float) and math.isinf(h)) else h


def predict_beta_peak(n, law, *, h=None) -> np.ndarray:
    """The universal predictor beta_peak(n) ~ (kappa*(h)/h) f(u*)/F(u*), F(u*) = 1/n (THEORY h).

    ``h``: None (the law's local exponent at the query, alpha/2; infinity for Gaussian scores),
    ``"local"`` (the exponent u* f(u*)/F(u*) of the law *at* u*), or a number. Returns a float64
    array of the shape of ``n``. Reduces to lambda* n^{2/alpha} for F = C u^h and to the upper-tail
    hazard at the 1/n quantile (~ sqrt(2 log n)/sigma) for Gaussian scores.

    >>> from phasejax.geometry import UniformSphere
    >>> round(float(predict_beta_peak(1e4, UniformSphere(3))) / 1e4, 6)  # lambda*(3) n
    0.381447
    """
    ns = _ns(n)
    out = []
    for nn in ns:
        tp = tail_at_quantile(law, nn)
        hh = _resolve_h(law, h, tp)
        out.append(kappa_star_over_h(round(hh, 6) if math.isfinite(hh) else hh) * tp.hazard)
    res = np.array(out)
    return res.reshape(np.shape(n)) if np.ndim(n) else res[0]


class ScoreTailFit(NamedTuple):
    """Generalised-Pareto fit of the top-k excesses of a row of scores over x_(k+1).

    P(X > t + y | X > t) = (1 + xi y/sigma)^{-1/xi}; xi < 0: an upper endpoint t + sigma/|xi| and
    local exponent h = -1/xi; xi >= 0: no endpoint (h = inf; xi = 0 is the Gumbel domain).
    """

    xi: float
    sigma: float
    threshold: float
    k: int
    N: int  # noqa: N815
    h: float
    h_se: float
    C: float  # P(gap <= u) ~ C u^h for the gap below the endpoint (nan if xi >= 0)

    def tail_point(self, n) -> TailPoint:
        """u* and the hazard at the 1/n quantile of the fitted tail (n >= N/k, else extrapolating down)."""
        n = float(n)
        q = n * self.k / self.N  # S(t + y*) = (k/N)(1 + xi y/sigma)^{-1/xi} = 1/n
        if q < 1:
            raise InputError(
                f"n = {n:g} puts the 1/n quantile below the fitted tail (needs n >= N/k = {self.N / self.k:g}); "
                "pass a larger k"
            )
        hz = 1.0 / (self.sigma * q**self.xi)
        if self.xi < 0:
            u = self.sigma * q**self.xi / (-self.xi)  # distance below the endpoint
        else:
            u = math.nan
        return TailPoint(n, u, hz, self.h)


def fit_score_tail(scores, *, k: int | None = None, endpoint: float | None = None) -> ScoreTailFit:
    """Fit the upper tail of a row of scores (e.g. one query's attention logits) by a GPD.

    The k largest scores' excesses over the (k+1)-th are fitted by maximum likelihood
    (``scipy.stats.genpareto``, location 0). Default k = max(20, round(2 sqrt(N))) capped at N-1.
    se(h) ~ h/sqrt(k) (the Hill-estimator rate; the GPD MLE is irregular for xi <= -1/2).
    With ``endpoint`` known (cosines of unit vectors: 1) the gaps u = endpoint - x are fitted by
    Hill instead (P(u <= s) ~ C s^h), which is far less noisy: without it the distance of the top
    scores to the endpoint must itself be extrapolated from one row.

    >>> import numpy as np
    >>> fit = fit_score_tail(1.0 - 2.0 * np.random.default_rng(0).uniform(size=20000))  # d = 3 cosines
    >>> 0.7 < fit.h < 1.4
    True
    """
    from scipy import stats

    x = np.asarray(scores, np.float64).ravel()
    check_array("scores", x, ndim=1)
    N = x.size  # noqa: N806
    if N < 30:
        raise InputError(f"scores needs at least 30 values for a tail fit, got {N}")
    k = max(20, int(round(2 * math.sqrt(N)))) if k is None else check_int("k", k, minimum=10)
    k = min(k, N - 1)
    xs = np.sort(x)[::-1]
    t = xs[k]
    y = xs[:k] - t
    if not np.any(y > 0):
        raise InputError("scores: the top-k scores are all equal; the tail cannot be fitted")
    if endpoint is not None:  # known upper endpoint (cosines: 1): Hill on the gaps u = endpoint - x
        endpoint = check_real("endpoint", endpoint)
        u = endpoint - xs[: k + 1]
        if np.any(u <= 0):
            raise InputError(f"endpoint = {endpoint!r} must exceed every score (max {xs[0]!r})")
        h = 1.0 / float(np.mean(np.log(u[k] / u[:k])))
        c = (k / N) * u[k] ** (-h)
        # the same tail written as a GPD over the threshold t = x_(k+1): xi = -1/h, sigma = u_(k+1)/h
        return ScoreTailFit(-1.0 / h, float(u[k]) / h, float(t), k, N, h, h / math.sqrt(k), float(c))
    xi, _, sigma = stats.genpareto.fit(y, floc=0.0)
    xi, sigma = float(xi), float(sigma)
    if xi < 0:
        h = -1.0 / xi
        h_se = h / math.sqrt(k)  # the Hill-estimator se of the endpoint exponent (GPD MLE is irregular at xi <= -1/2)
        c = (k / N) * (-xi / sigma) ** h
    else:
        h, h_se, c = math.inf, math.nan, math.nan
    return ScoreTailFit(xi, sigma, float(t), k, N, h, h_se, c)


def predict_beta_peak_from_scores(scores, n=None, *, k: int | None = None,
                                  endpoint: float | None = None) -> tuple[float, ScoreTailFit]:
    """The predictor from an empirical row of scores: (beta_peak estimate, the tail fit).

    beta_peak(n) ~ (kappa*(h)/h) f/F at the 1/n quantile of the fitted GPD tail, with h = -1/xi
    (xi < 0) or infinity (xi >= 0). ``n`` defaults to the row length N; ``endpoint``: a known upper
    bound of the scores (1 for cosines), see :func:`fit_score_tail`. beta multiplies the scores
    as given (for cosines it is the DESIGN beta; for logits it is a factor on top of them).
    """
    fit = fit_score_tail(scores, k=k, endpoint=endpoint)
    n = fit.N if n is None else check_real("n", n, minimum=1.0)
    tp = fit.tail_point(n)
    h = fit.h if math.isinf(fit.h) else round(fit.h, 3)
    return kappa_star_over_h(h) * tp.hazard, fit


# =========================================================================== measured peaks


def measured_peak(law, n: int, *, key, seeds: int = 128, grid=None, m: int | None = None):
    """The susceptibility peak of E[max weight] measured on simulated contexts (DESIGN pipeline).

    BetaGapLaw: ``scaling.nearest_gap_samples`` (m nearest of n; m from ``scaling.choose_m``
    unless given) -> ``gap_curve('max_weight')`` -> ``transition.find_peak``. GaussianScores: all n
    scores per context, gaps = max - score (softmax is shift invariant). ``grid``: log-beta
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
    if isinstance(law, GaussianScores):
        s = law.sample(key, (seeds, n), dtype)
        gaps = jnp.max(s, axis=1, keepdims=True) - s
    else:
        lam_min = float(jnp.exp(grid[0])) / n ** (2.0 / law.alpha)
        mm = choose_m(law, n, lam_min) if m is None else min(check_int("m", m, minimum=1), n)
        gaps = nearest_gap_samples(law, key, n, mm, seeds=seeds)
    return find_peak(gap_curve("max_weight"), grid, gaps)
