"""Model conds and per-token masks of the LTX-2 MODEL (used by ``host.model``).

* ``CONDAppendedTokens``: the ``openltx_keyframes`` / ``openltx_reference`` conds (tuples of
  ``samplers.conditioning.Keyframe`` / ``ReferenceVideo``), batched across cond / uncond.
* ``token_masks``: per-token denoise masks from ``transformer_options["openltx_denoise_mask"]``
  (a guider's ``[video_mask, audio_mask]``) or the older packed cond hook.
"""

from __future__ import annotations

import dataclasses
import math

import torch

import comfy.conds
import comfy.utils

from ..samplers import conditioning as C

DENOISE_MASK_KEY = "openltx_denoise_mask"
KEYFRAMES_KEY = "openltx_keyframes"
REFERENCE_KEY = "openltx_reference"


def _split_mask(mask: torch.Tensor | None, video, audio) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The ``openltx_denoise_mask`` hook -> per-token masks ``(B, T_v)`` / ``(B, T_a)``."""
    if mask is None:
        return None, None
    streams = [s for s in (video, audio) if s is not None]
    if mask.ndim == 3 and len(streams) > 1:  # packed (B, 1|C, N) like the sampler's latent
        b = mask.shape[0]
        flat = mask.reshape(b, -1)
        parts, start = [], 0
        for s in streams:
            n = math.prod(s.shape[1:])
            parts.append(flat[:, start : start + n].reshape(b, *s.shape[1:]))
            start += n
        if start != flat.shape[1]:
            raise ValueError(f"openltx_denoise_mask has {flat.shape[1]} elements per sample, the latent {start}")
        masks = parts
    else:
        masks = [mask]
    out = []
    for s, m in zip(streams, masks):
        m = m[:, :1].expand(m.shape[0], 1, *s.shape[2:])  # one value per token: channel 0
        # video (B, 1, F, H, W) -> (B, F*H*W); audio (B, 1, T, M) -> (B, T)
        out.append(m.reshape(m.shape[0], -1) if s.ndim == 5 else m[:, 0, :, 0])
    it = iter(out)
    return (next(it) if video is not None else None), (next(it) if audio is not None else None)




def token_masks(transformer_options, cond_mask, video, audio, batch):
    """Per-token masks ``(B, T_v)`` / ``(B, T_a)`` (or ``None``) from the guider's
    ``transformer_options["openltx_denoise_mask"]`` (preferred) or the cond hook."""
    value = transformer_options.get(DENOISE_MASK_KEY) if transformer_options else None
    if value is None:
        return _split_mask(cond_mask, video, audio)
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise TypeError(f"transformer_options[{DENOISE_MASK_KEY!r}] must be [video_mask | None, audio_mask | None]")

    def tokens(mask, stream, kind):
        if mask is None or stream is None:
            return None
        expected = (stream.shape[2:]) if kind == "video" else (stream.shape[2],)
        grid = mask.shape[2:] if kind == "video" else mask.shape[2:3]
        if mask.ndim != stream.ndim or tuple(grid) != tuple(expected):
            raise ValueError(
                f"the {kind} denoise mask has shape {tuple(mask.shape)}, the {kind} latent {tuple(stream.shape)}: "
                f"expected (B, 1, {', '.join(map(str, expected))}{', 1' if kind == 'audio' else ''})"
            )
        mask = comfy.utils.repeat_to_batch_size(mask[:, :1], batch)
        return mask.reshape(batch, -1) if kind == "video" else mask[:, 0, :, 0]

    return tokens(value[0], video, "video"), tokens(value[1], audio, "audio")


class CONDAppendedTokens(comfy.conds.CONDRegular):
    """A tuple of ``Keyframe`` / ``ReferenceVideo`` items as a model cond.

    Batches like ``CONDRegular`` (each item's tensors repeated to the batch, concatenated
    across cond / uncond) when both sides carry the same groups with the same settings.
    """

    def process_cond(self, batch_size, **kwargs):
        return self._copy_with(tuple(C.repeat_item(i, batch_size) for i in self.cond))

    @staticmethod
    def _signature(item):
        fields = []
        for name in ("frame_index", "strength", "downscale_factor", "frame_offset"):
            fields.append(getattr(item, name, None))
        for name in ("latent", "noise", "attention"):
            t = getattr(item, name, None)
            fields.append(None if t is None else (tuple(t.shape[1:]), t.device))
        return type(item), tuple(fields)

    def can_concat(self, other):
        return len(self.cond) == len(other.cond) and all(
            self._signature(a) == self._signature(b) for a, b in zip(self.cond, other.cond)
        )

    def concat(self, others):
        out = []
        for i, item in enumerate(self.cond):
            fields = {}
            for name in ("latent", "noise", "attention"):
                if getattr(item, name, None) is not None:
                    fields[name] = torch.cat([getattr(item, name)] + [getattr(o.cond[i], name) for o in others])
            out.append(dataclasses.replace(item, **fields))
        return tuple(out)

    def size(self):
        # for ComfyUI's memory estimate: (1, C, appended tokens)
        tokens = sum(math.prod(i.latent.shape[2:]) for i in self.cond)
        return [1, self.cond[0].latent.shape[1], tokens]
