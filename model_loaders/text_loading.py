"""LTX checkpoint -> ``ltx2.text_connector.TextProjector`` (the LTX side of the text path).

The projection from Gemma's hidden states and the two embeddings connectors ship inside the
single-file LTX-2 bundle (``ltx-2-19b-dev.safetensors``, the 2.3 file):

  ``text_embedding_projection.aggregate_embed.weight``                 (2.0, no bias)
  ``text_embedding_projection.{video,audio}_aggregate_embed.*``        (2.3)
  ``model.diffusion_model.{video,audio}_embeddings_connector.*``       (both)

A transformer-only file (ComfyUI's ``diffusion_models`` folder) lacks them; loading the text
path from it is an error that says so.  Loading is strict, as for the transformer: the module
is built on the meta device from the header, the file's keys and shapes are checked against
it before any data is read, then filled with ``load_state_dict(strict=True, assign=True)``.

How many hidden states the projection takes (49 for Gemma-3-12B) is read off the projection
weight; their width is the header's ``caption_channels`` (3840).

``text_conditioning`` wraps the projector's two outputs into ComfyUI's CONDITIONING list
(see ``host/model.py``); it returns plain Python lists and imports nothing from ComfyUI.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .checkpoint import CheckpointInfo, assign_weights, check_layout, file_dtype, read_checkpoint
from .safetensors_file import CheckpointError, load_tensors

try:  # see model_loaders/__init__.py
    from ..ltx2.config import ConfigError
    from ..ltx2.text_connector import TextProjector, TextProjectorConfig
except ImportError:
    from ltx2.config import ConfigError
    from ltx2.text_connector import TextProjector, TextProjectorConfig

PROJECTION_PREFIX = "text_embedding_projection."
CONNECTOR_NAMES = {"video_embeddings_connector.": "video_connector.", "audio_embeddings_connector.": "audio_connector."}
DEFAULT_CONNECTOR_PREFIX = "model.diffusion_model."
_USE_OFFICIAL = "Use the official file, unmodified."
_BUNDLE = (
    "The text projection and connectors ship in the single-file LTX-2 checkpoint (ltx-2-19b-dev.safetensors, "
    "ltx-2-19b-distilled.safetensors or the LTX-2.3 equivalent), not in transformer-only files: load the text "
    "path from that file."
)


def _err(path: str, message: str) -> CheckpointError:
    return CheckpointError(f"{path}: {message}")


def _text_keys(info: CheckpointInfo) -> list[str]:
    """The projection and connector keys, or a CheckpointError saying which part is missing."""
    projection = info.components.get("text_projection", [])
    connectors = info.components.get("text_connectors", [])
    missing = []
    if not projection:
        missing.append(f"'{PROJECTION_PREFIX}*' (the Gemma feature projection)")
    for name in CONNECTOR_NAMES:
        if not any(name in k for k in connectors):
            missing.append(f"'{DEFAULT_CONNECTOR_PREFIX}{name}*' (the {name.split('_')[0]} text connector)")
    if missing:
        present = ", ".join(info.components) or "no known component"
        raise _err(
            info.path,
            f"expected the LTX-2 text projection and connector weights, found none for {'; '.join(missing)}. "
            f"The file holds: {present}. {_BUNDLE}",
        )
    return projection + connectors


def _connector_prefix(keys) -> str:
    """The prefix in front of ``video_embeddings_connector.`` in this file (normally ``model.diffusion_model.``)."""
    for key in keys:
        at = key.find("video_embeddings_connector.")
        if at >= 0:
            return key[:at]
    return DEFAULT_CONNECTOR_PREFIX


def to_module_key(key: str) -> str:
    """File key -> ``TextProjector`` state-dict key."""
    if key.startswith(PROJECTION_PREFIX):
        return "feature_extractor." + key[len(PROJECTION_PREFIX) :]
    for name, module in CONNECTOR_NAMES.items():
        at = key.find(name)
        if at >= 0:
            return module + key[at + len(name) :]
    return key  # not ours: reported as unexpected by the layout check


def to_file_key(key: str, connector_prefix: str = DEFAULT_CONNECTOR_PREFIX) -> str:
    """``TextProjector`` state-dict key -> file key."""
    if key.startswith("feature_extractor."):
        return PROJECTION_PREFIX + key[len("feature_extractor.") :]
    for name, module in CONNECTOR_NAMES.items():
        if key.startswith(module):
            return connector_prefix + name + key[len(module) :]
    raise KeyError(key)


def _hidden_states(info: CheckpointInfo, keys, hidden: int) -> int:
    """Number of text-encoder hidden states: the projection's input width / ``hidden``."""
    weights = sorted(k for k in keys if k.startswith(PROJECTION_PREFIX) and k.endswith(".weight"))
    shape = info.shapes[weights[0]] if weights else ()
    if len(shape) != 2 or shape[1] % hidden:
        raise _err(
            info.path,
            f"expected {weights[0] if weights else PROJECTION_PREFIX + '*.weight'} to be a matrix whose input width "
            f"is a multiple of caption_channels ({hidden}: hidden size x hidden states of the text encoder), found "
            f"shape {list(shape)}. The weights and the header config come from different models: use the official "
            "file, unmodified.",
        )
    return shape[1] // hidden


