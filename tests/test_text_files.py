"""The text path from the files users have: every layout gives the bundle's conditioning = ltx-core's.

Tiny files (``tiny_text_files.py``: the published header key sets scaled down, published tensor
names) in each layout the community publishes -- bundle with / without metadata, Kijai's 2.0
connector file, Kijai's 2.3 projection file, transformer-only files with the connectors,
unsloth-style connector files, the projection inside the Gemma file, fp8 connectors, GGUF --
go through ``LTXTextEncoder`` (Gemma file -> hidden states -> projector, float32, CPU).  The
result must equal ltx-core 1.0.0's ``EmbeddingsProcessor`` built from the *full* header and fed
the same (decoded) weights and transformers' Gemma hidden states, to 1e-5 relative; layouts
holding the same float32 values must give exactly the bundle's result.
"""

from __future__ import annotations

import logging
import types

import pytest
import torch

import tiny_gemma as tg
import tiny_text_files as tt
from openltx.host.text_encoder import LTXTextEncoder
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.model_loaders.text_loading import find_text_parts, load_text_projector, text_parts_report

PROMPT = "a dog runs through tall grass while music plays"
TOL = 1e-5


@pytest.fixture(scope="module")
def ltx():
    import ltx_core.loader  # noqa: F401  (breaks a circular import)
    from ltx_core.text_encoders.gemma import embeddings_connector, embeddings_processor, feature_extractor

    return types.SimpleNamespace(video=embeddings_connector.Embeddings1DConnectorConfigurator,
                                 audio=embeddings_connector.AudioEmbeddings1DConnectorConfigurator,
                                 processor=embeddings_processor.EmbeddingsProcessor, v1=feature_extractor.FeatureExtractorV1,
                                 v2=feature_extractor.FeatureExtractorV2)  # fmt: skip


@pytest.fixture(scope="module")
def gemmas(tmp_path_factory):
    """Tiny Gemma models (width -> model) and their ComfyUI single files."""
    root = tmp_path_factory.mktemp("text_gemma")
    out = {}
    for version in ("2.0", "2.3"):
        width = tt.widths(version)["gemma"]
        model = tg.tiny_text_model(seed=11, hidden_size=width)
        out[version] = {"model": model, "file": tg.write_comfy_file(model, root / f"gemma_{width}.safetensors")}
    return out


def reference(ltx, version, dense: dict, gemma_model, tokenizer, gemma_width=None):
    """ltx-core's EmbeddingsProcessor from the full tiny header, fed ``dense`` (bundle keys), on HF Gemma states."""
    header = tt.tiny_config(version, gemma_width)["transformer"]
    w = tt.widths(version, gemma_width)
    flat = w["gemma"] * tt.HIDDEN_STATES
    lin = torch.nn.Linear
    if version == "2.0":
        fe = ltx.v1(lin(flat, w["video"][0] * w["video"][1], bias=False), is_av=True)
    else:
        fe = ltx.v2(lin(flat, w["video"][0] * w["video"][1]), w["gemma"], lin(flat, w["audio"][0] * w["audio"][1]))
    proc = ltx.processor(feature_extractor=fe, video_connector=ltx.video.from_config({"transformer": header}),
                         audio_connector=ltx.audio.from_config({"transformer": header})).float()  # fmt: skip
    renamed = {}
    for k, v in dense.items():
        k = k.removeprefix(tt.DIT).replace(tt.PROJ, "feature_extractor.")
        k = k.replace("video_embeddings_connector.", "video_connector.").replace("audio_embeddings_connector.",
                                                                                "audio_connector.")  # fmt: skip
        renamed[k] = v.float()
    proc.load_state_dict(renamed, strict=True)
    ids, mask = tokenizer.tokenize(PROMPT)
    with torch.no_grad():
        states = gemma_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        out = proc.process_hidden_states(states, mask, "left")
    return out.video_encoding, out.audio_encoding


def rel(a, b) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


