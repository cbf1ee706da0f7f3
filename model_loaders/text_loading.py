"""The LTX side of the text path from the files users have -> ``ltx2.text_connector.TextProjector``.

Two parts turn Gemma's hidden states into the transformer's text context:

* the text projection: ``text_embedding_projection.aggregate_embed.weight`` (LTX-2.0: one
  matrix, no bias, "V1") or ``text_embedding_projection.{video,audio}_aggregate_embed.{weight,bias}``
  (LTX-2.3: two biased matrices, "V2");
* the two embeddings connectors: ``<prefix>{video,audio}_embeddings_connector.*``
  (``<prefix>`` is ``model.diffusion_model.`` in every published file; bare or
  ``diffusion_model.`` are accepted).

Where they live depends on what the user downloaded (``find_text_parts`` looks in every
selected file and says which published file carries a missing part):

====================================================  ==================  ==============
file                                                  projection          connectors
====================================================  ==================  ==============
official bundle ``ltx-2-19b-dev``, ``ltx-2.3-22b-dev``  yes                 yes
transformer-only (Kijai ``*_transformer_only_*``)     --                  yes (2.3)
Kijai 2.0 ``ltx-2-19b-embeddings_connector_*_bf16``   yes (V1)            yes
Kijai 2.3 ``ltx-2.3_text_projection_bf16``            yes (V2, 4 tensors) --
unsloth ``ltx-2.3-22b-*_embeddings_connectors``       yes (V2, 4 tensors) -- (despite the name)
GGUF transformers (QuantStack; some repacks)          (rare)              some
a Gemma file with the projection inside it            yes                 --
====================================================  ==================  ==============

Shapes come from the tensors: connector depth (counting ``transformer_1d_blocks.N``), width
(``learnable_registers`` / ``to_q``), register count, gated attention (``to_gate_logits``, whose
rows are the head count), V1 vs V2 projection (its keys), projection widths.  The header
(``config.transformer`` of whichever selected LTX file has one) supplies only what shapes
cannot: ``connector_positional_embedding_max_pos``, ``rope_type``, ``frequencies_precision``,
and the head split of an ungated connector (``connector_num_attention_heads`` x
``connector_attention_head_dim``).  Without a header the released constants apply (the same
for 2.0 and 2.3: max position [4096], split RoPE, float64 frequency grid, 128-wide heads),
and one log line says so.  A header value that contradicts a shape is an error naming the key,
the value and the shape.  Loading stays strict: every expected tensor present with its shape,
nothing unexpected under the parts' prefixes.  fp8 / NVFP4 / GGUF-quantized text weights are
dequantized once at load (the projector is small next to Gemma).

``text_conditioning`` wraps the projector's two outputs into ComfyUI's CONDITIONING list
(see ``host/model.py``); it returns plain Python lists and imports nothing from ComfyUI.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from .checkpoint import CheckpointInfo, assign_weights
from .quant import nvfp4
from .quant.formats import COMFY_FP8_FORMATS, parse_layer_config
from .safetensors_file import TORCH_DTYPES, CheckpointError, parse_config, read_header

try:  # see model_loaders/__init__.py
    from ..ltx2.config import ConfigError, RopeType
    from ..ltx2.text_connector import CONNECTOR_NORM_EPS, CONNECTOR_ROPE_THETA, ConnectorConfig, TextProjector, TextProjectorConfig
    from ..ltx2.text_features import uses_v2_features
except ImportError:
    from ltx2.config import ConfigError, RopeType
    from ltx2.text_connector import CONNECTOR_NORM_EPS, CONNECTOR_ROPE_THETA, ConnectorConfig, TextProjector, TextProjectorConfig
    from ltx2.text_features import uses_v2_features

log = logging.getLogger(__name__)

PROJECTION = "text_embedding_projection."
CONNECTOR_NAMES = {"video_embeddings_connector.": "video_connector.", "audio_embeddings_connector.": "audio_connector."}
DEFAULT_CONNECTOR_PREFIX = "model.diffusion_model."
# Kept for callers of the old single-file API.
PROJECTION_PREFIX = PROJECTION

# What every released LTX-2 / LTX-2.3 file's header says about the connectors (used when no
# selected file has a header config; LTX2_SPEC section 1.1 / the published headers).
RELEASED_NUMERICS = {
    "connector_positional_embedding_max_pos": [4096],
    "rope_type": "split",
    "frequencies_precision": "float64",
}
RELEASED_HEAD_DIM = 128  # 2.0 connectors: 30 x 128; an ungated connector's heads need a header otherwise
RELEASED_TEXT_WIDTH = 3840  # Gemma 3 12B
NORM_TYPES = {"per_token_rms": True}  # text_encoder_norm_type -> V2 (the only value published)

# Published files that carry the parts (for "missing" messages: where to download them).
PUBLISHED = (
    ("2.0", "the LTX-2 checkpoint ltx-2-19b-dev.safetensors / ltx-2-19b-distilled.safetensors (Lightricks/LTX-2, "
     "models/checkpoints)", ("projection", "connectors")),
    ("2.0", "Kijai's ltx-2-19b-embeddings_connector_dev_bf16.safetensors / ltx-2-19b-embeddings_connector_distill_bf16"
     ".safetensors (Kijai/LTXV2_comfy, models/text_encoders)", ("projection", "connectors")),
    ("2.3", "the LTX-2.3 checkpoint ltx-2.3-22b-dev.safetensors / ltx-2.3-22b-distilled.safetensors (Lightricks/LTX-2.3, "
     "models/checkpoints)", ("projection", "connectors")),
    ("2.3", "Kijai's ltx-2.3_text_projection_bf16.safetensors (Kijai/LTX2.3_comfy, models/text_encoders)",
     ("projection",)),
    ("2.3", "unsloth's ltx-2.3-22b-dev_embeddings_connectors.safetensors / ltx-2.3-22b-distilled_embeddings_connectors"
     ".safetensors (unsloth/LTX-2.3-GGUF, models/text_encoders; despite the name, the 4 projection tensors)",
     ("projection",)),
    ("2.3", "Kijai's ltx-2.3-22b-dev_transformer_only_bf16.safetensors and the other transformer_only files "
     "(Kijai/LTX2.3_comfy, models/diffusion_models)", ("connectors",)),
    ("2.3", "GGUF transformers that embed the connectors (QuantStack/LTX-2.3-GGUF, models/diffusion_models or unet)",
     ("connectors",)),
)  # fmt: skip
WHAT = {
    "projection": "text projection ('text_embedding_projection.*': Gemma's 49 hidden states -> the connectors)",
    "connectors": "text connectors ('model.diffusion_model.video_embeddings_connector.*' and "
    "'audio_embeddings_connector.*')",
}
_AUX_SUFFIXES = (".weight_scale_2", ".weight_scale", ".scale_weight", ".input_scale", ".scale_input", ".comfy_quant")
_IGNORED_AUX = (".input_scale", ".scale_input", ".comfy_quant")
_SHOW = 6


def _err(path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


# ------------------------------------------------------------------------------ files
@dataclass
class TextFile:
    """The header of one selected file: its tensors (name -> (dtype, shape)) and LTX config, no data.

    ``role`` names the input it came from ("ltx_checkpoint", "extra_file", "text_encoder");
    ``kind`` is "safetensors" or "gguf" (GGUF dtypes are ggml type names: "Q8_0", "BF16", ...).
    """

    path: str
    role: str
    kind: str
    tensors: dict[str, tuple[str, tuple[int, ...]]]
    config: dict | None  # the whole header config (None: the file has none)
    metadata: dict[str, str] = field(default_factory=dict)
    stat: tuple[int, int] = (0, 0)

    @property
    def name(self) -> str:
        return os.path.basename(self.path.rstrip("/")) or self.path

    @property
    def transformer(self) -> dict | None:
        section = (self.config or {}).get("transformer")
        return section if isinstance(section, dict) else None

    def identity(self) -> list:
        return [os.path.abspath(self.path), *self.stat]

    def holds(self) -> str:
        """A short description of what is in the file, for messages."""
        keys = self.tensors
        parts = []
        if any(PROJECTION in k for k in keys):
            parts.append("text projection")
        if any(n in k for k in keys for n in CONNECTOR_NAMES):
            parts.append("text connectors")
        if any(".transformer_blocks." in k or k.startswith("transformer_blocks.") for k in keys):
            parts.append("transformer")
        if any(k.startswith(("vae.", "decoder.", "encoder.")) for k in keys):
            parts.append("video VAE")
        if any(k.startswith(("audio_vae.", "vocoder.")) for k in keys):
            parts.append("audio VAE / vocoder")
        if any(re.search(r"(?:^|\.)layers\.\d+\.self_attn\.q_norm\.weight$", k) for k in keys):
            parts.append("Gemma 3")
        return ", ".join(parts) or f"{len(keys)} other tensors"


def _gguf_file(path: Path, role: str) -> TextFile:
    import gguf

    from .quant import gguf_dequant as gd

    try:
        reader = gguf.GGUFReader(os.fspath(path))
    except Exception as err:
        raise _err(path, f"expected a GGUF file, it could not be read ({type(err).__name__}: {err}).") from err
    tensors = {}
    for t in reader.tensors:
        shape = tuple(int(s) for s in reversed(t.shape.tolist()))  # GGUF lists the row length first
        tensors[t.name] = (gd.NAMES.get(int(t.tensor_type), t.tensor_type.name), shape)
    config = None
    for key in ("config", "openltx.config"):  # community files: a plain 'config' KV; ours: openltx.config
        f = reader.get_field(key)
        if f is not None:
            try:
                config = json.loads(str(f.contents()))
            except (ValueError, TypeError):
                raise _err(path, f"the GGUF key {key!r} is not a JSON model config; the file is corrupt.") from None
            break
    st = path.stat()
    return TextFile(os.fspath(path), role, "gguf", tensors, config if isinstance(config, dict) else None,
                    stat=(st.st_size, st.st_mtime_ns))  # fmt: skip


def read_text_file(path: str | os.PathLike, role: str = "ltx_checkpoint") -> list[TextFile]:
    """The ``TextFile`` views of a model file, or of every ``.safetensors`` shard of a folder."""
    p = Path(path)
    if p.is_dir():
        return [f for shard in sorted(p.glob("*.safetensors")) for f in read_text_file(shard, role)]
    if p.is_file():
        with p.open("rb") as fh:
            if fh.read(4) == b"GGUF":
                return [_gguf_file(p, role)]
    header = read_header(p)
    st = p.stat()
    return [TextFile(os.fspath(p), role, "safetensors", {k: (e.dtype, e.shape) for k, e in header.tensors.items()},
                     parse_config(header), dict(header.metadata), (st.st_size, st.st_mtime_ns))]  # fmt: skip


# ------------------------------------------------------------------------------ parts
@dataclass
class Part:
    """One part (projection / connectors) in one file: the file and the key prefix before it."""

    file: TextFile
    prefix: str  # before ``text_embedding_projection.`` / ``{video,audio}_embeddings_connector.``
    keys: list[str]  # every file key of the part (weights, biases, quantization companions)

    def tensor_keys(self) -> list[str]:
        """The keys that are model tensors (quantization companions left out)."""
        return [k for k in self.keys if not k.endswith(_AUX_SUFFIXES)]


def _projection_in(f: TextFile) -> Part | None:
    keys = [k for k in f.tensors if PROJECTION in k]
    if not keys:
        return None
    prefix = min((k[: k.index(PROJECTION)] for k in keys), key=len)
    return Part(f, prefix, sorted(k for k in keys if k.startswith(prefix + PROJECTION)))


def _connectors_in(f: TextFile) -> Part | None:
    keys = [k for k in f.tensors if any(n in k for n in CONNECTOR_NAMES)]
    if not keys:
        return None
    video = [k[: k.index("video_embeddings_connector.")] for k in keys if "video_embeddings_connector." in k]
    prefix = min(video or [k[: k.index("audio_embeddings_connector.")] for k in keys], key=len)
    return Part(f, prefix, sorted(k for k in keys if k.startswith(tuple(prefix + n for n in CONNECTOR_NAMES))))


ROLE_ORDER = ("extra_file", "ltx_checkpoint", "text_encoder")  # a part found in several files: the first wins


def _pick(parts: list[Part], what: str) -> Part | None:
    parts.sort(key=lambda p: ROLE_ORDER.index(p.file.role) if p.file.role in ROLE_ORDER else len(ROLE_ORDER))
    if len(parts) > 1:
        log.info("OpenLTX text encoder: the %s is in %s; using the one in %s", what,
                 ", ".join(p.file.name for p in parts), parts[0].file.name)  # fmt: skip
    return parts[0] if parts else None


@dataclass
class TextParts:
    """Where the projection and connectors come from, and the header that supplies the numerics."""

    files: list[TextFile]
    projection: Part
    connectors: Part
    header: dict | None  # config.transformer used for the numerics, or None (released constants)
    header_file: TextFile | None
    config: TextProjectorConfig | None = None

    @property
    def used_files(self) -> list[TextFile]:
        out = []
        for f in (self.projection.file, self.connectors.file, self.header_file):
            if f is not None and f not in out:
                out.append(f)
        return out

    def identity(self) -> dict:
        """What the prompt cache keys the projector by: the files used and the resolved config."""
        return {"files": [f.identity() for f in self.used_files], "config": repr(self.config)}

    def describe(self) -> str:
        c = self.config
        kind = "LTX-2.3 dual" if c.v2 else "LTX-2.0"
        where = f"projection from {self.projection.file.name}, connectors from {self.connectors.file.name}"
        return (f"text projection ({kind}, {c.text_hidden_states} x {c.text_hidden_size} inputs) + connectors "
                f"(video {c.video.num_layers} x {c.video.heads}x{c.video.head_dim}, audio {c.audio.num_layers} x "
                f"{c.audio.heads}x{c.audio.head_dim}); {where}")  # fmt: skip


def _version_hint(files: Sequence[TextFile], projection: Part | None, connectors: Part | None) -> str | None:
    """"2.0" / "2.3" from whatever the selected files reveal, or None."""
    if projection is not None:
        return "2.3" if any("video_aggregate_embed." in k for k in projection.keys) else "2.0"
    if connectors is not None:
        return "2.3" if any("to_gate_logits" in k for k in connectors.keys) else "2.0"
    for f in files:
        version = f.metadata.get("model_version") or str((f.config or {}).get("model_version", ""))
        if version.startswith("2.3"):
            return "2.3"
        if f.transformer is not None:
            return "2.3" if f.transformer.get("caption_proj_before_connector") else "2.0"
        if any(re.search(r"(?:^|\.)transformer_blocks\.\d+\.attn1\.to_gate_logits\.", k) for k in f.tensors):
            return "2.3"
        if any(re.search(r"(?:^|\.)transformer_blocks\.\d+\.", k) for k in f.tensors):
            return "2.0"
    return None


def _missing(files: Sequence[TextFile], what: Sequence[str], version: str | None) -> CheckpointError:
    versions = [version] if version else ["2.0", "2.3"]
    where = []
    for v in versions:
        offers = [(text, [w for w in what if w in carries]) for ver, text, carries in PUBLISHED if ver == v]
        shown = [text + ("" if len(what) == 1 or len(has) == len(what) else f" ({has[0]} only)") for text, has in offers if has]
        where.append(f"for LTX-{v}: " + "; ".join(shown))
    selected = "; ".join(f"{f.role} {f.path} ({f.holds()})" for f in files) or "none"
    return CheckpointError(
        f"the LTX-2 {' and the '.join(WHAT[w] for w in what)} {'is' if len(what) == 1 else 'are'} in none of the "
        f"selected files ({selected}). {'It is' if len(what) == 1 else 'They are'} published in: {' | '.join(where)}. "
        "Select such a file as ltx_checkpoint or extra_file of LTX-2 Text Encoder Loader (download it into that "
        "folder first if you do not have it)."
    )


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
    files: list[TextFile] = []
    for src in sources:
        if isinstance(src, TextFile):
            files.append(src)
        elif isinstance(src, CheckpointInfo):
            files.extend(read_text_file(src.path))
        else:
            path, role = src if isinstance(src, tuple) else (src, "ltx_checkpoint")
            if path is not None:
                files.extend(read_text_file(path, role))
    projection = _pick([p for f in files if (p := _projection_in(f))], "text projection")
    connectors = _pick([p for f in files if (p := _connectors_in(f))], "text connectors")
    version = _version_hint(files, projection, connectors)
    absent = [w for w, part in (("projection", projection), ("connectors", connectors)) if part is None]
    if absent:
        raise _missing(files, absent, version)
    header_file = next(
        (f for f in (connectors.file, projection.file) if f.transformer is not None),
        next((f for f in files if f.transformer is not None and f.role != "text_encoder"), None),
    )
    parts = TextParts(files, projection, connectors, header_file.transformer if header_file else None, header_file)
    parts.config = _resolve_config(parts, text_hidden_size, text_hidden_states)
    return parts


# ------------------------------------------------------------------------------ config from shapes
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

    ``notes`` (optional) receives where each value came from: "shape: ...", "header: ...",
    "released: ...".
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
        notes[f"{stream}.heads"] = f"shape: to_gate_logits {list(gate)}"
    elif heads is not None or head_dim is not None:
        if heads is None or head_dim is None:
            heads = heads if heads is not None else width // int(head_dim)
            head_dim = head_dim if head_dim is not None else width // int(heads)
        if int(heads) * int(head_dim) != width:
            raise header.contradiction(f"{hkey} x {dkey}", f"{heads} x {head_dim}", f"{where} is {width} wide "
                                       f"(learnable_registers {list(registers)})")  # fmt: skip
        notes[f"{stream}.heads"] = f"header: {hkey} / {dkey} of {parts.header_file.name}"
    else:
        if width % RELEASED_HEAD_DIM:
            said = (f"{parts.header_file.name}'s header config has neither" if parts.header is not None else
                    "no selected file has a header config with")  # fmt: skip
            raise _err(part.file.path, f"{where} is {width} wide and has no per-head gate, so its head count is not in "
                       f"the tensors, and {said} connector_num_attention_heads / connector_attention_head_dim; the "
                       f"released models use {RELEASED_HEAD_DIM}-wide heads, which do not divide {width}. Select the "
                       "LTX checkpoint whose header describes this connector.")  # fmt: skip
        heads, head_dim = width // RELEASED_HEAD_DIM, RELEASED_HEAD_DIM
        notes[f"{stream}.heads"] = f"released: {RELEASED_HEAD_DIM}-wide heads (no gate, no header)"
    notes[f"{stream}.layers"] = f"shape: transformer_1d_blocks.0..{layers - 1}"
    notes[f"{stream}.width"] = f"shape: learnable_registers {list(registers)}"
    notes[f"{stream}.gated"] = "shape: " + ("to_gate_logits present" if gated else "no to_gate_logits")
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
            notes[k] = "released" if k in defaulted else f"header: {parts.header_file.name}"
    values = {k: header.get(k, v) for k, v in RELEASED_NUMERICS.items()}
    if defaulted:
        if parts.header is None:
            log.info("OpenLTX text encoder: no selected LTX file has a header config; the text connectors use the "
                     "released LTX-2 / 2.3 numerics (max position [4096], split RoPE, float64 frequency grid, theta "
                     "%g, eps %g)", CONNECTOR_ROPE_THETA, CONNECTOR_NORM_EPS)  # fmt: skip
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


def _resolve_config(parts: TextParts, text_hidden_size, text_hidden_states, notes: dict | None = None
                    ) -> TextProjectorConfig:
    header = _Header(parts)
    proj = parts.projection
    pname = proj.file.name
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
        notes["projection"] = f"shape: {'video/audio_aggregate_embed (2.3 dual)' if v2 else 'aggregate_embed (2.0)'}"
        notes["text_hidden_size"] = ("the Gemma model" if text_hidden_size is not None else
                                     "header: caption_channels" if caption is not None else "released: Gemma 3 12B")  # fmt: skip
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
    "header: ..." | "released: ..."}}``; a part the file lacks is None (not an error here).
    """
    files = read_text_file(path)
    projection = next((p for f in files if (p := _projection_in(f))), None)
    connectors = next((p for f in files if (p := _connectors_in(f))), None)
    header_file = next((f for f in files if f.transformer is not None), None)
    parts = TextParts(files, projection, connectors, header_file.transformer if header_file else None, header_file)
    notes: dict = {}
    out: dict = {"projection": None, "connectors": None, "sources": notes}
    if projection is not None and connectors is not None:
        cfg = _resolve_config(parts, None, None, notes)
        out["projection"] = {"kind": "2.3 dual" if cfg.v2 else "2.0 single", "hidden_states": cfg.text_hidden_states,
                             "hidden_size": cfg.text_hidden_size, "outputs": [cfg.video_features, cfg.audio_features]}  # fmt: skip
        conns = {"video": cfg.video, "audio": cfg.audio}
    else:
        if projection is not None:
            v2 = any("video_aggregate_embed." in k for k in projection.keys)
            out["projection"] = {"kind": "2.3 dual" if v2 else "2.0 single", "keys": len(projection.tensor_keys())}
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


