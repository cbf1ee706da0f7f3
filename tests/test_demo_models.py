"""``MODELS_DIR=... make demo`` with real file names (tools/demo.py ``locate_real_files``), no server.

Tiny files named as the published ones (valid safetensors headers, a Gemma folder with config,
five shards and a tokenizer) in the two layouts users have - a ComfyUI ``models`` folder
(checkpoints/, text_encoders/ or clip/, sub-folders) and one flat folder:

* the published names are found and put into the workflow as ComfyUI lists them (checked with
  ComfyUI's own folder_paths and the demo's extra_model_paths.yaml);
* other published variants stand in (the fp8 bundle, a Comfy-Org single-file Gemma, the LTX-2.3
  bundle - which switches the guider to its LTX-2.3 preset);
* without a bundle, the split files stand in, whichever publisher's (Kijai's 2.0 / 2.3 splits,
  a GGUF whose header shows the text connectors with unsloth's side files): the checkpoint,
  VAE (``second_vae_name``) and text encoder (``extra_file``) loaders get the file of each part;
* each missing file gives one line naming the ``tools/download_models.py`` preset that fetches
  it (a Gemma folder lacking one shard: that shard; a split set lacking parts: those split
  files; a GGUF without the connectors: the file that has them), a truncated file asks for
  ``--force``, an unchecked download in the staging folder is not used;
* ``tools/demo.py --models-dir`` with nothing in it stops with those lines before starting anything.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import demo  # noqa: E402
import model_catalog  # noqa: E402

T2V = json.loads((REPO / "tests" / "workflows_api" / "ltx2_t2v.json").read_text(encoding="utf-8"))
GEMMA = "gemma-3-12b-it-qat-q4_0-unquantized"
SHARDS = [f.name for f in model_catalog.GEMMA_FILES if f.name.startswith("model-")]
LINE = re.compile(r"^(?P<path>\S+): (?P<why>.+?) -> python tools/download_models.py (?P<preset>\S+) "
                  r"--models-dir (?P<dir>\S+)")


def tiny_safetensors(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": np.random.default_rng(seed).standard_normal(16).astype(np.float32)}, str(path))
    return path


def gemma_folder(parent: Path, skip: tuple[str, ...] = ()) -> Path:
    folder = parent / GEMMA
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "gemma3"}')
    (folder / "tokenizer.model").write_bytes(b"\x0a\x03tiny")
    for i, shard in enumerate(SHARDS):
        if shard not in skip:
            tiny_safetensors(folder / shard, seed=i)
    for name in skip:
        (folder / name).unlink(missing_ok=True)
    return folder


def inputs(prompt: dict, class_type: str) -> dict:
    return next(n["inputs"] for n in prompt.values() if n["class_type"] == class_type)


def model_inputs(prompt: dict, split: bool = False) -> dict:
    out = {
        "ckpt": inputs(prompt, "OpenLTXCheckpointLoader")["ckpt_name"],
        "vae": inputs(prompt, "OpenLTXVAELoader")["vae_name"],
        "te_ckpt": inputs(prompt, "OpenLTXTextEncoderLoader")["ltx_checkpoint"],
        "gemma": inputs(prompt, "OpenLTXTextEncoderLoader")["text_encoder"],
        "preset": inputs(prompt, "OpenLTXMultimodalGuider")["preset"],
    }
    if split:
        out["vae2"] = inputs(prompt, "OpenLTXVAELoader")["second_vae_name"]
        out["extra"] = inputs(prompt, "OpenLTXTextEncoderLoader")["extra_file"]
    return out


def comfy_resolves(models_dir: Path, prompt: dict, tmp_path: Path) -> dict:
    """Where ComfyUI's folder_paths, given the demo's extra_model_paths.yaml, finds each model input."""
    yaml = demo.models_yaml(models_dir, tmp_path / "demo_models.yaml")
    names = model_inputs(prompt, split="second_vae_name" in inputs(prompt, "OpenLTXVAELoader"))
    script = f"""
import json, os, sys
sys.path.insert(0, {str(demo.comfy_path())!r})
import folder_paths
from utils.extra_config import load_extra_path_config
load_extra_path_config({str(yaml)!r})
names = {json.dumps(names)}
def find(name, *folders):  # the loaders' lookup: the first folder that has it
    return next((p for f in folders if (p := folder_paths.get_full_path(f, name))), None)
