"""The LTX side of the text path against ltx-core 1.0.0: feature extractors, connectors, loading.

Hidden states come from a tiny random Gemma 3 (transformers' ``Gemma3TextConfig``: width 12,
2 layers -> 3 hidden states, the stand-in the tiny bundles are made for), left-padded as the
LTX tokenizer pads.  Our ``TextProjector`` is loaded from a tiny official-layout bundle
(``tools/make_tiny_checkpoint.py``'s writer); ltx-core's ``EmbeddingsProcessor`` is built with
the same tiny widths and gets our state dict, so both run the same weights in float32.

Only ltx-core's text submodules are imported (the feature extractors, connectors and
processor); its Gemma builder, which needs transformers 4.x, is never run.  Works with
transformers 4.5x and 5.x.  ltx-core's register filling handles one sample at a time, so the
reference runs per sample while ours runs the whole batch.
"""

from __future__ import annotations

import types

import pytest
import torch
from safetensors.torch import save_file

from openltx.ltx2.config import ConfigError, RopeType
from openltx.ltx2.text_connector import ConnectorConfig, EmbeddingsConnector, TextProjector, TextProjectorConfig
from openltx.ltx2.text_features import uses_v2_features
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.model_loaders.text_loading import load_text_projector, text_conditioning, to_file_key
from openltx.model_loaders.tiny_layouts import (
    TINY_TEXT_HIDDEN_STATES,
    tiny_config,
    tiny_layout,
    tiny_metadata,
    tiny_state_dict,
    tiny_transformer_header,
    write_tiny_checkpoint,
)

TOL = 1e-5
TOKENS = 128  # ltx-core needs a multiple of the 128 registers
WIDTH = 12  # tiny caption_channels
LENGTHS = (37, TOKENS, 1, 100)  # valid tokens per sample: partly padded, full, a single token
TEXT_COMPONENTS = ("text_connectors", "text_projection")


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max |ours - ref| / max |ref|."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ltx():
    """ltx-core's text modules only (``ltx_core.loader`` first: it breaks a circular import)."""
    import ltx_core.loader  # noqa: F401
    from ltx_core.text_encoders.gemma import embeddings_connector, embeddings_processor, feature_extractor

    return types.SimpleNamespace(
        video_connector=embeddings_connector.Embeddings1DConnectorConfigurator,
        audio_connector=embeddings_connector.AudioEmbeddings1DConnectorConfigurator,
        processor=embeddings_processor.EmbeddingsProcessor,
        v1=feature_extractor.FeatureExtractorV1,
        v2=feature_extractor.FeatureExtractorV2,
    )


@pytest.fixture(scope="module")
def gemma_states():
    """All hidden states of a tiny random Gemma 3 for a left-padded batch, and the mask."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig(
        vocab_size=64,
        hidden_size=WIDTH,
        intermediate_size=24,
        num_hidden_layers=TINY_TEXT_HIDDEN_STATES - 1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        sliding_window=16,
        max_position_embeddings=256,
    )
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(cfg).eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, cfg.vocab_size, (len(LENGTHS), TOKENS), generator=g)
    mask = torch.zeros(len(LENGTHS), TOKENS, dtype=torch.long)
    for i, n in enumerate(LENGTHS):
        mask[i, TOKENS - n :] = 1  # left padding, as the LTX tokenizer does
        ids[i, : TOKENS - n] = 0  # pad id
    with torch.no_grad():
        out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    states = tuple(h.float() for h in out.hidden_states)
    assert len(states) == TINY_TEXT_HIDDEN_STATES and states[0].shape == (len(LENGTHS), TOKENS, WIDTH)
    return states, mask


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Tiny single-file bundles, both versions, and a transformer-only file."""
    root = tmp_path_factory.mktemp("text_bundles")
    out = {}
    for version in ("2.0", "2.3"):
        out[version] = root / f"tiny-{version}.safetensors"
        write_tiny_checkpoint(out[version], version, "all")
    out["transformer-only"] = root / "tiny-transformer.safetensors"
    write_tiny_checkpoint(out["transformer-only"], "2.0", "transformer")
    return out


@pytest.fixture(scope="module")
def projectors(bundles):
    return {v: load_text_projector(bundles[v]) for v in ("2.0", "2.3")}


def reference(ltx, header: dict, ours: TextProjector):
    """ltx-core's ``EmbeddingsProcessor`` at our widths, holding our weights (float32)."""
    cfg = ours.config
    flat = cfg.text_hidden_size * cfg.text_hidden_states
    if cfg.v2:
        fe = ltx.v2(
            torch.nn.Linear(flat, cfg.video_features), cfg.text_hidden_size, torch.nn.Linear(flat, cfg.audio_features)
        )
    else:
        fe = ltx.v1(torch.nn.Linear(flat, cfg.video_features, bias=False), is_av=True)
    config = {"transformer": header}
    ref = ltx.processor(
        feature_extractor=fe,
        video_connector=ltx.video_connector.from_config(config),
        audio_connector=ltx.audio_connector.from_config(config),
    )
    ref = ref.float()  # ltx-core makes its registers bfloat16; ours are loaded as stored (float32)
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ref.eval()


