"""A loaded checkpoint: tokenise, run the jitted forward pass, capture what enters every softmax.

Shape contract (one sequence of L tokens; N layers, H query heads, head dimension D_h, width D, vocabulary V):

- ``Model.encode(text)`` -> ids (L,) int32, with the tokenizer's own special tokens (BERT's [CLS] ... [SEP]);
- ``Model.forward(ids)`` -> :class:`Output`: hidden states (N + 1, L, D) and logits (L, V) (None for encoders);
- ``Model.capture(ids)`` -> :class:`Capture`: the same, from the same pass, plus one :class:`LayerCapture` per
  layer: queries and keys (H, L, D_h) per query head, the softmax scale, the probabilities (H, L, L);
- ``Model.embed(ids)`` -> (D,): the token mean of the last hidden states, L2-normalised.

Results are host NumPy float32 arrays (bfloat16 values are widened exactly). The forward pass is an equinox Module
under ``equinox.filter_jit``: it compiles once per input length (and per dtype and capture flag).

Sources: transformers ``src/transformers/models/bert/modeling_bert.py`` and ``models/llama/modeling_llama.py``;
sentence-transformers' ``Pooling`` (mean) and ``Normalize`` modules for :meth:`Model.embed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import tokenizers
from jaxtyping import Float, Int

from .._checks import InputError, check_int, check_option
from . import bert, llama
from ._files import read_config, read_tensors
from .rope import inverse_frequencies, rope_tables

SUPPORTED_MODEL_TYPES = ("bert", "llama", "mistral", "qwen2")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class LayerCapture(NamedTuple):
    """What entered one layer's softmax, per query head h, in the pass that produced the hidden states.

    ``probabilities[h] = softmax(scale * queries[h] @ keys[h].T + mask)``, where the mask is -inf on the keys a
    query does not see: none for encoders; keys j > i for causal models (key j is seen from position i iff
    j <= i, and i - W < j under a sliding window W). The queries and keys are those after RoPE, including the RoPE
    ``attention_factor`` a that Hugging Face puts on cos and sin (so the logits carry a^2); ``scale`` is the
    softmax scale 1/sqrt(D_h). Keys are given per query head: for grouped-query attention the key head of the
    query head's group.
    """

    queries: Float[np.ndarray, "H L D"]
    keys: Float[np.ndarray, "H L D"]
    scale: float
    probabilities: Float[np.ndarray, "H L L"]
    causal: bool
    attention_factor: float

    @property
    def beta_eff(self) -> Float[np.ndarray, "H L L"]:
        """beta_eff[h, i, j] = scale |q_hi| |k_hj|: the logit is beta_eff <q, k> for the unit vectors q, k."""
        nq, nk = np.linalg.norm(self.queries, axis=-1), np.linalg.norm(self.keys, axis=-1)
        return self.scale * nq[:, :, None] * nk[:, None, :]


class Output(NamedTuple):
    """Hidden states (N + 1, L, D) in Hugging Face's ``output_hidden_states`` order, and logits (L, V) or None."""

    hidden_states: Float[np.ndarray, "N1 L D"]
    logits: Float[np.ndarray, "L V"] | None


class Capture(NamedTuple):
    """The ids, the :class:`Output` arrays and one :class:`LayerCapture` per layer, all from one forward pass."""

    ids: Int[np.ndarray, " L"]
    hidden_states: Float[np.ndarray, "N1 L D"]
    logits: Float[np.ndarray, "L V"] | None
    layers: tuple[LayerCapture, ...]


@eqx.filter_jit
def _run(net, ids, tables, capture):
    hidden, logits, traces = net(ids, *tables, capture=capture)
    return jax.tree.map(lambda a: a.astype(jnp.float32), (hidden, logits, traces))


