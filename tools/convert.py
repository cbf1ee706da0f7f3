"""Convert an LTX-2 bf16 checkpoint to fp8-scaled safetensors (official layout) or GGUF.

    python tools/convert.py ltx-2-19b-dev.safetensors --to fp8 --out ltx-2-19b-dev-fp8.safetensors
    python tools/convert.py ltx-2-19b-dev.safetensors --to gguf --qtype Q4_K --out ltx-2-19b-dev-Q4_K.gguf

fp8: every transformer Linear except Lightricks' high-precision list (embeddings, adaLN,
projections, caption layers, blocks 0 and 43-47) becomes e4m3 + fp32 ``weight_scale``; all
other tensors (and components: VAEs, connectors, vocoder) and the header metadata are kept,
and the header gains ``_quantization_metadata`` listing the fp8 layers, as in the published
``ltx-2-19b-dev-fp8.safetensors``.
GGUF: the transformer only (tensor names = bare keys), the same layers in ``--qtype``
(Q8_0, Q6_K, Q5_K, Q5_0, Q4_K, Q4_0; a layer whose row length does not fit the block size
falls back to Q8_0, else BF16), high-precision layers in BF16, 1-D tensors in F32, the header
config (when the source has one) in the plain string KV ``config`` as community GGUFs carry
it, ``model_version`` likewise.  Works on any layout the loader reads (with or without header
metadata).  Prints one JSON line describing the output.
Memory: the output is built in RAM (about the size of the output file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from model_loaders.checkpoint import read_checkpoint  # noqa: E402
from model_loaders.quant import fp8 as fp8_mod  # noqa: E402
from model_loaders.quant import gguf_dequant as gd  # noqa: E402
from model_loaders.quant import gguf_format  # noqa: E402

GGUF_QTYPES = {"Q8_0": gd.Q8_0, "Q6_K": gd.Q6_K, "Q5_K": gd.Q5_K, "Q5_0": gd.Q5_0, "Q4_K": gd.Q4_K, "Q4_0": gd.Q4_0,
               "BF16": gd.BF16, "F16": gd.F16}


def _is_linear_weight(bare: str, shape) -> bool:
    return bare.endswith(".weight") and len(shape) == 2


def _quantizable(bare: str, shape) -> bool:
    return _is_linear_weight(bare, shape) and not fp8_mod.keep_high_precision(bare[: -len(".weight")])


def to_fp8(src: str, out: str) -> dict:
    from safetensors import safe_open
    from safetensors.torch import save_file

    info = read_checkpoint(src)
    prefix = info.transformer_prefix
    tkeys = set(info.components.get("transformer", []))
    tensors, n_q = {}, 0
    with safe_open(src, framework="pt") as f:
        for key in f.keys():
            t = f.get_tensor(key)
            if key in tkeys and _quantizable(key[len(prefix):], t.shape):
                q, s = fp8_mod.quantize(t)
                tensors[key], tensors[key[: -len(".weight")] + ".weight_scale"] = q, s
                n_q += 1
            else:
                tensors[key] = t.contiguous()
    metadata = dict(info.metadata)
    layers = {k[: -len(".weight_scale")]: {"format": "float8_e4m3fn"} for k in tensors if k.endswith(".weight_scale")}
    metadata["_quantization_metadata"] = json.dumps({"format_version": "1.0", "layers": layers})
    metadata["openltx_quantization"] = "fp8_scaled (per-tensor e4m3, official LTX-2 layer list)"
    save_file(tensors, out, metadata=metadata)
    return {"quantized_linears": n_q}


def _gguf_array(t: torch.Tensor, qtype: int) -> tuple[np.ndarray, int]:
    return gguf_format.encode_tensor(t.to(torch.float32).numpy(), qtype)


def to_gguf(src: str, out: str, qtype_name: str) -> dict:
    from safetensors import safe_open

    qtype = GGUF_QTYPES[qtype_name]
    info = read_checkpoint(src)
    prefix = info.transformer_prefix
    keys = info.components.get("transformer") or []
    if not keys:
        raise SystemExit(f"{src}: no LTX-2 transformer weights to convert")
    arrays, counts = {}, {}
    with safe_open(src, framework="pt") as f:
        for key in keys:
            bare = key[len(prefix):]
            t = f.get_tensor(key)
            want = qtype if _quantizable(bare, t.shape) else (gd.BF16 if t.ndim == 2 else gd.F32)
            arr, used = _gguf_array(t, want)
            arrays[bare] = (arr, used)
            counts[gd.NAMES[used]] = counts.get(gd.NAMES[used], 0) + 1
    gguf_format.write_gguf(out, arrays, info.config or None, model_version=info.metadata.get("model_version"))
    return {"tensor_types": counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="bf16/fp16/fp32 LTX-2 .safetensors (single file or transformer-only)")
    parser.add_argument("--to", choices=("fp8", "gguf"), required=True)
    parser.add_argument("--qtype", choices=tuple(GGUF_QTYPES), default="Q8_0", help="GGUF type of the quantized Linears")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    info = read_checkpoint(args.src)  # a clear error for files that are not LTX-2 checkpoints
    if info.format != "safetensors":
        parser.error(f"{args.src} is a {info.format.upper()} file; convert from the .safetensors checkpoint")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        extra = to_fp8(args.src, args.out) if args.to == "fp8" else to_gguf(args.src, args.out, args.qtype)
    print(json.dumps({"src": args.src, "out": args.out, "format": args.to if args.to == "fp8" else f"gguf-{args.qtype}",
                      "size": os.path.getsize(args.out), "src_size": os.path.getsize(args.src), **extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
