"""comfy-int8-convrot: our torch dequantization equals comfy-kitchen 0.2.40's on the same bytes.

comfy-kitchen (ComfyUI's quantization library, the format's definition) quantizes random weights
with ``TensorWiseINT8Layout.quantize(..., convrot=True)`` and dequantizes them with its eager
backend; we dequantize its int8 bytes + scales and must get the same float32 weights (both
compute in float32: bound 1e-6 relative), and quantizing ourselves must give its bytes.
"""

from __future__ import annotations

import json

import pytest
import torch

from ltx25_oracle import rel_err, run_oracle
from openltx.model_loaders.quant import int8_convrot as icr


def test_hadamard_is_symmetric_orthogonal_and_its_own_inverse():
    for g in (4, 16, 64, 256):
        h = icr.hadamard(g, dtype=torch.float64)
        torch.testing.assert_close(h, h.T)
        torch.testing.assert_close(h @ h, torch.eye(g, dtype=torch.float64))
    x = torch.randn(3, 512)
    torch.testing.assert_close(icr.rotate(icr.rotate(x, 256), 256), x, rtol=0, atol=1e-5)
    for bad in (0, 2, 8, 32, 128, 100):
        with pytest.raises(ValueError, match="power of 4"):
            icr.hadamard(bad)
    with pytest.raises(ValueError, match="does not divide"):
        icr.rotate(torch.randn(2, 100), 64)


def test_layer_configs_from_markers_and_header():
    markers = {"model.diffusion_model.blocks.0.attn.to_q.comfy_quant": icr.encode_marker(icr.convrot_config(64))}
    meta = {"_quantization_metadata": json.dumps({"format_version": "1.0", "layers": {
        "model.diffusion_model.blocks.0.ff.net.2": {"format": "int8_tensorwise"},
        "model.diffusion_model.blocks.0.attn.to_k": {"format": "int8_tensorwise",
                                                     "params": {"convrot": True, "convrot_groupsize": 16}},
        "model.diffusion_model.blocks.0.attn.to_v": "float8_e4m3fn"}})}
    confs = icr.comfy_quant_configs(meta, markers, prefix="model.diffusion_model.")
    assert icr.layer_config(confs["blocks.0.attn.to_q"]) == icr.Int8LayerConfig(64)
    assert icr.layer_config(confs["blocks.0.attn.to_k"]) == icr.Int8LayerConfig(16)
    assert icr.layer_config(confs["blocks.0.ff.net.2"]) == icr.Int8LayerConfig(0)
    assert icr.layer_config(confs["blocks.0.attn.to_v"]) is None
    assert bytes(icr.encode_marker(icr.convrot_config()).tolist()) == (
        b'{"format": "int8_tensorwise", "convrot": true, "convrot_groupsize": 256}')
    with pytest.raises(ValueError, match="power of 4"):
        icr.layer_config({"format": "int8_tensorwise", "convrot": True, "convrot_groupsize": 100})
    bad = {"model.diffusion_model.blocks.0.ff.net.2.comfy_quant": icr.encode_marker(icr.convrot_config())}
    with pytest.raises(ValueError, match="contradicts"):
        icr.comfy_quant_configs(meta, bad, prefix="model.diffusion_model.")


