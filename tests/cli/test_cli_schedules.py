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
