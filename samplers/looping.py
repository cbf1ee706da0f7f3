"""Long videos in overlapping windows (pure PyTorch, no ComfyUI): the window plan, what each
window is conditioned on, and how the windows are stitched back together.

The scheme is the temporal part of Lightricks' ``LTXVLoopingSampler`` (ComfyUI-LTXVideo),
extended with the audio stream.  In latent frames, with a window of ``T`` and an overlap of
``O`` (``O >= 2``):

* windows start every ``T - O`` latents: ``[0, T)``, ``[T-O, 2T-O)``, ...; the last one ends
  at the clip's end (so it can be shorter) and always adds at least one new latent;
* window ``k > 0`` is conditioned on the **tail** of what is already generated - the last ``O``
  stitched latents, which are its own first ``O`` positions - appended as guide tokens at
  pixel frame 0 with strength ``overlap_strength`` (0.5 in the reference): the overlap is
  regenerated, pulled towards the previous window;
* its output's first latent is dropped (the window reads it as one pixel frame, the clip as
  eight) and the next ``O - 1`` latents are cross-faded into the stitched result with weights
  ``linspace(1, 0, O + 1)[1:-1]`` for the old side (the reference's
  ``LinearOverlapLatentTransition``); the rest is appended;
* optional AdaIN: each later window's output gets, per channel, a ``factor`` share of the
  first window's mean and standard deviation (against drift over long clips);
* keyframes (appended images at a pixel frame of the whole clip) go to the earliest window
  that contains their frame, at the frame's position inside it;
* an IC-LoRA reference video of the clip's length is cut per window: the first window takes its
  whole span, later windows only the part after the overlap, placed at that latent position
  (as the reference applies guiding latents "outside of the overlap region").

Audio (the reference samples video only): each window covers the sound of its own time span
(25 latents per second; the window's first latent, one pixel frame, starts at pixel frame
``8·start``).  The steps it shares with the previous window are conditioned *in place*: they
start from the stitched sound with denoise mask ``1 - overlap_strength`` (times any mask the
input had), and are cross-faded like the video.  The sound is thus one continuous stream.

Only one window is ever sampled at a time: the model's memory does not grow with the length.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch

from . import conditioning as C

TIME = C.P.VIDEO_TIME_SCALE  # pixel frames per latent frame (after the first)


class LoopingError(ValueError):
    """Window settings that do not fit the clip."""


@dataclass(frozen=True)
class Window:
    """Latent frames ``[start, end)`` of the clip; ``overlap`` are shared with the previous one."""

    index: int
    start: int
    end: int
    overlap: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def pixel_start(self) -> int:
        """The clip's pixel frame shown by the window's first (one-frame) latent."""
        return TIME * self.start

    @property
    def pixel_frames(self) -> int:
        return TIME * (self.length - 1) + 1


def plan_windows(frames: int, window: int, overlap: int) -> list[Window]:
    """The windows over ``frames`` latent frames, ``window`` long, ``overlap`` shared (latents).

    Same boundaries as the reference: starts ``0, T-O, 2(T-O), ...``, ends ``start + T``
    clipped to the clip, as many windows as ``ceil((F - O) / (T - O))``.
    """
    if overlap < 2:
        raise LoopingError(f"the overlap is {overlap} latent frame(s); it must be at least 2 (16 pixel frames)")
    if window <= overlap:
        raise LoopingError(f"the window ({window} latent frames) must be longer than the overlap ({overlap})")
    if frames <= window:
        return [Window(0, 0, frames, 0)]
    step = window - overlap
    count = -(-(frames - overlap) // step)
    return [Window(k, k * step, min(k * step + window, frames), overlap if k else 0) for k in range(count)]


def window_of_frame(windows: Sequence[Window], pixel_frame: int) -> tuple[int, int] | None:
    """``(window index, pixel frame inside it)`` of the earliest window showing ``pixel_frame``."""
    for w in windows:
        local = pixel_frame - w.pixel_start
        if 0 <= local < w.pixel_frames:
            return w.index, local
    return None


def audio_span(window: Window, fps: float, total_steps: int, last: bool) -> tuple[int, int]:
    """Audio latent steps ``[a0, a1)`` the window's time covers (the last one runs to the end)."""
    a0 = min(total_steps, round(window.pixel_start / fps * C.P.AUDIO_LATENTS_PER_SECOND))
    a1 = total_steps if last else round((window.pixel_start + window.pixel_frames) / fps * C.P.AUDIO_LATENTS_PER_SECOND)
    return a0, max(a0, min(total_steps, a1))


