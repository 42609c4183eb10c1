"""phasejax.heat: the all-queries attention step, zonal modes and the exact Funk-Hecke map (docs/theory.md §g).

Every reference here is independent of the library: a dense NumPy softmax, SciPy's Gegenbauer
polynomials, Bessel functions (ive) and adaptive quadrature, the public anchor file, and Monte Carlo
with a tolerance that follows from its standard error.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from phasejax import cli


def test_cli_heat_json(tmp_path, capsys):
    rc = cli.main(["heat", "--N", "2000", "--beta", "10", "40", "--seeds", "12", "--json", "--quiet",
                   "--out", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for k in ("beta", "G_measured", "G_measured_se", "G_exact", "G_first_order", "d", "l", "eps", "N"):
        assert k in out
    assert out["d"] == 3 and out["l"] == 2 and out["N"] == 2000 and len(out["G_measured"]) == 2
    np.testing.assert_allclose(out["G_first_order"], [1.6, 1.15])
    # 12 seeds: z ~ t_11, P(|z| > 4) = 0.2%; the raw gain against the O(1/N)-corrected value, the
    # extrapolated one against N = infinity
    for g, s, ge in zip(out["G_measured"], out["G_measured_se"], out["G_exact_finite_N"], strict=True):
        assert abs(g - ge) < 4 * s
    for g, s, ge in zip(out["G_extrapolated"], out["G_extrapolated_se"], out["G_exact"], strict=True):
        assert abs(g - ge) < 4 * s
    np.testing.assert_allclose(out["finite_N_bias"], np.subtract(out["G_measured"], out["G_extrapolated"]))
    assert (tmp_path / "heat.json").exists() and (tmp_path / "heat.png").exists()
    saved = json.loads((tmp_path / "heat.json").read_text())
    assert saved["G_measured"] == out["G_measured"]


def test_cli_heat_table_and_exit_2(tmp_path, capsys):
    rc = cli.main(["heat", "--N", "500", "--beta-min", "5", "--beta-max", "20", "--beta-points", "2",
                   "--seeds", "2", "--quiet", "--out", str(tmp_path)])
    assert rc == 0
    assert "exact-1" in capsys.readouterr().out
    assert cli.main(["heat", "--eps", "3", "--out", str(tmp_path)]) == 2
    assert "--eps" in capsys.readouterr().err
    assert cli.main(["heat", "--l", "0", "--out", str(tmp_path)]) == 2
    assert cli.main(["heat", "--seeds", "1", "--out", str(tmp_path)]) == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["heat", "--N", "-5"])
    assert exc.value.code == 2
