"""A trainable attention head with a learnable inverse temperature, and the theory of what it should learn.

One head, one query, n keys uniform on S^{d-1} (:class:`phasejax.geometry.UniformSphere`), scalar values:

    yhat(q) = sum_i w_i v_i,   w_i = softmax(-beta u_i),   u_i = |q - k_i|^2 / 2   (gap, DESIGN conventions),

with ``beta = exp(log_beta)`` the only parameter (:class:`AttentionHead`). Two tasks (THEORY.md i):

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

Training (:func:`train`): Adam (optax ``scale_by_adam``, b2 = 0.9) on ``log_beta``, fresh samples at every
step. A step draws ``contexts`` independent key sets of n keys and ``queries`` independent uniform queries per
key set (queries share a key set to amortise the key sampling; each query's loss is an unbiased sample of
the MSE); ``runs`` independent heads are trained at once (``vmap``), each with its own PRNG stream.
Schedule, with W = steps/4: a search phase at constant learning rate (2W steps, then W more at a time while
the plateau test fails, at most ``max_extensions`` times), then a cosine anneal to 5% of it over 2W steps
starting where the configuration passed its plateau test. **Convergence criterion** (plateau test): over
the last W steps, the mean log beta of the two halves differs by |Delta| <= tol + 2 se(Delta) (tol = 0.01,
i.e. 1% in beta; se over runs); ``converged`` = the search plateau was reached and the final window passes
the same test. Retrieval never passes it (beta keeps growing), so it stays at constant learning rate.
**Estimate:** per run, the Polyak average of log beta over the final W steps; beta_learned = exp(mean over
runs), with a **standard error from the spread over the independent runs** (delta method; with one run,
from 10 batch means of the window).

Theory for the regression task (THEORY.md i; host-side NumPy/SciPy in float64, not jitted):

* :func:`regression_mse_large_n`: bias^2 + variance at large n,
  MSE ~ (1 - a_2(beta))^2 / N_2 + (R(beta)/n) [sigma^2 + V_f(beta)],
  a_l = I_{l+d/2-1}/I_{d/2-1}, R = M_d(2beta)/M_d(beta)^2, N_2 = (d+2)(d-1)/2 = 1/E[f^2],
  V_f = [1 - 2 a_2(beta) a_2(2beta) + a_2(beta)^2] / N_2 (the local variance of f under the kernel).
* :func:`beta_opt_asymptotic`: its leading-order minimiser beta_opt = c n^{2/(d+3)},
  c = [2 d^2 / (N_2 sigma^2 r_d h)]^{2/(d+3)}, h = (d-1)/2, r_d = sqrt(pi)/(Gamma(d/2) 2^{d-2})
  (from 1 - a_2 ~ d/beta and R ~ r_d beta^h); bias^2/MSE -> h/(h+2) there.
* :func:`regression_mse_exact`: the exact finite-n MSE by quadrature (2-D: s and u), from
  1/D^2 = int_0^inf s e^{-sD} ds with D = sum_i e^{-beta u_i} (derivation in its docstring), and
  :func:`beta_opt_exact`, its minimiser (Brent in log beta; quadrature error < 1e-9 relative, so the
  minimiser is located to ~1e-5 relative, far inside the 1% asked for: see ``tests/test_learn.py``).
* :func:`regression_mse_mc`: a Monte Carlo estimate with common random numbers across beta (the check).

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
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import InputError, check_array, check_int, check_option, check_real
from .geometry import UniformSphere, gaps_from_keys

__all__ = [
    "AttentionHead",
    "Batch",
    "RegressionTask",
    "RetrievalTask",
    "TASKS",
    "TrainResult",
    "task_from_name",
    "zonal_p2",
    "batch_loss",
    "train",
    "regression_mse_large_n",
    "beta_opt_coefficient",
    "beta_opt_asymptotic",
    "beta_opt_large_n",
    "regression_mse_exact",
    "beta_opt_exact",
    "regression_mse_mc",
    "fit_power_law",
    "critical_lambda",
    "SIGMA",
]

SIGMA = 0.5  # value-noise standard deviation of the regression task (THEORY i)
TASKS = ("regression", "retrieval")


def _float():
    return jnp.result_type(float)


def zonal_p2(t, d: int):
    """Degree-2 zonal harmonic P_2^{(d)}(t) = (d t^2 - 1)/(d - 1), normalised to P_2(1) = 1.

    E[P_2(<x,e>)^2] = 1/N_2 for x uniform on S^{d-1}, N_2 = (d+2)(d-1)/2 (5 on S^2).

    >>> float(zonal_p2(1.0, 3)), float(zonal_p2(0.0, 3))
    (1.0, -0.5)
    """
    return (d * t * t - 1.0) / (d - 1.0)


def _harmonic_dim2(d: int) -> float:
    return (d + 2) * (d - 1) / 2.0


# =========================================================================== the head


class AttentionHead(eqx.Module):
    """One softmax attention head whose only parameter is the log inverse temperature.

    yhat = sum_i w_i v_i with w = softmax(-beta u), u_i = |q - k_i|^2/2, beta = exp(log_beta)
    (logit beta <q,k> up to a per-query constant: DESIGN conventions). log-parametrised so
    Adam's steps are relative changes of beta and beta stays positive.

    d yhat / d log beta = -beta sum_i w_i (u_i - <u>_w) v_i = beta Cov_w(t, v) (THEORY e).

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
            self.log_beta = jnp.asarray(math.log(beta), dtype=dtype or _float())

    @property
    def beta(self) -> Float[Array, ""]:
        return jnp.exp(self.log_beta)

    def log_weights(self, gaps: Float[Array, " n"]) -> Float[Array, " n"]:
        """log w_i = -beta u_i - logsumexp_j(-beta u_j)."""
        logits = -self.beta * gaps
        return logits - jax.scipy.special.logsumexp(logits)

    def predict(self, gaps: Float[Array, " n"], values: Float[Array, " n"]) -> Float[Array, ""]:
        """yhat = sum_i softmax(-beta u)_i v_i from the gaps u of one query.

        A gap of +inf marks an absent key (weight exactly 0, gradient exactly 0: padding)."""
        present = jnp.isfinite(gaps)
        u = jnp.where(present, gaps, 0.0)  # double where: no inf * 0 in the gradient
        logits = jnp.where(present, -self.beta * u, -jnp.inf)
        w = jax.nn.softmax(logits)
        return jnp.sum(jnp.where(present, w * values, 0.0))

    def __call__(
        self, query: Float[Array, " d"], keys: Float[Array, "n d"], values: Float[Array, " n"]
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


def _with_log_beta(log_beta) -> AttentionHead:
    """A head (or a stack of heads, for vmap) holding the given log beta array."""
    return eqx.tree_at(lambda h: h.log_beta, AttentionHead(1.0), log_beta)


# =========================================================================== tasks


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
    """Values v = f(k) + sigma eps, f = P_2^{(d)}(<k, e_1>); target f(q) (noise-free) (THEORY i).

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

    def sample(self, key: PRNGKeyArray, n: int, queries: int, n_active=None) -> Batch:
        """A key set of n keys and ``queries`` queries; keys i >= n_active (if given) are absent (gap inf)."""
        law = UniformSphere(self.d)
        dtype = _float()
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

    def sample(self, key: PRNGKeyArray, n: int, queries: int, n_active=None) -> Batch:
        """A key set of n keys and ``queries`` queries; keys i >= n_active (if given) are absent (gap inf)."""
        law = UniformSphere(self.d)
        dtype = _float()
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


def batch_loss(head: AttentionHead, task, key: PRNGKeyArray, n: int, contexts: int, queries: int, n_active=None,
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


# =========================================================================== training


class TrainResult(NamedTuple):
    """Outcome of :func:`train` for one (task, n). Arrays are NumPy; log_beta/loss have shape (runs, steps)."""

    task: str
    n: int
    log_beta: np.ndarray
    loss: np.ndarray
    window: int
    estimate_per_run: np.ndarray  # Polyak mean of log beta over the final window, per run
    log_beta_mean: float
    log_beta_se: float
    beta: float
    beta_se: float
    se_method: str
    drift: float  # Delta: mean log beta, second half of the window minus first half
    drift_se: float
    converged: bool
    steps: int


@functools.lru_cache(maxsize=8)
def _optimizer(b2: float):
    """Adam's direction (optax.scale_by_adam); the learning rate is applied in the step from the
    schedule (dynamic, so changing the schedule does not recompile). Cached: one object per b2, hence
    one jit cache entry."""
    return optax.scale_by_adam(b1=0.9, b2=b2)


def _lr_at(i, lr, final, start, length):
    """Constant ``lr`` before step ``start``, then cosine to ``final`` over ``length`` steps, then ``final``."""
    frac = jnp.clip((i - start) / length, 0.0, 1.0)
    cos = final + (lr - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    return jnp.where(i < start, lr, cos)


@eqx.filter_jit
def _train_chunk(heads, opt_states, run_keys, n_active, task_id, anneal_start, step0, sched, tasks, n, contexts,
                 queries, opt, length):
    """``length`` Adam steps for heads of shape (P, R): P configurations (task_id, n_active keys of the
    n sampled, anneal_start) x R runs. ``sched`` = (lr, final lr, anneal length) as an array."""

    def per_run(head, opt_state, rk, na, tid, lr_i):
        loss, grads = eqx.filter_value_and_grad(batch_loss)(head, tasks, rk, n, contexts, queries, na, tid)
        with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes int32 and float
            direction, opt_state = opt.update(grads, opt_state, head)
        updates = jax.tree.map(lambda u: -lr_i * u, direction)
        return eqx.apply_updates(head, updates), opt_state, loss

    per_config = eqx.filter_vmap(per_run, in_axes=(0, 0, 0, None, None, None))
    all_configs = eqx.filter_vmap(per_config, in_axes=(0, 0, 0, 0, 0, 0))

    def one_step(carry, i):
        heads, opt_states = carry
        keys = jax.vmap(jax.vmap(lambda k: jax.random.fold_in(k, i)))(run_keys)
        lr_i = _lr_at(i.astype(sched.dtype), sched[0], sched[1], anneal_start, sched[2])  # (P,)
        heads, opt_states, loss = all_configs(heads, opt_states, keys, n_active, task_id, lr_i)
        return (heads, opt_states), (heads.log_beta, loss)

    (heads, opt_states), (lb, loss) = jax.lax.scan(one_step, (heads, opt_states), step0 + jnp.arange(length))
    return heads, opt_states, lb, loss


def _window_stats(lb: np.ndarray, window: int):
    """Per-run Polyak means over the last ``window`` steps, and the drift between the window halves."""
    w = lb[:, -window:]
    est = w.mean(axis=1)
    half = window // 2
    drift_runs = w[:, half:].mean(axis=1) - w[:, :half].mean(axis=1)
    runs = lb.shape[0]
    if runs >= 2:
        se = float(est.std(ddof=1) / math.sqrt(runs))
        drift_se = float(drift_runs.std(ddof=1) / math.sqrt(runs))
        method = f"spread of {runs} independent runs"
    else:
        nb = 10
        bm = w[0, : (window // nb) * nb].reshape(nb, -1).mean(axis=1)
        se = float(bm.std(ddof=1) / math.sqrt(nb))
        drift_se = 2 * se  # halves of 5 batch means each: sd_bm sqrt(2/5) = 2 se
        method = "10 batch means of the final window (one run)"
    return est, float(est.mean()), se, float(drift_runs.mean()), drift_se, method


def _chunk_length(window: int, chunk: int) -> int:
    """The largest divisor of ``window`` not above ``chunk``: every call has the same length (all phases
    are multiples of the window), so the scan compiles once."""
    return max(c for c in range(1, min(chunk, window) + 1) if window % c == 0)


def _rbg_key(key):
    """The training streams use the 'rbg' PRNG (XLA RngBitGenerator) seeded from ``key``: on CPU the
    training program compiles ~2x faster than with threefry; the draws are equally valid."""
    return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="rbg")


def train(
    task,
    n,
    *,
    key: PRNGKeyArray,
    steps: int = 400,
    runs: int = 8,
    contexts: int = 2,
    queries: int = 8,
    lr: float = 0.1,
    beta0: float = 1.0,
    final_lr_frac: float = 0.05,
    b2: float = 0.9,
    tol: float = 0.01,
    max_extensions: int = 2,
    chunk: int = 50,
    progress=None,
):
    """Train ``runs`` independent heads' log beta with Adam on fresh samples of ``task`` at n keys.

    Each step: ``contexts`` key sets x ``queries`` queries per run (loss: their mean squared error), one
    Adam step (optax ``scale_by_adam``, b1 = 0.9, b2 = ``b2``) on log beta. b2 = 0.9 (not 0.999): the
    gradient scale falls by orders of magnitude as beta approaches its optimum, and a long second-moment
    memory would shrink the steps for hundreds of steps. With W = steps//4:

    1. search: constant ``lr`` for 2W steps; then the plateau test on the last W steps (the mean log beta
       of their two halves differs by |Delta| <= tol + 2 se(Delta), se over runs). A configuration that
       passes starts annealing there; while some task with a finite optimum (``task.has_optimum``) has
       not passed, W more steps and test again, up to ``max_extensions`` times;
    2. anneal: cosine from ``lr`` to ``final_lr_frac * lr`` over 2W steps after the plateau. A configuration
       that never passes the test (retrieval: beta keeps growing) stays at constant ``lr`` to the end.

    Estimate: per run, the Polyak mean of log beta over the last W steps; beta = exp(mean over runs), se from
    the spread of the runs (delta method; with one run, from 10 batch means). ``converged``: the search
    plateau was reached and the final window passes the same drift test. Every configuration runs the
    same number of steps (the lockstep program), the last plateau + 2W.

    ``task`` may be a sequence of tasks (same d) and ``n`` a sequence of context lengths: every
    (task, n) is trained in lockstep in one compiled program (keys beyond each n are padded out with
    infinite gaps), which saves a compilation per configuration at the cost of sampling max(n) keys for
    every n; a list of results (task-major) is returned then. The PRNG streams are 'rbg' keys seeded from
    ``key`` (:func:`_rbg_key`). ``progress``: an object with ``update(k, note)`` and ``total``
    (e.g. ``phasejax.commands._common.Progress``).

    >>> import jax
    >>> r = train(RegressionTask(3), 100, key=jax.random.key(0), steps=40, runs=2)
    >>> r.log_beta.shape[0], r.task, r.steps >= 40
    (2, 'regression', True)
    """
    single = np.ndim(n) == 0 and not isinstance(task, (tuple, list))
    tasks = tuple(task) if isinstance(task, (tuple, list)) else (task,)
    if not tasks:
        raise InputError("task must not be empty")
    for t in tasks:
        if not hasattr(t, "sample") or not hasattr(t, "d"):
            raise InputError(f"task must be a RegressionTask, RetrievalTask or have .sample and .d; got {t!r}")
    if len({t.d for t in tasks}) != 1:
        raise InputError(f"tasks trained together must share d, got {[t.d for t in tasks]}")
    ns = [check_int("n", v, minimum=2) for v in np.atleast_1d(np.asarray(n, dtype=object)).tolist()]
    if not ns:
        raise InputError("n must not be empty")
    steps = check_int("steps", steps, minimum=16)
    runs = check_int("runs", runs, minimum=1)
    contexts = check_int("contexts", contexts, minimum=1)
    queries = check_int("queries", queries, minimum=1)
    lr = check_real("lr", lr, positive=True)
    beta0 = check_real("beta0", beta0, positive=True)
    final_lr_frac = check_real("final_lr_frac", final_lr_frac, positive=True, maximum=1.0)
    b2 = check_real("b2", b2, minimum=0.0, maximum=0.99999)
    tol = check_real("tol", tol, nonnegative=True)
    max_extensions = check_int("max_extensions", max_extensions, minimum=0)
    chunk = check_int("chunk", chunk, minimum=1)
    configs = [(ti, nv) for ti in range(len(tasks)) for nv in ns]
    P, n_max = len(configs), max(ns)
    opt = _optimizer(float(b2))
    heads = _with_log_beta(jnp.full((P, runs), math.log(beta0), _float()))
    opt_states = eqx.filter_vmap(eqx.filter_vmap(opt.init))(eqx.filter(heads, eqx.is_array))
    run_keys = jax.random.split(_rbg_key(key), P * runs).reshape(P, runs)
    n_active = jnp.asarray([c[1] for c in configs], dtype=jnp.int32)
    task_id = jnp.asarray([c[0] for c in configs], dtype=jnp.int32)
    has_opt = [bool(getattr(tasks[ti], "has_optimum", True)) for ti, _ in configs]
    window = steps // 4
    length = _chunk_length(window, chunk)
    lbs, losses = [], []
    done = 0
    never = float(2**30)  # anneal start of a configuration that has not reached its plateau
    starts = np.full(P, never)

    def advance(total):
        nonlocal heads, opt_states, done
        sched = jnp.asarray([lr, lr * final_lr_frac, 2 * window], _float())
        anneal = jnp.asarray(starts, _float())
        while done < total:
            heads, opt_states, lb, loss = _train_chunk(
                heads, opt_states, run_keys, n_active, task_id, anneal, jnp.asarray(done), sched, tasks, n_max,
                contexts, queries, opt, length,
            )
            lbs.append(np.moveaxis(np.asarray(lb), 0, -1))  # (P, R, length)
            losses.append(np.moveaxis(np.asarray(loss), 0, -1))
            done += length
            if progress is not None:
                progress.update(length, "beta=" + ",".join(f"{float(np.exp(np.mean(x[:, -1]))):.4g}"
                                                           for x in lbs[-1]))

    def plateaus():
        lb = np.concatenate(lbs, axis=-1).astype(np.float64)
        stats = [_window_stats(lb[p], window) for p in range(P)]
        return lb, stats, [abs(st[3]) <= tol + 2 * st[4] for st in stats]

    # 1. search at constant lr; a configuration starts annealing at the first plateau test it passes
    advance(2 * window)
    for ext in range(max_extensions + 1):
        _, _, ok = plateaus()
        for p in range(P):
            if ok[p] and starts[p] == never:
                starts[p] = done
        if ext == max_extensions or all(starts[p] != never for p in range(P) if has_opt[p]):
            break
        if progress is not None:
            progress.total += window
        advance(done + window)
    # 2. anneal (configurations that never reached a plateau stay at constant lr: not converged)
    end = int(max([starts[p] for p in range(P) if starts[p] != never], default=done)) + 2 * window
    if progress is not None:
        progress.total += max(end - done - 2 * window, 0)
    advance(end)
    lb, stats, final_ok = plateaus()
    search_ok = [starts[p] != never for p in range(P)]
    loss = np.concatenate(losses, axis=-1).astype(np.float64)
    out = []
    for p, (est, mean, se, drift, drift_se, method) in enumerate(stats):
        beta = math.exp(mean)
        t = tasks[configs[p][0]]
        out.append(TrainResult(
            task=getattr(t, "name", type(t).__name__), n=configs[p][1], log_beta=lb[p], loss=loss[p], window=window,
            estimate_per_run=est, log_beta_mean=mean, log_beta_se=se, beta=beta, beta_se=beta * se,
            se_method=method, drift=drift, drift_se=drift_se, converged=bool(search_ok[p] and final_ok[p]),
            steps=done,
        ))
    return out[0] if single else out


# =========================================================================== theory (host, float64)
# a_l(beta) is heat.funk_hecke_multiplier and R(beta) is theory's M_d(2beta)/M_d(beta)^2, both evaluated
# here in float64 on the host whatever the global dtype (the theory curves are compared at 1e-6).


def _nu(d):
    return d / 2.0 - 1.0


def _a_l(beta, d, l):
    """a_l(beta) = I_{l+d/2-1}(beta)/I_{d/2-1}(beta) (THEORY g): :func:`phasejax.heat.funk_hecke_multiplier`."""
    from .heat import funk_hecke_multiplier

    with jax.enable_x64(True):
        return np.asarray(funk_hecke_multiplier(d, l, np.asarray(beta, dtype=np.float64)), dtype=np.float64)


def _log_R(beta, d):
    """log R(beta) = log M_d(2beta) - 2 log M_d(beta) (THEORY b), from :mod:`phasejax.theory` in float64."""
    from .theory import _log_R as log_r

    with jax.enable_x64(True):
        return np.asarray(log_r(np.asarray(beta, dtype=np.float64), d), dtype=np.float64)


def _check_theory_args(beta, n, d, sigma):
    d = check_int("d", d, minimum=3)
    n = check_real("n", n, minimum=1.0)
    sigma = check_real("sigma", sigma, nonnegative=True)
    if beta is not None:
        beta = check_real("beta", beta, positive=True)
    return beta, n, d, sigma


def regression_mse_large_n(beta, n, d: int, sigma: float = SIGMA, *, parts: bool = False):
    """Large-n bias-variance MSE of the regression task (THEORY i), averaged over the query:

    MSE = (1 - a_2(beta))^2 / N_2 + (R(beta)/n) [sigma^2 + V_f(beta)],
    V_f = [1 - 2 a_2(beta) a_2(2 beta) + a_2(beta)^2] / N_2,  N_2 = (d+2)(d-1)/2,

    a_2 = I_{d/2+1}/I_{d/2-1} (Funk-Hecke), R = M_d(2beta)/M_d(beta)^2. The first term is bias^2 (the mean
    prediction a_2 f(q)), the second the delta-method variance of the ratio sum e^{-beta u} v / sum e^{-beta u}.
    Valid for 1 << beta << n^{2/(d-1)} (n_eff = n/R >> 1). ``parts=True`` returns (mse, bias2, variance).

    >>> round(regression_mse_large_n(10.0, 1e12, 3), 6)  # bias only: (1 - a_2(10))^2/5, a_2 = 1 + 3/b^2 - 3 coth(b)/b
    0.01458
    """
    beta, n, d, sigma = _check_theory_args(beta, n, d, sigma)
    n2 = _harmonic_dim2(d)
    a2, a22 = _a_l(beta, d, 2), _a_l(2 * beta, d, 2)
    bias2 = float((1.0 - a2) ** 2 / n2)
    vf = (1.0 - 2.0 * a2 * a22 + a2 * a2) / n2
    var = float(np.exp(_log_R(beta, d)) / n * (sigma**2 + vf))
    return (bias2 + var, bias2, var) if parts else bias2 + var


def beta_opt_coefficient(d: int, sigma: float = SIGMA) -> float:
    """c in beta_opt ~ c n^{2/(d+3)}: c = [2 d^2 / (N_2 sigma^2 r_d h)]^{2/(d+3)} (THEORY i).

    From bias^2 ~ d^2/(N_2 beta^2) (1 - a_2 ~ d/beta) and variance ~ sigma^2 r_d beta^h / n,
    h = (d-1)/2, r_d = sqrt(pi)/(Gamma(d/2) 2^{d-2}), N_2 = (d+2)(d-1)/2.

    >>> round(beta_opt_coefficient(3), 6)  # (14.4)^(1/3)
    2.432881
    """
    _, _, d, sigma = _check_theory_args(None, 1, d, sigma)
    if sigma == 0:
        raise InputError("sigma must be > 0 for a finite optimal beta")
    h = (d - 1) / 2.0
    r_d = math.sqrt(math.pi) / (math.gamma(d / 2.0) * 2.0 ** (d - 2))
    return (2.0 * d * d / (_harmonic_dim2(d) * sigma**2 * r_d * h)) ** (2.0 / (d + 3))


def beta_opt_asymptotic(n, d: int, sigma: float = SIGMA) -> float:
    """Leading-order MSE-optimal beta = c n^{2/(d+3)} (:func:`beta_opt_coefficient`; THEORY i).

    >>> round(beta_opt_asymptotic(1000, 3), 4)  # 2.432881 * 1000^(1/3)
    24.3288
    """
    _, n, d, sigma = _check_theory_args(None, n, d, sigma)
    return beta_opt_coefficient(d, sigma) * n ** (2.0 / (d + 3))


def _minimise_log_beta(f, guess):
    from scipy.optimize import minimize_scalar

    x0, step = math.log(guess), 0.15
    f0 = f(x0)
    lo, hi = x0 - step, x0 + step
    while f(lo) < f0:  # walk the bracket out until it holds the minimum
        lo, x0, f0 = lo - step, lo, f(lo)
    while f(hi) < f0:
        hi, x0, f0 = hi + step, hi, f(hi)
    res = minimize_scalar(f, bracket=(lo, x0, hi), method="brent", options={"xtol": 1e-7})
    return math.exp(res.x)


def beta_opt_large_n(n, d: int, sigma: float = SIGMA) -> float:
    """Minimiser over beta of :func:`regression_mse_large_n` (Bessel functions kept exact).

    >>> 0.9 < beta_opt_large_n(1e8, 3) / beta_opt_asymptotic(1e8, 3) < 1.1
    True
    """
    _, n, d, sigma = _check_theory_args(None, n, d, sigma)
    return _minimise_log_beta(lambda x: regression_mse_large_n(math.exp(x), n, d, sigma),
                              beta_opt_asymptotic(n, d, sigma))


@functools.lru_cache(maxsize=8)
def _gl(order):
    return np.polynomial.legendre.leggauss(order)


def _z_nodes(zmax, panel, order):
    """Composite Gauss-Legendre nodes/weights on [0, zmax] with panels of width ~panel."""
    m = max(1, math.ceil(zmax / panel))
    edges = np.linspace(0.0, zmax, m + 1)
    x, w = _gl(order)
    a, b = edges[:-1, None], edges[1:, None]
    z = (0.5 * (b - a) * x[None, :] + 0.5 * (a + b)).ravel()
    wz = (0.5 * (b - a) * w[None, :]).ravel()
    return z, wz


def regression_mse_exact(beta, n: int, d: int, sigma: float = SIGMA, *, dx: float = 0.1, panel: float = 1.0,
                         order: int = 10, parts: bool = False):
    """Exact finite-n expected squared error E[(yhat - f(q))^2] of the regression task, by quadrature.

    With e_i = e^{-beta u_i}, D = sum e_i, g_i = f(k_i) - f(q), yhat - f(q) = sum e_i g_i / D + sigma sum e_i eps_i / D,
    and 1/D^2 = int_0^inf s e^{-sD} ds, the keys being i.i.d. given q:

        MSE(q) = int_0^inf s ds { n E[e^2 g^2 e^{-se}] phi^{n-1} + n(n-1) E[e g e^{-se}]^2 phi^{n-2}
                                  + sigma^2 n E[e^2 e^{-se}] phi^{n-1} },   phi(s) = E[e^{-se}].

    By the addition theorem E[f(k) | t, q] = P_2(t) f(q), and averaged over the uniform query
    E_q E[g^2 | t] = (2/N_2)(1 - P_2(t)) and E_q f(q)^2 = 1/N_2, so with P_2(1-u) - 1 = -d u(2-u)/(d-1):

        MSE = (1/N_2) int s [2n c_2(s) phi^{n-1} + n(n-1) a_1(s)^2 phi^{n-2}] ds + sigma^2 n int s B(s) phi^{n-1} ds,
        a_1 = E[e (P_2(t) - 1) e^{-se}],  c_2 = E[e^2 (1 - P_2(t)) e^{-se}],  B = E[e^2 e^{-se}],

    expectations over the gap law u/2 ~ Beta(h, h) (THEORY a). Evaluated in log space: trapezoid in
    x = log s (step ``dx``; the integrand is smooth and decays doubly exponentially, so the rule converges
    geometrically) and composite Gauss-Legendre in z = beta u (panels of width ``panel``, ``order`` nodes).
    Relative accuracy ~1e-10 at the defaults (halving dx and panel changes the result by less than that).
    ``parts=True`` returns (mse, bias part (the first integral), noise part (the sigma^2 term)).

    >>> m = regression_mse_exact(10.0, 100, 3)
    >>> 0.0 < m < 1.0
    True
    """
    from scipy.special import betaln, logsumexp

    beta, n, d, sigma = _check_theory_args(beta, n, d, sigma)
    n = check_int("n", n, minimum=1)
    h = (d - 1) / 2.0
    n2 = _harmonic_dim2(d)
    lbeta_hh = betaln(h, h)

    def nodes(zmax):
        z, wz = _z_nodes(zmax, panel, order)
        u = z / beta
        x = u / 2.0
        # log[p(u) dz / beta], p(u) = (u/2)^{h-1} (1-u/2)^{h-1} / (2 B(h,h))
        lw = np.log(wz) + (h - 1) * (np.log(x) + np.log1p(-x)) - math.log(2.0) - lbeta_hh - math.log(beta)
        lg = math.log(d / (d - 1.0)) + np.log(u) + np.log1p(-u / 2.0) + math.log(2.0)  # log|P_2 - 1|
        return z, lw, lg

    zfull = 2.0 * beta
    z, lw, lg = nodes(min(zfull, 120.0))
    log_m = float(logsumexp(lw - z))  # log E e^{-beta u}

    def log_phi(xs, z, lw):
        y = np.exp(np.asarray(xs)[:, None] - z[None, :])
        dd = np.exp(logsumexp(lw[None, :], b=-np.expm1(-y), axis=1))
        with np.errstate(divide="ignore"):
            return np.log1p(-np.minimum(dd, 1.0))

    # integration range in x = log s: below, s n E[e] = e^{-30}; above, phi^{n-2} < e^{-120}, or past the
    # end of the gap law (x > 2 beta + 8) where every e^{-se} has died doubly exponentially.
    x_lo = -math.log(n) - log_m - 30.0
    x_hi = 2.0 * beta + 8.0
    if n >= 3:
        zz, lww, _ = nodes(zfull)
        f_hi = -(n - 2) * log_phi([x_hi], zz, lww)[0]
        if f_hi > 120.0:
            a, b = x_lo, x_hi
            for _ in range(60):
                mid = 0.5 * (a + b)
                if -(n - 2) * log_phi([mid], zz, lww)[0] > 120.0:
                    b = mid
                else:
                    a = mid
            x_hi = b
    z, lw, lg = nodes(min(zfull, x_hi + 60.0))
    xs = np.arange(x_lo, x_hi + dx, dx)
    with np.errstate(divide="ignore"):
        return _exact_sum(xs, z, lw, lg, n, n2, sigma, dx, parts)


def _exact_sum(xs, z, lw, lg, n, n2, sigma, dx, parts):
    from scipy.special import logsumexp

    out_bias = out_noise = 0.0
    for sl in np.array_split(np.arange(xs.size), max(1, xs.size * z.size // 2_000_000)):
        x = xs[sl]
        y = np.exp(x[:, None] - z[None, :])
        lk = -y  # log e^{-s e}
        lphi = np.log1p(-np.minimum(np.exp(logsumexp(lw[None, :], b=-np.expm1(-y), axis=1)), 1.0))
        la1 = logsumexp(lw + lg - z + lk, axis=1)
        lc2 = logsumexp(lw + lg - 2 * z + lk, axis=1)
        lb = logsumexp(lw - 2 * z + lk, axis=1)
        base = 2 * x + math.log(n)
        p1 = (n - 1) * lphi if n > 1 else 0.0 * x  # phi^{n-1} (0 * -inf guarded)
        t1 = np.exp(base + p1 + lc2 + math.log(2.0))
        t2 = np.exp(base + math.log(n - 1) + ((n - 2) * lphi if n > 2 else 0.0) + 2 * la1) if n >= 2 else 0.0 * x
        t3 = np.exp(base + p1 + lb)
        out_bias += float(np.sum(t1 + t2)) * dx / n2
        out_noise += float(np.sum(t3)) * dx * sigma**2
    mse = out_bias + out_noise
    return (mse, out_bias, out_noise) if parts else mse


def beta_opt_exact(n: int, d: int, sigma: float = SIGMA, **quad) -> float:
    """argmin over beta of :func:`regression_mse_exact` (Brent in log beta, xtol 1e-7): the beta that
    gradient descent on the expected squared error against f(q) converges to.

    >>> b = beta_opt_exact(1000, 3)
    >>> 15 < b < 40
    True
    """
    _, n, d, sigma = _check_theory_args(None, n, d, sigma)
    n = check_int("n", n, minimum=2)
    return _minimise_log_beta(lambda x: regression_mse_exact(math.exp(x), n, d, sigma, **quad),
                              beta_opt_large_n(n, d, sigma))


def regression_mse_mc(
    betas, n: int, d: int, *, key: PRNGKeyArray, contexts: int = 64, queries: int = 16, sigma: float = SIGMA
):
    """Monte Carlo MSE of the regression task on a beta grid, common random numbers across beta.

    Returns (mean (B,), se (B,), dmean_dlogbeta (B,), dmean_se (B,)) as NumPy float64; se over the
    ``contexts`` independent key sets (each averages its ``queries`` queries). The derivative in
    log beta is exact per sample (autodiff), so the CRN minimiser can be found by root-finding it.

    >>> import jax
    >>> m, se, g, gse = regression_mse_mc([5.0, 10.0], 100, 3, key=jax.random.key(0), contexts=4)
    >>> m.shape
    (2,)
    """
    betas = np.atleast_1d(np.asarray(betas, dtype=np.float64))
    if betas.ndim != 1 or np.any(~np.isfinite(betas)) or np.any(betas <= 0):
        raise InputError("betas must be a 1-D array of finite positive numbers")
    n = check_int("n", n, minimum=1)
    contexts = check_int("contexts", contexts, minimum=2)
    queries = check_int("queries", queries, minimum=1)
    task = RegressionTask(d, sigma)
    lb = jnp.asarray(np.log(betas), _float())
    vals, grads = _mc_per_context(task, key, lb, n, contexts, queries)
    vals, grads = np.asarray(vals, np.float64), np.asarray(grads, np.float64)
    rt = math.sqrt(contexts)
    return vals.mean(0), vals.std(0, ddof=1) / rt, grads.mean(0), grads.std(0, ddof=1) / rt


@eqx.filter_jit
def _mc_per_context(task, key, log_betas, n, contexts, queries):
    def one(k):
        b = task.sample(k, n, queries)

        def mse(lbeta):
            head = _with_log_beta(lbeta)
            pred = jax.vmap(head.predict, in_axes=(0, None))(b.gaps, b.values)
            return jnp.mean((pred - b.targets) ** 2)

        return jax.vmap(jax.value_and_grad(mse))(log_betas)

    return jax.lax.map(one, jax.random.split(key, contexts))


# =========================================================================== fits and the critical line


def fit_power_law(n, y, y_se=None):
    """Weighted least squares of log y = a + b log n (weights 1/se(log y)^2, se(log y) = y_se/y).

    Returns (b, se_b, a, se_a, chi2_per_dof); the standard errors are scaled by sqrt(chi2/dof) when it
    exceeds 1 (Birge ratio), so a poor fit widens them. Without ``y_se``: ordinary least squares.

    >>> b, se, a, sa, c = fit_power_law([10, 100, 1000], [2.0, 4.0, 8.0])
    >>> round(b, 6)
    0.30103
    """
    n = np.asarray(n, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if n.shape != y.shape or n.ndim != 1 or n.size < 2:
        raise InputError("fit_power_law needs 1-D n and y of equal length >= 2")
    if np.any(n <= 0) or np.any(y <= 0):
        raise InputError("fit_power_law needs positive n and y")
    # one weighted-least-squares implementation for the package: phasejax.scaling.fit_power_law
    from .scaling import fit_power_law as _wls

    dof = max(n.size - 2, 1)
    if y_se is None:  # ordinary least squares: unit weights in log y, variance from the residuals
        f = _wls(n, y, y)
        chi2 = f.chi2 / dof if n.size > 2 else 0.0
        scale = math.sqrt(chi2)
        return f.b, f.b_se * scale, f.a, f.a_se * scale, chi2
    y_se = np.maximum(np.asarray(y_se, dtype=np.float64), 1e-12 * y)
    f = _wls(n, y, y_se, scale_by_chi2=True)
    return f.b, f.b_se, f.a, f.a_se, (f.chi2 / dof if n.size > 2 else 0.0)


def critical_lambda(d: int) -> tuple[float | None, str]:
    """(lambda*(d), source): from ``phasejax.theory.lambda_star`` when available; otherwise, for d = 3
    only, from the closed form E W_(1) = int exp(-s - rho Ein(s)) ds (THEORY c), rho = lambda^{-1}/2,
    maximising chi = -dE/dlog rho over log rho (SciPy quadrature); (None, reason) for other d.

    >>> round(critical_lambda(3)[0], 5)
    0.38145
    """
    d = check_int("d", d, minimum=2)
    try:
        from .theory import lambda_star

        return float(lambda_star(d).lambda_star), "phasejax.theory.lambda_star"
    except (ImportError, AttributeError):
        pass
    if d != 3:
        return None, "phasejax.theory.lambda_star unavailable (only the d=3 closed form is built in)"
    return _lambda_star_d3(), "d=3 closed form (theory.lambda_star unavailable)"


def _lambda_star_d3() -> float:
    from scipy.integrate import quad
    from scipy.optimize import minimize_scalar
    from scipy.special import exp1

    def ein(s):
        return exp1(s) + math.log(s) + np.euler_gamma if s > 1e-8 else s - s * s / 4

    def chi(lr):  # -dE/dlog rho = rho int Ein(s) exp(-s - rho Ein(s)) ds
        rho = math.exp(lr)
        return rho * quad(lambda s: ein(s) * math.exp(-s - rho * ein(s)), 0, np.inf, limit=200, epsabs=1e-13)[0]

    res = minimize_scalar(lambda lr: -chi(lr), bracket=(-1.0, 0.3, 2.0), options={"xtol": 1e-9})
    return 0.5 / math.exp(res.x)  # rho = C_3 / lambda, C_3 = 1/2
