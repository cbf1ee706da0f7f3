"""The prompt enhancer: official system prompt, Gemma 3 chat tokens, generation = transformers'
``generate`` on the same tiny Gemma (greedy and seeded sampling), seeding, the disk cache and the
node.  A random tiny Gemma writes gibberish: the tests compare token ids and behaviour, never text
quality.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tiny_gemma as tg
from openltx.host import prompt_enhancer as PE
from openltx.host.text_encoder import LTXTextEncoder
from openltx.model_loaders.gemma_loading import inspect_gemma
from openltx.model_loaders.gemma_tokenizer import HFGemmaTokenizer, SentencePieceGemmaTokenizer, load_tokenizer

SYSTEM = "You write video prompts.\nBe concrete."


@pytest.fixture(scope="module")
def files(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp("enhance")
    ltx = root / "ltx2-tiny.safetensors"
    subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.0",
                    "--out", str(ltx), "--components", "all"], check=True, capture_output=True)
    model = tg.tiny_text_model(seed=3)
    return {"ltx": ltx, "model": model, "hf": tg.write_hf_dir(model, root / "gemma-hf"),
            "comfy": tg.write_comfy_file(model, root / "te" / "gemma.safetensors")}


def causal_lm(text_model):
    """transformers' Gemma3ForCausalLM on the same weights; its LM head tied to the embedding."""
    from transformers import Gemma3ForCausalLM

    lm = Gemma3ForCausalLM(text_model.config).eval()
    missing, unexpected = lm.model.load_state_dict(text_model.state_dict(), strict=True), None
    lm.tie_weights()
    assert lm.lm_head.weight.data_ptr() == lm.model.embed_tokens.weight.data_ptr() and not unexpected, missing
    return lm


def generator(files, budget=None, kind="hf"):
    source = inspect_gemma(files[kind], None)
    return PE.GemmaGenerator(source, dtype=torch.float32, device="cpu", budget_bytes=budget)


# --------------------------------------------------------------------------- system prompt
def test_official_system_prompts_are_ltx_cores_files_read_as_is(tmp_path):
    import ltx_core

    folder = Path(ltx_core.__file__).parent / "text_encoders" / "gemma" / "encoders" / "prompts"
    for kind in ("t2v", "i2v"):
        text, path = PE.official_system_prompt(kind)
        assert path.read_bytes() == (folder / f"gemma_{kind}_system_prompt.txt").read_bytes()
        assert text == (folder / f"gemma_{kind}_system_prompt.txt").read_text(encoding="utf-8")
    assert "Creative Assistant" in PE.official_system_prompt("t2v")[0]  # ltx-core 1.0.0's opening words
    # a copy the user put in models/prompt_enhancer (an extra folder) comes first
    (tmp_path / "gemma3_t2v_system_prompt.txt").write_text("mine", encoding="utf-8")
    assert PE.official_system_prompt("t2v", [tmp_path]) == ("mine", tmp_path / "gemma3_t2v_system_prompt.txt")


def test_missing_system_prompt_says_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(PE, "system_prompt_dirs", lambda extra=(): [Path(d) for d in extra])
    with pytest.raises(PE.EnhancerError, match=r"gemma_t2v_system_prompt\.txt.*github\.com/Lightricks/LTX-2.*"
                                               r"models/prompt_enhancer"):  # fmt: skip
        PE.official_system_prompt("t2v", [tmp_path])
    with pytest.raises(PE.EnhancerError, match="unknown system prompt kind"):
        PE.official_system_prompt("v2v")


# --------------------------------------------------------------------------- chat tokens
def gemma_like_tokenizer(directory: Path) -> Path:
    """A tiny sentencepiece model normalized like Gemma's own (identity normalizer, whitespace and
    newlines kept; tiny_gemma's folds them, as sentencepiece does by default), plus its HF files."""
    import io

    import sentencepiece as spm
    from transformers import AutoTokenizer, GemmaTokenizer

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(tg.CORPUS * 20), model_writer=buf, vocab_size=320, model_type="bpe", pad_id=0,
        eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>", "\n"], add_dummy_prefix=False, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, minloglevel=2,
    )  # fmt: skip
    directory.mkdir(parents=True)
    (directory / "tokenizer.model").write_bytes(buf.getvalue())
    GemmaTokenizer(vocab_file=str(directory / "tokenizer.model")).save_pretrained(directory)
    AutoTokenizer.from_pretrained(directory, local_files_only=True).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("kind", ["hf", "spm"])
