"""Structural promises of the transformer: injected layers, AdaLN per distinct σ, key names."""

from __future__ import annotations

import torch

from test_transformer_parity import Pair, tiny_header

from openltx.ltx2.config import TransformerConfig, official_19b_header
from openltx.ltx2.inputs import StreamInput
from openltx.ltx2.ops import TorchOps
from openltx.ltx2.transformer import LTXAVTransformer


class CountingOps:
    """An ``operations`` namespace whose layers are marked, to find any layer built around it."""

    class Linear(TorchOps.Linear):
        injected = True

    class LayerNorm(TorchOps.LayerNorm):
        injected = True

    class RMSNorm(TorchOps.RMSNorm):
        injected = True


def test_every_layer_comes_from_operations():
    for version in ("2.0", "2.3"):
        model = LTXAVTransformer(TransformerConfig.from_header(tiny_header(version)), operations=CountingOps)
        layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm, torch.nn.RMSNorm))]
        assert layers, "no layers found"
        stray = [type(m).__name__ for m in layers if not getattr(m, "injected", False)]
        assert not stray, f"{version}: layers built without `operations`: {stray}"


def test_dtype_and_device_reach_every_tensor():
    model = LTXAVTransformer(TransformerConfig.from_header(tiny_header("2.3")), dtype=torch.bfloat16, device="meta")
    kinds = {(t.dtype, t.device.type) for t in model.state_dict().values()}
    assert kinds == {(torch.bfloat16, "meta")}


def test_adaln_runs_once_per_distinct_sigma():
    """The AdaLN projection sees one row per distinct σ, not one per token."""
    pair = Pair(tiny_header("2.0"))
    video, audio = pair.inputs()
    rows = []
    hook = pair.ours.adaln_single.linear.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    try:
        with torch.no_grad():
            pair.ours(video, audio)  # one σ per sample: B rows
            ts = video.timesteps.clone()
            ts[:, :6] = 0.0  # i2v: first frame clean → distinct values {0, 0.3, 0.7}
            pair.ours(StreamInput(**{**video.__dict__, "timesteps": ts}), audio)
    finally:
        hook.remove()
    tokens = video.latent.shape[0] * video.latent.shape[1]
    assert rows == [2, 3], f"AdaLN rows per forward {rows} (tokens: {tokens})"


def test_state_dict_keys_match_the_official_19b_inventory():
    """Key names and shapes of the real 19B transformer (LTX2_SPEC §1.2), built on meta."""
    model = LTXAVTransformer(TransformerConfig.from_header(official_19b_header()), device="meta")
    sd = model.state_dict()
    expect = {
        "patchify_proj.weight": (4096, 128),
        "adaln_single.emb.timestep_embedder.linear_1.weight": (4096, 256),
        "adaln_single.linear.weight": (24576, 4096),
        "caption_projection.linear_1.weight": (4096, 3840),
        "scale_shift_table": (2, 4096),
        "proj_out.weight": (128, 4096),
        "av_ca_video_scale_shift_adaln_single.linear.weight": (16384, 4096),
        "av_ca_a2v_gate_adaln_single.linear.weight": (4096, 4096),
        "av_ca_audio_scale_shift_adaln_single.linear.weight": (8192, 2048),
        "av_ca_v2a_gate_adaln_single.linear.weight": (2048, 2048),
        "transformer_blocks.47.scale_shift_table": (6, 4096),
        "transformer_blocks.0.attn1.q_norm.weight": (4096,),
        "transformer_blocks.0.ff.net.0.proj.weight": (16384, 4096),
        "transformer_blocks.0.ff.net.2.weight": (4096, 16384),
        "transformer_blocks.0.audio_to_video_attn.to_q.weight": (2048, 4096),
        "transformer_blocks.0.audio_to_video_attn.to_out.0.weight": (4096, 2048),
        "transformer_blocks.0.video_to_audio_attn.to_k.weight": (2048, 4096),
        "transformer_blocks.0.scale_shift_table_a2v_ca_video": (5, 4096),
        "transformer_blocks.0.audio_ff.net.0.proj.weight": (8192, 2048),
    }
    for key, shape in expect.items():
        assert tuple(sd[key].shape) == shape, key
    assert sum(t.numel() for t in sd.values()) == 18_876_174_592
