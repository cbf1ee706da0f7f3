"""Tiny official-layout LTX-2 checkpoints: header configs, random weights, the file writers.

A tiny checkpoint has the key names and header of the real single-file bundles
(``__metadata__`` with ``config`` = ``{transformer, vae, audio_vae, vocoder, scheduler}`` and,
for 2.3, ``model_version``).  Its ``config`` is the published one (``published_configs``)
key for key, with only the shape keys scaled down -- nothing added, so no
``audio_in_channels`` (the published transformer section lacks it) -- and shapes small enough
for CPU tests: about 0.2 MB for the
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

Variants of the layouts users have (``write_tiny_checkpoint``): the bundle, the transformer
alone or with its text connectors, keys with ``model.diffusion_model.`` / ``diffusion_model.``
/ no prefix, header metadata as published / config only / none; ``write_tiny_gguf``: GGUF as
the community converts it (city96's type rules, config in a ``config`` KV, ours, or none).

ltx-core quirks the configs respect: 128 connector registers (ltx-core ignores the header key),
64 mel bins into the vocoders (their input conv is fixed at 2 x 64), audio ``ch`` equal to the
latent feature count (it sizes the statistics vector), 2.0 decoder widths that are multiples
of 8 at every residual upsampler.
"""

from __future__ import annotations

import copy
import json
import math
import os
import zlib
from typing import Any, Iterable, Mapping

import torch

from .layouts import COMPONENTS, GEMMA_HIDDEN_STATES, TRANSFORMER_PREFIX, Layout, bundle_layout
from .published_configs import MODEL_VERSIONS, published_config

try:  # see model_loaders/__init__.py
    from ..ltx2.config import TransformerConfig
except ImportError:
    from ltx2.config import TransformerConfig

VERSIONS = ("2.0", "2.3")
TINY_TEXT_HIDDEN_STATES = 3  # embeddings + 2 layers of a 12-wide stand-in for Gemma
TINY_AUDIO_IN_CHANNELS = 128  # 8 latent channels x 16 mel bins; only audio_patchify_proj's shape says so
# Head counts a tiny transformer can have: 2 (the default: video 2 x 8, audio 2 x 4) or the
# released 32 (video 32 x 4, audio 32 x 2), for LTX-2.0 files without a header, whose tensors
# do not state the head count (the loader then assumes the released 32).
TINY_HEADS = {2: (8, 4), 32: (4, 2)}
COMPONENT_SETS = {
    "all": COMPONENTS,
    "transformer": ("transformer",),
    "transformer+connectors": ("transformer", "text_connectors"),
}
METADATA_KINDS = ("published", "config", "none")


def _scale(section: dict, changes: Mapping[str, Any], where: str) -> dict:
    """``section`` with ``changes`` applied; every changed key must exist there (nothing is added)."""
    out = copy.deepcopy(section)
    for key, value in changes.items():
        if key not in out:
            raise KeyError(f"config.{where} of the published files has no {key!r}; tiny configs add nothing")
        if isinstance(value, Mapping) and isinstance(out[key], dict):
            out[key] = _scale(out[key], value, f"{where}.{key}")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _transformer_shapes(version: str, heads: int) -> dict:
    """The shape keys of the published ``config.transformer``, scaled down (LTX2_SPEC 1.7 widths)."""
    if heads not in TINY_HEADS:
        raise ValueError(f"heads must be one of {sorted(TINY_HEADS)}, got {heads!r}")
    head_dim, audio_head_dim = TINY_HEADS[heads]
    video, audio = heads * head_dim, heads * audio_head_dim
    out = dict(
        num_layers=2,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        cross_attention_dim=video,
        caption_channels=12,
        audio_num_attention_heads=heads,
        audio_attention_head_dim=audio_head_dim,
        audio_cross_attention_dim=audio,
        in_channels=128,  # the released models' latent widths (= OpenLTXEmptyLatent's)
        out_channels=128,
        audio_out_channels=128,  # 8 channels x 16 mel bins
        connector_num_layers=2,
        connector_num_attention_heads=2,
        connector_attention_head_dim=6,  # 2.0 connectors run at caption_channels (2 x 6 = 12)
        connector_num_learnable_registers=128,  # ltx-core builds 128 whatever the header says
    )
    if version == "2.3":  # 2.3 connectors run at the stream widths (the projection happens before them)
        out.update(
            connector_attention_head_dim=video // 2,
            audio_connector_num_attention_heads=2,
            audio_connector_attention_head_dim=audio // 2,
        )
    return out