# ------------------------------------------------------------------------------ loading
def to_module_key(key: str, prefix: str = "") -> str:
    """File key -> ``TextProjector`` state-dict key (``prefix``: the part's prefix in that file)."""
    body = key[len(prefix) :] if prefix and key.startswith(prefix) else key
    if body.startswith(PROJECTION):
        return "feature_extractor." + body[len(PROJECTION) :]
    for name, module in CONNECTOR_NAMES.items():
        at = body.find(name)
        if at >= 0:
            return module + body[at + len(name) :]
    return key  # not ours: reported as unexpected by the layout check


def to_file_key(key: str, connector_prefix: str = DEFAULT_CONNECTOR_PREFIX, projection_prefix: str = "") -> str:
    """``TextProjector`` state-dict key -> file key."""
    if key.startswith("feature_extractor."):
        return projection_prefix + PROJECTION + key[len("feature_extractor.") :]
    for name, module in CONNECTOR_NAMES.items():
        if key.startswith(module):
            return connector_prefix + name + key[len(module) :]
    raise KeyError(key)


def _parts_of(path_or_parts, text_hidden_size=None) -> TextParts:
    if isinstance(path_or_parts, TextParts):
        return path_or_parts
    sources = path_or_parts if isinstance(path_or_parts, (list, tuple)) else [path_or_parts]
    return find_text_parts(sources, text_hidden_size=text_hidden_size)


