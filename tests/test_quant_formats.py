"""Quantized weight formats: GGUF dequant exactness, fp8 math, official / ComfyUI fp8 layouts,
quantize-on-load, LoRA on every format, clear errors."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import comfy.lora
import comfy.model_patcher

from openltx.host import model_loading as loading
from openltx.model_loaders.quant import fp8 as fp8_mod
from openltx.model_loaders.quant import gguf_dequant as gd
from openltx.model_loaders.quant import gguf_format, kquants
from openltx.model_loaders.safetensors_file import CheckpointError

from quant_fixtures import PREFIX, rel, run, write_small_checkpoint

GT = gguf.GGMLQuantizationType
TYPES = ["F16", "BF16", "Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q4_K", "Q4_0"]


def _random_raw(name: str, rows: int, rng) -> np.ndarray:
    """Random raw blocks with finite fp16 scales (K-quants: gguf cannot quantize them)."""
    block, size = gd.BLOCK[int(GT[name])]
    n = rows * 512 // block
    raw = rng.integers(0, 256, size=(n, size), dtype=np.uint8)
    scales = rng.standard_normal((n, 2)).astype(np.float16).view(np.uint8)  # (n, 4) bytes
    if name == "Q6_K":
        raw[:, 208:210] = scales[:, :2]
    else:
        raw[:, 0:4] = scales
    return raw.reshape(rows, -1)


@pytest.mark.parametrize("name", TYPES)
def test_gguf_dequant_is_bit_exact(name):
    rng = np.random.default_rng(int(GT[name]))
    x = rng.standard_normal((6, 512)).astype(np.float32) * 0.05
    qt = GT[name]
    samples = []
    if name in kquants.QUANTIZERS:
        samples.append(kquants.QUANTIZERS[name](x))
        samples.append(_random_raw(name, 6, rng))
    else:
        q = gguf.quants.quantize(x, qt)
        samples.append(np.ascontiguousarray(q).view(np.uint8).reshape(6, -1))
        if name not in ("F16", "BF16"):
            samples.append(_random_raw(name, 6, rng))
    for raw in samples:
        ref = gguf.quants.dequantize(raw if name != "F16" else raw.view(np.float16), qt)
        ours = gd.dequantize(torch.from_numpy(raw.copy()), int(qt), (6, 512)).numpy()
        assert ours.shape == ref.shape
        assert np.array_equal(ours.view(np.uint32), ref.astype(np.float32).view(np.uint32)), name


def test_kquant_round_trip_error():
    x = np.random.default_rng(0).standard_normal((8, 1024)).astype(np.float32)
    for name, bound in (("Q6_K", 0.03), ("Q5_K", 0.06), ("Q4_K", 0.12)):
        back = gguf.quants.dequantize(kquants.QUANTIZERS[name](x), GT[name])
        err = np.linalg.norm(back - x) / np.linalg.norm(x)
        assert err < bound, (name, err)


def test_fp8_layer_equals_float64_math():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 96, generator=g)
    x = torch.randn(5, 96, generator=g, dtype=torch.float64)
    q, s = fp8_mod.quantize(w)
    assert q.dtype == torch.float8_e4m3fn and s.shape == ()
    # the stored weight is within fp8 rounding (half an ulp of e4m3: 2^-4 relative) of the original
    assert ((q.float() * s - w).abs() <= w.abs() * 2**-4 + s * 2**-9).all()
    exact = x @ (q.to(torch.float64) * s.double()).T
    ours = torch.nn.functional.linear(x.float(), fp8_mod.dequantize(q, s, torch.float32)).double()
    assert rel(ours, exact) < 1e-6


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("quant")
    path = d / "small.safetensors"
    sd = write_small_checkpoint(path)
    ref = run(loading.load_ltx2_model(str(path)))
    return d, path, sd, ref


def _official_fp8(src, dst, input_scale=True):
    out, meta = {}, None
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
        for k in f.keys():
            t = f.get_tensor(k)
            bare = k[len(PREFIX):]
            if bare.endswith(".weight") and t.ndim == 2 and not fp8_mod.keep_high_precision(bare[:-7]):
                q, s = fp8_mod.quantize(t)
                out[k], out[k[:-7] + ".weight_scale"] = q, s
                if input_scale:
                    out[k[:-7] + ".input_scale"] = torch.tensor(0.01)
            else:
                out[k] = t
    save_file(out, str(dst), metadata=meta)
    return out


def test_official_fp8_layout_loads_strictly_and_matches_dequantized_math(small):
    d, path, sd, _ = small
    fp8_path = d / "official-fp8.safetensors"
    tensors = _official_fp8(path, fp8_path)
    patcher = loading.load_ltx2_model(str(fp8_path))
    q_layer = patcher.model.diffusion_model.transformer_blocks[1].attn1.to_q
    assert q_layer.weight.dtype == torch.float8_e4m3fn and q_layer.input_scale is not None
    assert patcher.model.diffusion_model.transformer_blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    # reference: the same model with W = W_fp8 * weight_scale materialised in fp32
    dense = {}
    for k, t in tensors.items():
        if k.endswith((".weight_scale", ".input_scale")):
            continue
        if t.dtype == torch.float8_e4m3fn:
            t = t.float() * tensors[k[:-7] + ".weight_scale"]
        dense[k[len(PREFIX):]] = t.float()
    cfg = patcher.model.model_config.transformer_config
    ref = run(loading.build_ltx2_model(cfg, dense, weight_dtype=torch.float32))
    assert rel(run(patcher), ref) < 1e-5


def test_comfy_scaled_fp8_and_comfy_quant_variants_match_official(small):
    d, path, sd, _ = small
    tensors = _official_fp8(path, d / "o.safetensors", input_scale=False)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    ref = run(loading.load_ltx2_model(str(d / "o.safetensors")))
    # ComfyUI scaled_fp8: marker + scale_weight
    old = {k.replace(".weight_scale", ".scale_weight"): v for k, v in tensors.items()}
    old[PREFIX + "scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    save_file(old, str(d / "comfy-old.safetensors"), metadata=meta)
    assert rel(run(loading.load_ltx2_model(str(d / "comfy-old.safetensors"))), ref) < 1e-6
    # newer ComfyUI: _quantization_metadata header + per-layer comfy_quant tensors
    layers = {k[len(PREFIX):-13]: {"format": "float8_e4m3fn"} for k in tensors if k.endswith(".weight_scale")}
    new = dict(tensors)
    for layer in list(layers)[:3]:
        new[PREFIX + layer + ".comfy_quant"] = torch.tensor(list(json.dumps(layers[layer]).encode()), dtype=torch.uint8)
    meta2 = dict(meta, _quantization_metadata=json.dumps({"format_version": "1.0", "layers": layers}))
    save_file(new, str(d / "comfy-new.safetensors"), metadata=meta2)
    assert rel(run(loading.load_ltx2_model(str(d / "comfy-new.safetensors"))), ref) < 1e-6
    bad = dict(meta2, _quantization_metadata=json.dumps({"layers": {next(iter(layers)): {"format": "nvfp4"}}}))
    save_file(tensors, str(d / "comfy-bad.safetensors"), metadata=bad)
    with pytest.raises(CheckpointError, match="nvfp4"):
        loading.load_ltx2_model(str(d / "comfy-bad.safetensors"))


def test_missing_scale_keys_are_named(small):
    d, path, _, _ = small
    tensors = _official_fp8(path, d / "x.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    gone = PREFIX + "transformer_blocks.1.ff.net.2.weight_scale"
    del tensors[gone]
    save_file(tensors, str(d / "noscale.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError) as err:
        loading.load_ltx2_model(str(d / "noscale.safetensors"))
    msg = str(err.value)
    assert "noscale.safetensors" in msg and "transformer_blocks.1.ff.net.2.weight_scale" in msg and "missing scale" in msg


@pytest.mark.parametrize("kind,bound", [("fp8", 0.08), ("int8", 0.03)])
def test_quantize_on_load(small, kind, bound):
    _, path, _, ref = small
    option = {"fp8": "fp8 (per-tensor scaled)", "int8": "int8 (per-channel)"}[kind]
    patcher = loading.load_ltx2_model(str(path), quantize=option)
    dm = patcher.model.diffusion_model
    want = torch.float8_e4m3fn if kind == "fp8" else torch.int8
    assert dm.transformer_blocks[1].ff.net[0].proj.weight.dtype == want
    assert dm.transformer_blocks[0].ff.net[0].proj.weight.dtype == torch.bfloat16  # high-precision block
    assert dm.patchify_proj.weight.dtype == torch.bfloat16
    err = rel(run(patcher), ref)
    print(f"quantize-on-load {kind}: relative output error vs bf16 {err:.2e}")
    assert err < bound


def test_gguf_of_another_architecture_is_refused(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "flux.gguf"), "flux")
    w.add_tensor("x.weight", np.zeros((4, 32), np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    with pytest.raises(CheckpointError, match="architecture 'flux'"):
        loading.load_ltx2_model(str(tmp_path / "flux.gguf"))


def test_gguf_of_the_right_architecture_without_ltx2_tensors_is_refused(tmp_path):
    w = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "ltxv")
    w.add_tensor("x.weight", np.zeros((4, 32), np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    with pytest.raises(CheckpointError) as err:
        loading.load_ltx2_model(str(tmp_path / "m.gguf"))
    message = str(err.value)
    assert "m.gguf" in message and "no LTX-2 weights" in message and "'x.weight'" in message
    assert ".json" not in message  # no pointer to a file the user does not have


# ------------------------------------------------------------------------------ LoRA
def _lora(sd, rank=4, seed=5):
    """LoRA on two quantized and one high-precision Linear: keys diffusion_model.<m>.lora_{A,B}.weight."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m in ("transformer_blocks.1.attn1.to_q", "transformer_blocks.1.ff.net.2", "transformer_blocks.0.attn2.to_v"):
        o, i = sd[m + ".weight"].shape
        out[f"diffusion_model.{m}.lora_A.weight"] = torch.randn(rank, i, generator=g) * 0.1
        out[f"diffusion_model.{m}.lora_B.weight"] = torch.randn(o, rank, generator=g) * 0.1
    return out


