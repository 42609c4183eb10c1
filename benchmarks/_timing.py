"""Timing and the machine's limits, shared by the benchmarks.

* :func:`best_time`: the best of ``repeats`` calls after an untimed warm-up (compilation).
* :func:`exp_rate_in_cache`: XLA's exp throughput with nothing streamed from memory: a ``lax.fori_loop`` over
  one L2-sized block (64K float32 = 256 KiB), each pass ``acc += exp(-s_i x)``, so the work per element is
  one exp plus a multiply and an add (the streaming pass does the same per (beta, key) plus a few FMAs).
* :func:`memory_bandwidth`: bytes per second of a sum over (read) and a copy of (read + write) a 512 MiB array,
  far beyond the last-level cache.

Both limits are measured in the same run as the pass they normalise, on the same device and threads, so the
ratios printed by the benchmarks ("fraction of in-cache exp rate", "fraction of bandwidth") are honest.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def best_time(fn, repeats: int) -> float:
    """min over ``repeats`` calls of the wall time of ``fn()``, waiting for device results; one warm-up call first."""
    jax.block_until_ready(fn())  # compile + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def exp_rate_in_cache(*, size: int = 1 << 16, iters: int = 2000, dtype=jnp.float32, repeats: int = 5,
                      device=None) -> float:
    """exp() evaluations per second on one cache-resident block (``size`` elements, ``iters`` passes).

    The scale s_i = 1 + 1e-4 i changes every pass, so no pass can be hoisted; the block and the accumulator
    stay in L2 (CPU) or in registers/shared memory (GPU). On a GPU use a larger ``size`` (e.g. 1 << 24) so
    that the whole device is busy: the block then lives in L2 or HBM but each element is reused ``iters``
    times, which keeps the loop compute-bound."""
    x = jax.device_put(jnp.linspace(0.0, 1.0, size, dtype=dtype), device)

    @jax.jit
    def run(x):
        def body(i, acc):
            s = 1.0 + 1e-4 * i.astype(dtype)
            return acc + jnp.exp(-s * x)

        return jax.lax.fori_loop(0, iters, body, jnp.zeros_like(x))

    t = best_time(lambda: run(x), repeats)
    return size * iters / t


def memory_bandwidth(*, nbytes: int = 1 << 29, dtype=jnp.float32, repeats: int = 5, device=None) -> dict:
    """Memory bandwidth in bytes/s: {'read': sum over an ``nbytes`` array, 'copy': read + write of it}."""
    n = nbytes // jnp.dtype(dtype).itemsize
    x = jax.device_put(jnp.ones((n,), dtype), device)
    total = jax.jit(jnp.sum)
    t_read = best_time(lambda: total(x), repeats)
    # read n, write n into the donated buffer (a fresh output would time the OS's page faults, not the memory)
    copy = jax.jit(lambda x: x + 1, donate_argnums=0)
    box = [x]

    def step():
        box[0] = copy(box[0])
        return box[0]

    t_copy = best_time(step, repeats)
    return {"read": n * jnp.dtype(dtype).itemsize / t_read, "copy": 2 * n * jnp.dtype(dtype).itemsize / t_copy}


def limits(*, repeats: int = 5, device=None, gpu: bool | None = None) -> dict:
    """The in-cache float32 exp rate (per s) and the memory bandwidth (bytes/s: read, copy, and the larger),
    measured now."""
    gpu = (jax.devices()[0].platform != "cpu") if gpu is None else gpu
    size = (1 << 24) if gpu else (1 << 16)
    iters = 4000 if gpu else 2000
    rate = exp_rate_in_cache(size=size, iters=iters, repeats=repeats, device=device)
    bw = memory_bandwidth(nbytes=(1 << 31) if gpu else (1 << 29), repeats=repeats, device=device)
    return {"exp_per_s": rate, "bandwidth_read_Bps": bw["read"], "bandwidth_copy_Bps": bw["copy"],
            "bandwidth_Bps": max(bw["read"], bw["copy"])}


def best_limits(*measured: dict) -> dict:
    """The best (highest) of several :func:`limits` measurements, field by field: on a shared machine the limit
    is what the hardware reached at its least disturbed moment (measure before and after the timed work)."""
    return {k: max(m[k] for m in measured) for k in measured[0]}
