"""The published files' headers, and every transformer layout users have, through the loader node.

* The tiny checkpoints' ``config`` is the published one (``tests/data/real_headers``) key for
  key, shape keys scaled down, nothing added (no ``audio_in_channels``).
* A tiny bundle with that header, loaded by ``OpenLTXCheckpointLoader`` (host/model_loading ->
  MODEL), equals Lightricks' ltx-core ``LTXModel`` built from the same file (ltx-core defaults
  ``audio_in_channels``): float32, ``‖ours − ref‖ / ‖ref‖ ≤ 1e-5`` per stream; norm weights are
  1 + 0.1·N(0, 1), so position errors show.
* The same weights as transformer-only / bare / ``diffusion_model.`` files with or without the
  text connectors, with the published header, the config only or no metadata at all, and as
  GGUF (F32 / BF16 losslessly, Q8_0 quantized; config in a ``config`` KV, ``openltx.config`` or
  none) give the bundle's outputs: lossless to 1e-6 relative (tensors assigned from different
  containers may differ in float alignment, hence not bit equality), Q8_0 within 1e-2.
  LTX-2.0 files without a header get the released 32 heads (their tensors state only heads x
  head dim), so these variants use the tiny transformer at 32 heads.
* A header value contradicting a shape is an error naming the key, the header value and the
  tensor with its shape, raised before any module is built.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

import folder_paths

from ltx_reference import reference_model, to_modality
from ltx_core.guidance.perturbations import BatchedPerturbationConfig

from openltx.host import model_loading as loading
from openltx.ltx2 import positions as P
from openltx.ltx2.config import (
    RELEASED_CAPTION_CHANNELS,
    RELEASED_CONNECTOR_HEAD_DIM,
    RELEASED_HEADS,
    RELEASED_NUMERICS,
    released_numerics,
)
from openltx.ltx2.inputs import StreamInput
from openltx.ltx2.transformer import LTXAVTransformer
from openltx.model_loaders import checkpoint as C
from openltx.model_loaders import tiny_layouts as T
from openltx.model_loaders.published_configs import published_config
from openltx.model_loaders.quant import gguf_dequant as gd
from openltx.model_loaders.quant import gguf_format
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.nodes.loaders import OpenLTXCheckpointLoader
from real_aux_fixtures import published_config as published

VERSIONS = ("2.0", "2.3")
PREFIX = "model.diffusion_model."
TOL = 1e-5  # ltx-core parity
LOSSLESS = 1e-6
Q8_0_TOL = 1e-2
# The layout matrix runs the tiny transformer at the released 32 heads: 2.0 files without a header
# need them (their tensors do not state the head count; 2.3's gate logits do), and its Linears
# are wide enough (128 / 64) for city96's rules to quantize them (tensors of <= 1024 values stay F32).
HEADS = {"2.0": 32, "2.3": 32}
# Keys whose value the tiny config scales down (everything else is the published value).
SHAPE_PATHS = {
    "transformer": {
        "num_layers", "num_attention_heads", "attention_head_dim", "cross_attention_dim", "caption_channels",
        "audio_num_attention_heads", "audio_attention_head_dim", "audio_cross_attention_dim", "connector_num_layers",
        "connector_num_attention_heads", "connector_attention_head_dim", "audio_connector_num_attention_heads",
        "audio_connector_attention_head_dim",
    },
    "vae": {"encoder_blocks", "decoder_blocks", "decoder_base_channels"},
    "audio_vae": {"model.params.ddconfig.ch_mult", "model.params.ddconfig.num_res_blocks"},
    # vocoder sizes; the 2.3 BWE's hop / FFT sizes scale with its smaller upsampling (x48 instead of x240)
    "vocoder": {"upsample_initial_channel", "resblock_kernel_sizes", "resblock_dilation_sizes", "upsample_rates",
                "upsample_kernel_sizes", "hop_length", "n_fft", "win_size"},
    "scheduler": set(),
}  # fmt: skip


# ------------------------------------------------------------------------------ the key sets
def _leaves(d: dict, path: str = "") -> dict:
    """Dotted path -> value for every non-dict value (lists are leaves)."""
    out = {}
    for k, v in d.items():
        p = f"{path}.{k}" if path else k
        out.update(_leaves(v, p) if isinstance(v, dict) else {p: v})
    return out


def _dicts(d: dict, path: str = "") -> dict:
    """Dotted path -> sorted keys of every nested dict."""
    out = {path: sorted(d)}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_dicts(v, f"{path}.{k}" if path else k))
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_published_configs_are_the_test_data_verbatim(version):
    # the same JSON text: key order, ints vs floats, nulls
    assert json.dumps(published_config(version)) == json.dumps(published(version))
    assert "audio_in_channels" not in published(version)["transformer"]


@pytest.mark.parametrize("heads", sorted(T.TINY_HEADS))
@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_config_is_the_published_key_set_with_shapes_scaled(version, heads):
    real, tiny = published(version), T.tiny_config(version, heads=heads)
    assert _dicts(tiny) == _dicts(real)  # exactly the published keys at every level: nothing added or lost
    real_leaves, tiny_leaves = _leaves(real), _leaves(tiny)
    changed = {p for p in real_leaves if real_leaves[p] != tiny_leaves[p]}
    for path in changed:
        section, rest = path.split(".", 1)
        last = rest.rsplit(".", 1)[-1]
        assert rest in SHAPE_PATHS[section] or last in SHAPE_PATHS[section], f"{path} is not a shape key"
    for key in RELEASED_NUMERICS:
        assert json.dumps(tiny["transformer"][key]) == json.dumps(real["transformer"][key])
    written = T.tiny_metadata(version, heads=heads)
    assert json.loads(written["config"]) == tiny
    assert written.get("model_version") == ("2.3.0" if version == "2.3" else None)


@pytest.mark.parametrize("version", VERSIONS)
def test_released_constants_are_the_published_values(version):
    t = published(version)["transformer"]
    for key, value in released_numerics(version).items():
        assert json.dumps(t[key]) == json.dumps(value), key  # 1000 stays an int, 1000.0 a float
    assert t["num_attention_heads"] == t["audio_num_attention_heads"] == RELEASED_HEADS
    assert t["caption_channels"] == RELEASED_CAPTION_CHANNELS
    assert t["connector_attention_head_dim"] == RELEASED_CONNECTOR_HEAD_DIM
    assert C.released_header_values(version) == released_numerics(version)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_loaders_released_tables_are_the_published_sections(version):
    """Every loader's released-values table is what the published header of each release says."""
    from openltx.model_loaders import audio_config as A
    from openltx.model_loaders import layouts as L
    from openltx.model_loaders import text_config as TC
    from openltx.model_loaders import video_vae_config as V

    config = published(version)
    t, vae, audio, vocoder = config["transformer"], config["vae"], config["audio_vae"], config["vocoder"]
    assert {k: t[k] for k in TC.RELEASED_NUMERICS} == TC.RELEASED_NUMERICS  # the same in both releases
    assert L.official_vae_config(version) == vae
    assert V.RELEASED_DECODERS[version] == tuple(name for name, _ in vae["decoder_blocks"])
    for key, value in V.RELEASED_NUMERICS.items():  # the 2.0 header leaves the padding modes to the defaults
        assert vae.get(key, value) == value
    dd = audio["model"]["params"]["ddconfig"]
    assert {k: dd[k] for k in A.RELEASED_AUDIO_DDCONFIG} == A.RELEASED_AUDIO_DDCONFIG
    assert audio["model"]["params"]["sampling_rate"] == A.RELEASED_AUDIO_RATE
    assert {g: audio["preprocessing"][g] for g in A.RELEASED_PREPROCESSING} == A.RELEASED_PREPROCESSING
    generators = [vocoder] if version == "2.0" else [vocoder["vocoder"], vocoder["bwe"]]
    for g in generators:
        released = A.RELEASED_GENERATORS[tuple(g["upsample_kernel_sizes"])]
        assert released["release"] == version and released["upsample_rates"] == g["upsample_rates"]
        assert g.get("use_tanh_at_final", True) == released["use_tanh_at_final"]


