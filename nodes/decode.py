"""Decode / encode nodes: LATENT -> IMAGE + AUDIO, IMAGE -> latent frame, AUDIO -> audio latent."""

from __future__ import annotations

import torch

import comfy.model_management as mm
import comfy.utils
from comfy_api.v0_0_2 import io

from ..media.image_prep import DEFAULT_IMAGE_CRF, MAX_CRF, crf_roundtrip
from ..host import aux_models
from .loaders import AudioVAEType, VideoVAEType

SIZE_STEP = 32
TILING_MODES = ["auto", "custom", "off"]
TILE_SIZE_INPUTS = ("spatial_tile", "spatial_overlap", "temporal_tile", "temporal_overlap")


# ------------------------------------------------------------------------------ shared inputs
def tiling_inputs() -> list:
    """Tiling inputs shared by the decode and save-video nodes."""
    return [
        io.Combo.Input(
            "tiling", options=TILING_MODES, default="auto",
            tooltip="auto: the largest tiles that fit the free memory of the device (safe default). custom: the "
            "tile sizes below. off: decode in one piece (fastest, needs the most memory).",
        ),
        io.Int.Input(
            "spatial_tile", default=512, min=0, max=4096, step=32, optional=True,
            tooltip="custom tiling: tile width/height in pixels (multiple of 32, >= 64; 0 = no spatial tiling).",
        ),
        io.Int.Input(
            "spatial_overlap", default=64, min=32, max=2048, step=32, optional=True,
            tooltip="custom tiling: overlap of neighbouring tiles in pixels (multiple of 32, less than the tile).",
        ),
        io.Int.Input(
            "temporal_tile", default=64, min=0, max=4096, step=8, optional=True,
            tooltip="custom tiling: frames per temporal chunk (multiple of 8, >= 16; 0 = no temporal tiling).",
        ),
        io.Int.Input(
            "temporal_overlap", default=24, min=16, max=2048, step=8, optional=True,
            tooltip="custom tiling: frames shared by neighbouring chunks (multiple of 8, >= 16).",
        ),
        io.Float.Input(
            "decode_timestep", default=0.05, min=0.0, max=1.0, step=0.001, optional=True,
            tooltip="Timestep-conditioned VAEs only (ignored otherwise): the noise level the decoder is told. "
            "0.05 is the reference default.",
        ),
        io.Float.Input(
            "decode_noise_scale", default=0.025, min=0.0, max=1.0, step=0.001, optional=True,
            tooltip="Timestep-conditioned VAEs only: fraction of fresh noise mixed into the latent before "
            "decoding (reference default 0.025).",
        ),
        io.Int.Input(
            "seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, optional=True,
            tooltip="Timestep-conditioned VAEs only: seed of the decode noise.",
        ),
    ]


def decode_options(kw: dict) -> dict:
    """Keyword arguments for ``aux_models.decode_video`` from the node inputs above."""
    return {
        "tiling": kw.get("tiling", "auto"),
        "tile_sizes": {k: kw[k] for k in TILE_SIZE_INPUTS if k in kw},
        "timestep": kw.get("decode_timestep"),
        "noise_scale": kw.get("decode_noise_scale"),
        "seed": kw.get("seed", 0),
    }


