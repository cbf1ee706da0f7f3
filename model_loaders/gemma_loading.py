"""Gemma 3 text encoder files -> a ``transformers`` ``Gemma3TextModel`` (text tower only).

Two layouts are read, headers first (no tensor data until the model is needed):

* a Hugging Face directory (``gemma-3-12b-it-qat-q4_0-unquantized``): ``config.json`` and
  ``model-*.safetensors`` with keys ``language_model.model.*`` (transformers 4.x saves) or
  ``model.language_model.*`` (5.x saves), plus ``vision_tower.*`` / ``multi_modal_projector.*``
  that text encoding never uses (skipped);
* a single ComfyUI file (``gemma_3_12B_it.safetensors``, ``gemma_3_12B_it_fp8_scaled.safetensors``,
  ``gemma_3_12B_it_fp4_mixed.safetensors``): keys ``model.embed_tokens.weight``, ``model.layers.N.*``,
  ``model.norm.weight`` (ComfyUI's ``comfy/text_encoders/llama.py`` names, equal to transformers'
  under ``model.``), optional ``vision_model.*`` / ``multi_modal_projector.*`` (skipped), the
  tokenizer as a uint8 tensor ``spiece_model``.  Quantized Linears:

  - fp8: float8 ``weight`` + a per-tensor float32 scale in ``<layer>.scale_weight`` (legacy
    ``scaled_fp8`` marker) or ``<layer>.weight_scale`` (a ``.comfy_quant`` marker
    ``{"format": "float8_e4m3fn"}`` or none);
  - NVFP4 (``{"format": "nvfp4"}``, the 302 four-bit layers of ``fp4_mixed``): uint8 ``weight``,
    e4m3 ``weight_scale`` block scales, float32 ``weight_scale_2`` (``quant/nvfp4.py``).

  The marker is a per-layer ``<layer>.comfy_quant`` uint8 JSON tensor or the header's
  ``_quantization_metadata``.  Weights stay quantized in memory and are dequantized one layer
  at a time when the layer runs (``gemma_streaming.py``), on any device; input scales only
  matter for low-precision matmuls and are ignored.

LTX text weights stored in a Gemma file (``text_embedding_projection.*``, connectors) are no
part of Gemma: they are skipped here and picked up by ``text_loading.py``.

The config of a single file is inferred from tensor shapes (hidden size, layers, heads, head
dim, MLP width, vocabulary) on top of the Gemma 3 family constants (RoPE, sliding window), which
``GEMMA3_FAMILY`` lists; a directory's ``config.json`` supplies them instead and must agree
with the shapes.  ``Gemma3TextModel`` is built with its parameters on the meta device and its
buffers (RoPE frequencies, embedding scale) computed for real, so nothing is allocated twice
and no internals of a particular transformers version are touched (4.5x and 5.x both work).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config_sources import HEADER, RELEASED, SHAPE, listing
from .gemma_tokenizer import find_tokenizer
from .published_files import carriers, describe
from .quant import nvfp4
from .quant.formats import COMFY_FP8_FORMATS, layer_formats
from .safetensors_file import TORCH_DTYPES, CheckpointError, read_header

# Gemma 3 constants that shapes do not reveal (google/gemma-3-12b-it config, LTX2_SPEC §5).
GEMMA3_FAMILY = {
    "rope_theta": 1_000_000.0,
    "rope_local_base_freq": 10_000.0,
    "rope_scaling": {"rope_type": "linear", "factor": 8.0},
    "sliding_window": 1024,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-6,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 131072,
    "attention_bias": False,
    "attn_logit_softcapping": None,
    "final_logit_softcapping": None,
}
SLIDING_PATTERN = 6  # 5 local layers, then 1 global
GEMMA3_12B = {"hidden_size": 3840, "num_hidden_layers": 48}
SHAPE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "head_dim", "intermediate_size")  # fmt: skip

_PROBE = "layers.0.self_attn.q_proj.weight"
_GEMMA3_MARKERS = ("layers.0.self_attn.q_norm.weight", "layers.0.pre_feedforward_layernorm.weight")
# Not part of the text tower: vision tower, projector, LM head, tokenizer blob, the legacy fp8
# marker, and LTX text weights that some files carry next to Gemma (text_loading.py reads them).
_SKIPPED = re.compile(
    r"^(?:model\.)?(?:vision_tower|vision_model|multi_modal_projector)\.|(?:^|\.)lm_head\.|^spiece_model$|"
    r"(?:^|\.)scaled_fp8$|(?:^|\.)text_embedding_projection\.|(?:^|\.)(?:video_|audio_)?embeddings_connector\."
)
# Per-layer companions of a quantized weight (``<layer><suffix>``); order: longest first.
_AUX_SUFFIXES = (".weight_scale_2", ".weight_scale", ".scale_weight", ".input_scale", ".scale_input", ".comfy_quant")
_IGNORED_AUX = (".input_scale", ".scale_input")  # activation scales: only low-precision matmuls use them
_FP8 = ("F8_E4M3", "F8_E5M2")
_UNSUPPORTED_QUANT = (".pre_quant_scale",)
_SUPPORTED_FORMATS = (*COMFY_FP8_FORMATS, nvfp4.FORMAT)
_SHOW = 8


def _err(path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


def _first(keys) -> str:
    return listing(keys, _SHOW)


@dataclass(frozen=True)
class QuantSpec:
    """How a quantized weight is stored: ``format`` ("fp8" / "nvfp4") and ``(file, key)`` of its scales.

    fp8: ``scale`` = the per-tensor scale (None: 1).  nvfp4: ``scale`` = ``weight_scale_2``,
    ``block_scale`` = the e4m3 block scales; ``stored_shape`` is the uint8 weight's shape.
    """

    format: str
    scale: tuple[str, str] | None = None
    block_scale: tuple[str, str] | None = None
    stored_shape: tuple[int, ...] | None = None


@dataclass
class GemmaSource:
    """What the headers of a Gemma file / directory say; no tensor data read.

    ``tensors`` maps a ``Gemma3TextModel`` parameter name to ``(file, key, safetensors dtype,
    logical shape)``; ``quant`` maps the name of a quantized weight to its ``QuantSpec``.
    """

    path: str
    files: list[str]
    config: dict
    tensors: dict[str, tuple[str, str, str, tuple[int, ...]]]
    quant: dict[str, QuantSpec] = field(default_factory=dict)
    tokenizer: str | None = None  # directory or tokenizer.model next to the weights
    embedded_tokenizer: tuple[str, str] | None = None  # (file, key) of a ``spiece_model`` tensor
    file_stats: list[tuple[str, int, int]] = field(default_factory=list)  # (path, size, mtime_ns)
    # config key -> where its value came from: "shape" (the tensors), "header" (the folder's
    # config.json) or "released default" (Gemma 3's published family settings)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def num_hidden_states(self) -> int:
        """Embedding output + one per layer: what ``output_hidden_states`` returns."""
        return int(self.config["num_hidden_layers"]) + 1

    @property
    def is_fp8(self) -> bool:
        return any(q.format == "fp8" for q in self.quant.values())

    @property
    def formats(self) -> dict[str, int]:
        """Weight storage -> count of tensors: ``{"dense": 600, "nvfp4": 302, "fp8": 34}``."""
        out = {"dense": len(self.tensors) - len(self.quant)}
        for q in self.quant.values():
            out[q.format] = out.get(q.format, 0) + 1
        return out

    def weight_bytes(self, dtype: torch.dtype) -> int:
        """Bytes of all text weights when held in ``dtype``."""
        size = torch.empty((), dtype=dtype).element_size()
        return sum(math.prod(s) for *_, s in self.tensors.values()) * size

    def describe(self) -> str:
        c = self.config
        return (f"hidden size {c['hidden_size']}, {c['num_hidden_layers']} layers "
                f"({self.num_hidden_states} hidden states)")  # fmt: skip


# ------------------------------------------------------------------------------ inspection
def _safetensors_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError) as err:
            raise _err(index, f"expected a JSON object with a 'weight_map', it could not be read ({err}).") from None
        files = [directory / n for n in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise _err(directory, f"the index names shards that are missing: {missing}. Download them again.")
        return files
    return sorted(directory.glob("*.safetensors"))


def _text_prefix(path, keys) -> str:
    for key in keys:
        if key.endswith(_PROBE) and not _SKIPPED.search(key):
            prefix = key[: -len(_PROBE)]
            if all(prefix + m in keys for m in _GEMMA3_MARKERS):
                return prefix
            raise _err(
                path,
                f"expected a Gemma 3 text encoder, found a different language model (it has {key!r} but no "
                f"{prefix + _GEMMA3_MARKERS[0]!r}: Gemma 3's per-head query norm). LTX-2 needs Gemma 3 12B "
                f"({describe(carriers('gemma'))}).",
            )
    hint = ""
    if any(k.startswith(("model.diffusion_model.", "vae.", "text_embedding_projection.")) for k in keys):
        hint = " This is an LTX-2 checkpoint: choose it as the LTX checkpoint, and a Gemma 3 file as the text encoder."
    raise _err(
        path,
        f"expected a Gemma 3 text encoder (keys like 'model.layers.0.self_attn.q_norm.weight'), found none; the "
        f"file holds {_first(keys)}.{hint}",
    )


def _shape_config(path, tensors) -> dict:
    def shape(name):
        if name not in tensors:
            raise _err(path, f"expected the Gemma 3 tensor {name!r}, found none. The file is incomplete: download it again.")
        return tensors[name][3]

    layers = sorted({int(m.group(1)) for k in tensors if (m := re.match(r"layers\.(\d+)\.", k))})
    if layers != list(range(len(layers))):
        raise _err(path, f"expected Gemma layers 0..N-1, found layer indices {layers}. The file is incomplete.")
    vocab, hidden = shape("embed_tokens.weight")
    head_dim = shape("layers.0.self_attn.q_norm.weight")[0]
    return {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": len(layers),
        "head_dim": head_dim,
        "num_attention_heads": shape("layers.0.self_attn.q_proj.weight")[0] // head_dim,
        "num_key_value_heads": shape("layers.0.self_attn.k_proj.weight")[0] // head_dim,
        "intermediate_size": shape("layers.0.mlp.gate_proj.weight")[0],
    }


def _hf_text_config(directory: Path) -> dict:
    file = directory / "config.json"
    if not file.is_file():
        return {}
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as err:
        raise _err(file, f"expected a JSON model config, found invalid JSON ({err}).") from None
    text = raw.get("text_config", raw)
    return {k: v for k, v in text.items() if k not in ("architectures", "torch_dtype", "dtype", "transformers_version",
                                                      "model_type", "auto_map")}  # fmt: skip


def _find_tokenizer_near(path: Path) -> str | None:
    """A tokenizer in the weights' folder, or in a sub/sibling folder whose name has 'gemma' in it."""
    folder = path if path.is_dir() else path.parent
    if found := find_tokenizer(folder):
        return str(found)
    if path.is_file() and (found := find_tokenizer(folder / path.stem)):
        return str(found)
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and "gemma" in p.name.lower()):
        if found := find_tokenizer(sub):
            return str(found)
    return None


