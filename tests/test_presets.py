"""Named presets and defaults: the guider presets, the distilled sigma lists, the node defaults.

Sources (read for this test's constants, not shipped): ltx_pipelines 1.0.0
``utils/constants.py`` (checked live when it imports), and Lightricks' ComfyUI-LTXVideo
``example_workflows``: ``2.3/LTX-2.3_T2V_I2V_Single_Stage_Distilled_Full.json`` (GuiderParameters
VIDEO cfg 3 / stg 1 / rescale 0.9 / modality 3, AUDIO cfg 7 / stg 1 / rescale 0.7 / modality 3,
MultimodalGuider STG block "28"), ``2.3/LTX-2.3_T2V_I2V_Two_Stage_Distilled.json`` (stage 2
ManualSigmas "0.85, 0.7250, 0.4219, 0.0"), ``2.0/LTX-2_T2V_Full_wLora.json`` (CFGGuider 4,
LTXVScheduler 20 steps, res_2s, 1920x1088 scaled by 0.5 = 960x544).  Widget values that old
workflows saved must stay valid: options are only added.
"""

from __future__ import annotations

import pytest
import torch

from openltx.nodes.guidance import PRESETS as MENU, OpenLTXMultimodalGuider
from openltx.nodes.latents import OpenLTXEmptyLatent
from openltx.nodes.sampling import OpenLTXDistilledSigmas, OpenLTXSampler, OpenLTXScheduler
from openltx.samplers import guidance as G
from openltx.samplers import schedules


def _inputs(node) -> dict:
    return {i.id: i for i in node.define_schema().inputs}


def test_lightricks_comfyui_23_preset_has_video_rescale_09():
    video, audio = G.preset("LTX-2.3")
    assert video == G.StreamGuidance(cfg=3.0, stg=1.0, stg_blocks=(28,), rescale=0.9, modality_scale=3.0)
    assert audio == G.StreamGuidance(cfg=7.0, stg=1.0, stg_blocks=(28,), rescale=0.7, modality_scale=3.0)


def test_pipeline_presets_equal_ltx_pipelines_constants():
    from test_steppers import ltx_pipelines_module

    c = ltx_pipelines_module("ltx_pipelines.utils.constants")

    def ours(p):
        return (p.cfg, p.stg, tuple(p.stg_blocks), p.rescale, p.modality_scale, p.skip_step)

    def theirs(p):
        return (p.cfg_scale, p.stg_scale, tuple(p.stg_blocks), p.rescale_scale, p.modality_scale, p.skip_step)

    for name, params in (("LTX-2.0", c.LTX_2_PARAMS), ("LTX-2.3 pipelines", c.LTX_2_3_PARAMS),
                         ("LTX-2.3 HQ", c.LTX_2_3_HQ_PARAMS)):  # fmt: skip
        video, audio = G.preset(name)
        assert ours(video) == theirs(params.video_guider_params), name
        assert ours(audio) == theirs(params.audio_guider_params), name


def test_comfyui_20_and_unguided_presets():
    assert G.preset("LTX-2.0 ComfyUI (cfg 4)") == (G.StreamGuidance(cfg=4.0), G.StreamGuidance(cfg=4.0))
    video, audio = G.preset("none (distilled)")
    plan = G.plan_step(video, audio, 0)
    assert plan.passes == (G.COND,)  # one pass per step
    plan = G.plan_step(*G.preset("LTX-2.0 ComfyUI (cfg 4)"), 0)
    assert plan.passes == (G.COND, G.UNCOND)


def test_guider_menu_keeps_the_old_values_and_offers_every_preset():
    assert MENU[:2] == ["LTX-2.0", "LTX-2.3"] and MENU[-1] == "custom"  # saved workflows stay valid
    assert set(MENU) == set(G.PRESETS) | {"custom"} and "LTX-2.3 HQ" in MENU
    preset_input = _inputs(OpenLTXMultimodalGuider)["preset"]
    assert list(preset_input.options) == MENU
    for name in G.PRESETS:
        assert name in preset_input.tooltip and name in G.PRESET_NOTES


def test_distilled_sigma_lists():
    stages = _inputs(OpenLTXDistilledSigmas)["stage"].options
    assert stages[:2] == ["stage1 (8 steps)", "stage2 (3 steps)"]  # old values first, unchanged
    s23 = OpenLTXDistilledSigmas.execute(stage="stage2 LTX-2.3 (3 steps from 0.85)")[0]
    published = torch.tensor([float(v) for v in "0.85, 0.7250, 0.4219, 0.0".split(",")])  # ManualSigmas text
    assert s23.dtype == torch.float32 and torch.equal(s23, published)
    assert schedules.distilled_sigmas("stage2 (3 steps)").tolist() == pytest.approx([0.909375, 0.725, 0.421875, 0])


def test_node_defaults_are_lightricks_comfyui_ones():
    latent = _inputs(OpenLTXEmptyLatent)
    assert (latent["width"].default, latent["height"].default) == (960, 544)
    assert latent["streams"].default == "video+audio" and latent["streams"].optional
    assert _inputs(OpenLTXScheduler)["steps"].default == 20
    assert _inputs(OpenLTXSampler)["sampler"].default == "res_2s"
    # old API prompts (no "streams") still run
    out = OpenLTXEmptyLatent.execute(width=64, height=64, frames=9, fps=24.0, batch_size=1)[0]
    assert len(out["samples"].unbind()) == 2
