"""Small LTX-2 checkpoints for the quantized-format tests (widths that fit GGUF K-quant blocks)."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from openltx.ltx2 import positions as P
from openltx.ltx2.config import TransformerConfig
from openltx.ltx2.transformer import LTXAVTransformer
from openltx.model_loaders import tiny_layouts as T

PREFIX = "model.diffusion_model."


def small_header(heads: int = 2, head_dim: int = 128, audio_head_dim: int = 128, layers: int = 2) -> dict:
    """The tiny 2.0 header (the published key set) with streams wide enough (256) for 256-value K-quant blocks."""
    h = T.tiny_transformer_header("2.0")
    h.update(num_layers=layers, num_attention_heads=heads, attention_head_dim=head_dim,
             audio_num_attention_heads=heads, audio_attention_head_dim=audio_head_dim,
             cross_attention_dim=heads * head_dim, audio_cross_attention_dim=heads * audio_head_dim,
             caption_channels=256)
    return h


def write_small_checkpoint(path, header: dict | None = None, dtype=torch.bfloat16, seed: int = 0) -> dict:
    """A transformer-only official-layout file with random weights; returns its bare state dict."""
    header = header or small_header()
    cfg = TransformerConfig.from_header({**header, "audio_in_channels": T.TINY_AUDIO_IN_CHANNELS})
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in LTXAVTransformer(cfg).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in shapes.items():
        t = T.random_tensor(k, shape, g)
        if k.endswith(".weight") and len(shape) == 2:
            t = t * (1.0 / shape[1] ** 0.5) / max(t.std().item(), 1e-6)  # unit-gain Linears keep activations O(1)
        sd[k] = t.to(dtype).contiguous()
    metadata = {"config": json.dumps({"transformer": header}), "model_version": "2.0.0"}
    save_file({PREFIX + k: v for k, v in sd.items()}, str(path), metadata=metadata)
    return sd


def run(patcher, seed: int = 3) -> torch.Tensor:
    """One forward of the MODEL's diffusion model on fixed inputs; video and audio outputs flattened."""
    dm = patcher.model.diffusion_model
    cc = patcher.model.model_config
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(1, 128, 2, 2, 2, generator=g)
    audio = torch.randn(1, 8, 9, 16, generator=g)
    ctx_v = torch.randn(1, 4, cc.video_context_width, generator=g)
    ctx_a = torch.randn(1, 4, cc.audio_context_width, generator=g)
    dt = patcher.model.manual_cast_dtype or dm.dtype
    with torch.no_grad():
        v, a = dm([video.to(dt), audio.to(dt)], torch.tensor([0.6]), context=ctx_v.to(dt), audio_context=ctx_a.to(dt),
                  frame_rate=24.0)
    return torch.cat([v.float().flatten(), a.float().flatten()])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


__all__ = ["small_header", "write_small_checkpoint", "run", "rel", "P"]
