"""Gemma 4 (the LTX-2.5 text encoder): our plain-torch decoder equals transformers 5.24's on the same file.

A tiny ``gemma4-12b-with-proj-ltx-2.5-bf16.safetensors`` (the released key groups, header
``gemma_config``, the embedded ``tokenizer_json``) is written at run time.  transformers 5.24
builds ``Gemma4UnifiedForConditionalGeneration`` from the same ``gemma_config`` (``gemma4_unified``,
sdpa attention) in a subprocess, loads the same tensors (our ``model.*`` names renamed to its
``model.language_model.*``: the conversion lives here) and tokenizes with ``AutoTokenizer`` on
the embedded ``tokenizer.json`` + ``tokenizer_config.json``.  Hidden states are compared in
float32, bound 1e-5 relative.  The tiny model has both layer kinds (5 sliding, 1 full without
``v_proj``), a 4-token window shorter than the prompts, norm weights ~1 and placeholder tokens,
so a wrong window, RoPE or k = v handling cannot pass.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ltx25_oracle import rel_err, run_oracle
from openltx.host.gemma_streaming import GemmaEncoder
from openltx.ltx2 import gemma4_text as g4
from openltx.ltx2.text_features import FeatureExtractorV2
from openltx.model_loaders.gemma4_loading import Int8Weight, inspect_gemma4, is_gemma4_file, load_gemma4_projection
from openltx.model_loaders.gemma_loading import check_width
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.model_loaders.tiny_layouts_25 import FILE_NAMES, TINY_GEMMA4_TOKENIZER_CONFIG, write_tiny_gemma4

LENGTH = 24
PROMPTS = [
    "a cat walks on the beach at sunset",
    "  zebra <|image|> 🐱 rain,\n in   the  ",
    "",
    "the camera pans slowly across the city at night while waves crash on the rocks and music plays loud",
]
BOUND = 1e-5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma4")
    return {
        "bf16": (root / FILE_NAMES["gemma4"], write_tiny_gemma4(root / FILE_NAMES["gemma4"], seed=5)),
        "int8": (root / FILE_NAMES["gemma4_int8"], write_tiny_gemma4(root / FILE_NAMES["gemma4_int8"], seed=5,
                                                                   int8_convrot=True)),  # fmt: skip
        "int8_header": (root / "hdr.safetensors", write_tiny_gemma4(root / "hdr.safetensors", seed=5,
                                                                   int8_convrot=True, header_markers=True)),  # fmt: skip
    }


def our_states(source, prompt, **kw):
    enc = GemmaEncoder(source, dtype=torch.float32, max_length=LENGTH, **kw)
    states, mask = enc.encode(prompt)
    return torch.stack([s[0] for s in states]), mask[0], enc


@pytest.mark.slow
def test_hidden_states_and_tokens_equal_transformers_5(files, tmp_path):
    path, tensors = files["bf16"]
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        blobs = {k: f.get_tensor(k).numpy().tobytes().decode() for k in ("tokenizer_json", "hf_asset__tokenizer_config.json")}
    sd = {"model.language_model." + k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    out = run_oracle("transformers5", """
        import json, os, transformers
        from transformers import AutoTokenizer, Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration
        assert transformers.__version__ == '5.24.0', transformers.__version__
        cfg = json.loads(inp['gemma_config'])
        config = Gemma4UnifiedConfig(text_config=cfg['text_config'], vision_config=None, audio_config=None,
                                     image_token_id=cfg['image_token_id'], video_token_id=cfg['video_token_id'],
                                     audio_token_id=cfg['audio_token_id'])
        config._attn_implementation = 'sdpa'
        config.text_config._attn_implementation = 'sdpa'
        model = Gemma4UnifiedForConditionalGeneration(config).eval()
        missing, unexpected = model.load_state_dict(inp['sd'], strict=False)
        out['missing'], out['unexpected'] = missing, unexpected
        os.makedirs('tok', exist_ok=True)
        open('tok/tokenizer.json', 'w').write(inp['tokenizer'])
        open('tok/tokenizer_config.json', 'w').write(inp['tokenizer_config'])
        tok = AutoTokenizer.from_pretrained('tok')
        tok.padding_side = 'left'
        out['tokenizer_class'] = type(tok).__name__
        out['ids'], out['masks'], out['states'] = [], [], []
        for p in inp['prompts']:
            enc = tok(p.strip(), padding='max_length', max_length=inp['length'], truncation=True,
                      add_special_tokens=True, return_tensors='pt')
            res = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, output_hidden_states=True)
            out['ids'].append(enc.input_ids[0]); out['masks'].append(enc.attention_mask[0])
            out['states'].append(torch.stack([h[0] for h in res.hidden_states]))
    """, {"sd": sd, "gemma_config": meta["gemma_config"], "tokenizer": blobs["tokenizer_json"],
          "tokenizer_config": blobs["hf_asset__tokenizer_config.json"], "prompts": PROMPTS, "length": LENGTH},
        tmp_path)  # fmt: skip
    assert all(k.startswith("lm_head.") for k in out["missing"]) and not out["unexpected"], out
    source = inspect_gemma4(path)
    errors = {}
    for i, prompt in enumerate(PROMPTS):
        states, mask, enc = our_states(source, prompt)
        ids, _ = enc.tokenizer.tokenize(prompt)
        assert torch.equal(ids[0], out["ids"][i]) and torch.equal(mask, out["masks"][i]), (prompt, out["tokenizer_class"])
        ref = out["states"][i]
        assert states.shape == ref.shape == (7, LENGTH, 32)
        valid = mask.bool()
        errors[i] = rel_err(states[:, valid], ref[:, valid])
        # padded positions are dropped later (the feature extractor zeroes them) but still agree
        assert torch.equal(torch.isnan(states), torch.isnan(ref))
        pad = ~valid & ~torch.isnan(ref).any(-1).any(0)
        if pad.any():
            assert rel_err(states[:, pad], ref[:, pad]) <= BOUND
    print("Gemma 4 vs transformers 5.24 (fp32), max rel err per prompt:", json.dumps(errors))
    assert max(errors.values()) <= BOUND, errors
    # the prompts reach past the 4-token window and hold a placeholder token (embedded as padding)
    assert int(out["masks"][3].sum()) == LENGTH and 7 in out["ids"][1].tolist()


def test_device_modes_and_int8_layers(files):
    source = inspect_gemma4(files["bf16"][0])
    resident, mask, _ = our_states(source, PROMPTS[0])
    streamed, _, enc = our_states(source, PROMPTS[0], budget_bytes=1)
    assert torch.equal(resident, streamed) and enc.peak_bytes < source.weight_bytes(torch.float32)
    # comfy-int8-convrot file (both marker styles): int8 layers stay int8 in memory and are un-rotated
    # per use; the result equals the float model run on the dequantized weights
    from openltx.model_loaders.gemma_loading import StoredWeight
    from openltx.model_loaders.quant import int8_convrot as icr

    for name in ("int8", "int8_header"):
        src8 = inspect_gemma4(files[name][0])
        assert len(src8.int8) == 5 * 7 + 6 and all(c.group_size == 16 for c in src8.int8.values())
        states8, mask8, enc8 = our_states(src8, PROMPTS[0], budget_bytes=1)
        assert torch.equal(mask8, mask)
        assert isinstance(enc8.weights["layers.0.self_attn.q_proj.weight"], Int8Weight)
        assert enc8.weights["layers.0.self_attn.q_proj.weight"].data.dtype == torch.int8
        tensors8 = files[name][1]
        ref = GemmaEncoder(source, dtype=torch.float32, max_length=LENGTH)
        ref.weights = {}
        for param in src8.tensors:
            key = "model." + param
            t = tensors8[key]
            if t.dtype == torch.int8:
                t = icr.dequantize(t, tensors8[key[: -len(".weight")] + ".weight_scale"], 16, torch.float32)
            ref.weights[param] = StoredWeight(t.float())
        expect = torch.stack([x[0] for x in ref.encode(PROMPTS[0])[0]])
        assert rel_err(states8, expect) <= 1e-6
        assert rel_err(states8, resident) > 1e-4  # int8 rounding is visible: the int8 weights were used
    check_width(source, 32, 7)
    with pytest.raises(CheckpointError, match="hidden size 32"):
        check_width(source, 3840, 49)


def test_projection_is_the_v2_feature_extractor(files):
    source = inspect_gemma4(files["bf16"][0])
    proj = load_gemma4_projection(source, dtype=torch.float32)
    assert isinstance(proj, FeatureExtractorV2) and proj.video_aggregate_embed.weight.shape == (16, 224)
    states, mask, _ = our_states(source, PROMPTS[1])
    video, audio = proj([s[None] for s in states], mask[None])
    assert video.shape == (1, LENGTH, 16) and audio.shape == (1, LENGTH, 8)
    proj8 = load_gemma4_projection(inspect_gemma4(files["int8"][0]), dtype=torch.float32)
    w, w8 = proj.video_aggregate_embed.weight, proj8.video_aggregate_embed.weight
    assert 0 < rel_err(w8, w) < 0.02


def test_inspection_reads_the_released_layout(files, tmp_path):
    path, tensors = files["bf16"]
    assert is_gemma4_file(path)
    source = inspect_gemma4(path)
    cfg = source.text
    assert cfg.layer_types == ("sliding_attention",) * 5 + ("full_attention",)
    assert (cfg.head_dim, cfg.global_head_dim, cfg.num_key_value_heads, cfg.num_global_key_value_heads) == (16, 32, 1, 1)
    assert cfg.attention_k_eq_v and cfg.sliding_window == 4 and cfg.placeholder_token_ids == (7, 9, 8)
    assert source.num_hidden_states == 7 and source.hidden_size == 32
    assert set(source.ignored) == {"vision_model.", "audio_projector.", "multi_modal_projector."}
    tok = source.make_tokenizer(LENGTH)
    ids, mask = tok.tokenize("a cat")
    assert ids[0, LENGTH - int(mask.sum())] == 2 and ids[0, 0] == 0  # <bos> first, left padding with <pad>

    def rewrite(name, drop=(), change=None, meta=None):
        out = tmp_path / name
        with safe_open(str(path), "pt") as f:
            data = {k: f.get_tensor(k) for k in f.keys() if k not in drop}
            m = dict(f.metadata(), **(meta or {}))
        data.update(change or {})
        save_file(data, str(out), metadata=m)
        return out

    with pytest.raises(CheckpointError, match="tokenizer"):
        inspect_gemma4(rewrite("a.safetensors", drop=["tokenizer_json"]))
    with pytest.raises(CheckpointError, match="belong to no part"):
        inspect_gemma4(rewrite("b.safetensors", change={"lm_head.extra": torch.zeros(2)}))
    bad = json.loads(safe_open(str(path), "pt").metadata()["gemma_config"])
    bad["text_config"]["num_kv_shared_layers"] = 2
    with pytest.raises(CheckpointError, match="num_kv_shared_layers"):
        inspect_gemma4(rewrite("c.safetensors", meta={"gemma_config": json.dumps(bad)}))
    bad = json.loads(safe_open(str(path), "pt").metadata()["gemma_config"])
    bad["text_config"]["attention_k_eq_v"] = False
    with pytest.raises(CheckpointError, match="attention_k_eq_v"):
        inspect_gemma4(rewrite("d.safetensors", meta={"gemma_config": json.dumps(bad)}))
    # a missing layer tensor: strict when the module is built
    src = inspect_gemma4(rewrite("e.safetensors", drop=["model.layers.2.mlp.up_proj.weight"]))
    with pytest.raises(CheckpointError, match="missing"):
        GemmaEncoder(src, dtype=torch.float32, max_length=LENGTH).encode("a cat")
    with pytest.raises(CheckpointError, match="Gemma 4"):
        inspect_gemma4(files["int8"][0].parent.parent / "nothing.safetensors")


def test_rope_tables():
    c = g4.Gemma4TextConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_attention_heads=1, head_dim=8,
                            num_key_value_heads=1, global_head_dim=16, num_global_key_value_heads=1,
                            layer_types=(g4.SLIDING, g4.FULL), attention_k_eq_v=True)  # fmt: skip
    full = g4.inv_freq(c, g4.FULL)
    assert full.shape == (8,) and (full[2:] == 0).all() and full[0] == 1.0  # 1/4 of the 8 pairs rotate
    assert torch.allclose(full[1], torch.tensor(1e6 ** (-2 / 16)))
    sliding = g4.inv_freq(c, g4.SLIDING)
    assert sliding.shape == (4,) and torch.allclose(sliding[1], torch.tensor(1e4 ** (-2 / 8)))
    masks = g4.attention_masks(torch.tensor([[0, 1, 1, 1, 1, 1]]), window=2)
    assert masks[g4.SLIDING][0, 0, 5].tolist() == [False, False, False, False, True, True]
    assert masks[g4.FULL][0, 0, 5].tolist() == [False, True, True, True, True, True]
    assert TINY_GEMMA4_TOKENIZER_CONFIG["add_bos_token"]
