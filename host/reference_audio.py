"""Reference audio for ID-LoRA (speaker identity transfer), as ComfyUI's LTX-2 templates run it.

Comfy-Org's ``video_ltx2_3_id_lora`` template loads an ID-LoRA (``ltx-2.3-id-lora-talkvid-3k``)
and core's ``LTXVReferenceAudio`` node, which

1. encodes a short reference clip (≈ 5 s, the training length) with the audio VAE and puts its
   latent on both conditionings; the transformer then sees the reference as extra audio tokens
   in the same sequence as the generated audio: timestep 0 (clean), RoPE positions shifted to
   negative time so the reference ends one latent step (40 ms) before the generated audio
   starts, and their outputs dropped;
2. optionally adds *identity guidance*: one more pass per step with the reference removed,
   ``x0 += scale · (x0_cond − x0_noref)`` over a sigma range (``start_percent`` /
   ``end_percent`` of the model's schedule).

Here (1) is the cond ``"openltx_reference_audio"`` (a ``(B, 8, T_ref, 16)`` latent) that
``host/model.py`` turns into appended tokens with ``append_reference_audio``; tokens are
*appended* after the generated ones (ltx-core's ``AudioConditionByReferenceLatent`` order;
ComfyUI prepends them: attention has no order, so the result is the same), and (2) is a
``sampler_post_cfg_function`` that the LTX-2 Multimodal Guider (and core's CFG guider) call.
"""

from __future__ import annotations

import torch

try:
    from ..ltx2 import positions as P
except ImportError:  # imported as a top-level package (tools / benchmarks)
    from ltx2 import positions as P

REFERENCE_AUDIO_KEY = "openltx_reference_audio"
# One audio latent step: 4 mel frames of 160 samples at 16 kHz (LTX2_SPEC §2).
AUDIO_STEP_SECONDS = P.AUDIO_LATENT_DOWNSAMPLE * P.AUDIO_HOP_SECONDS


def reference_positions(batch: int, steps: int, device=None) -> torch.Tensor:
    """``(B, 1, T_ref, 2)`` seconds: the reference's own bounds shifted so that its last token
    ends ``AUDIO_STEP_SECONDS`` before 0."""
    own = P.audio_positions(batch, steps, device=device)
    offset = own[0, 0, -1, 1] + AUDIO_STEP_SECONDS
    return own - offset


def append_reference_audio(
    tokens: torch.Tensor, timesteps: torch.Tensor, positions: torch.Tensor, reference: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The audio stream with the reference's tokens appended.

    Args:
        tokens: ``(B, T, 128)`` patchified audio; timesteps: ``(B, T)`` or ``(B, 1)`` per-token σ;
        positions: ``(B, 1, T, 2)``; reference: ``(B_r, 8, T_ref, 16)`` latent (B_r is 1 or B).
    Returns:
        ``(B, T + T_ref, 128)`` tokens, ``(B, T + T_ref)`` σ (0 for the reference: it is clean),
        ``(B, 1, T + T_ref, 2)`` positions.  Drop outputs past ``T``.
    """
    b, t, width = tokens.shape
    if reference.ndim != 4 or reference.shape[1] * reference.shape[3] != width:
        raise ValueError(
            f"the reference audio latent has shape {tuple(reference.shape)}; this model's audio tokens have {width} "
            "features (8 channels x 16 mel bins): encode the reference with this model's audio VAE"
        )
    if reference.shape[0] not in (1, b):
        raise ValueError(f"the reference audio latent has batch {reference.shape[0]}, the latent {b}; use one clip")
    ref = P.patchify_audio(reference.to(device=tokens.device, dtype=tokens.dtype)).expand(b, -1, -1)
    n = ref.shape[1]
    sigma = timesteps.to(torch.float32).expand(b, t) if timesteps.shape[1] == 1 else timesteps.to(torch.float32)
    out_t = torch.cat([sigma, torch.zeros(b, n, device=sigma.device, dtype=sigma.dtype)], dim=1)
    out_p = torch.cat([positions, reference_positions(b, n, device=positions.device).to(positions.dtype)], dim=2)
    return torch.cat([tokens, ref], dim=1), out_t, out_p


def strip_reference(conds: list[dict]) -> list[dict]:
    """Processed conds (``calc_cond_batch`` input) without the reference audio."""
    out = []
    for entry in conds or []:
        entry = dict(entry)
        model_conds = dict(entry.get("model_conds", {}))
        model_conds.pop(REFERENCE_AUDIO_KEY, None)
        entry["model_conds"] = model_conds
        out.append(entry)
    return out


def identity_guidance(scale: float, sigma_start: float, sigma_end: float):
    """A ``sampler_post_cfg_function``: ``x0 + scale · (x0_cond − x0_without_reference)`` while
    ``sigma_end ≤ σ ≤ sigma_start``; one extra model pass per step (none when scale is 0)."""
    import comfy.samplers

    def post_cfg(args: dict) -> torch.Tensor:
        denoised = args["denoised"]
        sigma = float(args["sigma"].reshape(-1)[0])
        if scale == 0 or sigma > sigma_start or sigma < sigma_end:
            return denoised
        noref = strip_reference(args["cond"])
        (pred_noref,) = comfy.samplers.calc_cond_batch(
            args["model"], [noref], args["input"], args["sigma"], args["model_options"]
        )
        return denoised + (args["cond_denoised"] - pred_noref) * scale

    return post_cfg
