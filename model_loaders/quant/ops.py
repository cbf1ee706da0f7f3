"""The ``operations`` namespace for quantized LTX-2 transformers.

``quantized_operations(base, gguf_layers=..., dense_dtype=...)`` returns a subclass of a
``comfy.ops`` namespace (``manual_cast`` / ``disable_weight_init``) whose ``Linear`` holds
its weight in whatever form the file gives and dequantizes it per call, on the input's device:

=========  ===========================================  ==========================================
weight     extra tensors                                 dequantized weight ``[out, in]``
=========  ===========================================  ==========================================
fp8 e4m3   ``weight_scale`` () [+ ``input_scale`` ()]    ``W_fp8 * weight_scale``; on CUDA >= 8.9 an
                                                         FP8 x FP8 ``torch._scaled_mm`` instead
int8       ``weight_scale`` (out,) or ()                 ``q * weight_scale``; on CUDA an INT8 x INT8
                                                         ``torch._int_mm`` instead
uint8      (GGUF bytes ``(out, row_bytes)``)             torch block dequantizer (``gguf_dequant``)
float      —                                             the weight itself (plain comfy behaviour)
=========  ===========================================  ==========================================

LoRA (ComfyUI's ModelPatcher): ``convert_weight`` turns the stored weight (or ComfyUI's
float32 copy of it) into the real float weight, ``calculate_weight`` adds the patches, and
``set_weight`` stores the sum back — requantized under the layer's existing scale for fp8 /
int8 (memory stays 1 byte per weight; the scale is not a patched key, so unpatching restores
the original exactly), kept dense in ``dense_dtype`` for GGUF layers (a K-quant re-fit per
patch would be slow and lossy).

In ComfyUI's low-VRAM path the patches are applied per call through the layer's
``weight_function`` list (``LowVramPatch``).  Its convention changed between hosts: 0.3.75
hands it the stored weight and converts / stores back through ``convert_weight`` /
``set_weight``; current ComfyUI hands it the dequantized float weight and ignores both.  So
``forward`` dequantizes first and applies a ``LowVramPatch``'s patches to the float weight itself
(``comfy.lora.calculate_weight`` on ``patches[key]``, the same on every host); any other weight
function gets the float weight, as core's own layers give it on both hosts.

Quantized kernels (fp8 ``_scaled_mm``, int8 ``_int_mm``) and the GGUF dequantized-weight cache
live in ``matmul.py``; ``forward`` tries them first and dequantizes when none applies.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F

from . import fp8 as fp8_mod
from . import gguf_dequant as gd
from . import int8 as int8_mod
from . import matmul as qmm

_FP8_TYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


def _run_every_op():
    try:
        import comfy.ops

        if hasattr(comfy.ops, "run_every_op"):
            comfy.ops.run_every_op()
    except ImportError:
        pass


def _low_vram_patch_class():
    try:
        import comfy.model_patcher

        return getattr(comfy.model_patcher, "LowVramPatch", None)
    except ImportError:  # outside ComfyUI (tools, benchmarks): there are no such patches
        return None


def _calculate_weight():
    try:
        from comfy.lora import calculate_weight
    except ImportError:  # only reached with a LowVramPatch, i.e. inside ComfyUI
        raise RuntimeError("a ComfyUI LowVramPatch without comfy.lora") from None
    return calculate_weight


def apply_weight_function(fn, weight: torch.Tensor) -> torch.Tensor:
    """One entry of a layer's ``weight_function`` / ``bias_function`` on the float ``weight``.

    A ``LowVramPatch`` (ComfyUI's per-call LoRA patch) is not called: its own ``__call__``
    expects the stored weight on ComfyUI 0.3.75 and the float weight on current ComfyUI.  Its
    patches (``patches[key]``, or the prefetched ``prepared_patches`` of current ComfyUI) are
    added here with ``comfy.lora.calculate_weight`` in float32.  Anything else is called with
    the float weight.
    """
    patch_class = _low_vram_patch_class()
    if patch_class is None or not isinstance(fn, patch_class):
        return fn(weight)
    prepared = getattr(fn, "prepared_patches", None)
    patches = prepared if prepared is not None else fn.patches[fn.key]
    out = _calculate_weight()(patches, weight.to(torch.float32), fn.key, intermediate_dtype=torch.float32)
    return out.to(weight.dtype)


def quantized_operations(
    base,
    gguf_layers: Mapping[str, tuple[int, tuple[int, int]]] | None = None,
    dense_dtype: torch.dtype = torch.bfloat16,
    scaled_mm: bool = True,
):
    """A subclass of the ops namespace ``base`` whose ``Linear`` takes quantized weights.

    Args:
        base: ``comfy.ops.manual_cast`` / ``disable_weight_init`` (or ``ltx2.ops.TorchOps``).
        gguf_layers: bare layer name -> (ggml type id, (out, in)) for GGUF-quantized Linears.
        dense_dtype: dtype of LoRA-patched GGUF weights.
        scaled_mm: allow ``torch._scaled_mm`` for fp8 layers on GPUs with fp8 tensor cores.
    """
    table = dict(gguf_layers or {})
    base_linear = base.Linear

    class QuantLinear(base_linear):
        _gguf_table = table
        _dense_dtype = dense_dtype
        _scaled_mm = scaled_mm

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.weight_scale = None
            self.input_scale = None
            self.gguf_qtype: int | None = None
            self.gguf_shape: tuple[int, int] | None = None

        def reset_parameters(self):  # weights come from the file
            return None

        # ------------------------------------------------------------------ loading
        def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
            wkey = prefix + "weight"
            weight = state_dict.get(wkey)
            scale = state_dict.pop(prefix + "weight_scale", None)
            in_scale = state_dict.pop(prefix + "input_scale", None)
            quantized = weight is not None and (weight.dtype in _FP8_TYPES or weight.dtype in (torch.int8, torch.uint8))
            if not quantized:
                if scale is not None or in_scale is not None:
                    error_msgs.append(f"{prefix}weight_scale/input_scale given for a layer whose weight is not quantized")
                return super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
            state_dict.pop(wkey)
            layer = prefix[:-1].removeprefix("diffusion_model.")
            if weight.dtype == torch.uint8:
                if layer not in self._gguf_table:
                    error_msgs.append(f"{wkey}: uint8 weight without a GGUF type")
                else:
                    self.gguf_qtype, self.gguf_shape = self._gguf_table[layer]
            elif scale is None:
                error_msgs.append(f"{wkey} is {weight.dtype} but {prefix}weight_scale is missing")
            # the base class loads the bias; the quantized tensors are attached afterwards so it
            # does not report them missing
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
            if wkey in missing_keys:
                missing_keys.remove(wkey)
            self.weight = torch.nn.Parameter(weight, requires_grad=False)
            if scale is not None:
                self.weight_scale = torch.nn.Parameter(scale.to(torch.float32), requires_grad=False)
            if in_scale is not None:
                self.input_scale = torch.nn.Parameter(in_scale.to(torch.float32), requires_grad=False)

        # ------------------------------------------------------------------ weights
        @property
        def quant_kind(self) -> str:
            w = self.weight
            if w.dtype == torch.uint8 and self.gguf_qtype is not None:
                return "gguf"
            if w.dtype in _FP8_TYPES:
                return "fp8"
            if w.dtype == torch.int8:
                return "int8"
            return "dense"

        def _dequant(self, raw: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
            if raw.dtype == torch.uint8 and self.gguf_qtype is not None:
                return gd.dequantize(raw, self.gguf_qtype, self.gguf_shape).to(dtype)
            if raw.dtype in _FP8_TYPES:
                return fp8_mod.dequantize(raw, self.weight_scale, dtype)
            if raw.dtype == torch.int8:
                return int8_mod.dequantize(raw, self.weight_scale, dtype)
            return raw.to(dtype)

        def dequantized_weight(self, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
            """The float weight ``[out, in]`` (for tests, LoRA and conversions)."""
            raw = self.weight if device is None else self.weight.to(device)
            return self._dequant(raw, dtype)

        def convert_weight(self, weight, inplace=False, **kwargs):
            """Stored weight (or ComfyUI's float32 copy of it) -> float32 real weight."""
            kind = self.quant_kind
            if kind == "gguf" and tuple(weight.shape) == tuple(self.weight.shape):
                raw = weight.to(torch.uint8) if weight.is_floating_point() else weight  # byte values survive fp32
                return gd.dequantize(raw, self.gguf_qtype, self.gguf_shape)
            if kind == "fp8":
                return weight.to(torch.float32) * self.weight_scale.to(device=weight.device, dtype=torch.float32)
            if kind == "int8":  # per-channel (out,) or tensorwise () scale
                return weight.to(torch.float32) * self.weight_scale.to(device=weight.device, dtype=torch.float32).reshape(-1, 1)
            return weight

        def set_weight(self, weight, inplace_update=False, seed=None, return_weight=False, **kwargs):
            kind = self.quant_kind
            if kind == "fp8":
                new = fp8_mod.requantize(weight, self.weight_scale).to(self.weight.dtype)
            elif kind == "int8":
                new = int8_mod.requantize(weight, self.weight_scale)
            else:
                new = weight.to(self._dense_dtype)
            if return_weight:
                return new
            if inplace_update and new.dtype == self.weight.dtype and new.shape == self.weight.shape:
                self.weight.data.copy_(new)
            else:
                self.weight = torch.nn.Parameter(new.to(self.weight.device), requires_grad=False)

        # ------------------------------------------------------------------ forward
        def forward(self, input, *args, **kwargs):
            if self.quant_kind == "dense":
                return super().forward(input, *args, **kwargs)
            _run_every_op()
            device, dtype = input.device, input.dtype
            raw = self.weight.to(device, non_blocking=True)
            bias = None if self.bias is None else self.bias.to(device=device, dtype=dtype, non_blocking=True)
            weight_fns = getattr(self, "weight_function", ())  # absent on plain torch layers
            for f in getattr(self, "bias_function", ()):
                bias = apply_weight_function(f, bias)
            if not weight_fns:  # quantized kernels / GGUF cache (matmul.py); per-call patches need the dequant path
                out = qmm.quantized_linear(self, input, raw, bias)
                if out is not None:
                    return out
            weight = self._dequant(raw, dtype)
            for f in weight_fns:
                weight = apply_weight_function(f, weight)
            return F.linear(input, weight, bias)

    class QuantOps(base):
        Linear = QuantLinear

    QuantOps.__name__ = f"Quantized{getattr(base, '__name__', 'Ops')}"
    return QuantOps