# ------------------------------------------------------------------------------ layouts
def _layouts(version: str, root, gemma_file, gemma_model):
    """name -> (ltx_checkpoint, extra_file, gemma file, dense weights the files decode to)."""
    cfg = tt.tiny_config(version)
    meta = tt.metadata(version, cfg)
    text = tt.text_tensors(version)
    proj = {k: v for k, v in text.items() if k.startswith(tt.PROJ)}
    conn = {k: v for k, v in text.items() if not k.startswith(tt.PROJ)}
    others = tt.other_components()
    dit_only = {k: v for k, v in others.items() if k.startswith(tt.DIT)}
    w = tt.write
    out = {
        "bundle": (w(root / "bundle.safetensors", {**text, **others}, meta), None, gemma_file, text),
        "bundle, no metadata": (w(root / "bundle_nometa.safetensors", {**text, **others}), None, gemma_file, text),
    }
    if version == "2.0":
        # Kijai/LTXV2_comfy: the transformer alone + text_encoders/ltx-2-19b-embeddings_connector_dev_bf16
        kijai = w(root / "ltx-2-19b-embeddings_connector_dev_bf16.safetensors", text)
        out["transformer-only + Kijai connector file"] = (w(root / "t_only.safetensors", dit_only, meta), kijai,
                                                           gemma_file, text)  # fmt: skip
        out["no header anywhere"] = (w(root / "t_only_nometa.safetensors", dit_only), kijai, gemma_file, text)
        q8 = tt.gguf_dense(text, q8=True)
        out["GGUF Q8_0 with the text parts"] = (tt.write_gguf(root / "ltx-2-19b-dev-Q8_0.gguf", {**dit_only, **text},
                                                              cfg, q8=True), None, gemma_file, q8)  # fmt: skip
    else:
        t_only = w(root / "ltx-2.3-22b-dev_transformer_only_bf16.safetensors", {**dit_only, **conn}, meta)
        t_only_nometa = w(root / "t_only_nometa.safetensors", {**dit_only, **conn})
        kijai = w(root / "ltx-2.3_text_projection_bf16.safetensors", proj)
        with_proj = tg.write_comfy_file(gemma_model, root / "gemma_with_projection.safetensors", extra=proj)
        bare_dit = w(root / "t_only_noconn.safetensors", dit_only, meta)
        unsloth = w(root / "ltx-2.3-22b-dev_embeddings_connectors.safetensors", proj)  # the projection, as published
        bare_names = w(root / "connectors_bare.safetensors", {k.removeprefix(tt.DIT): v for k, v in conn.items()})
        fp8_stored, fp8_dense = tt.fp8_connectors({**dit_only, **conn})
        fp8 = w(root / "ltx-2.3-22b-dev_transformer_only_fp8_scaled.safetensors", fp8_stored, meta)
        nv_stored, nv_dense = tt.nvfp4_connectors({**dit_only, **conn})
        nv = w(root / "ltx-2.3-22b-dev_transformer_only_nvfp4.safetensors", nv_stored)
        out.update({
            "transformer-only + Kijai projection file": (t_only, kijai, gemma_file, text),
            "no header anywhere": (t_only_nometa, kijai, gemma_file, text),
            "projection in the Gemma file": (t_only, None, with_proj, text),
            "transformer-only + unsloth's embeddings_connectors file": (t_only, unsloth, gemma_file, text),
            "connector-only file with bare keys + projection in the Gemma file": (bare_dit, bare_names, with_proj, text),
            "fp8 connectors (comfy_quant)": (fp8, kijai, gemma_file, {**proj, **{k: fp8_dense[k] for k in conn}}),
            "NVFP4 connectors, padded, no metadata": (nv, kijai, gemma_file, {**proj, **{k: nv_dense[k] for k in conn}}),
            "GGUF with the connectors": (tt.write_gguf(root / "LTX-2.3-dev-Q8_0.gguf", {**dit_only, **conn}, cfg),
                                         kijai, gemma_file, text),
        })  # fmt: skip
    return out


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, gemmas):
    out = {}
    for version in ("2.0", "2.3"):
        root = tmp_path_factory.mktemp(f"text_layouts_{version}")
        out[version] = _layouts(version, root, gemmas[version]["file"], gemmas[version]["model"])
    return out


CASES = [("2.0", n) for n in ("bundle", "bundle, no metadata", "transformer-only + Kijai connector file",
                              "no header anywhere", "GGUF Q8_0 with the text parts")] + \
        [("2.3", n) for n in ("bundle", "bundle, no metadata", "transformer-only + Kijai projection file",
                              "no header anywhere", "projection in the Gemma file",
                              "transformer-only + unsloth's embeddings_connectors file",
                              "connector-only file with bare keys + projection in the Gemma file",
                              "fp8 connectors (comfy_quant)", "NVFP4 connectors, padded, no metadata",
                              "GGUF with the connectors")]  # fmt: skip


