"""Audio VAE, vocoders and their loaders against Lightricks' ltx-core 1.0.0 (same weights, fp32).

ltx-core's encoder, decoder and vocoders are compared module to module.  Its mel front end
(``AudioProcessor``) needs torchaudio, which is not installable here: our front end is checked
against librosa in test_mel.py, and the waveform -> latent chain below feeds ltx-core's encoder
the mel our front end computes.
"""

from __future__ import annotations

import json
import types

import pytest
import torch
from safetensors.torch import save_file
from test_tiny_layouts import _torchaudio_stub, _vae_keys

from openltx.ltx2 import ops as ltx_ops
from openltx.ltx2.audio_pipeline import decode_audio, encode_audio
from openltx.ltx2.audio_vae import AudioVAE
from openltx.ltx2.vocoder import Generator, build_vocoder
from openltx.model_loaders import layouts as L
from openltx.model_loaders import tiny_layouts as T
from openltx.model_loaders.audio_loading import load_audio_vae, load_vocoder
from openltx.model_loaders.checkpoint import read_checkpoint
from openltx.model_loaders.safetensors_file import CheckpointError

VERSIONS = ("2.0", "2.3")
TOL = 1e-5  # relative to the reference output's largest magnitude


@pytest.fixture(scope="module")
def ltx():
    import ltx_core.loader  # noqa: F401  (before anything else: breaks a circular import)

    with _torchaudio_stub():
        from ltx_core.model.audio_vae import audio_vae as ref_vae
        from ltx_core.model.audio_vae import model_configurator as ref_cfg
        from ltx_core.model.audio_vae import vocoder as ref_voc
    return types.SimpleNamespace(cfg=ref_cfg, vae=ref_vae, voc=ref_voc)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Tiny single-file bundles (official layout, random fp32 weights) of both versions."""
    root = tmp_path_factory.mktemp("audio")
    out = {}
    for v in VERSIONS:
        path = root / f"tiny-{v}.safetensors"
        out[v] = (path, T.write_tiny_checkpoint(path, v, "all"))
    return out


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, (tuple(ours.shape), tuple(ref.shape))
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def ref_audio_vae(ltx, config: dict, sd: dict):
    enc = ltx.cfg.AudioEncoderConfigurator.from_config(config)
    dec = ltx.cfg.AudioDecoderConfigurator.from_config(config)
    enc.load_state_dict({k: sd[_vae_keys("audio_vae.", "encoder")(k)] for k in enc.state_dict()}, strict=True)
    dec.load_state_dict({k: sd[_vae_keys("audio_vae.", "decoder")(k)] for k in dec.state_dict()}, strict=True)
    return enc.eval(), dec.eval()


def ref_vocoder(ltx, config: dict, sd: dict):
    voc = ltx.cfg.VocoderConfigurator.from_config(config)
    voc.load_state_dict({k: sd["vocoder." + k] for k in voc.state_dict()}, strict=True)
    return voc.eval()


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------ audio VAE
def test_audio_vae_parity_tiny_bundle(ltx, bundles):
    path, sd = bundles["2.0"]
    ours = load_audio_vae(path)
    enc, dec = ref_audio_vae(ltx, T.tiny_config("2.0"), sd)
    mel = randn(2, 2, 21, 64, seed=1)
    with torch.no_grad():
        latent = ours.encode(mel)
        assert latent.shape == (2, 8, 6, 16)  # 4 k + 1 mel frames -> k + 1 latents
        assert rel_err(latent, enc(mel)) <= TOL
        z = randn(2, 8, 5, 16, seed=2)
        out = ours.decode(z)
        assert out.shape == (2, 2, 17, 64)  # 4 T - 3
        assert rel_err(out, dec(z)) <= TOL
    assert ours.mel_frames(9) == 33 and ours.config.latents_per_second == 25


def _variant(ltx, dd: dict, mel_shape, latent_shape):
    section = {"model": {"params": {"ddconfig": dd, "sampling_rate": 16000}}}
    layout = L.audio_vae_layout(section)
    g = torch.Generator().manual_seed(3)
    sd = {k: T.random_tensor(k, s, g) for k, s in layout.items()}
    ours = AudioVAE(section)
    ours.load_state_dict({k[len("audio_vae.") :]: v for k, v in sd.items()}, strict=True)
    enc, dec = ref_audio_vae(ltx, {"audio_vae": section}, sd)
    mel, z = randn(*mel_shape, seed=4), randn(*latent_shape, seed=5)
    with torch.no_grad():
        return rel_err(ours.encode(mel), enc(mel)), rel_err(ours.decode(z), dec(z))


def test_audio_vae_parity_variants(ltx):
    """Switches the tiny config leaves off: res blocks with 1x1 shortcuts, attention, GroupNorm, non-causal."""
    causal = {"ch": 32, "ch_mult": [1, 2, 4], "num_res_blocks": 1, "attn_resolutions": [128], "resolution": 256,
              "z_channels": 2, "double_z": True, "norm_type": "pixel", "causality_axis": "height",
              "mid_block_add_attention": True, "mel_bins": 64, "in_channels": 2, "out_ch": 2}  # fmt: skip
    assert max(_variant(ltx, causal, (1, 2, 13, 64), (1, 2, 4, 16))) <= TOL
    grouped = {"ch": 32, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [256, 128], "resolution": 256,
               "z_channels": 4, "double_z": True, "norm_type": "group", "causality_axis": None,
               "mid_block_add_attention": True, "mel_bins": 16, "in_channels": 2, "out_ch": 2}  # fmt: skip
    assert max(_variant(ltx, grouped, (2, 2, 8, 16), (2, 4, 3, 8))) <= TOL


# ------------------------------------------------------------------------------ vocoders
@pytest.mark.parametrize("version", VERSIONS)
def test_vocoder_parity(ltx, bundles, version):
    path, sd = bundles[version]
    ours = load_vocoder(path)
    ref = ref_vocoder(ltx, T.tiny_config(version), sd)
    rate = 24000 if version == "2.0" else 48000
    assert ours.sample_rate == rate == ref.output_sampling_rate
    mel = randn(2, 2, 11, 64, seed=6)
    with torch.no_grad():
        wave = ours(mel)
        assert wave.shape == (2, 2, 11 * rate // 100)  # 100 mel frames per second
        assert rel_err(wave, ref(mel)) <= TOL
        assert wave.abs().max() <= 1.0


def test_bigvgan_generator_with_plain_snake(ltx):
    """An AMP1 generator with Snake (not SnakeBeta) activations and a tanh output."""
    cfg = {"resblock": "AMP1", "activation": "snake", "upsample_initial_channel": 16, "upsample_rates": [4, 2],
           "upsample_kernel_sizes": [8, 4], "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3, 5]] * 2}  # fmt: skip
    ref = ltx.voc.Vocoder(**{k: v for k, v in cfg.items()}, output_sampling_rate=800).eval()
    g = torch.Generator().manual_seed(7)
    sd = {k: T.random_tensor(k, tuple(v.shape), g) for k, v in ref.state_dict().items()}
    ref.load_state_dict(sd)
    ours = Generator(cfg, 800, final_activation=True, ops=ltx_ops.TorchOps, dtype=None, device=None)
    ours.load_state_dict(sd, strict=True)
    mel = randn(1, 2, 13, 64, seed=8)
    with torch.no_grad():
        assert rel_err(ours(mel), ref(mel)) <= TOL


# ------------------------------------------------------------------------------ chains
def test_encode_audio_chain(ltx, bundles):
    """44.1 kHz mono -> stereo -> 16 kHz -> mel -> latent; ltx-core's encoder on the same mel."""
    path, sd = bundles["2.3"]
    vae = load_audio_vae(read_checkpoint(path))  # from a CheckpointInfo
    enc, _ = ref_audio_vae(ltx, T.tiny_config("2.3"), sd)
    t = torch.arange(44100) / 44100
    mono = (0.4 * torch.sin(2 * torch.pi * 330 * t) + 0.05 * randn(44100, seed=9))[None, None]  # (1, 1, 1 s)
    latent = encode_audio(vae, mono, 44100)
    assert latent.shape == (1, 8, 26, 16)  # 16000 samples -> 101 mel frames -> 26 latents (25 / s)
    from openltx.ltx2.audio_pipeline import waveform_to_mel

    mel = waveform_to_mel(mono, 44100, vae.mel_config)
    assert mel.shape == (1, 2, 101, 64) and torch.equal(mel[:, 0], mel[:, 1])
    with torch.no_grad():
        assert rel_err(latent, enc(mel)) <= TOL
    stereo = encode_audio(vae, mono.expand(1, 2, -1).contiguous(), 44100)
    assert torch.equal(stereo, latent)  # mono is duplicated to stereo


