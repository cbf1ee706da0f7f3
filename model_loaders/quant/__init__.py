"""Quantized weight formats for the LTX-2 transformer.

Modules:
  gguf_dequant  torch GGUF block dequantizers (bit-exact with ``gguf.quants.dequantize``)
  kquants       numpy Q4_K / Q5_K / Q6_K quantizers (the ``gguf`` package has none)
  gguf_format   read / write LTX-2 GGUF files (config in a ``config`` KV, or none)
  fp8           per-tensor scaled e4m3: quantize, dequantize, ``_scaled_mm``, bf16 layer list
  int8          per-output-channel int8
  formats       detect a file's format, normalise its keys, strict key expectations,
                quantize-on-load
  ops           the ``operations`` namespace whose Linear holds quantized weights

Nothing here imports ComfyUI at module level (``ops`` calls ``comfy.ops.run_every_op`` when
the host is there).
"""

from .formats import QUANTIZE_OPTIONS, detect_format  # noqa: F401
from .ops import quantized_operations  # noqa: F401
