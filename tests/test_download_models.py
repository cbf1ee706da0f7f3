"""tools/download_models.py against a loopback Hugging Face Hub (tests/hub_server.py), offline.

The tool runs as a user runs it - a subprocess with ``HF_ENDPOINT`` pointing at the loopback
server (huggingface_hub reads it at import) and a private ``HF_HOME`` - under the venv's
huggingface_hub (0.3x) and, where ``make setup`` installed it, under 2.x too.  The fake repos
carry the real repo ids and file paths of the presets (``tools/model_catalog.py``) with a few
bytes (or 25 MiB, to see a resume) of random content.

* ``--list``: one JSON object in the DOWNLOADS.md convention, the catalog's presets;
* a preset -> every file at ``<models>/<folder>/<name>`` (Google's Gemma folder keeps its
  layout), byte for byte; a second run fetches nothing;
* a published sha256 that the bytes do not match -> the file is rejected, not placed, no copy
  left; a small file whose size is not the announced one -> the same;
* a connection dropped mid-file -> resumed with a Range request, the sha256 checks out; a
  process killed mid-file -> the next run resumes from the partial file;
* no network (HF_ENDPOINT on a closed port), a gated repo without / with a wrong token -> one
  clear line, non-zero exit, no traceback; the right token in HF_TOKEN -> downloaded;
* the default models folder is the ComfyUI the pack sits in (custom_nodes/<pack>), else the
  tool asks for --models-dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hub_server import FakeHub, FakeRepo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import model_catalog  # noqa: E402

TOOL = REPO / "tools" / "download_models.py"
TRANSFORMERS5 = REPO / ".venv" / "transformers5"  # huggingface_hub 2.x (make setup)
MIB = 2**20
BIG = 25 * MIB  # > two of huggingface_hub 0.3x's 10 MiB write chunks
UPSCALERS = model_catalog.PRESETS["ltx-2-upscalers"].files
SPATIAL, TEMPORAL = UPSCALERS[0], UPSCALERS[1]
FP4 = model_catalog.PRESETS["gemma-3-12b-fp4"].files[0]
TOKEN = "hf_loopbacktoken"

HUB_LIBS = ["venv"] + (["2.x"] if (TRANSFORMERS5 / "huggingface_hub").is_dir() else [])


def _bytes(seed: int, n: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def make_repos(big: bool = False) -> dict[str, FakeRepo]:
    """The presets' repos with their real paths; Gemma is gated (token ``TOKEN``)."""
    ltx2 = {SPATIAL.filename: _bytes(1, 4096), TEMPORAL.filename: _bytes(2, BIG if big else 3000)}
    gemma = {}
    for i, f in enumerate(model_catalog.GEMMA_FILES):
        gemma[f.filename] = (json.dumps({"file": f.filename}).encode() if f.filename.endswith(".json")
                             else _bytes(10 + i, 2048))  # fmt: skip
    return {
        model_catalog.LTX2_REPO: FakeRepo(ltx2),
        model_catalog.GEMMA_REPO: FakeRepo(gemma, gated_token=TOKEN),
        model_catalog.COMFY_LTX2_REPO: FakeRepo({FP4.filename: _bytes(3, 5000)}),
    }


def run_tool(*args, endpoint: str, home: Path, lib: str = "venv", token: str | None = None, wait: bool = True,
             cwd: Path = REPO, tool: Path = TOOL):  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and k not in ("COMFYUI_PATH", "PYTHONPATH")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1")
    if token:
        env["HF_TOKEN"] = token
    if lib == "2.x":
        env["PYTHONPATH"] = str(TRANSFORMERS5)
    cmd = [sys.executable, str(tool), *map(str, args), "--retry-wait", "0.2"]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


# --- the listing ---------------------------------------------------------------------------------

