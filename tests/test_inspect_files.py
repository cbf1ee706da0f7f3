"""``tools/inspect_checkpoint.py FILE --load`` on every kind of published file, tiny and named as published.

Each file is written in its published layout (the published header key sets, scaled: see
``tiny_layouts``, ``real_aux_fixtures``, ``tiny_text_files``, ``tiny_gemma``) under the name it is
published with, and the report must say what it is (``kind``), which release (``version`` and
the evidence), that the name is a published one (``published_as``, community or official), where
each config value came from (``shape`` / ``header`` / ``released default``) and that every part
builds strictly (``--load``).  The CLI itself (a subprocess, as users run it) is covered by
test_tools.py; here ``main`` runs in-process so the whole matrix stays quick.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import real_aux_fixtures as F
import tiny_gemma as tg
import tiny_text_files as tt
from openltx.model_loaders import tiny_layouts as T
from openltx.model_loaders.lora_file import write_tiny_lora
from openltx.model_loaders.upsampler_loading import tiny_upsampler_config, write_tiny_upsampler

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import inspect_checkpoint  # noqa: E402

# The tool puts the repository root first on sys.path (for `import model_loaders`); in this process
# it goes last, so that `import nodes` elsewhere in the session is still ComfyUI's module.
sys.path.remove(str(REPO))
sys.path.append(str(REPO))

SHAPE, HEADER, RELEASED = "shape", "header", "released default"


@pytest.fixture
def inspect(capsys):
    """``inspect(path, load=True) -> (exit code, report)``: the tool's main, its one JSON line."""

    def run(path, load: bool = True):
        code = inspect_checkpoint.main([str(path), *(["--load"] if load else [])])
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 1, lines
        return code, json.loads(lines[0])

    return run


def _published(out: dict, repo: str, community: bool) -> None:
    assert out["published_as"] is not None, out["file"]
    assert out["published_as"]["repo"] == repo and out["published_as"]["community"] is community


def _resave(src: Path, dst: Path, metadata=None, rename=lambda k: k) -> Path:
    with safe_open(str(src), framework="pt") as f:
        tensors = {rename(k): f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(dst), metadata=metadata)
    return dst


# ------------------------------------------------------------------------------ LTX checkpoints
def test_the_2_0_bundle(tmp_path, inspect):
    path = tmp_path / "ltx-2-19b-dev.safetensors"
    T.write_tiny_checkpoint(path, "2.0", "all")
    code, out = inspect(path)
    assert code == 0, out
    assert (out["kind"], out["format"], out["version"], out["has_config"]) == ("bundle", "safetensors", "2.0", True)
    _published(out, "Lightricks/LTX-2", community=False)
    assert out["transformer"]["sources"]["audio_in_channels"] == SHAPE
    assert out["transformer"]["sources"]["rope_type"] == HEADER
    parts = out["parts"]
    assert set(parts) == {"video_vae", "audio_vae", "vocoder"} and parts["video_vae"]["version"] == "2.0"
    assert parts["video_vae"]["sources"]["config.vae.latent_channels"] == SHAPE
    assert parts["video_vae"]["sources"]["config.vae.decoder_blocks[1].residual"] == HEADER
    assert parts["vocoder"]["sources"]["config.vocoder.output_sampling_rate"] == RELEASED  # 2.0 leaves 24 kHz implied
    text = out["text"]
    assert text["projection"]["kind"] == "2.0 single" and text["connectors"]["video"]["gated"] is False
    assert text["sources"]["video.heads"] == HEADER and text["sources"]["video.layers"] == SHAPE
    assert out["load"] == {name: "ok" for name in out["components"]}


def test_kijai_2_3_transformer_only_with_its_connectors(tmp_path, inspect):
    path = tmp_path / "ltx-2.3-22b-dev_transformer_only_bf16.safetensors"
    T.write_tiny_checkpoint(path, "2.3", "transformer+connectors", metadata="none")
    code, out = inspect(path)
    assert code == 0, out
    assert (out["kind"], out["version"], out["has_config"]) == ("transformer + text connectors", "2.3", False)
    _published(out, "Kijai/LTX2.3_comfy", community=True)
    assert "text_connectors" in out["published_as"]["holds"]
    t = out["transformer"]
    assert t["sources"]["num_attention_heads"] == SHAPE and t["sources"]["norm_eps"] == RELEASED
    connectors = out["text"]["connectors"]
    assert connectors["video"]["gated"] and out["text"]["projection"] is None
    assert out["text"]["sources"]["video.heads"] == SHAPE and out["text"]["sources"]["rope_type"] == RELEASED
    assert out["load"]["transformer"] == "ok"
    assert out["load"]["text_connectors"] == "not loadable alone: the text projection is in another file"


