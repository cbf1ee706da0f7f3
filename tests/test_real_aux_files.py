"""Video VAE, audio VAE and vocoder files as users have them: the published header key sets,
bundles and split files, with or without metadata; contradictions between header and tensors.

The fixtures (``real_aux_fixtures``) are the published ``vae`` / ``audio_vae`` / ``vocoder``
sections with shape values scaled down and nothing added.  Every layout of the same weights
must build the same module (state dicts equal, outputs bit-identical on the CPU), and the
bundle's must equal ltx-core 1.0.0 built from the published (scaled) header: float32,
max |ours - ltx-core| / max |ltx-core| <= 1e-5.
"""

from __future__ import annotations

import json
import logging
import types

import pytest
import torch
from safetensors.torch import save_file
from test_tiny_layouts import _torchaudio_stub, _vae_keys

import real_aux_fixtures as F
from openltx.model_loaders.audio_loading import audio_vae_config, load_audio_vae, load_vocoder, vocoder_config
from openltx.model_loaders.aux_parts import find_parts
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.model_loaders.video_vae_loading import load_video_vae, video_vae_config

TOL = 1e-5
VERSIONS = F.VERSIONS
# (part, keys, metadata) of the split layouts; each must equal the bundle
VIDEO_LAYOUTS = [("video", "bare", "none"), ("video", "prefixed", "none"), ("video", "bare", "section"),
                 ("video", "prefixed", "full")]  # fmt: skip
AUDIO_LAYOUTS = [("audio", "prefixed", "none"), ("audio", "bare", "none"), ("audio", "bare", "section"),
                 ("audio", "prefixed", "full")]  # fmt: skip


