"""The quantized LTX-2.5 transformer files: comfy-int8-convrot and nvfp4, on the CPU.

Tiny files in the published layouts (``tiny_layouts_25.write_tiny_transformer_25``): int8 ConvRot
layers marked per layer by ``.comfy_quant`` tensors (or ``_quantization_metadata``), F32 [N, 1]
row scales; NVFP4 layers as U8 [out, in / 2] + F8_E4M3 tiled block scales + F32 0-dim
``weight_scale_2`` / ``input_scale`` under ``_quantization_metadata``.  Each loads through the
checkpoint loader (layers dequantized per call, un-rotated for ConvRot) and must give the same
forward as the dense model holding the dequantized weights (fp32: the same products, so the
bound is float32 rounding).  A LoRA on a ConvRot layer patches the un-rotated weight.
"""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

import comfy.lora

from openltx.host import model_loading as loading
from openltx.model_loaders import tiny_layouts_25 as T25
from openltx.model_loaders.quant import int8_convrot, nvfp4

from quant_fixtures import PREFIX, rel, run


def _tensors(path) -> dict:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def dequantized(path) -> dict:
    """Bare transformer keys -> fp32 tensors, quantized layers dequantized (connectors left out)."""
    t = _tensors(path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    markers = {k: v for k, v in t.items() if k.endswith(".comfy_quant")}
    configs = int8_convrot.comfy_quant_configs(meta, markers)  # both marker styles, full layer names
    out = {}
    for key, value in t.items():
        if not key.startswith(PREFIX) or "embeddings_connector" in key or key.endswith(
                (".comfy_quant", ".weight_scale", ".weight_scale_2", ".input_scale")):  # fmt: skip
            continue
        layer = key[: -len(".weight")]
        if value.dtype == torch.int8:
            group = int8_convrot.layer_config(configs[layer]).group_size
            value = int8_convrot.dequantize(value, t[layer + ".weight_scale"], group)
        elif value.dtype == torch.uint8:
            logical = (value.shape[0], value.shape[1] * 2)  # the tiny nvfp4 layers are unpadded
            value = nvfp4.dequantize(value, t[layer + ".weight_scale"], t[layer + ".weight_scale_2"], logical)
        out[key[len(PREFIX):]] = value.float()
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("q25")
    out = {}
    for variant, name, kw in (("comfy-int8-convrot", "transformer_int8", {}),
                              ("comfy-int8-convrot", "header-markers.safetensors", {"header_markers": True}),
                              ("nvfp4", "transformer_nvfp4", {})):  # fmt: skip
        path = d / T25.FILE_NAMES.get(name, name)
        T25.write_tiny_transformer_25(path, variant=variant, seed=4, **kw)
        out[name] = path
    return out


def test_int8_convrot_file_layout(files):
    t = _tensors(files["transformer_int8"])
    q = PREFIX + "transformer_blocks.0.attn1.to_q"
    assert t[q + ".weight"].dtype == torch.int8 and t[q + ".weight_scale"].shape == (16, 1)
    assert int8_convrot.marker_json(t[q + ".comfy_quant"]) == {"format": "int8_tensorwise", "convrot": True,
                                                                "convrot_groupsize": 16}  # fmt: skip
    for kept in ("patchify_proj.weight", "adaln_single.linear.weight", "transformer_blocks.0.attn1.to_gate_logits.weight",
                 "keyframes_abs_pos_embedding"):  # fmt: skip
        assert t[PREFIX + kept].dtype == torch.float32, kept  # stays high precision, as published
    assert t[PREFIX + "video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q.weight"].dtype == torch.int8


@pytest.mark.parametrize("name", ["transformer_int8", "header-markers.safetensors", "transformer_nvfp4"])
def test_quantized_25_equals_the_dequantized_dense_model(files, name):
    patcher = loading.load_ltx2_model(str(files[name]))
    dm = patcher.model.diffusion_model
    kinds = {m.quant_kind for m in dm.modules() if hasattr(m, "quant_kind")}
    expected = "nvfp4" if "nvfp4" in name else "int8_convrot"
    assert expected in kinds, kinds
    cfg = patcher.model.model_config.transformer_config
    assert cfg.use_keyframes_abs_pos_embedding and not cfg.ff_bias
    ref = run(loading.build_ltx2_model(cfg, dequantized(files[name]), weight_dtype=torch.float32))
    err = rel(run(patcher), ref)
    print(f"{name}: forward vs the dense dequantized model, fp32 relative error {err:.2e}")
    assert err < 1e-5


def test_convrot_layer_dequantizes_like_comfy_kitchen_definition(files):
    """The layer's weight is the un-rotated one: rot(x) @ (q s)^T == x @ W^T."""
    patcher = loading.load_ltx2_model(str(files["transformer_int8"]))
    layer = patcher.model.diffusion_model.transformer_blocks[0].ff.net[0].proj
    assert layer.quant_kind == "int8_convrot" and layer.convrot_group == 16 and layer.bias is None
    x = torch.randn(3, 16, generator=torch.Generator().manual_seed(0))
    direct = int8_convrot.linear(x, layer.weight, layer.weight_scale, layer.convrot_group)
    torch.testing.assert_close(layer(x), direct, rtol=1e-5, atol=1e-6)


def test_lora_on_a_convrot_layer_patches_the_unrotated_weight(files):
    patcher = loading.load_ltx2_model(str(files["transformer_int8"]))
    dm = patcher.model.diffusion_model
    layer_name = "transformer_blocks.1.attn1.to_q"
    layer = dm.get_submodule(layer_name)
    stored = layer.weight.detach().clone()
    before = layer.dequantized_weight(torch.float32)
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(2, 16, generator=g) * 0.3, torch.randn(16, 2, generator=g) * 0.3
    lora = {f"diffusion_model.{layer_name}.lora_A.weight": a, f"diffusion_model.{layer_name}.lora_B.weight": b}
    loaded = comfy.lora.load_lora(lora, comfy.lora.model_lora_keys_unet(patcher.model, {}))
    patched = patcher.clone()
    assert len(patched.add_patches(loaded, 0.8)) == 1
    patched.patch_model()
    after = layer.dequantized_weight(torch.float32)
    want = before + 0.8 * (b @ a)
    # requantized under the stored row scales in the rotated space: there each entry is within half
    # a step of the patched value (or clamped at +-127 steps)
    g_size = layer.convrot_group
    rot_after, rot_want = int8_convrot.rotate(after, g_size), int8_convrot.rotate(want, g_size)
    s = layer.weight_scale.reshape(-1, 1)
    inside = rot_want.abs() < 127 * s
    err = ((rot_after - rot_want).abs() / s)[inside].max().item()
    print(f"LoRA on ConvRot: max |rot(patched) - rot(W + 0.8 BA)| = {err:.3f} steps ({int((~inside).sum())} clamped)")
    assert layer.weight.dtype == torch.int8 and err <= 0.5 + 1e-4
    assert (after - before).abs().max().item() > 5 * s.max().item()  # the patch landed
    patched.unpatch_model()
    assert torch.equal(layer.weight, stored)  # unpatching restores the stored int8 weight exactly


def test_nvfp4_layer_with_wrong_storage_is_named(files, tmp_path):
    from safetensors.torch import save_file

    t = _tensors(files["transformer_nvfp4"])
    with safe_open(str(files["transformer_nvfp4"]), "pt") as f:
        meta = dict(f.metadata())
    key = PREFIX + "transformer_blocks.0.attn1.to_q.weight"
    t[key] = t[key][:, :4].contiguous()
    save_file(t, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match=r"to_q\.weight.*'nvfp4'.*16 x 16"):
        loading.load_ltx2_model(str(tmp_path / "bad.safetensors"))
