"""Audio-only generation (text-to-audio, audio retake) and ID-LoRA reference audio, in-process.

* LTX-2 Empty Latent "audio only" is a one-stream NestedTensor; the whole guided loop through
  SamplerCustomAdvanced + LTX-2 Multimodal Guider equals ltx-core's ``X0Model`` run with
  ``video=None`` (ltx_pipelines' audio-only mode: the T2A pipeline passes no video modality)
  driven by ``MultiModalGuider`` + ``EulerDiffusionStep``, on the same tiny weights, noise and
  sigmas (fp32, 1e-5 relative) - with and without a retake window (denoise mask);
* LTX-2 Save Audio writes a FLAC of the right length;
* reference audio (ID-LoRA): the model's audio output with the reference equals ltx-core's
  transformer on the audio sequence with the reference tokens appended (σ 0, positions ending
  one latent step before t = 0, as ComfyUI's ID-LoRA conditioning places them); identity
  guidance adds ``scale · (x0_cond − x0_noref)``, one extra pass per step.
"""

from __future__ import annotations

import pytest
import torch

import comfy.nested_tensor
from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustomAdvanced

from ltx_core.components.diffusion_steps import EulerDiffusionStep
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_core.model.transformer.modality import Modality

from test_denoise_loop_parity import AUDIO_T, FPS, FixedNoise, _setup, assert_close
from openltx.host import reference_audio as R
from openltx.ltx2 import positions as P
from openltx.nodes.latents import OpenLTXEmptyLatent
from openltx.samplers import guidance as G
from openltx.samplers.comfy_guider import MultimodalGuider

AUDIO_ONLY = G.StreamGuidance(cfg=7.0, stg=1.0, stg_blocks=(0,), rescale=0.7)  # the T2A pipeline: modality 1
FRAMES = 9  # pixel frames: AUDIO_T audio latents at 24 fps


def to_ref(p: G.StreamGuidance) -> MultiModalGuiderParams:
    return MultiModalGuiderParams(cfg_scale=p.cfg, stg_scale=p.stg, stg_blocks=list(p.stg_blocks),
                                  rescale_scale=p.rescale, modality_scale=p.modality_scale, skip_step=p.skip_step)


def reference_audio_loop(s, params: G.StreamGuidance, noise: torch.Tensor, clean=None, mask=None) -> torch.Tensor:
    """ltx_pipelines' guided Euler loop with ``video=None`` (audio tokens (1, T, 128))."""
    from ltx_core.guidance.perturbations import (
        BatchedPerturbationConfig, Perturbation, PerturbationConfig, PerturbationType,
    )

    guider = MultiModalGuider(to_ref(params), negative_context=s.neg_a)
    tokens = P.patchify_audio(noise)
    clean_t = torch.zeros_like(tokens) if clean is None else P.patchify_audio(clean)
    m = torch.ones(1, tokens.shape[1], 1) if mask is None else mask.reshape(1, -1, 1)
    latent = tokens * m + clean_t * (1 - m)  # GaussianNoiser with our ε
    positions = P.audio_positions(1, noise.shape[2])
    stepper, sigmas = EulerDiffusionStep(), s.sigmas

    def run(ctx, sigma, perturbations=None):
        a = Modality(latent=latent, sigma=sigma.reshape(1), timesteps=m * sigma, positions=positions,
                     context=ctx, context_mask=None)
        batch = BatchedPerturbationConfig([PerturbationConfig(perturbations)]) if perturbations else None
        with torch.no_grad():
            return s.x0_model(video=None, audio=a, perturbations=batch)[1]

    for step in range(len(sigmas) - 1):
        sigma = sigmas[step]
        c = run(s.pos_a, sigma)
        u = run(s.neg_a, sigma) if guider.do_unconditional_generation() else 0.0
        p = run(s.pos_a, sigma, [Perturbation(PerturbationType.SKIP_AUDIO_SELF_ATTN, guider.params.stg_blocks)]) \
            if guider.do_perturbed_generation() else 0.0
        x0 = guider.calculate(c, u, p, 0.0)
        x0 = x0 * m + clean_t * (1 - m)
        latent = stepper.step(latent, x0, sigmas, step)
    return P.unpatchify_audio(latent, 8, 16)


