"""FP8 (e4m3) per-tensor scaled weights: quantize, dequantize, the bf16 layer list.

Official LTX-2 fp8 layout (LTX2_SPEC 2.4): per quantized Linear ``weight`` float8_e4m3fn
``[out, in]``, ``weight_scale`` fp32 scalar (``W = W_fp8 * weight_scale``), optionally
``input_scale`` fp32 scalar (static activation scale for FP8 x FP8 GEMMs).  The embedding,
adaLN, projection and caption layers and whole blocks 0 and 43-47 stay bf16.
"""

from __future__ import annotations

import re

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448

# Bare layer names kept in high precision by Lightricks' recipe (ltx_core fp8 exclusion list).
_HIGH_PRECISION = re.compile(
    r"^(patchify_proj|audio_patchify_proj|proj_out|audio_proj_out|caption_projection(\..*)?|audio_caption_projection(\..*)?"
    r"|.*adaln_single.*|transformer_blocks\.(0|43|44|45|46|47)\..*)$"
)


def keep_high_precision(layer: str) -> bool:
    """True for a Linear (bare name, e.g. ``transformer_blocks.0.attn1.to_q``) that stays bf16."""
    return bool(_HIGH_PRECISION.match(layer))


def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[out, in]`` float -> (fp8 weight, fp32 scalar scale) with ``amax / 448`` per tensor."""
    w = weight.to(torch.float32)
    amax = w.abs().amax()
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    q = (w / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q, scale.reshape(())


def requantize(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Float weight -> fp8 under an existing scale (LoRA patches keep the layer's scale)."""
    s = scale.to(device=weight.device, dtype=torch.float32)
    return (weight.to(torch.float32) / s).clamp(-FP8_MAX, FP8_MAX).to(FP8)


def dequantize(weight: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``W_fp8 * scale`` in ``dtype`` (fp8 -> bf16/fp16/fp32 is exact; one rounding in the product)."""
    return weight.to(dtype) * scale.to(device=weight.device, dtype=dtype)


def scaled_mm_available(device: torch.device) -> bool:
    """FP8 tensor cores: CUDA compute capability >= 8.9 (Ada, Hopper, Blackwell) and ``_scaled_mm``.

    The FP8 x FP8 kernel itself lives in ``matmul.fp8_linear``.
    """
    from .matmul import fp8_kernel_available

    return fp8_kernel_available(device)