@pytest.fixture(scope="module")
def bundle_results(layouts):
    out = {}
    for version in ("2.0", "2.3"):
        ltx_file, extra, gemma, _ = layouts[version]["bundle"]
        out[version] = LTXTextEncoder(gemma, ltx_file, extra_file=extra, dtype=torch.float32).encode(PROMPT)
    return out


@pytest.mark.parametrize("version,name", CASES, ids=[f"{v}-{n}" for v, n in CASES])
def test_layout_gives_ltx_core_conditioning(ltx, gemmas, layouts, bundle_results, version, name, caplog):
    ltx_file, extra, gemma, dense = layouts[version][name]
    with caplog.at_level(logging.INFO):
        enc = LTXTextEncoder(gemma, ltx_file, extra_file=extra, dtype=torch.float32)
        video, audio = enc.encode(PROMPT)
    ref_video, ref_audio = reference(ltx, version, dense, gemmas[version]["model"], enc.gemma.tokenizer)
    errors = {"video": rel(video[0], ref_video[0]), "audio": rel(audio[0], ref_audio[0])}
    assert max(errors.values()) <= TOL, errors
    assert enc.parts.config.v2 == (version == "2.3")
    if "no header" in name or "no metadata" in name:
        assert "released LTX-2 / 2.3 numerics" in caplog.text
    exact = not any(s in name for s in ("fp8", "Q8_0", "NVFP4"))
    if exact:  # the same float32 values as the bundle: the same numbers
        assert torch.equal(video, bundle_results[version][0]) and torch.equal(audio, bundle_results[version][1])


def test_fp4_gemma_with_the_text_parts(ltx, tmp_path):
    """ComfyUI's fp4_mixed Gemma (NVFP4 + fp8) through the whole text path."""
    model = tg.tiny_text_model(seed=12, **tg.TINY16)
    gemma = tg.write_comfy_file(model, tmp_path / "gemma_fp4_mixed.safetensors", quant="fp4_mixed")
    text = tt.text_tensors("2.3", gemma_width=16)
    bundle = tt.write(tmp_path / "b.safetensors", text, tt.metadata("2.3", tt.tiny_config("2.3", 16)))
    enc = LTXTextEncoder(gemma, bundle, dtype=torch.float32)
    video, audio = enc.encode(PROMPT)
    ref = reference(ltx, "2.3", text, tg.dequantized_fp4_mixed_model(model), enc.gemma.tokenizer, gemma_width=16)
    assert max(rel(video[0], ref[0][0]), rel(audio[0], ref[1][0])) <= TOL


def test_a_part_in_two_files_comes_from_the_extra_file(layouts, caplog):
    ltx_file, _, gemma, _ = layouts["2.3"]["bundle"]
    _, kijai, _, _ = layouts["2.3"]["transformer-only + Kijai projection file"]
    with caplog.at_level(logging.INFO):
        parts = find_text_parts([(ltx_file, "ltx_checkpoint"), (kijai, "extra_file"), (gemma, "text_encoder")])
    assert parts.projection.file.path == str(kijai) and parts.connectors.file.path == str(ltx_file)
    assert "the text projection is in" in caplog.text and "using the one in ltx-2.3_text_projection_bf16" in caplog.text


def test_report_says_where_each_value_comes_from(layouts):
    """One file at a time (for inspect_checkpoint): the parts it holds, values and their sources."""
    t_only, kijai, _, _ = layouts["2.3"]["no header anywhere"]
    report = text_parts_report(t_only)
    assert report["projection"] is None
    video = report["connectors"]["video"]
    assert (video["layers"], video["heads"], video["head_dim"], video["gated"]) == (2, 2, 8, True)
    assert report["sources"]["video.heads"] == "shape: to_gate_logits [2, 16]"
    assert report["sources"]["rope_type"] == "released default" and video["rope_type"] == "split" and video["fp64_grid"]
    assert text_parts_report(kijai) == {"projection": {"kind": "2.3 dual", "inputs": 36, "outputs": [16, 8]},
                                        "connectors": None, "sources": {"text_hidden_size": (
                                            "released default: unknown; 36 inputs are no whole number of Gemma 3 12B's "
                                            "3840-wide hidden states (the Gemma file it runs with tells)")}}  # fmt: skip
    bundle, _, _, _ = layouts["2.0"]["bundle"]
    report = text_parts_report(bundle)
    assert report["projection"]["outputs"] == [128, 128] and report["connectors"]["audio"]["heads"] == 1
    assert report["sources"]["video.heads"].startswith("header: connector_num_attention_heads")
    assert report["sources"]["frequencies_precision"] == "header: bundle.safetensors"


