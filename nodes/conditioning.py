"""Conditioning nodes: image-to-video, keyframes, audio-to-video, retake, extension, IC-LoRA
reference guide, LoRA loader and the stage-2 re-noise.

The math lives in ``samplers/conditioning.py``; these nodes validate, pick the streams of a
LATENT apart and put them back with a per-stream ``noise_mask`` (a NestedTensor of video
``(B, 1, F', H', W')`` and audio ``(B, 1, T, 1)`` masks, 1 = generate, 0 = keep), or add
appended-token items to both CONDITIONINGs.
"""

from __future__ import annotations

import torch

import comfy.nested_tensor
import comfy.sample
import folder_paths
import node_helpers
from comfy_api.v0_0_2 import io

from ..host import aux_models, model as host_model, paths
from ..host import lora as L
from ..model_loaders.safetensors_file import CheckpointError
from ..samplers import conditioning as C
from .loaders import unlisted_file_error

CATEGORY = "OpenLTX/conditioning"
FRAME_STEP = host_model.VIDEO_TIME_STRIDE


# --------------------------------------------------------------------------- plumbing
def _streams(latent, node: str, what: str = "latent"):
    try:
        return aux_models.split_latent(latent, node)
    except ValueError as err:
        raise ValueError(f"{err} (input '{what}')") from None


def _masks(latent: dict, video, audio):
    """The LATENT's per-stream noise masks (all ones when it has none)."""
    vm, am = C.full_masks(video, audio)
    old = latent.get("noise_mask")
    if old is None:
        return vm, am
    parts = list(old.unbind()) if isinstance(old, comfy.nested_tensor.NestedTensor) else [old]
    for p in parts:
        if video is not None and p.ndim == 5 and tuple(p.shape[2:]) == tuple(video.shape[2:]):
            vm = p[:, :1].float().expand_as(vm).clone()
        elif audio is not None and p.ndim == 4 and p.shape[2] == audio.shape[2]:
            am = p[:, :1, :, :1].float().expand_as(am).clone()
    return vm, am


def _latent(latent: dict, video, audio, vm, am, **extra) -> dict:
    """A LATENT with these streams and masks (other keys of ``latent`` kept)."""
    out = {k: v for k, v in latent.items() if k not in ("samples", "noise_mask", "batch_index")}
    streams = [t for t in (video, audio) if t is not None]
    masks = [m for m, t in ((vm, video), (am, audio)) if t is not None]
    nested = len(streams) > 1 or video is None  # audio alone stays nested (see LTX-2 Empty Latent "audio only")
    out["samples"] = comfy.nested_tensor.NestedTensor(tuple(streams)) if nested else streams[0]
    out["noise_mask"] = comfy.nested_tensor.NestedTensor(tuple(masks)) if nested else masks[0]
    out.update(extra)
    return out


def _image(image_latent, node: str):
    video, _ = _streams(image_latent, node, "image_latent")
    if video is None:
        raise ValueError(f"{node}: 'image_latent' holds no video latent; connect LTX-2 Encode Image")
    return video


