"""Token order and positions of video and audio latents.

Video latents ``(B, C, F', H', W')`` become tokens in ``f h w`` order (patch size 1).  A token's
position is its ``[start, end)`` interval in pixel units: time × 8 frames, height/width × 32 px.
Because the causal VAE encodes frame 0 alone, time bounds are shifted by ``1 - 8`` and clamped
at 0 (latent frame 0 covers pixel frame [0, 1), frame f ≥ 1 covers [8f-7, 8f+1)); time is then
divided by the frame rate, so the model sees seconds.

Audio latents ``(B, 8, T, 16)`` become ``T`` tokens of 128 features (channel-major).  Latent
``i`` stands for mel frames ``[4i-3, 4i+1)`` (clamped at 0), at 100 mel frames per second.
"""

from __future__ import annotations

import torch

VIDEO_TIME_SCALE = 8
VIDEO_SPACE_SCALE = 32
AUDIO_LATENT_DOWNSAMPLE = 4
AUDIO_HOP_SECONDS = 160 / 16000  # one mel frame
AUDIO_LATENTS_PER_SECOND = 1.0 / (AUDIO_HOP_SECONDS * AUDIO_LATENT_DOWNSAMPLE)  # 25


def patchify_video(latent: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, H, W)`` → ``(B, F*H*W, C)``."""
    b, c = latent.shape[:2]
    return latent.reshape(b, c, -1).transpose(1, 2)


def unpatchify_video(tokens: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """``(B, F*H*W, C)`` → ``(B, C, F, H, W)``."""
    b, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, frames, height, width)


def patchify_audio(latent: torch.Tensor) -> torch.Tensor:
    """``(B, C, T, M)`` → ``(B, T, C*M)`` (channel-major features)."""
    b, c, t, m = latent.shape
    return latent.permute(0, 2, 1, 3).reshape(b, t, c * m)


def unpatchify_audio(tokens: torch.Tensor, channels: int, mel_bins: int) -> torch.Tensor:
    """``(B, T, C*M)`` → ``(B, C, T, M)``."""
    b, t, _ = tokens.shape
    return tokens.reshape(b, t, channels, mel_bins).permute(0, 2, 1, 3)


def video_positions(
    batch: int,
    frames: int,
    height: int,
    width: int,
    fps: float,
    *,
    frame_offset: int = 0,
    causal_fix: bool = True,
    spatial_scale: float = VIDEO_SPACE_SCALE,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Bounds of every video token.

    Args:
        frame_offset: pixel-frame index where this latent starts (keyframes appended at frame
            ``k`` use ``k``; the causal fix then applies only when it is 0).
        spatial_scale: pixels per latent cell (32; larger for reference videos encoded at a
            reduced resolution, e.g. IC-LoRA).
    Returns:
        ``(B, 3, F*H*W, 2)`` float32: (seconds, px, px) ``[start, end)``.
    """
    f = torch.arange(frames, device=device, dtype=torch.float32)
    h = torch.arange(height, device=device, dtype=torch.float32)
    w = torch.arange(width, device=device, dtype=torch.float32)
    t0 = f * VIDEO_TIME_SCALE + frame_offset
    t1 = t0 + VIDEO_TIME_SCALE
    if causal_fix and frame_offset == 0:
        shift = 1 - VIDEO_TIME_SCALE
        t0 = (t0 + shift).clamp(min=0)
        t1 = (t1 + shift).clamp(min=0)
    time = torch.stack((t0, t1), -1) / fps  # (F, 2)
    ys = torch.stack((h, h + 1), -1) * spatial_scale  # (H, 2)
    xs = torch.stack((w, w + 1), -1) * spatial_scale  # (W, 2)
    grid = torch.stack(
        (
            time[:, None, None].expand(frames, height, width, 2),
            ys[None, :, None].expand(frames, height, width, 2),
            xs[None, None, :].expand(frames, height, width, 2),
        ),
        dim=0,
    )  # (3, F, H, W, 2)
    return grid.reshape(1, 3, -1, 2).expand(batch, -1, -1, -1).contiguous()


def audio_positions(
    batch: int, steps: int, *, start: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """Bounds of every audio token.

    Args:
        steps: number of audio latents; ``start``: index of the first one (for windows).
    Returns:
        ``(B, 1, T, 2)`` float32 seconds ``[start, end)``.
    """
    idx = torch.arange(start, start + steps + 1, device=device, dtype=torch.float32)
    mel = (idx * AUDIO_LATENT_DOWNSAMPLE + 1 - AUDIO_LATENT_DOWNSAMPLE).clamp(min=0)
    seconds = mel * 160 / 16000
    bounds = torch.stack((seconds[:-1], seconds[1:]), -1)  # (T, 2)
    return bounds.reshape(1, 1, steps, 2).expand(batch, -1, -1, -1).contiguous()


def audio_latent_steps(pixel_frames: int, fps: float) -> int:
    """Audio latents that cover a video of ``pixel_frames`` at ``fps`` (25 per second, rounded)."""
    return round(pixel_frames / fps * AUDIO_LATENTS_PER_SECOND)
