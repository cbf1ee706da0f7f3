"""The LTX-2.5 DiffVAE: our decoder equals diffusers 0.42.1's on the same random weights (fp32).

A tiny DiffVAE is written in the released key layout (``tiny_layouts_25``) and loaded with
``load_diffusion_vae``; diffusers' ``LTX2VideoDiffusionDecoderModel`` is built from the same
header values and filled with the same tensors, the released names converted to diffusers' here
(``attn.qkv`` split into ``to_q/to_k/to_v``, ``attn.proj`` -> ``to_out.0``, ``q_norm`` -> ``norm_q``,
``t_embedder.mlp.{0,2}`` -> ``timestep_embedder.linear_{1,2}``; ``type_emb`` has no counterpart).
Both compute in float32; the bound is 1e-5 relative (max abs difference over max abs value).
The latent grid makes the attention windows shift at the borders (stage 2: 4x6x8 tokens under
3x3x3 windows, stage 5: 9x24x32 under 5x5x5), and norm weights are ~1, so a misplaced window,
a wrong RoPE axis or a swapped patch order cannot pass.

The encoder is the LTX-2.3 encoder: checked against ltx-core 1.0.0's on the same tensors.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from ltx25_oracle import rel_err, run_oracle
from openltx.ltx2 import diffusion_vae_blocks as blocks
from openltx.ltx2.tiling import TilingConfig, decode_tiled
from openltx.model_loaders.diffusion_vae_loading import diffusion_vae_config, is_diffusion_vae, load_diffusion_vae
from openltx.model_loaders.safetensors_file import CheckpointError
from openltx.model_loaders.tiny_layouts_25 import FILE_NAMES, tiny_diffusion_vae_config, write_tiny_conv_vae, write_tiny_diffusion_vae
from openltx.model_loaders.video_vae_loading import load_video_vae

BOUND = 1e-5


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vae25") / FILE_NAMES["diffusion_vae"]
    return path, write_tiny_diffusion_vae(path, seed=3)


def to_diffusers(tensors: dict) -> dict:
    """Released DiffVAE keys -> ``LTX2VideoDiffusionDecoderModel`` keys (the test's conversion)."""
    out = {}
    for key, t in tensors.items():
        if key == "per_channel_statistics.mean-of-means":
            out["latents_mean"] = t
        elif key == "per_channel_statistics.std-of-means":
            out["latents_std"] = t
        elif not key.startswith("decoder.") or key == "decoder.type_emb":
            continue
        elif ".attn.qkv." in key:
            leaf = key.rsplit(".", 1)[1]
            for name, part in zip(("to_q", "to_k", "to_v"), t.chunk(3)):
                out[key.replace("attn.qkv." + leaf, f"attn.{name}.{leaf}")] = part
        else:
            key = key.replace(".attn.proj.", ".attn.to_out.0.").replace(".attn.q_norm.", ".attn.norm_q.")
            key = key.replace(".attn.k_norm.", ".attn.norm_k.")
            key = key.replace("t_embedder.mlp.0.", "t_embedder.timestep_embedder.linear_1.")
            key = key.replace("t_embedder.mlp.2.", "t_embedder.timestep_embedder.linear_2.")
            out[key] = t
    return out


def diffusers_kwargs(dec: dict, kind: str = "x0") -> dict:
    return dict(
        out_channels=dec["out_channels"], latent_channels=dec["in_channels"], patch_size=dec["patch_size"],
        decoder_head_dim=dec["head_dim"], decoder_stage_channels=tuple(dec["stage_channels"]),
        decoder_stage_depths=tuple(dec["stage_depths"]),
        decoder_stage_kernels=tuple(tuple(k) for k in dec["stage_kernels"][:4]),
        decoder_upsample_strides=tuple(tuple(u[0]) for u in dec["upsamples"]),
        decoder_upsample_channel_reductions=tuple(u[1] for u in dec["upsamples"]),
        decoder_stage5_kernel=tuple(dec["stage5_kernel"]), decoder_t_emb_dim=dec["t_emb_dim"],
        decoder_timestep_scale_multiplier=dec["timestep_scale_multiplier"], decoder_model_output_type=kind,
        decoder_num_inference_steps=dec["default_num_inference_steps"],
    )  # fmt: skip


# --- neighborhood attention -------------------------------------------------------------------

def dense_reference(q, k, v, kernel):
    """NATTEN semantics written out densely: a (N, N) mask of each query's inward-shifted window."""
    b, t, h, w, heads, d = q.shape
    coords = torch.stack(torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"), -1)
    coords = coords.reshape(-1, 3)
    allowed = torch.ones(coords.shape[0], coords.shape[0], dtype=torch.bool)
    for axis, (n, kk) in enumerate(zip((t, h, w), kernel)):
        kk = min(kk, n)
        start = (coords[:, axis] - kk // 2).clamp(0, n - kk)
        pos = coords[:, axis]
        allowed &= (pos[None] >= start[:, None]) & (pos[None] < start[:, None] + kk)
    flat = lambda x: x.reshape(b, -1, heads, d).transpose(1, 2)  # noqa: E731
    out = torch.nn.functional.scaled_dot_product_attention(flat(q), flat(k), flat(v), attn_mask=allowed)
    return out.transpose(1, 2).reshape(q.shape)


@pytest.mark.parametrize("grid,kernel", [((5, 7, 9), (3, 5, 5)), ((9, 12, 10), (5, 5, 5)), ((4, 6, 3), (3, 3, 5)),
                                         ((1, 2, 2), (11, 11, 11)), ((7, 16, 16), (3, 7, 7))])  # fmt: skip
def test_neighborhood_attention_equals_the_dense_definition(grid, kernel):
    g = torch.Generator().manual_seed(sum(grid))
    q, k, v = (torch.randn(2, *grid, 2, 8, generator=g) for _ in range(3))
    ours = blocks.neighborhood_attention(q, k, v, kernel)
    assert rel_err(ours, dense_reference(q, k, v, kernel)) < 1e-6


def test_neighborhood_attention_chunks_are_exact(monkeypatch):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 4, 8, 7, 2, 8, generator=g) for _ in range(3))
    whole = blocks.neighborhood_attention(q, k, v, (3, 5, 5))
    monkeypatch.setattr(blocks, "ATTENTION_SCORE_BUDGET", 1)  # one tile per chunk
    torch.testing.assert_close(blocks.neighborhood_attention(q, k, v, (3, 5, 5)), whole, rtol=0, atol=1e-6)


def test_rope_split_and_patch_order():
    assert blocks.rope_split(64) == (16, 24, 24) and blocks.rope_split(8) == (0, 4, 4)
    x = torch.randn(2, 3, 5, 8, 12)
    torch.testing.assert_close(blocks.unpatchify(blocks.patchify(x, 4), 4), x)
    # channel order (c, w offset, h offset): channel = c * 16 + w_offset * 4 + h_offset
    y = torch.zeros(1, 1, 1, 4, 4)
    y[0, 0, 0, 1, 0] = 1.0  # h offset 1, w offset 0
    assert blocks.patchify(y, 4)[0, :, 0, 0, 0].nonzero().item() == 1
    y = torch.zeros(1, 1, 1, 4, 4)
    y[0, 0, 0, 0, 1] = 1.0  # h offset 0, w offset 1
    assert blocks.patchify(y, 4)[0, :, 0, 0, 0].nonzero().item() == 4


# --- decoder parity ---------------------------------------------------------------------------

@pytest.mark.slow
def test_decoder_equals_diffusers(vae_file, tmp_path):
    path, tensors = vae_file
    vae = load_diffusion_vae(path, dtype=torch.float32)
    dec = tiny_diffusion_vae_config()["decoder"]
    g = torch.Generator().manual_seed(7)
    z = torch.randn(1, 128, 2, 3, 4, generator=g)
    noise = torch.randn(1, 3, 9, 96, 128, generator=g)
    out = run_oracle("diffusers", """
        from diffusers.models.autoencoders.ltx2_diffusion_decoder import LTX2VideoDiffusionDecoderModel
        models = {}
        for kind in ('x0', 'v'):
            models[kind] = LTX2VideoDiffusionDecoderModel(**inp['kwargs'][kind]).eval()
            models[kind].load_state_dict(inp['sd'], strict=True)
        m = models['x0']
        z = inp['z'] * m.latents_std.view(1, -1, 1, 1, 1) + m.latents_mean.view(1, -1, 1, 1, 1)
        out['decode'] = m.decode(z, generator=torch.Generator().manual_seed(11)).sample  # context + 1 step
        ctx = m.decoder.forward_stage_4(m.decoder.forward_stages_1_to_3(z))
        out['context'] = ctx
        out['x0_step3'] = m.decoder.denoise(ctx, inp['noise'], 3)
        out['v_step2'] = models['v'].decoder.denoise(ctx, inp['noise'], 2)
    """, {"sd": to_diffusers(tensors), "z": z, "noise": noise,
          "kwargs": {k: diffusers_kwargs(dec, k) for k in ("x0", "v")}}, tmp_path)  # fmt: skip
    with torch.no_grad():
        ctx = vae.decoder.context(vae.per_channel_statistics.un_normalize(z))
        errors = {"context": rel_err(ctx, out["context"])}
        errors["decode"] = rel_err(vae.decode(z, generator=torch.Generator().manual_seed(11)), out["decode"])
        multi = {"x0_step3": rel_err(vae.decoder.denoise(ctx, noise, 3), out["x0_step3"])}
        vae.decoder.cfg = type(vae.decoder.cfg)(**{**vae.decoder.cfg.__dict__, "model_output_type": "v"})
        errors["v_step2"] = rel_err(vae.decoder.denoise(ctx, noise, 2), out["v_step2"])
    print("DiffVAE vs diffusers 0.42.1, max rel err:", json.dumps({**errors, **multi}))
    assert ctx.shape == (1, 9, 24, 32, 8)
    assert out["decode"].shape == (1, 3, 9, 96, 128)
    assert max(errors.values()) <= BOUND, errors
    # Several x0 steps turn each prediction into a velocity (x_t - x0) / t: the last step divides
    # by t = 1/3, so fp32 rounding differences (~2e-6 per forward, different reduction orders in
    # attention) come out ~10x larger.  Bound 5e-5 for that loop.
    assert multi["x0_step3"] <= 5 * BOUND, multi
    # the steps and the noise matter: a test that cannot tell them apart would pass anything
    assert rel_err(out["decode"], out["x0_step3"]) > 1e-2 and rel_err(out["v_step2"], out["x0_step3"]) > 1e-2


# --- loading ----------------------------------------------------------------------------------

def test_loader_reads_the_released_layout(vae_file):
    path, tensors = vae_file
    assert is_diffusion_vae(path)
    enc, dec, prefix, shapes, _ = diffusion_vae_config(path)
    assert prefix == "" and enc["latent_channels"] == 128 and enc["latent_log_var"] == "constant"
    assert dec.stage_channels == (64, 32, 16, 16, 8) and dec.stage_depths == (1, 1, 1, 1, 2)
    assert (dec.time_factor, dec.space_factor, dec.trailing_pad, dec.head_dim) == (8, 32, 2, 8)
    assert dec.stage5_kernel == (5, 5, 5) and dec.num_chunks == 7 and dec.t_emb_dim == 16
    vae = load_diffusion_vae(path)
    sd = vae.state_dict()
    assert set(sd) == set(tensors)
    assert all(torch.equal(sd[k], tensors[k]) for k in tensors)


def _rewrite(src, dst, drop=(), change=None, config=None):
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys() if k not in drop}
    if change:
        tensors.update(change)
    if config is not None:
        meta = dict(meta, config=json.dumps(config))
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_loader_refuses_bad_files(vae_file, tmp_path):
    path, tensors = vae_file
    with pytest.raises(CheckpointError, match="missing key"):
        load_diffusion_vae(_rewrite(path, tmp_path / "a.safetensors", drop=["decoder.diff_blocks.1.norm2.weight"]))
    with pytest.raises(CheckpointError, match="unexpected key"):
        load_diffusion_vae(_rewrite(path, tmp_path / "b.safetensors", change={"decoder.gate_msa": torch.ones(3)}))
    wrong = {"decoder.diff_blocks.0.context_proj.bias": torch.zeros(9)}
    with pytest.raises(CheckpointError, match="shape"):
        load_diffusion_vae(_rewrite(path, tmp_path / "c.safetensors", change=wrong))
    config = {"vae": tiny_diffusion_vae_config()}
    config["vae"]["decoder"]["upsamples"][1] = [[2, 1, 1], 1]  # contradicts upsamples.1.proj.weight
    with pytest.raises(CheckpointError, match="upsampler 1"):
        load_diffusion_vae(_rewrite(path, tmp_path / "d.safetensors", config=config))
    config = {"vae": tiny_diffusion_vae_config()}
    config["vae"]["decoder"]["stage_depths"] = [1, 1, 1, 1, 3]
    with pytest.raises(CheckpointError, match="stage_depths"):
        load_diffusion_vae(_rewrite(path, tmp_path / "d2.safetensors", config=config))
    config = {"vae": {k: v for k, v in tiny_diffusion_vae_config().items() if k != "encoder"}}
    with pytest.raises(CheckpointError, match="never guessed"):
        load_diffusion_vae(_rewrite(path, tmp_path / "e.safetensors", config=config))
    conv = tmp_path / "conv.safetensors"
    save_file({"decoder.up_blocks.0.res_blocks.0.conv1.conv.weight": torch.zeros(1)}, str(conv))
    with pytest.raises(CheckpointError, match="conv video VAE"):
        load_diffusion_vae(conv)
    # without the decoder section, the released kernels are used (and here the shapes still fit)
    config = tiny_diffusion_vae_config()
    del config["decoder"]
    enc, dec, *_ = diffusion_vae_config(_rewrite(path, tmp_path / "f.safetensors", config={"vae": config}))
    assert dec.stage5_kernel == (11, 11, 11) and dec.stage_kernels[0] == (3, 7, 7)


