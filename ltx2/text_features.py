"""Gemma hidden states -> LTX-2 text features (the "text embedding projection").

The text encoder hands over *every* hidden state of Gemma (the embedding output and the
output of each layer: 49 tensors of ``(B, L, 3840)`` for Gemma-3-12B) and the tokenizer's
attention mask ``(B, L)`` (1 = token, 0 = padding; the LTX tokenizer pads on the left).
Each hidden state is normalised on its own, the results are interleaved into one
``(B, L, D * N)`` tensor (channel-major, hidden-state index fastest: the order in which the
checkpoint's projection weight expects its 188,160 inputs) and projected:

* ``FeatureExtractorV1`` (LTX-2.0): per sample and per hidden state, the valid tokens are
  centred on their mean and scaled by ``8 / (max - min)`` (statistics over all valid tokens
  and channels); ``aggregate_embed`` (no bias) maps to ``caption_channels``; the same
  features feed the video and the audio connector.
* ``FeatureExtractorV2`` (LTX-2.3): every token of every hidden state is RMS-normalised over
  its channels; two biased projections map to the video and the audio stream widths, each
  input scaled by ``sqrt(out_width / D)`` first.

Padded positions are zeroed in the flattened features either way (they are replaced by the
connectors' registers afterwards).  The statistics are computed in float32 one hidden state
at a time and written into a buffer of the module's dtype, so the peak memory is the
flattened buffer plus one hidden state, never a float32 copy of all of them.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch

from .config import ConfigError
from .ops import resolve

NORM_EPS = 1e-6  # both normalisations (ltx-core hard-codes it; the header has no key for it)
V1_SCALE = 8.0  # V1 maps each hidden state's valid range onto a width of 8

# The 2.3 header announces the dual projection with these keys, and only these values are a
# model that exists (ltx-core refuses any other combination as well).
V2_HEADER_VALUES: Mapping[str, bool] = {
    "caption_proj_before_connector": True,
    "caption_projection_first_linear": False,
    "caption_proj_input_norm": False,
    "caption_projection_second_linear": False,
}


def uses_v2_features(transformer: Mapping, source: str = "checkpoint") -> bool:
    """True for the 2.3 feature extractor, False for 2.0; a partial or unknown 2.3 header is an error."""
    present = [k for k in V2_HEADER_VALUES if k in transformer]
    if not present:
        return False
    missing = [k for k in V2_HEADER_VALUES if k not in transformer]
    if missing:
        raise ConfigError(
            f"{source}: config.transformer has {present} but lacks {missing}; the LTX-2.3 text projection is "
            "described by all four keys. Use the official file, unmodified."
        )
    wrong = {k: transformer[k] for k, v in V2_HEADER_VALUES.items() if transformer[k] != v}
    if wrong:
        raise ConfigError(
            f"{source}: config.transformer sets {wrong}; the only text projection OpenLTX knows with these keys "
            f"is LTX-2.3's ({dict(V2_HEADER_VALUES)}). This file describes an unsupported model variant."
        )
    return True


# ------------------------------------------------------------------------------ inputs
def valid_token_mask(attention_mask: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """The tokenizer mask ``(B, L)`` of 0/1 (or bool) as a bool tensor; anything else is an error."""
    if attention_mask.shape != (batch, length):
        raise ValueError(
            f"attention_mask must be (batch, tokens) = {(batch, length)} like the hidden states, "
            f"got {tuple(attention_mask.shape)}."
        )
    if attention_mask.dtype != torch.bool:
        if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
            raise ValueError(
                "attention_mask must hold 1 for tokens and 0 for padding (the tokenizer's mask); it holds other "
                "values (an additive 0/-inf attention bias is not accepted here)."
            )
        attention_mask = attention_mask != 0
    return attention_mask


def check_hidden_states(hidden_states: Sequence[torch.Tensor], count: int, width: int) -> tuple[int, int]:
    """``(B, L)`` of ``count`` hidden states of shape ``(B, L, width)``; a mismatch names what was found."""
    if isinstance(hidden_states, torch.Tensor) or len(hidden_states) != count:
        found = "one tensor" if isinstance(hidden_states, torch.Tensor) else f"{len(hidden_states)}"
        raise ValueError(
            f"expected all {count} hidden states of the text encoder (embedding output + every layer), got "
            f"{found}. Run the encoder with output_hidden_states=True and pass the whole tuple."
        )
    first = hidden_states[0]
    if first.ndim != 3 or first.shape[-1] != width:
        raise ValueError(
            f"expected hidden states of shape (batch, tokens, {width}), got {tuple(first.shape)}: the text encoder "
            f"does not have the width this LTX checkpoint was trained with ({width})."
        )
    for i, h in enumerate(hidden_states):
        if h.shape != first.shape:
            raise ValueError(f"hidden state {i} has shape {tuple(h.shape)}, hidden state 0 has {tuple(first.shape)}.")
    return first.shape[0], first.shape[1]


# ------------------------------------------------------------------------------ normalisations
def range_norm(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """V1: ``8 (x - mean) / (max - min + eps)`` with statistics over each sample's valid tokens.

    Args:
        x: one hidden state ``(B, L, D)`` (float32).
        valid: ``(B, L)`` bool.
    Returns:
        ``(B, L, D)``, zero at padded positions (also where the encoder left NaN there).
    """
    pad = ~valid.unsqueeze(-1)  # (B, L, 1)
    count = valid.sum(dim=1).to(x.dtype) * x.shape[-1]  # valid elements per sample
    mean = x.masked_fill(pad, 0.0).sum(dim=(1, 2)) / (count + NORM_EPS)
    high = x.masked_fill(pad, float("-inf")).amax(dim=(1, 2))
    low = x.masked_fill(pad, float("inf")).amin(dim=(1, 2))
    scale = (high - low + NORM_EPS).view(-1, 1, 1)
    return (V1_SCALE * (x - mean.view(-1, 1, 1)) / scale).masked_fill(pad, 0.0)


def token_rms_norm(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """V2: each token divided by its RMS over the channels; ``(B, L, D)`` -> ``(B, L, D)``, padding zeroed."""
    normed = x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + NORM_EPS)
    return torch.where(valid.unsqueeze(-1), normed, torch.zeros_like(normed))


def normalise_and_flatten(
    hidden_states: Sequence[torch.Tensor],
    valid: torch.Tensor,
    norm: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    dtype: torch.dtype,
) -> torch.Tensor:
    """All hidden states, each normalised by ``norm``, as one ``(B, L, D * N)`` tensor of ``dtype``.

    Channel ``d`` of hidden state ``n`` lands at ``d * N + n`` (the checkpoint's input order).
    Work happens on the first hidden state's device; the others are moved there one at a time.
    """
    b, t, d = hidden_states[0].shape
    device = hidden_states[0].device
    valid = valid.to(device)
    out = torch.empty(b, t, d, len(hidden_states), dtype=dtype, device=device)
    for i, h in enumerate(hidden_states):
        out[..., i] = norm(h.to(device=device, dtype=torch.float32), valid).to(dtype)
    return out.view(b, t, d * len(hidden_states))


# ------------------------------------------------------------------------------ modules
class FeatureExtractorV1(torch.nn.Module):
    """LTX-2.0: range-normalised hidden states -> ``aggregate_embed`` (no bias), shared by both streams.

    Weight: ``aggregate_embed.weight`` ``(out_features, hidden_size * num_hidden_states)``.
    """

    def __init__(
        self,
        hidden_size: int,
        num_hidden_states: int,
        out_features: int,
        *,
        operations=None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        ops = resolve(operations)
        self.hidden_size, self.num_hidden_states = hidden_size, num_hidden_states
        self.dtype = dtype or torch.get_default_dtype()
        flat = hidden_size * num_hidden_states
        self.aggregate_embed = ops.Linear(flat, out_features, bias=False, dtype=dtype, device=device)

    def forward(
        self, hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``N x (B, L, D)`` + mask ``(B, L)`` -> (video features, audio features), the same ``(B, L, C)`` tensor.

        ``dtype``: compute dtype of the projection (default ``self.dtype``).
        """
        b, t = check_hidden_states(hidden_states, self.num_hidden_states, self.hidden_size)
        valid = valid_token_mask(attention_mask, b, t)
        flat = normalise_and_flatten(hidden_states, valid, range_norm, dtype or self.dtype)
        features = self.aggregate_embed(flat)
        return features, features


class FeatureExtractorV2(torch.nn.Module):
    """LTX-2.3: per-token RMS-normalised hidden states -> two biased projections (video, audio widths).

    Weights: ``{video,audio}_aggregate_embed.{weight,bias}``.
    """

    def __init__(
        self,
        hidden_size: int,
        num_hidden_states: int,
        video_features: int,
        audio_features: int,
        *,
        operations=None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        ops = resolve(operations)
        self.hidden_size, self.num_hidden_states = hidden_size, num_hidden_states
        self.dtype = dtype or torch.get_default_dtype()
        flat = hidden_size * num_hidden_states
        kw = {"dtype": dtype, "device": device}
        self.video_aggregate_embed = ops.Linear(flat, video_features, bias=True, **kw)
        self.audio_aggregate_embed = ops.Linear(flat, audio_features, bias=True, **kw)
        # The normalised input has unit RMS per token and hidden state; rescaling it by
        # sqrt(out / D) is how LTX-2.3 was trained (the factor is folded into neither weight).
        self.video_scale = math.sqrt(video_features / hidden_size)
        self.audio_scale = math.sqrt(audio_features / hidden_size)

    def forward(
        self, hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``N x (B, L, D)`` + mask ``(B, L)`` -> video features ``(B, L, C_v)``, audio features ``(B, L, C_a)``.

        ``dtype``: compute dtype of the projections (default ``self.dtype``).
        """
        b, t = check_hidden_states(hidden_states, self.num_hidden_states, self.hidden_size)
        valid = valid_token_mask(attention_mask, b, t)
        flat = normalise_and_flatten(hidden_states, valid, token_rms_norm, dtype or self.dtype)
        video = self.video_aggregate_embed(flat * self.video_scale)
        audio = self.audio_aggregate_embed(flat * self.audio_scale)
        return video, audio
