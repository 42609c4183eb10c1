"""The real sentence-transformers all-MiniLM-L6-v2 in JAX against an independent float64 NumPy BERT.

Tolerances. float32: every hidden state within 1e-5 of the largest |h| of its layer, probabilities and the unit
sentence embeddings within 1e-5 absolute. The float32 unit roundoff is u = 6e-8 and the longest sums have
K = 1536 terms, so one layer's rounding is ~ sqrt(K) u ~ 2e-6; 1e-5 leaves a margin over six layers (measured:
4e-7 hidden, 1.4e-6 probabilities, 1.4e-7 embeddings). bfloat16: every weight and activation is rounded to 8
significant bits (u = 2^-9 ~ 2e-3), ~10 roundings per layer over 6 layers give ~ sqrt(60) u ~ 1.5e-2, so hidden
states within 3e-2 of the layer's largest |h|, probabilities within 5e-2, embeddings at cosine > 0.999 to the
float64 ones (measured: 5.9e-3, 1.3e-2, cosine 0.99994).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from _models_ref import bert_reference
from safetensors.numpy import save_file

import phasejax.models as pm

SENTENCES = (
    "A man is playing a guitar.",
    "Someone is playing the guitar on stage.",
    "The stock market fell sharply today.",
)


def _unit(x):
    return x / np.linalg.norm(x)


def _layer_rel(a, b):
    return max(float(np.abs(a[n] - b[n]).max() / np.abs(b[n]).max()) for n in range(len(b)))


def test_tokenizer_adds_cls_and_sep_and_never_truncates(minilm32):
    assert minilm32.encode("hello world").tolist() == [101, 7592, 2088, 102]  # [CLS] hello world [SEP]
    long = minilm32.encode("word " * 300)  # tokenizer.json asks for truncation and padding at 128: both are off
    assert long.size == 302 and long[0] == 101 and long[-1] == 102


@pytest.mark.parametrize("text", SENTENCES)
def test_minilm_float32_matches_numpy_bert(minilm, minilm32, text):
    _, config, weights = minilm
    ids = minilm32.encode(text)
    ref = bert_reference(weights, config, ids)
    cap = minilm32.capture(ids)
    assert cap.hidden_states.shape == (7, ids.size, 384) and cap.logits is None
    assert _layer_rel(cap.hidden_states, ref["hidden"]) < 1e-5
    for layer, q, k, p in zip(cap.layers, ref["q"], ref["k"], ref["p"], strict=True):
        assert layer.queries.shape == (12, ids.size, 32) and not layer.causal and layer.scale == 32**-0.5
        np.testing.assert_allclose(layer.queries, q, atol=1e-5 * np.abs(q).max())
        np.testing.assert_allclose(layer.keys, k, atol=1e-5 * np.abs(k).max())
        np.testing.assert_allclose(layer.probabilities, p, atol=1e-5)
    np.testing.assert_allclose(minilm32.embed(ids), _unit(ref["hidden"][-1].mean(0)), atol=1e-5)


def test_minilm_bfloat16_matches_numpy_bert(minilm):
    path, config, weights = minilm
    model = pm.load(path, dtype="bfloat16")
    ids = model.encode(SENTENCES[0])
    ref = bert_reference(weights, config, ids)
    cap = model.capture(ids)
    assert _layer_rel(cap.hidden_states, ref["hidden"]) < 3e-2
    assert max(float(np.abs(a.probabilities - p).max()) for a, p in zip(cap.layers, ref["p"], strict=True)) < 5e-2
    assert float(_unit(cap.hidden_states[-1].mean(0)) @ _unit(ref["hidden"][-1].mean(0))) > 0.999


def test_minilm_embeddings_carry_meaning(minilm32):
    guitar, guitar2, market = (minilm32.embed(minilm32.encode(s)) for s in SENTENCES)
    assert guitar @ guitar2 > 0.6 and guitar @ market < 0.2


def test_bert_prefixed_names_and_extra_tensors(tmp_path):
    """A BertModel checkpoint saved with ``bert.`` names and a pooler loads like a bare sentence-transformers one."""
    config = {"model_type": "bert", "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
              "num_attention_heads": 4, "max_position_embeddings": 16, "type_vocab_size": 2, "vocab_size": 50,
              "hidden_act": "gelu", "layer_norm_eps": 1e-12, "position_embedding_type": "absolute"}
    rng = np.random.default_rng(3)
    d, f = 32, 48
    shapes = {"embeddings.word_embeddings.weight": (50, d), "embeddings.position_embeddings.weight": (16, d),
              "embeddings.token_type_embeddings.weight": (2, d), "embeddings.LayerNorm.weight": (d,),
              "embeddings.LayerNorm.bias": (d,), "pooler.dense.weight": (d, d), "pooler.dense.bias": (d,)}
    for n in range(2):
        p = f"encoder.layer.{n}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[p + m + ".weight"], shapes[p + m + ".bias"] = (d, d), (d,)
        shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (f, d), (f,)
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (d, f), (d,)
        for m in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + m + ".weight"], shapes[p + m + ".bias"] = (d,), (d,)
    tensors = {"bert." + k: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32) for k, s in shapes.items()}
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file(tensors, str(tmp_path / "model.safetensors"))
    ids = rng.integers(0, 50, 11)
    cap = pm.load(tmp_path).capture(ids)
    ref = bert_reference(tensors, config, ids)
    assert _layer_rel(cap.hidden_states, ref["hidden"]) < 1e-5
