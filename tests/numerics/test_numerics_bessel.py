"""phasejax._numerics.bessel (A_d = I_{d/2}/I_{d/2-1}, 1 - A_d, log M_d, A_d') against SciPy's ive and mpmath."""

from __future__ import annotations

import math

import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from scipy import special

from phasejax._numerics.arrays import DEVICE, HOST
from phasejax._numerics.bessel import bessel_core, bessel_ratio, score_variance_core

X = np.array([1e-6, 0.01, 0.5, 3.0, 11.0, 40.0, 150.0, 1e3, 3e4])


def _mp_ratio(nu, x, j=1):
    return mpmath.besseli(nu + j, x) / mpmath.besseli(nu, x)


@pytest.mark.parametrize("d", [2, 3, 8, 64, 513])
def test_host_core_matches_mpmath(d):
    nu = d / 2 - 1
    mpmath.mp.dps = 40
    a, om, lm, a_x = bessel_core(X, nu, HOST)
    ref_a = np.array([float(_mp_ratio(nu, x)) for x in X])
    ref_om = np.array([float(1 - _mp_ratio(nu, x)) for x in X])
    # M_d(x) = Gamma(d/2) (2/x)^{d/2-1} I_{d/2-1}(x): the moment generating function of <q, k>
    ref_lm = np.array([float(mpmath.log(mpmath.gamma(nu + 1) * (2 / mpmath.mpf(x)) ** nu * mpmath.besseli(nu, x))
                             - x) for x in X])
    np.testing.assert_allclose(a, ref_a, rtol=1e-12)
    np.testing.assert_allclose(om, ref_om, rtol=1e-11)
    np.testing.assert_allclose(lm, ref_lm, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(a_x, ref_a / X, rtol=1e-12)


@pytest.mark.parametrize("d", [3, 16])
def test_device_core_matches_scipy_ive(d, dtype):
    nu = d / 2 - 1
    x = X[X < 1e4]
    a = np.asarray(bessel_core(jnp.asarray(x, dtype), nu, DEVICE)[0], np.float64)
    ref = special.ive(nu + 1, x) / special.ive(nu, x)
    np.testing.assert_allclose(a, ref, rtol=64 * np.finfo(dtype).eps)


def test_score_variance_is_derivative_of_a_both_backends(x64):
    # A'(x) against a central difference of the mpmath ratio (independent of both code paths)
    nu, x = 0.5, np.array([0.3, 2.0, 25.0, 400.0])
    mpmath.mp.dps = 40
    ref = np.array([float(mpmath.diff(lambda t: _mp_ratio(nu, t), v)) for v in x])
    np.testing.assert_allclose(score_variance_core(x, nu, HOST), ref, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(score_variance_core(jnp.asarray(x), nu, DEVICE)), ref, rtol=1e-9)


def test_bessel_ratio_products_match_ive():
    nu, x = 1.5, np.array([0.2, 7.0, 90.0])
    r = bessel_ratio(x, nu, 4, HOST)
    ref = np.stack([special.ive(nu + j, x) / special.ive(nu, x) for j in range(1, 5)], axis=-1)
    np.testing.assert_allclose(r, ref, rtol=1e-12)
    assert math.isclose(float(r[0, 0]), float(_mp_ratio(nu, 0.2)), rel_tol=1e-12)
