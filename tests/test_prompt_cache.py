"""The prompt cache: hits skip Gemma entirely; changes miss; corrupt files are rewritten."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import tiny_gemma as tg
from openltx.host.prompt_cache import PromptCache
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.host.text_encoder import LTXTextEncoder


@pytest.fixture(scope="module")
def paths(tmp_path_factory, repo_root):
    root = tmp_path_factory.mktemp("cache")
    ltx = root / "ltx2-tiny.safetensors"
    subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.0",
                    "--out", str(ltx), "--components", "all"], check=True, capture_output=True)
    model = tg.tiny_text_model()
    return {"ltx": ltx, "gemma": tg.write_comfy_file(model, root / "te" / "gemma.safetensors"), "root": root}


def make(paths, cache):
    return LTXTextEncoder(paths["gemma"], paths["ltx"], dtype=torch.float32, cache_dir=cache)


def test_second_encode_is_served_from_disk_without_gemma(paths, tmp_path):
    first = make(paths, tmp_path)
    video, audio = first.encode("a cat walks on the beach")
    assert first.gemma_builds == 1 and first.cache.misses == 1
    assert video.shape[:2] == (1, 1024) and audio.shape[:2] == (1, 1024)
    second = make(paths, tmp_path)  # a fresh encoder, as after a restart
    v2, a2 = second.encode("a cat walks on the beach")
    assert second.gemma is None and second.gemma_builds == 0 and second.cache.hits == 1
    assert torch.equal(v2, video) and torch.equal(a2, audio)
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []  # atomic writes leave no temp file


def test_changed_prompt_or_encoder_is_a_miss(paths, tmp_path):
    enc = make(paths, tmp_path)
    enc.encode("rain on a red car")
    other = make(paths, tmp_path)
    other.encode("rain on a red car!")
    assert other.cache.misses == 1 and other.gemma_builds == 1
    st = os.stat(paths["gemma"])
    os.utime(paths["gemma"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file was replaced
    touched = make(paths, tmp_path)
    touched.encode("rain on a red car")
    assert touched.cache.misses == 1 and touched.gemma_builds == 1


def test_corrupt_cache_file_is_ignored_and_rewritten(paths, tmp_path):
    enc = make(paths, tmp_path)
    video, _ = enc.encode("waves crash")
    file = enc.cache.path(enc.key("waves crash"))
    file.write_bytes(file.read_bytes()[:100])  # truncated
    again = make(paths, tmp_path)
    v2, _ = again.encode("waves crash")
    assert again.cache.misses == 1 and torch.equal(v2, video)
    third = make(paths, tmp_path)
    third.encode("waves crash")
    assert third.cache.hits == 1 and third.gemma_builds == 0
    garbage = PromptCache(tmp_path)
    garbage.path("x").write_bytes(b"not a safetensors file")
    assert garbage.get("x") is None


def test_checkpoint_without_text_weights_is_a_clear_error(paths, tmp_path, repo_root):
    ltx = tmp_path / "transformer_only.safetensors"
    subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.0",
                    "--out", str(ltx), "--components", "transformer"], check=True, capture_output=True)
    with pytest.raises(CheckpointError, match="text projection .* and the text connectors .* are in none of the selected"):
        LTXTextEncoder(paths["gemma"], ltx, cache_dir=tmp_path)
