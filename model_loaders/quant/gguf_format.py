"""LTX-2 transformers in GGUF files: read (``gguf.GGUFReader``) and write (``gguf.GGUFWriter``).

Our files (``tools/convert.py``) hold the transformer only, tensor names = the bare
checkpoint keys (``transformer_blocks.0.attn1.to_q.weight``), ``general.architecture =
"ltx2"`` and the safetensors header config as the KV string ``openltx.config`` (plus
``openltx.model_version`` when the source had one).  Files made by other tools (city96's
convention: architecture "ltxv"/"ltxav", optional ``model.diffusion_model.`` prefixes) are
read too; their config comes from a companion ``<file stem>.json`` (the header config JSON).

Tensors are returned as raw bytes; dequantization happens per layer at run time
(``gguf_dequant``), never for the whole model at once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..safetensors_file import CheckpointError
from . import gguf_dequant as gd

ARCH = "ltx2"
ACCEPTED_ARCHS = ("ltx2", "ltxv", "ltxav")
CONFIG_KEY = "openltx.config"
VERSION_KEY = "openltx.model_version"
_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


@dataclass
class GGUFTensor:
    """One tensor of a GGUF file: raw bytes ``(rows, row_bytes)`` + its type and torch shape."""

    raw: torch.Tensor
    qtype: int
    shape: tuple[int, ...]

    @property
    def quantized(self) -> bool:
        return self.qtype not in (gd.F32, gd.F16, gd.BF16)

    def dequantize(self, device=None) -> torch.Tensor:
        raw = self.raw if device is None else self.raw.to(device)
        return gd.dequantize(raw, self.qtype, self.shape)


@dataclass
class GGUFModel:
    path: str
    arch: str
    config: dict
    metadata: dict[str, str]
    tensors: dict[str, GGUFTensor]


def _fail(path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


def _field_str(reader, key: str) -> str | None:
    field = reader.get_field(key)
    if field is None:
        return None
    try:
        return str(field.contents())
    except Exception:  # not a string field
        return None


def _companion_config(path: Path) -> dict | None:
    side = path.with_suffix(".json")
    if not side.is_file():
        return None
    data = json.loads(side.read_text())
    if isinstance(data, dict) and "config" in data and isinstance(data["config"], str):
        data = json.loads(data["config"])  # a saved safetensors __metadata__ block
    return data


def read_gguf(path: str | os.PathLike) -> GGUFModel:
    """Read the header, config and raw tensor bytes of an LTX-2 GGUF file.

    Raises ``CheckpointError`` for a file that is not GGUF, of another architecture, with
    unsupported tensor types, or without a config (neither in the file nor beside it).
    """
    import gguf

    p = Path(path)
    try:
        reader = gguf.GGUFReader(os.fspath(p))
    except Exception as err:
        raise _fail(p, f"expected a GGUF file, could not read it ({type(err).__name__}: {err})") from err
    arch = _field_str(reader, "general.architecture") or "?"
    if arch not in ACCEPTED_ARCHS:
        raise _fail(
            p,
            f"expected a GGUF of the LTX-2 transformer (general.architecture one of {', '.join(ACCEPTED_ARCHS)}), "
            f"found architecture {arch!r}. Load this file with the loader for that model family.",
        )
    config_text = _field_str(reader, CONFIG_KEY)
    config = json.loads(config_text) if config_text else _companion_config(p)
    if not isinstance(config, dict) or not isinstance(config.get("transformer"), dict):
        raise _fail(
            p,
            f"expected the LTX-2 model config (a JSON object with a 'transformer' section) in the GGUF KV "
            f"'{CONFIG_KEY}' or in a companion file {p.with_suffix('.json').name}; found neither. Convert the "
            "file with tools/convert.py (it stores the config), or save the original checkpoint's header config "
            f"as {p.with_suffix('.json').name}.",
        )
    metadata = {"config": json.dumps(config)}
    version = _field_str(reader, VERSION_KEY)
    if version:
        metadata["model_version"] = version
    tensors: dict[str, GGUFTensor] = {}
    for t in reader.tensors:
        qtype = int(t.tensor_type)
        if qtype not in gd.BLOCK:
            raise _fail(
                p,
                f"tensor {t.name} has GGUF type {t.tensor_type.name}; supported types: {', '.join(gd.NAMES.values())}. "
                "Pick a file quantized with one of these.",
            )
        name = t.name
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
        shape = tuple(int(s) for s in reversed(t.shape.tolist()))  # GGUF lists ne0 (the row) first
        data = np.ascontiguousarray(t.data).view(np.uint8)
        raw = torch.from_numpy(data.copy()).reshape(*shape[:-1], -1) if len(shape) > 1 else torch.from_numpy(data.copy())
        tensors[name] = GGUFTensor(raw=raw, qtype=qtype, shape=shape)
    return GGUFModel(path=os.fspath(p), arch=arch, config=config, metadata=metadata, tensors=tensors)


def write_gguf(
    path: str | os.PathLike,
    tensors: dict[str, tuple[np.ndarray, int]],
    config: dict,
    model_version: str | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    """Write ``{name: (array, qtype)}``: float32/float16 arrays for F32/F16, raw uint8 bytes else."""
    import gguf

    writer = gguf.GGUFWriter(os.fspath(path), ARCH)
    writer.add_string(CONFIG_KEY, json.dumps(config))
    if model_version:
        writer.add_string(VERSION_KEY, model_version)
    for k, v in (extra or {}).items():
        writer.add_string(f"openltx.{k}", v)
    for name, (array, qtype) in tensors.items():
        if qtype in (gd.F32, gd.F16):
            writer.add_tensor(name, array)
        else:
            writer.add_tensor(name, array, raw_dtype=gguf.GGMLQuantizationType(qtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
