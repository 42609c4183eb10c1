"""Resumable CLI runs (phasejax.cli scaling and sweep with --out, --cell-seeds, --no-resume; issue 17).

A run stopped before its last cell is resumed from the cells in the same --out with the same results,
and a different config into that --out is refused with one line naming the differing setting.
`phasejax sweep` over two processes (subprocesses joined by jax.distributed on 127.0.0.1) equals one
process, within ``RTOL`` and ``EXACT`` of tests/_subprocess.py (bit-identical on CPU).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from _subprocess import EXACT, ROOT, RTOL, _env, _finish, _free_port


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
    assert cells == [".lock", "manifest.json", f"n000-m{m0}-seeds-00000000-00000004.npz",
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
    assert sorted(os.listdir(tmp_path / "cells")) == [".lock", "manifest.json", "seeds-00000000-00000002.npz",
                                                      "seeds-00000002-00000004.npz"]
    assert first.attrs["run"]["parallel"]["devices"] == 1 and first.attrs["provenance"]["seed"] == 0
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
    cells = [sorted(set(os.listdir(tmp_path / f"p{i}" / "cells")) - {".lock"}) for i in range(2)]
    assert cells[0] == cells[1] and len(cells[0]) == 3  # the manifest and both cells; the writer alone locks --out
    for name in ("max_weight", "entropy", "effective_keys", "top_k_mass"):
        np.testing.assert_allclose(two[name].values, one[name].values, rtol=RTOL, atol=0)
        if EXACT:
            np.testing.assert_array_equal(two[name].values, one[name].values)
