"""Input validation shared by every public function.

Every error names the parameter, the value it got and what it accepts. Errors are
:class:`InputError` (a ``ValueError``) so the CLI can print one line and exit 2.

Checks run on concrete (host) values only: inside ``jit`` the arguments are tracers and
the checks that need values are skipped, so validate at the public entry point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import jax
import numpy as np


class InputError(ValueError):
    """A public function or the CLI got an argument it does not accept."""


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python int, or an :class:`InputError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or value != int(value):
            raise InputError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and v > maximum:
        raise InputError(f"{name} must be an integer <= {maximum}, got {value!r}")
    return v


SEED_LIMIT = 2**63  # seeds are 0 <= seed < 2^63 (a signed 64-bit integer, never reduced)


def check_seed(seed, name: str = "seed") -> int:
    """A PRNG seed as a Python int with ``0 <= seed < 2^63``, else an :class:`InputError`.

    The seed is never reduced (no ``mod 2^32``): :func:`phasejax._random.key_from_seed` turns all 64
    bits into the key, so ``2^32`` and ``0`` give different streams in float32 and float64 alike.

    >>> check_seed(2**32)
    4294967296
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"{name} must be an integer 0 <= {name} < 2^63, got {seed!r}")
    v = int(seed)
    if not 0 <= v < SEED_LIMIT:
        raise InputError(f"{name} must be an integer 0 <= {name} < 2^63 = {SEED_LIMIT}, got {v}")
    return v


def parse_int(text: str, name: str = "value") -> int:
    """An integer written in decimal (``1000``) or exact scientific notation (``1e6``), parsed exactly from
    the string: ``9007199254740993`` stays itself (a float would round it to 2^53); ``2.5`` and ``1e-3``
    are refused.

    >>> parse_int("9007199254740993")
    9007199254740993
    >>> parse_int("1e6")
    1000000
    """
    from decimal import Decimal, InvalidOperation

    t = str(text).strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        dec = Decimal(t)
    except (InvalidOperation, ValueError):
        raise InputError(f"{name} must be an integer, got {text!r}") from None
    if not dec.is_finite() or dec != dec.to_integral_value() or abs(dec.adjusted()) > 4300:
        raise InputError(f"{name} must be an integer, got {text!r}")
    return int(dec)


def check_real(
    name: str,
    value,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """``value`` as a finite Python float, or an :class:`InputError` naming ``name``."""
    if _is_traced(value):
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite, got {value!r}")
    if positive and not v > 0:
        raise InputError(f"{name} must be > 0, got {value!r}")
    if nonnegative and not v >= 0:
        raise InputError(f"{name} must be >= 0, got {value!r}")
    if minimum is not None and v < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and v > maximum:
        raise InputError(f"{name} must be <= {maximum}, got {value!r}")
    return v


def check_betas(betas, name: str = "betas"):
    """Inverse temperatures: finite and >= 0. Scalars become shape (1,) only if ``keep_scalar`` is false."""
    if _is_traced(betas):
        return betas
    arr = np.asarray(betas)
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name} must be real numbers, got dtype {arr.dtype}")
    if arr.ndim > 1:
        raise InputError(f"{name} must be a scalar or a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be finite, got {arr.tolist() if arr.size < 8 else arr}")
    if np.any(arr < 0):
        raise InputError(f"{name} must be >= 0 (beta multiplies <q,k>), got min {arr.min()!r}")
    dt = np.dtype(jax.numpy.result_type(float)) if arr.dtype.kind != "f" or arr.dtype.itemsize > 4 else arr.dtype
    tiny = float(np.finfo(dt).tiny)
    if np.any((arr > 0) & (arr < tiny)):
        raise InputError(f"{name} must be 0 or >= {tiny:.4g} (the smallest normal {dt.name}; below it beta "
                         f"underflows towards 0), got min {float(arr[arr > 0].min())!r}")
    return betas


def check_array(name: str, x, *, ndim: int | None = None, finite: bool = True, last_dim: int | None = None):
    """Shape and finiteness of an array argument (skipped for tracers)."""
    if _is_traced(x):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{name} must be a real array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if last_dim is not None and arr.shape[-1] != last_dim:
        raise InputError(f"{name} must have last dimension {last_dim}, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name} must not be empty, got shape {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise InputError(f"{name} must be finite, got {bad} NaN/inf entr{'y' if bad == 1 else 'ies'}")
    return x


def check_unit_vectors(name: str, x, *, atol: float = 1e-3):
    """Rows of ``x`` must be nonzero; they are expected to be unit vectors (within ``atol``)."""
    if _is_traced(x):
        return x
    arr = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=-1)
    if np.any(norms == 0):
        raise InputError(f"{name} has a zero vector (row {int(np.argmin(norms))}); vectors must be nonzero")
    if np.any(np.abs(norms - 1) > atol):
        i = int(np.argmax(np.abs(norms - 1)))
        raise InputError(
            f"{name} must be unit vectors (|x| = 1 within {atol}), got norm {norms.flat[i]:.6g}; "
            "normalise first (phasejax.normalize)"
        )
    return x


def check_option(name: str, value, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_key(config, name: str, where: str, *, allow_none: bool = True):
    """``config[name]`` of a rope dict (one with ``rope_type``), or an :class:`InputError` when the key is missing
    (with ``allow_none=False`` also when it is None): "``where`` of rope_type 'yarn' needs 'factor'; got keys [...]"."""
    if name not in config or (not allow_none and config[name] is None):
        raise InputError(f"{where} of rope_type {config['rope_type']!r} needs {name!r}; got keys {sorted(config)}")
    return config[name]


def check_lengths(name: str, n) -> np.ndarray:
    """Context lengths (numbers of keys) as a 1-D float64 array, each finite and >= 1."""
    raw = np.asarray(n) if not isinstance(n, int) else np.asarray(n, dtype=object)
    if raw.dtype == object:  # Python ints beyond int64: exact only if a float64 holds them
        try:
            vals = [int(v) for v in np.atleast_1d(raw).ravel()]
        except (TypeError, ValueError):
            raise InputError(f"{name} must be numbers of keys (>= 1), got {n!r}") from None
        raw = np.asarray([float(v) for v in vals], dtype=np.float64)
        bad = [v for v, f in zip(vals, raw, strict=True) if math.isfinite(f) and int(f) != v]
        if bad:
            raise InputError(f"{name} = {bad[0]} is not exactly representable as a float64 (above 2^53 only even "
                             f"integers are); use a nearby representable length such as {int(float(bad[0]))}")
    if raw.dtype.kind not in "iuf":
        raise InputError(f"{name} must be numbers of keys (>= 1), got {n!r}")
    arr = np.atleast_1d(np.asarray(raw, dtype=np.float64))
    if raw.dtype.kind in "iu":
        ints = np.atleast_1d(raw)
        mism = ints[arr.astype(object) != ints.astype(object)] if arr.size else ints[:0]
        if mism.size:
            raise InputError(f"{name} = {int(mism[0])} is not exactly representable as a float64 (above 2^53 "
                             f"only even integers are); use a nearby representable length such as "
                             f"{int(float(mism[0]))}")
    check_array(name, arr, ndim=1)
    if np.any(arr < 1):
        raise InputError(f"{name} must be >= 1 (numbers of keys), got min {arr.min()!r}")
    return arr
