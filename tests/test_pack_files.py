"""Files ComfyUI and its frontend read from the pack: help pages, template workflows, web extensions."""

from __future__ import annotations

import subprocess
import sys

# ComfyUI (0.3.75 and 0.20.1, app/custom_node_manager.py) lists and serves a pack's template
# workflows from every one of these folders; two of them would list each workflow twice.
TEMPLATE_FOLDERS = ("example_workflows", "example", "examples", "workflow", "workflows")


def test_help_pages_have_their_english_copy(repo_root):
    # The frontends ask docs/<NodeId>/en.md first, then docs/<NodeId>.md (tools/sync_help_pages.py).
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "sync_help_pages.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = sorted(p.stem for p in (repo_root / "web" / "docs").glob("*.md"))
    copies = sorted(p.parent.name for p in (repo_root / "web" / "docs").glob("*/en.md"))
    assert pages and pages == copies


def test_one_template_folder(repo_root):
    present = [name for name in TEMPLATE_FOLDERS if (repo_root / name).is_dir()]
    assert present == ["workflows"], f"template workflow folders {present}: ComfyUI would list each workflow per folder"


def test_web_extension_is_plain_es_module(repo_root):
    # ComfyUI loads every .js under WEB_DIRECTORY as an ES module from /extensions/<pack>/...
    scripts = sorted((repo_root / "web").rglob("*.js"))
    assert [p.relative_to(repo_root).as_posix() for p in scripts] == ["web/js/openltx_media.js"]
    text = scripts[0].read_text(encoding="utf-8")
    assert 'from "../../../scripts/app.js"' in text and "app.registerExtension(" in text
