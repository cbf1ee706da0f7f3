"""Quantized matmul kernels (model_loaders/quant/matmul.py) against the plain dequantized path.

On this CPU machine:
* int8 W8A8 runs ``torch._int_mm`` for real (it has a CPU kernel): equal to the float64 product
  of the quantized operands within 1e-6 relative (integer accumulation is exact), and within
  2e-2 of the weight-only path (the activation rounding to 8 bits).
* fp8 W8A8 runs ``torch._scaled_mm`` where this torch has a CPU kernel, and the fp32
  emulation otherwise (both are checked): equal to the float64 product of the quantized
  operands within bf16 output rounding (1e-2), within 5e-2 of the weight-only path (e4m3
  activations carry 3 mantissa bits).
* The GGUF dequantized-weight cache returns bit-identical outputs, keeps to its budget, and
  never serves a weight that a LoRA patch changed.
* A layer with per-call weight patches (ComfyUI's low-VRAM LoRA path) never takes a kernel.
The GPU speed of these kernels is measured by ``benchmarks/gpu_matrix.sh``.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch

from openltx.host import model_loading as loading
from openltx.ltx2.ops import TorchOps
from openltx.model_loaders.quant import fp8 as fp8_mod
from openltx.model_loaders.quant import gguf_dequant as gd
from openltx.model_loaders.quant import int8 as int8_mod
from openltx.model_loaders.quant import matmul as qmm
from openltx.model_loaders.quant.ops import quantized_operations

from quant_fixtures import rel, run, write_small_checkpoint


def data(m=37, k=128, n=48, seed=0, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g)
    x[3] *= 20  # an outlier token: per-row scales keep the others precise
    w = torch.randn(n, k, generator=g) / k**0.5
    b = torch.randn(n, generator=g) * 0.1
    return x.to(dtype), w, b


def test_row_quantization_error_bounds():
    x, _, _ = data(dtype=torch.float32)
    q, s = qmm.quantize_rows(x, qmm.INT8_MAX, torch.int8)
    assert q.dtype == torch.int8 and s.shape == (x.shape[0], 1)
    assert ((q.float() * s - x).abs() <= s / 2 + 1e-7).all()  # round to nearest
    q8, s8 = qmm.quantize_rows(x, qmm.FP8_MAX, torch.float8_e4m3fn)
    assert q8.float().abs().amax(-1).sub(qmm.FP8_MAX).abs().max() == 0  # each row's amax maps to 448
    assert ((q8.float() * s8 - x).abs() <= x.abs() * 2**-4 + s8 * 2**-9).all()
    zero = torch.zeros(2, 16)
    qz, sz = qmm.quantize_rows(zero, qmm.INT8_MAX, torch.int8)
    assert torch.equal(qz, torch.zeros_like(qz, dtype=torch.int8)) and torch.equal(sz, torch.ones(2, 1))


@pytest.mark.parametrize("tensorwise", [False, True])
def test_int8_linear_is_exact_integer_math(tensorwise):
    x, w, b = data()
    q, s = int8_mod.quantize(w)
    if tensorwise:  # ComfyUI int8_tensorwise: one scale for the whole weight
        s = w.abs().amax() / 127
        q = torch.round(w / s).clamp(-127, 127).to(torch.int8)
    out = qmm.int8_linear(x, q, s, b)
    assert out.dtype == x.dtype and out.shape == (x.shape[0], w.shape[0])
    xq, sx = qmm.quantize_rows(x, qmm.INT8_MAX, torch.int8)
    exact = (xq.double() * sx.double()) @ (q.double() * s.double().reshape(-1, 1)).T + b.double()
    assert rel(out.double(), exact) < 8e-3  # bf16 output rounding only
    out32 = qmm.int8_linear(x.float(), q, s, b)
    assert rel(out32.double(), exact) < 1e-6
    weight_only = torch.nn.functional.linear(x.float(), int8_mod.dequantize(q, s, torch.float32), b)
    assert rel(out32, weight_only) < 2e-2


@pytest.mark.parametrize("rowwise", [True, False])
@pytest.mark.parametrize("emulate", [False, True])
def test_fp8_linear_matches_quantized_operands(rowwise, emulate, monkeypatch):
    x, w, b = data(m=40)
    q, s = fp8_mod.quantize(w)
    if emulate:  # a torch without a CPU _scaled_mm kernel
        def no_kernel(*args, **kwargs):
            raise NotImplementedError("no CPU kernel")
        monkeypatch.setattr(torch, "_scaled_mm", no_kernel)
    out = qmm.fp8_linear(x, q, s, None, b, rowwise)
    assert out.dtype == torch.bfloat16 and out.shape == (40, 48)
    if rowwise:
        xq, sx = qmm.quantize_rows(x, qmm.FP8_MAX, torch.float8_e4m3fn)
    else:
        xq, sx = qmm.quantize_tensor_fp8(x)
    exact = (xq.double() * sx.double()) @ (q.double() * s.double()).T + b.double()
    assert rel(out.double(), exact) < 1e-2
    weight_only = torch.nn.functional.linear(x.float(), fp8_mod.dequantize(q, s, torch.float32), b)
    assert rel(out.float(), weight_only) < 5e-2


def test_fp8_static_input_scale_and_unfit_shapes():
    x, w, b = data()
    q, s = fp8_mod.quantize(w)
    static = torch.tensor(0.05)
    out = qmm.fp8_linear(x, q, s, static, b, rowwise=True)  # a file's input_scale wins over rowwise
    xq = (x.float() / static).clamp(-448, 448).to(torch.float8_e4m3fn)
    exact = (xq.double() * 0.05) @ (q.double() * s.double()).T + b.double()
    assert rel(out.double(), exact) < 1e-2
    assert qmm.fp8_linear(x.float(), q, s, None, b, True) is None  # fp32 activations: not an fp8 GEMM
    assert qmm.fp8_linear(x[:, :120], q[:, :120], s, None, b, True) is None  # K not a multiple of 16


# --------------------------------------------------------------------------- through QuantLinear
def quant_layer(w, b, kind):
    ops = quantized_operations(TorchOps, dense_dtype=torch.bfloat16)
    layer = ops.Linear(w.shape[1], w.shape[0], bias=True, dtype=torch.bfloat16)
    sd = {"bias": b}
    if kind in ("int8", "fp8"):
        sd["weight"], sd["weight_scale"] = (int8_mod if kind == "int8" else fp8_mod).quantize(w)
    else:  # GGUF Q8_0
        layer._gguf_table["layer"] = (gd.Q8_0, tuple(w.shape))
        raw = gguf.quants.quantize(w.numpy(), gguf.GGMLQuantizationType.Q8_0)
        sd["weight"] = torch.from_numpy(np.ascontiguousarray(raw))
    sd = {"layer." + k: v for k, v in sd.items()}
    holder = torch.nn.Module()
    holder.layer = layer
    holder.load_state_dict(sd, strict=True)
    return layer


@pytest.mark.parametrize("kind", ["int8", "fp8"])
def test_quant_linear_takes_the_kernel_only_when_asked_and_unpatched(kind):
    x, w, b = data()
    layer = quant_layer(w, b, kind)
    with torch.no_grad():
        plain = layer(x)  # CPU default ("auto"): no quantized kernel here
        with qmm.active(qmm.MatmulSettings(**{kind: "on"})):
            fast = layer(x)
            bias = layer.bias.to(x.dtype)  # the layer casts its bias to the compute dtype
            kernel = (qmm.int8_linear(x, layer.weight, layer.weight_scale, bias) if kind == "int8"
                      else qmm.fp8_linear(x, layer.weight, layer.weight_scale, None, bias, rowwise=False))
            layer.weight_function = [lambda weight: weight]  # a per-call patch (LowVramPatch)
            patched = layer(x)
            del layer.weight_function
        with qmm.active(qmm.MatmulSettings(**{kind: "off"})):
            off = layer(x)
    assert torch.equal(fast, kernel)
    assert torch.equal(patched, plain) and torch.equal(off, plain)
    assert not torch.equal(fast, plain) and rel(fast.float(), plain.float()) < 5e-2


def test_gguf_cache_is_exact_within_budget_and_invalidated_by_patches():
    x, w, b = data(k=256)
    layers = [quant_layer(w * (i + 1), b, "gguf") for i in range(3)]
    per_layer = w.numel() * 2  # bf16 dequantized weight
    qmm.CACHE.clear()
    with torch.no_grad():
        plain = [layer(x) for layer in layers]
        settings = qmm.MatmulSettings(gguf_cache_bytes=2 * per_layer)
        with qmm.active(settings):
            cached = [layer(x) for layer in layers]
            assert len(qmm.CACHE) == 2 and qmm.CACHE.bytes == 2 * per_layer  # the third did not fit
            again = [layer(x) for layer in layers]
            # a LoRA patch stores a new (dense) weight: the layer's cached weight is not served
            layers[0].set_weight(layers[0].convert_weight(layers[0].weight) * 0.5)
            patched = layers[0](x)
        with qmm.active(qmm.MatmulSettings()):  # a call without the cache frees it
            assert len(qmm.CACHE) == 0
    for p, c, a in zip(plain, cached, again):
        assert torch.equal(p, c) and torch.equal(p, a)
    assert rel(patched.float(), plain[0].float() * 0.5 + b.to(torch.bfloat16).float() * 0.5) < 1e-2


def test_gguf_cache_follows_in_place_weight_changes():
    x, w, b = data(k=256)
    layer = quant_layer(w, b, "gguf")
    other = quant_layer(w * 3, b, "gguf")
    qmm.CACHE.clear()
    with torch.no_grad(), qmm.active(qmm.MatmulSettings(gguf_cache_bytes=1 << 30)):
        first = layer(x)
        layer.weight.copy_(other.weight)  # in place: same tensor, new version counter
        second = layer(x)
    assert torch.equal(second, other(x)) and not torch.equal(first, second)


# --------------------------------------------------------------------------- whole model
@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("qmm") / "small.safetensors"
    write_small_checkpoint(path)
    return loading.load_ltx2_model(str(path), quantize="int8")


def _run_with(patcher, settings):
    options = {"openltx_quant": settings}
    dm = patcher.model.diffusion_model
    original = dm.forward

    def forward(*args, **kwargs):
        kwargs["transformer_options"] = {**kwargs.get("transformer_options", {}), **options}
        return original(*args, **kwargs)

    dm.forward = forward
    try:
        return run(patcher)
    finally:
        del dm.forward


def test_int8_model_with_int_mm_stays_close_to_weight_only(int8_model):
    weight_only = _run_with(int8_model, qmm.MatmulSettings(int8="off"))
    w8a8 = _run_with(int8_model, qmm.MatmulSettings(int8="on"))
    assert torch.equal(weight_only, run(int8_model))  # CPU default: weight-only
    err = rel(w8a8, weight_only)
    assert 0 < err < 3e-2, err
