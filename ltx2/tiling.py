"""Tiled, streaming encode / decode for ``ltx2.video_vae.VideoVAE``.

Tiles overlap and are blended with weights that add up to one across every overlap (a
partition of unity), so a region covered by two tiles is a convex mix of both and there is
no hard edge anywhere:

* in an overlap of ``n`` samples the outgoing tile's weight is ``1 - r(i)`` and the incoming
  tile's is ``r(i)``, ``r(i) = (i + 0.5) / n`` ("linear") or ``sin^2(pi/2 * (i + 0.5) / n)``
  ("cosine"); every sample is then divided by the sum of the weights that reached it;
* the weights are separable: ``w(f, y, x) = w_t(f) * w_h(y) * w_w(x)``;
* the samples next to a tile's inner border (where its convolutions saw padding instead of
  the neighbour) get the smallest weight.

Decode works in latent units.  A latent tile of frames ``[s, e)`` decodes to pixel frames
``[8s, 8(e-1)+1)`` (the decoder turns a chunk's first latent into one frame, the others into
eight), so temporally adjacent tiles overlap by ``8(overlap - 1) + 1`` frames.
``decode_chunks`` decodes temporal tiles in order and yields each stretch of frames as soon as
no later tile touches it: at most one tile's frames (plus the overlap carried to the next tile)
are ever held, so a long video is never whole in memory.

Encode works in pixel units and blends the latents the same way; a temporal chunk starting at
frame ``8m`` encodes to latents ``[m, ...)``; its first latent sees one frame only and gets
weight zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

TIME, SPACE = 8, 32
Progress = Callable[[int, int], None] | None
# Called before every tile; what it raises stops the work (the host's Cancel).  ltx2 never
# imports the host: the caller passes its interrupt check in.
Interrupt = Callable[[], None] | None


@dataclass(frozen=True)
class TilingConfig:
    """Tile sizes.  ``None`` turns tiling off on that axis.

    Attributes:
        spatial_tile: tile height / width in *pixels* (multiple of 32, >= 64).
        spatial_overlap: overlap of neighbouring tiles in pixels (multiple of 32, < tile).
        temporal_tile: tile length in *frames* (multiple of 8, >= 16).
        temporal_overlap: overlap in frames (multiple of 8, >= 16, < tile).
        ramp: "linear" or "cosine" blend weights across an overlap.
    """

    spatial_tile: int | None = 512
    spatial_overlap: int = 64
    temporal_tile: int | None = 64
    temporal_overlap: int = 24
    ramp: str = "linear"

    def __post_init__(self) -> None:
        if self.spatial_tile is not None:
            t, o = self.spatial_tile, self.spatial_overlap
            if t < 64 or t % SPACE or o % SPACE or not 0 < o < t:
                raise ValueError(
                    f"TilingConfig: spatial_tile must be a multiple of 32 and >= 64 and spatial_overlap a multiple of "
                    f"32 in (0, tile); found tile {t}, overlap {o} (e.g. use 512 / 64)"
                )
        if self.temporal_tile is not None:
            t, o = self.temporal_tile, self.temporal_overlap
            if t < 16 or t % TIME or o % TIME or not 16 <= o < t:
                raise ValueError(
                    f"TilingConfig: temporal_tile must be a multiple of 8 and >= 16, temporal_overlap a multiple of 8 "
                    f"in [16, tile); found tile {t}, overlap {o} (e.g. use 64 / 24)"
                )
        if self.ramp not in ("linear", "cosine"):
            raise ValueError(f"TilingConfig.ramp must be 'linear' or 'cosine', found {self.ramp!r}")


# ------------------------------------------------------------------------------ tile geometry
def split_axis(length: int, tile: int | None, overlap: int) -> list[tuple[int, int]]:
    """``[(start, end)]`` covering ``[0, length)``: stride ``tile - overlap``, last tile flush
    with the end (so its overlap can be larger).  One tile when it all fits."""
    if tile is None or length <= tile:
        return [(0, length)]
    step = tile - overlap
    n = math.ceil((length - overlap) / step)
    starts = [min(i * step, length - tile) for i in range(n)]
    return [(s, s + tile) for s in starts]


def ramp(n: int, kind: str, dtype=torch.float32) -> torch.Tensor:
    """Rising blend weights over an overlap of ``n`` samples (its mirror adds up to one)."""
    r = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    if kind == "cosine":
        r = torch.sin(r * (math.pi / 2)) ** 2
    return r.to(dtype)


def axis_weights(spans: list[tuple[int, int]], kind: str) -> list[torch.Tensor]:
    """Per span, its 1D weights: rising over the overlap with the previous span, falling over
    the overlap with the next one, one elsewhere."""
    out = []
    for i, (s, e) in enumerate(spans):
        w = torch.ones(e - s, dtype=torch.float64)
        if i > 0:
            n = spans[i - 1][1] - s
            w[:n] *= ramp(n, kind, torch.float64)
        if i + 1 < len(spans):
            n = e - spans[i + 1][0]
            w[e - s - n :] *= ramp(n, kind, torch.float64).flip(0)
        out.append(w)
    return out


def _spatial_plan(h: int, w: int, tiling: TilingConfig, out_scale: int):
    """Spatial tiles ``(ys, xs, w2d)`` over a latent grid ``h x w``: latent slices, and the
    blend weights at ``out_scale`` samples per latent (32 for decoded pixels, 1 for latents)."""
    tile = None if tiling.spatial_tile is None else tiling.spatial_tile // SPACE
    overlap = tiling.spatial_overlap // SPACE
    plan = []
    spans_y, spans_x = split_axis(h, tile, overlap), split_axis(w, tile, overlap)
    weights_y = axis_weights([(s * out_scale, e * out_scale) for s, e in spans_y], tiling.ramp)
    weights_x = axis_weights([(s * out_scale, e * out_scale) for s, e in spans_x], tiling.ramp)
    for (ys, ye), wy in zip(spans_y, weights_y):
        for (xs, xe), wx in zip(spans_x, weights_x):
            plan.append((slice(ys, ye), slice(xs, xe), wy[:, None] * wx[None, :]))
    return plan


# ------------------------------------------------------------------------------ decode
def _decode_frames(s: int, e: int) -> tuple[int, int]:
    """Pixel frames decoded from latent frames ``[s, e)``."""
    return TIME * s, TIME * (e - 1) + 1


def decode_chunks(vae, latent: torch.Tensor, tiling: TilingConfig | None, timestep=None,
                  progress: Progress = None, generator: torch.Generator | None = None,
                  interrupt: Interrupt = None) -> Iterator[torch.Tensor]:  # fmt: skip
    """Yield the decoded video ``(B, 3, f, H, W)`` in consecutive temporal chunks, each final.

    Chunks are float32 on the latent's device; their frames concatenated equal
    ``decode_tiled``.  ``progress(done, total)`` is called after every tile, ``interrupt()``
    before every tile.
    """
    vae.check_latent(latent)
    tiling = tiling or TilingConfig(spatial_tile=None, temporal_tile=None)
    b, _, f, h, w = latent.shape
    t_tile = None if tiling.temporal_tile is None else tiling.temporal_tile // TIME
    t_overlap = tiling.temporal_overlap // TIME
    t_spans = split_axis(f, t_tile, t_overlap)
    frame_spans = [_decode_frames(s, e) for s, e in t_spans]
    t_weights = axis_weights(frame_spans, tiling.ramp)
    tiles = _spatial_plan(h, w, tiling, SPACE)
    total, done = len(t_spans) * len(tiles), 0
    dev = latent.device
    acc = wsum = None  # running sums over frames [acc_start, acc_start + acc.shape[2])
    acc_start = 0
    for k, ((s, e), (f0, f1), wt) in enumerate(zip(t_spans, frame_spans, t_weights)):
        if acc is None:
            acc = torch.zeros(b, 3, f1 - f0, h * SPACE, w * SPACE, device=dev)
            wsum = torch.zeros(1, 1, f1 - f0, h * SPACE, w * SPACE, device=dev)
            acc_start = f0
        else:  # grow the window to this tile's last frame
            grow = f1 - (acc_start + acc.shape[2])
            acc = torch.cat((acc, acc.new_zeros(b, 3, grow, *acc.shape[3:])), dim=2)
            wsum = torch.cat((wsum, wsum.new_zeros(1, 1, grow, *wsum.shape[3:])), dim=2)
        t_sl = slice(f0 - acc_start, f1 - acc_start)
        for ys, xs, w2d in tiles:
            if interrupt is not None:
                interrupt()
            with torch.no_grad():
                out = vae.decode(latent[:, :, s:e, ys, xs], timestep=timestep, generator=generator).float()
            weight = (wt.to(dev)[:, None, None] * w2d.to(dev)[None]).float()  # (f, h, w)
            py = slice(ys.start * SPACE, ys.stop * SPACE)
            px = slice(xs.start * SPACE, xs.stop * SPACE)
            acc[:, :, t_sl, py, px] += out * weight
            wsum[:, :, t_sl, py, px] += weight
            del out
            done += 1
            if progress is not None:
                progress(done, total)
        # frames before the next tile's first frame are final
        final = (frame_spans[k + 1][0] if k + 1 < len(t_spans) else f1) - acc_start
        yield acc[:, :, :final] / wsum[:, :, :final]
        acc, wsum, acc_start = acc[:, :, final:].clone(), wsum[:, :, final:].clone(), acc_start + final


def decode_tiled(vae, latent: torch.Tensor, tiling: TilingConfig | None, timestep=None, progress: Progress = None,
                 generator: torch.Generator | None = None, interrupt: Interrupt = None) -> torch.Tensor:  # fmt: skip
    """The whole decoded video ``(B, 3, 8(F'-1)+1, 32H', 32W')`` (float32)."""
    return torch.cat(list(decode_chunks(vae, latent, tiling, timestep, progress, generator, interrupt)), dim=2)


# ------------------------------------------------------------------------------ encode
def encode_tiled(vae, pixels: torch.Tensor, tiling: TilingConfig | None, progress: Progress = None,
                 interrupt: Interrupt = None, *, prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 device=None) -> torch.Tensor:  # fmt: skip
    """Normalized latent ``(B, C, 1+k, h, w)`` of ``pixels (B, 3, 1+8k, 32h, 32w)``, tile by tile
    (``progress`` after, ``interrupt`` before every tile).

    Temporal chunks start on frame ``8m`` and hold ``8j + 1`` frames, so every chunk is a
    valid encoder input; latents are blended with the same ramps as decode.

    Streaming: ``pixels`` may live elsewhere than the VAE (e.g. a CPU view of an IMAGE batch);
    ``prepare`` turns each tile's slice into the encoder's input (device, dtype, value range),
    so only one tile's pixels are ever on the compute device.  ``device``: where the latent
    is accumulated (default ``pixels.device``).
    """
    vae.check_pixels(pixels)
    tiling = tiling or TilingConfig(spatial_tile=None, temporal_tile=None)
    b, _, f, h, w = pixels.shape
    lf, lh, lw = (f - 1) // TIME + 1, h // SPACE, w // SPACE
    # plan in latent units, then map to pixels: latent frames [s, e) <- pixel frames [8s, 8(e-1)+1)
    t_tile = None if tiling.temporal_tile is None else tiling.temporal_tile // TIME
    t_spans = split_axis(lf, t_tile, tiling.temporal_overlap // TIME)
    # a later chunk's first latent saw one frame only: it gets weight 0, the ramp covers the rest
    trimmed = [(s + int(k > 0), e) for k, (s, e) in enumerate(t_spans)]
    t_weights = [torch.cat((torch.zeros(int(k > 0), dtype=torch.float64), w))
                 for k, w in enumerate(axis_weights(trimmed, tiling.ramp))]  # fmt: skip
    tiles = _spatial_plan(lh, lw, tiling, 1)
    dev = pixels.device if device is None else torch.device(device)
    prepare = prepare or (lambda t: t)
    acc = torch.zeros(b, vae.latent_channels, lf, lh, lw, device=dev)
    wsum = torch.zeros(1, 1, lf, lh, lw, device=dev)
    total, done = len(t_spans) * len(tiles), 0
    for (s, e), wt in zip(t_spans, t_weights):
        f0, f1 = _decode_frames(s, e)
        for ys, xs, w2d in tiles:
            if interrupt is not None:
                interrupt()
            py = slice(ys.start * SPACE, ys.stop * SPACE)
            px = slice(xs.start * SPACE, xs.stop * SPACE)
            with torch.no_grad():
                out = vae.encode(prepare(pixels[:, :, f0:f1, py, px])).float().to(dev)
            weight = (wt[:, None, None] * w2d[None]).float().to(dev)  # (f, h, w) in latents
            acc[:, :, s:e, ys, xs] += out * weight
            wsum[:, :, s:e, ys, xs] += weight
            del out
            done += 1
            if progress is not None:
                progress(done, total)
    return acc / wsum


# ------------------------------------------------------------------------------ auto sizes
# Peak working memory of one decoder forward, per output pixel-frame, in units of the element
# size.  The official decoder's last stage holds 128 channels at 1/4 resolution (8 values per
# output pixel) and a 3x3x3 conv keeps its padded input, its output and the residual alive
# (~4 such tensors); the 4096-channel depth-to-space conv before it adds about as much again.
# 48 bytes/elem-size per pixel-frame keeps a margin; measure on a new GPU with
# benchmarks/vae_decode.py.
DECODE_ELEMS_PER_PIXEL_FRAME = 48
ACCUMULATOR_BYTES_PER_PIXEL_FRAME = 16  # float32 RGB sum + weight, for the frames held
MEMORY_FRACTION = 0.6  # of the free memory, for allocator slack and other tensors


def estimate_decode_bytes(tile_frames: int, tile_h: int, tile_w: int, full_h: int, full_w: int,
                          dtype: torch.dtype, base_channels: int = 128) -> int:  # fmt: skip
    """Bytes one decode tile needs: ``48 * elem * (base/128) * f * h * w`` for the decoder
    activations plus ``16 * f * H * W`` for the float32 accumulator of the frames held."""
    elem = torch.empty((), dtype=dtype).element_size()
    work = DECODE_ELEMS_PER_PIXEL_FRAME * elem * base_channels / 128 * tile_frames * tile_h * tile_w
    return int(work + ACCUMULATOR_BYTES_PER_PIXEL_FRAME * tile_frames * full_h * full_w)


def free_memory(device: torch.device | str) -> int:
    """Free bytes: CUDA ``mem_get_info`` plus torch's cached blocks; CPU ``MemAvailable``."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import psutil  # non-Linux hosts; ComfyUI depends on psutil

    return int(psutil.virtual_memory().available)


def auto_tiling(device, dtype: torch.dtype, latent_shape, free_bytes: int | None = None,
                base_channels: int = 128) -> TilingConfig:  # fmt: skip
    """The largest tiles whose ``estimate_decode_bytes`` fits ``0.6 * free_bytes``.

    Tries spatial tiles from the whole frame down to 64 px and temporal tiles from the whole
    clip down to 24 frames, and keeps the pair with the most pixel-frames per tile; overlaps
    are 64 px (32 px for tiles under 256) and 24 frames.  ``free_bytes`` defaults to
    ``free_memory(device)``.
    """
    _, _, f, h, w = latent_shape
    ph, pw, frames = h * SPACE, w * SPACE, TIME * (f - 1) + 1
    budget = MEMORY_FRACTION * (free_memory(device) if free_bytes is None else free_bytes)
    long_side = max(ph, pw)
    spatial = [None] + [s for s in (1024, 768, 640, 512, 384, 256, 192, 128, 96, 64) if s < long_side]
    temporal = [None] + [t for t in (128, 96, 64, 48, 32, 24) if t < frames]
    best, best_volume = None, -1
    for s in spatial:
        th, tw = (ph, pw) if s is None else (min(s, ph), min(s, pw))
        for t in temporal:
            tf = frames if t is None else t + 1
            if estimate_decode_bytes(tf, th, tw, ph, pw, dtype, base_channels) <= budget and tf * th * tw > best_volume:
                best, best_volume = (s, t), tf * th * tw
    s, t = best if best is not None else (64, 24)
    overlap = 64 if s is None or s >= 256 else 32
    return TilingConfig(spatial_tile=s, spatial_overlap=overlap, temporal_tile=t, temporal_overlap=24 if (t or 64) > 32 else 16)


__all__ = [
    "TilingConfig",
    "auto_tiling",
    "decode_chunks",
    "decode_tiled",
    "encode_tiled",
    "estimate_decode_bytes",
    "free_memory",
    "split_axis",
]
