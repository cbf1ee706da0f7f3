"""Video in: reading part of a video file (media/video_file.py) and encoding frames + sound into
an LTX-2 latent (nodes/video_in.py, host/aux_models.encode_video).

* the frames of a range, a frame rate and a size are the right source frames; decoding stops at
  the cap and starts near ``start_s`` (counted on the decoder itself);
* frames and their encoding equal ltx-pipelines' ``load_video_conditioning`` + ltx-core's
  ``VideoEncoder`` on the same file and weights (fp32; frames to 1e-5, latents to 1e-4
  relative), tiled and untiled;
* an IC-LoRA reference from a control file equals ltx-pipelines' ICLoraPipeline's conditioning
  (LTX-2.0), and on LTX-2.3 with a half-size (``ref0.5``) IC-LoRA the velocities of our MODEL
  equal ltx-core's LTXModel with the LoRA fused (fp32, 1e-5 relative);
* the nodes on the real host with the tiny checkpoint: a nested video + audio latent of the
  right lengths, an IC-LoRA reference at width / factor, clear errors.
"""

from __future__ import annotations

import subprocess
import sys

import av
import pytest
import torch

import comfy.nested_tensor
import folder_paths

from openltx.media import video_file as V
from video_fixtures import frame_index, write_video

FPS = 24.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """48 frames (2 s) of 96x64 at 24 fps with a stereo tone."""
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", 48, 96, 64, FPS)


# ------------------------------------------------------------------------------ media
def test_probe(clip):
    info = V.probe_video(clip)
    assert (info.width, info.height, info.fps, info.frames, info.has_audio) == (96, 64, 24.0, 48, True)
    assert info.duration == pytest.approx(2.0, abs=0.05)


def test_range_picks_the_right_source_frames(clip):
    out = V.read_frames(clip, start_s=0.5, frames=9)
    assert out.frames.shape == (9, 64, 96, 3) and out.fps == 24.0
    assert [frame_index(f) for f in out.frames] == list(range(12, 21))
    half = V.read_frames(clip, start_s=1.0, frames=6, fps=12.0)  # every other frame
    assert [frame_index(f) for f in half.frames] == [24, 26, 28, 30, 32, 34] and half.fps == 12.0
    double = V.read_frames(clip, start_s=0.0, frames=8, fps=48.0)  # each frame twice
    assert [frame_index(f) for f in double.frames] == [0, 0, 1, 1, 2, 2, 3, 3]
    tail = V.read_frames(clip, start_s=1.5, frames=100)  # the file ends first
    assert tail.frames.shape[0] == 12 and frame_index(tail.frames[-1]) == 47


def test_resize_covers_and_crops(clip):
    out = V.read_frames(clip, frames=2, width=32, height=32)
    assert out.frames.shape == (2, 32, 32, 3)
    keep_aspect = V.read_frames(clip, frames=1, height=32)
    assert keep_aspect.frames.shape == (1, 32, 48, 3)