class TileProgress:
    """``progress(done, total)`` callback feeding ComfyUI's progress bar (and Cancel)."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        mm.throw_exception_if_processing_interrupted()
        if self.bar is None:
            self.bar = comfy.utils.ProgressBar(total)
        self.bar.update_absolute(done, total)


def run(node: str, fn, *args, **kwargs):
    """Call ``fn``; turn ValueErrors (bad inputs) into messages that name the node."""
    try:
        return fn(*args, **kwargs)
    except ValueError as err:
        message = str(err)
        raise ValueError(message if message.startswith(node) else f"{node}: {message}") from err


# ------------------------------------------------------------------------------ nodes
class OpenLTXDecode(io.ComfyNode):
    """LATENT -> IMAGE frames + AUDIO."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXDecode",
            display_name="LTX-2 Decode",
            category="OpenLTX/decode",
            description=(
                "Decodes an LTX-2 latent: the video stream to IMAGE frames (tiled, so any length and size fit "
                "in memory) and the audio stream to AUDIO (audio VAE + vocoder). For long videos prefer "
                "LTX-2 Save Video, which streams frames to the file instead of holding them all."
            ),
            inputs=[
                io.Latent.Input("latent", tooltip="An LTX-2 latent: nested video+audio, or video only."),
                VideoVAEType.Input("video_vae", tooltip="The video VAE from LTX-2 VAE Loader."),
                AudioVAEType.Input(
                    "audio_vae", optional=True,
                    tooltip="The audio VAE + vocoder from LTX-2 VAE Loader; needed to decode the audio stream.",
                ),
                *tiling_inputs(),
            ],
            outputs=[
                io.Image.Output(
                    "images", tooltip="All frames, (batch x frames, H, W, 3) in [0, 1]; 8(F'-1)+1 frames per video."
                ),
                io.Audio.Output(
                    "audio", tooltip="The decoded sound {waveform (B, 2, N), sample_rate}; None when the latent has "
                    "no audio stream or no audio VAE is connected.",
                ),
            ],
        )

    @classmethod
    def execute(cls, latent, video_vae, audio_vae=None, **kw) -> io.NodeOutput:
        node = "LTX-2 Decode"
        video, audio = aux_models.split_latent(latent, node)
        if video is None:
            raise ValueError(f"{node}: the latent holds only an audio stream (shape {tuple(audio.shape)}); connect a "
                             "video or nested video+audio LTX-2 latent")  # fmt: skip
        vae = aux_models.require(video_vae, "video VAE", node, "OPENLTX_VAE")
        options = decode_options(kw)
        chunks = run(node, lambda: list(aux_models.decode_video(vae, video, progress=TileProgress(), **options)))
        frames = torch.cat(chunks, dim=1)  # (B, F, H, W, 3)
        images = frames.reshape(-1, *frames.shape[2:])
        sound = None
        if audio is not None and audio_vae is not None:
            aud = aux_models.require(audio_vae, "audio VAE", node, "OPENLTX_AUDIO_VAE")
            sound = run(node, aux_models.decode_audio, aud, audio)
        return io.NodeOutput(images, sound)


# Image vs target aspect ratio mismatch tolerated before the encode refuses (rounding to 32 px).
ASPECT_TOLERANCE = 0.1


