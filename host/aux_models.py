"""LTX-2's auxiliary models inside ComfyUI: video VAE, audio VAE + vocoder, latent upsampler.

Each is held by an ``AuxModel``: the pure-PyTorch module (``ltx2/``) built with ``comfy.ops``
layers and wrapped in a ``comfy.model_patcher.ModelPatcher``, so ``load()`` goes through
``comfy.model_management.load_models_gpu`` and these models share VRAM with the transformer
and everything else in the graph (unloading others, or running partly offloaded on a small
GPU).  These objects are the values of the pack's own types ``OPENLTX_VAE``,
``OPENLTX_AUDIO_VAE`` (audio VAE + vocoder in one ``ModuleDict``) and ``OPENLTX_UPSCALER``.

A loader output whose part is absent from the file (a bundle without audio, a standalone
audio file without the video VAE) is an ``Unavailable`` placeholder: using it raises its
message, which says what is missing and what to load instead.

Latent helpers: ``split_latent`` takes a LATENT dict apart into its video / audio streams
(nested or single) and ``join_latent`` builds one back.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

import torch

import comfy.model_management as mm
import comfy.model_patcher
import comfy.nested_tensor
import comfy.ops

from ..model_loaders.safetensors_file import parse_config, read_header
from ..model_loaders.upsampler_loading import load_upsampler
from ..model_loaders.video_vae_loading import load_video_vae

log = logging.getLogger(__name__)

DTYPE_OPTIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
OPERATIONS = comfy.ops.disable_weight_init  # no init; partial-offload casting when ComfyUI needs it


class AuxModel:
    """A module and its ``ModelPatcher``; ``kind`` is "video VAE", "audio VAE" or "upscaler"."""

    def __init__(self, module: torch.nn.Module, *, kind: str, source: str, load_device, offload_device) -> None:
        self.kind = kind
        self.source = source  # the file name, for messages
        self.patcher = comfy.model_patcher.ModelPatcher(module, load_device=load_device, offload_device=offload_device)

    @property
    def module(self) -> torch.nn.Module:
        return self.patcher.model

    @property
    def dtype(self) -> torch.dtype:
        return next(self.module.parameters()).dtype

    def load(self, memory_required: int = 0) -> torch.device:
        """Put the weights on the compute device (ComfyUI frees room as needed); returns it."""
        mm.load_models_gpu([self.patcher], memory_required=memory_required)
        return self.patcher.load_device

    def __repr__(self) -> str:
        return f"<OpenLTX {self.kind} from {os.path.basename(self.source)}>"


@dataclass
class Unavailable:
    """A loader output the file could not provide; ``require`` raises ``message``."""

    kind: str
    message: str


def require(value, kind: str, node: str, type_name: str) -> AuxModel:
    """``value`` as an ``AuxModel`` of ``kind``, or a clear error naming the node input."""
    if isinstance(value, Unavailable):
        raise ValueError(f"{node}: {value.message}")
    if not isinstance(value, AuxModel) or value.kind != kind:
        found = value.kind if isinstance(value, AuxModel) else type(value).__name__
        raise ValueError(f"{node}: expected an {type_name} ({kind}) from an OpenLTX loader, got {found}")
    return value


def pick_dtype(choice: str, load_device) -> torch.dtype:
    """``default``: ComfyUI's VAE dtype for the device (bf16 where supported, fp32 on CPU;
    honours --bf16-vae / --fp32-vae); otherwise the named dtype."""
    if choice in DTYPE_OPTIONS:
        return DTYPE_OPTIONS[choice]
    if choice != "default":
        raise ValueError(f"dtype {choice!r} is not one of default, {', '.join(DTYPE_OPTIONS)}")
    return mm.vae_dtype(load_device, [torch.bfloat16, torch.float32])


# ------------------------------------------------------------------------------ loading
def file_parts(path: str) -> dict[str, bool]:
    """Which LTX-2 auxiliary parts a file holds (from its header keys)."""
    header = read_header(path)
    keys = header.tensors
    config = parse_config(header) or {}
    # Bare "encoder.*" / "decoder.*" keys are a video VAE only when the header describes one
    # (a standalone audio VAE file may use the same bare names).
    video_config = "vae" in config or "encoder_blocks" in config or "decoder_blocks" in config
    video = any(k.startswith(("vae.encoder.", "vae.decoder.")) for k in keys) or (
        video_config and any(k.startswith(("encoder.", "decoder.")) for k in keys)
    )
    audio = any(k.startswith("audio_vae.") for k in keys)
    vocoder = any(k.startswith("vocoder.") for k in keys)
    return {"video_vae": video, "audio_vae": audio, "vocoder": vocoder}


def load_vae_file(path: str, dtype_choice: str = "default") -> tuple[AuxModel | Unavailable, AuxModel | Unavailable]:
    """(video VAE, audio VAE + vocoder) of a bundle or a standalone VAE file."""
    name = os.path.basename(path)
    load_device, offload_device = mm.vae_device(), mm.vae_offload_device()
    dtype = pick_dtype(dtype_choice, load_device)
    parts = file_parts(path)
    if not any(parts.values()):
        raise ValueError(
            f"{name}: no LTX-2 VAE weights in this file (expected 'vae.*' video VAE keys and/or 'audio_vae.*' + "
            "'vocoder.*'); pick the LTX-2 checkpoint or a standalone LTX-2 VAE file"
        )
    if parts["video_vae"]:
        module = load_video_vae(path, dtype=dtype, device=offload_device, operations=OPERATIONS)
        video = AuxModel(module, kind="video VAE", source=path, load_device=load_device, offload_device=offload_device)
    else:
        video = Unavailable("video VAE", f"{name} holds no video VAE ('vae.*' keys); load the LTX-2 checkpoint instead")
    if parts["audio_vae"] and parts["vocoder"]:
        audio = _load_audio(path, dtype, load_device, offload_device)
    else:
        missing = " and ".join(p for p in ("audio_vae", "vocoder") if not parts[p])
        audio = Unavailable(
            "audio VAE",
            f"{name} has no audio decoder ({missing} weights missing): it cannot make or read sound. Load the full "
            "LTX-2 checkpoint (it holds audio_vae.* and vocoder.*) in the LTX-2 VAE Loader, or leave the audio input "
            "unconnected",
        )
    return video, audio


def _load_audio(path: str, dtype, load_device, offload_device) -> AuxModel:
    from ..model_loaders import audio_loading  # the audio engineer's module: imported when a file has audio

    audio_vae = audio_loading.load_audio_vae(path, dtype=dtype, device=offload_device, operations=OPERATIONS)
    vocoder = audio_loading.load_vocoder(path, dtype=dtype, device=offload_device, operations=OPERATIONS)
    both = torch.nn.ModuleDict({"audio_vae": audio_vae, "vocoder": vocoder})
    both.dtype = dtype
    return AuxModel(both, kind="audio VAE", source=path, load_device=load_device, offload_device=offload_device)


def load_upscaler_file(path: str, dtype_choice: str = "default") -> AuxModel:
    load_device, offload_device = mm.vae_device(), mm.vae_offload_device()
    dtype = pick_dtype(dtype_choice, load_device)
    module = load_upsampler(path, dtype=dtype, device=offload_device, operations=OPERATIONS)
    return AuxModel(module, kind="upscaler", source=path, load_device=load_device, offload_device=offload_device)


# ------------------------------------------------------------------------------ latents
def split_latent(latent: dict, node: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(video (B, C, F, H, W) | None, audio (B, C, T, M) | None) of a LATENT dict."""
    if not isinstance(latent, dict) or "samples" not in latent:
        raise ValueError(f"{node}: expected a LATENT (a dict with 'samples'), got {type(latent).__name__}")
    samples = latent["samples"]
    items = list(samples.unbind()) if isinstance(samples, comfy.nested_tensor.NestedTensor) else [samples]
    video = audio = None
    for t in items:
        if t.ndim == 5 and video is None:
            video = t
        elif t.ndim == 4 and audio is None:
            audio = t
        else:
            shapes = [tuple(i.shape) for i in items]
            raise ValueError(
                f"{node}: expected an LTX-2 latent: video (B, 128, F, H, W) and/or audio (B, 8, T, 16); got {shapes}"
            )
    return video, audio


