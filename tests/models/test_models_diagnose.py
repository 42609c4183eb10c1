"""phasejax.models.diagnose_model against the same quantities computed here, independently, from captured Q and K.

The independent side: beta_eff = s|Q_i||K_j| and the nearest key by the largest cosine, the gaps 1 - cos, the
softmax of s Q K^T written out here (not the captured probabilities), lambda = beta / n^{2/alpha}; the tail
estimator itself is the package's (fit_tail), fed with the gaps built here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _models_ref import decoder_config, decoder_tensors, write_checkpoint

import phasejax.models as pm
from phasejax._checks import InputError
from phasejax.estimate import fit_tail
from phasejax.models.diagnose import head_quantities
from phasejax.theory import lambda_star, poisson_expected_max_weight

TEXT = ("Attention heads in a trained transformer put most of their weight on a few keys near the query, and how "
        "that changes with the length of the context decides whether long inputs blur.")
LAYER, HEADS = 1, (0, 2)


@pytest.fixture(scope="module")
def minilm_case(minilm32):
    ids = minilm32.encode(TEXT)
    cap = minilm32.capture(ids)
    diag = pm.diagnose_model(minilm32, ids, layers=[LAYER], heads=HEADS)
    return ids, cap, diag


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    w = np.exp(z)
    return w / w.sum(axis=-1, keepdims=True)


def test_minilm_head_matches_numpy(minilm_case):
    ids, cap, diag = minilm_case
    lc = cap.layers[LAYER]
    L = ids.size
    assert diag.num_tokens == L and diag.context_length == L and not diag.causal
    assert [(h.layer, h.head) for h in diag.heads] == [(LAYER, h) for h in HEADS]
    for rep in diag.heads:
        q = lc.queries[rep.head].astype(np.float64)
        k = lc.keys[rep.head].astype(np.float64)
        s = 1 / math.sqrt(q.shape[1])
        assert lc.scale == pytest.approx(s, rel=1e-12)
        nq, nk = np.linalg.norm(q, axis=1), np.linalg.norm(k, axis=1)
        beta = s * np.outer(nq, nk)
        np.testing.assert_allclose(rep.beta_eff_quantiles, np.quantile(beta, diag.quantile_levels), rtol=1e-12)
        cos = (q / nq[:, None]) @ (k / nk[:, None]).T
        nearest = beta[np.arange(L), np.argmax(cos, axis=1)]
        assert rep.beta == pytest.approx(np.median(nearest), rel=1e-12)
        fit = fit_tail(np.maximum(1 - cos, 0), n=L)
        assert rep.alpha == pytest.approx(fit.alpha, rel=1e-9) and rep.C == pytest.approx(fit.C, rel=1e-9)
        assert rep.gof_ok == fit.gof_ok and rep.k == fit.k
        lam = rep.beta / L ** (2 / rep.alpha)
        ls = float(lambda_star(alpha=rep.alpha, C=rep.C).lambda_star)
        assert rep.lambda_ratio == pytest.approx(lam / ls, rel=1e-9)
        ew = float(poisson_expected_max_weight(rep.alpha / 2, rep.C * lam ** (-rep.alpha / 2)))
        assert rep.E_max_weight == pytest.approx(ew, rel=1e-9)
        # measured: a softmax of s Q K^T written here, in float64, against the float32 captured pass
        p = _softmax(s * q @ k.T)
        mw = p.max(axis=1)
        ent = -np.sum(p * np.log(p), axis=1)
        assert rep.max_weight == pytest.approx(mw.mean(), rel=1e-5, abs=1e-6)
        assert rep.max_weight_se == pytest.approx(mw.std(ddof=1) / math.sqrt(L), rel=1e-3, abs=1e-6)
        assert rep.entropy == pytest.approx(ent.mean(), rel=1e-5, abs=1e-6)
        assert rep.max_weight_z == pytest.approx((rep.E_max_weight - rep.max_weight) / rep.max_weight_se)
        # no schedule in a BERT config: the forecast is the closed form (beta / lambda_lo)^{alpha/2}
        assert diag.schedule_constant and rep.n_exit_schedule == rep.n_exit
        assert rep.n_exit == pytest.approx((rep.beta / rep.lambda_band[0]) ** (rep.alpha / 2), rel=1e-9)


def test_json_and_regime_at(minilm_case):
    _, _, diag = minilm_case
    d = json.loads(diag.to_json())
    assert d["heads"][0]["alpha"] == pytest.approx(diag.heads[0].alpha)
    assert np.shape(d["tables"]["lambda_ratio"]) == (1, len(HEADS))
    r = diag.regime_at([diag.context_length, 100 * diag.context_length], schedule=False)
    np.testing.assert_allclose(r["lambda_ratio"][0, :, 0], diag.field("lambda_ratio")[0], rtol=1e-9)
    h = diag.heads[0]  # lambda scales as n^{-2/alpha} at fixed beta
    assert r["lambda_ratio"][0, 0, 1] == pytest.approx(h.lambda_ratio * 100 ** (-2 / h.alpha), rel=1e-9)
    with pytest.raises(InputError, match="config must be given"):
        diag.regime_at([10.0])
    with pytest.raises(InputError, match=r"heads must be distinct indices in \[0, 12\)"):
        pm.diagnose_model(_Stub(), [1] * 20, heads=[12])


class _Stub:
    """A Model stand-in whose capture is two random heads: enough for the argument checks."""

    causal = False
    path, model_type, dtype = "stub", "bert", "float32"
    config = {"model_type": "bert"}

    def capture(self, ids):
        from phasejax.models import Capture, LayerCapture

        rng = np.random.default_rng(0)
        L = len(ids)
        q, k = rng.normal(size=(12, L, 4)), rng.normal(size=(12, L, 4))
        return Capture(np.asarray(ids), None, None, (LayerCapture(q, k, 0.5, np.full((12, L, L), 1 / L), False, 1.0),))


def test_synthetic_causal_measured_rows_are_a_direct_softmax():
    rng = np.random.default_rng(3)
    L, D, s = 40, 6, 0.7
    q, k = rng.normal(size=(L, D)) * 2, rng.normal(size=(L, D)) * 2
    z = s * q @ k.T + np.where(np.tril(np.ones((L, L), bool)), 0.0, -np.inf)
    p = _softmax(z)
    r = head_quantities(q, k, s, p, causal=True)
    rows = np.arange(L // 2, L)
    np.testing.assert_array_equal(r["query_index"], rows)
    np.testing.assert_array_equal(r["keys_seen"], rows + 1.0)
    assert r["gaps"].shape == (rows.size, L // 2 + 1)
    np.testing.assert_allclose(r["max_weight"], p[rows].max(axis=1), rtol=1e-12)
    pr = p[rows]
    ent = -np.sum(np.where(pr > 0, pr * np.log(np.where(pr > 0, pr, 1)), 0), axis=1)
    np.testing.assert_allclose(r["entropy"], ent, rtol=1e-12)
    # nearest visible key: never a future one
    cos = (q / np.linalg.norm(q, axis=1)[:, None]) @ (k / np.linalg.norm(k, axis=1)[:, None]).T
    j = np.array([np.argmax(cos[i, : i + 1]) for i in rows])
    beta = s * np.linalg.norm(q, axis=1)[rows] * np.linalg.norm(k, axis=1)[j]
    np.testing.assert_allclose(r["beta_nearest"], beta, rtol=1e-12)


def test_yarn_decoder_forecast_uses_the_schedule(tmp_path):
    """A causal Llama with YaRN (attention factor a > 1 on cos and sin): beta(n) is constant in n under HF's YaRN
    (the factor does not depend on n), so both forecasts agree; the causal query set is the last half."""
    config = decoder_config("llama", max_position_embeddings=128,
                            rope_scaling={"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64})
    path = write_checkpoint(tmp_path / "yarn", config, decoder_tensors(config, seed=5))
    model = pm.load(path)
    ids = np.random.default_rng(0).integers(0, config["vocab_size"], size=48)
    diag = pm.diagnose_model(model, ids, layers=[0], heads=[0])
    h = diag.heads[0]
    assert diag.causal and diag.context_length == pytest.approx(np.mean(np.arange(24, 48) + 1))
    assert math.isfinite(h.alpha) and 0 < h.max_weight <= 1
    assert not diag.schedule_constant and h.n_exit_schedule == pytest.approx(h.n_exit, rel=1e-6)
    with pytest.raises(InputError, match="at least 32"):
        pm.diagnose_model(model, ids[:20])
