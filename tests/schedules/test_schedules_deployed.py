"""Deployed temperature schedules read from real config.json files, against the engines' code.

Each config below is written to a config.json in the test, with the values of the public model config
(where each came from is stated next to it; where a stored source did not have a value, the comment
says so and the value is one that the temperature does not depend on). Each engine rule is
reimplemented here in NumPy from the model code (repository and path next to each function): the
attention factor exactly as the engine computes it, then one attention logit formed the way the model
file forms it (rotate q and k with the scaled cos/sin, multiply q, apply the softmax scale, cap).

The logit factor is measured as that logit divided by the base logit q.k/sqrt(head_dim) of the same
q and k. With q = k = the all-ones vector at one position the rotation cancels and every dimension
weighs the same, so the measured ratio is the dimension-weighted (isotropic) mix that phasejax reports.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from phasejax import schedules
from phasejax._checks import InputError

NS = np.array([4096.0, 32768.0, 131072.0])  # n = pos + 1


# DeepSeek-V2-Lite: the config verbatim as quoted in a public C++ test fixture ("verbatim except for HF
# bookkeeping keys") and, for rope_scaling, a public Python test ("DeepSeek-V2-Lite's rope_scaling,
# verbatim"). The full DeepSeek-V2 (236B) config was not found verbatim in a stored source with
# mscale 0.707 (one third-party copy shows mscale = mscale_all_dim = 1.0); V2-Lite shares the rope and
# MLA head dimensions (qk_nope 128, qk_rope 64) that the temperature depends on.
DEEPSEEK_V2 = {
    "architectures": ["DeepseekV2ForCausalLM"], "attention_bias": False, "aux_loss_alpha": 0.001,
    "bos_token_id": 100000, "eos_token_id": 100001, "first_k_dense_replace": 1, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 10944, "kv_lora_rank": 512,
    "max_position_embeddings": 163840, "model_type": "deepseek_v2", "moe_intermediate_size": 1408,
    "moe_layer_freq": 1, "n_group": 1, "n_routed_experts": 64, "n_shared_experts": 2, "norm_topk_prob": False,
    "num_attention_heads": 16, "num_experts_per_tok": 6, "num_hidden_layers": 27, "num_key_value_heads": 16,
    "q_lora_rank": None, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 1.0, "scoring_func": "softmax", "seq_aux": True,
    "tie_word_embeddings": False, "topk_group": 1, "topk_method": "greedy", "torch_dtype": "bfloat16",
    "v_head_dim": 128, "vocab_size": 102400,
}


# DeepSeek-V3: rope_scaling verbatim from a public test ("Real rope_scaling blocks, verbatim from the
# published configs"); dimensions from public config dumps (hidden 7168, 128 heads, MLA 128 + 64,
# max_position_embeddings 163840, rope_theta 10000) and deepseek-ai/DeepSeek-V3 inference/configs/
# config_671B.json (n_heads 128, q_lora_rank 1536, kv_lora_rank 512, qk dims 128/64, v_head_dim 128).
DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 7168,
    "num_attention_heads": 128, "num_key_value_heads": 128, "num_hidden_layers": 61, "q_lora_rank": 1536,
    "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "max_position_embeddings": 163840, "rope_theta": 10000, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
}


# Kimi-K2-Instruct: rope_scaling verbatim from the same public test (K2_ROPE); 64 heads, hidden 7168,
# rope_theta 50000, MLA 128 + 64 from public config dumps (Kimi-K2.5 text_config, hf-model-inspector
# report of Kimi-K2-Instruct-0905, which has factor 64); max_position_embeddings 131072 (= 32 x 4096) as
# in a public derived Kimi-K2 config.
KIMI_K2 = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "kimi_k2", "hidden_size": 7168,
    "num_attention_heads": 64, "num_key_value_heads": 64, "num_hidden_layers": 61, "q_lora_rank": 1536,
    "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "max_position_embeddings": 131072, "rope_theta": 50000.0, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 1.0, "beta_slow": 1.0, "factor": 32.0, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
}


# Qwen2.5-7B-Instruct: config values from public dumps (hidden 3584, 28 heads, 4 KV heads, 28 layers,
# max_position_embeddings 32768, rope_theta 1e6, use_sliding_window false); rope_scaling is the block the
# Qwen2.5 model card / qwen.readthedocs deployment guide tells users to add for 128k (YaRN factor 4).
QWEN25 = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
    "num_attention_heads": 28, "num_key_value_heads": 4, "num_hidden_layers": 28,
    "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "sliding_window": 131072,
    "use_sliding_window": False, "max_window_layers": 28,
    "rope_scaling": {"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"},
}


# gpt-oss-120b: huggingface/transformers src/transformers/models/gpt_oss/configuration_gpt_oss.py defaults
# (36 layers, 128 experts: the 120b model), layer_types as its default rule (sliding on even layers).
GPT_OSS = {
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "num_hidden_layers": 36,
    "num_local_experts": 128, "hidden_size": 2880, "head_dim": 64, "num_attention_heads": 64,
    "num_key_value_heads": 8, "sliding_window": 128, "rope_theta": 150000.0, "max_position_embeddings": 131072,
    "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                     "original_max_position_embeddings": 4096},
    "layer_types": ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(36)],
}


# Phi-3-mini-128k-instruct: hidden 3072, 32 heads, 32 layers (huggingface/transformers Phi3Config defaults),
# max_position_embeddings 131072 and original_max_position_embeddings 4096 (the 128k variant; the same
# pair in the public Phi-4-mini config class derived from Phi-3), rope_scaling type "longrope" (older
# uploads say "su", which Phi3Config renames). The 48 long_factor / short_factor values of the real
# config were NOT found in any stored source: they set the rotation frequencies only, never the
# attention factor, so ones stand in for them here.
PHI3_MINI_128K = {
    "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
    "num_attention_heads": 32, "num_key_value_heads": 32, "num_hidden_layers": 32,
    "max_position_embeddings": 131072, "original_max_position_embeddings": 4096, "rope_theta": 10000.0,
    "rope_scaling": {"type": "longrope", "long_factor": [1.0] * 48, "short_factor": [1.0] * 48},
}


# Ministral-3-8B (2512): huggingface/transformers src/transformers/models/ministral3/configuration_ministral3.py
# defaults, documented as the mistralai/Ministral-3-8B-{Base,Instruct,Reasoning}-2512 configuration; the same
# rope_parameters appear verbatim in a public config.json derived from Ministral-3-8B.
MINISTRAL3 = {
    "architectures": ["Ministral3ForCausalLM"], "model_type": "ministral3", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 34, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 128, "max_position_embeddings": 262144, "rms_norm_eps": 1e-05, "sliding_window": None,
    "rope_parameters": {"type": "yarn", "rope_theta": 1000000.0, "factor": 16.0,
                        "original_max_position_embeddings": 16384, "max_position_embeddings": 262144,
                        "beta_fast": 32.0, "beta_slow": 1.0, "mscale_all_dim": 1.0, "mscale": 1.0,
                        "llama_4_scaling_beta": 0.1},
}


# Llama-4-Scout-17B-16E: text_config values from public fixtures (hidden 5120, 40 heads, 8 KV heads,
# head_dim 128, 48 layers, max_position_embeddings 10485760, rope_theta 500000, attention_chunk_size 8192,
# rms_norm_eps 1e-5, rope_scaling llama3 factor 16 / 1 / 1 / 8192). use_qk_norm, attn_temperature_tuning,
# floor_scale, attn_scale, no_rope_layer_interval: huggingface/transformers
# src/transformers/models/llama4/configuration_llama4.py defaults (documented as the Scout configuration);
# the Hub config.json's own values of these keys were not in a stored source.
LLAMA4_SCOUT = {
    "architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
    "text_config": {
        "model_type": "llama4_text", "hidden_size": 5120, "num_attention_heads": 40, "num_key_value_heads": 8,
        "head_dim": 128, "num_hidden_layers": 48, "max_position_embeddings": 10485760, "rope_theta": 500000.0,
        "attention_chunk_size": 8192, "rms_norm_eps": 1e-05, "interleave_moe_layer_step": 1,
        "num_local_experts": 16, "num_experts_per_tok": 1,
        "rope_scaling": {"factor": 16.0, "high_freq_factor": 1.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "use_qk_norm": True, "attn_temperature_tuning": 4, "floor_scale": 8192, "attn_scale": 0.1,
        "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(48)],
    },
}


# gemma-2-27b: the config verbatim as quoted in a public test fixture (transformers 5 format).
GEMMA2_27B = {
    "architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": 1,
    "final_logit_softcapping": 30.0, "head_dim": 128, "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 4608, "initializer_range": 0.02,
    "intermediate_size": 36864, "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 32,
    "num_hidden_layers": 46, "num_key_value_heads": 16, "pad_token_id": 0, "query_pre_attn_scalar": 144,
    "rms_norm_eps": 1e-06, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}, "sliding_window": 4096,
    "sliding_window_size": 4096, "torch_dtype": "float32", "use_cache": True, "vocab_size": 256000,
}


CONFIGS = {
    "DeepSeek-V2(-Lite)": DEEPSEEK_V2, "DeepSeek-V3": DEEPSEEK_V3, "Kimi-K2": KIMI_K2, "Qwen2.5 (YaRN 4)": QWEN25,
    "GPT-OSS-120b": GPT_OSS, "Phi-3-mini-128k": PHI3_MINI_128K, "Ministral-3-8B": MINISTRAL3,
    "Llama-4-Scout": LLAMA4_SCOUT, "Gemma-2-27B": GEMMA2_27B,
}


def _write(tmp_path, cfg, name="model"):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return d / "config.json"


def get_mscale(scale, mscale=1.0):
    # huggingface/transformers src/transformers/modeling_rope_utils.py (_compute_yarn_parameters.get_mscale);
    # vllm-project/vllm vllm/model_executor/models/deepseek_v2.py (yarn_get_mscale)
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def hf_rope_params(config):
    # huggingface/transformers src/transformers/modeling_rope_utils.py (RotaryEmbeddingConfigMixin.
    # standardize_rope_params): rope_type from "type"; original_max_position_embeddings: the top-level attribute
    # wins, else the dict's, else max_position_embeddings. src/transformers/models/phi3: "su" -> "longrope".
    cfg = {**config, **config.get("text_config", {})}
    rp = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    rp.setdefault("rope_type", rp.get("type", "default"))
    if cfg.get("model_type") == "phi3" and rp["rope_type"] in ("su", "yarn"):
        rp["rope_type"] = "longrope"
    if rp["rope_type"] in ("llama3", "yarn", "longrope"):
        if "original_max_position_embeddings" in cfg:
            rp["original_max_position_embeddings"] = cfg["original_max_position_embeddings"]
        else:
            rp.setdefault("original_max_position_embeddings", cfg["max_position_embeddings"])
    return cfg, rp


def hf_attention_factor(config):
    # huggingface/transformers src/transformers/modeling_rope_utils.py, v5: _compute_yarn_parameters and
    # _compute_longrope_parameters return (inv_freq, attention_factor); the others return 1.0.
    cfg, rp = hf_rope_params(config)
    if rp["rope_type"] == "yarn":
        factor = rp["factor"]
        attention_factor = rp.get("attention_factor")
        mscale, mscale_all_dim = rp.get("mscale"), rp.get("mscale_all_dim")
        if factor is None:
            factor = cfg["max_position_embeddings"] / rp["original_max_position_embeddings"]
        if attention_factor is None:
            if mscale and mscale_all_dim:
                attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
            else:
                attention_factor = get_mscale(factor)
        return attention_factor
    if rp["rope_type"] == "longrope":
        factor = rp.get("factor")
        attention_factor = rp.get("attention_factor")
        original = rp["original_max_position_embeddings"]
        if factor is None:
            factor = cfg["max_position_embeddings"] / original
        if attention_factor is None:
            attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
        return attention_factor
    return 1.0


def vllm_attention_factor(config, *, mla, max_model_len=None):
    # vllm-project/vllm vllm/model_executor/layers/rotary_embedding/__init__.py (get_rope): "yarn" passes only
    # extrapolation_factor, attn_factor, beta_fast, beta_slow, apply_yarn_scaling, truncate to
    # yarn_scaling_rope.py (mscale = yarn_get_mscale(factor) * attn_factor if apply_yarn_scaling else attn_factor);
    # MLA models rename the type to "deepseek_yarn" (vllm/model_executor/models/deepseek_v2.py) and
    # deepseek_scaling_rope.py uses yarn_get_mscale(f, mscale) / yarn_get_mscale(f, mscale_all_dim) * attn_factor
    # (defaults 1, 0, 1); "longrope": phi3_long_rope_scaled_rope.py (short/long_mscale, default
    # sqrt(1 + log(max_pos / orig) / log(orig)), the long cache when max_model_len > orig).
    cfg, rp = hf_rope_params(config)
    if rp["rope_type"] == "yarn" and mla:
        f = rp["factor"]
        return (get_mscale(f, float(rp.get("mscale", 1))) / get_mscale(f, float(rp.get("mscale_all_dim", 0)))
                * rp.get("attn_factor", 1))
    if rp["rope_type"] == "yarn":
        af = rp.get("attn_factor", 1)
        return get_mscale(rp["factor"]) * af if rp.get("apply_yarn_scaling", True) else float(af)
    if rp["rope_type"] == "longrope":
        orig, mpe = rp["original_max_position_embeddings"], cfg["max_position_embeddings"]
        scale = mpe / orig
        default = 1.0 if scale <= 1.0 else math.sqrt(1 + math.log(scale) / math.log(orig))
        use_long = (max_model_len or mpe) > orig
        m = rp.get("long_mscale" if use_long else "short_mscale")
        return default if m is None else m
    return 1.0


def rotate_half(x):
    # huggingface/transformers src/transformers/models/llama/modeling_llama.py (rotate_half)
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rotary_cos_sin(rot_dim, pos, theta, attention_scaling):
    # huggingface/transformers ...modeling_llama.py (LlamaRotaryEmbedding.forward): emb = cat(freqs, freqs);
    # cos = emb.cos() * attention_scaling; sin = emb.sin() * attention_scaling
    inv_freq = 1.0 / theta ** (np.arange(0, rot_dim, 2) / rot_dim)
    freqs = pos * inv_freq
    emb = np.concatenate([freqs, freqs])
    return np.cos(emb) * attention_scaling, np.sin(emb) * attention_scaling


def apply_rotary_partial(x, cos, sin):
    # huggingface/transformers src/transformers/models/phi/modeling_phi.py (apply_rotary_pos_emb with partial
    # rotary: q_rot, q_pass = q[..., :rotary_dim], q[..., rotary_dim:]); full rotary when rotary_dim = head_dim
    r = cos.shape[-1]
    x_rot, x_pass = x[..., :r], x[..., r:]
    return np.concatenate([x_rot * cos + rotate_half(x_rot) * sin, x_pass], axis=-1)


def llama_style_logit(n, *, d, rot_dim, theta, attention_scaling, scaling, q_mult=1.0, softcap=None):
    """One logit as llama-style model files form it: rotate q and k at pos = n - 1, q *= q_mult, * scaling."""
    pos = n - 1.0
    q = k = np.ones(d)
    cos, sin = rotary_cos_sin(rot_dim, pos, theta, attention_scaling)
    qe, ke = apply_rotary_partial(q, cos, sin), apply_rotary_partial(k, cos, sin)
    qe = qe * q_mult
    logit = float(qe @ ke) * scaling
    if softcap is not None:  # src/transformers/models/gemma2/modeling_gemma2.py (eager_attention_forward)
        logit = math.tanh(logit / softcap) * softcap
    return logit


def base_logit(d):
    return d * d**-0.5  # q = k = ones, softmax scale 1/sqrt(head_dim)


def ministral3_q_scale(n, rope):
    # huggingface/transformers src/transformers/models/ministral3/modeling_ministral3.py (_get_llama_4_attn_scale:
    # 1 + beta * log(1 + floor(positions_ids / max_position_embeddings)), called with cache_position (0-based)
    # and rope_parameters["original_max_position_embeddings"])
    pos = n - 1
    return 1 + rope["llama_4_scaling_beta"] * math.log(1 + math.floor(pos / rope["original_max_position_embeddings"]))


def mla_logit(n, config, *, engine):
    """DeepSeek MLA: q = [q_nope, q_pe], k = [k_nope, k_pe], RoPE (with the yarn factor) on the pe parts.

    HF: src/transformers/models/deepseek_v3/modeling_deepseek_v3.py (DeepseekV3Attention: scaling =
    qk_head_dim^-0.5, times yarn_get_mscale(factor, mscale_all_dim)^2 if mscale_all_dim), with cos/sin from
    _compute_yarn_parameters; deepseek_v2 in transformers: src/transformers/models/deepseek_v2/
    modular_deepseek_v2.py (scaling = qk_head_dim^-0.5, no mscale). vLLM: vllm/model_executor/models/
    deepseek_v2.py (self.scaling * mscale * mscale, mscale = yarn_get_mscale(factor, mscale_all_dim)).
    """
    d_nope, d_rope = config["qk_nope_head_dim"], config["qk_rope_head_dim"]
    rp = config["rope_scaling"]
    scaling = (d_nope + d_rope) ** -0.5
    if engine == "hf":
        af = hf_attention_factor(config)
        if config["model_type"] != "deepseek_v2" and rp.get("mscale_all_dim", 0):
            scaling *= get_mscale(rp["factor"], rp["mscale_all_dim"]) ** 2
    else:
        af = vllm_attention_factor(config, mla=True)
        scaling *= get_mscale(rp["factor"], float(rp.get("mscale_all_dim", False))) ** 2
    q_nope = k_nope = np.ones(d_nope)
    cos, sin = rotary_cos_sin(d_rope, n - 1.0, config["rope_theta"], af)
    q_pe = apply_rotary_partial(np.ones(d_rope), cos, sin)
    k_pe = apply_rotary_partial(np.ones(d_rope), cos, sin)
    q, k = np.concatenate([q_nope, q_pe]), np.concatenate([k_nope, k_pe])
    return float(q @ k) * scaling


def llama4_logit(n, config, *, layer):
    """huggingface/transformers src/transformers/models/llama4/modeling_llama4.py (Llama4TextAttention):
    RoPE layers: apply_rotary_emb, then qk_norm = Llama4TextL2Norm (x * rsqrt(mean(x^2) + eps)) if use_qk_norm;
    NoPE layers: query *= log(floor((cache_position + 1) / floor_scale) + 1) * attn_scale + 1; scaling =
    head_dim^-0.5. Returns (logit, its q.k/sqrt(d) base)."""
    tc = config["text_config"]
    d = tc["head_dim"]
    q = k = np.ones(d)
    if layer == "rope":  # llama3 rope: attention factor 1, rotation cancels at one position
        cos, sin = rotary_cos_sin(d, n - 1.0, tc["rope_theta"], 1.0)
        q, k = apply_rotary_partial(q, cos, sin), apply_rotary_partial(k, cos, sin)
        eps = tc["rms_norm_eps"]
        q = q / np.sqrt(np.mean(q**2) + eps)
        k = k / np.sqrt(np.mean(k**2) + eps)
        cosine = 1.0  # q and k are parallel
        return float(q @ k) * d**-0.5, cosine
    scale = math.log(math.floor(n / tc["floor_scale"]) + 1.0) * tc["attn_scale"] + 1.0
    return float((q * scale) @ k) * d**-0.5, base_logit(d)


def engine_logit_factor(name, config, n, *, engine="hf", layer=None):
    """The reimplemented engine's logit factor (logit / base logit) at n for one config and layer type."""
    if name in ("DeepSeek-V2(-Lite)", "DeepSeek-V3", "Kimi-K2"):
        d = config["qk_nope_head_dim"] + config["qk_rope_head_dim"]
        return mla_logit(n, config, engine=engine) / base_logit(d)
    if name == "Llama-4-Scout":
        logit, base = llama4_logit(n, config, layer=layer)
        return logit / base
    cfg, rp = hf_rope_params(config)
    d = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    rot = int(d * rp.get("partial_rotary_factor", 1.0))
    af = hf_attention_factor(config) if engine == "hf" else vllm_attention_factor(config, mla=False)
    theta = rp.get("rope_theta") or cfg.get("rope_theta") or 10000.0
    scaling = cfg["query_pre_attn_scalar"] ** -0.5 if "query_pre_attn_scalar" in cfg else d**-0.5
    q_mult = ministral3_q_scale(n, rp) if "llama_4_scaling_beta" in rp else 1.0
    return llama_style_logit(n, d=d, rot_dim=rot, theta=theta, attention_scaling=af, scaling=scaling,
                             q_mult=q_mult) / base_logit(d)


