"""The LTX-2.5 transformer: its files read, and its forward equal to diffusers 0.42.1's (fp32).

2.5 = the 2.3 block without the *video* feed-forward biases, plus a learned
``keyframes_abs_pos_embedding`` (1, width) added after the video input projection to the tokens
the caller marks (``StreamInput.keyframe_mask``).  The tiny files are written in the published
layout (``tiny_layouts_25.write_tiny_transformer_25``: ``model.diffusion_model.`` keys, the
published header with scaled shape keys, ``model_version`` 2.5.0) with sharp weights (q/k norm
weights ~ 1 +- 0.1).  The oracle is diffusers' ``LTX2VideoTransformer3DModel`` on the same
weights (published names -> diffusers names converted in the oracle script, with diffusers' own
single-file converter plus the 2.3 / 2.5 keys it does not rename), fed the same token positions.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from openltx.ltx2 import positions as P
from openltx.ltx2.inputs import StreamInput
from openltx.ltx2.transformer import LTXAVTransformer
from openltx.model_loaders import checkpoint
from openltx.model_loaders import tiny_layouts_25 as T25
from openltx.model_loaders.safetensors_file import CheckpointError

from ltx25_oracle import rel_err, run_oracle

PREFIX = "model.diffusion_model."
FPS = 25.0  # not 24: a test that cannot tell 24 from 25 fps cannot fail on positions


def _metadata(path) -> dict:
    with safe_open(str(path), "pt") as f:
        return dict(f.metadata())


@pytest.fixture(scope="module")
def tiny25(tmp_path_factory):
    path = tmp_path_factory.mktemp("t25") / T25.FILE_NAMES["transformer"]
    tensors = T25.write_tiny_transformer_25(path, seed=3)
    return path, tensors


def test_the_tiny_file_has_the_published_25_layout(tiny25):
    path, tensors = tiny25
    header = json.loads(_metadata(path)["config"])
    assert set(header["transformer"]) == set(T25.PUBLISHED_CONFIG_25["transformer"])  # nothing added
    assert header["transformer"]["text_encoder_norm_type"] == "PER_TOKEN_RMS" and header["transformer"]["ff_bias"] is False
    assert tuple(tensors[PREFIX + "keyframes_abs_pos_embedding"].shape) == (1, 16)
    assert PREFIX + "transformer_blocks.0.ff.net.0.proj.bias" not in tensors
    assert PREFIX + "transformer_blocks.0.ff.net.2.bias" not in tensors
    assert PREFIX + "transformer_blocks.0.audio_ff.net.0.proj.bias" in tensors  # the audio FF keeps its biases
    assert any(k.startswith(PREFIX + "video_embeddings_connector.") for k in tensors)
    info = checkpoint.read_checkpoint(path)
    assert info.version == "2.5" and info.kind == "transformer + text connectors"
    cfg = checkpoint.transformer_config(info)
    assert (cfg.ff_bias, cfg.use_keyframes_abs_pos_embedding, cfg.cross_attention_adaln, cfg.apply_gated_attention) == (
        False, True, True, True)
    assert cfg.provenance["ff_bias"] == cfg.provenance["use_keyframes_abs_pos_embedding"] == "shape"
    assert cfg.caption_channels == T25.TINY_CAPTION_CHANNELS


def test_the_published_25_header_is_the_test_data_verbatim(repo_root):
    data = json.loads((repo_root / "tests" / "data" / "real_headers" / "ltx-2.5-22b.transformer.config.json").read_text())
    assert data == T25.PUBLISHED_CONFIG_25


def _rewrite(path, out, drop=(), change=None, metadata=None):
    from safetensors.torch import save_file

    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys() if k not in drop}
    if change:
        tensors.update(change)
    save_file(tensors, str(out), metadata=metadata if metadata is not None else meta)
    return out


def test_header_and_tensors_that_disagree(tiny25, tmp_path):
    path, _ = tiny25
    # ff biases present but the header says ff_bias false: the header belongs to another model
    biased = {PREFIX + f"transformer_blocks.{i}.ff.net.{n}.bias": torch.zeros(w) for i in range(2)
              for n, w in (("0.proj", 64), ("2", 16))}  # fmt: skip
    bad = _rewrite(path, tmp_path / "biased.safetensors", change=biased)
    with pytest.raises(CheckpointError, match=r"ff_bias.*ff\.net\.0\.proj\.bias"):
        checkpoint.transformer_config(checkpoint.read_checkpoint(bad))
    # a re-copy without the keyframe marker (seen in the wild for the nvfp4 file): loads without it
    bare = _rewrite(path, tmp_path / "nomarker.safetensors", drop=(PREFIX + "keyframes_abs_pos_embedding",))
    info = checkpoint.read_checkpoint(bare)
    assert info.version == "2.5"  # the unbiased video feed-forward still says 2.5
    assert checkpoint.transformer_config(info).use_keyframes_abs_pos_embedding is False
    # model_version 2.3.0 over 2.5 tensors
    meta = {**_metadata(path), "model_version": "2.3.0"}
    mixed = _rewrite(path, tmp_path / "mixed.safetensors", metadata=meta)
    with pytest.raises(CheckpointError, match=r"model_version '2\.3\.0'.*LTX-2\.5"):
        checkpoint.read_checkpoint(mixed)


def _inputs(cfg, seed: int = 0):
    """Video 3 x 2 x 2 latent frames (12 tokens), 10 audio steps, 5 text tokens, at 25 fps."""
    g = torch.Generator().manual_seed(seed)
    f, h, w = 3, 2, 2
    video = torch.randn(1, f * h * w, cfg.in_channels, generator=g)
    audio = torch.randn(1, 10, cfg.audio_in_channels, generator=g)
    ctx_v = torch.randn(1, 5, cfg.video_dim, generator=g)
    ctx_a = torch.randn(1, 5, cfg.audio_dim, generator=g)
    sigma = torch.tensor([0.7])
    v_pos = P.video_positions(1, f, h, w, FPS)
    a_pos = P.audio_positions(1, 10)
    first = (v_pos[:, 0, :, 0] == 0).float()  # tokens of latent frame 0 (temporal start 0)
    return dict(video=video, audio=audio, ctx_v=ctx_v, ctx_a=ctx_a, sigma=sigma, v_pos=v_pos, a_pos=a_pos, mask=first)


def _ours(model: LTXAVTransformer, x: dict, mask: bool):
    t_v = x["sigma"].expand(1, x["video"].shape[1]).clone()
    t_a = x["sigma"].expand(1, x["audio"].shape[1]).clone()
    video = StreamInput(x["video"], t_v, x["sigma"], x["v_pos"], x["ctx_v"], keyframe_mask=x["mask"] if mask else None)
    audio = StreamInput(x["audio"], t_a, x["sigma"], x["a_pos"], x["ctx_a"])
    with torch.no_grad():
        return model(video, audio)


DIFFUSERS_SCRIPT = """
from diffusers import LTX2VideoTransformer3DModel
from diffusers.loaders.single_file_utils import convert_ltx2_transformer_to_diffusers
sd = convert_ltx2_transformer_to_diffusers(dict(inp["sd"]))
# 2.3 / 2.5 keys the 2.0 converter leaves alone
sd = {k.replace("audio_prompt_adaln_single.", "audio_prompt_adaln.").replace("prompt_adaln_single.", "prompt_adaln.")
      if k.startswith(("prompt_adaln_single.", "audio_prompt_adaln_single.")) else k: v for k, v in sd.items()}