def inspect_gemma(path: str | os.PathLike, tokenizer: str | os.PathLike | None = None) -> GemmaSource:
    """Read the headers of a Gemma 3 file or HF directory into a ``GemmaSource`` (strict checks)."""
    path = Path(path)
    if path.is_dir():
        files = _safetensors_files(path)
        if not files:
            raise _err(path, "expected a Gemma 3 model folder with model-*.safetensors files, found none.")
    elif path.is_file():
        files = [path]
    else:
        raise _err(path, "expected a Gemma 3 .safetensors file or model folder, found nothing at this path.")
    headers = [read_header(f) for f in files]
    owner = {k: h for h in headers for k in h.tensors}
    keys = set(owner)
    prefix = _text_prefix(path, keys)

    tensors: dict = {}
    aux: dict[str, dict[str, tuple]] = {}  # layer -> suffix -> (file, key, dtype, shape)
    embedded = None
    unexpected = []
    for key in sorted(keys):
        h = owner[key]
        entry = h.tensors[key]
        if key.endswith(_UNSUPPORTED_QUANT):
            raise _err(path, f"tensor {key!r} belongs to an activation-aware quantized format (AWQ / SVDQuant) that "
                       f"OpenLTX does not read. {_USE_INSTEAD}")  # fmt: skip
        if key == "spiece_model":
            embedded = (str(h.path), key)
            continue
        if _SKIPPED.search(key):
            continue
        if not key.startswith(prefix):
            unexpected.append(key)
            continue
        name = key[len(prefix) :]
        suffix = next((s for s in _AUX_SUFFIXES if name.endswith(s)), None)
        if suffix:
            aux.setdefault(name[: -len(suffix)], {})[suffix] = (str(h.path), key, entry.dtype, entry.shape)
        else:
            tensors[name] = (str(h.path), key, entry.dtype, entry.shape)
    if unexpected:
        raise _err(path, f"found tensors that belong to no part of Gemma 3: {_first(unexpected)}. Is this a merged file?")
    stray = [layer + next(iter(parts)) for layer, parts in aux.items() if layer + ".weight" not in tensors]
    if stray:
        raise _err(path, f"found quantization scales without a weight: {_first(stray)}. The file is corrupt: download "
                   "it again.")  # fmt: skip
    markers = _layer_formats(path, headers, aux, prefix)
    quant: dict[str, QuantSpec] = {}
    for layer in sorted(set(aux) | set(markers) | {n[: -len(".weight")] for n, e in tensors.items() if _quantized_dtype(n, e)}):
        name = layer + ".weight"
        if name not in tensors:
            raise _err(path, f"the quantization metadata names layer {prefix + layer!r}, which the file does not hold. "
                       "The file is corrupt: download it again.")  # fmt: skip
        spec, shape = _quant_spec(path, prefix + layer, tensors[name], aux.get(layer, {}), markers.get(layer))
        if spec is not None:
            quant[name] = spec
            tensors[name] = (*tensors[name][:3], shape)

    shapes = _shape_config(path, tensors)
    config = dict(GEMMA3_FAMILY)
    config["layer_types"] = [
        "full_attention" if (i + 1) % SLIDING_PATTERN == 0 else "sliding_attention"
        for i in range(shapes["num_hidden_layers"])
    ]
    sources = dict.fromkeys(config, RELEASED)
    if path.is_dir():
        declared = _hf_text_config(path)
        sources.update(dict.fromkeys(declared, HEADER))
        conflicts = {k: (declared[k], v) for k, v in shapes.items() if k in declared and declared[k] != v}
        if conflicts:
            said = ", ".join(f"{k}: config.json {a}, weights {b}" for k, (a, b) in conflicts.items())
            raise _err(path, f"config.json does not match the weights ({said}). Download the folder again.")
        config.update(declared)
    config.update(shapes)
    sources.update(dict.fromkeys(shapes, SHAPE))

    tok = None
    if tokenizer is not None:
        tok = os.fspath(tokenizer)
    elif embedded is None:
        tok = _find_tokenizer_near(path)
        if tok is None:
            where = "this folder" if path.is_dir() else f"the folder of {path.name}"
            raise _err(
                path,
                f"expected a Gemma tokenizer (tokenizer.model or tokenizer.json) in {where}, found none. Copy "
                f"tokenizer.model from Google's Gemma 3 folder ({describe(carriers('gemma')[:1])}) next to the "
                "weights, or use a Comfy-Org Gemma file (the tokenizer is inside).",
            )
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return GemmaSource(str(path), [str(f) for f in files], config, tensors, quant, tok, embedded, stats, sources)


