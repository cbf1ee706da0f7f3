"""Load the audio of any audio or video file through PyAV: float ``(C, N)`` + sample rate.

Every failure is an ``AudioFileError`` (a ``ValueError``) naming the file, what was expected
and what was found: a missing file, an empty file, bytes no demuxer recognises, a container
without an audio stream, an audio stream that decodes to nothing, a file longer than allowed.

Memory is bounded whatever the file claims: only the span ``[start_s, start_s + duration_s)``
is decoded, and at most ``max_values`` decoded values (samples x channels; 10 minutes of 48 kHz
stereo by default) are ever held -- a 5 MB FLAC can hold hours of silence.  The container's own
duration is checked before decoding when it has one, the decoded length while decoding
otherwise.  Files open through ``containers.open_media`` (local file, ordinary demuxers only).
"""

from __future__ import annotations

import math
import os
from typing import Callable

import av
import numpy as np
import torch

from .containers import open_media

# Extensions offered by the load-audio node (PyAV reads many more; these are the usual ones).
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
# Decoded values (samples x channels) held at most: 10 minutes of 48 kHz stereo, 230 MB of float32.
MAX_AUDIO_VALUES = 600 * 48000 * 2


class AudioFileError(ValueError):
    """An audio file that cannot be used; the message names the file and the fix."""


def _streams_found(container) -> str:
    kinds = [f"{s.type} ({s.codec_context.name if s.codec_context else '?'})" for s in container.streams]
    return ", ".join(kinds) if kinds else "no streams at all"


def _clock(seconds: float) -> str:
    """``1:02:03.5`` / ``2:03.5`` / ``3.50 s``."""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{sec:04.1f}" if hours else f"{minutes}:{sec:04.1f}"