# ------------------------------------------------------------------------------ errors
def test_missing_projection_names_the_published_files(layouts):
    t_only, _, gemma, _ = layouts["2.3"]["transformer-only + Kijai projection file"]
    with pytest.raises(CheckpointError) as err:
        LTXTextEncoder(gemma, t_only)
    msg = str(err.value)
    for part in ("text projection", "ltx-2.3-22b-dev.safetensors", "ltx-2.3_text_projection_bf16.safetensors",
                 str(t_only), "(text connectors, transformer)", str(gemma), "(Gemma 3)", "extra_file"):  # fmt: skip
        assert part in msg, (part, msg)
    assert "ltx-2-19b" not in msg and "text connectors (" not in msg.split("in none")[0]


def test_missing_connectors_names_the_published_files(layouts):
    _, kijai, gemma, _ = layouts["2.3"]["transformer-only + Kijai projection file"]
    bare_dit, _, _, _ = layouts["2.3"]["connector-only file with bare keys + projection in the Gemma file"]
    with pytest.raises(CheckpointError) as err:
        LTXTextEncoder(gemma, bare_dit, extra_file=kijai)
    msg = str(err.value)
    for part in ("text connectors", "transformer_only", "ltx-2.3-22b-dev.safetensors", "QuantStack",
                 "(text projection)"):  # fmt: skip
        assert part in msg, (part, msg)
    assert "ltx-2-19b" not in msg and "embeddings_connectors" not in msg  # unsloth's file has no connectors


def test_quantized_text_weights_that_cannot_be_read_are_named(tmp_path):
    text = tt.text_tensors("2.3")
    meta = tt.metadata("2.3", tt.tiny_config("2.3"))
    key = tt.DIT + "video_embeddings_connector.transformer_1d_blocks.0.attn1.to_q"
    odd = tt.write(tmp_path / "mxfp8.safetensors", {**text, key + ".comfy_quant": tt.comfy_quant_marker("mxfp8"),
                                                     key + ".weight_scale": torch.ones(16, 1)}, meta)  # fmt: skip
    with pytest.raises(CheckpointError, match=r"to_q.weight' is stored as 'mxfp8', a format OpenLTX does not read"):
        load_text_projector(odd)
    # int8_tensorwise (LTX-2.5's int8 ConvRot files) is read, so a float weight marked with it is a corrupt file
    fake = tt.write(tmp_path / "int8.safetensors", {**text, key + ".comfy_quant": tt.comfy_quant_marker("int8_tensorwise"),
                                                    key + ".weight_scale": torch.ones(16, 1)}, meta)  # fmt: skip
    with pytest.raises(CheckpointError, match=r"to_q.weight' is marked 'int8_tensorwise' but stored as F32\. The file is corrupt"):
        load_text_projector(fake)
    stray = tt.write(tmp_path / "stray.safetensors", {**text, key + ".weight_scale": torch.ones(())}, meta)
    with pytest.raises(CheckpointError, match=r"to_q.weight' is F32 with \['.weight_scale'\] and no quantization format"):
        load_text_projector(stray)
    lost = tt.write(tmp_path / "lost.safetensors", {**text, key + "x.weight_scale": torch.ones(())}, meta)
    with pytest.raises(CheckpointError, match=r"quantization companions without a weight: .*to_qx.weight_scale"):
        load_text_projector(lost)


