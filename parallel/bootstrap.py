"""Make the pack importable in a worker process under the name it has in the main process.

ComfyUI imports a custom node pack under its folder name (``OpenLTX``, ``comfyui-openltx``,
...), and objects sent to workers (``StreamInput``, ``TransformerConfig``) are pickled by that
module path.  A worker registers the pack under the same name as a bare package — its
``__init__`` (which imports ComfyUI and the nodes) is not run — so ``<name>.ltx2`` and
``<name>.parallel`` import there without ComfyUI.  Standard library only: Ray ships this
module's functions to its workers by value.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types


def register_pack(name: str, root: str) -> None:
    """Register ``name`` (dotted parents included) as a package rooted at ``root``, unless present."""
    if name in sys.modules:
        return
    parts = name.split(".")
    for i in range(1, len(parts)):  # namespace parents, e.g. "custom_nodes"
        parent = ".".join(parts[:i])
        if parent not in sys.modules:
            module = types.ModuleType(parent)
            module.__path__ = []
            module.__spec__ = importlib.machinery.ModuleSpec(parent, None, is_package=True)
            sys.modules[parent] = module
    module = types.ModuleType(name)
    module.__file__ = f"{root}/__init__.py"
    module.__path__ = [root]
    module.__package__ = name
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, origin=module.__file__, is_package=True)
    module.__spec__.submodule_search_locations = [root]
    sys.modules[name] = module


def setup_hook(name: str, root: str):
    """A no-argument callable for Ray's ``worker_process_setup_hook`` that registers the pack."""

    def hook() -> None:
        register_pack(name, root)

    return hook
