"""Gemma text-encoder LoRAs (``gemma-3-12b-it-abliterated_lora_rank64_bf16`` layout) on our Gemma path.

A tiny LoRA is written with the published key layout (``text_encoders.transformer.model.layers.N.
<module>.lora_down.weight`` / ``.lora_up.weight``, no alpha, plus vision-tower modules that must
be ignored).  Our hidden states with the LoRA must equal transformers' ``Gemma3TextModel`` whose
weights were merged as ``W + s * up @ down`` (float32, 1e-5), for dense, fp8 and NVFP4 weights.
"""

from __future__ import annotations

import copy
import logging

import pytest
import torch
from safetensors.torch import save_file

import tiny_gemma as tg
from openltx.host.gemma_streaming import GemmaEncoder, WeightStore
from openltx.model_loaders.gemma_loading import _shape_ok, inspect_gemma
from openltx.model_loaders.gemma_lora import GemmaLoraError, inspect_gemma_lora, parameter_name

PROMPT = "a cat walks on the beach at sunset"
TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
           "mlp.up_proj", "mlp.down_proj")  # fmt: skip
PREFIX = "text_encoders.transformer.model."


def weight_shape(source):
    return lambda name: (tuple(source.tensors[name][3]) if name in source.tensors else None)


def published_lora(model, path, rank=4, seed=0, alpha=None, layers=(0, 1)):
    """Random LoRA for ``model`` in the published layout; returns ``{weight name: (up, down)}``."""
    g = torch.Generator().manual_seed(seed)
    sd, pairs = {}, {}
    params = dict(model.named_parameters())
    for i in layers:
        for target in TARGETS:
            name = f"layers.{i}.{target}.weight"
            out_f, in_f = params[name].shape
            down = (torch.randn(rank, in_f, generator=g) * 0.2).contiguous()
            up = (torch.randn(out_f, rank, generator=g) * 0.2).contiguous()
            module = f"{PREFIX}layers.{i}.{target}"
            sd[module + ".lora_down.weight"], sd[module + ".lora_up.weight"] = down, up
            if alpha is not None:
                sd[module + ".alpha"] = torch.tensor(float(alpha))
            pairs[name] = (up, down)
    # the published file also adapts the vision tower, which LTX never runs
    sd["text_encoders.transformer.vision_model.encoder.layers.2.mlp.fc2.lora_down.weight"] = torch.randn(rank, 8)
    sd["text_encoders.transformer.vision_model.encoder.layers.2.mlp.fc2.lora_up.weight"] = torch.randn(8, rank)
    save_file(sd, str(path))
    return pairs


def merged(model, loras):
    """transformers' model with ``W + s * (alpha / rank) * up @ down`` for each ``(pairs, s, factor)``."""
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    with torch.no_grad():
        for pairs, strength, factor in loras:
            for name, (up, down) in pairs.items():
                params[name].copy_(params[name] + (strength * factor) * (up @ down))
    return out


def reference(model, tokenizer):
    ids, mask = tokenizer.tokenize(PROMPT)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states


def rel(a, b) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma_lora")
    model = tg.tiny_text_model(seed=5)
    model16 = tg.tiny_text_model(seed=6, **tg.TINY16)
    return {
        "model": model,
        "model16": model16,
        "dense": tg.write_comfy_file(model, root / "g.safetensors"),
        "fp8": tg.write_comfy_file(model, root / "g8.safetensors", fp8=True),
        "fp4": tg.write_comfy_file(model16, root / "g4.safetensors", quant="fp4_mixed"),
        "root": root,
    }


def test_key_names_map_to_the_text_model():
    assert parameter_name("text_encoders.transformer.model.layers.7.self_attn.q_proj") == "layers.7.self_attn.q_proj"
    assert parameter_name("model.language_model.layers.3.mlp.up_proj") == "layers.3.mlp.up_proj"
    assert parameter_name("language_model.model.layers.0.mlp.down_proj") == "layers.0.mlp.down_proj"
    assert parameter_name("layers.1.self_attn.o_proj") == "layers.1.self_attn.o_proj"
    assert parameter_name("text_encoders.clip_l.transformer.text_model.x") is None


@pytest.mark.parametrize("strength", [1.0, 0.6, -0.5])
def test_lora_equals_transformers_with_merged_weights(gemma, tmp_path, strength, caplog):
    pairs = published_lora(gemma["model"], tmp_path / "lora.safetensors")
    source = inspect_gemma(gemma["dense"])
    with caplog.at_level(logging.INFO):
        spec = inspect_gemma_lora(tmp_path / "lora.safetensors", weight_shape(source))
    assert len(spec.layers) == 14 and spec.ignored == ["text_encoders.transformer.vision_model.encoder.layers.2.mlp.fc2"]
    assert "1 vision-tower LoRA modules ignored" in caplog.text
    enc = GemmaEncoder(source, dtype=torch.float32, loras=[(spec, strength)])
    states, _ = enc.encode(PROMPT)
    ref = reference(merged(gemma["model"], [(pairs, strength, 1.0)]), enc.tokenizer)
    errors = [rel(a, b) for a, b in zip(states, ref)]
    assert max(errors) <= 1e-5, errors
    plain = reference(gemma["model"], enc.tokenizer)
    assert rel(states[-1], plain[-1]) > 1e-2  # the LoRA does change the result


