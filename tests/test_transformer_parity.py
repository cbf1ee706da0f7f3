"""Our transformer against Lightricks' ltx-core 1.0.0 on the same random weights and inputs.

Every case runs in float32 and requires ``‖ours − ref‖ / ‖ref‖ ≤ 1e-5`` and
``max|ours − ref| / max|ref| ≤ 1e-5`` on the velocities of every stream present.
"""

from __future__ import annotations

import pytest
import torch

from ltx_reference import randomize_, reference_model, to_modality, to_perturbations
from ltx_core.model.transformer.model import X0Model

from openltx.ltx2 import positions as P
from openltx.ltx2.config import TransformerConfig
from openltx.ltx2.inputs import Perturbations, Skip, SkipRule, StreamInput
from openltx.ltx2.transformer import LTXAVTransformer, velocity_to_x0
from openltx.model_loaders.tiny_layouts import tiny_transformer_values

TOL = 1e-5
FPS = 24.0


def tiny_header(version: str, **over) -> dict:
    """The tiny checkpoints' transformer (LTX2_SPEC §1.7): every code path at a few thousand parameters.

    The video RoPE gets 16 // 6 = 2 frequencies per axis → 6 angles for 8 slots, so the
    2-angle front pad is exercised exactly as in the real 2046/2048 case.
    """
    h = tiny_transformer_values(version)  # the tiny file's header + audio_in_channels (ltx-core's default, 128)
    h["av_ca_timestep_scale_multiplier"] = 500.0  # ≠ timestep multiplier: catches a swapped factor
    h.update(over)
    return h


def wide_header(version: str) -> dict:
    """Two blocks at the real head sizes (video 8×128 = 1024, audio 8×64 = 512)."""
    return tiny_header(
        version,
        num_attention_heads=8,
        attention_head_dim=128,
        cross_attention_dim=1024,
        audio_num_attention_heads=8,
        audio_attention_head_dim=64,
        audio_cross_attention_dim=512,
        caption_channels=384,
        av_ca_timestep_scale_multiplier=1000.0,
    )


class Pair:
    """Our model and the reference holding identical random weights."""

    def __init__(self, header: dict, seed: int = 0) -> None:
        self.header = header
        self.cfg = TransformerConfig.from_header(header)
        self.ours = randomize_(LTXAVTransformer(self.cfg), seed).eval()
        sd = {k: v.clone() for k, v in self.ours.state_dict().items()}
        self.ref = reference_model(header, sd)

    def context_dims(self) -> tuple[int, int]:
        if self.cfg.caption_proj_before_connector:  # 2.3: text arrives at stream width
            return self.cfg.video_dim, self.cfg.audio_dim
        return self.cfg.caption_channels, self.cfg.caption_channels

    def inputs(self, batch=2, frames=3, height=2, width=3, sigma=(0.7, 0.3), seed=1, text_len=5):
        g = torch.Generator().manual_seed(seed)
        sig = torch.tensor(sigma[:batch], dtype=torch.float32)
        tv = frames * height * width
        ta = P.audio_latent_steps(8 * (frames - 1) + 1, FPS)
        cv, ca = self.context_dims()
        video = StreamInput(
            latent=torch.randn(batch, tv, self.cfg.in_channels, generator=g),
            timesteps=sig[:, None].expand(batch, tv).clone(),
            sigma=sig,
            positions=P.video_positions(batch, frames, height, width, FPS),
            context=torch.randn(batch, text_len, cv, generator=g),
        )
        audio = StreamInput(
            latent=torch.randn(batch, ta, self.cfg.audio_in_channels, generator=g),
            timesteps=sig[:, None].expand(batch, ta).clone(),
            sigma=sig,
            positions=P.audio_positions(batch, ta),
            context=torch.randn(batch, text_len, ca, generator=g),
        )
        return video, audio

    def run(self, video, audio, perturbations=None):
        batch = (video or audio).latent.shape[0]
        with torch.no_grad():
            ours = self.ours(video, audio, perturbations)
            ref = self.ref(
                to_modality(video) if video is not None else None,
                to_modality(audio) if audio is not None else None,
                to_perturbations(perturbations, batch),
            )
        return ours, ref


