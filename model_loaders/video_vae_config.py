"""The video VAE config of a file: shapes from its tensors, the rest from its header or the release.

Read off the tensors (module keys, without a ``vae.`` prefix):

* ``latent_channels``  ``decoder.conv_in.conv.weight`` [C0, latent, 3, 3, 3]
* ``patch_size``       ``encoder.conv_in.conv.weight`` [C, 3 x patch^2, ...] (RGB in and out)
* ``decoder_base_channels``  C0 / 8 (the decoder starts at 8 x base)
* ``latent_log_var``   ``encoder.conv_out.conv.weight``: latent + 1 rows (uniform), 2 x latent
                       (per_channel) or latent (none)
* ``norm_layer``       GroupNorm weights present or not (PixelNorm has none)
* ``timestep_conditioning``  ``decoder.last_time_embedder.*`` present or not
* ``encoder_blocks``   per ``encoder.down_blocks.i``: ``res_blocks.N`` -> res_x (N layers);
                       ``conv.conv`` (space-to-depth) -> ``compress_{time,space,all}_res``, the
                       stride from how many channels the conv folds in (2 / 4 / 8), the
                       multiplier from the width after it
* ``decoder_blocks``   per ``decoder.up_blocks.i`` (listed reversed, output side first): res_x
                       (N layers, ``inject_noise`` from ``per_channel_scale1``);
                       ``conv.conv`` (depth-to-space) -> ``compress_{time,space,all}``

Not in any shape, so from the header, else the released files' value (LTX-2.0 and 2.3 agree
except on the first): the decoder upsamplers' ``residual`` flag (2.0 true, 2.3 false),
``encoder_spatial_padding_mode`` (zeros), ``decoder_spatial_padding_mode`` (reflect),
``causal_decoder`` (false).  Which release a header-less file is comes from its decoder's
upsampler sequence (2.0: three space-and-time x2; 2.3: space, time, all, all).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Mapping

from .config_sources import (
    HEADER,
    RELEASED,
    SHAPE,
    ResolvedConfig,
    contradiction,
    count_indices,
    not_derivable,
)
from .published_configs import RELEASES, published_config
from .published_files import where_published
from .safetensors_file import CheckpointError

Shapes = Mapping[str, tuple]

ENCODER_FOLDS = {2: "compress_time_res", 4: "compress_space_res", 8: "compress_all_res"}
DECODER_FOLDS = {2: "compress_time", 4: "compress_space", 8: "compress_all"}
_PLAIN_COMPRESS = ("compress_time", "compress_space", "compress_all")  # a strided conv keeping the width
_FOLD_WORDS = {2: "time x2", 4: "space x2", 8: "space and time x2"}
RGB = 3


def _params(params: Any) -> dict:
    return {"num_layers": params} if isinstance(params, int) else dict(params or {})


# What the released VAEs are, read from their published header sections (published_configs):
# the decoders' block sequences (header order, output side first), whether their upsamplers are
# residual, and the settings no tensor shows.  The 2.3 header states its padding modes; the 2.0
# header leaves them to ltx-core's defaults, which are the same values.
_RELEASED_VAE = {v: published_config(v)["vae"] for v in RELEASES}
RELEASED_DECODERS = {v: tuple(name for name, _ in vae["decoder_blocks"]) for v, vae in _RELEASED_VAE.items()}
RELEASED_RESIDUAL = {v: any(_params(p).get("residual", False) for _, p in vae["decoder_blocks"])
                     for v, vae in _RELEASED_VAE.items()}  # fmt: skip
RELEASED_NUMERICS = {k: _RELEASED_VAE["2.3"][k] for k in ("encoder_spatial_padding_mode", "decoder_spatial_padding_mode",
                                                          "causal_decoder")}  # fmt: skip
_LOG_VARS = ("uniform", "constant")  # latent + 1 conv_out rows (the same shapes)


@dataclass
class _Block:
    """One encoder / decoder stage as the tensors show it."""

    kind: str  # "res_x" | "res_x_y" | "fold" (space-to-depth / depth-to-space) | "conv" (a strided conv)
    key: str  # a tensor that shows the stage (for messages)
    shape: tuple
    n_in: int
    n_out: int = 0
    num_layers: int = 0
    fold: int = 0  # channels folded into / out of the stride: prod(stride)
    inject_noise: bool = False


def _blocks(path: str, t: Shapes, half: str, prefix: str = "") -> list[_Block]:
    """The stages of ``encoder.`` / ``decoder.`` in module order, widths and strides filled in
    (``key``: the file key, ``prefix`` + module key, for messages)."""
    stack = "down_blocks." if half == "encoder." else "up_blocks."
    try:
        n = count_indices(t, half + stack)
    except ValueError as err:
        raise CheckpointError(f"{path}: video VAE {half[:-1]}: {err}") from None
    blocks = []
    for i in range(n):
        p = f"{half}{stack}{i}."
        if (k := p + "res_blocks.0.conv1.conv.weight") in t:
            layers = count_indices(t, p + "res_blocks.")
            noise = p + "res_blocks.0.per_channel_scale1" in t
            blocks.append(_Block("res_x", prefix + k, t[k], t[k][1], t[k][0], num_layers=layers, inject_noise=noise))
        elif (k := p + "conv1.conv.weight") in t:
            noise = p + "per_channel_scale1" in t
            blocks.append(_Block("res_x_y", prefix + k, t[k], t[k][1], t[k][0], inject_noise=noise))
        elif (k := p + "conv.conv.weight") in t:
            blocks.append(_Block("fold", prefix + k, t[k], t[k][1]))
        elif (k := p + "conv.weight") in t:
            blocks.append(_Block("conv", prefix + k, t[k], t[k][1], t[k][0]))
        else:
            found = sorted(key for key in t if key.startswith(p))[:3]
            raise CheckpointError(f"{path}: '{prefix}{p}*' is no LTX-2 video VAE stage (keys {found})")
    end_key = f"{half}conv_out.conv.weight"
    widths = [b.n_in for b in blocks[1:]] + [t[end_key][1]]
    start_key = f"{half}conv_in.conv.weight"
    width = t[start_key][0]
    for b, nxt in zip(blocks, widths):
        if b.n_in != width:
            raise CheckpointError(
                f"{path}: video VAE {half[:-1]}: {b.key!r} {list(b.shape)} takes {b.n_in} channels, but the stage "
                f"before it gives {width}. The file is damaged or not an LTX-2 video VAE."
            )
        if b.kind == "fold":
            b.n_out = nxt
            big, small = (b.n_out, b.shape[0]) if half == "encoder." else (b.shape[0], b.n_out)
            b.fold = big // small if small and big % small == 0 else 0
            if b.fold not in (2, 4, 8):
                raise CheckpointError(
                    f"{path}: {b.key!r} {list(b.shape)} next to a width of {nxt} channels is no x2 time / space / "
                    "space-and-time resampler of the LTX-2 video VAE."
                )
        width = b.n_out
    if blocks and width != widths[-1]:
        raise CheckpointError(f"{path}: '{prefix}{end_key}' takes {widths[-1]} channels, the last stage gives {width}.")
    return blocks


def _ratio(path: str, b: _Block, big: int, small: int) -> int:
    if small <= 0 or big % small:
        raise CheckpointError(f"{path}: {b.key!r} {list(b.shape)}: widths {b.n_in} -> {b.n_out} differ by no whole factor.")
    return big // small


def _encoder_spec(path: str, b: _Block) -> tuple[str, dict]:
    """(name, shape params) of an encoder stage; a plain conv's name is "compress_?" (stride unknown)."""
    if b.kind == "res_x":
        return "res_x", {"num_layers": b.num_layers}
    mult = _ratio(path, b, b.n_out, b.n_in)
    if b.kind == "fold":
        return ENCODER_FOLDS[b.fold], {"multiplier": mult}
    if b.kind == "res_x_y":
        return "res_x_y", {"multiplier": mult}
    return ("compress_?", {"multiplier": 1}) if mult == 1 else ("compress_all_x_y", {"multiplier": mult})


