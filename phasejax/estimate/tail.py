"""The local exponent alpha and constant C of a key cloud, estimated from nearest-neighbour gaps (docs/theory.md §d).

Model. Near a query the gap law is a power law, P(u <= s) ~ C s^h with h = alpha/2 (docs/theory.md §c, d), so
beta_peak(n) ~ lambda*(alpha, C) n^{2/alpha}. Given the gaps of n keys to a query, the k smallest
u_(1) <= ... <= u_(k) below u_(k+1) are, for a pure power law and conditionally on u_(k+1), k i.i.d. draws
with CDF (u/u_(k+1))^h; so E_i = log(u_(k+1)/u_(i)) are i.i.d. Exp(rate h) and

* the maximum-likelihood (Hill) estimate is h_hat = k / T, T = sum_i E_i, alpha_hat = 2 h_hat;
* 2 h T ~ chi^2_{2k} exactly, so [chi^2_{2k}(0.025), chi^2_{2k}(0.975)] / (2T) is an *exact* 95% interval
  for h (``alpha_ci95``); the asymptotic standard error is se(alpha) = alpha_hat / sqrt(k);
* C: u_(k+1) = F^{-1}(U_(k+1)) with U_(k+1) ~ Beta(k+1, n-k), and E log U_(k+1) = psi(k+1) - psi(n+1), so
  log C_hat = psi(k+1) - psi(n+1) - h_hat log u_(k+1) is unbiased for log C given h (digamma psi);
  Var(log C_hat) = psi'(k+1) - psi'(n+1) + Var(h_hat) (log u_(k+1))^2 (the two parts are independent).

Many queries. With Q queries (rows of ``gaps``) every query contributes its own k smallest gaps; the
log-ratios are pooled (h_hat = Qk / sum_j T_j, chi^2 with 2Qk degrees of freedom, se alpha/sqrt(Qk)), and C
is the geometric mean of the per-query C_j (``log_C_sd`` is their spread: large when queries see different
local densities). Queries that share one key set are not exactly independent; the pooled interval treats
them as if they were.

Choosing k (rule ``"gof"``, the default). On a grid of k (log-spaced between ``k_min`` and ``k_max``), run three
tests of the power law on the k smallest gaps. (1) Goodness of fit: the pooled rescaled log-ratios h_hat E_i
against Exp(1) with a Kolmogorov-Smirnov statistic (equivalently the (u_(i)/u_(k+1))^h_hat against
Uniform(0, 1): KS is invariant under that monotone map). h is estimated from the same data, so the plain
KS p-value is wrong (too large); the p-value here is Lilliefors-calibrated: Stephens' modified statistic
(D - 0.2/N)(sqrt N + 0.26 + 0.5/sqrt N), whose null law is nearly free of N, against a fixed-seed Monte
Carlo null of exponentials with estimated scale. (2) Trend (Guillou and Hall 2001
style, :func:`trend_pvalue`): the Renyi-normalised log-spacings i (log u_(i+1) - log u_(i)) are i.i.d. under
a power law, and a linear trend in i means the local exponent drifts over the range (KS alone is weak
against that: on uniform S^4 it accepts k = n/3 with a 12-se bias). (3) Stability
(:func:`stability_pvalues`): the Hill estimates at every smaller grid k agree with the one at k (max |z| of
the nested differences, Monte Carlo calibrated); this catches an exponent that differs only in the first
few gaps (a small cap around q), which tests over the whole range at large k cannot see. The rule picks
**the largest k at which all three p-values are >= level** (default 0.1): beyond it the power law is
rejected, i.e. the bias from the curvature of the gap law is comparable with the statistical error. So the
interval's coverage at the selected k is nominal only up to a bias of order one or two se: on a smoothly
curved gap law (uniform S^{d-1}, d > 3, where the relative correction is O(u)) the first-order fit at the
chosen k is biased low by a few se (uniform S^4, n = 2e4: 3.5-3.8 +- 0.05 instead of 4), because bias and
noise cannot be told apart at that k. If no k passes, the smallest grid k is used and ``gof_ok`` is False.
``"min_ks"`` picks the k minimising the KS distance (Clauset, Shalizi and Newman 2009); an integer fixes k.
``k_grid``, ``alpha_grid``, ``alpha_se_grid`` and the ``*_pvalue_grid`` arrays hold the stability ("Hill")
plot.

What "local" means in practice: alpha is the exponent at the scale of the k-th gap, ``u_max``. On data in
high d (real embeddings) gaps at any feasible n are far from 0, and alpha is an effective exponent at that
scale; it is the one that governs beta_peak at context lengths near the data's n.

The regime of a (beta, n) from these (alpha, C) is :func:`phasejax.theory.regime`; the diagnosis of flax
layers is :mod:`phasejax.estimate.models`. Score rows (logits) are fitted by :func:`fit_score_tail`
(generalised Pareto), which feeds :func:`predict_beta_peak_from_scores`.

Shapes (jaxtyping): ``gaps`` ``Float[Array, "Q m"]`` (or ``"m"``); ``queries`` ``Float[Array, "Q d"]``;
``keys`` ``Float[Array, "n d"]``; :func:`pairwise_gaps` -> ``Float[Array, "Q n"]``;
:func:`smallest_gaps` -> ``Float[ndarray, "Q m"]`` (float64, ascending).

>>> import jax, numpy as np
>>> from phasejax.laws import PowerLawCap
>>> u = np.asarray(PowerLawCap(3, 2.0).sample_gaps(jax.random.key(0), 4000), np.float64)
>>> fit = fit_tail(u, k=400)
>>> abs(fit.alpha - 2.0) < 3 * fit.alpha_se
True
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import InputError, check_array, check_int, check_real
from .._numerics.tail import hill
from ..laws.base import gaps_from_keys
from ..theory.regimes import TailPoint, kappa_star_over_h

__all__ = [
    "pairwise_gaps",
    "smallest_gaps",
    "hill_interval",
    "ks_exponential_pvalue",
    "trend_pvalue",
    "stability_pvalues",
    "TailFit",
    "fit_tail",
    "estimate_tail",
    "ScoreTailFit",
    "fit_score_tail",
    "predict_beta_peak_from_scores",
]


_Z95 = 1.959963984540054


def _as_unit_rows(name: str, x, d: int | None = None) -> np.ndarray:
    check_array(name, x)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"{name} must be a vector (d,) or a matrix (rows, d), got shape {arr.shape}")
    if d is not None and arr.shape[1] != d:
        raise InputError(f"{name} has dimension {arr.shape[1]} but the keys have dimension {d}")
    if arr.shape[1] < 2:
        raise InputError(f"{name} must have dimension d >= 2, got {arr.shape[1]}")
    norms = np.linalg.norm(arr, axis=1)
    if np.any(norms == 0):
        raise InputError(f"{name} has a zero vector (row {int(np.argmin(norms))}), which has no direction")
    return arr / norms[:, None]


def pairwise_gaps(queries: Float[ArrayLike, "Q d"], keys: Float[ArrayLike, "n d"]) -> Float[Array, "Q n"]:
    """Gaps u_qj = |q - k_j|^2 / 2 of unit vectors, every query against every key (JAX, jittable).

    The stable form of 1 - <q,k> (DESIGN: never 1 - dot in float32), vmapped
    :func:`phasejax.laws.gaps_from_keys`. Inputs must already be unit vectors.

    >>> import jax.numpy as jnp
    >>> q = jnp.eye(3)[:2]; k = jnp.array([[0.0, 0.6, 0.8]])
    >>> pairwise_gaps(q, k).shape
    (2, 1)
    """
    return jax.vmap(gaps_from_keys, in_axes=(0, None))(queries, keys)


def smallest_gaps(queries, keys, m: int | None = None, *, chunk_elems: int = 1 << 22) -> np.ndarray:
    """The m smallest gaps |q - k|^2/2 of every query, ascending, in float64 on the host.

    ``queries`` (d,) or (Q, d) and ``keys`` (n, d) are normalised to unit length (zero vectors, NaN, a
    dimension mismatch raise :class:`InputError`); the difference vectors are formed in float64 in chunks of
    about ``chunk_elems`` numbers, so memory stays bounded for any n. m defaults to n. Returns (Q, m).

    >>> import numpy as np
    >>> smallest_gaps(np.array([0, 0, 1.0]), np.array([[0, 0.6, 0.8], [1.0, 0, 0]]), 1)
    array([[0.2]])
    """
    k_arr = _as_unit_rows("keys", keys)
    if np.ndim(keys) != 2:
        raise InputError(f"keys must be a matrix (n, d), got shape {np.shape(keys)}")
    q_arr = _as_unit_rows("queries", queries, k_arr.shape[1])
    n = k_arr.shape[0]
    m = n if m is None else check_int("m", m, minimum=1, maximum=n)
    rows = max(1, chunk_elems // k_arr.shape[1])
    out = np.empty((q_arr.shape[0], m))
    for j, q in enumerate(q_arr):
        u = np.empty(n)
        for a in range(0, n, rows):
            diff = k_arr[a : a + rows] - q
            u[a : a + rows] = 0.5 * np.einsum("ij,ij->i", diff, diff)
        if m < n:
            u = np.partition(u, m - 1)[:m]
        out[j] = np.sort(u)
    return out


def hill_interval(T: float, N: int, conf: float = 0.95) -> tuple[float, float]:
    """Exact interval for h from 2 h T ~ chi^2_{2N} (T = sum of N log-ratios): (q_lo, q_hi) / (2T).

    >>> lo, hi = hill_interval(100.0, 100)
    >>> lo < 1.0 < hi
    True
    """
    from scipy.stats import chi2

    a = (1 - conf) / 2
    return float(chi2.ppf(a, 2 * N) / (2 * T)), float(chi2.ppf(1 - a, 2 * N) / (2 * T))


def _ks_exp_stat(x: np.ndarray) -> np.ndarray | float:
    """KS distance of each row of x (sorted ascending) to Exp(1)."""
    n = x.shape[-1]
    f = -np.expm1(-x)
    i = np.arange(1, n + 1)
    return np.maximum(np.max(i / n - f, axis=-1), np.max(f - (i - 1) / n, axis=-1))


def _stephens(d, n):
    return (d - 0.2 / n) * (math.sqrt(n) + 0.26 + 0.5 / math.sqrt(n))


@functools.lru_cache(maxsize=64)
def _ks_null(n_mc: int, reps: int = 4000, seed: int = 20240613) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty(reps)
    step = max(1, (1 << 22) // n_mc)
    for a in range(0, reps, step):
        e = rng.exponential(size=(min(step, reps - a), n_mc))
        x = np.sort(e / e.mean(axis=1, keepdims=True), axis=1)
        out[a : a + e.shape[0]] = _stephens(_ks_exp_stat(x), n_mc)
    return np.sort(out)


def _ks_null_size(n: int | float) -> int:
    # Stephens' statistic has a null law nearly free of N (quantiles move < 0.02 between N = 5 and 4000):
    # small N are simulated exactly, larger N share the table at N = 1000.
    return n if n <= 32 else 1000


def ks_exponential_pvalue(x) -> tuple[float, float]:
    """(D, p): KS distance of x/mean(x) to Exp(1) and its Lilliefors-calibrated p-value (scale estimated).

    The null law of Stephens' modified statistic (D - 0.2/N)(sqrt N + 0.26 + 0.5/sqrt N) is simulated once
    once (exactly for N <= 32, at N = 1000 beyond, where it no longer depends on N) with a fixed seed and 4000
    replications.

    >>> import numpy as np
    >>> d, p = ks_exponential_pvalue(np.random.default_rng(0).exponential(size=500))
    >>> p > 0.01
    True
    """
    x = np.sort(np.asarray(x, np.float64).ravel())
    n = x.size
    if n < 2 or not np.all(np.isfinite(x)) or np.any(x < 0):
        raise InputError(f"ks_exponential_pvalue needs >= 2 finite values >= 0, got {n}")
    x = x / x.mean()
    d = float(_ks_exp_stat(x))
    null = _ks_null(_ks_null_size(n))
    stat = _stephens(d, n)
    p = (1 + (null.size - np.searchsorted(null, stat, side="left"))) / (null.size + 1)
    return d, float(p)


def trend_pvalue(gaps_sorted, k: int) -> tuple[float, float]:
    """(T, p): Guillou-Hall-type test for a trend of the local exponent across the k smallest gaps.

    Renyi: for a pure power law the normalised log-spacings Z_i = i (log u_(i+1) - log u_(i)), i = 1..k,
    are i.i.d. Exp(rate h). A local exponent that drifts with u (curvature of the gap law) makes E Z_i drift
    with i. T = sum_{j,i} c_i Z_ji / Zbar / sqrt(Q sum_i c_i^2 N/(N+1)), c_i = (2i - k - 1)/k, N = Qk, pooled
    over the Q rows (queries) of ``gaps_sorted`` (ascending, >= k+1 columns); Zbar the pooled mean, and
    N/(N+1) the exact variance factor for the estimated scale. T is close to N(0, 1) under the power law;
    p = 2 Phi(-|T|). Much more powerful than KS against a smoothly varying exponent.

    >>> import numpy as np
    >>> u = np.sort(2 * np.random.default_rng(0).uniform(size=(1, 2000)) ** 2, axis=1)  # alpha = 1
    >>> trend_pvalue(u, 500)[1] > 0.01
    True
    """
    from scipy.special import ndtr

    u = np.asarray(gaps_sorted, np.float64)
    u = u[None, :] if u.ndim == 1 else u
    k = check_int("k", k, minimum=2, maximum=u.shape[1] - 1)
    z = np.diff(np.log(u[:, : k + 1]), axis=1) * np.arange(1, k + 1)
    zbar = z.mean()
    if not zbar > 0:
        return float("nan"), float("nan")
    c = (2.0 * np.arange(1, k + 1) - k - 1) / k
    nn = z.size
    t = float(np.sum(c * z) / zbar / math.sqrt(u.shape[0] * np.sum(c * c) * nn / (nn + 1)))
    return t, float(2 * ndtr(-abs(t)))


@functools.lru_cache(maxsize=32)
def _stability_null(grid: tuple, reps: int = 4000, seed: int = 7) -> np.ndarray:
    """Null draws (reps, J) of max_{i<J} |z_i,J| for Gaussian partial sums observed at the grid points."""
    g = np.asarray(grid, np.float64)
    rng = np.random.default_rng(seed)
    inc = rng.normal(size=(reps, g.size)) * np.sqrt(np.diff(np.concatenate([[0.0], g])))
    s = np.cumsum(inc, axis=1)
    out = np.zeros((reps, g.size))
    for j in range(1, g.size):
        z = (s[:, :j] / g[:j] - s[:, j : j + 1] / g[j]) / np.sqrt(1 / g[:j] - 1 / g[j])
        out[:, j] = np.max(np.abs(z), axis=1)
    return np.sort(out, axis=0)


def stability_pvalues(gaps_sorted, grid) -> np.ndarray:
    """p-values, one per k in ``grid``, that the Hill estimates at all smaller grid k agree with the one at k.

    With Z_i = i (log u_(i+1) - log u_(i)) (i.i.d. Exp under a power law, pooled over rows), m(k) = mean of
    Z_1..Z_k = 1/h_hat(k). For k' < k, z = (m(k') - m(k)) / (m(k) sqrt(1/(Qk') - 1/(Qk))) is close to N(0, 1);
    the statistic at k is max |z| over the smaller grid points, calibrated by a Gaussian partial-sum Monte
    Carlo on the same grid (fixed seed). A local exponent that differs in the first few gaps only (a small
    cap around q) is invisible to whole-range tests at large k, but not to this one. p = 1 at the first k.

    >>> import numpy as np
    >>> u = np.sort(2 * np.random.default_rng(0).uniform(size=(1, 2001)), axis=1)
    >>> bool(np.all(stability_pvalues(u, [10, 100, 1000]) > 0.01))
    True
    """
    u = np.asarray(gaps_sorted, np.float64)
    u = u[None, :] if u.ndim == 1 else u
    g = np.asarray(grid, np.int64)
    kmax = int(g.max())
    z = np.diff(np.log(u[:, : kmax + 1]), axis=1) * np.arange(1, kmax + 1)
    cum = np.cumsum(z.sum(axis=0))
    nq = u.shape[0]
    null = _stability_null(tuple(int(x) * nq for x in g))
    p = np.ones(g.size)
    for j in range(1, g.size):
        mk = cum[g[j] - 1] / (nq * g[j])
        if not mk > 0:
            p[j] = np.nan
            continue
        mi = cum[g[:j] - 1] / (nq * g[:j])
        stat = np.max(np.abs(mi - mk) / (mk * np.sqrt(1 / (nq * g[:j]) - 1 / (nq * g[j]))))
        col = null[:, j]
        p[j] = (1 + col.size - np.searchsorted(col, stat, side="left")) / (col.size + 1)
    return p


@dataclasses.dataclass(frozen=True)
class TailFit:
    """Power-law fit of the small gaps, P(u <= s) ~ C s^{alpha/2} (docs/theory.md §d). Host floats and arrays.

    ``alpha`` is the (pooled) Hill MLE, ``alpha_se`` its asymptotic se alpha/sqrt(Qk), ``alpha_ci95`` the
    exact chi^2 interval; ``C`` the geometric mean over queries, ``C_se`` (delta method) and ``C_ci95``
    (normal on log C); ``k`` gaps per query, ``n`` keys per query, ``num_queries`` Q; ``ks_stat`` /
    ``ks_pvalue`` the goodness of fit of the power law at k (Lilliefors-KS), ``trend_stat`` /
    ``trend_pvalue`` the test for a drifting exponent (:func:`trend_pvalue`), ``stability_pvalue`` the
    agreement with the estimates at smaller k (:func:`stability_pvalues`); ``gof_ok`` whether all three pass
    at ``level``;
    ``u_max`` the largest u_(k+1) used (the scale of "local"); the ``*_grid`` arrays are the stability plot.
    """

    alpha: float
    alpha_se: float
    alpha_ci95: tuple[float, float]
    C: float
    C_se: float
    C_ci95: tuple[float, float]
    k: int
    n: int
    num_queries: int
    ks_stat: float
    ks_pvalue: float
    trend_stat: float
    trend_pvalue: float
    stability_pvalue: float
    gof_ok: bool
    rule: str
    level: float
    log_C_sd: float
    u_max: float
    log_u_ref: float
    zero_gaps_dropped: int
    k_grid: np.ndarray
    alpha_grid: np.ndarray
    alpha_se_grid: np.ndarray
    ks_pvalue_grid: np.ndarray
    trend_pvalue_grid: np.ndarray
    stability_pvalue_grid: np.ndarray

    @property
    def h(self) -> float:
        return self.alpha / 2

    def lambda_star(self) -> float:
        """lambda*(alpha, C) from :func:`phasejax.theory.lambda_star` (Poisson-limit susceptibility peak)."""
        from ..theory.poisson import lambda_star

        return float(lambda_star(alpha=self.alpha, C=self.C).lambda_star)

    def beta_peak(self, n, *, se: bool = True):
        """Predicted beta_peak(n) = lambda*(alpha, C) n^{2/alpha} and its standard error (arrays like ``n``).

        Substituting C_hat: beta_peak(n) = u_ref^{-1} (e^{psi(k+1)-psi(n_data+1)} n / rho*(h))^{1/h}, with
        log u_ref the mean of log u_(k+1) over queries. The se (delta method) combines the sampling error of
        log u_ref (variance (psi'(k+1) - psi'(n_data+1))/(Q h^2)) with that of h_hat (variance h^2/(Qk)),
        the derivative d log rho*/dh by a central difference of lambda_star. NaN when ``se=False``.
        """
        from scipy.special import polygamma

        from ..theory.poisson import lambda_star

        n_arr = np.asarray(n, np.float64)
        h = self.h
        lam = self.lambda_star()
        bp = lam * n_arr ** (1 / h)
        if not se:
            return bp, np.full_like(bp, np.nan)
        dh = 1e-3 * h

        def log_rho(hh):  # rho*(h) from lambda* at C = 1: lambda* = rho*^{-1/h}
            return -hh * math.log(lambda_star(alpha=2 * hh, C=1.0).lambda_star)

        dlr = (log_rho(h + dh) - log_rho(h - dh)) / (2 * dh)
        # log bp = (A - log rho*(h) + log n)/h - L with A = psi(k+1) - psi(N+1), L = mean log u_(k+1)
        a_term = math.log(self.C) + h * self.log_u_ref  # = A
        g = (a_term - math.log(lam ** (-h) * self.C) + np.log(n_arr)) / h  # (A - log rho* + log n)/h
        dg_dh = -g / h - dlr / h
        nq = self.num_queries
        var_u = float(polygamma(1, self.k + 1) - polygamma(1, self.n + 1)) / (nq * h * h)
        var_h = h * h / (nq * self.k)
        return bp, bp * np.sqrt(var_u + dg_dh**2 * var_h)

    def summary(self) -> str:
        lo, hi = self.alpha_ci95
        return (f"alpha = {self.alpha:.4g} +- {self.alpha_se:.2g} (95% CI [{lo:.4g}, {hi:.4g}]), "
                f"C = {self.C:.4g} +- {self.C_se:.2g}, k = {self.k} of n = {self.n} per query, "
                f"{self.num_queries} quer{'y' if self.num_queries == 1 else 'ies'}, "
                f"KS p = {self.ks_pvalue:.3g}")


def _prepare_gaps(gaps, n):
    check_array("gaps", gaps)
    u = np.asarray(gaps, np.float64)
    if u.ndim == 1:
        u = u[None, :]
    if u.ndim != 2:
        raise InputError(f"gaps must have shape (m,) or (Q, m), got {np.shape(gaps)}")
    if np.any(u < 0):
        raise InputError("gaps must be >= 0 (u = |q-k|^2/2)")
    u = np.sort(u, axis=1)
    m = u.shape[1]
    n = m if n is None else check_int("n", n, minimum=m)
    zeros = np.sum(u == 0, axis=1)  # queries that coincide with keys: drop those keys
    m_eff = int(m - zeros.max())
    if m_eff < 3:
        raise InputError(f"gaps: need at least 3 nonzero gaps per query, got {m_eff}")
    idx = zeros[:, None] + np.arange(m_eff)[None, :]
    return np.take_along_axis(u, idx, axis=1), n - zeros, int(zeros.sum())


def _k_default_grid(m_eff, n_min_row, k_min, k_max, points):
    hi = m_eff - 1 if k_max is None else min(check_int("k_max", k_max, minimum=2), m_eff - 1)
    if k_max is None:
        hi = min(hi, max(2, int(n_min_row) // 2))
    lo = min(10, hi) if k_min is None else min(check_int("k_min", k_min, minimum=2), hi)
    lo = max(2, lo)
    grid = np.unique(np.round(np.geomspace(lo, max(hi, lo), max(points, 2))).astype(np.int64))
    return grid


def fit_tail(
    gaps,
    *,
    n: int | None = None,
    k: int | str = "gof",
    level: float = 0.1,
    k_min: int | None = None,
    k_max: int | None = None,
    grid_points: int = 24,
    conf: float = 0.95,
) -> TailFit:
    """Hill / maximum-likelihood fit of P(u <= s) ~ C s^{alpha/2} to the smallest gaps (docs/theory.md §d).

    Args:
      gaps: (m,) gaps of one query or (Q, m), one row per query (any order; zero gaps, a query that
        coincides with a key, are dropped and counted in ``zero_gaps_dropped``).
      n: keys per query when each row holds only the m smallest of n gaps (default m: rows are complete).
      k: ``"gof"`` (largest k whose Lilliefors-KS p-value >= ``level``; module docstring), ``"min_ks"``
        (smallest KS distance), or an integer (fixed k, 2 <= k < m).
      k_min, k_max, grid_points: the k grid (default log-spaced from 10 to min(m - 1, n // 2)).
      conf: level of the exact interval for alpha (``alpha_ci95`` is at ``conf``, 0.95 by default).

    Formulas: h = Qk / sum log(u_(k+1)/u_(i)), alpha = 2h; 2h T ~ chi^2_{2Qk} (exact CI);
    log C_j = psi(k+1) - psi(n+1) - h log u_(k+1),j; C = exp(mean_j log C_j).

    >>> import jax, numpy as np
    >>> from phasejax.laws import UniformSphere
    >>> u = np.asarray(UniformSphere(3).sample_gaps(jax.random.key(1), 2000), np.float64)
    >>> fit = fit_tail(u)                      # S^2: alpha = 2, C = 1/2
    >>> abs(fit.alpha - 2) < 3 * fit.alpha_se and abs(fit.C - 0.5) < 3 * fit.C_se
    True
    """
    from scipy.special import polygamma

    level = check_real("level", level, minimum=0.0, maximum=1.0)
    conf = check_real("conf", conf, minimum=0.5, maximum=0.999999)
    u, n_rows, dropped = _prepare_gaps(gaps, n)
    q_count, m_eff = u.shape
    n_min_row = int(n_rows.min())
    if isinstance(k, str):
        if k not in ("gof", "min_ks", "auto"):
            raise InputError(f"k must be 'gof', 'min_ks' or an integer, got {k!r}")
        rule = "gof" if k == "auto" else k
        grid = _k_default_grid(m_eff, n_min_row, k_min, k_max, grid_points)
    else:
        kk = check_int("k", k, minimum=2, maximum=m_eff - 1)
        rule = "fixed"
        grid = np.unique(np.concatenate([_k_default_grid(m_eff, n_min_row, k_min, k_max, grid_points), [kk]]))
    alphas, ses, pvals, dists, tpvals = [], [], [], [], []
    for kg in grid:
        logs = hill(u, int(kg), n_rows).log_ratios
        T = float(logs.sum())
        if not T > 0:
            raise InputError("gaps: the k+1 smallest gaps of every query are equal; no power law to fit")
        h = logs.size / T
        dist, p = ks_exponential_pvalue(logs)
        alphas.append(2 * h)
        ses.append(2 * h / math.sqrt(logs.size))
        pvals.append(p)
        dists.append(dist)
        tpvals.append(trend_pvalue(u, int(kg))[1])
    pvals_a = np.asarray(pvals)
    tpvals_a = np.asarray(tpvals)
    spvals_a = stability_pvalues(u, grid)
    if rule == "fixed":
        k_sel = kk
    elif rule == "min_ks":
        k_sel = int(grid[int(np.argmin(dists))])
    else:
        ok = np.nonzero((pvals_a >= level) & (tpvals_a >= level) & (spvals_a >= level))[0]
        k_sel = int(grid[ok[-1]]) if ok.size else int(grid[0])
    est = hill(u, k_sel, n_rows)
    logs, log_uk, h, log_c_j = est.log_ratios, est.log_u_k1, est.h, est.log_c
    N = logs.size
    T = float(logs.sum())
    ks_d, ks_p = ks_exponential_pvalue(logs)
    tr_t, tr_p = trend_pvalue(u, k_sel)
    st_p = float(spvals_a[int(np.searchsorted(grid, k_sel))])
    h_lo, h_hi = hill_interval(T, N, conf)
    log_c = float(np.mean(log_c_j))
    l_ref = float(np.mean(log_uk))
    var_log_c = float(np.mean(polygamma(1, k_sel + 1) - polygamma(1, n_rows + 1.0))) / q_count
    var_log_c += (h * h / N) * l_ref**2
    c = math.exp(log_c)
    sd_lc = math.sqrt(var_log_c)
    return TailFit(
        alpha=2 * h, alpha_se=2 * h / math.sqrt(N), alpha_ci95=(2 * h_lo, 2 * h_hi),
        C=c, C_se=c * sd_lc, C_ci95=(math.exp(log_c - _Z95 * sd_lc), math.exp(log_c + _Z95 * sd_lc)),
        k=int(k_sel), n=int(round(float(np.exp(np.mean(np.log(n_rows)))))), num_queries=int(q_count),
        ks_stat=ks_d, ks_pvalue=ks_p, trend_stat=tr_t, trend_pvalue=tr_p,
        stability_pvalue=st_p, gof_ok=bool(ks_p >= level and tr_p >= level and st_p >= level),
        rule=rule, level=level,
        log_C_sd=float(np.std(log_c_j, ddof=1)) if q_count > 1 else 0.0,
        u_max=float(np.exp(log_uk.max())), log_u_ref=l_ref, zero_gaps_dropped=dropped,
        k_grid=np.asarray(grid), alpha_grid=np.asarray(alphas), alpha_se_grid=np.asarray(ses),
        ks_pvalue_grid=pvals_a, trend_pvalue_grid=tpvals_a, stability_pvalue_grid=spvals_a,
    )


def estimate_tail(
    keys,
    queries=None,
    *,
    num_queries: int = 16,
    seed: int = 0,
    m: int | None = None,
    **fit_kwargs,
) -> tuple[TailFit, np.ndarray, np.ndarray]:
    """alpha and C of a key cloud from its nearest-neighbour gaps: returns (fit, queries, keys_used).

    ``keys`` (n, d) and ``queries`` (d,) or (Q, d) are normalised (zero vectors, NaN, shape or dimension
    mismatch raise :class:`InputError`). Without queries, ``num_queries`` random rows of ``keys`` (chosen
    with ``seed``) are **held out** as queries and removed from the key set, so no query meets itself.
    ``m`` smallest gaps per query are kept (default min(n, 4096)); then :func:`fit_tail` with n = number of
    keys used.

    >>> import jax, numpy as np
    >>> from phasejax.laws import UniformSphere
    >>> keys = np.asarray(UniformSphere(3).sample_keys(jax.random.key(0), np.array([0, 0, 1.0]), 3000))
    >>> fit, q, k = estimate_tail(keys, num_queries=8)
    >>> q.shape, k.shape, abs(fit.alpha - 2) < 4 * fit.alpha_se
    ((8, 3), (2992, 3), True)
    """
    k_arr = _as_unit_rows("keys", keys)
    if np.ndim(keys) != 2:
        raise InputError(f"keys must be a matrix (n, d), got shape {np.shape(keys)}")
    if queries is None:
        num_queries = check_int("num_queries", num_queries, minimum=1)
        if k_arr.shape[0] < num_queries + 4:
            raise InputError(f"keys: {k_arr.shape[0]} rows are too few to hold out {num_queries} queries")
        perm = np.random.default_rng(seed).permutation(k_arr.shape[0])
        q_arr = k_arr[perm[:num_queries]]
        k_arr = k_arr[np.sort(perm[num_queries:])]
    else:
        q_arr = _as_unit_rows("query", queries, k_arr.shape[1])
    n = k_arr.shape[0]
    if n < 4:
        raise InputError(f"keys: need at least 4 keys to fit a tail, got {n}")
    mm = min(n, 4096) if m is None else check_int("m", m, minimum=4, maximum=n)
    u = smallest_gaps(q_arr, k_arr, mm)
    return fit_tail(u, n=n, **fit_kwargs), q_arr, k_arr


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
