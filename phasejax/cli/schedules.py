"""``phasejax schedules``: practice temperature schedules through the phase diagram of a key law."""

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
        "the critical window")


def _beta0(text: str):
    if text in ("critical", "sqrt-d"):
        return text
    try:
        return C.positive_real(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, 'critical' or 'sqrt-d', got {text!r}") from None


def add_arguments(p):
    g = p.add_argument_group("key law (one of: --d; --alpha [--C]; --keys with --query; --scores)")
    g.add_argument("--d", type=int, default=None, help="uniform keys on S^(d-1) (default 3 if nothing else is given)")
    g.add_argument("--alpha", type=C.positive_real, default=None, help="local exponent alpha of the gap law")
    g.add_argument("--C", dest="C", type=C.positive_real, default=None,
                   help="P(u <= s) ~ C s^(alpha/2) (default: the PowerLawCap value on S^2, or S^(d-1) with --d)")
    g.add_argument("--keys", default=None, help="empirical keys (.npy, shape (N, d)); alpha, C by Hill estimate")
    g.add_argument("--query", default=None, help="query for --keys (.npy, shape (d,))")
    g.add_argument("--scores", default=None, help="a row of scores (.npy, shape (N,)); alpha, C by a GPD tail fit")
    g = p.add_argument_group("schedules")
    g.add_argument("--beta0", type=_beta0, default="critical",
                   help="the head's beta at its training length (beta = s|Q||K| on unit cosines): a number, "
                   "'critical' (default: lambda* L^(2/alpha), a head at the peak at its training length) or "
                   "'sqrt-d' (a standard 1/sqrt(d) head with unit-variance q, k components)")
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
        return law_constants(scores=load_npy(args.scores, "--scores")), None
    if args.alpha is not None:
        return law_constants(alpha=args.alpha, C=args.C, d=args.d), None
    from ..laws.sphere import UniformSphere

    d = 3 if args.d is None else args.d
    if d < 2:
        raise InputError(f"--d must be an integer >= 2, got {d}")
    return law_constants(d=d), UniformSphere(d)


def run(args):
    t0 = time.perf_counter()
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
    if args.beta0 == "critical":
        beta0 = win.lambda_star * L ** (2.0 / a)
    elif args.beta0 == "sqrt-d":
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
        "beta0_rule": args.beta0 if isinstance(args.beta0, str) else "given",
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
    io.save_json(files["json"], {**result, "files": files})
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
