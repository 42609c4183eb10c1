"""Each regime's finite-n simulation against its limit law (docs/theory.md §b, §c, §f), at stated sigmas."""

from __future__ import annotations

import json

from phasejax import cli


def test_limit_laws_cli_json(tmp_path, capsys):
    rc = cli.main(["limit-laws", "--n-max", "100", "--seeds", "60", "--entropy-n", "10000", "--json",
                   "--out", str(tmp_path)])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for regime in ("subcritical", "critical", "supercritical", "entropy_crossover"):
        assert regime in out
    assert out["critical"]["n"] == [10.0, 100.0]
    assert cli.main(["limit-laws", "--d", "2", "--out", str(tmp_path)]) == 2
