"""Tests of phasejax.theory and the ``phasejax theory`` command.

References are independent: mpmath/scipy code written here, closed forms, identities of
docs/theory.md, Monte Carlo with fixed keys at a stated sigma, and ../shared/reference/public.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.test_util
import mpmath as mp
import numpy as np
import pytest
from scipy import integrate, special

from phasejax import theory as T
from phasejax._checks import InputError
from phasejax.cli import main

@pytest.fixture(scope="module")
def ref(reference):
    return reference


@pytest.fixture
def f64():
    with jax.enable_x64(True):
        yield


def _A_mp(beta, d):
    nu = mp.mpf(d) / 2 - 1
    return mp.besseli(nu + 1, beta) / mp.besseli(nu, beta)


def _ein_np(s):
    s = np.asarray(s, dtype=float)
    return special.exp1(s) + np.log(s) + np.euler_gamma


# ----------------------------------------------------------------------------- public anchors


def test_reference_kappa_C(ref):
    for d, v in ref["kappa_d"].items():
        assert T.kappa(float(d)) == pytest.approx(v, rel=1e-13)
    for d, v in ref["C_d"].items():
        assert T.gap_constant(int(d)) == pytest.approx(v, rel=1e-13)


def test_reference_mean_resultant(ref, f64):
    for case in ref["mean_resultant_A_d"].values():
        got = float(T.mean_resultant(jnp.float64(case["beta"]), case["d"]))
        assert abs(got - case["value"]) <= case["tol"], case


def test_reference_subcritical_covariance(ref, f64):
    c = ref["subcritical_covariance"]["d3_beta5"]
    s_par, s_perp = T.subcritical_covariance(jnp.float64(c["beta"]), c["d"])
    assert abs(float(s_par) - c["n_var_parallel"]) <= c["tol"]
    assert abs(float(s_perp) - c["n_var_perpendicular_each"]) <= c["tol"]
    assert abs(float(T.mean_resultant(jnp.float64(c["beta"]), c["d"])) - c["A"]) <= c["tol"]


def test_reference_lambda_star(ref):
    r = ref["lambda_star"]["3"]
    ls = T.lambda_star(3)
    assert abs(ls.lambda_star - r["value"]) <= r["tol"]
    assert ls.rho_star == pytest.approx(r["rho_star"], rel=1e-7)
    assert ls.chi_max == pytest.approx(r["chi_max"], abs=1e-8)
    assert ls.E_max_weight == pytest.approx(r["E_max_weight_at_peak"], abs=1e-8)
    # alpha form, with C given, is the same universal curve
    assert T.lambda_star(alpha=2.0, C=0.5).lambda_star == pytest.approx(ls.lambda_star, rel=1e-12)


def test_reference_ppp_limit(ref, f64):
    c = ref["ppp_limit"]["d3_lambda1"]
    h = (c["d"] - 1) / 2
    rho = T.gap_constant(c["d"]) * c["lambda"] ** (-h)
    assert rho == pytest.approx(c["rho"], rel=1e-13)
    rho = jnp.float64(rho)
    assert abs(float(T.poisson_expected_max_weight(h, rho)) - c["E_max_weight"]) <= c["tol"]
    assert abs(float(T.poisson_expected_entropy(h, rho)) - c["E_entropy"]) <= c["tol"]
    assert abs(float(T.poisson_expected_sum_w2(h, rho)) - c["E_sum_w2"]) <= c["tol"]


# ----------------------------------------------------------------------------- Bessel quantities


BETAS = [1e-3, 0.7, 3.9, 4.1, 11.0, 13.0, 39.0, 41.0, 150.0, 1e4, 1e8]


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


def test_grad_identity_and_vmap(f64):
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
def test_check_grads_order2(f64):
    for b in (7.0, 70.0):  # series and Debye branches
        jax.test_util.check_grads(lambda x: T.mean_resultant(x, 4), (jnp.float64(b),), order=2, modes=["rev"])


def test_large_beta_expansion_is_order_beta4(f64):
    mp.mp.dps = 40
    for d in (4, 5, 10):
        errs = []
        for b in (50.0, 100.0, 200.0):
            exact = _A_mp(b, d)
            errs.append(abs(float(exact) - float(T.mean_resultant_large_beta(jnp.float64(b), d))) * b**4)
        # error * beta^4 tends to a constant (the next coefficient)
        assert errs[2] == pytest.approx(errs[1], rel=0.05)


def test_subcritical_formulas(f64):
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


def test_entropy_limit(f64):
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


# ----------------------------------------------------------------------------- Poisson limit


def test_d3_closed_form_vs_mpmath_and_general_quadrature(f64):
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


@pytest.mark.parametrize("rho", [0.25, 3.0])
def test_sum_w2_and_entropy_vs_theory_phi_formulas(rho, f64):
    w2, ent = _theory_phi_formulas_h1(rho)
    assert float(T.poisson_expected_sum_w2(1.0, jnp.float64(rho))) == pytest.approx(w2, abs=1e-7)
    assert float(T.poisson_expected_entropy(1.0, jnp.float64(rho))) == pytest.approx(ent, abs=1e-7)


def test_h2_max_weight_vs_scipy(f64):
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


def _ppp_mc(key, h, rho, m, reps):
    keys = jax.random.split(key, reps)
    W = jax.vmap(lambda k: T.poisson_limit_weights(k, h, rho, m))(keys)
    w1 = W[:, 0]
    w2 = jnp.sum(W * W, axis=1)
    ent = -jnp.sum(jnp.where(W > 0, W * jnp.log(jnp.where(W > 0, W, 1.0)), 0.0), axis=1)
    return w1, w2, ent


@pytest.mark.parametrize("h,rho", [(1.5, 0.7), (0.5, 2.0)])
def test_monte_carlo_vs_quadrature(h, rho, f64):
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


def test_supercritical_tail(f64):
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


# ----------------------------------------------------------------------------- exact finite n


def test_exact_finite_n_vs_monte_carlo(f64):
    """n = 100 keys on S^2 (gaps u = 2U), 20000 contexts: E W_(1) within 4 sigma (sigma ~ 2e-3)."""
    n, reps = 100, 20000
    u = 2.0 * jax.random.uniform(jax.random.key(5), (reps, n), dtype=jnp.float64)
    for beta in (8.0, 38.0, 150.0):
        w1 = jnp.max(jax.nn.softmax(-beta * u, axis=-1), axis=-1)
        mean, se = float(jnp.mean(w1)), float(jnp.std(w1)) / math.sqrt(reps)
        assert abs(float(T.exact_expected_max_weight(n, jnp.float64(beta), 3)) - mean) < 4 * se
    # beta -> 0+: uniform weights; the 34 x 34 x 49 rule is accurate to ~1e-8 absolute (theory.finite_n docstring)
    assert float(T.exact_expected_max_weight(n, jnp.float64(0.0), 3)) == pytest.approx(1 / n, abs=1e-8)


def test_exact_finite_n_tends_to_poisson_limit(f64):
    """n = 1e12 at beta = lambda n^{2/(d-1)}: the exact integral equals the PPP value (d = 3, 5)."""
    for d in (3, 5):
        h = (d - 1) / 2
        lam = 0.7
        n = 1e12
        got = float(T.exact_expected_max_weight(n, jnp.float64(lam * n ** (1 / h)), d))
        want = float(T.poisson_expected_max_weight(h, jnp.float64(T.gap_constant(d) * lam ** (-h))))
        assert got == pytest.approx(want, abs=1e-6)


def test_exact_beta_peak_converges_to_lambda_star():
    """d = 3: beta_peak(n)/n -> lambda* with an O(1/n) relative correction."""
    lam = T.lambda_star(3).lambda_star
    rel = []
    for n in (1e3, 1e6):
        pk = T.exact_beta_peak(n, 3)
        assert pk.beta_peak == pytest.approx(pk.lambda_peak * n, rel=1e-12)
        rel.append(abs(pk.lambda_peak / lam - 1))
    assert rel[1] < rel[0] / 100  # O(1/n): 1000x smaller
    assert rel[1] < 1e-5


# ----------------------------------------------------------------------------- inputs and CLI


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


def test_cli_json(capsys, tmp_path):
    rc = main(["theory", "--d", "3", "--lambda", "1", "--n", "1e6", "--json", "--out", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for k in ("lambda_star", "kappa", "C", "h", "rho", "E_max_weight", "E_sum_w2", "E_entropy", "A_d",
              "beta_peak_exact", "n"):
        assert k in out
    assert out["lambda_star"] == pytest.approx(0.3814471556960417, rel=1e-7)
    assert out["E_max_weight"] == pytest.approx(0.7294882146546666, abs=1e-5)  # float32 run
    assert out["A_d"] == pytest.approx(1 / math.tanh(10) - 0.1, rel=1e-6)
    assert out["n"] == 1_000_000
    assert out["beta_peak_exact"] / 1e6 == pytest.approx(out["lambda_star"], rel=1e-5)
    assert (tmp_path / "theory.json").exists()


@pytest.mark.parametrize("argv", [["--d", "1"], ["--alpha", "-2"], ["--C", "0.3"], ["--lambda", "0"],
                                  ["--beta", "-1"], ["--n", "1"]])
def test_cli_bad_input_exit_2(argv, capsys, tmp_path):
    rc = main(["theory", *argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "error" in err


def test_beta_gap_log_cdf_derivatives_finite_at_the_clipped_endpoints(x64):
    """Regression: betainc's x-derivatives are NaN at x = 0 and 1, which stalled the exact beta_peak's
    Newton steps for d >= 4 (d = 16, n = 1e4 returned 21.9 instead of 30.3)."""
    law = T.beta_gap_score_law(7.5, 7.5)
    for u in (0.0, 2.0, 0.6):
        for k in range(1, 4):
            f = lambda v: jnp.exp(law.log_cdf(jnp.clip(v, 0.0, 2.0), *law.params))  # noqa: E731
            for _ in range(k):
                f = jax.grad(f)
            assert np.isfinite(float(f(jnp.asarray(u))))
    assert float(jnp.exp(law.log_cdf(jnp.asarray(2.0), *law.params))) == 1.0
    assert float(jnp.exp(law.log_cdf(jnp.asarray(0.0), *law.params))) == 0.0


@pytest.mark.slow
def test_exact_beta_peak_high_d_matches_independent_implementation(x64):
    """theory.exact_beta_peak (sphere, 2-D integral) against scores.finite_n_beta_peak (any score law)."""
    from phasejax.laws import UniformSphere
    from phasejax.theory import finite_n_beta_peak

    ours = T.exact_beta_peak(1e4, 16)
    other = finite_n_beta_peak(1e4, UniformSphere(16))
    assert ours.beta_peak == pytest.approx(float(other.beta_peak), rel=1e-4)