# the layer types that each config has, and the ones the table reports
LAYERS = {"GPT-OSS-120b": ("sliding_attention", "full_attention"), "Llama-4-Scout": ("rope", "nope"),
          "Gemma-2-27B": ("sliding_attention", "full_attention")}


def comparison_rows(tmp_path, engine="hf"):
    """[(config, layer type, phasejax at NS, reimplementation at NS, max relative difference)]."""
    rows = []
    for name, cfg in CONFIGS.items():
        sched = schedules.from_config(_write(tmp_path, cfg, f"{name.replace(' ', '_')}-{engine}"), engine=engine)
        for layer in LAYERS.get(name, (None,)):
            ours = sched.logit_factor(NS, layer_type=layer)
            if name == "Llama-4-Scout" and layer == "rope":
                ours = sched.beta(NS, layer_type=layer)  # beta0 fixed by the qk-norm
            ref = np.array([engine_logit_factor(name, cfg, n, engine=engine, layer=layer) for n in NS])
            rows.append((name, layer, ours, ref, float(np.max(np.abs(ours / ref - 1)))))
    return rows


def test_every_config_matches_its_engine_hf(tmp_path):
    for name, layer, ours, ref, rel in comparison_rows(tmp_path, "hf"):
        tol = 2e-5 if (name, layer) == ("Llama-4-Scout", "rope") else 1e-12  # the L2 norm's eps = 1e-5
        assert rel < tol, (name, layer, ours, ref)


