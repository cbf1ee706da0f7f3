"""LTX-2 checkpoint files: what a file holds, and the strict transformer loader.

``read_checkpoint`` looks at the header only (no tensor data), of a ``.safetensors`` or a
``.gguf`` file alike: it routes every key to a component, tells LTX-2 from other model
families, reads the header config when there is one and decides the version from the tensors.
``transformer_config`` then sizes the transformer from the tensor shapes and takes the numeric
settings from the header (``transformer_config.py``); ``build_transformer`` builds
``ltx2.transformer.LTXAVTransformer`` on the meta device, checks the file's keys and shapes
against it *before* reading any data, and loads the weights strictly with ``assign=True``.

Layouts understood (see ``layouts.py`` for the keys of each component):

* the official bundles (``ltx-2-19b-{dev,distilled}[-fp8].safetensors``, the 2.3 files):
  transformer under ``model.diffusion_model.``, text connectors under
  ``model.diffusion_model.*_embeddings_connector.``, plus ``text_embedding_projection.*``,
  ``vae.*``, ``audio_vae.*``, ``vocoder.*``; header ``config`` (+ ``model_version`` for 2.3,
  ``_quantization_metadata`` for fp8);
* a transformer alone (ComfyUI's ``diffusion_models`` folder), with or without the text
  connectors, keys with the ``model.diffusion_model.`` or ``diffusion_model.`` prefix or bare
  (``transformer_blocks.0...``), with the header config or without any metadata;
* GGUF conversions (``quant/gguf_format.py``): bare keys, config in a ``config`` KV or none;
* files holding only other components (VAE, audio VAE + vocoder, text projection).

Nothing here needs a header config: shapes come from the tensors, the numeric settings from
the header when it has them and from the released values otherwise.  Public helpers the other
loaders share: ``read_checkpoint``, ``tensor_version`` (version from tensor names),
``released_header_values`` (the published numeric settings), ``read_tensors`` (tensor data of
either file format).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import torch

from .layouts import COMPONENTS
from .quant import gguf_format
from .config_sources import listing
from .file_header import float_dtype, read_file_header
from .published_files import where_published
from .safetensors_file import CheckpointError, load_tensors
from .transformer_config import resolve_transformer_config

try:  # see model_loaders/__init__.py
    from ..ltx2.config import TransformerConfig, released_numerics
    from ..ltx2.transformer import LTXAVTransformer
except ImportError:
    from ltx2.config import TransformerConfig, released_numerics
    from ltx2.transformer import LTXAVTransformer

FAMILY = "ltx2"
SUPPORTED_VERSIONS = ("2.0", "2.3")
COMPONENT_NAMES = COMPONENTS  # in file order; see layouts.py
TRANSFORMER_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "")

_BUNDLE_PREFIXES = (
    ("text_embedding_projection.", "text_projection"),
    ("vae.", "video_vae"),
    ("audio_vae.", "audio_vae"),
    ("vocoder.", "vocoder"),
)
_CONNECTORS = ("video_embeddings_connector.", "audio_embeddings_connector.", "embeddings_connector.")
_AUDIO_MARKERS = ("audio_patchify_proj.", "audio_adaln_single.")  # only LTX-2 has an audio stream
_V23_FLAGS = ("cross_attention_adaln", "apply_gated_attention")
_SD_MARKERS = ("model.diffusion_model.input_blocks.", "conditioner.", "first_stage_model.", "cond_stage_model.")
_SHOW = 10  # keys listed per kind in an error message


@dataclass
class CheckpointInfo:
    """What ``read_checkpoint`` learnt from a header; no tensor data was read.

    ``components`` maps a component name (see ``COMPONENT_NAMES``; only those present appear)
    to its file keys; ``dtypes`` / ``shapes`` describe every tensor of the file (GGUF files:
    type names such as ``"Q8_0"``, shapes in torch order).  ``config`` is the header config,
    ``{}`` when the file has none; ``format`` is ``"safetensors"`` or ``"gguf"``.
    """

    path: str
    family: str
    version: str
    metadata: dict[str, str]
    config: dict
    components: dict[str, list[str]]
    transformer_prefix: str
    dtypes: dict[str, str]
    shapes: dict[str, tuple[int, ...]]
    file_size: int = 0
    unrouted: list[str] = field(default_factory=list)  # keys that belong to no component
    format: str = "safetensors"
    version_evidence: list[str] = field(default_factory=list)  # why the tensors say ``version``
    config_source: str | None = None  # where the config was found ("__metadata__['config']", a GGUF KV, ...)
    _transformer_config: TransformerConfig | None = field(default=None, repr=False, compare=False)

    @property
    def model_version(self) -> str | None:
        return self.metadata.get("model_version")

    @property
    def has_config(self) -> bool:
        return bool(self.config)

    @property
    def transformer_header(self) -> dict | None:
        """The header's ``config.transformer`` section, or ``None`` (no config, or no such section)."""
        section = self.config.get("transformer")
        return section if isinstance(section, dict) else None

    @property
    def kind(self) -> str:
        """What the file is: ``bundle``, ``transformer-only``, ``transformer + text connectors`` or ``components``.

        A bundle holds the transformer and at least one VAE / vocoder / text projection;
        ``components`` is a file without a transformer (VAE, vocoder, text projection, ...).
        """
        names = set(self.components)
        if "transformer" not in names:
            return "components"
        if names & {"text_projection", "video_vae", "audio_vae", "vocoder"}:
            return "bundle"
        return "transformer + text connectors" if "text_connectors" in names else "transformer-only"

    def num_params(self, component: str) -> int:
        """Elements in ``component``'s tensors (0 when the file lacks it)."""
        return sum(math.prod(self.shapes[k]) for k in self.components.get(component, ()))


