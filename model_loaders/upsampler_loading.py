"""Latent-upsampler files -> ``ltx2.upsampler.LatentUpsampler``; tiny upsampler files for tests.

An official upsampler file (``ltx-2-spatial-upscaler-x2-1.0.safetensors``,
``ltx-2-temporal-upscaler-x2-1.0.safetensors``, ``ltx-2.3-spatial-upscaler-x2-1.1``,
``ltx-2.3-spatial-upscaler-x1.5-1.0``, ``ltx-2.3-temporal-upscaler-x2-1.0``) holds the bare
module keys (``initial_conv.weight``, ``res_blocks.0.conv1.weight``, ``upsampler.0.weight``, ...)
and a *flat* config in ``__metadata__["config"]``::

    {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 1024,
     "num_blocks_per_stage": 4, "dims": 3, "spatial_upsample": true, "temporal_upsample": false}

(the LTX-2.3 files may add ``spatial_scale`` / ``rational_resampler``).  Some files in the wild
carry no metadata at all; every key is also in the tensor shapes:

* ``initial_conv.weight`` [mid, in, 3, 3(, 3)]: ``mid_channels``, ``in_channels``, ``dims`` (4 / 5 dims)
* ``res_blocks.N`` (and as many ``post_upsample_res_blocks.N``): ``num_blocks_per_stage``
* the upsampling stage: ``upsampler.0.weight`` 2D [4 mid, mid, 3, 3] = spatial x2 (pixel shuffle
  2 x 2 per frame), 3D [2 mid, ...] = temporal x2, 3D [8 mid, ...] = space and time x2;
  ``upsampler.conv.weight`` [p^2 mid, mid, 3, 3] (+ the blur filter ``upsampler.blur_down.kernel``)
  = the rational resampler, p = 3 for x1.5 (the published one; p / q = 3 / 4 would be x0.75,
  which only a header can say), 2 for x2, 4 for x4.

``read_upsampler_config`` takes those values from the tensors and refuses a header value that
contradicts them (naming the key, the value and the tensor); ``load_upsampler`` then checks
every key and shape before reading any tensor data and loads strictly.  The one tolerated
difference is the rational resampler's fixed blur filter (``upsampler.blur_down.kernel``): a
file saved without it gets the filter computed here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import zlib

import torch

from .checkpoint import assign_weights
from .config_sources import HEADER, RELEASED, SHAPE, ResolvedConfig, contradiction, listing
from .published_files import carriers, describe
from .safetensors_file import CheckpointError, load_tensors, parse_config, read_header

try:  # see model_loaders/__init__.py
    from ..ltx2.upsampler import (
        CLASS_NAME,
        RATIONAL_SCALES,
        LatentUpsampler,
        UpsamplerConfig,
        UpsamplerConfigError,
        binomial_kernel,
    )
except ImportError:
    from ltx2.upsampler import (
        CLASS_NAME,
        RATIONAL_SCALES,
        LatentUpsampler,
        UpsamplerConfig,
        UpsamplerConfigError,
        binomial_kernel,
    )

log = logging.getLogger(__name__)
BLUR_KEY = "upsampler.blur_down.kernel"
_SHOW = 10
_BUNDLE_PREFIXES = ("model.diffusion_model.", "vae.", "audio_vae.", "vocoder.", "text_embedding_projection.")
# rational resampler: p (the conv's p^2 x mid rows) -> the scale a header-less file gets
_RATIONAL_BY_P = {2: 2.0, 3: 1.5, 4: 4.0}


def _listing(keys) -> str:
    return listing(keys, _SHOW, quote=False)


def _not_an_upsampler(name: str, keys) -> CheckpointError:
    hint = ""
    if any(k.startswith(_BUNDLE_PREFIXES) for k in keys):
        hint = " It looks like an LTX-2 model checkpoint or VAE: pick it in the checkpoint / VAE loader instead."
    return CheckpointError(
        f"{name}: expected an LTX-2 latent upsampler (keys 'initial_conv.weight', 'res_blocks.N.*', 'upsampler.*', "
        f"'final_conv.*'), found keys like {_listing(list(keys)[:5])}.{hint} The published upscalers are "
        f"{describe(carriers('upscaler'))}."
    )


def derive_upsampler_config(name: str, entries) -> tuple[dict, dict]:
    """(config keys, evidence per key) read off the tensor shapes of an upsampler file.

    ``entries``: file key -> object with ``.shape`` (header entries) or a shape tuple.
    Evidence is ``(tensor, shape, meaning)`` for messages.
    """
    shapes = {k: tuple(getattr(e, "shape", e)) for k, e in entries.items()}
    first = shapes.get("initial_conv.weight")
    if first is None or len(first) not in (4, 5):
        raise _not_an_upsampler(name, shapes)
    mid, n_in, dims = first[0], first[1], len(first) - 2
    blocks = len({k.split(".")[1] for k in shapes if k.startswith("res_blocks.")})
    cfg = {"in_channels": n_in, "mid_channels": mid, "num_blocks_per_stage": blocks, "dims": dims}
    evidence = {
        "in_channels": ("initial_conv.weight", first, f"{n_in} latent channels in"),
        "mid_channels": ("initial_conv.weight", first, f"{mid} channels inside"),
        "dims": ("initial_conv.weight", first, f"{dims}D convolutions"),
        "num_blocks_per_stage": ("res_blocks.*", f"{blocks} blocks", f"{blocks} residual blocks per stage"),
    }
    plain, rational = shapes.get("upsampler.0.weight"), shapes.get("upsampler.conv.weight")
    if plain is not None:
        rows = plain[0] // mid if mid and plain[0] % mid == 0 else 0
        kinds = {(4, 4): (True, False), (5, 2): (False, True), (5, 8): (True, True)}
        if (len(plain), rows) not in kinds:
            raise CheckpointError(
                f"{name}: 'upsampler.0.weight' {list(plain)} is no x2 spatial (2D, 4 x {mid} rows), temporal (3D, "
                f"2 x {mid}) or space-and-time (3D, 8 x {mid}) upsampling conv."
            )
        spatial, temporal = kinds[(len(plain), rows)]
        cfg.update(spatial_upsample=spatial, temporal_upsample=temporal, rational_resampler=False)
        what = {(True, False): "spatial x2", (False, True): "temporal x2", (True, True): "space and time x2"}
        meaning = what[(spatial, temporal)] + " upsampling"
        for key in ("spatial_upsample", "temporal_upsample", "rational_resampler"):
            evidence[key] = ("upsampler.0.weight", plain, meaning)
    elif rational is not None:
        p = math.isqrt(rational[0] // mid) if mid and rational[0] % mid == 0 else 0
        if len(rational) != 4 or p * p * mid != rational[0] or p not in _RATIONAL_BY_P:
            raise CheckpointError(
                f"{name}: 'upsampler.conv.weight' {list(rational)} is no rational resampler conv (2D, p^2 x {mid} "
                "rows with p 2, 3 or 4)."
            )
        cfg.update(spatial_upsample=True, temporal_upsample=False, rational_resampler=True,
                   spatial_scale=_RATIONAL_BY_P[p])  # fmt: skip
        meaning = f"a rational spatial resampler that first scales x{p}"
        for key in ("spatial_upsample", "temporal_upsample", "rational_resampler", "spatial_scale"):
            evidence[key] = ("upsampler.conv.weight", rational, meaning)
    else:
        raise _not_an_upsampler(name, shapes)
    return cfg, evidence


def read_upsampler_config(path: str | os.PathLike) -> tuple[UpsamplerConfig, dict]:
    """(validated config, the header's tensor entries) of an upsampler file; no data read.

    Shapes come from the tensors; the header config, when the file has one, must agree with
    them (``spatial_scale`` of a rational resampler: x1.5 and x0.75 have the same shapes, so
    the header's value counts).  A file without a header config loads from the tensors alone.
    """
    header = read_header(path)
    name = os.fspath(path)
    config = parse_config(header)
    bundle = config is not None and any(k in config for k in ("transformer", "vae", "audio_vae"))
    if config is not None and (bundle or config.get("_class_name", CLASS_NAME) != CLASS_NAME):
        found = config.get("_class_name")
        what = "an LTX-2 model bundle (transformer/VAE config)" if bundle else f"_class_name {found!r}"
        raise CheckpointError(
            f"{name}: expected an LTX-2 latent upsampler (_class_name {CLASS_NAME!r} in the header config), "
            f"found {what}. Put the LTX-2 spatial/temporal upscaler .safetensors files in models/latent_upscale_models."
        )
    derived, evidence = derive_upsampler_config(name, header.tensors)
    values = dict(derived)
    if config is not None:
        for key, value in derived.items():
            if key not in config:
                continue
            stated = config[key]
            if key == "spatial_scale":
                # shapes fix p (p^2 x mid rows); the header picks among the scales with that p
                p = RATIONAL_SCALES.get(float(stated), (None,))[0] if isinstance(stated, (int, float)) else None
                if p is not None and p == RATIONAL_SCALES[value][0]:
                    values[key] = float(stated)
                    continue
            elif stated == value and isinstance(stated, bool) == isinstance(value, bool):
                continue
            tensor, shape, meaning = evidence[key]
            raise contradiction(name, f"config.{key}", stated, tensor, shape, meaning)
    else:
        log.info("%s: no config in the header; the upscaler's shape comes from its tensors (%s)",
                 os.path.basename(name), ", ".join(f"{k} {v}" for k, v in values.items()))  # fmt: skip
    try:
        cfg = UpsamplerConfig.from_header({"_class_name": CLASS_NAME, **values}, source=name)
    except UpsamplerConfigError as err:
        raise CheckpointError(str(err)) from None
    return cfg, header.tensors


def upsampler_config_sources(path: str | os.PathLike) -> ResolvedConfig:
    """The upsampler's config values and where each came from; no tensor data read (for inspection).

    Every value is read off a tensor (``shape``) except a rational resampler's ``spatial_scale``,
    which the header states (``header``) or, without one, is the published x1.5 (``released
    default``); the release (2.0 / 2.3) is not in the tensors, so ``version`` is None.
    """
    cfg, entries = read_upsampler_config(path)
    stated = parse_config(read_header(path)) or {}
    derived, _ = derive_upsampler_config(os.fspath(path), entries)
    values = {k: getattr(cfg, k) for k in derived}
    sources = {f"config.{k}": SHAPE for k in derived}
    if "spatial_scale" in derived:
        sources["config.spatial_scale"] = HEADER if "spatial_scale" in stated else RELEASED
    return ResolvedConfig(values, sources, None, bool(stated))


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
        CheckpointError: not a safetensors file or no upsampler, a header config the tensors
            contradict, or keys and shapes that do not make one network (the message lists the
            missing / unexpected / mis-shaped keys).
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
            f"{name}: the weights do not match the upsampler their shapes describe "
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
