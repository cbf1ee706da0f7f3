"""Save-video node: LATENT -> mp4 (H.264 + AAC) streamed chunk by chunk, plus a core VIDEO."""

from __future__ import annotations

import json
import os

import comfy.model_management as mm
from comfy.cli_args import args
from comfy_api.input_impl import VideoFromFile
from comfy_api.v0_0_2 import io, ui

from ..media.mp4_writer import Mp4Writer, fps_fraction
from ..model_loaders.safe_paths import first_counter, numbered
from ..host import aux_models, paths
from .decode import TileProgress, decode_options, run, tiling_inputs
from .loaders import AudioVAEType, VideoVAEType

DEFAULT_FPS = 24.0


def _metadata(prompt, extra_pnginfo) -> dict[str, str]:
    """The workflow in the file's metadata, as core SaveVideo stores it."""
    if args.disable_metadata:
        return {}
    meta = {}
    if prompt is not None:
        meta["prompt"] = json.dumps(prompt)
    for key, value in (extra_pnginfo or {}).items():
        meta[key] = json.dumps(value)
    return meta


class OpenLTXSaveVideo(io.ComfyNode):
    """Decode an LTX-2 latent straight into an mp4 file in the output folder."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXSaveVideo",
            display_name="LTX-2 Save Video",
            category="OpenLTX/decode",
            description=(
                "Decodes an LTX-2 latent and writes an mp4 (H.264 video + AAC sound) to ComfyUI's output folder. "
                "Frames are decoded in temporal chunks and streamed into the encoder as they come, so memory "
                "does not grow with the video's length. Never overwrites a file: each run gets the next free "
                "name. Also returns the video as a core VIDEO."
            ),
            inputs=[
                io.Latent.Input("latent", tooltip="An LTX-2 latent: nested video+audio, or video only."),
                VideoVAEType.Input("video_vae", tooltip="The video VAE from LTX-2 VAE Loader."),
                AudioVAEType.Input(
                    "audio_vae", optional=True,
                    tooltip="The audio VAE + vocoder from LTX-2 VAE Loader; without it the file has no sound.",
                ),
                io.Float.Input(
                    "fps", default=0.0, min=0.0, max=240.0, step=0.001,
                    tooltip="Frame rate of the file; 0 = the latent's own frame rate (set by LTX-2 Empty Latent), "
                    "else 24. 23.976 / 29.97 / 59.94 are written as exact NTSC rates.",
                ),
                io.String.Input(
                    "filename_prefix", default="video/LTX-2",
                    tooltip="Output file name prefix, may contain a sub-folder (video/LTX-2 -> "
                    "output/video/LTX-2_00001_.mp4) and %date:...% style fields.",
                ),
                io.Int.Input(
                    "crf", default=19, min=0, max=51,
                    tooltip="H.264 quality: lower = better and larger (0 lossless, 19 visually near-lossless, 23 "
                    "ffmpeg's default).",
                ),
                *tiling_inputs(),
            ],
            outputs=[
                io.Video.Output(tooltip="The written file as a core VIDEO (the first video of a batch)."),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, filename_prefix=None):
        if filename_prefix is None:
            return True
        return paths.output_prefix_error("filename_prefix", filename_prefix) or True

    @classmethod
    def execute(cls, latent, video_vae, audio_vae=None, fps=0.0, filename_prefix="video/LTX-2", crf=19,
                **kw) -> io.NodeOutput:  # fmt: skip
        node = "LTX-2 Save Video"
        video, audio = aux_models.split_latent(latent, node)
        if video is None:
            raise ValueError(f"{node}: the latent holds no video stream (only audio {tuple(audio.shape)})")
        vae = aux_models.require(video_vae, "video VAE", node, "OPENLTX_VAE")
        run(node, vae.module.check_latent, video)  # before any work: a latent of another model
        rate = fps_fraction(fps if fps > 0 else float(latent.get("frame_rate", DEFAULT_FPS)))
        b, _, _, h, w = video.shape
        height, width = h * 32, w * 32
        # Where the files go, and that they can go there, before anything is decoded.
        folder, stem, subfolder = paths.output_target(node, "filename_prefix", filename_prefix, width, height)

        sound = None  # small next to the video: decoded whole, before the frames
        if audio is not None and audio_vae is not None:
            aud = aux_models.require(audio_vae, "audio VAE", node, "OPENLTX_AUDIO_VAE")
            sound = run(node, aux_models.decode_audio, aud, audio)
        mm.throw_exception_if_processing_interrupted()

        hidden = cls.hidden  # None when called outside the executor (tests, other nodes)
        meta = _metadata(getattr(hidden, "prompt", None), getattr(hidden, "extra_pnginfo", None))
        counter = first_counter(folder, stem, "_.mp4")
        writers = []
        try:
            for i in range(b):
                # The wanted name; the finished file takes it (or the next free one) atomically.
                writer = Mp4Writer(numbered(folder, stem, "_.mp4", counter + i), width, height, rate, crf=crf,
                                   metadata=meta, audio_sample_rate=sound["sample_rate"] if sound else None,
                                   interrupt=mm.throw_exception_if_processing_interrupted)  # fmt: skip
                if sound is not None:
                    writer.write_audio(sound["waveform"][min(i, sound["waveform"].shape[0] - 1)])
                writers.append(writer)
            chunks = aux_models.decode_video(vae, video, progress=TileProgress(), **decode_options(kw))
            for chunk in chunks:  # (B, f, H, W, 3) in [0, 1], as the decoder finishes them
                for writer, frames in zip(writers, chunk):
                    writer.write_frames(frames)
            mm.throw_exception_if_processing_interrupted()  # the last chance before the files appear
            files = [writer.close() for writer in writers]
        except ValueError as err:
            for writer in writers:
                writer.abort()
            message = str(err)
            raise ValueError(message if message.startswith(node) else f"{node}: {message}") from err
        except OSError as err:  # the folder was checked; a full disk or a vanished folder is left
            for writer in writers:
                writer.abort()
            raise ValueError(f"{node}: writing into {folder!r} failed ({err.strerror or err}); free disk space or "
                             "make the folder writable") from err  # fmt: skip
        except BaseException:
            for writer in writers:
                writer.abort()
            raise
        results = [ui.SavedResult(os.path.basename(p), subfolder, io.FolderType.output) for p in files]
        return io.NodeOutput(VideoFromFile(files[0]), ui=ui.PreviewVideo(results))


NODES = [OpenLTXSaveVideo]