def test_a_2_0_transformer_without_metadata_takes_the_released_heads(tmp_path, inspect):
    path = tmp_path / "ltx-2-19b-dev_transformer_only_bf16.safetensors"
    T.write_tiny_checkpoint(path, "2.0", "transformer", metadata="none", heads=32)
    code, out = inspect(path)
    assert code == 0 and out["kind"] == "transformer-only" and out["version"] == "2.0", out
    _published(out, "Kijai/LTXV2_comfy", community=True)
    sources = out["transformer"]["sources"]
    assert sources["num_attention_heads"] == sources["attention_head_dim"] == RELEASED  # 2.0 tensors give heads x dim
    assert sources["caption_channels"] == SHAPE and out["load"] == {"transformer": "ok"}


def test_a_gguf_with_the_connectors_and_no_config(tmp_path, inspect):
    path = tmp_path / "LTX-2.3-dev-Q4_K_M.gguf"
    T.write_tiny_gguf(path, "2.3", config_key=None, connectors=True)
    code, out = inspect(path)
    assert code == 0, out
    assert (out["format"], out["kind"], out["version"], out["has_config"]) == (
        "gguf", "transformer + text connectors", "2.3", False)  # fmt: skip
    _published(out, "QuantStack/LTX-2.3-GGUF", community=True)
    assert out["published_as"]["may_hold"] == ["text_connectors"]
    assert out["transformer"]["sources"]["positional_embedding_theta"] == RELEASED
    assert out["text"]["connectors"]["audio"]["gated"] and out["text"]["sources"]["frequencies_precision"] == RELEASED
    assert out["load"]["transformer"] == "ok" and out["load"]["text_connectors"].startswith("not loadable alone")


# ------------------------------------------------------------------------------ split VAE files
@pytest.mark.parametrize("version, name, repo, keys, meta", [
    ("2.0", "LTX2_video_vae_bf16.safetensors", "Kijai/LTXV2_comfy", "bare", "none"),
    ("2.3", "ltx-2.3-22b-dev_video_vae.safetensors", "unsloth/LTX-2.3-GGUF", "prefixed", "section"),
])  # fmt: skip
def test_split_video_vae_files(tmp_path, inspect, version, name, repo, keys, meta):
    path = tmp_path / name
    F.write(path, version, "video", keys, meta)
    code, out = inspect(path)
    assert code == 0, out
    assert (out["kind"], out["version"], list(out["components"])) == ("video VAE", version, ["video_vae"])
    assert "transformer" not in out and "text" not in out
    _published(out, repo, community=True)
    vae = out["parts"]["video_vae"]
    assert vae["version"] == version and vae["had_header"] is (meta != "none")
    assert vae["sources"]["config.vae.encoder_blocks"] == SHAPE
    residual = vae["sources"]["config.vae.decoder_blocks[1].residual"]
    pad = vae["sources"]["config.vae.decoder_spatial_padding_mode"]
    if meta == "none":  # no header: what no shape shows is the released VAE's
        assert residual == pad == RELEASED
    else:  # the published 2.3 section names both
        assert pad == HEADER and residual == RELEASED  # 2.3's header omits the flag: ltx-core's default (false)
    assert out["load"] == {"video_vae": "ok"}


@pytest.mark.parametrize("version, name, repo, keys, meta", [
    ("2.0", "LTX2_audio_vae_bf16.safetensors", "Kijai/LTXV2_comfy", "bare", "none"),
    ("2.3", "LTX23_audio_vae_bf16.safetensors", "Kijai/LTX2.3_comfy", "prefixed", "section"),
])  # fmt: skip
def test_split_audio_vae_and_vocoder_files(tmp_path, inspect, version, name, repo, keys, meta):
    path = tmp_path / name
    F.write(path, version, "audio", keys, meta)
    code, out = inspect(path)
    assert code == 0, out
    assert (out["kind"], out["version"]) == ("audio VAE + vocoder", version)
    _published(out, repo, community=True)
    audio, vocoder = out["parts"]["audio_vae"], out["parts"]["vocoder"]
    dd = "config.audio_vae.model.params.ddconfig."
    assert audio["sources"][dd + "ch_mult"] == SHAPE
    assert audio["sources"][dd + "causality_axis"] == (RELEASED if meta == "none" else HEADER)
    assert vocoder["version"] == version
    if version == "2.0":
        assert vocoder["sources"]["config.vocoder.upsample_rates"] == RELEASED
    else:
        assert vocoder["sources"]["config.vocoder.bwe.n_fft"] == SHAPE
        assert vocoder["sources"]["config.vocoder.bwe.hop_length"] == HEADER
    assert out["load"] == {"audio_vae": "ok", "vocoder": "ok"}


