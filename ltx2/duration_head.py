"""LTX-2.5 duration head: the text connectors' outputs -> the clip length a prompt implies.

The released file (``model_patches/ltx-2.5-duration-head-bf16.safetensors``) holds 15 tensors under
``duration_head.``; this module's state-dict keys are those names without the prefix:

==================================================  ==========================  ====================
key                                                 shape (released)            role
==================================================  ==========================  ====================
``video_input_proj.{weight,bias}``                  [256, 4096], [256]          video tokens -> D
``audio_input_proj.{weight,bias}``                  [256, 2048], [256]          audio tokens -> D
``{video,audio}_modality_emb``                      [256]                       added per stream
``attention_pooler.query_tokens``                   [Q=1, 256]                  learned queries
``attention_pooler.cross_attn.in_proj_{weight,bias}``  [768, 256], [768]        q | k | v stacked
``attention_pooler.cross_attn.out_proj.{weight,bias}`` [256, 256], [256]
``mlp_hidden.{weight,bias}``                        [256, 256 * Q], [256]
``mlp_out.{weight,bias}``                           [1, 256], [1]               log-seconds
==================================================  ==========================  ====================

Forward: each stream is projected to ``D`` and tagged with its modality embedding, the two token
sequences are concatenated (no mask: the connectors already replaced padding with registers),
``Q`` learned queries cross-attend to them (4 heads, the released value: shapes cannot tell it),
and an MLP with tanh-GELU maps the pooled vector to log-seconds; ``exp`` gives seconds.  Facts
from diffusers 0.42.1 ``pipelines/ltx2/duration_head.py`` (the test oracle).

``frames_for_seconds`` turns a duration into a frame count on the VAE's ``8k + 1`` grid.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from .ops import resolve

RELEASED_HEADS = 4  # attention heads of the released head (not visible in any tensor shape)
MIN_SECONDS, MAX_SECONDS = 1.0, 20.0  # the reference pipelines' bounds on a predicted duration
FRAME_RATE = 24.0
TIME_FACTOR = 8

log = logging.getLogger(__name__)


class CrossAttentionPooler(torch.nn.Module):
    """``Q`` learned queries attend to ``(B, L, D)`` tokens -> ``(B, Q, D)``.

    Projections are stored like ``torch.nn.MultiheadAttention`` (``cross_attn.in_proj_weight``
    stacks the q, k and v weights), the layout of the released file.
    """

    def __init__(self, dim: int, num_queries: int, heads: int, *, ops, dtype=None, device=None) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"duration head: width {dim} is not divisible by {heads} attention heads")
        kw = {"dtype": dtype, "device": device}
        self.heads = heads
        self.query_tokens = torch.nn.Parameter(torch.empty(num_queries, dim, **kw))
        self.cross_attn = torch.nn.Module()
        self.cross_attn.in_proj_weight = torch.nn.Parameter(torch.empty(3 * dim, dim, **kw))
        self.cross_attn.in_proj_bias = torch.nn.Parameter(torch.empty(3 * dim, **kw))
        self.cross_attn.out_proj = ops.Linear(dim, dim, **kw)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, _, d = tokens.shape
        w_q, w_k, w_v = self.cross_attn.in_proj_weight.to(tokens.dtype).chunk(3)
        b_q, b_k, b_v = self.cross_attn.in_proj_bias.to(tokens.dtype).chunk(3)
        queries = self.query_tokens.to(tokens.dtype).expand(b, -1, -1)

        def heads(x):  # (B, N, D) -> (B, heads, N, D / heads)
            return x.unflatten(2, (self.heads, d // self.heads)).transpose(1, 2)

        q = heads(F.linear(queries, w_q, b_q))
        k = heads(F.linear(tokens, w_k, b_k))
        v = heads(F.linear(tokens, w_v, b_v))
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head dim), no mask
        return self.cross_attn.out_proj(out.transpose(1, 2).flatten(2))


class DurationHead(torch.nn.Module):
    """Video / audio connector outputs -> predicted duration in seconds ``(B,)``.

    Args:
        video_width, audio_width: widths of the two connector outputs (4096 / 2048 released).
        dim: pooler width (256); ``num_queries`` (1); ``heads`` (4); ``mlp_width`` (256).
    """

    def __init__(self, video_width: int, audio_width: int, dim: int = 256, num_queries: int = 1,
                 heads: int = RELEASED_HEADS, mlp_width: int = 256, *, operations=None, dtype=None,
                 device=None) -> None:  # fmt: skip
        super().__init__()
        ops = resolve(operations)
        kw = {"dtype": dtype, "device": device}
        self.dtype = dtype or torch.get_default_dtype()
        self.video_width, self.audio_width = video_width, audio_width
        self.video_input_proj = ops.Linear(video_width, dim, **kw)
        self.video_modality_emb = torch.nn.Parameter(torch.empty(dim, **kw))
        self.audio_input_proj = ops.Linear(audio_width, dim, **kw)
        self.audio_modality_emb = torch.nn.Parameter(torch.empty(dim, **kw))
        self.attention_pooler = CrossAttentionPooler(dim, num_queries, heads, ops=ops, **kw)
        self.mlp_hidden = ops.Linear(dim * num_queries, mlp_width, **kw)
        self.mlp_out = ops.Linear(mlp_width, 1, **kw)

    def _check(self, tokens: torch.Tensor | None, width: int, name: str) -> None:
        if tokens is not None and (tokens.ndim != 3 or tokens.shape[-1] != width):
            raise ValueError(
                f"duration head: {name} must be the {name.split('_')[0]} connector output (batch, tokens, {width}), "
                f"found shape {tuple(tokens.shape)}"
            )

    def forward(self, video_tokens: torch.Tensor | None = None, audio_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L, video_width)`` and / or ``(B, L', audio_width)`` -> seconds ``(B,)`` (float)."""
        if video_tokens is None and audio_tokens is None:
            raise ValueError("duration head: pass the video and / or the audio connector output")
        self._check(video_tokens, self.video_width, "video_tokens")
        self._check(audio_tokens, self.audio_width, "audio_tokens")
        dtype = self.video_input_proj.weight.dtype if self.video_input_proj.weight.is_floating_point() else self.dtype
        groups = []
        if video_tokens is not None:
            groups.append(self.video_input_proj(video_tokens.to(dtype)) + self.video_modality_emb.to(dtype))
        if audio_tokens is not None:
            groups.append(self.audio_input_proj(audio_tokens.to(dtype)) + self.audio_modality_emb.to(dtype))
        pooled = self.attention_pooler(torch.cat(groups, dim=1)).flatten(1)  # (B, Q * D)
        hidden = F.gelu(self.mlp_hidden(pooled), approximate="tanh")  # the head was trained with tanh-GELU
        return self.mlp_out(hidden).squeeze(-1).exp()  # trained on log-seconds


