"""Resumable cells (phasejax.runtime: CellStore, config_hash, deferred_signals).

A run's cells are tied to its config (a different config into the same folder is refused, --no-resume
starts over); a SIGTERM / SIGINT is deferred until the current cell is saved. The stop tests kill or
signal a subprocess run (the 'cells' run of tests/runtime/_distributed_worker.py) mid-way and resume it
here: every cell file left is complete, and the resumed result equals the uninterrupted one exactly
(same code path). Then verified cells and the write lock (issue 17): cells of another run, damaged or
non-finite cells are reported and recomputed, and a second writer of the same folder is refused.
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
from _subprocess import WORKER, _finish, _worker

from phasejax._checks import InputError
from phasejax.runtime import CellStore, config_hash, deferred_signals


def _w():
    sys.path.insert(0, str(WORKER.parent))
    try:
        import _distributed_worker
    finally:
        sys.path.remove(str(WORKER.parent))
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


# ---------------------------------------------------------------- verified cells and the write lock (issue 17)

CFG_A, CFG_B = {"n": 1000, "seeds": 4}, {"n": 10000, "seeds": 4}


def _cell(store, name, value):
    store.save(name, [np.full(3, value), np.arange(2)])
    return store.path(name)


def test_cells_of_another_run_are_not_used_even_without_the_manifest(tmp_path):
    a = CellStore(str(tmp_path), CFG_A)
    _cell(a, "c0", 1.0)
    a.close()
    os.remove(tmp_path / "cells" / "manifest.json")  # the case: then another config into the same --out
    msgs = []
    b = CellStore(str(tmp_path), CFG_B, report=msgs.append)
    assert not b.has("c0")  # n = 1e4 must never get the n = 1e3 numbers
    assert "belongs to another run" in msgs[0] and not os.path.exists(b.path("c0"))
    with open(tmp_path / "cells" / "manifest.json", "w") as f:
        f.write("{not json")  # a corrupt manifest is the same as none
    c = CellStore(str(tmp_path), CFG_A)
    assert not c.has("c0")


@pytest.mark.parametrize("damage", ["truncated", "empty", "bad_crc", "nan", "no_hash"])
def test_damaged_cells_are_reported_and_recomputed(tmp_path, damage):
    store = CellStore(str(tmp_path), CFG_A)
    path = _cell(store, "c0", 2.0)
    raw = open(path, "rb").read()
    if damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "empty":
        raw = b""
    elif damage == "bad_crc":  # flip one byte of the first leaf's data (the zip's CRC no longer matches)
        i = raw.index(np.full(3, 2.0).tobytes())
        raw = raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:]
    with open(path, "wb") as f:
        if damage == "nan":  # a well-formed cell of this run, with its own valid checksum, holding NaN
            from phasejax.runtime.checkpoint import _leaves_sha256

            leaves = [np.full(3, np.nan), np.arange(2)]
            np.savez(f, *leaves, config_hash=np.asarray(store.hash), sha256=np.asarray(_leaves_sha256(leaves)))
        elif damage == "no_hash":
            np.savez(f, np.full(3, 2.0), np.arange(2))
        else:
            f.write(raw)
    msgs = []
    again = CellStore(str(tmp_path), CFG_A, report=msgs.append)
    assert not again.has("c0") and len(msgs) == 1 and str(path) in msgs[0] and "recomputing" in msgs[0]
    assert not os.path.exists(path)
    _cell(again, "c0", 2.0)
    assert again.has("c0") and again.load("c0")[0].tolist() == [2.0, 2.0, 2.0]


def test_checksum_is_verified_not_only_the_zip(tmp_path):
    store = CellStore(str(tmp_path), CFG_A)
    path = _cell(store, "c0", 3.0)
    with np.load(path) as z:  # rewrite a valid zip whose leaves no longer match the stored sha256
        parts = {k: z[k] for k in z.files}
    parts["arr_0"] = parts["arr_0"] + 1
    np.savez(path, **parts)
    msgs = []
    assert not CellStore(str(tmp_path), CFG_A, report=msgs.append).has("c0") and "checksum" in msgs[0]


def test_non_finite_results_are_never_saved(tmp_path):
    store = CellStore(str(tmp_path), CFG_A)
    with pytest.raises(InputError, match="non-finite"):
        store.save("c0", [np.array([1.0, np.inf])])
    assert not os.path.exists(store.path("c0"))


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    os.makedirs(tmp_path / "cells")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(tmp_path / 'cells' / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print('held', flush=True)\n"
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=rf"in use by process {holder.pid} "):
            CellStore(str(tmp_path), CFG_A, resume=False)  # --no-resume must not wipe a folder someone writes
        from phasejax import cli

        rc = cli.main(["sweep", "--n", "100", "--seeds", "2", "--beta-points", "3", "--quiet", "--out",
                       str(tmp_path)])
        assert rc == 2
    finally:
        holder.kill()
        holder.wait()
    s = CellStore(str(tmp_path), CFG_A)  # the holder died: the OS released its lock, nothing blocks a rerun
    assert open(tmp_path / "cells" / ".lock").read().strip() == str(os.getpid())
    s.close()
    assert open(tmp_path / "cells" / ".lock").read() == ""


def test_lock_is_reentrant_within_a_process_and_released_on_close(tmp_path):
    a = CellStore(str(tmp_path), CFG_A)
    b = CellStore(str(tmp_path), CFG_A)  # same process (a notebook rerunning a cell): allowed
    a.close()
    b.close()
    import fcntl

    fd = os.open(str(tmp_path / "cells" / ".lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    finally:
        os.close(fd)
