"""File -> ComfyUI MODEL for LTX-2: weight dtype choice, strict load, ModelPatcher.

The module is built on the meta device with ``comfy.ops`` layers, the checkpoint header is
checked against it (every key and shape) before any tensor data is read, and the weights are
then assigned with ``load_state_dict(strict=True, assign=True)``: no second copy of the
weights, and any missing / unexpected / mis-shaped key is an error that names it.  Reading
the tensors reports progress through ComfyUI's progress bar (and so honours Cancel).
"""

from __future__ import annotations

import logging
import os
import math
from typing import Mapping

import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils

from ..ltx2.config import TransformerConfig
from ..model_loaders import checkpoint
from .model import SUPPORTED_DTYPES, WEIGHT_DTYPE_OPTIONS, LTX2Model, LTX2ModelConfig, ModelLoadError
from ..model_loaders.quant import formats as qformats
from ..model_loaders.quant.ops import quantized_operations
from . import previews

log = logging.getLogger(__name__)
FP8_SCALED_MM_ENV = "OPENLTX_FP8_SCALED_MM"


def fp8_scaled_mm_enabled() -> bool:
    """Whether fp8 layers use FP8 x FP8 ``torch._scaled_mm`` (opt in: ``OPENLTX_FP8_SCALED_MM=1``).

    Measured on an H200 (19B shapes, 768x512x121, ``benchmarks/quant.py``): weight-only fp8
    upcast per layer ran a forward in 0.48 s, ``_scaled_mm`` with per-call activation
    quantization in 0.54 s (bf16: 0.40 s), so the upcast path is the default until the
    activation quantization is fused.
    """
    return os.environ.get(FP8_SCALED_MM_ENV, "0").strip().lower() in ("1", "true", "yes", "on")


def pick_weight_dtype(choice: str, file_dtype: torch.dtype | None, load_device, params: int = 0) -> torch.dtype:
    """The dtype the weights are stored in.

    ``"bf16"`` / ``"fp16"`` / ``"fp32"`` are taken as given.  ``"default"``: on a CPU the
    file's own dtype (fp32 stays fp32, bf16 stays bf16 and is computed in fp32); on a GPU
    ComfyUI's choice (``unet_dtype``: bf16 where supported, honouring ``--bf16-unet`` etc.).
    """
    if choice in WEIGHT_DTYPE_OPTIONS:
        return WEIGHT_DTYPE_OPTIONS[choice]
    if choice != "default":
        raise ValueError(f"weight_dtype {choice!r} is not one of default, {', '.join(WEIGHT_DTYPE_OPTIONS)}")
    if mm.is_device_cpu(load_device):
        dtype = file_dtype if file_dtype in SUPPORTED_DTYPES else torch.float32
    else:
        dtype = mm.unet_dtype(load_device, model_params=params, supported_dtypes=SUPPORTED_DTYPES, weight_dtype=file_dtype)
        if dtype not in SUPPORTED_DTYPES:  # e.g. an fp8 choice from a CLI flag: not supported yet
            dtype = torch.bfloat16
    if not mm.supports_cast(load_device, dtype):
        dtype = torch.float32
    return dtype