def test_two_loras_alpha_and_a_shared_store(gemma, tmp_path):
    """Two LoRAs add up; an alpha scales by alpha / rank (ComfyUI's rule); encoders share CPU weights."""
    a = published_lora(gemma["model"], tmp_path / "a.safetensors", seed=1)
    b = published_lora(gemma["model"], tmp_path / "b.safetensors", seed=2, rank=2, alpha=1.0, layers=(1,))
    source = inspect_gemma(gemma["dense"])
    specs = [inspect_gemma_lora(tmp_path / n, weight_shape(source)) for n in ("a.safetensors", "b.safetensors")]
    store = WeightStore()
    base = GemmaEncoder(source, dtype=torch.float32, store=store)
    plain, _ = base.encode(PROMPT)
    both = GemmaEncoder(source, dtype=torch.float32, store=store, loras=[(specs[0], 0.7), (specs[1], 1.5)])
    states, _ = both.encode(PROMPT)
    assert both.weights is base.weights  # read once
    ref = reference(merged(gemma["model"], [(a, 0.7, 1.0), (b, 1.5, 0.5)]), both.tokenizer)
    assert max(rel(x, y) for x, y in zip(states, ref)) <= 1e-5
    again, _ = base.encode(PROMPT)  # the base encoder is untouched by the other's LoRA
    assert all(torch.equal(x, y) for x, y in zip(plain, again))


@pytest.mark.parametrize("layout", ["fp8", "fp4"])
def test_lora_on_quantized_weights(gemma, tmp_path, layout):
    model = gemma["model16"] if layout == "fp4" else gemma["model"]
    pairs = published_lora(model, tmp_path / "q.safetensors", seed=3)
    source = inspect_gemma(gemma[layout])
    spec = inspect_gemma_lora(tmp_path / "q.safetensors", lambda n: _known_shape(source, n, model))
    enc = GemmaEncoder(source, dtype=torch.float32, loras=[(spec, 0.8)])
    states, _ = enc.encode(PROMPT)
    dense = tg.dequantized_fp4_mixed_model(model) if layout == "fp4" else tg.dequantized_fp8_model(model)
    ref = reference(merged(dense, [(pairs, 0.8, 1.0)]), enc.tokenizer)
    assert max(rel(x, y) for x, y in zip(states, ref)) <= 1e-5


def _known_shape(source, name, model):
    params = dict(model.named_parameters())
    return tuple(params[name].shape) if name in source.tensors and _shape_ok(source, name, params[name].shape) else None


def test_wrong_loras_are_clear_errors(gemma, tmp_path):
    source = inspect_gemma(gemma["dense"])
    shape = weight_shape(source)
    other = tg.tiny_text_model(hidden_size=16, num_hidden_layers=2)
    published_lora(other, tmp_path / "big.safetensors")
    with pytest.raises(GemmaLoraError, match=r"shapes do not fit this Gemma: .*k_proj: up \[8, 4\] @ down \[4, 16\] vs weight \[8, 12\]"):
        inspect_gemma_lora(tmp_path / "big.safetensors", shape)
    deep = tg.tiny_text_model(num_hidden_layers=3)
    published_lora(deep, tmp_path / "deep.safetensors", layers=(2,))
    with pytest.raises(GemmaLoraError, match=r"not in Gemma 3's text model: .*layers.2.mlp"):
        inspect_gemma_lora(tmp_path / "deep.safetensors", shape)
    save_file({"diffusion_model.blocks.0.lora_A.weight": torch.zeros(2, 4)}, str(tmp_path / "ltx.safetensors"))
    with pytest.raises(GemmaLoraError, match=r"partner"):
        inspect_gemma_lora(tmp_path / "ltx.safetensors", shape)
    save_file({"x.weight": torch.zeros(2, 4)}, str(tmp_path / "none.safetensors"))
    with pytest.raises(GemmaLoraError, match=r"expected a LoRA for Gemma 3"):
        inspect_gemma_lora(tmp_path / "none.safetensors", shape)
    save_file({f"{PREFIX}layers.0.mlp.up_proj.lora_down.weight": torch.zeros(2, 12),
               f"{PREFIX}layers.0.mlp.up_proj.lora_up.weight": torch.zeros(24, 2),
               f"{PREFIX}layers.0.mlp.up_proj.dora_scale": torch.zeros(24, 1)}, str(tmp_path / "dora.safetensors"))  # fmt: skip
    with pytest.raises(GemmaLoraError, match=r"DoRA"):
        inspect_gemma_lora(tmp_path / "dora.safetensors", shape)
