"""The text projector's config from the parts' tensors, with the header's numerics.

Shapes come from the tensors: connector depth (counting ``transformer_1d_blocks.N``), width
(``learnable_registers``), register count, gated attention (``to_gate_logits``, whose bias
length is the head count), V1 vs V2 projection (its keys), projection widths.  The header
(``config.transformer`` of whichever selected LTX file has one) supplies only what shapes
cannot: ``connector_positional_embedding_max_pos``, ``rope_type``, ``frequencies_precision``,
and the head split of an ungated connector (``connector_num_attention_heads`` x
``connector_attention_head_dim``).  Without a header the released constants apply (the same
for 2.0 and 2.3: max position [4096], split RoPE, float64 frequency grid, 128-wide heads; theta
1e4 and eps 1e-6 are fixed for every connector), and one log line says so.  A header value that
contradicts a shape is an error naming the key, the value and the shape.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Iterable

from .config_sources import HEADER, RELEASED, SHAPE, listing
from .quant import nvfp4
from .safetensors_file import CheckpointError
from .text_files import PROJECTION, Part, TextParts, _err, _connectors_in, _projection_in, locate_text_parts, read_text_file

try:  # see model_loaders/__init__.py
    from ..ltx2.config import (
        RELEASED_CAPTION_CHANNELS,
        RELEASED_CONNECTOR_HEAD_DIM,
        ConfigError,
        RopeType,
        released_numerics,
    )
    from ..ltx2.text_connector import CONNECTOR_NORM_EPS, CONNECTOR_ROPE_THETA, ConnectorConfig, TextProjectorConfig
    from ..ltx2.text_features import uses_v2_features
except ImportError:
    from ltx2.config import (
        RELEASED_CAPTION_CHANNELS,
        RELEASED_CONNECTOR_HEAD_DIM,
        ConfigError,
        RopeType,
        released_numerics,
    )
    from ltx2.text_connector import CONNECTOR_NORM_EPS, CONNECTOR_ROPE_THETA, ConnectorConfig, TextProjectorConfig
    from ltx2.text_features import uses_v2_features

log = logging.getLogger(__name__)

# What every released LTX-2 / LTX-2.3 file's header says about the connectors (used when no
# selected file has a header config): ltx2.config's released values of the keys the text path reads.
RELEASED_NUMERICS = {k: released_numerics("2.0")[k]
                     for k in ("connector_positional_embedding_max_pos", "rope_type", "frequencies_precision")}  # fmt: skip
RELEASED_HEAD_DIM = RELEASED_CONNECTOR_HEAD_DIM  # an ungated connector's heads need a header otherwise
RELEASED_TEXT_WIDTH = RELEASED_CAPTION_CHANNELS  # Gemma 3 12B
NORM_TYPES = {"per_token_rms": True}  # text_encoder_norm_type -> V2 (the only value published)
_SHOW = 6


def _listing(keys) -> str:
    return listing(keys, _SHOW)


def _shape(part: Part, key: str) -> tuple[int, ...] | None:
    """Logical shape of a part tensor (an NVFP4 weight: its stored, 16-padded bound)."""
    entry = part.file.tensors.get(key)
    if entry is None:
        return None
    dtype, shape = entry
    if dtype == "U8" and key.endswith(".weight") and key[: -len(".weight")] + ".weight_scale_2" in part.file.tensors:
        return nvfp4.logical_bounds(shape)
    return tuple(shape)


class _Header:
    """``config.transformer`` lookups that name the file and key when a value contradicts a shape."""

    def __init__(self, parts: TextParts) -> None:
        self.section = parts.header or {}
        self.source = parts.header_file.path if parts.header_file else None

    def get(self, key: str, default=None):
        return self.section.get(key, default)

    def has(self, key: str) -> bool:
        return key in self.section

    def contradiction(self, key: str, value, shape: str, fix: str = "") -> CheckpointError:
        return _err(
            self.source,
            f"the header's config.transformer[{key!r}] is {value!r}, but the tensors say otherwise: {shape}. The header "
            f"and the weights come from different models{fix or ': use the files as published, unmodified.'}",
        )


def _connector_config(parts: TextParts, header: _Header, stream: str, numerics: dict, notes: dict | None = None
                      ) -> ConnectorConfig:
    """One connector's config from its tensors (+ the header's head split for an ungated one).

    ``notes`` (optional) receives where each value came from: "shape: <tensor>", "header: <file>"
    or "released default: <what>" (``config_sources`` labels).
    """
    notes = {} if notes is None else notes
    part = parts.connectors
    base = f"{part.prefix}{stream}_embeddings_connector."
    where = f"{part.file.name}: {stream} connector"
    keys = [k for k in part.keys if k.startswith(base)]
    if not keys:
        raise _err(part.file.path, f"the {stream} text connector ('{base}*') is missing; the file holds only the other "
                   "connector. The file is incomplete: download it again.")  # fmt: skip
    blocks = sorted({int(m.group(1)) for k in keys if (m := re.match(re.escape(base) + r"transformer_1d_blocks\.(\d+)\.", k))})
    if blocks != list(range(len(blocks))) or not blocks:
        raise _err(part.file.path, f"expected the {stream} connector's blocks transformer_1d_blocks.0..N-1, found "
                   f"{blocks}. The file is incomplete: download it again.")  # fmt: skip
    registers = _shape(part, base + "learnable_registers")
    q = _shape(part, base + "transformer_1d_blocks.0.attn1.to_q.weight")
    if registers is None or q is None or len(registers) != 2 or len(q) != 2:
        missing = [k for k, s in ((base + "learnable_registers", registers), (base + "transformer_1d_blocks.0.attn1.to_q"
                                                                              ".weight", q)) if s is None]  # fmt: skip
        raise _err(part.file.path, f"the {stream} connector lacks {missing or 'matrix-shaped registers / to_q'}; the "
                   "file is incomplete: download it again.")  # fmt: skip
    width = registers[1]
    gate = _shape(part, base + "transformer_1d_blocks.0.attn1.to_gate_logits.weight")
    gate_bias = _shape(part, base + "transformer_1d_blocks.0.attn1.to_gate_logits.bias")
    if gate is not None and gate_bias is not None and len(gate_bias) == 1:
        gate = (gate_bias[0], width)  # the bias is never quantized: its length is the head count
    layers = len(blocks)
    audio = stream == "audio"

    def stated(name: str):
        """The header value for this stream (audio_connector_* falls back to connector_*)."""
        key = f"connector_{name}"
        if audio and header.has(f"audio_{key}"):
            return f"audio_{key}", header.get(f"audio_{key}")
        return key, header.get(key)

    key, value = stated("num_layers")
    if value is not None and int(value) != layers:
        raise header.contradiction(key, value, f"{where} has {layers} blocks (transformer_1d_blocks.0..{layers - 1})")
    key, value = ("connector_num_learnable_registers", header.get("connector_num_learnable_registers"))
    if value is not None and int(value) != registers[0]:
        raise header.contradiction(key, value, f"{where} learnable_registers has shape {list(registers)}")
    gated = gate is not None
    value = header.get("connector_apply_gated_attention")
    if value is not None and bool(value) != gated:
        found = f"to_gate_logits {list(gate)}" if gated else "no to_gate_logits"
        raise header.contradiction("connector_apply_gated_attention", value, f"{where} has {found}")
    (hkey, heads), (dkey, head_dim) = stated("num_attention_heads"), stated("attention_head_dim")
    if gated:
        if len(gate) != 2 or gate[1] != width or width % gate[0]:
            raise _err(part.file.path, f"{where}: to_gate_logits has shape {list(gate)}, which is not (heads, "
                       f"{width}) with heads dividing {width}. The file is corrupt.")  # fmt: skip
        if heads is not None and int(heads) != gate[0]:
            raise header.contradiction(hkey, heads, f"{where} has {gate[0]} attention heads (to_gate_logits {list(gate)})")
        heads = gate[0]
        if head_dim is not None and int(head_dim) * heads != width:
            raise header.contradiction(dkey, head_dim, f"{where} is {width} wide = {heads} heads x {width // heads}")
        head_dim = width // heads
        notes[f"{stream}.heads"] = f"{SHAPE}: to_gate_logits {list(gate)}"
    elif heads is not None or head_dim is not None:
        if heads is None or head_dim is None:
            heads = heads if heads is not None else width // int(head_dim)
            head_dim = head_dim if head_dim is not None else width // int(heads)
        if int(heads) * int(head_dim) != width:
            raise header.contradiction(f"{hkey} x {dkey}", f"{heads} x {head_dim}", f"{where} is {width} wide "
                                       f"(learnable_registers {list(registers)})")  # fmt: skip
        notes[f"{stream}.heads"] = f"{HEADER}: {hkey} / {dkey} of {parts.header_file.name}"
    else:
        if width % RELEASED_HEAD_DIM:
            said = (f"{parts.header_file.name}'s header config has neither" if parts.header is not None else
                    "no selected file has a header config with")  # fmt: skip
            raise _err(part.file.path, f"{where} is {width} wide and has no per-head gate, so its head count is not in "
                       f"the tensors, and {said} connector_num_attention_heads / connector_attention_head_dim; the "
                       f"released models use {RELEASED_HEAD_DIM}-wide heads, which do not divide {width}. Select the "
                       "LTX checkpoint whose header describes this connector.")  # fmt: skip
        heads, head_dim = width // RELEASED_HEAD_DIM, RELEASED_HEAD_DIM
        notes[f"{stream}.heads"] = f"{RELEASED}: {RELEASED_HEAD_DIM}-wide heads (no gate, no header)"
    notes[f"{stream}.layers"] = f"{SHAPE}: transformer_1d_blocks.0..{layers - 1}"
    notes[f"{stream}.width"] = f"{SHAPE}: learnable_registers {list(registers)}"
    notes[f"{stream}.gated"] = f"{SHAPE}: " + ("to_gate_logits present" if gated else "no to_gate_logits")
    return ConnectorConfig(
        num_layers=layers,
        heads=int(heads),
        head_dim=int(head_dim),
        num_registers=registers[0],
        max_pos=numerics["max_pos"],
        rope_type=numerics["rope_type"],
        rope_fp64_grid=numerics["fp64"],
        gated=gated,
        theta=CONNECTOR_ROPE_THETA,
    )


def _numerics(parts: TextParts, header: _Header, notes: dict | None = None) -> dict:
    """RoPE settings from the header, or the released constants (one log line says which were used)."""
    defaulted = [k for k in RELEASED_NUMERICS if not header.has(k)]
    if notes is not None:
        for k in RELEASED_NUMERICS:
            notes[k] = RELEASED if k in defaulted else f"{HEADER}: {parts.header_file.name}"
    values = {k: header.get(k, v) for k, v in RELEASED_NUMERICS.items()}
    if defaulted:
        if parts.header is None:
            log.info("OpenLTX text encoder: no selected LTX file has a header config; the text connectors use the "
                     "released LTX-2 / 2.3 numerics (%s; theta %g, eps %g)",
                     ", ".join(f"{k} {v}" for k, v in RELEASED_NUMERICS.items()), CONNECTOR_ROPE_THETA,
                     CONNECTOR_NORM_EPS)  # fmt: skip
        else:
            log.info("OpenLTX text encoder: %s's header lacks %s; using the released values %s",
                     parts.header_file.name, defaulted, {k: RELEASED_NUMERICS[k] for k in defaulted})  # fmt: skip
    max_pos = values["connector_positional_embedding_max_pos"]
    if not isinstance(max_pos, (list, tuple)) or len(max_pos) != 1:
        raise _err(header.source, f"config.transformer['connector_positional_embedding_max_pos'] is {max_pos!r}; "
                   "expected a list with one entry (the connectors have one position axis), e.g. [4096].")  # fmt: skip
    try:
        rope_type = RopeType(values["rope_type"])
    except ValueError:
        raise _err(header.source, f"config.transformer['rope_type'] is {values['rope_type']!r}; expected 'split' or "
                   "'interleaved'.") from None  # fmt: skip
    precision = values["frequencies_precision"]
    if precision not in ("float64", "float32"):
        raise _err(header.source, f"config.transformer['frequencies_precision'] is {precision!r}; expected 'float64' "
                   "or 'float32'.")  # fmt: skip
    if header.get("connector_norm_output", True) is not True:
        raise _err(header.source, "config.transformer['connector_norm_output'] is "
                   f"{header.get('connector_norm_output')!r}; every released LTX-2 connector ends with an RMSNorm "
                   "(true), and OpenLTX knows no other variant.")  # fmt: skip
    return {"max_pos": (float(max_pos[0]),), "rope_type": rope_type, "fp64": precision == "float64"}


def _projection_shapes(proj: Part) -> tuple[bool, dict[str, tuple[int, int]], int]:
    """(LTX-2.3 dual projection?, weight name -> (outputs, inputs), inputs) read off the projection's tensors."""
    v2 = any(k.startswith(proj.prefix + PROJECTION + "video_aggregate_embed.") for k in proj.keys)
    weights = ("video_aggregate_embed", "audio_aggregate_embed") if v2 else ("aggregate_embed",)
    shapes = {}
    for w in weights:
        shape = _shape(proj, proj.prefix + PROJECTION + w + ".weight")
        bias = _shape(proj, proj.prefix + PROJECTION + w + ".bias")
        if shape is not None and len(shape) == 2 and bias is not None and len(bias) == 1:
            shape = (bias[0], shape[1])  # a quantized weight may be padded; the bias is not
        if shape is None or len(shape) != 2:
            raise _err(proj.file.path, f"expected the text projection matrix '{proj.prefix}{PROJECTION}{w}.weight', "
                       f"found {list(shape) if shape else 'none'} (the file holds {_listing(proj.keys)}). The file is "
                       "incomplete: download it again.")  # fmt: skip
        shapes[w] = shape
    flat = shapes[weights[0]][1]
    if any(s[1] != flat for s in shapes.values()):
        raise _err(proj.file.path, f"the two text projections take different input widths {shapes}. The file is corrupt.")
    return v2, shapes, flat