def join_latent(latent: dict, video: torch.Tensor | None, audio: torch.Tensor | None, **extra) -> dict:
    """A new LATENT dict with these streams and the other keys of ``latent`` (minus the
    noise mask, whose shape no longer fits) updated by ``extra``."""
    out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", "batch_index")}
    streams = [t for t in (video, audio) if t is not None]
    out["samples"] = comfy.nested_tensor.NestedTensor(tuple(streams)) if len(streams) > 1 else streams[0]
    out.update(extra)
    return out


# ------------------------------------------------------------------------------ running them
try:  # see model_loaders/__init__.py
    from ..ltx2 import tiling as T
    from ..ltx2.upsampler import upsample_latent
except ImportError:
    from ltx2 import tiling as T
    from ltx2.upsampler import upsample_latent


def make_tiling(mode: str, latent_shape, device, dtype, spatial_tile=512, spatial_overlap=64,
                temporal_tile=64, temporal_overlap=24):  # fmt: skip
    """``auto`` (largest tiles that fit the free memory), ``off`` (one piece) or ``custom``."""
    if mode == "auto":
        return T.auto_tiling(device, dtype, latent_shape)
    if mode == "off":
        return T.TilingConfig(spatial_tile=None, temporal_tile=None)
    if mode == "custom":
        return T.TilingConfig(
            spatial_tile=spatial_tile or None, spatial_overlap=spatial_overlap,
            temporal_tile=temporal_tile or None, temporal_overlap=temporal_overlap,
        )  # fmt: skip
    raise ValueError(f"tiling must be auto, off or custom, got {mode!r}")


