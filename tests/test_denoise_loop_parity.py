"""A whole guided denoising loop through ComfyUI equals ltx-core's on the same tiny weights.

Ours: the tiny LTX-2 MODEL (``build_ltx2_model``) + ``MultimodalGuider`` + core's euler
SAMPLER, run by SamplerCustomAdvanced on a nested video+audio latent.
Reference: ltx-core's ``X0Model(LTXModel)`` holding the same weights, ``MultiModalGuider``,
``EulerDiffusionStep``, latent states from ``VideoLatentTools`` / ``AudioLatentTools`` and
``VideoConditionByLatentIndex``, driven by ``reference_loop`` — a transcription of
ltx_pipelines 1.0.0's ``multi_modal_guider_denoising_func`` + ``euler_denoising_loop``
(utils/helpers.py, utils/samplers.py; ltx_pipelines is not installed — when it is importable,
``test_reference_loop_is_ltx_pipelines`` checks the transcription against it).
Same initial noise, same LTX2Scheduler sigmas, fp32; final latents within 1e-5 relative.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace

import pytest
import torch

import comfy.nested_tensor
from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustomAdvanced

import ltx_core.loader  # noqa: F401  (before ltx_core.quantization: circular import)
from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.components.schedulers import LTX2Scheduler
from ltx_core.conditioning import VideoConditionByLatentIndex
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig, Perturbation, PerturbationConfig, PerturbationType,
)
from ltx_core.model.transformer.modality import Modality
from ltx_core.model.transformer.model import X0Model
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape

from ltx_reference import reference_model
from openltx.ltx2 import positions as P
from openltx.ltx2.config import TransformerConfig
from openltx.host import model_loading as loading
from openltx.model_loaders import tiny_layouts as T
from openltx.samplers import guidance as G
from openltx.samplers.comfy_guider import MultimodalGuider

TOL = 1e-5
FPS = 24.0
FRAMES, HEIGHT, WIDTH = 2, 2, 3  # latent grid: 9 frames of 64×96 px
AUDIO_T = P.audio_latent_steps(8 * (FRAMES - 1) + 1, FPS)
PREFIX = "model.diffusion_model."
STEPS = 4


class Setup:
    """The MODEL and ltx-core's X0Model on the same random weights, contexts and noise."""

    def __init__(self, version: str) -> None:
        header = T.tiny_transformer_values(version)  # + audio_in_channels, which the file header lacks
        self.cfg = TransformerConfig.from_header(header)
        sd = {k.removeprefix(PREFIX): v for k, v in T.tiny_state_dict(version, ["transformer"], seed=4).items()}
        self.patcher = loading.build_ltx2_model(self.cfg, sd, weight_dtype=torch.float32)
        self.x0_model = X0Model(reference_model(header, {k: v.clone() for k, v in sd.items()}))
        mc = self.patcher.model.model_config
        g = torch.Generator().manual_seed(11)
        ctx = lambda w: torch.randn(1, 6, w, generator=g)  # noqa: E731
        self.pos_v, self.pos_a = ctx(mc.video_context_width), ctx(mc.audio_context_width)
        self.neg_v, self.neg_a = ctx(mc.video_context_width), ctx(mc.audio_context_width)
        self.noise_v = torch.randn(1, 128, FRAMES, HEIGHT, WIDTH, generator=g)
        self.noise_a = torch.randn(1, 8, AUDIO_T, 16, generator=g)
        self.image = torch.randn(1, 128, 1, HEIGHT, WIDTH, generator=g)  # "encoded first frame"
        self.audio_clip = torch.randn(1, 8, AUDIO_T, 16, generator=g)  # "encoded audio"
        self.sigmas = LTX2Scheduler().execute(steps=STEPS)

    def conditioning(self, video_ctx, audio_ctx):
        return [[video_ctx, {"audio_context": audio_ctx, "frame_rate": FPS}]]


_SETUPS: dict[str, Setup] = {}


def _setup(version: str) -> Setup:
    if version not in _SETUPS:
        _SETUPS[version] = Setup(version)
    return _SETUPS[version]


@pytest.fixture(params=["2.0", "2.3"])
def setup(request):
    """Both model versions (for the main cases)."""
    return _setup(request.param)


@pytest.fixture
def setup20():
    """LTX-2.0 only (variations of the loop; keeps the file fast)."""
    return _setup("2.0")


