"""Helpers for the tests that run phasejax in fresh Python processes, and the contract their results meet.

Device counts and jax.distributed are fixed when JAX starts, so the multi-device, multi-process and
kill / signal tests (tests/runtime/test_runtime_devices.py, tests/runtime/test_runtime_checkpoint.py,
tests/cli/test_cli_resume.py) run their work in subprocesses: the worker tests/runtime/_distributed_worker.py
or ``python -m phasejax.cli``, on CPU, with this checkout first on PYTHONPATH and no inherited XLA_FLAGS.

Tolerance: seed i depends only on key i, so results over several devices or processes equal those of one
up to float reassociation (``RTOL`` 1e-5 in float32); on CPU they are bit-identical, which is asserted too
(``EXACT``) so that a change in that shows up.

Imported as ``_subprocess`` (pytest puts tests/, the folder of the top conftest.py, on sys.path).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository


WORKER = ROOT / "tests" / "runtime" / "_distributed_worker.py"


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
