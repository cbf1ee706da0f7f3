"""Tiny LTX-2.5 files in the published key layouts and names, for tests and tools.

One writer per released 2.5 file that has no 2.3 counterpart, plus the conv VAE (the 2.5 audio VAE
and upscalers are the 2.3 layouts; the 2.5 transformer comes with the transformer rework):

=======================================================  ==============================================
released file                                            writer
=======================================================  ==============================================
``vae/ltx-2.5-video-vae-bf16.safetensors``               ``write_tiny_diffusion_vae`` (DiffVAE)
``vae/ltx-2.5-video-vae-conv-bf16.safetensors``          ``write_tiny_conv_vae`` (2.3 architecture)
``model_patches/ltx-2.5-duration-head-bf16.safetensors``  ``write_tiny_duration_head``
``text_encoders/gemma4-12b-with-proj-ltx-2.5-*``         ``write_tiny_gemma4`` (bf16 or comfy-int8-convrot)
=======================================================  ==============================================

Same keys, prefixes, header keys and dtypes-by-role as the real files (see
``shared/real_headers/README.md``, LTX-2.5 section); shapes are scaled down.  Values are random
with the recipe of ``tiny_layouts.random_tensor`` (norm weights ~1, so positions matter).
"""

from __future__ import annotations

import copy
import json
import os
import zlib
from typing import Mapping

import torch

from .tiny_layouts import random_tensor

try:  # see model_loaders/__init__.py
    from ..ltx2.diffusion_vae import CLASS_NAME, DiffusionDecoder, DiffusionDecoderConfig, encoder_section
    from ..ltx2.duration_head import DurationHead
    from ..ltx2.video_vae import VideoEncoder
except ImportError:
    from ltx2.diffusion_vae import CLASS_NAME, DiffusionDecoder, DiffusionDecoderConfig, encoder_section
    from ltx2.duration_head import DurationHead
    from ltx2.video_vae import VideoEncoder

MODEL_VERSION = "2.5.0"
FILE_NAMES = {
    "diffusion_vae": "ltx-2.5-video-vae-bf16.safetensors",
    "conv_vae": "ltx-2.5-video-vae-conv-bf16.safetensors",
    "duration_head": "ltx-2.5-duration-head-bf16.safetensors",
    "gemma4": "gemma4-12b-with-proj-ltx-2.5-bf16.safetensors",
    "gemma4_int8": "gemma4-12b-with-proj-ltx-2.5-comfy-int8-convrot.safetensors",
}


