"""Quantized matmul kernels for ``QuantLinear`` and the GGUF dequantized-weight cache.

``quantized_linear(layer, x, raw, bias)`` is the one entry ``ops.QuantLinear.forward`` calls
before its dequantize-then-``F.linear`` path; it returns ``None`` when no kernel applies, so
the plain path stays the fallback everywhere (CPU, old GPUs, LoRA patches applied per call).

=========  ==================================================================================
weight     kernel
=========  ==================================================================================
fp8 e4m3   FP8 x FP8 ``torch._scaled_mm`` (CUDA >= 8.9).  Activations are quantized per row
           (token) with ``amax / 448`` — rowwise scales on Hopper+ (``scale_a (M, 1)``,
           ``scale_b (1, N)``), one dynamic per-tensor scale before; a file's static
           ``input_scale`` is used as is.
int8       W8A8 ``torch._int_mm`` (int8 x int8 -> int32, CUDA): activations quantized per row
           with ``amax / 127``, output ``acc · s_x · s_w + b``.  ``s_w`` per output channel
           (quantize-on-load) or one scalar (ComfyUI ``int8_tensorwise``).
GGUF       no quantized kernel: the dequantized weight is cached on the device while the
           cache budget (``MatmulSettings.gguf_cache_bytes``) lasts, so the cached layers skip
           the per-call dequantization.
=========  ==================================================================================

Activation quantization is a row reduction plus a cast: written in plain torch so that
``torch.compile`` of the transformer block (``ltx2.transformer.CompileOptions``) fuses it into
the RMSNorm / modulation kernel before the matmul.  Settings come from ``active(...)`` (the
host sets them per model call from ``transformer_options["openltx_quant"]``).  No host import.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
INT8_MAX = 127.0
MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class MatmulSettings:
    """How quantized Linears multiply.

    Attributes:
        fp8 / int8: ``"auto"`` (the quantized kernel where the GPU has it), ``"on"`` (also on
            CPU — emulated where torch has no CPU kernel; for tests), ``"off"`` (dequantize
            the weight and run a float matmul, weight-only quantization).
        fp8_rowwise: per-row activation scales for fp8 (``None``: on Hopper and newer).
        gguf_cache_bytes: device memory for dequantized GGUF weights (0: no cache).
    """

    fp8: str = "auto"
    int8: str = "auto"
    fp8_rowwise: bool | None = None
    gguf_cache_bytes: int = 0

    def __post_init__(self) -> None:
        for name in ("fp8", "int8"):
            if getattr(self, name) not in MODES:
                raise ValueError(f"MatmulSettings.{name} must be one of {MODES}, got {getattr(self, name)!r}")
        if self.gguf_cache_bytes < 0:
            raise ValueError(f"gguf_cache_bytes must be >= 0, got {self.gguf_cache_bytes}")


DEFAULT = MatmulSettings()
_stack: list[MatmulSettings] = [DEFAULT]


def current() -> MatmulSettings:
    return _stack[-1]


@contextlib.contextmanager
def active(settings: MatmulSettings | None):
    """Make ``settings`` current for the duration (``None``: keep the current ones)."""
    if settings is None:
        yield current()
        return
    _stack.append(settings)
    try:
        if settings.gguf_cache_bytes == 0:
            CACHE.clear()
        yield settings
    finally:
        _stack.pop()


# --------------------------------------------------------------------------- capability
@functools.lru_cache(maxsize=None)
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def cuda_capability(device: torch.device) -> tuple[int, int] | None:
    if device.type != "cuda":
        return None
    return _capability(device.index if device.index is not None else torch.cuda.current_device())


def fp8_kernel_available(device: torch.device) -> bool:
    """FP8 tensor cores (compute capability >= 8.9) and ``torch._scaled_mm``."""
    cap = cuda_capability(device)
    return cap is not None and cap >= (8, 9) and hasattr(torch, "_scaled_mm")


def int8_kernel_available(device: torch.device) -> bool:
    """INT8 tensor cores (Turing and newer) and ``torch._int_mm``."""
    cap = cuda_capability(device)
    return cap is not None and cap >= (7, 5) and hasattr(torch, "_int_mm")


def _use(mode: str, available: bool) -> bool:
    return mode == "on" or (mode == "auto" and available)


# --------------------------------------------------------------------------- activations
def quantize_rows(x2: torch.Tensor, qmax: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``(M, K)`` float → (``(M, K)`` ``dtype``, ``(M, 1)`` fp32 scales ``amax_row / qmax``).

    Integer targets are rounded to nearest; fp8 targets round in the cast.  A zero row gets
    scale 1 (its values stay 0).
    """
    amax = x2.abs().amax(dim=-1, keepdim=True).to(torch.float32)
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    scaled = x2.to(torch.float32) / scale
    if dtype == torch.int8:
        scaled = torch.round(scaled)
    return scaled.clamp(-qmax, qmax).to(dtype), scale


