"""Reading a model's config.json: the rope and attention settings, normalised as transformers v5 does.

Host-side only (plain Python floats). :func:`rope_attention_factor` is the factor that multiplies cos and
sin, exactly as ``_compute_<rope_type>_parameters`` in huggingface/transformers
``src/transformers/modeling_rope_utils.py`` returns it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

from .._checks import InputError, check_int, check_key, check_real
from ._scalar import yarn_mscale

__all__ = ["HF_ROPE_TYPES", "ROPE_TYPES", "load_config", "rope_attention_factor"]

#: rope types of transformers' ``ROPE_INIT_FUNCTIONS`` (plus "default").
HF_ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3")
#: every rope type :func:`phasejax.schedules.from_config` reads ("ntk": vLLM's static NTK; "dynamic-yarn":
#: the reference YaRN repository; "su": the old Phi-3 name of longrope; "mllama4": Llama-4 vision).
ROPE_TYPES = (*HF_ROPE_TYPES, "ntk", "dynamic-yarn", "su", "mllama4")

HF_ROPE_SOURCE = "huggingface/transformers src/transformers/modeling_rope_utils.py"


def load_config(path_or_dict) -> tuple[dict, str]:
    """A config dict and where it came from: a mapping, a config.json path, or a folder holding config.json."""
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict), "dict"
    if not isinstance(path_or_dict, (str, os.PathLike)):
        raise InputError(
            f"config must be a dict, a path to config.json or a folder containing it; got {type(path_or_dict).__name__}"
        )
    path = os.fspath(path_or_dict)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
        raise InputError(f"config path must be a config.json file or a folder containing one; got {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"config {path!r} must be valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise InputError(f"config {path!r} must hold a JSON object, got {type(cfg).__name__}")
    return cfg, path


def text_config(cfg: dict) -> dict:
    """The language-model part: ``text_config`` merged over the top level (Llama-4, Mistral-3, Gemma-3 ...)."""
    tc = cfg.get("text_config")
    if isinstance(tc, Mapping):
        merged = {k: v for k, v in cfg.items() if k != "text_config"}
        merged.update(tc)
        merged.setdefault("_outer_model_type", cfg.get("model_type"))
        return merged
    return dict(cfg)


def _rope_key(cfg: dict) -> str | None:
    if isinstance(cfg.get("rope_parameters"), Mapping):
        return "rope_parameters"
    if isinstance(cfg.get("rope_scaling"), Mapping):
        return "rope_scaling"
    return None


def rope_dicts(cfg: dict) -> tuple[str, dict[str | None, dict]]:
    """(config key, {layer_type or None: standardised rope dict}) as HF's ``standardize_rope_params`` makes it.

    ``rope_type`` from ``rope_type`` or the legacy ``type`` (default "default"); ``rope_theta`` and
    ``partial_rotary_factor`` moved in from the top level; for llama3/yarn/longrope the top-level
    ``original_max_position_embeddings`` wins (Phi-3), else the dict's, else ``max_position_embeddings``.
    Phi-3's own config class renames types "su" and "yarn" to "longrope".
    """
    key = _rope_key(cfg)
    raw = dict(cfg[key]) if key else {}
    layer_types = cfg.get("layer_types")
    if raw and layer_types and set(raw) <= set(layer_types) and all(isinstance(v, Mapping) for v in raw.values()):
        per = {lt: dict(v) for lt, v in raw.items()}
    else:
        per = {None: raw}
    out = {}
    for lt, rp in per.items():
        rp = dict(rp)
        rtype = rp.get("rope_type", rp.get("type", "default"))
        if rtype is None:
            rtype = "default"
        if cfg.get("model_type") in ("phi3", "phimoe") and rtype in ("su", "yarn"):
            rtype = "longrope"  # Phi3Config._rope_scaling_adjustment
        if rtype == "su":
            rtype = "longrope"
        rp["rope_type"] = rtype
        rp.setdefault("rope_theta", cfg.get("rope_theta"))
        if cfg.get("partial_rotary_factor") is not None:
            rp["partial_rotary_factor"] = cfg["partial_rotary_factor"]
        if rtype in ("llama3", "yarn", "longrope", "dynamic-yarn"):
            if cfg.get("original_max_position_embeddings") is not None:
                rp["original_max_position_embeddings"] = cfg["original_max_position_embeddings"]
            elif rp.get("original_max_position_embeddings") is None:
                rp["original_max_position_embeddings"] = cfg.get("max_position_embeddings")
        out[lt] = rp
    return key or "rope_scaling", out


def check_rope_type(rp: dict, key: str, accepted=ROPE_TYPES) -> str:
    rtype = rp["rope_type"]
    if rtype not in accepted:
        raise InputError(f"{key}.rope_type must be one of {', '.join(map(repr, accepted))}; got {rtype!r}")
    return rtype


def _positive(rp: dict, name: str, key: str, value=None) -> float:
    v = rp.get(name) if value is None else value
    return check_real(f"{key}.{name}", v, positive=True)


def max_positions(cfg: dict) -> float:
    if cfg.get("max_position_embeddings") is None:
        raise InputError("config needs max_position_embeddings (the context length the config declares)")
    return check_real("max_position_embeddings", cfg["max_position_embeddings"], positive=True)


def yarn_factor(rp: dict, cfg: dict, key: str) -> float:
    """HF v5: ``factor`` (required key); None -> max_position_embeddings / original_max_position_embeddings."""
    f = check_key(rp, "factor", key)
    if f is None:
        orig = _positive(rp, "original_max_position_embeddings", key)
        return max_positions(cfg) / orig
    return _positive(rp, "factor", key)


def hf_yarn_attention_factor(rp: dict, cfg: dict, key: str) -> tuple[float, dict]:
    """(factor on cos/sin, the config keys used) of ``_compute_yarn_parameters`` (transformers v5)."""
    f = yarn_factor(rp, cfg, key)
    used = {f"{key}.factor": rp.get("factor")}
    if rp.get("attention_factor") is not None:
        used[f"{key}.attention_factor"] = rp["attention_factor"]
        return _positive(rp, "attention_factor", key), used
    m, m_all = rp.get("mscale"), rp.get("mscale_all_dim")
    if m is not None:
        check_real(f"{key}.mscale", m)
    if m_all is not None:
        check_real(f"{key}.mscale_all_dim", m_all)
    if m and m_all:
        used[f"{key}.mscale"], used[f"{key}.mscale_all_dim"] = m, m_all
        return yarn_mscale(f, mscale=m) / yarn_mscale(f, mscale=m_all), used
    return yarn_mscale(f), used


def hf_longrope_attention_factor(rp: dict, cfg: dict, key: str) -> tuple[float, dict]:
    """(factor on cos/sin, keys used) of ``_compute_longrope_parameters`` (transformers v5)."""
    check_key(rp, "long_factor", key)
    check_key(rp, "short_factor", key)
    orig = _positive(rp, "original_max_position_embeddings", key)
    used = {"original_max_position_embeddings": orig}
    if rp.get("factor") is not None:
        f = _positive(rp, "factor", key)
        used[f"{key}.factor"] = rp["factor"]
    else:
        f = max_positions(cfg) / orig
        used["max_position_embeddings"] = cfg["max_position_embeddings"]
    if rp.get("attention_factor") is not None:
        used[f"{key}.attention_factor"] = rp["attention_factor"]
        return _positive(rp, "attention_factor", key), used
    if f <= 1.0:
        return 1.0, used
    if not orig > 1:
        raise InputError(f"original_max_position_embeddings must be > 1 (base of a logarithm), got {orig!r}")
    return math.sqrt(1 + math.log(f) / math.log(orig)), used


def hf_attention_factor(rp: dict, cfg: dict, key: str) -> tuple[float, dict]:
    rtype = check_rope_type(rp, key, HF_ROPE_TYPES)
    if rtype == "yarn":
        return hf_yarn_attention_factor(rp, cfg, key)
    if rtype == "longrope":
        return hf_longrope_attention_factor(rp, cfg, key)
    if rtype in ("linear", "dynamic", "llama3"):
        _positive(rp, "factor", key, check_key(rp, "factor", key))
    return 1.0, {}


def rope_attention_factor(config_dict, seq_len=None) -> float:
    """The factor on cos and sin, exactly as transformers' ``_compute_<rope_type>_parameters`` returns it.

    (huggingface/transformers ``src/transformers/modeling_rope_utils.py``, v5, after
    ``standardize_rope_params``.) The logit gets it squared (q and k are both rotated).

    - ``yarn``: an explicit ``attention_factor`` wins; else with ``mscale`` and ``mscale_all_dim`` both
      truthy, get_mscale(f, mscale) / get_mscale(f, mscale_all_dim); else get_mscale(f) = 0.1 ln f + 1
      (1 for f <= 1). f = ``factor``; ``factor: null`` means max_position_embeddings /
      original_max_position_embeddings.
    - ``longrope``: ``attention_factor`` wins; else sqrt(1 + ln f / ln L0) for f > 1 (1 otherwise), L0 =
      original_max_position_embeddings, f = ``factor`` or max_position_embeddings / L0.
    - ``default``, ``linear``, ``dynamic`` (NTK), ``llama3``: 1 (they change the frequencies only).

    ``config_dict`` is a config.json as a dict (``rope_parameters`` or the older ``rope_scaling``; a
    ``text_config`` is read), or a path. ``seq_len`` (the input length) is accepted as HF's signature
    has it; no rope type's attention factor depends on it. A config with per-layer-type rope dicts must
    give one factor for all of them. Errors are :class:`~phasejax.InputError`.

    >>> rope_attention_factor({"max_position_embeddings": 163840, "rope_scaling": {"type": "yarn",
    ...     "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707, "original_max_position_embeddings": 4096}})
    1.0
    >>> round(rope_attention_factor({"max_position_embeddings": 32768, "rope_scaling": {"type": "yarn",
    ...     "factor": 4.0, "original_max_position_embeddings": 32768}}), 6)
    1.138629
    """
    cfg, _ = load_config(config_dict)
    cfg = text_config(cfg)
    if seq_len is not None:
        check_int("seq_len", seq_len, minimum=1)
    key, per = rope_dicts(cfg)
    vals = {lt: hf_attention_factor(rp, cfg, key if lt is None else f"{key}.{lt}")[0] for lt, rp in per.items()}
    distinct = set(vals.values())
    if len(distinct) > 1:
        raise InputError(
            f"{key} gives a different attention factor per layer type ({vals}); "
            "use phasejax.schedules.from_config(...) for a per-layer-type report"
        )
    return float(next(iter(distinct)))
