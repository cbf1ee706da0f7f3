"""Audio VAE and vocoder configs of a file: shapes from its tensors, the rest from its header or the release.

Audio VAE (module keys without ``audio_vae.``), ``model.params.ddconfig`` read off the tensors:
``ch`` / ``in_channels`` (``encoder.conv_in``), ``z_channels`` (``decoder.conv_in`` input),
``double_z`` (``encoder.conv_out`` rows = 2 z), ``out_ch`` (``decoder.conv_out``), ``ch_mult``
(the width of each ``decoder.up.L``, over ``ch``), ``num_res_blocks`` (``encoder.down.0.block.N``),
``norm_type`` (GroupNorm weights or none), ``mid_block_add_attention`` (``mid.attn_1``) and
which levels attend (``attn_resolutions``).  From the header, else released (2.0 and 2.3 are
the same): ``causality_axis`` height, ``resolution`` 256, ``mel_bins`` 64, sampling rate 16 kHz
and the STFT / mel front end (filter 1024, hop 160, 64 mels up to 8 kHz).

Vocoder (module keys after one ``vocoder.``; the 2.3 one nests ``vocoder.`` and
``bwe_generator.`` generators plus ``mel_stft.``), per generator from the tensors:
``upsample_initial_channel`` (``conv_pre``), ``upsample_kernel_sizes`` and their count
(``ups.i``), ``resblock_kernel_sizes`` and the number of dilations (``resblocks.j.convs1.m``),
``resblock`` ("1" HiFi-GAN / "AMP1" BigVGAN: anti-aliased activations present), ``activation``
(SnakeBeta: ``.act.beta`` present), ``use_bias_at_final`` (``conv_post.bias``), ``stereo``
(``conv_post`` rows); the BWE's ``n_fft`` / ``num_mels`` from ``mel_stft``.  From the header,
else the released generator with those upsample kernels: the upsample strides, the dilations,
``use_tanh_at_final``, the sampling rates (2.0: 24 kHz out, which its header leaves implied),
the BWE hop.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from .config_sources import HEADER, RELEASED, SHAPE, ResolvedConfig, contradiction, count_indices, not_derivable
from .published_configs import published_config
from .safetensors_file import CheckpointError

Shapes = Mapping[str, tuple]

# --------------------------------------------------------------------------- released values
# Read from the published header sections (published_configs); the audio VAE is the same in
# both releases.
_AUDIO = published_config("2.0")["audio_vae"]
RELEASED_AUDIO_DDCONFIG = {k: _AUDIO["model"]["params"]["ddconfig"][k]
                           for k in ("causality_axis", "resolution", "mel_bins", "dropout", "downsample_time")}  # fmt: skip
RELEASED_AUDIO_RATE = _AUDIO["model"]["params"]["sampling_rate"]
RELEASED_PREPROCESSING = {group: dict(_AUDIO["preprocessing"][group]) for group in ("stft", "mel")}
_DILATIONS = published_config("2.0")["vocoder"]["resblock_dilation_sizes"][0]
# The 2.0 vocoder's header leaves two values implied: tanh at the end (ltx-core's default) and
# 24 kHz out (240 samples per 100 Hz mel frame).
_IMPLIED_20 = {"use_tanh_at_final": True, "output_sampling_rate": 24000}


def _released_generators() -> dict:
    """Released generators by their upsample kernels: what no tensor shape tells."""
    v23 = published_config("2.3")["vocoder"]
    sections = (("2.0", {**_IMPLIED_20, **published_config("2.0")["vocoder"]}),  # LTX-2.0 HiFi-GAN, 240x -> 24 kHz
                ("2.3", v23["vocoder"]),  # LTX-2.3 BigVGAN-v2, 160x -> 16 kHz
                ("2.3", v23["bwe"]))  # LTX-2.3 bandwidth extension, 240x of the 200 Hz mel -> 48 kHz  # fmt: skip
    out = {}
    for release, g in sections:
        entry = {"release": release, "upsample_rates": g["upsample_rates"], "use_tanh_at_final": g["use_tanh_at_final"]}
        if release == "2.0":
            entry["output_sampling_rate"] = g["output_sampling_rate"]
        out[tuple(g["upsample_kernel_sizes"])] = entry
    return out


RELEASED_GENERATORS = _released_generators()
RELEASED_BWE = {k: published_config("2.3")["vocoder"]["bwe"][k]
                for k in ("hop_length", "input_sampling_rate", "output_sampling_rate", "apply_final_activation")}  # fmt: skip
MEL_IN = 128  # conv_pre takes 2 stereo channels x 64 mel bins in every LTX-2 vocoder


# --------------------------------------------------------------------------- audio VAE
def _get(t: Shapes, path: str, key: str, what: str, prefix: str = "") -> tuple:
    if key not in t:
        raise CheckpointError(
            f"{path}: the {what} lacks {prefix + key!r} (1 missing key), which its shape is read from. The file is "
            "incomplete: download it again, or use the official file."
        )
    return t[key]


def audio_vae_section(config: Mapping[str, Any] | None) -> dict | None:
    """The ``audio_vae`` section of a header config, or the config itself when it is one."""
    if not isinstance(config, Mapping):
        return None
    if isinstance(config.get("audio_vae"), Mapping):
        return dict(config["audio_vae"])
    if "model" in config and "transformer" not in config:
        return dict(config)
    return None


def resolve_audio_vae_config(
    path: str, header: Mapping[str, Any] | None, t: Shapes, prefix: str = ""
) -> ResolvedConfig:
    """The ``audio_vae`` section to build ``ltx2.audio_vae.AudioVAE`` from (see the module docstring).

    ``t``: module key (``encoder.*``, ``decoder.*``, ``per_channel_statistics.*``) -> shape;
    ``prefix``: the file's prefix of those keys (for messages).  A value whose tensor is
    missing is taken from the header (the strict load then names the missing tensor).
    """
    conv_in, dec_in = t.get("encoder.conv_in.conv.weight"), t.get("decoder.conv_in.conv.weight")
    enc_out, dec_out = t.get("encoder.conv_out.conv.weight"), t.get("decoder.conv_out.conv.weight")
    try:
        levels = count_indices(t, "decoder.up.")
        blocks = count_indices(t, "encoder.down.0.block.")
    except ValueError as err:
        raise CheckpointError(f"{path}: audio VAE: {err}") from None
    derived: dict[str, Any] = {}
    evidence: dict[str, tuple] = {}

    def put(key: str, value, tensor: str, meaning: str) -> None:
        derived[key] = value
        evidence[key] = (prefix + tensor, t.get(tensor), meaning)

    if conv_in is not None:
        put("ch", conv_in[0], "encoder.conv_in.conv.weight", f"base width {conv_in[0]}")
        put("in_channels", conv_in[1], "encoder.conv_in.conv.weight", f"{conv_in[1]} input channels")
    if dec_in is not None:
        z = dec_in[1]
        put("z_channels", z, "decoder.conv_in.conv.weight", f"{z} latent channels")
        if enc_out is not None:
            if enc_out[0] not in (z, 2 * z):
                raise CheckpointError(f"{path}: 'encoder.conv_out.conv.weight' {list(enc_out)} fits neither {z} nor "
                                      f"{2 * z} rows for {z} latent channels.")  # fmt: skip
            meaning = f"{enc_out[0]} rows for {z} latent channels"
            put("double_z", enc_out[0] == 2 * z, "encoder.conv_out.conv.weight", meaning)
    if dec_out is not None:
        put("out_ch", dec_out[0], "decoder.conv_out.conv.weight", f"{dec_out[0]} output channels")
    widths = [t.get(f"decoder.up.{level}.block.0.conv1.conv.weight") for level in range(levels)]
    if conv_in is not None and levels and all(w is not None for w in widths):
        ch, last = conv_in[0], f"decoder.up.{levels - 1}.block.0.conv1.conv.weight"
        if any(w[0] % ch for w in widths):
            raise CheckpointError(f"{path}: the audio VAE decoder's level widths {[w[0] for w in widths]} are no "
                                  f"multiples of the base width {ch}.")  # fmt: skip
        mult = [w[0] // ch for w in widths]
        put("ch_mult", mult, last, f"{levels} levels, widths {ch} x {mult}")
    if any(k.startswith("encoder.down.") for k in t):
        derived["num_res_blocks"] = blocks
        meaning = f"{blocks} res blocks per level"
        evidence["num_res_blocks"] = (f"{prefix}encoder.down.0.block.*", f"{blocks} blocks", meaning)
    group = "decoder.norm_out.weight" in t or "encoder.norm_out.weight" in t
    put("norm_type", "group" if group else "pixel", "decoder.norm_out.weight",
        "GroupNorm weights" if group else "no norm weights: PixelNorm")  # fmt: skip
    mid = "decoder.mid.attn_1.q.weight" in t
    meaning = "mid-block attention" if mid else "no mid attention"
    put("mid_block_add_attention", mid, "decoder.mid.attn_1.q.weight", meaning)
    attn_levels = [lv for lv in range(levels) if f"encoder.down.{lv}.attn.0.q.weight" in t]
    h = copy.deepcopy(dict(header)) if header is not None else {}
    params = h.setdefault("model", {}).setdefault("params", {})
    dd = params.setdefault("ddconfig", {})
    sources: dict[str, str] = {}
    key_of = "config.audio_vae.model.params.ddconfig."
    for key, value in derived.items():
        stated = dd.get(key)
        if key == "ch_mult" and stated is not None:
            stated = [int(m) for m in stated]
        if key in dd and stated != value:
            tensor, shape, meaning = evidence[key]
            raise contradiction(path, key_of + key, dd[key], tensor, shape, meaning)
        dd[key] = value
        sources[key_of + key] = SHAPE
    if dec_in is not None and "embed_dim" in params and params["embed_dim"] != dec_in[1]:  # 2.0's latent width
        raise contradiction(path, "config.audio_vae.model.params.embed_dim", params["embed_dim"],
                            prefix + "decoder.conv_in.conv.weight", dec_in, f"{dec_in[1]} latent channels")  # fmt: skip
    # attention levels: a header names resolutions (level L runs at resolution / 2^L)
    resolution = int(dd.get("resolution", RELEASED_AUDIO_DDCONFIG["resolution"]))
    if "attn_resolutions" in dd:
        stated = {int(r) for r in dd["attn_resolutions"]}
        levels_stated = [lv for lv in range(levels) if resolution // 2**lv in stated]
        if levels_stated != attn_levels:
            key = f"encoder.down.{(attn_levels or levels_stated)[0]}.attn.0.q.weight"
            raise contradiction(path, key_of + "attn_resolutions", dd["attn_resolutions"], prefix + key, t.get(key),
                                f"attention at levels {attn_levels or 'none'}")  # fmt: skip
    else:
        dd["attn_resolutions"] = [resolution // 2**lv for lv in attn_levels]
    sources[key_of + "attn_resolutions"] = SHAPE
    for key, value in RELEASED_AUDIO_DDCONFIG.items():
        sources[key_of + key] = HEADER if key in dd else RELEASED
        dd.setdefault(key, value)
    sources["config.audio_vae.model.params.sampling_rate"] = HEADER if "sampling_rate" in params else RELEASED
    params.setdefault("sampling_rate", RELEASED_AUDIO_RATE)
    pre = h.setdefault("preprocessing", {})
    for group, values in RELEASED_PREPROCESSING.items():
        section = pre.setdefault(group, {})
        for key, value in values.items():
            sources[f"config.audio_vae.preprocessing.{group}.{key}"] = HEADER if key in section else RELEASED
            section.setdefault(key, value)
    return ResolvedConfig(h, sources, None, header is not None)


# --------------------------------------------------------------------------- vocoder
def vocoder_section(config: Mapping[str, Any] | None) -> dict | None:
    """The ``vocoder`` section of a header config, or the config itself when it is one.

    Checked for "itself" first: a 2.3 vocoder section holds a ``vocoder`` key of its own.
    """
    if not isinstance(config, Mapping):
        return None
    if "transformer" not in config and any(k in config for k in ("bwe", "resblock", "upsample_rates")):
        return dict(config)
    if isinstance(config.get("vocoder"), Mapping):
        return dict(config["vocoder"])
    return None


def _generator_shapes(path: str, t: Shapes, g: str, prefix: str) -> tuple[dict, dict]:
    """(derived config keys, evidence per key) of one generator under module prefix ``g``."""
    what = "vocoder"
    pre = _get(t, path, g + "conv_pre.weight", what, prefix)
    post = _get(t, path, g + "conv_post.weight", what, prefix)
    try:
        n_ups = count_indices(t, g + "ups.")
        n_res = count_indices(t, g + "resblocks.")
    except ValueError as err:
        raise CheckpointError(f"{path}: vocoder: {err}") from None
    if n_ups == 0 or n_res % n_ups:
        raise CheckpointError(
            f"{path}: vocoder '{g}': {n_res} residual blocks for {n_ups} upsamplers; expected the same number after "
            "each upsampler."
        )
    per = n_res // n_ups
    kernels = [_get(t, path, f"{g}ups.{i}.weight", what, prefix)[2] for i in range(n_ups)]
    res_kernels = [_get(t, path, f"{g}resblocks.{j}.convs1.0.weight", what, prefix)[2] for j in range(per)]
    n_dil = count_indices(t, f"{g}resblocks.0.convs1.")
    amp = f"{g}resblocks.0.acts1.0.act.alpha" in t
    derived = {
        "upsample_initial_channel": pre[0],
        "upsample_kernel_sizes": kernels,
        "resblock_kernel_sizes": res_kernels,
        "resblock": "AMP1" if amp else "1",
        "use_bias_at_final": g + "conv_post.bias" in t,
        "stereo": post[0] == 2,
    }
    ups_key = f"{g}ups.{n_ups - 1}.weight"
    evidence = {
        "upsample_initial_channel": (g + "conv_pre.weight", pre, f"{pre[0]} channels after conv_pre"),
        "upsample_kernel_sizes": (ups_key, t[ups_key], f"{n_ups} upsamplers with kernels {kernels}"),
        "upsample_rates": (ups_key, t[ups_key], f"{n_ups} upsamplers"),
        "resblock_kernel_sizes": (f"{g}resblocks.{per - 1}.convs1.0.weight", t[f"{g}resblocks.{per - 1}.convs1.0.weight"],
                                  f"{per} residual blocks per upsampler, kernels {res_kernels}"),  # fmt: skip
        "resblock_dilation_sizes": (f"{g}resblocks.0.convs1.{n_dil - 1}.weight",
                                    t.get(f"{g}resblocks.0.convs1.{n_dil - 1}.weight"),
                                    f"{per} blocks of {n_dil} dilated convs"),
        "resblock": (f"{g}resblocks.0.acts1.0.act.alpha", t.get(f"{g}resblocks.0.acts1.0.act.alpha"),
                     "BigVGAN AMP blocks" if amp else "HiFi-GAN blocks (no activations stored)"),
        "use_bias_at_final": (g + "conv_post.bias", t.get(g + "conv_post.bias"),
                              "a bias" if derived["use_bias_at_final"] else "no bias"),
        "stereo": (g + "conv_post.weight", post, f"{post[0]} output channels"),
    }  # fmt: skip
    if amp:
        beta = f"{g}resblocks.0.acts1.0.act.beta"
        derived["activation"] = "snakebeta" if beta in t else "snake"
        evidence["activation"] = (beta, t.get(beta), "SnakeBeta" if beta in t else "Snake (no beta)")
    for i in range(n_ups):  # the channels halve at every upsampler
        shape = t[f"{g}ups.{i}.weight"]
        if tuple(shape[:2]) != (pre[0] // 2**i, pre[0] // 2 ** (i + 1)):
            raise CheckpointError(f"{path}: vocoder '{g}ups.{i}.weight' {list(shape)}: expected the channels to halve "
                                  f"from {pre[0]} at every upsampler.")  # fmt: skip
    derived["_dilations"] = (per, n_dil)
    return derived, {k: (prefix + tensor, shape, meaning) for k, (tensor, shape, meaning) in evidence.items()}


def _resolve_generator(path: str, where: str, header: Mapping[str, Any] | None, t: Shapes, g: str,
                       sources: dict, prefix: str) -> tuple[dict, str | None]:  # fmt: skip
    """One generator's config (header layout) and the release its upsample kernels match."""
    derived, evidence = _generator_shapes(path, t, g, prefix)
    per, n_dil = derived.pop("_dilations")
    h = dict(header) if header is not None else {}
    key_of = f"config.{where}."
    for key, value in derived.items():
        stated = h.get(key)
        if isinstance(stated, (list, tuple)):
            stated = [int(v) for v in stated]
        if key in h and stated != value:
            tensor, shape, meaning = evidence[key]
            raise contradiction(path, key_of + key, h[key], tensor, shape, meaning)
    release = RELEASED_GENERATORS.get(tuple(derived["upsample_kernel_sizes"]))
    cfg = copy.deepcopy(h)
    cfg.update(derived)
    for key in derived:
        sources[key_of + key] = SHAPE
    # what no shape tells: the header's, else the release whose generator has these kernels
    if "upsample_rates" in h:
        if len(h["upsample_rates"]) != len(derived["upsample_kernel_sizes"]):
            tensor, shape, meaning = evidence["upsample_rates"]
            raise contradiction(path, key_of + "upsample_rates", h["upsample_rates"], tensor, shape, meaning)
        sources[key_of + "upsample_rates"] = HEADER
    elif release is not None:
        cfg["upsample_rates"] = list(release["upsample_rates"])
        sources[key_of + "upsample_rates"] = RELEASED
    else:
        raise not_derivable(
            path, "vocoder",
            f"its upsample kernels {derived['upsample_kernel_sizes']} ('{g}ups.*') are no released generator's, so its "
            "upsample strides are unknown",
        )  # fmt: skip
    if "resblock_dilation_sizes" in h:
        dil = h["resblock_dilation_sizes"]
        if len(dil) != per or any(len(d) != n_dil for d in dil):
            tensor, shape, meaning = evidence["resblock_dilation_sizes"]
            raise contradiction(path, key_of + "resblock_dilation_sizes", dil, tensor, shape, meaning)
        sources[key_of + "resblock_dilation_sizes"] = HEADER
    elif n_dil == len(_DILATIONS):
        cfg["resblock_dilation_sizes"] = [list(_DILATIONS) for _ in range(per)]
        sources[key_of + "resblock_dilation_sizes"] = RELEASED
    else:
        raise not_derivable(path, "vocoder", f"its residual blocks have {n_dil} dilated convs, the released ones 3")
    if "use_tanh_at_final" in h:
        sources[key_of + "use_tanh_at_final"] = HEADER
    else:  # ltx-core's default (true) for a header that omits it (2.0); the release's otherwise
        cfg["use_tanh_at_final"] = True if header is not None or release is None else release["use_tanh_at_final"]
        sources[key_of + "use_tanh_at_final"] = RELEASED
    return cfg, (release or {}).get("release")


