"""Transformer configuration, built from the checkpoint header.

The official single-file checkpoints carry ``__metadata__["config"]`` (a JSON string) whose
``transformer`` section describes the joint audio+video transformer.  Several keys in it change
the numerics while leaving every tensor shape identical (``rope_type``,
``frequencies_precision``, ``av_ca_timestep_scale_multiplier``, ...).  Those are never defaulted
here: a header that lacks one is an error that names it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping


class ConfigError(ValueError):
    """A checkpoint header that cannot describe a supported LTX-2 transformer."""


class RopeType(str, Enum):
    """How rotary angles pair up channels inside a head."""

    SPLIT = "split"  # pairs (i, i + d/2) within a head: LTX-2.0 and LTX-2.3
    INTERLEAVED = "interleaved"  # pairs (2i, 2i+1): legacy configs only


# Keys that change the numerics but not the shapes: they must come from the header.
NUMERIC_KEYS = (
    "rope_type",
    "frequencies_precision",
    "av_ca_timestep_scale_multiplier",
    "timestep_scale_multiplier",
    "positional_embedding_theta",
    "positional_embedding_max_pos",
    "audio_positional_embedding_max_pos",
    "norm_eps",
)

# Keys that fix the tensor shapes: also required (the strict weight load double-checks them).
SHAPE_KEYS = (
    "num_layers",
    "num_attention_heads",
    "attention_head_dim",
    "in_channels",
    "out_channels",
    "cross_attention_dim",
    "audio_num_attention_heads",
    "audio_attention_head_dim",
    "audio_in_channels",
    "audio_out_channels",
    "audio_cross_attention_dim",
)

# Architectural switches that LTX-2 hard-codes.  If a header states another value we would
# compute something else than the file was trained for, so we refuse it.
FIXED_VALUES: Mapping[str, Any] = {
    "attention_bias": True,
    "activation_fn": "gelu-approximate",
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_middle_indices_grid": True,
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
}

# LTX-2.3 feature switches.  Absent in LTX-2.0 headers, where they mean "off".
OPTIONAL_FLAGS = ("apply_gated_attention", "cross_attention_adaln", "caption_proj_before_connector")


@dataclass(frozen=True)
class TransformerConfig:
    """Everything the joint audio+video transformer needs to be built and run.

    Video stream width is ``num_attention_heads * attention_head_dim`` (4096 for 19B), audio
    stream width ``audio_num_attention_heads * audio_attention_head_dim`` (2048).
    """

    num_layers: int
    num_attention_heads: int
    attention_head_dim: int
    in_channels: int
    out_channels: int
    cross_attention_dim: int
    caption_channels: int
    audio_num_attention_heads: int
    audio_attention_head_dim: int
    audio_in_channels: int
    audio_out_channels: int
    audio_cross_attention_dim: int
    positional_embedding_theta: float
    positional_embedding_max_pos: tuple[float, ...]
    audio_positional_embedding_max_pos: tuple[float, ...]
    timestep_scale_multiplier: float
    av_ca_timestep_scale_multiplier: float
    rope_type: RopeType
    rope_fp64_grid: bool  # header "frequencies_precision": "float64"
    norm_eps: float
    apply_gated_attention: bool = False
    cross_attention_adaln: bool = False
    caption_proj_before_connector: bool = False
    has_video: bool = True
    has_audio: bool = True
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    # ----------------------------------------------------------------- derived sizes
    @property
    def video_dim(self) -> int:
        return self.num_attention_heads * self.attention_head_dim

    @property
    def audio_dim(self) -> int:
        return self.audio_num_attention_heads * self.audio_attention_head_dim

    @property
    def adaln_rows(self) -> int:
        """Rows of each block's modulation table: 6, or 9 with cross-attention AdaLN (2.3)."""
        return 9 if self.cross_attention_adaln else 6

    @property
    def has_caption_projection(self) -> bool:
        """LTX-2.0 projects captions inside the transformer; 2.3 does it in the text encoder."""
        return not self.caption_proj_before_connector

    @property
    def is_av(self) -> bool:
        return self.has_video and self.has_audio

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_header(cls, transformer: Mapping[str, Any], *, source: str = "checkpoint") -> "TransformerConfig":
        """Build from the ``transformer`` section of the header config.

        Raises ``ConfigError`` naming the first missing numeric or shape key, or a fixed key
        whose value LTX-2 does not support.
        """
        if not isinstance(transformer, Mapping):
            raise ConfigError(
                f"{source}: header config has no 'transformer' object (found {type(transformer).__name__})."
            )
        missing = [k for k in (*SHAPE_KEYS, *NUMERIC_KEYS) if k not in transformer]
        if missing:
            raise ConfigError(
                f"{source}: the header's config.transformer lacks {', '.join(repr(k) for k in missing)}. "
                "These keys decide the model's numerics and are never guessed. Use the official file "
                "from Lightricks, or add the keys to the header (the values of the official LTX-2 "
                "19B file are listed in LTX2_SPEC.md section 1.1)."
            )
        for key, expected in FIXED_VALUES.items():
            if key in transformer and transformer[key] != expected:
                raise ConfigError(
                    f"{source}: config.transformer[{key!r}] is {transformer[key]!r}; LTX-2 needs {expected!r}. "
                    "This file describes a model variant that OpenLTX does not support."
                )
        try:
            rope = RopeType(transformer["rope_type"])
        except ValueError:
            raise ConfigError(
                f"{source}: config.transformer['rope_type'] is {transformer['rope_type']!r}; "
                "expected 'split' (LTX-2) or 'interleaved'."
            ) from None
        precision = transformer["frequencies_precision"]
        if precision not in ("float64", "float32", False, None):
            raise ConfigError(
                f"{source}: config.transformer['frequencies_precision'] is {precision!r}; "
                "expected 'float64' or 'float32'."
            )
        caption_channels = transformer.get("caption_channels")
        flags = {k: bool(transformer.get(k, False)) for k in OPTIONAL_FLAGS}
        if caption_channels is None and not flags["caption_proj_before_connector"]:
            raise ConfigError(
                f"{source}: config.transformer lacks 'caption_channels', needed to build the caption projection."
            )
        cfg = cls(
            num_layers=int(transformer["num_layers"]),
            num_attention_heads=int(transformer["num_attention_heads"]),
            attention_head_dim=int(transformer["attention_head_dim"]),
            in_channels=int(transformer["in_channels"]),
            out_channels=int(transformer["out_channels"]),
            cross_attention_dim=int(transformer["cross_attention_dim"]),
            caption_channels=int(caption_channels) if caption_channels is not None else 0,
            audio_num_attention_heads=int(transformer["audio_num_attention_heads"]),
            audio_attention_head_dim=int(transformer["audio_attention_head_dim"]),
            audio_in_channels=int(transformer["audio_in_channels"]),
            audio_out_channels=int(transformer["audio_out_channels"]),
            audio_cross_attention_dim=int(transformer["audio_cross_attention_dim"]),
            positional_embedding_theta=float(transformer["positional_embedding_theta"]),
            positional_embedding_max_pos=tuple(float(v) for v in transformer["positional_embedding_max_pos"]),
            audio_positional_embedding_max_pos=tuple(
                float(v) for v in transformer["audio_positional_embedding_max_pos"]
            ),
            timestep_scale_multiplier=float(transformer["timestep_scale_multiplier"]),
            av_ca_timestep_scale_multiplier=float(transformer["av_ca_timestep_scale_multiplier"]),
            rope_type=rope,
            rope_fp64_grid=precision == "float64",
            norm_eps=float(transformer["norm_eps"]),
            extra=dict(transformer),
            **flags,
        )
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        """Check the cross-stream constraints the A<->V attention relies on."""
        if len(self.positional_embedding_max_pos) != 3:
            raise ConfigError(f"{source}: positional_embedding_max_pos must have 3 entries (t, h, w).")
        if len(self.audio_positional_embedding_max_pos) != 1:
            raise ConfigError(f"{source}: audio_positional_embedding_max_pos must have 1 entry (t).")
        if self.is_av:
            if self.num_attention_heads != self.audio_num_attention_heads:
                raise ConfigError(
                    f"{source}: video heads ({self.num_attention_heads}) must equal audio heads "
                    f"({self.audio_num_attention_heads}) for the audio<->video attention."
                )
            if self.audio_cross_attention_dim != self.audio_dim:
                raise ConfigError(
                    f"{source}: audio_cross_attention_dim ({self.audio_cross_attention_dim}) must equal "
                    f"audio heads x head dim ({self.audio_dim})."
                )

    def to_header(self) -> dict:
        """The ``transformer`` header section this config was (or would be) read from."""
        out = dict(self.extra)
        out.update(
            {
                "num_layers": self.num_layers,
                "num_attention_heads": self.num_attention_heads,
                "attention_head_dim": self.attention_head_dim,
                "in_channels": self.in_channels,
                "out_channels": self.out_channels,
                "cross_attention_dim": self.cross_attention_dim,
                "caption_channels": self.caption_channels,
                "audio_num_attention_heads": self.audio_num_attention_heads,
                "audio_attention_head_dim": self.audio_attention_head_dim,
                "audio_in_channels": self.audio_in_channels,
                "audio_out_channels": self.audio_out_channels,
                "audio_cross_attention_dim": self.audio_cross_attention_dim,
                "positional_embedding_theta": self.positional_embedding_theta,
                "positional_embedding_max_pos": list(self.positional_embedding_max_pos),
                "audio_positional_embedding_max_pos": list(self.audio_positional_embedding_max_pos),
                "timestep_scale_multiplier": self.timestep_scale_multiplier,
                "av_ca_timestep_scale_multiplier": self.av_ca_timestep_scale_multiplier,
                "rope_type": self.rope_type.value,
                "frequencies_precision": "float64" if self.rope_fp64_grid else "float32",
                "norm_eps": self.norm_eps,
            }
        )
        for k in OPTIONAL_FLAGS:
            if getattr(self, k):
                out[k] = True
        for k, v in FIXED_VALUES.items():
            out.setdefault(k, v)
        return out

    def replace(self, **changes: Any) -> "TransformerConfig":
        return dataclasses.replace(self, **changes)


