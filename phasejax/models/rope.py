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

from .._checks import InputError, check_option

ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3")


def head_dim(config: dict) -> int:
    """``config["head_dim"]`` when set (Mistral, Qwen3 style), else hidden_size / num_attention_heads."""
    return int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"])


def rope_parameters(config: dict) -> dict:
    """The RoPE parameters of a config.json, standardised as transformers v5's ``standardize_rope_params`` does.

    ``rope_parameters`` (v5) or ``rope_scaling`` (v4) or nothing; ``type`` is the old name of ``rope_type``;
    ``rope_theta`` defaults to the top-level value (10000 if absent). For llama3, yarn and longrope,
    ``original_max_position_embeddings`` is the top-level value when the config has one (Phi-3 style), else the
    one in the dict, else ``max_position_embeddings``.
    """
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    rope["rope_type"] = check_option("rope_scaling.rope_type", rope.get("rope_type", rope.get("type", "default")),
                                     ROPE_TYPES)
    rope.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    if rope.get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0)) != 1.0:
        raise InputError("partial_rotary_factor must be 1.0 (Llama-family models rotate the whole head), got "
                         f"{rope.get('partial_rotary_factor', config.get('partial_rotary_factor'))!r}")
    if rope["rope_type"] in ("llama3", "yarn", "longrope"):
        top = config.get("original_max_position_embeddings")
        rope["original_max_position_embeddings"] = top or rope.get("original_max_position_embeddings") or config[
            "max_position_embeddings"]
    return rope


def _need(rope: dict, key: str):
    if rope.get(key) is None:
        raise InputError(f"rope_scaling of rope_type {rope['rope_type']!r} needs {key!r}; got {rope}")
    return rope[key]


def _scaling_factor(rope: dict, config: dict) -> float:
    """yarn and longrope: the explicit ``factor``, else max_position_embeddings / original_max_position_embeddings."""
    return float(rope.get("factor") or config["max_position_embeddings"] / rope["original_max_position_embeddings"])


def _mscale(scale: float, mscale: float = 1.0) -> float:
    return 0.1 * mscale * math.log(scale) + 1.0 if scale > 1 else 1.0


# TODO(schedules): replace by phasejax.schedules.rope_attention_factor
def _rope_attention_factor(config_dict: dict, seq_len: int) -> float:
    """The factor a that multiplies cos and sin (so a^2 multiplies every logit), as transformers v5 computes it.

    yarn (``_compute_yarn_parameters``): an explicit ``attention_factor`` wins; else, with ``mscale`` and
    ``mscale_all_dim`` both set, get_mscale(f, mscale) / get_mscale(f, mscale_all_dim); else get_mscale(f), where
    get_mscale(s, m=1) = 0.1 m ln s + 1 for s > 1 and 1 otherwise. longrope (``_compute_longrope_parameters``): an
    explicit ``attention_factor`` wins; else sqrt(1 + ln f / ln original_max_position_embeddings) when f > 1, else 1.
    Every other rope_type: 1. Here f is the scaling factor (``_scaling_factor``). Neither rule depends on ``seq_len``
    (the input length); it is part of the signature that the schedules version will keep.
    """
    rope = rope_parameters(config_dict)
    kind, explicit = rope["rope_type"], rope.get("attention_factor")
    if kind not in ("yarn", "longrope"):
        return 1.0
    if explicit is not None:
        return float(explicit)
    f = _scaling_factor(rope, config_dict)
    if kind == "yarn":
        m, m_all = rope.get("mscale"), rope.get("mscale_all_dim")
        return _mscale(f, m) / _mscale(f, m_all) if m and m_all else _mscale(f)
    return math.sqrt(1 + math.log(f) / math.log(rope["original_max_position_embeddings"])) if f > 1 else 1.0


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
        inv = inv / float(_need(rope, "factor"))
    elif kind == "dynamic":
        factor, m = float(_need(rope, "factor")), config["max_position_embeddings"]
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
        ext = _need(rope, "long_factor" if seq_len > rope["original_max_position_embeddings"] else "short_factor")
        if len(ext) != dim // 2:
            raise InputError(f"rope_scaling long_factor/short_factor must have {dim // 2} entries, got {len(ext)}")
        inv = inv / np.asarray(ext, dtype=np.float64)
    elif kind == "llama3":
        factor, lo, hi = (float(_need(rope, k)) for k in ("factor", "low_freq_factor", "high_freq_factor"))
        old = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        medium = (wavelen >= old / hi) & (wavelen <= old / lo)
        inv = np.where(medium, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
    return inv, _rope_attention_factor(config, seq_len)


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
