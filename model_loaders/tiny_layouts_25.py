"""Tiny LTX-2.5 files in the published key layouts and names, for tests and tools.

One writer per released 2.5 file that has no 2.3 counterpart (the 2.5 conv VAE, audio VAE and
upscalers are the 2.3 layouts; the 2.5 transformer comes with the transformer rework):

=======================================================  ==============================================
released file                                            writer
=======================================================  ==============================================
``vae/ltx-2.5-video-vae-bf16.safetensors``               ``write_tiny_diffusion_vae`` (DiffVAE)
``model_patches/ltx-2.5-duration-head-bf16.safetensors``  ``write_tiny_duration_head``
``text_encoders/gemma4-12b-with-proj-ltx-2.5-*``         ``write_tiny_gemma4`` (bf16 or comfy-int8-convrot)
=======================================================  ==============================================

Same keys, prefixes, header keys and dtypes-by-role as the real files (see
``shared/real_headers/README.md``, LTX-2.5 section); shapes are scaled down.  Values are random
with the recipe of ``tiny_layouts.random_tensor`` (norm weights ~1, so positions matter).
"""

from __future__ import annotations

import copy
import json
import os
import zlib
from typing import Mapping

import torch

from .tiny_layouts import random_tensor

try:  # see model_loaders/__init__.py
    from ..ltx2.diffusion_vae import CLASS_NAME, DiffusionDecoder, DiffusionDecoderConfig, encoder_section
    from ..ltx2.duration_head import DurationHead
    from ..ltx2.video_vae import VideoEncoder
except ImportError:
    from ltx2.diffusion_vae import CLASS_NAME, DiffusionDecoder, DiffusionDecoderConfig, encoder_section
    from ltx2.duration_head import DurationHead
    from ltx2.video_vae import VideoEncoder

MODEL_VERSION = "2.5.0"
FILE_NAMES = {
    "diffusion_vae": "ltx-2.5-video-vae-bf16.safetensors",
    "duration_head": "ltx-2.5-duration-head-bf16.safetensors",
    "gemma4": "gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",
    "gemma4_int8": "gemma4-12b-with-proj-ltx-2.5-comfy-int8-convrot.safetensors",
}


