"""Sequence-parallel attention: Ulysses all-to-all x ring, with LTX-2's masks.

``SequenceParallelAttention`` is an attention kernel in the pack's convention (see
``ltx2.attention_backends``) with roles: the transformer asks it for the kernel of each
attention of a block (``for_role``).  Text cross-attention gets the local kernel unchanged
(queries are the local shard, the prompt is replicated).  The four attentions whose keys are
sharded — video self, audio self, audio->video (``a2v``: video queries, audio keys) and
video->audio (``v2a``) — run as:

1. **Ulysses** (degree ``u``): q, k, v go from ``(B, H, T/sp, d)`` sequence shards to
   ``(B, H/u, u*T/sp, d)`` head shards by one all-to-all each (yunchang ``all_to_all_4D``);
   the output comes back the same way.  With ``ring == 1`` the middle is the *host's own*
   kernel (SDPA / flash / sage ... as chosen in ComfyUI) on the gathered span.
2. **Ring** (degree ``r``): K/V blocks travel around the ring group (yunchang ``RingComm``,
   ``batch_isend_irecv``), each step attends the local queries to one block and returns the
   block's log-sum-exp; the blocks are merged by their log-sum-exp.

Masks.  Tokens are padded to a multiple of ``sp``; padded keys get the dtype's most negative
value.  The self-attention strength mask of appended keyframe / reference tokens is kept
whole (``(B, 1, T, T)``, padded) and each step slices the rows of its queries and the columns
of its keys.

Why the per-block kernel and the merge are written here: yunchang's ring kernels take no
attention mask, and on the CPU its torch kernels either call CUDA-only ops or return a
zero log-sum-exp (measured with yunchang 0.6.4 / torch 2.14.1: ring degree 2 off by ~1.0).
Its merge ``lse - logsigmoid(lse - block_lse)`` also cancels catastrophically when the first
block of a row is fully masked (lse ~ -3e38); the max-subtracted merge below does not.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .mesh import Mesh, import_yunchang

SELF_ROLES = {"video_self": ("video", "video"), "audio_self": ("audio", "audio")}
CROSS_ROLES = {"a2v": ("video", "audio"), "v2a": ("audio", "video")}
LOCAL_ROLES = ("video_text", "audio_text")


def _yunchang_comm():
    yunchang = import_yunchang()
    return yunchang.comm.all_to_all.all_to_all_4D, yunchang.ring.utils.RingComm


# ----------------------------------------------------------------------------- block kernel
def attention_lse(q, k, v, bias, chunk: int = 1024):
    """Attention of one K/V block with its log-sum-exp, in float32.

    Args:
        q: ``(B, H, T, d)``; k, v: ``(B, H, S, d)``; bias: ``None`` or additive, broadcastable
            to ``(B, H, T, S)``.
        chunk: queries per step (bounds the ``T x S`` score tensor).
    Returns:
        ``out (B, H, T, d)`` and ``lse (B, H, T)``, both float32.
    """
    if q.is_cuda:
        fused = _cuda_attention_lse(q, k, v, bias)
        if fused is not None:
            return fused
    scale = q.shape[-1] ** -0.5
    kf, vf = k.float(), v.float()
    outs, lses = [], []
    for start in range(0, q.shape[2], chunk):
        scores = torch.matmul(q[:, :, start:start + chunk].float(), kf.transpose(-1, -2)) * scale
        if bias is not None:
            b = bias if bias.shape[-2] == 1 else bias[..., start:start + chunk, :]
            scores = scores + b.float()
        lse = torch.logsumexp(scores, dim=-1)
        outs.append(torch.matmul(torch.exp(scores - lse.unsqueeze(-1)), vf))
        lses.append(lse)
    return torch.cat(outs, 2), torch.cat(lses, 2)


def _cuda_attention_lse(q, k, v, bias):
    """torch's fused memory-efficient kernel (returns the log-sum-exp); ``None`` where it does not apply."""
    try:
        if bias is not None:
            bias = bias.to(q.dtype).expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, bias, True)[:2]
    except (RuntimeError, NotImplementedError):
        return None
    return out.float(), lse[..., : q.shape[2]].float()


def merge(out, lse, block_out, block_lse):
    """Merge two partial attentions by their log-sum-exp (``None`` ``out``: the first block)."""
    if out is None:
        return block_out, block_lse
    new = torch.maximum(lse, block_lse)
    a, b = torch.exp(lse - new), torch.exp(block_lse - new)
    total = a + b
    new_lse = new + torch.log(total)
    out = (out * (a / total).unsqueeze(-1)) + (block_out * (b / total).unsqueeze(-1))
    return out, new_lse


# ----------------------------------------------------------------------------- the kernel
class StreamShards:
    """One stream's sharding: ``valid`` real tokens padded to ``padded`` (``sp`` shards)."""

    def __init__(self, valid: int, padded: int, bias: torch.Tensor | None = None) -> None:
        self.valid, self.padded = valid, padded
        self.bias = bias  # (B, 1, padded, padded) self-attention bias, pad keys already masked
        self._key_masks: dict = {}

    def key_mask(self, dtype, device) -> torch.Tensor | None:
        """``(1, 1, 1, padded)`` additive mask of the padded keys, or ``None`` without padding."""
        if self.valid == self.padded:
            return None
        key = (dtype, device)
        if key not in self._key_masks:
            mask = torch.zeros(1, 1, 1, self.padded, dtype=dtype, device=device)
            mask[..., self.valid:] = torch.finfo(dtype).min
            self._key_masks[key] = mask
        return self._key_masks[key]