def resolve_vocoder_config(path: str, header: Mapping[str, Any] | None, t: Shapes, prefix: str = "") -> ResolvedConfig:
    """The ``vocoder`` section to build ``ltx2.vocoder.build_vocoder`` from (see the module docstring).

    ``t``: module key -> shape, one ``vocoder.`` removed (2.0: ``conv_pre.weight`` ...; 2.3:
    ``vocoder.conv_pre.weight``, ``bwe_generator.*``, ``mel_stft.*``); ``prefix``: the file's
    prefix of those keys (for messages).
    """
    sources: dict[str, str] = {}
    bwe = any(k.startswith("bwe_generator.") for k in t)
    h = dict(header) if header is not None else None
    if h is not None and ("bwe" in h) != bwe:
        tensor = prefix + "bwe_generator.conv_pre.weight"
        meaning = "the LTX-2.3 vocoder with bandwidth extension" if bwe else "a single generator (LTX-2.0)"
        raise contradiction(path, "config.vocoder.bwe", "present" if "bwe" in h else "absent", tensor,
                            t.get("bwe_generator.conv_pre.weight"), meaning)  # fmt: skip
    if not bwe:
        cfg, release = _resolve_generator(path, "vocoder", h, t, "", sources, prefix)
        if "output_sampling_rate" in cfg:
            sources["config.vocoder.output_sampling_rate"] = HEADER
        else:  # the 2.0 header leaves it implied: 240 samples per 100 Hz mel frame
            cfg["output_sampling_rate"] = RELEASED_GENERATORS[(16, 15, 8, 4, 4)]["output_sampling_rate"]
            sources["config.vocoder.output_sampling_rate"] = RELEASED
        cfg.setdefault("resblock", "1")
        return ResolvedConfig(cfg, sources, release or "2.0", header is not None)
    base, release = _resolve_generator(path, "vocoder.vocoder", h.get("vocoder") if h else None, t, "vocoder.",
                                       sources, prefix)  # fmt: skip
    ext, _ = _resolve_generator(path, "vocoder.bwe", h.get("bwe") if h else None, t, "bwe_generator.", sources, prefix)
    # the BWE's mel front end: its size from the stored bases, its hop and rates from the header
    mel = _get(t, path, "mel_stft.mel_basis", "vocoder", prefix)
    fwd = _get(t, path, "mel_stft.stft_fn.forward_basis", "vocoder", prefix)
    derived = {"n_fft": fwd[2], "num_mels": mel[0]}
    meanings = {"n_fft": (prefix + "mel_stft.stft_fn.forward_basis", fwd, f"a {fwd[2]}-point STFT"),
                "num_mels": (prefix + "mel_stft.mel_basis", mel, f"{mel[0]} mel bands")}  # fmt: skip
    stated = h.get("bwe", {}) if h else {}
    for key, value in derived.items():
        if key in stated and stated[key] != value:
            tensor, shape, meaning = meanings[key]
            raise contradiction(path, f"config.vocoder.bwe.{key}", stated[key], tensor, shape, meaning)
        ext[key] = value
        sources[f"config.vocoder.bwe.{key}"] = SHAPE
    for key, value in {**RELEASED_BWE, "win_size": derived["n_fft"]}.items():
        sources[f"config.vocoder.bwe.{key}"] = HEADER if key in stated else RELEASED
        ext.setdefault(key, value)
    return ResolvedConfig({"vocoder": base, "bwe": ext}, sources, "2.3", header is not None)


__all__ = [
    "RELEASED_GENERATORS",
    "audio_vae_section",
    "resolve_audio_vae_config",
    "resolve_vocoder_config",
    "vocoder_section",
]