def _decoder_spec(path: str, b: _Block) -> tuple[str, dict]:
    if b.kind == "res_x":
        return "res_x", {"num_layers": b.num_layers, "inject_noise": b.inject_noise}
    if b.kind == "conv":
        raise CheckpointError(f"{path}: {b.key!r}: a plain strided conv is no LTX-2 video VAE decoder stage.")
    mult = _ratio(path, b, b.n_in, b.n_out)
    if b.kind == "res_x_y":
        return "res_x_y", {"multiplier": mult, "inject_noise": b.inject_noise}
    return DECODER_FOLDS[b.fold], {"multiplier": mult}


def _header_spec(name: str, params: Any, decoder: bool) -> tuple[str, dict]:
    """A header block with its shape params made explicit (ltx-core's defaults)."""
    p = _params(params)
    if name == "res_x":
        spec = {"num_layers": p.get("num_layers")}
        return name, ({**spec, "inject_noise": bool(p.get("inject_noise", False))} if decoder else spec)
    if decoder:
        if name == "res_x_y":
            return name, {"multiplier": p.get("multiplier", 2), "inject_noise": bool(p.get("inject_noise", False))}
        return name, {"multiplier": p.get("multiplier", 1)}
    if name in _PLAIN_COMPRESS:
        return name, {"multiplier": 1}
    return name, {"multiplier": p.get("multiplier", 2)}