def frames_for_seconds(seconds: float, frame_rate: float = FRAME_RATE, min_seconds: float = MIN_SECONDS,
                       max_seconds: float = MAX_SECONDS, time_factor: int = TIME_FACTOR) -> int:  # fmt: skip
    """A duration -> a frame count ``k * time_factor + 1`` at ``frame_rate``, kept in the bounds.

    The duration is clamped to ``[min_seconds, max_seconds]`` *in frames* first (rounded), then
    snapped down to the grid; a snap below the lower bound moves up one grid step when that stays
    within the upper bound, and when the bounds hold no grid point at all the nearer neighbour is
    used (and logged).  Same rule as the reference pipelines (diffusers ``predict_num_frames``).
    """
    if not (math.isfinite(seconds) and math.isfinite(frame_rate)) or frame_rate <= 0:
        raise ValueError(f"duration -> frames: need a finite duration and a positive frame rate, got {seconds}, {frame_rate}")
    if not min_seconds < max_seconds:
        raise ValueError(f"duration -> frames: min_seconds ({min_seconds}) must be below max_seconds ({max_seconds})")
    lo = max(1, round(min_seconds * frame_rate))
    hi = round(max_seconds * frame_rate)
    wanted = max(lo, min(round(seconds * frame_rate), hi))
    frames = (wanted - 1) // time_factor * time_factor + 1
    if frames < lo:
        up = frames + time_factor
        if up <= hi or abs(up - wanted) < abs(frames - wanted):
            frames = up
        if up > hi:
            log.warning("duration bounds [%.2f s, %.2f s] at %.2f fps hold no %d k + 1 frame count; using %d frames",
                        min_seconds, max_seconds, frame_rate, time_factor, frames)  # fmt: skip
    return frames


__all__ = ["DurationHead", "FRAME_RATE", "MAX_SECONDS", "MIN_SECONDS", "RELEASED_HEADS", "frames_for_seconds"]