# ------------------------------------------------------------------------------ files
VARIANTS = {
    # name: (folder, writer(path, version, heads) -> None, lossless)
    "bundle": ("checkpoints", lambda p, v, h: T.write_tiny_checkpoint(p, v, "all", heads=h), True),
    "transformer-only, no metadata": (
        "diffusion_models", lambda p, v, h: T.write_tiny_checkpoint(p, v, "transformer", metadata="none", heads=h), True),
    "bare, published header": (
        "diffusion_models", lambda p, v, h: T.write_tiny_checkpoint(p, v, "transformer", bare=True, heads=h), True),
    "diffusion_model. + connectors, config only": (
        "diffusion_models",
        lambda p, v, h: T.write_tiny_checkpoint(p, v, "transformer+connectors", prefix="diffusion_model.",
                                                metadata="config", heads=h), True),
    "bare + connectors, no metadata": (
        "diffusion_models",
        lambda p, v, h: T.write_tiny_checkpoint(p, v, "transformer+connectors", bare=True, metadata="none", heads=h),
        True),
    "gguf F32, config KV": ("diffusion_models", lambda p, v, h: T.write_tiny_gguf(p, v, qtype="F32", heads=h), True),
    "gguf F32, openltx.config KV": (
        "diffusion_models", lambda p, v, h: T.write_tiny_gguf(p, v, qtype="F32", config_key="openltx.config", heads=h),
        True),
    "gguf F32 + connectors, no config": (
        "diffusion_models",
        lambda p, v, h: T.write_tiny_gguf(p, v, qtype="F32", config_key=None, connectors=True, heads=h), True),
    "gguf Q8_0, config KV": ("diffusion_models", lambda p, v, h: T.write_tiny_gguf(p, v, qtype="Q8_0", heads=h), False),
    "gguf Q8_0, no config": (
        "diffusion_models", lambda p, v, h: T.write_tiny_gguf(p, v, qtype="Q8_0", config_key=None, heads=h), False),
}  # fmt: skip
BF16_VARIANTS = {
    "bundle bf16": ("checkpoints", lambda p, v, h: T.write_tiny_checkpoint(p, v, "all", dtype=torch.bfloat16, heads=h)),
    "gguf BF16, no config": (
        "diffusion_models",
        lambda p, v, h: T.write_tiny_gguf(p, v, qtype="BF16", config_key=None, heads=h, source_dtype=torch.bfloat16)),
}  # fmt: skip