@pytest.fixture(scope="module")
def ltx():
    import ltx_core.loader  # noqa: F401  (breaks a circular import in ltx-core)
    from ltx_core.model.video_vae import model_configurator as video
    from ltx_core.model.video_vae import video_vae as video_module

    with _torchaudio_stub():
        from ltx_core.model.audio_vae import model_configurator as audio
    return types.SimpleNamespace(video=video, video_module=video_module, audio=audio)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(version, part, keys, meta) -> path of every layout, written once."""
    root = tmp_path_factory.mktemp("real_aux")
    out = {}
    for v in VERSIONS:
        for layout in [("bundle", "prefixed", "full"), *VIDEO_LAYOUTS, *AUDIO_LAYOUTS]:
            path = root / f"{v}-{'-'.join(layout)}.safetensors"
            F.write(path, v, *layout)
            out[(v, *layout)] = path
    return out


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape, (tuple(ours.shape), tuple(ref.shape))
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _keys(d: dict, prefix: str = "") -> set:
    out = set()
    for k, v in d.items():
        out.add(prefix + k)
        if isinstance(v, dict):
            out |= _keys(v, f"{prefix}{k}.")
    return out


# ------------------------------------------------------------------------------ fixtures
@pytest.mark.parametrize("version", VERSIONS)
def test_fixture_headers_keep_the_published_key_sets(version):
    published, scaled = F.published_config(version), F.scaled_config(version)
    assert _keys(scaled) == _keys(published)
    assert published["transformer"] == scaled["transformer"]
    for i, (name, params) in enumerate(published["vae"]["decoder_blocks"]):
        assert scaled["vae"]["decoder_blocks"][i][0] == name and set(scaled["vae"]["decoder_blocks"][i][1]) == set(params)
    assert "output_sampling_rate" not in scaled["vocoder"] if version == "2.0" else "bwe" in scaled["vocoder"]


@pytest.mark.parametrize("version", VERSIONS)
def test_parts_are_found_in_every_layout(files, version):
    from openltx.model_loaders.safetensors_file import read_header

    def parts(layout):
        header = read_header(files[(version, *layout)])
        return {n: (p.prefix, p.version) for n, p in find_parts({k: e.shape for k, e in header.tensors.items()}).items()}

    voc_prefix = "vocoder."
    assert parts(("bundle", "prefixed", "full")) == {"video_vae": ("vae.", version), "audio_vae": ("audio_vae.", version),
                                                     "vocoder": (voc_prefix, version)}  # fmt: skip
    assert parts(("video", "bare", "none")) == {"video_vae": ("", version)}
    assert parts(("audio", "bare", "none")) == {"audio_vae": ("", version), "vocoder": ("", version)}
    assert parts(("audio", "prefixed", "none")) == {"audio_vae": ("audio_vae.", version), "vocoder": (voc_prefix, version)}


# ------------------------------------------------------------------------------ video VAE
def ref_video(ltx, section: dict, sd: dict):
    """ltx-core's encoder and decoder from the published (scaled) section, the file's weights."""
    out = []
    for cls, half in ((ltx.video.VideoEncoderConfigurator, "encoder"), (ltx.video.VideoDecoderConfigurator, "decoder")):
        module = cls.from_config({"vae": section})
        module.load_state_dict({k: sd[_vae_keys("vae.", half)(k)] for k in module.state_dict()}, strict=True)
        out.append(module.eval())
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_video_vae_every_layout_equals_the_bundle_and_ltx_core(ltx, files, version):
    bundle = load_video_vae(files[(version, "bundle", "prefixed", "full")])
    sd = F.bundle_state_dict(version)
    enc, dec = ref_video(ltx, F.scaled_config(version)["vae"], sd)
    pixels = randn(1, 3, 17, 64, 96, seed=1) * 0.8
    latent = randn(1, 4, 3, 2, 3, seed=2)
    with torch.no_grad():
        want_latent, want_pixels = bundle.encode(pixels), bundle.decode(latent)
        assert rel_err(want_latent, enc(pixels)) <= TOL
        assert rel_err(want_pixels, dec(latent)) <= TOL
    assert bundle.version == version and not bundle.timestep_conditioning
    residual = [b.residual for b in bundle.decoder.up_blocks if hasattr(b, "residual")]
    assert residual == ([True] * 3 if version == "2.0" else [False] * 4)
    assert bundle.encoder.conv_in.conv.padding_mode == "zeros"
    assert bundle.decoder.conv_in.conv.padding_mode == "reflect"
    want_sd = bundle.state_dict()
    for layout in VIDEO_LAYOUTS:
        model = load_video_vae(files[(version, *layout)])
        got = model.state_dict()
        assert got.keys() == want_sd.keys() and all(torch.equal(got[k], want_sd[k]) for k in got), layout
        with torch.no_grad():
            assert torch.equal(model.encode(pixels), want_latent), layout
            assert torch.equal(model.decode(latent), want_pixels), layout


@pytest.mark.parametrize("version", VERSIONS)
def test_video_vae_config_sources(files, version, caplog):
    full = video_vae_config(files[(version, "video", "prefixed", "full")])
    bare = video_vae_config(files[(version, "video", "bare", "none")])
    assert full.had_header and not bare.had_header and full.version == bare.version == version
    assert full.sources["config.vae.latent_channels"] == bare.sources["config.vae.latent_channels"] == "shape"
    assert bare.sources["config.vae.decoder_blocks[1].residual"] == "released default"
    expected_pad = "header" if version == "2.3" else "released default"  # 2.0's header names no padding mode
    assert full.sources["config.vae.decoder_spatial_padding_mode"] == expected_pad
    assert bare.config["decoder_blocks"] == full.config["decoder_blocks"]
    for key in ("latent_channels", "patch_size", "decoder_base_channels", "encoder_blocks", "latent_log_var",
                "norm_layer", "timestep_conditioning", "encoder_spatial_padding_mode", "decoder_spatial_padding_mode"):
        assert bare.config[key] == full.config[key], key  # fmt: skip
    with caplog.at_level(logging.INFO):
        load_video_vae(files[(version, "video", "bare", "none")])
    lines = [r.getMessage() for r in caplog.records if "no video VAE config in the header" in r.getMessage()]
    assert len(lines) == 1 and f"released LTX-{version} VAE" in lines[0], lines


def _with_header(tmp_path, version: str, edit, name="edited.safetensors"):
    """The bundle's video VAE tensors (prefixed) with an edited copy of the full header."""
    sd = {k: v for k, v in F.bundle_state_dict(version).items() if k.startswith("vae.")}
    config = F.scaled_config(version)
    edit(config)
    path = tmp_path / name
    save_file(sd, str(path), metadata={"config": json.dumps(config)})
    return path


