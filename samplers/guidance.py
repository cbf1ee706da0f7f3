"""Multimodal guidance for LTX-2: CFG, STG, modality isolation and rescale, per stream.

LTX-2 guides the **x0 predictions** of the video and the audio stream separately, each with
its own parameters (LTX2_SPEC §6.3)::

    pred = c + (cfg − 1)(c − u) + stg (c − p) + (mod − 1)(c − i)
    if rescale ≠ 0:  pred *= rescale · std(c) / std(pred) + (1 − rescale)

with ``c`` the conditioned prediction, ``u`` the one under the negative prompt, ``p`` the one
with the self-attention of the ``stg_blocks`` skipped (STG) and ``i`` the one with both
audio↔video cross-attentions skipped in every block (modality isolation).  ``std`` is the
unbiased standard deviation over the whole stream tensor (all batch items together).

Each term needs its own transformer pass; a step runs only the passes some stream needs
(``plan_step``).  ``skip_step = k`` reuses a stream's last guided x0 on steps where
``step % (k + 1) ≠ 0``; when both streams skip, the step runs no pass at all.

Pure torch (plus ``ltx2.inputs`` for the perturbation rules): no ComfyUI here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

try:
    from ..ltx2.inputs import Skip, SkipRule
except ImportError:  # imported as a top-level package (tools / benchmarks)
    from ltx2.inputs import Skip, SkipRule


@dataclass(frozen=True)
class StreamGuidance:
    """Guidance parameters of one stream (video or audio).

    Attributes:
        cfg: classifier-free guidance scale; 1 disables it (no negative-prompt pass).
        stg: spatio-temporal guidance scale; 0 disables it (no perturbed pass).
        stg_blocks: transformer blocks whose self-attention the perturbed pass skips.
        rescale: 0 … 1, how far the guided x0 is pulled back to the std of the conditioned x0.
        modality_scale: audio↔video guidance scale; 1 disables it (no isolated pass).
        skip_step: reuse the last guided x0 on ``skip_step`` out of every ``skip_step + 1`` steps.
    """

    cfg: float = 1.0
    stg: float = 0.0
    stg_blocks: tuple[int, ...] = ()
    rescale: float = 0.0
    modality_scale: float = 1.0
    skip_step: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stg_blocks", tuple(int(b) for b in self.stg_blocks))
        if self.skip_step < 0:
            raise ValueError(f"skip_step must be >= 0, got {self.skip_step}")
        if any(b < 0 for b in self.stg_blocks):
            raise ValueError(f"stg_blocks must be block indices >= 0, got {list(self.stg_blocks)}")

    # Which passes this stream needs.  ``isclose`` as in the reference: a scale a rounding
    # error away from neutral runs no pass (its term then multiplies a zero prediction).
    @property
    def needs_uncond(self) -> bool:
        return not math.isclose(self.cfg, 1.0)

    @property
    def needs_perturbed(self) -> bool:
        return not math.isclose(self.stg, 0.0)

    @property
    def needs_isolated(self) -> bool:
        return not math.isclose(self.modality_scale, 1.0)

    def skips(self, step: int) -> bool:
        """True when step ``step`` (0-based) reuses the last guided x0."""
        return self.skip_step != 0 and step % (self.skip_step + 1) != 0


# Named presets, ``(video, audio)``.  Two sources of truth, which differ for LTX-2.3:
#
# * Lightricks' reference pipelines (ltx_pipelines/utils/constants.py): the same scales for
#   both versions (video cfg 3 / audio cfg 7, STG 1, rescale 0.7, modality 3); the STG block
#   moves from 29 to 28 in 2.3.  The HQ pipeline (res_2s, 15 steps) drops STG and changes the
#   rescales.
# * Lightricks' own ComfyUI workflows (ComfyUI-LTXVideo example_workflows): the 2.3 "Full"
#   workflow's GuiderParameters use video rescale 0.9 (audio 0.7), STG on block 28; the 2.0
#   "Full" workflows use a plain CFGGuider at cfg 4 (both streams, no STG / modality term).
# * Distilled models and the stage 2 of two-stage workflows run unguided (one pass per step).
LTX_2_0 = (
    StreamGuidance(cfg=3.0, stg=1.0, stg_blocks=(29,), rescale=0.7, modality_scale=3.0),
    StreamGuidance(cfg=7.0, stg=1.0, stg_blocks=(29,), rescale=0.7, modality_scale=3.0),
)
LTX_2_3_PIPELINES = tuple(replace(p, stg_blocks=(28,)) for p in LTX_2_0)
LTX_2_3 = (replace(LTX_2_3_PIPELINES[0], rescale=0.9), LTX_2_3_PIPELINES[1])
LTX_2_3_HQ = (
    StreamGuidance(cfg=3.0, stg=0.0, rescale=0.45, modality_scale=3.0),
    StreamGuidance(cfg=7.0, stg=0.0, rescale=1.0, modality_scale=3.0),
)
LTX_2_0_COMFY_CFG4 = (StreamGuidance(cfg=4.0), StreamGuidance(cfg=4.0))
UNGUIDED = (StreamGuidance(), StreamGuidance())
PRESETS: dict[str, tuple[StreamGuidance, StreamGuidance]] = {
    "LTX-2.0": LTX_2_0,
    "LTX-2.3": LTX_2_3,
    "LTX-2.3 HQ": LTX_2_3_HQ,
    "LTX-2.3 pipelines": LTX_2_3_PIPELINES,
    "LTX-2.0 ComfyUI (cfg 4)": LTX_2_0_COMFY_CFG4,
    "none (distilled)": UNGUIDED,
}
# One line per preset for tooltips and help pages.
PRESET_NOTES: dict[str, str] = {
    "LTX-2.0": "Lightricks' reference pipelines for LTX-2.0: video cfg 3 / audio cfg 7, STG 1 on block 29, "
    "rescale 0.7, modality 3 (4 passes per step)",
    "LTX-2.3": "Lightricks' LTX-2.3 ComfyUI workflows: as LTX-2.0 with STG on block 28 and video rescale 0.9 "
    "(audio 0.7)",
    "LTX-2.3 HQ": "the reference HQ pipeline (res_2s, ~15 steps): no STG, video rescale 0.45, audio rescale 1, "
    "cfg 3 / 7, modality 3 (3 passes per step)",
    "LTX-2.3 pipelines": "the reference pipelines for LTX-2.3 (ltx_pipelines): as LTX-2.0 with STG on block 28, "
    "rescale 0.7 on both streams",
    "LTX-2.0 ComfyUI (cfg 4)": "Lightricks' LTX-2.0 ComfyUI 'Full' workflows: plain CFG 4 on both streams, no STG, "
    "modality or rescale (2 passes per step)",
    "none (distilled)": "no guidance, one pass per step: distilled models and stage 2 of two-stage workflows",
}


def preset(name: str) -> tuple[StreamGuidance, StreamGuidance]:
    """``(video, audio)`` parameters of a named preset (see ``PRESETS``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown guidance preset {name!r}; choose one of {sorted(PRESETS)}") from None


def parse_blocks(text: str, *, num_blocks: int | None = None, name: str = "stg_blocks") -> tuple[int, ...]:
    """``"29"`` / ``"28, 29"`` → ``(28, 29)``; empty → ``()``.  Checks the range when known."""
    blocks = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"{name}: {part!r} is not a block number; write block indices like '29' or '28, 29'") from None
        if value < 0 or (num_blocks is not None and value >= num_blocks):
            upper = f"0 … {num_blocks - 1}" if num_blocks is not None else ">= 0"
            raise ValueError(f"{name}: block {value} does not exist; this model's blocks are {upper}")
        blocks.append(value)
    return tuple(sorted(set(blocks)))


