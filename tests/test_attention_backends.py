"""Attention kernels, text K/V sharing and regional compilation equal the plain path.

* Every backend of ``ltx2.attention_backends`` against ``softmax(q·kᵀ/√d + mask)·v`` written
  out in float32: fp32 inputs within 1e-5 relative, bf16 within 2e-2 (bf16 has 8 mantissa
  bits; the kernels round q·k and the output differently).
* The transformer with an injected kernel equals the default SDPA path (fp32, 1e-6 relative),
  including the STG blend / skip and modality-isolation paths, and the appended-token mask.
* Identical prompts in one batch are projected once (caption projection, text K and V) and
  the result equals the unshared computation (fp32, 1e-6).
* ``torch.compile`` of the block (inductor on this CPU) equals eager (fp32, 1e-5) and one
  graph serves every block.
On CPU the CUDA-only kernels (cuDNN / flash priority, SageAttention) fall back to SDPA; the
GPU side is measured by ``benchmarks/gpu_matrix.sh``.
"""

from __future__ import annotations

import pytest
import torch

from ltx_reference import randomize_
from openltx.ltx2 import attention_backends as AB
from openltx.ltx2 import positions as P
from openltx.ltx2.config import TransformerConfig
from openltx.ltx2.inputs import Perturbations, Skip, SkipRule, StreamInput
from openltx.ltx2.transformer import CompileOptions, LTXAVTransformer
from openltx.model_loaders.tiny_layouts import tiny_transformer_config


