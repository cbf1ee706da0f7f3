"""LTX-2.5 sampling constants equal diffusers 0.42.1's (the README note's lists)."""

from __future__ import annotations

import pytest
import torch

from ltx25_oracle import run_oracle
from openltx.samplers import schedules as sch


def test_ltx25_distilled_lists_equal_diffusers(tmp_path):
    out = run_oracle("diffusers", """
        from diffusers.pipelines.ltx2 import utils
        out.update(stage1=list(utils.DISTILLED_SIGMA_VALUES), stage2=list(utils.STAGE_2_DISTILLED_SIGMA_VALUES),
                   crf=utils.LTX2_5_IMAGE_CRF)
    """, {}, tmp_path)
    # diffusers' lists omit the final 0 (its flow-match scheduler appends it); ours carry it
    assert list(sch.LTX25_DISTILLED_STAGE1) == out["stage1"] + [0.0]
    assert list(sch.LTX25_DISTILLED_STAGE2) == out["stage2"] + [0.0]
    assert sch.LTX25_IMAGE_CRF == out["crf"] == 18


def test_ltx25_lists_as_the_readme_states():
    assert sch.LTX25_DISTILLED_STAGE1 == (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0)
    assert sch.LTX25_DISTILLED_STAGE2 == (0.909375, 0.725, 0.421875, 0.0)
    got = sch.distilled_sigmas("stage2 (3 steps)", version="2.5")
    assert got.dtype == torch.float32 and torch.equal(got, torch.tensor(sch.LTX25_DISTILLED_STAGE2))
    assert torch.equal(sch.distilled_sigmas("stage1 (8 steps)"), sch.distilled_sigmas("stage1 (8 steps)", "2.5"))
    with pytest.raises(ValueError, match="model version"):
        sch.distilled_sigmas("stage1 (8 steps)", version="3.0")
