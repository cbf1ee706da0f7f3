"""The LTX-2 VAE Loader node on the real host, with the files users have under their published names:
the bundle in models/checkpoints; Kijai's / unsloth's split video VAE and audio VAE files in
models/vae (published header key sets, scaled; see real_aux_fixtures)."""

from __future__ import annotations

import pytest
import torch

import folder_paths
import real_aux_fixtures as F
from openltx.host.aux_models import AuxModel, Unavailable
from openltx.nodes.loaders import OpenLTXUpscalerLoader, OpenLTXVAELoader, vae_options

BUNDLE = {"2.0": "ltx-2-19b-dev.safetensors", "2.3": "ltx-2.3-22b-dev.safetensors"}
VIDEO = {"2.0": "LTX2_video_vae_bf16.safetensors", "2.3": "ltx-2.3-22b-dev_video_vae.safetensors"}
AUDIO = {"2.0": "LTX2_audio_vae_bf16.safetensors", "2.3": "LTX23_audio_vae_bf16.safetensors"}


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae_models")
    for name in ("checkpoints", "vae", "latent_upscale_models"):
        (root / name).mkdir()
    for v in F.VERSIONS:
        F.write(root / "checkpoints" / BUNDLE[v], v, "bundle", "prefixed", "full")
        F.write(root / "vae" / VIDEO[v], v, "video", "bare", "none")  # no metadata, bare keys
        F.write(root / "vae" / AUDIO[v], v, "audio", "prefixed", "section" if v == "2.0" else "none")
    from openltx.model_loaders.upsampler_loading import tiny_upsampler_config, write_tiny_upsampler

    write_tiny_upsampler(root / "latent_upscale_models" / "ltx-2-spatial-upscaler-x2-1.0.safetensors",
                         tiny_upsampler_config("spatial"))  # fmt: skip
    return root


@pytest.fixture
def host(model_root, monkeypatch):
    for name in ("checkpoints", "vae", "latent_upscale_models"):
        exts = folder_paths.folder_names_and_paths[name][1]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(model_root / name)], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return model_root


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("version", F.VERSIONS)
def test_split_files_in_either_input_equal_the_bundle(host, version):
    video, audio = OpenLTXVAELoader.execute(BUNDLE[version], "fp32").args
    assert isinstance(video, AuxModel) and isinstance(audio, AuxModel)
    for first, second in ((VIDEO[version], AUDIO[version]), (AUDIO[version], VIDEO[version])):
        v2, a2 = OpenLTXVAELoader.execute(first, "fp32", second).args
        assert _same(v2.module, video.module) and _same(a2.module, audio.module), (first, second)
        assert v2.source.endswith(VIDEO[version]) and a2.source.endswith(AUDIO[version])
    latent = torch.randn(1, 2, 3, 16, generator=torch.Generator().manual_seed(0))
    from openltx.host.aux_models import decode_audio

    assert torch.equal(decode_audio(a2, latent)["waveform"], decode_audio(audio, latent)["waveform"])
    # the bundle plus a redundant second file: the bundle's parts are used
    v3, a3 = OpenLTXVAELoader.execute(BUNDLE[version], "fp32", AUDIO[version]).args
    assert v3.source.endswith(BUNDLE[version]) and a3.source.endswith(BUNDLE[version])


@pytest.mark.parametrize("version", F.VERSIONS)
def test_a_missing_part_names_the_published_file(host, version):
    video, audio = OpenLTXVAELoader.execute(VIDEO[version], "fp32").args
    assert isinstance(video, AuxModel) and isinstance(audio, Unavailable)
    message = audio.message
    assert message.startswith(f"{VIDEO[version]} has no audio decoder (audio VAE and vocoder missing)")
    wanted = AUDIO[version] if version == "2.0" else "ltx-2.3-22b-dev_audio_vae.safetensors"
    assert wanted in message and BUNDLE[version] in message and "second_vae_name" in message
    other = "LTX23_audio_vae_bf16" if version == "2.0" else "LTX2_audio_vae_bf16"
    assert other not in message  # only the files of the same release
    video, audio = OpenLTXVAELoader.execute(AUDIO[version], "fp32").args
    assert isinstance(audio, AuxModel) and isinstance(video, Unavailable)
    assert video.message.startswith(f"{AUDIO[version]} has no LTX-2 video VAE")
    wanted = "LTX2_video_vae_bf16.safetensors" if version == "2.0" else "LTX23_video_vae_bf16.safetensors"
    assert wanted in video.message and BUNDLE[version] in video.message
    from openltx.host.aux_models import require

    with pytest.raises(ValueError, match=f"LTX-2 Decode: {AUDIO[version]} has no LTX-2 video VAE"):
        require(video, "video VAE", "LTX-2 Decode", "OPENLTX_VAE")


def test_second_file_without_vae_parts_is_named(host):
    import shutil

    shutil.copy(host / "latent_upscale_models" / "ltx-2-spatial-upscaler-x2-1.0.safetensors",
                host / "vae" / "misplaced-upscaler.safetensors")  # fmt: skip
    folder_paths.filename_list_cache.clear()
    with pytest.raises(RuntimeError, match="second_vae_name: misplaced-upscaler.safetensors: no LTX-2 VAE weights in "
                                           "this file"):
        OpenLTXVAELoader.execute(VIDEO["2.0"], "fp32", "misplaced-upscaler.safetensors")
    (host / "vae" / "misplaced-upscaler.safetensors").unlink()


def test_validation_of_the_second_input(host):
    assert OpenLTXVAELoader.validate_inputs(vae_name=VIDEO["2.0"], second_vae_name="none") is True
    assert OpenLTXVAELoader.validate_inputs(vae_name=VIDEO["2.0"], second_vae_name=AUDIO["2.0"]) is True
    message = OpenLTXVAELoader.validate_inputs(vae_name=VIDEO["2.0"], second_vae_name="LTX2_audio_vae_fp8.safetensors")
    assert isinstance(message, str) and message.startswith("second_vae_name: 'LTX2_audio_vae_fp8.safetensors' was not found")
    assert set(vae_options()) >= {BUNDLE["2.0"], VIDEO["2.3"], AUDIO["2.3"]}
    schema = OpenLTXVAELoader.define_schema()
    names = [i.id for i in schema.inputs]
    assert names == ["vae_name", "dtype", "second_vae_name"]  # old workflows keep their widget order
    assert schema.inputs[2].optional and schema.inputs[2].default == "none" and all(i.tooltip for i in schema.inputs)


def test_upscaler_loader_without_metadata(host):
    from safetensors.torch import load_file, save_file

    path = host / "latent_upscale_models" / "ltx-2-spatial-upscaler-x2-1.0.safetensors"
    bare = host / "latent_upscale_models" / "no-metadata.safetensors"
    save_file(load_file(str(path)), str(bare))
    folder_paths.filename_list_cache.clear()
    a = OpenLTXUpscalerLoader.execute("ltx-2-spatial-upscaler-x2-1.0.safetensors", "fp32").args[0]
    b = OpenLTXUpscalerLoader.execute("no-metadata.safetensors", "fp32").args[0]
    assert a.module.config == b.module.config and _same(a.module, b.module)
