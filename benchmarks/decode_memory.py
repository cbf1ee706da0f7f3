"""Peak memory of streaming video decode does not grow with video length.

Each case runs in a fresh subprocess (so peaks do not mix) that builds the tiny random LTX-2.0
VAE, decodes a latent of N (then 2N) latent frames with ``ltx2.tiling.decode_chunks`` into a
sink that discards every chunk, and reports its peak resident set size: ``VmHWM`` from
/proc/self/status (Linux), else ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.  The baseline
(RSS after building the model and the latent, before decoding) is reported too, so the growth
caused by decoding is visible.  Prints ONE JSON line.

    python benchmarks/decode_memory.py [--frames 16] [--height 8] [--width 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import peak_rss_bytes  # noqa: E402


def _case(frames: int, height: int, width: int) -> dict:
    sys.path.insert(0, ROOT)
    import torch

    from ltx2.tiling import TilingConfig, decode_chunks
    from ltx2.video_vae import VideoVAE
    from model_loaders.tiny_layouts import random_tensor, tiny_config

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    vae = VideoVAE(tiny_config("2.0")["vae"], timestep_conditioning=False)
    g = torch.Generator().manual_seed(0)
    vae.load_state_dict({k: random_tensor(k, tuple(v.shape), g) for k, v in vae.state_dict().items()})
    vae.eval()
    latent = torch.randn(1, 128, frames, height, width, generator=g)
    baseline = peak_rss_bytes()
    tiling = TilingConfig(spatial_tile=None, temporal_tile=32, temporal_overlap=16)
    out_frames = 0
    for chunk in decode_chunks(vae, latent, tiling):  # the sink: count and drop
        out_frames += chunk.shape[2]
        del chunk
    peak = peak_rss_bytes()
    whole = 3 * out_frames * height * 32 * width * 32 * 4
    return {"latent_frames": frames, "frames": out_frames, "peak_rss_mb": round(peak / 2**20, 1),
            "baseline_rss_mb": round(baseline / 2**20, 1), "decode_growth_mb": round((peak - baseline) / 2**20, 1),
            "whole_video_fp32_mb": round(whole / 2**20, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="N latent frames (2N is measured too)")
    parser.add_argument("--height", type=int, default=8, help="latent height")
    parser.add_argument("--width", type=int, default=8, help="latent width")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        print(json.dumps(_case(args.case, args.height, args.width)))
        return
    results = []
    for n in (args.frames, 2 * args.frames):
        cmd = [sys.executable, os.path.abspath(__file__), "--case", str(n), "--height", str(args.height),
               "--width", str(args.width)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results.append(json.loads(out))
    a, b = results
    print(json.dumps({
        "benchmark": "decode_memory", "measure": "peak RSS (VmHWM) per fresh subprocess, streaming decode_chunks",
        "N": a, "2N": b,
        "peak_ratio_2N_over_N": round(b["peak_rss_mb"] / a["peak_rss_mb"], 3),
        "growth_ratio_2N_over_N": round(b["decode_growth_mb"] / max(a["decode_growth_mb"], 1e-9), 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