# ------------------------------------------------------------------------------ parity
@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_projector_matches_ltx_core(ltx, gemma_states, projectors, version):
    """Features and both contexts equal ltx-core's, for a batch with padded, full and 1-token prompts."""
    states, mask = gemma_states
    ours = projectors[version]
    assert ours.config.v2 == (version == "2.3")
    ref = reference(ltx, tiny_transformer_header(version), ours)
    with torch.no_grad():
        video, audio = ours(states, mask)
        feats = ours.feature_extractor(states, mask)
        ref_feats = ref.feature_extractor(states, mask, "left")
        errors = {"video_features": rel_err(feats[0], ref_feats[0]), "audio_features": rel_err(feats[1], ref_feats[1])}
        for i in range(len(LENGTHS)):
            out = ref.process_hidden_states(tuple(h[i : i + 1] for h in states), mask[i : i + 1], "left")
            assert out.attention_mask.bool().all()  # registers leave no padding
            errors[f"video[{i}]"] = rel_err(video[i : i + 1], out.video_encoding)
            errors[f"audio[{i}]"] = rel_err(audio[i : i + 1], out.audio_encoding)
    print(f"\n{version} relative errors: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    assert max(errors.values()) <= TOL, errors
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()


@pytest.mark.parametrize("rope_type", ["split", "interleaved"])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_connector_rope_variants_match(ltx, rope_type, precision):
    """The connector alone, for each RoPE pairing and frequency-grid precision the header can state."""
    header = {**tiny_transformer_header("2.3"), "rope_type": rope_type, "frequencies_precision": precision}
    cfg = ConnectorConfig.from_header(header, "video")
    assert cfg.rope_type is RopeType(rope_type) and cfg.rope_fp64_grid == (precision == "float64")
    ours = EmbeddingsConnector(cfg)
    sd = {k: v for k, v in tiny_state_dict("2.3", ("text_connectors",)).items() if "video_embeddings" in k}
    ours.load_state_dict({k.split("video_embeddings_connector.", 1)[1]: v for k, v in sd.items()}, strict=True)
    ref = ltx.video_connector.from_config({"transformer": header}).float()
    ref.load_state_dict(ours.state_dict(), strict=True)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2 * TOKENS, cfg.dim, generator=g)
    valid = torch.zeros(1, 2 * TOKENS, dtype=torch.bool)
    valid[:, -150:] = True
    additive = (valid.float() - 1).view(1, 1, 1, -1) * torch.finfo(torch.float32).max
    with torch.no_grad():
        err = rel_err(ours(x, valid), ref(x, additive)[0])
    assert err <= TOL, err


@pytest.mark.parametrize("valid_tokens", [0, 1, 37, 128, 200, 256])
def test_register_placement(ltx, valid_tokens):
    """Valid tokens first in order, then register ``i mod R``; identical to ltx-core's filling."""
    header = tiny_transformer_header("2.0")
    ours = EmbeddingsConnector(ConnectorConfig.from_header(header, "video"))
    with torch.no_grad():
        ours.learnable_registers.copy_(torch.randn(ours.learnable_registers.shape))
    ref = ltx.video_connector.from_config({"transformer": header}).float()
    ref.load_state_dict(ours.state_dict(), strict=False)
    t, r = 2 * TOKENS, ours.learnable_registers.shape[0]
    x = torch.randn(1, t, ours.config.dim)
    valid = torch.zeros(1, t, dtype=torch.bool)
    valid[:, t - valid_tokens :] = True  # left padding
    filled = ours.fill_registers(x, valid)
    additive = (valid.float() - 1).view(1, 1, 1, -1) * torch.finfo(torch.float32).max
    with torch.no_grad():
        ref_filled, ref_mask = ref._replace_padded_with_learnable_registers(x, additive)
    assert torch.equal(filled, ref_filled) and (ref_mask == 0).all()
    n = valid_tokens
    assert torch.equal(filled[0, :n], x[0, t - n :])
    slots = torch.arange(n, t)
    assert torch.equal(filled[0, n:], ours.learnable_registers.detach()[slots % r])


