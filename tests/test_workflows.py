"""The shipped workflows (workflows/*.json) on a real headless ComfyUI, and the one-command demo.

* every UI workflow is the UI form of its API twin (tests/workflows_api/<name>.json): same
  nodes, links and widget values (tools/workflow_ui.py converts both ways), uses only this pack's
  nodes and ComfyUI core nodes, names the official model files and carries a Note saying where
  they go;
* every API twin runs end to end on the server with tiny official-layout checkpoints, a tiny
  Gemma, a tiny upscaler and LoRA (tools/demo.py ``write_tiny_models`` / ``tiny_prompt``: same
  graph, 64×64 px (128 after a ×2 upscale), 9 frames, <= 2 scheduler steps) and writes an mp4 with a video and an audio
  stream of the right length;
* bad input (a missing model file, frames not 8k+1, an image of another aspect ratio, a sound
  shorter than the video) gives a clear error in ComfyUI's response, leaves no file in the output
  folder, and the server keeps serving;
* ``tools/demo.py`` (tiny mode) runs end to end as a subprocess and stops its server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from comfy_host import history_error
from video_fixtures import is_video_workflow, tiny_prompt_for, write_video_workflow_files

pytestmark = pytest.mark.server

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tools"))
import demo  # noqa: E402
import workflow_ui  # noqa: E402

API_DIR = TESTS_DIR / "workflows_api"
UI_DIR = REPO_ROOT / "workflows"
# Every API twin (the UI files are checked below) but the LTX-2.5 ones, which run on the tiny 2.5 set in
# test_ltx25_workflows.py.
SHIPPED_25 = ("ltx2_5_t2v", "ltx2_5_i2v", "ltx2_5_first_last_frame", "ltx2_5_distilled")
SHIPPED = tuple(sorted(p.stem for p in API_DIR.glob("*.json") if p.stem not in SHIPPED_25))
# The video-input workflows (input videos, IC-LoRAs, long videos) run end to end in
# test_workflows_video.py, with their own frame / rate / size expectations.
VIDEO_WORKFLOWS = tuple(n for n in SHIPPED if is_video_workflow(json.loads((API_DIR / f"{n}.json").read_text("utf-8"))))
# ComfyUI core nodes the shipped workflows may use (besides OpenLTX*): nothing from other packs.
CORE_NODES = {"SamplerCustomAdvanced", "RandomNoise", "DisableNoise", "KSamplerSelect", "KSampler", "BasicGuider",
              "CFGGuider", "LoadImage", "Canny", "Note", "MarkdownNote"}  # fmt: skip
FPS = 24
TINY_SECONDS = demo.TINY_FRAMES / FPS


def load_api(name: str) -> dict:
    return json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))


def load_ui(name: str) -> dict:
    return json.loads((UI_DIR / f"{name}.json").read_text(encoding="utf-8"))


# --- fixtures -------------------------------------------------------------------------------------

def _write_png(path: Path, width: int, height: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def _write_wav(path: Path, seconds: float, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 440.0 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def prepare_server(comfy_server):
    """The session server with tiny models in its model folders and the workflows' input files."""
    demo.write_tiny_models(comfy_server.model_dirs)
    write_video_workflow_files(comfy_server.model_dirs, comfy_server.base_dir / "input")
    inputs = comfy_server.base_dir / "input"
    inputs.mkdir(exist_ok=True)
    _write_png(inputs / "ltx2_first_frame.png", 64, 64, seed=1)
    _write_png(inputs / "ltx2_last_frame.png", 64, 64, seed=2)
    _write_png(inputs / "ltx2_wide.png", 128, 64, seed=3)  # 2:1, not the video's 1:1
    _write_wav(inputs / "ltx2_sound.wav", seconds=3.0)  # long enough for the audio retake's window [1 s, 2 s)
    _write_wav(inputs / "ltx2_short_sound.wav", seconds=0.1)
    return comfy_server


@pytest.fixture(scope="module")
def server(comfy_server):
    return prepare_server(comfy_server)


