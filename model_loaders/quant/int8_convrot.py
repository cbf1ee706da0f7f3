"""ComfyUI's ``int8_tensorwise`` weights, with and without the ConvRot rotation (``comfy-int8-convrot``).

The LTX-2.5 ``*-comfy-int8-convrot.safetensors`` files (transformer and Gemma 4 text encoder)
mark each quantized layer with ComfyUI's quant config, either as a per-layer ``<layer>.comfy_quant``
uint8 tensor holding JSON or under the header's ``_quantization_metadata["layers"]``::

    {"format": "int8_tensorwise", "convrot": true, "convrot_groupsize": 256}

(the keys may also sit under ``"params"``).  A layer then holds

* ``<layer>.weight``        int8 ``[N, K]``: the weight *after* the rotation, quantized per row;
* ``<layer>.weight_scale``  float32 ``[N, 1]`` (or ``[N]`` / a scalar): ``absmax(row) / 127``.

No rotation matrix is stored.  The rotation is a block-diagonal Hadamard transform over groups of
``g`` input features (``g`` a power of 4, 256 by default):

    H4 = [[1, 1, 1, -1], [1, 1, -1, 1], [1, -1, 1, 1], [-1, 1, 1, 1]]
    H  = kron(H4, ..., H4) / sqrt(g)            (g x g; symmetric and H @ H = I)

Writing ``W_g`` for ``W`` reshaped ``[N, K/g, g]``, the file stores ``round(W_g @ H^T / s)`` and the
float weight comes back as ``W = (q * s)_g @ H`` (H is its own inverse).  Equivalently a layer can
run without un-rotating its weight: ``y = rot(x) @ (q * s)^T`` with ``rot(x) = x_g @ H``, which is
what ComfyUI's int8 kernels do.  Definition: comfy-kitchen 0.2.40 (``tensor/int8.py``,
``tensor/int8_utils.py``, ``backends/eager/quantization.py``); ``tests/test_ltx25_int8_convrot.py``
compares against it.

Pure torch; nothing here imports ComfyUI.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Mapping

import torch

FORMAT = "int8_tensorwise"
DEFAULT_GROUP_SIZE = 256
INT8_MAX = 127.0
_H4 = ((1, 1, 1, -1), (1, 1, -1, 1), (1, -1, 1, 1), (-1, 1, 1, 1))
_HADAMARD: dict[tuple[int, str, torch.dtype], torch.Tensor] = {}


@dataclass(frozen=True)
class Int8LayerConfig:
    """One layer's quant config: rotated (``group_size`` > 0) or plain int8 (``group_size`` 0)."""

    group_size: int = 0

    @property
    def convrot(self) -> bool:
        return self.group_size > 0


def check_group_size(group_size: int) -> int:
    """``group_size`` when it is a power of 4 (>= 4), else ValueError."""
    g = int(group_size)
    if g < 4 or 4 ** round(math.log(g, 4)) != g:
        raise ValueError(f"convrot_groupsize must be a power of 4 (16, 64, 256, ...), found {group_size!r}")
    return g


