"""A streaming H.264 + AAC mp4 writer (PyAV) that never overwrites and never leaves a torn file.

Usage::

    with Mp4Writer(path, width, height, fps=Fraction(24000, 1001), audio_sample_rate=24000) as w:
        w.write_audio(waveform)          # (C, N) float in [-1, 1]; any time, any number of calls
        for chunk in chunks:             # (f, H, W, 3) uint8, or float in [0, 1]
            w.write_frames(chunk)
    w.path                               # the final file name (see below)

* Video: libx264, yuv420p (odd sizes are padded to even by repeating the last row/column),
  time base 1/fps so every frame lasts exactly one frame period (fps may be a ``Fraction``,
  e.g. 24000/1001 for 23.976).
* Audio: AAC, mono or stereo.  Audio is buffered and encoded only up to the video's current
  end, so the two streams come out interleaved however the calls are ordered; at ``close()``
  the audio is trimmed or zero-padded to exactly the video's duration (``frames / fps``).
* Files: everything is written to a hidden temp file next to the target and moved to its
  final name only when complete.  The move never replaces an existing file: when the name is
  taken (e.g. another run finished first), the next free ComfyUI-style name
  ``<stem>_<counter:05>_.mp4`` is used and ``path`` reports it; the name is taken atomically
  (``model_loaders.safe_paths.publish``).  An exception inside the ``with`` block (or
  ``abort()``) deletes the temp file; so does one raised by ``interrupt()``, which the writer
  calls before every frame (ComfyUI's Cancel).
"""

from __future__ import annotations

import os
import re
import uuid
from fractions import Fraction
from typing import Callable

import av
import numpy as np
import torch

try:  # see model_loaders/__init__.py for the two import styles
    from ..model_loaders import safe_paths
except ImportError:
    from model_loaders import safe_paths

AUDIO_CODEC = "aac"
VIDEO_CODEC = "libx264"
_COUNTER = re.compile(r"^(?P<stem>.*)_(?P<n>\d{5})_$")


def fps_fraction(fps: float | Fraction) -> Fraction:
    """An exact frame rate: NTSC rates given as decimals (23.976, 29.97, 59.94) become
    ``n * 1000 / 1001``; anything else is the nearest fraction with denominator <= 1001."""
    if isinstance(fps, Fraction):
        return fps
    fps = float(fps)
    if not fps > 0:
        raise ValueError(f"fps {fps} must be positive")
    ntsc = round(fps * 1.001)
    if ntsc % 6 == 0 or ntsc % 5 == 0:  # 24, 30, 48, 60, 120 ... as 1000/1001 rates
        candidate = Fraction(ntsc * 1000, 1001)
        if abs(float(candidate) - fps) < 5e-3 and abs(fps - ntsc) > 5e-3:
            return candidate
    return Fraction(fps).limit_denominator(1001)


def next_free_path(directory: str | os.PathLike, stem: str, ext: str = ".mp4", start: int = 1) -> str:
    """``<dir>/<stem>_<counter:05>_<ext>`` with the smallest counter >= ``start`` not in use."""
    n = max(1, int(start))
    while True:
        path = os.path.join(os.fspath(directory), f"{stem}_{n:05}_{ext}")
        if not os.path.exists(path):
            return path
        n += 1


def _publish(temp: str, path: str) -> str:
    """Move ``temp`` to ``path`` without replacing an existing file; returns the name used.

    The name is taken atomically (a hard link, or an ``O_EXCL`` reservation where the file
    system has none): when it is taken, the next free ComfyUI-style counter name is used, so
    two writers finishing together never overwrite each other.
    """
    directory, name = os.path.split(path)
    root, ext = os.path.splitext(name)
    m = _COUNTER.match(root)
    if m is not None:
        return safe_paths.publish(temp, directory, m.group("stem"), f"_{ext}", int(m.group("n")))
    try:
        os.link(temp, path)  # the exact name asked for, if it is free
    except FileExistsError:
        return safe_paths.publish(temp, directory, root, f"_{ext}", 1)
    except OSError:  # no hard links on this file system
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            return safe_paths.publish(temp, directory, root, f"_{ext}", 1)
        os.replace(temp, path)
        return path
    os.unlink(temp)
    return path