_USE_INSTEAD = f"Use one of the published Gemma 3 12B files: {describe(carriers('gemma'))}."


def _quantized_dtype(name: str, entry) -> bool:
    return name.endswith(".weight") and entry[2] in (*_FP8, "U8", "I8")


def _layer_formats(path, headers, aux, prefix) -> dict[str, dict]:
    """Layer -> comfy_quant config from the ``.comfy_quant`` tensors (tiny: read now) and headers."""
    from safetensors import safe_open

    out: dict[str, dict] = {}
    for h in headers:
        wanted = {key: layer for layer, parts in aux.items() if (key := parts.get(".comfy_quant", (None, None))[1])
                  and parts[".comfy_quant"][0] == str(h.path)}  # fmt: skip
        markers = {}
        if wanted:
            try:
                with safe_open(str(h.path), framework="pt", device="cpu") as f:
                    markers = {key: f.get_tensor(key) for key in wanted}
            except Exception as err:
                raise _err(h.path, f"reading the comfy_quant markers failed ({type(err).__name__}: {err}). The file "
                           "is corrupt: download it again.") from err  # fmt: skip
        out.update(layer_formats(h.path, h.metadata, markers, prefix))
    return out


def _quant_spec(path, layer: str, weight: tuple, parts: dict, marker: dict | None):
    """``(QuantSpec | None, logical shape)`` of one weight; an unknown or inconsistent format raises."""
    file, key, dtype, shape = weight
    fmt = (marker or {}).get("format")
    where = f"layer {layer!r}"
    if fmt is None and dtype == "U8" and ".weight_scale_2" in parts:
        fmt = nvfp4.FORMAT  # Lightricks' prequantized NVFP4 carries no marker; the tensor set says it
    if fmt is not None and fmt not in _SUPPORTED_FORMATS:
        raise _err(path, f"{where} is quantized as {fmt!r}, a format OpenLTX does not read (it reads "
                   f"{', '.join(_SUPPORTED_FORMATS)}). {_USE_INSTEAD}")  # fmt: skip
    found = f"found {dtype} {list(shape)} with {sorted(parts) or 'no scales'}"
    if fmt == nvfp4.FORMAT:
        scale, block = parts.get(".weight_scale_2"), parts.get(".weight_scale")
        if dtype != "U8" or scale is None or block is None or block[2] not in ("F8_E4M3", "U8") or len(shape) != 2:
            raise _err(path, f"{where} is marked NVFP4, which needs a uint8 weight, float8 '.weight_scale' block scales "
                       f"and a float32 '.weight_scale_2'; {found}. The file is corrupt: download it again.")  # fmt: skip
        logical = nvfp4.logical_bounds(shape)
        if not nvfp4.fits(logical, shape, block[3]):
            raise _err(path, f"{where}: NVFP4 block scales {list(block[3])} do not fit a uint8 weight {list(shape)} "
                       f"(expected {list(nvfp4.storage_shapes(*logical)[1])}). The file is corrupt.")  # fmt: skip
        return QuantSpec("nvfp4", scale[:2], block[:2], tuple(shape)), logical
    if fmt in COMFY_FP8_FORMATS or dtype in _FP8:
        if dtype not in _FP8:
            raise _err(path, f"{where} is marked {fmt!r} but its weight is {dtype}. The file is corrupt.")
        scale = parts.get(".weight_scale") or parts.get(".scale_weight")
        if ".weight_scale_2" in parts:
            raise _err(path, f"{where} is an fp8 weight with NVFP4 scales; {found}. The file is corrupt.")
        return QuantSpec("fp8", scale[:2] if scale else None), shape
    if dtype in ("U8", "I8"):
        raise _err(path, f"{where} has a {dtype} weight without a quantization format OpenLTX knows ({found}; no "
                   f"'.comfy_quant' marker). {_USE_INSTEAD}")  # fmt: skip
    extra = [s for s in parts if s not in _IGNORED_AUX and s != ".comfy_quant"]
    if extra:
        raise _err(path, f"{where} is a {dtype} weight but has quantization scales {extra}. The file is corrupt.")
    return None, shape


