"""LTX-2 LoRAs on our MODEL: ComfyUI's core LoraLoaderModelOnly and OpenLTX LoRA Loader give
the weights ltx-core's ``fuse_loras`` rule gives (``W + Σ strength·B@A``, no alpha), on the
tiny transformer's random weights; IC-LoRA metadata; clear errors for foreign LoRAs.
"""

from __future__ import annotations

import pytest
import torch

import ltx_core.loader  # noqa: F401  (before ltx_core.quantization)
from ltx_core.loader.fuse_loras import _prepare_deltas, apply_loras
from ltx_core.loader.primitives import LoraStateDictWithStrength, StateDict

import comfy.model_management as mm
import folder_paths
import nodes as comfy_nodes

from openltx.host import model_loading as loading
from openltx.host import lora as L
from openltx.model_loaders import lora_file
from openltx.nodes.conditioning import OpenLTXLoraLoader
from test_comfy_model import Setup, assert_close, tiny_transformer

PREFIX = "diffusion_model."


@pytest.fixture(scope="module")
def setup() -> Setup:
    return Setup("2.0")


@pytest.fixture
def loras(tmp_path, monkeypatch, setup):
    """A 'loras' folder with two LoRAs (one an IC-LoRA with a downscale factor), one with
    alpha keys, and a LoRA of another model."""
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "loras", ([str(tmp_path)], {".safetensors"}))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    _, sd = tiny_transformer("2.0")
    written = {
        "a.safetensors": lora_file.write_tiny_lora(tmp_path / "a.safetensors", sd, rank=2, seed=1),
        "ic.safetensors": lora_file.write_tiny_lora(tmp_path / "ic.safetensors", sd, rank=3, seed=2, downscale_factor=2,
                                            layers=[k[:-7] for k in sd if k.endswith("ff.net.2.weight")]),
        "alpha.safetensors": lora_file.write_tiny_lora(tmp_path / "alpha.safetensors", sd, rank=2, seed=3, alpha=8.0),
    }
    from safetensors.torch import save_file

    save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(2, 4)}, str(tmp_path / "sd15.safetensors"))
    wrong = {k: v for k, v in written["a.safetensors"].items()}
    first = next(k for k in wrong if k.endswith(L.A_SUFFIX))
    wrong[first] = torch.zeros(2, wrong[first].shape[1] + 1)
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    return written


def ltx_core_fused(base: dict[str, torch.Tensor], loras: list[tuple[dict, float]], dtype=torch.float32):
    """ltx-core's fuse: per weight, ``W + Σ strength·(B @ A)`` from ``_prepare_deltas`` (LoRA keys
    without the ``diffusion_model.`` prefix, as its ComfyUI-format sd_ops leave them)."""
    lsds = [LoraStateDictWithStrength(StateDict({k.removeprefix(PREFIX): v for k, v in sd.items() if not k.endswith(".alpha")},
                                                torch.device("cpu"), 0, {torch.float32}), s) for sd, s in loras]  # fmt: skip
    out = {}
    for key, w in base.items():
        delta = _prepare_deltas(lsds, key, dtype, torch.device("cpu")) if key.endswith(".weight") else None
        out[key] = w.to(dtype) if delta is None else w.to(dtype) + delta
    return out


def patched_weights(patcher) -> dict[str, torch.Tensor]:
    mm.load_models_gpu([patcher], force_full_load=True)
    return {k.removeprefix(PREFIX): v.detach().clone() for k, v in patcher.model.state_dict().items() if k.startswith(PREFIX)}


def velocities(setup, module):
    video, audio = setup.latents(batch=1)
    ctx_v, ctx_a = setup.contexts(batch=1)
    with torch.no_grad():
        return module.__class__.forward(module, [video, audio], torch.tensor([0.6]), context=ctx_v, audio_context=ctx_a)


