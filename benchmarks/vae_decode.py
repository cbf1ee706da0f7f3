"""Video decode, ours vs ltx-core 1.0.0, on the same random weights, untiled and tiled.

Full size: the official LTX-2.0 VAE config (``model_loaders.layouts.official_vae_config``),
random weights (the tiny-checkpoint value recipe), decoding a (1, 128, 16, 16, 24) latent ->
121 x 512 x 768 video.  ltx-core's ``VideoDecoder`` is built on the meta device and
assign-loaded with *our* decoder's tensors (one copy of the weights).

Two comparisons of equal work, each side warmed up by one full run before it is timed:

* untiled: both decode the whole latent at once — the outputs must agree (``rel_diff_untiled``
  is the fidelity check);
* tiled: both with the same tile sizes and overlaps (512 px / 64 px, 64 frames / 24 frames),
  ours via ``ltx2.tiling.decode_chunks`` (streamed), ltx-core via ``tiled_decode``.  The two
  blend overlaps differently, so instead of comparing them to each other each is compared to
  the untiled decode (``tiling_err``: what its tiling costs in accuracy).

Reports seconds, peak memory allocated by torch on the device, the differences.  ONE JSON line.

    python benchmarks/vae_decode.py --device cuda --dtype bf16
    python benchmarks/vae_decode.py --device cpu --dtype fp32 --small     # tiny config, quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ltx2.tiling import TilingConfig, decode_chunks  # noqa: E402
from ltx2.video_vae import VideoVAE  # noqa: E402
from model_loaders.layouts import official_vae_config  # noqa: E402
from model_loaders.tiny_layouts import random_tensor, tiny_config  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3) if device.type == "cuda" else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="bf16")
    p.add_argument("--small", action="store_true", help="tiny 2.0 config and a small latent (CPU check)")
    args = p.parse_args()
    device, dtype = torch.device(args.device), DTYPES[args.dtype]

    import ltx_core.loader  # noqa: F401  (import order avoids a circular import)
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator
    from ltx_core.model.video_vae.tiling import SpatialTilingConfig, TemporalTilingConfig
    from ltx_core.model.video_vae.tiling import TilingConfig as RefTiling

    if args.small:
        cfg, shape = tiny_config("2.0")["vae"], (1, 128, 6, 6, 8)
        ours_tiling = TilingConfig(spatial_tile=128, spatial_overlap=64, temporal_tile=32, temporal_overlap=16)
        ref_tiling = RefTiling(SpatialTilingConfig(128, 64), TemporalTilingConfig(32, 16))
    else:
        cfg, shape = official_vae_config("2.0"), (1, 128, 16, 16, 24)
        ours_tiling = TilingConfig(spatial_tile=512, spatial_overlap=64, temporal_tile=64, temporal_overlap=24)
        ref_tiling = RefTiling(SpatialTilingConfig(512, 64), TemporalTilingConfig(64, 24))

    ours = VideoVAE(cfg, timestep_conditioning=False, dtype=dtype, device=torch.device("meta"))
    g = torch.Generator().manual_seed(0)
    sd = {k: random_tensor(k, tuple(v.shape), g).to(device=device, dtype=dtype)
          for k, v in ours.state_dict().items() if not k.startswith("encoder.")}  # fmt: skip
    dec_sd = {k[len("decoder."):]: v for k, v in sd.items() if k.startswith("decoder.")}
    stats = {k: v for k, v in sd.items() if k.startswith("per_channel_statistics.")}
    ours.decoder.load_state_dict(dec_sd, strict=True, assign=True)
    ours.per_channel_statistics.load_state_dict({k.split(".", 1)[1]: v for k, v in stats.items()}, assign=True)
    ours.eval()
    with torch.device("meta"):
        ref = VideoDecoderConfigurator.from_config({"vae": {**cfg, "timestep_conditioning": False}})
    ref.load_state_dict({**dec_sd, **stats}, strict=True, assign=True)
    ref.eval()

    latent = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)
    n_frames = 8 * (shape[2] - 1) + 1
    out_shape = (shape[0], 3, n_frames, shape[3] * 32, shape[4] * 32)

    def collect(chunks):
        out = torch.empty(out_shape, dtype=dtype, device="cpu")
        at = 0
        for chunk in chunks:
            out[:, :, at : at + chunk.shape[2]] = chunk.to("cpu", dtype)
            at += chunk.shape[2]
        return out

    runs = {
        "ours_untiled": lambda: collect(decode_chunks(ours, latent, None)),
        "ltx_core_untiled": lambda: collect([ref(latent)]),
        "ours_tiled": lambda: collect(decode_chunks(ours, latent, ours_tiling)),
        "ltx_core_tiled": lambda: collect(ref.tiled_decode(latent, ref_tiling)),
    }
    results, videos = {}, {}
    with torch.inference_mode():
        for name, fn in runs.items():
            fn()  # warm-up: kernels, allocator, cuDNN autotuning of this shape
            _peak_reset(device)
            _sync(device)
            t0 = time.perf_counter()
            videos[name] = fn().float()
            _sync(device)
            results[name] = {"seconds": round(time.perf_counter() - t0, 3), "peak_gib": _peak(device)}

    def rel(a, b) -> float:
        return round(((videos[a] - videos[b]).norm() / videos[b].norm()).item(), 6)

    print(json.dumps({
        "benchmark": "vae_decode", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": args.dtype, "config": "tiny-2.0" if args.small else "official-2.0", "latent": list(shape),
        "video": list(out_shape), "tiling": "512px/64px, 64f/24f" if not args.small else "128px/64px, 32f/16f",
        **results,
        "speedup_untiled": round(results["ltx_core_untiled"]["seconds"] / results["ours_untiled"]["seconds"], 3),
        "speedup_tiled": round(results["ltx_core_tiled"]["seconds"] / results["ours_tiled"]["seconds"], 3),
        "rel_diff_untiled": rel("ours_untiled", "ltx_core_untiled"),
        "tiling_err_ours": rel("ours_tiled", "ours_untiled"),
        "tiling_err_ltx_core": rel("ltx_core_tiled", "ltx_core_untiled"),
        "peak_note": "torch.cuda.max_memory_allocated (weights included); null on CPU",
    }))  # fmt: skip


if __name__ == "__main__":
    main()
