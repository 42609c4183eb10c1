"""Results on disk: atomic writes, JSON and labelled arrays with provenance metadata.

Every file is written to a temporary name in the same folder and renamed into place
(``os.replace`` is atomic on POSIX), so an interrupted run never leaves a half-written file.
Labelled arrays are :class:`xarray.Dataset` objects saved as netCDF (through SciPy's
netCDF3 writer, which needs no compiled dependency beyond SciPy).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import tempfile
from importlib import metadata

import numpy as np

__all__ = ["atomic_write", "save_json", "load_json", "provenance", "save_dataset", "load_dataset", "jsonable"]


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success rename it to ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_json(path: str, obj) -> str:

    with atomic_write(path, "w") as f:
        json.dump(jsonable(obj), f, indent=1)
    return path


def load_json(path: str):
    with open(path) as f:
        return json.load(f)


def _git_commit() -> str | None:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(config: dict | None = None) -> dict:
    """Config, package versions, device, dtype and git commit, for result metadata."""
    import jax

    versions = {}
    for pkg in ("phasejax", "jax", "jaxlib", "equinox", "optax", "flax", "numpy", "scipy", "xarray"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    return {
        "config": config or {},
        "versions": versions,
        "python": platform.python_version(),
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "dtype": "float64" if jax.config.jax_enable_x64 else "float32",
        "git_commit": _git_commit(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def save_dataset(path: str, ds) -> str:
    """Write an xarray Dataset atomically as netCDF; dict/list attributes are stored as JSON strings."""
    ds = ds.copy()
    ds.attrs = {k: (json.dumps(v) if isinstance(v, (dict, list, tuple, bool)) or v is None else v)
                for k, v in ds.attrs.items()}
    for name in list(ds.data_vars) + list(ds.coords):
        if ds[name].dtype == np.float16 or ds[name].dtype.kind == "b":
            ds[name] = ds[name].astype(np.float32 if ds[name].dtype.kind == "f" else np.int8)
    with atomic_write(path, "wb") as f:
        f.write(ds.to_netcdf(engine="scipy"))
    return path


def load_dataset(path: str):
    import xarray as xr

    with xr.open_dataset(path, engine="scipy") as ds:
        ds = ds.load()
    for k, v in list(ds.attrs.items()):
        if isinstance(v, str) and v[:1] in "[{" or v in ("true", "false", "null"):
            with contextlib.suppress(ValueError, TypeError):
                ds.attrs[k] = json.loads(v)
    return ds


def jsonable(obj):
    """Turn numpy/jax scalars and arrays into plain JSON types (NaN -> null)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return jsonable(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating,)):
        return jsonable(float(obj))
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj
