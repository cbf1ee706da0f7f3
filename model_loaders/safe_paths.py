"""Path confinement and collision-free output names, as pure path logic (no ComfyUI import).

Every file name a node receives comes from a client of the ComfyUI server (any browser tab, any
script on the network that can reach it), so it is treated as hostile: a name is a path
*relative to one folder* and must stay inside it.

* ``confine(root, name)`` -> the file's absolute path when ``name`` stays inside ``root``, else
  ``None``.  Absolute names, ``..`` that climbs out, NUL bytes and lone surrogates are refused;
  with ``follow_links=False`` (input / output folders) the real path, symbolic links resolved,
  must lie inside the real ``root`` too, so a link that leads out of the folder is refused as
  well.  Callers give one error text for every refusal, whether or not something exists at
  the outside path: the answer must not tell a client what exists on the machine.
* ``output_stem(root, prefix)`` -> ``(folder, stem)`` for a filename prefix such as
  ``video/LTX-2``: the folder must be ``root`` or inside it (links resolved) and the stem must
  be a real name -- ``""``, ``"."``, ``"a/.."`` name the folder itself and are refused, as
  they would otherwise turn into ``<root>.ext`` *next to* the folder.
* ``reserve(folder, stem, suffix)`` creates ``<stem>_<counter:05><suffix>`` (``suffix``: e.g.
  ``"_.mp4"``, ComfyUI's style, or ``".safetensors"``) with ``O_CREAT | O_EXCL``: the name is
  taken atomically, so parallel saves never pick the same name (no check-then-write).
  ``publish(temp, folder, stem, suffix)`` moves a finished temp file to a new name the same way.
"""

from __future__ import annotations

import errno
import os

# Counter width of ComfyUI's output names (``ComfyUI_00001_.png``).
COUNTER_DIGITS = 5
MAX_NAME_CHARS = 4096
MAX_COUNTER = 10**7  # a folder with more files of one stem than this is not a real use


class UnsafePathError(ValueError):
    """A file name that leaves its folder, or an output prefix that names no file."""


def text_problem(value: str, *, name: bool = False) -> str | None:
    """Why ``value`` cannot be used as text (a lone surrogate; in a file ``name`` also a NUL
    character), or ``None``."""
    if name and "\x00" in value:
        return f"it contains a NUL character (at position {value.index(chr(0))})"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        return (f"it contains a lone surrogate {value[err.start]!r} at position {err.start}, which is not valid "
                "Unicode text (a half of an emoji or symbol was cut off)")  # fmt: skip
    return None


def _inside(path: str, root: str, *, allow_root: bool) -> bool:
    """``path`` is ``root`` (when allowed) or below it; both absolute and normalised."""
    if path == root:
        return allow_root
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives (Windows)
        return False


