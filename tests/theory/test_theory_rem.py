"""Score laws beyond the sphere (docs/theory.md §h): Gaussian scores / REM, Poisson-Dirichlet, the exact finite-n
E[max weight] for any score law, almost-simplex tokens. References: closed forms, scipy quadrature
written here, Monte Carlo (agreement within 4 standard errors), theory.exact_expected_max_weight."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from scipy import integrate

from phasejax import theory as S
from phasejax._checks import InputError


def test_rem_beta_c_and_errors():
    assert S.rem_beta_c(1e6, 0.5) == pytest.approx(2 * math.sqrt(2 * math.log(1e6)), rel=1e-14)
    np.testing.assert_allclose(S.rem_beta_c(np.array([10.0, 100.0])), np.sqrt(2 * np.log([10.0, 100.0])))
    with pytest.raises(InputError, match="sigma"):
        S.rem_beta_c(100, -1.0)
    with pytest.raises(InputError, match="n must be >= 2"):
        S.rem_beta_c(1)
    for bad in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(InputError, match=r"m must be in \(0, 1\)"):
            S.pd_expected_max_weight(bad)


@pytest.mark.parametrize("m", [0.02, 0.3, 0.7, 0.97])
def test_pd_sum_w2_identity(m):
    assert S.pd_expected_sum_w2(m) == pytest.approx(1 - m, abs=1e-10)


def test_pd_max_weight_small_m():
    # E W1 = 1 - m log 2 + O(m^2): the remainder divided by m shrinks linearly with m
    r = [abs((1 - S.pd_expected_max_weight(m)) / m - math.log(2)) for m in (1e-2, 1e-3)]
    assert r[1] < 2e-3
    assert 5 < r[0] / r[1] < 20


@pytest.mark.parametrize("m", [0.25, 0.6, 0.9])
def test_pd_max_weight_vs_independent_quadrature(m):
    # Mecke + scaling: E W1 = int e^{-v} dv / (1 + v^m A(v)), A(v) = m int_0^v z^{-m-1} (1 - e^{-z}) dz
    def a_of(v):
        return m * integrate.quad(lambda z: z ** (-m - 1) * -math.expm1(-z), 0, v, limit=200)[0]

    ref = integrate.quad(lambda v: math.exp(-v) / (1 + v**m * a_of(v)), 0, np.inf, limit=200)[0]
    assert S.pd_expected_max_weight(m) == pytest.approx(ref, abs=1e-7)


def test_pd_chi_grows_towards_freezing():
    chis = [S.pd_chi(m) for m in (0.3, 0.6, 0.9, 0.99)]
    assert all(b > a for a, b in zip(chis, chis[1:], strict=False))
    # chi = -m dE/dm against a central difference (test reference only)
    m, h = 0.6, 1e-5
    fd = -m * (S.pd_expected_max_weight(m + h) - S.pd_expected_max_weight(m - h)) / (2 * h)
    assert S.pd_chi(m) == pytest.approx(fd, rel=1e-6)


def test_pd_sampler_vs_quadrature(x64):
    # 4000 draws: sd(W1) ~ 0.25 -> se ~ 0.004; compare within 4 se (stated sigma)
    m, draws = 0.5, 4000
    smp = jax.vmap(lambda k: S.pd_sample(k, m, 2048))(jax.random.split(jax.random.key(3), draws))
    w = np.asarray(smp.weights)
    assert np.all(np.diff(w, axis=1) <= 0)
    assert float(np.max(smp.tail_sd)) < 1e-3
    w1 = w[:, 0]
    assert abs(w1.mean() - S.pd_expected_max_weight(m)) < 4 * w1.std(ddof=1) / math.sqrt(draws)
    s2 = (w**2).sum(axis=1)
    assert abs(s2.mean() - (1 - m)) < 4 * s2.std(ddof=1) / math.sqrt(draws)
    np.testing.assert_allclose(w.sum(axis=1) + np.asarray(smp.tail_mass), 1.0, rtol=1e-12)