def test_every_config_matches_its_engine_vllm(tmp_path):
    for name, layer, ours, ref, rel in comparison_rows(tmp_path, "vllm"):
        tol = 2e-5 if (name, layer) == ("Llama-4-Scout", "rope") else 1e-12
        assert rel < tol, (name, layer, ours, ref)


@pytest.mark.parametrize("name, cfg", list(CONFIGS.items()))
def test_rope_attention_factor_is_hf_exact(name, cfg, tmp_path):
    assert schedules.rope_attention_factor(cfg) == pytest.approx(hf_attention_factor(cfg), rel=0, abs=1e-15)
    from_file = schedules.rope_attention_factor(str(_write(tmp_path, cfg)), seq_len=131072)
    assert from_file == schedules.rope_attention_factor(cfg)


def test_issue_numbers(tmp_path):
    """The numbers of issue 20: DeepSeek-V2 x 1.590 (engines that apply mscale_all_dim), Ministral-3 factor 1."""
    v2 = schedules.from_config(DEEPSEEK_V2, engine="vllm")
    assert v2.logit_factor(4096)[0] == pytest.approx(get_mscale(40, 0.707) ** 2, rel=1e-14)
    assert round(float(v2.logit_factor(4096)[0]), 3) == 1.590
    hf_v2 = schedules.from_config(DEEPSEEK_V2)  # transformers' native deepseek_v2 drops it: a pitfall, noted
    assert hf_v2.logit_factor(4096)[0] == 1.0 and any("DeepseekV2Attention" in s for s in hf_v2.notes)
    m3 = schedules.from_config(MINISTRAL3)
    assert m3.layer_type().components[0].value == 1.0  # attention factor 1 (mscale = mscale_all_dim = 1)
    assert m3.logit_factor([16384, 16385]).tolist() == pytest.approx([1.0, 1 + 0.1 * math.log(2)], rel=1e-14)
    v3 = schedules.from_config(DEEPSEEK_V3)
    assert v3.logit_factor(10)[0] == pytest.approx((0.1 * math.log(40) + 1) ** 2, rel=1e-14)  # 1.874


