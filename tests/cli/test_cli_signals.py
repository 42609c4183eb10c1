"""SIGINT/SIGTERM at any moment of a ``phasejax`` run exit 130 (issue 17): during start-up at once (the console
script's handlers are installed before JAX is imported), during the work after a clean save. Subprocesses run the
console script's entry point, ``_phasejax_cli.main``, exactly as the installed ``phasejax`` command does."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start(out, *extra):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("XLA_FLAGS", None)
    argv = ["sweep", "--n", "100000", "--seeds", "64", "--beta-points", "8", "--quiet", "--out", str(out), *extra]
    return subprocess.Popen([sys.executable, "-c", "import sys, _phasejax_cli; sys.exit(_phasejax_cli.main())",
                             *argv], cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("how,delay", [(signal.SIGTERM, 0.4), (signal.SIGTERM, 0.9), (signal.SIGINT, 0.5)])
def test_signal_during_start_up_exits_130_at_once(tmp_path, how, delay):
    proc = _start(tmp_path)
    # After the interpreter's own start (tens of ms, longer on a loaded machine: the launcher's first line cannot
    # run before it) and before JAX's import ends (> 1.5 s): the run is still starting.
    time.sleep(delay)
    proc.send_signal(how)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines() == [f"phasejax: {how.name} during start-up; nothing was run"]
    assert not os.path.exists(tmp_path / "sweep.nc")


def test_signal_during_the_cells_saves_them_then_exits_130(tmp_path):
    proc = _start(tmp_path, "--cell-seeds", "4")
    t0 = time.time()
    while not glob.glob(str(tmp_path / "cells" / "seeds-*.npz")) and proc.poll() is None:
        assert time.time() - t0 < 120, "no cell appeared"
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # finished before the signal landed: nothing to check
        return
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted (finished cells are kept; rerun to resume)" in err and "Traceback" not in err
    assert not [p for p in os.listdir(tmp_path / "cells") if p.startswith(".tmp-")]
