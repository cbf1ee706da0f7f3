"""The LTX-2 text connectors and the whole text projection (Gemma hidden states -> contexts).

An ``EmbeddingsConnector`` turns a padded sequence of text features into a sequence the
transformer can cross-attend to without any mask:

1. *registers*: each sample's valid tokens are moved to the front (in order); every slot
   ``i`` after them gets learnable register ``i mod R`` (R = 128 in the released models).
   The mask is all-valid from here on, so the 1024 text tokens carry no padding;
2. ``num_layers`` pre-norm blocks: parameter-free RMSNorm -> self-attention (biased
   projections, QK RMSNorm, RoPE on positions ``0..L-1`` over ``connector_positional_embedding_max_pos``,
   per-head gate in LTX-2.3) -> residual -> RMSNorm -> GELU(tanh) MLP x4 -> residual;
3. a final parameter-free RMSNorm.

``TextProjector`` chains the feature extractor (``text_features.py``) and the video and audio
connectors: ``forward(hidden_states, attention_mask) -> (video_context, audio_context)``, the
two contexts of the MODEL's conditioning (LTX-2.0: both ``caption_channels`` wide, the
transformer projects them further; LTX-2.3: the video and audio stream widths).

The building blocks are the transformer's own (``attention.Attention``, ``attention.FeedForward``,
``rope.rope_cos_sin``); every layer comes from the injected ``operations``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from .attention import Attention, FeedForward
from .config import ConfigError, RopeType
from .rope import rope_cos_sin
from .text_features import FeatureExtractorV1, FeatureExtractorV2, uses_v2_features

# Fixed by the architecture, not by the header: ltx-core builds every connector with these
# values and the released headers have no keys for them.
CONNECTOR_ROPE_THETA = 10000.0
CONNECTOR_NORM_EPS = 1e-6

STREAMS = ("video", "audio")


def _key(transformer: Mapping[str, Any], key: str, source: str, why: str) -> Any:
    if key not in transformer:
        raise ConfigError(
            f"{source}: the header's config.transformer lacks {key!r}, which {why}; it is never guessed. Use the "
            "official LTX-2 file (its header has it), or add the key to the header."
        )
    return transformer[key]


@dataclass(frozen=True)
class ConnectorConfig:
    """One embeddings connector; width ``heads * head_dim``."""

    num_layers: int
    heads: int
    head_dim: int
    num_registers: int
    max_pos: tuple[float, ...]
    rope_type: RopeType
    rope_fp64_grid: bool
    gated: bool = False
    theta: float = CONNECTOR_ROPE_THETA

    @property
    def dim(self) -> int:
        return self.heads * self.head_dim

    @classmethod
    def from_header(
        cls, transformer: Mapping[str, Any], stream: str, *, source: str = "checkpoint"
    ) -> "ConnectorConfig":
        """The ``stream`` ("video" / "audio") connector described by ``config.transformer``.

        The audio connector reads ``audio_connector_*`` and falls back to ``connector_*``
        (LTX-2.0 headers only have those: both connectors are alike there).  A missing
        ``connector_*`` key, ``connector_positional_embedding_max_pos``, ``rope_type`` or
        ``frequencies_precision`` raises ``ConfigError`` naming it.
        """
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
        shape = "fixes the text connectors' shapes"

        def size(name: str) -> int:
            key = f"connector_{name}"
            value = _key(transformer, key, source, shape)
            if stream == "audio":
                value = transformer.get(f"audio_{key}", value)
            return int(value)

        max_pos = _key(transformer, "connector_positional_embedding_max_pos", source, "sets the connectors' RoPE")
        if not isinstance(max_pos, (list, tuple)) or len(max_pos) != 1:
            raise ConfigError(
                f"{source}: config.transformer['connector_positional_embedding_max_pos'] is {max_pos!r}; expected "
                "a list with one entry (the connectors have one position axis), e.g. [4096]."
            )
        rope = _key(transformer, "rope_type", source, "sets how RoPE pairs channels")
        try:
            rope_type = RopeType(rope)
        except ValueError:
            raise ConfigError(
                f"{source}: config.transformer['rope_type'] is {rope!r}; expected 'split' or 'interleaved'."
            ) from None
        precision = _key(transformer, "frequencies_precision", source, "sets how the RoPE frequencies are computed")
        registers = int(transformer.get("connector_num_learnable_registers", 128))  # shape: checked against the file
        if registers < 1:
            raise ConfigError(
                f"{source}: config.transformer['connector_num_learnable_registers'] is {registers}; LTX-2 connectors "
                "replace padding with registers and OpenLTX supports no connector without them."
            )
        return cls(
            num_layers=size("num_layers"),
            heads=size("num_attention_heads"),
            head_dim=size("attention_head_dim"),
            num_registers=registers,
            max_pos=(float(max_pos[0]),),
            rope_type=rope_type,
            rope_fp64_grid=precision == "float64",
            gated=bool(transformer.get("connector_apply_gated_attention", False)),
        )


class _ConnectorBlock(torch.nn.Module):
    """Pre-norm self-attention + MLP; checkpoint names ``attn1.*`` and ``ff.net.*``."""

    def __init__(self, cfg: ConnectorConfig, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        kw = {"operations": operations, "dtype": dtype, "device": device}
        self.attn1 = Attention(
            cfg.dim, None, cfg.heads, cfg.head_dim, eps=CONNECTOR_NORM_EPS, rope_type=cfg.rope_type, gated=cfg.gated,
            **kw,
        )  # fmt: skip
        self.ff = FeedForward(cfg.dim, **kw)

    def forward(self, x: torch.Tensor, pe: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attn1(F.rms_norm(x, (x.shape[-1],), eps=CONNECTOR_NORM_EPS), pe=pe)
        return x + self.ff(F.rms_norm(x, (x.shape[-1],), eps=CONNECTOR_NORM_EPS))


class EmbeddingsConnector(torch.nn.Module):
    """Registers in place of padding, ``num_layers`` 1D transformer blocks, final RMSNorm.

    Weights: ``learnable_registers`` ``(R, dim)``, ``transformer_1d_blocks.N.{attn1,ff}.*``.
    """

    def __init__(self, cfg: ConnectorConfig, *, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        self.config = cfg
        registers = torch.empty(cfg.num_registers, cfg.dim, dtype=dtype, device=device)
        self.learnable_registers = torch.nn.Parameter(registers)
        self.transformer_1d_blocks = torch.nn.ModuleList(
            [_ConnectorBlock(cfg, operations, dtype, device) for _ in range(cfg.num_layers)]
        )

    def fill_registers(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Valid tokens first (order kept), register ``i mod R`` in every later slot ``i``.

        Args:
            x: ``(B, L, dim)`` features; values at padded positions are never read (NaN is fine).
            valid: ``(B, L)`` bool, True for tokens.
        Returns:
            ``(B, L, dim)`` with no padding left.
        """
        b, t, d = x.shape
        # A stable sort of "is padding" lists each sample's valid positions first, in order.
        order = torch.argsort((~valid).to(torch.uint8), dim=1, stable=True)
        packed = x.gather(1, order.unsqueeze(-1).expand(b, t, d))
        slots = torch.arange(t, device=x.device)
        table = self.learnable_registers.to(device=x.device, dtype=x.dtype)
        registers = table[slots % table.shape[0]]  # (L, dim)
        keep = slots.unsqueeze(0) < valid.sum(dim=1, keepdim=True)  # (B, L)
        return torch.where(keep.unsqueeze(-1), packed, registers.unsqueeze(0))

    def rope(self, length: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Cos/sin tables for integer positions ``0..length-1`` (shared by the whole batch)."""
        cfg = self.config
        positions = torch.arange(length, dtype=torch.float32, device=device).view(1, 1, length)
        return rope_cos_sin(
            positions,
            dim=cfg.dim,
            heads=cfg.heads,
            max_pos=cfg.max_pos,
            theta=cfg.theta,
            fp64_grid=cfg.rope_fp64_grid,
            rope_type=cfg.rope_type,
            out_dtype=dtype,
        )

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``(B, L, dim)`` features + ``(B, L)`` bool token mask -> ``(B, L, dim)`` context (all valid)."""
        if x.ndim != 3 or x.shape[-1] != self.config.dim:
            raise ValueError(f"connector input must be (batch, tokens, {self.config.dim}), got {tuple(x.shape)}")
        x = self.fill_registers(x, valid.to(device=x.device, dtype=torch.bool))
        pe = self.rope(x.shape[1], x.dtype, x.device)
        for block in self.transformer_1d_blocks:
            x = block(x, pe)
        return F.rms_norm(x, (x.shape[-1],), eps=CONNECTOR_NORM_EPS)


@dataclass(frozen=True)
class TextProjectorConfig:
    """Feature extractor + both connectors, for a text encoder of ``text_hidden_states`` x ``text_hidden_size``."""

    text_hidden_size: int
    text_hidden_states: int
    v2: bool  # LTX-2.3 dual projection
    video_features: int  # feature extractor output widths (= the connector widths)
    audio_features: int
    video: ConnectorConfig
    audio: ConnectorConfig

    @classmethod
    def from_header(
        cls,
        transformer: Mapping[str, Any],
        *,
        text_hidden_states: int,
        text_hidden_size: int | None = None,
        source: str = "checkpoint",
    ) -> "TextProjectorConfig":
        """From ``config.transformer``; ``text_hidden_size`` defaults to the header's ``caption_channels``.

        LTX-2.0 projects to ``caption_channels``; LTX-2.3 to the video / audio stream widths
        (``num_attention_heads * attention_head_dim`` and the audio equivalent).  The
        connector widths must equal those (a ``ConfigError`` otherwise).
        """
        if not isinstance(transformer, Mapping):
            raise ConfigError(f"{source}: header config has no 'transformer' object.")
        hidden = text_hidden_size
        if hidden is None:
            hidden = _key(transformer, "caption_channels", source, "is the text encoder's width")
        video, audio = (ConnectorConfig.from_header(transformer, s, source=source) for s in STREAMS)
        v2 = uses_v2_features(transformer, source)
        if v2:
            why = "sets the 2.3 text projection's widths"
            v_out = int(_key(transformer, "num_attention_heads", source, why)) * int(
                _key(transformer, "attention_head_dim", source, why)
            )
            a_out = int(_key(transformer, "audio_num_attention_heads", source, why)) * int(
                _key(transformer, "audio_attention_head_dim", source, why)
            )
        else:
            v_out = a_out = int(hidden)
        for stream, out, conn in (("video", v_out, video), ("audio", a_out, audio)):
            if conn.dim != out:
                raise ConfigError(
                    f"{source}: the {stream} text connector is {conn.heads} x {conn.head_dim} = {conn.dim} wide but "
                    f"the text projection feeds it {out} features; the header's connector_* keys and widths "
                    "disagree. Use the official file, unmodified."
                )
        return cls(int(hidden), int(text_hidden_states), v2, v_out, a_out, video, audio)


class TextProjector(torch.nn.Module):
    """Gemma hidden states -> ``(video_context, audio_context)`` for the LTX-2 transformer.

    State-dict keys: ``feature_extractor.*`` (file: ``text_embedding_projection.*``),
    ``video_connector.*`` / ``audio_connector.*`` (file:
    ``model.diffusion_model.{video,audio}_embeddings_connector.*``).
    """

    def __init__(self, config: TextProjectorConfig, *, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        self.config = config
        self.dtype = dtype or torch.get_default_dtype()
        kw = {"operations": operations, "dtype": dtype, "device": device}
        if config.v2:
            self.feature_extractor: torch.nn.Module = FeatureExtractorV2(
                config.text_hidden_size, config.text_hidden_states, config.video_features, config.audio_features, **kw
            )
        else:
            self.feature_extractor = FeatureExtractorV1(
                config.text_hidden_size, config.text_hidden_states, config.video_features, **kw
            )
        self.video_connector = EmbeddingsConnector(config.video, **kw)
        self.audio_connector = EmbeddingsConnector(config.audio, **kw)

    def forward(
        self, hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            hidden_states: all ``text_hidden_states`` hidden states of the text encoder, each
                ``(B, L, text_hidden_size)`` (any dtype / device; work happens on the first one's device).
            attention_mask: ``(B, L)``, 1 = token, 0 = padding.
        Returns:
            ``video_context (B, L, C_v)``, ``audio_context (B, L, C_a)`` in ``self.dtype``; every
            position valid (padding has become registers).
        """
        video, audio = self.feature_extractor(hidden_states, attention_mask, self.dtype)
        valid = attention_mask.to(device=video.device) != 0
        return self.video_connector(video, valid), self.audio_connector(audio, valid)