def test_report_is_json_and_complete(tmp_path):
    for name, cfg in CONFIGS.items():
        for engine in schedules.ENGINES:
            rep = schedules.from_config(cfg, engine=engine).report(NS)
            text = json.dumps(rep, allow_nan=False)  # JSON-ready: no NaN, no numpy scalars
            assert json.loads(text)["n"] == NS.tolist()
            for lt in rep["layer_types"]:
                assert len(lt["total_logit_factor"]) == 3 and len(lt["keys_seen"]) == 3
                for c in lt["components"]:
                    assert c["source"] and c["applied_to"] and isinstance(c["config_keys"], dict), (name, c)
                    if not c["nonlinear"]:
                        assert len(c["logit_factor"]) == 3


def test_per_layer_types_and_windows():
    scout = schedules.from_config(LLAMA4_SCOUT)
    assert scout.layer_type_names == ("rope", "nope")
    rope, nope = scout.layer_type("rope"), scout.layer_type("nope")
    assert len(rope.layers) == 36 and len(nope.layers) == 12 and nope.layers[0] == 3
    assert rope.beta0 == math.sqrt(128) and nope.beta0 is None
    assert rope.keys_seen([8192, 8193]).tolist() == [8192, 1]  # chunked attention restarts every 8192 tokens
    assert scout.beta(NS, layer_type="rope").tolist() == pytest.approx([math.sqrt(128)] * 3, rel=1e-15)
    with pytest.raises(InputError, match="beta0 must not be given"):
        scout.beta(NS, beta0=2.0, layer_type="rope")
    assert scout.beta(131072, beta0=2.0, layer_type="nope")[0] == pytest.approx(2 * (1 + 0.1 * math.log(17)))
    rep = scout.report([131072], beta0=2.0)
    assert rep["layer_types"][0]["beta"] == pytest.approx([math.sqrt(128)])  # fixed by the qk-norm
    assert rep["layer_types"][1]["beta"] == pytest.approx([2 * (1 + 0.1 * math.log(17))])
    assert scout.report([131072])["layer_types"][1]["beta"] is None
    g = schedules.from_config(GEMMA2_27B)
    assert g.layer_type_names == ("sliding_attention", "full_attention")
    assert g.layer_type("sliding_attention").keys_seen([100, 10000]).tolist() == [100, 4096]
    rep = g.report([4096])
    cap = [c for c in rep["layer_types"][1]["components"] if c["nonlinear"]][0]
    assert cap["logit_factor"] is None and cap["transform"] == "50 * tanh(x / 50)" and cap["cap"] == 50.0
    assert "scalar beta does not describe" in rep["layer_types"][1]["note"]
    oss = schedules.from_config(GPT_OSS)
    assert oss.layer_type("sliding_attention").window == 128 and len(oss.layer_type("full_attention").layers) == 18
    assert any("attention sink" in s for s in oss.notes)


