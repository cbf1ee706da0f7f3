"""Checks every node of the pack gets at validation, before anything runs (HTTP 400 from /prompt).

ComfyUI checks a number against its input's ``min`` / ``max``, but ``NaN`` passes both
comparisons (JSON bodies may carry ``NaN`` / ``Infinity``, which Python's parser accepts), and
inputs a node names in its own ``validate_inputs`` get no range check at all.  A NaN guidance
scale then runs the whole graph and fails at the very end ("avcodec_send_frame() returned
22").  Text may hold a lone surrogate (``"\\ud800"`` is valid JSON), which breaks the tokenizer,
the prompt cache and file names with a raw codec error.

``guard(node_cls)`` gives a node class a ``validate_inputs`` that refuses, for every literal
value (a linked input's value is not known at validation; ComfyUI passes ``None``):

* a float input that is not finite, or outside the input's declared ``min`` / ``max``;
* a text input that is not valid Unicode (a lone surrogate);

and then calls the node's own ``validate_inputs``, if it has one, with the inputs it names.
``nodes/__init__.py`` applies it to every node it registers, so a node added later is covered
without doing anything.  The wrapper's signature names the inputs it checks, because ComfyUI
passes a ``validate_inputs`` only the inputs its signature names (and skips its own range
check for exactly those, which is why the range is checked here again).
"""

from __future__ import annotations

import inspect
import math

from comfy_api.v0_0_2 import io

from ..host.paths import text_error

_GUARDED = "_openltx_guarded"


def float_error(name: str, value, low=None, high=None) -> str | None:
    """The message for a float input that is not finite or out of ``[low, high]``, else ``None``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return f"{name}: expected a number, found {value!r}"
    if not math.isfinite(x):
        return f"{name}: {value!r} is not a finite number; enter a value between {low} and {high}"
    if low is not None and x < low:
        return f"{name}: {x:g} is below the minimum {low:g}"
    if high is not None and x > high:
        return f"{name}: {x:g} is above the maximum {high:g}"
    return None


def _checked_inputs(node_cls) -> tuple[dict[str, tuple], list[str]]:
    """``({float input: (min, max)}, [text inputs])`` of a node's schema."""
    floats: dict[str, tuple] = {}
    texts: list[str] = []
    for inp in node_cls.define_schema().inputs:
        kind = inp.get_io_type() if hasattr(inp, "get_io_type") else None
        if kind == "FLOAT":
            floats[inp.id] = (getattr(inp, "min", None), getattr(inp, "max", None))
        elif kind == "STRING":
            texts.append(inp.id)
    return floats, texts


def input_errors(floats: dict[str, tuple], texts: list[str], values: dict) -> list[str]:
    """Messages for the literal ``values`` that the checks above refuse."""
    errors = []
    for name, (low, high) in floats.items():
        if (message := float_error(name, values.get(name), low, high)) is not None:
            errors.append(message)
    for name in texts:
        if (message := text_error(name, values.get(name))) is not None:
            errors.append(message)
    return errors


def guard(node_cls):
    """Give ``node_cls`` the checks above in its ``validate_inputs`` (in place; returns it)."""
    if node_cls.__dict__.get(_GUARDED):
        return node_cls
    floats, texts = _checked_inputs(node_cls)
    if not floats and not texts:
        return node_cls
    own = getattr(node_cls, "validate_inputs", None)
    own_func = getattr(own, "__func__", None)
    base_func = getattr(io.ComfyNode.validate_inputs, "__func__", None)
    if own_func is base_func:
        own_func = None
    own_params: dict[str, inspect.Parameter] = {}
    own_varkw = False
    if own_func is not None:
        for i, (name, p) in enumerate(inspect.signature(own_func).parameters.items()):
            if i == 0:
                continue  # cls
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                own_varkw = True
            elif p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
                own_params[name] = p

    def validate_inputs(cls, *args, **values):
        values.update(zip(names, args))  # positional calls (tests, other nodes) in signature order
        errors = input_errors(floats, texts, values)
        if errors:
            return "; ".join(errors)
        if own_func is None:
            return True
        passed = values if own_varkw else {k: v for k, v in values.items() if k in own_params}
        return own_func(cls, **passed)

    names = list(own_params) + [n for n in (*floats, *texts) if n not in own_params]
    params = [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for n in names]
    if own_varkw:
        params.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    validate_inputs.__signature__ = inspect.Signature(params)
    validate_inputs.__doc__ = (own_func.__doc__ if own_func is not None else None) or guard.__doc__
    validate_inputs.__qualname__ = f"{node_cls.__qualname__}.validate_inputs"
    node_cls.validate_inputs = classmethod(validate_inputs)
    setattr(node_cls, _GUARDED, True)
    return node_cls