def test_batch_registers_follow_each_mask():
    """Per-sample filling in a batch, with any padding side (the mask, not the side, decides)."""
    ours = EmbeddingsConnector(ConnectorConfig.from_header(tiny_transformer_header("2.0"), "audio"))
    with torch.no_grad():
        ours.learnable_registers.copy_(torch.randn(ours.learnable_registers.shape))
    x = torch.randn(3, 10, ours.config.dim)
    valid = torch.tensor(
        [[0, 0, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 1, 0, 0, 0, 0]]
    )  # left, right, scattered
    filled = ours.fill_registers(x, valid.bool())
    regs = ours.learnable_registers.detach()
    for b in range(3):
        idx = valid[b].nonzero().flatten()
        n = len(idx)
        assert torch.equal(filled[b, :n], x[b, idx])
        assert torch.equal(filled[b, n:], regs[n:10])


def test_padding_values_never_leak(projectors, gemma_states):
    """NaN or garbage at padded positions (some encoders leave it there) changes nothing."""
    states, mask = gemma_states
    pad = (mask == 0).unsqueeze(-1)
    dirty = tuple(h.masked_fill(pad, float("nan")) for h in states)
    for ours in projectors.values():
        with torch.no_grad():
            clean, dirty_out = ours(states, mask), ours(dirty, mask)
        assert torch.equal(clean[0], dirty_out[0]) and torch.equal(clean[1], dirty_out[1])


def test_bool_mask_and_bf16(projectors, gemma_states, bundles):
    """A bool mask gives the same result; a bfloat16 load computes in bfloat16, close to float32."""
    states, mask = gemma_states
    ours = projectors["2.3"]
    with torch.no_grad():
        ref = ours(states, mask)
        assert torch.equal(ours(states, mask.bool())[0], ref[0])
        half = load_text_projector(bundles["2.3"], dtype=torch.bfloat16)
        out = half(tuple(h.bfloat16() for h in states), mask)
    assert half.dtype == torch.bfloat16 and out[0].dtype == torch.bfloat16
    assert rel_err(out[0].float(), ref[0]) < 0.05 and rel_err(out[1].float(), ref[1]) < 0.05


# ------------------------------------------------------------------------------ conditioning form
@pytest.mark.parametrize("version", ["2.0", "2.3"])
def test_conditioning_widths_fit_the_transformer(projectors, gemma_states, version):
    """2.0: both contexts are caption_channels wide (into the caption projections); 2.3: the stream widths."""
    states, mask = gemma_states
    with torch.no_grad():
        video, audio = projectors[version](states, mask)
    cond = text_conditioning(video, audio, frame_rate=25)
    assert isinstance(cond, list) and len(cond) == 1 and cond[0][0] is video
    assert cond[0][1] == {"audio_context": audio, "frame_rate": 25.0}
    assert text_conditioning(video, audio)[0][1].keys() == {"audio_context"}
    layout = tiny_layout(version, ("transformer",))
    p = "model.diffusion_model."
    if version == "2.0":
        v_in = layout[p + "caption_projection.linear_1.weight"][1]
        a_in = layout[p + "audio_caption_projection.linear_1.weight"][1]
    else:
        v_in = layout[p + "transformer_blocks.0.attn2.to_k.weight"][1]
        a_in = layout[p + "transformer_blocks.0.audio_attn2.to_k.weight"][1]
    assert (video.shape, audio.shape) == ((len(LENGTHS), TOKENS, v_in), (len(LENGTHS), TOKENS, a_in))
    with pytest.raises(ValueError, match="frame_rate"):
        text_conditioning(video, audio, frame_rate=0)


# ------------------------------------------------------------------------------ errors
def test_transformer_only_file_is_refused(bundles):
    with pytest.raises(CheckpointError) as err:
        load_text_projector(bundles["transformer-only"])
    msg = str(err.value)
    assert str(bundles["transformer-only"]) in msg and "(transformer)" in msg  # what the selected file holds
    parts = ("text_embedding_projection.", "video_embeddings_connector.", "audio_embeddings_connector.",
             "ltx-2-19b-dev.safetensors", "ltx-2-19b-embeddings_connector_dev_bf16.safetensors")  # fmt: skip
    for part in parts:
        assert part in msg, msg
    assert "2.3" not in msg  # a 2.0 transformer: only the 2.0 files are offered


def _text_only_file(path, version: str, edit_header=None, edit_tensors=None):
    """A file with only the text projection + connectors (enough for the loader), header editable."""
    config = tiny_config(version)
    if edit_header:
        edit_header(config["transformer"])
    tensors = tiny_state_dict(version, TEXT_COMPONENTS)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(path), metadata=tiny_metadata(version, config))
    return path


@pytest.mark.parametrize("key", ["connector_positional_embedding_max_pos", "rope_type", "frequencies_precision",
                                 "connector_num_layers", "connector_num_attention_heads",
                                 "connector_num_learnable_registers"])  # fmt: skip
