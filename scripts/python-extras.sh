#!/usr/bin/env bash
# The Python package's heavy integrations: installs torch, Stable-Baselines3, Gymnasium and Ray
# Tune from PyPI into a virtual environment of their own (.venv-torch: torch's PyPI wheels bring
# ~4.3 GB of CUDA libraries, which the main .venv is spared), installs the mpc_rs and ballbeam
# wheels there and runs the tests that need them: the torch layer's gradcheck (also through
# per-problem parameters of a user's model), the Stable-Baselines3 example's short seeded
# training, and the Ray Tune sweep of the trainer on a local Ray instance.
#
#   bash scripts/python-extras.sh        # CI runs this after scripts/test.sh
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
tvenv="${MPC_TORCH_VENV:-$repo/.venv-torch}"
if [[ ! -x "$tvenv/bin/python" ]]; then
    python3 -m venv "$tvenv"
fi
start=$SECONDS
"$tvenv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --prefer-binary \
    "torch==2.15.0" "stable-baselines3==2.9.2" "gymnasium==1.4.0" "ray[tune]==2.60.0" "numpy>=1.21" "pytest>=7"
echo "python-extras: torch $("$tvenv/bin/python" -c 'import torch; print(torch.__version__)') in $tvenv ($((SECONDS - start)) s)" >&2
# The mpc_rs and ballbeam wheels, built and installed there by the same script as for .venv.
MPC_VENV="$tvenv" bash scripts/python.sh --no-test
cargo build --quiet --bin mpc
# From a folder outside the source tree, so that `import mpc_rs` is the installed wheel.
cd "$(mktemp -d)"
MPC_BIN="$repo/target/debug/mpc" "$tvenv/bin/python" -m pytest -q "$repo/python/tests/test_torch.py" \
    "$repo/python/tests/test_sb3.py" "$repo/python/tests/test_sweep.py"
