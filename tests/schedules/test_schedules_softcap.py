"""The critical scale of a soft-capped head (docs/theory.md §j): closed form and Monte Carlo.

Closed form: beta_eff = beta sech^2(beta / cap) peaks at y* cap, 2 y* tanh y* = 1, with the value
cap (y* - 1/(4 y*)); checked against a dense NumPy grid. Monte Carlo: E[max weight] of the capped head
(weights proportional to exp(cap tanh(beta t / cap)), the transformed observables) against the uncapped head
at beta_eff on the same keys and against the exact finite-n E[max weight] at beta_eff
(phasejax.theory.exact_expected_max_weight, a quadrature independent of the sampler).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasejax._checks import InputError
from phasejax.laws import UniformSphere
from phasejax.observables import SoftCap, sampled_observables
from phasejax.schedules import SOFT_CAP_Y_STAR, soft_cap_effective_beta, soft_cap_phase
from phasejax.theory import exact_expected_max_weight

LAMBDA_STAR_D3 = 0.3814472  # docs/theory.md §c test anchor (tests/data/reference.json)


def test_closed_form_against_a_dense_grid():
    y = np.linspace(1e-6, 5.0, 2_000_001)
    eta = y / np.cosh(y) ** 2
    assert SOFT_CAP_Y_STAR == pytest.approx(y[np.argmax(eta)], abs=5e-6)
    assert 2 * SOFT_CAP_Y_STAR * math.tanh(SOFT_CAP_Y_STAR) == pytest.approx(1.0, abs=1e-15)
    for cap in (30.0, 50.0):
        p = soft_cap_phase(cap, d=3)
        assert p.beta_eff_max == pytest.approx(cap * eta.max(), rel=1e-10)
        assert p.beta_eff_max / cap == pytest.approx(0.447743, abs=1e-6)
        assert p.beta_at_max == pytest.approx(SOFT_CAP_Y_STAR * cap, rel=1e-15)
        assert p.lambda_star == pytest.approx(LAMBDA_STAR_D3, rel=1e-6)
        assert p.n_selective_max == pytest.approx(p.beta_eff_max / LAMBDA_STAR_D3, rel=1e-6)  # alpha = 2
    # beta_eff itself, host and device
    b = np.array([0.0, 1.0, 40.0, 300.0, 1e5])
    with np.errstate(over="ignore"):  # cosh(2000)^2 = inf: beta_eff = 0 there
        ref, ref_half = b / np.cosh(b / 50.0) ** 2, b / np.cosh(b / 100.0) ** 2
    np.testing.assert_allclose(soft_cap_effective_beta(b, cap=50.0), ref, rtol=1e-14, atol=0)
    np.testing.assert_allclose(np.asarray(soft_cap_effective_beta(jnp.asarray(b[:4], jnp.float32), cap=50.0)),
                               ref[:4], rtol=2e-6)
    np.testing.assert_allclose(soft_cap_effective_beta(b, cap=50.0, t_top=0.5), ref_half, rtol=1e-14)


def test_critical_betas_solve_the_gap_law():
    for cap, d, n in ((50.0, 3, 40.0), (200.0, 5, 3000.0), (50.0, 3, 58.0)):
        p = soft_cap_phase(cap, d=d, n=n)
        target = p.lambda_star * n ** (2.0 / p.alpha)
        lo, hi = p.beta_critical
        assert lo < p.beta_at_max < hi
        for b in (lo, hi):
            assert b / np.cosh(b / cap) ** 2 == pytest.approx(target, rel=1e-12)
        assert p.lambda_ratio_max == pytest.approx(p.beta_eff_max / target, rel=1e-12) and p.lambda_ratio_max > 1
    # past n_selective_max the head never reaches the peak
    p = soft_cap_phase(50.0, d=3, n=60.0)
    assert p.n_selective_max < 60 and p.beta_critical is None and p.lambda_ratio_max < 1
    q = soft_cap_phase(50.0, alpha=4.0, C=0.25, n=10.0)
    assert q.n_selective_max == pytest.approx((q.beta_eff_max / q.lambda_star) ** 2, rel=1e-12)


def test_capped_head_is_the_uncapped_head_at_beta_eff_monte_carlo():
    """S = 500 contexts of n = 256 uniform keys on S^2, cap 200; beta on the rising branch, at the maximum of
    beta_eff and past it. Tolerances 4 sigma of the Monte Carlo means (sigma from the sample)."""
    cap, n, s = 200.0, 256, 500
    law = UniformSphere(3)
    betas = cap * np.array([0.3, SOFT_CAP_Y_STAR, 1.2, 2.5])
    beff = soft_cap_effective_beta(betas, cap=cap)
    keys = jax.random.split(jax.random.key(20), s)

    @jax.jit
    def runs(keys):
        capped = jax.vmap(lambda k: sampled_observables(law, k, n, jnp.asarray(betas, jnp.float32),
                                                        transform=SoftCap(cap)).max_weight)(keys)
        eff = jax.vmap(lambda k: sampled_observables(law, k, n, jnp.asarray(beff, jnp.float32)).max_weight)(keys)
        nominal = jax.vmap(lambda k: sampled_observables(law, k, n, jnp.asarray(betas, jnp.float32)).max_weight)(keys)
        return capped, eff, nominal

    capped, eff, nominal = (np.asarray(x, np.float64) for x in runs(keys))
    mean = lambda x: x.mean(axis=0)  # noqa: E731
    se = lambda x: x.std(axis=0, ddof=1) / math.sqrt(s)  # noqa: E731
    exact = np.array([float(exact_expected_max_weight(n, b, 3)) for b in beff])
    se_pair = np.sqrt(se(capped) ** 2 + se(eff) ** 2)
    lin = slice(0, 3)  # where the linearisation holds: curvature sinh(2 beta / cap) / (2 cap) <= 2.8 %
    assert np.all(np.abs(mean(capped) - mean(eff))[lin] < 4 * se_pair[lin]), (mean(capped), mean(eff), se_pair)
    assert np.all(np.abs(mean(capped) - exact)[lin] < 4 * se(capped)[lin]), (mean(capped), exact, se(capped))
    # the nominal beta is wrong by far more than the noise, and the capped head spreads out again past y* cap
    assert np.all(np.abs(mean(capped) - mean(nominal))[1:] > 10 * se_pair[1:])
    assert mean(capped)[3] < mean(capped)[1] - 10 * math.hypot(se(capped)[3], se(capped)[1])
    assert abs(mean(capped)[3] - mean(eff)[3]) < 0.1 * abs(mean(capped)[3] - mean(nominal)[3])


@pytest.mark.bad_input
def test_bad_input():
    with pytest.raises(InputError, match="cap"):
        soft_cap_phase(0.0, d=3)
    with pytest.raises(InputError, match="needs d"):
        soft_cap_phase(50.0)
    with pytest.raises(InputError, match="t_top"):
        soft_cap_effective_beta(1.0, cap=50.0, t_top=1.5)
    with pytest.raises(InputError, match="n"):
        soft_cap_phase(50.0, d=3, n=0.5)
