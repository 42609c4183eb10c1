"""``phasejax theory``: closed forms and limit laws for a given d or alpha (docs/theory.md §b, §c, §d, §f), and with
``--law gaussian`` / ``--law simplex`` the random energy model and almost-simplex tokens (docs/theory.md §h)."""

from __future__ import annotations

import math
import os

from .._checks import InputError, check_real
from . import _common as C

NAME = "theory"
HELP = "closed forms and limit laws for given d or alpha: lambda*, kappa, C, A_d, Poisson-limit expectations"


def add_arguments(p):
    g = p.add_argument_group("key law")
    g.add_argument("--law", default="sphere",
                   help="sphere (default: uniform keys or PowerLawCap, from --d/--alpha), gaussian (i.i.d. "
                   "N(0, sigma^2) scores, the random energy model) or simplex (almost-simplex tokens, --rho)")
    g.add_argument("--sigma", type=C.real, default=None,
                   help="gaussian: score standard deviation > 0 (default 1/sqrt(d) when --d is given, else 1)")
    g.add_argument("--rho", type=C.real, default=None,
                   help="simplex: score of the n-1 non-matching keys, -1 <= rho < 1 (the match has score 1)")
    g.add_argument("--d", type=C.real, default=None,
                   help="keys uniform on S^(d-1), real d >= 2 (default 3; with --alpha: PowerLawCap on S^(d-1))")
    g.add_argument("--alpha", type=C.real, default=None,
                   help="local exponent alpha > 0 (PowerLawCap on S^2 unless --d is given)")
    g.add_argument("--C", dest="C", type=C.real, default=None,
                   help="constant in P(u <= s) ~ C s^(alpha/2) (default: the PowerLawCap value, 2^(-alpha/2) on S^2)")
    g = p.add_argument_group("evaluation points")
    g.add_argument("--lambda", dest="lam", type=C.real, default=1.0,
                   help="lambda = beta / n^(2/alpha) for the Poisson-limit expectations (default 1)")
    g.add_argument("--beta", type=C.real, default=10.0, help="beta for A_d, M_d and the n = inf laws (default 10)")
    g.add_argument("--n", type=C.count, default=1_000_000,
                   help="keys per context for the exact finite-n beta_peak (default 1e6; 1e6 notation ok)")
    C.add_output_arguments(p)


def _law(args):
    d, alpha, c = args.d, args.alpha, args.C
    if d is not None:
        check_real("--d", d, minimum=2.0)
    if alpha is not None:
        check_real("--alpha", alpha, positive=True)
    if c is not None:
        if alpha is None:
            raise InputError(f"--C {c!r} needs --alpha (for uniform keys C is fixed by --d)")
        check_real("--C", c, positive=True)
    if alpha is None:
        d = 3.0 if d is None else d
        return d, d - 1.0, None
    return (3.0 if d is None else d), alpha, c


def _check_finite(result: dict, flags: dict, default_flags: str) -> None:
    """Every number of ``result`` finite, else an :class:`InputError` naming the flag that makes it overflow."""
    for k, v in result.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isfinite(v):
            flag = flags.get(k, default_flags)
            raise InputError(f"{k} = {v} cannot be computed in float64 at these inputs (from {flag}); "
                             f"use a less extreme {flag}")