def param_shape(source: GemmaSource, name: str) -> tuple[int, ...] | None:
    """The shape of the text model's weight ``name`` (``layers.0.self_attn.q_proj.weight``), None if absent."""
    entry = source.tensors.get(name)
    return tuple(entry[3]) if entry is not None else None


def check_width(source: GemmaSource, hidden_size: int, hidden_states: int, what: str = "the LTX checkpoint") -> None:
    """The Gemma file must produce what the LTX text projection takes (3840 x 49 for Gemma 3 12B)."""
    if (source.hidden_size, source.num_hidden_states) != (hidden_size, hidden_states):
        raise _err(
            source.path,
            f"this Gemma model has {source.describe()}, but {what}'s text projection expects hidden size "
            f"{hidden_size} from {hidden_states} hidden states ({hidden_states - 1} layers). LTX-2 needs Gemma 3 12B "
            f"(hidden size {GEMMA3_12B['hidden_size']}, {GEMMA3_12B['num_hidden_layers']} layers): a 1B / 4B / 27B "
            "Gemma does not fit.",
        )


# ------------------------------------------------------------------------------ the module
@contextlib.contextmanager
def _parameters_on_meta():
    """Build modules with parameters on the meta device but real buffers.

    ``register_parameter`` is wrapped for the duration only: ``nn.Linear`` etc. allocate their
    (uninitialised) weight, it moves to meta on registration, and the init that follows runs on
    meta for free.  Buffers (RoPE ``inv_freq``, ``embed_scale``) are computed for real.
    """
    original = torch.nn.Module.register_parameter

    def register(module, name, param):
        if param is not None:
            param = torch.nn.Parameter(param.to("meta"), requires_grad=False)
        original(module, name, param)

    torch.nn.Module.register_parameter = register
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original