# ------------------------------------------------------------------------------ text files
def test_kijai_2_3_text_projection_file(tmp_path, inspect):
    proj = {k: v for k, v in tt.text_tensors("2.3").items() if k.startswith(tt.PROJ)}
    path = tt.write(tmp_path / "ltx-2.3_text_projection_bf16.safetensors", proj)
    code, out = inspect(path)
    assert code == 0, out
    assert (out["kind"], out["version"]) == ("text projection", "2.3")
    assert "dual text projection" in out["version_evidence"][0]
    _published(out, "Kijai/LTX2.3_comfy", community=True)
    assert out["text"]["projection"] == {"kind": "2.3 dual", "inputs": 36, "outputs": [16, 8]}
    assert out["load"] == {"text_projection": "not loadable alone: the text connectors are in another file"}


def test_unsloth_embeddings_connectors_file_is_the_projection(tmp_path, inspect):
    proj = {k: v for k, v in tt.text_tensors("2.3").items() if k.startswith(tt.PROJ)}
    path = tt.write(tmp_path / "ltx-2.3-22b-dev_embeddings_connectors.safetensors", proj)
    code, out = inspect(path)
    assert code == 0 and out["kind"] == "text projection" and out["text"]["connectors"] is None, out
    _published(out, "unsloth/LTX-2.3-GGUF", community=True)
    assert out["published_as"]["holds"] == ["text_projection"]


def test_kijai_2_0_connector_file(tmp_path, inspect):
    """Projection + connectors; the projection takes one 3840-wide hidden state, so without a header
    the released Gemma width splits its inputs and the two parts load together."""
    sd = tt.text_tensors("2.0")
    sd[tt.PROJ + "aggregate_embed.weight"] = torch.randn(128, 3840, generator=torch.Generator().manual_seed(1)) / 60
    path = tt.write(tmp_path / "ltx-2-19b-embeddings_connector_dev_bf16.safetensors", sd)
    code, out = inspect(path)
    assert code == 0, out
    assert (out["kind"], out["version"]) == ("text connectors + text projection", "2.0")
    _published(out, "Kijai/LTXV2_comfy", community=True)
    text = out["text"]
    assert text["projection"] == {"kind": "2.0 single", "inputs": 3840, "outputs": [128, 128], "hidden_states": 1,
                                  "hidden_size": 3840}  # fmt: skip
    assert text["sources"]["text_hidden_size"] == RELEASED and text["sources"]["video.heads"] == RELEASED
    assert text["evidence"]["video.heads"] == "128-wide heads (no gate, no header)"
    assert out["load"] == {"text_connectors": "ok", "text_projection": "ok"}


def test_a_projection_whose_width_only_the_gemma_file_tells(tmp_path, inspect):
    path = tt.write(tmp_path / "connectors.safetensors", tt.text_tensors("2.0"))  # 3 hidden states of 128
    code, out = inspect(path)
    assert code == 0 and out["published_as"] is None, out
    assert out["text"]["sources"]["text_hidden_size"] == RELEASED
    assert out["text"]["evidence"]["text_hidden_size"].startswith("unknown; 384 inputs")
    assert all(v.startswith("not loadable alone") for v in out["load"].values()), out["load"]


# ------------------------------------------------------------------------------ upscalers
@pytest.mark.parametrize("kind, meta", [("spatial", True), ("spatial", False), ("spatial_x1.5", False)])
def test_upscalers_with_and_without_metadata(tmp_path, inspect, kind, meta):
    name = {"spatial": "ltx-2-spatial-upscaler-x2-1.0.safetensors",
            "spatial_x1.5": "ltx-2.3-spatial-upscaler-x1.5-1.0.safetensors"}[kind]
    src = tmp_path / "src.safetensors"
    write_tiny_upsampler(src, tiny_upsampler_config(kind))
    path = src.rename(tmp_path / name) if meta else _resave(src, tmp_path / name)
    code, out = inspect(path)
    assert code == 0, out
    assert (out["kind"], out["has_config"], out["version"]) == ("latent upscaler", meta, None)
    _published(out, "Lightricks/LTX-2" if kind == "spatial" else "Lightricks/LTX-2.3", community=False)
    sources = out["upscaler"]["sources"]
    assert sources["config.mid_channels"] == sources["config.spatial_upsample"] == SHAPE
    if kind == "spatial_x1.5":
        assert out["upscaler"]["config"]["spatial_scale"] == 1.5 and sources["config.spatial_scale"] == RELEASED
    assert out["load"] == {"upscaler": "ok"}


# ------------------------------------------------------------------------------ Gemma
@pytest.fixture(scope="module")
def gemma16():
    return tg.tiny_text_model(seed=3, **tg.TINY16)


