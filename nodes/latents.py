"""Latent nodes: the empty joint video+audio latent; the latent upscaler."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..host import aux_models, model as host_model
from .loaders import UpscalerType, VideoVAEType

SIZE_STEP = host_model.VIDEO_SPACE_STRIDE  # 32 px per latent cell
FRAME_STEP = host_model.VIDEO_TIME_STRIDE  # 8 frames per latent frame, plus the first
MAX_SIZE = 16384
MAX_FRAMES = 8 * 1024 + 1


def _size_error(name: str, value: int) -> str | None:
    if value < SIZE_STEP or value > MAX_SIZE:
        return f"{name} {value} is out of range: use a multiple of {SIZE_STEP} from {SIZE_STEP} to {MAX_SIZE}"
    if value % SIZE_STEP:
        lower = value // SIZE_STEP * SIZE_STEP
        nearest = f"{lower} or {lower + SIZE_STEP}" if lower >= SIZE_STEP else f"{lower + SIZE_STEP}"
        return f"{name} {value} is not a multiple of {SIZE_STEP}; nearest valid {name}s: {nearest}"
    return None


def _frames_error(value: int) -> str | None:
    if value < 1 or value > MAX_FRAMES:
        return f"frames {value} is out of range: use 8k+1 frames from 1 to {MAX_FRAMES}"
    if (value - 1) % FRAME_STEP:
        lower = (value - 1) // FRAME_STEP * FRAME_STEP + 1
        return (
            f"frames {value} is not of the form 8k+1 (1, 9, 17, ..., 121, ...); "
            f"nearest valid frame counts: {lower} or {lower + FRAME_STEP}"
        )
    return None


def latent_size_errors(width: int | None, height: int | None, frames: int | None) -> list[str]:
    """Messages for every invalid size (``None`` = not known yet, e.g. linked from another node)."""
    errors = [
        _size_error("width", width) if width is not None else None,
        _size_error("height", height) if height is not None else None,
        _frames_error(frames) if frames is not None else None,
    ]
    return [e for e in errors if e]


class OpenLTXEmptyLatent(io.ComfyNode):
    """Zeros for the joint latent; KSampler / SamplerCustomAdvanced start from it."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXEmptyLatent",
            display_name="LTX-2 Empty Latent (video+audio)",
            category="OpenLTX/latent",
            description=(
                "An empty LTX-2 latent holding a video and an audio stream of matching length "
                "(a nested latent). Width and height must be multiples of 32, frames of the form "
                "8k+1 (e.g. 97, 121). The frame rate reaches the model through the conditioning "
                "(set it on the text-encode node to the same value). 'streams' makes an audio-only latent "
                "for text-to-audio (or a video-only one)."
            ),
            inputs=[
                io.Int.Input(
                    "width", default=960, min=SIZE_STEP, max=MAX_SIZE, step=SIZE_STEP,
                    tooltip="Video width in pixels; a multiple of 32 (64 for two-stage workflows). 960 x 544 is "
                    "stage 1 of Lightricks' ComfyUI workflows (x2 in stage 2); the reference pipelines use 768 x 512.",
                ),
                io.Int.Input(
                    "height", default=544, min=SIZE_STEP, max=MAX_SIZE, step=SIZE_STEP,
                    tooltip="Video height in pixels; a multiple of 32.",
                ),
                io.Int.Input(
                    "frames", default=121, min=1, max=MAX_FRAMES, step=FRAME_STEP,
                    tooltip="Number of video frames; must be 8k+1 (1, 9, 17, ..., 97, 121, ...). "
                    "121 frames at 24 fps is about 5 seconds.",
                ),
                io.Float.Input(
                    "fps", default=24.0, min=1.0, max=240.0, step=0.01,
                    tooltip="Frame rate of the video. Sets the audio length (25 audio latents per second). "
                    "Use the same value on the text-encode node: the model reads it from the conditioning.",
                ),
                io.Int.Input(
                    "batch_size", default=1, min=1, max=64,
                    tooltip="How many videos to generate at once.",
                ),
                # Added last and optional so workflows saved before it still load unchanged.
                io.Combo.Input(
                    "streams", options=list(host_model.STREAMS), default="video+audio", optional=True,
                    tooltip="video+audio: the joint latent (default). audio only: text-to-audio - only the audio "
                    "stream (its length from frames / fps; width and height are ignored), the transformer runs "
                    "without video as in the reference's audio-only mode; sample it with LTX-2 Multimodal Guider "
                    "and save it with LTX-2 Save Audio. video only: the video stream alone.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    tooltip="Nested latent: video (B, 128, (frames-1)/8+1, height/32, width/32) and "
                    "audio (B, 8, round(frames/fps*25), 16), all zeros (only the chosen streams); also records "
                    "frame_rate.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, width=None, height=None, frames=None):
        # Only these three inputs are named: ComfyUI skips its own min/max checks for the
        # inputs a validate function takes, and repeats the error once per taken input.
        errors = latent_size_errors(width, height, frames)
        return "; ".join(errors) if errors else True

    @classmethod
    def execute(cls, width, height, frames, fps, batch_size=1, streams="video+audio") -> io.NodeOutput:
        errors = latent_size_errors(width, height, frames)  # values may have come through links
        if not fps > 0:
            errors.append(f"fps {fps} must be positive")
        if streams not in host_model.STREAMS:
            errors.append(f"streams {streams!r} is not one of {list(host_model.STREAMS)}")
        if errors:
            raise ValueError("LTX-2 Empty Latent: " + "; ".join(errors))
        return io.NodeOutput(host_model.empty_latent(width, height, frames, fps, batch_size, streams))


class OpenLTXLatentUpscale(io.ComfyNode):
    """LATENT -> LATENT with the video stream upscaled (audio unchanged)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXLatentUpscale",
            display_name="LTX-2 Latent Upscale",
            category="OpenLTX/latent",
            description=(
                "Upscales the video stream of an LTX-2 latent with a latent upscaler (spatial x2 / x1.5: width and "
                "height; temporal x2: F' latent frames -> 2F'-1, i.e. twice the frame rate for the same duration). "
                "The audio stream passes through unchanged. Used between the two stages of two-stage workflows; "
                "re-noise and sample the result again to add detail."
            ),
            inputs=[
                io.Latent.Input("latent", tooltip="An LTX-2 latent (nested video+audio, or video only)."),
                UpscalerType.Input("upscaler", tooltip="The latent upscaler from LTX-2 Latent Upscaler Loader."),
                VideoVAEType.Input(
                    "video_vae",
                    tooltip="The video VAE of the same model: the upscaler works on un-normalised latents, and the "
                    "VAE holds the statistics to un-normalise and re-normalise them.",
                ),
            ],
            outputs=[
                io.Latent.Output(
                    tooltip="The latent with its video stream upscaled; frame_rate doubles for a temporal upscaler."
                ),
            ],
        )

    @classmethod
    def execute(cls, latent, upscaler, video_vae) -> io.NodeOutput:
        node = "LTX-2 Latent Upscale"
        up = aux_models.require(upscaler, "upscaler", node, "OPENLTX_UPSCALER")
        vae = aux_models.require(video_vae, "video VAE", node, "OPENLTX_VAE")
        video, audio = aux_models.split_latent(latent, node)
        if video is None:
            raise ValueError(
                f"{node}: the latent has no video stream (only audio {tuple(audio.shape)}); nothing to upscale"
            )
        try:
            out = aux_models.upscale_video(up, vae, video)
        except ValueError as err:
            raise ValueError(f"{node}: {err}") from err
        extra = {}
        time_factor = up.module.config.scale[0]
        if time_factor != 1.0 and "frame_rate" in latent:
            extra["frame_rate"] = float(latent["frame_rate"]) * time_factor
        return io.NodeOutput(aux_models.join_latent(latent, out, audio, **extra))


NODES = [OpenLTXEmptyLatent, OpenLTXLatentUpscale]
