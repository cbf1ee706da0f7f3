"""Text nodes: Gemma 3 + the LTX connectors -> CONDITIONING; save / load conditioning."""

from __future__ import annotations

import os

import torch

import comfy.model_management as mm
import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io

from ..host.text_encoder import LTXTextEncoder
from ..model_loaders.text_loading import text_conditioning
from .loaders import checkpoint_options, resolve_checkpoint, unlisted_file_error

CACHE_FOLDER = "openltx_prompt_cache"
DEVICES = ["auto", "gpu", "cpu"]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
MARGIN = 512 * 2**20  # VRAM kept free for the projector, fragmentation and other nodes


def text_encoder_options() -> list[str]:
    """Safetensors files of "text_encoders", then its sub-folders that hold a HF Gemma (config.json)."""
    try:
        names = [n for n in folder_paths.get_filename_list("text_encoders") if n.lower().endswith((".safetensors", ".sft"))]
        roots = folder_paths.get_folder_paths("text_encoders")
    except KeyError:
        return []
    for root in roots:
        if os.path.isdir(root):
            for entry in sorted(os.listdir(root)):
                d = os.path.join(root, entry)
                if os.path.isfile(os.path.join(d, "config.json")) and entry + "/" not in names:
                    names.append(entry + "/")
    # a shard inside a listed HF folder is not a model on its own
    folders = tuple(n for n in names if n.endswith("/"))
    return [n for n in names if n.endswith("/") or not n.startswith(folders)]


def resolve_text_encoder(name: str) -> str:
    if name.endswith("/"):
        for root in folder_paths.get_folder_paths("text_encoders"):
            d = os.path.join(root, name.rstrip("/"))
            if os.path.isdir(d):
                return d
    else:
        path = folder_paths.get_full_path("text_encoders", name)
        if path is not None:
            return path
    raise FileNotFoundError(f"LTX-2 Text Encoder Loader: {name!r} is not in the 'text_encoders' folder")


def cache_dir() -> str:
    return os.path.join(folder_paths.models_dir, CACHE_FOLDER)


def make_placement(device: str):
    """ComfyUI's memory manager decides where Gemma runs (the pack's model code never imports comfy)."""

    def placement(weight_bytes: int, activation_bytes: int):
        gpu = mm.get_torch_device()
        if device == "cpu" or gpu.type == "cpu":
            return torch.device("cpu"), None
        need = weight_bytes + activation_bytes + MARGIN
        mm.free_memory(need if device == "gpu" else need, gpu)  # unload other models first when needed
        if device == "gpu":
            return gpu, None
        free = mm.get_free_memory(gpu)
        if free >= need:
            return gpu, None
        return gpu, max(free - activation_bytes - MARGIN, 0)  # stream what does not fit

    return placement


class OpenLTXTextEncoderLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXTextEncoderLoader",
            display_name="LTX-2 Text Encoder Loader",
            category="OpenLTX/loaders",
            description=(
                "Gemma 3 12B plus the text projection and connectors of an LTX-2 / LTX-2.3 checkpoint. Loads "
                "nothing until a prompt needs encoding: prompts already encoded come from the disk cache "
                "(models/openltx_prompt_cache) without loading Gemma at all."
            ),
            inputs=[
                io.Combo.Input("text_encoder", options=text_encoder_options(),
                               tooltip="Gemma 3 12B from models/text_encoders: a single file (gemma_3_12B_it.safetensors, "
                               "gemma_3_12B_it_fp8_scaled.safetensors) or a Hugging Face folder (names ending in '/')."),
                io.Combo.Input("ltx_checkpoint", options=checkpoint_options(),
                               tooltip="The LTX-2 single-file checkpoint whose text projection and connectors turn "
                               "Gemma's features into the transformer's text context (the same file as the model)."),
                io.Combo.Input("device", options=DEVICES, default="auto",
                               tooltip="auto: on the GPU when Gemma fits the free VRAM, otherwise weights stay in RAM "
                               "and stream to the GPU layer by layer (12 GB cards work). gpu: all on the GPU. cpu: all "
                               "on the CPU (slow). VRAM is freed after each encode."),
                io.Combo.Input("dtype", options=list(DTYPES), default="bf16",
                               tooltip="Compute precision. bf16 is Gemma's own; fp32 doubles memory; fp16 may overflow."),
            ],
            outputs=[io.Custom("OPENLTX_TEXT_ENCODER").Output(
                tooltip="The LTX-2 text encoder, for LTX-2 Text Encode. Weights load on first use.")],
        )  # fmt: skip

    @classmethod
    def validate_inputs(cls, text_encoder=None, ltx_checkpoint=None):
        missing = unlisted_file_error("text_encoder", text_encoder, text_encoder_options(), "models/text_encoders")
        missing = missing or unlisted_file_error("ltx_checkpoint", ltx_checkpoint, checkpoint_options(),
                                                 "models/checkpoints or models/diffusion_models")
        return missing or True

    @classmethod
    def execute(cls, text_encoder, ltx_checkpoint, device="auto", dtype="bf16") -> io.NodeOutput:
        gemma = resolve_text_encoder(text_encoder)
        ckpt = resolve_checkpoint(ltx_checkpoint)
        try:
            encoder = LTXTextEncoder(gemma, ckpt, dtype=DTYPES[dtype], placement=make_placement(device),
                                     cache_dir=cache_dir())  # fmt: skip
        except (ValueError, OSError) as err:
            raise RuntimeError(f"LTX-2 Text Encoder Loader: {err}") from err
        return io.NodeOutput(encoder)


class OpenLTXTextEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXTextEncode",
            display_name="LTX-2 Text Encode",
            category="OpenLTX/text",
            description="Encodes a prompt (positive or negative) into CONDITIONING for both the video and the audio "
            "stream of the LTX-2 MODEL. Repeated prompts come from the disk cache.",
            inputs=[
                io.Custom("OPENLTX_TEXT_ENCODER").Input("text_encoder", tooltip="From LTX-2 Text Encoder Loader."),
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="What the video (and its sound) should show. Up to 1024 Gemma tokens."),
                io.Float.Input("frame_rate", default=24.0, min=1.0, max=240.0, step=0.01,
                               tooltip="Frames per second of the video to generate (LTX-2 positions are in seconds)."),
            ],
            outputs=[io.Conditioning.Output(
                tooltip="Video and audio text context for KSampler / guiders using the LTX-2 MODEL.")],
        )  # fmt: skip

    @classmethod
    def execute(cls, text_encoder, prompt, frame_rate=24.0) -> io.NodeOutput:
        bar = comfy.utils.ProgressBar(1)

        def progress(done, total):
            bar.update_absolute(done, total)

        video, audio = text_encoder.encode(prompt, progress=progress)
        return io.NodeOutput(text_conditioning(video, audio, frame_rate))


def _unique_path(folder: str, prefix: str) -> str:
    os.makedirs(folder, exist_ok=True)
    i = 1
    while True:
        path = os.path.join(folder, f"{prefix}_{i:05d}.safetensors")
        if not os.path.exists(path):
            return path
        i += 1


class OpenLTXSaveConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXSaveConditioning",
            display_name="LTX-2 Save Conditioning",
            category="OpenLTX/text",
            description="Saves LTX-2 CONDITIONING (video + audio context, frame rate) as a .safetensors file in the "
            "output folder; never overwrites an existing file.",
            is_output_node=True,
            inputs=[
                io.Conditioning.Input("conditioning", tooltip="From LTX-2 Text Encode."),
                io.String.Input("filename_prefix", default="openltx/conditioning",
                                tooltip="File name prefix inside the output folder; a counter is appended."),
            ],
            outputs=[],
        )  # fmt: skip

    @classmethod
    def execute(cls, conditioning, filename_prefix="openltx/conditioning") -> io.NodeOutput:
        from safetensors.torch import save_file

        if not conditioning or len(conditioning[0]) != 2:
            raise ValueError("LTX-2 Save Conditioning: expected CONDITIONING from LTX-2 Text Encode, found an empty list.")
        video, extra = conditioning[0]
        if "audio_context" not in extra:
            raise ValueError("LTX-2 Save Conditioning: the conditioning has no 'audio_context'; use LTX-2 Text Encode.")
        out = os.path.abspath(folder_paths.get_output_directory())
        path = os.path.abspath(os.path.join(out, filename_prefix))
        if os.path.commonpath([out, path]) != out:
            raise ValueError(f"LTX-2 Save Conditioning: filename_prefix {filename_prefix!r} leaves the output folder.")
        target = _unique_path(os.path.dirname(path), os.path.basename(path))
        meta = {"frame_rate": str(extra.get("frame_rate", 24.0)), "format": "openltx-conditioning-1"}
        save_file({"video_context": video.contiguous().cpu(), "audio_context": extra["audio_context"].contiguous().cpu()},
                  target, metadata=meta)  # fmt: skip
        return io.NodeOutput(ui={"text": [os.path.relpath(target, out)]})


class OpenLTXLoadConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        files = []
        try:
            root = folder_paths.get_input_directory()
            for dirpath, _, names in os.walk(root):
                files += [os.path.relpath(os.path.join(dirpath, n), root) for n in names if n.endswith(".safetensors")]
        except OSError:
            pass
        return io.Schema(
            node_id="OpenLTXLoadConditioning",
            display_name="LTX-2 Load Conditioning",
            category="OpenLTX/text",
            description="Loads CONDITIONING saved by LTX-2 Save Conditioning (copy the file into the input folder).",
            inputs=[
                io.Combo.Input("conditioning_file", options=sorted(files),
                               tooltip="A .safetensors file from LTX-2 Save Conditioning, in the input folder."),
            ],
            outputs=[io.Conditioning.Output(tooltip="The saved video + audio text context and frame rate.")],
        )  # fmt: skip

    @classmethod
    def execute(cls, conditioning_file) -> io.NodeOutput:
        from safetensors import safe_open

        path = folder_paths.get_annotated_filepath(conditioning_file)
        try:
            with safe_open(path, framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                video, audio = f.get_tensor("video_context"), f.get_tensor("audio_context")
        except Exception as err:
            raise ValueError(f"LTX-2 Load Conditioning: {path}: expected a file written by LTX-2 Save Conditioning "
                             f"(tensors video_context and audio_context), it could not be read ({err}).") from err  # fmt: skip
        return io.NodeOutput(text_conditioning(video, audio, float(meta.get("frame_rate", 24.0))))


NODES = [OpenLTXTextEncoderLoader, OpenLTXTextEncode, OpenLTXSaveConditioning, OpenLTXLoadConditioning]
