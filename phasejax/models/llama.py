"""Llama-family decoders (``model_type`` "llama", "mistral", "qwen2") as equinox Modules.

Shape contract: ``Decoder(ids (L,), cos (L, D_h), sin (L, D_h), capture=...)`` -> hidden states (N + 1, L, D)
in Hugging Face's ``output_hidden_states`` order (the token embeddings, the outputs of layers 1..N-1, then the
final RMSNorm of layer N's output), logits (L, V), and with ``capture`` the per-layer :class:`~.layers.Trace`
stacked to queries/keys (N, H, L, D_h) and probabilities (N, H, L, L). cos/sin come from :mod:`.rope` and
already carry the RoPE attention factor.

Layer: h = x + O(attn(RMSNorm(x))); x' = h + W_down(silu(W_gate g) * W_up g), g = RMSNorm(h) (pre-norm, SwiGLU).
Attention: RoPE on queries and keys, grouped-query attention (query head h reads key/value head
h // (H / H_kv), as ``repeat_kv``), softmax scale 1/sqrt(D_h), causal mask, and where the config asks for it a
sliding window (key j is seen from query i iff i - W < j <= i). Biases: q/k/v for qwen2; q/k/v/o when
``attention_bias`` (llama); the MLP when ``mlp_bias`` (llama). The N layers are one scanned module.

Sources: transformers ``src/transformers/models/llama/modeling_llama.py`` (``LlamaAttention``, ``LlamaMLP``,
``LlamaDecoderLayer``, ``LlamaModel``, ``repeat_kv``), ``models/qwen2/modeling_qwen2.py`` and
``configuration_qwen2.py`` (biases, ``layer_types``/``max_window_layers``), ``models/mistral/modeling_mistral.py``
(``sliding_window`` on every layer), and ``src/transformers/masking_utils.py`` (the sliding-window overlay).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from .._checks import InputError, check_option
from .layers import ACTIVATIONS, Linear, RMSNorm, Trace, attend_and_project, matmul, split_heads
from .rope import apply_rope, head_dim

_NO_WINDOW = np.iinfo(np.int32).max


class DecoderAttention(eqx.Module):
    """RoPE grouped-query self-attention; returns the output and the :class:`Trace` of its softmax."""

    q: Linear
    k: Linear
    v: Linear
    o: Linear
    heads: int = eqx.field(static=True)
    kv_heads: int = eqx.field(static=True)

    def __call__(self, x: Float[ArrayLike, "L D"], cos: Float[ArrayLike, "L Dh"], sin: Float[ArrayLike, "L Dh"],
                 mask) -> tuple[Float[Array, "L D"], Trace]:
        q = apply_rope(split_heads(self.q(x), self.heads), cos, sin)
        k = apply_rope(split_heads(self.k(x), self.kv_heads), cos, sin)
        v = split_heads(self.v(x), self.kv_heads)
        group = self.heads // self.kv_heads
        k, v = jnp.repeat(k, group, axis=0), jnp.repeat(v, group, axis=0)
        return attend_and_project(q, k, v, self.o, mask=mask)


class MLP(eqx.Module):
    """down(act(gate(x)) * up(x)) (``LlamaMLP``)."""

    gate: Linear
    up: Linear
    down: Linear
    act: str = eqx.field(static=True)

    def __call__(self, x: Float[ArrayLike, "L D"]) -> Float[Array, "L D"]:
        return self.down(ACTIVATIONS[self.act](self.gate(x)) * self.up(x))


class DecoderLayer(eqx.Module):
    """One pre-norm decoder layer."""

    attention: DecoderAttention
    mlp: MLP
    input_norm: RMSNorm
    post_norm: RMSNorm

    def __call__(self, x, cos, sin, mask) -> tuple[Float[Array, "L D"], Trace]:
        a, trace = self.attention(self.input_norm(x), cos, sin, mask)
        x = x + a
        return x + self.mlp(self.post_norm(x)), trace


class Decoder(eqx.Module):
    """Token embeddings, N stacked :class:`DecoderLayer` with their windows, the final RMSNorm and the LM head."""

    embed: Float[Array, "V D"]
    layers: DecoderLayer  # every array leaf has a leading axis of length N
    windows: Int[Array, " N"]  # sliding window per layer (int32 max: none)
    norm: RMSNorm
    lm_head: Float[Array, "V D"] | None  # None: tied to embed

    def __call__(self, ids: Int[ArrayLike, " L"], cos: Float[ArrayLike, "L Dh"], sin: Float[ArrayLike, "L Dh"], *,
                 capture: bool):
        x = self.embed[ids]
        i, j = jnp.arange(ids.shape[0], dtype=jnp.int32)[:, None], jnp.arange(ids.shape[0], dtype=jnp.int32)[None, :]

        def step(h, layer_window):
            layer, window = layer_window
            out, trace = layer(h, cos, sin, (j <= i) & (i - j < window))
            return out, ((out, trace) if capture else (out,))

        _, ys = jax.lax.scan(step, x, (self.layers, self.windows))
        final = self.norm(ys[0][-1])
        hidden = jnp.concatenate([x[None], ys[0][:-1], final[None]])
        logits = matmul("ld,vd->lv", final, self.embed if self.lm_head is None else self.lm_head)
        return hidden, logits, ys[1] if capture else None


def _windows(config: dict, model_type: str) -> list[int | None]:
    """The sliding window of each layer (None: full causal attention), as the HF config classes set it."""
    n = config["num_hidden_layers"]
    if model_type == "mistral":
        return [config.get("sliding_window")] * n
    if model_type == "qwen2":
        window = config.get("sliding_window") if config.get("use_sliding_window", False) else None
        types = config.get("layer_types") or [
            "sliding_attention" if window is not None and i >= config.get("max_window_layers", 28) else "full_attention"
            for i in range(n)
        ]
        return [window if t == "sliding_attention" else None for t in types]
    return [None] * n


def _biases(config: dict, model_type: str) -> tuple[bool, bool, bool]:
    """(q/k/v bias, o bias, MLP bias)."""
    attention_bias = bool(config.get("attention_bias", False)) and model_type == "llama"
    return model_type == "qwen2" or attention_bias, attention_bias, bool(config.get("mlp_bias", False))


def _layer_names(i: int) -> dict[str, str]:
    p = f"layers.{i}."
    names = {k: p + f"self_attn.{k}_proj" for k in "qkvo"}
    names |= {k: p + f"mlp.{k}_proj" for k in ("gate", "up", "down")}
    return names | {"input_norm": p + "input_layernorm", "post_norm": p + "post_attention_layernorm"}


def decoder_shapes(config: dict, model_type: str) -> dict[str, tuple[int, ...]]:
    """Every tensor name of ``<Family>ForCausalLM`` (without the ``model.`` prefix) and its implied shape."""
    check_option("hidden_act", config.get("hidden_act", "silu"), tuple(ACTIVATIONS))
    d, f, v, hd = config["hidden_size"], config["intermediate_size"], config["vocab_size"], head_dim(config)
    h, kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    if h % kv:
        raise InputError(f"num_attention_heads {h} is not a multiple of num_key_value_heads {kv}")
    qkv_bias, o_bias, mlp_bias = _biases(config, model_type)
    rows = {"q": (h * hd, d), "k": (kv * hd, d), "v": (kv * hd, d), "o": (d, h * hd),
            "gate": (f, d), "up": (f, d), "down": (d, f), "input_norm": (d,), "post_norm": (d,)}
    bias = {"q": qkv_bias, "k": qkv_bias, "v": qkv_bias, "o": o_bias, "gate": mlp_bias, "up": mlp_bias,
            "down": mlp_bias}
    out = {"embed_tokens.weight": (v, d), "norm.weight": (d,)}
    if not config.get("tie_word_embeddings", False):
        out["lm_head.weight"] = (v, d)
    for i in range(config["num_hidden_layers"]):
        for field, name in _layer_names(i).items():
            out[name + ".weight"] = rows[field]
            if bias.get(field):
                out[name + ".bias"] = (rows[field][0],)
    return out


def build_decoder(config: dict, tensors: dict[str, Array], model_type: str) -> Decoder:
    """A :class:`Decoder` from config.json and the tensors named by :func:`decoder_shapes`."""
    n, eps = config["num_hidden_layers"], config.get("rms_norm_eps", 1e-6)

    def get(field: str, part: str) -> Array | None:
        names = [f"{_layer_names(i)[field]}.{part}" for i in range(n)]
        return jnp.stack([tensors[k] for k in names]) if names[0] in tensors else None

    def linear(field: str) -> Linear:
        return Linear(get(field, "weight"), get(field, "bias"))

    h = config["num_attention_heads"]
    attention = DecoderAttention(*(linear(k) for k in "qkvo"), heads=h,
                                 kv_heads=config.get("num_key_value_heads") or h)
    mlp = MLP(linear("gate"), linear("up"), linear("down"), act=config.get("hidden_act", "silu"))
    layers = DecoderLayer(attention, mlp, RMSNorm(get("input_norm", "weight"), eps),
                          RMSNorm(get("post_norm", "weight"), eps))
    windows = jnp.asarray([_NO_WINDOW if w is None else w for w in _windows(config, model_type)], jnp.int32)
    return Decoder(tensors["embed_tokens.weight"], layers, windows, RMSNorm(tensors["norm.weight"], eps),
                   tensors.get("lm_head.weight"))
