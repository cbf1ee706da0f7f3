"""Building blocks of the LTX-2 video VAE (causal 3D convolutions, ResNet blocks, resamplers).

Tensors are ``(B, C, F, H, W)`` throughout.  Module and parameter names equal the keys of
the official checkpoints (``conv.weight``, ``res_blocks.0.conv1.conv.bias``, ...), so a
state dict with the ``vae.encoder.`` / ``vae.decoder.`` prefix stripped loads as it is.

Facts (read off Lightricks' ltx-core 1.0.0, ``video_vae/{convolution,resnet,sampling}.py``):

* every 3x3x3 convolution pads space symmetrically (by one, with the header's
  ``spatial_padding_mode``) and pads time by repeating frames: causal = the first frame twice
  in front, non-causal = first frame once in front and last frame once behind;
* PixelNorm divides by ``sqrt(mean(x^2 over channels) + 1e-8)``;
* space-to-depth downsamplers add a channel-group mean of the folded input (a parameter-free
  skip); depth-to-space upsamplers drop the first output frame after a temporal x2, so that
  ``1 + 8k`` frames stay ``1 + 8k``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from .attention import _TimestepEmbedding, sinusoidal_embedding
from .ops import resolve

NORM_GROUPS = 32  # GroupNorm groups when norm_layer == "group_norm"


class PixelNorm(torch.nn.Module):
    """Per-position RMS normalisation over channels (no parameters)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(torch.mean(x * x, dim=1, keepdim=True) + self.eps)


def make_norm(norm_layer: str, channels: int, ops, **kw) -> torch.nn.Module:
    if norm_layer == "pixel_norm":
        return PixelNorm()
    if norm_layer == "group_norm":
        return ops.GroupNorm(NORM_GROUPS, channels, eps=1e-6, affine=True, **kw)
    raise ValueError(f"config.vae.norm_layer must be 'pixel_norm' or 'group_norm', found {norm_layer!r}")


