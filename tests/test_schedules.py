"""LTX-2 sigma schedules vs ltx-core 1.0.0 (``LTX2Scheduler``, the distilled constants), the
manual-sigmas parser and the schedule nodes."""

from __future__ import annotations

import pytest
import torch

from ltx_core.components.schedulers import LTX2Scheduler

from openltx.nodes.sampling import OpenLTXDistilledSigmas, OpenLTXManualSigmas, OpenLTXScheduler
from openltx.samplers import schedules


@pytest.mark.parametrize("steps", [2, 3, 8, 15, 30, 40])
@pytest.mark.parametrize("latent_shape", [None, (1, 128, 16, 16, 24), (1, 128, 2, 3, 2), (2, 128, 4, 8, 8)])
@pytest.mark.parametrize("stretch,terminal", [(True, 0.1), (False, 0.1), (True, 0.3), (True, 0.0)])
def test_ltx2_schedule_equals_ltx_core(steps, latent_shape, stretch, terminal):
    latent = None if latent_shape is None else torch.empty(latent_shape)
    ref = LTX2Scheduler().execute(steps=steps, latent=latent, stretch=stretch, terminal=terminal)
    tokens = None if latent_shape is None else schedules.token_count(latent_shape)
    ours = schedules.ltx2_sigmas(steps, tokens, terminal=terminal, stretch=stretch)
    assert ours.dtype == torch.float32 and ours.shape == (steps + 1,)
    assert torch.equal(ours, ref), (ours - ref).abs().max()


def test_spec_examples():
    assert schedules.shift_for_tokens(4096) == pytest.approx(2.05)
    assert schedules.shift_for_tokens(1024) == pytest.approx(0.95)
    assert schedules.shift_for_tokens(6144) == pytest.approx(2.7833, abs=1e-4)
    eight = schedules.ltx2_sigmas(8)
    expected = [1, 0.9657, 0.9219, 0.8639, 0.7834, 0.6646, 0.4710, 0.1, 0]
    assert eight.tolist() == pytest.approx(expected, abs=1e-4)
    assert schedules.ltx2_sigmas(40)[-5:].tolist() == pytest.approx([0.4207, 0.3378, 0.2339, 0.1, 0], abs=1e-4)


def test_distilled_lists_equal_the_reference_constants():
    from test_steppers import ltx_pipelines_module

    constants = ltx_pipelines_module("ltx_pipelines.utils.constants")
    DISTILLED_SIGMA_VALUES, STAGE_2_DISTILLED_SIGMA_VALUES = (
        constants.DISTILLED_SIGMA_VALUES, constants.STAGE_2_DISTILLED_SIGMA_VALUES)

    assert list(schedules.DISTILLED_STAGE1) == list(DISTILLED_SIGMA_VALUES)
    assert list(schedules.DISTILLED_STAGE2) == list(STAGE_2_DISTILLED_SIGMA_VALUES)


def test_distilled_values():
    s1 = OpenLTXDistilledSigmas.execute(stage="stage1 (8 steps)")[0]
    s2 = OpenLTXDistilledSigmas.execute(stage="stage2 (3 steps)")[0]
    assert s1.tolist() == pytest.approx([1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0])
    assert s2.tolist() == pytest.approx([0.909375, 0.725, 0.421875, 0.0])
    with pytest.raises(ValueError, match="unknown distilled stage 'stage3'"):
        OpenLTXDistilledSigmas.execute(stage="stage3")


def test_scheduler_node_with_and_without_latent():
    from openltx.nodes.latents import OpenLTXEmptyLatent

    plain = OpenLTXScheduler.execute(steps=8, terminal=0.1, stretch=True)[0]
    assert torch.equal(plain, LTX2Scheduler().execute(steps=8))
    latent = OpenLTXEmptyLatent.execute(width=768, height=512, frames=121, fps=24.0, batch_size=1)[0]
    video = latent["samples"].unbind()[0]
    shifted = OpenLTXScheduler.execute(steps=15, terminal=0.1, stretch=True, latent=latent)[0]
    assert torch.equal(shifted, LTX2Scheduler().execute(steps=15, latent=video))
    audio_only = {"samples": latent["samples"].unbind()[1]}
    with pytest.raises(ValueError, match="LTX-2 Scheduler: the latent has no video stream"):
        OpenLTXScheduler.execute(steps=8, terminal=0.1, stretch=True, latent=audio_only)
    with pytest.raises(ValueError, match="stretch needs at least 2 steps"):
        OpenLTXScheduler.execute(steps=1, terminal=0.1, stretch=True)
    assert OpenLTXScheduler.execute(steps=1, terminal=0.1, stretch=False)[0].tolist() == pytest.approx([1.0, 0.0])


def test_manual_sigmas_parse():
    out = OpenLTXManualSigmas.execute(sigmas="0.909375, 0.725,\n0.421875 0,")[0]
    assert out.dtype == torch.float32 and out.tolist() == pytest.approx([0.909375, 0.725, 0.421875, 0.0])


@pytest.mark.parametrize("text,match", [
    ("1.0, abc, 0", r"sigma #2 'abc' is not a number"),
    ("1.0, 1.5, 0", r"sigma #2 = 1.5 is outside \[0, 1\]"),
    ("1.0, 0.5, 0.5, 0", r"sigma #3 = 0.5 is not below the previous value 0.5"),
    ("0.3, 0.7", r"sigma #2 = 0.7 is not below"),
    ("1.0", r"need at least two sigmas"),
    ("", r"need at least two sigmas"),
    ("1, nan", r"sigma #2 = nan is outside"),
])
def test_manual_sigmas_errors(text, match):
    with pytest.raises(ValueError, match=match):
        schedules.parse_sigmas(text)
    message = OpenLTXManualSigmas.validate_inputs(sigmas=text)
    assert isinstance(message, str) and message.startswith("LTX-2 Manual Sigmas:")
    with pytest.raises(ValueError, match="LTX-2 Manual Sigmas: " + match):
        OpenLTXManualSigmas.execute(sigmas=text)


# --- schema and registration of the sampling nodes ------------------------------------------
def test_sampling_nodes_are_documented_and_registered(openltx_pack, repo_root):
    import asyncio

    from openltx.nodes import sampling

    expected = {"OpenLTXScheduler", "OpenLTXDistilledSigmas", "OpenLTXManualSigmas", "OpenLTXSampler", "OpenLTXNoNoise"}
    assert {n.__name__ for n in sampling.NODES} == expected
    for node in sampling.NODES:
        schema = node.GET_SCHEMA()
        assert schema.node_id == node.__name__ and schema.display_name.startswith("LTX-2 ")
        assert schema.category == "OpenLTX/sampling" and schema.description.strip()
        for item in list(schema.inputs) + list(schema.outputs):
            assert item.tooltip and item.tooltip.strip(), f"{schema.node_id}.{item.id} has no tooltip"
        assert (repo_root / "web" / "docs" / f"{schema.node_id}.md").is_file(), f"no help page for {schema.node_id}"
    extension = asyncio.run(openltx_pack.comfy_entrypoint())
    ids = {n.GET_SCHEMA().node_id for n in asyncio.run(extension.get_node_list())}
    assert expected <= ids
