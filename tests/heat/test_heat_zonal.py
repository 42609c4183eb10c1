"""phasejax.heat: zonal modes (docs/theory.md §g).

gegenbauer and its derivative, harmonic_dimension as the inverse mean square of P_l, sample_zonal's
law of t = <x,e> and its uniform azimuth, and mode_amplitude / zonal_spectrum as unbiased estimators.
References are independent of the library: SciPy's Gegenbauer polynomials and adaptive quadrature, the
density of t = <x,e> under rho = 1 + eps P_l (checked with SciPy's KS test), and Monte Carlo
with a tolerance that follows from its standard error.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _heat_ref import p_ref
from scipy import integrate, stats

from phasejax import heat


def t_density(t, d, l, eps):
    """Density of t = <x,e> under rho = 1 + eps P_l (normalised numerically)."""
    c = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d - 1) / 2))
    return c * (1 - t * t) ** ((d - 3) / 2) * (1 + eps * p_ref(t, d, l))


@pytest.mark.parametrize("d,l", [(2, 3), (3, 2), (4, 2), (5, 3)])
def test_gegenbauer_against_scipy(d, l):
    t = np.linspace(-1, 1, 41)
    p, dp = heat.gegenbauer(jnp.asarray(t, jnp.float32), d, l, derivative=True)
    np.testing.assert_allclose(np.asarray(p), p_ref(t, d, l), atol=2e-6)
    h = 1e-6
    dref = (p_ref(t[1:-1] + h, d, l) - p_ref(t[1:-1] - h, d, l)) / (2 * h)
    np.testing.assert_allclose(np.asarray(dp)[1:-1], dref, atol=5e-5 * max(1, np.abs(dref).max()))


@pytest.mark.parametrize("d,l", [(2, 1), (2, 4), (3, 2), (4, 3), (6, 2)])
def test_harmonic_dimension_is_inverse_mean_square(d, l):
    c = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d - 1) / 2))
    msq = integrate.quad(lambda t: c * (1 - t * t) ** ((d - 3) / 2) * p_ref(t, d, l) ** 2, -1, 1)[0]
    assert heat.harmonic_dimension(d, l) == round(1 / msq)
    assert abs(heat.harmonic_dimension(d, l) * msq - 1) < 1e-8


@pytest.mark.parametrize("d,l,eps", [(3, 2, 0.5), (3, 1, -0.9), (4, 3, 0.7), (2, 2, 0.4)])
def test_sampler_ks_against_cdf(d, l, eps):
    e = np.array([0.6, 0.8] + [0.0] * (d - 2))
    x = np.asarray(heat.sample_zonal(jax.random.key(7), 20000, d, l, eps, e=e), np.float64)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    t = np.clip(x @ e, -1, 1)
    grid = np.linspace(-1, 1, 4001)
    pdf = np.array([t_density(s, d, l, eps) for s in grid]) if d != 2 else None
    if d == 2:  # t = cos(theta), theta uniform: density (1/pi)(1-t^2)^{-1/2}(1 + eps T_l(t)); CDF in theta
        theta = np.arccos(t)
        cdf = lambda th: 1 - (th + eps * np.sin(l * th) / l) / np.pi  # noqa: E731  P(t <= cos th)
        u = cdf(theta)
    else:
        cdf_grid = np.concatenate([[0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(grid))])
        cdf_grid /= cdf_grid[-1]
        u = np.interp(t, grid, cdf_grid)
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # the part orthogonal to e is uniform: for d = 3 the azimuth around e
    if d == 3:
        f1 = np.array([-0.8, 0.6, 0.0])
        f2 = np.cross(e, f1)
        phi = np.arctan2(x @ f2, x @ f1)
        assert stats.kstest((phi + np.pi) / (2 * np.pi), "uniform").pvalue > 1e-3


def test_mode_amplitude_is_unbiased():
    n, d, l, eps = 40000, 3, 2, 0.5
    x = heat.sample_zonal(jax.random.key(3), n, d, l, eps)
    est = float(heat.mode_amplitude(x, l))
    # Var of N_l P_l(t) under rho, by quadrature
    m2 = integrate.quad(lambda t: t_density(t, d, l, eps) * (5 * p_ref(t, d, l)) ** 2, -1, 1)[0]
    sd = math.sqrt((m2 - eps**2) / n)
    assert abs(est - eps) < 4 * sd
    assert abs(float(heat.mode_amplitude(x, 4))) < 4 * math.sqrt(9 * 1.2 / n)  # other modes ~ 0
    np.testing.assert_allclose(np.asarray(heat.zonal_spectrum(x, 4)),
                               [float(heat.mode_amplitude(x, m)) for m in (1, 2, 3, 4)], rtol=1e-4, atol=1e-6)
