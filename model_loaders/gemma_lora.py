"""LoRAs for the Gemma 3 text encoder (``gemma-3-12b-it-abliterated_lora_rank64_bf16.safetensors``).

The Comfy-Org LTX-2 templates apply such a LoRA to Gemma.  The published file holds, per
adapted Linear ``M`` (rank 64, bf16, no ``alpha``)::

    text_encoders.transformer.model.layers.N.self_attn.q_proj.lora_down.weight   (r, in)
    text_encoders.transformer.model.layers.N.self_attn.q_proj.lora_up.weight     (out, r)

plus some ``text_encoders.transformer.vision_model.*`` modules of Gemma's vision tower, which
LTX never runs (ignored, with one log line).  Other spellings are accepted too: PEFT's
``lora_A`` / ``lora_B``, and the wrappers ``text_encoders.`` / ``transformer.`` /
``language_model.`` / ``model.`` in any combination (they all end at ``layers.N...``, the
``Gemma3TextModel`` parameter names).

The merged weight is ComfyUI's: ``W + strength * (alpha / rank) * up @ down``, with
``alpha / rank = 1`` when the file has no ``alpha`` (the published one has none), computed in
float32 on the device where the layer runs (``merge``), so quantized Gemma weights (fp8,
NVFP4) take LoRAs too.  ``inspect_gemma_lora`` checks every key and shape from the header;
tensor data is read only when Gemma is built (``read_gemma_lora``).
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field

import torch

from .config_sources import listing
from .safetensors_file import CheckpointError, load_tensors, read_header

log = logging.getLogger(__name__)

PAIRS = ((".lora_down.weight", ".lora_up.weight"), (".lora_A.weight", ".lora_B.weight"))
ALPHA = ".alpha"
_WRAPPERS = ("text_encoders.", "transformer.", "base_model.model.", "model.", "language_model.")
_TEXT_ROOTS = ("layers.", "embed_tokens", "norm")
_NOT_RUN = re.compile(r"(?:^|\.)(?:vision_model|vision_tower|multi_modal_projector)\.")
_SHOW = 5


class GemmaLoraError(CheckpointError):
    """A LoRA file that does not fit the Gemma text encoder."""


def _err(path, message: str) -> GemmaLoraError:
    return GemmaLoraError(f"{os.fspath(path)}: {message}")


def parameter_name(module: str) -> str | None:
    """LoRA module path -> ``Gemma3TextModel`` module path (``layers.7.self_attn.q_proj``), or None."""
    rest = module
    while not rest.startswith(_TEXT_ROOTS):
        wrapper = next((w for w in _WRAPPERS if rest.startswith(w)), None)
        if wrapper is None:
            return None
        rest = rest[len(wrapper) :]
    return rest


@dataclass
class GemmaLoraSpec:
    """What a Gemma LoRA file's header says: Gemma weight name -> ``(down key, up key, alpha key)``."""

    path: str
    layers: dict[str, tuple[str, str, str | None]]
    rank: dict[str, int]
    ignored: list[str] = field(default_factory=list)  # vision-tower modules (never run)
    file_stat: tuple[int, int] = (0, 0)  # size, mtime_ns

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def identity(self) -> list:
        return [os.path.abspath(self.path), *self.file_stat]


