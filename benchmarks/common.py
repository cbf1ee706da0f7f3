"""Pieces the benchmark scripts share: random weights, timing, peak RSS, preset configs.

The scripts run as ``python benchmarks/X.py``, so this folder is on ``sys.path`` and they
``import common``.
"""

from __future__ import annotations

import math
import resource
import time

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def fill_random_(model: torch.nn.Module, seed: int) -> None:
    """Random weights of a sane scale, generated on the model's device."""
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "table" not in name:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]), generator=g)
            elif name.endswith("norm.weight"):
                p.normal_(1.0, 0.1, generator=g)
            else:
                p.normal_(0.0, 0.2, generator=g)


def timed(fn, iters: int, device: str) -> tuple[float, object]:
    """Seconds per call of ``fn`` after one warm-up call (allocator, kernels), and its last output."""
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters, out


def peak_rss_bytes() -> int:
    """This process's peak resident memory: ``VmHWM`` on Linux, else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def preset_header(overrides: dict, layers: int = 0) -> dict:
    """The official 19B ``config.transformer`` with a preset's overrides (and a block count)."""
    from ltx2.config import official_19b_header

    header = official_19b_header()
    header.update(overrides)
    if layers:
        header["num_layers"] = layers
    return header
