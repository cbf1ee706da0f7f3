"""What one transformer forward takes: per-stream inputs and STG / isolation perturbations."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Sequence

import torch


@dataclass(frozen=True)
class StreamInput:
    """One modality (video or audio) of a forward pass.

    Attributes:
        latent: patchified tokens ``(B, T, C_in)``; appended conditioning tokens included.
        timesteps: per-token σ ``(B, T)`` (``denoise_mask · σ``: conditioning tokens sit at 0),
            or ``(B, 1)`` when all tokens of a sample share one σ.
        sigma: the step's σ per sample ``(B,)``; drives the *other* stream's A↔V modulation and
            the LTX-2.3 prompt modulation.
        positions: ``(B, 3, T, 2)`` video (seconds, px, px) or ``(B, 1, T, 2)`` audio (seconds)
            ``[start, end)`` bounds, see ``ltx2.positions``.
        context: text features ``(B, L, C_ctx)`` (caption_channels for 2.0, stream width for 2.3).
        context_mask: optional ``(B, L)`` 1 = valid / 0 = padding (boolean or integer), or a
            float additive bias; ``None`` when every text token is valid (register padding).
        attention_mask: optional ``(B, T, T)`` self-attention strengths in [0, 1]; turned into a
            log-space additive bias (0 → fully masked).
        enabled: ``False`` leaves this stream's tokens untouched by every block.
        keyframe_mask: optional ``(B, T)`` video tokens (1 / True) that receive LTX-2.5's learned
            ``keyframes_abs_pos_embedding`` after the input projection; ignored by models
            without it and for audio.
    """

    latent: torch.Tensor
    timesteps: torch.Tensor
    sigma: torch.Tensor
    positions: torch.Tensor
    context: torch.Tensor
    context_mask: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    enabled: bool = True
    keyframe_mask: torch.Tensor | None = None


class Skip(str, Enum):
    """Which attention a perturbation removes."""

    VIDEO_SELF_ATTN = "video_self_attn"  # STG on video: self-attention output := value
    AUDIO_SELF_ATTN = "audio_self_attn"  # STG on audio
    A2V_CROSS_ATTN = "a2v_cross_attn"  # modality isolation: video stops listening to audio
    V2A_CROSS_ATTN = "v2a_cross_attn"  # modality isolation: audio stops listening to video


@dataclass(frozen=True)
class SkipRule:
    """Skip one kind of attention in ``blocks`` (``None``: every block)."""

    kind: Skip
    blocks: frozenset[int] | None = None

    def hits(self, kind: Skip, block: int) -> bool:
        return self.kind is kind and (self.blocks is None or block in self.blocks)


@dataclass(frozen=True)
class Perturbations:
    """Per batch item, the attentions to skip.  ``per_sample[b]`` is a tuple of rules."""

    per_sample: tuple[tuple[SkipRule, ...], ...]

    @staticmethod
    def none(batch: int) -> "Perturbations":
        return Perturbations(tuple(() for _ in range(batch)))

    @staticmethod
    def build(batch: int, rules: Iterable[SkipRule], items: Sequence[int] | None = None) -> "Perturbations":
        """The same ``rules`` for batch ``items`` (all when ``None``), nothing for the rest."""
        rules = tuple(rules)
        chosen = set(range(batch)) if items is None else set(items)
        return Perturbations(tuple(rules if b in chosen else () for b in range(batch)))

    def _hits(self, kind: Skip, block: int) -> list[bool]:
        return [any(r.hits(kind, block) for r in rules) for rules in self.per_sample]

    def state(self, kind: Skip, block: int) -> str:
        """``"none"``, ``"all"`` or ``"some"`` batch items skip ``kind`` in ``block``."""
        hits = self._hits(kind, block)
        if all(hits):
            return "all"
        return "some" if any(hits) else "none"

    def keep_mask(self, kind: Skip, block: int, like: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 1)`` with 0 for items that skip ``kind`` in ``block``, 1 otherwise."""
        keep = [0.0 if h else 1.0 for h in self._hits(kind, block)]
        return torch.tensor(keep, dtype=like.dtype, device=like.device).view(-1, 1, 1)
