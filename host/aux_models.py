"""LTX-2's auxiliary models inside ComfyUI: video VAE, audio VAE + vocoder, latent upsampler.

Each is held by an ``AuxModel``: the pure-PyTorch module (``ltx2/``) built with ``comfy.ops``
layers and wrapped in a ``comfy.model_patcher.ModelPatcher``, so ``load()`` goes through
``comfy.model_management.load_models_gpu`` and these models share VRAM with the transformer
and everything else in the graph (unloading others, or running partly offloaded on a small
GPU).  These objects are the values of the pack's own types ``OPENLTX_VAE``,
``OPENLTX_AUDIO_VAE`` (audio VAE + vocoder in one ``ModuleDict``) and ``OPENLTX_UPSCALER``.

The VAE loader takes the parts from one or two files (a bundle; or a video VAE file and an
audio VAE + vocoder file, as Kijai, unsloth and Lightricks for LTX-2.5 publish them).  A video
VAE file with a diffusion decoder (LTX-2.5's DiffVAE, ``aux_parts.Part.decoder``) loads as
``ltx2.diffusion_vae.DiffusionVAE``, which has the conv VAE's encode / decode API: decoding then
runs its single denoising step from noise drawn with the decode node's seed.  An output whose part no file
holds is an ``Unavailable`` placeholder: using it raises its message, which says what is
missing and which published files carry it.

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

from ..model_loaders.aux_parts import Part, find_parts, where_to_get
from ..model_loaders.diffusion_vae_loading import load_diffusion_vae
from ..model_loaders.safetensors_file import read_header
from ..model_loaders.upsampler_loading import load_upsampler
from ..model_loaders.video_vae_loading import load_video_vae
from . import previews

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
def file_parts(path: str) -> dict[str, Part]:
    """The LTX-2 auxiliary parts a file holds (``model_loaders.aux_parts``; header only)."""
    header = read_header(path)
    return find_parts({k: e.shape for k, e in header.tensors.items()})


def _names(paths) -> str:
    return " and ".join(os.path.basename(p) for p in paths)


VaeOutputs = tuple["AuxModel | Unavailable", "AuxModel | Unavailable"]
_PART_WORDS = {"audio_vae": "audio VAE", "vocoder": "vocoder"}


def load_vae_files(paths: list[str], dtype_choice: str = "default",
                   inputs: tuple[str, ...] = ("vae_name", "second_vae_name")) -> VaeOutputs:  # fmt: skip
    """(video VAE, audio VAE + vocoder) from one or two files: each part from the first file
    that holds it (a bundle holds all three; a video VAE file and an audio file complement
    each other).  A part no file holds is an ``Unavailable`` naming the published files that
    carry it; a file that holds no part at all is an error naming its input.
    """
    load_device, offload_device = mm.vae_device(), mm.vae_offload_device()
    dtype = pick_dtype(dtype_choice, load_device)
    found: dict[str, tuple[str, Part]] = {}
    for path, input_name in zip(paths, inputs):
        parts = file_parts(path)
        if not parts:
            raise ValueError(
                f"{input_name}: {os.path.basename(path)}: no LTX-2 VAE weights in this file (expected 'vae.*' video "
                "VAE keys and/or 'audio_vae.*' + 'vocoder.*', or the keys of a standalone LTX-2 video / audio VAE "
                f"file); pick a file that holds them: the video VAE is in {where_to_get('video_vae', None)}; the "
                f"audio VAE and vocoder are in {where_to_get('audio_vae', None)}"
            )
        for name, part in parts.items():
            if name in found:
                log.info("%s: its %s is not used; %s provides it", os.path.basename(path), part.what,
                         os.path.basename(found[name][0]))  # fmt: skip
            else:
                found[name] = (path, part)
    versions = {n: part.version for n, (_, part) in found.items() if part.version}
    if "video_vae" in versions and "vocoder" in versions and versions["video_vae"] != versions["vocoder"]:
        log.warning("LTX-2 VAE Loader: the video VAE (%s) is from LTX-%s, the audio VAE / vocoder (%s) from LTX-%s; "
                    "use the parts of one model", os.path.basename(found["video_vae"][0]), versions["video_vae"],
                    os.path.basename(found["vocoder"][0]), versions["vocoder"])  # fmt: skip
    names = _names(paths)
    verb = "has" if len(paths) == 1 else "have"
    if "video_vae" in found:
        path, part = found["video_vae"]
        load = load_diffusion_vae if part.decoder == "diffusion" else load_video_vae
        module = load(path, dtype=dtype, device=offload_device, operations=OPERATIONS)
        video = AuxModel(module, kind="video VAE", source=found["video_vae"][0], load_device=load_device,
                         offload_device=offload_device)  # fmt: skip
        previews.register_video_vae(video)  # preview colours fitted to this VAE (host/previews.py)
    else:
        version = versions.get("vocoder")
        video = Unavailable(
            "video VAE",
            f"{names} {verb} no LTX-2 video VAE. It is in {where_to_get('video_vae', version)}: select one of those "
            "files as vae_name or second_vae_name in the LTX-2 VAE Loader",
        )
    if "audio_vae" in found and "vocoder" in found:
        audio = _load_audio(found["audio_vae"][0], found["vocoder"][0], dtype, load_device, offload_device)
    else:
        missing = " and ".join(_PART_WORDS[p] for p in ("audio_vae", "vocoder") if p not in found)
        version = versions.get("video_vae") or versions.get("vocoder")
        audio = Unavailable(
            "audio VAE",
            f"{names} {verb} no audio decoder ({missing} missing): it cannot make or read sound. The audio VAE and "
            f"vocoder are in {where_to_get('audio_vae', version)}: select one of those files as second_vae_name (or "
            "vae_name) in the LTX-2 VAE Loader, or leave the audio input unconnected",
        )
    return video, audio


def load_vae_file(path: str, dtype_choice: str = "default") -> VaeOutputs:
    """(video VAE, audio VAE + vocoder) of a bundle or a standalone VAE file."""
    return load_vae_files([path], dtype_choice)


def _load_audio(vae_path: str, vocoder_path: str, dtype, load_device, offload_device) -> AuxModel:
    from ..model_loaders import audio_loading  # imported when a file has audio

    audio_vae = audio_loading.load_audio_vae(vae_path, dtype=dtype, device=offload_device, operations=OPERATIONS)
    vocoder = audio_loading.load_vocoder(vocoder_path, dtype=dtype, device=offload_device, operations=OPERATIONS)
    both = torch.nn.ModuleDict({"audio_vae": audio_vae, "vocoder": vocoder})
    both.dtype = dtype
    return AuxModel(both, kind="audio VAE", source=vae_path, load_device=load_device, offload_device=offload_device)


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

    ``timestep`` / ``noise_scale`` matter only for a timestep-conditioned conv decoder; ``seed``
    draws its noise, or the LTX-2.5 diffusion decoder's starting noise.
    """
    module = vae.module
    module.check_latent(latent)
    interrupt = mm.throw_exception_if_processing_interrupted  # checked before every tile
    interrupt()
    b, _, f, h, w = latent.shape
    # Room for a default-size tile; auto tiling then sizes tiles to what is actually free.
    frames, ph, pw = T.TIME * (f - 1) + 1, h * T.SPACE, w * T.SPACE
    need = T.estimate_decode_bytes(min(frames, 65), min(ph, 512), min(pw, 512), ph, pw, vae.dtype)
    device = vae.load(memory_required=need)
    config = make_tiling(tiling, tuple(latent.shape), device, vae.dtype, **(tile_sizes or {}))
    x = latent.to(device=device, dtype=vae.dtype)
    generator = torch.Generator(device=device).manual_seed(int(seed))
    out_device = mm.intermediate_device()
    saved = getattr(module, "decode_noise_scale", None)  # the DiffVAE has none
    if noise_scale is not None and saved is not None:  # decode_chunks has no noise-scale argument: set it for this run
        module.decode_noise_scale = float(noise_scale)
    try:
        for chunk in T.decode_chunks(module, x, config, timestep=timestep, progress=progress, generator=generator,
                                     interrupt=interrupt):  # fmt: skip
            yield ((chunk.float() + 1.0) * 0.5).clamp_(0.0, 1.0).permute(0, 2, 3, 4, 1).to(out_device)
    finally:
        if saved is not None:
            module.decode_noise_scale = saved


