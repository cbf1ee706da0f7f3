"""The LTX-2.5 text-encoder file (Gemma 4 12B + the LTX text projection) -> modules, headers first.

``text_encoders/gemma4-12b-with-proj-ltx-2.5-{bf16,comfy-int8-convrot}.safetensors`` is one file:

============================================  =========================================================
keys                                          use
============================================  =========================================================
``model.embed_tokens.weight``, ``model.norm``, ``model.layers.N.*`` (``layer_scalar`` [1]; full
layers without ``v_proj``)                      Gemma 4's text decoder -> ``ltx2.gemma4_text``
``text_embedding_projection.{video,audio}_aggregate_embed.{weight,bias}``
                                              the LTX-2.3/2.5 feature extractor (49 x 3840 -> 4096 / 2048)
``tokenizer_json`` (U8)                       the tokenizer (``tokenizers`` JSON, read from the bytes)
``hf_asset__tokenizer_config.json`` & co (U8) tokenizer options; the others are not needed
``vision_model.*``, ``audio_projector.*``,
``multi_modal_projector.*``                   media towers: never run for prompts, not loaded (logged)
============================================  =========================================================

The header's ``gemma_config`` (``Gemma4UnifiedForConditionalGeneration``'s config) supplies what
shapes cannot (RoPE, window, eps, layer types, placeholder ids); every width comes from the
tensors (``gemma4_text.config_from_shapes``).  The comfy-int8-convrot variant marks its int8 layers
with ``.comfy_quant`` tensors or ``_quantization_metadata``: those weights stay int8 in CPU memory
and are dequantized (un-rotated) one layer at a time when they run (``Int8Weight``).

``inspect_gemma4`` returns a ``Gemma4Source``: a ``GemmaSource`` that also knows how to build its
module, read its weights and make its tokenizer, which is all ``host.gemma_streaming.GemmaEncoder``
needs to run it resident, streamed or on the CPU.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .gemma_loading import GemmaSource, QuantSpec, StoredWeight, _parameters_on_meta, read_weights as read_fp_weights
from .gemma_tokenizer import MAX_LENGTH, GemmaTokenizerBase
from .quant import int8_convrot
from .safetensors_file import CheckpointError, read_header

try:  # see model_loaders/__init__.py
    from ..ltx2.gemma4_text import Gemma4TextConfig, Gemma4TextModel, config_from_shapes
    from ..ltx2.text_features import FeatureExtractorV2
except ImportError:
    from ltx2.gemma4_text import Gemma4TextConfig, Gemma4TextModel, config_from_shapes
    from ltx2.text_features import FeatureExtractorV2

log = logging.getLogger(__name__)

CONFIG_KEY = "gemma_config"
TOKENIZER_KEY = "tokenizer_json"
ASSET_PREFIX = "hf_asset__"
TOKENIZER_CONFIG_KEY = ASSET_PREFIX + "tokenizer_config.json"
PROJECTION_PREFIX = "text_embedding_projection."
TEXT_PREFIXES = ("model.language_model.", "model.")  # the released file uses model.*; HF saves the first
MEDIA_PREFIXES = ("vision_model.", "audio_projector.", "multi_modal_projector.", "model.vision_tower.",
                  "model.embed_vision.", "model.embed_audio.", "vision_tower.", "embed_vision.", "embed_audio.")  # fmt: skip
_PROBE = "layers.0.layer_scalar"
_QUANT_SIDECARS = (".comfy_quant", ".weight_scale", ".input_scale")
_SHOW = 8


def _err(path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


def _first(keys) -> str:
    keys = sorted(keys)
    return ", ".join(repr(k) for k in keys[:_SHOW]) + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def is_gemma4_file(path_or_header) -> bool:
    """True for a Gemma 4 text-encoder file (header ``gemma_config`` or Gemma 4's ``layer_scalar`` keys)."""
    header = read_header(path_or_header) if isinstance(path_or_header, (str, os.PathLike)) else path_or_header
    if CONFIG_KEY in header.metadata:
        return True
    return any(k.endswith(_PROBE) and k[: -len(_PROBE)] in TEXT_PREFIXES for k in header.tensors)


@dataclass
class Int8Weight(StoredWeight):
    """An int8 weight (``data``) with its row scales (``scale``), un-rotated when ``group_size`` > 0."""

    group_size: int = 0

    def materialize(self, device, dtype: torch.dtype, non_blocking: bool = False) -> torch.Tensor:
        q = self.data.to(device, non_blocking=non_blocking)
        return int8_convrot.dequantize(q, self.scale.to(device, non_blocking=non_blocking), self.group_size, dtype)


class Gemma4Tokenizer(GemmaTokenizerBase):
    """The embedded ``tokenizer.json`` through the ``tokenizers`` library; LTX's padding (left, 1024).

    ``encode_ids`` applies the JSON's own post-processor (``<bos>`` first for Gemma) and adds
    ``<bos>`` itself when ``add_bos_token`` (default true) asks for it and the JSON did not.
    """

    def __init__(self, tokenizer_json: str, tokenizer_config: dict | None = None, *, max_length: int = MAX_LENGTH,
                 pad_token_id: int = 0, source: str = "") -> None:  # fmt: skip
        from tokenizers import Tokenizer

        self.source = source
        try:
            tok = Tokenizer.from_str(tokenizer_json)
        except Exception as err:  # tokenizers raises its own Exception subclass
            raise CheckpointError(f"{source}: the embedded tokenizer_json could not be read ({err}). The file is "
                                  "corrupt: download it again.") from err  # fmt: skip
        tok.no_padding()
        tok.no_truncation()
        self.tok = tok
        conf = dict(tokenizer_config or {})
        self.max_length = max_length

        def token_id(name, default):
            value = conf.get(name, default)
            value = value.get("content") if isinstance(value, dict) else value
            return tok.token_to_id(value) if isinstance(value, str) else None

        pad = token_id("pad_token", "<pad>")
        self.pad_id = pad if pad is not None else pad_token_id
        self.bos_id = token_id("bos_token", "<bos>")
        self.add_bos = bool(conf.get("add_bos_token", True)) and self.bos_id is not None

    def encode_ids(self, text: str) -> list[int]:
        ids = list(self.tok.encode(text, add_special_tokens=True).ids)
        if self.add_bos and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id] + ids
        return ids