def _fused_reference(patcher, lora, strength):
    """bf16-free reference: every layer's dequantized weight in fp32 with strength * B @ A added."""
    dm = patcher.model.diffusion_model
    sd = {}
    for name, mod in dm.named_modules():
        if hasattr(mod, "dequantized_weight") and mod.quant_kind != "dense":
            sd[name + ".weight"] = mod.dequantized_weight(torch.float32)
    for k, v in dm.state_dict().items():
        if k not in sd and not k.endswith(("weight_scale", "input_scale")):
            sd[k] = v.float()
    for k in lora:
        if k.endswith("lora_A.weight"):
            m = k[len("diffusion_model."):-len(".lora_A.weight")]
            sd[m + ".weight"] = sd[m + ".weight"] + strength * (lora[k.replace("lora_A", "lora_B")] @ lora[k])
    cfg = patcher.model.model_config.transformer_config
    return run(loading.build_ltx2_model(cfg, sd, weight_dtype=torch.float32))


def _apply_lora(patcher, lora, strength):
    key_map = comfy.lora.model_lora_keys_unet(patcher.model, {})
    loaded = comfy.lora.load_lora(lora, key_map)
    assert len(loaded) == 3
    patched = patcher.clone()
    assert len(patched.add_patches(loaded, strength)) == 3
    return patched


