"""``phasejax heat``: one attention step on a token cloud against the backward heat equation (docs/theory.md §g).

Tokens are sampled exactly from rho = 1 + eps P_l(<x,e>) on S^(d-1); one all-queries attention step
(identity values, renormalised) amplifies the zonal mode l by G. Over a beta grid the command prints
the measured G (mean +- s.e. over seeds), the exact n = infinity value, the same with the O(1/N)
finite-N correction, and the first-order law 1 + l(l+d-2)/beta. From the same clouds it also
extrapolates the measurement to N = infinity (the step against each half of the keys, one pass, and the
half-sample Richardson combination, :func:`phasejax.heat.gain_one_cloud`), which removes the O(1/N) bias
without using its theory, and reports the measured bias against that theory. It writes ``heat.json`` and
``heat.png`` into the output folder.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import InputError
from .._random import key_from_seed
from ..plots import heat_gain_figure
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
    from ..heat.theory import HEAT_D_MAX
    from ..heat.zonal import zonal_density_bound

    if not 2 <= args.d <= HEAT_D_MAX:
        raise InputError(f"--d must be an integer 2 <= d <= {HEAT_D_MAX} (tokens on S^(d-1); the exact gain's "
                         f"Gauss-Jacobi quadrature is not finite beyond), got {args.d}")
    if not 1 <= args.l <= L_MAX:
        raise InputError(f"--l must be an integer 1 <= l <= {L_MAX} (the degree of a zonal mode), got {args.l}")
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
        betas = np.asarray(sorted(args.beta), dtype=float)
    else:
        if args.beta_max < args.beta_min:
            raise InputError(f"--beta-max must be >= --beta-min, got {args.beta_max} < {args.beta_min}")
        if args.beta_points > BETA_POINTS_MAX:
            raise InputError(f"--beta-points must be <= {BETA_POINTS_MAX} (one pass over the cloud each), "
                             f"got {args.beta_points}")
        betas = np.geomspace(args.beta_min, args.beta_max, args.beta_points)
    _check_theory_domain(args, betas)
    from ..runtime.memory import check_memory

    # the cloud (N, d) plus the step's output and a query x key block (chunked), float64 at most
    check_memory(8.0 * args.N * args.d * 4 + 8.0 * 4096 * 4096, "--N", f"a cloud of {args.N} tokens in d={args.d}")
    return betas


L_MAX = 4096  # the Gegenbauer recurrence is O(l) per token; beyond, P_l is not resolved by a cloud anyway
BETA_POINTS_MAX = 10_000
FINITE_N_MAX = 0.25  # the O(1/N) correction is used while max(Q, S)/(N - 1) <= this


def _check_theory_domain(args, betas):
    """Refuse inputs whose exact or finite-N gain cannot be computed (instead of printing null or nonsense)."""
    import warnings

    from ..heat import exact_gain
    from ..heat.theory import finite_n_scale

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        g = np.asarray(exact_gain(args.d, args.l, float(args.eps), betas), dtype=float)
        scale = finite_n_scale(args.d, betas, self_interaction=args.self_interaction)
    if not np.all(np.isfinite(g)):
        bad = float(betas[~np.isfinite(g)][0])
        raise InputError(f"--beta {bad:g}: the exact gain is not finite for d={args.d}, l={args.l} "
                         "(the Bessel-ratio multipliers overflow); use a smaller --beta")
    need = 1 + scale / FINITE_N_MAX
    if not need <= args.N:
        what = "max(Q, S)" if args.self_interaction else "Q"
        raise InputError(
            f"--N {args.N} is too small for the O(1/N) finite-N gain at beta <= {float(betas.max()):g}, d={args.d}: "
            f"{what} = {scale:.4g} needs N >= {need:.4g} ({what}/(N-1) <= {FINITE_N_MAX}); "
            "raise --N or lower --beta" + ("" if math.isfinite(need) else " (the self term alone is e^beta)"))


def run(args):
    betas = _validate(args)
    out = _common.setup(args, NAME)

    import jax

    from .. import heat
    from ..runtime import io

    d, l, eps, n = args.d, args.l, float(args.eps), int(args.N)
    key = key_from_seed(args.seed)
    prog = _common.Progress(args.seeds * len(betas), "heat", quiet=args.quiet)
    g_seeds = np.zeros((args.seeds, len(betas)))
    g_inf_seeds = np.zeros((args.seeds, len(betas)))
    for s in range(args.seeds):  # common random numbers: the same cloud at every beta
        x = heat.sample_zonal(jax.random.fold_in(key, s), n, d, l, eps)
        for j, b in enumerate(betas):
            g_seeds[s, j], g_inf_seeds[s, j] = heat.gain_one_cloud(x, float(b), l,
                                                                   self_interaction=args.self_interaction)
            prog.update(1, f"seed {s} beta {b:.4g}")

    def mean_se(v):
        return v.mean(axis=0), v.std(axis=0, ddof=1) / math.sqrt(args.seeds)

    g, se = mean_se(g_seeds)
    g_inf, se_inf = mean_se(g_inf_seeds)
    bias, bias_se = mean_se(g_seeds - g_inf_seeds)
    # exact gains on the host in float64 (the differences compared are ~1e-5 of G)
    g_exact = np.asarray(heat.exact_gain(d, l, eps, betas), dtype=float)
    g_exact_n = np.asarray(heat.exact_gain(d, l, eps, betas, n=n, self_interaction=args.self_interaction), float)
    g_first = 1 + l * (l + d - 2) / betas
    z = (g - g_exact) / se
    z_n = (g - g_exact_n) / se
    z_inf = (g_inf - g_exact) / se_inf

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
        "G_extrapolated": g_inf,
        "G_extrapolated_se": se_inf,
        "G_extrapolated_seeds": g_inf_seeds,
        "finite_N_bias": bias,
        "finite_N_bias_se": bias_se,
        "finite_N_bias_theory": g_exact_n - g_exact,
        "G_exact": g_exact,
        "G_exact_finite_N": g_exact_n,
        "G_first_order": g_first,
        "z_exact": z,
        "z_exact_finite_N": z_n,
        "z_extrapolated": z_inf,
        "scaled_gain": (g - 1) * betas,
        "scaled_gain_extrapolated": (g_inf - 1) * betas,
        "scaled_gain_theory": l * (l + d - 2),
        "critical_beta": n ** (2 / (d - 1)),
        "definitions": {
            "G_measured": "mean over seeds of hat_eps(y)/hat_eps(x), hat_eps = N(d,l) mean P_l(<x,e>)",
            "G_measured_se": "std over seeds / sqrt(seeds)",
            "G_extrapolated": "N -> infinity estimate from the same clouds: c_full G + c_half (G_A + G_B)/2, "
                              "G_A, G_B with the keys restricted to either half; (c_full, c_half) = (2, -1) for "
                              "equal halves (heat.richardson_weights); removes the O(1/N) bias",
            "finite_N_bias": "G_measured - G_extrapolated (measured); theory: G_exact_finite_N - G_exact",
            "G_exact": "n = infinity: E_rho[P_l(<T(x)/|T(x)|,e>)] / E_rho[P_l(<x,e>)], exact Funk-Hecke map T",
            "G_exact_finite_N": "G_exact with the O(1/N) mean-map correction (ratio bias and self term)",
            "G_first_order": "1 + l(l+d-2)/beta",
            "z_extrapolated": "(G_extrapolated - G_exact) / G_extrapolated_se",
        },
    }
    io.save_json(f"{out}/heat.json", {**result, "provenance": io.provenance(vars_config(args))})
    bb = np.geomspace(betas.min() * 0.8, betas.max() * 1.25, 200)
    curves = (bb, np.asarray(heat.exact_gain(d, l, eps, bb), dtype=float),
              np.asarray(heat.exact_gain(d, l, eps, bb, n=n, self_interaction=args.self_interaction), float))
    heat_gain_figure(result, f"{out}/heat.png", curves)
    result["out"] = out
    result["files"] = {"json": f"{out}/heat.json", "figure": f"{out}/heat.png"}

    rows = [
        [b, gm - 1, s_, zz, zn, gi - 1, si, zi, ge - 1, bi, bt, (gi - 1) * b]
        for b, gm, s_, zz, zn, gi, si, zi, ge, bi, bt in zip(betas, g, se, z, z_n, g_inf, se_inf, z_inf, g_exact,
                                                             bias, g_exact_n - g_exact, strict=True)
    ]
    title = (
        f"heat step: d={d}, l={l}, eps={eps}, N={n}, seeds={args.seeds}, self term "
        f"{'included' if args.self_interaction else 'excluded'}; l(l+d-2) = {l * (l + d - 2)}, "
        f"N^(2/(d-1)) = {n ** (2 / (d - 1)):.4g}\n"
        "G: measured at N; z, z_N: against the N = inf and the O(1/N)-corrected exact value; G_inf: the same "
        "clouds extrapolated to N = inf (half-sample Richardson), z_inf against the N = inf exact value; "
        "bias = G - G_inf against its theory"
    )
    table = _common.format_table(
        ["beta", "G-1", "se", "z", "z_N", "G_inf-1", "se_inf", "z_inf", "exact-1", "bias", "bias_th",
         "(G_inf-1)beta"], rows, title=title
    )
    return result, table + f"\nresults: {out}/heat.json, {out}/heat.png"


def vars_config(args) -> dict:
    return {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}

