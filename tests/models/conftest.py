"""Fixtures of the phasejax.models tests: the bundled all-MiniLM-L6-v2 (loaded once) and small decoder checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _models_ref import decoder_config, decoder_tensors, write_checkpoint
from safetensors.numpy import load_file

import phasejax.models as pm


@pytest.fixture(scope="session")
def minilm():
    """(directory, config, float64 weights) of the real all-MiniLM-L6-v2 (its int64 position_ids buffer dropped)."""
    path = Path(pm.minilm_path())
    config = json.loads((path / "config.json").read_text())
    weights = {k: v.astype(np.float64) for k, v in load_file(str(path / "model.safetensors")).items()
               if v.dtype == np.float32}
    return path, config, weights


@pytest.fixture(scope="session")
def minilm32(minilm):
    return pm.load(minilm[0])


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    """A small untied Llama checkpoint (GQA 4/2, no RoPE scaling), its config and float32 tensors."""
    config = decoder_config("llama")
    tensors = decoder_tensors(config, seed=1)
    return write_checkpoint(tmp_path_factory.mktemp("llama"), config, tensors), config, tensors
