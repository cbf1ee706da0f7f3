"""Repository layout and packaging facts that ComfyUI Manager, the Comfy Registry and CI rely on."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

TORCH_PACKAGES = {"torch", "torchvision", "torchaudio"}


def _requirement_names(path) -> list[str]:
    names = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        assert match, f"{path.name}: cannot read requirement {raw!r}"
        names.append(match.group(0).lower().replace("_", "-"))
    return names


@pytest.fixture(scope="module")
def pyproject(repo_root) -> dict:
    with open(repo_root / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def test_pyproject_project_table(pyproject):
    project = pyproject["project"]
    assert project["name"] == "openltx"
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert project["description"].strip()
    assert project["license"] == {"file": "LICENSE"}
    assert project["requires-python"].startswith(">=3.")
    assert project["urls"]["Repository"].startswith("https://github.com/")


def test_pyproject_comfy_registry_table(pyproject):
    comfy = pyproject["tool"]["comfy"]
    assert comfy["PublisherId"], "the Comfy Registry needs a PublisherId"
    assert comfy["DisplayName"].strip()
    assert "Icon" in comfy
    assert comfy["requires-comfyui"].startswith(">=")
    assert comfy["web"] == "web"


def test_pyproject_dependencies_mirror_requirements(pyproject, repo_root):
    from_pyproject = sorted(re.match(r"[A-Za-z0-9._-]+", d).group(0).lower() for d in pyproject["project"]["dependencies"])
    from_requirements = sorted(_requirement_names(repo_root / "requirements.txt"))
    assert from_pyproject == from_requirements


@pytest.mark.parametrize("name", ["requirements.txt", "pyproject.toml"])
def test_no_torch_in_runtime_requirements(repo_root, pyproject, name):
    # ComfyUI Manager refuses node packs that ask for torch*; the host brings its own build.
    if name == "requirements.txt":
        names = _requirement_names(repo_root / name)
    else:
        names = [re.match(r"[A-Za-z0-9._-]+", d).group(0).lower() for d in pyproject["project"]["dependencies"]]
    assert not TORCH_PACKAGES & set(names), f"{name} names {sorted(TORCH_PACKAGES & set(names))}"


def test_license_is_apache_2(repo_root):
    text = (repo_root / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_readme_names_the_dev_commands(repo_root):
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    assert "make setup" in readme
    assert "make test" in readme


def test_gitignore_ignores_the_environment(repo_root):
    entries = {line.strip() for line in (repo_root / ".gitignore").read_text(encoding="utf-8").splitlines()}
    for entry in (".venv/", ".comfyui/", "__pycache__/", "*.safetensors"):
        assert entry in entries, f".gitignore lacks {entry}"


def test_ci_script_runs_setup_and_tests(repo_root):
    script = (repo_root / ".ci" / "run").read_text(encoding="utf-8")
    assert script.startswith("#!")
    assert "set -euo pipefail" in script
    assert "make setup" in script and "make test" in script


@pytest.mark.parametrize(
    "folder",
    ["ltx2", "model_loaders", "host", "samplers", "nodes", "workflows", "tools", "benchmarks", "tests", "web/docs"],
)
def test_layout_folder_exists(repo_root, folder):
    assert (repo_root / folder).is_dir(), f"{folder}/ is missing (see shared/DESIGN.md, Layers)"


def test_pack_entrypoint_exists(repo_root):
    assert (repo_root / "__init__.py").is_file(), "the pack has no root __init__.py"


def test_pack_imports_in_process(openltx_pack):
    # conftest.py loads the root __init__.py as `openltx`; an import error fails here
    # (pure-model tests still run against the bare package).
    assert callable(getattr(openltx_pack, "comfy_entrypoint", None)), "no comfy_entrypoint()"
    assert getattr(openltx_pack, "WEB_DIRECTORY", None) in ("./web", "web")
    assert not hasattr(openltx_pack, "NODE_CLASS_MAPPINGS"), (
        "ComfyUI 0.3.75 takes V1 NODE_CLASS_MAPPINGS first and then ignores comfy_entrypoint()"
    )


def _imported_modules(path: Path) -> set[str]:
    """Top-level names of the modules a file imports (absolute and package-relative).

    An import inside ``try: ... except ImportError`` is optional (e.g. the quantized ops poll
    ComfyUI's interrupt hook when a host is there) and not counted.
    """
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            optional.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level >= 2 or node.level == 0:  # `from ..x import y`: x is a sibling package of the pack
                names.add(module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("ltx2", {"comfy", "comfy_api", "comfy_extras", "nodes", "host", "model_loaders", "samplers"}),
        ("model_loaders", {"comfy", "comfy_api", "comfy_extras", "nodes", "host"}),
        ("samplers", {"nodes", "host"}),
        ("host", {"nodes"}),
    ],
)
def test_layers_point_down(repo_root, package, forbidden):
    """DESIGN.md's layers: ltx2/ and model_loaders/ never import ComfyUI; nothing imports nodes/."""
    offenders = {
        str(p.relative_to(repo_root)): sorted(_imported_modules(p) & forbidden)
        for p in sorted((repo_root / package).rglob("*.py"))
        if _imported_modules(p) & forbidden
    }
    assert not offenders, f"{package}/ imports what its layer must not: {offenders}"
