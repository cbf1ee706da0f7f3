"""LTX-2 latent upsamplers: spatial x2 / x1.5 and temporal x2 on normalised video latents.

One network family (``LatentUpsampler`` in the checkpoint header) covers every variant::

    latent (B, C, F, H, W)
      -> conv3x3 C->M, GroupNorm(32), SiLU
      -> N residual blocks (conv, GN, SiLU, conv, GN, +x, SiLU)
      -> upsampling stage (one of)
           spatial x2       per frame: Conv2d M->4M, depth-to-space 2x2          (B, M, F, 2H, 2W)
           spatial p/q      per frame: Conv2d M->p²M, depth-to-space p x p,
                            binomial 5x5 blur, stride q (x1.5: p=3, q=2)        (B, M, F, pH/q, pW/q)
           temporal x2      Conv3d M->2M, depth-to-time x2, drop first frame    (B, M, 2F-1, H, W)
           both             Conv3d M->8M, depth-to-space-time 2x2x2, drop first (B, M, 2F-1, 2H, 2W)
      -> N residual blocks -> conv3x3 M->C

The first latent frame of the causal video VAE encodes a single pixel frame, so a temporal
x2 upsampler produces ``2F - 1`` frames (it drops the twin of that first frame).

The network works on *un-normalised* latents (the VAE encoder's raw means): ``upsample_latent``
un-normalises with the VAE's per-channel statistics, upsamples and normalises again
(LTX2_SPEC §2.5, §6.5 step 3).  State-dict keys equal the official files' keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from .ops import resolve

CLASS_NAME = "LatentUpsampler"
GROUPS = 32  # GroupNorm groups everywhere; channel counts must be multiples of it
RATIONAL_SCALES = {0.75: (3, 4), 1.5: (3, 2), 2.0: (2, 1), 4.0: (4, 1)}  # scale -> (up p, down q)
BLUR_TAPS = 5  # binomial [1, 4, 6, 4, 1] anti-aliasing filter of the rational resampler


class UpsamplerConfigError(ValueError):
    """A latent-upsampler header config that does not describe a usable network."""


# Header keys and the values the reference configurator uses when a key is absent.  The
# official files name every shape key; the two flags below are absent from the LTX-2.0 files,
# where the reference's defaults (plain x2 pixel shuffle) are what the weights were made for.
_DEFAULTS = {
    "in_channels": 128,
    "mid_channels": 512,
    "num_blocks_per_stage": 4,
    "dims": 3,
    "spatial_upsample": True,
    "temporal_upsample": False,
    "spatial_scale": 2.0,
    "rational_resampler": False,
}


@dataclass(frozen=True)
class UpsamplerConfig:
    """The flat header config of an upsampler file (``__metadata__["config"]``)."""

    in_channels: int = 128
    mid_channels: int = 512
    num_blocks_per_stage: int = 4
    dims: int = 3
    spatial_upsample: bool = True
    temporal_upsample: bool = False
    spatial_scale: float = 2.0
    rational_resampler: bool = False

    @classmethod
    def from_header(cls, config: Mapping[str, Any], source: str = "upsampler config") -> "UpsamplerConfig":
        """Validate a header dict such as ``{"_class_name": "LatentUpsampler", "in_channels": 128, ...}``."""
        if not isinstance(config, Mapping):
            raise UpsamplerConfigError(f"{source}: expected a JSON object, found {type(config).__name__}")
        name = config.get("_class_name", CLASS_NAME)
        if name != CLASS_NAME:
            raise UpsamplerConfigError(
                f"{source}: _class_name is {name!r}, expected {CLASS_NAME!r}: this is not an LTX-2 latent upsampler"
            )
        values = {k: config.get(k, d) for k, d in _DEFAULTS.items()}
        for key in ("in_channels", "mid_channels", "num_blocks_per_stage", "dims"):
            v = values[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "num_blocks_per_stage" else 1):
                raise UpsamplerConfigError(f"{source}: {key} must be a positive integer, found {v!r}")
        for key in ("spatial_upsample", "temporal_upsample", "rational_resampler"):
            if not isinstance(values[key], bool):
                raise UpsamplerConfigError(f"{source}: {key} must be true or false, found {values[key]!r}")
        values["spatial_scale"] = float(values["spatial_scale"])
        cfg = cls(**values)
        cfg.check(source)
        return cfg

    def check(self, source: str = "upsampler config") -> None:
        if self.dims not in (2, 3):
            raise UpsamplerConfigError(f"{source}: dims must be 2 or 3, found {self.dims}")
        if self.mid_channels % GROUPS:
            raise UpsamplerConfigError(f"{source}: mid_channels {self.mid_channels} is not a multiple of {GROUPS}")
        if not (self.spatial_upsample or self.temporal_upsample):
            raise UpsamplerConfigError(f"{source}: neither spatial_upsample nor temporal_upsample is set")
        if self.temporal_upsample and self.dims != 3:
            raise UpsamplerConfigError(f"{source}: temporal upsampling needs dims 3, found dims {self.dims}")
        if self.spatial_upsample and not self.temporal_upsample and self.rational_resampler:
            if self.spatial_scale not in RATIONAL_SCALES:
                raise UpsamplerConfigError(
                    f"{source}: spatial_scale {self.spatial_scale} is not one of {sorted(RATIONAL_SCALES)}"
                )
            if self.dims != 3:
                raise UpsamplerConfigError(f"{source}: the rational resampler needs dims 3, found dims {self.dims}")

    @property
    def kind(self) -> str:
        """``"spatial"``, ``"temporal"`` or ``"spatiotemporal"``."""
        if self.spatial_upsample and self.temporal_upsample:
            return "spatiotemporal"
        return "spatial" if self.spatial_upsample else "temporal"

    @property
    def scale(self) -> tuple[float, float]:
        """(time factor, space factor) on the latent grid (time x2 means F -> 2F - 1)."""
        if self.kind == "spatiotemporal":
            return 2.0, 2.0
        if self.kind == "temporal":
            return 2.0, 1.0
        return 1.0, (self.spatial_scale if self.rational_resampler else 2.0)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(B, C, F, H, W)`` in -> the upsampler's output shape."""
        b, c, f, h, w = shape
        if self.kind == "spatiotemporal":
            return b, c, 2 * f - 1, 2 * h, 2 * w
        if self.kind == "temporal":
            return b, c, 2 * f - 1, h, w
        if self.rational_resampler:
            p, q = RATIONAL_SCALES[self.spatial_scale]
            # blur stride q with padding 2 over p*H rows: ceil(p*H / q)
            return b, c, f, -(-p * h // q), -(-p * w // q)
        return b, c, f, 2 * h, 2 * w


# ------------------------------------------------------------------------------ rearrangements
def depth_to_space(x: torch.Tensor, ft: int, fh: int, fw: int) -> torch.Tensor:
    """``(B, C*ft*fh*fw, F, H, W) -> (B, C, F*ft, H*fh, W*fw)``; channel order (c, ft, fh, fw)."""
    b, c, f, h, w = x.shape
    c_out = c // (ft * fh * fw)
    x = x.reshape(b, c_out, ft, fh, fw, f, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)  # b c f ft h fh w fw
    return x.reshape(b, c_out, f * ft, h * fh, w * fw)


def depth_to_space_2d(x: torch.Tensor, fh: int, fw: int) -> torch.Tensor:
    """``(N, C*fh*fw, H, W) -> (N, C, H*fh, W*fw)``; channel order (c, fh, fw)."""
    return depth_to_space(x.unsqueeze(2), 1, fh, fw).squeeze(2)


def _frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, H, W) -> (B*F, C, H, W)`` (frame-major inside each sample)."""
    b, c, f, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def _batch_to_frames(x: torch.Tensor, b: int) -> torch.Tensor:
    """``(B*F, C, H, W) -> (B, C, F, H, W)``."""
    bf, c, h, w = x.shape
    return x.reshape(b, bf // b, c, h, w).permute(0, 2, 1, 3, 4)


# ------------------------------------------------------------------------------ modules
class ResBlock(torch.nn.Module):
    """conv -> GN -> SiLU -> conv -> GN -> SiLU(x + residual); 2-D or 3-D convolutions."""

    def __init__(self, channels: int, dims: int, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        ops = resolve(operations)
        conv = ops.Conv2d if dims == 2 else ops.Conv3d
        kw = dict(dtype=dtype, device=device)
        self.conv1 = conv(channels, channels, kernel_size=3, padding=1, **kw)
        self.norm1 = ops.GroupNorm(GROUPS, channels, **kw)
        self.conv2 = conv(channels, channels, kernel_size=3, padding=1, **kw)
        self.norm2 = ops.GroupNorm(GROUPS, channels, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.silu(h + x)


def binomial_kernel(taps: int = BLUR_TAPS) -> torch.Tensor:
    """The normalised separable binomial low-pass filter, ``(1, 1, taps, taps)`` float32."""
    row = torch.tensor([math.comb(taps - 1, i) for i in range(taps)], dtype=torch.float64)
    k = torch.outer(row, row)
    return (k / k.sum()).float()[None, None]


class RationalResampler(torch.nn.Module):
    """Per-frame spatial scale by p/q: Conv2d M->p²M, depth-to-space p, blur + stride q.

    ``blur_down.kernel`` is a fixed filter, kept as a state-dict buffer because the official
    files (saved from the reference module) may carry it.
    """

    def __init__(self, channels: int, scale: float, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        ops = resolve(operations)
        self.up, self.down = RATIONAL_SCALES[float(scale)]
        self.conv = ops.Conv2d(channels, self.up**2 * channels, kernel_size=3, padding=1, dtype=dtype, device=device)
        self.blur_down = torch.nn.Module()
        self.blur_down.register_buffer("kernel", binomial_kernel().to(device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, F, H, W)
        b = x.shape[0]
        y = depth_to_space_2d(self.conv(_frames_to_batch(x)), self.up, self.up)
        if self.down > 1:
            c = y.shape[1]
            k = self.blur_down.kernel.to(y)
            weight = k.expand(c, 1, k.shape[-2], k.shape[-1])  # depthwise
            y = F.conv2d(y, weight, stride=self.down, padding=k.shape[-1] // 2, groups=c)
        return _batch_to_frames(y, b)


class LatentUpsampler(torch.nn.Module):
    """The LTX-2 latent upsampler (spatial, rational-spatial, temporal or both).

    ``forward`` maps an un-normalised latent ``(B, C, F, H, W)`` to the shape given by
    ``UpsamplerConfig.output_shape``; use ``upsample_latent`` for normalised latents.
    """

    def __init__(self, config: Mapping[str, Any] | UpsamplerConfig, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        cfg = config if isinstance(config, UpsamplerConfig) else UpsamplerConfig.from_header(config)
        cfg.check()
        self.config = cfg
        self.dtype = dtype if dtype is not None else torch.get_default_dtype()
        ops = resolve(operations)
        kw = dict(operations=operations, dtype=dtype, device=device)
        conv = ops.Conv2d if cfg.dims == 2 else ops.Conv3d
        m = cfg.mid_channels
        self.initial_conv = conv(cfg.in_channels, m, kernel_size=3, padding=1, dtype=dtype, device=device)
        self.initial_norm = ops.GroupNorm(GROUPS, m, dtype=dtype, device=device)
        self.res_blocks = torch.nn.ModuleList([ResBlock(m, cfg.dims, **kw) for _ in range(cfg.num_blocks_per_stage)])
        if cfg.kind == "spatiotemporal":
            self.upsampler = torch.nn.Sequential(ops.Conv3d(m, 8 * m, 3, padding=1, dtype=dtype, device=device))
        elif cfg.kind == "temporal":
            self.upsampler = torch.nn.Sequential(ops.Conv3d(m, 2 * m, 3, padding=1, dtype=dtype, device=device))
        elif cfg.rational_resampler:
            self.upsampler = RationalResampler(m, cfg.spatial_scale, **kw)
        else:
            self.upsampler = torch.nn.Sequential(ops.Conv2d(m, 4 * m, 3, padding=1, dtype=dtype, device=device))
        self.post_upsample_res_blocks = torch.nn.ModuleList(
            [ResBlock(m, cfg.dims, **kw) for _ in range(cfg.num_blocks_per_stage)]
        )
        self.final_conv = conv(m, cfg.in_channels, kernel_size=3, padding=1, dtype=dtype, device=device)

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        """The middle stage on ``(B, M, F, H, W)``."""
        kind = self.config.kind
        if kind in ("spatiotemporal", "temporal"):
            # The first latent frame stands for one pixel frame: its temporal twin is dropped.
            f = 2 if kind == "spatiotemporal" else 1
            return depth_to_space(self.upsampler(x), 2, f, f)[:, :, 1:]
        if self.config.rational_resampler:
            return self.upsampler(x)
        b = x.shape[0]
        return _batch_to_frames(depth_to_space_2d(self.upsampler(_frames_to_batch(x)), 2, 2), b)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        if latent.ndim != 5 or latent.shape[1] != self.config.in_channels:
            raise ValueError(
                f"latent upsampler: expected a video latent (B, {self.config.in_channels}, F, H, W), "
                f"got shape {tuple(latent.shape)}"
            )
        b = latent.shape[0]
        if self.config.dims == 2:  # every layer works per frame
            x = _frames_to_batch(latent)
            x = F.silu(self.initial_norm(self.initial_conv(x)))
            for block in self.res_blocks:
                x = block(x)
            x = depth_to_space_2d(self.upsampler(x), 2, 2)
            for block in self.post_upsample_res_blocks:
                x = block(x)
            return _batch_to_frames(self.final_conv(x), b)
        x = F.silu(self.initial_norm(self.initial_conv(latent)))
        for block in self.res_blocks:
            x = block(x)
        x = self._upsample(x)
        for block in self.post_upsample_res_blocks:
            x = block(x)
        return self.final_conv(x)


# ------------------------------------------------------------------------------ normalised API
def _statistics(vae_statistics) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per channel from a ``(mean, std)`` pair, a module holding the VAE's
    ``mean-of-means`` / ``std-of-means`` buffers, or an object with ``.mean`` / ``.std``."""
    if isinstance(vae_statistics, (tuple, list)) and len(vae_statistics) == 2:
        return vae_statistics[0], vae_statistics[1]
    for holder in (vae_statistics, getattr(vae_statistics, "per_channel_statistics", None)):
        if holder is None:
            continue
        if isinstance(holder, torch.nn.Module):
            buffers = dict(holder.named_buffers(recurse=False))
            if "mean-of-means" in buffers and "std-of-means" in buffers:
                return buffers["mean-of-means"], buffers["std-of-means"]
        if hasattr(holder, "mean") and hasattr(holder, "std") and isinstance(getattr(holder, "mean"), torch.Tensor):
            return holder.mean, holder.std
    raise TypeError(
        "upsample_latent: vae_statistics must be a (mean, std) pair of (C,) tensors or the video VAE's "
        f"per-channel statistics; got {type(vae_statistics).__name__}"
    )


