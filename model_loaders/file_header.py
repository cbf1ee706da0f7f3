"""The header of any model file OpenLTX reads, ``.safetensors`` or ``.gguf``, in one shape.

Every loader starts from the same facts about a file: its tensor names, dtypes and shapes, its
string metadata and the model config it carries (the safetensors ``__metadata__["config"]``,
a GGUF ``config`` KV or a ``<stem>.json`` beside a GGUF).  ``read_file_header`` gives them for
either format (nothing but the header is read); ``checkpoint.read_checkpoint`` (the LTX
transformer files), ``text_files`` (the text projection and connectors) and the VAE / audio
loaders all take them from here.  ``float_dtype`` is the one rule for "the dtype this file's
weights are in" that the loaders share.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import torch

from .quant import gguf_format
from .safetensors_file import TORCH_DTYPES, parse_config, read_header

FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")


@dataclass
class FileHeader:
    """What a file's header says; no tensor data was read.

    ``dtypes`` / ``shapes`` describe every tensor (GGUF: ggml type names such as ``"Q8_0"`` and
    torch-order shapes, ``comfy.gguf.orig_shape`` applied); ``config`` is the parsed model
    config or ``None``; ``config_source`` says where it was found; ``arch`` is the GGUF
    ``general.architecture`` (``None`` for safetensors).
    """

    path: str
    format: str  # "safetensors" | "gguf"
    metadata: dict[str, str]
    config: dict | None
    config_source: str | None
    dtypes: dict[str, str]
    shapes: dict[str, tuple[int, ...]]
    file_size: int = 0
    mtime_ns: int = 0
    arch: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def tensors(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Tensor name -> ``(dtype name, shape)``."""
        return {k: (self.dtypes[k], self.shapes[k]) for k in self.shapes}


def read_file_header(path: str | os.PathLike) -> FileHeader:
    """The ``FileHeader`` of a ``.safetensors`` or ``.gguf`` file (told apart by its first bytes).

    Raises ``CheckpointError`` (naming the file, what was expected and found) for a file of
    neither format, a truncated or corrupt header, or a config that is not a JSON object.
    """
    p = os.fspath(path)
    if gguf_format.is_gguf(p):
        g = gguf_format.read_gguf_header(p)
        dtypes = {k: gguf_format.gd.NAMES[q] for k, (q, _) in g.tensors.items()}
        shapes = {k: tuple(s) for k, (_, s) in g.tensors.items()}
        return FileHeader(p, "gguf", dict(g.metadata), g.config, g.config_source, dtypes, shapes, g.file_size,
                          os.stat(p).st_mtime_ns, g.arch)  # fmt: skip
    header = read_header(p)
    config = parse_config(header)
    dtypes = {k: e.dtype for k, e in header.tensors.items()}
    shapes = {k: tuple(e.shape) for k, e in header.tensors.items()}
    source = "__metadata__['config']" if config is not None else None
    return FileHeader(p, "safetensors", dict(header.metadata), config, source, dtypes, shapes, header.file_size,
                      os.stat(p).st_mtime_ns)  # fmt: skip


def float_dtype(dtypes: Mapping[str, str], shapes: Mapping[str, tuple], keys: Iterable[str]) -> torch.dtype:
    """The floating dtype holding most of ``keys``' elements (bfloat16 when none is floating:
    fp8 / NVFP4 / GGUF-quantized weights are dequantized to it)."""
    count: Counter = Counter()
    for k in keys:
        count[dtypes[k]] += math.prod(shapes[k])
    for name, _ in count.most_common():
        if name in FLOAT_DTYPES:
            return TORCH_DTYPES[name]
    return torch.bfloat16


__all__ = ["FLOAT_DTYPES", "FileHeader", "float_dtype", "read_file_header"]