def _describe(name: str, spec: dict, b: _Block) -> str:
    if name == "res_x":
        noise = ", noise injection" if spec.get("inject_noise") else ""
        return f"res_x with {spec['num_layers']} layer(s) at {b.n_in} channels{noise}"
    if b.kind == "fold":
        words = _FOLD_WORDS[b.fold]
        return f"{name}: a {words} resampler, {b.n_in} -> {b.n_out} channels (multiplier {spec['multiplier']})"
    if name == "compress_?":
        return f"a strided conv keeping {b.n_in} channels (compress_time / compress_space / compress_all)"
    return f"{name}, {b.n_in} -> {b.n_out} channels (multiplier {spec['multiplier']})"


def _split(item: Any) -> tuple[str, dict]:
    """A header block ``[name, params]`` (params may be an int: the layer count) as (name, params)."""
    if isinstance(item, (list, tuple)):
        return item[0], _params(item[1] if len(item) > 1 else {})
    return item, {}


def _blocks_config(path: str, which: str, blocks: list[_Block], header: list | None, version: str | None,
                   sources: dict, prefix: str) -> list:  # fmt: skip
    """The header-order block list: shapes from ``blocks``, the rest from ``header`` / the release."""
    decoder = which == "decoder_blocks"
    specs = [(_decoder_spec if decoder else _encoder_spec)(path, b) for b in blocks]
    if decoder:  # the header lists the decoder from the output side
        blocks, specs = blocks[::-1], specs[::-1]
    key = f"config.vae.{which}"
    stated = [_split(item) for item in header] if isinstance(header, list) else None
    if header is not None and (stated is None or len(stated) != len(specs)):
        stack = "decoder.up_blocks" if decoder else "encoder.down_blocks"
        shown = f"{len(header)} blocks" if isinstance(header, list) else header
        raise contradiction(path, key, shown, f"{prefix}{stack}.*", f"{len(specs)} blocks",
                            f"the file has {len(specs)} {which[:-7]} stages")  # fmt: skip
    out = []
    for i, ((name, spec), b) in enumerate(zip(specs, blocks)):
        h_name, h_params = stated[i] if stated is not None else (None, {})
        if h_name is not None:
            same_name = h_name == name or (name == "compress_?" and h_name in _PLAIN_COMPRESS)
            if not same_name or _header_spec(h_name, h_params, decoder)[1] != spec:
                raise contradiction(path, f"{key}[{i}]", list(header[i]) if isinstance(header[i], (list, tuple))
                                    else header[i], b.key, b.shape, "it is " + _describe(name, spec, b))  # fmt: skip
        if name == "compress_?":
            if h_name is None:
                why = f"{b.key!r} is a strided conv whose stride no tensor shape tells"
                raise not_derivable(path, "video VAE", why)
            name = h_name
        params = {**h_params, **spec}
        if decoder and b.kind == "fold":
            if "residual" in h_params:
                sources[f"{key}[{i}].residual"] = HEADER
            else:  # a header without it means ltx-core's default (false); no header, the release's
                params["residual"] = RELEASED_RESIDUAL.get(version, False) if header is None else False
                sources[f"{key}[{i}].residual"] = RELEASED
        out.append([name, params])
    sources[key] = SHAPE
    return out


def _fingerprint(decoder_blocks: list) -> str | None:
    """The release whose decoder has this block sequence (header order), or None."""
    names = tuple(name for name, _ in decoder_blocks)
    return next((v for v, seq in RELEASED_DECODERS.items() if seq == names), None)


