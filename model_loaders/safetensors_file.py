"""Reading ``.safetensors`` files: the header by hand, tensors lazily.

A safetensors file is ``[u64 little-endian N][N bytes of JSON header][tensor data]``.  The
header maps each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets
relative to the start of the data section) and may hold ``__metadata__``, a ``str -> str``
dict; the LTX-2 files keep their model config there as a JSON string under ``"config"``.

We parse the header ourselves (instead of only calling ``safetensors.safe_open``) so that every
way a file can be wrong -- a pickle/zip ``.ckpt`` renamed to ``.safetensors``, random bytes, an
interrupted download, a corrupted header -- gives a message that names the file, says what was
expected and found, and how to fix it.  Reading the header touches only its first ``8 + N``
bytes, so inspecting a 40 GB checkpoint is instant.  Tensor data is then read with
``safe_open`` (memory-mapped), one requested key at a time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import reprlib
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch


class CheckpointError(ValueError):
    """A model file that OpenLTX cannot use; the message names the file and the fix."""


# The safetensors format caps the header at 100 MB; a larger "length" means the first 8 bytes
# are not a safetensors length field at all.
MAX_HEADER_BYTES = 100_000_000
# Bounds checked on the raw header bytes before the JSON is parsed, so that a hostile header
# costs milliseconds and no memory: the largest published LTX-2 / Gemma files hold ~10k tensors
# and ~150k JSON values.  MAX_JSON_VALUES bounds the Python objects the parse can create (a
# value takes at least one ',', '[' or '{' around it).
MAX_TENSORS = 200_000
MAX_JSON_VALUES = 4_000_000
MAX_JSON_DEPTH = 64  # header, __metadata__ JSON strings and configs: a real config nests ~5 deep

# Bytes per element of each safetensors dtype (sub-byte types such as F4 are left out: their
# size check is skipped).
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}  # fmt: skip

TORCH_DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "I32": torch.int32,
    "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32,
    "F64": torch.float64, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}  # fmt: skip

# Signatures of the files people most often mistake for safetensors.
_FOREIGN_MAGIC = (
    (b"PK\x03\x04", "a zip archive -- the format torch.save() writes for .ckpt / .pt / .pth files"),
    (b"GGUF", "a GGUF file (llama.cpp / ComfyUI-GGUF quantized format)"),
    (b"\x89HDF", "an HDF5 file"),
)


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header describes it; no data read."""

    dtype: str  # safetensors name: "BF16", "F32", "F8_E4M3", ...
    shape: tuple[int, ...]
    begin: int  # byte offsets inside the data section
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


@dataclass
class SafetensorsHeader:
    """The parsed header of one file."""

    path: Path
    file_size: int
    header_size: int  # N, the JSON length
    metadata: dict[str, str] = field(default_factory=dict)
    tensors: dict[str, TensorEntry] = field(default_factory=dict)

    @property
    def data_size(self) -> int:
        return self.file_size - 8 - self.header_size


CORRUPT = "The file is corrupt: download it again."
TRUNCATED = "the file is truncated (an interrupted download or copy). Download it again."


