"""How much to keep on the GPU, and how block streaming meets ComfyUI's ModelPatcher.

Nothing here imports ComfyUI at module level: ``auto_budget`` takes the free-memory number
as an argument and asks ``comfy.model_management`` only when it is not given, and
``attach_to_patcher`` imports ``comfy.patcher_extension`` when called.

Coexisting with ComfyUI
-----------------------
ComfyUI loads a MODEL before sampling (``load_models_gpu``): fully when it fits, otherwise
partially (its "lowvram" mode: some ``comfy.ops`` layers get ``comfy_cast_weights`` and keep
their weights on the CPU, copied synchronously per layer at every call).  Block streaming is
applied *after* that, at the first model call of each sampling run, through an APPLY_MODEL
wrapper on the patcher:

* the budget is what this model already holds on the GPU plus the device's free memory
  minus a reserve for activations (``auto_budget``), or the user's fixed number of GB,
  capped the same way -- so everything ComfyUI has loaded (text encoder, VAE, other models)
  keeps its room;
* ``enable_block_streaming`` then keeps the non-block layers and as many blocks as fit on the
  GPU and moves the other blocks' tensors (as ComfyUI left them: patched with LoRA when
  ComfyUI patched in place, or the plain weights with LoRA applied at cast time by
  ComfyUI's ``weight_function`` in lowvram mode) to pinned CPU memory, streaming them back
  per call with prefetch.  When everything fits, nothing is hooked and nothing changes;
* if ComfyUI later moves or re-patches the model (unload, a LoRA change), the handle sees
  it (``BlockStreaming.is_current``) and is rebuilt on the next call.
* ComfyUI's own bookkeeping still counts evicted blocks as loaded, so it may free *more*
  memory for other models than needed: conservative, never an OOM source.

Wiring into the loader (for the lead)
-------------------------------------
Add an ``offload`` string input to ``OpenLTXCheckpointLoader`` (options ``"auto"``,
``"off"``, or a number of GB such as ``"8"``; tooltip: "Keep only as many transformer blocks
on the GPU as fit; stream the rest from CPU memory. auto: use free VRAM after what ComfyUI
has loaded"), and after ``load_ltx2_model(...)`` returned the ModelPatcher call::

    from ..host.offload_policy import attach_to_patcher
    attach_to_patcher(patcher, offload)      # "off" -> no-op; "auto"; "8" (GB)

``parse_offload`` validates the option string (raise its ``ValueError`` as the node error).
"""

from __future__ import annotations

import weakref

import torch

try:
    from .offload import BlockStreaming, enable_block_streaming, tensor_bytes
except ImportError:  # pragma: no cover - imported as a top-level module
    from offload import BlockStreaming, enable_block_streaming, tensor_bytes

GiB = 2**30
# Working memory of one transformer forward beyond the weights: ~1 GB of per-block
# activations at 768x512x121 in bf16 (QUANT_MEMORY_SPEED §2.4) plus copies of the inputs.
DEFAULT_RESERVE_BYTES = int(1.5 * GiB)
# Per video token of activations in one block (hidden, FF inner, adaLN rows), bf16, 19B;
# 1 GB / 6,144 tokens at 768x512x121 (QUANT_MEMORY_SPEED §2.4), rounded up.
ACTIVATION_BYTES_PER_TOKEN = 180_000
WRAPPER_KEY = "openltx_offload"


def parse_offload(option) -> str | int | None:
    """``"off"``/``None`` -> None, ``"auto"`` -> "auto", ``"8"``/``"8GB"``/``8.5`` -> bytes."""
    if option is None:
        return None
    if isinstance(option, (int, float)) and not isinstance(option, bool):
        gb = float(option)
    else:
        text = str(option).strip().lower()
        if text in ("", "off", "none", "0"):
            return None
        if text == "auto":
            return "auto"
        try:
            gb = float(text.removesuffix("gb").strip())
        except ValueError:
            raise ValueError(
                f"offload option {option!r} is not understood: expected 'auto', 'off' or a VRAM budget in GB "
                "such as '8' or '12.5'"
            ) from None
    if gb <= 0:
        return None
    return int(gb * GiB)


def device_bytes(model: torch.nn.Module, device) -> int:
    """Bytes of ``model``'s parameters and buffers that are on ``device`` now."""
    device = torch.device(device)
    same = (lambda d: d.type == device.type and (device.index is None or d.index in (None, device.index)))
    return sum(tensor_bytes(t) for t in (*model.parameters(), *model.buffers()) if same(t.device))


