#!/usr/bin/env bash
# GPU checks of the CUDA backend -- the ONE command to run on a machine with an NVIDIA GPU:
#
#     bash scripts/gpu-checks.sh            # everything, results under bench/results/gpu-<UTC>/
#     QUICK=1 bash scripts/gpu-checks.sh    # correctness only (no benchmarks, no profiles)
#
# The CUDA launch path (mpc-cuda/src/{driver,launch}.rs, `mpc solve|bench --backend cuda`) was
# written on machines without a GPU; this script is its test and its benchmark, sized for a
# 15-minute device lease that includes the machine's start: BUDGET_S (default 600 s) is the
# script's share, and a step that would not fit in what is left is skipped, not cut. Steps in
# order of importance, each PASS/FAIL/SKIP in SUMMARY.md, which is rewritten after every step
# (a run cut off by the lease still reports); the script goes on after a failure and exits 1
# if any step failed:
#   1. GPU and driver (nvidia-smi), NVRTC present (scripts/setup.sh installs the wheels);
#   2. one release build: the `mpc` binary and the GPU test binaries;
#   3. correctness (about 3 min): tests/backends.rs (every Backend, the GPU included, against
#      the CPU on the fixtures, and their typed errors), tests/cuda_gpu_fixtures.rs (every
#      layout, both gradient modes, f64 and f32, against the CPU; and the --fmad=false build
#      against host emulation to a few ulp, the sharp test of the launch path),
#      tests/solve_backend.rs, tests/cuda_bench_cli.rs;
#   4. `mpc solve --backend auto` must choose cuda;
#   5. `mpc solve --backend cuda` on every bundled-model fixture (tests/fixtures; `linear*` have
#      no kernel) against the reference solutions with scripts/compare_solutions.py (a copy of
#      shared/tools/compare_solutions.py) and against `--backend cpu`;
#      then the Python package's Solver(backend="cuda") against the CPU (when a .venv with the
#      built wheel was carried to the machine);
#   6. `mpc bench --backend cuda`, the Table II grid (B in {1, 256}, T in {2, 10, 50}, K = 5,
#      forward and backward, end-to-end and kernel-only), single-launch layout, then the
#      three-stage and warp-per-problem layouts (the data KernelLayout::auto needs), then the
#      large batches B = 4096, 65536;
#   7. `mpc bench --backend cpu` on this machine's cores, for the ratio;
#   8. mpc.pytorch 0.0.6 on the same GPU when python3 can import torch (with CUDA) and mpc;
#   9. nsys / ncu profiles of the quadrotor kernels (B = 256, T = 50) when installed.
# Outputs (OUTDIR, default bench/results/gpu-<UTC stamp>/): gpu-checks.log, nvidia-smi.txt,
# cuda-table2{,-three-stage,-warp,-large}.{json,md}, cpu-table2.{json,md},
# mpc-pytorch-cuda.json, nsys-*/ncu-* reports, SUMMARY.md.
# Env: CARGO_TARGET_DIR (default target), FIXTURES (default tests/fixtures), COMPARE,
# PEER_DIR (shared/peer-bench), PEER_WHEEL, OUTDIR, QUICK (correctness only), BUDGET_S
# (default 600), BENCH_REPS (default 30), BENCH_BUDGET_S (default 5).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
TARGET=$CARGO_TARGET_DIR
pick() { for p in "$@"; do [ -e "$p" ] && { echo "$p"; return; }; done; echo "$1"; }
FIXTURES=${FIXTURES:-$(pick "$ROOT/tests/fixtures" "$ROOT/../shared/fixtures")}
COMPARE=${COMPARE:-$ROOT/scripts/compare_solutions.py}
PEER_DIR=${PEER_DIR:-$(pick "$ROOT/../shared/peer-bench" /work/shared/peer-bench)}
STAMP=$(date -u +%Y-%m-%dT%H%MZ)
OUTDIR=${OUTDIR:-$ROOT/bench/results/gpu-$STAMP}
BENCH_REPS=${BENCH_REPS:-30}
BENCH_BUDGET_S=${BENCH_BUDGET_S:-5}
BUDGET_S=${BUDGET_S:-600}
START=$SECONDS
left() { echo $((BUDGET_S - (SECONDS - START))); }
mkdir -p "$OUTDIR"
exec > >(tee -a "$OUTDIR/gpu-checks.log") 2>&1
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
MPC="$TARGET/release/mpc"

