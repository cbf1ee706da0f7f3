"""Cases for the sharded-forward tests, run inside ``torch.multiprocessing`` ranks (gloo, CPU).

Spawned ranks are fresh interpreters: this module registers the pack as ``openltx`` (a bare
package, no ComfyUI) before importing it, so it works in the ranks as in pytest.

Each case builds the same tiny LTX-2 transformer (4 heads per attention, so Ulysses can take
4 ranks; random weights with q/k-norm weights of order 1 so position errors show) and the
same inputs on every rank, runs the single-process forward and ``sharded_forward`` and
returns the relative errors of every stream.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if "openltx" not in sys.modules:
    sys.path.insert(0, str(REPO_ROOT / "parallel"))
    from bootstrap import register_pack  # noqa: E402  (stdlib only)

    sys.path.pop(0)
    register_pack("openltx", str(REPO_ROOT))

from openltx.ltx2 import positions as P  # noqa: E402
from openltx.ltx2.config import TransformerConfig  # noqa: E402
from openltx.ltx2.inputs import Perturbations, Skip, SkipRule, StreamInput  # noqa: E402
from openltx.ltx2.transformer import LTXAVTransformer  # noqa: E402
from openltx.model_loaders.tiny_layouts import tiny_transformer_values  # noqa: E402

FPS = 24.0
HEADS = 4


def tiny_config(version: str = "2.0") -> TransformerConfig:
    """The tiny transformer with 4 heads of 4 (video) and 4 of 2 (audio): same widths as the tiny files."""
    if version == "2.5":  # the 2.3 block without video ff biases + the learned keyframe marker
        from openltx.model_loaders.tiny_layouts import TINY_AUDIO_IN_CHANNELS
        from openltx.model_loaders.tiny_layouts_25 import tiny_transformer_header_25

        values = {**tiny_transformer_header_25(), "audio_in_channels": TINY_AUDIO_IN_CHANNELS}
    else:
        values = tiny_transformer_values(version)
    values.update(num_attention_heads=HEADS, attention_head_dim=4, audio_num_attention_heads=HEADS,
                  audio_attention_head_dim=2, av_ca_timestep_scale_multiplier=500.0)
    return TransformerConfig.from_header(values, source="tiny multi-GPU")


def tiny_model(version: str = "2.0", seed: int = 0) -> LTXAVTransformer:
    model = LTXAVTransformer(tiny_config(version)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "table" not in name:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def inputs(model: LTXAVTransformer, batch=3, frames=3, height=2, width=3, seed=1, text_len=5):
    """Joint inputs with per-sample σ; token counts (18 video, 9 audio) that 2 / 4 ranks do not divide."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    sig = torch.tensor([0.7, 0.3, 0.9, 0.5][:batch])
    tv, ta = frames * height * width, P.audio_latent_steps(8 * (frames - 1) + 1, FPS)
    cv = cfg.video_dim if cfg.caption_proj_before_connector else cfg.caption_channels
    ca = cfg.audio_dim if cfg.caption_proj_before_connector else cfg.caption_channels
    mask = torch.ones(batch, text_len, dtype=torch.long)
    mask[0, :2] = 0  # padded text on one item
    video = StreamInput(
        latent=torch.randn(batch, tv, cfg.in_channels, generator=g),
        timesteps=sig[:, None].expand(batch, tv).clone(),
        sigma=sig,
        positions=P.video_positions(batch, frames, height, width, FPS),
        context=torch.randn(batch, text_len, cv, generator=g),
        context_mask=mask,
    )
    audio = StreamInput(
        latent=torch.randn(batch, ta, cfg.audio_in_channels, generator=g),
        timesteps=sig[:, None].expand(batch, ta).clone(),
        sigma=sig,
        positions=P.audio_positions(batch, ta),
        context=torch.randn(batch, text_len, ca, generator=g),
        context_mask=mask,
    )
    return video, audio


