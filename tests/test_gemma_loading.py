"""Gemma 3 loading, tokenization and device modes: equal to transformers and to ltx-core.

Tiny random Gemma 3 (width 12, 2 layers: what the tiny LTX checkpoints' projection takes) in
the three layouts the loader reads; a sentencepiece tokenizer trained at test time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tiny_gemma as tg
from openltx.model_loaders.gemma_loading import check_width, inspect_gemma
from openltx.host.gemma_streaming import GemmaEncoder
from openltx.model_loaders.gemma_tokenizer import HFGemmaTokenizer, SentencePieceGemmaTokenizer, load_tokenizer
from openltx.model_loaders.safetensors_file import CheckpointError

PROMPTS = ["a cat walks on the beach at sunset", "  rain falls on a red car\n", "", "<start_of_turn> music plays"]
TRANSFORMERS5 = Path(__file__).resolve().parent.parent / ".venv" / "transformers5"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma")
    model = tg.tiny_text_model()
    return {
        "model": model,
        "hf": tg.write_hf_dir(model, root / "hf"),
        "comfy": tg.write_comfy_file(model, root / "te" / "gemma_tiny.safetensors"),
        "fp8": tg.write_comfy_file(model, root / "te8" / "gemma_tiny_fp8_scaled.safetensors", fp8=True),
        "root": root,
    }


@pytest.fixture(scope="module")
def fp4(tmp_path_factory):
    """A tiny Gemma with widths that are multiples of 16 (as Gemma 3's are) in the fp4_mixed layout."""
    root = tmp_path_factory.mktemp("gemma_fp4")
    model = tg.tiny_text_model(seed=3, **tg.TINY16)
    path = tg.write_comfy_file(model, root / "gemma_tiny_fp4_mixed.safetensors", quant="fp4_mixed")
    return {"model": model, "path": path, "dense": tg.dequantized_fp4_mixed_model(model)}


def reference_states(model, tokenizer, text):
    ids, mask = tokenizer.tokenize(text)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False).hidden_states


# --- tokenization ---------------------------------------------------------------------------

def test_tokenizers_agree_and_pad_left(files):
    hf = load_tokenizer(files["hf"], max_length=16)
    sp = load_tokenizer(files["hf"] / "tokenizer.model", max_length=16)
    assert isinstance(hf, HFGemmaTokenizer) and isinstance(sp, SentencePieceGemmaTokenizer)
    for text in PROMPTS + ["a dog runs " * 20]:  # the last one is truncated
        ids_a, mask_a = hf.tokenize(text)
        ids_b, mask_b = sp.tokenize(text)
        assert torch.equal(ids_a, ids_b) and torch.equal(mask_a, mask_b), text
        assert ids_a.shape == (1, 16)
        n = int(mask_a.sum())
        assert mask_a[0, : 16 - n].eq(0).all() and ids_a[0, : 16 - n].eq(0).all()  # left padding with <pad> = 0
        assert ids_a[0, 16 - n] == 2  # <bos> first, no <eos>
        assert 1 not in ids_a[0].tolist()


def test_tokenizer_matches_ltx_core(files):
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

    ref = LTXVGemmaTokenizer(str(files["hf"]), 1024)
    ours = load_tokenizer(files["hf"] / "tokenizer.model")
    for text in PROMPTS:
        pairs = ref.tokenize_with_weights(text)["gemma"]
        ids, mask = ours.tokenize(text)
        assert ids[0].tolist() == [int(t) for t, _ in pairs] and mask[0].tolist() == [int(w) for _, w in pairs]


# --- layouts -> hidden states equal to transformers -------------------------------------------

