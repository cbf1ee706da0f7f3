"""Sampling nodes: LTX-2 sigma schedules (SIGMAS) and the euler / res_2s steppers (SAMPLER).

They plug into core's SamplerCustomAdvanced (NOISE + GUIDER + SAMPLER + SIGMAS + LATENT).
The math lives in ``samplers/schedules.py`` and ``samplers/steppers.py``.
"""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..host import aux_models
from ..samplers import comfy_samplers, schedules, steppers

CATEGORY = "OpenLTX/sampling"


class OpenLTXScheduler(io.ComfyNode):
    """steps (+ optional latent) -> SIGMAS of the LTX-2 scheduler."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXScheduler",
            display_name="LTX-2 Scheduler",
            category=CATEGORY,
            description=(
                "The LTX-2 noise schedule (ltx-core's LTX2Scheduler): evenly spaced steps, shifted towards high "
                "noise by an amount that grows with the video's token count, then stretched so the last non-zero "
                "sigma equals 'terminal'. Without a latent it assumes 4096 tokens (shift 2.05), as the reference "
                "pipelines do; the HQ pipeline passes its latent. Ends in 0."
            ),
            inputs=[
                io.Int.Input("steps", default=20, min=1, max=1000,
                             tooltip="Number of sampling steps (the schedule has steps + 1 values). 20 with res_2s is "
                             "what Lightricks' LTX-2.0 ComfyUI workflows run; the reference pipelines use 40 (LTX-2.0 "
                             "dev, euler), 30 (LTX-2.3) and 15 (the res_2s HQ pipeline)."),
                io.Float.Input("terminal", default=schedules.DEFAULT_TERMINAL, min=0.0, max=0.99, step=0.001,
                               tooltip="The last non-zero sigma after stretching (0.1 in the reference)."),
                io.Boolean.Input("stretch", default=True,
                                 tooltip="Stretch the schedule so its last non-zero sigma equals 'terminal' "
                                 "(the reference does). Off: the plain shifted schedule."),
                io.Latent.Input("latent", optional=True,
                                tooltip="Optional: shift by this latent's video token count (frames x height x "
                                "width in latent cells) instead of the default 4096 tokens."),
            ],
            outputs=[io.Sigmas.Output(tooltip="steps + 1 noise levels from 1.0 down to 0.0.")],
        )

    @classmethod
    def execute(cls, steps, terminal, stretch, latent=None) -> io.NodeOutput:
        node = "LTX-2 Scheduler"
        tokens = None
        if latent is not None:
            video, audio = aux_models.split_latent(latent, node)
            if video is None:
                raise ValueError(f"{node}: the latent has no video stream (only audio {tuple(audio.shape)}); "
                                 "the shift is computed from video tokens: disconnect the latent to use 4096")
            tokens = schedules.token_count(video.shape)
        try:
            return io.NodeOutput(schedules.ltx2_sigmas(steps, tokens, terminal=terminal, stretch=stretch))
        except ValueError as err:
            raise ValueError(f"{node}: {err}") from err


class OpenLTXDistilledSigmas(io.ComfyNode):
    """The distilled model's fixed schedules."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXDistilledSigmas",
            display_name="LTX-2 Distilled Sigmas",
            category=CATEGORY,
            description=(
                "The fixed sigma lists of the distilled LTX-2 model (and of the distilled LoRA): stage 1 runs 8 "
                "steps from pure noise; stage 2 refines an upscaled latent in 3 steps from sigma 0.909375 "
                "(re-noise the latent to that level first), or from 0.85 as Lightricks' LTX-2.3 workflows do."
            ),
            inputs=[
                io.Combo.Input("stage", options=list(schedules.DISTILLED_STAGES), default="stage1 (8 steps)",
                               tooltip="stage1: 1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0. "
                               "stage2: 0.909375, 0.725, 0.421875, 0 (the reference pipelines). stage2 LTX-2.3: "
                               "0.85, 0.725, 0.4219, 0 (Lightricks' LTX-2.3 ComfyUI workflows; re-noise to 0.85)."),
            ],
            outputs=[io.Sigmas.Output(tooltip="The chosen stage's sigmas, ending in 0.")],
        )

    @classmethod
    def execute(cls, stage) -> io.NodeOutput:
        try:
            return io.NodeOutput(schedules.distilled_sigmas(stage))
        except ValueError as err:
            raise ValueError(f"LTX-2 Distilled Sigmas: {err}") from err