class CausalConv3d(torch.nn.Module):
    """3x3x3 conv whose time axis is padded by frame repetition (module key ``conv``).

    ``forward(x, causal)``: causal repeats the first frame ``k-1`` times in front; otherwise
    ``(k-1)/2`` copies of the first frame go in front and as many of the last behind.
    Output frames: ``(F - 1) // stride_t + 1`` (causal) for an input of ``F`` frames.
    """

    def __init__(self, n_in: int, n_out: int, stride=1, *, padding_mode: str, ops, **kw) -> None:
        super().__init__()
        self.kernel_t = 3
        self.conv = ops.Conv3d(n_in, n_out, 3, stride=stride, padding=(0, 1, 1), padding_mode=padding_mode, **kw)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        k = self.kernel_t - 1
        if causal:
            x = torch.cat((x[:, :, :1].expand(-1, -1, k, -1, -1), x), dim=2)
        else:
            front = x[:, :, :1].expand(-1, -1, k // 2, -1, -1)
            back = x[:, :, -1:].expand(-1, -1, k // 2, -1, -1)
            x = torch.cat((front, x, back), dim=2)
        return self.conv(x)


class TimeEmbedder(torch.nn.Module):
    """PixArt timestep embedder: 256 sinusoid channels -> ``dim`` -> ``dim`` (SiLU between).

    Key layout ``timestep_embedder.linear_{1,2}``; input ``(N,)`` already scaled (x1000).
    """

    def __init__(self, dim: int, ops, **kw) -> None:
        super().__init__()
        self.timestep_embedder = _TimestepEmbedding(dim, ops, **kw).timestep_embedder

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:  # (N,) -> (N, dim)
        return self.timestep_embedder(sinusoidal_embedding(t.flatten()).to(dtype))


class ResnetBlock3D(torch.nn.Module):
    """``x + conv2(act(norm2(conv1(act(norm1(x))))))`` with optional AdaLN and noise injection.

    Widths ``n_in -> n_out``; a 1x1x1 conv (after a one-group GroupNorm) matches the shortcut
    when they differ.  ``timestep``: ``(B, 4 * n_in)`` embedding (shift1, scale1, shift2,
    scale2 rows, each added to ``scale_shift_table``).  ``inject_noise`` adds one random
    ``(H, W)`` plane per conv, scaled per channel (StyleGAN "explicit noise inputs").
    """

    def __init__(self, n_in: int, n_out: int, *, norm_layer: str, padding_mode: str, inject_noise: bool = False,
                 timestep_conditioning: bool = False, ops, **kw) -> None:  # fmt: skip
        super().__init__()
        self.inject_noise = inject_noise
        self.timestep_conditioning = timestep_conditioning
        self.norm1 = make_norm(norm_layer, n_in, ops, **kw)
        self.conv1 = CausalConv3d(n_in, n_out, padding_mode=padding_mode, ops=ops, **kw)
        self.norm2 = make_norm(norm_layer, n_out, ops, **kw)
        self.conv2 = CausalConv3d(n_out, n_out, padding_mode=padding_mode, ops=ops, **kw)
        if inject_noise:  # ltx-core sizes both scales by the input width (equal widths in practice)
            self.per_channel_scale1 = torch.nn.Parameter(torch.zeros(n_in, 1, 1, **kw))
            self.per_channel_scale2 = torch.nn.Parameter(torch.zeros(n_in, 1, 1, **kw))
        if n_in != n_out:
            self.norm3 = ops.GroupNorm(1, n_in, eps=1e-6, affine=True, **kw)
            self.conv_shortcut = ops.Conv3d(n_in, n_out, 1, **kw)
        else:
            self.norm3 = self.conv_shortcut = None
        if timestep_conditioning:
            self.scale_shift_table = torch.nn.Parameter(torch.zeros(4, n_in, **kw))

    @staticmethod
    def _noise(x: torch.Tensor, scale: torch.Tensor, generator) -> torch.Tensor:
        plane = torch.randn(x.shape[-2:], device=x.device, dtype=x.dtype, generator=generator)  # (H, W)
        return x + (plane[None] * scale.to(x))[None, :, None]  # (1, C, 1, H, W)

    def forward(self, x: torch.Tensor, causal: bool = True, timestep: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        h = self.norm1(x)
        if self.timestep_conditioning:
            if timestep is None:
                raise ValueError("this ResNet block is timestep-conditioned: pass the embedded timestep")
            ada = self.scale_shift_table.to(h)[None] + timestep.reshape(x.shape[0], 4, -1)  # (B, 4, C)
            shift1, scale1, shift2, scale2 = (a[..., None, None, None] for a in ada.unbind(1))
            h = h * (1 + scale1) + shift1
        h = self.conv1(F.silu(h), causal)
        if self.inject_noise:
            h = self._noise(h, self.per_channel_scale1, generator)
        h = self.norm2(h)
        if self.timestep_conditioning:
            h = h * (1 + scale2) + shift2
        h = self.conv2(F.silu(h), causal)
        if self.inject_noise:
            h = self._noise(h, self.per_channel_scale2, generator)
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(self.norm3(x))
        return x + h


class ResBlockStack(torch.nn.Module):
    """``res_x``: ``num_layers`` equal-width ResNet blocks sharing one timestep embedder."""

    def __init__(self, channels: int, num_layers: int, *, timestep_conditioning: bool = False, ops, **block_kw) -> None:
        super().__init__()
        kw = {k: block_kw[k] for k in ("dtype", "device") if k in block_kw}
        self.timestep_conditioning = timestep_conditioning
        if timestep_conditioning:
            self.time_embedder = TimeEmbedder(4 * channels, ops, **kw)
        self.res_blocks = torch.nn.ModuleList(
            ResnetBlock3D(channels, channels, timestep_conditioning=timestep_conditioning, ops=ops, **block_kw)
            for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor, causal: bool = True, timestep: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        emb = None
        if self.timestep_conditioning:
            if timestep is None:
                raise ValueError("this res_x block is timestep-conditioned: pass the scaled timestep")
            emb = self.time_embedder(timestep, x.dtype)  # (B, 4C)
        for block in self.res_blocks:
            x = block(x, causal, emb, generator)
        return x


def _fold(x: torch.Tensor, stride) -> torch.Tensor:
    """Space-to-depth: ``(B, C, F*p, H*q, W*r) -> (B, C*p*q*r, F, H, W)`` (channel-major)."""
    p, q, r = stride
    return rearrange(x, "b c (d p) (h q) (w r) -> b (c p q r) d h w", p=p, q=q, r=r)


def _unfold(x: torch.Tensor, stride) -> torch.Tensor:
    """Depth-to-space, the inverse of ``_fold``."""
    p, q, r = stride
    return rearrange(x, "b (c p q r) d h w -> b c (d p) (h q) (w r)", p=p, q=q, r=r)


class SpaceToDepthDown(torch.nn.Module):
    """Encoder ``compress_*_res``: conv to ``n_out / prod(stride)`` channels, folded, plus the
    group mean of the folded input.  A temporal stride of 2 first duplicates frame 0 (causal),
    so ``1 + 8k`` frames become ``1 + 4k``."""

    def __init__(self, n_in: int, n_out: int, stride, *, padding_mode: str, ops, **kw) -> None:
        super().__init__()
        self.stride = tuple(stride)
        self.group = n_in * math.prod(stride) // n_out
        self.conv = CausalConv3d(n_in, n_out // math.prod(stride), padding_mode=padding_mode, ops=ops, **kw)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if self.stride[0] == 2:
            x = torch.cat((x[:, :, :1], x), dim=2)
        skip = _fold(x, self.stride)
        skip = skip.unflatten(1, (-1, self.group)).mean(dim=2)
        return _fold(self.conv(x, causal), self.stride) + skip


class DepthToSpaceUp(torch.nn.Module):
    """Decoder ``compress_*``: conv to ``prod(stride) * n_in / reduction`` channels, unfolded;
    ``residual`` adds the unfolded input repeated to the output width.  After a temporal x2
    the first frame is dropped (``F -> 2F - 1``)."""

    def __init__(self, n_in: int, stride, *, residual: bool, reduction: int, padding_mode: str, ops, **kw) -> None:
        super().__init__()
        self.stride = tuple(stride)
        self.residual = residual
        self.repeats = math.prod(stride) // reduction
        self.conv = CausalConv3d(n_in, math.prod(stride) * n_in // reduction, padding_mode=padding_mode, ops=ops, **kw)

    def forward(self, x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        drop = 1 if self.stride[0] == 2 else 0
        out = _unfold(self.conv(x, causal), self.stride)[:, :, drop:]
        if self.residual:
            out = out + _unfold(x, self.stride).repeat(1, self.repeats, 1, 1, 1)[:, :, drop:]
        return out
