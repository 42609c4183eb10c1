"""Claim: one subcritical attention step with identity values is a backward heat step (docs/theory.md §g):
the zonal mode l is amplified by the exact Funk-Hecke gain G_l, and (G_l - 1) beta -> l(l+d-2)."""

from __future__ import annotations

import argparse
import os

from .claims import add_seed_argument, claim, format_claims, out_dir, run_command


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=None)
    p.add_argument("--quick", action="store_true")
    add_seed_argument(p)
    a = p.parse_args(argv)
    out = out_dir(a.out, "heat_step")
    claims, figures, runs = [], [], {}
    size = ["--N", "4000", "--seeds", "3", "--no-self"] if a.quick else ["--N", "200000", "--seeds", "8", "--no-self"]
    dims = (3,) if a.quick else (3, 4)
    for d in dims:
        r, _ = run_command(["heat", "--d", str(d), "--l", "2", "--eps", "0.5", "--beta", "20", "50", "100", "200",
                            *size, "--out", os.path.join(out, f"d{d}"), "--quiet", "--seed", str(a.seed)])
        runs[d] = r
        figures.append(r["files"]["figure"] if "files" in r and "figure" in r["files"] else None)
        n = f"N={r['N']:.3g}"
        for j, b in enumerate(r["beta"]):
            # the must-show: N = infinity exact value against the measurement extrapolated N -> infinity
            claims.append(claim(f"d={d} l=2 beta={b:g}: G-1 {n} extrapolated vs N=inf",
                                r["G_exact"][j] - 1, r["G_extrapolated"][j] - 1, r["G_extrapolated_se"][j], k=3))
            claims.append(claim(f"d={d} l=2 beta={b:g}: G-1 {n} raw vs exact + O(1/N)",
                                r["G_exact_finite_N"][j] - 1, r["G_measured"][j] - 1, r["G_measured_se"][j], k=3,
                                note=f"raw vs N=inf: z = {r['z_exact'][j]:.2f}"))
        lim = 2 * (2 + d - 2)
        claims.append(claim(f"d={d}: (G-1) beta at beta={r['beta'][-1]:g} -> l(l+d-2)", lim,
                            (r["G_extrapolated"][-1] - 1) * r["beta"][-1],
                            r["G_extrapolated_se"][-1] * r["beta"][-1],
                            k=3, tol=0.1 * lim, note="first-order law, O(1/beta) corrections"))
    from . import heat_dynamics

    dyn = heat_dynamics.main(["--out", os.path.join(out, "dynamics"), *(["--N", "5000", "--steps", "8"]
                                                                        if a.quick else [])])
    figures += dyn["figures"]
    print(format_claims(claims))
    return {"claims": claims, "figures": [f for f in figures if f], "runs": runs, "dynamics": dyn}


if __name__ == "__main__":
    main()
