"""Prompt enhancer node: Gemma 3 writes the detailed prompt LTX-2 wants from a short one."""

from __future__ import annotations

import os

import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io, ui

from ..host.prompt_enhancer import (
    CACHE_SUBFOLDER,
    PROMPT_FOLDER,
    EnhancerError,
    PromptEnhancer,
    Sampling,
    official_system_prompt,
)
from .text import cache_dir

SYSTEM_PROMPTS = ["official text-to-video", "custom"]
SAMPLING = ["sample", "greedy"]


def system_prompt_folders(text_encoder) -> list[str]:
    """models/prompt_enhancer, then the Gemma folder (a copy next to the weights)."""
    folders = [os.path.join(folder_paths.models_dir, PROMPT_FOLDER)]
    source = getattr(text_encoder, "source", None)
    if source is not None:
        path = source.path
        folders.append(path if os.path.isdir(path) else os.path.dirname(path))
    return folders


class OpenLTXEnhancePrompt(io.ComfyNode):
    """prompt -> enhanced prompt (STRING), generated locally by the text encoder's Gemma."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXEnhancePrompt",
            display_name="LTX-2 Enhance Prompt",
            category="OpenLTX/text",
            description=(
                "Gemma 3 expands a short prompt into the long, detailed description of visuals, motion and sound that "
                "LTX-2 follows best, with Lightricks' official system prompt - as their pipelines' prompt "
                "enhancement does. Runs locally on the Gemma of LTX-2 Text Encoder Loader (no network); seeded; "
                "results are cached on disk, so a repeated request does not load Gemma. Connect the output to LTX-2 "
                "Text Encode's prompt."
            ),
            inputs=[
                io.Custom("OPENLTX_TEXT_ENCODER").Input(
                    "text_encoder", tooltip="From LTX-2 Text Encoder Loader: its Gemma writes the enhanced prompt."
                ),
                io.String.Input(
                    "prompt", multiline=True, default="",
                    tooltip="Your short prompt: what happens, who, where, what we hear. Gemma keeps every element "
                    "and adds concrete details (light, textures, camera, sounds).",
                ),
                io.Int.Input(
                    "seed", default=42, min=0, max=2**63 - 1, control_after_generate=True,
                    tooltip="Seed of the sampling: the same seed, prompt and settings give the same text.",
                ),
                io.Int.Input(
                    "max_new_tokens", default=512, min=16, max=4096, step=16,
                    tooltip="Longest answer in tokens (512 in Lightricks' pipelines). Generation stops earlier "
                    "when Gemma ends its answer.",
                ),
                io.Combo.Input(
                    "sampling", options=SAMPLING, default="sample",
                    tooltip="sample: draw each token (temperature / top_k / top_p below), as the reference does. "
                    "greedy: always the most likely token (no seed involved).",
                ),
                io.Float.Input(
                    "temperature", default=0.7, min=0.01, max=5.0, step=0.01,
                    tooltip="Sampling temperature (0.7 in Lightricks' pipelines); lower = more predictable.",
                ),
                io.Int.Input(
                    "top_k", default=50, min=0, max=1000,
                    tooltip="Sample only among the k most likely tokens (50: transformers' default, which the "
                    "reference uses); 0 = no limit.",
                ),
                io.Float.Input(
                    "top_p", default=1.0, min=0.01, max=1.0, step=0.01,
                    tooltip="Sample only among the most likely tokens whose probabilities add up to top_p (1 = off).",
                ),
                io.Combo.Input(
                    "system_prompt", options=SYSTEM_PROMPTS, default="official text-to-video",
                    tooltip="official text-to-video: Lightricks' system prompt, read from the installed ltx-core "
                    "package, Lightricks' ComfyUI-LTXVideo nodes, models/prompt_enhancer/ or the Gemma folder "
                    "(OpenLTX does not ship it: it is under the LTX-2 Community License). custom: the text below.",
                ),
                io.String.Input(
                    "custom_system_prompt", multiline=True, default="", optional=True,
                    tooltip="Used with system_prompt 'custom': the instructions Gemma follows.",
                ),
            ],
            outputs=[io.String.Output(display_name="enhanced_prompt", tooltip="The enhanced prompt, for LTX-2 Text Encode.")],
        )

    @classmethod
    def execute(cls, text_encoder, prompt, seed=42, max_new_tokens=512, sampling="sample", temperature=0.7,
                top_k=50, top_p=1.0, system_prompt="official text-to-video", custom_system_prompt="") -> io.NodeOutput:  # fmt: skip
        node = "LTX-2 Enhance Prompt"
        if not hasattr(text_encoder, "source") or not hasattr(text_encoder, "placement"):
            raise ValueError(f"{node}: text_encoder must come from LTX-2 Text Encoder Loader")
        try:
            if system_prompt == "custom":
                system = custom_system_prompt
                if not system.strip():
                    raise EnhancerError("system_prompt is 'custom' but custom_system_prompt is empty")
            else:
                system, _ = official_system_prompt("t2v", system_prompt_folders(text_encoder))
            settings = Sampling(do_sample=sampling == "sample", temperature=float(temperature), top_k=int(top_k),
                                top_p=float(top_p), seed=int(seed))  # fmt: skip
            bar = comfy.utils.ProgressBar(max_new_tokens)
            enhancer = PromptEnhancer(text_encoder, os.path.join(cache_dir(), CACHE_SUBFOLDER))
            text = enhancer.enhance(prompt, system, sampling=settings, max_new_tokens=int(max_new_tokens),
                                    progress=lambda done, total: bar.update_absolute(done, total))  # fmt: skip
        except EnhancerError as err:
            raise ValueError(f"{node}: {err}") from err
        return io.NodeOutput(text, ui=ui.PreviewText(text))


NODES = [OpenLTXEnhancePrompt]