def gemma_config(source_or_config):
    """A ``transformers`` ``Gemma3TextConfig`` (sdpa attention) from a ``GemmaSource`` or kwargs."""
    from transformers import Gemma3TextConfig

    kwargs = dict(source_or_config.config if isinstance(source_or_config, GemmaSource) else source_or_config)
    config = Gemma3TextConfig(**kwargs)
    config._attn_implementation = "sdpa"
    config.use_cache = False
    return config


def build_gemma_model(source_or_config, device: torch.device | str = "cpu") -> torch.nn.Module:
    """``Gemma3TextModel`` with parameters on meta (filled later) and buffers on ``device``."""
    from transformers import Gemma3TextModel

    config = gemma_config(source_or_config)
    with _parameters_on_meta(), torch.device(device):
        model = Gemma3TextModel(config)
    return model.eval().requires_grad_(False)


def check_keys(source: GemmaSource, model: torch.nn.Module) -> None:
    """Strict: the file's text tensors must be exactly the model's parameters, with equal shapes."""
    params = {n: tuple(p.shape) for n, p in model.named_parameters()}
    missing = sorted(set(params) - set(source.tensors))
    unexpected = sorted(set(source.tensors) - set(params))
    wrong = sorted(k for k in set(params) & set(source.tensors) if not _shape_ok(source, k, params[k]))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected {_first(unexpected)}")
        if wrong:
            parts.append("wrong shape " + ", ".join(f"{k} {list(source.tensors[k][3])} vs {list(params[k])}" for k in wrong[:_SHOW]))
        raise _err(source.path, "the Gemma weights do not match a Gemma 3 text model: " + "; ".join(parts) + ".")


