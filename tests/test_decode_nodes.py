"""Decode / encode / upscale / save-video / load-audio nodes, in-process on the real host.

A tiny official-layout bundle (``tools/make_tiny_checkpoint.py --components all``) gives the
video VAE and the audio VAE + vocoder with the released latent widths; a tiny upsampler file
comes from ``model_loaders.upsampler_loading``.
"""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
import torch

import comfy.nested_tensor
import folder_paths

from openltx.host import aux_models
from openltx.host.aux_models import AuxModel, Unavailable
from openltx.model_loaders.tiny_layouts import write_tiny_checkpoint
from openltx.ltx2.upsampler import upsample_latent
from openltx.model_loaders.upsampler_loading import load_upsampler, tiny_upsampler_config, write_tiny_upsampler
from openltx.nodes.audio import OpenLTXLoadAudio
from openltx.nodes.decode import OpenLTXDecode, OpenLTXEncodeAudio, OpenLTXEncodeImage
from openltx.nodes.latents import OpenLTXEmptyLatent, OpenLTXLatentUpscale
from openltx.nodes.loaders import OpenLTXUpscalerLoader, OpenLTXVAELoader, upscaler_options, vae_options
from openltx.nodes.video import OpenLTXSaveVideo

CKPT = "ltx2-tiny.safetensors"
CKPT_23 = "ltx23-tiny.safetensors"  # 2.3: BigVGAN + BWE vocoder at 48 kHz
COND_VAE = "cond-vae.safetensors"  # standalone, timestep-conditioned decoder, no audio


def _write_conditioned_vae(path):
    """A standalone video VAE file (bare keys, vae config in the header) whose decoder is
    timestep-conditioned and injects noise; no audio parts."""
    import copy
    import json

    from safetensors.torch import save_file

    from openltx.ltx2.video_vae import VideoVAE
    from openltx.model_loaders.tiny_layouts import random_tensor, tiny_config

    cfg = copy.deepcopy(tiny_config("2.3")["vae"])
    cfg["timestep_conditioning"] = True
    for name, params in cfg["decoder_blocks"]:
        if name == "res_x":
            params["inject_noise"] = True
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in VideoVAE(cfg, timestep_conditioning=True).state_dict().items()}
    g = torch.Generator().manual_seed(0)
    save_file({k: random_tensor(k, s, g).contiguous() for k, s in shapes.items()}, str(path),
              metadata={"config": json.dumps(cfg)})  # fmt: skip


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for name in ("checkpoints", "vae", "latent_upscale_models", "output", "input"):
        (root / name).mkdir()
    # what tools/make_tiny_checkpoint.py --version 2.0 --components all|transformer writes (in-process:
    # a subprocess per file would double this module's run time)
    write_tiny_checkpoint(root / "checkpoints" / CKPT, "2.0", "all")
    write_tiny_checkpoint(root / "vae" / "transformer-only.safetensors", "2.0", "transformer")
    write_tiny_checkpoint(root / "checkpoints" / CKPT_23, "2.3", "all")
    _write_conditioned_vae(root / "vae" / COND_VAE)
    write_tiny_upsampler(root / "latent_upscale_models" / "up-x2.safetensors", tiny_upsampler_config("spatial"))
    write_tiny_upsampler(root / "latent_upscale_models" / "up-t2.safetensors", tiny_upsampler_config("temporal"))
    return root


@pytest.fixture
def host(model_root, monkeypatch):
    """ComfyUI's folders pointed at the temp dirs."""
    for name in ("checkpoints", "vae", "latent_upscale_models"):
        exts = folder_paths.folder_names_and_paths[name][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(model_root / name)], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    monkeypatch.setattr(folder_paths, "output_directory", str(model_root / "output"))
    monkeypatch.setattr(folder_paths, "input_directory", str(model_root / "input"))
    return model_root


@pytest.fixture
def vaes(host):
    video, audio = OpenLTXVAELoader.execute(CKPT, "fp32").args
    return video, audio


def _latent(frames=9, size=64, fps=24.0, seed=0):
    out = OpenLTXEmptyLatent.execute(size, size, frames, fps, 1).args[0]
    g = torch.Generator().manual_seed(seed)
    streams = [torch.randn(t.shape, generator=g) for t in out["samples"].unbind()]
    out["samples"] = comfy.nested_tensor.NestedTensor(streams)
    return out


