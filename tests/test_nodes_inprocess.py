"""The pack's nodes, called in-process against the real ComfyUI host (no server).

The loader node reads a tiny official-layout checkpoint (``tools/make_tiny_checkpoint.py``)
from temp model folders; ComfyUI's own KSampler and SamplerCustomAdvanced then sample it, as
the tool wrote it, on OpenLTXEmptyLatent's output with a synthetic CONDITIONING.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import torch

import comfy.nested_tensor
import folder_paths

from openltx.nodes.latents import OpenLTXEmptyLatent
from openltx.nodes.loaders import DIFFUSION_MODELS_PREFIX, OpenLTXCheckpointLoader, checkpoint_options

CKPT = "ltx2-tiny.safetensors"  # the tool's tiny bundle: the released models' latent widths


# --- model folders ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dirs(repo_root, tmp_path_factory):
    """checkpoints/: the tiny bundle and a non-model; diffusion_models/: transformer-only
    copies (one with the same name as in checkpoints/)."""
    tool = repo_root / "tools" / "make_tiny_checkpoint.py"
    if not tool.is_file():
        pytest.fail(f"{tool} is missing (it writes the tiny official-layout checkpoints)", pytrace=False)
    root = tmp_path_factory.mktemp("models")
    dirs = {name: root / name for name in ("checkpoints", "diffusion_models")}
    for d in dirs.values():
        d.mkdir()
    for folder, components in (("checkpoints", "all"), ("diffusion_models", "transformer")):
        proc = subprocess.run(
            [sys.executable, str(tool), "--version", "2.0", "--out", str(dirs[folder] / CKPT),
             "--components", components],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    (dirs["diffusion_models"] / "only-here.safetensors").write_bytes((dirs["diffusion_models"] / CKPT).read_bytes())
    (dirs["checkpoints"] / "not-a-model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return dirs


@pytest.fixture
def folders(model_dirs, monkeypatch):
    """Point ComfyUI's "checkpoints" and "diffusion_models" folders at the temp dirs."""
    for name, path in model_dirs.items():
        exts = folder_paths.folder_names_and_paths[name][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(path)], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return model_dirs


@pytest.fixture
def model(folders):
    """The loader node's MODEL for the tool's tiny bundle, as it was written."""
    return OpenLTXCheckpointLoader.execute(ckpt_name=CKPT, weight_dtype="default")[0]


def conditioning(model, length: int, seed: int, frame_rate: float = 24.0):
    cc = model.model.model_config
    g = torch.Generator().manual_seed(seed)
    return [[
        torch.randn(1, length, cc.video_context_width, generator=g),
        {"audio_context": torch.randn(1, length, cc.audio_context_width, generator=g), "frame_rate": frame_rate},
    ]]


def empty_latent(frames=9, fps=24.0, batch_size=1):
    return OpenLTXEmptyLatent.execute(width=64, height=96, frames=frames, fps=fps, batch_size=batch_size)[0]


