"""Run a real, headless ComfyUI server with this pack loaded (no stubs).

Recipe B of shared/COMFY_HOST_NOTES.md §4.3: the pristine ComfyUI tree is started
with a throwaway ``--base-directory``; an ``extra.yaml`` adds a custom_nodes
folder that holds one symlink, ``ComfyUI-OpenLTX`` -> the repository root, and
points the model folders the pack reads at temp dirs that tests can fill.
``--database-url sqlite:///:memory:`` and ``PYTHONDONTWRITEBYTECODE=1`` keep the
ComfyUI tree free of writes.

With ``network_guard=True`` (the test session's server) the server runs behind a network guard
(``tests/netguard_site/sitecustomize.py``): any attempt to reach a host other than loopback is
refused and logged, and ``network_attempts()`` returns what was tried.  ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` are removed from its
environment, so nothing passes only because a library was told to stay offline.

Only the standard library is used to talk to the server.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

# Folder name of the pack inside custom_nodes/ (what a `git clone` would create).
PACK_DIR_NAME = "ComfyUI-OpenLTX"

# sitecustomize.py that refuses and logs non-loopback connections (see its docstring).
NETGUARD_DIR = Path(__file__).resolve().parent / "netguard_site"
# Offline switches of Hugging Face libraries, removed from the server's environment.
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "DIFFUSERS_OFFLINE")

# The node whose presence in /object_info says "the pack has loaded".
READY_NODE = "OpenLTXEmptyLatent"

# ComfyUI model folder names that tests may drop files into.
MODEL_FOLDERS = (
    "checkpoints",
    "diffusion_models",
    "text_encoders",
    "latent_upscale_models",
    "loras",
    "vae",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class HttpResult:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class ComfyServer:
    """A ComfyUI server process on 127.0.0.1 with the pack in its custom nodes.

    Usage::

        server = ComfyServer(comfy_path=Path(".comfyui"))
        server.start()            # blocks until READY_NODE is in /object_info
        server.object_info("OpenLTXEmptyLatent")
        prompt_id = server.queue_prompt(prompt)["prompt_id"]
        server.wait_for_history(prompt_id)
        server.stop()

    Drop model files into ``server.model_dirs["checkpoints"]`` (etc.) before
    asking for the loader's options: ComfyUI rescans a folder when it changes.
    """

    def __init__(
        self,
        comfy_path: Path,
        *,
        pack_root: Path = REPO_ROOT,
        python: str | None = None,
        port: int | None = None,
        base_dir: Path | None = None,
        ready_node: str = READY_NODE,
        extra_args: tuple[str, ...] = (),
        network_guard: bool = False,
    ) -> None:
        self.comfy_path = Path(comfy_path).resolve()
        self.pack_root = Path(pack_root).resolve()
        self.python = python or sys.executable
        self.port = port or free_port()
        self._own_base_dir = base_dir is None
        self.base_dir = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix="openltx-comfy-"))
        self.ready_node = ready_node
        self.extra_args = tuple(extra_args)
        self.network_guard = network_guard

        self.custom_nodes_dir = self.base_dir / "custom_nodes"  # must exist; stays empty
        self.pack_parent_dir = self.base_dir / "packs"          # holds the pack symlink
        self.model_dirs = {name: self.base_dir / "test_models" / name for name in MODEL_FOLDERS}
        self.extra_yaml = self.base_dir / "extra.yaml"
        self.log_path = self.base_dir / "server.log"
        self.network_log = self.base_dir / "network_attempts.jsonl"
        self.process: subprocess.Popen | None = None
        self._log_file = None

    # -- convenience ----------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def checkpoints_dir(self) -> Path:
        return self.model_dirs["checkpoints"]

    @property
    def diffusion_models_dir(self) -> Path:
        return self.model_dirs["diffusion_models"]

    def log_text(self) -> str:
        """Everything the server has printed so far (stdout and stderr)."""
        if self._log_file is not None:
            self._log_file.flush()
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def network_attempts(self) -> list[dict]:
        """Connections to non-loopback hosts the server tried (and the guard refused), oldest first."""
        try:
            text = self.network_log.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def guarded_pids(self) -> set[int]:
        """Processes that loaded the network guard (the server's pid is among them when it works)."""
        try:
            text = Path(str(self.network_log) + ".pids").read_text(encoding="utf-8")
        except FileNotFoundError:
            return set()
        return {int(line) for line in text.split()}

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    @property
    def pack_link(self) -> Path:
        """The pack as the server sees it: <base>/packs/ComfyUI-OpenLTX (a symlink)."""
        return self.pack_parent_dir / PACK_DIR_NAME

    def mentions_pack(self, line: str) -> bool:
        """Does a log line name a file of the pack (not of the host or the venv inside the repo)?"""
        for other in (str(self.comfy_path), sys.prefix, str(self.pack_root / ".venv")):
            line = line.replace(other + os.sep, "<elsewhere>/")
        return str(self.pack_link) in line or (str(self.pack_root) + os.sep) in line

    def pack_log_excerpt(self, text: str | None = None) -> str:
        """Log lines that mention the pack, with the whole traceback around each."""
        lines = (self.log_text() if text is None else text).splitlines()
        out: list[str] = []
        i = 0
        while i < len(lines):
            if lines[i].startswith("Traceback (most recent call last)"):
                j = i + 1
                while j < len(lines) and lines[j][:1] in (" ", "\t"):
                    j += 1
                block = lines[i:j + 1]  # frames plus the exception line
                if any(self.mentions_pack(line) for line in block):
                    out.extend(block)
                i = j + 1
                continue
            if self.mentions_pack(lines[i]):
                out.append(lines[i])
            i += 1
        return "\n".join(out)

    def _failure_report(self) -> str:
        excerpt = self.pack_log_excerpt()
        report = f"--- server log ({self.log_path}), last lines ---\n{self.log_tail(40)}"
        if excerpt:
            report = f"--- server log lines about the pack ---\n{excerpt}\n" + report
        return report

    # -- lifecycle ------------------------------------------------------------

    def _prepare_base_dir(self) -> None:
        self.custom_nodes_dir.mkdir(parents=True, exist_ok=True)
        self.pack_parent_dir.mkdir(parents=True, exist_ok=True)
        link = self.pack_parent_dir / PACK_DIR_NAME
        if not link.is_symlink():
            link.symlink_to(self.pack_root, target_is_directory=True)
        for path in self.model_dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        lines = ["openltx_tests:", "  is_default: true", f"  custom_nodes: {self.pack_parent_dir}"]
        lines += [f"  {name}: {path}" for name, path in self.model_dirs.items()]
        self.extra_yaml.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def command(self) -> list[str]:
        return [
            self.python, "main.py",
            "--cpu",
            "--listen", "127.0.0.1",
            "--port", str(self.port),
            "--base-directory", str(self.base_dir),
            "--database-url", "sqlite:///:memory:",
            "--extra-model-paths-config", str(self.extra_yaml),
            "--disable-auto-launch",
            *self.extra_args,
        ]

    def start(self, timeout: float = 120.0) -> "ComfyServer":
        if not (self.comfy_path / "main.py").is_file():
            raise RuntimeError(f"no ComfyUI at {self.comfy_path} (main.py missing); run `make setup`")
        self._prepare_base_dir()
        env = dict(os.environ)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("COMFYUI_PATH", None)
        if self.network_guard:
            for switch in OFFLINE_SWITCHES:
                env.pop(switch, None)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(NETGUARD_DIR), env.get("PYTHONPATH", "")) if p)
            env["OPENLTX_NETGUARD_LOG"] = str(self.network_log)
        self._log_file = open(self.log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.comfy_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() can reach its children
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = f"/object_info/{urllib.parse.quote(self.ready_node)}"
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(
                    f"ComfyUI exited with code {code} before it was ready.\n{self._failure_report()}"
                )
            try:
                res = self.get(path, timeout=5)
                if res.status == 200:
                    info = res.json()
                    if self.ready_node in info:
                        return
                    # The server is up but does not know the node: the pack did not load.
                    raise RuntimeError(
                        f"ComfyUI is up but has no node {self.ready_node!r}: the pack did not load.\n"
                        f"{self._failure_report()}"
                    )
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"ComfyUI did not answer {path} within {timeout:.0f} s.\n{self._failure_report()}"
                )
            time.sleep(0.25)

    def stop(self, timeout: float = 15.0) -> None:
        """Terminate the server by its pid (then its process group), kill if it lingers."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc is not None:
            # Anything the server itself started lives in its own session/group.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        """Stop the server and remove the temp base dir (keeps it if we did not create it)."""
        self.stop()
        if self._own_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    # -- HTTP -------------------------------------------------------------------

    def request(self, method: str, path: str, payload: Any = None, timeout: float = 30.0) -> HttpResult:
        """One HTTP request; HTTP errors come back as results, not exceptions."""
        data = None
        headers = {}
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return HttpResult(resp.status, resp.read())
        except urllib.error.HTTPError as err:
            return HttpResult(err.code, err.read())

    def get(self, path: str, timeout: float = 30.0) -> HttpResult:
        return self.request("GET", path, timeout=timeout)

    def post(self, path: str, payload: Any, timeout: float = 30.0) -> HttpResult:
        return self.request("POST", path, payload, timeout=timeout)

    def object_info(self, node: str | None = None) -> dict:
        """/object_info (all nodes) or /object_info/<node>; {} when the node is unknown."""
        res = self.get("/object_info" if node is None else f"/object_info/{urllib.parse.quote(node)}")
        if res.status != 200:
            raise RuntimeError(f"GET /object_info failed: HTTP {res.status}: {res.text[:2000]}")
        return res.json()

    def post_prompt(self, prompt: dict, client_id: str | None = None) -> HttpResult:
        """POST /prompt with an API-format prompt; returns the raw result (200 or 400)."""
        return self.post("/prompt", {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex})

    def queue_prompt(self, prompt: dict, client_id: str | None = None) -> dict:
        """POST /prompt and insist on success; returns {"prompt_id": ..., ...}."""
        res = self.post_prompt(prompt, client_id)
        if res.status != 200:
            raise AssertionError(f"POST /prompt gave HTTP {res.status}: {res.text[:4000]}")
        return res.json()

    def wait_for_history(self, prompt_id: str, timeout: float = 120.0, poll: float = 0.2) -> dict:
        """Poll /history/<id> until the prompt has finished; returns its history entry.

        Raises on timeout or when the server process dies. The entry's
        ``status.status_str`` is "success" or "error" (check it in the test).
        """
        deadline = time.monotonic() + timeout
        while True:
            res = self.get(f"/history/{urllib.parse.quote(prompt_id)}")
            if res.status == 200:
                # ComfyUI adds a prompt to the history only once it has finished.
                entry = res.json().get(prompt_id)
                if entry:
                    return entry
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running {prompt_id}.\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"prompt {prompt_id} not finished after {timeout:.0f} s.\n{self.log_tail()}")
            time.sleep(poll)

    def run_prompt(self, prompt: dict, timeout: float = 120.0) -> dict:
        """Queue a prompt, wait for it, and return its history entry."""
        prompt_id = self.queue_prompt(prompt)["prompt_id"]
        return self.wait_for_history(prompt_id, timeout=timeout)


def history_error(entry: dict) -> str | None:
    """The execution_error message of a finished history entry, or None if it succeeded."""
    status = entry.get("status", {})
    if status.get("status_str") == "success":
        return None
    for kind, data in status.get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')}: {data.get('exception_message')}\n" + "".join(data.get("traceback", []))
    return f"status {status!r}"
