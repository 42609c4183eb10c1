"""Monte Carlo measurements of one attention step against the n = infinity theory (docs/theory.md §g), with a
half-sample (Richardson) extrapolation N -> infinity of the measured gain.

Definition of the exact gain. For rho = 1 + eps P_l(<x,e>) the n = infinity map T is explicit
(docs/theory.md §g; see :func:`exact_map`). ``exact_gain`` pushes rho forward through x -> T(x)/|T(x)| at
*finite* eps and measures the degree-l amplitude of the pushed-forward density with the same
projection as the Monte Carlo estimator: G = E_rho[P_l(t')] / E_rho[P_l(t)], t' = <T(x)/|T(x)|, e>,
a 1-D Gauss-Jacobi quadrature in t. This is the N -> infinity limit of :func:`measure_gain` and
reproduces the public anchor (d=3, l=1, eps=0.5, beta=1000: 1.0019999436428204). Its eps -> 0
limit (``linear=True``) is G = 1 + l(l+d-2) a_l(beta) / (beta A_d(beta)), a_l = I_{l+nu}/I_nu,
A_d = a_1, nu = d/2 - 1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float, PRNGKeyArray

from .._checks import InputError, check_array, check_int, check_real
from .step import attention_step, attention_step_halves
from .theory import exact_gain, exact_map, heat_displacement, zonal_map
from .zonal import _axis, _check_eps, _check_heat_d, _check_l, mode_amplitude, sample_zonal

__all__ = ["GainMeasurement", "richardson_weights", "gain_one_cloud", "measure_gain", "compare_displacement"]


class GainMeasurement(NamedTuple):
    """Monte Carlo amplification of one zonal mode at one beta, over independent seeds.

    ``G`` mean over seeds of the per-seed ratio estimator at N tokens; ``G_se`` its standard error
    (std over seeds / sqrt(seeds)); ``G_seeds`` the per-seed values. ``G_extrapolated`` (``_se``,
    ``_seeds``) the N -> infinity (Richardson) estimate from the same clouds, see :func:`measure_gain`.
    ``G_exact`` the n = infinity value and ``G_exact_n`` the same with the O(1/N) finite-N correction
    (:func:`exact_gain` with ``n``). ``bias`` = G - G_extrapolated, the measured finite-N bias, with
    ``bias_se``; the theory for it is G_exact_n - G_exact.
    """

    beta: float
    G: float
    G_se: float
    G_seeds: np.ndarray
    G_extrapolated: float
    G_extrapolated_se: float
    G_extrapolated_seeds: np.ndarray
    bias: float
    bias_se: float
    G_exact: float
    G_exact_n: float
    n: int
    d: int
    l: int
    eps: float
    self_interaction: bool


def richardson_weights(n: int | float, n_a: int, n_b: int) -> tuple[float, float]:
    """Weights (c_full, c_half) with c_full + c_half = 1 that cancel a bias b/n' in the number of keys.

    G_inf = c_full G(all N keys) + c_half (G(half A) + G(half B))/2 removes any c/N bias exactly:
    with h = (1/n_a + 1/n_b)/2, c_full = h/(h - 1/n), c_half = -(1/n)/(h - 1/n); = (2, -1) for equal halves.
    Each key set is an i.i.d. sample, so this is the standard half-sample (jackknife-type) correction.

    >>> richardson_weights(1000, 500, 500)
    (2.0, -1.0)
    """
    h = (1 / n_a + 1 / n_b) / 2
    return h / (h - 1 / n), -(1 / n) / (h - 1 / n)


def gain_one_cloud(x: Float[ArrayLike, "N d"], beta, l: int, *, self_interaction: bool = True, chunk_q: int = 512,
                   chunk_k: int = 2048) -> tuple[float, float]:
    """(G, G_extrapolated) of mode l for one cloud ``x`` after one renormalised step at ``beta``.

    G = hat_eps(y)/hat_eps(x) (:func:`mode_gain`), y the step with all N tokens as keys; G_extrapolated
    = c_full G + c_half (G_A + G_B)/2 (:func:`richardson_weights`), G_A, G_B the same with the keys
    restricted to either half (:func:`attention_step_halves`, one pass). The queries are all N tokens in
    every case, so the cancellation of the cloud's sampling noise is kept; and as the key-density
    fluctuations of the two halves average to those of the full cloud, their first-order effect cancels in
    (G_A + G_B)/2 - G.

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 4000, 3, 2, 0.5)
    >>> g, g_inf = gain_one_cloud(x, 20.0, 2)
    >>> abs(g - g_inf) < 0.01
    True
    """
    l = _check_l(l)
    if l == 0:
        raise InputError("l must be >= 1 for a zonal mode (degree 0 is the constant), got 0")
    n = np.shape(x)[0]
    y, ya, yb, (n_a, n_b) = attention_step_halves(x, beta, self_interaction=self_interaction, chunk_q=chunk_q,
                                                   chunk_k=chunk_k)
    before = float(mode_amplitude(x, l))
    g, ga, gb = (float(mode_amplitude(v, l)) / before for v in (y, ya, yb))
    c_full, c_half = richardson_weights(n, n_a, n_b)
    return g, c_full * g + c_half * (ga + gb) / 2


def measure_gain(
    key: PRNGKeyArray,
    beta,
    *,
    n: int | float,
    d: int = 3,
    l: int = 2,
    eps: float = 0.5,
    seeds: int = 4,
    self_interaction: bool = True,
    chunk_q: int = 512,
    chunk_k: int = 2048,
) -> GainMeasurement:
    """Measured G_l after one renormalised all-queries step, with a standard error over seeds.

    Per seed s: tokens x ~ rho = 1 + eps P_l(<x,e>) (:func:`sample_zonal`, key ``fold_in(key, s)``),
    y = :func:`attention_step`, G_s = hat_eps(y)/hat_eps(x) (:func:`mode_gain`).

    Standard error: over independent seeds (std/sqrt(seeds)). The output tokens are correlated (they
    share keys), so a per-token delta method is not honest. Variance reduction: the ratio of the
    projections of the *same* tokens before and after the step cancels the sampling noise of the cloud
    (the step amplifies the cloud's empirical mode, whatever its size), leaving a per-seed spread ~1e-3
    of G - 1 at N = 2e5; the same ``key`` gives the same clouds at every beta (common random numbers).

    Finite-N bias. A softmax average over n' i.i.d. keys is a ratio estimator, biased by O(R/n'),
    R = M_d(2beta)/M_d(beta)^2 ~ beta^{(d-1)/2} (docs/theory.md §b): G_s estimates ``G_exact_n``
    (:func:`exact_gain` with ``n``), not the n = infinity ``G_exact``. At N = 2e5 and beta = 200 the bias
    (about 1e-4 for d = 4) is several standard errors. ``G_extrapolated`` removes it without using that
    theory: the same step with the keys restricted to either half of the cloud (same queries, one pass)
    has twice the bias, so the Richardson combination 2 G - (G_A + G_B)/2 (:func:`gain_one_cloud`) is an
    estimate of the N = infinity gain with O(R^2/N^2) bias, at a standard error about 1.5 to 2 times that
    of G. Its per-seed values give its standard error; ``bias`` = G - G_extrapolated (with ``bias_se``
    from the per-seed differences) is a measurement of the finite-N bias, to compare with
    G_exact_n - G_exact. The subcritical regime needs beta << N^{2/(d-1)}.

    >>> import jax
    >>> m = measure_gain(jax.random.key(0), 20.0, n=2000, seeds=2)
    >>> abs(m.G - m.G_exact) < 0.05 and abs(m.G_extrapolated - m.G_exact) < 0.05
    True
    """
    n = check_int("n", n, minimum=4)
    seeds = check_int("seeds", seeds, minimum=1)
    d, l = _check_heat_d(d), _check_l(l)
    eps = _check_eps(eps, d, l)
    if eps == 0:
        raise InputError("eps must be nonzero to measure an amplification (G = hat_eps_after / hat_eps_before)")
    beta = check_real("beta", beta, positive=True)
    gs = np.asarray([
        gain_one_cloud(sample_zonal(jax.random.fold_in(key, s), n, d, l, eps), beta, l,
                       self_interaction=self_interaction, chunk_q=chunk_q, chunk_k=chunk_k)
        for s in range(seeds)
    ])

    def mse(v):
        return float(v.mean()), (float(v.std(ddof=1) / math.sqrt(seeds)) if seeds > 1 else math.nan)

    (g, se), (g_inf, se_inf), (bias, bias_se) = mse(gs[:, 0]), mse(gs[:, 1]), mse(gs[:, 0] - gs[:, 1])
    return GainMeasurement(
        beta=beta, G=g, G_se=se, G_seeds=gs[:, 0], G_extrapolated=g_inf, G_extrapolated_se=se_inf,
        G_extrapolated_seeds=gs[:, 1], bias=bias, bias_se=bias_se,
        G_exact=float(exact_gain(d, l, eps, beta)),
        G_exact_n=float(exact_gain(d, l, eps, beta, n=n, self_interaction=self_interaction)),
        n=n, d=d, l=l, eps=eps, self_interaction=bool(self_interaction),
    )


def compare_displacement(
    x: Float[ArrayLike, "N d"], beta, l: int, eps, *, e=None, y: Float[ArrayLike, "N d"] | None = None, bins: int = 20,
    empirical_modes: int = 8, **step_kwargs,
) -> dict:
    """Measured displacement y - x (unrenormalised step) against the exact map and the heat prediction.

    Per token: ``rms_measured`` = rms|y - x|, ``rms_exact_error`` = rms|y - T(x)| (T = :func:`exact_map`),
    ``rms_heat_error`` = rms|y - x - heat_displacement(x)|, ``rms_exact_vs_heat`` = rms|T - x - heat|, and
    the same for the tangential components (``*_tangential``). Per-token errors are dominated by the finite-N
    noise (variance ~ R/(beta N), docs/theory.md §b), so also the meridian profile: the speed along the meridian
    towards e, v = <y - x, (e - t x)/sqrt(1-t^2)>, averaged in ``bins`` bins of t = <x,e>:
    ``profile_t``, ``profile_measured``, ``profile_exact``, ``profile_heat`` (the heat speed is
    (eps/beta) P_l'(t) sqrt(1-t^2) / (1 + eps P_l(t))), and their rms differences ``profile_exact_error``,
    ``profile_heat_error``, ``profile_rms`` (docs/theory.md §g). The step responds to the cloud's *empirical*
    density, whose zonal modes fluctuate by ~sqrt(N_m/N): ``profile_empirical`` (and
    ``profile_empirical_error``) is the speed of :func:`zonal_map` with the cloud's projected zonal
    amplitudes of degrees 1..``empirical_modes``, which removes that part of the difference.

    >>> import jax
    >>> x = sample_zonal(jax.random.key(0), 4000, 3, 2, 0.5)
    >>> r = compare_displacement(x, 20.0, 2, 0.5)
    >>> r["profile_exact_error"] < r["profile_heat_error"] < r["profile_rms"]
    True
    """
    check_array("x", x, ndim=2)
    bins = check_int("bins", bins, minimum=1)
    x = jnp.asarray(x)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    d = x.shape[1]
    ee = _axis(e, d, x.dtype)
    if y is None:
        y = attention_step(x, beta, renormalize=False, **step_kwargs)
    T = exact_map(x, beta, l, eps, e=e)
    H = x + heat_displacement(x, beta, l, eps, e=e)
    empirical_modes = check_int("empirical_modes", empirical_modes, minimum=1)
    E = zonal_map(x, beta, [float(mode_amplitude(x, m, e=e)) for m in range(1, empirical_modes + 1)], e=e)

    def rms(v):
        return float(jnp.sqrt(jnp.mean(jnp.sum(v**2, axis=1))))

    def tang(v):
        return v - jnp.sum(v * x, axis=1, keepdims=True) * x

    t = np.clip(np.asarray(x @ ee, np.float64), -1, 1)
    mer = (ee[None, :] - (x @ ee)[:, None] * x) / jnp.sqrt(jnp.maximum(1 - (x @ ee) ** 2, 1e-30))[:, None]
    speeds = [np.asarray(jnp.sum((z - x) * mer, axis=1), np.float64) for z in (y, T, H, E)]
    edges = np.linspace(-1, 1, bins + 1)
    idx = np.clip(np.digitize(t, edges) - 1, 0, bins - 1)
    cnt = np.bincount(idx, minlength=bins)
    ok = cnt > 0
    prof = [np.bincount(idx, weights=v, minlength=bins)[ok] / cnt[ok] for v in speeds]
    return {
        "rms_measured": rms(y - x),
        "rms_exact_error": rms(y - T),
        "rms_heat_error": rms(y - H),
        "rms_exact_vs_heat": rms(T - H),
        "rms_measured_tangential": rms(tang(y - x)),
        "rms_exact_error_tangential": rms(tang(y - T)),
        "rms_heat_error_tangential": rms(tang(y - H)),
        "profile_t": ((edges[:-1] + edges[1:]) / 2)[ok],
        "profile_count": cnt[ok],
        "profile_measured": prof[0],
        "profile_exact": prof[1],
        "profile_heat": prof[2],
        "profile_empirical": prof[3],
        "profile_rms": float(np.sqrt(np.mean(prof[0] ** 2))),
        "profile_exact_error": float(np.sqrt(np.mean((prof[0] - prof[1]) ** 2))),
        "profile_heat_error": float(np.sqrt(np.mean((prof[0] - prof[2]) ** 2))),
        "profile_empirical_error": float(np.sqrt(np.mean((prof[0] - prof[3]) ** 2))),
    }
