"""An LTX-2 MODEL whose transformer runs on several GPUs (or machines) through Ray.

``MultiGPURunner`` owns one Ray actor per GPU (``parallel.worker.Worker``), each holding the
weights and running its part of every forward (``parallel.sharded``: CFG x Ulysses x ring).
The MODEL the node returns is an ordinary ComfyUI MODEL clone: its
``transformer_options["openltx_multigpu"]`` holds the runner, and
``LTX2DiffusionModel.forward`` hands the prepared ``StreamInput`` s to it instead of running
the blocks itself.  The sampler, guiders, previews and conds stay in the ComfyUI process.

Life cycle
----------
* Lazy start: Ray (local unless an address is given), the actors, the process group and the
  weights are set up at the first forward.  Weights are the MODEL's *effective* weights at
  that moment (ComfyUI has applied LoRA patches to the module it loaded), sent one chunk per
  transformer block through Ray's object store, with a progress bar.  A sampling run whose
  patches differ (``ON_PRE_RUN`` sees another ``patches_uuid``) re-sends them.
* The clone's ``load_device`` is the CPU: ComfyUI keeps its copy of the weights in RAM and
  never loads it onto GPU 0, which is one of the workers.
* Interrupt: while waiting, the driver polls ComfyUI's interrupt flag and asks every worker to
  stop; the workers agree on the block to stop at, so none is left in a collective.
* Errors: a worker that raises or dies ends the forward with a ``RuntimeError`` naming the
  worker and the cause; all workers are then shut down and the next prompt starts them again.
* Teardown: when ComfyUI fully unloads the MODEL (``ON_DETACH`` with ``unpatch_all``: a memory
  request or "unload models") and when the runner is garbage collected (``weakref.finalize``:
  the node's cached MODEL and every clone of it are gone), the actors are killed.  The other
  detaches — a per-run clone deleted (``ModelPatcher.__del__``) or replaced by the next run's
  clone — keep them: a clone of the node's MODEL is made for every sampling run, and restarting
  the workers (and re-sending the weights) on each prompt would cost more than the generation.

Ray and yunchang are optional dependencies (``requirements-multigpu.txt``); without them the
node says what to install.
"""

from __future__ import annotations

import logging
import os
import weakref
from dataclasses import dataclass

import torch

import comfy.model_management as mm
import comfy.utils
from comfy.patcher_extension import CallbacksMP

from ..ltx2 import attention_backends as AB
from ..parallel import bootstrap
from ..parallel.mesh import import_yunchang
from ..parallel.plan import choose
from ..parallel.worker import INTERRUPTED, Worker
from . import attention as host_attention
from .model import MULTIGPU_KEY, LTX2Model

log = logging.getLogger(__name__)

PACKAGE = __name__.rsplit(".host.", 1)[0]  # the pack's module name in this process
PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALL_HINT = "pip install -r requirements-multigpu.txt (ray and yunchang) in ComfyUI's Python environment"
DENSE = (torch.float32, torch.bfloat16, torch.float16)
DEVICES = ("auto", "cuda", "cpu")


class MultiGPUError(RuntimeError):
    """A multi-GPU model that cannot start or whose worker failed (the message says which and why)."""


def ray_module():
    """``ray`` (with ``yunchang`` present), or a clear error saying what to install."""
    missing = []
    try:
        import ray
    except ImportError:
        ray, missing = None, ["ray"]
    try:
        import_yunchang()  # the workers need it; checked here to fail early
    except ImportError:
        missing.append("yunchang")
    if missing:
        raise MultiGPUError(f"LTX-2 Multi-GPU needs {' and '.join(missing)}, which are not installed: {INSTALL_HINT}")
    return ray


