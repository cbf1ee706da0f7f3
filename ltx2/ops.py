"""The default ``operations`` namespace: plain ``torch.nn`` layers.

Model modules never instantiate ``torch.nn.Linear`` & co. directly; they take an
``operations`` object with the attributes below (ComfyUI's ``comfy.ops`` convention), so
cast-on-the-fly, quantized or offloaded layers can be swapped in without touching model code.
"""

from __future__ import annotations

import torch


class TorchOps:
    """Plain PyTorch layers, used when no host-provided namespace is injected."""

    Linear = torch.nn.Linear
    Conv1d = torch.nn.Conv1d
    Conv2d = torch.nn.Conv2d
    Conv3d = torch.nn.Conv3d
    ConvTranspose1d = torch.nn.ConvTranspose1d
    ConvTranspose2d = torch.nn.ConvTranspose2d
    LayerNorm = torch.nn.LayerNorm
    RMSNorm = torch.nn.RMSNorm
    GroupNorm = torch.nn.GroupNorm
    Embedding = torch.nn.Embedding


def resolve(operations) -> type:
    """Return ``operations`` or the plain-torch namespace when it is ``None``."""
    return TorchOps if operations is None else operations
