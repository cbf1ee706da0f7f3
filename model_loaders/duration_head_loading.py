"""The LTX-2.5 duration-head file -> ``ltx2.duration_head.DurationHead``, loaded strictly.

``model_patches/ltx-2.5-duration-head-bf16.safetensors`` holds 15 tensors named
``duration_head.<module key>`` (a repack without the prefix is accepted too) and a header config
``{"transformer": {"cross_attention_dim": 4096, "audio_cross_attention_dim": 2048}}`` plus
``model_version``.  Every width comes from the tensors; the header's two widths, when present,
must agree with them.  The head is tiny (~10 MB), so it loads in float32 unless told otherwise
(ComfyUI does the same).
"""

from __future__ import annotations

import os

import torch

from .checkpoint import assign_weights, check_layout
from .safetensors_file import CheckpointError, load_tensors, parse_config, read_header

try:  # see model_loaders/__init__.py
    from ..ltx2.duration_head import RELEASED_HEADS, DurationHead
except ImportError:
    from ltx2.duration_head import RELEASED_HEADS, DurationHead

PREFIX = "duration_head."
PROBE = "attention_pooler.query_tokens"
_SHAPE_KEYS = {
    "video_width": ("video_input_proj.weight", 1),
    "audio_width": ("audio_input_proj.weight", 1),
    "dim": (PROBE, 1),
    "num_queries": (PROBE, 0),
    "mlp_width": ("mlp_hidden.weight", 0),
}


def _err(path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


def is_duration_head(keys) -> bool:
    """True for the keys of a duration-head file (with or without the ``duration_head.`` prefix)."""
    return any(k in (PREFIX + PROBE, PROBE) for k in keys)


def duration_head_config(path: str | os.PathLike) -> tuple[dict, str, dict]:
    """(constructor kwargs, key prefix, {file key: shape}) read from the header only."""
    header = read_header(path)
    shapes = {k: e.shape for k, e in header.tensors.items()}
    prefix = PREFIX if PREFIX + PROBE in shapes else "" if PROBE in shapes else None
    if prefix is None:
        hint = ""
        if any(k.startswith(("model.diffusion_model.", "vae.", "decoder.")) for k in shapes):
            hint = " This is an LTX model / VAE file, not the duration head."
        raise _err(
            path,
            f"expected the LTX-2.5 duration head (keys 'duration_head.attention_pooler.query_tokens', ...), found "
            f"none.{hint} Use model_patches/ltx-2.5-duration-head-bf16.safetensors.",
        )
    kwargs = {}
    for name, (key, axis) in _SHAPE_KEYS.items():
        shape = shapes.get(prefix + key)
        if shape is None or len(shape) != 2:
            raise _err(path, f"expected the 2-D tensor {prefix + key!r}, found {shape!r}. The file is incomplete.")
        kwargs[name] = int(shape[axis])
    kwargs["heads"] = RELEASED_HEADS
    config = parse_config(header) or {}
    declared = config.get("transformer", {}) if isinstance(config.get("transformer"), dict) else {}
    for name, key in (("video_width", "cross_attention_dim"), ("audio_width", "audio_cross_attention_dim")):
        if key in declared and int(declared[key]) != kwargs[name]:
            raise _err(
                path,
                f"the header says {key} = {declared[key]} but the weights take {kwargs[name]}-wide tokens; the header "
                "and the weights come from different files. Download the duration head again.",
            )
    return kwargs, prefix, shapes


def load_duration_head(path: str | os.PathLike, *, dtype: torch.dtype = torch.float32,
                       device: torch.device | str = "cpu", operations=None) -> DurationHead:  # fmt: skip
    """The duration head of ``path`` (eval mode).  Missing / unexpected / mis-shaped keys raise."""
    kwargs, prefix, shapes = duration_head_config(path)
    try:
        model = DurationHead(**kwargs, operations=operations, dtype=dtype, device=torch.device("meta"))
    except ValueError as err:
        raise _err(path, str(err)) from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k[len(prefix):]: tuple(s) for k, s in shapes.items() if k.startswith(prefix)}
    stray = [k for k in shapes if not k.startswith(prefix)]
    if stray:
        raise _err(path, f"tensors outside the duration head: {sorted(stray)[:8]}. Is this a merged file?")
    check_layout(os.fspath(path), "duration head", expected, found, prefix)
    sd = load_tensors(path, [prefix + k for k in expected], device=device, dtype=dtype,
                      rename=lambda k: k[len(prefix):])  # fmt: skip
    assign_weights(model, sd, os.fspath(path), "duration head")
    model.dtype = dtype
    return model.eval().requires_grad_(False)


__all__ = ["PREFIX", "duration_head_config", "is_duration_head", "load_duration_head"]
