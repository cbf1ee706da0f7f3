"""GGUF block dequantizers in torch, bit-for-bit equal to ``gguf.quants.dequantize``.

Each function takes the raw bytes of ``n`` rows, a ``uint8`` tensor ``(rows, row_bytes)`` on
any device, and returns ``float32`` ``(rows, row_bytes // type_size * block_size)``.  They
follow the reference numpy code's order of float32 operations exactly (scales are fp16
widened to fp32, products formed in the same order, no fused multiply-add), which is why the
results match bit for bit; do not ``torch.compile`` them (inductor may fuse ``a*b - c``).

Block layouts (QK_K = 256):
  Q8_0  32 values:  d fp16 | 32 x int8
  Q4_0  32 values:  d fp16 | 16 bytes, low nibbles = values 0..15, high = 16..31, minus 8
  Q5_0  32 values:  d fp16 | qh uint32 (5th bits) | 16 bytes of nibbles, minus 16
  Q4_K 256 values:  d fp16 | dmin fp16 | 12 bytes of 6-bit scales/mins | 128 bytes nibbles
  Q5_K 256 values:  as Q4_K plus 32 bytes qh (5th bits) before the nibbles
  Q6_K 256 values:  128 bytes ql | 64 bytes qh | 16 x int8 scales | d fp16
"""

from __future__ import annotations

import torch

QK_K = 256

# ggml type ids (gguf.GGMLQuantizationType) -> (block size, bytes per block)
F32, F16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K, BF16 = 0, 1, 2, 6, 8, 12, 13, 14, 30
BLOCK = {
    F32: (1, 4), F16: (1, 2), BF16: (1, 2),
    Q4_0: (32, 18), Q5_0: (32, 22), Q8_0: (32, 34),
    Q4_K: (256, 144), Q5_K: (256, 176), Q6_K: (256, 210),
}
NAMES = {F32: "F32", F16: "F16", BF16: "BF16", Q4_0: "Q4_0", Q5_0: "Q5_0", Q8_0: "Q8_0", Q4_K: "Q4_K", Q5_K: "Q5_K", Q6_K: "Q6_K"}


def _f16(raw: torch.Tensor) -> torch.Tensor:
    """(n, 2) uint8 -> (n, 1) float32 (fp16 widened exactly)."""
    return raw.contiguous().view(torch.float16).to(torch.float32)


def _nibbles(qs: torch.Tensor, group: int) -> torch.Tensor:
    """(n, g*group) bytes -> (n, g, 2*group): low nibbles first, then high nibbles."""
    q = qs.reshape(qs.shape[0], -1, 1, group)
    shifts = torch.tensor([0, 4], dtype=torch.uint8, device=qs.device).reshape(1, 1, 2, 1)
    return ((q >> shifts) & 0x0F).reshape(qs.shape[0], -1, 2 * group)


def _bits(raw: torch.Tensor, nbits: int) -> torch.Tensor:
    """(n, k) bytes -> (n, k, nbits) single bits, little-endian bit order."""
    shifts = torch.arange(nbits, dtype=torch.uint8, device=raw.device)
    return (raw.unsqueeze(-1) >> shifts) & 1


def _q8_0(b: torch.Tensor) -> torch.Tensor:
    d = _f16(b[:, :2])
    x = b[:, 2:].contiguous().view(torch.int8).to(torch.float32)
    return x * d


def _q4_0(b: torch.Tensor) -> torch.Tensor:
    d = _f16(b[:, :2])
    q = _nibbles(b[:, 2:], 16).reshape(b.shape[0], 32).to(torch.int8) - 8
    return d * q.to(torch.float32)


