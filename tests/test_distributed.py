"""Sharding over devices and processes, and resumable cells (phasejax.distributed, phasejax.checkpoint).

Device counts are fixed when JAX starts, so the multi-device and multi-process runs happen in
subprocesses (tests/_distributed_worker.py): one process with 2 forced host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=2), and two processes joined by
jax.distributed on 127.0.0.1 (gloo CPU collectives). The kill / signal tests stop a
subprocess run mid-way and resume it here.

Tolerance: seed i depends only on key i, so the contract is equality up to float
reassociation (rtol 1e-5 in float32); on CPU the results are bit-identical, which is asserted
too (``EXACT``) so that a change in that shows up.
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from phasejax._checks import InputError
from phasejax.runtime import CellStore, config_hash, deferred_signals

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_distributed_worker.py"
ROOT = HERE.parent
RTOL = 1e-5
EXACT = True  # CPU: sharded == one device bit for bit


def _env(**extra):
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra)
    return env


def _worker(*args, timeout=300, **popen):
    return subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], env=_env(), cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _finish(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


# --------------------------------------------------------------------------- in-process units


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


def test_config_mismatch_is_refused(tmp_path):
    CellStore(str(tmp_path), {"n": 100, "seeds": 4})
    with pytest.raises(InputError, match=r"different run .*differing settings: n"):
        CellStore(str(tmp_path), {"n": 200, "seeds": 4})
    # --no-resume: start over under the new config
    s = CellStore(str(tmp_path), {"n": 200, "seeds": 4}, resume=False)
    assert s.names() == []
    CellStore(str(tmp_path), {"n": 200, "seeds": 4})  # now matches
    assert config_hash({"a": 1, "b": [1.5]}) == config_hash({"b": [1.5], "a": 1})


def test_deferred_signal_waits_for_the_cell():
    with deferred_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.signum == signal.SIGTERM  # recorded, not raised
    with pytest.raises(KeyboardInterrupt), deferred_signals():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # the second one stops at once
        time.sleep(0.05)


# --------------------------------------------------------------------------- kill, signals, resume


def _w():
    sys.path.insert(0, str(HERE))
    try:
        import _distributed_worker
    finally:
        sys.path.remove(str(HERE))
    return _distributed_worker


def _cells_run(folder):
    return _w().cells_run(str(folder))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return [np.asarray(x) for x in jax.tree.leaves(_cells_run(tmp_path_factory.mktemp("full")))]


def _start_and_stop(folder, how, wait_cells=1, timeout=240):
    proc = _worker("cells", Path(folder) / "unused.npz", folder)
    pattern = os.path.join(folder, "cells", "seeds-*.npz")
    t0 = time.time()
    while len(glob.glob(pattern)) < wait_cells and proc.poll() is None:
        assert time.time() - t0 < timeout, "no cell file appeared"
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(how)
    rc, _, err = _finish(proc)
    return rc, err


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM,
                                 pytest.param(signal.SIGINT, marks=pytest.mark.slow)], ids=["kill", "term", "int"])
def test_stop_then_resume_equals_uninterrupted(tmp_path, how, uninterrupted):
    CELL_SEEDS = _w().CELL_SEEDS  # noqa: N806

    rc, err = _start_and_stop(tmp_path, how)
    cells = sorted(glob.glob(str(tmp_path / "cells" / "*.npz")))
    leftovers = [p for p in os.listdir(tmp_path / "cells") if p.startswith(".tmp-")]
    if rc == 0:  # finished before the signal landed (a very fast machine): nothing to resume
        assert len(cells) == CELL_SEEDS
    elif how == signal.SIGKILL:
        assert rc == -signal.SIGKILL
    else:  # the current cell was finished and saved, then exit 130 with a resume hint
        assert rc == 130, err[-2000:]
        assert "rerun with the same --out to resume" in err
        assert not leftovers
    assert 1 <= len(cells) <= CELL_SEEDS
    for p in cells:  # every cell file present is complete
        with np.load(p) as z:
            assert z["arr_0"].shape[0] == 1
    t0 = time.perf_counter()
    resumed = [np.asarray(x) for x in jax.tree.leaves(_cells_run(tmp_path))]
    print(f"resume of {CELL_SEEDS - len(cells)} cells: {time.perf_counter() - t0:.1f} s")
    assert not [p for p in os.listdir(tmp_path / "cells") if p.startswith(".tmp-")]
    for a, b in zip(uninterrupted, resumed, strict=True):
        np.testing.assert_array_equal(b, a)  # same code path: exactly equal


# --------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_scaling_cli_resumes_and_refuses_a_different_config(tmp_path, capsys):
    import json

    from phasejax import cli

    argv = ["scaling", "--n-min", "100", "--n-max", "300", "--n-points", "2", "--seeds", "8", "--grid-points", "5",
            "--cell-seeds", "4", "--devices", "1", "--json", "--quiet", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    cells = sorted(os.listdir(tmp_path / "cells"))
    m0, m1 = first["m"]  # cells are named n<index>-m<m>-seeds-<start>-<stop> (m: nearest gaps kept per seed)
    assert cells == ["manifest.json", f"n000-m{m0}-seeds-00000000-00000004.npz",
                     f"n000-m{m0}-seeds-00000004-00000008.npz", f"n001-m{m1}-seeds-00000000-00000004.npz",
                     f"n001-m{m1}-seeds-00000004-00000008.npz"]
    os.remove(tmp_path / "cells" / cells[-1])  # as if stopped before the last cell
    assert cli.main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["beta_peak"] == first["beta_peak"] and again["parallel"]["devices"] == 1
    assert cli.main([*argv[:8], "16", *argv[9:]]) == 2  # --seeds 16 into the same --out
    err = capsys.readouterr().err.strip()
    assert "holds cells of a different run" in err and "seeds" in err and len(err.splitlines()) == 1


def test_sweep_cli_resumes_identically_and_refuses_a_different_config(tmp_path, capsys):
    from phasejax import cli
    from phasejax.runtime import load_dataset

    argv = ["sweep", "--n", "1000", "--seeds", "4", "--beta-points", "5", "--cell-seeds", "2", "--devices", "1",
            "--quiet", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    first = load_dataset(str(tmp_path / "sweep.nc"))
    assert sorted(os.listdir(tmp_path / "cells")) == ["manifest.json", "seeds-00000000-00000002.npz",
                                                      "seeds-00000002-00000004.npz"]
    assert first.attrs["run"]["parallel"]["devices"] == 1 and first.attrs["provenance"]["git_commit"] is not None
    os.remove(tmp_path / "cells" / "seeds-00000002-00000004.npz")  # as if killed during the last cell
    assert cli.main(argv) == 0
    again = load_dataset(str(tmp_path / "sweep.nc"))
    for name in ("max_weight", "entropy", "effective_keys"):
        np.testing.assert_array_equal(again[name].values, first[name].values)
    capsys.readouterr()
    assert cli.main([*argv, "--top-k", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds cells of a different run" in err and "top_k" in err and len(err.splitlines()) == 1
    assert cli.main([*argv, "--top-k", "3", "--no-resume"]) == 0


@pytest.mark.slow
def test_sweep_cli_two_processes_equal_one_process(tmp_path):
    """`phasejax sweep --coordinator --num-processes --process-id`: process 0 writes sweep.nc, equal to one process."""
    from phasejax import cli
    from phasejax.runtime import load_dataset

    common = ["sweep", "--n", "1000", "--seeds", "5", "--beta-points", "5", "--cell-seeds", "3", "--quiet"]
    coordinator = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, "-m", "phasejax.cli", *common, "--out", str(tmp_path / f"p{i}"),
                               "--coordinator", coordinator, "--num-processes", "2", "--process-id", str(i)],
                              env=_env(), cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        rc, out, err = _finish(p)
        assert rc == 0, err[-3000:]
    assert cli.main([*common, "--out", str(tmp_path / "one")]) == 0
    one = load_dataset(str(tmp_path / "one" / "sweep.nc"))
    two = load_dataset(str(tmp_path / "p0" / "sweep.nc"))
    assert two.attrs["run"]["parallel"]["processes"] == 2 and two.attrs["run"]["parallel"]["devices"] == 2
    assert not (tmp_path / "p1" / "sweep.nc").exists()  # only process 0 writes results
    assert sorted(os.listdir(tmp_path / "p1" / "cells")) == sorted(os.listdir(tmp_path / "p0" / "cells"))
    for name in ("max_weight", "entropy", "effective_keys", "top_k_mass"):
        np.testing.assert_allclose(two[name].values, one[name].values, rtol=RTOL, atol=0)
        if EXACT:
            np.testing.assert_array_equal(two[name].values, one[name].values)
