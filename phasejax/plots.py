"""Every matplotlib figure of phasejax, drawn from results (no computation here: the callers pass the
theory curves they want drawn). Figures are written atomically (:func:`save_figure`). matplotlib is
imported inside the functions, with the Agg backend, so importing this module costs nothing.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .phase import PhaseDiagram
from .runtime.io import atomic_write

__all__ = [
    "save_figure",
    "phase_diagram_figure",
    "scaling_peaks_figure",
    "scaling_collapse_figure",
    "sweep_figure",
    "heat_gain_figure",
    "diagnose_figure",
    "learn_figure",
    "subcritical_figure",
    "critical_figure",
    "supercritical_figure",
    "entropy_figure",
    "crossover_plane_figure",
    "gaussian_ratio_figure",
    "simplex_phase_figure",
    "local_exponent_figure",
    "heat_dynamics_figures",
    "learned_mse_figure",
    "precision_floor_figure",
    "model_lambda_figure",
    "model_max_weight_figure",
]


def save_figure(fig, path: str, **kwargs) -> str:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    fmt = os.path.splitext(path)[1].lstrip(".") or "png"
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, dpi=kwargs.pop("dpi", 130), bbox_inches="tight", **kwargs)
    plt.close(fig)
    return path


def phase_diagram_figure(pd: PhaseDiagram, path: str, *, schedules: dict | None = None, leaves: dict | None = None,
                       extra: dict | None = None, title: str | None = None) -> str:
    """Save the phase diagram (log-log n, beta; colour E[max weight]) with schedule curves.

    ``schedules``: name -> beta(n) on ``pd.n``; ``leaves``: name -> (n_leave, beta there) marked
    with an x; ``extra``: label -> (n, beta) drawn as points (e.g. exact finite-n peaks,
    predictor values).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(7.2, 5.2))
    mesh = ax.pcolormesh(pd.n, pd.beta, pd.E_max_weight, shading="auto", cmap="magma", vmin=0.0, vmax=1.0)
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label("E[max weight], Poisson limit (n = inf)")
    w = pd.window
    ax.plot(pd.n, pd.beta_peak, "w-", lw=2, label=f"$\\beta_{{peak}} = \\lambda^* n^{{2/\\alpha}}$, "
            f"$\\lambda^*$={w.lambda_star:.4g}")
    ax.fill_between(pd.n, pd.window_lo, pd.window_hi, color="white", alpha=0.18,
                    label=f"window: $\\chi \\geq \\chi_{{max}}/2$ ({w.lo:.2f}-{w.hi:.2f} $\\lambda^*$)")
    ax.plot(pd.n, pd.window_lo, "w:", lw=1)
    ax.plot(pd.n, pd.window_hi, "w:", lw=1)
    colors = plt.cm.tab10(np.arange(10))
    for i, (name, b) in enumerate((schedules or {}).items()):
        ax.plot(pd.n, b, "-", color=colors[i % 10], lw=1.6, label=name)
        nl = (leaves or {}).get(name)
        if nl is not None and nl[0] is not None:
            ax.plot([nl[0]], [nl[1]], "x", color=colors[i % 10], ms=10, mew=2.5)
    for j, (label, (nn, bb)) in enumerate((extra or {}).items()):
        ax.plot(nn, bb, "o" if j == 0 else "s", mfc="none", color="cyan" if j == 0 else "lime", ms=6, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(pd.n.min(), pd.n.max())
    ax.set_ylim(pd.beta.min(), pd.beta.max())
    ax.set_xlabel("context length n (keys the query can see)")
    ax.set_ylabel("$\\beta$ (multiplies the cosine $\\langle q,k\\rangle$)")
    c = pd.constants
    ax.set_title(title or f"{c.source}: alpha={c.alpha:g}, C={c.C:.4g}  (x: leaves the window)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return save_figure(fig, path)


def scaling_peaks_figure(path, res, r):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.errorbar(res.n, res.beta_peak, yerr=2 * res.beta_peak_se, fmt="o", ms=4, capsize=3,
                label=f"measured peak of $\\chi$ (+-2 se, {res.seeds} seeds)")
    nn = np.geomspace(res.n.min() / 1.5, res.n.max() * 1.5, 100)
    fit = res.fit
    ax.plot(nn, fit.prefactor * nn**fit.b, "-", color="C1",
            label=f"fit: {fit.prefactor:.3f} $n^{{{fit.b:.3f} \\pm {fit.b_se:.3f}}}$")
    if r["lambda_star_theory"] is not None:
        ax.plot(nn, r["lambda_star_theory"] * nn ** res.exponent_theory, "k--", lw=1,
                label=f"theory: $\\lambda^*$={r['lambda_star_theory']:.4f} $n^{{2/\\alpha}}$, "
                f"2/alpha={res.exponent_theory:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("context length n (keys)")
    ax.set_ylabel("$\\beta_{peak}(n)$ (inverse temperature on $\\langle q,k\\rangle$)")
    ax.set_title(f"{res.law_name} d={res.d}, alpha={res.alpha:g}: susceptibility peak of E[{r['observable']}]",
                 fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path)


def scaling_collapse_figure(path, res, r, limit=None):
    """E[observable] against lambda for every n, with the Poisson-limit curve ``limit`` (on ``res.collapse_lambda``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, ax = plt.subplots(figsize=(6, 4.5))
    lam = res.collapse_lambda
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(res.n)))
    for i, n in enumerate(res.n):
        ax.errorbar(lam, res.collapse_mean[i], yerr=2 * res.collapse_se[i], color=colors[i], lw=1, ms=2,
                    fmt="o-", capsize=0, label=f"n = {n:.3g}")
    if limit is not None:
        ax.plot(lam, limit, "k--", lw=1.5, label="Poisson limit (n = inf)")
    if r["lambda_star_theory"] is not None:
        ax.axvline(r["lambda_star_theory"], color="gray", ls=":", label="$\\lambda^*$ (theory)")
    ax.set_xscale("log")
    ax.set_xlabel("$\\lambda = \\beta / n^{2/\\alpha}$ (rescaled inverse temperature)")
    ax.set_ylabel(f"E[{r['observable']}] (seed mean, +-2 se)")
    ax.set_title(f"Data collapse, {res.law_name} d={res.d}, alpha={res.alpha:g}", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path)


def sweep_figure(path, law, n, s, result, lambda_star=None):
    """Max weight, top-k mass, entropy and effective keys of a sweep summary ``s`` against beta."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    beta = s["beta"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    for name, label in (("max_weight", "max weight $W_{(1)}$"), ("top_k_mass", f"top-{result['top_k']} mass")):
        ax.plot(beta, s[name], label=label)
        ax.fill_between(beta, s[name] - 2 * s[name + "_se"], s[name] + 2 * s[name + "_se"], alpha=0.3)
    ax.set_ylabel("weight (fraction of attention mass)")
    ax = axes[1]
    ax.plot(beta, s["entropy"] / math.log(n), label="entropy $H/\\log n$")
    ax.fill_between(beta, (s["entropy"] - 2 * s["entropy_se"]) / math.log(n),
                    (s["entropy"] + 2 * s["entropy_se"]) / math.log(n), alpha=0.3)
    ax.set_ylabel("entropy / log n (nats / nats)")
    ax = axes[2]
    ax.loglog(beta, s["effective_keys"], label="effective keys $e^H$")
    ax.loglog(beta, s["inv_sum_w2"], "--", label="Kish $1/\\sum w^2$")
    ax.set_ylabel("number of keys")
    ls = lambda_star
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("inverse temperature $\\beta$ (logit = $\\beta\\langle q,k\\rangle$)")
        ax.axvline(n ** (2 / law.alpha), color="gray", ls=":", lw=1, label="$n^{2/\\alpha}$")
        if ls:
            ax.axvline(ls * n ** (2 / law.alpha), color="k", ls="--", lw=1, label="$\\lambda^* n^{2/\\alpha}$")
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['geometry']} d={law.d}, alpha={law.alpha:g}, n={n:g}, {result['seeds']} seeds "
                 "(bands: +-2 se)")
    return save_figure(fig, path)


def heat_gain_figure(r, path, curves):
    """Measured gains of ``r`` (the ``phasejax heat`` result) against the exact curves ``(beta, G_inf, G_n)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    b = np.asarray(r["beta"])
    bb, g_inf, g_n = curves
    d, l, eps = r["d"], r["l"], r["eps"]
    g_m, se_m = np.asarray(r["G_measured"]), np.asarray(r["G_measured_se"])
    g_x, se_x = np.asarray(r["G_extrapolated"]), np.asarray(r["G_extrapolated_se"])
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    ax[0].errorbar(b, g_m - 1, yerr=se_m, fmt="o", color="k", label=f"measured, N={r['N']} (mean ± s.e., "
                   f"{r['seeds']} seeds)")
    ax[0].errorbar(b * 1.04, g_x - 1, yerr=se_x, fmt="s", mfc="none", color="C3",
                   label="same clouds, extrapolated to N = ∞")
    ax[0].plot(bb, g_inf - 1, "C0-", label="exact map, N = ∞")
    ax[0].plot(bb, g_n - 1, "C2--", label="exact map + O(1/N) correction")
    ax[0].plot(bb, l * (l + d - 2) / bb, "C1:", label="first order l(l+d-2)/β")
    ax[0].set(xscale="log", yscale="log", xlabel="β", ylabel="G - 1",
              title=f"zonal mode l={l} on S^{d - 1}, eps={eps}")
    ax[0].legend(fontsize=8)
    ax[1].errorbar(b, (g_m - 1) * b, yerr=se_m * b, fmt="o", color="k", label="measured")
    ax[1].errorbar(b * 1.04, (g_x - 1) * b, yerr=se_x * b, fmt="s", mfc="none", color="C3",
                   label="extrapolated to N = ∞")
    ax[1].plot(bb, (g_inf - 1) * bb, "C0-", label="exact map, N = ∞")
    ax[1].plot(bb, (g_n - 1) * bb, "C2--", label=f"exact map + O(1/N) correction, N={r['N']}")
    ax[1].axhline(l * (l + d - 2), color="C1", ls=":", label="l(l+d-2)")
    ax[1].set(xscale="log", xlabel="β", ylabel="(G - 1) β", title="approach to the heat equation")
    ax[1].legend(fontsize=8)
    # the residuals against the exact N = infinity gain, where the finite-N bias is visible
    g_inf_b = np.asarray(r["G_exact"])
    ax[2].axhline(0, color="C0", lw=1, label="exact map, N = ∞")
    ax[2].plot(bb, g_n - g_inf, "C2--", label=f"O(1/N) theory of the bias, N={r['N']}")
    ax[2].errorbar(b, g_m - g_inf_b, yerr=3 * se_m, fmt="o", color="k", capsize=3, label="measured (± 3 s.e.)")
    ax[2].errorbar(b * 1.04, g_x - g_inf_b, yerr=3 * se_x, fmt="s", mfc="none", color="C3", capsize=3,
                   label="extrapolated to N = ∞ (± 3 s.e.)")
    ax[2].set(xscale="log", xlabel="β", ylabel="G - G_exact(N = ∞)", title="finite-N bias and its removal")
    ax[2].legend(fontsize=8)
    for a in ax:
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.tight_layout()
    save_figure(fig, path)


def diagnose_figure(path, fit, r):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.3))
    fig.subplots_adjust(wspace=0.4)
    kg = fit.k_grid
    a1.fill_between(kg, fit.alpha_grid - 2 * fit.alpha_se_grid, fit.alpha_grid + 2 * fit.alpha_se_grid,
                    color="C0", alpha=0.2, label="Hill alpha(k) +- 2 se")
    a1.plot(kg, fit.alpha_grid, "o-", ms=3, color="C0")
    a1.axvline(fit.k, color="k", ls=":", label=f"chosen k = {fit.k} ({fit.rule})")
    a1.axhline(fit.alpha, color="C1", lw=1, label=f"alpha = {fit.alpha:.3g} +- {fit.alpha_se:.2g}")
    a1.set_xscale("log")
    a1.set_xlabel("k (smallest gaps per query)")
    a1.set_ylabel("local exponent alpha")
    ax = a1.twinx()
    ax.plot(kg, fit.ks_pvalue_grid, "s", ms=3, color="C2", alpha=0.6, label="KS p")
    ax.plot(kg, fit.trend_pvalue_grid, "^", ms=3, color="C3", alpha=0.6, label="trend p")
    ax.plot(kg, fit.stability_pvalue_grid, "v", ms=3, color="C4", alpha=0.6, label="stability p")
    ax.axhline(fit.level, color="gray", lw=0.8, ls="--")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("p-value")
    h1, l1 = a1.get_legend_handles_labels()
    h2, l2 = ax.get_legend_handles_labels()
    a1.legend(h1 + h2, l1 + l2, fontsize=7)
    a1.set_title(f"stability plot: {r['num_queries']} queries ({r['query_source']}), N = {r['N']}", fontsize=9)

    n = np.asarray(r["n"], np.float64)
    bp = np.asarray(r["beta_peak"], np.float64)
    se = np.asarray(r["beta_peak_se"], np.float64)
    a2.fill_between(n, bp - 2 * se, bp + 2 * se, color="C1", alpha=0.2)
    a2.plot(n, bp, "-", color="C1", label=f"predicted $\\lambda^*$={r['lambda_star']:.3g} $n^{{2/\\alpha}}$")
    lo, hi = r["lambda_window"]
    a2.fill_between(n, lo * n ** (2 / fit.alpha), hi * n ** (2 / fit.alpha), color="gray", alpha=0.12,
                    label=f"critical window (E max w in {r['window'][0]:g}-{r['window'][1]:g})")
    mi = [i for i, v in enumerate(r["beta_peak_measured"]) if v is not None]
    if mi:
        a2.errorbar(n[mi], [r["beta_peak_measured"][i] for i in mi],
                    yerr=[2 * r["beta_peak_measured_se"][i] for i in mi], fmt="o", ms=4, capsize=3, color="C0",
                    label=f"measured on subsamples (+-2 se, {r['seeds']} seeds)")
    if r["beta"] is not None:
        a2.axhline(r["beta"], color="C3", lw=1, label=f"beta = {r['beta']:g}")
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("context length n (keys)")
    a2.set_ylabel("$\\beta$ (inverse temperature on $\\langle q,k\\rangle$)")
    a2.set_title("susceptibility peak: prediction vs the data", fontsize=9)
    a2.legend(fontsize=7)
    a2.grid(True, which="both", alpha=0.3)
    return save_figure(fig, path)


def learn_figure(path, by_d):
    """Phase diagram (n, beta) with the critical line lambda* n^(2/(d-1)) for each d, the regression optimum
    (exact, asymptotic) and the learned betas of both tasks; lambda(n); training trajectories.
    ``by_d``: {d: {task: scan(...) result}}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import learn as L

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    colors = {3: "C0", 4: "C2", 5: "C1", 6: "C3"}
    ax, axl, axt = axes
    for d, res in sorted(by_d.items()):
        col = colors.get(d, f"C{d % 10}")
        ns = np.concatenate([np.asarray(r["n"]) for r in res.values()])
        grid = np.geomspace(ns.min() / 2, ns.max() * 2, 60)
        lam_star = next(iter(res.values()))["lambda_star"]
        if lam_star:
            ax.loglog(grid, lam_star * grid ** (2 / (d - 1)), "--", color=col, lw=1.5,
                      label=f"d={d}: critical $\\lambda^* n^{{2/(d-1)}}$, $\\lambda^*$={lam_star:.4g}")
            axl.axhline(lam_star, color=col, ls="--", lw=1)
        if "regression" in res:
            r = res["regression"]
            ax.loglog(grid, [L.beta_opt_asymptotic(g, d) for g in grid], ":", color=col, lw=1,
                      label=f"d={d}: $c n^{{2/(d+3)}}$, c={L.beta_opt_coefficient(d):.3g}")
            ax.loglog(r["n"], r["beta_opt_theory"], "-", color=col, lw=1, alpha=0.7,
                      label=f"d={d}: exact finite-n MSE minimiser")
            ax.errorbar(r["n"], r["beta_learned"], yerr=2 * r["beta_learned_se"], fmt="o", color=col, ms=5,
                        capsize=3, label=f"d={d}: learned, regression (±2 se)")
            axl.errorbar(r["n"], r["lambda"], yerr=2 * r["beta_learned_se"] / r["n"] ** (2 / (d - 1)), fmt="o-",
                         color=col, ms=4, label=f"d={d} regression")
            for tr in r["trajectories"]:
                axt.semilogy(np.arange(1, tr.shape[1] + 1), np.exp(tr.mean(0)), "-", color=col, lw=1)
        if "retrieval" in res:
            r = res["retrieval"]
            ax.errorbar(r["n"], r["beta_final"], yerr=2 * r["beta_final_se"], fmt="^", color=col, ms=7,
                        mfc="none", capsize=3, label=f"d={d}: learned, retrieval (end of training)")
            axl.errorbar(r["n"], r["lambda_final"], yerr=2 * r["beta_final_se"] / r["n"] ** (2 / (d - 1)),
                         fmt="^-", mfc="none", color=col, ms=6, label=f"d={d} retrieval")
            for tr in r["trajectories"]:
                axt.semilogy(np.arange(1, tr.shape[1] + 1), np.exp(tr.mean(0)), "--", color=col, lw=1)
    ax.set_xlabel("context length n (keys)")
    ax.set_ylabel("inverse temperature $\\beta$ (logit = $\\beta\\langle q,k\\rangle$)")
    ax.set_title("phase diagram: above the dashed line is supercritical")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    axl.set_xscale("log")
    axl.set_yscale("log")
    axl.set_xlabel("context length n (keys)")
    axl.set_ylabel("$\\lambda = \\beta / n^{2/(d-1)}$ (dashed: $\\lambda^*$)")
    axl.set_title("regression: $\\lambda \\to 0$ (subcritical); retrieval: $\\lambda > \\lambda^*$")
    axl.legend(fontsize=7)
    axt.set_xlabel("Adam step")
    axt.set_ylabel("$\\beta$ (geometric mean over runs)")
    axt.set_title("training: solid regression (plateaus), dashed retrieval (grows)")
    return save_figure(fig, path)


# ---------------------------------------------------------------- experiments (phasejax.experiments)


def crossover_plane_figure(path, rows, title):
    """The (d, n) plane of the crossover experiment: log10 |REM error| / |fixed-d error| per cell (rows of dicts
    with d, n, err_rem, err_fixed_d, err_predictor, closer)."""
    plt = _pyplot()
    ds = sorted({r["d"] for r in rows})
    ns = sorted({r["n"] for r in rows})
    grid = np.full((len(ds), len(ns)), np.nan)
    for r in rows:
        grid[ds.index(r["d"]), ns.index(r["n"])] = math.log10(abs(r["err_rem"]) / abs(r["err_fixed_d"]))
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    lim = np.nanmax(np.abs(grid))
    x = np.log10(ns)
    y = np.log2(ds)

    def edges(v):
        mid = 0.5 * (v[1:] + v[:-1])
        step0 = v[1] - v[0] if len(v) > 1 else 1.0
        step1 = v[-1] - v[-2] if len(v) > 1 else 1.0
        return np.concatenate([[v[0] - step0 / 2], mid, [v[-1] + step1 / 2]])

    im = ax.pcolormesh(edges(x), edges(y), grid, cmap="coolwarm", vmin=-lim, vmax=lim, shading="flat")
    fig.colorbar(im, ax=ax, label="log10(|REM error| / |fixed-d error|)   (red: fixed-d law closer)")
    for r in rows:
        i, j = ds.index(r["d"]), ns.index(r["n"])
        if len(ds) * len(ns) <= 30:
            ax.text(x[j], y[i], f"{r['closer']}\nfix {r['err_fixed_d']:+.0%}\nREM {r['err_rem']:+.0%}\n"
                    f"pred {r['err_predictor']:+.1%}", ha="center", va="center", fontsize=6.5)
    xx = np.linspace(edges(x)[0], edges(x)[-1], 200)
    ax.plot(xx, np.log2(1 + 2 * xx * math.log(10)), "k--", lw=1.2, label="log n = (d-1)/2")
    ax.set_xlim(edges(x)[0], edges(x)[-1])
    ax.set_ylim(edges(y)[0], edges(y)[-1])
    ax.set_yticks(y, [str(d) for d in ds])
    ax.set_xlabel("log10 n")
    ax.set_ylabel("d (keys uniform on S^(d-1))")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)