def test_list_prints_the_presets_in_the_convention():
    proc = subprocess.run([sys.executable, str(TOOL), "--list"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert set(listed) == {"presets"}
    presets = listed["presets"]
    assert presets == model_catalog.listing()["presets"]
    for name in ("ltx-2-dev", "ltx-2-distilled", "ltx-2-dev-fp8", "ltx-2.3-dev", "ltx-2.3-distilled", "ltx-2.3-dev-fp8",
                 "gemma-3-12b-qat", "gemma-3-12b-bf16", "gemma-3-12b-fp8", "gemma-3-12b-fp4", "ltx-2-upscalers",
                 "ltx-2.3-upscalers", "ltx-2-distilled-lora", "ltx-2.3-distilled-lora", "workflows"):  # fmt: skip
        assert name in presets and presets[name]["description"] and presets[name]["files"], name
    folders = {"checkpoints", "diffusion_models", "text_encoders", "loras", "latent_upscale_models", "vae", "model_patches"}
    for name, preset in presets.items():
        for f in preset["files"]:
            assert set(f) == {"repo", "filename", "folder", "size"}, f
            assert f["folder"].split("/")[0] in folders and (f["size"] is None or f["size"] > 0), f
    assert presets["ltx-2.3-dev-fp8"]["files"][0]["repo"] == "Lightricks/LTX-2.3-fp8"
    gemma = presets["gemma-3-12b-qat"]["files"]
    assert {f["folder"] for f in gemma} == {"text_encoders/gemma-3-12b-it-qat-q4_0-unquantized"}
    assert {"config.json", "tokenizer.model", "model-00005-of-00005.safetensors"} <= {f["filename"] for f in gemma}
    assert presets["gemma-3-12b-fp4"]["files"][0]["filename"] == \
        "split_files/text_encoders/gemma_3_12B_it_fp4_mixed.safetensors"


def test_unknown_preset_and_missing_models_dir_are_usage_errors(tmp_path):
    proc = run_tool("ltx-9-ultra", "--models-dir", tmp_path, endpoint="http://127.0.0.1:9", home=tmp_path)
    assert proc.returncode == 2 and "unknown preset" in proc.stderr and "ltx-2-dev" in proc.stderr
    # The repository itself is not inside a ComfyUI's custom_nodes: without --models-dir it asks for one.
    proc = run_tool("ltx-2-upscalers", endpoint="http://127.0.0.1:9", home=tmp_path)
    assert proc.returncode == 2 and "--models-dir" in proc.stderr and "Traceback" not in proc.stderr


# --- downloads -----------------------------------------------------------------------------------

@pytest.mark.parametrize("lib", HUB_LIBS)
def test_presets_land_in_the_model_folders(tmp_path, lib):
    repos = make_repos()
    models = tmp_path / "models"
    with FakeHub(repos) as hub:
        proc = run_tool("ltx-2-upscalers", "gemma-3-12b-qat", "gemma-3-12b-fp4", "--models-dir", models,
                        endpoint=hub.url, home=tmp_path, lib=lib, token=TOKEN)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        expected = {f"latent_upscale_models/{SPATIAL.name}", f"latent_upscale_models/{TEMPORAL.name}",
                    f"text_encoders/{FP4.name}"}  # fmt: skip
        expected |= {f"{f.folder}/{f.filename}" for f in model_catalog.GEMMA_FILES}
        assert "text_encoders/gemma-3-12b-it-qat-q4_0-unquantized/config.json" in expected
        assert files_under(models) == expected  # nothing else: the staging folder is gone
        for preset in ("ltx-2-upscalers", "gemma-3-12b-qat", "gemma-3-12b-fp4"):
            for f in model_catalog.PRESETS[preset].files:
                assert (models / f.folder / f.name).read_bytes() == repos[f.repo].files[f.filename], f
        assert proc.stdout.count("sha256 ok") == 2 + 5 + 1 + 1  # upscalers, shards, tokenizer.model, fp4
        assert "size" in proc.stdout  # the small json files: their size is what the Hub publishes for them

        # A second run finds everything in place and downloads nothing (--verify hashes what is there).
        before = len(hub.requests)
        again = run_tool("ltx-2-upscalers", "--models-dir", models, "--verify", endpoint=hub.url, home=tmp_path,
                         lib=lib)  # fmt: skip
        assert again.returncode == 0 and again.stdout.count("present:") == 2, again.stdout + again.stderr
        assert again.stdout.count("sha256 ok") == 2
        assert not [r for r in hub.requests[before:] if r[0] == "GET"]
        # A file in place whose bytes changed (same size) fails --verify and is left alone.
        dest = models / TEMPORAL.folder / TEMPORAL.name
        dest.write_bytes(bytes(b ^ 1 for b in dest.read_bytes()))
        bad = run_tool("ltx-2-upscalers", "--models-dir", models, "--verify", endpoint=hub.url, home=tmp_path, lib=lib)
        assert bad.returncode == 1 and f"REJECTED {dest} is in place but sha256" in bad.stderr, bad.stderr
        assert "--force" in bad.stderr


def test_a_file_of_another_size_in_place_is_kept_unless_forced(tmp_path):
    repos = make_repos()
    models = tmp_path / "models"
    dest = models / SPATIAL.folder / SPATIAL.name
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"an older upload")
    with FakeHub(repos) as hub:
        proc = run_tool("ltx-2-upscalers", "--models-dir", models, endpoint=hub.url, home=tmp_path)
        assert proc.returncode == 1 and "--force" in proc.stderr and dest.read_bytes() == b"an older upload"
        proc = run_tool("ltx-2-upscalers", "--models-dir", models, "--force", endpoint=hub.url, home=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert dest.read_bytes() == repos[SPATIAL.repo].files[SPATIAL.filename]


@pytest.mark.parametrize("lib", HUB_LIBS)
def test_a_sha256_mismatch_is_rejected_and_not_placed(tmp_path, lib):
    repos = make_repos()
    repos[TEMPORAL.repo].published_sha[TEMPORAL.filename] = sha(b"what the Hub says the file is")
    models = tmp_path / "models"
    with FakeHub(repos) as hub:
        proc = run_tool("ltx-2-upscalers", "--models-dir", models, endpoint=hub.url, home=tmp_path, lib=lib)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "REJECTED" in proc.stderr and "sha256" in proc.stderr and TEMPORAL.name in proc.stderr
    assert sha(b"what the Hub says the file is") in proc.stderr and "Traceback" not in proc.stderr
    # The bad file is nowhere under the models folder; the good one of the same preset is in place.
    assert files_under(models) == {f"latent_upscale_models/{SPATIAL.name}"}


def test_a_small_file_of_the_wrong_size_is_rejected(tmp_path):
    repos = make_repos()
    config = model_catalog.GEMMA_FILES[0]
    assert config.filename == "config.json"
    repos[config.repo].announced_size = {config.filename: len(repos[config.repo].files[config.filename]) + 7}
    models = tmp_path / "models"
    with FakeHub(repos) as hub:
        proc = run_tool("gemma-3-12b-qat", "--models-dir", models, "--retries", "1", endpoint=hub.url,
                        home=tmp_path, token=TOKEN)  # fmt: skip
    assert proc.returncode == 1 and "REJECTED config.json" in proc.stderr, proc.stdout + proc.stderr
    placed = files_under(models)
    assert "text_encoders/gemma-3-12b-it-qat-q4_0-unquantized/config.json" not in placed
    assert len(placed) == len(model_catalog.GEMMA_FILES) - 1  # the rest of the folder came down


@pytest.mark.parametrize("lib", HUB_LIBS)
def test_a_dropped_connection_resumes_with_a_range_request(tmp_path, lib):
    repos = make_repos(big=True)
    models = tmp_path / "models"
    with FakeHub(repos) as hub:
        hub.drop_after[TEMPORAL.filename] = 12 * MIB
        proc = run_tool("ltx-2-upscalers", "--models-dir", models, endpoint=hub.url, home=tmp_path, lib=lib)
        ranges = hub.ranges(sha(repos[TEMPORAL.repo].files[TEMPORAL.filename]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    starts = [int(r.split("=")[1].split("-")[0]) for r in ranges if r]
    assert starts and 0 < starts[0] <= 12 * MIB, ranges  # resumed where the partial file ended, not from 0
    data = (models / TEMPORAL.folder / TEMPORAL.name).read_bytes()
    assert sha(data) == sha(repos[TEMPORAL.repo].files[TEMPORAL.filename])


def test_a_killed_download_resumes_on_the_next_run(tmp_path):
    repos = make_repos(big=True)
    models = tmp_path / "models"
    blob = sha(repos[TEMPORAL.repo].files[TEMPORAL.filename])
    with FakeHub(repos) as hub:
        hub.pause_after[TEMPORAL.filename] = 21 * MIB
        proc = run_tool("ltx-2-upscalers", "--models-dir", models, endpoint=hub.url, home=tmp_path, wait=False)
        try:
            assert hub.paused.wait(timeout=120), "the transfer never reached the pause"
            partial = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until the client has written its 10 MiB chunks
                parts = [p for p in (models / ".openltx_downloads").rglob("*.incomplete")]
                if parts and parts[0].stat().st_size >= 20 * MIB:
                    partial = parts[0]
                    break
                time.sleep(0.1)
            assert partial is not None, "no partial download appeared"
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # the tool we started, by its pid
            proc.communicate(timeout=60)
        assert not (models / TEMPORAL.folder / TEMPORAL.name).exists()  # nothing placed by the killed run
        kept = partial.stat().st_size
        hub.resume.set()
        before = len(hub.requests)
        again = run_tool("ltx-2-upscalers", "--models-dir", models, endpoint=hub.url, home=tmp_path)
        ranges = [r for m, p, r in hub.requests[before:] if m == "GET" and p.endswith(blob)]
    assert again.returncode == 0, again.stdout + again.stderr
    assert ranges == [f"bytes={kept}-"], ranges  # one GET, from where the killed run stopped
    assert sha((models / TEMPORAL.folder / TEMPORAL.name).read_bytes()) == blob


# --- refusals ------------------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # huggingface_hub 0.3x retries an unreachable host for ~20 s before it gives up
@pytest.mark.parametrize("lib", HUB_LIBS)
def test_no_network_is_one_clear_line(tmp_path, lib):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    proc = run_tool("ltx-2-upscalers", "--models-dir", tmp_path / "models", endpoint=endpoint, home=tmp_path, lib=lib)
    assert proc.returncode == 1
    assert f"cannot reach the Hub at {endpoint}" in proc.stderr and "connection refused" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert files_under(tmp_path / "models") == set()


@pytest.mark.parametrize("lib", HUB_LIBS)
def test_a_gated_repo_says_where_to_accept_the_licence(tmp_path, lib):
    models = tmp_path / "models"
    with FakeHub(make_repos()) as hub:
        page = f"{hub.url}/{model_catalog.GEMMA_REPO}"
        proc = run_tool("gemma-3-12b-qat", "--models-dir", models, endpoint=hub.url, home=tmp_path, lib=lib)
        assert proc.returncode == 1 and "gated" in proc.stderr and page in proc.stderr, proc.stderr
        assert "HF_TOKEN is not set" in proc.stderr and "Traceback" not in proc.stderr
        wrong = run_tool("gemma-3-12b-qat", "--models-dir", models, endpoint=hub.url, home=tmp_path, lib=lib,
                         token="hf_someoneelse")  # fmt: skip
        assert wrong.returncode == 1 and "HF_TOKEN is set but that account has no access" in wrong.stderr
        assert files_under(models) == set()


def test_default_models_folder_is_the_comfyui_the_pack_is_in(tmp_path):
    comfy = tmp_path / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    (comfy / "custom_nodes").mkdir()
    (comfy / "custom_nodes" / "OpenLTX").symlink_to(REPO, target_is_directory=True)  # as a dev checkout is linked
    tool = comfy / "custom_nodes" / "OpenLTX" / "tools" / "download_models.py"
    repos = make_repos()
    with FakeHub(repos) as hub:
        proc = run_tool("ltx-2-upscalers", endpoint=hub.url, home=tmp_path, tool=tool, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"models folder: {comfy / 'models'}" in proc.stdout
    assert files_under(comfy / "models") == {f"latent_upscale_models/{f.name}" for f in UPSCALERS}


@pytest.mark.parametrize("lib", HUB_LIBS)
def test_a_file_the_repo_no_longer_publishes_is_named(tmp_path, lib):
    repos = make_repos()
    del repos[TEMPORAL.repo].files[TEMPORAL.filename]
    with FakeHub(repos) as hub:
        proc = run_tool("ltx-2-upscalers", "--models-dir", tmp_path / "models", endpoint=hub.url, home=tmp_path,
                        lib=lib)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"REJECTED {TEMPORAL.repo}/{TEMPORAL.filename} is not on {hub.url}" in proc.stderr, proc.stderr
    assert "--list" in proc.stderr
    assert files_under(tmp_path / "models") == {f"latent_upscale_models/{SPATIAL.name}"}  # the rest came down
