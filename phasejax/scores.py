"""Score laws beyond the sphere: Gaussian scores (the random energy model), almost-simplex tokens,
and the exact finite-n E[max weight], susceptibility and beta_peak(n) for any score law (THEORY h).

Conventions. beta multiplies the *score* s: weights softmax(beta s). Every law is described by its
**energy** e = -s (for a key law on the sphere: the gap u = 1 - <q,k>), so the weights are
softmax(-beta e) exactly as in :mod:`phasejax.observables`, which is shift invariant: energies may be
negative. The top key is the one with the smallest energy.

Contents
--------
* :class:`GaussianScores` ``(sigma)``: i.i.d. N(0, sigma^2) scores as a key law usable by
  ``sampled_observables``, ``ensemble``, ``nearest_gap_samples`` and ``scaling_scan`` (energies
  u = -s, possibly negative). There is no power-law local exponent: ``alpha = inf`` (Gumbel domain;
  2/alpha = 0, beta_peak grows slower than any power of n), ``C = nan``; code that needs a critical
  scale uses ``critical_scale(n) = beta_c = sqrt(2 log n)/sigma``.
* The random-energy-model limit: :func:`rem_beta_c`, the Poisson-Dirichlet PD(m, 0) sampler
  :func:`pd_sample`, :func:`pd_expected_max_weight`, :func:`pd_chi`, :func:`pd_expected_sum_w2`.
* :class:`ScoreLaw` / :func:`score_law`: an energy law given by a jittable log-CDF (and a host
  quantile); built for every ``BetaGapLaw`` (UniformSphere at any d, PowerLawCap, Subsphere) and
  ``GaussianScores``, or from user callables (:meth:`ScoreLaw.from_callables`).
* :func:`finite_n_expected_max_weight`, :func:`finite_n_chi`, :func:`finite_n_beta_peak`: the exact
  finite-n E[W_(1)], chi = dE/dlog beta (jax autodiff under the integral) and its peak (Newton on
  dchi/dlog beta).
* :class:`AlmostSimplex` ``(rho)``: Chen et al.'s single-query almost-simplex tokens in closed form.

Shape contracts
---------------
* ``finite_n_expected_max_weight(n, beta, law)``, ``finite_n_chi``: ``n`` static (host float),
  ``beta`` a scalar (may be traced: jittable and differentiable in beta); return a scalar.
* ``pd_sample(key, m, k)`` -> :class:`PDSample` with ``weights`` (k,), ``tail_mass`` (),
  ``tail_sd`` (); ``vmap`` over ``key``.
* ``pd_expected_max_weight(m)``, ``pd_chi(m)``, ``pd_expected_sum_w2(m)``: scalar m in (0, 1),
  return Python floats (computed in float64).
* ``GaussianScores.sample_gaps(key, n)`` -> (n,); ``nearest_gaps(key, n, m)`` -> (m,) ascending.
* ``AlmostSimplex.max_weight(n, beta)``: broadcasts over ``beta`` (and ``n``).

Host-level results (``finite_n_beta_peak``, the PD quadratures) always compute in float64
(``jax.enable_x64``) whatever the global mode.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betainc, gammainc, gammaln, log_ndtr, ndtri
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import InputError, check_int, check_real
from .geometry import BetaGapLaw, KeyLaw
from .theory import _derivs3, _exp_sinh, _tanh_sinh

__all__ = [
    "AlmostSimplex",
    "FinitePeak",
    "GaussianScores",
    "PDSample",
    "ScoreLaw",
    "finite_n_beta_peak",
    "finite_n_chi",
    "finite_n_expected_max_weight",
    "pd_chi",
    "pd_expected_max_weight",
    "pd_expected_sum_w2",
    "pd_sample",
    "rem_beta_c",
    "score_law",
]


# =========================================================================== the random energy model


def rem_beta_c(n, sigma=1.0):
    """Freezing point of the random energy model: beta_c = sqrt(2 log n)/sigma (THEORY h).

    Softmax over n i.i.d. N(0, sigma^2) scores. On the sphere the scores are close to N(0, 1/d)
    when d is large against log n, so beta_c = sqrt(2 d log n). ``n`` may be an array.

    >>> round(float(rem_beta_c(1e6)), 6)
    5.256522
    """
    sigma = check_real("sigma", sigma, positive=True)
    n_arr = np.asarray(n, np.float64)
    if np.any(n_arr < 2):
        raise InputError(f"n must be >= 2 for beta_c = sqrt(2 log n)/sigma, got {n!r}")
    out = np.sqrt(2.0 * np.log(n_arr)) / sigma
    return float(out) if out.ndim == 0 else out


class GaussianScores(KeyLaw):
    """i.i.d. N(0, sigma^2) scores: the random energy model (THEORY h) as a phasejax key law.

    ``sample_gaps(key, n)`` returns the energies u = -s (softmax(-beta u) = softmax(beta s)); they are
    negative for positive scores, which every streaming observable accepts (it shifts by the
    minimum; ``mean_gap`` is then -<s>_w). Attributes:

    * ``d = 0``: there are no vectors (``sample_keys`` raises); ``equivalent_d = 1/sigma^2`` is the
      dimension of the sphere whose cosines have the same variance.
    * ``alpha = inf``, ``C = nan``, ``h = inf``: the Gumbel domain has no power-law local exponent.
    * ``critical_scale(n) = beta_c = sqrt(2 log n)/sigma``: the scale that scaling code uses in place
      of n^{2/alpha} (``scaling_scan``'s bracket is lambda beta_c).
    * ``choose_m(n, lambda_min, tail_tol)``: the Gumbel-tail rule for the nearest-m truncation.
    * ``tail_point(n)``: for :func:`phasejax.phase.predict_beta_peak` (the upper-tail hazard).

    >>> import jax
    >>> law = GaussianScores(0.5)
    >>> u = law.sample_gaps(jax.random.key(0), 1000)
    >>> u.shape, round(law.critical_scale(1e6), 4)
    ((1000,), 10.513)
    """

    sigma: float = eqx.field(static=True)

    def __init__(self, sigma: float = 1.0):
        self.d = 0
        self.sigma = check_real("sigma", sigma, positive=True)

    @property
    def alpha(self) -> float:
        return math.inf

    @property
    def C(self) -> float:  # noqa: N802
        return math.nan

    @property
    def h(self) -> float:
        return math.inf

    @property
    def equivalent_d(self) -> float:
        return 1.0 / self.sigma**2

    @property
    def has_gap_law(self) -> bool:
        return True

    def critical_scale(self, n) -> float:
        """beta_c = sqrt(2 log n)/sigma (:func:`rem_beta_c`)."""
        return rem_beta_c(n, self.sigma)

    def sample_keys(self, key, query, n):
        raise InputError("GaussianScores has scores, not key vectors (d = 0); use sample_gaps (energies u = -s)")

    def sample_gaps(self, key: PRNGKeyArray, n: int, *, dtype=None) -> Float[Array, " n"]:
        """n energies u = -s, s ~ N(0, sigma^2) i.i.d."""
        n = check_int("n", n, minimum=1)
        dtype = dtype or jnp.result_type(float)
        return -self.sigma * jax.random.normal(key, (n,), dtype)

    def energy_log_cdf(self, u):
        """log P(u_i <= u) = log Phi(u/sigma) (accurate in the far lower tail)."""
        return log_ndtr(jnp.asarray(u) / self.sigma)

    def nearest_gaps(self, key: PRNGKeyArray, n: int, m: int, *, dtype=None) -> Float[Array, " m"]:
        """The m smallest of n energies (the m largest scores), exactly, ascending, in O(m) for any n.

        THEORY a's order-statistics construction (:mod:`phasejax.extreme`): u_(i) = sigma
        Phi^{-1}(U_(i)) with U_(1..m) the m smallest of n uniforms, from log U_(i).
        """
        from .extreme import _check_n_m

        n, m = _check_n_m(n, m)
        dtype = jnp.dtype(dtype or jnp.result_type(float))
        return _gauss_nearest(self.sigma, key, n, m, dtype)

    def choose_m(self, n: int, lambda_min: float, *, tail_tol: float = 1e-7, m_max: int = 1 << 20) -> int:
        """Nearest energies to keep at beta >= lambda_min beta_c (Gumbel-tail rule).

        In the REM limit the top points relative to the first are Gamma_k^{-1/mu}, mu = beta_c/beta
        (PD(mu, 0)); the points beyond the m-th carry expected mass mu/(1-mu) m^{1-1/mu} relative to
        the first. For mu >= 1 (beta <= beta_c) that diverges: every key matters, m = n.
        """
        n = check_int("n", n, minimum=1)
        lam = check_real("lambda_min", lambda_min, positive=True)
        mu = 1.0 / lam
        if mu >= 1.0:
            return int(min(n, m_max)) if n <= m_max else n
        m = 16
        while m < min(n, m_max) and mu / (1 - mu) * m ** (1 - 1 / mu) >= tail_tol:
            m *= 2
        return int(min(n, m, m_max))

    def tail_point(self, n):
        """The score law at its 1/n upper quantile (for :func:`phasejax.phase.predict_beta_peak`)."""
        from .phase import GaussianScores as _Tail

        return _Tail(self.sigma).tail_point(n)


@functools.partial(jax.jit, static_argnames=("sigma", "n", "m", "dtype"))
def _gauss_nearest(sigma, key, n, m, dtype):
    from .extreme import _nearest_log_uniforms

    log_u = _nearest_log_uniforms(key, n, m, dtype)
    return sigma * ndtri(jnp.exp(log_u))


# --------------------------------------------------------------------------- Poisson-Dirichlet PD(m, 0)


def _check_m(m, name="m"):
    m = check_real(name, m)
    if not 0.0 < m < 1.0:
        raise InputError(f"{name} must be in (0, 1) (m = beta_c/beta; PD(m, 0) needs beta > beta_c), got {m!r}")
    return m


class PDSample(NamedTuple):
    """The first k ordered PD(m, 0) weights of one draw, and what the truncation leaves out.

    ``tail_mass``: the share of the total carried by the points beyond the k-th (their conditional
    mean, included in the normaliser); ``tail_sd``: the conditional standard deviation of that
    left-out sum relative to the total, i.e. the (1-sigma) relative error of every weight."""

    weights: Float[Array, " k"]
    tail_mass: Float[Array, ""]
    tail_sd: Float[Array, ""]


@functools.partial(jax.jit, static_argnames=("k", "dtype"))
def _pd_sample(key, m, k, dtype):
    gam = jnp.cumsum(jax.random.exponential(key, (k,), dtype))
    logx = -jnp.log(gam) / m
    lg = jnp.log(gam[-1])
    # Given Gamma_k the later points are a unit Poisson process on (Gamma_k, inf) (Campbell):
    # E tail = int x^{-1/m} dx = m/(1-m) Gamma_k^{1-1/m}; Var tail = m/(2-m) Gamma_k^{1-2/m}.
    log_tail = jnp.log(m / (1 - m)) + (1 - 1 / m) * lg
    log_var = jnp.log(m / (2 - m)) + (1 - 2 / m) * lg
    log_tot = jnp.logaddexp(jax.nn.logsumexp(logx), log_tail)
    return PDSample(jnp.exp(logx - log_tot), jnp.exp(log_tail - log_tot), jnp.exp(0.5 * log_var - log_tot))


def pd_sample(key: PRNGKeyArray, m: float, k: int = 4096, *, dtype=None) -> PDSample:
    """One draw of the ordered Poisson-Dirichlet PD(m, 0) weights, truncated to the first k (THEORY h).

    Points x_i = Gamma_i^{-1/m} (Gamma_i the arrivals of a unit Poisson process), weights
    x_i / sum_j x_j. The points beyond the k-th enter the normaliser through their exact conditional
    mean given Gamma_k, m/(1-m) Gamma_k^{1-1/m}; the neglected fluctuation has conditional sd
    sqrt(m/(2-m)) Gamma_k^{1/2-1/m}, reported relative to the total as ``tail_sd`` (about
    k^{1/2-1/m}: about 1e-6 at m = 0.5 and 4e-3 at m = 0.9 for k = 1e4). This is the beta > beta_c limit
    of Gaussian-score softmax with m = beta_c/beta.

    >>> import jax
    >>> s = pd_sample(jax.random.key(0), 0.5, 1024)
    >>> s.weights.shape, bool(s.weights[0] >= s.weights[1])
    ((1024,), True)
    """
    m = _check_m(m)
    k = check_int("k", k, minimum=2)
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    return _pd_sample(key, jnp.asarray(m, dtype), k, dtype)


_PD_S = _exp_sinh(-40.0, math.log(80.0), 1 / 16)  # s in (0, inf), weight e^{-s}


def _phi_m(m, s):
    """phi_m(s) = s^m gamma(1-m, s) - (1 - e^{-s}), gamma the lower incomplete gamma."""
    g = jnp.exp(m * jnp.log(s) + gammaln(1.0 - m)) * gammainc(1.0 - m, s)
    return g + jnp.expm1(-s)


def _pd_ew1(m):
    ls, lw = (jnp.asarray(a, m.dtype) for a in _PD_S)
    s = jnp.exp(ls)
    return jnp.sum(jnp.exp(lw - s) / (1.0 + _phi_m(m, s)))


_pd_ew1_jit = jax.jit(_pd_ew1)


@jax.jit
def _pd_ew1_and_chi(m):
    ew, dm = jax.jvp(_pd_ew1, (m,), (jnp.ones_like(m),))
    return ew, -m * dm


def pd_expected_max_weight(m: float) -> float:
    """E W_(1) of PD(m, 0): int_0^inf e^{-s} ds / (1 + phi_m(s)) (THEORY h).

    phi_m(s) = s^m gamma(1-m, s) - (1 - e^{-s}) with gamma(a, s) = Gamma(a) P(a, s) the lower
    incomplete gamma; an exp-sinh rule on (0, 80), float64. E W_(1) = 1 - m log 2 + O(m^2) as m -> 0
    and -> 0 as m -> 1 (beta -> beta_c from above).

    >>> round((1 - pd_expected_max_weight(1e-4)) / 1e-4, 3)  # log 2
    0.693
    """
    m = _check_m(m)
    with jax.enable_x64(True):
        return float(_pd_ew1_jit(jnp.float64(m)))


def pd_chi(m: float) -> float:
    """Susceptibility of the PD limit, chi = d E W_(1)/d log beta = -dE W_(1)/d log m (m = beta_c/beta).

    By jax autodiff under the quadrature of :func:`pd_expected_max_weight`. It grows monotonically
    and diverges like log(1/(1-m)) as m -> 1: the peak sits at the freezing point (THEORY h).

    >>> pd_chi(0.9) > pd_chi(0.5) > 0
    True
    """
    m = _check_m(m)
    with jax.enable_x64(True):
        return float(_pd_ew1_and_chi(jnp.float64(m))[1])


def pd_expected_sum_w2(m: float) -> float:
    """E sum_i w_i^2 of PD(m, 0) by quadrature of its Laplace functional; the identity is 1 - m (THEORY h).

    The points form a Poisson process with intensity mu(dx) = m x^{-m-1} dx, so (Mecke, with
    1/S^2 = int t e^{-tS} dt) E sum w^2 = int_0^inf dt t B(t) exp(-A(t)),
    A(t) = int mu(dx) (1 - e^{-tx}), B(t) = int mu(dx) x^2 e^{-tx}. A and B are computed by an
    exp-sinh rule (scaled out: A(t) = t^m A(1), B(t) = t^{m-2} B(1)), the t-integral by a trapezoid
    rule in log t over the range where A(t) runs from e^-40 to 80. Used as an identity test of the PD machinery.

    >>> round(pd_expected_sum_w2(0.3), 8)
    0.7
    """
    m = _check_m(m)
    # A(1) = int_0^inf m y^{-m-1} (1 - e^{-y}) dy and B(1) = int m y^{1-m} e^{-y} dy, trapezoid in
    # v = log y on [-60, log 50] with the Euler-Maclaurin end correction -h^2/12 (f'(b) - f'(a)), plus
    # the tails in closed form: int_0^{e^-60} ~ m e^{-60(1-m)}/(1-m) (1 - e^{-y} ~ y), int_50^inf = 50^{-m}
    vy, h = np.linspace(-60.0, math.log(50.0), 20001, retstep=True)
    fa = m * np.exp(-m * vy) * -np.expm1(-np.exp(vy))
    da = (1 - m) * fa[0], -m * fa[-1]
    a1 = float(np.trapezoid(fa, vy) - h * h / 12 * (da[1] - da[0]) + m * np.exp(-60.0 * (1 - m)) / (1 - m)
               + 50.0 ** (-m))
    vb = np.linspace(-60.0, math.log(800.0), 20001)
    b1 = float(np.trapezoid(m * np.exp((2 - m) * vb - np.exp(vb)), vb))
    # t-integral in v = log t over the range where a1 t^m runs from e^-40 to 80, integrand in logs
    z = np.linspace(-40.0, math.log(80.0), 4001)  # z = log(a1 t^m) = log a1 + m v
    v = (z - math.log(a1)) / m
    f = b1 * np.exp(m * v - np.exp(z))  # t B(t) e^{-A(t)} dt = b1 t^m e^{-a1 t^m} dv
    lo_tail = b1 / (m * a1) * -np.expm1(-np.exp(z[0]))  # int_0^{t_0} in closed form (about e^-40)
    return float(np.trapezoid(f, v) + lo_tail)


# =========================================================================== generic energy laws


class ScoreLaw(NamedTuple):
    """An energy law (energy e = -score; for keys on the sphere, the gap u) for the exact integrals.

    * ``log_cdf(e, *params)``: log P(E <= e), jittable and differentiable in e, accurate in the lower
      tail (the top keys live there); 0 above the support.
    * ``quantile(log_p, *params)``: host function, float64 NumPy array of log p -> e with
      P(E <= e) = p, full relative precision for p down to 1e-300.
    * ``e_max``: upper end of the support (``math.inf`` if unbounded).
    * ``name``; ``params``: a tuple of floats passed to both callables. They are *traced* inside the
      integrals, so laws that differ only in ``params`` (e.g. the uniform sphere at every d) share one
      compilation.

    Build each law once (the callables are part of the compilation key); the built-in ones come from
    :func:`score_law`.
    """

    log_cdf: Callable
    quantile: Callable
    e_max: float = math.inf
    name: str = "custom"
    params: tuple = ()

    @classmethod
    def from_callables(cls, log_cdf: Callable, *, e_min: float, e_max: float = math.inf,
                       quantile: Callable | None = None, name: str = "custom", params: tuple = ()) -> ScoreLaw:
        """A law from a jittable ``log_cdf(e, *params)``; without ``quantile`` it is inverted on the host by
        Brent's method on log_cdf(e) = log p in [e_min, min(e_max, e_min + 1e6)] (float64).

        >>> import math, jax.numpy as jnp
        >>> law = ScoreLaw.from_callables(lambda e: jnp.log(jnp.clip(e, 0.0, 1.0)), e_min=0.0, e_max=1.0)
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

    def host_log_cdf(e, params):
        with jax.enable_x64(True):
            return float(log_cdf(jnp.float64(e), *params))

    def q(log_p, *params):
        log_p = np.asarray(log_p, np.float64)
        out = np.empty_like(log_p)
        for i, lp in np.ndenumerate(log_p):
            out[i] = brentq(lambda e, lp=lp: host_log_cdf(e, params) - lp, lo, hi, xtol=1e-300, rtol=1e-15,
                            maxiter=400)
        return out

    return q


def _beta_log_cdf(u, a, b):
    """log I_{u/2}(a, b) (a, b may be traced); 0 above u = 2."""
    x = jnp.asarray(u) / 2.0
    inside = (x > 0) & (x < 1)
    xs = jnp.where(inside, x, 0.5)  # betainc's x-derivatives are NaN at 0 and 1: never evaluate there
    val = jnp.log(betainc(jnp.asarray(a, x.dtype), jnp.asarray(b, x.dtype), xs))
    return jnp.where(inside, val, jnp.where(x >= 1, 0.0, -jnp.inf))


def _beta_quantile(log_p, a, b):
    """u with I_{u/2}(a, b) = p, from log p (scipy, polished by Newton in log space)."""
    from scipy import special as sps

    lp = np.asarray(log_p, np.float64)
    p = np.exp(lp)
    lb = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    x = np.asarray(sps.betaincinv(a, b, p), np.float64)
    x = np.where(x <= 0, np.exp((lp + math.log(a) + lb) / a), x)  # small-x series x^a/(a B(a,b)) = p
    for _ in range(4):
        lf = np.log(sps.betainc(a, b, x))
        ld = (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - lb
        x = np.clip(x - (lf - lp) * np.exp(lf - ld), 1e-300, 1.0)
    return 2.0 * x


def _std_normal_log_cdf(e):
    return log_ndtr(e)


def _std_normal_quantile(log_p):
    from scipy import special as sps

    return np.asarray(sps.ndtri_exp(np.asarray(log_p, np.float64)))


_BETA_GAP = ScoreLaw(_beta_log_cdf, _beta_quantile, 2.0, "BetaGap")
_STD_NORMAL = ScoreLaw(_std_normal_log_cdf, _std_normal_quantile, math.inf, "GaussianScores")


def score_law(law) -> tuple[ScoreLaw, float]:
    """(energy law, beta factor) for a phasejax law: the integrals use beta * factor on the ``ScoreLaw``.

    * ``BetaGapLaw`` (UniformSphere at any d, PowerLawCap, Subsphere): the gap law u/2 ~ Beta(a, b),
      ``params = (a, b)``, factor 1 (beta multiplies <q,k> = 1 - u).
    * ``GaussianScores(sigma)``: the standard normal energy, factor sigma.
    * ``ScoreLaw``: itself, factor 1.

    >>> from phasejax.geometry import UniformSphere
    >>> score_law(UniformSphere(5))[0].params
    (2.0, 2.0)
    """
    if isinstance(law, ScoreLaw):
        return law, 1.0
    if isinstance(law, GaussianScores):
        return _STD_NORMAL, float(law.sigma)
    if isinstance(law, BetaGapLaw):
        a, b = law.gap_beta_params
        return _BETA_GAP._replace(name=type(law).__name__, params=(float(a), float(b))), 1.0
    raise InputError(
        f"law must be a BetaGapLaw (UniformSphere, PowerLawCap, Subsphere), GaussianScores or ScoreLaw; got {law!r}"
    )


# =========================================================================== exact finite n (THEORY h)

_T_CUT = 45.0
# 34 x 34 x 49 nodes: E W_(1) and chi to ~1e-8 absolute (checked against 55 x 55 x 81 for the sphere at
# d = 16 and 128 and for Gaussian scores, n = 1e4 .. 1e6)
_RULE_R = _exp_sinh(-34.0, math.log(60.0), 1 / 6)  # r: the top key's Exp(1) variable
_RULE_S = _exp_sinh(-34.0, math.log(60.0), 1 / 6)  # s: 1/(1+T) = int e^{-s(1+T)} ds
_RULE_T = _tanh_sinh(4.0, 1 / 6)  # t = s e^{-beta y}: the distance y of the others above the top


def _top_energies(law: ScoreLaw, n: float) -> np.ndarray:
    """e_1 at the r nodes: P(E <= e_1) = 1 - e^{-r/n} (so P(all n-1 others above) = e^{-r (n-1)/n})."""
    r = np.exp(_RULE_R[0])
    return np.asarray(law.quantile(np.log(-np.expm1(-r / n)), *law.params), np.float64)


def _ew1_generic(log_beta, n, law: ScoreLaw, params, e1, dtype):
    """E W_(1) = int dr e^{-r} int ds e^{-s} [1 - D(s,r)/P(r)]^{n-1}  (THEORY h, bullet 2).

    By parts, D/P = (1 - e^{-t_lo}) + int_{t_lo}^{min(s, T)} dt e^{-t} G(log(s/t)/beta), with
    G(y) = [F(e_1 + y) - F(e_1)] / (1 - F(e_1)) the law of the distance of another key above the
    top, t_lo = s e^{-beta (e_max - e_1)} (0 for an unbounded law)."""
    beta = jnp.exp(log_beta)
    lr, lwr = (jnp.asarray(v, dtype) for v in _RULE_R)
    ls, lws = (jnp.asarray(v, dtype) for v in _RULE_S)
    lsig, l1ms, lwt = (jnp.asarray(v, dtype) for v in _RULE_T)
    r = jnp.exp(lr)
    e1 = jnp.asarray(e1, dtype)[:, None, None]
    lsv = ls[None, :, None]
    cut = math.log(_T_CUT)
    if math.isfinite(law.e_max):
        loga = lsv - beta * (law.e_max - e1)
        logb = jnp.maximum(jnp.minimum(lsv, cut), loga)
        lab = jnp.minimum(loga - logb, 0.0)
        logt = logb + jnp.logaddexp(lsig[None, None, :], lab + l1ms[None, None, :])
        l1mab = jnp.log(-jnp.expm1(jnp.minimum(lab, -1e-30)))
        first = -jnp.expm1(-jnp.exp(loga[..., 0]))
    else:
        logb = jnp.minimum(lsv, cut)
        logt = logb + lsig[None, None, :]
        l1mab = 0.0
        first = 0.0
    y = (lsv - logt) / beta
    l1 = law.log_cdf(e1, *params)
    g = jnp.exp(l1) * jnp.expm1(law.log_cdf(e1 + y, *params) - l1) / (-jnp.expm1(l1))
    g = jnp.clip(g, 0.0, 1.0)
    w = jnp.exp(logb + l1mab + lwt[None, None, :] - jnp.exp(logt))
    x = first + jnp.sum(w * g, axis=-1)
    x = jnp.clip(x, 0.0, 1.0 - jnp.finfo(dtype).epsneg)
    integrand = jnp.exp((n - 1.0) * jnp.log1p(-x))
    wr = jnp.exp(lwr - r)[:, None]
    ws = jnp.exp(lws - jnp.exp(ls))[None, :]
    return jnp.sum(wr * ws * integrand)


@functools.partial(jax.jit, static_argnums=(2,))
def _ew1_chi_jit(log_beta, n, law, params, e1):
    def f(y):
        return _ew1_generic(y, n, law, params, e1, log_beta.dtype)

    return jax.jvp(f, (log_beta,), (jnp.ones_like(log_beta),))


@functools.partial(jax.jit, static_argnums=(2,))
def _ew1_all3_jit(log_beta, n, law, params, e1):
    return _derivs3(lambda y: _ew1_generic(y, n, law, params, e1, log_beta.dtype), log_beta)


class _Prepared(NamedTuple):
    n: float
    law: ScoreLaw  # static part (params removed)
    params: tuple
    factor: float
    e1: np.ndarray


def _setup(n, law) -> _Prepared:
    n = check_real("n", n, minimum=1.0)
    sl, factor = score_law(law)
    # the static part (compilation key) drops params and name: the sphere at every d, PowerLawCap and
    # Subsphere share one compilation
    return _Prepared(n, sl._replace(params=(), name=""), sl.params, factor, _top_energies(sl, n))


def _args(p: _Prepared, dtype):
    return (jnp.asarray(p.n, dtype), p.law, tuple(jnp.asarray(v, dtype) for v in p.params),
            jnp.asarray(p.e1, dtype))


def _log_beta(beta, factor):
    if not isinstance(beta, jax.core.Tracer):
        beta = check_real("beta", beta, nonnegative=True)
    is_float = hasattr(beta, "dtype") and jnp.issubdtype(beta.dtype, jnp.floating)
    dtype = beta.dtype if is_float else jnp.result_type(float)
    beta = jnp.asarray(beta, dtype)
    return jnp.log(jnp.maximum(beta * jnp.asarray(factor, dtype), jnp.asarray(1e-30, dtype)))


def finite_n_expected_max_weight(n, beta, law):
    """Exact E[max weight] of softmax(beta s) over n i.i.d. scores from ``law`` (THEORY h, bullet 2).

    E W_(1)(n, beta) = int dr e^{-r} int ds e^{-s} [1 - D(s,r)/P(r)]^{n-1}: the top score is put at
    its quantile P(below top) = e^{-r/n}, r ~ Exp(1); the other n-1 are i.i.d. below it;
    D(s,r) = int p(x)(1 - exp(-s e^{-beta x})) dx over the distance x below the top. Fixed
    double-exponential nodes (34 x 34 x 49), so the result is jittable and differentiable in beta.
    ``law``: UniformSphere/PowerLawCap/Subsphere (beta multiplies <q,k>; agrees with
    :func:`phasejax.theory.exact_expected_max_weight`), :class:`GaussianScores`, or a
    :class:`ScoreLaw`. ``n`` is static (host); ``beta`` a scalar >= 0 (beta = 0 is the limit 0+).

    >>> round(float(finite_n_expected_max_weight(100, 0.0, GaussianScores())), 6)
    0.01
    """
    p = _setup(n, law)
    lb = _log_beta(beta, p.factor)
    return _ew1_chi_jit(lb, *_args(p, lb.dtype))[0]


def finite_n_chi(n, beta, law):
    """chi(beta) = d E[W_(1)](n, beta)/d log beta, by ``jax.jvp`` under the integral (no finite differences).

    Same arguments as :func:`finite_n_expected_max_weight`; identity (THEORY e): chi = E[beta W_(1)
    (<u>_w - u_(1))] over contexts.

    >>> float(finite_n_chi(1000, 5.0, GaussianScores())) > 0
    True
    """
    p = _setup(n, law)
    lb = _log_beta(beta, p.factor)
    return _ew1_chi_jit(lb, *_args(p, lb.dtype))[1]


class FinitePeak(NamedTuple):
    """beta_peak(n) of the exact finite-n susceptibility, in the law's own beta (multiplying the score).

    ``scale``: the law's critical scale at n (beta_c for GaussianScores, n^{2/alpha} for power-law
    gap laws, the hazard at the 1/n quantile for a ScoreLaw); ``ratio`` = beta_peak/scale."""

    beta_peak: float
    chi_max: float
    E_max_weight: float
    n: float
    scale: float
    ratio: float


def _hazard_at_quantile(sl: ScoreLaw, n: float) -> float:
    """d log F/d e at the 1/n quantile of the energy (the predictor's scale, THEORY h)."""
    e = float(np.asarray(sl.quantile(np.float64(-math.log(n)), *sl.params)))
    with jax.enable_x64(True):
        return float(jax.grad(lambda v: sl.log_cdf(v, *sl.params))(jnp.float64(e)))


def _law_scale(law, n: float) -> float:
    if hasattr(law, "critical_scale"):
        return float(law.critical_scale(n))
    alpha = getattr(law, "alpha", None)
    if alpha is not None and math.isfinite(alpha):
        return n ** (2.0 / alpha)
    return _hazard_at_quantile(score_law(law)[0], n)


def _peak_search(all3, x0: float, step: float = 0.25, tol: float = 1e-10, max_expand: int = 60):
    """Maximum of g' = all3(x)[1]: a 3-point scan from x0 widened until the best point is inside, then
    Newton on g'' = 0 (guarded to the bracket of the best point's neighbours)."""
    cache: dict[float, tuple] = {}

    def ev(x):
        if x not in cache:
            cache[x] = tuple(float(v) for v in all3(jnp.float64(x)))
        return cache[x]

    xs = [x0 - step, x0, x0 + step]
    for _ in range(max_expand):
        k = int(np.argmax([ev(x)[1] for x in xs]))
        if k == 0:
            xs.insert(0, xs[0] - step)
        elif k == len(xs) - 1:
            xs.append(xs[-1] + step)
        else:
            break
    else:
        raise InputError(f"no susceptibility peak found within {max_expand} steps of log beta = {x0:.4g}")
    lo, hi, x = xs[k - 1], xs[k + 1], xs[k]
    for _ in range(60):  # safeguarded Newton: keep g''(lo) >= 0 >= g''(hi)
        _, _, d2, d3 = ev(x)
        if not (math.isfinite(d2) and math.isfinite(d3)):
            raise InputError(f"non-finite derivatives of E[W_(1)] at log beta = {x:.6g} (quadrature failure)")
        if d2 > 0:
            lo = x
        else:
            hi = x
        new = x - d2 / d3 if d3 < 0 else 0.5 * (lo + hi)
        if not lo < new < hi:
            new = 0.5 * (lo + hi)
        done = abs(new - x) < tol * max(1.0, abs(x)) or hi - lo < tol
        x = new
        if done:
            break
    return x, ev(x)


def finite_n_beta_peak(n, law) -> FinitePeak:
    """beta_peak(n) = argmax_beta d E[W_(1)](n, beta)/d log beta, exactly, for any score law (THEORY h).

    Newton on d chi/d log beta = 0, every derivative by jax autodiff under the integral of
    :func:`finite_n_expected_max_weight`, started from a scan of log beta around 0.9 times the hazard
    of the energy law at its 1/n quantile (the universal predictor's scale). float64 throughout. For
    the uniform sphere it agrees with :func:`phasejax.theory.exact_beta_peak`.

    >>> pk = finite_n_beta_peak(1e4, GaussianScores())
    >>> 0.8 < pk.ratio < 1.1  # beta_peak / beta_c
    True
    """
    p = _setup(n, law)
    if p.n < 2:
        raise InputError(f"n must be >= 2 for a susceptibility peak (one key always has weight 1), got {n!r}")
    sl = p.law._replace(params=p.params)
    guess = 0.9 * _hazard_at_quantile(sl, p.n)
    with jax.enable_x64(True):
        args = _args(p, jnp.float64)

        def all3(x):
            return _ew1_all3_jit(x, *args)

        x, (ew, chi, _, _) = _peak_search(all3, math.log(guess))
    bp = math.exp(x) / p.factor
    scale = _law_scale(law, p.n)
    return FinitePeak(bp, chi, ew, p.n, scale, bp / scale)


# =========================================================================== almost-simplex tokens


class AlmostSimplex(eqx.Module):
    """Chen, Lin, Polyanskiy, Rigollet (ICLR 2026), single query: one matching key at score 1 and
    n-1 keys at score rho (THEORY h, last bullets). Closed forms, no sampling needed:

    * w_1 = 1/(1 + (n-1) e^{-beta (1-rho)}) (:meth:`max_weight`);
    * with beta = gamma log n the critical gamma_c = 1/(1-rho) (:attr:`gamma_c`), where
      w_1 = 1/2 + 1/(4n-2) exactly;
    * the window is logistic in gamma: w_1 = sigmoid((gamma - gamma_half) log n / gamma_c),
      gamma_half = gamma_c log(n-1)/log n, width gamma_c/log n (:meth:`window`);
    * the susceptibility chi = dw_1/dlog beta = x w_1 (1 - w_1), x = beta (1-rho), peaks where
      1 + x (1 - 2 w_1) = 0 (:meth:`beta_peak`): the gap 1 - rho does not shrink with n, so the
      critical beta is log n / gap.

    ``gaps(n)`` gives the n energies (0 and n-1 copies of 1-rho) for the observables.

    >>> law = AlmostSimplex(0.5)
    >>> law.gamma_c, round(float(law.max_weight(10, law.gamma_c * math.log(10))), 6)  # 1/2 + 1/38
    (2.0, 0.526316)
    """

    rho: float = eqx.field(static=True)

    def __init__(self, rho: float):
        rho = check_real("rho", rho, minimum=-1.0)
        if not rho < 1.0:
            raise InputError(f"rho must be in [-1, 1) (the score of the n-1 other keys), got {rho!r}")
        self.rho = rho

    @property
    def gap(self) -> float:
        return 1.0 - self.rho

    @property
    def gamma_c(self) -> float:
        return 1.0 / (1.0 - self.rho)

    def critical_scale(self, n) -> float:
        """beta_c = gamma_c log n."""
        n = check_real("n", n, minimum=2.0)
        return self.gamma_c * math.log(n)

    def max_weight(self, n, beta):
        """w_1 = 1/(1 + (n-1) e^{-beta (1-rho)}) = sigmoid(beta (1-rho) - log(n-1)); broadcasts."""
        n = jnp.asarray(n, jnp.result_type(float))
        beta = jnp.asarray(beta, n.dtype)
        return jax.nn.sigmoid(beta * self.gap - jnp.log(n - 1.0))

    def chi(self, n, beta):
        """dw_1/dlog beta = beta (1-rho) w_1 (1 - w_1)."""
        w = self.max_weight(n, beta)
        return jnp.asarray(beta, w.dtype) * self.gap * w * (1.0 - w)

    def window(self, n, level: float = 0.25) -> tuple[float, float]:
        """The gammas where level <= w_1 <= 1 - level: gamma_half -+ gamma_c log((1-level)/level)/log n."""
        n = check_real("n", n, minimum=2.0)
        level = check_real("level", level, positive=True, maximum=0.5)
        if level >= 0.5:
            raise InputError(f"level must be in (0, 0.5), got {level!r}")
        half = self.gamma_c * math.log(n - 1.0) / math.log(n)
        width = self.gamma_c * math.log((1.0 - level) / level) / math.log(n)
        return half - width, half + width

    def beta_peak(self, n) -> float:
        """argmax over beta of dw_1/dlog beta: x = beta (1-rho) solves 1 + x (1 - 2 sigmoid(x - log(n-1))) = 0."""
        from scipy.optimize import brentq
        from scipy.special import expit

        n = check_real("n", n, minimum=2.0)
        c = math.log(n - 1.0)

        def g(x):
            return 1.0 + x * (1.0 - 2.0 * expit(x - c))

        lo = max(c, 1e-12)
        hi = lo + 1.0
        while g(hi) > 0:
            hi += 1.0 + hi
        return brentq(g, lo, hi, xtol=1e-14, rtol=1e-15) / self.gap

    def gaps(self, n: int) -> Float[Array, " n"]:
        """The n energies u = 1 - score: one 0 (the matching key) and n-1 copies of 1 - rho."""
        n = check_int("n", n, minimum=2)
        return jnp.full((n,), self.gap, jnp.result_type(float)).at[0].set(0.0)