def _values(shapes: Mapping[str, tuple], seed: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Random tensors per key, each from a generator seeded by ``seed`` and the key name."""
    out = {}
    for key, shape in sorted(shapes.items()):
        g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
        out[key] = random_tensor(key, tuple(shape), g).to(dtype).contiguous()
    return out


def _save(path, tensors: dict, metadata: dict) -> dict:
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    save_file(tensors, os.fspath(path), metadata=metadata)
    return tensors


# ------------------------------------------------------------------------------ DiffVAE
def tiny_diffusion_vae_config() -> dict:
    """``config.vae`` of a tiny DiffVAE: the released structure (nested, 4 + 1 stages) at small widths.

    The encoder is the tiny 2.3 encoder (latents of the released 128 channels, the four
    compression blocks); the decoder keeps the released strides (x8 time, x8 space, patch 4) at
    widths 64 / 32 / 16 / 16 / 8 (the released channel reductions), head_dim 8, 3x3x3 kernels and a 5x5x5 stage-5 kernel.
    """
    encoder = {
        "_class_name": "Encoder",
        "dims": 3,
        "in_channels": 3,
        "out_channels": 128,
        "base_channels": 128,
        "patch_size": 4,
        "norm_layer": "pixel_norm",
        "latent_log_var": "constant",
        "latent_log_var_value": -7.824046010856292,
        "spatial_padding_mode": "zeros",
        "blocks": [
            ["compress_space_res", {"multiplier": 1}],
            ["compress_time_res", {"multiplier": 1}],
            ["compress_all_res", {"multiplier": 1}],
            ["compress_all_res", {"multiplier": 1}],
        ],
    }
    decoder = {
        "_class_name": "NADiffusionDecoder",
        "in_channels": 128,
        "out_channels": 3,
        "patch_size": 4,
        "head_dim": 8,
        "stage_channels": [64, 32, 16, 16, 8],
        "stage_depths": [1, 1, 1, 1, 2],
        "stage_kernels": [[3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [5, 5, 5]],
        "upsamples": [[[1, 2, 2], 2], [[2, 1, 1], 2], [[2, 2, 2], 1], [[2, 2, 2], 2]],
        "spatial_padding_mode": "zeros",
        "resampler_kind": "linear",
        "stage5_kernel": [5, 5, 5],
        "t_emb_dim": 16,
        "timestep_scale_multiplier": 1000.0,
        "default_num_inference_steps": 1,
        "model_output_type": "x0",
    }
    return {"_class_name": CLASS_NAME, "encoder": encoder, "decoder": decoder}


def _decoder_config_from_header(dec: Mapping) -> DiffusionDecoderConfig:
    """The decoder config a header section describes (widths given, as for building a file)."""
    ch = list(dec["stage_channels"])
    n = len(ch) - 1
    mlp = tuple((int(c * 4.0) + 15) // 16 * 16 for c in ch)
    return DiffusionDecoderConfig(
        in_channels=int(dec["in_channels"]),
        stage_channels=tuple(ch),
        stage_depths=tuple(dec["stage_depths"]),
        mlp_hidden=mlp,
        head_dim=int(dec["head_dim"]),
        stage_kernels=tuple(tuple(k) for k in dec["stage_kernels"][:n]),
        stage5_kernel=tuple(dec["stage5_kernel"]),
        upsample_strides=tuple(tuple(u[0]) for u in dec["upsamples"]),
        upsample_reductions=tuple(int(u[1]) for u in dec["upsamples"]),
        t_emb_dim=int(dec.get("t_emb_dim", 384)),
        t_freq_channels=256,
        num_chunks=7,
        context_channels=ch[-1],
        out_channels=int(dec["out_channels"]),
        patch_size=int(dec["patch_size"]),
        timestep_scale_multiplier=float(dec["timestep_scale_multiplier"]),
        model_output_type=dec.get("model_output_type", "x0"),
        default_num_inference_steps=int(dec["default_num_inference_steps"]),
    )


def diffusion_vae_layout(vae: Mapping | None = None) -> dict[str, tuple]:
    """Every key (bare: ``encoder.*``, ``decoder.*``, ``per_channel_statistics.*``) and shape of a DiffVAE file."""
    vae = vae or tiny_diffusion_vae_config()
    with torch.device("meta"):
        enc = VideoEncoder(encoder_section(vae), ops=torch.nn)
        dec = DiffusionDecoder(_decoder_config_from_header(vae["decoder"]), ops=torch.nn)
    shapes = {f"encoder.{k}": tuple(v.shape) for k, v in enc.state_dict().items()}
    shapes.update({f"decoder.{k}": tuple(v.shape) for k, v in dec.state_dict().items()})
    latent = int(vae["encoder"]["out_channels"])
    shapes.update({"per_channel_statistics.mean-of-means": (latent,), "per_channel_statistics.std-of-means": (latent,)})
    return shapes


def write_tiny_diffusion_vae(path, *, seed: int = 0, dtype: torch.dtype = torch.float32,
                             vae: Mapping | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """Write a tiny ``ltx-2.5-video-vae-bf16.safetensors``; returns the tensors written."""
    vae = copy.deepcopy(dict(vae or tiny_diffusion_vae_config()))
    tensors = _values(diffusion_vae_layout(vae), seed, dtype)
    meta = {"config": json.dumps({"vae": vae}), "model_version": MODEL_VERSION}
    return _save(path, tensors, meta)


def tiny_conv_vae_config() -> dict:
    """``config.vae`` of a tiny ``ltx-2.5-video-vae-conv-bf16``: the *flat* 2.3 ``CausalVideoAutoencoder``
    section (the conv 2.5 VAE is the 2.3 architecture), with the tiny DiffVAE's encoder and a small
    2.3 decoder block list."""
    blocks = tiny_diffusion_vae_config()["encoder"]["blocks"]
    decoder = [["res_x", {"num_layers": 1}], ["compress_space", {"multiplier": 2}], ["res_x", {"num_layers": 1}],
               ["compress_time", {"multiplier": 2}], ["res_x", {"num_layers": 1}], ["compress_all", {"multiplier": 1}],
               ["res_x", {"num_layers": 1}], ["compress_all", {"multiplier": 2}], ["res_x", {"num_layers": 1}]]  # fmt: skip
    return {
        "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3,
        "latent_channels": 128, "patch_size": 4, "norm_layer": "pixel_norm", "latent_log_var": "uniform",
        "encoder_spatial_padding_mode": "zeros", "decoder_spatial_padding_mode": "reflect",
        "spatial_padding_mode": "zeros", "causal_decoder": False, "timestep_conditioning": False,
        "decoder_base_channels": 2, "encoder_blocks": copy.deepcopy(blocks), "decoder_blocks": decoder,
    }  # fmt: skip


def write_tiny_conv_vae(path, *, seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Write a tiny ``ltx-2.5-video-vae-conv-bf16.safetensors`` (bare ``encoder.*`` / ``decoder.*`` /
    ``per_channel_statistics.*`` keys, flat ``{"vae": ...}`` header): what ``load_video_vae`` reads."""
    try:
        from ..ltx2.video_vae import VideoVAE
    except ImportError:
        from ltx2.video_vae import VideoVAE

    vae = tiny_conv_vae_config()
    with torch.device("meta"):
        model = VideoVAE(vae, timestep_conditioning=False, operations=torch.nn)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    tensors = _values(shapes, seed, dtype)
    return _save(path, tensors, {"config": json.dumps({"vae": vae}), "model_version": MODEL_VERSION})


# ------------------------------------------------------------------------------ duration head
def write_tiny_duration_head(path, *, seed: int = 0, dtype: torch.dtype = torch.float32, video_width: int = 16,
                             audio_width: int = 8, dim: int = 16, mlp_width: int = 16,
                             prefix: str = "duration_head.") -> dict[str, torch.Tensor]:  # fmt: skip
    """Write a tiny duration head (the released 15 keys under ``duration_head.``, 4 heads).

    ``video_width`` / ``audio_width`` default to the tiny 2.3 transformer's cross-attention widths.
    """
    with torch.device("meta"):
        head = DurationHead(video_width, audio_width, dim=dim, mlp_width=mlp_width, operations=torch.nn)
    shapes = {prefix + k: tuple(v.shape) for k, v in head.state_dict().items()}
    tensors = _values(shapes, seed, dtype)
    config = {"transformer": {"cross_attention_dim": video_width, "audio_cross_attention_dim": audio_width}}
    return _save(path, tensors, {"config": json.dumps(config), "model_version": MODEL_VERSION})


# ------------------------------------------------------------------------------ Gemma 4 text encoder
TINY_GEMMA4_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                        "<|image|>", "<|audio|>", "<|video|>")  # fmt: skip
_TINY_CORPUS = ("a cat walks on the beach at sunset", "rain falls on a red car", "music plays in a dark room",
                "the camera pans slowly across the city at night", "waves crash on the rocks")  # fmt: skip


