"""Per-seed work sharded over every device of every process, with JAX's own runtime.

One process uses all of its local devices; many processes (GPU cluster, TPU pod, or two
CPU processes on localhost) join with :func:`initialize` (``jax.distributed.initialize``)
and share one global mesh. Nothing here is an engine of its own: a seed axis of PRNG keys
is laid out over a 1-D :class:`jax.sharding.Mesh` named ``"seed"`` with
``NamedSharding(mesh, PartitionSpec("seed"))`` and every device runs ``jax.vmap(fn)`` on
its block under :func:`jax.shard_map` (no cross-device communication inside).

Shape contract:

* ``fn(key) -> pytree`` maps ONE PRNG key (typed ``jax.random.key`` or raw uint32 (2,))
  to a pytree of arrays (any shapes); with ``batched=True``, ``fn(keys (s,)) -> pytree``
  whose leaves have leading axis s.
* ``keys`` has shape (S,) (typed) or (S, 2) (raw); the result has the pytree of ``fn``
  with a leading axis S on every leaf: leaf i is ``fn(keys[i])``.
* The seed axis is padded to a multiple of the mesh size (copies of the last key) and
  the padding is dropped. In a multi-process run every process builds the same keys
  (they are cheap), feeds only the shards of its own devices
  (``jax.make_array_from_callback``) and receives the whole result
  (``multihost_utils.process_allgather``), so every process holds identical host arrays.

Equality: the numbers of seed i depend only on ``keys[i]``, so a run over K devices or P
processes equals the one-device run with the same seeds; XLA may fuse a differently sized
batch differently, so the contract is equality up to float reassociation
(``rtol = 1e-5`` in float32, ``1e-12`` in float64); on the CPU backend the tests see
bit-identical results.
"""

from __future__ import annotations

import contextlib
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .._checks import InputError, check_int

__all__ = [
    "initialize",
    "is_multiprocess",
    "seed_mesh",
    "mesh_info",
    "SeedRunner",
    "shard_over_seeds",
    "run_seeds",
    "is_writer",
]


AXIS = "seed"


_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text in (None, ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"environment variable {name} must be an integer, got {text!r}") from None


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids=None,
    timeout_s: int = 300,
) -> dict:
    """Join a multi-process JAX run (``jax.distributed.initialize``); call before any JAX computation.

    Each of the three settings is taken from, in order: the argument; the environment
    variables ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0), ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID``; and finally JAX's cluster auto-detection, which fills whatever is
    still unset on SLURM (``srun``), Open MPI (``mpirun``), Cloud TPU pods and GKE/Kubernetes
    jobs. On CPU the cross-process collectives are gloo (JAX's default,
    ``jax_cpu_collectives_implementation``). Calling it again in an initialised process is a
    no-op. Returns :func:`mesh_info` of the default (all-device) mesh.

    On each of two hosts (process 0 listening on 10.0.0.1:1234), before any other JAX call::

        initialize("10.0.0.1:1234", num_processes=2, process_id=0)   # process_id=1 on the other host
        # -> {'processes': 2, 'process_index': 0, 'devices': 2, ...}
    """
    if jax.distributed.is_initialized():
        return mesh_info()
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None:
        num_processes = _env_int("JAX_NUM_PROCESSES")
    if process_id is None:
        process_id = _env_int("JAX_PROCESS_ID")
    if num_processes is not None:
        num_processes = check_int("num_processes", num_processes, minimum=1)
    if process_id is not None:
        process_id = check_int("process_id", process_id, minimum=0)
        if num_processes is not None and process_id >= num_processes:
            raise InputError(f"process_id must be < num_processes ({num_processes}), got {process_id}")
    if coordinator_address is not None and ":" not in coordinator_address:
        raise InputError(f"coordinator_address must be host:port, got {coordinator_address!r}")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id,
            local_device_ids=local_device_ids, initialization_timeout=timeout_s,
        )
    except ValueError as e:
        raise InputError(
            f"distributed: cannot start a multi-process run ({e}); pass --coordinator HOST:PORT, "
            "--num-processes and --process-id, or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
            "JAX_PROCESS_ID, or launch under SLURM / Open MPI / a TPU pod where JAX detects them"
        ) from None
    except RuntimeError as e:
        if "before" in str(e).lower():
            raise InputError(f"distributed: initialize must run before any JAX computation ({e})") from None
        raise
    return mesh_info()


def is_multiprocess() -> bool:
    """True when this process is one of several (``jax.process_count() > 1``)."""
    return jax.process_count() > 1