def decode_video(vae: AuxModel, latent: torch.Tensor, *, tiling: str = "auto", tile_sizes: dict | None = None,
                 timestep: float | None = None, noise_scale: float | None = None, seed: int = 0,
                 progress=None):  # fmt: skip
    """Yield the decoded video as ``(B, f, H, W, 3)`` float32 chunks in [0, 1] on the
    intermediate device (CPU), in temporal order; only one tile's frames live on the GPU.

    ``timestep`` / ``noise_scale`` / ``seed`` matter only for a timestep-conditioned decoder.
    """
    module = vae.module
    module.check_latent(latent)
    b, _, f, h, w = latent.shape
    # Room for a default-size tile; auto tiling then sizes tiles to what is actually free.
    frames, ph, pw = T.TIME * (f - 1) + 1, h * T.SPACE, w * T.SPACE
    need = T.estimate_decode_bytes(min(frames, 65), min(ph, 512), min(pw, 512), ph, pw, vae.dtype)
    device = vae.load(memory_required=need)
    config = make_tiling(tiling, tuple(latent.shape), device, vae.dtype, **(tile_sizes or {}))
    x = latent.to(device=device, dtype=vae.dtype)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    out_device = mm.intermediate_device()
    saved = module.decode_noise_scale
    if noise_scale is not None:  # decode_chunks has no noise-scale argument: set it for this run
        module.decode_noise_scale = float(noise_scale)
    try:
        for chunk in T.decode_chunks(module, x, config, timestep=timestep, progress=progress, generator=generator):
            yield ((chunk.float() + 1.0) * 0.5).clamp_(0.0, 1.0).permute(0, 2, 3, 4, 1).to(out_device)
    finally:
        module.decode_noise_scale = saved


def encode_image(vae: AuxModel, images: torch.Tensor) -> torch.Tensor:
    """IMAGE ``(B, H, W, 3)`` in [0, 1] (H, W multiples of 32) -> latent ``(B, C, 1, H/32, W/32)``."""
    device = vae.load()
    pixels = images.to(device=device, dtype=vae.dtype).permute(0, 3, 1, 2).unsqueeze(2) * 2.0 - 1.0
    with torch.no_grad():
        latent = vae.module.encode(pixels)
    return latent.float().to(mm.intermediate_device())