def _check_keys(module: torch.nn.Module, sd: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise ``ModelLoadError`` naming missing / unexpected / mis-shaped keys."""
    expected = module.state_dict(keep_vars=True)
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    mismatched = [
        f"{k}: file {tuple(sd[k].shape)}, model {tuple(expected[k].shape)}"
        for k in sorted(set(sd) & set(expected))
        if tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return

    def listing(title, keys):
        shown = ", ".join(keys[:12]) + (f", ... ({len(keys) - 12} more)" if len(keys) > 12 else "")
        return f"{title} ({len(keys)}): {shown}"

    parts = []
    if missing:
        parts.append(listing("missing keys", missing))
    if unexpected:
        parts.append(listing("unexpected keys", unexpected))
    if mismatched:
        parts.append(listing("shape mismatches", mismatched))
    raise ModelLoadError(
        f"{source}: the transformer weights do not form the LTX-2 transformer their shapes describe (the file is "
        "incomplete, or its parts come from different models); " + "; ".join(parts)
    )


def _new_model(config: TransformerConfig, weight_dtype: torch.dtype, load_device, gguf_layers=None, quantized=False) -> LTX2Model:
    """``LTX2Model`` on the meta device with ``comfy.ops`` layers for ``weight_dtype``.

    ``quantized``: build Linears that take fp8 / int8 / GGUF weights (``quant.ops``);
    ``gguf_layers`` maps bare layer names to (ggml type, (out, in)).
    """
    manual_cast = mm.unet_manual_cast(weight_dtype, load_device, SUPPORTED_DTYPES)
    model_config = LTX2ModelConfig(config)
    model_config.set_inference_dtype(weight_dtype, manual_cast)
    if quantized or gguf_layers:
        import comfy.ops

        base = comfy.ops.pick_operations(weight_dtype, manual_cast, load_device=load_device)
        model_config.custom_operations = quantized_operations(
            base, gguf_layers=gguf_layers, dense_dtype=weight_dtype, scaled_mm=fp8_scaled_mm_enabled()
        )
    return LTX2Model(model_config, device=torch.device("meta"))


_QUANT_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2, torch.int8, torch.uint8)


def _fill(model: LTX2Model, state_dict: Mapping[str, torch.Tensor], load_device, offload_device, source: str, checked=False):
    """Load ``state_dict`` strictly (``assign=True``) and wrap the model in a ``ModelPatcher``.

    ``checked``: the keys were already checked format-aware (``quant.formats.check_keys``);
    quantized tensors and their scales keep their dtypes.
    """
    diffusion = model.diffusion_model
    if not checked:
        _check_keys(diffusion, state_dict, source)
    expected = diffusion.state_dict(keep_vars=True)
    sd = {}
    for k, v in state_dict.items():
        if k in expected and v.is_floating_point() and v.dtype not in _QUANT_DTYPES and v.dtype != expected[k].dtype:
            v = v.to(dtype=expected[k].dtype)
        sd[k] = v.to(device=offload_device)
    checkpoint.assign_weights(diffusion, sd, source, "transformer", error=ModelLoadError)
    diffusion.requires_grad_(False)
    model.device = offload_device
    cast = model.manual_cast_dtype
    log.info(
        "OpenLTX: LTX-2 transformer loaded from %s (%s weights%s)",
        source,
        str(model.get_dtype()).removeprefix("torch."),
        f", computed in {str(cast).removeprefix('torch.')}" if cast is not None else "",
    )
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload_device)
    previews.attach(patcher)  # live previews while sampling (host/previews.py)
    return patcher


def build_ltx2_model(
    config: TransformerConfig,
    state_dict: Mapping[str, torch.Tensor],
    *,
    weight_dtype: torch.dtype,
    load_device=None,
    offload_device=None,
    source: str = "checkpoint",
) -> comfy.model_patcher.ModelPatcher:
    """A ``ModelPatcher`` over ``LTX2Model`` holding ``state_dict`` (bare transformer keys).

    The module is built on the meta device with ``comfy.ops`` layers and filled with
    ``load_state_dict(strict=True, assign=True)``: no second copy of the weights, and any
    missing / unexpected / mis-shaped key is an error that names it.
    """
    load_device = load_device if load_device is not None else mm.get_torch_device()
    offload_device = offload_device if offload_device is not None else mm.unet_offload_device()
    model = _new_model(config, weight_dtype, load_device)
    return _fill(model, state_dict, load_device, offload_device, source)


def load_ltx2_model(path: str, weight_dtype: str = "default", *, quantize: str = "none", load_device=None, offload_device=None):
    """Read an LTX-2 checkpoint (bundle, transformer-only, GGUF) into a ComfyUI MODEL.

    The header is checked first (family, version; the transformer is sized from the tensor
    shapes, its numeric settings come from the header config or, without one, are the
    released values; every key and shape is checked against that model); only then is tensor
    data read.

    Args:
        path: the ``.safetensors`` or ``.gguf`` file.
        weight_dtype: ``"default"``, ``"bf16"``, ``"fp16"`` or ``"fp32"`` (see
            ``pick_weight_dtype``); for quantized files the precision of the layers the file
            keeps in high precision.
        quantize: ``"none"``, ``"fp8 (per-tensor scaled)"`` / ``"fp8"`` or ``"int8 (per-channel)"``
            / ``"int8"``: quantize a bf16/fp16/fp32 file's Linears as they load (the official fp8
            recipe's layers stay high precision).  Ignored (with a log line) for files that are
            already quantized.
    The weight format (dense, official fp8, ComfyUI scaled fp8 / comfy_quant, GGUF) is
    detected from the file.
    Raises:
        ``CheckpointError`` (a ``ValueError``) for unusable files, header values that
        contradict the tensors, and incomplete weights; the message names the file and the keys.
    """
    load_device = load_device if load_device is not None else mm.get_torch_device()
    offload_device = offload_device if offload_device is not None else mm.unet_offload_device()
    kind = _quantize_kind(quantize)
    info = checkpoint.read_checkpoint(path)
    config = checkpoint.transformer_config(info)
    if info.format == "gguf":
        _ignore_quantize(kind, path, "GGUF")
        return _load_gguf(info, config, weight_dtype, load_device, offload_device)
    keys = info.components.get("transformer") or []
    fmt = qformats.detect_format(path, keys, info.dtypes, info.metadata)
    if fmt != "dense" or kind is not None:
        return _load_quantized(info, config, keys, fmt, kind, weight_dtype, load_device, offload_device)
    dtype = pick_weight_dtype(weight_dtype, _file_weight_dtype(info, keys), load_device, _numel(info, keys))
    model = _new_model(config, dtype, load_device)
    prefix = info.transformer_prefix
    checkpoint.check_layout(
        info.path,
        "transformer",
        {k: tuple(v.shape) for k, v in model.diffusion_model.state_dict().items()},
        {k[len(prefix):]: tuple(info.shapes[k]) for k in keys},
        prefix,
    )
    progress = _progress(len(keys))
    _, sd = checkpoint.load_transformer_state_dict(info, dtype=dtype, device=offload_device, progress=progress)
    return _fill(model, sd, load_device, offload_device, str(path))


def _progress(total: int):
    """A ``progress(done, total)`` for the tensor reads: ComfyUI's bar, and Cancel between tensors."""
    bar = comfy.utils.ProgressBar(max(1, total))

    def progress(done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, total)

    return progress


def _numel(info, keys) -> int:
    return sum(math.prod(info.shapes[k]) for k in keys)


def _file_weight_dtype(info, keys) -> torch.dtype | None:
    """The floating dtype most of ``keys`` are stored in (by element count), from the header."""
    counts: dict[torch.dtype, int] = {}
    for k in keys:
        dtype = _SAFETENSORS_FLOATS.get(info.dtypes[k])
        if dtype is not None:
            counts[dtype] = counts.get(dtype, 0) + math.prod(info.shapes[k])
    return max(counts, key=counts.get) if counts else None


_SAFETENSORS_FLOATS = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


# ------------------------------------------------------------------------------ quantized formats
def _quantize_kind(quantize: str) -> str | None:
    if quantize in qformats.QUANTIZE_OPTIONS:
        return qformats.QUANTIZE_OPTIONS[quantize]
    if quantize in ("fp8", "int8"):
        return quantize
    raise ValueError(f"quantize {quantize!r} is not one of {', '.join(qformats.QUANTIZE_OPTIONS)}")


def _ignore_quantize(kind, path, fmt) -> None:
    if kind is not None:
        log.warning("OpenLTX: %s is already quantized (%s); the quantize option %r is ignored", path, fmt, kind)


def _linear_layers(model: LTX2Model) -> set[str]:
    return {n for n, m in model.diffusion_model.named_modules() if isinstance(m, torch.nn.Linear)}


def _load_quantized(info, config, keys, fmt, kind, weight_dtype, load_device, offload_device):
    """fp8 / ComfyUI fp8 files, or a dense file quantized on load."""
    path, prefix = info.path, info.transformer_prefix
    if fmt != "dense":
        _ignore_quantize(kind, path, fmt)
        kind = None
    dense_keys = [k for k in keys if not info.dtypes[k].startswith("F8") and not k.endswith(("_scale", "scale_weight", "scale_input"))]
    dtype = pick_weight_dtype(weight_dtype, _file_weight_dtype(info, dense_keys) or torch.bfloat16, load_device, _numel(info, keys))
    model = _new_model(config, dtype, load_device, quantized=True)
    if fmt == "comfy_quant":
        from ..model_loaders.safetensors_file import load_tensors

        markers = load_tensors(path, [k for k in keys if k.endswith(".comfy_quant")])
        qformats.comfy_quant_layers(path, info.metadata, markers, prefix)
    file_shapes, quantized = {}, []
    for k in keys:
        canon = qformats.normalise_key(k[len(prefix):], fmt)
        if canon is None:
            continue
        file_shapes[canon] = tuple(info.shapes[k])
        if info.dtypes[k].startswith("F8") or (info.dtypes[k] == "I8" and canon.endswith(".weight")):
            quantized.append(canon)
    model_shapes = {k: tuple(v.shape) for k, v in model.diffusion_model.state_dict().items()}
    qformats.check_keys(path, model_shapes, file_shapes, quantized)
    layers = qformats.quantize_plan(_linear_layers(model)) if kind else ()
    sd = qformats.read_safetensors_transformer(
        path, keys, prefix, fmt, dtype, device=offload_device, quantize=kind, quantize_layers=layers,
        progress=_progress(len(keys)),
    )
    log.info("OpenLTX: weight format %s%s", fmt, f", quantized on load to {kind}" if kind else "")
    return _fill(model, sd, load_device, offload_device, str(path), checked=True)


def _load_gguf(info, config: TransformerConfig, weight_dtype, load_device, offload_device):
    """A GGUF transformer: quantized Linears keep their bytes; the rest is dequantized once.

    Only the transformer's tensors are read (text connectors some GGUFs embed are left to the
    text loader).
    """
    from ..model_loaders.quant import gguf_format

    path, prefix = info.path, info.transformer_prefix
    keys = info.components.get("transformer") or []
    tensors = {k[len(prefix):]: t for k, t in gguf_format.read_gguf_tensors(path, keys, _progress(len(keys))).items()}
    numel = sum(math.prod(t.shape) for t in tensors.values())
    dtype = pick_weight_dtype(weight_dtype, torch.bfloat16, load_device, numel)
    probe = _new_model(config, dtype, load_device, quantized=True)
    linears = _linear_layers(probe)

    def keeps_bytes(name: str, t) -> bool:
        return t.quantized and not t.reshaped and name.endswith(".weight") and name[: -len(".weight")] in linears

    table = {name[: -len(".weight")]: (t.qtype, t.shape) for name, t in tensors.items() if keeps_bytes(name, t)}
    model = _new_model(config, dtype, load_device, gguf_layers=table)
    model_shapes = {k: tuple(v.shape) for k, v in model.diffusion_model.state_dict().items()}
    qformats.check_keys(path, model_shapes, {k: t.shape for k, t in tensors.items()}, (), what="GGUF transformer")
    sd = {name: t.raw if keeps_bytes(name, t) else t.dequantize().to(dtype) for name, t in tensors.items()}
    arch = info.metadata.get("general.architecture", "?")
    log.info("OpenLTX: GGUF (%s) with %d quantized Linears", arch, len(table))
    return _fill(model, sd, load_device, offload_device, str(path), checked=True)
