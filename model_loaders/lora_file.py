"""LTX-2 LoRA files: reading and checking them (no ComfyUI here; patching is ``host/lora.py``).

LTX LoRA files (Lightricks' trainer, IC-LoRAs, the distilled LoRA) hold, per adapted linear
layer ``L`` of the transformer, ``diffusion_model.L.lora_A.weight`` ``(r, in)`` and
``diffusion_model.L.lora_B.weight`` ``(out, r)`` and no ``alpha``.

IC-LoRAs store ``reference_downscale_factor`` in the safetensors metadata: the reference video
is encoded at ``1/factor`` of the output size and its positions scaled back by ``factor``.
"""

from __future__ import annotations

import logging
import os

import torch

from .safetensors_file import CheckpointError, load_tensors, read_header

log = logging.getLogger(__name__)

PREFIX = "diffusion_model."
A_SUFFIX, B_SUFFIX, ALPHA_SUFFIX = ".lora_A.weight", ".lora_B.weight", ".alpha"
DOWNSCALE_KEY = "reference_downscale_factor"


class LoraError(CheckpointError):
    """A LoRA file that is not an LTX-2 LoRA or does not fit the model."""


def reference_downscale_factor(path: str | os.PathLike) -> int:
    """The IC-LoRA ``reference_downscale_factor`` metadata (1 when absent)."""
    header = read_header(path)
    raw = (header.metadata or {}).get(DOWNSCALE_KEY)
    if raw is None:
        return 1
    try:
        value = int(float(raw))
    except ValueError:
        raise LoraError(f"{os.path.basename(path)}: metadata {DOWNSCALE_KEY}={raw!r} is not an integer") from None
    if value < 1:
        raise LoraError(f"{os.path.basename(path)}: metadata {DOWNSCALE_KEY}={value} must be at least 1")
    return value


def read_lora(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The LoRA's ``lora_A`` / ``lora_B`` tensors under ``diffusion_model.*`` keys.

    Bare keys (no ``diffusion_model.`` prefix) get the prefix; ``.alpha`` keys are dropped
    (ltx-core ignores them).  A file with no LTX-style LoRA pairs is refused.
    """
    name = os.path.basename(path)
    sd = load_tensors(path, read_header(path).tensors)
    pairs, alphas, other = {}, [], []
    for key, value in sd.items():
        if key.endswith(ALPHA_SUFFIX):
            alphas.append(key)
        elif key.endswith((A_SUFFIX, B_SUFFIX)):
            pairs[key if key.startswith(PREFIX) else PREFIX + key] = value
        else:
            other.append(key)
    if not pairs:
        raise LoraError(
            f"{name}: no LTX-2 LoRA weights (expected 'diffusion_model.<layer>.lora_A.weight' / '.lora_B.weight' "
            f"keys, found e.g. {sorted(sd)[:3]}); this does not look like an LTX-2 LoRA"
        )
    unpaired = sorted(
        k for k in pairs
        if (k.endswith(A_SUFFIX) and k[: -len(A_SUFFIX)] + B_SUFFIX not in pairs)
        or (k.endswith(B_SUFFIX) and k[: -len(B_SUFFIX)] + A_SUFFIX not in pairs)
    )  # fmt: skip
    if unpaired:
        raise LoraError(f"{name}: LoRA keys without their A/B partner: {unpaired[:5]}")
    if alphas:
        log.info("%s: ignoring %d alpha keys (LTX-2 LoRAs are fused as strength * B @ A)", name, len(alphas))
    if other:
        log.warning("%s: ignoring %d keys that are not LoRA pairs, e.g. %s", name, len(other), other[:3])
    return pairs


def write_tiny_lora(
    path: str | os.PathLike,
    weights: dict[str, torch.Tensor],
    *,
    rank: int = 2,
    seed: int = 0,
    layers: list[str] | None = None,
    downscale_factor: int | None = None,
    alpha: float | None = None,
) -> dict[str, torch.Tensor]:
    """Write a random LTX-format LoRA for the linear ``weights`` (bare transformer keys →
    tensors) to ``path``; returns what was written.  ``layers`` defaults to every 2-D
    ``*.weight`` of the attention projections.  For tests."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    if layers is None:
        layers = [k[: -len(".weight")] for k, v in weights.items()
                  if v.ndim == 2 and k.endswith(".weight") and (".to_q." in k or ".to_v." in k or ".to_out." in k)]  # fmt: skip
    out = {}
    for layer in layers:
        w = weights[layer + ".weight"]
        out[PREFIX + layer + A_SUFFIX] = torch.randn(rank, w.shape[1], generator=g) * 0.1
        out[PREFIX + layer + B_SUFFIX] = torch.randn(w.shape[0], rank, generator=g) * 0.1
        if alpha is not None:
            out[PREFIX + layer + ALPHA_SUFFIX] = torch.tensor(float(alpha))
    metadata = {DOWNSCALE_KEY: str(downscale_factor)} if downscale_factor is not None else None
    save_file(out, str(path), metadata=metadata)
    return out
