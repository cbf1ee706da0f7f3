"""The shipped workflows in ComfyUI's real web frontend, in headless Chromium.

For each frontend - the one the host ships (its ``comfyui-frontend-package`` pin) and the newest
package (``make setup`` unpacks it into ``.frontends/``; served with ``--front-end-root``) - a
headless ComfyUI (pack, tiny models, ``--preview-method auto``) is opened in Debian's chromium,
driven by the ``playwright`` package (it never downloads a browser).  Every file of
``workflows/`` is then, as a user would:

* loaded with ``app.loadGraphData`` (tiny model names and sizes put into its widgets first, the
  same substitutions as ``tools/demo.py tiny_prompt``): every node type is known to the frontend,
  and every type that is not frontend-only is a server node;
* turned into a prompt by the frontend (``app.graphToPrompt``): it equals the file read by
  ``tools/workflow_ui.ui_to_api`` - same nodes, links and widget values (nothing dropped, moved
  or rewritten by the frontend);
* queued from the UI (``app.queuePrompt``): no node errors, the run succeeds (``/history``) and
  writes an mp4 with the expected frames and an audio stream.

Also: ``LTX-2 Load Audio`` gets the frontend's upload button and audio player (the pack's
``web/js/openltx_media.js``), the player points at the selected file, and an upload through the
button's file chooser selects the new file; live previews arrive while sampling (binary
websocket preview frames); node help pages are served where the frontend asks first.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from comfy_host import ComfyServer, history_error
from test_workflows_video import EXPECTED as VIDEO_EXPECTED
from test_ltx25_workflows import tiny_prompt_25
from video_fixtures import tiny_prompt_for, write_video_workflow_files

pytestmark = [pytest.mark.server, pytest.mark.browser]

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
sys.path.insert(0, str(REPO_ROOT / "tools"))
import demo  # noqa: E402
import workflow_ui  # noqa: E402

UI_DIR = REPO_ROOT / "workflows"
WORKFLOWS = sorted(p.stem for p in UI_DIR.glob("*.json"))
FRONTEND_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}
# Widgets the frontend adds on its own (not inputs of the node), which graphToPrompt may serialize.
FRONTEND_WIDGETS = {"video-preview"}
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
PREVIEW_EVENTS = (1, 4)  # ComfyUI's binary websocket events PREVIEW_IMAGE / PREVIEW_IMAGE_WITH_METADATA
RUN_TIMEOUT = 300.0


def newest_frontend_root() -> Path | None:
    """The static folder of the newest comfyui-frontend-package under .frontends/ (make setup)."""
    env = os.environ.get("OPENLTX_NEWEST_FRONTEND", "").strip()
    if env:
        return Path(env)
    roots = sorted((REPO_ROOT / ".frontends").glob("comfyui-frontend-package-*/comfyui_frontend_package/static"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p.parts[-3])])  # fmt: skip
    return roots[-1] if roots else None


def _browser_or_skip() -> None:
    """Skip (locally) or fail (in CI) when chromium or playwright is missing."""
    problems = []
    if not Path(CHROMIUM).is_file():
        problems.append(f"no chromium at {CHROMIUM} (make setup installs Debian's chromium as root; or set CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is missing (requirements-test.txt)")
    if problems:
        if os.environ.get("CI"):
            pytest.fail("browser tests cannot run in CI: " + "; ".join(problems), pytrace=False)
        pytest.skip("; ".join(problems))


# --- inputs ----------------------------------------------------------------------------------------

def _write_png(path: Path, width: int, height: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def _write_wav(path: Path, seconds: float, rate: int = 16000, freq: float = 440.0) -> None:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def tiny_ui(ui: dict, object_info: dict, seed: int | None = None) -> dict:
    """The UI workflow with the tiny models / sizes of ``demo.tiny_prompt`` in its widgets.

    ``seed``: a noise seed of its own (else ComfyUI's cache can answer a workflow whose first
    stage equals one that ran before, e.g. the retake workflow's source clip, without sampling).
    """
    api = workflow_ui.ui_to_api(ui, object_info)
    if any("ltx-2.5" in str(v) for node in api.values() for v in node["inputs"].values()):
        tiny = tiny_prompt_25(api)  # the LTX-2.5 workflows: the tiny 2.5 set under the published names
    else:
        tiny = tiny_prompt_for(api)  # the video workflows: tiny input videos
    if seed is not None:
        for node in tiny.values():
            if node["class_type"] == "RandomNoise" and not workflow_ui.is_link(node["inputs"].get("noise_seed")):
                node["inputs"]["noise_seed"] = seed
    out = copy.deepcopy(ui)
    for node in out["nodes"]:
        api = tiny.get(str(node["id"]))
        if api is None:
            continue
        values, pos = node["widgets_values"], 0
        extras = workflow_ui.extras_after(object_info[node["type"]])
        for name, kind, options, _ in workflow_ui.input_specs(object_info[node["type"]]):
            if not workflow_ui.is_widget(kind, options):
                continue
            value = api["inputs"].get(name)
            if name in api["inputs"] and not workflow_ui.is_link(value):
                values[pos] = value
            pos += 1 + len(extras[name])
    return out


def _strip_meta(prompt: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in prompt.items()}


# --- servers and browser ---------------------------------------------------------------------------

class FrontendSession:
    """A ComfyUI server with one frontend, and a Chromium page on it."""

    def __init__(self, label: str, server: ComfyServer, page, context, playwright, frames: list) -> None:
        self.label, self.server, self.page = label, server, page
        self._context, self._playwright = context, playwright
        self.ws_frames = frames  # (event type, payload bytes) of binary websocket frames

    def js(self, script: str, arg=None):
        return self.page.evaluate(script, arg)

    def close(self) -> None:
        try:
            self._context.close()
        finally:
            self._playwright.stop()
            self.server.cleanup()


def open_frontend(label: str, comfy_path: Path, tmp: Path, front_end_root: Path | None) -> FrontendSession:
    from playwright.sync_api import sync_playwright

    extra = ["--preview-method", "auto"]
    if front_end_root is not None:
        extra += ["--front-end-root", str(front_end_root)]
    server = ComfyServer(comfy_path, base_dir=tmp / "server", python=sys.executable, extra_args=tuple(extra))
    server.start(timeout=float(os.environ.get("OPENLTX_SERVER_TIMEOUT", "120")))
    try:
        demo.write_tiny_models(server.model_dirs)
        from openltx.model_loaders.tiny_layouts_25 import write_tiny_set_25

        write_tiny_set_25(server.model_dirs)  # the LTX-2.5 workflows' files under their published names
        inputs = server.base_dir / "input"
        write_video_workflow_files(server.model_dirs, inputs)
        inputs.mkdir(exist_ok=True)
        _write_png(inputs / "ltx2_first_frame.png", 64, 64, seed=1)
        _write_png(inputs / "ltx2_last_frame.png", 64, 64, seed=2)
        _write_wav(inputs / "ltx2_sound.wav", seconds=1.0)
        res = server.post("/api/settings", {"Comfy.TutorialCompleted": True})
        assert res.status == 200, res.text
        playwright = sync_playwright().start()
        context = playwright.chromium.launch_persistent_context(
            str(tmp / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1600, "height": 1000},
        )
    except BaseException:
        server.cleanup()
        raise
    frames: list = []
    page = context.pages[0] if context.pages else context.new_page()

    def on_websocket(ws):
        def on_frame(payload):
            if isinstance(payload, (bytes, bytearray)) and len(payload) >= 4:
                frames.append((int.from_bytes(payload[:4], "big"), bytes(payload)))
        ws.on("framereceived", on_frame)

    page.on("websocket", on_websocket)
    session = FrontendSession(label, server, page, context, playwright, frames)
    try:
        page.goto(server.url, wait_until="domcontentloaded", timeout=120_000)
        page.wait_for_function(
            "() => { const a = window.app; return !!(a && a.graph && window.LiteGraph &&"
            " window.LiteGraph.registered_node_types && window.LiteGraph.registered_node_types['OpenLTXLoadAudio']); }",
            timeout=120_000,
        )
    except BaseException:
        session.close()
        raise
    return session


@pytest.fixture(scope="module", params=["host", "newest"])
def frontend(request, comfy_path, tmp_path_factory):
    """(label, FrontendSession): the host's own frontend, then the newest package."""
    _browser_or_skip()
    root = None
    if request.param == "newest":
        root = newest_frontend_root()
        if root is None or not (root / "index.html").is_file():
            message = "no newest frontend under .frontends/ (make setup unpacks comfyui-frontend-package there)"
            if os.environ.get("CI"):
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    session = open_frontend(request.param, comfy_path, tmp_path_factory.mktemp(f"frontend-{request.param}"), root)
    version = session.js("() => window.__COMFYUI_FRONTEND_VERSION__ || null")
    print(f"frontend ({request.param}): {version}")
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def object_info(frontend) -> dict:
    return frontend.server.object_info()


def load_workflow(frontend: FrontendSession, workflow: dict) -> None:
    frontend.js(
        """async (wf) => {
            await window.app.loadGraphData(wf, true, true, null,
                {showMissingNodesDialog: false, showMissingModelsDialog: false});
        }""",
        workflow,
    )


def history_ids(server) -> set[str]:
    return set(server.get("/history").json())


# --- tests ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_loads_and_runs_from_the_ui(frontend, object_info, name):
    server = frontend.server
    ui = tiny_ui(json.loads((UI_DIR / f"{name}.json").read_text(encoding="utf-8")), object_info,
                 seed=1000 + WORKFLOWS.index(name))
    load_workflow(frontend, ui)
    state = frontend.js(
        """() => {
            const g = window.app.graph;
            const nodes = g._nodes || g.nodes || [];
            return {
                types: nodes.map(n => n.type),
                unknown: nodes.filter(n => !window.LiteGraph.registered_node_types[n.type]).map(n => n.type),
                errors: nodes.filter(n => n.has_errors).map(n => n.type),
                links: Object.keys(g.links instanceof Map ? Object.fromEntries(g.links) : (g.links || {})).length,
            };
        }"""
    )
    assert not state["unknown"], f"{frontend.label}: node types unknown to the frontend: {state['unknown']}"
    assert not state["errors"], f"{frontend.label}: nodes with errors after loading: {state['errors']}"
    server_types = {t for t in state["types"] if t not in FRONTEND_ONLY}
    assert server_types <= set(object_info), sorted(server_types - set(object_info))
    assert state["links"] == len(ui["links"]), f"links in the graph {state['links']} != file {len(ui['links'])}"

    prompt = _strip_meta(frontend.js("async () => (await window.app.graphToPrompt()).output"))
    for node in prompt.values():
        # The frontend's video preview widget (video_upload combos) is sometimes serialized into the
        # prompt, as on core's Load Video; the server ignores inputs a node does not declare.
        declared = {spec[0] for spec in workflow_ui.input_specs(object_info[node["class_type"]])}
        extra = set(node["inputs"]) - declared
        assert extra <= FRONTEND_WIDGETS, f"{frontend.label}: {node['class_type']} got undeclared inputs {extra}"
        for widget in extra:
            del node["inputs"][widget]
    expected = _strip_meta(workflow_ui.ui_to_api(ui, object_info))
    differing = {k: {"frontend": prompt.get(k), "file": expected.get(k)}
                 for k in sorted(set(prompt) | set(expected)) if prompt.get(k) != expected.get(k)}  # fmt: skip
    assert not differing, f"{frontend.label}: the frontend's prompt differs from the file: {differing}"

    before = history_ids(server)
    frames_before = len(frontend.ws_frames)
    queued = frontend.js("async () => { const r = await window.app.queuePrompt(0, 1); "
                         "return {r: r ?? null, errors: window.app.lastNodeErrors ?? null}; }")
    assert not queued["errors"], f"{frontend.label}: node errors when queueing {name}: {queued['errors']}"
    deadline = time.monotonic() + RUN_TIMEOUT
    new = set()
    while not new:
        new = history_ids(server) - before
        assert time.monotonic() < deadline, f"{name} was not run within {RUN_TIMEOUT:.0f} s\n{server.log_tail(30)}"
        frontend.page.wait_for_timeout(500)  # lets playwright deliver the websocket frames meanwhile
    (prompt_id,) = new
    while not server.get(f"/history/{prompt_id}").json().get(prompt_id):
        assert time.monotonic() < deadline, f"{name} did not finish within {RUN_TIMEOUT:.0f} s\n{server.log_tail(30)}"
        frontend.page.wait_for_timeout(500)
    frontend.page.wait_for_timeout(300)
    entry = server.wait_for_history(prompt_id, timeout=RUN_TIMEOUT)
    assert history_error(entry) is None, f"{name} failed:\n{history_error(entry)}\n{server.log_tail(30)}"
    videos = demo.saved_videos(entry, server.base_dir / "output")
    sounds = [server.base_dir / "output" / item.get("subfolder", "") / item["filename"]
              for out in entry.get("outputs", {}).values() for item in out.get("audio", [])]
    import av

    if sounds and not videos:
        # Audio-only workflows (text-to-audio, audio retake) end in Save Audio: one FLAC, no video.
        assert len(sounds) == 1 and sounds[0].suffix == ".flac", entry.get("outputs")
        with av.open(str(sounds[0])) as container:
            assert container.streams.audio and not container.streams.video, f"{sounds[0].name}: streams wrong"
            samples = sum(f.samples for f in container.decode(audio=0))
        assert samples > 0, f"{sounds[0].name}: no audio samples"
    else:
        assert len(videos) == 1, entry.get("outputs")
        with av.open(str(videos[0])) as container:
            assert container.streams.video and container.streams.audio, f"{videos[0].name}: streams missing"
            frames = sum(1 for _ in container.decode(video=0))
        expected = VIDEO_EXPECTED[name][0] if name in VIDEO_EXPECTED else demo.TINY_FRAMES  # long / x2 in time
        assert frames == expected, f"{name}: {videos[0].name}: {frames} frames, expected {expected}"
    previews = [f for f in frontend.ws_frames[frames_before:] if f[0] in PREVIEW_EVENTS and b"\xff\xd8\xff" in f[1]]
    assert previews, f"{frontend.label}: no preview image arrived over the websocket while {name} ran"


def test_load_audio_has_upload_and_player(frontend, object_info, tmp_path):
    ui = tiny_ui(json.loads((UI_DIR / "ltx2_audio_to_video.json").read_text(encoding="utf-8")), object_info)
    load_workflow(frontend, ui)
    info = frontend.js(
        """() => {
            const node = (window.app.graph._nodes || window.app.graph.nodes).find(n => n.type === 'OpenLTXLoadAudio');
            const ws = node.widgets || [];
            const player = ws.find(w => w.name === 'audioUI');
            return {names: ws.map(w => w.name), types: ws.map(w => w.type),
                    value: ws.find(w => w.name === 'audio')?.value,
                    src: player?.element?.src ?? null, tag: player?.element?.tagName ?? null};
        }"""
    )
    assert "audioUI" in info["names"] and info["tag"] == "AUDIO", info
    assert info["value"] == "ltx2_sound.wav" and "ltx2_sound.wav" in (info["src"] or ""), info
    assert info["names"] == ["audio", "start_s", "duration_s", "audioUI", "upload"], \
        f"expected audio, start_s, duration_s, then the player and the upload button: {info}"

    # Upload a new sound through the upload button's file chooser, as a user would.
    upload = tmp_path / "openltx_uploaded.wav"
    _write_wav(upload, seconds=1.5, freq=220.0)
    with frontend.page.expect_file_chooser(timeout=30_000) as chooser:
        frontend.js(
            """() => {
                const node = (window.app.graph._nodes || window.app.graph.nodes).find(n => n.type === 'OpenLTXLoadAudio');
                const button = node.widgets.find(w => w.type === 'button' || w.name === 'upload');
                button.callback?.(button, window.app.canvas, node);
            }"""
        )
    chooser.value.set_files(str(upload))
    frontend.page.wait_for_function(
        """() => {
            const node = (window.app.graph._nodes || window.app.graph.nodes).find(n => n.type === 'OpenLTXLoadAudio');
            const player = node.widgets.find(w => w.name === 'audioUI');
            return node.widgets.find(w => w.name === 'audio').value === 'openltx_uploaded.wav'
                && (player.element.src || '').includes('openltx_uploaded.wav');
        }""",
        timeout=30_000,
    )
    assert (frontend.server.base_dir / "input" / "openltx_uploaded.wav").read_bytes() == upload.read_bytes()


def test_help_pages_are_where_the_frontend_asks_first(frontend, object_info):
    server = frontend.server
    ours = sorted(k for k in object_info if k.startswith("OpenLTX"))
    assert ours
    for node in ours:
        module = object_info[node].get("python_module", "")
        assert module.startswith("custom_nodes."), f"{node}: python_module {module!r} (help pages need custom_nodes.*)"
        pack = module.split(".", 1)[1].split("@")[0]
        res = server.get(f"/extensions/{pack}/docs/{node}/en.md")  # the frontend's first request
        assert res.status == 200 and res.text.lstrip().startswith("#"), f"{node}: HTTP {res.status}"


def test_workflows_are_in_the_template_browser(frontend):
    server = frontend.server
    listing = server.get("/api/workflow_templates").json()
    from comfy_host import PACK_DIR_NAME

    names = listing.get(PACK_DIR_NAME, [])
    assert sorted(names) == WORKFLOWS, f"template listing for {PACK_DIR_NAME}: {names}"
    for name in WORKFLOWS:
        res = server.get(f"/api/workflow_templates/{PACK_DIR_NAME}/{name}.json")
        assert res.status == 200 and res.json() == json.loads((UI_DIR / f"{name}.json").read_text(encoding="utf-8"))