class OpenLTXManualSigmas(io.ComfyNode):
    """A typed list of sigmas."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXManualSigmas",
            display_name="LTX-2 Manual Sigmas",
            category=CATEGORY,
            description="Your own sigma list: comma-separated numbers in [0, 1], strictly falling, at least two.",
            inputs=[
                io.String.Input("sigmas", default="1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0",
                                multiline=True,
                                tooltip="Comma-separated noise levels, e.g. '0.909375, 0.725, 0.421875, 0'. "
                                "End with 0 for a fully denoised result."),
            ],
            outputs=[io.Sigmas.Output(tooltip="The typed values as SIGMAS.")],
        )

    @classmethod
    def validate_inputs(cls, sigmas=None):
        if sigmas is None:  # linked from another node: checked at run time
            return True
        try:
            schedules.parse_sigmas(sigmas)
        except ValueError as err:
            return f"LTX-2 Manual Sigmas: {err}"
        return True

    @classmethod
    def execute(cls, sigmas) -> io.NodeOutput:
        try:
            return io.NodeOutput(schedules.parse_sigmas(sigmas))
        except ValueError as err:
            raise ValueError(f"LTX-2 Manual Sigmas: {err}") from err


class OpenLTXSampler(io.ComfyNode):
    """euler / res_2s as a SAMPLER for SamplerCustomAdvanced."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXSampler",
            display_name="LTX-2 Sampler",
            category=CATEGORY,
            description=(
                "The LTX-2 reference steppers for SamplerCustomAdvanced. euler: one model call per step (the "
                "standard and distilled pipelines). res_2s: a second-order exponential solver with SDE noise, two "
                "model calls per step (the HQ pipeline, ~15 steps); works on joint video+audio latents and honours "
                "denoise masks."
            ),
            inputs=[
                io.Combo.Input("sampler", options=list(comfy_samplers.SAMPLER_NAMES), default="res_2s",
                               tooltip="res_2s: second order with noise injection, 2 model calls per step (+1 at the "
                               "end); what Lightricks' full (non-distilled) workflows use. euler: first order, 1 model "
                               "call per step; the distilled model and stage 2 of two-stage workflows."),
                io.Int.Input("sde_seed", default=steppers.REFERENCE_NOISE_SEED, min=-1, max=2**63 - 1,
                             tooltip="res_2s only: seed of the noise injected during sampling (substeps use "
                             "seed + 10000). -1 is what the reference pipeline always uses. The starting noise "
                             "comes from the NOISE input of SamplerCustomAdvanced, not from here."),
                io.Boolean.Input("bongmath", default=True,
                                 tooltip="res_2s only: refine each step's anchor point (100 fixed-point iterations "
                                 "while the step is small and sigma > 0.03), as the reference does."),
            ],
            outputs=[io.Sampler.Output(tooltip="A SAMPLER for SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, sampler, sde_seed=steppers.REFERENCE_NOISE_SEED, bongmath=True) -> io.NodeOutput:
        try:
            return io.NodeOutput(comfy_samplers.ltx_sampler(sampler, noise_seed=sde_seed, bongmath=bongmath))
        except ValueError as err:
            raise ValueError(f"LTX-2 Sampler: {err}") from err


class OpenLTXNoNoise(io.ComfyNode):
    """NOISE of zeros shaped like the (nested) latent: sample a latent that is already noised."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXNoNoise",
            display_name="LTX-2 No Noise",
            category="OpenLTX/sampling",
            description=(
                "Adds no noise: for SamplerCustomAdvanced on a latent that LTX-2 Re-noise already noised "
                "(stage 2 of a two-stage workflow). Unlike core's Disable Noise it keeps the video and "
                "audio streams of an LTX-2 latent apart."
            ),
            inputs=[],
            outputs=[io.Noise.Output(tooltip="Zero noise shaped like the latent it is used with.")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        return io.NodeOutput(comfy_samplers.ZeroNoise())


NODES = [OpenLTXScheduler, OpenLTXDistilledSigmas, OpenLTXManualSigmas, OpenLTXSampler, OpenLTXNoNoise]
