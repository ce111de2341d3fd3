#!/usr/bin/env bash
# Packs what scripts/gpu-checks.sh needs on a GPU machine that has no Rust toolchain and no
# network (the lent device machine): the release `mpc` binary and the GPU test binaries, built
# HERE, stripped and xz-compressed, NVRTC 12 (the device image has CUDA 13 only), the
# mpc.pytorch 0.0.6 wheel and the peer benchmark's helpers, all into .gpu-carry/ (git-ignored,
# ~49 MB). On the GPU machine, `bash scripts/gpu-checks.sh` finds .gpu-carry/ when `cargo` is
# missing and unpacks it instead of building.
#
#     bash scripts/gpu-pack.sh        # then carry .gpu-carry to the machine
#
# The device tool sends the tracked tree too, and results/ alone is ~57 MB: to stay under its
# 64 MiB, untrack results/ for the call (`git rm -r -q --cached results && echo /results/ >>
# .git/info/exclude`) and restore it afterwards (`git reset -q -- results`, drop that line).
#
# Env: NVRTC_DIR (a directory holding libnvrtc.so.12 and libnvrtc-builtins.so.12.*; default:
# the project's .venv from scripts/setup.sh), PEER_DIR (default ../shared/peer-bench),
# NO_PYTHON=1 (leave out the mpc_rs wheel and pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.gpu-carry
TESTS=(backends cuda_gpu_fixtures cuda_bench_cli solve_backend)
rm -rf "$OUT" && mkdir -p "$OUT/bin" "$OUT/nvrtc"
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.gpu-carry/' >> .git/info/exclude; }

args=(); for t in "${TESTS[@]}"; do args+=(--test "$t"); done
cargo build --release --bin mpc
log=$(cargo test --release --no-run "${args[@]}" 2>&1 | tee /dev/stderr)
strip -o "$OUT/bin/mpc" target/release/mpc
for t in "${TESTS[@]}"; do
  exe=$(sed -n "s|.*Executable tests/$t.rs (\(.*\))|\1|p" <<<"$log" | tail -1)
  [ -n "$exe" ] || { echo "no executable for tests/$t.rs in cargo's output" >&2; exit 1; }
  strip -o "$OUT/bin/$t" "$exe"
done
xz -T0 -6 "$OUT"/bin/*

NVRTC_DIR=${NVRTC_DIR:-$(ls -d "$ROOT"/.venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib 2>/dev/null | head -1)}
[ -f "${NVRTC_DIR:-}/libnvrtc.so.12" ] || { echo "libnvrtc.so.12 not found (bash scripts/setup.sh, or set NVRTC_DIR)" >&2; exit 1; }
cp "$NVRTC_DIR/libnvrtc.so.12" "$NVRTC_DIR"/libnvrtc-builtins.so.12.* "$OUT/nvrtc/"
xz -T0 -6 "$OUT"/nvrtc/*

PEER_DIR=${PEER_DIR:-$ROOT/../shared/peer-bench}
if [ -f "$PEER_DIR/peer_common.py" ]; then
  mkdir -p "$OUT/peer-bench" && cp "$PEER_DIR"/*.py "$OUT/peer-bench/"
  python3 -m pip wheel -q --no-deps -w "$OUT/peer-bench" mpc==0.0.6 \
    || echo "mpc 0.0.6 wheel not downloaded: the GPU peer benchmark will be skipped" >&2
fi
# The Python package (an abi3 wheel, any CPython >= 3.9) and pytest with its dependencies for
# CPython 3.12 (the device image's), so that gpu-checks.sh runs Solver(backend="cuda") there.
if [ -z "${NO_PYTHON:-}" ]; then
  mkdir -p "$OUT/python"
  bash scripts/python.sh --no-test
  "$ROOT/.venv/bin/maturin" build --release --quiet --manifest-path python/Cargo.toml --out "$OUT/python" >&2
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp -d "$OUT/python" "pytest>=7" \
    || echo "pytest not downloaded: the GPU Python check will be skipped" >&2
fi
# The test binaries read tests/fixtures through the source path they were built in.
echo "$ROOT" > "$OUT/built-in"
git rev-parse --short HEAD > "$OUT/commit"
du -sh "$OUT"; ls -la "$OUT"/*