def _fail(path: Path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 3, 80, 80, 8, 6


def short(value) -> str:
    """``repr`` of a header value, cut to a few lines whatever its size or nesting."""
    return _SHORT.repr(value)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def json_depth(value) -> int:
    """Nesting depth of parsed JSON (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            if depth + 1 > MAX_JSON_DEPTH:
                return deepest
            stack.extend((v, depth + 1) for v in item)
    return deepest


def parse_json(path, text: str | bytes, what: str):
    """``json.loads(text)`` for JSON inside a model file: NaN / Infinity, nesting deeper than
    ``MAX_JSON_DEPTH`` and invalid JSON are a ``CheckpointError`` naming the file and ``what``."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise _fail(Path(path), f"{what} nests deeper than Python can parse. {CORRUPT}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise _fail(Path(path), f"expected {what} to be valid JSON, found invalid JSON ({str(err)[:200]}). "
                                f"{CORRUPT}") from None  # fmt: skip
    if json_depth(value) > MAX_JSON_DEPTH:
        raise _fail(Path(path), f"{what} nests more than {MAX_JSON_DEPTH} levels deep. {CORRUPT}")
    return value


def _not_safetensors(path: Path, head: bytes, why: str) -> CheckpointError:
    """The error for a file whose first bytes are not a safetensors header."""
    kind = None
    for magic, name in _FOREIGN_MAGIC:
        if head.startswith(magic):
            kind = name
    if kind is None and len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        kind = "a Python pickle -- the legacy format of .ckpt / .pt / .bin files"
    found = kind or f"{why} (first bytes: {head[:16].hex(' ')})"
    return _fail(
        path,
        "expected a .safetensors file (an 8-byte header length followed by a JSON header), "
        f"found {found}. OpenLTX only reads safetensors: download the official .safetensors "
        "release of the model, or convert the file to safetensors first.",
    )


def _parse_entry(path: Path, name: str, raw: object) -> TensorEntry:
    if not isinstance(raw, dict):
        raise _fail(path, f"header entry {short(name)} should be an object, found {type(raw).__name__}. {CORRUPT}")
    dtype, shape, offsets = raw.get("dtype"), raw.get("shape"), raw.get("data_offsets")
    ok = (
        isinstance(dtype, str)
        and isinstance(shape, list)
        and all(isinstance(d, int) and d >= 0 for d in shape)
        and isinstance(offsets, list)
        and len(offsets) == 2
        and all(isinstance(o, int) for o in offsets)
        and 0 <= offsets[0] <= offsets[1]
    )
    if not ok:
        raise _fail(
            path,
            f"header entry {short(name)} should hold dtype, shape and data_offsets [begin, end], found {short(raw)}. "
            f"{CORRUPT}",
        )
    entry = TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])
    size = DTYPE_BYTES.get(dtype)
    if size is not None and entry.numel * size != entry.nbytes:
        raise _fail(
            path,
            f"tensor {short(name)} is {dtype} {short(list(shape))} ({entry.numel * size} bytes) but its data_offsets "
            f"span {entry.nbytes} bytes. {CORRUPT}",
        )
    return entry


