"""Attention kernels the transformer can run, behind one calling convention.

Every backend is a callable ``fn(q, k, v, mask) -> out`` with

* ``q`` ``(B, H, T, d)``, ``k`` / ``v`` ``(B, H, S, d)`` (heads split, RoPE applied);
* ``mask`` ``None`` or an additive bias in ``q.dtype`` broadcastable to ``(B, H, T, S)``
  (the transformer passes ``(B, 1, 1, S)`` for padded text and ``(B, 1, T, T)`` for the
  attention-strength mask of appended conditioning tokens);
* ``out`` ``(B, T, H*d)`` — the layout the output projection wants, and the one ComfyUI's
  attention functions return, so host kernels plug in without an extra transpose.

Backends (``get(name)``):

``sdpa``            ``F.scaled_dot_product_attention``, torch picks the kernel.
``sdpa_cudnn`` / ``sdpa_flash`` / ``sdpa_efficient`` / ``sdpa_math``
                    SDPA with that kernel first in torch's priority list (the others stay
                    behind it, so a shape the kernel cannot take still runs).
``auto``            the pack's choice by device, dtype and mask (see ``AutoAttention``).
``sage``            SageAttention (``pip install sageattention``, CUDA only): 8-bit Q·K,
                    used where it applies (fp16/bf16, no mask, head dim 64/128), ``auto``
                    elsewhere.  It is lossy, so it runs only when asked for.

``traceable`` says whether ``torch.compile`` may trace into the backend (the SDPA family);
the transformer hides the others behind a graph break.  Nothing here imports a host.
"""

from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel
except ImportError:  # pragma: no cover - torch < 2.3
    SDPBackend = sdpa_kernel = None


def _merge_heads(out: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, d)`` → ``(B, T, H*d)``."""
    return out.transpose(1, 2).flatten(2)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The plain path: torch's SDPA with whatever kernel it picks."""
    return _merge_heads(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``softmax(q·kᵀ/√d + mask)·v`` written out in float32 (tests compare kernels to it)."""
    scores = torch.einsum("bhtd,bhsd->bhts", q.float(), k.float()) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores + mask.float()
    out = torch.einsum("bhts,bhsd->bhtd", scores.softmax(-1), v.float())
    return _merge_heads(out).to(q.dtype)


class SDPAAttention:
    """SDPA with one kernel placed first in torch's priority list (CUDA only; plain on CPU)."""

    traceable = True

    def __init__(self, name: str, first: str | None) -> None:
        self.name = name
        self.first = first

    def priority(self) -> list | None:
        if self.first is None or SDPBackend is None:
            return None
        order = ["CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH"]
        order.remove(self.first)
        return [getattr(SDPBackend, n) for n in [self.first, *order]]

    def __call__(self, q, k, v, mask):
        order = self.priority()
        if order is None or q.device.type != "cuda":
            return sdpa_attention(q, k, v, mask)
        with sdpa_kernel(order, set_priority=True):
            return sdpa_attention(q, k, v, mask)

    def __repr__(self) -> str:
        return f"<attention {self.name}>"


@functools.lru_cache(maxsize=None)
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


class AutoAttention:
    """The pack's default: the SDPA kernel to try first, chosen by device, dtype and mask.

    * CPU, or fp32 on CUDA: plain SDPA (torch's choice).
    * CUDA fp16/bf16 without a mask: cuDNN first on Hopper and newer (its fused attention
      is the fastest SDPA kernel there), flash first before Hopper.
    * With a mask (padded text, attention-strength mask): memory-efficient first, the SDPA
      kernel that takes an arbitrary additive bias.
    The transformer drops masks that mask nothing before they get here.  The order is a
    starting point that ``benchmarks/gpu_matrix.sh`` measures against the alternatives.
    """

    traceable = True
    name = "auto"

    def __init__(self) -> None:
        self._cudnn = SDPAAttention("sdpa_cudnn", "CUDNN_ATTENTION")
        self._flash = SDPAAttention("sdpa_flash", "FLASH_ATTENTION")
        self._efficient = SDPAAttention("sdpa_efficient", "EFFICIENT_ATTENTION")

    def choose(self, q: torch.Tensor, mask: torch.Tensor | None):
        if q.device.type != "cuda" or q.dtype not in (torch.float16, torch.bfloat16):
            return sdpa_attention
        if mask is not None:
            return self._efficient
        index = q.device.index if q.device.index is not None else torch.cuda.current_device()
        return self._cudnn if _capability(index) >= (9, 0) else self._flash

    def __call__(self, q, k, v, mask):
        return self.choose(q, mask)(q, k, v, mask)

    def __repr__(self) -> str:
        return "<attention auto>"


def _sage_kernel():
    """``sageattention.sageattn`` or ``None`` when the package (or its triton) is missing."""
    try:
        from sageattention import sageattn
    except Exception:  # ImportError, or a broken build raising anything at import
        return None
    return sageattn


class SageAttention:
    """SageAttention where it applies, ``auto`` elsewhere (and when the package is missing)."""

    traceable = False
    name = "sage"
    HEAD_DIMS = (64, 128)

    def __init__(self, fallback=None) -> None:
        self.fallback = fallback or AutoAttention()
        self._warned = False

    @staticmethod
    def available() -> bool:
        return _sage_kernel() is not None

    def applies(self, q: torch.Tensor, mask: torch.Tensor | None) -> bool:
        return (
            mask is None
            and q.device.type == "cuda"
            and q.dtype in (torch.float16, torch.bfloat16)
            and q.shape[-1] in self.HEAD_DIMS
        )

    def __call__(self, q, k, v, mask):
        kernel = _sage_kernel() if self.applies(q, mask) else None
        if kernel is None:
            if not self._warned and mask is None and q.device.type == "cuda" and _sage_kernel() is None:
                logging.getLogger(__name__).warning(
                    "OpenLTX: attention 'sage' asked for but the sageattention package is not importable; using SDPA"
                )
                self._warned = True
            return self.fallback(q, k, v, mask)
        return _merge_heads(kernel(q, k, v, tensor_layout="HND", is_causal=False))

    def __repr__(self) -> str:
        return "<attention sage>"


BACKENDS = {
    "auto": AutoAttention(),
    "sdpa": SDPAAttention("sdpa", None),
    "sdpa_cudnn": SDPAAttention("sdpa_cudnn", "CUDNN_ATTENTION"),
    "sdpa_flash": SDPAAttention("sdpa_flash", "FLASH_ATTENTION"),
    "sdpa_efficient": SDPAAttention("sdpa_efficient", "EFFICIENT_ATTENTION"),
    "sdpa_math": SDPAAttention("sdpa_math", "MATH"),
    "sage": SageAttention(),
}


def get(name: str):
    """The backend called ``name`` (one of ``BACKENDS``); a clear error otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {', '.join(BACKENDS)}") from None


def is_traceable(fn) -> bool:
    """Whether ``torch.compile`` may trace into ``fn`` (plain functions: only ``sdpa_attention``)."""
    if fn is sdpa_attention or fn is reference_attention:
        return True
    return bool(getattr(fn, "traceable", False))
