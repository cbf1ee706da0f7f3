"""Peak memory of a long video made in windows (LTX-2 Long Video Sampler) for 1x, 2x and 4x the
length, against the same lengths made in one piece.

Each case runs in a fresh subprocess: it builds an LTX-2 transformer with random weights (the
``tiny`` test config or the ``mid`` one of benchmarks/transformer.py), then generates a joint
video + audio latent of the given length with ``samplers/looping.sample_long`` - every window
sampled by Euler steps exactly as the MODEL runs them (tail guide tokens appended with
``samplers.conditioning.append_tokens``, per-token σ from the denoise masks, x0 blended with the
kept tokens) - or, with ``--single``, the whole length as one window.  It reports its peak resident
set size (``VmHWM``) and the baseline after building (model, text context, the empty latent).

Prints ONE JSON line; ``growth_4x_over_1x`` = working memory (peak - baseline) at 4x / at 1x:
near 1 when memory does not grow with the length.  The subprocesses run with a fixed glibc mmap
threshold so that freed tensors leave the resident set (see ``main``).

    python benchmarks/long_video_memory.py                       # tiny, 64x64, 1x = 121 frames
    python benchmarks/long_video_memory.py --preset mid --size 256
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fill_random_, peak_rss_bytes, preset_header  # noqa: E402

MID = dict(num_layers=4, num_attention_heads=8, attention_head_dim=128, cross_attention_dim=1024,
           audio_num_attention_heads=8, audio_attention_head_dim=64, audio_cross_attention_dim=512,
           caption_channels=1024)  # benchmarks/transformer.py's "mid"  # fmt: skip
FPS = 24.0


def _case(frames: int, args) -> dict:
    sys.path.insert(0, ROOT)
    import torch

    from ltx2 import positions as P
    from ltx2.config import TransformerConfig
    from ltx2.inputs import StreamInput
    from ltx2.transformer import LTXAVTransformer, velocity_to_x0
    from model_loaders.tiny_layouts import tiny_transformer_header
    from samplers import conditioning as C
    from samplers import looping as L

    torch.manual_seed(0)
    header = tiny_transformer_header("2.0") if args.preset == "tiny" else preset_header(MID)
    cfg = TransformerConfig.from_header(header)
    model = LTXAVTransformer(cfg, dtype=torch.float32).eval()
    fill_random_(model, seed=0)
    g = torch.Generator().manual_seed(1)
    text = 16 if args.preset == "tiny" else 128
    cv = cfg.caption_channels if cfg.has_caption_projection else cfg.video_dim
    ca = cfg.caption_channels if cfg.has_caption_projection else cfg.audio_dim
    context = (torch.randn(1, text, cv, generator=g), torch.randn(1, text, ca, generator=g))
    f, side = (frames - 1) // 8 + 1, args.size // 32
    steps = P.audio_latent_steps(frames, FPS)
    video = torch.zeros(1, cfg.in_channels, f, side, side)
    audio = torch.zeros(1, 8, steps, cfg.audio_in_channels // 8)
    sigmas = torch.linspace(1.0, 0.0, args.steps + 1).tolist()
    window_tokens = []

    def sample_window(w, wv, wm, wa, wam, kf, rf):
        """Euler steps on one window, both streams, as the MODEL + guider run them."""
        _, _, lf, h, wd = wv.shape
        vpos = P.video_positions(1, lf, h, wd, FPS)
        apos = P.audio_positions(1, wa.shape[2])
        clean_v, clean_a = P.patchify_video(wv), P.patchify_audio(wa)
        mv, ma = wm.reshape(1, -1), wam[:, 0, :, 0]
        nv = torch.randn(clean_v.shape, generator=g)
        na = torch.randn(clean_a.shape, generator=g)
        xv = clean_v + (mv * sigmas[0])[..., None] * (nv - clean_v)  # kept tokens start at the clean latent
        xa = clean_a + (ma * sigmas[0])[..., None] * (na - clean_a)
        n = xv.shape[1]
        for s, s_next in zip(sigmas[:-1], sigmas[1:]):
            sig = torch.full((1,), float(s))
            tokens, ts, pos, attn = C.append_tokens(xv, mv * s, vpos, sig, FPS, keyframes=kf, references=rf)
            window_tokens.append(tokens.shape[1])
            with torch.inference_mode():
                out_v, out_a = model(StreamInput(tokens, ts, sig, pos, context[0], attention_mask=attn),
                                     StreamInput(xa, ma * s, sig, apos, context[1]))  # fmt: skip
            x0v = velocity_to_x0(xv, out_v[:, :n], mv * s)
            x0a = velocity_to_x0(xa, out_a, ma * s)
            x0v = x0v * mv[..., None] + clean_v * (1 - mv[..., None])
            x0a = x0a * ma[..., None] + clean_a * (1 - ma[..., None])
            ratio = s_next / s
            xv, xa = x0v + (xv - x0v) * ratio, x0a + (xa - x0a) * ratio
        return P.unpatchify_video(xv, lf, h, wd), P.unpatchify_audio(xa, wa.shape[1], wa.shape[3])

    window = f if args.single else (args.window - 1) // 8 + 1
    settings = L.LoopSettings(window=window, overlap=args.overlap // 8)
    vm = torch.ones(1, 1, *video.shape[2:])
    am = torch.ones(1, 1, steps, 1)
    baseline = peak_rss_bytes()
    out_v, out_a = L.sample_long(video, vm, audio, am, FPS, settings, sample_window)
    return {"frames": frames, "latent_frames": f, "windows": len(L.plan_windows(f, settings.window, settings.overlap)),
            "max_tokens_per_call": max(window_tokens), "baseline_mb": round(baseline / 2**20, 1),
            "peak_mb": round(peak_rss_bytes() / 2**20, 1), "working_mb": round((peak_rss_bytes() - baseline) / 2**20, 1),
            "finite": bool(torch.isfinite(out_v).all() and torch.isfinite(out_a).all())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=("tiny", "mid"), default="tiny")
    ap.add_argument("--size", type=int, default=64, help="width = height in pixels (multiple of 32)")
    ap.add_argument("--frames", type=int, default=121, help="1x length in pixel frames (8k+1)")
    ap.add_argument("--window", type=int, default=121, help="window_frames (8k+1)")
    ap.add_argument("--overlap", type=int, default=24, help="overlap_frames (multiple of 8)")
    ap.add_argument("--steps", type=int, default=2, help="Euler steps per window")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case is not None:
        print(json.dumps(_case(args.case, args)))
        return
    lengths = {f"{k}x": 8 * k * ((args.frames - 1) // 8) + 1 for k in (1, 2, 4)}
    results = {}
    for mode in ("windowed", "single"):
        results[mode] = {}
        for name, frames in lengths.items():
            cmd = [sys.executable, os.path.abspath(__file__), "--case", str(frames), "--preset", args.preset,
                   "--size", str(args.size), "--window", str(args.window), "--overlap", str(args.overlap),
                   "--steps", str(args.steps)] + (["--single"] if mode == "single" else [])  # fmt: skip
            # A fixed mmap threshold: glibc then returns freed tensor buffers to the OS, so the peak
            # counts what is alive; its adaptive threshold would keep freed buffers on the heap and
            # the resident size would creep with the number of allocations, not the live memory.
            env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
            if proc.returncode:
                raise SystemExit(proc.stderr[-3000:])
            results[mode][name] = json.loads(proc.stdout.strip().splitlines()[-1])
    def growth(a: str, b: str) -> dict:
        return {m: round(r[b]["working_mb"] / max(r[a]["working_mb"], 1e-3), 2) for m, r in results.items()}

    # 1x is one window; from 2x on every window also carries the previous one's tail tokens, so
    # 2x -> 4x is the pure effect of the length.
    print(json.dumps({"benchmark": "long_video_memory", "device": "cpu", "preset": args.preset,
                      "size": f"{args.size}x{args.size}", "window_frames": args.window, "overlap_frames": args.overlap,
                      "steps": args.steps, "growth_4x_over_1x": growth("1x", "4x"),
                      "growth_4x_over_2x": growth("2x", "4x"), **results}))  # fmt: skip


if __name__ == "__main__":
    main()
