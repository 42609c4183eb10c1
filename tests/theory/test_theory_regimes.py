"""Regimes and the tail predictor (phasejax.theory), docs/theory.md §c.

max_weight_band, band_context_lengths and regime (super / critical / sub); predict_beta_peak reducing
exactly to the power law (lambda* C^{1/h} n, and lambda*(3) = 0.3814472 on uniform S^2) and to the
Gaussian hazard with its sqrt(2 log n)/sigma (REM) limit; tail_at_quantile at F = 1e-200; the limits
of kappa_star_over_h.

References are independent: closed-form CDFs, SciPy's normal law, and the published lambda*(3).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from phasejax import InputError, theory
from phasejax.laws import (
    GaussianScores,
    UniformSphere,
)
from phasejax.theory import band_context_lengths, max_weight_band, regime


def test_regime_window_and_context_lengths():
    lo, hi = max_weight_band(2.0, 0.5)
    from phasejax.theory import lambda_star, poisson_expected_max_weight

    with jax.enable_x64(True):
        assert float(poisson_expected_max_weight(1.0, jnp.float64(0.5 / lo))) == pytest.approx(0.1, abs=1e-6)
        assert float(poisson_expected_max_weight(1.0, jnp.float64(0.5 / hi))) == pytest.approx(0.9, abs=1e-6)
    assert lo < lambda_star(3).lambda_star < hi
    beta = 40.0
    n_in, n_out = band_context_lengths(beta, 2.0, 0.5)
    r = regime(beta, [n_in * 0.9, n_in * 1.1, n_out * 0.9, n_out * 1.1], 2.0, 0.5)
    assert r.name == ("super", "critical", "critical", "sub")
    np.testing.assert_allclose(r.lambda_ratio * r.lambda_star, beta / r.n)
    with pytest.raises(InputError):
        regime(-1.0, 10, 2.0, 0.5)
    with pytest.raises(InputError):
        max_weight_band(2.0, 0.5, (0.9, 0.1))


def test_predictor_reduces_to_power_law_exactly():
    # F(u) = C u^h exactly (h = 1, any C): predictor = lambda*(alpha = 2, C) n
    for c in (0.5, 0.7):
        law = theory.TailFromCDF(lambda u, c=c: math.log(c) + math.log(u), lambda u, c=c: math.log(c), 1.0,
                                u_max=1.0 / c)
        ls = theory.kappa_star_over_h(1.0) * c  # lambda* = kappa* C^{1/h}
        for n in (1e3, 1e6, 1e12):
            assert float(theory.predict_beta_peak(n, law)) == pytest.approx(ls * n, rel=1e-9)
    # uniform S^2: F = u/2 exactly, lambda*(3) = 0.3814472 (docs/theory.md §c)
    pred = theory.predict_beta_peak(np.array([1e3, 1e9]), UniformSphere(3))
    np.testing.assert_allclose(pred / np.array([1e3, 1e9]), 0.3814472, rtol=1e-6)


def test_predictor_gaussian_hazard_and_rem_limit():
    g = GaussianScores(sigma=0.5)
    for n in (1e2, 1e4, 1e8):
        t = stats.norm.isf(1 / n)
        hz = stats.norm.pdf(t) / stats.norm.sf(t) / 0.5  # independent: SciPy's normal law
        assert float(theory.predict_beta_peak(n, g)) == pytest.approx(hz, rel=1e-8)
    ratios = [float(theory.predict_beta_peak(n, g)) * 0.5 / math.sqrt(2 * math.log(n)) for n in (1e6, 1e30, 1e300)]
    assert ratios[0] < ratios[1] < ratios[2] < 1.0
    assert abs(ratios[2] - 1) < 0.005  # sqrt(2 log n)/sigma asymptotically (slowly: log corrections)


def test_tail_point_beta_law_precision():
    tp = theory.tail_at_quantile(UniformSphere(5), 1e200)  # F = I_{u/2}(2, 2) = 1e-200
    x = tp.u_star / 2
    assert x * x * (3 - 2 * x) == pytest.approx(1e-200, rel=1e-10)
    assert tp.h_local == pytest.approx(2.0, rel=1e-6)


def test_kappa_star_over_h_limits():
    assert theory.kappa_star_over_h(math.inf) == 1.0
    assert theory.kappa_star_over_h(1.0) == pytest.approx(0.3814472 / 0.5, rel=1e-6)
