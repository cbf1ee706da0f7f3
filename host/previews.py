"""Live previews while an LTX-2 MODEL samples, on every supported ComfyUI.

ComfyUI's own previewer (``latent_preview``) cannot show an LTX-2 latent: a joint video+audio
latent reaches the sampler callback packed into one ``(B, 1, N)`` tensor, and ComfyUI 0.3.75's
RGB previewer crashes on it (current ComfyUI ships no RGB factors for LTX-2 either).  So the
pack's MODEL carries an ``OUTER_SAMPLE`` wrapper (``attach``) that wraps the sampler's callback:
after ComfyUI's own callback (progress bar, ``x0`` capture) it unpacks the current ``x0`` with
the latent shapes the guider passes, turns it into a small picture and sends it through
``comfy.utils.ProgressBar`` - the frontend shows it on the sampling node.  The wrapper works for
every guider built on ``comfy.samplers.CFGGuider`` (KSampler, SamplerCustomAdvanced with core
guiders or LTX-2 Multimodal Guider).

The picture (``LatentPreviewer.image``): up to three latent frames of the video stream (first,
middle, last) side by side, each latent cell mapped to RGB by per-channel factors, and below them
the audio stream's latent as a strip (time left to right, mel bins bottom to top), so the sound's
progress shows too.

Colours (``RGBMap``): a linear map ``rgb = z @ factors + bias`` from the 128 latent channels.  It
is fitted to the video VAE in use (``fit_rgb_map``): deterministic synthetic pictures (smooth
colour fields and flat patches) go through the VAE's encoder and a ridge regression maps each
latent cell to the mean colour of its 32x32 pixel patch; the fit is kept per VAE file.  The VAE
loader registers the VAE it loads (``register_video_vae``).  Without a registered VAE of the
model's latent width the colours are false colours: the frames' first three principal components.

Previews follow ComfyUI's own setting: none with ``--preview-method none`` (0.3.75's default) or
a prompt that asks for none (current ComfyUI's per-prompt ``preview_method``); every other method
gives these previews (TAESD has no LTX-2 decoder).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

WRAPPER_KEY = "openltx_previews"
PATCH_PIXELS = 32  # one latent cell covers 32x32 pixels
FRAME_HEIGHT = 192  # preview height of the video frames (pixels)
AUDIO_STRIP_HEIGHT = 48
GAP = 4
MAX_FRAMES = 3


# --------------------------------------------------------------------------------- colour map
@dataclass(frozen=True)
class RGBMap:
    """``rgb = z @ factors + bias`` for latent cells ``z`` (C,), colours in [0, 1].

    Attributes:
        factors: ``(C, 3)`` float32.
        bias: ``(3,)`` float32.
        r2: fraction of the colour variance the map explains on held-out pictures (None: unknown).
        source: what it was fitted to (for log lines).
    """

    factors: torch.Tensor
    bias: torch.Tensor
    r2: float | None = None
    source: str = ""

    @property
    def channels(self) -> int:
        return int(self.factors.shape[0])

    def apply(self, cells: torch.Tensor) -> torch.Tensor:
        """``(..., C)`` latent cells -> ``(..., 3)`` colours clamped to [0, 1]."""
        out = cells.float() @ self.factors.to(cells.device) + self.bias.to(cells.device)
        return out.clamp(0.0, 1.0)


def synthetic_images(count: int, size: int, seed: int) -> torch.Tensor:
    """``(count, size, size, 3)`` pictures in [0, 1]: smooth colour fields with flat patches.

    Deterministic for a seed.  Smooth fields and flat colour patches cover the colours a frame
    holds at the scale of one latent cell; the regression only needs each cell's mean colour.
    """
    g = torch.Generator().manual_seed(seed)
    coords = torch.linspace(0.0, 1.0, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    images = []
    for _ in range(count):
        field = torch.rand(3, generator=g).view(3, 1, 1).expand(3, size, size).clone()
        for _wave in range(3):  # low-frequency colour waves
            fy, fx = (torch.rand(2, generator=g) * 4.0).tolist()
            phase = float(torch.rand(1, generator=g)) * 2 * math.pi
            amp = (torch.rand(3, generator=g) - 0.5).view(3, 1, 1) * 0.6
            field = field + amp * torch.sin(2 * math.pi * (fy * yy + fx * xx) + phase)
        for _patch in range(4):  # flat rectangles
            h, w = (torch.randint(size // 8, size // 2, (2,), generator=g)).tolist()
            top, left = (torch.randint(0, size - size // 8, (2,), generator=g)).tolist()
            field[:, top:top + h, left:left + w] = torch.rand(3, 1, 1, generator=g)
        images.append(field.clamp(0.0, 1.0).permute(1, 2, 0))
    return torch.stack(images)


def _cells_and_colours(encode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch: int):
    """Latent cells ``(N, C)`` and their patches' mean colours ``(N, 3)``."""
    cells, colours = [], []
    for start in range(0, images.shape[0], batch):
        chunk = images[start:start + batch]
        latent = encode(chunk).float().cpu()  # (b, C, 1, h, w)
        if latent.ndim != 5 or latent.shape[2] != 1:
            raise ValueError(f"the VAE encoded a picture to {tuple(latent.shape)}, expected (B, C, 1, H, W)")
        mean = F.avg_pool2d(chunk.permute(0, 3, 1, 2).float(), PATCH_PIXELS)  # (b, 3, h, w)
        if mean.shape[-2:] != latent.shape[-2:]:
            raise ValueError(f"latent grid {tuple(latent.shape[-2:])} != {PATCH_PIXELS}-pixel patches "
                             f"{tuple(mean.shape[-2:])}")
        cells.append(latent[:, :, 0].permute(0, 2, 3, 1).reshape(-1, latent.shape[1]))
        colours.append(mean.permute(0, 2, 3, 1).reshape(-1, 3))
    return torch.cat(cells), torch.cat(colours)


