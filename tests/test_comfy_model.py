"""The ComfyUI MODEL glue (host/model.py) adds no error to the transformer.

The MODEL is built with ``build_ltx2_model`` from the tiny transformer of
``model_loaders.tiny_layouts`` (header and random weights, the released models' latent widths)
and from a tiny official-layout checkpoint written by ``tools/make_tiny_checkpoint.py``; its
outputs are compared with a direct ``LTXAVTransformer`` call on the same weights and inputs
(float32, exact up to summation order).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import comfy.model_patcher
import comfy.utils

from openltx.ltx2 import positions as P
from openltx.ltx2.config import TransformerConfig
from openltx.ltx2.inputs import StreamInput
from openltx.ltx2.transformer import LTXAVTransformer
from openltx.host import model_loading as loading
from openltx.host import model as cm
from openltx.model_loaders import tiny_layouts as T

TOL = 1e-5
PREFIX = "model.diffusion_model."


def tiny_transformer(version: str = "2.0", seed: int = 0) -> tuple[TransformerConfig, dict[str, torch.Tensor]]:
    """The tiny checkpoint's transformer: its config and weights under bare keys."""
    cfg = T.tiny_transformer_config(version)
    sd = T.tiny_state_dict(version, ["transformer"], seed=seed)
    return cfg, {k.removeprefix(PREFIX): v for k, v in sd.items()}


class Setup:
    """A MODEL (ModelPatcher) and a plain transformer holding the same random weights."""

    def __init__(self, version: str = "2.0") -> None:
        self.cfg, sd = tiny_transformer(version)
        self.patcher = loading.build_ltx2_model(self.cfg, sd, weight_dtype=torch.float32)
        self.ref = LTXAVTransformer(self.cfg)
        self.ref.load_state_dict(sd, strict=True)
        self.ref.eval()
        cc = self.patcher.model.model_config
        self.cv, self.ca = cc.video_context_width, cc.audio_context_width

    def latents(self, batch=2, frames=3, height=2, width=3, audio_steps=18, seed=1):
        g = torch.Generator().manual_seed(seed)
        video = torch.randn(batch, 128, frames, height, width, generator=g)
        audio = torch.randn(batch, 8, audio_steps, 16, generator=g)
        return video, audio

    def contexts(self, batch=2, length=5, seed=2):
        g = torch.Generator().manual_seed(seed)
        return torch.randn(batch, length, self.cv, generator=g), torch.randn(batch, length, self.ca, generator=g)

    def direct(self, video, audio, sigma, ctx_v, ctx_a, fps, video_token_sigma=None):
        """Velocities from the plain transformer, unpatchified to latent shapes."""
        b = sigma.shape[0]
        v_in = a_in = None
        if video is not None:
            f, h, w = video.shape[2:]
            v_in = StreamInput(
                latent=video.flatten(2).transpose(1, 2),  # (B, F*H*W, C), f h w order
                timesteps=sigma[:, None] if video_token_sigma is None else video_token_sigma,
                sigma=sigma,
                positions=P.video_positions(b, f, h, w, fps),
                context=ctx_v,
            )
        if audio is not None:
            a_in = StreamInput(
                latent=audio.permute(0, 2, 1, 3).flatten(2),  # (B, T, 8*16)
                timesteps=sigma[:, None],
                sigma=sigma,
                positions=P.audio_positions(b, audio.shape[2]),
                context=ctx_a,
            )
        with torch.no_grad():
            out_v, out_a = self.ref(v_in, a_in)
        if out_v is not None:
            out_v = out_v.transpose(1, 2).reshape(video.shape)
        if out_a is not None:
            out_a = out_a.reshape(audio.shape[0], audio.shape[2], 8, 16).permute(0, 2, 1, 3)
        return out_v, out_a


