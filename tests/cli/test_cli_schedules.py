"""Schedules against the public model code's convention, the phase diagram, the tail predictor, the CLI.

Each schedule test writes the model code's snippet out independently in NumPy (scale q and/or k,
or the logit, then take the dot product) and compares the logit multiplier with beta(n)/beta0.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest


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


# --------------------------------------------------------------------------- --config: the deployed schedule

def _reference():
    """tests/schedules/test_schedules_deployed.py: the real-value configs and the engine reimplementations
    (each function cites the repository and path it follows), loaded by path (test folders are not packages)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "schedules" / "test_schedules_deployed.py"
    spec = importlib.util.spec_from_file_location("_deployed_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


REF = _reference()


def _config_run(tmp_path, capsys, cfg, *extra):
    from phasejax.cli import main

    d = tmp_path / f"cfg{len(list(tmp_path.iterdir()))}"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    rc = main(["schedules", "--config", str(d / "config.json"), "--json", "--quiet", "--out", str(d / "out"), *extra])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return json.loads(out.out), d / "out"


@pytest.mark.parametrize("engine", ["hf", "vllm"])
def test_config_json_matches_the_engine_reimplementations(tmp_path, capsys, engine):
    for name, cfg in REF.CONFIGS.items():
        r, out = _config_run(tmp_path, capsys, cfg, "--engine", engine)
        assert r["n"] == REF.NS.tolist() and r["engine"] == engine
        on_disk = json.loads((out / "schedules_config.json").read_text())
        assert on_disk["layer_types"] == r["layer_types"] and "provenance" in on_disk
        assert on_disk["provenance"]["config"]["config"].endswith("config.json")
        by_name = {lt["name"]: lt for lt in r["layer_types"]}
        for layer in REF.LAYERS.get(name, (None,)):
            lt = by_name[layer] if layer else r["layer_types"][0]
            ref = np.array([REF.engine_logit_factor(name, cfg, n, engine=engine, layer=layer) for n in REF.NS])
            ours = np.array(lt["beta"] if (name, layer) == ("Llama-4-Scout", "rope") else lt["total_logit_factor"])
            tol = 2e-5 if (name, layer) == ("Llama-4-Scout", "rope") else 1e-12  # the L2 norm's eps = 1e-5
            np.testing.assert_allclose(ours, ref, rtol=tol, err_msg=f"{name} {layer} {engine}")
            # per component, at each n: the logit factor and the config keys it came from; their product is the total
            prod = np.ones(3)
            for c in lt["components"]:
                assert c["source"] and isinstance(c["config_keys"], dict), (name, c)
                if c["nonlinear"]:
                    assert c["logit_factor"] is None and "attn_logit_softcapping" in c["config_keys"]
                    continue
                assert len(c["logit_factor"]) == 3
                prod *= np.array(c["logit_factor"])
            np.testing.assert_allclose(prod, lt["total_logit_factor"], rtol=1e-14)


def test_config_keys_name_the_numbers(tmp_path, capsys):
    r, _ = _config_run(tmp_path, capsys, REF.DEEPSEEK_V3)
    comps = {c["name"]: c for c in r["layer_types"][0]["components"]}
    assert comps["yarn"]["config_keys"]["rope_scaling.factor"] == 40
    assert comps["yarn"]["config_keys"]["rope_scaling.mscale_all_dim"] == 1.0
    assert comps["mla_softmax_mscale"]["logit_factor"] == pytest.approx([(0.1 * math.log(40) + 1) ** 2] * 3)
    r, _ = _config_run(tmp_path, capsys, REF.MINISTRAL3, "--n", "16384,16385,65537")
    comps = {c["name"]: c for c in r["layer_types"][0]["components"]}
    assert comps["llama_4_scaling"]["config_keys"] == {"rope_parameters.llama_4_scaling_beta": 0.1,
                                                       "rope_parameters.original_max_position_embeddings": 16384}
    assert comps["llama_4_scaling"]["logit_factor"] == pytest.approx(
        [1.0, 1 + 0.1 * math.log(2), 1 + 0.1 * math.log(5)], rel=1e-14)
    # a capped head: the soft cap block with beta_eff = beta sech^2(beta / cap) (docs/theory.md §j)
    r, _ = _config_run(tmp_path, capsys, REF.GEMMA2_27B, "--beta0", "sqrt-d")
    full = [lt for lt in r["layer_types"] if lt["name"] == "full_attention"][0]
    b = math.sqrt(128) * math.sqrt(128 / 144)
    assert full["beta"] == pytest.approx([b] * 3, rel=1e-14)
    assert full["soft_cap"]["beta_eff"] == pytest.approx([b / math.cosh(b / 50.0) ** 2] * 3, rel=1e-12)
    assert full["soft_cap"]["beta_eff_max"] == pytest.approx(0.4477432046943029 * 50, rel=1e-9)


def test_config_table(tmp_path, capsys):
    from phasejax.cli import main

    (tmp_path / "config.json").write_text(json.dumps(REF.LLAMA4_SCOUT))
    assert main(["schedules", "--config", str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "layer type rope (36 layers, chunked window 8192)" in text and "layer type nope (12 layers)" in text
    assert "llama4_temperature_tuning" in text and "11.31371" in text  # beta0 = sqrt(128) on the qk-normed layers


@pytest.mark.parametrize(
    "write, extra, words",
    [
        (None, [], ["config path"]),
        ("{not json", [], ["valid JSON"]),
        (json.dumps({**REF.QWEN25, "rope_scaling": {"type": "magic", "factor": 2.0}}), [], ["rope_type", "magic"]),
        (json.dumps(REF.QWEN25), ["--engine", "tgi"], ["--engine", "tgi"]),
        (json.dumps(REF.QWEN25), ["--d", "3"], ["no key law", "--d"]),
        (json.dumps(REF.QWEN25), ["--beta0", "critical"], ["--beta0 critical"]),
        (json.dumps(REF.QWEN25), ["--seq-len", "100"], ["--seq-len"]),
    ],
)
def test_config_bad_input_exit_2(tmp_path, capsys, write, extra, words):
    from phasejax.cli import main

    path = tmp_path / "config.json"
    if write is not None:
        path.write_text(write)
    assert main(["schedules", "--config", str(path), "--quiet", "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("phasejax schedules: error:"), err
    for w in words:
        assert w in err, err


def test_phase_mode_rejects_config_options(tmp_path, capsys):
    from phasejax.cli import main

    assert main(["schedules", "--engine", "vllm", "--out", str(tmp_path), "--quiet"]) == 2
    assert "--engine applies with --config only" in capsys.readouterr().err


@pytest.mark.parametrize(
    "scores, words",
    [
        (np.zeros((50, 40)), ["shape (N,)", "(50, 40)"]),
        (np.r_[np.linspace(-1, 1, 2000), 1e300], ["1e+300", "magnitude"]),
        (np.linspace(-1, 1, 2000) * 1e300, ["magnitude"]),
        (np.r_[np.linspace(-1, 1, 2000), np.nan], ["finite"]),
    ],
)
def test_scores_must_be_one_finite_row(tmp_path, capsys, scores, words):
    from phasejax.cli import main

    np.save(tmp_path / "s.npy", scores)
    assert main(["schedules", "--scores", str(tmp_path / "s.npy"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
