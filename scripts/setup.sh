#!/usr/bin/env bash
# Installs the CUDA compiler pieces the project needs without a GPU or a CUDA toolkit:
# NVRTC (libnvrtc.so.12) and ptxas, both from NVIDIA's PyPI wheels, into a Python virtual
# environment at <repo>/.venv. Idempotent and fast when already done (no network then).
#
# Where things land (Python 3.x venv):
#   .venv/lib/python3.*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12
#   .venv/lib/python3.*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc-builtins.so.12.9
#   .venv/lib/python3.*/site-packages/nvidia/cuda_nvcc/bin/ptxas
# mpc-cuda (`mpc_cuda`) finds them there by itself; no environment variable needed.
#
# Environment: PYTHON (interpreter used to create the venv, default python3),
#              MPC_VENV (venv location, default <repo>/.venv).
set -euo pipefail
# Progress messages go to stderr, so `setup.sh && mpc solve > out.json` leaves clean JSON.
exec 1>&2

# Pinned versions: 12.9 matches cudarc's `cuda-12090` bindings.
NVRTC_PKG="nvidia-cuda-nvrtc-cu12==12.9.86"
NVCC_PKG="nvidia-cuda-nvcc-cu12==12.9.86"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MPC_VENV:-$repo/.venv}"
py="${PYTHON:-python3}"
stamp="$venv/.mpc-setup-stamp"
want="$NVRTC_PKG $NVCC_PKG"

have_all() {
    [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] || return 1
    compgen -G "$venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" >/dev/null || return 1
    compgen -G "$venv/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/ptxas" >/dev/null || return 1
}

if have_all; then
    echo "setup: CUDA compiler wheels already installed in $venv"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup: creating virtual environment $venv"
    if ! "$py" -m venv "$venv"; then
        # Debian/Ubuntu system Pythons ship venv separately.
        if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
            echo "setup: python3 -m venv failed; installing python3-venv"
            rm -rf "$venv"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            "$py" -m venv "$venv"
        else
            echo "setup: ERROR: '$py -m venv' failed; install python3-venv" >&2
            exit 1
        fi
    fi
fi

echo "setup: installing $want into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --prefer-binary --only-binary=:all: $NVRTC_PKG $NVCC_PKG

lib="$(compgen -G "$venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" | head -n1 || true)"
ptxas="$(compgen -G "$venv/lib/python3*/site-packages/nvidia/cuda_nvcc/bin/ptxas" | head -n1 || true)"
if [[ -z "$lib" || -z "$ptxas" ]]; then
    echo "setup: ERROR: wheels installed but libnvrtc.so.12 or ptxas not found under $venv" >&2
    exit 1
fi
chmod +x "$ptxas" 2>/dev/null || true
echo "$want" >"$stamp"
echo "setup: libnvrtc: $lib"
echo "setup: ptxas:    $ptxas"