def quantize_tensor_fp8(x2: torch.Tensor, scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor fp8: (``(M, K)`` e4m3, scalar fp32 scale), dynamic ``amax / 448`` when ``scale`` is None."""
    if scale is None:
        amax = x2.abs().amax().to(torch.float32)
        scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    scale = scale.to(device=x2.device, dtype=torch.float32).reshape(())
    return (x2.to(torch.float32) / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def _pad_rows(t: torch.Tensor, multiple: int, minimum: int = 0) -> torch.Tensor:
    rows = t.shape[0]
    target = max(-(-rows // multiple) * multiple, minimum)
    if target == rows:
        return t
    view = t.view(torch.uint8) if t.dtype == FP8 else t
    view = F.pad(view, (0, 0, 0, target - rows))
    return view.view(FP8) if t.dtype == FP8 else view


# --------------------------------------------------------------------------- fp8
def _scaled_mm(a, b, scale_a, scale_b, bias, out_dtype):
    """``torch._scaled_mm``, emulated in fp32 where this torch has no kernel for the device."""
    try:
        return torch._scaled_mm(a, b, scale_a=scale_a, scale_b=scale_b, bias=bias, out_dtype=out_dtype)
    except (RuntimeError, NotImplementedError, AttributeError):
        if a.device.type == "cuda":
            raise
    out = (a.to(torch.float32) * scale_a) @ (b.to(torch.float32) * scale_b)
    if bias is not None:
        out = out + bias.to(torch.float32)
    return out.to(out_dtype)


def fp8_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    weight_scale: torch.Tensor,
    input_scale: torch.Tensor | None,
    bias: torch.Tensor | None,
    rowwise: bool,
) -> torch.Tensor | None:
    """``x @ (W_fp8 · s_w)ᵀ + b`` as an FP8 x FP8 GEMM; ``None`` when the shapes do not fit.

    Args:
        x: ``(..., K)`` bf16 / fp16; weight: ``(N, K)`` e4m3; weight_scale: scalar fp32;
        input_scale: a file's static activation scale (scalar) or ``None`` (dynamic);
        rowwise: per-row activation scales (ignored with a static ``input_scale``).
    Returns:
        ``(..., N)`` in ``x.dtype``.
    """
    n, k = weight.shape
    if x.dtype not in (torch.bfloat16, torch.float16) or k % 16 or n % 16:
        return None
    x2 = x.reshape(-1, k)
    rows = x2.shape[0]
    w_scale = weight_scale.to(device=x.device, dtype=torch.float32)
    if input_scale is None and rowwise:
        xq, s_x = quantize_rows(x2, FP8_MAX, FP8)
        s_w = w_scale.reshape(1, 1).expand(1, n).contiguous()  # rowwise wants (1, N)
    else:
        xq, s_x = quantize_tensor_fp8(x2, input_scale)
        s_w = w_scale.reshape(())
    if x.device.type == "cuda" and rows % 16:  # cuBLASLt wants every GEMM dim divisible by 16
        xq = _pad_rows(xq, 16)
        if s_x.ndim == 2:
            s_x = F.pad(s_x, (0, 0, 0, xq.shape[0] - rows), value=1.0)
    out = _scaled_mm(xq, weight.t(), s_x, s_w, None if bias is None else bias.to(x.dtype), x.dtype)
    return out[:rows].reshape(*x.shape[:-1], n)


# --------------------------------------------------------------------------- int8
def _int_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch._int_mm`` (int8 x int8 -> int32); the CUDA kernel wants M > 16 and M % 8 == 0."""
    rows = a.shape[0]
    if a.device.type == "cuda":
        a = _pad_rows(a, 8, minimum=32)
    return torch._int_mm(a, b)[:rows]


def int8_linear(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor | None:
    """``x @ (q · s_w)ᵀ + b`` as an INT8 x INT8 GEMM with per-row activation scales.

    Args:
        x: ``(..., K)`` float; weight: ``(N, K)`` int8; weight_scale: ``(N,)`` or scalar fp32.
    Returns:
        ``(..., N)`` in ``x.dtype``, or ``None`` when the shapes do not fit the kernel.
    """
    n, k = weight.shape
    if k % 8 or n % 8:
        return None
    x2 = x.reshape(-1, k)
    xq, s_x = quantize_rows(x2, INT8_MAX, torch.int8)
    acc = _int_mm(xq, weight.t())  # (M, N) int32; weight.t() is the column-major operand cuBLASLt wants
    s_w = weight_scale.to(device=x.device, dtype=torch.float32).reshape(1, -1)
    out = acc.to(torch.float32).mul_(s_x).mul_(s_w)
    if bias is not None:
        out = out.add_(bias.to(torch.float32))
    return out.to(x.dtype).reshape(*x.shape[:-1], n)


# --------------------------------------------------------------------------- GGUF cache
class DequantCache:
    """Dequantized GGUF weights kept on the device, first come first kept, within a budget.

    The forward visits the layers in the same order every call, so an LRU policy under a
    budget smaller than the model would miss on every layer; keeping the first layers that
    fit gives a hit rate of budget / model size.  An entry is tied to the exact stored bytes
    (tensor identity, storage pointer, version counter) and the compute dtype, so a LoRA
    patch or an offload move never serves a stale weight.  ``clear()`` frees everything (also
    done when a call runs with a zero budget).
    """

    def __init__(self) -> None:
        self._entries: "weakref.WeakKeyDictionary[torch.nn.Module, tuple]" = weakref.WeakKeyDictionary()
        self.bytes = 0

    @staticmethod
    def _key(stored: torch.Tensor, device: torch.device, dtype: torch.dtype) -> tuple:
        return (id(stored), stored.data_ptr(), stored._version, stored.device, device, dtype)

    def get(self, layer: torch.nn.Module, device: torch.device, dtype: torch.dtype, budget: int, make):
        """``layer``'s dequantized weight on ``device`` in ``dtype``: cached, or ``make()``."""
        key = self._key(layer.weight, device, dtype)
        entry = self._entries.get(layer)
        if entry is not None:
            if entry[0] == key:
                return entry[1]
            self._drop(layer)
        weight = make()
        size = weight.numel() * weight.element_size()
        if self.bytes + size <= budget:
            self._entries[layer] = (key, weight)
            self.bytes += size
        return weight

    def _drop(self, layer) -> None:
        key, weight = self._entries.pop(layer)
        self.bytes -= weight.numel() * weight.element_size()

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


CACHE = DequantCache()


# --------------------------------------------------------------------------- entry point
_FAILED: set[str] = set()


def _failed_once(kind: str, err: Exception) -> None:
    if kind not in _FAILED:
        _FAILED.add(kind)
        logging.getLogger(__name__).warning(
            "OpenLTX: the %s matmul kernel failed (%s); %s layers fall back to dequantized matmuls", kind, err, kind
        )


def quantized_linear(layer, x: torch.Tensor, raw: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """The output of ``layer`` (a ``QuantLinear``) through a quantized kernel, or ``None``.

    ``raw`` is the stored weight already on ``x``'s device; callers with per-call weight
    patches (LoRA in ComfyUI's low-VRAM mode) must not come here.
    """
    settings = current()
    kind = layer.quant_kind
    device = x.device
    if kind == "fp8" and raw.dtype == FP8 and layer._scaled_mm and "fp8" not in _FAILED:
        if _use(settings.fp8, fp8_kernel_available(device)):
            rowwise = settings.fp8_rowwise
            if rowwise is None:
                cap = cuda_capability(device)
                rowwise = cap is not None and cap >= (9, 0)
            try:
                return fp8_linear(x, raw, layer.weight_scale, layer.input_scale, bias, rowwise)
            except RuntimeError as err:  # an unsupported shape / layout on this torch
                _failed_once("fp8", err)
    elif kind == "int8" and "int8" not in _FAILED:
        if _use(settings.int8, int8_kernel_available(device)):
            try:
                return int8_linear(x, raw, layer.weight_scale, bias)
            except RuntimeError as err:
                _failed_once("int8", err)
    elif kind == "gguf" and settings.gguf_cache_bytes > 0:
        weight = CACHE.get(layer, device, x.dtype, settings.gguf_cache_bytes, lambda: layer._dequant(raw, x.dtype))
        return F.linear(x, weight, bias)
    return None