@pytest.mark.parametrize("version", VERSIONS)
def test_decode_audio_chain(ltx, bundles, version):
    path, sd = bundles[version]
    info = read_checkpoint(path)
    vae, voc = load_audio_vae(info), load_vocoder(info)
    _, dec = ref_audio_vae(ltx, T.tiny_config(version), sd)
    ref_voc = ref_vocoder(ltx, T.tiny_config(version), sd)
    latent = randn(1, 8, 4, 16, seed=10)
    wave, rate = decode_audio(vae, voc, latent)
    with torch.no_grad():
        ref = ltx.vae.decode_audio(latent, dec, ref_voc)
    assert rate == ref.sampling_rate and wave.dtype == torch.float32
    assert wave.shape == (1, 2, 13 * rate // 100)  # 4 latents -> 13 mel frames
    assert rel_err(wave[0], ref.waveform) <= TOL


def test_bf16_decode_runs():
    sd = T.tiny_state_dict("2.3", ["audio_vae", "vocoder"], dtype=torch.bfloat16)
    cfg = T.tiny_config("2.3")
    vae = AudioVAE(cfg["audio_vae"], dtype=torch.bfloat16)
    vae.load_state_dict({k[10:]: v for k, v in sd.items() if k.startswith("audio_vae.")})
    voc = build_vocoder(cfg["vocoder"], dtype=torch.bfloat16)
    voc.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("vocoder.")})
    wave, rate = decode_audio(vae, voc, randn(1, 8, 2, 16))
    assert rate == 48000 and wave.dtype == torch.float32 and wave.shape == (1, 2, 5 * 480)
    assert torch.isfinite(wave).all() and wave.abs().max() <= 1


