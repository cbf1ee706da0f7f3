"""ComfyUI GUIDER for LTX-2's multimodal guidance (CFG + STG + modality isolation + rescale).

``MultimodalGuider`` is a ``comfy.samplers.CFGGuider`` whose ``predict_noise`` returns the
guided x0 of the joint latent, so it plugs into SamplerCustomAdvanced with any SAMPLER.

Per model evaluation it

1. decides the passes of the step (``guidance.plan_step``: cond, uncond, STG-perturbed,
   modality-isolated; none when both streams reuse their last x0 via ``skip_step``);
2. runs them through ``comfy.samplers.calc_cond_batch``, which batches them into one model
   call when ``model.memory_required`` × 1.5 fits the free memory and splits them otherwise
   (hooks, ControlNets and area conds keep working).  A ``model_function_wrapper`` tells the
   model which batch items are which pass: ``transformer_options["openltx_perturbations"]``
   (an ``ltx2.inputs.Perturbations``, one entry per batch item) and the per-stream denoise
   masks ``transformer_options["openltx_denoise_mask"] = [video (B,1,F',H',W') | None,
   audio (B,1,T,1) | None]`` repeated to the call's batch;
3. splits the packed ``(B, 1, N)`` x0 of each pass into the video and audio stream and
   combines them per stream with that stream's parameters (``guidance.combine``);
4. blends the guided x0 with the clean latent, ``x0·m + clean·(1 − m)``.

Denoise masks.  ComfyUI 0.3.75 cannot pack a nested ``noise_mask``, and its inpainting
path (``KSamplerX0Inpaint``) re-noises kept tokens every step, where LTX-2 keeps them at the
clean latent with per-token σ = m·σ.  So this guider takes the mask itself (the sampler sees
none) and follows the reference (ltx_pipelines ``helpers.py`` / ``samplers.py``):

* start: ``noise' = m·noise + (1 − m)·clean``, so the sampler's ``σ₀·noise' + (1 − σ₀)·clean``
  equals the reference noiser's ``clean + m·σ₀·(noise − clean)``;
* each pass: x0 per token, ``x − m·σ·v = x + m·(x0 − x)`` (ComfyUI's x0 uses the step's σ);
* after guidance: the blend of step 4.

Known difference from the reference: on a step where only *one* stream skips
(``skip_step`` set differently per stream), ltx-core freezes the skipped stream's tokens in
the passes (``Modality.enabled = False``), which changes the other stream's prediction
through the audio↔video attention; this guider runs both streams and discards the skipped
one's output.  With equal ``skip_step`` for both streams (and 0, the default) it is exact.
"""

from __future__ import annotations

from typing import Any

import torch

import comfy.model_patcher
import comfy.nested_tensor
import comfy.samplers
import comfy.utils

from . import guidance as G

try:
    from ..ltx2.inputs import Perturbations
except ImportError:  # imported as a top-level package (tools / benchmarks)
    from ltx2.inputs import Perturbations

PERTURBATIONS_KEY = "openltx_perturbations"
DENOISE_MASK_KEY = "openltx_denoise_mask"


def _stream_kind(shape) -> str:
    if len(shape) == 5:
        return "video"
    if len(shape) == 4:
        return "audio"
    raise ValueError(f"LTX-2 latents are video (B, C, F, H, W) or audio (B, C, T, M); got shape {tuple(shape)}")


def _stream_mask(mask: torch.Tensor, latent: torch.Tensor, kind: str) -> torch.Tensor:
    """A ``noise_mask`` entry → float mask with the stream latent's full shape."""
    mask = mask.float()
    if mask.ndim != latent.ndim:
        if kind == "video" and mask.ndim in (3, 4):  # an image MASK (B, H, W): scale to the grid
            return comfy.utils.reshape_mask(mask, latent.shape).to(latent.device)
        raise ValueError(
            f"the {kind} noise_mask has shape {tuple(mask.shape)}; expected {latent.ndim} dims like the {kind} "
            f"latent {tuple(latent.shape)} (channel dim 1), e.g. from the LTX-2 conditioning nodes"
        )
    try:
        return torch.broadcast_to(mask.to(latent.device), latent.shape).clone()
    except RuntimeError:
        raise ValueError(
            f"the {kind} noise_mask of shape {tuple(mask.shape)} does not fit the {kind} latent "
            f"{tuple(latent.shape)}: use one value per latent token (channel dim 1)"
        ) from None


def _token_mask(full: torch.Tensor, kind: str) -> torch.Tensor:
    """Full-shape mask → the model's per-token form: video (B,1,F,H,W), audio (B,1,T,1)."""
    return full[:, :1] if kind == "video" else full[:, :1, :, :1]