def test_header_key_missing_is_read_off_the_tensors_or_released(tmp_path, gemma_states, key, caplog):
    """Shapes come from the tensors; a numeric key the header lacks takes the released value (logged)."""
    full = load_text_projector(_text_only_file(tmp_path / "full.safetensors", "2.0"))
    path = _text_only_file(tmp_path / "f.safetensors", "2.0", edit_header=lambda t: t.pop(key))
    with caplog.at_level("INFO"):
        ours = load_text_projector(path)
    assert ours.config == full.config
    if key in ("connector_positional_embedding_max_pos", "rope_type", "frequencies_precision"):
        assert key in caplog.text and "released values" in caplog.text
    states, mask = gemma_states
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(ours(states, mask), full(states, mask)))


def test_head_split_of_an_ungated_connector_needs_the_header(tmp_path):
    """2.0 connectors have no per-head gate: without a header, only the released 128-wide heads are known."""

    def drop(t):
        t.pop("connector_num_attention_heads")
        t.pop("connector_attention_head_dim")

    path = _text_only_file(tmp_path / "f.safetensors", "2.0", edit_header=drop)
    with pytest.raises(CheckpointError, match=r"12 wide and has no per-head gate, so its head count is not in the tensors"):
        load_text_projector(path)


def test_text_only_file_loads(tmp_path):
    """The projection + connectors alone are enough (no transformer needed)."""
    path = _text_only_file(tmp_path / "f.safetensors", "2.3")
    assert isinstance(load_text_projector(path), TextProjector)


def test_shape_and_key_mismatches_are_listed(tmp_path):
    three = _text_only_file(tmp_path / "a.safetensors", "2.0", edit_header=lambda t: t.update(connector_num_layers=3))
    with pytest.raises(CheckpointError, match=r"config.transformer\['connector_num_layers'\] is 3, .* video connector "
                       r"has 2 blocks"):  # fmt: skip
        load_text_projector(three)

    def add_key(t):
        t["text_embedding_projection.extra.weight"] = torch.zeros(2, 2)

    extra = _text_only_file(tmp_path / "b.safetensors", "2.0", edit_tensors=add_key)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\).*text_embedding_projection\.extra\.weight"):
        load_text_projector(extra)

    def shrink_registers(t):
        key = "model.diffusion_model.audio_embeddings_connector.learnable_registers"
        t[key] = t[key][:64].clone()

    fewer = _text_only_file(tmp_path / "c.safetensors", "2.0", edit_tensors=shrink_registers)
    with pytest.raises(CheckpointError, match=r"connector_num_learnable_registers'\] is 128, .*audio connector "
                       r"learnable_registers has shape \[64, 12\]"):  # fmt: skip
        load_text_projector(fewer)

    def drop_block(t):
        for k in [k for k in t if "audio_embeddings_connector.transformer_1d_blocks.1.ff." in k]:
            del t[k]

    partial = _text_only_file(tmp_path / "d.safetensors", "2.0", edit_tensors=drop_block)
    with pytest.raises(CheckpointError, match=r"4 missing key\(s\):.*audio_embeddings_connector.transformer_1d_blocks.1.ff"):
        load_text_projector(partial)


def test_header_consistency_errors():
    header = tiny_transformer_header("2.3")
    partial = {k: v for k, v in header.items() if k != "caption_proj_input_norm"}
    with pytest.raises(ConfigError, match="caption_proj_input_norm"):
        uses_v2_features(partial)
    with pytest.raises(ConfigError, match="caption_projection_first_linear"):
        uses_v2_features({**header, "caption_projection_first_linear": True})
    with pytest.raises(ConfigError, match="audio text connector is 2 x 8 = 16 wide"):
        TextProjectorConfig.from_header({**header, "audio_connector_attention_head_dim": 8}, text_hidden_states=3)
    with pytest.raises(ConfigError, match="one entry"):
        ConnectorConfig.from_header({**header, "connector_positional_embedding_max_pos": [20, 2048]}, "video")
    with pytest.raises(ConfigError, match="rope_type"):
        ConnectorConfig.from_header({**header, "rope_type": "spiral"}, "video")


def test_bad_inputs_are_explained(projectors, gemma_states):
    states, mask = gemma_states
    ours = projectors["2.0"]
    with pytest.raises(ValueError, match="all 3 hidden states"):
        ours(states[:2], mask)
    with pytest.raises(ValueError, match=r"\(batch, tokens, 12\)"):
        ours(tuple(h[..., :8] for h in states), mask)
    with pytest.raises(ValueError, match="attention_mask must be"):
        ours(states, mask[:, :64])
    with pytest.raises(ValueError, match="additive"):
        ours(states, (mask.float() - 1) * 1e9)


def test_file_keys_round_trip(projectors):
    """Our state-dict keys map onto exactly the tiny bundle's text keys."""
    for version, ours in projectors.items():
        keys = {to_file_key(k) for k in ours.state_dict()}
        assert keys == set(tiny_layout(version, TEXT_COMPONENTS))