def _devices(devices: int | None):
    """The mesh devices: the first ``devices`` local devices of every process (all when None)."""
    local = jax.local_device_count()
    if devices is None:
        k = local
    else:
        k = check_int("devices", devices, minimum=1)
        if k > local:
            raise InputError(
                f"devices must be <= the {local} local {jax.default_backend()} device(s) of this process, got {k}"
            )
    chosen = []
    for p in range(jax.process_count()):
        mine = sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)
        chosen.extend(mine[:k])
    return chosen


@functools.cache
def _mesh(devices: int | None) -> Mesh:
    return Mesh(np.array(_devices(devices)), (AXIS,))


def seed_mesh(devices: int | None = None) -> Mesh:
    """A 1-D mesh named ``"seed"`` over the first ``devices`` local devices of every process.

    ``devices=None`` uses all of them. In one process that is ``jax.local_devices()[:devices]``;
    after :func:`initialize` it spans all processes (``devices`` per process).

    >>> dict(seed_mesh(1).shape)
    {'seed': 1}
    """
    return _mesh(None if devices is None else check_int("devices", devices, minimum=1))


def mesh_info(devices: int | None = None) -> dict:
    """{'processes', 'process_index', 'devices' (mesh size), 'local_devices', 'platform', 'device_kinds'}."""
    mesh = seed_mesh(devices)
    devs = list(mesh.devices.flat)
    return {
        "processes": jax.process_count(),
        "process_index": jax.process_index(),
        "devices": len(devs),
        "local_devices": sum(d.process_index == jax.process_index() for d in devs),
        "platform": devs[0].platform,
        "device_kinds": sorted({d.device_kind for d in devs}),
    }


def _is_typed_key(keys) -> bool:
    return jnp.issubdtype(getattr(keys, "dtype", None), jax.dtypes.prng_key)


