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
from scipy import integrate, special, stats

from phasejax._checks import InputError
from phasejax._numerics.special import log1mexp as _log1mexp
from phasejax.laws import Empirical, PowerLawCap, Subsphere, UniformSphere, gap_quantile, nearest_gaps
from phasejax.laws.nearest import bulk_moments
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
# One static configuration shared by the unbatched tests below (each new (law, n, m, B, flags)
# compiles the sampler again, which dominates the run time of this file).
LAW3, N9, M64 = UniformSphere(3), 10**9, 64
BETAS6 = np.array([0.0, 1e6, 1e8, 1e9, 1e10, 1e30])  # n^{2/alpha} = 1e9


def _rel_err_mp(a, b, lp, x):
    """Relative error of x as a root of log I_x(a,b) = lp, to first order, in 40-digit arithmetic:
    (log I(x) - lp) / (d log I / d log x)."""
    a, b, x = mp.mpf(a), mp.mpf(b), mp.mpf(x)
    ix = mp.betainc(a, b, 0, x, regularized=True)
    slope = x**a * (1 - x) ** (b - 1) / mp.beta(a, b) / ix
    return float(abs((mp.log(ix) - mp.mpf(lp)) / slope))


# --------------------------------------------------------------------------- quantile


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


# --------------------------------------------------------------------------- nearest gaps


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


# --------------------------------------------------------------------------- bulk integrals


def _quad_reference(a, b, c, u1, ell, beta, tail):
    """Conditional mean of X and Var X_0 given u > c by SciPy quad: plain on (c, c + 100/beta), and
    with the algebraic weight (2-u)^{b-1} (QUADPACK qawse) up to 2."""
    norm = 2 * special.beta(a, b) * tail

    def x_of(u):
        e = math.exp(-beta * (u - c))
        up = (u - u1) / ell
        return np.array([e, e * up, e * up * up, e * e])

    def smooth(u):  # density without its (1 - u/2)^{b-1} factor
        return (u / 2) ** (a - 1) / norm

    split = min(c + 100 / beta, 1.0) if beta > 0 else c
    w_alg = 2.0 ** (1 - b)  # (1 - u/2)^{b-1} = 2^{1-b} (2-u)^{b-1}

    # breakpoints resolve the scales c (u^{a-1} turns over) and 1/beta (e^{-beta u} cuts off)
    pts = sorted({*np.geomspace(2 * c, split, 24)[:-1], *(c + t / beta for t in (0.3, 1, 3, 10, 30) if beta > 0)})
    pts = [p for p in pts if c < p < split]

    def integral(g):
        head = integrate.quad(lambda u: g(u) * smooth(u) * (1 - u / 2) ** (b - 1), c, split, points=pts,
                              limit=400, epsabs=0, epsrel=1e-12)[0] if split > c else 0.0
        rest = integrate.quad(lambda u: g(u) * smooth(u) * w_alg, split, 2, weight="alg", wvar=(0, b - 1),
                              limit=200, epsabs=0, epsrel=1e-12)[0]
        return head + rest

    mean = np.array([integral(lambda u, i=i: x_of(u)[i]) for i in range(4)])
    var0 = integral(lambda u: (x_of(u)[0] - mean[0]) ** 2)
    return mean, var0


def testbulk_moments_match_scipy_quad(x64):
    """Conditional means and covariance given u > c against SciPy quad (independent)."""
    cases = [(UniformSphere(4), 3e-4, 1e-5), (PowerLawCap(3, 0.7), 1e-9, 2e-10), (UniformSphere(2), 0.3, 0.1)]
    betas = np.array([0.0, 0.7, 30.0, 3e3, 1e6])
    for law, c, u1 in cases:
        a, b = law.gap_beta_params
        tail = 1 - special.betainc(a, b, c / 2)
        ell = c + np.minimum(1 / np.where(betas > 0, betas, 1), 1)
        mean, cov = bulk_moments(a, b, jnp.log(c), jnp.asarray(c), jnp.asarray(c - u1), jnp.log(tail),
                                  jnp.asarray(betas), jnp.asarray(ell), 512)
        for j, beta in enumerate(betas):
            ref_mean, ref_var = _quad_reference(a, b, c, u1, ell[j], beta, tail)
            np.testing.assert_allclose(np.asarray(mean[:, j]), ref_mean, rtol=1e-9, atol=1e-300)
            assert float(cov[j, 0, 0]) == pytest.approx(ref_var, rel=1e-7, abs=1e-15)


