"""The whole LTX-2 text path, lazily: prompt -> cache or (Gemma 3 -> projector) -> contexts.

``LTXTextEncoder`` is what the ``OPENLTX_TEXT_ENCODER`` socket carries.  Constructing it reads
headers only (the Gemma file / folder and the LTX checkpoint), so bad inputs fail at the loader
node with a clear message while weights stay on disk; ``encode`` then

1. looks the prompt up in the ``PromptCache`` (a hit returns without building any Gemma module);
2. otherwise builds Gemma (``gemma_streaming.GemmaEncoder``: once, weights then stay in CPU
   memory) and the projector (``text_loading.load_text_projector``) and runs them on the device
   that ``placement`` picks, resident or streamed;
3. frees the compute device again and stores the result in the cache.

``placement(weight_bytes, activation_bytes) -> (device, budget_bytes | None)`` comes from the
caller (the node asks ComfyUI's memory manager); the default keeps everything on the CPU.
"""

from __future__ import annotations

import os
from typing import Callable

import torch

from ..model_loaders.checkpoint import read_checkpoint
from ..model_loaders.gemma_loading import GemmaSource, check_width, inspect_gemma
from .gemma_streaming import GemmaEncoder, activation_bytes
from ..model_loaders.gemma_tokenizer import MAX_LENGTH
from .prompt_cache import PromptCache, cache_key, file_identity
from ..model_loaders.text_loading import load_text_projector, text_projector_config

Placement = Callable[[int, int], tuple[torch.device, "int | None"]]


def cpu_placement(weight_bytes: int, activation_bytes: int) -> tuple[torch.device, None]:
    return torch.device("cpu"), None


class LTXTextEncoder:
    """Gemma 3 + the LTX checkpoint's text projection and connectors, with a prompt cache."""

    def __init__(
        self,
        gemma_path: str | os.PathLike,
        ltx_checkpoint: str | os.PathLike,
        *,
        tokenizer: str | os.PathLike | None = None,
        dtype: torch.dtype = torch.bfloat16,
        placement: Placement = cpu_placement,
        cache_dir: str | os.PathLike | None = None,
        max_length: int = MAX_LENGTH,
    ) -> None:
        self.dtype = dtype
        self.placement = placement
        self.max_length = max_length
        self.ltx_info = read_checkpoint(ltx_checkpoint)
        self.projector_config = text_projector_config(self.ltx_info)  # raises when the file has no text weights
        self.source: GemmaSource = inspect_gemma(gemma_path, tokenizer)
        check_width(self.source, self.projector_config.text_hidden_size, self.projector_config.text_hidden_states,
                    what=os.path.basename(self.ltx_info.path))  # fmt: skip
        self.cache = PromptCache(cache_dir) if cache_dir is not None else None
        self.gemma: GemmaEncoder | None = None
        self.projector = None
        self._identity = {
            "gemma": [list(s) for s in self.source.file_stats],
            "tokenizer": file_identity(self.source.tokenizer) if self.source.tokenizer else "embedded",
        }
        self._projector_identity = file_identity(self.ltx_info.path)

    @property
    def gemma_builds(self) -> int:
        """How many Gemma modules this encoder has constructed (0 while every prompt hit the cache)."""
        return self.gemma.builds if self.gemma is not None else 0

    def key(self, prompt: str) -> str:
        return cache_key(self._identity, self._projector_identity, prompt,
                         max_length=self.max_length, dtype=self.dtype)  # fmt: skip

    def encode(
        self, prompt: str, progress: Callable[[int, int], None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(video_context (1, L, C_v), audio_context (1, L, C_a))`` on the CPU, float32."""
        key = self.key(prompt)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return hit
        video, audio = self._run(prompt, progress)
        if self.cache is not None:
            self.cache.put(key, video, audio, description=f"{self.source.path} | {self.ltx_info.path} | {prompt[:200]}")
        return video, audio

    @torch.no_grad()
    def _run(self, prompt: str, progress) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.source.weight_bytes(self.dtype)
        device, budget = self.placement(weights, activation_bytes(self.source, self.dtype, self.max_length))
        device = torch.device(device)
        if self.gemma is None or self.gemma.device != device or self.gemma.budget_bytes != budget:
            tokenizer = self.gemma._tokenizer if self.gemma is not None else None
            if self.gemma is not None:
                self.gemma.unload()
            self.gemma = GemmaEncoder(self.source, dtype=self.dtype, device=device, budget_bytes=budget,
                                      tokenizer=tokenizer, max_length=self.max_length)  # fmt: skip
        try:
            hidden_states, mask = self.gemma.encode(prompt, progress)
        finally:
            self.gemma.offload()  # the compute device is free again for the sampler
        if self.projector is None:
            self.projector = load_text_projector(self.ltx_info, dtype=self.dtype, device="cpu")
        self.projector.to(device)
        try:
            video, audio = self.projector(hidden_states, mask)
        finally:
            self.projector.to("cpu")
        del hidden_states
        return video.float().cpu(), audio.float().cpu()
