"""LTX-2 Multi-GPU: MODEL -> MODEL whose transformer runs on several GPUs through Ray.

The node only declares and validates; ``host/multigpu.py`` holds the runner and
``parallel/`` the sharded forward.
"""

from __future__ import annotations

from comfy_api.v0_0_2 import io

from ..host import multigpu

MAX_DEGREE = 256


def _degree(name: str, what: str) -> io.Int.Input:
    return io.Int.Input(
        name, default=0, min=0, max=MAX_DEGREE,
        tooltip=f"{what} 0 = automatic (chosen per model call from the worker count, the batched guidance "
        "passes and the head count). cfg x ulysses x ring must equal the number of workers.",
    )


class OpenLTXMultiGPU(io.ComfyNode):
    """MODEL -> MODEL run by Ray workers, one per GPU (sequence-parallel and CFG-parallel)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="OpenLTXMultiGPU",
            display_name="LTX-2 Multi-GPU Model",
            category="OpenLTX/speed",
            description=(
                "Runs an LTX-2 model on several GPUs: one Ray worker per GPU holds the weights and computes "
                "its share of every step. Guidance passes (cond / uncond / STG) go to different GPUs (CFG "
                "parallel); the video and audio tokens of each pass are split across the rest (sequence "
                "parallel: Ulysses all-to-all, ring attention across machines). The output is an ordinary "
                "MODEL for any sampler or guider. Needs the optional packages ray and yunchang "
                "(pip install -r requirements-multigpu.txt). Put it after LoRA loaders."
            ),
            inputs=[
                io.Model.Input("model", tooltip="An LTX-2 model (LTX-2 Checkpoint Loader, after any LoRA), dense weights."),
                io.Int.Input(
                    "workers", default=0, min=0, max=MAX_DEGREE,
                    tooltip="Number of workers. 0 = one per GPU that Ray sees (all GPUs of this machine, or of "
                    "the cluster at ray_address). With device 'cpu', 0 means 2.",
                ),
                io.Combo.Input(
                    "device", options=list(multigpu.DEVICES), default="auto",
                    tooltip="auto: one GPU per worker when Ray sees GPUs, else CPU workers; cuda: GPUs only; "
                    "cpu: CPU workers (for tests and CPU clusters; slow).",
                ),
                io.String.Input(
                    "ray_address", default="", multiline=False,
                    tooltip="Empty: start (or reuse) a Ray instance on this machine. Otherwise the address of a "
                    "running Ray cluster (e.g. 'auto' or 'ray://head:10001'); every node needs this pack at the "
                    "same path and the same Python packages.",
                ),
                _degree("cfg_degree", "Guidance passes computed side by side (no traffic between them)."),
                _degree("ulysses_degree", "Ranks splitting a sequence by attention heads (all-to-all; keep "
                        "inside one machine; must divide the 32 heads)."),
                _degree("ring_degree", "Ranks splitting a sequence by ring attention (point-to-point; for "
                        "several machines or head counts Ulysses cannot split)."),
            ],
            outputs=[io.Model.Output(display_name="model", tooltip="The same model, computed by the Ray workers.")],
        )

    @classmethod
    def validate_inputs(cls, device: str = "auto", **_) -> bool | str:
        if device not in multigpu.DEVICES:
            return f"device {device!r} is not one of {', '.join(multigpu.DEVICES)}"
        return True

    @classmethod
    def execute(cls, model, workers: int, device: str, ray_address: str, cfg_degree: int, ulysses_degree: int,
                ring_degree: int) -> io.NodeOutput:
        options = multigpu.MultiGPUOptions(
            workers=int(workers), device=device, address=ray_address.strip(), cfg=int(cfg_degree),
            ulysses=int(ulysses_degree), ring=int(ring_degree),
        )
        return io.NodeOutput(multigpu.multigpu_model(model, options))


NODES = [OpenLTXMultiGPU]