class OpenLTXEncodeImage(io.ComfyNode):
    """IMAGE -> one-frame video latent (image-to-video conditioning)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXEncodeImage",
            display_name="LTX-2 Encode Image",
            category="OpenLTX/decode",
            description=(
                "Encodes still image(s) into one LTX-2 latent frame each, for image-to-video conditioning. "
                "By default the image first goes through an H.264 round trip (CRF 33) as in the reference "
                "pipelines: LTX-2 was trained on compressed video frames and follows such a frame more "
                "naturally than a pristine picture. The image is resized to cover the target size and "
                "center-cropped."
            ),
            inputs=[
                io.Image.Input("image", tooltip="The still image(s) (batch of B gives a latent batch of B)."),
                VideoVAEType.Input("video_vae", tooltip="The video VAE from LTX-2 VAE Loader."),
                io.Int.Input(
                    "width", default=0, min=0, max=16384, step=SIZE_STEP,
                    tooltip="Target width in pixels, a multiple of 32 (use the video's width); 0 = the image's "
                    "width rounded down to a multiple of 32.",
                ),
                io.Int.Input(
                    "height", default=0, min=0, max=16384, step=SIZE_STEP,
                    tooltip="Target height in pixels, a multiple of 32; 0 = the image's height rounded down.",
                ),
                io.Int.Input(
                    "crf", default=DEFAULT_IMAGE_CRF, min=0, max=MAX_CRF,
                    tooltip="H.264 quality of the preprocessing round trip: 33 = the reference default, 0 = off "
                    "(encode the image as is), higher = stronger compression.",
                ),
            ],
            outputs=[
                io.Latent.Output(tooltip="A video latent (B, 128, 1, height/32, width/32).")
            ],
        )

    @classmethod
    def validate_inputs(cls, width=None, height=None):
        bad = [f"{n} {v} is not a multiple of {SIZE_STEP}" for n, v in (("width", width), ("height", height))
               if v is not None and v % SIZE_STEP]  # fmt: skip
        return "; ".join(bad) if bad else True

    @classmethod
    def execute(cls, image, video_vae, width=0, height=0, crf=DEFAULT_IMAGE_CRF) -> io.NodeOutput:
        node = "LTX-2 Encode Image"
        vae = aux_models.require(video_vae, "video VAE", node, "OPENLTX_VAE")
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4) or not image.numel():
            found = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"{node}: expected an IMAGE (B, H, W, 3), got {found}")
        image = image[..., :3]
        if not torch.isfinite(image).all():
            raise ValueError(f"{node}: the image holds NaN or infinite values; expected colours in [0, 1] (check the "
                             "node that made it)")  # fmt: skip
        h, w = image.shape[1:3]
        tw = width or w // SIZE_STEP * SIZE_STEP
        th = height or h // SIZE_STEP * SIZE_STEP
        if tw < SIZE_STEP or th < SIZE_STEP or tw % SIZE_STEP or th % SIZE_STEP:
            raise ValueError(
                f"{node}: target size {tw}x{th} (image {w}x{h}) must be multiples of 32, at least 32; set width/height"
            )
        if abs((w / h) / (tw / th) - 1.0) > ASPECT_TOLERANCE:
            raise ValueError(
                f"{node}: the image is {w}x{h} (aspect {w / h:.3f}) but the target is {tw}x{th} (aspect "
                f"{tw / th:.3f}); stretching would distort it. Crop the image to the video's aspect ratio first "
                "(e.g. core 'Upscale Image' with crop: center), or set width and height to 0 to use the image's "
                "own size."
            )
        image = run(node, crf_roundtrip, image, crf)  # on the full-size image, as the reference does
        if (th, tw) != (h, w):
            image = comfy.utils.common_upscale(image.movedim(-1, 1), tw, th, "bilinear", "center").movedim(1, -1)
        latent = run(node, aux_models.encode_image, vae, image)
        return io.NodeOutput({"samples": latent})


class OpenLTXEncodeAudio(io.ComfyNode):
    """AUDIO -> audio latent."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXEncodeAudio",
            display_name="LTX-2 Encode Audio",
            category="OpenLTX/decode",
            description=(
                "Encodes sound into an LTX-2 audio latent (25 latent frames per second): resampled to the audio "
                "VAE's rate, turned into a stereo log-mel spectrogram and encoded. For audio-to-video and retake "
                "workflows."
            ),
            inputs=[
                io.Audio.Input(
                    "audio", tooltip="The sound (e.g. from LTX-2 Load Audio); mono is used for both channels."
                ),
                AudioVAEType.Input("audio_vae", tooltip="The audio VAE + vocoder from LTX-2 VAE Loader."),
            ],
            outputs=[io.Latent.Output(tooltip="An audio latent (B, 8, T, 16), T = 25 per second.")],
        )

    @classmethod
    def execute(cls, audio, audio_vae) -> io.NodeOutput:
        node = "LTX-2 Encode Audio"
        aud = aux_models.require(audio_vae, "audio VAE", node, "OPENLTX_AUDIO_VAE")
        if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
            raise ValueError(f"{node}: expected an AUDIO {{'waveform': (B, C, N), 'sample_rate': int}}")
        wave, rate = audio["waveform"], audio["sample_rate"]
        if not isinstance(wave, torch.Tensor) or wave.ndim != 3 or wave.shape[-1] == 0:
            found = tuple(wave.shape) if isinstance(wave, torch.Tensor) else type(wave).__name__
            raise ValueError(f"{node}: expected a waveform (B, C, N) with N > 0, got {found}")
        if not isinstance(rate, (int, float)) or not 1000 <= rate <= 768000:
            raise ValueError(f"{node}: the sample rate {rate!r} is not an audio rate (1 kHz to 768 kHz)")
        if not torch.isfinite(wave).all():
            raise ValueError(f"{node}: the sound holds NaN or infinite samples; expected samples in [-1, 1]")
        latent = run(node, aux_models.encode_audio, aud, wave, int(rate))
        return io.NodeOutput({"samples": latent, "type": "audio"})


NODES = [OpenLTXDecode, OpenLTXEncodeImage, OpenLTXEncodeAudio]
