"""The LTX-2.5 workflows (workflows/ltx2_5_*.json) on a real headless ComfyUI with tiny 2.5 models.

* each UI workflow is the UI form of its API twin (tests/workflows_api/ltx2_5_*.json), uses only
  OpenLTX and ComfyUI core nodes, and its Note places every published file it names;
* each API twin runs end to end with tiny stand-ins of every published LTX-2.5 file under its
  published name (``tiny_layouts_25.write_tiny_set_25``: int8 ConvRot and bf16 transformers with
  their connectors, Gemma 4 files with embedded tokenizers, the diffusion-decoder video VAE, the
  audio VAE, the spatial upscaler, the duration head) at 64 x 64 px (128 after a x2 upscale), 9
  frames, and writes an mp4 with a video and an audio stream of the right length;
* the graphs follow Comfy-Org's LTX-2.5 templates: distilled sigmas, no guidance, CRF 18 for
  images, stage-2 re-noise to 0.85 (templates) or 0.909375 (the reference distilled run);
* nothing reaches out: the session server's network guard logs no attempt (see test_privacy.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfy_host import history_error
from test_workflows import (CORE_NODES, FPS, UI_DIR, _write_png, load_api, load_ui, output_files, probe_mp4,
                            saved_mp4s, workflow_ui)  # fmt: skip

pytestmark = pytest.mark.server

SHIPPED_25 = ("ltx2_5_t2v", "ltx2_5_i2v", "ltx2_5_first_last_frame", "ltx2_5_distilled")
TINY_FRAMES = 9


def tiny_prompt_25(prompt: dict) -> dict:
    """A copy of an LTX-2.5 API prompt that runs in seconds on the tiny 2.5 set (published names kept).

    64 x 64 px (128 after a stage-2 x2 upscale), 9 frames (keyframe indices scaled; the duration
    head's range narrowed to 0.3 - 0.4 s, i.e. 9 frames at 24 fps, so its link still drives the
    frame count), CPU text encoder in fp32, STG blocks inside the tiny model's 2.
    """
    out = json.loads(json.dumps(prompt))
    two_stage = any(n["class_type"] == "OpenLTXLatentUpscale" for n in out.values())
    frames = [n["inputs"]["frames"] for n in out.values() if n["class_type"] == "OpenLTXEmptyLatent"]
    full = frames[0] if frames and isinstance(frames[0], int) else 121
    scale = (TINY_FRAMES - 1) / (full - 1)

    def side(pixels: int) -> int:
        return 128 if two_stage and pixels >= 704 else 64  # stage 1 640 x 352, stage 2 1280 x 704

    for node in out.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "OpenLTXEmptyLatent":
            inputs["width"], inputs["height"] = side(inputs["width"]), side(inputs["height"])
            if isinstance(inputs["frames"], int):
                inputs["frames"] = TINY_FRAMES
        elif kind == "OpenLTXEncodeImage":
            inputs["width"], inputs["height"] = side(inputs["width"]), side(inputs["height"])
        elif kind == "OpenLTXKeyframe":
            inputs["frame_index"] = round(inputs["frame_index"] * scale)
        elif kind == "OpenLTXDurationHead":
            inputs["min_seconds"], inputs["max_seconds"] = 0.3, 0.4
        elif kind == "OpenLTXTextEncoderLoader":
            inputs["dtype"], inputs["device"] = "fp32", "cpu"
        elif kind == "OpenLTXMultimodalGuider":
            inputs["video_stg_blocks"] = inputs["audio_stg_blocks"] = "1"
    return out


@pytest.fixture(scope="module")
def server(comfy_server):
    from openltx.model_loaders.tiny_layouts_25 import write_tiny_set_25

    write_tiny_set_25(comfy_server.model_dirs)
    inputs = comfy_server.base_dir / "input"
    inputs.mkdir(exist_ok=True)
    _write_png(inputs / "ltx2_first_frame.png", 64, 64, seed=1)
    _write_png(inputs / "ltx2_last_frame.png", 64, 64, seed=2)
    return comfy_server


@pytest.fixture(scope="module")
def object_info(server) -> dict:
    return server.object_info()


@pytest.mark.parametrize("name", SHIPPED_25)
def test_ui_workflow_is_its_api_twin(object_info, name):
    ui, api = load_ui(name), load_api(name)
    assert ui["version"] == 0.4 and ui["last_node_id"] == max(n["id"] for n in ui["nodes"])
    back = workflow_ui.ui_to_api(ui, object_info)
    assert sorted(back) == sorted(api), f"{name}: node ids differ"
    for node_id, node in api.items():
        assert back[node_id]["class_type"] == node["class_type"], f"{name} node {node_id}"
        for key, value in node["inputs"].items():
            assert back[node_id]["inputs"].get(key) == value, f"{name} node {node_id}.{key}"


@pytest.mark.parametrize("name", SHIPPED_25)
def test_ui_workflow_links_notes_and_template_settings(name):
    ui, api = load_ui(name), load_api(name)
    foreign = {n["type"] for n in ui["nodes"] if not n["type"].startswith("OpenLTX")} - CORE_NODES
    assert not foreign, f"{name} uses nodes that are neither OpenLTX nor ComfyUI core: {foreign}"
    note = next(n for n in ui["nodes"] if n["type"] == "Note")["widgets_values"][0]
    hinted = [m for n in ui["nodes"] for m in n.get("properties", {}).get("models", [])]
    assert hinted and all(m["url"].startswith("https://huggingface.co/Lightricks/LTX-2.5/") for m in hinted)
    for model in hinted:
        assert f"models/{model['directory']}/{model['name']}" in note
    assert "gated" in note and "gemma-3" not in note.lower()
    by_type: dict[str, list] = {}
    for n in api.values():
        by_type.setdefault(n["class_type"], []).append(n["inputs"])
    assert all(i["crf"] == 18 for i in by_type.get("OpenLTXEncodeImage", []))  # LTX-2.5's image CRF
    for g in by_type["OpenLTXMultimodalGuider"]:  # distilled: no guidance, one pass per step
        assert g["video_cfg"] == g["audio_cfg"] == 1.0 and g["video_stg"] == g["audio_stg"] == 0.0
    stages = [i["stage"] for i in by_type["OpenLTXDistilledSigmas"]]
    assert "stage1 (8 steps)" in stages
    if name in ("ltx2_5_t2v", "ltx2_5_i2v"):  # the templates' stage 2
        assert by_type["OpenLTXManualSigmas"][0]["sigmas"] == "0.85, 0.725, 0.4219, 0.0"
        assert by_type["KSamplerSelect"][0]["sampler_name"] == "euler_ancestral"
    if name == "ltx2_5_i2v":
        assert sorted(i["strength"] for i in by_type["OpenLTXImageToVideo"]) == [0.7, 1.0]
    if name == "ltx2_5_distilled":
        assert by_type["OpenLTXEmptyLatent"][0]["frames"] == ["50", 0]  # the duration head sets the length


@pytest.mark.parametrize("name", SHIPPED_25)
def test_ltx25_workflow_runs_end_to_end(server, name):
    prompt = tiny_prompt_25(load_api(name))
    before = output_files(server)
    entry = server.run_prompt(prompt, timeout=300)
    assert history_error(entry) is None, f"{name} failed:\n{history_error(entry)}\n{server.log_tail(30)}"
    videos = saved_mp4s(server, entry)
    assert len(videos) == 1 and videos[0].is_file(), f"{name}: outputs {entry.get('outputs')}"
    assert set(videos) == output_files(server) - before
    info = probe_mp4(videos[0])
    side = 128 if any(n["class_type"] == "OpenLTXLatentUpscale" for n in prompt.values()) else 64
    assert info["frames"] == TINY_FRAMES and info["fps"] == FPS and info["size"] == (side, side), info
    assert info["audio_seconds"] == pytest.approx(TINY_FRAMES / FPS, abs=0.1), info
    # privacy (as test_privacy.py for the other workflows): the embedded Gemma 4 tokenizer and every 2.5 file
    # load without any network attempt from the guarded server
    assert server.network_attempts() == [], f"network access attempted: {server.network_attempts()}"


def test_every_25_workflow_is_shipped():
    assert sorted(p.stem for p in UI_DIR.glob("ltx2_5_*.json")) == sorted(SHIPPED_25)
    assert all(Path(UI_DIR / f"{n}.json").is_file() for n in SHIPPED_25)
