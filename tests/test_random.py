"""phasejax._random: the 64-bit uniforms, exponentials and log-Gamma variates against exact bit arithmetic
and closed-form moments (Monte Carlo tolerances from the sample size, fixed keys)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special, stats

from phasejax._random import exponential, log_gamma_variate, uniform_from_bits, uniform_open


def test_uniform_from_bits_is_the_exact_dyadic_formula(x64):
    hi = np.array([0, 0, 1, 2**31, 2**32 - 1], np.uint32)
    lo = np.array([0, 7, 0, 2**32 - 1, 0], np.uint32)
    got = np.asarray(uniform_from_bits(jnp.asarray(np.stack([hi, lo])), jnp.float64))
    ref = [(int(h) + (int(l) + 0.5) * 2.0**-32) * 2.0**-32 for h, l in zip(hi, lo, strict=True)]
    np.testing.assert_array_equal(got, np.array(ref))
    assert got[0] == 2.0**-65  # full relative precision near 0: no quantisation at 2^-23 or 2^-53


def test_uniform_from_bits_stays_below_one_in_float32():
    top = jnp.full((2, 1), 2**32 - 1, jnp.uint32)
    u = uniform_from_bits(top, jnp.float32)
    assert float(u[0]) < 1.0


def test_uniform_open_moments_and_ks():
    n = 200_000
    u = np.asarray(uniform_open(jax.random.key(3), (n,), jnp.float32), np.float64)
    assert u.min() > 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / n)  # 4 sigma
    assert stats.kstest(u, "uniform").pvalue > 1e-4


def test_exponential_small_values_are_unquantised_and_law_is_exp1(dtype):
    n = 200_000
    e = np.asarray(exponential(jax.random.key(5), (n,), jnp.dtype(dtype)), np.float64)
    assert abs(e.mean() - 1) < 4 / math.sqrt(n) and abs(e.var() - 1) < 4 * math.sqrt(8 / n)
    assert stats.kstest(e, "expon").pvalue > 1e-4
    small = np.sort(e)[:50]
    assert small[0] > 0 and len(np.unique(small)) == 50  # -log(U) near U = 1 not stuck on a float grid


def test_log_gamma_variate_mean_matches_digamma_for_huge_shape(x64):
    # E log G = psi(k), Var log G = psi'(k) ~ 1/k: checked at k = 1e6 and k = 3 (Marsaglia-Tsang)
    n = 4000
    keys = jax.random.split(jax.random.key(11), n)
    for k in (3.0, 1e6):
        lg = np.asarray(jax.vmap(lambda kk, k=k: log_gamma_variate(kk, k, jnp.float64))(keys))
        var = float(special.polygamma(1, k))
        assert abs(lg.mean() - float(special.digamma(k))) < 4 * math.sqrt(var / n)  # 4 sigma
        assert abs(lg.var() / var - 1) < 4 * math.sqrt(2 / n) + 0.05  # sd of a variance ratio ~ sqrt(2/n) (+ skew)