def ours_audio_only(s, params, latent: dict, noise: torch.Tensor) -> torch.Tensor:
    guider = MultimodalGuider(s.patcher, G.StreamGuidance(cfg=3.0), params)  # video params unused
    guider.set_conds(s.conditioning(s.pos_v, s.pos_a), s.conditioning(s.neg_v, s.neg_a))
    out = SamplerCustomAdvanced.execute(noise=FixedNoise(noise), guider=guider,
                                        sampler=KSamplerSelect.execute(sampler_name="euler")[0],
                                        sigmas=s.sigmas.clone(), latent_image=latent)[0]
    samples = out["samples"]
    assert isinstance(samples, comfy.nested_tensor.NestedTensor) and len(samples.unbind()) == 1
    return samples.unbind()[0]


# --------------------------------------------------------------------------- the latent
def test_empty_latent_streams_option():
    joint = OpenLTXEmptyLatent.execute(width=64, height=64, frames=FRAMES, fps=FPS)[0]["samples"]
    audio = OpenLTXEmptyLatent.execute(width=64, height=64, frames=FRAMES, fps=FPS, streams="audio only")[0]
    video = OpenLTXEmptyLatent.execute(width=64, height=64, frames=FRAMES, fps=FPS, streams="video only")[0]
    assert [t.shape for t in joint.unbind()] == [(1, 128, 2, 2, 2), (1, 8, AUDIO_T, 16)]
    assert isinstance(audio["samples"], comfy.nested_tensor.NestedTensor)
    assert [t.shape for t in audio["samples"].unbind()] == [(1, 8, AUDIO_T, 16)] and audio["frame_rate"] == FPS
    assert torch.is_tensor(video["samples"]) and video["samples"].shape == (1, 128, 2, 2, 2)
    with pytest.raises(ValueError, match="streams 'both' is not one of"):
        OpenLTXEmptyLatent.execute(width=64, height=64, frames=FRAMES, fps=FPS, streams="both")


# --------------------------------------------------------------------------- text-to-audio
@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_text_to_audio_loop_equals_ltx_core_without_video(version):
    s = _setup(version)
    latent = OpenLTXEmptyLatent.execute(width=64, height=64, frames=FRAMES, fps=FPS, streams="audio only")[0]
    got = ours_audio_only(s, AUDIO_ONLY, latent, s.noise_a)
    ref = reference_audio_loop(s, AUDIO_ONLY, s.noise_a)
    assert_close(got, ref, f"{version} text-to-audio")
    # the guidance matters (an unguided loop ends elsewhere)
    plain = ours_audio_only(s, G.StreamGuidance(), latent, s.noise_a)
    assert not torch.allclose(plain, got, atol=1e-3)


def test_audio_retake_keeps_the_outside_and_equals_ltx_core():
    """Audio-to-audio retake: LTX-2 Retake on an audio-only latent (nested, with its mask)."""
    from openltx.nodes.conditioning import OpenLTXRetake

    s = _setup("2.0")
    source = {"samples": s.audio_clip.clone(), "frame_rate": FPS}  # as LTX-2 Encode Audio gives it
    window = OpenLTXRetake.execute(source, start_s=0.08, end_s=0.24, fps=FPS)[0]
    assert isinstance(window["samples"], comfy.nested_tensor.NestedTensor)
    (mask,) = window["noise_mask"].unbind()
    kept = mask[0, 0, :, 0] == 0
    assert kept.any() and (~kept).any(), mask.flatten()
    got = ours_audio_only(s, AUDIO_ONLY, window, s.noise_a)
    ref = reference_audio_loop(s, AUDIO_ONLY, s.noise_a, clean=s.audio_clip, mask=mask[0, 0, :, 0])
    assert_close(got, ref, "audio retake")
    assert torch.equal(got[:, :, kept], s.audio_clip[:, :, kept])
    assert not torch.allclose(got[:, :, ~kept], s.audio_clip[:, :, ~kept])