def _set(path: list, value):
    def edit(config):
        node = config
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "version, path, value, words",
    [
        ("2.0", ["vae", "latent_channels"], 128,
         [r"config\.vae\.latent_channels is 128", r"'vae\.decoder\.conv_in\.conv\.weight' has shape \[32, 4, 3, 3, 3\]",
          "4 latent channels"]),
        ("2.3", ["vae", "patch_size"], 2, [r"config\.vae\.in_channels / patch_size", "encoder.conv_in.conv.weight",
                                           r"\[4, 48, 3, 3, 3\]"]),
        ("2.3", ["vae", "decoder_base_channels"], 128, [r"decoder_base_channels is 128", r"\[16, 4, 3, 3, 3\]"]),
        ("2.0", ["vae", "decoder_blocks", 0, 1, "num_layers"], 5,
         [r"config\.vae\.decoder_blocks\[0\] is \['res_x', \{'inject_noise': False, 'num_layers': 5\}\]",
          r"'vae\.decoder\.up_blocks\.6\.res_blocks\.0\.conv1\.conv\.weight", "res_x with 1 layer"]),
        ("2.3", ["vae", "encoder_blocks", 3, 0], "compress_space_res",
         [r"config\.vae\.encoder_blocks\[3\] is \['compress_space_res'", "compress_time_res", "time x2"]),
        ("2.3", ["vae", "decoder_blocks", 5, 1, "multiplier"], 2,
         [r"decoder_blocks\[5\]", r"'vae\.decoder\.up_blocks\.3\.conv\.conv\.weight", r"multiplier 1"]),
        ("2.0", ["vae", "timestep_conditioning"], True,
         [r"timestep_conditioning is True", "the file has no tensor", "a plain decoder"]),
        ("2.3", ["vae", "latent_log_var"], "per_channel", [r"latent_log_var is 'per_channel'", r"5 rows for 4"]),
        ("2.3", ["vae", "norm_layer"], "group_norm", [r"norm_layer is 'group_norm'", "PixelNorm"]),
        ("2.0", ["vae", "decoder_blocks"], [["res_x", {"num_layers": 1}]], [r"decoder_blocks is '1 blocks'", "7 blocks"]),
    ],
)  # fmt: skip
def test_video_vae_header_contradicting_a_shape(tmp_path, version, path, value, words):
    file = _with_header(tmp_path, version, _set(path, value))
    with pytest.raises(CheckpointError) as err:
        load_video_vae(file)
    message = str(err.value)
    assert str(file) in message and "disagree" in message
    import re

    for w in words:
        assert re.search(w, message), (w, message)


def test_padding_modes_come_from_the_header(ltx, tmp_path):
    """2.3's named padding keys are honoured (ltx-core 1.0.0 reads only spatial_padding_mode:
    compared with its decoder class given the mode directly)."""
    file = _with_header(tmp_path, "2.3", _set(["vae", "decoder_spatial_padding_mode"], "zeros"))
    model = load_video_vae(file)
    modes = {m.padding_mode for n, m in model.decoder.named_modules() if isinstance(m, torch.nn.Conv3d)}
    assert modes == {"zeros"}
    assert model.encoder.conv_in.conv.padding_mode == "zeros"
    section = F.scaled_config("2.3")["vae"]
    ref = ltx.video_module.VideoDecoder(
        in_channels=4, out_channels=3, decoder_blocks=section["decoder_blocks"], patch_size=4,
        timestep_conditioning=False, decoder_spatial_padding_mode=ltx.video.PaddingModeType.ZEROS, base_channels=2,
    )  # fmt: skip
    sd = F.bundle_state_dict("2.3")
    ref.load_state_dict({k: sd[_vae_keys("vae.", "decoder")(k)] for k in ref.state_dict()}, strict=True)
    latent = randn(1, 4, 2, 2, 2, seed=4)
    reflect = load_video_vae(_with_header(tmp_path, "2.3", lambda c: None, "as_published.safetensors"))
    with torch.no_grad():
        out = model.decode(latent)
        assert rel_err(out, ref.eval()(latent)) <= TOL
        assert rel_err(reflect.decode(latent), out) > 1e-3  # the padding mode shows in the output


def test_header_less_video_vae_of_no_release_is_refused(tmp_path):
    """Without a header, only the released layouts load: a decoder of another block sequence
    has residual / padding settings no tensor shows."""
    section = F.scaled_config("2.3")["vae"]
    section["decoder_blocks"] = section["decoder_blocks"][2:]  # drop the space x2 stage
    from openltx.model_loaders import layouts as L
    from openltx.model_loaders.tiny_layouts import random_tensor

    g = torch.Generator().manual_seed(0)
    sd = {k[len("vae."):]: random_tensor(k, s, g) for k, s in L.video_vae_layout(section).items()}
    path = tmp_path / "odd.safetensors"
    save_file(sd, str(path))
    with pytest.raises(CheckpointError, match="no config for the video VAE.*neither the released LTX-2 nor LTX-2.3"):
        load_video_vae(path)
    save_file(sd, str(path), metadata={"config": json.dumps(section)})
    assert load_video_vae(path).version is None  # with its header it loads


