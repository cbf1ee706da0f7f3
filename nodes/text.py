"""Text nodes: Gemma 3 (+ LoRAs) + the LTX projection and connectors -> CONDITIONING; save / load conditioning."""

from __future__ import annotations

import math
import os
import tempfile

import torch

import comfy.model_management as mm
import comfy.utils
import folder_paths
from comfy_api.v0_0_2 import io

from ..host import paths
from ..host.prompt_cache import read_context_file
from ..host.text_encoder import LTXTextEncoder
from ..model_loaders.safe_paths import publish, text_problem
from ..model_loaders.text_loading import text_conditioning
from .loaders import checkpoint_options, resolve_checkpoint, unlisted_file_error

NONE = "none"
TextEncoderType = io.Custom("OPENLTX_TEXT_ENCODER")

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
    path = paths.model_dir("text_encoders", name) if name.endswith("/") else paths.model_file("text_encoders", name)
    if path is not None:
        return path
    raise FileNotFoundError(f"LTX-2 Text Encoder Loader: {paths.shown(name)} is not in the 'text_encoders' folder")


def extra_file_options() -> list[str]:
    """``none``, then the single files of "text_encoders" (Kijai's connector / projection files,
    unsloth's connector files), then the checkpoint / diffusion-model files."""
    files = [n for n in text_encoder_options() if not n.endswith("/")]
    return [NONE] + files + [n for n in checkpoint_options() if n not in files]


def resolve_extra_file(name: str | None) -> str | None:
    if name in (None, "", NONE):
        return None
    path = paths.model_file("text_encoders", name)
    return path if path is not None else resolve_checkpoint(name)


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
                "Gemma 3 12B plus the LTX-2 / LTX-2.3 text projection and connectors, taken from whichever selected "
                "files hold them (the checkpoint, a transformer-only file, Kijai's or unsloth's connector / "
                "projection files, or the Gemma file). Loads nothing until a prompt needs encoding: prompts already "
                "encoded come from the disk cache (models/openltx_prompt_cache) without loading Gemma at all."
            ),
            inputs=[
                io.Combo.Input("text_encoder", options=text_encoder_options(),
                               tooltip="Gemma 3 12B from models/text_encoders: a single file (gemma_3_12B_it.safetensors, "
                               "gemma_3_12B_it_fp8_scaled.safetensors, gemma_3_12B_it_fp4_mixed.safetensors) or a "
                               "Hugging Face folder (names ending in '/')."),
                io.Combo.Input("ltx_checkpoint", options=checkpoint_options(),
                               tooltip="The LTX-2 file used with this text encoder: the single-file checkpoint (it holds "
                               "the text projection and connectors) or a transformer-only file (2.3 ones hold the "
                               "connectors; add the projection file as extra_file)."),
                io.Combo.Input("device", options=DEVICES, default="auto",
                               tooltip="auto: on the GPU when Gemma fits the free VRAM, otherwise weights stay in RAM "
                               "and stream to the GPU layer by layer (12 GB cards work). gpu: all on the GPU. cpu: all "
                               "on the CPU (slow). VRAM is freed after each encode."),
                io.Combo.Input("dtype", options=list(DTYPES), default="bf16",
                               tooltip="Compute precision. bf16 is Gemma's own; fp32 doubles memory; fp16 may overflow."),
                io.Combo.Input("extra_file", options=extra_file_options(), default=NONE, optional=True,
                               tooltip="Another file with LTX text parts, when neither the checkpoint nor the Gemma file "
                               "has them: Kijai's ltx-2.3_text_projection_bf16 or unsloth's ltx-2.3-22b-*_embeddings_"
                               "connectors (both: the 2.3 text projection), Kijai's ltx-2-19b-embeddings_connector_"
                               "dev_bf16 (2.0 projection + connectors), from models/text_encoders. 'none': not needed."),
            ],
            outputs=[TextEncoderType.Output(
                tooltip="The LTX-2 text encoder, for LTX-2 Text Encode. Weights load on first use.")],
        )  # fmt: skip

    @classmethod
    def validate_inputs(cls, text_encoder=None, ltx_checkpoint=None, extra_file=None):
        missing = unlisted_file_error("text_encoder", text_encoder, text_encoder_options(), "models/text_encoders")
        missing = missing or unlisted_file_error("ltx_checkpoint", ltx_checkpoint, checkpoint_options(),
                                                 "models/checkpoints or models/diffusion_models")
        missing = missing or unlisted_file_error("extra_file", extra_file, extra_file_options(),
                                                 "models/text_encoders, models/checkpoints or models/diffusion_models")
        return missing or True

    @classmethod
    def execute(cls, text_encoder, ltx_checkpoint, device="auto", dtype="bf16", extra_file=NONE) -> io.NodeOutput:
        gemma = resolve_text_encoder(text_encoder)
        ckpt = resolve_checkpoint(ltx_checkpoint)
        try:
            extra = resolve_extra_file(extra_file)
            encoder = LTXTextEncoder(gemma, ckpt, extra_file=extra, dtype=DTYPES[dtype],
                                     placement=make_placement(device), cache_dir=cache_dir())  # fmt: skip
        except (ValueError, OSError) as err:
            raise RuntimeError(f"LTX-2 Text Encoder Loader: {err}") from err
        return io.NodeOutput(encoder)