c = inp["cfg"]
model = LTX2VideoTransformer3DModel(
    in_channels=c["in_channels"], out_channels=c["out_channels"], num_attention_heads=c["heads"],
    attention_head_dim=c["head_dim"], cross_attention_dim=c["video_dim"], audio_in_channels=c["audio_in_channels"],
    audio_out_channels=c["audio_out_channels"], audio_num_attention_heads=c["audio_heads"],
    audio_attention_head_dim=c["audio_head_dim"], audio_cross_attention_dim=c["audio_dim"], num_layers=c["layers"],
    gated_attn=True, cross_attn_mod=True, audio_gated_attn=True, audio_cross_attn_mod=True,
    use_prompt_embeddings=False, rope_type="split", rope_double_precision=True, norm_eps=1e-6,
    timestep_scale_multiplier=1000, cross_attn_timestep_scale_multiplier=1000, rope_theta=10000.0,
    pos_embed_max_pos=20, base_height=2048, base_width=2048, audio_pos_embed_max_pos=20,
    ff_bias=False, audio_ff_bias=True, use_keyframes_abs_pos_embedding=True, caption_channels=c["caption"],
).float().eval()
missing, unexpected = model.load_state_dict(sd, strict=False)
assert not missing and not unexpected, (missing, unexpected)
x = inp["x"]
sigma = x["sigma"] * 1000.0  # diffusers takes timesteps already multiplied
for name, mask in (("with", x["mask"][..., None]), ("without", None)):
    v, a = model(hidden_states=x["video"], audio_hidden_states=x["audio"], encoder_hidden_states=x["ctx_v"],
                 audio_encoder_hidden_states=x["ctx_a"], timestep=sigma.expand(1, x["video"].shape[1]),
                 audio_timestep=sigma.expand(1, x["audio"].shape[1]), sigma=sigma, audio_sigma=sigma,
                 video_coords=x["v_pos"], audio_coords=x["a_pos"], use_cross_timestep=True,
                 video_keyframes_mask=mask, return_dict=False)
    out[name] = (v, a)