def assert_close(ours, ref, label):
    assert ours.shape == ref.shape, f"{label}: {tuple(ours.shape)} vs {tuple(ref.shape)}"
    assert torch.isfinite(ours).all(), label
    rel = ((ours - ref).norm() / ref.norm()).item()
    assert rel <= TOL, f"{label}: relative error {rel:.3g}"


@pytest.fixture(scope="module")
def setup() -> Setup:
    return Setup("2.0")


# --- the adapter module ----------------------------------------------------------------

def test_diffusion_model_matches_transformer(setup):
    video, audio = setup.latents()
    ctx_v, ctx_a = setup.contexts()
    sigma = torch.tensor([0.8, 0.35])
    dm = setup.patcher.model.diffusion_model
    with torch.no_grad():
        out = dm([video, audio], sigma, context=ctx_v, audio_context=ctx_a, frame_rate=25.0)
    assert isinstance(out, list) and len(out) == 2
    ref_v, ref_a = setup.direct(video, audio, sigma, ctx_v, ctx_a, fps=25.0)
    assert_close(out[0], ref_v, "video velocity")
    assert_close(out[1], ref_a, "audio velocity")


def test_diffusion_model_is_the_transformer_with_bare_keys(setup):
    dm = setup.patcher.model.diffusion_model
    assert isinstance(dm, LTXAVTransformer)
    assert set(dm.state_dict()) == set(setup.ref.state_dict())
    assert dm.dtype == torch.float32
    assert setup.patcher.model.get_dtype() == torch.float32


def test_frame_rate_and_audio_context_reach_the_model(setup):
    video, audio = setup.latents(batch=1)
    ctx_v, ctx_a = setup.contexts(batch=1)
    sigma = torch.tensor([0.6])
    dm = setup.patcher.model.diffusion_model
    with torch.no_grad():
        base = dm([video, audio], sigma, context=ctx_v, audio_context=ctx_a, frame_rate=24.0)
        slow = dm([video, audio], sigma, context=ctx_v, audio_context=ctx_a, frame_rate=12.0)
        default = dm([video, audio], sigma, context=ctx_v, audio_context=ctx_a)
        no_audio_ctx = dm([video, audio], sigma, context=ctx_v)
    assert not torch.allclose(base[0], slow[0]), "frame_rate has no effect on the video stream"
    torch.testing.assert_close(base[0], default[0])  # 24 fps is the default
    assert not torch.allclose(base[1], no_audio_ctx[1]), "audio_context is ignored"
    ref_v, ref_a = setup.direct(video, audio, sigma, ctx_v, ctx_v, fps=24.0)
    assert_close(no_audio_ctx[1], ref_a, "audio with the video context")


def test_video_only_and_audio_only_latents(setup):
    video, audio = setup.latents()
    ctx_v, ctx_a = setup.contexts()
    sigma = torch.tensor([0.5, 0.9])
    dm = setup.patcher.model.diffusion_model
    with torch.no_grad():
        out_v = dm(video, sigma, context=ctx_v, frame_rate=24.0)
        out_a = dm(audio, sigma, context=ctx_v, audio_context=ctx_a)
    assert torch.is_tensor(out_v) and torch.is_tensor(out_a)
    assert_close(out_v, setup.direct(video, None, sigma, ctx_v, None, 24.0)[0], "video-only")
    assert_close(out_a, setup.direct(None, audio, sigma, None, ctx_a, 24.0)[1], "audio-only")



def test_one_element_list_returns_a_tensor(setup):
    # Current ComfyUI (0.20) unpacks a single-shape latent into [tensor] and repacks only lists of
    # two or more: a one-element list must come back as a tensor (0.3.75 passes the tensor itself).
    video, _ = setup.latents()
    ctx_v, _ = setup.contexts()
    sigma = torch.tensor([0.5, 0.9])
    with torch.no_grad():
        out = setup.patcher.model.diffusion_model([video], sigma, context=ctx_v, frame_rate=24.0)
    assert torch.is_tensor(out), type(out)
    assert_close(out, setup.direct(video, None, sigma, ctx_v, None, 24.0)[0], "video-only [tensor]")


