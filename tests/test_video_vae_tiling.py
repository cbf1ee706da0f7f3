"""Tiled / streaming encode and decode (``ltx2.tiling``).

* With a position-wise stand-in VAE (each latent cell decodes to its own 32x32x8 block, so a
  crop decodes to the crop of the full decode) tiled == untiled to float rounding: tile
  placement, blend normalisation and chunk order are exact.
* The blend weights of every tile are continuous (no step between neighbouring rows / frames)
  and add up to one; a hard cut fails this test.
* With the real tiny VAE (random weights, receptive field of several latents) the difference
  to untiled decode is stated, and the rows / frames at tile borders are no worse than the rest
  of the overlap and add no roughness (second difference) that the untiled decode lacks.
* Streaming: while ``decode_chunks`` runs, the tensors alive never add up to the whole video.
"""

from __future__ import annotations

import gc

import pytest
import torch

import openltx.ltx2.tiling as tiling
from openltx.ltx2.tiling import TilingConfig, auto_tiling, decode_chunks, decode_tiled, encode_tiled
from openltx.ltx2.video_vae import VideoVAE
from openltx.model_loaders.tiny_layouts import random_tensor, tiny_config


class PointwiseVAE:
    """Decode: latent channels 0-2 -> a 32x32 block per cell; the first latent frame -> one
    frame, the others -> eight (the real VAE's frame mapping).  Encode: the inverse mean."""

    latent_channels = 128

    def __init__(self, on_decode=None):
        self.on_decode = on_decode

    check_latent = VideoVAE.check_latent
    check_pixels = staticmethod(VideoVAE.check_pixels)

    def decode(self, latent, timestep=None, generator=None):
        if self.on_decode:
            self.on_decode()
        x = latent[:, :3] * torch.linspace(0.5, 1.5, 3)[None, :, None, None, None]
        x = torch.cat((x[:, :, :1], x[:, :, 1:].repeat_interleave(8, dim=2)), dim=2)
        return x.repeat_interleave(32, dim=3).repeat_interleave(32, dim=4)

    def encode(self, pixels):
        x = torch.nn.functional.avg_pool3d(pixels[:, :, 1:], (8, 32, 32)) if pixels.shape[2] > 1 else None
        first = torch.nn.functional.avg_pool3d(pixels[:, :, :1], (1, 32, 32))
        x = first if x is None else torch.cat((first, x), dim=2)
        return x.repeat(1, 43, 1, 1, 1)[:, :128]


@pytest.fixture(scope="module")
def tiny_vae():
    model = VideoVAE(tiny_config("2.0")["vae"], timestep_conditioning=False)
    g = torch.Generator().manual_seed(0)
    model.load_state_dict({k: random_tensor(k, tuple(v.shape), g) for k, v in model.state_dict().items()})
    return model.eval()


