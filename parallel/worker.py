"""One rank of a multi-GPU LTX-2 model: its process group, its copy of the weights, its forwards.

``Worker`` is plain Python: ``host/multigpu.py`` wraps it as a Ray actor (one per GPU, run
with ``max_concurrency=2`` so ``interrupt`` reaches a busy worker), and tests may drive it
directly.  The call order is ``info`` -> ``address`` (rank 0) -> ``init_group`` (all) -> ``build`` ->
``load`` per weight chunk -> ``finish_load`` -> ``forward`` per model call.

Weights arrive in chunks (one transformer block, or the modules outside the blocks) already
holding the MODEL's effective values (LoRA patches applied) and are assigned to a module built
on the meta device: at most one chunk is in flight, and a key that is missing, unexpected or
mis-shaped is an error naming it.
"""

from __future__ import annotations

import datetime
import os
import socket

import torch
import torch.distributed as dist

from ..ltx2 import attention_backends
from ..ltx2.config import TransformerConfig
from ..ltx2.inputs import Perturbations, StreamInput
from ..ltx2.transformer import LTXAVTransformer
from .mesh import forget_meshes
from .plan import ParallelPlan
from .sharded import ForwardInterrupted, sharded_forward

INTERRUPTED = "interrupted"


def _to(inp: StreamInput | None, device) -> StreamInput | None:
    if inp is None:
        return None
    fields = dict(inp.__dict__)
    for name, value in fields.items():
        if torch.is_tensor(value):
            fields[name] = value.to(device, non_blocking=True)
    return StreamInput(**fields)


class Worker:
    """One rank; ``device``: ``"cuda"`` (the GPU Ray assigned) or ``"cpu"``.  Its rank is given by
    ``init_group`` (the driver numbers workers per machine, so Ulysses groups stay on one)."""

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        self.rank, self.world = -1, 0
        if device == "cuda":
            torch.cuda.set_device(0)  # Ray exposes the assigned GPU as the only visible one
            self.device = torch.device("cuda", 0)
        else:
            self.device = torch.device("cpu")
            if threads:
                torch.set_num_threads(threads)
        self.model: LTXAVTransformer | None = None
        self._loaded: set[str] = set()
        self._stop_call = -1
        self.stats: dict = {}

    # ------------------------------------------------------------------ set-up
    def info(self) -> dict:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {"rank": self.rank, "pid": os.getpid(), "host": socket.gethostname(), "device": name}

    def address(self) -> tuple[str, int]:
        """An address and free port on this machine for the process-group rendezvous (rank 0)."""
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
        with socket.socket() as s:
            s.bind(("", 0))
            return host, s.getsockname()[1]

    def init_group(self, rank: int, world: int, host: str, port: int, timeout_s: float = 600.0) -> None:
        self.rank, self.world = rank, world
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        dist.init_process_group(
            backend, init_method=f"tcp://{host}:{port}", rank=self.rank, world_size=self.world,
            timeout=datetime.timedelta(seconds=timeout_s),
        )

    def build(self, config: TransformerConfig, dtype: torch.dtype) -> None:
        """The transformer on the meta device; ``load`` fills it."""
        self.model = LTXAVTransformer(config, dtype=dtype, device="meta").eval().requires_grad_(False)
        self.dtype = dtype
        self._loaded = set()

    def load(self, chunk: dict[str, torch.Tensor]) -> int:
        """Assign one chunk of weights (bare checkpoint keys) on this rank's device."""
        expected = self.model.state_dict(keep_vars=True)
        bad = [k for k in chunk if k not in expected]
        if bad:
            raise ValueError(f"multi-GPU worker {self.rank}: unexpected weights {bad[:8]} for this transformer")
        wrong = [f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in chunk.items()
                 if tuple(v.shape) != tuple(expected[k].shape)]
        if wrong:
            raise ValueError(f"multi-GPU worker {self.rank}: mis-shaped weights {wrong[:8]}")
        on_device = {k: v.to(device=self.device, dtype=self.dtype) for k, v in chunk.items()}
        self.model.load_state_dict(on_device, strict=False, assign=True)
        self._loaded.update(chunk)
        return len(chunk)

    def finish_load(self) -> int:
        missing = sorted(set(self.model.state_dict()) - self._loaded)
        if missing:
            raise ValueError(f"multi-GPU worker {self.rank}: weights never sent: {missing[:8]} ({len(missing)} in all)")
        return sum(p.numel() for p in self.model.parameters())

    # ------------------------------------------------------------------ forwards
    def interrupt(self, call: int) -> None:
        """Stop forward number ``call`` after its current block (every rank stops at the same one).

        Keyed by the call so that an interrupt sent before the forward started still counts and
        one that arrives after it finished does not touch the next.
        """
        self._stop_call = call

    def forward(self, video, audio, perturbations: Perturbations | None, plan: ParallelPlan, attention: str = "auto",
                call: int = 0):
        """The call's velocities (rank 0 returns them on the CPU, the others ``None``), or ``INTERRUPTED``."""
        if self.model is None:
            raise RuntimeError(f"multi-GPU worker {self.rank} has no model (build/load first)")
        stats: dict = {}
        try:
            with torch.inference_mode():
                out = sharded_forward(
                    self.model, _to(video, self.device), _to(audio, self.device), perturbations, plan=plan,
                    attention=attention_backends.get(attention), stats=stats,
                    should_stop=lambda: self._stop_call == call,
                )
        except ForwardInterrupted:
            return INTERRUPTED
        self.stats = stats
        if self.rank != 0:
            return None
        return tuple(t.cpu() if t is not None else None for t in out)

    def last_stats(self) -> dict:
        return dict(self.stats)

    def shutdown(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
        forget_meshes()
        self.model = None
