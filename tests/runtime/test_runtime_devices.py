"""Sharding over devices and processes (phasejax.runtime: run_seeds, shard_over_seeds, seed_mesh, initialize).

Device counts are fixed when JAX starts, so the multi-device and multi-process runs happen in
subprocesses (tests/runtime/_distributed_worker.py): one process with 2 forced host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=2), and two processes joined by
jax.distributed on 127.0.0.1 (gloo CPU collectives); both must equal the plain one-device run.
In this process: shard_over_seeds on one device against vmap, the device and jax.distributed
input errors, and run_seeds over cells against one block (and its resume).

Tolerance: ``RTOL`` and ``EXACT`` of tests/_subprocess.py (equal up to float reassociation; bit-identical
on CPU).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _subprocess import EXACT, RTOL, _finish, _free_port, _worker

from phasejax._checks import InputError
from phasejax.runtime import CellStore


def _leaves(z, prefix):
    n = len([k for k in z.files if k.startswith(prefix + "/")])
    return [z[f"{prefix}/{i}"] for i in range(n)]


def _same(a_list, b_list):
    assert len(a_list) == len(b_list) > 0
    for a, b in zip(a_list, b_list, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, rtol=RTOL, atol=0)
        if EXACT:
            np.testing.assert_array_equal(b, a)


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    """The worker's 'devices' run: plain one-device path and run_seeds over 1 and 2 devices."""
    path = tmp_path_factory.mktemp("devices") / "devices.npz"
    rc, out, err = _finish(_worker("devices", path))
    assert rc == 0, err[-3000:]
    return np.load(path)


def test_two_devices_equal_one_device(two_devices):
    z = two_devices
    plain = _leaves(z, "plain")
    assert len(plain) >= 10 and plain[0].shape[0] == 5  # every observable, 5 seeds
    _same(plain, _leaves(z, "dev1"))
    _same(plain, _leaves(z, "dev2"))
    _same(_leaves(z, "gaps_plain"), _leaves(z, "gaps_dev2"))
    _same(_leaves(z, "gaps_plain"), _leaves(z, "gaps_dev1"))


def test_two_processes_equal_one_process(two_devices, tmp_path):
    coordinator = f"127.0.0.1:{_free_port()}"
    procs = [_worker("process", tmp_path / f"p{i}.npz", coordinator, 2, i) for i in range(2)]
    results = [_finish(p, timeout=300) for p in procs]
    for rc, _, err in results:
        assert rc == 0, err[-3000:]
    for i in range(2):  # every process holds the whole result
        z = np.load(tmp_path / f"p{i}.npz")
        _same(_leaves(two_devices, "plain"), _leaves(z, "dist"))
        _same(_leaves(two_devices, "gaps_plain"), _leaves(z, "gaps_dist"))


def test_shard_over_seeds_one_device_pads_and_matches_vmap():
    from phasejax.runtime import SeedRunner, seed_mesh, shard_over_seeds

    keys = jax.random.split(jax.random.key(0), 5)
    f = lambda k: {"a": jax.random.normal(k, (3,)), "b": jax.random.uniform(k)}  # noqa: E731
    ref = jax.vmap(f)(keys)
    got = shard_over_seeds(f, keys, devices=1)
    np.testing.assert_array_equal(got["a"], ref["a"])
    np.testing.assert_array_equal(got["b"], ref["b"])
    raw = jax.random.key_data(keys)
    np.testing.assert_array_equal(shard_over_seeds(lambda k: jax.random.normal(jax.random.wrap_key_data(k)), raw),
                                  jax.vmap(lambda k: jax.random.normal(k))(keys))
    assert seed_mesh(1).shape == {"seed": 1}
    assert SeedRunner(f, devices=1).padded(5) == 5


def test_devices_and_distributed_errors():
    from phasejax.runtime import devices as distributed

    with pytest.raises(InputError, match="devices must be <="):
        distributed.seed_mesh(jax.local_device_count() + 1)
    with pytest.raises(InputError, match="devices"):
        distributed.seed_mesh(0)
    with pytest.raises(InputError, match="process_id must be < num_processes"):
        distributed.initialize("127.0.0.1:1", num_processes=2, process_id=2)
    with pytest.raises(InputError, match="host:port"):
        distributed.initialize("localhost", num_processes=2, process_id=0)


def test_run_seeds_cells_equal_one_block(tmp_path):
    from phasejax.runtime import run_seeds

    keys = jax.random.split(jax.random.key(2), 7)
    f = lambda k: jax.random.normal(k, (4,))  # noqa: E731
    store = CellStore(str(tmp_path), {"what": "unit"})
    a = run_seeds(f, keys, checkpoint=store, cell_seeds=3, batch=1)
    assert store.names() == ["seeds-00000000-00000003", "seeds-00000003-00000006", "seeds-00000006-00000007"]
    np.testing.assert_array_equal(a, jax.vmap(f)(keys))
    # resume: everything comes from the cells (a function that would fail if called)
    calls = []
    b = run_seeds(lambda k: (calls.append(1), f(k))[1], keys, checkpoint=CellStore(str(tmp_path), {"what": "unit"}),
                  cell_seeds=3)
    np.testing.assert_array_equal(a, b)
    assert len(calls) == 1  # traced once for the shapes (eval_shape), never run per cell
