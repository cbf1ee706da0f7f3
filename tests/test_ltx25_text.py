"""The LTX-2.5 text path: Gemma 4 file (projection + embedded tokenizer) + the 2.5 transformer file's connectors.

* the feature extractor (from the Gemma 4 file) and the connectors (from the transformer file)
  equal diffusers 0.42.1's ``LTX2TextConnectors`` on the same weights and hidden states (fp32);
* the comfy-int8-convrot Gemma 4 / transformer files give the projector of their dequantized
  weights (the text path reads int8 ConvRot layers);
* ``LTXTextEncoder`` takes the Gemma 4 file: its tokenizer, Gemma 4 decoder, projection, and the
  connectors of the transformer file, end to end on the CPU.
"""

from __future__ import annotations

import json

import pytest
import torch

from openltx.host.text_encoder import LTXTextEncoder
from openltx.model_loaders import tiny_layouts_25 as T25
from openltx.model_loaders.gemma4_loading import Gemma4Source, inspect_gemma4, load_gemma4_projection
from openltx.model_loaders.text_loading import find_text_parts, load_text_projector

from ltx25_oracle import rel_err, run_oracle

STATES, WIDTH = 7, 32  # the tiny Gemma 4: embeddings + 6 layers, 32 wide


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("text25")
    out = {
        "gemma": d / T25.FILE_NAMES["gemma4"],
        "gemma_int8": d / T25.FILE_NAMES["gemma4_int8"],
        "transformer": d / T25.FILE_NAMES["transformer"],
        "transformer_int8": d / T25.FILE_NAMES["transformer_int8"],
    }
    T25.write_tiny_gemma4(out["gemma"], seed=1)
    T25.write_tiny_gemma4(out["gemma_int8"], seed=1, int8_convrot=True)
    T25.write_tiny_transformer_25(out["transformer"], seed=2)
    T25.write_tiny_transformer_25(out["transformer_int8"], seed=2, variant="comfy-int8-convrot")
    return out


def _projector(gemma, transformer):
    parts = find_text_parts([(transformer, "ltx_checkpoint"), (gemma, "text_encoder")], text_hidden_size=WIDTH,
                            text_hidden_states=STATES)  # fmt: skip
    assert parts.projection.file.path == str(gemma) and parts.connectors.file.path == str(transformer)
    return load_text_projector(parts, dtype=torch.float32)


def _hidden(seed: int = 0, length: int = 128, valid: int = 37):
    g = torch.Generator().manual_seed(seed)
    states = [torch.randn(1, length, WIDTH, generator=g) * (1 + i) for i in range(STATES)]
    mask = torch.zeros(1, length, dtype=torch.int64)
    mask[:, length - valid:] = 1  # Gemma pads on the left
    return states, mask


DIFFUSERS_SCRIPT = """
from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
c = inp["cfg"]
model = LTX2TextConnectors(
    caption_channels=c["width"], text_proj_in_factor=c["states"],
    video_connector_num_attention_heads=c["v_heads"], video_connector_attention_head_dim=c["v_dim"],
    video_connector_num_layers=c["v_layers"], video_connector_num_learnable_registers=c["registers"], video_gated_attn=True,
    audio_connector_num_attention_heads=c["a_heads"], audio_connector_attention_head_dim=c["a_dim"],
    audio_connector_num_layers=c["a_layers"], audio_connector_num_learnable_registers=c["registers"], audio_gated_attn=True,
    connector_rope_base_seq_len=4096, rope_theta=10000.0, rope_double_precision=True, rope_type="split",
    per_modality_projections=True, video_hidden_dim=c["video"], audio_hidden_dim=c["audio"], proj_bias=True,
).float().eval()
sd = {}
for k, v in inp["sd"].items():  # published names -> diffusers names
    k = k.replace("feature_extractor.video_aggregate_embed.", "video_text_proj_in.")
    k = k.replace("feature_extractor.audio_aggregate_embed.", "audio_text_proj_in.")
    k = k.replace(".transformer_1d_blocks.", ".transformer_blocks.").replace(".q_norm.", ".norm_q.").replace(".k_norm.", ".norm_k.")
    sd[k] = v
missing, unexpected = model.load_state_dict(sd, strict=False)
assert not missing and not unexpected, (missing, unexpected)
hidden = torch.stack(inp["states"], dim=-1)  # (B, L, width, states)
video, audio, mask = model(hidden, inp["mask"])
out["video"], out["audio"], out["mask"] = video, audio, mask
"""


