"""Files -> the audio VAE and the vocoder, loaded strictly.

Sources understood (a path or the ``CheckpointInfo`` of ``read_checkpoint``):

* the single-file bundles: ``audio_vae.{encoder,decoder,per_channel_statistics}.*`` and
  ``vocoder.*`` (2.3: ``vocoder.vocoder.*``, ``vocoder.bwe_generator.*``, ``vocoder.mel_stft.*``),
  config in the header's ``audio_vae`` / ``vocoder`` sections;
* audio files (Kijai's ``LTX2_audio_vae_bf16`` / ``LTX23_audio_vae_bf16``, unsloth's
  ``..._audio_vae``), with those keys or bare ones (see ``aux_parts``), with a header config
  (the whole config, or the section itself) or none at all.

The configs come from ``audio_config``: shapes from the tensors, what no shape tells from the
header, else the released values (one log line says so); a header value that contradicts a
shape is an error naming both.  The module is built on the meta device, its keys and shapes
are checked against the file before any tensor data is read, and the weights are put in place
with ``load_state_dict(strict=True, assign=True)``.
"""

from __future__ import annotations

import logging
import os
from typing import Callable

import torch
from torch import nn

from .audio_config import audio_vae_section, resolve_audio_vae_config, resolve_vocoder_config, vocoder_section
from .aux_parts import Part, find_parts
from .checkpoint import assign_weights, check_layout
from .config_sources import ResolvedConfig
from .file_header import float_dtype
from .published_files import where_published
from .safetensors_file import CheckpointError, load_tensors
from .video_vae_loading import file_source

try:  # see model_loaders/__init__.py
    from ..ltx2.audio_vae import AudioVAE
    from ..ltx2.vocoder import build_vocoder, is_bwe_vocoder
except ImportError:
    from ltx2.audio_vae import AudioVAE
    from ltx2.vocoder import build_vocoder, is_bwe_vocoder

log = logging.getLogger(__name__)


def _part(path: str, shapes, name: str, what: str) -> Part:
    part = find_parts(shapes).get(name)
    if part is None:
        raise CheckpointError(
            f"{path}: expected {what} weights in this file, found none (first keys: {sorted(shapes)[:5]}). "
            f"Pick a file that holds them: {where_published('audio_vae')}."
        )
    return part


def _log_release(path: str, what: str, resolved: ResolvedConfig) -> None:
    if not resolved.had_header:
        keys = ", ".join(sorted({k.rsplit(".", 1)[-1] for k in resolved.from_release()}))
        log.info("%s: no %s config in the header; shapes read from the tensors, the other settings (%s) are the "
                 "released LTX-%s values", os.path.basename(path), what, keys, resolved.version or "2")  # fmt: skip


def _load(path: str, shapes, dtypes, part: Part, what: str, factory: Callable[..., nn.Module], dtype, device,
          operations) -> nn.Module:  # fmt: skip
    model_dtype = dtype or float_dtype(dtypes, shapes, part.keys.values())
    try:
        model = factory(operations=operations, dtype=model_dtype, device=torch.device("meta"))
    except ValueError as err:  # config problems: name the file
        raise CheckpointError(f"{path}: {err}") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_layout(path, what, expected, {k: tuple(shapes[f]) for k, f in part.keys.items()}, part.prefix)
    to_module = {f: k for k, f in part.keys.items()}
    sd = load_tensors(path, list(part.keys.values()), device=device, dtype=dtype, rename=to_module.__getitem__)
    assign_weights(model, sd, path, what)
    model.dtype = model_dtype
    return model.to(device).eval()  # moves the buffers the file does not hold (the BWE resampler)


def audio_vae_config(path_or_info) -> ResolvedConfig:
    """The resolved ``audio_vae`` config of a file (no tensor data read)."""
    path, config, shapes, _ = file_source(path_or_info)
    part = _part(path, shapes, "audio_vae", "audio VAE")
    return resolve_audio_vae_config(path, audio_vae_section(config), {k: shapes[f] for k, f in part.keys.items()},
                                    part.prefix)


def vocoder_config(path_or_info) -> ResolvedConfig:
    """The resolved ``vocoder`` config of a file (no tensor data read)."""
    path, config, shapes, _ = file_source(path_or_info)
    part = _part(path, shapes, "vocoder", "vocoder")
    return resolve_vocoder_config(path, vocoder_section(config), {k: shapes[f] for k, f in part.keys.items()},
                                  part.prefix)


def load_audio_vae(
    path_or_info, dtype: torch.dtype | None = None, device: torch.device | str = "cpu", operations=None
) -> AudioVAE:
    """``ltx2.audio_vae.AudioVAE`` with the file's weights (eval mode; ``dtype=None`` keeps the file's)."""
    path, config, shapes, dtypes = file_source(path_or_info)
    part = _part(path, shapes, "audio_vae", "audio VAE")
    resolved = resolve_audio_vae_config(path, audio_vae_section(config), {k: shapes[f] for k, f in part.keys.items()},
                                        part.prefix)
    _log_release(path, "audio VAE", resolved)
    section = resolved.config
    return _load(path, shapes, dtypes, part, "audio VAE", lambda **kw: AudioVAE(section, **kw), dtype, device,
                 operations)  # fmt: skip


def load_vocoder(
    path_or_info, dtype: torch.dtype | None = None, device: torch.device | str = "cpu", operations=None
) -> nn.Module:
    """The 2.0 HiFi-GAN or the 2.3 BigVGAN-v2 + BWE vocoder (``ltx2.vocoder.build_vocoder``), weights loaded."""
    path, config, shapes, dtypes = file_source(path_or_info)
    part = _part(path, shapes, "vocoder", "vocoder")
    resolved = resolve_vocoder_config(path, vocoder_section(config), {k: shapes[f] for k, f in part.keys.items()},
                                      part.prefix)
    _log_release(path, "vocoder", resolved)
    section = resolved.config
    kind = "2.3 BigVGAN-v2 + BWE vocoder" if is_bwe_vocoder(section) else "2.0 HiFi-GAN vocoder"
    return _load(path, shapes, dtypes, part, kind, lambda **kw: build_vocoder(section, **kw), dtype, device, operations)


__all__ = ["audio_vae_config", "load_audio_vae", "load_vocoder", "vocoder_config"]
