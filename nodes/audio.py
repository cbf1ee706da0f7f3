"""Audio nodes: load an audio (or video) file's sound as AUDIO, through PyAV (no torchaudio)."""

from __future__ import annotations

import hashlib
import os

import folder_paths
from comfy_api.v0_0_2 import io

from ..media.audio_file import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, AudioFileError, load_audio


def audio_files() -> list[str]:
    """Audio and video files of ComfyUI's input folder (sub-folders included)."""
    root = folder_paths.get_input_directory()
    found = []
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            if name.lower().endswith(AUDIO_EXTENSIONS + VIDEO_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
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
                "ComfyUI's input folder, through PyAV (works without torchaudio). Upload a file with the button."
            ),
            inputs=[
                io.Combo.Input(
                    "audio",
                    options=audio_files(),
                    upload=io.UploadType.audio,
                    tooltip="An audio or video file in ComfyUI's input folder; its first audio stream is loaded "
                    "at its own sample rate and channel count.",
                ),
            ],
            outputs=[
                io.Audio.Output(tooltip="The sound: {waveform (1, C, N) float in [-1, 1], sample_rate}."),
            ],
        )

    @classmethod
    def validate_inputs(cls, audio):
        if not folder_paths.exists_annotated_filepath(audio):
            return f"LTX-2 Load Audio: no file {audio!r} in the input folder"
        return True

    @classmethod
    def fingerprint_inputs(cls, audio):
        path = folder_paths.get_annotated_filepath(audio)
        if not os.path.isfile(path):
            return ""  # validate_inputs reports it
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    @classmethod
    def execute(cls, audio) -> io.NodeOutput:
        path = folder_paths.get_annotated_filepath(audio)
        try:
            waveform, rate = load_audio(path)
        except AudioFileError as err:
            raise ValueError(f"LTX-2 Load Audio: {err}") from err
        return io.NodeOutput({"waveform": waveform.unsqueeze(0), "sample_rate": rate})


NODES = [OpenLTXLoadAudio]
