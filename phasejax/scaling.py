"""Scaling of the transition with context length: beta_peak(n) ~ lambda* n^{2/alpha}.

Pipeline (DESIGN data flow): for each n, S contexts of n keys -> the m nearest gaps of each
(S, m) -> E[max weight] (seed mean) as a function of log beta -> its susceptibility peak
beta_peak(n) +- se (:func:`phasejax.transition.find_peak`) -> a weighted fit of
log beta_peak = a + b log n, b against 2/alpha and e^a against lambda*.

**Why the m nearest gaps suffice, and the bound that says so.** Near the peak only keys with
beta (u - u_(1)) of order one carry weight. Keeping the m smallest of the n gaps (exactly:
the m smallest of an exact sample, or :mod:`phasejax.laws.nearest`'s O(m) sampler) changes the
partition function by at most (n - m) exp(-beta (u_(m) - u_(1))) relative, reported as
``truncation_bound``; m is chosen from the Poisson limit so that the expected neglected mass
at the smallest beta of the grid is below ``tail_tol`` (m = n, no truncation, when that
needs most of the keys, as in high d).

**Where that needs many keys (high d), the bulk instead.** When that rule would keep more than
``BULK_ABOVE`` keys, the n - m others enter through their conditional mean plus the CLT fluctuation
(:func:`bulk_gap_curve`, the bulk term of :mod:`phasejax.laws.nearest`); what is left is the bulk's
departure from a Gaussian, whose leading error in E[max weight] (third cumulant / Z^4,
:func:`phasejax.laws.nearest.clt_error`) chooses m (:func:`choose_m_bulk`, 512 keys at d = 8 instead of
2^20) and is reported as ``truncation_bound``.

Shapes: ``ns`` (N,), per-n results (N,), ``collapse`` arrays (N, L) on a common lambda grid.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._checks import InputError, check_array, check_int, check_option, check_real
from .laws.base import KeyLaw
from .laws.nearest import bulk_sums, clt_error, tail_log_prob
from .observables import OBSERVABLE_NAMES, Accumulator, _gap_observables
from .runtime.ensemble import choose_sampler
from .runtime.memory import check_memory
from .transition import Peak, derivative, find_peak

__all__ = [
    "PowerLawFit",
    "fit_power_law",
    "choose_m",
    "choose_m_bulk",
    "clt_error_poisson",
    "bulk_applies",
    "bulk_gap_curve",
    "nearest_gap_samples",
    "gap_curve",
    "truncation_bound",
    "default_lambda_range",
    "ScalingResult",
    "scaling_scan",
]


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """Weighted least-squares fit of log y = a + b log n (+ c n^{-omega} with a finite-size term).

    ``a_se``, ``b_se`` are the standard errors from the weights (1/se_log^2), ``ci95`` the
    95% normal intervals of (a, b); ``chi2`` and ``dof`` tell whether the scatter matches the
    stated errors (chi2/dof near 1). ``prefactor`` = e^a with se e^a a_se (delta method).
    """

    a: float
    b: float
    a_se: float
    b_se: float
    cov: np.ndarray
    chi2: float
    dof: int
    c: float | None = None
    c_se: float | None = None
    omega: float | None = None
    birge: float = 1.0

    @property
    def prefactor(self) -> float:
        return math.exp(self.a)

    @property
    def prefactor_se(self) -> float:
        return math.exp(self.a) * self.a_se

    @property
    def ci95(self) -> tuple[tuple[float, float], tuple[float, float]]:
        z = 1.959963984540054
        return (self.a - z * self.a_se, self.a + z * self.a_se), (self.b - z * self.b_se, self.b + z * self.b_se)


def fit_power_law(
    n, y, y_se=None, *, finite_size_omega: float | None = None, scale_by_chi2: bool = False
) -> PowerLawFit:
    """Fit log y = a + b log n [+ c n^{-omega}] by weighted least squares.

    Args:
      n: context lengths (N,).
      y: positive values, e.g. beta_peak(n) (N,).
      y_se: their standard errors (N,), > 0; the weight of a point is (y/y_se)^2. ``None``: ordinary
        least squares (unit weights in log y), the standard errors from the scatter about the line
        (``birge`` = sqrt(chi2/dof), 0 for an exact fit).
      finite_size_omega: if given, add the correction term c n^{-omega} (e.g. omega = 2/alpha,
        the order of the curvature correction of docs/theory.md §c), fitted linearly with a and b.
      scale_by_chi2: multiply the standard errors by the Birge ratio max(1, sqrt(chi2/dof)), the
        usual remedy when the scatter shows the stated errors to be too small (``birge`` records it).

    >>> import numpy as np
    >>> n = np.array([1e2, 1e3, 1e4]); fit = fit_power_law(n, 0.4 * n, 0.01 * 0.4 * n)
    >>> round(fit.b, 9), round(fit.prefactor, 9)
    (1.0, 0.4)
    """
    n = np.asarray(n, np.float64)
    y = np.asarray(y, np.float64)
    ols = y_se is None
    y_se = y if ols else np.asarray(y_se, np.float64)
    for name, v in (("n", n), ("y", y), ("y_se", y_se)):
        check_array(name, v, ndim=1)
    if not (n.shape == y.shape == y_se.shape):
        raise InputError(f"n, y and y_se must have the same shape, got {n.shape}, {y.shape}, {y_se.shape}")
    if np.any(n <= 0) or np.any(y <= 0) or np.any(y_se <= 0):
        raise InputError("n, y and y_se must be > 0 for a log-log fit")
    k = 2 if finite_size_omega is None else 3
    if n.size < k:
        raise InputError(f"a fit with {k} parameters needs at least {k} points, got {n.size}")
    x = np.log(n)
    cols = [np.ones_like(x), x]
    if finite_size_omega is not None:
        cols.append(n ** (-float(finite_size_omega)))
    design = np.stack(cols, axis=1)
    w = (y / y_se) ** 2
    ly = np.log(y)
    cov = np.linalg.inv(design.T @ (w[:, None] * design))
    coef = cov @ design.T @ (w * ly)
    resid = ly - design @ coef
    chi2 = float(np.sum(w * resid**2))
    dof = int(n.size - k)
    if ols:
        birge = math.sqrt(chi2 / dof) if dof > 0 else 0.0
    else:
        birge = max(1.0, math.sqrt(chi2 / dof)) if (scale_by_chi2 and dof > 0) else 1.0
    se = np.sqrt(np.diag(cov)) * birge
    cov = cov * birge**2
    return PowerLawFit(
        a=float(coef[0]), b=float(coef[1]), a_se=float(se[0]), b_se=float(se[1]), cov=cov, chi2=chi2,
        dof=dof,
        c=None if k == 2 else float(coef[2]), c_se=None if k == 2 else float(se[2]),
        omega=finite_size_omega, birge=birge,
    )


def choose_m(law: KeyLaw, n: int | float, lambda_min: float, *, tail_tol: float = 1e-7, m_max: int = 1 << 20) -> int:
    """Smallest m whose neglected keys carry expected Poisson-limit mass < ``tail_tol`` at lambda_min.

    In the Poisson limit (docs/theory.md §c) the energies z = beta u form a PPP with mean measure
    rho z^h, rho = C lambda^{-h}; the keys beyond the m-th start near z_m = (m/rho)^{1/h} and
    carry expected mass rho Gamma(h+1) Q(h, z_m) relative to the top key (Q the regularised
    upper incomplete gamma). Returns min(n, that m) (at least 16), capped at ``m_max``.
    """
    from scipy.special import gammaincc

    if hasattr(law, "choose_m"):  # laws without a power-law tail (GaussianScores) carry their own rule
        return law.choose_m(n, lambda_min, tail_tol=tail_tol, m_max=m_max)
    h = law.alpha / 2
    rho = law.C * lambda_min ** (-h)
    m = 16
    while m < min(n, m_max):
        z = (m / rho) ** (1 / h)
        if rho * math.gamma(h + 1) * gammaincc(h, z) < tail_tol:
            break
        m *= 2
    return int(min(n, m, m_max))


def clt_error_poisson(law: KeyLaw, m: int, lambdas) -> np.ndarray:
    """Predicted relative error in the max weight from the Gaussian bulk beyond the m-th key (Poisson limit).

    In the Poisson limit (docs/theory.md §c) z = beta u is a PPP with mean measure rho z^h, rho = C lambda^{-h},
    h = alpha/2. The bulk beyond z_m = (m/rho)^{1/h} has cumulants (shifted by the top key z_1)
    kappa_j = rho e^{j z_1} j^{-h} Gamma(h+1) Q(h, j z_m). With Z = 1 + kappa_1 (the top key plus the bulk's
    mean: a lower bound on the partition function, so the estimate is conservative), fluct^2 = kappa_2/Z^2 and
    q = e^{-(z_m - z_1)}/Z, the error is about fluct^2 q (1 + 4 q) (:func:`phasejax.laws.nearest.clt_error`),
    evaluated at the median z_1 = (log 2/rho)^{1/h}. Returns it for each lambda (array like ``lambdas``).
    """
    from scipy.special import gammaincc

    lam = np.asarray(lambdas, np.float64)
    h = law.alpha / 2
    rho = law.C * lam ** (-h)
    z1 = (math.log(2.0) / rho) ** (1 / h)
    zm = (m / rho) ** (1 / h)
    g = math.gamma(h + 1)
    k1 = rho * np.exp(z1) * g * gammaincc(h, zm)
    k2 = rho * np.exp(2 * z1) * 2.0 ** (-h) * g * gammaincc(h, 2 * zm)
    z = 1.0 + k1
    q = np.exp(-(zm - z1)) / z
    return k2 / z**2 * q * (1 + 4 * q)


def choose_m_bulk(law: KeyLaw, n: int | float, lambda_range: tuple[float, float], *, tol: float = 1e-6,
                  m_min: int = 32, m_max: int = 1 << 20) -> int:
    """Smallest m (a power of 2, >= ``m_min``) whose Gaussian-bulk error in E[max weight] is below ``tol``.

    The rule for the nearest-m pipeline *with* the bulk term (the m nearest exactly, the n - m others by their
    conditional mean plus the CLT fluctuation: :func:`bulk_gap_curve`). The only error left is the bulk's
    departure from a Gaussian, whose leading terms are bounded by :func:`phasejax.laws.nearest.clt_error`;
    its Poisson-limit prediction :func:`clt_error_poisson` must be below ``tol`` at every lambda of
    ``lambda_range`` (64 log-spaced points). The realised bound of a run is reported by :func:`scaling_scan`
    (``truncation_bound``). Returns min(n, m), at most ``m_max``.

    >>> from phasejax.laws import UniformSphere
    >>> choose_m_bulk(UniformSphere(8), 10**8, (0.47, 30.1)) <= 1024
    True
    """
    n = check_int("n", n, minimum=1)
    tol = check_real("tol", tol, positive=True)
    lam = np.geomspace(*lambda_range, 64)
    m = check_int("m_min", m_min, minimum=1)
    while m < min(n, m_max) and float(np.max(clt_error_poisson(law, m, lam))) >= tol:
        m *= 2
    return int(min(n, m, m_max))


def bulk_applies(law: KeyLaw) -> bool:
    """Whether the bulk term (conditional mean + CLT) exists for ``law``: a Beta gap law with a known CDF."""
    from .laws.base import BetaGapLaw

    return isinstance(law, BetaGapLaw) and bool(law.has_gap_law)


BULK_ABOVE = 4096


@functools.cache
def bulk_gap_curve(a: float, b: float, observable: str = "max_weight", top_k: int = 5, nodes: int = 512,
                   part: str = "value"):
    """curve(log_betas (B,), gaps (S, m), log_tail (S,), xi (S, 4), n_bulk ()) -> (S, B): with the bulk.

    Each context: its m nearest gaps (ascending) exactly, the n - m others (i.i.d. given u > u_(m), whose
    probability is e^{log_tail}) by their conditional mean plus the CLT term with normal draws ``xi``
    (:func:`phasejax.laws.nearest.bulk_sums`, as :func:`phasejax.observables.nearest_observables`).
    ``part``: 'value' the named observable; 'bias' the signed leading CLT error of the max weight and
    'bound' the bound on it (:func:`phasejax.laws.nearest.clt_error`). ``n_bulk`` = n - m > 0 is data (an
    array), so one compilation serves every n with the same m.
    """
    check_option("observable", observable, OBSERVABLE_NAMES)
    check_option("part", part, ("value", "bias", "bound"))

    def one(betas, u, log_tail, xi, n_bulk):
        acc = Accumulator.init(betas, top_k=top_k, dtype=u.dtype).update(betas, u, jnp.ones(u.shape, bool))
        c = u[-1]
        sums, _, sd, _, k3 = bulk_sums(a, b, n_bulk, acc.m, c, jnp.log(c), log_tail, betas, xi, nodes,
                                       cumulants=True)
        acc = acc.add_sums(*sums)
        if part == "value":
            return getattr(acc.finish(betas), observable)
        bias, bound = clt_error(acc.z, k3, sd, c - acc.m, betas)
        return bias if part == "bias" else bound

    @jax.jit
    def curve(log_betas, gaps, log_tail, xi, n_bulk):
        betas = jnp.exp(jnp.atleast_1d(log_betas))
        return jax.vmap(lambda u, lt, x: one(betas, u, lt, x, n_bulk))(gaps, log_tail, xi)

    return curve


@functools.partial(jax.jit, static_argnums=(0, 1))
def _clt_error_terms(a, b, log_beta, data):
    """At the peak x* = log beta*: the CLT error bound of E[max weight] relative to it, the leading error of chi
    |d bias/dx| and of the peak |d^2 bias/dx^2 / chi''(x*)| (bias: the seed mean of clt_error's signed term)."""

    def mean_of(part):
        c = bulk_gap_curve(a, b, "max_weight", part=part)
        return lambda x: jnp.mean(c(x, *data), axis=0)

    x = jnp.reshape(log_beta, (1,))
    w = mean_of("value")
    bias = mean_of("bias")
    bound = mean_of("bound")(x)[0] / w(x)[0]
    return bound, jnp.abs(derivative(bias, 1)(x)[0]), jnp.abs(derivative(bias, 2)(x)[0] / derivative(w, 3)(x)[0])


def _top_m_one(law, k, n, m):
    u = law.sample_gaps(k, n)
    return u if m == n else -jax.lax.top_k(-u, m)[0]


@functools.partial(jax.jit, static_argnames=("law", "n", "m"))
def _top_m_exact(law, keys, n, m):
    return jax.vmap(lambda k: _top_m_one(law, k, n, m))(keys)


def nearest_gap_samples(
    law: KeyLaw,
    key: PRNGKeyArray,
    n: int | float,
    m: int | float,
    *,
    seeds: int,
    sampler: str = "auto",
    devices: int | None = None,
    checkpoint=None,
    cell_seeds: int | None = None,
    prefix: str = "seeds",
) -> Float[Array, "S m"]:
    """The m smallest gaps (ascending; unsorted when m = n) of each of ``seeds`` contexts of n keys.

    'exact': draw all n gaps (O(n) each, batched to bound memory) and keep the m smallest.
    'nearest': :func:`phasejax.laws.nearest.nearest_gaps`, O(m) for any n. 'auto' picks by n.

    With ``devices`` (devices per process), a ``checkpoint`` (:class:`phasejax.runtime.checkpoint.CellStore`,
    cells of ``cell_seeds`` seeds named ``prefix-start-stop``) or in a multi-process run, the
    seeds are sharded by :func:`phasejax.runtime.devices.run_seeds`; context i still gets key
    ``jax.random.split(key, seeds)[i]``, so the gaps equal the one-device ones.
    """
    n = check_int("n", n, minimum=1)
    m = check_int("m", m, minimum=1, maximum=n)
    seeds = check_int("seeds", seeds, minimum=1)
    sampler = choose_sampler(law, n, sampler)
    keys = jax.random.split(key, seeds)
    if devices is not None or checkpoint is not None or jax.process_count() > 1:
        from .runtime.devices import run_seeds

        if sampler == "nearest":
            from .laws.nearest import nearest_gaps

            near = getattr(law, "nearest_gaps", None) or functools.partial(nearest_gaps, law)
            return run_seeds(lambda k: near(k, n, m), keys, devices=devices, checkpoint=checkpoint,
                             cell_seeds=cell_seeds, prefix=prefix)
        return run_seeds(lambda k: _top_m_one(law, k, n, m), keys, devices=devices, batch=max(1, (1 << 25) // n),
                         checkpoint=checkpoint, cell_seeds=cell_seeds, prefix=prefix)
    if sampler == "nearest":
        from .laws.nearest import nearest_gaps

        near = getattr(law, "nearest_gaps", None) or functools.partial(nearest_gaps, law)
        return jax.vmap(lambda k: near(k, n, m))(keys)
    batch = max(1, (1 << 25) // n)
    parts = [_top_m_exact(law, keys[i : i + batch], n, m) for i in range(0, seeds, batch)]
    return jnp.concatenate(parts, axis=0)


@functools.cache
def gap_curve(observable: str = "max_weight", top_k: int = 5):
    """curve(log_betas (B,), gaps (S, m)) -> (S, B): the named observable of each context.

    Cached per (observable, top_k), so :func:`find_peak` compiles it once for every n.
    """
    check_option("observable", observable, OBSERVABLE_NAMES)

    def curve(log_betas, gaps):
        betas = jnp.exp(jnp.atleast_1d(log_betas))
        chunk = min(gaps.shape[1], 4096)
        return jax.vmap(lambda u: getattr(_gap_observables(u, betas, top_k, chunk), observable))(gaps)

    return curve


def truncation_bound(gaps: Float[ArrayLike, "S m"], n: int | float, betas) -> Float[Array, " B"]:
    """max over seeds of (n - m) exp(-beta (u_(m) - u_(1))): a bound on the relative change of Z,
    hence of the max weight, from dropping the n - m farthest keys. Zero when m = n."""
    s, m = gaps.shape
    if m >= n:
        return jnp.zeros(jnp.shape(jnp.atleast_1d(betas)), gaps.dtype)
    spread = jnp.max(gaps, axis=1) - jnp.min(gaps, axis=1)  # (S,)
    b = jnp.atleast_1d(jnp.asarray(betas, gaps.dtype))
    # (n - m) as a float: n may be far beyond int32 (1e15 keys)
    return jnp.max(float(n - m) * jnp.exp(-b[None, :] * spread[:, None]), axis=0)


def default_lambda_range(law: KeyLaw) -> tuple[float, float]:
    """lambda*/8 .. 8 lambda* with lambda* of the law's (alpha, C) in the Poisson limit (docs/theory.md §d);
    (0.05, 5) when the theory is unavailable for the law."""
    try:
        from .theory.poisson import lambda_star

        ls = lambda_star(alpha=law.alpha, C=law.C).lambda_star
    except Exception:  # noqa: BLE001 - a law without (alpha, C): fall back to a wide fixed range
        return (0.05, 5.0)
    return (ls / 8.0, ls * 8.0)


@dataclasses.dataclass(frozen=True)
class ScalingResult:
    """beta_peak(n) over n, the fit, and the collapse data. Host (NumPy) arrays throughout."""

    law_name: str
    d: int
    alpha: float
    C: float
    n: np.ndarray
    m: np.ndarray
    seeds: int
    sampler: str
    beta_peak: np.ndarray
    beta_peak_se: np.ndarray
    value_at_peak: np.ndarray
    chi_max: np.ndarray
    truncation_bound: np.ndarray
    fit: PowerLawFit
    fit_finite_size: PowerLawFit | None
    collapse_lambda: np.ndarray
    collapse_mean: np.ndarray
    collapse_se: np.ndarray
    peaks: tuple
    chi_error: np.ndarray | None = None
    peak_shift: np.ndarray | None = None
    bulk: bool = False
    on_edge: np.ndarray | None = None  # True: the peak stayed on a grid edge after widening; left out of the fits

    @property
    def lambda_peak(self) -> np.ndarray:
        return self.beta_peak / self.n ** (2 / self.alpha)

    @property
    def exponent_theory(self) -> float:
        return 2 / self.alpha


def _scan_memory(seeds: int, m: int, points: int, itemsize: int) -> float:
    """Bytes that :func:`scaling_scan` holds at once for one n: the (seeds, m) nearest gaps (with a sorted copy
    and the bulk's per-context data), and the susceptibility's vmapped working set, (seeds, points, chunk)
    counted 4 times (values, tangents and the scan's temporaries), chunk = min(m, 32768).

    >>> _scan_memory(256, 512, 16, 4) < 2**30
    True
    """
    return 3.0 * seeds * m * itemsize + 4.0 * seeds * points * min(m, 32768) * itemsize + 64.0 * seeds * points


def scaling_scan(
    law: KeyLaw,
    ns,
    *,
    key: PRNGKeyArray,
    seeds: int = 256,
    sampler: str = "auto",
    m: int | None = None,
    observable: str = "max_weight",
    lambda_range: tuple[float, float] | None = None,
    grid_points: int = 16,
    collapse_points: int = 40,
    tail_tol: float = 1e-7,
    bulk: bool | None = None,
    error_tol: float = 1e-6,
    progress=None,
    devices: int | None = None,
    checkpoint=None,
    cell_seeds: int | None = None,
    scale_by_chi2: bool = True,
) -> ScalingResult:
    """beta_peak(n) for each n in ``ns`` with the delta-method se, and the weighted power-law fit.

    The bracketing grid for each n is lambda n^{2/alpha} (lambda ``law.critical_scale(n)`` for laws
    that have one, e.g. :class:`phasejax.laws.GaussianScores`: beta_c) with lambda log-spaced in
    ``lambda_range`` (default: lambda*/8 .. 8 lambda* from the Poisson limit of the law's (alpha, C),
    see :func:`default_lambda_range`); when the susceptibility peaks at an end of the grid, the grid
    is extended by a factor 8 on that side (up to 3 times) and m re-chosen, so the peak is bracketed.
    The finite-size fit adds c n^{-2/alpha} (docs/theory.md §c: the relative
    correction to beta_peak(n)/n^{2/alpha} is O(n^{-2/(d-1)}), O(1/n) for d = 3) and is
    reported beside the plain fit when there are at least 4 values of n. With ``scale_by_chi2`` (default)
    both fits multiply their standard errors by the Birge ratio max(1, sqrt(chi2/dof)) (:func:`fit_power_law`):
    the per-n delta-method errors can be somewhat optimistic and the plain fit ignores the finite-size
    curvature, and the scatter about the line says by how much.

    **m and the bulk.** For Beta gap laws (``bulk=True``; with ``bulk=None``, the default, wherever the rule
    of the m nearest alone, :func:`choose_m`, would need more than ``BULK_ABOVE`` = 4096 keys) the n - m keys
    beyond the m nearest enter through their conditional mean plus the CLT fluctuation (:func:`bulk_gap_curve`),
    m is chosen by :func:`choose_m_bulk` (predicted CLT error in E[max weight] < ``error_tol`` over the grid) and
    ``truncation_bound`` is the realised bound on that error relative to E[max weight] at the peak
    (:func:`phasejax.laws.nearest.clt_error`, seed mean), with ``chi_error`` (the leading error of chi,
    relative) and ``peak_shift`` (the leading error of log beta_peak, in units of its se). Otherwise
    (``bulk=False``, other laws) the m nearest alone, m by :func:`choose_m` (neglected mass < ``tail_tol``) and
    ``truncation_bound`` the sure bound :func:`truncation_bound`.

    ``devices``, ``checkpoint`` and ``cell_seeds`` go to :func:`nearest_gap_samples` (cells
    ``n<index>-m<m>-seeds-<start>-<stop>``): seeds sharded over devices and processes, and a rerun
    with the same checkpoint folder reloads the finished gap samples.
    """
    ns = [check_int("n", v, minimum=2) for v in np.atleast_1d(ns)]
    if len(ns) < 2:
        raise InputError(f"ns needs at least 2 context lengths for a fit, got {len(ns)}")
    seeds = check_int("seeds", seeds, minimum=2)
    lambda_range = default_lambda_range(law) if lambda_range is None else lambda_range
    lo, hi = (check_real("lambda_range[0]", lambda_range[0], positive=True),
              check_real("lambda_range[1]", lambda_range[1], positive=True))
    if not hi > lo:
        raise InputError(f"lambda_range must be increasing, got {lambda_range}")
    check_int("grid_points", grid_points, minimum=3)
    alpha = law.alpha
    curve = gap_curve(observable)
    if bulk and not bulk_applies(law):
        raise InputError(f"bulk=True needs a Beta gap law with a known CDF, got {type(law).__name__}")
    use_bulk = bulk_applies(law) if bulk is None else bool(bulk)
    if use_bulk:
        a_g, b_g = (float(v) for v in law.gap_beta_params)
        bulk_curve = bulk_gap_curve(a_g, b_g, observable)
    log_step = math.log(hi / lo) / (grid_points - 1)
    lam_collapse = np.geomspace(lo, hi, collapse_points)
    if m is not None:
        m = check_int("m", m, minimum=1)

    def keys_kept(n, lo_c, hi_c):  # (m, bulk on?) for context length n and the lambda range (lo_c, hi_c)
        m_tail = choose_m(law, n, lo_c, tail_tol=tail_tol)
        # auto: the bulk term only where the m nearest alone would need many keys (the bulk's quadrature and
        # its compilation cost about as much as a few thousand keys)
        bulk_n = use_bulk and (bulk is not None or m_tail > BULK_ABOVE)
        if m is not None:
            return min(m, n), bulk_n
        return (choose_m_bulk(law, n, (lo_c, hi_c), tol=error_tol) if bulk_n else m_tail), bulk_n

    # before any work: the largest n's arrays must fit (the grid may widen later; this is the first grid's size)
    itemsize = jnp.dtype(jnp.result_type(float)).itemsize
    m_max = max(keys_kept(n, lo, hi)[0] for n in ns)
    check_memory(_scan_memory(seeds, m_max, grid_points, itemsize), "seeds (or m)",
                 f"{seeds} contexts x {m_max} nearest gaps x {grid_points} betas")
    rows = []
    samplers = set()
    for i, n in enumerate(ns):
        resolved = choose_sampler(law, n, sampler)
        samplers.add(resolved)
        # laws without a power-law tail (GaussianScores: beta_c = sqrt(2 log n)/sigma) give their own scale
        scale = law.critical_scale(n) if hasattr(law, "critical_scale") else n ** (2 / alpha)
        lo_n, hi_n = lo, hi
        for _attempt in range(4):
            lo_c = min(lo_n, lo)
            mm, bulk_n = keys_kept(n, lo_c, max(hi_n, hi))
            points = int(round(math.log(hi_n / lo_n) / log_step)) + 1
            check_memory(_scan_memory(seeds, mm, points, itemsize), "seeds (or m)",
                         f"{seeds} contexts x {mm} nearest gaps x {points} betas at n = {n}")
            gaps = nearest_gap_samples(law, jax.random.fold_in(key, i), n, mm, seeds=seeds, sampler=resolved,
                                       devices=devices, checkpoint=checkpoint, cell_seeds=cell_seeds,
                                       prefix=f"n{i:03d}-m{mm}-seeds")
            with_bulk = bulk_n and mm < n
            if with_bulk:  # the bulk's threshold probability and CLT draws (per context, from its own key)
                ctx = jax.random.split(jax.random.fold_in(key, i), seeds)
                dt = gaps.dtype
                xi = jax.vmap(lambda k, dt=dt: jax.random.normal(jax.random.fold_in(k, 1), (4,), dt))(ctx)
                data = (gaps, tail_log_prob(a_g, b_g, gaps[:, -1]), xi, jnp.asarray(float(n - mm), gaps.dtype))
                curve_n = bulk_curve
            else:
                data, curve_n = (gaps,), curve
            grid = jnp.log(jnp.asarray(np.geomspace(lo_n, hi_n, points) * scale, gaps.dtype))
            peak: Peak = find_peak(curve_n, grid, *data)
            if not peak.on_edge:
                break
            if int(jnp.argmax(peak.chi_grid)) == 0:
                lo_n /= 8.0
            else:
                hi_n *= 8.0
        per_seed = np.asarray(curve_n(jnp.log(jnp.asarray(lam_collapse * scale, gaps.dtype)), *data), np.float64)
        if with_bulk:
            w_b, chi_b, shift_b = (float(v) for v in _clt_error_terms(a_g, b_g, peak.log_beta, data))
            bound = w_b
            mw = observable == "max_weight"  # chi and the peak are those of the max weight only then
            chi_err = chi_b / abs(float(peak.chi_max)) if mw else float("nan")
            shift = shift_b / float(peak.log_beta_se) if mw else float("nan")
        else:
            bound = float(truncation_bound(gaps, n, peak.beta)[0])
            chi_err = shift = float("nan")
        rows.append({
            "n": n, "m": mm, "peak": peak, "on_edge": bool(peak.on_edge),
            "beta": float(peak.beta), "se": float(peak.beta_se),
            "bound": bound, "chi_error": chi_err, "peak_shift": shift, "bulk": with_bulk,
            "collapse_mean": per_seed.mean(0), "collapse_se": per_seed.std(0, ddof=1) / math.sqrt(seeds),
        })
        if progress is not None:
            progress.update(1, f"n={n:g}: beta_peak/n^(2/alpha) = {float(peak.beta) / scale:.4f}")
    n_arr = np.array(ns, np.float64)
    beta = np.array([r["beta"] for r in rows])
    se = np.array([r["se"] for r in rows])
    edge = np.array([r["on_edge"] for r in rows], bool)
    keep = ~edge  # a peak still on a grid edge is a bound, not an estimate: flagged and left out of the fits
    if keep.sum() < 2:
        where = ", ".join(f"{n:g}" for n, e in zip(ns, edge, strict=True) if e)
        raise InputError(
            f"the susceptibility peak stays on an edge of the lambda grid at n = {where} even after widening it "
            f"8-fold 3 times (lambda_range = ({lo:g}, {hi:g})), leaving {int(keep.sum())} of {len(ns)} n for the "
            f"fit (needs 2); widen lambda_range (--lambda-min/--lambda-max) around lambda* of the law")
    fit = fit_power_law(n_arr[keep], beta[keep], se[keep], scale_by_chi2=scale_by_chi2)
    fit_fs = (fit_power_law(n_arr[keep], beta[keep], se[keep], finite_size_omega=2 / alpha,
                            scale_by_chi2=scale_by_chi2)
              if keep.sum() >= 4 and math.isfinite(alpha) else None)
    return ScalingResult(
        law_name=type(law).__name__, d=law.d, alpha=alpha, C=law.C, n=n_arr,
        m=np.array([r["m"] for r in rows]), seeds=seeds, sampler="+".join(sorted(samplers)),
        beta_peak=beta, beta_peak_se=se,
        value_at_peak=np.array([float(r["peak"].value) for r in rows]),
        chi_max=np.array([float(r["peak"].chi_max) for r in rows]),
        truncation_bound=np.array([r["bound"] for r in rows]),
        chi_error=np.array([r["chi_error"] for r in rows]),
        peak_shift=np.array([r["peak_shift"] for r in rows]),
        bulk=any(r["bulk"] for r in rows), on_edge=edge,
        fit=fit, fit_finite_size=fit_fs,
        collapse_lambda=lam_collapse,
        collapse_mean=np.stack([r["collapse_mean"] for r in rows]),
        collapse_se=np.stack([r["collapse_se"] for r in rows]),
        peaks=tuple(r["peak"] for r in rows),
    )
