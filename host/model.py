"""The ComfyUI MODEL for LTX-2: latent format, model config, BaseModel and loader.

This module is the only place where the LTX-2 transformer (``ltx2/``, pure PyTorch) meets
ComfyUI's model machinery, so that core samplers, guiders, LoRA loaders and memory
management all work on it:

* ``LTX2LatentFormat``   the joint latent (128 video channels, 3 latent dims, no RGB preview).
* ``LTX2ModelConfig``    a ``supported_models_base.BASE`` config (flux shift 2.05, dtypes).
* ``LTX2Model``          a ``model_base.BaseModel`` with ``ModelType.FLUX``: CONST + flux
                         shift, i.e. the model predicts a velocity ``v`` and
                         ``x0 = x - σ·v`` — exactly LTX-2's rectified-flow convention.
* ``LTX2DiffusionModel`` the ``diffusion_model`` module: ``LTXAVTransformer`` with
                         ComfyUI's call convention on top.  It *subclasses* the transformer,
                         so its state-dict keys stay the checkpoint's bare keys (LoRA files
                         that name ``diffusion_model.transformer_blocks.N...`` map directly).
Loading a file into a ``ModelPatcher`` lives in ``model_loading.py``.

Latent
------
``LATENT["samples"]`` is a ``comfy.nested_tensor.NestedTensor`` of

* video ``(B, 128, F', H', W')`` with ``F' = (frames - 1) // 8 + 1``, ``H' = H / 32``,
  ``W' = W / 32``, and
* audio ``(B, 8, T, 16)`` with ``T = round(frames / fps * 25)``.

ComfyUI's samplers pack the two into one ``(B, 1, N)`` tensor and hand the model the shapes
(``latent_shapes``) so ``BaseModel._apply_model`` can unpack them again: the diffusion model
then receives ``x`` as the list ``[video, audio]``.  A plain 5-D video latent (video only)
or a 4-D audio latent (audio only) also works; the other stream is then skipped.

Conditioning
------------
``CONDITIONING`` for this model is::

    [[video_context (B, L, C_v),
      {"audio_context": (B, L, C_a),     # optional, see below
       "frame_rate": float,              # optional, default 24.0
       "context_mask": (B, L)}]]         # optional, 1 = valid token, 0 = padding

* ``C_v`` / ``C_a`` are the widths the transformer's text inputs expect: the Gemma feature
  width ``caption_channels`` (3840) for both streams in LTX-2.0, and the stream widths
  (4096 / 2048) in LTX-2.3 where the caption projection lives in the text encoder.
* Without ``audio_context`` the video context is used for the audio stream too.  That is
  only possible when the widths match (LTX-2.0); otherwise sampling stops with an error.
* ``frame_rate`` sets the time axis of the video positions (RoPE works in seconds).  KSampler
  only forwards CONDITIONING to the model, so this key is how the frame rate reaches it; the
  text-encode node sets it.  When absent, 24.0 (the reference pipelines' default) is used.
* ``context_mask`` is normally absent: LTX-2's text connectors fill every one of the 1024
  text tokens with registers, so all of them are valid.
* ``"openltx_keyframes"``: a tuple of ``samplers.conditioning.Keyframe`` (OpenLTXKeyframe):
  latents appended as extra video tokens at a pixel frame index (positions shifted in time,
  per-token σ = (1 − strength)·σ).  Registered as ``CONDAppendedTokens``.
* ``"openltx_reference"``: a tuple of ``samplers.conditioning.ReferenceVideo``
  (OpenLTXReferenceVideoGuide): an IC-LoRA reference latent appended after the keyframes,
  spatial positions × its downscale factor, optional attention strength (becomes the
  transformer's self-attention mask, ltx-core ``mask_utils`` block layout).
  Appended tokens are read-only: their velocities are dropped before returning.  Put them
  on the positive *and* negative conditioning (the nodes do) so both passes see them, as in
  ltx-core where they are part of the latent state.
* ``"openltx_reference_audio"``: an audio latent ``(B, 8, T_ref, 16)`` (LTX-2 Reference Audio,
  ID-LoRA): appended to the audio stream as clean tokens at negative time
  (``host/reference_audio.py``); their velocities are dropped.
* ``"openltx_denoise_mask"`` (cond, older hook): a per-element mask in the layout of the
  sampler's latent (packed ``(B, 1, N)`` for the joint latent, or shaped like the single
  stream's latent; channel dim may be 1).

Per-token denoise masks
-----------------------
A guider that applies denoise masks (1 = denoise, 0 = keep) hands them to the model as
``transformer_options["openltx_denoise_mask"] = [video_mask (B,1,F',H',W') | None,
audio_mask (B,1,T,1) | None]``; they take precedence over the cond hook above.  Tokens get
``σ_token = mask · σ`` in the AdaLN modulation (ltx-core ``timesteps_from_mask``); the
stream's σ for the A↔V and prompt modulations stays the step's σ.  ComfyUI's
``x0 = x − σ·v`` still uses the step's σ, so the guider must blend
``x0·m + clean·(1 − m)`` after every step (as LTX-2's own samplers do).  Masks whose batch
is smaller than the model call's (cond + uncond batched) are repeated.

The channel counts above are the released models' (the tiny test checkpoints of
``tools/make_tiny_checkpoint.py`` use them too, so they sample LTX-2 Empty Latent's output
as is).  A MODEL checks latents against its own config (``in_channels``,
``audio_in_channels`` = audio channels × 16 mel bins): a latent of another width stops
sampling with an error that names both widths.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

import comfy.conds
import comfy.latent_formats
import comfy.model_base
import comfy.model_management as mm
import comfy.nested_tensor
import comfy.supported_models_base

from ..ltx2 import positions as P
from ..ltx2.config import TransformerConfig
from ..ltx2.inputs import Perturbations, StreamInput
from ..ltx2.transformer import LTXAVTransformer
from ..samplers import conditioning as C
from .conds import (
    DENOISE_MASK_KEY,
    KEYFRAMES_KEY,
    REFERENCE_KEY,
    CONDAppendedTokens,
    token_masks,
)
from ..model_loaders.safetensors_file import CheckpointError
from . import speed
from .reference_audio import REFERENCE_AUDIO_KEY, append_reference_audio


DEFAULT_FRAME_RATE = 24.0
VIDEO_LATENT_CHANNELS = 128
AUDIO_LATENT_CHANNELS = 8
AUDIO_MEL_BINS = 16
FLUX_SHIFT = 2.05  # LTX2Scheduler's token shift at its 4096-token default (LTX2_SPEC §6.1)

SUPPORTED_DTYPES = [torch.bfloat16, torch.float16, torch.float32]
WEIGHT_DTYPE_OPTIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class ModelLoadError(CheckpointError):
    """Weights that do not fit the transformer built from the given config."""


# --------------------------------------------------------------------------- latent + config
class LTX2LatentFormat(comfy.latent_formats.LatentFormat):
    """The joint LTX-2 latent.  Identity scaling: the VAEs normalise with their own statistics.

    ``latent_rgb_factors`` stays ``None``: ComfyUI's previewer receives the packed ``(B, 1, N)``
    tensor of a nested latent and RGB factors crash the sampler on 0.3.75.  The MODEL's own
    sampler wrapper (``previews.py``) sends the previews instead.
    """

    latent_channels = VIDEO_LATENT_CHANNELS
    latent_dimensions = 3
    latent_rgb_factors = None
    latent_rgb_factors_bias = None
    scale_factor = 1.0

    def process_in(self, latent):
        return latent

    def process_out(self, latent):
        return latent


class LTX2ModelConfig(comfy.supported_models_base.BASE):
    """Model config holding our ``TransformerConfig`` in ``unet_config["transformer_config"]``.

    ``sampling_settings["shift"] = 2.05``: ComfyUI's ``ModelSamplingFlux`` shift
    ``e^s / (e^s + 1/σ - 1)`` equals the LTX-2 scheduler's token shift at its default.
    """

    unet_config = {"image_model": "openltx_ltx2"}
    unet_extra_config: dict = {}
    sampling_settings = {"shift": FLUX_SHIFT}
    latent_format = LTX2LatentFormat
    supported_inference_dtypes = list(SUPPORTED_DTYPES)
    memory_usage_factor = 11.0  # for 19B; rescaled by width in __init__
    vae_key_prefix = ["vae."]
    text_encoder_key_prefix = ["text_encoders."]

    def __init__(self, transformer_config: TransformerConfig) -> None:
        super().__init__({"image_model": "openltx_ltx2", "transformer_config": transformer_config})
        self.transformer_config = transformer_config
        self.latent_format.latent_channels = transformer_config.in_channels  # 128 for the real models
        # Activation memory per token grows with the stream width; 5.5 per 2048 channels as
        # core uses for LTX-Video (11 for the 4096-wide 19B video stream).
        self.memory_usage_factor = 5.5 * max(transformer_config.video_dim, 1) / 2048

    @property
    def video_context_width(self) -> int:
        cfg = self.transformer_config
        return cfg.caption_channels if cfg.has_caption_projection else cfg.video_dim

    @property
    def audio_context_width(self) -> int:
        cfg = self.transformer_config
        return cfg.caption_channels if cfg.has_caption_projection else cfg.audio_dim

    def get_model(self, state_dict=None, prefix="", device=None) -> "LTX2Model":
        return LTX2Model(self, device=device)


VIDEO_TIME_STRIDE = P.VIDEO_TIME_SCALE  # pixel frames per latent frame (after the first)
VIDEO_SPACE_STRIDE = P.VIDEO_SPACE_SCALE  # pixels per latent cell


def latent_shapes(
    width: int,
    height: int,
    frames: int,
    fps: float,
    batch_size: int = 1,
    *,
    video_channels: int = VIDEO_LATENT_CHANNELS,
    audio_channels: int = AUDIO_LATENT_CHANNELS,
):
    """Shapes of the video ``(B, 128, F', H', W')`` and audio ``(B, 8, T, 16)`` latents.

    ``F' = (frames - 1) // 8 + 1``, ``H' = height / 32``, ``W' = width / 32``,
    ``T = round(frames / fps * 25)`` (at least 1).  Callers validate the sizes first.  The
    channel counts are those of the released models (tiny test models use fewer).
    """
    video = (
        batch_size,
        video_channels,
        (frames - 1) // VIDEO_TIME_STRIDE + 1,
        height // VIDEO_SPACE_STRIDE,
        width // VIDEO_SPACE_STRIDE,
    )
    audio = (batch_size, audio_channels, max(1, P.audio_latent_steps(frames, fps)), AUDIO_MEL_BINS)
    return video, audio


STREAMS = ("video+audio", "audio only", "video only")


def empty_latent(
    width: int, height: int, frames: int, fps: float, batch_size: int = 1, streams: str = "video+audio", **channels: int
) -> dict:
    """A LATENT dict of zeros: ``{"samples": NestedTensor((video, audio)), "frame_rate": fps}``.

    ``streams``: ``"video+audio"`` (the joint latent), ``"audio only"`` (text-to-audio: a
    NestedTensor holding the audio stream alone, so core's samplers leave its shape alone and
    the OpenLTX guider runs the transformer without a video stream, as ltx-core does for
    ``video=None``) or ``"video only"`` (a plain 5-D tensor).  ``channels``:
    ``video_channels`` / ``audio_channels`` as in ``latent_shapes``.
    """
    if streams not in STREAMS:
        raise ValueError(f"streams must be one of {list(STREAMS)}, got {streams!r}")
    video_shape, audio_shape = latent_shapes(width, height, frames, fps, batch_size, **channels)
    device = mm.intermediate_device()
    if streams == "video only":
        samples = torch.zeros(video_shape, device=device)
    elif streams == "audio only":
        samples = comfy.nested_tensor.NestedTensor((torch.zeros(audio_shape, device=device),))
    else:
        samples = comfy.nested_tensor.NestedTensor(
            (torch.zeros(video_shape, device=device), torch.zeros(audio_shape, device=device))
        )
    return {"samples": samples, "frame_rate": float(fps)}


# --------------------------------------------------------------------------- diffusion model
def _split_streams(x) -> tuple[torch.Tensor | None, torch.Tensor | None, list[str]]:
    """``x`` (list or tensor) -> (video, audio, order of the streams in ``x``)."""
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    video = audio = None
    order = []
    for t in items:
        if t.ndim == 5 and video is None:
            video, kind = t, "video"
        elif t.ndim == 4 and audio is None:
            audio, kind = t, "audio"
        else:
            shapes = [tuple(i.shape) for i in items]
            raise ValueError(
                f"LTX-2 expects a video latent (B, 128, F, H, W) and/or an audio latent (B, 8, T, 16); got {shapes}"
            )
        order.append(kind)
    return video, audio, order


class LTX2DiffusionModel(LTXAVTransformer):
    """``LTXAVTransformer`` with ComfyUI's call convention.

    ``forward(x, timestep, context, ...)`` takes latents (not tokens) and σ per sample,
    patchifies, builds positions and per-token timesteps, runs the transformer and returns
    velocities shaped like ``x`` (a list ``[video_v, audio_v]`` for a list input).
    """

    def __init__(
        self,
        transformer_config: TransformerConfig,
        *,
        dtype: torch.dtype | None = None,
        device=None,
        operations=None,
        **_unet_config: Any,
    ) -> None:
        super().__init__(transformer_config, operations=operations, dtype=dtype, device=device)
        self.dtype = dtype if dtype is not None else torch.float32  # BaseModel.get_dtype reads it

    def forward(
        self,
        x,
        timestep: torch.Tensor,
        context: torch.Tensor | None = None,
        control=None,
        transformer_options: Mapping[str, Any] = {},
        **kwargs: Any,
    ):
        """
        Args:
            x: ``[video (B, 128, F, H, W), audio (B, 8, T, 16)]`` or one of the two.
            timestep: σ per sample ``(B,)`` (ModelSamplingFlux passes σ through).
            context: video text context ``(B, L, C_v)``.
            kwargs: ``audio_context`` ``(B, L, C_a)``, ``frame_rate`` (float),
                ``context_mask`` ``(B, L)``, ``openltx_keyframes`` / ``openltx_reference``
                (appended tokens), ``openltx_denoise_mask`` (see module doc).
            transformer_options: ``openltx_denoise_mask`` ``[video_mask, audio_mask]``,
                ``openltx_perturbations`` (see module doc).
        Returns:
            velocities shaped like ``x``: a list ``[video_v, audio_v]`` for two streams, a
            tensor for one stream (also when ``x`` is a one-element list).
        """
        video, audio, order = _split_streams(x)
        ref = video if video is not None else audio
        batch, device = ref.shape[0], ref.device
        if context is None:
            raise ValueError("LTX-2 needs text conditioning (CONDITIONING from an LTX-2 text encoder)")
        sigma = timestep.reshape(-1).float()
        if sigma.numel() == 1:
            sigma = sigma.expand(batch)
        fps = float(kwargs.get("frame_rate") or DEFAULT_FRAME_RATE)
        context_mask = kwargs.get("context_mask")
        if context_mask is not None:
            # BaseModel casts float-able conds to the compute dtype (a bool mask arrives as
            # 0./1.); the transformer reads a float mask as an additive bias, so re-binarize.
            context_mask = (context_mask > 0.5).to(torch.int64)
        audio_context = kwargs.get("audio_context")
        video_mask, audio_mask = token_masks(transformer_options, kwargs.get(DENOISE_MASK_KEY), video, audio, batch)

        def per_token(mask):
            if mask is None:
                return sigma[:, None]
            return mask.to(device=device, dtype=torch.float32) * sigma[:, None]

        self._check_channels(video, audio)
        video_in = audio_in = None
        if video is not None:
            _, _, f, h, w = video.shape
            tokens, timesteps, positions, attention = C.append_tokens(
                P.patchify_video(video),
                per_token(video_mask),
                P.video_positions(batch, f, h, w, fps, device=device),
                sigma,
                fps,
                keyframes=kwargs.get(KEYFRAMES_KEY) or (),
                references=kwargs.get(REFERENCE_KEY) or (),
            )
            video_in = StreamInput(
                latent=tokens,
                timesteps=timesteps,
                sigma=sigma,
                positions=positions,
                context=context,
                context_mask=context_mask,
                attention_mask=attention,
            )
        if audio is not None:
            if audio_context is None:
                audio_context = context
            a_tokens, a_steps = P.patchify_audio(audio), per_token(audio_mask)
            a_positions = P.audio_positions(batch, audio.shape[2], device=device)
            reference = kwargs.get(REFERENCE_AUDIO_KEY)
            if reference is not None:  # ID-LoRA: clean reference tokens, outputs dropped below
                a_tokens, a_steps, a_positions = append_reference_audio(a_tokens, a_steps, a_positions, reference)
            audio_in = StreamInput(
                latent=a_tokens,
                timesteps=a_steps,
                sigma=sigma,
                positions=a_positions,
                context=audio_context,
                context_mask=context_mask,
            )
        perturbations = _perturbations(transformer_options, batch)
        with speed.call_options(transformer_options) as fast:  # attention kernel, compile, quant matmuls
            out_v, out_a = super().forward(video_in, audio_in, perturbations, block_callback=_interruption_point, **fast)
        results = {}
        if video is not None:
            noisy = math.prod(video.shape[2:])  # appended conditioning tokens are dropped
            results["video"] = P.unpatchify_video(out_v[:, :noisy], *video.shape[2:])
        if audio is not None:
            results["audio"] = P.unpatchify_audio(out_a[:, : audio.shape[2]], audio.shape[1], audio.shape[3])
        if isinstance(x, (list, tuple)) and len(x) > 1:
            return [results[k] for k in order]
        # One stream: a tensor, also for a one-element list.  Current ComfyUI's BaseModel hands a
        # single-shape latent over as ``[tensor]`` and repacks only lists of two or more, so a
        # one-element list back would reach ``calculate_denoised`` as a list (0.3.75 passes the
        # bare tensor).
        return results[order[0]]


    def _check_channels(self, video: torch.Tensor | None, audio: torch.Tensor | None) -> None:
        cfg = self.config
        if video is not None and video.shape[1] != cfg.in_channels:
            raise ValueError(
                f"the video latent has {video.shape[1]} channels, this LTX-2 model expects {cfg.in_channels}: "
                "use a latent made for LTX-2 (e.g. LTX-2 Empty Latent)"
            )
        if audio is not None and audio.shape[1] * audio.shape[3] != cfg.audio_in_channels:
            raise ValueError(
                f"the audio latent has {audio.shape[1]} x {audio.shape[3]} features per step, this LTX-2 model "
                f"expects {cfg.audio_in_channels}: use a latent made for LTX-2 (e.g. LTX-2 Empty Latent)"
            )


PERTURBATIONS_KEY = "openltx_perturbations"


def _perturbations(transformer_options: Mapping[str, Any], batch: int) -> Perturbations | None:
    """STG / modality-isolation skips a guider put in ``transformer_options``.

    ``transformer_options["openltx_perturbations"]`` is a ``ltx2.inputs.Perturbations`` with one
    entry per batch item of this model call (a guider that batches cond / uncond / perturbed
    passes builds it in that order), or one whose single entry applies to every item.
    """
    value = transformer_options.get(PERTURBATIONS_KEY) if transformer_options else None
    if value is None:
        return None
    if not isinstance(value, Perturbations):
        raise TypeError(f"transformer_options[{PERTURBATIONS_KEY!r}] must be an ltx2.inputs.Perturbations")
    if len(value.per_sample) == batch:
        return value
    if len(value.per_sample) == 1:
        return Perturbations(value.per_sample * batch)
    raise ValueError(
        f"transformer_options[{PERTURBATIONS_KEY!r}] covers {len(value.per_sample)} batch items, the model call has {batch}"
    )


def _interruption_point(_block: int) -> None:
    """Called after every transformer block: lets ComfyUI's Cancel stop a long forward."""
    mm.throw_exception_if_processing_interrupted()


# --------------------------------------------------------------------------- BaseModel
class LTX2Model(comfy.model_base.BaseModel):
    """ComfyUI's view of LTX-2: rectified flow (``ModelType.FLUX``), joint AV latent."""

    def __init__(self, model_config: LTX2ModelConfig, device=None) -> None:
        super().__init__(model_config, comfy.model_base.ModelType.FLUX, device=device, unet_model=LTX2DiffusionModel)
        # appended conditioning tokens count in the memory estimate (CONDAppendedTokens.size)
        self.memory_usage_factor_conds = (KEYFRAMES_KEY, REFERENCE_KEY)

    def extra_conds(self, **kwargs):
        out = super().extra_conds(**kwargs)  # cross_attn -> c_crossattn (CONDCrossAttn)
        cfg: LTX2ModelConfig = self.model_config
        cross_attn = kwargs.get("cross_attn")
        latent_shapes = kwargs.get("latent_shapes")
        if cross_attn is not None and cross_attn.shape[-1] != cfg.video_context_width:
            raise ValueError(
                f"the conditioning's text features are {cross_attn.shape[-1]} wide, this LTX-2 model expects "
                f"{cfg.video_context_width}; encode the prompt with the matching LTX-2 text encoder"
            )
        audio_context = kwargs.get("audio_context")
        has_audio = latent_shapes is not None and any(len(s) == 4 for s in latent_shapes)
        if audio_context is None and cross_attn is not None and has_audio:
            # The diffusion model then reuses the video context for the audio stream.
            if cross_attn.shape[-1] != cfg.audio_context_width:
                raise ValueError(
                    f"the conditioning has no 'audio_context' and its video context ({cross_attn.shape[-1]} wide) "
                    f"cannot stand in for it: this model's audio stream expects {cfg.audio_context_width}-wide text "
                    "features; encode the prompt with the LTX-2 text encoder node"
                )
        if audio_context is not None:
            if audio_context.shape[-1] != cfg.audio_context_width:
                raise ValueError(
                    f"the conditioning's audio_context is {audio_context.shape[-1]} wide, this LTX-2 model expects "
                    f"{cfg.audio_context_width}"
                )
            # CONDCrossAttn: cond and uncond of different lengths still batch (repeat padding).
            out["audio_context"] = comfy.conds.CONDCrossAttn(audio_context)
        context_mask = kwargs.get("context_mask")
        if context_mask is not None:
            out["context_mask"] = comfy.conds.CONDRegular(context_mask)
        frame_rate = kwargs.get("frame_rate")
        out["frame_rate"] = comfy.conds.CONDConstant(float(frame_rate) if frame_rate else DEFAULT_FRAME_RATE)
        if latent_shapes is not None:
            out["latent_shapes"] = comfy.conds.CONDConstant(latent_shapes)
        token_mask = kwargs.get(DENOISE_MASK_KEY)
        if token_mask is not None:
            out[DENOISE_MASK_KEY] = comfy.conds.CONDRegular(token_mask)
        reference_audio = kwargs.get(REFERENCE_AUDIO_KEY)
        if reference_audio is not None:
            features = cfg.transformer_config.audio_in_channels
            if reference_audio.ndim != 4 or reference_audio.shape[1] * reference_audio.shape[3] != features:
                raise ValueError(
                    f"conditioning {REFERENCE_AUDIO_KEY!r}: latent {tuple(reference_audio.shape)} does not fit this "
                    f"model's audio latent (B, 8, T, 16); encode the reference with this model's audio VAE"
                )
            out[REFERENCE_AUDIO_KEY] = comfy.conds.CONDRegular(reference_audio)
        for key, kind in ((KEYFRAMES_KEY, C.Keyframe), (REFERENCE_KEY, C.ReferenceVideo)):
            items = kwargs.get(key)
            if items:
                if not all(isinstance(i, kind) for i in items):
                    raise TypeError(f"conditioning key {key!r} must hold {kind.__name__} items (from an OpenLTX node)")
                channels = cfg.transformer_config.in_channels
                bad = [tuple(i.latent.shape) for i in items if i.latent.ndim != 5 or i.latent.shape[1] != channels]
                if bad:
                    raise ValueError(
                        f"conditioning {key!r}: latents {bad} do not fit this model's video latent "
                        f"(B, {channels}, F, H, W); encode them with this model's video VAE"
                    )
                out[key] = CONDAppendedTokens(tuple(items))
        return out

    def memory_required(self, input_shape, cond_shapes={}):
        # The samplers pass the packed (B, 1, N) shape of a joint latent, whose N counts every
        # channel; BaseModel's estimate expects (B, C, *tokens).  Both streams of the released
        # models carry 128 values per token, so N // 128 is the token count.
        shape = list(input_shape)
        channels = self.model_config.transformer_config.in_channels
        if len(shape) == 3 and shape[1] == 1:
            shape = [shape[0], channels, max(1, shape[2] // channels)]
        return super().memory_required(shape, cond_shapes)
