"""LTX-2's audio VAE: stereo log-mel spectrograms <-> (B, 8, T, 16) latents.

Mel spectrograms are images (B, 2, T_mel, 64) with time as the height axis.  The encoder is a
small convolutional VAE encoder whose 3x3 convolutions are *causal in time* (padded with two
past rows, none from the future; frequency is padded on both sides), with stride-2
downsamples between levels, so 4 k + 1 mel frames give k + 1 latent frames; only the mean of
the posterior is kept, then every latent frame's 8 x 16 = 128 features are normalised with
the per-channel statistics stored in the checkpoint.  The decoder mirrors it (nearest x2
upsampling + causal conv, dropping the first row so 2 n + 1 rows come from n + 1) and
returns exactly ``4 T - 3`` mel frames.  100 mel frames per second at 16 kHz / hop 160 make
25 latent frames per second.

Key layout (``model_loaders.layouts.audio_vae_layout`` without the ``audio_vae.`` prefix):
``encoder.*``, ``decoder.*`` and one shared ``per_channel_statistics.{mean-of-means,std-of-means}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .audio_features import MelConfig
from .ops import resolve

LATENT_DOWNSAMPLE = 4  # mel frames per latent frame (two stride-2 levels; ltx-core hard-codes it)
_CAUSAL_AXES = ("height", "width", "width-compatibility", None)


@dataclass(frozen=True)
class AudioVAEConfig:
    """``audio_vae.model.params.ddconfig`` (+ sampling rate / hop), ltx-core's defaults when absent."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: frozenset = field(default_factory=lambda: frozenset({8, 16, 32}))
    resolution: int = 256
    in_channels: int = 2
    out_ch: int = 2
    z_channels: int = 8
    double_z: bool = True
    mel_bins: int | None = 64
    norm_type: str = "pixel"
    causality_axis: str | None = "height"
    mid_block_add_attention: bool = True
    sample_rate: int = 16000
    hop_length: int = 160

    @classmethod
    def from_header(cls, section: Mapping[str, Any]) -> "AudioVAEConfig":
        params = section.get("model", {}).get("params", {})
        dd = params.get("ddconfig", {})
        pre = section.get("preprocessing", {})
        mel_bins = dd.get("mel_bins") or pre.get("mel", {}).get("n_mel_channels") or section.get("variables", {}).get("mel_bins")
        cfg = cls(
            ch=int(dd.get("ch", 128)),
            ch_mult=tuple(int(m) for m in dd.get("ch_mult", (1, 2, 4))),
            num_res_blocks=int(dd.get("num_res_blocks", 2)),
            attn_resolutions=frozenset(int(r) for r in dd.get("attn_resolutions", (8, 16, 32))),
            resolution=int(dd.get("resolution", 256)),
            in_channels=int(dd.get("in_channels", 2)),
            out_ch=int(dd.get("out_ch", 2)),
            z_channels=int(dd.get("z_channels", 8)),
            double_z=bool(dd.get("double_z", True)),
            mel_bins=None if mel_bins is None else int(mel_bins),
            norm_type=str(dd.get("norm_type", "pixel")),
            causality_axis=dd.get("causality_axis", "height"),
            mid_block_add_attention=bool(dd.get("mid_block_add_attention", True)),
            sample_rate=int(params.get("sampling_rate", 16000)),
            hop_length=int(pre.get("stft", {}).get("hop_length", 160)),
        )
        if cfg.norm_type not in ("pixel", "group"):
            raise ValueError(f"config.audio_vae: norm_type must be 'pixel' or 'group', found {cfg.norm_type!r}")
        if cfg.causality_axis not in _CAUSAL_AXES:
            raise ValueError(f"config.audio_vae: causality_axis must be one of {_CAUSAL_AXES}, found {cfg.causality_axis!r}")
        if not dd.get("resamp_with_conv", True):
            raise ValueError("config.audio_vae: resamp_with_conv false (pooling downsamples) is not supported")
        if cfg.causality_axis is not None and cfg.norm_type == "group":
            raise ValueError("config.audio_vae: causal convolutions with GroupNorm are not supported (ltx-core refuses them)")
        return cfg

    @property
    def latent_channels(self) -> int:
        # ltx-core keeps the first half of conv_out's channels, also when double_z is off
        return (2 * self.z_channels if self.double_z else self.z_channels) // 2

    @property
    def latents_per_second(self) -> float:
        return self.sample_rate / self.hop_length / LATENT_DOWNSAMPLE


