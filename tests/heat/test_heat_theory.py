"""phasejax.heat: the exact Funk-Hecke map of one attention step on a zonal density and its gain (docs/theory.md §g).

exact_gain against the public anchor and an independent SciPy quadrature, its linear, eps -> 0 and
first-order (1 + lambda/beta) limits, exact_map against 2-D quadrature on S^2, the O(beta^-2) heat
displacement limit, the measured displacement of a sampled cloud against the exact map, zonal_map, and
the heat module's input errors. References are independent of the library: SciPy's Gegenbauer
polynomials, Bessel functions (ive) and adaptive quadrature, Gauss-Legendre quadrature, and the public
anchor file.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _heat_ref import p_ref
from scipy import integrate, special

from phasejax import heat
from phasejax._checks import InputError


def exact_gain_ref(d, l, eps, beta):
    """Finite-eps pushforward gain with the map written from Bessel functions (scipy) and adaptive quad."""
    nu = d / 2 - 1
    # g_k(r) proportional to r^{-nu} I_{k+nu}(r); the common factor cancels in T's direction
    def g(k, r):
        return r ** (-nu) * special.ive(k + nu, r) * math.exp(r - beta)

    def gp(k, r, h=1e-5):
        return (g(k, r + h) - g(k, r - h)) / (2 * h)

    g0p, gl, glp = gp(0, beta), g(l, beta), gp(l, beta)

    def dp(t, h=1e-6):
        return (p_ref(t + h, d, l) - p_ref(t - h, d, l)) / (2 * h)

    def tprime(t):
        delta = eps * (gl / beta) * dp(t) / (g0p + eps * glp * p_ref(t, d, l))
        return (t + delta * (1 - t * t)) / math.sqrt(1 + delta**2 * (1 - t * t))

    w = lambda t: (1 - t * t) ** ((d - 3) / 2) * (1 + eps * p_ref(t, d, l))  # noqa: E731
    num = integrate.quad(lambda t: w(t) * p_ref(tprime(t), d, l), -1, 1, limit=200, epsabs=1e-13)[0]
    den = integrate.quad(lambda t: w(t) * p_ref(t, d, l), -1, 1, limit=200, epsabs=1e-13)[0]
    return num / den


def a_ref(d, k, beta):
    nu = d / 2 - 1
    return special.ive(nu + k, beta) / special.ive(nu, beta)


def test_public_heat_anchor(x64, reference):
    anchor = reference["heat_first_order"]
    g = float(heat.exact_gain(3, 1, 0.5, 1000.0))
    assert abs(g - anchor["d3_l1_eps0.5_beta1000_exact_G"]) < anchor["tol"]


@pytest.mark.parametrize("d,l,beta", [(3, 2, 20.0), (4, 2, 20.0), (3, 3, 7.0), (5, 1, 50.0)])
def test_exact_gain_against_scipy_quadrature(x64, d, l, beta):
    assert abs(float(heat.exact_gain(d, l, 0.5, beta)) - exact_gain_ref(d, l, 0.5, beta)) < 1e-8


def test_exact_gain_linear_and_first_order_limit(x64):
    for d, l in [(3, 2), (4, 2), (3, 5), (7, 3)]:
        lam = l * (l + d - 2)
        b = np.array([10.0, 100.0, 1e3, 1e4])
        lin = np.asarray(heat.exact_gain(d, l, 0.5, b, linear=True))
        np.testing.assert_allclose(lin, 1 + lam * a_ref(d, l, b) / (b * a_ref(d, 1, b)), rtol=1e-12)
        fin = np.asarray(heat.exact_gain(d, l, 0.01, b))
        np.testing.assert_allclose(fin - 1, lin - 1, rtol=0.02)  # eps -> 0 limit
        scaled = (np.asarray(heat.exact_gain(d, l, 0.5, b)) - 1) * b
        err = np.abs(scaled - lam)
        assert err[-1] < 2 * lam * (lam + d) / b[-1]  # O(1/beta)
        assert np.all(np.diff(err) < 0)
        np.testing.assert_allclose(heat.first_order_gain(d, l, b), 1 + lam / b)
        spec = np.asarray(heat.linear_gain_spectrum(d, 300.0, l + 2))
        np.testing.assert_allclose(spec[l - 1], float(heat.exact_gain(d, l, 0.0, 300.0, linear=True)), rtol=1e-12)
    # docs/theory.md §g: at beta = 20 the exact G_2 - 1 on S^2 is about 9% below 6/beta
    assert 0.07 < 1 - (float(heat.exact_gain(3, 2, 0.5, 20.0)) - 1) / 0.3 < 0.11


def test_exact_map_against_sphere_quadrature(x64):
    """T(x) = E[y e^{beta<x,y>} rho(y)] / E[e^{beta<x,y>} rho(y)] on S^2 by 2-D quadrature (t, azimuth)."""
    beta, l, eps = 6.0, 2, 0.6
    e = np.array([0.0, 0.0, 1.0])
    th, phi = np.polynomial.legendre.leggauss(120), np.linspace(0, 2 * np.pi, 241)[:-1]
    tq, wq = th
    T, P = np.meshgrid(tq, phi, indexing="ij")
    s = np.sqrt(1 - T**2)
    Y = np.stack([s * np.cos(P), s * np.sin(P), T], axis=-1)
    W = wq[:, None] * np.ones_like(P)
    rho = 1 + eps * p_ref(T, 3, l)
    xs = np.array([[0.3, -0.2, 0.9327379], [1.0, 0.0, 0.0], [0.5, 0.5, -0.7071068]])
    xs /= np.linalg.norm(xs, axis=1, keepdims=True)
    got = np.asarray(heat.exact_map(jnp.asarray(xs), beta, l, eps, e=jnp.asarray(e)))
    for x, g in zip(xs, got, strict=True):
        k = np.exp(beta * (Y @ x - 1)) * rho * W
        np.testing.assert_allclose(g, (k[..., None] * Y).sum((0, 1)) / k.sum(), atol=1e-9)


def test_displacement_heat_limit(x64):
    """T(x) - x - heat_displacement = O(beta^-2)."""
    x = heat.sample_zonal(jax.random.key(0), 500, 3, 2, 0.5)
    errs = []
    for beta in (100.0, 200.0, 400.0):
        d = heat.exact_map(x, beta, 2, 0.5) - x - heat.heat_displacement(x, beta, 2, 0.5)
        errs.append(float(jnp.max(jnp.linalg.norm(d, axis=1))))
    assert 3.0 < errs[0] / errs[1] < 5.0 and 3.0 < errs[1] / errs[2] < 5.0


def test_measured_displacement_matches_exact_map():
    x = heat.sample_zonal(jax.random.key(5), 6000, 3, 2, 0.5)
    r = heat.compare_displacement(x, 20.0, 2, 0.5, bins=10, empirical_modes=8)
    # per token the finite-N noise is comparable to the drift; the meridian profile averages it out
    assert r["rms_exact_error"] < r["rms_heat_error"] < r["rms_measured"]
    assert r["profile_exact_error"] < 0.3 * r["profile_rms"]
    assert r["profile_exact_error"] < r["profile_heat_error"]
    # what is left is the response to the cloud's own zonal fluctuations: the map of the empirical density
    assert r["profile_empirical_error"] < 0.03 * r["profile_rms"]


def test_zonal_map_reduces_to_exact_map():
    x = heat.sample_zonal(jax.random.key(1), 50, 4, 3, 0.4)
    np.testing.assert_allclose(np.asarray(heat.zonal_map(x, 30.0, [0.0, 0.0, 0.4])),
                               np.asarray(heat.exact_map(x, 30.0, 3, 0.4)), atol=2e-6)


@pytest.mark.bad_input
def test_bad_input_errors():
    key = jax.random.key(0)
    with pytest.raises(InputError, match="eps"):
        heat.sample_zonal(key, 10, 3, 2, 2.5)
    with pytest.raises(InputError, match="eps"):
        heat.exact_gain(3, 2, -1.5, 10.0)
    with pytest.raises(InputError, match="l must"):
        heat.sample_zonal(key, 10, 3, 0, 0.1)
    with pytest.raises(InputError, match="d must"):
        heat.sample_zonal(key, 10, 1, 1, 0.1)
    with pytest.raises(InputError, match="beta"):
        heat.attention_step(jnp.ones((4, 3)), -1.0)
    with pytest.raises(InputError, match="beta"):
        heat.exact_gain(3, 2, 0.5, [10.0, 0.0])
    with pytest.raises(InputError, match="zero row"):
        heat.attention_step(jnp.zeros((4, 3)), 1.0)
    with pytest.raises(InputError, match="x must"):
        heat.attention_step(jnp.ones((4,)), 1.0)
    with pytest.raises(InputError, match="n must"):
        heat.sample_zonal(key, 0, 3, 2, 0.5)
    with pytest.raises(InputError, match="e must"):
        heat.sample_zonal(key, 5, 3, 2, 0.5, e=jnp.zeros(3))
    with pytest.raises(InputError, match="chunk_q"):
        heat.attention_step(jnp.ones((4, 3)), 1.0, chunk_q=0)