def test_soft_cap_transform_matches_gemma2():
    # src/transformers/models/gemma2/modeling_gemma2.py: attn_weights = tanh(attn_weights / softcap) * softcap
    cap = [c for c in schedules.from_config(GEMMA2_27B).layer_type("full_attention").components if c.nonlinear][0]
    x = np.array([-300.0, -1.0, 0.0, 2.0, 49.0, 1e4])
    np.testing.assert_allclose(cap.transform(x), np.tanh(x / 50.0) * 50.0, rtol=1e-15)
    with pytest.raises(InputError, match="transform"):
        cap.dim_factor(10)
    grok = schedules.from_config({"model_type": "grok-1", "hidden_size": 6144, "num_attention_heads": 48,
                                  "max_position_embeddings": 8192})
    assert [c.value for c in grok.layer_type().transforms] == [30.0]  # vllm grok1.py default


def test_partial_rotary_and_mla_ranges():
    # Phi-style partial rotary: only the rotated 25 % of the dims get a^2 (a from an explicit attention_factor)
    cfg = {"model_type": "phi", "hidden_size": 2560, "num_attention_heads": 32, "partial_rotary_factor": 0.4,
           "max_position_embeddings": 8192,
           "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "attention_factor": 1.5,
                            "original_max_position_embeddings": 2048}}
    s = schedules.from_config(cfg)
    d, rot = 80, int(80 * 0.4)
    ref = llama_style_logit(100.0, d=d, rot_dim=rot, theta=10000.0, attention_scaling=1.5,
                            scaling=d**-0.5) / base_logit(d)
    assert s.logit_factor(100.0)[0] == pytest.approx(ref, rel=1e-14) == pytest.approx(0.4 * 2.25 + 0.6)
    lo, hi = s.layer_type().logit_factor_range(100.0)
    assert (lo[0], hi[0]) == (1.0, 2.25)
    # MLA with mscale != mscale_all_dim: the rope and nope dims get different factors
    v = {**DEEPSEEK_V3, "rope_scaling": {**DEEPSEEK_V3["rope_scaling"], "mscale": 0.707, "mscale_all_dim": 1.0}}
    for engine in schedules.ENGINES:
        s = schedules.from_config(v, engine=engine)
        r2 = (get_mscale(40, 0.707) / get_mscale(40, 1.0)) ** 2
        m2 = get_mscale(40, 1.0) ** 2
        assert s.logit_factor(10)[0] == pytest.approx(m2 * (64 / 192 * r2 + 128 / 192), rel=1e-14)
        assert s.logit_factor(10)[0] == pytest.approx(mla_logit(10.0, v, engine=engine) / base_logit(192), rel=1e-14)
        lo, hi = s.layer_type().logit_factor_range(10)
        assert (lo[0], hi[0]) == pytest.approx((m2 * r2, m2), rel=1e-14)


