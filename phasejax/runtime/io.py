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

__all__ = ["atomic_write", "save_json", "load_json", "provenance", "git_source", "save_dataset", "load_dataset",
           "jsonable", "cf_attrs", "CF_ATTRS"]


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb"):
    """Open a temporary file beside ``path``; on success rename it to ``path`` (mode 0666 & ~umask)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a result file gets the user's umask, as open() would
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def save_json(path: str, obj) -> str:

    with atomic_write(path, "w") as f:
        json.dump(jsonable(obj), f, indent=1)
    return path


def load_json(path: str):
    with open(path) as f:
        return json.load(f)


def _git(pkg: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", pkg, *args], capture_output=True, text=True, timeout=5, check=False)


def git_source(folder: str | None = None) -> dict:
    """The git state of the phasejax source that is running: ``{"commit", "dirty", "note"}``.

    Only a repository that tracks this package's own files counts (``git ls-files`` of ``phasejax/__init__.py``):
    an installed copy inside some other repository (a virtualenv in a project folder) gets ``commit: None`` and a
    note, never that repository's commit. ``dirty`` is whether ``git status --porcelain`` lists any change under
    the package folder (tracked or untracked). ``folder``: a package folder other than phasejax's (tests)."""
    pkg = folder or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../phasejax
    try:
        tracked = _git(pkg, "ls-files", "--error-unmatch", "__init__.py")
        if tracked.returncode != 0:
            return {"commit": None, "dirty": None, "note": "the phasejax source is not tracked by git (an install)"}
        commit = _git(pkg, "rev-parse", "HEAD").stdout.strip() or None
        status = _git(pkg, "status", "--porcelain", "--", ".")
        return {"commit": commit, "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None,
                "note": None}
    except (OSError, subprocess.SubprocessError) as e:
        return {"commit": None, "dirty": None, "note": f"git not available ({type(e).__name__})"}


def provenance(config: dict | None = None) -> dict:
    """What made a result: the full config and its seed, the versions of phasejax, jax, jaxlib, numpy (and the
    rest of the stack), the devices, backend and dtype, and the git state of the package source
    (:func:`git_source`: commit and dirty flag, or why there is none)."""
    import jax

    versions = {}
    for pkg in ("phasejax", "jax", "jaxlib", "equinox", "optax", "flax", "numpy", "scipy", "xarray"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[pkg] = metadata.version(pkg)
    git = git_source()
    config = config or {}
    return {
        "config": config,
        "seed": config.get("seed"),
        "versions": versions,
        "python": platform.python_version(),
        "devices": [str(d) for d in jax.devices()],
        "backend": jax.default_backend(),
        "dtype": "float64" if jax.config.jax_enable_x64 else "float32",
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "git_note": git["note"],
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


# CF ``units`` and ``long_name`` of the variables and coordinates phasejax writes. Every phasejax quantity is
# dimensionless (CF units "1") except entropies (nats); a name not listed gets units "1" and its name spelled out.
CF_ATTRS = {
    "beta": ("1", "inverse temperature beta (weights proportional to exp(beta <q, k>))"),
    "lambda": ("1", "rescaled inverse temperature lambda = beta / n^(2/alpha)"),
    "n": ("1", "context length n (number of keys)"),
    "seed": ("1", "index of the context (seed) in the ensemble"),
    "run": ("1", "index of the independent training run"),
    "schedule": ("1", "temperature schedule"),
    "max_weight": ("1", "largest attention weight max_i w_i"),
    "entropy": ("nats", "Shannon entropy of the attention weights"),
    "effective_keys": ("1", "effective number of keys exp(entropy)"),
    "sum_w2": ("1", "sum of squared attention weights"),
    "inv_sum_w2": ("1", "inverse participation ratio 1 / sum_i w_i^2"),
    "top_k_mass": ("1", "attention mass on the k nearest keys"),
    "mean_gap": ("1", "attention-weighted mean gap u = 1 - <q, k>"),
    "var_gap": ("1", "attention-weighted variance of the gap u = 1 - <q, k>"),
    "log_partition": ("1", "log partition function log sum_i exp(beta <q, k_i>)"),
    "min_gap": ("1", "smallest gap u_(1) = 1 - max_i <q, k_i>"),
    "truncation_bound": ("1", "bound on the relative error of the nearest-m truncation"),
    "beta_peak": ("1", "inverse temperature of the susceptibility peak"),
    "value_at_peak": ("1", "observable at the susceptibility peak"),
    "chi_max": ("1", "susceptibility at its peak"),
    "m": ("1", "nearest keys drawn exactly per context (nearest-m sampler)"),
    "collapse_mean": ("1", "seed mean of the observable on the rescaled grid lambda (scaling collapse)"),
    "lambda_ratio": ("1", "lambda / lambda* (1 at the critical point)"),
    "E_max_weight": ("1", "expected largest attention weight (Poisson limit)"),
    "log_beta": ("1", "natural log of the learned inverse temperature"),
    "loss": ("1", "training loss (mean squared error)"),
    "beta_learned": ("1", "learned inverse temperature (Polyak mean over the last quarter of training)"),
}


def cf_attrs(name: str) -> dict:
    """``{"units", "long_name"}`` of a variable written by phasejax (CF conventions), from :data:`CF_ATTRS`:
    ``<x>_se`` is the standard error of x, ``<x>_mean`` its mean over seeds, ``<task>_<x>`` x of one task,
    ``step_<task>`` a training step."""
    if name.startswith("step_"):
        return {"units": "1", "long_name": f"training step ({name[5:]} task)"}
    for suffix, what in (("_se", "standard error of "), ("_mean", "mean over seeds of ")):
        if name.endswith(suffix) and name != suffix:
            base = cf_attrs(name[: -len(suffix)])
            return {"units": base["units"], "long_name": what + base["long_name"]}
    if name in CF_ATTRS:
        units, long_name = CF_ATTRS[name]
        return {"units": units, "long_name": long_name}
    head, _, rest = name.partition("_")
    if rest and rest in CF_ATTRS or rest.endswith(("_se", "_mean")):
        base = cf_attrs(rest)
        return {"units": base["units"], "long_name": f"{base['long_name']} ({head} task)"}
    return {"units": "1", "long_name": name.replace("_", " ")}


def save_dataset(path: str, ds) -> str:
    """Write an xarray Dataset atomically as netCDF; dict/list attributes are stored as JSON strings, and every
    variable and coordinate gets CF ``units`` and ``long_name`` (:func:`cf_attrs`) unless it has its own."""
    ds = ds.copy()
    for name in list(ds.data_vars) + list(ds.coords):
        for k, v in cf_attrs(str(name)).items():
            ds[name].attrs.setdefault(k, v)
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
