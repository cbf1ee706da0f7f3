"""Live previews while sampling (host/previews.py), in-process on the real host.

* the picture: the packed joint ``x0`` of the sampler is split by its latent shapes into the
  video frames and the audio strip (nested, video-only and audio-only latents);
* the colours: a per-channel map fitted to the video VAE's encoder explains the colours of
  held-out pictures (tiny random VAE: measured R^2, compared with a constant-colour guess);
* core KSampler and SamplerCustomAdvanced send one preview per step through ComfyUI's progress
  hook when previews are on, none with ComfyUI's ``--preview-method none``, and sampling itself
  is unchanged by them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import comfy.utils
from comfy.cli_args import LatentPreviewMethod, args

from openltx.host import aux_models, model_loading
from openltx.host import previews as pv
from openltx.nodes.latents import OpenLTXEmptyLatent


@pytest.fixture(scope="module")
def bundle(repo_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("previews") / "ltx2-tiny.safetensors"
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.0",
                           "--out", str(path), "--components", "all"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path


@pytest.fixture(scope="module")
def model(bundle):
    return model_loading.load_ltx2_model(str(bundle))


@pytest.fixture(scope="module")
def video_vae(bundle):
    video, _ = aux_models.load_vae_file(str(bundle), "fp32")
    return video


@pytest.fixture
def captured(monkeypatch):
    """Previews sent through ComfyUI's progress hook: list of (value, total, PIL image)."""
    seen: list = []

    def hook(value, total, preview, node_id=None, **_):
        if preview is not None:
            fmt, image, max_size = preview
            assert fmt == "JPEG" and max_size > 0
            seen.append((value, total, image))

    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", hook)
    return seen


@pytest.fixture
def preview_method(monkeypatch):
    def set_method(method):
        monkeypatch.setattr(args, "preview_method", method)
    return set_method


def conditioning(model, length=5, seed=1):
    cc = model.model.model_config
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, length, cc.video_context_width, generator=g),
             {"audio_context": torch.randn(1, length, cc.audio_context_width, generator=g), "frame_rate": 24.0}]]


def joint_latent(frames=17):
    return OpenLTXEmptyLatent.execute(width=96, height=64, frames=frames, fps=24.0, batch_size=1)[0]


# --- the picture ------------------------------------------------------------------------------

