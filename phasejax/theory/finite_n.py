"""The exact finite-n E[max weight], its susceptibility and beta_peak(n), for any score law (docs/theory.md §c, §h).

One engine serves every law: the uniform sphere at any d, PowerLawCap, Subsphere (gap laws u/2 ~ Beta(a, b)),
Gaussian scores (the finite-n random energy model) and user laws. A law is described by its **energy**
e = -score (for keys on the sphere, the gap u), so the weights are softmax(-beta e), as in
:mod:`phasejax.observables`; the top key has the smallest energy.

Put the top energy e_1 at its quantile P(E <= e_1) = 1 - e^{-r/n}, r ~ Exp(1); the other n - 1 energies are
i.i.d. above it, and with 1/(1 + T) = int_0^inf e^{-s(1+T)} ds,

    E W_(1)(n, beta) = int dr e^{-r} int ds e^{-s} [1 - D(s, r)/P(r)]^{n-1},
    D(s, r)/P(r) = E[1 - exp(-s e^{-beta (E - e_1)}) | E > e_1],

integrated by parts into the law's CDF and evaluated on fixed double-exponential nodes (34 x 34 x 49, in log
space: E W_(1) and chi to ~1e-8 absolute, checked against 55 x 55 x 81 nodes for the sphere at d = 16 and
128 and for Gaussian scores, n = 1e4 .. 1e6).

Host or device by the argument (:mod:`phasejax._numerics.arrays`): a Python or NumPy ``beta`` is evaluated
in float64 with NumPy/SciPy; a JAX ``beta`` (or tracer) with JAX in its dtype, jittable and differentiable
in beta. ``n`` is a host number (any size; the top energies are found on the host at full relative
precision). The peak (:func:`finite_n_beta_peak`) is a host result in float64.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import InputError, check_real
from .._numerics.arrays import DEVICE, HOST, Namespace, as_float, namespace
from .._numerics.peak import host_derivative, host_peak
from .._numerics.quadrature import exp_sinh, tanh_sinh
from .._numerics.special import beta_quantile_host
from .sphere import _beta_params

__all__ = [
    "STANDARD_NORMAL",
    "FinitePeak",
    "ScoreLaw",
    "beta_gap_score_law",
    "exact_beta_peak",
    "exact_expected_max_weight",
    "finite_n_beta_peak",
    "finite_n_chi",
    "finite_n_expected_max_weight",
    "score_law",
]


class ScoreLaw(NamedTuple):
    """An energy law (energy e = -score; for keys on the sphere, the gap u) for the exact integrals.

    * ``log_cdf(e, *params)``: log P(E <= e), accurate in the lower tail (the top keys live there); 0 above
      the support. It is called with NumPy float64 arrays for host results and with JAX arrays under
      ``jit``/``grad``: write it with the functions of the argument's namespace (the built-in laws use
      :func:`phasejax._numerics.arrays.namespace`), or with NumPy if only host results are needed.
    * ``quantile(log_p, *params)``: host function, float64 NumPy array of log p -> e with P(E <= e) = p,
      full relative precision for p down to 1e-300.
    * ``e_max``: upper end of the support (``math.inf`` if unbounded).
    * ``name``; ``params``: a tuple of floats passed to both callables.

    The laws of phasejax give theirs as the ``energy_law`` property (:func:`score_law`).
    """

    log_cdf: Callable
    quantile: Callable
    e_max: float = math.inf
    name: str = "custom"
    params: tuple = ()

    @classmethod
    def from_callables(cls, log_cdf: Callable, *, e_min: float, e_max: float = math.inf,
                       quantile: Callable | None = None, name: str = "custom", params: tuple = ()) -> ScoreLaw:
        """A law from ``log_cdf(e, *params)``; without ``quantile`` it is inverted on the host by Brent's method
        on log_cdf(e) = log p in [e_min, min(e_max, e_min + 1e6)] (float64).

        >>> import math, numpy as np
        >>> law = ScoreLaw.from_callables(lambda e: np.log(np.clip(e, 0.0, 1.0)), e_min=0.0, e_max=1.0)
        >>> round(float(law.quantile(math.log(0.25))), 12)
        0.25
        """
        e_min = check_real("e_min", e_min)
        hi = e_max if math.isfinite(e_max) else e_min + 1e6
        if quantile is None:
            quantile = _brent_quantile(log_cdf, e_min, hi)
        return cls(log_cdf, quantile, float(e_max), name, tuple(float(p) for p in params))


def _brent_quantile(log_cdf, lo, hi):
    from scipy.optimize import brentq

    def q(log_p, *params):
        log_p = np.asarray(log_p, np.float64)
        out = np.empty_like(log_p)
        for i, lp in np.ndenumerate(log_p):
            out[i] = brentq(lambda e, lp=lp: float(log_cdf(np.float64(e), *params)) - lp, lo, hi, xtol=1e-300,
                            rtol=1e-15, maxiter=400)
        return out

    return q


def _beta_gap_log_cdf(u, a, b):
    """log I_{u/2}(a, b); 0 above u = 2. Closed forms where they exist (b = 1: x^a; a = 1: 1 - (1-x)^b;
    a = b = 2: x^2 (3 - 2x)), else the regularised incomplete Beta."""
    ns = namespace(u)
    xp = ns.xp
    x = u / 2.0
    inside = (x > 0) & (x < 1)
    xs = xp.where(inside, x, 0.5)  # betainc's x-derivatives are NaN at 0 and 1: never evaluate there
    if b == 1.0:
        val = a * xp.log(xs)
    elif a == 1.0:
        val = xp.log(-xp.expm1(b * xp.log1p(-xs)))
    elif a == b == 2.0:
        val = 2.0 * xp.log(xs) + xp.log(3.0 - 2.0 * xs)
    else:
        val = xp.log(ns.sp.betainc(a, b, xs))
    return xp.where(inside, val, xp.where(x >= 1, 0.0, -xp.inf))


def _beta_gap_quantile(log_p, a, b):
    return 2.0 * beta_quantile_host(a, b, log_p)


@functools.lru_cache(maxsize=256)
def beta_gap_score_law(a: float, b: float) -> ScoreLaw:
    """The energy law of a gap u/2 ~ Beta(a, b) on (0, 2): UniformSphere(d) (a = b = (d-1)/2), PowerLawCap,
    Subsphere.

    >>> import math
    >>> law = beta_gap_score_law(1.0, 1.0)  # uniform S^2: P(u <= e) = e/2
    >>> round(float(law.quantile(math.log(1e-9), *law.params)) / 1e-9, 9)
    2.0
    """
    a, b = check_real("a", a, positive=True), check_real("b", b, positive=True)
    return ScoreLaw(_beta_gap_log_cdf, _beta_gap_quantile, 2.0, f"BetaGap({a:g}, {b:g})", (a, b))


def _normal_log_cdf(e):
    return namespace(e).sp.log_ndtr(e)


def _normal_quantile(log_p):
    from scipy import special as sps

    return np.asarray(sps.ndtri_exp(np.asarray(log_p, np.float64)))


STANDARD_NORMAL = ScoreLaw(_normal_log_cdf, _normal_quantile, math.inf, "standard normal")


def score_law(law) -> tuple[ScoreLaw, float]:
    """(energy law, beta factor) of ``law``: the integrals use beta * factor on the energy law.

    A :class:`ScoreLaw` is itself (factor 1); a phasejax key law gives its ``energy_law`` property: gap laws
    u/2 ~ Beta(a, b) their :func:`beta_gap_score_law` (factor 1: beta multiplies <q,k> = 1 - u), Gaussian
    scores N(0, sigma^2) the :data:`STANDARD_NORMAL` energy with factor sigma.

    >>> score_law(STANDARD_NORMAL)[1]
    1.0
    """
    if isinstance(law, ScoreLaw):
        return law, 1.0
    energy = getattr(law, "energy_law", None)
    if energy is None:
        raise InputError(
            "law must be a key law with a known score law (UniformSphere, PowerLawCap, Subsphere, GaussianScores) or a "
            f"ScoreLaw; got {law!r}"
        )
    return energy


_T_CUT = 45.0
_RULE_R = exp_sinh(-34.0, math.log(60.0), 1 / 6)  # r: the top key's Exp(1) variable
_RULE_S = exp_sinh(-34.0, math.log(60.0), 1 / 6)  # s: 1/(1+T) = int e^{-s(1+T)} ds
_RULE_T = tanh_sinh(4.0, 1 / 6)  # t = s e^{-beta y}: the distance y of the others above the top


def _top_energies(law: ScoreLaw, n: float) -> np.ndarray:
    """e_1 at the r nodes: P(E <= e_1) = 1 - e^{-r/n} (so P(all n-1 others above) = e^{-r (n-1)/n})."""
    r = np.exp(_RULE_R[0])
    return np.asarray(law.quantile(np.log(-np.expm1(-r / n)), *law.params), np.float64)


def _ew1(log_beta, n, e1, law: ScoreLaw, ns: Namespace):
    """E W_(1) = int dr e^{-r} int ds e^{-s} [1 - D(s,r)/P(r)]^{n-1} (docs/theory.md §h).

    By parts, D/P = (1 - e^{-t_lo}) + int_{t_lo}^{min(s, T)} dt e^{-t} G(log(s/t)/beta), with
    G(y) = [F(e_1 + y) - F(e_1)] / (1 - F(e_1)) the law of the distance of another key above the top,
    t_lo = s e^{-beta (e_max - e_1)} (0 for an unbounded law)."""
    xp = ns.xp
    dt = log_beta.dtype
    beta = xp.exp(log_beta)
    lr, lwr = (xp.asarray(v, dtype=dt) for v in _RULE_R)
    ls, lws = (xp.asarray(v, dtype=dt) for v in _RULE_S)
    lsig, l1ms, lwt = (xp.asarray(v, dtype=dt) for v in _RULE_T)
    r = xp.exp(lr)
    e1 = e1[:, None, None]
    lsv = ls[None, :, None]
    cut = math.log(_T_CUT)
    if math.isfinite(law.e_max):
        loga = lsv - beta * (law.e_max - e1)
        logb = xp.maximum(xp.minimum(lsv, cut), loga)
        lab = xp.minimum(loga - logb, 0.0)
        logt = logb + xp.logaddexp(lsig[None, None, :], lab + l1ms[None, None, :])
        l1mab = xp.log(-xp.expm1(xp.minimum(lab, -1e-30)))  # log(1 - a/b); an empty interval gets weight 0
        first = -xp.expm1(-xp.exp(loga[..., 0]))
    else:
        logb = xp.minimum(lsv, cut)
        logt = logb + lsig[None, None, :]
        l1mab = 0.0
        first = 0.0
    y = (lsv - logt) / beta
    l1 = law.log_cdf(e1, *law.params)
    g = xp.exp(l1) * xp.expm1(law.log_cdf(e1 + y, *law.params) - l1) / (-xp.expm1(l1))
    g = xp.clip(g, 0.0, 1.0)
    w = xp.exp(logb + l1mab + lwt[None, None, :] - xp.exp(logt))
    x = xp.clip(first + xp.sum(w * g, axis=-1), 0.0, 1.0 - np.finfo(dt).epsneg)
    integrand = xp.exp((n - 1.0) * xp.log1p(-x))
    wr = xp.exp(lwr - r)[:, None]
    ws = xp.exp(lws - xp.exp(ls))[None, :]
    return xp.sum(wr * ws * integrand)


_ew1_jit = jax.jit(functools.partial(_ew1, ns=DEVICE), static_argnums=(3,))


class _Setup(NamedTuple):
    n: float
    law: ScoreLaw
    factor: float
    e1: np.ndarray


def _setup(n, law) -> _Setup:
    n = check_real("n", n, minimum=1.0)
    sl, factor = score_law(law)
    return _Setup(n, sl, factor, _top_energies(sl, n))


def _host_curve(p: _Setup):
    """E W_(1) as a host function of x = log beta (in the law's own beta)."""
    e1 = p.e1

    def f(x):
        return float(_ew1(np.float64(x + math.log(p.factor)), p.n, e1, p.law, HOST))

    return f


def _check_beta(beta):
    if not isinstance(beta, jax.core.Tracer):
        arr = np.asarray(beta)
        if arr.ndim != 0:
            raise InputError(f"beta must be a scalar, got shape {arr.shape}; vmap over beta for many values")
        check_real("beta", beta, nonnegative=True)


def finite_n_expected_max_weight(n, beta, law):
    """Exact E[max weight] of softmax(beta s) over n i.i.d. scores from ``law`` (docs/theory.md §h).

    ``law``: UniformSphere / PowerLawCap / Subsphere (beta multiplies <q,k>), GaussianScores, or a
    :class:`ScoreLaw` (anything :func:`score_law` accepts). ``n`` is a host number >= 1; ``beta`` a scalar
    >= 0 (beta = 0 is the limit 0+, E W_(1) = 1/n): host float64 for a Python/NumPy beta, a JAX result
    (jittable, differentiable) for a JAX beta.

    >>> round(float(finite_n_expected_max_weight(100, 0.0, STANDARD_NORMAL)), 6)
    0.01
    """
    p = _setup(n, law)
    _check_beta(beta)
    ns = namespace(beta)
    if not ns.is_jax:
        return np.float64(_host_curve(p)(math.log(max(float(beta), 1e-300))))
    b = as_float(beta)
    lb = jnp.log(jnp.maximum(b * p.factor, jnp.asarray(1e-30, b.dtype)))
    return _ew1_jit(lb, jnp.asarray(p.n, b.dtype), jnp.asarray(p.e1, b.dtype), p.law)


def finite_n_chi(n, beta, law):
    """chi(beta) = d E[W_(1)](n, beta)/d log beta (no finite differences).

    Device (JAX beta): ``jax.jvp`` under the integral. Host: the derivative of a Chebyshev interpolant of
    E W_(1)(log beta) (:func:`phasejax._numerics.peak.host_derivative`, float64). Identity
    (docs/theory.md §e): chi = E[beta W_(1) (<u>_w - u_(1))] over contexts.

    >>> float(finite_n_chi(1000, 5.0, STANDARD_NORMAL)) > 0
    True
    """
    p = _setup(n, law)
    _check_beta(beta)
    if not namespace(beta).is_jax:
        if float(beta) == 0.0:  # chi = beta dE/dbeta -> 0
            return np.float64(0.0)
        return np.float64(host_derivative(_host_curve(p), math.log(float(beta))))
    return jax.jvp(lambda b: finite_n_expected_max_weight(n, b, law), (as_float(beta),),
                   (as_float(beta),))[1]


class FinitePeak(NamedTuple):
    """beta_peak(n) of the exact finite-n susceptibility, in the law's own beta (multiplying the score).

    ``scale``: the law's critical scale at n (n^{2/alpha} for power-law gap laws, beta_c for
    GaussianScores, the hazard at the 1/n quantile for a ScoreLaw); ``ratio`` = beta_peak/scale (for a gap
    law, ``lambda_peak`` = beta_peak / n^{2/alpha})."""

    beta_peak: float
    chi_max: float
    E_max_weight: float
    n: float
    scale: float
    ratio: float

    @property
    def lambda_peak(self) -> float:
        return self.ratio


def _hazard_at_quantile(sl: ScoreLaw, n: float) -> float:
    """d log F/d e at the 1/n quantile of the energy (the predictor's scale, docs/theory.md §h)."""
    e = float(np.asarray(sl.quantile(np.float64(-math.log(n)), *sl.params)))
    width = 0.1 * abs(e) if e != 0 else 1e-3
    return host_derivative(lambda v: float(sl.log_cdf(np.float64(v), *sl.params)), e, width=width)


def _law_scale(law, sl: ScoreLaw, n: float) -> float:
    if hasattr(law, "critical_scale"):
        return float(law.critical_scale(n))
    alpha = getattr(law, "alpha", None)
    if alpha is not None and math.isfinite(alpha):
        return n ** (2.0 / alpha)
    return _hazard_at_quantile(sl, n)


def finite_n_beta_peak(n, law) -> FinitePeak:
    """beta_peak(n) = argmax_beta d E[W_(1)](n, beta)/d log beta, exactly, for any score law (docs/theory.md §h).

    On the host in float64: E W_(1)(log beta) is interpolated by Chebyshev polynomials on a window of width
    3 around the hazard of the energy law at its 1/n quantile (the universal predictor's scale; the window
    moves until it holds the peak) and the peak is the root of the second derivative
    (:func:`phasejax._numerics.peak.host_peak`).

    >>> pk = finite_n_beta_peak(1e4, STANDARD_NORMAL)
    >>> 0.8 < pk.ratio < 1.1  # beta_peak / beta_c for N(0, 1) scores
    True
    """
    p = _setup(n, law)
    if p.n < 2:
        raise InputError(f"n must be >= 2 for a susceptibility peak (one key always has weight 1), got {n!r}")
    x0 = math.log(0.9 * _hazard_at_quantile(p.law, p.n))  # in the energy law's own beta
    f = _host_curve(p._replace(factor=1.0))
    x, ew, chi = host_peak(f, x0 - 1.5, x0 + 1.5)
    bp = math.exp(x) / p.factor
    scale = _law_scale(law, p.law, p.n)
    return FinitePeak(bp, chi, ew, p.n, scale, bp / scale)


def exact_expected_max_weight(n, beta, d=None, *, alpha=None):
    """Exact finite-n E[max weight] for n i.i.d. keys on S^{d-1} (docs/theory.md §c, last bullet).

    The gap law u/2 ~ Beta(a, b): a = b = (d-1)/2 for uniform keys; a = alpha/2, b = (d-1)/2 for PowerLawCap
    (d = 3 if omitted); :func:`finite_n_expected_max_weight` with :func:`beta_gap_score_law`.

    >>> round(float(exact_expected_max_weight(100, 0.0, 3)), 6)
    0.01
    """
    if alpha is not None and d is None:
        d = 3
    return finite_n_expected_max_weight(n, beta, beta_gap_score_law(*_beta_params(d, alpha)))


def exact_beta_peak(n, d=None, *, alpha=None) -> FinitePeak:
    """beta_peak(n) of uniform keys on S^{d-1} (or PowerLawCap with ``alpha``), exactly (docs/theory.md §c).

    :func:`finite_n_beta_peak` with :func:`beta_gap_score_law`; ``scale`` = n^{2/alpha}, so
    ``lambda_peak`` = beta_peak / n^{2/alpha}, which tends to lambda* with relative correction O(n^{-2/alpha}).

    >>> from phasejax.theory.poisson import lambda_star
    >>> pk = exact_beta_peak(1e6, 3)
    >>> abs(pk.lambda_peak / lambda_star(3).lambda_star - 1) < 1e-3
    True
    """
    if alpha is not None and d is None:
        d = 3
    a, b = _beta_params(d, alpha)
    pk = finite_n_beta_peak(n, beta_gap_score_law(a, b))
    scale = pk.n ** (1.0 / a)
    return pk._replace(scale=scale, ratio=pk.beta_peak / scale)