def _probe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(video=0))
        info = {"frames": frames, "fps": v.average_rate, "size": (v.codec_context.width, v.codec_context.height),
                "vcodec": v.codec_context.name, "streams": sorted(s.type for s in c.streams)}  # fmt: skip
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            info["acodec"] = a.codec_context.name
            info["audio_s"] = sum(f.samples for f in c.decode(audio=0)) / a.rate
    return info


# ------------------------------------------------------------------------------ loaders
def test_loaders_list_and_load(host):
    assert CKPT in vae_options()
    assert set(upscaler_options()) >= {"up-x2.safetensors", "up-t2.safetensors"}
    video, audio = OpenLTXVAELoader.execute(CKPT, "default").args
    assert isinstance(video, AuxModel) and video.kind == "video VAE" and video.dtype == torch.float32
    assert isinstance(audio, AuxModel) and audio.kind == "audio VAE"
    up = OpenLTXUpscalerLoader.execute("up-x2.safetensors").args[0]
    assert isinstance(up, AuxModel) and up.kind == "upscaler"


def test_vae_loader_without_vae_parts_is_a_clear_error(host):
    with pytest.raises(RuntimeError, match="no LTX-2 VAE weights in this file"):
        OpenLTXVAELoader.execute("transformer-only.safetensors")


# ------------------------------------------------------------------------------ save video
def test_save_video_writes_an_mp4_with_sound(vaes, host, monkeypatch):
    video_vae, audio_vae = vaes
    latent = _latent(frames=25, size=64, fps=24.0)
    chunks = []
    real = aux_models.decode_video

    def spy(*a, **k):  # record the streamed chunk sizes
        for c in real(*a, **k):
            chunks.append(c.shape[1])
            yield c

    monkeypatch.setattr(aux_models, "decode_video", spy)
    out = OpenLTXSaveVideo.execute(latent, video_vae, audio_vae, 0.0, "clips/tiny", 19,
                                   tiling="custom", spatial_tile=0, temporal_tile=24, temporal_overlap=16)  # fmt: skip
    assert len(chunks) >= 2 and sum(chunks) == 25  # streamed in temporal chunks
    path = host / "output" / "clips" / "tiny_00001_.mp4"
    info = _probe(path)
    assert info["streams"] == ["audio", "video"] and info["vcodec"] == "h264" and info["acodec"] == "aac"
    assert info["frames"] == 25 and info["fps"] == Fraction(24) and info["size"] == (64, 64)
    assert abs(info["audio_s"] - 25 / 24) <= 1 / 24
    video = out.args[0]
    assert video.get_frame_count() == 25 and video.get_dimensions() == (64, 64)
    ui = out.ui.as_dict() if hasattr(out.ui, "as_dict") else out.ui
    assert ui["images"][0]["filename"] == "tiny_00001_.mp4" and ui["images"][0]["subfolder"] == "clips"
    # a second run never overwrites the first
    before = path.read_bytes()
    OpenLTXSaveVideo.execute(latent, video_vae, None, 25.0, "clips/tiny", 19, tiling="off")
    assert path.read_bytes() == before
    second = _probe(host / "output" / "clips" / "tiny_00002_.mp4")
    assert second["streams"] == ["video"] and second["fps"] == Fraction(25) and second["frames"] == 25


def test_save_video_ltx23_ntsc_rate(host):
    video_vae, audio_vae = OpenLTXVAELoader.execute(CKPT_23, "fp32").args
    latent = _latent(frames=9, size=64, fps=23.976)
    OpenLTXSaveVideo.execute(latent, video_vae, audio_vae, 0.0, "v23", 19, decode_timestep=0.05, seed=3)
    info = _probe(host / "output" / "v23_00001_.mp4")
    assert info["streams"] == ["audio", "video"] and info["frames"] == 9
    assert info["fps"] == Fraction(24000, 1001)
    assert abs(info["audio_s"] - 9 * 1001 / 24000) <= 1001 / 24000
    with av.open(str(host / "output" / "v23_00001_.mp4")) as c:
        assert c.streams.audio[0].rate == 48000


