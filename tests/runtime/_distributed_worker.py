"""Helper process for tests/test_distributed.py (JAX must be configured before it is imported).

    python tests/_distributed_worker.py devices OUT.npz
        one process, 2 forced host devices: the observables of a small seed ensemble and the
        nearest gaps by the plain one-device path, and sharded over 1 and 2 devices.
    python tests/_distributed_worker.py process OUT.npz COORDINATOR NUM_PROCESSES PROCESS_ID
        one process of a jax.distributed run on CPU (one device each): the same ensemble,
        sharded over the global mesh.

    python tests/_distributed_worker.py cells OUT.npz FOLDER
        a resumable run (one cell per seed) into FOLDER/cells, for the kill / SIGTERM / SIGINT
        tests; exits 130 when a signal stopped it after a finished cell.

All write a .npz of arrays named <what>/<leaf index>.
"""

from __future__ import annotations

import os
import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
if MODE == "devices":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

N, SEEDS, M = 600, 5, 16
CELL_N, CELL_SEEDS = 300_000, 10


def cells_run(folder, n=CELL_N, seeds=CELL_SEEDS):
    """The resumable run of the kill/resume tests (also called in-process by the tests)."""
    from phasejax.laws import UniformSphere
    from phasejax.observables import sampled_observables
    from phasejax.runtime import CellStore, run_seeds

    law = UniformSphere(3)
    betas = jnp.geomspace(1.0, 1e4, 5)
    store = CellStore(folder, {"n": n, "seeds": seeds, "betas": np.asarray(betas), "test": "cells"})
    keys = jax.random.split(jax.random.key(11), seeds)
    return run_seeds(lambda k: sampled_observables(law, k, n, betas, top_k=3, chunk=2048), keys,
                     checkpoint=store, cell_seeds=1)


def workload():
    from phasejax.laws import UniformSphere
    from phasejax.observables import sampled_observables

    law = UniformSphere(3)
    betas = jnp.geomspace(1.0, 3e3, 6)
    keys = jax.random.split(jax.random.key(7), SEEDS)
    return law, betas, keys, (lambda k: sampled_observables(law, k, N, betas, top_k=3, chunk=256))


def flat(prefix, tree, out):
    for i, leaf in enumerate(jax.tree.leaves(tree)):
        out[f"{prefix}/{i}"] = np.asarray(leaf)


def main():
    from phasejax.runtime import devices as distributed

    out = {}
    if MODE == "devices":
        from phasejax.runtime import ensemble
        from phasejax.scaling import nearest_gap_samples

        law, betas, keys, fn = workload()
        assert jax.local_device_count() == 2, jax.devices()
        flat("plain", ensemble(law, jax.random.key(7), N, betas, seeds=SEEDS, top_k=3, chunk=256).per_seed, out)
        for k in (1, 2):
            flat(f"dev{k}", distributed.run_seeds(fn, keys, devices=k), out)
            flat(f"gaps_dev{k}", nearest_gap_samples(law, jax.random.key(3), N, M, seeds=SEEDS, devices=k), out)
        flat("gaps_plain", nearest_gap_samples(law, jax.random.key(3), N, M, seeds=SEEDS), out)
    elif MODE == "process":
        coordinator, nproc, pid = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        info = distributed.initialize(coordinator, nproc, pid, timeout_s=120)
        assert info["processes"] == nproc and info["devices"] == nproc, info
        law, betas, keys, fn = workload()
        flat("dist", distributed.run_seeds(fn, keys), out)
        from phasejax.scaling import nearest_gap_samples

        flat("gaps_dist", nearest_gap_samples(law, jax.random.key(3), N, M, seeds=SEEDS, devices=1), out)
    elif MODE == "cells":
        try:
            flat("cells", cells_run(sys.argv[3]), out)
        except KeyboardInterrupt as e:
            print(e, file=sys.stderr)
            raise SystemExit(130) from None
    else:
        raise SystemExit(f"unknown mode {MODE!r}")
    np.savez(sys.argv[2], **out)


if __name__ == "__main__":
    main()