# ------------------------------------------------------------------------------ audio VAE + vocoder
def ref_audio(ltx, config: dict, sd: dict):
    enc = ltx.audio.AudioEncoderConfigurator.from_config(config)
    dec = ltx.audio.AudioDecoderConfigurator.from_config(config)
    enc.load_state_dict({k: sd[_vae_keys("audio_vae.", "encoder")(k)] for k in enc.state_dict()}, strict=True)
    dec.load_state_dict({k: sd[_vae_keys("audio_vae.", "decoder")(k)] for k in dec.state_dict()}, strict=True)
    voc = ltx.audio.VocoderConfigurator.from_config(config)
    voc.load_state_dict({k: sd["vocoder." + k] for k in voc.state_dict()}, strict=True)
    return enc.eval(), dec.eval(), voc.eval()


@pytest.mark.parametrize("version", VERSIONS)
def test_audio_every_layout_equals_the_bundle_and_ltx_core(ltx, files, version):
    path = files[(version, "bundle", "prefixed", "full")]
    vae, voc = load_audio_vae(path), load_vocoder(path)
    enc, dec, ref_voc = ref_audio(ltx, F.scaled_config(version), F.bundle_state_dict(version))
    mel, z, mel_voc = randn(1, 2, 17, 64, seed=5), randn(1, 2, 4, 16, seed=6), randn(1, 2, 3, 64, seed=7)
    with torch.no_grad():
        want_latent, want_mel, want_wave = vae.encode(mel), vae.decode(z), voc(mel_voc)
        assert want_latent.shape == (1, 2, 5, 16) and want_mel.shape == (1, 2, 13, 64)
        assert rel_err(want_latent, enc(mel)[:, :2]) <= TOL  # ltx-core's raw posterior: the mean is its first half
        assert rel_err(want_mel, dec(z)[:, :, :13]) <= TOL
        assert rel_err(want_wave, ref_voc(mel_voc)) <= TOL
    rate = 24000 if version == "2.0" else 48000
    assert voc.sample_rate == rate == ref_voc.output_sampling_rate and want_wave.shape == (1, 2, 3 * rate // 100)
    want_cfg = vocoder_config(path).config
    for layout in AUDIO_LAYOUTS:
        p = files[(version, *layout)]
        v2, voc2 = load_audio_vae(p), load_vocoder(p)
        for ours, want in ((v2, vae), (voc2, voc)):
            a, b = ours.state_dict(), want.state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), layout
        with torch.no_grad():
            assert torch.equal(v2.encode(mel), want_latent), layout
            assert torch.equal(v2.decode(z), want_mel), layout
        assert voc2.sample_rate == rate
        # the settings no tensor shows (strides, dilations, tanh, rates, hop) equal the header's
        assert _numerics(vocoder_config(p).config) == _numerics(want_cfg), layout
        if layout == ("audio", "bare", "none"):  # the vocoder is slow on the CPU: one header-less run
            with torch.no_grad():
                assert torch.equal(voc2(mel_voc), want_wave), layout


_NUMERIC = ("upsample_rates", "resblock_dilation_sizes", "use_tanh_at_final", "output_sampling_rate",
            "input_sampling_rate", "hop_length", "apply_final_activation")  # fmt: skip


def _numerics(section: dict) -> dict:
    """The vocoder config's values no tensor shape shows, per generator."""
    parts = {"": section} if "bwe" not in section else {"vocoder": section["vocoder"], "bwe": section["bwe"]}
    return {name: {k: part.get(k) for k in _NUMERIC} for name, part in parts.items()}


