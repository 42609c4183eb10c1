"""``phasejax reproduce``: run every experiment into one report (Markdown) with a theory-versus-measured table."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import time

from .._checks import InputError
from . import _common as C

NAME = "reproduce"
HELP = "run every experiment (one per claim of the paper) and write figures and a report with theory vs measured"


def add_arguments(p):
    p.add_argument("--quick", action="store_true", help="small sizes (CI: a few minutes on 2 cores)")
    p.add_argument("--only", default=None, help="comma-separated experiments to run (default: all)")
    p.add_argument("--fresh", action="store_true",
                   help="recompute every experiment (default: reuse the finished ones found in --out that were run "
                   "in the same mode, dtype and seed)")
    C.add_output_arguments(p)


def _experiments(only):
    from ..experiments import EXPERIMENTS

    if only is None:
        return list(EXPERIMENTS)
    names = [x.strip() for x in only.split(",") if x.strip()]
    for n in names:
        if n not in EXPERIMENTS:
            raise InputError(f"--only: unknown experiment {n!r}; known: {', '.join(EXPERIMENTS)}")
    return names


def run(args):
    names = _experiments(args.only)
    out = C.setup(args, NAME)
    from ..runtime import io

    fig_dir = os.path.join(out, "figures")
    os.makedirs(fig_dir, exist_ok=True)
    prog = C.Progress(len(names), "reproduce", quiet=args.quiet or args.json)
    import jax

    # a finished experiment is reused only by a run of the same mode, dtype and seed; each such run has its own
    # folder, so a --quick float32 result can never stand in for a full --x64 one (nor its cells be resumed by it)
    run_key = {"mode": "quick" if args.quick else "full",
               "dtype": "float64" if jax.config.jax_enable_x64 else "float32", "seed": args.seed}
    tag = f"{run_key['mode']}-{run_key['dtype']}-seed{args.seed}"
    sections = []
    for name in names:
        t0 = time.perf_counter()
        sub = os.path.join(out, name, tag)
        done = os.path.join(sub, "result.json")
        rec = None
        if os.path.exists(done) and not args.fresh:
            try:
                rec = io.load_json(done)
            except (OSError, ValueError):
                rec = None
            if not isinstance(rec, dict) or rec.get("run_key") != run_key:
                rec = None  # unreadable, or from an older layout: recompute
            else:
                rec["reused"] = True
        if rec is None:
            try:
                mod = importlib.import_module(f"phasejax.experiments.{name}")
            except ModuleNotFoundError as e:
                rec = {"name": name, "error": f"not available: {e}", "claims": [], "figures": []}
            else:
                os.makedirs(sub, exist_ok=True)
                # an experiment's own tables go to its log, so --json prints one object on stdout
                with open(os.path.join(sub, "log.txt"), "w") as log, contextlib.redirect_stdout(log):
                    res = mod.main(["--out", sub, "--seed", str(args.seed), *(["--quick"] if args.quick else [])])
                figs = []
                for f in res.get("figures", []):
                    if f and os.path.exists(f):
                        dest = os.path.join(fig_dir, f"{name}__{tag}__{os.path.basename(f)}")
                        shutil.copyfile(f, dest)
                        figs.append(os.path.relpath(dest, out))
                rec = {"name": name, "claims": res.get("claims", []), "figures": figs,
                       "seconds": time.perf_counter() - t0, "quick": args.quick, "run_key": run_key,
                       "doc": (mod.__doc__ or "").strip()}
                io.save_json(done, rec)
        sections.append(rec)
        prog.update(1, name)
    claims = [dict(c, experiment=s["name"]) for s in sections for c in s.get("claims", [])]
    n_agree = sum(1 for c in claims if c["agrees"] is True)
    n_disagree = sum(1 for c in claims if c["agrees"] is False)
    report = os.path.join(out, "report.md")
    with io.atomic_write(report, "w") as f:
        f.write(_markdown(sections, args, n_agree, n_disagree))
    result = {
        "report": report,
        "experiments": [s["name"] for s in sections],
        "claims": claims,
        "agree": n_agree,
        "disagree": n_disagree,
        "figures": [os.path.join(out, p) for s in sections for p in s.get("figures", [])],
        "quick": args.quick,
        "run_key": run_key,
        "provenance": _prov(C.run_config(args, command=NAME, **run_key)),
    }
    io.save_json(os.path.join(out, "report.json"), result)
    table = C.format_table(
        ["experiment", "claim", "theory", "measured", "se", "agrees"],
        [[c["experiment"], c["claim"][:60], "-" if c["theory"] is None else c["theory"], c["measured"],
          "-" if c["se"] is None else c["se"], {True: "yes", False: "NO", None: "-"}[c["agrees"]]] for c in claims],
        title=f"phasejax reproduce{' --quick' if args.quick else ''}: {n_agree} claims agree, {n_disagree} do not",
    )
    return result, table + f"\nreport: {report}"


def _fmt(x, digits=6):
    if x is None:
        return "–"
    try:
        return f"{float(x):.{digits}g}"
    except (TypeError, ValueError):
        return str(x)


def _markdown(sections, args, n_agree, n_disagree):
    import jax

    lines = [
        "# phasejax: reproduction report",
        "",
        f"Mode: {'quick (CI sizes: agreement is checked at small n and few seeds)' if args.quick else 'full'}; "
        f"backend {jax.default_backend()}, dtype {'float64' if jax.config.jax_enable_x64 else 'float32'}, "
        f"seed {args.seed}.",
        "",
        "Each claim compares a theory value (docs/theory.md) with a measurement and its standard error; *agrees* means "
        "|measured - theory| <= k se + tol, with k and any stated tolerance in the table.",
        "",
        f"**{n_agree} claims agree, {n_disagree} do not.**",
        "",
        "| experiment | claim | theory | measured | se | k, tol | agrees |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in sections:
        for c in s.get("claims", []):
            ag = {True: "yes", False: "**no**", None: "–"}[c["agrees"]]
            lines.append(f"| {s['name']} | {c['claim']} | {_fmt(c['theory'])} | {_fmt(c['measured'])} | "
                         f"{_fmt(c['se'], 3)} | {c['k_sigma']:g}, {_fmt(c['tol'], 3)} | {ag} |")
    for s in sections:
        lines += ["", f"## {s['name']}", ""]
        if s.get("error"):
            lines.append(f"_{s['error']}_")
            continue
        doc = s.get("doc", "")
        if doc:
            lines += [doc, ""]
        if "seconds" in s:
            lines.append(f"Run time: {s['seconds']:.1f} s.")
        for c in s.get("claims", []):
            if c.get("note"):
                lines.append(f"- {c['claim']}: {c['note']}")
        for fpath in s.get("figures", []):
            lines += ["", f"![{os.path.basename(fpath)}]({fpath})"]
    lines.append("")
    lines.append("Provenance: " + json.dumps({k: v for k, v in _prov().items() if k != "config"}))
    return "\n".join(lines) + "\n"


def _prov(config=None):
    from ..runtime.io import provenance

    return provenance(config)
