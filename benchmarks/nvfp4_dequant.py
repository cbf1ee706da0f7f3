"""Seconds to dequantize one NVFP4 layer (model_loaders/quant/nvfp4.py), as the Gemma loader does per layer.

Gemma 3 12B's Linear shapes (``gemma_3_12B_it_fp4_mixed.safetensors`` stores 302 of its 336
Linears in NVFP4): q_proj 4096 x 3840, k/v_proj 2048 x 3840, o_proj 3840 x 4096, gate/up
15360 x 3840, down 3840 x 15360.  Random weights are quantized once, then dequantized to the
compute dtype; ``--reference`` also times comfy-kitchen's eager ``dequantize_nvfp4`` (when
installed) on the same tensors.  Prints ONE JSON line: seconds per layer shape and the estimate
for all 48 layers (7 Linears each).

    python benchmarks/nvfp4_dequant.py                       # CPU, bf16
    python benchmarks/nvfp4_dequant.py --device cuda --reference
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DTYPES, timed  # noqa: E402
from model_loaders.quant import nvfp4  # noqa: E402

SHAPES = {"q_proj": (4096, 3840), "kv_proj": (2048, 3840), "o_proj": (3840, 4096), "gate_up_proj": (15360, 3840),
          "down_proj": (3840, 15360)}  # fmt: skip
PER_LAYER = {"q_proj": 1, "kv_proj": 2, "o_proj": 1, "gate_up_proj": 2, "down_proj": 1}
LAYERS = 48


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bf16", choices=list(DTYPES))
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--reference", action="store_true", help="also time comfy-kitchen's eager dequantize")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    torch.set_grad_enabled(False)
    out = {"device": str(device), "dtype": args.dtype, "threads": torch.get_num_threads(), "seconds": {}}
    ref_seconds = {}
    for name, shape in SHAPES.items():
        w = torch.randn(shape, generator=torch.Generator().manual_seed(0)) / shape[1] ** 0.5
        packed, blocks, scale_2 = (t.to(device) for t in nvfp4.quantize(w))
        seconds, result = timed(lambda: nvfp4.dequantize(packed, blocks, scale_2, shape, dtype=dtype), args.iters,
                                args.device)  # fmt: skip
        out["seconds"][name] = round(seconds, 5)
        if args.reference:
            try:
                from comfy_kitchen.backends.eager.quantization import dequantize_nvfp4
            except ImportError:
                out["reference"] = "comfy-kitchen not installed"
            else:
                ref_s, ref = timed(lambda: dequantize_nvfp4(packed, scale_2, blocks, dtype), args.iters, args.device)
                ref_seconds[name] = round(ref_s, 5)
                out.setdefault("max_abs_diff_vs_reference", {})[name] = float((result.float() - ref.float()).abs().max())
    out["all_layers_seconds"] = round(LAYERS * sum(out["seconds"][n] * k for n, k in PER_LAYER.items()), 3)
    if ref_seconds:
        out["reference_seconds"] = ref_seconds
        out["reference_all_layers_seconds"] = round(LAYERS * sum(ref_seconds[n] * k for n, k in PER_LAYER.items()), 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