def text_projector_config(path_or_parts, text_hidden_size: int | None = None) -> TextProjectorConfig:
    """The ``TextProjectorConfig`` of a file / files / ``TextParts`` (headers only, no data read)."""
    return _parts_of(path_or_parts, text_hidden_size).config


def _quant_layers(part: Part) -> dict[str, dict]:
    """Weight key -> {"format", scale keys} for quantized tensors of a part (safetensors)."""
    out = {}
    f = part.file
    markers = [k for k in part.keys if k.endswith(".comfy_quant")]
    formats = {}
    if markers:
        from .safetensors_file import load_tensors

        for k, t in load_tensors(f.path, markers).items():
            formats[k[: -len(".comfy_quant")]] = parse_layer_config(t, f"{f.path} [{k}]")["format"]
    quant_meta = f.metadata.get("_quantization_metadata")
    if quant_meta:
        try:
            for name, conf in (json.loads(quant_meta).get("layers") or {}).items():
                formats.setdefault(name, parse_layer_config(conf, f"{f.path} [{name}]")["format"])
        except (ValueError, AttributeError):
            raise _err(f.path, "the header's _quantization_metadata is not a JSON object with 'layers'.") from None
    weights = set(part.tensor_keys())
    stray = [k for k in part.keys if k.endswith(_AUX_SUFFIXES) and _layer_of(k) + ".weight" not in weights]
    if stray:
        raise _err(f.path, f"found quantization companions without a weight: {_listing(stray)}. The file is corrupt: "
                   "download it again.")  # fmt: skip
    for key in sorted(weights):
        if not key.endswith(".weight"):
            continue
        layer = key[: -len(".weight")]
        dtype = f.tensors[key][0]
        fmt = formats.get(layer)
        has = {s: layer + s in f.tensors for s in _AUX_SUFFIXES}
        if fmt is None and dtype == "U8" and has[".weight_scale_2"]:
            fmt = nvfp4.FORMAT
        if fmt is None and dtype.startswith("F8"):
            fmt = "float8_e4m3fn" if dtype == "F8_E4M3" else "float8_e5m2"
        if fmt is None:
            scales = [s for s, h in has.items() if h and s not in _IGNORED_AUX]
            if dtype in ("U8", "I8") or scales:
                raise _err(f.path, f"the text weight {key!r} is {dtype} with {scales or 'no scales'} and no quantization "
                           "format OpenLTX knows. The file is corrupt or of an unsupported kind.")  # fmt: skip
            continue
        if fmt != nvfp4.FORMAT and fmt not in COMFY_FP8_FORMATS:
            raise _err(f.path, f"the text weight {key!r} is stored as {fmt!r}, a format OpenLTX does not read for the "
                       f"text path (it reads {', '.join((*COMFY_FP8_FORMATS, nvfp4.FORMAT))}).")  # fmt: skip
        expected_dtype = "U8" if fmt == nvfp4.FORMAT else ("F8_E4M3", "F8_E5M2")
        if dtype not in expected_dtype:
            raise _err(f.path, f"the text weight {key!r} is marked {fmt!r} but stored as {dtype}. The file is corrupt.")
        if fmt == nvfp4.FORMAT and has[".weight_scale"] and has[".weight_scale_2"]:
            out[key] = {"format": fmt, "block": layer + ".weight_scale", "scale": layer + ".weight_scale_2"}
        elif fmt in COMFY_FP8_FORMATS:
            scale = layer + ".weight_scale" if has[".weight_scale"] else layer + ".scale_weight" if has[".scale_weight"] else None
            out[key] = {"format": "fp8", "scale": scale}
        else:
            raise _err(f.path, f"the text weight {key!r} is NVFP4, which needs '.weight_scale' block scales and a "
                       f"'.weight_scale_2'; found {[s for s, h in has.items() if h]}. The file is corrupt.")  # fmt: skip
    return out


