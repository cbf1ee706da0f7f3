"""media/: the streaming mp4 writer, audio-file loading and the CRF image preprocessing."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from openltx.media import AudioFileError, Mp4Writer, crf_roundtrip, load_audio, next_free_path
from openltx.media.mp4_writer import _publish


def _frames(n: int, h: int = 64, w: int = 96, start: int = 0) -> torch.Tensor:
    """Moving gradients: (n, h, w, 3) float in [0, 1]."""
    t = torch.arange(start, start + n, dtype=torch.float32)[:, None, None]
    y = torch.linspace(0, 1, h)[None, :, None]
    x = torch.linspace(0, 1, w)[None, None, :]
    return torch.stack([((x + 0.05 * t) % 1).expand(n, h, w), y.expand(n, h, w), ((x + y) / 2).expand(n, h, w)], dim=-1)


def _tone(seconds: float, rate: int, channels: int = 2) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return torch.stack([0.3 * torch.sin(2 * math.pi * 440 * (c + 1) * t) for c in range(channels)])


def probe(path):
    """(video stream info, audio stream info | None) read back with PyAV."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        video = {
            "codec": v.codec_context.name, "frames": frames, "fps": v.average_rate,
            "size": (v.codec_context.width, v.codec_context.height), "pix_fmt": v.codec_context.pix_fmt,
            "duration": float(v.duration * v.time_base),
        }  # fmt: skip
    audio = None
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            samples = sum(f.samples for f in c.decode(audio=0))
            audio = {"codec": a.codec_context.name, "rate": a.rate, "channels": a.codec_context.channels,
                     "samples": samples, "duration": samples / a.rate}  # fmt: skip
    return video, audio


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(24000, 1001), Fraction(25)])
def test_writes_video_and_audio_in_sync(tmp_path, fps):
    n = 33
    path = tmp_path / "out_00001_.mp4"
    with Mp4Writer(path, 96, 64, fps, audio_sample_rate=24000) as w:
        # audio shorter than the video (padded), given before the frames, in two pieces
        w.write_audio(_tone(0.5, 24000))
        for start in range(0, n, 8):  # streamed chunk by chunk
            w.write_frames(_frames(min(8, n - start), start=start))
        w.write_audio(_tone(0.3, 24000))
    video, audio = probe(w.path)
    assert w.path == str(path)
    assert video["codec"] == "h264" and video["pix_fmt"] == "yuv420p" and video["size"] == (96, 64)
    assert video["frames"] == n
    assert video["fps"] == fps
    assert abs(video["duration"] - n / fps) < 1e-3
    assert audio["codec"] == "aac" and audio["rate"] == 24000 and audio["channels"] == 2
    assert abs(audio["duration"] - n / fps) <= 1 / fps, (audio["duration"], n / fps)


def test_long_audio_is_trimmed_and_content_survives(tmp_path):
    n, fps, rate = 17, Fraction(24), 48000
    path = tmp_path / "a.mp4"
    frames = _frames(n)
    with Mp4Writer(path, 96, 64, fps, audio_sample_rate=rate) as w:
        w.write_frames(frames)
        w.write_audio(_tone(3.0, rate))  # 3 s for a 0.71 s video
    video, audio = probe(path)
    assert video["frames"] == n
    assert abs(audio["duration"] - n / fps) <= 1 / fps
    with av.open(str(path)) as c:
        first = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(first.astype(float) / 255 - frames[0].numpy()).mean() < 0.03  # the picture, lossy


def test_odd_size_and_video_only(tmp_path):
    path = tmp_path / "odd.mp4"
    with Mp4Writer(path, 33, 17, 24) as w:
        w.write_frames((_frames(3, 17, 33) * 255).to(torch.uint8))
    video, audio = probe(path)
    assert audio is None and video["frames"] == 3 and video["size"] == (34, 18)


