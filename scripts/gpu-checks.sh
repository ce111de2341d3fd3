#!/usr/bin/env bash
# GPU checks of the CUDA backend -- the ONE command to run on a machine with an NVIDIA GPU:
#
#     scripts/gpu-checks.sh
#
# The CUDA launch path (mpc-runtime/src/cuda/{driver,launch}.rs, `mpc solve --backend cuda`)
# was written on a machine without a GPU and has never run on hardware; this script is its
# test. It
#   1. builds the release binary (needs NVRTC: scripts/setup.sh installs it into .venv);
#   2. checks the driver is seen (`mpc solve --backend auto` must choose cuda);
#   3. runs `mpc solve --backend cuda` on every bundled-model fixture of shared/fixtures
#      (pendulum*, cartpole*, quadrotor*; the `linear*` fixtures have no CUDA kernel) and
#      compares each solution with the reference solution through
#      shared/tools/compare_solutions.py (x, u 1e-6; cost 1e-6 rel.; gradients 1e-5 rel.,
#      the gradients coming from the GPU backward kernel), and also prints the largest
#      |x|, |u| difference to `--backend cpu`;
#   4. `mpc bench` has no CUDA backend yet, so there is no benchmark step.
# Exit status 0 when everything passed. Env: CARGO_TARGET_DIR (default: target), FIXTURES
# (default: ../shared/fixtures or /work/shared/fixtures), COMPARE (the comparator).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
FIXTURES=${FIXTURES:-$( [ -d "$ROOT/../shared/fixtures" ] && echo "$ROOT/../shared/fixtures" || echo /work/shared/fixtures )}
COMPARE=${COMPARE:-$( [ -f "$ROOT/../shared/tools/compare_solutions.py" ] && echo "$ROOT/../shared/tools/compare_solutions.py" || echo /work/shared/tools/compare_solutions.py )}

echo "== nvidia-smi"; nvidia-smi -L || echo "(nvidia-smi not available)"
echo "== build (release)"; cargo build --release --bin mpc
MPC="$TARGET/release/mpc"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

echo "== driver probe (--backend auto)"
first=$(ls "$FIXTURES"/pendulum*.problem.json | head -1)
"$MPC" solve --backend auto --problem "$first" --out "$WORK/auto.json" 2>"$WORK/auto.err"; cat "$WORK/auto.err"
grep -q '"backend":"cuda"' "$WORK/auto.json" || { echo "FAIL: --backend auto did not choose cuda"; exit 1; }

echo "== solve --backend cuda on every bundled-model fixture"
mkdir -p "$WORK/fx"
for p in "$FIXTURES"/*.problem.json; do
  n=$(basename "$p" .problem.json)
  case "$n" in linear*) continue ;; esac
  cp "$p" "$WORK/fx/"; cp "$FIXTURES/$n.solution.json" "$WORK/fx/"
done
python3 "$COMPARE" "$WORK/fx" -- "$MPC" solve --backend cuda --problem {problem} --out {out}

echo "== cuda vs cpu (max abs difference of x, u, cost)"
for p in "$WORK"/fx/*.problem.json; do
  n=$(basename "$p" .problem.json)
  "$MPC" solve --backend cuda --problem "$p" --out "$WORK/$n.cuda.json" 2>/dev/null
  "$MPC" solve --backend cpu --problem "$p" --out "$WORK/$n.cpu.json"
  python3 - "$WORK/$n.cuda.json" "$WORK/$n.cpu.json" "$n" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
def flat(v): return [y for x in v for y in flat(x)] if isinstance(v, list) else [v]
d = {k: max((abs(x - y) for x, y in zip(flat(a[k]), flat(b[k]))), default=0.0) for k in ("x", "u", "cost")}
assert a["backend"] == "cuda" and b["backend"] == "cpu", (a["backend"], b["backend"])
print(f"{sys.argv[3]}: " + ", ".join(f"{k} {v:.2e}" for k, v in d.items()) + f"; iterations cuda {a['iterations']} cpu {b['iterations']}")
PY
done
echo "== bench: mpc bench has no --backend cuda yet; skipped"
echo "ALL GPU CHECKS PASSED"
