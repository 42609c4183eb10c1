"""``phasejax diagnose KEYS.npy [--query Q.npy] [--beta B]``: the local exponent of real keys and its consequences.

1. alpha +- se (exact chi^2 95% interval) and C from the nearest-neighbour gaps of the keys to the queries
   (:func:`phasejax.estimate.estimate_tail`: pooled Hill, k by the goodness-of-fit rule).
2. The predicted susceptibility peak beta_peak(n) = lambda*(alpha, C) n^{2/alpha} +- se (docs/theory.md §c, §d).
3. With ``--beta``: the regime at each n (lambda/lambda*, Poisson-limit E[max weight], and the name: "sub"
   below E_W = 0.1, "super" above 0.9, "critical" between; ``--window`` changes the edges) and the context
   lengths where that beta enters (n_enter) and leaves (n_exit) the critical window.
4. The prediction checked on the data itself: for subsample sizes n' <= N/2, ``--seeds`` contexts each draw
   n' keys without replacement (and one of the queries, in turn), the gaps give E[max weight] as a function
   of beta (common random numbers), and :func:`phasejax.transition.find_peak` locates the chi peak
   (``beta_peak_measured`` +- delta-method se).

Queries: ``--query`` (a vector (d,) or rows (Q, d)); without it ``--queries`` random keys (default 16) are
held out of the key set and used as queries ("held-out keys"), so each query is a typical point of the data.
Keys and queries are normalised to unit length (beta multiplies the cosine, DESIGN).

A flax model is diagnosed from Python with :func:`phasejax.estimate.diagnose_flax` (no ``--flax`` flag: a
model cannot be loaded from a file without its code).

JSON keys: ``alpha``, ``alpha_se``, ``alpha_ci95``, ``C``, ``C_se``, ``lambda_star``, ``n`` (all context
lengths), ``beta_peak`` / ``beta_peak_se`` (predicted, per n), ``beta_peak_measured`` / ``_se`` (null where
n > N/2), ``regime`` (per n, null without --beta), ``lambda_ratio``, ``E_max_weight``, ``n_enter``,
``n_exit``, ``files``.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from .._checks import InputError
from ..plots import diagnose_figure
from . import _common as C

NAME = "diagnose"
HELP = "local exponent alpha, C, predicted and measured beta_peak(n), and the regime of a beta, for keys in a .npy"


def add_arguments(p):
    p.add_argument("keys", help="keys as a plain .npy array (N, d); rows are normalised (pickles are refused)")
    g = p.add_argument_group("queries and temperature")
    g.add_argument("--query", default=None, help=".npy query vector (d,) or queries (Q, d)")
    g.add_argument("--queries", type=C.positive_int, default=16,
                   help="without --query: this many random keys are held out as queries (default 16)")
    g.add_argument("--beta", type=C.positive_real, default=None,
                   help="an inverse temperature on <q,k> (unit vectors): report its regime at each n")
    g.add_argument("--window", type=C.positive_real, nargs=2, default=(0.1, 0.9), metavar=("LOW", "HIGH"),
                   help="the band of Poisson-limit E[max weight] called critical, [LOW, HIGH] "
                   "(default 0.1 0.9; 'window' in the JSON)")
    g = p.add_argument_group("tail fit")
    C.add_k_level_arguments(g, k_help="gaps per query: 'gof' (largest k passing the KS, trend and stability tests; "
                            "default), 'min_ks', or K")
    g = p.add_argument_group("context lengths")
    g.add_argument("--n-min", type=C.count, default=32, help="smallest subsample size n' (default 32)")
    g.add_argument("--n-points", type=C.positive_int, default=5,
                   help="subsample sizes from --n-min to N/2, log-spaced (default 5)")
    g.add_argument("--n-max", type=C.count, default=1_000_000,
                   help="extrapolate the prediction (by decades) up to this n (default 1e6)")
    g.add_argument("--seeds", type=C.positive_int, default=128,
                   help="subsampled contexts per n' (default 128; the delta-method se is optimistic below ~100)")
    g.add_argument("--no-measure", action="store_true", help="skip the measured beta_peak(n') on subsamples")
    C.add_output_arguments(p)


def _load(args):
    from ..laws.empirical import load_npy

    keys = load_npy(args.keys, "keys")
    if keys.dtype.kind not in "iuf":
        raise InputError(f"keys: {args.keys!r} must hold real numbers, got dtype {keys.dtype}")
    if keys.ndim != 2 or keys.shape[1] < 2:
        raise InputError(f"keys: {args.keys!r} must be a matrix (N, d) with d >= 2, got shape {keys.shape}")
    query = None
    if args.query is not None:
        query = load_npy(args.query, "query")
        if query.dtype.kind not in "iuf":
            raise InputError(f"query: {args.query!r} must hold real numbers, got dtype {query.dtype}")
        if query.ndim not in (1, 2):
            raise InputError(f"query: {args.query!r} must be a vector (d,) or a matrix (Q, d), got shape {query.shape}")
        if query.shape[-1] != keys.shape[1]:
            raise InputError(f"query has dimension {query.shape[-1]} but the keys have dimension {keys.shape[1]}")
    return keys, query


def _measure(fit, queries, keys, sizes, seeds, seed, progress):
    """beta_peak(n') on subsamples of the keys: (beta, se, on_edge, truncation bound) per size."""
    import jax.numpy as jnp

    from ..estimate.tail import smallest_gaps
    from ..scaling import gap_curve, truncation_bound
    from ..transition import find_peak

    rng = np.random.default_rng(seed)
    curve = gap_curve("max_weight")
    lam = fit.lambda_star()
    dtype = jnp.result_type(float)
    out = []
    for n_sub in sizes:
        m = min(n_sub, 1024)
        rows = []
        for s in range(seeds):
            sub = keys[rng.choice(keys.shape[0], size=n_sub, replace=False)]
            rows.append(smallest_gaps(queries[s % queries.shape[0]], sub, m)[0])
        gaps = jnp.asarray(np.stack(rows), dtype)
        if float(jnp.min(gaps)) <= 0:
            gaps = jnp.maximum(gaps, jnp.finfo(dtype).tiny)
        grid = jnp.log(jnp.asarray(lam * n_sub ** (2 / fit.alpha) * np.geomspace(1 / 30, 30, 21), dtype))
        peak = find_peak(curve, grid, gaps)
        bound = float(truncation_bound(gaps, n_sub, peak.beta)[0])
        out.append((float(peak.beta), float(peak.beta_se), bool(peak.on_edge), bound))
        progress.update(1, f"n'={n_sub}: beta_peak = {float(peak.beta):.4g}")
    return out


def run(args):
    t0 = time.perf_counter()
    keys, query = _load(args)
    lo_w, hi_w = C.band_from_args(args)
    if args.seeds < 2 and not args.no_measure:
        raise InputError(f"--seeds must be >= 2 for a standard error, got {args.seeds}")
    out = C.setup(args, NAME)

    from ..estimate.tail import estimate_tail
    from ..theory.regimes import band_context_lengths, regime

    fit, queries, keys_used = estimate_tail(keys, query, num_queries=args.queries, seed=args.seed, k=args.k,
                                            level=args.level)
    n_keys = keys_used.shape[0]
    hi_sub = n_keys // 2
    sizes = []
    if not args.no_measure and hi_sub >= max(args.n_min, 8):
        sizes = np.unique(np.round(np.geomspace(args.n_min, hi_sub, args.n_points)).astype(np.int64)).tolist()
    top = max(sizes) if sizes else args.n_min
    extra = [int(10**e) for e in range(int(math.floor(math.log10(top))) + 1, int(math.log10(args.n_max)) + 1)
             if 10**e > top]
    ns = sizes + extra
    if not ns:
        ns = [args.n_min]
    progress = C.Progress(len(sizes), "diagnose: subsample peaks", quiet=args.quiet or args.json)
    measured = _measure(fit, queries, keys_used, sizes, args.seeds, args.seed, progress) if sizes else []
    n_arr = np.asarray(ns, np.float64)
    if not (math.isfinite(fit.C) and fit.C > 0 and math.isfinite(fit.alpha) and fit.alpha > 0):
        raise InputError(
            f"keys: the tail fit of {args.keys!r} (shape {keys.shape}) has alpha = {fit.alpha:.4g}, C = {fit.C:.4g}, "
            "outside float64 (the local exponent ~ d - 1 is too large for the number of keys); "
            "use keys of lower dimension or more rows")
    try:
        bp, bp_se = fit.beta_peak(n_arr)
    except (ValueError, OverflowError, ZeroDivisionError):  # lambda*^(-h) C outside float64
        bp = np.full_like(n_arr, np.nan)
    if not (np.all(np.isfinite(bp)) and np.all(bp > 0)):
        raise InputError(f"keys: the predicted beta_peak(n) of {args.keys!r} is not finite (alpha = {fit.alpha:.4g}, "
                         f"C = {fit.C:.4g}); use keys of lower dimension or more rows")
    lam_star = fit.lambda_star()
    meas = [None] * len(ns)
    meas_se = [None] * len(ns)
    on_edge = [None] * len(ns)
    bounds = [None] * len(ns)
    for i, r in enumerate(measured):
        meas[i], meas_se[i], on_edge[i], bounds[i] = r
    result = {
        "keys_file": os.path.abspath(args.keys),
        "d": int(keys.shape[1]),
        "N": int(n_keys),
        "num_queries": int(queries.shape[0]),
        "query_source": "file" if query is not None else "held-out random keys",
        "alpha": fit.alpha, "alpha_se": fit.alpha_se, "alpha_ci95": fit.alpha_ci95,
        "C": fit.C, "C_se": fit.C_se, "C_ci95": fit.C_ci95, "log_C_sd_queries": fit.log_C_sd,
        "k": fit.k, "k_rule": fit.rule, "ks_pvalue": fit.ks_pvalue, "trend_pvalue": fit.trend_pvalue,
        "stability_pvalue": fit.stability_pvalue, "gof_ok": fit.gof_ok, "u_max": fit.u_max,
        "zero_gaps_dropped": fit.zero_gaps_dropped,
        "exponent_theory": 2 / fit.alpha,
        "lambda_star": lam_star,
        "n": n_arr, "measured": [i < len(measured) for i in range(len(ns))],
        "beta_peak": bp, "beta_peak_se": bp_se,
        "beta_peak_measured": meas, "beta_peak_measured_se": meas_se,
        "measured_on_edge": on_edge, "truncation_bound": bounds, "seeds": args.seeds if sizes else 0,
        "window": [lo_w, hi_w],
    }
    if len(measured) >= 2:
        from ..scaling import fit_power_law

        mb = np.array([r[0] for r in measured])
        ms = np.array([r[1] for r in measured])
        if np.all(np.isfinite(ms)) and np.all(ms > 0):
            pf = fit_power_law(np.asarray(sizes, np.float64), mb, ms)
            result.update(exponent_measured=pf.b, exponent_measured_se=pf.b_se)
        result["lambda_measured"] = (mb / np.asarray(sizes, np.float64) ** (2 / fit.alpha)).tolist()
    reg = None
    if args.beta is not None:
        reg = regime(args.beta, n_arr, fit.alpha, fit.C, band=(lo_w, hi_w))
        n_in, n_out = band_context_lengths(args.beta, fit.alpha, fit.C, band=(lo_w, hi_w))
        result.update(beta=args.beta, regime=list(reg.name), lambda_ratio=reg.lambda_ratio,
                      E_max_weight=reg.E_max_weight, lambda_window=list(reg.lambda_band),
                      n_enter=n_in, n_exit=n_out)
    else:
        from ..theory.regimes import max_weight_band

        lw = max_weight_band(fit.alpha, fit.C, (lo_w, hi_w))
        result.update(beta=None, regime=None, lambda_ratio=None, E_max_weight=None, lambda_window=list(lw),
                      n_enter=None, n_exit=None)
    import jax

    result["dtype"] = "float64" if jax.config.jax_enable_x64 else "float32"
    result["files"] = _write(out, fit, result)
    result["elapsed_s"] = time.perf_counter() - t0
    return result, _table(result)


def _write(out, fit, r):
    from ..runtime import io

    files = {"figure": diagnose_figure(os.path.join(out, "diagnose.png"), fit, r),
             "json": os.path.join(out, "diagnose.json")}
    io.save_json(files["json"], {**r, "files": files, "provenance": io.provenance()})
    return files



def _fmt_opt(v, spec=".4g"):
    return "-" if v is None else format(v, spec)


def _table(r):
    lo, hi = r["alpha_ci95"]
    head = [
        f"keys {r['keys_file']}: N = {r['N']}, d = {r['d']}, {r['num_queries']} queries ({r['query_source']})",
        f"alpha = {r['alpha']:.4g} +- {r['alpha_se']:.2g}  (95% CI [{lo:.4g}, {hi:.4g}]; k = {r['k']} by "
        f"'{r['k_rule']}', KS p = {r['ks_pvalue']:.2g}, trend p = {r['trend_pvalue']:.2g}, "
        f"stability p = {r['stability_pvalue']:.2g}"
        f"{'' if r['gof_ok'] else ', POWER LAW REJECTED at the chosen k'})",
        f"C = {r['C']:.4g} +- {r['C_se']:.2g}   lambda*(alpha, C) = {r['lambda_star']:.4g}   "
        f"2/alpha = {r['exponent_theory']:.4g}   local scale u_max = {r['u_max']:.3g}",
    ]
    if "exponent_measured" in r:
        head.append(f"measured exponent on subsamples: {r['exponent_measured']:.4g} +- {r['exponent_measured_se']:.2g}")
    headers = ["n", "beta_peak (pred.) +- se", "measured +- se"]
    if r["regime"] is not None:
        headers += ["lambda/lambda*", "E[max w]", "regime"]
    rows = []
    for i, n in enumerate(r["n"]):
        row = [f"{n:.4g}", f"{r['beta_peak'][i]:.5g} +- {r['beta_peak_se'][i]:.2g}",
               "-" if r["beta_peak_measured"][i] is None else
               f"{r['beta_peak_measured'][i]:.5g} +- {r['beta_peak_measured_se'][i]:.2g}"
               + (" (edge)" if r["measured_on_edge"][i] else "")]
        if r["regime"] is not None:
            row += [r["lambda_ratio"][i], r["E_max_weight"][i], r["regime"][i]]
        rows.append(row)
    lines = ["\n".join(head), "", C.format_table(headers, rows)]
    if r["regime"] is not None:
        lines.append(f"beta = {r['beta']:g} is critical (E[max weight] in {r['window'][0]:g}-{r['window'][1]:g}) for "
                     f"{_fmt_opt(r['n_enter'])} <= n <= {_fmt_opt(r['n_exit'])}: supercritical below, "
                     f"subcritical above (leaves the window at n = {_fmt_opt(r['n_exit'])})")
    lines.append(f"elapsed {r['elapsed_s']:.1f} s")
    lines.extend(f"{k}: {v}" for k, v in r["files"].items())
    return "\n".join(lines)


def head_table(diag) -> str:
    """The per-head table of a :class:`phasejax.estimate.HeadDiagnosis` (``diagnose_flax``)."""
    rows = []
    for i in range(len(diag.fits)):
        qs = diag.beta_eff_quantiles[i]
        rows.append([i, f"{qs[0]:.3g}/{qs[len(qs) // 2]:.3g}/{qs[-1]:.3g}",
                     f"{diag.alpha[i]:.3g} +- {diag.alpha_se[i]:.2g}", diag.C[i], diag.lambda_ratio[i],
                     diag.E_max_weight_poisson[i], diag.mean_max_weight[i], diag.regime[i]])
    lv = diag.beta_quantile_levels
    return C.format_table(
        ["head", f"beta_eff q{lv[0]:g}/q{lv[len(lv) // 2]:g}/q{lv[-1]:g}", "alpha +- se", "C",
         "lambda/lambda*", "E[max w] Poisson", "mean max w (layer)", "regime"],
        rows, title=f"flax attention: context length n = {diag.context_length}, scale s = {diag.scale:.4g}")