# ------------------------------------------------------------------------------ blocks
class PixelNorm(nn.Module):
    """RMS normalisation over the channel axis (eps 1e-6), no weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + 1e-6)


def _norm(channels: int, kind: str, ops, dtype, device) -> nn.Module:
    """PixelNorm, or GroupNorm(32 groups, eps 1e-6) with affine weights (non-causal configs only)."""
    if kind == "group":
        return ops.GroupNorm(32, channels, eps=1e-6, affine=True, dtype=dtype, device=device)
    return PixelNorm()


class CausalConv2d(nn.Module):
    """3x3 (or 1x1) convolution padded by hand: all of the kernel's reach on the causal side.

    (B, C, T, F) -> (B, C', T, F).  Axis "height" = time (dim 2) sees only the past.
    """

    def __init__(self, n_in: int, n_out: int, kernel: int, axis: str | None, ops, dtype, device) -> None:
        super().__init__()
        p = kernel - 1
        if axis == "height":
            self.padding = (p // 2, p - p // 2, p, 0)  # (F left, F right, T past, T future)
        elif axis in ("width", "width-compatibility"):
            self.padding = (p, 0, p // 2, p - p // 2)
        else:
            self.padding = (p // 2, p - p // 2, p // 2, p - p // 2)
        self.conv = ops.Conv2d(n_in, n_out, kernel, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.padding))


class ResnetBlock(nn.Module):
    """norm -> SiLU -> conv -> norm -> SiLU -> conv, plus a (1x1 when widths differ) shortcut."""

    def __init__(self, n_in: int, n_out: int, cfg: AudioVAEConfig, ops, dtype, device) -> None:
        super().__init__()
        axis, kind = cfg.causality_axis, cfg.norm_type
        self.norm1 = _norm(n_in, kind, ops, dtype, device)
        self.conv1 = CausalConv2d(n_in, n_out, 3, axis, ops, dtype, device)
        self.norm2 = _norm(n_out, kind, ops, dtype, device)
        self.conv2 = CausalConv2d(n_out, n_out, 3, axis, ops, dtype, device)
        self.nin_shortcut = CausalConv2d(n_in, n_out, 1, axis, ops, dtype, device) if n_in != n_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))  # dropout is 0 in every config (eval anyway)
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all T x F positions (1x1 conv projections)."""

    def __init__(self, channels: int, cfg: AudioVAEConfig, ops, dtype, device) -> None:
        super().__init__()
        self.norm = _norm(channels, cfg.norm_type, ops, dtype, device)
        for name in ("q", "k", "v", "proj_out"):
            setattr(self, name, ops.Conv2d(channels, channels, 1, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, f = x.shape
        h = self.norm(x)
        q, k, v = (m(h).reshape(b, c, t * f) for m in (self.q, self.k, self.v))
        w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * c**-0.5, dim=2)  # (B, query, key)
        out = torch.bmm(v, w.transpose(1, 2)).reshape(b, c, t, f)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 3x3 conv; pads 2 past time rows (causal) and one frequency column on the right."""

    _PADS = {"height": (0, 1, 2, 0), "width": (2, 0, 0, 1), "width-compatibility": (1, 0, 0, 1), None: (0, 1, 0, 1)}

    def __init__(self, channels: int, axis: str | None, ops, dtype, device) -> None:
        super().__init__()
        self.pad = self._PADS[axis]
        self.conv = ops.Conv2d(channels, channels, 3, stride=2, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class Upsample(nn.Module):
    """Nearest x2 then causal conv; the first row (column) is dropped so n -> 2 n - 1 on the causal axis."""

    def __init__(self, channels: int, axis: str | None, ops, dtype, device) -> None:
        super().__init__()
        self.axis = axis
        self.conv = CausalConv2d(channels, channels, 3, axis, ops, dtype, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        # the first two outputs both see only input row 0; dropping one undoes the encoder's padding
        if self.axis == "height":
            return x[:, :, 1:, :]
        if self.axis == "width":
            return x[:, :, :, 1:]
        return x


def _mid(channels: int, cfg: AudioVAEConfig, ops, dtype, device) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, cfg, ops, dtype, device)
    mid.attn_1 = AttnBlock(channels, cfg, ops, dtype, device) if cfg.mid_block_add_attention else nn.Identity()
    mid.block_2 = ResnetBlock(channels, channels, cfg, ops, dtype, device)
    return mid


def _run_mid(mid: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(x)))


def _level(blocks: nn.ModuleList, attns: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for i, block in enumerate(blocks):
        x = block(x)
        if len(attns):
            x = attns[i](x)
    return x


class AudioEncoder(nn.Module):
    """(B, in_channels, T_mel, mel_bins) -> raw posterior (B, 2 z, T_lat, mel_bins / 4)."""

    def __init__(self, cfg: AudioVAEConfig, ops, dtype, device) -> None:
        super().__init__()
        args = (ops, dtype, device)
        self.conv_in = CausalConv2d(cfg.in_channels, cfg.ch, 3, cfg.causality_axis, *args)
        self.down = nn.ModuleList()
        mult_in, res = (1, *cfg.ch_mult), cfg.resolution
        n_in = cfg.ch
        for level, m in enumerate(cfg.ch_mult):
            stage = nn.Module()
            stage.block, stage.attn = nn.ModuleList(), nn.ModuleList()
            n_in, n_out = cfg.ch * mult_in[level], cfg.ch * m  # each level restarts at ch x previous multiplier
            for _ in range(cfg.num_res_blocks):
                stage.block.append(ResnetBlock(n_in, n_out, cfg, *args))
                n_in = n_out
                if res in cfg.attn_resolutions:
                    stage.attn.append(AttnBlock(n_in, cfg, *args))
            if level != len(cfg.ch_mult) - 1:
                stage.downsample = Downsample(n_in, cfg.causality_axis, *args)
                res //= 2
            self.down.append(stage)
        self.mid = _mid(n_in, cfg, *args)
        self.norm_out = _norm(n_in, cfg.norm_type, *args)
        self.conv_out = CausalConv2d(n_in, 2 * cfg.z_channels if cfg.double_z else cfg.z_channels, 3, cfg.causality_axis, *args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for stage in self.down:
            x = _level(stage.block, stage.attn, x)
            if hasattr(stage, "downsample"):
                x = stage.downsample(x)
        x = _run_mid(self.mid, x)
        return self.conv_out(F.silu(self.norm_out(x)))


class AudioDecoder(nn.Module):
    """(B, z, T_lat, F_lat) un-normalised latent -> (B, out_ch, ~4 T_lat, ~4 F_lat) mel (uncropped)."""

    def __init__(self, cfg: AudioVAEConfig, ops, dtype, device) -> None:
        super().__init__()
        args = (ops, dtype, device)
        n_in = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = CausalConv2d(cfg.z_channels, n_in, 3, cfg.causality_axis, *args)
        self.mid = _mid(n_in, cfg, *args)
        stages: list[nn.Module] = []
        res = cfg.resolution // 2 ** (len(cfg.ch_mult) - 1)
        for level in reversed(range(len(cfg.ch_mult))):
            stage = nn.Module()
            stage.block, stage.attn = nn.ModuleList(), nn.ModuleList()
            n_out = cfg.ch * cfg.ch_mult[level]
            for _ in range(cfg.num_res_blocks + 1):
                stage.block.append(ResnetBlock(n_in, n_out, cfg, *args))
                n_in = n_out
                if res in cfg.attn_resolutions:
                    stage.attn.append(AttnBlock(n_in, cfg, *args))
            if level != 0:
                stage.upsample = Upsample(n_in, cfg.causality_axis, *args)
                res *= 2
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)  # indexed by level; run from the last level down
        self.norm_out = _norm(n_in, cfg.norm_type, *args)
        self.conv_out = CausalConv2d(n_in, cfg.out_ch, 3, cfg.causality_axis, *args)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = _run_mid(self.mid, self.conv_in(z))
        for stage in reversed(self.up):
            x = _level(stage.block, stage.attn, x)
            if hasattr(stage, "upsample"):
                x = stage.upsample(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class PerChannelStatistics(nn.Module):
    """Mean / std of every latent feature (channel x latent mel bin), from the checkpoint."""

    def __init__(self, features: int, dtype, device) -> None:
        super().__init__()
        self.register_buffer("std-of-means", torch.empty(features, dtype=dtype, device=device))
        self.register_buffer("mean-of-means", torch.empty(features, dtype=dtype, device=device))

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.get_buffer("mean-of-means").to(x), self.get_buffer("std-of-means").to(x)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, features)
        mean, std = self._stats(x)
        return (x - mean) / std

    def un_normalize(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x * std + mean


class AudioVAE(nn.Module):
    """Encoder, decoder and the shared latent statistics of LTX-2's audio VAE.

    Args:
        config: the header's ``audio_vae`` section.
        operations: layer namespace (``ltx2.ops``); plain torch when None.
    """

    def __init__(self, config: Mapping[str, Any], *, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        ops = resolve(operations)
        self.config = AudioVAEConfig.from_header(config)
        self.mel_config = MelConfig.from_audio_vae_config(config)  # the front end encode() expects
        self.encoder = AudioEncoder(self.config, ops, dtype, device)
        self.decoder = AudioDecoder(self.config, ops, dtype, device)
        self.per_channel_statistics = PerChannelStatistics(self.config.ch, dtype, device)
        self.dtype = dtype or torch.get_default_dtype()

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def _features(self, channels: int, mel: int, what: str) -> None:
        n = self.config.ch
        if channels * mel != n:
            raise ValueError(
                f"AudioVAE.{what}: the latent statistics have {n} entries (config ch), but the latent has "
                f"{channels} channels x {mel} mel bins = {channels * mel} features; the header config is inconsistent"
            )

    def encode(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, T_mel, mel_bins) log-mel -> normalised latent (B, z, T_lat, mel_bins / 4).

        With causal convolutions ``T_lat = (T_mel - 1) // 4 + 1``.
        """
        cfg = self.config
        if mel.dim() != 4 or mel.shape[1] != cfg.in_channels or (cfg.mel_bins and mel.shape[3] != cfg.mel_bins):
            raise ValueError(
                f"AudioVAE.encode: expected a log-mel spectrogram (batch, {cfg.in_channels}, frames, "
                f"{cfg.mel_bins or 'mel_bins'}), found {tuple(mel.shape)}. Compute it with "
                "ltx2.audio_features.log_mel_spectrogram (or ltx2.audio_pipeline.encode_audio from a waveform)."
            )
        if mel.shape[0] == 0 or mel.shape[2] == 0:
            raise ValueError(f"AudioVAE.encode: the spectrogram is empty {tuple(mel.shape)}")
        raw = self.encoder(mel)
        means = raw[:, : raw.shape[1] - raw.shape[1] // 2]  # torch.chunk(2)[0]: the posterior mean
        b, c, t, f = means.shape
        self._features(c, f, "encode")
        flat = means.permute(0, 2, 1, 3).reshape(b, t, c * f)  # (B, T, c f): one token per latent frame
        flat = self.per_channel_statistics.normalize(flat)
        return flat.reshape(b, t, c, f).permute(0, 2, 1, 3)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Normalised latent (B, z, T_lat, F_lat) -> log-mel (B, out_ch, 4 T_lat - 3, mel_bins)."""
        cfg = self.config
        if latent.dim() != 4 or latent.shape[1] != cfg.z_channels:
            raise ValueError(
                f"AudioVAE.decode: expected an audio latent (batch, {cfg.z_channels}, frames, "
                f"{cfg.ch // cfg.z_channels}), found {tuple(latent.shape)}. Is this a video latent, or a latent "
                "from another model?"
            )
        b, c, t, f = latent.shape
        if b == 0 or t == 0:
            raise ValueError(f"AudioVAE.decode: the latent is empty {tuple(latent.shape)}")
        self._features(c, f, "decode")
        flat = latent.permute(0, 2, 1, 3).reshape(b, t, c * f)
        z = self.per_channel_statistics.un_normalize(flat).reshape(b, t, c, f).permute(0, 2, 1, 3)
        mel = self.decoder(z)
        frames = t * LATENT_DOWNSAMPLE
        if cfg.causality_axis is not None:
            frames = max(frames - (LATENT_DOWNSAMPLE - 1), 1)
        bins = cfg.mel_bins if cfg.mel_bins is not None else f
        mel = mel[:, : cfg.out_ch, :frames, :bins]  # crop, then zero-pad what is short (ltx-core's rule)
        short_t, short_f = frames - mel.shape[2], bins - mel.shape[3]
        if short_t > 0 or short_f > 0:
            mel = F.pad(mel, (0, max(short_f, 0), 0, max(short_t, 0)))
        return mel

    def mel_frames(self, latent_frames: int) -> int:
        """Mel frames that ``decode`` returns for ``latent_frames`` latent frames."""
        frames = latent_frames * LATENT_DOWNSAMPLE
        return max(frames - (LATENT_DOWNSAMPLE - 1), 1) if self.config.causality_axis is not None else frames


__all__ = ["LATENT_DOWNSAMPLE", "AudioDecoder", "AudioEncoder", "AudioVAE", "AudioVAEConfig"]
