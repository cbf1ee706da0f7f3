"""Files -> modules: safetensors headers, key routing, strict loading with clear errors.

Modules:
  safetensors_file  header parsing with diagnostics, lazy tensor reads, ``CheckpointError``
  file_header       the header of any model file (safetensors or GGUF) in one shape, the
                    weights' dtype; what every loader starts from
  checkpoint        ``read_checkpoint`` (safetensors or GGUF) / ``transformer_config`` /
                    ``build_transformer``; ``tensor_version``, ``read_tensors``
  transformer_config  the transformer's config: shapes from tensors, numerics from the header
                    (or the released values), with the provenance of each value
  layouts           official key layouts per component (header config -> {key: shape})
  published_configs the published files' header configs, verbatim (the released values
                    every loader falls back to are read from here or ``ltx2.config``)
  published_files   the published files: repository, model folder and the parts each holds
                    (what the loaders' "missing part" messages and tools/model_catalog.py name)
  tiny_layouts      tiny official-layout checkpoints (and GGUFs) for tests and tools

File reading here never imports ComfyUI, so tools and tests use these modules without a host.
What runs inside ComfyUI (the MODEL wrapper, LoRA patching, offload, the text-encoder runtime)
lives in ``host/``.

Import pattern.  This package is imported two ways: as ``<pack>.model_loaders`` when ComfyUI
loads the pack (under whatever alias the folder gets, e.g. ``openltx``), and as top-level
``model_loaders`` when ``tools/*.py`` or tests put the repository root on ``sys.path``.
Imports inside the package are relative (``from .checkpoint import ...``).  A module that
needs the sibling package ``ltx2`` tries the package-relative form first and falls back to the
top-level one::

    try:
        from ..ltx2.config import TransformerConfig   # <pack>.model_loaders
    except ImportError:
        from ltx2.config import TransformerConfig     # top-level model_loaders

(``from ..ltx2`` raises ImportError "beyond top-level package" in the second case.)  Both
forms resolve to the same ``ltx2`` the importer sees, so its classes and exceptions are never
duplicated within one import style.
"""

from .checkpoint import (
    COMPONENT_NAMES,
    SUPPORTED_VERSIONS,
    CheckpointInfo,
    build_transformer,
    load_transformer_state_dict,
    read_checkpoint,
    read_tensors,
    released_header_values,
    tensor_version,
    transformer_config,
)
from .safetensors_file import CheckpointError

__all__ = [
    "COMPONENT_NAMES",
    "SUPPORTED_VERSIONS",
    "CheckpointError",
    "CheckpointInfo",
    "build_transformer",
    "load_transformer_state_dict",
    "read_checkpoint",
    "read_tensors",
    "released_header_values",
    "tensor_version",
    "transformer_config",
]
