"""Small test videos written at run time (never committed): frames whose red level tells the
frame index (5 grey levels per frame), a moving green gradient (edges for canny), and an
optional stereo tone, through the pack's own mp4 writer."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import torch

LEVEL_STEP = 5  # red level of frame k is LEVEL_STEP * k / 255 (distinct for k < 52)


def pattern_frames(n: int, height: int, width: int, start: int = 0) -> torch.Tensor:
    """``(n, height, width, 3)`` in [0, 1]: red = frame level, green = moving bars, blue = y."""
    k = torch.arange(start, start + n, dtype=torch.float32)[:, None, None]
    x = torch.arange(width, dtype=torch.float32)[None, None, :]
    y = torch.linspace(0, 1, height)[None, :, None]
    red = ((LEVEL_STEP * k) % 256 / 255.0).expand(n, height, width)
    green = (((x + 2 * k) // 8) % 2).expand(n, height, width) * 0.8 + 0.1
    return torch.stack([red, green, y.expand(n, height, width)], dim=-1)


def frame_index(frame: torch.Tensor) -> int:
    """The index a decoded ``pattern_frames`` frame (H, W, 3) shows (from its mean red)."""
    return round(float(frame[..., 0].mean()) * 255.0 / LEVEL_STEP)


def tone(seconds: float, rate: int, freq: float = 440.0) -> torch.Tensor:
    t = torch.arange(int(round(seconds * rate))) / rate
    return torch.stack([0.3 * torch.sin(2 * math.pi * freq * t), 0.2 * torch.sin(2 * math.pi * 2 * freq * t)])


def write_video(path: Path, frames: int, width: int = 96, height: int = 64, fps: float = 24.0, *,
                audio_rate: int | None = 24000, crf: int = 10) -> Path:  # fmt: skip
    """An mp4 of ``pattern_frames`` (+ a tone over the same duration when ``audio_rate``)."""
    from openltx.media.mp4_writer import Mp4Writer  # the conftest alias

    path = Path(path)
    with Mp4Writer(path, width, height, Fraction(fps).limit_denominator(1001), audio_sample_rate=audio_rate,
                   crf=crf) as writer:  # fmt: skip
        if audio_rate:
            writer.write_audio(tone(frames / fps, audio_rate))
        for s in range(0, frames, 16):
            writer.write_frames(pattern_frames(min(16, frames - s), height, width, start=s))
    return path
