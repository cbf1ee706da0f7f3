"""INT8 weights with one fp32 scale per output channel (symmetric, ``W = q * scale[:, None]``).

A scalar scale (ComfyUI's ``int8_tensorwise``) works too: scales are broadcast as ``(out, 1)``.
"""

from __future__ import annotations

import torch

INT8_MAX = 127.0


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[out, in]`` float -> (int8 ``[out, in]``, fp32 ``[out]``) with ``amax_row / 127`` per row."""
    w = weight.to(torch.float32)
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / INT8_MAX, torch.ones_like(amax))
    q = torch.round(w / scale[:, None]).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def requantize(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Float weight -> int8 under the existing per-row scales (clamped)."""
    s = scale.to(device=weight.device, dtype=torch.float32).reshape(-1, 1)
    return torch.round(weight.to(torch.float32) / s).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)


def dequantize(weight: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return weight.to(dtype) * scale.to(device=weight.device, dtype=dtype).reshape(-1, 1)
