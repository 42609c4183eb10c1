"""The docstring examples in float64 too (the default run collects them in float32: pyproject's --doctest-modules)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_doctests_pass_in_float64():
    env = {**os.environ, "JAX_ENABLE_X64": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--doctest-modules",
         "-o", "addopts=", "-o", "doctest_optionflags=ELLIPSIS NORMALIZE_WHITESPACE", "phasejax"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
