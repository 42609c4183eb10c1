"""Learned temperature (phasejax.learn, `phasejax learn`): the head against NumPy, its gradient against the
closed form, the regression MSE theory against closed forms and Monte Carlo, training against the
minimisers, retrieval growth, errors and the CLI contract.

References are independent: NumPy softmax code, the d = 3 closed forms (a_2 = 1 + 3/b^2 - 3 coth(b)/b,
R = b coth b), the n = 1 and beta -> 0 limits of the exact MSE, and Monte Carlo with stated standard errors.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from phasejax import cli
from phasejax.runtime import load_dataset

_CLI_ARGS = ["learn", "--d", "3", "--n-min", "30", "--n-max", "1e2", "--n-points", "2", "--steps", "96", "--runs", "6",
             "--batch", "8"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("learn")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main([*_CLI_ARGS, "--json", "--out", str(out)])
    return rc, json.loads(buf.getvalue())


@pytest.mark.parametrize("argv,msg", [
    (["--d", "2"], "--d"),
    (["--task", "classify"], "--task"),
    (["--n-min", "1000", "--n-max", "100"], "--n-max"),
    (["--batch", "10", "--contexts", "3"], "--batch"),
    (["--steps", "8"], "--steps"),
])
def test_cli_bad_input_exit_2(tmp_path, capsys, argv, msg):
    rc = cli.main(["learn", *argv, "--out", str(tmp_path), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and msg in err and err.startswith("phasejax learn: error:")


def test_cli_argparse_rejects_non_counts(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["learn", "--n-max", "1e5.5"])
    assert e.value.code == 2


def test_cli_json_contract(cli_run):
    rc, res = cli_run
    assert rc == 0
    for k in ("n", "beta_learned", "beta_learned_se", "beta_opt_theory", "d", "task", "exponent", "exponent_se",
              "exponent_theory", "lambda"):
        assert k in res, k
    assert res["n"] == [30, 100] and res["d"] == 3 and res["task"] == "both"
    assert res["exponent_theory"] == pytest.approx(1 / 3)
    assert set(res["by_task"]) == {"regression", "retrieval"}
    for key in ("results", "json", "figure"):
        assert os.path.exists(res["files"][key])
    ds = load_dataset(res["files"]["results"])
    assert ds["regression_log_beta"].dims == ("n", "run", "step_regression")
    np.testing.assert_allclose(ds["regression_beta_learned"].values, res["beta_learned"], rtol=1e-12)


def test_cli_regression_agrees_and_is_subcritical(cli_run):
    _, res = cli_run
    lb, se = np.log(res["beta_learned"]), np.asarray(res["beta_learned_se"]) / np.asarray(res["beta_learned"])
    assert np.all(np.abs(lb - np.log(res["beta_opt_theory"])) < 4 * se + 0.02)
    lam = np.asarray(res["lambda"])
    assert np.all(lam < res["lambda_star"]) and lam[1] < lam[0]  # subcritical, and lambda falls with n


def test_cli_retrieval_grows_and_is_supercritical(cli_run):
    _, res = cli_run
    r = res["by_task"]["retrieval"]
    assert np.all(np.asarray(r["lambda_final"]) > 3 * res["lambda_star"])
    assert np.all(np.asarray(r["growth_exponent"]) > 3 * np.asarray(r["growth_exponent_se"]))
    assert r["beta_final"][1] > r["beta_final"][0]
    assert not any(r["converged"])


def test_cli_table(cli_run, tmp_path, capsys):
    """The same configuration as the JSON run (the compiled training program is reused), as a table."""
    rc = cli.main([*_CLI_ARGS, "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    for word in ("regression", "retrieval", "beta_opt(exact)", "lambda_final", "fitted exponent", "learn.png"):
        assert word in text
