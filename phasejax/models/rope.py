"""Rotary position embeddings of Hugging Face checkpoints: inverse frequencies, cos/sin tables, the rotation.

Shape contract (D the head dimension, even; L the input length):

- ``inverse_frequencies(config, seq_len=L)`` -> ``(inv_freq (D/2,) float64, attention_factor)``, on the host;
- ``rope_tables(config, seq_len=L, dtype)`` -> ``cos, sin`` of shape (L, D): the D/2 angles t * inv_freq repeated
  twice (the ``rotate_half`` layout), **already multiplied by the attention factor**, as Hugging Face does;
- ``apply_rope(x (H, L, D), cos, sin)`` -> (H, L, D): x cos + rotate_half(x) sin.

So with an attention factor a (YaRN, LongRoPE) the rotated queries and keys are a R_t q and a R_s k, and the logit
s <a R_t q, a R_s k> carries a^2: the factor lives inside Q and K, never in the softmax scale s.

Angles are computed in float64 on the host and rounded once to the model dtype. Hugging Face computes them in
float32 (``inv_freq @ position_ids``), so at positions t >~ 1e4 its own angles are off by ~ t 2^-24 rad; ours are not.

Sources: transformers ``src/transformers/modeling_rope_utils.py`` (v5: ``ROPE_INIT_FUNCTIONS`` and
``RotaryEmbeddingConfigMixin.standardize_rope_params``; the ``dynamic_rope_update`` decorator for ``dynamic`` and
``longrope`` at run time) and ``src/transformers/models/llama/modeling_llama.py`` (``LlamaRotaryEmbedding``,
``rotate_half``, ``apply_rotary_pos_emb``).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import InputError, check_key, check_option, check_real
from ..schedules import rope_attention_factor, rope_dicts

ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3")


def head_dim(config: dict) -> int:
    """``config["head_dim"]`` when set (Mistral, Qwen3 style), else hidden_size / num_attention_heads."""
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def rope_parameters(config: dict) -> dict:
    """The RoPE parameters of a config.json, standardised as transformers v5's ``standardize_rope_params`` does.

    One standardisation for the whole package: :func:`phasejax.schedules._config.rope_dicts` (``rope_parameters``
    (v5) or ``rope_scaling`` (v4) or nothing; ``type`` is the old name of ``rope_type``; for llama3, yarn and
    longrope the top-level ``original_max_position_embeddings`` wins, Phi-3 style). Here, in addition, the rope type
    must be one this forward pass implements, ``rope_theta`` defaults to 10000, the whole head is rotated, and one
    rope dict serves every layer.
    """
    key, per = rope_dicts(config)
    if list(per) != [None]:
        raise InputError(f"{key} gives one rope dict per layer type ({sorted(per)}); phasejax.models runs "
                         "models with one rope dict for all layers")
    rope = per[None]
    check_option(f"{key}.rope_type", rope["rope_type"], ROPE_TYPES)
    if rope.get("rope_theta") is None:
        rope["rope_theta"] = 10000.0
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise InputError("partial_rotary_factor must be 1.0 (Llama-family models rotate the whole head), got "
                         f"{rope['partial_rotary_factor']!r}")
    return rope


def _factor(rope: dict, name: str) -> float:
    return check_real(f"rope_scaling.{name}", check_key(rope, name, "rope_scaling", allow_none=False), positive=True)


def _scaling_factor(rope: dict, config: dict) -> float:
    """yarn: the explicit ``factor``, else max_position_embeddings / original_max_position_embeddings."""
    return float(rope.get("factor") or config["max_position_embeddings"] / rope["original_max_position_embeddings"])


def inverse_frequencies(config: dict, *, seq_len: int) -> tuple[np.ndarray, float]:
    """The D/2 inverse frequencies and the attention factor of a config.json for an input of ``seq_len`` tokens.

    Per rope_type, as in transformers' ``modeling_rope_utils.py`` (``_compute_<type>_parameters``), with
    w_i = theta^(-2i/D):

    - default: w_i; linear: w_i / factor;
    - dynamic (NTK): theta' = theta ((factor L'/M) - (factor - 1))^(D/(D-2)), L' = max(seq_len, M),
      M = max_position_embeddings (what HF's ``dynamic_rope_update`` computes on a fresh model for one pass);
    - yarn: w_i / factor blended with w_i by the linear ramp between the correction dims of beta_fast (32) and
      beta_slow (1) at original_max_position_embeddings (floored/ceiled unless ``truncate`` is false);
    - longrope: w_i / long_factor_i if seq_len > original_max_position_embeddings, else w_i / short_factor_i;
    - llama3: w_i / factor for wavelengths above original/low_freq_factor, w_i below original/high_freq_factor,
      the smooth blend in between.
    """
    rope = rope_parameters(config)
    kind, base, dim = rope["rope_type"], float(rope["rope_theta"]), head_dim(config)
    exponents = np.arange(0, dim, 2, dtype=np.float64) / dim
    inv = base**-exponents
    if kind == "linear":
        inv = inv / _factor(rope, "factor")
    elif kind == "dynamic":
        factor, m = _factor(rope, "factor"), config["max_position_embeddings"]
        inv = (base * (factor * max(seq_len, m) / m - (factor - 1)) ** (dim / (dim - 2))) ** -exponents
    elif kind == "yarn":
        factor, orig = _scaling_factor(rope, config), rope["original_max_position_embeddings"]

        def correction_dim(rotations: float) -> float:
            return dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(base))

        low, high = correction_dim(rope.get("beta_fast") or 32), correction_dim(rope.get("beta_slow") or 1)
        if rope.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        ramp = np.clip((np.arange(dim // 2) - low) / ((high + 0.001 if low == high else high) - low), 0, 1)
        inv = inv / factor * ramp + inv * (1 - ramp)
    elif kind == "longrope":
        ext = check_key(rope, "long_factor" if seq_len > rope["original_max_position_embeddings"] else "short_factor",
                        "rope_scaling", allow_none=False)
        if len(ext) != dim // 2:
            raise InputError(f"rope_scaling long_factor/short_factor must have {dim // 2} entries, got {len(ext)}")
        inv = inv / np.asarray(ext, dtype=np.float64)
    elif kind == "llama3":
        factor, lo, hi = (_factor(rope, k) for k in ("factor", "low_freq_factor", "high_freq_factor"))
        old = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        medium = (wavelen >= old / hi) & (wavelen <= old / lo)
        inv = np.where(medium, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
    return inv, rope_attention_factor(config, seq_len)


def rope_tables(config: dict, *, seq_len: int, dtype) -> tuple[Float[Array, "L D"], Float[Array, "L D"], float]:
    """cos and sin (L, D) for positions 0..L-1, times the attention factor, in ``dtype``; and that factor.

    As ``LlamaRotaryEmbedding.forward``: emb = cat(t w, t w), cos = cos(emb) a, sin = sin(emb) a.
    """
    inv, factor = inverse_frequencies(config, seq_len=seq_len)
    angles = np.arange(seq_len, dtype=np.float64)[:, None] * inv[None, :]
    angles = np.concatenate([angles, angles], axis=-1)
    return jnp.asarray(np.cos(angles) * factor, dtype), jnp.asarray(np.sin(angles) * factor, dtype), factor


def apply_rope(x: Float[ArrayLike, "H L D"], cos: Float[ArrayLike, "L D"],
               sin: Float[ArrayLike, "L D"]) -> Float[Array, "H L D"]:
    """x cos + rotate_half(x) sin, rotate_half(x) = cat(-x[D/2:], x[:D/2]) (``apply_rotary_pos_emb``)."""
    half = x.shape[-1] // 2
    return x * cos[None] + jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1) * sin[None]
