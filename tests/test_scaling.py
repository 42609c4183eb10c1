"""Scaling fits and the beta_peak(n) ~ lambda* n^{2/alpha} law (small, fixed-key runs; the full runs are slow)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from phasejax._checks import InputError
from phasejax.laws import PowerLawCap, UniformSphere
from phasejax.observables import gap_observables
from phasejax.scaling import choose_m, fit_power_law, nearest_gap_samples, scaling_scan, truncation_bound


def test_fit_recovers_exact_power_law():
    n = np.geomspace(1e2, 1e6, 7)
    fit = fit_power_law(n, 0.38 * n**1.0, 0.05 * 0.38 * n)
    assert fit.b == pytest.approx(1.0, abs=1e-12) and fit.prefactor == pytest.approx(0.38, rel=1e-12)
    assert fit.chi2 == pytest.approx(0.0, abs=1e-18)
    # with a finite-size term: y = 2 n^0.5 (1 + 3/sqrt(n)) exactly in log space
    y = 2 * n**0.5 * np.exp(3 / np.sqrt(n))
    fs = fit_power_law(n, y, 0.01 * y, finite_size_omega=0.5)
    assert fs.b == pytest.approx(0.5, abs=1e-10) and fs.c == pytest.approx(3.0, rel=1e-8)


def test_fit_standard_errors_match_monte_carlo():
    # replicate noisy data sets; the spread of b over 2000 replications must match the reported b_se
    rng = np.random.default_rng(0)
    n = np.geomspace(1e2, 1e6, 9)
    rel = np.linspace(0.02, 0.1, 9)
    bs, ses = [], []
    for _ in range(2000):
        y = 0.4 * n * np.exp(rel * rng.standard_normal(9))
        f = fit_power_law(n, y, rel * y)
        bs.append(f.b)
        ses.append(f.b_se)
    # sd of a sample sd from 2000 draws is ~1.6%: allow 6%
    assert np.std(bs, ddof=1) == pytest.approx(np.mean(ses), rel=0.06)


def test_fit_rejects_bad_input():
    with pytest.raises(InputError, match="must be > 0"):
        fit_power_law([1, 2, 3], [1, -1, 2], [0.1, 0.1, 0.1])
    with pytest.raises(InputError, match="same shape"):
        fit_power_law([1, 2, 3], [1, 2], [0.1, 0.1])


def test_choose_m_tail_mass_below_tolerance():
    law = UniformSphere(3)
    m = choose_m(law, 10**9, 0.05, tail_tol=1e-7)
    h, rho = 1.0, 0.5 / 0.05
    z = (m / rho) ** (1 / h)
    assert rho * math.gamma(h + 1) * special.gammaincc(h, z) < 1e-7
    z_half = (m / 2 / rho) ** (1 / h)  # the next smaller power of two would not do
    assert rho * math.gamma(h + 1) * special.gammaincc(h, z_half) >= 1e-7
    assert choose_m(law, 50, 0.05) == 50


def test_truncation_bound_holds(x64):
    law = UniformSphere(3)
    n, m = 20000, 64
    key = jax.random.key(3)
    full = law.sample_gaps(jax.random.split(key, 1)[0], n)
    top = nearest_gap_samples(law, key, n, m, seeds=1, sampler="exact")
    np.testing.assert_allclose(np.asarray(top[0]), np.sort(np.asarray(full))[:m], rtol=1e-15)
    for beta in (2e3, 1e4, 5e4):
        w_full = float(gap_observables(full, jnp.asarray([beta])).max_weight[0])
        w_top = float(gap_observables(top[0], jnp.asarray([beta])).max_weight[0])
        bound = float(truncation_bound(top, n, beta)[0])
        assert w_top >= w_full and (w_top / w_full - 1) <= bound + 1e-15


def test_scaling_small_run_recovers_the_law(reference):
    """d = 3, n = 1e2..1e4, 128 seeds: exponent within 3 se of 1 and lambda* within 3 se of theory."""
    res = scaling_scan(UniformSphere(3), [100, 1000, 10000], key=jax.random.key(42), seeds=128, sampler="exact")
    assert abs(res.fit.b - 1.0) < 3 * res.fit.b_se
    lam = reference["lambda_star"]["3"]["value"]
    assert abs(res.fit.prefactor - lam) < 3 * res.fit.prefactor_se
    assert res.fit.b_se < 0.05 and np.all(res.truncation_bound < 1e-3)


def test_scaling_powerlaw_cap_exponent():
    """PowerLawCap on S^2 with alpha = 1: beta_peak ~ n^{2/alpha} = n^2."""
    res = scaling_scan(PowerLawCap(3, 1.0), [100, 1000, 10000], key=jax.random.key(5), seeds=96, sampler="exact")
    assert abs(res.fit.b - 2.0) < 3 * res.fit.b_se


@pytest.mark.slow
@pytest.mark.parametrize("d", [2, 3, 4, 5, 8])
def test_scaling_full_exponent(d):
    """The README's main job at each d: exponent within 2 se of 2/(d-1) (finite-size fit for d > 3)."""
    seeds = 256 if d <= 4 else 128
    res = scaling_scan(UniformSphere(d), np.geomspace(100, 1e6, 9).round().astype(int), key=jax.random.key(d),
                       seeds=seeds)
    fit = res.fit if d <= 3 else res.fit_finite_size
    assert abs(fit.b - 2 / (d - 1)) < 2 * fit.b_se


