"""``phasejax scaling``: the main job. beta_peak(n) over n, the exponent against 2/alpha, lambda* against theory."""

from __future__ import annotations

import os
import time

import numpy as np

from .._checks import InputError
from .._random import key_from_seed
from ..plots import scaling_collapse_figure, scaling_peaks_figure
from . import _common as C

NAME = "scaling"
HELP = "locate the susceptibility peak beta_peak(n) over n and fit beta_peak ~ lambda* n^(2/alpha)"


def add_arguments(p):
    C.add_geometry_arguments(p)
    g = p.add_argument_group("context lengths and seeds")
    g.add_argument("--n-min", type=C.count, default=100, help="smallest n (default 1e2)")
    g.add_argument("--n-max", type=C.count, default=1_000_000, help="largest n (default 1e6)")
    g.add_argument("--n-points", type=C.positive_int, default=9, help="log-spaced values of n (default 9)")
    g.add_argument("--seeds", type=C.positive_int, default=256,
                   help="contexts per n (default 256: se(exponent) ~ 0.008 for d = 3)")
    g.add_argument("--sampler", default="auto", help="auto (default), exact, or nearest (the m-nearest sampler)")
    g.add_argument("--m", type=C.positive_int, default=None,
                   help="nearest gaps kept per context (default: chosen from the Poisson tail, see docs)")
    g.add_argument("--observable", default="max_weight",
                   help="observable whose susceptibility peaks (default max_weight)")
    g.add_argument("--lambda-min", type=C.positive_real, default=None,
                   help="bracket grid: smallest beta/n^(2/alpha) (default lambda*/8; widened if the peak is at an end)")
    g.add_argument("--lambda-max", type=C.positive_real, default=None,
                   help="bracket grid: largest beta/n^(2/alpha) (default 8 lambda*)")
    g.add_argument("--grid-points", type=C.positive_int, default=16, help="bracket grid points (default 16)")
    C.add_output_arguments(p)
    from ._common import add_parallel_arguments

    add_parallel_arguments(p, resume=True)


