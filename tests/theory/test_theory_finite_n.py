"""Score laws beyond the sphere (docs/theory.md §h): Gaussian scores / REM, Poisson-Dirichlet, the exact finite-n
E[max weight] for any score law, almost-simplex tokens. References: closed forms, scipy quadrature
written here, Monte Carlo (agreement within 4 standard errors), theory.exact_expected_max_weight.

Tests of phasejax.theory and the ``phasejax theory`` command.

References are independent: mpmath/scipy code written here, closed forms, identities of
docs/theory.md, Monte Carlo with fixed keys at a stated sigma, and ../shared/reference/public.json.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import pytest

from phasejax import theory as S
from phasejax import theory as T
from phasejax._checks import InputError
from phasejax.laws import AlmostSimplex, GaussianScores, PowerLawCap, UniformSphere
from phasejax.observables import sampled_observables


def _mc(law, n, betas, seeds=6000, key=7):
    """Seed mean and se of W1 and of the identity beta W1 (<u>_w - u_(1)) (= dW1/dlog beta per sample)."""
    betas = jnp.asarray(betas)
    obs = jax.vmap(lambda k: sampled_observables(law, k, n, betas))(jax.random.split(jax.random.key(key), seeds))
    w1 = np.asarray(obs.max_weight)
    chi = np.asarray(betas)[None, :] * w1 * np.asarray(obs.mean_gap - obs.min_gap[:, None])
    se = lambda x: x.std(axis=0, ddof=1) / math.sqrt(seeds)  # noqa: E731
    return w1.mean(0), se(w1), chi.mean(0), se(chi)


@pytest.mark.parametrize(("law", "n", "betas"), [
    (GaussianScores(0.3), 1000, [3.0, 10.0, 17.0]),
    (UniformSphere(16), 200, [8.0, 25.0]),
    (PowerLawCap(3, 4.0), 100, [10.0, 60.0]),
])
def test_finite_n_vs_monte_carlo(x64, law, n, betas):
    w, w_se, c, c_se = _mc(law, n, betas)
    for i, b in enumerate(betas):
        ew = float(S.finite_n_expected_max_weight(n, b, law))
        chi = float(S.finite_n_chi(n, b, law))
        assert abs(ew - w[i]) < 4 * w_se[i], (b, ew, w[i], w_se[i])
        assert abs(chi - c[i]) < 4 * c_se[i], (b, chi, c[i], c_se[i])


def test_finite_n_sphere_vs_theory(x64):
    from phasejax.theory import exact_expected_max_weight

    for d, n, b in ((16, 10_000, 30.0),):
        ours = float(S.finite_n_expected_max_weight(n, b, UniformSphere(d)))
        assert ours == pytest.approx(float(exact_expected_max_weight(n, b, d)), abs=2e-7)


def test_finite_n_limits_and_chi_by_autodiff(x64):
    law = GaussianScores(2.0)
    assert float(S.finite_n_expected_max_weight(50, 0.0, law)) == pytest.approx(1 / 50, rel=1e-6)
    assert float(S.finite_n_expected_max_weight(50, 100.0, law)) > 0.98
    # chi by jax.jvp against a central difference (test reference only)
    b, h = 2.0, 1e-4
    f = lambda x: float(S.finite_n_expected_max_weight(1e4, x, law))  # noqa: E731
    fd = (f(b * math.exp(h)) - f(b * math.exp(-h))) / (2 * h)
    assert float(S.finite_n_chi(1e4, b, law)) == pytest.approx(fd, rel=1e-5)
    # jittable and differentiable in beta
    g = jax.grad(lambda x: S.finite_n_expected_max_weight(1e4, x, law))(jnp.float64(b))
    assert float(g) * b == pytest.approx(fd, rel=1e-5)


def test_finite_n_custom_score_law(x64):
    # a ScoreLaw from callables (uniform energies on (0, 1), inverted by Brent) = PowerLawCap(3, 2) gaps / 2
    law = S.ScoreLaw.from_callables(lambda e: jnp.log(jnp.clip(e, 1e-300, 1.0)), e_min=0.0, e_max=1.0)
    ours = float(S.finite_n_expected_max_weight(100, 20.0, law))
    ref = float(S.finite_n_expected_max_weight(100, 10.0, UniformSphere(3)))  # u = 2U: beta u = (2 beta) U
    assert ours == pytest.approx(ref, abs=1e-7)


def test_finite_n_beta_peak_gaussian(x64):
    law = GaussianScores(0.5)
    pk = S.finite_n_beta_peak(1e4, law)
    assert pk.scale == pytest.approx(law.critical_scale(1e4))
    assert 0.85 < pk.ratio < 1.0
    # it is the maximum of chi (beta in the law's own units)
    chi = [float(S.finite_n_chi(1e4, pk.beta_peak * math.exp(e), law)) for e in (-0.02, 0.0, 0.02)]
    assert chi[1] > chi[0] and chi[1] > chi[2]
    assert chi[1] == pytest.approx(pk.chi_max, rel=1e-8)
    # sigma only rescales beta
    assert S.finite_n_beta_peak(1e4, GaussianScores(1.0)).beta_peak == pytest.approx(pk.beta_peak / 2, rel=1e-8)


@pytest.mark.slow
def test_finite_n_beta_peak_sphere_vs_theory(x64):
    from phasejax.theory import exact_beta_peak

    ours = S.finite_n_beta_peak(1e4, UniformSphere(3))
    assert ours.beta_peak == pytest.approx(exact_beta_peak(1e4, 3).beta_peak, rel=1e-6)
    assert ours.ratio == pytest.approx(ours.beta_peak / 1e4)


@pytest.mark.bad_input
def test_bad_inputs():
    with pytest.raises(InputError, match="law must be"):
        S.finite_n_expected_max_weight(100, 1.0, object())
    with pytest.raises(InputError, match="beta"):
        S.finite_n_expected_max_weight(100, -1.0, GaussianScores())
    with pytest.raises(InputError, match="n must be >= 2"):
        S.finite_n_beta_peak(1, GaussianScores())
    with pytest.raises(InputError, match="rho"):
        AlmostSimplex(1.0)
    with pytest.raises(InputError, match="rho"):
        AlmostSimplex(-1.5)


def test_exact_finite_n_vs_monte_carlo(x64):
    """n = 100 keys on S^2 (gaps u = 2U), 20000 contexts: E W_(1) within 4 sigma (sigma ~ 2e-3)."""
    n, reps = 100, 20000
    u = 2.0 * jax.random.uniform(jax.random.key(5), (reps, n), dtype=jnp.float64)
    for beta in (8.0, 38.0, 150.0):
        w1 = jnp.max(jax.nn.softmax(-beta * u, axis=-1), axis=-1)
        mean, se = float(jnp.mean(w1)), float(jnp.std(w1)) / math.sqrt(reps)
        assert abs(float(T.exact_expected_max_weight(n, jnp.float64(beta), 3)) - mean) < 4 * se
    # beta -> 0+: uniform weights; the 34 x 34 x 49 rule is accurate to ~1e-8 absolute (theory.finite_n docstring)
    assert float(T.exact_expected_max_weight(n, jnp.float64(0.0), 3)) == pytest.approx(1 / n, abs=1e-8)


def test_exact_finite_n_tends_to_poisson_limit(x64):
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


def _ew1_nested_quad(n, beta, d):
    """E max weight of n keys uniform on S^{d-1} by nested SciPy quadrature, written for the test:
    E W1 = n int dF(u1) int_0^inf e^{-s} [1 - D(s, u1)]^{n-1} ds (u1 the top gap, 1/(1+T) = int e^{-s(1+T)} ds),
    with 1 - D = int_{u1}^2 f(u) exp(-s e^{-beta (u - u1)}) du written through its complement (no cancellation)."""
    from scipy import integrate, special

    h = (d - 1) / 2

    def f(u):
        return math.exp((h - 1) * (math.log(u / 2) + math.log1p(-u / 2)) - special.betaln(h, h)) / 2

    def log_bracket(s, u1):  # (n - 1) log[(1 - F(u1)) - D], D = int_{u1}^2 f(u) (1 - exp(-s e^{-beta(u-u1)})) du
        tail = 1.0 - special.betainc(h, h, u1 / 2)
        top = min(2.0, u1 + (math.log(s) + 50.0) / beta)
        dd = integrate.quad(lambda u: f(u) * -math.expm1(-s * math.exp(-beta * (u - u1))), u1, top, epsabs=0,
                            epsrel=1e-12, limit=200)[0] if top > u1 else 0.0
        return (n - 1) * (math.log(tail) + math.log1p(-dd / tail))

    def over_s(u1):
        return integrate.quad(lambda x: math.exp(x - math.exp(x) + log_bracket(math.exp(x), u1)), -40.0,
                              math.log(60.0), epsabs=0, epsrel=1e-10, limit=200)[0]

    def over_p(lp):  # n dF(u1) = n p dlog p
        p = math.exp(lp)
        return n * p * over_s(2 * special.betaincinv(h, h, p))

    return integrate.quad(over_p, math.log(1e-12 / n), math.log(min(0.999, 60 / n)), epsabs=0, epsrel=1e-9,
                          limit=200)[0]


@pytest.mark.slow
def test_nested_quadrature_reference_small_case():
    """The reference itself, at a small case, against the engine (they share no code; ~30 s of SciPy)."""
    assert _ew1_nested_quad(100, 30.0, 3) == pytest.approx(float(T.exact_expected_max_weight(100, 30.0, 3)),
                                                            abs=1e-7)


@pytest.mark.slow
def test_exact_beta_peak_high_d_against_nested_quadrature():
    """d = 16, n = 1e4: E[max weight] and chi = dE/dlog beta of the engine against the nested-quadrature
    reference at the engine's beta_peak and 5% either side, and the reference chi is largest at the peak."""
    n, d = 1e4, 16
    pk = T.exact_beta_peak(n, d)
    h = 1e-3  # central difference in log beta: truncation ~h^2 E''' ~ 1e-7, rounding ~1e-9/h
    chi_ref = {}
    for k in (-0.05, 0.0, 0.05):
        beta = pk.beta_peak * math.exp(k)
        e_plus = _ew1_nested_quad(int(n), beta * math.exp(h), d)
        e_minus = _ew1_nested_quad(int(n), beta * math.exp(-h), d)
        chi_ref[k] = (e_plus - e_minus) / (2 * h)
        assert float(T.exact_expected_max_weight(n, beta, d)) == pytest.approx(0.5 * (e_plus + e_minus), abs=1e-6)
    assert chi_ref[0.0] == pytest.approx(pk.chi_max, abs=1e-5)
    assert chi_ref[0.0] > chi_ref[-0.05] and chi_ref[0.0] > chi_ref[0.05]