out = {{"ckpt": find(names["ckpt"], "checkpoints", "diffusion_models"), "vae": find(names["vae"], "checkpoints", "vae"),
        "te_ckpt": find(names["te_ckpt"], "checkpoints", "diffusion_models")}}
if "vae2" in names:
    out["vae2"] = find(names["vae2"], "checkpoints", "vae")
    out["extra"] = find(names["extra"], "text_encoders", "checkpoints", "diffusion_models")
gemma = names["gemma"]
if gemma.endswith("/"):
    out["gemma"] = next((os.path.join(r, gemma.rstrip("/")) for r in folder_paths.get_folder_paths("text_encoders")
                         if os.path.isfile(os.path.join(r, gemma.rstrip("/"), "config.json"))), None)
else:
    out["gemma"] = folder_paths.get_full_path("text_encoders", gemma)
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- found ---------------------------------------------------------------------------------------

def test_a_models_tree_with_the_published_names(tmp_path):
    models = tmp_path / "models"
    ckpt = tiny_safetensors(models / "checkpoints" / "ltx-2-19b-dev.safetensors")
    folder = gemma_folder(models / "text_encoders")
    prompt, missing, used = demo.locate_real_files(T2V, models)
    assert missing == [] and used == ["ltx-2-19b-dev.safetensors", f"{GEMMA}/"]
    assert prompt == T2V  # the workflow's own names, nothing to change
    where = comfy_resolves(models, prompt, tmp_path)
    assert Path(where["ckpt"]) == ckpt and Path(where["vae"]) == ckpt and Path(where["gemma"]) == folder


def test_a_flat_folder_with_other_published_variants(tmp_path):
    models = tmp_path / "ltx"
    ckpt = tiny_safetensors(models / "ltx-2-19b-dev-fp8.safetensors")
    gemma = tiny_safetensors(models / "gemma" / "gemma_3_12B_it_fp4_mixed.safetensors")
    prompt, missing, _ = demo.locate_real_files(T2V, models)
    assert missing == []
    assert model_inputs(prompt) == {"ckpt": "ltx-2-19b-dev-fp8.safetensors", "vae": "ltx-2-19b-dev-fp8.safetensors",
                                    "te_ckpt": "ltx-2-19b-dev-fp8.safetensors",
                                    "gemma": "gemma/gemma_3_12B_it_fp4_mixed.safetensors", "preset": "LTX-2.0"}
    where = comfy_resolves(models, prompt, tmp_path)
    assert Path(where["ckpt"]) == ckpt and Path(where["gemma"]) == gemma


def test_ltx_2_3_files_take_the_guiders_2_3_preset(tmp_path):
    models = tmp_path / "models"
    ckpt = tiny_safetensors(models / "checkpoints" / "LTX" / "ltx-2.3-22b-dev-fp8.safetensors")
    gemma = tiny_safetensors(models / "clip" / "gemma_3_12B_it.safetensors")  # ComfyUI's older folder name
    prompt, missing, _ = demo.locate_real_files(T2V, models)
    assert missing == []
    got = model_inputs(prompt)
    assert got["ckpt"] == got["vae"] == got["te_ckpt"] == "LTX/ltx-2.3-22b-dev-fp8.safetensors"
    assert got["gemma"] == "gemma_3_12B_it.safetensors" and got["preset"] == "LTX-2.3"
    where = comfy_resolves(models, prompt, tmp_path)
    assert Path(where["ckpt"]) == ckpt and Path(where["gemma"]) == gemma


def test_the_2_0_bundle_wins_over_2_3_and_a_folder_missing_only_a_tokenizer_file_variant(tmp_path):
    models = tmp_path / "models"
    tiny_safetensors(models / "checkpoints" / "ltx-2.3-22b-dev.safetensors")
    tiny_safetensors(models / "checkpoints" / "ltx-2-19b-dev.safetensors")
    folder = gemma_folder(models / "text_encoders")
    (folder / "tokenizer.model").rename(folder / "tokenizer.json")  # either tokenizer file will do
    prompt, missing, _ = demo.locate_real_files(T2V, models)
    assert missing == [] and model_inputs(prompt)["ckpt"] == "ltx-2-19b-dev.safetensors"
    assert model_inputs(prompt)["preset"] == "LTX-2.0"