@pytest.fixture(scope="module")
def object_info(server) -> dict:
    return server.object_info()


def output_files(server) -> set[Path]:
    out = server.base_dir / "output"
    return {p for p in out.rglob("*") if p.is_file()} if out.is_dir() else set()


def saved_mp4s(server, entry: dict) -> list[Path]:
    return demo.saved_videos(entry, server.base_dir / "output")


def probe_mp4(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        assert container.streams.video, f"{path.name} has no video stream"
        assert container.streams.audio, f"{path.name} has no audio stream"
        vs, aus = container.streams.video[0], container.streams.audio[0]
        frames = sum(1 for _ in container.decode(video=0))
        fps = Fraction(vs.average_rate)
        size = (vs.codec_context.width, vs.codec_context.height)
        audio_seconds = float(aus.duration * aus.time_base) if aus.duration else None
        return {"frames": frames, "fps": fps, "size": size, "audio_seconds": audio_seconds,
                "seconds": float(container.duration / 1e6) if container.duration else None}  # fmt: skip


# --- the files ------------------------------------------------------------------------------------

def test_every_shipped_workflow_has_an_api_twin():
    ui = sorted(p.stem for p in UI_DIR.glob("*.json"))
    api = sorted(p.stem for p in API_DIR.glob("*.json"))
    assert ui == api == sorted(SHIPPED + SHIPPED_25), f"workflows/: {ui} vs tests/workflows_api/: {api}"
    assert len(SHIPPED) >= 7


@pytest.mark.parametrize("name", SHIPPED)
def test_ui_workflow_is_its_api_twin(object_info, name):
    ui, api = load_ui(name), load_api(name)
    assert ui["version"] == 0.4 and ui["last_node_id"] == max(n["id"] for n in ui["nodes"])
    back = workflow_ui.ui_to_api(ui, object_info)
    assert sorted(back) == sorted(api), f"{name}: node ids differ"
    for node_id, node in api.items():
        got = back[node_id]
        assert got["class_type"] == node["class_type"], f"{name} node {node_id}"
        for key, value in node["inputs"].items():
            assert got["inputs"].get(key) == value, f"{name} node {node_id} ({node['class_type']}).{key}: " \
                                                    f"UI {got['inputs'].get(key)!r} != API {value!r}"
        # Inputs only the UI file has are optional widgets: they must sit at the node's default.
        specs = {s[0]: s for s in workflow_ui.input_specs(object_info[node["class_type"]])}
        for key in set(got["inputs"]) - set(node["inputs"]):
            _, kind, options, optional = specs[key]
            assert optional and got["inputs"][key] == workflow_ui.default_of(kind, options), (name, node_id, key)


@pytest.mark.parametrize("name", SHIPPED)
def test_ui_workflow_links_and_notes(name):
    ui = load_ui(name)
    nodes = {n["id"]: n for n in ui["nodes"]}
    for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
        assert link_id in (nodes[src]["outputs"][src_slot]["links"] or []), f"{name}: link {link_id} not at its source"
        socket = nodes[dst]["inputs"][dst_slot]
        assert socket["link"] == link_id and socket["type"] == kind == nodes[src]["outputs"][src_slot]["type"]
    foreign = {n["type"] for n in ui["nodes"] if not n["type"].startswith("OpenLTX")} - CORE_NODES
    assert not foreign, f"{name} uses nodes that are neither OpenLTX nor ComfyUI core: {foreign}"
    notes = [n for n in ui["nodes"] if n["type"] == "Note"]
    assert len(notes) == 1, f"{name}: expected one Note node"
    text = notes[0]["widgets_values"][0]
    hinted = [m for n in ui["nodes"] for m in n.get("properties", {}).get("models", [])]
    assert hinted, f"{name}: no loader carries properties.models download hints"
    for model in hinted:
        assert model["url"].startswith("https://huggingface.co/") and model["url"].endswith(model["name"])
        assert f"models/{model['directory']}/{model['name']}" in text, f"{name}: the Note does not place {model}"
    assert "models/text_encoders/gemma-3-12b-it-qat-q4_0-unquantized/" in text
    for node in ui["nodes"]:
        if node["type"] == "RandomNoise":  # seed widgets carry the frontend's control value
            assert node["widgets_values"][1] in ("fixed", "randomize"), node["widgets_values"]


def test_shipped_defaults_are_the_reference_ones():
    t2v = load_api("ltx2_t2v")
    by_type = {n["class_type"]: n["inputs"] for n in t2v.values()}
    latent = by_type["OpenLTXEmptyLatent"]
    assert (latent["width"], latent["height"], latent["frames"], latent["fps"]) == (768, 512, 121, 24.0)
    assert by_type["OpenLTXScheduler"]["steps"] == 40 and by_type["RandomNoise"]["noise_seed"] == 10
    assert by_type["OpenLTXCheckpointLoader"]["ckpt_name"] == "ltx-2-19b-dev.safetensors"
    two = {n["class_type"]: n["inputs"] for n in load_api("ltx2_t2v_two_stage").values()}
    assert (two["OpenLTXEmptyLatent"]["width"], two["OpenLTXEmptyLatent"]["height"]) == (768, 512)  # stage 1 = out / 2
    assert two["OpenLTXLoraLoader"]["lora_name"] == "ltx-2-19b-distilled-lora-384.safetensors"
    assert two["OpenLTXDistilledSigmas"]["stage"].startswith("stage2")
    dist = load_api("ltx2_distilled")
    assert sorted(n["inputs"]["stage"][:6] for n in dist.values() if n["class_type"] == "OpenLTXDistilledSigmas") == \
        ["stage1", "stage2"]
    assert all(n["inputs"]["ckpt_name"] == "ltx-2-19b-distilled.safetensors"
               for n in dist.values() if n["class_type"] == "OpenLTXCheckpointLoader")  # fmt: skip


# --- end to end -----------------------------------------------------------------------------------

def saved_audio(server, entry: dict) -> list[Path]:
    out = server.base_dir / "output"
    return [out / item.get("subfolder", "") / item["filename"] for node in entry.get("outputs", {}).values()
            for item in node.get("audio", []) if str(item.get("filename", "")).endswith(".flac")]  # fmt: skip


def probe_audio(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        assert not container.streams.video and container.streams.audio, f"{path.name}: expected sound only"
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio=0))
        return {"seconds": samples / stream.rate, "rate": stream.rate}