class _CountingContainer:
    """An av container whose ``decode`` counts the frames the decoder produced."""

    def __init__(self, inner, counter):
        self._inner, self._counter = inner, counter

    def decode(self, *args, **kwargs):
        for frame in self._inner.decode(*args, **kwargs):
            self._counter[frame.__class__.__name__] = self._counter.get(frame.__class__.__name__, 0) + 1
            yield frame

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_decoding_stops_at_the_cap_and_starts_near_start(tmp_path, monkeypatch):
    """A 30 s file (keyframe every 12 frames): 5 frames at 20 s decode a keyframe interval, not
    the 480 frames before it; the sound of 0.5 s decodes about 0.5 s."""
    from openltx.media.mp4_writer import Mp4Writer

    path = tmp_path / "long.mp4"
    rate = 16000
    with Mp4Writer(path, 32, 32, 24, audio_sample_rate=rate, preset="ultrafast") as writer:
        writer._video.codec_context.gop_size = 12
        writer.write_audio(torch.zeros(2, 30 * rate))
        for s in range(0, 720, 120):
            writer.write_frames(torch.rand(120, 32, 32, 3))
    counter: dict[str, int] = {}
    real_open = av.open
    monkeypatch.setattr(V.av, "open", lambda *a, **k: _CountingContainer(real_open(*a, **k), counter))
    out = V.read_frames(path, start_s=20.0, frames=5)
    assert out.frames.shape[0] == 5
    assert counter["VideoFrame"] <= 5 + 24, counter  # at most two keyframe intervals
    counter.clear()
    wave, got_rate = V.read_audio(path, 20.0, 0.5)
    assert got_rate == rate and wave.shape == (2, rate // 2)
    assert counter["AudioFrame"] * 1024 <= 2 * rate, counter  # AAC frames of 1024 samples: ~1 s at most


def test_audio_range_equals_the_slice_of_the_whole(clip):
    whole, rate = V.read_audio(clip)
    part, rate2 = V.read_audio(clip, 0.5, 0.75)
    s = round(0.5 * rate)
    assert rate == rate2 and part.shape == (2, round(0.75 * rate))
    assert torch.allclose(part, whole[:, s : s + part.shape[1]], atol=1e-4)  # decoder float noise


def test_bad_files_are_clear_errors(tmp_path, clip):
    with pytest.raises(V.VideoFileError, match="no such video file"):
        V.read_frames(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(V.VideoFileError, match="not a readable video file"):
        V.read_frames(junk)
    wav = tmp_path / "sound.wav"
    with av.open(str(wav), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(torch.zeros(1, 800, dtype=torch.int16).numpy(), format="s16", layout="mono")
        frame.sample_rate = 8000
        c.mux(s.encode(frame))
    with pytest.raises(V.VideoFileError, match="no video stream"):
        V.read_frames(wav)
    with pytest.raises(V.VideoFileError, match="past the end"):
        V.read_frames(clip, start_s=5.0)


# ------------------------------------------------------------------------------ parity with ltx-pipelines
@pytest.fixture(scope="module")
def ltx_pipelines_media():
    import importlib
    import types

    if "torchaudio" not in sys.modules:  # ltx_pipelines imports ltx_core's audio VAE (torchaudio) at the top
        stub = types.ModuleType("torchaudio")
        stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
        sys.modules["torchaudio"] = stub
    import ltx_core.loader  # noqa: F401  (before ltx_core.quantization)
    from ltx_pipelines.utils import media_io

    return media_io


@pytest.mark.parametrize("size", [(64, 96), (64, 64), (32, 64)])
def test_frames_equal_ltx_pipelines_video_conditioning(ltx_pipelines_media, clip, size):
    h, w = size
    ref = ltx_pipelines_media.load_video_conditioning(str(clip), h, w, 17, torch.float32, torch.device("cpu"))
    ours = V.read_frames(clip, frames=17, width=w, height=h).frames  # (F, H, W, 3) in [0, 1]
    ours = (ours * 2.0 - 1.0).permute(3, 0, 1, 2).unsqueeze(0)
    assert ref.shape == ours.shape == (1, 3, 17, h, w)
    assert (ours - ref).abs().max() < 1e-5


@pytest.mark.parametrize("tiled", [False, True], ids=["untiled", "tiled"])
def test_encoding_equals_ltx_core_video_encoder(ltx_pipelines_media, clip, tiled):
    """File -> frames -> our streamed encode == file -> ltx-pipelines -> ltx-core VideoEncoder."""
    from openltx.host import aux_models
    from openltx.model_loaders.tiny_layouts import tiny_config
    from test_video_vae_parity import random_vae, reference_pair

    import ltx_core.loader  # noqa: F401
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator

    cfg = tiny_config("2.0")["vae"]
    model = random_vae(cfg, seed=3)
    encoder, _ = reference_pair((VideoEncoderConfigurator, VideoDecoderConfigurator), cfg, model)
    pixels = ltx_pipelines_media.load_video_conditioning(str(clip), 64, 96, 33, torch.float32, torch.device("cpu"))
    with torch.no_grad():
        want = encoder(pixels)
    vae = aux_models.AuxModel(model, kind="video VAE", source="tiny", load_device=torch.device("cpu"),
                              offload_device=torch.device("cpu"))  # fmt: skip
    frames = V.read_frames(clip, frames=33, width=96, height=64).frames
    before = frames.clone()
    sizes = {"spatial_tile": 64, "spatial_overlap": 32, "temporal_tile": 24, "temporal_overlap": 16}
    got = aux_models.encode_video(vae, frames, tiling="custom" if tiled else "off", tile_sizes=sizes)
    assert torch.equal(frames, before), "the input frames were modified"
    assert got.shape == want.shape == (1, 128, 5, 2, 3)
    if not tiled:
        err = ((got - want).norm() / want.norm()).item()
        assert err < 1e-4, err
    else:  # streamed tiles == the same tiles over the whole pixel tensor (tiles differ from one piece)
        from openltx.ltx2 import tiling as T

        config = T.TilingConfig(**sizes)
        with torch.no_grad():
            whole = T.encode_tiled(model, pixels, config)
        assert (got - whole).abs().max() < 1e-5


def test_ic_lora_reference_from_a_file_equals_ic_lora_pipeline(ltx_pipelines_media, tmp_path):
    """Control video file -> LTX-2 Load Video -> Encode Video (downscale 2) -> Reference Video Guide
    gives the appended tokens, positions and attention ltx-pipelines' ICLoraPipeline builds
    (load_video_conditioning at H/2 x W/2, VideoEncoder, VideoConditionByReferenceLatent in the
    attention-strength wrapper) on the same file and weights."""
    import comfy.nested_tensor as nt

    from openltx.host import aux_models
    from openltx.ltx2 import positions as P
    from openltx.model_loaders.tiny_layouts import tiny_config
    from openltx.nodes.conditioning import OpenLTXReferenceVideoGuide
    from openltx.nodes.video_in import OpenLTXEncodeVideo
    from openltx.samplers import conditioning as C
    from test_video_vae_parity import random_vae, reference_pair

    import ltx_core.loader  # noqa: F401
    from ltx_core.components.patchifiers import VideoLatentPatchifier
    from ltx_core.conditioning import ConditioningItemAttentionStrengthWrapper, VideoConditionByReferenceLatent
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.tools import VideoLatentTools
    from ltx_core.types import VideoLatentShape

    control = write_video(tmp_path / "control.mp4", 17, 96, 64, FPS, audio_rate=None)
    cfg = tiny_config("2.0")["vae"]
    model = random_vae(cfg, seed=5)
    encoder, _ = reference_pair((VideoEncoderConfigurator, VideoDecoderConfigurator), cfg, model)
    # the reference: output 192x128, reference at 96x64, 17 frames, attention strength 0.5
    with torch.no_grad():
        ref_latent = encoder(ltx_pipelines_media.load_video_conditioning(str(control), 64, 96, 17, torch.float32,
                                                                         torch.device("cpu")))  # fmt: skip
    video = torch.zeros(1, 128, 3, 4, 6)
    tools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), VideoLatentShape(*video.shape), FPS)
    state = tools.create_initial_state("cpu", torch.float32, video.clone())
    item = ConditioningItemAttentionStrengthWrapper(VideoConditionByReferenceLatent(ref_latent, 2, 1.0), attention_mask=0.5)
    state = item.apply_to(state, tools)
    # ours, through the nodes
    vae = aux_models.AuxModel(model, kind="video VAE", source="tiny", load_device=torch.device("cpu"),
                              offload_device=torch.device("cpu"))  # fmt: skip
    frames = V.read_frames(control, frames=17).frames
    ours_ref = OpenLTXEncodeVideo.execute(frames, vae, width=192, height=128, downscale_factor=2, tiling="off")[0]
    latent = {"samples": nt.NestedTensor((video, torch.zeros(1, 8, 18, 16))), "frame_rate": FPS}
    cond = [[torch.zeros(1, 4, 8), {}]]
    pos, _ = OpenLTXReferenceVideoGuide.execute(cond, cond, latent, ours_ref, 2, 1.0, 0.5)
    ref_item = pos[0][1]["openltx_reference"][0]
    sigma = torch.tensor([0.7])
    tokens, timesteps, positions, attention = C.append_tokens(
        P.patchify_video(video), torch.full((1, 72), 0.7), P.video_positions(1, 3, 4, 6, FPS), sigma, FPS,
        references=(ref_item,))
    assert tokens.shape == state.latent.shape
    err = ((tokens - state.latent).norm() / state.latent.norm()).item()
    assert err < 1e-4, err
    assert torch.equal(positions, state.positions)
    torch.testing.assert_close(timesteps, state.denoise_mask[..., 0] * sigma, rtol=0, atol=0)
    assert torch.equal(attention, state.attention_mask)


def test_ic_lora_on_the_2_3_transformer_equals_ic_lora_pipeline(ltx_pipelines_media, tmp_path, monkeypatch):
    """LTX-2.3 with an IC-LoRA whose metadata asks for a half-size reference (as the published
    union-control ``ref0.5`` file), fp32: control video file -> Load Video -> Encode Video with
    the loader's factor -> Reference Video Guide -> our MODEL with the LoRA applied by LTX-2
    LoRA Loader, against ltx-pipelines' ICLoraPipeline steps (``load_video_conditioning`` at
    H/2 x W/2, ltx-core's 2.3 VideoEncoder, VideoConditionByReferenceLatent, weights fused by
    ltx-core's LoRA rule, ltx-core's LTXModel) on the same file and random weights: the token
    state to 1e-4 relative, the velocities of the generated tokens to assert_close's tolerance."""
    import comfy.model_management as mm
    import comfy.nested_tensor as nt

    import ltx_core.loader  # noqa: F401
    from ltx_core.components.patchifiers import VideoLatentPatchifier
    from ltx_core.conditioning import VideoConditionByReferenceLatent
    from ltx_core.guidance.perturbations import BatchedPerturbationConfig
    from ltx_core.loader.fuse_loras import _prepare_deltas
    from ltx_core.loader.primitives import LoraStateDictWithStrength, StateDict
    from ltx_core.model.transformer.modality import Modality
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.tools import AudioLatentTools, VideoLatentTools
    from ltx_core.types import AudioLatentShape, VideoLatentShape
    from ltx_reference import reference_model
    from test_comfy_model import Setup, assert_close
    from test_video_vae_parity import random_vae, reference_pair

    from openltx.host import aux_models
    from openltx.ltx2 import positions as P
    from openltx.model_loaders import lora_file
    from openltx.model_loaders import tiny_layouts as T
    from openltx.nodes.conditioning import OpenLTXLoraLoader, OpenLTXReferenceVideoGuide
    from openltx.nodes.video_in import OpenLTXEncodeVideo

    version = "2.3"
    control = write_video(tmp_path / "control.mp4", 17, 96, 64, FPS, audio_rate=None)
    # the IC-LoRA: every attention projection, reference downscale factor 2 in its metadata
    setup = Setup(version)
    from test_comfy_model import tiny_transformer

    _, base = tiny_transformer(version)
    (tmp_path / "loras").mkdir()
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "loras", ([str(tmp_path / "loras")], {".safetensors"}))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    lora = lora_file.write_tiny_lora(tmp_path / "loras" / "ic23.safetensors", base, rank=2, seed=7, downscale_factor=2)
    strength = 1.0
    model, factor = OpenLTXLoraLoader.execute(setup.patcher, "ic23.safetensors", strength)
    assert factor == 2

    # ltx-pipelines / ltx-core: reference at 96x64 for a 192x128 output, 17 frames
    cfg = T.tiny_config(version)["vae"]
    vae_model = random_vae(cfg, seed=5)
    encoder, _ = reference_pair((VideoEncoderConfigurator, VideoDecoderConfigurator), cfg, vae_model)
    with torch.no_grad():
        ref_latent = encoder(ltx_pipelines_media.load_video_conditioning(str(control), 64, 96, 17, torch.float32,
                                                                         torch.device("cpu")))  # fmt: skip
    g = torch.Generator().manual_seed(3)
    video = torch.randn(1, 128, 3, 4, 6, generator=g)
    audio = torch.randn(1, 8, 10, 16, generator=g)
    tools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), VideoLatentShape(*video.shape), FPS)
    state = tools.create_initial_state("cpu", torch.float32, video.clone())
    state = VideoConditionByReferenceLatent(ref_latent, 2, 1.0).apply_to(state, tools)
    from ltx_core.components.patchifiers import AudioPatchifier

    a_tools = AudioLatentTools(AudioPatchifier(patch_size=1), AudioLatentShape(*audio.shape))
    a_state = a_tools.create_initial_state("cpu", torch.float32, audio.clone())
    cpu = torch.device("cpu")
    lora_sd = StateDict({k.removeprefix("diffusion_model."): v for k, v in lora.items()}, cpu, 0, {torch.float32})
    # ltx-core's fuse rule per weight, W + strength * B @ A (its apply_loras takes bf16 / fp8 weights only)
    lsds = [LoraStateDictWithStrength(lora_sd, strength)]
    fused = {}
    for key, w in base.items():
        delta = _prepare_deltas(lsds, key, torch.float32, cpu) if key.endswith(".weight") else None
        fused[key] = w if delta is None else w + delta
    assert sum(not torch.equal(fused[k], base[k]) for k in base) > 10, "the LoRA patched nothing"
    ltx = reference_model(T.tiny_transformer_header(version), fused)
    ctx_v, ctx_a = setup.contexts(batch=1)
    sigma = torch.tensor([0.7])

    def modality(s, ctx):
        return Modality(latent=s.latent, sigma=sigma, timesteps=s.denoise_mask * sigma, positions=s.positions,
                        context=ctx, enabled=True, context_mask=None, attention_mask=s.attention_mask)

    # ours, through the nodes
    vae = aux_models.AuxModel(vae_model, kind="video VAE", source="tiny", load_device=torch.device("cpu"),
                              offload_device=torch.device("cpu"))  # fmt: skip
    frames = V.read_frames(control, frames=17).frames
    ours_ref = OpenLTXEncodeVideo.execute(frames, vae, width=192, height=128, downscale_factor=factor, tiling="off")[0]
    latent = {"samples": nt.NestedTensor((video, audio)), "frame_rate": FPS}
    cond = [[torch.zeros(1, 4, 8), {}]]
    pos, _ = OpenLTXReferenceVideoGuide.execute(cond, cond, latent, ours_ref, factor, 1.0, 1.0)
    ref_item = pos[0][1]["openltx_reference"][0]
    err = ((ref_item.latent - ref_latent).norm() / ref_latent.norm()).item()
    assert err < 1e-4, f"reference latent vs ltx-core's 2.3 encoder: {err}"
    try:
        mm.load_models_gpu([model], force_full_load=True)
        with torch.no_grad():
            ref_v, ref_a = ltx(modality(state, ctx_v), modality(a_state, ctx_a), BatchedPerturbationConfig.empty(1))
            ours = model.model.diffusion_model([video, audio], sigma, context=ctx_v, audio_context=ctx_a,
                                               frame_rate=FPS, openltx_reference=(ref_item,))  # fmt: skip
    finally:
        model.unpatch_model()
    n = 3 * 4 * 6
    assert ref_v.shape[1] == n + ref_latent[0, 0].numel()  # the reference tokens were appended
    assert_close(ours[0], P.unpatchify_video(ref_v[:, :n], 3, 4, 6), "2.3 video velocity with the IC-LoRA vs ltx-core")
    assert_close(ours[1], P.unpatchify_audio(ref_a, 8, 16), "2.3 audio velocity with the IC-LoRA vs ltx-core")
    plain = setup.patcher.model.diffusion_model
    with torch.no_grad():
        without = plain([video, audio], sigma, context=ctx_v, audio_context=ctx_a, frame_rate=FPS)
    assert (ours[0] - without[0]).abs().max() > 1e-3, "the reference and the LoRA changed nothing"


