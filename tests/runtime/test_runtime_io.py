"""phasejax.runtime.io: provenance (the git state of the package source, never of an enclosing repository),
file modes from the user's umask, atomic writes, CF attributes of the netCDF results (issue 17)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from phasejax.runtime import io


def _git(cwd, *args):
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                   env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                            GIT_COMMITTER_EMAIL="t@t"))


def test_git_source_is_the_package_repository_with_a_dirty_flag(tmp_path):
    repo = tmp_path / "repo"
    pkg = repo / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert io.git_source(str(pkg)) == {"commit": head, "dirty": False, "note": None}
    (pkg / "__init__.py").write_text("x = 2\n")
    assert io.git_source(str(pkg))["dirty"] is True
    # an install of the package inside some other repository (a .venv in a project): not that repository's commit
    site = repo / ".venv" / "site-packages" / "pkg"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("x = 1\n")
    got = io.git_source(str(site))
    assert got["commit"] is None and got["dirty"] is None and "not tracked" in got["note"]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "__init__.py").write_text("")
    assert io.git_source(str(plain))["commit"] is None


def test_provenance_block_has_config_seed_versions_device_dtype_and_git():
    p = io.provenance({"seed": 2**40, "n": 10})
    assert p["config"] == {"seed": 2**40, "n": 10} and p["seed"] == 2**40
    assert {"phasejax", "jax", "jaxlib", "numpy"} <= set(p["versions"])
    assert p["devices"] and p["backend"] and p["dtype"] in ("float32", "float64")
    assert {"git_commit", "git_dirty", "git_note"} <= set(p)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_result_files_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        path = io.save_json(str(tmp_path / "r.json"), {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_every_netcdf_variable_and_coordinate_has_units_and_long_name(tmp_path, capsys):
    from phasejax import cli

    for argv, name in ((["sweep", "--n", "300", "--seeds", "2", "--beta-points", "3"], "sweep.nc"),):
        out = tmp_path / argv[0]
        assert cli.main([*argv, "--quiet", "--out", str(out)]) == 0, capsys.readouterr().err
        ds = io.load_dataset(str(out / name))
        for v in list(ds.data_vars) + list(ds.coords):
            assert ds[v].attrs.get("units") and ds[v].attrs.get("long_name"), (name, v)
        assert ds["beta"].attrs["units"] == "1"
        if "entropy" in ds:
            assert ds["entropy"].attrs["units"] == "nats"
        prov = io.load_json(str(out / name.replace(".nc", ".json")))["provenance"]  # the JSON beside it
        assert prov["seed"] == 0 and prov["config"]["n"] == 300 and "git_dirty" in prov
    assert io.cf_attrs("entropy_se") == {"units": "nats", "long_name": "standard error of Shannon entropy of the "
                                                                      "attention weights"}
    assert io.cf_attrs("retrieval_beta_learned")["long_name"].endswith("(retrieval task)")