# --------------------------------------------------------------------------- reference side
def reference_states(s: Setup, image_strength: float | None, freeze_audio: bool):
    """Latent states as ltx_pipelines builds them: tools → conditionings → noiser (our ε)."""
    vtools = VideoLatentTools(VideoLatentPatchifier(patch_size=1),
                              VideoLatentShape(batch=1, channels=128, frames=FRAMES, height=HEIGHT, width=WIDTH), FPS)
    atools = AudioLatentTools(AudioPatchifier(patch_size=1),
                              AudioLatentShape(batch=1, channels=8, frames=AUDIO_T, mel_bins=16))
    video = vtools.create_initial_state("cpu", torch.float32)
    if image_strength is not None:
        video = VideoConditionByLatentIndex(latent=s.image, strength=image_strength, latent_idx=0).apply_to(video, vtools)
    audio = atools.create_initial_state("cpu", torch.float32, s.audio_clip if freeze_audio else None)
    if freeze_audio:  # denoise_video_only: the audio latent is kept
        audio = replace(audio, denoise_mask=torch.zeros_like(audio.denoise_mask))

    def noised(state, eps):  # GaussianNoiser's formula (noise_scale 1) with our ε
        return replace(state, latent=eps * state.denoise_mask + state.latent * (1 - state.denoise_mask))

    video = noised(video, vtools.patchifier.patchify(s.noise_v))
    audio = noised(audio, atools.patchifier.patchify(s.noise_a))
    return video, audio, vtools, atools


def reference_loop(s: Setup, video_p: G.StreamGuidance, audio_p: G.StreamGuidance, video, audio):
    """ltx_pipelines' euler_denoising_loop with multi_modal_guider_denoising_func, transcribed."""
    to_ref = lambda p: MultiModalGuiderParams(  # noqa: E731
        cfg_scale=p.cfg, stg_scale=p.stg, stg_blocks=list(p.stg_blocks), rescale_scale=p.rescale,
        modality_scale=p.modality_scale, skip_step=p.skip_step)
    vg = MultiModalGuider(to_ref(video_p), negative_context=s.neg_v)
    ag = MultiModalGuider(to_ref(audio_p), negative_context=s.neg_a)
    model, stepper, sigmas = s.x0_model, EulerDiffusionStep(), s.sigmas
    last_v = last_a = None

    def modality(state, ctx, sigma, enabled=True):
        return Modality(enabled=enabled, latent=state.latent, sigma=sigma, timesteps=state.denoise_mask * sigma,
                        positions=state.positions, context=ctx, context_mask=None, attention_mask=state.attention_mask)

    def run(v, a, perturbations=None):
        batch = BatchedPerturbationConfig([PerturbationConfig(perturbations)]) if perturbations else None
        with torch.no_grad():
            return model(video=v, audio=a, perturbations=batch)

    for step in range(len(sigmas) - 1):
        if vg.should_skip_step(step) and ag.should_skip_step(step):
            dv, da = last_v, last_a
        else:
            sigma = sigmas[step]
            pv = modality(video, s.pos_v, sigma, not vg.should_skip_step(step))
            pa = modality(audio, s.pos_a, sigma, not ag.should_skip_step(step))
            dv, da = run(pv, pa)
            nv = na = tv = ta = iv = ia = 0.0
            if vg.do_unconditional_generation() or ag.do_unconditional_generation():
                nv, na = run(modality(video, s.neg_v, sigma), modality(audio, s.neg_a, sigma))
            if vg.do_perturbed_generation() or ag.do_perturbed_generation():
                ptb = []
                if vg.do_perturbed_generation():
                    ptb.append(Perturbation(PerturbationType.SKIP_VIDEO_SELF_ATTN, vg.params.stg_blocks))
                if ag.do_perturbed_generation():
                    ptb.append(Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, ag.params.stg_blocks))
                tv, ta = run(pv, pa, ptb)
            if vg.do_isolated_modality_generation() or ag.do_isolated_modality_generation():
                iv, ia = run(pv, pa, [Perturbation(PerturbationType.SKIP_A2V_CROSS_ATTN, None),
                                      Perturbation(PerturbationType.SKIP_V2A_CROSS_ATTN, None)])
            dv = last_v if vg.should_skip_step(step) else vg.calculate(dv, nv, tv, iv)
            da = last_a if ag.should_skip_step(step) else ag.calculate(da, na, ta, ia)
        last_v, last_a = dv, da
        # post_process_latent, then the Euler step
        dv = (dv * video.denoise_mask + video.clean_latent.float() * (1 - video.denoise_mask)).to(dv.dtype)
        da = (da * audio.denoise_mask + audio.clean_latent.float() * (1 - audio.denoise_mask)).to(da.dtype)
        video = replace(video, latent=stepper.step(video.latent, dv, sigmas, step))
        audio = replace(audio, latent=stepper.step(audio.latent, da, sigmas, step))
    return video, audio


