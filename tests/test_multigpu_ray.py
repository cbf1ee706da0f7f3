"""The Ray-backed MODEL in-process (local Ray, CPU workers, gloo): equal to the single-process MODEL."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("ray")

from openltx.host import model_loading as loading
from openltx.host import multigpu as MG
from openltx.host.model import MULTIGPU_KEY
from openltx.model_loaders import tiny_layouts as T

PREFIX = "model.diffusion_model."


@pytest.fixture(scope="module")
def tiny():
    cfg = T.tiny_transformer_config("2.0")
    sd = {k.removeprefix(PREFIX): v for k, v in T.tiny_state_dict("2.0", ["transformer"], seed=4).items()}
    return loading.build_ltx2_model(cfg, sd, weight_dtype=torch.float32)


def forward(patcher, batch=2):
    g = torch.Generator().manual_seed(1)
    cc = patcher.model.model_config
    video, audio = torch.randn(batch, 128, 2, 2, 3, generator=g), torch.randn(batch, 8, 9, 16, generator=g)
    ctx_v = torch.randn(batch, 5, cc.video_context_width, generator=g)
    ctx_a = torch.randn(batch, 5, cc.audio_context_width, generator=g)
    options = patcher.model_options.get("transformer_options", {})
    with torch.no_grad():
        v, a = patcher.model.diffusion_model([video, audio], torch.tensor([0.7, 0.4][:batch]), context=ctx_v,
                                             audio_context=ctx_a, frame_rate=24.0, transformer_options=options)
    return torch.cat([v.flatten(), a.flatten()])


def test_ray_model_equals_single_process(tiny):
    multi = MG.multigpu_model(tiny, MG.MultiGPUOptions(workers=2, device="cpu"))
    runner = multi.model_options["transformer_options"][MULTIGPU_KEY]
    try:
        ref = forward(tiny)
        got = forward(multi)
        assert ((got - ref).norm() / ref.norm()).item() < 1e-5
        print(runner.plan, runner.stats())
    finally:
        runner.shutdown()
