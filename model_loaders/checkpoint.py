"""Single-file LTX-2 checkpoints: what a file holds, and the strict transformer loader.

``read_checkpoint`` looks at the header only (no tensor data): it routes every key to a
component, tells LTX-2 from other model families, reads the config and decides the version.
``build_transformer`` then builds ``ltx2.transformer.LTXAVTransformer`` on the meta device,
checks the file's keys and shapes against it *before* reading any data, and loads the weights
strictly with ``assign=True`` (so the weights are never copied twice).

Layouts understood (see ``layouts.py`` for the keys of each component):

* the official bundle (``ltx-2-19b-dev.safetensors``, the 2.3 file): transformer under
  ``model.diffusion_model.``, text connectors under ``model.diffusion_model.*_embeddings_connector.``,
  plus ``text_embedding_projection.*``, ``vae.*``, ``audio_vae.*``, ``vocoder.*``;
* a transformer alone (ComfyUI's ``diffusion_models`` folder), keys with the
  ``model.diffusion_model.`` or ``diffusion_model.`` prefix or bare (``transformer_blocks.0...``).

The numerics-defining config always comes from the header; a file without it is refused.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch

from .layouts import COMPONENTS
from .safetensors_file import TORCH_DTYPES, CheckpointError, load_tensors, parse_config, read_header

try:  # see model_loaders/__init__.py
    from ..ltx2.config import NUMERIC_KEYS, SHAPE_KEYS, ConfigError, TransformerConfig
    from ..ltx2.transformer import LTXAVTransformer
except ImportError:
    from ltx2.config import NUMERIC_KEYS, SHAPE_KEYS, ConfigError, TransformerConfig
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
_V23_ONLY_KEYS = ("vocoder.bwe_generator.", "text_embedding_projection.video_aggregate_embed.")
_SD_MARKERS = ("model.diffusion_model.input_blocks.", "conditioner.", "first_stage_model.", "cond_stage_model.")
_SHOW = 10  # keys listed per kind in an error message


@dataclass
class CheckpointInfo:
    """What ``read_checkpoint`` learnt from a header; no tensor data was read.

    ``components`` maps a component name (see ``COMPONENT_NAMES``; only those present appear)
    to its file keys; ``dtypes`` / ``shapes`` describe every tensor of the file.
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

    @property
    def model_version(self) -> str | None:
        return self.metadata.get("model_version")

    def num_params(self, component: str) -> int:
        """Elements in ``component``'s tensors (0 when the file lacks it)."""
        return sum(math.prod(self.shapes[k]) for k in self.components.get(component, ()))


def _err(path: str, message: str) -> CheckpointError:
    return CheckpointError(f"{path}: {message}")


def _first(keys, n: int = _SHOW) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


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


def _check_family(path: str, keys, tprefix: str | None, config: dict | None, components: dict) -> None:
    """Raise a CheckpointError naming the family when the file is not an LTX-2 checkpoint."""
    section = (config or {}).get("transformer")
    t = section if isinstance(section, dict) else {}
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


def _detect_version(path: str, metadata: Mapping[str, str], config: dict, keys) -> str:
    """``model_version`` when the header has one, else the 2.3 feature flags / 2.3-only keys."""
    section = config.get("transformer")
    t = section if isinstance(section, dict) else {}
    flags = [k for k in _V23_FLAGS if t.get(k)]
    if "model_version" not in metadata:
        return "2.3" if flags or any(k.startswith(_V23_ONLY_KEYS) for k in keys) else "2.0"
    stated = metadata["model_version"]
    version = _parse_version(path, stated)
    if t and version == "2.0" and flags:
        problem = f"says LTX-2.0 but config.transformer enables the 2.3 features {flags}"
    elif t and version == "2.3" and len(flags) < len(_V23_FLAGS):
        missing = [k for k in _V23_FLAGS if k not in flags]
        problem = f"says LTX-2.3 but config.transformer lacks the 2.3 features {missing}"
    else:
        return version
    raise _err(
        path,
        f"config/weights mismatch: model_version {stated!r} {problem}. The header was edited or mixed up: "
        f"{_USE_OFFICIAL}",
    )