def _file_name(version: str, name: str) -> str:
    ext = ".gguf" if name.startswith("gguf") else ".safetensors"
    slug = name.replace(",", "").replace(".", "").replace("+", "and").replace(" ", "-")
    return f"tiny-{version}-{slug}{ext}"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_headers")
    dirs = {name: root / name for name in ("checkpoints", "diffusion_models")}
    for d in dirs.values():
        d.mkdir()
    for version in VERSIONS:
        for name, (folder, write, *_) in {**VARIANTS, **BF16_VARIANTS}.items():
            write(dirs[folder] / _file_name(version, name), version, HEADS[version])
        # the default tiny bundle (2 heads) as well, for the ltx-core parity
        T.write_tiny_checkpoint(dirs["checkpoints"] / f"tiny-{version}-default.safetensors", version, "all")
    return dirs


@pytest.fixture
def folders(model_dirs, monkeypatch):
    for name, path in model_dirs.items():
        exts = set(folder_paths.folder_names_and_paths[name][1]) | {".gguf"}
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(path)], exts))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return model_dirs


def load_node(name: str):
    """The loader node's MODEL (float32 weights) for a file of the temp model folders."""
    return OpenLTXCheckpointLoader.execute(ckpt_name=name, weight_dtype="fp32")[0]


def stream_inputs(cfg, seed: int = 1, batch: int = 2, frames: int = 3, height: int = 2, width: int = 3, text: int = 5):
    g = torch.Generator().manual_seed(seed)
    sigma = torch.tensor([0.7, 0.3])[:batch]
    tv, ta = frames * height * width, P.audio_latent_steps(8 * (frames - 1) + 1, 24.0)
    cv, ca = (cfg.caption_channels,) * 2 if cfg.has_caption_projection else (cfg.video_dim, cfg.audio_dim)

    def stream(tokens, channels, positions, ctx):
        return StreamInput(
            latent=torch.randn(batch, tokens, channels, generator=g),
            timesteps=sigma[:, None].expand(batch, tokens).clone(),
            sigma=sigma,
            positions=positions,
            context=torch.randn(batch, text, ctx, generator=g),
        )

    video = stream(tv, cfg.in_channels, P.video_positions(batch, frames, height, width, 24.0), cv)
    audio = stream(ta, cfg.audio_in_channels, P.audio_positions(batch, ta), ca)
    return video, audio


