"""The LTX-2.5 duration head and seconds -> frames: equal to diffusers 0.42.1 (fp32).

A tiny head is written in the released layout (15 tensors under ``duration_head.``, the pooler's
q / k / v stacked in ``cross_attn.in_proj_weight``) and loaded strictly; diffusers'
``LTX2DurationHead`` gets the same tensors with the pooler split into ``to_q / to_k / to_v`` and
``out_proj`` renamed ``to_out`` (the conversion lives here, in the test).  Seconds agree to 1e-5
relative; the frame rule is compared on a grid of durations, frame rates and bounds.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from ltx25_oracle import rel_err, run_oracle
from openltx.ltx2.duration_head import DurationHead, frames_for_seconds
from openltx.model_loaders.duration_head_loading import duration_head_config, is_duration_head, load_duration_head
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.model_loaders.tiny_layouts_25 import FILE_NAMES, write_tiny_duration_head

CASES = [  # (seconds, frame_rate, min_seconds, max_seconds)
    (s, fps, lo, hi)
    for s in (0.2, 0.97, 1.0, 2.49, 5.0, 7.3333, 12.5, 19.99, 20.0, 31.0)
    for fps in (24.0, 25.0, 30.0, 60.0, 23.976)
    for lo, hi in ((1.0, 20.0), (2.0, 6.0), (1.0, 1.02), (0.1, 0.2))
]


def to_diffusers(tensors: dict) -> dict:
    out = {}
    for key, t in tensors.items():
        key = key.removeprefix("duration_head.")
        if key.startswith("attention_pooler.cross_attn.in_proj_"):
            leaf = "weight" if key.endswith("weight") else "bias"
            for name, part in zip(("to_q", "to_k", "to_v"), t.chunk(3)):
                out[f"attention_pooler.{name}.{leaf}"] = part
        else:
            out[key.replace("attention_pooler.cross_attn.out_proj.", "attention_pooler.to_out.")] = t
    return out


@pytest.fixture(scope="module")
def head_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dh") / FILE_NAMES["duration_head"]
    return path, write_tiny_duration_head(path, seed=4)


@pytest.mark.slow
def test_head_and_frames_equal_diffusers(head_file, tmp_path):
    path, tensors = head_file
    head = load_duration_head(path)
    kw, *_ = duration_head_config(path)
    g = torch.Generator().manual_seed(0)
    video, audio = torch.randn(2, 12, 16, generator=g) * 3, torch.randn(2, 12, 8, generator=g) * 3
    out = run_oracle("diffusers", """
        from diffusers.pipelines.ltx2.duration_head import LTX2DurationHead
        kw = inp['kw']
        m = LTX2DurationHead(video_cross_attention_dim=kw['video_width'], audio_cross_attention_dim=kw['audio_width'],
                             pooler_hidden_dim=kw['dim'], num_queries=kw['num_queries'], num_pooler_heads=kw['heads'],
                             mlp_hidden_dim=kw['mlp_width']).eval()
        m.load_state_dict(inp['sd'], strict=True)
        v, a = inp['video'], inp['audio']
        out['both'], out['video'], out['audio'] = m(v, a), m(video_tokens=v), m(audio_tokens=a)
        frames = []
        for s, fps, lo, hi in inp['cases']:
            fake = lambda v=None, a=None, s=s: torch.tensor([s])
            frames.append(LTX2DurationHead.predict_num_frames(fake, None, None, frame_rate=fps,
                          temporal_compression_ratio=8, min_seconds=lo, max_seconds=hi))
        out['frames'] = frames
        out['predicted'] = m.predict_num_frames(v[:1], a[:1], frame_rate=24.0, temporal_compression_ratio=8)
    """, {"sd": to_diffusers(tensors), "kw": kw, "video": video, "audio": audio, "cases": CASES}, tmp_path)
    with torch.no_grad():
        ours = {"both": head(video, audio), "video": head(video_tokens=video), "audio": head(audio_tokens=audio)}
    errors = {k: rel_err(ours[k], out[k]) for k in ours}
    print("duration head vs diffusers 0.42.1, rel err:", json.dumps(errors), "seconds:", out["both"].tolist())
    assert max(errors.values()) <= 1e-5, errors
    assert ours["both"].shape == (2,) and (ours["both"] > 0).all()
    assert not torch.allclose(ours["both"], ours["video"])  # both streams count
    assert [frames_for_seconds(*c) for c in CASES] == out["frames"]
    assert frames_for_seconds(float(ours["both"][0])) == out["predicted"]


def test_frames_on_the_grid():
    assert frames_for_seconds(5.0, 24.0) == 113  # 120 frames -> 8 * 14 + 1
    assert frames_for_seconds(5.0, 25.0) == 121
    assert frames_for_seconds(100.0, 24.0) == 473  # clamped to 20 s = 480 -> 473
    assert frames_for_seconds(0.01, 24.0) == 25  # clamped to 1 s = 24 frames -> snapped up to 25
    for s in (0.5, 1.7, 3.3, 9.9, 15.0):
        f = frames_for_seconds(s, 30.0)
        assert (f - 1) % 8 == 0 and 30 <= f <= 600 + 8
    with pytest.raises(ValueError, match="min_seconds"):
        frames_for_seconds(3.0, 24.0, min_seconds=5.0, max_seconds=5.0)
    with pytest.raises(ValueError, match="frame rate"):
        frames_for_seconds(3.0, 0.0)


def test_loader_strict_and_prefixes(head_file, tmp_path):
    path, tensors = head_file
    assert len(tensors) == 15 and is_duration_head(tensors)
    head = load_duration_head(path)
    assert head.attention_pooler.heads == 4 and head.video_width == 16 and head.audio_width == 8
    assert all(torch.equal(head.state_dict()[k.removeprefix("duration_head.")], v) for k, v in tensors.items())
    bare = tmp_path / "bare.safetensors"
    save_file({k.removeprefix("duration_head."): v for k, v in tensors.items()}, str(bare))
    assert torch.equal(load_duration_head(bare).mlp_out.weight, tensors["duration_head.mlp_out.weight"])
    missing = tmp_path / "missing.safetensors"
    save_file({k: v for k, v in tensors.items() if not k.endswith("mlp_out.bias")}, str(missing))
    with pytest.raises(CheckpointError, match="missing key"):
        load_duration_head(missing)
    contradicting = tmp_path / "contra.safetensors"
    save_file(tensors, str(contradicting), metadata={"config": json.dumps({"transformer": {"cross_attention_dim": 4096}})})
    with pytest.raises(CheckpointError, match="cross_attention_dim = 4096"):
        load_duration_head(contradicting)
    other = tmp_path / "other.safetensors"
    save_file({"decoder.conv_in.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(CheckpointError, match="duration head"):
        load_duration_head(other)
    with pytest.raises(ValueError, match="connector output"):
        head(torch.randn(1, 4, 9))
    with pytest.raises(ValueError, match="video and / or the audio"):
        head()


def test_head_module_shapes():
    head = DurationHead(4096, 2048)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes["attention_pooler.cross_attn.in_proj_weight"] == (768, 256)
    assert shapes["attention_pooler.query_tokens"] == (1, 256) and shapes["mlp_out.weight"] == (1, 256)
    assert len(shapes) == 15