# --------------------------------------------------------------------------- saving
@pytest.fixture(scope="module")
def audio_vae(tmp_path_factory):
    """The audio VAE + vocoder of a tiny official-layout LTX-2 bundle, through the VAE loader."""
    import folder_paths

    from openltx.model_loaders.tiny_layouts import write_tiny_checkpoint
    from openltx.nodes.loaders import OpenLTXVAELoader

    root = tmp_path_factory.mktemp("models")
    (root / "checkpoints").mkdir()
    write_tiny_checkpoint(root / "checkpoints" / "tiny.safetensors", "2.0", "all")
    mp = pytest.MonkeyPatch()
    exts = folder_paths.folder_names_and_paths["checkpoints"][1]
    mp.setitem(folder_paths.folder_names_and_paths, "checkpoints", ([str(root / "checkpoints")], exts))
    mp.setattr(folder_paths, "filename_list_cache", {})
    try:
        yield OpenLTXVAELoader.execute("tiny.safetensors", "fp32").args[1]
    finally:
        mp.undo()


def test_save_audio_writes_a_flac_of_the_latents_length(audio_vae, tmp_path, monkeypatch):
    import av
    import folder_paths

    from openltx.nodes.audio_out import OpenLTXSaveAudio

    monkeypatch.setattr(folder_paths, "output_directory", str(tmp_path))
    latent = {"samples": comfy.nested_tensor.NestedTensor((torch.randn(1, 8, 25, 16),))}  # 25 latents = 1 s
    out = OpenLTXSaveAudio.execute(latent, audio_vae, filename_prefix="audio/t2a")
    sound = out.args[0]
    files = sorted((tmp_path / "audio").glob("t2a_*.flac"))
    assert len(files) == 1, list(tmp_path.rglob("*"))
    assert out.ui.as_dict()["audio"][0]["filename"] == files[0].name
    with av.open(str(files[0])) as f:
        rate = f.streams.audio[0].rate
        samples = sum(frame.samples for frame in f.decode(audio=0))
    assert rate == sound["sample_rate"] and samples == sound["waveform"].shape[-1]
    assert samples / rate == pytest.approx(1.0, abs=0.1)
    # a second run never overwrites the first file
    OpenLTXSaveAudio.execute(latent, audio_vae, filename_prefix="audio/t2a")
    assert len(sorted((tmp_path / "audio").glob("t2a_*.flac"))) == 2
    with pytest.raises(ValueError, match="LTX-2 Save Audio: the latent has no audio stream"):
        OpenLTXSaveAudio.execute({"samples": torch.zeros(1, 128, 2, 2, 2)}, audio_vae)


# --------------------------------------------------------------------------- ID-LoRA reference audio
def test_reference_positions_end_one_step_before_zero():
    pos = R.reference_positions(2, 5)
    assert pos.shape == (2, 1, 5, 2)
    own = P.audio_positions(1, 5)[0, 0]
    shift = own[-1, 1].item() + 0.04  # ComfyUI: last reference token ends 40 ms before t = 0
    assert torch.allclose(pos[0, 0], own - shift)
    assert pos[0, 0, -1, 1].item() == pytest.approx(-0.04)


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_reference_audio_tokens_equal_ltx_core_with_appended_tokens(version):
    s = _setup(version)
    g = torch.Generator().manual_seed(5)
    ref = torch.randn(1, 8, 7, 16, generator=g)
    audio = torch.randn(2, 8, AUDIO_T, 16, generator=g)
    sigma = torch.tensor([0.6, 0.3])
    ctx_a = s.pos_a.expand(2, -1, -1)
    dm = s.patcher.model.diffusion_model
    with torch.no_grad():
        got = dm(audio, sigma, context=s.pos_v.expand(2, -1, -1), audio_context=ctx_a,
                 **{R.REFERENCE_AUDIO_KEY: ref})
        plain = dm(audio, sigma, context=s.pos_v.expand(2, -1, -1), audio_context=ctx_a)
    # ltx-core on the same sequence, built here from the convention itself
    t, n = AUDIO_T, ref.shape[2]
    tokens = torch.cat([P.patchify_audio(audio), P.patchify_audio(ref).expand(2, -1, -1)], dim=1)
    own = P.audio_positions(2, n)
    positions = torch.cat([P.audio_positions(2, t), own - (own[:, :, -1:, 1:] + 0.04)], dim=2)
    timesteps = torch.cat([sigma[:, None].expand(2, t), torch.zeros(2, n)], dim=1)
    modality = Modality(latent=tokens, sigma=sigma, timesteps=timesteps, positions=positions, context=ctx_a,
                        context_mask=None)
    with torch.no_grad():
        velocity = s.x0_model.velocity_model(None, modality, None)[1]
    ref_out = P.unpatchify_audio(velocity[:, :t], 8, 16)
    assert_close(got, ref_out, f"{version} reference audio")
    assert not torch.allclose(got, plain, atol=1e-4)  # the reference is seen


