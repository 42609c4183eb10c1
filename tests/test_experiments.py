"""The experiments and `phasejax reproduce`: smoke tests at --quick sizes (the full set is slow)."""

from __future__ import annotations

import json
import os

import pytest

from phasejax import cli
from phasejax.experiments import EXPERIMENTS


def test_reproduce_writes_report_with_claims(tmp_path, capsys):
    out = tmp_path / "report"
    rc = cli.main(["reproduce", "--quick", "--only", "entropy_crossovers,precision_floor", "--json", "--quiet",
                   "--out", str(out)])
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["experiments"] == ["entropy_crossovers", "precision_floor"]
    assert len(r["claims"]) >= 5 and all({"theory", "measured", "se", "agrees"} <= set(c) for c in r["claims"])
    assert r["disagree"] == 0
    text = (out / "report.md").read_text()
    assert "| experiment | claim | theory | measured | se |" in text
    assert all(os.path.exists(f) for f in r["figures"]) and len(r["figures"]) >= 3
    # finished experiments are reused on a rerun (resumable), and --only rejects unknown names
    rc = cli.main(["reproduce", "--quick", "--only", "entropy_crossovers", "--json", "--quiet", "--out", str(out)])
    assert rc == 0 and json.loads(capsys.readouterr().out)["claims"]
    assert cli.main(["reproduce", "--only", "nope", "--out", str(out)]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_quick_smoke(name, tmp_path):
    import importlib

    res = importlib.import_module(f"phasejax.experiments.{name}").main(["--quick", "--out", str(tmp_path)])
    assert res["claims"] and res["figures"]
    assert all(os.path.exists(f) for f in res["figures"])
