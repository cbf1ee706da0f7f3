"""Tiny LTX text parts (projection + connectors) in the layouts users download, made at test time.

Headers are the published ones (``data/real_headers/*.config.json``, verbatim) with the shape
keys scaled down and nothing added; tensors follow the published key vocabulary
(``../shared/real_headers/community_layouts.md`` section 0), enumerated here on their own (not
from our modules), so a naming mistake in the loader shows.

Tiny widths:

* 2.0: a 128-wide Gemma stand-in (``caption_channels`` 128), V1 projection to 128, ungated
  connectors of 1 head x 128 (the released head width, so files without a header resolve);
* 2.3: a 12-wide Gemma (or ``TINY16``'s 16 for the fp4 Gemma), V2 projection to 16 / 8, gated
  connectors video 2 x 8, audio 2 x 4 (heads readable from ``to_gate_logits``).

Both: 2 connector layers, 128 registers, 3 hidden states (embeddings + 2 Gemma layers).

File layouts (``write_layout``): the bundle (with or without metadata), transformer-only files
with or without connectors, Kijai's 2.0 connector file and 2.3 projection file, an
unsloth-style connector file, a Gemma file holding the projection, fp8 connectors with
``.comfy_quant`` markers, and a GGUF with the connectors and a plain ``config`` KV.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch
from real_aux_fixtures import published_config
from safetensors.torch import save_file

HIDDEN_STATES = 3
REGISTERS = 128
LAYERS = 2
DIT = "model.diffusion_model."
PROJ = "text_embedding_projection."


def widths(version: str, gemma_width: int | None = None) -> dict:
    if version == "2.0":
        w = gemma_width or 128
        return {"gemma": w, "video": (w // 128, 128), "audio": (w // 128, 128), "gated": False}
    return {"gemma": gemma_width or 12, "video": (2, 8), "audio": (2, 4), "gated": True}


def tiny_config(version: str, gemma_width: int | None = None) -> dict:
    """The published header config with the shape keys scaled to the tiny widths (no key added)."""
    config = published_config(version)
    t = config["transformer"]
    before = set(t)
    w = widths(version, gemma_width)
    (vh, vd), (ah, ad) = w["video"], w["audio"]
    t.update(caption_channels=w["gemma"], connector_num_layers=LAYERS, num_layers=2, connector_num_attention_heads=vh,
             connector_attention_head_dim=vd, connector_num_learnable_registers=REGISTERS)  # fmt: skip
    if version == "2.3":
        t.update(audio_connector_num_attention_heads=ah, audio_connector_attention_head_dim=ad, num_attention_heads=vh,
                 attention_head_dim=vd, cross_attention_dim=vh * vd, audio_num_attention_heads=ah,
                 audio_attention_head_dim=ad, audio_cross_attention_dim=ah * ad)  # fmt: skip
    else:  # the 2.0 transformer's own widths are not the text widths; scale them anyway
        t.update(num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16, audio_num_attention_heads=2,
                 audio_attention_head_dim=4, audio_cross_attention_dim=8)  # fmt: skip
    assert set(t) == before, set(t) ^ before
    return config


def metadata(version: str, config: dict | None) -> dict[str, str] | None:
    if config is None:
        return None
    meta = {"config": json.dumps(config)}
    if version == "2.3":
        meta["model_version"] = "2.3.0"
    return meta


# ------------------------------------------------------------------------------ tensors
def _value(key: str, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    randn = torch.randn(shape, generator=g)
    if key.endswith("learnable_registers"):
        return torch.rand(shape, generator=g) * 2 - 1
    if key.endswith(("q_norm.weight", "k_norm.weight")):
        return 1.0 + 0.3 * randn  # sharp: position errors show
    if key.endswith(".weight") and len(shape) == 2:
        return randn / math.sqrt(shape[1])
    return 0.05 * randn


def projection_keys(version: str, gemma_width: int | None = None) -> dict[str, tuple[int, ...]]:
    w = widths(version, gemma_width)
    flat = w["gemma"] * HIDDEN_STATES
    if version == "2.0":
        return {PROJ + "aggregate_embed.weight": (w["video"][0] * w["video"][1], flat)}
    v, a = w["video"][0] * w["video"][1], w["audio"][0] * w["audio"][1]
    return {PROJ + "video_aggregate_embed.weight": (v, flat), PROJ + "video_aggregate_embed.bias": (v,),
            PROJ + "audio_aggregate_embed.weight": (a, flat), PROJ + "audio_aggregate_embed.bias": (a,)}  # fmt: skip


def connector_keys(version: str, prefix: str = DIT) -> dict[str, tuple[int, ...]]:
    """``<prefix>{video,audio}_embeddings_connector.*`` (14 tensors a layer, 16 with the gates)."""
    w = widths(version)
    out = {}
    for stream in ("video", "audio"):
        heads, head_dim = w[stream]
        dim = heads * head_dim
        base = f"{prefix}{stream}_embeddings_connector."
        out[base + "learnable_registers"] = (REGISTERS, dim)
        for i in range(LAYERS):
            b = f"{base}transformer_1d_blocks.{i}."
            projections = ["to_q", "to_k", "to_v", "to_out.0"] + (["to_gate_logits"] if w["gated"] else [])
            for name in projections:
                rows = heads if name == "to_gate_logits" else dim
                out[f"{b}attn1.{name}.weight"], out[f"{b}attn1.{name}.bias"] = (rows, dim), (rows,)
            out[f"{b}attn1.q_norm.weight"] = out[f"{b}attn1.k_norm.weight"] = (dim,)
            out[f"{b}ff.net.0.proj.weight"], out[f"{b}ff.net.0.proj.bias"] = (4 * dim, dim), (4 * dim,)
            out[f"{b}ff.net.2.weight"], out[f"{b}ff.net.2.bias"] = (dim, 4 * dim), (dim,)
    return out


def tensors(layout: dict[str, tuple[int, ...]], seed: int = 0, rename=lambda k: k) -> dict[str, torch.Tensor]:
    """Random values; the same key holds the same value in every file (renamed keys keep theirs)."""
    return {rename(k): _value(k, s, seed).contiguous() for k, s in layout.items()}


def text_tensors(version: str, gemma_width: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """The bundle's text keys: projection + connectors under ``model.diffusion_model.``."""
    return tensors({**projection_keys(version, gemma_width), **connector_keys(version)}, seed)