@pytest.mark.parametrize("layout", ["hf", "comfy"])
def test_layouts_give_the_transformers_hidden_states(files, layout):
    source = inspect_gemma(files[layout])
    assert source.hidden_size == 12 and source.num_hidden_states == 3 and not source.is_fp8
    enc = GemmaEncoder(source, dtype=torch.float32)
    for text in PROMPTS[:2]:
        states, mask = enc.encode(text)
        ref = reference_states(files["model"], enc.tokenizer, text)
        assert len(states) == 3 and states[0].shape == (1, 1024, 12) and mask.shape == (1, 1024)
        for a, b in zip(states, ref):
            assert torch.equal(a, b)
    assert enc.builds == 1


def test_fp8_scaled_file_is_dequantized_per_layer(files):
    source = inspect_gemma(files["fp8"])
    assert source.is_fp8 and source.formats == {"dense": 2 + 6 * 2, "fp8": 2 * 7}
    enc = GemmaEncoder(source, dtype=torch.float32)
    states, _ = enc.encode(PROMPTS[0])
    assert enc.weights["layers.0.self_attn.q_proj.weight"].data.dtype == torch.float8_e4m3fn  # kept as fp8 in RAM
    ref = reference_states(tg.dequantized_fp8_model(files["model"]), enc.tokenizer, PROMPTS[0])
    for a, b in zip(states, ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_fp4_mixed_file_equals_the_dequantized_dense_model(fp4):
    """NVFP4 + fp8 layers with .comfy_quant markers; weights stay 4-bit in RAM, dequantized per layer."""
    source = inspect_gemma(fp4["path"])
    assert source.formats == {"dense": 2 + 6 * 2, "nvfp4": 2 * 7 - 2, "fp8": 2}
    assert source.hidden_size == 16 and source.config["num_key_value_heads"] == 1
    assert source.embedded_tokenizer is not None  # the spiece_model tensor
    enc = GemmaEncoder(source, dtype=torch.float32)
    states, mask = enc.encode(PROMPTS[0])
    q = enc.weights["layers.0.self_attn.q_proj.weight"]
    assert q.data.dtype == torch.uint8 and q.data.shape == (32, 8) and q.nbytes(torch.float32) == 32 * 16 * 4
    assert enc.weights["layers.0.self_attn.v_proj.weight"].data.dtype == torch.float8_e4m3fn
    ref = reference_states(fp4["dense"], enc.tokenizer, PROMPTS[0])
    errors = [((a - b).abs().max() / b.abs().max()).item() for a, b in zip(states, ref)]
    assert max(errors) <= 1e-6, errors
    # and it is not the unquantized model: 4-bit rounding shows
    raw = reference_states(fp4["model"], enc.tokenizer, PROMPTS[0])
    assert (states[-1] - raw[-1]).abs().max() > 1e-3


def test_fp4_mixed_streams_like_it_runs_resident(fp4):
    source = inspect_gemma(fp4["path"])
    resident = GemmaEncoder(source, dtype=torch.float32)
    states, _ = resident.encode(PROMPTS[1])
    budget = resident.units[-1].nbytes + 2 * resident.units[1].nbytes
    streamed = GemmaEncoder(source, dtype=torch.float32, budget_bytes=budget)
    states2, _ = streamed.encode(PROMPTS[1])
    assert [u.resident for u in streamed.units] == [False, False, False, True]
    assert all(torch.equal(a, b) for a, b in zip(states, states2)) and streamed.peak_bytes <= budget


def _edit_file(src, dst, edit):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        sd = {k: f.get_tensor(k) for k in f.keys()}
    edit(sd)
    save_file(sd, str(dst))
    return dst


def test_quantized_layers_that_cannot_be_read_are_clear_errors(fp4, tmp_path):
    key = "model.layers.1.mlp.gate_proj"
    int8 = _edit_file(fp4["path"], tmp_path / "int8.safetensors",
                      lambda sd: sd.update({key + ".comfy_quant": tg._marker("int8_tensorwise")}))  # fmt: skip
    with pytest.raises(CheckpointError, match=r"layer 'model.layers.1.mlp.gate_proj' is quantized as 'int8_tensorwise'"):
        inspect_gemma(int8)
    lost = _edit_file(fp4["path"], tmp_path / "lost.safetensors", lambda sd: sd.pop(key + ".weight_scale_2"))
    with pytest.raises(CheckpointError, match=r"marked NVFP4, which needs .* '.weight_scale_2'"):
        inspect_gemma(lost)
    bare = _edit_file(fp4["path"], tmp_path / "bare.safetensors",
                      lambda sd: [sd.pop(key + s) for s in (".weight_scale_2", ".weight_scale", ".comfy_quant")])  # fmt: skip
    with pytest.raises(CheckpointError, match=r"U8 weight without a quantization format"):
        inspect_gemma(bare)
    stray = _edit_file(fp4["path"], tmp_path / "stray.safetensors",
                       lambda sd: sd.update({"model.layers.0.mlp.nothing.weight_scale": torch.ones(())}))  # fmt: skip
    with pytest.raises(CheckpointError, match=r"scales without a weight: 'layers.0.mlp.nothing.weight_scale'"):
        inspect_gemma(stray)


# --- device modes ---------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["comfy", "fp8"])
def test_streaming_equals_resident_and_keeps_the_budget(files, layout):
    source = inspect_gemma(files[layout])
    resident = GemmaEncoder(source, dtype=torch.float32)
    states, _ = resident.encode(PROMPTS[0])
    layer = resident.units[1].nbytes
    budget = resident.units[-1].nbytes + 2 * layer  # the norm + the streaming window: no layer stays
    streamed = GemmaEncoder(source, dtype=torch.float32, device="cpu", budget_bytes=budget)
    seen = []
    states2, _ = streamed.encode(PROMPTS[0], progress=lambda d, t: seen.append((d, t)))
    assert [u.resident for u in streamed.units] == [False, False, False, True]
    assert all(torch.equal(a, b) for a, b in zip(states, states2))
    assert 0 < streamed.peak_bytes <= budget
    assert streamed.device_bytes == streamed.units[-1].nbytes  # only the resident norm is left
    assert seen == [(1, 2), (2, 2)]
    # a budget with room for one layer keeps layer 0 resident
    one = GemmaEncoder(source, dtype=torch.float32, budget_bytes=budget + layer)
    states3, _ = one.encode(PROMPTS[0])
    assert [u.resident for u in one.units] == [False, True, False, True]
    assert all(torch.equal(a, b) for a, b in zip(states, states3))


# --- parity with ltx-core's Gemma encoder ----------------------------------------------------

def test_hidden_states_match_ltx_core_gemma_encoder(files):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    from ltx_core.text_encoders.gemma.encoders.base_encoder import GemmaTextEncoder
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

    text_cfg = files["model"].config.to_dict()
    vision = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=28,
                  patch_size=14, model_type="siglip_vision_model")  # fmt: skip
    cfg = Gemma3Config(text_config=text_cfg, vision_config=vision, mm_tokens_per_image=4, image_token_index=5)
    torch.manual_seed(0)
    full = Gemma3ForConditionalGeneration(cfg).eval()
    language = full.model.language_model
    missing, unexpected = language.load_state_dict(files["model"].state_dict(), strict=True)
    ref_encoder = GemmaTextEncoder(model=full, tokenizer=LTXVGemmaTokenizer(str(files["hf"]), 1024), dtype=torch.float32)
    ours = GemmaEncoder(inspect_gemma(files["hf"]), dtype=torch.float32)
    for text in PROMPTS[:2]:
        with torch.no_grad():
            ref_states, ref_mask = ref_encoder.encode(text)
        states, mask = ours.encode(text)
        assert torch.equal(mask, ref_mask)
        assert len(states) == len(ref_states) == 3
        for a, b in zip(states, ref_states):
            err = ((a - b).norm() / b.norm()).item()
            assert err <= 1e-5, err


