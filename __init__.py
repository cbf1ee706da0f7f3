"""OpenLTX: Lightricks' LTX-2 joint audio+video models for ComfyUI, in plain PyTorch.

ComfyUI loads this file as a package and calls ``comfy_entrypoint()`` (V3 node API).  No
``NODE_CLASS_MAPPINGS`` on purpose: ComfyUI looks for the V1 mappings first and would then
ignore the entry point.

Imported outside ComfyUI (tools, a test collector, an IDE) the node modules are skipped, so
the import is harmless; inside ComfyUI every import error propagates and ComfyUI reports it.
"""

import importlib.util

WEB_DIRECTORY = "./web"

if importlib.util.find_spec("comfy") is not None and importlib.util.find_spec("comfy_api") is not None:
    from comfy_api.v0_0_2 import ComfyExtension

    from .nodes import NODE_LIST

    class OpenLTXExtension(ComfyExtension):
        """The pack's node list."""

        async def get_node_list(self):
            return list(NODE_LIST)

    async def comfy_entrypoint() -> OpenLTXExtension:
        return OpenLTXExtension()