# --------------------------------------------------------------------------- our side
class FixedNoise:
    """A NOISE whose ε is the test's (RandomNoise would draw its own)."""

    seed = 0

    def __init__(self, *streams):
        self.streams = streams

    def generate_noise(self, latent):
        return comfy.nested_tensor.NestedTensor(tuple(t.clone() for t in self.streams))


def ours(s: Setup, video_p, audio_p, image_strength=None, freeze_audio=False, sampler_name="euler"):
    guider = MultimodalGuider(s.patcher, video_p, audio_p)
    guider.set_conds(s.conditioning(s.pos_v, s.pos_a), s.conditioning(s.neg_v, s.neg_a))
    video = torch.zeros(1, 128, FRAMES, HEIGHT, WIDTH)
    audio = s.audio_clip.clone() if freeze_audio else torch.zeros(1, 8, AUDIO_T, 16)
    latent = {"samples": comfy.nested_tensor.NestedTensor((video, audio))}
    if image_strength is not None or freeze_audio:
        vmask = torch.ones(1, 1, FRAMES, HEIGHT, WIDTH)
        if image_strength is not None:
            video[:, :, :1] = s.image
            vmask[:, :, 0] = 1.0 - image_strength
        amask = torch.zeros(1, 1, AUDIO_T, 1) if freeze_audio else torch.ones(1, 1, AUDIO_T, 1)
        latent["noise_mask"] = comfy.nested_tensor.NestedTensor((vmask, amask))
    sampler = KSamplerSelect.execute(sampler_name=sampler_name)[0]
    out = SamplerCustomAdvanced.execute(noise=FixedNoise(s.noise_v, s.noise_a), guider=guider, sampler=sampler,
                                        sigmas=s.sigmas.clone(), latent_image=latent)
    return out[0]["samples"].unbind()


def assert_close(got, ref, label):
    assert got.shape == ref.shape, f"{label}: {tuple(got.shape)} vs {tuple(ref.shape)}"
    assert torch.isfinite(got).all(), label
    rel = ((got - ref).norm() / ref.norm()).item()
    assert rel <= TOL, f"{label}: relative error {rel:.3g} > {TOL}"


def compare(s: Setup, video_p, audio_p, image_strength=None, freeze_audio=False, label=""):
    v_ref, a_ref, vtools, atools = reference_states(s, image_strength, freeze_audio)
    v_ref, a_ref = reference_loop(s, video_p, audio_p, v_ref, a_ref)
    v_ref, a_ref = vtools.unpatchify(v_ref).latent, atools.unpatchify(a_ref).latent
    v, a = ours(s, video_p, audio_p, image_strength, freeze_audio)
    assert_close(v, v_ref, f"{label} video")
    assert_close(a, a_ref, f"{label} audio")
    return v, a


# The tiny model has 2 blocks: STG on block 1 (video) / 0 (audio) so the perturbed pass matters.
FULL = (G.StreamGuidance(cfg=3.0, stg=1.0, stg_blocks=(1,), rescale=0.7, modality_scale=3.0),
        G.StreamGuidance(cfg=7.0, stg=1.0, stg_blocks=(0,), rescale=0.7, modality_scale=3.0))


def test_all_terms_with_rescale(setup):
    v, a = compare(setup, *FULL, label="all terms")
    # Guidance matters: a CFG-only loop ends elsewhere.
    v1, _ = ours(setup, G.StreamGuidance(cfg=3.0), G.StreamGuidance(cfg=7.0))
    assert not torch.allclose(v, v1, atol=1e-3)


def test_cfg_only_and_cfg_stg(setup20):
    compare(setup20, G.StreamGuidance(cfg=3.0), G.StreamGuidance(cfg=7.0), label="cfg")
    compare(setup20, G.StreamGuidance(cfg=3.0, stg=1.0, stg_blocks=(1,)), G.StreamGuidance(cfg=7.0), label="cfg+stg")


def test_passes_run_one_at_a_time_when_memory_is_short(setup20, monkeypatch):
    """calc_cond_batch splits the passes when the estimate does not fit: same result."""
    import comfy.model_management

    # 0.3.75's samplers ask comfy.model_management; current ComfyUI asks the model's patcher,
    # which asks comfy.model_management: patch the module function, not a module's import of it.
    monkeypatch.setattr(comfy.model_management, "get_free_memory", lambda *a, **k: 1)
    compare(setup20, *FULL, label="sequential")


def test_skip_step(setup20):
    video_p, audio_p = (replace(p, skip_step=1) for p in FULL)
    compare(setup20, video_p, audio_p, label="skip_step 1")


def test_first_frame_frozen(setup):
    """Image-to-video at strength 1: latent frame 0 is kept (per-token σ = 0, x0 blended)."""
    v, _ = compare(setup, *FULL, image_strength=1.0, label="frame 0 frozen")
    assert torch.equal(v[:, :, 0], setup.image[:, :, 0])