@pytest.fixture(scope="module")
def formats(small, repo_root):
    import subprocess, sys

    d, path, _, _ = small
    files = {"bf16": path}
    _official_fp8(path, d / "lora-fp8.safetensors")
    files["fp8"] = d / "lora-fp8.safetensors"
    for q in ("Q8_0", "Q4_K"):
        out = d / f"lora-{q}.gguf"
        subprocess.run([sys.executable, str(repo_root / "tools" / "convert.py"), str(path), "--to", "gguf", "--qtype", q,
                        "--out", str(out)], check=True, capture_output=True)
        files[q] = out
    return files


@pytest.mark.parametrize("fmt", ["bf16", "fp8", "int8", "Q8_0", "Q4_K"])
def test_lora_on_every_format_matches_fused(small, formats, fmt):
    _, path, sd, _ = small
    lora, strength = _lora(sd), 0.7
    file = formats["bf16" if fmt == "int8" else fmt]
    base = loading.load_ltx2_model(str(file), quantize="int8" if fmt == "int8" else "none")
    before = run(base)
    ref = _fused_reference(base, lora, strength)
    patched = _apply_lora(base, lora, strength)
    patched.patch_model()  # ModelPatcher's full path: convert_weight -> add -> set_weight
    ours = run(patched)
    layer = patched.model.diffusion_model.transformer_blocks[1].attn1.to_q
    # fp8 / int8 requantize under the layer's scale (one more rounding); GGUF keeps the sum dense
    # (the patched GGUF / bf16 weights are stored in bf16: one bf16 rounding of W + delta)
    bound = {"bf16": 5e-3, "fp8": 0.06, "int8": 0.01, "Q8_0": 5e-3, "Q4_K": 5e-3}[fmt]
    err = rel(ours, ref)
    print(f"LoRA on {fmt}: relative error vs fused fp32 reference {err:.2e} (layer now {layer.weight.dtype})")
    assert err < bound
    patched.unpatch_model()
    assert torch.equal(run(base), before)  # unpatching restores the stored weights exactly