def _values(shapes: Mapping[str, tuple], seed: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Random tensors per key, each from a generator seeded by ``seed`` and the key name."""
    out = {}
    for key, shape in sorted(shapes.items()):
        g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
        out[key] = random_tensor(key, tuple(shape), g).to(dtype).contiguous()
    return out


def _save(path, tensors: dict, metadata: dict) -> dict:
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    save_file(tensors, os.fspath(path), metadata=metadata)
    return tensors


# ------------------------------------------------------------------------------ DiffVAE
def tiny_diffusion_vae_config() -> dict:
    """``config.vae`` of a tiny DiffVAE: the released structure (nested, 4 + 1 stages) at small widths.

    The encoder is the tiny 2.3 encoder (latents of the released 128 channels, the four
    compression blocks); the decoder keeps the released strides (x8 time, x8 space, patch 4) at
    widths 64 / 32 / 16 / 16 / 8 (the released channel reductions), head_dim 8, 3x3x3 kernels and a 5x5x5 stage-5 kernel.
    """
    encoder = {
        "_class_name": "Encoder",
        "dims": 3,
        "in_channels": 3,
        "out_channels": 128,
        "base_channels": 128,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "constant",
        "latent_log_var_value": -7.824046010856292,
        "spatial_padding_mode": "zeros",
        "blocks": [
            ["compress_space_res", {"multiplier": 1}],
            ["compress_time_res", {"multiplier": 1}],
            ["compress_all_res", {"multiplier": 1}],
            ["compress_all_res", {"multiplier": 1}],
        ],
    }
    decoder = {
        "_class_name": "NADiffusionDecoder",
        "in_channels": 128,
        "out_channels": 3,
        "patch_size": 4,
        "head_dim": 8,
        "stage_channels": [64, 32, 16, 16, 8],
        "stage_depths": [1, 1, 1, 1, 2],
        "stage_kernels": [[3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [5, 5, 5]],
        "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 2]],
        "spatial_padding_mode": "zeros",
        "resampler_kind": "linear",
        "stage5_kernel": [5, 5, 5],
        "t_emb_dim": 16,
        "timestep_scale_multiplier": 1000.0,
        "default_num_inference_steps": 1,
        "model_output_type": "x0",
    }
    return {"_class_name": CLASS_NAME, "encoder": encoder, "decoder": decoder}


def _decoder_config_from_header(dec: Mapping) -> DiffusionDecoderConfig:
    """The decoder config a header section describes (widths given, as for building a file)."""
    ch = list(dec["stage_channels"])
    n = len(ch) - 1
    mlp = tuple((int(c * 4.0) + 15) // 16 * 16 for c in ch)
    return DiffusionDecoderConfig(
        in_channels=int(dec["in_channels"]),
        stage_channels=tuple(ch),
        stage_depths=tuple(dec["stage_depths"]),
        mlp_hidden=mlp,
        head_dim=int(dec["head_dim"]),
        stage_kernels=tuple(tuple(k) for k in dec["stage_kernels"][:n]),
        stage5_kernel=tuple(dec["stage5_kernel"]),
        upsample_strides=tuple(tuple(u[0]) for u in dec["upsamples"]),
        upsample_reductions=tuple(int(u[1]) for u in dec["upsamples"]),
        t_emb_dim=int(dec.get("t_emb_dim", 384)),
        t_freq_channels=256,
        num_chunks=7,
        context_channels=ch[-1],
        out_channels=int(dec["out_channels"]),
        patch_size=int(dec["patch_size"]),
        timestep_scale_multiplier=float(dec["timestep_scale_multiplier"]),
        model_output_type=dec.get("model_output_type", "x0"),
        default_num_inference_steps=int(dec["default_num_inference_steps"]),
    )


def diffusion_vae_layout(vae: Mapping | None = None) -> dict[str, tuple]:
    """Every key (bare: ``encoder.*``, ``decoder.*``, ``per_channel_statistics.*``) and shape of a DiffVAE file."""
    vae = vae or tiny_diffusion_vae_config()
    with torch.device("meta"):
        enc = VideoEncoder(encoder_section(vae), ops=torch.nn)
        dec = DiffusionDecoder(_decoder_config_from_header(vae["decoder"]), ops=torch.nn)
    shapes = {f"encoder.{k}": tuple(v.shape) for k, v in enc.state_dict().items()}
    shapes.update({f"decoder.{k}": tuple(v.shape) for k, v in dec.state_dict().items()})
    latent = int(vae["encoder"]["out_channels"])
    shapes.update({"per_channel_statistics.mean-of-means": (latent,), "per_channel_statistics.std-of-means": (latent,)})
    return shapes


def write_tiny_diffusion_vae(path, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                             vae: Mapping | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """Write a tiny ``ltx-2.5-video-vae-bf16.safetensors``; returns the tensors written."""
    vae = copy.deepcopy(dict(vae or tiny_diffusion_vae_config()))
    tensors = _values(diffusion_vae_layout(vae), seed, dtype)
    meta = {"config": json.dumps({"vae": vae}), "model_version": MODEL_VERSION}
    return _save(path, tensors, meta)


# ------------------------------------------------------------------------------ duration head
def write_tiny_duration_head(path, *, seed: int = 0, dtype: torch.dtype = torch.float32, video_width: int = 16,
                             audio_width: int = 8, dim: int = 16, mlp_width: int = 16,
                             prefix: str = "duration_head.") -> dict[str, torch.Tensor]:  # fmt: skip
    """Write a tiny duration head (the released 15 keys under ``duration_head.``, 4 heads).

    ``video_width`` / ``audio_width`` default to the tiny 2.3 transformer's cross-attention widths.
    """
    with torch.device("meta"):
        head = DurationHead(video_width, audio_width, dim=dim, mlp_width=mlp_width, operations=torch.nn)
    shapes = {prefix + k: tuple(v.shape) for k, v in head.state_dict().items()}
    tensors = _values(shapes, seed, dtype)
    config = {"transformer": {"cross_attention_dim": video_width, "audio_cross_attention_dim": audio_width}}
    return _save(path, tensors, {"config": json.dumps(config), "model_version": MODEL_VERSION})


__all__ = [
    "FILE_NAMES",
    "MODEL_VERSION",
    "diffusion_vae_layout",
    "tiny_diffusion_vae_config",
    "write_tiny_diffusion_vae",
    "write_tiny_duration_head",
]