def resolve_config(parts: TextParts, text_hidden_size, text_hidden_states, notes: dict | None = None
                    ) -> TextProjectorConfig:
    header = _Header(parts)
    proj = parts.projection
    pname = proj.file.name
    v2, shapes, flat = _projection_shapes(proj)

    # V1 / V2 and the header's switches
    if parts.header is not None:
        try:
            header_v2 = uses_v2_features(parts.header, header.source)
        except ConfigError as err:
            raise CheckpointError(str(err)) from None
        if header_v2 != v2:
            found = ("the LTX-2.3 dual projection (video_aggregate_embed + audio_aggregate_embed)" if v2 else
                     "the LTX-2.0 single projection (aggregate_embed)")  # fmt: skip
            if v2:  # a 2.0 header: the 2.3 keys are absent
                raise _err(header.source, f"the header's config.transformer describes an LTX-2.0 text path (it has no "
                           f"caption_proj_before_connector), but {pname} holds {found}. The header and the weights "
                           "come from different models: select files of one model version.")  # fmt: skip
            raise header.contradiction("caption_proj_before_connector", parts.header.get("caption_proj_before_connector"),
                                       f"{pname} holds {found}")  # fmt: skip
    norm = header.get("text_encoder_norm_type")
    if norm is not None:
        if str(norm).lower() not in NORM_TYPES:
            raise _err(header.source, f"config.transformer['text_encoder_norm_type'] is {norm!r}; OpenLTX knows "
                       f"{sorted(NORM_TYPES)} (the LTX-2.3 per-token RMS norm).")  # fmt: skip
        if NORM_TYPES[str(norm).lower()] != v2:
            raise header.contradiction("text_encoder_norm_type", norm, f"{pname} holds the LTX-2.0 single projection, "
                                       "which normalizes each hidden state by its range")  # fmt: skip

    # text encoder width x hidden states
    caption = header.get("caption_channels")
    hidden = text_hidden_size
    if hidden is None:
        hidden = int(caption) if caption is not None else RELEASED_TEXT_WIDTH
    if caption is not None and flat % int(caption):
        raise header.contradiction("caption_channels", caption, f"{pname}'s projection takes {flat} inputs, not a "
                                   "multiple of it (hidden size x hidden states of the text encoder)")  # fmt: skip
    states = flat // hidden
    gemma = text_hidden_size is not None and text_hidden_states is not None
    if flat % hidden or (gemma and flat != hidden * text_hidden_states):
        given = (f"the Gemma model gives {text_hidden_states} hidden states ({text_hidden_states - 1} layers) of width "
                 f"{hidden}" if gemma else f"that is not a whole number of {hidden}-wide hidden states")  # fmt: skip
        raise _err(proj.file.path, f"the text projection takes {flat} inputs (hidden size x hidden states of its text "
                   f"encoder: 3840 x 49 = 188160 for Gemma 3 12B), but {given}. LTX-2 needs Gemma 3 12B (48 layers, "
                   "width 3840): a 1B / 4B / 27B Gemma does not fit.")  # fmt: skip

    numerics = _numerics(parts, header, notes)
    video, audio = (_connector_config(parts, header, s, numerics, notes) for s in ("video", "audio"))
    if notes is not None:
        notes["projection"] = f"{SHAPE}: {'video/audio_aggregate_embed (2.3 dual)' if v2 else 'aggregate_embed (2.0)'}"
        notes["text_hidden_size"] = (f"{SHAPE}: the Gemma model's width" if text_hidden_size is not None else
                                     f"{HEADER}: caption_channels" if caption is not None else
                                     f"{RELEASED}: Gemma 3 12B's width")  # fmt: skip
    if v2:
        v_out, a_out = shapes["video_aggregate_embed"][0], shapes["audio_aggregate_embed"][0]
        for stream, out, key in (("video", v_out, ("num_attention_heads", "attention_head_dim")),
                                 ("audio", a_out, ("audio_num_attention_heads", "audio_attention_head_dim"))):  # fmt: skip
            h, d = header.get(key[0]), header.get(key[1])
            if h is not None and d is not None and int(h) * int(d) != out:
                raise header.contradiction(f"{key[0]} x {key[1]}", f"{h} x {d}", f"{pname}'s {stream} projection "
                                           f"{stream}_aggregate_embed.weight has {out} outputs (the {stream} stream width)")  # fmt: skip
    else:
        v_out = a_out = shapes["aggregate_embed"][0]
    for stream, out, conn in (("video", v_out, video), ("audio", a_out, audio)):
        if conn.dim != out:
            files = pname if proj.file is parts.connectors.file else f"{pname} and {parts.connectors.file.name}"
            raise CheckpointError(
                f"the text projection and the text connectors do not fit each other: the {stream} projection gives "
                f"{out} features but the {stream} connector is {conn.dim} wide ({files}). They come from different "
                "models (LTX-2.0: 3840-wide connectors; LTX-2.3: 4096 / 2048): select files of one model version."
            )
    return TextProjectorConfig(int(hidden), int(states), v2, int(v_out), int(a_out), video, audio)


