"""Load the audio of any audio or video file through PyAV: float ``(C, N)`` + sample rate.

Every failure is an ``AudioFileError`` (a ``ValueError``) naming the file, what was expected
and what was found: a missing file, an empty file, bytes no demuxer recognises, a container
without an audio stream, an audio stream that decodes to nothing.
"""

from __future__ import annotations

import os

import av
import numpy as np
import torch

# Extensions offered by the load-audio node (PyAV reads many more; these are the usual ones).
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


class AudioFileError(ValueError):
    """An audio file that cannot be used; the message names the file and the fix."""


def _streams_found(container) -> str:
    kinds = [f"{s.type} ({s.codec_context.name if s.codec_context else '?'})" for s in container.streams]
    return ", ".join(kinds) if kinds else "no streams at all"


def load_audio(path: str | os.PathLike, *, stream_index: int = 0) -> tuple[torch.Tensor, int]:
    """Decode audio stream ``stream_index`` (0 = the first) of ``path``.

    Returns ``(waveform, sample_rate)`` with ``waveform`` float32 ``(C, N)`` in [-1, 1] at the
    file's own rate and channel count (no resampling: callers resample to what they need).
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise AudioFileError(f"{name}: no such audio file")
    if os.path.getsize(name) == 0:
        raise AudioFileError(f"{name}: the file is empty (0 bytes); expected an audio or video file with sound")
    try:
        container = av.open(name, mode="r")
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError) as err:
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
        rate = stream.codec_context.sample_rate or stream.rate
        # Planar float32 at the stream's own layout and rate, whatever the codec's sample format.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        parts: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray())
            for out in resampler.resample(None):
                parts.append(out.to_ndarray())
        except av.error.FFmpegError as err:
            if not parts:
                raise AudioFileError(
                    f"{name}: decoding the audio failed ({type(err).__name__}: {err}); the file is corrupt."
                ) from None
            # A damaged tail: keep what decoded (players do the same).
    finally:
        container.close()
    if not parts or sum(p.shape[1] for p in parts) == 0:
        raise AudioFileError(f"{name}: the audio stream holds no samples; expected audio of non-zero length")
    waveform = torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32, copy=False))
    return waveform, int(rate)
