"""``phasejax schedules``: practice temperature schedules through the phase diagram of a key law.

With ``--config path/to/config.json`` it reports instead the schedule a model deploys
(:func:`phasejax.schedules.from_config`): beta(n) per layer type, and in the JSON, per component and at
each n, the ``logit_factor`` and the config keys each number came from.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from .._checks import InputError
from ..plots import phase_diagram_figure
from . import _common as C

NAME = "schedules"
HELP = ("temperature schedules used in practice (constant, Qwen logn, YaRN, SSMax, Llama-4, critical) "
        "on the phase diagram of a key law: lambda/lambda*, E[max weight], effective keys, where each leaves "
        "the critical window; with --config, the schedule a model's config.json deploys, per layer type")

DEFAULT_CONFIG_NS = (4096, 32768, 131072)

# largest |score| accepted by --scores: the tail fit squares and sums them in float64
MAX_ABS_SCORE = 1e100


def _beta0(text: str):
    if text in ("critical", "sqrt-d"):
        return text
    try:
        return C.positive_real(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, 'critical' or 'sqrt-d', got {text!r}") from None


def _ns(text: str) -> list[int]:
    parts = [t.strip() for t in text.split(",") if t.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated context lengths >= 1, got {text!r}")
    return [C.count(t) for t in parts]


def add_arguments(p):
    g = p.add_argument_group("deployed schedule (--config: read a model's config.json instead of the phase diagram)")
    g.add_argument("--config", default=None, metavar="PATH",
                   help="config.json (or a folder holding one): report beta(n) per layer type as deployed")
    g.add_argument("--engine", default="hf", help="with --config: hf (transformers) or vllm (default hf)")
    g.add_argument("--n", dest="config_n", type=_ns, default=list(DEFAULT_CONFIG_NS), metavar="N1,N2,...",
                   help="with --config: n = pos + 1 to report (default 4096,32768,131072)")
    g.add_argument("--seq-len", type=C.count, default=None,
                   help="with --config: whole sequence length for length-dependent YaRN (default n)")
    g.add_argument("--max-model-len", type=C.count, default=None,
                   help="with --config, engine vllm: max_model_len (picks LongRoPE's long or short factors)")
    g = p.add_argument_group("key law (one of: --d; --alpha [--C]; --keys with --query; --scores)")
    g.add_argument("--d", type=int, default=None, help="uniform keys on S^(d-1) (default 3 if nothing else is given)")
    g.add_argument("--alpha", type=C.positive_real, default=None, help="local exponent alpha of the gap law")
    g.add_argument("--C", dest="C", type=C.positive_real, default=None,
                   help="P(u <= s) ~ C s^(alpha/2) (default: the PowerLawCap value on S^2, or S^(d-1) with --d)")
    g.add_argument("--keys", default=None, help="empirical keys (.npy, shape (N, d)); alpha, C by Hill estimate")
    g.add_argument("--query", default=None, help="query for --keys (.npy, shape (d,))")
    g.add_argument("--scores", default=None, help="a row of scores (.npy, shape (N,)); alpha, C by a GPD tail fit")
    g = p.add_argument_group("schedules")
    g.add_argument("--beta0", type=_beta0, default=None,
                   help="the head's beta at its training length (beta = s|Q||K| on unit cosines): a number, "
                   "'critical' (default: lambda* L^(2/alpha), a head at the peak at its training length) or "
                   "'sqrt-d' (a standard 1/sqrt(d) head with unit-variance q, k components; with --config "
                   "sqrt(head_dim)); with --config the default is none (logit factors only)")
    g.add_argument("--train-length", type=C.count, default=4096, help="training context length L (default 4096)")
    g.add_argument("--schedules", default=",".join(_names()),
                   help=f"comma-separated subset of {','.join(_names())} (default all)")
    g.add_argument("--ssmax-s", type=C.positive_real, default=None,
                   help="SSMax s (default 1/log L, so beta(L) = beta0)")
    g.add_argument("--llama4-floor-scale", type=C.positive_real, default=8192.0, help="Llama-4 floor_scale (8192)")
    g.add_argument("--llama4-attn-scale", type=C.nonneg_real, default=0.1, help="Llama-4 attn_scale (0.1)")
    g.add_argument("--yarn-factor", type=C.positive_real, default=None,
                   help="static YaRN factor s (default: dynamic, s = max(1, n/L))")
    g.add_argument("--critical-lambda", type=C.positive_real, default=None,
                   help="lambda of the critical schedule lambda n^(2/alpha) (default lambda*)")
    g = p.add_argument_group("context lengths")
    g.add_argument("--n-min", type=C.count, default=1000, help="smallest n (default 1e3)")
    g.add_argument("--n-max", type=C.count, default=10_000_000, help="largest n (default 1e7)")
    C.add_output_arguments(p)


def _names():
    from ..schedules import SCHEDULE_NAMES

    return SCHEDULE_NAMES


def _constants(args):
    from ..laws.empirical import load_npy
    from ..phase import law_constants

    sources = [args.keys is not None, args.scores is not None, args.alpha is not None]
    if sum(sources) > 1:
        raise InputError("give one key law: --d, --alpha [--C], --keys with --query, or --scores (got several)")
    if args.query is not None and args.keys is None:
        raise InputError("--query needs --keys")
    if args.C is not None and args.alpha is None:
        raise InputError("--C needs --alpha (the constant of P(u <= s) ~ C s^(alpha/2))")
    if args.keys is not None:
        if args.query is None:
            raise InputError("--keys needs --query (the gaps are measured from a query)")
        return law_constants(keys=load_npy(args.keys, "--keys"), query=load_npy(args.query, "--query")), None
    if args.scores is not None:
        return law_constants(scores=_scores(load_npy(args.scores, "--scores"))), None
    if args.alpha is not None:
        return law_constants(alpha=args.alpha, C=args.C, d=args.d), None
    from ..laws.sphere import UniformSphere

    d = 3 if args.d is None else args.d
    if d < 2:
        raise InputError(f"--d must be an integer >= 2, got {d}")
    return law_constants(d=d), UniformSphere(d)


def _scores(arr):
    """One row of scores, finite and of a size whose squares are finite."""
    arr = np.asarray(arr)
    if arr.ndim != 1:
        raise InputError(f"--scores must be one row of scores, shape (N,); got an array of shape {arr.shape} "
                         "(pass one query's row, e.g. scores[i])")
    if arr.dtype.kind not in "iuf":
        raise InputError(f"--scores must hold real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"--scores must be finite, got {int(np.sum(~np.isfinite(arr)))} non-finite values")
    big = float(np.max(np.abs(arr))) if arr.size else 0.0
    if big > MAX_ABS_SCORE:
        raise InputError(f"--scores values must be at most {MAX_ABS_SCORE:g} in magnitude (the tail fit squares "
                         f"them in float64), got max |score| = {big:.4g}; rescale the scores")
    return arr


def run(args):
    if args.config is not None:
        return _run_config(args)
    for flag, v in (("--engine", args.engine != "hf"), ("--n", args.config_n != list(DEFAULT_CONFIG_NS)),
                    ("--seq-len", args.seq_len is not None), ("--max-model-len", args.max_model_len is not None)):
        if v:
            raise InputError(f"{flag} applies with --config only (the deployed schedule of a config.json)")
    t0 = time.perf_counter()
    beta0_rule = "critical" if args.beta0 is None else args.beta0
    if args.n_max <= args.n_min:
        raise InputError(f"--n-max ({args.n_max:g}) must be larger than --n-min ({args.n_min:g})")
    if args.train_length < 2:
        raise InputError(f"--train-length must be >= 2 (it is the base of log_L), got {args.train_length}")
    names = [s.strip() for s in args.schedules.split(",") if s.strip()]
    for s in names:
        C.check_choice("--schedules", s, _names())
    if not names:
        raise InputError(f"--schedules must name at least one of {', '.join(_names())}")
    out = C.setup(args, NAME)
    from .. import phase

    consts, law = _constants(args)
    a, c = consts.alpha, consts.C
    progress = C.Progress(4, "schedules", quiet=args.quiet or args.json)
    win = phase.critical_window(a, c)
    progress.update(1, "critical window")
    L = float(args.train_length)  # noqa: N806
    if beta0_rule == "critical":
        beta0 = win.lambda_star * L ** (2.0 / a)
    elif beta0_rule == "sqrt-d":
        if law is None and args.d is None:
            raise InputError("--beta0 sqrt-d needs --d (the head dimension)")
        beta0 = math.sqrt(args.d if args.d is not None else law.d)
    else:
        beta0 = float(args.beta0)
    params = dict(beta0=beta0, train_length=L, ssmax_s=args.ssmax_s, llama4_floor_scale=args.llama4_floor_scale,
                  llama4_attn_scale=args.llama4_attn_scale, yarn_factor=args.yarn_factor,
                  critical_lambda=args.critical_lambda)
    lo_dec, hi_dec = math.ceil(math.log10(args.n_min) - 1e-9), math.floor(math.log10(args.n_max) + 1e-9)
    n_tab = np.array([10.0**k for k in range(lo_dec, hi_dec + 1)]) if hi_dec >= lo_dec else np.array([args.n_min])
    tab = phase.schedule_table(consts, n_tab, schedules=names, d=None if law is None else law.d, **params)
    big = [nm for nm, row in zip(names, np.asarray(tab["beta"], np.float64), strict=True)
           if not np.all(np.isfinite(row) & (np.abs(row) < 1e150))]
    if big:  # an overflowing schedule parameter: refuse it, naming the flags (never an inf in the table or plot)
        given = {k: v for k, v in params.items() if v is not None and k != "train_length"}
        raise InputError(f"schedule(s) {', '.join(big)} give beta beyond 1e150 or non-finite on n in "
                         f"[{args.n_min:g}, {args.n_max:g}] with {given}; lower --beta0 / --ssmax-s / "
                         "--llama4-attn-scale / --yarn-factor / --critical-lambda")
    progress.update(1, "table")
    leaves = [phase.leaves_window_at(consts, s, n_min=args.n_min, n_max=args.n_max, **params) for s in names]
    progress.update(1, "window exits")
    predicted = None
    if law is not None:
        predicted = np.asarray(phase.predict_beta_peak(n_tab, law), np.float64)
    result = {
        "key_law": consts.source,
        "alpha": a,
        "alpha_se": consts.alpha_se,
        "C": c,
        "lambda_star": win.lambda_star,
        "window": {"lo": win.lo, "hi": win.hi, "E_lo": win.E_lo, "E_hi": win.E_hi, "definition": win.definition},
        "beta0": beta0,
        "beta0_rule": beta0_rule if isinstance(beta0_rule, str) else "given",
        "train_length": L,
        "schedule": names,
        "n": n_tab,
        "beta": tab["beta"],
        "lambda_ratio": tab["lambda_ratio"],
        "E_max_weight": tab["E_max_weight"],
        "effective_keys": tab["effective_keys"],
        "inv_sum_w2": tab["inv_sum_w2"],
        "in_window": tab["in_window"],
        "poisson_valid": tab["poisson_valid"],
        "effective_keys_subcritical": tab.get("effective_keys_subcritical"),
        "leaves_window_at": [lv[0] for lv in leaves],
        "leaves_direction": [lv[1] for lv in leaves],
        "beta_peak": win.lambda_star * n_tab ** (2.0 / a),
        "beta_peak_predicted": predicted,
        "conventions": {s: _applied(s) for s in names},
        "notes": "E_max_weight and effective keys are Poisson-limit (n = inf) values at lambda = beta/n^(2/alpha); "
        "effective_keys = exp(E entropy); null where not valid at this n (exp(E H) > n: deep subcritical). "
        "effective_keys_subcritical = Kish n/R(beta) at fixed beta (docs/theory.md §b, uniform keys). On the sphere "
        "the "
        "Poisson limit needs log n >> (d-1)/2; beta_peak_predicted is the tail-hazard predictor, which follows the "
        "finite-n peak.",
    }
    result["files"] = _write(out, consts, win, tab, names, leaves, params, args, result)
    progress.update(1, "figure")
    result["elapsed_s"] = time.perf_counter() - t0
    return result, _table(result)


def _applied(name):
    from ..schedules import SCHEDULES

    return SCHEDULES[name].applied_to


def _write(out, consts, win, tab, names, leaves, params, args, result):
    import xarray as xr

    from .. import phase
    from ..phase import schedule_betas as schedule_betas
    from ..runtime import io

    ds = xr.Dataset(
        {k: (("schedule", "n"), np.asarray(tab[k], np.float64))
         for k in ("beta", "lambda_ratio", "E_max_weight", "effective_keys", "inv_sum_w2")},
        coords={"schedule": names, "n": tab["n"]},
        attrs={"alpha": consts.alpha, "C": consts.C, "lambda_star": win.lambda_star, "window_lo": win.lo,
               "window_hi": win.hi, "beta0": params["beta0"], "train_length": params["train_length"],
               "provenance": io.provenance({k: v for k, v in vars(args).items() if not k.startswith("_")})},
    )
    files = {"results": io.save_dataset(os.path.join(out, "schedules.nc"), ds)}
    n_grid = np.geomspace(args.n_min, args.n_max, 160)
    p2 = dict(params, alpha=consts.alpha)
    if p2.get("critical_lambda") is None:
        p2["critical_lambda"] = win.lambda_star
    curves = {s: schedule_betas(s, n_grid, p2) for s in names}
    bp = win.lambda_star * n_grid ** (2.0 / consts.alpha)
    allb = np.concatenate([*curves.values(), bp * win.lo, bp * win.hi])
    b_grid = np.geomspace(allb.min() / 4, allb.max() * 4, 160)
    pd = phase.phase_diagram(consts, n_grid, b_grid)
    marks = {}
    for s, (nl, _) in zip(names, leaves, strict=True):
        if nl is not None:
            marks[s] = (nl, float(schedule_betas(s, np.array([nl]), p2)[0]))
    extra = {}
    if result.get("beta_peak_predicted") is not None:
        extra["tail-hazard predictor (finite n)"] = (result["n"], result["beta_peak_predicted"])
    files["figure"] = phase_diagram_figure(pd, os.path.join(out, "phase_diagram.png"), schedules=curves,
                                               leaves=marks, extra=extra)
    files["json"] = os.path.join(out, "schedules.json")
    io.save_json(files["json"], {**result, "files": files, "provenance": io.provenance(C.run_config(args))})
    return files


def _table(r):
    rows = []
    for i, s in enumerate(r["schedule"]):
        for j, n in enumerate(r["n"]):
            rows.append([s if j == 0 else "", f"{n:.0e}", r["beta"][i][j], r["lambda_ratio"][i][j],
                         r["E_max_weight"][i][j], r["effective_keys"][i][j], r["inv_sum_w2"][i][j],
                         "yes" if r["in_window"][i][j] else "no"]
                        + ([r["effective_keys_subcritical"][i][j]] if r.get("effective_keys_subcritical") is not None
                           else []))
    w = r["window"]
    head = (f"{r['key_law']}: alpha={r['alpha']:g}, C={r['C']:.5g}, lambda*={r['lambda_star']:.5g}; "
            f"window lambda/lambda* in [{w['lo']:.3f}, {w['hi']:.3f}] "
            f"(E[max weight] {w['E_lo']:.3f}..{w['E_hi']:.3f}); "
            f"beta0={r['beta0']:.5g} ({r['beta0_rule']}), train length {r['train_length']:g}")
    table = C.format_table(["schedule", "n", "beta", "lambda/lambda*", "E[max w]", "exp(E H)", "1/E sum w2",
                            "in window"] + (["n/R (Kish, fixed beta)"] if r.get("effective_keys_subcritical")
                                            is not None else []), rows, title=head)
    lines = [table, ""]
    for s, nl, dr in zip(r["schedule"], r["leaves_window_at"], r["leaves_direction"], strict=True):
        where = f"leaves the window at n = {nl:.4g} ({dr})" if nl is not None else "does not leave the window in range"
        lines.append(f"  {s:10s} [{r['conventions'][s]}] {where}")
    if r.get("beta_peak_predicted") is not None:
        lines.append("  tail-hazard predictor beta_peak(n): " + ", ".join(
            f"{n:.0e}: {b:.5g}" for n, b in zip(r["n"], r["beta_peak_predicted"], strict=True)))
    lines.append(f"elapsed {r['elapsed_s']:.1f} s" if "elapsed_s" in r else "")
    lines.extend(f"{k}: {v}" for k, v in r["files"].items())
    return "\n".join(lines)


# =========================================================================== --config: the deployed schedule


def _run_config(args):
    from .. import schedules as S
    from ..runtime import io

    t0 = time.perf_counter()
    given = [f for f, v in (("--d", args.d), ("--alpha", args.alpha), ("--C", args.C), ("--keys", args.keys),
                            ("--query", args.query), ("--scores", args.scores)) if v is not None]
    if given:
        raise InputError(f"--config reports the schedule a config.json deploys; it takes no key law (got "
                         f"{', '.join(given)})")
    if args.beta0 == "critical":
        raise InputError("--beta0 critical needs a key law (the phase diagram); with --config give a number > 0 "
                         "or sqrt-d (sqrt(head_dim))")
    engine = C.check_choice("--engine", args.engine, S.ENGINES)
    sched = S.from_config(args.config, engine=engine, max_model_len=args.max_model_len)
    beta0 = math.sqrt(sched.head_dim) if args.beta0 == "sqrt-d" else args.beta0
    ns = np.asarray(args.config_n, np.float64)
    if args.seq_len is not None and args.seq_len < ns.max():
        raise InputError(f"--seq-len must be >= every --n (the sequence holds the query), got {args.seq_len} < "
                         f"{ns.max():g}")
    out = C.setup(args, NAME)
    report = sched.report(ns, seq_len=args.seq_len, beta0=beta0)
    for lt, d in zip(sched.layer_types, report["layer_types"], strict=True):
        if lt.transforms:  # docs/theory.md §j: the capped head acts as an uncapped one at beta_eff
            cap = lt.transforms[0].value
            d["soft_cap"] = {
                "cap": cap, "beta_at_max": S.SOFT_CAP_Y_STAR * cap,
                "beta_eff_max": float(S.soft_cap_effective_beta(S.SOFT_CAP_Y_STAR * cap, cap=cap)),
                "beta_eff": None if d["beta"] is None else
                [float(S.soft_cap_effective_beta(b, cap=cap)) for b in d["beta"]],
                "definition": "beta_eff = beta sech^2(beta / cap), the slope of the capped logit at the query; "
                "it never exceeds beta_eff_max = 0.447743 cap (docs/theory.md §j)",
            }
    result = {"command": "schedules --config", **report, "beta0_rule": None if args.beta0 is None else
              ("sqrt(head_dim)" if args.beta0 == "sqrt-d" else "given")}
    path = os.path.join(out, "schedules_config.json")
    result["files"] = {"json": path}
    io.save_json(path, {**result, "provenance": io.provenance(C.run_config(args))})
    result["elapsed_s"] = time.perf_counter() - t0
    return result, _config_table(result)


def _config_table(r) -> str:
    head = (f"{r['model_type']} ({r['engine']}), config {r['config']}: head_dim {r['head_dim']}, base softmax scale "
            f"{r['base_softmax_scale']:.6g} = {r['base_softmax_scale_from']}; logit factor relative to it; "
            "n = pos + 1")
    lines = [head]
    for lt in r["layer_types"]:
        comps = [c for c in lt["components"] if not c["nonlinear"]]
        headers = ["n", "keys seen", *[c["name"] for c in comps], "total logit factor", "range", "beta"]
        rows = []
        for j, n in enumerate(r["n"]):
            lo, hi = lt["total_logit_factor_range"][j]
            rng = "-" if lo is None or hi is None or lo == hi else f"[{lo:.6g}, {hi:.6g}]"
            rows.append([f"{n:.0f}", f"{lt['keys_seen'][j]:.0f}", *[_cell(c["logit_factor"][j]) for c in comps],
                         _cell(lt["total_logit_factor"][j]), rng,
                         "-" if lt["beta"] is None else _cell(lt["beta"][j])])
        title = (f"\nlayer type {lt['name']} ({lt['count']} layers"
                 + (f", {lt['window_kind']} window {lt['window']}" if lt["window"] else "") + "); beta0: "
                 + (f"{lt['beta0']:.6g} ({lt['beta0_from']})" if lt["beta0"] is not None else lt["beta0_from"]))
        lines.append(C.format_table(headers, rows, title=title))
        for c in lt["components"]:
            keys = ", ".join(f"{k}={v}" for k, v in c["config_keys"].items()) or "-"
            what = c["transform"] if c["nonlinear"] else c["formula"]
            lines.append(f"  {c['name']}: {what} [on {c['applied_to']}] from {keys}; {c['source']}")
        if lt.get("note"):
            lines.append(f"  note: {lt['note']}")
        if lt.get("soft_cap"):
            sc = lt["soft_cap"]
            eff = "" if sc["beta_eff"] is None else "; beta_eff at these n: " + ", ".join(map(_cell, sc["beta_eff"]))
            lines.append(f"  soft cap {sc['cap']:g}: beta_eff = beta sech^2(beta / cap) <= {sc['beta_eff_max']:.6g} "
                         f"(at beta = {sc['beta_at_max']:.6g}){eff}")
    lines.extend(f"note: {s}" for s in r["notes"])
    lines.append(f"json: {r['files']['json']}")
    return "\n".join(lines)


def _cell(v) -> str:
    return "null" if v is None else f"{float(v):.7g}"
