"""Options, output folders, tables and JSON shared by the subcommands."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import sys
import time

import jax
import numpy as np

from .._checks import InputError
from ..runtime.devices import initialize, mesh_info
from ..runtime.io import jsonable

__all__ = [
    "positive_int",
    "seed",
    "integer",
    "count",
    "real",
    "nonneg_real",
    "positive_real",
    "k_option",
    "add_k_level_arguments",
    "band_from_args",
    "add_output_arguments",
    "add_geometry_arguments",
    "geometry_from_args",
    "setup",
    "Progress",
    "format_table",
    "emit",
    "lambda_star_of",
    "check_choice",
    "run_config",
    "add_parallel_arguments",
    "start_from_args",
]


def positive_int(text: str) -> int:
    """An integer >= 1, parsed exactly from the string (``1e6`` ok; ``9007199254740993`` is not rounded)."""
    from .._checks import parse_int

    try:
        v = parse_int(text)
    except InputError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def seed(text: str) -> int:
    """A PRNG seed 0 <= seed < 2^63, parsed exactly (never reduced mod 2^32)."""
    from .._checks import SEED_LIMIT, parse_int

    try:
        v = parse_int(text)
    except InputError:
        raise argparse.ArgumentTypeError(f"expected an integer seed 0 <= seed < 2^63, got {text!r}") from None
    if not 0 <= v < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected an integer seed 0 <= seed < 2^63 = {SEED_LIMIT}, got {text!r}")
    return v


def integer(text: str) -> int:
    """Any integer, parsed exactly from the string (range checks are the command's)."""
    from .._checks import parse_int

    try:
        return parse_int(text)
    except InputError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def count(text: str) -> int:
    """An integer that may be written as 1e6."""
    return positive_int(text)


def real(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a real number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return v


def nonneg_real(text: str) -> float:
    v = real(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return v


def positive_real(text: str) -> float:
    v = real(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def k_option(text: str):
    """The k rule of a tail fit: 'gof', 'min_ks' or a positive integer K."""
    if text in ("gof", "min_ks"):
        return text
    return positive_int(text)


def add_k_level_arguments(g, *, k_help: str) -> None:
    """--k (the tail fit's k rule, help text ``k_help``) and --level (its test level) on a parser or group."""
    g.add_argument("--k", type=k_option, default="gof", help=k_help)
    g.add_argument("--level", type=positive_real, default=0.1, help="test level of the k rule (default 0.1)")


def band_from_args(args) -> tuple[float, float]:
    """(LOW, HIGH) of --window, after checking 0 < LOW < HIGH < 1 and 0 < --level < 1 (else InputError)."""
    lo_w, hi_w = args.window
    if not 0 < lo_w < hi_w < 1:
        raise InputError(f"--window must satisfy 0 < LOW < HIGH < 1, got {lo_w:g} {hi_w:g}")
    if not 0 < args.level < 1:
        raise InputError(f"--level must be in (0, 1), got {args.level:g}")
    return lo_w, hi_w


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, help="results folder (default runs/<command>-<timestamp>/)")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    g.add_argument("--x64", action="store_true", help="compute in float64 (jax_enable_x64)")
    g.add_argument("--seed", type=seed, default=0, help="PRNG seed, 0 <= seed < 2^63 (default 0)")
    g.add_argument("--quiet", action="store_true", help="no progress on stderr")


def add_geometry_arguments(p: argparse.ArgumentParser, *, d_default: int = 3) -> None:
    g = p.add_argument_group("key law")
    g.add_argument(
        "--geometry",
        default="uniform",
        help="key law: uniform (UniformSphere), powerlaw (PowerLawCap, needs --alpha), "
        "subsphere (Subsphere, needs --subsphere-dim), gaussian (i.i.d. N(0, sigma^2) scores, the random "
        "energy model; --sigma); default uniform",
    )
    g.add_argument("--d", type=int, default=d_default, help=f"ambient dimension, keys on S^(d-1) (default {d_default})")
    g.add_argument("--alpha", type=positive_real, default=None, help="local exponent of PowerLawCap")
    g.add_argument("--subsphere-dim", type=int, default=None, metavar="M",
                   help="Subsphere: keys on a great S^(M-1) through the query, 2 <= M <= d (alpha = M-1)")
    g.add_argument("--sigma", type=positive_real, default=None,
                   help="gaussian: score standard deviation (default 1/sqrt(d), the spread of <q,k> on S^(d-1))")


def geometry_from_args(args):
    from ..laws.registry import law_from_name

    sigma = getattr(args, "sigma", None)
    if sigma is not None and args.geometry != "gaussian":
        raise InputError(f"--sigma {sigma:g} applies to --geometry gaussian only, got --geometry {args.geometry}")
    return law_from_name(args.geometry, d=args.d, alpha=args.alpha, m=args.subsphere_dim, sigma=sigma)


def setup(args, name: str) -> str:
    """Apply --x64 and create the output folder; returns its path."""
    import jax

    if getattr(args, "x64", False):
        jax.config.update("jax_enable_x64", True)
    out = args.out or os.path.join("runs", f"{name}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out: cannot create folder {out!r}: {e.strerror}") from None
    return out


class Progress:
    """A one-line progress report on stderr for long work (silent when quiet or not a TTY and fast)."""

    def __init__(self, total: int, desc: str, quiet: bool = False):
        self.total, self.desc, self.quiet = total, desc, quiet
        self.done = 0
        self.t0 = time.perf_counter()

    def update(self, k: int = 1, note: str = "") -> None:
        self.done += k
        if self.quiet:
            return
        el = time.perf_counter() - self.t0
        print(f"\r{self.desc}: {self.done}/{self.total} ({el:.1f} s) {note}", end="", file=sys.stderr, flush=True)
        if self.done >= self.total:
            print(file=sys.stderr, flush=True)


def format_table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    """A plain fixed-width table."""

    def fmt(v):
        if isinstance(v, str):
            return v
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v)
        if not math.isfinite(f):
            return "nan"
        if f != 0 and (abs(f) >= 1e5 or abs(f) < 1e-3):
            return f"{f:.4e}"
        return f"{f:.5g}"

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def emit(args, result: dict, table: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(jsonable(result)))
    else:
        print(table)


def lambda_star_of(law):
    """lambda* of a key law's (alpha, C), or None for a law without a power-law tail (GaussianScores)."""
    from ..theory import lambda_star

    if not math.isfinite(law.alpha):
        return None
    return lambda_star(alpha=law.alpha, C=law.C).lambda_star


def check_choice(flag: str, value, allowed) -> str:
    """An option value from a fixed set, else :class:`InputError` naming the flag."""
    from .._checks import check_option

    return check_option(flag, value, allowed)


# CLI options that change where or how a run goes, never its numbers: left out of the config hash.
RUN_ONLY_OPTIONS = frozenset({
    "out", "json", "quiet", "devices", "distributed", "coordinator", "num_processes", "process_id", "resume",
    "command", "batch", "cell_seeds",
})


def run_config(args, **extra) -> dict:
    """The settings of a CLI run that determine its numbers: ``vars(args)`` minus
    :data:`RUN_ONLY_OPTIONS` and private keys, plus ``extra`` (e.g. the resolved beta grid and dtype)."""
    cfg = {k: v for k, v in vars(args).items() if not k.startswith("_") and k not in RUN_ONLY_OPTIONS}
    cfg.update(extra)
    return cfg


def add_parallel_arguments(p: argparse.ArgumentParser, *, resume: bool = False) -> None:
    """--devices, the multi-process flags, and (for resumable commands) --resume/--cell-seeds."""

    g = p.add_argument_group("devices and hosts")
    g.add_argument("--devices", type=positive_int, default=None, metavar="K",
                   help="local devices to shard seeds over (default: all of jax.local_devices())")
    g.add_argument("--distributed", action="store_true",
                   help="join a multi-process run: jax.distributed.initialize() from JAX_COORDINATOR_ADDRESS, "
                   "JAX_NUM_PROCESSES, JAX_PROCESS_ID or cluster auto-detection (SLURM, Open MPI, TPU pod)")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="address of process 0 of a multi-process run (implies --distributed)")
    g.add_argument("--num-processes", type=positive_int, default=None, metavar="P",
                   help="processes in the run (implies --distributed)")
    g.add_argument("--process-id", type=int, default=None, metavar="I",
                   help="this process's index, 0 <= I < P (implies --distributed)")
    if resume:
        g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                       help="reuse the finished cells in --out/cells when the config matches (default); "
                       "--no-resume deletes them and starts over")
        g.add_argument("--cell-seeds", type=positive_int, default=None, metavar="K",
                       help="seeds per checkpoint cell (default: seeds/16, at least 1)")


def start_from_args(args) -> dict:
    """Initialise the multi-process runtime if asked (flags or --distributed), then describe the mesh.

    Must run before anything touches a JAX device. Returns :func:`mesh_info` for
    ``args.devices``."""
    wants = (getattr(args, "distributed", False) or getattr(args, "coordinator", None) is not None
             or getattr(args, "num_processes", None) is not None or getattr(args, "process_id", None) is not None)
    if wants:
        pid = getattr(args, "process_id", None)
        if pid is not None and pid < 0:
            raise InputError(f"--process-id must be >= 0, got {pid}")
        if getattr(args, "x64", False):
            jax.config.update("jax_enable_x64", True)
        initialize(getattr(args, "coordinator", None), getattr(args, "num_processes", None), pid)
    return mesh_info(getattr(args, "devices", None))
