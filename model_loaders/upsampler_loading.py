"""Latent-upsampler files -> ``ltx2.upsampler.LatentUpsampler``; tiny upsampler files for tests.

An official upsampler file (``ltx-2-spatial-upscaler-x2-1.0.safetensors``,
``ltx-2-temporal-upscaler-x2-1.0.safetensors``, the LTX-2.3 x1.5 / x2 files) holds the bare
module keys (``initial_conv.weight``, ``res_blocks.0.conv1.weight``, ``upsampler.0.weight``,
...) and a *flat* config in ``__metadata__["config"]``::

    {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 1024,
     "num_blocks_per_stage": 4, "dims": 3, "spatial_upsample": true, "temporal_upsample": false,
     "spatial_scale": 2.0, "rational_resampler": false}

``load_upsampler`` checks every key and shape of the file against the network that config
describes before reading any tensor data, then loads strictly.  The one tolerated difference
is the rational resampler's fixed blur filter (``upsampler.blur_down.kernel``): a file saved
without it gets the filter computed here.
"""

from __future__ import annotations

import json
import os
import zlib

import torch

from .checkpoint import assign_weights
from .safetensors_file import CheckpointError, load_tensors, parse_config, read_header

try:  # see model_loaders/__init__.py
    from ..ltx2.upsampler import CLASS_NAME, LatentUpsampler, UpsamplerConfig, UpsamplerConfigError, binomial_kernel
except ImportError:
    from ltx2.upsampler import CLASS_NAME, LatentUpsampler, UpsamplerConfig, UpsamplerConfigError, binomial_kernel

BLUR_KEY = "upsampler.blur_down.kernel"
_SHOW = 10


def _listing(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:_SHOW]) + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def read_upsampler_config(path: str | os.PathLike) -> tuple[UpsamplerConfig, dict]:
    """(validated config, the header's tensor entries) of an upsampler file; no data read."""
    header = read_header(path)
    name = os.fspath(path)
    config = parse_config(header)
    if config is None:
        hint = ""
        if any(k.startswith(("model.diffusion_model.", "vae.", "audio_vae.")) for k in header.tensors):
            hint = " It looks like an LTX-2 model checkpoint: pick it in the checkpoint / VAE loader instead."
        raise CheckpointError(
            f"{name}: no __metadata__['config'] in the header; an LTX-2 latent upsampler file carries its "
            f"network config there ({{\"_class_name\": \"{CLASS_NAME}\", ...}}).{hint}"
        )
    if config.get("_class_name") != CLASS_NAME:
        found = config.get("_class_name")
        what = (
            "an LTX-2 model bundle (transformer/VAE config)"
            if any(k in config for k in ("transformer", "vae", "audio_vae"))
            else f"_class_name {found!r}"
        )
        raise CheckpointError(
            f"{name}: expected an LTX-2 latent upsampler (_class_name {CLASS_NAME!r} in the header config), "
            f"found {what}. Put the LTX-2 spatial/temporal upscaler .safetensors files in models/latent_upscale_models."
        )
    try:
        cfg = UpsamplerConfig.from_header(config, source=name)
    except UpsamplerConfigError as err:
        raise CheckpointError(str(err)) from None
    return cfg, header.tensors


def load_upsampler(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
    operations=None,
) -> LatentUpsampler:
    """Build the upsampler a file describes and load its weights strictly.

    Args:
        dtype: weight dtype (default: the file's floating dtype).
        operations: layer namespace (``comfy.ops`` class in the host, plain torch otherwise).
    Raises:
        CheckpointError: not a safetensors file, no / wrong config, or keys and shapes that do
            not match the config (the message lists the missing / unexpected / mis-shaped keys).
    """
    name = os.fspath(path)
    cfg, entries = read_upsampler_config(path)
    if dtype is None:
        floats = [e.dtype for e in entries.values() if e.dtype in ("F32", "F16", "BF16")]
        names = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
        dtype = names[floats[0]] if floats else torch.float32
    with torch.device("meta"):
        module = LatentUpsampler(cfg, operations=operations, dtype=dtype)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    found = {k: tuple(e.shape) for k, e in entries.items()}
    missing = set(expected) - set(found) - {BLUR_KEY}
    unexpected = set(found) - set(expected)
    common = sorted(set(found) & set(expected))
    mismatched = [f"{k}: file {found[k]}, config {expected[k]}" for k in common if found[k] != expected[k]]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): {', '.join(mismatched[:_SHOW])}")
        raise CheckpointError(
            f"{name}: the weights do not match the upsampler its header config describes "
            f"({cfg.kind}, in {cfg.in_channels}, mid {cfg.mid_channels}, {cfg.num_blocks_per_stage} blocks/stage); "
            + "; ".join(parts)
        )
    sd = load_tensors(path, list(found), device=device, dtype=dtype)
    if BLUR_KEY in expected and BLUR_KEY not in sd:
        sd[BLUR_KEY] = binomial_kernel().to(device)
    if BLUR_KEY in sd:
        sd[BLUR_KEY] = sd[BLUR_KEY].float()  # a fixed filter: kept in float32 whatever the weights
    assign_weights(module, sd, path, "latent upscaler")
    module.requires_grad_(False)
    module.dtype = dtype
    return module.eval()


# ------------------------------------------------------------------------------ tiny files
def tiny_upsampler_config(
    kind: str = "spatial", *, in_channels: int = 128, mid_channels: int = 32, blocks: int = 1
) -> dict:
    """A flat header config of a small upsampler: ``kind`` is ``spatial`` (x2), ``spatial_x1.5``
    (rational), ``temporal`` (x2), ``spatiotemporal`` or ``spatial_2d`` (dims 2)."""
    base = {"_class_name": CLASS_NAME, "in_channels": in_channels, "mid_channels": mid_channels,
            "num_blocks_per_stage": blocks, "dims": 3, "spatial_upsample": True, "temporal_upsample": False,
            "spatial_scale": 2.0, "rational_resampler": False}  # fmt: skip
    variants = {
        "spatial": {},
        "spatial_x1.5": {"spatial_scale": 1.5, "rational_resampler": True},
        "temporal": {"spatial_upsample": False, "temporal_upsample": True},
        "spatiotemporal": {"temporal_upsample": True},
        "spatial_2d": {"dims": 2},
    }
    if kind not in variants:
        raise ValueError(f"kind must be one of {', '.join(variants)}, got {kind!r}")
    return {**base, **variants[kind]}


def tiny_upsampler_state_dict(config: dict, *, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 weights of a sane scale for ``config``, reproducible per key and seed."""
    with torch.device("meta"):
        module = LatentUpsampler(config)
    out = {}
    for key, t in module.state_dict().items():
        g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
        shape = tuple(t.shape)
        if key == BLUR_KEY:
            value = binomial_kernel()
        elif key.endswith("weight") and len(shape) > 1:
            fan_in = max(1, t[0].numel())
            value = torch.randn(shape, generator=g) / fan_in**0.5
        elif "norm" in key and key.endswith("weight"):
            value = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            value = 0.05 * torch.randn(shape, generator=g)
        out[key] = value.contiguous()
    return out


def write_tiny_upsampler(path: str | os.PathLike, config: dict, *, seed: int = 0, dtype=torch.float32) -> dict:
    """Write an official-layout upsampler file (flat config in the header); returns its tensors."""
    from safetensors.torch import save_file

    sd = {k: (v.to(dtype) if k != BLUR_KEY else v) for k, v in tiny_upsampler_state_dict(config, seed=seed).items()}
    save_file(sd, os.fspath(path), metadata={"config": json.dumps(config)})
    return sd