def test_identity_guidance_adds_the_difference_to_the_no_reference_pass(audio_vae, monkeypatch):
    """Sampling with LTX-2 Reference Audio = the loop where each step's x0 gets
    ``scale · (x0_with_ref − x0_without)`` (computed here from direct model calls)."""
    from openltx.host import aux_models
    from openltx.nodes.id_lora import OpenLTXReferenceAudio

    s = _setup("2.0")
    scale = 2.0
    sound = {"waveform": torch.randn(1, 2, 16000, generator=torch.Generator().manual_seed(8)) * 0.1,
             "sample_rate": 16000}
    pos, neg = s.conditioning(s.pos_v, s.pos_a), s.conditioning(s.neg_v, s.neg_a)
    model, pos_r, neg_r = OpenLTXReferenceAudio.execute(s.patcher, pos, neg, sound, audio_vae,
                                                        identity_guidance_scale=scale).args
    ref = aux_models.encode_audio(audio_vae, sound["waveform"], 16000)
    assert ref.shape[:2] == (1, 8) and ref.shape[3] == 16 and 24 <= ref.shape[2] <= 27  # ~25 per second
    assert torch.equal(pos_r[0][1][R.REFERENCE_AUDIO_KEY], ref) and torch.equal(neg_r[0][1][R.REFERENCE_AUDIO_KEY], ref)
    assert R.REFERENCE_AUDIO_KEY not in pos[0][1]  # the inputs are not modified

    params = G.StreamGuidance(cfg=3.0)
    latent = {"samples": comfy.nested_tensor.NestedTensor((torch.zeros(1, 128, 2, 2, 3),
                                                           torch.zeros(1, 8, AUDIO_T, 16)))}
    guider = MultimodalGuider(model, params, params)
    guider.set_conds(pos_r, neg_r)
    got = SamplerCustomAdvanced.execute(noise=FixedNoise(s.noise_v, s.noise_a), guider=guider,
                                        sampler=KSamplerSelect.execute(sampler_name="euler")[0],
                                        sigmas=s.sigmas.clone(), latent_image=latent)[0]["samples"].unbind()

    dm = s.patcher.model.diffusion_model
    x = [s.noise_v.clone(), s.noise_a.clone()]
    sigmas = s.sigmas
    for i in range(len(sigmas) - 1):
        sig = sigmas[i].reshape(1)

        def x0(ctx_v, ctx_a, with_ref):
            extra = {R.REFERENCE_AUDIO_KEY: ref} if with_ref else {}
            with torch.no_grad():
                v = dm([t.clone() for t in x], sig, context=ctx_v, audio_context=ctx_a, frame_rate=FPS, **extra)
            return [xi - sig * vi for xi, vi in zip(x, v)]

        c, u, noref = x0(s.pos_v, s.pos_a, True), x0(s.neg_v, s.neg_a, True), x0(s.pos_v, s.pos_a, False)
        guided = [G.combine(params, ci, ui) + scale * (ci - ni) for ci, ui, ni in zip(c, u, noref)]
        x = [xi + (xi - gi) / sigmas[i] * (sigmas[i + 1] - sigmas[i]) for xi, gi in zip(x, guided)]
    assert_close(got[0], x[0], "identity guidance video")
    assert_close(got[1], x[1], "identity guidance audio")

    # scale 0: no extra pass, the model is not patched
    model0 = OpenLTXReferenceAudio.execute(s.patcher, pos, neg, sound, audio_vae, identity_guidance_scale=0.0).args[0]
    assert not model0.model_options.get("sampler_post_cfg_function")
    with pytest.raises(ValueError, match="LTX-2 Reference Audio: the reference audio is empty"):
        OpenLTXReferenceAudio.execute(s.patcher, pos, neg, {"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000},
                                      audio_vae)
