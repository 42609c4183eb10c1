"""Claim: the entropy has two crossovers (docs/theory.md §f): H follows log n + log M_d - beta A_d with the plateau
slope -(d-1)/2 for 1 << beta << n^{2/(d-1)}, then the Poisson law, then 0."""

from __future__ import annotations

import argparse
import os

import numpy as np

from .claims import add_seed_argument, claim, experiment_key, format_claims, out_dir


def main(argv=None) -> dict:
    from phasejax import limits
    from phasejax.plots import entropy_figure as _fig_ent

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n", type=float, default=1e6)
    add_seed_argument(p)
    a = p.parse_args(argv)
    out = out_dir(a.out, "entropy_crossovers")
    n = int(1e5 if a.quick else a.n)
    claims, figures = [], []
    for d in (3, 5):
        crit = n ** (2 / (d - 1))
        betas = np.geomspace(1e-2, 30 * crit, 40)
        e = limits.entropy_crossover(d, n, betas, key=experiment_key(d, a.seed), seeds=8)
        figures.append(_fig_ent(os.path.join(out, f"entropy_d{d}.png"), {k: (v.tolist() if hasattr(v, "tolist")
                                                                             else v) for k, v in e.items()}))
        i = int(np.argmin(np.abs(np.log(betas) - np.log(np.sqrt(crit) if d == 3 else 30.0))))
        claims.append(claim(f"d={d}: dH/dlog beta at beta={betas[i]:.3g} (n={n:.0e}) vs n=inf slope",
                            float(e["slope_limit"][i]), float(e["slope"][i]), float(e["slope_se"][i]), k=3))
        claims.append(claim(f"d={d}: H at beta={betas[i]:.3g} vs log n + log M_d - beta A_d",
                            float(e["entropy_limit"][i]), float(e["entropy"][i]), float(e["entropy_se"][i]), k=3,
                            tol=1e-3))
    print(format_claims(claims))
    return {"claims": claims, "figures": figures}


if __name__ == "__main__":
    main()
