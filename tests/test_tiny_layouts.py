"""Our key layouts equal the modules Lightricks' ltx-core 1.0.0 builds from the same header.

For every component and both versions, ltx-core's own configurators build the module from the
tiny header config (and from the official full-size configs, on the meta device); its
state-dict keys, after the prefix mapping ltx-core's loader applies to the file, must equal
``model_loaders.layouts`` key for key and shape for shape.  That is what makes the tiny
checkpoints "official layout".
"""

from __future__ import annotations

import importlib.machinery
import json
import math
import sys
import types
from contextlib import contextmanager

import pytest
import torch



from openltx.ltx2.config import official_19b_header
from openltx.model_loaders import layouts as L
from openltx.model_loaders import tiny_layouts as T

VERSIONS = ("2.0", "2.3")


@contextmanager
def _torchaudio_stub():
    """ltx_core.model.audio_vae imports torchaudio at module top (only its mel front end uses it).

    A stub with a proper ``__spec__`` (transformers' import checks need one) is visible only
    while ltx-core imports, so nothing else in the session mistakes it for torchaudio.
    """
    if "torchaudio" in sys.modules:
        yield
        return
    stub = types.ModuleType("torchaudio")
    stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
    sys.modules["torchaudio"] = stub
    try:
        yield
    finally:
        if sys.modules.get("torchaudio") is stub:
            del sys.modules["torchaudio"]


@pytest.fixture(scope="module")
def ltx():
    """ltx-core's configurators (``ltx_core.loader`` first: it breaks a circular import)."""
    import ltx_core.loader  # noqa: F401

    with _torchaudio_stub():
        from ltx_core.model.audio_vae import model_configurator as audio
    from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma import config as gemma_config
    from ltx_core.text_encoders.gemma.encoders.encoder_configurator import EmbeddingsProcessorConfigurator

    return types.SimpleNamespace(
        transformer=LTXModelConfigurator,
        video_encoder=VideoEncoderConfigurator,
        video_decoder=VideoDecoderConfigurator,
        audio_encoder=audio.AudioEncoderConfigurator,
        audio_decoder=audio.AudioDecoderConfigurator,
        vocoder=audio.VocoderConfigurator,
        embeddings=EmbeddingsProcessorConfigurator,
        gemma_text=gemma_config.GEMMA3_CONFIG_FOR_LTX.text_config,
    )


def shapes(module: torch.nn.Module, map_key=lambda k: k) -> dict:
    return {map_key(k): tuple(v.shape) for k, v in module.state_dict().items()}


def assert_same(ours: dict, theirs: dict, label: str) -> None:
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    assert not missing and not extra, (
        f"{label}: ours lacks {missing[:8]} ({len(missing)}), has extra {extra[:8]} ({len(extra)})"
    )
    wrong = [(k, ours[k], theirs[k]) for k in theirs if ours[k] != theirs[k]]
    assert not wrong, f"{label}: shape mismatches (key, ours, ltx-core): {wrong[:8]}"


# ------------------------------------------------------------------------------ ltx-core side
def ref_transformer(ltx, config: dict) -> dict:
    with torch.device("meta"):
        model = ltx.transformer.from_config(config)
    return shapes(model, lambda k: "model.diffusion_model." + k)


def ref_text(ltx, config: dict, monkeypatch, hidden: int, hidden_states: int) -> dict:
    """Projection + connectors, with ltx-core's hard-coded Gemma dims set to the given ones."""
    monkeypatch.setattr(ltx.gemma_text, "hidden_size", hidden)
    monkeypatch.setattr(ltx.gemma_text, "num_hidden_layers", hidden_states - 1)
    with torch.device("meta"):
        module = ltx.embeddings.from_config(config)
    rename = {
        "feature_extractor.": "text_embedding_projection.",
        "video_connector.": "model.diffusion_model.video_embeddings_connector.",
        "audio_connector.": "model.diffusion_model.audio_embeddings_connector.",
    }

    def to_file(key: str) -> str:
        for old, new in rename.items():
            if key.startswith(old):
                return new + key[len(old) :]
        raise AssertionError(f"unexpected ltx-core key {key}")

    return shapes(module, to_file)


