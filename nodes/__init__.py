"""The pack's V3 nodes.  Node classes only declare, validate and call down (no math here)."""

from .latents import OpenLTXEmptyLatent
from .loaders import OpenLTXCheckpointLoader

NODE_LIST = [
    OpenLTXCheckpointLoader,
    OpenLTXEmptyLatent,
]

__all__ = ["NODE_LIST", "OpenLTXCheckpointLoader", "OpenLTXEmptyLatent"]
