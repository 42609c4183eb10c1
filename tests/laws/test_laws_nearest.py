"""The nearest-m sampler (phasejax.extreme) against exact O(n) sampling, mpmath/SciPy and theory.

References are independent: mpmath residuals of log I_x(a, b) (quantile precision), SciPy's
betaincinv and quad (bulk integrals, E[Z]), the exact O(n) samplers of phasejax.geometry /
phasejax.observables (two-sample KS tests over seeds), docs/theory.md §e identities and, in the slow
tests, the exact finite-n beta_peak of phasejax.theory.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest
from scipy import special, stats

from phasejax._checks import InputError
from phasejax._numerics.special import log1mexp as _log1mexp
from phasejax.laws import Empirical, PowerLawCap, Subsphere, UniformSphere, gap_quantile, nearest_gaps
from phasejax.observables import nearest_observables, nearest_observables_with_bound, sampled_observables

# (law, a, b): closed forms (b = 1; a = 1), d = 5 (a = b = 2), and the continued-fraction path
LAWS = [
    UniformSphere(3),  # (1, 1): u = 2p
    PowerLawCap(3, 0.5),  # (0.25, 1): u = 2 p^4
    PowerLawCap(2, 2.0),  # (1, 0.5)
    UniformSphere(5),  # (2, 2)
    UniformSphere(2),  # (0.5, 0.5)
    UniformSphere(6),  # (2.5, 2.5)
    PowerLawCap(4, 7.0),  # (3.5, 1.5)
    Subsphere(130, 65),  # (32, 32)
    PowerLawCap(40, 40.0),  # (20, 19.5)
]


LOG_P = np.array([-690.0, -400.0, -100.0, -30.0, -10.0, -3.0, -1.0, -0.3, -0.01, -1e-5])


def _rel_err_mp(a, b, lp, x):
    """Relative error of x as a root of log I_x(a,b) = lp, to first order, in 40-digit arithmetic:
    (log I(x) - lp) / (d log I / d log x)."""
    a, b, x = mp.mpf(a), mp.mpf(b), mp.mpf(x)
    ix = mp.betainc(a, b, 0, x, regularized=True)
    slope = x**a * (1 - x) ** (b - 1) / mp.beta(a, b) / ix
    return float(abs((mp.log(ix) - mp.mpf(lp)) / slope))


def _exact_smallest(law, keys, n, m, dtype):
    def one(k):
        return -jax.lax.top_k(-law.sample_gaps(k, n, dtype=dtype), m)[0]

    batch = max(1, (1 << 24) // n)  # seeds per step: bounds the (batch, n[, d]) working set
    return np.asarray(jax.jit(lambda ks: jax.lax.map(one, ks, batch_size=batch))(keys), np.float64)


def _check_gaps_against_exact(law, dt, n=10_000, m=16, seeds=300):
    exact = _exact_smallest(law, jax.random.split(jax.random.key(1), seeds), n, m, dt)
    near_fn = jax.jit(jax.vmap(lambda k: nearest_gaps(law, k, n, m, dtype=dt)))
    near = np.asarray(near_fn(jax.random.split(jax.random.key(2), seeds)), np.float64)
    assert near.shape == (seeds, m)
    assert np.all(np.diff(near, axis=1) >= 0)
    for i in (0, 4, m - 1):  # u_(1), u_(5), u_(m)
        p = stats.ks_2samp(exact[:, i], near[:, i]).pvalue
        assert p > 1e-3, (i, p)


def _measured_peak(law, n, seeds, m, key):
    """beta_peak = argmax of chi = d E[W1] / d log beta of the seed mean (common random numbers),
    by jax.jvp in log beta on a grid, then Newton on d chi / d log beta; se by the delta method
    (se of the seed-mean d chi / d log beta at the peak over |d^2 chi / d log beta^2|)."""
    scale = n ** (2 / law.alpha)
    gaps = jax.jit(jax.vmap(lambda k: nearest_gaps(law, k, n, m)))(jax.random.split(key, seeds))
    up = (gaps - gaps[:, :1]) * scale  # beta u' = lambda up

    def w1(x, uu):  # per-seed max weight at log lambda = x (bulk beyond m: < e^-100, see the assert)
        return 1.0 / jnp.sum(jnp.exp(-jnp.exp(x) * uu), axis=-1)

    def d(f):
        return lambda x, uu: jax.jvp(lambda y: f(y, uu), (x,), (jnp.ones_like(x),))[1]

    chi1, chi2 = d(d(w1)), d(d(d(w1)))
    grid = jnp.asarray(np.log(0.4) + np.linspace(-2, 2, 41))
    vals = np.asarray(jax.jit(jax.vmap(lambda x: jnp.mean(chi1(x, up))))(grid))
    k = int(np.where((vals[:-1] > 0) & (vals[1:] <= 0))[0][0])

    @jax.jit
    def newton(x):
        return jax.lax.fori_loop(0, 12, lambda _, x: x - jnp.mean(chi1(x, up)) / jnp.mean(chi2(x, up)), x)

    x = newton(grid[k] + (grid[k + 1] - grid[k]) * vals[k] / (vals[k] - vals[k + 1]))
    # the keys beyond the m nearest carry nothing near the peak (same keys -> same gaps)
    beta = jnp.exp(x)[None] * scale
    _, tr = jax.vmap(lambda k: nearest_observables_with_bound(law, k, n, beta, m=m))(jax.random.split(key, seeds)[:64])
    assert float(jnp.max(tr.bulk_fraction)) < 1e-8
    se = float(jnp.std(chi1(x, up), ddof=1)) / math.sqrt(seeds) / abs(float(jnp.mean(chi2(x, up))))
    return math.exp(float(x)) * scale, se


def test_quantile_full_relative_precision_float64(x64):
    mp.mp.dps = 40
    worst = 0.0
    for law in LAWS:
        a, b = law.gap_beta_params
        x = np.asarray(gap_quantile(law, jnp.asarray(LOG_P))) / 2
        for lp, xi in zip(LOG_P, x, strict=True):
            if not 1e-300 < xi < 1:  # underflowed (true x below 1e-300) or rounds to 1
                continue
            worst = max(worst, _rel_err_mp(a, b, lp, xi))
    assert worst < 1e-12, worst


def test_quantile_matches_scipy_betaincinv(x64):
    p = np.array([1e-300, 1e-100, 1e-20, 1e-5, 0.01, 0.3, 0.5, 0.8, 0.999, 0.9999999])  # shape of LOG_P
    for law in LAWS[:7]:
        a, b = law.gap_beta_params
        ref = 2 * special.betaincinv(a, b, p)
        got = np.asarray(gap_quantile(law, jnp.log(jnp.asarray(p))))
        ok = ref > 1e-290
        np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-9)
    # uniform S^2: u = 2p exactly, down to 1e-300
    np.testing.assert_allclose(np.asarray(gap_quantile(UniformSphere(3), jnp.log(jnp.asarray(p)))), 2 * p, rtol=1e-13)


def test_quantile_float32_keeps_relative_precision():
    mp.mp.dps = 30
    lp32 = jnp.asarray(LOG_P, jnp.float32)  # e^-690 is far below float32's range: carried as log p
    worst = 0.0
    for law in LAWS:
        a, b = law.gap_beta_params
        u = gap_quantile(law, lp32)
        assert u.dtype == jnp.float32
        x = np.asarray(u, np.float64) / 2
        for lp, xi in zip(np.asarray(lp32, np.float64), x, strict=True):
            if not np.finfo(np.float32).tiny < xi < 1:
                continue
            worst = max(worst, _rel_err_mp(a, b, lp, xi))
    assert worst < 1e-5, worst


def test_quantile_inverts_cdf_and_is_monotone(x64):
    law = UniformSphere(7)
    lp = jnp.linspace(-50.0, -1e-3, 400)
    u = gap_quantile(law, lp)
    assert bool(jnp.all(jnp.diff(u) > 0))
    np.testing.assert_allclose(np.log(np.asarray(law.gap_cdf(u))), np.asarray(lp), rtol=1e-11, atol=1e-12)


def test_nearest_gaps_match_sorted_exact_samples(dtype):
    """u_(1), u_(5), u_(m) against the sorted smallest of exact O(n) samples, two-sample KS."""
    _check_gaps_against_exact(UniformSphere(3), jnp.dtype(dtype))


def test_nearest_gaps_match_exact_continued_fraction_path():
    """d = 4 (a = b = 3/2): the quantile by Newton on the continued fraction."""
    _check_gaps_against_exact(UniformSphere(4), jnp.dtype("float32"))


def test_nearest_gaps_at_huge_n_follow_the_order_statistic_law(x64):
    """n = 1e15 on S^2 (u = 2U): n u_(1)/2 ~ Exp(1) and n u_(k)/2 ~ Gamma(k), exactly."""
    n, m, seeds = 10**15, 8, 1000
    u = np.asarray(jax.jit(jax.vmap(lambda k: nearest_gaps(UniformSphere(3), k, n, m)))(
        jax.random.split(jax.random.key(5), seeds)))
    assert stats.kstest(n * u[:, 0] / 2, "expon").pvalue > 1e-3
    assert stats.kstest(n * u[:, m - 1] / 2, stats.gamma(m).cdf).pvalue > 1e-3
    # far beyond int64 comfort: still finite, positive and ascending
    big = np.asarray(nearest_gaps(UniformSphere(4), jax.random.key(0), 1e30, 4))
    assert np.all(big > 0) and np.all(np.diff(big) > 0) and big[0] < 1e-15


@pytest.mark.bad_input
def test_bad_input_raises_input_error():
    law, key = UniformSphere(3), jax.random.key(0)
    with pytest.raises(InputError, match="m must be"):
        nearest_gaps(law, key, 100, 0)
    with pytest.raises(InputError, match="m must be <= n"):
        nearest_gaps(law, key, 10, 11)
    with pytest.raises(InputError, match="n must be"):
        nearest_gaps(law, key, 0, 1)
    with pytest.raises(InputError, match="n must be an integer"):
        nearest_gaps(law, key, 1e6 + 0.5, 1)
    with pytest.raises(InputError, match="top_k must be <= m"):
        nearest_observables(law, key, 1000, jnp.ones(2), m=4, top_k=5)
    with pytest.raises(InputError, match="betas"):
        nearest_observables(law, key, 1000, jnp.asarray([-1.0]))
    emp = Empirical(np.eye(3), query=np.array([1.0, 0, 0]))
    with pytest.raises(InputError, match="gap CDF"):
        nearest_gaps(emp, key, 100, 4)
    with pytest.raises(InputError, match="gap CDF"):
        gap_quantile(emp, -1.0)
    with pytest.raises(InputError, match="log_p"):
        gap_quantile(law, 0.5)


def test_log1mexp_accuracy(x64):
    x = -np.geomspace(1e-300, 700, 50)
    ref = [math.log(-math.expm1(v)) if v > -0.69 else math.log1p(-math.exp(v)) for v in x]
    np.testing.assert_allclose(np.asarray(_log1mexp(jnp.asarray(x))), ref, rtol=1e-14)


@pytest.mark.slow
@pytest.mark.parametrize("law", [UniformSphere(3), UniformSphere(5), PowerLawCap(3, 1.0)], ids=str)
def test_large_n_gaps_and_observables_match_exact(law, x64):
    n, seeds, m = 10**6, 400, 64
    exact = _exact_smallest(law, jax.random.split(jax.random.key(21), seeds), n, m, jnp.dtype("float64"))
    near_fn = jax.jit(jax.vmap(lambda k: nearest_gaps(law, k, n, m)))
    near = np.asarray(near_fn(jax.random.split(jax.random.key(22), seeds)))
    for i in (0, 4, m - 1):
        assert stats.ks_2samp(exact[:, i], near[:, i]).pvalue > 1e-3
    betas = jnp.asarray(np.array([1e-4, 1e-2, 0.3, 3.0]) * n ** (2 / law.alpha))
    ex = jax.jit(jax.vmap(lambda k: sampled_observables(law, k, n, betas)))(jax.random.split(jax.random.key(23), seeds))
    ne = jax.vmap(lambda k: nearest_observables(law, k, n, betas, m=m))(jax.random.split(jax.random.key(24), seeds))
    for name in ("max_weight", "entropy", "sum_w2", "log_partition"):
        for i in range(betas.shape[0]):
            x, y = np.asarray(getattr(ex, name)[:, i]), np.asarray(getattr(ne, name)[:, i])
            assert stats.ks_2samp(x, y).pvalue > 1e-4, (name, i)


@pytest.mark.slow
@pytest.mark.parametrize("n,d", [(1e8, 3), (1e12, 3), (1e8, 5), (1e12, 5)])
def test_beta_peak_matches_exact_finite_n(n, d, x64):
    from phasejax import theory

    law = UniformSphere(d)
    key = jax.random.fold_in(jax.random.key(7), round(math.log10(n)))  # independent seeds per n
    beta_peak, se_log = _measured_peak(law, int(n), 40_000, 512, key)
    exact = theory.exact_beta_peak(n, d).beta_peak
    assert abs(math.log(beta_peak / exact)) < 3.5 * se_log, (beta_peak, exact, se_log)
    assert se_log < 0.01
