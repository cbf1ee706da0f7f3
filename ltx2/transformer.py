"""The joint audio+video LTX-2 transformer (19B LTX-2.0 and 22B LTX-2.3).

Two token streams run side by side through ``num_layers`` blocks: video (width ``D``, 4096 in
19B) and audio (width ``d``, 2048).  Each block does, per stream: modulated self-attention
with RoPE, text cross-attention, then (when both streams are present) audio→video and
video→audio attention on time-only RoPE, then a modulated feed-forward.  The output is a
velocity ``v`` (rectified flow: ``x_t = (1-σ)x0 + σε``, ``v = ε - x0``).

State-dict keys equal the official checkpoint's keys after ``model.diffusion_model.``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import attention_backends
from .attention import AdaLNSingle, Attention, CaptionProjection, FeedForward
from .config import TransformerConfig
from .inputs import Perturbations, Skip, StreamInput
from .modulation import Modulation
from .ops import resolve
from .rope import rope_cos_sin


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), eps=eps)


@dataclass
class _Stream:
    """A stream's running state inside the blocks (see ``LTXAVTransformer._prepare``)."""

    x: torch.Tensor  # (B, T, width)
    context: torch.Tensor  # (B, L, width), or (U, L, width) distinct rows when context_index is set
    context_bias: torch.Tensor | None  # (B, 1, 1, L) additive
    self_bias: torch.Tensor | None  # (B, 1, T, T) additive
    pe: tuple[torch.Tensor, torch.Tensor]
    mod: Modulation  # per-token k·width
    embedded: Modulation  # per-token width (output head)
    enabled: bool
    cross_pe: tuple[torch.Tensor, torch.Tensor] | None = None
    cross_mod: Modulation | None = None  # 4·width, from the other stream's σ
    cross_gate: Modulation | None = None  # 1·width
    prompt_mod: Modulation | None = None  # 2·width (LTX-2.3 cross-attention AdaLN)
    context_index: torch.Tensor | None = None  # (B,) row of ``context`` per batch item
    context_rows: torch.Tensor | None = None  # (U,) a batch item holding each distinct row

    @property
    def active(self) -> bool:
        return self.enabled and self.x.numel() > 0


SKIP_ALL = True  # a BlockSkips entry: every batch item skips that attention


class BlockSkips(NamedTuple):
    """One block's STG / isolation skips, resolved outside the block.

    Each entry is ``None`` (nobody skips), ``SKIP_ALL`` (every batch item skips) or a
    ``(B, 1, 1)`` keep mask (0 for the items that skip).  Resolving them before the block
    keeps the block free of the block index, so one compiled graph serves all blocks.
    """

    video_self: object = None
    audio_self: object = None
    a2v: object = None
    v2a: object = None


_KINDS = (Skip.VIDEO_SELF_ATTN, Skip.AUDIO_SELF_ATTN, Skip.A2V_CROSS_ATTN, Skip.V2A_CROSS_ATTN)
NO_SKIPS = BlockSkips()


def block_skips(perturb: Perturbations, index: int, like: torch.Tensor, cache: dict) -> BlockSkips:
    """``BlockSkips`` of block ``index``; ``cache`` reuses keep masks of equal patterns."""
    entries = []
    for kind in _KINDS:
        state = perturb.state(kind, index)
        if state == "none":
            entries.append(None)
        elif state == "all":
            entries.append(SKIP_ALL)
        else:
            key = tuple(0.0 if any(r.hits(kind, index) for r in rules) else 1.0 for rules in perturb.per_sample)
            if key not in cache:
                cache[key] = torch.tensor(key, dtype=like.dtype, device=like.device).view(-1, 1, 1)
            entries.append(cache[key])
    return BlockSkips(*entries)


def _keep(entry) -> torch.Tensor | None:
    return entry if isinstance(entry, torch.Tensor) else None