def tiny_transformer_header(version: str, *, heads: int = 2) -> dict:
    """``config.transformer``: the published section with its shape keys scaled down.

    Exactly the published key set: no ``audio_in_channels`` (the tiny transformer's audio
    input is 128 wide, as ltx-core assumes when the header does not say).
    """
    return _scale(published_config(version)["transformer"], _transformer_shapes(version, heads), "transformer")


def tiny_transformer_values(version: str, *, heads: int = 2) -> dict:
    """A complete description for ``TransformerConfig.from_header``: the header + ``audio_in_channels``."""
    return {**tiny_transformer_header(version, heads=heads), "audio_in_channels": TINY_AUDIO_IN_CHANNELS}


def tiny_transformer_config(version: str, *, heads: int = 2) -> TransformerConfig:
    """The ``TransformerConfig`` of the tiny transformer (what the loader derives from a tiny file)."""
    return TransformerConfig.from_header(tiny_transformer_values(version, heads=heads), source="tiny")


def tiny_vae_config(version: str) -> dict:
    """``config.vae``: the published section with minimal block lists (latent width 128 kept).

    The encoder runs at the latent width (ltx-core starts it at ``latent_channels``), so it
    keeps only the four official compression blocks, at multiplier 1 and without res blocks
    (each ``res_x`` layer at 128 channels would cost 3.5 MB).  The decoder keeps the official
    block list at one layer each, from ``decoder_base_channels`` 2 (16 channels after
    ``conv_in``); 2.0 needs 4, because its residual ``compress_all`` upsamplers fold their
    input into 8 sub-positions, so every upsampler input must be a multiple of 8 channels.
    Block entries keep the published entries' keys.
    """
    encoder = [
        ["compress_space_res", {"multiplier": 1}],
        ["compress_time_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
        ["compress_all_res", {"multiplier": 1}],
    ]
    if version == "2.0":
        res = ["res_x", {"inject_noise": False, "num_layers": 1}]
        up = ["compress_all", {"multiplier": 2, "residual": True}]
        decoder = [res, up, res, up, res, up, res]
        decoder_base = 4  # 32 -> 16 -> 8 -> 4 channels
    else:
        res = ["res_x", {"num_layers": 1}]
        decoder = [
            res, ["compress_space", {"multiplier": 2}], res, ["compress_time", {"multiplier": 2}], res,
            ["compress_all", {"multiplier": 1}], res, ["compress_all", {"multiplier": 2}], res,
        ]  # fmt: skip
        decoder_base = 2  # 16 -> 8 -> 8 -> 4 -> 2 channels
    changes = {"encoder_blocks": encoder, "decoder_blocks": decoder, "decoder_base_channels": decoder_base}
    return _scale(published_config(version)["vae"], changes, "vae")


def tiny_audio_vae_config(version: str = "2.0") -> dict:
    """``config.audio_vae``: 64 mel bins in, (B, 8, T, 16) latents, three levels at ch 128.

    Three levels (two stride-2 downsamples) take 64 mel bins to 16 latent bins, as in the
    released models; ``ch`` stays 128 because it sizes the statistics vector over the
    8 x 16 latent features, and ``ch_mult`` cannot go below 1.  So the width stays 128
    throughout and ``num_res_blocks`` is 0: the encoder is conv_in, two downsamples and the
    mid block; the decoder has one res block per level (ltx-core builds ``num_res_blocks + 1``).
    """
    changes = {"model": {"params": {"ddconfig": {"ch_mult": [1, 1, 1], "num_res_blocks": 0}}}}
    return _scale(published_config(version)["audio_vae"], changes, "audio_vae")


def tiny_vocoder_config(version: str) -> dict:
    """``config.vocoder``: 2.0 HiFi-GAN (x240 = 24 kHz); 2.3 BigVGAN-v2 x160 + BWE x3 to 48 kHz, at 32 channels."""
    if version == "2.0":
        changes = {"upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 7],
                   "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]}  # fmt: skip
    else:
        small = {"upsample_initial_channel": 32, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]]}
        changes = {
            # x160: 100 mel frames/s -> 16 kHz
            "vocoder": {**small, "upsample_rates": [5, 4, 2, 2, 2], "upsample_kernel_sizes": [11, 8, 4, 4, 4]},
            # 1000 mel frames/s (hop 16 at 16 kHz) -> 48 kHz, with a 64-point STFT
            "bwe": {**small, "upsample_rates": [4, 3, 2, 2], "upsample_kernel_sizes": [8, 7, 4, 4],
                    "hop_length": 16, "n_fft": 64, "win_size": 64},
        }  # fmt: skip
    return _scale(published_config(version)["vocoder"], changes, "vocoder")


