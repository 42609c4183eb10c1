"""Score laws beyond the sphere (docs/theory.md §h): Gaussian scores / REM, Poisson-Dirichlet, the exact finite-n
E[max weight] for any score law, almost-simplex tokens. References: closed forms, scipy quadrature
written here, Monte Carlo (agreement within 4 standard errors), theory.exact_expected_max_weight."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from phasejax import theory as S
from phasejax._checks import InputError
from phasejax.laws import AlmostSimplex, GaussianScores, PowerLawCap, UniformSphere
from phasejax.observables import gap_observables, sampled_observables

# --------------------------------------------------------------------------- REM and PD(m, 0)


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


# --------------------------------------------------------------------------- GaussianScores as a key law


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


# --------------------------------------------------------------------------- exact finite n


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


# --------------------------------------------------------------------------- almost-simplex tokens


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


# --------------------------------------------------------------------------- CLI


def _cli(capsys, *args):
    """Run ``phasejax <args>`` in-process: (exit code, stdout, stderr)."""
    from phasejax.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:  # argparse errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_theory_gaussian_and_simplex(tmp_path, capsys):
    code, out, err = _cli(capsys, "theory", "--law", "gaussian", "--sigma", "0.5", "--n", "1e4", "--json",
                          "--out", str(tmp_path / "g"))
    assert code == 0, err
    out = json.loads(out)
    assert out["law"] == "GaussianScores" and out["n"] == 10_000
    assert out["beta_c"] == pytest.approx(math.sqrt(2 * math.log(1e4)) / 0.5)
    assert 0.85 < out["beta_peak_exact"] / out["beta_c"] < 1.0
    code, out, err = _cli(capsys, "theory", "--law", "simplex", "--rho", "0.5", "--n", "1000", "--json",
                          "--out", str(tmp_path / "s"))
    assert code == 0, err
    out = json.loads(out)
    assert out["law"] == "AlmostSimplex" and out["gamma_c"] == pytest.approx(2.0)
    assert out["beta_peak_exact"] == pytest.approx(AlmostSimplex(0.5).beta_peak(1000))
    assert out["max_weight_at_gamma_c"] == pytest.approx(0.5 + 1 / 3998)


@pytest.mark.parametrize("args", [
    ("theory", "--law", "simplex", "--rho", "1.5"),
    ("theory", "--law", "simplex"),
    ("theory", "--law", "gaussian", "--sigma", "-1"),
    ("theory", "--law", "nope"),
    ("theory", "--law", "gaussian", "--rho", "0.5"),
    ("sweep", "--geometry", "uniform", "--sigma", "0.5", "--n", "10"),
])
def test_cli_errors_exit_2(tmp_path, capsys, args):
    code, _, err = _cli(capsys, *args, "--out", str(tmp_path))
    assert code == 2
    assert err.strip().count("\n") == 0 and "error" in err


@pytest.mark.slow
def test_crossover_experiment_quick(tmp_path):
    from phasejax.experiments import EXPERIMENTS
    from phasejax.experiments.crossover import main

    assert "crossover" in EXPERIMENTS
    res = main(["--quick", "--out", str(tmp_path)])
    assert len(res["figures"]) == 3 and all(Path(f).exists() for f in res["figures"])
    assert all(c["agrees"] is not False for c in res["claims"]), [c for c in res["claims"] if c["agrees"] is False]
    assert {r["closer"] for r in res["sphere"]} == {"fixed-d", "REM"}