def test_attention_factor_wins_and_vllm_ignores_it():
    cfg = {**QWEN25, "rope_scaling": {**QWEN25["rope_scaling"], "attention_factor": 1.25}}
    assert schedules.rope_attention_factor(cfg) == 1.25
    assert schedules.from_config(cfg).logit_factor(10)[0] == pytest.approx(1.5625)
    v = schedules.from_config(cfg, engine="vllm")
    assert v.logit_factor(10)[0] == pytest.approx(get_mscale(4.0) ** 2)
    assert any("attention_factor" in s and "ignored" in s for s in v.notes)
    # vLLM's own attn_factor key multiplies get_mscale(f)
    cfg2 = {**QWEN25, "rope_scaling": {**QWEN25["rope_scaling"], "attn_factor": 0.9}}
    v2 = schedules.from_config(cfg2, engine="vllm")
    assert v2.logit_factor(10)[0] == pytest.approx((get_mscale(4.0) * 0.9) ** 2)
    assert v2.logit_factor(10)[0] == pytest.approx(vllm_attention_factor(cfg2, mla=False) ** 2)


def test_longrope_mscale_overrides_vllm():
    cfg = {**PHI3_MINI_128K, "rope_scaling": {**PHI3_MINI_128K["rope_scaling"], "short_mscale": 1.1,
                                              "long_mscale": 1.243163121016122}}
    assert schedules.from_config(cfg).logit_factor(10)[0] == pytest.approx(1 + math.log(32) / math.log(4096))
    for mml in (None, 4096):
        s = schedules.from_config(cfg, engine="vllm", max_model_len=mml)
        assert s.logit_factor(10)[0] == pytest.approx(vllm_attention_factor(cfg, mla=False, max_model_len=mml) ** 2)
    assert schedules.from_config(cfg, engine="vllm", max_model_len=4096).logit_factor(10)[0] == pytest.approx(1.21)
    # the old Phi-3 type name
    old = {**PHI3_MINI_128K, "rope_scaling": {**PHI3_MINI_128K["rope_scaling"], "type": "su"}}
    assert schedules.rope_attention_factor(old) == schedules.rope_attention_factor(PHI3_MINI_128K)


