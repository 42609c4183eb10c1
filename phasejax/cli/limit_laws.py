"""``phasejax limit-laws``: finite-n simulation against the limit law of each regime, with distances."""

from __future__ import annotations

import math
import os

import numpy as np

from .._checks import InputError
from .._random import key_from_seed
from ..plots import critical_figure, entropy_figure, subcritical_figure, supercritical_figure
from . import _common as C

NAME = "limit-laws"
HELP = "simulate each regime at growing n and measure the distance to its limit law (sub, critical, super)"


def add_arguments(p):
    g = p.add_argument_group("regimes")
    g.add_argument("--d", type=int, default=3, help="dimension, keys uniform on S^(d-1) (default 3)")
    g.add_argument("--beta", type=C.positive_real, default=5.0, help="subcritical: fixed beta (default 5)")
    g.add_argument("--lambda", dest="lam", type=C.positive_real, default=1.0,
                   help="critical: beta = lambda n^(2/(d-1)) (default 1)")
    g.add_argument("--n-max", type=C.count, default=10_000, help="largest n of the series (default 1e4)")
    g.add_argument("--seeds", type=C.positive_int, default=2000, help="contexts per n (default 2000)")
    g.add_argument("--entropy-n", type=C.count, default=1_000_000,
                   help="n of the entropy-crossover curve (default 1e6)")
    C.add_output_arguments(p)
    from ._common import add_parallel_arguments

    add_parallel_arguments(p)


