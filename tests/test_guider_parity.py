"""samplers/guidance.py against ltx-core's MultiModalGuider on the same x0 predictions.

Given identical cond / uncond / perturbed / isolated x0 tensors, our per-stream combination
must equal ``MultiModalGuider.calculate`` (fp32, relative error ≤ 1e-5; in practice bit-equal),
and the passes, perturbation rules and skip steps must be those ltx_pipelines' helpers build.
"""

from __future__ import annotations

import pytest
import torch

from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams
from ltx_core.guidance.perturbations import PerturbationType

from ltx_reference import to_perturbations
from openltx.ltx2.inputs import Perturbations, Skip
from openltx.samplers import guidance as G

TOL = 1e-5


def reference_params(p: G.StreamGuidance) -> MultiModalGuiderParams:
    return MultiModalGuiderParams(
        cfg_scale=p.cfg, stg_scale=p.stg, stg_blocks=list(p.stg_blocks), rescale_scale=p.rescale,
        modality_scale=p.modality_scale, skip_step=p.skip_step,
    )


def predictions(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(shape, generator=g)
    # The other passes sit near the conditioned one, as real predictions do.
    return [c] + [c + 0.3 * torch.randn(shape, generator=g) for _ in range(3)]


def reference_pred(params: G.StreamGuidance, c, u, p, i):
    """What ltx_pipelines' denoising step hands MultiModalGuider.calculate (0.0 for a pass not run)."""
    guider = MultiModalGuider(reference_params(params))
    return guider.calculate(
        c,
        u if guider.do_unconditional_generation() else 0.0,
        p if guider.do_perturbed_generation() else 0.0,
        i if guider.do_isolated_modality_generation() else 0.0,
    )


def assert_close(ours, ref, label):
    rel = ((ours - ref).norm() / ref.norm()).item()
    assert rel <= TOL, f"{label}: relative error {rel:.3g}"


CASES = {
    "cfg only": G.StreamGuidance(cfg=4.0),
    "cfg+stg": G.StreamGuidance(cfg=3.0, stg=1.0, stg_blocks=(29,)),
    "all terms + rescale": G.StreamGuidance(cfg=3.0, stg=1.0, stg_blocks=(29,), rescale=0.7, modality_scale=3.0),
    "rescale 1, no stg": G.StreamGuidance(cfg=7.0, rescale=1.0, modality_scale=3.0),
    "neutral": G.StreamGuidance(),
}
SHAPES = {"video (B,C,F,H,W)": (2, 128, 3, 2, 3), "audio (B,C,T,M)": (2, 8, 7, 16)}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("name", CASES)
def test_combination_equals_reference(name, shape):
    params = CASES[name]
    c, u, p, i = predictions(shape)
    outputs = {G.COND: c}
    if params.needs_uncond:
        outputs[G.UNCOND] = u
    if params.needs_perturbed:
        outputs[G.PERTURBED] = p
    if params.needs_isolated:
        outputs[G.ISOLATED] = i
    ours = G.guide_stream(params, outputs)
    ref = reference_pred(params, c, u, p, i)
    assert_close(ours, ref, name)
    assert torch.equal(ours, ref), f"{name}: not bit-equal (max diff {(ours - ref).abs().max():.3g})"


def test_streams_use_their_own_params_and_layout_does_not_matter():
    """Video and audio with the LTX-2.0 presets; the reference works on (B, T, C) tokens, we on
    latent layouts: the global std makes the layout irrelevant."""
    video_p, audio_p = G.preset("LTX-2.0")
    for params, shape, seed in ((video_p, (1, 128, 2, 2, 3), 1), (audio_p, (1, 8, 5, 16), 2)):
        c, u, p, i = predictions(shape, seed)
        ours = G.combine(params, c, u, p, i)
        tok = lambda t: t.flatten(2).transpose(1, 2)  # noqa: E731  (B, tokens, C)
        ref = reference_pred(params, tok(c), tok(u), tok(p), tok(i))
        assert_close(tok(ours), ref, "preset")
    c, u, p, i = predictions((1, 8, 5, 16), 3)
    assert not torch.allclose(G.combine(video_p, c, u, p, i), G.combine(audio_p, c, u, p, i))


def test_rescale_changes_the_result_and_matches_std():
    c, u, p, i = predictions((1, 16, 40))
    plain = G.combine(G.StreamGuidance(cfg=5.0), c, u)
    full = G.combine(G.StreamGuidance(cfg=5.0, rescale=1.0), c, u)
    assert torch.allclose(full.std(), c.std(), rtol=1e-5)
    assert not torch.allclose(plain, full)


def test_presets_are_the_reference_pipelines_defaults():
    """ltx_pipelines/utils/constants.py: LTX_2_PARAMS, LTX_2_3_PARAMS, LTX_2_3_HQ_PARAMS."""
    v, a = G.preset("LTX-2.0")
    assert (v.cfg, v.stg, v.stg_blocks, v.rescale, v.modality_scale, v.skip_step) == (3.0, 1.0, (29,), 0.7, 3.0, 0)
    assert (a.cfg, a.stg, a.stg_blocks, a.rescale, a.modality_scale, a.skip_step) == (7.0, 1.0, (29,), 0.7, 3.0, 0)
    v3, a3 = G.preset("LTX-2.3 pipelines")
    assert v3 == G.StreamGuidance(3.0, 1.0, (28,), 0.7, 3.0) and a3 == G.StreamGuidance(7.0, 1.0, (28,), 0.7, 3.0)
    vh, ah = G.preset("LTX-2.3 HQ")
    assert (vh.cfg, vh.stg, vh.rescale, vh.modality_scale) == (3.0, 0.0, 0.45, 3.0)
    assert (ah.cfg, ah.stg, ah.rescale, ah.modality_scale) == (7.0, 0.0, 1.0, 3.0)
    with pytest.raises(ValueError, match="LTX-2.0"):
        G.preset("LTX-9")


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_skip_step_matches_reference(k):
    ours = G.StreamGuidance(cfg=3.0, skip_step=k)
    ref = MultiModalGuider(reference_params(ours))
    assert [ours.skips(s) for s in range(12)] == [ref.should_skip_step(s) for s in range(12)]
    assert not ours.skips(0)


def test_plan_matches_the_reference_passes():
    """Passes and their perturbations as ltx_pipelines' multi_modal_guider_denoising_func builds them."""
    video = G.StreamGuidance(cfg=3.0, stg=1.0, stg_blocks=(29,), modality_scale=3.0)
    audio = G.StreamGuidance(cfg=1.0, stg=1.0, stg_blocks=(28, 29), modality_scale=1.0)
    plan = G.plan_step(video, audio, 0)
    assert plan.passes == (G.COND, G.UNCOND, G.PERTURBED, G.ISOLATED)
    stg = to_perturbations(Perturbations((plan.rules[G.PERTURBED],)), 1).perturbations[0]
    got = sorted((p.type.value, tuple(p.blocks)) for p in stg.perturbations)
    assert got == sorted([(PerturbationType.SKIP_VIDEO_SELF_ATTN.value, (29,)),
                          (PerturbationType.SKIP_AUDIO_SELF_ATTN.value, (28, 29))])
    iso = to_perturbations(Perturbations((plan.rules[G.ISOLATED],)), 1).perturbations[0]
    assert sorted(p.type.value for p in iso.perturbations) == ["skip_a2v_cross_attn", "skip_v2a_cross_attn"]
    assert all(p.blocks is None for p in iso.perturbations)
    # Only video STG: the perturbed pass leaves audio self-attention alone.
    plan = G.plan_step(video, G.StreamGuidance(cfg=7.0), 0)
    assert [r.kind for r in plan.rules[G.PERTURBED]] == [Skip.VIDEO_SELF_ATTN]
    # CFG-only: two passes.  Neutral: one.
    assert G.plan_step(G.StreamGuidance(cfg=3.0), G.StreamGuidance(cfg=7.0), 0).passes == (G.COND, G.UNCOND)
    assert G.plan_step(G.StreamGuidance(), G.StreamGuidance(), 0).passes == (G.COND,)
    # A video-only latent ignores the audio parameters.
    assert G.plan_step(G.StreamGuidance(cfg=3.0), None, 0).passes == (G.COND, G.UNCOND)


def test_plan_when_streams_skip():
    both = G.plan_step(G.StreamGuidance(cfg=3.0, skip_step=1), G.StreamGuidance(cfg=7.0, skip_step=1), 1)
    assert both.passes == () and both.skip_video and both.skip_audio
    one = G.plan_step(G.StreamGuidance(cfg=3.0, skip_step=1), G.StreamGuidance(cfg=7.0), 1)
    assert one.passes == (G.COND, G.UNCOND) and one.skip_video and not one.skip_audio


def test_step_index_of_steps_and_substeps():
    sigmas = torch.tensor([1.0, 0.9, 0.5, 0.1, 0.0])
    assert [G.step_index(float(s), sigmas) for s in sigmas[:-1]] == [0, 1, 2, 3]
    assert G.step_index((0.9 * 0.5) ** 0.5, sigmas) == 1  # res_2s sub-step
    assert G.step_index(0.7, None) == 0


def test_parse_blocks():
    assert G.parse_blocks("29") == (29,)
    assert G.parse_blocks(" 28, 29 ,") == (28, 29)
    assert G.parse_blocks("") == ()
    with pytest.raises(ValueError, match="not a block number"):
        G.parse_blocks("a")
    with pytest.raises(ValueError, match=r"block 48 does not exist.*0 … 47"):
        G.parse_blocks("48", num_blocks=48)
