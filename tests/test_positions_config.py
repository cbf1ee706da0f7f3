"""Token order, positions and header-config rules, checked against ltx-core where it has them."""

from __future__ import annotations

import pytest
import torch

from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
from ltx_core.tools import AudioLatentTools, VideoLatentTools
from ltx_core.types import AudioLatentShape, VideoLatentShape

from openltx.ltx2 import positions as P
from openltx.ltx2.config import ConfigError, TransformerConfig, official_19b_header


def test_video_positions_match_reference():
    shape = VideoLatentShape(batch=2, channels=128, frames=4, height=3, width=5)
    tools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), shape, fps=25.0)
    state = tools.create_initial_state(device="cpu", dtype=torch.float32)
    ours = P.video_positions(2, 4, 3, 5, 25.0)
    assert ours.shape == state.positions.shape == (2, 3, 60, 2)
    assert torch.equal(ours, state.positions)
    # causal fix: frame 0 covers pixel frame [0, 1), frame 1 covers [1, 9)
    assert ours[0, 0, 0].tolist() == pytest.approx([0.0, 1 / 25.0])
    assert ours[0, 0, 15].tolist() == pytest.approx([1 / 25.0, 9 / 25.0])


def test_video_token_order_matches_reference():
    lat = torch.randn(2, 128, 3, 4, 5)
    ref = VideoLatentPatchifier(patch_size=1).patchify(lat)
    ours = P.patchify_video(lat)
    assert torch.equal(ours, ref)
    assert torch.equal(P.unpatchify_video(ours, 3, 4, 5), lat)


def test_audio_positions_and_order_match_reference():
    shape = AudioLatentShape(batch=2, channels=8, frames=26, mel_bins=16)
    patchifier = AudioPatchifier(patch_size=1)
    tools = AudioLatentTools(patchifier, shape)
    state = tools.create_initial_state(device="cpu", dtype=torch.float32)
    assert torch.equal(P.audio_positions(2, 26), state.positions)
    lat = torch.randn(2, 8, 26, 16)
    assert torch.equal(P.patchify_audio(lat), patchifier.patchify(lat))
    assert torch.equal(P.unpatchify_audio(P.patchify_audio(lat), 8, 16), lat)


def test_audio_length_for_video():
    assert P.audio_latent_steps(121, 24.0) == AudioLatentShape.from_duration(1, 121 / 24.0).frames == 126
    assert P.audio_latent_steps(17, 24.0) == 18


@pytest.mark.parametrize("key", ["rope_type", "frequencies_precision", "av_ca_timestep_scale_multiplier",
                                 "positional_embedding_max_pos", "num_layers"])
def test_missing_numeric_key_is_an_error(key):
    header = official_19b_header()
    del header[key]
    with pytest.raises(ConfigError, match=key):
        TransformerConfig.from_header(header, source="x.safetensors")


def test_unsupported_fixed_value_is_an_error():
    header = official_19b_header()
    header["qk_norm"] = "layer_norm"
    with pytest.raises(ConfigError, match="qk_norm"):
        TransformerConfig.from_header(header)


def test_official_19b_sizes():
    cfg = TransformerConfig.from_header(official_19b_header())
    assert (cfg.video_dim, cfg.audio_dim, cfg.adaln_rows) == (4096, 2048, 6)
    assert cfg.rope_fp64_grid and cfg.has_caption_projection and cfg.is_av
    assert TransformerConfig.from_header(cfg.to_header()) == cfg


def test_head_mismatch_is_an_error():
    header = official_19b_header()
    header["audio_num_attention_heads"] = 16
    with pytest.raises(ConfigError, match="heads"):
        TransformerConfig.from_header(header)
