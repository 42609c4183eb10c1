"""Learned temperature (phasejax.learn, `phasejax learn`): the head against NumPy, its gradient against the
closed form, the regression MSE theory against closed forms and Monte Carlo, training against the
minimisers, retrieval growth, errors and the CLI contract.

References are independent: NumPy softmax code, the d = 3 closed forms (a_2 = 1 + 3/b^2 - 3 coth(b)/b,
R = b coth b), the n = 1 and beta -> 0 limits of the exact MSE, and Monte Carlo with stated standard errors.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from phasejax import learn as L


def _a2_d3(b):
    return 1.0 + 3.0 / b**2 - 3.0 / (b * np.tanh(b))


def _r_d3(b):
    return b / np.tanh(b)


def test_large_n_formula_matches_d3_closed_form():
    n, sigma = 5000.0, 0.5
    for beta in (2.0, 15.0, 300.0):
        a2, a22, r = _a2_d3(beta), _a2_d3(2 * beta), _r_d3(beta)
        bias2 = (1 - a2) ** 2 / 5
        var = r / n * (sigma**2 + (1 - 2 * a2 * a22 + a2**2) / 5)
        mse, b2, v = L.regression_mse_large_n(beta, n, 3, parts=True)
        assert b2 == pytest.approx(bias2, rel=1e-9) and v == pytest.approx(var, rel=1e-9)


def test_beta_opt_coefficient_closed_form_and_limit():
    # c = [2 d^2 / (N_2 sigma^2 r_d h)]^{2/(d+3)}: d=3 (N=5, r=1, h=1), d=5 (N=14, r=1/6, h=2)
    assert L.beta_opt_coefficient(3) == pytest.approx((2 * 9 / (5 * 0.25)) ** (1 / 3), rel=1e-12)
    assert L.beta_opt_coefficient(5) == pytest.approx((2 * 25 / (14 * 0.25 * (1 / 6) * 2)) ** (1 / 4), rel=1e-12)
    for d in (3, 5):
        # the minimiser of the full large-n formula tends to c n^{2/(d+3)} (corrections O(1/beta))
        r1 = L.beta_opt_large_n(1e8, d) / L.beta_opt_asymptotic(1e8, d)
        r2 = L.beta_opt_large_n(1e14, d) / L.beta_opt_asymptotic(1e14, d)
        assert abs(r2 - 1) < abs(r1 - 1) < 0.05 and abs(r2 - 1) < 0.005
        # bias^2 / MSE -> h/(h+2) at the optimum
        b = L.beta_opt_large_n(1e14, d)
        mse, bias2, _ = L.regression_mse_large_n(b, 1e14, d, parts=True)
        h = (d - 1) / 2
        assert bias2 / mse == pytest.approx(h / (h + 2), abs=0.01)


@pytest.mark.parametrize("d", [3, 5])
def test_exact_mse_limits(d):
    n2 = (d + 2) * (d - 1) / 2
    # n = 1: the single key's value: E(f(k) - f(q))^2 + sigma^2 = 2/N_2 + sigma^2, for every beta
    for beta in (0.1, 5.0, 60.0):
        assert L.regression_mse_exact(beta, 1, d) == pytest.approx(2 / n2 + 0.25, rel=1e-9)
    # beta -> 0: uniform weights: (1 + 1/n)/N_2 + sigma^2/n
    n = 40
    assert L.regression_mse_exact(1e-5, n, d) == pytest.approx((1 + 1 / n) / n2 + 0.25 / n, rel=1e-5)
    # large n: the exact MSE approaches the bias-variance formula
    b = 20.0
    assert L.regression_mse_exact(b, 10**7, d) == pytest.approx(L.regression_mse_large_n(b, 10**7, d), rel=2e-3)


def test_exact_mse_quadrature_precision_and_minimiser():
    """Halving the x step and the z panels changes the MSE by < 1e-9 relative, and the minimiser by < 1e-5:
    the 1% location target is met with four orders of magnitude to spare."""
    for beta, n, d in ((10.0, 100, 3), (43.6, 100_000, 5), (112.0, 100_000, 3)):
        a = L.regression_mse_exact(beta, n, d)
        b = L.regression_mse_exact(beta, n, d, dx=0.05, panel=0.5, order=12)
        assert abs(a - b) <= 1e-9 * b
    b1 = L.beta_opt_exact(300, 3)
    b2 = L.beta_opt_exact(300, 3, dx=0.05, panel=0.5, order=12)
    assert abs(b1 / b2 - 1) < 1e-5


def test_exact_mse_against_monte_carlo():
    """Monte Carlo (common random numbers over beta), 400 key sets x 16 queries: |z| < 4 for the MSE and for
    its log-beta derivative at the exact minimiser (where the exact derivative is 0)."""
    n, d = 50, 3
    bo = L.beta_opt_exact(n, d)
    betas = [0.5 * bo, bo, 2.0 * bo]
    m, se, g, gse = L.regression_mse_mc(betas, n, d, key=jax.random.key(11), contexts=400, queries=16)
    exact = np.array([L.regression_mse_exact(b, n, d) for b in betas])
    assert np.all(np.abs(m - exact) < 4 * se), (m, exact, se)
    assert abs(g[1]) < 4 * gse[1]
    assert g[0] < 0 < g[2]  # the minimum is bracketed


def test_large_n_formula_against_monte_carlo():
    """n = 20000, beta = 15 (n_eff = n/R ~ 1300): 64 key sets x 32 queries; within 4 se plus the O(R/n)
    second-order correction (1%)."""
    n, d, beta = 20_000, 3, 15.0
    m, se, _, _ = L.regression_mse_mc([beta], n, d, key=jax.random.key(5), contexts=64, queries=32)
    ref = L.regression_mse_large_n(beta, n, d)
    assert abs(m[0] - ref) < 4 * se[0] + 0.01 * ref, (m, se, ref)