@pytest.mark.parametrize("name", [n for n in SHIPPED if n not in VIDEO_WORKFLOWS])
def test_workflow_runs_end_to_end(server, name):
    prompt = demo.tiny_prompt(load_api(name))
    before = output_files(server)
    entry = server.run_prompt(prompt, timeout=240)
    assert history_error(entry) is None, f"{name} failed:\n{history_error(entry)}\n{server.log_tail(30)}"
    if any(n["class_type"] == "OpenLTXSaveAudio" for n in prompt.values()):  # text-to-audio, audio retake
        sounds = saved_audio(server, entry)
        assert len(sounds) == 1 and sounds[0].is_file(), f"{name}: outputs {entry.get('outputs')}"
        assert set(sounds) == output_files(server) - before
        latent = [n["inputs"] for n in prompt.values() if n["class_type"] == "OpenLTXEmptyLatent"]
        expected = latent[0]["frames"] / latent[0]["fps"] if latent else 3.0  # else: the 3 s input sound
        assert probe_audio(sounds[0])["seconds"] == pytest.approx(expected, abs=0.1), name
        return
    videos = saved_mp4s(server, entry)
    assert len(videos) == 1 and videos[0].is_file(), f"{name}: outputs {entry.get('outputs')}"
    assert set(videos) == output_files(server) - before
    info = probe_mp4(videos[0])
    side = 128 if any(n["class_type"] == "OpenLTXLatentUpscale" for n in prompt.values()) else 64  # ×2 in stage 2
    assert info["frames"] == demo.TINY_FRAMES and info["fps"] == FPS and info["size"] == (side, side), info
    assert info["seconds"] == pytest.approx(TINY_SECONDS, abs=0.1), info
    assert info["audio_seconds"] == pytest.approx(TINY_SECONDS, abs=0.1), info


