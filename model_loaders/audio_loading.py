"""Files -> the audio VAE and the vocoder, loaded strictly.

Sources understood:

* the single-file bundle (a path or the ``CheckpointInfo`` of ``read_checkpoint``): keys
  ``audio_vae.{encoder,decoder,per_channel_statistics}.*`` and ``vocoder.*``, config in the
  header's ``audio_vae`` / ``vocoder`` sections;
* a standalone file whose header ``config`` holds either those sections or the section itself,
  with the keys with or without their ``audio_vae.`` / ``vocoder.`` prefix.

The module is built on the meta device, its keys and shapes are checked against the file
before any tensor data is read (missing / unexpected keys and shape mismatches are listed), and
the weights are put in place with ``load_state_dict(strict=True, assign=True)``.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from .checkpoint import CheckpointInfo, assign_weights, check_layout
from .safetensors_file import TORCH_DTYPES, CheckpointError, load_tensors, parse_config, read_header

try:  # see model_loaders/__init__.py
    from ..ltx2.audio_vae import AudioVAE
    from ..ltx2.vocoder import build_vocoder, is_bwe_vocoder
except ImportError:
    from ltx2.audio_vae import AudioVAE
    from ltx2.vocoder import build_vocoder, is_bwe_vocoder

_AUDIO_VAE_ROOTS = ("encoder.", "decoder.", "per_channel_statistics.")
# prefixes of the bundle's other components: never part of a bare vocoder
_OTHER_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "text_embedding_projection.", "vae.", "audio_vae.")


@dataclass
class _Source:
    path: str
    config: dict
    shapes: dict[str, tuple[int, ...]]
    dtypes: dict[str, str]


def _source(path_or_info) -> _Source:
    if isinstance(path_or_info, CheckpointInfo):
        i = path_or_info
        return _Source(i.path, i.config, dict(i.shapes), dict(i.dtypes))
    header = read_header(path_or_info)
    config = parse_config(header) or {}
    shapes = {k: e.shape for k, e in header.tensors.items()}
    return _Source(os.fspath(path_or_info), config, shapes, {k: e.dtype for k, e in header.tensors.items()})


def _section(src: _Source, name: str, looks_like: Callable[[Mapping[str, Any]], bool]) -> dict:
    # a standalone file whose config *is* the section (checked first: a 2.3 vocoder section
    # itself holds a "vocoder" key)
    if src.config and looks_like(src.config):
        return src.config
    section = src.config.get(name)
    if isinstance(section, dict):
        return section
    found = sorted(src.config) if src.config else "no config at all"
    raise CheckpointError(
        f"{src.path}: expected the {name} config in the safetensors header (__metadata__['config'] with a "
        f"'{name}' section, or that section itself), found {found}. It fixes the model's shapes and is never "
        "guessed: use the official LTX-2 file (or a standalone file saved with its header config)."
    )


def _file_dtype(src: _Source, keys) -> torch.dtype:
    count: Counter = Counter()
    for k in keys:
        count[src.dtypes[k]] += math.prod(src.shapes[k])
    for name, _ in count.most_common():
        if name in ("F32", "F16", "BF16", "F64"):
            return TORCH_DTYPES[name]
    return torch.bfloat16


def _best_mapping(candidates: list[dict[str, str]], expected) -> dict[str, str]:
    """The module-key -> file-key mapping that covers the most expected keys (first wins ties)."""
    return max(candidates, key=lambda m: len(expected.keys() & m.keys()))


def _load(src: _Source, model: nn.Module, what: str, mapping: dict[str, str], dtype, device) -> nn.Module:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: src.shapes[f] for k, f in mapping.items()}
    prefix = ""
    sample = next(iter(mapping.items()), None)
    if sample is not None and sample[1] != sample[0]:
        prefix = sample[1][: len(sample[1]) - len(sample[0])]
    check_layout(src.path, what, expected, found, prefix)
    to_module = {f: k for k, f in mapping.items()}
    sd = load_tensors(src.path, list(mapping.values()), device=device, dtype=dtype, rename=to_module.__getitem__)
    assign_weights(model, sd, src.path, what)
    return model.to(device).eval()  # moves the buffers the file does not hold (the BWE resampler)


def _build(src: _Source, what: str, factory: Callable[..., nn.Module], file_keys, dtype, operations) -> nn.Module:
    if not file_keys:
        raise CheckpointError(
            f"{src.path}: expected {what} weights in this file, found none (first keys: {sorted(src.shapes)[:5]}). "
            "Pick the LTX-2 single-file checkpoint or a standalone file of this component."
        )
    model_dtype = dtype or _file_dtype(src, file_keys)
    try:
        model = factory(operations=operations, dtype=model_dtype, device=torch.device("meta"))
    except ValueError as err:  # config problems: name the file
        raise CheckpointError(f"{src.path}: {err}") from None
    model.dtype = model_dtype
    return model


def load_audio_vae(
    path_or_info, dtype: torch.dtype | None = None, device: torch.device | str = "cpu", operations=None
) -> AudioVAE:
    """``ltx2.audio_vae.AudioVAE`` with the file's weights (eval mode; ``dtype=None`` keeps the file's)."""
    src = _source(path_or_info)
    section = _section(src, "audio_vae", lambda c: "model" in c and "transformer" not in c)
    prefixed = {k[len("audio_vae.") :]: k for k in src.shapes if k.startswith("audio_vae.")}
    bare = {k: k for k in src.shapes if k.startswith(_AUDIO_VAE_ROOTS)}
    model = _build(
        src, "audio VAE", lambda **kw: AudioVAE(section, **kw), list((prefixed or bare).values()), dtype, operations
    )
    expected = model.state_dict()
    mapping = _best_mapping([prefixed, bare], expected)
    return _load(src, model, "audio VAE", mapping, dtype, device)


def _looks_like_vocoder(config: Mapping[str, Any]) -> bool:
    return "transformer" not in config and any(k in config for k in ("bwe", "resblock", "upsample_rates"))


def load_vocoder(
    path_or_info, dtype: torch.dtype | None = None, device: torch.device | str = "cpu", operations=None
) -> nn.Module:
    """The 2.0 HiFi-GAN or the 2.3 BigVGAN-v2 + BWE vocoder (``ltx2.vocoder.build_vocoder``), weights loaded."""
    src = _source(path_or_info)
    section = _section(src, "vocoder", _looks_like_vocoder)
    # a bundle strips exactly one "vocoder." (2.3's "vocoder.vocoder.conv_pre" -> "vocoder.conv_pre");
    # a bare standalone 2.3 file already starts at "vocoder.conv_pre" / "bwe_generator." / "mel_stft."
    prefixed = {k[len("vocoder.") :]: k for k in src.shapes if k.startswith("vocoder.")}
    bare = {k: k for k in src.shapes if not k.startswith(_OTHER_PREFIXES + _AUDIO_VAE_ROOTS)}
    kind = "2.3 BigVGAN-v2 + BWE vocoder" if is_bwe_vocoder(section) else "2.0 HiFi-GAN vocoder"
    model = _build(
        src, kind, lambda **kw: build_vocoder(section, **kw), list((prefixed or bare).values()), dtype, operations
    )
    mapping = _best_mapping([prefixed, bare], model.state_dict())
    return _load(src, model, kind, mapping, dtype, device)


__all__ = ["load_audio_vae", "load_vocoder"]