def hadamard(group_size: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The normalised ``g x g`` ConvRot Hadamard matrix ``kron(H4, ..., H4) / sqrt(g)`` (cached)."""
    g = check_group_size(group_size)
    key = (g, str(torch.device(device) if device is not None else "cpu"), dtype)
    if key not in _HADAMARD:
        h4 = torch.tensor(_H4, dtype=torch.float64)
        h = h4
        while h.shape[0] < g:
            h = torch.kron(h, h4)
        _HADAMARD[key] = (h / math.sqrt(g)).to(device=device, dtype=dtype)
    return _HADAMARD[key]


def rotate(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """``x[..., K]`` -> ``x`` with every group of ``g`` features multiplied by ``H`` (``K % g == 0``).

    The same function rotates weights (rows ``[N, K]``) and activations; applying it twice is
    the identity.  Computed in ``x``'s dtype.
    """
    k = x.shape[-1]
    if k % group_size:
        raise ValueError(f"ConvRot group size {group_size} does not divide the {k} input features")
    h = hadamard(group_size, x.device, x.dtype)
    return (x.reshape(*x.shape[:-1], k // group_size, group_size) @ h).reshape(x.shape)


def _row_scale(scale: torch.Tensor, rows: int) -> torch.Tensor:
    """A stored ``weight_scale`` ([N, 1], [N] or scalar) as a float32 ``[N, 1]`` / ``[1, 1]`` tensor."""
    s = scale.to(torch.float32)
    if s.numel() == 1:
        return s.reshape(1, 1)
    if s.numel() != rows:
        raise ValueError(f"int8 weight_scale has {s.numel()} values for a weight of {rows} rows; expected 1 or {rows}")
    return s.reshape(rows, 1)


def dequantize(weight: torch.Tensor, scale: torch.Tensor, group_size: int = 0,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:  # fmt: skip
    """int8 ``[N, K]`` + scale -> float ``[N, K]`` in ``dtype``; un-rotated when ``group_size`` > 0.

    The arithmetic runs in float32 (as comfy-kitchen's eager path) and is cast once at the end.
    """
    if weight.dtype != torch.int8 or weight.ndim != 2:
        raise ValueError(f"expected an int8 [N, K] weight, found {weight.dtype} {list(weight.shape)}")
    w = weight.to(torch.float32) * _row_scale(scale, weight.shape[0]).to(weight.device)
    if group_size:
        w = rotate(w, group_size)
    return w.to(dtype)


def quantize(weight: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """float ``[N, K]`` -> (int8 ``[N, K]`` of the rotated weight, float32 ``[N, 1]`` row scales).

    ``group_size`` 0 quantizes without rotation.  Rows are scaled by ``absmax / 127`` and rounded
    half to even, as ComfyUI writes these files (used by the tiny-fixture writers and tools).
    """
    w = weight.to(torch.float32)
    if group_size:
        w = rotate(w, group_size)
    scale = (w.abs().amax(dim=-1, keepdim=True) / INT8_MAX).clamp(min=1e-30)
    q = torch.round(w / scale).clamp(-128.0, INT8_MAX).to(torch.int8)
    return q, scale


def linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, group_size: int = 0,
           bias: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """``y = x @ W^T + b`` for a stored int8 layer without un-rotating its weight.

    ``x`` ``[..., K]`` (any float dtype, also the compute dtype), ``weight`` int8 ``[N, K]``.
    The activation is rotated instead (``rot(x) @ (q s)^T``), which equals ``x @ W^T``.
    """
    if group_size:
        x = rotate(x, group_size)
    w = weight.to(x.dtype) * _row_scale(scale, weight.shape[0]).to(device=x.device, dtype=x.dtype)
    return torch.nn.functional.linear(x, w, None if bias is None else bias.to(x.dtype))


# ------------------------------------------------------------------------------ quant configs
def layer_config(conf: Mapping) -> Int8LayerConfig | None:
    """The int8 config of one ComfyUI layer quant JSON, or None when the layer is another format.

    Raises ValueError for an int8 layer whose rotation settings are unusable.
    """
    if not isinstance(conf, Mapping) or conf.get("format") != FORMAT:
        return None
    params = {**conf, **(conf.get("params") or {})}
    if not params.get("convrot", False):
        return Int8LayerConfig(0)
    return Int8LayerConfig(check_group_size(params.get("convrot_groupsize", DEFAULT_GROUP_SIZE)))


def marker_json(marker: torch.Tensor) -> dict:
    """The JSON held by a ``<layer>.comfy_quant`` uint8 tensor."""
    return json.loads(bytes(marker.flatten().tolist()).decode("utf-8"))


def comfy_quant_configs(metadata: Mapping[str, str] | None, markers: Mapping[str, torch.Tensor],
                        prefix: str = "") -> dict[str, dict]:  # fmt: skip
    """Layer name (``prefix`` removed) -> quant JSON, from both marker styles.

    ``markers`` maps ``<layer>.comfy_quant`` keys to their tensors; the header's
    ``_quantization_metadata`` (full layer names) is read too.  A layer named in both must agree.
    """
    layers: dict[str, dict] = {}
    text = (metadata or {}).get("_quantization_metadata")
    if text:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("layers"), dict):
            raise ValueError("the header's _quantization_metadata has no 'layers' object; the file is malformed")
        for name, conf in data["layers"].items():
            layers[name.removeprefix(prefix)] = {"format": conf} if isinstance(conf, str) else dict(conf)
    for key, t in markers.items():
        name = key.removeprefix(prefix)[: -len(".comfy_quant")]
        conf = marker_json(t)
        if name in layers and layers[name] != conf:
            raise ValueError(f"layer {name!r}: its .comfy_quant tensor {conf} contradicts _quantization_metadata "
                             f"{layers[name]}")  # fmt: skip
        layers[name] = conf
    return layers


def encode_marker(conf: Mapping) -> torch.Tensor:
    """A ``.comfy_quant`` tensor for ``conf`` (uint8 bytes of ``json.dumps`` with default spacing)."""
    return torch.tensor(list(json.dumps(dict(conf)).encode("utf-8")), dtype=torch.uint8)


def convrot_config(group_size: int = DEFAULT_GROUP_SIZE) -> dict:
    """The layer JSON ComfyUI writes for a ConvRot int8 layer."""
    return {"format": FORMAT, "convrot": True, "convrot_groupsize": int(group_size)}


__all__ = [
    "DEFAULT_GROUP_SIZE",
    "FORMAT",
    "Int8LayerConfig",
    "comfy_quant_configs",
    "convrot_config",
    "dequantize",
    "encode_marker",
    "hadamard",
    "layer_config",
    "linear",
    "marker_json",
    "quantize",
    "rotate",
]
