"""Tiny random Gemma 3 text encoders and tokenizers, made at test time (nothing downloaded).

* ``train_tokenizer(dir)``: a 320-piece sentencepiece model with Gemma's special ids
  (pad 0, eos 1, bos 2, unk 3, ``<start_of_turn>`` / ``<end_of_turn>``), saved as
  ``tokenizer.model`` (+ ``tokenizer.json`` / ``tokenizer_config.json`` with ``hf=True``,
  through transformers, as a Hugging Face Gemma folder has them).
* ``tiny_text_model(...)``: ``transformers.Gemma3TextModel`` with random weights; default width
  12 and 2 layers = 3 hidden states, what the tiny LTX checkpoints' text projection takes.
* writers for the layouts the loader reads: HF folder (``language_model.model.*`` plus a fake
  vision tower), ComfyUI single file (``model.*``, ``spiece_model``), ComfyUI fp8-scaled (legacy
  ``scaled_fp8`` marker), and ComfyUI's ``fp4_mixed`` (per-layer ``.comfy_quant`` markers: NVFP4
  for most Linears, fp8 + ``weight_scale`` for a few, as ``gemma_3_12B_it_fp4_mixed`` has them).
  NVFP4 pads to multiples of 16, which Gemma 3's widths always are: ``TINY16`` is a tiny model
  with such widths for the fp4 files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

CORPUS = [
    "a cat walks on the beach at sunset", "the camera pans slowly over a city at night",
    "rain falls on a red car", "music plays while people dance in the street",
    "a dog runs through tall grass", "waves crash against black rocks", "a woman smiles and speaks",
]  # fmt: skip
TINY = dict(vocab_size=320, hidden_size=12, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=8)  # fmt: skip
TINY16 = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_key_value_heads=1, head_dim=16)
FP8_IN_FP4_MIXED = ("layers.0.self_attn.v_proj", "layers.1.mlp.down_proj")  # the tiny file's fp8 layers
FAMILY = dict(rope_theta=1_000_000.0, rope_local_base_freq=10_000.0, rope_scaling={"rope_type": "linear", "factor": 8.0},
              sliding_window=1024, query_pre_attn_scalar=256, rms_norm_eps=1e-6, max_position_embeddings=131072)  # fmt: skip


def spm_bytes(vocab_size: int = 320) -> bytes:
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_writer=buf, vocab_size=vocab_size, model_type="bpe",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
        unk_piece="<unk>", user_defined_symbols=["<start_of_turn>", "<end_of_turn>"], add_dummy_prefix=False,
        byte_fallback=True, minloglevel=2,
    )  # fmt: skip
    return buf.getvalue()


def train_tokenizer(directory: Path, hf: bool = True) -> Path:
    """``tokenizer.model`` in ``directory`` (and the HF files with ``hf=True``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tokenizer.model").write_bytes(spm_bytes())
    if hf:
        from transformers import AutoTokenizer, GemmaTokenizer

        try:  # transformers 4.x: the slow tokenizer reads the sentencepiece file
            tok = GemmaTokenizer(vocab_file=str(directory / "tokenizer.model"))
            tok.save_pretrained(directory)
            AutoTokenizer.from_pretrained(directory, local_files_only=True).save_pretrained(directory)  # + tokenizer.json
        except Exception:  # pragma: no cover - transformers 5.x builds it from the folder
            (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GemmaTokenizer"}))
            AutoTokenizer.from_pretrained(directory, local_files_only=True).save_pretrained(directory)
    return directory


def text_config(**overrides):
    from transformers import Gemma3TextConfig

    kw = dict(TINY, **FAMILY)
    kw.update(overrides)
    n = kw["num_hidden_layers"]
    kw["layer_types"] = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]
    cfg = Gemma3TextConfig(**kw)
    cfg._attn_implementation = "sdpa"
    return cfg


def tiny_text_model(seed: int = 0, **overrides):
    """A random ``Gemma3TextModel`` (fp32); norm weights randomised too so they matter."""
    from transformers import Gemma3TextModel

    torch.manual_seed(seed)
    model = Gemma3TextModel(text_config(**overrides)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.normal_(0.0, 0.5)
            else:
                p.normal_(0.0, 0.3)
    return model


def _fake_vision(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"vision_tower.vision_model.embeddings.patch_embedding.weight": torch.randn(4, 3, 2, 2, generator=g),
            "multi_modal_projector.mm_input_projection_weight": torch.randn(4, 12, generator=g)}  # fmt: skip


def write_hf_dir(model, directory: Path, tokenizer: bool = True, shards: int = 2) -> Path:
    """A Hugging Face Gemma3ForConditionalGeneration-style folder (text weights + fake vision)."""
    directory.mkdir(parents=True, exist_ok=True)
    sd = {f"language_model.model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    sd.update(_fake_vision())
    keys = sorted(sd)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: sd[k] for k in keys[i::shards]}
        save_file(part, str(directory / name))
        weight_map.update({k: name for k in part})
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    cfg = model.config.to_dict()
    (directory / "config.json").write_text(json.dumps({"architectures": ["Gemma3ForConditionalGeneration"],
                                                       "model_type": "gemma3", "text_config": cfg}, default=str))
    if tokenizer:
        train_tokenizer(directory)
    return directory


def _marker(fmt: str) -> torch.Tensor:
    """A ``.comfy_quant`` tensor: the layer's JSON config as uint8 bytes (ComfyUI's spacing)."""
    return torch.tensor(list(json.dumps({"format": fmt}).encode("utf-8")), dtype=torch.uint8)


def _nvfp4_tensors(prefix: str, w: torch.Tensor) -> dict[str, torch.Tensor]:
    from openltx.model_loaders.quant import nvfp4

    packed, blocks, scale_2 = nvfp4.quantize(w)
    return {f"{prefix}.weight": packed, f"{prefix}.weight_scale": blocks, f"{prefix}.weight_scale_2": scale_2,
            f"{prefix}.comfy_quant": _marker("nvfp4")}  # fmt: skip


def _fp8_tensors(prefix: str, w: torch.Tensor, marker: bool) -> dict[str, torch.Tensor]:
    scale = w.abs().max().float() / 448.0
    out = {f"{prefix}.weight": (w / scale).to(torch.float8_e4m3fn)}
    if marker:  # newer "comfy quant" fp8: weight_scale + marker (+ an input scale the loader ignores)
        out.update({f"{prefix}.weight_scale": scale.reshape(()), f"{prefix}.comfy_quant": _marker("float8_e4m3fn"),
                    f"{prefix}.input_scale": torch.tensor(0.02)})  # fmt: skip
    else:  # legacy scaled_fp8
        out[f"{prefix}.scale_weight"] = scale.reshape(())
    return out


def write_comfy_file(model, path: Path, embed_tokenizer: bool = True, fp8: bool = False, quant: str | None = None,
                     extra: dict | None = None) -> Path:
    """ComfyUI single-file layout: ``model.*`` (+ ``spiece_model``, a fake vision tower).

    ``quant``: None (the model's dtype), ``"fp8"`` (``fp8=True``: Linear weights as float8_e4m3fn
    with a per-tensor ``.scale_weight`` and the ``scaled_fp8`` marker), or ``"fp4_mixed"``
    (NVFP4 Linears, ``FP8_IN_FP4_MIXED`` as fp8, ``.comfy_quant`` markers).  ``extra``: more
    tensors stored as given (e.g. an LTX text projection kept in the Gemma file).
    """  # fmt: skip
    quant = quant or ("fp8" if fp8 else None)
    sd = {}
    for k, v in model.state_dict().items():
        layer = k[: -len(".weight")]
        if quant and k.endswith("_proj.weight"):
            if quant == "fp8":
                sd.update(_fp8_tensors(f"model.{layer}", v, marker=False))
            elif layer in FP8_IN_FP4_MIXED:
                sd.update(_fp8_tensors(f"model.{layer}", v, marker=True))
            else:
                sd.update(_nvfp4_tensors(f"model.{layer}", v))
        else:
            sd[f"model.{k}"] = v.contiguous()
    if quant == "fp8":
        sd["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    sd.update({k.replace("vision_tower.vision_model.", "vision_model."): v for k, v in _fake_vision().items()})
    if embed_tokenizer:
        sd["spiece_model"] = torch.frombuffer(bytearray(spm_bytes()), dtype=torch.uint8)
    sd.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))
    return path


def dequantized_fp4_mixed_model(model):
    """``model`` with its Linear weights rounded exactly as ``write_comfy_file(quant="fp4_mixed")`` stores them."""
    import copy

    from openltx.model_loaders.quant import nvfp4

    out = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in out.named_parameters():
            layer = name[: -len(".weight")]
            if not name.endswith("_proj.weight"):
                continue
            if layer in FP8_IN_FP4_MIXED:
                scale = p.abs().max().float() / 448.0
                p.copy_((p / scale).to(torch.float8_e4m3fn).float() * scale)
            else:
                p.copy_(nvfp4.dequantize(*nvfp4.quantize(p), p.shape))
    return out


def dequantized_fp8_model(model):
    """``model`` with its Linear weights rounded through fp8 exactly as ``write_comfy_file(fp8=True)``."""
    import copy

    out = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in out.named_parameters():
            if name.endswith("_proj.weight"):
                scale = p.abs().max().float() / 448.0
                p.copy_((p / scale).to(torch.float8_e4m3fn).float() * scale)
    return out
