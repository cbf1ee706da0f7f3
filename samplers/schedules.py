"""Sigma schedules for LTX-2 (pure torch, no ComfyUI imports).

A schedule is a 1-D float32 tensor of ``steps + 1`` noise levels σ, falling from 1.0 (pure
noise) towards 0.0 (clean latent); a sampler takes one step per adjacent pair.

* ``ltx2_sigmas``       the LTX-2 scheduler: a uniform grid, shifted towards high noise by an
                        amount that grows with the latent's token count, then stretched so the
                        last non-zero σ lands on ``terminal``.  Values equal ltx-core's
                        ``LTX2Scheduler`` bit for bit (same float32 arithmetic).
* ``DISTILLED_STAGE1`` / ``DISTILLED_STAGE2``  the fixed lists the distilled model was trained
                        for (8 steps at full noise; 3 refinement steps from σ = 0.909375);
                        ``DISTILLED_STAGE2_LTX23`` the LTX-2.3 workflows' stage 2 (from 0.85).
                        LTX-2.5 uses the same lists (``LTX25_DISTILLED_STAGE1/2``).
* ``parse_sigmas``      a user's comma-separated list, validated with messages that say what
                        is wrong and where.
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import torch

# The shift is a linear function of the token count through two anchor points:
# 1024 tokens -> BASE_SHIFT, 4096 tokens -> MAX_SHIFT (extrapolated outside that range).
BASE_SHIFT_TOKENS = 1024
MAX_SHIFT_TOKENS = 4096
BASE_SHIFT = 0.95
MAX_SHIFT = 2.05
DEFAULT_TOKENS = MAX_SHIFT_TOKENS  # what the reference uses when no latent is given (shift 2.05)
DEFAULT_TERMINAL = 0.1

DISTILLED_STAGE1 = (1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0)
DISTILLED_STAGE2 = (0.909375, 0.725, 0.421875, 0.0)
# Stage 2 of Lightricks' LTX-2.3 ComfyUI workflows (and Comfy-Org's LTX-2.3 templates): the
# upscaled latent is re-noised to 0.85 only.  Their ManualSigmas text is "0.85, 0.7250, 0.4219,
# 0.0": 0.4219 (not 0.421875) is what those workflows run, so it is kept as published.
DISTILLED_STAGE2_LTX23 = (0.85, 0.725, 0.4219, 0.0)
DISTILLED_STAGES = {
    "stage1 (8 steps)": DISTILLED_STAGE1,
    "stage2 (3 steps)": DISTILLED_STAGE2,
    "stage2 LTX-2.3 (3 steps from 0.85)": DISTILLED_STAGE2_LTX23,
}

# LTX-2.5 distilled: the same two lists (8 steps at half resolution without CFG, x2 latent upscale,
# 3 steps from 0.909375), as diffusers 0.42.1 ships them (``pipelines/ltx2/utils.py``, without the
# final 0 its scheduler appends).  Named per version so a 2.5 workflow never depends on 2.3's.
LTX25_DISTILLED_STAGE1 = DISTILLED_STAGE1
LTX25_DISTILLED_STAGE2 = DISTILLED_STAGE2
DISTILLED_BY_VERSION = {
    "2.0": DISTILLED_STAGES,
    "2.3": DISTILLED_STAGES,
    "2.5": {"stage1 (8 steps)": LTX25_DISTILLED_STAGE1, "stage2 (3 steps)": LTX25_DISTILLED_STAGE2},
}
LTX25_IMAGE_CRF = 18  # H.264 CRF of i2v conditioning images for 2.5 (33 before); diffusers LTX2_5_IMAGE_CRF
LTX25_FRAME_RATE = 24.0  # the 2.5 pipelines' default frame rate (also the duration head's)


def token_count(latent_shape: Sequence[int]) -> int:
    """Tokens of a video latent ``(B, C, F', H', W')``: F'·H'·W' (the reference's
    ``prod(shape[2:])``)."""
    if len(latent_shape) != 5:
        raise ValueError(
            f"the LTX-2 scheduler needs a video latent (B, C, F', H', W') to count tokens; "
            f"got a tensor of shape {tuple(latent_shape)}"
        )
    return math.prod(latent_shape[2:])


def shift_for_tokens(tokens: int, base_shift: float = BASE_SHIFT, max_shift: float = MAX_SHIFT) -> float:
    """The time shift s for a token count: 0.95 at 1024 tokens, 2.05 at 4096, linear between
    (and beyond: 6144 tokens give 2.78)."""
    slope = (max_shift - base_shift) / (MAX_SHIFT_TOKENS - BASE_SHIFT_TOKENS)
    return tokens * slope + (base_shift - slope * BASE_SHIFT_TOKENS)


def ltx2_sigmas(
    steps: int,
    tokens: int | None = None,
    terminal: float = DEFAULT_TERMINAL,
    stretch: bool = True,
    base_shift: float = BASE_SHIFT,
    max_shift: float = MAX_SHIFT,
) -> torch.Tensor:
    """The LTX-2 schedule, shape ``(steps + 1,)`` float32, ending in 0.

    ``tokens``: the video token count (``token_count(latent.shape)``); ``None`` means 4096,
    i.e. shift 2.05, as the reference pipelines use unless they pass a latent.
    ``stretch``: rescale 1 − σ so the last non-zero σ equals ``terminal``.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if stretch and steps < 2:
        # One step leaves a single non-zero σ, which the stretch would move to `terminal`
        # (or to NaN when it is exactly 1): the sampler would start from a barely noisy level.
        raise ValueError("stretch needs at least 2 steps (one step would start at the terminal sigma); "
                         "use more steps or turn stretch off")
    if stretch and not 0.0 <= terminal < 1.0:
        raise ValueError(f"terminal must be in [0, 1) to stretch the schedule, got {terminal}")
    shift = shift_for_tokens(DEFAULT_TOKENS if tokens is None else tokens, base_shift, max_shift)
    # Kept in float32 and in the reference's order of operations so the values match exactly.
    grid = torch.linspace(1.0, 0.0, steps + 1)
    e = math.exp(shift)
    sigmas = torch.where(grid != 0, e / (e + (1 / grid - 1)), 0)
    if stretch:
        nonzero = sigmas != 0
        one_minus = 1.0 - sigmas[nonzero]
        scale = one_minus[-1] / (1.0 - terminal)
        sigmas[nonzero] = 1.0 - one_minus / scale
    return sigmas.to(torch.float32)


def distilled_sigmas(stage: str, version: str | None = None) -> torch.Tensor:
    """The distilled model's fixed schedule for ``stage`` (a key of ``DISTILLED_STAGES``).

    ``version`` ("2.0", "2.3", "2.5"; default: the 2.3 lists) picks the model family's lists.
    """
    stages = DISTILLED_STAGES if version is None else DISTILLED_BY_VERSION.get(version)
    if stages is None:
        raise ValueError(f"unknown model version {version!r}; expected one of {list(DISTILLED_BY_VERSION)}")
    if stage not in stages:
        raise ValueError(f"unknown distilled stage {stage!r}; expected one of {list(stages)}")
    return torch.tensor(stages[stage], dtype=torch.float32)


_SPLIT = re.compile(r"[,\s]+")


def parse_sigmas(text: str) -> torch.Tensor:
    """``"1.0, 0.9, 0.5, 0"`` -> float32 tensor.

    Rules (each broken one is reported with the offending entry and its position): at least two
    values, every value a finite number in [0, 1], strictly decreasing.  Commas, spaces and
    newlines all separate values; a trailing comma is fine.
    """
    items = [t for t in _SPLIT.split(text.strip()) if t]
    values: list[float] = []
    for pos, item in enumerate(items, start=1):
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"sigma #{pos} {item!r} is not a number; write decimals like 0.909375") from None
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"sigma #{pos} = {item} is outside [0, 1]; LTX-2 noise levels run from 1 (noise) to 0")
        if values and value >= values[-1]:
            raise ValueError(
                f"sigma #{pos} = {item} is not below the previous value {values[-1]}; "
                "sigmas must fall strictly, e.g. 1.0, 0.725, 0.421875, 0"
            )
        values.append(value)
    if len(values) < 2:
        raise ValueError(
            f"need at least two sigmas (a start and an end), got {len(values)} from {text!r}; "
            "e.g. 0.909375, 0.725, 0.421875, 0"
        )
    return torch.tensor(values, dtype=torch.float32)
