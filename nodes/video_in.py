"""Video in: load part of a video file (frames + sound) and encode frames (+ sound) into an
LTX-2 latent, for video-to-video, IC-LoRA control, retake of a user's clip and upscaling.

File reading lives in ``media/video_file.py``, the streamed tiled encode in
``host/aux_models.encode_video`` / ``ltx2/tiling.py``.
"""

from __future__ import annotations

import logging
import os

import torch

import comfy.model_management as mm
import comfy.nested_tensor
import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io

from ..host import aux_models, model as host_model, paths
from ..media.audio_file import VIDEO_EXTENSIONS
from ..media.video_file import VideoFileError, read_audio, read_frames, resize_cover
from ..samplers import conditioning as C
from .decode import TileProgress, run
from .loaders import AudioVAEType, VideoVAEType

log = logging.getLogger(__name__)

SIZE_STEP = host_model.VIDEO_SPACE_STRIDE
FRAME_STEP = host_model.VIDEO_TIME_STRIDE
MAX_FRAMES = 8 * 1024 + 1
RESIZE_CHUNK = 32  # frames resized at once by the encoder


def video_files() -> list[str]:
    """Video files of ComfyUI's input folder (sub-folders included; links that lead out of the
    folder are not offered)."""
    root = folder_paths.get_input_directory()
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.lower().endswith(VIDEO_EXTENSIONS):
                rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                if paths.input_file(rel, VIDEO_EXTENSIONS) is not None:
                    found.append(rel)
    return sorted(found)


def usable_frames(count: int) -> int:
    """The largest 8k+1 frame count not above ``count`` (0 when ``count`` is 0)."""
    return 0 if count < 1 else (count - 1) // FRAME_STEP * FRAME_STEP + 1