def test_apply_model_video_only_latent_with_its_shape(setup):
    # What CFGGuider hands the model for a plain (not nested) latent: latent_shapes = [shape].
    model = setup.patcher.model
    video, _ = setup.latents()
    ctx_v, _ = setup.contexts()
    sigma = torch.tensor([0.8, 0.35])
    kwargs = _model_conds(model, ctx_v, video, [video.shape], frame_rate=24.0)
    with torch.no_grad():
        x0 = model.apply_model(video, sigma, c_crossattn=kwargs.pop("c_crossattn"), **kwargs)
    ref_v, _ = setup.direct(video, None, sigma, ctx_v, None, 24.0)
    assert_close(x0, video - sigma.view(-1, 1, 1, 1, 1) * ref_v, "x0 (video only)")

def test_token_denoise_mask_hook(setup):
    video, audio = setup.latents(batch=1)
    ctx_v, ctx_a = setup.contexts(batch=1)
    sigma = torch.tensor([0.7])
    mask_v = torch.ones(1, 1, *video.shape[2:])
    mask_v[:, :, 0] = 0.0  # first latent frame is a clean conditioning frame
    packed, _ = comfy.utils.pack_latents([mask_v.expand_as(video), torch.ones_like(audio)])
    dm = setup.patcher.model.diffusion_model
    with torch.no_grad():
        out = dm([video, audio], sigma, context=ctx_v, audio_context=ctx_a, openltx_denoise_mask=packed)
        plain = dm([video, audio], sigma, context=ctx_v, audio_context=ctx_a)
    token_sigma = (mask_v.flatten(2)[:, 0] * sigma[:, None])  # (1, F*H*W)
    ref_v, ref_a = setup.direct(video, audio, sigma, ctx_v, ctx_a, 24.0, video_token_sigma=token_sigma)
    assert_close(out[0], ref_v, "masked video")
    assert_close(out[1], ref_a, "audio next to masked video")
    assert not torch.allclose(out[0], plain[0])


# --- through BaseModel.apply_model (packing, conds, x0) --------------------------------

def _model_conds(model, cross_attn, noise, latent_shapes, **cond):
    conds = model.extra_conds(cross_attn=cross_attn, noise=noise, device=noise.device,
                              latent_shapes=latent_shapes, **cond)
    return {k: v.process_cond(batch_size=noise.shape[0]).cond for k, v in conds.items()}


def test_apply_model_returns_x0_of_both_streams(setup):
    model = setup.patcher.model
    video, audio = setup.latents()
    ctx_v, ctx_a = setup.contexts()
    sigma = torch.tensor([0.8, 0.35])
    packed, shapes = comfy.utils.pack_latents([video, audio])
    kwargs = _model_conds(model, ctx_v, packed, shapes, audio_context=ctx_a, frame_rate=24.0)
    with torch.no_grad():
        x0 = model.apply_model(packed, sigma, c_crossattn=kwargs.pop("c_crossattn"), **kwargs)
    assert x0.shape == packed.shape
    ref_v, ref_a = setup.direct(video, audio, sigma, ctx_v, ctx_a, 24.0)
    ref_x0, _ = comfy.utils.pack_latents([video - sigma.view(-1, 1, 1, 1, 1) * ref_v,
                                          audio - sigma.view(-1, 1, 1, 1) * ref_a])
    assert_close(x0, ref_x0, "x0 (packed)")


