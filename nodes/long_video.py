"""Long-video nodes: the windowed (looping) sampler, per-window prompts, and joining an
extension onto its clip.

The window plan, conditioning and stitching are ``samplers/looping.py``; here the LATENT, the
GUIDER's conditionings and the NOISE are taken apart per window and handed to the guider's own
``sample`` (as SamplerCustomAdvanced does), one window at a time.
"""

from __future__ import annotations

import copy

import comfy.model_management as mm
import comfy.nested_tensor
import comfy.sample
import comfy.sampler_helpers
import comfy.utils
from comfy_api.v0_0_2 import io

from ..host import aux_models, model as host_model
from ..samplers import looping as L
from ..samplers.comfy_guider import MultimodalGuider
from .conditioning import _masks, _streams

FRAME_STEP = host_model.VIDEO_TIME_STRIDE
WindowPromptsType = io.Custom("OPENLTX_WINDOW_PROMPTS")
APPENDED = (host_model.KEYFRAMES_KEY, host_model.REFERENCE_KEY)


def _appended_items(guider) -> tuple[list, list]:
    """Keyframes and IC-LoRA references on the guider's positive conditioning (the nodes put the
    same items on the negative one)."""
    keyframes, references = [], []
    for entry in (getattr(guider, "original_conds", None) or {}).get("positive", []):
        keyframes += list(entry.get(host_model.KEYFRAMES_KEY) or ())
        references += list(entry.get(host_model.REFERENCE_KEY) or ())
    return keyframes, references


def _window_conds(guider, keyframes, references, positive=None) -> dict:
    """The guider's conditionings for one window: its keyframes / references (and prompt)."""
    out = {}
    for name, entries in guider.original_conds.items():
        if name == "positive" and positive is not None:
            entries = comfy.sampler_helpers.convert_cond(positive)
        fresh = []
        for entry in entries:
            entry = {k: v for k, v in entry.items() if k not in APPENDED}
            if keyframes:
                entry[host_model.KEYFRAMES_KEY] = tuple(keyframes)
            if references:
                entry[host_model.REFERENCE_KEY] = tuple(references)
            fresh.append(entry)
        out[name] = fresh
    return out


def _seeded(noise, offset: int):
    """A copy of a NOISE whose seed is moved by ``offset`` (the reference seeds windows so)."""
    out = copy.copy(noise)
    if hasattr(out, "seed") and isinstance(out.seed, int) and offset:
        out.seed = out.seed + offset
    return out


