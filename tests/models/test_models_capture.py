"""Captured queries and keys reproduce the captured probabilities, and they come from the forward pass itself.

float32 tolerances are 1e-6 on probabilities (softmax of float32 logits recomputed in float64 from the captured
float32 Q and K: they differ only by the order of the float32 accumulation); the bfloat16 probabilities are rounded
to 8 bits (relative 2^-9), so 5e-3 absolute on values <= 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from _models_ref import decoder_config, decoder_tensors, softmax, write_checkpoint

import phasejax.models as pm

IDS = np.random.default_rng(0).integers(0, 97, 24)


def _recomputed(layer: pm.LayerCapture, window: int | None = None) -> np.ndarray:
    q, k = layer.queries.astype(np.float64), layer.keys.astype(np.float64)
    logits = layer.scale * q @ k.transpose(0, 2, 1)
    if layer.causal:
        i, j = np.indices(logits.shape[1:])
        seen = (j <= i) if window is None else (j <= i) & (i - j < window)
        logits = np.where(seen, logits, -np.inf)
    return softmax(logits)


def test_minilm_capture_reproduces_probabilities(minilm32):
    cap = minilm32.capture(minilm32.encode("Keys near the query take the mass."))
    for layer in cap.layers:
        np.testing.assert_allclose(_recomputed(layer), layer.probabilities, atol=1e-6)


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-6), ("bfloat16", 5e-3)])
def test_decoder_capture_reproduces_probabilities(tmp_path, dtype, atol):
    config = decoder_config("mistral", sliding_window=8, rope_scaling={"rope_type": "yarn", "factor": 4.0,
                                                                          "original_max_position_embeddings": 16})
    path = write_checkpoint(tmp_path, config, decoder_tensors(config, seed=4))
    cap = pm.load(path, dtype=dtype).capture(IDS)
    for layer in cap.layers:
        p = layer.probabilities
        np.testing.assert_allclose(_recomputed(layer, window=8), p, atol=atol)
        assert np.all(np.triu(p, 1) == 0)  # a causal query at t sees keys at positions <= t only
        np.testing.assert_allclose(p.sum(-1), 1, atol=10 * atol)


def test_probabilities_are_the_ones_that_make_the_hidden_states(llama_dir):
    """Layer 1 rebuilt by hand from the captured probabilities gives the captured hidden state of layer 1."""
    path, config, t = llama_dir
    cap = pm.load(path).capture(IDS)
    x = cap.hidden_states[0].astype(np.float64)  # the token embeddings

    def rms(h, w):
        return w * h / np.sqrt((h**2).mean(-1, keepdims=True) + config["rms_norm_eps"])

    v = rms(x, t["model.layers.0.input_layernorm.weight"]) @ t["model.layers.0.self_attn.v_proj.weight"].T
    v = v.reshape(24, 2, 16).transpose(1, 0, 2).repeat(2, axis=0)  # per query head: its group's value head
    ctx = (cap.layers[0].probabilities @ v).transpose(1, 0, 2).reshape(24, 64)
    h = x + ctx @ t["model.layers.0.self_attn.o_proj.weight"].T
    g = rms(h, t["model.layers.0.post_attention_layernorm.weight"])
    gate, up = g @ t["model.layers.0.mlp.gate_proj.weight"].T, g @ t["model.layers.0.mlp.up_proj.weight"].T
    h = h + (gate / (1 + np.exp(-gate)) * up) @ t["model.layers.0.mlp.down_proj.weight"].T
    np.testing.assert_allclose(h, cap.hidden_states[1], atol=1e-5 * np.abs(h).max())


def test_one_weight_changes_both_queries_and_outputs(tmp_path, llama_dir):
    path, config, tensors = llama_dir
    changed = dict(tensors)
    name = "model.layers.1.self_attn.q_proj.weight"
    changed[name] = tensors[name] * np.float32(1.5)
    base, new = pm.load(path).capture(IDS), pm.load(write_checkpoint(tmp_path, config, changed)).capture(IDS)
    np.testing.assert_array_equal(new.layers[0].queries, base.layers[0].queries)
    np.testing.assert_allclose(new.layers[1].queries, 1.5 * base.layers[1].queries, rtol=1e-5, atol=1e-6)
    assert np.abs(new.layers[1].probabilities - base.layers[1].probabilities).max() > 1e-3
    assert np.abs(new.logits - base.logits).max() > 1e-3
    # forward() is another compilation of the same module: equal up to float32 reassociation
    np.testing.assert_allclose(pm.load(path).forward(IDS).hidden_states, base.hidden_states, rtol=0,
                               atol=1e-5 * np.abs(base.hidden_states).max())


def test_beta_eff_is_scale_times_norms(minilm32):
    layer = minilm32.capture(minilm32.encode("beta multiplies the cosine")).layers[2]
    q, k = layer.queries.astype(np.float64), layer.keys.astype(np.float64)
    cosine = (q / np.linalg.norm(q, axis=-1, keepdims=True)) @ (k / np.linalg.norm(k, axis=-1, keepdims=True)
                                                                 ).transpose(0, 2, 1)
    np.testing.assert_allclose(layer.beta_eff * cosine, layer.scale * q @ k.transpose(0, 2, 1), rtol=1e-5,
                               atol=1e-7)
    assert layer.beta_eff.shape == (12, q.shape[1], q.shape[1]) and np.all(layer.beta_eff > 0)
