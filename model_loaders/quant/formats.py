"""Weight formats of LTX-2 transformer files: detection, key normalisation, strict checks.

Formats (detected from the file, never chosen by the user):

``dense``          bf16 / fp16 / fp32 weights (the official ``ltx-2-19b-dev.safetensors``).
``fp8_scaled``     Lightricks' fp8 files: ``<layer>.weight`` e4m3 + ``<layer>.weight_scale``
                   (+ ``<layer>.input_scale``).
``comfy_scaled_fp8``  ComfyUI's older scaled fp8: a ``scaled_fp8`` marker tensor and
                   ``<layer>.scale_weight`` / ``<layer>.scale_input``.
``comfy_quant``    newer ComfyUI mixed precision: header ``_quantization_metadata`` =
                   ``{"format_version": ..., "layers": {layer: {"format": "float8_e4m3fn"}}}``
                   and/or per-layer ``<layer>.comfy_quant`` uint8 tensors holding that JSON;
                   tensors ``weight_scale`` / ``input_scale`` as in ``fp8_scaled``.  Layers may
                   also be ``"nvfp4"`` (``nvfp4.py``: uint8 weight, e4m3 block scales,
                   ``weight_scale_2``); the Gemma loader reads those, the transformer not yet.
``gguf``           GGUF (``gguf_format``).

Every format is normalised to one state dict of bare keys: quantized Linears carry
``weight`` (fp8 / int8 / GGUF bytes) + ``weight_scale`` (+ ``input_scale``), everything
else dense.  ``check_keys`` then demands exactly the model's keys plus the scale keys where
the format puts them.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Iterable, Mapping

import torch

from ..config_sources import listing
from ..safetensors_file import TORCH_DTYPES, CheckpointError
from . import fp8 as fp8_mod
from . import int8 as int8_mod
from . import int8_convrot

QUANTIZE_OPTIONS = {"none": None, "fp8 (per-tensor scaled)": "fp8", "int8 (per-channel)": "int8"}
COMFY_FP8_FORMATS = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}
_SCALE_SUFFIXES = (".weight_scale", ".input_scale")
_SHOW = 12


def _fail(path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


def _listing(keys) -> str:
    return listing(keys, _SHOW, quote=False)


def is_gguf(path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"GGUF"


def detect_format(path, keys: Iterable[str] | None = None, dtypes: Mapping[str, str] | None = None,
                  metadata: Mapping[str, str] | None = None) -> str:
    """The weight format of ``path`` (see the module docstring), from its header only."""
    if is_gguf(path):
        return "gguf"
    if keys is None:
        from ..safetensors_file import read_header

        header = read_header(path)
        keys, dtypes, metadata = list(header.tensors), {k: e.dtype for k, e in header.tensors.items()}, header.metadata
    keys = list(keys)
    if "_quantization_metadata" in (metadata or {}) or any(k.endswith(".comfy_quant") for k in keys):
        return "comfy_quant"
    if any(k == "scaled_fp8" or k.endswith(".scaled_fp8") for k in keys):
        return "comfy_scaled_fp8"
    if any(k.endswith(".weight_scale") for k in keys):
        return "fp8_scaled"
    if any((dtypes or {}).get(k, "").startswith("F8") for k in keys):
        return "fp8_scaled"  # fp8 weights without scales: check_keys reports the missing scales
    return "dense"


def normalise_key(key: str, fmt: str) -> str | None:
    """File key (bare) -> canonical key, or None for keys that carry no tensor data for us."""
    if fmt == "comfy_scaled_fp8":
        if key == "scaled_fp8":
            return None
        if key.endswith(".scale_weight"):
            return key[: -len(".scale_weight")] + ".weight_scale"
        if key.endswith(".scale_input"):
            return key[: -len(".scale_input")] + ".input_scale"
    if fmt == "comfy_quant" and key.endswith(".comfy_quant"):
        return None
    return key


def parse_layer_config(raw, where: str = "") -> dict:
    """One layer's comfy_quant config: a ``.comfy_quant`` tensor's bytes (uint8 JSON) or a parsed value.

    ``{"format": "nvfp4"}``; a bare string counts as the format; settings may sit under ``params``.
    """
    if isinstance(raw, torch.Tensor):
        raw = bytes(raw.to(torch.uint8).flatten().tolist())
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = json.loads(bytes(raw).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{where}: the comfy_quant marker is not JSON ({err}); the file is corrupt.") from None
    if isinstance(raw, str):
        raw = {"format": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("format"), str):
        raise CheckpointError(f"{where}: a comfy_quant layer config needs a 'format', found {raw!r}; the file is corrupt.")
    params = raw.get("params")
    return {**params, **raw} if isinstance(params, dict) else dict(raw)


def layer_formats(path, metadata: Mapping[str, str], marker_tensors: Mapping[str, torch.Tensor], prefix: str) -> dict:
    """Layer (``prefix`` removed) -> comfy_quant config, from the header's ``_quantization_metadata``
    and the per-layer ``<layer>.comfy_quant`` tensors (the latter win); every format is kept."""
    layers: dict[str, dict] = {}
    text = (metadata or {}).get("_quantization_metadata")
    if text:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise _fail(path, f"the header's _quantization_metadata is not JSON ({err}); the file is malformed.") from None
        if not isinstance(data, dict) or not isinstance(data.get("layers"), dict):
            raise _fail(path, "the header's _quantization_metadata has no 'layers' object; the file is malformed.")
        for name, conf in data["layers"].items():
            layers[name.removeprefix(prefix)] = parse_layer_config(conf, f"{os.fspath(path)} [{name}]")
    for key, t in marker_tensors.items():
        layers[key.removeprefix(prefix)[: -len(".comfy_quant")]] = parse_layer_config(t, f"{os.fspath(path)} [{key}]")
    return layers


def comfy_quant_layers(path, metadata: Mapping[str, str], marker_tensors: Mapping[str, torch.Tensor], prefix: str,
                       accept_int8: bool = False) -> dict:  # fmt: skip
    """Layer (bare) -> per-layer config of a ``comfy_quant`` transformer; formats other than fp8 raise.

    ``accept_int8``: also accept ``int8_tensorwise`` layers (plain or ConvRot, ``int8_convrot``),
    for callers that dequantize them with ``int8_convrot``.
    """
    layers = layer_formats(path, metadata, marker_tensors, prefix)
    supported = set(COMFY_FP8_FORMATS) | ({int8_convrot.FORMAT} if accept_int8 else set())
    bad = {k: c.get("format") for k, c in layers.items() if c.get("format") not in supported}
    if bad:
        shown = ", ".join(f"{k}: {v}" for k, v in list(bad.items())[:_SHOW])
        raise _fail(
            path,
            f"ComfyUI quantization formats this loader does not read: {shown}. Supported: "
            f"{', '.join(sorted(supported))}; use an fp8 or GGUF file, or the bf16 file with the quantize option.",
        )
    for name, conf in layers.items():
        try:
            int8_convrot.layer_config(conf)
        except ValueError as err:
            raise _fail(path, f"layer {name!r}: {err}") from None
    return layers


def check_keys(path, model_shapes: Mapping[str, tuple], file_shapes: Mapping[str, tuple],
               quantized: Iterable[str], what: str = "transformer") -> None:
    """Strict key check for a normalised state dict.

    ``quantized``: canonical weight keys stored quantized (fp8 / int8).  Each of those needs a
    ``weight_scale``; ``input_scale`` is allowed there; scale keys anywhere else are
    unexpected.  Weight shapes are compared as ``[out, in]`` (GGUF callers pass logical shapes).
    """
    quantized = set(quantized)
    expected = dict(model_shapes)
    allowed_extra = set()
    for wkey in quantized:
        layer = wkey[: -len(".weight")]
        expected[layer + ".weight_scale"] = None
        allowed_extra.add(layer + ".input_scale")
    missing = sorted(set(expected) - set(file_shapes))
    unexpected = sorted(set(file_shapes) - set(expected) - allowed_extra)
    mismatched = [
        f"{k}: file {tuple(file_shapes[k])}, model {tuple(expected[k])}"
        for k in sorted(set(file_shapes) & set(model_shapes))
        if tuple(file_shapes[k]) != tuple(model_shapes[k])
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    scale_missing = [k for k in missing if k.endswith(".weight_scale")]
    if scale_missing:
        parts.append(
            f"missing scale keys ({len(scale_missing)}): {_listing(scale_missing)} — these layers' weights are fp8/int8 "
            "and cannot be used without their weight_scale (the file is incomplete or was saved without scales; "
            "re-download it or convert the bf16 file with tools/convert.py)"
        )
    other = [k for k in missing if k not in scale_missing]
    if other:
        parts.append(f"missing keys ({len(other)}): {_listing(other)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
    if mismatched:
        parts.append(f"shape mismatches ({len(mismatched)}): {_listing(mismatched)}")
    raise _fail(path, f"the {what} weights do not match the model its config describes; " + "; ".join(parts))


def quantize_weight(weight: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Float ``[out, in]`` -> (quantized weight, weight_scale) for ``kind`` "fp8" / "int8"."""
    if kind == "fp8":
        return fp8_mod.quantize(weight)
    if kind == "int8":
        return int8_mod.quantize(weight)
    raise ValueError(f"quantize kind {kind!r} is not one of fp8, int8")


