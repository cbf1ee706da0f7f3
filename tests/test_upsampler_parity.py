"""Latent upsamplers: parity with ltx-core 1.0.0 (fp32), file loading, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from openltx.ltx2.upsampler import LatentUpsampler, UpsamplerConfig, UpsamplerConfigError, upsample_latent
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.model_loaders.upsampler_loading import (
    BLUR_KEY,
    load_upsampler,
    tiny_upsampler_config,
    write_tiny_upsampler,
)

KINDS = ["spatial", "spatial_x1.5", "temporal", "spatiotemporal", "spatial_2d"]
TOL = 1e-5


@pytest.fixture(scope="module")
def reference():
    import ltx_core.loader  # noqa: F401  (import order: avoids a circular import in ltx-core)
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator, upsample_video
    from ltx_core.model.video_vae.ops import PerChannelStatistics

    return LatentUpsamplerConfigurator, upsample_video, PerChannelStatistics


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize("kind", KINDS)
def test_parity_with_ltx_core(kind, tmp_path, reference):
    configurator, upsample_video, stats_cls = reference
    config = tiny_upsampler_config(kind, mid_channels=64, blocks=2)
    path = tmp_path / f"{kind}.safetensors"
    sd = write_tiny_upsampler(path, config, seed=3)
    ours = load_upsampler(path)
    ref = configurator.from_config(config).eval()
    ref.load_state_dict(sd, strict=True)

    g = torch.Generator().manual_seed(1)
    latent = torch.randn(2, 128, 3, 5, 6, generator=g)
    mean = torch.randn(128, generator=g)
    std = 0.5 + torch.rand(128, generator=g)
    stats = stats_cls(128)
    stats.get_buffer("mean-of-means").copy_(mean)
    stats.get_buffer("std-of-means").copy_(std)

    with torch.no_grad():
        raw_ours, raw_ref = ours(latent), ref(latent)
        norm_ours = upsample_latent(ours, latent, (mean, std))
        norm_ref = upsample_video(latent, type("Enc", (), {"per_channel_statistics": stats})(), ref)
    assert raw_ours.shape == raw_ref.shape == UpsamplerConfig.from_header(config).output_shape(tuple(latent.shape))
    assert _rel(raw_ours, raw_ref) <= TOL, (kind, _rel(raw_ours, raw_ref))
    assert _rel(norm_ours, norm_ref) <= TOL, (kind, _rel(norm_ours, norm_ref))
    assert not torch.equal(raw_ours, torch.zeros_like(raw_ours))


def test_output_shapes():
    shape = (1, 128, 3, 4, 6)
    assert UpsamplerConfig.from_header(tiny_upsampler_config("spatial")).output_shape(shape) == (1, 128, 3, 8, 12)
    assert UpsamplerConfig.from_header(tiny_upsampler_config("spatial_x1.5")).output_shape(shape) == (1, 128, 3, 6, 9)
    assert UpsamplerConfig.from_header(tiny_upsampler_config("temporal")).output_shape(shape) == (1, 128, 5, 4, 6)


def test_statistics_from_a_module():
    """upsample_latent also takes a module holding the VAE's statistics buffers."""
    up = LatentUpsampler(tiny_upsampler_config("spatial"))
    holder = torch.nn.Module()
    holder.register_buffer("mean-of-means", torch.zeros(128))
    holder.register_buffer("std-of-means", torch.ones(128))
    x = torch.randn(1, 128, 2, 2, 2)
    with torch.no_grad():
        assert torch.allclose(upsample_latent(up, x, holder), up(x), atol=1e-6)
    with pytest.raises(ValueError, match="matching the VAE statistics"):
        upsample_latent(up, torch.randn(1, 64, 2, 2, 2), holder)


def test_blur_kernel_may_be_absent(tmp_path):
    from safetensors.torch import load_file, save_file

    config = tiny_upsampler_config("spatial_x1.5")
    path = tmp_path / "x15.safetensors"
    write_tiny_upsampler(path, config)
    sd = load_file(str(path))
    del sd[BLUR_KEY]
    save_file(sd, str(path), metadata={"config": json.dumps(config)})
    up = load_upsampler(path)
    assert torch.allclose(up.upsampler.blur_down.kernel.sum(), torch.tensor(1.0))