class SequenceParallelAttention:
    """The attention kernel of one sharded forward (``for_role`` -> the kernel of a role).

    Args:
        mesh: this rank's groups.
        local: the attention kernel to run on local data (the host's choice).
        streams: ``{"video": StreamShards, "audio": StreamShards}`` of the streams present.
        stats: counters updated in place (``all_to_all_bytes``, ``ring_bytes``: bytes this
            rank sent; ``calls``), or ``None``.
    """

    traceable = False

    def __init__(self, mesh: Mesh, local, streams: dict[str, StreamShards], stats: dict | None = None) -> None:
        self.mesh, self.local, self.streams = mesh, local, streams
        self.stats = stats

    def for_role(self, role: str | None):
        if role in LOCAL_ROLES:
            return self.local
        if role in SELF_ROLES:
            q_stream, k_stream = SELF_ROLES[role]
            return _Sharded(self, q_stream, k_stream, self_attention=True)
        if role in CROSS_ROLES:
            q_stream, k_stream = CROSS_ROLES[role]
            return _Sharded(self, q_stream, k_stream, self_attention=False)
        raise ValueError(f"sequence-parallel attention has no role {role!r}")

    def __call__(self, q, k, v, mask):
        raise RuntimeError(
            "SequenceParallelAttention needs the attention's role (ltx2.attention_backends.ROLES); "
            "it cannot run behind torch.compile's opaque kernel"
        )

    def _count(self, key: str, tensor: torch.Tensor, fraction: float) -> None:
        if self.stats is not None:
            self.stats[key] = self.stats.get(key, 0) + int(tensor.numel() * tensor.element_size() * fraction)


class _Sharded:
    """One attention call with sharded queries and keys (see the module docstring)."""

    def __init__(self, parent: SequenceParallelAttention, q_stream: str, k_stream: str, self_attention: bool) -> None:
        self.parent = parent
        self.q = parent.streams[q_stream]
        self.k = parent.streams[k_stream]
        self.self_attention = self_attention

    def _bias(self, rows: slice, cols: slice, dtype, device) -> torch.Tensor | None:
        """The additive mask of queries ``rows`` x keys ``cols`` (global padded indices)."""
        if self.self_attention and self.k.bias is not None:
            return self.k.bias[:, :, rows, cols].to(dtype)
        mask = self.k.key_mask(dtype, device)
        if mask is None or cols.stop <= self.k.valid:
            return None
        return mask[..., cols]

    def __call__(self, q, k, v, mask):
        if mask is not None:
            raise RuntimeError("sequence-parallel attention got a local mask; masks are set up by the sharded forward")
        parent, mesh = self.parent, self.parent.mesh
        u, r = mesh.plan.ulysses, mesh.plan.ring
        all_to_all_4D, RingComm = _yunchang_comm()
        if parent.stats is not None:
            parent.stats["calls"] = parent.stats.get("calls", 0) + 1
        if u > 1:  # (B, H, n, d) sequence shards -> (B, H/u, u*n, d) head shards
            fraction = (u - 1) / u
            moved = []
            for t in (q, k, v):
                parent._count("all_to_all_bytes", t, fraction)
                moved.append(all_to_all_4D(t.transpose(1, 2), 2, 1, group=mesh.ulysses_group).transpose(1, 2))
            q, k, v = moved
        tq, tk = q.shape[2], k.shape[2]  # span lengths after the exchange
        rows = slice(mesh.ring_rank * tq, (mesh.ring_rank + 1) * tq)
        if r == 1:
            out = self.parent.local(q, k, v, self._bias(rows, slice(0, tk), q.dtype, q.device))  # (B, tq, H/u*d)
        else:
            out = self._ring(q, k, v, rows, tk, RingComm, mesh)
        if u > 1:  # back: (B, u*n, H/u, d) -> (B, n, H, d)
            out = out.unflatten(-1, (q.shape[1], q.shape[3]))
            parent._count("all_to_all_bytes", out, (u - 1) / u)
            out = all_to_all_4D(out.contiguous(), 1, 2, group=mesh.ulysses_group).flatten(2)
        return out

    def _ring(self, q, k, v, rows: slice, tk: int, RingComm, mesh: Mesh):
        r = mesh.plan.ring
        comm = RingComm(mesh.ring_group)
        k, v = k.contiguous(), v.contiguous()
        out = lse = None
        for step in range(r):
            if step + 1 != r:
                next_k, next_v = comm.send_recv(k), comm.send_recv(v)
                comm.commit()
                self.parent._count("ring_bytes", k, 1.0)
                self.parent._count("ring_bytes", v, 1.0)
            source = (mesh.ring_rank - step) % r  # the ring rank whose span this K/V block is
            cols = slice(source * tk, (source + 1) * tk)
            if cols.start < self.k.valid:  # a block of padding only adds nothing
                block_out, block_lse = attention_lse(q, k, v, self._bias(rows, cols, q.dtype, q.device))
                out, lse = merge(out, lse, block_out, block_lse)
            if step + 1 != r:
                comm.wait()
                k, v = next_k, next_v
        return out.transpose(1, 2).flatten(2).to(q.dtype)  # (B, tq, H*d)


def agree(flag: bool, group=None, device=None) -> bool:
    """Whether ``flag`` is set on any rank of ``group`` (one small all-reduce; ``device``: where
    the backend wants tensors, CUDA for NCCL)."""
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return bool(t.item())
