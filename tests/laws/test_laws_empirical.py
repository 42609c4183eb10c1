"""Key laws against their exact gap laws (scipy), closed-form moments and the public C_d values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasejax.laws import Empirical, UniformSphere


def _query(d):
    q = np.arange(1.0, d + 1.0)
    return jnp.asarray(q / np.linalg.norm(q), jnp.result_type(float))


def test_empirical_estimates_local_exponent(tmp_path):
    q = _query(3)
    keys = np.asarray(UniformSphere(3).sample_keys(jax.random.key(7), q, 40_000), np.float64)
    path = tmp_path / "keys.npy"
    np.save(path, keys)
    law = Empirical(str(path), q, k=400)
    # Hill estimator: sd(alpha) = alpha/sqrt(k) = 0.1; 4 sigma
    assert abs(law.alpha - 2.0) < 4 * law.alpha_se
    assert law.C == pytest.approx(0.5, rel=0.5)
    sub = law.sample_keys(jax.random.key(8), None, 100)
    assert sub.shape == (100, 3)
