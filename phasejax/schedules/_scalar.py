"""Practice schedules as beta(n) = beta0 g(n): the scalar temperature each one puts on the logit.

See the package docstring (:mod:`phasejax.schedules`) for the convention. Every function takes ``n`` of
any shape (a Python number or array, entries >= 1) and returns a floating array of the same shape: NumPy
float64 for a Python or NumPy n, a JAX array in n's dtype for a JAX n (jittable). Options are keyword-only
Python numbers, validated eagerly.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np

from .._checks import InputError, check_real
from .._numerics.arrays import namespace

__all__ = [
    "SCHEDULES",
    "SCHEDULE_NAMES",
    "ScheduleInfo",
    "constant",
    "critical",
    "llama4",
    "llama_4_scaling",
    "logit_multiplier",
    "longrope",
    "longrope_attention_factor",
    "qwen_logn",
    "schedule_beta",
    "soft_cap",
    "ssmax",
    "yarn",
    "yarn_attention_factor",
    "yarn_dynamic",
    "yarn_mscale",
    "yarn_per_position",
]


class ScheduleInfo(NamedTuple):
    """What a schedule scales and where the convention comes from."""

    name: str
    applied_to: str  # "q", "q and k (squared on the logit)", "logit" or "-"
    formula: str
    reference: str


_YARN_REF = "huggingface/transformers src/transformers/modeling_rope_utils.py (_compute_yarn_parameters)"

SCHEDULES: dict[str, ScheduleInfo] = {
    "constant": ScheduleInfo("constant", "-", "beta0", "no schedule (the training-time head)"),
    "qwen_logn": ScheduleInfo(
        "qwen_logn", "q", "beta0 max(1, log n / log L)",
        "Qwen/Qwen-7B modeling_qwen.py (remote code): logn_list = [log(i, seq_length) if i > seq_length else 1 "
        "for i in range(1, 32768)]; query *= logn (the table ends at n = 32767)",
    ),
    "yarn": ScheduleInfo(
        "yarn", "q and k (squared on the logit)",
        "beta0 a^2; static (yarn_factor = f): a = 0.1 ln f + 1 as the engines; default: a = 0.1 ln s + 1, "
        "s = max(1, n/L), the phasejax per-position variant",
        "static: " + _YARN_REF + "; the default per-position variant is phasejax's own (no engine does it)",
    ),
    "ssmax": ScheduleInfo(
        "ssmax", "logit", "beta0 s log n",
        "Scalable-Softmax (Nakanishi 2025): softmax(s log(n) z), s learnable per head",
    ),
    "llama4": ScheduleInfo(
        "llama4", "q (NoPE layers)", "beta0 (attn_scale log(floor(n/floor_scale) + 1) + 1)",
        "huggingface/transformers src/transformers/models/llama4/modeling_llama4.py: attn_scales = "
        "log(floor((cache_position + 1)/floor_scale) + 1) * attn_scale + 1",
    ),
    "critical": ScheduleInfo(
        "critical", "logit", "lambda n^(2/alpha)", "docs/theory.md §c, §d: the schedule at a fixed point of the window",
    ),
    # --- not drawn on the phase diagram by default (not in SCHEDULE_NAMES) ---
    "yarn_per_position": ScheduleInfo(
        "yarn_per_position", "q and k (squared on the logit)", "beta0 (0.1 ln s + 1)^2, s = max(1, n/L)",
        "phasejax: the factor a query at n would need; no engine computes it per position",
    ),
    "yarn_dynamic": ScheduleInfo(
        "yarn_dynamic", "q and k (squared on the logit)",
        "beta0 (0.1 ln s + 1)^2, s = max(1, S/L), S = the whole sequence length (S = n by default)",
        "jquesnelle/yarn scaled_rope/modeling_llama_yarn.py (LlamaDynamicYaRNScaledRotaryEmbedding, "
        "rope_scaling type 'dynamic-yarn'): one scale from the whole sequence length",
    ),
    "longrope": ScheduleInfo(
        "longrope", "q and k (squared on the logit)",
        "beta0 a^2, a = sqrt(1 + ln s / ln L), s = max_length / L (attention_factor / short, long mscale override)",
        "huggingface/transformers src/transformers/modeling_rope_utils.py (_compute_longrope_parameters); "
        "vllm-project/vllm vllm/model_executor/layers/rotary_embedding/phi3_long_rope_scaled_rope.py",
    ),
    "llama_4_scaling": ScheduleInfo(
        "llama_4_scaling", "q (every layer)", "beta0 (1 + beta ln(1 + floor((n - 1)/L)))",
        "huggingface/transformers src/transformers/models/ministral3/modeling_ministral3.py "
        "(_get_llama_4_attn_scale(cache_position, llama_4_scaling_beta, original_max_position_embeddings))",
    ),
}
#: The schedules drawn on the phase diagram by default (``phasejax schedules``, ``phase.schedule_table``).
#: :func:`schedule_beta` accepts every key of :data:`SCHEDULES`.
SCHEDULE_NAMES = ("constant", "qwen_logn", "yarn", "ssmax", "llama4", "critical")


# --------------------------------------------------------------------------- helpers


def _n(n):
    """n as a floating array, >= 1 (checked when concrete): NumPy float64 on the host, a JAX array in its own
    dtype (default float) for a JAX n (:mod:`phasejax._numerics.arrays`)."""
    if not isinstance(n, jax.core.Tracer):
        arr = np.asarray(n)
        if arr.dtype.kind not in "iuf":
            raise InputError(f"n must be real numbers of keys (>= 1), got dtype {arr.dtype}")
        if arr.size == 0:
            raise InputError("n must not be empty")
        if not np.all(np.isfinite(arr)) or np.any(arr < 1):
            bad = arr[~(np.isfinite(arr) & (arr >= 1))].ravel()[0]
            raise InputError(f"n must be >= 1 (the keys a position can see), got {bad!r}")
    return namespace(n).asarray(n)


def _xp(x):
    return namespace(x).xp


def _beta0(beta0):
    return check_real("beta0", beta0, positive=True)


def _train_length(train_length, *, above_one=False, name="train_length"):
    if train_length is None:
        raise InputError(f"{name} must be given (the context length the head was trained at, >= 1)")
    v = check_real(name, train_length, minimum=1.0)
    if above_one and not v > 1:
        raise InputError(f"{name} must be > 1 (it is the base of a logarithm), got {train_length!r}")
    return v


def yarn_mscale(scale, *, mscale=1.0) -> float:
    """YaRN's magnitude factor get_mscale(s, m) = 0.1 m ln s + 1 for s > 1, and 1 for s <= 1 (a host float).

    The function every engine shares: HF ``get_mscale`` inside ``_compute_yarn_parameters``
    (huggingface/transformers src/transformers/modeling_rope_utils.py), vLLM ``yarn_get_mscale``
    (vllm-project/vllm vllm/model_executor/models/deepseek_v2.py), DeepSeek's ``yarn_get_mscale``.

    >>> round(yarn_mscale(40.0, mscale=0.707), 6)
    1.260804
    >>> yarn_mscale(0.5)
    1.0
    """
    s = check_real("factor", scale, positive=True)
    m = check_real("mscale", mscale)
    return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0


def _static_yarn_factor(factor, attention_factor, mscale, mscale_all_dim) -> float:
    if attention_factor is not None:
        return check_real("attention_factor", attention_factor, positive=True)
    f = check_real("factor", factor, positive=True)
    if mscale and mscale_all_dim:
        return yarn_mscale(f, mscale=mscale) / yarn_mscale(f, mscale=mscale_all_dim)
    return yarn_mscale(f)


# --------------------------------------------------------------------------- schedules


def constant(n, *, beta0):
    """beta(n) = beta0: no schedule (the head as trained). Nothing is scaled.

    The reference curve: at fixed beta, lambda(n) = beta0 / n^{2/alpha} -> 0, so every head with a
    constant temperature ends up subcritical (global averaging, docs/theory.md §b) at long enough context.

    >>> float(constant(1e6, beta0=8.0))
    8.0
    """
    x = _n(n)
    return _xp(x).full_like(x, _beta0(beta0))


def qwen_logn(n, *, beta0, train_length):
    """Qwen-1 "logn attention": beta(n) = beta0 max(1, log n / log L), L = train_length (``seq_length``).

    Applied to **q** only, so the logit gets the factor once. Public model code (Qwen/Qwen-7B
    ``modeling_qwen.py``, remote code): ``logn_list = [math.log(i, self.seq_length) if i > self.seq_length
    else 1 for i in range(1, 32768)]`` and, at inference, ``query = query * logn_tensor[:, seq_start:seq_end]``:
    the query at 1-based position i (it sees n = i keys) is multiplied by log_L(i) for i > L. The real
    table ends at i = 32767; this function continues the formula beyond (the model code cannot run there).
    vLLM's ``qwen.py`` does not implement logn at all (docs/schedules.md, pitfalls). (docs/theory.md §h.)

    >>> round(float(qwen_logn(4096**2, beta0=1.0, train_length=4096)), 6)
    2.0
    """
    x = _n(n)
    b0 = _beta0(beta0)
    L = _train_length(train_length, above_one=True)
    return b0 * _xp(x).maximum(1.0, _xp(x).log(x) / math.log(L))


def yarn_attention_factor(n, *, train_length, factor=None, attention_factor=None, mscale=None,
                          mscale_all_dim=None):
    """The factor a that YaRN puts on cos and sin (so a^2 on the logit), at each n.

    Static YaRN (``factor`` f given, as every engine runs it; the same a at every n, also n < L):

    - an explicit ``attention_factor`` wins;
    - else, with ``mscale`` and ``mscale_all_dim`` both set (truthy): a = get_mscale(f, mscale) /
      get_mscale(f, mscale_all_dim);
    - else a = get_mscale(f) = 0.1 ln f + 1 (:func:`yarn_mscale`).

    (huggingface/transformers src/transformers/modeling_rope_utils.py, ``_compute_yarn_parameters``.)
    The MLA softmax factor get_mscale(f, mscale_all_dim)^2 of DeepSeek-style models is separate: see
    :func:`phasejax.schedules.from_config`.

    Without ``factor`` (the default), a = 0.1 ln s + 1 with s = max(1, n/L): the phasejax per-position
    variant (the factor a query at n would need), which no engine computes.

    >>> round(float(yarn_attention_factor(100.0, train_length=4096, factor=40.0,
    ...                                   mscale=0.707, mscale_all_dim=0.707)), 6)
    1.0
    """
    x = _n(n)
    if factor is not None or attention_factor is not None:
        if factor is None and attention_factor is not None:
            a = check_real("attention_factor", attention_factor, positive=True)
        else:
            a = _static_yarn_factor(factor, attention_factor, mscale, mscale_all_dim)
        return _xp(x).full_like(x, a)
    s = _xp(x).maximum(x / _train_length(train_length), 1.0)
    return 0.1 * _xp(s).log(s) + 1.0


def yarn(n, *, beta0, train_length, factor=None, attention_factor=None, mscale=None, mscale_all_dim=None):
    """YaRN: beta(n) = beta0 a^2, a from :func:`yarn_attention_factor`.

    The factor a multiplies **both cos and sin** of the rotary embedding (HF's rotary module multiplies
    cos and sin by ``attention_scaling``; ``apply_rotary_pos_emb`` rotates q *and* k with them), so it
    multiplies q and k and the logit gets it **squared**: 1/t = (0.1 ln f + 1)^2 in the YaRN paper
    (Peng et al. 2023). With ``factor`` it is the static YaRN of a config (exact for plain configs); by
    default it is the phasejax per-position variant s = max(1, n/L) (also :func:`yarn_per_position`).
    Partial rotary and MLA (only part of q.k is rotated): :func:`phasejax.schedules.from_config`.
    (docs/theory.md §h.)

    >>> round(float(yarn(4096 * math.e, beta0=1.0, train_length=4096)), 6)  # (1.1)^2, per position
    1.21
    >>> round(float(yarn(10.0, beta0=1.0, train_length=4096, factor=4.0)), 5)  # static: also at n < L
    1.29648
    """
    b0 = _beta0(beta0)
    a = yarn_attention_factor(n, train_length=train_length, factor=factor, attention_factor=attention_factor,
                              mscale=mscale, mscale_all_dim=mscale_all_dim)
    return b0 * a**2


def yarn_per_position(n, *, beta0, train_length):
    """The phasejax per-position YaRN: beta(n) = beta0 (0.1 ln s + 1)^2, s = max(1, n/L).

    Not an engine's schedule: the factor that a query seeing n keys would need if YaRN were recomputed
    at every position. It equals :func:`yarn_dynamic` for the last position of a sequence of n tokens.

    >>> round(float(yarn_per_position(4096 * math.e, beta0=1.0, train_length=4096)), 6)
    1.21
    """
    return yarn(n, beta0=beta0, train_length=train_length)


def yarn_dynamic(n, *, beta0, train_length, seq_len=None):
    """Dynamic YaRN as the reference implementation runs it: one scale from the whole sequence length S.

    beta = beta0 (0.1 ln s + 1)^2 with s = max(1, S/L), the same at every position of the sequence
    (jquesnelle/yarn ``scaled_rope/modeling_llama_yarn.py``, ``LlamaDynamicYaRNScaledRotaryEmbedding``,
    rope_scaling type ``"dynamic-yarn"``: when ``seq_len > max_seq_len_cached`` it recomputes
    ``self.yarn(seq_len / self.max_position_embeddings)`` and multiplies cos and sin by get_mscale of that
    scale; L = ``max_position_embeddings`` there, ``original_max_position_embeddings`` in the stand-alone
    ``scaled_rope/LlamaDynamicYaRNScaledRotaryEmbedding.py``). ``seq_len`` = S defaults to n (the last
    query of an S = n token pass, i.e. decoding at n keys); given, it must be >= every n. With a KV cache,
    keys cached in an earlier pass keep the factor of that pass. Neither transformers nor vLLM
    implements this rope type.

    >>> [round(float(b), 6) for b in yarn_dynamic([1.0, 20.0], beta0=1.0, train_length=10, seq_len=10 * math.e)]
    [1.21, 1.21]
    """
    x = _n(n)
    b0 = _beta0(beta0)
    L = _train_length(train_length)
    if seq_len is None:
        S = x
    else:
        S = check_real("seq_len", seq_len, minimum=1.0)
        if not isinstance(x, jax.core.Tracer) and np.any(np.asarray(x) > S):
            raise InputError(f"seq_len must be >= every n (the sequence contains the positions), got {seq_len!r}")
        S = _xp(x).full_like(x, S)
    s = _xp(x).maximum(S / L, 1.0)
    return b0 * (0.1 * _xp(x).log(s) + 1.0) ** 2


def longrope_attention_factor(*, max_length, train_length, attention_factor=None) -> float:
    """LongRoPE (Phi-3 "su") factor on cos and sin: sqrt(1 + ln s / ln L) for s = max_length / L > 1, else 1.

    An explicit ``attention_factor`` wins (huggingface/transformers src/transformers/modeling_rope_utils.py,
    ``_compute_longrope_parameters``: L = ``original_max_position_embeddings``, max_length =
    ``max_position_embeddings`` unless ``factor`` is given). A host float.

    >>> round(longrope_attention_factor(max_length=131072, train_length=4096), 6)
    1.190238
    """
    if attention_factor is not None:
        return check_real("attention_factor", attention_factor, positive=True)
    L = _train_length(train_length, above_one=True)
    s = check_real("max_length", max_length, positive=True) / L
    return 1.0 if s <= 1 else math.sqrt(1 + math.log(s) / math.log(L))


def longrope(n, *, beta0, train_length, max_length, attention_factor=None):
    """LongRoPE / Phi-3 "su": beta(n) = beta0 a^2, a = :func:`longrope_attention_factor` (constant in n).

    The factor multiplies cos and sin (q and k), so the logit gets a^2. The long/short *frequency* factors
    switch at ``original_max_position_embeddings`` and leave the temperature alone; vLLM's optional
    ``short_mscale``/``long_mscale`` overrides are read by :func:`phasejax.schedules.from_config`.

    >>> round(float(longrope(10.0, beta0=1.0, train_length=4096, max_length=131072)), 6)
    1.416667
    """
    x = _n(n)
    a = longrope_attention_factor(max_length=max_length, train_length=train_length, attention_factor=attention_factor)
    return _xp(x).full_like(x, _beta0(beta0) * a * a)


def llama_4_scaling(n, *, beta0, beta, original_max_position_embeddings):
    """Mistral's ``llama_4_scaling``: q x (1 + beta ln(1 + floor(pos / L))), pos = n - 1 (0-based), every layer.

    Applied to **q** only (the logit gets it once), after RoPE, on every layer; composes with YaRN
    (Ministral-3: YaRN f = 16 and beta = 0.1, L = 16384). huggingface/transformers
    ``src/transformers/models/ministral3/modeling_ministral3.py``: ``_get_llama_4_attn_scale(cache_position,
    llama_4_scaling_beta, original_max_position_embeddings) = 1 + beta log(1 + floor(positions / L))`` with
    ``cache_position`` 0-based (vLLM ``_get_llama_4_scaling`` in vllm/model_executor/models/deepseek_v2.py
    has the same formula on ``positions``). Note the difference from Llama-4's own tuning
    (:func:`llama4`), which uses floor((pos + 1)/F) = floor(n/F) and NoPE layers only.

    >>> [round(float(b), 6) for b in llama_4_scaling([16384, 16385], beta0=1.0, beta=0.1,
    ...                                                 original_max_position_embeddings=16384)]
    [1.0, 1.069315]
    """
    x = _n(n)
    b0 = _beta0(beta0)
    b = check_real("beta", beta, nonnegative=True)
    L = check_real("original_max_position_embeddings", original_max_position_embeddings, positive=True)
    return b0 * (1.0 + b * _xp(x).log1p(_xp(x).floor((x - 1.0) / L)))


def soft_cap(logits, *, cap):
    """The soft cap cap tanh(x / cap) on the (already scaled) logits: a nonlinear transform, not a temperature.

    Gemma-2 (``attn_logit_softcapping`` = 50; huggingface/transformers
    src/transformers/models/gemma2/modeling_gemma2.py: ``attn_weights = tanh(attn_weights / softcap) *
    softcap`` after the scaling) and Grok-1 (30; vllm-project/vllm vllm/model_executor/models/grok1.py,
    ``logits_soft_cap``). Near 0 it is the identity (slope 1); it bounds every logit to (-cap, cap), so no
    scalar beta describes it.

    >>> import jax.numpy as jnp
    >>> [round(float(v), 4) for v in soft_cap(jnp.asarray([0.5, 50.0, 500.0]), cap=50.0)]
    [0.5, 38.0797, 50.0]
    """
    c = check_real("cap", cap, positive=True)
    x = namespace(logits).asarray(logits)
    return c * _xp(x).tanh(x / c)


def ssmax(n, *, beta0, s=None, train_length=None):
    """Scalable-Softmax: beta(n) = beta0 s log n, n = keys the position can see.

    Multiplies the **logit** (Nakanishi 2025: softmax(s log(n) z) with a learnable s per head).
    ``s`` default: 1/log(train_length), so that beta(L) = beta0 (the head keeps its training-time
    temperature at its training length; give ``s`` to use a learned value instead).

    >>> round(float(ssmax(4096**2, beta0=1.0, train_length=4096)), 6)
    2.0
    """
    x = _n(n)
    b0 = _beta0(beta0)
    if s is None:
        if train_length is None:
            raise InputError("ssmax needs s (> 0) or train_length (> 1, giving s = 1/log(train_length))")
        s = 1.0 / math.log(_train_length(train_length, above_one=True))
    else:
        s = check_real("s", s, positive=True)
    return b0 * s * _xp(x).log(x)


def llama4(n, *, beta0, floor_scale=8192.0, attn_scale=0.1):
    """Llama-4 attention temperature tuning: beta(n) = beta0 (attn_scale log(floor(n/F) + 1) + 1).

    Applied to **q** only, on the NoPE (no rotary) layers. Public model code (huggingface/transformers
    ``src/transformers/models/llama4/modeling_llama4.py``): ``attn_scales = torch.log(torch.floor(
    (cache_position.float() + 1.0) / self.floor_scale) + 1.0) * self.attn_scale + 1.0``; ``query_states =
    query_states * attn_scales``, with config defaults floor_scale = 8192, attn_scale = 0.1.
    cache_position + 1 = n. floor_scale plays the role of the training length (the factor is 1 for
    n < floor_scale).

    >>> round(float(llama4(8192 * 2, beta0=1.0)), 6) == round(0.1 * math.log(3.0) + 1.0, 6)
    True
    """
    x = _n(n)
    b0 = _beta0(beta0)
    fs = check_real("floor_scale", floor_scale, positive=True)
    a = check_real("attn_scale", attn_scale, nonnegative=True)
    return b0 * (_xp(x).log1p(_xp(x).floor(x / fs)) * a + 1.0)


def critical(n, *, lam, alpha):
    """The critical schedule beta(n) = lam n^{2/alpha} (docs/theory.md §c, §d): it keeps lambda fixed.

    Multiplies the **logit**. With lam = lambda* (``phasejax.theory.lambda_star``) it follows
    the Poisson-limit susceptibility peak; any fixed lam stays at one point of the phase diagram
    (one value of E[max weight]), which no practice schedule does for every alpha.

    >>> float(critical(100.0, lam=0.5, alpha=2.0))
    50.0
    """
    x = _n(n)
    lam = check_real("lam", lam, positive=True)
    alpha = check_real("alpha", alpha, positive=True)
    return lam * x ** (2.0 / alpha)


# --------------------------------------------------------------------------- dispatch


def schedule_beta(
    name: str,
    n,
    *,
    beta0: float,
    train_length: float,
    alpha: float | None = None,
    critical_lambda: float | None = None,
    ssmax_s: float | None = None,
    llama4_floor_scale: float = 8192.0,
    llama4_attn_scale: float = 0.1,
    yarn_factor: float | None = None,
    yarn_attention_factor: float | None = None,
    yarn_mscale: float | None = None,
    yarn_mscale_all_dim: float | None = None,
    yarn_seq_len: float | None = None,
    longrope_max_length: float | None = None,
    longrope_attention_factor: float | None = None,
    llama_4_scaling_beta: float = 0.1,
):
    """beta(n) of the schedule called ``name`` (a key of :data:`SCHEDULES`), every parameter explicit.

    ``critical`` needs ``alpha`` and ``critical_lambda``; ``longrope`` needs ``longrope_max_length``;
    ``llama_4_scaling`` uses ``train_length`` as original_max_position_embeddings (the other schedules
    ignore the options they do not use).

    >>> [round(float(schedule_beta(s, 4096, beta0=2.0, train_length=4096)), 6)
    ...  for s in ("constant", "qwen_logn", "yarn", "ssmax", "llama4")]
    [2.0, 2.0, 2.0, 2.0, 2.0]
    """
    if name == "constant":
        return constant(n, beta0=beta0)
    if name == "qwen_logn":
        return qwen_logn(n, beta0=beta0, train_length=train_length)
    if name == "yarn":
        return yarn(n, beta0=beta0, train_length=train_length, factor=yarn_factor,
                    attention_factor=yarn_attention_factor, mscale=yarn_mscale, mscale_all_dim=yarn_mscale_all_dim)
    if name == "yarn_per_position":
        return yarn_per_position(n, beta0=beta0, train_length=train_length)
    if name == "yarn_dynamic":
        return yarn_dynamic(n, beta0=beta0, train_length=train_length, seq_len=yarn_seq_len)
    if name == "longrope":
        if longrope_max_length is None:
            raise InputError("schedule 'longrope' needs longrope_max_length (max_position_embeddings, > 0)")
        return longrope(n, beta0=beta0, train_length=train_length, max_length=longrope_max_length,
                        attention_factor=longrope_attention_factor)
    if name == "llama_4_scaling":
        return llama_4_scaling(n, beta0=beta0, beta=llama_4_scaling_beta,
                               original_max_position_embeddings=train_length)
    if name == "ssmax":
        return ssmax(n, beta0=beta0, s=ssmax_s, train_length=train_length)
    if name == "llama4":
        return llama4(n, beta0=beta0, floor_scale=llama4_floor_scale, attn_scale=llama4_attn_scale)
    if name == "critical":
        if alpha is None or critical_lambda is None:
            raise InputError("schedule 'critical' needs alpha (> 0) and critical_lambda (> 0)")
        return critical(n, lam=critical_lambda, alpha=alpha)
    raise InputError(f"schedule must be one of {', '.join(map(repr, SCHEDULES))}; got {name!r}")


def logit_multiplier(name: str, n, **params):
    """beta(n) / beta0: the factor the schedule puts on the logit (squared for q-and-k factors).

    >>> round(float(logit_multiplier("yarn", 4096 * math.e, beta0=1.0, train_length=4096)), 6)
    1.21
    """
    beta0 = params.get("beta0")
    return schedule_beta(name, n, **params) / _beta0(beta0)
