"""`phasejax diagnose` (JSON contract, files, exit-2 errors) and the flax attention diagnosis."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np
import pytest

from phasejax import InputError
from phasejax.estimate import diagnose_flax, extract_qk


def _layer_and_inputs(**kw):
    layer = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=16, **kw)
    x = jax.random.normal(jax.random.key(0), (2, 96, 12))
    params = layer.init(jax.random.key(1), x)["params"]
    return layer, params, x


@pytest.mark.parametrize("normalize_qk", [False, True])
def test_flax_extraction_matches_the_layer(normalize_qk):
    layer, params, x = _layer_and_inputs(normalize_qk=normalize_qk)
    q, k = extract_qk(layer, params, x)
    assert q.shape == k.shape == (2, 96, 2, 8)
    _, state = layer.apply({"params": params}, x, sow_weights=True, mutable=["intermediates"])
    w_layer = np.asarray(jax.tree_util.tree_leaves(state["intermediates"])[0])  # (B, H, Lq, Lk)
    logits = np.einsum("bqhd,bkhd->bhqk", np.asarray(q, np.float64), np.asarray(k, np.float64)) / math.sqrt(8)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    np.testing.assert_allclose(w, w_layer, atol=2e-5)
    # beta_eff * cosine = logit, with beta_eff = s |Q| |K|
    qn, kn = np.linalg.norm(np.asarray(q, np.float64), axis=-1), np.linalg.norm(np.asarray(k, np.float64), axis=-1)
    beta = qn[:, :, None, :] * kn[:, None, :, :] / math.sqrt(8)  # (B, Lq, Lk, H)
    cos = np.einsum("bqhd,bkhd->bqkh", np.asarray(q, np.float64) / qn[..., None],
                    np.asarray(k, np.float64) / kn[..., None])
    np.testing.assert_allclose(np.transpose(beta * cos, (0, 3, 1, 2)), logits, atol=1e-9)


def test_diagnose_flax_per_head():
    layer, params, x = _layer_and_inputs()
    rep = diagnose_flax(layer, params, x, max_queries=64)
    assert rep.context_length == 96 and rep.scale == pytest.approx(1 / math.sqrt(8))
    assert rep.alpha.shape == rep.C.shape == rep.lambda_ratio.shape == (2,)
    assert np.all(np.isfinite(rep.alpha)) and np.all(rep.alpha > 0)
    assert set(rep.regime) <= {"sub", "critical", "super"}
    assert np.all(np.diff(rep.beta_eff_quantiles, axis=1) >= 0)
    q, k = extract_qk(layer, params, x)
    qn = np.linalg.norm(np.asarray(q, np.float64)[..., 0, :], axis=-1)
    kn = np.linalg.norm(np.asarray(k, np.float64)[..., 0, :], axis=-1)
    med = np.median(qn[:, :, None] * kn[:, None, :] / math.sqrt(8))
    assert rep.beta_typical[0] == pytest.approx(med)
    assert np.all((rep.mean_max_weight > 1 / 96) & (rep.mean_max_weight <= 1))
    from phasejax.cli.diagnose import head_table

    assert "regime" in head_table(rep)
    with pytest.raises(InputError):
        diagnose_flax(nn.Dense(4), params, x)
