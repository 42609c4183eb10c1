"""Resumable runs: a grid of cells, each saved atomically as it finishes, reloaded on restart.

Layout of a results folder ``OUT``::

    OUT/cells/manifest.json      {"format", "config_hash", "config"}: the run the cells belong to
    OUT/cells/<cell>.npz         one finished cell: the leaves arr_0, arr_1, ... of its result pytree

A cell is a block of seeds of one grid point, e.g. ``seeds-00000016-00000032`` (sweep) or
``n003-seeds-00000000-00000064`` (scaling): leaf shapes (cell seeds, ...). Seed i of a run
always gets key ``jax.random.split(key, S)[i]``, so a run assembled from cells computed in
any number of sessions equals an uninterrupted run exactly.

Safety: every cell is written to a temporary name and renamed (:func:`phasejax.runtime.io.atomic_write`),
so SIGKILL leaves only complete cell files (a stale ``.tmp-*`` is removed on restart).
SIGINT and SIGTERM are deferred while cells run (:func:`deferred_signals`): the current cell
finishes and is saved, then :class:`Interrupted` (a ``KeyboardInterrupt``; the CLI exits 130)
is raised; a second signal stops at once, and the unfinished cell is discarded.
A restart with the same ``--out`` but a different config (any setting that changes the
numbers) is refused with an :class:`~phasejax._checks.InputError` naming the settings that differ.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os

import numpy as np

from .._checks import InputError

__all__ = ["config_hash", "CellStore"]


FORMAT = "phasejax-cells-1"


def _canonical(config: dict) -> str:
    from .io import jsonable

    return json.dumps(jsonable(config), sort_keys=True, separators=(",", ":"))


def config_hash(config: dict) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of ``config`` (sorted keys, NaN -> null).

    >>> config_hash({"n": 10, "seeds": 4}) == config_hash({"seeds": 4, "n": 10})
    True
    """
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:16]


class CellStore:
    """Finished cells of one run in ``folder/cells``, tied to its config by a hash.

    Args:
      folder: the run's output folder (``--out``).
      config: every setting that changes the numbers (JSON-able; see :func:`run_config`).
      resume: True: keep finished cells of a run with the same config and refuse a different
        config; False: delete the cells there and start over.

    >>> import tempfile, numpy as np
    >>> store = CellStore(tempfile.mkdtemp(), {"n": 1000, "seeds": 64})
    >>> store.has("seeds-00000000-00000016")
    False
    >>> _ = store.save("seeds-00000000-00000016", [np.arange(3.0)])
    >>> store.load("seeds-00000000-00000016")[0].tolist()
    [0.0, 1.0, 2.0]
    """

    def __init__(self, folder: str, config: dict, *, resume: bool = True):
        self.folder = os.path.join(folder, "cells")
        self.config = config
        self.hash = config_hash(config)
        manifest = os.path.join(self.folder, "manifest.json")
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as e:
            raise InputError(f"--out: cannot create the checkpoint folder {self.folder!r}: {e.strerror}") from None
        for tmp in glob.glob(os.path.join(self.folder, ".tmp-*")):  # left by a SIGKILL mid-write
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        old = None
        if os.path.exists(manifest):
            try:
                with open(manifest) as f:
                    old = json.load(f)
            except (OSError, ValueError):
                old = None
        mismatch = bool(resume and old is not None and old.get("config_hash") != self.hash)
        from .devices import _agree_all

        if not _agree_all(np.array([not mismatch]))[0]:
            if not mismatch:
                raise InputError(f"--out {folder!r}: another process found a checkpoint of a different run")
            differ = sorted(k for k in set(config) | set(old.get("config", {}))
                            if _canonical({k: config.get(k)}) != _canonical({k: old.get("config", {}).get(k)}))
            raise InputError(
                f"--out {folder!r} holds cells of a different run (config hash {old.get('config_hash')}, this run "
                f"{self.hash}; differing settings: {', '.join(differ) or 'unknown'}); use another --out, rerun "
                "with the same settings, or pass --no-resume to delete those cells and start over"
            )
        if not resume:
            for path in glob.glob(os.path.join(self.folder, "*.npz")):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        if old is None or old.get("config_hash") != self.hash:
            from .io import save_json

            save_json(manifest, {"format": FORMAT, "config_hash": self.hash, "config": config})

    def path(self, name: str) -> str:
        if not name or os.sep in name or name.startswith("."):
            raise InputError(f"cell name must be a plain file name, got {name!r}")
        return os.path.join(self.folder, name + ".npz")

    def has(self, name: str) -> bool:
        """Whether cell ``name`` is finished (its file exists; files appear only complete)."""
        return os.path.exists(self.path(name))

    def names(self) -> list[str]:
        """The finished cells, sorted."""
        return sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(self.folder, "*.npz")))

    def load(self, name: str) -> list[np.ndarray]:
        """The leaves of cell ``name`` in the order they were saved."""
        path = self.path(name)
        try:
            with np.load(path, allow_pickle=False) as z:
                return [z[f"arr_{i}"] for i in range(len(z.files))]
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"checkpoint cell {path!r} cannot be read ({e}); delete it to recompute it") from None

    def save(self, name: str, leaves) -> str:
        """Write the leaves (arrays) of cell ``name`` atomically; returns the path."""
        from .io import atomic_write

        path = self.path(name)
        with atomic_write(path, "wb") as f:
            np.savez(f, *[np.asarray(x) for x in leaves])
        return path