@dataclass(frozen=True)
class MultiGPUOptions:
    """What the node asked for.  Degrees 0 are chosen per call (``parallel.plan.choose``)."""

    workers: int = 0  # 0: one per GPU Ray sees
    device: str = "auto"  # "cuda" (one GPU per worker), "cpu" (tests, CPU clusters) or "auto"
    address: str = ""  # Ray cluster address; "" starts (or reuses) a local Ray
    cfg: int = 0
    ulysses: int = 0
    ring: int = 0

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        for name in ("workers", "cfg", "ulysses", "ring"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (automatic) or positive, got {getattr(self, name)}")


def _kill(state: dict) -> None:
    """Kill the actors in ``state`` (also called by the finalizer: must not reference the runner)."""
    actors = state.get("actors") or []
    state.update(actors=[], weights=None, ranks={})
    if not actors:
        return
    try:
        import ray

        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # already dead, or Ray shut down
                pass
    except ImportError:
        pass


def _block_of(key: str) -> int:
    parts = key.split(".")
    return int(parts[1]) if parts[0] == "transformer_blocks" else -1


def _chunks(state_dict: dict) -> list[list[str]]:
    """Keys grouped per transformer block (the modules outside the blocks first)."""
    groups: dict[int, list[str]] = {}
    for key in state_dict:
        groups.setdefault(_block_of(key), []).append(key)
    return [groups[i] for i in sorted(groups)]


class MultiGPURunner:
    """The workers of one multi-GPU MODEL (shared by its clones: deep copies return ``self``)."""

    def __init__(self, options: MultiGPUOptions) -> None:
        self.options = options
        self._state: dict = {"actors": [], "weights": None, "ranks": {}}
        self._patches = None
        self.plan = None
        self._calls = 0
        self._finalizer = weakref.finalize(self, _kill, self._state)

    def __deepcopy__(self, memo) -> "MultiGPURunner":
        return self

    @property
    def actors(self) -> list:
        return list(self._state["actors"])

    # ------------------------------------------------------------------ ModelPatcher hooks
    def attach(self, patcher) -> None:
        """Register the callbacks on a MODEL clone (they are copied to its clones)."""
        patcher.add_callback(CallbacksMP.ON_PRE_RUN, self._on_pre_run)
        patcher.add_callback(CallbacksMP.ON_DETACH, self._on_detach)

    def _on_pre_run(self, patcher) -> None:
        self._patches = (id(patcher.model), patcher.patches_uuid, len(patcher.patches))

    def _on_detach(self, patcher, unpatch_all=True) -> None:
        if not unpatch_all:  # a clone dropped or swapped for the next run's (see the module doc)
            return
        if self._state["actors"]:
            log.info("OpenLTX: multi-GPU model unloaded; stopping its %d workers", len(self._state["actors"]))
        self.shutdown()

    def shutdown(self) -> None:
        _kill(self._state)

    # ------------------------------------------------------------------ start-up
    def _ray(self):
        ray = ray_module()
        if not ray.is_initialized():
            ray.cloudpickle.register_pickle_by_value(bootstrap)
            kwargs = dict(
                include_dashboard=False,
                runtime_env={"worker_process_setup_hook": bootstrap.setup_hook(PACKAGE, PACK_ROOT)},
                logging_level=logging.WARNING,
            )
            if self.options.address:
                ray.init(address=self.options.address, **kwargs)
            else:
                ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
        return ray

    def _device_and_count(self, ray) -> tuple[str, int]:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        device = self.options.device
        if device == "auto":
            device = "cuda" if gpus else "cpu"
        if device == "cuda":
            count = self.options.workers or gpus
            if count < 1 or count > gpus:
                raise MultiGPUError(
                    f"LTX-2 Multi-GPU: {count} GPU workers asked for, Ray sees {gpus} GPU(s)"
                    + (f" at {self.options.address}" if self.options.address else " on this machine")
                    + "; set workers to at most that, or 0 for all of them"
                )
            return device, count
        return device, self.options.workers or 2

    def _start(self, ray) -> None:
        device, count = self._device_and_count(ray)
        threads = max(1, (os.cpu_count() or 1) // count) if device == "cpu" else None
        options = {"max_concurrency": 2, "num_gpus": 1 if device == "cuda" else 0, "num_cpus": 0}
        remote = ray.remote(Worker)
        actors = [remote.options(**options).remote(device, threads) for _ in range(count)]
        self._state["actors"] = actors
        infos = self._wait([a.info.remote() for a in actors], "start")
        # Ranks numbered machine by machine: Ulysses groups (consecutive ranks) stay on one machine.
        order = sorted(range(count), key=lambda i: (infos[i]["host"], i))
        ordered = [actors[i] for i in order]
        self._state["actors"] = ordered
        self._state["ranks"] = {id(a): r for r, a in enumerate(ordered)}
        self._infos = [infos[i] for i in order]
        per_host: dict[str, int] = {}
        for info in self._infos:
            per_host[info["host"]] = per_host.get(info["host"], 0) + 1
        self.gpus_per_node = min(per_host.values())
        host, port = self._wait([ordered[0].address.remote()], "start")[0]
        self._wait([a.init_group.remote(r, count, host, port) for r, a in enumerate(ordered)], "join the process group")
        log.info("OpenLTX: multi-GPU workers up: %s", ", ".join(f"{i['device']} (pid {i['pid']}, {i['host']})" for i in self._infos))

    def _send_weights(self, ray, module, dtype: torch.dtype, key) -> None:
        state_dict = module.state_dict()
        odd = [k for k, t in state_dict.items() if type(t) is not torch.Tensor or t.dtype not in DENSE]
        if odd:
            raise MultiGPUError(
                f"LTX-2 Multi-GPU runs dense (bf16 / fp16 / fp32) weights; this MODEL holds quantized tensors "
                f"({odd[0]}: {state_dict[odd[0]].dtype}{'' if len(odd) == 1 else f', and {len(odd) - 1} more'}). "
                "Load the checkpoint with quantize 'none' and a dense weight dtype for multi-GPU use."
            )
        actors = self.actors
        self._wait([a.build.remote(module.config, dtype) for a in actors], "build the transformer")
        chunks = _chunks(state_dict)
        bar = comfy.utils.ProgressBar(len(chunks))
        for done, keys in enumerate(chunks, 1):
            ref = ray.put({k: state_dict[k].detach().to("cpu", dtype).contiguous() for k in keys})
            self._wait([a.load.remote(ref) for a in actors], "receive the weights")
            del ref
            bar.update_absolute(done, len(chunks))
            mm.throw_exception_if_processing_interrupted()
        self._wait([a.finish_load.remote() for a in actors], "receive the weights")
        self._state["weights"] = key

    def _ensure(self, module, dtype: torch.dtype):
        ray = self._ray()
        if not self._state["actors"]:
            try:
                self._start(ray)
            except BaseException:
                self.shutdown()
                raise
        key = (id(module), self._patches, dtype)
        if self._state["weights"] != key:
            self._state["weights"] = None
            self._send_weights(ray, module, dtype, key)
        return ray

    # ------------------------------------------------------------------ waiting and errors
    def _wait(self, futures: list, what: str, interrupt_call: int | None = None) -> list:
        """``ray.get`` of one future per worker with ComfyUI's Cancel honoured and worker
        failures turned into one clear error (after which every worker is shut down)."""
        import ray

        pending = list(futures)
        interrupted = False
        while pending:
            if interrupt_call is not None and not interrupted and mm.processing_interrupted():
                interrupted = True  # Cancel in ComfyUI: every worker stops after the same block
                for actor in self.actors:
                    actor.interrupt.remote(interrupt_call)
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.1)
            for ref in done:
                try:
                    ray.get(ref)
                except Exception as err:
                    rank, err = self._root_cause(ray, futures, futures.index(ref), err)
                    self.shutdown()
                    raise MultiGPUError(self._describe_failure(err, rank, what)) from None
        return ray.get(futures)

    @staticmethod
    def _root_cause(ray, futures: list, rank: int, err: Exception, grace_s: float = 3.0) -> tuple[int, Exception]:
        """The failure to report: a worker that died, when one did, rather than the first error seen.

        A dead worker's peers fail at once in their next collective ("connection closed by
        peer") while Ray may notice the death a moment later, so the others get ``grace_s``.
        """
        import ray.exceptions as rex

        if isinstance(err, rex.RayActorError):
            return rank, err
        ray.wait(futures, num_returns=len(futures), timeout=grace_s)
        for i, ref in enumerate(futures):
            try:
                ray.get(ref, timeout=0)
            except rex.RayActorError as dead:
                return i, dead
            except Exception:
                pass
        return rank, err

    def _describe_failure(self, err, rank: int, what: str) -> str:
        import ray.exceptions as rex

        infos = getattr(self, "_infos", None) or []
        where = f"worker {rank}" + (f" ({infos[rank]['device']}, pid {infos[rank]['pid']})" if rank < len(infos) else "")
        if isinstance(err, rex.RayTaskError):
            cause = err.cause if err.cause is not None else err
            detail = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"
        elif isinstance(err, rex.RayActorError):
            detail = "the worker process died (killed, out of memory, or a crashed driver/GPU)"
        else:
            detail = f"{type(err).__name__}: {err}"
        return (
            f"LTX-2 Multi-GPU: {where} failed to {what}: {detail}. All workers were shut down; "
            "the next prompt starts them again."
        )

    # ------------------------------------------------------------------ the forward
    def forward(self, module, video, audio, perturbations, transformer_options) -> tuple:
        """``module``'s velocities for ``video`` / ``audio`` computed by the workers."""
        first = video if video is not None else audio
        dtype, device = first.latent.dtype, first.latent.device
        ray = self._ensure(module, dtype)
        cfg = module.config
        heads = tuple(h for h, present in ((cfg.num_attention_heads, cfg.has_video), (cfg.audio_num_attention_heads, cfg.has_audio)) if present)
        plan = choose(len(self.actors), first.latent.shape[0], heads, cfg=self.options.cfg,
                      ulysses=self.options.ulysses, ring=self.options.ring, gpus_per_node=self.gpus_per_node)
        self.plan = plan
        choice = host_attention.requested(transformer_options)
        attention = choice if choice in AB.BACKENDS else "auto"  # ComfyUI's own kernels do not exist in workers
        refs = [ray.put(None if s is None else _cpu(s)) for s in (video, audio)]
        self._calls += 1
        futures = [a.forward.remote(refs[0], refs[1], perturbations, plan, attention, self._calls) for a in self.actors]
        results = self._wait(futures, "run the forward", interrupt_call=self._calls)
        if any(r == INTERRUPTED for r in results if isinstance(r, str)):
            mm.throw_exception_if_processing_interrupted()
            raise mm.InterruptProcessingException()
        return tuple(None if t is None else t.to(device=device, dtype=dtype) for t in results[0])

    def stats(self) -> list[dict]:
        """The communication counters of the last forward, per worker."""
        return self._wait([a.last_stats.remote() for a in self.actors], "report")


def _cpu(inp):
    from ..ltx2.inputs import StreamInput

    return StreamInput(**{k: (v.cpu() if torch.is_tensor(v) else v) for k, v in inp.__dict__.items()})


def multigpu_model(model, options: MultiGPUOptions):
    """A clone of the LTX-2 MODEL ``model`` whose forwards run on Ray workers."""
    if not isinstance(getattr(model, "model", None), LTX2Model):
        raise ValueError(
            f"LTX-2 Multi-GPU takes an LTX-2 MODEL from an OpenLTX loader; got a MODEL of "
            f"{type(getattr(model, 'model', model)).__name__}"
        )
    ray_module()
    runner = MultiGPURunner(options)
    clone = model.clone()
    clone.load_device = torch.device("cpu")  # the driver's copy stays in RAM; the GPUs belong to the workers
    clone.model_options.setdefault("transformer_options", {})[MULTIGPU_KEY] = runner
    runner.attach(clone)
    return clone