def _run(node: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except C.ConditioningError as err:
        raise ValueError(f"{node}: {err}") from None


def _pixel_frames(video) -> int:
    return (video.shape[2] - 1) * FRAME_STEP + 1


def _append(conditioning, key: str, item):
    return node_helpers.conditioning_set_values(conditioning, {key: (item,)}, append=True)


def _strength(tooltip: str, default: float = 1.0):
    return io.Float.Input("strength", default=default, min=0.0, max=1.0, step=0.01, tooltip=tooltip)


LATENT_IN = "The LTX-2 latent to generate (e.g. from LTX-2 Empty Latent)."
LATENT_OUT = "The latent with the conditioning written in and a per-stream noise_mask (1 = generate, 0 = keep)."
POS_IN, NEG_IN = "Positive conditioning (LTX-2 Text Encode).", "Negative conditioning (the guider's uncond pass)."
POS_OUT, NEG_OUT = "Positive conditioning with the conditioning tokens.", "Negative conditioning with the same tokens."


# --------------------------------------------------------------------------- nodes
class OpenLTXImageToVideo(io.ComfyNode):
    """First frame from an image (in place, denoise mask 1 − strength)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="OpenLTXImageToVideo", display_name="LTX-2 Image to Video", category=CATEGORY,
            description="Starts the video from an image: the first latent frame is replaced by the encoded image "
            "and kept (strength 1) or partly regenerated (strength < 1). Sample with a guider that applies the "
            "latent's noise_mask (LTX-2 Multimodal Guider).",
            inputs=[
                io.Latent.Input("latent", tooltip=LATENT_IN),
                io.Latent.Input("image_latent", tooltip="The image from LTX-2 Encode Image, at the video's width and height."),
                _strength("1 = the first frame is the image exactly; lower lets the model change it."),
            ],
            outputs=[io.Latent.Output(tooltip=LATENT_OUT)],
        )  # fmt: skip

    @classmethod
    def execute(cls, latent, image_latent, strength=1.0):
        node = "LTX-2 Image to Video"
        video, audio = _streams(latent, node)
        if video is None:
            raise ValueError(f"{node}: the latent has no video stream")
        vm, am = _masks(latent, video, audio)
        video, vm = _run(node, C.place_latent, video, vm, _image(image_latent, node)[:, :, :1], 0, strength)
        return io.NodeOutput(_latent(latent, video, audio, vm, am))


class OpenLTXKeyframe(io.ComfyNode):
    """An image at any pixel frame: frame 0 in place, others as appended tokens."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="OpenLTXKeyframe", display_name="LTX-2 Keyframe", category=CATEGORY,
            description="Guides the video through an image at a given frame (keyframe interpolation). Frame 0 "
            "replaces the first latent frame (like Image to Video); any other frame adds the image as extra "
            "tokens placed at that time, on both conditionings. Chain several for several keyframes.",
            inputs=[
                io.Conditioning.Input("positive", tooltip=POS_IN),
                io.Conditioning.Input("negative", tooltip=NEG_IN),
                io.Latent.Input("latent", tooltip=LATENT_IN),
                io.Latent.Input("image_latent", tooltip="The keyframe from LTX-2 Encode Image, at the video's size."),
                io.Int.Input("frame_index", default=0, min=0, max=8 * 1024, tooltip="Pixel frame of the image "
                             "(0 = first; the last frame of a 121-frame video is 120)."),
                _strength("1 = hold the image exactly at that frame; lower = a looser guide."),
                io.Int.Input("noise_seed", default=0, min=0, max=2**63 - 1, tooltip="Seed of the noise the "
                             "appended tokens carry when strength < 1 (unused at strength 1)."),
            ],
            outputs=[io.Conditioning.Output(display_name="positive", tooltip=POS_OUT),
                     io.Conditioning.Output(display_name="negative", tooltip=NEG_OUT),
                     io.Latent.Output(display_name="latent", tooltip=LATENT_OUT)],
        )  # fmt: skip

    @classmethod
    def execute(cls, positive, negative, latent, image_latent, frame_index=0, strength=1.0, noise_seed=0):
        node = "LTX-2 Keyframe"
        video, audio = _streams(latent, node)
        if video is None:
            raise ValueError(f"{node}: the latent has no video stream")
        image = _image(image_latent, node)
        frames = _pixel_frames(video)
        if frame_index >= frames:
            raise ValueError(
                f"{node}: frame_index {frame_index} is beyond the video ({frames} frames: 0 to {frames - 1}); "
                "lower frame_index or make the latent longer"
            )
        vm, am = _masks(latent, video, audio)
        if frame_index == 0:
            video, vm = _run(node, C.place_latent, video, vm, image, 0, strength)
            return io.NodeOutput(positive, negative, _latent(latent, video, audio, vm, am))
        _run(node, C.check_conditioning_latent, video, image)
        noise = None
        if strength < 1.0:
            noise = comfy.sample.prepare_noise(image, int(noise_seed)).to(image)
        item = C.Keyframe(latent=image, frame_index=int(frame_index), strength=float(strength), noise=noise)
        key = host_model.KEYFRAMES_KEY
        return io.NodeOutput(_append(positive, key, item), _append(negative, key, item), latent)


