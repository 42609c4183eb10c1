"""``phasejax limit-laws``: finite-n simulation against the limit law of each regime, with distances."""

from __future__ import annotations

import math
import os

import numpy as np

from .._checks import InputError
from . import _common as C

NAME = "limit-laws"
HELP = "simulate each regime at growing n and measure the distance to its limit law (sub, critical, super)"


def add_arguments(p):
    g = p.add_argument_group("regimes")
    g.add_argument("--d", type=int, default=3, help="dimension, keys uniform on S^(d-1) (default 3)")
    g.add_argument("--beta", type=C.positive_real, default=5.0, help="subcritical: fixed beta (default 5)")
    g.add_argument("--lambda", dest="lam", type=C.positive_real, default=1.0,
                   help="critical: beta = lambda n^(2/(d-1)) (default 1)")
    g.add_argument("--n-max", type=C.count, default=10_000, help="largest n of the series (default 1e4)")
    g.add_argument("--seeds", type=C.positive_int, default=2000, help="contexts per n (default 2000)")
    g.add_argument("--entropy-n", type=C.count, default=1_000_000,
                   help="n of the entropy-crossover curve (default 1e6)")
    C.add_output_arguments(p)
    from ..distributed import add_parallel_arguments

    add_parallel_arguments(p)


def run(args):
    from .. import distributed

    parallel = distributed.start_from_args(args)
    dev = parallel["local_devices"]
    if args.d < 3:
        raise InputError(f"--d must be >= 3 for the three limit laws (the tail law needs h > 1/2), got {args.d}")
    if args.n_max < 100:
        raise InputError(f"--n-max must be >= 100, got {args.n_max}")
    if args.seeds < 50:
        raise InputError(f"--seeds must be >= 50 for the distribution tests, got {args.seeds}")
    out = C.setup(args, "limit-laws")
    import jax

    from .. import limits

    key = jax.random.key(args.seed)
    decades = int(math.floor(math.log10(args.n_max)))
    n_sub = [10**k for k in range(2, decades + 1)]
    n_crit = [10**k for k in range(1, decades + 1)]
    prog = C.Progress(4, "limit-laws", quiet=args.quiet or args.json)
    sub = limits.subcritical_fluctuations(args.d, args.beta, n_sub, key=jax.random.fold_in(key, 1),
                                          seeds=max(50, args.seeds // 2), devices=dev)
    prog.update(1, "subcritical")
    crit = limits.critical_laws(args.d, args.lam, n_crit, key=jax.random.fold_in(key, 2), seeds=args.seeds,
                                ppp_seeds=10 * args.seeds, devices=dev)
    prog.update(1, "critical")
    sup = limits.supercritical_tail_check(args.d, [3.0, 10.0, 30.0, 100.0, 300.0, 1000.0], args.n_max,
                                          key=jax.random.fold_in(key, 3), seeds=2 * args.seeds, devices=dev)
    prog.update(1, "supercritical")
    crit_beta = args.entropy_n ** (2 / (args.d - 1))
    ent = limits.entropy_crossover(args.d, args.entropy_n, np.geomspace(1e-2, 30 * crit_beta, 40),
                                   key=jax.random.fold_in(key, 4), seeds=8, devices=dev)
    prog.update(1, "entropy")
    result = {
        "d": args.d,
        "subcritical": _strip(sub),
        "critical": _strip({k: v for k, v in crit.items() if not k.startswith("samples")}),
        "supercritical": _strip(sup),
        "entropy_crossover": _strip(ent),
        "parallel": parallel,
    }
    result["files"] = _write(out, result, crit, args) if distributed.is_writer() else {}
    return result, _table(result)


def _strip(d):
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def _write(out, r, crit, args):
    from .. import io

    files = {
        "figure_subcritical": _fig_sub(os.path.join(out, "subcritical.png"), r["subcritical"]),
        "figure_critical": _fig_crit(os.path.join(out, "critical.png"), r["critical"], crit),
        "figure_supercritical": _fig_sup(os.path.join(out, "supercritical.png"), r["supercritical"]),
        "figure_entropy": _fig_ent(os.path.join(out, "entropy_crossover.png"), r["entropy_crossover"]),
    }
    files["json"] = io.save_json(os.path.join(out, "limit_laws.json"), {**r, "files": files,
                                 "provenance": io.provenance({k: v for k, v in vars(args).items()
                                                              if not k.startswith("_")})})
    return files


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fig_sub(path, s):
    from .. import io

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.3))
    n = np.array(s["n"])
    ax.errorbar(n, s["n_var_par"], yerr=2 * np.array(s["n_var_par_se"]), fmt="o", capsize=3,
                label="n Var(y parallel to q) (+-2 se)")
    ax.errorbar(n, s["n_var_perp"], yerr=2 * np.array(s["n_var_perp_se"]), fmt="s", capsize=3,
                label="n Var(y perpendicular) (+-2 se)")
    ax.axhline(s["S_par"], color="C0", ls="--", label=f"theory S_par = {s['S_par']:.4f}")
    ax.axhline(s["S_perp"], color="C1", ls="--", label=f"theory S_perp = {s['S_perp']:.4f}")
    ax.set_xscale("log")
    ax.set_xlabel("context length n (keys)")
    ax.set_ylabel("n x variance of the output component")
    ax.set_title(f"Subcritical: Gaussian fluctuations, d={s['d']}, beta={s['beta']:g}, {s['seeds']} contexts/n",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return io.save_figure(fig, path)


def _fig_crit(path, c, crit):
    from .. import io

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    ax = axes[0]
    n = np.array(c["n"])
    for name, label in (("ks_max_weight", "max weight"), ("ks_entropy", "entropy"), ("ks_w2", "$W_{(2)}$"),
                        ("ks_w3", "$W_{(3)}$")):
        if name in c:
            ax.plot(n, c[name], "o-", label=label)
    ax.axhline(c["ks_noise"], color="gray", ls=":", label="95% KS noise level")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("context length n (keys)")
    ax.set_ylabel("two-sample KS distance to the Poisson limit")
    ax.set_title(f"Critical window, d={c['d']}, lambda={c['lambda']:g} (rho={c['rho']:.3g})", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[1]
    for sample, label, style in ((crit["samples_largest_n"]["max_weight"], f"n = {int(n[-1]):.0e}", "-"),
                                 (crit["samples_limit"]["max_weight"], "Poisson limit", "--")):
        x = np.sort(sample)
        ax.plot(x, np.arange(1, x.size + 1) / x.size, style, label=label)
    ax.axvline(c["E_max_weight_limit"], color="k", lw=0.8, ls=":", label="E[max weight], limit (quadrature)")
    ax.set_xlabel("max weight $W_{(1)}$")
    ax.set_ylabel("empirical CDF")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return io.save_figure(fig, path)


def _fig_sup(path, s):
    from .. import io

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.3))
    lam = np.array(s["lambda"])
    ax.errorbar(lam, s["one_minus_E_max_weight"], yerr=2 * np.array(s["one_minus_E_max_weight_se"]), fmt="o",
                capsize=3, label=f"simulation, n = {s['n']:.0e} (+-2 se)")
    lam_f = np.geomspace(lam.min(), lam.max(), 100)
    ax.plot(lam, s["poisson_exact"], "k-", lw=1, label="Poisson limit (exact quadrature)")
    ax.plot(lam, s["tail_law"], "r--", lw=1, label="tail law log(2) h Gamma(2-1/h) rho^(1/h)")
    del lam_f
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("$\\lambda = \\beta / n^{2/(d-1)}$")
    ax.set_ylabel("1 - E[max weight]")
    ax.set_title(f"Supercritical collapse onto the nearest key, d={s['d']}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return io.save_figure(fig, path)


def _fig_ent(path, e):
    from .. import io

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3))
    b = np.array(e["beta"])
    ax = axes[0]
    ax.errorbar(b, e["entropy"], yerr=2 * np.array(e["entropy_se"]), fmt="o", ms=3, label=f"n = {e['n']:.0e}")
    ax.plot(b, e["entropy_limit"], "k--", lw=1, label="n = inf: log n + log M_d - beta A_d")
    ax.axvline(e["critical_beta"], color="gray", ls=":", label="$n^{2/(d-1)}$")
    ax.set_xscale("log")
    ax.set_xlabel("$\\beta$")
    ax.set_ylabel("entropy H (nats)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    ax.errorbar(b, e["slope"], yerr=2 * np.array(e["slope_se"]), fmt="o", ms=3, label="measured dH/dlog beta")
    ax.plot(b, e["slope_limit"], "k--", lw=1, label="n = inf: $-\\beta^2 A_d'$")
    ax.axhline(-(e["d"] - 1) / 2, color="r", ls=":", label=f"plateau -(d-1)/2 = {-(e['d'] - 1) / 2:g}")
    ax.axvline(e["critical_beta"], color="gray", ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("$\\beta$")
    ax.set_ylabel("dH / d log beta (nats)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle(f"Entropy crossovers, d={e['d']}: global -> local averaging -> Poisson -> 0", fontsize=10)
    return io.save_figure(fig, path)


def _table(r):
    s, c, p, e = r["subcritical"], r["critical"], r["supercritical"], r["entropy_crossover"]
    t1 = C.format_table(
        ["n", "n Var_par", "theory", "n Var_perp", "theory", "KS vs N(0,1)", "p"],
        [[n, f"{a:.4f}+-{ae:.4f}", s["S_par"], f"{b:.4f}+-{be:.4f}", s["S_perp"], k, kp]
         for n, a, ae, b, be, k, kp in zip(s["n"], s["n_var_par"], s["n_var_par_se"], s["n_var_perp"],
                                            s["n_var_perp_se"], s["ks_normal"], s["ks_normal_p"], strict=True)],
        title=f"SUBCRITICAL d={s['d']} beta={s['beta']:g}: sqrt(n)(y - A q), A = {s['A']:.6f}",
    )
    cols = ["n", "E[W1] +- se", "KS W1", "KS H"] + [k.upper().replace("KS_", "KS ") for k in ("ks_w2", "ks_w3")
                                                   if k in c]
    rows = []
    for i, n in enumerate(c["n"]):
        row = [int(n), f"{c['E_max_weight'][i]:.4f}+-{c['E_max_weight_se'][i]:.4f}", c["ks_max_weight"][i],
               c["ks_entropy"][i]]
        row += [c[k][i] for k in ("ks_w2", "ks_w3") if k in c]
        rows.append(row)
    t2 = C.format_table(cols, rows, title=(
        f"CRITICAL d={c['d']} lambda={c['lambda']:g}: KS distance to the Poisson limit "
        f"(E[W1] limit = {c['E_max_weight_limit']:.5f}; 95% noise level {c['ks_noise']:.4f})"))
    t3 = C.format_table(
        ["lambda", "1-E[W1] +- se", "Poisson exact", "tail law", "measured/tail"],
        [[lam, f"{a:.3e}+-{ae:.1e}", pe, tl, ra] for lam, a, ae, pe, tl, ra in zip(
            p["lambda"], p["one_minus_E_max_weight"], p["one_minus_E_max_weight_se"], p["poisson_exact"],
            p["tail_law"], p["ratio_to_tail"], strict=True)],
        title=f"SUPERCRITICAL d={p['d']} n={p['n']:g}",
    )
    idx = np.linspace(0, len(e["beta"]) - 1, 10).round().astype(int)
    t4 = C.format_table(
        ["beta", "H +- se", "H (n=inf)", "dH/dlogb +- se", "slope (n=inf)"],
        [[e["beta"][i], f"{e['entropy'][i]:.4f}+-{e['entropy_se'][i]:.4f}", e["entropy_limit"][i],
          f"{e['slope'][i]:.4f}+-{e['slope_se'][i]:.4f}", e["slope_limit"][i]] for i in idx],
        title=f"ENTROPY d={e['d']} n={e['n']:g}: plateau slope -(d-1)/2 = {-(e['d'] - 1) / 2:g}",
    )
    files = "\n".join(f"{k}: {v}" for k, v in r["files"].items())
    return "\n\n".join([t1, t2, t3, t4, files])