# A few tensors of the other bundle components, with their published names (the text loader must
# ignore them).
def other_components() -> dict[str, torch.Tensor]:
    return {DIT + "patchify_proj.weight": torch.randn(16, 128), DIT + "transformer_blocks.0.attn1.to_q.weight":
            torch.randn(16, 16), "vae.per_channel_statistics.mean-of-means": torch.randn(128),
            "audio_vae.per_channel_statistics.mean-of-means": torch.randn(128), "vocoder.conv_post.weight":
            torch.randn(2, 4, 7)}  # fmt: skip


def write(path: Path, sd: dict[str, torch.Tensor], meta: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata=meta)
    return path


def comfy_quant_marker(fmt: str) -> torch.Tensor:
    return torch.tensor(list(json.dumps({"format": fmt}).encode("utf-8")), dtype=torch.uint8)


def fp8_connectors(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Connector Linears as fp8 + weight_scale + .comfy_quant (ComfyUI's fp8_scaled style).

    Returns the stored tensors and the dense tensors they decode to (the reference weights).
    """
    stored, dense = {}, {}
    for k, v in sd.items():
        if "_embeddings_connector." in k and k.endswith(".weight") and v.ndim == 2 and "to_gate_logits" not in k:
            scale = v.abs().max() / 448.0
            q = (v / scale).to(torch.float8_e4m3fn)
            layer = k[: -len(".weight")]
            stored.update({k: q, layer + ".weight_scale": scale.reshape(()), layer + ".comfy_quant":
                           comfy_quant_marker("float8_e4m3fn"), layer + ".input_scale": torch.tensor(0.01)})  # fmt: skip
            dense[k] = q.float() * scale
        else:
            stored[k] = dense[k] = v
    return stored, dense


def nvfp4_connectors(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Connector Linears (gates excepted, as the published quantized files keep them) in NVFP4 with
    ``.comfy_quant`` markers; widths that are not multiples of 16 are padded as ComfyUI pads them."""
    from openltx.model_loaders.quant import nvfp4

    stored, dense = {}, {}
    for k, v in sd.items():
        if "_embeddings_connector." in k and k.endswith(".weight") and v.ndim == 2 and "to_gate_logits" not in k:
            packed, blocks, scale_2 = nvfp4.quantize(v)
            layer = k[: -len(".weight")]
            stored.update({k: packed, layer + ".weight_scale": blocks, layer + ".weight_scale_2": scale_2,
                           layer + ".comfy_quant": comfy_quant_marker("nvfp4")})  # fmt: skip
            dense[k] = nvfp4.dequantize(packed, blocks, scale_2, v.shape)
        else:
            stored[k] = dense[k] = v
    return stored, dense


def write_gguf(path: Path, sd: dict[str, torch.Tensor], config: dict | None, q8: bool = False) -> Path:
    """A city96-style GGUF: bare tensor names, arch "ltxv", the header config as a plain ``config`` KV.

    ``q8``: 2-D tensors whose rows are a multiple of 32 are stored Q8_0 (others F32).
    """
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "ltxv")
    if config is not None:
        writer.add_string("config", json.dumps(config))
    for name, t in sd.items():
        name = name.removeprefix(DIT)
        array = t.float().numpy()
        if q8 and t.ndim == 2 and t.shape[1] % 32 == 0:
            writer.add_tensor(name, gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0),
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)  # fmt: skip
        else:
            writer.add_tensor(name, np.ascontiguousarray(array))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def gguf_dense(sd: dict[str, torch.Tensor], q8: bool) -> dict[str, torch.Tensor]:
    """What ``write_gguf`` stores, decoded by the gguf package itself (the reference)."""
    import gguf

    out = {}
    for name, t in sd.items():
        if q8 and t.ndim == 2 and t.shape[1] % 32 == 0:
            q = gguf.quants.quantize(t.float().numpy(), gguf.GGMLQuantizationType.Q8_0)
            out[name] = torch.from_numpy(gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0)).reshape(t.shape)
        else:
            out[name] = t.float()
    return out