def keyframe_inputs(model: LTXAVTransformer, batch=3):
    """A keyframe latent appended to the video tokens (σ 0, own positions) with an attention-strength mask,
    and image-to-video per-token timesteps (first latent frame clean)."""
    video, audio = inputs(model, batch)
    g = torch.Generator().manual_seed(5)
    extra = 2 * 3
    lat = torch.cat([video.latent, torch.randn(batch, extra, model.config.in_channels, generator=g)], 1)
    pos = torch.cat([video.positions, P.video_positions(batch, 1, 2, 3, FPS, frame_offset=16)], 2)
    ts = torch.cat([video.timesteps, torch.zeros(batch, extra)], 1)
    ts[:, :6] = 0.0
    n = lat.shape[1]
    noisy = n - extra
    strength = torch.ones(batch, n, n)
    strength[:, :noisy, noisy:] = 0.4
    strength[:, noisy:, :noisy] = 0.4
    strength[1, :3, noisy:] = 0.0  # fully masked entries
    video = StreamInput(lat, ts, video.sigma, pos, video.context, video.context_mask, attention_mask=strength)
    return video, audio


def stg_perturbations(batch=3) -> Perturbations:
    """Item 0: plain; item 1: STG on video self-attention in block 1; item 2: modality isolation everywhere."""
    stg = (SkipRule(Skip.VIDEO_SELF_ATTN, frozenset({1})), SkipRule(Skip.AUDIO_SELF_ATTN, frozenset({0})))
    iso = (SkipRule(Skip.A2V_CROSS_ATTN), SkipRule(Skip.V2A_CROSS_ATTN))
    return Perturbations(((), stg, iso)[:batch])


def case_inputs(name: str, model: LTXAVTransformer):
    """``(video, audio, perturbations)`` of a named case."""
    if name == "av":
        return (*inputs(model), None)
    if name == "video_only":
        return inputs(model)[0], None, None
    if name == "audio_only":
        return None, inputs(model)[1], None
    if name == "keyframes":
        return (*keyframe_inputs(model), None)
    if name == "keyframes_25":  # LTX-2.5: latent frame 0 and the appended keyframe carry the learned marker
        video, audio = keyframe_inputs(model)
        marked = torch.zeros(video.latent.shape[:2], dtype=torch.bool)
        marked[:, :6] = True  # latent frame 0 (2 x 3 tokens)
        marked[:, -6:] = True  # the appended keyframe
        video = StreamInput(video.latent, video.timesteps, video.sigma, video.positions, video.context,
                            video.context_mask, attention_mask=video.attention_mask, keyframe_mask=marked)
        return video, audio, None
    if name == "stg":
        return (*inputs(model), stg_perturbations())
    if name == "stg_all":  # every item skips video self-attention in block 0 (the V-only path)
        return (*inputs(model), Perturbations.build(3, [SkipRule(Skip.VIDEO_SELF_ATTN, frozenset({0}))]))
    raise KeyError(name)


def rel(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    if a is None and b is None:
        return 0.0
    if (a is None) != (b is None) or a.shape != b.shape:
        return float("inf")
    if not torch.isfinite(a).all():
        return float("inf")
    return max(((a - b).norm() / b.norm()).item(), ((a - b).abs().max() / b.abs().max()).item())


def run_cases(rank: int, world: int, port: int, cases: list, results) -> None:
    """One rank: every ``(version, case, (cfg, ulysses, ring))`` of ``cases``; errors into ``results``."""
    import torch.distributed as dist

    from openltx.parallel.plan import ParallelPlan
    from openltx.parallel.sharded import sharded_forward

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out = {}
    try:
        models = {}
        for version, name, degrees in cases:
            if version not in models:
                models[version] = tiny_model(version)
            model = models[version]
            video, audio, pert = case_inputs(name, model)
            plan = ParallelPlan(*degrees)
            key = f"{version}/{name}/{plan.describe()}"
            try:
                with torch.no_grad():
                    ref = model(video, audio, pert)
                    stats: dict = {}
                    got = sharded_forward(model, video, audio, pert, plan=plan, stats=stats)
                out[key] = {"video": rel(got[0], ref[0]), "audio": rel(got[1], ref[1]), "stats": stats}
            except Exception:
                out[key] = {"error": traceback.format_exc()}
    finally:
        dist.destroy_process_group()
        from openltx.parallel.mesh import forget_meshes

        forget_meshes()
    results.put((rank, out))