class OpenLTXLoopingSampler(io.ComfyNode):
    """A clip longer than one window, sampled window by window with overlaps."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXLoopingSampler",
            display_name="LTX-2 Long Video Sampler",
            category="OpenLTX/sampling",
            description=(
                "Generates a video longer than the model handles at once, in overlapping windows (Lightricks' "
                "looping sampler, with sound): each window is conditioned on the last frames already made and "
                "cross-faded into them, the sound runs on continuously, and keyframes / an IC-LoRA reference video "
                "given for the whole clip go to the window that shows them. Memory stays that of one window, "
                "whatever the length. Give it the whole clip's latent (LTX-2 Empty Latent with many frames, or an "
                "encoded video for video-to-video)."
            ),
            inputs=[
                io.Noise.Input("noise", tooltip="The noise (RandomNoise); window k uses seed + its first latent frame."),
                io.Guider.Input("guider", tooltip="LTX-2 Multimodal Guider (needed when the latent has sound or a "
                                "noise mask). Keyframes and reference videos on its conditioning are spread over the windows."),
                io.Sampler.Input("sampler", tooltip="The sampler (LTX-2 Sampler or KSamplerSelect)."),
                io.Sigmas.Input("sigmas", tooltip="The sigmas of each window (LTX-2 Scheduler / Distilled Sigmas)."),
                io.Latent.Input("latent", tooltip="The whole clip's latent (video + audio), with its noise mask if any."),
                io.Int.Input("window_frames", default=121, min=17, max=8 * 1024 + 1, step=FRAME_STEP,
                             tooltip="Pixel frames per window (8k+1); 121 = 16 latent frames, about 5 s at 24 fps."),
                io.Int.Input("overlap_frames", default=24, min=16, max=8 * 1024, step=FRAME_STEP,
                             tooltip="Pixel frames shared by neighbouring windows (a multiple of 8, at least 16)."),
                io.Float.Input("overlap_strength", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="How strongly a window follows the end of the previous one in the overlap "
                               "(1 = hold it, 0 = ignore it; 0.5 as in Lightricks' workflows)."),
                io.Float.Input("adain_factor", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Pull each later window's colour statistics towards the first window's "
                               "(0 = off; 0.1-0.3 against drift in long clips)."),
                WindowPromptsType.Input("window_prompts", optional=True,
                                        tooltip="Optional prompt per window (LTX-2 Window Prompts); the last one "
                                        "repeats. Without it every window uses the guider's prompt."),
            ],
            outputs=[io.Latent.Output(tooltip="The whole clip, windows stitched (noise mask dropped).")],
        )  # fmt: skip

    @classmethod
    def validate_inputs(cls, window_frames=None, overlap_frames=None):  # named only: the host checks the rest
        errors = []
        if window_frames is not None and (window_frames - 1) % FRAME_STEP:
            errors.append(f"window_frames {window_frames} is not of the form 8k+1 (e.g. 97, 121)")
        if overlap_frames is not None and overlap_frames % FRAME_STEP:
            errors.append(f"overlap_frames {overlap_frames} is not a multiple of 8")
        if window_frames is not None and overlap_frames is not None and \
                overlap_frames // FRAME_STEP >= (window_frames - 1) // FRAME_STEP + 1:
            errors.append(f"overlap_frames {overlap_frames} ({overlap_frames // FRAME_STEP} latent frames) must be "
                          f"shorter than the window ({window_frames} frames, {(window_frames - 1) // FRAME_STEP + 1} "
                          "latent frames)")
        return "; ".join(errors) if errors else True

    @classmethod
    def execute(cls, noise, guider, sampler, sigmas, latent, window_frames=121, overlap_frames=24,
                overlap_strength=0.5, adain_factor=0.0, window_prompts=None) -> io.NodeOutput:  # fmt: skip
        node = "LTX-2 Long Video Sampler"
        problems = cls.validate_inputs(window_frames=window_frames, overlap_frames=overlap_frames)
        if problems is not True:
            raise ValueError(f"{node}: {problems}")
        video, audio = _streams(latent, node)
        if video is None:
            raise ValueError(f"{node}: the latent has no video stream")
        vm, am = _masks(latent, video, audio)
        masked = latent.get("noise_mask") is not None or audio is not None
        if masked and not isinstance(guider, MultimodalGuider):
            raise ValueError(
                f"{node}: this latent needs per-stream denoise masks (it has sound or a noise mask), which only the "
                "LTX-2 Multimodal Guider applies; use it instead of a core guider"
            )
        fps = float(latent.get("frame_rate") or host_model.DEFAULT_FRAME_RATE)
        settings = L.LoopSettings(window=(window_frames - 1) // FRAME_STEP + 1, overlap=overlap_frames // FRAME_STEP,
                                  overlap_strength=float(overlap_strength), adain_factor=float(adain_factor))  # fmt: skip
        try:
            windows = L.plan_windows(video.shape[2], settings.window, settings.overlap)
        except L.LoopingError as err:
            raise ValueError(f"{node}: {err}") from None
        keyframes, references = _appended_items(guider)
        steps = max(1, len(sigmas) - 1)
        bar = comfy.utils.ProgressBar(len(windows) * steps)

        def sample_window(w, wv, wm, wa, wam, kf, rf):
            mm.throw_exception_if_processing_interrupted()
            g = copy.copy(guider)
            prompt = window_prompts[min(w.index, len(window_prompts) - 1)] if window_prompts else None
            g.original_conds = _window_conds(guider, kf, rf, prompt)
            samples = comfy.nested_tensor.NestedTensor((wv, wa)) if wa is not None else wv
            mask = None
            if masked:
                mask = comfy.nested_tensor.NestedTensor((wm, wam)) if wa is not None else wm
            n = _seeded(noise, w.start)
            start = w.index * steps

            def callback(step, x0, x, total):
                bar.update_absolute(start + step + 1, len(windows) * steps)

            out = g.sample(n.generate_noise({"samples": samples}), samples, sampler, sigmas, denoise_mask=mask,
                           callback=callback, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=n.seed)  # fmt: skip
            out = out.to(mm.intermediate_device())
            parts = list(out.unbind()) if getattr(out, "is_nested", False) else [out]
            return parts[0], (parts[1] if len(parts) > 1 else None)

        def tail_noise(tail, w):
            return comfy.sample.prepare_noise(tail, int(getattr(noise, "seed", 0)) + w.start + 1).to(tail)

        try:
            out_v, out_a = L.sample_long(video, vm, audio, am, fps, settings, sample_window, keyframes=keyframes,
                                         references=references, tail_noise=tail_noise)  # fmt: skip
        except L.LoopingError as err:
            raise ValueError(f"{node}: {err}") from None
        result = aux_models.join_latent(latent, out_v, out_a, frame_rate=fps)
        return io.NodeOutput(result)


class OpenLTXWindowPrompts(io.ComfyNode):
    """One prompt per window of LTX-2 Long Video Sampler."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXWindowPrompts",
            display_name="LTX-2 Window Prompts",
            category="OpenLTX/text",
            description="Encodes one prompt per window of LTX-2 Long Video Sampler, separated by '|' (the story of a "
            "long clip, window by window). If there are fewer prompts than windows the last one repeats.",
            inputs=[
                io.Custom("OPENLTX_TEXT_ENCODER").Input("text_encoder", tooltip="From LTX-2 Text Encoder Loader."),
                io.String.Input("prompts", multiline=True, default="",
                                tooltip="Prompts separated by '|': the first for window 1, the second for window 2, ..."),
                io.Float.Input("frame_rate", default=24.0, min=1.0, max=240.0, step=0.01,
                               tooltip="Frames per second of the video (as on LTX-2 Text Encode)."),
            ],
            outputs=[WindowPromptsType.Output(tooltip="The encoded prompts, for LTX-2 Long Video Sampler's "
                                              "window_prompts.")],
        )  # fmt: skip

    @classmethod
    def execute(cls, text_encoder, prompts, frame_rate=24.0) -> io.NodeOutput:
        from ..model_loaders.text_loading import text_conditioning

        texts = [p.strip() for p in prompts.split("|")]
        texts = [t for t in texts if t]
        if not texts:
            raise ValueError("LTX-2 Window Prompts: no prompt given; write prompts separated by '|'")
        bar = comfy.utils.ProgressBar(len(texts))
        encoded: dict[str, list] = {}
        out = []
        for i, text in enumerate(texts):
            if text not in encoded:
                video, audio = text_encoder.encode(text)
                encoded[text] = text_conditioning(video, audio, frame_rate)
            out.append(encoded[text])
            bar.update_absolute(i + 1, len(texts))
        return io.NodeOutput(out)


