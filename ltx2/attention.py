"""Multi-head attention, feed-forward and timestep modules of the LTX-2 transformer.

Attention here differs from a textbook block in three ways that matter for parity:
  * QK-norm is an RMSNorm with a learnable weight over the *whole* inner dim (all heads at
    once), applied before RoPE;
  * STG "perturbation" replaces the attention output by the value projection, either for the
    whole batch (the Q/K path is then skipped) or blended per batch item;
  * LTX-2.3 multiplies each head's output by ``2 * sigmoid(gate_logit)`` (gated attention).

The attention kernel itself is injected per call (``attention=``, see ``attention_backends``):
torch SDPA by default, a host's or SageAttention's kernel when the caller passes one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .attention_backends import sdpa_attention
from .config import RopeType
from .ops import resolve
from .rope import apply_interleaved_rope, apply_split_rope


class Attention(torch.nn.Module):
    """Attention with biases, QK RMSNorm and optional RoPE / per-head gate.

    Weight names follow the checkpoint: ``to_q``, ``to_k``, ``to_v``, ``to_out.0``,
    ``q_norm``, ``k_norm``, ``to_gate_logits`` (2.3 only).
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None,
        heads: int,
        head_dim: int,
        *,
        eps: float,
        rope_type: RopeType,
        gated: bool = False,
        operations=None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        ops = resolve(operations)
        inner = heads * head_dim
        context_dim = query_dim if context_dim is None else context_dim
        self.heads, self.head_dim, self.rope_type = heads, head_dim, rope_type
        kw = {"dtype": dtype, "device": device}
        self.q_norm = ops.RMSNorm(inner, eps=eps, elementwise_affine=True, **kw)
        self.k_norm = ops.RMSNorm(inner, eps=eps, elementwise_affine=True, **kw)
        self.to_q = ops.Linear(query_dim, inner, bias=True, **kw)
        self.to_k = ops.Linear(context_dim, inner, bias=True, **kw)
        self.to_v = ops.Linear(context_dim, inner, bias=True, **kw)
        self.to_gate_logits = ops.Linear(query_dim, heads, bias=True, **kw) if gated else None
        self.to_out = torch.nn.ModuleList([ops.Linear(inner, query_dim, bias=True, **kw)])

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, T, H*d)`` → ``(B, H, T, d)``."""
        return t.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def _rope(self, t: torch.Tensor, pe: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        """Apply RoPE and return ``(B, H, T, d)``."""
        if pe is None:
            return self._heads(t)
        if self.rope_type is RopeType.SPLIT:
            return apply_split_rope(self._heads(t), *pe)
        return self._heads(apply_interleaved_rope(t, *pe))

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        *,
        pe: tuple[torch.Tensor, torch.Tensor] | None = None,
        k_pe: tuple[torch.Tensor, torch.Tensor] | None = None,
        bias: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
        skip: bool = False,
        attention=None,
        kv_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            x: queries ``(B, T, query_dim)``; context: keys/values ``(B, S, context_dim)``
                (``None``: self-attention).
            pe / k_pe: RoPE tables for queries / keys (``k_pe`` defaults to ``pe``).
            bias: additive attention bias broadcastable to ``(B, H, T, S)``.
            keep: ``(B, 1, 1)`` blend weight: 1 keeps attention, 0 passes the value through
                (STG on some batch items).
            skip: every batch item is perturbed: output is ``to_out(to_v(context))``.
            attention: the kernel ``fn(q, k, v, mask) -> (B, T, H*d)`` (``attention_backends``);
                ``None``: torch SDPA.
            kv_index: ``(B,)`` row of ``context`` for each query batch item, when ``context``
                holds only the distinct rows ``(U, S, context_dim)`` (identical prompts of
                batched guidance passes): K and V are projected once per distinct row.
                Only for attention without key RoPE.
        Returns:
            ``(B, T, query_dim)``.
        """
        ctx = x if context is None else context
        v = self.to_v(ctx)
        if skip:
            out = v
        else:
            q = self._rope(self.q_norm(self.to_q(x)), pe)
            k = self._rope(self.k_norm(self.to_k(ctx)), pe if k_pe is None else k_pe)
            vh = self._heads(v)
            if kv_index is not None:  # distinct rows -> one per query batch item
                k, vh = k.index_select(0, kv_index), vh.index_select(0, kv_index)
            if bias is not None:
                bias = bias.to(q.dtype)
            out = (attention or sdpa_attention)(q, k, vh, bias)  # (B, T, H*d)
            if keep is not None:
                out = torch.lerp(v, out, keep.to(out.dtype))
        if self.to_gate_logits is not None:
            gates = 2.0 * torch.sigmoid(self.to_gate_logits(x))  # (B, T, H)
            out = (out.unflatten(-1, (self.heads, self.head_dim)) * gates.unsqueeze(-1)).flatten(2)
        return self.to_out[0](out)