def _layer_of(key: str) -> str:
    suffix = next(s for s in _AUX_SUFFIXES if key.endswith(s))
    return key[: -len(suffix)]


def _read_part(part: Part, shapes: Mapping[str, tuple], dtype: torch.dtype, device) -> dict[str, torch.Tensor]:
    """The part's model tensors, dense (dequantized) in ``dtype``, under ``TextProjector`` keys.

    ``shapes``: file key -> the model's shape (the logical shape of an NVFP4 weight).
    """
    f = part.file
    keys = part.tensor_keys()
    out: dict[str, torch.Tensor] = {}
    if f.kind == "gguf":
        import gguf

        from .quant import gguf_dequant as gd

        wanted = set(keys)
        try:
            reader = gguf.GGUFReader(f.path)
            for t in reader.tensors:
                if t.name not in wanted:
                    continue
                shape = f.tensors[t.name][1]
                raw = torch.from_numpy(t.data.copy().view("uint8"))
                value = gd.dequantize(raw.reshape(*shape[:-1], -1) if len(shape) > 1 else raw, int(t.tensor_type), shape)
                out[to_module_key(t.name, part.prefix)] = value.to(device=device, dtype=dtype)
        except Exception as err:
            raise _err(f.path, f"reading the text weights failed ({type(err).__name__}: {err}).") from err
        return out
    from safetensors import safe_open

    quant = _quant_layers(part)
    try:
        with safe_open(f.path, framework="pt", device="cpu") as fh:
            for key in keys:
                t = fh.get_tensor(key)
                spec = quant.get(key)
                if spec is None:
                    value = t
                elif spec["format"] == "fp8":
                    scale = fh.get_tensor(spec["scale"]).float() if spec["scale"] else torch.ones(())
                    value = t.float() * (scale.reshape(-1, 1) if scale.numel() > 1 else scale)
                else:
                    value = nvfp4.dequantize(t, fh.get_tensor(spec["block"]), fh.get_tensor(spec["scale"]), shapes[key])
                out[to_module_key(key, part.prefix)] = value.to(device=device, dtype=dtype)
    except CheckpointError:
        raise
    except Exception as err:
        raise _err(f.path, f"reading the text weights failed ({type(err).__name__}: {err}). The file may be corrupt: "
                   "download it again.") from err  # fmt: skip
    return out