SUMMARY=()
FAILED=0
step() { # step NAME CMD...: run, record PASS/FAIL, rewrite SUMMARY.md
  local name=$1; shift
  echo; echo "=== $name ($(left) s of the budget left)"
  local t0=$SECONDS
  if "$@"; then SUMMARY+=("| PASS | $name | $((SECONDS - t0)) s |")
  else local rc=$?; SUMMARY+=("| FAIL (exit $rc) | $name | $((SECONDS - t0)) s |"); FAILED=1; fi
  write_summary
}
skip() { echo; echo "=== $1: SKIPPED ($2)"; SUMMARY+=("| SKIP | $1: $2 | |"); write_summary; }
# timed NEED_S NAME CMD...: a step that needs about NEED_S seconds, skipped when less is left.
timed() {
  local need=$1 name=$2; shift 2
  if [ "$(left)" -lt "$need" ]; then skip "$name" "about ${need} s needed, $(left) s of BUDGET_S left"; else step "$name" "$@"; fi
}

# ------------------------------------------------------------------------------- summary
write_summary() {
{
  echo "# GPU checks, $STAMP"
  echo
  echo "Command: \`bash scripts/gpu-checks.sh\` at $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)'), host $(hostname)."
  echo
  [ -f "$OUTDIR/nvidia-smi.txt" ] && { echo '```'; cat "$OUTDIR/nvidia-smi.txt"; echo '```'; echo; }
  echo "| result | step | time |"
  echo "| --- | --- | --- |"
  printf '%s\n' "${SUMMARY[@]}"
  echo
  if [ -f "$OUTDIR/cuda-table2.json" ]; then
    python3 - "$OUTDIR/cuda-table2.json" "$OUTDIR/cpu-table2.json" "$OUTDIR/mpc-pytorch-cuda.json" "$OUTDIR/cuda-table2-three-stage.json" "$OUTDIR/cuda-table2-warp.json" <<'PY'
import json, os, sys
cuda = json.load(open(sys.argv[1]))
cpu = json.load(open(sys.argv[2])) if os.path.exists(sys.argv[2]) else None
peer = json.load(open(sys.argv[3])) if os.path.exists(sys.argv[3]) else None
staged = json.load(open(sys.argv[4])) if os.path.exists(sys.argv[4]) else None
warp = json.load(open(sys.argv[5])) if os.path.exists(sys.argv[5]) else None
def row(doc, B, T):
    return next((r for r in (doc or {}).get("rows", []) if r["B"] == B and r["T"] == T and "forward_ms" in r), None)
g = cuda.get("gpu") or {}
print(f"GPU {g.get('name')} (cc {g.get('compute_capability')}), driver {g.get('driver_version')} (CUDA {g.get('driver_cuda_version')}), NVRTC {g.get('nvrtc_version')}")
print()
print("| B | T | single-launch fwd ms (kernel) | three-stage fwd ms (kernel) | warp fwd ms (kernel) | bwd ms (kernel) | cpu fwd / bwd ms | mpc.pytorch cuda fwd / bwd ms | GPU vs CPU check |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for r in cuda["rows"]:
    B, T = r["B"], r["T"]
    c, p, s3, w = row(cpu, B, T), row(peer, B, T), row(staged, B, T), row(warp, B, T)
    k = lambda key: r[key]["median"] if r.get(key) else float("nan")
    chk = r.get("check_vs_cpu") or {}
    print(f"| {B} | {T} | {r['forward_ms']['median']:.3f} ({k('kernel_forward_ms'):.3f}) | "
          + (f"{s3['forward_ms']['median']:.3f} ({s3['kernel_forward_ms']['median']:.3f})" if s3 else "–") + " | "
          + (f"{w['forward_ms']['median']:.3f} ({w['kernel_forward_ms']['median']:.3f})" if w else "–")
          + f" | {r['backward_ms']['median']:.3f} ({k('kernel_backward_ms'):.3f}) | "
          + (f"{c['forward_ms']['median']:.3f} / {c['backward_ms']['median']:.3f}" if c else "–") + " | "
          + (f"{p['forward_ms']['median']:.2f} / {p['backward_ms']['median']:.2f}" if p else "–") + " | "
          + (", ".join(f"{kk} {vv:.1e}" for kk, vv in chk.items()) if chk else "–") + " |")
print()
t = [("B=1 T=10 forward", row(cuda, 1, 10), "forward_ms", 0.1), ("B=256 T=50 forward", row(cuda, 256, 50), "forward_ms", 1.0),
     ("B=256 T=50 backward", row(cuda, 256, 50), "backward_ms", 0.5)]
for name, r, key, target in t:
    if r:
        v = r[key]["median"]
        print(f"- {name}: {v:.3f} ms end to end (target <= {target} ms: {'met' if v <= target else 'NOT met'}), kernel {r['kernel_' + key]['median']:.3f} ms")
# Which forward layout is fastest per (B, T): the data that should set KernelLayout::auto.
lay = {"single-launch": cuda, "three-stage": staged, "warp": warp}
best = []
for r in cuda["rows"]:
    cand = [(row(d, r["B"], r["T"])["kernel_forward_ms"]["median"], n) for n, d in lay.items() if d and row(d, r["B"], r["T"]) and row(d, r["B"], r["T"]).get("kernel_forward_ms")]
    if cand:
        best.append(f"B={r['B']} T={r['T']}: {min(cand)[1]}")
if best:
    print("- fastest forward layout (kernel time): " + "; ".join(best))
big = sorted((r["B"], r["kernel_forward_ms"]["median"]) for r in cuda["rows"] if r["T"] == 50 and r.get("kernel_forward_ms"))
if len(big) > 1:
    print("- throughput T=50 (problems per ms of forward kernel): " + ", ".join(f"B={b}: {b / ms:.1f}" for b, ms in big))
PY
  fi
} > "$OUTDIR/SUMMARY.md.tmp" && mv "$OUTDIR/SUMMARY.md.tmp" "$OUTDIR/SUMMARY.md"
}

# ---------------------------------------------------------------------------- 1. the machine
gpu_info() {
  nvidia-smi -L && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv | tee "$OUTDIR/nvidia-smi.txt"
}
if command -v nvidia-smi >/dev/null; then step "GPU and driver (nvidia-smi)" gpu_info
else skip "GPU and driver (nvidia-smi)" "nvidia-smi not installed; the Rust tests probe the driver themselves"; fi
# A machine without cargo (the lent device machine): unpack what scripts/gpu-pack.sh built here.
CARRY=$ROOT/.gpu-carry
PREBUILT=
if ! command -v cargo >/dev/null && [ -d "$CARRY/bin" ]; then
  PREBUILT=1
  unxz() { if command -v xz >/dev/null; then xz -dc "$1" > "$2"
           else python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; fi; }
  unpack() {
    mkdir -p "$TARGET/release" "$WORK/nvrtc" "$WORK/bin"
    for f in "$CARRY"/bin/*.xz; do unxz "$f" "$WORK/bin/$(basename "$f" .xz)"; done
    chmod +x "$WORK"/bin/* && mv "$WORK/bin/mpc" "$TARGET/release/mpc"
    for f in "$CARRY"/nvrtc/*.xz; do unxz "$f" "$WORK/nvrtc/$(basename "$f" .xz)"; done
    export MPC_NVRTC_PATH=$WORK/nvrtc/libnvrtc.so.12
    # The test binaries find tests/fixtures and the `mpc` binary under the path they were built in.
    local built; built=$(cat "$CARRY/built-in")
    if [ "$built" != "$ROOT" ] && [ ! -e "$built" ]; then mkdir -p "$(dirname "$built")" && ln -s "$ROOT" "$built"; fi
    echo "unpacked the binaries of commit $(cat "$CARRY/commit") (built in $built)"
  }
  step "unpack the prebuilt binaries (.gpu-carry from scripts/gpu-pack.sh)" unpack
  [ -d "$CARRY/peer-bench" ] && { PEER_DIR=$CARRY/peer-bench; PEER_WHEEL=${PEER_WHEEL:-$(ls "$CARRY"/peer-bench/mpc-0.0.6-*.whl 2>/dev/null | head -1)}; }
fi
nvrtc_check() {
  [ -n "${MPC_NVRTC_PATH:-}" ] && { ls -la "$MPC_NVRTC_PATH"; return; }
  ls "$ROOT"/.venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12 2>/dev/null \
    || ls "${CUDA_PATH:-/usr/local/cuda}"/lib64/libnvrtc.so.12 2>/dev/null \
    || { echo "NVRTC not found: trying scripts/setup.sh"; bash scripts/setup.sh >/dev/null; }
}
step "NVRTC present" nvrtc_check

# ------------------------------------------------------------------------------- 2. builds
build() {
  if [ -n "$PREBUILT" ]; then echo "prebuilt: nothing to build"; return; fi
  cargo test --release --no-run --test backends --test cuda_gpu_fixtures --test cuda_bench_cli --test solve_backend && cargo build --release --bin mpc; }
step "release build" build
[ -x "$MPC" ] || { echo "no binary at $MPC: stopping"; printf '%s\n' "${SUMMARY[@]}"; exit 1; }

# ------------------------------------------------------------------------ 3. Rust GPU tests
gpu_tests() {
  local rc=0
  if [ -n "$PREBUILT" ]; then
    # The four binaries side by side (NVRTC compiles on the CPU cores), each test serially.
    local pids=()
    for t in backends cuda_gpu_fixtures solve_backend cuda_bench_cli; do
      ( "$WORK/bin/$t" --nocapture --test-threads 1 > "$WORK/tests-$t.log" 2>&1; echo "exit $? $t" >> "$WORK/tests-$t.log" ) &
      pids+=($!)
    done
    wait "${pids[@]}"  # not a bare `wait`: that would also wait for the log's `tee`
    for t in backends cuda_gpu_fixtures solve_backend cuda_bench_cli; do
      echo "--- $t"; cat "$WORK/tests-$t.log"; grep -q "^exit 0 $t" "$WORK/tests-$t.log" || rc=1
    done > "$WORK/tests.log" 2>&1
    cat "$WORK/tests.log"
  else
    cargo test --release --test backends --test cuda_gpu_fixtures --test solve_backend --test cuda_bench_cli -- --nocapture --test-threads 1 \
      2>&1 | tee "$WORK/tests.log"
    rc=${PIPESTATUS[0]}
  fi
  # On a GPU machine the tests must have run, not skipped.
  if grep -q "SKIPPED: no CUDA driver" "$WORK/tests.log"; then echo "the GPU tests skipped: no driver seen"; return 1; fi
  return "$rc"
}
timed 120 "correctness: every backend vs the CPU, every layout and gradient mode, --fmad=false parity (cargo test --release)" gpu_tests

# ------------------------------------------------------------------------- 4.-6. mpc solve
auto_probe() {
  local first; first=$(ls "$FIXTURES"/pendulum*.problem.json | head -1)
  "$MPC" solve --backend auto --problem "$first" --out "$WORK/auto.json" 2>"$WORK/auto.err"; cat "$WORK/auto.err"
  grep -q '"backend":"cuda"' "$WORK/auto.json" || { echo "--backend auto did not choose cuda"; return 1; }
}
step "mpc solve --backend auto chooses cuda" auto_probe

mkdir -p "$WORK/fx"
for p in "$FIXTURES"/*.problem.json; do
  n=$(basename "$p" .problem.json)
  case "$n" in linear*) continue ;; esac
  cp "$p" "$WORK/fx/"; cp "$FIXTURES/$n.solution.json" "$WORK/fx/"
done
step "mpc solve --backend cuda vs the reference fixtures (compare_solutions.py)" \
  python3 "$COMPARE" "$WORK/fx" -- "$MPC" solve --backend cuda --problem {problem} --out {out}

cuda_vs_cpu() {
  local ok=0
  for p in "$WORK"/fx/*.problem.json; do
    n=$(basename "$p" .problem.json)
    "$MPC" solve --backend cuda --problem "$p" --out "$WORK/$n.cuda.json" || { ok=1; continue; }
    "$MPC" solve --backend cpu --problem "$p" --out "$WORK/$n.cpu.json" || { ok=1; continue; }
    python3 - "$WORK/$n.cuda.json" "$WORK/$n.cpu.json" "$n" <<'PY' || ok=1
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
def flat(v): return [y for x in v for y in flat(x)] if isinstance(v, list) else [v]
keys = [k for k in ("x", "u", "cost", "grad_C", "grad_c", "grad_x_init") if k in b]
d = {k: max((abs(x - y) for x, y in zip(flat(a[k]), flat(b[k]))), default=0.0) for k in keys}
assert a["backend"] == "cuda" and b["backend"] == "cpu", (a["backend"], b["backend"])
print(f"{sys.argv[3]}: " + ", ".join(f"{k} {v:.2e}" for k, v in d.items()) + f"; iterations cuda {a['iterations']} cpu {b['iterations']}")
sys.exit(0 if all(v <= 1e-6 * max(1.0, max(abs(x) for x in flat(b[k]))) for k, v in d.items()) else 1)
PY
  done
  return $ok
}
step "mpc solve: --backend cuda vs --backend cpu (x, u, cost, gradients)" cuda_vs_cpu

# The Python package's backend="cuda" (python/bind: the same CudaSolver behind mpc_rs.Solver),
# when a .venv with the built wheel was carried here (the device machine cannot reach PyPI;
# `bash scripts/python.sh --no-test` makes one).
python_cuda() {
  # From a scratch folder, so that `import mpc_rs` is the installed wheel, not python/mpc_rs.
  (cd "$WORK" && MPC_BIN="$MPC" "$PY_RUN" -m pytest -q -p no:cacheprovider "$ROOT/python/tests/test_solver.py" -k "cuda" -rs) 2>&1 | tee "$WORK/python-cuda.log"
  local rc=${PIPESTATUS[0]}
  if grep -q "SKIPPED.*no GPU" "$WORK/python-cuda.log"; then echo "the Python GPU test skipped: no GPU seen"; return 1; fi
  return "$rc"
}
PY_RUN="$ROOT/.venv/bin/python"
if ! "$PY_RUN" -c "import mpc_rs, pytest" 2>/dev/null && [ -n "$PREBUILT" ] && [ -d "$CARRY/python" ]; then
  # The carried wheel and pytest into a scratch site (no network on the device machine).
  # mpc_rs without its dependency numpy: the device image's own numpy serves.
  python3 -m pip install -q --no-index --find-links "$CARRY/python" --target "$WORK/py" --no-deps mpc_rs \
    && python3 -m pip install -q --no-index --find-links "$CARRY/python" --target "$WORK/py" pytest \
    && export PYTHONPATH="$WORK/py:${PYTHONPATH:-}" && PY_RUN=python3
fi
if "$PY_RUN" -c "import mpc_rs, pytest, numpy" 2>/dev/null; then
  step "Python mpc_rs.Solver(backend=\"cuda\") vs the CPU solver (solutions, gradients, parameters)" python_cuda
else skip "Python mpc_rs.Solver(backend=\"cuda\")" "no Python with mpc_rs, pytest and numpy (bash scripts/python.sh --no-test, or gpu-pack.sh's .gpu-carry/python)"; fi

if [ -n "${QUICK:-}" ]; then
  skip "benchmarks and profiles" "QUICK is set"
else
# ------------------------------------------------------------------------- 7.-8. mpc bench
  bench_cuda() { # bench_cuda SUFFIX ARGS...: the Table II grid (or ARGS' grid) into cuda-table2SUFFIX.*
    local suffix=$1; shift
    "$MPC" bench --backend cuda "$@" --reps "$BENCH_REPS" --budget-s "$BENCH_BUDGET_S" --quiet \
      --json "$OUTDIR/cuda-table2$suffix.json" | tee "$OUTDIR/cuda-table2$suffix.md"
  }
  timed 60 "mpc bench --backend cuda, Table II grid, single-launch layout" bench_cuda "" --layout single-launch
  timed 60 "mpc bench --backend cuda, Table II grid, three-stage layout" bench_cuda -three-stage --layout three-stage
  timed 60 "mpc bench --backend cuda, Table II grid, warp-per-problem layout" bench_cuda -warp --layout warp
  # One warm-up: at B = 65536, T = 50 every solve uploads 5 GB of cost Hessians (it did not
  # finish in 120 s with the default five on the H200 machine, 2026-12-04).
  timed 150 "mpc bench --backend cuda, B = 4096, 65536 (automatic layout)" bench_cuda -large --batch 4096,65536 --warmup 1
  bench_cpu() {
    "$MPC" bench --backend cpu --threads "$(nproc)" --reps "$BENCH_REPS" --budget-s "$BENCH_BUDGET_S" --quiet \
      --json "$OUTDIR/cpu-table2.json" | tee "$OUTDIR/cpu-table2.md"
  }
  timed 60 "mpc bench --backend cpu on this machine ($(nproc) threads)" bench_cpu

# ------------------------------------------------------------------- 9. mpc.pytorch on GPU
  PEER_PY=python3
  if [ -n "${PEER_WHEEL:-}" ]; then
    python3 -m pip install -q --no-deps --target "$WORK/peer-site" "$PEER_WHEEL" && export PYTHONPATH="$WORK/peer-site:${PYTHONPATH:-}"
  fi
  if $PEER_PY -c "import torch, mpc, numpy; assert torch.cuda.is_available()" 2>/dev/null && [ -f "$PEER_DIR/peer_common.py" ]; then
    peer_gpu() {
      PEER_DIR="$PEER_DIR" OUT="$OUTDIR/mpc-pytorch-cuda.json" BUDGET="$BENCH_BUDGET_S" $PEER_PY - <<'PY'
# mpc.pytorch 0.0.6 on the GPU, the protocol of shared/peer-bench/bench_mpc_pytorch.py (fixed
# K = 5 iLQR iterations, eps = 0, line search 0.2^i for i < 5, exact analytic Jacobian, loss
# sum(w_x x) + sum(w_u u) backward to C, c, x_init) with every tensor on cuda and
# torch.cuda.synchronize() around each timed phase.
import json, os, platform, statistics, sys, time
sys.path.insert(0, os.environ["PEER_DIR"])
import peer_common as pc
pc.setup_torch(2)
import numpy as np
import torch
from mpc import mpc as mpc_mod
from mpc.mpc import QuadCost, GradMethods
dev = torch.device("cuda")
torch.set_default_device(dev)
nx, nu = 10, 4
dx = pc.QuadrotorDx(jacobian="exact")
common = dict(grad_method=GradMethods.ANALYTIC, linesearch_decay=0.2, max_linesearch_iter=5,
              verbose=-1, exit_unconverged=False, detach_unconverged=False)
rows = []
budget = float(os.environ.get("BUDGET", "20"))
for B in (1, 256, 4096):
    for T in (2, 10, 50):
        x0, C0, c0, u_init = (t.to(dev) for t in pc.quad_hover_problem(B, T, 0))
        lo, hi = (t.to(dev) for t in pc.quad_bounds(T, B))
        rs = np.random.RandomState(1)
        w_x = torch.from_numpy(rs.randn(T, B, nx)).to(dev)
        w_u = torch.from_numpy(rs.randn(T, B, nu)).to(dev)
        def one():
            C = C0.clone().requires_grad_(True); c = c0.clone().requires_grad_(True)
            x_init = x0.clone().requires_grad_(True)
            solver = mpc_mod.MPC(nx, nu, T, u_lower=lo, u_upper=hi, u_init=u_init.clone(), lqr_iter=5, eps=0.0, **common)
            torch.cuda.synchronize(); t0 = time.perf_counter()
            x, u, _ = solver(x_init, QuadCost(C, c), dx)
            torch.cuda.synchronize(); t1 = time.perf_counter()
            ((w_x * x).sum() + (w_u * u).sum()).backward()
            torch.cuda.synchronize(); t2 = time.perf_counter()
            return t1 - t0, t2 - t1
        try:
            one()
        except Exception as e:  # report, keep going
            rows.append({"B": B, "T": T, "error": repr(e)}); print(f"B={B} T={T}: {e!r}", flush=True); continue
        fwd, bwd = [], []
        start = time.perf_counter()
        while len(fwd) < 30 and (len(fwd) < 3 or time.perf_counter() - start < budget):
            f, b = one(); fwd.append(f); bwd.append(b)
        med = lambda v: 1e3 * statistics.median(v)
        rows.append({"B": B, "T": T, "reps": len(fwd), "forward_ms": {"median": med(fwd), "min": 1e3 * min(fwd)},
                     "backward_ms": {"median": med(bwd), "min": 1e3 * min(bwd)}})
        print(f"B={B} T={T}: fwd {med(fwd):.2f} ms, bwd {med(bwd):.2f} ms ({len(fwd)} reps)", flush=True)
import mpc
doc = {"benchmark": "mpc.pytorch 0.0.6 on CUDA, CA-AC-MPC quadrotor hover (shared/peer-bench protocol)",
       "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
       "mpc_file": mpc.__file__, "python": platform.python_version(),
       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
json.dump(doc, open(os.environ["OUT"], "w"), indent=1)
print("written", os.environ["OUT"])
PY
    }
    timed 120 "mpc.pytorch on the same GPU" peer_gpu
  else
    skip "mpc.pytorch on the same GPU" "python3 cannot import torch (with CUDA) and mpc, or $PEER_DIR/peer_common.py is missing (pip install mpc==0.0.6, or PEER_WHEEL=path/to/mpc-0.0.6-py3-none-any.whl)"
  fi

# ------------------------------------------------------------------------------ 10. profiles
  PROFILE_ARGS=(bench --backend cuda --batch 256 --horizon 50 --reps 3 --warmup 1 --rounds 1 --quiet)
  if command -v nsys >/dev/null; then
    timed 60 "nsys profile (B = 256, T = 50)" nsys profile --force-overwrite true -o "$OUTDIR/nsys-B256-T50" --stats=true "$MPC" "${PROFILE_ARGS[@]}"
  else skip "nsys profile" "nsys not installed"; fi
  if command -v ncu >/dev/null; then
    ncu_solve() {
      ncu --set full --kernel-name regex:mpc_ilqr_solve --launch-skip 1 --launch-count 1 -f -o "$OUTDIR/ncu-solve-B256-T50" "$MPC" "${PROFILE_ARGS[@]}" \
        && ncu --import "$OUTDIR/ncu-solve-B256-T50.ncu-rep" --page details > "$OUTDIR/ncu-solve-B256-T50.txt"
    }
    ncu_backward() {
      ncu --set full --kernel-name regex:mpc_ilqr_backward --launch-skip 1 --launch-count 1 -f -o "$OUTDIR/ncu-backward-B256-T50" "$MPC" "${PROFILE_ARGS[@]}" \
        && ncu --import "$OUTDIR/ncu-backward-B256-T50.ncu-rep" --page details > "$OUTDIR/ncu-backward-B256-T50.txt"
    }
    timed 90 "ncu profile of the solve kernel (B = 256, T = 50)" ncu_solve
    timed 90 "ncu profile of the backward kernel (B = 256, T = 50)" ncu_backward
  else skip "ncu profiles" "ncu not installed"; fi
fi

write_summary
echo; cat "$OUTDIR/SUMMARY.md"
echo; echo "results in $OUTDIR"
if [ "$FAILED" = 0 ]; then echo "ALL GPU CHECKS PASSED"; else echo "SOME GPU CHECKS FAILED"; exit 1; fi
