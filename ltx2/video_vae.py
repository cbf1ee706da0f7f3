"""The LTX-2 video VAE: causal encoder, decoder (optionally timestep-conditioned), statistics.

``VideoVAE(config)`` takes the header's ``vae`` section; its state-dict keys equal the file's
``vae.*`` keys with ``vae.`` stripped (``encoder.*``, ``decoder.*``,
``per_channel_statistics.{mean-of-means,std-of-means}``).

Shapes (official configs: patch 4, three/four x2 stages):
    pixels ``(B, 3, 1 + 8k, 32h, 32w)`` in [-1, 1]  <->  latent ``(B, 128, 1 + k, h, w)``.
Latents are *normalized* with the per-channel statistics: ``(mean - mean_of_means) /
std_of_means``; the decoder undoes it first.

Config keys read (ltx-core 1.0.0 defaults, ``video_vae/model_configurator.py``):
``dims`` (3), ``in_channels``/``out_channels`` (3), ``latent_channels`` (128), ``patch_size``
(4), ``norm_layer`` ("pixel_norm"), ``latent_log_var`` ("uniform"), ``encoder_blocks``,
``decoder_blocks``, ``decoder_base_channels`` (128), ``causal_decoder`` (False), the spatial
padding modes ``encoder_spatial_padding_mode`` / ``decoder_spatial_padding_mode`` (the LTX-2.3
header names them: zeros / reflect), else ``spatial_padding_mode`` for both halves (ltx-core
1.0.0 reads only this one), else zeros for the encoder and reflect for the decoder.  ``timestep_conditioning`` is *not* taken from the config by
``VideoVAE`` callers that load files: the loader detects it from the decoder's keys and passes
``timestep_conditioning=`` explicitly (ltx-core defaults a missing flag to True, which would
be wrong for a file whose decoder has no ``last_time_embedder``).

Unused statistics: the official files also hold ``per_channel_statistics.channel`` and
``per_channel_statistics.mean-of-stds``, which no code reads.  ``PerChannelStatistics`` accepts
and ignores exactly those two names during ``load_state_dict``; any other unknown key is still
reported by strict loading.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from .ops import resolve
from .video_vae_blocks import (
    CausalConv3d,
    DepthToSpaceUp,
    ResBlockStack,
    ResnetBlock3D,
    SpaceToDepthDown,
    TimeEmbedder,
    make_norm,
)

TIME_FACTOR, SPACE_FACTOR = 8, 32
UNUSED_STATISTICS = ("channel", "mean-of-stds")
DECODE_TIMESTEP = 0.05  # ltx-core VideoDecoder.decode_timestep: default for a conditioned decoder
DECODE_NOISE_SCALE = 0.025  # ltx-core VideoDecoder.decode_noise_scale

_ENC_STRIDES = {"compress_time": (2, 1, 1), "compress_space": (1, 2, 2), "compress_all": (2, 2, 2)}


def _params(p) -> dict:
    return {"num_layers": p} if isinstance(p, int) else dict(p)


def _nearest(n: int, step: int, offset: int, lo: int) -> str:
    below = max(lo, (n - offset) // step * step + offset)
    above = below + step if below < n else below
    return f"{below}" if below == above or below == n else f"{below} or {above}"


class PerChannelStatistics(torch.nn.Module):
    """The dataset statistics of the latent means: ``mean-of-means``, ``std-of-means`` (C,)."""

    def __init__(self, channels: int, *, dtype=None, device=None) -> None:
        super().__init__()
        self.register_buffer("std-of-means", torch.empty(channels, dtype=dtype, device=device))
        self.register_buffer("mean-of-means", torch.empty(channels, dtype=dtype, device=device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in UNUSED_STATISTICS:  # present in official files, read by nothing
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        std = self.get_buffer("std-of-means").to(x).view(1, -1, 1, 1, 1)
        return self.get_buffer("mean-of-means").to(x).view(1, -1, 1, 1, 1), std

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return (x - mean) / std

    def un_normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x * std + mean


class VideoEncoder(torch.nn.Module):
    """Pixels ``(B, 3, F, H, W)`` -> latent means ``(B, C, F', H', W')`` (not yet normalized)."""

    def __init__(self, vae: dict, *, ops, dtype=None, device=None) -> None:
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.patch = int(vae.get("patch_size", 4))
        self.latent_channels = int(vae.get("latent_channels", 128))
        self.log_var = vae.get("latent_log_var", "uniform")
        norm = vae.get("norm_layer", "pixel_norm")
        pad = vae.get("encoder_spatial_padding_mode", vae.get("spatial_padding_mode", "zeros"))
        ch = self.latent_channels  # ltx-core starts the encoder at the latent width
        self.conv_in = CausalConv3d(int(vae.get("in_channels", 3)) * self.patch**2, ch, padding_mode=pad, ops=ops, **kw)
        blocks = []
        for name, params in vae.get("encoder_blocks", []):
            cfg = _params(params)
            mult = cfg.get("multiplier", 2)
            if name == "res_x":
                block = ResBlockStack(ch, cfg["num_layers"], norm_layer=norm, padding_mode=pad, ops=ops, **kw)
            elif name == "res_x_y":
                block = ResnetBlock3D(ch, ch * mult, norm_layer=norm, padding_mode=pad, ops=ops, **kw)
                ch *= mult
            elif name in _ENC_STRIDES or name == "compress_all_x_y":
                n_out = ch * mult if name == "compress_all_x_y" else ch
                stride = _ENC_STRIDES.get(name, (2, 2, 2))
                block = CausalConv3d(ch, n_out, stride, padding_mode=pad, ops=ops, **kw)
                ch = n_out
            elif name.endswith("_res") and name[: -len("_res")] in _ENC_STRIDES:
                stride = _ENC_STRIDES[name[: -len("_res")]]
                block = SpaceToDepthDown(ch, ch * mult, stride, padding_mode=pad, ops=ops, **kw)
                ch *= mult
            else:
                raise ValueError(f"config.vae.encoder_blocks: unknown block {name!r}")
            blocks.append(block)
        self.down_blocks = torch.nn.ModuleList(blocks)
        self.conv_norm_out = make_norm(norm, ch, ops, **kw)
        extra = {"per_channel": self.latent_channels, "uniform": 1, "constant": 1, "none": 0}
        if self.log_var not in extra:
            raise ValueError(f"config.vae.latent_log_var: unknown mode {self.log_var!r}")
        n_out = self.latent_channels + extra[self.log_var]
        self.conv_out = CausalConv3d(ch, n_out, padding_mode=pad, ops=ops, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(x, "b c f (h q) (w r) -> b (c r q) f h w", q=self.patch, r=self.patch)  # patchify
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)  # the encoder is always causal
        x = self.conv_out(F.silu(self.conv_norm_out(x)))
        return x[:, : self.latent_channels]  # the means; the log-variance channel(s) are unused


class VideoDecoder(torch.nn.Module):
    """Normalized latent ``(B, C, F', H', W')`` -> pixels ``(B, 3, 8(F'-1)+1, 32H', 32W')``."""

    def __init__(self, vae: dict, *, timestep_conditioning: bool, ops, dtype=None, device=None) -> None:
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.patch = int(vae.get("patch_size", 4))
        self.causal = bool(vae.get("causal_decoder", False))
        self.timestep_conditioning = bool(timestep_conditioning)
        norm = vae.get("norm_layer", "pixel_norm")
        pad = vae.get("decoder_spatial_padding_mode", vae.get("spatial_padding_mode", "reflect"))
        ch = int(vae.get("decoder_base_channels", 128)) * 8  # three x2 upsamplers bring it back
        self.conv_in = CausalConv3d(int(vae.get("latent_channels", 128)), ch, padding_mode=pad, ops=ops, **kw)
        blocks = []
        for name, params in reversed(vae.get("decoder_blocks", [])):  # listed from the output side
            cfg = _params(params)
            common = {"norm_layer": norm, "padding_mode": pad, "inject_noise": cfg.get("inject_noise", False)}
            if name == "res_x":
                block = ResBlockStack(ch, cfg["num_layers"], timestep_conditioning=self.timestep_conditioning,
                                      ops=ops, **common, **kw)  # fmt: skip
            elif name == "res_x_y":
                n_out = ch // cfg.get("multiplier", 2)
                block = ResnetBlock3D(ch, n_out, ops=ops, **common, **kw)
                ch = n_out
            elif name in _ENC_STRIDES:
                mult = cfg.get("multiplier", 1)
                block = DepthToSpaceUp(ch, _ENC_STRIDES[name], residual=cfg.get("residual", False), reduction=mult,
                                       padding_mode=pad, ops=ops, **kw)  # fmt: skip
                ch //= mult
            else:
                raise ValueError(f"config.vae.decoder_blocks: unsupported block {name!r}")
            blocks.append(block)
        self.up_blocks = torch.nn.ModuleList(blocks)
        self.conv_norm_out = make_norm(norm, ch, ops, **kw)
        self.conv_out = CausalConv3d(ch, int(vae.get("out_channels", 3)) * self.patch**2, padding_mode=pad, ops=ops, **kw)
        if self.timestep_conditioning:
            self.timestep_scale_multiplier = torch.nn.Parameter(torch.tensor(1000.0, **kw))
            self.last_time_embedder = TimeEmbedder(2 * ch, ops, **kw)
            self.last_scale_shift_table = torch.nn.Parameter(torch.empty(2, ch, **kw))

    def forward(self, x: torch.Tensor, timestep: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        """``x``: *un-normalized* latent; ``timestep``: ``(B,)`` decode timestep (conditioned only)."""
        scaled = None
        if self.timestep_conditioning:
            scaled = timestep * self.timestep_scale_multiplier.to(x)
        x = self.conv_in(x, self.causal)
        for block in self.up_blocks:
            if isinstance(block, ResBlockStack):
                x = block(x, self.causal, scaled, generator)
            elif isinstance(block, ResnetBlock3D):
                x = block(x, self.causal, None, generator)
            else:
                x = block(x, self.causal)
        x = self.conv_norm_out(x)
        if self.timestep_conditioning:
            emb = self.last_time_embedder(scaled, x.dtype).reshape(x.shape[0], 2, -1)  # (B, 2, C)
            shift, scale = (a[..., None, None, None] for a in (self.last_scale_shift_table.to(x)[None] + emb).unbind(1))
            x = x * (1 + scale) + shift
        x = self.conv_out(F.silu(x), self.causal)
        return rearrange(x, "b (c r q) f h w -> b c f (h q) (w r)", q=self.patch, r=self.patch)  # unpatchify


class VideoVAE(torch.nn.Module):
    """Encoder + decoder + shared latent statistics of one LTX-2 video VAE.

    Args:
        config: the header's ``vae`` section.
        timestep_conditioning: whether the decoder is timestep-conditioned.  ``None`` reads
            ``config["timestep_conditioning"]`` (default True, as ltx-core); loaders pass the
            value detected from the file's keys.
    Attributes:
        decode_timestep, decode_noise_scale: defaults for a conditioned decoder (0.05, 0.025:
            ltx-core's; its pipelines call the decoder without a timestep, so these apply).
    """

    def __init__(self, config: dict, *, timestep_conditioning: bool | None = None, operations=None,
                 dtype=None, device=None) -> None:  # fmt: skip
        super().__init__()
        if int(config.get("dims", 3)) != 3:
            raise ValueError(f"config.vae.dims is {config.get('dims')!r}; LTX-2 video VAEs are 3D (dims 3)")
        ops = resolve(operations)
        if timestep_conditioning is None:
            timestep_conditioning = bool(config.get("timestep_conditioning", True))
        self.config = dict(config)
        self.latent_channels = int(config.get("latent_channels", 128))
        self.dtype = dtype or torch.get_default_dtype()
        self.decode_timestep = DECODE_TIMESTEP
        self.decode_noise_scale = DECODE_NOISE_SCALE
        self.encoder = VideoEncoder(config, ops=ops, dtype=dtype, device=device)
        self.decoder = VideoDecoder(config, timestep_conditioning=timestep_conditioning, ops=ops, dtype=dtype,
                                    device=device)  # fmt: skip
        self.per_channel_statistics = PerChannelStatistics(self.latent_channels, dtype=dtype, device=device)

    @property
    def timestep_conditioning(self) -> bool:
        return self.decoder.timestep_conditioning

    # ------------------------------------------------------------------ validation
    @staticmethod
    def check_pixels(pixels: torch.Tensor) -> None:
        """Raise ValueError unless ``pixels`` is ``(B, 3, 1 + 8k, 32h, 32w)``."""
        if pixels.ndim != 5:
            raise ValueError(f"video VAE encode: expected pixels (B, 3, F, H, W), found shape {tuple(pixels.shape)}")
        _, c, f, h, w = pixels.shape
        problems = []
        if c != 3:
            problems.append(f"{c} channels instead of 3 (RGB)")
        if f < 1 or (f - 1) % TIME_FACTOR:
            problems.append(f"{f} frames; the VAE takes 8k+1 frames: use {_nearest(f, TIME_FACTOR, 1, 1)}")
        for name, n in (("height", h), ("width", w)):
            if n < SPACE_FACTOR or n % SPACE_FACTOR:
                problems.append(f"{name} {n}; it must be a multiple of 32: use {_nearest(n, SPACE_FACTOR, 0, 32)}")
        if problems:
            raise ValueError(f"video VAE encode: input shape {tuple(pixels.shape)} has " + "; ".join(problems))

    def check_latent(self, latent: torch.Tensor) -> None:
        if latent.ndim != 5 or latent.shape[1] != self.latent_channels:
            raise ValueError(
                f"video VAE decode: expected a video latent (B, {self.latent_channels}, F', H', W'), found shape "
                f"{tuple(latent.shape)}. This latent comes from another model (or is an audio latent): decode it "
                "with the VAE it was made for."
            )

    # ------------------------------------------------------------------ API
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B, 3, 1+8k, 32h, 32w)`` in [-1, 1] -> normalized latent ``(B, C, 1+k, h, w)``."""
        self.check_pixels(pixels)
        return self.per_channel_statistics.normalize(self.encoder(pixels))

    def decode(self, latent: torch.Tensor, timestep: float | torch.Tensor | None = None,
               generator: torch.Generator | None = None, noise_scale: float | None = None) -> torch.Tensor:  # fmt: skip
        """Normalized latent ``(B, C, F', H', W')`` -> pixels ``(B, 3, 8(F'-1)+1, 32H', 32W')``.

        For a timestep-conditioned decoder, ``timestep`` (float or ``(B,)``; default
        ``decode_timestep``) and ``noise_scale`` (default ``decode_noise_scale``) follow
        ltx-core: ``latent = noise_scale * randn(generator) + (1 - noise_scale) * latent``
        before decoding.  A plain decoder ignores both (as ltx-core does).
        """
        self.check_latent(latent)
        if self.timestep_conditioning:
            scale = self.decode_noise_scale if noise_scale is None else float(noise_scale)
            noise = torch.randn(latent.shape, generator=generator, dtype=latent.dtype, device=latent.device)
            latent = noise * scale + (1.0 - scale) * latent
            t = self.decode_timestep if timestep is None else timestep
            timestep = torch.as_tensor(t, dtype=latent.dtype, device=latent.device).reshape(-1)
            timestep = timestep.expand(latent.shape[0]) if timestep.numel() == 1 else timestep
        else:
            timestep = None
        return self.decoder(self.per_channel_statistics.un_normalize(latent), timestep, generator)


__all__ = ["DECODE_NOISE_SCALE", "DECODE_TIMESTEP", "SPACE_FACTOR", "TIME_FACTOR", "UNUSED_STATISTICS", "VideoVAE"]