def _dense_dtype(part: Part) -> torch.dtype:
    count: Counter = Counter()
    for key in part.tensor_keys():
        dtype, shape = part.file.tensors[key]
        count[dtype] += math.prod(shape)
    for name, _ in count.most_common():
        if name in ("F32", "F16", "BF16", "F64"):
            return TORCH_DTYPES[name]
    return torch.bfloat16


def load_text_projector(
    path_or_parts,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    operations=None,
    *,
    text_hidden_size: int | None = None,
) -> TextProjector:
    """``TextProjector`` with the projection and connector weights, loaded strictly (eval mode).

    Args:
        path_or_parts: a ``TextParts`` from ``find_text_parts``, or an LTX-2 file (or a list of
            files / ``(path, role)`` pairs) to find the parts in.
        dtype: weight / compute dtype; ``None`` keeps the files' (bfloat16 for quantized ones).
        operations: the layer namespace (``ltx2.ops`` convention); ``None`` = plain torch.
        text_hidden_size: the text encoder's width; ``None`` = the header's ``caption_channels``.
    Raises:
        CheckpointError: a part missing (naming the published files that carry it), a header
            value contradicting a shape, missing / unexpected keys or shape mismatches (listed).
    """
    parts = _parts_of(path_or_parts, text_hidden_size)
    if parts.config is None:
        parts.config = _resolve_config(parts, text_hidden_size, None)
    cfg = parts.config
    model_dtype = dtype or _dense_dtype(parts.projection)
    model = TextProjector(cfg, operations=operations, dtype=model_dtype, device=torch.device("meta"))
    module_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    sd: dict[str, torch.Tensor] = {}
    for part, owned, what in ((parts.projection, ("feature_extractor.",), "text projection"),
                              (parts.connectors, ("video_connector.", "audio_connector."), "text connectors")):  # fmt: skip
        expected = {to_file_key(k, part.prefix, part.prefix): s for k, s in module_shapes.items() if k.startswith(owned)}
        _check_part(part, what, cfg, expected)
        sd.update(_read_part(part, expected, model_dtype, device))
    where = " + ".join(f.path for f in parts.used_files[:2])
    assign_weights(model, sd, where, "text projection")
    model.dtype = model_dtype
    return model.eval()


