"""AdaLN modulation computed once per distinct σ and mapped onto tokens.

A sample has at most a few distinct per-token σ values (σ for noisy tokens, 0 or
``(1 - strength)·σ`` for conditioning tokens), so running the ``D → k·D`` AdaLN projection per
token (as the reference does: ~1.5 TFLOP per 19B forward at 768×512) is wasted work.  Here the
projection runs on the distinct values only; each block then adds its table to those few rows
and broadcasts (one σ per sample) or gathers (several) onto the tokens.
"""

from __future__ import annotations

import torch

from .attention import AdaLNSingle


class Modulation:
    """AdaLN outputs for a ``(B, T)`` grid of σ, stored per distinct value.

    ``values``: ``(N, k·D)`` AdaLN outputs; ``index``: ``None`` when ``values`` has one row per
    sample (``N == B``, broadcast over tokens) else ``(B, T)`` long indices into ``values``.
    """

    def __init__(self, values: torch.Tensor, index: torch.Tensor | None, batch: int) -> None:
        self.values, self.index, self.batch = values, index, batch

    @classmethod
    def from_timesteps(
        cls, adaln: AdaLNSingle, timesteps: torch.Tensor, scale: float, dtype: torch.dtype
    ) -> tuple["Modulation", "Modulation"]:
        """Run ``adaln`` on the distinct scaled σ of ``timesteps`` ``(B, T)`` or ``(B, 1)``.

        Returns the modulation (``k·D`` per token) and the embedded timestep (``D`` per token).
        """
        b = timesteps.shape[0]
        t = timesteps.reshape(b, -1) * scale
        if t.shape[1] == 1 or bool((t == t[:, :1]).all()):
            mod, emb = adaln(t[:, 0], dtype)
            return cls(mod, None, b), cls(emb, None, b)
        distinct, index = torch.unique(t.flatten(), return_inverse=True)
        mod, emb = adaln(distinct, dtype)
        index = index.view(b, -1)
        return cls(mod, index, b), cls(emb, index, b)

    @classmethod
    def per_sample(cls, adaln: AdaLNSingle, t: torch.Tensor, dtype: torch.dtype) -> "Modulation":
        """Modulation from one already-scaled σ per sample ``(B,)``."""
        mod, _ = adaln(t.reshape(-1), dtype)
        return cls(mod, None, mod.shape[0])

    def rows(self, table: torch.Tensor, start: int, stop: int) -> tuple[torch.Tensor, ...]:
        """``table[start:stop] + values[:, start:stop]`` mapped onto tokens.

        Args:
            table: a block's ``(k, D)`` learned table.
        Returns:
            ``stop - start`` tensors of shape ``(B, 1, D)`` or ``(B, T, D)``.
        """
        k, d = table.shape[0], table.shape[1]
        vals = self.values.view(-1, k, d)[:, start:stop]
        summed = table[start:stop].to(device=vals.device, dtype=vals.dtype)[None] + vals  # (N, r, D)
        if self.index is None:
            summed = summed.unsqueeze(1)  # (B, 1, r, D)
        else:
            summed = summed[self.index]  # (B, T, r, D)
        return summed.unbind(2)

    def plus_table(self, table: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``table[i] + values`` for every row of ``table`` (the output head's shift/scale).

        ``values`` is the ``D``-wide embedded timestep here; returns ``(B, 1|T, D)`` tensors.
        """
        vals = self.values  # (N, D)
        summed = table.to(device=vals.device, dtype=vals.dtype)[None] + vals[:, None]  # (N, r, D)
        summed = summed.unsqueeze(1) if self.index is None else summed[self.index]
        return summed.unbind(2)
