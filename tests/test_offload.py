"""Block streaming (host/offload.py) on the simulated CPU device.

Streaming only moves tensors, so every streamed output must equal the fully resident one
exactly (``torch.equal``), and the bookkeeping of weight bytes on the "device" must stay
within the budget while blocks really are streamed.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ltx_reference import randomize_
from test_transformer_parity import tiny_header, wide_header

from openltx.ltx2 import positions as P
from openltx.ltx2.config import TransformerConfig
from openltx.ltx2.inputs import Perturbations, Skip, SkipRule, StreamInput
from openltx.ltx2.ops import TorchOps
from openltx.ltx2.transformer import LTXAVTransformer
from openltx.host.offload import enable_block_streaming, module_bytes, tensor_bytes
from openltx.host import offload_policy as policy

LAYERS = 4


def build(header: dict, operations=None, seed: int = 0) -> LTXAVTransformer:
    cfg = TransformerConfig.from_header(dict(header, num_layers=LAYERS))
    return randomize_(LTXAVTransformer(cfg, operations=operations), seed).eval()


def inputs(model: LTXAVTransformer, batch=2, frames=3, height=2, width=3, text=5, seed=1):
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    sig = torch.tensor([0.7, 0.3][:batch])
    tv, ta = frames * height * width, P.audio_latent_steps(8 * (frames - 1) + 1, 24.0)
    cv = cfg.video_dim if cfg.caption_proj_before_connector else cfg.caption_channels
    ca = cfg.audio_dim if cfg.caption_proj_before_connector else cfg.caption_channels
    video = StreamInput(torch.randn(batch, tv, cfg.in_channels, generator=g), sig[:, None].expand(batch, tv).clone(),
                        sig, P.video_positions(batch, frames, height, width, 24.0), torch.randn(batch, text, cv, generator=g))
    audio = StreamInput(torch.randn(batch, ta, cfg.audio_in_channels, generator=g), sig[:, None].expand(batch, ta).clone(),
                        sig, P.audio_positions(batch, ta), torch.randn(batch, text, ca, generator=g))
    return video, audio


def run(model, video, audio, pert=None, mode=torch.no_grad):
    with mode():
        return model(video, audio, pert)


def sizes(model):
    blocks = [module_bytes(b) for b in model.transformer_blocks]
    return module_bytes(model) - sum(blocks), blocks


def assert_same(a, b):
    for x, y in zip(a, b):
        assert (x is None) == (y is None)
        if x is not None:
            assert torch.equal(x, y), f"streamed output differs: max {(x - y).abs().max().item():.3g}"


@pytest.fixture(scope="module", params=["2.0", "2.3"])
def model(request):
    return build(tiny_header(request.param))


@pytest.mark.parametrize("prefetch", [1, 0])
def test_streamed_equals_resident_within_budget(model, prefetch):
    video, audio = inputs(model)
    resident = run(model, video, audio)
    fixed, blocks = sizes(model)
    # room for one resident block plus the window of 1 + prefetch streamed blocks
    budget = fixed + (prefetch + 2) * max(blocks)
    assert budget < module_bytes(model)
    h = enable_block_streaming(model, budget, "cpu", prefetch=prefetch)
    try:
        assert len(h.resident_blocks) == 1 and len(h.streamed_blocks) == LAYERS - 1
        streamed = run(model, video, audio)
        assert_same(streamed, resident)
        assert h.transfers == LAYERS - 1
        assert fixed + max(blocks) < h.peak_bytes <= budget
        assert h.current_bytes == fixed + max(blocks)  # streamed copies released after the forward
        # inference_mode and a second forward behave the same
        assert_same(run(model, video, audio, mode=torch.inference_mode), resident)
        assert h.transfers == 2 * (LAYERS - 1)
    finally:
        h.disable()


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_mid_config_streamed_equals_resident(version):
    """Real head sizes (video 1024, audio 512 wide), one resident block, STG on a streamed one."""
    model = build(wide_header(version))
    video, audio = inputs(model)
    stg = Perturbations.build(2, [SkipRule(Skip.VIDEO_SELF_ATTN, frozenset({1}))], items=[1])
    expected = [run(model, video, audio), run(model, video, audio, stg)]
    fixed, blocks = sizes(model)
    budget = fixed + 3 * max(blocks)
    h = enable_block_streaming(model, budget, "cpu")
    try:
        assert len(h.streamed_blocks) == LAYERS - 1
        assert_same(run(model, video, audio), expected[0])
        assert_same(run(model, video, audio, stg), expected[1])
        assert fixed + max(blocks) < h.peak_bytes <= budget
    finally:
        h.disable()


def test_every_block_streamed(model):
    video, audio = inputs(model)
    resident = run(model, video, audio)
    fixed, blocks = sizes(model)
    budget = fixed + 2 * max(blocks)
    h = enable_block_streaming(model, budget, "cpu")
    seen = []  # registered after ours, so it sees what the block computes with
    probe = model.transformer_blocks[1].register_forward_pre_hook(
        lambda m, a: seen.append(m.attn1.to_q.weight is h.blocks[1].slots[0].home or
                                 any(m.attn1.to_q.weight is s.home for s in h.blocks[1].slots)))
    try:
        assert h.resident_blocks == [] and h.peak_bytes == fixed
        assert_same(run(model, video, audio), resident)
        assert seen == [False]  # the block ran on its device copy, not on the CPU home
        assert any(model.transformer_blocks[1].attn1.to_q.weight is s.home for s in h.blocks[1].slots)
        assert h.peak_bytes == budget  # the window was used, and never exceeded
    finally:
        probe.remove()
        h.disable()


def test_stg_and_video_only_under_streaming(model):
    video, audio = inputs(model)
    stg = Perturbations.build(2, [SkipRule(Skip.VIDEO_SELF_ATTN, frozenset({1, 3})),
                                  SkipRule(Skip.AUDIO_SELF_ATTN, frozenset({2}))], items=[1])
    iso = Perturbations.build(2, [SkipRule(Skip.A2V_CROSS_ATTN), SkipRule(Skip.V2A_CROSS_ATTN)])
    cases = [(video, audio, stg), (video, audio, iso), (video, None, None), (None, audio, None)]
    expected = [run(model, *c) for c in cases]
    fixed, blocks = sizes(model)
    h = enable_block_streaming(model, fixed + 2 * max(blocks), "cpu")
    try:
        for case, want in zip(cases, expected):
            assert_same(run(model, *case), want)
        assert h.peak_bytes <= h.budget_bytes
    finally:
        h.disable()


def test_disable_removes_hooks_and_restores(model):
    video, audio = inputs(model)
    resident = run(model, video, audio)
    fixed, blocks = sizes(model)
    h = enable_block_streaming(model, fixed + 2 * max(blocks), "cpu")
    assert h.hook_count == 2 + 2 * LAYERS
    assert model._forward_pre_hooks and model.transformer_blocks[0]._forward_pre_hooks
    h.disable(device="cpu")
    assert h.hook_count == 0
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert all(not b._forward_pre_hooks and not b._forward_hooks for b in model.transformer_blocks)
    assert_same(run(model, video, audio), resident)


def test_interrupted_forward_releases_blocks(model):
    video, audio = inputs(model)
    fixed, blocks = sizes(model)
    h = enable_block_streaming(model, fixed + 2 * max(blocks), "cpu")
    try:
        def stop(index):
            if index == 1:
                raise InterruptedError

        with pytest.raises(InterruptedError), torch.no_grad():
            model(video, audio, block_callback=stop)
        assert h.current_bytes == fixed
        assert all(not b.on_device and b.pending is None for b in h.blocks)
    finally:
        h.disable()


def test_budget_at_model_size_installs_nothing(model):
    h = enable_block_streaming(model, module_bytes(model), "cpu")
    assert h.streamed_blocks == [] and h.hook_count == 0
    h.disable()


def test_budget_too_small_names_minimum(model):
    fixed, blocks = sizes(model)
    with pytest.raises(ValueError, match=r"too small.*at least"):
        enable_block_streaming(model, fixed + max(blocks), "cpu")
    assert not model._forward_pre_hooks


# ----------------------------------------------------------------------------- weight formats
class PackedLinear(torch.nn.Linear):
    """A stand-in quantized layer: fp8 weight parameter + fp32 scale buffer + the bias kept
    as raw uint8 bytes in a buffer (like GGUF's packed blocks)."""

    def pack_(self) -> None:
        w = self.weight.detach()
        scale = (w.abs().amax() / 448.0).clamp(min=1e-12)
        self.weight = torch.nn.Parameter((w / scale).to(torch.float8_e4m3fn), requires_grad=False)
        self.register_buffer("weight_scale", scale)
        bias = self.bias.detach().contiguous()
        self.bias = None
        self.register_buffer("packed_bias", bias.view(torch.uint8).clone())

    def forward(self, x):
        if self.weight.dtype != torch.float8_e4m3fn:
            return super().forward(x)
        bias = self.packed_bias.view(torch.float32).to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype) * self.weight_scale.to(x.dtype), bias)


