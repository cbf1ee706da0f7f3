"""Speed nodes: MODEL -> MODEL clones carrying per-call speed options (host/speed.py).

None of them changes the weights or the shared model: they set keys of the clone's
``model_options["transformer_options"]`` that the LTX-2 MODEL reads at every call, so a graph
can run one model with and without them side by side.
"""

from __future__ import annotations

import logging

from comfy_api.v0_0_2 import io

from ..host import attention as host_attention
from ..host import speed
from ..host.model import LTX2Model
from ..ltx2 import attention_backends
from ..ltx2.transformer import CompileOptions
from ..model_loaders.quant import matmul as qmm

COMPILE_MODES = {
    "default": None,
    "max-autotune-no-cudagraphs": "max-autotune-no-cudagraphs",
}
ATTENTION_HELP = {
    "auto": "ComfyUI's attention when you chose one (--use-sage-attention, --use-flash-attention, xformers, "
            "or a node that patched it), else PyTorch SDPA with the kernel picked by GPU and mask",
    "comfy": "always ComfyUI's current attention function",
    "sdpa": "PyTorch SDPA, kernel chosen by PyTorch",
    "sdpa_cudnn": "PyTorch SDPA, cuDNN kernel first",
    "sdpa_flash": "PyTorch SDPA, flash kernel first",
    "sdpa_efficient": "PyTorch SDPA, memory-efficient kernel first",
    "sdpa_math": "PyTorch SDPA, math kernel (slow; for checks)",
    "sage": "SageAttention (pip install sageattention; 8-bit, slightly lossy), SDPA where it cannot run",
}


def _clone_with(model, key: str, value):
    if not isinstance(getattr(model, "model", None), LTX2Model):
        raise ValueError(
            f"this node sets options of an LTX-2 MODEL from an OpenLTX loader; got a MODEL of "
            f"{type(getattr(model, 'model', model)).__name__}"
        )
    m = model.clone()
    options = m.model_options.setdefault("transformer_options", {})
    options[key] = value
    return m


class OpenLTXCompile(io.ComfyNode):
    """MODEL -> MODEL whose transformer blocks run through torch.compile."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXCompile",
            display_name="LTX-2 Compile (torch.compile)",
            category="OpenLTX/speed",
            description=(
                "Compiles the LTX-2 transformer block with torch.compile (one compiled block shared by all "
                "blocks, dynamic over token counts). The first run pays the compile time (tens of seconds "
                "to minutes); later runs at any resolution reuse it. Needs a working Triton (GPU) or C++ "
                "compiler (CPU)."
            ),
            inputs=[
                io.Model.Input("model", tooltip="An LTX-2 model (LTX-2 Checkpoint Loader)."),
                io.Combo.Input(
                    "mode", options=list(COMPILE_MODES), default="default",
                    tooltip="torch.compile mode. 'max-autotune-no-cudagraphs' searches faster matmul kernels "
                    "(much longer first run). CUDA-graph modes are not offered: they do not fit streamed weights.",
                ),
                io.Boolean.Input(
                    "dynamic", default=True,
                    tooltip="Compile once for all token counts (resolutions, lengths, prompt sizes). Off: "
                    "one compile per shape, sometimes slightly faster kernels.",
                ),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The same model, compiled when it runs.")],
        )

    @classmethod
    def execute(cls, model, mode: str, dynamic: bool) -> io.NodeOutput:
        if mode not in COMPILE_MODES:
            raise ValueError(f"mode {mode!r} is not one of {', '.join(COMPILE_MODES)}")
        options = CompileOptions(mode=COMPILE_MODES[mode], dynamic=bool(dynamic))
        return io.NodeOutput(_clone_with(model, speed.COMPILE_KEY, options))


class OpenLTXAttention(io.ComfyNode):
    """MODEL -> MODEL with a chosen attention kernel."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXAttention",
            display_name="LTX-2 Attention",
            category="OpenLTX/speed",
            description=(
                "Chooses the attention kernel of an LTX-2 model. 'auto' follows ComfyUI's choice "
                "(--use-sage-attention, --use-flash-attention, xformers, attention-patching nodes) and "
                "otherwise picks the PyTorch SDPA kernel by GPU and mask. Masked attention (padded text, "
                "reference-video strength) always uses a kernel that takes masks."
            ),
            inputs=[
                io.Model.Input("model", tooltip="An LTX-2 model (LTX-2 Checkpoint Loader)."),
                io.Combo.Input(
                    "backend", options=list(host_attention.CHOICES), default="auto",
                    tooltip="; ".join(f"{k}: {v}" for k, v in ATTENTION_HELP.items()),
                ),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The same model with that attention kernel.")],
        )

    @classmethod
    def validate_inputs(cls, backend: str, **_) -> bool | str:
        if backend not in host_attention.CHOICES:
            return f"backend {backend!r} is not one of {', '.join(host_attention.CHOICES)}"
        return True

    @classmethod
    def execute(cls, model, backend: str) -> io.NodeOutput:
        if backend == "sage" and not attention_backends.SageAttention.available():
            raise ValueError(
                "attention 'sage' needs the sageattention package, which this Python cannot import: "
                "install it (pip install sageattention, on a CUDA machine with Triton) or choose 'auto'"
            )
        return io.NodeOutput(_clone_with(model, host_attention.OPTION_KEY, backend))


