"""Temperature schedules used in practice, as beta(n) under one explicit convention, and as deployed.

**The convention.** beta multiplies the cosine t = <q, k> of *unit* vectors: the logit of a pair is
beta t. A raw head with query Q, key K and softmax scale s (1/sqrt(d_head) in standard attention) has
beta = s |Q| |K| for that pair. ``beta0`` is the head's beta at the context lengths it was trained on
(no schedule active): beta0 = s |Q| |K|. For isotropic queries and keys with unit-variance components
|Q| |K| ~ d_head, so a freshly initialised head has beta0 ~ sqrt(d_head); a trained head's beta0 is
whatever its norms make it (measure it with ``phasejax diagnose``). Every schedule returns
beta(n) = beta0 g(n) with g the factor that the model code puts on the *logit*: a factor c on q alone
(or on k alone) multiplies the logit by c; a factor c on both q and k multiplies it by c^2 (users trip
on this one: YaRN multiplies cos and sin, which rotate q *and* k). (docs/theory.md §h.)

**n** is the number of keys the query position can see: n = pos + 1 for a causal position pos
(0-based), the convention of Qwen-1 (``logn_list[i - 1] = log_L(i)``), Llama-4 (``cache_position + 1``)
and SSMax ("n = the size of the input vector").

===================  ==============================================  ================  ===========================
schedule             beta(n) / beta0                                 applied to        model code
===================  ==============================================  ================  ===========================
constant             1                                               -                 -
qwen_logn            max(1, log n / log L)                           q                 Qwen-7B modeling_qwen.py
yarn (factor f)      a^2, a = attention_factor | mscale ratio |      cos/sin (q, k)    HF modeling_rope_utils.py
                     0.1 ln f + 1
yarn (no factor)     (0.1 ln s + 1)^2, s = max(1, n/L)               cos/sin (q, k)    phasejax (per position)
yarn_dynamic         (0.1 ln s + 1)^2, s = max(1, S/L), S = seq len  cos/sin (q, k)    jquesnelle/yarn
longrope             1 + ln s / ln L, s = max_length / L             cos/sin (q, k)    HF modeling_rope_utils.py
llama_4_scaling      1 + beta ln(1 + floor((n - 1)/L))               q                 HF modeling_ministral3.py
ssmax                s log n                                         logit             Nakanishi 2025 (SSMax)
llama4               log(floor(n/F) + 1) a + 1                       q (NoPE layers)   HF modeling_llama4.py
critical             lambda n^{2/alpha} / beta0                      logit             docs/theory.md §c, §d
===================  ==============================================  ================  ===========================

(L = ``train_length``; F = ``floor_scale`` = 8192 and a = ``attn_scale`` = 0.1 by default.)

**As deployed.** :func:`from_config` reads a model's config.json into a :class:`DeployedSchedule`: per
layer type, every component (YaRN with mscale / mscale_all_dim / attention_factor, the MLA softmax
factor, partial rotary, LongRoPE, llama_4_scaling, query_pre_attn_scalar, soft caps, qk-norm, Llama-4
tuning, Qwen logn), what it multiplies and the config key behind each number, for the engine
("hf" or "vllm") that runs it. :func:`rope_attention_factor` is the factor on cos and sin exactly as
transformers computes it. docs/schedules.md lists what each engine multiplies and the known pitfalls.

**Soft caps** are a nonlinear logit map, not a beta: the observables take it as ``transform=SoftCap(cap)``
(:mod:`phasejax.observables`); :func:`soft_cap_effective_beta` (beta sech^2(beta / cap)) and
:func:`soft_cap_phase` give the capped head's critical scale (docs/theory.md §j).

Shape contract: the beta(n) schedules take ``n`` of any shape (a Python number or array, entries
>= 1) and return a floating array of the same shape (NumPy float64 on the host; a JAX array in n's dtype for
a JAX n). The deployed
schedule is host-side NumPy float64. Options are keyword-only, validated eagerly (:class:`InputError`
naming the parameter, the value and what is accepted).
"""

from ._config import HF_ROPE_TYPES, ROPE_TYPES, rope_attention_factor, rope_dicts
from ._deployed import ENGINES, Component, DeployedSchedule, LayerType, from_config
from ._scalar import (
    SCHEDULE_NAMES,
    SCHEDULES,
    ScheduleInfo,
    constant,
    critical,
    llama4,
    llama_4_scaling,
    logit_multiplier,
    longrope,
    longrope_attention_factor,
    qwen_logn,
    schedule_beta,
    soft_cap,
    ssmax,
    yarn,
    yarn_attention_factor,
    yarn_dynamic,
    yarn_mscale,
    yarn_per_position,
)
from ._softcap import SOFT_CAP_Y_STAR, SoftCapPhase, soft_cap_effective_beta, soft_cap_phase

__all__ = [
    "ENGINES",
    "HF_ROPE_TYPES",
    "ROPE_TYPES",
    "SCHEDULES",
    "SCHEDULE_NAMES",
    "SOFT_CAP_Y_STAR",
    "Component",
    "DeployedSchedule",
    "LayerType",
    "ScheduleInfo",
    "SoftCapPhase",
    "constant",
    "critical",
    "from_config",
    "llama4",
    "llama_4_scaling",
    "logit_multiplier",
    "longrope",
    "longrope_attention_factor",
    "qwen_logn",
    "rope_attention_factor",
    "rope_dicts",
    "schedule_beta",
    "soft_cap",
    "soft_cap_effective_beta",
    "soft_cap_phase",
    "ssmax",
    "yarn",
    "yarn_attention_factor",
    "yarn_dynamic",
    "yarn_mscale",
    "yarn_per_position",
]
