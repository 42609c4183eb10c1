"""``phasejax heat``: one attention step on a token cloud against the backward heat equation (THEORY.md g).

Tokens are sampled exactly from rho = 1 + eps P_l(<x,e>) on S^(d-1); one all-queries attention step
(identity values, renormalised) amplifies the zonal mode l by G. Over a beta grid the command prints
the measured G (mean +- s.e. over seeds), the exact n = infinity value, the same with the O(1/N)
finite-N correction, and the first-order law 1 + l(l+d-2)/beta; it writes ``heat.json`` and
``heat.png`` into the output folder.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import InputError
from . import _common

NAME = "heat"
HELP = "one attention step on a token cloud against the backward heat equation (zonal mode gain G)"


def add_arguments(p) -> None:
    g = p.add_argument_group("token cloud")
    g.add_argument("--d", type=int, default=3, help="ambient dimension, tokens on S^(d-1) (default 3)")
    g.add_argument("--l", type=int, default=2, help="degree of the zonal mode (default 2)")
    g.add_argument("--eps", type=_common.real, default=0.5, help="mode amplitude, rho = 1 + eps P_l (default 0.5)")
    g.add_argument("--N", type=_common.count, default=20000, help="number of tokens (default 20000)")
    g.add_argument(
        "--no-self",
        dest="self_interaction",
        action="store_false",
        help="exclude the self term (a token does not attend to itself); default: included",
    )
    b = p.add_argument_group("inverse temperatures")
    b.add_argument("--beta", type=_common.positive_real, nargs="+", default=None,
                   help="explicit beta values (overrides the grid)")
    b.add_argument("--beta-min", type=_common.positive_real, default=10.0, help="grid start (default 10)")
    b.add_argument("--beta-max", type=_common.positive_real, default=200.0, help="grid end (default 200)")
    b.add_argument("--beta-points", type=_common.positive_int, default=5, help="log-spaced grid points (default 5)")
    p.add_argument("--seeds", type=_common.positive_int, default=3,
                   help="independent token clouds per beta (default 3)")
    _common.add_output_arguments(p)


def _validate(args):
    from ..heat import zonal_density_bound

    if args.d < 2:
        raise InputError(f"--d must be an integer >= 2 (tokens on S^(d-1)), got {args.d}")
    if args.l < 1:
        raise InputError(f"--l must be an integer >= 1 (the degree of a zonal mode), got {args.l}")
    lo, hi = zonal_density_bound(args.d, args.l)
    if args.eps == 0 or not lo <= args.eps <= hi:
        raise InputError(
            f"--eps must be nonzero and keep rho = 1 + eps P_{args.l} >= 0: {lo:.6g} <= eps <= {hi:.6g} "
            f"for d={args.d}, l={args.l}; got {args.eps}"
        )
    if args.N < 2:
        raise InputError(f"--N must be an integer >= 2, got {args.N}")
    if args.seeds < 2:
        raise InputError(f"--seeds must be >= 2 for a standard error over seeds, got {args.seeds}")
    if args.beta is not None:
        return np.asarray(sorted(args.beta), dtype=float)
    if args.beta_max < args.beta_min:
        raise InputError(f"--beta-max must be >= --beta-min, got {args.beta_max} < {args.beta_min}")
    return np.geomspace(args.beta_min, args.beta_max, args.beta_points)


def run(args):
    betas = _validate(args)
    out = _common.setup(args, NAME)

    import jax

    from .. import heat, io

    d, l, eps, n = args.d, args.l, float(args.eps), int(args.N)
    key = jax.random.key(args.seed)
    prog = _common.Progress(args.seeds * len(betas), "heat", quiet=args.quiet)
    g_seeds = np.zeros((args.seeds, len(betas)))
    for s in range(args.seeds):  # common random numbers: the same cloud at every beta
        x = heat.sample_zonal(jax.random.fold_in(key, s), n, d, l, eps)
        before = float(heat.mode_amplitude(x, l))
        for j, b in enumerate(betas):
            y = heat.attention_step(x, float(b), self_interaction=args.self_interaction)
            g_seeds[s, j] = float(heat.mode_amplitude(y, l)) / before
            prog.update(1, f"seed {s} beta {b:.4g}")
    g = g_seeds.mean(axis=0)
    se = g_seeds.std(axis=0, ddof=1) / math.sqrt(args.seeds)
    g_exact = np.asarray(heat.exact_gain(d, l, eps, betas), dtype=float)
    g_exact_n = np.asarray(heat.exact_gain(d, l, eps, betas, n=n, self_interaction=args.self_interaction), float)
    g_first = 1 + l * (l + d - 2) / betas
    z = (g - g_exact) / se
    z_n = (g - g_exact_n) / se

    result = {
        "d": d,
        "l": l,
        "eps": eps,
        "N": n,
        "seeds": args.seeds,
        "seed": args.seed,
        "self_interaction": bool(args.self_interaction),
        "beta": betas,
        "G_measured": g,
        "G_measured_se": se,
        "G_measured_seeds": g_seeds,
        "G_exact": g_exact,
        "G_exact_finite_N": g_exact_n,
        "G_first_order": g_first,
        "z_exact": z,
        "z_exact_finite_N": z_n,
        "scaled_gain": (g - 1) * betas,
        "scaled_gain_theory": l * (l + d - 2),
        "critical_beta": n ** (2 / (d - 1)),
        "definitions": {
            "G_measured": "mean over seeds of hat_eps(y)/hat_eps(x), hat_eps = N(d,l) mean P_l(<x,e>)",
            "G_measured_se": "std over seeds / sqrt(seeds)",
            "G_exact": "n = infinity: E_rho[P_l(<T(x)/|T(x)|,e>)] / E_rho[P_l(<x,e>)], exact Funk-Hecke map T",
            "G_exact_finite_N": "G_exact with the O(1/N) mean-map correction (ratio bias and self term)",
            "G_first_order": "1 + l(l+d-2)/beta",
        },
    }
    io.save_json(f"{out}/heat.json", {**result, "provenance": io.provenance(vars_config(args))})
    _figure(result, f"{out}/heat.png")
    result["out"] = out

    rows = [
        [b, gm - 1, s_, ge - 1, gn - 1, gf - 1, zz, zn, (gm - 1) * b]
        for b, gm, s_, ge, gn, gf, zz, zn in zip(betas, g, se, g_exact, g_exact_n, g_first, z, z_n, strict=True)
    ]
    title = (
        f"heat step: d={d}, l={l}, eps={eps}, N={n}, seeds={args.seeds}, self term "
        f"{'included' if args.self_interaction else 'excluded'}; l(l+d-2) = {l * (l + d - 2)}, "
        f"N^(2/(d-1)) = {n ** (2 / (d - 1)):.4g}"
    )
    table = _common.format_table(
        ["beta", "G-1", "se", "exact-1", "exact_N-1", "first-1", "z", "z_N", "(G-1)beta"], rows, title=title
    )
    return result, table + f"\nresults: {out}/heat.json, {out}/heat.png"


def vars_config(args) -> dict:
    return {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}


def _figure(r, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .. import io

    b = np.asarray(r["beta"])
    bb = np.geomspace(b.min() * 0.8, b.max() * 1.25, 200)
    from ..heat import exact_gain

    d, l, eps = r["d"], r["l"], r["eps"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].errorbar(b, np.asarray(r["G_measured"]) - 1, yerr=r["G_measured_se"], fmt="o", color="k",
                   label=f"measured, N={r['N']} (mean ± s.e., {r['seeds']} seeds)")
    ax[0].plot(bb, np.asarray(exact_gain(d, l, eps, bb)) - 1, "C0-", label="exact map, N = ∞")
    g_n = np.asarray(exact_gain(d, l, eps, bb, n=r["N"], self_interaction=r["self_interaction"]))
    ax[0].plot(bb, g_n - 1, "C2--", label="exact map + O(1/N) correction")
    ax[0].plot(bb, l * (l + d - 2) / bb, "C1:", label="first order l(l+d-2)/β")
    ax[0].set(xscale="log", yscale="log", xlabel="β", ylabel="G - 1",
              title=f"zonal mode l={l} on S^{d - 1}, eps={eps}")
    ax[0].legend(fontsize=8)
    ax[1].errorbar(b, (np.asarray(r["G_measured"]) - 1) * b, yerr=np.asarray(r["G_measured_se"]) * b, fmt="o",
                   color="k", label="measured")
    ax[1].plot(bb, (np.asarray(exact_gain(d, l, eps, bb)) - 1) * bb, "C0-", label="exact map, N = ∞")
    ax[1].plot(bb, (g_n - 1) * bb, "C2--", label=f"exact map + O(1/N) correction, N={r['N']}")
    ax[1].axhline(l * (l + d - 2), color="C1", ls=":", label="l(l+d-2)")
    ax[1].set(xscale="log", xlabel="β", ylabel="(G - 1) β", title="approach to the heat equation")
    ax[1].legend(fontsize=8)
    io.save_figure(fig, path)