# --- encoder and the VAE API ------------------------------------------------------------------

def test_encoder_equals_ltx_core(vae_file):
    import ltx_core.loader  # noqa: F401  (breaks a circular import in ltx-core)
    from ltx_core.model.video_vae.model_configurator import VideoEncoderConfigurator

    path, tensors = vae_file
    vae = load_diffusion_vae(path, dtype=torch.float32)
    enc, *_ = diffusion_vae_config(path)
    ref = VideoEncoderConfigurator.from_config({"vae": enc})
    sd = {k[len("encoder."):]: v for k, v in tensors.items() if k.startswith("encoder.")}
    sd.update({k: v for k, v in tensors.items() if k.startswith("per_channel_statistics.")})
    ref.load_state_dict(sd, strict=True)
    px = torch.rand(1, 3, 17, 64, 96, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        ours, theirs = vae.encode(px), ref.eval()(px)
    assert ours.shape == (1, 128, 3, 2, 3)
    assert rel_err(ours, theirs) <= BOUND


def test_decode_api_tiling_and_single_frames(vae_file):
    path, _ = vae_file
    vae = load_diffusion_vae(path, dtype=torch.float32)
    z = torch.randn(1, 128, 2, 2, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        whole = vae.decode(z, generator=torch.Generator().manual_seed(1))
        again = vae.decode(z, generator=torch.Generator().manual_seed(1))
        other = vae.decode(z, generator=torch.Generator().manual_seed(2))
        one = vae.decode(z[:, :, :1], generator=torch.Generator().manual_seed(1))  # grids below the kernels
        tiled = decode_tiled(vae, z, TilingConfig(spatial_tile=64, spatial_overlap=32, temporal_tile=None),
                             generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert whole.shape == tiled.shape == (1, 3, 9, 64, 96) and one.shape == (1, 3, 1, 64, 96)
    assert torch.equal(whole, again) and not torch.equal(whole, other)
    assert torch.isfinite(tiled).all() and torch.isfinite(one).all()
    with pytest.raises(ValueError, match="video latent"):
        vae.decode(torch.randn(1, 8, 2, 2, 2))
    with pytest.raises(ValueError, match="noise must be"):
        vae.decode(z, noise=torch.randn(1, 3, 9, 96, 64))
    with pytest.raises(ValueError, match="8k\\+1 frames"):
        vae.encode(torch.zeros(1, 3, 10, 64, 64))
    assert math.isclose(float(whole.std()), float(other.std()), rel_tol=0.5)


def test_temporal_tiles_and_the_conv_variant(vae_file, tmp_path):
    """Temporal tiling streams the DiffVAE like the conv VAE; the 2.5 conv VAE loads with the 2.3 loader and
    takes the same latents."""
    path, _ = vae_file
    vae = load_diffusion_vae(path, dtype=torch.float32)
    z = torch.randn(1, 128, 5, 2, 2, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        tiled = decode_tiled(vae, z, TilingConfig(spatial_tile=None, temporal_tile=24, temporal_overlap=16),
                             generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert tiled.shape == (1, 3, 33, 64, 64) and torch.isfinite(tiled).all()
    conv_path = tmp_path / FILE_NAMES["conv_vae"]
    write_tiny_conv_vae(conv_path)
    assert not is_diffusion_vae(conv_path)
    conv = load_video_vae(conv_path, dtype=torch.float32)
    with torch.no_grad():
        assert conv.decode(z).shape == tiled.shape
    with pytest.raises(CheckpointError, match="conv video VAE"):
        load_diffusion_vae(conv_path)