def test_parts_of_two_versions_are_refused(layouts, gemmas):
    _, kijai23, gemma23, _ = layouts["2.3"]["transformer-only + Kijai projection file"]
    ltx20, _, _, _ = layouts["2.0"]["bundle, no metadata"]  # 128-wide connectors; the 2.3 projection (extra_file)
    with pytest.raises(CheckpointError, match=r"do not fit each other: the video projection gives 16 features but the "
                       r"video connector is 128 wide \(ltx-2.3_text_projection_bf16.safetensors and "
                       r"bundle_nometa.safetensors\)"):  # fmt: skip
        LTXTextEncoder(gemma23, ltx20, extra_file=kijai23)
    ltx20, _, _, _ = layouts["2.0"]["bundle"]  # with the 2.0 header: the header already disagrees
    with pytest.raises(CheckpointError, match=r"bundle.safetensors: the header's config.transformer describes an "
                       r"LTX-2.0 text path .* ltx-2.3_text_projection_bf16.safetensors holds the LTX-2.3 dual"):
        LTXTextEncoder(gemma23, ltx20, extra_file=kijai23)


def _header_file(tmp_path, version, edit):
    cfg = tt.tiny_config(version)
    edit(cfg["transformer"])
    return tt.write(tmp_path / f"edited_{version}.safetensors", tt.text_tensors(version), tt.metadata(version, cfg))


@pytest.mark.parametrize("version,edit,pattern", [
    ("2.3", {"connector_num_layers": 8}, r"\['connector_num_layers'\] is 8, .*video connector has 2 blocks"),
    ("2.3", {"connector_num_attention_heads": 4}, r"\['connector_num_attention_heads'\] is 4, .*video connector has 2 "
                                                  r"attention heads \(to_gate_logits \[2, 16\]\)"),
    ("2.3", {"connector_apply_gated_attention": False}, r"\['connector_apply_gated_attention'\] is False, .*has "
                                                        r"to_gate_logits \[2, 16\]"),
    ("2.3", {"audio_connector_attention_head_dim": 8}, r"\['audio_connector_attention_head_dim'\] is 8, .*audio "
                                                       r"connector is 8 wide = 2 heads x 4"),
    ("2.3", {"num_attention_heads": 4}, r"\['num_attention_heads x attention_head_dim'\] is '4 x 8', .*video_aggregate"
                                        r"_embed.weight has 16 outputs"),
    ("2.0", {"connector_attention_head_dim": 64}, r"\['connector_num_attention_heads x connector_attention_head_dim'\] "
                                                  r"is '1 x 64', .*video connector is 128 wide"),
    ("2.0", {"text_encoder_norm_type": "per_token_rms"}, r"\['text_encoder_norm_type'\] is 'per_token_rms', .*LTX-2.0 "
                                                         r"single projection"),
    ("2.0", {"caption_proj_before_connector": True, "caption_projection_first_linear": False,
             "caption_proj_input_norm": False, "caption_projection_second_linear": False},
     r"\['caption_proj_before_connector'\] is True, .*holds the LTX-2.0 single projection"),
    ("2.0", {"caption_channels": 100}, r"\['caption_channels'\] is 100, .*takes 384 inputs"),
])  # fmt: skip
def test_header_values_that_contradict_the_shapes_are_named(tmp_path, version, edit, pattern):
    path = _header_file(tmp_path, version, lambda t: t.update(edit))
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_text_projector(path)
    assert str(path) in str(err.value) and "header and the weights come from different models" in str(err.value)


def test_upper_case_norm_type_and_header_numerics_are_used(tmp_path):
    """'PER_TOKEN_RMS' (the 2.5 spelling) is accepted; RoPE settings come from the header when it has them."""
    path = _header_file(tmp_path, "2.3", lambda t: t.update(text_encoder_norm_type="PER_TOKEN_RMS", rope_type=
                                                             "interleaved", frequencies_precision="float32"))  # fmt: skip
    cfg = load_text_projector(path).config
    assert cfg.video.rope_type.value == "interleaved" and not cfg.video.rope_fp64_grid
    assert (cfg.video.heads, cfg.video.head_dim, cfg.audio.heads, cfg.audio.head_dim) == (2, 8, 2, 4)
    assert cfg.video.max_pos == (4096.0,) and cfg.video.gated and cfg.video.num_registers == 128


def test_wrong_gemma_for_the_projection_is_named(layouts, tmp_path):
    ltx_file, _, _, _ = layouts["2.3"]["bundle"]
    other = tg.write_comfy_file(tg.tiny_text_model(hidden_size=12, num_hidden_layers=3), tmp_path / "g3.safetensors")
    with pytest.raises(CheckpointError, match=r"takes 36 inputs .* but the Gemma model gives 4 hidden states \(3 layers\)"):
        LTXTextEncoder(other, ltx_file)
