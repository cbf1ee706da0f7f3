"""Audio nodes: load an audio (or video) file's sound as AUDIO, through PyAV (no torchaudio)."""

from __future__ import annotations

import os

import comfy.model_management as mm
import folder_paths
from comfy_api.v0_0_2 import io

from ..host import paths
from ..media.audio_file import AUDIO_EXTENSIONS, MAX_AUDIO_VALUES, VIDEO_EXTENSIONS, AudioFileError, load_audio

EXTENSIONS = AUDIO_EXTENSIONS + VIDEO_EXTENSIONS
MAX_MINUTES = MAX_AUDIO_VALUES // (48000 * 2 * 60)


def audio_files() -> list[str]:
    """Audio and video files of ComfyUI's input folder (sub-folders included)."""
    root = folder_paths.get_input_directory()
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.lower().endswith(EXTENSIONS):
                rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                if paths.input_file(rel, EXTENSIONS) is not None:  # links out of the folder are not offered
                    found.append(rel)
    return sorted(found)


class OpenLTXLoadAudio(io.ComfyNode):
    """An audio / video file from the input folder -> AUDIO."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXLoadAudio",
            display_name="LTX-2 Load Audio",
            category="OpenLTX/audio",
            description=(
                "Loads the sound of an audio file (wav, mp3, flac, ogg, m4a, ...) or of a video with sound from "
                "ComfyUI's input folder, through PyAV (works without torchaudio). Upload a file with the button. "
                f"Reads the whole file, or the part start_s / duration_s pick; at most {MAX_MINUTES} minutes of "
                "48 kHz stereo at once."
            ),
            inputs=[
                io.Combo.Input(
                    "audio",
                    options=audio_files(),
                    upload=io.UploadType.audio,
                    tooltip="An audio or video file in ComfyUI's input folder; its first audio stream is loaded "
                    "at its own sample rate and channel count.",
                ),
                io.Float.Input(
                    "start_s", default=0.0, min=0.0, max=1e6, step=0.01, optional=True,
                    tooltip="Where to start reading, in seconds (0 = the beginning).",
                ),
                io.Float.Input(
                    "duration_s", default=0.0, min=0.0, max=1e6, step=0.01, optional=True,
                    tooltip="How many seconds to read from start_s; 0 = to the end of the file. Only this part "
                    f"is decoded (at most {MAX_MINUTES} minutes of 48 kHz stereo: set it for longer files).",
                ),
            ],
            outputs=[
                io.Audio.Output(tooltip="The sound: {waveform (1, C, N) float in [-1, 1], sample_rate}."),
            ],
        )

    @classmethod
    def validate_inputs(cls, audio=None):
        if audio is None:
            return True
        return paths.input_file_error("audio", audio, EXTENSIONS) or True

    @classmethod
    def fingerprint_inputs(cls, audio=None, **_other):
        # Only a file inside the input folder is ever read (hashed): anything else hashes to "".
        return paths.file_digest(paths.input_file(audio, EXTENSIONS))

    @classmethod
    def execute(cls, audio, start_s=0.0, duration_s=0.0) -> io.NodeOutput:
        node = "LTX-2 Load Audio"
        path = paths.require_input_file(node, "audio", audio, EXTENSIONS)
        try:
            waveform, rate = load_audio(path, start_s=float(start_s), duration_s=float(duration_s) or None,
                                        interrupt=mm.throw_exception_if_processing_interrupted)  # fmt: skip
        except AudioFileError as err:
            raise ValueError(f"{node}: {err}") from err
        return io.NodeOutput({"waveform": waveform.unsqueeze(0), "sample_rate": rate})


NODES = [OpenLTXLoadAudio]
