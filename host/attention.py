"""Which attention kernel an LTX-2 call runs: the user's choice in ComfyUI, or the pack's.

The transformer (``ltx2/``) takes a kernel ``fn(q, k, v, mask) -> (B, T, H*d)`` per call
(``ltx2.attention_backends``).  This module picks it from what the host knows:

1. ``transformer_options["openltx_attention"]`` (the LTX-2 Attention node) or the environment
   variable ``OPENLTX_ATTENTION``: ``auto`` (default), ``comfy``, or a pack backend
   (``sdpa``, ``sdpa_cudnn``, ``sdpa_flash``, ``sdpa_efficient``, ``sdpa_math``, ``sage``).
2. ``auto``: ComfyUI's ``optimized_attention`` when the user chose a kernel there —
   ``--use-sage-attention`` / ``--use-flash-attention`` / xformers, or a node that replaced
   the function — and the pack's own ``auto`` (SDPA, kernel by mask and GPU) when ComfyUI
   runs one of its generic defaults (pytorch / split / sub-quadratic / basic).  The function
   is looked up at every call, so a patch made after the pack loaded is honoured.
3. ``transformer_options["optimized_attention_override"]`` (ComfyUI's hook, present in 0.3.75
   and current ComfyUI; what "patch attention" nodes set on a MODEL clone) wraps whichever
   kernel was chosen: it is called as core calls it, ``override(func, q, k, v, heads,
   mask=..., skip_reshape=True, skip_output_reshape=False, transformer_options=...,
   _inside_attn_wrapper=True)``, ``func`` being the chosen kernel in ComfyUI's signature.

Layouts: the transformer hands over ``q/k/v`` as ``(B, H, T, d)``, which is ComfyUI's
``skip_reshape=True`` layout; ComfyUI's functions then return ``(B, T, H*d)``.  Masks are
additive biases ``(B, 1, 1, S)`` (padded text) or ``(B, 1, T, T)`` (attention strength);
every ComfyUI kernel broadcasts 4-D masks over heads.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, Mapping

import torch

from ..ltx2 import attention_backends as AB

OPTION_KEY = "openltx_attention"
OVERRIDE_KEY = "optimized_attention_override"
ENV_VAR = "OPENLTX_ATTENTION"
CHOICES = ("auto", "comfy", *(name for name in AB.BACKENDS if name != "auto"))
# ComfyUI's defaults when the user asked for nothing in particular.
_GENERIC = ("attention_pytorch", "attention_basic", "attention_sub_quad", "attention_split")


def _comfy_attention_module():
    import comfy.ldm.modules.attention as module

    return module


def host_kernel():
    """ComfyUI's current ``optimized_attention`` (looked up now: nodes may have replaced it)."""
    return getattr(_comfy_attention_module(), "optimized_attention", None)


def host_selected(fn) -> bool:
    """True when ``fn`` is a kernel the user picked (sage, flash, xformers, a node's patch)."""
    if fn is None:
        return False
    module = _comfy_attention_module()
    return all(fn is not getattr(module, name, None) for name in _GENERIC)


def _takes(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _to_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """``(B, T, H*d)`` → ``(B, H, T, d)``."""
    b, n, inner = t.shape
    return t.view(b, n, heads, inner // heads).transpose(1, 2)


def _mask_4d(mask: torch.Tensor | None) -> torch.Tensor | None:
    """ComfyUI's mask conventions (2-D ``(T, S)``, 3-D ``(B, T, S)``) → broadcastable 4-D."""
    if mask is None or mask.ndim == 4:
        return mask
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    return mask.unsqueeze(1)


def comfy_signature(kernel):
    """A pack kernel as a ComfyUI attention function (what an override receives as ``func``)."""

    def attention(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False, skip_output_reshape=False,
                  **kwargs):
        if not skip_reshape:
            q, k, v = (_to_heads(t, heads) for t in (q, k, v))
        if mask is not None and mask.dtype == torch.bool:  # ComfyUI passes bool masks as "keep"
            mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, torch.finfo(q.dtype).min)
        out = kernel(q, k, v, _mask_4d(mask))  # (B, T, H*d)
        if skip_output_reshape:
            out = _to_heads(out, heads)
        return out

    attention.openltx_kernel = kernel
    return attention


class ComfyKernel:
    """A ComfyUI attention function (``optimized_attention`` & co.) in the pack's convention."""

    traceable = False

    def __init__(self, fn, transformer_options: Mapping[str, Any] | None = None) -> None:
        self.fn = fn
        self.options = transformer_options
        self._pass_options = transformer_options is not None and _takes(fn, "transformer_options")

    def __call__(self, q, k, v, mask):
        kwargs = {"mask": mask, "skip_reshape": True}
        if self._pass_options:
            kwargs["transformer_options"] = self.options
        return self.fn(q, k, v, q.shape[1], **kwargs)

    def __repr__(self) -> str:
        return f"<attention comfy:{getattr(self.fn, '__name__', self.fn)}>"


class OverriddenKernel:
    """ComfyUI's ``optimized_attention_override`` around the chosen kernel."""

    traceable = False

    def __init__(self, override, func, transformer_options: Mapping[str, Any]) -> None:
        self.override, self.func, self.options = override, func, transformer_options

    def __call__(self, q, k, v, mask):
        out = self.override(
            self.func, q, k, v, q.shape[1], mask=mask, skip_reshape=True, skip_output_reshape=False,
            transformer_options=self.options, _inside_attn_wrapper=True,
        )
        if out.ndim == 4:  # an override that ignored skip_output_reshape=False
            out = out.transpose(1, 2).flatten(2)
        return out

    def __repr__(self) -> str:
        return f"<attention override {getattr(self.override, '__name__', self.override)}>"


def requested(transformer_options: Mapping[str, Any] | None) -> str:
    """The attention choice of this call (node option, else environment, else ``auto``)."""
    value = (transformer_options or {}).get(OPTION_KEY) or os.environ.get(ENV_VAR, "").strip() or "auto"
    if value not in CHOICES:
        source = OPTION_KEY if (transformer_options or {}).get(OPTION_KEY) else ENV_VAR
        raise ValueError(f"{source}={value!r} is not an attention backend; choose one of {', '.join(CHOICES)}")
    return value


def kernel_for(transformer_options: Mapping[str, Any] | None):
    """The attention kernel for one LTX-2 call (see the module docstring)."""
    options = transformer_options or {}
    choice = requested(options)
    fn = host_kernel()
    if choice == "comfy" or (choice == "auto" and host_selected(fn)):
        if fn is None:
            raise RuntimeError("attention 'comfy': this ComfyUI has no comfy.ldm.modules.attention.optimized_attention")
        kernel, func = ComfyKernel(fn, options), fn
    else:
        kernel = AB.get(choice)
        func = comfy_signature(kernel)
    override = options.get(OVERRIDE_KEY)
    if override is not None:
        return OverriddenKernel(override, func, options)
    return kernel
