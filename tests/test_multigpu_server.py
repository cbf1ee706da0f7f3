"""LTX-2 Multi-GPU Model on a real headless ComfyUI: Ray workers behind an ordinary MODEL.

The text-to-video workflow (tiny official-layout models, 9 frames at 64 px, 2 steps, CFG + STG +
modality guidance: 4 passes per step) runs once on the server's own device and once through
``OpenLTXMultiGPU`` with 2 CPU workers of a local Ray (gloo), as Ulysses sequence parallelism
(ulysses 2) and as the automatic plan (CFG parallel).  The decoded frames (PNG) and sound (FLAC)
must equal the single-device ones up to one 8-bit level / a few 16-bit steps (the forwards agree
to ~1e-6 relative; only rounding at quantization boundaries may differ).

The workers outlive a prompt: a second prompt through the same (cached) node starts none.
Then one worker process is killed: the next prompt fails with an error naming the dead worker,
and the prompt after it runs again (fresh workers).

The server is this module's own (not the session's) so that its Ray instance and workers end
with it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("yunchang")

from comfy_host import ComfyServer, history_error  # noqa: E402

pytestmark = [pytest.mark.server, pytest.mark.slow]

TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS_DIR.parent / "tools"))
import demo  # noqa: E402


@pytest.fixture(scope="module")
def server(comfy_path, tmp_path_factory):
    srv = ComfyServer(comfy_path, base_dir=tmp_path_factory.mktemp("multigpu_server"), python=sys.executable)
    demo.write_tiny_models(srv.model_dirs)
    srv.start(timeout=float(os.environ.get("OPENLTX_SERVER_TIMEOUT", "120")))
    try:
        yield srv
    finally:
        srv.stop()


def base_prompt(seed: int, prefix: str) -> dict:
    """The tiny t2v graph, ending in decoded frames (PNG) and sound (FLAC) instead of an mp4."""
    api = json.loads((TESTS_DIR / "workflows_api" / "ltx2_t2v.json").read_text(encoding="utf-8"))
    prompt = demo.tiny_prompt(api)
    del prompt["30"]  # the mp4 writer (lossy): compare lossless outputs instead
    prompt["10"]["inputs"]["noise_seed"] = seed
    prompt["40"] = {"class_type": "OpenLTXDecode", "inputs": {"latent": ["11", 0], "video_vae": ["2", 0], "tiling": "auto"}}
    prompt["41"] = {"class_type": "SaveImage", "inputs": {"images": ["40", 0], "filename_prefix": f"{prefix}/frame"}}
    prompt["42"] = {"class_type": "OpenLTXSaveAudio",
                    "inputs": {"latent": ["11", 0], "audio_vae": ["2", 1], "filename_prefix": f"{prefix}/sound"}}
    return prompt


def multigpu(prompt: dict, **degrees) -> dict:
    out = copy.deepcopy(prompt)
    inputs = {"model": ["1", 0], "workers": 2, "device": "cpu", "ray_address": "",
              "cfg_degree": 0, "ulysses_degree": 0, "ring_degree": 0, **degrees}
    out["50"] = {"class_type": "OpenLTXMultiGPU", "inputs": inputs}
    out["9"]["inputs"]["model"] = ["50", 0]
    return out


def outputs(server, entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """The saved frames ``(N, H, W, 3)`` uint8 and the sound samples of one prompt."""
    import av
    from PIL import Image

    frames, sound = [], None
    for node in entry["outputs"].values():
        for item in node.get("images", []):
            path = server.base_dir / "output" / item.get("subfolder", "") / item["filename"]
            frames.append(np.asarray(Image.open(path).convert("RGB")))
        for item in node.get("audio", []):
            path = server.base_dir / "output" / item.get("subfolder", "") / item["filename"]
            with av.open(str(path)) as container:
                sound = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=-1)
    assert frames and sound is not None, entry["outputs"]
    return np.stack(frames), sound


def run(server, prompt: dict) -> dict:
    queued = server.queue_prompt(prompt)
    assert not queued.get("node_errors"), queued["node_errors"]
    entry = server.wait_for_history(queued["prompt_id"], timeout=600)
    assert history_error(entry) is None, f"{history_error(entry)}\n{server.log_tail(40)}"
    return entry


def assert_same(got, ref, label: str) -> None:
    frames, sound = got
    ref_frames, ref_sound = ref
    assert frames.shape == ref_frames.shape and sound.shape == ref_sound.shape, label
    diff = np.abs(frames.astype(int) - ref_frames.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01, f"{label}: frames differ (max {diff.max()}, {(diff > 0).mean():.2%})"
    scale = 1 if np.issubdtype(sound.dtype, np.floating) else np.iinfo(sound.dtype).max
    sdiff = np.abs(sound.astype(np.float64) - ref_sound.astype(np.float64)) / scale
    assert sdiff.max() <= 1e-3, f"{label}: sound differs by {sdiff.max():.3g}"


@pytest.fixture(scope="module")
def single(server):
    return outputs(server, run(server, base_prompt(10, "single")))


def test_ulysses_workflow_equals_single_device(server, single):
    entry = run(server, multigpu(base_prompt(10, "ulysses"), cfg_degree=1, ulysses_degree=2))
    assert_same(outputs(server, entry), single, "ulysses 2")
    assert re.search(r"multi-GPU workers up: cpu \(pid \d+", server.log_text()), server.log_tail(40)


def test_automatic_plan_workflow_equals_single_device(server, single):
    entry = run(server, multigpu(base_prompt(10, "auto")))
    assert_same(outputs(server, entry), single, "automatic plan (cfg 2)")


def workers_up(server) -> list[str]:
    return re.findall(r"multi-GPU workers up: (.*)", server.log_text())


def test_workers_outlive_a_prompt(server):
    prompt = multigpu(base_prompt(11, "keep"))
    run(server, prompt)
    started = len(workers_up(server))
    prompt["10"]["inputs"]["noise_seed"] = 14  # the sampler runs again on a new clone of the cached MODEL
    run(server, prompt)
    assert len(workers_up(server)) == started, server.log_tail(20)
    assert "stopping its" not in server.log_text(), server.log_tail(20)


def test_killed_worker_gives_a_clear_error_and_the_next_prompt_runs(server):
    prompt = multigpu(base_prompt(11, "kill"))
    run(server, prompt)  # workers of this node up
    line = workers_up(server)[-1]
    pids = [int(p) for p in re.findall(r"pid (\d+)", line)]
    assert len(pids) == 2, pids
    os.kill(pids[1], signal.SIGKILL)  # a worker process this test's server started
    prompt["10"]["inputs"]["noise_seed"] = 12  # a new prompt (the node's MODEL stays cached, with its workers)
    res = server.post_prompt(prompt)
    assert res.status == 200, res.text
    entry = server.wait_for_history(res.json()["prompt_id"], timeout=600)
    message = history_error(entry) or ""
    assert f"LTX-2 Multi-GPU: worker 1 (cpu, pid {pids[1]}) failed to run the forward: the worker process died" in message, message[:3000]
    assert "next prompt starts them again" in message
    prompt["10"]["inputs"]["noise_seed"] = 13
    run(server, prompt)  # fresh workers
