"""Temperature schedules used in practice, as beta(n) under one explicit convention.

**The convention (DESIGN).** beta multiplies the cosine t = <q, k> of *unit* vectors: the logit
of a pair is beta t. A raw head with query Q, key K and softmax scale s (1/sqrt(d_head) in
standard attention) has beta = s |Q| |K| for that pair. ``beta0`` is the head's beta at the
context lengths it was trained on (no schedule active): beta0 = s |Q| |K|. For isotropic
queries and keys with unit-variance components |Q| |K| ~ d_head, so a freshly initialised head
has beta0 ~ sqrt(d_head); a trained head's beta0 is whatever its norms make it (measure it with
``phasejax diagnose``). Every schedule below returns beta(n) = beta0 g(n) with g the factor that
the model code puts on the *logit*: a factor c on q alone (or on k alone) multiplies the logit
by c; a factor c on both q and k multiplies it by c^2 (users trip on this one: YaRN).

**n** is the number of keys the query position can see: n = pos + 1 for a causal position pos
(0-based), the convention of Qwen-1 (``logn_list[i - 1] = log_L(i)``), Llama-4
(``cache_position + 1``) and SSMax ("n = the size of the input vector").

=============  =========================================  ===============  =====================
schedule       beta(n) / beta0                            applied to       public model code
=============  =========================================  ===============  =====================
constant       1                                          -                -
qwen_logn      max(1, log n / log L)                      q                Qwen-1 modeling_qwen.py
yarn           (0.1 ln s + 1)^2, s = max(1, n/L)          cos/sin of q, k  HF _compute_yarn_parameters
ssmax          s log n                                    logit            Nakanishi 2025 (SSMax)
llama4         log(floor(n/F) + 1) a + 1                  q (NoPE layers)  HF modeling_llama4.py
critical       lambda n^{2/alpha} / beta0                 logit            THEORY c, d
=============  =========================================  ===============  =====================

(L = ``train_length``; F = ``floor_scale`` = 8192 and a = ``attn_scale`` = 0.1 by default.)

Shape contract: every schedule takes ``n`` of any shape (a Python number or array, entries
>= 1) and returns a floating jax array of the same shape (float32 unless x64 is on).
Parameters are keyword-only Python numbers, validated eagerly (:class:`InputError` naming the
parameter, the value and what is accepted).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import InputError, check_real

__all__ = [
    "SCHEDULE_NAMES",
    "SCHEDULES",
    "ScheduleInfo",
    "constant",
    "critical",
    "llama4",
    "logit_multiplier",
    "qwen_logn",
    "schedule_beta",
    "ssmax",
    "yarn",
    "yarn_attention_factor",
]


class ScheduleInfo(NamedTuple):
    """What a schedule scales and where the convention comes from."""

    name: str
    applied_to: str  # "q", "q and k (squared on the logit)", "logit" or "-"
    formula: str
    reference: str


SCHEDULES: dict[str, ScheduleInfo] = {
    "constant": ScheduleInfo("constant", "-", "beta0", "no schedule (the training-time head)"),
    "qwen_logn": ScheduleInfo(
        "qwen_logn", "q", "beta0 max(1, log n / log L)",
        "Qwen-1 modeling_qwen.py: logn_list = [log(i, seq_length) if i > seq_length else 1]; query *= logn",
    ),
    "yarn": ScheduleInfo(
        "yarn", "q and k (squared on the logit)", "beta0 (0.1 ln s + 1)^2, s = max(1, n/L)",
        "YaRN (Peng et al. 2023) / HF rope_init: attention_factor = 0.1 ln(factor) + 1 multiplies cos and sin",
    ),
    "ssmax": ScheduleInfo(
        "ssmax", "logit", "beta0 s log n",
        "Scalable-Softmax (Nakanishi 2025): softmax(s log(n) z), s learnable per head",
    ),
    "llama4": ScheduleInfo(
        "llama4", "q (NoPE layers)", "beta0 (attn_scale log(floor(n/floor_scale) + 1) + 1)",
        "HF modeling_llama4.py: attn_scales = log1p(floor((cache_position + 1)/floor_scale)) * attn_scale + 1",
    ),
    "critical": ScheduleInfo(
        "critical", "logit", "lambda n^(2/alpha)", "THEORY c, d: the only schedule at a fixed point of the window",
    ),
}
SCHEDULE_NAMES = tuple(SCHEDULES)


# --------------------------------------------------------------------------- helpers


def _n(n):
    """n as a floating jax array, >= 1 (checked when concrete)."""
    if not isinstance(n, jax.core.Tracer):
        arr = np.asarray(n)
        if arr.dtype.kind not in "iuf":
            raise InputError(f"n must be real numbers of keys (>= 1), got dtype {arr.dtype}")
        if arr.size == 0:
            raise InputError("n must not be empty")
        if not np.all(np.isfinite(arr)) or np.any(arr < 1):
            bad = arr[~(np.isfinite(arr) & (arr >= 1))].ravel()[0]
            raise InputError(f"n must be >= 1 (the keys a position can see), got {bad!r}")
    if hasattr(n, "dtype") and jnp.issubdtype(n.dtype, jnp.floating):
        return jnp.asarray(n)
    return jnp.asarray(n, dtype=jnp.result_type(float))


def _beta0(beta0):
    return check_real("beta0", beta0, positive=True)


def _train_length(train_length, *, above_one=False):
    if train_length is None:
        raise InputError("train_length must be given (the context length the head was trained at, >= 1)")
    v = check_real("train_length", train_length, minimum=1.0)
    if above_one and not v > 1:
        raise InputError(f"train_length must be > 1 (it is the base of a logarithm), got {train_length!r}")
    return v


# --------------------------------------------------------------------------- schedules


def constant(n, *, beta0):
    """beta(n) = beta0: no schedule (the head as trained). Nothing is scaled.

    The reference curve: at fixed beta, lambda(n) = beta0 / n^{2/alpha} -> 0, so every head with a
    constant temperature ends up subcritical (global averaging, THEORY b) at long enough context.

    >>> float(constant(1e6, beta0=8.0))
    8.0
    """
    x = _n(n)
    return jnp.full_like(x, _beta0(beta0))


def qwen_logn(n, *, beta0, train_length):
    """Qwen-1 "logn attention": beta(n) = beta0 max(1, log n / log L), L = train_length.

    Applied to **q** only, so the logit gets the factor once. Public model code (Qwen-1
    ``modeling_qwen.py``): ``logn_list = [math.log(i, self.seq_length) if i > self.seq_length
    else 1 for i in range(1, 32768)]`` and, at inference when the key length exceeds
    ``seq_length``, ``query = query * logn_tensor[:, seq_start:seq_end]``: the query at 1-based
    position i (it sees n = i keys) is multiplied by log_L(i) for i > L. (THEORY h, conventions.)

    >>> round(float(qwen_logn(4096**2, beta0=1.0, train_length=4096)), 6)
    2.0
    """
    x = _n(n)
    b0 = _beta0(beta0)
    L = _train_length(train_length, above_one=True)
    return b0 * jnp.maximum(1.0, jnp.log(x) / math.log(L))


def yarn_attention_factor(n, *, train_length, factor=None):
    """YaRN's attention_factor sqrt(1/t) = 0.1 ln(s) + 1 (s > 1; 1 otherwise), s = max(1, n/L).

    With ``factor`` given, s = factor at every n (the static YaRN of a model config, which also
    applies at n < L); by default s = n/L (the dynamic variant, the factor a position needs).
    """
    x = _n(n)
    if factor is not None:
        f = check_real("factor", factor, minimum=1.0)
        s = jnp.full_like(x, f)
    else:
        s = jnp.maximum(x / _train_length(train_length), 1.0)
    return 0.1 * jnp.log(s) + 1.0


def yarn(n, *, beta0, train_length, factor=None):
    """YaRN: beta(n) = beta0 (0.1 ln s + 1)^2, s = max(1, n/L) (or s = ``factor``, static YaRN).

    The attention_factor 0.1 ln(s) + 1 multiplies **both cos and sin** of the rotary embedding
    (HF ``_compute_yarn_parameters`` returns it and ``apply_rotary_pos_emb`` rotates q *and* k
    with the scaled cos/sin), so it multiplies q and k and the logit gets it **squared**:
    1/t = (0.1 ln s + 1)^2 in the YaRN paper (Peng et al. 2023). (THEORY h, conventions.)

    >>> round(float(yarn(4096 * math.e, beta0=1.0, train_length=4096)), 6)  # (1.1)^2
    1.21
    """
    b0 = _beta0(beta0)
    return b0 * yarn_attention_factor(n, train_length=train_length, factor=factor) ** 2


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
    return b0 * s * jnp.log(x)


def llama4(n, *, beta0, floor_scale=8192.0, attn_scale=0.1):
    """Llama-4 attention temperature tuning: beta(n) = beta0 (attn_scale log(floor(n/F) + 1) + 1).

    Applied to **q** only, on the NoPE (no rotary) layers. Public model code (HF
    ``modeling_llama4.py``): ``attn_scales = torch.log1p(torch.floor((cache_position + 1.0) /
    self.floor_scale)) * self.attn_scale + 1.0``; ``query_states = query_states * attn_scales``,
    with config defaults floor_scale = 8192, attn_scale = 0.1. cache_position + 1 = n.
    floor_scale plays the role of the training length (the factor is 1 for n < floor_scale).

    >>> round(float(llama4(8192 * 2, beta0=1.0)), 6) == round(0.1 * math.log(3.0) + 1.0, 6)
    True
    """
    x = _n(n)
    b0 = _beta0(beta0)
    fs = check_real("floor_scale", floor_scale, positive=True)
    a = check_real("attn_scale", attn_scale, nonnegative=True)
    return b0 * (jnp.log1p(jnp.floor(x / fs)) * a + 1.0)


def critical(n, *, lam, alpha):
    """The critical schedule beta(n) = lam n^{2/alpha} (THEORY c, d): it keeps lambda fixed.

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
):
    """beta(n) of the schedule called ``name`` (one of :data:`SCHEDULE_NAMES`), every parameter explicit.

    ``critical`` needs ``alpha`` and ``critical_lambda`` (the other schedules ignore them).

    >>> [round(float(schedule_beta(s, 4096, beta0=2.0, train_length=4096)), 6)
    ...  for s in ("constant", "qwen_logn", "yarn", "ssmax", "llama4")]
    [2.0, 2.0, 2.0, 2.0, 2.0]
    """
    if name == "constant":
        return constant(n, beta0=beta0)
    if name == "qwen_logn":
        return qwen_logn(n, beta0=beta0, train_length=train_length)
    if name == "yarn":
        return yarn(n, beta0=beta0, train_length=train_length, factor=yarn_factor)
    if name == "ssmax":
        return ssmax(n, beta0=beta0, s=ssmax_s, train_length=train_length)
    if name == "llama4":
        return llama4(n, beta0=beta0, floor_scale=llama4_floor_scale, attn_scale=llama4_attn_scale)
    if name == "critical":
        if alpha is None or critical_lambda is None:
            raise InputError("schedule 'critical' needs alpha (> 0) and critical_lambda (> 0)")
        return critical(n, lam=critical_lambda, alpha=alpha)
    raise InputError(f"schedule must be one of {', '.join(map(repr, SCHEDULE_NAMES))}; got {name!r}")


def logit_multiplier(name: str, n, **params):
    """beta(n) / beta0: the factor the schedule puts on the logit (squared for q-and-k factors).

    >>> round(float(logit_multiplier("yarn", 4096 * math.e, beta0=1.0, train_length=4096)), 6)
    1.21
    """
    beta0 = params.get("beta0")
    return schedule_beta(name, n, **params) / _beta0(beta0)
