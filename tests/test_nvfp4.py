"""NVFP4 dequantization (model_loaders/quant/nvfp4.py) against comfy-kitchen 0.2.40, the definition.

comfy-kitchen (ComfyUI's quantization library, a test-only dependency) writes the
``nvfp4`` layers of ComfyUI's files (``gemma_3_12B_it_fp4_mixed.safetensors``): its eager
backend runs on the CPU, so our torch code is compared with it bit for bit (float32), for
shapes that need padding in both directions and across several 128 x 4 scale tiles.
"""

from __future__ import annotations

import pytest
import torch

from comfy_kitchen.backends.eager import quantization as kitchen
from comfy_kitchen.float_utils import _f32_to_floatx_unpacked, from_blocked, to_blocked
from openltx.model_loaders.quant import nvfp4

SHAPES = [(40, 48), (128, 64), (300, 200), (17, 33), (1, 16), (257, 520)]


def kitchen_pair(w: torch.Tensor):
    scale_2 = w.abs().amax().float() / (448.0 * 6.0)
    packed, blocked = kitchen.quantize_nvfp4(w, scale_2, pad_16x=True)
    return packed, blocked, scale_2


def test_e2m1_rounding_matches_kitchen_including_ties_and_signed_zero():
    mids = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
    x = torch.cat([torch.linspace(-6, 6, 48001), mids, -mids, torch.tensor([0.0, -0.0, 0.1, -0.1, 6.0, -6.0])])
    ours = nvfp4.encode_e2m1(x)
    ref = _f32_to_floatx_unpacked(x, 2, 1)
    assert torch.equal(ours, ref)
    assert ours[-3].item() == 8 + 0  # -0.1 keeps its sign: negative zero
    # every code decodes to its table value, sign bit 8
    codes = torch.arange(16, dtype=torch.uint8)
    assert nvfp4.decode_codes(codes).tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]


@pytest.mark.parametrize("rows,cols", [(128, 4), (130, 7), (40, 3), (256, 8), (1, 1), (385, 13)])
def test_scale_tiling_matches_cublas_layout(rows, cols):
    s = torch.randn(rows, cols)
    ours = nvfp4.to_blocked(s)
    ref = to_blocked(s, flatten=False)
    assert torch.equal(ours, ref)
    assert torch.equal(nvfp4.from_blocked(ours, rows, cols), s)
    assert torch.equal(nvfp4.from_blocked(ref, rows, cols), from_blocked(ref, rows, cols))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_quantize_and_dequantize_match_kitchen_bit_for_bit(shape):
    g = torch.Generator().manual_seed(shape[0] * 1000 + shape[1])
    w = torch.randn(shape, generator=g) * 3
    w[0, :5] = 0.0  # a partly zero block
    ref_packed, ref_blocked, ref_s2 = kitchen_pair(w)
    packed, blocked, s2 = nvfp4.quantize(w)
    assert packed.dtype == torch.uint8 and blocked.dtype == torch.float8_e4m3fn and s2.dtype == torch.float32
    assert torch.equal(packed, ref_packed)
    assert torch.equal(blocked.view(torch.uint8), ref_blocked.view(torch.uint8))
    assert torch.equal(s2, ref_s2)
    assert (tuple(packed.shape), tuple(blocked.shape)) == nvfp4.storage_shapes(*shape)
    ref = kitchen.dequantize_nvfp4(ref_packed, ref_s2, ref_blocked, torch.float32)[: shape[0], : shape[1]]
    ours = nvfp4.dequantize(ref_packed, ref_blocked, ref_s2, shape)
    assert ours.shape == shape and torch.equal(ours, ref)
    # 4-bit codes: the error is at most half a step of the largest block value (6 -> 4: 1 step = 2)
    assert (ours - w).abs().max() <= w.abs().max() / 6 + 1e-6


def test_dequantize_other_dtypes_and_raw_scale_bytes():
    w = torch.randn(64, 96)
    packed, blocked, s2 = nvfp4.quantize(w)
    f32 = nvfp4.dequantize(packed, blocked, s2, w.shape)
    from_bytes = nvfp4.dequantize(packed, blocked.view(torch.uint8), s2, w.shape)  # as a file stores F8 bytes
    assert torch.equal(f32, from_bytes)
    bf16 = nvfp4.dequantize(packed, blocked, s2, w.shape, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16 and torch.equal(bf16, f32.to(torch.bfloat16))


def test_hand_computed_element_layout():
    """Byte 0x1F = codes (1, 15): element 0 = +0.5 (high nibble), element 1 = -6 (low nibble)."""
    packed = torch.zeros(16, 8, dtype=torch.uint8)
    packed[0, 0] = 0x1F
    packed[3, 7] = 0x70  # row 3, element 14 = +6, element 15 = 0
    blocks = torch.zeros(16, 1)
    blocks[0, 0], blocks[3, 0] = 2.0, 0.5
    blocked = nvfp4.to_blocked(blocks.to(torch.float8_e4m3fn))
    w = nvfp4.dequantize(packed, blocked, torch.tensor(0.25), (16, 16))
    expected = torch.zeros(16, 16)
    expected[0, 0], expected[0, 1] = 0.5 * 2.0 * 0.25, -6 * 2.0 * 0.25
    expected[3, 14] = 6 * 0.5 * 0.25
    assert torch.equal(w, expected)


def test_wrong_storage_shapes_are_refused():
    packed, blocked, s2 = nvfp4.quantize(torch.randn(32, 32))
    with pytest.raises(ValueError, match=r"32 x 64 weight must be uint8 \[32, 32\]"):
        nvfp4.dequantize(packed, blocked, s2, (32, 64))