def run(args):
    C.check_choice("--law", args.law, _LAWS)
    if args.sigma is not None and args.law != "gaussian":
        raise InputError(f"--sigma applies to --law gaussian only, got --law {args.law}")
    if args.rho is not None and args.law != "simplex":
        raise InputError(f"--rho applies to --law simplex only, got --law {args.law}")
    if args.law != "sphere":
        return _run_scores(args)
    d, alpha, c_given = _law(args)
    lam = check_real("--lambda", args.lam, positive=True)
    beta = check_real("--beta", args.beta, nonnegative=True)
    n = args.n
    if n < 2:
        raise InputError(f"--n must be >= 2 (one key always has weight 1), got {n!r}")
    out = C.setup(args, NAME)
    import jax

    from .. import theory as T
    from ..runtime import io

    uniform = args.alpha is None
    law_alpha = None if uniform else alpha
    kappa = T.kappa(d, alpha=law_alpha)
    c_law = T.gap_constant(d, alpha=law_alpha)
    c = c_law if c_given is None else c_given
    h = alpha / 2.0
    ls = T.lambda_star(alpha=alpha, C=c)
    rho = c * lam ** (-h)
    # closed forms and limit laws on the host, in float64 (whatever --x64 says)
    e_w1 = float(T.poisson_expected_max_weight(h, rho))
    e_w2 = float(T.poisson_expected_sum_w2(h, rho))
    e_h = float(T.poisson_expected_entropy(h, rho))
    tail = float(T.supercritical_tail(h, rho)) if h > 0.5 else None
    a_d = float(T.mean_resultant(beta, d))
    log_m = float(T.log_moment(beta, d))
    s_par, s_perp = (float(v) for v in T.subcritical_covariance(beta, d))
    h_inf = float(T.entropy_limit(n, beta, d))
    # exact finite n needs the gap law: known for uniform keys and PowerLawCap (C not overridden)
    if c_given is None or math.isclose(c_given, c_law, rel_tol=1e-12):
        pk = T.exact_beta_peak(n, d, alpha=law_alpha)
        bp, bp_lam, bp_chi = pk.beta_peak, pk.lambda_peak, pk.chi_max
    else:
        bp = bp_lam = bp_chi = None
    if math.isfinite(h_inf) and not 0 <= h_inf <= math.log(n) + 1e-9:
        n_min = math.exp(math.log(n) - h_inf) if math.isfinite(h_inf) else math.inf
        raise InputError(
            f"--n {n} is too small for the fixed-beta entropy law at --beta {beta:g}: log n + log M_d - beta A_d = "
            f"{h_inf:.4g} is outside [0, log n]; the law needs n well above {n_min:.4g}")
    result = {
        "law": "UniformSphere" if uniform else "PowerLawCap",
        "d": d, "alpha": alpha, "h": h, "kappa": kappa, "C": c,
        "lambda_star": ls.lambda_star, "rho_star": ls.rho_star, "chi_max": ls.chi_max,
        "E_max_weight_at_peak": ls.E_max_weight,
        "lambda": lam, "rho": rho, "lambda_ratio": lam / ls.lambda_star,
        "E_max_weight": e_w1, "E_sum_w2": e_w2, "E_entropy": e_h, "supercritical_tail": tail,
        "beta": beta, "A_d": a_d, "log_M_d": log_m, "S_par": s_par, "S_perp": s_perp,
        "entropy_n_inf": h_inf,
        "n": n, "beta_peak_exact": bp, "lambda_peak_exact": bp_lam, "chi_max_exact": bp_chi,
        "beta_peak_asymptotic": ls.lambda_star * n ** (2.0 / alpha),
        "dtype": "float64" if jax.config.jax_enable_x64 else "float32",
    }
    _check_finite(result, {"A_d": "--beta", "log_M_d": "--beta", "S_par": "--beta", "S_perp": "--beta",
                           "entropy_n_inf": "--beta", "beta_peak_asymptotic": "--n"}, "--lambda, --alpha or --C")
    for k in ("supercritical_tail", "beta_peak_exact", "lambda_peak_exact", "chi_max_exact"):
        if result[k] is None:  # not defined for this law (h <= 1/2, or --C overrides the law's own constant)
            del result[k]
    config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    files = {"json": io.save_json(os.path.join(out, "theory.json"),
                                  {**io.jsonable(result), "provenance": io.provenance(config)})}
    result["files"] = files
    return result, _table(result)


_LAWS = ("sphere", "gaussian", "simplex")


