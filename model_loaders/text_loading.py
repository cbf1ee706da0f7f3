"""The LTX side of the text path from the files users have -> ``ltx2.text_connector.TextProjector``.

``text_files.py`` finds the text projection and the two connectors among the selected files
(the bundle, a transformer-only file, Kijai's / unsloth's split files, a Gemma file holding the
projection, GGUF), ``text_config.py`` reads their config off the tensors (header numerics or the
released constants); this module loads them strictly: every expected tensor present with its
shape, nothing unexpected under the parts' prefixes.  fp8 / NVFP4 / GGUF-quantized text weights
are dequantized once at load (the projector is small next to Gemma).

``text_conditioning`` wraps the projector's two outputs into ComfyUI's CONDITIONING list
(see ``host/model.py``); it returns plain Python lists and imports nothing from ComfyUI.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import torch

from .checkpoint import assign_weights
from .config_sources import listing
from .file_header import float_dtype
from .quant import nvfp4
from .quant.formats import COMFY_FP8_FORMATS, parse_layer_config
from .safetensors_file import CheckpointError
from .text_config import find_text_parts, resolve_config, text_parts_report  # noqa: F401 - the public API
from .text_files import (  # noqa: F401 - re-exported
    AUX_SUFFIXES,
    CONNECTOR_NAMES,
    DEFAULT_CONNECTOR_PREFIX,
    PROJECTION,
    Part,
    TextFile,
    TextParts,
    _err,
    locate_text_parts,
    read_text_file,
)

try:  # see model_loaders/__init__.py
    from ..ltx2.text_connector import TextProjector, TextProjectorConfig
except ImportError:
    from ltx2.text_connector import TextProjector, TextProjectorConfig

PROJECTION_PREFIX = PROJECTION  # the old single-file API's name
_IGNORED_AUX = (".input_scale", ".scale_input", ".comfy_quant")
_SHOW = 6


def to_module_key(key: str, prefix: str = "") -> str:
    """File key -> ``TextProjector`` state-dict key (``prefix``: the part's prefix in that file)."""
    body = key[len(prefix) :] if prefix and key.startswith(prefix) else key
    if body.startswith(PROJECTION):
        return "feature_extractor." + body[len(PROJECTION) :]
    for name, module in CONNECTOR_NAMES.items():
        at = body.find(name)
        if at >= 0:
            return module + body[at + len(name) :]
    return key  # not ours: reported as unexpected by the layout check


def to_file_key(key: str, connector_prefix: str = DEFAULT_CONNECTOR_PREFIX, projection_prefix: str = "") -> str:
    """``TextProjector`` state-dict key -> file key."""
    if key.startswith("feature_extractor."):
        return projection_prefix + PROJECTION + key[len("feature_extractor.") :]
    for name, module in CONNECTOR_NAMES.items():
        if key.startswith(module):
            return connector_prefix + name + key[len(module) :]
    raise KeyError(key)


def _parts_of(path_or_parts, text_hidden_size=None) -> TextParts:
    if isinstance(path_or_parts, TextParts):
        return path_or_parts
    sources = path_or_parts if isinstance(path_or_parts, (list, tuple)) else [path_or_parts]
    return find_text_parts(sources, text_hidden_size=text_hidden_size)


def text_projector_config(path_or_parts, text_hidden_size: int | None = None) -> TextProjectorConfig:
    """The ``TextProjectorConfig`` of a file / files / ``TextParts`` (headers only, no data read)."""
    return _parts_of(path_or_parts, text_hidden_size).config


def _quant_layers(part: Part) -> dict[str, dict]:
    """Weight key -> {"format", scale keys} for quantized tensors of a part (safetensors)."""
    out = {}
    f = part.file
    markers = [k for k in part.keys if k.endswith(".comfy_quant")]
    formats = {}
    if markers:
        from .safetensors_file import load_tensors

        for k, t in load_tensors(f.path, markers).items():
            formats[k[: -len(".comfy_quant")]] = parse_layer_config(t, f"{f.path} [{k}]")["format"]
    quant_meta = f.metadata.get("_quantization_metadata")
    if quant_meta:
        try:
            for name, conf in (json.loads(quant_meta).get("layers") or {}).items():
                formats.setdefault(name, parse_layer_config(conf, f"{f.path} [{name}]")["format"])
        except (ValueError, AttributeError):
            raise _err(f.path, "the header's _quantization_metadata is not a JSON object with 'layers'.") from None
    weights = set(part.tensor_keys())
    stray = [k for k in part.keys if k.endswith(AUX_SUFFIXES) and _layer_of(k) + ".weight" not in weights]
    if stray:
        raise _err(f.path, f"found quantization companions without a weight: {_listing(stray)}. The file is corrupt: "
                   "download it again.")  # fmt: skip
    for key in sorted(weights):
        if not key.endswith(".weight"):
            continue
        layer = key[: -len(".weight")]
        dtype = f.tensors[key][0]
        fmt = formats.get(layer)
        has = {s: layer + s in f.tensors for s in AUX_SUFFIXES}
        if fmt is None and dtype == "U8" and has[".weight_scale_2"]:
            fmt = nvfp4.FORMAT
        if fmt is None and dtype.startswith("F8"):
            fmt = "float8_e4m3fn" if dtype == "F8_E4M3" else "float8_e5m2"
        if fmt is None:
            scales = [s for s, h in has.items() if h and s not in _IGNORED_AUX]
            if dtype in ("U8", "I8") or scales:
                raise _err(f.path, f"the text weight {key!r} is {dtype} with {scales or 'no scales'} and no quantization "
                           "format OpenLTX knows. The file is corrupt or of an unsupported kind.")  # fmt: skip
            continue
        if fmt != nvfp4.FORMAT and fmt not in COMFY_FP8_FORMATS:
            raise _err(f.path, f"the text weight {key!r} is stored as {fmt!r}, a format OpenLTX does not read for the "
                       f"text path (it reads {', '.join((*COMFY_FP8_FORMATS, nvfp4.FORMAT))}).")  # fmt: skip
        expected_dtype = "U8" if fmt == nvfp4.FORMAT else ("F8_E4M3", "F8_E5M2")
        if dtype not in expected_dtype:
            raise _err(f.path, f"the text weight {key!r} is marked {fmt!r} but stored as {dtype}. The file is corrupt.")
        if fmt == nvfp4.FORMAT and has[".weight_scale"] and has[".weight_scale_2"]:
            out[key] = {"format": fmt, "block": layer + ".weight_scale", "scale": layer + ".weight_scale_2"}
        elif fmt in COMFY_FP8_FORMATS:
            scale = layer + ".weight_scale" if has[".weight_scale"] else layer + ".scale_weight" if has[".scale_weight"] else None
            out[key] = {"format": "fp8", "scale": scale}
        else:
            raise _err(f.path, f"the text weight {key!r} is NVFP4, which needs '.weight_scale' block scales and a "
                       f"'.weight_scale_2'; found {[s for s, h in has.items() if h]}. The file is corrupt.")  # fmt: skip
    return out


def _layer_of(key: str) -> str:
    suffix = next(s for s in AUX_SUFFIXES if key.endswith(s))
    return key[: -len(suffix)]


def _read_part(part: Part, shapes: Mapping[str, tuple], dtype: torch.dtype, device) -> dict[str, torch.Tensor]:
    """The part's model tensors, dense (dequantized) in ``dtype``, under ``TextProjector`` keys.

    ``shapes``: file key -> the model's shape (the logical shape of an NVFP4 weight).
    """
    f = part.file
    keys = part.tensor_keys()
    out: dict[str, torch.Tensor] = {}
    if f.kind == "gguf":
        from .quant import gguf_format

        try:
            for key, t in gguf_format.read_gguf_tensors(f.path, keys).items():
                out[to_module_key(key, part.prefix)] = t.dequantize().to(device=device, dtype=dtype)
        except CheckpointError:
            raise
        except Exception as err:
            raise _err(f.path, f"reading the text weights failed ({type(err).__name__}: {err}).") from err
        return out
    from safetensors import safe_open

    quant = _quant_layers(part)
    try:
        with safe_open(f.path, framework="pt", device="cpu") as fh:
            for key in keys:
                t = fh.get_tensor(key)
                spec = quant.get(key)
                if spec is None:
                    value = t
                elif spec["format"] == "fp8":
                    scale = fh.get_tensor(spec["scale"]).float() if spec["scale"] else torch.ones(())
                    value = t.float() * (scale.reshape(-1, 1) if scale.numel() > 1 else scale)
                else:
                    value = nvfp4.dequantize(t, fh.get_tensor(spec["block"]), fh.get_tensor(spec["scale"]), shapes[key])
                out[to_module_key(key, part.prefix)] = value.to(device=device, dtype=dtype)
    except CheckpointError:
        raise
    except Exception as err:
        raise _err(f.path, f"reading the text weights failed ({type(err).__name__}: {err}). The file may be corrupt: "
                   "download it again.") from err  # fmt: skip
    return out


def _dense_dtype(part: Part) -> torch.dtype:
    tensors = part.file.tensors
    keys = part.tensor_keys()
    return float_dtype({k: tensors[k][0] for k in keys}, {k: tensors[k][1] for k in keys}, keys)


def load_text_projector(
    path_or_parts,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    operations=None,
    *,
    text_hidden_size: int | None = None,
) -> TextProjector:
    """``TextProjector`` with the projection and connector weights, loaded strictly (eval mode).

    Args:
        path_or_parts: a ``TextParts`` from ``find_text_parts``, or an LTX-2 file (or a list of
            files / ``(path, role)`` pairs) to find the parts in.
        dtype: weight / compute dtype; ``None`` keeps the files' (bfloat16 for quantized ones).
        operations: the layer namespace (``ltx2.ops`` convention); ``None`` = plain torch.
        text_hidden_size: the text encoder's width; ``None`` = the header's ``caption_channels``.
    Raises:
        CheckpointError: a part missing (naming the published files that carry it), a header
            value contradicting a shape, missing / unexpected keys or shape mismatches (listed).
    """
    parts = _parts_of(path_or_parts, text_hidden_size)
    if parts.config is None:
        parts.config = resolve_config(parts, text_hidden_size, None)
    cfg = parts.config
    model_dtype = dtype or _dense_dtype(parts.projection)
    model = TextProjector(cfg, operations=operations, dtype=model_dtype, device=torch.device("meta"))
    module_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    sd: dict[str, torch.Tensor] = {}
    for part, owned, what in ((parts.projection, ("feature_extractor.",), "text projection"),
                              (parts.connectors, ("video_connector.", "audio_connector."), "text connectors")):  # fmt: skip
        expected = {to_file_key(k, part.prefix, part.prefix): s for k, s in module_shapes.items() if k.startswith(owned)}
        _check_part(part, what, cfg, expected)
        sd.update(_read_part(part, expected, model_dtype, device))
    where = " + ".join(f.path for f in parts.used_files[:2])
    assign_weights(model, sd, where, "text projection")
    model.dtype = model_dtype
    return model.eval()


def _check_part(part: Part, what: str, cfg: TextProjectorConfig, expected: Mapping[str, tuple]) -> None:
    """Strict: the part's tensors are exactly ``expected`` (file keys -> shapes); all problems listed."""
    found = part.tensor_keys()
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k!r}: expected {list(expected[k])}, the file has {list(part.file.tensors[k][1])}"
             for k in sorted(set(found) & set(expected)) if not _fits(part, k, expected[k])]  # fmt: skip
    if not (missing or unexpected or wrong):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es): {'; '.join(wrong[:_SHOW])}")
    kind = "LTX-2.3 dual" if cfg.v2 else "LTX-2.0 single"
    shape = (f"{kind} projection of {cfg.text_hidden_states} x {cfg.text_hidden_size} inputs" if what == "text projection"
             else f"video {cfg.video.num_layers} x {cfg.video.heads}x{cfg.video.head_dim}, audio "
             f"{cfg.audio.num_layers} x {cfg.audio.heads}x{cfg.audio.head_dim}")  # fmt: skip
    raise _err(part.file.path, f"the {what} ({shape}, read off its tensors) is not complete or consistent: "
               f"{'; '.join(problems)}. The file is incomplete or edited: download it again.")  # fmt: skip