class OpenLTXQuantMatmul(io.ComfyNode):
    """MODEL -> MODEL with quantized-matmul settings."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXQuantMatmul",
            display_name="LTX-2 Quantized Matmul",
            category="OpenLTX/speed",
            description=(
                "How the quantized layers of an LTX-2 model multiply. fp8 and int8 weights use fp8 / int8 "
                "tensor-core matmuls on GPUs that have them (activations are quantized per token on the fly); "
                "'off' dequantizes the weight instead (weight-only quantization: slower, no activation "
                "rounding). GGUF weights can keep their dequantized form on the GPU within a budget."
            ),
            inputs=[
                io.Model.Input("model", tooltip="An LTX-2 model loaded from an fp8, int8 or GGUF file (or quantized on load)."),
                io.Combo.Input(
                    "fp8_matmul", options=["auto", "off"], default="auto",
                    tooltip="auto: FP8 x FP8 matmuls on GPUs with FP8 tensor cores (RTX 40xx, H100 and newer). "
                    "off: upcast the fp8 weight per layer.",
                ),
                io.Combo.Input(
                    "int8_matmul", options=["auto", "off"], default="auto",
                    tooltip="auto: INT8 x INT8 matmuls on NVIDIA GPUs (RTX 20xx and newer). off: upcast the int8 "
                    "weight per layer.",
                ),
                io.Float.Input(
                    "gguf_cache_gb", default=0.0, min=0.0, max=1024.0, step=0.5,
                    tooltip="GPU memory (GiB) for dequantized GGUF weights, so cached layers skip the per-step "
                    "dequantization. The memory is outside ComfyUI's model accounting: leave headroom. "
                    "0 disables the cache (and frees it on the next run).",
                ),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The same model with these matmul settings.")],
        )

    @classmethod
    def execute(cls, model, fp8_matmul: str, int8_matmul: str, gguf_cache_gb: float) -> io.NodeOutput:
        settings = qmm.MatmulSettings(fp8=fp8_matmul, int8=int8_matmul, gguf_cache_bytes=int(gguf_cache_gb * 2**30))
        if gguf_cache_gb:
            logging.getLogger(__name__).info("LTX-2: GGUF dequantized-weight cache of %.1f GiB", gguf_cache_gb)
        return io.NodeOutput(_clone_with(model, speed.QUANT_KEY, settings))


NODES = [OpenLTXCompile, OpenLTXAttention, OpenLTXQuantMatmul]
