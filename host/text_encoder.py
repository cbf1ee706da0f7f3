"""The whole LTX-2 text path, lazily: prompt -> cache or (Gemma 3 -> projector) -> contexts.

``LTXTextEncoder`` is what the ``OPENLTX_TEXT_ENCODER`` socket carries.  Constructing it reads
headers only (the Gemma file / folder, the LTX checkpoint and an optional extra file that holds
text parts; ``text_loading.find_text_parts`` picks the projection and connectors from them), so
bad inputs fail at the loader node with a clear message while weights stay on disk.
``with_lora`` returns a copy with a Gemma LoRA added (the LoRA node), sharing the CPU weights.
``encode`` then

1. looks the prompt up in the ``PromptCache`` (a hit returns without building any Gemma module);
2. otherwise builds Gemma (``gemma_streaming.GemmaEncoder``: once, weights then stay in CPU
   memory) and the projector (``text_loading.load_text_projector``) and runs them on the device
   that ``placement`` picks, resident or streamed;
3. frees the compute device again and stores the result in the cache.

``placement(weight_bytes, activation_bytes) -> (device, budget_bytes | None)`` comes from the
caller (the node asks ComfyUI's memory manager); the default keeps everything on the CPU.
"""

from __future__ import annotations

import copy
import os
from typing import Callable, Sequence

import torch

from ..model_loaders.gemma_loading import GemmaSource, inspect_gemma, param_shape
from ..model_loaders.gemma_lora import GemmaLoraSpec, inspect_gemma_lora
from ..model_loaders.gemma_tokenizer import MAX_LENGTH
from ..model_loaders.text_loading import TextParts, find_text_parts, load_text_projector
from .gemma_streaming import GemmaEncoder, WeightStore, activation_bytes
from .prompt_cache import PromptCache, cache_key, file_identity

Placement = Callable[[int, int], tuple[torch.device, "int | None"]]


def cpu_placement(weight_bytes: int, activation_bytes: int) -> tuple[torch.device, None]:
    return torch.device("cpu"), None


class LTXTextEncoder:
    """Gemma 3 + the LTX text projection and connectors (from whichever files hold them), with a prompt cache.

    Args:
        gemma_path: a Gemma 3 file or Hugging Face folder (it may also hold the text projection).
        ltx_checkpoint: the LTX file picked with it (bundle, transformer-only, ...).
        extra_file: another file with text parts (Kijai's connector / projection files, unsloth's
            connector file, ...); None when there is none.
        loras: Gemma LoRAs as ``(GemmaLoraSpec, strength)``; ``with_lora`` adds one.
    """

    def __init__(
        self,
        gemma_path: str | os.PathLike,
        ltx_checkpoint: str | os.PathLike | None,
        *,
        extra_file: str | os.PathLike | None = None,
        tokenizer: str | os.PathLike | None = None,
        dtype: torch.dtype = torch.bfloat16,
        placement: Placement = cpu_placement,
        cache_dir: str | os.PathLike | None = None,
        max_length: int = MAX_LENGTH,
        loras: Sequence[tuple[GemmaLoraSpec, float]] = (),
    ) -> None:
        self.dtype = dtype
        self.placement = placement
        self.max_length = max_length
        self.source: GemmaSource = inspect_gemma(gemma_path, tokenizer)
        sources = [(ltx_checkpoint, "ltx_checkpoint"), (extra_file, "extra_file"), (gemma_path, "text_encoder")]
        self.parts: TextParts = find_text_parts(sources, text_hidden_size=self.source.hidden_size,
                                                text_hidden_states=self.source.num_hidden_states)  # fmt: skip
        self.projector_config = self.parts.config
        self.cache = PromptCache(cache_dir) if cache_dir is not None else None
        self.loras = list(loras)
        self.gemma: GemmaEncoder | None = None
        self._shared = {"store": WeightStore(), "projector": None}  # shared with with_lora() copies
        self._gemma_identity = {
            "gemma": [list(s) for s in self.source.file_stats],
            "tokenizer": file_identity(self.source.tokenizer) if self.source.tokenizer else "embedded",
        }

    # ------------------------------------------------------------------ LoRAs
    def with_lora(self, path: str | os.PathLike, strength: float) -> "LTXTextEncoder":
        """A new encoder with one more Gemma LoRA; this one is unchanged, CPU weights are shared.

        The LoRA's keys and shapes are checked now (header only); its tensors are read when
        Gemma is next built.
        """
        spec = inspect_gemma_lora(path, lambda name: param_shape(self.source, name))
        other = copy.copy(self)
        other.loras = self.loras + [(spec, float(strength))]
        other.gemma = None
        return other

    @property
    def _identity(self) -> dict:
        return {**self._gemma_identity, "loras": [[spec.identity(), strength] for spec, strength in self.loras]}

    @property
    def _projector_identity(self):
        return self.parts.identity()

    @property
    def projector(self):
        return self._shared["projector"]

    @property
    def gemma_builds(self) -> int:
        """How many Gemma modules this encoder has constructed (0 while every prompt hit the cache)."""
        return self.gemma.builds if self.gemma is not None else 0

    def key(self, prompt: str) -> str:
        return cache_key(self._identity, self._projector_identity, prompt,
                         max_length=self.max_length, dtype=self.dtype)  # fmt: skip

    def describe(self) -> str:
        files = " + ".join(f.path for f in self.parts.used_files)
        loras = "".join(f" + LoRA {spec.name} x {strength:g}" for spec, strength in self.loras)
        return f"{self.source.path}{loras} | {files}"

    def encode(
        self, prompt: str, progress: Callable[[int, int], None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(video_context (1, L, C_v), audio_context (1, L, C_a))`` on the CPU, float32."""
        key = self.key(prompt)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit
        video, audio = self._run(prompt, progress)
        if self.cache is not None:
            self.cache.put(key, video, audio, description=f"{self.describe()} | {prompt[:200]}")
        return video, audio

    @torch.no_grad()
    def _run(self, prompt: str, progress) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.source.weight_bytes(self.dtype)
        device, budget = self.placement(weights, activation_bytes(self.source, self.dtype, self.max_length))
        device = torch.device(device)
        if self.gemma is None or self.gemma.device != device or self.gemma.budget_bytes != budget:
            tokenizer = self.gemma._tokenizer if self.gemma is not None else None
            if self.gemma is not None:
                self.gemma.offload()
            self.gemma = GemmaEncoder(self.source, dtype=self.dtype, device=device, budget_bytes=budget,
                                      tokenizer=tokenizer, max_length=self.max_length, loras=self.loras,
                                      store=self._shared["store"])  # fmt: skip
        try:
            hidden_states, mask = self.gemma.encode(prompt, progress)
        finally:
            self.gemma.offload()  # the compute device is free again for the sampler
        if self._shared["projector"] is None:
            self._shared["projector"] = load_text_projector(self.parts, dtype=self.dtype, device="cpu")
        projector = self._shared["projector"]
        projector.to(device)
        try:
            video, audio = projector(hidden_states, mask)
        finally:
            projector.to("cpu")
        del hidden_states
        return video.float().cpu(), audio.float().cpu()
