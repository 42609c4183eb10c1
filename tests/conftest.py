"""Shared fixtures: float64 on demand, strict dtype promotion, the public reference values."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import pytest

# Strict promotion catches silent float32 -> float64 (or int -> float) mixing in the library.
jax.config.update("jax_numpy_dtype_promotion", "strict")

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "public.json"


@pytest.fixture
def x64():
    """Run the test with jax_enable_x64 on (restored afterwards)."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    """Parametrise a test over both dtypes (float64 turns jax_enable_x64 on)."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", request.param == "float64")
    try:
        yield request.param
    finally:
        jax.config.update("jax_enable_x64", old)


@pytest.fixture(scope="session")
def reference():
    """../shared/reference/public.json (skips when the shared folder is absent)."""
    path = Path(os.environ.get("PHASEJAX_REFERENCE", REFERENCE))
    if not path.exists():
        pytest.skip(f"reference values not found at {path}")
    return json.loads(path.read_text())