@dataclasses.dataclass(frozen=True)
class Model:
    """A Hugging Face checkpoint in JAX: its config, the equinox network, the tokenizer (None without one).

    Build it with :func:`load`. ``max_length`` is the longest input accepted (``max_position_embeddings`` unless
    :func:`load` was given more for a RoPE model).
    """

    path: str
    config: dict
    dtype: str
    max_length: int
    net: eqx.Module
    tokenizer: tokenizers.Tokenizer | None

    @property
    def model_type(self) -> str:
        return self.config["model_type"]

    @property
    def causal(self) -> bool:
        return self.model_type != "bert"

    def encode(self, text: str) -> Int[np.ndarray, " L"]:
        """Token ids of ``text`` from tokenizer.json, with the post-processor's special tokens; never truncated."""
        if self.tokenizer is None:
            raise InputError(f"no tokenizer.json in {self.path}: pass token ids to forward/capture instead")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"text must be a non-empty string, got {text!r}")
        return np.asarray(self.tokenizer.encode(text).ids, dtype=np.int32)

    def _check_ids(self, ids) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.size == 0:
            raise InputError("ids must not be empty (encode a non-empty text)")
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise InputError(f"ids must be a 1-D sequence of integers, got dtype {arr.dtype} and shape {arr.shape}")
        vocab = self.config["vocab_size"]
        if arr.min() < 0 or arr.max() >= vocab:
            raise InputError(f"ids must lie in [0, {vocab}) (vocab_size), got min {arr.min()} and max {arr.max()}")
        if arr.size > self.max_length:
            remedy = ", or pass max_length= to load() to extrapolate" if self.causal else ""
            raise InputError(
                f"ids has {arr.size} tokens but this model accepts at most {self.max_length} "
                f"(max_position_embeddings = {self.config['max_position_embeddings']}); nothing is truncated: "
                f"shorten the input{remedy}"
            )
        return arr.astype(np.int32)

    def _pass(self, ids, capture: bool):
        arr = self._check_ids(ids)
        factor = 1.0
        tables = ()
        if self.causal:
            cos, sin, factor = rope_tables(self.config, seq_len=arr.size, dtype=DTYPES[self.dtype])
            tables = (cos, sin)
        hidden, logits, traces = _run(self.net, jnp.asarray(arr), tables, capture)
        return arr, np.asarray(hidden), None if logits is None else np.asarray(logits), traces, factor

    def forward(self, ids: Int[np.ndarray, " L"] | Sequence[int]) -> Output:
        """Hidden states of every layer and the logits (decoders) of one sequence of token ids."""
        _, hidden, logits, _, _ = self._pass(ids, capture=False)
        return Output(hidden, logits)

    def capture(self, ids: Int[np.ndarray, " L"] | Sequence[int]) -> Capture:
        """:meth:`forward` plus, from the same pass, every layer's queries, keys, scale and probabilities."""
        arr, hidden, logits, traces, factor = self._pass(ids, capture=True)
        q, k, p = (np.asarray(a) for a in traces)
        scale = float(q.shape[-1] ** -0.5)
        layers = tuple(LayerCapture(q[n], k[n], scale, p[n], self.causal, factor) for n in range(q.shape[0]))
        return Capture(arr, hidden, logits, layers)

    def embed(self, ids: Int[np.ndarray, " L"] | Sequence[int]) -> Float[np.ndarray, " D"]:
        """Mean over the tokens of the last hidden states, L2-normalised (all-MiniLM-L6-v2's sentence embedding)."""
        mean = self.forward(ids).hidden_states[-1].mean(axis=0)
        return mean / np.linalg.norm(mean)


def load(path, *, dtype: str = "float32", max_length: int | None = None) -> Model:
    """Load a Hugging Face model directory (config.json + model.safetensors or a sharded index) into JAX.

    ``dtype`` is the dtype of weights and activations ("float32" or "bfloat16"), whatever the file stores.
    ``max_length`` (default ``max_position_embeddings``) is the longest input accepted; a RoPE model may be given
    more (extrapolation: ``dynamic`` and ``longrope`` then switch as in Hugging Face), an encoder may not.
    Supported ``model_type``: bert, llama, mistral, qwen2. Source: transformers
    ``PreTrainedModel.from_pretrained`` (src/transformers/modeling_utils.py) for the layout.
    """
    check_option("dtype", dtype, tuple(DTYPES))
    directory, config = read_config(path)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise InputError(
            f"model_type {model_type!r} in {directory / 'config.json'} is not supported; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    try:
        positions = check_int("max_position_embeddings", config["max_position_embeddings"], minimum=1)
        limit = positions if max_length is None else check_int("max_length", max_length, minimum=1)
        if model_type == "bert":
            expected, strip = bert.bert_shapes(config), "bert."
        else:
            expected, strip = llama.decoder_shapes(config, model_type), "model."
            inverse_frequencies(config, seq_len=limit)  # a bad rope_scaling fails here, before the weights are read
        tensors = read_tensors(directory, expected, strip=strip, dtype=DTYPES[dtype])
        if model_type == "bert":
            net = bert.build_bert(config, tensors)
        else:
            net = llama.build_decoder(config, tensors, model_type)
    except KeyError as e:
        raise InputError(f"config.json in {directory} lacks {e.args[0]!r}, which model_type {model_type!r} needs") \
            from None
    if model_type == "bert" and limit > positions:
        raise InputError(f"max_length must be <= {positions} for a BERT encoder (its position table), got {limit}")
    tokenizer = None
    if (directory / "tokenizer.json").is_file():
        try:
            tokenizer = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as e:  # the tokenizers library raises a bare Exception on a bad file
            raise InputError(f"cannot read {directory / 'tokenizer.json'}: {e}") from None
        tokenizer.no_truncation()
        tokenizer.no_padding()
    return Model(str(directory), config, dtype, limit, net, tokenizer)