# --- errors ---------------------------------------------------------------------------------

def test_folder_without_tokenizer_is_a_clear_error(files, tmp_path):
    d = tmp_path / "hf_no_tok"
    tg.write_hf_dir(files["model"], d, tokenizer=False)
    with pytest.raises(CheckpointError, match="expected a Gemma tokenizer .* found none"):
        inspect_gemma(d)
    bare = tmp_path / "solo" / "g.safetensors"
    tg.write_comfy_file(files["model"], bare, embed_tokenizer=False)
    with pytest.raises(CheckpointError, match="tokenizer.model"):
        inspect_gemma(bare)
    tg.train_tokenizer(bare.parent, hf=False)  # a tokenizer.model next to the file is found
    assert inspect_gemma(bare).tokenizer == str(bare.parent)


def test_wrong_size_gemma_is_a_clear_error(files, tmp_path):
    small = tg.tiny_text_model(hidden_size=16, num_hidden_layers=3)
    path = tg.write_comfy_file(small, tmp_path / "gemma_other.safetensors")
    source = inspect_gemma(path)
    with pytest.raises(CheckpointError, match=r"hidden size 16, 3 layers .* expects hidden size 12 from 3 hidden states"):
        check_width(source, 12, 3)
    check_width(inspect_gemma(files["comfy"]), 12, 3)