def tiny_gemma4_tokenizer_json(vocab_size: int = 64) -> str:
    """A Gemma-style ``tokenizer.json`` trained at run time: BPE with byte fallback, spaces as "▁",
    ``<bos>`` prepended by the post-processor; ids 0/1/2 = ``<pad>``/``<eos>``/``<bos>`` as in Gemma."""
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(TINY_GEMMA4_SPECIALS), show_progress=False)
    tok.train_from_iterator(list(_TINY_CORPUS) * 5, trainer)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    base = len(vocab)
    vocab.update({f"<0x{b:02X}>": base + b for b in range(256)})  # byte fallback pieces, as in Gemma's vocabulary
    tok = Tokenizer.from_str(json.dumps(data))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    return tok.to_str()


TINY_GEMMA4_TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "pad_token": "<pad>",
    "unk_token": "<unk>",
    "mask_token": "<mask>",
    "padding_side": "left",
    "tokenizer_class": "GemmaTokenizer",
    "model_max_length": 1000000,
}


def tiny_gemma4_config(vocab_size: int) -> dict:
    """``gemma_config`` of a tiny Gemma 4: 6 layers (5 sliding + 1 full, the released pattern), width 32,
    sliding head 16 (2 q / 1 kv heads), full head 32 with k = v, a 4-token window, the released RoPE."""
    ids = {name: TINY_GEMMA4_SPECIALS.index(tok) for name, tok in
           (("image_token_id", "<|image|>"), ("audio_token_id", "<|audio|>"), ("video_token_id", "<|video|>"))}  # fmt: skip
    text = {
        "model_type": "gemma4_unified_text",
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 6,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 16,
        "global_head_dim": 32,
        "num_global_key_value_heads": 1,
        "attention_k_eq_v": True,
        "attention_bias": False,
        "sliding_window": 4,
        "rms_norm_eps": 1e-6,
        "hidden_activation": "gelu_pytorch_tanh",
        "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
        "rope_parameters": {
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
            "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1000000.0},
        },
        "max_position_embeddings": 4096,
        "tie_word_embeddings": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "final_logit_softcapping": 30.0,
        "hidden_size_per_layer_input": 0,
        "num_kv_shared_layers": 0,
        "use_bidirectional_attention": "vision",
    }
    return {"architectures": ["Gemma4UnifiedForConditionalGeneration"], "model_type": "gemma4_unified",
            "text_config": text, **ids}  # fmt: skip