def _fits(part: Part, key: str, shape: tuple) -> bool:
    """An NVFP4 weight stored padded fits a smaller logical shape."""
    dtype, stored = part.file.tensors[key]
    if dtype == "U8" and key.endswith(".weight") and key[: -len(".weight")] + ".weight_scale_2" in part.file.tensors:
        return len(shape) == 2 and nvfp4.storage_shapes(*shape)[0] == tuple(stored)
    return tuple(stored) == tuple(shape)


def _listing(keys) -> str:
    return listing(keys, _SHOW)


def text_conditioning(
    video_context: torch.Tensor, audio_context: torch.Tensor, frame_rate: float | None = None
) -> list[list[Any]]:
    """ComfyUI CONDITIONING for the LTX-2 MODEL: ``[[video_context, {"audio_context": ..., "frame_rate": ...}]]``.

    Args:
        video_context: ``(B, L, C_v)``; audio_context: ``(B, L, C_a)`` (``TextProjector`` outputs).
        frame_rate: frames per second of the video to generate; ``None`` leaves the key out
            (the MODEL then uses 24).
    """
    if video_context.ndim != 3 or audio_context.ndim != 3 or video_context.shape[:2] != audio_context.shape[:2]:
        raise ValueError(
            "video_context and audio_context must be (batch, tokens, width) with the same batch and tokens, got "
            f"{tuple(video_context.shape)} and {tuple(audio_context.shape)}."
        )
    extra: dict[str, Any] = {"audio_context": audio_context}
    if frame_rate is not None:
        if not frame_rate > 0:
            raise ValueError(f"frame_rate must be a positive number of frames per second, got {frame_rate!r}.")
        extra["frame_rate"] = float(frame_rate)
    return [[video_context, extra]]
