"""`phasejax diagnose` (JSON contract, files, exit-2 errors) and the flax attention diagnosis."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasejax import cli
from phasejax.laws import UniformSphere


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("diag") / "keys.npy"
    keys = np.asarray(UniformSphere(3).sample_keys(jax.random.key(0), jnp.array([0.0, 0.0, 1.0]), 1200))
    np.save(path, 3.0 * keys)  # not unit: diagnose normalises
    return str(path)


def _bad_inputs(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).normal(size=(100, 3)))
    pick = tmp_path / "pickle.npy"
    np.save(pick, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    vec = tmp_path / "vec.npy"
    np.save(vec, np.ones(5))
    nan = tmp_path / "nan.npy"
    arr = np.random.default_rng(1).normal(size=(100, 3))
    arr[3, 1] = np.nan
    np.save(nan, arr)
    zero = tmp_path / "zero.npy"
    arr = np.random.default_rng(1).normal(size=(100, 3))
    arr[5] = 0
    np.save(zero, arr)
    q4 = tmp_path / "q4.npy"
    np.save(q4, np.ones(4))
    q0 = tmp_path / "q0.npy"
    np.save(q0, np.zeros(3))
    text = tmp_path / "text.npy"
    text.write_text("not an array")
    return {
        "missing": [str(tmp_path / "nope.npy")],
        "pickle": [str(pick)],
        "text": [str(text)],
        "1-D keys": [str(vec)],
        "NaN": [str(nan)],
        "zero vector": [str(zero)],
        "query dimension": [str(good), "--query", str(q4)],
        "zero query": [str(good), "--query", str(q0)],
        "window": [str(good), "--window", "0.9", "0.1"],
    }


def test_diagnose_json_contract(keys_file, tmp_path, capsys):
    rc = cli.main(["diagnose", keys_file, "--beta", "20", "--seeds", "16", "--n-points", "2", "--n-min", "60",
                   "--n-max", "1e4", "--queries", "6", "--json", "--out", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("alpha", "alpha_se", "C", "beta_peak", "regime", "n", "beta_peak_measured", "beta_peak_measured_se",
                "lambda_star", "alpha_ci95", "n_enter", "n_exit", "E_max_weight", "lambda_ratio"):
        assert key in out, key
    n = out["n"]
    assert len(out["beta_peak"]) == len(out["regime"]) == len(out["beta_peak_measured"]) == len(n)
    assert out["N"] == 1200 - 6 and out["num_queries"] == 6 and out["query_source"] == "held-out random keys"
    assert abs(out["alpha"] - 2) < 4 * out["alpha_se"]
    assert abs(out["C"] - 0.5) < 4 * out["C_se"]
    # prediction = lambda*(alpha, C) n^(2/alpha); measured on subsamples where n <= N/2, null beyond
    np.testing.assert_allclose(out["beta_peak"], out["lambda_star"] * np.asarray(n) ** (2 / out["alpha"]), rtol=1e-9)
    assert out["measured"][:2] == [True, True] and out["beta_peak_measured"][-1] is None
    for b, s in zip(out["beta_peak_measured"][:2], out["beta_peak_measured_se"][:2], strict=True):
        assert b > 0 and s > 0
    # the regime flips from critical to sub where beta leaves the window
    for ni, name in zip(n, out["regime"], strict=True):
        expect = "super" if ni < out["n_enter"] else ("sub" if ni > out["n_exit"] else "critical")
        assert name == expect
    for key in ("figure", "json"):
        assert os.path.exists(out["files"][key])
    saved = json.loads(open(out["files"]["json"]).read())
    assert saved["alpha"] == pytest.approx(out["alpha"])


def test_diagnose_table_with_query_file(keys_file, tmp_path, capsys):
    q = tmp_path / "q.npy"
    np.save(q, np.array([0.0, 0.0, 2.0]))
    rc = cli.main(["diagnose", keys_file, "--query", str(q), "--no-measure", "--k", "200", "--out", str(tmp_path)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "alpha =" in text and "lambda*" in text and "1 queries (file)" in text


def test_diagnose_bad_input_exits_2(tmp_path, capsys):
    for what, argv in _bad_inputs(tmp_path).items():
        rc = cli.main(["diagnose", *argv, "--no-measure", "--out", str(tmp_path / "o")])
        err = capsys.readouterr().err
        assert rc == 2, what
        assert err.count("\n") == 1 and "error" in err, (what, err)
    with pytest.raises(SystemExit) as e:
        cli.main(["diagnose", str(tmp_path / "good.npy"), "--beta", "-3"])
    assert e.value.code == 2