def _vae_keys(prefix: str, half: str):
    def to_file(key: str) -> str:
        if key.startswith("per_channel_statistics."):
            return prefix + key  # both halves read the one shared copy in the file
        return f"{prefix}{half}.{key}"

    return to_file


def ref_video_vae(ltx, config: dict) -> dict:
    with torch.device("meta"):
        enc, dec = ltx.video_encoder.from_config(config), ltx.video_decoder.from_config(config)
    return {**shapes(enc, _vae_keys("vae.", "encoder")), **shapes(dec, _vae_keys("vae.", "decoder"))}


def ref_audio_vae(ltx, config: dict) -> dict:
    with torch.device("meta"):
        enc, dec = ltx.audio_encoder.from_config(config), ltx.audio_decoder.from_config(config)
    return {**shapes(enc, _vae_keys("audio_vae.", "encoder")), **shapes(dec, _vae_keys("audio_vae.", "decoder"))}


def ref_vocoder(ltx, config: dict) -> dict:
    with torch.device("meta"):
        module = ltx.vocoder.from_config(config)
    return shapes(module, lambda k: "vocoder." + k)  # ltx-core strips exactly one "vocoder."


# ------------------------------------------------------------------------------ tiny configs
@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_transformer_layout(ltx, version):
    config = T.tiny_config(version)
    ours = T.tiny_layout(version, ["transformer"])
    assert_same(ours, ref_transformer(ltx, config), f"{version} transformer")


@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_text_layouts(ltx, version, monkeypatch):
    config = T.tiny_config(version)
    ours = T.tiny_layout(version, ["text_projection", "text_connectors"])
    theirs = ref_text(ltx, config, monkeypatch, config["transformer"]["caption_channels"], T.TINY_TEXT_HIDDEN_STATES)
    assert_same(ours, theirs, f"{version} text projection + connectors")
    v2 = "text_embedding_projection.video_aggregate_embed.bias" in ours
    assert v2 == (version == "2.3")


@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_video_vae_layout(ltx, version):
    config = T.tiny_config(version)
    ours = L.video_vae_layout(config["vae"])
    assert_same(ours, ref_video_vae(ltx, config), f"{version} video VAE")


@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_audio_vae_layout(ltx, version):
    config = T.tiny_config(version)
    assert_same(T.tiny_layout(version, ["audio_vae"]), ref_audio_vae(ltx, config), f"{version} audio VAE")


@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_vocoder_layout(ltx, version):
    config = T.tiny_config(version)
    ours = T.tiny_layout(version, ["vocoder"])
    assert_same(ours, ref_vocoder(ltx, config), f"{version} vocoder")
    assert any(k.startswith("vocoder.bwe_generator.") for k in ours) == (version == "2.3")


