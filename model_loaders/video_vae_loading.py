"""File -> ``ltx2.video_vae.VideoVAE``, loaded strictly.

Accepted files (a path or a ``CheckpointInfo``):

* the single-file bundles: keys ``vae.*``, config in the header's ``config["vae"]``;
* standalone video VAE files (ComfyUI's ``models/vae``: Kijai's ``LTX2_video_vae_bf16`` /
  ``LTX23_video_vae_bf16``, unsloth's ``ltx-2.3-22b-dev_video_vae``): bare ``encoder.*`` /
  ``decoder.*`` / ``per_channel_statistics.*`` keys or with the ``vae.`` prefix; a header config
  holding a ``vae`` section, the section itself, or none at all.

The config comes from ``video_vae_config.resolve_video_vae_config``: every shape (block lists,
widths, patch size, timestep conditioning) from the tensors, what no shape tells from the
header, else from the released LTX-2 / LTX-2.3 VAE the tensors match (one log line says so).
A header value that contradicts a shape is an error naming both.  The model is built on the
meta device, checked against the file's keys and shapes before any data is read, and filled
with ``load_state_dict(strict=True, assign=True)``.  The two statistics vectors real files
carry but nothing reads (``per_channel_statistics.channel``, ``.mean-of-stds``) are accepted and
dropped; every other unknown key is an error.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping

import torch

from .aux_parts import find_parts
from .checkpoint import CheckpointInfo, assign_weights, check_layout
from .config_sources import ResolvedConfig
from .file_header import float_dtype, read_file_header
from .published_files import where_published
from .safetensors_file import CheckpointError, load_tensors
from .video_vae_config import resolve_video_vae_config, vae_section

try:  # see model_loaders/__init__.py
    from ..ltx2.video_vae import UNUSED_STATISTICS, VideoVAE
except ImportError:
    from ltx2.video_vae import UNUSED_STATISTICS, VideoVAE

log = logging.getLogger(__name__)


def _err(path: str, message: str) -> CheckpointError:
    return CheckpointError(f"{path}: {message}")


def file_source(path_or_info) -> tuple[str, dict | None, dict[str, tuple], dict[str, str]]:
    """(path, header config or None, shapes, dtypes) from a CheckpointInfo or any model file's path."""
    if isinstance(path_or_info, CheckpointInfo):
        info = path_or_info
        return info.path, info.config, dict(info.shapes), dict(info.dtypes)
    header = read_file_header(path_or_info)
    if header.format != "safetensors":  # no VAE / vocoder is published as GGUF
        raise _err(header.path, "expected a .safetensors file with LTX-2 VAE / audio VAE / vocoder weights, found a "
                   f"{header.format.upper()} file. The VAE parts are in the LTX-2 checkpoint or in the published VAE "
                   "files (models/vae).")  # fmt: skip
    return header.path, header.config, dict(header.shapes), dict(header.dtypes)


def _vae_keys(path: str, shapes: Mapping[str, tuple]) -> tuple[str, dict[str, str]]:
    """(file prefix, {module key: file key}) of the video VAE tensors in the file."""
    part = find_parts(shapes).get("video_vae")
    if part is not None:
        return part.prefix, part.keys
    shown = ", ".join(repr(k) for k in sorted(shapes)[:5])
    raise _err(
        path,
        "expected LTX-2 video VAE weights ('vae.encoder.*' / 'vae.decoder.*', or bare 'encoder.*' / 'decoder.*' "
        f"with 3D convolutions), found none (first keys: {shown}). Pick a file that holds it: "
        f"{where_published('video_vae')}.",
    )


def video_vae_config(path_or_info) -> ResolvedConfig:
    """The resolved ``vae`` config of a file (no tensor data read); see ``resolve_video_vae_config``."""
    path, config, shapes, _ = file_source(path_or_info)
    prefix, keys = _vae_keys(path, shapes)
    return resolve_video_vae_config(path, vae_section(config), {k: shapes[f] for k, f in keys.items()}, prefix)


def _log_release(path: str, resolved: ResolvedConfig) -> None:
    if not resolved.had_header:
        log.info(
            "%s: no video VAE config in the header; shapes read from the tensors, the other settings (%s) are the "
            "released LTX-%s VAE's",
            os.path.basename(path), ", ".join(k.rsplit(".", 1)[-1] for k in resolved.from_release()), resolved.version,
        )  # fmt: skip


def load_video_vae(path_or_info, dtype: torch.dtype | None = None, device: torch.device | str = "cpu",
                   operations=None) -> VideoVAE:  # fmt: skip
    """The video VAE of a bundle or standalone file, loaded strictly (eval mode).

    ``dtype=None`` keeps the file's dtype.  Raises ``CheckpointError`` naming the file for a
    header that contradicts the tensors, missing / unexpected keys or shape mismatches.
    """
    path, config, shapes, dtypes = file_source(path_or_info)
    prefix, keys = _vae_keys(path, shapes)
    resolved = resolve_video_vae_config(path, vae_section(config), {k: shapes[f] for k, f in keys.items()}, prefix)
    _log_release(path, resolved)
    vae = resolved.config
    conditioned = bool(vae["timestep_conditioning"])
    model_dtype = dtype or float_dtype(dtypes, shapes, keys.values())
    try:
        model = VideoVAE(vae, timestep_conditioning=conditioned, operations=operations, dtype=model_dtype,
                         device=torch.device("meta"))  # fmt: skip
    except ValueError as err:
        raise _err(path, f"the header's vae config is not usable: {err}") from None
    unused = {f"per_channel_statistics.{n}" for n in UNUSED_STATISTICS}
    wanted = {k: f for k, f in keys.items() if k not in unused}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    kind = "timestep-conditioned" if conditioned else "plain"
    found = {k: tuple(shapes[f]) for k, f in wanted.items()}
    check_layout(path, f"video VAE ({kind} decoder)", expected, found, prefix)
    sd = load_tensors(path, wanted.values(), device=device, dtype=dtype, rename=lambda k: k[len(prefix) :])
    assign_weights(model, sd, path, "video VAE")
    model.dtype = model_dtype
    model.version = resolved.version
    return model.eval()


__all__ = ["file_source", "load_video_vae", "video_vae_config"]
