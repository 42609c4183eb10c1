"""``phasejax model DIR --text FILE``: every head of a Hugging Face checkpoint on the phase diagram.

``DIR`` is a model directory (config.json + model.safetensors or a sharded index, tokenizer.json), or ``minilm``
for the packaged sentence-transformers all-MiniLM-L6-v2 (``phasejax[models]``). One forward pass in JAX
(:func:`phasejax.models.load`), then :func:`phasejax.models.diagnose_model` per layer and head: beta_eff and beta at
the nearest key, alpha +- se and C with the fit's verdict, lambda/lambda* and the Poisson-limit E[max weight] at
the text's length, the measured max weight and entropy of the head's attention rows, and the context length at
which the head leaves the critical window (with the model's own schedule and without).

A text longer than ``max_position_embeddings`` is refused, naming both numbers; ``--truncate`` keeps the first
max_position_embeddings - 1 tokens and the final special token instead, and says so.

Writes ``model.json`` (atomically; :meth:`ModelDiagnosis.to_dict` plus provenance), ``model_lambda.png``
(layer x head map of lambda/lambda*, log colour scale) and ``model_max_weight.png`` (measured against predicted
E[max weight] per head).
"""

from __future__ import annotations

import os
import time

import numpy as np

from .._checks import InputError
from . import _common as C

NAME = "model"
HELP = "diagnose every attention head of a Hugging Face checkpoint (or 'minilm') on a text"


def add_arguments(p):
    p.add_argument("dir", help="model directory (config.json, model.safetensors, tokenizer.json), or 'minilm'")
    p.add_argument("--text", required=True, help="UTF-8 text file to run the model on")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="weights and activations (default float32)")
    p.add_argument("--truncate", action="store_true",
                   help="cut a text longer than max_position_embeddings (default: refuse it)")
    p.add_argument("--layers", type=C.integer, nargs="+", default=None, help="only these layer indices")
    p.add_argument("--heads", type=C.integer, nargs="+", default=None, help="only these head indices")
    p.add_argument("--max-queries", type=C.positive_int, default=512, help="queries per head (default 512)")
    C.add_k_level_arguments(p, k_help="tail-fit k: 'gof' (default), 'min_ks', or K")
    p.add_argument("--window", type=C.positive_real, nargs=2, default=(0.1, 0.9), metavar=("LOW", "HIGH"),
                   help="E[max weight] band called critical (default 0.1 0.9)")
    C.add_output_arguments(p)


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise InputError(f"--text: {path!r} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise InputError(f"--text: {path!r} is empty (nothing to run the model on)")
    return text


def run(args):
    t0 = time.perf_counter()
    lo_w, hi_w = C.band_from_args(args)
    text = _read_text(args.text)
    import phasejax.models as pm

    path = pm.minilm_path() if args.dir == "minilm" else args.dir
    model = pm.load(path, dtype=args.dtype)
    ids = model.encode(text)
    limit = model.max_length
    truncated = None
    if ids.size > limit:
        if not args.truncate:
            raise InputError(f"--text: {args.text!r} has {ids.size} tokens but the model accepts at most {limit} "
                             f"(max_position_embeddings); shorten it or pass --truncate")
        truncated = f"truncated from {ids.size} to {limit} tokens (first {limit - 1} and the final special token)"
        ids = np.concatenate([ids[: limit - 1], ids[-1:]])
    out = C.setup(args, NAME)
    diag = pm.diagnose_model(model, ids, band=(lo_w, hi_w), k=args.k, level=args.level,
                             max_queries=args.max_queries, seed=args.seed, layers=args.layers, heads=args.heads)
    result = diag.to_dict()
    result.update(text_file=os.path.abspath(args.text), truncated=truncated, elapsed_s=time.perf_counter() - t0)
    result["files"] = _write(out, result)
    result["elapsed_s"] = time.perf_counter() - t0
    return result, _table(diag, result)


def _write(out, r):
    from ..plots import model_lambda_figure, model_max_weight_figure
    from ..runtime import io

    files = {"lambda_map": model_lambda_figure(os.path.join(out, "model_lambda.png"), r),
             "max_weight": model_max_weight_figure(os.path.join(out, "model_max_weight.png"), r),
             "json": os.path.join(out, "model.json")}
    io.save_json(files["json"], {**r, "files": files, "provenance": io.provenance()})
    return files


def _exit(v: float, n: float) -> str:
    if np.isnan(v):
        return "-"
    return "(already)" if v < 1 else (f"{v:.3g}" if np.isfinite(v) else "never")


def _table(diag, r) -> str:
    head = [f"{diag.model_type} {diag.path} ({diag.dtype}): {diag.num_tokens} tokens, context n = "
            f"{diag.context_length:g} keys per query, {'causal' if diag.causal else 'bidirectional'}, "
            f"scale s = {diag.scale:.4g}; {diag.schedule_note}"]
    if r.get("truncated"):
        head.append(f"TEXT {r['truncated']}")
    rows = []
    for h in diag.heads:
        rows.append([h.layer, h.head, f"{h.beta:.3g}", f"{h.alpha:.3g} +- {h.alpha_se:.2g}" + ("" if h.gof_ok else "*"),
                     h.lambda_ratio, h.E_max_weight, f"{h.max_weight:.3f} +- {h.max_weight_se:.2g}",
                     f"{h.max_weight_z:+.1f}", h.regime, _exit(h.n_exit, h.n), _exit(h.n_exit_schedule, h.n)])
    table = C.format_table(["layer", "head", "beta", "alpha +- se", "lambda/lambda*", "E[max w] pred.",
                            "max w measured", "z", "regime", "n_exit", "n_exit (schedule)"], rows)
    lines = ["\n".join(head), "", table,
             "* the power law is rejected at the chosen k (goodness of fit); z = (pred. - measured) / se; "
             f"n_exit: context length above which E[max weight] < {diag.band[0]:g} ((already): below n = 1)",
             f"elapsed {r['elapsed_s']:.1f} s"]
    lines[3:3] = [f"layer {h.layer} head {h.head}: {h.note}" for h in diag.heads if h.note]
    lines.extend(f"{k}: {v}" for k, v in r["files"].items())
    return "\n".join(lines)
