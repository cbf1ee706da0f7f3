"""The pack's V3 nodes.  Node classes only declare, validate and call down (no math here).

Each module below lists its node classes in a module-level ``NODES``; the pack registers them
in this order.  A module named here that is not present yet (a feature still being built) is
skipped; a module that is present but fails to import raises, so ComfyUI reports the error.

Every node registered here gets ``validation.guard``: non-finite or out-of-range numbers and
text that is not valid Unicode are refused at validation (HTTP 400), before anything runs.
"""

import importlib
import importlib.util

# Menu order: loaders, text, latents (with the LTX-2.5 duration head), conditioning, sampling, guidance,
# decode, audio, video, video in, long video, then the prompt enhancer, audio output, ID-LoRA reference
# audio, speed options and multi-GPU.
NODE_MODULES = ("loaders", "text", "latents", "duration", "conditioning", "sampling", "guidance", "decode", "audio",
                "video", "video_in", "long_video", "enhance", "audio_out", "id_lora", "speed", "multigpu")


def _collect() -> list:
    nodes = []
    for name in NODE_MODULES:
        if importlib.util.find_spec(f"{__name__}.{name}") is None:
            continue
        module = importlib.import_module(f"{__name__}.{name}")
        nodes.extend(module.NODES)
    from .validation import guard

    return [guard(node) for node in nodes]


NODE_LIST = _collect()

__all__ = ["NODE_LIST", "NODE_MODULES"]