def test_non_gemma_files_are_clear_errors(tmp_path, repo_root):
    from safetensors.torch import save_file

    llama = tmp_path / "llama.safetensors"
    save_file({"model.layers.0.self_attn.q_proj.weight": torch.zeros(4, 4), "model.embed_tokens.weight": torch.zeros(8, 4)},
              str(llama))  # fmt: skip
    with pytest.raises(CheckpointError, match="found a different language model"):
        inspect_gemma(llama)
    ltx = tmp_path / "ltx.safetensors"
    subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.0",
                    "--out", str(ltx), "--components", "transformer"], check=True, capture_output=True)  # fmt: skip
    with pytest.raises(CheckpointError, match="This is an LTX-2 checkpoint"):
        inspect_gemma(ltx)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(CheckpointError, match="found none"):
        inspect_gemma(tmp_path / "nothing")


# --- transformers 5.x -------------------------------------------------------------------------

def test_pack_runs_on_transformers_5(files, fp4, tmp_path):
    """The same loader under transformers 5.x (installed into .venv/transformers5 by make setup)."""
    if not (TRANSFORMERS5 / "transformers").is_dir():
        pytest.skip(f"no transformers 5.x at {TRANSFORMERS5} (make setup installs it)")
    paths = {"hf": str(files["hf"]), "comfy": str(files["comfy"]), "fp8": str(files["fp8"]), "fp4": str(fp4["path"])}
    script = tmp_path / "run5.py"
    script.write_text(
        "import sys, torch, transformers\n"
        f"sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parent.parent)!r}]\n"
        "assert transformers.__version__.startswith('5.'), transformers.__version__\n"
        "from model_loaders.gemma_loading import inspect_gemma\n"
        "from host.gemma_streaming import GemmaEncoder\n"
        "out = {}\n"
        f"for name, p in {paths!r}.items():\n"
        "    enc = GemmaEncoder(inspect_gemma(p), dtype=torch.float32, budget_bytes=(1 if name == 'fp8' else None))\n"
        "    states, mask = enc.encode('a cat walks on the beach at sunset')\n"
        "    out[name] = torch.stack([s[0] for s in states])\n"
        f"torch.save(out, {str(tmp_path / 'out.pt')!r})\n"
    )
    env = dict(os.environ, PYTHONPATH=str(TRANSFORMERS5))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt")
    for name, path in paths.items():
        enc = GemmaEncoder(inspect_gemma(path), dtype=torch.float32)
        states, _ = enc.encode("a cat walks on the beach at sunset")
        torch.testing.assert_close(got[name], torch.stack([s[0] for s in states]), rtol=1e-5, atol=1e-5)
