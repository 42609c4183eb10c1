"""Temperature schedules exactly as deployed, read from a model's config.json.

:func:`from_config` turns a config.json into a :class:`DeployedSchedule`: for each **layer type** (Llama-4
RoPE vs NoPE layers, Gemma-2 / GPT-OSS sliding vs global, or one type "all"), the components that
change the attention temperature, what each multiplies (q, k, both, the logit, the softmax scale, cos
and sin), the config key each number came from, and the model code it follows. Everything is host-side
NumPy float64.

**n** is the number of tokens up to and including the query: n = pos + 1 for a 0-based position pos. It
is the number of keys the query sees in full-attention layers; sliding-window and chunked layers see
fewer (``keys_seen`` in the report), while position-dependent factors still read the position.

**logit_factor** of a component is its multiplier of the logit relative to the model's base softmax
scale 1/sqrt(head_dim) (head_dim = qk_nope_head_dim + qk_rope_head_dim for MLA). When only part of the
q.k dimensions is scaled (partial rotary, the rope part of MLA), the reported value is the
dimension-weighted mix fraction f + (1 - fraction), the exact factor for isotropic q and k, and
``logit_factor_range`` = [min(1, f), max(1, f)] the factor's range over directions. A soft cap is a
nonlinear transform cap tanh(x/cap) of the scaled logit: it has no scalar logit_factor, and the scalar
beta does not describe it (the observables take it as ``transform=SoftCap(cap)``; near the query it acts as
beta_eff = beta sech^2(beta / cap), :func:`soft_cap_effective_beta`, docs/theory.md §j).
beta = beta0 x (total logit factor) with beta0 = s|Q||K| the head's own training-time beta (docs/theory.md §h),
except where a qk-norm fixes |Q| = |K| = sqrt(head_dim)
(Llama-4 RoPE layers: beta0 = sqrt(head_dim) exactly, up to the norm's eps).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .._checks import InputError, check_int, check_option, check_real
from ._config import (
    HF_ROPE_SOURCE,
    check_rope_type,
    hf_longrope_attention_factor,
    hf_yarn_attention_factor,
    load_config,
    max_positions,
    rope_dicts,
    text_config,
    yarn_factor,
)
from ._scalar import yarn_mscale

__all__ = ["ENGINES", "Component", "DeployedSchedule", "LayerType", "from_config"]

#: "hf": transformers (main, v5) with the model's own code where transformers has none (Qwen-1, the
#: YaRN repository's dynamic-yarn); "vllm": vLLM (main).
ENGINES = ("hf", "vllm")

QWEN_LOGN_TABLE_END = 32767  # modeling_qwen.py: logn_list for i in range(1, 32768)

_SRC = {
    "yarn_hf": HF_ROPE_SOURCE + " (_compute_yarn_parameters); the rotary module multiplies cos and sin by it",
    "yarn_vllm": "vllm-project/vllm vllm/model_executor/layers/rotary_embedding/__init__.py (get_rope) and "
    "yarn_scaling_rope.py (mscale = yarn_get_mscale(factor) * attn_factor)",
    "mla_rope_vllm": "vllm-project/vllm vllm/model_executor/layers/rotary_embedding/deepseek_scaling_rope.py "
    "(mscale = yarn_get_mscale(f, mscale) / yarn_get_mscale(f, mscale_all_dim) * attn_factor)",
    "mla_softmax_hf": "huggingface/transformers src/transformers/models/deepseek_v3/modeling_deepseek_v3.py "
    "(DeepseekV3Attention: scaling = qk_head_dim^-0.5 * mscale^2, mscale = yarn_get_mscale(factor, mscale_all_dim))",
    "mla_softmax_vllm": "vllm-project/vllm vllm/model_executor/models/deepseek_v2.py (DeepseekV2Attention / "
    "DeepseekV2MLAAttention: self.scaling = self.scaling * mscale * mscale)",
    "longrope_hf": HF_ROPE_SOURCE + " (_compute_longrope_parameters)",
    "longrope_vllm": "vllm-project/vllm vllm/model_executor/layers/rotary_embedding/phi3_long_rope_scaled_rope.py",
    "dynamic_yarn": "jquesnelle/yarn scaled_rope/modeling_llama_yarn.py (LlamaDynamicYaRNScaledRotaryEmbedding)",
    "freq_hf": HF_ROPE_SOURCE + " (_compute_{t}_parameters returns attention_factor = 1.0)",
    "freq_vllm": "vllm-project/vllm vllm/model_executor/layers/rotary_embedding/__init__.py (get_rope)",
    "llama_4_scaling": "huggingface/transformers src/transformers/models/ministral3/modeling_ministral3.py "
    "(_get_llama_4_attn_scale); vllm-project/vllm vllm/model_executor/models/deepseek_v2.py (_get_llama_4_scaling)",
    "qpas": "huggingface/transformers src/transformers/models/gemma2/modeling_gemma2.py "
    "(self.scaling = config.query_pre_attn_scalar**-0.5)",
    "softcap_gemma": "huggingface/transformers src/transformers/models/gemma2/modeling_gemma2.py "
    "(eager_attention_forward: attn_weights = tanh(attn_weights / softcap) * softcap, after the scaling)",
    "softcap_grok": "vllm-project/vllm vllm/model_executor/models/grok1.py "
    "(logits_soft_cap = getattr(config, 'attn_logit_softcapping', 30.0))",
    "llama4": "huggingface/transformers src/transformers/models/llama4/modeling_llama4.py (Llama4TextAttention)",
    "qwen": "Qwen/Qwen-7B modeling_qwen.py (remote code: logn_list, query = query * logn_tensor)",
    "qwen_vllm": "vllm-project/vllm vllm/model_executor/models/qwen.py (QWenAttention: no logn)",
}


# =========================================================================== components


def _n_array(ns, name="n") -> np.ndarray:
    arr = np.asarray(ns, dtype=np.float64) if np.asarray(ns).dtype.kind in "iuf" else None
    if arr is None:
        raise InputError(f"{name} must be real numbers of tokens (>= 1), got {ns!r}")
    if arr.ndim > 1 or arr.size == 0:
        raise InputError(f"{name} must be a number or a non-empty 1-D list, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 1):
        raise InputError(f"{name} must be >= 1 (n = pos + 1, 0-based pos), got {arr.tolist()}")
    return np.atleast_1d(arr)


@dataclass(frozen=True)
class Component:
    """One thing that changes the attention temperature, with its formula, source and config keys.

    ``kind``: "constant" (a fixed factor ``value`` on the logit of the dimensions it acts on),
    "none" (leaves the temperature alone), "llama_4_scaling", "llama4_tuning", "qwen_logn",
    "dynamic_yarn" (position or length dependent, parameters in ``params``), "qk_norm" (fixes
    |Q| = |K| = sqrt(head_dim)), "softcap" (nonlinear, cap = ``value``). ``fraction`` is the share of the
    q.k dimensions it acts on (1 unless partial rotary or MLA).
    """

    name: str
    applied_to: str
    formula: str
    source: str
    config_keys: Mapping[str, object]
    kind: str
    value: float = 1.0
    fraction: float = 1.0
    params: Mapping[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def nonlinear(self) -> bool:
        return self.kind == "softcap"

    def dim_factor(self, n, *, seq_len=None) -> np.ndarray:
        """The logit factor on the dimensions the component acts on (float64, shape of n)."""
        x = _n_array(n)
        p = self.params
        if self.kind == "constant":
            return np.full_like(x, self.value)
        if self.kind in ("none", "qk_norm"):
            return np.ones_like(x)
        if self.kind == "llama_4_scaling":
            return 1.0 + p["beta"] * np.log1p(np.floor((x - 1.0) / p["original_max_position_embeddings"]))
        if self.kind == "llama4_tuning":
            return np.log1p(np.floor(x / p["floor_scale"])) * p["attn_scale"] + 1.0
        if self.kind == "qwen_logn":
            f = np.where(x > p["seq_length"], np.log(x) / math.log(p["seq_length"]), 1.0)
            return np.where(x > QWEN_LOGN_TABLE_END, np.nan, f)
        if self.kind == "dynamic_yarn":
            if seq_len is None:
                s_len = x
            else:
                s_len = np.full_like(x, check_real("seq_len", seq_len, minimum=1.0))
                if np.any(x > s_len):
                    raise InputError(f"seq_len must be >= every n, got {seq_len!r}")
            s = np.maximum(s_len / p["max_position_embeddings"], 1.0)
            return (0.1 * np.log(s) + 1.0) ** 2
        raise InputError(f"component {self.name!r} ({self.kind}) has no scalar logit factor: it is a transform")

    def logit_factor(self, n, *, seq_len=None) -> np.ndarray | None:
        """fraction f + (1 - fraction): the logit factor for isotropic q, k; None for a soft cap."""
        if self.nonlinear:
            return None
        f = self.dim_factor(n, seq_len=seq_len)
        return self.fraction * f + (1.0 - self.fraction)

    def logit_factor_range(self, n, *, seq_len=None) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) of the factor over directions of q, k: [min(1, f), max(1, f)] when fraction < 1."""
        if self.nonlinear:
            return None
        f = self.dim_factor(n, seq_len=seq_len)
        if self.fraction >= 1.0:
            return f, f
        return np.minimum(f, 1.0), np.maximum(f, 1.0)

    def transform(self, logits):
        """The soft cap cap tanh(x / cap) on scaled logits (float64); identity for scalar components."""
        x = np.asarray(logits, dtype=np.float64)
        return self.value * np.tanh(x / self.value) if self.nonlinear else x

    def to_dict(self, n, *, seq_len=None) -> dict:
        d = {
            "name": self.name,
            "applied_to": self.applied_to,
            "formula": self.formula,
            "source": self.source,
            "config_keys": {k: _jsonable(v) for k, v in self.config_keys.items()},
            "nonlinear": self.nonlinear,
            "rotated_fraction": self.fraction,
        }
        if self.nonlinear:
            d.update(logit_factor=None, logit_factor_range=None, cap=self.value,
                     transform=f"{self.value:g} * tanh(x / {self.value:g})",
                     note="a nonlinear transform of the scaled logit x: the scalar beta does not describe it")
        else:
            lo, hi = self.logit_factor_range(n, seq_len=seq_len)
            d.update(logit_factor=_floats(self.logit_factor(n, seq_len=seq_len)),
                     logit_factor_range=[[_float(a), _float(b)] for a, b in zip(lo, hi, strict=True)])
        if self.kind == "qk_norm":
            d["beta0"] = self.value
        if self.note:
            d["note"] = self.note
        return d


