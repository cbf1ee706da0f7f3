"""The LTX-2 steppers as ComfyUI SAMPLERs (``comfy.samplers.KSAMPLER``).

``KSAMPLER.sample`` calls our function as ``fn(model_k, x, sigmas, extra_args=..., callback=...,
disable=..., **options)`` where ``model_k`` is ComfyUI's ``KSamplerX0Inpaint`` around the
GUIDER and ``x`` is the packed ``(B, 1, N)`` latent for a nested (video + audio) LATENT.
res_2s needs three things ComfyUI does not pass explicitly; they are read here:

* the stream shapes of the packed latent: the ``latent_shapes`` model cond the MODEL adds
  (``LTX2Model.extra_conds``) in the guider's processed conds;
* a denoise mask: ComfyUI's flat one (``extra_args["denoise_mask"]``, already shaped like
  ``x``) or the per-stream masks of an OpenLTX guider in
  ``model_options["transformer_options"]["openltx_denoise_mask"]`` (a list
  ``[video (B,1,F',H',W') | None, audio (B,1,T,1) | None]``, or one tensor broadcastable to x);
* the clean latent it blends with: ``model_k.latent_image``.

An OpenLTX guider that takes the nested noise mask itself (ComfyUI hands the sampler none) may
instead publish ``packed_denoise_mask`` (shaped like ``x``) and ``clean_latent`` attributes.
"""

from __future__ import annotations

from typing import Sequence

import torch

import comfy.nested_tensor
import comfy.samplers

from . import steppers

SAMPLER_NAMES = tuple(steppers.SAMPLERS)


def find_latent_shapes(model_k, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Stream shapes of ``x``: from the guider's ``latent_shapes`` cond, else ``[x.shape]``."""
    guider = getattr(model_k, "inner_model", None)
    for conds in (getattr(guider, "conds", None) or {}).values():
        for cond in conds or ():
            shapes = (cond.get("model_conds") or {}).get("latent_shapes")
            shapes = getattr(shapes, "cond", shapes)
            if shapes and len(shapes) > 1:
                return [tuple(s) for s in shapes]
    return [tuple(x.shape)]


def pack_stream_masks(masks: Sequence[torch.Tensor | None], latent_shapes, like: torch.Tensor) -> torch.Tensor:
    """Per-stream masks (channel dim 1, ``None`` = all ones) -> one mask shaped like ``like``."""
    if len(masks) != len(latent_shapes):
        raise ValueError(f"got {len(masks)} stream masks for {len(latent_shapes)} latent streams")
    parts = []
    for mask, shape in zip(masks, latent_shapes):
        full = like.new_ones(shape) if mask is None else mask.to(like).expand(shape)
        parts.append(full.reshape(shape[0], 1, -1))
    return torch.cat(parts, dim=-1).reshape(like.shape)


def find_denoise_mask(model_k, x: torch.Tensor, extra_args: dict, latent_shapes):
    """(mask, clean latent) for res_2s's post-injection blend, or (None, None)."""
    mask = extra_args.get("denoise_mask")
    guider = getattr(model_k, "inner_model", None)
    if mask is None and getattr(guider, "packed_denoise_mask", None) is not None:
        # An OpenLTX guider that applies the masks itself (the sampler gets none from ComfyUI)
        # publishes the packed mask and the clean latent it blends with.
        return guider.packed_denoise_mask.to(x.device), guider.clean_latent.to(x.device)
    if mask is None:
        options = (extra_args.get("model_options") or {}).get("transformer_options") or {}
        mask = options.get("openltx_denoise_mask")
        if isinstance(mask, (list, tuple)):
            mask = None if all(m is None for m in mask) else pack_stream_masks(mask, latent_shapes, x)
    clean = getattr(model_k, "latent_image", None)
    if mask is None or clean is None:
        return None, None
    return mask.to(x.device), clean.to(x.device)


def _euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    return steppers.sample_euler(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable)


def _res_2s(model, x, sigmas, extra_args=None, callback=None, disable=None, **options):
    extra_args = {} if extra_args is None else extra_args
    shapes = find_latent_shapes(model, x)
    mask, clean = find_denoise_mask(model, x, extra_args, shapes)
    # KSAMPLER hands the inpaint mask over in extra_args; the model call takes it from there.
    return steppers.sample_res_2s(
        model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable,
        latent_shapes=shapes, denoise_mask=mask, clean_latent=clean, **options,
    )


def ltx_sampler(name: str, noise_seed: int = steppers.REFERENCE_NOISE_SEED, bongmath: bool = True):
    """A ComfyUI SAMPLER for ``name`` ("euler" or "res_2s")."""
    if name == "euler":
        return comfy.samplers.KSAMPLER(_euler)
    if name == "res_2s":
        return comfy.samplers.KSAMPLER(_res_2s, extra_options={"noise_seed": int(noise_seed), "bongmath": bool(bongmath)})
    raise ValueError(f"unknown LTX-2 sampler {name!r}; expected one of {SAMPLER_NAMES}")


class ZeroNoise:
    """A NOISE that adds nothing, for a latent that is already noised (two-stage re-noise).

    ComfyUI 0.3.75's ``DisableNoise`` builds ``zeros(latent.shape)``, which for a nested
    video+audio latent is a flat tensor the samplers cannot use; this follows the nesting.
    """

    seed = 0

    def generate_noise(self, input_latent: dict):
        samples = input_latent["samples"]
        if getattr(samples, "is_nested", False):
            return comfy.nested_tensor.NestedTensor(
                tuple(torch.zeros(t.shape, dtype=t.dtype, device="cpu") for t in samples.unbind())
            )
        return torch.zeros(samples.shape, dtype=samples.dtype, device="cpu")
