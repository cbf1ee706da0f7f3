"""The video-input, IC-LoRA, long-video, temporal-upscale and retake-a-clip workflows
(workflows/*.json, API twins in tests/workflows_api/) on a real headless ComfyUI.

* each API twin runs end to end with tiny official-layout models (tools/demo.py's, plus a tiny
  LTX-2.3 bundle and LoRA, a tiny IC-LoRA and a tiny temporal upscaler written here) on input
  videos made here with PyAV (never committed), and writes an mp4 with the expected frames, rate,
  size and sound;
* each UI file is laid out in groups (models, input, prompt, sampling, output) that hold their
  nodes without overlapping, and the Note covers no node;
* a broken input video is a clear error in ComfyUI's response, leaves no file, and the server
  keeps serving.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from comfy_host import history_error
from video_fixtures import write_video

pytestmark = pytest.mark.server

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tools"))
import demo  # noqa: E402

API_DIR = TESTS_DIR / "workflows_api"
UI_DIR = REPO_ROOT / "workflows"
FPS = 24

# Official file -> (ComfyUI model folder, tiny stand-in written here) beyond demo.TINY_FILES.
EXTRA_TINY = {
    "ltx-2.3-22b-dev.safetensors": ("checkpoints", "ltx-2.3-tiny-random.safetensors"),
    "ltx-2.3-22b-distilled-lora-384-1.1.safetensors": ("loras", "ltx-2.3-tiny-lora.safetensors"),
    "ltx-2-19b-ic-lora-canny-control.safetensors": ("loras", "ltx-2-tiny-ic-lora.safetensors"),
    "ltx-2-19b-ic-lora-pose-control.safetensors": ("loras", "ltx-2-tiny-ic-lora.safetensors"),
    "ltx-2-19b-ic-lora-detailer.safetensors": ("loras", "ltx-2-tiny-ic-lora.safetensors"),
    "ltx-2-temporal-upscaler-x2-1.0.safetensors": ("latent_upscale_models", "ltx-2-tiny-upscaler-temporal-x2.safetensors"),
}  # fmt: skip
LONG_FRAMES = 33  # tiny long runs: 5 latent frames in windows of 3 with 2 shared -> 3 windows
TINY_WINDOW, TINY_OVERLAP = 17, 16

# name -> (frames, fps, side) of the mp4 each workflow writes in tiny mode
EXPECTED = {
    "ltx2_v2v_detailer": (LONG_FRAMES, 24, 64),
    "ltx2_3_v2v_detailer": (LONG_FRAMES, 24, 64),
    "ltx2_ic_lora_canny": (demo.TINY_FRAMES, 24, 128),
    "ltx2_ic_lora_pose": (demo.TINY_FRAMES, 24, 128),
    "ltx2_long_video": (LONG_FRAMES, 24, 64),
    "ltx2_temporal_upscale": (2 * (demo.TINY_FRAMES - 1) + 1, 48, 64),
    "ltx2_retake_clip": (demo.TINY_FRAMES, 24, 64),
}
NAMES = tuple(EXPECTED)


def load_api(name: str) -> dict:
    return json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))


def load_ui(name: str) -> dict:
    return json.loads((UI_DIR / f"{name}.json").read_text(encoding="utf-8"))


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def tiny_video_prompt(prompt: dict) -> dict:
    """``demo.tiny_prompt`` plus what these workflows need: links it overwrote restored, the extra
    tiny files, 64 px input videos, clips long enough for three windows, retake windows inside
    the tiny clip."""
    plain = json.loads(json.dumps(prompt))
    for node in plain.values():  # demo.tiny_prompt reads EmptyLatent's frames as a number
        if node["class_type"] == "OpenLTXEmptyLatent" and _is_link(node["inputs"].get("frames")):
            node["inputs"]["frames"] = demo.TINY_FRAMES
    out = demo.tiny_prompt(plain)
    looping = any(n["class_type"] == "OpenLTXLoopingSampler" for n in prompt.values())
    for node_id, node in out.items():
        inputs, kind = node["inputs"], node["class_type"]
        for name, value in prompt[node_id]["inputs"].items():
            if _is_link(value):
                inputs[name] = value
        for name, value in list(inputs.items()):
            if isinstance(value, str) and value in EXTRA_TINY:
                inputs[name] = EXTRA_TINY[value][1]
        if kind == "OpenLTXLoadVideo":
            inputs["frames"] = LONG_FRAMES if looping else demo.TINY_FRAMES
            inputs["width"], inputs["height"] = (64, 64) if inputs["width"] or inputs["height"] else (0, 0)
        elif kind == "OpenLTXEncodeVideo" and inputs.get("width"):
            inputs["width"], inputs["height"] = 64, 64
        elif kind == "OpenLTXEmptyLatent" and looping and not _is_link(inputs.get("frames")):
            inputs["frames"] = LONG_FRAMES
        elif kind == "OpenLTXLoopingSampler":
            inputs["window_frames"], inputs["overlap_frames"] = TINY_WINDOW, TINY_OVERLAP
        elif kind == "OpenLTXRetake":
            inputs["start_s"], inputs["end_s"] = 0.1, 0.25
    return out


# --- fixtures -------------------------------------------------------------------------------------

def _write_extra_tiny(model_dirs: dict) -> None:
    from model_loaders.lora_file import write_tiny_lora
    from model_loaders.tiny_layouts import write_tiny_checkpoint
    from model_loaders.upsampler_loading import tiny_upsampler_config, write_tiny_upsampler

    def path(official):
        folder, name = EXTRA_TINY[official]
        p = Path(model_dirs[folder]) / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    ckpt23 = path("ltx-2.3-22b-dev.safetensors")
    if not ckpt23.exists():
        write_tiny_checkpoint(ckpt23, "2.3", "all", seed=0)
    if not path("ltx-2.3-22b-distilled-lora-384-1.1.safetensors").exists():
        write_tiny_lora(path("ltx-2.3-22b-distilled-lora-384-1.1.safetensors"), _transformer_weights(ckpt23), seed=1)
    ic = path("ltx-2-19b-ic-lora-detailer.safetensors")
    if not ic.exists():
        dev = Path(model_dirs[demo.TINY_FILES["ltx-2-19b-dev.safetensors"][0]]) / demo.TINY_FILES["ltx-2-19b-dev.safetensors"][1]
        write_tiny_lora(ic, _transformer_weights(dev), seed=2, downscale_factor=1)
    temporal = path("ltx-2-temporal-upscaler-x2-1.0.safetensors")
    if not temporal.exists():
        write_tiny_upsampler(temporal, tiny_upsampler_config("temporal"), seed=3)


def _transformer_weights(path: Path) -> dict:
    from model_loaders import read_checkpoint
    from model_loaders.layouts import TRANSFORMER_PREFIX
    from safetensors.torch import load_file

    keys = set(read_checkpoint(path).components["transformer"])
    sd = load_file(str(path))
    return {k[len(TRANSFORMER_PREFIX):]: sd[k] for k in keys if k.startswith(TRANSFORMER_PREFIX)}


@pytest.fixture(scope="module")
def server(comfy_server):
    demo.write_tiny_models(comfy_server.model_dirs)
    _write_extra_tiny(comfy_server.model_dirs)
    inputs = comfy_server.base_dir / "input"
    inputs.mkdir(exist_ok=True)
    write_video(inputs / "ltx2_input.mp4", 40, 64, 64, FPS)  # 40 frames with sound (the loader keeps 8k+1)
    write_video(inputs / "ltx2_pose.mp4", 40, 64, 64, FPS, audio_rate=None)  # a control video, silent
    (inputs / "ltx2_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    return comfy_server


def output_files(server) -> set[Path]:
    out = server.base_dir / "output"
    return {p for p in out.rglob("*") if p.is_file()} if out.is_dir() else set()


def probe_mp4(path: Path) -> dict:
    import av
    from fractions import Fraction

    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        assert container.streams.audio, f"{path.name} has no audio stream"
        aus = container.streams.audio[0]
        frames = sum(1 for _ in container.decode(video=0))
        return {"frames": frames, "fps": Fraction(vs.average_rate), "size": (vs.codec_context.width, vs.codec_context.height),
                "audio_seconds": float(aus.duration * aus.time_base) if aus.duration else None}  # fmt: skip


# --- end to end -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_end_to_end(server, name):
    prompt = tiny_video_prompt(load_api(name))
    before = output_files(server)
    entry = server.run_prompt(prompt, timeout=400)
    assert history_error(entry) is None, f"{name} failed:\n{history_error(entry)}\n{server.log_tail(30)}"
    videos = demo.saved_videos(entry, server.base_dir / "output")
    assert len(videos) == 1 and set(videos) == output_files(server) - before, entry.get("outputs")
    info = probe_mp4(videos[0])
    frames, fps, side = EXPECTED[name]
    assert info["frames"] == frames and info["fps"] == fps and info["size"] == (side, side), (name, info)
    assert info["audio_seconds"] == pytest.approx(frames / fps, abs=0.1), (name, info)


def test_bad_video_is_a_clear_error_and_leaves_nothing(server):
    prompt = tiny_video_prompt(load_api("ltx2_retake_clip"))
    next(n for n in prompt.values() if n["class_type"] == "OpenLTXLoadVideo")["inputs"]["video"] = "ltx2_broken.mp4"
    before = output_files(server)
    res = server.post_prompt(prompt)
    assert res.status == 200, res.text
    entry = server.wait_for_history(res.json()["prompt_id"], timeout=240)
    message = history_error(entry) or ""
    assert re.search(r"Load Video: .*ltx2_broken\.mp4.*(not a readable video|no video stream|decod)", message), message
    assert output_files(server) == before
    missing = tiny_video_prompt(load_api("ltx2_retake_clip"))
    next(n for n in missing.values() if n["class_type"] == "OpenLTXLoadVideo")["inputs"]["video"] = "nope.mp4"
    res = server.post_prompt(missing)
    assert res.status == 400 and "nope.mp4" in res.text, res.text[:2000]
    ok = server.run_prompt(tiny_video_prompt(load_api("ltx2_retake_clip")), timeout=240)
    assert history_error(ok) is None, history_error(ok)


# --- layout ---------------------------------------------------------------------------------------

def _rect(node: dict) -> tuple[float, float, float, float]:
    """Screen rectangle of a node including its title bar: (x0, y0, x1, y1)."""
    x, y = node["pos"]
    w, h = node["size"]
    title = 0 if node["type"] == "Note" else 30
    return x, y - title, x + w, y + h


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("name", NAMES)
def test_layout_in_groups_with_a_note_that_covers_nothing(name):
    ui = load_ui(name)
    api = load_api(name)
    groups = {g["title"]: g for g in ui["groups"]}
    assert {"Models", "Prompt", "Sampling", "Output"} <= set(groups), sorted(groups)
    boxes = {t: (g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2],
                 g["bounding"][1] + g["bounding"][3]) for t, g in groups.items()}  # fmt: skip
    for a in boxes:
        for b in boxes:
            assert a == b or not _overlap(boxes[a], boxes[b]), (name, a, b)
    nodes = [n for n in ui["nodes"] if n["type"] != "Note"]
    note = next(n for n in ui["nodes"] if n["type"] == "Note")
    for n in nodes:
        r = _rect(n)
        box = boxes[api[str(n["id"])]["_meta"]["group"]]
        assert box[0] <= r[0] and box[1] <= r[1] and r[2] <= box[2] and r[3] <= box[3], (name, n["id"], r, box)
        assert not _overlap(_rect(note), r), (name, "the Note covers node", n["id"])
        for m in nodes:
            assert m is n or not _overlap(r, _rect(m)), (name, n["id"], m["id"])
    for box in boxes.values():
        assert not _overlap(_rect(note), box), (name, "the Note covers a group")