class OpenLTXTextEncoderLora(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXTextEncoderLora",
            display_name="LTX-2 Text Encoder LoRA",
            category="OpenLTX/loaders",
            description=(
                "Applies a LoRA to Gemma, the text encoder (e.g. Comfy-Org's gemma-3-12b-it-abliterated_lora_rank64_bf16"
                ".safetensors): W + strength x up @ down on every adapted layer (x alpha / rank when the file has "
                "alpha). Modules of Gemma's vision tower are ignored (LTX-2 encodes text only). Chain several for "
                "several LoRAs; the prompt cache keeps their results apart."
            ),
            inputs=[
                TextEncoderType.Input("text_encoder", tooltip="From LTX-2 Text Encoder Loader (or another LTX-2 Text "
                                      "Encoder LoRA)."),
                io.Combo.Input("lora_name", options=_lora_options(),
                               tooltip="A Gemma 3 LoRA from models/loras (keys 'text_encoders.transformer.model.layers.N."
                               "<module>.lora_down.weight' / '.lora_up.weight')."),
                io.Float.Input("strength", default=1.0, min=-10.0, max=10.0, step=0.01,
                               tooltip="LoRA strength; 0 leaves the text encoder unchanged."),
            ],
            outputs=[TextEncoderType.Output(
                tooltip="The text encoder with the LoRA (the input one is unchanged; Gemma's weights are shared).")],
        )  # fmt: skip

    @classmethod
    def validate_inputs(cls, lora_name=None):
        return unlisted_file_error("lora_name", lora_name, _lora_options(), "models/loras") or True

    @classmethod
    def execute(cls, text_encoder, lora_name, strength=1.0) -> io.NodeOutput:
        node = "LTX-2 Text Encoder LoRA"
        if not isinstance(text_encoder, LTXTextEncoder):
            raise RuntimeError(f"{node}: the text_encoder input must come from LTX-2 Text Encoder Loader.")
        path = paths.model_file("loras", lora_name)
        if path is None:
            raise RuntimeError(f"{node}: {paths.shown(lora_name)} is not in the 'loras' folder.")
        if strength == 0:
            return io.NodeOutput(text_encoder)
        try:
            return io.NodeOutput(text_encoder.with_lora(path, strength))
        except (ValueError, OSError) as err:
            raise RuntimeError(f"{node}: {err}") from err