def gaussian_ratio_figure(path, rows):
    """Exact finite-n beta_peak / beta_c and the tail-hazard predictor for Gaussian scores (rows: n, ratio,
    predictor_ratio)."""
    plt = _pyplot()
    n = np.array([r["n"] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogx(n, [r["ratio"] for r in rows], "o-", label="exact finite-n beta_peak / beta_c")
    ax.semilogx(n, [r["predictor_ratio"] for r in rows], "s--", label="tail-hazard predictor / beta_c")
    ax.axhline(1.0, color="k", lw=0.8, label="REM limit (freezing point)")
    ax.set_xlabel("n (i.i.d. N(0, sigma^2) scores)")
    ax.set_ylabel("beta / beta_c,  beta_c = sqrt(2 log n)/sigma")
    ax.set_title("Gaussian scores: the susceptibility peak approaches beta_c slowly", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def simplex_phase_figure(path, ns=(1e2, 1e4, 1e6), n_colour=1e4):
    """The almost-simplex phase map. It draws a closed form, w1 = 1/(1 + (n-1) e^{-beta (1-rho)}), and the
    logistic window of width gamma_c / log n; no sampling, no fit (a formula is drawn like a theory curve)."""
    plt = _pyplot()
    rho = np.linspace(-1.0, 0.95, 300)
    gamma = np.linspace(0.0, 10.0, 300)
    rr, gg = np.meshgrid(rho, gamma)
    x = gg * math.log(n_colour) * (1 - rr) - math.log(n_colour - 1)
    w1 = 1.0 / (1.0 + np.exp(-x))  # single-query almost-simplex: w1 = 1/(1 + (n-1) e^{-beta (1-rho)})
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    im = ax.pcolormesh(rr, gg, w1, cmap="viridis", shading="auto", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, label=f"max weight w1 at n = {n_colour:.0e}")
    gc = 1 / (1 - rho)
    ax.plot(rho, gc, "w-", lw=1.5, label="gamma_c = 1/(1-rho)")
    for n, ls in zip(ns, (":", "--", "-."), strict=True):
        half = gc * math.log(n - 1) / math.log(n)
        width = gc * math.log(3) / math.log(n)
        ax.plot(rho, half - width, "w" + ls, lw=0.9, label=f"w1 = 1/4, 3/4 (n = {n:.0e})")
        ax.plot(rho, half + width, "w" + ls, lw=0.9)
    ax.set_ylim(0, 10)
    ax.set_xlabel("rho (score of the n-1 other keys; the match has score 1)")
    ax.set_ylabel("gamma = beta / log n")
    ax.set_title("Almost-simplex tokens, single query: logistic window of width gamma_c / log n", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", facecolor="0.35", labelcolor="w", framealpha=0.9)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- main


def local_exponent_figure(path, res, shapes, u0):
    """The local-exponent experiment: beta_peak(n) for PowerLawCap (three alpha), beta_peak / n for laws that
    share alpha near the query and differ globally, and the histograms of their gaps (``shapes``: name -> gaps)."""
    plt = _pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(16, 4.8))
    colors = {name: f"C{i}" for i, name in enumerate(res)}
    for name in ("powerlaw alpha=1", "powerlaw alpha=2", "powerlaw alpha=4"):
        r = res[name]
        n = np.asarray(r["n"])
        ax[0].errorbar(n, r["beta_peak"], yerr=2 * np.asarray(r["beta_peak_se"]), fmt="o", color=colors[name],
                       capsize=3, label=f"{name}: slope {r['exponent']:.3f}$\\pm${r['exponent_se']:.3f}")
        nn = np.geomspace(n.min() / 1.3, n.max() * 1.3, 50)
        ax[0].plot(nn, r["lambda_star_theory"] * nn ** (2 / r["alpha"]), "--", color=colors[name], lw=1)
    ax[0].set(xscale="log", yscale="log", xlabel="context length n", ylabel="$\\beta_{peak}(n)$",
              title="PowerLawCap on $S^2$ (dashed: theory $\\lambda^*(\\alpha) n^{2/\\alpha}$)")
    ax[0].legend(fontsize=7)
    for name in ("uniform", "mixture", "anisotropic", "mixture-warped"):
        r = res[name]
        n = np.asarray(r["n"])
        scale = r["lambda_star_theory"] * n ** (2 / r["alpha"])
        ax[1].errorbar(n, np.asarray(r["beta_peak"]) / n, yerr=2 * np.asarray(r["beta_peak_se"]) / n, fmt="o-",
                       color=colors[name], capsize=3,
                       label=f"{name} ($\\alpha$={r['alpha']:g}): "
                       f"slope {r['exponent']:.3f}$\\pm${r['exponent_se']:.3f}")
        ax[1].plot(n, scale / n, ":", color=colors[name], lw=1)
    ax[1].set(xscale="log", yscale="log", xlabel="context length n", ylabel="$\\beta_{peak}(n) / n$",
              title="local, not global (dotted: theory)")
    ax[1].legend(fontsize=7)
    edges = np.linspace(0, 2, 81)
    for name, u in shapes.items():
        ax[2].hist(u, bins=edges, density=True, histtype="step", color=colors[name], lw=1.5,
                   ls="--" if name == "mixture-warped" else "-", label=name)
    ax[2].set(yscale="log", xlabel="gap u = 1 - <q,k>", ylabel="density of u",
              title="global shape (warp differs only for u < u0)")
    ax[2].axvline(u0, color="gray", ls=":", lw=1)
    ax[2].legend(fontsize=7)
    for a in ax:
        a.title.set_fontsize(9)
    return save_figure(fig, path)


def heat_dynamics_figures(out, *, steps, amp, pred, g_l, g_1st, noise0, l_star, heat_regime_end, tolerance, degrees,
                          spec, snaps, d, l, eps, beta, n) -> list[str]:
    """The heat-dynamics experiment's three figures in ``out``: the zonal amplitude against the heat prediction
    and the spectrum; the token cloud at the snapshot steps; the histograms of t = <x, e>. Returns the paths."""
    plt = _pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].semilogy(steps, np.abs(amp), "ko", label=f"measured |hat eps_{l}| (N={n})")
    ax[0].semilogy(steps, np.abs(pred), "C0-", label=f"heat: hat eps_0 G^k, G = {g_l:.4f} (exact, small eps)")
    ax[0].semilogy(steps, np.abs(amp[0]) * g_1st**steps, "C1:", label=f"first order G = 1 + l(l+d-2)/β = {g_1st:.3f}")
    ax[0].axhline(noise0, color="C3", ls="--", lw=0.8, label=f"noise level of degree l*={l_star} at k=0")
    if heat_regime_end is not None:
        ax[0].axvline(heat_regime_end, color="gray", ls="--", lw=0.8,
                      label=f"> {tolerance:.0%} off at k={heat_regime_end}")
    ax[0].set(xlabel="step k", ylabel=f"zonal amplitude of degree {l}", title=f"S^{d - 1}, β={beta}, eps={eps}")
    ax[0].legend(fontsize=7)
    for i, m in enumerate(degrees):
        ax[1].semilogy(steps, spec[:, i], "-", color=plt.cm.viridis(i / len(degrees)),
                       label=f"m={m}" if m <= 8 else None)
    ax[1].set(xlabel="step k", ylabel="|hat eps_m|", title=f"zonal spectrum (fastest linear growth m = {l_star})")
    ax[1].legend(fontsize=7, ncol=2)
    paths = [save_figure(fig, os.path.join(out, "heat_step_amplitude.png"))]

    ks = sorted(snaps)
    e = np.zeros(d)
    e[0] = 1
    fig, ax = plt.subplots(1, len(ks), figsize=(3 * len(ks), 3), sharey=True)
    ax = np.atleast_1d(ax)
    for a, k in zip(ax, ks, strict=True):
        s = snaps[k][:5000]
        t = s[:, 0]
        phi = np.arctan2(s[:, 2] if d > 2 else np.zeros_like(t), s[:, 1])
        a.scatter(phi, t, s=0.3, color="k", alpha=0.4)
        a.set(title=f"step {k}", xlabel="azimuth φ", xlim=(-np.pi, np.pi), ylim=(-1, 1))
    ax[0].set_ylabel("t = <x, e>")
    fig.suptitle(f"tokens clustering under repeated attention (β={beta}, N={n}; equal-area for d=3)", y=1.06)
    paths.append(save_figure(fig, os.path.join(out, "heat_step_cloud.png")))

    fig, ax = plt.subplots(figsize=(6, 4))
    for k in ks:
        ax.hist(snaps[k][:, 0], bins=80, range=(-1, 1), density=True, histtype="step", label=f"step {k}")
    ax.set(xlabel="t = <x, e>", ylabel="density of t", title=f"histogram of t (d={d}, l={l}, eps={eps}, β={beta})")
    ax.legend(fontsize=7)
    paths.append(save_figure(fig, os.path.join(out, "heat_step_hist.png")))

    return paths


def learned_mse_figure(path, curves):
    """The learned-temperature experiment: per d, the exact and large-n MSE against beta, the minimiser (line),
    the learned beta (band: +- 2 se) and Monte Carlo points (+- 2 se). ``curves``: d -> rows of
    ``phasejax.experiments.learned_temperature._mse_curves``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(6.5 * len(curves), 4.8), squeeze=False)
    for ax, (d, rows) in zip(axes[0], sorted(curves.items()), strict=True):
        for row in rows:
            n = row["n"]
            (line,) = ax.loglog(row["grid"], row["exact"], "-", label=f"n={n:g}: exact (quadrature)")
            ax.loglog(row["grid"], row["large_n"], ":", color=line.get_color(),
                      label=f"n={n:g}: large-n bias$^2$+variance")
            ax.axvline(row["beta_opt"], color=line.get_color(), lw=0.8)
            b, se = row["beta_learned"], row["beta_learned_se"]
            ax.axvspan(b - 2 * se, b + 2 * se, color=line.get_color(), alpha=0.2)
            if row["monte_carlo"] is not None:
                b, m, se = row["monte_carlo"]
                ax.errorbar(b, m, yerr=2 * se, fmt="o", color=line.get_color(), ms=4, capsize=2)
        ax.set_xlabel("inverse temperature $\\beta$")
        ax.set_ylabel("expected squared error against $f(q)$")
        ax.set_title(f"d={d}: MSE, minimiser (line) and learned $\\beta$ (band: ±2 se); dots: Monte Carlo ±2 se",
                     fontsize=9)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def precision_floor_figure(path, ns, nn, panels, seeds):
    """The precision-floor experiment, per number format: the tie probability of the two nearest keys (measured
    +- 2 se at ``ns``, theory on ``nn``), the relative error of E[max weight] at lambda*, and beta_peak relative to
    float64. ``panels``: format -> {"tie", "tie_se", "tie_theory", "w_err", "peak_ratio"}."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for k, (name, pan) in enumerate(panels.items()):
        axes[0].errorbar(ns, pan["tie"], yerr=2 * pan["tie_se"], fmt="o", color=f"C{k}", ms=3, capsize=2,
                         label=f"{name} (measured)")
        axes[0].plot(nn, pan["tie_theory"], "-", color=f"C{k}", lw=1, label=f"{name} (theory)")
        axes[1].plot(ns, pan["w_err"], "o-", color=f"C{k}", label=name)
        axes[2].plot(ns, pan["peak_ratio"], "o-", color=f"C{k}", label=name)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("context length n (keys, uniform on S^2)")
    axes[0].set_ylabel("P(two nearest keys get the same score)")
    axes[0].legend(fontsize=7)
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("context length n")
    axes[1].set_ylabel("relative error of E[max weight] at lambda*")
    axes[1].legend(fontsize=7)
    axes[2].set_xscale("log")
    axes[2].set_xlabel("context length n")
    axes[2].set_ylabel("beta_peak(format) / beta_peak(float64)")
    axes[2].axhline(1.0, color="k", lw=0.8, ls=":")
    axes[2].set_yscale("log")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"Precision floor of attention logits (d=3, {seeds} contexts per n)", fontsize=10)
    return save_figure(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def subcritical_figure(path, s):

    plt = _pyplot()
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
    return save_figure(fig, path)


def critical_figure(path, c, crit):

    plt = _pyplot()
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
    return save_figure(fig, path)


def supercritical_figure(path, s):

    plt = _pyplot()
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
    return save_figure(fig, path)


def entropy_figure(path, e):

    plt = _pyplot()
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
    return save_figure(fig, path)


def _model_grid(r, name):
    """(num_layers, num_heads) table of a per-head field of a ``ModelDiagnosis.to_dict()``."""
    return np.array([[np.nan if v is None else v for v in row] for row in r["tables"][name]], dtype=np.float64)


def model_lambda_figure(path, r):
    """Layer x head map of lambda/lambda* (log colour scale) from ``ModelDiagnosis.to_dict()``."""
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    lam = _model_grid(r, "lambda_ratio")
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * lam.shape[1], 1.2 + 0.45 * lam.shape[0]))
    span = float(np.nanmax(np.abs(np.log10(lam)))) if np.any(np.isfinite(lam)) else 1.0
    span = max(span, 0.1)
    im = ax.imshow(lam, cmap="RdBu_r", norm=LogNorm(vmin=10**-span, vmax=10**span), aspect="auto")
    ax.set_xticks(range(lam.shape[1]), [str(h) for h in r["head_index"]], fontsize=7)
    ax.set_yticks(range(lam.shape[0]), [str(n) for n in r["layer_index"]], fontsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, label="$\\lambda/\\lambda^*$ (1: susceptibility peak)")
    ax.set_title(f"{r['model_type']}: $\\lambda/\\lambda^*$ at n = {r['context_length']:g}", fontsize=9)
    return save_figure(fig, path)


def model_max_weight_figure(path, r):
    """Measured (mean +- 2 se over queries) against Poisson-limit predicted E[max weight], one point per head."""
    plt = _pyplot()
    pred = _model_grid(r, "E_max_weight")
    meas = _model_grid(r, "max_weight")
    se = np.array([h["max_weight_se"] or 0.0 for h in r["heads"]], dtype=np.float64).reshape(pred.shape)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    for i, layer in enumerate(r["layer_index"]):
        ax.errorbar(pred[i], meas[i], yerr=2 * se[i], fmt="o", ms=4, capsize=2, label=f"layer {layer}")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="measured = predicted")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("predicted E[max weight] (Poisson limit, fitted alpha, C)")
    ax.set_ylabel("measured max weight (mean over queries, +-2 se)")
    ax.set_title(f"{r['model_type']}: {r['num_tokens']} tokens", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