def _run_scores(args):
    """--law gaussian / simplex (docs/theory.md §h): the exact finite-n beta_peak at --n, and the law's closed forms."""
    if args.alpha is not None or args.C is not None:
        raise InputError(f"--alpha and --C describe sphere laws; they do not apply to --law {args.law}")
    beta = check_real("--beta", args.beta, nonnegative=True)
    n = args.n
    if n < 2:
        raise InputError(f"--n must be >= 2 (one key always has weight 1), got {n!r}")
    from .. import theory as S
    from ..laws import AlmostSimplex, GaussianScores

    if args.law == "gaussian":
        if args.sigma is None:
            sigma = 1.0 if args.d is None else 1.0 / math.sqrt(check_real("--d", args.d, minimum=1.0))
        else:
            sigma = check_real("--sigma", args.sigma, positive=True)
        law = GaussianScores(sigma)
    else:
        if args.rho is None:
            raise InputError("--law simplex needs --rho (the score of the n-1 other keys, -1 <= rho < 1)")
        law = AlmostSimplex(args.rho)
    out = C.setup(args, NAME)
    import jax

    from ..runtime import io

    result = {"law": type(law).__name__, "n": n, "beta": beta}
    if args.law == "gaussian":
        pk = S.finite_n_beta_peak(n, law)
        beta_c = law.critical_scale(n)
        m = beta_c / beta if beta > 0 else math.inf
        result.update({
            "sigma": sigma, "equivalent_d": law.equivalent_d, "beta_c": beta_c,
            "beta_peak_exact": pk.beta_peak, "beta_peak_ratio": pk.beta_peak / beta_c,
            "chi_max_exact": pk.chi_max, "E_max_weight_at_peak_exact": pk.E_max_weight,
            "beta_peak_predictor": float(S.predict_beta_peak(n, law)),
            "E_max_weight": float(S.finite_n_expected_max_weight(n, beta, law)),
            "chi": float(S.finite_n_chi(n, beta, law)),
            "pd_m": m, "pd_E_max_weight": S.pd_expected_max_weight(m) if m < 1 else None,
            "pd_E_sum_w2": 1.0 - m if m < 1 else None,
        })
    else:
        bp = law.beta_peak(n)
        lo, hi = law.window(n, 0.25)
        result.update({
            "rho": law.rho, "gamma_c": law.gamma_c, "beta_c": law.critical_scale(n),
            "beta_peak_exact": bp, "gamma_peak": bp / math.log(n), "chi_max_exact": float(law.chi(n, bp)),
            "max_weight_at_gamma_c": float(law.max_weight(n, law.critical_scale(n))),
            "window_gamma": [lo, hi], "window_width": law.gamma_c / math.log(n),
            "E_max_weight": float(law.max_weight(n, beta)), "chi": float(law.chi(n, beta)),
        })
    result["dtype"] = "float64"  # the exact quantities are always computed in float64
    result["x64"] = bool(jax.config.jax_enable_x64)
    config = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    result["files"] = {"json": io.save_json(os.path.join(out, "theory.json"),
                                            {**io.jsonable(result), "provenance": io.provenance(config)})}
    return result, _scores_table(result)


