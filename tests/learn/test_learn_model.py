"""Learned temperature (phasejax.learn, `phasejax learn`): the head against NumPy, its gradient against the
closed form, the regression MSE theory against closed forms and Monte Carlo, training against the
minimisers, retrieval growth, errors and the CLI contract.

References are independent: NumPy softmax code, the d = 3 closed forms (a_2 = 1 + 3/b^2 - 3 coth(b)/b,
R = b coth b), the n = 1 and beta -> 0 limits of the exact MSE, and Monte Carlo with stated standard errors.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasejax import learn as L
from phasejax._checks import InputError
from phasejax.laws import gaps_from_keys


def _np_softmax_predict(beta, q, keys, values):
    q, keys, values = (np.asarray(a, np.float64) for a in (q, keys, values))
    u = 0.5 * np.sum((keys - q) ** 2, axis=1)
    z = -beta * u
    w = np.exp(z - z.max())
    w /= w.sum()
    return float(w @ values), w, u


def _random_problem(seed, n=37, d=4):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=d)
    q /= np.linalg.norm(q)
    k = rng.normal(size=(n, d))
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    v = rng.normal(size=n)
    return q, k, v


@pytest.mark.parametrize("beta", [0.3, 7.0, 250.0])
def test_forward_matches_numpy(dtype, beta):
    q, k, v = _random_problem(1)
    ref, _, _ = _np_softmax_predict(beta, q, k, v)
    head = L.AttentionHead(beta)
    assert head.log_beta.dtype == jnp.dtype(dtype)
    out = head(jnp.asarray(q, dtype), jnp.asarray(k, dtype), jnp.asarray(v, dtype))
    assert out.dtype == jnp.dtype(dtype)
    tol = 1e-12 if dtype == "float64" else 2e-5 * max(1.0, beta * 0.01)
    assert abs(float(out) - ref) <= tol * (1 + abs(ref)) + (1e-5 if dtype == "float32" else 0)


def test_padding_with_infinite_gaps_is_exact(dtype):
    q, k, v = _random_problem(2)
    head = L.AttentionHead(3.0)
    dt = jnp.dtype(dtype)
    u = gaps_from_keys(jnp.asarray(q, dt), jnp.asarray(k, dt))
    vals = jnp.asarray(v, dt)
    padded_u = u.at[20:].set(jnp.inf)
    a = head.predict(u[:20], vals[:20])
    b = head.predict(padded_u, vals)
    assert float(a) == pytest.approx(float(b), rel=1e-6 if dtype == "float32" else 1e-14)
    g = jax.grad(lambda h: h.predict(padded_u, vals))(head).log_beta
    assert np.isfinite(float(g))


def test_gradient_in_log_beta_closed_form(x64):
    """d (yhat - y)^2 / d log beta = 2 (yhat - y) (-beta sum_i w_i (u_i - <u>_w) v_i) (docs/theory.md §e)."""
    q, k, v = _random_problem(3)
    target = 0.3
    for beta in (0.5, 12.0, 400.0):
        yhat, w, u = _np_softmax_predict(beta, q, k, v)
        ref = 2 * (yhat - target) * (-beta * np.sum(w * (u - w @ u) * v))
        head = L.AttentionHead(beta)
        g = jax.grad(lambda h: (h(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v)) - target) ** 2)(head).log_beta
        assert float(g) == pytest.approx(ref, rel=1e-10, abs=1e-14)
    from jax.test_util import check_grads

    gaps = 0.5 * np.sum((k - q) ** 2, axis=1)
    check_grads(lambda lb: L.AttentionHead.from_log_beta(lb).predict(jnp.asarray(gaps), jnp.asarray(v)),
                (jnp.asarray(math.log(5.0)),), order=1, modes=["rev"])


def test_tasks_shapes_and_targets():
    b = jax.jit(lambda k: L.RegressionTask(3).sample(k, 64, 5))(jax.random.key(0))
    assert b.gaps.shape == (5, 64) and b.values.shape == (64,) and b.targets.shape == (5,)
    assert np.all(np.asarray(b.targets) >= -0.5 - 1e-6) and np.all(np.asarray(b.targets) <= 1 + 1e-6)
    r = jax.jit(lambda k: L.RetrievalTask(5).sample(k, 64, 5, n_active=10))(jax.random.key(1))
    gaps, vals = np.asarray(r.gaps), np.asarray(r.values)
    assert np.all(np.isinf(gaps[:, 10:])) and np.all(np.isfinite(gaps[:, :10]))
    np.testing.assert_array_equal(np.asarray(r.targets), vals[np.argmin(gaps[:, :10], axis=1)])


@pytest.mark.bad_input
def test_bad_input_raises():
    with pytest.raises(InputError, match="beta"):
        L.AttentionHead(-1.0)
    with pytest.raises(InputError, match="d"):
        L.RegressionTask(1)
    with pytest.raises(InputError, match="task"):
        L.task_from_name("classify", 3)
    with pytest.raises(InputError, match="n"):
        L.train(L.RegressionTask(3), 1, key=jax.random.key(0))
    with pytest.raises(InputError, match="steps"):
        L.train(L.RegressionTask(3), 10, key=jax.random.key(0), steps=4)
    with pytest.raises(InputError, match="share d"):
        L.train([L.RegressionTask(3), L.RetrievalTask(5)], 10, key=jax.random.key(0))
    with pytest.raises(InputError, match="beta"):
        L.regression_mse_exact(0.0, 10, 3)
    with pytest.raises(InputError, match="d"):
        L.regression_mse_large_n(1.0, 10, 2)
    with pytest.raises(InputError, match="sigma"):
        L.beta_opt_coefficient(3, sigma=0.0)
    with pytest.raises(InputError, match="same length"):
        L.AttentionHead(1.0)(jnp.ones(3) / math.sqrt(3), jnp.eye(3), jnp.ones(2))
