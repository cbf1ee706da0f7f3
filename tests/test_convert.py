"""tools/convert.py: a small bf16 checkpoint -> fp8 / GGUF, loaded back through the real loader."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from openltx.host import model_loading as loading

from quant_fixtures import rel, run, write_small_checkpoint

# relative output error vs the bf16 model that each format must stay under (measured values
# are printed; see the report in the PR)
BOUNDS = {"fp8": 0.08, "Q8_0": 0.01, "Q6_K": 0.04, "Q5_K": 0.08, "Q5_0": 0.08, "Q4_K": 0.15, "Q4_0": 0.15, "BF16": 1e-6}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("convert")
    path = d / "small.safetensors"
    write_small_checkpoint(path, seed=1)
    return d, path, run(loading.load_ltx2_model(str(path)))


@pytest.mark.parametrize("fmt", list(BOUNDS))
def test_convert_and_load_back(small, repo_root, fmt):
    d, path, ref = small
    out = d / (f"small-{fmt}.safetensors" if fmt == "fp8" else f"small-{fmt}.gguf")
    args = ["--to", "fp8"] if fmt == "fp8" else ["--to", "gguf", "--qtype", fmt]
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "convert.py"), str(path), *args, "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["size"] > 0
    patcher = loading.load_ltx2_model(str(out))
    err = rel(run(patcher), ref)
    print(f"convert {fmt}: {summary['size']} bytes (bf16 {summary['src_size']}), relative output error vs bf16 {err:.2e}")
    assert err < BOUNDS[fmt]