@pytest.mark.parametrize("version", VERSIONS)
def test_audio_config_sources(files, version):
    bare = files[(version, "audio", "bare", "none")]
    vae, voc = audio_vae_config(bare), vocoder_config(bare)
    assert not vae.had_header and voc.version == version
    dd = vae.config["model"]["params"]["ddconfig"]
    assert dd["ch_mult"] == [1, 2, 2] and dd["z_channels"] == 2 and dd["num_res_blocks"] == 1
    key = "config.audio_vae.model.params.ddconfig."
    assert vae.sources[key + "ch_mult"] == "shape" and vae.sources[key + "causality_axis"] == "released default"
    full = vocoder_config(files[(version, "bundle", "prefixed", "full")])
    if version == "2.0":  # the published 2.0 header leaves the output rate implied
        assert full.config["output_sampling_rate"] == 24000
        assert full.sources["config.vocoder.output_sampling_rate"] == "released default"
        assert voc.config["upsample_rates"] == [6, 5, 2, 2, 2]
    else:
        assert full.sources["config.vocoder.bwe.output_sampling_rate"] == "header"
        assert voc.config["bwe"]["n_fft"] == 128 and voc.sources["config.vocoder.bwe.n_fft"] == "shape"
        assert voc.config["vocoder"]["upsample_rates"] == [5, 2, 2, 2, 2, 2]


def _audio_with_header(tmp_path, version: str, edit):
    sd = {k: v for k, v in F.bundle_state_dict(version).items() if k.startswith(("audio_vae.", "vocoder."))}
    config = F.scaled_config(version)
    edit(config)
    path = tmp_path / "audio-edited.safetensors"
    save_file(sd, str(path), metadata={"config": json.dumps(config)})
    return path


@pytest.mark.parametrize(
    "version, loader, path, value, words",
    [
        ("2.0", "vae", ["audio_vae", "model", "params", "ddconfig", "ch_mult"], [1, 2, 4],
         [r"ddconfig\.ch_mult is \[1, 2, 4\]", r"'audio_vae\.decoder\.up\.2\.block\.0\.conv1\.conv\.weight", r"\[1, 2, 2\]"]),
        ("2.3", "vae", ["audio_vae", "model", "params", "ddconfig", "z_channels"], 8,
         [r"z_channels is 8", r"'audio_vae\.decoder\.conv_in\.conv\.weight' has shape \[64, 2, 3, 3\]"]),
        ("2.0", "vae", ["audio_vae", "model", "params", "embed_dim"], 8, [r"embed_dim is 8", "2 latent channels"]),
        ("2.3", "vae", ["audio_vae", "model", "params", "ddconfig", "mid_block_add_attention"], True,
         [r"mid_block_add_attention is True", "the file has no tensor", "no mid attention"]),
        ("2.0", "vocoder", ["vocoder", "upsample_initial_channel"], 1024,
         [r"config\.vocoder\.upsample_initial_channel is 1024", r"'vocoder\.conv_pre\.weight' has shape \[64, 128, 7\]"]),
        ("2.0", "vocoder", ["vocoder", "upsample_kernel_sizes"], [16, 15, 8, 4, 8],
         [r"upsample_kernel_sizes is \[16, 15, 8, 4, 8\]", r"vocoder\.ups\.4\.weight"]),
        ("2.0", "vocoder", ["vocoder", "upsample_rates"], [6, 5, 2, 2], [r"upsample_rates is \[6, 5, 2, 2\]", "5 upsamplers"]),
        ("2.3", "vocoder", ["vocoder", "bwe", "n_fft"], 512,
         [r"config\.vocoder\.bwe\.n_fft is 512", r"mel_stft\.stft_fn\.forward_basis", "a 128-point STFT"]),
        ("2.3", "vocoder", ["vocoder", "vocoder", "resblock_kernel_sizes"], [3, 7, 13],
         [r"vocoder\.vocoder\.resblock_kernel_sizes is \[3, 7, 13\]"]),
        ("2.3", "vocoder", ["vocoder", "bwe", "activation"], "snake", [r"bwe\.activation is 'snake'", "SnakeBeta"]),
        ("2.3", "vocoder", ["vocoder", "vocoder", "use_bias_at_final"], True, [r"use_bias_at_final is True", "no bias"]),
        ("2.3", "vocoder", ["vocoder", "vocoder", "resblock_dilation_sizes"], [[1, 3], [1, 3], [1, 3]],
         ["resblock_dilation_sizes", "3 dilated convs"]),
    ],
)  # fmt: skip
def test_audio_header_contradicting_a_shape(tmp_path, version, loader, path, value, words):
    import re

    file = _audio_with_header(tmp_path, version, _set(path, value))
    with pytest.raises(CheckpointError) as err:
        (load_audio_vae if loader == "vae" else load_vocoder)(file)
    message = str(err.value)
    assert "disagree" in message
    for w in words:
        assert re.search(w, message), (w, message)


