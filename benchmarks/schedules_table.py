"""Issue 20's closing table: phasejax's deployed logit factor at 4k, 32k and 128k next to the engine reimplementation.

The configs (real values) and the reimplementations of the engines' code are those of
tests/schedules/test_schedules_deployed.py (loaded by path); phasejax reads each config through
``phasejax schedules --config`` (the CLI, in-process), so the table checks what a user runs.

    python benchmarks/schedules_table.py            # markdown table on stdout, both engines
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _reference():
    spec = importlib.util.spec_from_file_location("_deployed_reference",
                                                  ROOT / "tests" / "schedules" / "test_schedules_deployed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rows(engine: str):
    from phasejax.cli import main

    ref = _reference()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, cfg) in enumerate(ref.CONFIGS.items()):
            d = Path(tmp) / f"c{i}"
            d.mkdir()
            (d / "config.json").write_text(json.dumps(cfg))
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                rc = main(["schedules", "--config", str(d), "--engine", engine, "--json", "--quiet",
                           "--out", str(d / "out"), "--n", ",".join(str(int(n)) for n in ref.NS)])
            if rc != 0:
                raise SystemExit(f"{name}: phasejax schedules --config failed ({rc})")
            r = json.loads(buf.getvalue())
            by_name = {lt["name"]: lt for lt in r["layer_types"]}
            for layer in ref.LAYERS.get(name, (None,)):
                lt = by_name[layer] if layer else r["layer_types"][0]
                rope_qk = (name, layer) == ("Llama-4-Scout", "rope")
                ours = np.array(lt["beta"] if rope_qk else lt["total_logit_factor"])
                theirs = np.array([ref.engine_logit_factor(name, cfg, n, engine=engine, layer=layer) for n in ref.NS])
                out.append((name, layer, rope_qk, ours, theirs, float(np.max(np.abs(ours / theirs - 1)))))
    return out


def main() -> int:
    for engine in ("hf", "vllm"):
        print(f"\n### engine {engine}\n")
        print("| config | layer type | phasejax 4k / 32k / 128k | reimplementation 4k / 32k / 128k | max rel. diff |")
        print("|---|---|---|---|---|")
        for name, layer, rope_qk, ours, theirs, rel in rows(engine):
            fmt = lambda a: " / ".join(f"{v:.6f}" for v in a)  # noqa: E731
            tag = (layer or "all") + (" (beta, qk-norm)" if rope_qk else "")
            print(f"| {name} | {tag} | {fmt(ours)} | {fmt(theirs)} | {rel:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
