"""Test harness: a real ComfyUI host, the pack imported as ``openltx``.

At import time (before any test module is collected):

1. find the ComfyUI host: ``$COMFYUI_PATH`` if set, else ``<repo>/.comfyui``
   (provisioned by ``make setup``);
2. put it on ``sys.path`` and set ``comfy.cli_args.args.cpu = True`` before
   anything imports ``comfy.model_management`` (mandatory with a CUDA torch
   build on a GPU-less machine);
3. load the pack's root ``__init__.py`` under the alias ``openltx`` so test
   modules can write ``from openltx.ltx2.transformer import ...`` at module top.
   If ``__init__.py`` is absent or executing it fails, ``openltx`` is still
   registered as a bare package (its ``__init__`` not run) so tests of the pure
   model code run; the ``openltx_pack`` fixture then fails with the reason.

``tests/`` is pytest's rootdir (tests/pytest.ini): with the repo root as
rootdir pytest would import the root ``__init__.py`` by itself and its relative
imports would fail.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
import types
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
PACK_ALIAS = "openltx"

if str(TESTS_DIR) not in sys.path:  # so test modules can `import comfy_host`
    sys.path.insert(0, str(TESTS_DIR))


# --- 1. + 2. the host ---------------------------------------------------------

def _find_comfy_path() -> tuple[Path | None, str | None]:
    """(path, None) when a ComfyUI tree is found, else (None, why)."""
    env = os.environ.get("COMFYUI_PATH", "").strip()
    if env:
        path = Path(env).expanduser().resolve()
        if (path / "main.py").is_file() and (path / "comfy").is_dir():
            return path, None
        return None, f"COMFYUI_PATH={env!r} is not a ComfyUI directory (no main.py / comfy/)"
    path = REPO_ROOT / ".comfyui"
    if (path / "main.py").is_file():
        return path, None
    return None, f"no ComfyUI host at {path}; run `make setup` (or set COMFYUI_PATH)"


COMFY_PATH, COMFY_MISSING = _find_comfy_path()

if COMFY_PATH is not None:
    if str(COMFY_PATH) not in sys.path:
        sys.path.insert(0, str(COMFY_PATH))
    if "comfy.model_management" in sys.modules:  # pragma: no cover - would be a harness bug
        raise RuntimeError("comfy.model_management was imported before args.cpu was set")
    from comfy.cli_args import args as _comfy_args

    _comfy_args.cpu = True


# --- 3. the pack under the alias `openltx` -------------------------------------

PACK_IMPORT_ERROR: str | None = None
_PACK_MODULE: types.ModuleType | None = None  # set once __init__.py has executed


def _register_bare_package() -> types.ModuleType:
    """`openltx` as a package whose __init__ has not run: submodules still import."""
    spec = importlib.util.spec_from_file_location(
        PACK_ALIAS, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    module = types.ModuleType(PACK_ALIAS)
    module.__file__ = str(REPO_ROOT / "__init__.py")
    module.__path__ = [str(REPO_ROOT)]
    module.__package__ = PACK_ALIAS
    module.__spec__ = spec
    sys.modules[PACK_ALIAS] = module
    return module


def _load_pack() -> types.ModuleType | None:
    """Execute the pack's root __init__.py as `openltx` (once); None if it is absent."""
    global PACK_IMPORT_ERROR, _PACK_MODULE
    if _PACK_MODULE is not None:
        return _PACK_MODULE
    init = REPO_ROOT / "__init__.py"
    if not init.is_file():
        if PACK_ALIAS not in sys.modules:
            _register_bare_package()
        return None
    if COMFY_PATH is None:
        PACK_IMPORT_ERROR = COMFY_MISSING
        _register_bare_package()
        return None
    spec = importlib.util.spec_from_file_location(
        PACK_ALIAS, init, submodule_search_locations=[str(REPO_ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_ALIAS] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        PACK_IMPORT_ERROR = traceback.format_exc()
        # Drop half-imported pack modules, keep pure submodules importable.
        for name in [n for n in sys.modules if n == PACK_ALIAS or n.startswith(PACK_ALIAS + ".")]:
            del sys.modules[name]
        _register_bare_package()
        return None
    PACK_IMPORT_ERROR = None
    _PACK_MODULE = module
    return module


_load_pack()


def pytest_report_header(config):
    host = str(COMFY_PATH) if COMFY_PATH else f"MISSING ({COMFY_MISSING})"
    if COMFY_PATH is not None:
        try:
            version_file = COMFY_PATH / "comfyui_version.py"
            ns: dict = {}
            exec(version_file.read_text(encoding="utf-8"), ns)
            host += f" (ComfyUI {ns.get('__version__', '?')})"
        except OSError:
            pass
    if not (REPO_ROOT / "__init__.py").is_file():
        pack = "no __init__.py yet"
    elif PACK_IMPORT_ERROR:
        pack = "IMPORT FAILED: " + PACK_IMPORT_ERROR.strip().splitlines()[-1]
    else:
        pack = f"loaded as {PACK_ALIAS!r}"
    return [f"comfyui host: {host}", f"openltx pack: {pack}"]


# --- fixtures ------------------------------------------------------------------

@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the pack's folder)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def comfy_path() -> Path:
    """The ComfyUI tree used as host (already on sys.path, with args.cpu = True)."""
    if COMFY_PATH is None:
        pytest.fail(COMFY_MISSING, pytrace=False)
    return COMFY_PATH


@pytest.fixture(scope="session")
def openltx_pack(comfy_path) -> types.ModuleType:
    """The pack's root module, imported in-process as `openltx`."""
    module = _PACK_MODULE
    if module is None:
        if not (REPO_ROOT / "__init__.py").is_file():
            pytest.fail(f"the pack has no {REPO_ROOT / '__init__.py'} yet", pytrace=False)
        pytest.fail(f"importing the pack as {PACK_ALIAS!r} failed:\n{PACK_IMPORT_ERROR}", pytrace=False)
    return module


@pytest.fixture(scope="session")
def comfy_server(comfy_path, tmp_path_factory):
    """One real headless ComfyUI server (CPU) per test session, with the pack loaded.

    Yields a ``comfy_host.ComfyServer``; its ``model_dirs`` / ``checkpoints_dir``
    / ``diffusion_models_dir`` are temp folders the server lists models from.
    The server log stays in the session's temp dir (``server.log_path``).
    """
    from comfy_host import ComfyServer

    base_dir = tmp_path_factory.mktemp("comfy_server")
    # network_guard: every prompt of the session runs with non-loopback connections refused and
    # logged (tests/test_privacy.py checks the log stays empty).
    server = ComfyServer(comfy_path, base_dir=base_dir, python=sys.executable, network_guard=True)
    try:
        server.start(timeout=float(os.environ.get("OPENLTX_SERVER_TIMEOUT", "120")))
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
