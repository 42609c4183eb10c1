"""Tests of phasejax.theory and the ``phasejax theory`` command.

References are independent: mpmath/scipy code written here, closed forms, identities of
docs/theory.md, Monte Carlo with fixed keys at a stated sigma, and ../shared/reference/public.json.


phasejax.heat: the all-queries attention step, zonal modes and the exact Funk-Hecke map (docs/theory.md §g).

Every reference here is independent of the library: a dense NumPy softmax, SciPy's Gegenbauer
polynomials, Bessel functions (ive) and adaptive quadrature, the public anchor file, and Monte Carlo
with a tolerance that follows from its standard error.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.test_util
import mpmath as mp
import numpy as np
import pytest
from scipy import special

from phasejax import theory
from phasejax import theory as T
from phasejax._checks import InputError


def _A_mp(beta, d):
    nu = mp.mpf(d) / 2 - 1
    return mp.besseli(nu + 1, beta) / mp.besseli(nu, beta)


BETAS = [1e-3, 0.7, 3.9, 4.1, 11.0, 13.0, 39.0, 41.0, 150.0, 1e4, 1e8]


def test_reference_kappa_C(reference):
    for d, v in reference["kappa_d"].items():
        assert T.kappa(float(d)) == pytest.approx(v, rel=1e-13)
    for d, v in reference["C_d"].items():
        assert T.gap_constant(int(d)) == pytest.approx(v, rel=1e-13)


def test_reference_mean_resultant(reference, x64):
    for case in reference["mean_resultant_A_d"].values():
        got = float(T.mean_resultant(jnp.float64(case["beta"]), case["d"]))
        assert abs(got - case["value"]) <= case["tol"], case


def test_reference_subcritical_covariance(reference, x64):
    c = reference["subcritical_covariance"]["d3_beta5"]
    s_par, s_perp = T.subcritical_covariance(jnp.float64(c["beta"]), c["d"])
    assert abs(float(s_par) - c["n_var_parallel"]) <= c["tol"]
    assert abs(float(s_perp) - c["n_var_perpendicular_each"]) <= c["tol"]
    assert abs(float(T.mean_resultant(jnp.float64(c["beta"]), c["d"])) - c["A"]) <= c["tol"]


@pytest.mark.parametrize("d", [2, 3, 4.5, 16, 128])
def test_mean_resultant_vs_mpmath(d, dtype):
    """A, 1 - A, log M and A' against 40-digit mpmath, beta from 1e-3 to 1e8, both dtypes."""
    mp.mp.dps = 40
    rtol = 1e-12 if dtype == "float64" else 2e-5
    nu = mp.mpf(d) / 2 - 1
    A = [_A_mp(b, d) for b in BETAS]
    lm = [mp.log(mp.gamma(mp.mpf(d) / 2) * (2 / mp.mpf(b)) ** nu * mp.besseli(nu, b)) for b in BETAS]
    var = [1 - a * a - (d - 1) * a / b for a, b in zip(A, BETAS, strict=True)]  # no cancellation at 40 digits
    betas = jnp.asarray(BETAS)
    assert T.mean_resultant(betas, d).dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(T.mean_resultant(betas, d), np.array(A, float), rtol=rtol)
    np.testing.assert_allclose(T.one_minus_mean_resultant(betas, d), np.array([1 - a for a in A], float),
                               rtol=10 * rtol)
    np.testing.assert_allclose(T.log_moment(betas, d), np.array(lm, float), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(T.score_variance(betas, d), np.array(var, float), rtol=100 * rtol)


def test_grad_identity_and_vmap(x64):
    """jax.grad of A equals A' = 1 - A^2 - (d-1) A/beta (the 40-digit formula), in both branches."""
    mp.mp.dps = 40
    betas = jnp.asarray([0.3, 3.0, 20.0, 50.0, 300.0])
    for d in (3, 5, 16):
        gv = jax.vmap(jax.grad(lambda x, d=d: T.mean_resultant(x, d)))(betas)
        want = [float(1 - a * a - (d - 1) * a / b) for b in betas.tolist() for a in [_A_mp(b, d)]]
        np.testing.assert_allclose(gv, want, rtol=1e-11)
        vg = jax.grad(lambda x, d=d: jnp.sum(T.mean_resultant(x, d)))(betas)
        # the same computation up to float reassociation: A' is a difference of O(1) terms, so a few ulps of 1
        np.testing.assert_allclose(gv, vg, rtol=1e-14, atol=4 * np.finfo(np.float64).eps)


@pytest.mark.slow
def test_check_grads_order2(x64):
    for b in (7.0, 70.0):  # series and Debye branches
        jax.test_util.check_grads(lambda x: T.mean_resultant(x, 4), (jnp.float64(b),), order=2, modes=["rev"])


def test_large_beta_expansion_is_order_beta4(x64):
    mp.mp.dps = 40
    for d in (4, 5, 10):
        errs = []
        for b in (50.0, 100.0, 200.0):
            exact = _A_mp(b, d)
            errs.append(abs(float(exact) - float(T.mean_resultant_large_beta(jnp.float64(b), d))) * b**4)
        # error * beta^4 tends to a constant (the next coefficient)
        assert errs[2] == pytest.approx(errs[1], rel=0.05)


def test_subcritical_formulas(x64):
    d, b = 5, 7.0
    mp.mp.dps = 30
    nu = mp.mpf(d) / 2 - 1
    M = lambda x: mp.gamma(mp.mpf(d) / 2) * (2 / mp.mpf(x)) ** nu * mp.besseli(nu, x)  # noqa: E731
    R = M(2 * b) / M(b) ** 2
    A1, A2 = _A_mp(b, d), _A_mp(2 * b, d)
    var2 = 1 - A2 * A2 - (d - 1) * A2 / (2 * b)
    s_par, s_perp = T.subcritical_covariance(jnp.float64(b), d)
    assert float(s_par) == pytest.approx(float(R * (var2 + (A2 - A1) ** 2)), rel=1e-11)
    assert float(s_perp) == pytest.approx(float(R * A2 / (2 * b)), rel=1e-11)
    assert float(T.effective_keys_limit(1e6, jnp.float64(b), d)) == pytest.approx(float(1e6 / R), rel=1e-11)
    mean2 = float(T.second_order_mean(100, jnp.float64(b), d))
    assert mean2 == pytest.approx(float(A1 + R * (A1 - A2) / 100), rel=1e-12)
    # beta -> 0: uniform weights, S_perp -> 1/d, n_eff -> n
    s_par0, s_perp0 = T.subcritical_covariance(jnp.float64(0.0), d)
    assert float(s_perp0) == pytest.approx(1 / d, rel=1e-12)
    assert float(s_par0) == pytest.approx(1 / d, rel=1e-12)  # Var(t) = 1/d at beta = 0


@pytest.mark.slow
def test_subcritical_covariance_monte_carlo():
    """sqrt(n)(y - A q): covariance along q and across it (d = 3, beta = 5, n = 500, 2000 contexts)."""
    d, beta, n, reps = 3, 5.0, 500, 2000
    key = jax.random.key(7)
    g = jax.random.normal(key, (reps, n, d))
    k = g / jnp.linalg.norm(g, axis=-1, keepdims=True)
    w = jax.nn.softmax(beta * k[..., 0], axis=-1)
    y = jnp.einsum("rn,rnd->rd", w, k)
    s_par, s_perp = (float(v) for v in T.subcritical_covariance(beta, d))
    var_par = float(jnp.var(y[:, 0])) * n
    var_perp = float(jnp.mean(jnp.var(y[:, 1:], axis=0))) * n
    # sd of a variance estimate ~ var sqrt(2/reps) (x1/sqrt(2) for the two perp components)
    assert abs(var_par - s_par) < 4 * s_par * math.sqrt(2 / reps) + 0.02 * s_par
    assert abs(var_perp - s_perp) < 4 * s_perp * math.sqrt(1 / reps) + 0.02 * s_perp


def test_entropy_limit(x64):
    mp.mp.dps = 40
    for d in (3, 5):
        for b in (0.5, 30.0, 1e6):
            nu = mp.mpf(d) / 2 - 1
            lm = mp.log(mp.gamma(mp.mpf(d) / 2) * (2 / mp.mpf(b)) ** nu * mp.besseli(nu, b))
            want = mp.log(1e6) + lm - b * _A_mp(b, d)
            assert float(T.entropy_limit(1e6, jnp.float64(b), d)) == pytest.approx(float(want), rel=1e-10)
        # slope -> plateau -(d-1)/2 + (d-1)(d-3)/(4 beta) with an O(beta^-2) error
        for b in (1e2, 1e3):
            gap = float(T.entropy_slope_limit(jnp.float64(b), d) - T.entropy_plateau_slope(jnp.float64(b), d))
            assert abs(gap) < 5 * (d - 1) ** 3 / b**2
        # the slope is dH/dlog beta (autodiff of the n = inf law)
        b = jnp.float64(20.0)
        slope = jax.grad(lambda lb, d=d: T.entropy_limit(1e6, jnp.exp(lb), d))(jnp.log(b))
        assert float(slope) == pytest.approx(float(T.entropy_slope_limit(b, d)), rel=1e-10)


def test_entropy_float32_large_beta():
    """float32 keeps the O(log beta) entropy at beta = 1e8 (no cancellation of two 1e8 terms)."""
    mp.mp.dps = 40
    b, d = 1e8, 5
    nu = mp.mpf(d) / 2 - 1
    want = mp.log(1e12) + mp.log(mp.gamma(mp.mpf(d) / 2) * (2 / mp.mpf(b)) ** nu * mp.besseli(nu, b)) - b * _A_mp(b, d)
    assert float(T.entropy_limit(1e12, b, d)) == pytest.approx(float(want), rel=1e-5)


@pytest.mark.bad_input
def test_bad_inputs():
    with pytest.raises(InputError, match="d"):
        T.mean_resultant(1.0, 1)
    with pytest.raises(InputError, match="beta"):
        T.mean_resultant(-1.0, 3)
    with pytest.raises(InputError, match="rho"):
        T.poisson_expected_max_weight(1.0, -0.5)
    with pytest.raises(InputError, match="h"):
        T.poisson_expected_max_weight(0.0, 0.5)
    with pytest.raises(InputError, match="d .* or alpha"):
        T.lambda_star()
    with pytest.raises(InputError, match="alpha"):
        T.gap_constant(alpha=-1.0)
    with pytest.raises(InputError, match="m"):
        T.poisson_limit_weights(jax.random.key(0), 1.0, 0.5, 0)
    with pytest.raises(InputError, match="n"):
        T.exact_expected_max_weight(0.5, 1.0, 3)
    with pytest.raises(InputError, match="h"):
        T.supercritical_tail(0.5, 0.1)


@pytest.mark.parametrize("d", [2, 3, 4, 7])
def test_funk_hecke_multiplier_against_scipy(dtype, d):
    """a_l = I_{l+nu}/I_nu (nu = d/2 - 1) against SciPy's scaled Bessel functions, device (both dtypes) and host."""
    nu = d / 2 - 1
    xs = np.array([1e-3, 0.3, 2.0, 20.0, 150.0, 1e3, 1e5])
    for l in (1, 2, 4, 12):
        ref = special.ive(nu + l, xs) / special.ive(nu, xs)
        got = np.asarray(theory.funk_hecke_multiplier(d, l, jnp.asarray(xs, dtype)))
        # float32 underflows below its smallest normal number (1.2e-38), as it must
        np.testing.assert_allclose(got, ref, rtol=5e-6 if dtype == "float32" else 1e-12,
                                   atol=float(np.finfo(np.float32).tiny) if dtype == "float32" else 0.0)
        np.testing.assert_allclose(theory.funk_hecke_multiplier(d, l, xs), ref, rtol=1e-12)


def test_funk_hecke_multiplier_closed_forms(reference):
    for name, v in reference["mean_resultant_A_d"].items():
        del name
        got = float(theory.funk_hecke_multiplier(v["d"], 1, v["beta"]))  # host, float64
        assert abs(got - v["value"]) < max(v["tol"], 1e-12)