def assert_av_samples(samples, batch, frames=9, fps=24.0):
    assert isinstance(samples, comfy.nested_tensor.NestedTensor)
    video, audio = samples.unbind()
    assert video.shape == (batch, 128, (frames - 1) // 8 + 1, 96 // 32, 64 // 32)
    assert audio.shape == (batch, 8, round(frames / fps * 25), 16)
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()
    assert video.abs().sum() > 0 and audio.abs().sum() > 0


# --- loader ----------------------------------------------------------------------------------

def test_loader_lists_both_folders_and_disambiguates(folders):
    options = checkpoint_options()
    assert CKPT in options and DIFFUSION_MODELS_PREFIX + CKPT in options
    assert "only-here.safetensors" in options  # unique names keep no prefix
    from openltx.nodes.loaders import resolve_checkpoint

    assert resolve_checkpoint(CKPT) == str(folders["checkpoints"] / CKPT)
    assert resolve_checkpoint(DIFFUSION_MODELS_PREFIX + CKPT) == str(folders["diffusion_models"] / CKPT)
    assert resolve_checkpoint("only-here.safetensors") == str(folders["diffusion_models"] / "only-here.safetensors")


def test_loader_loads_transformer_only_file(folders):
    model = OpenLTXCheckpointLoader.execute(ckpt_name=DIFFUSION_MODELS_PREFIX + CKPT, weight_dtype="fp32")[0]
    assert model.model.get_dtype() == torch.float32


def test_loader_error_is_a_clear_message(folders):
    with pytest.raises(RuntimeError, match="LTX-2 Checkpoint Loader: cannot load 'not-a-model.safetensors'"):
        OpenLTXCheckpointLoader.execute(ckpt_name="not-a-model.safetensors", weight_dtype="default")
    with pytest.raises(FileNotFoundError, match="no-such-file"):
        OpenLTXCheckpointLoader.execute(ckpt_name="no-such-file.safetensors", weight_dtype="default")


# --- sampling with core nodes ---------------------------------------------------------------

def test_ksampler_samples_the_joint_latent(model):
    import nodes

    latent = empty_latent(batch_size=2)
    out = nodes.common_ksampler(model, 7, 3, 2.0, "euler", "simple",
                                conditioning(model, 6, 1), conditioning(model, 4, 2), latent)[0]
    assert_av_samples(out["samples"], batch=2)
    assert out["frame_rate"] == 24.0


def test_sampler_custom_advanced_samples_the_joint_latent(model):
    from comfy_extras.nodes_custom_sampler import (
        BasicScheduler, CFGGuider, KSamplerSelect, RandomNoise, SamplerCustomAdvanced,
    )

    noise = RandomNoise.execute(noise_seed=3)[0]
    guider = CFGGuider.execute(model=model, positive=conditioning(model, 5, 1),
                               negative=conditioning(model, 5, 2), cfg=3.0)[0]
    sampler = KSamplerSelect.execute(sampler_name="euler")[0]
    sigmas = BasicScheduler.execute(model=model, scheduler="simple", steps=3, denoise=1.0)[0]
    assert sigmas.shape == (4,) and float(sigmas[0]) == pytest.approx(1.0) and float(sigmas[-1]) == 0.0
    out = SamplerCustomAdvanced.execute(noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                                        latent_image=empty_latent())
    assert_av_samples(out[0]["samples"], batch=1)


def test_ksampler_video_only_latent(model):
    import nodes

    video = empty_latent()["samples"].unbind()[0]
    out = nodes.common_ksampler(model, 1, 2, 1.0, "euler", "simple",
                                conditioning(model, 4, 1), conditioning(model, 4, 2), {"samples": video})[0]
    assert torch.is_tensor(out["samples"]) and out["samples"].shape == video.shape
    assert torch.isfinite(out["samples"]).all()


def test_tiny_bundle_takes_the_released_models_latent(model):
    """The tool's file has the released models' latent widths: OpenLTXEmptyLatent (which has no
    model input) makes exactly what it samples."""
    cfg = model.model.model_config.transformer_config
    assert model.get_model_object("latent_format").latent_channels == cfg.in_channels == 128
    assert cfg.audio_in_channels == 8 * 16
    video, audio = empty_latent()["samples"].unbind()
    assert video.shape[1] == cfg.in_channels and audio.shape[1] * audio.shape[3] == cfg.audio_in_channels


def test_latent_with_wrong_channels_is_a_clear_error(model):
    """A latent made for another model: a clear error, not a matmul shape error."""
    import nodes

    positive, negative = conditioning(model, 4, 1), conditioning(model, 4, 2)
    g = torch.Generator().manual_seed(0)
    # not all zeros: core widens an all-zero plain latent to the model's latent_channels
    video_16 = {"samples": torch.randn(1, 16, 2, 3, 2, generator=g)}
    with pytest.raises(ValueError, match="video latent has 16 channels, this LTX-2 model expects 128"):
        nodes.common_ksampler(model, 0, 1, 1.0, "euler", "simple", positive, negative, video_16)
    widened = nodes.common_ksampler(model, 0, 1, 1.0, "euler", "simple", positive, negative,
                                    {"samples": torch.zeros(1, 16, 2, 3, 2)})[0]["samples"]
    assert widened.shape == (1, 128, 2, 3, 2)
    video, _ = empty_latent()["samples"].unbind()
    joint = {"samples": comfy.nested_tensor.NestedTensor([video, torch.zeros(1, 2, 9, 16)])}  # never widened
    with pytest.raises(ValueError, match="audio latent has 2 x 16 features per step, this LTX-2 model expects 128"):
        nodes.common_ksampler(model, 0, 1, 1.0, "euler", "simple", positive, negative, joint)


# --- empty latent ---------------------------------------------------------------------------

def test_empty_latent_shapes_and_frame_rate():
    latent = OpenLTXEmptyLatent.execute(width=768, height=512, frames=121, fps=24.0, batch_size=2)[0]
    video, audio = latent["samples"].unbind()
    assert video.shape == (2, 128, 16, 16, 24)
    assert audio.shape == (2, 8, 126, 16)
    assert latent["frame_rate"] == 24.0
    assert not video.any() and not audio.any()


def test_validation_rejects_bad_sizes_with_nearest_values():
    msg = OpenLTXEmptyLatent.validate_inputs(width=500, height=512, frames=121)
    assert isinstance(msg, str) and "480" in msg and "512" in msg and "width" in msg
    msg = OpenLTXEmptyLatent.validate_inputs(width=768, height=512, frames=120)
    assert isinstance(msg, str) and "113" in msg and "121" in msg
    msg = OpenLTXEmptyLatent.validate_inputs(width=768, height=20, frames=121)
    assert isinstance(msg, str) and "height" in msg and "32" in msg
    for w, h, f in ((768, 512, 121), (32, 32, 1), (1280, 704, 97)):
        assert OpenLTXEmptyLatent.validate_inputs(width=w, height=h, frames=f) is True
    assert OpenLTXEmptyLatent.validate_inputs(width=None, height=None, frames=None) is True  # linked inputs
    with pytest.raises(ValueError, match="113 or 121"):
        OpenLTXEmptyLatent.execute(width=768, height=512, frames=120, fps=24.0, batch_size=1)


def test_validate_inputs_names_only_the_checked_inputs():
    import inspect

    params = inspect.signature(OpenLTXEmptyLatent.validate_inputs).parameters
    assert list(params) == ["width", "height", "frames", "fps"]  # fps: finite and in range (nodes/validation.py)


# --- schema and registration ------------------------------------------------------------------

NODES = (OpenLTXCheckpointLoader, OpenLTXEmptyLatent)


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.__name__)
def test_schema_documents_every_input_and_output(node):
    schema = node.GET_SCHEMA()
    assert schema.node_id.startswith("OpenLTX") and schema.node_id == node.__name__
    assert schema.display_name.startswith("LTX-2")
    assert schema.category.startswith("OpenLTX/")
    assert schema.description.strip()
    for item in list(schema.inputs) + list(schema.outputs):
        assert item.tooltip and item.tooltip.strip(), f"{schema.node_id}.{item.id} has no tooltip"


def test_entrypoint_lists_the_nodes(openltx_pack, repo_root):
    assert not hasattr(openltx_pack, "NODE_CLASS_MAPPINGS")  # ComfyUI would ignore the V3 entry point
    assert openltx_pack.WEB_DIRECTORY == "./web"
    extension = asyncio.run(openltx_pack.comfy_entrypoint())
    node_list = asyncio.run(extension.get_node_list())
    ids = {n.GET_SCHEMA().node_id for n in node_list}
    assert {"OpenLTXCheckpointLoader", "OpenLTXEmptyLatent"} <= ids
    for node_id in ("OpenLTXCheckpointLoader", "OpenLTXEmptyLatent"):
        assert (repo_root / "web" / "docs" / f"{node_id}.md").is_file(), f"no help page for {node_id}"
