"""phasejax.heat: the all-queries attention step, zonal modes and the exact Funk-Hecke map (docs/theory.md §g).

Every reference here is independent of the library: a dense NumPy softmax, SciPy's Gegenbauer
polynomials, Bessel functions (ive) and adaptive quadrature, the public anchor file, and Monte Carlo
with a tolerance that follows from its standard error.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from phasejax import heat
from phasejax._checks import InputError


def dense_step(x, beta, *, renormalize=True, self_interaction=True):
    """Plain NumPy float64 all-queries softmax step."""
    x = np.asarray(x, np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = beta * x @ x.T
    if not self_interaction:
        np.fill_diagonal(s, -np.inf)
    s -= s.max(axis=1, keepdims=True)
    w = np.exp(s)
    y = (w / w.sum(axis=1, keepdims=True)) @ x
    return y / np.linalg.norm(y, axis=1, keepdims=True) if renormalize else y


@pytest.mark.parametrize("self_interaction", [True, False])
@pytest.mark.parametrize("renormalize", [True, False])
def test_step_matches_dense_reference(dtype, self_interaction, renormalize):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ref = dense_step(x, 30.0, renormalize=renormalize, self_interaction=self_interaction)
    y = heat.attention_step(jnp.asarray(x), 30.0, renormalize=renormalize, self_interaction=self_interaction,
                            chunk_q=128, chunk_k=256)
    assert y.dtype == jnp.dtype(dtype)
    tol = 2e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(np.asarray(y), ref, atol=tol)


def test_step_chunk_invariance_and_large_beta():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(513, 4)), jnp.float32)
    ys = [heat.attention_step(x, 80.0, chunk_q=cq, chunk_k=ck) for cq, ck in [(513, 513), (64, 100), (7, 513), (1, 1)]]
    for y in ys[1:]:
        np.testing.assert_allclose(np.asarray(y), np.asarray(ys[0]), atol=2e-6)
    # beta far beyond the float32 exp range: finite (log-space shift); with the self term every token stays,
    # without it each token moves to (a weighted mix of near-tied) nearest neighbours, as the float64 reference
    y = heat.attention_step(x, 1e5, chunk_q=100, chunk_k=128)
    assert np.all(np.isfinite(np.asarray(y)))
    np.testing.assert_allclose(np.asarray(y), np.asarray(x / jnp.linalg.norm(x, axis=1, keepdims=True)), atol=1e-5)
    y = np.asarray(heat.attention_step(x, 1e5, self_interaction=False, chunk_q=100, chunk_k=128))
    assert np.all(np.isfinite(y))
    # float32 logits carry an absolute error ~ beta * 6e-8 = 6e-3: compare the mixing loosely
    np.testing.assert_allclose(y, dense_step(x, 1e5, self_interaction=False), atol=2e-3)


def test_step_beta_zero_is_the_mean():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 3)) + np.array([2.0, 0, 0])
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = np.asarray(heat.attention_step(jnp.asarray(x, jnp.float32), 0.0, renormalize=False, chunk_k=64))
    np.testing.assert_allclose(y, np.broadcast_to(xn.mean(axis=0), y.shape), atol=1e-5)


@pytest.mark.parametrize("self_interaction", [True, False])
def test_step_halves_match_dense_reference(dtype, self_interaction):
    """Each half-key step equals a dense NumPy softmax over that half; the full one equals attention_step."""
    rng = np.random.default_rng(3)
    n = 601
    x = rng.normal(size=(n, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y, ya, yb, (na, nb) = heat.attention_step_halves(jnp.asarray(x), 25.0, self_interaction=self_interaction,
                                                     chunk_q=128, chunk_k=70)
    # the documented layout: an even number of chunks of equal size, half A = even-numbered chunks
    nk = 2 * math.ceil(n / 140)
    ck = math.ceil(n / nk)
    in_a = (np.arange(n) // ck) % 2 == 0
    assert (na, nb) == (in_a.sum(), (~in_a).sum()) and abs(na - nb) < nk
    tol = 3e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(np.asarray(y), dense_step(x, 25.0, self_interaction=self_interaction), atol=tol)
    for half, got in ((in_a, ya), (~in_a, yb)):
        s = 25.0 * x @ x[half].T
        if not self_interaction:
            s[np.flatnonzero(half), np.arange(half.sum())] = -np.inf
        else:  # the self term is in every half: queries outside the half get it as an extra key
            s = np.concatenate([s, np.where(half, -np.inf, 25.0)[:, None]], axis=1)
            ref_keys = np.concatenate([np.broadcast_to(x[half], (n, half.sum(), 3)), x[:, None, :]], axis=1)
        w = np.exp(s - s.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        ref = np.einsum("ik,ikd->id", w, ref_keys) if self_interaction else w @ x[half]
        np.testing.assert_allclose(np.asarray(got), ref / np.linalg.norm(ref, axis=1, keepdims=True), atol=tol)


@pytest.mark.bad_input
def test_halves_bad_input():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)))
    with pytest.raises(InputError, match="at least 4 tokens"):
        heat.attention_step_halves(x, 1.0, self_interaction=False)
    with pytest.raises(InputError, match="beta"):
        heat.attention_step_halves(x, float("nan"))
    with pytest.raises(InputError, match="l must be >= 1"):
        heat.gain_one_cloud(x, 1.0, 0)
