"""The nearest-m sampler (phasejax.extreme) against exact O(n) sampling, mpmath/SciPy and theory.

References are independent: mpmath residuals of log I_x(a, b) (quantile precision), SciPy's
betaincinv and quad (bulk integrals, E[Z]), the exact O(n) samplers of phasejax.geometry /
phasejax.observables (two-sample KS tests over seeds), docs/theory.md §e identities and, in the slow
tests, the exact finite-n beta_peak of phasejax.theory.


`phasejax sweep`: the JSON contract, the files it writes, and agreement with the library."""

from __future__ import annotations

import json
import os

import numpy as np

from phasejax import cli
from phasejax.laws import Empirical, UniformSphere
from phasejax.observables import (
    OBSERVABLE_NAMES,
)
from phasejax.runtime import load_dataset

LAW3, N9, M64 = UniformSphere(3), 10**9, 64



def test_sweep_reports_the_sampler(tmp_path, capsys):
    """`phasejax sweep --sampler nearest`: JSON key `sampler`, m, the truncation bound, netCDF attrs."""
    import json

    from phasejax import cli
    from phasejax.runtime import load_dataset

    args = ["sweep", "--n", "1e12", "--seeds", "2", "--beta-points", "6", "--nearest-m", "32", "--json", "--quiet"]
    assert cli.main([*args, "--sampler", "nearest", "--out", str(tmp_path / "a")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sampler"] == "nearest" and out["nearest_m"] == 32 and out["n"] == 10**12
    assert len(out["truncation_bound"]) == 6 and max(out["truncation_bound"]) < 0.05
    assert out["max_weight"][0] < 1e-3 and out["max_weight"][-1] > 0.99  # lambda = 1e-4 .. 1e2
    ds = load_dataset(out["files"]["results"])
    assert ds.attrs["sampler"] == "nearest" and ds.attrs["nearest_m"] == 32
    assert "truncation_bound" in ds
    # auto picks nearest above 2^20 keys (exact below: see test_cli_sweep)
    from phasejax.runtime import choose_sampler

    assert choose_sampler(LAW3, 2**20) == "exact" and choose_sampler(LAW3, 2**20 + 1) == "nearest"
    assert choose_sampler(Empirical(np.eye(3), query=np.array([1.0, 0, 0])), 10**9) == "exact"


def test_sweep_json_contract(tmp_path, capsys):
    rc = cli.main(["sweep", "--d", "3", "--n", "2000", "--seeds", "3", "--beta-points", "9", "--beta-min", "1e-3",
                   "--json", "--out", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["beta"]) == 9
    for name in OBSERVABLE_NAMES:
        assert len(out[name]) == 9 and len(out[name + "_se"]) == 9
    assert out["n"] == 2000 and out["d"] == 3 and out["alpha"] == 2.0 and out["sampler"] == "exact"
    # beta -> small: max weight -> 1/n; the figure, netCDF and JSON exist
    assert abs(out["max_weight"][0] * 2000 - 1) < 0.05
    for key in ("results", "json", "figure"):
        assert os.path.exists(out["files"][key])
    ds = load_dataset(out["files"]["results"])
    np.testing.assert_allclose(ds["max_weight_mean"].values, out["max_weight"], rtol=1e-6)
    assert ds["max_weight"].dims == ("seed", "beta")
    assert ds.attrs["provenance"]["config"]["n"] == 2000


def test_sweep_table_and_other_laws(tmp_path, capsys):
    rc = cli.main(["sweep", "--geometry", "powerlaw", "--alpha", "1", "--n", "500", "--seeds", "2",
                   "--beta-points", "5", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "PowerLawCap" in text and "max_weight" in text