@pytest.mark.parametrize("name, quant, expected", [
    ("gemma_3_12B_it.safetensors", None, "dense"),
    ("gemma_3_12B_it_fp8_scaled.safetensors", "fp8", "fp8_scaled"),
    ("gemma_3_12B_it_fp4_mixed.safetensors", "fp4_mixed", "fp4_mixed (NVFP4 + fp8 layers)"),
])  # fmt: skip
def test_comfy_org_gemma_files(tmp_path, inspect, gemma16, name, quant, expected):
    path = tg.write_comfy_file(gemma16, tmp_path / name, quant=quant)
    code, out = inspect(path)
    assert code == 0, out
    assert (out["kind"], out["version"]) == ("Gemma 3 text encoder", None)
    _published(out, "Comfy-Org/ltx-2", community=True)
    g = out["gemma"]
    assert g["quantization"] == expected and g["tokenizer"] == "embedded (spiece_model)"
    assert g["config"]["hidden_size"] == 16 and g["sources"]["hidden_size"] == SHAPE
    assert g["sources"]["rope_theta"] == RELEASED  # a single file has no config.json: Gemma 3's published value
    if quant == "fp4_mixed":
        assert g["weights"]["nvfp4"] > 0 and g["weights"]["fp8"] > 0
    assert out["load"] == {"gemma": "ok"}  # every layer dequantized, the embedded tokenizer read


def test_google_gemma_folder(tmp_path, inspect):
    folder = tg.write_hf_dir(tg.tiny_text_model(), tmp_path / "gemma-3-12b-it-qat-q4_0-unquantized")
    code, out = inspect(folder)
    assert code == 0, out
    assert (out["kind"], out["format"], out["config_source"]) == ("Gemma 3 text encoder", "folder", "config.json")
    _published(out, "google/gemma-3-12b-it-qat-q4_0-unquantized", community=False)
    assert out["gemma"]["sources"]["rope_theta"] == HEADER and out["gemma"]["sources"]["num_hidden_layers"] == SHAPE
    assert out["load"] == {"gemma": "ok"}


def test_a_gemma_file_holding_the_text_projection(tmp_path, inspect, gemma16):
    proj = {k: v for k, v in tt.text_tensors("2.3", gemma_width=16).items() if k.startswith(tt.PROJ)}
    path = tg.write_comfy_file(gemma16, tmp_path / "gemma_with_projection.safetensors", extra=proj)
    code, out = inspect(path)
    assert code == 0 and out["kind"] == "Gemma 3 text encoder", out
    assert out["text"]["projection"]["kind"] == "2.3 dual" and out["load"]["gemma"] == "ok"
    assert out["load"]["text_projection"].startswith("not loadable alone")


# ------------------------------------------------------------------------------ LoRAs
def test_transformer_lora(tmp_path, inspect):
    sd = T.tiny_state_dict("2.0", ("transformer",))
    path = tmp_path / "ltx-2-19b-distilled-lora-384.safetensors"
    write_tiny_lora(path, {k[len(T.TRANSFORMER_PREFIX):]: v for k, v in sd.items()}, rank=2)
    code, out = inspect(path)
    assert code == 0, out
    assert out["kind"] == "transformer LoRA" and out["lora"]["ranks"] == [2] and out["lora"]["modules"] > 0
    _published(out, "Lightricks/LTX-2", community=False)
    assert out["published_as"]["version"] == "2.0" and out["lora"]["video_width"] == [16]
    assert out["load"] == {"lora": "ok"}


def test_gemma_lora(tmp_path, inspect):
    from test_gemma_lora import published_lora

    path = tmp_path / "gemma-3-12b-it-abliterated_lora_rank64_bf16.safetensors"
    published_lora(tg.tiny_text_model(), path, rank=4)
    code, out = inspect(path)
    assert code == 0, out
    assert out["kind"] == "Gemma LoRA" and out["version"] is None
    _published(out, "Comfy-Org/ltx-2", community=True)
    lora = out["lora"]
    assert lora["ranks"] == [4] and lora["other_modules"] == 1 and lora["hidden_size"] == 12  # the vision module
    assert out["load"] == {"lora": "ok"}


def test_broken_files_exit_1_with_the_reason(tmp_path, inspect):
    up = tmp_path / "lora.safetensors"
    save_file({"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 16)}, str(up))
    code, out = inspect(up)
    assert code == 1 and "without their A/B partner" in out["load"]["lora"], out

    vae = tmp_path / "LTX2_video_vae_bf16.safetensors"
    F.write(vae, "2.0", "video", "bare", "section")
    config = json.loads(safe_open(str(vae), framework="pt").metadata()["config"])
    config["vae"]["latent_channels"] = 128
    edited = _resave(vae, tmp_path / "edited_vae.safetensors", {"config": json.dumps(config)})
    code, out = inspect(edited, load=False)
    assert code == 1 and "latent_channels is 128" in out["parts"]["video_vae"]["error"], out