def test_vocoder_header_of_the_other_release(tmp_path):
    """A 2.0 (single generator) header on 2.3 (BWE) weights names the mismatch."""
    file = _audio_with_header(tmp_path, "2.3", lambda c: c.update(vocoder=F.scaled_config("2.0")["vocoder"]))
    with pytest.raises(CheckpointError, match=r"config\.vocoder\.bwe is 'absent'.*bwe_generator.*bandwidth extension"):
        load_vocoder(file)


def test_header_less_vocoder_of_no_release_is_refused(tmp_path):
    sd = {k[len("vocoder."):]: v for k, v in F.bundle_state_dict("2.0").items() if k.startswith("vocoder.")}
    sd["ups.4.weight"] = torch.zeros(4, 2, 6)  # kernel 6: no released HiFi-GAN
    path = tmp_path / "odd-vocoder.safetensors"
    save_file(sd, str(path))
    with pytest.raises(CheckpointError, match=r"no config for the vocoder.*\[16, 15, 8, 4, 6\].*strides are unknown"):
        load_vocoder(path)


# ------------------------------------------------------------------------------ full-size key sets
@pytest.mark.parametrize("version", VERSIONS)
def test_published_full_size_key_sets(version):
    """The real files' key sets and shapes (from the published headers, no weights): the tensor
    counts measured on the published bundles (video VAE 184 / 170 + the 2 unused statistics,
    audio VAE 102, 2.3 vocoder 1227), every part found, no header value contradicting a shape,
    and the header-less resolution giving back the published values."""
    from openltx.model_loaders import layouts as L
    from openltx.model_loaders.audio_config import resolve_audio_vae_config, resolve_vocoder_config
    from openltx.model_loaders.video_vae_config import resolve_video_vae_config

    config = F.published_config(version)
    video = L.video_vae_layout(config["vae"], with_unused_stats=True)
    audio, vocoder = L.audio_vae_layout(config["audio_vae"]), L.vocoder_layout(config["vocoder"])
    assert (len(video), len(audio)) == ((186, 102) if version == "2.0" else (172, 102))
    if version == "2.3":
        assert len(vocoder) == 1227
    parts = find_parts({**video, **audio, **vocoder})
    assert {n: p.version for n, p in parts.items()} == {"video_vae": version, "audio_vae": version, "vocoder": version}

    def module_shapes(name):
        return {m: {**video, **audio, **vocoder}[f] for m, f in parts[name].keys.items()}

    for header in (config, None):
        v = resolve_video_vae_config("real", header["vae"] if header else None, module_shapes("video_vae"), "vae.")
        for key in ("latent_channels", "patch_size", "decoder_base_channels", "latent_log_var", "norm_layer",
                    "timestep_conditioning", "in_channels", "out_channels"):
            assert v.config[key] == config["vae"][key], (key, header is None)  # fmt: skip
        assert [b[0] for b in v.config["encoder_blocks"]] == [b[0] for b in config["vae"]["encoder_blocks"]]
        for ours, published in zip(v.config["decoder_blocks"], config["vae"]["decoder_blocks"]):
            assert ours[0] == published[0]
            assert {k: ours[1][k] for k in published[1]} == published[1]  # residual / inject_noise / layers
        assert (v.config["encoder_spatial_padding_mode"], v.config["decoder_spatial_padding_mode"]) == ("zeros", "reflect")
        a = resolve_audio_vae_config("real", header["audio_vae"] if header else None, module_shapes("audio_vae"))
        dd = a.config["model"]["params"]["ddconfig"]
        assert {k: dd[k] for k in config["audio_vae"]["model"]["params"]["ddconfig"]} == \
            config["audio_vae"]["model"]["params"]["ddconfig"]  # fmt: skip
        assert a.config["preprocessing"]["stft"] == config["audio_vae"]["preprocessing"]["stft"]
        voc = resolve_vocoder_config("real", header["vocoder"] if header else None, module_shapes("vocoder"))
        published = config["vocoder"]
        for ours, theirs in ((voc.config, published),) if version == "2.0" else \
                ((voc.config["vocoder"], published["vocoder"]), (voc.config["bwe"], published["bwe"])):  # fmt: skip
            assert {k: ours[k] for k in theirs} == theirs, header is None
        if version == "2.0":
            assert voc.config["output_sampling_rate"] == 24000
