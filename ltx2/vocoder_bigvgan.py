"""BigVGAN-v2 pieces of the LTX-2.3 vocoder: anti-aliased Snake activations, AMP blocks, the
bandwidth-extension resampler and the checkpoint-stored causal mel STFT.

Snake(x) = x + sin^2(a x) / a (SnakeBeta: / b instead), a = exp(alpha), b = exp(beta): a periodic
activation that lets the generator model harmonics.  Applied naively it aliases, so each is
wrapped as "upsample x2 (Kaiser-windowed sinc) -> activation -> low-pass + downsample x2"; the
two 12-tap filters are buffers stored in the checkpoint (``upsample.filter``,
``downsample.lowpass.filter``) and are initialised here to BigVGAN's Kaiser-sinc design.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

AA_TAPS = 12  # taps of the anti-aliasing filters


def kaiser_sinc_lowpass(cutoff: float, half_width: float, taps: int) -> torch.Tensor:
    """(1, 1, taps) Kaiser-windowed sinc low-pass (cutoff / transition half-width in cycles per sample)."""
    half = taps // 2
    delta = 4 * half_width  # transition band width
    atten = 2.285 * (half - 1) * math.pi * delta + 7.95  # Kaiser's attenuation estimate (dB)
    if atten > 50.0:
        beta = 0.1102 * (atten - 8.7)
    elif atten >= 21.0:
        beta = 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, periodic=False, beta=beta)
    # taps centred between samples for an even length, on a sample for an odd one
    t = torch.arange(-half, half) + 0.5 if taps % 2 == 0 else torch.arange(taps) - half
    if cutoff == 0:
        return torch.zeros(1, 1, taps)
    h = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (h / h.sum()).view(1, 1, taps)


def _filter_buffer(module: nn.Module, ratio: int, device) -> None:
    if device is not None and torch.device(device).type == "meta":
        module.register_buffer("filter", torch.empty(1, 1, AA_TAPS, device="meta"))
    else:
        f = kaiser_sinc_lowpass(0.5 / ratio, 0.6 / ratio, AA_TAPS)
        module.register_buffer("filter", f.to(device) if device is not None else f)


class AAUpsample(nn.Module):
    """(B, C, N) -> (B, C, 2 N): zero-stuffing + the stored low-pass (transposed conv), edges replicated."""

    def __init__(self, ratio: int = 2, device=None) -> None:
        super().__init__()
        self.ratio = ratio
        self.pad = AA_TAPS // ratio - 1
        self.crop_left = self.pad * ratio + (AA_TAPS - ratio) // 2
        self.crop_right = self.pad * ratio + (AA_TAPS - ratio + 1) // 2
        _filter_buffer(self, ratio, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        f = self.filter.to(x).expand(c, -1, -1)
        x = self.ratio * F.conv_transpose1d(x, f, stride=self.ratio, groups=c)
        return x[..., self.crop_left : -self.crop_right]


class _LowPass(nn.Module):
    def __init__(self, ratio: int, device) -> None:
        super().__init__()
        self.ratio = ratio
        _filter_buffer(self, ratio, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (AA_TAPS // 2 - 1, AA_TAPS // 2), mode="replicate")
        return F.conv1d(x, self.filter.to(x).expand(c, -1, -1), stride=self.ratio, groups=c)


class AADownsample(nn.Module):
    """(B, C, 2 N) -> (B, C, N): the stored low-pass, evaluated at every second sample."""

    def __init__(self, ratio: int = 2, device=None) -> None:
        super().__init__()
        self.lowpass = _LowPass(ratio, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class Snake(nn.Module):
    """x + sin^2(a x) / a per channel; ``beta=True`` divides by a second learnt b (SnakeBeta)."""

    def __init__(self, channels: int, beta: bool, dtype=None, device=None) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels, dtype=dtype, device=device))  # log scale
        if beta:
            self.beta = nn.Parameter(torch.zeros(channels, dtype=dtype, device=device))
        self.has_beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.exp(self.alpha[None, :, None])
        scale = torch.exp(self.beta[None, :, None]) if self.has_beta else alpha
        return x + (1.0 / (scale + 1e-9)) * torch.sin(x * alpha).pow(2)


class AASnake(nn.Module):
    """Anti-aliased Snake(Beta): upsample x2 -> activation -> downsample x2."""

    def __init__(self, channels: int, beta: bool, dtype=None, device=None) -> None:
        super().__init__()
        self.act = Snake(channels, beta, dtype, device)
        self.upsample = AAUpsample(2, device)
        self.downsample = AADownsample(2, device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


class AMPBlock1(nn.Module):
    """BigVGAN "AMP1" residual block: 3 x (act -> dilated conv -> act -> conv) + skip."""

    def __init__(self, channels: int, kernel: int, dilations, snake_beta: bool, ops, dtype, device) -> None:
        super().__init__()

        def conv(d: int) -> nn.Module:
            pad = (kernel * d - d) // 2
            return ops.Conv1d(channels, channels, kernel, 1, dilation=d, padding=pad, dtype=dtype, device=device)

        self.convs1 = nn.ModuleList(conv(d) for d in dilations)
        self.convs2 = nn.ModuleList(conv(1) for _ in dilations)
        self.acts1 = nn.ModuleList(AASnake(channels, snake_beta, dtype, device) for _ in dilations)
        self.acts2 = nn.ModuleList(AASnake(channels, snake_beta, dtype, device) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.acts1, self.acts2):
            x = x + c2(a2(c1(a1(x))))
        return x


# ------------------------------------------------------------------------------ bandwidth extension
def hann_sinc_upsampler_kernel(ratio: int, zero_crossings: int = 6, rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    """(1, 1, 2 w ratio + 1) Hann-windowed sinc interpolation kernel for integer upsampling.

    The same band-limited interpolator as ``audio_features.resample`` (torchaudio's default),
    laid out as one transposed-convolution kernel; ``w = ceil(zero_crossings / rolloff)`` input
    samples of support on each side.
    """
    w = math.ceil(zero_crossings / rolloff)
    taps = 2 * w * ratio + 1
    t = (torch.arange(taps, dtype=torch.float64) / ratio - w) * rolloff
    window = torch.cos(t.clamp(-zero_crossings, zero_crossings) * math.pi / zero_crossings / 2) ** 2
    kernel = torch.sinc(t) * window * rolloff / ratio
    return kernel.to(torch.float32).view(1, 1, taps), w


class SincUpsampler(nn.Module):
    """(B, C, N) -> (B, C, ratio N): the BWE skip path (not stored in the checkpoint)."""

    def __init__(self, ratio: int) -> None:
        super().__init__()
        self.ratio = ratio
        kernel, self.pad = hann_sinc_upsampler_kernel(ratio)
        self.crop_left = 2 * self.pad * ratio
        self.crop_right = kernel.shape[-1] - ratio
        # computed on the CPU even when the model is built on "meta": nothing in the file fills it
        self.register_buffer("filter", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        f = self.filter.to(dtype=x.dtype, device=x.device).expand(c, -1, -1)
        x = self.ratio * F.conv_transpose1d(x, f, stride=self.ratio, groups=c)
        return x[..., self.crop_left : -self.crop_right]


class _STFTBases(nn.Module):
    def __init__(self, n_fft: int, dtype, device) -> None:
        super().__init__()
        rows = 2 * (n_fft // 2 + 1)  # real rows, then imaginary rows, each times the window
        self.register_buffer("forward_basis", torch.zeros(rows, 1, n_fft, dtype=dtype, device=device))
        self.register_buffer("inverse_basis", torch.zeros(rows, 1, n_fft, dtype=dtype, device=device))


class CausalMelSTFT(nn.Module):
    """Waveform -> log-mel with the DFT bases and mel filterbank stored in the checkpoint.

    Causal: the signal is padded by ``n_fft - hop`` zeros on the left only, so frame k covers
    samples up to (k + 1) hop.  (B, N) -> (B, n_mels, N / hop).
    """

    def __init__(self, n_fft: int, hop_length: int, n_mels: int, dtype=None, device=None) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.stft_fn = _STFTBases(n_fft, dtype, device)
        self.register_buffer("mel_basis", torch.zeros(n_mels, n_fft // 2 + 1, dtype=dtype, device=device))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        y = F.pad(y.unsqueeze(1), (max(0, self.n_fft - self.hop_length), 0))
        spec = F.conv1d(y, self.stft_fn.forward_basis, stride=self.hop_length)  # (B, 2 n_freqs, frames)
        n = spec.shape[1] // 2
        magnitude = torch.sqrt(spec[:, :n] ** 2 + spec[:, n:] ** 2)
        mel = torch.matmul(self.mel_basis.to(magnitude.dtype), magnitude)
        return torch.log(torch.clamp(mel, min=1e-5))


__all__ = ["AMPBlock1", "AASnake", "CausalMelSTFT", "SincUpsampler", "Snake", "kaiser_sinc_lowpass"]