# ------------------------------------------------------------------------------ nodes on the host
CKPT = "ltx2-tiny.safetensors"


@pytest.fixture(scope="module")
def host(repo_root, tmp_path_factory, clip):
    root = tmp_path_factory.mktemp("video_in_models")
    (root / "checkpoints").mkdir()
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.0",
                           "--out", str(root / "checkpoints" / CKPT), "--components", "all"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = folder_paths.folder_names_and_paths["checkpoints"]
    saved_input = folder_paths.get_input_directory()
    folder_paths.folder_names_and_paths["checkpoints"] = ([str(root / "checkpoints")], saved[1])
    folder_paths.filename_list_cache.clear()
    inputs = tmp_path_factory.mktemp("video_in_inputs")
    (inputs / "sub").mkdir()
    (inputs / "sub" / "clip.mp4").write_bytes(clip.read_bytes())
    write_video(inputs / "silent.mp4", 20, 64, 64, 24.0, audio_rate=None)
    folder_paths.set_input_directory(str(inputs))
    from openltx.nodes.loaders import OpenLTXVAELoader

    vae, audio_vae = OpenLTXVAELoader.execute(vae_name=CKPT, dtype="fp32")[:2]
    yield {"vae": vae, "audio_vae": audio_vae}
    folder_paths.folder_names_and_paths["checkpoints"] = saved
    folder_paths.set_input_directory(saved_input)
    folder_paths.filename_list_cache.clear()


