"""The host's attention choice, the speed nodes and batched guidance passes, in the real host.

* ComfyUI's attention functions (0.3.75: basic, sub-quadratic, split, pytorch) called in the
  ``skip_reshape`` layout with the transformer's masks equal the written-out attention
  (fp32, 1e-5 relative).
* ``auto`` follows ComfyUI: a node that replaces ``optimized_attention`` is used, ComfyUI's
  generic defaults are not; ``optimized_attention_override`` wraps whichever kernel runs, is
  called with core's arguments and never re-enters itself.  The MODEL's output is unchanged
  (fp32, 1e-5) in every case.
* The speed nodes set options on a clone only, with clear errors for wrong input.
* ``MultimodalGuider`` runs cond / uncond / STG / isolation as ONE model call of batch 4 when
  memory allows, and that equals running them one by one (fp32, 1e-5) — the batched call also
  shares the text K/V of the three passes with the positive prompt.
"""

from __future__ import annotations

import pytest
import torch

import comfy.ldm.modules.attention as comfy_attention
import comfy.nested_tensor
from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustomAdvanced

from openltx.host import attention as HA
from openltx.host import model_loading as loading
from openltx.host import speed
from openltx.ltx2 import attention_backends as AB
from openltx.ltx2.config import TransformerConfig
from openltx.ltx2.transformer import CompileOptions
from openltx.model_loaders import tiny_layouts as T
from openltx.model_loaders.quant import matmul as qmm
from openltx.samplers import guidance as G
from openltx.samplers.comfy_guider import MultimodalGuider

PREFIX = "model.diffusion_model."


def rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def qkv_masks(b=2, h=3, t=7, s=5, d=16):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, generator=g) for n in (t, s, s))
    text = torch.zeros(b, 1, 1, s)
    text[0, ..., -2:] = torch.finfo(torch.float32).min
    strength = torch.log(torch.rand(b, 1, t, s, generator=g).clamp(min=0.05))
    return q, k, v, {"none": None, "text": text, "strength": strength}


CORE_KERNELS = ["attention_basic", "attention_sub_quad", "attention_split", "attention_pytorch"]


@pytest.mark.parametrize("name", CORE_KERNELS)
@pytest.mark.parametrize("mask", ["none", "text", "strength"])
def test_comfy_kernels_in_the_pack_layout(name, mask):
    q, k, v, masks = qkv_masks()
    kernel = HA.ComfyKernel(getattr(comfy_attention, name), {})
    out = kernel(q, k, v, masks[mask])
    assert out.shape == (2, 7, 48)
    assert rel(out, AB.reference_attention(q, k, v, masks[mask])) < 1e-5


@pytest.mark.parametrize("skip_reshape", [True, False])
@pytest.mark.parametrize("skip_output_reshape", [True, False])
def test_pack_kernel_in_comfy_signature(skip_reshape, skip_output_reshape):
    q, k, v, masks = qkv_masks()
    fn = HA.comfy_signature(AB.get("sdpa"))
    args = (q, k, v) if skip_reshape else tuple(t.transpose(1, 2).flatten(2) for t in (q, k, v))
    keep = masks["text"] == 0  # ComfyUI's bool masks mean "attend"
    out = fn(*args, 3, mask=keep[:, 0], skip_reshape=skip_reshape, skip_output_reshape=skip_output_reshape)
    ref = AB.reference_attention(q, k, v, masks["text"])
    if skip_output_reshape:
        ref = ref.unflatten(-1, (3, 16)).transpose(1, 2)
    assert rel(out, ref) < 1e-5


def test_choice_from_option_environment_and_errors(monkeypatch):
    monkeypatch.delenv(HA.ENV_VAR, raising=False)
    assert HA.requested({}) == "auto"
    assert HA.kernel_for({}) is AB.get("auto")  # ComfyUI on CPU runs a generic default
    assert not HA.host_selected(HA.host_kernel())
    monkeypatch.setenv(HA.ENV_VAR, "sdpa_flash")
    assert HA.kernel_for({}) is AB.get("sdpa_flash")
    assert HA.kernel_for({HA.OPTION_KEY: "sdpa"}) is AB.get("sdpa")  # the node wins
    assert isinstance(HA.kernel_for({HA.OPTION_KEY: "comfy"}), HA.ComfyKernel)
    monkeypatch.setenv(HA.ENV_VAR, "flash3")
    with pytest.raises(ValueError, match="OPENLTX_ATTENTION='flash3' is not an attention backend"):
        HA.kernel_for({})


