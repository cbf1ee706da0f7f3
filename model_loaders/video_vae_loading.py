"""File -> ``ltx2.video_vae.VideoVAE``, loaded strictly.

Accepted files:

* the single-file LTX-2 bundle (a path or a ``CheckpointInfo``): keys ``vae.*``, config in the
  header's ``config["vae"]``;
* a standalone VAE file (ComfyUI's ``models/vae`` folder): keys ``vae.encoder.*`` /
  ``vae.decoder.*`` / ``vae.per_channel_statistics.*`` or bare ``encoder.*`` / ``decoder.*`` /
  ``per_channel_statistics.*``; config in the header's ``config``, either a full config with a
  ``vae`` section or the ``vae`` section itself.  Without a usable config it is a
  ``CheckpointError`` (block lists and widths are never guessed).

Whether the decoder is timestep-conditioned is read from the keys
(``decoder.last_time_embedder.*`` / ``decoder.last_scale_shift_table``), never from the
header flag (ltx-core defaults a missing flag to True).  The model is built on the meta device,
checked against the file's keys and shapes before any data is read, and filled with
``load_state_dict(strict=True, assign=True)``.  The two statistics vectors real files carry
but nothing reads (``per_channel_statistics.channel``, ``.mean-of-stds``) are accepted and
dropped; every other unknown key is an error.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Mapping

import torch

from .checkpoint import CheckpointInfo, assign_weights, check_layout
from .safetensors_file import TORCH_DTYPES, CheckpointError, load_tensors, parse_config, read_header

try:  # see model_loaders/__init__.py
    from ..ltx2.video_vae import UNUSED_STATISTICS, VideoVAE
except ImportError:
    from ltx2.video_vae import UNUSED_STATISTICS, VideoVAE

_HALVES = ("encoder.", "decoder.", "per_channel_statistics.")
_CONDITIONED_MARKERS = ("decoder.last_time_embedder.", "decoder.last_scale_shift_table")


def _err(path: str, message: str) -> CheckpointError:
    return CheckpointError(f"{path}: {message}")


def _vae_section(config: Mapping[str, Any] | None) -> dict | None:
    """The ``vae`` section of a header config, or the config itself when it is one."""
    if not isinstance(config, Mapping):
        return None
    if isinstance(config.get("vae"), Mapping):
        return dict(config["vae"])
    if "encoder_blocks" in config or "decoder_blocks" in config:
        return dict(config)
    return None


def _source(path_or_info) -> tuple[str, dict | None, dict[str, tuple], dict[str, str]]:
    """(path, config, shapes, dtypes) from a CheckpointInfo or any safetensors path."""
    if isinstance(path_or_info, CheckpointInfo):
        info = path_or_info
        return info.path, info.config, dict(info.shapes), dict(info.dtypes)
    header = read_header(path_or_info)
    shapes = {k: e.shape for k, e in header.tensors.items()}
    dtypes = {k: e.dtype for k, e in header.tensors.items()}
    return os.fspath(path_or_info), parse_config(header), shapes, dtypes


def _vae_keys(path: str, shapes: Mapping[str, tuple]) -> tuple[str, dict[str, str]]:
    """(file prefix, {module key: file key}) of the VAE tensors in the file."""
    for prefix in ("vae.", ""):
        keys = {k[len(prefix) :]: k for k in shapes if k.startswith(prefix) and k[len(prefix) :].startswith(_HALVES)}
        if any(k.startswith(("encoder.", "decoder.")) for k in keys):
            return prefix, keys
    shown = ", ".join(repr(k) for k in sorted(shapes)[:5])
    raise _err(
        path,
        "expected LTX-2 video VAE weights ('vae.encoder.*' / 'vae.decoder.*', or bare 'encoder.*' / 'decoder.*'), "
        f"found none (first keys: {shown}). Pick the LTX-2 checkpoint or its standalone video VAE file.",
    )


def _file_dtype(dtypes: Mapping[str, str], shapes: Mapping[str, tuple], keys) -> torch.dtype:
    count: Counter = Counter()
    for k in keys:
        n = 1
        for s in shapes[k]:
            n *= s
        count[dtypes[k]] += n
    for name, _ in count.most_common():
        if name in ("F32", "F16", "BF16", "F64"):
            return TORCH_DTYPES[name]
    return torch.bfloat16


def load_video_vae(path_or_info, dtype: torch.dtype | None = None, device: torch.device | str = "cpu",
                   operations=None) -> VideoVAE:  # fmt: skip
    """The video VAE of a bundle or standalone file, loaded strictly (eval mode).

    ``dtype=None`` keeps the file's dtype.  Raises ``CheckpointError`` naming the file for a
    missing config, missing / unexpected keys or shape mismatches.
    """
    path, config, shapes, dtypes = _source(path_or_info)
    prefix, keys = _vae_keys(path, shapes)
    vae = _vae_section(config)
    if vae is None:
        found = f"a config with sections {sorted(config)}" if isinstance(config, Mapping) else "no config"
        raise _err(
            path,
            "expected the video VAE config in the safetensors header (__metadata__['config'] holding a 'vae' section, "
            f"or the vae section itself with 'encoder_blocks' / 'decoder_blocks'), found {found}. The block lists "
            "and widths are never guessed: use the official LTX-2 file, or a VAE file saved with its header config.",
        )
    conditioned = any(k.startswith(_CONDITIONED_MARKERS) for k in keys)
    model_dtype = dtype or _file_dtype(dtypes, shapes, keys.values())
    try:
        model = VideoVAE(vae, timestep_conditioning=conditioned, operations=operations, dtype=model_dtype,
                         device=torch.device("meta"))  # fmt: skip
    except ValueError as err:
        raise _err(path, f"the header's vae config is not usable: {err}") from None
    unused = {f"per_channel_statistics.{n}" for n in UNUSED_STATISTICS}
    wanted = {k: f for k, f in keys.items() if k not in unused}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    kind = "timestep-conditioned" if conditioned else "plain"
    check_layout(path, f"video VAE ({kind} decoder)", expected, {k: tuple(shapes[f]) for k, f in wanted.items()}, prefix)
    sd = load_tensors(path, wanted.values(), device=device, dtype=dtype, rename=lambda k: k[len(prefix) :])
    assign_weights(model, sd, path, "video VAE")
    model.dtype = model_dtype
    return model.eval()


__all__ = ["load_video_vae"]
