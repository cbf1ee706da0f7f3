"""Seconds per transformer forward: OpenLTX vs Lightricks' ltx-core, same weights, same inputs.

Prints one JSON line: config, token counts, our and the reference's seconds per forward, their
ratio (ours / reference; < 1 means we are faster), the relative error between the two outputs,
FLOPs per forward (counted on each model) and, on CUDA, peak memory and the fraction of the
GPU's dense bf16 peak.

    python benchmarks/transformer.py                       # mid-size CPU config (fp32)
    python benchmarks/transformer.py --preset 19b --device cuda --dtype bf16   # 768x512x121

The two models share one set of weight tensors (the reference is loaded with ``assign=True``
from our state dict), so the 19B preset needs ~38 GB of GPU memory, not 76.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ltx2 import positions as P  # noqa: E402
from common import DTYPES, fill_random_, preset_header, timed  # noqa: E402,F401  (fill_random_: re-exported)
from ltx2.config import TransformerConfig  # noqa: E402
from ltx2.inputs import StreamInput  # noqa: E402
from ltx2.transformer import LTXAVTransformer  # noqa: E402

PRESETS = {
    # 4 blocks at 1024/512 wide, 6x16x16 latent = 1,536 video tokens (e.g. 512x512, 41 frames)
    "mid": dict(
        header=dict(num_layers=4, num_attention_heads=8, attention_head_dim=128, cross_attention_dim=1024,
                    audio_num_attention_heads=8, audio_attention_head_dim=64, audio_cross_attention_dim=512,
                    caption_channels=1024),
        frames=41, width=512, height=512, text=256,
    ),
    # the real 19B shapes at the reference resolution: 768x512x121 → 6,144 video tokens
    "19b": dict(header={}, frames=121, width=768, height=512, text=1024),
}

DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "RTX 4090": 165e12}


def make_inputs(cfg: TransformerConfig, frames, width, height, text, dtype, device, seed=1):
    g = torch.Generator(device=device).manual_seed(seed)
    f, h, w = (frames - 1) // 8 + 1, height // 32, width // 32
    ta = P.audio_latent_steps(frames, 24.0)
    sig = torch.tensor([0.7], device=device)
    cv = cfg.caption_channels if cfg.has_caption_projection else cfg.video_dim
    ca = cfg.caption_channels if cfg.has_caption_projection else cfg.audio_dim
    rnd = lambda *s: torch.randn(*s, generator=g, device=device).to(dtype)  # noqa: E731
    video = StreamInput(rnd(1, f * h * w, cfg.in_channels), sig[:, None].expand(1, f * h * w).clone(), sig,
                        P.video_positions(1, f, h, w, 24.0, device=device), rnd(1, text, cv))
    audio = StreamInput(rnd(1, ta, cfg.audio_in_channels), sig[:, None].expand(1, ta).clone(), sig,
                        P.audio_positions(1, ta, device=device), rnd(1, text, ca))
    return video, audio


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="mid")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    ap.add_argument("--layers", type=int, default=0, help="override the preset's block count")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP-counting forward")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    preset = PRESETS[args.preset]
    header = preset_header(preset["header"], args.layers)
    cfg = TransformerConfig.from_header(header)

    from ltx_reference import reference_model, to_modality, to_perturbations

    ours = LTXAVTransformer(cfg, dtype=dtype, device=args.device).eval()
    fill_random_(ours, seed=0)
    ref = reference_model(header, dict(ours.state_dict()), dtype=dtype)  # shares our tensors
    video, audio = make_inputs(cfg, preset["frames"], preset["width"], preset["height"], preset["text"],
                               dtype, args.device)
    mv, ma, pert = to_modality(video), to_modality(audio), to_perturbations(None, 1)

    def run_ours():
        with torch.inference_mode():
            return ours(video, audio)

    def run_ref():
        with torch.inference_mode():
            return ref(mv, ma, pert)

    (ov, oa), (rv, ra) = run_ours(), run_ref()
    rel = max(((ov.float() - rv.float()).norm() / rv.float().norm()).item(),
              ((oa.float() - ra.float()).norm() / ra.float().norm()).item())
    del ov, oa, rv, ra
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_ours = timed(run_ours, args.iters, args.device)[0]
    peak_ours = torch.cuda.max_memory_allocated() if args.device == "cuda" else None
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t_ref = timed(run_ref, args.iters, args.device)[0]
    peak_ref = torch.cuda.max_memory_allocated() if args.device == "cuda" else None
    out = {
        "benchmark": "transformer_forward",
        "preset": args.preset,
        "config": {"layers": cfg.num_layers, "video_dim": cfg.video_dim, "audio_dim": cfg.audio_dim},
        "resolution": f"{preset['width']}x{preset['height']}x{preset['frames']}",
        "tokens": {"video": video.latent.shape[1], "audio": audio.latent.shape[1], "text": preset["text"]},
        "device": torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": args.dtype,
        "ours_s": round(t_ours, 4),
        "reference_s": round(t_ref, 4),
        "ratio": round(t_ours / t_ref, 3),
        "max_rel_err": rel,
    }
    if not args.no_flops:
        f_ours, f_ref = count_flops(run_ours), count_flops(run_ref)
        out["tflop_ours"] = round(f_ours / 1e12, 2)
        out["tflop_reference"] = round(f_ref / 1e12, 2)
        if args.device == "cuda":
            name = torch.cuda.get_device_name()
            peak = next((v for k, v in DENSE_BF16_PEAK.items() if k in name), None)
            if peak:
                out["bf16_peak_tflops"] = peak / 1e12
                out["mfu_ours"] = round(f_ours / t_ours / peak, 3)
                out["mfu_reference"] = round(f_ref / t_ref / peak, 3)
    if args.device == "cuda":
        out["peak_mem_gib_ours"] = round(peak_ours / 2**30, 2)
        out["peak_mem_gib_reference"] = round(peak_ref / 2**30, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