def test_first_frame_partial_strength(setup20):
    """strength 0.6: frame-0 tokens denoise at σ·0.4 and start from 0.4·ε + 0.6·image."""
    compare(setup20, *FULL, image_strength=0.6, label="frame 0 strength 0.6")


def test_audio_frozen(setup20):
    """Audio-to-video: the audio stream is kept exactly while the video denoises."""
    _, a = compare(setup20, *FULL, freeze_audio=True, label="audio frozen")
    assert torch.equal(a, setup20.audio_clip)


@pytest.mark.parametrize("sampler_name", ["heun", "dpmpp_2m", "euler_ancestral"])
def test_other_core_samplers_keep_the_frozen_tokens(sampler_name):
    """Multi-evaluation and noise-adding samplers: guidance runs, kept tokens stay exact."""
    s = _setup("2.0")
    v, a = ours(s, *FULL, image_strength=1.0, freeze_audio=True, sampler_name=sampler_name)
    assert torch.isfinite(v).all()
    assert torch.equal(v[:, :, 0], s.image[:, :, 0]) and torch.equal(a, s.audio_clip)


# --------------------------------------------------------------------------- the transcription
def _ltx_pipelines():
    extra = os.environ.get("LTX_PIPELINES_PATH", "/tmp/wheels/ltxp")
    if os.path.isdir(extra) and extra not in sys.path:
        sys.path.append(extra)
    from test_tiny_layouts import _torchaudio_stub

    try:
        with _torchaudio_stub():  # ltx_pipelines imports ltx_core's audio VAE
            from ltx_pipelines.utils import helpers, samplers
    except Exception as err:  # not installed (it is read-only reference material)
        pytest.skip(f"ltx_pipelines not importable: {err}")
    return helpers, samplers


def test_reference_loop_is_ltx_pipelines(setup20):
    helpers, samplers = _ltx_pipelines()
    video_p, audio_p = FULL
    v0, a0, *_ = reference_states(setup20, 1.0, False)
    mine_v, mine_a = reference_loop(setup20, video_p, audio_p, v0, a0)
    to_ref = lambda p: MultiModalGuiderParams(  # noqa: E731
        cfg_scale=p.cfg, stg_scale=p.stg, stg_blocks=list(p.stg_blocks), rescale_scale=p.rescale,
        modality_scale=p.modality_scale, skip_step=p.skip_step)
    fn = helpers.multi_modal_guider_denoising_func(
        MultiModalGuider(to_ref(video_p), negative_context=setup20.neg_v),
        MultiModalGuider(to_ref(audio_p), negative_context=setup20.neg_a),
        setup20.pos_v, setup20.pos_a, setup20.x0_model)
    with torch.no_grad():
        real_v, real_a = samplers.euler_denoising_loop(setup20.sigmas, v0, a0, EulerDiffusionStep(), fn)
    assert torch.equal(mine_v.latent, real_v.latent) and torch.equal(mine_a.latent, real_a.latent)


# --------------------------------------------------------------------------- the node
def test_node_builds_the_guider_from_presets_and_custom_fields(setup20):
    from openltx.nodes.guidance import OpenLTXMultimodalGuider

    pos, neg = setup20.conditioning(setup20.pos_v, setup20.pos_a), setup20.conditioning(setup20.neg_v, setup20.neg_a)
    fields = {f"{s}_{k}": v for s, p in zip(("video", "audio"), FULL) for k, v in (
        ("cfg", p.cfg), ("stg", p.stg), ("stg_blocks", ",".join(map(str, p.stg_blocks))), ("rescale", p.rescale),
        ("modality_scale", p.modality_scale), ("skip_step", p.skip_step))}
    guider = OpenLTXMultimodalGuider.execute(setup20.patcher, pos, neg, "custom", **fields)[0]
    assert isinstance(guider, MultimodalGuider) and (guider.video, guider.audio) == FULL
    preset = OpenLTXMultimodalGuider.execute(setup20.patcher, pos, neg, "LTX-2.3", **fields)[0]
    assert (preset.video, preset.audio) == G.preset("LTX-2.3")
    with pytest.raises(ValueError, match="LTX-2 Multimodal Guider: video_stg_blocks: block 5 does not exist"):
        OpenLTXMultimodalGuider.execute(setup20.patcher, pos, neg, "custom", **{**fields, "video_stg_blocks": "5"})
    assert "not a block number" in OpenLTXMultimodalGuider.validate_inputs(video_stg_blocks="x", audio_stg_blocks="1")
    assert OpenLTXMultimodalGuider.validate_inputs(video_stg_blocks="29", audio_stg_blocks="") is True
