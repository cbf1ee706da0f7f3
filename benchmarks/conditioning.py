"""Transformer forward with conditioning tokens: OpenLTX vs Lightricks' ltx-core, same weights.

A keyframe (one latent frame at pixel frame 8k) and an IC-LoRA reference video at half size
with an attention strength of 0.5 are appended to the video tokens: ours with
``samplers.conditioning.append_tokens`` (what the MODEL adapter does), ltx-core with its own
``VideoConditionByKeyframeIndex`` + ``ConditioningItemAttentionStrengthWrapper(
VideoConditionByReferenceLatent)`` on a ``LatentState``.  Prints one JSON line: token counts,
seconds per forward (ours / reference), the relative error of the noisy tokens' velocities and,
on CUDA, peak memory.

    python benchmarks/conditioning.py                                   # mid-size CPU, fp32
    python benchmarks/conditioning.py --preset 19b --device cuda --dtype bf16
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from ltx2 import positions as P  # noqa: E402
from ltx2.config import TransformerConfig  # noqa: E402
from ltx2.inputs import StreamInput  # noqa: E402
from ltx2.transformer import LTXAVTransformer  # noqa: E402
from samplers import conditioning as C  # noqa: E402
from common import DTYPES, fill_random_, preset_header, timed  # noqa: E402
from transformer import PRESETS, make_inputs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="mid")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--layers", type=int, default=0, help="override the preset's block count")
    args = ap.parse_args()
    dtype = DTYPES[args.dtype]
    dev = args.device
    preset = PRESETS[args.preset]
    header = preset_header(preset["header"], args.layers)
    cfg = TransformerConfig.from_header(header)

    import ltx_core.loader  # noqa: F401
    from ltx_core.components.patchifiers import VideoLatentPatchifier
    from ltx_core.conditioning import (
        ConditioningItemAttentionStrengthWrapper,
        VideoConditionByKeyframeIndex,
        VideoConditionByReferenceLatent,
    )
    from ltx_core.tools import VideoLatentTools
    from ltx_core.types import VideoLatentShape
    from ltx_reference import reference_model, to_modality, to_perturbations
    from ltx_core.model.transformer.modality import Modality

    ours = LTXAVTransformer(cfg, dtype=dtype, device=dev).eval()
    fill_random_(ours, seed=0)
    ref = reference_model(header, dict(ours.state_dict()), dtype=dtype)
    video, audio = make_inputs(cfg, preset["frames"], preset["width"], preset["height"], preset["text"], dtype, dev)
    f, h, w = (preset["frames"] - 1) // 8 + 1, preset["height"] // 32, preset["width"] // 32
    g = torch.Generator(device=dev).manual_seed(7)
    key = torch.randn(1, cfg.in_channels, 1, h, w, generator=g, device=dev).to(dtype)
    ref_lat = torch.randn(1, cfg.in_channels, f, h // 2, w // 2, generator=g, device=dev).to(dtype)
    frame = 8 * (f // 2)
    sigma = video.sigma

    strength = torch.full((1, ref_lat[0, 0].numel()), 0.5, device=dev)
    tokens, timesteps, positions, attention = C.append_tokens(
        video.latent, video.timesteps, video.positions, sigma, 24.0,
        keyframes=(C.Keyframe(key, frame, 1.0),), references=(C.ReferenceVideo(ref_lat, 2, 1.0, strength),),
    )
    video_c = StreamInput(tokens, timesteps.to(dtype), sigma, positions, video.context, attention_mask=attention)

    tools = VideoLatentTools(VideoLatentPatchifier(1), VideoLatentShape(1, cfg.in_channels, f, h, w), 24.0)
    state = tools.create_initial_state(dev, dtype, P.unpatchify_video(video.latent, f, h, w))
    state = VideoConditionByKeyframeIndex(key, frame, 1.0).apply_to(state, tools)
    state = ConditioningItemAttentionStrengthWrapper(VideoConditionByReferenceLatent(ref_lat, 2, 1.0), 0.5).apply_to(state, tools)
    mv = Modality(latent=state.latent, sigma=sigma, timesteps=state.denoise_mask * sigma, positions=state.positions.float(),
                  context=video.context, enabled=True, context_mask=None, attention_mask=state.attention_mask)  # fmt: skip
    ma, pert = to_modality(audio), to_perturbations(None, 1)
    n = video.latent.shape[1]

    def run_ours():
        with torch.inference_mode():
            return ours(video_c, audio)

    def run_ref():
        with torch.inference_mode():
            return ref(mv, ma, pert)

    (ov, oa), (rv, ra) = run_ours(), run_ref()
    rel = max(((ov[:, :n].float() - rv[:, :n].float()).norm() / rv[:, :n].float().norm()).item(),
              ((oa.float() - ra.float()).norm() / ra.float().norm()).item())
    del ov, oa, rv, ra
    peaks = {}
    times = {}
    for name, fn in (("ours", run_ours), ("reference", run_ref)):
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        times[name] = timed(fn, args.iters, dev)[0]
        if dev == "cuda":
            peaks[name] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    out = {
        "benchmark": "conditioned_transformer_forward",
        "preset": args.preset,
        "tokens": {"noisy": n, "keyframe": h * w, "reference": ref_lat[0, 0].numel(), "audio": audio.latent.shape[1]},
        "device": torch.cuda.get_device_name() if dev == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": args.dtype,
        "ours_s": round(times["ours"], 4),
        "reference_s": round(times["reference"], 4),
        "ratio": round(times["ours"] / times["reference"], 3),
        "max_rel_err": rel,
    }
    if peaks:
        out["peak_mem_gib_ours"], out["peak_mem_gib_reference"] = peaks["ours"], peaks["reference"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
