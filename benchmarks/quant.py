"""Quantized formats vs bf16: bytes/param, relative output error, seconds per forward. One JSON line.

    python benchmarks/quant.py                                 # CPU, mid-size config (8 layers, 512/256 wide)
    python benchmarks/quant.py --device cuda --preset 19b      # lead's GPU run: full 19B shapes, 768x512x121

The transformer is built directly with the pack's ``operations`` (``quant.ops``); random
bf16 weights are quantized block by block on the device (for 19B the bf16 model is never
materialised: each Linear is created in bf16, quantized, and the bf16 copy dropped), so fp8 /
GGUF runs fit a card that bf16 does not.  Formats: bf16, fp8 (scaled-mm where the GPU has FP8
tensor cores, else dequant), int8 (per-channel, dequant), GGUF Q8_0 and Q4_K (dequant per
layer).  Error = ||out - out_bf16|| / ||out_bf16|| (CPU / small presets; skipped for 19B
where the bf16 reference is measured separately in the same process if it fits).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ltx2 import positions as P  # noqa: E402
from ltx2.config import TransformerConfig  # noqa: E402
from ltx2.inputs import StreamInput  # noqa: E402
from ltx2.ops import TorchOps  # noqa: E402
from ltx2.transformer import LTXAVTransformer  # noqa: E402
from ltx2.config import official_19b_header  # noqa: E402
from model_loaders.quant import fp8 as fp8_mod  # noqa: E402
from model_loaders.quant import gguf_dequant as gd  # noqa: E402
from model_loaders.quant import int8 as int8_mod  # noqa: E402
from model_loaders.quant import kquants  # noqa: E402
from model_loaders.quant.ops import quantized_operations  # noqa: E402


def header(preset: str) -> dict:
    h = official_19b_header()
    if preset == "mid":
        h.update(num_layers=8, num_attention_heads=8, attention_head_dim=64, audio_num_attention_heads=8,
                 audio_attention_head_dim=32, cross_attention_dim=512, audio_cross_attention_dim=256, caption_channels=512)
    return h


def random_gguf(shape, qtype: int, device) -> torch.Tensor:
    """Random valid GGUF bytes made on ``device`` (timing runs: speed does not depend on values)."""
    out_f, in_f = shape
    block, size = gd.BLOCK[qtype]
    raw = torch.randint(0, 256, (out_f * in_f // block, size), dtype=torch.uint8, device=device)
    scale = torch.full((raw.shape[0], 2), 1e-3, dtype=torch.float16, device=device).view(torch.uint8)  # (n, 4)
    if qtype == gd.Q8_0:
        raw[:, 0:2] = scale[:, 0:2]
    else:  # Q4_K: d and dmin
        raw[:, 0:4] = scale
    return raw.reshape(out_f, -1)


def quantize_linear(mod, fmt: str, fast: bool = False) -> None:
    """Replace a bf16 QuantLinear weight in place by ``fmt`` (on the weight's device)."""
    w = mod.weight.data
    if fmt in ("fp8", "fp8_upcast"):
        q, s = fp8_mod.quantize(w)
        mod.weight = torch.nn.Parameter(q, requires_grad=False)
        mod.weight_scale = torch.nn.Parameter(s, requires_grad=False)
    elif fmt == "int8":
        q, s = int8_mod.quantize(w)
        mod.weight = torch.nn.Parameter(q, requires_grad=False)
        mod.weight_scale = torch.nn.Parameter(s, requires_grad=False)
    elif fmt in ("Q8_0", "Q4_K") and fast:
        qtype = gd.Q4_K if fmt == "Q4_K" else gd.Q8_0
        mod.gguf_qtype, mod.gguf_shape = qtype, tuple(w.shape)
        mod.weight = torch.nn.Parameter(random_gguf(tuple(w.shape), qtype, w.device), requires_grad=False)
    elif fmt in ("Q8_0", "Q4_K"):
        import gguf

        x = w.float().cpu().numpy()
        raw = kquants.quantize_q4_k(x) if fmt == "Q4_K" else np.ascontiguousarray(gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0))
        mod.gguf_qtype, mod.gguf_shape = (gd.Q4_K if fmt == "Q4_K" else gd.Q8_0), tuple(w.shape)
        mod.weight = torch.nn.Parameter(torch.from_numpy(raw).to(w.device), requires_grad=False)


