"""Opening a user's media file with PyAV so that it reads that file and nothing else.

FFmpeg picks the demuxer from the file's *content*, not its name, and some demuxers read other
files or the network on the file's behalf: an uploaded ``clip.wav`` that starts with
``ffconcat version 1.0`` is played as a concat list of other files, playlists (HLS, DASH) and
session descriptions (SDP, RTP) open URLs.  ``open_media`` therefore allows only the plain file
protocol and a list of ordinary audio / video container demuxers; anything else is refused
before a byte of it is interpreted.
"""

from __future__ import annotations

import os

import av

# FFmpeg demuxer names (a demuxer matches when one of its comma-separated names is listed):
# audio files, and the video containers whose sound LTX-2 Load Audio / video loaders read.
DEMUXERS = (
    "wav", "w64", "flac", "mp3", "ogg", "aac", "ac3", "eac3", "dts", "aiff", "caf", "asf", "wv", "ape", "tta",
    "amr", "au", "mov", "matroska", "avi", "mpeg", "mpegts", "flv",
)  # fmt: skip
OPEN_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": ",".join(DEMUXERS)}


def open_media(path: str | os.PathLike):
    """``av.open(path)`` for reading, limited to local files in the ``DEMUXERS`` formats.

    Raises PyAV's errors (``av.error.FFmpegError`` subclasses, ``OSError``) like ``av.open``;
    a file in another format raises ``av.error.ArgumentError`` / ``InvalidDataError``.
    """
    return av.open(os.fspath(path), mode="r", container_options=dict(OPEN_OPTIONS))
