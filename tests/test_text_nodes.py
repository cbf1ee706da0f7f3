"""Text nodes in-process with the real host: encode -> CONDITIONING the LTX-2 MODEL samples with."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import folder_paths
import tiny_gemma as tg
from openltx.nodes.latents import OpenLTXEmptyLatent
from openltx.nodes.loaders import OpenLTXCheckpointLoader
from openltx.nodes.text import (
    OpenLTXLoadConditioning, OpenLTXSaveConditioning, OpenLTXTextEncode, OpenLTXTextEncoderLoader, text_encoder_options,
)

CKPT = "ltx2-tiny.safetensors"


@pytest.fixture(scope="module")
def model_dirs(repo_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    dirs = {n: root / n for n in ("checkpoints", "text_encoders", "output", "input")}
    for d in dirs.values():
        d.mkdir()
    subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.0",
                    "--out", str(dirs["checkpoints"] / CKPT), "--components", "all"], check=True, capture_output=True)
    model = tg.tiny_text_model()
    tg.write_comfy_file(model, dirs["text_encoders"] / "gemma_tiny.safetensors")
    tg.write_hf_dir(model, dirs["text_encoders"] / "gemma-tiny-hf")
    return dirs


@pytest.fixture
def folders(model_dirs, monkeypatch):
    for name in ("checkpoints", "text_encoders"):
        exts = folder_paths.folder_names_and_paths[name][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(model_dirs[name])], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    monkeypatch.setattr(folder_paths, "models_dir", str(model_dirs["output"].parent / "models_root"))
    monkeypatch.setattr(folder_paths, "output_directory", str(model_dirs["output"]))
    monkeypatch.setattr(folder_paths, "input_directory", str(model_dirs["input"]))
    return model_dirs


def test_options_list_files_and_hf_folders(folders):
    options = text_encoder_options()
    assert "gemma_tiny.safetensors" in options and "gemma-tiny-hf/" in options
    assert not any(o.startswith("gemma-tiny-hf/model-") for o in options)  # shards are not models


@pytest.mark.parametrize("gemma", ["gemma_tiny.safetensors", "gemma-tiny-hf/"])
def test_encode_conditions_ksampler(folders, gemma):
    import nodes

    encoder = OpenLTXTextEncoderLoader.execute(text_encoder=gemma, ltx_checkpoint=CKPT, device="auto", dtype="fp32")[0]
    assert encoder.gemma is None  # lazy
    positive = OpenLTXTextEncode.execute(text_encoder=encoder, prompt="a cat walks", frame_rate=25.0)[0]
    negative = OpenLTXTextEncode.execute(text_encoder=encoder, prompt="blurry", frame_rate=25.0)[0]
    video, extra = positive[0]
    assert video.shape == (1, 1024, 12) and extra["audio_context"].shape == (1, 1024, 12) and extra["frame_rate"] == 25.0
    model = OpenLTXCheckpointLoader.execute(ckpt_name=CKPT, weight_dtype="default")[0]
    latent = OpenLTXEmptyLatent.execute(width=64, height=96, frames=9, fps=25.0, batch_size=1)[0]
    out = nodes.common_ksampler(model, 1, 2, 3.0, "euler", "simple", positive, negative, latent)[0]
    v, a = out["samples"].unbind()
    assert torch.isfinite(v).all() and torch.isfinite(a).all()


def test_save_and_load_conditioning_never_overwrite(folders):
    cond = [[torch.randn(1, 1024, 12), {"audio_context": torch.randn(1, 1024, 12), "frame_rate": 30.0}]]
    OpenLTXSaveConditioning.execute(conditioning=cond, filename_prefix="openltx/c")
    OpenLTXSaveConditioning.execute(conditioning=cond, filename_prefix="openltx/c")
    names = sorted(p.name for p in (folders["output"] / "openltx").iterdir())
    assert names == ["c_00001.safetensors", "c_00002.safetensors"]
    (folders["input"] / "c.safetensors").write_bytes((folders["output"] / "openltx" / names[0]).read_bytes())
    loaded = OpenLTXLoadConditioning.execute(conditioning_file="c.safetensors")[0]
    assert torch.equal(loaded[0][0], cond[0][0]) and torch.equal(loaded[0][1]["audio_context"], cond[0][1]["audio_context"])
    assert loaded[0][1]["frame_rate"] == 30.0
    with pytest.raises(ValueError, match="leaves the output folder"):
        OpenLTXSaveConditioning.execute(conditioning=cond, filename_prefix="../../x")


def test_loader_errors_are_clear(folders, tmp_path):
    with pytest.raises(RuntimeError, match="LTX-2 Text Encoder Loader: .*This is an LTX-2 checkpoint"):
        import shutil

        shutil.copy(folders["checkpoints"] / CKPT, folders["text_encoders"] / "wrong.safetensors")
        OpenLTXTextEncoderLoader.execute(text_encoder="wrong.safetensors", ltx_checkpoint=CKPT)


@pytest.mark.parametrize("node", [OpenLTXTextEncoderLoader, OpenLTXTextEncode, OpenLTXSaveConditioning,
                                  OpenLTXLoadConditioning], ids=lambda n: n.__name__)
def test_schema_documents_every_input_and_output(node, repo_root):
    schema = node.GET_SCHEMA()
    assert schema.node_id == node.__name__ and schema.display_name.startswith("LTX-2")
    assert schema.category.startswith("OpenLTX/") and schema.description.strip()
    for item in list(schema.inputs) + list(schema.outputs):
        assert item.tooltip and item.tooltip.strip(), f"{schema.node_id}.{item.id} has no tooltip"
    assert (repo_root / "web" / "docs" / f"{schema.node_id}.md").is_file()