def rel(a, b) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def qkv(b=2, h=3, t=7, s=5, d=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    mk = lambda *shape: torch.randn(*shape, generator=g).to(dtype)  # noqa: E731
    return mk(b, h, t, d), mk(b, h, s, d), mk(b, h, s, d)


def masks(b, t, s, dtype):
    text = torch.zeros(b, 1, 1, s, dtype=dtype)
    text[0, ..., -2:] = torch.finfo(dtype).min  # padded text tokens of item 0
    strength = torch.rand(b, 1, t, s, generator=torch.Generator().manual_seed(3)).clamp(min=0.05)
    return {"none": None, "text": text, "strength": torch.log(strength).to(dtype)}


@pytest.mark.parametrize("name", sorted(AB.BACKENDS))
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("mask_kind", ["none", "text", "strength"])
def test_backend_matches_written_out_attention(name, dtype, tol, mask_kind):
    q, k, v = qkv(dtype=dtype)
    mask = masks(2, 7, 5, dtype)[mask_kind]
    out = AB.get(name)(q, k, v, mask)
    assert out.shape == (2, 7, 3 * 16) and out.dtype == dtype
    assert rel(out, AB.reference_attention(q.float(), k.float(), v.float(), None if mask is None else mask.float())) <= tol


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown attention backend 'fa9'.*auto"):
        AB.get("fa9")


def test_sage_applies_only_where_it_can():
    sage = AB.get("sage")
    q, _, _ = qkv(d=64)
    assert not sage.applies(q, None)  # CPU
    assert not sage.traceable and AB.is_traceable(AB.get("auto")) and AB.is_traceable(AB.sdpa_attention)


# --------------------------------------------------------------------------- the transformer
FPS = 24.0


def model(version="2.0", seed=0):
    cfg = tiny_transformer_config(version)
    return randomize_(LTXAVTransformer(cfg), seed).eval()


def inputs(m, batch=3, sigma=(0.7, 0.3, 0.7), same_prompt=(0, 2), seed=1, frames=3, h=2, w=2):
    # 12 video and 18 audio tokens: unequal, so the compiled graph does not tie the two counts
    """A batch whose items ``same_prompt`` share context and σ (batched guidance passes)."""
    cfg = m.config
    g = torch.Generator().manual_seed(seed)
    sig = torch.tensor(sigma[:batch])
    tv, ta = frames * h * w, P.audio_latent_steps(8 * (frames - 1) + 1, FPS)
    cv = cfg.video_dim if cfg.caption_proj_before_connector else cfg.caption_channels
    ca = cfg.audio_dim if cfg.caption_proj_before_connector else cfg.caption_channels
    ctx_v, ctx_a = torch.randn(batch, 5, cv, generator=g), torch.randn(batch, 5, ca, generator=g)
    if same_prompt:
        i, j = same_prompt
        ctx_v[j], ctx_a[j] = ctx_v[i], ctx_a[i]
    video = StreamInput(torch.randn(batch, tv, cfg.in_channels, generator=g), sig[:, None], sig,
                        P.video_positions(batch, frames, h, w, FPS), ctx_v)
    audio = StreamInput(torch.randn(batch, ta, cfg.audio_in_channels, generator=g), sig[:, None], sig,
                        P.audio_positions(batch, ta), ctx_a)
    return video, audio


def run(m, video, audio, pert=None, **kw):
    with torch.no_grad():
        return m(video, audio, pert, **kw)


def assert_same(a, b, tol, label):
    for x, y, stream in zip(a, b, ("video", "audio")):
        assert x.shape == y.shape
        r = rel(x, y)
        assert r <= tol, f"{label} {stream}: relative difference {r:.3g} > {tol}"


PERTURBATIONS = {
    "none": None,
    "stg_some": Perturbations.build(3, [SkipRule(Skip.VIDEO_SELF_ATTN, frozenset({1})),
                                        SkipRule(Skip.AUDIO_SELF_ATTN, frozenset({0}))], items=[2]),
    "stg_all": Perturbations.build(3, [SkipRule(Skip.VIDEO_SELF_ATTN, frozenset({0, 1}))]),
    "isolation_some": Perturbations.build(3, [SkipRule(Skip.A2V_CROSS_ATTN), SkipRule(Skip.V2A_CROSS_ATTN)], items=[1]),
}


@pytest.fixture(scope="module", params=["2.0", "2.3"])
def tiny(request):
    return model(request.param)


@pytest.mark.parametrize("backend", ["auto", "sdpa_efficient", "sage"])
@pytest.mark.parametrize("pert", sorted(PERTURBATIONS))
def test_injected_kernel_equals_default(tiny, backend, pert):
    video, audio = inputs(tiny)
    p = PERTURBATIONS[pert]
    assert_same(run(tiny, video, audio, p, attention=AB.get(backend)), run(tiny, video, audio, p), 1e-6, backend)


def test_injected_kernel_is_called_for_every_attention(tiny):
    calls = []

    def counting(q, k, v, mask):
        calls.append((q.shape, mask is None))
        return AB.reference_attention(q, k, v, mask)

    video, audio = inputs(tiny)
    plain = run(tiny, video, audio)
    out = run(tiny, video, audio, attention=counting)
    assert_same(out, plain, 1e-5, "written-out kernel")
    # per block: video self + text, audio self + text, a2v, v2a
    assert len(calls) == 6 * tiny.config.num_layers
    # whole-batch STG on block 0 and 1 (video): the video self-attention kernel is not called
    calls.clear()
    run(tiny, video, audio, PERTURBATIONS["stg_all"], attention=counting)
    assert len(calls) == 5 * tiny.config.num_layers


def test_attention_strength_mask_reaches_the_kernel(tiny):
    """Appended conditioning tokens: the (B, 1, T, T) bias is passed and the result matches."""
    video, audio = inputs(tiny)
    t = video.latent.shape[1]
    strength = torch.ones(3, t, t)
    strength[:, :4, 8:] = 0.3
    video = StreamInput(**{**video.__dict__, "attention_mask": strength})
    seen = []

    def spy(q, k, v, mask):
        seen.append(None if mask is None else tuple(mask.shape))
        return AB.sdpa_attention(q, k, v, mask)

    assert_same(run(tiny, video, audio, attention=spy), run(tiny, video, audio), 1e-6, "strength mask")
    assert (3, 1, t, t) in seen


def test_all_valid_text_mask_is_dropped_and_padding_is_not(tiny):
    video, audio = inputs(tiny)
    seen = []

    def spy(q, k, v, mask):
        seen.append(mask)
        return AB.sdpa_attention(q, k, v, mask)

    ones = torch.ones(3, 5, dtype=torch.int64)
    v1 = StreamInput(**{**video.__dict__, "context_mask": ones})
    a1 = StreamInput(**{**audio.__dict__, "context_mask": ones})
    assert_same(run(tiny, v1, a1, attention=spy), run(tiny, video, audio), 1e-7, "all-valid mask")
    assert all(m is None for m in seen)
    padded = ones.clone()
    padded[1, 3:] = 0
    v2 = StreamInput(**{**video.__dict__, "context_mask": padded})
    seen.clear()
    out = run(tiny, v2, audio, attention=spy)
    assert any(m is not None and m.shape == (3, 1, 1, 5) for m in seen)
    assert rel(out[0], run(tiny, video, audio)[0]) > 1e-4  # padding matters


# --------------------------------------------------------------------------- shared text K/V
def test_identical_prompts_share_text_kv(tiny):
    video, audio = inputs(tiny)
    projected = []
    name = "caption_projection" if tiny.config.has_caption_projection else "transformer_blocks.0.attn2.to_k"
    module = tiny.get_submodule(name)
    handle = module.register_forward_hook(lambda mod, args, out: projected.append(args[0].shape[0]))
    try:
        shared = run(tiny, video, audio)
        tiny.share_text_kv = False
        separate = run(tiny, video, audio)
    finally:
        tiny.share_text_kv = True
        handle.remove()
    assert projected == [2, 3]  # items 0 and 2 share one row
    assert_same(shared, separate, 1e-6, "shared text K/V")


def test_prompt_rows_are_shared_only_when_everything_is_equal(tiny):
    video, audio = inputs(tiny, same_prompt=None)
    assert tiny._shared_rows(video, 3) is None
    video, _ = inputs(tiny)
    rows, index = tiny._shared_rows(video, 3)
    assert rows.tolist() == [0, 1] and index.tolist() == [0, 1, 0]
    # same context, different σ: equal K/V in 2.0 (no prompt AdaLN), different in 2.3
    video, _ = inputs(tiny, sigma=(0.7, 0.3, 0.5))
    shared = tiny._shared_rows(video, 3)
    assert (shared is None) == tiny.config.cross_attention_adaln
    # a different mask on the same context: not shared
    video, _ = inputs(tiny)
    mask = torch.ones(3, 5, dtype=torch.int64)
    mask[2, -1] = 0
    assert tiny._shared_rows(StreamInput(**{**video.__dict__, "context_mask": mask}), 3) is None


# --------------------------------------------------------------------------- torch.compile
@pytest.mark.slow
@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_compiled_block_equals_eager_and_is_shared_by_all_blocks(version):
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    cfg = tiny_transformer_config(version).replace(num_layers=4)
    m = randomize_(LTXAVTransformer(cfg), 0).eval()
    video, audio = inputs(m)
    options = CompileOptions()
    assert_same(run(m, video, audio, compile=options), run(m, video, audio), 1e-5, "compiled")
    # one graph (or two: dynamo may specialise once on the first block's input) serves 4 blocks
    assert counters["stats"]["unique_graphs"] <= 2
    p = PERTURBATIONS["stg_some"]
    assert_same(run(m, video, audio, p, compile=options), run(m, video, audio, p), 1e-5, "compiled, STG")
    v2, a2 = inputs(m, frames=4, h=3, w=2)  # another token count
    assert_same(run(m, v2, a2, compile=options), run(m, v2, a2), 1e-5, "compiled, other size")
    assert counters["stats"]["unique_graphs"] < 2 * cfg.num_layers  # never one graph per block
    # a host kernel torch.compile must not trace: graph breaks around it, same result
    host_kernel = lambda q, k, v, mask: AB.reference_attention(q, k, v, mask)  # noqa: E731
    assert_same(run(m, video, audio, attention=host_kernel, compile=options), run(m, video, audio), 1e-5, "opaque")
