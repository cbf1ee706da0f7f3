"""Fetch published model files from the Hugging Face Hub into ComfyUI's model folders, checked.

``tools/download_models.py`` is the command line; this module does the work:

1. ask the Hub for the file's metadata (a HEAD on its resolve URL: the commit, the size, and
   the ETag - the sha256 for an LFS file, a git sha1 for a small one);
2. download it with ``huggingface_hub.hf_hub_download`` (its progress bar; hf_xet where a repo
   is Xet-backed) into a staging folder next to the model folders, ``<models>/.openltx_downloads``,
   pinned to that commit, retrying a dropped transfer: the library keeps the partial
   ``.incomplete`` file there and the next attempt - or the next run - resumes it with a Range
   request (best effort: huggingface_hub 0.3x keeps whole 10 MiB chunks; 2.x may restart);
3. check it: an LFS file's sha256 against the Hub's (huggingface_hub itself only checks the
   size), a small file's size; a file that fails is deleted, never placed;
4. only then rename it into ``<models>/<folder>/<name>`` (same file system: an atomic move).

``HF_ENDPOINT`` (a mirror), ``HF_TOKEN`` (gated repos) and ``HF_HUB_OFFLINE`` are read by
huggingface_hub itself; errors come back as one clear sentence (``DownloadError``), not a
traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from model_catalog import HubFile, repo_page

STAGING = ".openltx_downloads"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
HASH_CHUNK = 8 * 2**20


class DownloadError(Exception):
    """Stops the whole run: no network, no access to a repo, a repo or file the Hub does not have."""


class FileRejected(Exception):
    """One file failed its check or could not be placed; the other files of the run go on."""


@dataclass
class RemoteFile:
    """What the Hub says about one file at the moment we ask (the HEAD on its resolve URL)."""

    commit: str
    etag: str
    size: int

    @property
    def sha256(self) -> str | None:
        """The published sha256 (an LFS file's ETag), or None for a small git-stored file."""
        return self.etag if SHA256.match(self.etag) else None


# ----------------------------------------------------------------------------- where the models go
def find_models_dir(*script_paths: str | os.PathLike) -> Path | None:
    """The ``models`` folder of the ComfyUI installation the pack sits in, else None.

    The pack lives at ``<ComfyUI>/custom_nodes/<pack>/`` and this script in its ``tools/``; the
    paths are tried as given (a pack symlinked into custom_nodes keeps that path) and resolved.
    Then ``$COMFYUI_PATH/models`` (the Makefile's host variable).
    """
    tried = []
    for script in script_paths:
        for path in (Path(os.path.abspath(script)), Path(script).resolve()):
            tried.append(path)
    for path in tried:
        pack = path.parent.parent  # <pack>/tools/<script> -> <pack>
        comfy = pack.parent.parent
        if pack.parent.name == "custom_nodes" and (comfy / "models").is_dir():
            return comfy / "models"
    env = os.environ.get("COMFYUI_PATH", "").strip()
    if env and (Path(env).expanduser() / "models").is_dir():
        return Path(env).expanduser() / "models"
    return None


def destination(file: HubFile, models_dir: Path) -> Path:
    return Path(models_dir) / file.folder / file.name


# ----------------------------------------------------------------------------- errors -> sentences
def _hub_errors():
    from huggingface_hub import errors

    return errors


def quiet_library_logs() -> None:
    """huggingface_hub logs each of its own HTTP retries with a long repr; we say what failed once."""
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _is_transient(err: BaseException) -> bool:
    """A dropped or failed transfer worth retrying (not a refusal from the Hub)."""
    errors = _hub_errors()
    if isinstance(err, errors.LocalEntryNotFoundError):
        return True  # huggingface_hub's HEAD failed on the network (checked first: in 0.3x it is an HTTP error)
    if isinstance(err, errors.OfflineModeIsEnabled):
        return False
    if isinstance(err, errors.HfHubHTTPError):
        return getattr(getattr(err, "response", None), "status_code", 0) in (408, 429, 500, 502, 503, 504)
    if isinstance(err, (ConnectionError, TimeoutError)) or type(err).__name__ == "XetDownloadError":
        return True
    # requests / urllib3 (huggingface_hub 0.x), httpx / httpx2 (2.x) and hf_xet transport errors
    if type(err).__module__.split(".")[0] in ("requests", "urllib3", "httpx", "httpx2", "httpcore", "http", "hf_xet"):
        return True
    return _is_size_mismatch(err)  # huggingface_hub's own size check after a short transfer


def explain(err: BaseException, file: HubFile) -> DownloadError:
    """The one-sentence reason a request about ``file`` failed, with what to do about it."""
    errors = _hub_errors()
    endpoint = _endpoint()
    where = f"{file.repo}/{file.filename}"
    token = "HF_TOKEN is set but that account has no access" if os.environ.get("HF_TOKEN") else "HF_TOKEN is not set"
    if isinstance(err, errors.LocalEntryNotFoundError):
        return DownloadError(f"cannot reach the Hub at {endpoint} to fetch {where}: check the network connection "
                             "(or set HF_ENDPOINT to a reachable mirror) and run the same command again.")  # fmt: skip
    if isinstance(err, errors.OfflineModeIsEnabled):
        return DownloadError(f"HF_HUB_OFFLINE is set, so nothing can be downloaded ({where}); unset it and retry.")
    if isinstance(err, errors.GatedRepoError):
        return DownloadError(
            f"{file.repo} is a gated repository ({token}): sign in at {repo_page(file.repo, endpoint)}, accept its "
            f"licence there, create a read token at {endpoint}/settings/tokens and run again with HF_TOKEN=<token>."
        )
    if isinstance(err, errors.RepositoryNotFoundError):
        return DownloadError(
            f"the Hub at {endpoint} refused {file.repo} (not found, private or gated; {token}). If it is gated, accept "
            f"its licence at {repo_page(file.repo, endpoint)} and set HF_TOKEN to a read token of that account."
        )
    if isinstance(err, errors.RevisionNotFoundError):
        return DownloadError(f"{file.repo} has no revision {file.revision!r} on {endpoint}.")
    if _is_remote_missing(err):
        return DownloadError(f"{where} is not on {endpoint} (at revision {file.revision}): the repository no longer "
                             "publishes that file; `download_models.py --list` shows what this version "
                             "expects.")  # fmt: skip
    if isinstance(err, errors.HfHubHTTPError):
        status = getattr(getattr(err, "response", None), "status_code", "?")
        if status in (401, 403):
            return DownloadError(f"the Hub refused {where} (HTTP {status}; {token}): accept the licence at "
                                 f"{repo_page(file.repo, endpoint)} and set HF_TOKEN to a read token.")  # fmt: skip
        return DownloadError(f"the Hub at {endpoint} answered HTTP {status} for {where}: {_first_line(err)}")
    if _is_transient(err):
        return DownloadError(f"cannot reach the Hub at {endpoint} for {where} ({_network_reason(err)}); "
                             "check the network connection (or HF_ENDPOINT) and run the same command again - "
                             "a partial download resumes.")  # fmt: skip
    return DownloadError(f"{where}: {type(err).__name__}: {_first_line(err)}")


def _is_remote_missing(err: BaseException) -> bool:
    """The Hub answered that the repo has no such file (0.3x: EntryNotFoundError, 2.x: RemoteEntryNotFoundError)."""
    errors = _hub_errors()
    missing = getattr(errors, "RemoteEntryNotFoundError", None) or errors.EntryNotFoundError
    return isinstance(err, missing) and not isinstance(err, errors.LocalEntryNotFoundError)


def _network_reason(err: BaseException) -> str:
    """"connection refused", "name or service not known", ... out of a nested transport error."""
    found = re.search(r"\[Errno -?\d+\] ([^\"')\]]+)", str(err))
    if found:
        return found.group(1).strip().rstrip(".").lower()
    return f"{type(err).__name__}: {_first_line(err)}"[:200]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


# ----------------------------------------------------------------------------- the Hub
def remote_file(file: HubFile) -> RemoteFile:
    """The Hub's metadata of ``file`` (HEAD on its resolve URL).

    Raises FileRejected when the repo does not have the file, DownloadError for anything else.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(file.repo, file.filename, revision=file.revision)
    try:
        meta = get_hf_file_metadata(url)
    except Exception as err:  # noqa: BLE001 - every failure becomes one sentence
        if _is_remote_missing(err):  # this file only: the rest of the preset may still be there
            raise FileRejected(str(explain(err, file))) from None
        raise explain(err, file) from None
    if not meta.commit_hash or not meta.etag or meta.size is None:
        raise DownloadError(f"{url} did not answer like the Hugging Face Hub (no commit, ETag or size): a proxy or "
                            "a wrong HF_ENDPOINT?")  # fmt: skip
    return RemoteFile(meta.commit_hash, meta.etag, int(meta.size))


def _staged_download(file: HubFile, remote: RemoteFile, staging: Path, *, retries: int, retry_wait: float,
                     log: Callable[[str], None]) -> Path:  # fmt: skip
    """hf_hub_download into ``staging`` at the commit we checked, retrying a broken transfer."""
    from huggingface_hub import hf_hub_download

    for attempt in range(retries + 1):
        try:
            return Path(hf_hub_download(file.repo, file.filename, revision=remote.commit, local_dir=staging))
        except Exception as err:  # noqa: BLE001
            if not _is_transient(err):
                raise explain(err, file) from None
            wrong_size = _is_size_mismatch(err)
            if wrong_size:  # the partial file is the wrong length: resuming it would only repeat the error
                _forget_staged(staging, file, remote)
            if attempt == retries:
                if wrong_size:
                    raise FileRejected(f"{file.name}: the transfer did not deliver the {remote.size} bytes the Hub "
                                       f"announces ({_first_line(err)})") from None  # fmt: skip
                raise DownloadError(
                    f"the transfer of {file.repo}/{file.filename} failed {retries + 1} times "
                    f"({_network_reason(err)}); run the same command again to resume it."
                ) from None
            wait = min(retry_wait * 2**attempt, 60.0)
            log(f"  transfer interrupted ({type(err).__name__}); resuming in {wait:.0f} s "
                f"(try {attempt + 2} of {retries + 1})")  # fmt: skip
            time.sleep(wait)
    raise AssertionError("unreachable")


def _is_size_mismatch(err: BaseException) -> bool:
    """huggingface_hub's "Consistency check failed: file should be of size ..." after a transfer."""
    return isinstance(err, OSError) and "consistency check" in str(err).lower()


def sha256_of(path: Path, label: str = "") -> str:
    """sha256 of a file, streamed, with a progress bar (a 40 GB file takes a minute or two)."""
    from tqdm.auto import tqdm

    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                                     desc=f"sha256 {label or path.name}", leave=False, file=sys.stderr,
                                     disable=None) as bar:  # fmt: skip (no bar when not a terminal)
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def check(path: Path, file: HubFile, remote: RemoteFile) -> str:
    """Raise FileRejected unless ``path`` is the file the Hub publishes; returns what was checked."""
    size = path.stat().st_size
    if size != remote.size:
        raise FileRejected(f"{file.name}: {size} bytes, the Hub's file has {remote.size}")
    if remote.sha256 is None:
        return f"size {size} ok"
    got = sha256_of(path, file.name)
    if got != remote.sha256:
        raise FileRejected(f"{file.name}: sha256 {got} does not match the Hub's {remote.sha256}")
    return "sha256 ok"


