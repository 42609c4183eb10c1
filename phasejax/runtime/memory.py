"""Up-front memory checks: refuse a size that would exhaust memory before anything is compiled.

The estimate is bytes from array shapes (the caller knows its largest live arrays); the budget is the
memory available now (``/proc/meminfo`` MemAvailable, else physical pages x page size), plus, when an
accelerator is the default device, its memory limit from ``memory_stats()``. A refusal is an
:class:`~phasejax._checks.InputError` that names the estimate, the budget and the flag that lowers it.
"""

from __future__ import annotations

import os

from .._checks import InputError

__all__ = ["available_bytes", "check_memory", "check_ensemble_memory", "format_bytes"]

FRACTION = 0.5  # use at most this share of what is available (XLA keeps temporaries besides the named arrays)


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units.

    >>> format_bytes(3 * 2**30)
    '3.0 GiB'
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def available_bytes() -> int:
    """Host memory available now: MemAvailable of /proc/meminfo, else SC_PHYS_PAGES x SC_PAGE_SIZE; and the
    default accelerator's ``bytes_limit`` when it reports one (the smaller of the two).

    >>> available_bytes() > 0
    True
    """
    host = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    host = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if host is None:
        try:
            host = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            host = 2**34
    try:
        import jax

        dev = jax.devices()[0]
        if dev.platform != "cpu":
            stats = dev.memory_stats() or {}
            limit = stats.get("bytes_limit")
            if limit:
                return int(min(host, limit - stats.get("bytes_in_use", 0)))
    except Exception:  # noqa: BLE001 -- no device information: the host figure stands
        pass
    return int(host)


def check_memory(estimate: float, flag: str, what: str = "the largest arrays") -> None:
    """Refuse ``estimate`` bytes if it exceeds :data:`FRACTION` of :func:`available_bytes`.

    >>> check_memory(1024, "--seeds")
    >>> try:
    ...     check_memory(2.0**70, "--seeds")
    ... except InputError as e:
    ...     print(str(e).split(":")[0])
    --seeds
    """
    budget = FRACTION * available_bytes()
    if not estimate <= budget:
        raise InputError(f"{flag}: {what} would take about {format_bytes(estimate)}, more than the "
                         f"{format_bytes(budget)} this run may use ({FRACTION:.0%} of the memory available); "
                         f"lower {flag}")


def check_ensemble_memory(seeds: int, n_betas: int, per_seed: int, itemsize: int, *, size_flag: str,
                          seeds_flag: str = "--seeds", betas_flag: str = "--beta-points") -> float:
    """Refuse a seed ensemble whose arrays would not fit; returns the estimate in bytes.

    Working set of one vmapped seed: (B, per_seed) elements, counted 4 times (the scan's temporaries); the
    per-seed results: 16 numbers per (seed, beta); the seed keys: 8 bytes each. The flag named is the one
    whose term dominates (``size_flag`` for the working set: --chunk or --nearest-m).

    >>> check_ensemble_memory(8, 64, 32768, 4, size_flag="--chunk") < 2**30
    True
    """
    work = 4.0 * n_betas * per_seed * itemsize
    results = 16.0 * seeds * n_betas * itemsize + 8.0 * seeds
    if work >= results:
        flag = size_flag if per_seed >= n_betas else betas_flag
        what = f"a working set of {n_betas} betas x {per_seed} keys per seed"
    else:
        flag = seeds_flag if seeds >= n_betas else betas_flag
        what = f"the results of {seeds} seeds x {n_betas} betas"
    check_memory(work + results, flag, what)
    return work + results