class OpenLTXAudioToVideo(io.ComfyNode):
    """A given sound as the (frozen) audio stream."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="OpenLTXAudioToVideo", display_name="LTX-2 Audio to Video", category=CATEGORY,
            description="Generates video to a given sound: the audio stream becomes the encoded audio (cut to the "
            "video's length) and is kept fixed (noise_mask 0) while the video is generated.",
            inputs=[
                io.Latent.Input("latent", tooltip=LATENT_IN + " Must hold an audio stream (joint latent)."),
                io.Latent.Input("audio_latent", tooltip="The sound from LTX-2 Encode Audio; at least as long as the video."),
            ],
            outputs=[io.Latent.Output(tooltip=LATENT_OUT)],
        )  # fmt: skip

    @classmethod
    def execute(cls, latent, audio_latent):
        node = "LTX-2 Audio to Video"
        video, audio = _streams(latent, node)
        _, sound = _streams(audio_latent, node, "audio_latent")
        if audio is None:
            raise ValueError(f"{node}: the latent has no audio stream; use LTX-2 Empty Latent (video+audio)")
        if sound is None:
            raise ValueError(f"{node}: 'audio_latent' holds no audio latent; connect LTX-2 Encode Audio")
        if tuple(sound.shape[1:2]) + tuple(sound.shape[3:]) != tuple(audio.shape[1:2]) + tuple(audio.shape[3:]):
            raise ValueError(f"{node}: audio latent {tuple(sound.shape)} does not fit the latent's audio {tuple(audio.shape)}")
        sound = _run(node, C.fit_audio, sound, audio.shape[2])
        if sound.shape[0] not in (1, audio.shape[0]):
            raise ValueError(f"{node}: audio batch {sound.shape[0]} vs latent batch {audio.shape[0]}")
        vm, am = _masks(latent, video, audio)
        audio = sound.to(audio).expand_as(audio).clone()
        am = torch.zeros_like(am)
        return io.NodeOutput(_latent(latent, video, audio, vm, am))


class OpenLTXRetake(io.ComfyNode):
    """Regenerate a time window of a source latent."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="OpenLTXRetake", display_name="LTX-2 Retake", category=CATEGORY,
            description="Regenerates [start, end) seconds of an existing clip and keeps the rest: the noise_mask "
            "is 1 for the video frames and audio steps that overlap the window, 0 elsewhere.",
            inputs=[
                io.Latent.Input("latent", tooltip="The source clip's latent (encoded video + audio)."),
                io.Float.Input("start_s", default=0.0, min=0.0, max=1e5, step=0.01, tooltip="Window start, seconds."),
                io.Float.Input("end_s", default=1.0, min=0.0, max=1e5, step=0.01, tooltip="Window end, seconds (exclusive)."),
                io.Float.Input("fps", default=24.0, min=1.0, max=240.0, step=0.01, tooltip="Frame rate of the clip "
                               "(the latent's frame_rate is used when it has one)."),
                io.Boolean.Input("video", default=True, tooltip="Regenerate the video in the window."),
                io.Boolean.Input("audio", default=True, tooltip="Regenerate the audio in the window."),
            ],
            outputs=[io.Latent.Output(tooltip=LATENT_OUT)],
        )  # fmt: skip

    @classmethod
    def execute(cls, latent, start_s, end_s, fps=24.0, video=True, audio=True):
        node = "LTX-2 Retake"
        v, a = _streams(latent, node)
        fps = float(latent.get("frame_rate") or fps)
        duration = _pixel_frames(v) / fps if v is not None else a.shape[2] / 25.0
        if start_s >= duration:
            raise ValueError(f"{node}: start_s {start_s} is past the end of the clip ({duration:.2f} s)")
        vm, am = _run(node, C.time_window_masks, v.shape if v is not None else None,
                      a.shape if a is not None else None, fps, start_s, end_s, video=video, audio=audio)  # fmt: skip
        return io.NodeOutput(_latent(latent, v, a, vm, am))


