"""Private by construction: nothing the pack runs opens a network connection (issue 11).

Users run open weights locally so that prompts and footage never leave the machine.  The test
server runs behind a network guard (``tests/netguard_site/sitecustomize.py``, on the server's
``PYTHONPATH``): every name lookup or connection to a host other than loopback is refused at
the socket level and logged with its stack.  ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` are
*unset* in the server's environment, so nothing here passes because a library was told to stay
offline: the pack itself never asks (tokenizers and configs are read with
``local_files_only``, nothing is downloaded when a file is missing).

* the guard is live in the server process and does refuse and log a real attempt;
* every shipped workflow (tests/workflows_api, on the tiny models) runs with no attempt at all --
  the log covers the whole server session, so every prompt any test ran on it counts;
* a Gemma folder without its tokenizer fails with an error that says what to copy, and still
  nothing reaches out (transformers would otherwise look the tokenizer up on the Hub).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from comfy_host import NETGUARD_DIR, history_error
from test_workflows import SHIPPED, load_api, saved_audio, saved_mp4s, server  # noqa: F401 - the fixture, with its input files
from video_fixtures import tiny_prompt_for

pytestmark = pytest.mark.server

TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS_DIR.parent / "tools"))
import demo  # noqa: E402

TINY_GEMMA = demo.TINY_FILES["gemma-3-12b-it-qat-q4_0-unquantized/"][1]


def _attempts_report(server) -> str:
    lines = []
    for a in server.network_attempts():
        lines.append(f"{a['kind']} {a['target']} (pid {a['pid']}):\n" + "".join(a["stack"][-8:]))
    return "\n".join(lines)


def test_the_guard_is_live_and_refuses(server, tmp_path):
    assert server.process.pid in server.guarded_pids(), "the server did not load the network guard"
    probe_log = tmp_path / "probe.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(PYTHONPATH=str(NETGUARD_DIR), OPENLTX_NETGUARD_LOG=str(probe_log))
    code = (
        "import socket\n"
        "for call in (lambda: socket.socket().connect(('192.0.2.1', 443)),\n"
        "             lambda: socket.getaddrinfo('huggingface.co', 443)):\n"
        "    try:\n"
        "        call()\n"
        "    except OSError as err:\n"
        "        print('refused', type(err).__name__)\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
        "socket.create_connection(s.getsockname(), timeout=1).close(); print('loopback ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:3] == ["refused OSError", "refused gaierror", "loopback ok"], out.stdout + out.stderr
    logged = [json.loads(line) for line in probe_log.read_text().splitlines()]
    assert [e["kind"] for e in logged] == ["connect", "getaddrinfo"] and "192.0.2.1" in logged[0]["target"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_workflow_opens_no_connection(server, name):
    prompt = tiny_prompt_for(load_api(name))  # the video workflows take their tiny input videos
    for node in prompt.values():  # a new prompt text and seed: nothing answered from ComfyUI's cache
        if isinstance(node["inputs"].get("prompt"), str):  # Text Encode, or the Enhance Prompt feeding it
            node["inputs"]["prompt"] += " (offline check)"
        if node["class_type"] == "RandomNoise":
            node["inputs"]["noise_seed"] += 1000
    entry = server.run_prompt(prompt, timeout=300)
    assert history_error(entry) is None, f"{name} failed:\n{history_error(entry)}"
    assert len(saved_mp4s(server, entry) or saved_audio(server, entry)) == 1  # an mp4, or the audio-only FLAC
    assert server.network_attempts() == [], f"network access attempted:\n{_attempts_report(server)}"


@pytest.mark.parametrize("kept", [(), ("tokenizer_config.json", "special_tokens_map.json")], ids=["none", "config-only"])
def test_missing_tokenizer_is_an_error_not_a_download(server, kept):
    source = server.model_dirs["text_encoders"] / TINY_GEMMA.rstrip("/")
    name = "gemma-no-tokenizer-" + ("config" if kept else "none")
    target = server.model_dirs["text_encoders"] / name
    if not target.exists():
        shutil.copytree(source, target, ignore=lambda d, names: [n for n in names if n.startswith(("tokenizer", "special"))
                                                                 and n not in kept])  # fmt: skip
    assert not (target / "tokenizer.json").exists() and not (target / "tokenizer.model").exists()
    prompt = demo.tiny_prompt(load_api("ltx2_t2v"))
    for node in prompt.values():
        if node["class_type"] == "OpenLTXTextEncoderLoader":
            node["inputs"]["text_encoder"] = name + "/"
    entry = server.run_prompt(prompt, timeout=300)
    message = history_error(entry) or ""
    assert "tokenizer" in message and ("tokenizer.model" in message or "tokenizer.json" in message), message[:3000]
    assert server.network_attempts() == [], f"network access attempted:\n{_attempts_report(server)}"