def read_header(path: str | os.PathLike) -> SafetensorsHeader:
    """Parse and validate the header of ``path`` without reading tensor data.

    Raises ``CheckpointError`` when the file is missing, is not safetensors, has a corrupt
    header, or is shorter than its header says (an interrupted download).
    """
    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "nothing"
        raise _fail(path, f"expected a model file, found {what} at this path. Check the file name and the folder.")
    file_size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(24)
        if len(head) < 8:
            raise _not_safetensors(path, head, f"a file of only {file_size} bytes")
        (n,) = struct.unpack("<Q", head[:8])
        if head[8:9] != b"{":  # the JSON header must open with '{' (safetensors spec)
            raise _not_safetensors(path, head, "no JSON header after the length field")
        if n > MAX_HEADER_BYTES:
            raise _not_safetensors(path, head, f"a header length of {n} bytes (at most {MAX_HEADER_BYTES} are allowed)")
        if 8 + n > file_size:
            raise _fail(
                path,
                f"the header declares {n} bytes of JSON but the file has only {file_size - 8} bytes after the "
                f"length field: {TRUNCATED}",
            )
        f.seek(8)
        raw = f.read(n)
    entries = raw.count(b'"data_offsets"')
    if entries > MAX_TENSORS:
        raise _fail(path, f"the header describes {entries} tensors; OpenLTX reads files of at most {MAX_TENSORS} "
                          f"(the published LTX-2 files hold about 10,000). {CORRUPT}")  # fmt: skip
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if values > MAX_JSON_VALUES:
        raise _fail(path, f"the header holds about {values} JSON values; OpenLTX reads at most {MAX_JSON_VALUES}. "
                          f"{CORRUPT}")  # fmt: skip
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _fail(path, f"expected a JSON object as the safetensors header, found bytes that are not UTF-8 "
                          f"({err}). {CORRUPT}") from None  # fmt: skip
    del raw
    parsed = parse_json(path, text, "the safetensors header")
    del text
    if not isinstance(parsed, dict):
        raise _fail(path, f"expected a JSON object as the safetensors header, found {type(parsed).__name__}. {CORRUPT}")
    metadata = parsed.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _fail(path, f"expected __metadata__ to map names to strings, found other values. {CORRUPT}")
    for key, value in metadata.items():  # JSON inside metadata (config, quantization tables): bounded too
        if value[:1] in ("{", "["):
            try:
                parse_json(path, value, f"__metadata__[{short(key)}]")
            except CheckpointError as err:
                if "valid JSON" not in str(err):  # not meant as JSON: only nesting / NaN are refused
                    raise
    header = SafetensorsHeader(path=path, file_size=file_size, header_size=n, metadata=dict(metadata))
    for name, entry in parsed.items():
        header.tensors[name] = _parse_entry(path, name, entry)
    if header.tensors:
        last_name, last = max(header.tensors.items(), key=lambda kv: kv[1].end)
        if last.end > header.data_size:
            raise _fail(
                path,
                f"tensor {last_name!r} ends at byte {8 + n + last.end} but the file has only {file_size} bytes: "
                f"{TRUNCATED}",
            )
    return header


def parse_config(header: SafetensorsHeader) -> dict | None:
    """``__metadata__["config"]`` as a dict, or ``None`` when the header has no config.

    Its numbers are checked against ``header_limits`` (finite, and within what any LTX-2 file
    uses for the settings that size allocations) before anyone builds a module from it.
    """
    from .header_limits import check_config

    raw = header.metadata.get("config")
    if raw is None:
        return None
    config = parse_json(header.path, raw, "__metadata__['config'] (the model config)")
    if not isinstance(config, dict):
        found = type(config).__name__
        raise _fail(header.path, f"expected __metadata__['config'] to be a JSON object, found {found}. {CORRUPT}")
    check_config(header.path, config, "the header config")
    return config


def load_tensors(
    path: str | os.PathLike,
    keys: Iterable[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    rename: Callable[[str], str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Read ``keys`` from ``path`` (memory-mapped; nothing else is read).

    Floating-point tensors are converted to ``dtype`` when given; integer / bool tensors keep
    theirs.  ``rename`` maps a file key to the key of the returned dict.  ``progress(done,
    total)`` is called after each tensor (a 40 GB file takes a while; hosts show a bar).
    """
    out: dict[str, torch.Tensor] = {}
    keys = list(keys)
    with _reading(path):
        handle = _safe_open(path, device)
    with handle as f:
        for i, key in enumerate(keys):
            with _reading(path):
                t = f.get_tensor(key)
                if dtype is not None and t.is_floating_point() and t.dtype != dtype:
                    t = t.to(dtype)
            out[rename(key) if rename else key] = t
            if progress is not None:  # outside _reading: what it raises (the host's Cancel) is not the file's fault
                progress(i + 1, len(keys))
    return out


@contextlib.contextmanager
def _reading(path):
    """Turn the errors of reading ``path`` (safetensors raises its own types) into a
    ``CheckpointError`` naming the file."""
    try:
        yield
    except CheckpointError:
        raise
    except Exception as err:
        found = f"{type(err).__name__}: {err}"
        message = f"reading tensor data failed ({found}). The file may be corrupt: download it again."
        raise _fail(Path(path), message) from err


def _safe_open(path: str | os.PathLike, device: torch.device | str):
    from safetensors import safe_open

    return safe_open(os.fspath(path), framework="pt", device=str(device))
