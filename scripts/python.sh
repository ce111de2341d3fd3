#!/usr/bin/env bash
# The Python package (python/, import name `mpc_rs`): builds it as an abi3 wheel with maturin,
# installs it into the project's virtual environment (.venv, made by scripts/setup.sh) and runs
# its tests with pytest. Everything comes from PyPI (maturin, numpy, pytest) and crates.io.
#
#   bash scripts/python.sh            # build, install, test
#   bash scripts/python.sh --no-test  # build and install only
#
# The tests compare the bindings with the `mpc` binary of this checkout (built here if needed).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
venv="${MPC_VENV:-$repo/.venv}"
py="$venv/bin/python"
"$py" -m pip install --quiet --disable-pip-version-check --no-input --prefer-binary \
    "maturin>=1.5,<2" "numpy>=1.21" "pytest>=7" "gymnasium>=1.1"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
# mpc_rs, and the example of a user's crate that exports its own model (python/examples/ballbeam).
for manifest in python/Cargo.toml python/examples/ballbeam/Cargo.toml; do
    "$venv/bin/maturin" build --release --quiet --manifest-path "$manifest" --out "$wheels" >&2
done
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/*.whl
echo "python: installed $(cd "$wheels" && echo *.whl) into $venv" >&2
if [[ "${1:-}" == "--no-test" ]]; then
    exit 0
fi
# The user's crate also builds the way users build first: cargo's dev profile, full debug info.
cargo build --quiet --manifest-path python/examples/ballbeam/Cargo.toml
cargo build --quiet --bin mpc
# From a folder outside the source tree, so that `import mpc_rs` is the installed wheel.
cd "$wheels"
MPC_BIN="$repo/target/debug/mpc" "$py" -m pytest -q "$repo/python/tests"