def test_timestep_conditioned_vae_file_without_audio(host):
    video_vae, audio_vae = OpenLTXVAELoader.execute(COND_VAE, "fp32").args
    assert video_vae.module.timestep_conditioning and isinstance(audio_vae, Unavailable)
    latent = _latent(frames=9, size=64)
    a = OpenLTXDecode.execute(latent, video_vae, tiling="off", seed=1).args[0]
    b = OpenLTXDecode.execute(latent, video_vae, tiling="off", seed=1).args[0]
    c = OpenLTXDecode.execute(latent, video_vae, tiling="off", seed=2).args[0]
    d = OpenLTXDecode.execute(latent, video_vae, tiling="off", seed=1, decode_timestep=0.5,
                              decode_noise_scale=0.1).args[0]  # fmt: skip
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, d)
    assert video_vae.module.decode_noise_scale == 0.025  # a node's option does not stick to the model
    with pytest.raises(ValueError, match="LTX-2 Save Video: cond-vae.safetensors has no audio decoder"):
        OpenLTXSaveVideo.execute(latent, video_vae, audio_vae, 24.0, "nope", 19)
    assert not list((host / "output").glob("nope*"))


# ------------------------------------------------------------------------------ decode / encode
def test_decode_outputs_images_and_audio(vaes):
    video_vae, audio_vae = vaes
    latent = _latent(frames=9, size=64)
    images, audio = OpenLTXDecode.execute(latent, video_vae, audio_vae, tiling="auto").args
    assert images.shape == (9, 64, 64, 3) and 0.0 <= images.min() and images.max() <= 1.0
    assert audio["waveform"].ndim == 3 and audio["waveform"].shape[:2] == (1, 2)
    assert audio["sample_rate"] == 24000
    assert abs(audio["waveform"].shape[-1] / 24000 - 9 / 24) < 0.1
    # video-only latent, no audio VAE: no sound
    video_only = {"samples": latent["samples"].unbind()[0]}
    images2, audio2 = OpenLTXDecode.execute(video_only, video_vae, tiling="off").args
    assert audio2 is None and torch.allclose(images, images2, atol=1e-5)


def test_encode_image_and_audio_shapes(vaes):
    video_vae, audio_vae = vaes
    image = torch.rand(2, 70, 100, 3)
    latent = OpenLTXEncodeImage.execute(image, video_vae, 0, 0, 33).args[0]
    assert latent["samples"].shape == (2, 128, 1, 2, 3)  # 70x100 -> 64x96
    latent = OpenLTXEncodeImage.execute(image, video_vae, 96, 64, 0).args[0]  # same aspect, resized
    assert latent["samples"].shape == (2, 128, 1, 2, 3)
    with pytest.raises(ValueError, match="aspect"):  # 100x70 stretched to a square: refused
        OpenLTXEncodeImage.execute(image, video_vae, 64, 64, 0)
    audio = {"waveform": 0.1 * torch.randn(1, 2, 24000), "sample_rate": 24000}
    alat = OpenLTXEncodeAudio.execute(audio, audio_vae).args[0]
    assert alat["samples"].shape[:2] == (1, 8) and alat["samples"].shape[3] == 16
    assert abs(alat["samples"].shape[2] - 25) <= 1  # 25 latents per second


def test_latent_upscale(vaes, host):
    video_vae, _ = vaes
    latent = _latent(frames=9, size=64)
    audio_before = latent["samples"].unbind()[1].clone()
    up = OpenLTXUpscalerLoader.execute("up-x2.safetensors").args[0]
    out = OpenLTXLatentUpscale.execute(latent, up, video_vae).args[0]
    video, audio = out["samples"].unbind()
    assert video.shape == (1, 128, 2, 4, 4) and torch.equal(audio, audio_before) and out["frame_rate"] == 24.0
    # the node (comfy.ops layers, ModelPatcher) computes what the plain module does
    plain = load_upsampler(host / "latent_upscale_models" / "up-x2.safetensors")
    stats = video_vae.module.per_channel_statistics
    with torch.no_grad():
        expected = upsample_latent(plain, latent["samples"].unbind()[0], (stats.get_buffer("mean-of-means"),
                                                                           stats.get_buffer("std-of-means")))
    assert torch.allclose(video, expected, rtol=1e-5, atol=1e-5)
    temporal = OpenLTXUpscalerLoader.execute("up-t2.safetensors").args[0]
    out = OpenLTXLatentUpscale.execute(latent, temporal, video_vae).args[0]
    assert out["samples"].unbind()[0].shape == (1, 128, 3, 2, 2) and out["frame_rate"] == 48.0


