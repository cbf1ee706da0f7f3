"""LTX-2 LoRA files on our ComfyUI MODEL.

LTX LoRA files (Lightricks' trainer, IC-LoRAs, the distilled LoRA) hold, per adapted linear
layer ``L`` of the transformer, ``diffusion_model.L.lora_A.weight`` ``(r, in)`` and
``diffusion_model.L.lora_B.weight`` ``(out, r)`` and no ``alpha``.  ltx-core fuses them as
``W' = W + Σ strength·(B @ A)`` (``loader/fuse_loras.py``: no ``alpha / rank`` factor).

Our MODEL's diffusion model keeps the checkpoint's bare keys, so ComfyUI's generic key map
(``comfy.lora.model_lora_keys_unet``: ``"diffusion_model.L"`` → ``"diffusion_model.L.weight"``)
matches these names and core ``LoraLoaderModelOnly`` works unchanged.  ComfyUI applies
``W + strength·(alpha/rank)·(B @ A)`` with ``alpha/rank = 1`` when no alpha key is present,
i.e. exactly ltx-core's rule.  A file that does carry ``.alpha`` keys would be scaled by
ComfyUI and not by ltx-core: ``apply_lora`` (OpenLTX LoRA Loader) drops them and follows
ltx-core.

Reading the files lives in ``model_loaders/lora_file.py``.
"""

from __future__ import annotations

import comfy.lora
import comfy.lora_convert

from ..model_loaders.lora_file import (  # noqa: F401 - re-exported for the nodes
    A_SUFFIX,
    B_SUFFIX,
    LoraError,
    read_lora,
    reference_downscale_factor,
)


def apply_lora(model_patcher, lora_sd: dict[str, torch.Tensor], strength: float, source: str = "LoRA"):
    """A clone of ``model_patcher`` with the LoRA added as ComfyUI weight patches.

    Raises ``LoraError`` when a LoRA layer does not exist in the model or its shapes differ
    (a LoRA for another model size), naming the layers.
    """
    key_map = comfy.lora.model_lora_keys_unet(model_patcher.model, {})
    layers = sorted({k[: -len(A_SUFFIX)] for k in lora_sd if k.endswith(A_SUFFIX)})
    missing = [layer for layer in layers if layer not in key_map]
    if missing:
        raise LoraError(
            f"{source}: {len(missing)} of its {len(layers)} layers are not in this LTX-2 model, e.g. {missing[:3]}; "
            "use a LoRA trained for this model (LTX-2.0 19B vs LTX-2.3 22B)"
        )
    state = model_patcher.model.state_dict()
    wrong = []
    for layer in layers:
        weight = state[key_map[layer]]
        a, b = lora_sd[layer + A_SUFFIX], lora_sd[layer + B_SUFFIX]
        if a.ndim != 2 or b.ndim != 2 or (b.shape[0], a.shape[1]) != tuple(weight.shape) or a.shape[0] != b.shape[1]:
            wrong.append(f"{layer}: B{tuple(b.shape)} @ A{tuple(a.shape)} vs weight {tuple(weight.shape)}")
    if wrong:
        raise LoraError(f"{source}: LoRA shapes do not fit the model: {wrong[:3]}; use a LoRA trained for this model")
    patches = comfy.lora.load_lora(comfy.lora_convert.convert_lora(dict(lora_sd)), key_map)
    patched = model_patcher.clone()
    added = patched.add_patches(patches, float(strength))
    if len(added) != len(layers):  # pragma: no cover - key map and patcher disagree
        raise LoraError(f"{source}: only {len(added)} of {len(layers)} LoRA layers could be patched")
    return patched
