"""Running Gemma 3: weights resident on the compute device, or streamed layer by layer.

``GemmaEncoder`` keeps the text weights in CPU memory (``StoredWeight``: the file's fp8 / NVFP4
bytes, or the compute dtype) and materializes them on the compute device per *unit* -- the token
embedding, each decoder layer, the final norm.  ``budget_bytes`` decides which units stay there:

* ``None``: every unit is materialized once and stays (resident; "gpu" / "cpu" modes);
* a byte count: leading layers stay while they fit, leaving room for two streamed layers; the
  rest are materialized in a forward pre-hook and dropped in the forward hook, with the next
  streamed layer copied ahead on a side CUDA stream when there is one.  The embedding table
  (2 GB for 12B) stays in CPU memory when it does not fit: the lookup runs there and only
  the (1, L, D) result moves.

The same code runs on the CPU with ``device="cpu"`` and a byte budget (the copy is then a
no-op alias for same-dtype weights, a dequantization for fp8 ones), which is how the tests
check that streaming equals residency exactly and that ``peak_bytes`` honours the budget.

LoRAs (``model_loaders/gemma_lora.py``) are merged into a weight when it is materialized, in
float32 on the compute device, so the CPU copies stay as the file had them and can be shared
by encoders with different LoRAs (``WeightStore``).

The forward itself is ``transformers``' own (``Gemma3TextModel(..., output_hidden_states=True)``):
no internals of a particular version are copied, so 4.5x and 5.x behave alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

try:  # <pack>.host, or top-level host (benchmarks, the transformers-5 subprocess test)
    from ..model_loaders.gemma_loading import GemmaSource, StoredWeight, build_gemma_model, check_keys, read_weights
    from ..model_loaders.gemma_lora import GemmaLoraSpec, merge, read_gemma_lora
    from ..model_loaders.gemma_tokenizer import MAX_LENGTH, GemmaTokenizerBase, load_tokenizer
except ImportError:
    from model_loaders.gemma_loading import GemmaSource, StoredWeight, build_gemma_model, check_keys, read_weights
    from model_loaders.gemma_lora import GemmaLoraSpec, merge, read_gemma_lora
    from model_loaders.gemma_tokenizer import MAX_LENGTH, GemmaTokenizerBase, load_tokenizer

# Activation memory of one 1024-token encode (hidden states of every layer, attention, MLP),
# per unit of hidden size x layers; measured ~0.6 GB for 12B in bf16, rounded up.
ACTIVATION_BYTES_PER_TOKEN_PER_WIDTH = 14


def activation_bytes(source: GemmaSource, dtype: torch.dtype, tokens: int = MAX_LENGTH) -> int:
    """Rough activation memory of one encode: all hidden states kept + one layer's working set."""
    size = torch.empty((), dtype=dtype).element_size()
    d = source.hidden_size
    states = source.num_hidden_states * tokens * d * size
    working = tokens * (int(source.config["intermediate_size"]) * 3 + d * 8) * size
    return states + working + 64 * 2**20


class WeightStore:
    """CPU copies shared by every encoder of one Gemma source: its weights and the LoRA tensors read.

    ``weights`` is None until the first encoder loads them; LoRA tensors are read once per file.
    """

    def __init__(self) -> None:
        self.weights: dict[str, StoredWeight] | None = None
        self.dtype: torch.dtype | None = None  # the dtype dense weights were read in
        self.loras: dict[str, dict] = {}

    def lora(self, spec: GemmaLoraSpec) -> dict:
        key = repr(spec.identity())
        if key not in self.loras:
            self.loras[key] = read_gemma_lora(spec)
        return self.loras[key]


@dataclass
class _Unit:
    name: str
    module: torch.nn.Module
    params: dict[str, str]  # local param name -> full model name
    nbytes: int
    resident: bool = False
    on_device: bool = False