def test_load_video_node(host):
    from openltx.nodes.video_in import OpenLTXLoadVideo, video_files

    assert video_files() == ["silent.mp4", "sub/clip.mp4"]
    assert OpenLTXLoadVideo.validate_inputs(video="nope.mp4") != True  # noqa: E712
    images, audio, fps, count = OpenLTXLoadVideo.execute("sub/clip.mp4", start_s=0.25, frames=20, fps=0.0)
    assert images.shape == (17, 64, 96, 3) and count == 17 and fps == 24.0  # cut to 8k+1
    assert frame_index(images[0]) == 6
    assert audio["waveform"].shape == (1, 2, round(17 / 24 * audio["sample_rate"]))
    _, silent, _, n = OpenLTXLoadVideo.execute("silent.mp4", frames=40, frames_8k_plus_1=False)
    assert n == 20 and silent["waveform"].abs().max() == 0 and silent["waveform"].shape[-1] > 0


def test_encode_video_node_joint_latent_and_reference(host):
    from openltx.nodes.video_in import OpenLTXEncodeVideo, OpenLTXLoadVideo

    images, audio, fps, _ = OpenLTXLoadVideo.execute("sub/clip.mp4", frames=17, width=64, height=64)
    out = OpenLTXEncodeVideo.execute(images, host["vae"], frame_rate=fps, audio_vae=host["audio_vae"], audio=audio,
                                     tiling="off")[0]  # fmt: skip
    assert isinstance(out["samples"], comfy.nested_tensor.NestedTensor) and out["frame_rate"] == 24.0
    video, sound = out["samples"].unbind()
    assert video.shape == (1, 128, 3, 2, 2) and sound.shape == (1, 8, round(17 / 24 * 25), 16)
    silent = OpenLTXEncodeVideo.execute(images, host["vae"], frame_rate=fps, audio_vae=host["audio_vae"])[0]
    assert not torch.equal(silent["samples"].unbind()[1], sound)  # silence, not the tone
    big = OpenLTXLoadVideo.execute("sub/clip.mp4", frames=9, width=128, height=128)[0]
    ref = OpenLTXEncodeVideo.execute(big, host["vae"], width=128, height=128, downscale_factor=2)[0]
    assert ref["samples"].shape == (1, 128, 2, 2, 2)  # 64x64 px: the reference of a 128x128 video, factor 2
    with pytest.raises(ValueError, match=r"Encode Video: size 64x64 is not divisible by downscale_factor 3"):
        OpenLTXEncodeVideo.execute(images, host["vae"], width=64, height=64, downscale_factor=3)
    with pytest.raises(ValueError, match=r"encoded size 32x16.*multiples of 64"):
        OpenLTXEncodeVideo.execute(images, host["vae"], width=64, height=32, downscale_factor=2)
    with pytest.raises(ValueError, match="'audio' is connected but 'audio_vae' is not"):
        OpenLTXEncodeVideo.execute(images, host["vae"], audio=audio)


def test_node_schemas_have_tooltips_and_help_pages(repo_root):
    from openltx.nodes import video_in as N

    from node_schema_checks import assert_schemas_documented

    assert_schemas_documented(N, repo_root)
