"""One LTX-2 forward on this rank's share: CFG slice x sequence shard, outputs gathered.

``sharded_forward`` takes the *full* inputs of a model call (every rank gets the same; they
are small: latents and the prompt) and

1. keeps this CFG group's batch items (``ceil(B / cfg)`` per group, the last may hold fewer
   or none);
2. pads each stream's tokens to a multiple of ``sp`` and keeps this rank's shard of every
   token-wise input: latent, per-token timesteps (AdaLN per token works on the shard), RoPE
   positions (the tables are built per token from them).  The prompt stays whole;
3. turns the self-attention strength mask of appended tokens into the padded
   ``(B, 1, T_pad, T_pad)`` bias (pad keys masked) held by the attention kernel;
4. runs the unchanged ``LTXAVTransformer.forward`` on the shard with a
   ``SequenceParallelAttention`` kernel (it exchanges tokens where keys are sharded);
5. all-gathers the outputs, so every rank returns the ``(B, T, C)`` velocities of the call.

Interruption: ``should_stop`` (a callable) is polled after every block; the ranks of a CFG
group agree on it with one all-reduce, and the whole world agrees once more before the final
gather, so all ranks raise ``ForwardInterrupted`` together and no collective is left hanging.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..ltx2.inputs import Perturbations, StreamInput
from ..ltx2.transformer import LTXAVTransformer
from .attention import SequenceParallelAttention, StreamShards, agree
from .mesh import Mesh, mesh as mesh_of
from .plan import ParallelPlan, padded


class ForwardInterrupted(Exception):
    """Every rank stopped the forward at the same point (ComfyUI's Cancel)."""


class _Stop(Exception):
    pass


def _pad_tokens(t: torch.Tensor, dim: int, total: int, mode: str) -> torch.Tensor:
    """``t`` padded along ``dim`` to ``total``: zeros, or copies of the last entry (``"edge"``)."""
    missing = total - t.shape[dim]
    if missing <= 0:
        return t
    if mode == "edge":
        extra = t.narrow(dim, t.shape[dim] - 1, 1).expand(*[missing if i == dim else -1 for i in range(t.ndim)])
    else:
        shape = list(t.shape)
        shape[dim] = missing
        extra = t.new_zeros(shape)
    return torch.cat([t, extra], dim)


def _rows(t, batch: int, lo: int, hi: int):
    """Batch items ``lo:hi`` of ``t`` (tensors with one row per item; others as they are)."""
    if t is None or not torch.is_tensor(t) or t.ndim == 0 or t.shape[0] != batch:
        return t
    return t[lo:hi]


def shard_stream(inp: StreamInput, batch: int, lo: int, hi: int, mesh: Mesh) -> tuple[StreamInput, StreamShards]:
    """This rank's part of one stream: batch items ``lo:hi``, token shard ``sp_rank``."""
    sp = mesh.plan.sp
    tokens = inp.latent.shape[1]
    total = padded(tokens, sp)
    n = total // sp
    cut = slice(mesh.sp_rank * n, (mesh.sp_rank + 1) * n)
    dtype = inp.latent.dtype
    latent = _pad_tokens(inp.latent[lo:hi], 1, total, "zeros")[:, cut]
    timesteps = inp.timesteps[lo:hi]
    if timesteps.ndim == 2 and timesteps.shape[1] == tokens and tokens > 1:
        timesteps = _pad_tokens(timesteps, 1, total, "edge")[:, cut]
    positions = _pad_tokens(inp.positions[lo:hi], 2, total, "edge")[:, :, cut]
    bias = None
    if inp.attention_mask is not None:
        strength = inp.attention_mask[lo:hi]
        strength = _pad_tokens(_pad_tokens(strength, 1, total, "zeros"), 2, total, "zeros")
        bias = LTXAVTransformer._self_bias(strength, dtype)  # (b, 1, total, total)
        if total > tokens:  # padded keys never count (a strength of 0 is the dtype's minimum already)
            bias[..., tokens:] = torch.finfo(dtype).min
    keyframes = None  # LTX-2.5's marked tokens are sharded with the tokens (padding is never marked)
    if inp.keyframe_mask is not None:
        keyframes = _pad_tokens(inp.keyframe_mask[lo:hi], 1, total, "zeros")[:, cut]
    local = StreamInput(
        latent=latent,
        timesteps=timesteps,
        sigma=_rows(inp.sigma, batch, lo, hi),
        positions=positions,
        context=_rows(inp.context, batch, lo, hi),
        context_mask=_rows(inp.context_mask, batch, lo, hi),
        attention_mask=None,  # the kernel holds the padded bias
        enabled=inp.enabled,
        keyframe_mask=keyframes,
    )
    return local, StreamShards(tokens, total, bias)


def sharded_forward(
    model: LTXAVTransformer,
    video: StreamInput | None,
    audio: StreamInput | None,
    perturbations: Perturbations | None = None,
    *,
    plan: ParallelPlan,
    attention=None,
    stats: dict | None = None,
    should_stop=None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``model(video, audio, perturbations)`` computed by all ranks of the default group together.

    Every rank calls this with the same full inputs and gets the same full outputs
    ``(B, T_v, C)`` / ``(B, T_a, C_a)``.  ``attention``: the kernel for local attention
    (``None``: the model's default); ``stats``: communication counters (see
    ``SequenceParallelAttention``); ``should_stop``: polled after every block.
    """
    mesh = mesh_of(plan)
    first = video if video is not None else audio
    if first is None:
        raise ValueError("sharded_forward needs at least one of video or audio")
    batch = first.latent.shape[0]
    device = first.latent.device
    perturb = perturbations if perturbations is not None else Perturbations.none(batch)
    per_group = -(-batch // plan.cfg)
    lo, hi = min(batch, mesh.cfg_index * per_group), min(batch, (mesh.cfg_index + 1) * per_group)
    streams = {"video": video, "audio": audio}
    out = {}
    stopped = False
    if hi > lo:
        local, shards = {}, {}
        for name, inp in streams.items():
            if inp is not None:
                local[name], shards[name] = shard_stream(inp, batch, lo, hi, mesh)
        kernel = SequenceParallelAttention(mesh, attention or model.attention, shards, stats)
        callback = None
        if should_stop is not None:
            def callback(_block: int) -> None:
                if agree(bool(should_stop()), mesh.sp_group, device):
                    raise _Stop

        try:
            out["video"], out["audio"] = model(
                local.get("video"), local.get("audio"), Perturbations(perturb.per_sample[lo:hi]),
                attention=kernel, block_callback=callback,
            )
        except _Stop:
            stopped = True
    if should_stop is not None and agree(stopped, None, device):
        raise ForwardInterrupted("the forward was interrupted")
    return tuple(
        _gather(out.get(name), inp, batch, per_group, hi - lo, mesh, model, name) if inp is not None else None
        for name, inp in streams.items()
    )


def _gather(local, inp: StreamInput, batch: int, per_group: int, mine: int, mesh: Mesh, model, name: str):
    """All ranks' ``(per_group, T_pad/sp, C)`` outputs -> the call's ``(B, T, C)``."""
    plan = mesh.plan
    tokens = inp.latent.shape[1]
    n = padded(tokens, plan.sp) // plan.sp
    cfg = model.config
    channels = cfg.audio_out_channels if name == "audio" else cfg.out_channels
    buffer = inp.latent.new_zeros(per_group, n, channels)
    if local is not None and mine:
        buffer[:mine] = local
    parts = [torch.empty_like(buffer) for _ in range(plan.world)]
    dist.all_gather(parts, buffer.contiguous())
    groups = []
    for g in range(plan.cfg):
        groups.append(torch.cat(parts[g * plan.sp:(g + 1) * plan.sp], dim=1))
    return torch.cat(groups, dim=0)[:batch, :tokens]