class GemmaEncoder:
    """Tokenize + run Gemma 3 -> (all hidden states, attention mask).

    ``encode(text)`` returns a tuple of ``num_hidden_layers + 1`` tensors (1, L, D) in ``dtype``
    on ``device`` and the mask (1, L) (1 = token, 0 = left padding), L = ``MAX_LENGTH``.
    Nothing is read or built before the first ``encode`` (``load()`` does it on demand).
    """

    def __init__(
        self,
        source: GemmaSource,
        *,
        dtype: torch.dtype = torch.bfloat16,
        device: torch.device | str = "cpu",
        budget_bytes: int | None = None,
        tokenizer: GemmaTokenizerBase | None = None,
        max_length: int = MAX_LENGTH,
        loras: Sequence[tuple[GemmaLoraSpec, float]] = (),
        store: WeightStore | None = None,
    ) -> None:
        self.source = source
        self.loras = list(loras)
        self.store = store if store is not None else WeightStore()
        self._adapters: dict[str, list] = {}  # weight name -> [(up, down, factor, strength)]
        self.dtype = dtype
        self.device = torch.device(device)
        self.budget_bytes = budget_bytes
        self.max_length = max_length
        self._tokenizer = tokenizer
        self.model: torch.nn.Module | None = None
        self.units: list[_Unit] = []
        self.device_bytes = 0
        self.peak_bytes = 0
        self._hooks: list = []
        self._progress: Callable[[int, int], None] | None = None
        self._prefetched: dict[str, tuple[dict[str, torch.Tensor], object]] = {}
        self._side_stream = None
        self.builds = 0  # how many times a Gemma module was constructed (the cache tests read it)

    # ---------------------------------------------------------------------- set-up
    @property
    def tokenizer(self) -> GemmaTokenizerBase:
        if self._tokenizer is None:
            if hasattr(self.source, "make_tokenizer"):  # Gemma 4 (model_loaders.gemma4_loading): its own tokenizer
                self._tokenizer = self.source.make_tokenizer(self.max_length)
            elif self.source.tokenizer is not None:
                self._tokenizer = load_tokenizer(self.source.tokenizer, self.max_length)
            else:
                from safetensors import safe_open

                file, key = self.source.embedded_tokenizer
                with safe_open(file, framework="pt", device="cpu") as f:
                    blob = f.get_tensor(key).numpy().tobytes()
                self._tokenizer = load_tokenizer(blob, self.max_length, source=f"{file} [{key}]")
        return self._tokenizer

    def load(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Build the module (parameters on meta) and read the weights into CPU memory."""
        if self.model is not None:
            return
        # A Gemma 4 source builds its own module and reads its own (possibly int8) weights.
        custom = hasattr(self.source, "build_model")
        model = self.source.build_model(self.device) if custom else build_gemma_model(self.source, self.device)
        self.builds += 1
        check_keys(self.source, model)
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        if self.weights is None or self.store.dtype != self.dtype:  # benchmarks may hand in weights made in memory
            if custom:
                self.weights = self.source.read_weights(list(shapes), self.dtype, progress)
            else:
                self.weights = read_weights(self.source, list(shapes), self.dtype, progress, shapes)
        self._adapters = {}
        for spec, strength in self.loras:
            for name, (up, down, factor) in self.store.lora(spec).items():
                self._adapters.setdefault(name, []).append((up, down, factor, strength))
        self.model = model
        self._plan()

    def _plan(self) -> None:
        model = self.model
        units = [("embed_tokens", model.embed_tokens)]
        units += [(f"layers.{i}", layer) for i, layer in enumerate(model.layers)]
        units += [("norm", model.norm)]
        self.units = []
        for name, module in units:
            params = {local: f"{name}.{local}" for local, _ in module.named_parameters()}
            nbytes = sum(self.weights[full].nbytes(self.dtype) for full in params.values())
            self.units.append(_Unit(name, module, params, nbytes))
        self._choose_resident()
        self._install_hooks()

    def _choose_resident(self) -> None:
        """Resident units: all without a budget; else the norm, then leading layers while they fit."""
        layers = [u for u in self.units if u.name.startswith("layers.")]
        embed, norm = self.units[0], self.units[-1]
        if self.budget_bytes is None:
            for u in self.units:
                u.resident = True
            return
        window = 2 * max(u.nbytes for u in layers)  # the running layer + the one being prefetched
        left = self.budget_bytes - window - norm.nbytes
        norm.resident = True
        for u in layers:
            if u.nbytes <= left:
                u.resident, left = True, left - u.nbytes
            else:
                break
        # the embedding table only if everything else already fits (it is large and used once)
        embed.resident = all(u.resident for u in layers) and embed.nbytes <= left

    # ---------------------------------------------------------------------- materialization
    @property
    def weights(self) -> dict[str, StoredWeight] | None:
        return self.store.weights

    @weights.setter
    def weights(self, value) -> None:
        self.store.weights, self.store.dtype = value, self.dtype

    def _materialize(self, full: str, device, non_blocking: bool = False) -> torch.Tensor:
        t = self.weights[full].materialize(device, self.dtype, non_blocking)
        return merge(t, self._adapters[full]) if full in self._adapters else t

    def _copy(self, unit: _Unit, non_blocking: bool = False) -> dict[str, torch.Tensor]:
        return {local: self._materialize(full, self.device, non_blocking) for local, full in unit.params.items()}

    def _assign(self, unit: _Unit, tensors: dict[str, torch.Tensor]) -> None:
        for local, t in tensors.items():
            owner, _, leaf = local.rpartition(".")
            module = unit.module.get_submodule(owner) if owner else unit.module
            module._parameters[leaf] = torch.nn.Parameter(t, requires_grad=False)
        unit.on_device = True
        self.device_bytes += unit.nbytes
        self.peak_bytes = max(self.peak_bytes, self.device_bytes)

    def _bring(self, unit: _Unit) -> None:
        if unit.on_device:
            return
        pending = self._prefetched.pop(unit.name, None)
        if pending is not None:
            tensors, event = pending
            self.device_bytes -= unit.nbytes  # counted when the prefetch started
            if event is not None:
                torch.cuda.current_stream(self.device).wait_event(event)
                for t in tensors.values():
                    t.record_stream(torch.cuda.current_stream(self.device))
        else:
            tensors = self._copy(unit)
        self._assign(unit, tensors)

    def _drop(self, unit: _Unit) -> None:
        if not unit.on_device:
            return
        for local in unit.params:
            owner, _, leaf = local.rpartition(".")
            module = unit.module.get_submodule(owner) if owner else unit.module
            p = module._parameters[leaf]
            module._parameters[leaf] = torch.nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device="meta"),
                                                          requires_grad=False)  # fmt: skip
        unit.on_device = False
        self.device_bytes -= unit.nbytes

    def _prefetch(self, unit: _Unit) -> None:
        if unit.on_device or unit.name in self._prefetched:
            return
        self.device_bytes += unit.nbytes
        self.peak_bytes = max(self.peak_bytes, self.device_bytes)
        if self.device.type == "cuda":
            if self._side_stream is None:
                self._side_stream = torch.cuda.Stream(self.device)
            with torch.cuda.stream(self._side_stream):
                tensors = self._copy(unit, non_blocking=True)
                event = torch.cuda.Event()
                event.record(self._side_stream)
            self._prefetched[unit.name] = (tensors, event)
        else:  # no side stream: the copy happens now, the bookkeeping is the same
            self._prefetched[unit.name] = (self._copy(unit), None)

    def _forget_prefetched(self) -> None:
        for name in list(self._prefetched):
            self._prefetched.pop(name)
            self.device_bytes -= next(u.nbytes for u in self.units if u.name == name)

    # ---------------------------------------------------------------------- hooks
    def _install_hooks(self) -> None:
        streamed = [u for u in self.units if not u.resident and u.name.startswith("layers.")]
        nxt = {a.name: b for a, b in zip(streamed, streamed[1:])}
        layers = [u for u in self.units if u.name.startswith("layers.")]
        total = len(layers)

        def pre(unit):
            def hook(module, args):
                self._bring(unit)
                if unit.name in nxt:
                    self._prefetch(nxt[unit.name])
            return hook

        def post(unit, index):
            def hook(module, args, output):
                if not unit.resident:
                    self._drop(unit)
                if self._progress is not None:
                    self._progress(index + 1, total)
            return hook

        for i, u in enumerate(layers):
            if not u.resident:
                self._hooks.append(u.module.register_forward_pre_hook(pre(u)))
            self._hooks.append(u.module.register_forward_hook(post(u, i)))
        if streamed:  # prefetch the first streamed layer while the resident ones run
            first = streamed[0]
            self._hooks.append(self.model.layers[0].register_forward_pre_hook(lambda m, a: self._prefetch(first)))
        embed = self.units[0]
        if not embed.resident:
            # Lookup in CPU memory; only the (B, L, D) result travels to the compute device.
            self._hooks.append(embed.module.register_forward_pre_hook(self._embed_on_cpu_pre))
            self._hooks.append(embed.module.register_forward_hook(self._embed_on_cpu_post))

    def _embed_on_cpu_pre(self, module, args):
        unit = self.units[0]
        for local, full in unit.params.items():
            module._parameters[local] = torch.nn.Parameter(self._materialize(full, "cpu"), requires_grad=False)
        module.to_cpu_buffers = {n: b for n, b in module.named_buffers()}
        for n, b in module.to_cpu_buffers.items():
            module._buffers[n] = b.to("cpu")
        return (args[0].to("cpu"),) + tuple(args[1:])

    def _embed_on_cpu_post(self, module, args, output):
        for n, b in module.to_cpu_buffers.items():
            module._buffers[n] = b
        for local in self.units[0].params:
            p = module._parameters[local]
            module._parameters[local] = torch.nn.Parameter(torch.empty(p.shape, dtype=p.dtype, device="meta"), requires_grad=False)
        return output.to(self.device)

    # ---------------------------------------------------------------------- running
    @torch.no_grad()
    def encode(self, text: str, progress: Callable[[int, int], None] | None = None):
        """(hidden_states: tuple of (1, L, D), attention_mask: (1, L)) for one prompt."""
        input_ids, mask = self.tokenizer.tokenize(text)
        self.load()
        for u in self.units:
            if u.resident:
                self._bring(u)
        self._progress = progress
        try:
            out = self.model(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                output_hidden_states=True,
                use_cache=False,
            )
        finally:
            self._progress = None
            for u in self.units:
                if not u.resident:
                    self._drop(u)
            self._forget_prefetched()
        return tuple(out.hidden_states), mask.to(self.device)

    def offload(self) -> None:
        """Free the compute device: drop every materialized unit (the CPU copies stay)."""
        for u in self.units:
            self._drop(u)
        self._forget_prefetched()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def unload(self) -> None:
        """Forget the module, and the CPU copies too unless another encoder shares them (``store``)."""
        self.offload()
        for h in self._hooks:
            h.remove()
        self._hooks, self.units, self.model = [], [], None
        self.store = WeightStore()
