"""Gemma 3 text encoder files -> a ``transformers`` ``Gemma3TextModel`` (text tower only).

Two layouts are read, headers first (no tensor data until the model is needed):

* a Hugging Face directory (``gemma-3-12b-it-qat-q4_0-unquantized``): ``config.json`` and
  ``model-*.safetensors`` with keys ``language_model.model.*`` (transformers 4.x saves) or
  ``model.language_model.*`` (5.x saves), plus ``vision_tower.*`` / ``multi_modal_projector.*``
  that text encoding never uses (skipped);
* a single ComfyUI file (``gemma_3_12B_it.safetensors``, ``gemma_3_12B_it_fp8_scaled.safetensors``):
  keys ``model.embed_tokens.weight``, ``model.layers.N.*``, ``model.norm.weight`` (ComfyUI's
  ``comfy/text_encoders/llama.py`` names, equal to transformers' under ``model.``), optional
  ``vision_model.*`` / ``multi_modal_projector.*`` (skipped), the tokenizer as a uint8 tensor
  ``spiece_model``, and for fp8 files float8 weights with a per-tensor scale in
  ``<layer>.scale_weight`` (legacy ``scaled_fp8`` marker) or ``<layer>.weight_scale`` (newer
  "comfy quant" files).  Weights are dequantized ``w8 * scale`` one layer at a time when the
  layer runs (``gemma_streaming.py``); input scales only matter for fp8 matmuls and are skipped.

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

from .gemma_tokenizer import find_tokenizer
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
# Not part of the text tower: vision tower, projector, LM head, tokenizer blob, quant markers.
_SKIPPED = re.compile(
    r"^(?:model\.)?(?:vision_tower|vision_model|multi_modal_projector)\.|(?:^|\.)lm_head\.|^spiece_model$|"
    r"(?:^|\.)scaled_fp8$|\.comfy_quant$|\.(?:scale_input|input_scale)$"
)
_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_FP8 = ("F8_E4M3", "F8_E5M2")
_UNSUPPORTED_QUANT = (".weight_scale_2", ".pre_quant_scale")
_SHOW = 8


def _err(path, message: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)}: {message}")


def _first(keys) -> str:
    keys = sorted(keys)
    more = f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(repr(k) for k in keys[:_SHOW]) + more


@dataclass
class GemmaSource:
    """What the headers of a Gemma file / directory say; no tensor data read.

    ``tensors`` maps a ``Gemma3TextModel`` parameter name to ``(file, key, safetensors dtype,
    shape)``; ``scales`` maps a parameter name to ``(file, key)`` of its fp8 scale.
    """

    path: str
    files: list[str]
    config: dict
    tensors: dict[str, tuple[str, str, str, tuple[int, ...]]]
    scales: dict[str, tuple[str, str]] = field(default_factory=dict)
    tokenizer: str | None = None  # directory or tokenizer.model next to the weights
    embedded_tokenizer: tuple[str, str] | None = None  # (file, key) of a ``spiece_model`` tensor
    file_stats: list[tuple[str, int, int]] = field(default_factory=list)  # (path, size, mtime_ns)

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def num_hidden_states(self) -> int:
        """Embedding output + one per layer: what ``output_hidden_states`` returns."""
        return int(self.config["num_hidden_layers"]) + 1

    @property
    def is_fp8(self) -> bool:
        return any(d in _FP8 for _, _, d, _ in self.tensors.values())

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
                "(gemma_3_12B_it.safetensors or google/gemma-3-12b-it).",
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
    scales: dict = {}
    embedded = None
    unexpected = []
    for key in sorted(keys):
        h = owner[key]
        entry = h.tensors[key]
        if key.endswith(_UNSUPPORTED_QUANT) or entry.dtype in ("U8", "I8") and key != "spiece_model":
            raise _err(
                path,
                f"tensor {key!r} ({entry.dtype}) belongs to a 4-bit / mixed quantized format (NVFP4, fp4_mixed, ...) "
                "that OpenLTX does not read yet. Use gemma_3_12B_it.safetensors (bf16) or "
                "gemma_3_12B_it_fp8_scaled.safetensors.",
            )
        if key == "spiece_model":
            embedded = (str(h.path), key)
            continue
        if _SKIPPED.search(key):
            continue
        if not key.startswith(prefix):
            unexpected.append(key)
            continue
        name = key[len(prefix) :]
        scale_suffix = next((s for s in _SCALE_SUFFIXES if name.endswith(s)), None)
        if scale_suffix:
            scales[name[: -len(scale_suffix)] + ".weight"] = (str(h.path), key)
        else:
            tensors[name] = (str(h.path), key, entry.dtype, entry.shape)
    if unexpected:
        raise _err(path, f"found tensors that belong to no part of Gemma 3: {_first(unexpected)}. Is this a merged file?")
    stray = [k for k in scales if k not in tensors]
    if stray:
        raise _err(path, f"found fp8 scales without a weight: {_first(stray)}. The file is corrupt: download it again.")

    shapes = _shape_config(path, tensors)
    config = dict(GEMMA3_FAMILY)
    config["layer_types"] = [
        "full_attention" if (i + 1) % SLIDING_PATTERN == 0 else "sliding_attention"
        for i in range(shapes["num_hidden_layers"])
    ]
    if path.is_dir():
        declared = _hf_text_config(path)
        conflicts = {k: (declared[k], v) for k, v in shapes.items() if k in declared and declared[k] != v}
        if conflicts:
            said = ", ".join(f"{k}: config.json {a}, weights {b}" for k, (a, b) in conflicts.items())
            raise _err(path, f"config.json does not match the weights ({said}). Download the folder again.")
        config.update(declared)
    config.update(shapes)

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
                "tokenizer.model from the Gemma 3 release (google/gemma-3-12b-it) next to the weights.",
            )
    stats = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return GemmaSource(str(path), [str(f) for f in files], config, tensors, scales, tok, embedded, stats)


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
    wrong = sorted(k for k in set(params) & set(source.tensors) if params[k] != tuple(source.tensors[k][3]))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected {_first(unexpected)}")
        if wrong:
            parts.append("wrong shape " + ", ".join(f"{k} {list(source.tensors[k][3])} vs {list(params[k])}" for k in wrong[:_SHOW]))
        raise _err(source.path, "the Gemma weights do not match a Gemma 3 text model: " + "; ".join(parts) + ".")


def read_weights(source: GemmaSource, names, dtype: torch.dtype, progress=None) -> dict[str, "StoredWeight"]:
    """Read ``names`` into CPU memory: fp8 weights stay fp8 (with their scale), others become ``dtype``."""
    from safetensors import safe_open

    by_file: dict[str, list[str]] = {}
    for n in names:
        by_file.setdefault(source.tensors[n][0], []).append(n)
    out: dict[str, StoredWeight] = {}
    done, total = 0, len(names)
    try:
        for file, group in by_file.items():
            with safe_open(file, framework="pt", device="cpu") as f:
                for n in group:
                    _, key, sdtype, _ = source.tensors[n]
                    t = f.get_tensor(key)
                    scale = None
                    if sdtype in _FP8:
                        if n in source.scales:
                            sfile, skey = source.scales[n]
                            with safe_open(sfile, framework="pt", device="cpu") as sf:
                                scale = sf.get_tensor(skey).float()
                    elif t.is_floating_point() and t.dtype != dtype:
                        t = t.to(dtype)
                    out[n] = StoredWeight(t, scale)
                    done += 1
                    if progress is not None:
                        progress(done, total)
    except Exception as err:
        raise _err(source.path, f"reading the Gemma weights failed ({type(err).__name__}: {err}). Download the file again.") from err
    return out


@dataclass
class StoredWeight:
    """A weight as kept in memory: ``data`` (file dtype for fp8) and the fp8 ``scale`` or None."""

    data: torch.Tensor
    scale: torch.Tensor | None = None

    def materialize(self, device, dtype: torch.dtype, non_blocking: bool = False) -> torch.Tensor:
        t = self.data.to(device, non_blocking=non_blocking)
        if self.data.dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
            t = t.to(dtype if dtype != torch.float16 else torch.float32)
            if self.scale is not None:
                s = self.scale.to(device, non_blocking=non_blocking)
                t = t * (s.reshape(-1, 1) if s.numel() > 1 and t.dim() == 2 else s).to(t.dtype)
            return t.to(dtype)
        return t.to(dtype)

    def nbytes(self, dtype: torch.dtype) -> int:
        return self.data.numel() * torch.empty((), dtype=dtype).element_size()


def storage_dtype_name(dtype: torch.dtype) -> str:
    return next((k for k, v in TORCH_DTYPES.items() if v == dtype), str(dtype))