class PackedOps(TorchOps):
    Linear = PackedLinear


@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_quantized_blocks_stream_exactly(version):
    model = build(tiny_header(version), operations=PackedOps)
    for block in model.transformer_blocks:
        for m in block.modules():
            if isinstance(m, PackedLinear):
                m.pack_()
    tensors = [t for m in model.modules() for t in (*m._parameters.values(), *m._buffers.values()) if t is not None]
    assert {torch.float8_e4m3fn, torch.uint8, torch.float32} <= {t.dtype for t in tensors}
    assert module_bytes(model) == sum(tensor_bytes(t) for t in tensors)
    video, audio = inputs(model)
    resident = run(model, video, audio)
    fixed, blocks = sizes(model)
    h = enable_block_streaming(model, fixed + 2 * max(blocks), "cpu")
    try:
        assert_same(run(model, video, audio), resident)
        assert h.peak_bytes <= h.budget_bytes
        # the fp8 / uint8 tensors were really swapped: the resting ones are the originals
        lin = model.transformer_blocks[0].attn1.to_q
        assert lin.weight.dtype == torch.float8_e4m3fn and lin.packed_bias.dtype == torch.uint8
    finally:
        h.disable()


# ----------------------------------------------------------------------------- policy
def test_parse_offload():
    assert policy.parse_offload("off") is None and policy.parse_offload(None) is None
    assert policy.parse_offload("auto") == "auto"
    assert policy.parse_offload("8") == 8 * 2**30 == policy.parse_offload("8GB") == policy.parse_offload(8)
    with pytest.raises(ValueError, match="auto.*off"):
        policy.parse_offload("lots")