class OpenLTXExtendVideo(io.ComfyNode):
    """A new latent that starts with the last latent frames of a clip."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="OpenLTXExtendVideo", display_name="LTX-2 Extend Video", category=CATEGORY,
            description="Continues a clip: makes a new latent of the given length whose first latent frames are "
            "the last ones of the clip (kept, noise_mask 0) and whose audio starts with the clip's audio over "
            "the same time; the rest is generated. Decode and join the clips (dropping the repeated frames).",
            inputs=[
                io.Latent.Input("latent", tooltip="The clip's latent."),
                io.Int.Input("keep_latent_frames", default=2, min=1, max=1024, tooltip="Latent frames (8 video "
                             "frames each) carried over from the end of the clip."),
                io.Int.Input("frames", default=121, min=9, max=8 * 1024 + 1, step=FRAME_STEP,
                             tooltip="Video frames of the new latent (8k+1)."),
            ],
            outputs=[io.Latent.Output(tooltip=LATENT_OUT)],
        )  # fmt: skip

    @classmethod
    def execute(cls, latent, keep_latent_frames=2, frames=121):
        node = "LTX-2 Extend Video"
        if (frames - 1) % FRAME_STEP:
            raise ValueError(f"{node}: frames {frames} is not of the form 8k+1 (e.g. 97, 121)")
        v, a = _streams(latent, node)
        if v is None:
            raise ValueError(f"{node}: the latent has no video stream")
        fps = float(latent.get("frame_rate") or host_model.DEFAULT_FRAME_RATE)
        new_f = (frames - 1) // FRAME_STEP + 1
        steps = max(1, C.P.audio_latent_steps(frames, fps)) if a is not None else None
        video, vm, audio, am = _run(node, C.extend_video, v, keep_latent_frames, new_f, a, steps, fps)
        return io.NodeOutput(_latent(latent, video, audio, vm, am, frame_rate=fps))


class OpenLTXReferenceVideoGuide(io.ComfyNode):
    """IC-LoRA reference video appended as tokens."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="OpenLTXReferenceVideoGuide", display_name="LTX-2 Reference Video Guide (IC-LoRA)", category=CATEGORY,
            description="Adds a reference video (depth, pose, edges, ...) for an IC-LoRA: its latent tokens are "
            "appended to both conditionings with positions scaled by the LoRA's downscale factor. Encode the "
            "reference at (width / factor) x (height / factor).",
            inputs=[
                io.Conditioning.Input("positive", tooltip=POS_IN),
                io.Conditioning.Input("negative", tooltip=NEG_IN),
                io.Latent.Input("latent", tooltip="The latent being generated (to check sizes)."),
                io.Latent.Input("reference_latent", tooltip="The encoded reference video (LTX-2 VAE)."),
                io.Int.Input("downscale_factor", default=1, min=1, max=16, tooltip="From LTX-2 LoRA Loader's "
                             "reference_downscale_factor output (the IC-LoRA's metadata)."),
                _strength("1 = the reference stays clean (the reference pipelines' setting)."),
                io.Float.Input("attention_strength", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How strongly the video and the reference attend to each other (1 = fully)."),
                io.Mask.Input("attention_mask", optional=True, tooltip="Optional per-pixel attention strength over "
                              "the reference frames (F, H, W), multiplied by attention_strength."),
            ],
            outputs=[io.Conditioning.Output(display_name="positive", tooltip=POS_OUT),
                     io.Conditioning.Output(display_name="negative", tooltip=NEG_OUT)],
        )  # fmt: skip

    @classmethod
    def execute(cls, positive, negative, latent, reference_latent, downscale_factor=1, strength=1.0,
                attention_strength=1.0, attention_mask=None):  # fmt: skip
        node = "LTX-2 Reference Video Guide"
        video, _ = _streams(latent, node)
        ref, _ = _streams(reference_latent, node, "reference_latent")
        if video is None or ref is None:
            raise ValueError(f"{node}: both 'latent' and 'reference_latent' need a video stream")
        k = int(downscale_factor)
        want = (video.shape[3] / k, video.shape[4] / k)
        if tuple(ref.shape[3:]) != want:
            raise ValueError(
                f"{node}: the reference is {ref.shape[4] * 32}x{ref.shape[3] * 32} px, expected "
                f"{int(want[1] * 32)}x{int(want[0] * 32)} (the video's size / downscale_factor {k}): encode the "
                "reference at that size"
            )
        if ref.shape[1] != video.shape[1]:
            raise ValueError(f"{node}: reference latent has {ref.shape[1]} channels, the video {video.shape[1]}")
        attention = None
        if attention_mask is not None:
            m = attention_mask if attention_mask.ndim == 3 else attention_mask.reshape(-1, *attention_mask.shape[-2:])
            attention = _run(node, C.downsample_mask_to_latent, m[None, None], *ref.shape[2:]) * attention_strength
        elif attention_strength < 1.0:
            attention = torch.full((1, ref.shape[2] * ref.shape[3] * ref.shape[4]), float(attention_strength))
        item = C.ReferenceVideo(latent=ref, downscale_factor=k, strength=float(strength), attention=attention)
        key = host_model.REFERENCE_KEY
        return io.NodeOutput(_append(positive, key, item), _append(negative, key, item))


