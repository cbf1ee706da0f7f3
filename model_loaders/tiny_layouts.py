"""Tiny official-layout LTX-2 checkpoints: header configs, random weights, the file writer.

A tiny checkpoint has the key names and header structure of the real single-file bundles
(``__metadata__`` with ``config`` = ``{transformer, vae, audio_vae, vocoder, scheduler}`` and,
for 2.3, ``model_version``), with shapes small enough for CPU tests: about 0.2 MB for the
transformer alone, 16-17 MB for the whole bundle in float32.  The latents have the released
models' widths -- video (B, 128, F', H/32, W/32), audio (B, 8, T, 16) -- so a tiny file samples
the very latent that ``OpenLTXEmptyLatent`` makes (it has no model input to follow).  The
configs are functional, not just small: the video VAE still compresses 32x32 pixels and 8
frames per latent, the audio VAE 4 mel frames and 4 mel bins per latent, the vocoders still
turn 100 mel frames per second into 24 kHz (2.0) or 16 kHz -> 48 kHz (2.3), and the VAE
latent widths equal the transformer's input widths, so the components chain end to end.

Widths (both versions):
  transformer  2 layers; video 2 heads x 8, audio 2 heads x 4, caption_channels 12,
               in/out 128 video channels, 128 audio features (8 channels x 16 mel bins)
  text         a fake 2-layer text encoder of width 12: projection input 12 x 3 hidden states
  video VAE    latent 128 channels (= transformer in_channels); the encoder runs at 128 with
               only the four compression blocks; decoder base 4 (2.0) / 2 (2.3)
  audio VAE    z 8 x 16 latent mel bins = 128 features (= audio_in_channels); 3 levels at
               ch 128 with no res blocks per level (the decoder still has one, ltx-core adds it)
  vocoder      HiFi-GAN / BigVGAN-v2 at 32 channels; BWE with a 64-point STFT

Most of the bundle is the two VAEs' 128-channel convolutions, which the real latent widths
force: ltx-core starts the video encoder at ``latent_channels`` and keeps the audio VAE at
``ch`` x ``ch_mult`` (>= 1), and ``ch`` must be 128.  The audio VAE (18 3x3 convolutions of
128 x 128, 10.8 MB) is the floor at three levels; the video VAE adds 4.7-5.6 MB.

ltx-core quirks the configs respect: 128 connector registers (ltx-core ignores the header key),
64 mel bins into the vocoders (their input conv is fixed at 2 x 64), audio ``ch`` equal to the
latent feature count (it sizes the statistics vector), 2.0 decoder widths that are multiples
of 8 at every residual upsampler.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from typing import Iterable

import torch

from .layouts import COMPONENTS, GEMMA_HIDDEN_STATES, TRANSFORMER_PREFIX, Layout, bundle_layout

try:  # see model_loaders/__init__.py
    from ..ltx2.config import official_19b_header
except ImportError:
    from ltx2.config import official_19b_header

VERSIONS = ("2.0", "2.3")
TINY_TEXT_HIDDEN_STATES = 3  # embeddings + 2 layers of a 12-wide stand-in for Gemma
# Tiny 2.0 files carry no model_version (ltx-core reads anything not starting with "2.3" as 2.0).
MODEL_VERSIONS = {"2.3": "2.3.0"}


def tiny_transformer_header(version: str) -> dict:
    """``config.transformer``: LTX2_SPEC 1.7 widths on top of the official 19B header."""
    h = official_19b_header()
    h.update(
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        caption_channels=12,
        audio_num_attention_heads=2,
        audio_attention_head_dim=4,
        audio_cross_attention_dim=8,
        in_channels=128,  # the released models' latent widths (= OpenLTXEmptyLatent's)
        out_channels=128,
        audio_in_channels=128,  # 8 channels x 16 mel bins
        audio_out_channels=128,
        av_ca_timestep_scale_multiplier=1000.0,
        connector_num_layers=2,
        connector_num_attention_heads=2,
        connector_attention_head_dim=6,  # 2.0 connectors run at caption_channels (2 x 6 = 12)
        connector_num_learnable_registers=128,
    )
    if version == "2.3":
        h.update(
            apply_gated_attention=True,
            cross_attention_adaln=True,
            caption_proj_before_connector=True,
            caption_projection_first_linear=False,
            caption_proj_input_norm=False,
            caption_projection_second_linear=False,
            # 2.3 connectors run at the stream widths (the projection happens before them)
            connector_attention_head_dim=8,
            audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=4,
            connector_apply_gated_attention=True,
        )
    return h


def tiny_vae_config(version: str) -> dict:
    """``config.vae``: 128 latent channels; the official compression blocks, at minimal widths.

    The encoder runs at the latent width (ltx-core starts it at ``latent_channels``), so it
    keeps only the four official compression blocks, at multiplier 1 and without res blocks
    (each ``res_x`` layer at 128 channels would cost 3.5 MB).  The decoder keeps the official
    block list at one layer each, from ``decoder_base_channels`` 2 (16 channels after
    ``conv_in``); 2.0 needs 4, because its residual ``compress_all`` upsamplers fold their
    input into 8 sub-positions, so every upsampler input must be a multiple of 8 channels.
    """
    encoder = [
        ["compress_space_res", {"multiplier": 1}],
        ["compress_time_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
    ]
    if version == "2.0":
        decoder = [
            ["res_x", {"num_layers": 1}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_all", {"residual": True, "multiplier": 2}],
            ["res_x", {"num_layers": 1}],
        ]
        padding, decoder_base = "reflect", 4  # 32 -> 16 -> 8 -> 4 channels
    else:
        decoder = [
            ["res_x", {"num_layers": 1}],
            ["compress_space", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_time", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
            ["compress_all", {"multiplier": 1}],
            ["res_x", {"num_layers": 1}],
            ["compress_all", {"multiplier": 2}],
            ["res_x", {"num_layers": 1}],
        ]
        padding, decoder_base = "zeros", 2  # 16 -> 8 -> 8 -> 4 -> 2 channels
    return {
        "_class_name": "CausalVideoAutoencoder",
        "dims": 3,
        "in_channels": 3,
        "out_channels": 3,
        "latent_channels": 128,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "uniform",
        "spatial_padding_mode": padding,
        "causal_decoder": False,
        "timestep_conditioning": False,
        "decoder_base_channels": decoder_base,
        "encoder_blocks": encoder,
        "decoder_blocks": decoder,
    }


def tiny_audio_vae_config() -> dict:
    """``config.audio_vae``: 64 mel bins in, (B, 8, T, 16) latents, three levels at ch 128.

    Three levels (two stride-2 downsamples) take 64 mel bins to 16 latent bins, as in the
    released models; ``ch`` must be 128 because it sizes the statistics vector over the
    8 x 16 latent features, and ``ch_mult`` cannot go below 1.  So the width stays 128
    throughout and ``num_res_blocks`` is 0: the encoder is conv_in, two downsamples and the
    mid block; the decoder has one res block per level (ltx-core builds ``num_res_blocks + 1``).
    """
    return {
        "model": {
            "params": {
                "ddconfig": {
                    "double_z": True,
                    "mel_bins": 64,
                    "z_channels": 8,
                    "resolution": 256,
                    "in_channels": 2,
                    "out_ch": 2,
                    "ch": 128,  # = z_channels * mel_bins / 4: sizes the statistics vector
                    "ch_mult": [1, 1, 1],
                    "num_res_blocks": 0,
                    "attn_resolutions": [],
                    "dropout": 0.0,
                    "mid_block_add_attention": False,
                    "norm_type": "pixel",
                    "causality_axis": "height",
                },
                "sampling_rate": 16000,
            }
        },
        "preprocessing": {
            "stft": {"filter_length": 1024, "hop_length": 160, "win_length": 1024, "causal": True},
            "mel": {"n_mel_channels": 64, "mel_fmin": 0, "mel_fmax": 8000},
        },
    }


def tiny_vocoder_config(version: str) -> dict:
    """``config.vocoder``: 2.0 HiFi-GAN (x240 = 24 kHz); 2.3 BigVGAN-v2 x160 + BWE x3 to 48 kHz."""
    if version == "2.0":
        return {
            "resblock": "1",
            "stereo": True,
            "upsample_initial_channel": 32,
            "upsample_rates": [6, 5, 2, 2, 2],
            "upsample_kernel_sizes": [16, 15, 8, 4, 4],
            "resblock_kernel_sizes": [3, 7],
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
            "output_sampling_rate": 24000,
        }
    amp = {"resblock": "AMP1", "stereo": True, "activation": "snakebeta"}
    amp.update(use_tanh_at_final=False, use_bias_at_final=False)
    return {
        "vocoder": {
            **amp,
            "upsample_initial_channel": 32,
            "upsample_rates": [5, 4, 2, 2, 2],  # x160: 100 mel frames/s -> 16 kHz
            "upsample_kernel_sizes": [11, 8, 4, 4, 4],
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]],
        },
        "bwe": {
            **amp,
            "apply_final_activation": False,
            "upsample_initial_channel": 32,
            "upsample_rates": [4, 3, 2, 2],  # 1000 mel frames/s (hop 16 at 16 kHz) -> 48 kHz
            "upsample_kernel_sizes": [8, 7, 4, 4],
            "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]],
            "input_sampling_rate": 16000,
            "output_sampling_rate": 48000,
            "hop_length": 16,
            "n_fft": 64,
            "win_size": 64,
            "num_mels": 64,
        },
    }


SCHEDULER = {
    "_class_name": "RectifiedFlowScheduler",
    "_diffusers_version": "0.25.1",
    "num_train_timesteps": 1000,
    "sampler": "LinearQuadratic",
}


def tiny_config(version: str) -> dict:
    """The whole ``__metadata__["config"]`` object of a tiny file."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    return {
        "transformer": tiny_transformer_header(version),
        "vae": tiny_vae_config(version),
        "audio_vae": tiny_audio_vae_config(),
        "vocoder": tiny_vocoder_config(version),
        "scheduler": dict(SCHEDULER),
    }