def _gemma4_text_shapes(cfg: Mapping) -> dict[str, tuple]:
    t = cfg["text_config"]
    d, f, heads = t["hidden_size"], t["intermediate_size"], t["num_attention_heads"]
    shapes = {"model.embed_tokens.weight": (t["vocab_size"], d), "model.norm.weight": (d,)}
    for i, kind in enumerate(t["layer_types"]):
        full = kind == "full_attention"
        hd = t["global_head_dim"] if full else t["head_dim"]
        kv = t["num_global_key_value_heads"] if full else t["num_key_value_heads"]
        p = f"model.layers.{i}."
        shapes.update({p + n: (d,) for n in ("input_layernorm.weight", "post_attention_layernorm.weight",
                                              "pre_feedforward_layernorm.weight", "post_feedforward_layernorm.weight")})  # fmt: skip
        shapes[p + "layer_scalar"] = (1,)
        shapes[p + "self_attn.q_proj.weight"] = (heads * hd, d)
        shapes[p + "self_attn.k_proj.weight"] = (kv * hd, d)
        if not (full and t["attention_k_eq_v"]):
            shapes[p + "self_attn.v_proj.weight"] = (kv * hd, d)
        shapes[p + "self_attn.o_proj.weight"] = (d, heads * hd)
        shapes[p + "self_attn.q_norm.weight"] = (hd,)
        shapes[p + "self_attn.k_norm.weight"] = (hd,)
        shapes[p + "mlp.gate_proj.weight"] = (f, d)
        shapes[p + "mlp.up_proj.weight"] = (f, d)
        shapes[p + "mlp.down_proj.weight"] = (d, f)
    return shapes


def _bytes_tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).clone()