def test_chat_ids_are_gemma3s_chat_format(tmp_path, kind):
    folder = gemma_like_tokenizer(tmp_path / "tok")
    hf = load_tokenizer(folder)
    assert isinstance(hf, HFGemmaTokenizer)
    tok = hf if kind == "hf" else SentencePieceGemmaTokenizer(folder / "tokenizer.model")
    user = "  user prompt: a dog runs through tall grass \n"
    ids = PE.chat_ids(tok, SYSTEM, user)
    text = (f"<bos><start_of_turn>user\n{SYSTEM}\n\n{user.strip()}<end_of_turn>\n<start_of_turn>model\n")
    expected = hf.tokenizer(text, add_special_tokens=False)["input_ids"]  # transformers parses the specials
    assert ids == expected
    sot = hf.tokenizer.convert_tokens_to_ids("<start_of_turn>")
    assert ids[:2] == [hf.bos_id, sot] and ids.count(sot) == 2
    assert PE.stop_ids(tok) == (1, hf.tokenizer.convert_tokens_to_ids("<end_of_turn>"))
    generated = ids[5:12]
    assert PE.decode_ids(tok, generated + [1]) == hf.tokenizer.decode(generated, skip_special_tokens=True)


def test_clean_response():
    assert PE.clean_response("\n* \u201cA fox\u201d runs \u2014 fast\u00a0now") == 'A fox" runs - fast now'
    assert PE.clean_response("123") == "123"


# --------------------------------------------------------------------------- generation
NEVER = [10**6]  # an eos id no model emits: generate runs to max_new_tokens


def reference_ids(files, prompt_ids, seed=None, stop=None, **kw):
    lm = causal_lm(files["model"])
    stop = list(PE.stop_ids(load_tokenizer(files["hf"]))) if stop is None else stop
    if seed is not None:
        torch.manual_seed(seed)  # after building the model (its init draws from the same generator)
    with torch.no_grad():
        out = lm.generate(torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                          eos_token_id=stop, pad_token_id=0, **kw)[0, len(prompt_ids):].tolist()  # fmt: skip
    return out[:-1] if out and out[-1] in stop else out


def prompt(files):
    return PE.chat_ids(load_tokenizer(files["hf"]), SYSTEM, "user prompt: rain falls on a red car")


def test_greedy_generation_equals_transformers_generate(files):
    gen = generator(files)
    ids = prompt(files)
    ours = gen.generate(ids, max_new_tokens=24, sampling=PE.Sampling(do_sample=False), stop=PE.stop_ids(gen.tokenizer))
    assert ours == reference_ids(files, ids, max_new_tokens=24, do_sample=False)
    ours = gen.generate(ids, max_new_tokens=24, sampling=PE.Sampling(do_sample=False))
    assert ours == reference_ids(files, ids, stop=NEVER, max_new_tokens=24, do_sample=False) and len(ours) == 24


@pytest.mark.parametrize("settings", [dict(temperature=0.7, top_k=50, top_p=1.0),
                                      dict(temperature=1.3, top_k=0, top_p=0.8),
                                      dict(temperature=0.5, top_k=5, top_p=0.9)])
def test_seeded_sampling_equals_transformers_generate(files, settings):
    gen = generator(files)
    ids = prompt(files)
    ours = gen.generate(ids, max_new_tokens=24, sampling=PE.Sampling(seed=123, **settings))
    ref = reference_ids(files, ids, seed=123, stop=NEVER, max_new_tokens=24, do_sample=True, **settings)
    assert ours == ref and len(ours) == 24
    # with Gemma's stop tokens: the same ids up to the first stop
    stop = PE.stop_ids(gen.tokenizer)
    for seed in (1, 2, 3):
        ours = gen.generate(ids, max_new_tokens=24, sampling=PE.Sampling(seed=seed, **settings), stop=stop)
        assert ours == reference_ids(files, ids, seed=seed, max_new_tokens=24, do_sample=True, **settings)


def test_streamed_and_single_file_gemma_generate_the_same(files):
    ids = prompt(files)
    sampling = PE.Sampling(seed=7)
    resident = generator(files).generate(ids, max_new_tokens=16, sampling=sampling)
    layer = sum(p.numel() for p in files["model"].layers[0].parameters()) * 4
    streamed = generator(files, budget=3 * layer)  # one layer resident at most: the rest streams
    assert streamed.generate(ids, max_new_tokens=16, sampling=sampling) == resident
    assert not all(u.resident for u in streamed.units)
    assert generator(files, kind="comfy").generate(ids, max_new_tokens=16, sampling=sampling) == resident


def test_seed_decides_the_text(files):
    gen = generator(files)
    ids = prompt(files)
    a = gen.generate(ids, max_new_tokens=20, sampling=PE.Sampling(seed=1, temperature=1.5, top_k=0))
    b = gen.generate(ids, max_new_tokens=20, sampling=PE.Sampling(seed=1, temperature=1.5, top_k=0))
    c = gen.generate(ids, max_new_tokens=20, sampling=PE.Sampling(seed=2, temperature=1.5, top_k=0))
    assert a == b and a != c


# --------------------------------------------------------------------------- the enhancer + cache
def encoder(files, cache, kind="comfy"):
    return LTXTextEncoder(files[kind], files["ltx"], dtype=torch.float32, cache_dir=cache)