def _err(path: str, message: str) -> CheckpointError:
    return CheckpointError(f"{path}: {message}")


def _first(keys, n: int = _SHOW) -> str:
    return listing(keys, n)


# ------------------------------------------------------------------------------ routing
def _transformer_prefix(keys) -> str | None:
    """The prefix under which the transformer blocks live, or None when there are none."""
    for prefix in TRANSFORMER_PREFIXES:
        marker = prefix + "transformer_blocks."
        if any(k.startswith(marker) for k in keys):
            return prefix
    return None


def _route(key: str, tprefix: str | None) -> str | None:
    for prefix, name in _BUNDLE_PREFIXES:
        if key.startswith(prefix):
            return name
    for prefix in TRANSFORMER_PREFIXES:
        if key.startswith(prefix) and key[len(prefix) :].startswith(_CONNECTORS):
            return "text_connectors"
    if tprefix is not None and key.startswith(tprefix):
        return "transformer"
    return None


def route_keys(keys, tprefix: str | None) -> tuple[dict[str, list[str]], list[str]]:
    """Component name -> sorted keys (only components present), and the unrouted keys."""
    components: dict[str, list[str]] = {}
    unrouted: list[str] = []
    for key in sorted(keys):
        name = _route(key, tprefix)
        (components.setdefault(name, []) if name else unrouted).append(key)
    return {n: components[n] for n in COMPONENT_NAMES if n in components}, unrouted


# ------------------------------------------------------------------------------ detection
_EXPECTED = (
    "expected an LTX-2 checkpoint (transformer keys 'model.diffusion_model.transformer_blocks.*' with an audio "
    "stream: 'audio_patchify_proj', 'audio_adaln_single')"
)
_USE_OFFICIAL = "use the official file, unmodified."