def _shape_ok(source: GemmaSource, name: str, shape: tuple) -> bool:
    """The stored tensor holds a parameter of ``shape`` (an NVFP4 weight may be padded to 16)."""
    spec = source.quant.get(name)
    if spec is not None and spec.format == "nvfp4":
        return nvfp4.fits(shape, spec.stored_shape, nvfp4.storage_shapes(*shape)[1]) if len(shape) == 2 else False
    return tuple(source.tensors[name][3]) == tuple(shape)


def read_weights(source: GemmaSource, names, dtype: torch.dtype, progress=None, shapes=None) -> dict[str, "StoredWeight"]:
    """Read ``names`` into CPU memory: quantized weights stay quantized (with their scales), others become ``dtype``.

    ``shapes``: the model's parameter shapes (the logical shape an NVFP4 weight is cropped to);
    default: the shapes ``inspect_gemma`` recorded.
    """
    from safetensors import safe_open

    by_file: dict[str, list[str]] = {}
    for n in names:
        by_file.setdefault(source.tensors[n][0], []).append(n)
    out: dict[str, StoredWeight] = {}
    done, total = 0, len(names)
    handles: dict[str, object] = {}

    def tensor(ref):
        file, key = ref
        if file not in handles:
            handles[file] = stack.enter_context(safe_open(file, framework="pt", device="cpu"))
        return handles[file].get_tensor(key)

    try:
        with contextlib.ExitStack() as stack:
            for file, group in by_file.items():
                for n in group:
                    _, key, _, logical = source.tensors[n]
                    t = tensor((file, key))
                    spec = source.quant.get(n)
                    shape = tuple(shapes[n]) if shapes is not None and n in shapes else tuple(logical)
                    if spec is None:
                        out[n] = StoredWeight(t.to(dtype) if t.is_floating_point() and t.dtype != dtype else t)
                    elif spec.format == "fp8":
                        out[n] = StoredWeight(t, tensor(spec.scale).float() if spec.scale else None)
                    else:  # nvfp4
                        out[n] = StoredWeight(t, tensor(spec.scale).float(), tensor(spec.block_scale), shape)
                    done += 1
                    if progress is not None:
                        try:
                            progress(done, total)
                        except BaseException as err:  # the host's Cancel: not the file's fault, passed on as is
                            err.openltx_from_progress = True
                            raise
    except Exception as err:
        if getattr(err, "openltx_from_progress", False):
            raise
        raise _err(source.path, f"reading the Gemma weights failed ({type(err).__name__}: {err}). Download the file again.") from err
    return out