def test_enhance_is_cached_and_the_gemma_is_shared_with_encoding(files, tmp_path):
    te = encoder(files, tmp_path / "prompts")
    enh = PE.PromptEnhancer(te, tmp_path / "enhanced")
    text = enh.enhance("a fox in the snow", SYSTEM, sampling=PE.Sampling(seed=5), max_new_tokens=20)
    assert isinstance(text, str) and te.gemma_builds == 1 and enh.cache.misses == 1
    expected_ids = generator(files, kind="comfy").generate(
        PE.chat_ids(te.gemma.tokenizer, SYSTEM, "user prompt: a fox in the snow"), max_new_tokens=20,
        sampling=PE.Sampling(seed=5), stop=PE.stop_ids(te.gemma.tokenizer))
    assert text == PE.clean_response(PE.decode_ids(te.gemma.tokenizer, expected_ids))
    # encoding afterwards reuses the same Gemma (no second build, no second read of the weights)
    video, _ = te.encode(text)
    assert te.gemma_builds == 1 and isinstance(te.gemma, PE.GemmaGenerator)
    fresh_video, _ = encoder(files, tmp_path / "other").encode(text)
    assert torch.equal(video, fresh_video)

    # a fresh encoder (as after a restart): served from disk, Gemma never built
    te2 = encoder(files, tmp_path / "prompts")
    enh2 = PE.PromptEnhancer(te2, tmp_path / "enhanced")
    assert enh2.enhance("a fox in the snow", SYSTEM, sampling=PE.Sampling(seed=5), max_new_tokens=20) == text
    assert enh2.cache.hits == 1 and te2.gemma is None
    # anything that changes the result is a miss
    for change in (dict(prompt="a fox in the snow!"), dict(seed=6), dict(max_new_tokens=21), dict(system="x")):
        args = {"prompt": "a fox in the snow", "seed": 5, "max_new_tokens": 20, "system": SYSTEM, **change}
        enh2.enhance(args["prompt"], args["system"], sampling=PE.Sampling(seed=args["seed"]),
                     max_new_tokens=args["max_new_tokens"])
    assert enh2.cache.misses == 4
    assert [p.name for p in (tmp_path / "enhanced").iterdir() if p.suffix == ".tmp"] == []


def test_corrupt_cache_entry_is_a_miss_and_rewritten(files, tmp_path):
    enh = PE.PromptEnhancer(encoder(files, None), tmp_path)
    text = enh.enhance("waves crash", SYSTEM, sampling=PE.Sampling(do_sample=False), max_new_tokens=8)
    path = enh.cache.path(enh.key(SYSTEM, "waves crash", PE.Sampling(do_sample=False), 8))
    path.write_text("{not json", encoding="utf-8")
    again = PE.PromptEnhancer(encoder(files, None), tmp_path)
    assert again.enhance("waves crash", SYSTEM, sampling=PE.Sampling(do_sample=False), max_new_tokens=8) == text
    assert again.cache.misses == 1
    third = PE.PromptEnhancer(encoder(files, None), tmp_path)
    third.enhance("waves crash", SYSTEM, sampling=PE.Sampling(do_sample=False), max_new_tokens=8)
    assert third.cache.hits == 1


def test_bad_requests_are_clear_errors(files, tmp_path):
    enh = PE.PromptEnhancer(encoder(files, None), tmp_path)
    with pytest.raises(PE.EnhancerError, match="prompt is empty"):
        enh.enhance("  ", SYSTEM)
    with pytest.raises(PE.EnhancerError, match="temperature must be > 0"):
        PE.Sampling(temperature=0.0)


# --------------------------------------------------------------------------- the node
def test_node_with_the_official_prompt_and_custom(files, tmp_path, monkeypatch):
    import folder_paths

    from openltx.nodes.enhance import OpenLTXEnhancePrompt

    monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path))
    te = encoder(files, None)
    out = OpenLTXEnhancePrompt.execute(te, "a cat on a roof", seed=3, max_new_tokens=16)
    text = out.args[0]
    official, _ = PE.official_system_prompt("t2v")
    enh = PE.PromptEnhancer(encoder(files, None), None)
    assert text == enh.enhance("a cat on a roof", official, sampling=PE.Sampling(seed=3), max_new_tokens=16)
    assert out.ui.as_dict() == {"text": (text,)}
    assert list((tmp_path / "openltx_prompt_cache" / "enhanced").glob("*.json"))  # cached under models/
    custom = OpenLTXEnhancePrompt.execute(te, "a cat on a roof", seed=3, max_new_tokens=16, system_prompt="custom",
                                          custom_system_prompt=SYSTEM).args[0]
    assert custom == enh.enhance("a cat on a roof", SYSTEM, sampling=PE.Sampling(seed=3), max_new_tokens=16)
    with pytest.raises(ValueError, match="LTX-2 Enhance Prompt: system_prompt is 'custom' but"):
        OpenLTXEnhancePrompt.execute(te, "a cat", system_prompt="custom", custom_system_prompt=" ")