def velocities(patcher, inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """The MODEL's transformer (``LTX2DiffusionModel`` is an ``LTXAVTransformer``) on token inputs."""
    dm = patcher.model.diffusion_model
    with torch.no_grad():
        return LTXAVTransformer.forward(dm, *inputs)


def rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    assert ours.shape == ref.shape and torch.isfinite(ours).all()
    return ((ours - ref).norm() / ref.norm()).item()


# ------------------------------------------------------------------------------ ltx-core parity
@pytest.mark.parametrize("heads", ["default", "released"])
@pytest.mark.parametrize("version", VERSIONS)
def test_published_header_bundle_through_the_node_equals_ltx_core(folders, version, heads):
    name = f"tiny-{version}-default.safetensors" if heads == "default" else _file_name(version, "bundle")
    path = folders["checkpoints"] / name
    patcher = load_node(name)
    cfg = patcher.model.model_config.transformer_config
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
        sd = {k[len(PREFIX):]: f.get_tensor(k) for k in f.keys() if k.startswith(PREFIX) and "embeddings_connector" not in k}
    assert "audio_in_channels" not in config["transformer"]
    assert cfg.provenance["audio_in_channels"] == "shape" and cfg.provenance["rope_type"] == "header"
    ref = reference_model(config["transformer"], sd)  # ltx-core: audio_in_channels = its default, 128
    inputs = stream_inputs(cfg)
    ours = velocities(patcher, inputs)
    with torch.no_grad():
        theirs = ref(*(to_modality(x) for x in inputs), BatchedPerturbationConfig.empty(2))
    for o, r, stream in zip(ours, theirs, ("video", "audio")):
        max_rel = ((o - r).abs().max() / r.abs().max()).item()
        assert rel(o, r) <= TOL and max_rel <= TOL, f"{version} {stream}: {rel(o, r):.2e} / max {max_rel:.2e}"


# ------------------------------------------------------------------------------ every layout
@pytest.fixture(scope="module")
def bundle_outputs(model_dirs):
    """version -> (config, inputs, outputs) of the bundle (the reference for every other layout)."""
    out = {}
    for version in VERSIONS:
        patcher = loading.load_ltx2_model(str(model_dirs["checkpoints"] / _file_name(version, "bundle")), "fp32")
        cfg = patcher.model.model_config.transformer_config
        inputs = stream_inputs(cfg)
        out[version] = (cfg, inputs, velocities(patcher, inputs))
    return out


@pytest.mark.parametrize("name", [n for n in VARIANTS if n != "bundle"])
@pytest.mark.parametrize("version", VERSIONS)
def test_every_layout_gives_the_bundles_outputs(folders, bundle_outputs, version, name, caplog):
    _, _, lossless = VARIANTS[name]
    cfg_bundle, inputs, (ref_v, ref_a) = bundle_outputs[version]
    with caplog.at_level(logging.INFO):
        patcher = load_node(_file_name(version, name))
    cfg = patcher.model.model_config.transformer_config
    # every transformer value is the bundle's (2.3 without a header: caption_channels is not a transformer shape)
    fields = [f for f in cfg.__dataclass_fields__ if f not in ("extra", "provenance", "caption_channels")]
    assert all(getattr(cfg, f) == getattr(cfg_bundle, f) for f in fields)
    has_config = "no config" not in name and "no metadata" not in name
    assert cfg.provenance["rope_type"] == ("header" if has_config else "released default")
    released_heads = version == "2.0" and not has_config
    assert cfg.provenance["num_attention_heads"] == ("released default" if released_heads else
                                                     "shape" if version == "2.3" else "header")
    notes = [r.getMessage() for r in caplog.records if "has no model config" in r.getMessage()]
    assert len(notes) == (0 if has_config else 1), notes  # one log line when the released values stand in
    video, audio = velocities(patcher, inputs)
    bound = LOSSLESS if lossless else Q8_0_TOL
    errors = rel(video, ref_v), rel(audio, ref_a)
    print(f"{version} {name}: relative error vs bundle video {errors[0]:.2e} audio {errors[1]:.2e}")
    assert max(errors) <= bound, errors
    if not lossless:  # the quantized file really is quantized
        dm = patcher.model.diffusion_model
        assert dm.transformer_blocks[1].attn1.to_q.weight.dtype == torch.uint8


@pytest.mark.parametrize("version", VERSIONS)
def test_bf16_gguf_without_config_equals_the_bf16_bundle(folders, version):
    inputs = None
    outs = []
    for name in BF16_VARIANTS:
        patcher = load_node(_file_name(version, name))
        inputs = inputs or stream_inputs(patcher.model.model_config.transformer_config)
        outs.append(velocities(patcher, inputs))
    (bv, ba), (gv, ga) = outs
    assert rel(gv, bv) <= LOSSLESS and rel(ga, ba) <= LOSSLESS


def test_gguf_kinds_and_tensor_types(model_dirs):
    """City96's rules: tables / 1-D / small tensors F32, top-level layers BF16, block Linears quantized."""
    info = C.read_checkpoint(model_dirs["diffusion_models"] / _file_name("2.0", "gguf Q8_0, config KV"))
    assert (info.format, info.kind, info.version, info.transformer_prefix) == ("gguf", "transformer-only", "2.0", "")
    assert info.config_source == "GGUF KV 'config'" and info.transformer_header is not None
    d = info.dtypes
    assert d["transformer_blocks.0.scale_shift_table"] == d["patchify_proj.bias"] == "F32"
    assert d["patchify_proj.weight"] == d["adaln_single.linear.weight"] == "BF16"
    assert d["transformer_blocks.1.attn1.to_q.weight"] == "Q8_0"
    none = C.read_checkpoint(model_dirs["diffusion_models"] / _file_name("2.3", "gguf F32 + connectors, no config"))
    assert none.kind == "transformer + text connectors" and none.config == {} and none.config_source is None
    assert none.version == "2.3" and any("gate" in e for e in none.version_evidence)


def test_gguf_orig_shape_overrides_the_stored_shape(tmp_path, bundle_outputs):
    """``comfy.gguf.orig_shape.<name>``: a tensor stored reshaped gets its real shape back."""
    tensors = T.write_tiny_gguf(tmp_path / "plain.gguf", "2.3", qtype="F32", config_key=None)
    arrays = {k: gguf_format.encode_tensor(t.numpy(), gd.F32) for k, t in tensors.items()}
    table = "transformer_blocks.1.scale_shift_table"
    arrays[table] = (tensors[table].numpy().reshape(-1), gd.F32)  # stored flat
    path = tmp_path / "reshaped.gguf"
    gguf_format.write_gguf(path, arrays, None, arch="ltxv", config_key=None, orig_shapes={table: tensors[table].shape})
    info = C.read_checkpoint(path)
    assert info.shapes[table] == tuple(tensors[table].shape)
    a = loading.load_ltx2_model(str(tmp_path / "plain.gguf"), "fp32")
    b = loading.load_ltx2_model(str(path), "fp32")
    inputs = stream_inputs(a.model.model_config.transformer_config)
    for x, y in zip(velocities(a, inputs), velocities(b, inputs)):
        assert rel(y, x) <= LOSSLESS


def test_official_fp8_bundle_with_quantization_metadata(model_dirs, bundle_outputs, repo_root, tmp_path):
    """tools/convert.py --to fp8 writes the published fp8 layout: e4m3 weights + scales + _quantization_metadata."""
    src = model_dirs["checkpoints"] / _file_name("2.0", "bundle")
    out = tmp_path / "tiny-2.0-fp8.safetensors"
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "convert.py"), str(src), "--to", "fp8",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    info = C.read_checkpoint(out)
    layers = json.loads(info.metadata["_quantization_metadata"])["layers"]
    assert layers and all(k.startswith(PREFIX + "transformer_blocks.1.") for k in layers)
    assert all(info.dtypes[k + ".weight"] == "F8_E4M3" and info.shapes[k + ".weight_scale"] == () for k in layers)
    assert info.kind == "bundle" and info.config == T.tiny_config("2.0", heads=32)
    patcher = loading.load_ltx2_model(str(out), "fp32")
    assert patcher.model.diffusion_model.transformer_blocks[1].attn1.to_q.weight.dtype == torch.float8_e4m3fn
    _, inputs, (ref_v, ref_a) = bundle_outputs["2.0"]
    errors = [rel(o, r) for o, r in zip(velocities(patcher, inputs), (ref_v, ref_a))]
    print(f"fp8 bundle: relative error vs bundle {errors}")
    assert max(errors) < 0.08


