"""LTX-2 steppers: euler and res_2s, as k-diffusion-style sampler functions (pure torch).

Both functions have the signature ComfyUI's ``KSAMPLER`` calls,
``(model, x, sigmas, extra_args=None, callback=None, disable=None, **options)``, where
``model(x, sigma_batch, **extra_args)`` returns the x0 (denoised) prediction.  Nothing here
imports ComfyUI: ``comfy_samplers.py`` wraps them and finds what they need from the host
(the stream shapes of a packed latent, a denoise mask, the clean latent).

Latent layout.  ``x`` is either one stream — video ``(B, C, F', H', W')`` or audio
``(B, C, T, M)`` — or ComfyUI's packed joint latent ``(B, 1, N)``: every stream flattened per
batch item and concatenated (video first).  ``latent_shapes`` lists the streams' shapes; it
only matters for res_2s, whose SDE noise is drawn per stream in the reference's token order.

Semantics follow ltx-core / ltx_pipelines 1.0.0:

* euler: v = (x − x0)/σ, x ← x + v·(σ_next − σ), in float32 (``EulerDiffusionStep``).
* res_2s (``res2s_audio_video_denoising_loop``, ``Res2sDiffusionStep``): exponential RK2 with
  c2 = 0.5 evaluated at the sub-level √(σ·σ_next); after the substep and after the step,
  SDE noise with σ_up = σ_next/2 is mixed in (variance preserving); the noise is float64,
  normalised over the whole tensor and then per batch item, drawn from two generators seeded
  ``noise_seed`` (steps) and ``noise_seed + 10000`` (substeps), video then audio each time;
  while h < 0.5 and σ > 0.03 the anchor is refined 100 times ("bongmath"); a final σ = 0 is
  replaced by 0.0011 and followed by one more x0 evaluation whose prediction is the result.
  Math in float64; the state is stored back in ``x``'s dtype after every step, as the
  reference stores it in the model dtype.  With a denoise mask (1 = denoise, 0 = keep) the
  noised state is blended with the clean latent after each injection (the reference's
  default "legacy" mode); the x0 blend itself belongs to the guider / ComfyUI's inpaint
  wrapper, which already applied it to what ``model`` returns.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

C2 = 0.5  # res_2s substep position (midpoint in log-σ); the sub-level √(σσ') assumes it
FINAL_SIGMA = 0.0011  # stands in for a last σ = 0, where log-σ steps are undefined
SUBSTEP_SEED_OFFSET = 10000
BONGMATH_MAX_H = 0.5
BONGMATH_MIN_SIGMA = 0.03
REFERENCE_NOISE_SEED = -1  # ltx_pipelines' res_2s loop default (its HQ pipeline never sets it)


# ------------------------------------------------------------------------------------- euler
def euler_step(x: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """One Euler step on the flow ODE, in float32; returns ``x``'s dtype.

    The velocity is rounded to ``x``'s dtype before use, as the reference does.
    """
    velocity = ((x.float() - x0.float()) / float(sigma)).to(x.dtype)
    dt = (torch.as_tensor(sigma_next, dtype=torch.float32) - torch.as_tensor(sigma, dtype=torch.float32))
    return (x.float() + velocity.float() * dt.to(x.device)).to(x.dtype)


def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """The LTX-2 Euler loop: one model evaluation per step."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": denoised})
        x = euler_step(x, denoised, sigmas[i], sigmas[i + 1])
    return x


# ----------------------------------------------------------------------------- res_2s math
def phi(j: int, z: float) -> float:
    """φ_j(z) = (e^z − Σ_{k<j} z^k/k!) / z^j, with φ_j(0) = 1/j!."""
    if abs(z) < 1e-10:
        return 1.0 / math.factorial(j)
    return (math.exp(z) - sum(z**k / math.factorial(k) for k in range(j))) / z**j


