"""Seconds and peak memory for encoding one prompt with Gemma 3, per device mode.

Random Gemma 3 weights (nothing downloaded), held in CPU memory as the loader holds them; one
1024-token prompt.  Modes: ``resident`` (weights on the compute device: transformers'
``Gemma3TextModel`` forward, exactly what ltx-core's encoder runs, so this is also the
reference's cost), ``streamed`` (weights in CPU RAM, layers copied to the device one at a time,
next one prefetched; budget = 2 layers + the norm, the smallest), and ``cpu`` (all on the CPU;
mid-size only, with a CUDA device).  Prints ONE JSON line.

    python benchmarks/text_encoder.py                                   # mid-size, CPU, fp32
    python benchmarks/text_encoder.py --device cuda --dtype bf16 --full # Gemma 3 12B shapes

``--full`` needs ~24 GB of CPU RAM for the bf16 weights (made on the GPU, one tensor at a time)
and reports peak VRAM per mode (``torch.cuda.max_memory_allocated``); on the CPU the peak is
the bytes of weights materialized on the compute device (our bookkeeping) plus the RSS growth.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_loaders.gemma_loading import GEMMA3_FAMILY, SLIDING_PATTERN, GemmaSource, StoredWeight, build_gemma_model  # noqa: E402
from host.gemma_streaming import GemmaEncoder  # noqa: E402
from model_loaders.gemma_tokenizer import GemmaTokenizerBase  # noqa: E402

SHAPES = {
    "mid": dict(vocab_size=32000, hidden_size=1024, intermediate_size=4096, num_hidden_layers=8,
                num_attention_heads=8, num_key_value_heads=4, head_dim=128),
    "full": dict(vocab_size=262208, hidden_size=3840, intermediate_size=15360, num_hidden_layers=48,
                 num_attention_heads=16, num_key_value_heads=8, head_dim=256),
}  # fmt: skip
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class RandomTokenizer(GemmaTokenizerBase):
    """A 300-token prompt of fixed random ids (left-padded to 1024 like the real one)."""

    def __init__(self, vocab: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = [2] + torch.randint(4, vocab, (299,), generator=g).tolist()

    def encode_ids(self, text: str) -> list[int]:
        return self.ids


def make_source(shapes: dict) -> GemmaSource:
    config = dict(GEMMA3_FAMILY, **shapes)
    config["layer_types"] = ["full_attention" if (i + 1) % SLIDING_PATTERN == 0 else "sliding_attention"
                             for i in range(shapes["num_hidden_layers"])]  # fmt: skip
    model = build_gemma_model(config, "cpu")
    tensors = {n: ("<memory>", n, "BF16", tuple(p.shape)) for n, p in model.named_parameters()}
    return GemmaSource("<random>", [], config, tensors)


def random_weights(source: GemmaSource, dtype: torch.dtype, device: str) -> dict[str, StoredWeight]:
    """Random weights in CPU memory (made on ``device`` for speed, one tensor at a time)."""
    g = torch.Generator(device=device).manual_seed(0)
    out = {}
    for name, (*_, shape) in source.tensors.items():
        std = 0.5 if name.endswith("norm.weight") else 1.0 / math.sqrt(shape[-1])
        out[name] = StoredWeight((torch.randn(shape, generator=g, device=device, dtype=torch.float32) * std)
                                 .to(dtype).to("cpu"))  # fmt: skip
    return out


def run(source, weights, dtype, device, budget, tokenizer, repeats: int):
    enc = GemmaEncoder(source, dtype=dtype, device=device, budget_bytes=budget, tokenizer=tokenizer)
    enc.weights = weights
    enc.load()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        states, _ = enc.encode("prompt")
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    last = states[-1].float()
    out = {"seconds": round(min(times), 4), "weights_on_device_peak_gb": round(enc.peak_bytes / 2**30, 3)}
    if device.type == "cuda":
        out["peak_vram_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    out["rss_growth_gb"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 2**20, 3)
    del states
    enc.unload()
    return out, last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, choices=list(DTYPES))
    ap.add_argument("--full", action="store_true", help="Gemma 3 12B shapes (needs --device cuda and ~24 GB RAM)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype or ("bf16" if device.type == "cuda" else "fp32")]
    shapes = SHAPES["full" if args.full else "mid"]
    source = make_source(shapes)
    weights = random_weights(source, dtype, "cuda" if device.type == "cuda" else "cpu")
    tokenizer = RandomTokenizer(shapes["vocab_size"])

    results = {}
    results["resident"], out_res = run(source, weights, dtype, device, None, tokenizer, args.repeats)
    layer_bytes = sum(w.nbytes(dtype) for n, w in weights.items() if n.startswith("layers.0."))
    budget = 2 * layer_bytes + sum(w.nbytes(dtype) for n, w in weights.items() if n.startswith("norm."))
    results["streamed"], out_str = run(source, weights, dtype, device, budget, tokenizer, args.repeats)
    if device.type == "cuda" and not args.full:
        results["cpu"], _ = run(source, weights, dtype, torch.device("cpu"), None, tokenizer, 1)
    line = {
        "benchmark": "text_encoder",
        "config": "gemma3-12b" if args.full else "gemma3-mid",
        "shapes": shapes,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "dtype": str(dtype).replace("torch.", ""),
        "tokens": 1024,
        "weights_gb": round(source.weight_bytes(dtype) / 2**30, 3),
        "modes": results,
        "streamed_equals_resident": bool(torch.equal(out_res, out_str)),
        "streaming_budget_gb": round(budget / 2**30, 3),
    }
    print(json.dumps(line))


if __name__ == "__main__":
    main()
