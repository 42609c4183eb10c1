"""Shared fixtures: float64 on demand, strict dtype promotion, the public reference values."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import pytest
from jaxtyping import install_import_hook

# Strict promotion catches silent float32 -> float64 (or int -> float) mixing in the library, and rank
# promotion raises on implicit broadcasting between arrays of different ranks.
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")

# Every annotated function of phasejax checks its shapes at run time (jaxtyping + beartype).
with install_import_hook(
    "phasejax", "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))"
):  # an int passes for a float (PEP 484)
    import phasejax  # noqa: F401

REFERENCE = Path(__file__).resolve().parent / "data" / "reference.json"  # a copy of the public test anchors


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
    """The public reference values (tests/data/reference.json, copied from the project's reference file)."""
    return json.loads(REFERENCE.read_text())


@pytest.fixture(autouse=True)
def _library_validation(request):
    """Tests marked ``bad_input`` check phasejax's own errors (what users see, an InputError naming the
    parameter), so the test-only jaxtyping shape checks, which would fire first, are off for them."""
    if request.node.get_closest_marker("bad_input") is None:
        yield
        return
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)