def tiny_config(version: str, *, heads: int = 2) -> dict:
    """The whole ``__metadata__["config"]`` of a tiny file: the published config, shape keys scaled down."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    return {
        "transformer": tiny_transformer_header(version, heads=heads),
        "vae": tiny_vae_config(version),
        "audio_vae": tiny_audio_vae_config(version),
        "vocoder": tiny_vocoder_config(version),
        "scheduler": published_config(version)["scheduler"],
    }


def tiny_metadata(version: str, config: dict | None = None, kind: str = "published", *, heads: int = 2) -> dict[str, str]:
    """``__metadata__`` of a tiny file (strings only, as safetensors requires).

    ``kind``: ``"published"`` = ``config`` (+ ``model_version`` for 2.3) as the published
    files; ``"config"`` = ``config`` only; ``"none"`` = no metadata (repacks that drop it).
    """
    if kind not in METADATA_KINDS:
        raise ValueError(f"metadata kind must be one of {METADATA_KINDS}, got {kind!r}")
    if kind == "none":
        return {}
    meta = {"config": json.dumps(config if config is not None else tiny_config(version, heads=heads))}
    if kind == "published" and version in MODEL_VERSIONS:
        meta["model_version"] = MODEL_VERSIONS[version]
    return meta


def tiny_layout(version: str, components: Iterable[str] = COMPONENTS, *, heads: int = 2) -> Layout:
    """Every key of a tiny file (with its official prefix) and its shape."""
    per = bundle_layout(tiny_config(version, heads=heads), tuple(components), text_hidden_states=TINY_TEXT_HIDDEN_STATES)
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
    heads: int = 2,
) -> dict[str, torch.Tensor]:
    """Random tensors for every key of a tiny file, reproducible from ``seed``.

    Each tensor is drawn from its own generator seeded by ``seed`` and the key name, so a key
    holds the same values in every file (the transformer-only file equals the bundle's
    transformer).
    """
    out = {}
    for key, shape in sorted(tiny_layout(version, components, heads=heads).items()):
        g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
        out[key] = random_tensor(key, shape, g).to(dtype).contiguous()
    return out


def _with_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Transformer and connector keys moved from ``model.diffusion_model.`` to ``prefix``."""
    n = len(TRANSFORMER_PREFIX)
    return {(prefix + k[n:] if k.startswith(TRANSFORMER_PREFIX) else k): v for k, v in tensors.items()}


def write_tiny_checkpoint(
    path: str | os.PathLike,
    version: str,
    components: str = "all",
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    bare: bool = False,
    prefix: str | None = None,
    metadata: str | dict = "published",
    heads: int = 2,
) -> dict[str, torch.Tensor]:
    """Write a tiny official-layout file; returns the tensors written (file keys).

    Args:
        components: ``"all"`` (the single-file bundle), ``"transformer"`` (the transformer
            alone, as in ComfyUI's diffusion_models folder) or ``"transformer+connectors"``
            (the transformer with its text connectors, as Kijai's transformer_only files).
        prefix: key prefix of the transformer and connectors (default ``model.diffusion_model.``;
            ``"diffusion_model."`` or ``""``); ``bare=True`` is ``prefix=""``.
        metadata: ``"published"`` (``config`` + 2.3 ``model_version``), ``"config"``, ``"none"``,
            or an explicit ``__metadata__`` dict.
        heads: 2 (default) or 32 (the released head count; see ``TINY_HEADS``).
    """
    from safetensors.torch import save_file

    if components not in COMPONENT_SETS:
        raise ValueError(f"components must be one of {tuple(COMPONENT_SETS)}, got {components!r}")
    if bare:
        if prefix not in (None, ""):
            raise ValueError("bare=True means prefix ''")
        prefix = ""
    prefix = TRANSFORMER_PREFIX if prefix is None else prefix
    if prefix != TRANSFORMER_PREFIX and components == "all":
        raise ValueError("the bundle keeps the model.diffusion_model. prefix; other prefixes are for transformer files")
    tensors = _with_prefix(tiny_state_dict(version, COMPONENT_SETS[components], seed=seed, dtype=dtype, heads=heads), prefix)
    meta = metadata if isinstance(metadata, dict) else tiny_metadata(version, kind=metadata, heads=heads)
    save_file(tensors, os.fspath(path), metadata=meta or None)
    return tensors


