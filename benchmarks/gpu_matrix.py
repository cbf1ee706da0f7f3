"""The whole GPU benchmark matrix in one run (H100 / H200): ours vs every peer, every format,
with and without compile, every attention kernel.  Writes JSON into an output folder.

    python benchmarks/gpu_matrix.py --out "$OUT" [--comfyui .peers/ComfyUI] [--parts ...] [--budget-s 540]

(``benchmarks/gpu_matrix.sh`` installs the carried wheels first and calls this; see
``benchmarks/README.md`` for what to carry.)  Each part is one benchmark script run as a
subprocess with its own timeout; its one JSON line is stored, a failure is stored as such and
the matrix goes on.  Parts run in the order below until ``--budget-s`` would be exceeded
(estimated seconds per part on an H200 in brackets):

transformer    19B, 768x512x121, bf16: ours vs ltx-core / diffusers / ComfyUI core; every
               attention kernel; fp8, fp8_upcast, int8, int8_upcast, Q8_0, Q4_K; top kernels
               of each variant                                                           [~200]
gguf_cache     19B Q8_0 / Q4_K with an 80 GB dequantized-weight cache                    [~60]
batch4         19B with the four guidance passes batched (batch 4), bf16 and fp8          [~60]
vae            video decode 768x512x121, untiled and tiled, ours vs ltx-core              [~40]
compile        19B compiled: bf16, fp8, int8 (the first call is the compile warm-up)      [~240]
hd             19B at 1536x1024x121 (24,576 tokens, stage 2): attention kernels          [~120]
offload        19B fp8 streamed within 8 GB vs resident                                  [~120]
pipeline       the distilled two-stage pipeline, stage by stage                          [~120]

A device command runs at most 10 minutes: the default budget (540 s) covers the first four
parts; run ``--parts compile,hd`` and ``--parts offload,pipeline`` in further calls.

Files in the output folder (at most 8, flat): ``matrix.jsonl`` (one line per part: part,
command, return code, seconds, the benchmark's JSON), ``stderr.log`` (the tail of each part's
stderr), ``env.json`` (GPU, driver, packages).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
B = "benchmarks/"
ATTENTION = "auto,sdpa,sdpa_cudnn,sdpa_flash,sdpa_efficient,sage"
FORMATS = "none,fp8,fp8_upcast,int8,int8_upcast,Q8_0,Q4_K"
COMMON = ["--device", "cuda", "--dtype", "bf16"]


def parts(comfyui: str | None) -> list[tuple[str, list[str], int, int]]:
    """(name, argv, timeout s, estimate s) of each part, in run order."""
    peers = "ltx-core,diffusers,comfyui" if comfyui else "ltx-core,diffusers"
    comfy = ["--comfyui", comfyui] if comfyui else []
    return [
        ("transformer", [B + "transformer.py", "--preset", "19b", *COMMON, "--peers", peers, *comfy,
                         "--attention", ATTENTION, "--quant", FORMATS, "--profile", "--iters", "5"], 540, 200),
        ("gguf_cache", [B + "transformer.py", "--preset", "19b", *COMMON, "--peers", "none", "--quant", "Q8_0,Q4_K",
                        "--gguf-cache-gb", "80", "--no-flops"], 300, 60),
        ("batch4", [B + "transformer.py", "--preset", "19b", *COMMON, "--batch", "4", "--peers", "ltx-core",
                    "--quant", "none,fp8"], 300, 60),
        ("vae", [B + "vae_decode.py", "--device", "cuda", "--dtype", "bf16"], 300, 40),
        ("compile", [B + "transformer.py", "--preset", "19b", *COMMON, "--peers", "none", "--compile",
                     "--quant", "none,fp8,int8", "--profile"], 560, 240),
        ("hd", [B + "transformer.py", "--preset", "19b-hd", *COMMON, "--peers", "ltx-core",
                "--attention", "auto,sdpa,sdpa_cudnn,sdpa_flash,sage", "--iters", "2"], 400, 120),
        ("offload", [B + "offload.py", "--preset", "19b", "--device", "cuda", "--dtype", "bf16", "--fp8",
                     "--budget-gb", "8"], 400, 120),
        ("pipeline", [B + "pipeline.py", "--device", "cuda", "--dtype", "bf16"], 400, 120),
    ]


def environment() -> dict:
    env = {"python": sys.version.split()[0], "argv": sys.argv}
    try:
        env["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,pcie.link.gen.max",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as err:
        env["nvidia_smi"] = f"unavailable: {err}"
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("torch", "triton", "ltx-core", "diffusers", "transformers", "huggingface_hub", "sageattention",
                "torchao", "comfy-kitchen", "comfy-aimdo", "gguf", "safetensors", "einops"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = None
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "benchmarks/results/gpu_matrix")
    ap.add_argument("--comfyui", default=None, help="a current ComfyUI tree for the ComfyUI-core peer")
    ap.add_argument("--parts", default=None, help="comma list of parts to run (default: all, in order)")
    ap.add_argument("--budget-s", type=float, default=540.0,
                    help="stop starting parts whose estimate would exceed this many seconds in total")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "env.json").write_text(json.dumps(environment(), indent=1))
    chosen = None if not args.parts else {p.strip() for p in args.parts.split(",")}
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(out / "matrix.jsonl", "a") as matrix, open(out / "stderr.log", "a") as errlog:
        for name, argv, timeout, estimate in parts(args.comfyui):
            if chosen is not None and name not in chosen:
                continue
            spent = time.perf_counter() - start
            if spent + estimate > args.budget_s:
                matrix.write(json.dumps({"part": name, "skipped": f"budget: {spent:.0f} s spent, ~{estimate} s needed"}) + "\n")
                continue
            cmd = [sys.executable, *argv]
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
                rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
            except subprocess.TimeoutExpired as err:
                rc, stdout, stderr = "timeout", err.stdout or "", err.stderr or ""
                stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
                stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
            result = None
            for line in reversed(stdout.strip().splitlines()):
                if line.startswith("{"):
                    try:
                        result = json.loads(line)
                        break
                    except json.JSONDecodeError:
                        pass
            record = {"part": name, "cmd": " ".join(argv), "rc": rc, "seconds": round(time.perf_counter() - t0, 1),
                      "result": result}
            matrix.write(json.dumps(record) + "\n")
            matrix.flush()
            errlog.write(f"===== {name} (rc {rc})\n{stderr[-6000:]}\n")
            errlog.flush()
            print(f"{name}: rc {rc}, {record['seconds']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
