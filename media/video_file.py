"""Read part of a video file through PyAV: frames of a time range at a chosen frame rate and
size, and the sound of the same range.

Nothing here decodes more than it was asked for: reading starts with a seek to the keyframe
before ``start_s`` and stops as soon as the requested frames (or the requested stretch of
sound) are out, so the first seconds of a two-hour file cost what a short clip costs.
Frames are resized one small batch at a time, so memory holds the output frames only.

Resizing follows ltx-pipelines' ``resize_and_center_crop`` (the reference's video
conditioning): scale to *cover* the target (``ceil`` of the scaled sides), bilinear without
antialiasing, then crop the centre.

Memory is bounded whatever the file claims: frames larger than ``MAX_SOURCE_PIXELS`` are refused
before they are converted, the output (frames x height x width x 3) may not exceed
``MAX_VIDEO_VALUES`` float32 values (checked before decoding), and the sound of the range at most
``MAX_AUDIO_VALUES``.  Files open through ``containers.open_media`` (local file, ordinary
demuxers only: a "video" that is a concat list or a playlist reads nothing else).  ``interrupt``
is called between decoded frames / packets; whatever it raises propagates unchanged.

Every failure is a ``VideoFileError`` (a ``ValueError``) naming the file, what was expected
and what was found.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import av
import numpy as np
import torch
import torch.nn.functional as F

from .audio_file import MAX_AUDIO_VALUES, VIDEO_EXTENSIONS
from .containers import open_media

RESIZE_BATCH = 16  # frames resized at once (bounds the memory of the source-size copies)
AUDIO_SEEK_MARGIN = 0.25  # s decoded before an audio range: AAC / MP3 frames overlap their predecessor
RESIZE_BATCH_BYTES = 256 << 20  # ... and at most this many bytes of source frames (big frames: fewer at once)
# One source frame at most 8192 x 8192 (a 16K x 16K stream header in a small file would
# otherwise decode to 805 MB per frame).
MAX_SOURCE_PIXELS = 8192 * 8192
# Output values (frames x H x W x 3, float32) at most: 2^31, 8 GiB -- e.g. 345 frames of
# 1920 x 1080 or 1165 frames of 1280 x 720.  Longer clips: load them in parts (start_s).
MAX_VIDEO_VALUES = 1 << 31
Progress = Callable[[int, int], None] | None
Interrupt = Callable[[], None] | None


class VideoFileError(ValueError):
    """A video file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a file's first video stream.

    ``frames`` is the container's frame count, or an estimate from duration × fps when the
    container has none (0 when neither is known).
    """

    width: int
    height: int
    fps: float
    frames: int
    duration: float
    has_audio: bool


@dataclass(frozen=True)
class VideoClip:
    """Decoded frames ``(F, H, W, 3)`` float32 in [0, 1] at ``fps``, from ``start_s`` on."""

    frames: torch.Tensor
    fps: float
    start_s: float
    source: VideoInfo


# ------------------------------------------------------------------------------ opening
def _open(path: str | os.PathLike):
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise VideoFileError(f"{name}: no such video file")
    if os.path.getsize(name) == 0:
        raise VideoFileError(f"{name}: the file is empty (0 bytes); expected a video file ({', '.join(VIDEO_EXTENSIONS)})")
    try:
        return open_media(name)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoFileError(
            f"{name}: not a readable video file ({type(err).__name__}: {err}). The file is corrupt or in an unknown "
            "format; re-export it as .mp4 (H.264)."
        ) from None


def _video_stream(container, name: str):
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "no streams at all"
        raise VideoFileError(f"{name}: the file has no video stream (found: {kinds}); expected a video file")
    return container.streams.video[0]


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _stream_start(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _info(container, stream) -> VideoInfo:
    fps = _stream_fps(stream)
    if stream.duration is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    frames = int(stream.frames or 0) or (int(round(duration * fps)) if fps else 0)
    ctx = stream.codec_context
    return VideoInfo(int(ctx.width), int(ctx.height), fps, frames, duration, bool(container.streams.audio))


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, frame count, duration and whether there is sound (no decoding)."""
    name = os.fspath(path)
    container = _open(name)
    try:
        return _info(container, _video_stream(container, name))
    finally:
        container.close()


