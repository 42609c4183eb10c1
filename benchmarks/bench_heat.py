"""The all-queries heat step: phasejax against a blocked NumPy reference, and the half-key step against the plain one.

One cloud of N tokens on S^(d-1) (``heat.sample_zonal``), one renormalised step at beta, self term excluded
(the setting of the heat must-show). Timed in the same run, best of ``--repeats`` after an untimed warm-up:

* ``numpy``   a blocked NumPy softmax step written for this benchmark (blocks of 512 queries x all keys,
  max-shifted exp, float32 like the default), the reference;
* ``step``    :func:`phasejax.heat.attention_step`;
* ``halves``  :func:`phasejax.heat.attention_step_halves` (all keys and each half, one pass): what
  ``measure_gain`` and ``phasejax heat`` run.

Prints seconds, pairs per second and the ratios numpy/step and halves/step (the half-key step should cost
about the same as the plain step). Checks that the three agree (max |difference| of the full step).

Also the machine's limits measured in the same run (benchmarks/_timing.py): the step's pairs/s (one exp per
pair) as a fraction of the in-cache exp rate, and its minimal memory traffic (the tokens read and the result
written once, 2 N d itemsize bytes) as a fraction of the bandwidth. ``--no-numpy`` skips the reference
(accelerators).

Usage: ``python benchmarks/bench_heat.py [--n 20000] [--d 3] [--beta 100] [--repeats 3] [--no-numpy] [--json]``.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np
from _timing import best_limits, best_time, limits  # benchmarks/_timing.py (scripts run with benchmarks/ on sys.path)

from phasejax import heat


def numpy_step(x: np.ndarray, beta: float, block: int = 512) -> np.ndarray:
    n = x.shape[0]
    out = np.empty_like(x)
    for i in range(0, n, block):
        s = beta * (x[i : i + block] @ x.T)
        s[np.arange(s.shape[0]), np.arange(i, i + s.shape[0])] = -np.inf  # self term excluded
        s -= s.max(axis=1, keepdims=True)
        w = np.exp(s)
        y = (w @ x) / w.sum(axis=1, keepdims=True)
        out[i : i + block] = y / np.linalg.norm(y, axis=1, keepdims=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--d", type=int, default=3)
    p.add_argument("--beta", type=float, default=100.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)

    x = heat.sample_zonal(jax.random.key(0), a.n, a.d, 2, 0.5)
    xn = np.asarray(x)
    t_np = float("nan") if a.no_numpy else best_time(lambda: numpy_step(xn, a.beta), a.repeats)
    lim0 = limits(repeats=a.repeats)
    t_step = best_time(lambda: heat.attention_step(x, a.beta, self_interaction=False), a.repeats)
    t_half = best_time(lambda: heat.attention_step_halves(x, a.beta, self_interaction=False)[0], a.repeats)
    y_ref = np.asarray(heat.attention_step(x, a.beta, self_interaction=False)) if a.no_numpy else numpy_step(xn, a.beta)
    lim = best_limits(lim0, limits(repeats=a.repeats))
    y = np.asarray(heat.attention_step(x, a.beta, self_interaction=False))
    y_h = np.asarray(heat.attention_step_halves(x, a.beta, self_interaction=False)[0])
    pairs = float(a.n) * a.n
    res = {
        "n": a.n, "d": a.d, "beta": a.beta, "backend": jax.default_backend(),
        "seconds": {"numpy": t_np, "step": t_step, "halves": t_half},
        "pairs_per_second": {"numpy": pairs / t_np, "step": pairs / t_step, "halves": pairs / t_half},
        "speedup_vs_numpy": t_np / t_step,
        "halves_over_step": t_half / t_step,
        "limits": lim,
        "fraction_of_in_cache_exp_rate": pairs / t_step / lim["exp_per_s"],
        "fraction_of_bandwidth": 2 * a.n * a.d * x.dtype.itemsize / t_step / lim["bandwidth_Bps"],
        "max_abs_diff": {"step_vs_numpy": float(np.abs(y - y_ref).max()),
                         "halves_vs_step": float(np.abs(y_h - y).max())},
    }
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        print(f"heat step, N={a.n}, d={a.d}, beta={a.beta:g}, {res['backend']}, best of {a.repeats}")
        for k, t in res["seconds"].items():
            print(f"  {k:7s} {t:8.3f} s   {pairs / t:.3e} pairs/s")
        print(f"  phasejax step vs NumPy reference: {res['speedup_vs_numpy']:.2f}x faster")
        print(f"  half-key step / plain step:        {res['halves_over_step']:.2f}")
        print(f"  limits measured now: in-cache exp {lim['exp_per_s']:.3g}/s, bandwidth "
              f"{lim['bandwidth_Bps'] / 1e9:.1f} GB/s")
        print(f"  step: fraction of in-cache exp rate {res['fraction_of_in_cache_exp_rate']:.2f} (one exp per pair),"
              f" of bandwidth {res['fraction_of_bandwidth']:.2e} (tokens in and out once)")
        print(f"  max |step - numpy| = {res['max_abs_diff']['step_vs_numpy']:.1e}, "
              f"max |halves - step| = {res['max_abs_diff']['halves_vs_step']:.1e}")
    return res


if __name__ == "__main__":
    main()