# --- missing -------------------------------------------------------------------------------------

def parse(lines: list[str]) -> list[dict]:
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    return [m.groupdict() for m in parsed]


def test_each_missing_file_is_one_line_naming_its_preset(tmp_path):
    models = tmp_path / "empty"
    models.mkdir()
    _, missing, used = demo.locate_real_files(T2V, models)
    assert used == [] and len(missing) == 2, missing
    got = parse(missing)
    assert [(g["path"], g["why"], g["preset"]) for g in got] == [
        ("checkpoints/ltx-2-19b-dev.safetensors", "missing", "ltx-2-dev"),
        (f"text_encoders/{GEMMA}/", "missing", "gemma-3-12b-qat"),
    ]
    assert all(Path(g["dir"]) == models for g in got)
    assert "ltx-2-19b-dev-fp8.safetensors" in missing[0] and "gemma_3_12B_it.safetensors" in missing[1]
    for g in got:  # the preset named really downloads that file
        name = g["path"].split("/", 1)[1]
        assert name in {f.name for f in model_catalog.PRESETS[g["preset"]].files} or \
            name in model_catalog.FOLDERS and model_catalog.preset_for(name) == g["preset"]  # fmt: skip


def test_a_gemma_folder_without_one_shard_names_that_shard(tmp_path):
    models = tmp_path / "models"
    tiny_safetensors(models / "ltx-2-19b-dev.safetensors")
    gemma_folder(models, skip=(SHARDS[2],))
    _, missing, _ = demo.locate_real_files(T2V, models)
    assert len(missing) == 1, missing
    (got,) = parse(missing)
    assert got["path"] == f"{GEMMA}/{SHARDS[2]}" and got["why"] == "missing" and got["preset"] == "gemma-3-12b-qat"


def test_a_truncated_file_asks_for_a_forced_download(tmp_path):
    models = tmp_path / "models"
    ckpt = tiny_safetensors(models / "checkpoints" / "ltx-2-19b-dev.safetensors")
    ckpt.write_bytes(ckpt.read_bytes()[:-10])
    staged = models / ".openltx_downloads" / "Lightricks" / "LTX-2" / "ltx-2-19b-dev.safetensors"
    tiny_safetensors(staged)  # an unchecked download in the staging folder is never used
    gemma_folder(models / "text_encoders")
    _, missing, _ = demo.locate_real_files(T2V, models)
    assert len(missing) == 1 and missing[0].rstrip().split(" (or have")[0].endswith("--force"), missing
    (got,) = parse(missing)
    assert got["path"] == "checkpoints/ltx-2-19b-dev.safetensors" and got["why"].startswith("incomplete")
    assert got["preset"] == "ltx-2-dev"


def test_demo_with_an_empty_models_dir_stops_with_the_lines(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MODELS_DIR", "PROMPT")}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "demo.py"), "--models-dir", str(models),
                           "--output-dir", str(tmp_path / "out")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("demo: ") for line in lines), lines
    assert "python tools/download_models.py ltx-2-dev" in lines[1]
    assert "python tools/download_models.py gemma-3-12b-qat" in lines[2]
    assert "starting ComfyUI" not in proc.stdout and "Traceback" not in proc.stderr


# --- split files ---------------------------------------------------------------------------------

def published(folder: Path, name: str, seed: int = 0) -> Path:
    """A tiny stand-in under its published name (content does not matter to the lookup)."""
    return tiny_safetensors(folder / name, seed)


def test_kijai_2_3_split_files_in_a_models_tree(tmp_path):
    models = tmp_path / "models"
    t_only = published(models / "diffusion_models", "ltx-2.3-22b-dev_transformer_only_bf16.safetensors")
    video = published(models / "vae", "LTX23_video_vae_bf16.safetensors", 1)
    audio = published(models / "vae", "LTX23_audio_vae_bf16.safetensors", 2)
    projection = published(models / "text_encoders", "ltx-2.3_text_projection_bf16.safetensors", 3)
    gemma = published(models / "text_encoders", "gemma_3_12B_it_fp8_scaled.safetensors", 4)
    prompt, missing, used = demo.locate_real_files(T2V, models)
    assert missing == [], missing
    got = model_inputs(prompt, split=True)
    assert got == {"ckpt": t_only.name, "vae": video.name, "vae2": audio.name, "te_ckpt": t_only.name,
                   "extra": projection.name, "gemma": gemma.name, "preset": "LTX-2.3"}  # fmt: skip
    assert set(used) == {t_only.name, video.name, audio.name, projection.name, gemma.name}
    where = comfy_resolves(models, prompt, tmp_path)
    assert {k: Path(v) for k, v in where.items()} == {"ckpt": t_only, "vae": video, "vae2": audio, "te_ckpt": t_only,
                                                      "extra": projection, "gemma": gemma}  # fmt: skip


