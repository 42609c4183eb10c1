"""Each regime's finite-n simulation against its limit law (docs/theory.md §b, §c, §f), at stated sigmas."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from phasejax import limits


def test_subcritical_covariance_and_normality():
    r = limits.subcritical_fluctuations(3, 5.0, [10_000], key=jax.random.key(0), seeds=800)
    # sample-variance se (Gaussian): 4 sigma, plus the O(1/n) finite-n bias, negligible at n = 1e4
    assert abs(r["n_var_par"][0] - r["S_par"]) < 4 * r["n_var_par_se"][0]
    assert abs(r["n_var_perp"][0] - r["S_perp"]) < 4 * r["n_var_perp_se"][0]
    assert r["ks_normal_p"][0] > 1e-3
    assert abs(r["mean_bias"][0] - r["mean_bias_theory"][0]) < 4 * r["mean_bias_se"][0]


def test_critical_ks_distance_shrinks_with_n_d5():
    r = limits.critical_laws(5, 1.0, [10, 1000], key=jax.random.key(1), seeds=3000, ppp_seeds=30000)
    assert r["ks_max_weight"][1] < r["ks_max_weight"][0] / 4
    assert r["ks_entropy"][1] < r["ks_entropy"][0] / 4
    # at n = 1e3 the law is within 2x the 95% KS noise level of the limit, and the mean within 4 se
    assert r["ks_max_weight"][1] < 2 * r["ks_noise"]
    assert abs(r["E_max_weight"][1] - r["E_max_weight_limit"]) < 4 * r["E_max_weight_se"][1] + 0.01


def test_critical_mean_max_weight_matches_quadrature_d3():
    r = limits.critical_laws(3, 1.0, [1000], key=jax.random.key(2), seeds=4000, ppp_seeds=1000)
    assert abs(r["E_max_weight"][0] - r["E_max_weight_limit"]) < 4 * r["E_max_weight_se"][0]


def test_supercritical_matches_poisson_and_tail_law():
    r = limits.supercritical_tail_check(3, [10.0, 30.0], 10_000, key=jax.random.key(3), seeds=6000)
    diff = np.abs(r["one_minus_E_max_weight"] - r["poisson_exact"])
    assert np.all(diff < 4 * r["one_minus_E_max_weight_se"])
    # the tail law is the lambda -> infinity asymptote: within 4% of the exact Poisson value at lambda = 30
    assert abs(r["tail_law"][1] / r["poisson_exact"][1] - 1) < 0.04


@pytest.mark.parametrize("d", [3, 5])
def test_entropy_crossover_plateau(d):
    """n = 1e6: H and dH/dlog beta follow the n = infinity curve where beta << n^{2/(d-1)}, and the slope
    sits on the plateau -(d-1)/2 + (d-1)(d-3)/(4 beta) for 1 << beta << n^{2/(d-1)}."""
    n = 10**6
    crit = n ** (2 / (d - 1))
    betas = np.array([0.1, 1.0, 30.0, 1e-2 * crit])
    e = limits.entropy_crossover(d, n, betas, key=jax.random.key(4), seeds=8)
    sub = betas <= 1e-2 * crit
    assert np.all(np.abs(e["slope"] - e["slope_limit"])[sub] < 4 * e["slope_se"][sub] + 1e-3)
    assert np.all(np.abs(e["entropy"] - e["entropy_limit"])[sub] < 4 * e["entropy_se"][sub] + 1e-3)
    assert abs(e["slope_limit"][2] - e["plateau"][2]) < 0.02 * (d - 1)  # the plateau formula at beta = 30
