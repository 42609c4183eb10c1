"""RoPE inverse frequencies and attention factors against Hugging Face's rules, on real published configs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from phasejax.models.rope import inverse_frequencies
from phasejax.schedules import rope_attention_factor

LLAMA31 = {"hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 131072, "rope_theta": 500000.0,
           "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 8192}}  # meta-llama/Llama-3.1-8B config.json
QWEN25_YARN = {"hidden_size": 3584, "num_attention_heads": 28, "max_position_embeddings": 32768,
               "rope_theta": 1000000.0, "rope_scaling": {"type": "yarn", "factor": 4.0,
                                                        "original_max_position_embeddings": 32768}}
DEEPSEEK_V2_LITE = {"hidden_size": 2048, "num_attention_heads": 16, "qk_rope_head_dim": 64,
                    "max_position_embeddings": 163840, "rope_theta": 10000.0,
                    "rope_scaling": {"type": "yarn", "factor": 40, "beta_fast": 32, "beta_slow": 1, "mscale": 0.707,
                                     "mscale_all_dim": 0.707, "original_max_position_embeddings": 4096}}
PHI3_128K = {"hidden_size": 3072, "num_attention_heads": 32, "max_position_embeddings": 131072,
             "original_max_position_embeddings": 4096, "rope_theta": 10000.0,
             "rope_scaling": {"type": "longrope", "short_factor": [1.0] * 48, "long_factor": [2.0] * 48}}


def test_attention_factor_rules():
    assert rope_attention_factor(QWEN25_YARN, 10) == pytest.approx(0.1 * math.log(4) + 1)  # explicit factor wins
    assert rope_attention_factor(DEEPSEEK_V2_LITE, 10) == pytest.approx(1.0)  # mscale / mscale_all_dim
    only_mscale = DEEPSEEK_V2_LITE | {"rope_scaling": DEEPSEEK_V2_LITE["rope_scaling"] | {"mscale_all_dim": None}}
    assert rope_attention_factor(only_mscale, 10) == pytest.approx(0.1 * math.log(40) + 1)
    uneven = DEEPSEEK_V2_LITE | {"rope_scaling": DEEPSEEK_V2_LITE["rope_scaling"] | {"mscale": 1.0}}
    assert rope_attention_factor(uneven, 10) == pytest.approx((0.1 * math.log(40) + 1) /
                                                               (0.0707 * math.log(40) + 1))
    explicit = QWEN25_YARN | {"rope_scaling": QWEN25_YARN["rope_scaling"] | {"attention_factor": 1.25}}
    assert rope_attention_factor(explicit, 10) == 1.25
    assert rope_attention_factor(PHI3_128K, 10) == pytest.approx(math.sqrt(1 + math.log(32) / math.log(4096)))
    no_growth = PHI3_128K | {"max_position_embeddings": 4096}
    assert rope_attention_factor(no_growth, 10) == 1.0
    for config in (LLAMA31, {"hidden_size": 64, "num_attention_heads": 4, "max_position_embeddings": 8}):
        assert rope_attention_factor(config, 10) == 1.0


def test_llama31_frequencies():
    inv, factor = inverse_frequencies(LLAMA31, seq_len=100)
    base = 500000.0 ** -(np.arange(0, 128, 2) / 128)
    wavelen = 2 * np.pi / base
    assert factor == 1.0
    np.testing.assert_allclose(inv[wavelen < 8192 / 4], base[wavelen < 8192 / 4], rtol=1e-15)  # fast: kept
    np.testing.assert_allclose(inv[wavelen > 8192], base[wavelen > 8192] / 8, rtol=1e-15)  # slow: divided by 8
    mid = (wavelen >= 2048) & (wavelen <= 8192)
    assert mid.any() and np.all((inv[mid] < base[mid]) & (inv[mid] > base[mid] / 8))


def test_yarn_truncate_and_longrope_switch():
    small = {"hidden_size": 64, "num_attention_heads": 4, "max_position_embeddings": 64, "rope_theta": 100.0}
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}
    a, _ = inverse_frequencies(small | {"rope_scaling": yarn}, seq_len=4)
    b, _ = inverse_frequencies(small | {"rope_scaling": yarn | {"truncate": False}}, seq_len=4)
    assert not np.allclose(a, b)  # the correction range is not rounded to whole dimensions
    short, _ = inverse_frequencies(PHI3_128K, seq_len=4096)
    long, _ = inverse_frequencies(PHI3_128K, seq_len=4097)
    np.testing.assert_allclose(short, 2 * long, rtol=1e-15)


def test_dynamic_only_beyond_the_trained_window():
    config = {"hidden_size": 64, "num_attention_heads": 4, "max_position_embeddings": 32, "rope_theta": 100.0,
              "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}
    plain, _ = inverse_frequencies(config | {"rope_scaling": None}, seq_len=32)
    np.testing.assert_array_equal(inverse_frequencies(config, seq_len=32)[0], plain)
    longer, _ = inverse_frequencies(config, seq_len=64)
    theta = 100.0 * (2.0 * 64 / 32 - 1) ** (16 / 14)
    np.testing.assert_allclose(longer, theta ** -(np.arange(0, 16, 2) / 16), rtol=1e-14)