class MultimodalGuider(comfy.samplers.CFGGuider):
    """LTX-2 multimodal guidance as a ComfyUI GUIDER.

    Args:
        model_patcher: an LTX-2 MODEL.
        video / audio: ``guidance.StreamGuidance`` of each stream.
    """

    def __init__(
        self,
        model_patcher: comfy.model_patcher.ModelPatcher,
        video: G.StreamGuidance,
        audio: G.StreamGuidance,
    ) -> None:
        super().__init__(model_patcher)
        self.video = video
        self.audio = audio
        self._reset()

    def _reset(self) -> None:
        self._kinds: list[str] = []
        self._full_masks: list[torch.Tensor | None] | None = None
        self._packed_mask: torch.Tensor | None = None
        self._clean: torch.Tensor | None = None
        self._latent_shapes = None
        self._last: dict[str, torch.Tensor] = {}

    # Published for samplers that re-noise between model calls (res_2s): they restore the kept
    # tokens after each noise injection with these (see samplers/comfy_samplers.py).
    @property
    def packed_denoise_mask(self) -> torch.Tensor | None:
        """The per-element mask (1 = denoise) packed like the sampler's ``x``, or ``None``."""
        return self._packed_mask

    @property
    def clean_latent(self) -> torch.Tensor | None:
        """The latent the kept tokens are restored to (packed like ``x``)."""
        return self._clean

    # ------------------------------------------------------------------ sampling entry points
    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None,
               disable_pbar=False, seed=None):
        self._reset()
        nested = getattr(latent_image, "is_nested", False)
        latents = list(latent_image.unbind()) if nested else [latent_image]
        if nested and len(latents) == 1:
            # A one-stream nested latent (LTX-2 Empty Latent's "audio only"): nested so that core's
            # fix_empty_latent_channels leaves its 4-D shape alone; core would sample it packed
            # (B, 1, N) and return it packed, so sample the bare stream and nest the result again.
            def bare(t):
                return t.unbind()[0] if getattr(t, "is_nested", False) else t

            out = self.sample(bare(noise), latents[0], sampler, sigmas, None if denoise_mask is None else
                              bare(denoise_mask), callback, disable_pbar, seed)  # fmt: skip
            return comfy.nested_tensor.NestedTensor((out,))
        self._kinds = [_stream_kind(t.shape) for t in latents]
        if denoise_mask is not None:
            masks = list(denoise_mask.unbind()) if getattr(denoise_mask, "is_nested", False) else [denoise_mask]
            if len(masks) != len(latents):
                raise ValueError(
                    f"the latent's noise_mask has {len(masks)} stream(s), the latent {len(latents)} "
                    f"({', '.join(self._kinds)}); give one mask per stream (a nested mask for video+audio)"
                )
            full = [_stream_mask(m, t, k) for m, t, k in zip(masks, latents, self._kinds)]
            noises = list(noise.unbind()) if getattr(noise, "is_nested", False) else [noise]
            # Kept tokens start at the clean latent (see the module docstring).
            noises = [n * m + t.to(n.dtype) * (1 - m) for n, t, m in zip(noises, latents, full)]
            noise = comfy.nested_tensor.NestedTensor(tuple(noises)) if nested else noises[0]
            self._full_masks = full
            self._packed_mask = comfy.utils.pack_latents(full)[0] if nested else full[0]
        try:
            # The sampler sees no mask: this guider applies it (ComfyUI's inpaint path re-noises).
            return super().sample(noise, latent_image, sampler, sigmas, None, callback, disable_pbar, seed)
        finally:
            self._reset()

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback,
                     disable_pbar, seed, latent_shapes=None):
        # process_latent_in is the identity for LTX-2 latents: this is the clean latent.
        self._clean = latent_image
        self._latent_shapes = latent_shapes if latent_shapes is not None else [latent_image.shape]
        if self._packed_mask is not None:
            self._packed_mask = self._packed_mask.to(device)
        return super().inner_sample(noise, latent_image, device, sampler, sigmas, denoise_mask, callback,
                                    disable_pbar, seed, latent_shapes=latent_shapes)

    # ------------------------------------------------------------------ one model evaluation
    def _params(self, kind: str) -> G.StreamGuidance:
        return self.video if kind == "video" else self.audio

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        """The guided, mask-blended x0 of the packed latent ``x`` ``(B, 1, N)`` at σ ``timestep``."""
        sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        step = G.step_index(float(timestep.reshape(-1)[0]), sigmas)
        by_kind = {k: self._params(k) for k in self._kinds}
        plan = G.plan_step(by_kind.get("video"), by_kind.get("audio"), step)
        skipped = {"video": plan.skip_video, "audio": plan.skip_audio}
        if any(skipped[k] and k not in self._last for k in self._kinds):
            raise RuntimeError(f"skip_step: step {step} reuses an x0 that was never computed")

        outputs = self._run_passes(plan, x, timestep, model_options) if plan.passes else {}
        streams = []
        split = {name: self._unpack(out) for name, out in outputs.items()}
        for i, kind in enumerate(self._kinds):
            if skipped[kind]:
                guided = self._last[kind]
            else:
                guided = G.guide_stream(self._params(kind), {name: parts[i] for name, parts in split.items()})
                self._last[kind] = guided
            streams.append(guided)
        x0 = self._pack(streams)
        post = model_options.get("sampler_post_cfg_function") or []
        if post and outputs:
            x0 = self._post_cfg(post, x0, x, timestep, model_options, outputs)
        if self._packed_mask is not None:
            m = self._packed_mask
            x0 = (x0 * m + self._clean.float() * (1 - m)).to(x0.dtype)
        return x0

    def _post_cfg(self, functions, x0, x, timestep, model_options, outputs) -> torch.Tensor:
        """Core's ``sampler_post_cfg_function`` hooks (e.g. LTX-2 Reference Audio's identity
        guidance), with core's argument names.  A model call they make through the
        ``model_options`` handed to them is labelled as a plain conditioned pass and returns
        per-token x0 (the denoise masks applied), like this guider's own passes."""
        options = dict(model_options)
        options["model_function_wrapper"] = self._wrapper(
            [()], model_options.get("model_function_wrapper"), per_token_x0=True
        )
        for fn in functions:
            x0 = fn({
                "denoised": x0, "cond": self.conds.get("positive"), "uncond": self.conds.get("negative"),
                "cond_scale": self.video.cfg, "model": self.inner_model, "cond_denoised": outputs[G.COND],
                "uncond_denoised": outputs.get(G.UNCOND), "sigma": timestep, "model_options": options, "input": x,
            })  # fmt: skip
        return x0

    def _run_passes(self, plan: G.StepPlan, x, timestep, model_options) -> dict[str, torch.Tensor]:
        positive = self.conds.get("positive")
        negative = self.conds.get("negative")
        if G.UNCOND in plan.passes and negative is None:
            raise ValueError("LTX-2 Multimodal Guider: cfg ≠ 1 needs a negative conditioning")
        conds = [negative if name == G.UNCOND else positive for name in plan.passes]
        rules = [plan.rules[name] for name in plan.passes]
        options = dict(model_options)
        options["model_function_wrapper"] = self._wrapper(rules, model_options.get("model_function_wrapper"))
        outs = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep, options)
        outs = dict(zip(plan.passes, outs))
        if self._packed_mask is not None:
            # Per-token x0 = x − m·σ·v = x + m·(x0 − x): kept tokens were evaluated at σ = 0.
            m = self._packed_mask
            outs = {k: x + m * (o - x) for k, o in outs.items()}
        return outs

    def _wrapper(self, rules: list[tuple], inner, per_token_x0: bool = False):
        """A ``model_function_wrapper`` that labels every batch item of a model call.

        ``per_token_x0``: also turn the call's x0 into per-token x0 ``x + m·(x0 − x)`` (this
        guider's own passes do that after ``calc_cond_batch``; post-CFG hooks cannot).
        """
        token_masks = None
        if self._full_masks is not None:
            token_masks = {k: _token_mask(m, k) for k, m in zip(self._kinds, self._full_masks)}
        packed_mask = self._packed_mask if per_token_x0 else None

        def wrapper(apply_model, args: dict[str, Any]):
            which = args["cond_or_uncond"]  # index into the pass list, one per chunk
            chunks = len(which)
            per_chunk = args["input"].shape[0] // chunks
            c = dict(args["c"])
            options = dict(c.get("transformer_options", {}))
            per_sample = tuple(rules[i] for i in which for _ in range(per_chunk))
            options[PERTURBATIONS_KEY] = Perturbations(per_sample) if any(per_sample) else None
            if token_masks is not None:
                device = args["input"].device
                options[DENOISE_MASK_KEY] = [
                    token_masks[k].to(device).repeat(chunks, *([1] * (token_masks[k].ndim - 1)))
                    if k in token_masks else None
                    for k in ("video", "audio")
                ]
            c["transformer_options"] = options
            if inner is not None:
                out = inner(apply_model, {**args, "c": c})
            else:
                out = apply_model(args["input"], args["timestep"], **c)
            if packed_mask is not None:
                x_in = args["input"]
                m = packed_mask.to(x_in.device).repeat(chunks, *([1] * (packed_mask.ndim - 1)))
                out = x_in + m * (out - x_in)
            return out

        return wrapper

    # ------------------------------------------------------------------ packed <-> streams
    def _unpack(self, packed: torch.Tensor) -> list[torch.Tensor]:
        if len(self._latent_shapes) > 1:
            return comfy.utils.unpack_latents(packed, self._latent_shapes)
        return [packed]

    def _pack(self, streams: list[torch.Tensor]) -> torch.Tensor:
        if len(streams) > 1:
            return comfy.utils.pack_latents(streams)[0]
        return streams[0]
