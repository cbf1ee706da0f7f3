"""Numpy quantizers for GGUF K-quants (Q4_K, Q5_K, Q6_K), which the ``gguf`` package cannot write.

Simple min/max fits per sub-block (not llama.cpp's iterative search): every block they write
is a valid GGML block, so llama.cpp, ComfyUI-GGUF and ``gguf.quants.dequantize`` read it;
only the rounding choices differ.  Input: float32 ``(rows, cols)`` with ``cols % 256 == 0``;
output: ``uint8 (rows, cols // 256 * type_size)``.
"""

from __future__ import annotations

import numpy as np

QK_K = 256


def _f16_bytes(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16).reshape(-1, 1).view(np.uint8)


def _pack_scales_k4(sc: np.ndarray, mn: np.ndarray) -> np.ndarray:
    """Eight 6-bit scales and mins per super-block -> 12 bytes (ggml's get_scale_min_k4 layout)."""
    sc, mn = sc.astype(np.uint8), mn.astype(np.uint8)
    out = np.empty((sc.shape[0], 12), dtype=np.uint8)
    out[:, 0:4] = (sc[:, :4] & 0x3F) | ((sc[:, 4:] >> 4) << 6)
    out[:, 4:8] = (mn[:, :4] & 0x3F) | ((mn[:, 4:] >> 4) << 6)
    out[:, 8:12] = (sc[:, 4:] & 0x0F) | ((mn[:, 4:] & 0x0F) << 4)
    return out


def _affine_k(x: np.ndarray, levels: int):
    """Shared Q4_K/Q5_K fit: (blocks, 8, 32) -> d, dmin (fp16-exact float32), sc, mn, q."""
    lo = np.minimum(x.min(axis=-1), 0.0)  # (n, 8); the min is stored as a positive offset
    hi = x.max(axis=-1)
    scale = (hi - lo) / levels
    offset = -lo
    d = (scale.max(axis=-1) / 63).astype(np.float16).astype(np.float32)  # (n,)
    dmin = (offset.max(axis=-1) / 63).astype(np.float16).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d[:, None] > 0, np.rint(scale / d[:, None]), 0).clip(0, 63)
        mn = np.where(dmin[:, None] > 0, np.rint(offset / dmin[:, None]), 0).clip(0, 63)
        eff_d = (d[:, None] * sc)[..., None]  # (n, 8, 1)
        eff_m = (dmin[:, None] * mn)[..., None]
        q = np.where(eff_d > 0, np.rint((x + eff_m) / eff_d), 0).clip(0, levels)
    return d, dmin, sc, mn, q.astype(np.uint8)


def _nibble_pack(q: np.ndarray) -> np.ndarray:
    """(n, 8, 32) values 0..15 -> (n, 128) bytes: sub-blocks 2i (low nibble) and 2i+1 (high)."""
    q = q.reshape(q.shape[0], 4, 2, 32)
    return (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(q.shape[0], 128)


def quantize_q4_k(rows: np.ndarray) -> np.ndarray:
    n_rows = rows.shape[0]
    x = rows.astype(np.float32).reshape(-1, 8, 32)
    d, dmin, sc, mn, q = _affine_k(x, 15)
    blocks = np.concatenate([_f16_bytes(d), _f16_bytes(dmin), _pack_scales_k4(sc, mn), _nibble_pack(q)], axis=1)
    return blocks.reshape(n_rows, -1)


def quantize_q5_k(rows: np.ndarray) -> np.ndarray:
    n_rows = rows.shape[0]
    x = rows.astype(np.float32).reshape(-1, 8, 32)
    d, dmin, sc, mn, q = _affine_k(x, 31)
    high = (q >> 4) & 1  # (n, 8, 32): bit j of qh byte k is sub-block j's element k
    qh = np.zeros((q.shape[0], 32), dtype=np.uint8)
    for j in range(8):
        qh |= high[:, j, :] << j
    blocks = np.concatenate(
        [_f16_bytes(d), _f16_bytes(dmin), _pack_scales_k4(sc, mn), qh, _nibble_pack(q & 0x0F)], axis=1
    )
    return blocks.reshape(n_rows, -1)


def quantize_q6_k(rows: np.ndarray) -> np.ndarray:
    n_rows = rows.shape[0]
    x = rows.astype(np.float32).reshape(-1, 16, 16)  # 16 sub-blocks of 16
    n = x.shape[0]
    scale = np.abs(x).max(axis=-1) / 31  # (n, 16), q in -31..31
    d = (scale.max(axis=-1) / 127).astype(np.float16).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = np.where(d[:, None] > 0, np.rint(scale / d[:, None]), 0).clip(-128, 127)
        eff = (d[:, None] * sc)[..., None]
        q = np.where(eff > 0, np.rint(x / eff), 0).clip(-32, 31)
    q = (q + 32).astype(np.uint8).reshape(n, 256)  # 0..63
    low, high = q & 0x0F, q >> 4
    lo4 = low.reshape(n, 2, 2, 64)  # element = h*128 + s*64 + k
    ql = (lo4[:, :, 0] | (lo4[:, :, 1] << 4)).reshape(n, 128)
    hi4 = high.reshape(n, 2, 4, 32)  # element = h*128 + t*32 + k
    qh = (hi4[:, :, 0] | (hi4[:, :, 1] << 2) | (hi4[:, :, 2] << 4) | (hi4[:, :, 3] << 6)).reshape(n, 64)
    blocks = np.concatenate([ql, qh, sc.astype(np.int8).view(np.uint8), _f16_bytes(d)], axis=1)
    return blocks.reshape(n_rows, -1)


QUANTIZERS = {"Q4_K": quantize_q4_k, "Q5_K": quantize_q5_k, "Q6_K": quantize_q6_k}
