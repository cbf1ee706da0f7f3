"""The distilled two-stage LTX-2 pipeline, stage by stage: seconds and peak memory.

Runs what ``workflows/ltx2_distilled.json`` runs, with OpenLTX's own modules and random
weights of the real sizes (nothing downloaded): stage 1 at half resolution (8 distilled steps,
one transformer pass each), the ×2 latent upscaler, re-noise of both streams to σ = 0.909375,
stage 2 at full resolution (3 steps), tiled video decode and audio decode (VAE + vocoder).
Prints ONE JSON line: seconds and peak memory per stage.

    python benchmarks/pipeline.py --device cuda --dtype bf16          # 19B, 768x512x121
    python benchmarks/pipeline.py --small                             # CPU check of the script

The text context is random (the text encoder has its own benchmark: benchmarks/text_encoder.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import DTYPES, fill_random_  # noqa: E402
from ltx2 import positions as P  # noqa: E402
from ltx2.audio_pipeline import decode_audio  # noqa: E402
from ltx2.audio_vae import AudioVAE  # noqa: E402
from ltx2.config import TransformerConfig, official_19b_header  # noqa: E402
from ltx2.inputs import StreamInput  # noqa: E402
from ltx2.tiling import TilingConfig, decode_tiled  # noqa: E402
from ltx2.transformer import LTXAVTransformer, velocity_to_x0  # noqa: E402
from ltx2.upsampler import LatentUpsampler, UpsamplerConfig, upsample_latent  # noqa: E402
from ltx2.video_vae import VideoVAE  # noqa: E402
from ltx2.vocoder import build_vocoder  # noqa: E402
from model_loaders.layouts import official_vae_config  # noqa: E402
from model_loaders.tiny_layouts import tiny_transformer_header, tiny_vae_config  # noqa: E402
from samplers.schedules import DISTILLED_STAGE1, DISTILLED_STAGE2  # noqa: E402

UPSCALER = {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 1024,
            "num_blocks_per_stage": 4, "dims": 3, "spatial_upsample": True, "temporal_upsample": False}  # fmt: skip
AUDIO_VAE = {"model": {"params": {"ddconfig": {
    "double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "in_channels": 2, "out_ch": 2,
    "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [],
    "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height"},
    "sampling_rate": 16000}}}  # fmt: skip
VOCODER = {"resblock": "1", "stereo": True}  # LTX-2.0 HiFi-GAN, everything else at its defaults


def _fill_statistics_(module: torch.nn.Module) -> None:
    """Per-channel statistics buffers: mean 0, std 1 (random weights have no real ones)."""
    for name, buf in module.named_buffers():
        if name.endswith("std-of-means"):
            buf.fill_(1.0)
        elif name.endswith("mean-of-means"):
            buf.zero_()


class Meter:
    """Seconds and peak memory of each stage."""

    def __init__(self, device: str) -> None:
        self.device, self.stages = device, {}

    def run(self, name: str, fn):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        out = fn()
        if self.device == "cuda":
            torch.cuda.synchronize()
        entry = {"seconds": round(time.perf_counter() - start, 3)}
        if self.device == "cuda":
            entry["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        self.stages[name] = entry
        return out


def denoise(model, video, audio, sigmas, context, fps):
    """Euler steps of the distilled model (one pass, no guidance) on both streams.

    Args:
        video: ``(1, 128, F, H, W)``; audio: ``(1, 8, T, 16)``; sigmas: the step list ending at 0.
    """
    _, _, f, h, w = video.shape
    vpos = P.video_positions(1, f, h, w, fps, device=video.device)
    apos = P.audio_positions(1, audio.shape[2], device=video.device)
    v, a = P.patchify_video(video), P.patchify_audio(audio)
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        sig = torch.full((1,), float(s), device=video.device)
        ts_v, ts_a = sig[:, None].expand(1, v.shape[1]), sig[:, None].expand(1, a.shape[1])
        with torch.inference_mode():
            out_v, out_a = model(StreamInput(v, ts_v, sig, vpos, context[0]), StreamInput(a, ts_a, sig, apos, context[1]))
        x0_v, x0_a = velocity_to_x0(v, out_v, ts_v), velocity_to_x0(a, out_a, ts_a)
        ratio = float(s_next) / float(s)  # Euler on the flow: x' = x0 + (x - x0)·σ'/σ
        v = (x0_v.float() + (v.float() - x0_v.float()) * ratio).to(v.dtype)
        a = (x0_a.float() + (a.float() - x0_a.float()) * ratio).to(a.dtype)
    return P.unpatchify_video(v, f, h, w), P.unpatchify_audio(a, audio.shape[1], audio.shape[3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--small", action="store_true", help="tiny models at 128x64x17 (a CPU check of the script)")
    args = ap.parse_args()
    dtype, dev = DTYPES[args.dtype], args.device
    torch.manual_seed(0)
    if args.small:
        header, vae_cfg, up_cfg = tiny_transformer_header("2.0"), tiny_vae_config("2.0"), dict(UPSCALER, mid_channels=32)
        width, height, frames, text = 128, 64, 17, 16
    else:
        header, vae_cfg, up_cfg = official_19b_header(), official_vae_config("2.0"), UPSCALER
        width, height, frames, text = 768, 512, 121, 1024
    fps = 24.0
    meter = Meter(dev)
    cfg = TransformerConfig.from_header(header)

    def build():
        model = LTXAVTransformer(cfg, dtype=dtype, device=dev).eval()
        fill_random_(model, seed=0)
        up = LatentUpsampler(UpsamplerConfig.from_header(up_cfg), dtype=dtype, device=dev).eval()
        vae = VideoVAE(vae_cfg, dtype=dtype, device=dev).eval()
        audio_vae = AudioVAE(AUDIO_VAE, dtype=dtype, device=dev).eval()
        vocoder = build_vocoder(VOCODER, dtype=dtype, device=dev).eval()
        for m in (vae, audio_vae):
            _fill_statistics_(m)
        return model, up, vae, audio_vae, vocoder

    model, up, vae, audio_vae, vocoder = meter.run("build_random_weights", build)
    g = torch.Generator(device=dev).manual_seed(10)
    cw = cfg.caption_channels
    context = (torch.randn(1, text, cw, generator=g, device=dev).to(dtype),
               torch.randn(1, text, cw, generator=g, device=dev).to(dtype))  # fmt: skip
    f = (frames - 1) // 8 + 1
    t_audio = P.audio_latent_steps(frames, fps)
    video1 = torch.randn(1, 128, f, height // 64, width // 64, generator=g, device=dev).to(dtype)
    audio1 = torch.randn(1, 8, t_audio, 16, generator=g, device=dev).to(dtype)

    video1, audio1 = meter.run("stage1_8_steps_half_res", lambda: denoise(model, video1, audio1, DISTILLED_STAGE1, context, fps))
    with torch.inference_mode():
        stats = vae.per_channel_statistics
        mean_std = (stats.get_buffer("mean-of-means"), stats.get_buffer("std-of-means"))
        video2 = meter.run("upsample_x2", lambda: upsample_latent(up, video1, mean_std))
    s0 = DISTILLED_STAGE2[0]
    video2 = (torch.randn(video2.shape, generator=g, device=dev) * s0 + video2.float() * (1 - s0)).to(dtype)
    audio2 = (torch.randn(audio1.shape, generator=g, device=dev) * s0 + audio1.float() * (1 - s0)).to(dtype)
    video2, audio2 = meter.run("stage2_3_steps_full_res", lambda: denoise(model, video2, audio2, DISTILLED_STAGE2, context, fps))
    tiling = TilingConfig(spatial_tile=512, spatial_overlap=64, temporal_tile=64, temporal_overlap=24)
    with torch.inference_mode():
        pixels = meter.run("video_decode_tiled", lambda: decode_tiled(vae, video2, tiling))
        wave, rate = meter.run("audio_decode", lambda: decode_audio(audio_vae, vocoder, audio2))
    out = {
        "benchmark": "pipeline_distilled_two_stage",
        "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        "dtype": args.dtype,
        "model": "tiny" if args.small else "LTX-2 19B shapes, random weights",
        "output": f"{width}x{height}x{frames} @ {fps:g} fps",
        "stage1_latent": list(video1.shape),
        "stage2_latent": list(video2.shape),
        "video": list(pixels.shape),
        "audio": [list(wave.shape), rate],
        "finite": bool(torch.isfinite(pixels).all() and torch.isfinite(wave).all()),
        "stages": meter.stages,
    }
    if dev == "cuda":
        out["peak_gib_overall"] = max(s.get("peak_gib", 0) for s in meter.stages.values())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
