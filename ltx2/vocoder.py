"""LTX-2 vocoders: stereo log-mel (B, 2, T, 64) at 100 frames/s -> waveform (B, 2, N).

* LTX-2.0: a HiFi-GAN generator ("resblock 1"): conv_pre 128 -> C, five transposed-conv
  upsamplers (x6 x5 x2 x2 x2 = x240 -> 24 kHz), after each the mean of three multi-receptive-
  field residual blocks, LeakyReLU, conv_post -> 2 channels, tanh.
* LTX-2.3: a BigVGAN-v2 generator ("AMP1", anti-aliased SnakeBeta; x160 -> 16 kHz) followed by
  bandwidth extension to 48 kHz: a causal log-mel of the 16 kHz output (checkpoint-stored STFT
  bases) drives a second BigVGAN-v2 generator that predicts a residual, added to a x3
  sinc-interpolated copy of the 16 kHz signal, then clipped to [-1, 1].

``build_vocoder(config)`` picks the kind from the header's ``vocoder`` section (a nested
``bwe`` section means 2.3).  State-dict keys = file keys after one ``vocoder.`` is stripped
(``conv_pre.weight`` for 2.0; ``vocoder.conv_pre.weight``, ``bwe_generator.*``, ``mel_stft.*``
for 2.3).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .ops import resolve
from .vocoder_bigvgan import AASnake, AMPBlock1, CausalMelSTFT, SincUpsampler

LRELU_SLOPE = 0.1  # HiFi-GAN's slope inside the generator (the final LeakyReLU uses torch's 0.01)
MEL_CHANNELS = 128  # conv_pre input: 2 stereo channels x 64 mel bins in every official vocoder


def _require(cfg: Mapping[str, Any], key: str, expected: Any, where: str) -> None:
    if cfg.get(key) != expected:
        raise ValueError(
            f"config.{where}: {key} must be {expected!r} for this vocoder, found {cfg.get(key)!r}. The header "
            "describes a vocoder OpenLTX does not implement; use the official LTX-2 file."
        )


class ResBlock1(nn.Module):
    """HiFi-GAN residual block: 3 x (LeakyReLU -> dilated conv -> LeakyReLU -> conv) + skip."""

    def __init__(self, channels: int, kernel: int, dilations, ops, dtype, device) -> None:
        super().__init__()

        def conv(d: int) -> nn.Module:
            return ops.Conv1d(channels, channels, kernel, 1, dilation=d, padding="same", dtype=dtype, device=device)

        self.convs1 = nn.ModuleList(conv(d) for d in dilations)
        self.convs2 = nn.ModuleList(conv(1) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """HiFi-GAN ("1") or BigVGAN-v2 ("AMP1") generator: (B, 2, T, 64) mel -> (B, 2, T x prod(rates)).

    Args:
        cfg: one generator's config (``resblock``, ``upsample_rates``, ...; ltx-core's defaults).
        final_activation: tanh (``use_tanh_at_final``) or clamp to [-1, 1] at the end; the BWE
            generator predicts an unbounded residual and has none.
    """

    def __init__(self, cfg: Mapping[str, Any], sample_rate: int, *, final_activation: bool, ops, dtype, device) -> None:
        super().__init__()
        kernels = list(cfg.get("resblock_kernel_sizes", [3, 7, 11]))
        rates = list(cfg.get("upsample_rates", [6, 5, 2, 2, 2]))
        up_kernels = list(cfg.get("upsample_kernel_sizes", [16, 15, 8, 4, 4]))
        dilations = list(cfg.get("resblock_dilation_sizes", [[1, 3, 5]] * 3))
        c0 = int(cfg.get("upsample_initial_channel", 1024))
        if len(rates) != len(up_kernels) or len(kernels) != len(dilations):
            raise ValueError(
                "config.vocoder: upsample_rates / upsample_kernel_sizes and resblock_kernel_sizes / "
                f"resblock_dilation_sizes must pair up, found {rates} / {up_kernels} and {kernels} / {dilations}"
            )
        if any(not 1 <= int(r) <= int(k) for r, k in zip(rates, up_kernels)):  # a stride past its kernel leaves gaps
            raise ValueError(
                f"config.vocoder: every upsample rate must be between 1 and its kernel size, found rates {rates} for "
                f"kernels {up_kernels} (from the tensors); the header does not fit these weights"
            )
        self.sample_rate = int(sample_rate)
        self.hop = 1
        for r in rates:
            self.hop *= int(r)  # output samples per mel frame
        self.amp = cfg.get("resblock", "1") == "AMP1"
        self.final_activation = final_activation
        self.use_tanh = bool(cfg.get("use_tanh_at_final", True))
        self.num_kernels = len(kernels)
        snake_beta = cfg.get("activation", "snake") == "snakebeta"

        self.conv_pre = ops.Conv1d(MEL_CHANNELS, c0, 7, 1, padding=3, dtype=dtype, device=device)
        self.ups = nn.ModuleList(
            ops.ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, r, padding=(k - r) // 2, dtype=dtype, device=device)
            for i, (r, k) in enumerate(zip(rates, up_kernels))
        )
        self.resblocks = nn.ModuleList()
        for i in range(len(rates)):
            ch = c0 // 2 ** (i + 1)
            for k, d in zip(kernels, dilations):
                if self.amp:
                    self.resblocks.append(AMPBlock1(ch, k, d, snake_beta, ops, dtype, device))
                else:
                    self.resblocks.append(ResBlock1(ch, k, d, ops, dtype, device))
        final = c0 // 2 ** len(rates)
        # BigVGAN's last activation is always SnakeBeta; HiFi-GAN's a LeakyReLU of slope 0.01
        self.act_post = AASnake(final, True, dtype, device) if self.amp else nn.LeakyReLU()
        bias = bool(cfg.get("use_bias_at_final", True))
        self.conv_post = ops.Conv1d(final, 2, 7, 1, padding=3, bias=bias, dtype=dtype, device=device)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 4 or mel.shape[1] * mel.shape[3] != MEL_CHANNELS or mel.shape[1] != 2:
            raise ValueError(
                f"vocoder: expected a stereo log-mel spectrogram (batch, 2, frames, {MEL_CHANNELS // 2}), found "
                f"{tuple(mel.shape)}. Decode the audio latent with the audio VAE first."
            )
        b, s, t, m = mel.shape
        x = mel.transpose(2, 3).reshape(b, s * m, t)  # channel = stereo side x 64 + mel bin
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            if not self.amp:
                x = F.leaky_relu(x, LRELU_SLOPE)
            x = up(x)
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            # the multi-receptive-field fusion: the mean of the blocks, each on the same input
            x = torch.stack([block(x) for block in blocks], dim=0).mean(dim=0)
        x = self.conv_post(self.act_post(x))
        if self.final_activation:
            x = torch.tanh(x) if self.use_tanh else torch.clamp(x, -1, 1)
        return x


class VocoderWithBWE(nn.Module):
    """LTX-2.3: BigVGAN-v2 at ``input_sampling_rate`` + bandwidth extension to ``output_sampling_rate``."""

    def __init__(self, cfg: Mapping[str, Any], *, ops, dtype, device) -> None:
        super().__init__()
        base, bwe = cfg.get("vocoder", {}), cfg["bwe"]
        for section, where in ((base, "vocoder.vocoder"), (bwe, "vocoder.bwe")):
            _require(section, "resblock", "AMP1", where)
            _require(section, "stereo", True, where)
            _require(section, "activation", "snakebeta", where)
        try:
            rate_in, rate_out = int(bwe["input_sampling_rate"]), int(bwe["output_sampling_rate"])
            hop, n_fft, n_mels = int(bwe["hop_length"]), int(bwe["n_fft"]), int(bwe["num_mels"])
        except KeyError as err:
            raise ValueError(f"config.vocoder.bwe: missing {err.args[0]!r}; use the official LTX-2.3 file") from None
        if rate_out % rate_in:
            raise ValueError(f"config.vocoder.bwe: output rate {rate_out} is not a multiple of input rate {rate_in}")
        self.vocoder = Generator(base, rate_in, final_activation=True, ops=ops, dtype=dtype, device=device)
        self.bwe_generator = Generator(bwe, rate_out, final_activation=False, ops=ops, dtype=dtype, device=device)
        # ltx-core pads by n_fft - hop (window length = n_fft; the window itself is baked into the bases)
        self.mel_stft = CausalMelSTFT(n_fft, hop, n_mels, dtype, device)
        self.resampler = SincUpsampler(rate_out // rate_in)
        self.input_sampling_rate, self.sample_rate, self.hop_length = rate_in, rate_out, hop

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.vocoder(mel)  # (B, 2, L) at the input rate
        b, c, length = x.shape
        out_len = length * self.sample_rate // self.input_sampling_rate
        if length % self.hop_length:  # whole STFT frames: pad the end with silence
            x = F.pad(x, (0, self.hop_length - length % self.hop_length))
        logmel = self.mel_stft(x.reshape(b * c, -1))  # (B*2, n_mels, frames)
        logmel = logmel.reshape(b, c, logmel.shape[1], logmel.shape[2]).transpose(2, 3)  # (B, 2, frames, n_mels)
        residual = self.bwe_generator(logmel)
        skip = self.resampler(x)
        if residual.shape != skip.shape:
            raise ValueError(
                f"vocoder: the BWE generator gives {tuple(residual.shape)} but the x{self.sample_rate // self.input_sampling_rate} "
                f"skip path {tuple(skip.shape)}; config.vocoder.bwe (hop_length, upsample_rates) is inconsistent"
            )
        return torch.clamp(residual + skip, -1, 1)[..., :out_len]


def is_bwe_vocoder(config: Mapping[str, Any]) -> bool:
    """2.3 headers nest ``vocoder`` and ``bwe`` sections; 2.0 headers are one flat generator config."""
    return "bwe" in config


def build_vocoder(config: Mapping[str, Any], *, operations=None, dtype=None, device=None) -> nn.Module:
    """The vocoder described by the header's ``vocoder`` section.

    Returns a module with ``.sample_rate`` (output Hz) and ``forward(mel (B, 2, T, 64)) -> (B, 2, N)``
    in [-1, 1]; N = T x 240 (2.0, 24 kHz) or T x 480 (2.3, 48 kHz) for the official configs.
    """
    ops = resolve(operations)
    if is_bwe_vocoder(config):
        model: nn.Module = VocoderWithBWE(config, ops=ops, dtype=dtype, device=device)
    else:
        _require(config, "resblock", "1", "vocoder")
        _require(config, "stereo", True, "vocoder")
        rate = int(config.get("output_sampling_rate", 24000))
        model = Generator(config, rate, final_activation=True, ops=ops, dtype=dtype, device=device)
    model.dtype = dtype or torch.get_default_dtype()
    return model


__all__ = ["Generator", "VocoderWithBWE", "build_vocoder", "is_bwe_vocoder"]