CONFIGS = [
    TilingConfig(spatial_tile=128, spatial_overlap=64, temporal_tile=32, temporal_overlap=16),
    TilingConfig(spatial_tile=96, spatial_overlap=32, temporal_tile=40, temporal_overlap=24, ramp="cosine"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["linear", "cosine"])
def test_pointwise_tiled_equals_untiled(cfg):
    vae = PointwiseVAE()
    latent = torch.randn(1, 128, 11, 7, 5, generator=torch.Generator().manual_seed(0))
    full = vae.decode(latent)
    chunks = list(decode_chunks(vae, latent, cfg))
    assert len(chunks) > 2 and sum(c.shape[2] for c in chunks) == full.shape[2] == 81
    assert (torch.cat(chunks, 2) - full).abs().max().item() < 1e-5
    pixels = torch.rand(1, 3, 81, 224, 160, generator=torch.Generator().manual_seed(1))
    assert (encode_tiled(vae, pixels, cfg) - vae.encode(pixels)).abs().max().item() < 1e-5


def _coverage(spans, kind):
    """The summed weights and each span's weights placed on the whole axis."""
    n = spans[-1][1]
    placed = []
    for (s, e), w in zip(spans, tiling.axis_weights(spans, kind)):
        full = torch.zeros(n, dtype=torch.float64)
        full[s:e] = w
        placed.append(full)
    return torch.stack(placed).sum(0), placed


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_blend_weights_are_continuous_partition_of_unity(kind, monkeypatch):
    spans = [(s * 32, e * 32) for s, e in tiling.split_axis(23, 8, 3)]
    total, placed = _coverage(spans, kind)
    assert torch.allclose(total, torch.ones_like(total))
    steps = max((p[1:] - p[:-1]).abs().max().item() for p in placed)
    assert steps <= 1.6 / 96  # ramps over >= 96 pixels: no step larger than ~1/n
    # the test fails for a hard cut in the middle of the overlap
    monkeypatch.setattr(tiling, "ramp", lambda n, k, dtype=torch.float32: (torch.arange(n) >= n // 2).to(dtype))
    _, placed = _coverage(spans, kind)
    assert max((p[1:] - p[:-1]).abs().max().item() for p in placed) == 1.0


def _border_stats(tiled, full, dim, borders):
    """Per-index mean error along ``dim`` and the second difference of the output there."""
    others = tuple(d for d in range(5) if d != dim)
    err = (tiled - full).abs().mean(dim=others)

    def d2(x):
        x = x.movedim(dim, 0)
        return (x[2:] - 2 * x[1:-1] + x[:-2]).abs().mean(dim=tuple(range(1, 5)))

    ratio = d2(tiled) / d2(full)  # index i <-> row i + 1
    return err, ratio


def test_real_vae_tiled_decode_has_no_seam(tiny_vae):
    g = torch.Generator().manual_seed(3)
    latent = torch.randn(1, 128, 7, 10, 3, generator=g)
    cfg = TilingConfig(spatial_tile=192, spatial_overlap=96, temporal_tile=40, temporal_overlap=24)
    with torch.no_grad():
        full = tiny_vae.decode(latent)
        tiled = decode_tiled(tiny_vae, latent, cfg)
    diff = (tiled - full).abs()
    print(f"tiled vs untiled (tiny random VAE): max {diff.max():.3f}, mean {diff.mean():.4f}, |x| mean {full.abs().mean():.3f}")
    assert diff.max() < 3.0 and diff.mean() < 0.25  # random weights: padding reaches far (see module doc)
    # rows: tiles of 6 latents every 3 -> pixel overlaps [96, 192), [192, 288)
    rows = tiling.split_axis(10, 6, 3)
    err, ratio = _border_stats(tiled, full, 3, rows)
    for (s, e), (s2, _) in zip(rows, rows[1:]):
        lo, hi = s2 * 32, e * 32  # overlap rows; the borders are lo (new tile starts) and hi - 1 (old one ends)
        overlap_mean = err[lo:hi].mean()
        for b in (lo, hi - 1):
            assert err[b] <= 1.5 * overlap_mean + 1e-6, (b, err[b], overlap_mean)
            assert 0.8 <= ratio[b - 1] <= 1.25, (b, ratio[b - 3 : b + 2])
    # frames: latent tiles of 5 every 2 -> frame overlaps; check the first / last frame of each
    frames = [tiling._decode_frames(s, e) for s, e in tiling.split_axis(7, 5, 3)]
    err_t, ratio_t = _border_stats(tiled, full, 2, frames)
    for (f0, f1), (g0, _) in zip(frames, frames[1:]):
        overlap_mean = err_t[g0:f1].mean()
        for b in (g0, f1 - 1):
            assert err_t[b] <= 1.5 * overlap_mean + 1e-6, (b, err_t[g0:f1])
            assert 0.7 <= ratio_t[b - 1] <= 1.4, (b, ratio_t)


def test_real_vae_tiled_encode(tiny_vae):
    pixels = torch.rand(1, 3, 25, 256, 96, generator=torch.Generator().manual_seed(4)) * 2 - 1
    cfg = TilingConfig(spatial_tile=192, spatial_overlap=96, temporal_tile=24, temporal_overlap=16)
    with torch.no_grad():
        full, tiled = tiny_vae.encode(pixels), encode_tiled(tiny_vae, pixels, cfg)
    assert tiled.shape == full.shape == (1, 128, 4, 8, 3)
    rel = ((tiled - full).norm() / full.norm()).item()
    print(f"tiled vs untiled encode (tiny random VAE): relative {rel:.3f}")
    assert rel < 1.0  # random weights: the encoder's receptive field spans the tiles; exactness: pointwise test


def test_streaming_never_holds_the_whole_video():
    """Sum of all live tensors, sampled at every tile decode, stays far below the output size."""
    peak = [0]

    def count() -> int:
        gc.collect()
        total = 0
        for o in gc.get_objects():
            try:  # dead weak proxies left by other tests raise on any attribute access
                if torch.is_tensor(o) and not o.is_meta:
                    total += o.numel()
            except ReferenceError:
                continue
        return total

    def live_elements():
        peak[0] = max(peak[0], count() - baseline)

    vae = PointwiseVAE(on_decode=live_elements)
    latent = torch.randn(1, 128, 41, 2, 2)
    whole = 3 * (8 * 40 + 1) * 64 * 64
    baseline = count()  # tensors other tests / fixtures keep alive
    frames = 0
    for chunk in decode_chunks(vae, latent, TilingConfig(spatial_tile=None, temporal_tile=32, temporal_overlap=16)):
        frames += chunk.shape[2]
        del chunk  # a sink that discards
    assert frames == 321
    assert peak[0] < whole / 4, f"{peak[0]} live elements while decoding, the whole video is {whole}"
    # the check can fail: keeping the chunks makes the live total grow past the video size
    peak[0], kept = 0, []
    for chunk in decode_chunks(vae, latent, TilingConfig(spatial_tile=None, temporal_tile=32, temporal_overlap=16)):
        kept.append(chunk)
    live_elements()
    assert peak[0] >= whole


def test_tiling_config_errors_and_auto():
    with pytest.raises(ValueError, match="multiple of 32"):
        TilingConfig(spatial_tile=100)
    with pytest.raises(ValueError, match="temporal_overlap"):
        TilingConfig(temporal_tile=64, temporal_overlap=8)
    big = auto_tiling("cpu", torch.bfloat16, (1, 128, 16, 16, 24), free_bytes=1 << 40)
    assert big.spatial_tile is None and big.temporal_tile is None  # everything fits in 1 TiB
    small = auto_tiling("cpu", torch.bfloat16, (1, 128, 16, 16, 24), free_bytes=2 << 30)
    assert small.spatial_tile is not None or small.temporal_tile is not None
    est = tiling.estimate_decode_bytes
    tf = 121 if small.temporal_tile is None else small.temporal_tile + 1
    th = 512 if small.spatial_tile is None else min(small.spatial_tile, 512)
    tw = 768 if small.spatial_tile is None else min(small.spatial_tile, 768)
    assert est(tf, th, tw, 512, 768, torch.bfloat16) <= 0.6 * (2 << 30)
    assert auto_tiling("cpu", torch.float32, (1, 128, 2, 2, 2)).spatial_tile is None  # real free RAM