def _check_part(part: Part, what: str, cfg: TextProjectorConfig, expected: Mapping[str, tuple]) -> None:
    """Strict: the part's tensors are exactly ``expected`` (file keys -> shapes); all problems listed."""
    found = part.tensor_keys()
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k!r}: expected {list(expected[k])}, the file has {list(part.file.tensors[k][1])}"
             for k in sorted(set(found) & set(expected)) if not _fits(part, k, expected[k])]  # fmt: skip
    if not (missing or unexpected or wrong):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_listing(unexpected)}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatch(es): {'; '.join(wrong[:_SHOW])}")
    kind = "LTX-2.3 dual" if cfg.v2 else "LTX-2.0 single"
    shape = (f"{kind} projection of {cfg.text_hidden_states} x {cfg.text_hidden_size} inputs" if what == "text projection"
             else f"video {cfg.video.num_layers} x {cfg.video.heads}x{cfg.video.head_dim}, audio "
             f"{cfg.audio.num_layers} x {cfg.audio.heads}x{cfg.audio.head_dim}")  # fmt: skip
    raise _err(part.file.path, f"the {what} ({shape}, read off its tensors) is not complete or consistent: "
               f"{'; '.join(problems)}. The file is incomplete or edited: download it again.")  # fmt: skip


def _fits(part: Part, key: str, shape: tuple) -> bool:
    """An NVFP4 weight stored padded fits a smaller logical shape."""
    dtype, stored = part.file.tensors[key]
    if dtype == "U8" and key.endswith(".weight") and key[: -len(".weight")] + ".weight_scale_2" in part.file.tensors:
        return len(shape) == 2 and nvfp4.storage_shapes(*shape)[0] == tuple(stored)
    return tuple(stored) == tuple(shape)