def _known_duration(container, stream) -> float | None:
    """The audio stream's length in seconds as the container states it, or ``None``."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def load_audio(
    path: str | os.PathLike,
    *,
    stream_index: int = 0,
    start_s: float = 0.0,
    duration_s: float | None = None,
    max_values: int = MAX_AUDIO_VALUES,
    interrupt: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, int]:
    """Decode audio stream ``stream_index`` (0 = the first) of ``path``.

    Returns ``(waveform, sample_rate)`` with ``waveform`` float32 ``(C, N)`` in [-1, 1] at the
    file's own rate and channel count (no resampling: callers resample to what they need).

    Args:
        start_s: where to start, in seconds (0 = the beginning).
        duration_s: how much to decode (``None``: to the end of the file).
        max_values: the most samples x channels decoded; a longer span is an ``AudioFileError``
            that gives the file's length and says to set a shorter duration.
        interrupt: called between decoded packets; whatever it raises (ComfyUI's interrupt)
            propagates unchanged.
    """
    name = os.fspath(path)
    if not (math.isfinite(start_s) and start_s >= 0):
        raise AudioFileError(f"{name}: start_s {start_s!r} must be a finite number of seconds >= 0")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise AudioFileError(f"{name}: duration_s {duration_s!r} must be a finite number of seconds > 0")
    if not os.path.isfile(name):
        raise AudioFileError(f"{name}: no such audio file")
    if os.path.getsize(name) == 0:
        raise AudioFileError(f"{name}: the file is empty (0 bytes); expected an audio or video file with sound")
    try:
        container = open_media(name)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise AudioFileError(
            f"{name}: not a readable audio or video file ({type(err).__name__}: {err}). "
            "The file is corrupt or in an unknown format; re-export it as .wav, .flac, .mp3 or .m4a."
        ) from None
    try:
        audio_streams = list(container.streams.audio)
        if not audio_streams:
            raise AudioFileError(
                f"{name}: the file has no audio stream (found: {_streams_found(container)}); "
                "expected an audio file or a video with sound."
            )
        if not 0 <= stream_index < len(audio_streams):
            raise AudioFileError(f"{name}: audio stream {stream_index} requested, the file has {len(audio_streams)}")
        stream = audio_streams[stream_index]
        codec = stream.codec_context
        if codec is None:
            raise AudioFileError(f"{name}: the audio stream's codec is unknown or its header is damaged; the file is "
                                 "corrupt or in a format FFmpeg cannot decode. Re-export it as .wav or .flac.")
        rate = int(codec.sample_rate or stream.rate or 0)
        channels = int(codec.channels or 0)
        if rate <= 0 or channels <= 0:
            raise AudioFileError(f"{name}: the audio stream has {rate} Hz and {channels} channels; the file is corrupt")
        limit = max(1, max_values // channels)  # samples per channel we may hold
        too_long = (
            f"LTX-2 reads at most {_clock(limit / rate)} of {channels}-channel {rate} Hz audio at once: set a "
            "shorter duration_s (and start_s for a later part), or cut the file."
        )
        if duration_s is not None and duration_s * rate > limit:
            raise AudioFileError(f"{name}: duration_s {duration_s:g} asks for {_clock(duration_s)}. {too_long}")
        known = _known_duration(container, stream)
        if duration_s is None and known is not None and (known - start_s) * rate > limit + rate:  # 1 s of slack
            raise AudioFileError(f"{name}: the audio is {_clock(known)} long"
                                 f"{f' ({_clock(known - start_s)} after start_s)' if start_s else ''}. {too_long}")
        keep = limit + 1 if duration_s is None else max(1, round(duration_s * rate))
        skip = None  # samples to drop before start_s: known from the first frame after a seek
        if start_s > 0:
            try:
                container.seek(int(start_s / stream.time_base), stream=stream, backward=True)
            except (av.error.FFmpegError, OSError, TypeError, ZeroDivisionError):
                # Not seekable (no index, a damaged file): read from the beginning and drop.
                container.close()
                container = open_media(name)
                stream = list(container.streams.audio)[stream_index]
                skip = round(start_s * rate)
        parts, held = _decode(container, stream, name, rate, start_s, skip, keep, interrupt)
    finally:
        container.close()
    if held > limit:  # only when the container understated (or did not state) its length
        del parts
        raise AudioFileError(f"{name}: the audio is longer than its header says (more than {_clock(limit / rate)} "
                             f"decoded). {too_long}")  # fmt: skip
    waveform = None if not parts else np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    if waveform is None or waveform.shape[1] == 0:
        if start_s > 0:
            raise AudioFileError(f"{name}: start_s {start_s:g} is at or past the end of the audio; lower start_s")
        raise AudioFileError(f"{name}: the audio stream holds no samples; expected audio of non-zero length")
    return torch.from_numpy(waveform), rate


def _decode(container, stream, name: str, rate: int, start_s: float, skip: int | None, keep: int,
            interrupt) -> tuple[list[np.ndarray], int]:  # fmt: skip
    """Up to ``keep`` samples per channel from ``start_s`` on: float32 ``(C, n)`` parts and their
    total length.  ``skip``: samples to drop first (``None``: from the first frame's time)."""
    # Planar float32 at the stream's own layout and rate, whatever the codec's sample format.
    resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
    held = 0
    parts: list[np.ndarray] = []

    def take(arr: np.ndarray, first_time) -> bool:
        """Keep the wanted part of ``arr`` (C, n); True when enough is held."""
        nonlocal skip, held
        if skip is None:
            skip = max(0, round((start_s - first_time) * rate)) if first_time is not None else 0
        if skip:
            drop = min(skip, arr.shape[1])
            arr, skip = arr[:, drop:], skip - drop
        if arr.shape[1]:
            arr = arr[:, : keep - held]
            parts.append(np.ascontiguousarray(arr, dtype=np.float32))
            held += arr.shape[1]
        return held >= keep

    try:
        done = False
        for frame in container.decode(stream):
            if interrupt is not None:
                interrupt()
            t = frame.time
            for res in resampler.resample(frame):
                if take(res.to_ndarray(), t):
                    done = True
                    break
                t = None if t is None else t + res.samples / rate
            if done:
                break
        if not done:
            for res in resampler.resample(None):
                if take(res.to_ndarray(), None):
                    break
    except av.error.FFmpegError as err:
        if not parts:
            raise AudioFileError(
                f"{name}: decoding the audio failed ({type(err).__name__}: {err}); the file is corrupt."
            ) from None
        # A damaged tail: keep what decoded (players do the same).
    return parts, held
