"""Scaling fits and the beta_peak(n) ~ lambda* n^{2/alpha} law (small, fixed-key runs; the full runs are slow)."""

from __future__ import annotations

import json
import os

import pytest

from phasejax import cli


def test_scaling_cli_json_contract(tmp_path, capsys):
    rc = cli.main(["scaling", "--n-min", "100", "--n-max", "3000", "--n-points", "3", "--seeds", "32",
                   "--json", "--out", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("d", "alpha", "n", "beta_peak", "beta_peak_se", "exponent", "exponent_se", "exponent_theory",
                "lambda_star", "lambda_star_se", "lambda_star_theory", "sampler", "geometry"):
        assert key in out
    assert out["geometry"] == "UniformSphere" and out["exponent_theory"] == 1.0
    assert len(out["beta_peak"]) == 3
    for f in ("results", "figure_peaks", "figure_collapse", "json"):
        assert os.path.exists(out["files"][f])


@pytest.mark.parametrize("argv, fragment", [
    (["--n-min", "1000", "--n-max", "100"], "--n-max (100) must be larger than --n-min (1000)"),
    (["--seeds", "1"], "--seeds must be >= 2"),
    (["--sampler", "magic"], "--sampler must be one of"),
    (["--observable", "nope"], "--observable must be one of"),
])
def test_scaling_cli_errors(argv, fragment, capsys, tmp_path):
    assert cli.main(["scaling", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