def quantize_plan(linear_layers: Iterable[str]) -> list[str]:
    """Linears (bare names) that quantize-on-load and tools/convert.py quantize: all but the bf16 list."""
    return sorted(l for l in linear_layers if not fp8_mod.keep_high_precision(l))


def read_safetensors_transformer(
    path,
    file_keys: list[str],
    prefix: str,
    fmt: str,
    dense_dtype: torch.dtype,
    device="cpu",
    quantize: str | None = None,
    quantize_layers: Iterable[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Read the transformer keys into a canonical bare-key state dict, one tensor at a time.

    Dense floating tensors become ``dense_dtype``; fp8 / int8 weights and fp32 scales keep
    theirs.  With ``quantize`` ("fp8" / "int8") the weights of ``quantize_layers`` are
    quantized as they are read, so the full-precision copy never exists for the whole model.
    """
    from safetensors import safe_open

    targets = {l + ".weight" for l in quantize_layers} if quantize else set()
    out: dict[str, torch.Tensor] = {}
    with safe_open(os.fspath(path), framework="pt", device=str(device)) as f:
        for i, key in enumerate(file_keys):
            bare = key[len(prefix):]
            canon = normalise_key(bare, fmt)
            if canon is None:
                continue
            t = f.get_tensor(key)
            if canon in targets:
                q, s = quantize_weight(t, quantize)
                out[canon], out[canon[: -len(".weight")] + ".weight_scale"] = q, s
            elif canon.endswith(_SCALE_SUFFIXES):
                out[canon] = t.to(torch.float32)
            elif t.is_floating_point() and t.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2) and t.dtype != dense_dtype:
                out[canon] = t.to(dense_dtype)
            else:
                out[canon] = t
            if progress is not None:
                progress(i + 1, len(file_keys))
    return out


def safetensors_dtype(name: str) -> torch.dtype | None:
    return TORCH_DTYPES.get(name)
