"""The published-files table (``model_loaders/published_files.py``) and the download catalog agree.

The table is what the loaders' "missing part" messages, the demo and the catalog's community
presets name files from; the catalog's official presets name the same files: a file in both
has the same repository, path and folder, every published file is downloadable by a preset, and
a preset that fetches community files says so.  The loaders' messages name only files of the
release the selected files show.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import model_catalog  # noqa: E402

from openltx.model_loaders import published_files as P  # noqa: E402


def test_every_published_file_is_in_a_preset_with_the_same_repo_path_and_folder():
    for f in P.FILES:
        if f.name in model_catalog.FOLDERS:  # Google's Gemma folder: its files share the folder
            hub = model_catalog.FOLDERS[f.name]
            assert {h.repo for h in hub} == {f.repo} and {h.model_folder for h in hub} == {f.folder}
            continue
        hub = model_catalog.FILES.get(f.name)
        assert hub is not None, f"{f.name} is in no download preset"
        assert (hub.repo, hub.filename, hub.folder) == (f.repo, f.path, f.folder), f.name
        assert hub.community is f.community, f.name
        assert model_catalog.preset_for(f.name) in model_catalog.PRESETS


def test_presets_that_fetch_community_files_say_so():
    listed = model_catalog.listing()["presets"]
    for name, preset in model_catalog.PRESETS.items():
        community = [f.name for f in preset.files if f.community]
        assert listed[name]["community"] is bool(community), name
        if preset in model_catalog.COMMUNITY_PRESETS:
            assert preset.description.startswith("community files (") and community == [f.name for f in preset.files]
    official = {f.name for f in P.FILES if not f.community}
    # the one community file a shipped workflow needs: the ID-LoRA, published only in Comfy-Org's split files
    only_community = {"ltx-2.3-id-lora-talkvid-3k.safetensors"}
    assert {f.name for f in model_catalog.PRESETS["workflows"].files} - {f.name for f in model_catalog.GEMMA_FILES} \
        <= official | only_community  # fmt: skip
    # the community files the issue names, with their publishers' repositories
    for name, repo in (("ltx-2.3-22b-dev_transformer_only_bf16.safetensors", "Kijai/LTX2.3_comfy"),
                       ("LTX2_audio_vae_bf16.safetensors", "Kijai/LTXV2_comfy"),
                       ("ltx-2.3-22b-dev_embeddings_connectors.safetensors", "unsloth/LTX-2.3-GGUF"),
                       ("LTX-2.3-dev-Q4_K_M.gguf", "QuantStack/LTX-2.3-GGUF"),
                       ("gemma_3_12B_it_fp4_mixed.safetensors", "Comfy-Org/ltx-2")):  # fmt: skip
        assert P.BY_NAME[name].repo == repo and P.BY_NAME[name].community


def test_the_catalog_needs_neither_torch_nor_the_hub():
    code = ("import sys; sys.path.insert(0, 'tools'); import model_catalog; "
            "assert 'torch' not in sys.modules and 'huggingface_hub' not in sys.modules; "
            "print(len(model_catalog.PRESETS))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and int(proc.stdout) == len(model_catalog.PRESETS), proc.stderr


@pytest.mark.parametrize("version, other", [("2.0", "2.3"), ("2.3", "2.0")])
def test_messages_name_the_files_of_one_release(version, other):
    for part in ("video_vae", "audio_vae", "text_projection", "text_connectors"):
        text = P.where_published(part, version)
        carriers = [f for f in P.carriers(part, version) if f.version == version]
        assert carriers and all(f.name in text for f in carriers), (part, text)
        assert not any(f.name in text for f in P.FILES if f.version == other), (part, text)
    both = P.where_published(("text_projection", "text_connectors"), "2.3")
    assert "ltx-2.3_text_projection_bf16.safetensors (Kijai/LTX2.3_comfy, models/text_encoders; text projection only)" \
        in both  # fmt: skip
    assert "GGUF conversions that embed the text connectors" in both


def test_the_readme_lists_every_published_file_and_preset():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Model files"):readme.index("## Nodes")]
    for f in P.FILES:
        assert f"`{f.name}`" in table, f.name
    for name in model_catalog.PRESETS:
        assert f"`{name}`" in table, name
