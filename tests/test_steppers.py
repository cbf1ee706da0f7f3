"""euler / res_2s vs the reference loops of ltx_pipelines 1.0.0 on a synthetic denoiser, and
the LTX-2 Sampler node inside ComfyUI's SamplerCustomAdvanced on the tiny checkpoint.

The denoiser is a fixed nonlinear map on each token's features (the reference works on
patchified (B, tokens, features) latents, ComfyUI on the packed (B, 1, N) joint latent), so
both loops see identical x0 predictions for identical states; everything the loops add
(steps, SDE noise from seeded generators, bongmath, masks, the final σ) is compared.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch

from openltx.samplers import steppers

VIDEO = (2, 128, 2, 3, 2)  # (B, C, F', H', W'): 12 tokens per item
AUDIO = (2, 8, 5, 16)  # (B, C, T, M): 5 tokens per item
PIPELINES_DIRS = [os.environ.get("LTX_PIPELINES_PATH", ""), "/tmp/wheels/ltxp"]


def ltx_pipelines_module(name: str):
    """Import ``name`` from ltx-pipelines 1.0.0 (installed, or unpacked at $LTX_PIPELINES_PATH
    or /tmp/wheels/ltxp), with torchaudio stubbed while it imports; skip when absent."""
    import ltx_core.loader  # noqa: F401  (breaks ltx-core's circular import)
    from test_tiny_layouts import _torchaudio_stub

    if importlib.util.find_spec("ltx_pipelines") is None:
        found = [d for d in PIPELINES_DIRS if d and (Path(d) / "ltx_pipelines").is_dir()]
        if not found:
            pytest.skip("ltx-pipelines 1.0.0 is not available: `pip download --no-deps ltx-pipelines==1.0.0` "
                        "and unzip it to /tmp/wheels/ltxp (or set LTX_PIPELINES_PATH)")
        sys.path.append(found[0])
    with _torchaudio_stub():
        return importlib.import_module(name)


# --- layouts and the synthetic denoiser ---------------------------------------------------
def to_tokens(t):
    if t.ndim == 5:
        return t.permute(0, 2, 3, 4, 1).reshape(t.shape[0], -1, t.shape[1])
    return t.permute(0, 2, 1, 3).reshape(t.shape[0], t.shape[2], -1)


def from_tokens(tok, shape):
    if len(shape) == 5:
        b, c, f, h, w = shape
        return tok.reshape(b, f, h, w, c).permute(0, 4, 1, 2, 3)
    b, c, t, m = shape
    return tok.reshape(b, t, c, m).permute(0, 2, 1, 3)


def pack(video, audio):
    return torch.cat([video.reshape(video.shape[0], 1, -1), audio.reshape(audio.shape[0], 1, -1)], dim=-1)


def unpack(x):
    n = VIDEO[1] * VIDEO[2] * VIDEO[3] * VIDEO[4]
    return x[:, :, :n].reshape(VIDEO), x[:, :, n:].reshape(AUDIO)


class Denoiser:
    """x0 = tanh(tokens @ A)·0.8 + 0.1·σ per stream (fixed random A), evaluated in float32."""

    def __init__(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.a_v = torch.randn(128, 128, generator=g, dtype=torch.float64) / 128**0.5
        self.a_a = torch.randn(128, 128, generator=g, dtype=torch.float64) / 128**0.5

    def tokens(self, tok, sigma, a):
        return (torch.tanh(tok.double() @ a) * 0.8 + 0.1 * float(sigma)).to(tok.dtype)


def make_case(seed=1, masked=True):
    g = torch.Generator().manual_seed(seed)
    noise_v, noise_a = torch.randn(VIDEO, generator=g), torch.randn(AUDIO, generator=g)
    clean_v, clean_a = torch.randn(VIDEO, generator=g), torch.zeros(AUDIO)
    mask_v = torch.ones(VIDEO[0], 1, *VIDEO[2:])
    mask_a = torch.ones(AUDIO[0], 1, AUDIO[2], 1)
    if masked:
        mask_v[0, :, 0] = 0.0  # a frozen first frame (image-to-video at strength 1)
        mask_v[1, :, 0] = 0.4  # a partly kept first frame (strength 0.6)
        mask_a[1, :, :2] = 0.0  # frozen audio tokens
    x_v = noise_v * mask_v + clean_v * (1 - mask_v)
    x_a = noise_a * mask_a + clean_a * (1 - mask_a)
    return dict(x=(x_v, x_a), clean=(clean_v, clean_a), mask=(mask_v, mask_a))


def run_reference(loop_name, case, sigmas, den, **kw):
    samplers = ltx_pipelines_module("ltx_pipelines.utils.samplers")
    from ltx_core.components.diffusion_steps import EulerDiffusionStep, Res2sDiffusionStep
    from ltx_core.types import LatentState

    def state(i):
        tok_mask = to_tokens(case["mask"][i].expand(VIDEO if i == 0 else AUDIO))[..., :1]
        return LatentState(latent=to_tokens(case["x"][i]), denoise_mask=tok_mask,
                           positions=torch.zeros(1), clean_latent=to_tokens(case["clean"][i]))

    def denoise_fn(video_state, audio_state, sigmas, step_index):
        sigma = sigmas[step_index].float()
        return (den.tokens(video_state.latent, sigma, den.a_v), den.tokens(audio_state.latent, sigma, den.a_a))

    if loop_name == "euler":
        v, a = samplers.euler_denoising_loop(sigmas, state(0), state(1), EulerDiffusionStep(), denoise_fn)
    else:
        v, a = samplers.res2s_audio_video_denoising_loop(sigmas, state(0), state(1), Res2sDiffusionStep(),
                                                         denoise_fn, model_dtype=torch.float32, **kw)
    return from_tokens(v.latent, VIDEO), from_tokens(a.latent, AUDIO)


def run_ours(name, case, sigmas, den, **kw):
    mask = pack(case["mask"][0].expand(VIDEO), case["mask"][1].expand(AUDIO))
    clean = pack(*case["clean"])

    def model(x, sigma, **extra):  # a guider: x0 of both streams, blended with the clean latent
        assert sigma.shape == (x.shape[0],)
        v, a = unpack(x)
        x0 = pack(from_tokens(den.tokens(to_tokens(v), sigma[0], den.a_v), VIDEO),
                  from_tokens(den.tokens(to_tokens(a), sigma[0], den.a_a), AUDIO))
        return x0 * mask + clean * (1 - mask)

    x = pack(*case["x"])
    if name == "euler":
        out = steppers.sample_euler(model, x, sigmas)
    else:
        out = steppers.sample_res_2s(model, x, sigmas, latent_shapes=[VIDEO, AUDIO],
                                     denoise_mask=mask, clean_latent=clean, **kw)
    return unpack(out)


def rel_err(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


SCHEDULES = {
    "ltx2_8": lambda: __import__("openltx.samplers.schedules", fromlist=["x"]).ltx2_sigmas(8),
    "distilled_stage2": lambda: torch.tensor([0.909375, 0.725, 0.421875, 0.0]),
    "ends_above_zero": lambda: torch.tensor([1.0, 0.8, 0.55, 0.3]),
}


# --- parity with the reference loops -----------------------------------------------------
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_euler_matches_reference(schedule):
    den, case, sigmas = Denoiser(), make_case(), SCHEDULES[schedule]()
    ref = run_reference("euler", case, sigmas, den)
    ours = run_ours("euler", case, sigmas, den)
    for o, r in zip(ours, ref):
        assert torch.isfinite(o).all()
        assert rel_err(o, r) <= 1e-10, rel_err(o, r)  # bit-exact on CPU


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("masked", [True, False])
def test_res_2s_matches_reference(schedule, masked):
    den, case, sigmas = Denoiser(), make_case(masked=masked), SCHEDULES[schedule]()
    ref = run_reference("res_2s", case, sigmas, den)
    ours = run_ours("res_2s", case, sigmas, den)
    for o, r in zip(ours, ref):
        assert torch.isfinite(o).all()
        assert rel_err(o, r) <= 1e-10, rel_err(o, r)  # bit-exact on CPU
    if masked:  # frozen tokens come out as the clean latent
        assert torch.equal(ours[0][0, :, 0], case["clean"][0][0, :, 0])


def test_res_2s_options_match_reference():
    den, case, sigmas = Denoiser(), make_case(), SCHEDULES["ltx2_8"]()
    ref = run_reference("res_2s", case, sigmas, den, noise_seed=1234, bongmath=False)
    ours = run_ours("res_2s", case, sigmas, den, noise_seed=1234, bongmath=False)
    default = run_ours("res_2s", case, sigmas, den)
    no_bong = run_ours("res_2s", case, sigmas, den, bongmath=False)
    for o, r, d, nb in zip(ours, ref, default, no_bong):
        assert rel_err(o, r) <= 1e-10
        assert rel_err(o, d) > 1e-3  # the seed changes the result
        assert rel_err(nb, d) > 1e-6  # and so does the anchor refinement


def test_coefficients_and_sde_step_match_reference():
    res2s = ltx_pipelines_module("ltx_pipelines.utils.res2s")
    from ltx_core.components.diffusion_steps import Res2sDiffusionStep

    for h in (1e-12, 0.05, 0.3, 0.7, 2.5):
        assert steppers.res2s_coefficients(h) == pytest.approx(res2s.get_res2s_coefficients(h, {}), rel=1e-15)
    g = torch.Generator().manual_seed(0)
    sample, target, noise = (torch.randn(2, 7, 5, generator=g, dtype=torch.float64) for _ in range(3))
    for s, sn in ((0.9, 0.7), (0.3, 0.0011), (0.5, 0.0)):
        sig = torch.tensor([s, sn], dtype=torch.float64)
        ref = Res2sDiffusionStep().step(sample, target, sig, 0, noise)
        ours = steppers.sde_step(sample, target, sig[0], sig[1], noise)
        assert torch.allclose(ours, ref, rtol=1e-14, atol=0)


def test_noise_is_drawn_in_token_order_and_normalised():
    shape = (2, 8, 5, 16)
    noise = steppers.normalized_noise(shape, torch.Generator().manual_seed(3))
    assert noise.shape == shape and noise.dtype == torch.float64
    tok = to_tokens(noise)
    raw = torch.randn(2, 5, 128, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.corrcoef(torch.stack([tok.flatten(), raw.flatten()]))[0, 1] > 0.999
    per_item = tok.reshape(2, -1)
    assert torch.allclose(per_item.mean(1), torch.zeros(2, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(per_item.std(1), torch.ones(2, dtype=torch.float64), atol=1e-12)


def test_euler_step_is_float32_math_for_bf16_state():
    g = torch.Generator().manual_seed(0)
    x, x0 = (torch.randn(4, 64, generator=g).bfloat16() for _ in range(2))
    from ltx_core.components.diffusion_steps import EulerDiffusionStep

    sig = torch.tensor([0.7, 0.4])
    out = steppers.euler_step(x, x0, sig[0], sig[1])
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, EulerDiffusionStep().step(x, x0, sig, 0))


# --- in ComfyUI: SamplerCustomAdvanced with the tiny checkpoint ------------------------------
from test_nodes_inprocess import (  # noqa: E402,F401  (module-scoped tiny checkpoint fixtures)
    assert_av_samples, conditioning, empty_latent, folders, model, model_dirs,
)


@pytest.mark.parametrize("name", ["res_2s", "euler"])
def test_sampler_custom_advanced_with_ltx_sampler(model, name, monkeypatch):
    from comfy_extras.nodes_custom_sampler import CFGGuider, RandomNoise, SamplerCustomAdvanced

    from openltx.nodes.sampling import OpenLTXSampler, OpenLTXScheduler
    from openltx.samplers import comfy_samplers

    seen = {}
    original = steppers.sample_res_2s

    def spy(model_k, x, sigmas, **kw):
        seen.update(x=tuple(x.shape), shapes=kw["latent_shapes"], mask=kw["denoise_mask"])
        return original(model_k, x, sigmas, **kw)

    monkeypatch.setattr(comfy_samplers.steppers, "sample_res_2s", spy)
    latent = empty_latent(batch_size=2)
    video, audio = latent["samples"].unbind()
    sampler = OpenLTXSampler.execute(sampler=name, sde_seed=-1, bongmath=True)[0]
    sigmas = OpenLTXScheduler.execute(steps=3, terminal=0.1, stretch=True, latent=latent)[0]
    guider = CFGGuider.execute(model=model, positive=conditioning(model, 5, 1),
                               negative=conditioning(model, 5, 2), cfg=2.0)[0]
    out = SamplerCustomAdvanced.execute(noise=RandomNoise.execute(noise_seed=3)[0], guider=guider,
                                        sampler=sampler, sigmas=sigmas, latent_image=latent)
    assert_av_samples(out[0]["samples"], batch=2)
    denoised = out[1]["samples"]
    if getattr(denoised, "is_nested", False):  # current ComfyUI unpacks the denoised output too
        assert_av_samples(denoised, batch=2)
    else:  # ComfyUI 0.3.75 leaves it packed (B, 1, N) for any sampler
        assert denoised.shape == (2, 1, video[0].numel() + audio[0].numel())
        assert denoised.dtype == torch.float32 and torch.isfinite(denoised).all()
    if name == "res_2s":
        assert seen["shapes"] == [tuple(video.shape), tuple(audio.shape)]
        assert seen["x"] == (2, 1, video[0].numel() + audio[0].numel()) and seen["mask"] is None


def test_sampler_node_rejects_unknown_names():
    from openltx.nodes.sampling import OpenLTXSampler

    with pytest.raises(ValueError, match="LTX-2 Sampler: unknown LTX-2 sampler 'heun'"):
        OpenLTXSampler.execute(sampler="heun")


def test_stream_masks_pack_like_comfy():
    import comfy.utils

    from openltx.samplers.comfy_samplers import pack_stream_masks

    like = torch.zeros(2, 1, 2 * 3 * 2 * 128 + 5 * 128)
    m_v = torch.rand(2, 1, 2, 3, 2)
    packed = pack_stream_masks([m_v, None], [VIDEO, AUDIO], like)
    ref, _ = comfy.utils.pack_latents([m_v.expand(VIDEO), torch.ones(AUDIO)])
    assert torch.equal(packed, ref)


def test_res_2s_on_a_video_only_latent_with_noise_mask(model, monkeypatch):
    from comfy_extras.nodes_custom_sampler import CFGGuider, RandomNoise, SamplerCustomAdvanced

    from openltx.nodes.sampling import OpenLTXSampler
    from openltx.samplers import comfy_samplers, schedules

    seen = {}
    original = steppers.sample_res_2s

    def spy(model_k, x, sigmas, **kw):
        seen.update(x=tuple(x.shape), shapes=kw["latent_shapes"], mask=kw["denoise_mask"])
        return original(model_k, x, sigmas, **kw)

    monkeypatch.setattr(comfy_samplers.steppers, "sample_res_2s", spy)
    video = torch.randn(empty_latent()["samples"].unbind()[0].shape, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, 1, *video.shape[2:])
    mask[:, :, 0] = 0.0  # keep the first latent frame
    guider = CFGGuider.execute(model=model, positive=conditioning(model, 5, 1),
                               negative=conditioning(model, 5, 2), cfg=1.0)[0]
    out = SamplerCustomAdvanced.execute(
        noise=RandomNoise.execute(noise_seed=3)[0], guider=guider,
        sampler=OpenLTXSampler.execute(sampler="res_2s")[0], sigmas=schedules.distilled_sigmas("stage2 (3 steps)"),
        latent_image={"samples": video, "noise_mask": mask},
    )[0]["samples"]
    assert seen["shapes"] == [tuple(video.shape)] and seen["mask"] is not None
    assert out.shape == video.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[:, :, 0], video[:, :, 0])  # the kept frame comes back unchanged