def _listing(keys) -> str:
    keys = sorted(keys)
    return ", ".join(repr(k) for k in keys[:_SHOW]) + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def text_conditioning(
    video_context: torch.Tensor, audio_context: torch.Tensor, frame_rate: float | None = None
) -> list[list[Any]]:
    """ComfyUI CONDITIONING for the LTX-2 MODEL: ``[[video_context, {"audio_context": ..., "frame_rate": ...}]]``.

    Args:
        video_context: ``(B, L, C_v)``; audio_context: ``(B, L, C_a)`` (``TextProjector`` outputs).
        frame_rate: frames per second of the video to generate; ``None`` leaves the key out
            (the MODEL then uses 24).
    """
    if video_context.ndim != 3 or audio_context.ndim != 3 or video_context.shape[:2] != audio_context.shape[:2]:
        raise ValueError(
            "video_context and audio_context must be (batch, tokens, width) with the same batch and tokens, got "
            f"{tuple(video_context.shape)} and {tuple(audio_context.shape)}."
        )
    extra: dict[str, Any] = {"audio_context": audio_context}
    if frame_rate is not None:
        if not frame_rate > 0:
            raise ValueError(f"frame_rate must be a positive number of frames per second, got {frame_rate!r}.")
        extra["frame_rate"] = float(frame_rate)
    return [[video_context, extra]]