def test_auto_budget_and_ensure_streaming():
    model = build(tiny_header("2.3"))
    fixed, blocks = sizes(model)
    total = module_bytes(model)
    assert policy.auto_budget(model, "cpu", free_bytes=10, reserve_bytes=4) == total + 6
    assert policy.auto_budget(model, "cpu", free_bytes=0, reserve_bytes=total + 1) == 0
    # free memory that leaves room for the window only -> every block streamed
    reserve = policy.activation_reserve(0)
    free = fixed + 2 * max(blocks) - total + reserve
    h = policy.ensure_streaming(model, "auto", "cpu", free_bytes=free)
    assert h.resident_blocks == [] and policy.streaming_handle(model) is h
    assert policy.ensure_streaming(model, "auto", "cpu", free_bytes=free) is h  # unchanged model: same handle
    # someone else (ComfyUI unloading / re-patching) replaces a tensor -> rebuilt on the next call
    model.transformer_blocks[2].attn1.to_q.weight = torch.nn.Parameter(
        model.transformer_blocks[2].attn1.to_q.weight.detach().clone(), requires_grad=False)
    assert not h.is_current()
    h2 = policy.ensure_streaming(model, "auto", "cpu", free_bytes=free)
    assert h2 is not h and h.hook_count == 0 and h2.hook_count > 0
    # a fixed budget is capped by what is free
    h2.disable()
    policy._HANDLES.pop(model)
    h3 = policy.ensure_streaming(model, 1000.0, "cpu", free_bytes=free)
    assert h3.budget_bytes <= fixed + 2 * max(blocks)
    h3.disable()
    assert policy.ensure_streaming(model, "off", "cpu") is None
