#!/usr/bin/env bash
# Prepare, on a machine WITH package-registry access, what benchmarks/gpu_matrix.sh needs on the
# GPU machine (which has no network): wheels in .whl/ and a current ComfyUI tree in .peers/ComfyUI.
# Both folders are git-ignored through .git/info/exclude; carry them with the device call.
#   bash benchmarks/gpu_carry.sh [PATH_TO_CURRENT_COMFYUI_GIT_DIR_OR_TREE]
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
grep -qx '/.peers/' .git/info/exclude 2>/dev/null || echo '/.peers/' >> "$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p .whl
# Python 3.12 / x86-64 wheels for the device image (torch 2.11 + CUDA, triton, transformers 5,
# huggingface_hub 1.x, einops, safetensors are already there).
$PY -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -q -d .whl \
    ltx-core==1.0.0 diffusers==0.42.1 importlib_metadata==10.2.0 gguf==0.19.0 sageattention==1.0.6 comfy-aimdo==0.6.0
SRC=${1:-}
if [ -n "$SRC" ]; then
    rm -rf .peers/ComfyUI && mkdir -p .peers/ComfyUI
    if [ -d "$SRC/objects" ] || [ -f "$SRC/HEAD" ]; then  # a bare git dir (e.g. the fetch tool's mirror)
        for f in $(git --git-dir="$SRC" ls-tree -r --name-only HEAD comfy comfy_api comfy_execution comfy_config | grep '\.py$') \
                 comfyui_version.py folder_paths.py; do
            mkdir -p ".peers/ComfyUI/$(dirname "$f")"
            git --git-dir="$SRC" show "HEAD:$f" > ".peers/ComfyUI/$f"
        done
    else  # a checked-out tree: its Python sources only
        (cd "$SRC" && find comfy comfy_api comfy_execution comfy_config -name '*.py' -print0 2>/dev/null; \
         printf '%s\0' comfyui_version.py folder_paths.py) | (cd "$SRC" && xargs -0 tar -cf - ) | tar -xf - -C .peers/ComfyUI
    fi
fi
du -sh .whl .peers 2>/dev/null || true
