"""The video-input, IC-LoRA, long-video, temporal-upscale and retake-a-clip workflows
(workflows/*.json, API twins in tests/workflows_api/) on a real headless ComfyUI.

* each API twin runs end to end with tiny official-layout models (tools/demo.py's, plus a tiny
  IC-LoRA and a tiny temporal upscaler, tests/video_fixtures.py) on input videos made with PyAV
  at run time (never committed), and writes an mp4 with the expected frames, rate, size and
  sound (their layout in groups: test_workflow_layout.py, like every shipped workflow);
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
from test_workflows import prepare_server as workflows_server
from video_fixtures import LONG_FRAMES, tiny_video_prompt

pytestmark = pytest.mark.server

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tools"))
import demo  # noqa: E402

API_DIR = TESTS_DIR / "workflows_api"
FPS = 24

# name -> (frames, fps, side) of the mp4 each workflow writes in tiny mode
EXPECTED = {
    "ltx2_v2v_detailer": (LONG_FRAMES, 24, 64),
    "ltx2_3_v2v_detailer": (LONG_FRAMES, 24, 64),
    "ltx2_ic_lora_canny": (demo.TINY_FRAMES, 24, 128),
    "ltx2_ic_lora_pose": (demo.TINY_FRAMES, 24, 128),
    "ltx2_3_ic_lora_control": (demo.TINY_FRAMES, 24, 128),
    "ltx2_long_video": (LONG_FRAMES, 24, 64),
    "ltx2_temporal_upscale": (2 * (demo.TINY_FRAMES - 1) + 1, 48, 64),
    "ltx2_retake_clip": (demo.TINY_FRAMES, 24, 64),
}
NAMES = tuple(EXPECTED)


def load_api(name: str) -> dict:
    return json.loads((API_DIR / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def server(comfy_server):
    """The session server with tiny models and every shipped workflow's input files
    (test_workflows' fixture) plus a broken video."""
    inputs = comfy_server.base_dir / "input"
    serving = workflows_server(comfy_server)
    (inputs / "ltx2_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    return serving


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
