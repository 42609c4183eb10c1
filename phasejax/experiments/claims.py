"""Shared by the experiments: run a phasejax subcommand in-process, and state claims.

A *claim* is one row of the reproduction report: a quantity, its theory value, the measured
value with its standard error, and whether they agree within ``k`` standard errors (plus an
optional stated systematic tolerance).
"""

from __future__ import annotations

import math
import os


def experiment_key(base: int, seed: int = 0):
    """The PRNG key of an experiment's draw number ``base`` under ``--seed``: ``jax.random.key(base)`` for the
    default seed 0 (the published numbers), else that key folded with the full 64-bit seed."""
    import jax

    from phasejax._checks import check_seed

    seed = check_seed(seed)
    key = jax.random.key(base)
    return key if seed == 0 else jax.random.fold_in(jax.random.fold_in(key, seed >> 32), seed & 0xFFFFFFFF)


def add_seed_argument(p) -> None:
    """``--seed`` (0 <= seed < 2^63, default 0), as the CLI's; ``phasejax reproduce --seed`` passes it on."""
    from phasejax.cli import seed

    p.add_argument("--seed", type=seed, default=0, help="PRNG seed, 0 <= seed < 2^63 (default 0)")


def run_command(argv: list[str]):
    """Run ``phasejax <argv>`` in-process and return (result_dict, table_text)."""
    from phasejax.cli import build_parser

    args = build_parser().parse_args(argv)
    return args._run(args)


def claim(name: str, theory: float | None, measured: float, se: float | None = None, *, k: float = 2.0,
          tol: float = 0.0, note: str = "") -> dict:
    """One row of the report; ``agrees`` is |measured - theory| <= k se + tol (None when no theory)."""
    agrees = None
    if theory is not None and measured is not None and math.isfinite(measured):
        agrees = bool(abs(measured - theory) <= k * (se or 0.0) + tol)
    return {"claim": name, "theory": theory, "measured": measured, "se": se, "k_sigma": k, "tol": tol,
            "agrees": agrees, "note": note}


def format_claims(claims: list[dict]) -> str:
    lines = [f"{'claim':58s} {'theory':>12s} {'measured':>12s} {'se':>10s}  agrees"]
    for c in claims:
        th = "-" if c["theory"] is None else f"{c['theory']:.6g}"
        se = "-" if c["se"] is None else f"{c['se']:.3g}"
        ag = {True: "yes", False: "NO", None: "-"}[c["agrees"]]
        lines.append(f"{c['claim'][:58]:58s} {th:>12s} {c['measured']:>12.6g} {se:>10s}  {ag}")
    return "\n".join(lines)


def out_dir(path: str | None, name: str) -> str:
    path = path or os.path.join("runs", "experiments", name)
    os.makedirs(path, exist_ok=True)
    return path

