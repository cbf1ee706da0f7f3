"""Seconds per latent-upsampler call: OpenLTX vs Lightricks' ltx-core, same weights and input.

Prints one JSON line: kind, config, latent shapes, our and the reference's seconds (median of
``--repeat`` after a warm-up), their ratio (ours / reference; < 1 = we are faster), the relative
error between the two outputs and, on CUDA, peak memory of each.

    python benchmarks/upsampler.py                                   # small CPU config (fp32)
    python benchmarks/upsampler.py --preset full --device cuda --dtype bf16      # real sizes
    python benchmarks/upsampler.py --preset full --kind temporal --device cuda --dtype bf16

``full``: mid_channels 1024, 4 blocks per stage (the released files' shapes) on the stage-1
latent of a 768x512x121 two-stage run, (1, 128, 16, 8, 12) -> (1, 128, 16, 16, 24).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ltx2.upsampler import LatentUpsampler, upsample_latent  # noqa: E402
from model_loaders.upsampler_loading import tiny_upsampler_config, tiny_upsampler_state_dict  # noqa: E402

PRESETS = {
    "small": dict(mid=128, blocks=2, latent=(1, 128, 4, 4, 6)),
    "full": dict(mid=1024, blocks=4, latent=(1, 128, 16, 8, 12)),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _time(fn, device, repeat: int) -> tuple[float, int]:
    fn()  # warm-up (cuDNN autotune, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return statistics.median(times), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=PRESETS, default="small")
    ap.add_argument("--kind", default="spatial", choices=["spatial", "spatial_x1.5", "temporal"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=DTYPES, default="fp32")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    p = PRESETS[args.preset]

    import ltx_core.loader  # noqa: F401  (import order: avoids a circular import in ltx-core)
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator, upsample_video
    from ltx_core.model.video_vae.ops import PerChannelStatistics

    config = tiny_upsampler_config(args.kind, mid_channels=p["mid"], blocks=p["blocks"])
    sd = {k: v.to(device=device, dtype=dtype if k != "upsampler.blur_down.kernel" else torch.float32)
          for k, v in tiny_upsampler_state_dict(config, seed=0).items()}  # fmt: skip
    with torch.device("meta"):
        ours = LatentUpsampler(config, dtype=dtype)
        ref = LatentUpsamplerConfigurator.from_config(config)
    ours.load_state_dict(sd, strict=True, assign=True)
    ref.load_state_dict(sd, strict=True, assign=True)
    ours.eval(), ref.eval()

    g = torch.Generator(device="cpu").manual_seed(0)
    latent = torch.randn(p["latent"], generator=g).to(device=device, dtype=dtype)
    mean = torch.randn(128, generator=g).to(device)
    std = (0.5 + torch.rand(128, generator=g)).to(device)
    stats = PerChannelStatistics(128).to(device)
    stats.get_buffer("mean-of-means").copy_(mean)
    stats.get_buffer("std-of-means").copy_(std)
    encoder = type("Enc", (), {"per_channel_statistics": stats})()

    with torch.inference_mode():
        out_ours = upsample_latent(ours, latent, (mean, std))
        out_ref = upsample_video(latent, encoder, ref)
        rel = ((out_ours.float() - out_ref.float()).abs().max() / out_ref.float().abs().max()).item()
        t_ours, peak_ours = _time(lambda: upsample_latent(ours, latent, (mean, std)), device, args.repeat)
        t_ref, peak_ref = _time(lambda: upsample_video(latent, encoder, ref), device, args.repeat)
    print(json.dumps({
        "benchmark": "latent_upsampler", "kind": args.kind, "preset": args.preset, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "dtype": args.dtype,
        "mid_channels": p["mid"], "blocks_per_stage": p["blocks"],
        "latent_in": list(latent.shape), "latent_out": list(out_ours.shape),
        "ours_s": round(t_ours, 5), "reference_s": round(t_ref, 5), "ratio": round(t_ours / t_ref, 3),
        "rel_err_vs_reference": rel,
        "peak_mem_ours_gib": round(peak_ours / 2**30, 3), "peak_mem_reference_gib": round(peak_ref / 2**30, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
