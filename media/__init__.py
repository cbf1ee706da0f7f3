"""Container I/O through PyAV (no torchaudio, no ffmpeg executable).

Modules:
  mp4_writer   ``Mp4Writer``: streaming H.264 + AAC mp4 writer (chunk by chunk, audio kept in
               sync, temp file + atomic no-overwrite rename); ``next_free_path``
  audio_file   ``load_audio``: the audio stream of any audio / video file -> float (C, N) + rate
  image_prep   ``crf_roundtrip``: LTX-2's image-to-video H.264 CRF preprocessing of a still

Nothing here imports ComfyUI: nodes call these with plain tensors and paths.
"""

from .audio_file import AudioFileError, load_audio
from .image_prep import DEFAULT_IMAGE_CRF, crf_roundtrip
from .mp4_writer import Mp4Writer, fps_fraction, next_free_path

__all__ = [
    "DEFAULT_IMAGE_CRF",
    "AudioFileError",
    "Mp4Writer",
    "crf_roundtrip",
    "fps_fraction",
    "load_audio",
    "next_free_path",
]
