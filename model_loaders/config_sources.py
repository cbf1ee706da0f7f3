"""A component config assembled from a file: shapes from its tensors, the rest from its header.

The published LTX-2 files describe their VAEs, vocoder and upsamplers in the header
(``__metadata__["config"]``), but community repacks drop or trim that config, and even the
official headers leave out values that only the tensor shapes carry.  The config resolvers
(``video_vae_config``, ``audio_config``, ``upsampler_loading``) therefore

* read every value a tensor shape fixes (widths, block lists, kernel sizes, counts) from the
  tensors,
* take what no shape tells (padding modes, sampling rates, upsample strides, residual flags)
  from the header, else from the released LTX-2 / LTX-2.3 files, chosen by the tensors, and
* refuse a header value that contradicts a shape, naming the key, the value and the tensor.

``ResolvedConfig`` is what they return: the config section the ``ltx2`` module takes, plus
where each value came from (for log lines and ``tools/inspect_checkpoint.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .safetensors_file import CheckpointError

try:  # see model_loaders/__init__.py
    from ..ltx2.config import FROM_HEADER, FROM_RELEASED, FROM_SHAPE
except ImportError:
    from ltx2.config import FROM_HEADER, FROM_RELEASED, FROM_SHAPE

# Where a value of a resolved config came from: the transformer's provenance labels (one
# vocabulary for every component, as tools/inspect_checkpoint.py reports them).
SHAPE = FROM_SHAPE  # read off a tensor shape (or the presence of a tensor)
HEADER = FROM_HEADER  # the file's header config
RELEASED = FROM_RELEASED  # the released files' value (the header lacks it; ltx-core's default agrees)


@dataclass
class ResolvedConfig:
    """A config section built for one component of one file.

    Attributes:
        config: the section the ``ltx2`` module is built from (header layout: e.g. the
            ``vae`` section, the ``audio_vae`` section with ``model.params.ddconfig``).
        sources: dotted key -> ``SHAPE`` / ``HEADER`` / ``RELEASED``.
        version: ``"2.0"`` / ``"2.3"`` when the tensors tell the release apart, else ``None``.
        had_header: whether the file's header described this component.
    """

    config: dict
    sources: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    had_header: bool = False

    def from_release(self) -> list[str]:
        """The keys whose value is the released files' (neither the header nor a shape said)."""
        return sorted(k for k, s in self.sources.items() if s == RELEASED)


def listing(keys, n: int = 10, *, quote: bool = True) -> str:
    """The first ``n`` of ``keys`` (sorted) for a message, then how many more: ``'a', 'b', ... (7 more)``."""
    keys = sorted(keys)
    shown = ", ".join(repr(k) if quote else str(k) for k in keys[:n])
    return shown + (f", ... ({len(keys) - n} more)" if len(keys) > n else "")


def shape_text(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def contradiction(path: str, key: str, header_value: Any, tensor: str, shape, meaning: str) -> CheckpointError:
    """The error for a header value that the tensors contradict.

    ``key``: the dotted header key (``config.vae.latent_channels``); ``tensor`` / ``shape``: the
    tensor that shows the real value (``shape`` None: the file lacks that tensor; a string: a
    count such as ``"7 blocks"``); ``meaning``: what that says (``128 latent channels``).
    """
    if shape is None:
        seen = f"the file has no tensor {tensor!r}"
    elif isinstance(shape, (tuple, list)):
        seen = f"the tensor {tensor!r} has shape {shape_text(shape)}"
    else:
        seen = f"the tensors {tensor!r} show {shape}"
    return CheckpointError(
        f"{path}: the header's {key} is {header_value!r}, but {seen} ({meaning}). The header and the weights "
        "disagree (an edited or mixed-up file): use the official file, or a file whose header matches its weights."
    )


def not_derivable(path: str, what: str, why: str) -> CheckpointError:
    """The error for a file without a header config whose tensors do not fix ``what``."""
    return CheckpointError(
        f"{path}: the header has no config for the {what}, and {why}. Use the official file (its header carries "
        "the config), or a file saved together with its header config."
    )


def count_indices(keys, prefix: str) -> int:
    """``n`` when ``prefix0.``, ..., ``prefix{n-1}.`` appear among ``keys`` (0 when none).

    Raises ``ValueError`` when the indices have gaps (a file with blocks cut out).
    """
    found = set()
    for k in keys:
        if k.startswith(prefix):
            head = k[len(prefix) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    if found and found != set(range(len(found))):
        missing = sorted(set(range(max(found) + 1)) - found)
        raise ValueError(f"'{prefix}N.*' blocks {missing} are missing (found {sorted(found)})")
    return len(found)


__all__ = [
    "HEADER",
    "RELEASED",
    "SHAPE",
    "ResolvedConfig",
    "contradiction",
    "count_indices",
    "listing",
    "not_derivable",
    "shape_text",
]
