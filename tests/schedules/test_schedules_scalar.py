"""Schedules against the public model code's convention, the phase diagram, the tail predictor, the CLI.

Each schedule test writes the model code's snippet out independently in NumPy (scale q and/or k,
or the logit, then take the dot product) and compares the logit multiplier with beta(n)/beta0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasejax import estimate, phase, schedules
from phasejax._checks import InputError

L = 4096


POS = np.array([0, 100, 4095, 4096, 5000, 8191, 8192, 20000, 100_000, 1_000_000])  # 0-based positions


N = POS + 1  # keys each position sees


def _mult(name, n, **kw):
    with jax.enable_x64(True):
        return np.asarray(schedules.logit_multiplier(name, np.asarray(n, np.float64), **kw), np.float64)


@pytest.fixture(scope="module")
def qk():
    rng = np.random.default_rng(0)
    return rng.normal(size=(len(POS), 64)), rng.normal(size=(len(POS), 64))


def _rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def _hf_get_mscale(scale, mscale=1.0):
    # huggingface/transformers src/transformers/modeling_rope_utils.py (_compute_yarn_parameters.get_mscale)
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def test_constant(qk):
    np.testing.assert_allclose(_mult("constant", N, beta0=2.5, train_length=L), 1.0)


def test_qwen_logn_matches_model_code(qk):
    q, k = qk
    # Qwen-1 modeling_qwen.py: logn_list = [math.log(i, seq_length) if i > seq_length else 1 ...];
    # query = query * logn_tensor[:, seq_start:seq_end] (position p uses logn_list[p], i.e. i = p + 1)
    logn = np.array([math.log(i, L) if i > L else 1 for i in (POS + 1)])
    raw = np.sum(q * k, axis=1)
    scaled = np.sum((q * logn[:, None]) * k, axis=1)
    np.testing.assert_allclose(_mult("qwen_logn", N, beta0=1.3, train_length=L), scaled / raw, rtol=1e-12)


def test_yarn_matches_model_code(qk):
    q, k = qk
    dim = q.shape[1]
    # The default "yarn" is the phasejax per-position variant: the factor get_mscale(s) = 0.1 log(s) + 1 with
    # s = max(1, n/L) that HF's _compute_yarn_parameters would return for factor = s (no engine recomputes it
    # per position); the rotary embedding multiplies cos and sin by it and apply_rotary_pos_emb rotates q and k.
    factor = np.maximum(N / L, 1.0)
    mscale = np.where(factor <= 1, 1.0, 0.1 * np.log(factor) + 1.0)
    inv_freq = 1.0 / 10000 ** (np.arange(0, dim, 2) / dim)
    pos_k = POS.copy()  # the key at the same position (relative offset 0): the rotation cancels
    ang_q = POS[:, None] * inv_freq[None, :]
    ang_k = pos_k[:, None] * inv_freq[None, :]
    cos_q, sin_q = np.cos(np.concatenate([ang_q, ang_q], 1)), np.sin(np.concatenate([ang_q, ang_q], 1))
    cos_k, sin_k = np.cos(np.concatenate([ang_k, ang_k], 1)), np.sin(np.concatenate([ang_k, ang_k], 1))

    def rope(x, cos, sin, m):
        return x * (cos * m[:, None]) + _rotate_half(x) * (sin * m[:, None])

    raw = np.sum(rope(q, cos_q, sin_q, np.ones_like(mscale)) * rope(k, cos_k, sin_k, np.ones_like(mscale)), 1)
    scaled = np.sum(rope(q, cos_q, sin_q, mscale) * rope(k, cos_k, sin_k, mscale), 1)
    got = _mult("yarn", N, beta0=0.7, train_length=L)
    np.testing.assert_allclose(got, scaled / raw, rtol=1e-10)
    assert got[-1] == pytest.approx((0.1 * math.log(N[-1] / L) + 1) ** 2)  # squared, not once


def test_ssmax_matches_paper(qk):
    q, k = qk
    s = 0.43
    z = np.sum(q * k, axis=1)
    scaled = s * np.log(N) * z  # SSMax: softmax(s log(n) z), n = the input vector's size
    np.testing.assert_allclose(_mult("ssmax", N, beta0=1.0, train_length=L, ssmax_s=s), scaled / z, rtol=1e-12)
    default = _mult("ssmax", N, beta0=1.0, train_length=L)
    np.testing.assert_allclose(default, np.log(N) / math.log(L), rtol=1e-12)


def test_llama4_matches_model_code(qk):
    q, k = qk
    floor_scale, attn_scale = 8192, 0.1
    # HF modeling_llama4.py: attn_scales = log1p(floor((cache_position + 1) / floor_scale)) * attn_scale + 1;
    # query_states = query_states * attn_scales
    scales = np.log1p(np.floor((POS.astype(np.float64) + 1.0) / floor_scale)) * attn_scale + 1.0
    raw = np.sum(q * k, axis=1)
    scaled = np.sum((q * scales[:, None]) * k, axis=1)
    np.testing.assert_allclose(_mult("llama4", N, beta0=2.0, train_length=L), scaled / raw, rtol=1e-12)
    got = _mult("llama4", N, beta0=2.0, train_length=L, llama4_floor_scale=100.0, llama4_attn_scale=0.3)
    np.testing.assert_allclose(got, np.log1p(np.floor(N / 100.0)) * 0.3 + 1.0, rtol=1e-12)


def test_critical_schedule():
    with jax.enable_x64(True):
        got = np.asarray(schedules.critical(np.asarray(N, np.float64), lam=0.38, alpha=3.0))
    np.testing.assert_allclose(got, 0.38 * N.astype(np.float64) ** (2 / 3), rtol=1e-12)


def test_static_yarn_as_the_engines(qk):
    q, k = qk
    dim = q.shape[1]
    # HF _compute_yarn_parameters: attention_factor wins; else mscale/mscale_all_dim ratio when both set;
    # else get_mscale(factor). The same factor at every n (also n < L); cos and sin of q and k scaled.
    cases = [(dict(factor=4.0), _hf_get_mscale(4.0)),
             (dict(factor=40.0, mscale=0.707, mscale_all_dim=0.707), 1.0),
             (dict(factor=40.0, mscale=1.0, mscale_all_dim=0.707), _hf_get_mscale(40, 1.0) / _hf_get_mscale(40, 0.707)),
             (dict(factor=16.0, mscale=0.0, mscale_all_dim=1.0), _hf_get_mscale(16.0)),  # 0 is falsy in HF
             (dict(factor=16.0, attention_factor=1.0, mscale=2.0, mscale_all_dim=1.0), 1.0)]
    inv_freq = 1.0 / 10000 ** (np.arange(0, dim, 2) / dim)
    for kw, a in cases:
        ang = POS[:, None] * inv_freq[None, :]
        cos, sin = np.cos(np.concatenate([ang, ang], 1)), np.sin(np.concatenate([ang, ang], 1))
        raw = np.sum((q * cos + _rotate_half(q) * sin) * (k * cos + _rotate_half(k) * sin), 1)
        scaled = np.sum((q * cos * a + _rotate_half(q) * sin * a) * (k * cos * a + _rotate_half(k) * sin * a), 1)
        params = {f"yarn_{key}" if key != "factor" else "yarn_factor": v for key, v in kw.items()}
        got = _mult("yarn", N, beta0=0.7, train_length=L, **params)
        np.testing.assert_allclose(got, scaled / raw, rtol=1e-10)


def test_yarn_dynamic_reference_and_per_position():
    # jquesnelle/yarn scaled_rope/modeling_llama_yarn.py: one scale seq_len / max_position_embeddings for the whole
    # sequence; mscale = get_mscale(scale) on cos and sin.
    S = 10 * L
    got = _mult("yarn_dynamic", N[N <= S], beta0=1.0, train_length=L, yarn_seq_len=S)
    np.testing.assert_allclose(got, _hf_get_mscale(10.0) ** 2, rtol=1e-12)
    # S = n (the default): the factor at the last query of an n-token pass = the per-position variant
    np.testing.assert_allclose(_mult("yarn_dynamic", N, beta0=1.0, train_length=L),
                               _mult("yarn_per_position", N, beta0=1.0, train_length=L), rtol=1e-14)
    np.testing.assert_allclose(_mult("yarn_per_position", N, beta0=1.0, train_length=L),
                               _mult("yarn", N, beta0=1.0, train_length=L), rtol=1e-14)


def test_longrope_matches_model_code():
    # HF _compute_longrope_parameters: sqrt(1 + log(factor) / log(original_max_position_embeddings)) on cos and
    # sin, factor = max_position_embeddings / original (Phi-3-mini-128k: 131072 / 4096)
    a = math.sqrt(1 + math.log(131072 / 4096) / math.log(4096))
    got = _mult("longrope", N, beta0=1.3, train_length=4096, longrope_max_length=131072)
    np.testing.assert_allclose(got, a * a, rtol=1e-12)
    np.testing.assert_allclose(_mult("longrope", N, beta0=1.0, train_length=4096, longrope_max_length=131072,
                                     longrope_attention_factor=1.1), 1.21, rtol=1e-12)


def test_llama_4_scaling_matches_ministral3(qk):
    q, k = qk
    # HF models/ministral3/modeling_ministral3.py: query *= 1 + beta * log(1 + floor(cache_position / original))
    scales = 1 + 0.1 * np.log(1 + np.floor(POS.astype(np.float64) / 4096))
    raw = np.sum(q * k, axis=1)
    scaled = np.sum((q * scales[:, None]) * k, axis=1)
    np.testing.assert_allclose(_mult("llama_4_scaling", N, beta0=2.0, train_length=4096), scaled / raw, rtol=1e-12)


def test_soft_cap_and_registry():
    with jax.enable_x64(True):
        x = np.array([-200.0, -3.0, 0.0, 7.0, 1e3])
        np.testing.assert_allclose(np.asarray(schedules.soft_cap(x, cap=30.0)), 30 * np.tanh(x / 30), rtol=1e-15)
    assert schedules.SCHEDULE_NAMES == ("constant", "qwen_logn", "yarn", "ssmax", "llama4", "critical")
    assert set(schedules.SCHEDULE_NAMES) < set(schedules.SCHEDULES)
    assert "phasejax" in schedules.SCHEDULES["yarn_per_position"].reference
    assert "jquesnelle/yarn" in schedules.SCHEDULES["yarn_dynamic"].reference
    assert schedules.yarn_mscale(40.0, mscale=0.707) == pytest.approx(0.1 * 0.707 * math.log(40) + 1, rel=1e-15)


def test_schedules_dtype_follows_n(dtype):
    """Host n: NumPy float64 whatever JAX's mode; a JAX n: its own dtype (and jittable)."""
    n = np.array([[1, 10], [1e5, 1e6]])
    b = schedules.qwen_logn(n, beta0=1.0, train_length=L)
    assert b.shape == (2, 2) and isinstance(b, np.ndarray) and b.dtype == np.float64
    bj = jax.jit(lambda x: schedules.qwen_logn(x, beta0=1.0, train_length=L))(jnp.asarray(n, dtype))
    assert bj.dtype == dtype
    np.testing.assert_allclose(np.asarray(bj), b, rtol=1e-6)


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: schedules.qwen_logn(0, beta0=1.0, train_length=L), "n"),
        (lambda: schedules.qwen_logn(10, beta0=1.0, train_length=1), "train_length"),
        (lambda: schedules.yarn(10, beta0=-1.0, train_length=L), "beta0"),
        (lambda: schedules.ssmax(10, beta0=1.0, s=0.0), "s"),
        (lambda: schedules.llama4(10, beta0=1.0, attn_scale=-0.1), "attn_scale"),
        (lambda: schedules.critical(10, lam=1.0, alpha=0.0), "alpha"),
        (lambda: schedules.yarn(10, beta0=1.0, train_length=L, factor=-4.0), "factor"),
        (lambda: schedules.yarn(10, beta0=1.0, train_length=L, factor=4.0, attention_factor=0.0), "attention_factor"),
        (lambda: schedules.yarn_dynamic([10, 100], beta0=1.0, train_length=L, seq_len=50), "seq_len"),
        (lambda: schedules.longrope(10, beta0=1.0, train_length=L, max_length=-1), "max_length"),
        (lambda: schedules.schedule_beta("longrope", 10, beta0=1.0, train_length=L), "longrope"),
        (lambda: schedules.llama_4_scaling(10, beta0=1.0, beta=-0.1, original_max_position_embeddings=L), "beta"),
        (lambda: schedules.soft_cap(1.0, cap=0.0), "cap"),
        (lambda: schedules.schedule_beta("logn", 10, beta0=1.0, train_length=L), "schedule"),
        (lambda: phase.law_constants(), "law_constants"),
        (lambda: estimate.fit_score_tail(np.ones(10)), "scores"),
    ],
)
def test_bad_input_names_parameter(call, word):
    with pytest.raises(InputError) as e:
        call()
    msg = str(e.value)
    assert word in msg
    assert any(w in msg for w in ("must", "give", "needs"))


def test_schedule_name_error_lists_accepted():
    with pytest.raises(InputError, match="'qwen_logn'.*got 'logn'"):
        schedules.schedule_beta("logn", 10, beta0=1.0, train_length=L)