# ------------------------------------------------------------------------------ contradictions
CONTRADICTIONS = [
    # version, key, header value, fragments of the message (tensor names and shapes)
    ("2.0", "num_layers", 1_000_000, ["'num_layers'] is 1000000", "transformer_blocks.N.*' with N up to 1"]),
    ("2.0", "num_attention_heads", 4, ["['num_attention_heads'] x ['attention_head_dim'] is 4 x 8 = 32",
                                       "'model.diffusion_model.transformer_blocks.0.attn1.q_norm.weight' has shape [16]"]),
    ("2.3", "num_attention_heads", 4, ["['num_attention_heads'] is 4",
                                       "transformer_blocks.0.attn1.to_gate_logits.weight' has shape [2, 16]"]),
    ("2.0", "in_channels", 64, ["['in_channels'] is 64", "'model.diffusion_model.patchify_proj.weight' has shape [16, 128]"]),
    ("2.0", "audio_out_channels", 64, ["['audio_out_channels'] is 64", "audio_proj_out.weight' has shape [128, 8]"]),
    ("2.3", "cross_attention_dim", 32, ["['cross_attention_dim'] is 32", "attn2.to_k.weight' has shape [16, 16]"]),
    ("2.0", "caption_channels", 3840, ["['caption_channels'] is 3840", "caption_projection.linear_1.weight' has shape [16, 12]"]),
    ("2.0", "cross_attention_adaln", True, ["['cross_attention_adaln'] is True", "scale_shift_table' has shape [6, 16]"]),
    ("2.3", "apply_gated_attention", False, ["['apply_gated_attention'] is False", "to_gate_logits.weight' has shape [2, 16]"]),
    ("2.3", "caption_proj_before_connector", False, ["is False", "has no tensor 'model.diffusion_model.caption_projection"]),
    # a key the published header lacks, which older repacks state
    ("2.0", "audio_in_channels", 256, ["['audio_in_channels'] is 256", "audio_patchify_proj.weight' has shape [8, 128]"]),
]  # fmt: skip