def _check_family(path: str, keys, tprefix: str | None, config: dict, components: dict, arch: str | None = None) -> None:
    """Raise a CheckpointError naming the family when the file is not an LTX-2 checkpoint."""
    section = config.get("transformer")
    t = section if isinstance(section, dict) else {}
    if arch is not None and arch not in gguf_format.ACCEPTED_ARCHS:
        body = {k[len(tprefix) :] for k in keys if tprefix is not None and k.startswith(tprefix)}
        if not any(b.startswith(_AUDIO_MARKERS) for b in body):
            raise _err(
                path,
                f"expected a GGUF of the LTX-2 transformer (general.architecture one of "
                f"{', '.join(gguf_format.ACCEPTED_ARCHS)}, with LTX-2's audio stream), found architecture {arch!r}. "
                "Load this file with the loader for that model family.",
            )
    if tprefix is None:
        sd_keys = [k for k in keys if k.startswith(_SD_MARKERS)]
        if sd_keys:
            raise _err(
                path,
                f"{_EXPECTED}, found a Stable Diffusion / SDXL checkpoint (UNet keys like {_first(sd_keys, 3)}). "
                "Load it with ComfyUI's core 'Load Checkpoint' node; OpenLTX loaders only take LTX-2 files.",
            )
        if components:  # VAE / vocoder / text-projection weights without a transformer
            return
        raise _err(
            path,
            f"{_EXPECTED}, found no LTX-2 weights at all (first keys: {_first(keys, 5)}). This is another model "
            "family: load it with the nodes made for it.",
        )
    body = {k[len(tprefix) :] for k in keys if k.startswith(tprefix)}
    if any(b.startswith(_AUDIO_MARKERS) for b in body):
        return
    if "proj_in.weight" in body and "patchify_proj.weight" not in body:
        raise _err(
            path,
            f"{_EXPECTED}, found a diffusers-format transformer (keys 'proj_in', 'time_embed', ...). OpenLTX reads "
            "the original Lightricks layout: use the official LTX-2 .safetensors file.",
        )
    if any(b.startswith("adaln_single.") for b in body):
        audio_config = [k for k in t if k.startswith("audio_")]
        if audio_config:
            raise _err(
                path,
                f"config/weights mismatch: config.transformer describes an audio stream ({_first(audio_config, 3)}) "
                "but the file has no audio transformer weights ('audio_patchify_proj', 'audio_adaln_single'). The "
                f"file is incomplete or filtered (video-only LTX-2 variants are not supported): {_USE_OFFICIAL}",
            )
        raise _err(
            path,
            f"{_EXPECTED}, found an LTX-Video 0.9 (LTXV) checkpoint: it has 'transformer_blocks' and 'adaln_single' "
            "but no audio stream (no audio_* weights, no audio_* config keys). ComfyUI's core LTXV support loads "
            "it: use the core 'Load Checkpoint' node and the LTXV nodes instead of OpenLTX.",
        )
    raise _err(
        path,
        f"{_EXPECTED}, found a transformer of another family (keys like {_first(body, 5)}). Load it with the nodes "
        "made for that model.",
    )


_SUPPORTED_TEXT = "2.0 (LTX-2 19B) and 2.3 (LTX-2.3 22B)"


def _parse_version(path: str, model_version: str) -> str:
    """``"2.3.0"`` -> ``"2.3"``; an unknown or unsupported version is a CheckpointError."""
    m = re.match(r"\s*v?(\d+)\.(\d+)", model_version)
    if not m:
        raise _err(
            path,
            f"expected header model_version like '2.3.0', found {model_version!r}. Supported versions: "
            f"{_SUPPORTED_TEXT}. Use the official file.",
        )
    version = f"{int(m.group(1))}.{int(m.group(2))}"
    if version not in SUPPORTED_VERSIONS:
        raise _err(
            path,
            f"header model_version is {model_version!r} (LTX {version}), which this OpenLTX release does not "
            f"support; supported versions: {_SUPPORTED_TEXT}. Update OpenLTX, or use a 2.0 / 2.3 checkpoint.",
        )
    return version


