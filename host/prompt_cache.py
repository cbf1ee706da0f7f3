"""Encoded prompts on disk, so re-running a workflow with the same prompt never loads Gemma.

One ``.safetensors`` file per (encoder, projector, prompt, settings) under a cache folder
(the node uses ``models/openltx_prompt_cache/``); tensors ``video_context`` / ``audio_context``
and the key's description in ``__metadata__``.

The key is the SHA-256 of a JSON document holding:

* the Gemma weights' identity: for every weight file its absolute path, size in bytes and
  modification time (ns) -- replacing or editing a file changes size or mtime, which is a miss;
  hashing 24 GB of content per run would cost more than encoding.  The tokenizer location too,
  and every Gemma LoRA applied (its file's path, size, mtime) with its strength;
* the text parts' identity: the files the projection and connectors came from (path, size,
  mtime) and the config resolved from them (shapes + RoPE numerics);
* the prompt text exactly as typed (the tokenizer strips it later; the key does not);
* everything else that changes the numbers: max length, compute dtype, the format version.

Writes go to a temp file in the same folder and ``os.replace`` it into place (atomic on POSIX and
Windows), so a crash never leaves a half file under a real name.  A file that cannot be read
back (truncated, corrupt, written by another version, holding NaN or infinite values) counts as
a miss and is rewritten.

``read_context_file`` reads that format (also written by LTX-2 Save Conditioning) strictly:
the header through ``safetensors_file.read_header`` (bounded, every problem named), exactly the
two float tensors ``(B, L, C)``, all values finite.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import torch

from ..model_loaders.safetensors_file import CheckpointError, load_tensors, read_header

FORMAT = "openltx-prompt-cache-1"
CONTEXT_KEYS = ("video_context", "audio_context")
_log = logging.getLogger(__name__)


def file_identity(path: str | os.PathLike) -> list:
    """``[absolute path, size, mtime_ns]`` of a file, or of every file in a folder (sorted)."""
    p = Path(path).resolve()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    out = []
    for f in files:
        st = f.stat()
        out.append([str(f), st.st_size, st.st_mtime_ns])
    return out


def read_context_file(path: str | os.PathLike, writer: str) -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
    """``(video_context, audio_context, metadata)`` of a file in this format, or ``CheckpointError``.

    ``writer`` names what writes such files, for the message ("LTX-2 Save Conditioning").
    """
    header = read_header(path)  # bounded: header size, entry count, nesting, offsets vs file size
    expected = f"a file written by {writer} (tensors video_context and audio_context, float (B, L, C))"
    found = sorted(header.tensors)
    entries = [header.tensors.get(k) for k in CONTEXT_KEYS]
    floats = ("F32", "F16", "BF16")
    if found != sorted(CONTEXT_KEYS) or any(e.dtype not in floats or len(e.shape) != 3 for e in entries):
        shown = ", ".join(f"{k} {e.dtype} {list(e.shape)}" for k, e in list(header.tensors.items())[:6])
        raise CheckpointError(f"{os.fspath(path)}: expected {expected}, found {shown or 'no tensors'}.")
    video, audio = (load_tensors(path, CONTEXT_KEYS)[k] for k in CONTEXT_KEYS)
    if video.shape[0] != audio.shape[0]:
        raise CheckpointError(f"{os.fspath(path)}: expected {expected}, found batches {video.shape[0]} and "
                              f"{audio.shape[0]}.")  # fmt: skip
    bad = [k for k, t in zip(CONTEXT_KEYS, (video, audio)) if not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"{os.fspath(path)}: {' and '.join(bad)} hold NaN or infinite values; the file is "
                              f"corrupt: write it again with {writer}.")  # fmt: skip
    return video, audio, dict(header.metadata)


def cache_key(encoder_identity, projector_identity, prompt: str, **settings) -> str:
    doc = {"format": FORMAT, "encoder": encoder_identity, "projector": projector_identity, "prompt": prompt,
           "settings": {k: str(v) for k, v in sorted(settings.items())}}  # fmt: skip
    return hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class PromptCache:
    """``get(key) -> (video, audio) | None`` and ``put(key, video, audio)`` in ``directory``."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.safetensors"

    def get(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self.path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            video, audio, meta = read_context_file(path, "the prompt cache")
            if meta.get("format") != FORMAT or meta.get("key") != key:
                raise ValueError(f"written for another key / format ({meta.get('format')})")
        except (ValueError, OSError) as err:  # corrupt / truncated / foreign / non-finite: a miss, rewritten by put()
            _log.warning("OpenLTX prompt cache: ignoring unreadable %s (%s)", path, err)
            self.misses += 1
            return None
        self.hits += 1
        return video, audio

    def put(self, key: str, video: torch.Tensor, audio: torch.Tensor, description: str = "") -> Path | None:
        """Store atomically; a failure to write (read-only disk, full disk) is logged, not raised."""
        from safetensors.torch import save_file

        path = self.path(key)
        if not (torch.isfinite(video).all() and torch.isfinite(audio).all()):
            _log.warning("OpenLTX prompt cache: not storing %s: the encoding holds NaN or infinite values", path.name)
            return None
        tmp = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}-", suffix=".tmp", dir=self.directory)
            os.close(fd)
            tensors = {"video_context": video.detach().to("cpu").contiguous(),
                       "audio_context": audio.detach().to("cpu").contiguous()}  # fmt: skip
            save_file(tensors, tmp, metadata={"format": FORMAT, "key": key, "description": description[:2000]})
            os.replace(tmp, path)
            return path
        except OSError as err:
            _log.warning("OpenLTX prompt cache: could not write %s (%s)", path, err)
            if tmp and os.path.exists(tmp):
                os.unlink(tmp)
            return None