def official_19b_header() -> dict:
    """``config.transformer`` of ``ltx-2-19b-dev.safetensors`` (LTX2_SPEC.md section 1.1)."""
    return {
        "num_layers": 48,
        "num_attention_heads": 32,
        "attention_head_dim": 128,
        "in_channels": 128,
        "out_channels": 128,
        "cross_attention_dim": 4096,
        "caption_channels": 3840,
        "audio_num_attention_heads": 32,
        "audio_attention_head_dim": 64,
        "audio_in_channels": 128,
        "audio_out_channels": 128,
        "audio_cross_attention_dim": 2048,
        "positional_embedding_theta": 10000.0,
        "positional_embedding_max_pos": [20, 2048, 2048],
        "audio_positional_embedding_max_pos": [20],
        "timestep_scale_multiplier": 1000,
        "av_ca_timestep_scale_multiplier": 1000.0,
        "rope_type": "split",
        "frequencies_precision": "float64",
        "norm_eps": 1e-6,
        "dropout": 0.0,
        "attention_bias": True,
        "num_vector_embeds": None,
        "activation_fn": "gelu-approximate",
        "num_embeds_ada_norm": 1000,
        "use_linear_projection": False,
        "only_cross_attention": False,
        "cross_attention_norm": True,
        "double_self_attention": False,
        "upcast_attention": False,
        "standardization_norm": "rms_norm",
        "norm_elementwise_affine": False,
        "qk_norm": "rms_norm",
        "positional_embedding_type": "rope",
        "use_audio_video_cross_attention": True,
        "share_ff": False,
        "av_cross_ada_norm": True,
        "use_middle_indices_grid": True,
        "connector_num_layers": 2,
        "connector_num_attention_heads": 30,
        "connector_attention_head_dim": 128,
        "connector_num_learnable_registers": 128,
        "connector_positional_embedding_max_pos": [4096],
        "causal_temporal_positioning": True,
        "connector_norm_output": True,
        "use_embeddings_connector": True,
    }
