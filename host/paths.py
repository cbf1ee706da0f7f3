"""Every file a node reads or writes, looked up in ComfyUI's folders and kept inside them.

The pure path logic is ``model_loaders/safe_paths.py``; this module adds where the folders are
(``folder_paths``: input, output, temp and the model folders, ``extra_model_paths.yaml``
included) and the texts the nodes show.  One rule for every file input of the pack:

* input files (``LTX-2 Load Audio``, ``LTX-2 Load Conditioning``, ...): a name relative to
  ComfyUI's input folder (``name [output]`` / ``name [temp]`` pick those folders, as in core);
  links are resolved and must stay inside the folder;
* model files: a name of the folder's listing, relative to one of its folders; a link the
  machine's owner put *into* a model folder is followed (model files often live on another
  disk), a name that climbs out is not;
* output files: a prefix inside the output folder that names a file (``output_prefix_error``),
  a folder that can be written (``writable_folder``) and a name taken atomically
  (``safe_paths.reserve`` / ``publish``).

A refused input name always gets the same text, whether or not something exists at the path
it points to, so an answer never tells a client what exists on the machine.  ``file_digest``
hashes only files that pass the same checks (``fingerprint_inputs``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time

import folder_paths

from ..model_loaders.safe_paths import UnsafePathError, confine, output_stem, text_problem

ANNOTATIONS = {"[input]": "input", "[output]": "output", "[temp]": "temp"}
_DIGEST_BLOCK = 1 << 20


def _folder(kind: str) -> str:
    return {"input": folder_paths.get_input_directory, "output": folder_paths.get_output_directory,
            "temp": folder_paths.get_temp_directory}[kind]()  # fmt: skip


def split_annotation(name: str) -> tuple[str, str]:
    """``("clip.wav", "output")`` for ``"clip.wav [output]"``; the folder kind defaults to input."""
    for tag, kind in ANNOTATIONS.items():
        if name.endswith(tag):
            return name[: -len(tag)].rstrip(), kind
    return name, "input"


def input_file(name, extensions: tuple[str, ...] | None = None) -> str | None:
    """The absolute path of the input file ``name``, or ``None`` when it is not a file inside
    ComfyUI's input folder (or the ``[output]`` / ``[temp]`` folder it is annotated with), has
    another extension, or leaves that folder (links resolved)."""
    if not isinstance(name, str):
        return None
    rel, kind = split_annotation(name)
    path = confine(_folder(kind), rel)
    if path is None or not os.path.isfile(path):
        return None
    if extensions and not path.lower().endswith(tuple(e.lower() for e in extensions)):
        return None
    return os.path.realpath(path)


def input_file_error(input_name: str, value, extensions: tuple[str, ...] | None = None) -> str | None:
    """The validation message for an input-folder file input, or ``None`` when it is usable."""
    if input_file(value, extensions) is not None:
        return None
    kinds = f" ({', '.join(extensions)})" if extensions else ""
    return (
        f"{input_name}: no file {shown(value)}{kinds} in ComfyUI's input folder. Pick one of the listed files, or "
        "upload the file (names are relative to the input folder; absolute paths, '..' and links that lead out of "
        "the folder are not accepted)."
    )


def require_input_file(node: str, input_name: str, value, extensions: tuple[str, ...] | None = None) -> str:
    """``input_file`` or a ``ValueError`` with ``input_file_error``'s text (for ``execute``)."""
    path = input_file(value, extensions)
    if path is None:
        raise ValueError(f"{node}: {input_file_error(input_name, value, extensions)}")
    return path


def model_file(folders: str | tuple[str, ...], name) -> str | None:
    """The first file ``name`` in the model folder kind(s) ``folders`` (every registered path of
    each, ``extra_model_paths.yaml`` included), or ``None``.  ``name`` must stay inside the folder
    it is found in; a link inside a model folder is followed."""
    for kind in (folders,) if isinstance(folders, str) else folders:
        try:
            roots = folder_paths.get_folder_paths(kind)
        except KeyError:
            continue
        for root in roots:
            path = confine(root, name, follow_links=True)
            if path is not None and os.path.isfile(path):
                return path
    return None