@pytest.mark.parametrize("version,key,value,fragments", CONTRADICTIONS, ids=[f"{c[0]}-{c[1]}" for c in CONTRADICTIONS])
def test_header_contradicting_a_shape_is_an_error_before_any_module_is_built(tmp_path, monkeypatch, version, key, value,
                                                                             fragments):
    config = T.tiny_config(version)
    config["transformer"][key] = value
    path = tmp_path / f"edited-{key}.safetensors"
    T.write_tiny_checkpoint(path, version, "transformer", metadata=T.tiny_metadata(version, config))

    def no_build(*args, **kwargs):
        raise AssertionError("a module was built from a contradicting header")

    monkeypatch.setattr(C, "LTXAVTransformer", no_build)
    monkeypatch.setattr(loading, "_new_model", no_build)
    for call in (C.build_transformer, loading.load_ltx2_model):
        with pytest.raises(CheckpointError) as err:
            call(str(path))
        message = str(err.value)
        assert message.startswith(str(path)) and "contradicts the tensors" in message, message
        for fragment in fragments:
            assert fragment in message, (fragment, message)


def test_every_contradiction_is_listed(tmp_path):
    config = T.tiny_config("2.3")
    config["transformer"].update(num_layers=48, in_channels=64, num_attention_heads=32)
    path = tmp_path / "edited.safetensors"
    T.write_tiny_checkpoint(path, "2.3", "all", metadata=T.tiny_metadata("2.3", config))
    info = C.read_checkpoint(path)  # the header is readable; the text path and VAEs are unaffected
    with pytest.raises(CheckpointError) as err:
        C.transformer_config(info)
    message = str(err.value)
    assert "'num_layers'] is 48" in message and "'in_channels'] is 64" in message
    assert "'num_attention_heads'] is 32" in message