def _scores_table(r):
    def f(v):
        return "n/a" if v is None else v

    n = r["n"]
    if r["law"] == "GaussianScores":
        head = f"GaussianScores  sigma={r['sigma']:g}  (i.i.d. N(0, sigma^2) scores, weights softmax(beta s))"
        rows = [
            [f"beta_c (n={n:g})", r["beta_c"], "sqrt(2 log n)/sigma, REM freezing point"],
            ["beta_peak exact", r["beta_peak_exact"], "argmax d E[W1]/d log beta at finite n"],
            ["beta_peak / beta_c", r["beta_peak_ratio"], "-> 1 slowly (log corrections)"],
            ["chi_max exact", r["chi_max_exact"], ""],
            ["E[W1] at peak", r["E_max_weight_at_peak_exact"], ""],
            ["predictor", r["beta_peak_predictor"], "tail hazard at the 1/n quantile (docs/theory.md §h)"],
            [f"E[W1] (beta={r['beta']:g})", r["E_max_weight"], "exact, finite n"],
            [f"chi (beta={r['beta']:g})", r["chi"], "d E[W1]/d log beta"],
            ["m = beta_c/beta", r["pd_m"], "PD(m, 0) limit when m < 1"],
            ["PD E[W1]", f(r["pd_E_max_weight"]), "int e^-s ds/(1 + phi_m(s))"],
            ["PD E[sum w^2]", f(r["pd_E_sum_w2"]), "1 - m"],
        ]
    else:
        head = f"AlmostSimplex  rho={r['rho']:g}  (one key at score 1, n-1 at rho; Chen et al.)"
        lo, hi = r["window_gamma"]
        rows = [
            ["gamma_c", r["gamma_c"], "1/(1-rho); beta = gamma log n"],
            [f"beta_c (n={n:g})", r["beta_c"], "gamma_c log n"],
            ["w1 at gamma_c", r["max_weight_at_gamma_c"], "1/2 + 1/(4n-2)"],
            ["beta_peak exact", r["beta_peak_exact"], "argmax d w1/d log beta"],
            ["gamma_peak", r["gamma_peak"], "beta_peak / log n"],
            ["window (w1 in [1/4, 3/4])", f"{lo:.6g} .. {hi:.6g}", "gamma, logistic"],
            ["window width", r["window_width"], "gamma_c / log n"],
            [f"w1 (beta={r['beta']:g})", r["E_max_weight"], "closed form"],
        ]
    return C.format_table(["quantity", "value", "meaning"], rows, title=head) + "\n" + "\n".join(
        f"{k}: {v}" for k, v in r["files"].items())


def _table(r):
    def f(v):
        return "n/a" if v is None else v

    rows = [
        ["h = alpha/2", r["h"], "local exponent / 2"],
        ["kappa", r["kappa"], "gap density ~ kappa u^(h-1)"],
        ["C", r["C"], "P(u <= s) ~ C s^h"],
        ["lambda*", r["lambda_star"], "peak of d E[W1]/d log lambda (Poisson limit)"],
        ["rho*", r["rho_star"], "rho = C lambda^(-h) at the peak"],
        ["chi_max", r["chi_max"], "peak susceptibility"],
        ["E[W1] at peak", r["E_max_weight_at_peak"], ""],
        [f"E[W1] (lambda={r['lambda']:g})", r["E_max_weight"], f"rho = {r['rho']:.6g}"],
        ["E[sum w^2]", r["E_sum_w2"], "Poisson limit"],
        ["E[H] (nats)", r["E_entropy"], "Poisson limit"],
        ["supercritical tail", f(r.get("supercritical_tail")), "1 - E[W1] as lambda -> inf"],
        [f"A_d (beta={r['beta']:g})", r["A_d"], "mean resultant I_{d/2}/I_{d/2-1}"],
        ["log M_d", r["log_M_d"], "log E exp(beta t)"],
        ["S_par, S_perp", f"{r['S_par']:.6g}, {r['S_perp']:.6g}", "n Cov of the output (subcritical)"],
        [f"H at n={r['n']:g}, n=inf law", r["entropy_n_inf"], "log n + log M - beta A"],
        [f"beta_peak exact (n={r['n']:g})", f(r.get("beta_peak_exact")), "argmax d E[W1]/d log beta"],
        ["lambda* n^(2/alpha)", r["beta_peak_asymptotic"], "asymptotic beta_peak"],
    ]
    head = (f"{r['law']}  d={r['d']:g}  alpha={r['alpha']:g}  (beta multiplies <q,k> of unit vectors; "
            f"dtype={r['dtype']})")
    return C.format_table(["quantity", "value", "meaning"], rows, title=head) + "\n" + "\n".join(
        f"{k}: {v}" for k, v in r["files"].items())