class OpenLTXLoadVideo(io.ComfyNode):
    """A stretch of a video file from the input folder -> IMAGE frames + AUDIO + fps."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXLoadVideo",
            display_name="LTX-2 Load Video",
            category="OpenLTX/video",
            description=(
                "Loads frames and sound of a video file from ComfyUI's input folder (upload with the button), "
                "through PyAV. Reads only what is asked for: it seeks to start_s and stops after 'frames' frames, "
                "so the opening of a long film costs what a short clip costs. Optionally resamples to another frame "
                "rate (nearest frame) and resizes (cover + center crop, as Lightricks' video conditioning does)."
            ),
            inputs=[
                io.Combo.Input("video", options=video_files(), upload=io.UploadType.video,
                               tooltip="A video file in ComfyUI's input folder (mp4, mov, mkv, webm, avi, m4v)."),
                io.Float.Input("start_s", default=0.0, min=0.0, max=1e6, step=0.01,
                               tooltip="Where to start reading, in seconds from the beginning of the file."),
                io.Int.Input("frames", default=121, min=1, max=MAX_FRAMES,
                             tooltip="At most this many frames are decoded (fewer when the file ends first). "
                             "121 frames at 24 fps is about 5 seconds."),
                io.Float.Input("fps", default=0.0, min=0.0, max=240.0, step=0.001,
                               tooltip="Frame rate of the output; 0 = the file's own. Other rates repeat or drop "
                               "frames (the source frame on screen at each time)."),
                io.Int.Input("width", default=0, min=0, max=16384, step=2,
                             tooltip="Output width in pixels (resized to cover, center-cropped); 0 = keep the "
                             "file's (or follow height's aspect ratio)."),
                io.Int.Input("height", default=0, min=0, max=16384, step=2,
                             tooltip="Output height in pixels; 0 = keep the file's (or follow width's aspect ratio)."),
                io.Boolean.Input("frames_8k_plus_1", default=True,
                                 tooltip="Keep the largest 8k+1 number of frames (1, 9, 17, ..., 121): what the "
                                 "LTX-2 VAE encodes. The sound is cut to the kept frames."),
            ],
            outputs=[
                io.Image.Output(display_name="images", tooltip="The frames, (F, H, W, 3) in [0, 1]."),
                io.Audio.Output(display_name="audio", tooltip="The sound of the same time range {waveform (1, C, N), "
                                "sample_rate}; silence when the file has none."),
                io.Float.Output(display_name="fps", tooltip="Frame rate of the frames (the file's, or the one asked)."),
                io.Int.Output(display_name="frame_count", tooltip="Number of frames output."),
            ],
        )  # fmt: skip

    @classmethod
    def validate_inputs(cls, video=None):  # only the inputs named: ComfyUI still checks the others
        if video is None:  # linked: checked when it runs
            return True
        return paths.input_file_error("video", video, VIDEO_EXTENSIONS) or True

    @classmethod
    def fingerprint_inputs(cls, video=None, **kw):
        # Only a file inside the input folder is ever looked at: anything else fingerprints to "".
        path = paths.input_file(video, VIDEO_EXTENSIONS)
        if path is None:
            return ""
        st = os.stat(path)  # videos can be large: size + time instead of a hash
        return f"{st.st_size}:{st.st_mtime_ns}:{sorted(kw.items())}"

    @classmethod
    def execute(cls, video, start_s=0.0, frames=121, fps=0.0, width=0, height=0,
                frames_8k_plus_1=True) -> io.NodeOutput:  # fmt: skip
        node = "LTX-2 Load Video"
        path = paths.require_input_file(node, "video", video, VIDEO_EXTENSIONS)
        bar = comfy.utils.ProgressBar(int(frames))
        interrupt = mm.throw_exception_if_processing_interrupted
        try:
            clip = read_frames(path, start_s=float(start_s), frames=int(frames), fps=float(fps), width=int(width),
                               height=int(height), progress=lambda d, t: bar.update_absolute(d, t),
                               interrupt=interrupt)  # fmt: skip
            images = clip.frames
            if frames_8k_plus_1:
                keep = usable_frames(images.shape[0])
                if keep != images.shape[0]:
                    log.info("%s: %s gave %d frames, keeping %d (8k+1)", node, video, images.shape[0], keep)
                images = images[:keep]
            duration = images.shape[0] / clip.fps
            sound = read_audio(path, float(start_s), duration, interrupt=interrupt)
        except VideoFileError as err:
            raise ValueError(f"{node}: {err}") from err
        if sound is None or sound[0].shape[-1] == 0:
            rate = 16000
            waveform = torch.zeros(1, 1, round(duration * rate))
        else:
            waveform, rate = sound[0].unsqueeze(0), sound[1]
        audio = {"waveform": waveform, "sample_rate": int(rate)}
        return io.NodeOutput(images, audio, float(clip.fps), int(images.shape[0]))


def _encode_tiling_inputs() -> list:
    return [
        io.Combo.Input("tiling", options=["auto", "custom", "off"], default="auto",
                       tooltip="auto: the largest tiles that fit the free memory. custom: the sizes below. off: encode "
                       "in one piece (needs the most memory)."),
        io.Int.Input("spatial_tile", default=512, min=0, max=4096, step=32, optional=True,
                     tooltip="custom tiling: tile width/height in pixels (multiple of 32, >= 64; 0 = no spatial tiles)."),
        io.Int.Input("spatial_overlap", default=64, min=32, max=2048, step=32, optional=True,
                     tooltip="custom tiling: overlap of neighbouring tiles in pixels (multiple of 32)."),
        io.Int.Input("temporal_tile", default=64, min=0, max=4096, step=8, optional=True,
                     tooltip="custom tiling: frames per temporal chunk (multiple of 8, >= 16; 0 = no temporal tiles)."),
        io.Int.Input("temporal_overlap", default=24, min=16, max=2048, step=8, optional=True,
                     tooltip="custom tiling: frames shared by neighbouring chunks (multiple of 8, >= 16)."),
    ]  # fmt: skip


def _target_size(node: str, w: int, h: int, width: int, height: int, factor: int) -> tuple[int, int]:
    base_w, base_h = (width or w // SIZE_STEP * SIZE_STEP), (height or h // SIZE_STEP * SIZE_STEP)
    if factor < 1 or base_w % factor or base_h % factor:
        raise ValueError(f"{node}: size {base_w}x{base_h} is not divisible by downscale_factor {factor}")
    tw, th = base_w // factor, base_h // factor
    if tw < SIZE_STEP or th < SIZE_STEP or tw % SIZE_STEP or th % SIZE_STEP:
        hint = f" / downscale_factor {factor}" if factor > 1 else ""
        raise ValueError(
            f"{node}: the encoded size {tw}x{th} (= {base_w}x{base_h}{hint}) must be multiples of 32 and at least "
            f"32; set width/height (the video's size) to multiples of {SIZE_STEP * factor}"
        )
    return tw, th


def _resized(frames: torch.Tensor, tw: int, th: int) -> torch.Tensor:
    """Frames resized to cover (tw, th) and center-cropped, a chunk at a time (float32, CPU)."""
    if tuple(frames.shape[1:3]) == (th, tw):
        return frames
    out = torch.empty(frames.shape[0], th, tw, 3, dtype=torch.float32)
    for s in range(0, frames.shape[0], RESIZE_CHUNK):
        out[s : s + RESIZE_CHUNK] = resize_cover(frames[s : s + RESIZE_CHUNK], tw, th)
    return out


class OpenLTXEncodeVideo(io.ComfyNode):
    """IMAGE frames (+ AUDIO) -> LTX-2 video (+ audio) latent."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXEncodeVideo",
            display_name="LTX-2 Encode Video",
            category="OpenLTX/video",
            description=(
                "Encodes video frames into an LTX-2 video latent, tiled and streamed (only one tile's pixels on the "
                "GPU at a time), and optionally their sound into the audio latent (cut or padded with silence to the "
                "frames' duration). For video-to-video, IC-LoRA control videos (set downscale_factor from the LoRA "
                "loader), retake and upscaling of your own clips. Frames are resized to cover the size and "
                "center-cropped; a count that is not 8k+1 is cut to the largest 8k+1."
            ),
            inputs=[
                io.Image.Input("images", tooltip="The frames (F, H, W, 3), e.g. from LTX-2 Load Video."),
                VideoVAEType.Input("video_vae", tooltip="The video VAE from LTX-2 VAE Loader."),
                io.Int.Input("width", default=0, min=0, max=16384, step=SIZE_STEP,
                             tooltip="Width of the video being generated (multiple of 32); 0 = the frames' width "
                             "rounded down to a multiple of 32."),
                io.Int.Input("height", default=0, min=0, max=16384, step=SIZE_STEP,
                             tooltip="Height of the video being generated; 0 = the frames' height rounded down."),
                io.Int.Input("downscale_factor", default=1, min=1, max=16,
                             tooltip="Encode at width/factor x height/factor: an IC-LoRA reference (connect LTX-2 "
                             "LoRA Loader's reference_downscale_factor). 1 for a normal video latent."),
                io.Float.Input("frame_rate", default=24.0, min=1.0, max=240.0, step=0.001,
                               tooltip="Frame rate of the frames (connect LTX-2 Load Video's fps): sets the sound's "
                               "length and the latent's frame_rate."),
                AudioVAEType.Input("audio_vae", optional=True,
                                   tooltip="The audio VAE from LTX-2 VAE Loader; with it the latent gets an audio "
                                   "stream (the sound below, or silence)."),
                io.Audio.Input("audio", optional=True, tooltip="The sound to encode with the frames (e.g. LTX-2 Load "
                               "Video's audio). Needs audio_vae."),
                *_encode_tiling_inputs(),
            ],
            outputs=[io.Latent.Output(tooltip="LTX-2 latent: video (1, 128, F', H/32, W/32) and, with an audio VAE, "
                                      "audio (1, 8, T, 16) as a nested latent; records frame_rate.")],
        )  # fmt: skip

    @classmethod
    def validate_inputs(cls, width=None, height=None):  # named inputs only: the host checks the rest
        bad = [f"{n} {v} is not a multiple of {SIZE_STEP}" for n, v in (("width", width), ("height", height))
               if v is not None and v % SIZE_STEP]  # fmt: skip
        return "; ".join(bad) if bad else True

    @classmethod
    def execute(cls, images, video_vae, width=0, height=0, downscale_factor=1, frame_rate=24.0, audio_vae=None,
                audio=None, tiling="auto", **tile_sizes) -> io.NodeOutput:  # fmt: skip
        node = "LTX-2 Encode Video"
        vae = aux_models.require(video_vae, "video VAE", node, "OPENLTX_VAE")
        if images.ndim != 4 or images.shape[-1] not in (3, 4) or images.shape[0] < 1:
            raise ValueError(f"{node}: expected IMAGE frames (F, H, W, 3), got shape {tuple(images.shape)}")
        if audio is not None and audio_vae is None:
            raise ValueError(f"{node}: 'audio' is connected but 'audio_vae' is not; connect LTX-2 VAE Loader's audio_vae")
        frames = images[..., :3]
        keep = (frames.shape[0] - 1) // FRAME_STEP * FRAME_STEP + 1
        if keep != frames.shape[0]:
            log.info("%s: %d frames is not 8k+1; encoding the first %d", node, frames.shape[0], keep)
            frames = frames[:keep]
        tw, th = _target_size(node, frames.shape[2], frames.shape[1], int(width), int(height), int(downscale_factor))
        frames = _resized(frames, tw, th)
        sizes = {k: v for k, v in tile_sizes.items() if k in ("spatial_tile", "spatial_overlap", "temporal_tile",
                                                              "temporal_overlap")}  # fmt: skip
        video = run(node, aux_models.encode_video, vae, frames, tiling=tiling, tile_sizes=sizes, progress=TileProgress())
        out = {"samples": video, "frame_rate": float(frame_rate)}
        if audio_vae is None:
            return io.NodeOutput(out)
        aud = aux_models.require(audio_vae, "audio VAE", node, "OPENLTX_AUDIO_VAE")
        steps = max(1, C.P.audio_latent_steps(keep, float(frame_rate)))
        if audio is None:
            wave, rate = torch.zeros(1, 1, 1), 16000
        else:
            if not isinstance(audio, dict) or "waveform" not in audio or audio["waveform"].ndim != 3:
                raise ValueError(f"{node}: expected an AUDIO {{'waveform': (B, C, N), 'sample_rate': int}}")
            wave, rate = audio["waveform"][:1], int(audio["sample_rate"])
        samples = round(keep / float(frame_rate) * rate)
        wave = C.fit_length(wave.float(), samples, dim=-1)  # silence after the end of the sound
        sound = run(node, aux_models.encode_audio, aud, wave, rate)  # no sound: the latent of silence
        sound = C.fit_length(sound, steps, dim=2, mode="edge")
        out["samples"] = comfy.nested_tensor.NestedTensor((video, sound))
        return io.NodeOutput(out)


NODES = [OpenLTXLoadVideo, OpenLTXEncodeVideo]