def tensor_version(keys: Iterable[str], shapes: Mapping[str, tuple] | None = None) -> tuple[str | None, list[str]]:
    """The LTX version the tensors show (``"2.0"`` / ``"2.3"`` / ``"2.5"``, or ``None``), and the evidence.

    Works on full or bare keys of any component: LTX-2.3 has gated attention
    (``to_gate_logits``), prompt AdaLN (``prompt_adaln_single``), 9-row block modulation tables,
    the dual text projection (``video_aggregate_embed``) and a BWE vocoder; LTX-2.0 has the
    PixArt caption projection in the transformer, the single ``aggregate_embed`` and a plain
    HiFi-GAN vocoder; LTX-2.5 adds ``keyframes_abs_pos_embedding``.  ``None`` when nothing
    tells (e.g. a video-VAE-only file).
    """
    keys = list(keys)
    shapes = shapes or {}

    def first(pred) -> str | None:
        return next((k for k in keys if pred(k)), None)

    checks_25 = (("keyframes_abs_pos_embedding", lambda k: "keyframes_abs_pos_embedding" in k),)
    checks_23 = (
        ("gated attention = apply_gated_attention", lambda k: "transformer_blocks." in k and ".to_gate_logits." in k),
        ("prompt AdaLN = cross_attention_adaln", lambda k: "prompt_adaln_single." in k),
        ("9-row modulation table = cross_attention_adaln", lambda k: re.search(r"transformer_blocks\.\d+\.scale_shift_table$", k) is not None
         and tuple(shapes.get(k, ()))[:1] == (9,)),
        ("dual text projection", lambda k: k.startswith("text_embedding_projection.video_aggregate_embed.")),
        ("gated text connectors", lambda k: "embeddings_connector." in k and ".to_gate_logits." in k),
        ("BWE vocoder", lambda k: k.startswith(("vocoder.bwe_generator.", "vocoder.vocoder."))),
    )  # fmt: skip
    checks_20 = (
        ("caption projection in the transformer", lambda k: k.endswith("caption_projection.linear_1.weight")),
        ("single text projection", lambda k: k.startswith("text_embedding_projection.aggregate_embed.")),
        ("HiFi-GAN vocoder", lambda k: k.startswith("vocoder.conv_pre.")),
    )
    for version, checks in (("2.5", checks_25), ("2.3", checks_23), ("2.0", checks_20)):
        evidence = []
        for what, pred in checks:
            key = first(pred)
            if key is not None:
                evidence.append(f"{what} ({key!r})")
        if evidence:
            return version, evidence
    if first(lambda k: "transformer_blocks." in k and "audio_" in k):
        return "2.0", ["transformer without LTX-2.3 features"]
    return None, []


def _detect_version(path: str, metadata: Mapping[str, str], config: dict, keys, shapes) -> tuple[str, list[str]]:
    """The tensors' version (checked against the header's ``model_version`` and 2.3 flags), else the header's."""
    section = config.get("transformer")
    t = section if isinstance(section, dict) else {}
    flags = [k for k in _V23_FLAGS if t.get(k)]
    found, evidence = tensor_version(keys, shapes)
    if found == "2.5":
        raise _err(
            path,
            f"this is an LTX-2.5 file (its tensors have {', '.join(evidence)}), which this OpenLTX release does not "
            f"support; supported versions: {_SUPPORTED_TEXT}. Update OpenLTX, or use a 2.0 / 2.3 checkpoint.",
        )
    stated = metadata.get("model_version")
    version = _parse_version(path, stated) if stated is not None else None
    if found is not None:
        if version is not None and version != found:
            raise _err(
                path,
                f"config/weights mismatch: the header's model_version {stated!r} says LTX-{version}, but the tensors "
                f"are LTX-{found}: {'; '.join(evidence)}. The header was edited or mixed up: {_USE_OFFICIAL}",
            )
        return found, evidence
    if version is None:
        return ("2.3" if flags else "2.0"), (["header config.transformer 2.3 switches"] if flags else [])
    if t and version == "2.0" and flags:
        problem = f"says LTX-2.0 but config.transformer enables the 2.3 features {flags}"
    elif t and version == "2.3" and len(flags) < len(_V23_FLAGS):
        missing = [k for k in _V23_FLAGS if k not in flags]
        problem = f"says LTX-2.3 but config.transformer lacks the 2.3 features {missing}"
    else:
        return version, [f"header model_version {stated!r}"]
    raise _err(
        path,
        f"config/weights mismatch: model_version {stated!r} {problem}. The header was edited or mixed up: "
        f"{_USE_OFFICIAL}",
    )