class OpenLTXJoinExtension(io.ComfyNode):
    """Clip + its extension (LTX-2 Extend Video, sampled) -> one longer latent."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXJoinExtension",
            display_name="LTX-2 Join Extension",
            category="OpenLTX/latent",
            description="Appends an extension to its clip: the sampled latent that LTX-2 Extend Video started from "
            "the clip's last latent frames. Those repeated frames (and the sound over the same time) are dropped, "
            "the rest follows the clip. Chain it to grow a video clip by clip.",
            inputs=[
                io.Latent.Input("latent", tooltip="The clip (or the result of an earlier join)."),
                io.Latent.Input("extension", tooltip="The sampled extension of this clip."),
                io.Int.Input("keep_latent_frames", default=2, min=1, max=1024,
                             tooltip="The keep_latent_frames LTX-2 Extend Video used."),
            ],
            outputs=[io.Latent.Output(tooltip="The clip followed by the new part of the extension.")],
        )  # fmt: skip

    @classmethod
    def execute(cls, latent, extension, keep_latent_frames=2) -> io.NodeOutput:
        node = "LTX-2 Join Extension"
        v, a = _streams(latent, node)
        ev, ea = _streams(extension, node, "extension")
        if v is None or ev is None:
            raise ValueError(f"{node}: both latents need a video stream")
        fps = float(latent.get("frame_rate") or extension.get("frame_rate") or host_model.DEFAULT_FRAME_RATE)
        try:
            video, audio = L.join_extension(v, a, ev, ea, int(keep_latent_frames), fps)
        except L.LoopingError as err:
            raise ValueError(f"{node}: {err}") from None
        return io.NodeOutput(aux_models.join_latent(latent, video, audio, frame_rate=fps))


NODES = [OpenLTXLoopingSampler, OpenLTXWindowPrompts, OpenLTXJoinExtension]
