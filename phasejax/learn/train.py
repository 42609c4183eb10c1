"""Training a head's inverse temperature (docs/theory.md §i).

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
from jaxtyping import PRNGKeyArray

from .._checks import InputError, check_int, check_real
from .._numerics.arrays import default_float
from .model import AttentionHead, batch_loss

__all__ = ["TrainResult", "train"]


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
    (e.g. ``phasejax.cli._common.Progress``).

    >>> import jax
    >>> from phasejax.learn import RegressionTask
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
    heads = AttentionHead.from_log_beta(jnp.full((P, runs), math.log(beta0), default_float()))
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
        sched = jnp.asarray([lr, lr * final_lr_frac, 2 * window], default_float())
        anneal = jnp.asarray(starts, default_float())
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