def inspect_gemma_lora(path: str | os.PathLike, weight_shape) -> GemmaLoraSpec:
    """Check a Gemma LoRA's keys and shapes against the text model, from the header only.

    Args:
        weight_shape: ``name -> shape | None`` for a ``Gemma3TextModel`` weight name
            (``layers.0.self_attn.q_proj.weight``); None when the model has no such weight.
    Raises:
        GemmaLoraError: no LoRA pairs, a pair missing its partner, a module that is not in
            Gemma 3's text model, or shapes that do not fit (a LoRA for another model size).
    """
    header = read_header(path)
    keys = set(header.tensors)
    modules: dict[str, tuple[str, str]] = {}
    other = []
    for key in sorted(keys):
        pair = next((p for p in PAIRS if key.endswith(p[0])), None)
        if pair is not None:
            modules[key[: -len(pair[0])]] = (key, key[: -len(pair[0])] + pair[1])
        elif not key.endswith(ALPHA) and not any(key.endswith(p[1]) for p in PAIRS):
            other.append(key)
    if not modules:
        raise _err(path, "expected a LoRA for Gemma 3 (keys like 'text_encoders.transformer.model.layers.0.self_attn."
                   f"q_proj.lora_down.weight' / '.lora_up.weight'), found {_listing(keys)}.")  # fmt: skip
    if other:
        raise _err(path, f"found LoRA tensors of a kind OpenLTX does not apply (DoRA, LoCon, ...): {_listing(other)}. "
                   "Use a plain LoRA (lora_down / lora_up pairs).")  # fmt: skip
    ups = {up for _, up in modules.values()}
    orphans = [k for k in keys if any(k.endswith(p[1]) for p in PAIRS) and k not in ups]
    lonely = [down for down, up in modules.values() if up not in keys]
    if orphans or lonely:
        raise _err(path, f"LoRA tensors without their down/up partner: {_listing(orphans + lonely)}. The file is corrupt.")

    layers, rank, ignored, unknown, wrong = {}, {}, [], [], []
    for module, (down, up) in modules.items():
        if _NOT_RUN.search(module):
            ignored.append(module)
            continue
        target = parameter_name(module)
        shape = weight_shape(target + ".weight") if target is not None else None
        if shape is None:
            unknown.append(module)
            continue
        d, u = header.tensors[down].shape, header.tensors[up].shape
        if len(d) != 2 or len(u) != 2 or d[0] != u[1] or (u[0], d[1]) != tuple(shape):
            wrong.append(f"{module}: up {list(u)} @ down {list(d)} vs weight {list(shape)}")
            continue
        alpha = module + ALPHA
        layers[target + ".weight"] = (down, up, alpha if alpha in keys else None)
        rank[target + ".weight"] = d[0]
    if unknown:
        raise _err(path, f"{len(unknown)} LoRA module(s) are not in Gemma 3's text model: {_listing(unknown)}. Use a "
                   "LoRA made for Gemma 3 12B (the text encoder of LTX-2).")  # fmt: skip
    if wrong:
        raise _err(path, f"LoRA shapes do not fit this Gemma: {'; '.join(wrong[:_SHOW])}. The LoRA was made for "
                   "another model size: use one made for Gemma 3 12B.")  # fmt: skip
    if not layers:
        raise _err(path, f"the LoRA only adapts Gemma's vision tower ({len(ignored)} modules), which LTX-2 never "
                   "runs: it changes nothing here.")  # fmt: skip
    if ignored:
        log.info("%s: %d vision-tower LoRA modules ignored (LTX-2 encodes text only), %d text layers applied",
                 os.path.basename(path), len(ignored), len(layers))  # fmt: skip
    st = os.stat(path)
    return GemmaLoraSpec(os.fspath(path), layers, rank, ignored, (st.st_size, st.st_mtime_ns))


def read_gemma_lora(spec: GemmaLoraSpec) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """Weight name -> ``(up (out, r), down (r, in), alpha / rank)``, tensors as stored (CPU)."""
    keys = [k for triple in spec.layers.values() for k in triple if k is not None]
    sd = load_tensors(spec.path, keys)
    out = {}
    for name, (down, up, alpha) in spec.layers.items():
        factor = float(sd[alpha].float().item()) / spec.rank[name] if alpha is not None else 1.0
        if not math.isfinite(factor):
            raise _err(spec.path, f"the alpha of {down[: -len('.lora_down.weight')]!r} is not a finite number.")
        out[name] = (sd[up], sd[down], factor)
    return out


def merge(weight: torch.Tensor, adapters) -> torch.Tensor:
    """``weight + Σ strength · factor · up @ down`` in float32 on ``weight``'s device, returned in its dtype.

    Args:
        weight: the dense ``(out, in)`` weight (already dequantized).
        adapters: ``(up, down, factor, strength)`` tuples.
    """
    if not adapters:
        return weight
    w = weight.to(torch.float32)
    for up, down, factor, strength in adapters:
        up = up.to(device=w.device, dtype=torch.float32)
        down = down.to(device=w.device, dtype=torch.float32)
        w = w + (float(strength) * factor) * (up @ down)
    return w.to(weight.dtype)


def _listing(keys) -> str:
    return listing(keys, _SHOW)