# ------------------------------------------------------------------------------ loading
def _save(path, tensors: dict, config) -> str:
    save_file(tensors, str(path), metadata={"config": json.dumps(config)} if config is not None else None)
    return str(path)


@pytest.mark.parametrize("version", VERSIONS)
def test_standalone_files(bundles, tmp_path, version):
    _, sd = bundles[version]
    cfg = T.tiny_config(version)
    vae_sd = {k: v for k, v in sd.items() if k.startswith("audio_vae.")}
    voc_sd = {k: v for k, v in sd.items() if k.startswith("vocoder.")}
    ref_vae, ref_voc = load_audio_vae(bundles[version][0]), load_vocoder(bundles[version][0])
    z, mel = randn(1, 8, 4, 16), randn(1, 2, 9, 64)
    with torch.no_grad():
        want_mel, want_wave = ref_vae.decode(z), ref_voc(mel)
    # prefixed keys, whole config / bare keys, the section as the config
    files = {
        "vae_prefixed": _save(tmp_path / "a.safetensors", vae_sd, cfg),
        "vae_bare": _save(tmp_path / "b.safetensors", {k[10:]: v for k, v in vae_sd.items()}, cfg["audio_vae"]),
        "voc_prefixed": _save(tmp_path / "c.safetensors", voc_sd, {"vocoder": cfg["vocoder"]}),
        "voc_bare": _save(tmp_path / "d.safetensors", {k[8:]: v for k, v in voc_sd.items()}, cfg["vocoder"]),
    }
    with torch.no_grad():
        for name in ("vae_prefixed", "vae_bare"):
            assert torch.equal(load_audio_vae(files[name]).decode(z), want_mel), name
        for name in ("voc_prefixed", "voc_bare"):
            assert torch.equal(load_vocoder(files[name])(mel), want_wave), name
    half = load_vocoder(files["voc_bare"], dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and next(half.parameters()).dtype == torch.bfloat16


def test_loader_errors(bundles, tmp_path):
    _, sd = bundles["2.3"]
    cfg = T.tiny_config("2.3")
    vae_sd = {k: v for k, v in sd.items() if k.startswith("audio_vae.")}
    voc_sd = {k: v for k, v in sd.items() if k.startswith("vocoder.")}

    missing = dict(vae_sd)
    del missing["audio_vae.decoder.conv_out.conv.weight"]
    with pytest.raises(CheckpointError, match=r"1 missing key.*audio_vae\.decoder\.conv_out\.conv\.weight"):
        load_audio_vae(_save(tmp_path / "m.safetensors", missing, cfg))

    extra = {**voc_sd, "vocoder.bwe_generator.extra.weight": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"unexpected key.*vocoder\.bwe_generator\.extra\.weight"):
        load_vocoder(_save(tmp_path / "u.safetensors", extra, cfg))

    wrong = {**voc_sd, "vocoder.vocoder.conv_pre.weight": torch.zeros(32, 128, 5)}
    with pytest.raises(CheckpointError, match=r"shape mismatch.*conv_pre\.weight.*\[32, 128, 7\].*\[32, 128, 5\]"):
        load_vocoder(_save(tmp_path / "s.safetensors", wrong, cfg))

    # no config, and upsample kernels no released vocoder has: the strides are unknown
    with pytest.raises(CheckpointError, match=r"n.safetensors: the header has no config for the vocoder.*kernels "
                                              r"\[11, 8, 4, 4, 4\].*strides are unknown"):
        load_vocoder(_save(tmp_path / "n.safetensors", voc_sd, None))

    transformer_only = tmp_path / "t.safetensors"
    T.write_tiny_checkpoint(transformer_only, "2.0", "transformer")
    with pytest.raises(CheckpointError, match="expected audio VAE weights in this file, found none"):
        load_audio_vae(transformer_only)

    bad = {**cfg["vocoder"], "vocoder": {**cfg["vocoder"]["vocoder"], "activation": "relu"}}
    with pytest.raises(CheckpointError, match=r"config\.vocoder\.vocoder\.activation is 'relu'.*act\.beta.*SnakeBeta"):
        load_vocoder(_save(tmp_path / "c.safetensors", voc_sd, {"vocoder": bad}))


def test_bad_inputs(bundles):
    vae, voc = load_audio_vae(bundles["2.0"][0]), load_vocoder(bundles["2.0"][0])
    with pytest.raises(ValueError, match=r"expected an audio latent \(batch, 8, frames, 16\), found \(1, 128, 2, 3, 2\)"):
        vae.decode(torch.zeros(1, 128, 2, 3, 2))  # a video latent
    with pytest.raises(ValueError, match="8 channels x 12 mel bins"):
        vae.decode(torch.zeros(1, 8, 4, 12))
    with pytest.raises(ValueError, match="empty"):
        vae.decode(torch.zeros(1, 8, 0, 16))
    with pytest.raises(ValueError, match=r"log-mel spectrogram \(batch, 2, frames, 64\)"):
        vae.encode(torch.zeros(1, 2, 9, 80))
    with pytest.raises(ValueError, match="no samples"):
        encode_audio(vae, torch.zeros(1, 2, 0), 44100)
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\)"):
        encode_audio(vae, torch.zeros(44100), 44100)
    with pytest.raises(ValueError, match="at least 513"):
        encode_audio(vae, torch.zeros(1, 1, 100), 16000)
    with pytest.raises(ValueError, match=r"stereo log-mel spectrogram \(batch, 2, frames, 64\)"):
        voc(torch.zeros(1, 8, 4, 16))  # a latent instead of a mel


