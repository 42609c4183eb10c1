"""Claim: low-precision logits stop separating the nearest keys at a context length set by the format's
spacing below 1, and this corrupts the max weight and beta_peak.

Model (stated, so it can be checked): keys exact, the score t = <q,k> = 1 - u rounded to the format
(as a QK^T matmul whose output is stored in that format), multiplied by beta and rounded again,
then a float32 softmax. Below 1 a format with p significand bits has spacing ulp = 2^-p
(float32 2^-24, float16 2^-11, bfloat16 2^-8). The two nearest keys of n uniform keys on S^2 have
spacing S = u_(2) - u_(1) ~ Exp(mean 2/n); with a grid of spacing ulp at a random offset they
round to the same score with probability P(tie) = 1 - (2/(n ulp)) (1 - exp(-n ulp / 2)), which is
1/2 at n_floor = 3.19/ulp (from 1 - (1 - e^{-x})/x = 1/2 at x = 1.594).

Rounding is piecewise constant, so autodiff through it is meaningless; here the susceptibility is
taken by central differences of E[W_(1)] on a fine log-beta grid (documented departure from the
autodiff rule used everywhere else).
"""

from __future__ import annotations

import argparse
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import brentq

from .claims import add_seed_argument, claim, experiment_key, format_claims, out_dir

FORMATS = {"float32": (jnp.float32, 24), "float16": (jnp.float16, 11), "bfloat16": (jnp.bfloat16, 8)}


def tie_probability(n, ulp):
    """P(the two nearest of n uniform keys on S^2 round to one score), random-offset approximation."""
    x = np.asarray(n, np.float64) * ulp / 2
    return 1 - (1 - np.exp(-x)) / x


def n_floor_theory(ulp):
    x = brentq(lambda x: 1 - (1 - math.exp(-x)) / x - 0.5, 1e-3, 10)
    return 2 * x / ulp


def _max_weight(gaps, betas, fmt):
    """E over contexts of the max weight for each beta; gaps (S, m) float64, logits rounded to fmt."""
    t = 1.0 - gaps
    if fmt is not None:
        t = t.astype(fmt)

    def one(beta):
        logits = beta * t.astype(jnp.float64)
        if fmt is not None:
            logits = logits.astype(fmt)
        logits = logits.astype(jnp.float32)
        w = jax.nn.softmax(logits, axis=1)
        return jnp.max(w, axis=1)

    return jax.vmap(one)(betas).T  # (S, B)


def _ties(gaps, fmt):
    g = jnp.sort(gaps, axis=1)
    t1, t2 = (1.0 - g[:, 0]).astype(fmt), (1.0 - g[:, 1]).astype(fmt)
    return np.asarray(t1 == t2, np.float64)


def _peak_fd(log_beta, mean_w):
    """Peak of the central-difference chi with a parabolic refinement; NaN if the curve is not finite
    (float16 logits overflow once beta > 65504)."""
    if not np.all(np.isfinite(mean_w)):
        return float("nan")
    chi = np.gradient(mean_w, log_beta)
    i = int(np.clip(np.argmax(chi), 1, len(chi) - 2))
    y0, y1, y2 = chi[i - 1 : i + 2]
    denom = y0 - 2 * y1 + y2
    shift = 0.5 * (y0 - y2) / denom if denom != 0 else 0.0
    return float(log_beta[i] + np.clip(shift, -1, 1) * (log_beta[1] - log_beta[0]))


def main(argv=None) -> dict:
    from phasejax.laws import UniformSphere
    from phasejax.plots import precision_floor_figure
    from phasejax.scaling import nearest_gap_samples

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, default=None)
    add_seed_argument(p)
    a = p.parse_args(argv)
    out = out_dir(a.out, "precision_floor")
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        seeds = a.seeds or (200 if a.quick else 1000)
        ns = np.unique(np.round(np.geomspace(30, 1e5 if a.quick else 1e9, 8 if a.quick else 16))).astype(np.int64)
        law = UniformSphere(3)
        lam_star = 0.3814471556960417
        from phasejax.theory import lambda_star

        lam_star = lambda_star(3).lambda_star
        rows = {name: {"tie": [], "w_err": [], "peak_ratio": []} for name in FORMATS}
        lam_grid = np.geomspace(0.05, 5.0, 41)
        for i, n in enumerate(ns):
            gaps = nearest_gap_samples(law, experiment_key(int(i), a.seed), int(n), min(64, int(n)), seeds=seeds)
            betas = jnp.asarray(lam_grid * n, jnp.float64)
            ref = np.asarray(_max_weight(gaps, betas, None), np.float64).mean(0)
            peak_ref = _peak_fd(np.log(lam_grid), ref)
            i_star = int(np.argmin(np.abs(lam_grid - lam_star)))
            for name, (fmt, _) in FORMATS.items():
                w = np.asarray(_max_weight(gaps, betas, fmt), np.float64).mean(0)
                rows[name]["tie"].append(_ties(gaps, fmt).mean())
                rows[name]["w_err"].append(abs(w[i_star] / ref[i_star] - 1))
                rows[name]["peak_ratio"].append(math.exp(_peak_fd(np.log(lam_grid), w) - peak_ref))
    finally:
        jax.config.update("jax_enable_x64", old)
    claims = []
    nn = np.geomspace(ns.min(), ns.max(), 200)
    panels = {}
    table = [f"{'format':>9s} {'n_floor theory':>15s} {'n_floor measured':>17s}"]
    for name, (_, bits) in FORMATS.items():
        ulp = 2.0 ** (-bits)
        tie = np.array(rows[name]["tie"])
        se = np.sqrt(np.maximum(tie * (1 - tie), 1.0 / seeds) / seeds)
        panels[name] = {"tie": tie, "tie_se": se, "tie_theory": tie_probability(nn, ulp),
                        "w_err": np.maximum(rows[name]["w_err"], 1e-9), "peak_ratio": rows[name]["peak_ratio"]}
        theory_floor = n_floor_theory(ulp)
        measured = None
        if tie[0] < 0.5 < tie[-1]:
            j = int(np.argmax(tie >= 0.5))
            x0, x1 = math.log(ns[j - 1]), math.log(ns[j])
            measured = math.exp(x0 + (0.5 - tie[j - 1]) / (tie[j] - tie[j - 1]) * (x1 - x0))
            # se from the binomial se of the crossing fractions, propagated through the local slope
            slope = (tie[j] - tie[j - 1]) / (x1 - x0)
            se_log = math.sqrt(0.25 / seeds) / max(slope, 1e-9)
            claims.append(claim(f"{name}: log10 n where nearest two keys tie w.p. 1/2", math.log10(theory_floor),
                                math.log10(measured), se_log / math.log(10), k=3, tol=0.05,
                                note="tie model: random grid offset"))
        shown = f"{measured:.4g}" if measured else "outside grid"
        table.append(f"{name:>9s} {theory_floor:15.4g} {shown:>17s}")
    fig_path = precision_floor_figure(os.path.join(out, "precision_floor.png"), ns, nn, panels, seeds)
    n_check = float(ns[-1])
    claims.append(claim(f"float32: relative error of E[max weight] at lambda*, n={n_check:.0e} (< 1e-3)", 0.0,
                        float(rows["float32"]["w_err"][-1]), None, tol=1e-3))
    print("\n".join(table))
    print(format_claims(claims))
    return {"claims": claims, "figures": [fig_path], "n": ns.tolist(), "rows": rows}


if __name__ == "__main__":
    main()
