"""Which third-party modules does a ComfyUI tree import when its server starts?

``make setup`` asks this before it installs torch: current ComfyUI imports torchaudio at start-up
(``comfy/sd.py`` -> the LTX-2 audio VAE), ComfyUI 0.3.75 only in optional node modules, and
torchaudio exists for fewer torch releases than torchvision, so the torch release depends on the
answer.

The scan is static (``ast``, standard library only, no torch needed): starting from ``main.py``
it follows the module-level imports that resolve to files of the tree, and collects the
top-level names of the imports that do not.  Imports inside functions, classes and ``try``
blocks are skipped: the host only needs those when a feature is used, or copes with their
absence.  ``comfy_extras`` / custom-node modules are loaded by the server in a guarded way, so
only the chain from ``main.py`` counts.

    python tools/host_imports.py PATH_TO_COMFYUI             # prints the external names
    python tools/host_imports.py PATH_TO_COMFYUI torchaudio  # prints yes / no
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def _module_file(root: Path, dotted: str) -> Path | None:
    """``a.b.c`` -> ``root/a/b/c.py`` or ``root/a/b/c/__init__.py`` (None outside the tree)."""
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    else:
        parts = parts[:-1]
    return ".".join(parts)


def _unguarded_imports(tree: ast.Module):
    """Import nodes at module level, also inside ``if`` / ``with`` blocks, not inside ``try``."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.With)):
            stack.extend(node.body)
            stack.extend(getattr(node, "orelse", []))


def external_imports(root: Path, entry: str = "main.py") -> set[str]:
    """Top-level names of the modules outside ``root`` that importing ``entry`` needs."""
    root = Path(root).resolve()
    seen: set[Path] = set()
    todo = [root / entry]
    external: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        package = _package_of(root, path)
        for node in _unguarded_imports(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                if node.level:
                    parts = package.split(".") if package else []
                    parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                    base = ".".join(p for p in parts + ([node.module] if node.module else []) if p)
                else:
                    base = node.module or ""
                names = [base] + [f"{base}.{alias.name}" if base else alias.name for alias in node.names]
            for dotted in names:
                if not dotted:
                    continue
                parts = dotted.split(".")
                found_inside = False
                for i in range(1, len(parts) + 1):  # a.b.c imports a, a.b and a.b.c
                    file = _module_file(root, ".".join(parts[:i]))
                    if file is not None:
                        found_inside = True
                        todo.append(file)
                if not found_inside and not (isinstance(node, ast.ImportFrom) and dotted != names[0]):
                    external.add(parts[0])
    return external


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not (Path(argv[1]) / "main.py").is_file():
        print(__doc__.strip().splitlines()[-2].strip(), file=sys.stderr)
        print(f"usage: {argv[0]} PATH_TO_COMFYUI [MODULE]   (a folder with main.py)", file=sys.stderr)
        return 2
    names = external_imports(Path(argv[1]))
    if len(argv) == 3:
        print("yes" if argv[2] in names else "no")
    else:
        print("\n".join(sorted(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
