"""``phasejax learn``: train an attention head's beta on a task for a range of n, against theory (docs/theory.md §i).

For each n on a log grid, ``--runs`` independent heads (:class:`phasejax.learn.AttentionHead`) are trained
with Adam on fresh samples (:func:`phasejax.learn.train`); the learned beta (Polyak mean of the final
window, se from the spread of the runs) is compared with the exact finite-n MSE minimiser
(:func:`phasejax.learn.beta_opt_exact`, quadrature) and the asymptote c n^(2/(d+3)) for the regression
task, and placed on the phase diagram, lambda = beta / n^(2/(d-1)) against lambda*, for both tasks.

Writes ``learn.json``, ``learn.nc`` (trajectories as labelled arrays) and ``learn.png`` (the phase diagram,
lambda(n) and the training trajectories) under ``--out``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .._checks import InputError
from .._random import key_from_seed
from ..plots import learn_figure
from . import _common as C

NAME = "learn"
HELP = "train a head's beta on regression / retrieval for a range of n, against the MSE-optimal and critical beta"

# n up to this many keys are trained in lockstep in one compiled program (padding is cheap there);
# larger n get their own program (padding them would multiply the cost of the small ones)
LOCKSTEP_MAX_N = 3000


def add_arguments(p) -> None:
    g = p.add_argument_group("task")
    g.add_argument("--d", type=int, default=3, help="ambient dimension, keys on S^(d-1), d >= 3 (default 3)")
    g.add_argument("--task", default="both", help="regression, retrieval or both (default both)")
    g.add_argument("--n-min", type=C.count, default=100, help="smallest context length (default 100; 1e5 ok)")
    g.add_argument("--n-max", type=C.count, default=1000, help="largest context length (default 1000)")
    g.add_argument("--n-points", type=C.positive_int, default=3, help="log-spaced context lengths (default 3)")
    t = p.add_argument_group("training")
    t.add_argument("--steps", type=C.positive_int, default=160,
                   help="Adam steps (default 160; more while the plateau test fails)")
    t.add_argument("--runs", type=C.positive_int, default=8, help="independent heads (seeds) per n (default 8)")
    t.add_argument("--lr", type=C.positive_real, default=0.1, help="Adam learning rate on log beta (default 0.1)")
    t.add_argument("--batch", type=C.positive_int, default=16, help="queries per step per run (default 16)")
    t.add_argument("--contexts", type=C.positive_int, default=2,
                   help="independent key sets per step per run; the batch's queries share them (default 2)")
    t.add_argument("--beta0", type=C.positive_real, default=1.0, help="initial beta (default 1)")
    C.add_output_arguments(p)


def validate(args):
    """Checked (d, tasks, n grid); InputError on bad input."""
    d = args.d
    if d < 3:
        raise InputError(f"--d must be an integer >= 3 (P_2 regression theory needs h = (d-1)/2 >= 1), got {d}")
    if args.task not in ("regression", "retrieval", "both"):
        raise InputError(f"--task must be one of 'regression', 'retrieval', 'both'; got {args.task!r}")
    tasks = ["regression", "retrieval"] if args.task == "both" else [args.task]
    if args.n_min < 2:
        raise InputError(f"--n-min must be >= 2 keys, got {args.n_min}")
    if args.n_max < args.n_min:
        raise InputError(f"--n-max ({args.n_max}) must be >= --n-min ({args.n_min})")
    if args.n_max > 10**6:
        raise InputError(f"--n-max must be <= 1e6 (every key is sampled; memory and time), got {args.n_max}")
    if args.n_points > 1 and args.n_max == args.n_min:
        raise InputError("--n-points > 1 needs --n-max > --n-min")
    if args.steps < 16:
        raise InputError(f"--steps must be >= 16 (the estimate averages the last quarter), got {args.steps}")
    if args.batch % args.contexts:
        raise InputError(f"--batch ({args.batch}) must be a multiple of --contexts ({args.contexts})")
    if d > 4096:
        raise InputError(f"--d must be <= 4096 (every key is a d-vector), got {d}")
    if args.n_points > 64:
        raise InputError(f"--n-points must be <= 64 (one training per n), got {args.n_points}")
    ns = np.unique(np.round(np.geomspace(args.n_min, args.n_max, args.n_points)).astype(np.int64))
    from ..runtime.memory import check_memory

    # one step of every lockstep run: contexts x n keys (d + 2 numbers each) and queries x n weights, with the
    # gradient's temporaries (x16: measured, XLA asked 31 GB at --runs 1e4 on the defaults), float64 at most
    per_run = (args.contexts * (d + 2) + args.batch) * float(ns.sum()) * 8 * 16
    check_memory(args.runs * per_run, "--runs", f"{args.runs} runs of contexts x n keys (n up to {int(ns.max())})")
    return d, tasks, [int(v) for v in ns]


def step_groups(ns, tasks=("task",)):
    """[(n values, tasks)] trained together: every small n with every task in one program; each large n and
    task alone (under vmap, lax.switch runs every task's sampler, which doubles the cost at large n)."""
    small = [n for n in ns if n <= LOCKSTEP_MAX_N]
    return ([(small, list(tasks))] if small else []) + [([n], [t]) for n in ns if n > LOCKSTEP_MAX_N for t in tasks]


def scan(d, tasks, ns, *, key, steps=160, runs=8, lr=0.1, batch=16, contexts=2, beta0=1.0, progress=None):
    """Train every task of ``tasks`` at every n of ``ns``; returns {task: summary dict} with per-n arrays
    and the trajectories. Regression: with the exact and asymptotic optima and the exponent fit.
    Retrieval: with the final beta, the growth exponent d log beta / d log step over the second half,
    lambda. Tasks and small n share one compiled program (lockstep); each n > LOCKSTEP_MAX_N gets its own."""
    import jax

    from .. import learn as L

    task_objs = [L.task_from_name(t, d) for t in tasks]
    results = []
    for i, (group, tgroup) in enumerate(step_groups(ns, task_objs)):
        results.extend(L.train(
            tgroup, group, key=jax.random.fold_in(key, i), steps=steps, runs=runs, contexts=contexts,
            queries=batch // contexts, lr=lr, beta0=beta0, max_extensions=2, progress=progress,
        ))
    return {t: _summary(d, t, sorted((r for r in results if r.task == t), key=lambda r: r.n), runs) for t in tasks}


def _summary(d, task, results, runs):
    from .. import learn as L

    n = np.array([r.n for r in results], dtype=np.int64)
    crit = n.astype(np.float64) ** (2.0 / (d - 1))
    from ..scaling import fit_power_law
    from ..theory import lambda_star

    lam_star, lam_src = lambda_star(d).lambda_star, "phasejax.theory.lambda_star"
    out = {
        "task": task, "d": d, "n": n,
        "beta_learned": np.array([r.beta for r in results]),
        "beta_learned_se": np.array([r.beta_se for r in results]),
        "log_beta_se": np.array([r.log_beta_se for r in results]),
        "converged": [r.converged for r in results],
        "drift": np.array([r.drift for r in results]),
        "drift_se": np.array([r.drift_se for r in results]),
        "steps_done": np.array([r.steps for r in results]),
        "se_method": results[0].se_method,
        "lambda_star": lam_star, "lambda_star_source": lam_src,
        "critical_exponent": 2.0 / (d - 1),
        "trajectories": [r.log_beta for r in results],
        "losses": [r.loss for r in results],
    }
    rt = math.sqrt(runs)
    if task == "regression":
        out["beta_opt_theory"] = np.array([L.beta_opt_exact(int(v), d) for v in n])
        out["beta_opt_large_n"] = np.array([L.beta_opt_large_n(int(v), d) for v in n])
        out["beta_opt_asymptotic"] = np.array([L.beta_opt_asymptotic(int(v), d) for v in n])
        out["beta_opt_coefficient"] = L.beta_opt_coefficient(d)
        out["z"] = (np.log(out["beta_learned"]) - np.log(out["beta_opt_theory"])) / out["log_beta_se"]
        fit_y, fit_se = out["beta_learned"], out["beta_learned_se"]
        out["exponent_theory"] = 2.0 / (d + 3)
        if n.size >= 2:
            out["exponent_exact_theory"] = fit_power_law(n, out["beta_opt_theory"]).b
    else:
        final = np.array([r.log_beta[:, -1] for r in results])  # (P, runs)
        out["beta_final"] = np.exp(final.mean(1))
        out["beta_final_se"] = out["beta_final"] * (final.std(1, ddof=1) / rt if runs > 1 else np.nan)
        out["beta_opt_theory"] = np.full(n.size, np.inf)  # no finite optimum: beta -> infinity
        # growth exponent: slope of log beta against log step over the second half of training
        g = []
        for r in results:
            s = np.arange(1, r.log_beta.shape[1] + 1)
            half = s.size // 2
            g.append([np.polyfit(np.log(s[half:]), lb[half:], 1)[0] for lb in r.log_beta])
        g = np.array(g)
        out["growth_exponent"] = g.mean(1)
        out["growth_exponent_se"] = g.std(1, ddof=1) / rt if runs > 1 else np.full(n.size, np.nan)
        fit_y, fit_se = out["beta_final"], out["beta_final_se"]
        out["exponent_theory"] = None  # supercritical: no optimum; compare with the critical exponent
        out["lambda_final"] = out["beta_final"] / crit
    out["lambda"] = out["beta_learned"] / crit
    if n.size >= 2:
        fit = (fit_power_law(n, fit_y, np.maximum(fit_se, 1e-12 * fit_y), scale_by_chi2=True) if runs > 1
               else fit_power_law(n, fit_y))
        out["exponent"], out["exponent_se"] = fit.b, fit.b_se
        out["exponent_chi2"] = fit.chi2 / fit.dof if fit.dof > 0 else 0.0
    else:
        out["exponent"] = out["exponent_se"] = None
    return out


def run(args):
    d, tasks, ns = validate(args)
    out_dir = C.setup(args, NAME)
    import jax

    quiet = args.quiet or args.json
    progress = C.Progress(args.steps * len(step_groups(ns, tasks)), "learn steps", quiet=quiet)
    res = scan(d, tasks, ns, key=key_from_seed(args.seed), steps=args.steps, runs=args.runs, lr=args.lr,
               batch=args.batch, contexts=args.contexts, beta0=args.beta0, progress=progress)
    _check_learned(args, res)
    primary = res[tasks[0]]
    result = {
        "d": d, "task": args.task, "tasks": tasks, "seed": args.seed, "steps": args.steps, "runs": args.runs,
        "lr": args.lr, "batch": args.batch, "contexts": args.contexts, "sigma": 0.5,
        "dtype": "float64" if jax.config.jax_enable_x64 else "float32",
    }
    result.update(public_result(primary))
    result["by_task"] = {t: public_result(r) for t, r in res.items()}
    result["files"] = _write(out_dir, args, res, result)
    return result, learn_table(result, res)


def _check_learned(args, res) -> None:
    """Refuse a training whose beta never moved: zero spread over runs and a non-finite or zero-error fit mean the
    softmax was saturated (all weight on one key, gradient 0 in log beta), not that it converged."""
    for t, r in res.items():
        for k in ("beta_learned", "beta_final"):
            se = r.get(k + "_se")
            if se is None:
                continue
            v, se = np.asarray(r[k], float), np.asarray(se, float)
            if not np.all(np.isfinite(v)) or (args.runs > 1 and np.any(se <= 0)):
                raise InputError(
                    f"--beta0 {args.beta0:g}: the {t} heads did not move from their start ({k} = "
                    f"{float(np.ravel(v)[0]):.4g}, se {float(np.ravel(se)[0]):.2g} over {args.runs} runs): the "
                    "softmax is saturated and the gradient in log beta vanishes; start nearer the critical scale "
                    "(--beta0 1 to 1e3)")


_PUBLIC = ("n", "beta_learned", "beta_learned_se", "beta_opt_theory", "beta_opt_large_n", "beta_opt_asymptotic",
           "beta_opt_coefficient", "z", "lambda", "lambda_star", "lambda_star_source", "critical_exponent",
           "exponent", "exponent_se", "exponent_chi2", "exponent_theory", "exponent_exact_theory", "converged",
           "drift", "drift_se", "steps_done", "se_method", "beta_final", "beta_final_se", "lambda_final",
           "growth_exponent", "growth_exponent_se")


def public_result(r):
    return {k: r[k] for k in _PUBLIC if k in r}


def _write(out_dir, args, res, result):
    import xarray as xr

    from ..runtime import io

    data, coords = {}, {"n": result["n"], "run": np.arange(args.runs)}
    for task, r in res.items():
        steps = max(t.shape[1] for t in r["trajectories"])
        lb = np.full((len(r["n"]), args.runs, steps), np.nan)
        ls = np.full_like(lb, np.nan)
        for i, (t, l) in enumerate(zip(r["trajectories"], r["losses"], strict=True)):
            lb[i, :, : t.shape[1]] = t
            ls[i, :, : l.shape[1]] = l
        coords[f"step_{task}"] = np.arange(1, steps + 1)
        data[f"{task}_log_beta"] = (("n", "run", f"step_{task}"), lb)
        data[f"{task}_loss"] = (("n", "run", f"step_{task}"), ls)
        data[f"{task}_beta_learned"] = ("n", r["beta_learned"])
        data[f"{task}_beta_learned_se"] = ("n", r["beta_learned_se"])
        data[f"{task}_lambda"] = ("n", r["lambda"])
        for k in ("beta_opt_theory", "beta_opt_large_n", "beta_opt_asymptotic", "beta_final", "beta_final_se"):
            if k in r:
                data[f"{task}_{k}"] = ("n", np.asarray(r[k], dtype=np.float64))
    ds = xr.Dataset(data, coords=coords, attrs={
        "d": result["d"], "task": result["task"], "sigma": 0.5, "beta_convention": "logit = beta <q,k>",
        "estimate": "Polyak mean of log beta over the final quarter; se over independent runs",
        "provenance": io.provenance({k: v for k, v in vars(args).items() if not k.startswith("_")}),
    })
    files = {"results": io.save_dataset(os.path.join(out_dir, "learn.nc"), ds)}
    files["figure"] = learn_figure(os.path.join(out_dir, "learn.png"), {result["d"]: res})
    files["json"] = io.save_json(os.path.join(out_dir, "learn.json"),
                                 {**result, "files": files, "provenance": io.provenance(C.run_config(args))})
    return files



def learn_table(result, res):
    lines = []
    for task, r in res.items():
        d = r["d"]
        rows = []
        for i, n in enumerate(r["n"]):
            row = [int(n), f"{r['beta_learned'][i]:.5g} ± {r['beta_learned_se'][i]:.2g}"]
            if task == "regression":
                row += [r["beta_opt_theory"][i], r["beta_opt_asymptotic"][i], f"{r['z'][i]:+.2f}"]
            else:
                row += [f"{r['beta_final'][i]:.5g} ± {r['beta_final_se'][i]:.2g}", r["lambda_final"][i],
                        f"{r['growth_exponent'][i]:.3f} ± {r['growth_exponent_se'][i]:.2g}"]
            row += [r["lambda"][i], "yes" if r["converged"][i] else "no", int(r["steps_done"][i])]
            rows.append(row)
        if task == "regression":
            head = ["n", "beta_learned ± se", "beta_opt(exact)", "c n^(2/(d+3))", "z", "lambda", "converged",
                    "steps"]
        else:
            head = ["n", "beta (last quarter)", "beta_final ± se", "lambda_final", "dlogb/dlogstep", "lambda",
                    "converged", "steps"]
        ls = "n/a" if r["lambda_star"] is None else f"{r['lambda_star']:.6g}"
        title = f"{task}  d={d}  lambda*={ls}  se: {r['se_method']}"
        lines.append(C.format_table(head, rows, title=title))
        if r.get("exponent") is not None:
            extra = f"  (theory 2/(d+3) = {r['exponent_theory']:.4f}, exact finite-n optimum over this range " \
                    f"{r['exponent_exact_theory']:.4f})" if task == "regression" else \
                    f"  (critical 2/(d-1) = {r['critical_exponent']:.4f})"
            lines.append(f"fitted exponent of beta(n): {r['exponent']:.4f} ± {r['exponent_se']:.4f}" + extra)
        lines.append("")
    return "\n".join(lines + [f"{k}: {v}" for k, v in result["files"].items()])