"""


def test_transformer_25_equals_diffusers(tiny25, tmp_path):
    path, tensors = tiny25
    model = checkpoint.build_transformer(path, dtype=torch.float32)
    cfg = model.config
    x = _inputs(cfg)
    sd = {k[len(PREFIX):]: v.float() for k, v in tensors.items() if k.startswith(PREFIX)}
    c = dict(in_channels=cfg.in_channels, out_channels=cfg.out_channels, heads=cfg.num_attention_heads,
             head_dim=cfg.attention_head_dim, video_dim=cfg.video_dim, audio_in_channels=cfg.audio_in_channels,
             audio_out_channels=cfg.audio_out_channels, audio_heads=cfg.audio_num_attention_heads,
             audio_head_dim=cfg.audio_attention_head_dim, audio_dim=cfg.audio_dim, layers=cfg.num_layers,
             caption=cfg.caption_channels)  # fmt: skip
    ref = run_oracle("diffusers", DIFFUSERS_SCRIPT, {"sd": sd, "cfg": c, "x": x}, tmp_path)
    errors = {}
    for name, mask in (("with", True), ("without", False)):
        v, a = _ours(model, x, mask)
        errors[name] = (rel_err(v, ref[name][0]), rel_err(a, ref[name][1]))
    print("LTX-2.5 transformer vs diffusers 0.42.1, fp32 rel err (video, audio):", json.dumps(errors))
    for name, (ev, ea) in errors.items():
        assert ev <= 1e-5 and ea <= 1e-5, (name, ev, ea)
    # the keyframe marker changes the output, and only through the marked tokens' input
    with_v, _ = _ours(model, x, True)
    without_v, _ = _ours(model, x, False)
    assert rel_err(with_v, without_v) > 1e-3


def test_keyframe_marker_is_added_after_the_input_projection(tiny25):
    path, _ = tiny25
    model = checkpoint.build_transformer(path, dtype=torch.float32)
    x = _inputs(model.config)
    seen = {}

    def grab(module, args):
        seen["x"] = args[0].x.clone()

    handle = model.transformer_blocks[0].register_forward_pre_hook(grab)
    try:
        _ours(model, x, True)
    finally:
        handle.remove()
    projected = model.patchify_proj(x["video"])
    marker = model.keyframes_abs_pos_embedding
    expected = projected + x["mask"][..., None] * marker
    torch.testing.assert_close(seen["x"], expected, rtol=0, atol=1e-6)
    assert x["mask"].sum() == 4  # latent frame 0 (2 x 2 tokens) only


def test_gguf_stores_the_marker_squeezed(tiny25, tmp_path):
    """GGUF conversions keep ``keyframes_abs_pos_embedding`` as [width]; the model gets [1, width]."""
    from openltx.model_loaders.quant import gguf_format

    path, tensors = tiny25
    bare = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX) and "embeddings_connector" not in k}
    bare["keyframes_abs_pos_embedding"] = bare["keyframes_abs_pos_embedding"].reshape(-1)
    arrays = {k: gguf_format.encode_tensor(v.float().numpy(), 0) for k, v in bare.items()}  # F32
    out = tmp_path / "t25.gguf"
    config = {"transformer": T25.tiny_transformer_header_25()}
    gguf_format.write_gguf(out, arrays, config, T25.MODEL_VERSION, arch="ltxv", config_key="config")
    info = checkpoint.read_checkpoint(out)
    assert info.version == "2.5" and info.shapes["keyframes_abs_pos_embedding"] == (16,)
    model = checkpoint.build_transformer(info, dtype=torch.float32)
    assert tuple(model.keyframes_abs_pos_embedding.shape) == (1, 16)
    torch.testing.assert_close(model.keyframes_abs_pos_embedding.reshape(-1), bare["keyframes_abs_pos_embedding"])
