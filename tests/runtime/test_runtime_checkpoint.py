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


ROOT = HERE.parents[1]  # the repository


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