def test_tiny_file_holds_exactly_the_layout(tmp_path):
    from safetensors import safe_open

    for version in VERSIONS:
        path = tmp_path / f"tiny-{version}.safetensors"
        T.write_tiny_checkpoint(path, version, "all")
        layout = T.tiny_layout(version)
        with safe_open(str(path), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            meta = f.metadata()
        unused = {f"vae.per_channel_statistics.{n}": (128,) for n in L.VIDEO_VAE_UNUSED_STATS}
        assert found == layout and set(unused) <= set(found)
        config = json.loads(meta["config"])
        assert set(config) == {"transformer", "vae", "audio_vae", "vocoder", "scheduler"}
        assert meta.get("model_version") == ("2.3.0" if version == "2.3" else None)
        # the VAEs' 128-channel convolutions set the floor (see tiny_layouts' module doc)
        assert path.stat().st_size < 18_000_000, "tiny bundle should stay well under 20 MB"
        # the released models' latent widths (what OpenLTXEmptyLatent makes), and they chain:
        # VAE latents feed the transformer as they are
        t = config["transformer"]
        dd = config["audio_vae"]["model"]["params"]["ddconfig"]
        assert t["in_channels"] == t["out_channels"] == config["vae"]["latent_channels"] == 128
        assert (dd["z_channels"], dd["mel_bins"] // 4) == (8, 16)
        # the published header has no audio_in_channels: the audio input width is only a tensor shape
        assert "audio_in_channels" not in t
        audio_in = found["model.diffusion_model.audio_patchify_proj.weight"][1]
        assert audio_in == t["audio_out_channels"] == dd["z_channels"] * dd["mel_bins"] // 4 == dd["ch"]
        transformer_only = tmp_path / f"tiny-{version}-transformer.safetensors"
        T.write_tiny_checkpoint(transformer_only, version, "transformer")
        assert transformer_only.stat().st_size < 1_000_000


@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_vaes_run_in_ltx_core_at_the_real_latent_widths(ltx, version):
    """ltx-core's own VAEs and vocoder, loaded with the tiny weights, run: pixels -> (B, 128, ...)
    latents -> pixels, mel -> (B, 8, T, 16) latents -> mel -> waveform."""
    config = T.tiny_config(version)
    sd = T.tiny_state_dict(version, ["video_vae", "audio_vae", "vocoder"])

    def load(module, to_file):
        module.load_state_dict({k: sd[to_file(k)] for k in module.state_dict()}, strict=True)
        return module.eval()

    video_enc = load(ltx.video_encoder.from_config(config), _vae_keys("vae.", "encoder"))
    video_dec = load(ltx.video_decoder.from_config(config), _vae_keys("vae.", "decoder"))
    audio_enc = load(ltx.audio_encoder.from_config(config), _vae_keys("audio_vae.", "encoder"))
    audio_dec = load(ltx.audio_decoder.from_config(config), _vae_keys("audio_vae.", "decoder"))
    vocoder = load(ltx.vocoder.from_config(config), lambda k: "vocoder." + k)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        latent = video_enc(torch.randn(1, 3, 9, 96, 64, generator=g))
        assert latent.shape == (1, 128, 2, 3, 2)
        video = video_dec(torch.randn(1, 128, 2, 3, 2, generator=g))
        assert video.shape == (1, 3, 9, 96, 64)
        audio_latent = audio_enc(torch.randn(1, 2, 36, 64, generator=g))
        assert audio_latent.shape == (1, 8, 9, 16)
        mel = audio_dec(torch.randn(1, 8, 9, 16, generator=g))
        assert mel.shape == (1, 2, 33, 64)  # causal: 4 (T - 1) + 1 mel frames
        wave = vocoder(mel)
        rate = 24000 if version == "2.0" else 48000
        assert wave.shape == (1, 2, 33 * rate // 100)  # 100 mel frames per second
    for out in (latent, video, audio_latent, mel, wave):
        assert torch.isfinite(out).all()


# ------------------------------------------------------------------------------ full size
official_vae_config = L.official_vae_config  # lives in model_loaders/layouts.py (benchmarks use it)


def official_config(version: str) -> dict:
    t = official_19b_header()
    vocoder = {"resblock": "1", "stereo": True}  # everything else: the 2.0 defaults
    if version == "2.3":
        t.update(
            apply_gated_attention=True, cross_attention_adaln=True, caption_proj_before_connector=True,
            caption_projection_first_linear=False, caption_proj_input_norm=False,
            caption_projection_second_linear=False, connector_num_layers=8, connector_num_attention_heads=32,
            connector_attention_head_dim=128, audio_connector_num_attention_heads=32,
            audio_connector_attention_head_dim=64, connector_apply_gated_attention=True,
        )  # fmt: skip
        amp = {"resblock": "AMP1", "stereo": True, "activation": "snakebeta",
               "use_tanh_at_final": False, "use_bias_at_final": False}  # fmt: skip
        vocoder = {
            "vocoder": {**amp, "upsample_initial_channel": 1536, "upsample_rates": [5, 2, 2, 2, 2, 2],
                        "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4]},
            "bwe": {**amp, "upsample_initial_channel": 512, "upsample_rates": [6, 5, 2, 2, 2],
                    "upsample_kernel_sizes": [12, 11, 4, 4, 4], "input_sampling_rate": 16000,
                    "output_sampling_rate": 48000, "hop_length": 80, "n_fft": 512, "num_mels": 64},
        }  # fmt: skip
    dd = {"double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "in_channels": 2, "out_ch": 2,
          "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [],
          "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height"}  # fmt: skip
    audio_vae = {"model": {"params": {"ddconfig": dd, "sampling_rate": 16000}}}
    return {"transformer": t, "vae": official_vae_config(version), "audio_vae": audio_vae, "vocoder": vocoder}


def _params(layout: dict) -> int:
    return sum(math.prod(s) for s in layout.values())


@pytest.mark.parametrize("version", VERSIONS)
def test_official_size_layouts(ltx, version, monkeypatch):
    """Full-size configs, built on the meta device: the layouts are not tuned to tiny shapes."""
    config = official_config(version)
    per = L.bundle_layout(config, with_unused_stats=False)
    assert_same(per["transformer"], ref_transformer(ltx, config), f"{version} transformer")
    text = {**per["text_projection"], **per["text_connectors"]}
    assert_same(text, ref_text(ltx, config, monkeypatch, 3840, L.GEMMA_HIDDEN_STATES), f"{version} text")
    assert_same(per["video_vae"], ref_video_vae(ltx, config), f"{version} video VAE")
    assert_same(per["audio_vae"], ref_audio_vae(ltx, config), f"{version} audio VAE")
    assert_same(per["vocoder"], ref_vocoder(ltx, config), f"{version} vocoder")
    if version == "2.0":  # parameter counts of LTX2_SPEC sections 1.2 and 3-4
        assert _params(per["transformer"]) == 18_876_174_592
        assert round(_params(per["text_projection"]) / 1e6, 1) == 722.5
        encoder = {k: s for k, s in per["video_vae"].items() if k.startswith("vae.encoder.")}
        decoder = {k: s for k, s in per["video_vae"].items() if k.startswith("vae.decoder.")}
        assert round(_params(encoder) / 1e6, 1) == 694.1 and round(_params(decoder) / 1e6, 1) == 528.4
        assert round(_params(per["vocoder"]) / 1e6, 1) == 55.6


def test_layout_variants(ltx):
    """Block types and switches the official files do not use, still equal to ltx-core."""
    vae = official_vae_config("2.0")
    vae.update(norm_layer="group_norm", latent_log_var="per_channel", timestep_conditioning=True)
    vae["encoder_blocks"] = [["res_x", 1], ["res_x_y", {"multiplier": 2}], ["compress_time", {}],
                             ["compress_space", {}], ["compress_all", {}], ["compress_all_x_y", {"multiplier": 2}],
                             ["res_x", 1]]  # fmt: skip
    vae["decoder_blocks"] = [["res_x", {"num_layers": 1, "inject_noise": True}], ["res_x_y", {"multiplier": 2}],
                             ["compress_all", {"multiplier": 2}], ["res_x", 2]]  # fmt: skip
    config = {"vae": vae}
    assert_same(L.video_vae_layout(vae), ref_video_vae(ltx, config), "video VAE variant")
    no_ts = dict(vae)
    del no_ts["timestep_conditioning"]  # ltx-core defaults it to True; so do we
    assert_same(L.video_vae_layout(no_ts), ref_video_vae(ltx, {"vae": no_ts}), "video VAE without the flag")

    dd = {"ch": 64, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [256, 128], "resolution": 256,
          "z_channels": 4, "double_z": False, "norm_type": "group", "causality_axis": None,
          "mid_block_add_attention": True, "mel_bins": 64}  # fmt: skip
    audio = {"audio_vae": {"model": {"params": {"ddconfig": dd}}}}
    assert_same(L.audio_vae_layout(audio["audio_vae"]), ref_audio_vae(ltx, audio), "audio VAE variant")
    no_blocks = {"audio_vae": {"model": {"params": {"ddconfig": {**dd, "num_res_blocks": 0, "ch_mult": [1, 2, 4]}}}}}
    assert_same(L.audio_vae_layout(no_blocks["audio_vae"]), ref_audio_vae(ltx, no_blocks), "audio VAE, no res blocks")
    bare = {"audio_vae": {}}  # every ltx-core default, attention included
    assert_same(L.audio_vae_layout(bare["audio_vae"]), ref_audio_vae(ltx, bare), "audio VAE defaults")
