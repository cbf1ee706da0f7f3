"""The LTX-2.5 files through the pack's nodes, in-process with the real host.

Tiny stand-ins of every published 2.5 file under its published name in its ComfyUI folder
(``tiny_layouts_25.write_tiny_set_25``): the transformer files (bf16 dev / distilled,
comfy-int8-convrot, nvfp4) in diffusion_models, the Gemma 4 files in text_encoders, both video
VAEs and the audio VAE in vae, the duration head in model_patches, the upscalers and the
distilled LoRA.
"""

from __future__ import annotations

import pytest
import torch

import folder_paths
from openltx.host.aux_models import AuxModel
from openltx.ltx2.diffusion_vae import DiffusionVAE
from openltx.ltx2.duration_head import frames_for_seconds
from openltx.ltx2.video_vae import VideoVAE
from openltx.model_loaders import tiny_layouts_25 as T25
from openltx.nodes.conditioning import OpenLTXLoraLoader
from openltx.nodes.decode import OpenLTXDecode, OpenLTXEncodeImage
from openltx.nodes.duration import OpenLTXDurationHead
from openltx.nodes.latents import OpenLTXEmptyLatent
from openltx.nodes.loaders import OpenLTXCheckpointLoader, OpenLTXUpscalerLoader, OpenLTXVAELoader
from openltx.nodes.text import OpenLTXTextEncode, OpenLTXTextEncoderLoader

from quant_fixtures import run

N = T25.FILE_NAMES
FOLDERS = ("diffusion_models", "checkpoints", "text_encoders", "vae", "model_patches", "latent_upscale_models", "loras")


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models25")
    dirs = {n: root / n for n in FOLDERS}
    for d in dirs.values():
        d.mkdir()
    T25.write_tiny_set_25(dirs)
    return dirs


@pytest.fixture
def folders(model_dirs, monkeypatch):
    for name in FOLDERS:
        exts = folder_paths.folder_names_and_paths[name][1] if name in folder_paths.folder_names_and_paths \
            else set(folder_paths.supported_pt_extensions)  # fmt: skip
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(model_dirs[name])], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    monkeypatch.setattr(folder_paths, "models_dir", str(model_dirs["vae"].parent))
    return model_dirs


def test_checkpoint_loader_takes_every_25_transformer_file(folders):
    outs = {}
    for name in (N["transformer"], N["transformer_int8"], N["transformer_nvfp4"]):
        assert OpenLTXCheckpointLoader.validate_inputs(ckpt_name=name) is True
        (model,) = OpenLTXCheckpointLoader.execute(name).args
        cfg = model.model.model_config.transformer_config
        assert cfg.use_keyframes_abs_pos_embedding and not cfg.ff_bias
        outs[name] = run(model)
    assert all(torch.isfinite(v).all() for v in outs.values())


def test_vae_loader_diffusion_and_conv_25_vaes(folders):
    video, audio = OpenLTXVAELoader.execute(N["diffusion_vae"], "fp32", N["audio_vae"]).args
    assert isinstance(video, AuxModel) and isinstance(video.module, DiffusionVAE) and isinstance(audio, AuxModel)
    conv, _ = OpenLTXVAELoader.execute(N["conv_vae"], "fp32", N["audio_vae"]).args
    assert isinstance(conv.module, VideoVAE)
    latent = OpenLTXEmptyLatent.execute(64, 64, 9, 24.0).args[0]
    latent["samples"].unbind()[0].normal_(generator=torch.Generator().manual_seed(0))
    frames = {}
    for seed in (1, 1, 2):
        images, sound = OpenLTXDecode.execute(latent, video, audio, tiling="off", seed=seed).args
        assert images.shape == (9, 64, 64, 3) and sound["waveform"].shape[0] == 1
        frames.setdefault(seed, []).append(images)
    assert torch.equal(frames[1][0], frames[1][1])  # the diffusion decoder's noise comes from the seed
    assert not torch.equal(frames[1][0], frames[2][0])
    images, _ = OpenLTXDecode.execute(latent, conv, None, tiling="off").args
    assert images.shape == (9, 64, 64, 3)
    picture = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(1))
    (encoded,) = OpenLTXEncodeImage.execute(picture, video).args[:1]
    assert tuple(encoded["samples"].shape) == (1, 128, 1, 2, 2)


def test_25_upscalers_and_distilled_lora(folders):
    for name in (N["spatial_upscaler"], N["temporal_upscaler"]):
        (up,) = OpenLTXUpscalerLoader.execute(name, "fp32").args
        assert up.kind == "upscaler"
    (model,) = OpenLTXCheckpointLoader.execute(N["transformer_distilled"]).args
    before = run(model)
    patched, factor = OpenLTXLoraLoader.execute(model, N["lora"], 1.0).args
    assert factor == 1
    assert len(patched.patches) > 0
    patched.patch_model()  # what sampling does through ComfyUI's model management
    try:
        assert not torch.allclose(run(patched), before)
    finally:
        patched.unpatch_model()


def test_duration_node_drives_the_frame_count(folders):
    (encoder,) = OpenLTXTextEncoderLoader.execute(N["gemma4"], N["transformer"], device="cpu", dtype="fp32").args
    (cond,) = OpenLTXTextEncode.execute(encoder, "a cat walks on the beach at sunset", 24.0).args
    frames, seconds = OpenLTXDurationHead.execute(cond, N["duration_head"], 24.0).args
    assert (frames - 1) % 8 == 0 and 25 <= frames <= 481
    assert frames == frames_for_seconds(seconds, 24.0)
    # the frames feed LTX-2 Empty Latent
    latent = OpenLTXEmptyLatent.execute(64, 64, frames, 24.0).args[0]
    assert latent["samples"].unbind()[0].shape[2] == (frames - 1) // 8 + 1
    short, _ = OpenLTXDurationHead.execute(cond, N["duration_head"], 24.0, 0.1, 0.5).args
    assert short <= 17  # bounds clamp the prediction (0.5 s at 24 fps -> 9 frames on the grid, or the next)
    assert "min_seconds" in OpenLTXDurationHead.validate_inputs(N["duration_head"], 2.0, 1.0)
    assert "model_patches" in OpenLTXDurationHead.validate_inputs("ltx-2.5-missing.safetensors")


def test_duration_node_refuses_other_models_conditioning(folders):
    cond = [[torch.zeros(1, 8, 3840), {"frame_rate": 24.0}]]  # an LTX-2.0 conditioning (Gemma 3 width)
    with pytest.raises(ValueError, match=r"LTX-2 Duration \(2\.5\).*3840.*LTX-2\.5 text encoder"):
        OpenLTXDurationHead.execute(cond, N["duration_head"], 24.0)