def model_dir(folders: str | tuple[str, ...], name) -> str | None:
    """Like ``model_file`` for a folder (a Hugging Face model folder such as Gemma's)."""
    for kind in (folders,) if isinstance(folders, str) else folders:
        try:
            roots = folder_paths.get_folder_paths(kind)
        except KeyError:
            continue
        for root in roots:
            path = confine(root, name.rstrip("/") if isinstance(name, str) else name, follow_links=True)
            if path is not None and os.path.isdir(path):
                return path
    return None


def file_digest(path: str | None) -> str:
    """SHA-256 of a file the checks above let through ("" for ``None``): a fingerprint that
    changes when the file does, so ComfyUI reruns the node."""
    if path is None:
        return ""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_DIGEST_BLOCK), b""):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


# ------------------------------------------------------------------------------ outputs
def output_prefix_error(input_name: str, prefix) -> str | None:
    """The validation message for an output filename prefix, or ``None`` when it is usable."""
    try:
        output_stem(folder_paths.get_output_directory(), prefix)
    except UnsafePathError as err:
        return f"{input_name}: {shown(prefix)} cannot be used: {err}. Use a name such as 'video/LTX-2'."
    return None


def expand_fields(prefix: str, width: int = 0, height: int = 0) -> str:
    """ComfyUI's filename fields: ``%width%``, ``%height%``, ``%year%`` ... ``%second%``."""
    if "%" not in prefix:
        return prefix
    now = time.localtime()
    fields = {"width": width, "height": height, "year": now.tm_year, "month": f"{now.tm_mon:02d}",
              "day": f"{now.tm_mday:02d}", "hour": f"{now.tm_hour:02d}", "minute": f"{now.tm_min:02d}",
              "second": f"{now.tm_sec:02d}"}  # fmt: skip
    for key, value in fields.items():
        prefix = prefix.replace(f"%{key}%", str(value))
    return prefix


def output_target(node: str, input_name: str, prefix, width: int = 0, height: int = 0) -> tuple[str, str, str]:
    """``(folder, stem, subfolder)`` of an output prefix, the folder created and writable.

    Raises ``ValueError`` naming the node and input for a prefix that leaves the output folder
    or names no file, and for a folder that cannot be written (which folder, and what to do).
    """
    out = folder_paths.get_output_directory()
    try:
        folder, stem = output_stem(out, expand_fields(prefix, width, height) if isinstance(prefix, str) else prefix)
    except UnsafePathError as err:
        raise ValueError(f"{node}: {input_name}: {shown(prefix)} cannot be used: {err}. Use a name such as "
                         "'video/LTX-2'.") from None  # fmt: skip
    writable_folder(node, folder)
    sub = os.path.relpath(folder, os.path.abspath(out))
    return folder, stem, "" if sub == "." else sub.replace(os.sep, "/")


def writable_folder(node: str, folder: str) -> None:
    """Create ``folder`` and check a file can be made in it, or raise a ``ValueError`` naming it."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".openltx-write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(
            f"{node}: cannot write into the output folder {folder!r} ({err.strerror or err}). Make that folder "
            "writable, or set filename_prefix to a sub-folder that is (start ComfyUI with --output-directory to "
            "move the output folder)."
        ) from None


def text_error(input_name: str, value) -> str | None:
    """The validation message for a text input that is not valid Unicode, or ``None``."""
    if not isinstance(value, str):
        return None
    problem = text_problem(value)
    return f"{input_name}: {problem}. Remove the character or type the text again." if problem else None


def shown(value) -> str:
    """``repr`` of a client-given value, cut short (messages stay small)."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "...'"
