"""The LTX-2.5 DiffVAE file -> ``ltx2.diffusion_vae.DiffusionVAE``, loaded strictly.

``vae/ltx-2.5-video-vae-bf16.safetensors``: 396 tensors with bare keys -- 84 ``encoder.*``, 310
``decoder.*`` (``decoder.conv_in_x_t.weight`` marks the diffusion decoder, as ComfyUI detects it)
and ``per_channel_statistics.{mean-of-means,std-of-means}`` -- and the nested header config
``{"vae": {"_class_name": "CausalDiffusionVAE", "encoder": {...}, "decoder": {...}}}``.  A
``vae.``-prefixed copy (inside a bundle) is read the same way.

Widths, depths and head size come from the tensors (``DiffusionDecoderConfig.from_tensors``);
the header supplies the encoder's block list (never guessed: without it the file is refused, as
for the conv VAE) and the decoder's kernels, strides, patch size and sampling schedule (released
values with a log line when the decoder section is missing).  The model is built on the meta
device, compared key by key and shape by shape with the file, then filled strictly.

The conv 2.5 VAE (``ltx-2.5-video-vae-conv-bf16.safetensors``) is the 2.3 architecture and goes
through ``video_vae_loading.load_video_vae``; ``is_diffusion_vae`` tells the two apart.
"""

from __future__ import annotations

import os
from typing import Mapping

import torch

from .checkpoint import assign_weights, check_layout
from .safetensors_file import CheckpointError, load_tensors, parse_config, read_header

try:  # see model_loaders/__init__.py
    from ..ltx2.diffusion_vae import (CLASS_NAME, DECODER_MARKER, DiffusionDecoderConfig, DiffusionVAE,
                                      DiffusionVAEConfigError, encoder_section)  # fmt: skip
    from ..ltx2.video_vae import UNUSED_STATISTICS
except ImportError:
    from ltx2.diffusion_vae import (CLASS_NAME, DECODER_MARKER, DiffusionDecoderConfig, DiffusionVAE,
                                    DiffusionVAEConfigError, encoder_section)  # fmt: skip
    from ltx2.video_vae import UNUSED_STATISTICS


def _err(path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


def _prefix(keys) -> str | None:
    for prefix in ("", "vae."):
        if prefix + DECODER_MARKER in keys:
            return prefix
    return None


def is_diffusion_vae(path_or_keys) -> bool:
    """True when the file (or key collection) holds the LTX-2.5 diffusion decoder."""
    keys = path_or_keys if not isinstance(path_or_keys, (str, os.PathLike)) else read_header(path_or_keys).tensors
    return _prefix(keys) is not None


def _vae_section(path, config: Mapping | None) -> dict:
    vae = config.get("vae") if isinstance(config, Mapping) else None
    if isinstance(config, Mapping) and vae is None and "encoder" in config and "decoder" in config:
        vae = config  # the vae section itself
    if not isinstance(vae, Mapping) or not isinstance(vae.get("encoder"), Mapping):
        found = f"a config with keys {sorted(config)}" if isinstance(config, Mapping) else "no config"
        raise _err(
            path,
            "expected the DiffVAE config in the safetensors header (__metadata__['config'] = {'vae': {'_class_name': "
            f"'{CLASS_NAME}', 'encoder': {{...}}, 'decoder': {{...}}}}}}), found {found}. The encoder's block list is "
            "never guessed: use the official ltx-2.5-video-vae-bf16.safetensors, or a copy saved with its header.",
        )
    name = vae.get("_class_name", CLASS_NAME)
    if name != CLASS_NAME:
        raise _err(path, f"the header's vae config is a {name!r}, but the weights hold a diffusion decoder "
                         f"({DECODER_MARKER}); expected _class_name {CLASS_NAME!r}. The header and weights disagree.")  # fmt: skip
    return dict(vae)


def _dtype(dtypes: Mapping[str, str]) -> torch.dtype:
    from .safetensors_file import TORCH_DTYPES

    floats = [TORCH_DTYPES[d] for d in dtypes.values() if d in ("BF16", "F16", "F32")]
    return max(set(floats), key=floats.count) if floats else torch.bfloat16


def diffusion_vae_config(path: str | os.PathLike) -> tuple[dict, DiffusionDecoderConfig, str, dict, dict]:
    """(flat encoder section, decoder config, key prefix, shapes, dtypes) from the header only."""
    header = read_header(path)
    shapes = {k: e.shape for k, e in header.tensors.items()}
    prefix = _prefix(shapes)
    if prefix is None:
        conv = any(k.startswith(("decoder.up_blocks.", "vae.decoder.up_blocks.")) for k in shapes)
        hint = (" It is a conv video VAE (the 2.3 architecture; also ltx-2.5-video-vae-conv): load it with the video "
                "VAE loader.") if conv else ""  # fmt: skip
        raise _err(path, f"expected the LTX-2.5 diffusion VAE (a '{DECODER_MARKER}' tensor), found none.{hint}")
    vae = _vae_section(path, parse_config(header))
    try:
        encoder = encoder_section(vae)
        decoder_shapes = {k[len(prefix) + len("decoder."):]: s for k, s in shapes.items() if k.startswith(prefix + "decoder.")}
        decoder = DiffusionDecoderConfig.from_tensors(decoder_shapes, vae.get("decoder"), source=os.fspath(path))
    except DiffusionVAEConfigError as err:
        raise _err(path, f"the header and weights describe no usable DiffVAE: {err}") from None
    dtypes = {k: e.dtype for k, e in header.tensors.items()}
    return encoder, decoder, prefix, shapes, dtypes


def load_diffusion_vae(path: str | os.PathLike, dtype: torch.dtype | None = None, device: torch.device | str = "cpu",
                       operations=None) -> DiffusionVAE:  # fmt: skip
    """The DiffVAE of ``path`` (eval mode); ``dtype=None`` keeps the file's dtype."""
    encoder, decoder, prefix, shapes, dtypes = diffusion_vae_config(path)
    model_dtype = dtype or _dtype(dtypes)
    try:
        model = DiffusionVAE(encoder, decoder, operations=operations, dtype=model_dtype, device=torch.device("meta"))
    except (DiffusionVAEConfigError, ValueError) as err:
        raise _err(path, f"the header's vae config is not usable: {err}") from None
    unused = {f"per_channel_statistics.{n}" for n in UNUSED_STATISTICS}
    found = {k[len(prefix):]: tuple(s) for k, s in shapes.items() if k.startswith(prefix) and k[len(prefix):] not in unused}
    found = {k: s for k, s in found.items() if k.startswith(("encoder.", "decoder.", "per_channel_statistics."))}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_layout(os.fspath(path), "DiffVAE", expected, found, prefix)
    sd = load_tensors(path, [prefix + k for k in expected], device=device, dtype=dtype, rename=lambda k: k[len(prefix):])
    assign_weights(model, sd, os.fspath(path), "DiffVAE")
    model.dtype = model_dtype
    return model.eval().requires_grad_(False)


__all__ = ["diffusion_vae_config", "is_diffusion_vae", "load_diffusion_vae"]
