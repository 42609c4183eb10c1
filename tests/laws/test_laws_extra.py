"""Local-exponent estimation (phasejax.estimate) and the extra key laws (phasejax.laws_extra), docs/theory.md §d.

References are independent: exact power-law samples drawn with NumPy (u = 2 U^{2/alpha} on S^2), SciPy's
chi^2 and KS, closed-form CDFs, and float64 reference gaps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from phasejax.estimate import (
    fit_tail,
)
from phasejax.laws import (
    AngularGaussian,
    BetaCap,
    FarCap,
    LocalWarp,
    Mixture,
    PowerLawCap,
    UniformSphere,
    gaps_from_keys,
)


def test_extra_laws_constants_and_gap_laws():
    q = jnp.array([0.0, 0.0, 1.0])
    mix = Mixture(UniformSphere(3), FarCap(3, 0.1), 0.25)
    assert (mix.alpha, mix.C) == (2.0, 0.125)
    assert Mixture(PowerLawCap(3, 1.0), PowerLawCap(3, 1.0), 0.3).C == pytest.approx(2**-0.5)
    assert BetaCap(3, 2.0, 1.0).C == pytest.approx(PowerLawCap(3, 4.0).C)
    assert AngularGaussian((1.0, 2.0, 3.0)).C == pytest.approx(0.5 * 27 / 6)
    # exact gap samplers against the closed-form CDF; key samplers against the gap sampler
    u = np.asarray(mix.sample_gaps(jax.random.key(0), 20000), np.float64)
    assert stats.kstest(u, lambda x: np.asarray(mix.gap_cdf(jnp.asarray(x)))).pvalue > 1e-3
    for law in (mix, AngularGaussian((0.5, 1.0, 2.0)), LocalWarp(mix, 0.1, 4.0), FarCap(3, 0.3)):
        ug = np.asarray(law.sample_gaps(jax.random.key(1), 4000), np.float64)
        keys = law.sample_keys(jax.random.key(2), q, 4000)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(keys), axis=1), 1.0, atol=1e-5)
        uk = np.asarray(gaps_from_keys(q, keys), np.float64)
        assert stats.ks_2samp(ug, uk).pvalue > 1e-3, type(law).__name__


def test_local_warp_changes_only_the_cap():
    base = UniformSphere(3)
    warp = LocalWarp(base, 0.05, 1.0)
    ub = np.asarray(base.sample_gaps(jax.random.key(4), 50000))
    uw = np.asarray(warp.sample_gaps(jax.random.key(4), 50000))
    outside = ub >= 0.05
    np.testing.assert_array_equal(ub[outside], uw[outside])
    assert np.all(uw[~outside] < 0.05)
    fit = fit_tail(uw.astype(np.float64), k=300, grid_points=2)  # 1250 keys in the cap
    assert abs(fit.alpha - 1.0) < 3 * fit.alpha_se
    assert abs(fit.C - warp.C) < 3 * fit.C_se
    assert warp.C == pytest.approx(0.5 * 0.05**0.5)