# --------------------------------------------------------------------------- observables


def test_observables_match_exact_sampling_in_distribution():
    """Two-sample KS over seeds at sub-, near- and supercritical beta (float32, n = 2e4)."""
    law = UniformSphere(4)
    n, seeds = 10_000, 250
    lam = np.array([1e-3, 0.03, 0.4, 3.0])  # lambda* (d=4) ~ 0.4
    betas = jnp.asarray(lam * n ** (2 / law.alpha), jnp.float32)
    ex = jax.jit(jax.vmap(lambda k: sampled_observables(law, k, n, betas, chunk=4096)))(
        jax.random.split(jax.random.key(10), seeds))
    ne, tr = jax.vmap(lambda k: nearest_observables_with_bound(law, k, n, betas, m=64))(
        jax.random.split(jax.random.key(11), seeds))
    pvals = {}
    for name in ("max_weight", "entropy", "sum_w2", "top_k_mass", "log_partition", "mean_gap"):
        for i in range(len(lam)):
            pvals[name, lam[i]] = stats.ks_2samp(np.asarray(getattr(ex, name)[:, i]),
                                                 np.asarray(getattr(ne, name)[:, i])).pvalue
    assert min(pvals.values()) > 1e-4, min(pvals.items(), key=lambda kv: kv[1])
    # the bulk carries Z at small beta and vanishes above the window
    assert float(jnp.mean(tr.bulk_fraction[:, 0])) > 0.9
    assert float(jnp.max(tr.dropped[:, -1])) < 1e-6


def test_mean_partition_function_is_unbiased(x64):
    """E Z = n E e^{-beta u} (the bulk enters by its exact conditional mean)."""
    law = UniformSphere(5)
    n, seeds = 10**9, 400
    a, b = law.gap_beta_params
    betas = np.array([0.0, 3.0, 300.0, 3e3])  # subcritical: n^{2/alpha} = 3.2e4

    def e_exp(beta):
        def f(u):
            return math.exp(-beta * u) * (u / 2) ** (a - 1) * (1 - u / 2) ** (b - 1) / (2 * special.beta(a, b))

        return integrate.quad(f, 0, 2, points=[min(1.0, 10 / max(beta, 1e-9))], limit=200, epsrel=1e-12)[0]

    expect = np.log([n * e_exp(bt) for bt in betas])
    ne = jax.vmap(lambda k: nearest_observables(law, k, n, jnp.asarray(betas), m=64))(
        jax.random.split(jax.random.key(3), seeds))
    z = np.exp(np.asarray(ne.log_partition) - expect[None, :])  # Z / E Z per seed
    mean, se = z.mean(0), z.std(0, ddof=1) / math.sqrt(seeds)
    assert mean[0] == pytest.approx(1.0, abs=1e-12)  # beta = 0: Z = n exactly
    assert np.all(np.abs(mean - 1) <= 4 * se + 1e-9), (mean, se)


def test_beta_zero_and_huge_beta_limits(dtype):
    obs = nearest_observables(LAW3, jax.random.key(0), N9, jnp.asarray(BETAS6), m=M64)
    tol = 1e-5 if dtype == "float32" else 1e-12
    assert float(obs.max_weight[0]) * N9 == pytest.approx(1.0, rel=tol)  # beta = 0: uniform weights
    assert float(obs.entropy[0]) == pytest.approx(math.log(N9), rel=tol)
    assert float(obs.max_weight[-1]) == pytest.approx(1.0, abs=tol)  # beta -> inf: the nearest key
    assert float(obs.top_k_mass[-1]) == pytest.approx(1.0, abs=tol)
    assert 0 < float(obs.min_gap) < 1e-6
    assert bool(jnp.all(jnp.diff(obs.max_weight) >= 0))


