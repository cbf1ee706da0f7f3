"""Per-call speed options of an LTX-2 MODEL: attention kernel, block compilation, quant matmuls.

The options travel in ``model_options["transformer_options"]`` of a MODEL clone (set by the
nodes in ``nodes/speed.py``), so two branches of a graph can run the same weights with
different settings, and every call reads them afresh:

``openltx_attention``  see ``host/attention.py`` (also ``OPENLTX_ATTENTION``).
``openltx_compile``    an ``ltx2.transformer.CompileOptions``: regional ``torch.compile`` of
                       the transformer block.  ``OPENLTX_COMPILE=1`` turns it on for every
                       LTX-2 MODEL without the node (``OPENLTX_COMPILE_MODE`` sets the mode).
``openltx_quant``      a ``model_loaders.quant.matmul.MatmulSettings``: quantized matmul
                       kernels on / off, GGUF dequantized-weight cache budget.

``call_options(transformer_options)`` is a context manager yielding the keyword arguments of
``LTXAVTransformer.forward`` (``attention``, ``compile``) with the quant settings active.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Mapping

from ..ltx2.transformer import CompileOptions
from ..model_loaders.quant import matmul as qmm
from . import attention as host_attention

COMPILE_KEY = "openltx_compile"
QUANT_KEY = "openltx_quant"
COMPILE_ENV = "OPENLTX_COMPILE"
COMPILE_MODE_ENV = "OPENLTX_COMPILE_MODE"


def compile_options(transformer_options: Mapping[str, Any] | None) -> CompileOptions | None:
    """The call's ``CompileOptions`` (node option, else ``OPENLTX_COMPILE=1``), or ``None``."""
    value = (transformer_options or {}).get(COMPILE_KEY)
    if value is not None:
        if value is False:
            return None
        if not isinstance(value, CompileOptions):
            raise TypeError(f"transformer_options[{COMPILE_KEY!r}] must be an ltx2.transformer.CompileOptions")
        return value
    if os.environ.get(COMPILE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        mode = os.environ.get(COMPILE_MODE_ENV, "").strip() or None
        return CompileOptions(mode=mode)
    return None


@contextlib.contextmanager
def call_options(transformer_options: Mapping[str, Any] | None):
    """Yields ``{"attention": kernel, "compile": CompileOptions | None}`` for one forward."""
    options = transformer_options or {}
    settings = options.get(QUANT_KEY)
    if settings is not None and not isinstance(settings, qmm.MatmulSettings):
        raise TypeError(f"transformer_options[{QUANT_KEY!r}] must be a model_loaders.quant.matmul.MatmulSettings")
    with qmm.active(settings):
        yield {"attention": host_attention.kernel_for(options), "compile": compile_options(options)}
