"""Streaming offload: keep as many transformer blocks on the device as a VRAM budget allows.

``enable_block_streaming(model, budget_bytes, device, prefetch=1)`` installs forward hooks on
``model.transformer_blocks`` (``ltx2.transformer.LTXAVTransformer`` runs them in order); the
model code is not changed.  Placement:

* every tensor outside the blocks (patchify, AdaLN, caption projection, output head) is
  *fixed*: moved to ``device`` once and left there;
* *resident* blocks are moved to ``device`` once;
* *streamed* blocks live in CPU memory (pinned when ``device`` is CUDA) and are copied to the
  device by a forward pre-hook, then dropped by the forward hook.  While block ``i`` runs,
  the next ``prefetch`` streamed blocks are already being copied on a side CUDA stream; an
  event per copy makes the compute stream wait only for the block it is about to run, and
  ``record_stream`` keeps the caching allocator from reusing a dropped block's memory before
  the compute stream is done with it.

Budget (bytes of weights on the device): ``fixed + resident blocks + window``, where the
window is room for ``1 + prefetch`` streamed blocks (the running one and those in flight).
The resident blocks are spread evenly between the streamed ones rather than packed at the
front: a resident block between two streamed ones gives the next copy a whole extra block
of compute to hide behind.  Activations are *not* part of the budget (see ``auto_budget``
in ``offload_policy.py``, which leaves a reserve for them).

Formats: a block is moved tensor by tensor, every parameter and buffer whatever its dtype or
tensor class (bf16, float8_e4m3fn weights with their scale tensors, packed GGUF bytes held
as uint8 parameters or buffers, int8 + per-channel scales).  A quantized layer therefore
needs nothing special as long as everything it reads in ``forward`` is a registered
parameter or buffer (a plain tensor attribute would stay where it is).  Sizes are counted as
``numel * element_size`` of what is stored, so an fp8 block costs half a bf16 one.

CPU: the same code runs with ``device="cpu"`` ("simulated"): pinning is skipped and the
device copy of a streamed block is a real clone, so ``peak_bytes`` (the bookkeeping of
weight bytes "on the device") is honest and the tests can check it against the budget.

ComfyUI: see ``offload_policy.py`` (``auto_budget``, ``attach_to_patcher``) for how this
meets ComfyUI's ModelPatcher and for the loader wiring.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

_KINDS = ("_parameters", "_buffers")


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor occupies as stored (packed/quantized dtypes count their own width)."""
    return t.numel() * t.element_size()