def read_checkpoint(path: str | os.PathLike) -> CheckpointInfo:
    """Describe an LTX-2 checkpoint from its header (nothing else is read).

    Raises ``CheckpointError`` for a file that is not safetensors, truncated or corrupt, of
    another model family, without a header config, or of an unsupported LTX version.
    """
    header = read_header(path)
    p = os.fspath(path)
    keys = list(header.tensors)
    config = parse_config(header)
    tprefix = _transformer_prefix(keys)
    components, unrouted = route_keys(keys, tprefix)
    _check_family(p, keys, tprefix, config, components)
    if config is None:
        needed = ", ".join(SHAPE_KEYS + NUMERIC_KEYS)
        raise _err(
            p,
            "expected the model config in the safetensors header (__metadata__['config'], a JSON object with a "
            f"'transformer' section holding {needed}), found a header without it "
            f"(metadata keys: {sorted(header.metadata) or 'none'}). These keys fix the shapes and the numerics "
            "(rope_type, frequencies_precision, ...) and are never guessed. Use the official Lightricks file, or a "
            "transformer-only file saved together with its header config.",
        )
    if "transformer" in components and not isinstance(config.get("transformer"), dict):
        raise _no_transformer_section(p, config)
    version = _detect_version(p, header.metadata, config, keys)
    return CheckpointInfo(
        path=p,
        family=FAMILY,
        version=version,
        metadata=dict(header.metadata),
        config=config,
        components=components,
        transformer_prefix=tprefix or "",
        dtypes={k: e.dtype for k, e in header.tensors.items()},
        shapes={k: e.shape for k, e in header.tensors.items()},
        file_size=header.file_size,
        unrouted=unrouted,
    )


def _no_transformer_section(path: str, config: dict) -> CheckpointError:
    return _err(
        path,
        f"expected a 'transformer' section in the header config, found only {sorted(config)}. Use the official "
        "file, whose header describes the transformer.",
    )


def _info(path_or_info) -> CheckpointInfo:
    return path_or_info if isinstance(path_or_info, CheckpointInfo) else read_checkpoint(path_or_info)


# ------------------------------------------------------------------------------ transformer
def transformer_config(info: CheckpointInfo) -> TransformerConfig:
    """The transformer config of the header; any problem is a CheckpointError naming the file."""
    section = info.config.get("transformer")
    if not isinstance(section, Mapping):
        raise _no_transformer_section(info.path, info.config)
    try:
        return TransformerConfig.from_header(section, source=info.path)
    except ConfigError as err:  # its message already names the file (source) and the key
        raise CheckpointError(str(err)) from None


def _transformer_keys(info: CheckpointInfo) -> list[str]:
    keys = info.components.get("transformer")
    if not keys:
        found = sorted(info.components) or "no known components"
        raise _err(
            info.path,
            f"expected transformer weights ('model.diffusion_model.transformer_blocks.*'), found only {found}. "
            "Pick a file that contains the LTX-2 transformer.",
        )
    return keys


def load_transformer_state_dict(
    path_or_info,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[TransformerConfig, dict[str, torch.Tensor]]:
    """The header's transformer config and the transformer tensors with bare keys.

    Keys lose the file's prefix (``model.diffusion_model.``); text-connector keys are not
    included.  Floating tensors are converted to ``dtype`` when it is given; ``progress(done,
    total)`` is called after every tensor read.
    """
    info = _info(path_or_info)
    cfg = transformer_config(info)
    n = len(info.transformer_prefix)
    sd = load_tensors(info.path, _transformer_keys(info), device=device, dtype=dtype, rename=lambda k: k[n:], progress=progress)
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
            fix = "The weights and the header config come from different models, or the file is incomplete: "
            fix += _USE_OFFICIAL
        raise _err(path, f"{what} weights do not match the header config: {'; '.join(parts)}. {fix}")
    wrong = [(k, expected[k], found[k]) for k in expected if tuple(found[k]) != tuple(expected[k])]
    if wrong:
        shown = "; ".join(
            f"{prefix + k!r}: the config needs {list(e)}, the file has {list(f)}"
            for k, e, f in wrong[:_SHOW]
        )
        more = f" ({len(wrong) - _SHOW} more)" if len(wrong) > _SHOW else ""
        raise _err(
            path,
            f"{what} weights do not match the header config: {len(wrong)} shape mismatch(es): {shown}{more}. The "
            f"weights and the config come from different models: {_USE_OFFICIAL}",
        )


def file_dtype(info: CheckpointInfo, keys) -> torch.dtype:
    """The floating dtype holding most of ``keys``' elements (bfloat16 for exotic formats)."""
    count: Counter = Counter()
    for k in keys:
        count[info.dtypes[k]] += math.prod(info.shapes[k])
    for name, _ in count.most_common():
        if name in ("F32", "F16", "BF16", "F64"):
            return TORCH_DTYPES[name]
    return torch.bfloat16


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

    Built on the meta device, checked against the header's keys and shapes before any data is
    read, then filled with ``load_state_dict(strict=True, assign=True)``.  ``dtype=None`` keeps
    the file's dtypes.
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
    _, sd = load_transformer_state_dict(info, dtype=dtype, device=device)
    assign_weights(model, sd, info.path, "transformer")
    model.dtype = model_dtype
    return model.eval()
