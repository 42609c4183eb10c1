"""Timing shared by the benchmarks: the best of ``repeats`` calls after an untimed warm-up (compilation)."""

from __future__ import annotations

import time

import jax


def best_time(fn, repeats: int) -> float:
    """min over ``repeats`` calls of the wall time of ``fn()``, waiting for device results; one warm-up call first."""
    jax.block_until_ready(fn())  # compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)