def _to_uint8_frames(frames) -> np.ndarray:
    """(f, H, W, 3) uint8 numpy from uint8 or float-in-[0, 1] tensors / arrays."""
    if isinstance(frames, torch.Tensor):
        t = frames.detach()
        if t.dtype != torch.uint8:
            t = (t.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
        arr = t.cpu().numpy()
    else:
        arr = np.asarray(frames)
        if arr.dtype != np.uint8:
            arr = np.rint(np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"Mp4Writer.write_frames: expected frames (f, H, W, 3), got shape {tuple(arr.shape)}")
    return arr


class Mp4Writer:
    """See the module docstring.  ``path`` is the wanted name; after ``close()`` the real one."""

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: float | Fraction,
        *,
        audio_sample_rate: int | None = None,
        audio_channels: int = 2,
        crf: int = 19,
        preset: str = "medium",
        metadata: dict[str, str] | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"Mp4Writer: frame size {width}x{height} must be positive")
        self.fps = fps_fraction(fps)
        if self.fps <= 0:
            raise ValueError(f"Mp4Writer: fps {fps} must be positive")
        if audio_channels not in (1, 2):
            raise ValueError(f"Mp4Writer: audio_channels must be 1 or 2, got {audio_channels}")
        self.path = os.fspath(path)
        self.interrupt = interrupt  # called before each frame: what it raises aborts the file
        self.width, self.height = int(width), int(height)
        directory, name = os.path.split(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        self._temp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.partial")
        self._container = av.open(self._temp, mode="w", format="mp4", options={"movflags": "+faststart"})
        if metadata:
            for k, v in metadata.items():
                self._container.metadata[k] = str(v)
        options = {"crf": str(int(crf)), "preset": preset}
        self._video = self._container.add_stream(VIDEO_CODEC, rate=self.fps, options=options)
        # yuv420p halves chroma in both axes: the coded size must be even.
        self._video.width = self.width + (self.width & 1)
        self._video.height = self.height + (self.height & 1)
        self._video.pix_fmt = "yuv420p"
        self._video.time_base = Fraction(1) / self.fps
        self.frames_written = 0
        self._audio = None
        self._pending = np.zeros((audio_channels, 0), dtype=np.float32)  # buffered, not yet encoded
        self._audio_encoded = 0  # samples sent to the encoder
        if audio_sample_rate is not None:
            self._audio = self._container.add_stream(AUDIO_CODEC, rate=int(audio_sample_rate))
            self._audio.layout = "stereo" if audio_channels == 2 else "mono"
            self._audio.time_base = Fraction(1, int(audio_sample_rate))
            self.audio_sample_rate = int(audio_sample_rate)
            self.audio_channels = audio_channels
        self._closed = False

    # ------------------------------------------------------------------ writing
    def write_frames(self, frames) -> None:
        """Append frames ``(f, H, W, 3)`` (or one ``(H, W, 3)``), uint8 or float in [0, 1]."""
        self._check_open()
        arr = _to_uint8_frames(frames)
        if arr.shape[1:3] != (self.height, self.width):
            raise ValueError(
                f"Mp4Writer.write_frames: frames are {arr.shape[2]}x{arr.shape[1]}, "
                f"the video is {self.width}x{self.height}"
            )
        pad_h, pad_w = self._video.height - self.height, self._video.width - self.width
        if pad_h or pad_w:
            arr = np.pad(arr, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        for img in arr:
            if self.interrupt is not None:
                try:
                    self.interrupt()
                except BaseException:
                    self.abort()  # nothing partial stays behind
                    raise
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = self.frames_written
            self._container.mux(self._video.encode(frame))
            self.frames_written += 1
        self._encode_audio(self._samples_for(self.frames_written))

    def write_audio(self, waveform) -> None:
        """Append audio ``(C, N)`` float in [-1, 1] (``C`` = the writer's channels; mono is
        duplicated to stereo), or interleaved ``(N, C)`` numpy as some decoders give it."""
        self._check_open()
        if self._audio is None:
            raise ValueError("Mp4Writer.write_audio: the writer was opened without audio_sample_rate")
        if isinstance(waveform, torch.Tensor):
            w = waveform.detach().float().cpu().numpy()
        else:
            w = np.asarray(waveform, np.float32)
        if w.ndim == 1:
            w = w[None]
        if w.ndim != 2:
            raise ValueError(f"Mp4Writer.write_audio: expected a waveform (C, N), got shape {tuple(w.shape)}")
        if w.shape[0] > 2 and w.shape[1] <= 2:  # interleaved (N, C)
            w = w.T
        if w.shape[0] == 1 and self.audio_channels == 2:
            w = np.repeat(w, 2, axis=0)
        if w.shape[0] != self.audio_channels:
            raise ValueError(
                f"Mp4Writer.write_audio: the waveform has {w.shape[0]} channels, the writer {self.audio_channels}"
            )
        self._pending = np.concatenate([self._pending, np.clip(w, -1.0, 1.0).astype(np.float32)], axis=1)
        self._encode_audio(self._samples_for(self.frames_written))

    def _samples_for(self, frames: int) -> int:
        """Audio samples that span ``frames`` video frames."""
        return int(round(frames / self.fps * self.audio_sample_rate)) if self._audio is not None else 0

    def _encode_audio(self, until: int, final: bool = False) -> None:
        """Encode buffered audio up to sample ``until`` (whole encoder frames unless ``final``)."""
        if self._audio is None:
            return
        frame_size = self._audio.codec_context.frame_size or 1024
        while True:
            want = until - self._audio_encoded
            n = min(want, self._pending.shape[1])
            if n <= 0 or (n < frame_size and not final):
                return
            n = min(n, frame_size)
            chunk, self._pending = self._pending[:, :n], self._pending[:, n:]
            layout = self._audio.layout.name
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=layout)
            frame.sample_rate = self.audio_sample_rate
            frame.pts = self._audio_encoded
            self._container.mux(self._audio.encode(frame))
            self._audio_encoded += n

    # ------------------------------------------------------------------ finishing
    def close(self) -> str:
        """Flush the encoders, finish the file and move it to its final name (returned)."""
        if self._closed:
            return self.path
        try:
            if self.frames_written == 0:
                raise ValueError("Mp4Writer.close: no frames were written")
            self._container.mux(self._video.encode())
            if self._audio is not None:
                total = self._samples_for(self.frames_written)
                missing = total - self._audio_encoded - self._pending.shape[1]
                if missing > 0:  # audio shorter than the video: pad with silence
                    silence = np.zeros((self.audio_channels, missing), np.float32)
                    self._pending = np.concatenate([self._pending, silence], axis=1)
                self._encode_audio(total, final=True)
                self._pending = self._pending[:, :0]  # anything past the video's end is dropped
                self._container.mux(self._audio.encode())
            self._container.close()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self.path = _publish(self._temp, self.path)
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temp file; the target name is never touched."""
        if self._closed:
            return
        self._closed = True
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass
        if os.path.exists(self._temp):
            os.unlink(self._temp)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("Mp4Writer: the writer is closed")

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