def _forget_staged(staging: Path, file: HubFile, remote: RemoteFile | None = None) -> None:
    """Delete a staged file and huggingface_hub's bookkeeping for it, so that the next try starts clean.

    With ``remote`` also its partial downloads (huggingface_hub 0.3x names them ``<hash>.<etag>.incomplete``).
    """
    (staging / file.filename).unlink(missing_ok=True)
    bookkeeping = staging / ".cache" / "huggingface" / "download"
    meta = bookkeeping / (file.filename + ".metadata")
    meta.unlink(missing_ok=True)
    meta.with_suffix(".lock").unlink(missing_ok=True)
    if remote is not None and bookkeeping.is_dir():
        for partial in bookkeeping.rglob(f"*{remote.etag}*.incomplete"):
            partial.unlink(missing_ok=True)


def fetch(file: HubFile, models_dir: Path, *, force: bool = False, verify: bool = False, retries: int = 5,
          retry_wait: float = 5.0, log: Callable[[str], None] = print) -> str:  # fmt: skip
    """Download ``file`` into ``<models_dir>/<folder>/<name>``, checked; returns a one-word status.

    ``"present"``: already there with the Hub's size (``verify`` also hashes it);
    ``"downloaded"``: fetched, checked and moved into place.  Raises FileRejected (this file
    failed; nothing was placed) or DownloadError (stop the run).
    """
    models_dir = Path(models_dir)
    dest = destination(file, models_dir)
    remote = remote_file(file)
    if dest.exists() and not force:
        if dest.stat().st_size != remote.size:
            raise FileRejected(f"{dest} exists with {dest.stat().st_size} bytes but the Hub's file has {remote.size}: "
                               "left as it is (an older upload or an interrupted copy?); pass --force to "
                               "replace it")  # fmt: skip
        if verify:
            try:
                log(f"  {check(dest, file, remote)}: {dest}")
            except FileRejected as err:
                raise FileRejected(f"{dest} is in place but {str(err).split(': ', 1)[1]}: left as it is; pass "
                                   "--force to download it again") from None  # fmt: skip
        return "present"

    staging = models_dir / STAGING / file.repo
    staged = _staged_download(file, remote, staging, retries=retries, retry_wait=retry_wait, log=log)
    try:
        log(f"  {check(staged, file, remote)}")
    except FileRejected as err:
        _forget_staged(staging, file, remote)
        raise FileRejected(f"{err}; the download was deleted and nothing was placed in {dest.parent}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, dest)  # same file system (staging sits next to the model folders): atomic
    _forget_staged(staging, file)
    return "downloaded"


def remove_empty_staging(models_dir: Path) -> None:
    """Drop the staging folder when nothing is left in it but huggingface_hub's bookkeeping."""
    root = Path(models_dir) / STAGING
    if root.is_dir() and not any(p.is_file() and ".cache" not in p.relative_to(root).parts for p in root.rglob("*")):
        if not any(p.name.endswith(".incomplete") for p in root.rglob("*")):
            shutil.rmtree(root, ignore_errors=True)