# --------------------------------------------------------------------------- through the MODEL
@pytest.fixture(scope="module")
def tiny():
    cfg = T.tiny_transformer_config("2.0")
    sd = {k.removeprefix(PREFIX): v for k, v in T.tiny_state_dict("2.0", ["transformer"], seed=4).items()}
    return loading.build_ltx2_model(cfg, sd, weight_dtype=torch.float32)


def forward(patcher, transformer_options=None, batch=2):
    g = torch.Generator().manual_seed(1)
    cc = patcher.model.model_config
    video, audio = torch.randn(batch, 128, 2, 2, 3, generator=g), torch.randn(batch, 8, 9, 16, generator=g)
    ctx_v, ctx_a = torch.randn(batch, 5, cc.video_context_width, generator=g), torch.randn(batch, 5, cc.audio_context_width, generator=g)
    with torch.no_grad():
        v, a = patcher.model.diffusion_model([video, audio], torch.tensor([0.7, 0.4][:batch]), context=ctx_v,
                                             audio_context=ctx_a, frame_rate=24.0,
                                             transformer_options=transformer_options or {})
    return torch.cat([v.flatten(), a.flatten()])


def test_a_node_that_replaces_comfys_attention_is_used(tiny, monkeypatch):
    calls = []

    def patched(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False, skip_output_reshape=False, **kw):
        calls.append((heads, skip_reshape))
        return comfy_attention.attention_pytorch(q, k, v, heads, mask=mask, skip_reshape=skip_reshape,
                                                 skip_output_reshape=skip_output_reshape, **kw)

    plain = forward(tiny)
    monkeypatch.setattr(comfy_attention, "optimized_attention", patched)
    assert HA.host_selected(patched)
    out = forward(tiny)
    assert rel(out, plain) < 1e-5
    cfg = tiny.model.model_config.transformer_config
    assert len(calls) == 6 * cfg.num_layers and all(s for _, s in calls)
    calls.clear()
    forward(tiny, {HA.OPTION_KEY: "sdpa"})  # an explicit pack backend overrules ComfyUI's
    assert not calls


@pytest.mark.parametrize("choice", ["auto", "comfy", "sdpa_efficient"])
def test_attention_override_wraps_the_chosen_kernel(tiny, choice):
    seen = []

    def override(func, *args, **kwargs):
        seen.append((func, args[3], kwargs.get("skip_reshape"), kwargs.get("_inside_attn_wrapper"),
                     kwargs.get("transformer_options") is not None))
        return func(*args, **kwargs)

    plain = forward(tiny)
    out = forward(tiny, {HA.OPTION_KEY: choice, HA.OVERRIDE_KEY: override})
    assert rel(out, plain) < 1e-5
    cfg = tiny.model.model_config.transformer_config
    assert len(seen) == 6 * cfg.num_layers  # once per attention: the override did not re-enter
    func, heads, skip_reshape, inside, has_options = seen[0]
    assert heads == cfg.num_attention_heads and skip_reshape and inside and has_options
    if choice == "comfy":
        assert func is HA.host_kernel()
    else:
        assert func.openltx_kernel is AB.get(choice)


