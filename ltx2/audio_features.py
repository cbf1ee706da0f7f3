"""The audio VAE's front end in plain torch: resampling and the log-mel spectrogram.

LTX-2's audio VAE reads stereo log-mel spectrograms (B, 2, T_mel, 64) computed at 16 kHz
with a 1024-point STFT (Hann window, hop 160 = 100 frames per second, centred frames with
reflect padding), the *magnitude* (power 1) spectrum, a Slaney-scale mel filterbank with
Slaney area normalisation, and ``log(max(mel, 1e-5))``.  ltx-core computes this with
torchaudio (``MelSpectrogram`` + ``functional.resample``); the pack has no torchaudio, so the
STFT is ``torch.stft``, the filterbank and the resampling kernels are computed here.

Everything is derived from the header's ``audio_vae`` section (``model.params.sampling_rate``,
``preprocessing.stft`` and ``preprocessing.mel``); for the official files that equals what
ltx-core hard-codes (f_min 0, f_max = sample_rate / 2, window length = FFT size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

LOG_FLOOR = 1e-5  # ltx-core clamps the mel magnitudes here before the log


@dataclass(frozen=True)
class MelConfig:
    """STFT / mel parameters of the audio VAE front end."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 0.0
    f_max: float = 8000.0

    @classmethod
    def from_audio_vae_config(cls, section: Mapping[str, Any]) -> "MelConfig":
        """From the header's ``audio_vae`` section (ltx-core's defaults where a key is absent)."""
        params = section.get("model", {}).get("params", {})
        dd = params.get("ddconfig", {})
        stft = section.get("preprocessing", {}).get("stft", {})
        mel = section.get("preprocessing", {}).get("mel", {})
        sr = int(params.get("sampling_rate", 16000))
        n_fft = int(stft.get("filter_length", 1024))
        n_mels = dd.get("mel_bins") or mel.get("n_mel_channels") or section.get("variables", {}).get("mel_bins") or 64
        f_max = mel.get("mel_fmax")
        return cls(
            sample_rate=sr,
            n_fft=n_fft,
            win_length=int(stft.get("win_length", n_fft)),
            hop_length=int(stft.get("hop_length", 160)),
            n_mels=int(n_mels),
            f_min=float(mel.get("mel_fmin", 0.0)),
            f_max=float(sr / 2 if f_max is None else f_max),
        )

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length


# ------------------------------------------------------------------------------ mel filterbank
_F_SP = 200.0 / 3  # Slaney: 66.67 Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15
_LOGSTEP = math.log(6.4) / 27.0  # 27 mels per factor 6.4 above 1 kHz


def hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    """Slaney's Auditory Toolbox mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    """Inverse of ``hz_to_mel_slaney``."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log, linear)