def assert_close(ours, ref, label=""):
    assert (ours is None) == (ref is None), label
    if ref is None:
        return
    assert ours.shape == ref.shape, f"{label}: shape {tuple(ours.shape)} vs reference {tuple(ref.shape)}"
    assert torch.isfinite(ours).all(), label
    rel = ((ours - ref).norm() / ref.norm()).item()
    max_rel = ((ours - ref).abs().max() / ref.abs().max()).item()
    assert rel <= TOL and max_rel <= TOL, f"{label}: relative error {rel:.3g} (max {max_rel:.3g}) > {TOL}"


def assert_pair(result, label=""):
    (ov, oa), (rv, ra) = result
    assert_close(ov, rv, f"{label} video")
    assert_close(oa, ra, f"{label} audio")


VERSIONS = ["2.0", "2.3"]


@pytest.fixture(scope="module", params=VERSIONS)
def pair(request):
    return Pair(tiny_header(request.param))


def test_full_audio_video(pair):
    assert_pair(pair.run(*pair.inputs()), "AV")


def test_video_only(pair):
    video, _ = pair.inputs()
    (ov, oa), (rv, ra) = pair.run(video, None)
    assert oa is None
    assert_close(ov, rv, "video-only")


def test_audio_only(pair):
    _, audio = pair.inputs()
    (ov, oa), (rv, ra) = pair.run(None, audio)
    assert ov is None
    assert_close(oa, ra, "audio-only")


def test_per_token_timesteps_first_frame_clean(pair):
    """Image-to-video: latent frame 0 at σ = 0 while the rest denoises."""
    video, audio = pair.inputs()
    ts = video.timesteps.clone()
    ts[:, :6] = 0.0  # first latent frame = 2×3 tokens
    ts[1, 6:9] = 0.35  # a third distinct value in one sample: the gather path
    video = StreamInput(**{**video.__dict__, "timesteps": ts})
    assert_pair(pair.run(video, audio), "per-token")


def test_per_sample_sigma_and_audio_at_other_sigma(pair):
    video, audio = pair.inputs(sigma=(0.9, 0.05))
    audio = StreamInput(**{**audio.__dict__, "sigma": torch.tensor([0.2, 0.6]),
                           "timesteps": torch.tensor([[0.2], [0.6]])})
    assert_pair(pair.run(video, audio), "per-sample σ")


def test_stg_partial_batch(pair):
    """STG on block 1 for batch item 0 only (blend path); item 1 must be unchanged."""
    video, audio = pair.inputs()
    pert = Perturbations.build(
        2, [SkipRule(Skip.VIDEO_SELF_ATTN, frozenset({1})), SkipRule(Skip.AUDIO_SELF_ATTN, frozenset({0}))], items=[0]
    )
    result = pair.run(video, audio, pert)
    assert_pair(result, "STG partial")
    (plain_v, _), _ = pair.run(video, audio)
    (stg_v, _), _ = result
    assert torch.equal(stg_v[1], plain_v[1]) or torch.allclose(stg_v[1], plain_v[1], atol=1e-6)
    assert not torch.allclose(stg_v[0], plain_v[0], atol=1e-4)


def test_stg_whole_batch(pair):
    video, audio = pair.inputs()
    pert = Perturbations.build(2, [SkipRule(Skip.VIDEO_SELF_ATTN, frozenset({0, 1}))])
    assert_pair(pair.run(video, audio, pert), "STG all")


def test_modality_isolation(pair):
    """Skip a2v and v2a in every block for the whole batch: output must change and match."""
    video, audio = pair.inputs()
    pert = Perturbations.build(2, [SkipRule(Skip.A2V_CROSS_ATTN), SkipRule(Skip.V2A_CROSS_ATTN)])
    result = pair.run(video, audio, pert)
    assert_pair(result, "isolation")
    (plain_v, plain_a), _ = pair.run(video, audio)
    assert not torch.allclose(result[0][0], plain_v, atol=1e-4)
    assert not torch.allclose(result[0][1], plain_a, atol=1e-4)


def test_partial_isolation(pair):
    video, audio = pair.inputs()
    pert = Perturbations.build(2, [SkipRule(Skip.A2V_CROSS_ATTN, frozenset({1}))], items=[1])
    assert_pair(pair.run(video, audio, pert), "partial isolation")