def _float(v):
    v = float(v)
    return None if not math.isfinite(v) else v


def _floats(a) -> list:
    return [_float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def _jsonable(v):
    if isinstance(v, (bool, str)) or v is None:
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return _float(v)
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return str(v)


@dataclass(frozen=True)
class LayerType:
    """A set of layers that share one temperature schedule (and, if any, a window)."""

    name: str
    layers: tuple[int, ...]
    components: tuple[Component, ...]
    window: int | None = None
    window_kind: str | None = None  # "sliding" or "chunked"
    beta0: float | None = None  # fixed by a qk-norm, else None (the head's own)

    def keys_seen(self, n) -> np.ndarray:
        """Keys a query at n = pos + 1 attends to: n, min(n, W) (sliding) or ((n - 1) mod W) + 1 (chunked)."""
        x = _n_array(n)
        if self.window is None:
            return x
        if self.window_kind == "chunked":
            return np.mod(x - 1.0, self.window) + 1.0
        return np.minimum(x, float(self.window))

    def logit_factor(self, n, *, seq_len=None) -> np.ndarray:
        """Product of the scalar components' logit factors (soft caps excluded: see ``transforms``)."""
        out = np.ones_like(_n_array(n))
        for c in self.components:
            if not c.nonlinear:
                out = out * c.logit_factor(n, seq_len=seq_len)
        return out

    def logit_factor_range(self, n, *, seq_len=None) -> tuple[np.ndarray, np.ndarray]:
        lo = hi = np.ones_like(_n_array(n))
        for c in self.components:
            if not c.nonlinear:
                a, b = c.logit_factor_range(n, seq_len=seq_len)
                lo, hi = lo * a, hi * b
        return lo, hi

    @property
    def transforms(self) -> tuple[Component, ...]:
        return tuple(c for c in self.components if c.nonlinear)


@dataclass(frozen=True)
class DeployedSchedule:
    """The temperature schedule a config.json deploys, per layer type (see :func:`from_config`)."""

    model_type: str
    engine: str
    source: str
    head_dim: int
    base_scale: float
    base_scale_from: str
    layer_types: tuple[LayerType, ...]
    notes: tuple[str, ...] = ()

    @property
    def layer_type_names(self) -> tuple[str, ...]:
        return tuple(lt.name for lt in self.layer_types)

    def layer_type(self, name: str | None = None) -> LayerType:
        """The layer type called ``name`` (default: the only one)."""
        if name is None:
            if len(self.layer_types) == 1:
                return self.layer_types[0]
            raise InputError(f"layer_type must be given: one of {', '.join(map(repr, self.layer_type_names))}")
        for lt in self.layer_types:
            if lt.name == name:
                return lt
        raise InputError(f"layer_type must be one of {', '.join(map(repr, self.layer_type_names))}; got {name!r}")

    def logit_factor(self, n, *, layer_type: str | None = None, seq_len=None) -> np.ndarray:
        """Total scalar logit factor (isotropic q, k) of one layer type at each n (float64)."""
        return self.layer_type(layer_type).logit_factor(n, seq_len=seq_len)

    def beta(self, n, *, beta0: float | None = None, layer_type: str | None = None, seq_len=None) -> np.ndarray:
        """beta(n) = beta0 x logit factor; beta0 is fixed (and must not be given) on qk-normed layers."""
        lt = self.layer_type(layer_type)
        if lt.beta0 is not None:
            if beta0 is not None:
                raise InputError(f"beta0 must not be given for layer type {lt.name!r}: its qk-norm fixes it "
                                 f"to sqrt(head_dim) = {lt.beta0:.6g}")
            b0 = lt.beta0
        else:
            if beta0 is None:
                raise InputError("beta0 must be given (> 0): the head's training-time beta s|Q||K|")
            b0 = check_real("beta0", beta0, positive=True)
        return b0 * lt.logit_factor(n, seq_len=seq_len)

    def report(self, ns, *, seq_len=None, beta0: float | None = None) -> dict:
        """A JSON-ready dict: per layer type and component, at each n, the logit factor and its provenance.

        Per layer type: ``keys_seen``, every component (``applied_to``, ``formula``, ``source``,
        ``config_keys``, ``logit_factor`` and its range, or the ``transform`` of a soft cap), the
        ``total_logit_factor`` and, where beta0 is fixed (qk-norm) or ``beta0`` is given, ``beta``.
        ``seq_len``: the whole sequence length for length-dependent components (dynamic YaRN; default n).

        >>> s = from_config({"model_type": "qwen2", "hidden_size": 3584, "num_attention_heads": 28,
        ...     "max_position_embeddings": 32768, "rope_scaling": {"type": "yarn", "factor": 4.0,
        ...     "original_max_position_embeddings": 32768}})
        >>> r = s.report([4096, 131072])
        >>> [round(v, 6) for v in r["layer_types"][0]["total_logit_factor"]]
        [1.296477, 1.296477]
        >>> r["layer_types"][0]["components"][0]["applied_to"]
        'cos and sin of the rotated dims (q and k: its square on the logit)'
        """
        n = _n_array(ns)
        b0_given = None if beta0 is None else check_real("beta0", beta0, positive=True)
        layers = []
        for lt in self.layer_types:
            lo, hi = lt.logit_factor_range(n, seq_len=seq_len)
            total = lt.logit_factor(n, seq_len=seq_len)
            d = {
                "name": lt.name,
                "layers": list(lt.layers),
                "count": len(lt.layers),
                "window": lt.window,
                "window_kind": lt.window_kind,
                "keys_seen": _floats(lt.keys_seen(n)),
                "components": [c.to_dict(n, seq_len=seq_len) for c in lt.components],
                "total_logit_factor": _floats(total),
                "total_logit_factor_range": [[_float(a), _float(b)] for a, b in zip(lo, hi, strict=True)],
                "beta0": lt.beta0 if lt.beta0 is not None else b0_given,
                "beta0_from": "qk-norm: sqrt(head_dim)" if lt.beta0 is not None else
                ("given" if b0_given is not None else "the head's own (not in the config)"),
                "beta": _floats((lt.beta0 or b0_given) * total) if (lt.beta0 or b0_given) else None,
                "nonlinear_transforms": [f"{c.value:g} * tanh(x / {c.value:g})" for c in lt.transforms],
            }
            if lt.transforms:
                d["note"] = ("a soft cap follows the scaled logit: the total logit factor is its slope at 0 only; "
                             "the scalar beta does not describe the capped head")
            layers.append(d)
        return {
            "model_type": self.model_type,
            "engine": self.engine,
            "config": self.source,
            "n": _floats(n),
            "n_convention": "n = pos + 1 (0-based position pos): tokens up to and including the query; keys_seen "
            "is what the query attends to in that layer type",
            "logit_factor_convention": "multiplier of the logit relative to the base softmax scale 1/sqrt(head_dim); "
            "for partially scaled dimensions the isotropic-q,k mix, with its range over directions",
            "head_dim": self.head_dim,
            "base_softmax_scale": self.base_scale,
            "base_softmax_scale_from": self.base_scale_from,
            "seq_len": seq_len,
            "layer_types": layers,
            "notes": list(self.notes),
        }


# =========================================================================== reading a config


def _int(cfg: dict, name: str) -> int:
    return check_int(name, cfg[name], minimum=1)


def _dims(cfg: dict) -> tuple[int, int, str, dict]:
    """(q.k head dim, rotated dims, where the head dim came from, keys)."""
    if cfg.get("qk_rope_head_dim") is not None and cfg.get("qk_nope_head_dim") is not None:
        d_rope, d_nope = _int(cfg, "qk_rope_head_dim"), check_int("qk_nope_head_dim", cfg["qk_nope_head_dim"],
                                                                    minimum=0)
        return d_rope + d_nope, d_rope, "qk_nope_head_dim + qk_rope_head_dim", {
            "qk_nope_head_dim": d_nope, "qk_rope_head_dim": d_rope}
    if cfg.get("head_dim") is not None:
        d, src = _int(cfg, "head_dim"), "head_dim"
    elif cfg.get("kv_channels") is not None:
        d, src = _int(cfg, "kv_channels"), "kv_channels"
    else:
        missing = [k for k in ("hidden_size", "num_attention_heads") if cfg.get(k) is None]
        if missing:
            raise InputError(f"config needs head_dim, or hidden_size and num_attention_heads; missing {missing}")
        d, src = _int(cfg, "hidden_size") // _int(cfg, "num_attention_heads"), "hidden_size // num_attention_heads"
    return d, d, src, {src: d}


def _rotary_fraction(cfg: dict, rp: dict, d_qk: int, d_rot: int) -> tuple[float, dict]:
    """Share of the q.k dims the rotary factor acts on: MLA rope dims, or int(head_dim * partial_rotary_factor)."""
    if d_rot != d_qk:
        return d_rot / d_qk, {"qk_rope_head_dim": d_rot, "qk_nope_head_dim": d_qk - d_rot}
    for key in ("partial_rotary_factor", "rotary_pct"):
        v = rp.get(key) if key == "partial_rotary_factor" else cfg.get(key)
        if v is not None:
            p = check_real(key, v, positive=True, maximum=1.0)
            return int(d_qk * p) / d_qk, {key: v}
    return 1.0, {}


def _truthy(v) -> bool:
    return bool(v)


class _Builder:
    def __init__(self, cfg: dict, engine: str, max_model_len):
        self.cfg, self.engine, self.max_model_len = cfg, engine, max_model_len
        self.notes: list[str] = []
        self.model_type = str(cfg.get("model_type") or cfg.get("_outer_model_type") or "unknown")

    @property
    def mla(self) -> bool:
        return self.cfg.get("qk_rope_head_dim") is not None and self.cfg.get("qk_nope_head_dim") is not None

    # ------------------------------------------------------------------ rope
    def rope_components(self, rp: dict, key: str, fraction: float, fkeys: dict) -> list[Component]:
        cfg, eng = self.cfg, self.engine
        rtype = check_rope_type(rp, key)
        tkey = {f"{key}.rope_type": rp["rope_type"]}
        rot = "cos and sin of the rotated dims (q and k: its square on the logit)"
        if rtype in ("default", "mllama4"):
            return []
        if rtype in ("linear", "dynamic", "llama3", "ntk"):
            if rtype != "dynamic" or "factor" in rp:
                check_real(f"{key}.factor", rp.get("factor"), positive=True)
            src = _SRC["freq_vllm"] if eng == "vllm" or rtype == "ntk" else _SRC["freq_hf"].format(
                t={"linear": "linear_scaling_rope", "dynamic": "dynamic_ntk"}.get(rtype, rtype))
            return [Component(f"rope_{rtype}", "rotation frequencies only", "attention factor 1: "
                              f"{rtype} RoPE scaling leaves the temperature alone", src,
                              {**tkey, f"{key}.factor": rp.get("factor")}, "none")]
        if rtype == "dynamic-yarn":
            L = max_positions(cfg)
            self.notes.append("rope_type 'dynamic-yarn' is the YaRN repository's own; transformers and vLLM do not "
                              "implement it. One scale s = max(1, S / max_position_embeddings) from the whole "
                              "sequence length S (default S = n); cached keys keep the factor of their pass.")
            return [Component("yarn_dynamic", rot, "(0.1 ln s + 1)^2, s = max(1, S / max_position_embeddings)",
                              _SRC["dynamic_yarn"], {**tkey, "max_position_embeddings": cfg["max_position_embeddings"]},
                              "dynamic_yarn", fraction=fraction, params={"max_position_embeddings": L})]
        if rtype == "yarn":
            return self._yarn(rp, key, fraction, fkeys, tkey, rot)
        if rtype == "longrope":
            return self._longrope(rp, key, fraction, fkeys, tkey, rot)
        raise AssertionError(rtype)  # pragma: no cover (check_rope_type)

    def _yarn(self, rp, key, fraction, fkeys, tkey, rot) -> list[Component]:
        cfg, eng = self.cfg, self.engine
        f = yarn_factor(rp, cfg, key)
        out = []
        if eng == "hf":
            a, used = hf_yarn_attention_factor(rp, cfg, key)
            formula = ("attention_factor" if f"{key}.attention_factor" in used else
                       "(get_mscale(f, mscale) / get_mscale(f, mscale_all_dim))" if f"{key}.mscale" in used else
                       "(0.1 ln f + 1)") + "^2 on the rotated dims"
            out.append(Component("yarn", rot, formula, _SRC["yarn_hf"], {**tkey, **used, **fkeys}, "constant",
                                 a * a, fraction))
        elif self.mla:
            m = check_real(f"{key}.mscale", rp.get("mscale", 1.0))
            m_all = check_real(f"{key}.mscale_all_dim", rp.get("mscale_all_dim", 0.0))
            af = check_real(f"{key}.attn_factor", rp.get("attn_factor", 1.0), positive=True)
            a = yarn_mscale(f, mscale=m) / yarn_mscale(f, mscale=m_all) * af
            used = {f"{key}.factor": rp.get("factor"), f"{key}.mscale": rp.get("mscale"),
                    f"{key}.mscale_all_dim": rp.get("mscale_all_dim")}
            if "attn_factor" in rp:
                used[f"{key}.attn_factor"] = rp["attn_factor"]
            out.append(Component("yarn", rot, "(get_mscale(f, mscale) / get_mscale(f, mscale_all_dim) * attn_factor)^2"
                                 " on the rope dims (defaults mscale = 1, mscale_all_dim = 0)", _SRC["mla_rope_vllm"],
                                 {**tkey, **used, **fkeys}, "constant", a * a, fraction))
        else:
            apply = rp.get("apply_yarn_scaling", True)
            af = check_real(f"{key}.attn_factor", rp.get("attn_factor", 1.0), positive=True)
            a = yarn_mscale(f) * af if apply else af
            used = {f"{key}.factor": rp.get("factor")}
            for k in ("attn_factor", "apply_yarn_scaling"):
                if k in rp:
                    used[f"{key}.{k}"] = rp[k]
            ignored = [k for k in ("attention_factor", "mscale", "mscale_all_dim") if rp.get(k) is not None]
            note = ""
            if ignored:
                note = (f"vLLM's get_rope does not pass {', '.join(ignored)} to YaRN: ignored (transformers "
                        f"would use them)")
                self.notes.append(f"{key}: {note}")
            if rp.get("llama_4_scaling_beta") is not None:
                self.notes.append(
                    f"{key}: transformers (the Ministral-3 reference) uses attention factor 1 here (mscale = "
                    "mscale_all_dim); vLLM's get_rope gives get_mscale(f) * attn_factor. Whether vLLM's Mistral "
                    "loader sets attn_factor or apply_yarn_scaling for this model was not found in the stored sources")
            out.append(Component("yarn", rot, "(get_mscale(f) * attn_factor)^2 on the rotated dims"
                                 if apply else "attn_factor^2 (apply_yarn_scaling false)", _SRC["yarn_vllm"],
                                 {**tkey, **used, **fkeys}, "constant", a * a, fraction, note=note))
        if self.mla:
            out.extend(self._mla_softmax(rp, key, f))
        return out

    def _mla_softmax(self, rp, key, f) -> list[Component]:
        eng = self.engine
        raw_f = rp.get("factor")
        if eng == "hf" and self.model_type == "deepseek_v2":
            self.notes.append(
                "transformers' native DeepseekV2Attention (src/transformers/models/deepseek_v2/modular_deepseek_v2.py) "
                "uses scaling = qk_head_dim^-0.5 without the get_mscale(factor, mscale_all_dim)^2 that DeepSeek's own "
                "modeling_deepseek.py (trust_remote_code) and vLLM apply: engine='vllm' gives the trained value")
            return []
        if eng == "hf":
            m_all = rp.get("mscale_all_dim", 0)
            if not m_all:
                return []
            v = yarn_mscale(check_real(f"{key}.factor", raw_f, positive=True), mscale=m_all) ** 2
            return [Component("mla_softmax_mscale", "softmax scale (every q.k dim: the logit)",
                              "get_mscale(factor, mscale_all_dim)^2", _SRC["mla_softmax_hf"],
                              {f"{key}.factor": raw_f, f"{key}.mscale_all_dim": m_all}, "constant", v)]
        if rp.get("apply_yarn_scaling", True) is False:
            return []
        m_all = float(rp.get("mscale_all_dim", False) or 0.0)
        v = yarn_mscale(f, mscale=m_all) ** 2
        return [Component("mla_softmax_mscale", "softmax scale (every q.k dim: the logit)",
                          "yarn_get_mscale(factor, mscale_all_dim)^2 (1 when mscale_all_dim is absent)",
                          _SRC["mla_softmax_vllm"], {f"{key}.factor": raw_f,
                                                     f"{key}.mscale_all_dim": rp.get("mscale_all_dim")},
                          "constant", v)]

    def _longrope(self, rp, key, fraction, fkeys, tkey, rot) -> list[Component]:
        cfg = self.cfg
        if self.engine == "hf":
            a, used = hf_longrope_attention_factor(rp, cfg, key)
            ignored = [k for k in ("short_mscale", "long_mscale") if rp.get(k) is not None]
            note = ""
            if ignored:
                note = f"transformers ignores {', '.join(ignored)} (vLLM uses them)"
                self.notes.append(f"{key}: {note}")
            return [Component("longrope", rot, "(attention_factor or sqrt(1 + ln f / ln L0))^2, f = factor or "
                              "max_position_embeddings / L0", _SRC["longrope_hf"], {**tkey, **used, **fkeys},
                              "constant", a * a, fraction, note=note)]
        orig = check_real("original_max_position_embeddings", rp.get("original_max_position_embeddings"), positive=True)
        mpe = max_positions(cfg)
        scale = mpe / orig
        a0 = 1.0 if scale <= 1 else math.sqrt(1 + math.log(scale) / math.log(orig))
        mml = mpe if self.max_model_len is None else check_real("max_model_len", self.max_model_len, positive=True)
        use_long = mml > orig
        which = "long_mscale" if use_long else "short_mscale"
        a = check_real(f"{key}.{which}", rp[which], positive=True) if rp.get(which) is not None else a0
        used = {"max_position_embeddings": cfg["max_position_embeddings"], "original_max_position_embeddings": orig,
                f"{key}.{which}": rp.get(which), "max_model_len": mml}
        ignored = [k for k in ("attention_factor", "factor") if rp.get(k) is not None]
        note = f"vLLM ignores {', '.join(ignored)}" if ignored else ""
        if note:
            self.notes.append(f"{key}: {note}")
        return [Component("longrope", rot, f"({which} or sqrt(1 + ln(max_position_embeddings / L0) / ln L0))^2; "
                          f"{'long' if use_long else 'short'} cache for every position since max_model_len "
                          f"{'>' if use_long else '<='} L0", _SRC["longrope_vllm"], {**tkey, **used, **fkeys},
                          "constant", a * a, fraction, note=note)]

    # ------------------------------------------------------------------ the rest
    def common_components(self, rp: dict, key: str, d_qk: int) -> list[Component]:
        cfg, out = self.cfg, []
        # Mistral llama_4_scaling: rope_parameters.llama_4_scaling_beta (HF) or llama_4_scaling {beta, ...} (native)
        l4 = cfg.get("llama_4_scaling") if isinstance(cfg.get("llama_4_scaling"), Mapping) else None
        beta = rp.get("llama_4_scaling_beta")
        if beta is not None or l4 is not None:
            if beta is not None:
                bkey, L_key = f"{key}.llama_4_scaling_beta", f"{key}.original_max_position_embeddings"
                L = rp.get("original_max_position_embeddings")
            else:
                beta, bkey = l4.get("beta"), "llama_4_scaling.beta"
                L = l4.get("original_max_position_embeddings")
                L_key = "llama_4_scaling.original_max_position_embeddings"
            b = check_real(bkey, beta, nonnegative=True)
            L = check_real(L_key, L, positive=True)
            note = ("vLLM applies it in deepseek_v2.py (Mistral-Large-3); its dense Mistral path was not found in the "
                    "stored sources" if self.engine == "vllm" else "")
            out.append(Component("llama_4_scaling", "q (every layer, after RoPE): once on the logit",
                                 "1 + beta ln(1 + floor(pos / L)), pos = n - 1", _SRC["llama_4_scaling"],
                                 {bkey: beta, L_key: L}, "llama_4_scaling",
                                 params={"beta": b, "original_max_position_embeddings": L}, note=note))
        if cfg.get("query_pre_attn_scalar") is not None:
            q = check_real("query_pre_attn_scalar", cfg["query_pre_attn_scalar"], positive=True)
            out.append(Component("query_pre_attn_scalar", "softmax scale (the logit)",
                                 "query_pre_attn_scalar^-1/2 / head_dim^-1/2 = sqrt(head_dim / query_pre_attn_scalar)",
                                 _SRC["qpas"], {"query_pre_attn_scalar": cfg["query_pre_attn_scalar"]}, "constant",
                                 math.sqrt(d_qk / q)))
        cap_key, cap = None, None
        if cfg.get("attn_logit_softcapping") is not None:
            cap_key, cap = "attn_logit_softcapping", cfg["attn_logit_softcapping"]
        elif self.model_type in ("grok-1", "grok1", "grok"):
            cap_key, cap = "attn_logit_softcapping (vLLM default)", 30.0
        if cap is not None:
            c = check_real("attn_logit_softcapping", cap, nonnegative=True)
            if c > 0:
                src = _SRC["softcap_grok"] if self.model_type.startswith("grok") else _SRC["softcap_gemma"]
                out.append(Component("softcap", "the scaled logit (nonlinear)", f"{c:g} tanh(x / {c:g})", src,
                                     {cap_key: cap}, "softcap", c))
        if _truthy(cfg.get("use_logn_attn")):
            if self.engine == "hf":
                L = check_real("seq_length", cfg.get("seq_length"), minimum=2.0)
                out.append(Component("qwen_logn", "q: once on the logit",
                                     "max(1, log n / log seq_length); the model's table ends at n = 32767",
                                     _SRC["qwen"],
                                     {"use_logn_attn": cfg["use_logn_attn"], "seq_length": cfg["seq_length"]},
                                     "qwen_logn", params={"seq_length": L},
                                     note="n > 32767 lies beyond the model's logn table (reported as null)"))
            else:
                self.notes.append("use_logn_attn: vLLM's qwen.py does not implement logn attention; the factor is "
                                  "silently dropped (transformers runs the remote modeling_qwen.py, which applies it)")
                out.append(Component("qwen_logn", "q (not applied by vLLM)", "1: vLLM skips logn", _SRC["qwen_vllm"],
                                     {"use_logn_attn": cfg["use_logn_attn"]}, "none"))
        if _truthy(cfg.get("use_dynamic_ntk")):
            src = _SRC["qwen"] if self.engine == "hf" else _SRC["qwen_vllm"]
            out.append(Component("dynamic_ntk", "rotation frequencies only", "attention factor 1: dynamic NTK "
                                 "leaves the temperature alone", src,
                                 {"use_dynamic_ntk": cfg["use_dynamic_ntk"]}, "none"))
        if self.model_type == "gpt_oss":
            self.notes.append("gpt_oss: every head has a learned attention sink (an extra logit in the softmax "
                              "denominator, huggingface/transformers "
                              "src/transformers/models/gpt_oss/modeling_gpt_oss.py); it is not a temperature "
                              "and is not part of the logit factor")
        return out


def _layer_plan(cfg: dict, model_type: str) -> list[tuple[str, tuple[int, ...], int | None, str | None]]:
    """[(layer type name, layer indices, window, window kind)]."""
    L = cfg.get("num_hidden_layers")
    idx = tuple(range(check_int("num_hidden_layers", L, minimum=1))) if L is not None else ()
    types = cfg.get("layer_types")
    if isinstance(types, (list, tuple)) and types and not model_type.startswith("llama4"):
        plan = []
        for name in dict.fromkeys(types):
            layers = tuple(i for i, t in enumerate(types) if t == name)
            if name == "sliding_attention" and cfg.get("sliding_window") is not None:
                plan.append((name, layers, check_int("sliding_window", cfg["sliding_window"], minimum=1), "sliding"))
            elif name == "chunked_attention" and cfg.get("attention_chunk_size") is not None:
                plan.append((name, layers, check_int("attention_chunk_size", cfg["attention_chunk_size"], minimum=1),
                             "chunked"))
            else:
                plan.append((name, layers, None, None))
        return plan
    if model_type == "gemma2" and cfg.get("sliding_window") is not None:
        w = check_int("sliding_window", cfg["sliding_window"], minimum=1)
        return [("sliding_attention", tuple(i for i in idx if i % 2 == 0), w, "sliding"),
                ("full_attention", tuple(i for i in idx if i % 2 == 1), None, None)]
    w = cfg.get("sliding_window")
    if w is not None and cfg.get("use_sliding_window", True) is not False:
        return [("all", idx, check_int("sliding_window", w, minimum=1), "sliding")]
    return [("all", idx, None, None)]


def from_config(config, *, engine: str = "hf", max_model_len: float | None = None) -> DeployedSchedule:
    """Read a config.json (a path, a folder holding one, or a dict) into a :class:`DeployedSchedule`.

    Read: ``rope_parameters`` / ``rope_scaling`` (rope_type, factor, attention_factor, mscale,
    mscale_all_dim, attn_factor, apply_yarn_scaling, short/long_mscale, llama_4_scaling_beta,
    original_max_position_embeddings), ``model_type``, ``head_dim`` / ``hidden_size`` /
    ``num_attention_heads``, ``qk_rope_head_dim`` + ``qk_nope_head_dim`` (MLA), ``partial_rotary_factor``,
    ``query_pre_attn_scalar``, ``attn_logit_softcapping``, ``use_qk_norm`` / ``no_rope_layers`` /
    ``attn_temperature_tuning`` / ``floor_scale`` / ``attn_scale`` / ``attention_chunk_size`` (Llama-4),
    ``llama_4_scaling`` (Mistral native), ``use_logn_attn`` / ``seq_length`` (Qwen-1),
    ``max_position_embeddings``, ``layer_types`` / ``sliding_window``; a ``text_config`` is merged in.

    Components (each composes with the others, multiplied on the logit):

    - YaRN on cos/sin (squared on the logit), only on the rotated dims (partial rotary, MLA rope dims);
      engine "hf": ``attention_factor`` wins, else the mscale / mscale_all_dim ratio when both are set,
      else 0.1 ln f + 1; engine "vllm": get_mscale(f) x ``attn_factor`` (mscale keys ignored) or, for MLA,
      the ratio x attn_factor;
    - MLA softmax scale x get_mscale(f, mscale_all_dim)^2 (DeepSeek-V3 style; transformers' native
      deepseek_v2 omits it, see the notes);
    - LongRoPE sqrt(1 + ln s / ln L0) on cos/sin (vLLM: short/long_mscale overrides);
    - Mistral llama_4_scaling on q; Gemma's query_pre_attn_scalar; soft caps (a transform);
    - Llama-4: RoPE layers qk-normed (beta0 = sqrt(head_dim)) and chunked, NoPE layers with temperature
      tuning on q; Qwen-1 logn on q;
    - linear, dynamic NTK, llama3 and NTK scaling: reported as leaving the temperature alone.

    ``engine``: "hf" (transformers main; the model's remote code where transformers has none) or "vllm".
    ``max_model_len``: vLLM's runtime maximum (default max_position_embeddings), which picks LongRoPE's
    long or short factors. Errors (unknown rope_type, a factor <= 0, missing keys) are
    :class:`~phasejax.InputError` naming the key.

    >>> s = from_config({"model_type": "deepseek_v2", "hidden_size": 5120, "num_attention_heads": 128,
    ...     "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "max_position_embeddings": 163840,
    ...     "rope_scaling": {"type": "yarn", "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
    ...     "original_max_position_embeddings": 4096}}, engine="vllm")
    >>> round(float(s.logit_factor(131072)[0]), 4)
    1.5896
    """
    check_option("engine", engine, ENGINES)
    raw, source = load_config(config)
    cfg = text_config(raw)
    b = _Builder(cfg, engine, max_model_len)
    d_qk, d_rot, d_src, dkeys = _dims(cfg)
    key, per = rope_dicts(cfg)
    model_type = b.model_type
    llama4_like = model_type.startswith("llama4") or cfg.get("no_rope_layers") is not None

    def rope_for(layer_name: str | None) -> tuple[dict, str]:
        if None in per:
            return per[None], key
        if layer_name in per:
            return per[layer_name], f"{key}.{layer_name}"
        raise InputError(f"{key} has no entry for layer type {layer_name!r} (has {sorted(per)})")

    layer_types = []
    if llama4_like:
        if cfg.get("num_hidden_layers") is None:
            b.notes.append("num_hidden_layers absent: transformers' Llama4TextConfig default 48")
        n_layers = check_int("num_hidden_layers", cfg.get("num_hidden_layers", 48), minimum=1)
        interval = check_int("no_rope_layer_interval", cfg.get("no_rope_layer_interval", 4), minimum=1)
        nrl = cfg.get("no_rope_layers")
        if not nrl:
            nrl = [int((i + 1) % interval != 0) for i in range(n_layers)]
            b.notes.append(f"no_rope_layers absent: transformers' default, every {interval}th layer NoPE")
        rp, rkey = rope_for(None)
        frac, fkeys = _rotary_fraction(cfg, rp, d_qk, d_rot)
        common = b.common_components(rp, rkey, d_qk)
        rope_layers = tuple(i for i, u in enumerate(nrl) if u)
        nope_layers = tuple(i for i, u in enumerate(nrl) if not u)
        comps = b.rope_components(rp, rkey, frac, fkeys)
        beta0 = None
        qk = cfg.get("use_qk_norm", True)
        if qk:
            beta0 = math.sqrt(d_qk)
            comps.append(Component("qk_norm", "q and k (L2 norm without weight, RoPE layers)",
                                   "|Q| = |K| = sqrt(head_dim): beta0 = sqrt(head_dim) (up to the norm's eps)",
                                   _SRC["llama4"] + ": qk_norm = Llama4TextL2Norm if use_qk_norm and use_rope",
                                   {"use_qk_norm": qk, "rms_norm_eps": cfg.get("rms_norm_eps")}, "qk_norm", beta0))
        chunk = cfg.get("attention_chunk_size")
        layer_types.append(LayerType("rope", rope_layers, tuple(comps + common),
                                     None if chunk is None else check_int("attention_chunk_size", chunk, minimum=1),
                                     None if chunk is None else "chunked", beta0))
        nope = []
        tt = cfg.get("attn_temperature_tuning", True)
        if tt:
            fs = check_real("floor_scale", cfg.get("floor_scale", 8192), positive=True)
            a = check_real("attn_scale", cfg.get("attn_scale", 0.1), nonnegative=True)
            nope.append(Component("llama4_temperature_tuning", "q (NoPE layers): once on the logit",
                                  "log(floor(n / floor_scale) + 1) attn_scale + 1, n = cache_position + 1",
                                  _SRC["llama4"], {"attn_temperature_tuning": tt, "floor_scale": cfg.get("floor_scale"),
                                                   "attn_scale": cfg.get("attn_scale")},
                                  "llama4_tuning", params={"floor_scale": fs, "attn_scale": a}))
        layer_types.append(LayerType("nope", nope_layers, tuple(nope + common)))
    else:
        for name, layers, window, wkind in _layer_plan(cfg, model_type):
            rp, rkey = rope_for(None if name == "all" or None in per else name)
            frac, fkeys = _rotary_fraction(cfg, rp, d_qk, d_rot)
            comps = b.rope_components(rp, rkey, frac, fkeys) + b.common_components(rp, rkey, d_qk)
            layer_types.append(LayerType(name, layers, tuple(comps), window, wkind))
    return DeployedSchedule(model_type=model_type, engine=engine, source=source, head_dim=d_qk,
                            base_scale=d_qk**-0.5, base_scale_from=f"1/sqrt({d_src})",
                            layer_types=tuple(layer_types), notes=tuple(dict.fromkeys(b.notes)))
