"""Building blocks shared by the encoder and decoder families (equinox Modules, one sequence at a time).

Shape contract: activations are (L, D) (tokens by features) or (H, L, D) per head; a ``Linear`` maps (L, in) ->
(L, out) with a Hugging Face ``nn.Linear`` weight of shape (out, in). Products accumulate in float32 at full
precision (``Precision.HIGHEST``, so no TF32 on GPUs) and are rounded to the activation dtype; norms and the
softmax run in float32. In float32 that is plain float32 arithmetic; in bfloat16 it is what a bf16 GPU kernel does.

Sources: transformers ``src/transformers/models/llama/modeling_llama.py`` (``LlamaRMSNorm``,
``eager_attention_forward``) and ``src/transformers/models/bert/modeling_bert.py`` (``nn.LayerNorm``), and
``src/transformers/activations.py`` (``ACT2FN``).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float

_HIGHEST = jax.lax.Precision.HIGHEST

ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
}


def matmul(spec: str, a: Array, b: Array) -> Array:
    """``einsum(spec, a, b)`` accumulated in float32 at full precision, rounded to ``a``'s dtype."""
    return jnp.einsum(spec, a, b, precision=_HIGHEST, preferred_element_type=jnp.float32).astype(a.dtype)


class Linear(eqx.Module):
    """y = x W^T + b with W of shape (out, in), as ``torch.nn.Linear``."""

    weight: Float[Array, "out inp"]
    bias: Float[Array, " out"] | None

    def __call__(self, x: Float[ArrayLike, "L inp"]) -> Float[Array, "L out"]:
        y = matmul("li,oi->lo", x, self.weight)
        return y if self.bias is None else y + self.bias[None]


class LayerNorm(eqx.Module):
    """(x - mean) / sqrt(var + eps) w + b over the last axis, in float32 (``torch.nn.LayerNorm``)."""

    weight: Float[Array, " D"]
    bias: Float[Array, " D"]
    eps: float = eqx.field(static=True)

    def __call__(self, x: Float[ArrayLike, "L D"]) -> Float[Array, "L D"]:
        x32 = x.astype(jnp.float32)
        mean = x32.mean(-1, keepdims=True)
        var = jnp.square(x32 - mean).mean(-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.eps)
        return (y * self.weight.astype(jnp.float32)[None] + self.bias.astype(jnp.float32)[None]).astype(x.dtype)


class RMSNorm(eqx.Module):
    """w * (x / sqrt(mean(x^2) + eps)), normalised in float32 and rounded before the weight (``LlamaRMSNorm``)."""

    weight: Float[Array, " D"]
    eps: float = eqx.field(static=True)

    def __call__(self, x: Float[ArrayLike, "L D"]) -> Float[Array, "L D"]:
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + self.eps)
        return self.weight[None] * y.astype(x.dtype)


class Trace(NamedTuple):
    """What enters one layer's softmax: queries and keys per query head, and the probabilities used."""

    queries: Float[Array, "H L D"]
    keys: Float[Array, "H L D"]
    probabilities: Float[Array, "H L L"]


def attend(
    q: Float[ArrayLike, "H L D"],
    k: Float[ArrayLike, "H L D"],
    v: Float[ArrayLike, "H L D"],
    *,
    scale: float,
    mask: Bool[ArrayLike, "L L"] | None,
) -> tuple[Float[Array, "H L D"], Trace]:
    """softmax(scale q k^T, masked) v per head, and the :class:`Trace` (q, k, probabilities) of that same pass.

    The logits are float32 (float32-accumulated products times ``scale``); masked entries (``mask`` false) get
    probability exactly 0; the probabilities are rounded to the activation dtype before multiplying v, as
    ``eager_attention_forward`` does (``softmax(..., dtype=float32).to(query.dtype)``).
    """
    logits = jnp.einsum("hqd,hkd->hqk", q, k, precision=_HIGHEST, preferred_element_type=jnp.float32) * scale
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
    probabilities = jax.nn.softmax(logits, axis=-1).astype(q.dtype)
    return matmul("hqk,hkd->hqd", probabilities, v), Trace(q, k, probabilities)


def split_heads(x: Float[ArrayLike, "L HD"], heads: int) -> Float[Array, "H L D"]:
    """(L, H D) -> (H, L, D), head h holding features h D .. (h + 1) D - 1 (``view(..., -1, head_dim)``)."""
    return x.reshape(x.shape[0], heads, -1).transpose(1, 0, 2)


def merge_heads(x: Float[ArrayLike, "H L D"]) -> Float[Array, "L HD"]:
    """(H, L, D) -> (L, H D), the inverse of :func:`split_heads`."""
    return x.transpose(1, 0, 2).reshape(x.shape[1], -1)


def attend_and_project(q, k, v, output: Linear, *, mask) -> tuple[Float[Array, "L D"], Trace]:
    """:func:`attend` (q, k, v (H, L, D_h); ``mask`` (L, L) or None) at the softmax scale 1/sqrt(D_h), the heads
    merged and projected by ``output``, and the :class:`Trace` (the attention of BERT and of the Llama family)."""
    out, trace = attend(q, k, v, scale=q.shape[-1] ** -0.5, mask=mask)
    return output(merge_heads(out)), trace
