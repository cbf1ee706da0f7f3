"""The shipped workflows' model download hints (no server needed).

The ComfyUI frontend reads ``properties.models`` (``[{name, url, directory}]``, as Comfy-Org's
templates carry it) of each node when a workflow loads, keeps the entries whose ``name`` is one
of the node's widget values, and offers to download the ones ``directory`` lacks - only from
huggingface.co / civitai URLs and only ``.safetensors`` / ``.sft`` names (frontend 1.32's
MissingModelsWarning).  So every model file a loader names must carry an entry with the Hub's
resolve URL of a published file (tools/model_catalog.py, the table the download presets use).
A Hugging Face folder (Google's Gemma) cannot be one download: it carries no entry (the dialog
would flag it missing forever) and the Note names it with the preset that fetches it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import model_catalog  # noqa: E402

UI_DIR = REPO / "workflows"
API_DIR = REPO / "tests" / "workflows_api"
SHIPPED = sorted(p.stem for p in UI_DIR.glob("*.json"))
COMFY_FOLDERS = {"checkpoints", "diffusion_models", "text_encoders", "loras", "latent_upscale_models", "vae"}
PRESET_URLS = {f.url: f for p in model_catalog.PRESETS.values() for f in p.files}


def model_values(node: dict) -> list[str]:
    """The widget values of a node that name a model file or a model folder."""
    return [v for v in node.get("widgets_values") or []
            if isinstance(v, str) and (v.endswith((".safetensors", ".sft", ".gguf")) or v.endswith("/"))]  # fmt: skip


def load_ui(name: str) -> dict:
    return json.loads((UI_DIR / f"{name}.json").read_text(encoding="utf-8"))


def test_workflows_are_there():
    assert len(SHIPPED) >= 7 and SHIPPED == sorted(p.stem for p in API_DIR.glob("*.json"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_loader_offers_its_files_for_download(name):
    ui = load_ui(name)
    loaders = [n for n in ui["nodes"] if "Loader" in n["type"]]
    assert loaders, f"{name}: no loader nodes"
    for node in loaders:
        values = model_values(node)
        assert values, f"{name}: loader {node['id']} ({node['type']}) names no model file"
        models = node.get("properties", {}).get("models")
        singles = [v for v in values if not v.endswith("/")]
        assert models, f"{name}: loader {node['id']} ({node['type']}) carries no properties.models"
        assert sorted(m["name"] for m in models) == sorted(set(singles)), (name, node["type"], models, values)
        for entry in models:
            assert set(entry) == {"name", "url", "directory"}, entry
            published = PRESET_URLS.get(entry["url"])
            assert published is not None, f"{name}: {entry['url']} is not the resolve URL of a preset's file"
            assert entry["url"] == f"https://huggingface.co/{published.repo}/resolve/main/{published.filename}"
            assert published.name == entry["name"] and entry["directory"] == published.folder, entry
            assert entry["directory"] in COMFY_FOLDERS and entry["name"].endswith(".safetensors"), entry
        for value in values:  # nothing unpublished: each name is a published file or Hugging Face folder
            assert value in model_catalog.FILES or value in model_catalog.FOLDERS, f"{name}: unknown model {value!r}"


@pytest.mark.parametrize("name", SHIPPED)
def test_the_note_names_the_folders_and_the_download_command(name):
    ui = load_ui(name)
    note = next(n for n in ui["nodes"] if n["type"] == "Note")["widgets_values"][0]
    named = {v for n in ui["nodes"] if "Loader" in n["type"] for v in model_values(n)}
    command = next(line for line in note.splitlines() if "python tools/download_models.py" in line)
    presets = command.split("python tools/download_models.py", 1)[1].split()
    assert all(p in model_catalog.PRESETS for p in presets), presets
    fetched = {f.name for p in presets for f in model_catalog.PRESETS[p].files}
    for value in named:
        if value.endswith("/"):
            assert f"models/text_encoders/{value}" in note and model_catalog.preset_for(value) in presets
            assert not any(m["name"] == value for n in ui["nodes"] for m in n.get("properties", {}).get("models", []))
            assert {f.name for f in model_catalog.FOLDERS[value]} <= fetched
        else:
            assert value in fetched and f"models/{model_catalog.FILES[value].folder}/{value}" in note


def test_the_workflows_preset_is_what_the_shipped_workflows_name():
    named = set()
    for name in SHIPPED:
        for node in json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8")).values():
            named |= {v for v in node["inputs"].values() if isinstance(v, str) and
                      (v in model_catalog.FILES or v in model_catalog.FOLDERS)}  # fmt: skip
    expected = set()
    for value in named:
        in_folder = model_catalog.FOLDERS.get(value)
        expected |= set(in_folder) if in_folder else {model_catalog.FILES[value]}
    assert set(model_catalog.PRESETS["workflows"].files) == expected
