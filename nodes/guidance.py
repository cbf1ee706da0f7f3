"""Guidance node: LTX-2's multimodal guider (CFG + STG + modality isolation + rescale) as a GUIDER."""

from __future__ import annotations

import logging

from comfy_api.v0_0_2 import io

from ..samplers import guidance as G
from ..samplers.comfy_guider import MultimodalGuider

# Named presets first (the existing "LTX-2.0" / "LTX-2.3" keep their place), then "custom".
PRESETS = [*G.PRESETS, "custom"]
_DEFAULT_VIDEO, _DEFAULT_AUDIO = G.preset("LTX-2.0")


def _stream_inputs(prefix: str, label: str, d: G.StreamGuidance) -> list:
    """The six inputs of one stream, defaulting to the LTX-2.0 values."""
    return [
        io.Float.Input(
            f"{prefix}_cfg", default=d.cfg, min=0.0, max=100.0, step=0.1, round=0.01,
            tooltip=f"{label} classifier-free guidance scale (1 = off, no negative-prompt pass). Used with preset 'custom'.",
        ),
        io.Float.Input(
            f"{prefix}_stg", default=d.stg, min=0.0, max=10.0, step=0.05, round=0.01,
            tooltip=f"{label} spatio-temporal guidance scale: pushes away from a prediction whose self-attention is "
            "skipped in the STG blocks (0 = off, no perturbed pass). Used with preset 'custom'.",
        ),
        io.String.Input(
            f"{prefix}_stg_blocks", default=",".join(str(b) for b in d.stg_blocks),
            tooltip=f"{label} STG blocks: transformer block indices, comma separated (LTX-2.0: 29, LTX-2.3: 28). "
            "Used with preset 'custom'.",
        ),
        io.Float.Input(
            f"{prefix}_rescale", default=d.rescale, min=0.0, max=1.0, step=0.05, round=0.01,
            tooltip=f"{label} rescale: 0 = off, 1 = the guided prediction gets the standard deviation of the "
            "conditioned one (against over-saturation). Used with preset 'custom'.",
        ),
        io.Float.Input(
            f"{prefix}_modality_scale", default=d.modality_scale, min=0.0, max=100.0, step=0.1, round=0.01,
            tooltip=f"{label} audio-video sync guidance: pushes away from a prediction where video and audio do not "
            "see each other (1 = off, no isolated pass). Used with preset 'custom'.",
        ),
        io.Int.Input(
            f"{prefix}_skip_step", default=d.skip_step, min=0, max=100,
            tooltip=f"{label} skip step: reuse the last guided prediction on k of every k+1 steps (0 = never; "
            "saves passes, costs quality). Used with preset 'custom'.",
        ),
    ]


class OpenLTXMultimodalGuider(io.ComfyNode):
    """MODEL + prompts -> GUIDER with per-stream CFG / STG / modality guidance."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXMultimodalGuider",
            display_name="LTX-2 Multimodal Guider",
            category="OpenLTX/sampling",
            description=(
                "LTX-2's guidance for SamplerCustomAdvanced: classifier-free guidance, spatio-temporal guidance (STG) "
                "and audio-video (modality) guidance with rescale, each with its own settings for the video and the "
                "audio stream, as in Lightricks' reference pipelines. Runs up to four model passes per step, batched "
                "into one call when memory allows. Also applies the latent's noise mask (image/audio conditioning): "
                "kept tokens stay exactly as given."
            ),
            inputs=[
                io.Model.Input("model", tooltip="An LTX-2 model (LTX-2 Checkpoint Loader)."),
                io.Conditioning.Input("positive", tooltip="The prompt (LTX-2 Text Encode)."),
                io.Conditioning.Input(
                    "negative", tooltip="The negative prompt (LTX-2 Text Encode); used where cfg is not 1."
                ),
                io.Combo.Input(
                    "preset", options=PRESETS, default="LTX-2.0",
                    tooltip="Named settings (the fields below are then ignored): "
                    + "; ".join(f"{name}: {note}" for name, note in G.PRESET_NOTES.items())
                    + ". 'custom': use the fields below.",
                ),
                *_stream_inputs("video", "Video", _DEFAULT_VIDEO),
                *_stream_inputs("audio", "Audio", _DEFAULT_AUDIO),
            ],
            outputs=[
                io.Guider.Output(
                    tooltip="The guider for SamplerCustomAdvanced (with any sampler and sigmas, e.g. LTX-2 Sampler "
                    "and LTX-2 Scheduler)."
                )
            ],
        )

    @classmethod
    def validate_inputs(cls, video_stg_blocks=None, audio_stg_blocks=None):
        errors = []
        for name, text in (("video_stg_blocks", video_stg_blocks), ("audio_stg_blocks", audio_stg_blocks)):
            if text is None:
                continue
            try:
                G.parse_blocks(text, name=name)
            except ValueError as err:
                errors.append(str(err))
        return "; ".join(errors) if errors else True

    @classmethod
    def execute(cls, model, positive, negative, preset, **fields) -> io.NodeOutput:
        config = getattr(model.model, "model_config", None)
        num_blocks = getattr(getattr(config, "transformer_config", None), "num_layers", None)
        try:
            if preset == "custom":
                video, audio = (_stream_params(fields, p, num_blocks) for p in ("video", "audio"))
            else:
                video, audio = G.preset(preset)
                missing = sorted({b for p in (video, audio) for b in p.stg_blocks if num_blocks and b >= num_blocks})
                if missing:  # e.g. a small test model: STG then perturbs nothing
                    logging.warning("LTX-2 Multimodal Guider: preset %s perturbs block(s) %s, this model has %s blocks; "
                                    "STG has no effect", preset, missing, num_blocks)
        except ValueError as err:
            raise ValueError(f"LTX-2 Multimodal Guider: {err}") from None
        guider = MultimodalGuider(model, video, audio)
        guider.set_conds(positive, negative)
        return io.NodeOutput(guider)


def _stream_params(fields: dict, prefix: str, num_blocks: int | None) -> G.StreamGuidance:
    return G.StreamGuidance(
        cfg=float(fields[f"{prefix}_cfg"]),
        stg=float(fields[f"{prefix}_stg"]),
        stg_blocks=G.parse_blocks(fields[f"{prefix}_stg_blocks"], num_blocks=num_blocks, name=f"{prefix}_stg_blocks"),
        rescale=float(fields[f"{prefix}_rescale"]),
        modality_scale=float(fields[f"{prefix}_modality_scale"]),
        skip_step=int(fields[f"{prefix}_skip_step"]),
    )


NODES = [OpenLTXMultimodalGuider]
