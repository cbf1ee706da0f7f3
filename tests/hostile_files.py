"""Hostile input files for the tests: small files that claim (or decode to) a lot.

Each maker writes a real file of its format, byte by byte where no library writes such a file:

* ``write_silent_flac``: a valid FLAC of any length made of CONSTANT subframes (about 18 bytes
  per 65535 samples: two hours of 48 kHz stereo silence in ~100 kB), with or without the total
  sample count in its STREAMINFO;
* ``write_gguf_bomb``: a GGUF header whose KV array claims 2^40 elements (a 359-byte file);
* ``write_big_header``: a safetensors file whose JSON header holds ``n`` tensor entries;
* ``write_deep_header``: a safetensors header nested ``depth`` levels deep;
* ``write_with_config``: a copy of a safetensors file with an edited header config.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

FLAC_BLOCK = 65535


# ------------------------------------------------------------------------------ FLAC
def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


_CRC16 = _crc16_table()


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


def _utf8_number(n: int) -> bytes:
    """FLAC's "UTF-8" coding of a frame number (up to 36 bits)."""
    if n < 0x80:
        return bytes([n])
    for length in range(2, 8):
        if n < 1 << (5 * length + 1):
            out = [0x80 | ((n >> (6 * i)) & 0x3F) for i in range(length - 1)][::-1]
            lead = ((0xFF << (8 - length)) & 0xFF) | (n >> (6 * (length - 1)))
            return bytes([lead]) + bytes(out)
    raise ValueError(n)


def write_silent_flac(path: Path, seconds: float, rate: int = 48000, channels: int = 2,
                      total_in_header: bool = True) -> Path:  # fmt: skip
    """A 16-bit FLAC of ``seconds`` of silence (every subframe CONSTANT 0)."""
    total = int(seconds * rate)
    info = bytearray()
    info += struct.pack(">HH", FLAC_BLOCK, FLAC_BLOCK)
    info += b"\x00\x00\x00\x00\x00\x00"  # frame sizes unknown
    packed = (rate << 44) | ((channels - 1) << 41) | (15 << 36) | (total if total_in_header else 0)
    info += packed.to_bytes(8, "big") + bytes(16)  # + MD5 unknown
    out = bytearray(b"fLaC") + bytes([0x80]) + len(info).to_bytes(3, "big") + info
    frame_no, left = 0, total
    while left > 0:
        block = min(FLAC_BLOCK, left)
        header = bytearray(b"\xff\xf8")  # sync, fixed block size
        header.append(0x70)  # block size: 16-bit (size - 1) follows; rate from STREAMINFO
        header.append(((channels - 1) << 4) | 0x08)  # independent channels, 16 bits per sample
        header += _utf8_number(frame_no) + struct.pack(">H", block - 1)
        header.append(_crc8(header))
        frame = header + b"\x00\x00\x00" * channels  # CONSTANT subframe, value 0 (16 bits)
        out += frame + struct.pack(">H", _crc16(bytes(frame)))
        frame_no += 1
        left -= block
    path.write_bytes(bytes(out))
    return path


# ------------------------------------------------------------------------------ GGUF
def write_gguf_bomb(path: Path, count: int = 1 << 40) -> Path:
    """A GGUF v3 file with two KVs, the second an array of ``count`` uint32 (none stored)."""
    def string(s: str) -> bytes:
        return struct.pack("<Q", len(s)) + s.encode()

    body = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
    body += string("general.architecture") + struct.pack("<I", 8) + string("ltx2")
    body += string("tokenizer.ggml.tokens") + struct.pack("<II", 9, 4) + struct.pack("<Q", count)
    body += bytes(359 - len(body)) if len(body) < 359 else b""
    path.write_bytes(body)
    return path


# ------------------------------------------------------------------------------ safetensors
def write_header_file(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def write_big_header(path: Path, entries: int) -> Path:
    """``entries`` empty U8 tensors: a valid file whose header is ~59 bytes per entry (1.6 M entries:
    ~95 MB, just under the format's 100 MB cap)."""
    parts = [f'"t{i}":{{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}' for i in range(entries)]
    return write_header_file(path, ("{" + ",".join(parts) + "}").encode())


def write_deep_header(path: Path, depth: int) -> Path:
    """A header whose metadata is a list nested ``depth`` levels deep."""
    return write_header_file(path, b'{"__metadata__":' + b"[" * depth + b"]" * depth + b"}")


def write_with_config(source: Path, target: Path, edit) -> Path:
    """A copy of the safetensors ``source`` whose ``__metadata__['config']`` went through ``edit(config)``."""
    raw = source.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    config = json.loads(header["__metadata__"]["config"])
    edit(config)
    header["__metadata__"]["config"] = json.dumps(config)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    target.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    return target