def run(args):
    t0 = time.perf_counter()
    from ..runtime.devices import is_writer

    parallel = C.start_from_args(args)
    law = C.geometry_from_args(args)
    if args.n_max <= args.n_min:
        raise InputError(f"--n-max ({args.n_max:g}) must be larger than --n-min ({args.n_min:g})")
    if args.n_min < 2:
        raise InputError(f"--n-min must be >= 2, got {args.n_min}")
    if args.seeds < 2:
        raise InputError(f"--seeds must be >= 2 for a standard error, got {args.seeds}")
    if args.n_points < 2:
        raise InputError(f"--n-points must be >= 2 for a fit, got {args.n_points}")
    if (args.lambda_min is None) != (args.lambda_max is None):
        raise InputError("--lambda-min and --lambda-max go together (give both, or neither for lambda*/8 .. 8 lambda*)")
    if args.lambda_min is not None and args.lambda_max <= args.lambda_min:
        raise InputError(f"--lambda-max ({args.lambda_max:g}) must be larger than --lambda-min ({args.lambda_min:g})")
    out = C.setup(args, NAME)
    import jax

    from ..observables import OBSERVABLE_NAMES
    from ..runtime.ensemble import SAMPLERS
    from ..scaling import scaling_scan

    C.check_choice("--sampler", args.sampler, SAMPLERS)
    C.check_choice("--observable", args.observable, OBSERVABLE_NAMES)
    ns = np.unique(np.round(np.geomspace(args.n_min, args.n_max, args.n_points)).astype(np.int64)).tolist()
    progress = C.Progress(len(ns), "scaling", quiet=args.quiet or args.json)
    from ..runtime.checkpoint import CellStore
    from ._common import run_config

    dtype = "float64" if jax.config.jax_enable_x64 else "float32"
    store = CellStore(out, run_config(args, command=NAME, ns=ns, dtype=dtype), resume=args.resume)
    res = scaling_scan(
        law, ns, key=key_from_seed(args.seed), seeds=args.seeds, sampler=args.sampler, m=args.m,
        observable=args.observable, grid_points=args.grid_points,
        lambda_range=None if args.lambda_min is None else (args.lambda_min, args.lambda_max),
        progress=progress, devices=parallel["local_devices"], checkpoint=store,
        cell_seeds=args.cell_seeds or max(1, -(-args.seeds // 4)),
    )
    lam_theory = C.lambda_star_of(law) if args.observable == "max_weight" else None
    # lambda* with the exponent fixed at 2/alpha: weighted mean of log(beta_peak / n^(2/alpha)); far more precise
    # than the free fit's intercept e^a, which extrapolates to n = 1
    on_edge = np.zeros(len(res.n), bool) if res.on_edge is None else np.asarray(res.on_edge, bool)
    w = np.where(on_edge, 0.0, (res.beta_peak / res.beta_peak_se) ** 2)  # edge peaks are bounds: not in the fits
    log_lam = float(np.sum(w * np.log(res.lambda_peak)) / np.sum(w))
    chi2_fixed = float(np.sum(w * (np.log(res.lambda_peak) - log_lam) ** 2))
    k_fit = int(np.sum(~on_edge))
    birge_fixed = max(1.0, float(np.sqrt(chi2_fixed / (k_fit - 1)))) if k_fit > 1 else 1.0  # as the free fit
    lam_fixed = float(np.exp(log_lam))
    lam_fixed_se = float(np.exp(log_lam) / np.sqrt(np.sum(w))) * birge_fixed
    fit = res.fit
    result = {
        "geometry": res.law_name,
        "d": res.d,
        "alpha": res.alpha,
        "C": res.C,
        "observable": args.observable,
        "seeds": res.seeds,
        "sampler": res.sampler,
        "m": res.m,
        "n": res.n,
        "beta_peak": res.beta_peak,
        "beta_peak_se": res.beta_peak_se,
        "lambda_peak": res.lambda_peak,
        "lambda_peak_se": res.beta_peak_se / res.n ** (2 / res.alpha),
        "value_at_peak": res.value_at_peak,
        "truncation_bound": res.truncation_bound,
        "on_edge": on_edge,  # True: the peak stayed on a grid edge after widening (a bound), left out of the fits
        "bulk": res.bulk,  # True: the bulk term is on where it pays, truncation_bound its CLT error (scaling_scan)
        "chi_error": res.chi_error,
        "peak_shift": res.peak_shift,
        "exponent": fit.b,
        "exponent_se": fit.b_se,
        "exponent_ci95": fit.ci95[1],
        "exponent_theory": res.exponent_theory,
        "exponent_z": (fit.b - res.exponent_theory) / fit.b_se,
        "lambda_star": fit.prefactor,
        "lambda_star_se": fit.prefactor_se,
        "lambda_star_theory": lam_theory,
        "lambda_star_z": None if lam_theory is None else (fit.prefactor - lam_theory) / fit.prefactor_se,
        "lambda_star_fixed_exponent": lam_fixed,
        "lambda_star_fixed_exponent_se": lam_fixed_se,
        "fit_chi2": fit.chi2,
        "fit_dof": fit.dof,
        "fit_birge": fit.birge,
        "dtype": dtype,
        "parallel": parallel,
        "checkpoint": store.folder,
    }
    if res.fit_finite_size is not None:
        f2 = res.fit_finite_size
        result["finite_size_fit"] = {
            "exponent": f2.b, "exponent_se": f2.b_se, "lambda_star": f2.prefactor, "lambda_star_se": f2.prefactor_se,
            "c": f2.c, "c_se": f2.c_se, "omega": f2.omega, "chi2": f2.chi2, "dof": f2.dof,
        }
    result["files"] = _write(out, res, result, args) if is_writer() else {}
    result["elapsed_s"] = time.perf_counter() - t0
    return result, _table(result)


def _write(out, res, result, args):
    import xarray as xr

    from ..runtime import io

    ds = xr.Dataset(
        {
            "beta_peak": ("n", res.beta_peak),
            "beta_peak_se": ("n", res.beta_peak_se),
            "value_at_peak": ("n", res.value_at_peak),
            "chi_max": ("n", res.chi_max),
            "truncation_bound": ("n", res.truncation_bound),
            "m": ("n", res.m),
            "collapse_mean": (("n", "lambda"), res.collapse_mean),
            "collapse_se": (("n", "lambda"), res.collapse_se),
        },
        coords={"n": res.n, "lambda": res.collapse_lambda},
        attrs={
            "geometry": res.law_name, "d": res.d, "alpha": res.alpha, "C": res.C, "sampler": res.sampler,
            "seeds": res.seeds, "observable": result["observable"],
            "exponent": result["exponent"], "exponent_se": result["exponent_se"],
            "lambda_star": result["lambda_star"], "lambda_star_se": result["lambda_star_se"],
            "provenance": io.provenance({k: v for k, v in vars(args).items() if not k.startswith("_")}),
            "run": {"seed": args.seed, "dtype": result["dtype"], "parallel": result["parallel"]},
        },
    )
    files = {"results": io.save_dataset(os.path.join(out, "scaling.nc"), ds)}
    files["figure_peaks"] = scaling_peaks_figure(os.path.join(out, "beta_peak.png"), res, result)
    limit = _poisson_curve(res, res.collapse_lambda) if result["observable"] == "max_weight" else None
    files["figure_collapse"] = scaling_collapse_figure(os.path.join(out, "collapse.png"), res, result, limit)
    files["json"] = os.path.join(out, "scaling.json")
    io.save_json(files["json"], {**result, "files": files, "provenance": io.provenance(C.run_config(args))})
    return files




def _poisson_curve(res, lam):
    try:
        from ..theory.poisson import poisson_expected_max_weight
    except ImportError:
        return None
    h = res.alpha / 2
    try:
        return np.array([float(poisson_expected_max_weight(h, res.C * x ** (-h))) for x in lam])
    except Exception:  # noqa: BLE001 - a figure decoration must not fail the run
        return None


def _table(r):
    rows = []
    for i, n in enumerate(r["n"]):
        rows.append([
            f"{n:.4g}", r["m"][i],
            f"{r['beta_peak'][i]:.5g} +- {r['beta_peak_se'][i]:.2g}",
            f"{r['lambda_peak'][i]:.4f} +- {r['lambda_peak_se'][i]:.4f}",
            r["value_at_peak"][i], f"{r['truncation_bound'][i]:.1e}", "EDGE" if r["on_edge"][i] else "",
        ])
    head = (f"{r['geometry']}  d={r['d']}  alpha={r['alpha']:g}  C={r['C']:.5g}  seeds={r['seeds']}  "
            f"sampler={r['sampler']}  dtype={r['dtype']}  observable={r['observable']}")
    table = C.format_table(
        ["n", "m", "beta_peak +- se", "beta_peak/n^(2/alpha)", "E[obs] at peak", "trunc. bound", "on_edge"], rows,
        title=head
    )
    lam_t = r["lambda_star_theory"]
    lines = [
        table,
        "",
        f"fit log beta_peak = a + b log n ({int(np.sum(~np.asarray(r['on_edge'], bool)))} points"
        + (f", {int(np.sum(r['on_edge']))} on a grid edge left out" if np.any(r["on_edge"]) else "")
        + f", chi2/dof = {r['fit_chi2']:.2f}/{r['fit_dof']};"
        f" se x Birge ratio {r['fit_birge']:.2f}):",
        f"  exponent b = {r['exponent']:.4f} +- {r['exponent_se']:.4f}   theory 2/alpha = {r['exponent_theory']:.4f}"
        f"   (z = {r['exponent_z']:+.2f})",
        f"  lambda* = e^a = {r['lambda_star']:.4f} +- {r['lambda_star_se']:.4f}   theory "
        + (f"{lam_t:.5f}   (z = {r['lambda_star_z']:+.2f})" if lam_t is not None else "(theory module unavailable)"),
    ]
    lines.append(f"  lambda* with the exponent fixed at 2/alpha = {r['lambda_star_fixed_exponent']:.4f} +- "
                 f"{r['lambda_star_fixed_exponent_se']:.4f}")
    fs = r.get("finite_size_fit")
    if fs:
        lines.append(
            f"  with finite-size term c n^(-{fs['omega']:.3g}): exponent {fs['exponent']:.4f}"
            f" +- {fs['exponent_se']:.4f}, lambda* {fs['lambda_star']:.4f} +- {fs['lambda_star_se']:.4f}"
        )
    lines.append(f"elapsed {r['elapsed_s']:.1f} s" if "elapsed_s" in r else "")
    lines.extend(f"{k}: {v}" for k, v in r["files"].items())
    return "\n".join(line for line in lines if line is not None)
