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


# Scaled-down transformer shapes shared by the benchmark scripts (header overrides of the 19B
# config + the clip they run on).
SMALL_MID_PRESETS = {
    # 2 blocks, 512 / 256 wide, 4 heads: 3x8x8 latent = 192 video tokens (256x256, 17 frames)
    "small": dict(
        header=dict(num_layers=2, num_attention_heads=4, attention_head_dim=128, cross_attention_dim=512,
                    audio_num_attention_heads=4, audio_attention_head_dim=64, audio_cross_attention_dim=256,
                    caption_channels=256),
        frames=17, width=256, height=256, text=64,
    ),
    # 4 blocks, 1024 / 512 wide, 8 heads: 6x16x16 latent = 1,536 video tokens (512x512, 41 frames)
    "mid": dict(
        header=dict(num_layers=4, num_attention_heads=8, attention_head_dim=128, cross_attention_dim=1024,
                    audio_num_attention_heads=8, audio_attention_head_dim=64, audio_cross_attention_dim=512,
                    caption_channels=1024),
        frames=41, width=512, height=512, text=256,
    ),
}  # fmt: skip