def test_temperature_free_rope_types_say_so():
    for rtype, extra in (("linear", {}), ("dynamic", {}), ("llama3", {"low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                                     "original_max_position_embeddings": 8192})):
        cfg = {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 131072,
               "rope_scaling": {"rope_type": rtype, "factor": 8.0, **extra}}
        assert schedules.rope_attention_factor(cfg) == 1.0
        c = schedules.from_config(cfg).layer_type().components[0]
        assert c.kind == "none" and "leaves the temperature alone" in c.formula
        assert schedules.from_config(cfg).logit_factor(NS).tolist() == [1.0, 1.0, 1.0]
    scout = schedules.from_config(LLAMA4_SCOUT).layer_type("rope")
    assert scout.components[0].name == "rope_llama3" and scout.components[0].kind == "none"


def test_qwen1_logn_and_vllm_skips_it():
    # a Qwen-1 style config (synthetic values, not a real model's): use_logn_attn with seq_length 8192
    cfg = {"model_type": "qwen", "hidden_size": 4096, "num_attention_heads": 32, "kv_channels": 128,
           "seq_length": 8192, "max_position_embeddings": 32768, "use_logn_attn": True, "use_dynamic_ntk": True}
    s = schedules.from_config(cfg)
    n = np.array([100.0, 8192.0, 16384.0, 32767.0, 32768.0])
    # Qwen/Qwen-7B modeling_qwen.py: logn_list = [math.log(i, seq_length) if i > seq_length else 1 for i in
    # range(1, 32768)]; query *= logn_list[pos] (pos 0-based, i = pos + 1 = n); the table ends at i = 32767
    table = [math.log(i, 8192) if i > 8192 else 1 for i in range(1, 32768)]
    ref = [table[int(k) - 1] for k in n[:4]]
    np.testing.assert_allclose(s.logit_factor(n)[:4], ref, rtol=1e-14)
    assert math.isnan(s.logit_factor(n)[4]) and s.report(n)["layer_types"][0]["total_logit_factor"][4] is None
    v = schedules.from_config(cfg, engine="vllm")
    assert v.logit_factor(n).tolist() == [1.0] * 5 and any("qwen.py does not implement logn" in x for x in v.notes)


def test_dynamic_yarn_reference():
    cfg = {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "max_position_embeddings": 4096,
           "rope_scaling": {"type": "dynamic-yarn", "factor": 8.0, "original_max_position_embeddings": 4096}}
    s = schedules.from_config(cfg)
    # jquesnelle/yarn scaled_rope/modeling_llama_yarn.py: seq_len > max_seq_len_cached -> yarn(seq_len /
    # max_position_embeddings), cos and sin * get_mscale(scale): one factor for the whole sequence
    S = 4096 * 8.0
    assert s.logit_factor([10, 100, S], seq_len=S).tolist() == pytest.approx([get_mscale(8.0) ** 2] * 3)
    assert s.logit_factor([4096, 2 * 4096]).tolist() == pytest.approx([1.0, get_mscale(2.0) ** 2])
    with pytest.raises(InputError, match="seq_len"):
        s.logit_factor([10, 100], seq_len=50)
    np.testing.assert_allclose(np.asarray(schedules.yarn_dynamic(np.array([10.0, 100.0]), beta0=1.0,
                                                                 train_length=4096, seq_len=S), np.float64),
                               get_mscale(8.0) ** 2, rtol=1e-6)


def test_mistral_native_llama_4_scaling_key():
    cfg = {"model_type": "mistral", "hidden_size": 4096, "num_attention_heads": 32, "head_dim": 128,
           "max_position_embeddings": 262144,
           "llama_4_scaling": {"original_max_position_embeddings": 16384, "beta": 0.1}}
    s = schedules.from_config(cfg)
    c = s.layer_type().components[0]
    assert c.name == "llama_4_scaling" and "llama_4_scaling.beta" in c.config_keys
    assert s.logit_factor(131072)[0] == pytest.approx(ministral3_q_scale(131072, {
        "llama_4_scaling_beta": 0.1, "original_max_position_embeddings": 16384}))


@pytest.mark.parametrize(
    "cfg, word",
    [
        ({**QWEN25, "rope_scaling": {"type": "magic", "factor": 2.0}}, "rope_type"),
        ({**QWEN25, "rope_scaling": {"type": "yarn", "factor": -2.0}}, "factor"),
        ({**QWEN25, "rope_scaling": {"type": "yarn", "original_max_position_embeddings": 32768}}, "factor"),
        ({**QWEN25, "rope_scaling": {"type": "yarn", "factor": 2.0, "attention_factor": -1.0}}, "attention_factor"),
        ({"model_type": "x", "max_position_embeddings": 10}, "head_dim"),
        ({**PHI3_MINI_128K, "rope_scaling": {"type": "longrope", "short_factor": [1.0]}}, "long_factor"),
        ({**GEMMA2_27B, "query_pre_attn_scalar": 0}, "query_pre_attn_scalar"),
        ({**MINISTRAL3, "rope_parameters": {**MINISTRAL3["rope_parameters"], "llama_4_scaling_beta": -1}},
         "llama_4_scaling_beta"),
    ],
)
def test_bad_config_names_key(cfg, word):
    with pytest.raises(InputError) as e:
        schedules.from_config(cfg)
    assert word in str(e.value) and any(w in str(e.value) for w in ("must", "needs"))
    if word in ("rope_type", "factor", "attention_factor", "long_factor"):
        with pytest.raises(InputError, match=word):
            schedules.rope_attention_factor(cfg)


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="engine must be one of 'hf', 'vllm'; got 'tgi'"):
        schedules.from_config(QWEN25, engine="tgi")
    with pytest.raises(InputError, match="config path"):
        schedules.from_config(str(tmp_path / "missing.json"))
    with pytest.raises(InputError, match="config must be a dict"):
        schedules.from_config(42)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="valid JSON"):
        schedules.from_config(str(tmp_path / "bad.json"))
    s = schedules.from_config(GEMMA2_27B)
    with pytest.raises(InputError, match="layer_type must be given"):
        s.logit_factor(10)
    with pytest.raises(InputError, match="layer_type must be one of"):
        s.logit_factor(10, layer_type="nope")
    with pytest.raises(InputError, match="n must be >= 1"):
        s.report([0, 10])
    with pytest.raises(InputError, match="seq_len"):
        schedules.rope_attention_factor(QWEN25, seq_len=0)
    with pytest.raises(InputError, match="beta0 must be given"):
        schedules.from_config(QWEN25).beta(10)
    per_layer = {**GEMMA2_27B, "layer_types": ["sliding_attention", "full_attention"],
                 "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                                     "full_attention": {"rope_type": "yarn", "factor": 8.0, "rope_theta": 1e6}}}
    with pytest.raises(InputError, match="per layer type"):
        schedules.rope_attention_factor(per_layer)
    s = schedules.from_config(per_layer)  # per-layer-type rope dicts are read per layer type
    assert s.logit_factor(10, layer_type="full_attention")[0] == pytest.approx(
        get_mscale(8.0) ** 2 * math.sqrt(128 / 144))
