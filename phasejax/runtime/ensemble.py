"""Seed ensembles of observables over a beta grid.

``ensemble(law, key, n, betas, seeds=S)`` draws S independent contexts of n keys
(``jax.random.split(key, S)``), evaluates every observable on the whole beta grid for each
(common random numbers across beta, so each seed's curve is smooth in beta), and returns
the per-seed values with shape (S, B) together with the mean and standard error over
seeds (se = sd / sqrt(S), ddof = 1).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import InputError, check_betas, check_int
from ..laws.base import KeyLaw
from ..observables import DEFAULT_CHUNK, OBSERVABLE_NAMES, Observables, sampled_observables

__all__ = ["choose_sampler", "observe", "Ensemble", "ensemble"]


SAMPLERS = ("auto", "exact", "nearest")


# auto: exact sampling up to this many keys, the nearest-m sampler (phasejax.laws.nearest) above it
AUTO_NEAREST_ABOVE = 2**20


def choose_sampler(law: KeyLaw, n: int | float, sampler: str = "auto") -> str:
    """Resolve ``sampler`` ('auto', 'exact' or 'nearest') for a law and context length."""
    from .._checks import check_option

    check_option("sampler", sampler, SAMPLERS)
    if sampler == "auto":
        # the O(m) sampler with its bulk correction exists for the Beta gap laws (phasejax.laws.nearest);
        # other laws (Gaussian scores, empirical keys) are sampled exactly
        from ..laws.base import BetaGapLaw

        return "nearest" if (n > AUTO_NEAREST_ABOVE and isinstance(law, BetaGapLaw)) else "exact"
    if sampler == "nearest" and not law.has_gap_law:
        raise InputError(f"sampler 'nearest' needs a law with a known gap CDF, got {type(law).__name__}")
    return sampler


def observe(
    law: KeyLaw,
    key: PRNGKeyArray,
    n: int | float,
    betas: Float[ArrayLike, "*B"],
    *,
    sampler: str = "exact",
    top_k: int = 5,
    chunk: int = DEFAULT_CHUNK,
    m: int | None = None,
) -> Observables:
    """Observables of one context of n keys from ``law`` by the resolved sampler ('exact' or
    'nearest'); pass the output of :func:`choose_sampler`. Jittable and vmappable over ``key``."""
    if sampler == "exact":
        return sampled_observables(law, key, n, betas, top_k=top_k, chunk=chunk)
    if sampler == "nearest":
        from ..observables import nearest_observables

        return nearest_observables(law, key, n, betas, top_k=top_k, **({} if m is None else {"m": m}))
    raise InputError(f"sampler must be 'exact' or 'nearest' here (resolve 'auto' first); got {sampler!r}")


@dataclasses.dataclass(frozen=True)
class Ensemble:
    """Per-seed observables (fields (S, B)) and their mean and standard error over seeds."""

    per_seed: Observables
    seeds: int

    def mean(self, name: str) -> Float[Array, " B"]:
        return jnp.mean(getattr(self.per_seed, name), axis=0)

    def se(self, name: str) -> Float[Array, " B"]:
        x = getattr(self.per_seed, name)
        if self.seeds < 2:
            return jnp.full(x.shape[1:], jnp.nan, x.dtype)
        return jnp.std(x, axis=0, ddof=1) / np.sqrt(self.seeds)

    def summary(self) -> dict[str, np.ndarray]:
        """{name: mean, name_se: se} for every observable, plus beta (host arrays)."""
        out = {"beta": np.asarray(self.per_seed.beta[0])}
        for name in OBSERVABLE_NAMES:
            out[name] = np.asarray(self.mean(name))
            out[name + "_se"] = np.asarray(self.se(name))
        return out


def ensemble(
    law: KeyLaw,
    key: PRNGKeyArray,
    n: int | float,
    betas: Float[ArrayLike, "*B"],
    *,
    seeds: int = 8,
    top_k: int = 5,
    chunk: int = DEFAULT_CHUNK,
    batch: int | None = None,
    progress=None,
    sampler: str = "auto",
    m: int | None = None,
    devices: int | None = None,
    checkpoint=None,
    cell_seeds: int | None = None,
) -> Ensemble:
    """Observables for ``seeds`` independent contexts of n keys from ``law``.

    ``sampler``: 'exact' (all n gaps, O(n)), 'nearest' (the m nearest exactly plus the bulk,
    O(m) whatever n: :mod:`phasejax.laws.nearest`; m defaults to min(256, n)) or 'auto'
    (:func:`choose_sampler`: nearest above 2^20 keys when the law has a gap CDF).
    Seeds are processed ``batch`` at a time with ``jax.vmap`` (default: all at once when
    the working set is small, else in groups), calling ``progress.update(k)`` after each.

    With ``devices`` (devices per process), a ``checkpoint`` (:class:`phasejax.runtime.checkpoint.CellStore`:
    cells of ``cell_seeds`` seeds, finished ones reloaded) or in a multi-process run, the seeds
    go through :func:`phasejax.runtime.devices.run_seeds` (``batch`` seeds per device per call);
    seed i still gets ``jax.random.split(key, seeds)[i]``, so the numbers are the same.
    """
    seeds = check_int("seeds", seeds, minimum=1)
    check_betas(betas)
    betas = jnp.atleast_1d(jnp.asarray(betas, jnp.result_type(float)))
    keys = jax.random.split(key, seeds)
    sampler = choose_sampler(law, n, sampler)
    if sampler == "nearest":
        from ..laws.nearest import DEFAULT_M, DEFAULT_NODES

        m = min(DEFAULT_M, n) if m is None else check_int("m", m, minimum=1)
        per_seed = m + 8 * DEFAULT_NODES  # (B, .) working set of one seed
    else:
        per_seed = min(chunk, n)
    if batch is None:
        budget = 2**26  # elements of the (seeds, B, chunk) working set per call
        batch = max(1, min(seeds, budget // max(1, betas.shape[0] * per_seed)))
    batch = check_int("batch", batch, minimum=1)
    one = lambda k: observe(law, k, n, betas, sampler=sampler, top_k=top_k, chunk=chunk, m=m)  # noqa: E731
    if devices is not None or checkpoint is not None or jax.process_count() > 1:
        from .devices import run_seeds

        per_seed = run_seeds(one, keys, devices=devices, batch=batch, checkpoint=checkpoint, cell_seeds=cell_seeds,
                             progress=progress)
        return Ensemble(per_seed=per_seed, seeds=seeds)
    run = jax.vmap(one)
    parts = []
    for start in range(0, seeds, batch):
        parts.append(run(keys[start : start + batch]))
        if progress is not None:
            jax.block_until_ready(parts[-1])
            progress.update(min(batch, seeds - start))
    per_seed = jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=0), *parts) if len(parts) > 1 else parts[0]
    return Ensemble(per_seed=per_seed, seeds=seeds)
