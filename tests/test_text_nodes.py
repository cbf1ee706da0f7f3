"""Text nodes in-process with the real host: encode -> CONDITIONING the LTX-2 MODEL samples with."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import folder_paths
import tiny_gemma as tg
import tiny_text_files as tt
from openltx.nodes.latents import OpenLTXEmptyLatent
from openltx.nodes.loaders import OpenLTXCheckpointLoader
from openltx.nodes.text import (
    OpenLTXLoadConditioning, OpenLTXSaveConditioning, OpenLTXTextEncode, OpenLTXTextEncoderLoader,
    OpenLTXTextEncoderLora, extra_file_options, text_encoder_options,
)

CKPT = "ltx2-tiny.safetensors"


@pytest.fixture(scope="module")
def model_dirs(repo_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    dirs = {n: root / n for n in ("checkpoints", "diffusion_models", "text_encoders", "loras", "output", "input")}
    for d in dirs.values():
        d.mkdir()
    subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.0",
                    "--out", str(dirs["checkpoints"] / CKPT), "--components", "all"], check=True, capture_output=True)
    model = tg.tiny_text_model()
    tg.write_comfy_file(model, dirs["text_encoders"] / "gemma_tiny.safetensors")
    tg.write_hf_dir(model, dirs["text_encoders"] / "gemma-tiny-hf")
    # LTX-2.3 as Kijai splits it: transformer-only (with the connectors) + the text projection file
    text = tt.text_tensors("2.3")
    tt.write(dirs["diffusion_models"] / "ltx-2.3-22b-dev_transformer_only_bf16.safetensors",
             {**{k: v for k, v in text.items() if not k.startswith(tt.PROJ)}, **tt.other_components()},
             tt.metadata("2.3", tt.tiny_config("2.3")))  # fmt: skip
    tt.write(dirs["text_encoders"] / "ltx-2.3_text_projection_bf16.safetensors",
             {k: v for k, v in text.items() if k.startswith(tt.PROJ)})  # fmt: skip
    # a Gemma LoRA in the published layout (vision modules included)
    g = torch.Generator().manual_seed(0)
    lora = {}
    for name, p in model.named_parameters():
        if name.startswith("layers.") and name.endswith("_proj.weight"):
            module = "text_encoders.transformer.model." + name[: -len(".weight")]
            lora[module + ".lora_down.weight"] = torch.randn(4, p.shape[1], generator=g) * 0.2
            lora[module + ".lora_up.weight"] = torch.randn(p.shape[0], 4, generator=g) * 0.2
    lora["text_encoders.transformer.vision_model.encoder.layers.0.mlp.fc1.lora_down.weight"] = torch.randn(4, 8)
    lora["text_encoders.transformer.vision_model.encoder.layers.0.mlp.fc1.lora_up.weight"] = torch.randn(8, 4)
    tt.write(dirs["loras"] / "gemma-3-12b-it-abliterated_lora_rank64_bf16.safetensors", lora)
    return dirs


@pytest.fixture
def folders(model_dirs, monkeypatch):
    for name in ("checkpoints", "diffusion_models", "text_encoders", "loras"):
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


def test_split_files_through_the_loader_node(folders):
    """Kijai's 2.3 split: transformer-only as ltx_checkpoint, the projection file as extra_file."""
    options = extra_file_options()
    assert options[0] == "none" and "ltx-2.3_text_projection_bf16.safetensors" in options
    assert "ltx-2.3-22b-dev_transformer_only_bf16.safetensors" in options and "gemma-tiny-hf/" not in options
    assert OpenLTXTextEncoderLoader.validate_inputs(text_encoder="gemma_tiny.safetensors", ltx_checkpoint=CKPT,
                                                    extra_file="ltx-2.3_text_projection_bf16.safetensors") is True
    assert "extra_file: 'nope.safetensors' was not found" in OpenLTXTextEncoderLoader.validate_inputs(
        text_encoder="gemma_tiny.safetensors", ltx_checkpoint=CKPT, extra_file="nope.safetensors")
    kw = dict(text_encoder="gemma_tiny.safetensors", ltx_checkpoint="ltx-2.3-22b-dev_transformer_only_bf16.safetensors",
              device="cpu", dtype="fp32")  # fmt: skip
    with pytest.raises(RuntimeError, match=r"LTX-2 Text Encoder Loader: .*text projection .* ltx-2.3_text_projection_bf16"):
        OpenLTXTextEncoderLoader.execute(**kw)  # without the projection file: the error says where it is published
    encoder = OpenLTXTextEncoderLoader.execute(**kw, extra_file="ltx-2.3_text_projection_bf16.safetensors")[0]
    cond = OpenLTXTextEncode.execute(text_encoder=encoder, prompt="a cat walks", frame_rate=24.0)[0]
    video, extra = cond[0]
    assert video.shape == (1, 1024, 16) and extra["audio_context"].shape == (1, 1024, 8)
    assert [f.name for f in encoder.parts.used_files] == ["ltx-2.3_text_projection_bf16.safetensors",
                                                          "ltx-2.3-22b-dev_transformer_only_bf16.safetensors"]


def test_text_encoder_lora_node(folders):
    base = OpenLTXTextEncoderLoader.execute(text_encoder="gemma_tiny.safetensors", ltx_checkpoint=CKPT, device="cpu",
                                            dtype="fp32")[0]  # fmt: skip
    name = "gemma-3-12b-it-abliterated_lora_rank64_bf16.safetensors"
    assert OpenLTXTextEncoderLora.execute(text_encoder=base, lora_name=name, strength=0.0)[0] is base
    lora = OpenLTXTextEncoderLora.execute(text_encoder=base, lora_name=name, strength=0.8)[0]
    assert lora is not base and base.loras == [] and len(lora.loras) == 1
    assert lora.key("a cat") != base.key("a cat")  # the cache keeps them apart
    twice = OpenLTXTextEncoderLora.execute(text_encoder=lora, lora_name=name, strength=0.5)[0]
    assert len(twice.loras) == 2 and twice.key("a cat") != lora.key("a cat")
    plain = OpenLTXTextEncode.execute(text_encoder=base, prompt="a cat", frame_rate=24.0)[0][0][0]
    adapted = OpenLTXTextEncode.execute(text_encoder=lora, prompt="a cat", frame_rate=24.0)[0][0][0]
    assert not torch.equal(plain, adapted)
    assert lora.gemma.weights is base.gemma.weights  # one copy of Gemma in RAM
    with pytest.raises(RuntimeError, match="LTX-2 Text Encoder LoRA: .*not in the 'loras' folder"):
        OpenLTXTextEncoderLora.execute(text_encoder=base, lora_name="missing.safetensors", strength=1.0)


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


@pytest.mark.parametrize("node", [OpenLTXTextEncoderLoader, OpenLTXTextEncoderLora, OpenLTXTextEncode,
                                  OpenLTXSaveConditioning, OpenLTXLoadConditioning], ids=lambda n: n.__name__)
def test_schema_documents_every_input_and_output(node, repo_root):
    schema = node.GET_SCHEMA()
    assert schema.node_id == node.__name__ and schema.display_name.startswith("LTX-2")
    assert schema.category.startswith("OpenLTX/") and schema.description.strip()
    for item in list(schema.inputs) + list(schema.outputs):
        assert item.tooltip and item.tooltip.strip(), f"{schema.node_id}.{item.id} has no tooltip"
    assert (repo_root / "web" / "docs" / f"{schema.node_id}.md").is_file()
