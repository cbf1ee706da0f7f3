"""LTX-2 transformers in GGUF files: read (``gguf.GGUFReader``) and write (``gguf.GGUFWriter``).

What the files in the wild hold (community conversions by city96's tool, QuantStack, unsloth,
and ours from ``tools/convert.py``):

* tensor names: the bare checkpoint keys (``transformer_blocks.0.attn1.to_q.weight``);
  ``model.diffusion_model.`` / ``diffusion_model.`` prefixes are understood too (the loader
  routes keys as for safetensors files).  Some files also hold the text connectors.
* ``general.architecture``: ``ltxv`` (city96's tool), ``ltx2`` (ours) or ``ltxav``.
* the model config, when there is one: the safetensors header's ``config`` JSON as a plain
  string KV named ``config`` (ComfyUI-GGUF hands every string KV to ComfyUI as metadata);
  files written by earlier OpenLTX versions use ``openltx.config``.  Many files carry none:
  then the loader takes the shapes from the tensors and the released numeric settings.
  A ``<file stem>.json`` beside the file (the header config JSON) is read when the file has
  no config KV.
* ``comfy.gguf.orig_shape.<name>`` (an int array) gives the real shape of a tensor stored
  reshaped; it overrides the stored shape.
* GGUF lists dimensions innermost first; shapes here are torch order (reversed).

Tensor data is returned as raw bytes; dequantization happens per layer at run time
(``gguf_dequant``), never for the whole model at once.

Every reader goes through ``open_reader``: ``check_layout`` first walks the header itself and
checks each count and length against the bytes the file has (``gguf.GGUFReader`` trusts them:
a 359-byte file whose KV array claims 2^40 elements makes it loop past the end for hours), the
tensors' data against the file size, and caps what no real file needs (``MAX_*``).
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..safetensors_file import CheckpointError
from . import gguf_dequant as gd

ARCH = "ltx2"
ACCEPTED_ARCHS = ("ltx2", "ltxv", "ltxav")
CONFIG_KEY = "config"  # what we write: the community convention, readable by ComfyUI-GGUF
CONFIG_KEYS = ("config", "openltx.config")  # read in this order
VERSION_KEYS = ("model_version", "openltx.model_version")
ORIG_SHAPE_PREFIX = "comfy.gguf.orig_shape."
MAGIC = b"GGUF"

# What no real file needs: more is a corrupt or hostile header.
MAX_TENSORS = 200_000
MAX_KVS = 100_000
MAX_ARRAY_ITEMS = 16_000_000  # a tokenizer vocabulary is ~256k strings
MAX_STRING_BYTES = 64 * 2**20
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_ARRAY_NESTING = 3
MAX_COMPANION_BYTES = 16 * 2**20
# GGUF value types: fixed-size ones by byte size; 8 = string, 9 = array.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY, _UINT32 = 8, 9, 4


@dataclass
class GGUFTensor:
    """One tensor of a GGUF file: raw bytes ``(rows, row_bytes)`` + its type and torch shape.

    ``stored_shape`` is the shape the bytes are laid out in; ``shape`` the tensor's real shape
    (they differ only for tensors with a ``comfy.gguf.orig_shape`` entry).
    """

    raw: torch.Tensor
    qtype: int
    shape: tuple[int, ...]
    stored_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.stored_shape:
            self.stored_shape = self.shape

    @property
    def quantized(self) -> bool:
        return self.qtype not in (gd.F32, gd.F16, gd.BF16)

    @property
    def reshaped(self) -> bool:
        return tuple(self.stored_shape) != tuple(self.shape)

    def dequantize(self, device=None) -> torch.Tensor:
        raw = self.raw if device is None else self.raw.to(device)
        return gd.dequantize(raw, self.qtype, self.stored_shape).reshape(self.shape)


@dataclass
class GGUFHeader:
    """Everything but the tensor data: names, types, shapes, string KVs and the config.

    ``tensors`` maps each tensor name, as stored, to ``(ggml type id, torch shape)``;
    ``metadata`` holds the string-valued KVs (``config`` / ``model_version`` normalised to those
    names when the file uses the ``openltx.`` ones); ``config`` is the parsed config (or
    ``None``) and ``config_source`` where it was found.
    """

    path: str
    arch: str
    metadata: dict[str, str]
    config: dict | None
    config_source: str | None
    tensors: dict[str, tuple[int, tuple[int, ...]]]
    stored_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    file_size: int = 0


@dataclass
class GGUFModel:
    path: str
    arch: str
    config: dict | None
    metadata: dict[str, str]
    tensors: dict[str, GGUFTensor]


def _fail(path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


def is_gguf(path) -> bool:
    """True when ``path`` starts with the GGUF magic (False for unreadable paths)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


