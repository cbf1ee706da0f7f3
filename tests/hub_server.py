"""A loopback HTTP server that answers like the Hugging Face Hub's file API, for offline tests.

What huggingface_hub (0.3x and 2.x) asks when it downloads ``repo/filename``:

* ``HEAD /<org>/<repo>/resolve/<revision>/<path>`` -> headers only: ``X-Repo-Commit`` (40-hex
  commit), ``ETag`` (git sha1 of a small file) and, for an LFS file, ``X-Linked-Etag`` (its
  sha256) and ``X-Linked-Size``; an LFS file answers ``302`` with ``Location`` pointing at the
  "CDN" (here ``http://localhost:<port>/cdn/<sha256>``: the same server, another host name), as huggingface.co does;
* ``GET`` of that location (or of the resolve URL for a small file), with ``Range: bytes=N-``
  when resuming -> ``206 Partial Content`` with ``Content-Range``;
* errors carry ``X-Error-Code`` (``GatedRepo``, ``RepoNotFound``, ``EntryNotFound``) - the
  header huggingface_hub turns into ``GatedRepoError`` etc.

A repo is a dict ``{path: bytes}``; ``published_sha`` overrides the sha256 the server announces
(a corrupted upload), ``announced_size`` the size a HEAD announces; ``gated`` repos want
``Authorization: Bearer <token>``.  Faults per path:
``drop_after`` closes the connection after that many body bytes (the first time only),
``pause_after`` sends that many bytes, then waits until ``resume`` is set (a client can be
killed meanwhile).  ``requests`` records (method, path, Range header) of every request.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SEND_CHUNK = 256 * 1024


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    lfs: set[str] = field(default_factory=set)  # paths stored in LFS (sha256 ETag); default: *.safetensors
    published_sha: dict[str, str] = field(default_factory=dict)
    announced_size: dict[str, int] = field(default_factory=dict)  # what HEAD says, when it is not the truth
    gated_token: str | None = None

    def is_lfs(self, path: str) -> bool:
        return path in self.lfs or path.endswith((".safetensors", ".gguf", ".model"))

    def sha256(self, path: str) -> str:
        return self.published_sha.get(path) or hashlib.sha256(self.files[path]).hexdigest()


class FakeHub:
    """``with FakeHub(repos) as hub: hub.url`` - the server runs in a thread until the block ends."""

    def __init__(self, repos: dict[str, FakeRepo]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str, str | None]] = []
        self.drop_after: dict[str, int] = {}
        self.pause_after: dict[str, int] = {}
        self.paused = threading.Event()  # set when a paused transfer has sent its bytes
        self.resume = threading.Event()
        self.body_bytes_sent: dict[str, int] = {}
        self._dropped: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle
    def __enter__(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.resume.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        """The "CDN" LFS files redirect to: the same server under another host name, as on the real
        Hub (huggingface_hub 2.x follows a redirect that stays on the Hub's host, not one to a CDN)."""
        return f"http://localhost:{self._server.server_address[1]}"

    def ranges(self, path_suffix: str) -> list[str | None]:
        """The Range headers of the GETs whose path ends with ``path_suffix``."""
        return [r for m, p, r in self.requests if m == "GET" and p.endswith(path_suffix)]

    def lookup_blob(self, sha: str) -> tuple[str, bytes] | None:
        for repo in self.repos.values():
            for path, data in repo.files.items():
                if repo.is_lfs(path) and repo.sha256(path) == sha:
                    return path, data
        return None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    # --- routing
    def _serve(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        with self.fake._lock:
            self.fake.requests.append((self.command, path, self.headers.get("Range")))
        if path.startswith("/cdn/"):
            found = self.fake.lookup_blob(path[len("/cdn/"):])
            if found is None:
                return self._error(404, "EntryNotFound", "no such blob")
            return self._send_file(found[0], found[1], body, lfs_sha=None)
        parts = path.lstrip("/").split("/", 4)
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(404, "RepoNotFound", "not a resolve URL")
        repo_id, revision, file_path = f"{parts[0]}/{parts[1]}", parts[3], parts[4]
        repo = self.fake.repos.get(repo_id)
        if repo is None:
            return self._error(401, "RepoNotFound", f"Repository Not Found for url: {self.path}")
        if repo.gated_token and self.headers.get("Authorization") != f"Bearer {repo.gated_token}":
            return self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted. You must have access to "
                                                 "it and be authenticated to access it. Please log in.")  # fmt: skip
        if revision not in ("main", COMMIT):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if file_path not in repo.files:
            return self._error(404, "EntryNotFound", f"Entry not found: {file_path}")
        data = repo.files[file_path]
        if repo.is_lfs(file_path):
            sha = repo.sha256(file_path)
            if self.command == "HEAD":  # the Hub redirects LFS files to its CDN
                self.send_response(302)
                self.send_header("Location", f"{self.fake.cdn_url}/cdn/{sha}")
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(repo.announced_size.get(file_path, len(data))))
                self.send_header("ETag", f'"{git_blob_sha1(data)}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            return self._send_file(file_path, data, body, lfs_sha=sha)
        return self._send_file(file_path, data, body, lfs_sha=None, announced=repo.announced_size.get(file_path))

    def _error(self, status: int, code: str, message: str) -> None:
        payload = ('{"error": "%s"}' % message).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if code == "EntryNotFound":
            self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_file(self, path: str, data: bytes, body: bool, lfs_sha: str | None, announced: int | None = None) -> None:
        start = 0
        spec = self.headers.get("Range")
        if spec and spec.startswith("bytes="):
            first = spec[len("bytes="):].split("-", 1)[0]
            start = int(first) if first else 0
        if start > len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if spec else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{lfs_sha or git_blob_sha1(data)}"')
        self.send_header("Accept-Ranges", "bytes")
        if spec:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        length = len(data) - start
        self.send_header("Content-Length", str(announced if announced is not None and not body else length))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        payload = memoryview(data)[start:]
        fake = self.fake
        drop = fake.drop_after.get(path) if path not in fake._dropped else None
        pause = fake.pause_after.get(path)
        sent = 0
        try:
            while sent < len(payload):
                limit = len(payload)
                if drop is not None:
                    limit = min(limit, max(drop - start, 0))
                if pause is not None and not fake.resume.is_set():
                    limit = min(limit, max(pause - start, 0))
                if sent >= limit:
                    if drop is not None and sent >= drop - start:
                        fake._dropped.add(path)
                        self._drop()
                        return
                    fake.paused.set()
                    fake.resume.wait(timeout=120)
                    pause = None
                    continue
                n = min(SEND_CHUNK, limit - sent)
                self.wfile.write(payload[sent: sent + n])
                sent += n
                fake.body_bytes_sent[path] = fake.body_bytes_sent.get(path, 0) + n
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _drop(self) -> None:
        """Cut the connection mid-body, as a network failure would."""
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
