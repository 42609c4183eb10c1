"""Schedules against the public model code's convention, the phase diagram, the tail predictor, the CLI.

Each schedule test writes the model code's snippet out independently in NumPy (scale q and/or k,
or the logit, then take the dot product) and compares the logit multiplier with beta(n)/beta0.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special as sps
from scipy import stats

from phasejax import estimate, phase, schedules, theory
from phasejax._checks import InputError
from phasejax.laws import GaussianScores, UniformSphere

L = 4096
POS = np.array([0, 100, 4095, 4096, 5000, 8191, 8192, 20000, 100_000, 1_000_000])  # 0-based positions
N = POS + 1  # keys each position sees


@pytest.fixture(scope="module")
def qk():
    rng = np.random.default_rng(0)
    return rng.normal(size=(len(POS), 64)), rng.normal(size=(len(POS), 64))


def _mult(name, n, **kw):
    with jax.enable_x64(True):
        return np.asarray(schedules.logit_multiplier(name, np.asarray(n, np.float64), **kw), np.float64)


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


def _rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


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


def _hf_get_mscale(scale, mscale=1.0):
    # huggingface/transformers src/transformers/modeling_rope_utils.py (_compute_yarn_parameters.get_mscale)
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


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


# --------------------------------------------------------------------------- predictor


def test_predictor_reduces_to_power_law_exactly():
    # F(u) = C u^h exactly (h = 1, any C): predictor = lambda*(alpha = 2, C) n
    for c in (0.5, 0.7):
        law = theory.TailFromCDF(lambda u, c=c: math.log(c) + math.log(u), lambda u, c=c: math.log(c), 1.0,
                                u_max=1.0 / c)
        ls = theory.kappa_star_over_h(1.0) * c  # lambda* = kappa* C^{1/h}
        for n in (1e3, 1e6, 1e12):
            assert float(theory.predict_beta_peak(n, law)) == pytest.approx(ls * n, rel=1e-9)
    # uniform S^2: F = u/2 exactly, lambda*(3) = 0.3814472 (docs/theory.md §c)
    pred = theory.predict_beta_peak(np.array([1e3, 1e9]), UniformSphere(3))
    np.testing.assert_allclose(pred / np.array([1e3, 1e9]), 0.3814472, rtol=1e-6)


def test_predictor_gaussian_hazard_and_rem_limit():
    g = GaussianScores(sigma=0.5)
    for n in (1e2, 1e4, 1e8):
        t = stats.norm.isf(1 / n)
        hz = stats.norm.pdf(t) / stats.norm.sf(t) / 0.5  # independent: SciPy's normal law
        assert float(theory.predict_beta_peak(n, g)) == pytest.approx(hz, rel=1e-8)
    ratios = [float(theory.predict_beta_peak(n, g)) * 0.5 / math.sqrt(2 * math.log(n)) for n in (1e6, 1e30, 1e300)]
    assert ratios[0] < ratios[1] < ratios[2] < 1.0
    assert abs(ratios[2] - 1) < 0.005  # sqrt(2 log n)/sigma asymptotically (slowly: log corrections)


def test_tail_point_beta_law_precision():
    tp = theory.tail_at_quantile(UniformSphere(5), 1e200)  # F = I_{u/2}(2, 2) = 1e-200
    x = tp.u_star / 2
    assert x * x * (3 - 2 * x) == pytest.approx(1e-200, rel=1e-10)
    assert tp.h_local == pytest.approx(2.0, rel=1e-6)


def test_kappa_star_over_h_limits():
    assert theory.kappa_star_over_h(math.inf) == 1.0
    assert theory.kappa_star_over_h(1.0) == pytest.approx(0.3814472 / 0.5, rel=1e-6)


def test_score_tail_fit_sphere_cosines():
    rng = np.random.default_rng(1)
    cos = 1 - 2 * rng.uniform(size=40000)  # d = 3: u = 1 - t uniform on (0, 2), h = 1
    fit = estimate.fit_score_tail(cos, k=400)
    assert abs(fit.h - 1) < 4 * fit.h_se + 0.05
    # one row, endpoint unknown: the distance to the endpoint is extrapolated (noisy: factor ~1.5)
    beta, _ = estimate.predict_beta_peak_from_scores(cos)
    assert 0.5 < beta / (0.3814472 * cos.size) < 2.0
    # endpoint known (cosines <= 1): Hill on the gaps, relative error ~ 1/sqrt(k) in h
    beta, fit = estimate.predict_beta_peak_from_scores(cos, endpoint=1.0, k=2000)
    assert abs(fit.h - 1) < 4 * fit.h_se
    assert beta / (0.3814472 * cos.size) == pytest.approx(1.0, rel=0.15)


def test_predictor_vs_measured_peak_small():
    # uniform S^2, n = 300, 1024 contexts: the measured chi peak (finite n; O(1/n) from lambda* n)
    # agrees with the predictor within 3 se + 3 %.
    n = 300
    law = UniformSphere(3)
    pk = phase.measured_peak(law, n, key=jax.random.key(3), seeds=1024)
    pred = float(theory.predict_beta_peak(n, law))
    assert pk.converged and not pk.on_edge
    assert abs(float(pk.beta) - pred) < 3 * float(pk.beta_se) + 0.03 * pred


@pytest.mark.slow
@pytest.mark.parametrize("d, n, tol", [(16, 10000, 0.06), (64, 10000, 0.06)])
def test_predictor_vs_measured_peak_high_d(d, n, tol):
    law = UniformSphere(d)
    pk = phase.measured_peak(law, n, key=jax.random.key(4), seeds=256)
    pred = float(theory.predict_beta_peak(n, law))
    assert abs(float(pk.beta) - pred) < 3 * float(pk.beta_se) + tol * pred


# --------------------------------------------------------------------------- diagram and table


def test_window_and_table_d3():
    c = phase.law_constants(d=3)
    w = theory.critical_window(c.alpha, c.C)
    assert w.lambda_star == pytest.approx(0.3814472, rel=1e-6)
    assert 0.15 < w.lo < 0.3 and 3.5 < w.hi < 6.5 and w.E_lo < w.E_star < w.E_hi
    tab = phase.schedule_table(c, [1e3, 1e5], beta0=w.lambda_star * L, train_length=L)
    i = tab["schedule"].index("critical")
    np.testing.assert_allclose(tab["lambda_ratio"][i], 1.0, rtol=1e-12)
    np.testing.assert_allclose(tab["E_max_weight"][i], w.E_star, rtol=1e-6)
    j = tab["schedule"].index("constant")
    np.testing.assert_allclose(tab["lambda_ratio"][j], [L / 1e3, L / 1e5], rtol=1e-12)
    # d = 3, lambda = 1 (rho = 1/2): docs/theory.md §c anchors
    s = theory.poisson_summary(2.0, 0.5, 1.0)
    assert float(s["E_max_weight"]) == pytest.approx(0.729488, abs=2e-6)
    assert float(1 / s["inv_sum_w2"]) == pytest.approx(0.635256, abs=2e-6)
    assert float(np.log(s["effective_keys"])) == pytest.approx(0.668783, abs=2e-6)
    nl, direction = phase.leaves_window_at(c, "constant", n_min=1e3, n_max=1e7, beta0=w.lambda_star * L,
                                           train_length=L)
    assert direction == "below" and nl == pytest.approx(L / w.lo, rel=1e-5)  # lambda* L / n = lo lambda*
    pd = phase.phase_diagram(c, [1e3, 1e4, 1e5], [10.0, 1e3, 1e5])
    assert pd.E_max_weight.shape == (3, 3)
    assert np.all(np.diff(pd.E_max_weight, axis=0) > 0) and np.all(np.diff(pd.E_max_weight, axis=1) < 0)


# --------------------------------------------------------------------------- CLI


def test_cli_json_contract(tmp_path, capsys):
    from phasejax.cli import main

    rc = main(["schedules", "--json", "--quiet", "--out", str(tmp_path), "--n-max", "1e5", "--beta0", "sqrt-d"])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    for key in ("schedule", "n", "beta", "lambda_ratio", "E_max_weight", "effective_keys", "leaves_window_at",
                "lambda_star", "window", "beta0"):
        assert key in r
    assert r["n"] == [1000.0, 10000.0, 100000.0]
    assert np.asarray(r["beta"]).shape == (6, 3)
    assert r["beta0"] == pytest.approx(math.sqrt(3))
    assert (tmp_path / "phase_diagram.png").exists() and (tmp_path / "schedules.json").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["schedules", "--n-min", "1e5", "--n-max", "1e3"],
        ["schedules", "--schedules", "constant,logn"],
        ["schedules", "--alpha", "2", "--scores", "x.npy"],
        ["schedules", "--C", "0.3"],
    ],
)
def test_cli_bad_input_exit_2(argv, tmp_path, capsys):
    from phasejax.cli import main

    assert main([*argv, "--out", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err


def test_cli_bad_beta0_exit_2(capsys):
    from phasejax.cli import main

    with pytest.raises(SystemExit) as e:
        main(["schedules", "--beta0", "-1"])
    assert e.value.code == 2
    assert "beta0" in capsys.readouterr().err


def test_ndtri_precision_used_by_gaussian_tail():
    # the Gaussian tail point keeps precision far out (n = 1e300)
    tp = GaussianScores(1.0).tail_point(1e300)
    assert sps.ndtr(-tp.u_star) == pytest.approx(1e-300, rel=1e-8)