def _direct_tensors(module: torch.nn.Module):
    """(kind, name, tensor) of the tensors registered directly on ``module``."""
    for kind in _KINDS:
        for name, t in getattr(module, kind).items():
            if t is not None:
                yield kind, name, t


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer of ``module`` (recursively)."""
    return sum(tensor_bytes(t) for m in module.modules() for _, _, t in _direct_tensors(m))


@dataclass
class _Slot:
    """One registered tensor of a block: where it lives when the block is not on the device."""

    module: torch.nn.Module
    kind: str
    name: str
    home: torch.Tensor

    def current(self) -> torch.Tensor:
        return getattr(self.module, self.kind)[self.name]

    def put(self, t: torch.Tensor) -> None:
        getattr(self.module, self.kind)[self.name] = t


@dataclass
class _Block:
    index: int
    module: torch.nn.Module
    slots: list[_Slot]
    nbytes: int
    resident: bool = False
    on_device: bool = False
    pending: tuple[list[torch.Tensor], object] | None = None  # prefetched copies + CUDA event
    hooks: list = field(default_factory=list)


def _spread(n: int, streamed: int) -> set[int]:
    """``streamed`` of ``n`` indices, evenly spaced (the rest stay resident)."""
    return {i for i in range(n) if (i + 1) * streamed // n > i * streamed // n}


class BlockStreaming:
    """The handle ``enable_block_streaming`` returns.

    Attributes (bytes unless noted):
        budget_bytes, model_bytes, fixed_bytes (non-block tensors), window_bytes
        resident_blocks / streamed_blocks: block indices
        current_bytes: weight bytes on the device right now (bookkeeping)
        peak_bytes: the maximum of ``current_bytes`` since enabling (or ``reset_peak``)
        transfers: streamed block copies made; streamed_bytes: their total size
    """

    def __init__(self, model, budget_bytes: int, device, *, prefetch: int = 1,
                 blocks_attr: str = "transformer_blocks", pin_memory: bool = True) -> None:
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0 blocks, got {prefetch}")
        blocks = getattr(model, blocks_attr, None)
        if not isinstance(blocks, torch.nn.ModuleList) or len(blocks) == 0:
            raise ValueError(f"{type(model).__name__} has no non-empty ModuleList {blocks_attr!r} to stream")
        self.model, self.device, self.prefetch = model, torch.device(device), prefetch
        self.budget_bytes = int(budget_bytes)
        self.pin = pin_memory and self.device.type == "cuda"
        self.cuda = self.device.type == "cuda"
        self._side_stream = torch.cuda.Stream(self.device) if self.cuda else None
        self._model_hooks: list = []
        self.transfers = self.streamed_bytes = 0

        in_blocks = {id(m) for b in blocks for m in b.modules()}
        self._fixed = [_Slot(m, k, n, t) for m in model.modules() if id(m) not in in_blocks
                       for k, n, t in _direct_tensors(m)]
        self.blocks = [
            _Block(i, b, slots := [_Slot(m, k, n, t) for m in b.modules() for k, n, t in _direct_tensors(m)],
                   sum(tensor_bytes(s.home) for s in slots))
            for i, b in enumerate(blocks)
        ]
        self.fixed_bytes = sum(tensor_bytes(s.home) for s in self._fixed)
        self.model_bytes = self.fixed_bytes + sum(b.nbytes for b in self.blocks)
        self._plan()
        self._place()
        self._install_hooks()

    # ------------------------------------------------------------------ planning
    def _window(self, streamed: set[int]) -> int:
        sizes = sorted((self.blocks[i].nbytes for i in streamed), reverse=True)
        return sum(sizes[: 1 + self.prefetch])

    def _plan(self) -> None:
        n = len(self.blocks)
        for count in range(n + 1):  # fewest streamed blocks that fit
            streamed = _spread(n, count)
            window = self._window(streamed)
            resident = sum(b.nbytes for b in self.blocks if b.index not in streamed)
            if self.fixed_bytes + resident + window <= self.budget_bytes:
                break
        else:
            need = self.fixed_bytes + self._window(set(range(n)))
            raise ValueError(
                f"offload budget {self.budget_bytes / 2**20:.1f} MiB is too small for this model: the "
                f"non-block layers take {self.fixed_bytes / 2**20:.1f} MiB and streaming needs room for "
                f"{1 + self.prefetch} blocks at once; give at least {need / 2**20:.1f} MiB "
                f"(or lower prefetch, now {self.prefetch})"
            )
        self.window_bytes = window if streamed else 0
        for b in self.blocks:
            b.resident = b.index not in streamed
        self.resident_blocks = [b.index for b in self.blocks if b.resident]
        self.streamed_blocks = [b.index for b in self.blocks if not b.resident]

    # ------------------------------------------------------------------ placement
    @staticmethod
    def _like(home: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``t`` wrapped as a Parameter when ``home`` is one (modules expect their type)."""
        if isinstance(home, torch.nn.Parameter) and not isinstance(t, torch.nn.Parameter):
            return torch.nn.Parameter(t, requires_grad=False)
        return t

    def _to_device(self, home: torch.Tensor, non_blocking: bool = False) -> torch.Tensor:
        # copy=True: on the simulated CPU device the "device copy" is a real clone.
        return self._like(home, home.detach().to(self.device, non_blocking=non_blocking, copy=True))

    def _to_home(self, t: torch.Tensor) -> torch.Tensor:
        """A CPU copy (pinned for CUDA) of ``t``; ``t`` itself when it already qualifies."""
        host = t if t.device.type == "cpu" else t.detach().to("cpu")
        if self.pin and not host.is_pinned():
            try:
                host = host.detach().pin_memory()
            except (RuntimeError, NotImplementedError):  # exotic tensor classes: unpinned, synchronous
                pass
        return t if host is t else self._like(t, host)

    def _place(self) -> None:
        """Move fixed tensors and resident blocks to the device, streamed blocks to CPU homes."""
        for s in self._fixed:
            if s.home.device != self.device:
                s.home = self._to_device(s.home)
                s.put(s.home)
        for b in self.blocks:
            for s in b.slots:
                if b.resident and s.home.device != self.device:
                    s.home = self._to_device(s.home)
                elif not b.resident:
                    s.home = self._to_home(s.current())
                s.put(s.home)
        self.current_bytes = self.fixed_bytes + sum(b.nbytes for b in self.blocks if b.resident)
        self.peak_bytes = self.current_bytes

    def is_current(self) -> bool:
        """False when someone else moved or replaced the model's tensors since enabling
        (e.g. ComfyUI unloaded the model or re-patched weights): enable again then."""
        if any(s.current() is not s.home for s in self._fixed):
            return False
        return all(s.current() is s.home for b in self.blocks if not b.on_device for s in b.slots)

    # ------------------------------------------------------------------ streaming
    def _count(self, delta: int) -> None:
        self.current_bytes += delta
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)

    def _start_copy(self, b: _Block) -> None:
        if b.resident or b.on_device or b.pending is not None:
            return
        self._count(b.nbytes)
        self.transfers += 1
        self.streamed_bytes += b.nbytes
        if self.cuda:
            with torch.cuda.stream(self._side_stream):
                copies = [self._to_device(s.home, non_blocking=self.pin) for s in b.slots]
                event = torch.cuda.Event()
                event.record(self._side_stream)
            b.pending = (copies, event)
        else:  # no side stream: the copy happens now; the bookkeeping is the same
            b.pending = ([self._to_device(s.home) for s in b.slots], None)

    def _bring(self, b: _Block) -> None:
        if b.resident or b.on_device:
            return
        self._start_copy(b)  # no-op when prefetched
        copies, event = b.pending
        b.pending = None
        if event is not None:
            compute = torch.cuda.current_stream(self.device)
            compute.wait_event(event)
            for t in copies:
                t.record_stream(compute)  # freed memory waits for the compute stream
        for s, t in zip(b.slots, copies):
            s.put(t)
        b.on_device = True

    def _drop(self, b: _Block) -> None:
        if b.on_device:
            for s in b.slots:
                s.put(s.home)
            b.on_device = False
            self._count(-b.nbytes)
        if b.pending is not None:
            b.pending = None
            self._count(-b.nbytes)

    def _prefetch_after(self, index: int) -> None:
        later = [i for i in self.streamed_blocks if i > index][: self.prefetch]
        for i in later:
            self._start_copy(self.blocks[i])

    def _release_all(self) -> None:
        for b in self.blocks:
            if not b.resident:
                self._drop(b)

    # ------------------------------------------------------------------ hooks
    def _install_hooks(self) -> None:
        if not self.streamed_blocks:
            return  # everything fits: no hooks, no overhead

        def model_pre(module, args):
            self._release_all()  # leftovers of an interrupted forward
            self._prefetch_after(-1)  # first streamed blocks copy while _prepare / resident blocks run

        def model_post(module, args, output):
            self._release_all()

        self._model_hooks = [
            self.model.register_forward_pre_hook(model_pre),
            self.model.register_forward_hook(model_post, always_call=True),
        ]
        for b in self.blocks:
            if b.resident:
                continue

            def pre(module, args, b=b):
                self._bring(b)
                self._prefetch_after(b.index)

            def post(module, args, output, b=b):
                self._drop(b)

            b.hooks = [b.module.register_forward_pre_hook(pre),
                       b.module.register_forward_hook(post, always_call=True)]

    @property
    def hook_count(self) -> int:
        return len(self._model_hooks) + sum(len(b.hooks) for b in self.blocks)

    def reset_peak(self) -> None:
        self.peak_bytes = self.current_bytes

    def stats(self) -> dict:
        return {
            "model_bytes": self.model_bytes, "budget_bytes": self.budget_bytes, "fixed_bytes": self.fixed_bytes,
            "window_bytes": self.window_bytes, "peak_bytes": self.peak_bytes,
            "resident_blocks": len(self.resident_blocks), "streamed_blocks": len(self.streamed_blocks),
            "transfers": self.transfers, "streamed_bytes": self.streamed_bytes,
        }

    def disable(self, device=None) -> None:
        """Remove every hook and drop streamed device copies.

        ``device=None`` leaves resident blocks on the device and streamed ones in CPU memory;
        a device (e.g. ``"cpu"`` or the compute device) moves every block there, so that the
        model runs again without the handle.
        """
        self._release_all()
        for h in self._model_hooks + [h for b in self.blocks for h in b.hooks]:
            h.remove()
        self._model_hooks = []
        for b in self.blocks:
            b.hooks = []
        if device is not None:
            device = torch.device(device)
            for s in self._fixed + [s for b in self.blocks for s in b.slots]:
                t = s.current()
                if t.device != device:
                    s.put(self._like(t, t.detach().to(device)))
        if self.cuda:
            torch.cuda.current_stream(self.device).synchronize()


def enable_block_streaming(model: torch.nn.Module, budget_bytes: int, device, *, prefetch: int = 1,
                           blocks_attr: str = "transformer_blocks", pin_memory: bool = True) -> BlockStreaming:
    """Stream ``model.<blocks_attr>`` through ``device`` within ``budget_bytes`` of weights.

    Works on any placement of ``model`` (all on CPU, all on the device, or ComfyUI's partial
    load): the fixed tensors and resident blocks are moved to ``device``, streamed blocks to
    (pinned) CPU memory.  A budget at or above ``module_bytes(model)`` keeps everything
    resident and installs no hooks.  Raises ``ValueError`` naming the minimum budget when
    even streaming every block does not fit.  Returns the handle (``disable()`` undoes the
    hooks; ``peak_bytes`` is the bookkeeping of weight bytes on the device).
    """
    return BlockStreaming(model, budget_bytes, device, prefetch=prefetch, blocks_attr=blocks_attr,
                          pin_memory=pin_memory)