def test_never_overwrites(tmp_path):
    taken = tmp_path / "clip_00001_.mp4"
    taken.write_bytes(b"precious")
    assert next_free_path(tmp_path, "clip") == str(tmp_path / "clip_00002_.mp4")
    with Mp4Writer(taken, 96, 64, 24) as w:  # asked for a taken name
        w.write_frames(_frames(2))
    assert taken.read_bytes() == b"precious"
    assert w.path == str(tmp_path / "clip_00002_.mp4") and probe(w.path)[0]["frames"] == 2
    # a name taken *while* writing (another run finished first) is not replaced either
    w2 = Mp4Writer(tmp_path / "clip_00003_.mp4", 96, 64, 24)
    w2.write_frames(_frames(2))
    (tmp_path / "clip_00003_.mp4").write_bytes(b"other run")
    w2.close()
    assert (tmp_path / "clip_00003_.mp4").read_bytes() == b"other run"
    assert w2.path == str(tmp_path / "clip_00004_.mp4")


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError, match="decoder died"):
        with Mp4Writer(path, 96, 64, 24, audio_sample_rate=24000) as w:
            w.write_frames(_frames(4))
            # while writing, only a hidden temp file exists; the final name does not
            assert not path.exists()
            assert all(p.name.startswith(".crash.mp4.") for p in tmp_path.iterdir())
            raise RuntimeError("decoder died")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no frames"):
        Mp4Writer(path, 96, 64, 24).close()
    assert list(tmp_path.iterdir()) == []


def test_publish_without_hard_links(tmp_path, monkeypatch):
    """File systems without hard links: check-then-rename, still no overwrite."""
    def no_link(src, dst):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_link)
    (tmp_path / "v_00001_.mp4").write_bytes(b"keep")
    temp = tmp_path / ".tmp"
    temp.write_bytes(b"new")
    assert _publish(str(temp), str(tmp_path / "v_00001_.mp4")) == str(tmp_path / "v_00002_.mp4")
    assert (tmp_path / "v_00001_.mp4").read_bytes() == b"keep" and not temp.exists()


def test_writer_input_errors(tmp_path):
    w = Mp4Writer(tmp_path / "e.mp4", 96, 64, 24)
    with pytest.raises(ValueError, match="frames are 32x32, the video is 96x64"):
        w.write_frames(torch.zeros(1, 32, 32, 3))
    with pytest.raises(ValueError, match="without audio_sample_rate"):
        w.write_audio(torch.zeros(2, 10))
    w.abort()
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ load_audio
def test_load_audio_roundtrip(tmp_path):
    path = tmp_path / "tone.mp4"
    with Mp4Writer(path, 32, 32, 25, audio_sample_rate=16000) as w:
        w.write_frames(torch.zeros(25, 32, 32, 3))
        w.write_audio(_tone(1.0, 16000))
    wave, rate = load_audio(path)
    assert rate == 16000 and wave.shape[0] == 2 and wave.dtype == torch.float32
    assert abs(wave.shape[1] / rate - 1.0) <= 1 / 25
    assert 0.1 < wave.abs().max() <= 1.0


def test_load_audio_wav(tmp_path):
    path = tmp_path / "mono.wav"
    tone = _tone(0.25, 8000, channels=1)
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray((tone.numpy() * 32767).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        c.mux(s.encode(frame))
        c.mux(s.encode())
    wave, rate = load_audio(path)
    assert rate == 8000 and wave.shape == (1, 2000)
    assert torch.allclose(wave, tone, atol=1e-4)


def test_load_audio_errors(tmp_path):
    with pytest.raises(AudioFileError, match="no such audio file"):
        load_audio(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty.wav: the file is empty"):
        load_audio(empty)
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(bytes(range(256)) * 7)
    with pytest.raises(AudioFileError, match="corrupt.mp3: not a readable audio or video file"):
        load_audio(corrupt)
    silent = tmp_path / "silent.mp4"
    with Mp4Writer(silent, 32, 32, 24) as w:
        w.write_frames(torch.zeros(2, 32, 32, 3))
    with pytest.raises(AudioFileError, match=r"silent.mp4: the file has no audio stream \(found: video \(h264\)\)"):
        load_audio(silent)


# ------------------------------------------------------------------------------ CRF preprocessing
def test_crf_roundtrip_changes_image_slightly_and_keeps_size():
    g = torch.Generator().manual_seed(0)
    img = (_frames(1, 64, 96)[0] * 0.8 + 0.1 * torch.rand(64, 96, 3, generator=g)).clamp(0, 1)
    out = crf_roundtrip(img)  # default CRF 33
    assert out.shape == img.shape and out.dtype == img.dtype
    diff = (out - img).abs().mean().item()
    assert 0.001 < diff < 0.06, diff
    stronger = (crf_roundtrip(img, crf=45) - img).abs().mean().item()
    assert stronger > diff
    assert crf_roundtrip(img, crf=0) is img
    batch = crf_roundtrip(torch.stack([img, img.flip(1)])[:, :63, :95])  # odd size, batch
    assert batch.shape == (2, 63, 95, 3)
    with pytest.raises(ValueError, match="crf 60 is out of range"):
        crf_roundtrip(img, crf=60)
