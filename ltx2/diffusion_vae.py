"""The LTX-2.5 "DiffVAE" (``CausalDiffusionVAE``): the 2.3 causal encoder + a diffusion decoder.

``vae/ltx-2.5-video-vae-bf16.safetensors`` holds ``encoder.*`` (the LTX-2.3 conv encoder, 84
tensors), ``decoder.*`` (310) and ``per_channel_statistics.{mean-of-means,std-of-means}``; its
header config is *nested*: ``{"vae": {"_class_name": "CausalDiffusionVAE", "encoder": {...},
"decoder": {...}}}``.  Latents are the LTX-2 video latents ``(B, 128, 1 + k, H/32, W/32)``,
interchangeable with the conv VAE's.

The decoder is a small diffusion model (``DiffusionDecoder``):

1. the latent (un-normalised, its last frame repeated ``2 * (k_t // 2)`` times so the inward-shifted
   attention windows at the end see real frames) goes channels-last through ``conv_in`` and four
   deterministic stages of neighborhood-attention blocks, each followed by a pixel-shuffle
   upsampler (strides (1,2,2), (2,1,1), (2,2,2), (2,2,2): x8 in time, x8 in space); the repeated
   frames are cropped again -> a context grid ``(B, 8k + 1, H/4, W/4, 256)``;
2. stage 5 denoises pixels ``x_t`` (patchified 4 x 4 -> 48 channels) conditioned on that context
   (added through ``context_proj``) and on the timestep (AdaLN scale / shift).  The released
   decoder predicts x0 and runs **one step at t = 1 from pure noise**; with more steps the
   schedule is ``linspace(1, 1/N, N)`` and an x0 prediction is turned into a velocity
   ``(x_t - x0) / t`` for an Euler step to the next t (0 after the last).

Facts from diffusers 0.42.1 ``models/autoencoders/ltx2_diffusion_decoder.py`` (the test oracle);
the key names are the released file's (diffusers renames some on conversion).  ``type_emb``
``[latent channels]`` is in the file but read by no reference implementation: it is kept (strict
loading) and unused.

Tiling: ``ltx2.tiling.decode_chunks`` / ``encode_tiled`` work with this VAE unchanged (tiles of
latents, blended in pixel space); every tile draws its own noise, as diffusers' tiled decode does
for the single-step x0 decoder.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Mapping

import torch

from .diffusion_vae_blocks import DiffusionNABlock, NABlock, PixelShuffleUp, SharedAdaLN, TimestepEmbedder, patchify, unpatchify
from .ops import resolve
from .video_vae import PerChannelStatistics, VideoEncoder, VideoVAE

CLASS_NAME = "CausalDiffusionVAE"
DECODER_MARKER = "decoder.conv_in_x_t.weight"  # ComfyUI selects the diffusion VAE by this key
# What shapes cannot tell, as released (the decoder section of the 2.5 header).
RELEASED_DECODER = {
    "patch_size": 4,
    "out_channels": 3,
    "stage_kernels": [[3, 7, 7], [3, 7, 7], [3, 5, 5], [3, 5, 5], [11, 11, 11]],
    "stage5_kernel": [11, 11, 11],
    "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 2]],
    "timestep_scale_multiplier": 1000.0,
    "default_num_inference_steps": 1,
    "model_output_type": "x0",
}

log = logging.getLogger(__name__)


class DiffusionVAEConfigError(ValueError):
    """A DiffVAE header / tensor combination that describes no usable model."""


@dataclass(frozen=True)
class DiffusionDecoderConfig:
    """Everything the decoder needs; widths and depths from tensors, the rest from the header."""

    in_channels: int
    stage_channels: tuple[int, ...]
    stage_depths: tuple[int, ...]
    mlp_hidden: tuple[int, ...]  # SwiGLU width per stage (stage 5 last)
    head_dim: int
    stage_kernels: tuple[tuple[int, int, int], ...]  # deterministic stages
    stage5_kernel: tuple[int, int, int]
    upsample_strides: tuple[tuple[int, int, int], ...]
    upsample_reductions: tuple[int, ...]
    t_emb_dim: int
    t_freq_channels: int
    num_chunks: int
    context_channels: int
    out_channels: int
    patch_size: int
    timestep_scale_multiplier: float = 1000.0
    model_output_type: str = "x0"
    default_num_inference_steps: int = 1

    @property
    def time_factor(self) -> int:
        return math.prod(s[0] for s in self.upsample_strides)

    @property
    def space_factor(self) -> int:
        return math.prod(s[1] for s in self.upsample_strides) * self.patch_size

    @property
    def trailing_pad(self) -> int:
        """Latent frames repeated at the end (and cropped after stage 4): ``2 * (k_t // 2)``."""
        return self.stage_kernels[0][0] // 2 * 2

    @classmethod
    def from_tensors(cls, shapes: Mapping[str, tuple], header: Mapping | None, source: str = "DiffVAE") -> "DiffusionDecoderConfig":
        """Build from decoder tensor shapes (keys without ``decoder.``) and the header's decoder section.

        A missing header uses ``RELEASED_DECODER`` (with a log line); a header that contradicts a
        shape is a ``DiffusionVAEConfigError``.
        """
        def shape(key):
            if key not in shapes:
                raise DiffusionVAEConfigError(f"{source}: the decoder tensor {'decoder.' + key!r} is missing")
            return tuple(shapes[key])

        if header is None:
            log.info("%s: no decoder config in the header; using the released LTX-2.5 values for kernels, strides, "
                     "patch size and the sampling schedule", source)  # fmt: skip
            header = RELEASED_DECODER
        head = {**RELEASED_DECODER, **dict(header)}
        stages = sorted({int(k.split(".")[1]) for k in shapes if k.startswith("det_stages.")})
        if not stages or stages != list(range(len(stages))):
            raise DiffusionVAEConfigError(f"{source}: expected decoder.det_stages.0..N-1, found stages {stages}")
        depths = []
        for s in stages:
            blocks = sorted({int(k.split(".")[2]) for k in shapes if k.startswith(f"det_stages.{s}.")})
            if blocks != list(range(len(blocks))) or not blocks:
                raise DiffusionVAEConfigError(f"{source}: decoder stage {s} has blocks {blocks}, expected 0..N-1")
            depths.append(len(blocks))
        diff = sorted({int(k.split(".")[1]) for k in shapes if k.startswith("diff_blocks.")})
        if not diff or diff != list(range(len(diff))):
            raise DiffusionVAEConfigError(f"{source}: expected decoder.diff_blocks.0..N-1, found {diff}")
        channels = [shape(f"det_stages.{s}.0.norm1.weight")[0] for s in stages] + [shape("conv_in_x_t.weight")[0]]
        mlp = [shape(f"det_stages.{s}.0.mlp.w_gate.weight")[0] for s in stages] + [shape("diff_blocks.0.mlp.w_gate.weight")[0]]
        head_dim = shape("det_stages.0.0.attn.q_norm.weight")[0]
        ups = head.get("upsamples")
        if not isinstance(ups, list) or len(ups) != len(stages):
            raise DiffusionVAEConfigError(f"{source}: the header lists {ups!r} upsamplers for {len(stages)} stages")
        strides = tuple(tuple(int(x) for x in u[0]) for u in ups)
        reductions = tuple(int(u[1]) for u in ups)
        for i, (st, red) in enumerate(zip(strides, reductions)):
            want = (math.prod(st) * channels[i] // red, channels[i])
            if shape(f"upsamples.{i}.proj.weight") != want or channels[i] // red != channels[i + 1]:
                raise DiffusionVAEConfigError(
                    f"{source}: upsampler {i} (stride {list(st)}, reduction {red}) of stage width {channels[i]} needs "
                    f"proj.weight {list(want)} and a next stage of {channels[i] // red} channels; the file has "
                    f"{list(shape(f'upsamples.{i}.proj.weight'))} and {channels[i + 1]}"
                )
        kernels = [tuple(int(x) for x in k) for k in head["stage_kernels"]]
        if len(kernels) < len(stages) or any(len(k) != 3 for k in kernels):
            raise DiffusionVAEConfigError(f"{source}: stage_kernels {head['stage_kernels']} do not cover {len(stages)} stages")
        # stage 5's kernel: its own key, else a fifth stage_kernels entry (the released header has both)
        stage5 = header.get("stage5_kernel") or (kernels[len(stages)] if len(kernels) > len(stages) else None)
        stage5 = tuple(int(x) for x in (stage5 or RELEASED_DECODER["stage5_kernel"]))
        if len(stage5) != 3:
            raise DiffusionVAEConfigError(f"{source}: stage5_kernel must have 3 entries, found {list(stage5)}")
        patch = int(head["patch_size"])
        out_ch = int(head["out_channels"])
        if shape("conv_in_x_t.weight")[1] != out_ch * patch**2:
            raise DiffusionVAEConfigError(
                f"{source}: conv_in_x_t takes {shape('conv_in_x_t.weight')[1]} channels, the header's {out_ch} channels "
                f"x patch {patch}^2 make {out_ch * patch ** 2}"
            )
        kind = head.get("model_output_type", "x0")
        if kind not in ("x0", "v"):
            raise DiffusionVAEConfigError(f"{source}: model_output_type must be 'x0' or 'v', found {kind!r}")
        table = shape("diff_blocks.0.scale_shift_table")
        if table[0] < 5:
            raise DiffusionVAEConfigError(f"{source}: scale_shift_table has {table[0]} rows, at least 5 are read")
        found = {"in_channels": shape("conv_in.weight")[1], "stage_channels": list(channels),
                 "stage_depths": depths + [len(diff)], "head_dim": head_dim}  # fmt: skip
        for key, value in found.items():
            if key in header and (list(header[key]) if isinstance(value, list) else int(header[key])) != value:
                raise DiffusionVAEConfigError(f"{source}: the header says {key} = {header[key]}, the weights have {value}")
        return cls(
            in_channels=shape("conv_in.weight")[1],
            stage_channels=tuple(channels),
            stage_depths=tuple(depths) + (len(diff),),
            mlp_hidden=tuple(mlp),
            head_dim=head_dim,
            stage_kernels=tuple(kernels[: len(stages)]),
            stage5_kernel=stage5,
            upsample_strides=strides,
            upsample_reductions=reductions,
            t_emb_dim=shape("t_embedder.mlp.0.weight")[0],
            t_freq_channels=shape("t_embedder.mlp.0.weight")[1],
            num_chunks=table[0],
            context_channels=shape("diff_blocks.0.context_proj.weight")[1],
            out_channels=out_ch,
            patch_size=patch,
            timestep_scale_multiplier=float(head["timestep_scale_multiplier"]),
            model_output_type=kind,
            default_num_inference_steps=int(head["default_num_inference_steps"]),
        )


class DiffusionDecoder(torch.nn.Module):
    """Un-normalised latent ``(B, C, F', h, w)`` -> pixels ``(B, 3, 8(F'-1)+1, 32h, 32w)``."""

    def __init__(self, cfg: DiffusionDecoderConfig, *, ops, dtype=None, device=None) -> None:
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.cfg = cfg
        self.conv_in = ops.Linear(cfg.in_channels, cfg.stage_channels[0], **kw)
        self.type_emb = torch.nn.Parameter(torch.empty(cfg.in_channels, **kw))  # in the file, read by nothing
        self.det_stages = torch.nn.ModuleList()
        self.upsamples = torch.nn.ModuleList()
        for i, (kernel, stride, red) in enumerate(zip(cfg.stage_kernels, cfg.upsample_strides, cfg.upsample_reductions)):
            ch = cfg.stage_channels[i]
            self.det_stages.append(torch.nn.ModuleList(
                NABlock(ch, kernel, cfg.head_dim, cfg.mlp_hidden[i], ops=ops, **kw) for _ in range(cfg.stage_depths[i])
            ))  # fmt: skip
            self.upsamples.append(PixelShuffleUp(ch, stride, red, ops=ops, **kw))
        c5 = cfg.stage_channels[-1]
        self.t_embedder = TimestepEmbedder(cfg.t_emb_dim, cfg.t_freq_channels, ops=ops, **kw)
        self.conv_in_x_t = ops.Linear(cfg.out_channels * cfg.patch_size**2, c5, **kw)
        self.shared_adaln = SharedAdaLN(c5, cfg.t_emb_dim, cfg.num_chunks, ops=ops, **kw)
        self.diff_blocks = torch.nn.ModuleList(
            DiffusionNABlock(c5, cfg.stage5_kernel, cfg.head_dim, cfg.mlp_hidden[-1], cfg.context_channels,
                             cfg.num_chunks, ops=ops, **kw)  # fmt: skip
            for _ in range(cfg.stage_depths[-1])
        )
        self.norm_out = ops.RMSNorm(c5, eps=1e-6, **kw)
        self.conv_out = ops.Linear(c5, cfg.out_channels * cfg.patch_size**2, **kw)

    def context(self, latent: torch.Tensor) -> torch.Tensor:
        """Stages 1-4: ``(B, C, F', h, w)`` -> context ``(B, 8(F'-1)+1, 8h, 8w, C5)`` (channels-last)."""
        pad = self.cfg.trailing_pad
        if pad:
            latent = torch.cat((latent, latent[:, :, -1:].expand(-1, -1, pad, -1, -1)), dim=2)
        x = self.conv_in(latent.permute(0, 2, 3, 4, 1))
        for blocks, up in zip(self.det_stages, self.upsamples):
            for block in blocks:
                x = block(x)
            x = up(x)
        return x[:, : x.shape[1] - pad * self.cfg.time_factor] if pad else x

    def predict(self, context: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """One stage-5 forward: pixels ``x_t (B, 3, F, H, W)`` at time ``t (B,)`` -> the model's prediction."""
        emb = self.t_embedder(self.cfg.timestep_scale_multiplier * t, context.dtype)
        modulation = self.shared_adaln(emb)
        x = self.conv_in_x_t(patchify(x_t, self.cfg.patch_size).permute(0, 2, 3, 4, 1))
        for block in self.diff_blocks:
            x = block(x, context, modulation)
        x = self.conv_out(self.norm_out(x)).permute(0, 4, 1, 2, 3)
        return unpatchify(x.contiguous(), self.cfg.patch_size)

    def denoise(self, context: torch.Tensor, x_t: torch.Tensor, steps: int) -> torch.Tensor:
        """The stage-5 sampling loop from noise ``x_t`` (see the module docstring)."""
        if steps < 1:
            raise ValueError(f"diffusion VAE: steps must be at least 1, got {steps}")
        b = context.shape[0]
        times = torch.linspace(1.0, 1.0 / steps, steps, device=context.device, dtype=torch.float32)
        if steps == 1 and self.cfg.model_output_type == "x0":
            return self.predict(context, x_t, times[:1].expand(b))
        for i in range(steps):
            now = times[i].expand(b)
            nxt = times[i + 1] if i + 1 < steps else torch.zeros_like(now)
            pred = self.predict(context, x_t, now).float()
            view = (-1,) + (1,) * (x_t.ndim - 1)
            if self.cfg.model_output_type == "x0":
                pred = (x_t.float() - pred) / now.view(view)
            x_t = (x_t.float() - (now - nxt).view(view) * pred).to(x_t.dtype)
        return x_t

    def forward(self, latent: torch.Tensor, generator: torch.Generator | None = None,
                steps: int | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        context = self.context(latent)
        p = self.cfg.patch_size
        shape = (latent.shape[0], self.cfg.out_channels, context.shape[1], context.shape[2] * p, context.shape[3] * p)
        if noise is None:
            noise = torch.randn(shape, generator=generator, dtype=latent.dtype, device=latent.device)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"diffusion VAE: noise must be {shape}, found {tuple(noise.shape)}")
        return self.denoise(context, noise, steps or self.cfg.default_num_inference_steps)


def encoder_section(vae: Mapping) -> dict:
    """The nested 2.5 encoder config as the flat ``vae`` section ``VideoEncoder`` reads."""
    enc = vae.get("encoder")
    if not isinstance(enc, Mapping):
        raise DiffusionVAEConfigError("config.vae.encoder is missing: a CausalDiffusionVAE header nests it there")
    base = enc.get("base_channels")
    latent = int(enc.get("out_channels", vae.get("latent_channels", 128)))
    if base is not None and int(base) != latent:
        raise DiffusionVAEConfigError(f"config.vae.encoder: base_channels {base} differs from the latent width {latent}; "
                                      "only encoders that start at the latent width exist")  # fmt: skip
    return {
        "dims": enc.get("dims", 3),
        "in_channels": enc.get("in_channels", 3),
        "latent_channels": latent,
        "patch_size": enc.get("patch_size", 4),
        "norm_layer": enc.get("norm_layer", "pixel_norm"),
        "latent_log_var": enc.get("latent_log_var", "uniform"),
        "spatial_padding_mode": enc.get("spatial_padding_mode", "zeros"),
        "encoder_blocks": enc.get("blocks", enc.get("encoder_blocks", [])),
    }


class DiffusionVAE(torch.nn.Module):
    """Encoder + diffusion decoder + latent statistics; the same API as ``VideoVAE``.

    ``decode(latent, generator=, steps=)`` ignores ``timestep`` / ``noise_scale`` (those belong to
    the conv decoder); ``steps`` defaults to the header's ``default_num_inference_steps`` (1).
    """

    timestep_conditioning = False  # the conv decoder's flag; this decoder has its own timesteps

    def __init__(self, encoder_config: Mapping, decoder: DiffusionDecoderConfig, *, operations=None, dtype=None,
                 device=None) -> None:  # fmt: skip
        super().__init__()
        ops = resolve(operations)
        self.latent_channels = int(encoder_config.get("latent_channels", 128))
        if decoder.in_channels != self.latent_channels:
            raise DiffusionVAEConfigError(f"the encoder makes {self.latent_channels}-channel latents, the decoder takes "
                                          f"{decoder.in_channels}")  # fmt: skip
        if (decoder.time_factor, decoder.space_factor) != (8, 32):
            raise DiffusionVAEConfigError(
                f"the decoder upsamples x{decoder.time_factor} in time and x{decoder.space_factor} in space; LTX-2 "
                "latents need x8 / x32"
            )
        self.dtype = dtype or torch.get_default_dtype()
        self.encoder = VideoEncoder(dict(encoder_config), ops=ops, dtype=dtype, device=device)
        self.decoder = DiffusionDecoder(decoder, ops=ops, dtype=dtype, device=device)
        self.per_channel_statistics = PerChannelStatistics(self.latent_channels, dtype=dtype, device=device)

    check_pixels = staticmethod(VideoVAE.check_pixels)
    check_latent = VideoVAE.check_latent

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 3, 1+8k, 32h, 32w)`` in [-1, 1] -> normalized latent ``(B, C, 1+k, h, w)``."""
        self.check_pixels(pixels)
        return self.per_channel_statistics.normalize(self.encoder(pixels))

    def decode(self, latent: torch.Tensor, timestep=None, generator: torch.Generator | None = None,
               noise_scale=None, steps: int | None = None, noise: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """Normalized latent ``(B, C, F', h, w)`` -> pixels ``(B, 3, 8(F'-1)+1, 32h, 32w)`` in about [-1, 1].

        ``generator`` draws the starting noise (or pass ``noise`` itself); ``steps`` sampling steps.
        """
        self.check_latent(latent)
        return self.decoder(self.per_channel_statistics.un_normalize(latent), generator, steps, noise)


__all__ = [
    "CLASS_NAME",
    "DECODER_MARKER",
    "RELEASED_DECODER",
    "DiffusionDecoder",
    "DiffusionDecoderConfig",
    "DiffusionVAE",
    "DiffusionVAEConfigError",
    "encoder_section",
]