@pytest.mark.parametrize("fmt", ["fp8", "Q4_K"])
def test_lora_through_weight_function_lowvram_path(small, formats, fmt):
    _, _, sd, _ = small
    lora, strength = _lora(sd), 0.7
    base = loading.load_ltx2_model(str(formats[fmt]))
    ref = _fused_reference(base, lora, strength)
    patched = _apply_lora(base, lora, strength)
    dm = patched.model.diffusion_model
    for key in patched.patches:
        layer = key[len("diffusion_model."):-len(".weight")]
        mod = dm.get_submodule(layer)
        mod.weight_function = [comfy.model_patcher.LowVramPatch(key, patched.patches, mod.convert_weight, mod.set_weight)]
    try:
        err = rel(run(patched), ref)
    finally:
        for key in patched.patches:
            dm.get_submodule(key[len("diffusion_model."):-len(".weight")]).weight_function = []
    assert err < (0.06 if fmt == "fp8" else 5e-3), err  # GGUF: the patched weight is kept in bf16


@pytest.mark.parametrize("fmt", ["fp8", "Q4_K"])
def test_lora_in_comfyui_low_vram_load(small, formats, fmt):
    """ComfyUI's own partial load (a memory budget below every layer) puts a ``LowVramPatch`` on
    each patched layer.  Its convention differs between hosts (0.3.75: stored weight in, current
    ComfyUI: dequantized weight in); the quantized layers apply its patches to the float weight,
    so the result equals the fused reference on both (before: 0.04 off on current ComfyUI)."""
    _, _, sd, _ = small
    lora, strength = _lora(sd), 0.7
    base = loading.load_ltx2_model(str(formats[fmt]))
    ref = _fused_reference(base, lora, strength)
    patched = _apply_lora(base, lora, strength)
    patched.load(torch.device("cpu"), lowvram_model_memory=1)
    try:
        dm = patched.model.diffusion_model
        per_call = [k for k in patched.patches
                    if dm.get_submodule(k[len("diffusion_model."):-len(".weight")]).weight_function]
        assert len(per_call) == 3, f"ComfyUI attached per-call patches to {per_call}"
        err = rel(run(patched), ref)
    finally:
        patched.unpatch_model()
    print(f"LoRA on {fmt} in ComfyUI's low-VRAM load: relative error {err:.2e}")
    assert err < 2e-3, err  # the dequantized weight + the exact LoRA delta (measured 4.8e-4)
    assert torch.equal(run(base), run(patched))  # unpatched: the stored weights are untouched