def test_core_lora_loader_equals_ltx_core_fuse(setup, loras):
    _, base = tiny_transformer("2.0")
    node = comfy_nodes.LoraLoaderModelOnly()
    m1 = node.load_lora_model_only(setup.patcher, "a.safetensors", 0.8)[0]
    m2 = node.load_lora_model_only(m1, "ic.safetensors", -0.5)[0]
    fused = ltx_core_fused(base, [(loras["a.safetensors"], 0.8), (loras["ic.safetensors"], -0.5)])
    ours = patched_weights(m2)
    changed = [k for k in base if not torch.equal(fused[k], base[k])]
    assert len(changed) > 10
    for k in base:
        assert_close(ours[k], fused[k], k)
    # velocities of the patched MODEL == a transformer built from the fused weights
    ref = loading.build_ltx2_model(setup.cfg, fused, weight_dtype=torch.float32)
    out = velocities(setup, m2.model.diffusion_model)
    expected = velocities(setup, ref.model.diffusion_model)
    assert_close(out[0], expected[0], "video velocity with LoRAs")
    assert_close(out[1], expected[1], "audio velocity with LoRAs")
    m2.unpatch_model()
    restored = patched_weights(setup.patcher)
    assert all(torch.equal(restored[k], base[k]) for k in base), "the base MODEL kept the LoRA"


def test_bf16_weights_match_ltx_core_apply_loras(setup, loras):
    cfg, base = tiny_transformer("2.0")
    base16 = {k: v.to(torch.bfloat16) for k, v in base.items()}
    patcher = loading.build_ltx2_model(cfg, base16, weight_dtype=torch.bfloat16)
    ours = patched_weights(comfy_nodes.LoraLoaderModelOnly().load_lora_model_only(patcher, "a.safetensors", 1.0)[0])
    lsd = StateDict({k.removeprefix(PREFIX): v.to(torch.bfloat16) for k, v in loras["a.safetensors"].items()},
                    torch.device("cpu"), 0, {torch.bfloat16})
    ref = apply_loras(StateDict(base16, torch.device("cpu"), 0, {torch.bfloat16}), [LoraStateDictWithStrength(lsd, 1.0)])
    for k in base:
        # both round to bf16 (ComfyUI: fp32 delta, stochastic rounding; ltx-core: bf16 delta)
        diff = (ours[k].float() - ref.sd[k].float()).abs().max()
        assert diff <= 4 * torch.finfo(torch.bfloat16).eps * max(ref.sd[k].float().abs().max(), 1e-3), k


def test_openltx_lora_loader_follows_ltx_core_and_reads_the_downscale_factor(setup, loras):
    _, base = tiny_transformer("2.0")
    model, factor = OpenLTXLoraLoader.execute(setup.patcher, "ic.safetensors", 0.7)
    assert factor == 2
    fused = ltx_core_fused(base, [(loras["ic.safetensors"], 0.7)])
    ours = patched_weights(model)
    for k in base:
        assert_close(ours[k], fused[k], k)
    model.unpatch_model()
    assert OpenLTXLoraLoader.execute(setup.patcher, "a.safetensors", 1.0)[1] == 1
    # alpha keys: ltx-core ignores them (our loader too), ComfyUI's core loader scales by alpha/rank
    ours = patched_weights(OpenLTXLoraLoader.execute(setup.patcher, "alpha.safetensors", 1.0)[0])
    fused = ltx_core_fused(base, [(loras["alpha.safetensors"], 1.0)])
    key = next(k[len(PREFIX):-len(L.A_SUFFIX)] for k in loras["alpha.safetensors"] if k.endswith(L.A_SUFFIX))
    assert_close(ours[key + ".weight"], fused[key + ".weight"], "alpha LoRA")
    setup.patcher.unpatch_model()
    core = patched_weights(comfy_nodes.LoraLoaderModelOnly().load_lora_model_only(setup.patcher, "alpha.safetensors", 1.0)[0])
    delta_core = core[key + ".weight"] - base[key + ".weight"]
    delta_ltx = fused[key + ".weight"] - base[key + ".weight"]
    torch.testing.assert_close(delta_core, delta_ltx * 4.0, rtol=1e-4, atol=1e-6)  # alpha 8 / rank 2
    setup.patcher.unpatch_model()


def test_foreign_loras_are_clear_errors(setup, loras):
    with pytest.raises(ValueError, match=r"sd15.safetensors: no LTX-2 LoRA weights"):
        OpenLTXLoraLoader.execute(setup.patcher, "sd15.safetensors", 1.0)
    with pytest.raises(ValueError, match=r"LoRA shapes do not fit the model"):
        OpenLTXLoraLoader.execute(setup.patcher, "wrong.safetensors", 1.0)
    bad = {PREFIX + "transformer_blocks.99.attn1.to_q" + s: torch.zeros(2, 2) for s in (L.A_SUFFIX, L.B_SUFFIX)}
    with pytest.raises(L.LoraError, match=r"not in this LTX-2 model.*transformer_blocks.99"):
        L.apply_lora(setup.patcher, bad, 1.0)