def write_tiny_gemma4(path, *, seed: int = 0, dtype: torch.dtype = torch.float32, video_width: int = 16,
                      audio_width: int = 8, int8_convrot: bool = False, group_size: int = 16,
                      header_markers: bool = False) -> dict[str, torch.Tensor]:  # fmt: skip
    """Write a tiny ``gemma4-12b-with-proj-ltx-2.5-*.safetensors``; returns the tensors written.

    The released key groups: ``model.*`` text decoder, ``vision_model.*`` / ``audio_projector.*`` /
    ``multi_modal_projector.*`` (stand-ins, never run), ``text_embedding_projection.*`` (7 hidden
    states x 32 -> ``video_width`` / ``audio_width``, default the tiny 2.3 transformer's widths),
    ``tokenizer_json`` and ``hf_asset__*`` bytes; header ``gemma_config`` and ``model_version``.
    ``int8_convrot``: every 2-D linear weight of the decoder and the projection in ComfyUI's int8
    ConvRot format (group ``group_size``), marked by per-layer ``.comfy_quant`` tensors or, with
    ``header_markers``, by ``_quantization_metadata``.
    """
    from .quant import int8_convrot as icr

    tokenizer = tiny_gemma4_tokenizer_json()
    vocab = json.loads(tokenizer)["model"]["vocab"]
    cfg = tiny_gemma4_config(len(vocab) + sum(t not in vocab for t in TINY_GEMMA4_SPECIALS))
    t = cfg["text_config"]
    flat = t["hidden_size"] * (t["num_hidden_layers"] + 1)
    shapes = _gemma4_text_shapes(cfg)
    shapes.update({
        "text_embedding_projection.video_aggregate_embed.weight": (video_width, flat),
        "text_embedding_projection.video_aggregate_embed.bias": (video_width,),
        "text_embedding_projection.audio_aggregate_embed.weight": (audio_width, flat),
        "text_embedding_projection.audio_aggregate_embed.bias": (audio_width,),
        "vision_model.encoder.layers.0.mlp.fc1.weight": (8, 8),
        "audio_projector.embedding_projection.weight": (t["hidden_size"], 8),
        "multi_modal_projector.embedding_projection.weight": (t["hidden_size"], 8),
    })
    tensors = _values(shapes, seed, dtype)
    g = torch.Generator().manual_seed(seed + 17)
    for key in tensors:
        if key.endswith("layer_scalar"):  # a whole-state multiplier: keep it near 1 (0.5 .. 1.5)
            tensors[key] = (0.5 + torch.rand(1, generator=g)).to(dtype)
    layers: dict[str, dict] = {}
    if int8_convrot:
        for key in list(tensors):
            if key.endswith(".weight") and tensors[key].ndim == 2 and (
                    key.startswith("model.layers.") or key.startswith("text_embedding_projection.")):  # fmt: skip
                q, scale = icr.quantize(tensors[key].float(), group_size)
                layer = key[: -len(".weight")]
                tensors[key], tensors[layer + ".weight_scale"] = q, scale
                layers[layer] = icr.convrot_config(group_size)
                if not header_markers:
                    tensors[layer + ".comfy_quant"] = icr.encode_marker(layers[layer])
    tensors["tokenizer_json"] = _bytes_tensor(tokenizer)
    tensors["hf_asset__tokenizer_config.json"] = _bytes_tensor(json.dumps(TINY_GEMMA4_TOKENIZER_CONFIG))
    tensors["hf_asset__generation_config.json"] = _bytes_tensor(json.dumps({"bos_token_id": 2, "eos_token_id": 1}))
    meta = {"gemma_config": json.dumps(cfg), "model_version": MODEL_VERSION}
    if header_markers and layers:
        meta["_quantization_metadata"] = json.dumps({"format_version": "1.0", "layers": layers})
    return _save(path, tensors, meta)


__all__ = [
    "FILE_NAMES",
    "TINY_GEMMA4_SPECIALS",
    "TINY_GEMMA4_TOKENIZER_CONFIG",
    "tiny_gemma4_config",
    "tiny_gemma4_tokenizer_json",
    "write_tiny_gemma4",
    "MODEL_VERSION",
    "diffusion_vae_layout",
    "tiny_conv_vae_config",
    "tiny_diffusion_vae_config",
    "write_tiny_conv_vae",
    "write_tiny_diffusion_vae",
    "write_tiny_duration_head",
]