def encode_video(vae: AuxModel, frames: torch.Tensor, *, tiling: str = "auto", tile_sizes: dict | None = None,
                 progress=None) -> torch.Tensor:  # fmt: skip
    """IMAGE frames ``(F, H, W, 3)`` in [0, 1] (``F = 8k+1``, H and W multiples of 32) ->
    latent ``(1, C, 1+k, H/32, W/32)`` on the intermediate device.

    Streamed: the frames stay where they are (normally the CPU); each tile is moved to the
    VAE's device, cast and scaled to [-1, 1] on its own (``tiling.encode_tiled``), so only one
    tile's pixels are on the GPU at a time.
    """
    f, h, w, _ = frames.shape
    shape = (1, vae.module.latent_channels, (f - 1) // T.TIME + 1, h // T.SPACE, w // T.SPACE)
    need = T.estimate_decode_bytes(min(f, 65), min(h, 512), min(w, 512), h, w, vae.dtype)
    device = vae.load(memory_required=need)
    config = make_tiling(tiling, shape, device, vae.dtype, **(tile_sizes or {}))
    pixels = frames.permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, F, H, W) view, no copy

    def prepare(tile: torch.Tensor) -> torch.Tensor:
        return tile.to(device=device, dtype=vae.dtype) * 2.0 - 1.0  # never in place: it may be the input

    with torch.no_grad():
        latent = T.encode_tiled(vae.module, pixels, config, progress, prepare=prepare, device=device)
    return latent.float().to(mm.intermediate_device())


def upscale_video(up: AuxModel, vae: AuxModel, video: torch.Tensor) -> torch.Tensor:
    """Normalised video latent -> upscaled normalised video latent (the VAE's statistics)."""
    cfg = up.module.config
    if video.shape[1] != cfg.in_channels or video.shape[1] != vae.module.latent_channels:
        raise ValueError(
            f"the video latent has {video.shape[1]} channels; the upscaler takes {cfg.in_channels} and the VAE "
            f"{vae.module.latent_channels}. Use a latent, VAE and upscaler of the same LTX-2 model"
        )
    out_shape = cfg.output_shape(tuple(video.shape))
    need = 4 * cfg.mid_channels * math.prod(out_shape[2:]) * video.shape[0] * torch.finfo(up.dtype).bits // 8
    device = up.load(memory_required=need)
    stats = vae.module.per_channel_statistics
    with torch.no_grad():
        mean_std = (stats.get_buffer("mean-of-means"), stats.get_buffer("std-of-means"))
        out = upsample_latent(up.module, video.to(device), mean_std)
    return out.float().to(mm.intermediate_device())


def _audio_api():
    """(decode_audio, encode_audio) of the audio pipeline module."""
    try:
        from ..ltx2 import audio_pipeline as m
    except ImportError:
        from ltx2 import audio_pipeline as m
    return m.decode_audio, m.encode_audio


def decode_audio(audio: AuxModel, latent: torch.Tensor) -> dict:
    """Audio latent ``(B, 8, T, 16)`` -> AUDIO ``{"waveform": (B, 2, N), "sample_rate": int}``."""
    decode, _ = _audio_api()
    device = audio.load()
    with torch.no_grad():
        latent = latent.to(device=device, dtype=audio.dtype)
        wave, rate = decode(audio.module["audio_vae"], audio.module["vocoder"], latent)
    return {"waveform": wave.float().to(mm.intermediate_device()), "sample_rate": int(rate)}


def encode_audio(audio: AuxModel, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """AUDIO waveform ``(B, C, N)`` at ``sample_rate`` -> audio latent ``(B, 8, T, 16)``."""
    _, encode = _audio_api()
    device = audio.load()
    with torch.no_grad():
        latent = encode(audio.module["audio_vae"], waveform.to(device=device, dtype=torch.float32), int(sample_rate))
    return latent.float().to(mm.intermediate_device())
