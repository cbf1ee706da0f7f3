"""LTX-2.5's duration head as a node: CONDITIONING -> frames (8k + 1) and seconds."""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..host import duration, paths
from ..ltx2.duration_head import MAX_SECONDS, MIN_SECONDS
from .latents import MAX_FRAMES
from .loaders import _ensure_folder, _files, unlisted_file_error

FOLDER = "model_patches"  # where Lightricks publishes the head (both supported ComfyUI versions know it)


def head_options() -> list[str]:
    _ensure_folder(FOLDER)
    return _files(FOLDER)


class OpenLTXDurationHead(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXDurationHead",
            display_name="LTX-2 Duration (2.5)",
            category="OpenLTX/latent",
            description=(
                "Predicts how long the clip described by a prompt should be (LTX-2.5's duration head reads the "
                "encoded prompt), as a frame count on the 8k+1 grid at the given frame rate, within [min_seconds, "
                "max_seconds]. Connect 'frames' to LTX-2 Empty Latent's frames input (convert the widget to an input)."
            ),
            inputs=[
                io.Conditioning.Input("conditioning", tooltip="The positive prompt from LTX-2 Text Encode, encoded with "
                                      "the LTX-2.5 text encoder."),
                io.Combo.Input("duration_head", options=head_options(),
                               tooltip="ltx-2.5-duration-head-bf16.safetensors from models/model_patches."),
                io.Float.Input("frame_rate", default=24.0, min=1.0, max=240.0, step=0.01,
                               tooltip="Frames per second of the video (the same value as on LTX-2 Empty Latent)."),
                io.Float.Input("min_seconds", default=MIN_SECONDS, min=0.05, max=600.0, step=0.05, optional=True,
                               tooltip="Shortest clip to allow (the reference pipelines use 1 s)."),
                io.Float.Input("max_seconds", default=MAX_SECONDS, min=0.1, max=600.0, step=0.05, optional=True,
                               tooltip="Longest clip to allow (the reference pipelines use 20 s)."),
            ],
            outputs=[
                io.Int.Output("frames", tooltip="Frame count (8k+1) for LTX-2 Empty Latent's frames input."),
                io.Float.Output("seconds", tooltip="The duration the head predicted, in seconds, before the bounds "
                                "and the frame grid."),
            ],
        )  # fmt: skip

    @classmethod
    def validate_inputs(cls, duration_head=None, min_seconds=None, max_seconds=None):
        missing = unlisted_file_error("duration_head", duration_head, head_options(), f"models/{FOLDER}")
        if missing:
            return missing
        if min_seconds is not None and max_seconds is not None and not min_seconds < max_seconds:
            return f"min_seconds ({min_seconds}) must be below max_seconds ({max_seconds})"
        return True

    @classmethod
    def execute(cls, conditioning, duration_head, frame_rate, min_seconds=MIN_SECONDS,
                max_seconds=MAX_SECONDS) -> io.NodeOutput:  # fmt: skip
        node = "LTX-2 Duration (2.5)"
        _ensure_folder(FOLDER)
        path = paths.model_file(FOLDER, duration_head)  # confined to the folder (links into it are followed)
        if path is None:
            raise ValueError(f"{node}: {paths.shown(duration_head)} is not in models/{FOLDER}")
        try:
            frames, seconds = duration.predict(path, conditioning, frame_rate, min_seconds, max_seconds)
        except ValueError as err:
            raise ValueError(f"{node}: {err}") from err
        return io.NodeOutput(min(frames, MAX_FRAMES), seconds)


NODES = [OpenLTXDurationHead]