def test_birge_ratio_restores_the_scatter():
    # stated errors half the true scatter: the raw se is 2x too small, the Birge-scaled se is right
    # (E sqrt(chi2_7/7) = 0.96: allow 15% with 2000 replications)
    rng = np.random.default_rng(1)
    n = np.geomspace(1e2, 1e6, 9)
    rel = 0.05
    bs, raw, scaled = [], [], []
    for _ in range(2000):
        y = 0.4 * n * np.exp(2 * rel * rng.standard_normal(9))
        bs.append(fit_power_law(n, y, rel * y).b)
        raw.append(fit_power_law(n, y, rel * y).b_se)
        scaled.append(fit_power_law(n, y, rel * y, scale_by_chi2=True).b_se)
    sd = np.std(bs, ddof=1)
    assert np.mean(raw) == pytest.approx(sd / 2, rel=0.06)
    assert np.mean(scaled) == pytest.approx(sd, rel=0.15)


def test_truncation_bound_at_huge_n():
    # regression: n - m was an int beyond int32 at n = 1e15
    gaps = jnp.asarray([[1e-15, 2e-15, 5e-14]], jnp.float32)
    b = truncation_bound(gaps, 10**15, jnp.asarray([1e15]))
    assert np.isfinite(float(b[0])) and float(b[0]) == pytest.approx(1e15 * math.exp(-1e15 * 4.9e-14), rel=1e-3)


def test_choose_m_bulk_meets_its_predicted_tolerance():
    # the rule's m is the first power of two (from m_min) whose Poisson-limit CLT error is below tol
    from phasejax.scaling import choose_m_bulk, clt_error_poisson, default_lambda_range

    law = UniformSphere(8)
    lam = np.geomspace(*default_lambda_range(law), 64)
    m = choose_m_bulk(law, 10**8, default_lambda_range(law), tol=1e-6)
    assert np.max(clt_error_poisson(law, m, lam)) < 1e-6 <= np.max(clt_error_poisson(law, m // 2, lam))
    assert m < choose_m(law, 10**8, lam[0])  # far fewer keys than the neglected-mass rule (capped at 2^20)
    assert choose_m_bulk(law, 100, default_lambda_range(law)) == 100


def test_clt_bound_holds_against_all_keys():
    """d = 8, n = 2e4, 256 contexts: E[max weight] from m = 32 nearest + the Gaussian bulk against all n keys
    of the same contexts. The difference must be within the reported bound plus 4 se of the per-context
    differences (the CLT term is random: it matches the bulk's spread, not its value); and the m nearest
    alone must miss by far more (so the check has power)."""
    from phasejax.laws.nearest import tail_log_prob
    from phasejax.scaling import bulk_gap_curve, default_lambda_range, gap_curve

    law = UniformSphere(8)
    n, m, seeds = 20000, 32, 256
    key = jax.random.key(11)
    full = nearest_gap_samples(law, key, n, n, seeds=seeds, sampler="exact")
    top = nearest_gap_samples(law, key, n, m, seeds=seeds, sampler="exact")
    ctx = jax.random.split(key, seeds)
    xi = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (4,), top.dtype))(ctx)
    a, b = (float(v) for v in law.gap_beta_params)
    data = (top, tail_log_prob(a, b, top[:, -1]), xi, jnp.asarray(float(n - m), top.dtype))
    lo, hi = default_lambda_range(law)
    log_b = jnp.log(jnp.asarray(np.array([lo, 4 * lo, 16 * lo, hi]) * n ** (2 / law.alpha), top.dtype))
    w_bulk = np.asarray(bulk_gap_curve(a, b)(log_b, *data), np.float64)
    bound = np.asarray(bulk_gap_curve(a, b, part="bound")(log_b, *data), np.float64).mean(0)
    w_full = np.asarray(gap_curve()(log_b, full), np.float64)
    w_top = np.asarray(gap_curve()(log_b, top), np.float64)
    diff = w_bulk - w_full
    tol = bound + 4 * diff.std(0, ddof=1) / math.sqrt(seeds) + 1e-6 * w_full.mean(0)  # + float32 rounding
    assert np.all(np.abs(diff.mean(0)) <= tol)
    assert np.abs(w_top - w_full).mean(0)[0] > 20 * tol[0]