def test_speed_nodes_set_options_on_a_clone(tiny, monkeypatch):
    from openltx.nodes.speed import OpenLTXAttention, OpenLTXCompile, OpenLTXQuantMatmul

    m = OpenLTXAttention.execute(tiny, "sdpa_cudnn").args[0]
    assert m is not tiny and m.model is tiny.model
    assert m.model_options["transformer_options"][HA.OPTION_KEY] == "sdpa_cudnn"
    assert HA.OPTION_KEY not in tiny.model_options.get("transformer_options", {})
    assert OpenLTXAttention.validate_inputs(backend="fa9") != True  # noqa: E712
    monkeypatch.setattr(AB, "_sage_kernel", lambda: None)
    with pytest.raises(ValueError, match="sageattention package"):
        OpenLTXAttention.execute(tiny, "sage")
    c = OpenLTXCompile.execute(tiny, "max-autotune-no-cudagraphs", False).args[0]
    assert c.model_options["transformer_options"][speed.COMPILE_KEY] == CompileOptions("max-autotune-no-cudagraphs", False)
    q = OpenLTXQuantMatmul.execute(tiny, "off", "auto", 1.5).args[0]
    assert q.model_options["transformer_options"][speed.QUANT_KEY] == qmm.MatmulSettings("off", "auto", None, 3 << 29)
    with pytest.raises(ValueError, match="LTX-2 MODEL"):
        OpenLTXCompile.execute(object(), "default", True)


def test_compile_option_from_environment(monkeypatch):
    monkeypatch.delenv(speed.COMPILE_ENV, raising=False)
    assert speed.compile_options({}) is None
    monkeypatch.setenv(speed.COMPILE_ENV, "1")
    assert speed.compile_options({}) == CompileOptions()
    assert speed.compile_options({speed.COMPILE_KEY: False}) is None  # a model can opt out
    with pytest.raises(TypeError, match="CompileOptions"):
        speed.compile_options({speed.COMPILE_KEY: "yes"})


# --------------------------------------------------------------------------- batched passes
FULL = (G.StreamGuidance(cfg=3.0, stg=1.0, stg_blocks=(1,), rescale=0.7, modality_scale=3.0),
        G.StreamGuidance(cfg=7.0, stg=1.0, stg_blocks=(0,), rescale=0.7, modality_scale=3.0))


def sample(patcher, steps=2):
    g = torch.Generator().manual_seed(2)
    cc = patcher.model.model_config
    ctx = lambda w: torch.randn(1, 6, w, generator=g)  # noqa: E731
    pos = [[ctx(cc.video_context_width), {"audio_context": ctx(cc.audio_context_width), "frame_rate": 24.0}]]
    neg = [[ctx(cc.video_context_width), {"audio_context": ctx(cc.audio_context_width), "frame_rate": 24.0}]]
    noise = (torch.randn(1, 128, 2, 2, 3, generator=g), torch.randn(1, 8, 9, 16, generator=g))

    class Noise:
        seed = 0

        def generate_noise(self, latent):
            return comfy.nested_tensor.NestedTensor(tuple(t.clone() for t in noise))

    guider = MultimodalGuider(patcher, *FULL)
    guider.set_conds(pos, neg)
    latent = {"samples": comfy.nested_tensor.NestedTensor((torch.zeros(1, 128, 2, 2, 3), torch.zeros(1, 8, 9, 16)))}
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    out = SamplerCustomAdvanced.execute(noise=Noise(), guider=guider, sampler=KSamplerSelect.execute(sampler_name="euler")[0],
                                        sigmas=sigmas, latent_image=latent)
    return torch.cat([t.flatten() for t in out[0]["samples"].unbind()])


def test_guidance_passes_run_as_one_batched_call(tiny, monkeypatch):
    import comfy.samplers

    dm = tiny.model.diffusion_model
    batches, shared = [], []
    original, original_rows = dm.forward, dm._shared_rows

    def counting(x, *args, **kwargs):
        batches.append(x[0].shape[0])
        return original(x, *args, **kwargs)

    def rows(inp, b):
        result = original_rows(inp, b)
        shared.append(None if result is None else result[1].tolist())
        return result

    monkeypatch.setattr(dm, "forward", counting)
    monkeypatch.setattr(dm, "_shared_rows", rows)
    batched = sample(tiny)
    assert batches == [4, 4]  # cond, uncond, STG, isolation: one call per step
    assert shared[0] is not None and len(set(shared[0])) == 2  # three passes share the positive prompt
    batches.clear()
    monkeypatch.setattr(comfy.samplers.model_management, "get_free_memory", lambda *a, **k: 1)
    one_by_one = sample(tiny)
    assert batches == [1] * 8
    assert rel(batched, one_by_one) < 1e-5