def test_kijai_2_0_split_files_in_a_flat_folder(tmp_path):
    models = tmp_path / "ltx"
    t_only = published(models, "ltx-2-19b-dev_transformer_only_bf16.safetensors")
    published(models, "LTX2_video_vae_bf16.safetensors", 1)
    published(models, "LTX2_audio_vae_bf16.safetensors", 2)
    connectors = published(models / "text", "ltx-2-19b-embeddings_connector_dev_bf16.safetensors", 3)
    gemma_folder(models)
    prompt, missing, _ = demo.locate_real_files(T2V, models)
    assert missing == [], missing
    got = model_inputs(prompt, split=True)
    # the connector file (projection + connectors) is a text_encoders file: extra_file, next to the transformer
    assert (got["ckpt"], got["te_ckpt"], got["extra"]) == (t_only.name, t_only.name, f"text/{connectors.name}")
    assert (got["vae"], got["vae2"], got["preset"]) == ("LTX2_video_vae_bf16.safetensors",
                                                        "LTX2_audio_vae_bf16.safetensors", "LTX-2.0")  # fmt: skip
    where = comfy_resolves(models, prompt, tmp_path)
    assert Path(where["extra"]) == connectors and Path(where["ckpt"]) == t_only


def test_a_gguf_with_its_connectors_and_unsloths_side_files(tmp_path):
    from openltx.model_loaders.tiny_layouts import write_tiny_gguf

    models = tmp_path / "models"
    gguf = models / "unet" / "LTX-2.3-dev-Q4_K_M.gguf"  # ComfyUI's older folder name for diffusion_models
    gguf.parent.mkdir(parents=True)
    write_tiny_gguf(gguf, "2.3", connectors=True)
    for i, name in enumerate(("ltx-2.3-22b-dev_video_vae.safetensors", "ltx-2.3-22b-dev_audio_vae.safetensors")):
        published(models / "vae", name, i)
    published(models / "text_encoders", "ltx-2.3-22b-dev_embeddings_connectors.safetensors")
    gemma_folder(models / "text_encoders")
    prompt, missing, _ = demo.locate_real_files(T2V, models)
    assert missing == [], missing
    got = model_inputs(prompt, split=True)
    assert got["ckpt"] == got["te_ckpt"] == gguf.name  # the GGUF's header shows the connectors
    assert got["extra"] == "ltx-2.3-22b-dev_embeddings_connectors.safetensors"  # unsloth's: the projection
    assert got["vae"] == "ltx-2.3-22b-dev_video_vae.safetensors"
    assert got["vae2"] == "ltx-2.3-22b-dev_audio_vae.safetensors"
    assert Path(comfy_resolves(models, prompt, tmp_path)["ckpt"]) == gguf


def test_a_gguf_without_connectors_names_the_file_that_has_them(tmp_path):
    from openltx.model_loaders.tiny_layouts import write_tiny_gguf

    models = tmp_path / "models"
    gguf = models / "diffusion_models" / "ltx-2.3-22b-dev-Q4_K_M.gguf"
    gguf.parent.mkdir(parents=True)
    write_tiny_gguf(gguf, "2.3", connectors=False)
    for i, name in enumerate(("ltx-2.3-22b-dev_video_vae.safetensors", "ltx-2.3-22b-dev_audio_vae.safetensors",
                              "ltx-2.3-22b-dev_embeddings_connectors.safetensors")):  # fmt: skip
        published(models / ("text_encoders" if "embeddings" in name else "vae"), name, i)
    gemma_folder(models / "text_encoders")
    _, missing, used = demo.locate_real_files(T2V, models)
    assert used == [] and len(missing) == 1, missing
    (got,) = parse(missing)
    assert got["path"] == "diffusion_models/ltx-2.3-22b-dev_transformer_only_bf16.safetensors"
    assert got["preset"] == "ltx-2.3-dev-transformer-only" and "ltx-2.3-22b-dev.safetensors" in missing[0]
    fetched = {f.name for f in model_catalog.PRESETS[got["preset"]].files}
    assert "ltx-2.3-22b-dev_transformer_only_bf16.safetensors" in fetched


