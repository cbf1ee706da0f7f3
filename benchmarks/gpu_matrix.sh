#!/usr/bin/env bash
# The one command to run on an H100 / H200: installs the carried wheels, then runs the whole
# benchmark matrix (benchmarks/gpu_matrix.py) and writes JSON into $OUT (or the first argument).
# What to carry and the exact device command: benchmarks/README.md.
set -u
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-benchmarks/results/gpu_matrix}}
shift || true
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/openltx_site .whl/*.whl \
        || { echo "installing the carried wheels failed" >&2; exit 1; }
    export PYTHONPATH=/tmp/openltx_site${PYTHONPATH:+:$PYTHONPATH}
fi
COMFY_ARGS=()
if [ -d .peers/ComfyUI/comfy ]; then COMFY_ARGS=(--comfyui "$PWD/.peers/ComfyUI"); fi
exec $PY benchmarks/gpu_matrix.py --out "$OUT_DIR" "${COMFY_ARGS[@]}" "$@"