def combine(
    params: StreamGuidance,
    cond: torch.Tensor,
    uncond: torch.Tensor | float = 0.0,
    perturbed: torch.Tensor | float = 0.0,
    isolated: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """The guided x0 of one stream (any layout; ``std`` runs over the whole tensor).

    A pass that did not run is given as ``0.0`` (its scale is then neutral), exactly as the
    reference passes it.  The expression keeps the reference's order of operations so fp32
    results agree to the last bits.
    """
    pred = (
        cond
        + (params.cfg - 1) * (cond - uncond)
        + params.stg * (cond - perturbed)
        + (params.modality_scale - 1) * (cond - isolated)
    )
    if params.rescale != 0:
        factor = cond.std() / pred.std()
        pred = pred * (params.rescale * factor + (1 - params.rescale))
    return pred


# --------------------------------------------------------------------------- passes of a step
COND, UNCOND, PERTURBED, ISOLATED = "cond", "uncond", "perturbed", "isolated"

# Modality isolation: neither stream listens to the other, in every block.
ISOLATION_RULES = (SkipRule(Skip.A2V_CROSS_ATTN), SkipRule(Skip.V2A_CROSS_ATTN))


@dataclass(frozen=True)
class StepPlan:
    """What one step runs.

    Attributes:
        passes: the transformer passes in order, a subset of cond / uncond / perturbed /
            isolated (empty when every stream reuses its last x0).
        rules: per pass, the attention skips it applies (``()`` for cond and uncond).
        skip_video / skip_audio: the stream reuses its last guided x0 this step.
    """

    passes: tuple[str, ...]
    rules: dict[str, tuple[SkipRule, ...]] = field(default_factory=dict)
    skip_video: bool = False
    skip_audio: bool = False


def plan_step(video: StreamGuidance | None, audio: StreamGuidance | None, step: int) -> StepPlan:
    """The passes step ``step`` needs, as the reference pipeline decides them.

    A stream that is absent from the latent is ``None``.  A pass runs when *any* present
    stream needs it (the other stream's output of that pass is then unused); the perturbed
    pass skips the self-attention only of the streams whose ``stg`` is on.
    """
    streams = [p for p in (video, audio) if p is not None]
    if not streams:
        raise ValueError("plan_step needs the parameters of at least one stream")
    skip_v = video is not None and video.skips(step)
    skip_a = audio is not None and audio.skips(step)
    if all(p.skips(step) for p in streams):
        return StepPlan((), {}, skip_v or video is None, skip_a or audio is None)
    passes = [COND]
    rules: dict[str, tuple[SkipRule, ...]] = {COND: ()}
    if any(p.needs_uncond for p in streams):
        passes.append(UNCOND)
        rules[UNCOND] = ()
    if any(p.needs_perturbed for p in streams):
        stg_rules = []
        if video is not None and video.needs_perturbed:
            stg_rules.append(SkipRule(Skip.VIDEO_SELF_ATTN, frozenset(video.stg_blocks)))
        if audio is not None and audio.needs_perturbed:
            stg_rules.append(SkipRule(Skip.AUDIO_SELF_ATTN, frozenset(audio.stg_blocks)))
        passes.append(PERTURBED)
        rules[PERTURBED] = tuple(stg_rules)
    if any(p.needs_isolated for p in streams):
        passes.append(ISOLATED)
        rules[ISOLATED] = ISOLATION_RULES
    return StepPlan(tuple(passes), rules, skip_v, skip_a)


def guide_stream(params: StreamGuidance, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """``combine`` with the x0 predictions of the passes that ran (``outputs[pass]``).

    A pass that ran for the other stream's sake is used as is (its term is zero up to a
    neutral scale), one that did not run counts as ``0.0``: both as in the reference.
    """
    return combine(
        params,
        outputs[COND],
        outputs.get(UNCOND, 0.0),
        outputs.get(PERTURBED, 0.0),
        outputs.get(ISOLATED, 0.0),
    )


def step_index(sigma: float, sigmas: torch.Tensor | None) -> int:
    """The step a model call at ``sigma`` belongs to within the schedule ``sigmas``.

    Step ``i`` covers ``(sigmas[i + 1], sigmas[i]]``; sub-step evaluations of multistage
    samplers (e.g. res_2s at √(σ_i σ_{i+1})) belong to the step they start from.
    """
    if sigmas is None or sigmas.numel() < 2:
        return 0
    values = sigmas.detach().float().cpu()[:-1]
    tol = 1e-6 * max(1.0, abs(sigma))
    return max(0, int((values >= sigma - tol).sum().item()) - 1)
