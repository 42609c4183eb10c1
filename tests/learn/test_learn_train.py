"""Learned temperature (phasejax.learn, `phasejax learn`): the head against NumPy, its gradient against the
closed form, the regression MSE theory against closed forms and Monte Carlo, training against the
minimisers, retrieval growth, errors and the CLI contract.

References are independent: NumPy softmax code, the d = 3 closed forms (a_2 = 1 + 3/b^2 - 3 coth(b)/b,
R = b coth b), the n = 1 and beta -> 0 limits of the exact MSE, and Monte Carlo with stated standard errors.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from phasejax import learn as L


class _FixedTask:
    """A finite data set: M stored key sets (Q queries each); each step draws stored key sets at random."""

    name = "fixed"
    has_optimum = True

    def __init__(self, batches, d):
        self.batches, self.d = batches, d

    def __hash__(self):
        return id(self)

    def sample(self, key, n, queries, n_active=None):
        i = jax.random.randint(key, (), 0, self.batches.gaps.shape[0])
        return L.Batch(*(x[i] for x in self.batches))


def _empirical_minimiser(gaps, values, targets):
    gaps, values, targets = (np.asarray(a, np.float64) for a in (gaps, values, targets))

    def loss(lb):
        z = -np.exp(lb) * gaps
        w = np.exp(z - z.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        pred = np.einsum("mqn,mn->mq", w, values)
        return float(np.mean((pred - targets) ** 2))

    from scipy.optimize import minimize_scalar

    grid = np.linspace(-1, 6, 71)
    i = int(np.argmin([loss(x) for x in grid]))
    return math.exp(minimize_scalar(loss, bracket=(grid[i - 1], grid[i], grid[i + 1]), tol=1e-10).x)


def test_training_converges_to_the_minimiser_of_fixed_keys():
    """Fixed keys (a finite data set): SGD on it converges to the data set's own loss minimiser, computed
    here by NumPy; agreement within 4 se (se from 8 independent runs) plus 1%."""
    n, q, m = 30, 4, 48
    batches = jax.vmap(lambda k: L.RegressionTask(3).sample(k, n, q))(jax.random.split(jax.random.key(3), m))
    target = _empirical_minimiser(*batches)
    task = _FixedTask(batches, 3)
    r = L.train(task, n, key=jax.random.key(4), steps=128, runs=8, contexts=4, queries=q, lr=0.1)
    z = (r.log_beta_mean - math.log(target)) / r.log_beta_se
    assert abs(r.log_beta_mean - math.log(target)) < 4 * r.log_beta_se + 0.01, (r.beta, target, z)
    assert r.se_method.startswith("spread of 8")


@pytest.mark.slow
@pytest.mark.parametrize("d,n", [(3, 300), (5, 1000)])
def test_training_finds_the_exact_optimum(d, n):
    r = L.train(L.RegressionTask(d), n, key=jax.random.key(d), steps=320, runs=8, contexts=2, queries=8)
    bo = L.beta_opt_exact(n, d)
    assert abs(r.log_beta_mean - math.log(bo)) < 4 * r.log_beta_se, (r.beta, r.beta_se, bo)
    assert r.converged