def vae_section(config: Mapping[str, Any] | None) -> dict | None:
    """The ``vae`` section of a header config, or the config itself when it is one."""
    if not isinstance(config, Mapping):
        return None
    if isinstance(config.get("vae"), Mapping):
        return dict(config["vae"])
    if "encoder_blocks" in config or "decoder_blocks" in config:
        return dict(config)
    return None


def _check_scalar(path: str, header: Mapping, key: str, value, tensor: str, shape, meaning: str) -> None:
    """``tensor``: the file key."""
    if key in header and header[key] != value:
        raise contradiction(path, f"config.vae.{key}", header[key], tensor, shape, meaning)


def resolve_video_vae_config(
    path: str, header: Mapping[str, Any] | None, t: Shapes, prefix: str = ""
) -> ResolvedConfig:
    """The ``vae`` section to build ``ltx2.video_vae.VideoVAE`` from.

    Args:
        path: the file (for messages).
        header: the header's ``vae`` section, or ``None`` when the file has none.
        t: module key (``encoder.*``, ``decoder.*``, ``per_channel_statistics.*``) -> shape.
        prefix: the file's prefix of those keys (``vae.`` in a bundle), for messages.
    Raises:
        CheckpointError: a header value the tensors contradict (naming the key, the value and the
            tensor), tensors that are no LTX-2 video VAE, or a header-less file whose tensors
            are neither release's layout.
    """
    for key in ("encoder.conv_in.conv.weight", "encoder.conv_out.conv.weight", "decoder.conv_in.conv.weight",
                "decoder.conv_out.conv.weight"):  # fmt: skip
        if key not in t:
            raise CheckpointError(
                f"{path}: expected the video VAE's encoder and decoder (e.g. '{prefix}{key}'), found it missing. A "
                "video VAE file holds both halves: the file is incomplete; the published ones are "
                f"{where_published('video_vae')}."
            )
        if len(t[key]) != 5:
            raise CheckpointError(
                f"{path}: '{prefix}{key}' has shape {list(t[key])}; the LTX-2 video VAE's convolutions are 3D (5 dims)."
            )
    h = dict(header) if header is not None else {}
    if header is not None and int(h.get("dims", 3)) != 3:
        raise contradiction(path, "config.vae.dims", h["dims"], prefix + "encoder.conv_in.conv.weight",
                            t["encoder.conv_in.conv.weight"], "3D convolutions")  # fmt: skip
    sources: dict[str, str] = {}
    dec_in, enc_in = t["decoder.conv_in.conv.weight"], t["encoder.conv_in.conv.weight"]
    enc_out, dec_out = t["encoder.conv_out.conv.weight"], t["decoder.conv_out.conv.weight"]
    latent = dec_in[1]
    _check_scalar(path, h, "latent_channels", latent, prefix + "decoder.conv_in.conv.weight", dec_in,
                  f"{latent} latent channels")  # fmt: skip

    # patch size and RGB widths: conv_in takes in_channels x patch^2 channels, conv_out makes out_channels x patch^2
    if "patch_size" in h:
        patch = int(h["patch_size"])
        sources["config.vae.patch_size"] = HEADER
    else:
        patch = math.isqrt(enc_in[1] // RGB)
        if patch * patch * RGB != enc_in[1]:
            why = f"'{prefix}encoder.conv_in.conv.weight' {list(enc_in)} takes no 3 x patch^2 channels"
            raise not_derivable(path, "video VAE", why)
        sources["config.vae.patch_size"] = SHAPE
    for key, tensor, shape, n in (("in_channels", prefix + "encoder.conv_in.conv.weight", enc_in, enc_in[1]),
                                  ("out_channels", prefix + "decoder.conv_out.conv.weight", dec_out, dec_out[0])):
        value = int(h.get(key, RGB))
        if value * patch * patch != n:
            what = f"{key} {value} x patch_size {patch}^2 = {value * patch * patch}"
            raise contradiction(path, f"config.vae.{key} / patch_size", what, tensor, shape, f"{n} channels")
        sources[f"config.vae.{key}"] = HEADER if key in h else SHAPE
    base = dec_in[0] // 8
    if base * 8 != dec_in[0]:
        raise CheckpointError(
            f"{path}: '{prefix}decoder.conv_in.conv.weight' {list(dec_in)}: {dec_in[0]} channels are no 8 x base width."
        )
    _check_scalar(path, h, "decoder_base_channels", base, prefix + "decoder.conv_in.conv.weight", dec_in,
                  f"the decoder starts at {dec_in[0]} = 8 x {base} channels")  # fmt: skip
    rows = enc_out[0]
    if rows == 2 * latent:
        log_var = "per_channel"
    elif rows == latent + 1:
        log_var = h["latent_log_var"] if h.get("latent_log_var") in _LOG_VARS else "uniform"
    elif rows == latent:
        log_var = "none"
    else:
        raise CheckpointError(
            f"{path}: '{prefix}encoder.conv_out.conv.weight' {list(enc_out)} fits no latent_log_var for {latent} "
            "latent channels (latent + 1, 2 x latent or latent rows)."
        )
    _check_scalar(path, h, "latent_log_var", log_var, prefix + "encoder.conv_out.conv.weight", enc_out,
                  f"{rows} rows for {latent} latent channels")  # fmt: skip
    norm_keys = [k for k in t if k.endswith(("conv_norm_out.weight", ".norm1.weight"))]
    norm_key = norm_keys[0] if norm_keys else "decoder.conv_norm_out.weight"
    group = bool(norm_keys)
    norm = "group_norm" if group else "pixel_norm"
    _check_scalar(path, h, "norm_layer", norm, prefix + norm_key, t.get(norm_key),
                  "GroupNorm weights" if group else "no norm weights: PixelNorm")  # fmt: skip
    markers = [k for k in t if k.startswith(("decoder.last_time_embedder.", "decoder.last_scale_shift_table"))]
    marker = markers[0] if markers else None
    conditioned = marker is not None
    if "timestep_conditioning" in h and bool(h["timestep_conditioning"]) != conditioned:
        raise contradiction(path, "config.vae.timestep_conditioning", h["timestep_conditioning"],
                            prefix + (marker or "decoder.last_time_embedder.timestep_embedder.linear_1.weight"),
                            t[marker] if marker else None,
                            "a timestep-conditioned decoder" if conditioned else "a plain decoder")  # fmt: skip

    encoder = _blocks(path, t, "encoder.", prefix)
    decoder = _blocks(path, t, "decoder.", prefix)
    # the version first (it settles the residual flags of a header-less file)
    probe = [[_decoder_spec(path, b)[0], {}] for b in decoder[::-1]]
    version = _fingerprint(probe)
    if header is None and version is None:
        names = ", ".join(name for name, _ in probe)
        raise not_derivable(
            path, "video VAE",
            f"its decoder ({names}) is neither the released LTX-2 nor LTX-2.3 VAE's, so the settings no tensor shows "
            "(residual upsamplers, padding modes) are unknown",
        )  # fmt: skip

    cfg = copy.deepcopy(h)
    cfg.update(
        dims=3, in_channels=enc_in[1] // (patch * patch), out_channels=dec_out[0] // (patch * patch), patch_size=patch,
        latent_channels=latent, decoder_base_channels=base, latent_log_var=log_var, norm_layer=norm,
        timestep_conditioning=conditioned,
    )  # fmt: skip
    for key in ("latent_channels", "decoder_base_channels", "latent_log_var", "norm_layer", "timestep_conditioning"):
        sources[f"config.vae.{key}"] = SHAPE
    for which, blocks in (("encoder_blocks", encoder), ("decoder_blocks", decoder)):
        stated = h.get(which) if header is not None else None
        cfg[which] = _blocks_config(path, which, blocks, stated, version, sources, prefix)
    for key, value in RELEASED_NUMERICS.items():
        if key in h or (key.endswith("padding_mode") and "spatial_padding_mode" in h):
            sources[f"config.vae.{key}"] = HEADER
        else:
            cfg[key] = value
            sources[f"config.vae.{key}"] = RELEASED
    return ResolvedConfig(cfg, sources, version, header is not None)


def video_vae_version(t: Shapes) -> str | None:
    """``"2.0"`` / ``"2.3"`` from the decoder's upsampler sequence, ``None`` when neither (no errors)."""
    try:
        decoder = _blocks("", t, "decoder.")
        return _fingerprint([[_decoder_spec("", b)[0], {}] for b in decoder[::-1]])
    except (CheckpointError, KeyError, IndexError):
        return None


__all__ = ["RELEASED_DECODERS", "resolve_video_vae_config", "vae_section", "video_vae_version"]
