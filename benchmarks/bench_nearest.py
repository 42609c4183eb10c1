"""Cost of the nearest-m sampler does not depend on n: time per call for n = 1e4 .. 1e15, in one run.

For each n, one context (one seed) of ``UniformSphere(d)`` keys, every observable on a beta grid of
B points around the critical scale n^{2/alpha} (bulk correction and CLT fluctuation on), and a
vmapped batch of seeds; n is static, so each n compiles once (untimed warm-up), then the best of
``--repeats`` calls is kept. Prints a table (n, seconds per call, per seed) and the ratio
max/min of the times over n: ~1 means the cost is independent of n. For comparison it also
times the exact O(n) sampler at the smallest n.

Also the fraction of the in-cache exp rate (benchmarks/_timing.py, measured in the same run), with the
transcendentals counted as seeds * B * (m + 12 nodes) per call (m exps for the nearest keys; per quadrature node
about 12 exp/log/softplus evaluations) and of the bandwidth (the m gaps read once per beta, 4 bytes each).

Usage: ``python benchmarks/bench_nearest.py [--d 3] [--m 256] [--betas 64] [--seeds 32] [--json]``.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
from _timing import best_limits, best_time, limits  # benchmarks/_timing.py (scripts run with benchmarks/ on sys.path)

from phasejax.laws import UniformSphere
from phasejax.observables import nearest_observables, sampled_observables


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--d", type=int, default=3)
    p.add_argument("--m", type=int, default=256)
    p.add_argument("--betas", type=int, default=64)
    p.add_argument("--seeds", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--ns", default="1e4,1e6,1e8,1e10,1e12,1e15")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    law = UniformSphere(args.d)
    ns = [int(float(x)) for x in args.ns.split(",")]
    keys = jax.random.split(jax.random.key(0), args.seeds)
    lim0 = limits(repeats=args.repeats)
    rows = []
    for n in ns:
        betas = jnp.asarray(np.geomspace(1e-3, 1e2, args.betas) * n ** (2 / law.alpha), jnp.result_type(float))
        run = jax.jit(jax.vmap(lambda k, b=betas, n=n: nearest_observables(law, k, n, b, m=args.m)))
        t = best_time(lambda run=run: run(keys).max_weight, args.repeats)
        rows.append({"n": n, "seconds": t, "seconds_per_seed": t / args.seeds})
    times = np.array([r["seconds"] for r in rows])
    lim = best_limits(lim0, limits(repeats=args.repeats))
    exps = args.seeds * args.betas * (args.m + 12 * 512)
    for r in rows:
        r["fraction_of_in_cache_exp_rate"] = exps / r["seconds"] / lim["exp_per_s"]
        r["fraction_of_bandwidth"] = 4 * args.seeds * args.betas * args.m / r["seconds"] / lim["bandwidth_Bps"]
    n0 = ns[0]
    b0 = jnp.asarray(np.geomspace(1e-3, 1e2, args.betas) * n0 ** (2 / law.alpha), jnp.result_type(float))
    exact = jax.jit(jax.vmap(lambda k: sampled_observables(law, k, n0, b0)))
    t_exact = best_time(lambda: exact(keys).max_weight, args.repeats)
    result = {
        "d": args.d, "m": args.m, "betas": args.betas, "seeds": args.seeds, "rows": rows,
        "ratio_max_over_min": float(times.max() / times.min()),
        "exact_seconds_at_n_min": t_exact, "n_min": n0,
        "limits": lim, "device": str(jax.devices()[0]), "dtype": str(jnp.result_type(float)),
    }
    if args.json:
        print(json.dumps(result))
        return result
    print(f"nearest-m sampler, UniformSphere(d={args.d}), m={args.m}, {args.betas} betas, {args.seeds} seeds per call")
    print(f"{'n':>10}  {'s/call':>10}  {'ms/seed':>10}  {'frac exp':>9}  {'frac bw':>9}")
    for r in rows:
        print(f"{r['n']:>10.0e}  {r['seconds']:>10.4f}  {1e3 * r['seconds_per_seed']:>10.3f}"
              f"  {r['fraction_of_in_cache_exp_rate']:>9.3f}  {r['fraction_of_bandwidth']:>9.2e}")
    print(f"limits measured now: in-cache exp {lim['exp_per_s']:.3g}/s, bandwidth {lim['bandwidth_Bps'] / 1e9:.1f}"
          " GB/s (exps counted as seeds * B * (m + 12 * 512 nodes))")
    print(f"ratio max/min time over n = {ns[0]:.0e}..{ns[-1]:.0e}: {result['ratio_max_over_min']:.2f}")
    print(f"exact O(n) sampler at n = {n0:.0e}: {t_exact:.4f} s/call ({t_exact / times[0]:.2f}x the nearest-m time)")
    return result


if __name__ == "__main__":
    main()
