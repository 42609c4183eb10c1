"""The local exponent alpha sets beta* ~ n^{2/alpha}, whatever the global shape of the keys (docs/theory.md §d).

Three checks, each a figure panel and rows of the printed table:

1. **PowerLawCap on S^2, alpha = 1, 2, 4** (density blowing up at q, uniform, vanishing at q): the fitted
   exponent of beta_peak(n) (:func:`phasejax.scaling.scaling_scan`) against 2/alpha and the fitted prefactor
   lambda* = e^a against lambda*(alpha, C) from :func:`phasejax.theory.lambda_star`; z = (fit - theory)/se.
2. **Local, not global.** Four laws on S^2 about the same query q:
   * ``uniform``: UniformSphere(3), alpha = 2, C = 1/2;
   * ``mixture``: 25% uniform + 75% in a tight cluster at the antipode (FarCap(3, 0.1): the cap u > 1.9),
     alpha = 2, C = 1/8: globally nothing like uniform (mean gap 1.71 instead of 1);
   * ``anisotropic``: the angular central Gaussian with scales (0.5, 1, 2) (q on the long axis), alpha = 2,
     C = 4: globally anisotropic, locally uniform at q;
   * ``mixture-warped``: the mixture with the cap u < 0.1 (1.25% of its keys) warped to local exponent 4:
     the same global shape as ``mixture``, a different local exponent.
   The first three share the exponent 1 = 2/alpha; the warped law scales like n^{1/2}. The prefactors follow
   lambda*(alpha, C) of each law, so beta_peak / (lambda*(alpha, C) n^{2/alpha}) -> 1 for all four.
3. The estimator (:func:`phasejax.estimate.fit_tail`) recovers alpha and C from one context of each law.

Run: ``python experiments/local_exponent.py --out runs/local_exponent`` (or ``--quick``) (defaults: n = 1e3, 5e3, 2.5e4,
64 seeds, about a minute of CPU; ``--ns 2000 12000 72000 --seeds 128 --m 1024`` for the tighter numbers).
Writes ``local_exponent.png`` and ``local_exponent.json``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from phasejax.plots import local_exponent_figure


def _parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ns", type=float, nargs="+", default=[1000, 5000, 25000], help="context lengths")
    p.add_argument("--seeds", type=int, default=64, help="contexts per n (default 64)")
    p.add_argument("--m", type=int, default=512, help="nearest gaps kept per context (default 512)")
    p.add_argument("--u0", type=float, default=0.1, help="radius (in gap) of the warped cap (default 0.1)")
    p.add_argument("--fit-n", type=int, default=50_000, help="keys in the context used by the alpha estimator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join("runs", "local_exponent"))
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--quick", action="store_true", help="n = 1e3, 4e3, 16 seeds ... (CI smoke sizes)")
    return p


def laws(u0: float = 0.1) -> dict:
    """The key laws of the experiment, by name (all on S^2, relative to one query)."""
    from phasejax.laws import AngularGaussian, FarCap, LocalWarp, Mixture, PowerLawCap, UniformSphere

    mix = Mixture(UniformSphere(3), FarCap(3, 0.1), 0.25)
    return {
        "powerlaw alpha=1": PowerLawCap(3, 1.0),
        "powerlaw alpha=2": PowerLawCap(3, 2.0),
        "powerlaw alpha=4": PowerLawCap(3, 4.0),
        "uniform": UniformSphere(3),
        "mixture": mix,
        "anisotropic": AngularGaussian((0.5, 1.0, 2.0)),
        "mixture-warped": LocalWarp(mix, u0, 4.0),
    }


def main(argv=None) -> dict:
    args = _parser().parse_args(argv)
    if args.quick:
        args.ns, args.seeds, args.m, args.fit_n = [1000, 4000], 48, 256, 20_000
    import jax

    from phasejax.cli import format_table
    from phasejax.estimate import fit_tail
    from phasejax.runtime import io
    from phasejax.scaling import scaling_scan
    from phasejax.theory import lambda_star

    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    ns = [int(n) for n in args.ns]
    key = jax.random.key(args.seed)
    rows, res = [], {}
    for i, (name, law) in enumerate(laws(args.u0).items()):
        lam_t = lambda_star(alpha=law.alpha, C=law.C).lambda_star
        sc = scaling_scan(law, ns, key=jax.random.fold_in(key, i), seeds=args.seeds, m=min(args.m, min(ns)),
                          lambda_range=(lam_t / 4, lam_t * 4), grid_points=13, sampler="exact")
        fit = sc.fit
        u = np.asarray(law.sample_gaps(jax.random.fold_in(key, 100 + i), args.fit_n), np.float64)
        tf = fit_tail(u)
        lam_big = sc.lambda_peak[-1]
        lam_big_se = sc.beta_peak_se[-1] / sc.n[-1] ** (2 / law.alpha)
        r = {
            "law": name, "alpha": law.alpha, "C": law.C, "n": sc.n.tolist(),
            "beta_peak": sc.beta_peak.tolist(), "beta_peak_se": sc.beta_peak_se.tolist(),
            "exponent": fit.b, "exponent_se": fit.b_se, "exponent_theory": 2 / law.alpha,
            "exponent_z": (fit.b - 2 / law.alpha) / fit.b_se,
            "lambda_star": fit.prefactor, "lambda_star_se": fit.prefactor_se, "lambda_star_theory": lam_t,
            "lambda_star_z": (fit.prefactor - lam_t) / fit.prefactor_se,
            "lambda_at_nmax": float(lam_big), "lambda_at_nmax_se": float(lam_big_se),
            "alpha_hat": tf.alpha, "alpha_hat_se": tf.alpha_se, "alpha_hat_ci95": tf.alpha_ci95,
            "C_hat": tf.C, "C_hat_se": tf.C_se, "k": tf.k, "mean_gap": float(u.mean()),
            "max_truncation_bound": float(sc.truncation_bound.max()),
        }
        res[name] = r
        rows.append([name, law.alpha, f"{law.C:.4g}", f"{fit.b:.4f} +- {fit.b_se:.4f}", f"{2 / law.alpha:.4f}",
                     f"{r['exponent_z']:+.2f}", f"{fit.prefactor:.4f} +- {fit.prefactor_se:.4f}", f"{lam_t:.4f}",
                     f"{r['lambda_star_z']:+.2f}", f"{lam_big / lam_t:.3f} +- {lam_big_se / lam_t:.3f}",
                     f"{tf.alpha:.3f} +- {tf.alpha_se:.3f}", f"{tf.C:.3g} +- {tf.C_se:.2g}",
                     f"{r['mean_gap']:.3f}"])
        if not args.quiet:
            print(f"  {name}: exponent {fit.b:.4f} +- {fit.b_se:.4f} (theory {2 / law.alpha:.4f}), "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
    table = format_table(
        ["law", "alpha", "C", "exponent +- se", "2/alpha", "z", "lambda* fit +- se", "lambda* theory", "z",
         "lambda(n_max)/lambda*", "alpha_hat +- se", "C_hat +- se", "mean gap"],
        rows, title=f"beta_peak(n) ~ lambda* n^(2/alpha) on S^2: n = {ns}, {args.seeds} seeds, m = {args.m}")

    # the global shape of each law (the figure's third panel): gaps drawn here, histogrammed in plots
    shapes = {name: np.asarray(laws(args.u0)[name].sample_gaps(jax.random.key(7), 50_000), np.float64)
              for name in ("uniform", "mixture", "anisotropic", "mixture-warped")}
    fig_path = local_exponent_figure(os.path.join(args.out, "local_exponent.png"), res, shapes, args.u0)
    elapsed = time.perf_counter() - t0
    out = {"laws": res, "ns": ns, "seeds": args.seeds, "m": args.m, "u0": args.u0, "elapsed_s": elapsed,
           "files": {"figure": fig_path, "json": os.path.join(args.out, "local_exponent.json")}}
    io.save_json(out["files"]["json"], out)
    if not args.quiet:
        print(table)
        print(f"elapsed {elapsed:.1f} s; {fig_path}")
    from .claims import claim

    out["claims"] = []
    for name, r in res.items():
        out["claims"].append(claim(f"{name}: exponent of beta_peak(n) vs 2/alpha", r["exponent_theory"],
                                   r["exponent"], r["exponent_se"]))
        out["claims"].append(claim(f"{name}: beta_peak/n^(2/alpha) at n_max vs lambda*(alpha, C)",
                                   r["lambda_star_theory"], r["lambda_at_nmax"], r["lambda_at_nmax_se"],
                                   note="finite-n corrections to lambda* are O(n^(-2/alpha)) for curved gap laws"))
    out["figures"] = [fig_path]
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