def test_dequantize_equals_comfy_kitchen(tmp_path):
    g = torch.Generator().manual_seed(0)
    weights = {
        "w256": torch.randn(96, 512, generator=g) * 0.05,
        "w64": torch.randn(40, 192, generator=g),
        "w16": torch.randn(8, 48, generator=g) * 3,
        "bf16": (torch.randn(64, 256, generator=g) * 0.02).bfloat16(),
    }
    groups = {"w256": 256, "w64": 64, "w16": 16, "bf16": 256}
    out = run_oracle("comfy_kitchen", """
        from comfy_kitchen.tensor.int8 import TensorWiseINT8Layout
        from comfy_kitchen.backends.eager import quantization as eq
        for name, w in inp['weights'].items():
            gs = inp['groups'][name]
            q, params = TensorWiseINT8Layout.quantize(w, per_channel=True, convrot=True, convrot_groupsize=gs)
            out[name] = {'q': q, 'scale': params.scale,
                         'deq': eq.dequantize_int8_convrot_weight(q, params.scale, gs),
                         'layout': TensorWiseINT8Layout.dequantize(q, params).float()}
            x = torch.randn(5, w.shape[1], generator=torch.Generator().manual_seed(1))
            out[name]['x'] = x
            out[name]['y'] = eq.int8_linear(x, q, params.scale, None, torch.float32, convrot=True,
                                           convrot_groupsize=gs)
    """, {"weights": weights, "groups": groups}, tmp_path)
    for name, w in weights.items():
        ref = out[name]
        assert ref["q"].dtype == torch.int8 and tuple(ref["scale"].shape) == (w.shape[0], 1)
        ours = icr.dequantize(ref["q"], ref["scale"], groups[name], torch.float32)
        assert rel_err(ours, ref["deq"]) <= 1e-6, name
        assert rel_err(ours, ref["layout"]) <= 1e-2 if w.dtype == torch.bfloat16 else rel_err(ours, ref["layout"]) <= 1e-6
        # the dequantized weight is the original up to int8 rounding
        assert rel_err(ours, w.float()) < 0.02, name
        # our quantizer writes the same bytes and scales as comfy-kitchen's
        q, s = icr.quantize(w, groups[name])
        assert (q.int() - ref["q"].int()).abs().max() <= (1 if w.dtype == torch.bfloat16 else 0), name
        torch.testing.assert_close(s, ref["scale"].float(), rtol=1e-6 if w.dtype == torch.float32 else 1e-2, atol=0)
        # running without un-rotating: same result as the dequantized weight, and close to
        # comfy-kitchen's int8 x int8 kernel (which also quantizes the activation: ~1 % apart)
        y = icr.linear(ref["x"], ref["q"], ref["scale"], groups[name])
        assert rel_err(y, ref["x"] @ ours.T) <= 1e-5, name
        assert rel_err(y, ref["y"]) < 0.05, name


def test_plain_int8_and_scale_shapes():
    w = torch.randn(6, 32)
    q, s = icr.quantize(w, 0)
    for scale in (s, s.flatten()):
        torch.testing.assert_close(icr.dequantize(q, scale, 0), q.float() * s)
    torch.testing.assert_close(icr.dequantize(q, torch.tensor(0.5)), q.float() * 0.5)
    with pytest.raises(ValueError, match="expected 1 or 6"):
        icr.dequantize(q, torch.ones(3))
    with pytest.raises(ValueError, match="int8"):
        icr.dequantize(w, s)


def test_format_detection_accepts_int8_only_when_the_caller_dequantizes_it(tmp_path):
    from safetensors.torch import save_file

    from openltx.model_loaders.quant.formats import comfy_quant_layers, detect_format
    from openltx.model_loaders.safetensors_file import CheckpointError

    prefix = "model.diffusion_model."
    markers = {prefix + "blocks.0.ff.net.2.comfy_quant": icr.encode_marker(icr.convrot_config())}
    q, s = icr.quantize(torch.randn(8, 16), 16)
    file = tmp_path / "x.safetensors"
    save_file({prefix + "blocks.0.ff.net.2.weight": q, prefix + "blocks.0.ff.net.2.weight_scale": s, **markers}, file)
    assert detect_format(file) == "comfy_quant"
    with pytest.raises(CheckpointError, match="int8_tensorwise"):
        comfy_quant_layers("x.safetensors", {}, markers, prefix)
    assert comfy_quant_layers("x.safetensors", {}, markers, prefix, accept_int8=True) == {
        "blocks.0.ff.net.2": icr.convrot_config()}
    odd = {prefix + "blocks.0.ff.net.2.comfy_quant": icr.encode_marker(icr.convrot_config(32))}
    with pytest.raises(CheckpointError, match="power of 4"):
        comfy_quant_layers("x.safetensors", {}, odd, prefix, accept_int8=True)