def run(args):
    from ..runtime.devices import is_writer

    parallel = C.start_from_args(args)
    dev = parallel["local_devices"]
    if args.d < 3:
        raise InputError(f"--d must be >= 3 for the three limit laws (the tail law needs h > 1/2), got {args.d}")
    if args.n_max < 100:
        raise InputError(f"--n-max must be >= 100, got {args.n_max}")
    if args.seeds < 50:
        raise InputError(f"--seeds must be >= 50 for the distribution tests, got {args.seeds}")
    if args.d > 1024:
        raise InputError(f"--d must be <= 1024, got {args.d}")
    if args.lam > 1e6:  # deep in the supercritical regime already (lambda* ~ 0.4 at d = 3); beta would overflow
        raise InputError(f"--lambda must be <= 1e6 (the critical window is lambda ~ lambda* = O(1)), got {args.lam:g}")
    beta_c = float(args.n_max) ** (2.0 / (args.d - 1))  # the critical scale n^(2/alpha) at the largest n
    if not args.beta < beta_c:
        raise InputError(f"--beta {args.beta:g} is not subcritical at --n-max {args.n_max}: the fixed-beta law needs "
                         f"beta < n^(2/(d-1)) = {beta_c:.4g}")
    from .. import limits

    limits.check_critical_lambda(args.d, args.lam)  # before any work
    limits.check_limit_laws_memory(args.d, args.lam, args.seeds)
    out = C.setup(args, "limit-laws")
    import jax

    key = key_from_seed(args.seed)
    decades = int(math.floor(math.log10(args.n_max)))
    n_sub = [10**k for k in range(2, decades + 1)]
    n_crit = [10**k for k in range(1, decades + 1)]
    prog = C.Progress(4, "limit-laws", quiet=args.quiet or args.json)
    sub = limits.subcritical_fluctuations(args.d, args.beta, n_sub, key=jax.random.fold_in(key, 1),
                                          seeds=max(50, args.seeds // 2), devices=dev)
    prog.update(1, "subcritical")
    crit = limits.critical_laws(args.d, args.lam, n_crit, key=jax.random.fold_in(key, 2), seeds=args.seeds,
                                ppp_seeds=10 * args.seeds, devices=dev)
    prog.update(1, "critical")
    sup = limits.supercritical_tail_check(args.d, [3.0, 10.0, 30.0, 100.0, 300.0, 1000.0], args.n_max,
                                          key=jax.random.fold_in(key, 3), seeds=2 * args.seeds, devices=dev)
    prog.update(1, "supercritical")
    crit_beta = args.entropy_n ** (2 / (args.d - 1))
    ent = limits.entropy_crossover(args.d, args.entropy_n, np.geomspace(1e-2, 30 * crit_beta, 40),
                                   key=jax.random.fold_in(key, 4), seeds=8, devices=dev)
    prog.update(1, "entropy")
    result = {
        "d": args.d,
        "subcritical": _strip(sub),
        "critical": _strip({k: v for k, v in crit.items() if not k.startswith("samples")}),
        "supercritical": _strip(sup),
        "entropy_crossover": _strip(ent),
        "parallel": parallel,
    }
    result["files"] = _write(out, result, crit, args) if is_writer() else {}
    return result, _table(result)


def _strip(d):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def _write(out, r, crit, args):
    from ..runtime import io

    files = {
        "figure_subcritical": subcritical_figure(os.path.join(out, "subcritical.png"), r["subcritical"]),
        "figure_critical": critical_figure(os.path.join(out, "critical.png"), r["critical"], crit),
        "figure_supercritical": supercritical_figure(os.path.join(out, "supercritical.png"), r["supercritical"]),
        "figure_entropy": entropy_figure(os.path.join(out, "entropy_crossover.png"), r["entropy_crossover"]),
    }
    files["json"] = io.save_json(os.path.join(out, "limit_laws.json"), {**r, "files": files,
                                 "provenance": io.provenance({k: v for k, v in vars(args).items()
                                                              if not k.startswith("_")})})
    return files







def _table(r):
    s, c, p, e = r["subcritical"], r["critical"], r["supercritical"], r["entropy_crossover"]
    t1 = C.format_table(
        ["n", "n Var_par", "theory", "n Var_perp", "theory", "KS vs N(0,1)", "p"],
        [[n, f"{a:.4f}+-{ae:.4f}", s["S_par"], f"{b:.4f}+-{be:.4f}", s["S_perp"], k, kp]
         for n, a, ae, b, be, k, kp in zip(s["n"], s["n_var_par"], s["n_var_par_se"], s["n_var_perp"],
                                            s["n_var_perp_se"], s["ks_normal"], s["ks_normal_p"], strict=True)],
        title=f"SUBCRITICAL d={s['d']} beta={s['beta']:g}: sqrt(n)(y - A q), A = {s['A']:.6f}",
    )
    cols = ["n", "E[W1] +- se", "KS W1", "KS H"] + [k.upper().replace("KS_", "KS ") for k in ("ks_w2", "ks_w3")
                                                   if k in c]
    rows = []
    for i, n in enumerate(c["n"]):
        row = [int(n), f"{c['E_max_weight'][i]:.4f}+-{c['E_max_weight_se'][i]:.4f}", c["ks_max_weight"][i],
               c["ks_entropy"][i]]
        row += [c[k][i] for k in ("ks_w2", "ks_w3") if k in c]
        rows.append(row)
    t2 = C.format_table(cols, rows, title=(
        f"CRITICAL d={c['d']} lambda={c['lambda']:g}: KS distance to the Poisson limit "
        f"(E[W1] limit = {c['E_max_weight_limit']:.5f}; 95% noise level {c['ks_noise']:.4f})"))
    t3 = C.format_table(
        ["lambda", "1-E[W1] +- se", "Poisson exact", "tail law", "measured/tail"],
        [[lam, f"{a:.3e}+-{ae:.1e}", pe, tl, ra] for lam, a, ae, pe, tl, ra in zip(
            p["lambda"], p["one_minus_E_max_weight"], p["one_minus_E_max_weight_se"], p["poisson_exact"],
            p["tail_law"], p["ratio_to_tail"], strict=True)],
        title=f"SUPERCRITICAL d={p['d']} n={p['n']:g}",
    )
    idx = np.linspace(0, len(e["beta"]) - 1, 10).round().astype(int)
    t4 = C.format_table(
        ["beta", "H +- se", "H (n=inf)", "dH/dlogb +- se", "slope (n=inf)"],
        [[e["beta"][i], f"{e['entropy'][i]:.4f}+-{e['entropy_se'][i]:.4f}", e["entropy_limit"][i],
          f"{e['slope'][i]:.4f}+-{e['slope_se'][i]:.4f}", e["slope_limit"][i]] for i in idx],
        title=f"ENTROPY d={e['d']} n={e['n']:g}: plateau slope -(d-1)/2 = {-(e['d'] - 1) / 2:g}",
    )
    files = "\n".join(f"{k}: {v}" for k, v in r["files"].items())
    return "\n\n".join([t1, t2, t3, t4, files])
