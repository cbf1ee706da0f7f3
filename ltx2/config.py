"""Transformer configuration: every size and switch of the joint audio+video transformer.

A ``TransformerConfig`` holds two kinds of values:

* *shape* values (``SHAPE_KEYS``, ``caption_channels`` and the LTX-2.3 switches): for a
  checkpoint file they are read off its tensors (``model_loaders.transformer_config``);
* *numeric* values (``NUMERIC_KEYS``: RoPE type and grid precision, theta, max positions,
  the two timestep multipliers, eps): no tensor shape shows them, so they come from the
  file's header config, or, for a file without one, from ``RELEASED_NUMERICS`` -- the values
  every published LTX-2.0 and LTX-2.3 header states.

``TransformerConfig.from_header`` builds one from a *complete* description (every shape and
numeric key, as ``to_header`` writes it): presets for benchmarks and tests that build modules
without a file.  ``provenance`` records, per key, where a value came from ("shape",
"header" or "released default").
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


# Keys that change the numerics but not the shapes: from the header, else the released values.
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

# Keys that fix the tensor shapes: read off the tensors for a file (a header may state them too,
# and must agree); a complete description (``from_header``) needs them all.
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

# The numeric settings of every published LTX-2.0 and LTX-2.3 header (``config.transformer``):
# identical in both versions.  A file without a header config gets these.
RELEASED_NUMERICS: Mapping[str, Any] = {
    "rope_type": "split",
    "frequencies_precision": "float64",
    "timestep_scale_multiplier": 1000,
    "av_ca_timestep_scale_multiplier": 1000.0,
    "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048],
    "audio_positional_embedding_max_pos": [20],
    "norm_eps": 1e-06,
}
# The text connectors' one numeric setting of the published headers (the connectors share
# rope_type / frequencies_precision with the transformer).
RELEASED_CONNECTOR_NUMERICS: Mapping[str, Any] = {"connector_positional_embedding_max_pos": [4096]}
# Head width of every released text connector (2.0: 30 x 128; 2.3: 32 x 128 video, 32 x 64 audio
# with its own audio_connector_* keys).  An ungated (2.0) connector's tensors give only heads x
# head_dim; without a header this splits it.
RELEASED_CONNECTOR_HEAD_DIM = 128
# Heads per stream in every released model (video 32 x 128, audio 32 x 64).  LTX-2.0 tensors
# give only heads x head_dim (q_norm spans the whole inner width); without a header this splits it.
RELEASED_HEADS = 32
# Width of the text encoder's hidden states (Gemma-3-12B) = the published ``caption_channels``.
RELEASED_CAPTION_CHANNELS = 3840

# Where a value came from (``TransformerConfig.provenance``).
FROM_SHAPE, FROM_HEADER, FROM_RELEASED = "shape", "header", "released default"


def released_numerics(version: str) -> dict:
    """The numeric header values of the published LTX ``version`` files ("2.0" / "2.3"), connectors included.

    A fresh dict: ``RELEASED_NUMERICS`` + ``RELEASED_CONNECTOR_NUMERICS`` (the same for both
    versions; the argument documents which file fingerprint chose them).
    """
    if version not in ("2.0", "2.3"):
        raise ValueError(f"released values exist for LTX 2.0 and 2.3, not {version!r}")
    return {k: list(v) if isinstance(v, list) else v for k, v in {**RELEASED_NUMERICS, **RELEASED_CONNECTOR_NUMERICS}.items()}


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
    # key -> FROM_SHAPE / FROM_HEADER / FROM_RELEASED (see the module docstring)
    provenance: dict = field(default_factory=dict, compare=False, repr=False)

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
        """Build from a complete description: every ``SHAPE_KEYS`` and ``NUMERIC_KEYS`` entry.

        For presets (benchmarks, tests) and what ``to_header`` wrote.  A checkpoint's header is
        *not* complete (the published ones lack ``audio_in_channels``): files go through
        ``model_loaders.transformer_config``, which reads the shapes off the tensors.
        Raises ``ConfigError`` naming the missing keys, or a fixed key whose value LTX-2 does
        not support.
        """
        if not isinstance(transformer, Mapping):
            raise ConfigError(
                f"{source}: header config has no 'transformer' object (found {type(transformer).__name__})."
            )
        missing = [k for k in (*SHAPE_KEYS, *NUMERIC_KEYS) if k not in transformer]
        if missing:
            raise ConfigError(
                f"{source}: the transformer description lacks {', '.join(repr(k) for k in missing)}; a complete "
                f"description needs every one of {', '.join(SHAPE_KEYS + NUMERIC_KEYS)}. (Checkpoint files are read "
                "with model_loaders.transformer_config, which takes the shapes from the tensors.)"
            )
        check_fixed_values(transformer, source)
        rope, fp64 = parse_rope(transformer, source)
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
            rope_fp64_grid=fp64,
            norm_eps=float(transformer["norm_eps"]),
            extra=dict(transformer),
            provenance={k: FROM_HEADER for k in (*SHAPE_KEYS, *NUMERIC_KEYS, "caption_channels", *OPTIONAL_FLAGS)},
            **flags,
        )
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        """Check value ranges and the cross-stream constraints the A<->V attention relies on."""
        if len(self.positional_embedding_max_pos) != 3:
            raise ConfigError(f"{source}: positional_embedding_max_pos must have 3 entries (t, h, w).")
        if len(self.audio_positional_embedding_max_pos) != 1:
            raise ConfigError(f"{source}: audio_positional_embedding_max_pos must have 1 entry (t).")
        positive = {
            "positional_embedding_theta": self.positional_embedding_theta,
            "timestep_scale_multiplier": self.timestep_scale_multiplier,
            "av_ca_timestep_scale_multiplier": self.av_ca_timestep_scale_multiplier,
            "norm_eps": self.norm_eps,
            "positional_embedding_max_pos": min(self.positional_embedding_max_pos),
            "audio_positional_embedding_max_pos": min(self.audio_positional_embedding_max_pos),
        }
        bad = {k: v for k, v in positive.items() if not v > 0}
        if bad:
            raise ConfigError(f"{source}: these values must be positive: {bad}.")
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


def check_fixed_values(transformer: Mapping[str, Any], source: str) -> None:
    """``ConfigError`` when a header states another value for an architecture switch LTX-2 hard-codes."""
    for key, expected in FIXED_VALUES.items():
        if key in transformer and transformer[key] != expected:
            raise ConfigError(
                f"{source}: config.transformer[{key!r}] is {transformer[key]!r}; LTX-2 needs {expected!r}. "
                "This file describes a model variant that OpenLTX does not support."
            )


def parse_rope(values: Mapping[str, Any], source: str) -> tuple[RopeType, bool]:
    """``(rope_type, fp64 grid)`` from ``rope_type`` / ``frequencies_precision``; bad values raise ``ConfigError``."""
    try:
        rope = RopeType(values["rope_type"])
    except ValueError:
        raise ConfigError(
            f"{source}: config.transformer['rope_type'] is {values['rope_type']!r}; "
            "expected 'split' (LTX-2) or 'interleaved'."
        ) from None
    precision = values["frequencies_precision"]
    if precision not in ("float64", "float32", False, None):
        raise ConfigError(
            f"{source}: config.transformer['frequencies_precision'] is {precision!r}; expected 'float64' or 'float32'."
        )
    return rope, precision == "float64"


def official_19b_header() -> dict:
    """A complete description of the 19B transformer (for presets that build it without a file).

    The published header's values plus ``audio_in_channels`` (128), which the published header
    lacks: in the file only the shape of ``audio_patchify_proj.weight`` states it.
    """
    return {
        "num_layers": 48,
        "num_attention_heads": RELEASED_HEADS,
        "attention_head_dim": 128,
        "in_channels": 128,
        "out_channels": 128,
        "cross_attention_dim": 4096,
        "caption_channels": RELEASED_CAPTION_CHANNELS,
        "audio_num_attention_heads": RELEASED_HEADS,
        "audio_attention_head_dim": 64,
        "audio_in_channels": 128,
        "audio_out_channels": 128,
        "audio_cross_attention_dim": 2048,
        **released_numerics("2.0"),
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
        "connector_attention_head_dim": RELEASED_CONNECTOR_HEAD_DIM,
        "connector_num_learnable_registers": 128,
        "causal_temporal_positioning": True,
        "connector_norm_output": True,
        "use_embeddings_connector": True,
    }
