"""Tiny VAE / audio VAE / vocoder files with the key sets of the published headers.

The ``vae``, ``audio_vae`` and ``vocoder`` sections of ``data/real_headers/*.json`` (verbatim
copies of the published 19B and 2.3 22B headers) are scaled down by changing *shape values
only* -- widths, layer counts, the BWE's STFT size -- never adding or removing a key; the
numerics (padding modes, residual flags, strides, sampling rates) stay as published.  The
files are then written in the layouts users have:

* ``bundle``: ``vae.*`` / ``audio_vae.*`` / ``vocoder.*`` with the whole published config (the
  transformer and scheduler sections verbatim) and, for 2.3, ``model_version``;
* ``video`` / ``audio``: one part per file, ``prefixed`` (bundle keys) or ``bare`` (module keys),
  with the part's section as config (``section``), the whole config (``full``) or no metadata
  (``none``).

Each tensor's value depends on its bundle key only, so every layout holds the same numbers.
"""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path

import torch
from safetensors.torch import save_file

from openltx.model_loaders import layouts as L
from openltx.model_loaders.published_configs import MODEL_VERSIONS
from openltx.model_loaders.tiny_layouts import random_tensor

HEADERS = Path(__file__).resolve().parent / "data" / "real_headers"
FILES = {"2.0": "ltx-2-19b.config.json", "2.3": "ltx-2.3-22b.config.json"}
VERSIONS = ("2.0", "2.3")


def published_config(version: str) -> dict:
    """The published header config of ``version`` as the test data holds it (a fresh copy).

    The tests' own reading of ``data/real_headers`` (test_real_headers checks that
    ``model_loaders.published_configs`` holds the same text).
    """
    return json.loads((HEADERS / FILES[version]).read_text())


def _layers(params: dict) -> dict:
    out = dict(params)
    if "num_layers" in out:
        out["num_layers"] = max(1, out["num_layers"] // 3)  # 4 -> 1, 5 -> 1, 6 -> 2, 2 -> 1
    return out


def scaled_vae(section: dict, version: str) -> dict:
    """Widths / layer counts down, every key and every numeric value as published."""
    vae = copy.deepcopy(section)
    vae["latent_channels"] = 4
    vae["encoder_base_channels"] = 4  # ltx-core starts the encoder at latent_channels anyway
    # 2.0's residual x2x2x2 upsamplers fold 8 channels: every input width a multiple of 8
    vae["decoder_base_channels"] = 4 if version == "2.0" else 2
    vae["encoder_blocks"] = [[name, _layers(params)] for name, params in vae["encoder_blocks"]]
    vae["decoder_blocks"] = [[name, _layers(params)] for name, params in vae["decoder_blocks"]]
    return vae


def scaled_audio_vae(section: dict) -> dict:
    """``ch`` 32 = z 2 x 64 mel bins / 4 (ltx-core sizes the statistics by ``ch``), widths x [1, 2, 2],
    one res block per level."""
    audio = copy.deepcopy(section)
    params = audio["model"]["params"]
    dd = params["ddconfig"]
    dd.update(ch=32, ch_mult=[1, 2, 2], num_res_blocks=1, z_channels=2)
    if "embed_dim" in params:
        params["embed_dim"] = 2
    return audio


def scaled_vocoder(section: dict) -> dict:
    """Channels down; kernels, strides, dilations, rates as published; the BWE's STFT 512 -> 128 points."""
    voc = copy.deepcopy(section)
    if "bwe" not in voc:
        voc["upsample_initial_channel"] = 64  # 5 upsamplers: 64 -> 2 channels
        return voc
    voc["vocoder"]["upsample_initial_channel"] = 64  # 6 upsamplers: 64 -> 1
    voc["bwe"]["upsample_initial_channel"] = 32  # 5 upsamplers: 32 -> 1
    voc["bwe"]["n_fft"] = voc["bwe"]["win_size"] = 128
    return voc


def scaled_config(version: str) -> dict:
    """The published config with its three auxiliary sections scaled (same key sets)."""
    config = published_config(version)
    config["vae"] = scaled_vae(config["vae"], version)
    config["audio_vae"] = scaled_audio_vae(config["audio_vae"])
    config["vocoder"] = scaled_vocoder(config["vocoder"])
    return config


def bundle_state_dict(version: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The three parts' tensors under their bundle keys (the real files' key set, unused stats included)."""
    config = scaled_config(version)
    layout = {
        **L.video_vae_layout(config["vae"], with_unused_stats=True),
        **L.audio_vae_layout(config["audio_vae"]),
        **L.vocoder_layout(config["vocoder"]),
    }
    out = {}
    for key, shape in sorted(layout.items()):
        g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
        out[key] = random_tensor(key, shape, g).contiguous()
    return out


PREFIXES = {"video": ("vae.",), "audio": ("audio_vae.", "vocoder.")}


def _bare(key: str) -> str:
    """Module keys of a split file: the bundle prefix off (one ``vocoder.`` for the 2.3 nesting)."""
    for prefix in ("vae.", "audio_vae.", "vocoder."):
        if key.startswith(prefix):
            return key[len(prefix) :]
    raise KeyError(key)


def write(path, version: str, part: str = "bundle", keys: str = "prefixed", meta: str = "full",
          seed: int = 0) -> dict[str, torch.Tensor]:  # fmt: skip
    """Write one layout (see the module docstring); returns the tensors written (file keys)."""
    sd = bundle_state_dict(version, seed)
    config = scaled_config(version)
    if part != "bundle":
        sd = {k: v for k, v in sd.items() if k.startswith(PREFIXES[part])}
    if keys == "bare":
        sd = {_bare(k): v for k, v in sd.items()}
    metadata = None
    if meta == "full":
        metadata = {"config": json.dumps(config)}
        if version in MODEL_VERSIONS:
            metadata["model_version"] = MODEL_VERSIONS[version]
    elif meta == "section":  # a split file carrying only its part's sections
        names = ("vae",) if part == "video" else ("audio_vae", "vocoder")
        metadata = {"config": json.dumps({n: config[n] for n in names})}
    elif meta != "none":
        raise ValueError(meta)
    save_file(sd, str(path), metadata=metadata)
    return sd