def activation_reserve(video_tokens: int = 0) -> int:
    """Reserve for activations: the default, or more for long token sequences."""
    return max(DEFAULT_RESERVE_BYTES, video_tokens * ACTIVATION_BYTES_PER_TOKEN + GiB // 2)


def auto_budget(model: torch.nn.Module, device, *, free_bytes: int | None = None,
                reserve_bytes: int | None = None) -> int:
    """Weight bytes ``model`` may keep on ``device``: what it holds there now, plus the
    device's free memory, minus ``reserve_bytes`` (default ``DEFAULT_RESERVE_BYTES``).

    ``free_bytes`` defaults to ``comfy.model_management.get_free_memory(device)`` (imported
    here, so the rest of the module runs without ComfyUI), which counts memory ComfyUI
    could still reclaim from its cache as used: models it has loaded keep their room.
    """
    if free_bytes is None:
        import comfy.model_management as mm

        free_bytes = mm.get_free_memory(torch.device(device))
    reserve = DEFAULT_RESERVE_BYTES if reserve_bytes is None else reserve_bytes
    return max(0, device_bytes(model, device) + int(free_bytes) - int(reserve))


# ----------------------------------------------------------------------------- ComfyUI
_HANDLES: "weakref.WeakKeyDictionary[torch.nn.Module, BlockStreaming]" = weakref.WeakKeyDictionary()


def streaming_handle(diffusion_model: torch.nn.Module) -> BlockStreaming | None:
    """The handle ``attach_to_patcher`` installed on this module, if any (for tests/logs)."""
    return _HANDLES.get(diffusion_model)


def _video_tokens(x) -> int:
    """Upper estimate of video tokens per sample: latent elements / 128 channels (ComfyUI
    hands the packed ``(B, 1, N)`` joint latent or a ``(B, 128, F, H, W)`` video one)."""
    t = x[0] if isinstance(x, (list, tuple)) else x
    return int(t[0].numel() // 128) if t.ndim >= 2 else 0


def ensure_streaming(diffusion_model: torch.nn.Module, option, device, *, video_tokens: int = 0,
                     prefetch: int = 1, free_bytes: int | None = None) -> BlockStreaming | None:
    """Enable (or rebuild, when ComfyUI moved the weights) streaming for ``option``."""
    budget_opt = parse_offload(option)
    if budget_opt is None:
        return None
    handle = _HANDLES.get(diffusion_model)
    if handle is not None and handle.is_current():
        return handle
    if handle is not None:
        handle.disable()
    budget = auto_budget(diffusion_model, device, free_bytes=free_bytes,
                         reserve_bytes=activation_reserve(video_tokens))
    if budget_opt != "auto":
        budget = min(budget, budget_opt)  # a fixed budget never exceeds what is free
    handle = enable_block_streaming(diffusion_model, budget, device, prefetch=prefetch)
    _HANDLES[diffusion_model] = handle
    return handle


def attach_to_patcher(patcher, offload="auto", *, prefetch: int = 1) -> None:
    """Stream the transformer blocks of a ComfyUI MODEL (``ModelPatcher``) while sampling.

    Adds an APPLY_MODEL wrapper (key ``"openltx_offload"``, carried over by ``clone()``) that
    calls ``ensure_streaming`` on ``patcher.model.diffusion_model`` before each model call,
    on the device the inputs are on.  ``offload``: ``"off"`` (does nothing), ``"auto"``, or
    a budget in GB.  Nothing is moved until sampling loads the model.
    """
    if parse_offload(offload) is None:
        return
    import comfy.patcher_extension as pe

    def wrapper(executor, x, *args, **kwargs):
        base = executor.class_obj
        device = (x[0] if isinstance(x, (list, tuple)) else x).device
        if device.type != "cpu":  # ComfyUI's CPU mode: nothing to offload to
            ensure_streaming(base.diffusion_model, offload, device, video_tokens=_video_tokens(x),
                             prefetch=prefetch)
        return executor(x, *args, **kwargs)

    patcher.remove_wrappers_with_key(pe.WrappersMP.APPLY_MODEL, WRAPPER_KEY)
    patcher.add_wrapper_with_key(pe.WrappersMP.APPLY_MODEL, WRAPPER_KEY, wrapper)


def detach_from_patcher(patcher) -> None:
    """Undo ``attach_to_patcher``: remove the wrapper and the hooks (blocks move to the GPU
    on ComfyUI's next load)."""
    import comfy.patcher_extension as pe

    patcher.remove_wrappers_with_key(pe.WrappersMP.APPLY_MODEL, WRAPPER_KEY)
    handle = _HANDLES.pop(patcher.model.diffusion_model, None)
    if handle is not None:
        handle.disable()
