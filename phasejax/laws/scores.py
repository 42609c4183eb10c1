"""Score laws beyond the sphere: Gaussian scores (the random energy model) and almost-simplex tokens
(docs/theory.md §h).

Conventions. beta multiplies the *score* s: weights softmax(beta s). Every law is described by its
**energy** e = -s (for a key law on the sphere: the gap u = 1 - <q,k>), so the weights are
softmax(-beta e) exactly as in :mod:`phasejax.observables`, which is shift invariant: energies may be
negative. The top key is the one with the smallest energy.

* :class:`GaussianScores` ``(sigma)``: i.i.d. N(0, sigma^2) scores as a key law usable by
  ``sampled_observables``, ``ensemble``, ``nearest_gap_samples`` and ``scaling_scan`` (energies
  u = -s, possibly negative). There is no power-law local exponent: ``alpha = inf`` (Gumbel domain;
  2/alpha = 0, beta_peak grows slower than any power of n), ``C = nan``; code that needs a critical
  scale uses ``critical_scale(n) = beta_c = sqrt(2 log n)/sigma``. Its limit laws (Poisson-Dirichlet) are
  in :mod:`phasejax.theory.rem`, its exact finite-n peak in :mod:`phasejax.theory.finite_n`.
* :class:`AlmostSimplex` ``(rho)``: Chen et al.'s single-query almost-simplex tokens in closed form.

Shapes: ``GaussianScores.sample_gaps(key, n)`` -> (n,); ``nearest_gaps(key, n, m)`` -> (m,) ascending;
``AlmostSimplex.max_weight(n, beta)`` broadcasts over ``beta`` (and ``n``).
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import InputError, check_int, check_real
from ..theory.finite_n import STANDARD_NORMAL, ScoreLaw
from ..theory.regimes import TailPoint
from ..theory.rem import rem_beta_c
from .base import KeyLaw
from .nearest import _nearest_log_uniforms, check_n_m

__all__ = ["GaussianScores", "AlmostSimplex"]


class GaussianScores(KeyLaw):
    """i.i.d. N(0, sigma^2) scores: the random energy model (docs/theory.md §h) as a phasejax key law.

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

    def sample_gaps(self, key: PRNGKeyArray, n: int | float, *, dtype=None) -> Float[Array, " n"]:
        """n energies u = -s, s ~ N(0, sigma^2) i.i.d."""
        n = check_int("n", n, minimum=1)
        dtype = dtype or jnp.result_type(float)
        return -self.sigma * jax.random.normal(key, (n,), dtype)

    @property
    def energy_law(self) -> tuple[ScoreLaw, float]:
        """The standard normal energy with beta factor sigma (:func:`phasejax.theory.score_law`)."""
        return STANDARD_NORMAL, float(self.sigma)

    def nearest_gaps(self, key: PRNGKeyArray, n: int | float, m: int | float, *, dtype=None) -> Float[Array, " m"]:
        """The m smallest of n energies (the m largest scores), exactly, ascending, in O(m) for any n.

        docs/theory.md §a's order-statistics construction (:mod:`phasejax.laws.nearest`): u_(i) = sigma
        Phi^{-1}(U_(i)) with U_(1..m) the m smallest of n uniforms, from log U_(i).
        """
        n, m = check_n_m(n, m)
        dtype = jnp.dtype(dtype or jnp.result_type(float))
        return _gauss_nearest(self.sigma, key, n, m, dtype)

    def choose_m(self, n: int | float, lambda_min: float, *, tail_tol: float = 1e-7, m_max: int = 1 << 20) -> int:
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

    def tail_point(self, n) -> TailPoint:
        """The score law at its 1/n upper quantile (for :func:`phasejax.theory.predict_beta_peak`):
        t* = sigma Phi^{-1}(1 - 1/n) (returned as ``u_star``), hazard phi(z)/(sigma Q(z)), z = t*/sigma, in
        log space; the local exponent is infinite (Gumbel domain)."""
        from scipy import special as sps

        n = float(n)
        z = -sps.ndtri(1.0 / n)
        hz = math.exp(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - sps.log_ndtr(-z)) / self.sigma
        return TailPoint(n, z * self.sigma, hz, math.inf)


@functools.partial(jax.jit, static_argnames=("sigma", "n", "m", "dtype"))
def _gauss_nearest(sigma, key, n, m, dtype):
    log_u = _nearest_log_uniforms(key, n, m, dtype)
    return sigma * ndtri(jnp.exp(log_u))


class AlmostSimplex(eqx.Module):
    """Chen, Lin, Polyanskiy, Rigollet (ICLR 2026), single query: one matching key at score 1 and
    n-1 keys at score rho (docs/theory.md §h, last bullets). Closed forms, no sampling needed:

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

    def gaps(self, n: int | float) -> Float[Array, " n"]:
        """The n energies u = 1 - score: one 0 (the matching key) and n-1 copies of 1 - rho."""
        n = check_int("n", n, minimum=2)
        return jnp.full((n,), self.gap, jnp.result_type(float)).at[0].set(0.0)
