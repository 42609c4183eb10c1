"""Speed-up from 1 to 2 devices on the same seed workload, as a ratio measured in one run.

One process with 2 forced host devices (``--xla_force_host_platform_device_count=2``) runs
the same per-seed work (``sampled_observables``: n keys drawn and streamed over a beta grid,
for S seeds) through :class:`phasejax.runtime.devices.SeedRunner` on a 1-device mesh and on a
2-device mesh, after a warm-up call of each, and prints both best-of-R times and the ratio
t(1 device) / t(2 devices).

XLA's CPU backend already spreads one device's work over intra-op threads, so on a 2-core
machine the 2-device ratio can be near 1: the ideal split shows only when each device is held
to one thread. The script therefore runs each variant in a fresh child process (flags must be
set before JAX starts):

* ``default``: XLA's defaults (intra-op threads on);
* ``one-thread``: ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``,
  one thread per device, so 2 devices can use at most 2 cores.

Usage: ``python benchmarks/bench_devices.py [--n 2e5] [--seeds 16] [--betas 32] [--repeats 3]
[--variants default,one-thread] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

VARIANTS = {
    "default": "",
    "one-thread": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}


def child(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from phasejax.laws import UniformSphere
    from phasejax.observables import sampled_observables
    from phasejax.runtime import SeedRunner

    assert jax.local_device_count() >= 2, jax.devices()
    law = UniformSphere(3)
    betas = jnp.geomspace(1.0, 1e5, args.betas)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    fn = lambda k: sampled_observables(law, k, args.n, betas, top_k=5, chunk=8192)  # noqa: E731
    out = {"n": args.n, "seeds": args.seeds, "betas": args.betas, "cpu_count": os.cpu_count()}
    results = {}
    for k in (1, 2):
        runner = SeedRunner(fn, devices=k)
        jax.block_until_ready(runner(keys))  # warm-up: compile
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(runner(keys))
            times.append(time.perf_counter() - t0)
        out[f"t{k}_s"] = min(times)
        results[k] = runner(keys)
    out["speedup"] = out["t1_s"] / out["t2_s"]
    out["identical"] = all(bool((np.asarray(a) == np.asarray(b)).all()) for a, b in zip(jax.tree.leaves(results[1]),
                                                                 jax.tree.leaves(results[2]), strict=True))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=lambda s: int(float(s)), default=200_000, help="keys per context (default 2e5)")
    p.add_argument("--seeds", type=int, default=16, help="seeds (contexts) in the workload (default 16)")
    p.add_argument("--betas", type=int, default=32, help="betas in the grid (default 32)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per mesh, best kept (default 3)")
    p.add_argument("--variants", default="default,one-thread", help="comma list of: " + ", ".join(VARIANTS))
    p.add_argument("--json", action="store_true", help="one JSON object per variant on stdout")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    rows = []
    for name in args.variants.split(","):
        if name not in VARIANTS:
            p.error(f"--variants: unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
        env = dict(os.environ, JAX_PLATFORMS="cpu",
                   XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {VARIANTS[name]}".strip())
        cmd = [sys.executable, __file__, "--child", "--n", str(args.n), "--seeds", str(args.seeds),
               "--betas", str(args.betas), "--repeats", str(args.repeats)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["variant"] = name
        rows.append(r)
        if args.json:
            print(json.dumps(r))
    if not args.json:
        print(f"seed workload: {rows[0]['seeds']} seeds x n = {rows[0]['n']:g} keys x {rows[0]['betas']} betas, "
              f"{rows[0]['cpu_count']} CPU cores, best of {args.repeats} after warm-up")
        print(f"{'variant':>12}  {'1 device (s)':>13}  {'2 devices (s)':>14}  {'speed-up':>8}  identical")
        for r in rows:
            print(f"{r['variant']:>12}  {r['t1_s']:13.3f}  {r['t2_s']:14.3f}  {r['speedup']:8.2f}  {r['identical']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
