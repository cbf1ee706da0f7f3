"""Our video VAE equals ltx-core 1.0.0's on the same random weights and inputs (fp32).

The reference encoder / decoder come from ltx-core's own configurators and are filled with
*our* state dict (keys mapped the way ltx-core's loader maps the file), so any difference is
a difference of the forward passes.  Covered: encode; decode with the plain decoder and with
the timestep-conditioned one (with noise injection); both official block lists (2.0's
residual ``compress_all`` stages, 2.3's ``compress_space`` / ``compress_time``); the tiny
bundle written by ``tools/make_tiny_checkpoint.py`` through ``load_video_vae``; bad inputs.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from openltx.ltx2.video_vae import VideoVAE
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.model_loaders.tiny_layouts import random_tensor, tiny_config, tiny_state_dict
from openltx.model_loaders.video_vae_loading import load_video_vae

REPO = Path(__file__).resolve().parents[1]
VERSIONS = ("2.0", "2.3")
RTOL = 1e-5


@pytest.fixture(scope="module")
def ref():
    import ltx_core.loader  # noqa: F401  (breaks a circular import in ltx-core)
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator

    return VideoEncoderConfigurator, VideoDecoderConfigurator


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def conditioned_config(version: str) -> dict:
    """The tiny config with a timestep-conditioned decoder that also injects noise."""
    vae = copy.deepcopy(tiny_config(version)["vae"])
    vae["timestep_conditioning"] = True
    for name, params in vae["decoder_blocks"]:
        if name == "res_x":
            params["inject_noise"] = True
    return vae


def random_vae(vae_config: dict, seed: int = 0) -> VideoVAE:
    """Our VAE with sane random weights (the tiny-checkpoint value recipe)."""
    model = VideoVAE(vae_config, timestep_conditioning=vae_config.get("timestep_conditioning", True))
    g = torch.Generator().manual_seed(seed)
    sd = {k: random_tensor(k, tuple(v.shape), g) for k, v in model.state_dict().items()}
    model.load_state_dict(sd, strict=True)
    return model.eval()


def reference_pair(ref, vae_config: dict, model: VideoVAE):
    """ltx-core's encoder and decoder holding our model's tensors."""
    enc_cls, dec_cls = ref
    sd = model.state_dict()
    stats = {k: v for k, v in sd.items() if k.startswith("per_channel_statistics.")}
    out = []
    for cls, half in ((enc_cls, "encoder."), (dec_cls, "decoder.")):
        module = cls.from_config({"vae": vae_config})
        part = {k[len(half) :]: v for k, v in sd.items() if k.startswith(half)}
        module.load_state_dict({**part, **stats}, strict=True)
        out.append(module.eval())
    return out


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("conditioned", [False, True], ids=["plain", "timestep"])
def test_encode_decode_match_ltx_core(ref, version, conditioned):
    vae_config = conditioned_config(version) if conditioned else tiny_config(version)["vae"]
    model = random_vae(vae_config, seed=1)
    assert model.timestep_conditioning == conditioned
    enc, dec = reference_pair(ref, vae_config, model)
    g = torch.Generator().manual_seed(2)
    pixels = torch.rand(1, 3, 17, 64, 96, generator=g) * 2 - 1
    latent = torch.randn(2, 128, 3, 2, 3, generator=g)
    with torch.no_grad():
        ours, theirs = model.encode(pixels), enc(pixels)
        assert ours.shape == theirs.shape == (1, 128, 3, 2, 3)
        e_enc = rel_err(ours, theirs)
        kwargs = {}
        if conditioned:  # same noise draws in the same order on both sides
            out = model.decode(latent, generator=torch.Generator().manual_seed(5))
            want = dec(latent, generator=torch.Generator().manual_seed(5))
            # an explicit timestep reaches the AdaLN the same way
            out_t = model.decode(latent, timestep=0.3, generator=torch.Generator().manual_seed(6))
            want_t = dec(latent, timestep=torch.full((2,), 0.3), generator=torch.Generator().manual_seed(6))
            assert rel_err(out_t, want_t) <= RTOL
            assert rel_err(out_t, out) > 1e-3, "the timestep must change the output"
        else:
            out, want = model.decode(latent, **kwargs), dec(latent)
        assert out.shape == want.shape == (2, 3, 17, 64, 96)
        e_dec = rel_err(out, want)
    assert e_enc <= RTOL, f"encode relative error {e_enc:.2e}"
    assert e_dec <= RTOL, f"decode relative error {e_dec:.2e}"


def test_padding_modes_follow_the_header():
    cfg = dict(tiny_config("2.0")["vae"])
    assert "spatial_padding_mode" not in cfg  # as in the published 2.0 header
    model = VideoVAE(cfg, timestep_conditioning=False)
    assert model.encoder.conv_in.conv.padding_mode == "zeros"
    assert model.decoder.conv_in.conv.padding_mode == "reflect"
    cfg["spatial_padding_mode"] = "replicate"
    model = VideoVAE(cfg, timestep_conditioning=False)
    assert model.encoder.conv_in.conv.padding_mode == model.decoder.conv_out.conv.padding_mode == "replicate"


@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_bundle_through_the_loader(ref, version, tmp_path):
    """``tools/make_tiny_checkpoint.py`` bundle -> ``load_video_vae`` -> equal to ltx-core."""
    path = tmp_path / f"tiny-{version}.safetensors"
    subprocess.run(
        [sys.executable, str(REPO / "tools" / "make_tiny_checkpoint.py"), "--version", version, "--out", str(path),
         "--components", "all"], check=True, cwd=REPO, capture_output=True,
    )  # fmt: skip
    model = load_video_vae(path)
    assert not model.timestep_conditioning  # the file's decoder has no last_time_embedder
    file_sd = tiny_state_dict(version, ["video_vae"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, file_sd["vae." + key]), key
    enc, dec = reference_pair(ref, tiny_config(version)["vae"] | {"timestep_conditioning": False}, model)
    g = torch.Generator().manual_seed(3)
    pixels = torch.rand(1, 3, 9, 64, 64, generator=g) * 2 - 1
    latent = torch.randn(1, 128, 2, 2, 2, generator=g)
    with torch.no_grad():
        assert rel_err(model.encode(pixels), enc(pixels)) <= RTOL
        assert rel_err(model.decode(latent), dec(latent)) <= RTOL


# ------------------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def small_vae():
    return random_vae(tiny_config("2.3")["vae"] | {"timestep_conditioning": False})


@pytest.mark.parametrize(
    "shape, words",
    [
        ((1, 3, 10, 64, 64), ["10 frames", "8k+1", "9 or 17"]),
        ((1, 3, 9, 70, 64), ["height 70", "multiple of 32", "64 or 96"]),
        ((1, 3, 9, 64, 20), ["width 20", "32"]),
        ((1, 4, 9, 64, 64), ["4 channels"]),
        ((3, 9, 64, 64), ["(B, 3, F, H, W)"]),
    ],
)
def test_bad_pixels_are_named(small_vae, shape, words):
    with pytest.raises(ValueError) as err:
        small_vae.encode(torch.zeros(shape))
    for w in words:
        assert w in str(err.value), str(err.value)


def test_latent_of_another_model(small_vae):
    with pytest.raises(ValueError, match=r"expected a video latent \(B, 128.*found shape \(1, 16, 2, 2, 2\)"):
        small_vae.decode(torch.zeros(1, 16, 2, 2, 2))
    with pytest.raises(ValueError, match="audio latent"):
        small_vae.decode(torch.zeros(1, 8, 9, 16))


# ------------------------------------------------------------------------------ standalone files
def test_standalone_vae_files(tmp_path):
    """Bare or ``vae.``-prefixed keys, config = the vae section, a full config or none;
    conditioning read from the keys (a header saying otherwise is refused); an unknown or a
    missing key -> CheckpointError naming it.  (test_real_aux_files covers the published layouts.)"""
    import json

    from safetensors.torch import save_file

    vae_cfg = conditioned_config("2.3")
    # a header that pads the decoder with zeros (the published one says reflect): the header is honoured
    vae_cfg["decoder_spatial_padding_mode"] = "zeros"
    sd = random_vae(conditioned_config("2.3")).state_dict()
    sd = {**sd, "per_channel_statistics.channel": torch.zeros(128), "per_channel_statistics.mean-of-stds": torch.ones(128)}
    bare = tmp_path / "bare.safetensors"
    save_file(sd, str(bare), metadata={"config": json.dumps(vae_cfg)})
    model = load_video_vae(bare)
    assert model.timestep_conditioning
    prefixed = tmp_path / "prefixed.safetensors"
    save_file({"vae." + k: v for k, v in sd.items()}, str(prefixed), metadata={"config": json.dumps({"vae": vae_cfg})})
    assert load_video_vae(prefixed, dtype=torch.bfloat16).decoder.conv_in.conv.weight.dtype == torch.bfloat16
    lying = tmp_path / "lying.safetensors"
    save_file(sd, str(lying), metadata={"config": json.dumps({**vae_cfg, "timestep_conditioning": False})})
    with pytest.raises(CheckpointError, match="lying.safetensors: the header's config.vae.timestep_conditioning is "
                                              "False, but the tensor 'decoder.last_"):
        load_video_vae(lying)
    no_config = tmp_path / "no_config.safetensors"
    save_file(sd, str(no_config))
    plain = load_video_vae(no_config)  # the 2.3 block sequence: the released 2.3 settings
    assert plain.timestep_conditioning and plain.version == "2.3"
    a, b = plain.state_dict(), model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # this header pads the decoder with zeros; without a header the released decoder's reflect applies
    assert model.decoder.conv_in.conv.padding_mode == "zeros" and plain.decoder.conv_in.conv.padding_mode == "reflect"
    extra = tmp_path / "extra.safetensors"
    save_file({**sd, "decoder.bogus.weight": torch.zeros(1)}, str(extra), metadata={"config": json.dumps(vae_cfg)})
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): 'decoder.bogus.weight'"):
        load_video_vae(extra)
    missing = tmp_path / "missing.safetensors"
    save_file({k: v for k, v in sd.items() if k != "encoder.conv_in.conv.bias"}, str(missing),
              metadata={"config": json.dumps(vae_cfg)})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): 'encoder.conv_in.conv.bias'"):
        load_video_vae(missing)