def test_feature_extractor_and_connectors_equal_diffusers(files, tmp_path):
    projector = _projector(files["gemma"], files["transformer"])
    cfg = projector.config
    assert cfg.v2 and (cfg.text_hidden_size, cfg.text_hidden_states) == (WIDTH, STATES)
    states, mask = _hidden()
    with torch.no_grad():
        video, audio = projector(states, mask)
    c = dict(width=WIDTH, states=STATES, v_heads=cfg.video.heads, v_dim=cfg.video.head_dim, v_layers=cfg.video.num_layers,
             a_heads=cfg.audio.heads, a_dim=cfg.audio.head_dim, a_layers=cfg.audio.num_layers,
             registers=cfg.video.num_registers, video=cfg.video_features, audio=cfg.audio_features)  # fmt: skip
    sd = {k: v.float() for k, v in projector.state_dict().items()}
    ref = run_oracle("diffusers", DIFFUSERS_SCRIPT, {"sd": sd, "cfg": c, "states": states, "mask": mask}, tmp_path)
    assert bool(ref["mask"].all())  # registers fill the padding: every position valid, as ours
    errors = {"video": rel_err(video, ref["video"]), "audio": rel_err(audio, ref["audio"])}
    print("LTX-2.5 feature extractor + connectors vs diffusers 0.42.1, fp32 rel err:", json.dumps(errors))
    assert max(errors.values()) <= 1e-5, errors


def test_the_projection_is_the_gemma4_files_own(files):
    projector = _projector(files["gemma"], files["transformer"])
    own = load_gemma4_projection(files["gemma"], dtype=torch.float32)
    for k, v in own.state_dict().items():
        assert torch.equal(projector.state_dict()["feature_extractor." + k], v), k


def test_int8_convrot_text_parts_are_their_dequantized_weights(files):
    """The int8 Gemma 4 projection and int8 transformer connectors load dequantized (un-rotated)."""
    from safetensors import safe_open

    from openltx.model_loaders.quant import int8_convrot

    quant = _projector(files["gemma_int8"], files["transformer_int8"])
    dense = _projector(files["gemma"], files["transformer"])
    with safe_open(str(files["transformer_int8"]), "pt") as f:
        key = "model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q"
        q, s = f.get_tensor(key + ".weight"), f.get_tensor(key + ".weight_scale")
        group = int8_convrot.marker_json(f.get_tensor(key + ".comfy_quant"))["convrot_groupsize"]
    want = int8_convrot.dequantize(q, s, group)
    assert torch.equal(quant.state_dict()["video_connector.transformer_1d_blocks.0.attn1.to_q.weight"], want)
    states, mask = _hidden(seed=3)
    with torch.no_grad():
        (qv, qa), (dv, da) = quant(states, mask), dense(states, mask)
    err = max(rel_err(qv, dv), rel_err(qa, da))
    print(f"int8 ConvRot text parts vs bf16-file text parts: rel err {err:.3f} (int8 rounding)")
    assert 0 < err < 0.2  # the same model, quantized: close, not equal


@pytest.mark.parametrize("kind", ["bf16", "int8"])
def test_text_encoder_takes_the_gemma4_file(files, tmp_path, kind):
    gemma = files["gemma" if kind == "bf16" else "gemma_int8"]
    transformer = files["transformer" if kind == "bf16" else "transformer_int8"]
    encoder = LTXTextEncoder(gemma, transformer, dtype=torch.float32, cache_dir=tmp_path / "cache", max_length=128)
    assert isinstance(encoder.source, Gemma4Source)
    assert encoder.source.num_hidden_states == STATES and encoder.source.hidden_size == WIDTH
    video, audio = encoder.encode("a cat walks on the beach at sunset")
    assert video.shape == (1, 128, 16) and audio.shape == (1, 128, 8)
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()
    again = LTXTextEncoder(gemma, transformer, dtype=torch.float32, cache_dir=tmp_path / "cache", max_length=128)
    v2, a2 = again.encode("a cat walks on the beach at sunset")
    assert again.gemma_builds == 0 and torch.equal(v2, video)  # the prompt cache, as for Gemma 3
    other, _ = encoder.encode("rain falls on a red car")
    assert not torch.allclose(other, video)


def test_gemma4_file_without_the_transformer_names_the_connectors(files):
    with pytest.raises(ValueError, match=r"text connectors"):
        LTXTextEncoder(files["gemma"], None)


def test_inspect_is_used_for_the_gemma4_file(files):
    src = inspect_gemma4(files["gemma"])
    assert src.int8 == {} and inspect_gemma4(files["gemma_int8"]).int8
