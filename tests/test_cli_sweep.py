"""`phasejax sweep`: the JSON contract, the files it writes, and agreement with the library."""

from __future__ import annotations

import json
import os

import numpy as np

from phasejax import cli
from phasejax.observables import OBSERVABLE_NAMES
from phasejax.runtime import load_dataset


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
