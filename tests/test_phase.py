"""Schedules against the public model code's convention, the phase diagram, the tail predictor, the CLI.

Each schedule test writes the model code's snippet out independently in NumPy (scale q and/or k,
or the logit, then take the dot product) and compares the logit multiplier with beta(n)/beta0.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from phasejax import phase, theory
from phasejax.laws import UniformSphere

L = 4096


def test_predictor_vs_measured_peak_small():
    # uniform S^2, n = 300, 1024 contexts: the measured chi peak (finite n; O(1/n) from lambda* n)
    # agrees with the predictor within 3 se + 3 %.
    n = 300
    law = UniformSphere(3)
    pk = phase.measured_peak(law, n, key=jax.random.key(3), seeds=1024)
    pred = float(theory.predict_beta_peak(n, law))
    assert pk.converged and not pk.on_edge
    assert abs(float(pk.beta) - pred) < 3 * float(pk.beta_se) + 0.03 * pred


@pytest.mark.slow
@pytest.mark.parametrize("d, n, tol", [(16, 10000, 0.06), (64, 10000, 0.06)])
def test_predictor_vs_measured_peak_high_d(d, n, tol):
    law = UniformSphere(d)
    pk = phase.measured_peak(law, n, key=jax.random.key(4), seeds=256)
    pred = float(theory.predict_beta_peak(n, law))
    assert abs(float(pk.beta) - pred) < 3 * float(pk.beta_se) + tol * pred


def test_window_and_table_d3():
    c = phase.law_constants(d=3)
    w = theory.critical_window(c.alpha, c.C)
    assert w.lambda_star == pytest.approx(0.3814472, rel=1e-6)
    assert 0.15 < w.lo < 0.3 and 3.5 < w.hi < 6.5 and w.E_lo < w.E_star < w.E_hi
    tab = phase.schedule_table(c, [1e3, 1e5], beta0=w.lambda_star * L, train_length=L)
    i = tab["schedule"].index("critical")
    np.testing.assert_allclose(tab["lambda_ratio"][i], 1.0, rtol=1e-12)
    np.testing.assert_allclose(tab["E_max_weight"][i], w.E_star, rtol=1e-6)
    j = tab["schedule"].index("constant")
    np.testing.assert_allclose(tab["lambda_ratio"][j], [L / 1e3, L / 1e5], rtol=1e-12)
    # d = 3, lambda = 1 (rho = 1/2): docs/theory.md §c anchors
    s = theory.poisson_summary(2.0, 0.5, 1.0)
    assert float(s["E_max_weight"]) == pytest.approx(0.729488, abs=2e-6)
    assert float(1 / s["inv_sum_w2"]) == pytest.approx(0.635256, abs=2e-6)
    assert float(np.log(s["effective_keys"])) == pytest.approx(0.668783, abs=2e-6)
    nl, direction = phase.leaves_window_at(c, "constant", n_min=1e3, n_max=1e7, beta0=w.lambda_star * L,
                                           train_length=L)
    assert direction == "below" and nl == pytest.approx(L / w.lo, rel=1e-5)  # lambda* L / n = lo lambda*
    pd = phase.phase_diagram(c, [1e3, 1e4, 1e5], [10.0, 1e3, 1e5])
    assert pd.E_max_weight.shape == (3, 3)
    assert np.all(np.diff(pd.E_max_weight, axis=0) > 0) and np.all(np.diff(pd.E_max_weight, axis=1) < 0)
