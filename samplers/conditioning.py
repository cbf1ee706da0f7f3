"""Conditioning math for LTX-2 (pure PyTorch, no ComfyUI): denoise masks, appended tokens,
attention-strength matrices and re-noising.

LTX-2 conditions generation in three ways (LTX2_SPEC §6.4-6.5, ltx-core ``conditioning/``):

* **in place**: latent frames are replaced by clean latents (an encoded image, frames of a
  source clip) and get a per-token *denoise mask* ``m`` = 1 − strength.  A token's timestep
  is ``m·σ`` and after every step its prediction is blended ``x0·m + clean·(1−m)``.
  (i2v frame 0, audio-to-video, retake, video extension.)
* **appended tokens**: extra video tokens follow the noisy ones in the sequence, with their own
  positions (a keyframe at pixel frame ``k``; an IC-LoRA reference video whose spatial
  positions are scaled by the LoRA's downscale factor).  They are read-only: their outputs
  are dropped.
* **attention strength**: a ``(B, N, N)`` matrix in [0, 1] between noisy and appended tokens,
  turned into a ``log`` additive bias by the transformer (``ltx2.inputs.StreamInput``).

Masks use the layout the sampler nodes share: video ``(B, 1, F', H', W')``, audio
``(B, 1, T, 1)``; 1 = denoise, 0 = keep.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

try:  # see model_loaders/__init__.py
    from ..ltx2 import positions as P
except ImportError:  # pragma: no cover - scripts run from the repo root
    from ltx2 import positions as P


class ConditioningError(ValueError):
    """Conditioning inputs that do not fit together (shapes, frame indices, lengths)."""


# --------------------------------------------------------------------------- masks
def full_masks(video: torch.Tensor | None, audio: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """All-ones (denoise everything) masks shaped like the streams: ``(B,1,F,H,W)`` / ``(B,1,T,1)``."""
    vm = torch.ones(video.shape[0], 1, *video.shape[2:], dtype=torch.float32, device=video.device) if video is not None else None
    am = torch.ones(audio.shape[0], 1, audio.shape[2], 1, dtype=torch.float32, device=audio.device) if audio is not None else None
    return vm, am


def video_time_bounds(frames: int, fps: float, device=None) -> torch.Tensor:
    """``(F', 2)`` seconds ``[start, end)`` of each latent frame (causal: frame 0 is one pixel frame)."""
    return P.video_positions(1, frames, 1, 1, fps, device=device)[0, 0]


def audio_time_bounds(steps: int, device=None) -> torch.Tensor:
    """``(T, 2)`` seconds ``[start, end)`` of each audio latent."""
    return P.audio_positions(1, steps, device=device)[0, 0]


def check_conditioning_latent(video: torch.Tensor, cond: torch.Tensor) -> None:
    """``cond`` ``(B|1, C, f, H', W')`` must match the video latent's channels, size and batch."""
    b, c, _, h, w = video.shape
    if cond.ndim != 5:
        raise ConditioningError(f"the conditioning latent must be a video latent (B, C, f, H, W), got {tuple(cond.shape)}")
    if cond.shape[1] != c:
        raise ConditioningError(f"the conditioning latent has {cond.shape[1]} channels, the video latent {c}")
    if tuple(cond.shape[3:]) != (h, w):
        raise ConditioningError(
            f"the image is {cond.shape[4] * 32}x{cond.shape[3] * 32} px ({cond.shape[4]}x{cond.shape[3]} latent "
            f"cells), the video {w * 32}x{h * 32} px (another size or aspect ratio): encode the image at the "
            "video's width and height (set width/height on LTX-2 Encode Image; it resizes and center-crops)"
        )
    if cond.shape[0] not in (1, b):
        raise ConditioningError(f"the conditioning latent has batch {cond.shape[0]}, the video latent {b}")


def place_latent(
    video: torch.Tensor, video_mask: torch.Tensor, cond: torch.Tensor, latent_index: int, strength: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace latent frames ``[latent_index, latent_index + f)`` by ``cond`` (ltx-core's
    ``VideoConditionByLatentIndex``): image-to-video at frame 0, in-place frames of a clip.

    Args:
        video: ``(B, C, F', H', W')`` latent; video_mask: ``(B, 1, F', H', W')``.
        cond: ``(B|1, C, f, H', W')`` clean latent frames (an encoded image has ``f = 1``).
        strength: 1 keeps the frames exactly (mask 0), 0 lets them be fully regenerated.
    Returns:
        new ``(video, video_mask)`` (inputs untouched).
    """
    check_conditioning_latent(video, cond)
    frames = video.shape[2]
    if not 0 <= latent_index or latent_index + cond.shape[2] > frames:
        raise ConditioningError(
            f"latent frames [{latent_index}, {latent_index + cond.shape[2]}) do not fit a latent of {frames} frames"
        )
    if not 0.0 <= strength <= 1.0:
        raise ConditioningError(f"strength {strength} must be in [0, 1]")
    f = cond.shape[2]
    video = video.clone()
    video_mask = video_mask.clone()
    video[:, :, latent_index : latent_index + f] = cond.to(video)
    video_mask[:, :, latent_index : latent_index + f] = 1.0 - strength
    return video, video_mask


def time_window_masks(
    video_shape: tuple | None,
    audio_shape: tuple | None,
    fps: float,
    start_s: float,
    end_s: float,
    *,
    video: bool = True,
    audio: bool = True,
    device=None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Retake masks: 1 for tokens whose time interval meets ``[start_s, end_s)``, else 0.

    A token ``[t0, t1)`` is in the window when ``t1 > start_s and t0 < end_s`` (ltx-core's
    retake ``TemporalRegionMask``; video bounds in seconds with the causal first frame, audio
    bounds from the mel grid).  ``video=False`` / ``audio=False`` keeps that stream entirely
    (mask 0).  Shapes: video ``(B, 1, F', H', W')``, audio ``(B, 1, T, 1)``.
    """
    if not end_s > start_s:
        raise ConditioningError(f"the retake window [{start_s}, {end_s}) s is empty: end must be after start")
    vm = am = None
    if video_shape is not None:
        b, _, frames, h, w = video_shape
        t = video_time_bounds(frames, fps, device)
        inside = (t[:, 1] > start_s) & (t[:, 0] < end_s) if video else torch.zeros(frames, dtype=torch.bool, device=device)
        vm = inside.float().view(1, 1, frames, 1, 1).expand(b, 1, frames, h, w).contiguous()
    if audio_shape is not None:
        b, _, steps, _ = audio_shape
        t = audio_time_bounds(steps, device)
        inside = (t[:, 1] > start_s) & (t[:, 0] < end_s) if audio else torch.zeros(steps, dtype=torch.bool, device=device)
        am = inside.float().view(1, 1, steps, 1).expand(b, 1, steps, 1).contiguous()
    return vm, am


def fit_audio(audio: torch.Tensor, steps: int) -> torch.Tensor:
    """An audio latent ``(B, C, T_src, M)`` cut to ``steps`` latents; shorter is an error."""
    if audio.shape[2] < steps:
        raise ConditioningError(
            f"the audio latent has {audio.shape[2]} steps ({audio.shape[2] / P.AUDIO_LATENTS_PER_SECOND:.2f} s), the "
            f"video needs {steps} ({steps / P.AUDIO_LATENTS_PER_SECOND:.2f} s): use a longer sound or fewer frames"
        )
    return audio[:, :, :steps]


def fit_length(x: torch.Tensor, length: int, dim: int, mode: str = "zeros") -> torch.Tensor:
    """``x`` cut or padded to ``length`` along ``dim``; padding is zeros (``"zeros"``, e.g.
    silence after a waveform) or repeats the last slice (``"edge"``, e.g. a latent a step short
    after rounding)."""
    n = x.shape[dim]
    if n >= length:
        return x.narrow(dim, 0, length)
    if mode == "edge" and n > 0:
        pad = x.narrow(dim, n - 1, 1).expand(*[length - n if d == dim % x.ndim else s for d, s in enumerate(x.shape)])
    else:
        shape = list(x.shape)
        shape[dim] = length - n
        pad = x.new_zeros(shape)
    return torch.cat((x, pad), dim=dim)


def kept_audio_steps(keep_frames: int, fps: float, source_steps: int, new_steps: int) -> int:
    """Audio latents over the time of ``keep_frames`` kept latent frames (``1 + 8·(k−1)`` pixel
    frames at ``fps``), at most what either latent has."""
    kept_seconds = (1 + P.VIDEO_TIME_SCALE * (keep_frames - 1)) / fps
    return min(round(kept_seconds * P.AUDIO_LATENTS_PER_SECOND), source_steps, new_steps)


def extend_video(
    source: torch.Tensor, keep_frames: int, new_frames: int, source_audio: torch.Tensor | None = None,
    new_audio_steps: int | None = None, fps: float = 24.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Continue a clip: a new latent whose first ``keep_frames`` latent frames are the source's
    last ones (mask 0: kept), the rest zeros to be generated (mask 1).

    Audio (optional): the source's audio latents over the same duration as the kept pixel
    frames (``1 + 8·(k−1)`` frames at ``fps``) start the new audio latent, kept likewise.

    Returns:
        ``(video (B,C,new_frames,H,W), video_mask, audio (B,C,new_audio_steps,M) | None, audio_mask | None)``.
    """
    b, c, frames, h, w = source.shape
    if not 1 <= keep_frames <= frames:
        raise ConditioningError(f"keep_frames {keep_frames} must be from 1 to the clip's {frames} latent frames")
    if keep_frames >= new_frames:
        raise ConditioningError(
            f"the new latent has {new_frames} latent frames, it must be longer than the {keep_frames} kept ones"
        )
    video = source.new_zeros(b, c, new_frames, h, w)
    video[:, :, :keep_frames] = source[:, :, frames - keep_frames :]
    vmask = torch.ones(b, 1, new_frames, h, w, dtype=torch.float32, device=source.device)
    vmask[:, :, :keep_frames] = 0.0
    audio = amask = None
    if source_audio is not None and new_audio_steps is not None:
        kept = kept_audio_steps(keep_frames, fps, source_audio.shape[2], new_audio_steps)
        ab, ac, at, am_bins = source_audio.shape
        audio = source_audio.new_zeros(ab, ac, new_audio_steps, am_bins)
        amask = torch.ones(ab, 1, new_audio_steps, 1, dtype=torch.float32, device=source_audio.device)
        if kept > 0:
            audio[:, :, :kept] = source_audio[:, :, at - kept :]
            amask[:, :, :kept] = 0.0
    return video, vmask, audio, amask


def renoise(x: torch.Tensor, noise: torch.Tensor, scale: float, mask: torch.Tensor | None = None) -> torch.Tensor:
    """ltx-core's ``GaussianNoiser``: ``x' = ε·(m·s) + x·(1 − m·s)`` (``m`` = 1 without a mask).

    Two-stage pipelines re-noise the upscaled latent to the stage-2 start σ (``s = 0.909375``).
    ``mask`` broadcasts against ``x`` (``(B, 1, ...)``); computed in float32.
    """
    scaled = torch.full((), float(scale), device=x.device) if mask is None else mask.to(x.device).float() * scale
    return (noise.to(x.device).float() * scaled + x.float() * (1 - scaled)).to(x.dtype)


# --------------------------------------------------------------------------- appended tokens
@dataclass(frozen=True)
class Keyframe:
    """An image (or frames) appended as tokens at pixel frame ``frame_index``.

    ``latent`` ``(B, C, f, h, w)`` clean; ``noise`` same shape (used only when strength < 1).
    """

    latent: torch.Tensor
    frame_index: int
    strength: float = 1.0
    noise: torch.Tensor | None = None


@dataclass(frozen=True)
class ReferenceVideo:
    """An IC-LoRA reference video appended as tokens.

    ``latent`` ``(B, C, f, h, w)`` encoded at ``1/downscale_factor`` of the output size;
    ``attention`` ``(B, f·h·w)`` per-token attention strength in [0, 1] or ``None`` (full);
    ``frame_offset``: pixel frame where the reference starts (0: with the video, ltx-core's
    reference conditioning; a later part of a long video's reference sits at its own time, see
    ``samplers/looping.py``).
    """

    latent: torch.Tensor
    downscale_factor: int = 1
    strength: float = 1.0
    attention: torch.Tensor | None = None
    frame_offset: int = 0


def repeat_item(item, batch: int):
    """``item`` with every tensor repeated / cut to ``batch`` along dim 0."""
    def rep(t):
        if t is None or t.shape[0] == batch:
            return t
        reps = -(-batch // t.shape[0])
        return t.repeat(reps, *([1] * (t.ndim - 1)))[:batch]

    fields = {k: rep(getattr(item, k)) for k in ("latent", "noise", "attention") if hasattr(item, k)}
    return replace(item, **fields)


def keyframe_tokens(item: Keyframe, sigma: torch.Tensor, fps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens, per-token σ and positions of an appended keyframe.

    Matches ltx-core's ``VideoConditionByKeyframeIndex``: positions are the latent's own
    pixel bounds shifted by ``frame_index`` (the causal first-frame fix only at index 0),
    per-token σ = ``(1 − strength)·σ``.  ltx-core keeps such tokens in the evolving latent
    state (noised once with ``m = 1 − strength`` and then stepped like the other tokens with
    their ``x0`` blended to the clean value).  Here they live outside the sampler's latent, so
    each step sees them at the state that trajectory would have if the model's ``x0`` for them
    were exactly the clean latent: ``x = clean + m·σ·(ε − clean)``.  For strength 1 (the
    default and what the pipelines use) the two are identical: clean tokens, σ 0.

    Args:
        sigma: ``(B,)`` the step's σ.
    Returns:
        tokens ``(B, f·h·w, C)``, timesteps ``(B, f·h·w)``, positions ``(B, 3, f·h·w, 2)``.
    """
    lat = item.latent
    b, _, f, h, w = lat.shape
    m = 1.0 - float(item.strength)
    tokens = P.patchify_video(lat)
    if m > 0 and item.noise is not None:
        noise = P.patchify_video(item.noise.to(lat))
        tokens = tokens + (m * sigma.to(lat)).view(-1, 1, 1) * (noise - tokens)
    timesteps = (m * sigma.float())[:, None].expand(b, f * h * w)
    positions = P.video_positions(b, f, h, w, fps, frame_offset=int(item.frame_index), device=lat.device)
    return tokens, timesteps, positions


def reference_tokens(item: ReferenceVideo, sigma: torch.Tensor, fps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tokens, per-token σ and positions of an IC-LoRA reference video
    (ltx-core's ``VideoConditionByReferenceLatent``): causal positions from frame 0 (from pixel
    frame ``frame_offset`` when set, like a keyframe there), spatial bounds × ``downscale_factor``;
    per-token σ = ``(1 − strength)·σ``."""
    lat = item.latent
    b, _, f, h, w = lat.shape
    m = 1.0 - float(item.strength)
    tokens = P.patchify_video(lat)
    timesteps = (m * sigma.float())[:, None].expand(b, f * h * w)
    positions = P.video_positions(
        b, f, h, w, fps, frame_offset=int(item.frame_offset), spatial_scale=P.VIDEO_SPACE_SCALE * int(item.downscale_factor),
        device=lat.device,
    )
    return tokens, timesteps, positions


def extend_attention_mask(
    existing: torch.Tensor | None, num_noisy: int, num_existing: int, num_new: int, cross: torch.Tensor | None,
    batch: int, device=None,
) -> torch.Tensor | None:
    """The ``(B, N+M, N+M)`` self-attention strengths after appending ``M`` tokens
    (ltx-core ``mask_utils.update_attention_mask`` / ``build_attention_mask``).

    Blocks: noisy↔noisy and earlier tokens keep ``existing`` (1 when ``None``); the new group
    attends fully to itself; noisy↔new gets ``cross`` ``(B, M)``; earlier appended groups and
    the new one do not see each other (0).  With ``cross=None`` and no existing mask the
    result is ``None`` (full attention, no bias); with an existing mask ``cross`` is 1.
    """
    if cross is None:
        if existing is None:
            return None
        cross = torch.ones(batch, num_new, device=device)
    cross = cross.float().to(device)
    if cross.ndim == 1:
        cross = cross[None].expand(batch, -1)
    total = num_existing + num_new
    mask = torch.zeros(batch, total, total, device=device)
    mask[:, :num_existing, :num_existing] = 1.0 if existing is None else existing.float()
    mask[:, num_existing:, num_existing:] = 1.0
    mask[:, :num_noisy, num_existing:] = cross[:, None, :]
    mask[:, num_existing:, :num_noisy] = cross[:, :, None]
    return mask


def downsample_mask_to_latent(mask: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """A pixel-space mask ``(B, 1, F_px, H_px, W_px)`` in [0, 1] → per-token ``(B, F'·H'·W')``.

    Area-averaged per frame to ``H' × W'``; in time the causal grouping of the VAE: pixel
    frame 0 alone, then groups of ``(F_px − 1)/(F' − 1)`` frames averaged (ltx-pipelines'
    IC-LoRA ``_downsample_mask_to_latent``).
    """
    b, _, f_px = mask.shape[:3]
    spatial = F.interpolate(mask.float().transpose(1, 2).reshape(b * f_px, 1, *mask.shape[3:]), size=(height, width), mode="area")
    spatial = spatial.reshape(b, f_px, height, width)
    first = spatial[:, :1]
    if frames > 1 and f_px > 1:
        if (f_px - 1) % (frames - 1):
            raise ConditioningError(
                f"the mask has {f_px} frames, which does not group into {frames} latent frames (need 8k+1 frames)"
            )
        t = (f_px - 1) // (frames - 1)
        rest = spatial[:, 1:].reshape(b, frames - 1, t, height, width).mean(dim=2)
        out = torch.cat((first, rest), dim=1)
    else:
        out = first
    return out.reshape(b, -1)


def append_tokens(
    tokens: torch.Tensor,
    timesteps: torch.Tensor,
    positions: torch.Tensor,
    sigma: torch.Tensor,
    fps: float,
    keyframes=(),
    references=(),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The video stream with keyframe, then reference tokens appended (ltx-pipelines order:
    image conditionings first, IC-LoRA references last).

    Args:
        tokens ``(B, N, C)``, timesteps ``(B, N)`` or ``(B, 1)``, positions ``(B, 3, N, 2)``: the
            noisy tokens; sigma ``(B,)``.
        keyframes / references: ``Keyframe`` / ``ReferenceVideo`` items, batch ``B`` (or 1).
    Returns:
        tokens, timesteps ``(B, N+M)``, positions, attention strengths ``(B, N+M, N+M)`` or
        ``None`` when no group asks for one.
    """
    b, n = tokens.shape[:2]
    parts_x, parts_t, parts_p = [tokens], [timesteps.expand(b, n)], [positions]
    attention, total = None, n
    groups = [(repeat_item(k, b), keyframe_tokens, None) for k in keyframes]
    groups += [(repeat_item(r, b), reference_tokens, "attention") for r in references]
    for item, make, attn_field in groups:
        item = replace(item, latent=item.latent.to(device=tokens.device, dtype=tokens.dtype))
        x, t, p = make(item, sigma, fps)
        cross = getattr(item, attn_field) if attn_field else None
        if cross is not None and cross.shape[-1] != x.shape[1]:
            raise ConditioningError(
                f"the reference's attention mask has {cross.shape[-1]} values, its latent {x.shape[1]} tokens"
            )
        attention = extend_attention_mask(attention, n, total, x.shape[1], cross, b, tokens.device)
        parts_x.append(x)
        parts_t.append(t.to(timesteps.dtype))
        parts_p.append(p.to(positions.dtype))
        total += x.shape[1]
    if total == n:
        return tokens, timesteps, positions, None
    return torch.cat(parts_x, 1), torch.cat(parts_t, 1), torch.cat(parts_p, 2), attention