# ------------------------------------------------------------------------------ stitching
def crossfade(old: torch.Tensor, new: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """``old`` then ``new``, their ``n`` shared samples mixed with ``old``'s weight falling
    ``linspace(1, 0, n + 2)[1:-1]`` (the reference's ``LinearOverlapLatentTransition``)."""
    if n == 0:
        return torch.cat((old, new.to(old)), dim=dim)
    if n > old.shape[dim] or n > new.shape[dim]:
        raise LoopingError(f"cross-fade of {n} samples, the parts have {old.shape[dim]} and {new.shape[dim]}")
    alpha = torch.linspace(1, 0, n + 2, dtype=torch.float32)[1:-1].to(old.device)
    shape = [1] * old.ndim
    shape[dim] = n
    alpha = alpha.view(shape)
    new = new.to(old)
    mixed = alpha * old.narrow(dim, old.shape[dim] - n, n) + (1 - alpha) * new.narrow(dim, 0, n)
    parts = (old.narrow(dim, 0, old.shape[dim] - n), mixed.to(old.dtype), new.narrow(dim, n, new.shape[dim] - n))
    return torch.cat(parts, dim=dim)


def stitch_video(done: torch.Tensor | None, out: torch.Tensor, window: Window) -> torch.Tensor:
    """The clip so far with window ``out`` ``(B, C, L, H, W)`` added (its first latent dropped)."""
    if done is None:
        return out
    return crossfade(done, out[:, :, 1:], window.overlap - 1, dim=2)


def adain(x: torch.Tensor, reference: torch.Tensor, factor: float) -> torch.Tensor:
    """Move ``x``'s per-(sample, channel) mean / std a ``factor`` share towards ``reference``'s
    (statistics over every other dim; the reference's ``LTXVAdainLatent``, unbiased std)."""
    if factor == 0:
        return x
    dims = tuple(range(2, x.ndim))
    r_std, r_mean = torch.std_mean(reference.float(), dim=dims, keepdim=True)
    x_std, x_mean = torch.std_mean(x.float(), dim=dims, keepdim=True)
    normed = (x.float() - x_mean) / x_std * r_std + r_mean
    return torch.lerp(x.float(), normed, float(factor)).to(x.dtype)


# ------------------------------------------------------------------------------ conditioning
def _frames_of(t: torch.Tensor | None, frames: int, start: int, end: int) -> torch.Tensor | None:
    """Per-token values ``(B, F·h·w)`` of latent frames ``[start, end)``."""
    if t is None:
        return None
    return t.reshape(t.shape[0], frames, -1)[:, start:end].reshape(t.shape[0], -1)


def window_references(refs: Sequence[C.ReferenceVideo], window: Window, frames: int) -> list[C.ReferenceVideo]:
    """IC-LoRA references cut to ``window`` (whole span in the first window, after the overlap
    later, placed at that latent's pixel frame)."""
    out = []
    for ref in refs:
        if ref.latent.shape[2] != frames:
            raise LoopingError(
                f"the IC-LoRA reference video has {ref.latent.shape[2]} latent frames, the clip {frames}: encode a "
                "reference of the clip's length (same number of frames)"
            )
        start = window.start + window.overlap
        if start >= window.end:
            continue
        offset = 0 if window.overlap == 0 else 1 + TIME * (window.overlap - 1)
        lat = ref.latent[:, :, start : window.end]
        out.append(replace(ref, latent=lat, attention=_frames_of(ref.attention, frames, start, window.end),
                           frame_offset=offset))  # fmt: skip
    return out


def window_keyframes(items: Sequence[C.Keyframe], windows: Sequence[Window], window: Window) -> list[C.Keyframe]:
    """The keyframes that fall in ``window`` (the earliest window showing their frame), re-indexed."""
    out = []
    for item in items:
        where = window_of_frame(windows, int(item.frame_index))
        if where is None:
            last = windows[-1]
            raise LoopingError(
                f"a keyframe at frame {item.frame_index} is beyond the clip ({last.pixel_start + last.pixel_frames} "
                "frames)"
            )
        if where[0] == window.index:
            out.append(replace(item, frame_index=where[1]))
    return out


def tail_guide(done: torch.Tensor, window: Window, strength: float, noise: torch.Tensor | None) -> C.Keyframe:
    """The last ``overlap`` stitched latents as guide tokens at the window's pixel frame 0."""
    return C.Keyframe(latent=done[:, :, -window.overlap :], frame_index=0, strength=float(strength), noise=noise)


def audio_window(audio: torch.Tensor, mask: torch.Tensor, done: torch.Tensor | None, span: tuple[int, int],
                 strength: float) -> tuple[torch.Tensor, torch.Tensor, int]:  # fmt: skip
    """The window's audio latent and mask: the input over ``span``, its first steps shared with
    the stitched sound ``done`` taken from it with mask ``input mask × (1 - strength)``.

    Returns ``(audio (B, C, a1-a0, M), mask (B, 1, a1-a0, 1), shared steps)``.
    """
    a0, a1 = span
    window, wmask = audio[:, :, a0:a1].clone(), mask[:, :, a0:a1].clone()
    shared = 0 if done is None else max(0, min(done.shape[2], a1) - a0)
    if shared:
        window[:, :, :shared] = done[:, :, a0 : a0 + shared].to(window)
        wmask[:, :, :shared] = wmask[:, :, :shared] * (1.0 - float(strength))
    return window, wmask, shared


# ------------------------------------------------------------------------------ the loop
SampleWindow = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class LoopSettings:
    window: int  # latent frames
    overlap: int  # latent frames
    overlap_strength: float = 0.5
    adain_factor: float = 0.0


def sample_long(
    video: torch.Tensor,
    video_mask: torch.Tensor,
    audio: torch.Tensor | None,
    audio_mask: torch.Tensor | None,
    fps: float,
    settings: LoopSettings,
    sample_window: SampleWindow,
    *,
    keyframes: Sequence[C.Keyframe] = (),
    references: Sequence[C.ReferenceVideo] = (),
    tail_noise: Callable[[torch.Tensor, Window], torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Generate the whole clip window by window.

    Args:
        video ``(B, C, F, H, W)`` / video_mask ``(B, 1, F, H, W)``: the clip's latent (zeros, or an
            encoded video to re-render) and its denoise mask (1 = generate, 0 = keep).
        audio ``(B, C, T, M)`` / audio_mask ``(B, 1, T, 1)`` or ``None``.
        sample_window: ``sample_window(window, video, video_mask, audio, audio_mask, keyframes,
            references) -> (video, audio)`` samples one window (the ComfyUI side).
        tail_noise: ``tail_noise(tail, window)`` noise for a tail guide of strength < 1.
    Returns:
        the stitched ``(video, audio)``, on the inputs' device.
    """
    frames = video.shape[2]
    if not 0.0 <= settings.overlap_strength <= 1.0:
        raise LoopingError(f"overlap_strength {settings.overlap_strength} must be in [0, 1]")
    windows = plan_windows(frames, settings.window, settings.overlap)
    total_steps = audio.shape[2] if audio is not None else 0
    done_v = done_a = first = None
    for w in windows:
        wv, wm = video[:, :, w.start : w.end], video_mask[:, :, w.start : w.end]
        kf = window_keyframes(keyframes, windows, w)
        if done_v is not None:
            tail = done_v[:, :, -w.overlap :]
            noise = tail_noise(tail, w) if tail_noise is not None and settings.overlap_strength < 1 else None
            kf = [tail_guide(done_v, w, settings.overlap_strength, noise), *kf]
        refs = window_references(references, w, frames)
        wa = wam = None
        shared = 0
        if audio is not None:
            span = audio_span(w, fps, total_steps, last=w.index == len(windows) - 1)
            wa, wam, shared = audio_window(audio, audio_mask, done_a, span, settings.overlap_strength)
        out_v, out_a = sample_window(w, wv, wm, wa, wam, kf, refs)
        out_v = out_v.to(video.device)
        if first is None:
            first = out_v
        else:
            out_v = adain(out_v, first, settings.adain_factor)
        done_v = stitch_video(done_v, out_v, w)
        if audio is not None:
            out_a = out_a.to(audio.device)
            done_a = out_a if done_a is None else crossfade(done_a, out_a, shared, dim=2)
    if done_v.shape[2] != frames:  # pragma: no cover - guarded by plan_windows
        raise LoopingError(f"stitched {done_v.shape[2]} latent frames, the clip has {frames}")
    return done_v, done_a


# ------------------------------------------------------------------------------ extension chains
def join_extension(clip_video: torch.Tensor, clip_audio: torch.Tensor | None, ext_video: torch.Tensor,
                   ext_audio: torch.Tensor | None, keep_frames: int, fps: float,
                   atol: float = 1e-3) -> tuple[torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """A clip with its extension appended (``conditioning.extend_video``'s inverse): the
    extension's first ``keep_frames`` latents (and the audio steps over the same time) repeat the
    clip's end and are dropped.  They must equal it (kept tokens stay exact while sampling)."""
    if ext_video.shape[2] <= keep_frames:
        raise LoopingError(f"the extension has {ext_video.shape[2]} latent frames, not more than the {keep_frames} kept")
    if tuple(ext_video.shape[:2]) + tuple(ext_video.shape[3:]) != tuple(clip_video.shape[:2]) + tuple(clip_video.shape[3:]):
        raise LoopingError(f"the extension {tuple(ext_video.shape)} does not fit the clip {tuple(clip_video.shape)}")
    head, tail = ext_video[:, :, :keep_frames].float(), clip_video[:, :, -keep_frames:].float()
    if keep_frames > clip_video.shape[2] or not torch.allclose(head, tail.to(head.device), atol=atol):
        raise LoopingError(
            f"the extension does not start with the clip's last {keep_frames} latent frames: join the latent LTX-2 "
            "Extend Video continued, with the same keep_latent_frames"
        )
    video = torch.cat((clip_video, ext_video[:, :, keep_frames:].to(clip_video)), dim=2)
    audio = None
    if clip_audio is not None and ext_audio is not None:
        kept = C.kept_audio_steps(keep_frames, fps, clip_audio.shape[2], ext_audio.shape[2])
        audio = torch.cat((clip_audio, ext_audio[:, :, kept:].to(clip_audio)), dim=2)
    return video, audio


__all__ = [
    "LoopSettings",
    "LoopingError",
    "Window",
    "adain",
    "audio_span",
    "crossfade",
    "join_extension",
    "plan_windows",
    "sample_long",
    "stitch_video",
    "window_keyframes",
    "window_of_frame",
    "window_references",
]