def build(cfg: TransformerConfig, fmt: str, device, seed: int = 0) -> LTXAVTransformer:
    """Random-weight transformer in ``fmt``; block by block so only one bf16 block exists at a time."""
    # "fp8": FP8 x FP8 torch._scaled_mm where the GPU has it; "fp8_upcast": the same fp8 weights
    # upcast to bf16 per layer (weight-only), for comparison.
    ops = quantized_operations(TorchOps, dense_dtype=torch.bfloat16, scaled_mm=fmt != "fp8_upcast")
    with torch.device("meta"):
        model = LTXAVTransformer(cfg, operations=ops, dtype=torch.bfloat16)
    g = torch.Generator(device=device).manual_seed(seed)  # random weights made on the device
    fast = cfg.num_layers >= 48  # 19B: GGUF bytes drawn at random on the device instead of quantized on the CPU
    for name, module in model.named_modules():
        own = list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False))
        for pname, p in own:
            t = torch.randn(p.shape, generator=g, dtype=torch.float32, device=device)
            t = t / (p.shape[-1] ** 0.5) if p.ndim == 2 and pname == "weight" else t * 0.1
            new = torch.nn.Parameter(t.to(device=device, dtype=torch.bfloat16), requires_grad=False)
            setattr(module, pname, new)
        if hasattr(module, "gguf_qtype") and fmt != "bf16" and not fp8_mod.keep_high_precision(name):
            quantize_linear(module, fmt, fast)
    return model.eval()


def inputs(cfg, device, width, height, frames, fps=24.0):
    F_, H_, W_ = (frames - 1) // 8 + 1, height // 32, width // 32
    T_a = round(frames / fps * 25)
    g = torch.Generator(device="cpu").manual_seed(7)
    dt = torch.bfloat16
    v = torch.randn(1, 128, F_, H_, W_, generator=g).to(device, dt)
    a = torch.randn(1, 8, T_a, 16, generator=g).to(device, dt)
    cw = cfg.caption_channels
    ctx = torch.randn(1, 1024 if cfg.num_layers == 48 else 128, cw, generator=g).to(device, dt)
    s = torch.tensor([0.6], device=device)
    vi = StreamInput(P.patchify_video(v), s[:, None], s, P.video_positions(1, F_, H_, W_, fps).to(device), ctx)
    ai = StreamInput(P.patchify_audio(a), s[:, None], s, P.audio_positions(1, T_a).to(device), ctx)
    return vi, ai


def bytes_per_param(model) -> float:
    n_lin, b_lin = 0, 0
    for m in model.modules():
        if hasattr(m, "gguf_qtype"):
            n_lin += m.in_features * m.out_features
            b_lin += m.weight.numel() * m.weight.element_size()
    return b_lin / max(n_lin, 1)


def timed(model, vi, ai, device, reps):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    with torch.no_grad():
        out = model(vi, ai)
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            out = model(vi, ai)
        sync()
    return (time.perf_counter() - t0) / reps, torch.cat([out[0].float().flatten(), out[1].float().flatten()])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="bf16", choices=("bf16",), help="compute dtype (bf16)")
    ap.add_argument("--preset", choices=("mid", "19b"), default="mid")
    ap.add_argument("--formats", default="bf16,fp8,int8,Q8_0,Q4_K")
    ap.add_argument("--size", default=None, help="WxHxF; default 256x256x25 (mid) / 768x512x121 (19b)")
    ap.add_argument("--reps", type=int, default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cfg = TransformerConfig.from_header(header(args.preset))
    size = args.size or ("768x512x121" if args.preset == "19b" else "256x256x25")
    w, h, f = (int(x) for x in size.split("x"))
    reps = args.reps or (3 if device.type == "cuda" else 2)
    vi, ai = inputs(cfg, device, w, h, f)
    result = {"bench": "quant", "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "preset": args.preset, "size": size, "fp8_scaled_mm": fp8_mod.scaled_mm_available(device), "formats": {}}
    ref = None
    for fmt in args.formats.split(","):
        if device.type == "cuda":
            torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(device)
        try:
            model = build(cfg, fmt, device)
            sec, out = timed(model, vi, ai, device, reps)
        except torch.cuda.OutOfMemoryError:
            result["formats"][fmt] = {"error": "out of memory"}
            model = None; gc.collect(); torch.cuda.empty_cache()
            continue
        entry = {"bytes_per_param_linear": round(bytes_per_param(model), 4), "s_per_forward": round(sec, 4)}
        if device.type == "cuda":
            entry["peak_vram_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        if fmt == "bf16":
            ref = out
        elif ref is not None:
            entry["rel_err_vs_bf16"] = float(((out - ref).norm() / ref.norm()).item())
            entry["speed_vs_bf16"] = round(result["formats"]["bf16"]["s_per_forward"] / sec, 3)
        result["formats"][fmt] = entry
        del model, out; gc.collect()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