@dataclass
class StoredWeight:
    """A weight as kept in memory, and how to turn it into a dense tensor on a device.

    * dense: ``data`` in the compute dtype;
    * fp8: ``data`` float8, ``scale`` its float32 scale (scalar or per row) or None;
    * NVFP4: ``data`` uint8 codes, ``scale`` = ``weight_scale_2``, ``block_scale`` the e4m3
      tiled block scales, ``shape`` the logical ``[N, K]``.
    """

    data: torch.Tensor
    scale: torch.Tensor | None = None
    block_scale: torch.Tensor | None = None
    shape: tuple[int, ...] | None = None

    @property
    def format(self) -> str:
        if self.block_scale is not None:
            return "nvfp4"
        return "fp8" if self.data.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) else "dense"

    def materialize(self, device, dtype: torch.dtype, non_blocking: bool = False) -> torch.Tensor:
        """The dense weight in ``dtype`` on ``device`` (dequantized there: quantized bytes travel)."""
        fmt = self.format
        if fmt == "nvfp4":
            data = self.data.to(device, non_blocking=non_blocking)
            block = self.block_scale.to(device, non_blocking=non_blocking)
            return nvfp4.dequantize(data, block, self.scale, self.shape, dtype=dtype, device=device)
        t = self.data.to(device, non_blocking=non_blocking)
        if fmt == "fp8":
            t = t.to(dtype if dtype != torch.float16 else torch.float32)
            if self.scale is not None:
                s = self.scale.to(device, non_blocking=non_blocking)
                t = t * (s.reshape(-1, 1) if s.numel() > 1 and t.dim() == 2 else s).to(t.dtype)
            return t.to(dtype)
        return t.to(dtype)

    def nbytes(self, dtype: torch.dtype) -> int:
        """Bytes of the materialized weight in ``dtype``."""
        numel = math.prod(self.shape) if self.shape is not None else self.data.numel()
        return numel * torch.empty((), dtype=dtype).element_size()


def storage_dtype_name(dtype: torch.dtype) -> str:
    return next((k for k, v in TORCH_DTYPES.items() if v == dtype), str(dtype))