def test_appended_tokens_with_attention_bias(pair):
    """Keyframe tokens appended with their own positions, and an attention-strength mask."""
    video, audio = pair.inputs()
    g = torch.Generator().manual_seed(5)
    extra = 2 * 3  # one latent frame of 2×3 tokens, placed at pixel frame 16
    lat = torch.cat([video.latent, torch.randn(2, extra, pair.cfg.in_channels, generator=g)], 1)
    pos = torch.cat([video.positions, P.video_positions(2, 1, 2, 3, FPS, frame_offset=16)], 2)
    ts = torch.cat([video.timesteps, torch.zeros(2, extra)], 1)
    n = lat.shape[1]
    strength = torch.ones(2, n, n)
    noisy = n - extra
    strength[:, :noisy, noisy:] = 0.4
    strength[:, noisy:, :noisy] = 0.4
    strength[1, :3, noisy:] = 0.0  # fully masked entries
    video = StreamInput(lat, ts, video.sigma, pos, video.context, attention_mask=strength)
    assert_pair(pair.run(video, audio), "appended+bias")


def test_context_mask(pair):
    video, audio = pair.inputs()
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[0, :2] = 0
    video = StreamInput(**{**video.__dict__, "context_mask": mask})
    assert_pair(pair.run(video, audio), "context mask")


def test_disabled_stream(pair):
    video, audio = pair.inputs()
    audio = StreamInput(**{**audio.__dict__, "enabled": False})
    assert_pair(pair.run(video, audio), "audio disabled")


def test_x0_conversion(pair):
    video, audio = pair.inputs()
    ts = video.timesteps.clone()
    ts[:, :6] = 0.0
    video = StreamInput(**{**video.__dict__, "timesteps": ts})
    with torch.no_grad():
        ov, oa = pair.ours(video, audio)
        x0v, x0a = velocity_to_x0(video.latent, ov, video.timesteps), velocity_to_x0(audio.latent, oa, audio.timesteps)
        # ltx-core multiplies by the timesteps tensor directly, so give it (B, T, 1).
        mv = to_modality(StreamInput(**{**video.__dict__, "timesteps": ts[..., None]}))
        ma = to_modality(StreamInput(**{**audio.__dict__, "timesteps": audio.timesteps[..., None]}))
        rv, ra = X0Model(pair.ref)(mv, ma, to_perturbations(None, 2))
    assert_close(x0v, rv, "x0 video")
    assert_close(x0a, ra, "x0 audio")
    assert torch.equal(x0v[:, :6], video.latent[:, :6])  # σ = 0 tokens pass through


@pytest.mark.parametrize("version", VERSIONS)
def test_wide_config(version):
    """Widths that are not tiny (1024 / 512, 128/64-wide heads) so small-shape luck can't hide bugs."""
    pair = Pair(wide_header(version), seed=3)
    video, audio = pair.inputs(frames=3, height=4, width=6)
    ts = video.timesteps.clone()
    ts[:, :24] = 0.0
    video = StreamInput(**{**video.__dict__, "timesteps": ts})
    pert = Perturbations.build(2, [SkipRule(Skip.VIDEO_SELF_ATTN, frozenset({1}))], items=[1])
    assert_pair(pair.run(video, audio, pert), f"wide {version}")


def test_interleaved_rope_and_fp32_grid():
    """Legacy settings still follow the header (never a silent default)."""
    pair = Pair(tiny_header("2.0", rope_type="interleaved", frequencies_precision="float32"))
    assert_pair(pair.run(*pair.inputs()), "interleaved")


def test_header_numerics_change_output():
    """rope_type / frequencies_precision / av_ca multiplier each change the numbers."""
    base = Pair(tiny_header("2.0"))
    video, audio = base.inputs()
    with torch.no_grad():
        ref_v, _ = base.ours(video, audio)
    for change in ({"rope_type": "interleaved"}, {"av_ca_timestep_scale_multiplier": 1000.0}):
        cfg = TransformerConfig.from_header(tiny_header("2.0", **change))
        other = LTXAVTransformer(cfg).eval()
        other.load_state_dict(base.ours.state_dict())
        with torch.no_grad():
            v, _ = other(video, audio)
        assert not torch.allclose(v, ref_v, atol=1e-5), change