def test_no_error_points_at_a_file_the_user_does_not_have(tmp_path):
    """The old messages sent users to LTX2_SPEC.md or a companion .json; no message may."""
    tensors = T.tiny_state_dict("2.0", ["transformer"])
    messages = []
    for meta in ({}, {"config": json.dumps({"transformer": {"num_layers": 3}})}):
        path = tmp_path / f"f{len(messages)}.safetensors"
        from safetensors.torch import save_file

        save_file(tensors, str(path), metadata=meta or None)
        with pytest.raises(CheckpointError) as err:
            loading.load_ltx2_model(str(path))
        messages.append(str(err.value))
    for message in messages:
        assert ".md" not in message and ".json" not in message, message


def test_gguf_with_prefixed_tensor_names(tmp_path):
    """Some converters keep ``model.diffusion_model.``; the keys route as in a safetensors file."""
    tensors = T.write_tiny_gguf(tmp_path / "bare.gguf", "2.3", qtype="F32", config_key=None, connectors=True)
    arrays = {PREFIX + k: gguf_format.encode_tensor(t.numpy(), gd.F32) for k, t in tensors.items()}
    path = tmp_path / "prefixed.gguf"
    gguf_format.write_gguf(path, arrays, None, arch="ltxv", config_key=None)
    info = C.read_checkpoint(path)
    assert info.transformer_prefix == PREFIX and info.kind == "transformer + text connectors"
    assert all(k.startswith(PREFIX) for k in info.components["text_connectors"])
    a = loading.load_ltx2_model(str(tmp_path / "bare.gguf"), "fp32")
    b = loading.load_ltx2_model(str(path), "fp32")
    inputs = stream_inputs(a.model.model_config.transformer_config)
    for x, y in zip(velocities(a, inputs), velocities(b, inputs)):
        assert rel(y, x) <= LOSSLESS
    built = C.build_transformer(info)  # the plain-module path reads (dequantizes) GGUF tensors too
    for x, y in zip(velocities(a, inputs), LTXAVTransformer.forward(built, *inputs)):
        assert rel(y.detach(), x) <= LOSSLESS
