"""ID-LoRA node: a reference voice for speaker identity transfer (LTX-2.3 ID-LoRA)."""

from __future__ import annotations

import node_helpers
from comfy_api.v0_0_2 import io

from ..host import aux_models
from ..host.reference_audio import REFERENCE_AUDIO_KEY, identity_guidance
from .decode import run
from .loaders import AudioVAEType


class OpenLTXReferenceAudio(io.ComfyNode):
    """AUDIO -> reference tokens on both conditionings (+ identity guidance on the MODEL)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXReferenceAudio",
            display_name="LTX-2 Reference Audio (ID-LoRA)",
            category="OpenLTX/conditioning",
            description=(
                "Speaker identity transfer with an ID-LoRA (e.g. ltx-2.3-id-lora-talkvid-3k): the reference clip is "
                "encoded with the audio VAE and given to the model as clean audio tokens placed just before the "
                "generated audio, on both conditionings. Identity guidance adds one model pass per step without "
                "the reference and pushes away from it (x0 += scale * (with - without)), as ComfyUI's LTX-2.3 "
                "ID-LoRA template does. Sample with LTX-2 Multimodal Guider (or core CFGGuider)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The LTX-2.3 model with the ID-LoRA loaded (LTX-2 LoRA Loader)."),
                io.Conditioning.Input("positive", tooltip="The prompt (LTX-2 Text Encode)."),
                io.Conditioning.Input("negative", tooltip="The negative prompt (LTX-2 Text Encode)."),
                io.Audio.Input(
                    "reference_audio",
                    tooltip="The voice to transfer (e.g. LTX-2 Load Audio). About 5 seconds, the ID-LoRA's training "
                    "length; much shorter or longer clips transfer the identity less well.",
                ),
                AudioVAEType.Input("audio_vae", tooltip="The audio VAE + vocoder from LTX-2 VAE Loader."),
                io.Float.Input(
                    "identity_guidance_scale", default=3.0, min=0.0, max=100.0, step=0.01, round=0.01,
                    tooltip="Strength of identity guidance: one extra model pass per step without the reference. "
                    "0 = off (no extra pass). 3 in ComfyUI's template.",
                ),
                io.Float.Input(
                    "start_percent", default=0.0, min=0.0, max=1.0, step=0.001,
                    tooltip="Start of the part of the schedule where identity guidance runs (0 = from the first step).",
                ),
                io.Float.Input(
                    "end_percent", default=1.0, min=0.0, max=1.0, step=0.001,
                    tooltip="End of the part of the schedule where identity guidance runs (1 = to the last step).",
                ),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The model with identity guidance (unchanged at scale 0)."),
                io.Conditioning.Output(display_name="positive", tooltip="The prompt with the reference audio."),
                io.Conditioning.Output(display_name="negative", tooltip="The negative prompt with the reference audio."),
            ],
        )

    @classmethod
    def execute(cls, model, positive, negative, reference_audio, audio_vae, identity_guidance_scale=3.0,
                start_percent=0.0, end_percent=1.0) -> io.NodeOutput:  # fmt: skip
        node = "LTX-2 Reference Audio"
        aud = aux_models.require(audio_vae, "audio VAE", node, "OPENLTX_AUDIO_VAE")
        if not isinstance(reference_audio, dict) or "waveform" not in reference_audio:
            raise ValueError(f"{node}: expected an AUDIO {{'waveform': (B, C, N), 'sample_rate': int}} as reference_audio")
        wave = reference_audio["waveform"]
        if wave.ndim != 3 or wave.shape[-1] == 0:
            raise ValueError(f"{node}: the reference audio is empty or not (B, C, N): shape {tuple(wave.shape)}")
        if start_percent > end_percent:
            raise ValueError(f"{node}: start_percent {start_percent} is after end_percent {end_percent}")
        latent = run(node, aux_models.encode_audio, aud, wave[:1], reference_audio["sample_rate"])
        positive = node_helpers.conditioning_set_values(positive, {REFERENCE_AUDIO_KEY: latent})
        negative = node_helpers.conditioning_set_values(negative, {REFERENCE_AUDIO_KEY: latent})
        patched = model.clone()
        if identity_guidance_scale != 0:
            sampling = patched.get_model_object("model_sampling")
            patched.set_model_sampler_post_cfg_function(identity_guidance(
                float(identity_guidance_scale), float(sampling.percent_to_sigma(start_percent)),
                float(sampling.percent_to_sigma(end_percent))))  # fmt: skip
        return io.NodeOutput(patched, positive, negative)


NODES = [OpenLTXReferenceAudio]