@dataclass
class Gemma4Source(GemmaSource):
    """A ``GemmaSource`` for the LTX-2.5 Gemma 4 file; see the module docstring."""

    text: Gemma4TextConfig | None = None
    gemma_config: dict = field(default_factory=dict)
    int8: dict[str, int8_convrot.Int8LayerConfig] = field(default_factory=dict)  # param name -> config
    projection: dict[str, tuple[str, str, str, tuple]] = field(default_factory=dict)
    projection_scales: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    tokenizer_config: tuple[str, str] | None = None
    ignored: dict[str, int] = field(default_factory=dict)

    def build_model(self, device: torch.device | str = "cpu") -> Gemma4TextModel:
        """The text decoder with parameters on the meta device (filled by the encoder)."""
        with _parameters_on_meta(), torch.device(device):
            model = Gemma4TextModel(self.text)
        return model.eval().requires_grad_(False)

    def read_weights(self, names, dtype: torch.dtype, progress=None) -> dict[str, StoredWeight]:
        """CPU copies: int8 layers stay int8 (``Int8Weight``), fp8 keep their scale, the rest become ``dtype``."""
        from safetensors import safe_open

        dense = [n for n in names if n not in self.int8]
        out = read_fp_weights(self, dense, dtype, progress) if dense else {}
        try:
            with safe_open(self.files[0], framework="pt", device="cpu") as f:
                for n in names:
                    if n in self.int8:
                        _, key, _, _ = self.tensors[n]
                        scale = f.get_tensor(self.quant[n].scale[1]).float()
                        out[n] = Int8Weight(f.get_tensor(key), scale, group_size=self.int8[n].group_size)
        except Exception as err:
            raise _err(self.path, f"reading the Gemma 4 int8 weights failed ({type(err).__name__}: {err}). Download "
                                  "the file again.") from err  # fmt: skip
        return out

    def make_tokenizer(self, max_length: int = MAX_LENGTH) -> Gemma4Tokenizer:
        """The embedded tokenizer (no download, no network)."""
        from safetensors import safe_open

        with safe_open(self.files[0], framework="pt", device="cpu") as f:
            text = f.get_tensor(TOKENIZER_KEY).numpy().tobytes().decode("utf-8")
            conf = None
            if self.tokenizer_config is not None:
                conf = json.loads(f.get_tensor(TOKENIZER_CONFIG_KEY).numpy().tobytes().decode("utf-8"))
        return Gemma4Tokenizer(text, conf, max_length=max_length, pad_token_id=self.text.pad_token_id,
                               source=f"{self.path} [{TOKENIZER_KEY}]")  # fmt: skip

    def describe(self) -> str:
        return f"Gemma 4, {super().describe()}"


