"""A trainable attention head with a learnable inverse temperature, and the two tasks it is trained on.

One head, one query, n keys uniform on S^{d-1} (:class:`phasejax.laws.UniformSphere`), scalar values:

    yhat(q) = sum_i w_i v_i,   w_i = softmax(-beta u_i),   u_i = |q - k_i|^2 / 2   (gap, DESIGN conventions),

with ``beta = exp(log_beta)`` the only parameter (:class:`AttentionHead`). Two tasks (docs/theory.md §i):

* **regression** (:class:`RegressionTask`): v_i = f(k_i) + sigma eps_i with f(x) = P_2^{(d)}(<x,e>) =
  (d <x,e>^2 - 1)/(d - 1), e = e_1, sigma = 0.5; the target is f(q) (noise-free). The training loss is
  (yhat - f(q))^2, so what training minimises is the **expected squared error against f(q)**,
  MSE(beta, n, d) = E[(yhat - f(q))^2], which contains the value-noise variance sigma^2 E[sum w^2] but
  *not* the irreducible sigma^2 of a noisy target. This is Nadaraya-Watson regression with a von
  Mises-Fisher kernel: its optimal beta grows like n^{2/(d+3)} (subcritical).
* **retrieval** (:class:`RetrievalTask`): values are i.i.d. N(0, 1) labels, the target is the label of the
  nearest key. Labels carry no spatial correlation, so averaging neighbours cannot help: E over labels of
  the loss is (1 - W_(1))^2 + sum_{i >= 2} w_i^2, which vanishes only as beta -> infinity (hard argmax):
  a pure retrieval task. (With values f(k) the neighbours' values would approximate the nearest one and
  the task would be part regression.) The learned beta keeps growing: supercritical.

Shape contract (jaxtyping):

* ``AttentionHead.predict(gaps: Float[Array, "n"], values: Float[Array, "n"]) -> Float[Array, ""]``;
  ``AttentionHead.__call__(query: Float[Array, "d"], keys: Float[Array, "n d"], values: Float[Array, "n"])``;
* ``task.sample(key, n, queries) -> Batch(gaps: Float[Array, "Q n"], values: Float[Array, "n"],
  targets: Float[Array, "Q"])``;
* ``train(...) -> TrainResult`` with ``log_beta: Float[np.ndarray, "runs steps"]``;
* theory functions take scalars (beta, n) and return Python floats.

dtype: float32 unless ``jax_enable_x64`` is on (the head and the samples follow the default float).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import InputError, check_array, check_int, check_option, check_real
from .._numerics.arrays import default_float
from ..laws.base import gaps_from_keys
from ..laws.sphere import UniformSphere

__all__ = ["zonal_p2", "AttentionHead", "Batch", "RegressionTask", "RetrievalTask", "task_from_name", "batch_loss"]


SIGMA = 0.5  # value-noise standard deviation of the regression task (docs/theory.md §i)


TASKS = ("regression", "retrieval")


def zonal_p2(t, d: int):
    """Degree-2 zonal harmonic P_2^{(d)}(t) = (d t^2 - 1)/(d - 1), normalised to P_2(1) = 1.

    E[P_2(<x,e>)^2] = 1/N_2 for x uniform on S^{d-1}, N_2 = (d+2)(d-1)/2 (5 on S^2).

    >>> float(zonal_p2(1.0, 3)), float(zonal_p2(0.0, 3))
    (1.0, -0.5)
    """
    return (d * t * t - 1.0) / (d - 1.0)


def _harmonic_dim2(d: int) -> float:
    return (d + 2) * (d - 1) / 2.0


class AttentionHead(eqx.Module):
    """One softmax attention head whose only parameter is the log inverse temperature.

    yhat = sum_i w_i v_i with w = softmax(-beta u), u_i = |q - k_i|^2/2, beta = exp(log_beta)
    (logit beta <q,k> up to a per-query constant: DESIGN conventions). log-parametrised so
    Adam's steps are relative changes of beta and beta stays positive.

    d yhat / d log beta = -beta sum_i w_i (u_i - <u>_w) v_i = beta Cov_w(t, v) (docs/theory.md §e).

    >>> import jax.numpy as jnp
    >>> head = AttentionHead(2.0)
    >>> float(head.predict(jnp.array([0.0, 1.0]), jnp.array([1.0, 0.0])))  # e^0/(e^0 + e^-2)
    0.880797...
    """

    log_beta: Float[Array, ""]

    def __init__(self, beta=1.0, *, dtype=None):
        if isinstance(beta, jax.core.Tracer):
            self.log_beta = jnp.log(beta)
        else:
            beta = check_real("beta", beta, positive=True)
            self.log_beta = jnp.asarray(math.log(beta), dtype=dtype or default_float())

    @property
    def beta(self) -> Float[Array, ""]:
        return jnp.exp(self.log_beta)

    def log_weights(self, gaps: Float[ArrayLike, " n"]) -> Float[Array, " n"]:
        """log w_i = -beta u_i - logsumexp_j(-beta u_j)."""
        logits = -self.beta * gaps
        return logits - jax.scipy.special.logsumexp(logits)

    def predict(self, gaps: Float[ArrayLike, " n"], values: Float[ArrayLike, " n"]) -> Float[Array, ""]:
        """yhat = sum_i softmax(-beta u)_i v_i from the gaps u of one query.

        A gap of +inf marks an absent key (weight exactly 0, gradient exactly 0: padding)."""
        present = jnp.isfinite(gaps)
        u = jnp.where(present, gaps, 0.0)  # double where: no inf * 0 in the gradient
        logits = jnp.where(present, -self.beta * u, -jnp.inf)
        w = jax.nn.softmax(logits)
        return jnp.sum(jnp.where(present, w * values, 0.0))

    def __call__(
        self, query: Float[ArrayLike, " d"], keys: Float[ArrayLike, "n d"], values: Float[ArrayLike, " n"]
    ) -> Float[Array, ""]:
        """yhat(q) from unit vectors (gaps computed as |q-k|^2/2 at full relative precision)."""
        check_array("query", query, ndim=1)
        check_array("keys", keys, ndim=2)
        check_array("values", values, ndim=1)
        if not isinstance(keys, jax.core.Tracer) and not isinstance(values, jax.core.Tracer):
            if np.shape(keys)[0] != np.shape(values)[0]:
                raise InputError(f"keys and values must have the same length, got {np.shape(keys)[0]} "
                                 f"and {np.shape(values)[0]}")
            if np.shape(query)[0] != np.shape(keys)[1]:
                raise InputError(f"query has d={np.shape(query)[0]} but keys have d={np.shape(keys)[1]}")
        return self.predict(gaps_from_keys(query, keys), values)

    @classmethod
    def from_log_beta(cls, log_beta) -> AttentionHead:
        """A head (or a stack of heads, for vmap: any shape) holding the given log beta array."""
        return eqx.tree_at(lambda h: h.log_beta, cls(1.0), log_beta)


class Batch(NamedTuple):
    """One key set with Q queries: gaps (Q, n), values (n,), targets (Q,)."""

    gaps: Float[Array, "Q n"]
    values: Float[Array, " n"]
    targets: Float[Array, " Q"]


def _pad(gaps, n_active):
    if n_active is None:
        return gaps
    return jnp.where(jnp.arange(gaps.shape[-1]) < n_active, gaps, jnp.inf)


class RegressionTask(eqx.Module):
    """Values v = f(k) + sigma eps, f = P_2^{(d)}(<k, e_1>); target f(q) (noise-free) (docs/theory.md §i).

    Keys and queries uniform on S^{d-1} (:class:`UniformSphere`), drawn as vectors.

    >>> import jax
    >>> b = RegressionTask(3).sample(jax.random.key(0), 100, 4)
    >>> b.gaps.shape, b.values.shape, b.targets.shape
    ((4, 100), (100,), (4,))
    """

    d: int = eqx.field(static=True)
    sigma: float = eqx.field(static=True)

    def __init__(self, d: int, sigma: float = SIGMA):
        self.d = check_int("d", d, minimum=2)
        self.sigma = check_real("sigma", sigma, nonnegative=True)

    name = "regression"
    has_optimum = True  # a finite MSE-optimal beta: the convergence test applies

    def sample(self, key: PRNGKeyArray, n: int | float, queries: int, n_active=None) -> Batch:
        """A key set of n keys and ``queries`` queries; keys i >= n_active (if given) are absent (gap inf)."""
        law = UniformSphere(self.d)
        dtype = default_float()
        kq, kk, kn = jax.random.split(key, 3)
        e = jnp.zeros(self.d, dtype).at[0].set(1.0)
        qs = law.sample_keys(kq, e, queries)  # uniform, independent of their "query" argument
        keys = law.sample_keys(kk, e, n)
        values = zonal_p2(keys[:, 0], self.d) + self.sigma * jax.random.normal(kn, (n,), dtype)
        gaps = _pad(jax.vmap(gaps_from_keys, in_axes=(0, None))(qs, keys), n_active)
        return Batch(gaps, values, zonal_p2(qs[:, 0], self.d))


class RetrievalTask(eqx.Module):
    """Values i.i.d. N(0, 1) labels; target: the label of the nearest key (argmin gap).

    >>> import jax
    >>> b = RetrievalTask(3).sample(jax.random.key(0), 50, 2)
    >>> bool(b.targets[0] == b.values[b.gaps[0].argmin()])
    True
    """

    d: int = eqx.field(static=True)

    def __init__(self, d: int):
        self.d = check_int("d", d, minimum=2)

    name = "retrieval"
    has_optimum = False  # beta -> infinity: no convergence test

    def sample(self, key: PRNGKeyArray, n: int | float, queries: int, n_active=None) -> Batch:
        """A key set of n keys and ``queries`` queries; keys i >= n_active (if given) are absent (gap inf)."""
        law = UniformSphere(self.d)
        dtype = default_float()
        kq, kk, kv = jax.random.split(key, 3)
        e = jnp.zeros(self.d, dtype).at[0].set(1.0)
        qs = law.sample_keys(kq, e, queries)
        keys = law.sample_keys(kk, e, n)
        values = jax.random.normal(kv, (n,), dtype)
        gaps = _pad(jax.vmap(gaps_from_keys, in_axes=(0, None))(qs, keys), n_active)
        return Batch(gaps, values, values[jnp.argmin(gaps, axis=1)])


def task_from_name(name: str, d: int, *, sigma: float = SIGMA):
    """``'regression'`` -> :class:`RegressionTask`, ``'retrieval'`` -> :class:`RetrievalTask`."""
    check_option("task", name, TASKS)
    return RegressionTask(d, sigma) if name == "regression" else RetrievalTask(d)


def batch_loss(head: AttentionHead, task, key: PRNGKeyArray, n: int | float, contexts: int, queries: int, n_active=None,
               task_id=None):
    """Mean over ``contexts`` fresh key sets x ``queries`` queries of (yhat - target)^2.

    ``n_active`` (optional, may be traced): only the first n_active of the n keys are present.
    ``task`` may be a tuple of tasks with a (traced) ``task_id`` choosing one (``lax.switch``)."""
    if isinstance(task, tuple):
        branches = [functools.partial(_sample_with, t, n=n, queries=queries) for t in task]

        def sample(k):
            return jax.lax.switch(task_id, branches, k, n_active)
    else:

        def sample(k):
            return task.sample(k, n, queries, n_active)

    batches = jax.vmap(sample)(jax.random.split(key, contexts))
    pred = jax.vmap(jax.vmap(head.predict, in_axes=(0, None)))(batches.gaps, batches.values)
    return jnp.mean((pred - batches.targets) ** 2)


def _sample_with(task, k, n_active, *, n, queries):
    return task.sample(k, n, queries, n_active)
