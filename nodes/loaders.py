"""Loader nodes: the LTX-2 checkpoint -> MODEL."""

from __future__ import annotations

import folder_paths
from comfy_api.v0_0_2 import io

from ..model_loaders import comfy_loading

# Files from ComfyUI's "diffusion_models" folder whose name also exists in "checkpoints"
# are listed with this prefix.
DIFFUSION_MODELS_PREFIX = "diffusion_models/"
EXTENSIONS = (".safetensors", ".sft")
WEIGHT_DTYPES = ["default", "bf16", "fp16", "fp32"]


def _files(folder: str) -> list[str]:
    try:
        names = folder_paths.get_filename_list(folder)
    except KeyError:  # folder not registered on this ComfyUI
        return []
    return [n for n in names if n.lower().endswith(EXTENSIONS)]


def checkpoint_options() -> list[str]:
    """Safetensors files of the "checkpoints" folder, then those of "diffusion_models"."""
    options = _files("checkpoints")
    seen = set(options)
    for name in _files("diffusion_models"):
        shown = name if name not in seen else DIFFUSION_MODELS_PREFIX + name
        if shown not in seen:
            options.append(shown)
            seen.add(shown)
    return options


def resolve_checkpoint(name: str) -> str:
    """The full path of an option from ``checkpoint_options()``."""
    candidates = [("checkpoints", name)]
    if name.startswith(DIFFUSION_MODELS_PREFIX):
        candidates.append(("diffusion_models", name[len(DIFFUSION_MODELS_PREFIX):]))
    candidates.append(("diffusion_models", name))
    for folder, filename in candidates:
        try:
            path = folder_paths.get_full_path(folder, filename)
        except KeyError:
            path = None
        if path is not None:
            return path
    raise FileNotFoundError(
        f"LTX-2 Checkpoint Loader: {name!r} is in neither the 'checkpoints' nor the 'diffusion_models' folder"
    )


class OpenLTXCheckpointLoader(io.ComfyNode):
    """An LTX-2 / LTX-2.3 checkpoint -> MODEL (the joint audio+video transformer)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXCheckpointLoader",
            display_name="LTX-2 Checkpoint Loader",
            category="OpenLTX/loaders",
            description=(
                "Loads the audio+video transformer of an LTX-2 (19B) or LTX-2.3 (22B) checkpoint as a "
                "MODEL for KSampler, SamplerCustomAdvanced, LoRA loaders and other MODEL nodes. "
                "Accepts the official single-file checkpoints (models/checkpoints) and "
                "transformer-only files (models/diffusion_models)."
            ),
            inputs=[
                io.Combo.Input(
                    "ckpt_name",
                    options=checkpoint_options(),
                    tooltip="The LTX-2 .safetensors file, from models/checkpoints or models/diffusion_models "
                    f"(names prefixed '{DIFFUSION_MODELS_PREFIX}' come from the latter when both folders "
                    "hold a file of that name).",
                ),
                io.Combo.Input(
                    "weight_dtype",
                    options=WEIGHT_DTYPES,
                    default="default",
                    tooltip="Precision the weights are kept in. default: the file's own precision on a CPU, "
                    "bf16 on a GPU that supports it. bf16/fp16/fp32 force that precision (fp32 needs twice "
                    "the memory of bf16).",
                ),
            ],
            outputs=[
                io.Model.Output(
                    tooltip="The LTX-2 transformer as a ComfyUI MODEL; it predicts velocities for the "
                    "video and audio streams of an LTX-2 latent.",
                ),
            ],
        )

    @classmethod
    def execute(cls, ckpt_name, weight_dtype="default") -> io.NodeOutput:
        path = resolve_checkpoint(ckpt_name)
        try:
            model = comfy_loading.load_ltx2_model(path, weight_dtype)
        except (ValueError, OSError) as err:  # CheckpointError, ConfigError, ModelLoadError, I/O
            raise RuntimeError(f"LTX-2 Checkpoint Loader: cannot load {ckpt_name!r}: {err}") from err
        return io.NodeOutput(model)
NODES = [OpenLTXCheckpointLoader]