def test_load_errors(tmp_path):
    from safetensors.torch import save_file

    config = tiny_upsampler_config("spatial")
    good = tmp_path / "good.safetensors"
    sd = write_tiny_upsampler(good, config)

    not_an_upsampler = tmp_path / "vae.safetensors"
    save_file({"vae.decoder.conv_in.conv.weight": torch.zeros(1)}, str(not_an_upsampler))
    with pytest.raises(CheckpointError, match="expected an LTX-2 latent upsampler.*checkpoint or VAE"):
        load_upsampler(not_an_upsampler)

    wrong_family = tmp_path / "bundle.safetensors"
    save_file(sd, str(wrong_family), metadata={"config": json.dumps({"transformer": {}, "vae": {}})})
    with pytest.raises(CheckpointError, match="expected an LTX-2 latent upsampler.*model bundle"):
        load_upsampler(wrong_family)

    mismatch = tmp_path / "mismatch.safetensors"
    save_file(sd, str(mismatch), metadata={"config": json.dumps({**config, "mid_channels": 64})})
    with pytest.raises(CheckpointError, match=r"config\.mid_channels is 64, but the tensor 'initial_conv\.weight' has "
                                              r"shape \[32, 128, 3, 3, 3\] \(32 channels inside\)"):
        load_upsampler(mismatch)

    wrong_kind = tmp_path / "wrong_kind.safetensors"
    save_file(sd, str(wrong_kind), metadata={"config": json.dumps({**config, "spatial_upsample": False,
                                                                    "temporal_upsample": True})})
    with pytest.raises(CheckpointError, match=r"config\.spatial_upsample is False.*'upsampler\.0\.weight' has shape "
                                              r"\[128, 32, 3, 3\] \(spatial x2 upsampling\)"):
        load_upsampler(wrong_kind)

    shape_mismatch = tmp_path / "shape_mismatch.safetensors"
    save_file({**sd, "final_conv.weight": torch.zeros(128, 32, 3, 3)}, str(shape_mismatch))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_upsampler(shape_mismatch)

    missing = tmp_path / "missing.safetensors"
    partial = {k: v for k, v in sd.items() if k != "final_conv.bias"}
    save_file(partial, str(missing), metadata={"config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="missing keys \\(1\\): final_conv.bias"):
        load_upsampler(missing)

    extra = tmp_path / "extra.safetensors"
    save_file({**sd, "stray.weight": torch.zeros(1)}, str(extra), metadata={"config": json.dumps(config)})
    with pytest.raises(CheckpointError, match="unexpected keys \\(1\\): stray.weight"):
        load_upsampler(extra)

    with pytest.raises(UpsamplerConfigError, match="spatial_scale 3.0"):
        UpsamplerConfig.from_header({**config, "rational_resampler": True, "spatial_scale": 3.0})
    with pytest.raises(UpsamplerConfigError, match="not a multiple of 32"):
        UpsamplerConfig.from_header({**config, "mid_channels": 48})


# ------------------------------------------------------------------------------ files in the wild
# Published header key sets: the 2.0 files name the seven keys below; the 2.3 x1.5 file adds the
# rational-resampler keys.  Scaled down: mid_channels and blocks only.
PUBLISHED_STYLE = {
    "spatial": {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 64, "num_blocks_per_stage": 2,
                "dims": 3, "spatial_upsample": True, "temporal_upsample": False},
    "temporal": {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 32, "num_blocks_per_stage": 2,
                 "dims": 3, "spatial_upsample": False, "temporal_upsample": True},
    "spatial_x1.5": {"_class_name": "LatentUpsampler", "in_channels": 128, "mid_channels": 64,
                     "num_blocks_per_stage": 2, "dims": 3, "spatial_upsample": True, "temporal_upsample": False,
                     "spatial_scale": 1.5, "rational_resampler": True},
    "spatiotemporal": {**tiny_upsampler_config("spatiotemporal"), "num_blocks_per_stage": 2},
    "spatial_2d": {**tiny_upsampler_config("spatial_2d"), "num_blocks_per_stage": 2},
}


@pytest.mark.parametrize("kind", list(PUBLISHED_STYLE))
def test_without_metadata_equals_with_metadata(kind, tmp_path, reference, caplog):
    """The same weights with and without the header config: the same network (shapes from the
    tensors), equal to ltx-core built from the config (fp32, relative max error <= 1e-5)."""
    from safetensors.torch import save_file

    configurator = reference[0]
    config = PUBLISHED_STYLE[kind]
    with_meta = tmp_path / "with.safetensors"
    sd = write_tiny_upsampler(with_meta, config, seed=5)
    bare = tmp_path / "bare.safetensors"
    save_file({k: v for k, v in sd.items() if k != BLUR_KEY}, str(bare))  # some files also lack the blur filter
    a = load_upsampler(with_meta)
    import logging

    with caplog.at_level(logging.INFO):
        b = load_upsampler(bare)
    assert any("no config in the header" in r.getMessage() for r in caplog.records)
    assert a.config == b.config == UpsamplerConfig.from_header(config)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    ref = configurator.from_config(config).eval()
    ref.load_state_dict(sd, strict=True)
    latent = torch.randn(1, 128, 3, 4, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = b(latent)
        assert torch.equal(out, a(latent))
        assert _rel(out, ref(latent)) <= TOL


def test_rational_scale_from_the_header(tmp_path):
    """x1.5 and x0.75 share their shapes (p = 3): a header-less file is the published x1.5, a
    header that says 0.75 is believed, one that says 4.0 (p = 4) contradicts the tensors."""
    from safetensors.torch import save_file

    config = PUBLISHED_STYLE["spatial_x1.5"]
    path = tmp_path / "x.safetensors"
    sd = write_tiny_upsampler(path, {**config, "spatial_scale": 0.75})
    up = load_upsampler(path)
    assert up.config.spatial_scale == 0.75 and up.config.output_shape((1, 128, 2, 8, 8)) == (1, 128, 2, 6, 6)
    save_file(sd, str(path))
    assert load_upsampler(path).config.spatial_scale == 1.5
    save_file(sd, str(path), metadata={"config": json.dumps({**config, "spatial_scale": 4.0})})
    with pytest.raises(CheckpointError, match=r"config\.spatial_scale is 4\.0.*'upsampler\.conv\.weight' has shape "
                                              r"\[576, 64, 3, 3\].*first scales x3"):
        load_upsampler(path)
