"""LTX-2.5's duration head inside ComfyUI: a prompt's CONDITIONING -> the clip length it implies.

The head (``model_patches/ltx-2.5-duration-head-bf16.safetensors``, about 2 M parameters) reads the text
connectors' outputs, which is exactly what an LTX-2.5 CONDITIONING holds: the video context
``(B, L, 4096)`` and ``audio_context`` ``(B, L, 2048)``.  It is small, so it runs on the CPU in
float32 (as ComfyUI core and diffusers run it) and is kept per file between runs.
"""

from __future__ import annotations

import os
import threading

import torch

from ..ltx2.duration_head import MAX_SECONDS, MIN_SECONDS, frames_for_seconds
from ..model_loaders.duration_head_loading import load_duration_head

_heads: dict[tuple[str, int, int], torch.nn.Module] = {}
_lock = threading.Lock()


def duration_head(path: str) -> torch.nn.Module:
    """The head of ``path`` (loaded once per file version; float32 on the CPU)."""
    st = os.stat(path)
    key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    with _lock:
        if key not in _heads:
            _heads.clear()  # one head at a time: there is one released file
            _heads[key] = load_duration_head(path, dtype=torch.float32, device="cpu")
        return _heads[key]


def conditioning_tokens(conditioning) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(video context ``(B, L, C_v)``, audio context ``(B, L, C_a)`` or None) of the first CONDITIONING entry."""
    if not isinstance(conditioning, (list, tuple)) or not conditioning or not isinstance(conditioning[0], (list, tuple)):
        raise ValueError("expected a CONDITIONING from LTX-2 Text Encode (a list of [tensor, dict] entries)")
    video, extra = conditioning[0][0], conditioning[0][1] if len(conditioning[0]) > 1 else {}
    if not isinstance(video, torch.Tensor) or video.ndim != 3:
        raise ValueError(f"the conditioning's text features should be (batch, tokens, width), found "
                         f"{getattr(video, 'shape', type(video).__name__)}")  # fmt: skip
    audio = extra.get("audio_context") if isinstance(extra, dict) else None
    return video, audio


def predict(path: str, conditioning, frame_rate: float, min_seconds: float = MIN_SECONDS,
            max_seconds: float = MAX_SECONDS) -> tuple[int, float]:  # fmt: skip
    """(frames on the 8k + 1 grid within the bounds, predicted seconds) for one prompt's conditioning."""
    video, audio = conditioning_tokens(conditioning)
    if video.shape[0] != 1:
        raise ValueError(f"the conditioning holds {video.shape[0]} prompts; the duration head predicts one length per "
                         "prompt: encode one prompt")  # fmt: skip
    head = duration_head(path)
    if video.shape[-1] != head.video_width or (audio is not None and audio.shape[-1] != head.audio_width):
        found = f"{video.shape[-1]}" + (f" / {audio.shape[-1]}" if audio is not None else "")
        raise ValueError(
            f"the conditioning's text features are {found} wide, the duration head reads LTX-2.5 connector outputs "
            f"({head.video_width} / {head.audio_width}): encode the prompt with the LTX-2.5 text encoder (Gemma 4 "
            "file + the 2.5 transformer file)"
        )
    with torch.no_grad():
        seconds = float(head(video.float().cpu(), None if audio is None else audio.float().cpu())[0])
    return frames_for_seconds(seconds, frame_rate, min_seconds, max_seconds), seconds