def res2s_coefficients(h: float, c2: float = C2) -> tuple[float, float, float]:
    """(a21, b1, b2) of the exponential RK2 tableau for a log-σ step h."""
    a21 = c2 * phi(1, -h * c2)
    b2 = phi(2, -h) / c2
    b1 = phi(1, -h) - b2
    return a21, b1, b2


def sde_step(
    sample: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """Re-express the deterministic move ``sample`` (at σ) -> ``target`` (at σ_next) as a
    variance-preserving SDE step with σ_up = σ_next/2.  ``target`` itself when σ_next = 0.

    sigma, sigma_next: 0-d tensors (their dtype sets the precision of the coefficients).
    Returns ``target``'s dtype.
    """
    sigma_up = torch.minimum(sigma_next * 0.5, sigma_next * 0.9999)
    if bool(sigma_up == 0) or bool(sigma_next == 0):
        return target
    residual = (sigma_next**2 - sigma_up**2).clamp(min=0) ** 0.5
    alpha_ratio = (1.0 - sigma_next) + residual  # signal part + the deterministic noise part
    sigma_down = residual / alpha_ratio
    if torch.isnan(sigma_down):
        sigma_down = sigma_next.to(sigma_down.dtype)
    alpha_ratio = torch.nan_to_num(alpha_ratio, 1.0)
    eps = (sample - target) / (sigma - sigma_next)
    x0 = sample - sigma * eps
    return (alpha_ratio * (x0 + sigma_down * eps) + sigma_up * noise).to(target.dtype)


# ------------------------------------------------------------------------------ SDE noise
def _token_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    """The reference's patchified (B, tokens, features) shape of a stream latent."""
    if len(shape) == 5:  # video (B, C, F, H, W) -> (B, F·H·W, C)
        return shape[0], shape[2] * shape[3] * shape[4], shape[1]
    if len(shape) == 4:  # audio (B, C, T, M) -> (B, T, C·M)
        return shape[0], shape[2], shape[1] * shape[3]
    if len(shape) == 3:  # already (B, tokens, features)
        return tuple(shape)
    raise ValueError(f"cannot draw res_2s noise for a latent of shape {tuple(shape)}: expected 3, 4 or 5 dims")


def _from_tokens(noise: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of ``_token_shape``: (B, tokens, features) -> the stream's own layout."""
    if len(shape) == 5:
        b, c, f, h, w = shape
        return noise.reshape(b, f, h, w, c).permute(0, 4, 1, 2, 3)
    if len(shape) == 4:
        b, c, t, m = shape
        return noise.reshape(b, t, c, m).permute(0, 2, 1, 3)
    return noise


def normalized_noise(shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """float64 Gaussian noise for one stream, drawn in token order (B, tokens, features),
    standardised over the whole tensor and then per batch item; returned in ``shape``."""
    noise = torch.randn(_token_shape(shape), generator=generator, dtype=torch.float64, device=generator.device)
    noise = (noise - noise.mean()) / noise.std()
    noise = (noise - noise.mean(dim=(-2, -1), keepdim=True)) / noise.std(dim=(-2, -1), keepdim=True)
    return _from_tokens(noise, shape)


def stream_noise(x: torch.Tensor, latent_shapes: Sequence[Sequence[int]], generator: torch.Generator) -> torch.Tensor:
    """Noise shaped like ``x`` (one stream, or the packed (B, 1, N) of ``latent_shapes``)."""
    if len(latent_shapes) == 1:
        return normalized_noise(x.shape, generator).reshape(x.shape)
    parts = [normalized_noise(s, generator).reshape(s[0], 1, -1) for s in latent_shapes]
    noise = torch.cat(parts, dim=-1)
    if noise.shape != x.shape:
        raise ValueError(f"stream shapes {[tuple(s) for s in latent_shapes]} pack to {tuple(noise.shape)}, "
                         f"but the latent is {tuple(x.shape)}")
    return noise


# --------------------------------------------------------------------------------- res_2s
def sample_res_2s(
    model,
    x,
    sigmas,
    extra_args=None,
    callback=None,
    disable=None,
    noise_seed: int = REFERENCE_NOISE_SEED,
    noise_seed_substep: int | None = None,
    bongmath: bool = True,
    bongmath_max_iter: int = 100,
    latent_shapes: Sequence[Sequence[int]] | None = None,
    denoise_mask: torch.Tensor | None = None,
    clean_latent: torch.Tensor | None = None,
):
    """The res_2s loop: two model evaluations per step (+1 when the schedule ends in 0).

    latent_shapes: the streams' shapes when ``x`` is packed (default: ``[x.shape]``).
    denoise_mask / clean_latent: broadcastable to ``x``; the noised state is blended
    ``x·m + clean·(1−m)`` after every noise injection.
    """
    extra_args = {} if extra_args is None else extra_args
    latent_shapes = [tuple(x.shape)] if latent_shapes is None else [tuple(s) for s in latent_shapes]
    if (denoise_mask is None) != (clean_latent is None):
        raise ValueError("res_2s needs both a denoise mask and the clean latent, or neither")
    # Kept in their own dtype (the float64 state promotes them), as the reference blends.
    mask = denoise_mask
    clean = None if clean_latent is None else clean_latent.float()
    if noise_seed_substep is None:
        noise_seed_substep = noise_seed + SUBSTEP_SEED_OFFSET
    step_gen = torch.Generator(device=x.device).manual_seed(noise_seed)
    substep_gen = torch.Generator(device=x.device).manual_seed(noise_seed_substep)
    state_dtype = x.dtype
    s_in = x.new_ones([x.shape[0]])

    def denoise(latent: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return model(latent.to(state_dtype), sigma * s_in, **extra_args).double()

    def inject(sample, target, sigma, sigma_next, generator):
        noise = stream_noise(sample, latent_shapes, generator)  # drawn even when unused
        out = sde_step(sample, target, sigma, sigma_next, noise)
        return out if mask is None else out * mask + clean * (1 - mask)

    n_steps = len(sigmas) - 1
    ends_at_zero = bool(sigmas[-1] == 0)
    if ends_at_zero:
        sigmas = torch.cat([sigmas[:-1], torch.tensor([FINAL_SIGMA, 0.0], device=sigmas.device)])
    sig64 = sigmas.double().cpu()
    hs = -torch.log(sig64[1:] / sig64[:-1])

    for i in range(n_steps):
        sigma, sigma_next = sigmas[i].double(), sigmas[i + 1].double()
        h = hs[i].item()
        a21, b1, b2 = res2s_coefficients(h)
        sub_sigma = torch.sqrt(sigma * sigma_next)
        anchor = x.double()

        x0_1 = model(x, sigmas[i] * s_in, **extra_args).double()
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": x0_1.to(state_dtype)})
        eps_1 = x0_1 - anchor
        x_mid = inject(anchor, anchor + h * a21 * eps_1, sigma, sub_sigma, substep_gen)
        if bongmath and h < BONGMATH_MAX_H and sigma > BONGMATH_MIN_SIGMA:
            # Fixed-point refinement: pick the anchor from which the (noised) midpoint is
            # exactly one a21-move along its own x0 direction.
            for _ in range(bongmath_max_iter):
                anchor = x_mid - h * a21 * eps_1
                eps_1 = x0_1 - anchor

        x0_2 = denoise(x_mid, sub_sigma)
        eps_2 = x0_2 - anchor
        x_next = anchor + h * (b1 * eps_1 + b2 * eps_2)
        # The reference works out the step-level SDE coefficients from the schedule's own
        # (float32) values, the substep's from float64 ones; the same here, to the last bit.
        x = inject(anchor, x_next, sigmas[i], sigmas[i + 1], step_gen).to(state_dtype)

    if ends_at_zero:
        x = model(x, sigmas[n_steps] * s_in, **extra_args).to(state_dtype)
    return x


SAMPLERS: dict[str, Callable] = {"euler": sample_euler, "res_2s": sample_res_2s}
