"""tools/make_tiny_checkpoint.py --version 2.5 and tools/inspect_checkpoint.py on the 2.5 files."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _run(repo_root, tool, *args):
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / tool), *map(str, args)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.parametrize("part, variant, kind", [
    ("transformer", "bf16", "transformer + text connectors"),
    ("transformer", "comfy-int8-convrot", "transformer + text connectors"),
    ("gemma4", "comfy-int8-convrot", "Gemma 4 text encoder + LTX text projection"),
    ("diffusion-vae", "bf16", "video VAE with a diffusion decoder (DiffVAE)"),
    ("duration-head", "bf16", "duration head"),
])  # fmt: skip
def test_make_and_inspect_25_files(repo_root, tmp_path, part, variant, kind):
    out = tmp_path / f"{part}.safetensors"
    rc, made, err = _run(repo_root, "make_tiny_checkpoint.py", "--version", "2.5", "--part", part, "--variant", variant,
                         "--out", out)  # fmt: skip
    assert rc == 0 and made["part"] == part and out.is_file(), err
    rc, info, err = _run(repo_root, "inspect_checkpoint.py", out)
    assert rc == 0, err
    assert info["kind"] == kind and info["version"] == "2.5" and info["model_version"] == "2.5.0"
    if part == "transformer":
        t = info["transformer"]
        assert t["values"]["ff_bias"] is False and t["values"]["use_keyframes_abs_pos_embedding"] is True
        assert t["sources"]["ff_bias"] == "shape" and t["caption_channels"] == 32
    if part == "gemma4":
        assert info["hidden_states"] == 7 and info["int8_convrot_layers"] > 0
        assert info["projection"]["video_aggregate_embed.weight"] == [16, 224]
    if part in ("gemma4", "diffusion-vae", "duration-head"):
        rc, loaded, err = _run(repo_root, "inspect_checkpoint.py", out, "--load")
        part = {"gemma4": "text_projection", "diffusion-vae": "video_vae", "duration-head": "duration_head"}[part]
        assert rc == 0 and loaded["load"] == {part: "ok"}, (loaded, err)


def test_make_the_whole_25_set(repo_root, tmp_path):
    rc, made, err = _run(repo_root, "make_tiny_checkpoint.py", "--version", "2.5", "--part", "all", "--out", tmp_path)
    assert rc == 0, err
    names = {p.split("/")[-2] + "/" + p.split("/")[-1] for p in made["files"].values()}
    assert "diffusion_models/ltx-2.5-22b-distilled-transformer-nvfp4.safetensors" in names
    assert "model_patches/ltx-2.5-duration-head-bf16.safetensors" in names
    assert "loras/ltx-2.5-22b-distilled-lora-450-bf16.safetensors" in names
    assert all((tmp_path / n).is_file() for n in names)


def test_variant_for_a_part_without_one_is_refused(repo_root, tmp_path):
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.5",
                           "--part", "duration-head", "--variant", "nvfp4", "--out", str(tmp_path / "x.safetensors")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0 and "nvfp4" in proc.stderr