class _GeluProjection(torch.nn.Module):
    """``Linear`` followed by tanh-approximated GELU (checkpoint name ``ff.net.0.proj``)."""

    def __init__(self, dim_in: int, dim_out: int, ops, **kw) -> None:
        super().__init__()
        self.proj = ops.Linear(dim_in, dim_out, bias=True, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(torch.nn.Module):
    """``D → 4D → D`` MLP with GELU(tanh); weights ``net.0.proj`` and ``net.2``."""

    def __init__(self, dim: int, mult: int = 4, *, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        ops = resolve(operations)
        kw = {"dtype": dtype, "device": device}
        self.net = torch.nn.ModuleList(
            [_GeluProjection(dim, dim * mult, ops, **kw), torch.nn.Identity(), ops.Linear(dim * mult, dim, **kw)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class CaptionProjection(torch.nn.Module):
    """Text features → stream width: ``linear_1`` → GELU(tanh) → ``linear_2``."""

    def __init__(self, in_dim: int, dim: int, *, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        ops = resolve(operations)
        kw = {"dtype": dtype, "device": device}
        self.linear_1 = ops.Linear(in_dim, dim, bias=True, **kw)
        self.linear_2 = ops.Linear(dim, dim, bias=True, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(x), approximate="tanh"))


def sinusoidal_embedding(t: torch.Tensor, channels: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """``[cos, sin]`` embedding of scaled timesteps.

    Args:
        t: ``(N,)`` timesteps already multiplied by the scale (σ·1000).
    Returns:
        ``(N, channels)`` float32.
    """
    half = channels // 2
    exponent = torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(max_period) / half)
    args = t.float()[:, None] * torch.exp(exponent)[None]
    return torch.cat((torch.cos(args), torch.sin(args)), dim=-1)


class _TimestepEmbedder(torch.nn.Module):
    def __init__(self, dim: int, ops, **kw) -> None:
        super().__init__()
        self.linear_1 = ops.Linear(256, dim, bias=True, **kw)
        self.linear_2 = ops.Linear(dim, dim, bias=True, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class _TimestepEmbedding(torch.nn.Module):
    """Holds ``timestep_embedder`` (checkpoint name ``emb.timestep_embedder``)."""

    def __init__(self, dim: int, ops, **kw) -> None:
        super().__init__()
        self.timestep_embedder = _TimestepEmbedder(dim, ops, **kw)


class AdaLNSingle(torch.nn.Module):
    """σ → (``k·D`` modulation vector, ``D`` embedded timestep), PixArt "adaLN-single".

    ``forward`` takes *distinct* scaled timesteps ``(N,)`` and returns ``(N, k·D)`` and
    ``(N, D)``; callers map tokens onto them, so the cost is per distinct σ, not per token.
    """

    def __init__(self, dim: int, rows: int, *, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        ops = resolve(operations)
        kw = {"dtype": dtype, "device": device}
        self.rows = rows
        self.emb = _TimestepEmbedding(dim, ops, **kw)
        self.linear = ops.Linear(dim, rows * dim, bias=True, **kw)

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.emb.timestep_embedder(sinusoidal_embedding(t).to(dtype))
        return self.linear(F.silu(embedded)), embedded
