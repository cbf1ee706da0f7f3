"""Where the LTX text parts are among the files a user selected (headers only, no tensor data).

Two parts turn Gemma's hidden states into the transformer's text context:

* the text projection: ``text_embedding_projection.aggregate_embed.weight`` (LTX-2.0: one
  matrix, no bias, "V1") or ``text_embedding_projection.{video,audio}_aggregate_embed.{weight,bias}``
  (LTX-2.3: two biased matrices, "V2");
* the two embeddings connectors: ``<prefix>{video,audio}_embeddings_connector.*``
  (``<prefix>`` is ``model.diffusion_model.`` in every published file; bare or
  ``diffusion_model.`` are accepted).

Where they live depends on what the user downloaded:

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

``locate_text_parts`` reads the headers of every selected file (safetensors, a folder of
shards, or GGUF: its tensor names and a ``config`` / ``openltx.config`` KV), takes each part from
the first file that has it (extra file, then the LTX checkpoint, then the Gemma file) and, when
a part is in none of them, says what each selected file holds and which published files carry
the missing part.  ``text_config.py`` turns the parts into a config; ``text_loading.py`` loads them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from .checkpoint import CheckpointInfo
from .file_header import read_file_header
from .published_files import where_published
from .safetensors_file import CheckpointError

try:  # see model_loaders/__init__.py
    from ..ltx2.text_connector import TextProjectorConfig
except ImportError:
    from ltx2.text_connector import TextProjectorConfig

log = logging.getLogger(__name__)

PROJECTION = "text_embedding_projection."
CONNECTOR_NAMES = {"video_embeddings_connector.": "video_connector.", "audio_embeddings_connector.": "audio_connector."}
DEFAULT_CONNECTOR_PREFIX = "model.diffusion_model."
# Per-layer companions of a quantized weight (``<layer><suffix>``); order: longest first.
AUX_SUFFIXES = (".weight_scale_2", ".weight_scale", ".scale_weight", ".input_scale", ".scale_input", ".comfy_quant")

PARTS = {"projection": "text_projection", "connectors": "text_connectors"}  # names in published_files
WHAT = {
    "projection": "text projection ('text_embedding_projection.*': Gemma's 49 hidden states -> the connectors)",
    "connectors": "text connectors ('model.diffusion_model.video_embeddings_connector.*' and "
    "'audio_embeddings_connector.*')",
}


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


def read_text_file(path: str | os.PathLike, role: str = "ltx_checkpoint") -> list[TextFile]:
    """The ``TextFile`` views of a model file (safetensors or GGUF), or of every ``.safetensors`` shard of a folder."""
    p = Path(path)
    if p.is_dir():
        return [f for shard in sorted(p.glob("*.safetensors")) for f in read_text_file(shard, role)]
    h = read_file_header(p)
    return [TextFile(h.path, role, h.format, h.tensors, h.config, h.metadata, (h.file_size, h.mtime_ns))]


# ------------------------------------------------------------------------------ parts
@dataclass
class Part:
    """One part (projection / connectors) in one file: the file and the key prefix before it."""

    file: TextFile
    prefix: str  # before ``text_embedding_projection.`` / ``{video,audio}_embeddings_connector.``
    keys: list[str]  # every file key of the part (weights, biases, quantization companions)

    def tensor_keys(self) -> list[str]:
        """The keys that are model tensors (quantization companions left out)."""
        return [k for k in self.keys if not k.endswith(AUX_SUFFIXES)]


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
    where = where_published(tuple(PARTS[w] for w in what), version)
    selected = "; ".join(f"{f.role} {f.path} ({f.holds()})" for f in files) or "none"
    return CheckpointError(
        f"the LTX-2 {' and the '.join(WHAT[w] for w in what)} {'is' if len(what) == 1 else 'are'} in none of the "
        f"selected files ({selected}). {'It is' if len(what) == 1 else 'They are'} published in: {where}. "
        "Select such a file as ltx_checkpoint or extra_file of LTX-2 Text Encoder Loader (download it into that "
        "folder first if you do not have it)."
    )


def locate_text_parts(sources: Iterable) -> TextParts:
    """Find the text projection and connectors among ``sources`` (config not resolved yet).

    ``sources``: paths (role "ltx_checkpoint"), ``(path, role)`` pairs, ``TextFile`` views or
    ``CheckpointInfo``; roles: "extra_file", "ltx_checkpoint", "text_encoder" (the Gemma file /
    folder).  A part in none of them is a ``CheckpointError`` naming the published files that
    carry it.
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
    return TextParts(files, projection, connectors, header_file.transformer if header_file else None, header_file)