class AVTransformerBlock(torch.nn.Module):
    """One block; parameters named as in the checkpoint (``transformer_blocks.N.*``)."""

    def __init__(self, index: int, cfg: TransformerConfig, *, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        self.index, self.eps, self.cross_adaln = index, cfg.norm_eps, cfg.cross_attention_adaln
        kw = {"operations": operations, "dtype": dtype, "device": device}
        common = {"eps": cfg.norm_eps, "rope_type": cfg.rope_type, "gated": cfg.apply_gated_attention, **kw}
        pkw = {"dtype": dtype, "device": device}
        D, d = cfg.video_dim, cfg.audio_dim
        if cfg.has_video:
            self.attn1 = Attention(D, None, cfg.num_attention_heads, cfg.attention_head_dim, **common)
            self.attn2 = Attention(D, cfg.cross_attention_dim, cfg.num_attention_heads, cfg.attention_head_dim, **common)
            self.ff = FeedForward(D, **kw)
            self.scale_shift_table = torch.nn.Parameter(torch.empty(cfg.adaln_rows, D, **pkw))
        if cfg.has_audio:
            heads, hd = cfg.audio_num_attention_heads, cfg.audio_attention_head_dim
            self.audio_attn1 = Attention(d, None, heads, hd, **common)
            self.audio_attn2 = Attention(d, cfg.audio_cross_attention_dim, heads, hd, **common)
            self.audio_ff = FeedForward(d, **kw)
            self.audio_scale_shift_table = torch.nn.Parameter(torch.empty(cfg.adaln_rows, d, **pkw))
        if cfg.is_av:
            heads, hd = cfg.audio_num_attention_heads, cfg.audio_attention_head_dim
            # Both directions use the audio head layout (32 x 64 in 19B).
            self.audio_to_video_attn = Attention(D, d, heads, hd, **common)
            self.video_to_audio_attn = Attention(d, D, heads, hd, **common)
            # Rows: (scale, shift) for a2v, (scale, shift) for v2a, gate.
            self.scale_shift_table_a2v_ca_audio = torch.nn.Parameter(torch.empty(5, d, **pkw))
            self.scale_shift_table_a2v_ca_video = torch.nn.Parameter(torch.empty(5, D, **pkw))
        if cfg.cross_attention_adaln:
            if cfg.has_video:
                self.prompt_scale_shift_table = torch.nn.Parameter(torch.empty(2, D, **pkw))
            if cfg.has_audio:
                self.audio_prompt_scale_shift_table = torch.nn.Parameter(torch.empty(2, d, **pkw))

    # ------------------------------------------------------------------ sub-layers
    # Each takes the stream's current ``x`` and returns the updated one.  The elementwise chains
    # (RMSNorm + modulation, gate + residual) are plain torch expressions so that inductor fuses
    # each into one kernel when the block is compiled.
    def _self_attention(self, s: _Stream, x, attn: Attention, table: torch.Tensor, skip, attention):
        shift, scale, gate = s.mod.rows(table, 0, 3)
        h = _rms(x, self.eps) * (1 + scale) + shift
        out = attn(h, pe=s.pe, bias=s.self_bias, keep=_keep(skip), skip=skip is SKIP_ALL, attention=attention)
        return x + out * gate

    def _text_attention(self, s: _Stream, x, attn: Attention, table: torch.Tensor, prompt_table, attention):
        if not self.cross_adaln:  # LTX-2.0: no modulation, no gate, no RoPE
            return x + attn(_rms(x, self.eps), s.context, bias=s.context_bias, attention=attention,
                            kv_index=s.context_index)
        shift_q, scale_q, gate = s.mod.rows(table, 6, 9)
        shift_kv, scale_kv = s.prompt_mod.rows(prompt_table, 0, 2)  # (B, 1, D) each
        if s.context_rows is not None:  # the distinct contexts' rows (same σ within a group)
            shift_kv, scale_kv = shift_kv.index_select(0, s.context_rows), scale_kv.index_select(0, s.context_rows)
        q_in = _rms(x, self.eps) * (1 + scale_q) + shift_q
        kv_in = s.context * (1 + scale_kv) + shift_kv
        return x + attn(q_in, kv_in, bias=s.context_bias, attention=attention, kv_index=s.context_index) * gate

    def _feed_forward(self, s: _Stream, x, ff: FeedForward, table: torch.Tensor):
        shift, scale, gate = s.mod.rows(table, 3, 6)
        return x + ff(_rms(x, self.eps) * (1 + scale) + shift) * gate

    def _cross_modal(self, v: _Stream, vx, a: _Stream, ax, run_a2v: bool, run_v2a: bool, skips: BlockSkips, attention):
        vn, an = _rms(vx, self.eps), _rms(ax, self.eps)  # both directions use pre-update norms
        tv, ta = self.scale_shift_table_a2v_ca_video, self.scale_shift_table_a2v_ca_audio
        new_v, new_a = vx, ax
        if run_a2v and skips.a2v is not SKIP_ALL:
            v_scale, v_shift = v.cross_mod.rows(tv[:4], 0, 2)
            a_scale, a_shift = a.cross_mod.rows(ta[:4], 0, 2)
            (gate,) = v.cross_gate.rows(tv[4:], 0, 1)
            out = self.audio_to_video_attn(
                vn * (1 + v_scale) + v_shift, an * (1 + a_scale) + a_shift, pe=v.cross_pe, k_pe=a.cross_pe,
                attention=attention,
            ) * gate
            if _keep(skips.a2v) is not None:
                out = out * skips.a2v
            new_v = vx + out
        if run_v2a and skips.v2a is not SKIP_ALL:
            a_scale, a_shift = a.cross_mod.rows(ta[:4], 2, 4)
            v_scale, v_shift = v.cross_mod.rows(tv[:4], 2, 4)
            (gate,) = a.cross_gate.rows(ta[4:], 0, 1)
            out = self.video_to_audio_attn(
                an * (1 + a_scale) + a_shift, vn * (1 + v_scale) + v_shift, pe=a.cross_pe, k_pe=v.cross_pe,
                attention=attention,
            ) * gate
            if _keep(skips.v2a) is not None:
                out = out * skips.v2a
            new_a = ax + out
        return new_v, new_a

    def run(self, video: _Stream | None, audio: _Stream | None, skips: BlockSkips = NO_SKIPS, attention=None):
        """The block's math: returns the new ``(video_x, audio_x)`` (``None`` for an absent stream).

        Reads the streams, never writes them, and does not depend on the block index, so
        ``torch.compile`` of this method yields one graph for every block (per skip pattern).
        """
        vx = video.x if video is not None else None
        ax = audio.x if audio is not None else None
        run_v = video is not None and video.active
        run_a = audio is not None and audio.active
        if run_v:
            vx = self._self_attention(video, vx, self.attn1, self.scale_shift_table, skips.video_self, attention)
            vx = self._text_attention(video, vx, self.attn2, self.scale_shift_table,
                                      getattr(self, "prompt_scale_shift_table", None), attention)
        if run_a:
            ax = self._self_attention(audio, ax, self.audio_attn1, self.audio_scale_shift_table, skips.audio_self, attention)
            ax = self._text_attention(audio, ax, self.audio_attn2, self.audio_scale_shift_table,
                                      getattr(self, "audio_prompt_scale_shift_table", None), attention)
        both = video is not None and audio is not None and vx.numel() > 0 and ax.numel() > 0
        if both and (run_v or run_a) and video.cross_mod is not None and audio.cross_mod is not None:
            vx, ax = self._cross_modal(video, vx, audio, ax, run_v, run_a, skips, attention)
        if run_v:
            vx = self._feed_forward(video, vx, self.ff, self.scale_shift_table)
        if run_a:
            ax = self._feed_forward(audio, ax, self.audio_ff, self.audio_scale_shift_table)
        return vx, ax

    def forward(self, video: _Stream | None, audio: _Stream | None, skips: BlockSkips | Perturbations = NO_SKIPS,
                attention=None, runner=None) -> None:
        """Updates ``video.x`` / ``audio.x`` in place (on the state objects).

        ``skips``: this block's ``BlockSkips`` (or a ``Perturbations``, resolved here);
        ``runner``: a compiled ``fn(block, video, audio, skips, attention)`` standing in for
        ``run`` (module hooks, e.g. offload, still run around it eagerly).
        """
        if isinstance(skips, Perturbations):
            like = (video if video is not None else audio).x
            skips = block_skips(skips, self.index, like, {})
        vx, ax = (runner or _run_block)(self, video, audio, skips, attention)
        if video is not None:
            video.x = vx
        if audio is not None:
            audio.x = ax


def _run_block(block: AVTransformerBlock, video, audio, skips, attention):
    return block.run(video, audio, skips, attention)


@dataclass(frozen=True)
class CompileOptions:
    """Regional ``torch.compile`` of the transformer block (one graph shared by all blocks).

    ``dynamic=True`` marks token counts symbolic so a new resolution or prompt length does
    not recompile; ``mode`` is ``torch.compile``'s (``None``, ``"max-autotune-no-cudagraphs"``
    ...; CUDA-graph modes do not fit streamed weights).
    """

    mode: str | None = None
    dynamic: bool = True
    fullgraph: bool = False


class _OpaqueAttention:
    """Stands in for an attention kernel that ``torch.compile`` must not trace.

    The compiled block sees this one object (a graph break at each call, no guard on the
    kernel), while ``fn`` may change from call to call (a host's per-call attention choice).
    """

    def __init__(self) -> None:
        self.fn = None

    @torch.compiler.disable
    def __call__(self, q, k, v, mask):
        return self.fn(q, k, v, mask)


class LTXAVTransformer(torch.nn.Module):
    """The LTX-2 transformer.  ``forward`` returns velocities for the streams it is given."""

    def __init__(self, config: TransformerConfig, *, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        config.validate()
        self.config = cfg = config
        self.dtype = dtype if dtype is not None else torch.get_default_dtype()
        ops = resolve(operations)
        kw = {"operations": operations, "dtype": dtype, "device": device}
        lkw = {"dtype": dtype, "device": device}
        rows = cfg.adaln_rows
        D, d = cfg.video_dim, cfg.audio_dim
        if cfg.has_video:
            self.patchify_proj = ops.Linear(cfg.in_channels, D, bias=True, **lkw)
            if cfg.has_caption_projection:
                self.caption_projection = CaptionProjection(cfg.caption_channels, D, **kw)
            self.adaln_single = AdaLNSingle(D, rows, **kw)
            if cfg.cross_attention_adaln:
                self.prompt_adaln_single = AdaLNSingle(D, 2, **kw)
            self.scale_shift_table = torch.nn.Parameter(torch.empty(2, D, **lkw))
            self.norm_out = ops.LayerNorm(D, eps=cfg.norm_eps, elementwise_affine=False, **lkw)
            self.proj_out = ops.Linear(D, cfg.out_channels, bias=True, **lkw)
        if cfg.has_audio:
            self.audio_patchify_proj = ops.Linear(cfg.audio_in_channels, d, bias=True, **lkw)
            if cfg.has_caption_projection:
                self.audio_caption_projection = CaptionProjection(cfg.caption_channels, d, **kw)
            self.audio_adaln_single = AdaLNSingle(d, rows, **kw)
            if cfg.cross_attention_adaln:
                self.audio_prompt_adaln_single = AdaLNSingle(d, 2, **kw)
            self.audio_scale_shift_table = torch.nn.Parameter(torch.empty(2, d, **lkw))
            self.audio_norm_out = ops.LayerNorm(d, eps=cfg.norm_eps, elementwise_affine=False, **lkw)
            self.audio_proj_out = ops.Linear(d, cfg.audio_out_channels, bias=True, **lkw)
        if cfg.is_av:
            self.av_ca_video_scale_shift_adaln_single = AdaLNSingle(D, 4, **kw)
            self.av_ca_audio_scale_shift_adaln_single = AdaLNSingle(d, 4, **kw)
            self.av_ca_a2v_gate_adaln_single = AdaLNSingle(D, 1, **kw)
            self.av_ca_v2a_gate_adaln_single = AdaLNSingle(d, 1, **kw)
        self.transformer_blocks = torch.nn.ModuleList(
            [AVTransformerBlock(i, cfg, **kw) for i in range(cfg.num_layers)]
        )
        # The attention kernel when a call names none (attention_backends); the host sets one
        # per call from the user's choice.
        self.attention = attention_backends.sdpa_attention
        # Compute caption projection and text K/V once per distinct prompt in a batch.
        self.share_text_kv = True
        self._opaque_attention = _OpaqueAttention()

    # ------------------------------------------------------------------ preparation
    def _pe(self, positions: torch.Tensor, dim: int, heads: int, max_pos, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        return rope_cos_sin(
            positions,
            dim=dim,
            heads=heads,
            max_pos=tuple(max_pos),
            theta=cfg.positional_embedding_theta,
            fp64_grid=cfg.rope_fp64_grid,
            rope_type=cfg.rope_type,
            out_dtype=dtype,
        )

    @staticmethod
    def _context_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """``(B, L)`` validity → ``(B, 1, 1, L)`` additive bias (0 valid, -max padded).

        A mask that masks nothing (all valid, or an all-zero bias) becomes ``None``: adding
        zeros changes nothing, and without a mask the fastest attention kernels apply.
        """
        if mask is None:
            return None
        if torch.is_floating_point(mask):
            return None if not bool(mask.any()) else mask
        if bool(mask.all()):
            return None
        mask = mask.to(torch.int64)
        return (mask - 1).to(dtype).reshape(mask.shape[0], 1, -1, mask.shape[-1]) * torch.finfo(dtype).max

    def _shared_rows(self, inp: StreamInput, b: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(rows (U,), index (B,))`` when batch items have identical text inputs, else ``None``.

        Batched guidance passes (cond, STG-perturbed, isolated) repeat the same prompt; their
        caption projection and text K/V are then computed once per distinct prompt.  Items
        share a row only when everything that enters K/V is bit-identical: the context, its
        mask and, with LTX-2.3's prompt AdaLN, the σ.
        """
        if b < 2 or not self.share_text_kv:
            return None
        keys = [inp.context]
        if inp.context_mask is not None:
            keys.append(inp.context_mask)
        if self.config.cross_attention_adaln:
            keys.append(inp.sigma.reshape(-1).expand(b))
        if any(k.shape[0] != b for k in keys):
            return None
        pairs = [(i, j) for j in range(1, b) for i in range(j)]
        equal = torch.stack([torch.stack([(k[i] == k[j]).all() for k in keys]).all() for i, j in pairs]).tolist()
        same = dict(zip(pairs, equal))
        rep = []
        for j in range(b):
            rep.append(next((rep[i] for i in range(j) if same[(i, j)]), j))
        rows = sorted(set(rep))
        if len(rows) == b:
            return None
        device = inp.context.device
        index = torch.tensor([rows.index(r) for r in rep], device=device)
        return torch.tensor(rows, device=device), index

    @staticmethod
    def _self_bias(strength: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """``(B, T, T)`` strengths in [0, 1] → ``(B, 1, T, T)`` bias ``log(strength)``, min at 0."""
        if strength is None:
            return None
        finfo = torch.finfo(dtype)
        bias = torch.log(strength.clamp(min=finfo.tiny)).to(dtype)
        bias = torch.where(strength > 0, bias, torch.full_like(bias, finfo.min))
        return bias.unsqueeze(1)

    def _prepare(self, inp: StreamInput, audio: bool) -> _Stream:
        cfg = self.config
        p = "audio_" if audio else ""
        dtype = inp.latent.dtype
        width = cfg.audio_dim if audio else cfg.video_dim
        heads = cfg.audio_num_attention_heads if audio else cfg.num_attention_heads
        max_pos = cfg.audio_positional_embedding_max_pos if audio else cfg.positional_embedding_max_pos
        x = getattr(self, p + "patchify_proj")(inp.latent)
        b = x.shape[0]
        mod, embedded = Modulation.from_timesteps(
            getattr(self, p + "adaln_single"), inp.timesteps, cfg.timestep_scale_multiplier, dtype
        )
        shared = self._shared_rows(inp, b)
        context = inp.context if shared is None else inp.context.index_select(0, shared[0])
        if cfg.has_caption_projection:
            context = getattr(self, p + "caption_projection")(context)
        context = context.reshape(context.shape[0], -1, width)
        prompt_mod = None
        if cfg.cross_attention_adaln:
            sigma = inp.sigma.reshape(-1).expand(b) * cfg.timestep_scale_multiplier
            prompt_mod = Modulation.per_sample(getattr(self, p + "prompt_adaln_single"), sigma, dtype)
        return _Stream(
            x=x,
            context=context,
            context_bias=self._context_bias(inp.context_mask, dtype),
            self_bias=self._self_bias(inp.attention_mask, dtype),
            pe=self._pe(inp.positions, width, heads, max_pos, dtype),
            mod=mod,
            embedded=embedded,
            enabled=inp.enabled,
            prompt_mod=prompt_mod,
            context_rows=None if shared is None else shared[0],
            context_index=None if shared is None else shared[1],
        )

    def _add_cross_modal(self, s: _Stream, inp: StreamInput, other: StreamInput, audio: bool) -> None:
        """A↔V inputs: time-only RoPE and modulation from the *other* stream's σ."""
        cfg = self.config
        p = "audio" if audio else "video"
        b = s.x.shape[0]
        max_t = max(cfg.positional_embedding_max_pos[0], cfg.audio_positional_embedding_max_pos[0])
        heads = cfg.audio_num_attention_heads if audio else cfg.num_attention_heads
        s.cross_pe = self._pe(inp.positions[:, 0:1], cfg.audio_cross_attention_dim, heads, (max_t,), s.x.dtype)
        sigma = other.sigma.reshape(-1).expand(b) * cfg.timestep_scale_multiplier
        gate_sigma = sigma * (cfg.av_ca_timestep_scale_multiplier / cfg.timestep_scale_multiplier)
        s.cross_mod = Modulation.per_sample(getattr(self, f"av_ca_{p}_scale_shift_adaln_single"), sigma, s.x.dtype)
        gate = self.av_ca_v2a_gate_adaln_single if audio else self.av_ca_a2v_gate_adaln_single
        s.cross_gate = Modulation.per_sample(gate, gate_sigma, s.x.dtype)

    def _output(self, s: _Stream, audio: bool) -> torch.Tensor:
        p = "audio_" if audio else ""
        shift, scale = s.embedded.plus_table(getattr(self, p + "scale_shift_table"))
        h = getattr(self, p + "norm_out")(s.x) * (1 + scale) + shift
        return getattr(self, p + "proj_out")(h)

    # ------------------------------------------------------------------ speed options
    def _compiled_runner(self, options: CompileOptions):
        """``torch.compile`` of the block body for ``options``, made once and kept."""
        runners = self.__dict__.setdefault("_compiled_runners", {})
        if options not in runners:
            runners[options] = torch.compile(
                _run_block, mode=options.mode, dynamic=options.dynamic, fullgraph=options.fullgraph
            )
        return runners[options]

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        video: StreamInput | None,
        audio: StreamInput | None,
        perturbations: Perturbations | None = None,
        *,
        block_callback=None,
        attention=None,
        compile: CompileOptions | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Velocity for each given stream.

        Args:
            video / audio: a ``StreamInput`` or ``None`` (video-only / audio-only forward).
            perturbations: STG / modality-isolation skips per batch item.
            block_callback: optional ``fn(index)`` called after each block (progress,
                interruption).
            attention: the attention kernel for this call (``attention_backends``);
                ``None``: ``self.attention`` (torch SDPA unless set).
            compile: run the blocks through ``torch.compile`` with these options (compiled
                once per model and options, reused by every block and later calls).
        Returns:
            ``(B, T_v, out_channels)`` and ``(B, T_a, audio_out_channels)`` (``None`` where the
            stream was not given).
        """
        cfg = self.config
        if video is None and audio is None:
            raise ValueError("LTXAVTransformer.forward needs at least one of video or audio")
        if video is not None and not cfg.has_video:
            raise ValueError("this checkpoint has no video stream")
        if audio is not None and not cfg.has_audio:
            raise ValueError("this checkpoint has no audio stream")
        batch = (video or audio).latent.shape[0]
        perturb = perturbations if perturbations is not None else Perturbations.none(batch)
        if len(perturb.per_sample) != batch:
            raise ValueError(f"perturbations cover {len(perturb.per_sample)} batch items, the input has {batch}")
        v = self._prepare(video, audio=False) if video is not None else None
        a = self._prepare(audio, audio=True) if audio is not None else None
        if v is not None and a is not None:
            self._add_cross_modal(v, video, audio, audio=False)
            self._add_cross_modal(a, audio, video, audio=True)
        attention = attention if attention is not None else self.attention
        runner = None
        if compile is not None:
            runner = self._compiled_runner(compile)
            if not attention_backends.is_traceable(attention):
                self._opaque_attention.fn = attention
                attention = self._opaque_attention
        like = (v if v is not None else a).x
        masks: dict = {}
        for block in self.transformer_blocks:
            block(v, a, block_skips(perturb, block.index, like, masks), attention, runner)
            if block_callback is not None:
                block_callback(block.index)
        return (
            self._output(v, audio=False) if v is not None else None,
            self._output(a, audio=True) if a is not None else None,
        )


def velocity_to_x0(latent: torch.Tensor, velocity: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """``x0 = x - v·σ_token`` in float32 (conditioning tokens with σ 0 pass through unchanged).

    Args:
        latent, velocity: ``(B, T, C)``; timesteps: ``(B, T)``, ``(B, 1)`` or ``(B,)``.
    """
    sigma = timesteps.reshape(timesteps.shape[0], -1, 1).float()
    return (latent.float() - velocity.float() * sigma).to(latent.dtype)
