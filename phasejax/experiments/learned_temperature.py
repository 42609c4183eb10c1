"""Learned temperature: what beta does training find, and which regime is it in? (docs/theory.md §i)

For d in --d and n on a log grid, train an attention head's beta (phasejax.learn) on

* regression (values P_2(<k,e>) + N(0, 0.5^2) noise, target P_2(<q,e>)): the learned beta should sit at the
  exact finite-n MSE minimiser (quadrature), grow like n^(2/(d+3)), and have lambda = beta/n^(2/(d-1)) -> 0;
* retrieval (N(0,1) labels, target the nearest key's label): beta keeps growing with training and with n,
  lambda > lambda* (supercritical).

Writes ``phase_diagram.png`` (both tasks and both d on the (n, beta) plane with the critical line),
``mse_curves.png`` (exact finite-n MSE against beta, its minimiser and the large-n formula, with a Monte Carlo
check), and ``learned_temperature.json`` under --out, and prints the table.

Small defaults (d = 3 and 5, n = 100 and 1000) finish in about a minute on 2 cores; the full claim:

    python experiments/learned_temperature.py --n-max 1e5 --n-points 4 --steps 240 --runs 6 --batch 8 \
        --contexts 1 --out runs/learned-temperature
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from phasejax.plots import learn_figure, learned_mse_figure


def _parser():
    from phasejax import cli as C

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, nargs="+", default=[3, 5], help="dimensions (default 3 5)")
    p.add_argument("--n-min", type=C.count, default=100)
    p.add_argument("--n-max", type=C.count, default=1000)
    p.add_argument("--n-points", type=C.positive_int, default=2)
    p.add_argument("--steps", type=C.positive_int, default=160)
    p.add_argument("--runs", type=C.positive_int, default=8)
    p.add_argument("--batch", type=C.positive_int, default=16)
    p.add_argument("--contexts", type=C.positive_int, default=2)
    p.add_argument("--lr", type=C.positive_real, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mc-contexts", type=C.positive_int, default=200,
                   help="key sets for the Monte Carlo check of the exact MSE (default 200)")
    p.add_argument("--out", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--quick", action="store_true", help="d = 3, n = 100 and 300, short training (CI sizes)")
    return p


def _mse_curves(by_d, mc):
    """Per d, per n: the exact (quadrature) and large-n MSE against beta around the optimum, the minimiser, the
    learned beta +- se and the Monte Carlo point, for :func:`phasejax.plots.learned_mse_figure`."""
    from phasejax import learn as L

    curves = {}
    for d, res in sorted(by_d.items()):
        r = res["regression"]
        rows = []
        for i, n in enumerate(r["n"]):
            bo = r["beta_opt_theory"][i]
            grid = np.geomspace(bo / 4, bo * 4, 41)
            rows.append({
                "n": n, "beta_opt": bo, "grid": grid,
                "exact": np.array([L.regression_mse_exact(b, int(n), d) for b in grid]),
                "large_n": np.array([L.regression_mse_large_n(b, int(n), d) for b in grid]),
                "beta_learned": r["beta_learned"][i], "beta_learned_se": r["beta_learned_se"][i],
                "monte_carlo": mc.get((d, int(n))),
            })
        curves[d] = rows
    return curves


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.quick:
        args.d, args.n_max, args.steps, args.runs, args.batch, args.mc_contexts = [3], 300, 240, 4, 8, 60
    import jax

    from phasejax import cli as C
    from phasejax import learn as L
    from phasejax.cli import learn as cmd
    from phasejax.runtime import io

    ns_args = argparse.Namespace(d=3, task="both", n_min=args.n_min, n_max=args.n_max, n_points=args.n_points,
                                 steps=args.steps, batch=args.batch, contexts=args.contexts, runs=args.runs)
    for d in args.d:
        ns_args.d = d
        _, tasks, ns = cmd.validate(ns_args)
    out = args.out or os.path.join("runs", f"learned-temperature-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    by_d, mc, tables = {}, {}, []
    for i, d in enumerate(args.d):
        progress = C.Progress(args.steps * len(cmd.step_groups(ns, tasks)), f"d={d} steps", quiet=args.quiet)
        by_d[d] = cmd.scan(d, tasks, ns, key=jax.random.fold_in(jax.random.key(args.seed), i), steps=args.steps,
                           runs=args.runs, lr=args.lr, batch=args.batch, contexts=args.contexts, progress=progress)
        # Monte Carlo check of the exact MSE at its minimiser (smallest n: cheap)
        n0 = int(ns[0])
        bo = float(by_d[d]["regression"]["beta_opt_theory"][0])
        m, se, _, _ = L.regression_mse_mc([bo], n0, d, key=jax.random.key(args.seed + 100 + d),
                                          contexts=args.mc_contexts, queries=16)
        mc[(d, n0)] = (bo, float(m[0]), float(se[0]))
        tables.append(cmd.learn_table({"files": {}}, by_d[d]))
    files = {
        "phase_diagram": learn_figure(os.path.join(out, "phase_diagram.png"), by_d),
        "mse_curves": learned_mse_figure(os.path.join(out, "mse_curves.png"), _mse_curves(by_d, mc)),
    }
    summary = {
        str(d): {t: cmd.public_result(r) for t, r in res.items()} for d, res in by_d.items()
    }
    for (d, n0), (b, m, se) in mc.items():
        exact = L.regression_mse_exact(b, n0, d)
        summary[str(d)]["mc_check"] = {"n": n0, "beta": b, "mse_mc": m, "mse_mc_se": se, "mse_exact": exact,
                                       "z": (m - exact) / se}
    summary["seconds"] = time.perf_counter() - t0
    summary["config"] = vars(args)
    summary["provenance"] = io.provenance(vars(args))
    files["json"] = io.save_json(os.path.join(out, "learned_temperature.json"), summary)
    text = "\n\n".join(tables)
    for (d, n0), (b, m, se) in mc.items():
        exact = summary[str(d)]["mc_check"]["mse_exact"]
        text += (f"\nd={d} n={n0}: exact MSE at beta_opt={b:.5g}: {exact:.6g}; Monte Carlo {m:.6g} ± {se:.2g} "
                 f"(z = {(m - exact) / se:+.2f})")
    text += f"\n{summary['seconds']:.1f} s\n" + "\n".join(f"{k}: {v}" for k, v in files.items())
    print(text)
    from .claims import claim

    claims = []
    for d, res in by_d.items():
        reg = res.get("regression")
        if reg is not None:
            for n, bl, se, bo in zip(reg["n"], reg["beta_learned"], reg["beta_learned_se"], reg["beta_opt_theory"],
                                     strict=True):
                claims.append(claim(f"d={d} n={n:g}: learned beta (regression) vs exact MSE optimum", float(bo),
                                    float(bl), float(se), k=3))
        ret = res.get("retrieval")
        if ret is not None:
            for n, lam in zip(ret["n"], ret["lambda_final"], strict=True):
                claims.append(claim(f"d={d} n={n:g}: retrieval lambda_final/lambda* > 1 (supercritical)", None,
                                    float(lam) / float(ret["lambda_star"]), None,
                                    note="retrieval drives beta past the critical line"))
    for (d, n0), (_b, m, se) in mc.items():
        claims.append(claim(f"d={d} n={n0}: exact finite-n MSE at beta_opt vs Monte Carlo",
                            summary[str(d)]["mc_check"]["mse_exact"], m, se, k=3))
    summary["claims"] = claims
    summary["figures"] = [files["phase_diagram"], files["mse_curves"]]
    return summary


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
    sys.exit(0)