# ------------------------------------------------------------------------------ GGUF
# city96's conversion rules (ComfyUI-GGUF tools/convert.py + its llama.cpp patch for "ltxv"):
# 1-D tensors, tensors of <= 1024 values and every modulation table stay F32; these top-level
# layers stay high precision (BF16); the block Linears get the chosen type.
GGUF_SMALL = 1024
GGUF_HIGH_PRECISION = ("adaln_single.", "caption_projection.", "patchify_proj.", "proj_out.", "scale_shift_table")
GGUF_CONFIG_KEYS = ("config", "openltx.config", None)


def gguf_qtype(key: str, shape: tuple[int, ...], qtype: str) -> str:
    """The GGUF type city96's tool gives tensor ``key`` when converting to ``qtype``."""
    if qtype == "F32" or len(shape) < 2 or math.prod(shape) <= GGUF_SMALL or "scale_shift_table" in key:
        return "F32"
    if any(part in key for part in GGUF_HIGH_PRECISION):
        return "BF16"
    return qtype


def write_tiny_gguf(
    path: str | os.PathLike,
    version: str,
    *,
    qtype: str = "Q8_0",
    config_key: str | None = "config",
    connectors: bool = False,
    seed: int = 0,
    heads: int = 2,
    arch: str = "ltxv",
    source_dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Write the tiny transformer as a community GGUF (bare keys, city96's type rules).

    Args:
        qtype: the block Linears' type ("F32", "BF16", "Q8_0", "Q4_K", ...; see
            ``quant.gguf_dequant.NAMES``); "F32" writes every tensor losslessly.
        config_key: the string KV holding the header ``config`` JSON: ``"config"`` (the
            community convention), ``"openltx.config"`` (earlier OpenLTX files) or ``None``.
        connectors: also write the text connectors (some published GGUFs embed them).
        source_dtype: the dtype the weights are rounded to first (a conversion from a bf16
            file holds bf16 values).
    Returns the bare-key tensors as written before quantization (``source_dtype``).
    """
    from .quant import gguf_dequant as gd
    from .quant import gguf_format

    if config_key not in GGUF_CONFIG_KEYS:
        raise ValueError(f"config_key must be one of {GGUF_CONFIG_KEYS}, got {config_key!r}")
    names = COMPONENT_SETS["transformer+connectors" if connectors else "transformer"]
    tensors = _with_prefix(tiny_state_dict(version, names, seed=seed, dtype=source_dtype, heads=heads), "")
    types = {v: k for k, v in gd.NAMES.items()}
    arrays = {}
    for key, t in tensors.items():
        want = types[gguf_qtype(key, tuple(t.shape), qtype)]
        arrays[key] = gguf_format.encode_tensor(t.float().numpy(), want)
    version_tag = MODEL_VERSIONS.get(version) if config_key else None
    gguf_format.write_gguf(path, arrays, tiny_config(version, heads=heads) if config_key else None, version_tag,
                           arch=arch, config_key=config_key)
    return tensors


__all__ = [
    "COMPONENTS",
    "COMPONENT_SETS",
    "GEMMA_HIDDEN_STATES",
    "METADATA_KINDS",
    "TINY_AUDIO_IN_CHANNELS",
    "TINY_HEADS",
    "TINY_TEXT_HIDDEN_STATES",
    "VERSIONS",
    "gguf_qtype",
    "random_tensor",
    "tiny_audio_vae_config",
    "tiny_config",
    "tiny_layout",
    "tiny_metadata",
    "tiny_state_dict",
    "tiny_transformer_config",
    "tiny_transformer_header",
    "tiny_transformer_values",
    "tiny_vae_config",
    "tiny_vocoder_config",
    "write_tiny_checkpoint",
    "write_tiny_gguf",
]
