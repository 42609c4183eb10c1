"""Score laws beyond the sphere (docs/theory.md §h): Gaussian scores / REM, Poisson-Dirichlet, the exact finite-n
E[max weight] for any score law, almost-simplex tokens. References: closed forms, scipy quadrature
written here, Monte Carlo (agreement within 4 standard errors), theory.exact_expected_max_weight.

Schedules against the public model code's convention, the phase diagram, the tail predictor, the CLI.

Each schedule test writes the model code's snippet out independently in NumPy (scale q and/or k,
or the logit, then take the dot product) and compares the logit multiplier with beta(n)/beta0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special as sps

from phasejax._checks import InputError
from phasejax.laws import AlmostSimplex, GaussianScores
from phasejax.observables import gap_observables, sampled_observables


def test_gaussian_scores_law_contract():
    law = GaussianScores(0.5)
    assert law.has_gap_law and law.d == 0 and math.isinf(law.alpha) and math.isnan(law.C)
    assert law.equivalent_d == pytest.approx(4.0)
    assert law.critical_scale(1e4) == pytest.approx(math.sqrt(2 * math.log(1e4)) / 0.5)
    u = law.sample_gaps(jax.random.key(0), 20000)
    assert u.shape == (20000,)
    assert float(jnp.std(u)) == pytest.approx(0.5, rel=0.03)
    obs = sampled_observables(law, jax.random.key(1), 1000, jnp.array([0.0, 1e3]))
    assert float(obs.max_weight[0]) == pytest.approx(1e-3, rel=1e-5)
    assert float(obs.max_weight[1]) > 0.99
    with pytest.raises(InputError, match="sigma"):
        GaussianScores(0.0)
    with pytest.raises(InputError, match="scores, not key vectors"):
        law.sample_keys(jax.random.key(0), jnp.ones(3) / math.sqrt(3), 4)
    # choose_m: every key below beta_c, a Gumbel-tail m above
    assert law.choose_m(10**6, 0.5) == 10**6
    assert 16 <= law.choose_m(10**6, 4.0) < 10**6


@pytest.mark.slow
def test_gaussian_nearest_gaps_law(x64):
    # top score of n = 1e4: the O(m) sampler against the minimum of full samples (means within 4 se)
    law, n, s = GaussianScores(1.0), 4000, 1000
    near = jax.vmap(lambda k: law.nearest_gaps(k, n, 4))(jax.random.split(jax.random.key(5), s))
    full = jax.vmap(lambda k: jnp.min(law.sample_gaps(k, n)))(jax.random.split(jax.random.key(6), s))
    assert bool(jnp.all(jnp.diff(near, axis=1) >= 0))
    a, b = np.asarray(near[:, 0]), np.asarray(full)
    assert abs(a.mean() - b.mean()) < 4 * math.hypot(a.std() / math.sqrt(s), b.std() / math.sqrt(s))


def test_gaussian_predictor_hook():
    from phasejax.theory import predict_beta_peak

    law = GaussianScores(0.25)
    p = float(predict_beta_peak(1e6, law))
    assert 0.9 < p / law.critical_scale(1e6) < 1.1


@pytest.mark.parametrize("rho", [-0.5, 0.0, 0.8])
def test_almost_simplex_closed_forms(x64, rho):
    law = AlmostSimplex(rho)
    for n in (2, 1000):
        beta_c = law.gamma_c * math.log(n)
        assert float(law.max_weight(n, beta_c)) == pytest.approx(0.5 + 1 / (4 * n - 2), rel=1e-12)
        # the closed form is the softmax of the n gaps
        for b in (0.3 * beta_c, beta_c, 3.0 * beta_c):
            obs = gap_observables(law.gaps(n), jnp.array([b]))
            assert float(obs.max_weight[0]) == pytest.approx(float(law.max_weight(n, b)), rel=1e-10)
        # beta_peak maximises chi = d w1/d log beta (check against jax autodiff on a fine grid)
        bp = law.beta_peak(n)
        lb = jnp.log(bp) + jnp.linspace(-0.05, 0.05, 101)
        chi = jax.vmap(jax.grad(lambda x, n=n: law.max_weight(n, jnp.exp(x))))(lb)
        assert int(jnp.argmax(chi)) == 50
        assert float(law.chi(n, bp)) == pytest.approx(float(chi[50]), rel=1e-10)
    # logistic window of width gamma_c / log n
    n = 1e6
    lo, hi = law.window(n, 0.25)
    assert hi - lo == pytest.approx(2 * math.log(3) * law.gamma_c / math.log(n))
    for g, target in ((lo, 0.25), (hi, 0.75)):
        assert float(law.max_weight(n, g * math.log(n))) == pytest.approx(target, rel=1e-10)


def test_ndtri_precision_used_by_gaussian_tail():
    # the Gaussian tail point keeps precision far out (n = 1e300)
    tp = GaussianScores(1.0).tail_point(1e300)
    assert sps.ndtr(-tp.u_star) == pytest.approx(1e-300, rel=1e-8)
