"""NVFP4 weights (ComfyUI's ``"nvfp4"`` comfy_quant format, Lightricks' prequantized NVFP4).

A ``[N, K]`` weight is stored as three tensors (ComfyUI's ``gemma_3_12B_it_fp4_mixed`` and the
LTX NVFP4 files; comfy-kitchen 0.2.40 ``TensorCoreNVFP4Layout`` is the definition):

``weight``          uint8 ``[Np, Kp / 2]`` with ``Np, Kp`` = ``N, K`` rounded up to 16: two 4-bit
                    E2M1 codes per byte, element ``2j`` of a row in the HIGH nibble, ``2j + 1``
                    in the low one.  Code = sign bit (8) + index into
                    ``0, 0.5, 1, 1.5, 2, 3, 4, 6``.
``weight_scale``    float8_e4m3fn block scales, one per 16 consecutive elements of a row,
                    ``[Np, Kp / 16]`` in cuBLAS' 128x4 tiled ("swizzled") layout, padded to
                    ``[roundup(Np, 128), roundup(Kp / 16, 4)]``.
``weight_scale_2``  float32 scalar: the per-tensor scale (``amax / (448 * 6)`` when quantized).

``w[n, k] = e2m1(code[n, k]) * (weight_scale_2 * block_scale[n, k // 16])``, then cropped to the
logical ``[N, K]``.  Everything here is plain torch and runs on any device (CPU included);
``dequantize`` is meant to run one layer at a time, when the layer is needed.
"""

from __future__ import annotations

import torch

BLOCK = 16  # elements per block scale
PAD = 16  # the stored matrix is padded to multiples of 16 in both dimensions
TILE_ROWS, TILE_COLS = 128, 4  # cuBLAS block-scale tile: 128 rows x 4 block columns
E2M1_MAX = 6.0
E4M3_MAX = 448.0
# Magnitudes of the 8 non-negative E2M1 codes; codes 8..15 are their negatives.
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
FORMAT = "nvfp4"


def roundup(x: int, multiple: int) -> int:
    return (x + multiple - 1) // multiple * multiple


