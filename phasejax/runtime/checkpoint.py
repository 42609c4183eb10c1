"""Resumable runs: a grid of cells, each saved atomically as it finishes, reloaded on restart.

Layout of a results folder ``OUT``::

    OUT/cells/manifest.json      {"format", "config_hash", "config"}: the run the cells belong to
    OUT/cells/<cell>.npz         one finished cell: the leaves arr_0, arr_1, ... of its result pytree, plus
                                 ``config_hash`` (the run that made it) and ``sha256`` (of the leaves)
    OUT/cells/.lock              held (``fcntl.flock``) by the one process writing OUT; holds its pid

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

Verification, whatever the manifest says: a cell is used only when its own ``config_hash`` is this run's,
its ``sha256`` matches its leaves and every floating leaf is finite. Any other cell (of another run, truncated,
0 bytes, a bad zip CRC, NaN) is reported on stderr, deleted and recomputed. One writer at a time: the store
takes an exclusive, non-blocking ``flock`` on ``cells/.lock`` before touching anything (so a second run into
the same ``--out``, ``--no-resume`` included, is refused with the holder's pid and never deletes its files);
the lock goes with the process (the OS releases it on any exit, SIGKILL included), so a failed start leaves
nothing that blocks a corrected rerun. Within one process the lock is re-entrant (tests and notebooks run
several stores on one folder). In a multi-process run the coordinator (process 0) holds it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import sys
import zipfile

import numpy as np

from .._checks import InputError

__all__ = ["config_hash", "CellStore"]


FORMAT = "phasejax-cells-2"
_META = ("config_hash", "sha256")  # entries of a cell file beside its leaves arr_0, arr_1, ...
_HELD: dict[str, list] = {}  # realpath of a lock file -> [fd, count]: locks this process holds


def _leaves_sha256(leaves) -> str:
    """sha256 over each leaf's dtype, shape and bytes (C order)."""
    h = hashlib.sha256()
    for x in leaves:
        x = np.ascontiguousarray(x)
        h.update(f"{x.dtype.str}{x.shape}".encode())
        h.update(x.tobytes())
    return h.hexdigest()


def _holder(path: str) -> str:
    with contextlib.suppress(OSError, ValueError):
        with open(path) as f:
            pid = f.read().strip()
        if pid:
            return f"process {int(pid)}"
    return "another process"