def read_checkpoint(path: str | os.PathLike) -> CheckpointInfo:
    """Describe an LTX-2 checkpoint (``.safetensors`` or ``.gguf``) from its header (nothing else is read).

    Raises ``CheckpointError`` for a file that is neither format, truncated or corrupt, of
    another model family, of an unsupported LTX version, or whose header ``model_version``
    contradicts its tensors.  A file without a header config is fine (``config == {}``).
    """
    h = read_file_header(path)
    keys = list(h.shapes)
    config = h.config or {}
    tprefix = _transformer_prefix(keys)
    components, unrouted = route_keys(keys, tprefix)
    _check_family(h.path, keys, tprefix, config, components, h.arch)
    version, evidence = _detect_version(h.path, h.metadata, config, keys, h.shapes)
    return CheckpointInfo(
        path=h.path,
        family=FAMILY,
        version=version,
        metadata=dict(h.metadata),
        config=config,
        components=components,
        transformer_prefix=tprefix or "",
        dtypes=h.dtypes,
        shapes=h.shapes,
        file_size=h.file_size,
        unrouted=unrouted,
        format=h.format,
        version_evidence=evidence,
        config_source=h.config_source,
    )


def released_header_values(version: str) -> dict:
    """The numeric ``config.transformer`` values of the published LTX ``version`` files (connectors included).

    What a file without a header config gets; the same for 2.0 and 2.3 (``ltx2.config``).
    """
    return released_numerics(version)


def _info(path_or_info) -> CheckpointInfo:
    return path_or_info if isinstance(path_or_info, CheckpointInfo) else read_checkpoint(path_or_info)


