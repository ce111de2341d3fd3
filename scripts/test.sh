#!/usr/bin/env bash
# The project's test command (what README and .ci/run use): installs the CUDA compiler wheels if
# needed (scripts/setup.sh), then runs every test of the workspace and of the Python package
# (scripts/python.sh).
#
# Debug profile on purpose: from a clean clone on 2 cores compiling is the bulk of the time, the
# dev profile already optimises dependencies (opt-level 1, see Cargo.toml), and trybuild's UI
# tests build their own crates in the dev profile, so a release run would compile everything twice.
#
# Extra arguments go to `cargo test` alone (no Python tests), e.g.
# `scripts/test.sh --test nvrtc_models -- --nocapture`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
if [[ $# -gt 0 ]]; then
    exec cargo test "$@"
fi
cargo test --workspace
# The Python package: wheel built with maturin, installed into .venv, pytest.
bash scripts/python.sh