@lru_cache(maxsize=16)
def _filterbank64(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    n_freqs = n_fft // 2 + 1
    fft_hz = np.arange(n_freqs, dtype=np.float64) * (sample_rate / n_fft)  # bin centre frequencies
    # n_mels triangles need n_mels + 2 edges, equally spaced on the mel scale
    edges = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(f_min), hz_to_mel_slaney(f_max), n_mels + 2))
    width = np.diff(edges)  # (n_mels + 1,)
    rise = (fft_hz[None, :] - edges[:-2, None]) / width[:-1, None]  # left slope of triangle i
    fall = (edges[2:, None] - fft_hz[None, :]) / width[1:, None]  # right slope
    tri = np.maximum(0.0, np.minimum(rise, fall))  # (n_mels, n_freqs), peak 1
    # Slaney normalisation: every triangle has unit area in Hz (2 / its base width)
    return tri * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def slaney_mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) float32 triangular filters, Slaney scale and area normalisation.

    Computed in float64 and rounded once (the values of ``librosa.filters.mel(norm="slaney")``
    and torchaudio's ``melscale_fbanks(norm="slaney", mel_scale="slaney")`` transposed).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"mel range must satisfy 0 <= f_min < f_max <= {sample_rate / 2} Hz, got {f_min}..{f_max}")
    fb = _filterbank64(int(sample_rate), int(n_fft), int(n_mels), float(f_min), float(f_max))
    return torch.from_numpy(fb.astype(np.float32))


# ------------------------------------------------------------------------------ spectrogram
def _check_waveform(waveform: torch.Tensor, what: str) -> None:
    if not isinstance(waveform, torch.Tensor) or waveform.dim() != 3:
        found = tuple(waveform.shape) if isinstance(waveform, torch.Tensor) else type(waveform).__name__
        raise ValueError(f"{what}: expected a waveform tensor (batch, channels, samples), found {found}")
    if waveform.shape[0] == 0 or waveform.shape[1] == 0 or waveform.shape[2] == 0:
        raise ValueError(
            f"{what}: the waveform is empty (shape {tuple(waveform.shape)}); give at least one channel with samples"
        )
    if not waveform.is_floating_point():
        raise ValueError(f"{what}: expected float samples in [-1, 1], found dtype {waveform.dtype}")


def log_mel_spectrogram(waveform: torch.Tensor, config: MelConfig) -> torch.Tensor:
    """(B, C, N) waveform at ``config.sample_rate`` -> (B, C, T_mel, n_mels) log-mel magnitudes.

    ``T_mel = N // hop + 1`` (centred frames).  Runs in float32 (float64 stays float64); the
    result has the waveform's dtype, as ltx-core's ``AudioProcessor.waveform_to_mel``.
    """
    _check_waveform(waveform, "log_mel_spectrogram")
    b, c, n = waveform.shape
    if n <= config.n_fft // 2:  # reflect padding needs more samples than the pad
        ms = 1000 * (config.n_fft // 2 + 1) / config.sample_rate
        raise ValueError(
            f"log_mel_spectrogram: the waveform has {n} samples; at least {config.n_fft // 2 + 1} "
            f"({ms:.0f} ms at {config.sample_rate} Hz) are needed for the {config.n_fft}-point STFT. Use a longer clip."
        )
    work = torch.float64 if waveform.dtype == torch.float64 else torch.float32
    x = waveform.reshape(b * c, n).to(work)
    window = torch.hann_window(config.win_length, periodic=True, dtype=work, device=x.device)
    spec = torch.stft(
        x,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    ).abs()  # (B*C, n_freqs, T) magnitude (power 1)
    fb = slaney_mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
    mel = torch.matmul(spec.transpose(1, 2), fb.to(device=x.device, dtype=work).t())  # (B*C, T, n_mels)
    mel = torch.log(torch.clamp(mel, min=LOG_FLOOR))
    return mel.reshape(b, c, mel.shape[1], config.n_mels).to(waveform.dtype)


# ------------------------------------------------------------------------------ resampling
@lru_cache(maxsize=16)
def _sinc_kernel64(orig: int, new: int, zero_crossings: int, rolloff: float) -> tuple[np.ndarray, int]:
    """Polyphase Hann-windowed sinc kernels (new, 1, taps) for orig -> new (already reduced)."""
    cutoff = min(orig, new) * rolloff  # in units of the reduced rates: low-pass below both Nyquists
    half = math.ceil(zero_crossings * orig / cutoff)  # input samples on each side of an output
    taps = np.arange(-half, half + orig, dtype=np.float64) / orig  # input offsets (s, in orig periods)
    phase = -np.arange(new, dtype=np.float64)[:, None] / new  # output j of a period sits at j/new
    t = (taps[None, :] + phase) * cutoff
    t = np.clip(t, -zero_crossings, zero_crossings)
    window = np.cos(t * math.pi / zero_crossings / 2) ** 2
    arg = t * math.pi
    sinc = np.where(arg == 0, 1.0, np.sin(arg) / np.where(arg == 0, 1.0, arg))
    return (sinc * window * (cutoff / orig))[:, None, :], half


def resample(
    waveform: torch.Tensor,
    orig_rate: int,
    new_rate: int,
    *,
    zero_crossings: int = 6,
    rolloff: float = 0.99,
) -> torch.Tensor:
    """Band-limited resampling of (..., N) samples from ``orig_rate`` to ``new_rate`` Hz.

    Hann-windowed sinc interpolation with ``zero_crossings`` lobes on each side and the
    cutoff at ``rolloff`` x the lower Nyquist frequency -- torchaudio's default
    ``functional.resample`` (which ltx-core uses), evaluated as a polyphase convolution: the
    rates are reduced by their gcd, then each of the ``new`` output phases has its own
    kernel and the input advances ``orig`` samples per ``new`` outputs.  Zero padding at
    both ends; output length ``ceil(N * new / orig)``.  Kernels are computed in float64.
    """
    if int(orig_rate) != orig_rate or int(new_rate) != new_rate or orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"resample: sample rates must be positive integers, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return waveform
    if not waveform.is_floating_point():
        raise ValueError(f"resample: expected float samples, found dtype {waveform.dtype}")
    g = math.gcd(int(orig_rate), int(new_rate))
    orig, new = int(orig_rate) // g, int(new_rate) // g
    kernel64, half = _sinc_kernel64(orig, new, int(zero_crossings), float(rolloff))
    kernel = torch.from_numpy(kernel64).to(device=waveform.device, dtype=waveform.dtype)
    shape = waveform.shape
    x = waveform.reshape(-1, 1, shape[-1])
    x = F.pad(x, (half, half + orig))
    y = F.conv1d(x, kernel, stride=orig)  # (rows, new phases, periods)
    y = y.transpose(1, 2).reshape(x.shape[0], -1)  # interleave the phases
    length = math.ceil(new * shape[-1] / orig)
    return y[:, :length].reshape(*shape[:-1], length)


__all__ = [
    "LOG_FLOOR",
    "MelConfig",
    "hz_to_mel_slaney",
    "log_mel_spectrogram",
    "mel_to_hz_slaney",
    "resample",
    "slaney_mel_filterbank",
]