# ------------------------------------------------------------------------------ tensor data
def read_tensors(
    info: CheckpointInfo,
    keys: Iterable[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    rename: Callable[[str], str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Tensor data of ``keys`` from a safetensors or GGUF file (GGUF tensors dequantized).

    Same contract as ``safetensors_file.load_tensors``: floating tensors become ``dtype`` when
    given, ``rename`` maps file keys to returned keys, ``progress(done, total)`` after each.
    """
    if info.format != "gguf":
        return load_tensors(info.path, keys, device=device, dtype=dtype, rename=rename, progress=progress)
    keys = list(keys)
    raw = gguf_format.read_gguf_tensors(info.path, keys)
    out = {}
    for i, key in enumerate(keys):
        t = raw[key].dequantize()
        if dtype is not None and t.dtype != dtype:
            t = t.to(dtype)
        out[rename(key) if rename else key] = t.to(device)
        if progress is not None:
            progress(i + 1, len(keys))
    return out


# ------------------------------------------------------------------------------ transformer
def _transformer_keys(info: CheckpointInfo) -> list[str]:
    keys = info.components.get("transformer")
    if not keys:
        found = sorted(info.components) or "no known components"
        raise _err(
            info.path,
            f"expected transformer weights ('model.diffusion_model.transformer_blocks.*'), found only {found}. "
            f"Pick a file that contains the LTX-2 transformer: {where_published('transformer', info.version)}.",
        )
    return keys


def transformer_config(info: CheckpointInfo) -> TransformerConfig:
    """The transformer's config: sizes from the tensor shapes, numerics from the header (or released values).

    Computed once per ``CheckpointInfo`` (so its log line, if any, appears once); its
    ``provenance`` says where each value came from.  Any problem is a ``CheckpointError``
    naming the file (a header value contradicting a shape names key, value, tensor and shape).
    """
    if info._transformer_config is None:
        n = len(info.transformer_prefix)
        shapes = {k[n:]: tuple(info.shapes[k]) for k in _transformer_keys(info)}
        info._transformer_config = resolve_transformer_config(
            shapes, info.transformer_header, version=info.version, source=info.path, prefix=info.transformer_prefix
        )
    return info._transformer_config


def load_transformer_state_dict(
    path_or_info,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TransformerConfig, dict[str, torch.Tensor]]:
    """The transformer config and the transformer tensors with bare keys.

    Keys lose the file's prefix (``model.diffusion_model.``); text-connector keys are not
    included.  Floating tensors are converted to ``dtype`` when it is given (GGUF tensors are
    dequantized); ``progress(done, total)`` is called after every tensor read.
    """
    info = _info(path_or_info)
    cfg = transformer_config(info)
    n = len(info.transformer_prefix)
    sd = read_tensors(info, _transformer_keys(info), device=device, dtype=dtype, rename=lambda k: k[n:], progress=progress)
    return cfg, sd


def _describe(cfg: TransformerConfig) -> str:
    return (
        f"{cfg.num_layers} layers, video {cfg.num_attention_heads}x{cfg.attention_head_dim}, "
        f"audio {cfg.audio_num_attention_heads}x{cfg.audio_attention_head_dim}"
    )


def check_layout(
    path: str, what: str, expected: Mapping[str, tuple], found: Mapping[str, tuple], prefix: str = ""
) -> None:
    """Raise a CheckpointError listing missing / unexpected keys and shape mismatches.

    ``expected`` / ``found`` map module keys to shapes; messages show file keys (``prefix`` +
    key) so they can be looked up in the file.
    """
    missing = [prefix + k for k in expected if k not in found]
    unexpected = [prefix + k for k in found if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
        if any(k.endswith(("weight_scale", "input_scale")) for k in unexpected):
            fix = "This is a scaled-FP8 checkpoint, which this loader does not read yet: use the bf16 file."
        else:
            fix = "The file is incomplete, or its parts come from different models: download it again, or "
            fix += _USE_OFFICIAL
        raise _err(path, f"{what} weights do not match the model the file describes: {'; '.join(parts)}. {fix}")
    wrong = [(k, expected[k], found[k]) for k in expected if tuple(found[k]) != tuple(expected[k])]
    if wrong:
        shown = "; ".join(
            f"{prefix + k!r}: the model needs {list(e)}, the file has {list(f)}"
            for k, e, f in wrong[:_SHOW]
        )
        more = f" ({len(wrong) - _SHOW} more)" if len(wrong) > _SHOW else ""
        raise _err(
            path,
            f"{what} weights do not match the model the file describes: {len(wrong)} shape mismatch(es): "
            f"{shown}{more}. The tensors contradict each other (parts of different models): {_USE_OFFICIAL}",
        )


def file_dtype(info: CheckpointInfo, keys) -> torch.dtype:
    """The floating dtype holding most of ``keys``' elements (bfloat16 for exotic formats)."""
    return float_dtype(info.dtypes, info.shapes, keys)


def assign_weights(model: torch.nn.Module, state_dict, path, what: str, error=CheckpointError) -> None:
    """Put ``state_dict`` into a meta-built ``model`` (strict, ``assign=True``): no second copy.

    Every loader ends this way.  A refused key set, or a tensor still on the meta device after
    loading (operations that create tensors the file does not hold), is an ``error`` naming the
    file and the ``what`` being loaded.
    """
    try:
        model.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as err:  # e.g. custom operations that expect other keys
        raise error(f"{path}: loading the {what} weights failed: {err}") from None
    left = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if left:
        raise error(
            f"{path}: after loading, {len(left)} {what} tensor(s) have no data: {_first(left)}. The operations "
            "passed to the loader create tensors the file does not hold."
        )


def build_transformer(
    path_or_info,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    operations=None,
) -> LTXAVTransformer:
    """``LTXAVTransformer`` with the file's weights, loaded strictly (eval mode).

    Built on the meta device from the config the tensors and header give, checked against the
    file's keys and shapes before any data is read, then filled with
    ``load_state_dict(strict=True, assign=True)``.  ``dtype=None`` keeps the file's dtypes
    (GGUF: dequantized to the dtype most tensors are stored in).
    """
    info = _info(path_or_info)
    cfg = transformer_config(info)
    keys = _transformer_keys(info)
    prefix = info.transformer_prefix
    model_dtype = dtype or file_dtype(info, keys)
    model = LTXAVTransformer(cfg, operations=operations, dtype=model_dtype, device=torch.device("meta"))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k[len(prefix) :]: info.shapes[k] for k in keys}
    check_layout(info.path, f"transformer ({_describe(cfg)})", expected, found, prefix)
    _, sd = load_transformer_state_dict(info, dtype=model_dtype if info.format == "gguf" else dtype, device=device)
    assign_weights(model, sd, info.path, "transformer")
    model.dtype = model_dtype
    return model.eval()
