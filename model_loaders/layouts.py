"""Official checkpoint key layouts: header config -> ``{file key: shape}``, per component.

Pure functions (no file I/O, no weights).  They describe what the single-file LTX-2 bundle
(``ltx-2-19b-dev.safetensors`` and the 2.3 equivalent) holds for each component, with the file's
own key names, so that

* ``tools/make_tiny_checkpoint.py`` can write official-layout files with tiny shapes, and
* loaders can check a file against its config before reading any tensor data.

Key names and how shapes follow from the config were read off Lightricks' ltx-core 1.0.0
modules (``tests/test_tiny_layouts.py`` proves equality against them).  Where ltx-core falls
back to a default for a shape-relevant key that the header lacks, these functions use the same
default, so a layout always equals what ltx-core would build from the same header.  Keys that
only change numerics are not read here at all.

Component prefixes in the file:
  transformer      ``model.diffusion_model.*``           (``ltx2.transformer.LTXAVTransformer``)
  text_connectors  ``model.diffusion_model.{video,audio}_embeddings_connector.*``
  text_projection  ``text_embedding_projection.*``       (Gemma hidden states -> connectors)
  video_vae        ``vae.{encoder,decoder,per_channel_statistics}.*``
  audio_vae        ``audio_vae.{encoder,decoder,per_channel_statistics}.*``
  vocoder          ``vocoder.*`` (2.0 HiFi-GAN) / ``vocoder.{vocoder,bwe_generator,mel_stft}.*`` (2.3)
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from .published_configs import published_config

try:  # see model_loaders/__init__.py for why ltx2 is imported this way
    from ..ltx2.config import RELEASED_NUMERICS, TransformerConfig
    from ..ltx2.transformer import LTXAVTransformer
except ImportError:
    from ltx2.config import RELEASED_NUMERICS, TransformerConfig
    from ltx2.transformer import LTXAVTransformer

Shape = tuple[int, ...]
Layout = dict[str, Shape]

TRANSFORMER_PREFIX = "model.diffusion_model."
GEMMA_HIDDEN_STATES = 49  # Gemma-3-12B: embedding output + 48 layers, all fed to the projection
# ltx-core's width for the audio input projection when the header does not say, as the
# published headers do not: 8 latent channels x 16 mel bins.
LTX_CORE_AUDIO_IN_CHANNELS = 128

# The 2.3 ("V2") text projection is announced by these transformer-config keys (ltx-core picks
# the feature extractor the same way).
TEXT_PROJECTION_V2_KEYS = (
    "caption_proj_before_connector",
    "caption_projection_first_linear",
    "caption_proj_input_norm",
    "caption_projection_second_linear",
)

# Per-channel statistics that the real video VAE files carry but no model reads (diffusers'
# converter drops them too); see video_vae_layout(with_unused_stats=True).
VIDEO_VAE_UNUSED_STATS = ("channel", "mean-of-stds")

# Component names, in file order (the same names as checkpoint.COMPONENT_NAMES).
COMPONENTS = ("transformer", "text_connectors", "text_projection", "video_vae", "audio_vae", "vocoder")


def _require(section: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in section:
        raise ValueError(f"config.{where} lacks {key!r}, which fixes tensor shapes; it is never guessed.")
    return section[key]


def _linear(prefix: str, n_in: int, n_out: int, bias: bool = True) -> Layout:
    out: Layout = {f"{prefix}.weight": (n_out, n_in)}
    if bias:
        out[f"{prefix}.bias"] = (n_out,)
    return out


# ------------------------------------------------------------------------------ transformer
def transformer_layout(config: TransformerConfig, prefix: str = TRANSFORMER_PREFIX) -> Layout:
    """Every transformer tensor (connectors excluded), from our module built on the meta device."""
    model = LTXAVTransformer(config, device=torch.device("meta"))
    return {prefix + k: tuple(v.shape) for k, v in model.state_dict().items()}


def transformer_header_layout(transformer: Mapping[str, Any], prefix: str = TRANSFORMER_PREFIX) -> Layout:
    """The transformer ltx-core builds from a header's ``config.transformer`` (shape keys as stated).

    Keys the published headers lack get ltx-core's values: ``audio_in_channels`` 128 (and
    the numeric settings, which no shape depends on).
    """
    values = {**RELEASED_NUMERICS, "audio_in_channels": LTX_CORE_AUDIO_IN_CHANNELS, **transformer}
    return transformer_layout(TransformerConfig.from_header(values, source="config.transformer"), prefix)


# ------------------------------------------------------------------------------ text path
def _attention(prefix: str, dim: int, heads: int, head_dim: int, gated: bool) -> Layout:
    """Self-attention with biases and QK RMSNorm over the whole inner dim (optional gate)."""
    inner = heads * head_dim
    out: Layout = {f"{prefix}.q_norm.weight": (inner,), f"{prefix}.k_norm.weight": (inner,)}
    for name in ("to_q", "to_k", "to_v"):
        out.update(_linear(f"{prefix}.{name}", dim, inner))
    out.update(_linear(f"{prefix}.to_out.0", inner, dim))
    if gated:  # LTX-2.3: one logit per head
        out.update(_linear(f"{prefix}.to_gate_logits", dim, heads))
    return out


def _connector(prefix: str, heads: int, head_dim: int, layers: int, registers: int, gated: bool) -> Layout:
    """One embeddings connector: ``layers`` x [self-attn, FF x4] at width heads*head_dim."""
    dim = heads * head_dim
    out: Layout = {f"{prefix}.learnable_registers": (registers, dim)} if registers else {}
    for i in range(layers):
        block = f"{prefix}.transformer_1d_blocks.{i}"
        out.update(_attention(f"{block}.attn1", dim, heads, head_dim, gated))
        out.update(_linear(f"{block}.ff.net.0.proj", dim, 4 * dim))
        out.update(_linear(f"{block}.ff.net.2", 4 * dim, dim))
    return out


def text_connectors_layout(transformer: Mapping[str, Any], prefix: str = TRANSFORMER_PREFIX) -> Layout:
    """The video and audio embeddings connectors (``config.transformer`` ``connector_*`` keys).

    The audio connector takes ``audio_connector_*`` and falls back to the ``connector_*``
    values (2.0 headers have only those).  ltx-core builds 128 registers whatever the header
    says; the header of every official file says 128 as well.
    """
    where = "transformer"
    heads = int(_require(transformer, "connector_num_attention_heads", where))
    head_dim = int(_require(transformer, "connector_attention_head_dim", where))
    layers = int(_require(transformer, "connector_num_layers", where))
    registers = int(transformer.get("connector_num_learnable_registers", 128))
    gated = bool(transformer.get("connector_apply_gated_attention", False))
    out = _connector(f"{prefix}video_embeddings_connector", heads, head_dim, layers, registers, gated)
    out.update(
        _connector(
            f"{prefix}audio_embeddings_connector",
            int(transformer.get("audio_connector_num_attention_heads", heads)),
            int(transformer.get("audio_connector_attention_head_dim", head_dim)),
            int(transformer.get("audio_connector_num_layers", layers)),
            registers,
            gated,
        )
    )
    return out


def uses_v2_text_projection(transformer: Mapping[str, Any]) -> bool:
    """True for the 2.3 dual projection (video and audio aggregate embeds, with biases)."""
    return any(k in transformer for k in TEXT_PROJECTION_V2_KEYS)


def text_projection_layout(
    transformer: Mapping[str, Any],
    text_hidden_states: int = GEMMA_HIDDEN_STATES,
    text_hidden_size: int | None = None,
) -> Layout:
    """``text_embedding_projection.*``: all Gemma hidden states, flattened, to the connectors.

    Input width is ``text_hidden_size * text_hidden_states`` (3840 x 49 = 188160 for
    Gemma-3-12B); the hidden size equals ``caption_channels`` in every official header.
    2.0 maps to ``caption_channels`` without bias; 2.3 maps separately to the video and audio
    stream widths, with biases.
    """
    hidden = int(text_hidden_size or _require(transformer, "caption_channels", "transformer"))
    flat = hidden * text_hidden_states
    p = "text_embedding_projection"
    if not uses_v2_text_projection(transformer):
        return _linear(f"{p}.aggregate_embed", flat, hidden, bias=False)
    video = int(transformer["num_attention_heads"]) * int(transformer["attention_head_dim"])
    audio = int(transformer["audio_num_attention_heads"]) * int(transformer["audio_attention_head_dim"])
    return {**_linear(f"{p}.video_aggregate_embed", flat, video), **_linear(f"{p}.audio_aggregate_embed", flat, audio)}


# ------------------------------------------------------------------------------ video VAE
_ENCODER_STRIDES = {
    "compress_time": (2, 1, 1), "compress_space": (1, 2, 2), "compress_all": (2, 2, 2), "compress_all_x_y": (2, 2, 2),
    "compress_time_res": (2, 1, 1), "compress_space_res": (1, 2, 2), "compress_all_res": (2, 2, 2),
}  # fmt: skip
_DECODER_STRIDES = {"compress_time": (2, 1, 1), "compress_space": (1, 2, 2), "compress_all": (2, 2, 2)}


def _conv3d(prefix: str, n_in: int, n_out: int, k: int = 3) -> Layout:
    return {f"{prefix}.weight": (n_out, n_in, k, k, k), f"{prefix}.bias": (n_out,)}


def _group_norm(prefix: str, channels: int, norm: str) -> Layout:
    return {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,)} if norm == "group_norm" else {}


def _time_embedder(prefix: str, dim: int) -> Layout:
    """PixArt timestep embedder: 256 sinusoid channels -> dim -> dim."""
    p = f"{prefix}.timestep_embedder"
    return {**_linear(f"{p}.linear_1", 256, dim), **_linear(f"{p}.linear_2", dim, dim)}


def _resnet3d(prefix: str, n_in: int, n_out: int, norm: str, noise: bool = False, timestep: bool = False) -> Layout:
    """Causal 3D ResNet block: (norm, SiLU, conv) x 2, 1x1x1 shortcut when widths differ."""
    out = {**_group_norm(f"{prefix}.norm1", n_in, norm), **_conv3d(f"{prefix}.conv1.conv", n_in, n_out)}
    out.update({**_group_norm(f"{prefix}.norm2", n_out, norm), **_conv3d(f"{prefix}.conv2.conv", n_out, n_out)})
    if noise:  # ltx-core sizes both noise scales by the input width
        out.update({f"{prefix}.per_channel_scale1": (n_in, 1, 1), f"{prefix}.per_channel_scale2": (n_in, 1, 1)})
    if n_in != n_out:
        out.update(_conv3d(f"{prefix}.conv_shortcut", n_in, n_out, k=1))
        out.update({f"{prefix}.norm3.weight": (n_in,), f"{prefix}.norm3.bias": (n_in,)})  # GroupNorm(1)
    if timestep:
        out[f"{prefix}.scale_shift_table"] = (4, n_in)
    return out


def _block_params(params: Any) -> dict:
    return {"num_layers": params} if isinstance(params, int) else dict(params)


def _encoder_layout(vae: Mapping[str, Any], prefix: str) -> Layout:
    norm = vae.get("norm_layer", "pixel_norm")
    patch = int(vae.get("patch_size", 4))
    ch = int(vae.get("latent_channels", 128))
    latent = ch
    out = _conv3d(f"{prefix}conv_in.conv", int(vae.get("in_channels", 3)) * patch * patch, ch)
    for i, (name, params) in enumerate(vae.get("encoder_blocks", [])):
        p, cfg = f"{prefix}down_blocks.{i}", _block_params(params)
        if name == "res_x":
            for j in range(cfg["num_layers"]):
                out.update(_resnet3d(f"{p}.res_blocks.{j}", ch, ch, norm))
        elif name == "res_x_y":
            n_out = ch * cfg.get("multiplier", 2)
            out.update(_resnet3d(p, ch, n_out, norm))
            ch = n_out
        elif name in ("compress_time", "compress_space", "compress_all", "compress_all_x_y"):
            n_out = ch * cfg.get("multiplier", 2) if name == "compress_all_x_y" else ch
            out.update(_conv3d(f"{p}.conv", ch, n_out))
            ch = n_out
        elif name in ("compress_time_res", "compress_space_res", "compress_all_res"):
            # Space-to-depth: the conv makes out / prod(stride) channels, then folds the stride in.
            n_out = ch * cfg.get("multiplier", 2)
            out.update(_conv3d(f"{p}.conv.conv", ch, n_out // math.prod(_ENCODER_STRIDES[name])))
            ch = n_out
        else:
            raise ValueError(f"config.vae.encoder_blocks: unknown block {name!r}")
    out.update(_group_norm(f"{prefix}conv_norm_out", ch, norm))
    log_var = vae.get("latent_log_var", "uniform")
    n_out = {"per_channel": 2 * latent, "uniform": latent + 1, "constant": latent + 1, "none": latent}[log_var]
    out.update(_conv3d(f"{prefix}conv_out.conv", ch, n_out))
    return out


def _decoder_layout(vae: Mapping[str, Any], prefix: str, timestep: bool) -> Layout:
    norm = vae.get("norm_layer", "pixel_norm")
    patch = int(vae.get("patch_size", 4))
    ch = int(vae.get("decoder_base_channels", 128)) * 8  # three x2 upsamplers undo this
    out = _conv3d(f"{prefix}conv_in.conv", int(vae.get("latent_channels", 128)), ch)
    # The decoder lists blocks from the output side; it runs (and numbers) them reversed.
    for i, (name, params) in enumerate(reversed(vae.get("decoder_blocks", []))):
        p, cfg = f"{prefix}up_blocks.{i}", _block_params(params)
        noise = bool(cfg.get("inject_noise", False))
        if name == "res_x":
            if timestep:
                out.update(_time_embedder(f"{p}.time_embedder", 4 * ch))
            for j in range(cfg["num_layers"]):
                out.update(_resnet3d(f"{p}.res_blocks.{j}", ch, ch, norm, noise, timestep))
        elif name == "res_x_y":
            n_out = ch // cfg.get("multiplier", 2)
            out.update(_resnet3d(p, ch, n_out, norm, noise))
            ch = n_out
        elif name in _DECODER_STRIDES:
            # Depth-to-space: the conv makes prod(stride) * out channels, unfolded into the stride.
            mult = cfg.get("multiplier", 1)
            out.update(_conv3d(f"{p}.conv.conv", ch, math.prod(_DECODER_STRIDES[name]) * ch // mult))
            ch //= mult
        else:
            raise ValueError(f"config.vae.decoder_blocks: unsupported block {name!r}")
    out.update(_group_norm(f"{prefix}conv_norm_out", ch, norm))
    out.update(_conv3d(f"{prefix}conv_out.conv", ch, int(vae.get("out_channels", 3)) * patch * patch))
    if timestep:
        out[f"{prefix}timestep_scale_multiplier"] = ()
        out.update(_time_embedder(f"{prefix}last_time_embedder", 2 * ch))
        out[f"{prefix}last_scale_shift_table"] = (2, ch)
    return out


def video_vae_layout(
    vae: Mapping[str, Any],
    prefix: str = "vae.",
    *,
    timestep_conditioning: bool | None = None,
    with_unused_stats: bool = False,
) -> Layout:
    """``config.vae`` -> encoder, decoder and the shared latent statistics (``[latent_channels]``).

    ``timestep_conditioning``: ``None`` reads the header, where ltx-core's default is True
    (a header without the key gets the timestep-conditioned decoder; the 2.0 and 2.3 files
    state ``false``).  ``with_unused_stats`` adds the two statistics vectors real files carry
    but nothing reads.
    """
    if vae.get("dims", 3) != 3:
        raise ValueError(f"config.vae.dims is {vae.get('dims')!r}; LTX-2 VAEs are 3D (dims 3).")
    if timestep_conditioning is None:
        timestep_conditioning = bool(vae.get("timestep_conditioning", True))
    out = _encoder_layout(vae, f"{prefix}encoder.")
    out.update(_decoder_layout(vae, f"{prefix}decoder.", timestep_conditioning))
    latent = int(vae.get("latent_channels", 128))
    stats = ("std-of-means", "mean-of-means") + (VIDEO_VAE_UNUSED_STATS if with_unused_stats else ())
    out.update({f"{prefix}per_channel_statistics.{name}": (latent,) for name in stats})
    return out


def official_vae_config(version: str) -> dict:
    """``config.vae`` of the official ``version`` files ("2.0" / "2.3"): their published header section."""
    return published_config(version)["vae"]


# ------------------------------------------------------------------------------ audio VAE
def _audio_norm(prefix: str, channels: int, norm: str) -> Layout:
    return {f"{prefix}.weight": (channels,), f"{prefix}.bias": (channels,)} if norm == "group" else {}


def _conv2d(prefix: str, n_in: int, n_out: int, k: int = 3) -> Layout:
    return {f"{prefix}.weight": (n_out, n_in, k, k), f"{prefix}.bias": (n_out,)}


def _resnet2d(prefix: str, n_in: int, n_out: int, norm: str) -> Layout:
    """Causal 2D ResNet block (convs wrapped as ``.conv``), 1x1 ``nin_shortcut`` when widths differ."""
    out = {**_audio_norm(f"{prefix}.norm1", n_in, norm), **_conv2d(f"{prefix}.conv1.conv", n_in, n_out)}
    out.update({**_audio_norm(f"{prefix}.norm2", n_out, norm), **_conv2d(f"{prefix}.conv2.conv", n_out, n_out)})
    if n_in != n_out:
        out.update(_conv2d(f"{prefix}.nin_shortcut.conv", n_in, n_out, k=1))
    return out


def _attn2d(prefix: str, channels: int, norm: str) -> Layout:
    out = _audio_norm(f"{prefix}.norm", channels, norm)
    for name in ("q", "k", "v", "proj_out"):
        out.update(_conv2d(f"{prefix}.{name}", channels, channels, k=1))
    return out


def _mid2d(prefix: str, channels: int, norm: str, attention: bool) -> Layout:
    out = _resnet2d(f"{prefix}.block_1", channels, channels, norm)
    if attention:
        out.update(_attn2d(f"{prefix}.attn_1", channels, norm))
    out.update(_resnet2d(f"{prefix}.block_2", channels, channels, norm))
    return out


def audio_vae_layout(audio_vae: Mapping[str, Any], prefix: str = "audio_vae.") -> Layout:
    """``config.audio_vae`` (``model.params.ddconfig``) -> encoder, decoder, statistics.

    Mel spectrograms ``(B, 2, T, mel)`` go through ``len(ch_mult)`` levels (a stride-2
    downsample between levels) to ``z_channels`` latents.  The statistics vector has ``ch``
    entries: it normalises the patchified ``z_channels * mel / 4`` features, so a valid config
    keeps ``ch == z_channels * mel_bins / 4``.
    """
    dd = audio_vae.get("model", {}).get("params", {}).get("ddconfig", {})
    ch = int(dd.get("ch", 128))
    mult = tuple(int(m) for m in dd.get("ch_mult", (1, 2, 4)))
    blocks = int(dd.get("num_res_blocks", 2))
    norm = dd.get("norm_type", "pixel")
    attn_at = set(dd.get("attn_resolutions", {8, 16, 32}))  # ltx-core's default when absent
    mid_attn = bool(dd.get("mid_block_add_attention", True))
    resolution = int(dd.get("resolution", 256))
    z = int(dd.get("z_channels", 8))

    enc = f"{prefix}encoder."
    out = _conv2d(f"{enc}conv_in.conv", int(dd.get("in_channels", 2)), ch)
    res = resolution
    for level, m in enumerate(mult):
        # ltx-core restarts each level at ch x the previous level's multiplier (the same width
        # as the last block's output, unless num_res_blocks is 0)
        n_in, n_out = ch * (1, *mult)[level], ch * m
        for j in range(blocks):
            out.update(_resnet2d(f"{enc}down.{level}.block.{j}", n_in, n_out, norm))
            n_in = n_out
            if res in attn_at:
                out.update(_attn2d(f"{enc}down.{level}.attn.{j}", n_in, norm))
        if level != len(mult) - 1:
            out.update(_conv2d(f"{enc}down.{level}.downsample.conv", n_in, n_in))  # a plain Conv2d
            res //= 2
    out.update(_mid2d(f"{enc}mid", n_in, norm, mid_attn))
    out.update(_audio_norm(f"{enc}norm_out", n_in, norm))
    out.update(_conv2d(f"{enc}conv_out.conv", n_in, 2 * z if dd.get("double_z", True) else z))

    dec = f"{prefix}decoder."
    n_in = ch * mult[-1]
    out.update(_conv2d(f"{dec}conv_in.conv", z, n_in))
    out.update(_mid2d(f"{dec}mid", n_in, norm, mid_attn))
    res = resolution // 2 ** (len(mult) - 1)
    for level in reversed(range(len(mult))):
        n_out = ch * mult[level]
        for j in range(blocks + 1):
            out.update(_resnet2d(f"{dec}up.{level}.block.{j}", n_in, n_out, norm))
            n_in = n_out
            if res in attn_at:
                out.update(_attn2d(f"{dec}up.{level}.attn.{j}", n_in, norm))
        if level != 0:
            out.update(_conv2d(f"{dec}up.{level}.upsample.conv.conv", n_in, n_in))
            res *= 2
    out.update(_audio_norm(f"{dec}norm_out", n_in, norm))
    out.update(_conv2d(f"{dec}conv_out.conv", n_in, int(dd.get("out_ch", 2))))
    out.update({f"{prefix}per_channel_statistics.{n}": (ch,) for n in ("std-of-means", "mean-of-means")})
    return out


# ------------------------------------------------------------------------------ vocoder
VOCODER_IN_CHANNELS = 128  # stereo x 64 mel bins, fixed in every official vocoder
_AA_FILTER = (1, 1, 12)  # anti-aliasing up/down-sampling kernels of BigVGAN-v2 activations


def _conv1d(prefix: str, n_in: int, n_out: int, k: int, bias: bool = True) -> Layout:
    out: Layout = {f"{prefix}.weight": (n_out, n_in, k)}
    if bias:
        out[f"{prefix}.bias"] = (n_out,)
    return out


def _aa_activation(prefix: str, channels: int, snake_beta: bool) -> Layout:
    """Anti-aliased Snake(Beta): upsample x2 -> activation -> low-pass downsample x2."""
    out: Layout = {f"{prefix}.act.alpha": (channels,)}
    if snake_beta:
        out[f"{prefix}.act.beta"] = (channels,)
    out.update({f"{prefix}.upsample.filter": _AA_FILTER, f"{prefix}.downsample.lowpass.filter": _AA_FILTER})
    return out


def _generator(cfg: Mapping[str, Any], prefix: str) -> Layout:
    """HiFi-GAN ("1") or BigVGAN-v2 ("AMP1") generator: mel (128 ch) -> 2-channel waveform."""
    kernels = list(cfg.get("resblock_kernel_sizes", [3, 7, 11]))
    rates = list(cfg.get("upsample_rates", [6, 5, 2, 2, 2]))
    up_kernels = list(cfg.get("upsample_kernel_sizes", [16, 15, 8, 4, 4]))
    c0 = int(cfg.get("upsample_initial_channel", 1024))
    resblock = cfg.get("resblock", "1")
    amp = resblock == "AMP1"  # ltx-core builds AMP blocks for anything but "1"
    snake_beta = cfg.get("activation", "snake") == "snakebeta"
    if len(rates) != len(up_kernels):
        raise ValueError("config.vocoder: upsample_rates and upsample_kernel_sizes differ in length")
    out = _conv1d(f"{prefix}conv_pre", VOCODER_IN_CHANNELS, c0, 7)
    for i, k in enumerate(up_kernels):
        n_in, n_out = c0 // 2**i, c0 // 2 ** (i + 1)
        out.update({f"{prefix}ups.{i}.weight": (n_in, n_out, k), f"{prefix}ups.{i}.bias": (n_out,)})  # transposed conv
        for j, kernel in enumerate(kernels):
            p = f"{prefix}resblocks.{i * len(kernels) + j}"
            for group in ("convs1", "convs2"):
                for m in range(3):
                    out.update(_conv1d(f"{p}.{group}.{m}", n_out, n_out, kernel))
            if not amp:
                continue
            for group in ("acts1", "acts2"):
                for m in range(3):
                    out.update(_aa_activation(f"{p}.{group}.{m}", n_out, snake_beta))
    final = c0 // 2 ** len(rates)
    if amp:
        out.update(_aa_activation(f"{prefix}act_post", final, snake_beta=True))  # always SnakeBeta
    out.update(_conv1d(f"{prefix}conv_post", final, 2, 7, bias=bool(cfg.get("use_bias_at_final", True))))
    return out


def is_bwe_vocoder(vocoder: Mapping[str, Any]) -> bool:
    """2.3 vocoders nest ``vocoder`` and ``bwe`` (bandwidth extension to 48 kHz) sections."""
    return "bwe" in vocoder


def vocoder_layout(vocoder: Mapping[str, Any], prefix: str = "vocoder.") -> Layout:
    """``config.vocoder`` -> 2.0: one HiFi-GAN; 2.3: BigVGAN-v2 + BWE generator + mel STFT bases."""
    if not is_bwe_vocoder(vocoder):
        return _generator(vocoder, prefix)
    bwe = vocoder["bwe"]
    out = _generator(vocoder.get("vocoder", {}), f"{prefix}vocoder.")
    out.update(_generator(bwe, f"{prefix}bwe_generator."))
    n_fft = int(_require(bwe, "n_fft", "vocoder.bwe"))
    freqs = n_fft // 2 + 1
    stft = f"{prefix}mel_stft."
    out[f"{stft}mel_basis"] = (int(_require(bwe, "num_mels", "vocoder.bwe")), freqs)
    out[f"{stft}stft_fn.forward_basis"] = (2 * freqs, 1, n_fft)  # DFT rows (re, im) x window
    out[f"{stft}stft_fn.inverse_basis"] = (2 * freqs, 1, n_fft)
    return out


# ------------------------------------------------------------------------------ all of it
def bundle_layout(
    config: Mapping[str, Any],
    components: tuple[str, ...] = COMPONENTS,
    *,
    text_hidden_states: int = GEMMA_HIDDEN_STATES,
    with_unused_stats: bool = True,
) -> dict[str, Layout]:
    """Per component, the keys of a single-file bundle described by the header ``config``."""
    t = config.get("transformer", {})
    builders = {
        "transformer": lambda: transformer_header_layout(t),
        "text_connectors": lambda: text_connectors_layout(t),
        "text_projection": lambda: text_projection_layout(t, text_hidden_states),
        "video_vae": lambda: video_vae_layout(config.get("vae", {}), with_unused_stats=with_unused_stats),
        "audio_vae": lambda: audio_vae_layout(config.get("audio_vae", {})),
        "vocoder": lambda: vocoder_layout(config.get("vocoder", {})),
    }
    return {name: builders[name]() for name in components}
