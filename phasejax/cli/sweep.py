"""``phasejax sweep``: every observable over a beta grid for one key law, n and a seed ensemble."""

from __future__ import annotations

import math
import os

import numpy as np

from .._checks import InputError, check_int
from .._random import key_from_seed
from ..plots import sweep_figure
from . import _common as C

NAME = "sweep"
HELP = "observables (max weight, entropy, effective keys, ...) over a beta grid, mean +- se over seeds"


def add_arguments(p):
    C.add_geometry_arguments(p)
    g = p.add_argument_group("grid")
    g.add_argument("--n", type=C.count, default=100_000, help="keys per context (default 1e5; 1e6 notation ok)")
    g.add_argument("--beta-min", type=C.positive_real, default=None, help="smallest beta (default 1e-4 n^(2/alpha))")
    g.add_argument("--beta-max", type=C.positive_real, default=None, help="largest beta (default 1e2 n^(2/alpha))")
    g.add_argument("--beta-points", type=C.positive_int, default=64, help="log-spaced betas (default 64)")
    g.add_argument("--seeds", type=C.positive_int, default=8, help="independent contexts (default 8)")
    g.add_argument("--top-k", type=C.positive_int, default=5, help="k of the top-k mass (default 5)")
    g.add_argument("--chunk", type=C.positive_int, default=32768, help="keys per streaming chunk (default 32768)")
    g.add_argument(
        "--sampler", choices=("auto", "exact", "nearest"), default="auto",
        help="exact: all n gaps, O(n); nearest: the m nearest exactly plus the bulk by its conditional mean and "
        "CLT fluctuation, O(m) for any n; auto (default): nearest above 2^20 keys",
    )
    g.add_argument("--nearest-m", type=C.positive_int, default=256,
                   help="keys drawn exactly by the nearest sampler (default 256, capped at n)")
    C.add_output_arguments(p)
    from ._common import add_parallel_arguments

    add_parallel_arguments(p, resume=True)


def beta_grid(n: int, alpha: float, beta_min, beta_max, points: int) -> np.ndarray:
    log_scale = 2.0 * math.log(n) / alpha
    if not log_scale < math.log(1e300):  # n^(2/alpha) beyond float64 (alpha -> 0)
        raise InputError(f"--alpha {alpha:g}: beta_peak ~ n^(2/alpha) = e^{log_scale:.4g} overflows float64 at "
                         f"n = {n}; use a larger --alpha or a smaller --n")
    scale = math.exp(log_scale)
    lo = beta_min if beta_min is not None else 1e-4 * scale
    hi = beta_max if beta_max is not None else 1e2 * scale
    if not hi > lo:
        raise InputError(f"--beta-max ({hi:g}) must be larger than --beta-min ({lo:g})")
    return np.geomspace(lo, hi, points)