class SeedRunner:
    """``runner(keys)`` = ``fn`` over a seed axis, sharded over :func:`seed_mesh` (compiled once per size).

    Build it once and call it on many key blocks: the jitted ``shard_map`` is reused for
    every block of the same padded size. See the module docstring for the shape contract.
    Returns jax arrays laid out over the mesh (one process), or host NumPy arrays holding the
    whole result (several processes); ``pad_to`` pads a short block up to a fixed size so
    that blocks of varying length share one compilation.

    >>> r = SeedRunner(lambda k: jax.random.normal(k, (3,)), devices=1)
    >>> r(jax.random.split(jax.random.key(0), 5)).shape
    (5, 3)
    """

    def __init__(self, fn, *, devices: int | None = None, batched: bool = False):
        self.fn = fn
        self.batched = bool(batched)
        self.mesh = seed_mesh(devices)
        self.size = self.mesh.size
        self.sharding = NamedSharding(self.mesh, P(AXIS))
        self._compiled = {}

    def _program(self, impl):
        if impl not in self._compiled:
            per = self.fn if self.batched else jax.vmap(self.fn)

            def block(kd):
                keys = kd if impl is None else jax.random.wrap_key_data(kd, impl=impl)
                return per(keys)

            self._compiled[impl] = jax.jit(
                jax.shard_map(block, mesh=self.mesh, in_specs=P(AXIS), out_specs=P(AXIS), check_vma=False)
            )
        return self._compiled[impl]

    def padded(self, s: int) -> int:
        """The seed count a call of s seeds runs: s rounded up to a multiple of the mesh size."""
        return -(-s // self.size) * self.size

    def __call__(self, keys, *, pad_to: int | None = None):
        typed = _is_typed_key(keys)
        impl = jax.random.key_impl(keys) if typed else None
        kd = np.asarray(jax.random.key_data(keys) if typed else keys)
        if kd.ndim < 1 or kd.shape[0] < 1:
            raise InputError(f"keys must have a leading seed axis of length >= 1, got shape {kd.shape}")
        s = kd.shape[0]
        total = self.padded(max(s, pad_to or 0))
        if total > s:
            kd = np.concatenate([kd, np.repeat(kd[-1:], total - s, axis=0)], axis=0)
        if is_multiprocess():
            arr = jax.make_array_from_callback(kd.shape, self.sharding, lambda idx: kd[idx])
            out = self._program(impl)(arr)
            from jax.experimental import multihost_utils

            out = multihost_utils.process_allgather(out, tiled=True)
            return jax.tree.map(lambda x: np.asarray(x)[:s], out)
        out = self._program(impl)(jax.device_put(kd, self.sharding))
        return jax.tree.map(lambda x: x[:s], out)


def shard_over_seeds(fn, keys, *, devices: int | None = None, batched: bool = False):
    """``jax.vmap(fn)(keys)``, with the seed axis sharded over ``devices`` devices of every process.

    Leaf i of the result is ``fn(keys[i])``, equal to the one-device result up to float
    reassociation (see the module docstring). For many blocks build a :class:`SeedRunner`.

    >>> keys = jax.random.split(jax.random.key(0), 6)
    >>> x = shard_over_seeds(lambda k: jax.random.uniform(k, (4,)), keys)
    >>> x.shape
    (6, 4)
    """
    return SeedRunner(fn, devices=devices, batched=batched)(keys)


def _host(tree):
    return jax.tree.map(np.asarray, tree)


def _agree_all(flags: np.ndarray) -> np.ndarray:
    """Element-wise AND of a boolean vector over processes (identity in one process)."""
    flags = np.asarray(flags, bool)
    if not is_multiprocess():
        return flags
    from jax.experimental import multihost_utils

    every = np.asarray(multihost_utils.process_allgather(flags.astype(np.int32)))
    return np.all(every.reshape(jax.process_count(), -1) > 0, axis=0).reshape(flags.shape)


def run_seeds(
    fn,
    keys,
    *,
    devices: int | None = None,
    batch: int | None = None,
    batched: bool = False,
    checkpoint=None,
    cell_seeds: int | None = None,
    prefix: str = "seeds",
    progress=None,
):
    """``fn`` over the seed axis of ``keys`` in blocks, sharded, optionally resumable from cells.

    Args:
      fn: one key -> pytree (or a batched function with ``batched=True``).
      keys: (S,) typed keys or (S, 2) raw keys; seed i always gets ``keys[i]``.
      devices: devices per process (None: all local devices).
      batch: seeds per device per call (bounds memory); default all of a cell at once.
      checkpoint: a :class:`phasejax.runtime.checkpoint.CellStore`; the seed axis is cut into cells
        of ``cell_seeds`` seeds named ``f"{prefix}-{start}-{stop}"``; finished cells are
        loaded, the rest computed and saved atomically as they finish. SIGINT/SIGTERM stop
        after the current cell (:class:`phasejax.runtime.checkpoint.Interrupted`).
      progress: object with ``update(k, note="")``, called per finished block.

    Returns the pytree of ``fn`` with leading axis S on every leaf (host-backed
    ``jnp`` arrays), exactly the concatenation of the cells.
    """
    from .signals import deferred_signals

    s = int(keys.shape[0])
    runner = SeedRunner(fn, devices=devices, batched=batched)
    cell = s if cell_seeds is None else check_int("cell_seeds", cell_seeds, minimum=1)
    cell_len = min(cell, s)
    per_call = runner.padded(cell_len if batch is None else min(check_int("batch", batch, minimum=1) * runner.size,
                                                                cell_len))
    bounds = [(a, min(a + cell, s)) for a in range(0, s, cell)]
    names = [f"{prefix}-{a:08d}-{b:08d}" for a, b in bounds]
    one = keys[:1]
    shape = jax.eval_shape(fn if batched else jax.vmap(fn), one)
    treedef = jax.tree.structure(shape)
    have = np.array([checkpoint is not None and checkpoint.has(nm) for nm in names], bool)
    have = _agree_all(have)
    parts = []
    with deferred_signals() if checkpoint is not None else contextlib.nullcontext() as stop:
        for (a, b), nm, done in zip(bounds, names, have, strict=True):
            if done:
                leaves = checkpoint.load(nm)
                want = [(b - a, *x.shape[1:]) for x in jax.tree.leaves(shape)]
                if len(leaves) != len(want) or any(tuple(x.shape) != w for x, w in zip(leaves, want, strict=True)):
                    raise InputError(f"checkpoint cell {nm!r} in {checkpoint.folder} has the wrong shapes "
                             f"{[x.shape for x in leaves]}, expected {want}; remove it or use --no-resume")
                parts.append(jax.tree.unflatten(treedef, leaves))
                if progress is not None:
                    progress.update(b - a, "(from checkpoint)")
                continue
            blocks = []
            for c in range(a, b, per_call):
                k = keys[c : min(c + per_call, b)]
                blocks.append(_host(runner(k, pad_to=per_call)))
                if progress is not None:
                    progress.update(min(per_call, b - c))
            res = jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *blocks) if len(blocks) > 1 else blocks[0]
            if checkpoint is not None:
                checkpoint.save(nm, jax.tree.leaves(res))
            parts.append(res)
            if checkpoint is not None and _stop_requested(stop):
                from .signals import Interrupted

                raise Interrupted(stop.signum, checkpoint.folder)
    out = jax.tree.map(lambda *xs: np.concatenate(xs, axis=0), *parts) if len(parts) > 1 else parts[0]
    return jax.tree.map(jnp.asarray, out)


def _stop_requested(stop) -> bool:
    """Whether any process got SIGINT/SIGTERM (all processes stop at the same cell)."""
    flag = np.array([stop.signum is None], bool)
    return not bool(_agree_all(flag)[0])


def is_writer() -> bool:
    """Whether this process writes the final result files (process 0)."""
    return jax.process_index() == 0