def upsample_latent(upsampler: LatentUpsampler, latent: torch.Tensor, vae_statistics) -> torch.Tensor:
    """Upsample a *normalised* video latent ``(B, C, F, H, W)`` (as samplers see it).

    ``raw = latent * std + mean`` -> ``upsampler(raw)`` -> ``(out - mean) / std``, with the
    video VAE's per-channel statistics (``vae_statistics``: see ``_statistics``).  Computed in
    the upsampler's dtype; returned in the latent's dtype.
    """
    mean, std = _statistics(vae_statistics)
    c = latent.shape[1] if latent.ndim == 5 else None
    if c is None or mean.numel() != c or std.numel() != c:
        raise ValueError(
            f"upsample_latent: expected a video latent (B, {mean.numel()}, F, H, W) matching the VAE statistics, "
            f"got shape {tuple(latent.shape)}"
        )
    param = next(upsampler.parameters())
    # Host layers that cast weights on the fly set ``compute_dtype``; plain modules compute in
    # their weights' dtype.
    compute = getattr(upsampler, "compute_dtype", None) or param.dtype
    x = latent.to(device=param.device, dtype=compute)
    shape = (1, c, 1, 1, 1)
    mean = mean.to(x).view(shape)
    std = std.to(x).view(shape)
    out = upsampler(x * std + mean)
    return ((out - mean) / std).to(latent.dtype)