def run(args):
    from ..runtime.devices import is_writer

    parallel = C.start_from_args(args)
    law = C.geometry_from_args(args)
    n = check_int("n", args.n, minimum=1)
    out = C.setup(args, NAME)
    import jax

    from ..runtime.ensemble import choose_sampler, ensemble
    from ..runtime.memory import check_ensemble_memory

    sampler = choose_sampler(law, n, args.sampler)
    m = min(args.nearest_m, n) if sampler == "nearest" else None
    check_ensemble_memory(args.seeds, args.beta_points, m + 4096 if m is not None else min(args.chunk, n),
                          8 if jax.config.jax_enable_x64 else 4,
                          size_flag="--nearest-m" if m is not None else "--chunk")  # before the grid is built
    betas = beta_grid(n, law.alpha, args.beta_min, args.beta_max, args.beta_points)
    if m is not None and args.top_k > m:
        raise InputError(f"--top-k ({args.top_k}) must be <= --nearest-m ({m}) with the nearest sampler")
    progress = C.Progress(args.seeds, f"sweep seeds ({sampler} sampler)", quiet=args.quiet or args.json)
    from ..runtime.checkpoint import CellStore
    from ._common import run_config

    dtype = "float64" if jax.config.jax_enable_x64 else "float32"
    store = CellStore(out, run_config(args, command=NAME, betas=betas, sampler=sampler, nearest_m=m, dtype=dtype),
                      resume=args.resume)
    ens = ensemble(
        law, key_from_seed(args.seed), n, betas, seeds=args.seeds, top_k=args.top_k, chunk=args.chunk,
        progress=progress, sampler=sampler, m=m, devices=parallel["local_devices"], checkpoint=store,
        cell_seeds=args.cell_seeds or max(1, -(-args.seeds // 16)),
    )
    summary = ens.summary()
    scale = n ** (2.0 / law.alpha)
    result = {
        "geometry": type(law).__name__,
        "d": law.d,
        "alpha": law.alpha,
        "C": law.C,
        "n": n,
        "seeds": args.seeds,
        "seed": args.seed,
        "sampler": sampler,
        "nearest_m": m,
        "top_k": args.top_k,
        "dtype": dtype,
        "lambda": summary["beta"] / scale,
        "parallel": parallel,
        "checkpoint": store.folder,
    }
    result.update(summary)
    if sampler == "nearest":
        result["truncation_bound"] = _truncation_bound(law, key_from_seed(args.seed), n, betas, args, m)
    files = _write(out, law, n, args, ens, summary, result) if is_writer() else {}
    result["files"] = files
    return result, _table(result)


def _truncation_bound(law, key, n, betas, args, m):
    """Per beta, the largest over seeds of the nearest sampler's truncation bound (relative error
    of Z; phasejax.laws.nearest.Truncation.bound), for the same keys as the ensemble."""
    import jax
    import jax.numpy as jnp

    from ..observables import nearest_observables_with_bound

    keys = jax.random.split(key, args.seeds)
    b = jnp.asarray(betas, jnp.result_type(float))
    from ..runtime.devices import run_seeds

    bound = run_seeds(lambda k: nearest_observables_with_bound(law, k, n, b, m=m, top_k=args.top_k)[1].bound, keys,
                      devices=args.devices)
    return np.asarray(jnp.max(bound, axis=0))


def _write(out, law, n, args, ens, summary, result):
    import xarray as xr

    from ..observables import OBSERVABLE_NAMES
    from ..runtime import io

    per = ens.per_seed
    data = {name: (("seed", "beta"), np.asarray(getattr(per, name))) for name in OBSERVABLE_NAMES}
    for name in OBSERVABLE_NAMES:
        data[name + "_mean"] = ("beta", summary[name])
        data[name + "_se"] = ("beta", summary[name + "_se"])
    if "truncation_bound" in result:
        data["truncation_bound"] = ("beta", result["truncation_bound"])
    ds = xr.Dataset(
        data,
        coords={"beta": summary["beta"], "seed": np.arange(args.seeds), "lambda": ("beta", result["lambda"])},
        attrs={
            # netCDF3 attrs have no int64
            "geometry": result["geometry"], "d": law.d, "alpha": law.alpha, "C": law.C, "n": float(n),
            "sampler": result["sampler"], "nearest_m": -1 if result["nearest_m"] is None else result["nearest_m"],
            "entropy_units": "nats",
            "provenance": io.provenance({k: v for k, v in vars(args).items() if not k.startswith("_")}),
            "run": {"seed": args.seed, "dtype": result["dtype"], "parallel": result["parallel"]},
        },
    )
    files = {"results": io.save_dataset(os.path.join(out, "sweep.nc"), ds)}
    files["json"] = io.save_json(os.path.join(out, "sweep.json"),
                                 {**result, "files": files, "provenance": io.provenance(C.run_config(args))})
    files["figure"] = sweep_figure(os.path.join(out, "sweep.png"), law, n, summary, result, C.lambda_star_of(law))
    return files



def _table(r):
    beta = np.asarray(r["beta"])
    step = max(1, len(beta) // 16)
    rows = []
    for i in range(0, len(beta), step):
        rows.append([
            beta[i], r["lambda"][i],
            f"{r['max_weight'][i]:.4f}+-{r['max_weight_se'][i]:.4f}",
            f"{r['entropy'][i]:.4f}+-{r['entropy_se'][i]:.4f}",
            r["effective_keys"][i], r["inv_sum_w2"][i], r["top_k_mass"][i], r["mean_gap"][i],
        ])
    sampler = r["sampler"] + (f" (m={r['nearest_m']} nearest + bulk mean and CLT)" if r["nearest_m"] else "")
    head = (f"{r['geometry']}  d={r['d']}  alpha={r['alpha']:g}  C={r['C']:.5g}  n={r['n']:g}  "
            f"seeds={r['seeds']}  sampler={sampler}  dtype={r['dtype']}")
    table = C.format_table(
        ["beta", "lambda", "max_weight", "entropy", "eff_keys", "1/sum_w2", f"top{r['top_k']}", "<u>_w"],
        rows, title=head,
    )
    if "truncation_bound" in r:
        table += (f"\ntruncation: relative error of Z from the keys beyond the {r['nearest_m']} nearest "
                  f"<= {float(np.max(r['truncation_bound'])):.3g} over the grid (phasejax.laws.nearest.Truncation)")
    return table + "\n" + "\n".join(f"{k}: {v}" for k, v in r["files"].items())
