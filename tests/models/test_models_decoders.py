"""Llama-family decoders (llama, qwen2, mistral) on small checkpoints written here, against a float64 NumPy forward.

Every checkpoint has 2 layers, width 64, 4 query heads and 2 key/value heads (GQA), head dim 16, rope_theta 100
(so that 24 positions turn the slow frequencies too), random weights of std 1/sqrt(fan_in) saved with
``safetensors.numpy.save_file`` next to a real config.json. float32 tolerance: 1e-5 of the largest entry (measured
~1e-6: u = 6e-8 and sums of at most 96 terms over 2 layers). bfloat16: 6e-2 of the largest entry (8-bit
significands, u = 2^-9 ~ 2e-3, on the weights, embeddings, cos/sin, activations and probabilities: ~ 20 roundings
per layer give ~ sqrt(40) u ~ 1.2e-2 typical; the maximum over 24 x 97 logits measured 2.6e-2).
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from _models_ref import decoder_config, decoder_reference, decoder_tensors, rope_reference, write_checkpoint
from tokenizers import Tokenizer, models, pre_tokenizers, processors

import phasejax.models as pm

IDS = np.random.default_rng(0).integers(0, 97, 24)

LLAMA3 = {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 16}
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}
_lr = np.random.default_rng(5)
LONGROPE = {"rope_type": "longrope", "factor": 4.0, "original_max_position_embeddings": 8,
            "short_factor": (1 + _lr.random(8)).tolist(), "long_factor": (1 + 3 * _lr.random(8)).tolist()}

CASES = {
    "llama-default": ("llama", {}, {}),
    "llama-linear": ("llama", {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, {}),
    "llama-yarn": ("llama", {"rope_scaling": YARN}, {}),
    "llama-llama3": ("llama", {"rope_scaling": LLAMA3}, {}),
    # dynamic NTK only acts beyond max_position_embeddings: 24 tokens > 16, accepted with max_length
    "llama-dynamic": ("llama", {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0},
                                "max_position_embeddings": 16}, {"max_length": 24}),
    "llama-longrope": ("llama", {"rope_scaling": LONGROPE}, {}),  # 24 > 8 tokens: long_factor
    "qwen2-yarn": ("qwen2", {"rope_scaling": YARN}, {}),
    "qwen2-tied-sliding": ("qwen2", {"tie_word_embeddings": True, "use_sliding_window": True, "sliding_window": 6,
                                     "max_window_layers": 1}, {}),
    "mistral-sliding": ("mistral", {"sliding_window": 8, "head_dim": 16}, {}),
    "mistral-llama3": ("mistral", {"sliding_window": None, "rope_scaling": LLAMA3}, {}),
}


def _rel(a, b):
    return float(np.abs(np.asarray(a) - b).max() / np.abs(b).max())


def _write(tmp_path, model_type, changes, **kwargs):
    config = decoder_config(model_type, **changes)
    tensors = decoder_tensors(config, seed=1)
    return write_checkpoint(tmp_path, config, tensors, **kwargs), config, tensors


@pytest.mark.parametrize("case", CASES)
def test_decoder_float32_matches_numpy(tmp_path, case):
    model_type, changes, load_kwargs = CASES[case]
    path, config, tensors = _write(tmp_path, model_type, changes)
    cap = pm.load(path, **load_kwargs).capture(IDS)
    ref = decoder_reference(tensors, config, IDS)
    assert cap.hidden_states.shape == (3, 24, 64) and cap.logits.shape == (24, 97)
    assert _rel(cap.hidden_states, ref["hidden"]) < 1e-5 and _rel(cap.logits, ref["logits"]) < 1e-5
    for layer, q, k, p in zip(cap.layers, ref["q"], ref["k"], ref["p"], strict=True):
        assert layer.causal and layer.queries.shape == layer.keys.shape == (4, 24, 16) and layer.scale == 0.25
        assert _rel(layer.queries, q) < 1e-5 and _rel(layer.keys, k) < 1e-5
        np.testing.assert_allclose(layer.probabilities, p, atol=1e-5)
    if config["rope_scaling"]:  # the scaling is visible: the unscaled model is far outside the tolerance
        plain = decoder_reference(tensors, config | {"rope_scaling": None}, IDS)
        assert _rel(cap.logits, plain["logits"]) > 1e-3
    if config.get("sliding_window") and config["model_type"] == "mistral":
        assert np.all(np.tril(cap.layers[1].probabilities[0], -8) == 0)  # keys t - 8 and older are outside


def test_qwen2_sliding_window_only_on_late_layers(tmp_path):
    path, _, _ = _write(tmp_path, "qwen2", CASES["qwen2-tied-sliding"][1])
    cap = pm.load(path).capture(IDS)
    far = np.tril(np.ones((24, 24), bool), -6)  # key j with i - j >= 6
    assert np.all(cap.layers[0].probabilities[:, far] > 0)  # layer 0 < max_window_layers: full causal attention
    assert np.all(cap.layers[1].probabilities[:, far] == 0)  # layer 1: sliding window of 6


def test_sharded_checkpoint_equals_single_file(tmp_path, llama_dir):
    path, config, tensors = llama_dir
    sharded = write_checkpoint(tmp_path, config, tensors, shards=3)
    assert len(list(sharded.glob("model-*-of-00003.safetensors"))) == 3
    np.testing.assert_array_equal(pm.load(sharded).forward(IDS).logits, pm.load(path).forward(IDS).logits)


def test_bfloat16_checkpoint_and_bfloat16_run(tmp_path):
    config = decoder_config("llama", rope_scaling=YARN)
    tensors = {k: v.astype(ml_dtypes.bfloat16) for k, v in decoder_tensors(config, seed=2).items()}
    path = write_checkpoint(tmp_path, config, tensors)
    ref = decoder_reference({k: v.astype(np.float64) for k, v in tensors.items()}, config, IDS)
    out32 = pm.load(path).forward(IDS)  # BF16 weights widened exactly to float32
    assert _rel(out32.logits, ref["logits"]) < 1e-5
    cap = pm.load(path, dtype="bfloat16").capture(IDS)
    assert _rel(cap.hidden_states, ref["hidden"]) < 6e-2 and _rel(cap.logits, ref["logits"]) < 6e-2
    assert max(float(np.abs(a.probabilities - p).max()) for a, p in zip(cap.layers, ref["p"], strict=True)) < 6e-2


def test_rope_tables_follow_hugging_face():
    for rope in ({}, {"rope_scaling": YARN}, {"rope_scaling": LLAMA3}, {"rope_scaling": LONGROPE},
                 {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}, "max_position_embeddings": 16}):
        config = decoder_config("llama", **rope)
        for L in (8, 24):
            inv, factor = pm.inverse_frequencies(config, seq_len=L)
            cos, sin, af = rope_reference(config, L)
            ang = np.arange(L)[:, None] * inv[None, :]
            np.testing.assert_allclose(np.cos(np.concatenate([ang, ang], -1)) * factor, cos, rtol=0, atol=1e-12)
            np.testing.assert_allclose(np.sin(np.concatenate([ang, ang], -1)) * factor, sin, rtol=0, atol=1e-12)
            assert factor == pytest.approx(af, rel=1e-15)


def test_encode_uses_the_checkpoint_tokenizer(llama_dir, tmp_path):
    _, config, tensors = llama_dir
    path = write_checkpoint(tmp_path, config, tensors)
    words = ["the", "key", "is", "near", "query"]
    tok = Tokenizer(models.WordLevel({"<s>": 0, "<unk>": 1} | {w: i + 2 for i, w in enumerate(words)},
                                     unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    tok.save(str(path / "tokenizer.json"))
    model = pm.load(path)
    assert model.encode("the query is near the key").tolist() == [0, 2, 6, 4, 5, 2, 3]
    assert model.forward(model.encode("the key")).logits.shape == (3, 97)


def test_yarn_attention_factor_is_inside_queries_and_keys(tmp_path):
    """HF multiplies cos and sin by a: the captured Q and K are a times those of the same model with a = 1."""
    scaled, _, _ = _write(tmp_path / "a", "llama", {"rope_scaling": YARN})
    unit, _, _ = _write(tmp_path / "b", "llama", {"rope_scaling": YARN | {"attention_factor": 1.0}})
    a, b = pm.load(scaled).capture(IDS).layers[0], pm.load(unit).capture(IDS).layers[0]
    factor = 0.1 * math.log(4.0) + 1
    assert a.attention_factor == pytest.approx(factor) and b.attention_factor == 1.0 and a.scale == b.scale
    np.testing.assert_allclose(a.queries, factor * b.queries, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.keys, factor * b.keys, rtol=1e-5, atol=1e-6)