def text_parts_report(path: str | os.PathLike) -> dict:
    """What one file holds of the text path and where each value comes from (for inspection tools).

    ``{"projection": {...} | None, "connectors": {...} | None, "sources": {value: "shape: ..." |
    "header: ..." | "released default[: ...]"}}``; a part the file lacks is None (not an error here).
    """
    files = read_text_file(path)
    projection = next((p for f in files if (p := _projection_in(f))), None)
    connectors = next((p for f in files if (p := _connectors_in(f))), None)
    header_file = next((f for f in files if f.transformer is not None), None)
    parts = TextParts(files, projection, connectors, header_file.transformer if header_file else None, header_file)
    notes: dict = {}
    out: dict = {"projection": None, "connectors": None, "sources": notes}
    width_known = True
    if projection is not None:
        v2, shapes, flat = _projection_shapes(projection)
        outputs = [s[0] for s in shapes.values()] * (1 if v2 else 2)
        out["projection"] = {"kind": "2.3 dual" if v2 else "2.0 single", "inputs": flat, "outputs": outputs}
        # without a header or the Gemma model, only Gemma 3 12B's width splits the inputs into hidden states
        width_known = parts.header is not None or flat % RELEASED_TEXT_WIDTH == 0
        if not width_known:
            notes["text_hidden_size"] = (f"{RELEASED}: unknown; {flat} inputs are no whole number of Gemma 3 12B's "
                                         f"{RELEASED_TEXT_WIDTH}-wide hidden states (the Gemma file it runs with tells)")  # fmt: skip
    if projection is not None and connectors is not None and width_known:
        cfg = resolve_config(parts, None, None, notes)
        out["projection"].update(hidden_states=cfg.text_hidden_states, hidden_size=cfg.text_hidden_size)
        conns = {"video": cfg.video, "audio": cfg.audio}
    else:
        conns = {}
        if connectors is not None:
            header = _Header(parts)
            numerics = _numerics(parts, header, notes)
            conns = {s: _connector_config(parts, header, s, numerics, notes) for s in ("video", "audio")}
    if conns:
        out["connectors"] = {s: {"layers": c.num_layers, "heads": c.heads, "head_dim": c.head_dim, "registers":
                                 c.num_registers, "gated": c.gated, "max_pos": list(c.max_pos), "rope_type":
                                 c.rope_type.value, "fp64_grid": c.rope_fp64_grid} for s, c in conns.items()}  # fmt: skip
    return out


def find_text_parts(
    sources: Iterable,
    *,
    text_hidden_size: int | None = None,
    text_hidden_states: int | None = None,
) -> TextParts:
    """Find the text projection and connectors among ``sources`` and resolve their config.

    Args:
        sources: paths (role "ltx_checkpoint"), ``(path, role)`` pairs, or ``TextFile`` views;
            roles: "extra_file", "ltx_checkpoint", "text_encoder" (the Gemma file / folder).
        text_hidden_size / text_hidden_states: the Gemma model's width and hidden-state count
            (3840 x 49); None = from the header's ``caption_channels``, else Gemma 3 12B's width.
    Raises:
        CheckpointError: a part is in none of the files (naming the published files that carry
            it), a header value contradicts a shape, or the parts do not fit each other.
    """
    parts = locate_text_parts(sources)
    parts.config = resolve_config(parts, text_hidden_size, text_hidden_states)
    return parts