def _q5_0(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    d = _f16(b[:, :2])
    qh = _bits(b[:, 2:6], 8).reshape(n, 32)  # bit j of the little-endian uint32 = value j
    ql = _nibbles(b[:, 6:], 16).reshape(n, 32)
    q = (ql | (qh << 4)).to(torch.int8) - 16
    return d * q.to(torch.float32)


def _scale_min_k4(scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """12 packed bytes -> eight 6-bit scales and eight 6-bit mins per super-block."""
    n = scales.shape[0]
    s = scales.reshape(n, 3, 4)
    d, m, md = s[:, 0], s[:, 1], s[:, 2]
    sc = torch.cat([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], dim=-1)
    mn = torch.cat([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], dim=-1)
    return sc, mn


def _q4_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    d, dmin = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    sc, mn = _scale_min_k4(b[:, 4:16])
    d = (d * sc.to(torch.float32)).reshape(n, -1, 1)
    dm = (dmin * mn.to(torch.float32)).reshape(n, -1, 1)
    q = _nibbles(b[:, 16:], 32).reshape(n, -1, 32).to(torch.float32)
    return (d * q - dm).reshape(n, QK_K)


def _q5_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    d, dmin = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    sc, mn = _scale_min_k4(b[:, 4:16])
    d = (d * sc.to(torch.float32)).reshape(n, -1, 1)
    dm = (dmin * mn.to(torch.float32)).reshape(n, -1, 1)
    qh_raw = b[:, 16:48]
    ql = _nibbles(b[:, 48:], 32).reshape(n, -1, 32)  # 8 sub-blocks of 32
    shifts = torch.arange(8, dtype=torch.uint8, device=b.device).reshape(1, 8, 1)
    qh = (qh_raw.reshape(n, 1, 32) >> shifts) & 1  # sub-block j takes bit j of each qh byte
    q = (ql | (qh << 4)).to(torch.float32)
    return (d * q - dm).reshape(n, QK_K)


def _q6_k(b: torch.Tensor) -> torch.Tensor:
    n = b.shape[0]
    ql_raw, qh_raw = b[:, :128], b[:, 128:192]
    scales = b[:, 192:208].contiguous().view(torch.int8).to(torch.float32)
    d = _f16(b[:, 208:210])
    d = (d * scales).reshape(n, QK_K // 16, 1)
    ql = _nibbles(ql_raw, 64).reshape(n, -1, 32)
    shifts = torch.tensor([0, 2, 4, 6], dtype=torch.uint8, device=b.device).reshape(1, 1, 4, 1)
    qh = ((qh_raw.reshape(n, -1, 1, 32) >> shifts) & 0x03).reshape(n, -1, 32)
    q = (ql | (qh << 4)).to(torch.int8) - 32
    q = q.reshape(n, QK_K // 16, -1).to(torch.float32)
    return (d * q).reshape(n, QK_K)


_BLOCK_FNS = {Q8_0: _q8_0, Q4_0: _q4_0, Q5_0: _q5_0, Q4_K: _q4_k, Q5_K: _q5_k, Q6_K: _q6_k}


def dequantize(raw: torch.Tensor, qtype: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Raw GGUF bytes -> float32 tensor of ``shape`` (torch order, e.g. ``(out, in)``).

    ``raw`` is ``uint8`` with the rows' bytes in its last dimension (any leading shape),
    on the device the result should live on.
    """
    if qtype == F32:
        return raw.contiguous().view(torch.float32).reshape(shape)
    if qtype == F16:
        return raw.contiguous().view(torch.float16).to(torch.float32).reshape(shape)
    if qtype == BF16:
        return (raw.contiguous().view(torch.int16).to(torch.int32) << 16).view(torch.float32).reshape(shape)
    fn = _BLOCK_FNS.get(qtype)
    if fn is None:
        raise ValueError(f"GGUF tensor type {NAMES.get(qtype, qtype)} is not supported; supported: {', '.join(NAMES.values())}")
    _, type_size = BLOCK[qtype]
    blocks = raw.reshape(-1, type_size)
    return fn(blocks).reshape(shape)


def row_bytes(qtype: int, row: int) -> int:
    """Bytes of one row of ``row`` values in ``qtype``."""
    block, size = BLOCK[qtype]
    if row % block:
        raise ValueError(f"a row of {row} values is not a multiple of the {NAMES[qtype]} block size {block}")
    return row // block * size