def _lock(folder: str, label: str) -> str:
    """Take the exclusive write lock of ``folder`` (re-entrant within this process); returns its path."""
    import fcntl

    path = os.path.realpath(os.path.join(folder, ".lock"))
    if path in _HELD:
        _HELD[path][1] += 1
        return path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise InputError(f"--out {label!r} is in use by {_holder(path)} (lock {path}); wait for it, stop it, "
                             "or use another --out") from None
        raise InputError(f"--out {label!r}: cannot lock {path}: {e.strerror}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[path] = [fd, 1]
    return path


def _unlock(path: str | None) -> None:
    if path is None or path not in _HELD:
        return
    _HELD[path][1] -= 1
    if _HELD[path][1] == 0:
        fd, _ = _HELD.pop(path)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock


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

    def __init__(self, folder: str, config: dict, *, resume: bool = True, report=None):
        self.folder = os.path.join(folder, "cells")
        self.config = config
        self.hash = config_hash(config)
        self._report = report or (lambda msg: print(f"phasejax: {msg}", file=sys.stderr, flush=True))
        self._checked: dict[str, list[np.ndarray]] = {}
        self._lock = None
        manifest = os.path.join(self.folder, "manifest.json")
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as e:
            raise InputError(f"--out: cannot create the checkpoint folder {self.folder!r}: {e.strerror}") from None
        from .devices import _agree_all, is_writer

        if is_writer():
            self._lock = _lock(self.folder, folder)
        try:
            for tmp in glob.glob(os.path.join(self.folder, ".tmp-*")):  # left by a SIGKILL mid-write (we hold
                with contextlib.suppress(OSError):                       # the lock: no live writer owns them)
                    os.unlink(tmp)
            old = None
            if os.path.exists(manifest):
                try:
                    with open(manifest) as f:
                        old = json.load(f)
                except (OSError, ValueError):
                    old = None
            old = old if isinstance(old, dict) else None
            mismatch = bool(resume and old is not None and old.get("config_hash") != self.hash)
            if not _agree_all(np.array([not mismatch]))[0]:
                if not mismatch:
                    raise InputError(f"--out {folder!r}: another process found a checkpoint of a different run")
                oc = old.get("config") if isinstance(old.get("config"), dict) else {}
                differ = sorted(k for k in set(config) | set(oc)
                                if _canonical({k: config.get(k)}) != _canonical({k: oc.get(k)}))
                raise InputError(
                    f"--out {folder!r} holds cells of a different run (config hash {old.get('config_hash')}, this "
                    f"run {self.hash}; differing settings: {', '.join(differ) or 'unknown'}); use another --out, "
                    "rerun with the same settings, or pass --no-resume to delete those cells and start over"
                )
            if not resume:
                for path in glob.glob(os.path.join(self.folder, "*.npz")):
                    with contextlib.suppress(OSError):
                        os.unlink(path)
            if old is None or old.get("config_hash") != self.hash or old.get("format") != FORMAT:
                from .io import save_json

                save_json(manifest, {"format": FORMAT, "config_hash": self.hash, "config": config})
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the write lock (also done when the store is garbage-collected, and by the OS at exit)."""
        _unlock(self._lock)
        self._lock = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    def path(self, name: str) -> str:
        if not name or os.sep in name or name.startswith("."):
            raise InputError(f"cell name must be a plain file name, got {name!r}")
        return os.path.join(self.folder, name + ".npz")

    def has(self, name: str) -> bool:
        """Whether cell ``name`` is finished and verified (this run's config hash, checksum, finite values).
        A cell file that fails is reported, deleted and reported missing, so it is recomputed."""
        if name in self._checked:
            return True
        path = self.path(name)
        if not os.path.exists(path):
            return False
        leaves, why = self._read(path)
        if why is None:
            self._checked[name] = leaves
            return True
        self._report(f"checkpoint cell {path} {why}: recomputing it")
        with contextlib.suppress(OSError):
            os.unlink(path)
        return False

    def _read(self, path: str) -> tuple[list[np.ndarray] | None, str | None]:
        try:
            with np.load(path, allow_pickle=False) as z:
                files = set(z.files)
                if not set(_META) <= files:
                    return None, "has no config hash or checksum (written by an older phasejax or another tool)"
                n = len(files) - len(_META)
                leaves = [z[f"arr_{i}"] for i in range(n)]
                cell_hash, digest = str(z["config_hash"]), str(z["sha256"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
            return None, f"cannot be read ({type(e).__name__}: {e})"
        if cell_hash != self.hash:
            return None, f"belongs to another run (config hash {cell_hash}, this run {self.hash})"
        if digest != _leaves_sha256(leaves):
            return None, "fails its checksum"
        bad = [i for i, x in enumerate(leaves) if x.dtype.kind in "fc" and not np.all(np.isfinite(x))]
        if bad:
            return None, f"holds non-finite values (leaves {bad})"
        return leaves, None

    def names(self) -> list[str]:
        """The cell files present, sorted (unverified: :meth:`has` verifies one)."""
        return sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(self.folder, "*.npz")))

    def load(self, name: str) -> list[np.ndarray]:
        """The leaves of cell ``name`` in the order they were saved (verified as in :meth:`has`)."""
        if name in self._checked or self.has(name):
            return self._checked.pop(name)
        raise InputError(f"checkpoint cell {self.path(name)!r} is missing or failed verification; rerun to "
                         "recompute it")

    def save(self, name: str, leaves) -> str:
        """Write the leaves (arrays) of cell ``name`` atomically, with this run's config hash and their sha256;
        returns the path. Non-finite floating leaves are refused (a cell must never hold them)."""
        from .io import atomic_write

        leaves = [np.asarray(x) for x in leaves]
        bad = [i for i, x in enumerate(leaves) if x.dtype.kind in "fc" and not np.all(np.isfinite(x))]
        if bad:
            raise InputError(f"cell {name!r}: leaves {bad} hold non-finite values; the computation overflowed "
                             "(see the settings of this run); nothing was saved")
        path = self.path(name)
        with atomic_write(path, "wb") as f:
            np.savez(f, *leaves, config_hash=np.asarray(self.hash), sha256=np.asarray(_leaves_sha256(leaves)))
        return path