def test_each_missing_split_file_is_one_line_naming_its_preset(tmp_path):
    models = tmp_path / "models"
    published(models / "diffusion_models", "ltx-2.3-22b-dev_transformer_only_bf16.safetensors")
    gemma_folder(models / "text_encoders")
    _, missing, _ = demo.locate_real_files(T2V, models)
    got = parse(missing)
    assert [(g["path"], g["why"], g["preset"]) for g in got] == [
        ("vae/LTX23_video_vae_bf16.safetensors", "missing", "ltx-2.3-vae-split"),
        ("vae/LTX23_audio_vae_bf16.safetensors", "missing", "ltx-2.3-vae-split"),
        ("text_encoders/ltx-2.3_text_projection_bf16.safetensors", "missing", "ltx-2.3-text-projection"),
    ], missing
    assert "ltx-2.3-22b-dev_video_vae.safetensors" in missing[0]  # unsloth's file would do too
    for g in got:  # the preset named really downloads that file
        assert g["path"].split("/", 1)[1] in {f.name for f in model_catalog.PRESETS[g["preset"]].files}


# --- the planned split prompt runs ------------------------------------------------------------------

def _split_bundle(bundle: Path, out: Path, prefixes: tuple[str, ...], metadata: dict | None) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file as save_torch

    with safe_open(str(bundle), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefixes)}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_torch(tensors, str(out), metadata=metadata)
    return out


@pytest.mark.server
def test_the_split_prompt_runs_on_the_server(comfy_server, tmp_path, request):
    """Kijai's 2.0 split files (a tiny bundle cut as he cuts it) and Comfy-Org's single-file Gemma in the
    server's model folders: the prompt the demo plans for them renders the t2v workflow to an mp4."""
    import tiny_gemma

    from comfy_host import history_error
    from openltx.model_loaders import tiny_layouts as T

    bundle = tmp_path / "bundle.safetensors"
    T.write_tiny_checkpoint(bundle, "2.0", "all")
    meta = T.tiny_metadata("2.0")
    dirs = comfy_server.model_dirs
    written = [dirs["diffusion_models"] / "ltx-2-19b-dev_transformer_only_bf16.safetensors",
               dirs["vae"] / "LTX2_video_vae_bf16.safetensors", dirs["vae"] / "LTX2_audio_vae_bf16.safetensors",
               dirs["text_encoders"] / "ltx-2-19b-embeddings_connector_dev_bf16.safetensors",
               dirs["text_encoders"] / "gemma_3_12B_it.safetensors"]  # fmt: skip
    request.addfinalizer(lambda: [p.unlink(missing_ok=True) for p in written])  # the session server's folders
    T.write_tiny_checkpoint(written[0], "2.0", "transformer")
    _split_bundle(bundle, written[1], ("vae.",), meta)
    _split_bundle(bundle, written[2], ("audio_vae.", "vocoder."), meta)
    connectors = tuple(f"model.diffusion_model.{s}_embeddings_connector." for s in ("video", "audio"))
    _split_bundle(bundle, written[3], ("text_embedding_projection.", *connectors), None)
    tiny_gemma.write_comfy_file(tiny_gemma.tiny_text_model(seed=0), written[4])
    models = dirs["checkpoints"].parent
    planned, missing, _ = demo.locate_real_files(T2V, models)
    assert missing == [], missing
    got = model_inputs(planned, split=True)
    assert [got[k] for k in ("ckpt", "vae", "vae2", "te_ckpt", "extra", "gemma")] == [
        written[0].name, written[1].name, written[2].name, written[0].name, written[3].name, written[4].name]
    entry = comfy_server.run_prompt(demo.tiny_prompt(planned), timeout=300)
    assert history_error(entry) is None, f"{history_error(entry)}\n{comfy_server.log_tail(30)}"
    videos = demo.saved_videos(entry, comfy_server.base_dir / "output")
    assert len(videos) == 1 and videos[0].stat().st_size > 0, entry.get("outputs")