# --- bad input ------------------------------------------------------------------------------------

def _node(prompt: dict, class_type: str) -> dict:
    return next(n for n in prompt.values() if n["class_type"] == class_type)


def _assert_clean_failure(server, prompt: dict, pattern: str) -> str:
    """The prompt fails with an error matching ``pattern`` (HTTP 400 or an execution error), no
    file appears in the output folder, and the server still runs a good prompt afterwards."""
    before = output_files(server)
    res = server.post_prompt(prompt)
    if res.status == 400:
        message = res.text
    else:
        assert res.status == 200, res.text
        entry = server.wait_for_history(res.json()["prompt_id"], timeout=240)
        message = history_error(entry) or ""
        assert message, "the prompt succeeded although its input is bad"
    assert re.search(pattern, message, re.I), f"unclear error (wanted /{pattern}/):\n{message[:3000]}"
    assert output_files(server) == before, f"files left behind: {output_files(server) - before}"
    ok = server.run_prompt(demo.tiny_prompt(load_api("ltx2_t2v")), timeout=240)
    assert history_error(ok) is None, history_error(ok)
    return message


def test_missing_model_file_is_refused(server):
    prompt = demo.tiny_prompt(load_api("ltx2_t2v"))
    _node(prompt, "OpenLTXCheckpointLoader")["inputs"]["ckpt_name"] = "ltx-2-19b-missing.safetensors"
    res = server.post_prompt(prompt)
    assert res.status == 400, res.text[:2000]  # refused at validation, before anything runs
    _assert_clean_failure(server, prompt, r"ltx-2-19b-missing\.safetensors")


def test_frames_not_8k_plus_1_is_a_400(server):
    prompt = demo.tiny_prompt(load_api("ltx2_t2v"))
    _node(prompt, "OpenLTXEmptyLatent")["inputs"]["frames"] = 10
    res = server.post_prompt(prompt)
    assert res.status == 400, res.text[:2000]
    _assert_clean_failure(server, prompt, r"8\s*[k·x*]\s*\+\s*1|\b9\b.*\b17\b")


def test_image_of_another_aspect_ratio_is_refused(server):
    prompt = demo.tiny_prompt(load_api("ltx2_i2v"))
    _node(prompt, "LoadImage")["inputs"]["image"] = "ltx2_wide.png"
    _assert_clean_failure(server, prompt, r"aspect|128\s*[x×]\s*64|64\s*[x×]\s*128")


def test_sound_shorter_than_the_video_is_refused(server):
    prompt = demo.tiny_prompt(load_api("ltx2_audio_to_video"))
    _node(prompt, "OpenLTXLoadAudio")["inputs"]["audio"] = "ltx2_short_sound.wav"
    _assert_clean_failure(server, prompt, r"short|long|second")


# --- the demo -------------------------------------------------------------------------------------

def test_demo_runs_end_to_end_in_tiny_mode(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MODELS_DIR", "PROMPT")}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "demo.py"), "--prompt", "a fox in the snow",
         "--output-dir", str(tmp_path / "out"), "--timeout", "300"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "noise" in log and "random" in log.lower(), "the demo must say the tiny model's output is noise"
    assert re.search(r"running node \d+", log) and re.search(r"step \d+/\d+", log), log[-3000:]
    videos = [Path(m) for m in re.findall(r"video: (\S+\.mp4)", log)]
    assert videos and videos[0].is_file() and videos[0].is_relative_to(tmp_path / "out"), log[-3000:]
    info = probe_mp4(videos[0])
    assert info["frames"] == demo.TINY_FRAMES and info["fps"] == FPS, info
    pid = int(re.search(r"server pid (\d+)", log).group(1))
    assert f"stopped ComfyUI (pid {pid})" in log
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
