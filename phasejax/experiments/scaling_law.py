"""Claim: beta_peak(n) ~ lambda* n^{2/(d-1)} (docs/theory.md §c), the exponent and lambda* against theory."""

from __future__ import annotations

import argparse
import os

from .claims import add_seed_argument, claim, format_claims, out_dir, run_command


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=None)
    p.add_argument("--quick", action="store_true", help="small sizes (CI)")
    p.add_argument("--dims", default=None, help="comma-separated d values (default 3; full run 2,3,4,5,8)")
    add_seed_argument(p)
    a = p.parse_args(argv)
    out = out_dir(a.out, "scaling_law")
    dims = [int(x) for x in a.dims.split(",")] if a.dims else ([3] if a.quick else [2, 3, 4, 5, 8])
    claims, figures, runs = [], [], {}
    for d in dims:
        argv_d = ["scaling", "--d", str(d), "--out", os.path.join(out, f"d{d}"), "--quiet", "--seed", str(a.seed)]
        if a.quick:
            argv_d += ["--n-max", "10000", "--n-points", "5", "--seeds", "128"]
        elif d >= 5:
            argv_d += ["--seeds", "128"]
        r, _ = run_command(argv_d)
        runs[d] = r
        figures += [r["files"]["figure_peaks"], r["files"]["figure_collapse"]]
        fit = r if d <= 3 or "finite_size_fit" not in r else {**r, **{
            "exponent": r["finite_size_fit"]["exponent"], "exponent_se": r["finite_size_fit"]["exponent_se"]}}
        label = "" if d <= 3 or "finite_size_fit" not in r else " (finite-size fit)"
        claims.append(claim(f"d={d}: exponent of beta_peak(n){label}", r["exponent_theory"], fit["exponent"],
                            fit["exponent_se"]))
        if r["lambda_star_theory"] is not None:
            claims.append(claim(f"d={d}: lambda* (exponent fixed at 2/(d-1))", r["lambda_star_theory"],
                                r["lambda_star_fixed_exponent"], r["lambda_star_fixed_exponent_se"],
                                note="finite-n corrections O(n^(-2/(d-1))) bias it for d > 3" if d > 3 else ""))
        if d == 3:
            claims.append(claim("d=3: lambda* = e^a from the free fit", r["lambda_star_theory"], r["lambda_star"],
                                r["lambda_star_se"]))
    print(format_claims(claims))
    return {"claims": claims, "figures": figures, "runs": runs}


if __name__ == "__main__":
    main()
