"""Rotary position embeddings of LTX-2 (fractional positions, split or interleaved pairing).

Positions arrive as ``[start, end)`` bounds per axis, shape ``(B, n_axes, T, 2)``: seconds for
time, pixels for height/width.  Each token uses the middle of its interval, divided by the
axis' ``max_pos`` (20 s, 2048 px, 2048 px) and mapped to [-1, 1].

Per axis there are ``n = dim // (2 * n_axes)`` frequencies ``theta ** linspace(0, 1, n) * pi/2``.
The shipped checkpoints build that grid in float64 (``frequencies_precision: float64``) and
round it to float32 once; the float32 path reproduces the legacy computation.

Angles are ordered frequency-major with the axes interleaved (``[f0_t, f0_h, f0_w, f1_t, ...]``).
With split RoPE, ``dim // 2`` angles are expected; the shortfall (2 for 4096/3 axes) is padded
at the *front* with angle 0 (cos 1, sin 0), then the angles are cut into per-head slices.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from .config import RopeType


@functools.lru_cache(maxsize=16)
def _freq_grid(theta: float, n: int, fp64: bool) -> torch.Tensor:
    """``n`` base frequencies (float32, on CPU), already multiplied by pi/2."""
    if fp64:
        grid = np.power(theta, np.linspace(0.0, 1.0, n, dtype=np.float64)) * (math.pi / 2)
        return torch.tensor(grid, dtype=torch.float32)
    grid = theta ** torch.linspace(0.0, 1.0, n, dtype=torch.float32)
    return grid.to(torch.float32) * (math.pi / 2)


def rope_angles(
    positions: torch.Tensor, dim: int, max_pos: tuple[float, ...], theta: float, fp64_grid: bool
) -> torch.Tensor:
    """Angles for every token, before padding.

    Args:
        positions: ``(B, n_axes, T, 2)`` bounds (or ``(B, n_axes, T)`` points).
        dim: the attention inner dim the embedding is for.
    Returns:
        ``(B, T, n * n_axes)`` float32 angles.
    """
    if positions.ndim == 4:
        points = (positions[..., 0] + positions[..., 1]) / 2.0  # middle of each interval
    else:
        points = positions
    n_axes = points.shape[1]
    if n_axes != len(max_pos):
        raise ValueError(f"positions have {n_axes} axes but max_pos has {len(max_pos)} entries")
    frac = torch.stack([points[:, i] / max_pos[i] for i in range(n_axes)], dim=-1)  # (B, T, n_axes)
    freqs = _freq_grid(float(theta), dim // (2 * n_axes), bool(fp64_grid)).to(frac.device)
    angles = freqs * (frac.unsqueeze(-1) * 2 - 1)  # (B, T, n_axes, n)
    return angles.transpose(-1, -2).flatten(2)  # (B, T, n * n_axes), axes interleaved


def rope_cos_sin(
    positions: torch.Tensor,
    *,
    dim: int,
    heads: int,
    max_pos: tuple[float, ...],
    theta: float,
    fp64_grid: bool,
    rope_type: RopeType,
    out_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cos/sin tables for one attention.

    Returns:
        split: ``(B, heads, T, dim // heads // 2)`` each;
        interleaved: ``(B, T, dim)`` each.
    """
    angles = rope_angles(positions, dim, max_pos, theta, fp64_grid)
    cos, sin = angles.cos(), angles.sin()
    b, t, _ = angles.shape
    if rope_type is RopeType.SPLIT:
        pad = dim // 2 - angles.shape[-1]
        if pad:
            cos = torch.cat([cos.new_ones(b, t, pad), cos], dim=-1)
            sin = torch.cat([sin.new_zeros(b, t, pad), sin], dim=-1)
        cos = cos.reshape(b, t, heads, -1).transpose(1, 2)
        sin = sin.reshape(b, t, heads, -1).transpose(1, 2)
    else:
        cos = cos.repeat_interleave(2, dim=-1)
        sin = sin.repeat_interleave(2, dim=-1)
        pad = dim % (2 * positions.shape[1])
        if pad:
            cos = torch.cat([cos.new_ones(b, t, pad), cos], dim=-1)
            sin = torch.cat([sin.new_zeros(b, t, pad), sin], dim=-1)
    return cos.to(out_dtype), sin.to(out_dtype)


def apply_split_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs ``(i, i + d/2)`` inside each head.

    Args:
        x: ``(B, H, T, d)``; cos/sin: ``(B, H, T, d/2)``.
    Returns:
        ``(B, H, T, d)``.
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def apply_interleaved_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs ``(2i, 2i+1)`` over the flat inner dim.

    Args:
        x: ``(B, T, D)``; cos/sin: ``(B, T, D)``.
    """
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + rotated * sin