def _text_prefix(path, keys) -> str:
    for prefix in TEXT_PREFIXES:
        if prefix + _PROBE in keys:
            return prefix
    raise _err(
        path,
        f"expected a Gemma 4 text encoder (keys like 'model.layers.0.layer_scalar'), found none; the file holds "
        f"{_first(keys)}. LTX-2.5 needs text_encoders/gemma4-12b-with-proj-ltx-2.5-*.safetensors.",
    )


def _quant_layers(path, header, keys) -> dict[str, dict]:
    from safetensors import safe_open

    markers = [k for k in keys if k.endswith(".comfy_quant")]
    tensors = {}
    if markers:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in markers}
    try:
        return int8_convrot.comfy_quant_configs(header.metadata, tensors)
    except (ValueError, json.JSONDecodeError) as err:
        raise _err(path, f"the quantization markers are unreadable ({err}). The file is corrupt: download it again.") from None


def inspect_gemma4(path: str | os.PathLike) -> Gemma4Source:
    """Read the header of a Gemma 4 text-encoder file into a ``Gemma4Source`` (strict; no weights read)."""
    path = Path(path)
    if not path.is_file():
        raise _err(path, "expected the Gemma 4 .safetensors file, found nothing at this path.")
    header = read_header(path)
    entries = header.tensors
    keys = set(entries)
    prefix = _text_prefix(path, keys)
    try:
        gemma_config = json.loads(header.metadata[CONFIG_KEY]) if CONFIG_KEY in header.metadata else {}
    except json.JSONDecodeError as err:
        raise _err(path, f"the header's {CONFIG_KEY} is not JSON ({err}). The file is corrupt: download it again.") from None
    if not gemma_config:
        log.info("%s: no %s in the header; using the released Gemma 4 12B constants", path, CONFIG_KEY)
    quant = _quant_layers(path, header, keys)
    if TOKENIZER_KEY not in keys:
        raise _err(path, f"expected the embedded tokenizer tensor {TOKENIZER_KEY!r}, found none. The LTX-2.5 text "
                         "encoder file carries its tokenizer: download the official file again.")  # fmt: skip

    tensors, quant_specs, int8, projection, proj_scales = {}, {}, {}, {}, {}
    ignored: dict[str, int] = {}
    unexpected = []
    for key in sorted(keys):
        entry = entries[key]
        if key == TOKENIZER_KEY or key.startswith(ASSET_PREFIX) or key.endswith(_QUANT_SIDECARS):
            continue
        media = next((p for p in MEDIA_PREFIXES if key.startswith(p)), None)
        if media is not None:
            ignored[media] = ignored.get(media, 0) + 1
            continue
        layer = key[: -len(".weight")] if key.endswith(".weight") else None
        conf = quant.get(layer) if layer is not None else None
        int8_conf = int8_convrot.layer_config(conf) if conf else None
        if conf and int8_conf is None and conf.get("format") not in ("float8_e4m3fn", "float8_e5m2"):
            raise _err(path, f"layer {layer!r} is quantized as {conf.get('format')!r}, which this loader does not "
                             "read. Use the bf16 or comfy-int8-convrot Gemma 4 file.")  # fmt: skip
        if conf is not None and layer + ".weight_scale" not in keys:
            raise _err(path, f"the quantized layer {layer!r} has no weight_scale. The file is corrupt: download it again.")
        if key.startswith(PROJECTION_PREFIX):
            name = key[len(PROJECTION_PREFIX):]
            projection[name] = (str(path), key, entry.dtype, entry.shape)
            if conf:
                proj_scales[name] = (str(path), layer + ".weight_scale", int8_conf.group_size if int8_conf else -1)
        elif key.startswith(prefix):
            name = key[len(prefix):]
            tensors[name] = (str(path), key, entry.dtype, entry.shape)
            if conf:
                fmt = "int8" if int8_conf is not None else "fp8"
                quant_specs[name] = QuantSpec(fmt, scale=(str(path), layer + ".weight_scale"))
                if int8_conf is not None:
                    int8[name] = int8_conf
        else:
            unexpected.append(key)
    if unexpected:
        raise _err(path, f"found tensors that belong to no part of the Gemma 4 text encoder: {_first(unexpected)}.")
    if ignored:
        log.info("%s: not loading the media towers (%s): LTX encodes text prompts only", path,
                 ", ".join(f"{p}* {n} tensors" for p, n in sorted(ignored.items())))  # fmt: skip

    top = {k: v for k, v in gemma_config.items() if k.endswith("_token_id") and k not in ("pad_token_id",)}
    placeholders = [top[k] for k in ("image_token_id", "video_token_id", "audio_token_id") if isinstance(top.get(k), int)]
    shapes = {n: t[3] for n, t in tensors.items()}
    try:
        text = config_from_shapes(shapes, gemma_config.get("text_config", gemma_config or None), source=str(path),
                                  placeholder_token_ids=placeholders)  # fmt: skip
    except ValueError as err:
        raise _err(path, str(err).removeprefix(f"{path}: ")) from None
    config = {
        "hidden_size": text.hidden_size,
        "num_hidden_layers": text.num_hidden_layers,
        "intermediate_size": text.intermediate_size,
        "vocab_size": text.vocab_size,
    }
    stats = [(str(path), path.stat().st_size, path.stat().st_mtime_ns)]
    return Gemma4Source(
        str(path), [str(path)], config, tensors, quant_specs, tokenizer=None, embedded_tokenizer=(str(path), TOKENIZER_KEY),
        file_stats=stats, text=text, gemma_config=gemma_config, int8=int8, projection=projection,
        projection_scales=proj_scales, tokenizer_config=(str(path), TOKENIZER_CONFIG_KEY) if TOKENIZER_CONFIG_KEY in keys else None,
        ignored=ignored,
    )  # fmt: skip


