"""Cost against context length n: time and peak memory of one context, exact and nearest-m samplers.

* exact: ``sampled_observables(law, key, n, betas)``: all n gaps drawn and streamed in chunks, O(n) time,
  O(B * chunk) memory (n = 1e4 .. 1e8);
* nearest: ``nearest_observables(law, key, n, betas, m=m)``: the m nearest exactly plus the bulk's conditional
  mean and CLT term, O(m + B * nodes) whatever n is (n = 1e4 .. 1e15); m from ``choose_m_bulk`` (64 at d = 3,
  512 at d = 8), 32 contexts per call (vmap) and the time reported per context.

Peak memory is reported two ways, and the table says which column is which:

* ``xla MiB``: the compiled program's own footprint, ``compile().memory_analysis()``: temp + argument + output
  bytes (what the computation allocates; exact, no noise from the Python process);
* ``rss MiB`` (with ``--rss``): the high-water resident set size (``ru_maxrss``) of a fresh subprocess that
  imports phasejax, compiles and runs that one point (interpreter, JAX and compiler included), and the same
  minus a twin subprocess that does everything but the call (0 when the run stays below the compiler's peak).

Usage: ``python benchmarks/bench_cost.py [--d 3 8] [--betas 64] [--rss] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from _timing import best_time  # benchmarks/_timing.py (scripts run with benchmarks/ on sys.path)

import phasejax as pj
from phasejax.observables import _nearest_observables, _sampled_observables
from phasejax.scaling import choose_m_bulk, default_lambda_range

EXACT_NS = (1e4, 1e5, 1e6, 1e7, 1e8)
NEAREST_NS = (1e4, 1e6, 1e8, 1e10, 1e12, 1e15)
NEAREST_SEEDS = 32


def _betas(law, n, points):
    lo, hi = default_lambda_range(law)
    return jnp.asarray(np.geomspace(lo, hi, points) * n ** (2 / law.alpha), jnp.result_type(float))


def _program(kind, d, n, points):
    """(jitted fn, args) for one point: one exact context, or NEAREST_SEEDS nearest contexts."""
    law = pj.UniformSphere(d)
    n = int(n)
    betas = _betas(law, n, points)
    dtype = jnp.dtype(jnp.result_type(float))
    if kind == "exact":
        fn = jax.jit(lambda key, b: _sampled_observables(law, key, b, n, 5, 32768, dtype).max_weight)
        return fn, (jax.random.key(0), betas), 1, None
    m = min(choose_m_bulk(law, n, default_lambda_range(law)), n)
    keys = jax.random.split(jax.random.key(0), NEAREST_SEEDS)

    def one(key, b):
        obs, _ = _nearest_observables(law, key, b, n, m, 5, True, True, 512, dtype)
        return obs.max_weight

    fn = jax.jit(jax.vmap(one, in_axes=(0, None)))
    return fn, (keys, betas), NEAREST_SEEDS, m


def _xla_bytes(fn, args):
    ma = fn.lower(*args).compile().memory_analysis()
    if ma is None:
        return float("nan")
    return float(ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes)


def measure(kind, d, n, points, repeats):
    fn, args, contexts, m = _program(kind, d, n, points)
    t = best_time(lambda: fn(*args), repeats)
    return {"kind": kind, "d": d, "n": float(n), "m": m, "s_per_context": t / contexts,
            "xla_bytes": _xla_bytes(fn, args)}


def _rss_child(kind, d, n, points, call):
    """ru_maxrss (bytes) of a subprocess that builds, compiles and (if ``call``) runs one point."""
    here = os.path.dirname(os.path.abspath(__file__))
    run = "jax.block_until_ready(c(*args));" if call else ""
    code = (
        f"import resource, sys; sys.path.insert(0, {here!r}); import bench_cost as b, jax;"
        f"fn, args, _, _ = b._program({kind!r}, {d}, {float(n)!r}, {points}); c = fn.lower(*args).compile();"
        f"{run}print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) * 1024  # Linux: KiB


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, nargs="+", default=[3, 8])
    p.add_argument("--betas", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--exact-max", type=float, default=1e8)
    p.add_argument("--kinds", default="exact,nearest", help="samplers to time (default exact,nearest)")
    p.add_argument("--rss", action="store_true", help="also the RSS high-water of a subprocess per point (slow)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    rows = []
    for d in a.d:
        plan = (("exact", [n for n in EXACT_NS if n <= a.exact_max]), ("nearest", NEAREST_NS))
        for kind, ns in (x for x in plan if x[0] in a.kinds.split(",")):
            for n in ns:
                r = measure(kind, d, n, a.betas, 1 if (kind == "exact" and n >= 1e7) else a.repeats)
                if a.rss:
                    full = _rss_child(kind, d, n, a.betas, True)
                    r["rss_bytes"] = float(full)
                    r["rss_over_compile_bytes"] = float(full - _rss_child(kind, d, n, a.betas, False))
                rows.append(r)
                if not a.json:
                    rss = (f"  {r['rss_bytes'] / 2**20:8.1f}  {r['rss_over_compile_bytes'] / 2**20:8.1f}"
                           if a.rss else "")
                    print(f"d={d}  {kind:7s}  n={n:8.0e}  m={r['m'] or '-':>5}  {r['s_per_context'] * 1e3:10.2f} ms"
                          f"  {r['xla_bytes'] / 2**20:8.2f}{rss}", flush=True)
    res = {"betas": a.betas, "devices": [str(x) for x in jax.devices()], "rows": rows}
    for d in a.d:
        near = [r["s_per_context"] for r in rows if r["d"] == d and r["kind"] == "nearest"]
        ex = [r for r in rows if r["d"] == d and r["kind"] == "exact"]
        res[f"nearest_time_ratio_max_min_d{d}"] = max(near) / min(near) if near else float("nan")
        if len(ex) >= 2:  # slope of log time against log n over the exact points above 1e5 (1 = linear)
            pts = [(r["n"], r["s_per_context"]) for r in ex if r["n"] >= 1e5] or [(r["n"], r["s_per_context"])
                                                                                   for r in ex]
            x, y = np.log([q[0] for q in pts]), np.log([q[1] for q in pts])
            res[f"exact_time_slope_d{d}"] = float(np.polyfit(x, y, 1)[0]) if len(pts) >= 2 else float("nan")
    if a.json:
        print(json.dumps(res))
    else:
        print("columns: time per context (ms); xla MiB = compiled temp+argument+output bytes (memory_analysis)"
              + ("; rss MiB = ru_maxrss of a subprocess running the point, then the same minus a compile-only"
                 " twin (0: the run needs no memory beyond the compiler's high-water)" if a.rss else ""))
        for d in a.d:
            print(f"d={d}: nearest time max/min over n = {res[f'nearest_time_ratio_max_min_d{d}']:.2f} (flat = 1);"
                  f" exact time ~ n^{res.get(f'exact_time_slope_d{d}', float('nan')):.2f}")
    return res


if __name__ == "__main__":
    main()
