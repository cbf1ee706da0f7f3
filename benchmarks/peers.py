"""Other implementations of the LTX-2 transformer, run on OUR weights for side-by-side timing.

Each ``build_<peer>(...)`` returns a ``Peer`` whose ``run(video, audio)`` takes our
``StreamInput`` pair (batch 1 or more, σ per sample) and returns velocities shaped like ours
``(B, T_v, C)``, ``(B, T_a, C_a)``, so the benchmark can report the output difference next to
the time.  Weights are shared with our model wherever the peer's layout allows (``assign=True``
on a meta-device model), so a 19B comparison holds one copy of the weights per layout.

Peers and what they need (a missing package raises ``PeerUnavailable`` with the reason):

``ltx-core``  Lightricks' ltx-core 1.0.0 (the reference; same keys as ours).
``diffusers`` diffusers >= 0.42 ``LTX2VideoTransformer3DModel``; keys converted with diffusers'
              own ``convert_ltx2_transformer_to_diffusers``.  Needs a transformers/huggingface_hub
              pair that diffusers accepts.
``comfyui``   ComfyUI core's ``LTXAVModel`` from a current ComfyUI tree (``--comfyui PATH``;
              0.3.75 has no LTX-2).  Needs that ComfyUI's imports (comfy-aimdo, ...).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import torch

PEERS = ("ltx-core", "diffusers", "comfyui")


class PeerUnavailable(RuntimeError):
    """The peer cannot be built here (package missing, incompatible version)."""


@dataclass
class Peer:
    name: str
    version: str
    run: Callable
    note: str = ""


def build(name: str, header: dict, cfg, state_dict: dict, dtype, device, comfyui_path: str | None = None) -> Peer:
    if name == "ltx-core":
        return build_ltx_core(header, state_dict, dtype)
    if name == "diffusers":
        return build_diffusers(cfg, state_dict, dtype, device)
    if name == "comfyui":
        return build_comfyui(header, cfg, state_dict, dtype, device, comfyui_path)
    raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")


# --------------------------------------------------------------------------- ltx-core
def build_ltx_core(header: dict, state_dict: dict, dtype) -> Peer:
    try:
        from ltx_reference import reference_model, to_modality, to_perturbations
        import ltx_core  # noqa: F401
    except ImportError as err:
        raise PeerUnavailable(f"ltx-core is not importable: {err}") from None
    from importlib.metadata import version

    model = reference_model(header, state_dict, dtype=dtype)

    def run(video, audio):
        batch = video.latent.shape[0]
        return model(to_modality(video), to_modality(audio), to_perturbations(None, batch))

    return Peer("ltx-core", version("ltx-core"), run)


# --------------------------------------------------------------------------- diffusers
def _diffusers_config(cfg) -> dict:
    max_pos, audio_max = cfg.positional_embedding_max_pos, cfg.audio_positional_embedding_max_pos
    return dict(
        in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        num_attention_heads=cfg.num_attention_heads, attention_head_dim=cfg.attention_head_dim,
        cross_attention_dim=cfg.cross_attention_dim,
        pos_embed_max_pos=int(max_pos[0]), base_height=int(max_pos[1]), base_width=int(max_pos[2]),
        gated_attn=cfg.apply_gated_attention, audio_gated_attn=cfg.apply_gated_attention,
        cross_attn_mod=cfg.cross_attention_adaln, audio_cross_attn_mod=cfg.cross_attention_adaln,
        audio_in_channels=cfg.audio_in_channels, audio_out_channels=cfg.audio_out_channels,
        audio_num_attention_heads=cfg.audio_num_attention_heads, audio_attention_head_dim=cfg.audio_attention_head_dim,
        audio_cross_attention_dim=cfg.audio_cross_attention_dim, audio_pos_embed_max_pos=int(audio_max[0]),
        num_layers=cfg.num_layers, norm_eps=cfg.norm_eps, caption_channels=cfg.caption_channels,
        rope_theta=cfg.positional_embedding_theta, rope_double_precision=cfg.rope_fp64_grid,
        timestep_scale_multiplier=int(cfg.timestep_scale_multiplier),
        cross_attn_timestep_scale_multiplier=int(cfg.av_ca_timestep_scale_multiplier),
        rope_type=cfg.rope_type.value, use_prompt_embeddings=cfg.has_caption_projection,
    )


def build_diffusers(cfg, state_dict: dict, dtype, device) -> Peer:
    try:
        import diffusers
        from diffusers import LTX2VideoTransformer3DModel
        from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers
    except Exception as err:  # ImportError, or a version check failing at import
        raise PeerUnavailable(f"diffusers LTX-2 transformer is not importable: {type(err).__name__}: {err}") from None
    converted = convert_ltx2_transformer_to_diffusers(dict(state_dict))
    with torch.device("meta"):
        model = LTX2VideoTransformer3DModel(**_diffusers_config(cfg))
    result = model.load_state_dict(converted, strict=False, assign=True)
    missing = [k for k in result.missing_keys if not k.startswith("keyframes_abs_pos_embedding")]
    if missing or result.unexpected_keys:
        raise PeerUnavailable(
            f"diffusers {diffusers.__version__}: key conversion left {len(missing)} missing "
            f"({missing[:4]}) and {len(result.unexpected_keys)} unexpected ({result.unexpected_keys[:4]}) keys"
        )
    for name, p in list(model.named_parameters()) + list(model.named_buffers()):
        if p.is_meta:  # an optional parameter the checkpoint lacks (unused here): zeros
            module = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(module, name.rsplit(".", 1)[-1], torch.nn.Parameter(torch.zeros(p.shape, dtype=dtype, device=device),
                                                                         requires_grad=False))
    model = model.to(device=device, dtype=dtype).eval()

    def run(video, audio):
        b = video.latent.shape[0]
        f, h, w = _grid(video)
        t = video.sigma.to(device) * cfg.timestep_scale_multiplier  # diffusers takes scaled timesteps
        out = model(
            hidden_states=video.latent, audio_hidden_states=audio.latent,
            encoder_hidden_states=video.context, audio_encoder_hidden_states=audio.context,
            timestep=t, audio_timestep=t, sigma=t, audio_sigma=t,
            num_frames=f, height=h, width=w, fps=_fps(video), audio_num_frames=audio.latent.shape[1],
            video_coords=video.positions, audio_coords=audio.positions, return_dict=False,
        )
        return out[0].reshape(b, -1, out[0].shape[-1]), out[1].reshape(b, -1, out[1].shape[-1])

    return Peer("diffusers", diffusers.__version__, run)


def _grid(video) -> tuple[int, int, int]:
    """Latent (frames, height, width) of a video ``StreamInput`` built by ``positions.video_positions``."""
    pos = video.positions[0]  # (3, T, 2)
    t = pos[0, :, 0].unique().numel()
    h = pos[1, :, 0].unique().numel()
    w = pos[2, :, 0].unique().numel()
    return t, h, w


def _fps(video) -> float:
    return float(getattr(video, "fps", 24.0))


# --------------------------------------------------------------------------- ComfyUI core
def build_comfyui(header: dict, cfg, state_dict: dict, dtype, device, comfyui_path: str | None) -> Peer:
    if not comfyui_path:
        raise PeerUnavailable("no --comfyui PATH to a current ComfyUI tree (0.3.75 has no LTX-2)")
    if comfyui_path not in sys.path:
        sys.path.insert(0, comfyui_path)
    try:
        import comfy.cli_args

        if device.type == "cpu":
            comfy.cli_args.args.cpu = True
        import comfy.ops
        from comfy.ldm.lightricks.av_model import LTXAVModel
    except Exception as err:
        raise PeerUnavailable(f"ComfyUI at {comfyui_path} has no importable LTXAVModel: {type(err).__name__}: {err}") from None
    # what core's model detection does with a real file: the header's transformer config as
    # kwargs, plus three values read from tensor shapes
    kwargs = {**header, "num_layers": cfg.num_layers, "attention_head_dim": cfg.attention_head_dim,
              "cross_attention_dim": cfg.cross_attention_dim,
              "dtype": dtype, "device": "meta", "operations": comfy.ops.disable_weight_init}
    try:
        from comfyui_version import __version__ as comfy_version
    except ImportError:
        comfy_version = "unknown"
    model = LTXAVModel(**kwargs)
    result = model.load_state_dict(state_dict, strict=False, assign=True)
    for name, p in list(model.named_parameters()):
        if p.is_meta and name.startswith(("video_embeddings_connector.", "audio_embeddings_connector.")):
            # core keeps the text connectors in the diffusion model but runs them once per prompt
            # (preprocess_text_embeds), never in forward: zeros stand in for them
            module_name, attr = name.rsplit(".", 1)
            setattr(model.get_submodule(module_name), attr,
                    torch.nn.Parameter(torch.zeros(p.shape, dtype=dtype, device=device), requires_grad=False))
    meta = [n for n, p in model.named_parameters() if p.is_meta]
    if meta:
        raise PeerUnavailable(f"ComfyUI {comfy_version} LTXAVModel has {len(meta)} weights our file lacks "
                              f"({meta[:4]}); unexpected: {result.unexpected_keys[:4]}")
    model = model.to(device=device, dtype=dtype).eval()
    from ltx2 import positions as P

    def run(video, audio):
        b = video.latent.shape[0]
        f, h, w = _grid(video)
        vx = P.unpatchify_video(video.latent, f, h, w)
        ax = P.unpatchify_audio(audio.latent, 8, audio.latent.shape[-1] // 8)
        context = torch.cat([video.context, audio.context], dim=-1)
        out = model([vx, ax], video.sigma.to(device=device, dtype=torch.float32), context, frame_rate=_fps(video),
                    transformer_options={})
        ov, oa = out
        return P.patchify_video(ov), P.patchify_audio(oa)

    return Peer("comfyui", comfy_version, run)