# ------------------------------------------------------------------------------ resizing
def resize_cover(frames: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``(F, H, W, 3)`` -> ``(F, height, width, 3)`` float32: scaled to cover the target (sides
    rounded up), bilinear, centre-cropped (ltx-pipelines' ``resize_and_center_crop``)."""
    f, h, w, _ = frames.shape
    if (h, w) == (height, width):
        return frames.float()
    scale = max(height / h, width / w)
    new_h, new_w = math.ceil(h * scale), math.ceil(w * scale)
    x = frames.float().permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return x[:, :, top : top + height, left : left + width].permute(0, 2, 3, 1).contiguous()


class _FrameSink:
    """Collects decoded uint8 frames, resizing them in small batches into float [0, 1]."""

    def __init__(self, width: int, height: int, limit: int, progress: Progress) -> None:
        self.size = (width, height)
        self.limit = limit
        self.progress = progress
        self.pending: list[np.ndarray] = []
        self.done: list[torch.Tensor] = []
        self.count = 0

    def add(self, rgb: np.ndarray) -> None:
        self.pending.append(rgb)
        self.count += 1
        if len(self.pending) >= max(1, min(RESIZE_BATCH, RESIZE_BATCH_BYTES // max(1, rgb.nbytes))):
            self.flush()
        if self.progress is not None:
            self.progress(self.count, self.limit)

    def flush(self) -> None:
        if not self.pending:
            return
        batch = torch.from_numpy(np.stack(self.pending))
        self.pending = []
        w, h = self.size
        if w and h:
            batch = resize_cover(batch, w, h)
        self.done.append(batch.float().div_(255.0))

    def result(self) -> torch.Tensor:
        self.flush()
        return torch.cat(self.done) if self.done else torch.zeros(0, 0, 0, 3)


# ------------------------------------------------------------------------------ frames
def read_frames(
    path: str | os.PathLike,
    *,
    start_s: float = 0.0,
    frames: int = 121,
    fps: float = 0.0,
    width: int = 0,
    height: int = 0,
    progress: Progress = None,
    interrupt: Interrupt = None,
) -> VideoClip:
    """Decode at most ``frames`` frames starting at ``start_s`` seconds.

    Args:
        fps: output frame rate; 0 keeps the file's frames as they are.  Otherwise output frame
            ``k`` is the source frame on screen at ``start_s + k / fps`` (frames are repeated
            or dropped, never blended).
        width, height: output size (resized to cover, centre-cropped); 0 and 0 keep the file's.
            Giving one of them keeps the aspect ratio.
        progress: ``progress(done, total)`` after every output frame.
        interrupt: called before every decoded frame (ComfyUI's interrupt check).
    Returns:
        a ``VideoClip``; fewer than ``frames`` frames when the file ends first.
    """
    name = os.fspath(path)
    if frames < 1:
        raise VideoFileError(f"{name}: asked for {frames} frames; ask for at least 1")
    if not all(math.isfinite(v) and v >= 0 for v in (start_s, fps, width, height)):
        raise VideoFileError(f"{name}: start_s, fps, width and height must be finite and not negative")
    container = _open(name)
    try:
        stream = _video_stream(container, name)
        info = _info(container, stream)
        _check_frame_size(name, info.width, info.height)
        if width and not height:
            height = max(2, round(info.height * width / info.width))
        elif height and not width:
            width = max(2, round(info.width * height / info.height))
        out_w, out_h = (width, height) if width and height else (info.width, info.height)
        if frames * out_h * out_w * 3 > MAX_VIDEO_VALUES:
            fit = max(1, MAX_VIDEO_VALUES // (out_h * out_w * 3))
            raise VideoFileError(
                f"{name}: {frames} frames of {out_w}x{out_h} would take {frames * out_h * out_w * 3 * 4 / 2**30:.1f} GiB; "
                f"LTX-2 Load Video holds at most {MAX_VIDEO_VALUES * 4 / 2**30:.0f} GiB of frames at once ({fit} frames "
                "at this size). Ask for fewer frames or a smaller width / height, and load longer clips in parts "
                "(start_s)."
            )
        if start_s > 0 and info.duration and start_s >= info.duration:
            raise VideoFileError(f"{name}: start_s {start_s:g} s is past the end of the video ({info.duration:.2f} s)")
        sink = _FrameSink(width, height, frames, progress)
        src_fps = info.fps or 24.0
        out_fps = float(fps) if fps else src_fps
        _decode_range(container, stream, start_s, frames, float(fps), src_fps, sink, name, interrupt)
    except av.error.FFmpegError as err:
        raise VideoFileError(f"{name}: decoding failed ({type(err).__name__}: {err}); the file is corrupt") from None
    finally:
        container.close()
    out = sink.result()
    if out.shape[0] == 0:
        raise VideoFileError(
            f"{name}: no frames at or after {start_s:g} s (the video is {info.duration:.2f} s long); lower start_s"
        )
    return VideoClip(out, out_fps, float(start_s), info)


def _check_frame_size(name: str, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise VideoFileError(f"{name}: the video stream says its frames are {width}x{height}; the file is corrupt")
    if width * height > MAX_SOURCE_PIXELS:
        raise VideoFileError(
            f"{name}: the video's frames are {width}x{height}; LTX-2 Load Video reads frames of at most "
            f"{MAX_SOURCE_PIXELS} pixels (8192x8192). Scale the video down first (e.g. ffmpeg -vf scale=1920:-2)."
        )


def _decode_range(container, stream, start_s: float, limit: int, fps: float, src_fps: float, sink: _FrameSink,
                  name: str = "", interrupt: Interrupt = None) -> None:  # fmt: skip
    """Feed ``sink`` the frames of ``[start_s, ...)`` (resampled to ``fps`` when non-zero)."""
    offset = _stream_start(stream)
    if start_s > 0:
        container.seek(int((start_s + offset) / stream.time_base), stream=stream, backward=True, any_frame=False)
    half = 0.5 / src_fps
    eps = 0.01 / src_fps  # timestamps are rounded to the stream's time base
    targets = (start_s + k / fps for k in range(limit)) if fps else None
    target = next(targets) if targets is not None else None
    prev = prev_t = None
    index = 0
    for frame in container.decode(stream):
        if interrupt is not None:
            interrupt()
        _check_frame_size(name, frame.width, frame.height)  # the header may understate it
        t = (frame.time - offset) if frame.time is not None else index / src_fps
        index += 1
        if targets is None:  # the file's own frames
            if t >= start_s - half:
                sink.add(frame.to_ndarray(format="rgb24"))
                if sink.count >= limit:
                    return
            continue
        while target is not None and t > target + eps:  # `prev` is on screen at `target`
            sink.add((prev if prev is not None else frame).to_ndarray(format="rgb24"))
            target = next(targets, None)
        if target is None:
            return
        prev, prev_t = frame, t  # converted only if used
    # after the last frame: it stays on screen for one source frame
    while target is not None and prev is not None and target < prev_t + 1.0 / src_fps - eps:
        sink.add(prev.to_ndarray(format="rgb24"))
        target = next(targets, None)


# ------------------------------------------------------------------------------ sound
def read_audio(path: str | os.PathLike, start_s: float = 0.0, duration_s: float | None = None, *,
               max_values: int = MAX_AUDIO_VALUES, interrupt: Interrupt = None) -> tuple[torch.Tensor, int] | None:  # fmt: skip
    """The sound of ``[start_s, start_s + duration_s)`` (to the end when ``None``) of the first
    audio stream: ``(waveform (C, N) float32 in [-1, 1], sample_rate)`` at the file's own rate
    and channels, or ``None`` when the file has no audio stream.  Decoding stops at the end of
    the range; more than ``max_values`` decoded values (samples x channels) is an error."""
    name = os.fspath(path)
    container = _open(name)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            raise VideoFileError(f"{name}: the audio stream's codec is unknown or its header is damaged; re-export "
                                 "the file as .mp4 (H.264 + AAC)")
        rate = int(stream.codec_context.sample_rate or stream.rate or 0)
        channels = max(1, int(stream.codec_context.channels or 0))
        if rate <= 0:
            raise VideoFileError(f"{name}: the audio stream has a sample rate of {rate} Hz; the file is corrupt")
        too_long = (f"LTX-2 Load Video reads at most {max_values // channels / rate:.0f} s of {channels}-channel "
                    f"{rate} Hz sound at once; load fewer frames, or a higher fps")
        if duration_s is not None and duration_s * rate * channels > max_values:
            raise VideoFileError(f"{name}: the clip's sound would last {duration_s:.1f} s. {too_long}")
        offset = _stream_start(stream)
        if start_s > AUDIO_SEEK_MARGIN:  # land early: the codec needs the frames before start to decode it exactly
            target = start_s - AUDIO_SEEK_MARGIN + offset
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        end = None if duration_s is None else start_s + duration_s
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        parts: list[np.ndarray] = []
        held = 0
        first = None
        try:
            for frame in container.decode(stream):
                if interrupt is not None:
                    interrupt()
                t = (frame.time - offset) if frame.time is not None else None
                if t is not None:
                    if t + frame.samples / rate < start_s:
                        continue
                    if end is not None and t >= end:
                        break
                    if first is None:
                        first = t
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray())
                    held += parts[-1].size
                if held > max_values + rate * channels:  # the margin: frames before start_s
                    raise VideoFileError(f"{name}: the sound decodes to more than {max_values} values. {too_long}")
            for out in resampler.resample(None):
                parts.append(out.to_ndarray())
        except av.error.FFmpegError as err:
            if not parts:
                raise VideoFileError(f"{name}: decoding the audio failed ({type(err).__name__}: {err})") from None
    finally:
        container.close()
    if not parts:
        return torch.zeros(len(stream.layout.channels) or 1, 0), rate
    audio = np.concatenate(parts, axis=1).astype(np.float32, copy=False)
    skip = round((start_s - (first if first is not None else start_s)) * rate)
    if skip > 0:
        audio = audio[:, skip:]
    if duration_s is not None:
        audio = audio[:, : round(duration_s * rate)]
    return torch.from_numpy(np.ascontiguousarray(audio)), rate


__all__ = ["VideoClip", "VideoFileError", "VideoInfo", "probe_video", "read_audio", "read_frames", "resize_cover"]