def text_projector_config(path_or_info, text_hidden_size: int | None = None) -> TextProjectorConfig:
    """The ``TextProjectorConfig`` of a checkpoint (header + projection weight shape; no data read)."""
    info = path_or_info if isinstance(path_or_info, CheckpointInfo) else read_checkpoint(path_or_info)
    keys = _text_keys(info)
    section = info.config.get("transformer")
    if not isinstance(section, Mapping):
        found = sorted(info.config)
        raise _err(info.path, f"expected a 'transformer' section in the header config, found {found}. {_USE_OFFICIAL}")
    try:
        hidden = int(text_hidden_size or _caption_channels(section, info.path))
        return TextProjectorConfig.from_header(
            section, text_hidden_states=_hidden_states(info, keys, hidden), text_hidden_size=hidden, source=info.path
        )
    except ConfigError as err:  # its message names the file and the key
        raise CheckpointError(str(err)) from None


def _caption_channels(section: Mapping[str, Any], path: str) -> int:
    if "caption_channels" not in section:
        raise _err(
            path,
            "the header's config.transformer lacks 'caption_channels' (the text encoder's width, 3840 for "
            "Gemma-3-12B), needed to split the text projection's input. Use the official file, or pass "
            "text_hidden_size.",
        )
    return int(section["caption_channels"])


def load_text_projector(
    path_or_info,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    operations=None,
    *,
    text_hidden_size: int | None = None,
) -> TextProjector:
    """``TextProjector`` with the checkpoint's projection and connector weights, loaded strictly (eval mode).

    Args:
        path_or_info: an LTX-2 single-file checkpoint, or its ``read_checkpoint`` result.
        dtype: weight / compute dtype; ``None`` keeps the file's.
        operations: the layer namespace (``ltx2.ops`` convention); ``None`` = plain torch.
        text_hidden_size: the text encoder's width; ``None`` = the header's ``caption_channels``.
    Raises:
        CheckpointError: no text weights in the file (transformer-only), a header key missing,
            missing / unexpected keys or shape mismatches (all listed).
    """
    info = path_or_info if isinstance(path_or_info, CheckpointInfo) else read_checkpoint(path_or_info)
    cfg = text_projector_config(info, text_hidden_size)
    keys = _text_keys(info)
    prefix = _connector_prefix(keys)
    model_dtype = dtype or file_dtype(info, keys)
    model = TextProjector(cfg, operations=operations, dtype=model_dtype, device=torch.device("meta"))
    expected = {to_file_key(k, prefix): tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: info.shapes[k] for k in keys}
    kind = "LTX-2.3 dual" if cfg.v2 else "LTX-2.0"
    what = (
        f"text projection ({kind}, {cfg.text_hidden_states} x {cfg.text_hidden_size} inputs) + connectors "
        f"(video {cfg.video.num_layers} x {cfg.video.heads}x{cfg.video.head_dim}, "
        f"audio {cfg.audio.num_layers} x {cfg.audio.heads}x{cfg.audio.head_dim})"
    )
    check_layout(info.path, what, expected, found)
    sd = load_tensors(info.path, keys, device=device, dtype=dtype, rename=to_module_key)
    assign_weights(model, sd, info.path, "text projection")
    model.dtype = model_dtype
    return model.eval()


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