class _Walker:
    """Reads a GGUF header sequentially, every length checked against what is left."""

    def __init__(self, path: Path, fh, size: int) -> None:
        self.path, self.fh, self.size = path, fh, size

    @property
    def pos(self) -> int:
        return self.fh.tell()

    def left(self) -> int:
        return self.size - self.fh.tell()

    def fail(self, what: str) -> CheckpointError:
        return _fail(self.path, f"the GGUF header is corrupt: {what} (at byte {self.pos} of {self.size}). The file "
                                "is truncated or damaged: download it again.")  # fmt: skip

    def read(self, n: int, what: str) -> bytes:
        if n > self.left():
            raise self.fail(f"{what} needs {n} bytes, {self.left()} are left")
        return self.fh.read(n)

    def skip(self, n: int, what: str) -> None:
        if n > self.left():
            raise self.fail(f"{what} needs {n} bytes, {self.left()} are left")
        self.fh.seek(n, os.SEEK_CUR)

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.read(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack("<Q", self.read(8, what))[0]

    def count(self, what: str, item_bytes: int, cap: int) -> int:
        """A u64 count of items of at least ``item_bytes`` each, that fit what is left and ``cap``."""
        n = self.u64(what)
        if n > cap or n * item_bytes > self.left():
            most = min(cap, self.left() // max(1, item_bytes))
            raise self.fail(f"{what} is {n}, but {self.left()} bytes are left (at most {most})")
        return n

    def string(self, what: str, keep: bool = False) -> bytes | None:
        n = self.count(f"the length of {what}", 1, MAX_STRING_BYTES)
        if keep:
            return self.read(n, what)
        self.skip(n, what)
        return None

    def value(self, vtype: int, what: str, depth: int = 0) -> int | None:
        """Skip one value of ``vtype``; returns it when it is a u32 (``general.alignment``)."""
        if vtype in _FIXED:
            data = self.read(_FIXED[vtype], what)
            return struct.unpack("<I", data)[0] if vtype == _UINT32 else None
        if vtype == _STRING:
            self.string(what)
            return None
        if vtype == _ARRAY:
            if depth >= MAX_ARRAY_NESTING:
                raise self.fail(f"{what} nests arrays more than {MAX_ARRAY_NESTING} deep")
            item = self.u32(f"the item type of {what}")
            if item in _FIXED:
                n = self.count(f"the length of array {what}", _FIXED[item], MAX_ARRAY_ITEMS)
                self.skip(n * _FIXED[item], what)
            elif item in (_STRING, _ARRAY):
                n = self.count(f"the length of array {what}", 8 if item == _STRING else 12, MAX_ARRAY_ITEMS)
                for i in range(n):
                    self.value(item, f"{what}[{i}]", depth + 1)
            else:
                raise self.fail(f"{what} has items of unknown type {item}")
            return None
        raise self.fail(f"{what} has unknown value type {vtype}")


def check_layout(path: str | os.PathLike) -> None:
    """Walk a GGUF file's header and check it against the file's size, or raise ``CheckpointError``.

    Reads only the header (KV pairs and tensor infos, a few MB at most); every count and length
    must fit the bytes that are left, every tensor's data must lie inside the file, and the
    ``MAX_*`` caps hold.  After it passes, ``gguf.GGUFReader`` cannot run past the end.
    """
    from gguf.constants import GGML_QUANT_SIZES

    p = Path(path)
    size = p.stat().st_size
    with p.open("rb") as fh:
        w = _Walker(p, fh, size)
        if w.read(4, "the magic") != MAGIC:
            raise _fail(p, "expected a GGUF file (magic 'GGUF'), found other bytes.")
        version = w.u32("the version")
        if version not in (2, 3):
            raise _fail(p, f"expected GGUF version 2 or 3 (little-endian), found {version}. Convert the file with a "
                           "current tool (city96's ComfyUI-GGUF, llama.cpp's gguf-py).")  # fmt: skip
        n_tensors = w.count("the tensor count", 24, MAX_TENSORS)
        n_kv = w.count("the KV count", 13, MAX_KVS)
        alignment = 32
        for i in range(n_kv):
            key = w.string(f"the name of KV {i}", keep=True)
            name = key.decode("utf-8", "replace")[:200]
            vtype = w.u32(f"the type of KV {name!r}")
            value = w.value(vtype, f"KV {name!r}")
            if name == "general.alignment" and value is not None:
                alignment = value
        if alignment <= 0 or alignment & (alignment - 1) or alignment > 1 << 20:
            raise w.fail(f"general.alignment is {alignment}, not a power of two")
        spans = []
        for i in range(n_tensors):
            name = (w.string(f"the name of tensor {i}", keep=True) or b"").decode("utf-8", "replace")[:200]
            n_dims = w.u32(f"the dimension count of tensor {name!r}")
            if n_dims > MAX_DIMS:
                raise w.fail(f"tensor {name!r} has {n_dims} dimensions (GGUF allows {MAX_DIMS})")
            dims = [w.u64(f"a dimension of tensor {name!r}") for _ in range(n_dims)]
            qtype = w.u32(f"the type of tensor {name!r}")
            offset = w.u64(f"the data offset of tensor {name!r}")
            if qtype not in GGML_QUANT_SIZES:
                raise w.fail(f"tensor {name!r} has unknown GGML type {qtype}")
            block, type_size = GGML_QUANT_SIZES[qtype]
            if not dims or 0 in dims:
                raise w.fail(f"tensor {name!r} has an empty shape {dims}")
            numel = 1
            for d in dims:
                numel *= d
            if dims and dims[0] % block:
                raise w.fail(f"tensor {name!r} rows of {dims[0]} values do not fill {block}-value blocks")
            spans.append((name, offset, numel // block * type_size))
        data_start = -(-w.pos // alignment) * alignment
        for name, offset, nbytes in spans:
            if offset % alignment or data_start + offset + nbytes > size:
                raise _fail(p, f"tensor {name!r} ({nbytes} bytes at data offset {offset}) lies outside the file "
                               f"({size} bytes): the file is truncated (an interrupted download). Download it "
                               "again.")  # fmt: skip


def open_reader(path: str | os.PathLike):
    """``gguf.GGUFReader`` on a file that passed ``check_layout``; every failure a ``CheckpointError``."""
    import gguf

    check_layout(path)
    try:
        return gguf.GGUFReader(os.fspath(path))
    except Exception as err:
        raise _fail(path, f"expected a GGUF file, could not read it ({type(err).__name__}: {err}). The file is "
                          "truncated or corrupt: download it again.") from err


_open = open_reader


def _field_value(field):
    """A KV's value: str, number, or list of numbers; None for anything else."""
    try:
        return field.contents()
    except Exception:
        return None


def _companion_config(path: Path) -> dict | None:
    side = path.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        if side.stat().st_size > MAX_COMPANION_BYTES:
            raise ValueError(f"it is {side.stat().st_size} bytes, more than a config ever is")
        data = json.loads(side.read_text(encoding="utf-8"), parse_constant=_no_constant)
        if isinstance(data, dict) and isinstance(data.get("config"), str):
            data = json.loads(data["config"], parse_constant=_no_constant)  # a saved safetensors __metadata__ block
    except (OSError, ValueError, RecursionError) as err:
        raise _fail(side, f"expected the LTX-2 model config as JSON beside {path.name}, could not parse it "
                          f"({type(err).__name__}: {str(err)[:200]})") from None  # fmt: skip
    return data if isinstance(data, dict) else None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a model config may hold")


def _real_shape(path, name: str, stored: tuple[int, ...], orig: dict) -> tuple[int, ...]:
    """The tensor's shape: its ``comfy.gguf.orig_shape`` entry when it has one (same element count)."""
    real = orig.get(name)
    if real is None:
        return stored
    if not real or any(d <= 0 for d in real) or math.prod(real) != math.prod(stored):
        raise _fail(path, f"the GGUF KV '{ORIG_SHAPE_PREFIX}{name}' gives the shape {list(real)[:8]}, which does not "
                          f"hold the {math.prod(stored)} values stored ({list(stored)}). The file is corrupt: download "
                          "it again.")  # fmt: skip
    return tuple(real)


def read_gguf_header(path: str | os.PathLike) -> GGUFHeader:
    """Names, types, shapes and string KVs of a GGUF file (no tensor data is copied).

    Raises ``CheckpointError`` for a file that is not GGUF, has tensor types OpenLTX cannot
    dequantize, or a ``config`` KV that is not a JSON object.  The architecture is reported,
    not judged: ``model_loaders.checkpoint`` decides from the tensors whether this is LTX-2.
    """
    p = Path(path)
    reader = _open(p)
    strings: dict[str, str] = {}
    orig: dict[str, tuple[int, ...]] = {}
    for name, f in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        value = _field_value(f)
        if name.startswith(ORIG_SHAPE_PREFIX) and isinstance(value, list):
            orig[name[len(ORIG_SHAPE_PREFIX):]] = tuple(int(v) for v in value)
        elif isinstance(value, str):
            strings[name] = value
    arch = strings.get("general.architecture", "?")
    config, source = None, None
    for key in CONFIG_KEYS:
        if key in strings:
            try:
                config = json.loads(strings[key], parse_constant=_no_constant)
            except (ValueError, RecursionError) as err:
                raise _fail(p, f"the GGUF KV {key!r} should hold the model config as JSON, could not parse it "
                               f"({type(err).__name__}: {str(err)[:200]}).") from None  # fmt: skip
            if not isinstance(config, dict):
                raise _fail(p, f"the GGUF KV {key!r} should hold a JSON object, found {type(config).__name__}.")
            source = f"GGUF KV {key!r}"
            break
    if config is None:
        config = _companion_config(p)
        source = p.with_suffix(".json").name if config is not None else None
    if config is not None:
        from ..header_limits import check_config

        check_config(p, config, f"the config ({source})")
    metadata = dict(strings)
    if config is not None:
        metadata["config"] = json.dumps(config)
    for key in VERSION_KEYS:
        if key in strings:
            metadata["model_version"] = strings[key]
            break
    tensors: dict[str, tuple[int, tuple[int, ...]]] = {}
    stored: dict[str, tuple[int, ...]] = {}
    for t in reader.tensors:
        qtype = int(t.tensor_type)
        if qtype not in gd.BLOCK:
            raise _fail(
                p,
                f"tensor {t.name} has GGUF type {t.tensor_type.name}; OpenLTX reads {', '.join(gd.NAMES.values())}. "
                "Pick a file quantized with one of these.",
            )
        shape = tuple(int(s) for s in reversed(t.shape.tolist()))  # GGUF lists ne0 (the row) first
        stored[t.name] = shape
        tensors[t.name] = (qtype, _real_shape(p, t.name, shape, orig))
    return GGUFHeader(os.fspath(p), arch, metadata, config, source, tensors, stored, p.stat().st_size)


def read_gguf_tensors(path: str | os.PathLike, names=None, progress=None) -> dict[str, GGUFTensor]:
    """Raw bytes of the tensors ``names`` (all when ``None``), keyed as stored in the file.

    ``progress(done, total)`` after each tensor; what it raises (the host's Cancel) propagates.
    """
    p = Path(path)
    reader = _open(p)
    orig = {}
    for name, f in reader.fields.items():
        if name.startswith(ORIG_SHAPE_PREFIX):
            value = _field_value(f)
            if isinstance(value, list):
                orig[name[len(ORIG_SHAPE_PREFIX):]] = tuple(int(v) for v in value)
    wanted = None if names is None else set(names)
    total = len(reader.tensors) if wanted is None else len(wanted)
    out: dict[str, GGUFTensor] = {}
    for t in reader.tensors:
        if wanted is not None and t.name not in wanted:
            continue
        if progress is not None and out:
            progress(len(out), total)
        qtype = int(t.tensor_type)
        stored = tuple(int(s) for s in reversed(t.shape.tolist()))
        data = np.ascontiguousarray(t.data).view(np.uint8)
        raw = torch.from_numpy(data.copy())
        if len(stored) > 1:
            raw = raw.reshape(*stored[:-1], -1)
        out[t.name] = GGUFTensor(raw=raw, qtype=qtype, shape=_real_shape(p, t.name, stored, orig), stored_shape=stored)
    if progress is not None and out:
        progress(len(out), total)
    if wanted is not None and len(out) != len(wanted):
        missing = sorted(wanted - set(out))
        raise _fail(p, f"expected the tensors {missing[:5]} in the GGUF file, found none of that name.")
    return out


def read_gguf(path: str | os.PathLike) -> GGUFModel:
    """Header and raw tensor bytes of an LTX-2 GGUF file; tensor names lose any ``model.diffusion_model.`` prefix."""
    header = read_gguf_header(path)
    tensors = {}
    for name, t in read_gguf_tensors(path).items():
        for prefix in ("model.diffusion_model.", "diffusion_model."):
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        tensors[name] = t
    return GGUFModel(header.path, header.arch, header.config, header.metadata, tensors)


def write_gguf(
    path: str | os.PathLike,
    tensors: dict[str, tuple[np.ndarray, int]],
    config: dict | None,
    model_version: str | None = None,
    extra: dict[str, str] | None = None,
    *,
    arch: str = ARCH,
    config_key: str | None = CONFIG_KEY,
    orig_shapes: dict[str, tuple[int, ...]] | None = None,
) -> None:
    """Write ``{name: (array, qtype)}``: float32/float16 arrays for F32/F16, raw uint8 bytes else.

    ``config`` goes to the string KV ``config_key`` (``None``: no config in the file; an empty
    dict is not written either); ``model_version`` to ``model_version``; ``extra`` to
    ``openltx.<key>``; ``orig_shapes`` to ``comfy.gguf.orig_shape.<name>``.
    """
    import gguf

    writer = gguf.GGUFWriter(os.fspath(path), arch)
    if config and config_key:
        writer.add_string(config_key, json.dumps(config))
    if model_version:
        writer.add_string("model_version", model_version)
    for k, v in (extra or {}).items():
        writer.add_string(f"openltx.{k}", v)
    for name, shape in (orig_shapes or {}).items():
        writer.add_array(ORIG_SHAPE_PREFIX + name, [int(s) for s in shape])
    for name, (array, qtype) in tensors.items():
        if qtype in (gd.F32, gd.F16):
            writer.add_tensor(name, array)
        else:
            writer.add_tensor(name, array, raw_dtype=gguf.GGMLQuantizationType(qtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def encode_tensor(x: np.ndarray, qtype: int) -> tuple[np.ndarray, int]:
    """A float array as GGUF ``qtype`` data: ``(array for write_gguf, qtype used)``.

    1-D arrays are always F32.  A matrix whose row length is not a multiple of ``qtype``'s
    block falls back to Q8_0 (32-value blocks) when it fits that, else to BF16.
    """
    import gguf

    from . import kquants

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim < 2 or qtype == gd.F32:
        return x, gd.F32
    if x.shape[-1] % gd.BLOCK[qtype][0]:
        qtype = gd.Q8_0 if qtype not in (gd.BF16, gd.F16) and x.shape[-1] % 32 == 0 else gd.BF16
    name = gd.NAMES[qtype]
    if name in kquants.QUANTIZERS:
        return kquants.QUANTIZERS[name](x), qtype
    if qtype == gd.F16:
        return x.astype(np.float16), qtype
    return np.ascontiguousarray(gguf.quants.quantize(x, gguf.GGMLQuantizationType(qtype))), qtype