def fit_rgb_map(
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    count: int = 12,
    size: int = 256,
    batch: int = 4,
    seed: int = 0,
    ridge: float = 1e-3,
    source: str = "",
) -> RGBMap:
    """Fit the latent -> colour map of a video VAE from its encoder.

    Args:
        encode: IMAGE ``(B, H, W, 3)`` in [0, 1] -> normalised latent ``(B, C, 1, H/32, W/32)``.
        count / size: training pictures (``count`` of ``size`` x ``size`` pixels, at least as
            many latent cells as channels); half as many, from another seed, measure ``r2``.
        ridge: Tikhonov weight relative to the mean feature energy (keeps unused channels at 0).
    """
    z, rgb = _cells_and_colours(encode, synthetic_images(count, size, seed), batch)
    mean_z, mean_rgb = z.mean(0), rgb.mean(0)
    zc, rc = (z - mean_z).double(), (rgb - mean_rgb).double()
    gram = zc.T @ zc
    lam = ridge * float(gram.diagonal().mean()) + 1e-12
    factors = torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), zc.T @ rc).float()
    bias = mean_rgb - mean_z @ factors
    z_test, rgb_test = _cells_and_colours(encode, synthetic_images(max(1, count // 2), size, seed + 1), batch)
    pred = (z_test @ factors + bias)
    r2 = 1.0 - float(((pred - rgb_test) ** 2).sum() / ((rgb_test - rgb_test.mean(0)) ** 2).sum())
    return RGBMap(factors=factors, bias=bias, r2=r2, source=source)


def principal_colours(cells: torch.Tensor) -> torch.Tensor:
    """False colours for ``(N, C)`` cells: their first three principal components -> [0, 1].

    Used when no fitted map fits the latent.  Each component's sign is fixed so that its largest
    loading is positive, so colours stay stable from step to step.
    """
    x = cells.float()
    x = x - x.mean(0)
    if x.shape[0] < 2:
        return torch.full((x.shape[0], 3), 0.5)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    comps = vh[:3]
    if comps.shape[0] < 3:
        comps = torch.cat([comps, torch.zeros(3 - comps.shape[0], x.shape[1])])
    idx = comps.abs().argmax(dim=1)
    signs = torch.sign(comps[torch.arange(3), idx])
    signs[signs == 0] = 1
    proj = x @ (comps * signs[:, None]).T  # (N, 3)
    scale = proj.std(0).clamp_min(1e-6)
    return (0.5 + 0.5 * torch.tanh(proj / (2 * scale))).clamp(0, 1)


# --------------------------------------------------------------------------------- registry
_lock = threading.Lock()
_fits: dict[tuple, RGBMap] = {}
_vaes: "list[weakref.ref]" = []


def _vae_key(vae) -> tuple:
    source = getattr(vae, "source", "") or ""
    try:
        stat = os.stat(source)
        return (os.path.abspath(source), stat.st_size, stat.st_mtime_ns, str(getattr(vae, "dtype", "")))
    except OSError:
        return (source, id(vae))


def _vae_encoder(vae) -> Callable[[torch.Tensor], torch.Tensor]:
    from . import aux_models

    return lambda images: aux_models.encode_image(vae, images)


def register_video_vae(vae) -> None:
    """Remember a loaded video VAE (``aux_models.AuxModel``) for preview colours.

    The fit itself runs when a preview first needs it (or now, when previews are on), once per
    VAE file.
    """
    with _lock:
        _vaes[:] = [r for r in _vaes if r() is not None and r() is not vae]
        _vaes.append(weakref.ref(vae))
    if previews_enabled():
        try:
            rgb_map_for(None)
        except Exception:  # a preview problem must never break loading
            log.exception("OpenLTX: fitting preview colours failed; previews use false colours")


def rgb_map_for(channels: int | None) -> RGBMap | None:
    """The fitted map of the most recently registered video VAE with ``channels`` latent channels."""
    with _lock:
        vaes = [r() for r in reversed(_vaes)]
    for vae in vaes:
        if vae is None:
            continue
        key = _vae_key(vae)
        fit = _fits.get(key)
        if fit is None:
            fit = fit_rgb_map(_vae_encoder(vae), source=os.path.basename(getattr(vae, "source", "") or "VAE"))
            log.info("OpenLTX: preview colours fitted to %s (R^2 %.2f on held-out pictures)", fit.source, fit.r2)
            _fits[key] = fit
        if channels is None or fit.channels == channels:
            return fit
    return None


# --------------------------------------------------------------------------------- pictures
def split_packed(x0: torch.Tensor, latent_shapes: Sequence[Sequence[int]] | None):
    """The sampler's ``x0`` -> (video ``(B, C, F, H, W)`` | None, audio ``(B, 8, T, 16)`` | None)."""
    if latent_shapes and len(latent_shapes) > 1:
        flat = x0.reshape(x0.shape[0], -1)
        parts, start = [], 0
        for shape in latent_shapes:
            n = math.prod(shape[1:])
            parts.append(flat[:, start:start + n].reshape(x0.shape[0], *shape[1:]))
            start += n
    else:
        parts = [x0.reshape(x0.shape[0], *latent_shapes[0][1:]) if latent_shapes else x0]
    video = next((p for p in parts if p.ndim == 5), None)
    audio = next((p for p in parts if p.ndim == 4), None)
    return video, audio


def _frame_indices(frames: int) -> list[int]:
    return sorted({0, frames // 2, frames - 1})[:MAX_FRAMES]


def _audio_strip(audio: torch.Tensor, width: int) -> torch.Tensor:
    """``(C, T, M)`` audio latent -> ``(3, AUDIO_STRIP_HEIGHT, width)`` picture in [0, 1]."""
    energy = audio.float().mean(0).T  # (M, T): mel bins x time
    energy = energy.flip(0)  # low bins at the bottom
    scale = energy.std().clamp_min(1e-6)
    value = 0.5 + 0.5 * torch.tanh(energy / (2 * scale))
    strip = F.interpolate(value[None, None], size=(AUDIO_STRIP_HEIGHT, width), mode="nearest")[0, 0]
    # a cool-to-warm ramp: low = dark blue, high = yellow
    return torch.stack([strip, strip * 0.8 + 0.1, (1 - strip) * 0.6 + 0.2]).clamp(0, 1)


class LatentPreviewer:
    """Turns the sampler's ``x0`` into a picture: video frames above, the audio strip below."""

    def __init__(self, latent_shapes=None, rgb_map: RGBMap | None = None) -> None:
        self.latent_shapes = [tuple(s) for s in latent_shapes] if latent_shapes else None
        self.rgb_map = rgb_map

    def _frames(self, video: torch.Tensor) -> torch.Tensor:
        """``(C, F, H, W)`` -> ``(3, FRAME_HEIGHT, total_width)``."""
        c, f, h, w = video.shape
        picks = video[:, _frame_indices(f)]  # (C, k, H, W)
        cells = picks.permute(1, 2, 3, 0).reshape(-1, c)
        if self.rgb_map is not None and self.rgb_map.channels == c:
            colours = self.rgb_map.apply(cells)
        else:
            colours = principal_colours(cells)
        frames = colours.reshape(picks.shape[1], h, w, 3).permute(0, 3, 1, 2)  # (k, 3, H, W)
        width = max(1, round(w * FRAME_HEIGHT / h))
        frames = F.interpolate(frames, size=(FRAME_HEIGHT, width), mode="bilinear", align_corners=False)
        gap = torch.zeros(3, FRAME_HEIGHT, GAP)
        pieces = []
        for i, frame in enumerate(frames):
            if i:
                pieces.append(gap)
            pieces.append(frame.clamp(0, 1))
        return torch.cat(pieces, dim=2)

    def picture(self, x0: torch.Tensor) -> torch.Tensor | None:
        """``(3, H, W)`` in [0, 1], or None when ``x0`` holds neither stream."""
        video, audio = split_packed(x0.detach().float().cpu(), self.latent_shapes)
        rows = []
        if video is not None:
            rows.append(self._frames(video[0]))
        width = rows[0].shape[2] if rows else 4 * FRAME_HEIGHT
        if audio is not None:
            if rows:
                rows.append(torch.zeros(3, GAP, width))
            rows.append(_audio_strip(audio[0], width))
        return torch.cat(rows, dim=1) if rows else None

    def image(self, x0: torch.Tensor):
        """The picture as a PIL image (what ComfyUI's progress hook sends), or None."""
        from PIL import Image

        pic = self.picture(x0)
        if pic is None:
            return None
        array = (pic.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        return Image.fromarray(array)


# --------------------------------------------------------------------------------- sampling
def previews_enabled() -> bool:
    """ComfyUI's preview setting (``--preview-method``, or a prompt's own on current ComfyUI)."""
    from comfy.cli_args import LatentPreviewMethod, args

    return args.preview_method != LatentPreviewMethod.NoPreviews


def _max_size() -> int:
    from comfy.cli_args import args

    return int(getattr(args, "preview_size", 512) or 512)


CALLBACK_INDEX = 5  # outer_sample(noise, latent_image, sampler, sigmas, denoise_mask, callback, ...)


def outer_sample_wrapper(executor, *args, **kwargs):
    """``WrappersMP.OUTER_SAMPLE`` wrapper: the sampler callback also sends a preview."""
    if not previews_enabled():
        return executor(*args, **kwargs)
    import comfy.utils

    args = list(args)
    if "callback" in kwargs:
        callback = kwargs["callback"]
    elif len(args) > CALLBACK_INDEX:
        callback = args[CALLBACK_INDEX]
    else:
        callback = None
    latent_shapes = kwargs.get("latent_shapes")
    if latent_shapes is None and len(args) > 9:
        latent_shapes = args[9]
    video_channels = next((int(s[1]) for s in (latent_shapes or ()) if len(s) == 5), None)
    try:
        rgb_map = rgb_map_for(video_channels) if video_channels else None
    except Exception:
        log.exception("OpenLTX: fitting preview colours failed; previews use false colours")
        rgb_map = None
    previewer = LatentPreviewer(latent_shapes, rgb_map)
    bar: list = []

    def preview_callback(step, x0, x, total_steps):
        if callback is not None:
            callback(step, x0, x, total_steps)
        try:
            image = previewer.image(x0)
        except Exception:  # a preview must never stop sampling
            log.exception("OpenLTX: preview failed")
            return
        if image is None:
            return
        if not bar:
            bar.append(comfy.utils.ProgressBar(total_steps))
        bar[0].update_absolute(step + 1, total_steps, ("JPEG", image, _max_size()))

    if "callback" in kwargs:
        kwargs["callback"] = preview_callback
    elif len(args) > CALLBACK_INDEX:
        args[CALLBACK_INDEX] = preview_callback
    else:
        kwargs["callback"] = preview_callback
    return executor(*args, **kwargs)


def attach(patcher) -> None:
    """Give a MODEL (``ModelPatcher``) the preview wrapper; clones keep it."""
    import comfy.patcher_extension

    patcher.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY, outer_sample_wrapper)
