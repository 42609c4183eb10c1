"""Score laws beyond the sphere (docs/theory.md §h): Gaussian scores / REM, Poisson-Dirichlet, the exact finite-n
E[max weight] for any score law, almost-simplex tokens. References: closed forms, scipy quadrature
written here, Monte Carlo (agreement within 4 standard errors), theory.exact_expected_max_weight.

Tests of phasejax.theory and the ``phasejax theory`` command.

References are independent: mpmath/scipy code written here, closed forms, identities of
docs/theory.md, Monte Carlo with fixed keys at a stated sigma, and ../shared/reference/public.json.
"""

from __future__ import annotations

import json
import math

import pytest

from phasejax.cli import main
from phasejax.laws import AlmostSimplex


def _cli(capsys, *args):
    """Run ``phasejax <args>`` in-process: (exit code, stdout, stderr)."""
    from phasejax.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:  # argparse errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_theory_gaussian_and_simplex(tmp_path, capsys):
    code, out, err = _cli(capsys, "theory", "--law", "gaussian", "--sigma", "0.5", "--n", "1e4", "--json",
                          "--out", str(tmp_path / "g"))
    assert code == 0, err
    out = json.loads(out)
    assert out["law"] == "GaussianScores" and out["n"] == 10_000
    assert out["beta_c"] == pytest.approx(math.sqrt(2 * math.log(1e4)) / 0.5)
    assert 0.85 < out["beta_peak_exact"] / out["beta_c"] < 1.0
    code, out, err = _cli(capsys, "theory", "--law", "simplex", "--rho", "0.5", "--n", "1000", "--json",
                          "--out", str(tmp_path / "s"))
    assert code == 0, err
    out = json.loads(out)
    assert out["law"] == "AlmostSimplex" and out["gamma_c"] == pytest.approx(2.0)
    assert out["beta_peak_exact"] == pytest.approx(AlmostSimplex(0.5).beta_peak(1000))
    assert out["max_weight_at_gamma_c"] == pytest.approx(0.5 + 1 / 3998)


@pytest.mark.parametrize("args", [
    ("theory", "--law", "simplex", "--rho", "1.5"),
    ("theory", "--law", "simplex"),
    ("theory", "--law", "gaussian", "--sigma", "-1"),
    ("theory", "--law", "nope"),
    ("theory", "--law", "gaussian", "--rho", "0.5"),
    ("sweep", "--geometry", "uniform", "--sigma", "0.5", "--n", "10"),
])
def test_cli_errors_exit_2(tmp_path, capsys, args):
    code, _, err = _cli(capsys, *args, "--out", str(tmp_path))
    assert code == 2
    assert err.strip().count("\n") == 0 and "error" in err


def test_cli_json(capsys, tmp_path):
    rc = main(["theory", "--d", "3", "--lambda", "1", "--n", "1e6", "--json", "--out", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for k in ("lambda_star", "kappa", "C", "h", "rho", "E_max_weight", "E_sum_w2", "E_entropy", "A_d",
              "beta_peak_exact", "n"):
        assert k in out
    assert out["lambda_star"] == pytest.approx(0.3814471556960417, rel=1e-7)
    assert out["E_max_weight"] == pytest.approx(0.7294882146546666, abs=1e-5)  # float32 run
    assert out["A_d"] == pytest.approx(1 / math.tanh(10) - 0.1, rel=1e-6)
    assert out["n"] == 1_000_000
    assert out["beta_peak_exact"] / 1e6 == pytest.approx(out["lambda_star"], rel=1e-5)
    assert (tmp_path / "theory.json").exists()


@pytest.mark.parametrize("argv", [["--d", "1"], ["--alpha", "-2"], ["--C", "0.3"], ["--lambda", "0"],
                                  ["--beta", "-1"], ["--n", "1"]])
def test_cli_bad_input_exit_2(argv, capsys, tmp_path):
    rc = main(["theory", *argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "error" in err
