"""BERT encoders (``model_type`` "bert"), e.g. sentence-transformers all-MiniLM-L6-v2, as equinox Modules.

Shape contract: ``Bert(ids (L,), capture=...)`` -> hidden states (N + 1, L, D) (the embeddings after their
LayerNorm, then the output of each of the N layers) and, with ``capture``, the per-layer :class:`~.layers.Trace`
stacked to queries/keys (N, H, L, D) and probabilities (N, H, L, L). One segment: token type 0 everywhere;
absolute positions 0..L-1; no padding, so no mask (every token attends to every token).

Layer: a = LayerNorm(x + O(softmax(Q K^T / sqrt(D_h)) V)); x' = LayerNorm(a + W_2 act(W_1 a)) (post-LayerNorm).
The N layers are one scanned module (``jax.lax.scan``), so compilation does not grow with depth.

Source: transformers ``src/transformers/models/bert/modeling_bert.py`` (``BertEmbeddings``, ``BertSelfAttention``,
``BertSelfOutput``, ``BertIntermediate``, ``BertOutput``), with the parameter names of ``BertModel``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from .._checks import InputError, check_option
from .layers import ACTIVATIONS, LayerNorm, Linear, Trace, attend_and_project, split_heads


class BertAttention(eqx.Module):
    """Self-attention with its output projection; returns the output and the :class:`Trace` of its softmax."""

    query: Linear
    key: Linear
    value: Linear
    output: Linear
    heads: int = eqx.field(static=True)

    def __call__(self, x: Float[ArrayLike, "L D"]) -> tuple[Float[Array, "L D"], Trace]:
        q, k, v = (split_heads(f(x), self.heads) for f in (self.query, self.key, self.value))
        return attend_and_project(q, k, v, self.output, mask=None)


class BertLayer(eqx.Module):
    """One post-LayerNorm encoder layer (attention, add & norm, feed-forward, add & norm)."""

    attention: BertAttention
    attention_norm: LayerNorm
    intermediate: Linear
    output: Linear
    output_norm: LayerNorm
    act: str = eqx.field(static=True)

    def __call__(self, x: Float[ArrayLike, "L D"]) -> tuple[Float[Array, "L D"], Trace]:
        a, trace = self.attention(x)
        x = self.attention_norm(x + a)
        return self.output_norm(x + self.output(ACTIVATIONS[self.act](self.intermediate(x)))), trace


class Bert(eqx.Module):
    """The encoder: embeddings (word + position + token type 0, LayerNorm) and N stacked :class:`BertLayer`."""

    word: Float[Array, "V D"]
    position: Float[Array, "P D"]
    token_type: Float[Array, "T D"]
    embedding_norm: LayerNorm
    layers: BertLayer  # every array leaf has a leading axis of length N

    def __call__(self, ids: Int[ArrayLike, " L"], *, capture: bool):
        x = self.embedding_norm(self.word[ids] + self.position[: ids.shape[0]] + self.token_type[:1])

        def step(h, layer):
            out, trace = layer(h)
            return out, ((out, trace) if capture else (out,))

        _, ys = jax.lax.scan(step, x, self.layers)
        hidden = jnp.concatenate([x[None], ys[0]])
        return hidden, None, ys[1] if capture else None


def _names(i: int) -> dict[str, str]:
    p = f"encoder.layer.{i}."
    return {
        "attention.query": p + "attention.self.query",
        "attention.key": p + "attention.self.key",
        "attention.value": p + "attention.self.value",
        "attention.output": p + "attention.output.dense",
        "attention_norm": p + "attention.output.LayerNorm",
        "intermediate": p + "intermediate.dense",
        "output": p + "output.dense",
        "output_norm": p + "output.LayerNorm",
    }


def bert_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor name of ``BertModel`` (without the ``bert.`` prefix) and the shape config.json implies."""
    check_option("position_embedding_type", config.get("position_embedding_type", "absolute"), ("absolute",))
    check_option("hidden_act", config.get("hidden_act", "gelu"), tuple(ACTIVATIONS))
    d, f = config["hidden_size"], config["intermediate_size"]
    if d % config["num_attention_heads"]:
        raise InputError(f"hidden_size {d} is not a multiple of num_attention_heads {config['num_attention_heads']}")
    out = {
        "embeddings.word_embeddings.weight": (config["vocab_size"], d),
        "embeddings.position_embeddings.weight": (config["max_position_embeddings"], d),
        "embeddings.token_type_embeddings.weight": (config.get("type_vocab_size", 2), d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    dims = {"intermediate": (f, d), "output": (d, f)}
    for i in range(config["num_hidden_layers"]):
        for field, name in _names(i).items():
            if field.endswith("_norm"):
                out[name + ".weight"], out[name + ".bias"] = (d,), (d,)
            else:
                rows, cols = dims.get(field, (d, d))
                out[name + ".weight"], out[name + ".bias"] = (rows, cols), (rows,)
    return out


def build_bert(config: dict, tensors: dict[str, Array]) -> Bert:
    """A :class:`Bert` from config.json and the tensors named by :func:`bert_shapes`."""
    eps, n = config.get("layer_norm_eps", 1e-12), config["num_hidden_layers"]

    def get(field: str, part: str) -> Array:
        return jnp.stack([tensors[f"{_names(i)[field]}.{part}"] for i in range(n)])

    def linear(field: str) -> Linear:
        return Linear(get(field, "weight"), get(field, "bias"))

    def norm(field: str) -> LayerNorm:
        return LayerNorm(get(field, "weight"), get(field, "bias"), eps)

    attention = BertAttention(*(linear(f"attention.{k}") for k in ("query", "key", "value", "output")),
                              heads=config["num_attention_heads"])
    layers = BertLayer(attention, norm("attention_norm"), linear("intermediate"), linear("output"),
                       norm("output_norm"), act=config.get("hidden_act", "gelu"))
    e = "embeddings."
    return Bert(tensors[e + "word_embeddings.weight"], tensors[e + "position_embeddings.weight"],
                tensors[e + "token_type_embeddings.weight"],
                LayerNorm(tensors[e + "LayerNorm.weight"], tensors[e + "LayerNorm.bias"], eps), layers)
