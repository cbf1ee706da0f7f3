"""Peak memory of decode -> mp4 streaming (what LTX-2 Save Video does) for N and 2N latent frames.

Each case runs in a fresh subprocess: it writes the tiny random LTX-2.0 bundle, loads its video
VAE, decodes a random latent with ``ltx2.tiling.decode_chunks`` (temporal tiles) and streams
every chunk into ``media.Mp4Writer`` (H.264 + an AAC track of the same duration), then reports
its peak resident set size (``VmHWM``; ``ru_maxrss`` elsewhere) and the baseline before
decoding.  Prints ONE JSON line; ``growth_ratio`` = (peak - baseline) at 2N / at N, which stays
near 1 when memory does not grow with the video's length (a whole-video decode gives ~2).

    python benchmarks/save_video_memory.py [--frames 16] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import peak_rss_bytes  # noqa: E402


def _case(latent_frames: int, size: int) -> dict:
    sys.path.insert(0, ROOT)
    import torch

    from ltx2.tiling import TilingConfig, decode_chunks
    from media.mp4_writer import Mp4Writer
    from model_loaders.tiny_layouts import write_tiny_checkpoint
    from model_loaders.video_vae_loading import load_video_vae

    tmp = tempfile.mkdtemp()
    ckpt = os.path.join(tmp, "tiny.safetensors")
    write_tiny_checkpoint(ckpt, "2.0", "all")
    vae = load_video_vae(ckpt, dtype=torch.float32)
    latent = torch.randn(1, 128, latent_frames, size // 32, size // 32, generator=torch.Generator().manual_seed(0))
    frames = 8 * (latent_frames - 1) + 1
    tiling = TilingConfig(spatial_tile=None, temporal_tile=32, temporal_overlap=16)
    baseline = peak_rss_bytes()
    path = os.path.join(tmp, "out.mp4")
    with torch.inference_mode(), Mp4Writer(path, size, size, 24, audio_sample_rate=24000, preset="ultrafast") as w:
        w.write_audio(torch.zeros(2, int(frames / 24 * 24000)))
        for chunk in decode_chunks(vae, latent, tiling):
            w.write_frames(((chunk[0].float() + 1) / 2).clamp(0, 1).permute(1, 2, 3, 0))
    return {"latent_frames": latent_frames, "frames": frames, "baseline_mb": baseline / 2**20,
            "peak_mb": peak_rss_bytes() / 2**20, "file_mb": os.path.getsize(w.path) / 2**20}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16, help="N latent frames (2N is the second case)")
    ap.add_argument("--size", type=int, default=256, help="width = height in pixels (multiple of 32)")
    ap.add_argument("--case", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case is not None:
        print(json.dumps(_case(args.case, args.size)))
        return
    results = []
    for n in (args.frames, 2 * args.frames):
        proc = subprocess.run([sys.executable, __file__, "--case", str(n), "--size", str(args.size)],
                              capture_output=True, text=True, check=True)  # fmt: skip
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    grow = [r["peak_mb"] - r["baseline_mb"] for r in results]
    print(json.dumps({
        "benchmark": "save_video_memory", "size": args.size, "cases": results,
        "growth_mb": [round(g, 1) for g in grow], "growth_ratio": round(grow[1] / max(grow[0], 1e-6), 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
