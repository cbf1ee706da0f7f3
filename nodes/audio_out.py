"""Audio output node: an LTX-2 latent's audio stream -> a FLAC file (text-to-audio, audio retake)."""

from __future__ import annotations

from comfy_api.v0_0_2 import io, ui

from ..host import aux_models
from .decode import run
from .loaders import AudioVAEType


class OpenLTXSaveAudio(io.ComfyNode):
    """Decode the audio stream of an LTX-2 latent and write it to the output folder."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXSaveAudio",
            display_name="LTX-2 Save Audio",
            category="OpenLTX/decode",
            description=(
                "Decodes the audio stream of an LTX-2 latent (audio VAE + vocoder) and writes it as a FLAC file to "
                "ComfyUI's output folder, with the workflow in its metadata. For text-to-audio (LTX-2 Empty "
                "Latent with streams 'audio only') and audio retakes; a video+audio latent's video is ignored. "
                "Works without torchaudio. Also returns the sound as AUDIO."
            ),
            inputs=[
                io.Latent.Input("latent", tooltip="An LTX-2 latent with an audio stream (audio only, or video+audio)."),
                AudioVAEType.Input("audio_vae", tooltip="The audio VAE + vocoder from LTX-2 VAE Loader."),
                io.String.Input(
                    "filename_prefix", default="audio/LTX-2",
                    tooltip="Output file name prefix, may contain a sub-folder (audio/LTX-2 -> "
                    "output/audio/LTX-2_00001_.flac) and %date:...% style fields.",
                ),
            ],
            outputs=[io.Audio.Output(tooltip="The decoded sound {waveform (B, 2, N), sample_rate}.")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, latent, audio_vae, filename_prefix="audio/LTX-2") -> io.NodeOutput:
        node = "LTX-2 Save Audio"
        _, audio = aux_models.split_latent(latent, node)
        if audio is None:
            raise ValueError(f"{node}: the latent has no audio stream; connect an LTX-2 latent with audio (LTX-2 Empty "
                             "Latent 'video+audio' or 'audio only')")  # fmt: skip
        aud = aux_models.require(audio_vae, "audio VAE", node, "OPENLTX_AUDIO_VAE")
        sound = run(node, aux_models.decode_audio, aud, audio)
        # Core's helper writes FLAC through PyAV; it reads the workflow from cls.hidden, which is
        # only there when the executor runs the node.
        owner = cls if getattr(cls, "hidden", None) is not None else None
        saved = ui.AudioSaveHelper.get_save_audio_ui(sound, filename_prefix, owner, format="flac")
        return io.NodeOutput(sound, ui=saved)


NODES = [OpenLTXSaveAudio]