def tiny_metadata(version: str, config: dict | None = None) -> dict[str, str]:
    """``__metadata__`` of a tiny file (strings only, as safetensors requires)."""
    meta = {"config": json.dumps(config if config is not None else tiny_config(version))}
    if version in MODEL_VERSIONS:
        meta["model_version"] = MODEL_VERSIONS[version]
    return meta


def tiny_layout(version: str, components: Iterable[str] = COMPONENTS) -> Layout:
    """Every key of a tiny file (with its official prefix) and its shape."""
    per = bundle_layout(tiny_config(version), tuple(components), text_hidden_states=TINY_TEXT_HIDDEN_STATES)
    return {k: s for layout in per.values() for k, s in layout.items()}


# ------------------------------------------------------------------------------ random values
def random_tensor(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """A random value of a sane scale for the tensor named ``key`` (float32).

    Scales keep tiny forwards finite: weights ~ 1/sqrt(fan_in), norm weights ~ 1, statistics
    positive, anti-aliasing kernels positive and summing to 1.
    """
    name = key.rsplit(".", 1)[-1]
    randn = torch.randn(shape, generator=generator)
    if name == "filter":
        return torch.softmax(randn, dim=-1)
    if name == "std-of-means" or name == "mean-of-stds":
        return 0.5 + torch.rand(shape, generator=generator)
    if name == "timestep_scale_multiplier":
        return torch.full(shape, 1000.0)
    if name == "learnable_registers":
        return torch.rand(shape, generator=generator) * 2 - 1
    if name == "mel_basis":
        return torch.rand(shape, generator=generator) * 0.1
    parent = key.rsplit(".", 2)[-2] if key.count(".") else ""
    if name == "weight" and len(shape) == 1 and "norm" in parent:
        return 1.0 + 0.1 * randn
    if name == "weight" and len(shape) >= 2:
        return randn / math.sqrt(max(math.prod(shape[1:]), 1))
    if "table" in name:
        return 0.1 * randn
    return 0.05 * randn  # biases, snake alpha/beta (log scale), STFT bases, noise scales


def tiny_state_dict(
    version: str,
    components: Iterable[str] = COMPONENTS,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Random tensors for every key of a tiny file, reproducible from ``seed``.

    Each tensor is drawn from its own generator seeded by ``seed`` and the key name, so a key
    holds the same values in every file (the transformer-only file equals the bundle's
    transformer).
    """
    out = {}
    for key, shape in sorted(tiny_layout(version, components).items()):
        g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
        out[key] = random_tensor(key, shape, g).to(dtype).contiguous()
    return out


def write_tiny_checkpoint(
    path: str | os.PathLike,
    version: str,
    components: str = "all",
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    bare: bool = False,
) -> dict[str, torch.Tensor]:
    """Write a tiny official-layout file; returns the tensors written (file keys).

    Args:
        components: ``"all"`` (the single-file bundle) or ``"transformer"`` (the transformer
            alone, as found in ComfyUI's diffusion_models folder).
        bare: transformer only: drop the ``model.diffusion_model.`` prefix from the keys.
    """
    from safetensors.torch import save_file

    if components not in ("all", "transformer"):
        raise ValueError(f"components must be 'all' or 'transformer', got {components!r}")
    if bare and components != "transformer":
        raise ValueError("bare keys only exist for transformer-only files")
    names = COMPONENTS if components == "all" else ("transformer",)
    tensors = tiny_state_dict(version, names, seed=seed, dtype=dtype)
    if bare:
        tensors = {k[len(TRANSFORMER_PREFIX) :]: v for k, v in tensors.items()}
    save_file(tensors, os.fspath(path), metadata=tiny_metadata(version))
    return tensors


__all__ = [
    "COMPONENTS",
    "GEMMA_HIDDEN_STATES",
    "TINY_TEXT_HIDDEN_STATES",
    "VERSIONS",
    "random_tensor",
    "tiny_audio_vae_config",
    "tiny_config",
    "tiny_layout",
    "tiny_metadata",
    "tiny_state_dict",
    "tiny_transformer_header",
    "tiny_vae_config",
    "tiny_vocoder_config",
    "write_tiny_checkpoint",
]