def test_identities_and_gradients(x64):
    """docs/theory.md §e: dW1/dlog beta = beta W1 (<u>_w - u_(1)), exact for the mean bulk; first and second
    derivatives against central differences; a finite gradient (with the CLT term) at beta = 0."""
    key = jax.random.key(0)
    lb = jnp.log(jnp.asarray(np.geomspace(1e5, 1e11, 6)))

    def obs(x):
        return nearest_observables(LAW3, key, N9, jnp.exp(x), m=M64, fluctuation=False)

    def d1(x):
        return jax.jvp(lambda y: obs(y).max_weight, (x,), (jnp.ones_like(x),))

    d12 = jax.jit(lambda x: jax.jvp(lambda y: d1(y)[1], (x,), (jnp.ones_like(x),)))  # (first, second) in log beta
    g1, g2 = d12(lb)
    o = obs(lb)
    # (<u>_w - u_(1) is a difference of outputs: ~1e-8 relative where W1 ~ 1)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(jnp.exp(lb) * o.max_weight * (o.mean_gap - o.min_gap)),
                               rtol=1e-6)
    h = 1e-4
    fd1 = (obs(lb + h).max_weight - obs(lb - h).max_weight) / (2 * h)
    fd2 = (d12(lb + h)[0] - d12(lb - h)[0]) / (2 * h)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(fd1), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g2), np.asarray(fd2), rtol=1e-5, atol=1e-10)
    g = jax.grad(lambda b: jnp.sum(nearest_observables(LAW3, key, N9, b, m=M64).entropy))(jnp.asarray(BETAS6))
    assert bool(jnp.all(jnp.isfinite(g)))
    assert float(g[0]) == pytest.approx(0.0, abs=1e-3)  # dH/dbeta = -beta Var(u) -> 0 at beta = 0


def test_truncation_bound_without_bulk_is_a_sure_bound(x64):
    betas = jnp.asarray(BETAS6)
    for seed in range(4):
        key = jax.random.key(seed)
        with_bulk, tb = nearest_observables_with_bound(LAW3, key, N9, betas, m=M64, fluctuation=False)
        top, t0 = nearest_observables_with_bound(LAW3, key, N9, betas, m=M64, bulk=False)
        # the bulk's share of Z <= the sure bound (n - m) e^{-beta (u_(m) - u_(1))} / Z_top
        rel = np.exp(np.asarray(with_bulk.log_partition - top.log_partition)) - 1
        assert np.all(rel <= np.asarray(t0.bound) * (1 + 1e-9))
        np.testing.assert_allclose(np.asarray(t0.bound), np.asarray(t0.dropped))
        assert np.all(np.asarray(tb.bound) <= np.asarray(tb.dropped) * (1 + 1e-12))
        assert float(tb.bulk_fraction[0]) == pytest.approx(1 - M64 / N9, rel=1e-12)  # beta = 0
        assert float(t0.bound[-1]) == 0.0 and float(t0.bound[-2]) < 1e-20  # supercritical: the m nearest suffice


# --------------------------------------------------------------------------- errors


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


# --------------------------------------------------------------------------- slow


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


# --------------------------------------------------------------------------- sweep


def test_sweep_reports_the_sampler(tmp_path, capsys):
    """`phasejax sweep --sampler nearest`: JSON key `sampler`, m, the truncation bound, netCDF attrs."""
    import json

    from phasejax import cli
    from phasejax.runtime import load_dataset

    args = ["sweep", "--n", "1e12", "--seeds", "2", "--beta-points", "6", "--nearest-m", "32", "--json", "--quiet"]
    assert cli.main([*args, "--sampler", "nearest", "--out", str(tmp_path / "a")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sampler"] == "nearest" and out["nearest_m"] == 32 and out["n"] == 10**12
    assert len(out["truncation_bound"]) == 6 and max(out["truncation_bound"]) < 0.05
    assert out["max_weight"][0] < 1e-3 and out["max_weight"][-1] > 0.99  # lambda = 1e-4 .. 1e2
    ds = load_dataset(out["files"]["results"])
    assert ds.attrs["sampler"] == "nearest" and ds.attrs["nearest_m"] == 32
    assert "truncation_bound" in ds
    # auto picks nearest above 2^20 keys (exact below: see test_cli_sweep)
    from phasejax.runtime import choose_sampler

    assert choose_sampler(LAW3, 2**20) == "exact" and choose_sampler(LAW3, 2**20 + 1) == "nearest"
    assert choose_sampler(Empirical(np.eye(3), query=np.array([1.0, 0, 0])), 10**9) == "exact"
