"""phasejax._numerics.special against SciPy and mpmath (written for the test, independent of the package)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from scipy import special

from phasejax._numerics.special import beta_quantile_host, beta_quantile_log, lbeta, log1mexp, log_betainc

AB = [(0.5, 0.5), (1.0, 1.0), (1.0, 3.5), (3.5, 3.5), (31.5, 31.5), (0.75, 12.0)]


@pytest.mark.parametrize("a,b", AB + [(1e3, 2.5), (1e-3, 7.0)])
def test_lbeta_matches_scipy_betaln(a, b):
    assert lbeta(a, b) == pytest.approx(float(special.betaln(a, b)), rel=1e-13, abs=1e-13)


def test_log1mexp_matches_mpmath_in_both_branches(dtype):
    x = np.array([-1e-30, -1e-12, -1e-6, -0.1, -math.log(2.0), -0.7, -2.0, -30.0, -200.0]).astype(dtype)
    got = np.asarray(log1mexp(jnp.asarray(x)), np.float64)
    mpmath.mp.dps = 60
    ref = np.array([float(mpmath.log1p(-mpmath.exp(mpmath.mpf(float(v))))) for v in x])  # at the rounded x
    np.testing.assert_allclose(got, ref, rtol=4 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("a,b", AB)
def test_log_betainc_matches_mpmath_down_to_tiny_x(a, b, x64):
    t = np.array([-1e3, -300.0, -50.0, -10.0, -3.0, -1.0, -0.3, math.log(0.45)])
    got = np.asarray(log_betainc(a, b, jnp.asarray(t)))
    mpmath.mp.dps = 60
    ref = np.array([float(mpmath.log(mpmath.betainc(a, b, 0, mpmath.exp(v), regularized=True))) for v in t])
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("a,b", AB)
def test_beta_quantiles_invert_scipy_betainc(a, b, x64):
    # log p down to -1e4 (far below what SciPy resolves): the reference is mpmath's I_x at the returned x
    lp = np.array([-1e4, -690.0, -69.0, -18.0, -6.9, -2.3, -0.92])
    mpmath.mp.dps = 60

    def log_i(log_x):
        return float(mpmath.log(mpmath.betainc(a, b, 0, mpmath.exp(mpmath.mpf(float(log_x))), regularized=True)))

    lx, l1mx = (np.asarray(v) for v in beta_quantile_log(a, b, jnp.asarray(lp)))
    # log I has slope dlogI/dlogx = x f / I <= max(a, ...) ~ a near 0: rtol on lp of 1e-12 is 1e-12 on log x
    np.testing.assert_allclose([log_i(v) for v in lx], lp, rtol=1e-12)
    np.testing.assert_allclose(l1mx, [float(mpmath.log1p(-mpmath.exp(mpmath.mpf(float(v))))) for v in lx],
                               rtol=1e-12, atol=1e-300)
    x_host = np.asarray(beta_quantile_host(a, b, lp), np.float64)
    ok = x_host > 1e-300  # the host returns x itself: where x underflows, compare its log where representable
    np.testing.assert_allclose([log_i(math.log(v)) for v in x_host[ok]], lp[ok], rtol=1e-12)
    np.testing.assert_allclose(x_host[lp > -100], special.betaincinv(a, b, np.exp(lp[lp > -100])), rtol=1e-9)
