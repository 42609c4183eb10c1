"""Tests of phasejax.theory and the ``phasejax theory`` command.

References are independent: mpmath/scipy code written here, closed forms, identities of
docs/theory.md, Monte Carlo with fixed keys at a stated sigma, and ../shared/reference/public.json.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.test_util
import mpmath as mp
import numpy as np
import pytest
from scipy import integrate, special

from phasejax import theory as T


def _ein_np(s):
    s = np.asarray(s, dtype=float)
    return special.exp1(s) + np.log(s) + np.euler_gamma


def _theory_phi_formulas_h1(rho):
    """docs/theory.md §c's phi-based E sum w^2 and E H at h = 1 (phi(s) = exp(-rho Ein(s))), with scipy."""

    def phi_log(x):  # phi(e^x)
        return np.exp(-rho * _ein_np(np.exp(x)))

    # E sum w^2 = int dr int ds s e^{-s} phi(s e^{r/rho}); x = log s
    def inner_w2(r):
        z = r / rho
        f = lambda x: np.exp(2 * x - np.exp(x)) * phi_log(x + z)  # noqa: E731
        return integrate.quad(f, -40, 5, limit=200, epsabs=1e-13, epsrel=1e-12)[0]

    w2 = integrate.quad(inner_w2, 0, np.inf, limit=200, epsabs=1e-12)[0]

    # E H = int (e^{-s} - phi(s)) ds / s + int dr z(r) int ds e^{-s} phi(s e^{z(r)})
    first = integrate.quad(lambda x: np.exp(-np.exp(x)) - phi_log(x), -40, 40 / rho + 60, limit=400,
                           epsabs=1e-12)[0]

    def inner_h(r):
        z = r / rho
        f = lambda x: np.exp(x - np.exp(x)) * phi_log(x + z)  # noqa: E731
        return z * integrate.quad(f, -40, 5, limit=200, epsabs=1e-13, epsrel=1e-12)[0]

    second = integrate.quad(inner_h, 0, np.inf, limit=200, epsabs=1e-12)[0]
    return w2, first + second


def _ppp_mc(key, h, rho, m, reps):
    keys = jax.random.split(key, reps)
    W = jax.vmap(lambda k: T.poisson_limit_weights(k, h, rho, m))(keys)
    w1 = W[:, 0]
    w2 = jnp.sum(W * W, axis=1)
    ent = -jnp.sum(jnp.where(W > 0, W * jnp.log(jnp.where(W > 0, W, 1.0)), 0.0), axis=1)
    return w1, w2, ent


def test_reference_lambda_star(reference):
    r = reference["lambda_star"]["3"]
    ls = T.lambda_star(3)
    assert abs(ls.lambda_star - r["value"]) <= r["tol"]
    assert ls.rho_star == pytest.approx(r["rho_star"], rel=1e-7)
    assert ls.chi_max == pytest.approx(r["chi_max"], abs=1e-8)
    assert ls.E_max_weight == pytest.approx(r["E_max_weight_at_peak"], abs=1e-8)
    # alpha form, with C given, is the same universal curve
    assert T.lambda_star(alpha=2.0, C=0.5).lambda_star == pytest.approx(ls.lambda_star, rel=1e-12)


def test_reference_ppp_limit(reference, x64):
    c = reference["ppp_limit"]["d3_lambda1"]
    h = (c["d"] - 1) / 2
    rho = T.gap_constant(c["d"]) * c["lambda"] ** (-h)
    assert rho == pytest.approx(c["rho"], rel=1e-13)
    rho = jnp.float64(rho)
    assert abs(float(T.poisson_expected_max_weight(h, rho)) - c["E_max_weight"]) <= c["tol"]
    assert abs(float(T.poisson_expected_entropy(h, rho)) - c["E_entropy"]) <= c["tol"]
    assert abs(float(T.poisson_expected_sum_w2(h, rho)) - c["E_sum_w2"]) <= c["tol"]


def test_d3_closed_form_vs_mpmath_and_general_quadrature(x64):
    mp.mp.dps = 20
    def ein(s):
        return mp.e1(s) + mp.log(s) + mp.euler

    for rho in (0.05, 1.31):
        want = mp.quad(lambda s, rho=rho: mp.exp(-s - rho * ein(s)), [0, 1, 10, 60])
        assert float(T.poisson_expected_max_weight_d3(jnp.float64(rho))) == pytest.approx(float(want), abs=1e-11)
    rhos = jnp.asarray([0.05, 0.5, 1.31, 6.0, 40.0])
    closed = jax.vmap(T.poisson_expected_max_weight_d3)(rhos)
    general = jax.vmap(lambda r: T.poisson_expected_max_weight(1.0, r))(rhos)
    np.testing.assert_allclose(general, closed, atol=1e-8)
    # derivatives in rho agree too (both differentiable)
    rho = jnp.float64(1.31)
    g1 = jax.grad(T.poisson_expected_max_weight_d3)(rho)
    g2 = jax.grad(lambda r: T.poisson_expected_max_weight(1.0, r))(rho)
    assert float(g2) == pytest.approx(float(g1), abs=1e-8)


@pytest.mark.parametrize("rho", [0.25, 3.0])
def test_sum_w2_and_entropy_vs_theory_phi_formulas(rho, x64):
    w2, ent = _theory_phi_formulas_h1(rho)
    assert float(T.poisson_expected_sum_w2(1.0, jnp.float64(rho))) == pytest.approx(w2, abs=1e-7)
    assert float(T.poisson_expected_entropy(1.0, jnp.float64(rho))) == pytest.approx(ent, abs=1e-7)


