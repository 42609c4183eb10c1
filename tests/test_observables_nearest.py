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
import numpy as np
import pytest
from scipy import integrate, special, stats

from phasejax.laws import UniformSphere
from phasejax.observables import nearest_observables, nearest_observables_with_bound, sampled_observables

BETAS6 = np.array([0.0, 1e6, 1e8, 1e9, 1e10, 1e30])  # n^{2/alpha} = 1e9

LAW3, N9, M64 = UniformSphere(3), 10**9, 64



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
