"""Loader nodes: the LTX-2 checkpoint -> MODEL; VAE file -> video / audio VAE; latent upscaler."""

from __future__ import annotations

import os

import folder_paths
from comfy_api.v0_0_2 import io

from ..host import aux_models, model_loading, offload_policy, paths

# The pack's own types (nothing in core fits): values are ``aux_models.AuxModel`` objects.
VideoVAEType = io.Custom("OPENLTX_VAE")
AudioVAEType = io.Custom("OPENLTX_AUDIO_VAE")
UpscalerType = io.Custom("OPENLTX_UPSCALER")
VAE_DTYPES = ["default", "bf16", "fp16", "fp32"]

# Files from ComfyUI's "diffusion_models" folder whose name also exists in "checkpoints"
# are listed with this prefix.
DIFFUSION_MODELS_PREFIX = "diffusion_models/"
EXTENSIONS = (".safetensors", ".sft")
WEIGHT_DTYPES = ["default", "bf16", "fp16", "fp32"]
QUANTIZE_OPTIONS = ["none", "fp8 (per-tensor scaled)", "int8 (per-channel)"]


def _gguf_files(folder: str) -> list[str]:
    """``.gguf`` files under a model folder (ComfyUI's own listing only knows its extensions)."""
    try:
        roots = folder_paths.get_folder_paths(folder)
    except KeyError:
        return []
    found = set()
    for root in roots:
        for dirpath, _dirs, files in os.walk(root, followlinks=True):
            for f in files:
                if f.lower().endswith(".gguf"):
                    found.add(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return sorted(found)


def _files(folder: str) -> list[str]:
    try:
        names = folder_paths.get_filename_list(folder)
    except KeyError:  # folder not registered on this ComfyUI
        return []
    return [n for n in names if n.lower().endswith(EXTENSIONS)] + _gguf_files(folder)


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


def unlisted_file_error(input_name: str, value, options: list[str], folders: str) -> str | None:
    """A validation message when ``value`` is not one of the listed model files, else ``None``.

    ComfyUI 0.3.75 does not check V3 combo values against their options, so a workflow naming
    a file this machine lacks would otherwise only fail when the node runs -- and a name such
    as ``../../x`` would reach the file system.  Only listed names (files found inside the model
    folders) pass.
    """
    if value is None or value in options:
        return None
    shown = ", ".join(options[:8]) + (f" ... ({len(options) - 8} more)" if len(options) > 8 else "")
    return (
        f"{input_name}: {paths.shown(value)} was not found in {folders}. Download it into one of those folders (see "
        f"the workflow's note) and refresh, or pick a listed file ({shown or 'none found'})."
    )


def resolve_checkpoint(name: str) -> str:
    """The full path of an option from ``checkpoint_options()``."""
    candidates = [("checkpoints", name)]
    if name.startswith(DIFFUSION_MODELS_PREFIX):
        candidates.append(("diffusion_models", name[len(DIFFUSION_MODELS_PREFIX):]))
    candidates.append(("diffusion_models", name))
    for folder, filename in candidates:
        path = paths.model_file(folder, filename)
        if path is not None:
            return path
    raise FileNotFoundError(
        f"LTX-2 Checkpoint Loader: {paths.shown(name)} is in neither the 'checkpoints' nor the 'diffusion_models' "
        "folder"
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
                "Accepts the official single-file checkpoints, bf16 or fp8 (models/checkpoints), and "
                "transformer-only files with or without the text connectors, including GGUF conversions "
                "(models/diffusion_models). Sizes come from the weights; the RoPE and timestep settings "
                "from the file's header, or the released values when the file has none."
            ),
            inputs=[
                io.Combo.Input(
                    "ckpt_name",
                    options=checkpoint_options(),
                    tooltip="The LTX-2 .safetensors or .gguf file, from models/checkpoints or models/diffusion_models "
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
                io.Combo.Input(
                    "quantize",
                    options=QUANTIZE_OPTIONS,
                    default="none",
                    tooltip="Quantize a bf16/fp16/fp32 file's transformer Linears while loading (the official fp8 "
                    "recipe's embedding, adaLN, projection layers and blocks 0 and 43-47 stay in weight_dtype). "
                    "fp8: e4m3 with one scale per weight, about half the memory of bf16 (weights are upcast per layer; "
                    "set OPENLTX_FP8_SCALED_MM=1 to try FP8 matmuls on RTX 40xx / H100). int8: one scale per output "
                    "channel. Files that are already fp8 or GGUF "
                    "(detected automatically) ignore this option.",
                ),
                io.String.Input(
                    "offload",
                    default="off",
                    optional=True,
                    tooltip="Stream transformer blocks from CPU RAM during sampling so the model runs in less "
                    "VRAM: 'off' (ComfyUI's own memory management only), 'auto' (keep as many blocks on the "
                    "GPU as free VRAM allows, stream the rest with prefetch), or a VRAM budget in GB, e.g. 8.",
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
    def validate_inputs(cls, ckpt_name=None, offload=None):
        missing = unlisted_file_error("ckpt_name", ckpt_name, checkpoint_options(),
                                      "models/checkpoints or models/diffusion_models")
        if missing:
            return missing
        if offload is None:
            return True
        try:
            offload_policy.parse_offload(offload)
        except ValueError as err:
            return f"offload: {err}"
        return True

    @classmethod
    def execute(cls, ckpt_name, weight_dtype="default", quantize="none", offload="off") -> io.NodeOutput:
        path = resolve_checkpoint(ckpt_name)
        try:
            model = model_loading.load_ltx2_model(path, weight_dtype, quantize=quantize)
        except (ValueError, OSError) as err:  # CheckpointError, ConfigError, ModelLoadError, I/O
            raise RuntimeError(f"LTX-2 Checkpoint Loader: cannot load {ckpt_name!r}: {err}") from err
        offload_policy.attach_to_patcher(model, offload)  # "off": nothing is attached
        return io.NodeOutput(model)


# ------------------------------------------------------------------------------ VAE + upscaler
VAE_PREFIX = "vae/"
UPSCALER_FOLDERS = ("latent_upscale_models", "upscale_models")


def _ensure_folder(name: str) -> None:
    """Register a model folder the host lacks (latent_upscale_models is newer than some hosts)."""
    if name not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(name, os.path.join(folder_paths.models_dir, name))
        folder_paths.folder_names_and_paths[name] = (
            folder_paths.folder_names_and_paths[name][0], set(folder_paths.supported_pt_extensions)
        )


def _merged_options(folders: tuple[str, ...], prefixes: tuple[str, ...]) -> list[str]:
    """Safetensors files of several folders; a later folder's name that is already listed
    gets that folder's prefix."""
    options, seen = [], set()
    for folder, prefix in zip(folders, prefixes):
        for name in _files(folder):
            shown = name if name not in seen else prefix + name
            if shown not in seen:
                options.append(shown)
                seen.add(shown)
    return options


def _resolve(name: str, folders: tuple[str, ...], prefixes: tuple[str, ...], node: str) -> str:
    candidates = []
    for folder, prefix in zip(folders, prefixes):
        if prefix and name.startswith(prefix):
            candidates.insert(0, (folder, name[len(prefix):]))
        candidates.append((folder, name))
    for folder, filename in candidates:
        path = paths.model_file(folder, filename)
        if path is not None:
            return path
    raise FileNotFoundError(f"{node}: {paths.shown(name)} is in none of the folders {', '.join(folders)}")


def vae_options() -> list[str]:
    return _merged_options(("checkpoints", "vae"), ("", VAE_PREFIX))


def upscaler_options() -> list[str]:
    _ensure_folder("latent_upscale_models")
    return _merged_options(UPSCALER_FOLDERS, ("", "upscale_models/"))


class OpenLTXVAELoader(io.ComfyNode):
    """One or two LTX-2 files -> the video VAE and the audio VAE + vocoder."""

    NO_SECOND = "none"

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXVAELoader",
            display_name="LTX-2 VAE Loader",
            category="OpenLTX/loaders",
            description=(
                "Loads LTX-2's video VAE and its audio VAE + vocoder from the single-file checkpoint "
                "(models/checkpoints), or from split files in models/vae: a video VAE file "
                "(e.g. LTX2_video_vae_bf16 / LTX23_video_vae_bf16) and an audio VAE file (LTX2_audio_vae_bf16 / "
                "LTX23_audio_vae_bf16), one in each input. The decode, encode, upscale and save-video nodes take them."
            ),
            inputs=[
                io.Combo.Input(
                    "vae_name",
                    options=vae_options(),
                    tooltip="The LTX-2 checkpoint (holds every VAE part) or an LTX-2 video / audio VAE file; names "
                    f"prefixed '{VAE_PREFIX}' come from models/vae when both folders hold a file of that name.",
                ),
                io.Combo.Input(
                    "dtype",
                    options=VAE_DTYPES,
                    default="default",
                    tooltip="Precision of the VAE weights and computation. default: bf16 on GPUs that support it, "
                    "fp32 on a CPU. fp32 is the most exact and needs twice the memory.",
                ),
                io.Combo.Input(
                    "second_vae_name",
                    options=[cls.NO_SECOND] + vae_options(),
                    default=cls.NO_SECOND,
                    optional=True,
                    tooltip="Optional second file for the parts vae_name lacks: with split files, the audio VAE file "
                    "(e.g. LTX2_audio_vae_bf16.safetensors) when vae_name is the video VAE file, or the other way "
                    "round. 'none': everything comes from vae_name.",
                ),
            ],
            outputs=[
                VideoVAEType.Output(
                    "video_vae", display_name="video_vae",
                    tooltip="The LTX-2 video VAE (pixels <-> 128-channel video latents).",
                ),
                AudioVAEType.Output(
                    "audio_vae", display_name="audio_vae",
                    tooltip="The LTX-2 audio VAE and vocoder (sound <-> 8x16 audio latents). Using it raises an "
                    "error naming the file to add if the selected files hold no audio parts.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, vae_name=None, second_vae_name=None):
        folders = "models/checkpoints or models/vae"
        missing = unlisted_file_error("vae_name", vae_name, vae_options(), folders)
        if missing is None and second_vae_name not in (None, cls.NO_SECOND):
            missing = unlisted_file_error("second_vae_name", second_vae_name, vae_options(), folders)
        return missing or True

    @classmethod
    def execute(cls, vae_name, dtype="default", second_vae_name=NO_SECOND) -> io.NodeOutput:
        names = [vae_name] + ([second_vae_name] if second_vae_name not in (None, cls.NO_SECOND) else [])
        paths = [_resolve(n, ("checkpoints", "vae"), ("", VAE_PREFIX), "LTX-2 VAE Loader") for n in names]
        try:
            video, audio = aux_models.load_vae_files(paths, dtype)
        except (ValueError, OSError) as err:
            shown = " + ".join(repr(n) for n in names)
            raise RuntimeError(f"LTX-2 VAE Loader: cannot load {shown}: {err}") from err
        return io.NodeOutput(video, audio)


class OpenLTXUpscalerLoader(io.ComfyNode):
    """An LTX-2 latent upscaler file -> OPENLTX_UPSCALER."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXUpscalerLoader",
            display_name="LTX-2 Latent Upscaler Loader",
            category="OpenLTX/loaders",
            description=(
                "Loads an LTX-2 latent upscaler (spatial x2 / x1.5 or temporal x2) from models/latent_upscale_models "
                "(or models/upscale_models), for the LTX-2 Latent Upscale node of two-stage workflows."
            ),
            inputs=[
                io.Combo.Input(
                    "upscaler_name",
                    options=upscaler_options(),
                    tooltip="e.g. ltx-2-spatial-upscaler-x2-1.0.safetensors or ltx-2.3-spatial-upscaler-x2-1.1"
                    ".safetensors; the network's shape is read from the file's tensors (its header config, when "
                    "present, must agree).",
                ),
                io.Combo.Input(
                    "dtype",
                    options=VAE_DTYPES,
                    default="default",
                    tooltip="Precision of the upscaler. default: bf16 on GPUs that support it, fp32 on a CPU.",
                ),
            ],
            outputs=[
                UpscalerType.Output(
                    tooltip="The latent upscaler; it works on video latents of the VAE it was trained with.",
                ),
            ],
        )

    @classmethod
    def validate_inputs(cls, upscaler_name=None):
        return unlisted_file_error("upscaler_name", upscaler_name, upscaler_options(),
                                   "models/latent_upscale_models or models/upscale_models") or True

    @classmethod
    def execute(cls, upscaler_name, dtype="default") -> io.NodeOutput:
        _ensure_folder("latent_upscale_models")
        path = _resolve(upscaler_name, UPSCALER_FOLDERS, ("", "upscale_models/"), "LTX-2 Latent Upscaler Loader")
        try:
            up = aux_models.load_upscaler_file(path, dtype)
        except (ValueError, OSError) as err:
            raise RuntimeError(f"LTX-2 Latent Upscaler Loader: cannot load {upscaler_name!r}: {err}") from err
        return io.NodeOutput(up)


NODES = [OpenLTXCheckpointLoader, OpenLTXVAELoader, OpenLTXUpscalerLoader]