class OpenLTXLoraLoader(io.ComfyNode):
    """An LTX-2 LoRA on the MODEL (ltx-core's fuse rule) + its IC-LoRA downscale factor."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="OpenLTXLoraLoader", display_name="LTX-2 LoRA Loader", category="OpenLTX/loaders",
            description="Applies an LTX-2 LoRA from the 'loras' folder to the model as strength x B @ A (as "
            "Lightricks' loader does; alpha keys are ignored) and outputs the IC-LoRA's reference downscale "
            "factor for LTX-2 Reference Video Guide.",
            inputs=[
                io.Model.Input("model", tooltip="The LTX-2 MODEL."),
                io.Combo.Input("lora_name", options=folder_paths.get_filename_list("loras"),
                               tooltip="A LoRA file from ComfyUI's 'loras' folder."),
                io.Float.Input("strength", default=1.0, min=-10.0, max=10.0, step=0.01, tooltip="LoRA strength."),
            ],
            outputs=[io.Model.Output(tooltip="The model with the LoRA applied (as patches; the base stays shared)."),
                     io.Int.Output(display_name="reference_downscale_factor", tooltip="The IC-LoRA's "
                                   "reference_downscale_factor metadata (1 when absent).")],
        )  # fmt: skip

    @classmethod
    def validate_inputs(cls, lora_name=None):  # only a listed file (never '../x'), before the model loads
        return unlisted_file_error("lora_name", lora_name, folder_paths.get_filename_list("loras"), "models/loras") or True

    @classmethod
    def execute(cls, model, lora_name, strength=1.0):
        node = "LTX-2 LoRA Loader"
        path = paths.model_file("loras", lora_name)
        if path is None:
            raise ValueError(f"{node}: {paths.shown(lora_name)} is not in the 'loras' folder")
        if not isinstance(model.model, host_model.LTX2Model):
            raise ValueError(f"{node}: the model is not an LTX-2 MODEL (load it with LTX-2 Checkpoint Loader)")
        try:
            factor = L.reference_downscale_factor(path)
            patched = model if strength == 0 else L.apply_lora(model, L.read_lora(path), strength, lora_name)
        except CheckpointError as err:
            raise ValueError(f"{node}: {err}") from None
        return io.NodeOutput(patched, factor)


class OpenLTXRenoise(io.ComfyNode):
    """x' = ε·s + x·(1 − s) on both streams (two-stage: stage-2 start σ)."""

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="OpenLTXRenoise", display_name="LTX-2 Re-noise", category="OpenLTX/latent",
            description="Noises a latent to sigma (x' = noise x sigma + x x (1 - sigma)) on both streams, as the "
            "two-stage pipelines do before stage 2 (sigma 0.909375 with the distilled stage-2 sigmas). Where the "
            "latent has a noise_mask the noise is scaled by it. Sample the result with noise disabled "
            "(DisableNoise) and sigmas that start at the same value.",
            inputs=[
                io.Latent.Input("latent", tooltip="The (upscaled) latent."),
                io.Float.Input("sigma", default=0.909375, min=0.0, max=1.0, step=0.000001, tooltip="Noise level; "
                               "the first sigma of the stage-2 schedule."),
                io.Int.Input("noise_seed", default=0, min=0, max=2**63 - 1, control_after_generate=True,
                             tooltip="Seed (same noise as ComfyUI's RandomNoise with this seed)."),
            ],
            outputs=[io.Latent.Output(tooltip="The noised latent (noise_mask kept).")],
        )  # fmt: skip

    @classmethod
    def execute(cls, latent, sigma=0.909375, noise_seed=0):
        node = "LTX-2 Re-noise"
        video, audio = _streams(latent, node)
        noise = comfy.sample.prepare_noise(latent["samples"], int(noise_seed), latent.get("batch_index"))
        noises = list(noise.unbind()) if isinstance(noise, comfy.nested_tensor.NestedTensor) else [noise]
        has_mask = latent.get("noise_mask") is not None
        vm, am = _masks(latent, video, audio)
        nv = next((n for n in noises if n.ndim == 5), None)
        na = next((n for n in noises if n.ndim == 4), None)
        out_v = C.renoise(video, nv, sigma, vm if has_mask else None) if video is not None else None
        out_a = C.renoise(audio, na, sigma, am if has_mask else None) if audio is not None else None
        out = {k: v for k, v in latent.items() if k != "samples"}
        streams = [t for t in (out_v, out_a) if t is not None]
        out["samples"] = comfy.nested_tensor.NestedTensor(tuple(streams)) if len(streams) > 1 else streams[0]
        return io.NodeOutput(out)


NODES = [
    OpenLTXImageToVideo,
    OpenLTXKeyframe,
    OpenLTXAudioToVideo,
    OpenLTXRetake,
    OpenLTXExtendVideo,
    OpenLTXReferenceVideoGuide,
    OpenLTXLoraLoader,
    OpenLTXRenoise,
]
