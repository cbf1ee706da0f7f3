"""Block-streaming offload: streamed vs fully resident transformer forward, same weights.

Prints one JSON line: model bytes, budget, peak resident weight bytes (bookkeeping) and, on
CUDA, peak allocated memory, seconds per forward resident vs streamed and the slowdown, and
whether the two outputs are equal (max abs difference).

    python benchmarks/offload.py                            # CPU, simulated, mid config (fp32)
    python benchmarks/offload.py --device cuda --preset 19b --budget-gb 8 --dtype bf16
    python benchmarks/offload.py --device cuda --preset 19b --budget-gb 8 --dtype bf16 --fp8

``--preset 19b`` builds the full 19B shapes with random weights block by block (each block
is filled on the compute device and moved straight to pinned CPU memory, so the GPU never
holds more than the budget while building).  ``--fp8`` builds the model with the pack's own
quantized layers (``model_loaders.quant.ops.QuantLinear``) and stores the block Linears as
float8_e4m3fn + per-tensor scale with Lightricks' recipe (blocks 0 and 43-47 and the
non-block layers stay in ``--dtype``), so the run takes the same FP8 x FP8 matmul path as a
loaded fp8 file.  The resident run moves every block to the device afterwards (needs ~38 GB
for bf16 19B, ~22 GB with fp8).
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from ltx2.config import TransformerConfig  # noqa: E402
from ltx2.ops import TorchOps  # noqa: E402
from model_loaders.quant import fp8 as fp8_mod  # noqa: E402
from model_loaders.quant.ops import quantized_operations  # noqa: E402
from ltx2.transformer import LTXAVTransformer  # noqa: E402
from host.offload import enable_block_streaming, module_bytes  # noqa: E402
from common import DTYPES, fill_random_, preset_header, timed  # noqa: E402
from transformer import PRESETS, make_inputs  # noqa: E402  (benchmarks/transformer.py)

def pin_module_(module: torch.nn.Module, pin: bool) -> None:
    """Move ``module``'s tensors to (pinned) CPU memory in place of the device ones."""
    for m in module.modules():
        for kind in ("_parameters", "_buffers"):
            for name, t in list(getattr(m, kind).items()):
                if t is None:
                    continue
                host = t.detach().to("cpu")
                host = host.pin_memory() if pin else host
                getattr(m, kind)[name] = torch.nn.Parameter(host, requires_grad=False) \
                    if isinstance(t, torch.nn.Parameter) else host


def build(cfg: TransformerConfig, dtype, device: str, fp8: bool, seed: int = 0) -> LTXAVTransformer:
    """The model on the meta device, filled block by block: non-block layers on ``device``,
    blocks in (pinned) CPU memory."""
    ops = quantized_operations(TorchOps, dense_dtype=dtype) if fp8 else None  # the pack's QuantLinear
    model = LTXAVTransformer(cfg, operations=ops, dtype=dtype, device="meta").eval()
    blocks = model.transformer_blocks
    model.transformer_blocks = torch.nn.ModuleList()  # detach so the non-block part fills alone
    model.to_empty(device=device)
    fill_random_(model, seed)
    model.transformer_blocks = blocks
    for i, block in enumerate(blocks):
        block.to_empty(device=device)
        fill_random_(block, seed + 1 + i)
        if fp8 and not fp8_mod.keep_high_precision(f"transformer_blocks.{i}.x"):
            for m in block.modules():
                if hasattr(m, "gguf_qtype"):  # a QuantLinear: fp8 weight + per-tensor scale, as in the official files
                    q, scale = fp8_mod.quantize(m.weight.detach())
                    m.weight = torch.nn.Parameter(q, requires_grad=False)
                    m.weight_scale = torch.nn.Parameter(scale, requires_grad=False)
        if device != "cpu":
            pin_module_(block, pin=True)
    model.requires_grad_(False)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="mid")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    ap.add_argument("--fp8", action="store_true", help="block Linear weights as float8_e4m3fn + per-tensor scale")
    ap.add_argument("--budget-gb", type=float, default=0.0,
                    help="VRAM budget for weights in GiB (default: non-block layers + prefetch+2 blocks)")
    ap.add_argument("--prefetch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--layers", type=int, default=0, help="override the preset's block count")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    preset = PRESETS[args.preset]
    header = preset_header(preset["header"], args.layers)
    cfg = TransformerConfig.from_header(header)
    cuda = args.device.startswith("cuda")

    t0 = time.perf_counter()
    model = build(cfg, dtype, args.device, args.fp8)
    build_s = time.perf_counter() - t0
    total = module_bytes(model)
    if args.budget_gb:
        budget = int(args.budget_gb * 2**30)
    else:  # one resident block + the streaming window: clearly below the model size
        biggest = max(module_bytes(b) for b in model.transformer_blocks)
        budget = min(total - 1, total - sum(module_bytes(b) for b in model.transformer_blocks)
                     + (args.prefetch + 2) * biggest)
    video, audio = make_inputs(cfg, preset["frames"], preset["width"], preset["height"], preset["text"],
                               dtype, args.device)

    def run():
        with torch.inference_mode():
            return model(video, audio)

    # streamed
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    handle = enable_block_streaming(model, budget, args.device, prefetch=args.prefetch)
    t_streamed, (sv, sa) = timed(run, args.iters, args.device)
    peak_streamed = torch.cuda.max_memory_allocated() if cuda else None
    stats = handle.stats()
    # resident: every block on the device, no hooks
    handle.disable(device=args.device)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t_resident, (rv, ra) = timed(run, args.iters, args.device)
    peak_resident = torch.cuda.max_memory_allocated() if cuda else None

    diff = max((sv.float() - rv.float()).abs().max().item(), (sa.float() - ra.float()).abs().max().item())
    out = {
        "benchmark": "block_streaming",
        "preset": args.preset,
        "resolution": f"{preset['width']}x{preset['height']}x{preset['frames']}",
        "device": torch.cuda.get_device_name() if cuda else f"cpu simulated ({torch.get_num_threads()} threads)",
        "dtype": args.dtype,
        "block_weights": "fp8_e4m3fn+scale (QuantLinear, Lightricks recipe)" if args.fp8 else args.dtype,
        "layers": cfg.num_layers,
        "model_bytes": total,
        "budget_bytes": budget,
        "peak_resident_bytes": stats["peak_bytes"],
        "within_budget": stats["peak_bytes"] <= budget,
        "resident_blocks": stats["resident_blocks"],
        "streamed_blocks": stats["streamed_blocks"],
        "prefetch": args.prefetch,
        "resident_s": round(t_resident, 4),
        "streamed_s": round(t_streamed, 4),
        "slowdown": round(t_streamed / t_resident, 3),
        "outputs_equal": diff == 0.0,
        "max_abs_diff": diff,
        "build_s": round(build_s, 1),
    }
    if cuda:
        out["peak_alloc_gib_streamed"] = round(peak_streamed / 2**30, 2)
        out["peak_alloc_gib_resident"] = round(peak_resident / 2**30, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
