"""Bridges to Lightricks' ltx-core 1.0.0 (the reference oracle; test-only).

Builds the reference transformer from the same header config, and converts our inputs and
perturbations into its ``Modality`` / ``BatchedPerturbationConfig``.
"""

from __future__ import annotations

import math

import torch

from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer.modality import Modality
from ltx_core.model.transformer.model_configurator import LTXModelConfigurator

_KIND = {
    "video_self_attn": PerturbationType.SKIP_VIDEO_SELF_ATTN,
    "audio_self_attn": PerturbationType.SKIP_AUDIO_SELF_ATTN,
    "a2v_cross_attn": PerturbationType.SKIP_A2V_CROSS_ATTN,
    "v2a_cross_attn": PerturbationType.SKIP_V2A_CROSS_ATTN,
}


def reference_model(header: dict, state_dict: dict, dtype=torch.float32):
    """ltx-core's ``LTXModel`` from ``{"transformer": header}``, loaded strictly.

    Built on the meta device and filled with ``assign=True``: no random init of its own, and
    it shares the given tensors (the 19B benchmark keeps one copy of the weights).
    """
    with torch.device("meta"):
        model = LTXModelConfigurator.from_config({"transformer": header})
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.to(dtype).eval()


def to_modality(inp) -> Modality:
    return Modality(
        latent=inp.latent,
        sigma=inp.sigma,
        timesteps=inp.timesteps,
        positions=inp.positions,
        context=inp.context,
        enabled=inp.enabled,
        context_mask=inp.context_mask,
        attention_mask=inp.attention_mask,
    )


def to_perturbations(p, batch: int) -> BatchedPerturbationConfig:
    if p is None:
        return BatchedPerturbationConfig.empty(batch)
    items = []
    for rules in p.per_sample:
        items.append(
            PerturbationConfig(
                [Perturbation(_KIND[r.kind.value], None if r.blocks is None else sorted(r.blocks)) for r in rules]
            )
        )
    return BatchedPerturbationConfig(items)


def randomize_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter with reproducible random values of a sane scale."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 2 and "table" not in name:
                std = 1.0 / math.sqrt(p.shape[1])
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return module