def test_layers_come_from_operations():
    """Every conv is built by the injected namespace (quantized / offloaded layers plug in there)."""
    made = []

    def recording(base):
        class Layer(base):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                made.append(self)

        return Layer

    ops = types.SimpleNamespace(**{n: recording(getattr(ltx_ops.TorchOps, n)) for n in ("Conv1d", "Conv2d", "ConvTranspose1d", "GroupNorm")})
    cfg = T.tiny_config("2.3")
    models = [AudioVAE(cfg["audio_vae"], operations=ops, device="meta"), build_vocoder(cfg["vocoder"], operations=ops, device="meta")]
    convs = [m for model in models for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.ConvTranspose1d))]
    assert convs and all(any(c is m for m in made) for c in convs)


@pytest.mark.parametrize("version", VERSIONS)
def test_official_size_modules_match_the_layouts(version):
    """Full-size configs on the meta device: our modules hold exactly the official keys and shapes."""
    from test_tiny_layouts import official_config

    config = official_config(version)
    vae = AudioVAE(config["audio_vae"], device="meta")
    voc = build_vocoder(config["vocoder"], device="meta")
    ours = {**{"audio_vae." + k: tuple(v.shape) for k, v in vae.state_dict().items()},
            **{"vocoder." + k: tuple(v.shape) for k, v in voc.state_dict().items()}}  # fmt: skip
    layout = {**L.audio_vae_layout(config["audio_vae"]), **L.vocoder_layout(config["vocoder"])}
    assert ours == layout
    decoder = sum(v.numel() for k, v in vae.state_dict().items() if k.startswith("decoder."))
    assert round(decoder / 1e6, 1) == 31.9  # LTX2_SPEC section 4
    if version == "2.0":
        assert round(sum(v.numel() for v in voc.state_dict().values()) / 1e6, 1) == 55.6
    else:
        assert voc.sample_rate == 48000 and voc.input_sampling_rate == 16000
