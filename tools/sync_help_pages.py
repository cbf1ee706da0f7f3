"""Copy each help page ``web/docs/<NodeId>.md`` to ``web/docs/<NodeId>/en.md``.

The ComfyUI frontend (1.2x to 1.5x at least) asks a custom node's help page at
``/extensions/<pack>/docs/<NodeId>/<locale>.md`` first and falls back to ``<NodeId>.md``; older
frontends ask only the latter.  ``web/docs/<NodeId>.md`` is the page to edit; this tool writes the
English copy where the frontends look first (``tests/test_help_pages.py`` checks they agree).

    python tools/sync_help_pages.py          # write the copies (and remove copies of deleted pages)
    python tools/sync_help_pages.py --check  # exit 1 and list what is out of date
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "web" / "docs"
LOCALE = "en"


def expected() -> dict[Path, bytes]:
    """copy path -> bytes it must hold."""
    return {DOCS / page.stem / f"{LOCALE}.md": page.read_bytes() for page in sorted(DOCS.glob("*.md"))}


def stale() -> list[str]:
    """Copies that are missing, differ from their page, or have no page any more."""
    want = expected()
    problems = [f"{p.relative_to(REPO_ROOT)}: missing" for p in want if not p.is_file()]
    problems += [f"{p.relative_to(REPO_ROOT)}: differs from {p.parent.name}.md" for p, data in want.items()
                 if p.is_file() and p.read_bytes() != data]  # fmt: skip
    problems += [f"{p.relative_to(REPO_ROOT)}: no web/docs/{p.parent.name}.md" for p in DOCS.glob(f"*/{LOCALE}.md")
                 if p not in want]  # fmt: skip
    return problems


def sync() -> list[Path]:
    written = []
    want = expected()
    for path, data in want.items():
        if not path.is_file() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written.append(path)
    for path in DOCS.glob(f"*/{LOCALE}.md"):
        if path not in want:
            shutil.rmtree(path.parent) if len(list(path.parent.iterdir())) == 1 else path.unlink()
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report copies that are out of date")
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for line in problems:
            print(line)
        if problems:
            print("run: python tools/sync_help_pages.py", file=sys.stderr)
        return 1 if problems else 0
    for path in sync():
        print(f"updated {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
