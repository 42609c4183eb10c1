"""Experiment: practice schedules on the phase diagram, and the accuracy of the tail-hazard predictor.

Claim tested (docs/theory.md §h, an empirical finding, not a theorem):
    beta_peak(n) ~ (kappa*(h)/h) f(u*)/F(u*),  F(u*) = 1/n,
against the measured susceptibility peak of E[max weight] (``phase.measured_peak``: simulated
contexts -> ``gap_curve`` -> ``find_peak``, seed-mean with delta-method se) for the uniform sphere
at d = 3, 16, 64, Gaussian scores N(0, 1) and PowerLawCap(3, alpha). Beside it: the Poisson-limit
law lambda* n^{2/alpha}, the random-energy law sqrt(2 log n)/sigma (sigma = 1/sqrt(d) on the sphere),
the predictor with the local exponent h = u* f/F, and the predictor from one empirical row of
scores per context (median over 8 rows; sphere and PowerLawCap rows are cosines with the known
endpoint 1, fitted by Hill; Gaussian rows by a GPD tail fit).

Outputs under --out: predictor.json, predictor.txt (the table), phase_d3.png, phase_d64.png
(schedule curves, window exits, measured peaks). ``main(argv=None)``; small defaults (about a
minute on 2 cores); ``--full`` for the report sizes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from phasejax.plots import phase_diagram_figure


def _cases(full: bool, quick: bool = False):
    from phasejax.laws import GaussianScores, PowerLawCap, UniformSphere

    if quick:
        return [
            ("sphere d=3", UniformSphere(3), [1000], 256),
            ("Gaussian N(0,1)", GaussianScores(1.0), [1000], 128),
        ]
    if full:
        return [
            ("sphere d=3", UniformSphere(3), [1000, 10000], 2048),
            ("sphere d=16", UniformSphere(16), [1000, 10000], 256),
            ("sphere d=64", UniformSphere(64), [1000, 10000], 256),
            ("Gaussian N(0,1)", GaussianScores(1.0), [1000, 10000, 100000], 256),
            ("PowerLawCap d=3 alpha=4", PowerLawCap(3, 4.0), [1000, 10000], 1024),
            ("PowerLawCap d=16 alpha=4", PowerLawCap(16, 4.0), [10000], 512),
        ]
    return [
        ("sphere d=3", UniformSphere(3), [1000], 512),
        ("sphere d=16", UniformSphere(16), [1000], 128),
        ("sphere d=64", UniformSphere(64), [1000], 128),
        ("Gaussian N(0,1)", GaussianScores(1.0), [1000], 256),
        ("PowerLawCap d=3 alpha=4", PowerLawCap(3, 4.0), [1000], 512),
    ]


def _empirical_rows(law, n, key, rows=8):
    """Predictor from single rows of scores (what a user has): median over ``rows`` contexts."""
    import jax

    from phasejax.estimate import predict_beta_peak_from_scores
    from phasejax.laws import GaussianScores

    preds = []
    for i in range(rows):
        k = jax.random.fold_in(key, 10_000 + i)
        if isinstance(law, GaussianScores):
            s = -np.asarray(law.sample_gaps(k, n), np.float64)  # scores: energies u = -s
        else:
            s = 1.0 - np.asarray(law.sample_gaps(k, n), np.float64)  # cosines: endpoint 1 is known
        preds.append(predict_beta_peak_from_scores(s, endpoint=None if isinstance(law, GaussianScores) else 1.0)[0])
    return float(np.median(preds))


def predictor_accuracy(full: bool = False, seed: int = 0, progress=True, quick: bool = False) -> list[dict]:
    import jax

    from phasejax.laws import GaussianScores
    from phasejax.phase import measured_peak
    from phasejax.theory import lambda_star, predict_beta_peak

    rows = []
    for name, law, ns, seeds in _cases(full, quick):
        for n in ns:
            t0 = time.perf_counter()
            key = jax.random.fold_in(jax.random.key(seed), n)
            pred = float(predict_beta_peak(n, law))
            pred_loc = float(predict_beta_peak(n, law, h="local"))
            grid = math.log(pred) + np.linspace(-1.0, 1.0, 15)
            pk = measured_peak(law, n, key=key, seeds=seeds, grid=grid)
            meas, se = float(pk.beta), float(pk.beta_se)
            if isinstance(law, GaussianScores):
                poisson, sigma = math.nan, law.sigma
            else:
                poisson = lambda_star(alpha=law.alpha, C=law.C).lambda_star * n ** (2 / law.alpha)
                sigma = 1 / math.sqrt(law.d) if type(law).__name__ == "UniformSphere" else math.nan
            rem = math.sqrt(2 * math.log(n)) / sigma if math.isfinite(sigma) else math.nan
            emp = _empirical_rows(law, n, key)
            row = {
                "case": name, "n": n, "seeds": seeds, "measured": meas, "measured_se": se,
                "predictor": pred, "predictor_err": pred / meas - 1, "predictor_z": (pred - meas) / se,
                "predictor_local_h": pred_loc, "predictor_local_h_err": pred_loc / meas - 1,
                "poisson": poisson, "poisson_err": poisson / meas - 1,
                "rem": rem, "rem_err": rem / meas - 1,
                "empirical_rows": emp, "empirical_rows_err": emp / meas - 1,
                "converged": bool(pk.converged), "on_edge": bool(pk.on_edge),
                "seconds": time.perf_counter() - t0,
            }
            rows.append(row)
            if progress:
                print(f"  {name:26s} n={n:<7d} measured {meas:10.4g} +- {se:.2g}  predictor {pred:10.4g} "
                      f"({row['predictor_err']:+.1%}, z={row['predictor_z']:+.1f})  [{row['seconds']:.0f} s]",
                      file=sys.stderr, flush=True)
    return rows


def format_rows(rows) -> str:
    from phasejax.cli import format_table

    def pct(x):
        return "nan" if not math.isfinite(x) else f"{x:+.1%}"

    body = [[r["case"], r["n"], r["seeds"], f"{r['measured']:.4g} +- {r['measured_se']:.2g}",
             f"{r['predictor']:.4g}", pct(r["predictor_err"]), f"{r['predictor_z']:+.1f}",
             pct(r["predictor_local_h_err"]), pct(r["poisson_err"]), pct(r["rem_err"]),
             pct(r["empirical_rows_err"])] for r in rows]
    return format_table(
        ["case", "n", "seeds", "measured beta_peak", "predictor", "err", "z", "err(h local)", "err(Poisson)",
         "err(REM)", "err(one row)"], body,
        title="Tail-hazard predictor (kappa*(h)/h) f/F at F = 1/n vs the measured susceptibility peak",
    )


def phase_figures(out: str, *, n_max: float = 1e7, measured=None) -> dict:
    from phasejax import phase
    from phasejax.phase import schedule_betas as _schedule_betas
    from phasejax.schedules import SCHEDULE_NAMES

    files = {}
    for d in (3, 64):
        consts = phase.law_constants(d=d)
        win = phase.critical_window(consts.alpha, consts.C)
        L = 4096.0  # noqa: N806
        params = dict(beta0=win.lambda_star * L ** (2 / consts.alpha), train_length=L, alpha=consts.alpha,
                      critical_lambda=win.lambda_star)
        n = np.geomspace(1e3, n_max, 120)
        curves = {s: _schedule_betas(s, n, params) for s in SCHEDULE_NAMES}
        bp = win.lambda_star * n ** (2 / consts.alpha)
        allb = np.concatenate([*curves.values(), bp * win.lo, bp * win.hi])
        pd = phase.phase_diagram(consts, n, np.geomspace(allb.min() / 4, allb.max() * 4, 120))
        leaves = {}
        for s in SCHEDULE_NAMES:
            nl, _ = phase.leaves_window_at(consts, s, n_min=1e3, n_max=n_max, **params)
            if nl is not None:
                leaves[s] = (nl, float(_schedule_betas(s, np.array([nl]), params)[0]))
        from phasejax.laws import UniformSphere

        nn = np.array([1e3, 1e4, 1e5, 1e6, 1e7])
        extra = {"tail-hazard predictor": (nn, phase.predict_beta_peak(nn, UniformSphere(d)))}
        if measured:
            pts = [(r["n"], r["measured"]) for r in measured if r["case"] == f"sphere d={d}"]
            if pts:
                extra["measured peak (simulated)"] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
        files[f"phase_d{d}"] = phase_diagram_figure(pd, os.path.join(out, f"phase_d{d}.png"), schedules=curves,
                                                        leaves=leaves, extra=extra)
    return files


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join("runs", "schedules_phase"))
    p.add_argument("--full", action="store_true",
                   help="report sizes (n up to 1e5, up to 2048 seeds; ~15 min on 2 busy cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--quick", action="store_true", help="two cases at n = 1e3 (CI)")
    args = p.parse_args(argv)
    from phasejax.runtime import io

    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    rows = predictor_accuracy(args.full, args.seed, quick=args.quick)
    table = format_rows(rows)
    files = {"table": os.path.join(args.out, "predictor.txt"), "json": os.path.join(args.out, "predictor.json")}
    with io.atomic_write(files["table"], "w") as f:
        f.write(table + "\n")
    io.save_json(files["json"], {"rows": rows, "files": files})  # before the figures: keep the numbers
    if not args.no_figures:
        files.update(phase_figures(args.out, measured=rows))
    io.save_json(files["json"], {"rows": rows, "files": files, "elapsed_s": time.perf_counter() - t0,
                                 "provenance": io.provenance(vars(args))})
    print(table)
    from .claims import claim

    claims = [claim(f"{r['case']} n={r['n']:g}: tail-hazard predictor vs measured beta_peak", r["predictor"],
                    r["measured"], r["measured_se"], k=3, tol=0.05 * r["predictor"],
                    note="empirical claim (docs/theory.md §h): agreement within 3 se + 5%") for r in rows]
    figures = [v for k, v in files.items() if k.startswith("phase_")]
    return {"rows": rows, "files": files, "claims": claims, "figures": figures}


if __name__ == "__main__":  # pragma: no cover
    main()
