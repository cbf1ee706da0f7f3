"""Waveform <-> audio latent, the way ltx-core chains its audio pieces.

encode: waveform (B, C, N) at any rate -> stereo -> resample to the VAE rate (16 kHz) ->
        log-mel (B, 2, T_mel, 64) -> ``AudioVAE.encode`` -> latent (B, 8, T_lat, 16).
decode: latent (B, 8, T_lat, 16) -> ``AudioVAE.decode`` -> mel (B, 2, 4 T_lat - 3, 64) ->
        vocoder -> waveform (B, 2, N) in [-1, 1] at ``vocoder.sample_rate``.

ltx-core's ``encode_audio`` resamples with torchaudio and computes the mel with torchaudio's
``MelSpectrogram`` in the waveform's dtype, then casts the mel to the encoder's dtype; its
``decode_audio`` runs the decoder and the vocoder in their own dtype and returns float32.  The
mono -> stereo duplication happens before ltx-core is called (its encoder needs 2 channels);
ltx-pipelines was not available to check how it downmixes more than two channels, so here the
first two channels (front left / right in the standard layouts) are kept.
"""

from __future__ import annotations

import torch
from torch import nn

from .audio_features import MelConfig, log_mel_spectrogram, resample
from .audio_vae import AudioVAE


def _param(module: nn.Module) -> torch.Tensor | None:
    return next(iter(module.parameters()), None)


def to_stereo(waveform: torch.Tensor) -> torch.Tensor:
    """(B, C, N) -> (B, 2, N): mono duplicated, stereo kept, more channels cut to the first two."""
    if waveform.dim() != 3 or waveform.shape[1] == 0:
        found = tuple(waveform.shape)
        raise ValueError(f"encode_audio: expected a waveform (batch, channels, samples), found {found}")
    if waveform.shape[1] == 1:
        return waveform.expand(-1, 2, -1)
    return waveform[:, :2]


def waveform_to_mel(waveform: torch.Tensor, sample_rate: int, config: MelConfig) -> torch.Tensor:
    """(B, C, N) at ``sample_rate`` -> stereo log-mel (B, 2, T_mel, n_mels) at the VAE's rate."""
    if waveform.dim() == 3 and waveform.shape[-1] == 0:
        raise ValueError(
            f"encode_audio: the waveform has no samples (shape {tuple(waveform.shape)}); the audio input is empty"
        )
    stereo = to_stereo(waveform)
    if not stereo.is_floating_point():
        raise ValueError(f"encode_audio: expected float samples in [-1, 1], found dtype {stereo.dtype}")
    stereo = resample(stereo, int(sample_rate), config.sample_rate)
    return log_mel_spectrogram(stereo, config)


@torch.no_grad()
def encode_audio(audio_vae: AudioVAE, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """(B, C, N) float waveform at ``sample_rate`` Hz -> normalised latent (B, 8, T_lat, 16).

    T_lat = (T_mel - 1) // 4 + 1 with T_mel = N' // 160 + 1 (N' samples at 16 kHz): about 25
    latent frames per second.
    """
    cfg = audio_vae.mel_config
    p = _param(audio_vae)
    device = p.device if p is not None else waveform.device
    dtype = p.dtype if p is not None else torch.float32
    mel = waveform_to_mel(waveform.to(device), sample_rate, cfg)
    return audio_vae.encode(mel.to(dtype))


@torch.no_grad()
def decode_audio(audio_vae: AudioVAE, vocoder: nn.Module, latent: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Latent (B, 8, T_lat, 16) -> (waveform (B, 2, N) float32 in [-1, 1], sample rate in Hz)."""
    p = _param(audio_vae)
    if p is not None:
        latent = latent.to(device=p.device, dtype=p.dtype)
    mel = audio_vae.decode(latent)
    v = _param(vocoder)
    if v is not None:
        mel = mel.to(device=v.device, dtype=v.dtype)
    return vocoder(mel).float(), int(vocoder.sample_rate)


__all__ = ["decode_audio", "encode_audio", "to_stereo", "waveform_to_mel"]