def storage_shapes(rows: int, cols: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Stored ``(weight, weight_scale)`` shapes of a logical ``[rows, cols]`` weight."""
    prow, pcol = roundup(rows, PAD), roundup(cols, PAD)
    return (prow, pcol // 2), (roundup(prow, TILE_ROWS), roundup(pcol // BLOCK, TILE_COLS))


def logical_bounds(weight_shape) -> tuple[int, int]:
    """The largest logical ``[rows, cols]`` a stored uint8 ``weight`` ``[Np, Kp / 2]`` can hold."""
    return int(weight_shape[0]), int(weight_shape[1]) * 2


def fits(logical, weight_shape, scale_shape) -> bool:
    """True when stored tensors of these shapes hold a logical ``[rows, cols]`` weight."""
    if len(logical) != 2 or len(weight_shape) != 2 or len(scale_shape) != 2:
        return False
    want_w, want_s = storage_shapes(int(logical[0]), int(logical[1]))
    return tuple(weight_shape) == want_w and tuple(scale_shape) == want_s


# ------------------------------------------------------------------------------ block-scale layout
def to_blocked(scales: torch.Tensor) -> torch.Tensor:
    """``[R, C]`` block scales -> cuBLAS' tiled layout ``[roundup(R, 128), roundup(C, 4)]``.

    The matrix is cut into 128 x 4 tiles (row-major order of tiles); inside a tile, row
    ``r = 32 * i + j`` and column ``c`` land at flat position ``16 * j + 4 * i + c`` of the
    tile's 512 entries.  Padding is zero.
    """
    rows, cols = scales.shape
    pr, pc = roundup(rows, TILE_ROWS), roundup(cols, TILE_COLS)
    padded = scales.new_zeros((pr, pc))
    padded[:rows, :cols] = scales
    tiles = padded.view(pr // TILE_ROWS, 4, 32, pc // TILE_COLS, TILE_COLS)  # (tile row, i, j, tile col, c)
    return tiles.permute(0, 3, 2, 1, 4).reshape(pr, pc)  # (tile row, tile col, j, i, c)


def from_blocked(blocked: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Inverse of ``to_blocked``: the ``[rows, cols]`` block scales in plain row-major order."""
    pr, pc = roundup(rows, TILE_ROWS), roundup(cols, TILE_COLS)
    if tuple(blocked.shape) != (pr, pc):
        raise ValueError(f"NVFP4 block scales for {rows} x {cols} blocks must be {[pr, pc]}, got {list(blocked.shape)}")
    tiles = blocked.reshape(pr // TILE_ROWS, pc // TILE_COLS, 32, 4, TILE_COLS)  # (tile row, tile col, j, i, c)
    return tiles.permute(0, 3, 2, 1, 4).reshape(pr, pc)[:rows, :cols]


# ------------------------------------------------------------------------------ codes
def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """uint8 ``[R, C / 2]`` -> 4-bit codes ``[R, C]`` (high nibble first)."""
    hi, lo = packed >> 4, packed & 0x0F
    return torch.stack((hi, lo), dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)


def pack_codes(codes: torch.Tensor) -> torch.Tensor:
    """4-bit codes ``[R, C]`` (C even) -> uint8 ``[R, C / 2]``, element ``2j`` in the high nibble."""
    pairs = codes.to(torch.uint8).reshape(*codes.shape[:-1], codes.shape[-1] // 2, 2)
    return (pairs[..., 0] << 4) | pairs[..., 1]


def _value_table(device, dtype) -> torch.Tensor:
    mags = torch.tensor(E2M1_VALUES, dtype=dtype, device=device)
    return torch.cat((mags, -mags))


_PAIRS: dict[torch.device, torch.Tensor] = {}


def _pair_table(device: torch.device) -> torch.Tensor:
    """float32 ``[256, 2]``: the two values a byte holds (high nibble first); one lookup per byte."""
    if device not in _PAIRS:
        table = _value_table(device, torch.float32)
        _PAIRS[device] = torch.stack((table.repeat_interleave(16), table.repeat(16)), dim=-1)
    return _PAIRS[device]


def decode_codes(codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """E2M1 codes -> values (exact in every float dtype)."""
    return _value_table(codes.device, dtype)[codes.long()]


def encode_e2m1(x: torch.Tensor) -> torch.Tensor:
    """float32 values (already in ``[-6, 6]``) -> nearest E2M1 codes, ties to the even code.

    The sign bit is kept for values that round to zero (``-0.1`` -> code 8, negative zero).
    """
    mag = x.abs().clamp(max=E2M1_MAX)
    values = torch.tensor(E2M1_VALUES, dtype=torch.float32, device=x.device)
    mids = (values[1:] + values[:-1]) / 2  # 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5
    idx = torch.bucketize(mag, mids, right=False)  # ties land on the lower code ...
    tie = (idx < len(mids)) & (mag == mids[idx.clamp(max=len(mids) - 1)])
    idx = torch.where(tie & (idx % 2 == 1), idx + 1, idx)  # ... and move up when the lower one is odd
    return (idx + 8 * torch.signbit(x).to(idx.dtype)).to(torch.uint8)


# ------------------------------------------------------------------------------ (de)quantize
def dequantize(
    weight: torch.Tensor,
    block_scale: torch.Tensor,
    scale_2: torch.Tensor,
    shape,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Stored NVFP4 tensors -> the logical ``shape`` ``[N, K]`` weight in ``dtype`` on ``device``.

    Args:
        weight: uint8 ``[Np, Kp / 2]``; block_scale: float8_e4m3fn tiled scales (or their
            uint8 bytes); scale_2: float32 scalar.
    Computed in float32 (``value * (scale_2 * block_scale)``, comfy-kitchen's order), then cast.
    """
    rows, cols = int(shape[0]), int(shape[1])
    if not fits((rows, cols), weight.shape, block_scale.shape):
        w_shape, s_shape = storage_shapes(rows, cols)
        raise ValueError(
            f"NVFP4 tensors for a {rows} x {cols} weight must be uint8 {list(w_shape)} + scales {list(s_shape)}, "
            f"got {list(weight.shape)} + {list(block_scale.shape)}"
        )
    device = weight.device if device is None else torch.device(device)
    packed = weight.to(device)
    if block_scale.dtype == torch.uint8:
        block_scale = block_scale.view(torch.float8_e4m3fn)
    prow, pcol = packed.shape[0], packed.shape[1] * 2
    blocks = from_blocked(block_scale.to(device), prow, pcol // BLOCK).to(torch.float32)  # [Np, Kp / 16]
    total = scale_2.to(device=device, dtype=torch.float32).reshape(()) * blocks
    # one table lookup per byte (both nibbles), then the block scales in place: ~2x faster on the
    # CPU than unpacking the nibbles first, and the same numbers
    values = torch.nn.functional.embedding(packed.to(torch.int32), _pair_table(device)).view(prow, pcol // BLOCK, BLOCK)
    values.mul_(total.unsqueeze(-1))
    return values.view(prow, pcol)[:rows, :cols].to(dtype)


def quantize(weight: torch.Tensor, scale_2: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float ``[N, K]`` -> ``(weight uint8, weight_scale e4m3 tiled, weight_scale_2 f32)`` as files store them.

    ``scale_2`` defaults to ``amax / (448 * 6)``.  Each block's scale is ``amax_block / 6 /
    scale_2`` rounded to e4m3 (clamped at 448); elements are divided by ``scale_2 * block``
    and rounded to the nearest E2M1 value (ties to even).  Used to write test files and by
    conversion tools; loading only needs ``dequantize``.
    """
    if weight.ndim != 2:
        raise ValueError(f"NVFP4 quantizes matrices, got a tensor of shape {list(weight.shape)}")
    w = weight.to(torch.float32)
    rows, cols = w.shape
    if scale_2 is None:
        scale_2 = w.abs().amax() / (E4M3_MAX * E2M1_MAX)
    scale_2 = scale_2.to(device=w.device, dtype=torch.float32).reshape(())
    prow, pcol = roundup(rows, PAD), roundup(cols, PAD)
    w = torch.nn.functional.pad(w, (0, pcol - cols, 0, prow - rows)).view(prow, pcol // BLOCK, BLOCK)
    block = (w.abs().amax(dim=-1) / E2M1_MAX / scale_2).clamp(max=E4M3_MAX).to(torch.float8_e4m3fn)
    total = scale_2 * block.to(torch.float32)
    safe = torch.where(total == 0, torch.ones_like(total), total)
    scaled = torch.where(total.unsqueeze(-1) == 0, torch.zeros_like(w), w / safe.unsqueeze(-1))
    codes = encode_e2m1(scaled.clamp(-E2M1_MAX, E2M1_MAX).view(prow, pcol))
    return pack_codes(codes), to_blocked(block), scale_2