def test_context_mask_survives_the_dtype_cast_of_apply_model(setup):
    model = setup.patcher.model
    video, audio = setup.latents(batch=1)
    ctx_v, ctx_a = setup.contexts(batch=1, length=5)
    sigma = torch.tensor([0.5])
    packed, shapes = comfy.utils.pack_latents([video, audio])
    mask = torch.tensor([[True, True, True, False, False]])  # a bool mask: cast to 0./1. on the way

    def x0(cv, ca, **cond):
        kwargs = _model_conds(model, cv, packed, shapes, audio_context=ca, **cond)
        with torch.no_grad():
            return model.apply_model(packed, sigma, c_crossattn=kwargs.pop("c_crossattn"), **kwargs)

    masked = x0(ctx_v, ctx_a, context_mask=mask)
    truncated = x0(ctx_v[:, :3], ctx_a[:, :3])
    assert_close(masked, truncated, "masked context vs truncated context")
    assert not torch.allclose(masked, x0(ctx_v, ctx_a))


def test_model_sampling_is_rectified_flow_with_shift_2_05(setup):
    ms = setup.patcher.get_model_object("model_sampling")
    assert ms.shift == pytest.approx(2.05)
    assert float(ms.timestep(torch.tensor(0.3))) == pytest.approx(0.3)  # σ passes through
    s = 0.5
    expected = torch.exp(torch.tensor(2.05)) / (torch.exp(torch.tensor(2.05)) + 1 / s - 1)
    assert float(ms.sigma(torch.tensor(s))) == pytest.approx(float(expected))
    assert setup.patcher.model.latent_format.latent_rgb_factors is None


def test_missing_audio_context_with_mismatched_widths_is_a_clear_error():
    s = Setup("2.3")  # caption projection in the text encoder: video 16 wide, audio 8 wide
    video, audio = s.latents(batch=1)
    packed, shapes = comfy.utils.pack_latents([video, audio])
    with pytest.raises(ValueError, match="audio_context"):
        s.patcher.model.extra_conds(cross_attn=torch.randn(1, 5, s.cv), noise=packed, device="cpu",
                                    latent_shapes=shapes)
    # video-only latents need no audio context
    out = s.patcher.model.extra_conds(cross_attn=torch.randn(1, 5, s.cv), noise=video, device="cpu",
                                      latent_shapes=[video.shape])
    assert "c_crossattn" in out and "audio_context" not in out
    assert out["frame_rate"].cond == cm.DEFAULT_FRAME_RATE


def test_memory_estimate_counts_tokens_of_the_packed_latent(setup):
    model = setup.patcher.model
    video, audio = setup.latents(batch=1)
    packed, _ = comfy.utils.pack_latents([video, audio])
    tokens = video.shape[2] * video.shape[3] * video.shape[4] + audio.shape[2]
    assert model.memory_required(packed.shape) == pytest.approx(model.memory_required([1, 128, tokens]))


# --- strict loading ----------------------------------------------------------------------

def test_strict_load_names_missing_unexpected_and_misshaped_keys():
    cfg, sd = tiny_transformer()
    missing = "transformer_blocks.1.attn1.to_q.weight"
    broken = dict(sd)
    del broken[missing]
    broken["transformer_blocks.1.not_a_layer.weight"] = torch.zeros(3)
    broken["proj_out.bias"] = torch.zeros(7)
    with pytest.raises(cm.ModelLoadError) as err:
        loading.build_ltx2_model(cfg, broken, weight_dtype=torch.float32, source="tiny.safetensors")
    msg = str(err.value)
    assert missing in msg and "transformer_blocks.1.not_a_layer.weight" in msg and "proj_out.bias" in msg
    assert "tiny.safetensors" in msg