def _lora_options() -> list[str]:
    try:
        return [n for n in folder_paths.get_filename_list("loras") if n.lower().endswith((".safetensors", ".sft"))]
    except KeyError:
        return []


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
                TextEncoderType.Input("text_encoder", tooltip="From LTX-2 Text Encoder Loader (or LTX-2 Text Encoder LoRA)."),
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
        node = "LTX-2 Text Encode"
        if not isinstance(text_encoder, LTXTextEncoder):
            raise ValueError(f"{node}: the text_encoder input must come from LTX-2 Text Encoder Loader.")
        if not isinstance(prompt, str) or (problem := text_problem(prompt)):
            found = problem if isinstance(prompt, str) else f"it is a {type(prompt).__name__}"
            raise ValueError(f"{node}: the prompt cannot be encoded: {found}. Remove the character or type the text "
                             "again.")  # fmt: skip
        bar = comfy.utils.ProgressBar(1)

        def progress(done, total):
            mm.throw_exception_if_processing_interrupted()  # Cancel between Gemma layers / weight reads
            bar.update_absolute(done, total)

        mm.throw_exception_if_processing_interrupted()
        video, audio = text_encoder.encode(prompt, progress=progress)
        return io.NodeOutput(text_conditioning(video, audio, frame_rate))


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
    def validate_inputs(cls, filename_prefix=None):
        if filename_prefix is None:
            return True
        return paths.output_prefix_error("filename_prefix", filename_prefix) or True

    @classmethod
    def execute(cls, conditioning, filename_prefix="openltx/conditioning") -> io.NodeOutput:
        from safetensors.torch import save_file

        node = "LTX-2 Save Conditioning"
        if not conditioning or len(conditioning[0]) != 2:
            raise ValueError(f"{node}: expected CONDITIONING from LTX-2 Text Encode, found an empty list.")
        video, extra = conditioning[0]
        if "audio_context" not in extra:
            raise ValueError(f"{node}: the conditioning has no 'audio_context'; use LTX-2 Text Encode.")
        tensors = {"video_context": video.contiguous().cpu(), "audio_context": extra["audio_context"].contiguous().cpu()}
        bad = [k for k, t in tensors.items() if not torch.isfinite(t).all()]
        if bad:
            raise ValueError(f"{node}: the conditioning's {' and '.join(bad)} hold NaN or infinite values; nothing "
                             "was saved. Check the text encoder's files and dtype (fp16 can overflow: use bf16).")
        folder, stem, _ = paths.output_target(node, "filename_prefix", filename_prefix)
        meta = {"frame_rate": str(float(extra.get("frame_rate", 24.0))), "format": "openltx-conditioning-1"}
        fd, temp = tempfile.mkstemp(prefix=f".{stem[:40]}-", suffix=".partial", dir=folder)
        os.close(fd)
        try:
            save_file(tensors, temp, metadata=meta)
            target = publish(temp, folder, stem, ".safetensors")  # a new name, taken atomically
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
        out = os.path.abspath(folder_paths.get_output_directory())
        return io.NodeOutput(ui={"text": [os.path.relpath(target, out)]})


def conditioning_files() -> list[str]:
    """``.safetensors`` files of the input folder (sub-folders included; no links out of it)."""
    files = []
    try:
        root = folder_paths.get_input_directory()
        for dirpath, _, names in os.walk(root):
            for n in names:
                rel = os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/")
                if n.endswith(".safetensors") and paths.input_file(rel, (".safetensors",)) is not None:
                    files.append(rel)
    except OSError:
        pass
    return sorted(files)


class OpenLTXLoadConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXLoadConditioning",
            display_name="LTX-2 Load Conditioning",
            category="OpenLTX/text",
            description="Loads CONDITIONING saved by LTX-2 Save Conditioning (copy the file into the input folder).",
            inputs=[
                io.Combo.Input("conditioning_file", options=conditioning_files(),
                               tooltip="A .safetensors file from LTX-2 Save Conditioning, in the input folder."),
            ],
            outputs=[io.Conditioning.Output(tooltip="The saved video + audio text context and frame rate.")],
        )  # fmt: skip

    @classmethod
    def validate_inputs(cls, conditioning_file=None):
        if conditioning_file is None:
            return True
        return paths.input_file_error("conditioning_file", conditioning_file, (".safetensors",)) or True

    @classmethod
    def fingerprint_inputs(cls, conditioning_file=None, **_other):
        return paths.file_digest(paths.input_file(conditioning_file, (".safetensors",)))

    @classmethod
    def execute(cls, conditioning_file) -> io.NodeOutput:
        node = "LTX-2 Load Conditioning"
        path = paths.require_input_file(node, "conditioning_file", conditioning_file, (".safetensors",))
        try:
            video, audio, meta = read_context_file(path, "LTX-2 Save Conditioning")
            frame_rate = float(meta.get("frame_rate", 24.0))
        except ValueError as err:  # CheckpointError and the checks of read_context_file
            raise ValueError(f"{node}: {err}") from None
        if not (math.isfinite(frame_rate) and 0 < frame_rate <= 1000):
            raise ValueError(f"{node}: {paths.shown(conditioning_file)}: its frame_rate {frame_rate} is not a frame "
                             "rate; the file was edited or is corrupt: save the conditioning again.")  # fmt: skip
        return io.NodeOutput(text_conditioning(video, audio, frame_rate))


NODES = [OpenLTXTextEncoderLoader, OpenLTXTextEncoderLora, OpenLTXTextEncode, OpenLTXSaveConditioning,
         OpenLTXLoadConditioning]
