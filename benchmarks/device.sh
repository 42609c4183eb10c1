#!/usr/bin/env bash
# The accelerator run: sweep, scaling and heat benchmarks in under 5 minutes on one GPU or TPU, each printed as a
# fraction of the device's in-cache exp rate and memory bandwidth, both measured in the same run
# (benchmarks/_timing.py: limits()). Run from the repository root with phasejax installed for the device's JAX:
#
#     bash benchmarks/device.sh            # OUT=<folder> keeps the JSON of every step (default: /tmp/phasejax-device)
#
# Nothing here forces CPU-only choices: float32 throughout (no JAX_ENABLE_X64), no host callbacks in the hot
# loops, and the NumPy references of the CPU benchmarks are skipped (--no-numpy). Each step has its own time limit
# (timeout), so one slow step cannot take the whole budget; the sizes are chosen for an H100/H200-class device.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/phasejax-device}
mkdir -p "$OUT"
export PYTHONPATH="benchmarks${PYTHONPATH:+:$PYTHONPATH}"
unset JAX_ENABLE_X64
python - <<'EOF'
import jax
print("device:", jax.devices()[0], "| backend:", jax.default_backend(), "| devices:", jax.device_count())
EOF
start=$(date +%s)
step() {  # step <name> <seconds> <command...>
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  local t0; t0=$(date +%s)
  timeout "$limit" "$@" | tee "$OUT/$name.txt"
  echo "   rc=${PIPESTATUS[0]} elapsed $(( $(date +%s) - t0 ))s"
}
# 1. the sweep: the streaming pass (gap_observables / Accumulator.update) over 64 betas, n = 1e8 gaps
step sweep 90 python benchmarks/bench_observables.py --n 1e8 --betas 64 --repeats 3 --no-numpy
# 2. scaling: the nearest-m sampler with its bulk term (O(m) per context for any n), then the d = 8 scaling job
step nearest 60 python benchmarks/bench_nearest.py --d 8 --m 512 --seeds 256 --repeats 3
step scaling 90 phasejax scaling --d 8 --n-min 1e3 --n-max 1e8 --quiet --out "$OUT/scaling"
# 3. heat: the all-queries attention step, N = 2e5 tokens (4e10 pairs per step)
step heat 60 python benchmarks/bench_heat.py --n 200000 --d 3 --beta 100 --repeats 3 --no-numpy
echo "total $(( $(date +%s) - start ))s (budget 300s); outputs in $OUT"