def test_picture_of_a_packed_joint_latent():
    g = torch.Generator().manual_seed(0)
    video, audio = torch.randn(2, 128, 5, 4, 6, generator=g), torch.randn(2, 8, 21, 16, generator=g)
    packed, shapes = comfy.utils.pack_latents([video, audio])
    v, a = pv.split_packed(packed, shapes)
    assert torch.equal(v, video) and torch.equal(a, audio)
    pic = pv.LatentPreviewer(shapes).picture(packed)
    frame_w = round(6 * pv.FRAME_HEIGHT / 4)
    width = 3 * frame_w + 2 * pv.GAP  # first, middle and last latent frame
    assert pic.shape == (3, pv.FRAME_HEIGHT + pv.GAP + pv.AUDIO_STRIP_HEIGHT, width)
    assert 0.0 <= float(pic.min()) and float(pic.max()) <= 1.0
    # the audio strip follows the audio latent: a louder second half is brighter there
    loud = audio.clone()
    loud[:, :, 11:] += 5.0
    strip = pv.LatentPreviewer(shapes).picture(comfy.utils.pack_latents([video, loud])[0])[:, -pv.AUDIO_STRIP_HEIGHT:]
    assert strip[0, :, width // 2 + 10:].mean() > strip[0, :, : width // 2 - 10].mean() + 0.2


def test_picture_of_single_stream_latents():
    video = torch.randn(1, 128, 2, 3, 3)
    assert pv.LatentPreviewer([video.shape]).picture(video).shape == (3, pv.FRAME_HEIGHT, 2 * pv.FRAME_HEIGHT + pv.GAP)
    audio = torch.randn(1, 8, 9, 16)
    assert pv.LatentPreviewer([audio.shape]).picture(audio).shape[1] == pv.AUDIO_STRIP_HEIGHT
    assert pv.LatentPreviewer(None).image(video).size == (2 * pv.FRAME_HEIGHT + pv.GAP, pv.FRAME_HEIGHT)


def test_rgb_map_colours_the_frames():
    factors = torch.zeros(128, 3)
    factors[0, 0] = factors[1, 1] = factors[2, 2] = 0.5
    rgb = pv.RGBMap(factors, torch.full((3,), 0.5))
    video = torch.zeros(1, 128, 1, 2, 2)
    video[:, 0] = 1.0  # red channel up, the others at the bias
    pic = pv.LatentPreviewer([video.shape], rgb).picture(video)
    assert torch.allclose(pic[:, 10, 10], torch.tensor([1.0, 0.5, 0.5]), atol=1e-5)


# --- the colours ------------------------------------------------------------------------------

def test_rgb_map_fitted_to_the_registered_vae_explains_colours(video_vae, preview_method):
    preview_method(LatentPreviewMethod.NoPreviews)  # registration alone fits nothing yet
    pv.register_video_vae(video_vae)
    fit = pv.rgb_map_for(128)  # fitted now, from the VAE's encoder (12 pictures of 256 x 256)
    assert fit is not None and fit.factors.shape == (128, 3) and fit.bias.shape == (3,)
    # held-out pictures (another seed): the map explains most of the colour variance, where a
    # constant colour explains none (R^2 = 0); measured 0.83 with the tiny random VAE
    print(f"preview colours fitted to the tiny VAE: R^2 {fit.r2:.3f} on held-out pictures")
    assert fit.r2 > 0.6, fit.r2
    assert pv.rgb_map_for(128) is fit  # fitted once per VAE file
    assert pv.rgb_map_for(64) is None  # no VAE of that width: false colours


# --- while sampling ---------------------------------------------------------------------------

def test_ksampler_sends_a_preview_per_step(model, captured, preview_method):
    import nodes

    preview_method(LatentPreviewMethod.Auto)
    latent = joint_latent()
    out = nodes.common_ksampler(model, 3, 3, 2.0, "euler", "simple", conditioning(model), conditioning(model, seed=2),
                                latent)[0]
    assert [(v, t) for v, t, _ in captured] == [(1, 3), (2, 3), (3, 3)]
    frame_w = round(3 * pv.FRAME_HEIGHT / 2)  # 96 x 64 px -> 3 x 2 latent cells; 17 frames -> 3 latent frames
    size = (3 * frame_w + 2 * pv.GAP, pv.FRAME_HEIGHT + pv.GAP + pv.AUDIO_STRIP_HEIGHT)
    assert all(image.size == size for _, _, image in captured)
    # previews leave the result alone
    preview_method(LatentPreviewMethod.NoPreviews)
    again = nodes.common_ksampler(model, 3, 3, 2.0, "euler", "simple", conditioning(model), conditioning(model, seed=2),
                                  latent)[0]
    for a, b in zip(out["samples"].unbind(), again["samples"].unbind()):
        assert torch.equal(a, b)
    assert len(captured) == 3  # none with --preview-method none


def test_sampler_custom_advanced_previews_a_video_only_latent(model, captured, preview_method):
    # A plain video latent through core's guider: on current ComfyUI the model gets it as [tensor].
    from comfy_extras.nodes_custom_sampler import (
        BasicScheduler, CFGGuider, KSamplerSelect, RandomNoise, SamplerCustomAdvanced,
    )

    preview_method(LatentPreviewMethod.Latent2RGB)
    video = joint_latent()["samples"].unbind()[0]
    guider = CFGGuider.execute(model=model, positive=conditioning(model), negative=conditioning(model, seed=2),
                               cfg=2.0)[0]
    out = SamplerCustomAdvanced.execute(
        noise=RandomNoise.execute(noise_seed=1)[0], guider=guider, sampler=KSamplerSelect.execute(sampler_name="euler")[0],
        sigmas=BasicScheduler.execute(model=model, scheduler="simple", steps=2, denoise=1.0)[0],
        latent_image={"samples": video},
    )
    assert out[0]["samples"].shape == video.shape and torch.isfinite(out[0]["samples"]).all()
    assert len(captured) == 2 and captured[-1][2].size[1] == pv.FRAME_HEIGHT  # no audio strip


def test_previews_survive_a_clone(model):  # LoRA loaders and patch nodes clone the MODEL
    import comfy.patcher_extension

    clone = model.clone()
    wrappers = clone.wrappers.get(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, {})
    assert pv.WRAPPER_KEY in wrappers