def encode_image(vae: AuxModel, images: torch.Tensor) -> torch.Tensor:
    """IMAGE ``(B, H, W, 3)`` in [0, 1] (H, W multiples of 32) -> latent ``(B, C, 1, H/32, W/32)``."""
    mm.throw_exception_if_processing_interrupted()
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

    interrupt = mm.throw_exception_if_processing_interrupted  # checked before every tile
    interrupt()
    with torch.no_grad():
        latent = T.encode_tiled(vae.module, pixels, config, progress, interrupt, prepare=prepare, device=device)
    return latent.float().to(mm.intermediate_device())


def upscale_video(up: AuxModel, vae: AuxModel, video: torch.Tensor) -> torch.Tensor:
    """Normalised video latent -> upscaled normalised video latent (the VAE's statistics)."""
    cfg = up.module.config
    if video.shape[1] != cfg.in_channels or video.shape[1] != vae.module.latent_channels:
        raise ValueError(
            f"the video latent has {video.shape[1]} channels; the upscaler takes {cfg.in_channels} and the VAE "
            f"{vae.module.latent_channels}. Use a latent, VAE and upscaler of the same LTX-2 model"
        )
    mm.throw_exception_if_processing_interrupted()
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
    mm.throw_exception_if_processing_interrupted()
    device = audio.load()
    with torch.no_grad():
        latent = latent.to(device=device, dtype=audio.dtype)
        wave, rate = decode(audio.module["audio_vae"], audio.module["vocoder"], latent)
    return {"waveform": wave.float().to(mm.intermediate_device()), "sample_rate": int(rate)}


def encode_audio(audio: AuxModel, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """AUDIO waveform ``(B, C, N)`` at ``sample_rate`` -> audio latent ``(B, 8, T, 16)``."""
    _, encode = _audio_api()
    mm.throw_exception_if_processing_interrupted()
    device = audio.load()
    with torch.no_grad():
        latent = encode(audio.module["audio_vae"], waveform.to(device=device, dtype=torch.float32), int(sample_rate))
    return latent.float().to(mm.intermediate_device())
