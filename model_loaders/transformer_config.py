"""The transformer config of a checkpoint: shapes from its tensors, numerics from its header.

Every size of the LTX-2 transformer is in the shapes of its tensors (bare keys, i.e. after
``model.diffusion_model.``):

===============================  =====================================================
value                            read from
===============================  =====================================================
``num_layers``                   the number of ``transformer_blocks.N`` blocks
``in_channels``                  ``patchify_proj.weight`` ``[video width, in]``
``out_channels``                 ``proj_out.weight`` ``[out, video width]``
``audio_in_channels``            ``audio_patchify_proj.weight`` ``[audio width, in]``
``audio_out_channels``           ``audio_proj_out.weight``
heads x head dim (video / audio) ``transformer_blocks.0.{attn1,audio_attn1}.q_norm.weight``
                                 (the QK norm spans all heads: ``[heads * head_dim]``)
heads (LTX-2.3)                  ``...attn1.to_gate_logits.weight`` ``[heads, width]``
``cross_attention_dim``          ``transformer_blocks.0.attn2.to_k.weight`` ``[inner, ctx]``
``audio_cross_attention_dim``    ``transformer_blocks.0.audio_attn2.to_k.weight``
``caption_channels`` (LTX-2.0)   ``caption_projection.linear_1.weight`` ``[width, caption]``
``apply_gated_attention``        presence of ``to_gate_logits``
``cross_attention_adaln``        9 rows (not 6) in ``transformer_blocks.0.scale_shift_table``
``caption_proj_before_connector`` absence of ``caption_projection`` (2.3 projects captions in
                                 the text encoder)
===============================  =====================================================

What no shape shows comes from the header's ``config.transformer``: ``NUMERIC_KEYS`` (RoPE
type and grid precision, theta, max positions, both timestep multipliers, eps) and, for LTX-2.0
files (no gate logits), how the attention width splits into heads x head dim.  A file without
a header config gets the released values (``ltx2.config.RELEASED_NUMERICS``, 32 heads); a
header that lacks some numeric keys gets the released values for those, with a warning.  Both
cases are logged in one line.

A header value that contradicts a shape is an error naming the key, the header value and the
tensor with its shape: the header belongs to another model, or was edited.  Nothing here builds
a module, so a header saying ``num_layers: 1000000`` costs nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .safetensors_file import CheckpointError

try:  # see model_loaders/__init__.py
    from ..ltx2.config import (
        FROM_HEADER,
        FROM_RELEASED,
        FROM_SHAPE,
        NUMERIC_KEYS,
        OPTIONAL_FLAGS,
        RELEASED_CAPTION_CHANNELS,
        RELEASED_HEADS,
        RELEASED_NUMERICS,
        ConfigError,
        TransformerConfig,
        check_fixed_values,
        parse_rope,
    )
except ImportError:
    from ltx2.config import (
        FROM_HEADER,
        FROM_RELEASED,
        FROM_SHAPE,
        NUMERIC_KEYS,
        OPTIONAL_FLAGS,
        RELEASED_CAPTION_CHANNELS,
        RELEASED_HEADS,
        RELEASED_NUMERICS,
        ConfigError,
        TransformerConfig,
        check_fixed_values,
        parse_rope,
    )

log = logging.getLogger(__name__)

_BLOCK = re.compile(r"transformer_blocks\.(\d+)\.")
# (config key, bare tensor key, dimension) for the sizes one tensor dimension states.
SIZE_PROBES = (
    ("in_channels", "patchify_proj.weight", 1),
    ("out_channels", "proj_out.weight", 0),
    ("audio_in_channels", "audio_patchify_proj.weight", 1),
    ("audio_out_channels", "audio_proj_out.weight", 0),
    ("cross_attention_dim", "transformer_blocks.0.attn2.to_k.weight", 1),
    ("audio_cross_attention_dim", "transformer_blocks.0.audio_attn2.to_k.weight", 1),
)
# stream -> (heads key, head-dim key, q_norm tensor, gate tensor)
HEAD_PROBES = {
    "video": ("num_attention_heads", "attention_head_dim", "transformer_blocks.0.attn1.q_norm.weight",
              "transformer_blocks.0.attn1.to_gate_logits.weight"),
    "audio": ("audio_num_attention_heads", "audio_attention_head_dim", "transformer_blocks.0.audio_attn1.q_norm.weight",
              "transformer_blocks.0.audio_attn1.to_gate_logits.weight"),
}  # fmt: skip
TABLE = "transformer_blocks.0.scale_shift_table"
CAPTION = "caption_projection.linear_1.weight"
GATE = HEAD_PROBES["video"][3]
# Where each shape-derived key is read (for reports such as tools/inspect_checkpoint.py).
SHAPE_SOURCES: Mapping[str, str] = {
    "num_layers": "count of transformer_blocks.N",
    **{key: f"{tensor}[{dim}]" for key, tensor, dim in SIZE_PROBES},
    "num_attention_heads": f"{GATE}[0] (LTX-2.3)",
    "attention_head_dim": f"{HEAD_PROBES['video'][2]}[0] / heads",
    "audio_num_attention_heads": f"{HEAD_PROBES['audio'][3]}[0] (LTX-2.3)",
    "audio_attention_head_dim": f"{HEAD_PROBES['audio'][2]}[0] / heads",
    "caption_channels": f"{CAPTION}[1] (LTX-2.0)",
    "apply_gated_attention": f"presence of {GATE}",
    "cross_attention_adaln": f"{TABLE}[0] == 9",
    "caption_proj_before_connector": f"absence of {CAPTION}",
}


@dataclass(frozen=True)
class Evidence:
    """A value read off the tensors, and the tensor that shows it (``shape`` None: the tensor is absent)."""

    value: Any
    tensor: str
    shape: tuple[int, ...] | None
    note: str | None = None  # replaces the default description; may use {prefix}

    def describe(self, prefix: str = "") -> str:
        if self.note is not None:
            return self.note.format(prefix=prefix)
        if self.shape is None:
            return f"the file has no tensor '{prefix}{self.tensor}'"
        return f"the tensor '{prefix}{self.tensor}' has shape {list(self.shape)}"


def _size(shapes, key: str, dim: int, what: str, prefix: str, source: str) -> Evidence:
    shape = shapes.get(key)
    if shape is None or len(shape) <= dim:
        found = "none" if shape is None else f"shape {list(shape)}"
        raise CheckpointError(
            f"{source}: expected the tensor '{prefix}{key}' (it fixes {what}) with at least {dim + 1} dimension(s), "
            f"found {found}. The transformer in this file is incomplete: download the file again, or use the "
            "published one."
        )
    return Evidence(int(shape[dim]), key, tuple(shape))


def shapes_from_tensors(shapes: Mapping[str, tuple], *, prefix: str = "", source: str = "checkpoint") -> dict[str, Evidence]:
    """Every transformer value the tensor shapes state (bare keys in ``shapes``; nothing is read).

    Returns config key -> ``Evidence``; besides the keys of the table in the module docstring
    (heads only when the file has gate logits) it holds ``video_inner`` / ``audio_inner``
    (heads x head dim of each stream).  ``prefix`` is only used to name file keys in errors.
    A tensor these values need is missing: ``CheckpointError`` naming it.
    """
    out: dict[str, Evidence] = {}
    blocks = {int(m.group(1)) for k in shapes if (m := _BLOCK.match(k))}
    if not blocks:
        raise CheckpointError(f"{source}: expected transformer blocks '{prefix}transformer_blocks.N.*', found none.")
    last = max(blocks)
    out["num_layers"] = Evidence(
        last + 1, f"transformer_blocks.{last}.*", None,
        note=f"the file's blocks are '{{prefix}}transformer_blocks.N.*' with N up to {last}",
    )
    for key, tensor, dim in SIZE_PROBES:
        out[key] = _size(shapes, tensor, dim, key, prefix, source)
    for stream, (heads_key, _, norm, gate) in HEAD_PROBES.items():
        out[f"{stream}_inner"] = _size(shapes, norm, 0, f"the {stream} attention width", prefix, source)
        if gate in shapes:
            out[heads_key] = _size(shapes, gate, 0, f"the {stream} head count", prefix, source)
    out["apply_gated_attention"] = Evidence(GATE in shapes, GATE, shapes.get(GATE))
    table = _size(shapes, TABLE, 0, "the modulation rows (6, or 9 with cross-attention AdaLN)", prefix, source)
    if table.value not in (6, 9):
        raise CheckpointError(
            f"{source}: expected 6 or 9 rows in '{prefix}{TABLE}' (LTX-2.0 / LTX-2.3 modulation), found shape "
            f"{list(table.shape)}. This is not an LTX-2 transformer OpenLTX knows."
        )
    out["cross_attention_adaln"] = Evidence(table.value == 9, TABLE, table.shape)
    caption = shapes.get(CAPTION)
    out["caption_proj_before_connector"] = Evidence(caption is None, CAPTION, caption)
    if caption is not None:
        out["caption_channels"] = _size(shapes, CAPTION, 1, "caption_channels", prefix, source)
    return out


class _Resolver:
    """Collects values, their provenance and every header/tensor contradiction."""

    def __init__(self, header: Mapping[str, Any] | None, prefix: str) -> None:
        self.header, self.prefix = header, prefix
        self.values: dict[str, Any] = {}
        self.provenance: dict[str, str] = {}
        self.conflicts: list[str] = []

    def stated(self, key: str) -> Any:
        return None if self.header is None else self.header.get(key)

    def conflict(self, key: str, stated: Any, why: str) -> None:
        self.conflicts.append(f"config.transformer[{key!r}] is {stated!r}, but {why}")

    def from_shape(self, key: str, ev: Evidence, value: Any = None) -> None:
        value = ev.value if value is None else value
        stated = self.stated(key)
        if stated is not None and _differs(stated, value):
            self.conflict(key, stated, f"{ev.describe(self.prefix)}, which makes it {value!r}")
        self.values[key], self.provenance[key] = value, FROM_SHAPE

    def heads(self, stream: str, found: Mapping[str, Evidence]) -> None:
        heads_key, dim_key, _, _ = HEAD_PROBES[stream]
        inner = found[f"{stream}_inner"]
        width = inner.value
        if heads_key in found:  # LTX-2.3: one gate logit per head
            heads = found[heads_key]
            if heads.value < 1 or width % heads.value:
                raise CheckpointError(
                    f"{heads.describe(self.prefix)} ({heads.value} heads), which does not divide the {stream} "
                    f"attention width {width} ({inner.describe(self.prefix)}). The file is corrupt."
                )
            self.from_shape(heads_key, heads)
            self.from_shape(dim_key, inner, width // heads.value)
            return
        heads, dim = self.stated(heads_key), self.stated(dim_key)
        try:
            heads = None if heads is None else int(heads)
            dim = None if dim is None else int(dim)
        except (TypeError, ValueError):
            raise ConfigError(f"config.transformer[{heads_key!r}] / [{dim_key!r}] must be integers, found "
                              f"{self.stated(heads_key)!r} / {self.stated(dim_key)!r}.") from None
        where = {heads_key: FROM_HEADER, dim_key: FROM_HEADER}
        if heads is not None and dim is not None:
            if heads * dim != width:
                self.conflicts.append(
                    f"config.transformer[{heads_key!r}] x [{dim_key!r}] is {heads} x {dim} = {heads * dim}, but "
                    f"{inner.describe(self.prefix)}: the {stream} attention is {width} wide"
                )
                return
        elif heads is not None or dim is not None:
            given_key, given = (heads_key, heads) if heads is not None else (dim_key, dim)
            if given < 1 or width % given:
                self.conflict(given_key, given, f"{inner.describe(self.prefix)}: it does not divide the {stream} "
                                                f"attention width {width}")
                return
            heads, dim = (heads, width // heads) if heads is not None else (width // dim, dim)
            where[dim_key if given_key == heads_key else heads_key] = FROM_SHAPE
        else:  # LTX-2.0 tensors without a header: the released head count
            if width % RELEASED_HEADS:
                raise CheckpointError(
                    f"the {stream} attention is {width} wide ({inner.describe(self.prefix)}) and nothing in the file "
                    f"states its head count (no {heads_key!r} in a header config); the released LTX-2 models have "
                    f"{RELEASED_HEADS} heads, which do not divide {width}. This is not a released LTX-2 model: it needs "
                    f"its header config (with {heads_key!r} and {dim_key!r})."
                )
            heads, dim = RELEASED_HEADS, width // RELEASED_HEADS
            where = {heads_key: FROM_RELEASED, dim_key: FROM_RELEASED}
        self.values.update({heads_key: heads, dim_key: dim})
        self.provenance.update(where)


def _differs(stated: Any, value: Any) -> bool:
    if isinstance(value, bool):
        return bool(stated) != value
    try:
        return int(stated) != value or float(stated) != float(value)
    except (TypeError, ValueError):
        return True


def resolve_transformer_config(
    shapes: Mapping[str, tuple],
    header: Mapping[str, Any] | None,
    *,
    version: str,
    source: str = "checkpoint",
    prefix: str = "",
) -> TransformerConfig:
    """The ``TransformerConfig`` of a checkpoint: sizes from ``shapes`` (bare keys), numerics from ``header``.

    Args:
        shapes: bare transformer key -> shape (text connectors excluded or not: ignored).
        header: the header's ``config.transformer`` section, or ``None`` when the file has none.
        version: "2.0" / "2.3" (the tensor fingerprint; only used in the log line).
        source: the file, for messages.  prefix: the file's key prefix, for messages.
    Raises:
        CheckpointError: a header value contradicts a tensor shape (every contradiction is
            listed: key, header value, tensor and shape), a tensor the sizes need is missing,
            or a header value is invalid.
    """
    if header is not None and not isinstance(header, Mapping):
        raise CheckpointError(f"{source}: the header's config.transformer should be a JSON object, found "
                              f"{type(header).__name__}.")
    found = shapes_from_tensors(shapes, prefix=prefix, source=source)
    r = _Resolver(header, prefix)
    try:
        if header is not None:
            check_fixed_values(header, source)
        for key in ("num_layers", *(k for k, _, _ in SIZE_PROBES), *OPTIONAL_FLAGS):
            r.from_shape(key, found[key])
        try:
            for stream in HEAD_PROBES:
                r.heads(stream, found)
        except CheckpointError as err:
            raise CheckpointError(f"{source}: {err}") from None
        if "caption_channels" in found:
            r.from_shape("caption_channels", found["caption_channels"])
        elif r.stated("caption_channels") is not None:  # 2.3: the text encoder's width, no transformer tensor shows it
            r.values["caption_channels"], r.provenance["caption_channels"] = int(r.stated("caption_channels")), FROM_HEADER
        else:
            r.values["caption_channels"], r.provenance["caption_channels"] = RELEASED_CAPTION_CHANNELS, FROM_RELEASED
        if r.conflicts:
            raise CheckpointError(
                f"{source}: the header config contradicts the tensors: {'; '.join(r.conflicts)}. The tensors decide "
                "every shape; this header belongs to another model or was edited. Use the published file, or a copy "
                "whose header config was saved with these weights (a file without any config loads too)."
            )
        numerics, filled = {}, []
        for key in NUMERIC_KEYS:
            stated = r.stated(key)
            if stated is None:
                numerics[key] = RELEASED_NUMERICS[key]
                r.provenance[key] = FROM_RELEASED
                filled.append(key)
            else:
                numerics[key] = stated
                r.provenance[key] = FROM_HEADER
        rope, fp64 = parse_rope(numerics, source)
        v = r.values
        cfg = TransformerConfig(
            num_layers=v["num_layers"],
            num_attention_heads=v["num_attention_heads"],
            attention_head_dim=v["attention_head_dim"],
            in_channels=v["in_channels"],
            out_channels=v["out_channels"],
            cross_attention_dim=v["cross_attention_dim"],
            caption_channels=v["caption_channels"],
            audio_num_attention_heads=v["audio_num_attention_heads"],
            audio_attention_head_dim=v["audio_attention_head_dim"],
            audio_in_channels=v["audio_in_channels"],
            audio_out_channels=v["audio_out_channels"],
            audio_cross_attention_dim=v["audio_cross_attention_dim"],
            positional_embedding_theta=float(numerics["positional_embedding_theta"]),
            positional_embedding_max_pos=tuple(float(x) for x in _sequence(numerics, "positional_embedding_max_pos", source)),
            audio_positional_embedding_max_pos=tuple(
                float(x) for x in _sequence(numerics, "audio_positional_embedding_max_pos", source)
            ),
            timestep_scale_multiplier=float(numerics["timestep_scale_multiplier"]),
            av_ca_timestep_scale_multiplier=float(numerics["av_ca_timestep_scale_multiplier"]),
            rope_type=rope,
            rope_fp64_grid=fp64,
            norm_eps=float(numerics["norm_eps"]),
            apply_gated_attention=v["apply_gated_attention"],
            cross_attention_adaln=v["cross_attention_adaln"],
            caption_proj_before_connector=v["caption_proj_before_connector"],
            extra=dict(header or {}),
            provenance=dict(r.provenance),
        )
        cfg.validate(source)
    except CheckpointError:
        raise
    except ConfigError as err:
        message = str(err)
        raise CheckpointError(message if message.startswith(source) else f"{source}: {message}") from None
    except (TypeError, ValueError) as err:  # a numeric header value of the wrong type
        raise CheckpointError(f"{source}: a numeric value in the header's config.transformer is malformed ({err}).") from None
    _log_defaults(source, version, header, filled)
    return cfg


def _sequence(values: Mapping[str, Any], key: str, source: str) -> list:
    value = values[key]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{source}: config.transformer[{key!r}] should be a list, found {value!r}.")
    return list(value)


def _log_defaults(source: str, version: str, header, filled: list[str]) -> None:
    """One line when released values stand in for a missing header (or missing header keys)."""
    if header is None:
        log.info(
            "OpenLTX: %s has no model config in its header: LTX-%s transformer sized from its tensors, with the "
            "released settings (split RoPE on a float64 grid, multipliers 1000/1000, theta 1e4, max positions "
            "[20, 2048, 2048] / [20], eps 1e-6, 32 heads where the tensors do not state them)",
            source,
            version,
        )
    elif filled:
        shown = ", ".join(f"{k}={RELEASED_NUMERICS[k]!r}" for k in filled)
        log.warning("OpenLTX: %s: the header's config.transformer lacks %s; using the released values", source, shown)