def load_gemma4_projection(source: Gemma4Source | str | os.PathLike, *, dtype: torch.dtype = torch.bfloat16,
                           device: torch.device | str = "cpu", operations=None) -> FeatureExtractorV2:  # fmt: skip
    """The file's ``text_embedding_projection`` as the LTX-2.3/2.5 feature extractor (strict; int8 dequantized)."""
    from safetensors import safe_open

    if not isinstance(source, Gemma4Source):
        source = inspect_gemma4(source)
    want = ("video_aggregate_embed.weight", "video_aggregate_embed.bias",
            "audio_aggregate_embed.weight", "audio_aggregate_embed.bias")  # fmt: skip
    missing = [PROJECTION_PREFIX + k for k in want if k not in source.projection]
    extra = [PROJECTION_PREFIX + k for k in source.projection if k not in want]
    if missing or extra:
        raise _err(source.path, f"the text projection is incomplete or foreign: missing {missing}, unexpected {extra}. "
                                "LTX-2.5's file has video_/audio_aggregate_embed weights and biases.")  # fmt: skip
    flat = source.projection["video_aggregate_embed.weight"][3][1]
    states = source.num_hidden_states
    if flat != source.hidden_size * states:
        raise _err(source.path, f"the text projection takes {flat} features, Gemma gives {source.hidden_size} x {states} "
                                f"= {source.hidden_size * states}; the projection belongs to another encoder.")  # fmt: skip
    video = source.projection["video_aggregate_embed.weight"][3][0]
    audio = source.projection["audio_aggregate_embed.weight"][3][0]
    with torch.device("meta"):
        module = FeatureExtractorV2(source.hidden_size, states, video, audio, operations=operations, dtype=dtype)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    wrong = {k: (source.projection[k][3], s) for k, s in expected.items() if tuple(source.projection[k][3]) != s}
    if wrong:
        raise _err(source.path, f"text projection shapes do not fit together: {wrong}")
    sd = {}
    with safe_open(source.path, framework="pt", device="cpu") as f:
        for name in want:
            t = f.get_tensor(source.projection[name][1])
            if name in source.projection_scales:
                _, skey, group = source.projection_scales[name]
                scale = f.get_tensor(skey).float()
                if group < 0:  # fp8
                    t = t.float() * (scale.reshape(-1, 1) if scale.numel() > 1 else scale)
                else:
                    t = int8_convrot.dequantize(t, scale, group, torch.float32)
            sd[name] = t.to(device=device, dtype=dtype)
    from .checkpoint import assign_weights

    assign_weights(module, sd, source.path, "Gemma 4 text projection")
    module.dtype = dtype
    return module.eval().requires_grad_(False)


__all__ = ["Gemma4Source", "Gemma4Tokenizer", "Int8Weight", "inspect_gemma4", "is_gemma4_file",
           "load_gemma4_projection"]  # fmt: skip
