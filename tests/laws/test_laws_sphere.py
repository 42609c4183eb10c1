"""Key laws against their exact gap laws (scipy), closed-form moments and the public C_d values."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from phasejax.laws import PowerLawCap, Subsphere, UniformSphere, gaps_from_keys

LAWS = [
    UniformSphere(2),
    UniformSphere(3),
    UniformSphere(4),
    UniformSphere(5),
    UniformSphere(8),
    PowerLawCap(3, 1.0),
    PowerLawCap(3, 4.0),
    PowerLawCap(5, 2.5),  # general (a, b): the log-Gamma ratio path
    Subsphere(5, 3),
    Subsphere(6, 2),
]


IDS = [f"{type(law).__name__}{law.d}-{law.alpha:g}" for law in LAWS]


N = 20_000


P_MIN = 1e-3  # a fixed-key KS test of a correct sampler fails with probability 1e-3


def _ab(law):
    return law.gap_beta_params


def _query(d):
    q = np.arange(1.0, d + 1.0)
    return jnp.asarray(q / np.linalg.norm(q), jnp.result_type(float))


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_gap_sampler_matches_exact_cdf(law, dtype):
    a, b = _ab(law)
    u = np.asarray(law.sample_gaps(jax.random.key(1), N), np.float64)
    assert u.dtype == np.float64 and np.all((u >= 0) & (u <= 2))
    assert stats.kstest(u / 2, stats.beta(a, b).cdf).pvalue > P_MIN
    # moments: E u = 2a/(a+b), Var u = 4ab/((a+b)^2(a+b+1)); 5 sigma of the sample mean/variance
    mean, var = 2 * a / (a + b), 4 * a * b / ((a + b) ** 2 * (a + b + 1))
    assert abs(u.mean() - mean) < 5 * math.sqrt(var / N)
    m4 = np.mean((u - mean) ** 4)
    assert abs(u.var() - var) < 5 * math.sqrt((m4 - var**2) / N)


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_key_sampler_matches_exact_gap_law(law):
    q = _query(law.d)
    keys = law.sample_keys(jax.random.key(2), q, N)
    assert keys.shape == (N, law.d)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(keys, np.float64), axis=1), 1.0, atol=1e-5)
    u = np.asarray(gaps_from_keys(q, keys), np.float64)
    a, b = _ab(law)
    assert stats.kstest(u / 2, stats.beta(a, b).cdf).pvalue > P_MIN


def test_subsphere_keys_span_m_dimensions():
    law = Subsphere(6, 3)
    q = _query(6)
    keys = np.asarray(law.sample_keys(jax.random.key(3), q, 500), np.float64)
    sv = np.linalg.svd(keys, compute_uv=False)
    assert sv[2] > 1.0 and sv[3] < 1e-4 * sv[0]
    # the subspace contains the query
    basis = np.linalg.svd(keys, full_matrices=False)[2][:3]
    np.testing.assert_allclose(np.linalg.norm(basis @ np.asarray(q, np.float64)), 1.0, atol=1e-5)


def test_powerlaw_keys_density_is_rotation_symmetric_about_query():
    # the component orthogonal to q has no preferred direction: its mean is ~0 (5 sigma, sd <= 1)
    q = _query(4)
    keys = np.asarray(PowerLawCap(4, 1.5).sample_keys(jax.random.key(4), q, N), np.float64)
    perp = keys - np.outer(keys @ np.asarray(q, np.float64), np.asarray(q, np.float64))
    assert np.all(np.abs(perp.mean(axis=0)) < 5 / math.sqrt(N))


@pytest.mark.parametrize("law", LAWS, ids=IDS)
def test_alpha_and_C_are_the_small_gap_law(law):
    a, b = _ab(law)
    s = 1e-10
    c_numeric = stats.beta(a, b).cdf(s / 2) / s ** (law.alpha / 2)
    assert law.alpha == pytest.approx(2 * a)
    assert law.C == pytest.approx(c_numeric, rel=1e-6)


def test_C_d_matches_public_reference(reference):
    for d, value in reference["C_d"].items():
        assert UniformSphere(int(d)).C == pytest.approx(value, rel=1e-12)


def test_powerlaw_on_s2_is_explicit():
    # docs/theory.md §d: on S^2, P(u <= s) = (s/2)^{alpha/2}, so C = 2^{-alpha/2}
    for alpha in (0.5, 1.0, 2.0, 4.0):
        assert PowerLawCap(3, alpha).C == pytest.approx(2 ** (-alpha / 2), rel=1e-12)


def test_gap_sampler_keeps_relative_precision_for_tiny_gaps():
    # d = 3 is u = 2U: the smallest of 1e6 gaps must not sit on the 2^-23 lattice of jax.random.uniform
    u = np.asarray(UniformSphere(3).sample_gaps(jax.random.key(5), 10**6), np.float64)
    smallest = np.sort(u)[:50]
    lattice = 2.0 * 2.0**-23
    off_lattice = np.abs(smallest / lattice - np.round(smallest / lattice)) > 1e-3
    assert off_lattice.mean() > 0.9
    # and the Gaussian-direction path (d = 5) has no cancellation: gaps far below float32 eps exist
    u5 = np.asarray(UniformSphere(5).sample_gaps(jax.random.key(6), 10**6), np.float64)
    assert np.all(u5 > 0)