def _clean_relative(name) -> str | None:
    """``name`` as a normalised relative path, or ``None`` when it is not one."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS or text_problem(name, name=True):
        return None
    if os.path.isabs(name) or os.path.splitdrive(name)[0] or name.startswith(("/", "\\")):
        return None
    norm = os.path.normpath(name)
    if norm in (".", "") or norm == ".." or norm.startswith(".." + os.sep):
        return None
    return norm


def confine(root: str | os.PathLike, name, *, follow_links: bool = False) -> str | None:
    """The absolute path of ``name`` inside ``root``, or ``None`` when it would leave ``root``.

    Args:
        root: the folder (absolute or relative to the working directory).
        name: a client-given relative name, e.g. ``"clips/take 1.wav"``.
        follow_links: ``False`` (default): symbolic links are resolved and the real path must
            still lie inside the real ``root``.  ``True``: only the name itself is checked (for
            model folders, where the machine's owner may link files in from a big disk).

    Nothing is opened; whether the file exists is the caller's question.
    """
    rel = _clean_relative(name)
    if rel is None:
        return None
    base = os.path.abspath(os.fspath(root))
    path = os.path.normpath(os.path.join(base, rel))
    if not _inside(path, base, allow_root=False):
        return None
    if not follow_links:
        real_base = os.path.realpath(base)
        if not _inside(os.path.realpath(path), real_base, allow_root=False):
            return None
    return path


def output_stem(root: str | os.PathLike, prefix) -> tuple[str, str]:
    """``(folder, stem)`` of an output ``prefix`` inside ``root``; ``UnsafePathError`` otherwise.

    ``prefix`` may hold sub-folders (``video/LTX-2``); the folder is created by the caller.
    """
    if not isinstance(prefix, str):
        raise UnsafePathError(f"expected text, found {type(prefix).__name__}")
    problem = text_problem(prefix, name=True)
    if problem:
        raise UnsafePathError(problem)
    if os.path.isabs(prefix) or os.path.splitdrive(prefix)[0] or prefix.startswith(("/", "\\")):
        raise UnsafePathError("it is an absolute path, which leaves the output folder; give a name relative to it")
    norm = os.path.normpath(prefix) if prefix.strip() else "."
    if norm == ".":
        raise UnsafePathError("it names the output folder itself, not a file in it")
    if norm == ".." or norm.startswith(".." + os.sep) or len(prefix) > MAX_NAME_CHARS:
        raise UnsafePathError("it leaves the output folder ('..' climbs out of it)")
    rel = norm
    base = os.path.abspath(os.fspath(root))
    path = os.path.normpath(os.path.join(base, rel))
    folder, stem = os.path.split(path)
    if not _inside(folder, base, allow_root=True):
        raise UnsafePathError("it leaves the output folder")
    real_base = os.path.realpath(base)
    if not _inside(os.path.realpath(folder), real_base, allow_root=True):
        raise UnsafePathError("its folder is a link that leads out of the output folder")
    # A link at a final name is never written through: names are taken with O_EXCL / link(),
    # which fail on any existing entry, links included.
    return folder, stem


def numbered(folder: str, stem: str, suffix: str, counter: int) -> str:
    """``<folder>/<stem>_<counter:05><suffix>`` (ComfyUI's output naming with ``suffix="_.ext"``)."""
    return os.path.join(folder, f"{stem}_{counter:0{COUNTER_DIGITS}d}{suffix}")


def first_counter(folder: str, stem: str, suffix: str) -> int:
    """One past the highest counter of ``<stem>_NNNNN<suffix>`` files in ``folder`` (1 when none).

    Only a starting point: ``reserve`` / ``publish`` take the name atomically and move on when
    it is taken meanwhile.
    """
    best = 0
    head, tail = f"{stem}_", suffix
    try:
        names = os.listdir(folder)
    except OSError:
        return 1
    for name in names:
        if name.startswith(head) and name.endswith(tail):
            digits = name[len(head) : len(name) - len(tail)]
            if digits.isdigit():
                best = max(best, int(digits))
    return best + 1


def reserve(folder: str, stem: str, suffix: str, start: int | None = None) -> str:
    """Create an empty ``<stem>_<n:05><suffix>`` with the smallest free ``n >= start``; its path.

    ``O_CREAT | O_EXCL`` makes taking the name atomic: of two savers racing for one name, one
    gets it and the other moves on to the next.  An ``OSError`` other than "exists" (read-only
    folder, disk full) propagates.
    """
    n = max(1, start if start is not None else first_counter(folder, stem, suffix))
    while n < MAX_COUNTER:
        path = numbered(folder, stem, suffix, n)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            n += 1
            continue
        os.close(fd)
        return path
    raise OSError(errno.ENOSPC, f"no free output name for {stem!r} in {folder}")


def publish(temp: str, folder: str, stem: str, suffix: str, start: int | None = None) -> str:
    """Move the finished ``temp`` file to a new ``<stem>_<n:05><suffix>``; the path used.

    A hard link takes the name atomically and never replaces a file; where the file system has
    no hard links, the name is reserved with ``O_EXCL`` and ``temp`` renamed over that (still
    empty) reservation.  ``temp`` is gone afterwards.
    """
    n = max(1, start if start is not None else first_counter(folder, stem, suffix))
    while n < MAX_COUNTER:
        path = numbered(folder, stem, suffix, n)
        try:
            os.link(temp, path)
        except FileExistsError:
            n += 1
            continue
        except OSError:  # no hard links here (some network / FAT file systems)
            path = reserve(folder, stem, suffix, n)
            os.replace(temp, path)
            return path
        os.unlink(temp)
        return path
    raise OSError(errno.ENOSPC, f"no free output name for {stem!r} in {folder}")
