"""The torch-only audio front end against independent references.

ltx-core computes its mel with torchaudio (not installable here), so the references are
librosa (``filters.mel(norm="slaney", htk=False)`` and ``stft``, in float64) for the mel
spectrogram, a direct float64 evaluation of the windowed-sinc interpolation formula for the
resampler's exact values, and ``scipy.signal.resample_poly`` for its quality.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from openltx.ltx2.audio_features import (
    MelConfig,
    hz_to_mel_slaney,
    log_mel_spectrogram,
    mel_to_hz_slaney,
    resample,
    slaney_mel_filterbank,
)
from openltx.model_loaders.tiny_layouts import tiny_audio_vae_config

librosa = pytest.importorskip("librosa")


def _ref_log_mel(x: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """librosa in float64: |STFT| (Hann, centred, reflect) -> Slaney mel -> log(max(., 1e-5))."""
    fb = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max,
        norm="slaney", htk=False, dtype=np.float64,
    )  # fmt: skip
    spec = np.abs(
        librosa.stft(
            x.astype(np.float64), n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
            window="hann", center=True, pad_mode="reflect",
        )
    )  # fmt: skip
    mel = np.einsum("mf,...ft->...tm", fb, spec)
    return np.log(np.maximum(mel, 1e-5))


def test_config_from_header_is_ltx_cores_front_end():
    cfg = MelConfig.from_audio_vae_config(tiny_audio_vae_config())
    # what ltx-core's AudioProcessor hard-codes for the official header: f 0..sr/2, window = n_fft
    assert cfg == MelConfig(16000, 1024, 1024, 160, 64, 0.0, 8000.0)
    assert cfg.frames_per_second == 100
    assert MelConfig.from_audio_vae_config({}) == cfg  # ltx-core's defaults


@pytest.mark.parametrize(
    "sr,n_fft,n_mels,fmin,fmax", [(16000, 1024, 64, 0.0, 8000.0), (22050, 512, 80, 30.0, 9000.0), (48000, 2048, 128, 0.0, 24000.0)]
)
def test_filterbank_equals_librosa(sr, n_fft, n_mels, fmin, fmax):
    ours = slaney_mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, norm="slaney", htk=False)
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1) and ours.dtype == torch.float32
    # both are float64 maths rounded to float32 (librosa rounds twice): within 2 float32 ulps
    np.testing.assert_allclose(ours.numpy(), ref, rtol=2.5e-7, atol=1e-12)
    assert (ours.numpy() == 0).sum() == (ref == 0).sum()  # identical triangle supports


def test_slaney_scale():
    hz = np.array([0.0, 200.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    np.testing.assert_allclose(hz_to_mel_slaney(hz), librosa.hz_to_mel(hz, htk=False), rtol=1e-12)
    np.testing.assert_allclose(mel_to_hz_slaney(hz_to_mel_slaney(hz)), hz, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("n", [16000, 16161, 3000])
def test_log_mel_equals_librosa(n):
    cfg = MelConfig()
    g = torch.Generator().manual_seed(n)
    t = torch.arange(n) / cfg.sample_rate
    tone = 0.5 * torch.sin(2 * math.pi * 440 * t) + 0.2 * torch.sin(2 * math.pi * 3100 * t)
    x = torch.stack([tone, 0.3 * torch.randn(n, generator=g)])[None].repeat(2, 1, 1)  # (2, 2, n)
    x[1] *= 0.01  # quiet: exercises the 1e-5 floor
    ours = log_mel_spectrogram(x, cfg)
    assert ours.shape == (2, 2, n // cfg.hop_length + 1, 64) and ours.dtype == torch.float32
    ref = _ref_log_mel(x.numpy(), cfg)
    # float32 STFT vs float64: the mel magnitudes agree to float32 round-off of each item's peak
    # (measured <= 3.4e-7); in the log domain that is ~1e-5 wherever the mel is >= 1e-3 of the
    # peak, while near-silent bins (log of round-off noise) may differ by more
    lin, lin_ref = np.exp(ours.double().numpy()), np.exp(ref)
    peak = lin_ref.max(axis=(2, 3), keepdims=True)
    assert (np.abs(lin - lin_ref) / peak).max() < 1e-6
    loud = lin_ref >= 1e-3 * peak
    assert np.abs(ours.numpy() - ref)[loud].max() < 5e-5
    assert (ref == np.log(1e-5)).any(), "the quiet item should reach the log floor"
    # float64 input runs in float64: only the float32 filterbank (rel. 1.2e-7) remains
    ours64 = log_mel_spectrogram(x.double(), cfg)
    assert ours64.dtype == torch.float64
    np.testing.assert_allclose(ours64.numpy(), ref, rtol=0, atol=1e-6)


def test_log_mel_bad_input():
    cfg = MelConfig()
    with pytest.raises(ValueError, match="empty"):
        log_mel_spectrogram(torch.zeros(1, 2, 0), cfg)
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\)"):
        log_mel_spectrogram(torch.zeros(2, 1000), cfg)
    with pytest.raises(ValueError, match="at least 513"):
        log_mel_spectrogram(torch.zeros(1, 2, 400), cfg)
    with pytest.raises(ValueError, match="float"):
        log_mel_spectrogram(torch.zeros(1, 2, 4000, dtype=torch.int16), cfg)


def _direct_resample(x: np.ndarray, orig: int, new: int, width: int = 6, rolloff: float = 0.99) -> np.ndarray:
    """y[j] = sum_i x[i] h(i/orig - j/new), h a Hann-windowed sinc: the interpolation formula itself."""
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    cutoff = min(o, n) * rolloff
    out = np.zeros(math.ceil(len(x) * n / o))
    i = np.arange(len(x))
    for j in range(len(out)):
        t = np.clip((i / o - j / n) * cutoff, -width, width)
        h = np.sinc(t) * np.cos(t * math.pi / width / 2) ** 2 * cutoff / o
        out[j] = (x * h).sum()
    return out


@pytest.mark.parametrize("orig,new", [(44100, 16000), (48000, 16000), (8000, 16000), (22050, 16000), (16000, 24000)])
def test_resample_matches_the_formula(orig, new):
    x = np.random.default_rng(orig).standard_normal(700)
    ours = resample(torch.tensor(x)[None, None], orig, new)[0, 0].numpy()
    ref = _direct_resample(x, orig, new)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-12)


@pytest.mark.parametrize("orig", [44100, 48000, 22050, 8000])
def test_resample_quality_vs_scipy(orig):
    from scipy.signal import resample_poly

    n = orig  # one second of two tones well inside both bands
    t = np.arange(n) / orig
    x = np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 1500 * t + 1.0)
    ours = resample(torch.tensor(x, dtype=torch.float32), orig, 16000).numpy()
    g = math.gcd(orig, 16000)
    ref = resample_poly(x, 16000 // g, orig // g)
    assert ours.shape == ref.shape == (16000,)
    # different low-pass designs (Hann-sinc with 6 zero crossings vs scipy's Kaiser FIR): away
    # from the edges both reproduce the tones; measured max |diff| 7.5e-4..2.9e-3 (8 kHz worst)
    # on an amplitude-1.5 signal, and ours is the closer one to the exact tones
    inner = slice(200, -200)
    assert np.abs(ours[inner] - ref[inner]).max() < 4e-3
    tt = np.arange(16000) / 16000
    truth = np.sin(2 * np.pi * 440 * tt) + 0.5 * np.sin(2 * np.pi * 1500 * tt + 1.0)
    assert np.abs(ours[inner] - truth[inner]).max() < 1.5e-3


def test_resample_shapes_and_errors():
    x = torch.randn(2, 3, 1001)
    assert resample(x, 16000, 16000) is x
    assert resample(x, 48000, 16000).shape == (2, 3, 334)  # ceil(1001 / 3)
    with pytest.raises(ValueError, match="positive integers"):
        resample(x, 44100.5, 16000)
    with pytest.raises(ValueError, match="float"):
        resample(x.to(torch.int32), 44100, 16000)
