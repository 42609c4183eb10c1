"""Independent float64 NumPy references for the phasejax.models tests, and writers of small checkpoints.

Written from the Hugging Face sources (transformers src/transformers/models/bert/modeling_bert.py,
models/llama/modeling_llama.py, models/qwen2, models/mistral, modeling_rope_utils.py), not from phasejax: plain
loops over layers and heads, float64 throughout, the RoPE frequencies recomputed element by element.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from scipy.special import erf


def layer_norm(x, w, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def bert_reference(t: dict, config: dict, ids) -> dict:
    """BertModel forward in float64: hidden states (N + 1, L, D) and per-layer q, k, probabilities (H, L, ...)."""
    t = {k.removeprefix("bert."): np.asarray(v, np.float64) for k, v in t.items()}
    ids = np.asarray(ids)
    L, H, eps = len(ids), config["num_attention_heads"], config["layer_norm_eps"]
    x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][:L]
    x = layer_norm(x + t["embeddings.token_type_embeddings.weight"][0], t["embeddings.LayerNorm.weight"],
                   t["embeddings.LayerNorm.bias"], eps)
    hidden, qs, ks, ps = [x], [], [], []
    for n in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{n}."

        def lin(name, h, p=p):
            return h @ t[p + name + ".weight"].T + t[p + name + ".bias"]

        q, k, v = (lin(f"attention.self.{m}", x).reshape(L, H, -1).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        probs = softmax(q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1]))
        ctx = (probs @ v).transpose(1, 0, 2).reshape(L, -1)
        a = layer_norm(x + lin("attention.output.dense", ctx), t[p + "attention.output.LayerNorm.weight"],
                       t[p + "attention.output.LayerNorm.bias"], eps)
        u = lin("intermediate.dense", a)
        x = layer_norm(a + lin("output.dense", 0.5 * u * (1 + erf(u / math.sqrt(2)))), t[p + "output.LayerNorm.weight"],
                       t[p + "output.LayerNorm.bias"], eps)
        hidden.append(x)
        qs.append(q), ks.append(k), ps.append(probs)
    return {"hidden": np.stack(hidden), "q": qs, "k": ks, "p": ps}


def rope_reference(config: dict, L: int):
    """cos, sin (L, D) times the attention factor, and that factor: HF's ``_compute_*_parameters``, one i at a time."""
    rope = dict(config.get("rope_scaling") or {"rope_type": "default"})
    kind = rope.get("rope_type", rope.get("type"))
    D = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    base, M = config["rope_theta"], config["max_position_embeddings"]
    orig = rope.get("original_max_position_embeddings", M)
    af = 1.0
    inv = []
    for i in range(D // 2):
        w = base ** (-(2 * i) / D)
        if kind == "linear":
            w /= rope["factor"]
        elif kind == "dynamic":
            b = base * (rope["factor"] * max(L, M) / M - (rope["factor"] - 1)) ** (D / (D - 2))
            w = b ** (-(2 * i) / D)
        elif kind == "yarn":
            f = rope["factor"]

            def cdim(r):
                return D * math.log(orig / (r * 2 * math.pi)) / (2 * math.log(base))

            lo = max(math.floor(cdim(rope.get("beta_fast", 32))), 0)
            hi = min(math.ceil(cdim(rope.get("beta_slow", 1))), D - 1)
            ramp = min(max((i - lo) / ((hi if hi != lo else hi + 0.001) - lo), 0.0), 1.0)
            w = (w / f) * ramp + w * (1 - ramp)
            af = rope.get("attention_factor", 0.1 * math.log(f) + 1 if f > 1 else 1.0)
        elif kind == "longrope":
            w /= (rope["long_factor"] if L > orig else rope["short_factor"])[i]
            f = rope.get("factor", M / orig)
            af = rope.get("attention_factor", math.sqrt(1 + math.log(f) / math.log(orig)) if f > 1 else 1.0)
        elif kind == "llama3":
            f, lo, hi = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
            wavelen = 2 * math.pi / w
            if wavelen > orig / lo:
                w /= f
            elif wavelen >= orig / hi:
                s = (orig / wavelen - lo) / (hi - lo)
                w = (1 - s) * w / f + s * w
        inv.append(w)
    ang = np.arange(L)[:, None] * np.asarray(inv)[None, :]
    ang = np.concatenate([ang, ang], -1)
    return np.cos(ang) * af, np.sin(ang) * af, af


def decoder_reference(t: dict, config: dict, ids) -> dict:
    """<Llama|Qwen2|Mistral>ForCausalLM forward in float64: HF hidden states, logits, per-layer q, k, probabilities."""
    t = {k.removeprefix("model."): np.asarray(v, np.float64) for k, v in t.items()}
    ids = np.asarray(ids)
    L, H = len(ids), config["num_attention_heads"]
    kv, eps = config["num_key_value_heads"], config["rms_norm_eps"]
    cos, sin, _ = rope_reference(config, L)
    N = config["num_hidden_layers"]
    windows = [None] * N
    if config["model_type"] == "mistral":
        windows = [config.get("sliding_window")] * N
    if config["model_type"] == "qwen2" and config.get("use_sliding_window"):
        windows = [config["sliding_window"] if n >= config["max_window_layers"] else None for n in range(N)]

    def rms(x, w):
        return w * (x / np.sqrt((x**2).mean(-1, keepdims=True) + eps))

    def rot(x):  # x (L, D) for one head
        h = x.shape[-1] // 2
        return x * cos + np.concatenate([-x[:, h:], x[:, :h]], -1) * sin

    x = t["embed_tokens.weight"][ids]
    hidden, qs, ks, ps = [x], [], [], []
    for n in range(config["num_hidden_layers"]):
        p = f"layers.{n}."

        def lin(name, h, p=p):
            y = h @ t[p + name + ".weight"].T
            return y + t[p + name + ".bias"] if p + name + ".bias" in t else y

        g = rms(x, t[p + "input_layernorm.weight"])
        q, k, v = (lin(f"self_attn.{m}_proj", g) for m in "qkv")
        D = q.shape[-1] // H
        w = windows[n]
        probs, outs, hq, hk = [], [], [], []
        for h in range(H):
            j = h // (H // kv)  # the key/value head of query head h's group
            qh, kh, vh = rot(q[:, h * D : (h + 1) * D]), rot(k[:, j * D : (j + 1) * D]), v[:, j * D : (j + 1) * D]
            z = qh @ kh.T / math.sqrt(D)
            for a in range(L):
                for b in range(L):
                    if b > a or (w is not None and a - b >= w):
                        z[a, b] = -np.inf
            pr = softmax(z)
            probs.append(pr), outs.append(pr @ vh), hq.append(qh), hk.append(kh)
        x = x + lin("self_attn.o_proj", np.concatenate(outs, -1))
        g = rms(x, t[p + "post_attention_layernorm.weight"])
        gate = lin("mlp.gate_proj", g)
        x = x + lin("mlp.down_proj", gate / (1 + np.exp(-gate)) * lin("mlp.up_proj", g))
        hidden.append(x)
        qs.append(np.stack(hq)), ks.append(np.stack(hk)), ps.append(np.stack(probs))
    final = rms(x, t["norm.weight"])
    hidden[-1] = final
    head = t["embed_tokens.weight"] if config["tie_word_embeddings"] else t["lm_head.weight"]
    return {"hidden": np.stack(hidden), "logits": final @ head.T, "q": qs, "k": ks, "p": ps}


def decoder_config(model_type: str = "llama", **changes) -> dict:
    """A small config.json of the Llama family (GQA: 4 query heads, 2 key/value heads)."""
    config = {
        "architectures": [{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM",
                           "mistral": "MistralForCausalLM"}[model_type]],
        "model_type": model_type,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "rope_theta": 100.0,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "vocab_size": 97,
        "torch_dtype": "float32",
    }
    return config | changes


def decoder_tensors(config: dict, *, seed: int) -> dict[str, np.ndarray]:
    """Random float32 weights with the names and shapes of <Family>ForCausalLM (std 1/sqrt(fan_in))."""
    rng = np.random.default_rng(seed)
    d, f, V = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    H, kv = config["num_attention_heads"], config["num_key_value_heads"]
    D = config.get("head_dim") or d // H
    qwen = config["model_type"] == "qwen2"

    def w(*shape):
        return (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(np.float32)

    def gain(n):
        return (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    t = {"model.embed_tokens.weight": w(V, d), "model.norm.weight": gain(d)}
    if not config["tie_word_embeddings"]:
        t["lm_head.weight"] = w(V, d)
    for n in range(config["num_hidden_layers"]):
        p = f"model.layers.{n}."
        for m, rows in (("q", H * D), ("k", kv * D), ("v", kv * D)):
            t[p + f"self_attn.{m}_proj.weight"] = w(rows, d)
            if qwen:
                t[p + f"self_attn.{m}_proj.bias"] = (0.3 * rng.standard_normal(rows)).astype(np.float32)
        t[p + "self_attn.o_proj.weight"] = w(d, H * D)
        t[p + "mlp.gate_proj.weight"], t[p + "mlp.up_proj.weight"] = w(f, d), w(f, d)
        t[p + "mlp.down_proj.weight"] = w(d, f)
        for norm in ("input_layernorm", "post_attention_layernorm"):
            t[p + norm + ".weight"] = gain(d)
    return t


def write_checkpoint(directory: Path, config: dict, tensors: dict, *, shards: int = 1) -> Path:
    """config.json and model.safetensors, or ``shards`` files with model.safetensors.index.json, as save_pretrained."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    if shards == 1:
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
        return directory
    names = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: tensors[k] for k in names[s::shards]}
        save_file(part, str(directory / file), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(part, file)
    index = {"metadata": {"total_size": sum(v.nbytes for v in tensors.values())}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return directory