# ------------------------------------------------------------------------------ bad input
def test_latent_of_another_model_is_a_clear_error(vaes, host):
    video_vae, audio_vae = vaes
    wrong = {"samples": torch.zeros(1, 16, 2, 2, 2)}  # 16 channels: not an LTX-2 latent
    with pytest.raises(ValueError, match=r"LTX-2 Decode: .*expected a video latent \(B, 128"):
        OpenLTXDecode.execute(wrong, video_vae)
    with pytest.raises(ValueError, match=r"LTX-2 Save Video: .*expected a video latent \(B, 128"):
        OpenLTXSaveVideo.execute(wrong, video_vae, None, 24.0, "bad/x", 19)
    assert not (host / "output" / "bad").exists() or not any((host / "output" / "bad").iterdir())
    up = OpenLTXUpscalerLoader.execute("up-x2.safetensors").args[0]
    with pytest.raises(ValueError, match="LTX-2 Latent Upscale: the video latent has 16 channels"):
        OpenLTXLatentUpscale.execute(wrong, up, video_vae)
    with pytest.raises(ValueError, match="expected an OPENLTX_VAE"):
        OpenLTXDecode.execute(_latent(), audio_vae)


def test_sizes_the_vae_cannot_take(vaes):
    video_vae, _ = vaes
    assert "width 50 is not a multiple of 32" in OpenLTXEncodeImage.validate_inputs(width=50, height=64)
    with pytest.raises(ValueError, match="must be multiples of 32, at least 32"):
        OpenLTXEncodeImage.execute(torch.rand(1, 20, 40, 3), video_vae, 0, 0, 0)
    with pytest.raises(ValueError, match="8k\\+1"):  # the VAE itself: 10 frames
        video_vae.module.encode(torch.zeros(1, 3, 10, 64, 64))


def test_missing_audio_vae_is_a_clear_error():
    missing = Unavailable("audio VAE", "x.safetensors has no audio decoder")
    with pytest.raises(ValueError, match="LTX-2 Encode Audio: x.safetensors has no audio decoder"):
        OpenLTXEncodeAudio.execute({"waveform": torch.zeros(1, 2, 100), "sample_rate": 16000}, missing)


# ------------------------------------------------------------------------------ load audio
def test_load_audio_node(host):
    from openltx.media import Mp4Writer

    with Mp4Writer(host / "input" / "voice.mp4", 32, 32, 25, audio_sample_rate=16000) as w:
        w.write_frames(torch.zeros(25, 32, 32, 3))
        w.write_audio(0.2 * torch.sin(torch.arange(16000) / 16000 * 2 * torch.pi * 220).repeat(2, 1))
    (host / "input" / "empty.wav").write_bytes(b"")
    (host / "input" / "corrupt.mp3").write_bytes(b"\x00\x01garbage" * 100)
    assert OpenLTXLoadAudio.validate_inputs("voice.mp4") is True
    assert "no file" in OpenLTXLoadAudio.validate_inputs("nope.wav")
    audio = OpenLTXLoadAudio.execute("voice.mp4").args[0]
    assert audio["sample_rate"] == 16000 and audio["waveform"].shape[:2] == (1, 2)
    with pytest.raises(ValueError, match="LTX-2 Load Audio: .*empty.wav: the file is empty"):
        OpenLTXLoadAudio.execute("empty.wav")
    with pytest.raises(ValueError, match="LTX-2 Load Audio: .*corrupt.mp3: not a readable audio or video file"):
        OpenLTXLoadAudio.execute("corrupt.mp3")
    assert "voice.mp4" in OpenLTXLoadAudio.define_schema().inputs[0].options