def test_bf16_weights_are_cast_on_the_fly_on_cpu():
    cfg, sd = tiny_transformer()
    patcher = loading.build_ltx2_model(cfg, sd, weight_dtype=torch.bfloat16)
    model = patcher.model
    assert model.get_dtype() == torch.bfloat16
    assert model.manual_cast_dtype == torch.float32  # CPU computes in fp32
    assert model.diffusion_model.transformer_blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    video = torch.randn(1, 128, 2, 2, 2)
    with torch.no_grad():
        out = model.diffusion_model(video.float(), torch.tensor([0.5]), context=torch.randn(1, 4, 12))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_pick_weight_dtype_on_cpu():
    cpu = torch.device("cpu")
    assert loading.pick_weight_dtype("default", torch.float32, cpu) == torch.float32
    assert loading.pick_weight_dtype("default", torch.bfloat16, cpu) == torch.bfloat16
    assert loading.pick_weight_dtype("default", None, cpu) == torch.float32
    assert loading.pick_weight_dtype("fp16", torch.float32, cpu) == torch.float16
    with pytest.raises(ValueError, match="weight_dtype"):
        loading.pick_weight_dtype("int4", torch.float32, cpu)


# --- from a checkpoint file ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_checkpoint(repo_root, tmp_path_factory):
    tool = repo_root / "tools" / "make_tiny_checkpoint.py"
    if not tool.is_file():
        pytest.fail(f"{tool} is missing (it writes the tiny official-layout checkpoints)", pytrace=False)
    out = tmp_path_factory.mktemp("ckpt") / "ltx2-tiny.safetensors"
    proc = subprocess.run([sys.executable, str(tool), "--version", "2.0", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_load_ltx2_model_from_file_matches_transformer(tiny_checkpoint):
    from openltx.model_loaders import checkpoint

    patcher = loading.load_ltx2_model(str(tiny_checkpoint))
    assert isinstance(patcher, comfy.model_patcher.ModelPatcher)
    cfg, sd = checkpoint.load_transformer_state_dict(str(tiny_checkpoint), dtype=torch.float32)
    ref = LTXAVTransformer(cfg)
    ref.load_state_dict(sd, strict=True)
    dm = patcher.model.diffusion_model
    for k, v in dm.state_dict().items():
        assert torch.equal(v.float(), sd[k].float()), k
    cc = patcher.model.model_config
    assert (cfg.in_channels, cfg.audio_in_channels) == (128, 8 * 16)  # the released models' latents
    g = torch.Generator().manual_seed(3)
    video = torch.randn(1, 128, 2, 2, 2, generator=g)
    audio = torch.randn(1, 8, 9, 16, generator=g)
    ctx_v = torch.randn(1, 4, cc.video_context_width, generator=g)
    ctx_a = torch.randn(1, 4, cc.audio_context_width, generator=g)
    sigma = torch.tensor([0.4])
    with torch.no_grad():
        ours = dm([video.to(dm.dtype), audio.to(dm.dtype)], sigma, context=ctx_v.to(dm.dtype),
                  audio_context=ctx_a.to(dm.dtype), frame_rate=24.0)
        rv, ra = ref(
            StreamInput(P.patchify_video(video), sigma[:, None], sigma, P.video_positions(1, 2, 2, 2, 24.0), ctx_v),
            StreamInput(P.patchify_audio(audio), sigma[:, None], sigma, P.audio_positions(1, 9), ctx_a),
        )
    tol = TOL if dm.dtype == torch.float32 else 2e-2
    rel_v = ((ours[0].float() - P.unpatchify_video(rv, 2, 2, 2)).norm() / rv.norm()).item()
    rel_a = ((ours[1].float() - P.unpatchify_audio(ra, 8, 16)).norm() / ra.norm()).item()
    assert rel_v <= tol and rel_a <= tol, (rel_v, rel_a)


def test_load_ltx2_model_missing_key_is_named(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(tiny_checkpoint), framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(str(tiny_checkpoint))
    gone = "model.diffusion_model.transformer_blocks.1.attn1.to_k.bias"
    assert gone in tensors
    del tensors[gone]
    broken = tmp_path / "broken.safetensors"
    save_file(tensors, str(broken), metadata=metadata)
    with pytest.raises(ValueError) as err:
        loading.load_ltx2_model(str(broken))
    bare = gone.split("model.diffusion_model.", 1)[-1]
    assert bare in str(err.value)