def test_h2_max_weight_vs_scipy(x64):
    """h = 2 (d = 5): J(s, z) = 2 z Ein(s) + J2(s), J2(s) = int_0^s e^{-t} log^2(s/t) dt."""
    rho = 0.4

    def J2(s):
        return integrate.quad(lambda v: s * np.exp(-v - s * np.exp(-v)) * v * v, 0, np.inf, epsabs=1e-14)[0]

    # E W1 = E_r E_s exp(-rho J); r ~ Exp(1) by Gauss-Laguerre is not smooth (z ~ sqrt r): use z directly,
    # dr = 2 rho z dz, e^{-r} = e^{-rho z^2}
    xs, ws = np.polynomial.legendre.leggauss(80)
    svals = np.exp(-40 + (xs + 1) / 2 * (math.log(60) + 40))  # s = e^x, x in [-40, log 60]
    sw = ws * (math.log(60) + 40) / 2 * svals * np.exp(-svals)
    j2 = np.array([J2(s) for s in svals])
    ein = _ein_np(svals)

    def outer(z):
        return 2 * rho * z * np.exp(-rho * z * z) * np.sum(sw * np.exp(-rho * (2 * z * ein + j2)))

    want = integrate.quad(outer, 0, np.inf, epsabs=1e-12, limit=200)[0]
    got = float(T.poisson_expected_max_weight(2.0, jnp.float64(rho)))
    assert got == pytest.approx(want, abs=2e-7)


@pytest.mark.parametrize("h,rho", [(1.5, 0.7), (0.5, 2.0)])
def test_monte_carlo_vs_quadrature(h, rho, x64):
    """10000 samples of the PPP (m = 300 points, tail share < e^-50): each mean within 4 sigma."""
    w1, w2, ent = _ppp_mc(jax.random.key(11), h, rho, 300, 10000)
    for sample, fn in ((w1, T.poisson_expected_max_weight), (w2, T.poisson_expected_sum_w2),
                       (ent, T.poisson_expected_entropy)):
        mean, se = float(jnp.mean(sample)), float(jnp.std(sample)) / math.sqrt(sample.size)
        assert abs(mean - float(fn(h, jnp.float64(rho)))) < 4 * se, fn.__name__


@pytest.mark.slow
def test_sampler_tail_correction():
    """With few points the tail's conditional mean keeps E W_(1) unbiased to O(1e-3)."""
    w1, _, _ = _ppp_mc(jax.random.key(3), 1.0, 0.5, 8, 5000)
    se = float(jnp.std(w1)) / math.sqrt(w1.size)
    assert abs(float(jnp.mean(w1)) - 0.7294882146546666) < 4 * se + 2e-3


def test_float32_quadrature():
    """The device path in float32 (a float32 rho) against the host path (a Python rho: NumPy float64)."""
    fs = (T.poisson_expected_max_weight, T.poisson_expected_entropy, T.poisson_expected_sum_w2)
    for h, rho in ((1.0, 0.5), (2.5, 0.3)):
        want = [f(h, rho) for f in fs]
        assert all(isinstance(w, np.floating) and w.dtype == np.float64 for w in want)
        got = [f(h, jnp.float32(rho)) for f in fs]
        assert all(g.dtype == jnp.float32 for g in got)
        np.testing.assert_allclose([float(g) for g in got], want, rtol=2e-5)


def test_supercritical_tail(x64):
    for h in (1.0, 2.0):
        ratios = []
        for lam in (1e2, 1e4, 1e6):
            rho = jnp.float64(0.5 * lam ** (-h))
            ratios.append(float(T.poisson_one_minus_max_weight(h, rho) / T.supercritical_tail(h, rho)))
        assert abs(ratios[-1] - 1) < abs(ratios[0] - 1) or abs(ratios[0] - 1) < 1e-6
        assert abs(ratios[-1] - 1) < 0.02
    # 1 - E W_(1) from the complement integral agrees with 1 - E W_(1)
    rho = jnp.float64(0.8)
    assert float(T.poisson_one_minus_max_weight(1.5, rho)) == pytest.approx(
        1 - float(T.poisson_expected_max_weight(1.5, rho)), abs=1e-8)


def test_lambda_star_alpha_consistency():
    """lambda*(alpha) = (C/rho*(h))^{1/h}: d = 5 uniform and alpha = 4 with C_5 share rho*(2)."""
    a = T.lambda_star(5)
    b = T.lambda_star(alpha=4.0, C=T.gap_constant(5))
    assert b.lambda_star == pytest.approx(a.lambda_star, rel=1e-12)
    c = T.lambda_star(alpha=4.0)  # PowerLawCap on S^2: C = 2^-2
    assert c.C == pytest.approx(0.25, rel=1e-14)
    assert c.lambda_star == pytest.approx((0.25 / a.rho_star) ** 0.5, rel=1e-12)


def test_lambda_star_is_smooth_in_h_up_to_its_bound_and_refused_beyond():
    """lambda*(h) for alpha = 2h and C = 1 is h (1 + O(1/h)): over a grid of h up to H_MAX it stays within 1% of h
    and its second differences within 0.1 (4e-4 relative: the peak search's resolution), where the erratic values
    beyond H_MAX jumped by a factor 4; past H_MAX an InputError, not a number."""
    import numpy as np

    from phasejax._checks import InputError
    from phasejax.theory import lambda_star
    from phasejax.theory.poisson import H_MAX

    hs = np.arange(92.0, H_MAX + 1e-9, 4.0)
    lam = np.array([lambda_star(alpha=2 * h, C=1.0).lambda_star for h in hs])
    assert np.all(np.abs(lam / hs - 1) < 0.01)
    assert np.max(np.abs(np.diff(lam, 2))) < 0.1
    with pytest.raises(InputError, match="verified for h = alpha/2 <= 108"):
        lambda_star(alpha=2 * H_MAX + 2, C=1.0)
