"""Which LTX-2 auxiliary parts a file holds (video VAE, audio VAE, vocoder), from its header keys.

Layouts as published (see ``shared/real_headers/community_layouts.md``):

* the single-file bundles (``ltx-2-19b-dev.safetensors``, ``ltx-2.3-22b-dev.safetensors``, ...):
  ``vae.{encoder,decoder,per_channel_statistics}.*``, ``audio_vae.*``, ``vocoder.*`` (2.3:
  ``vocoder.vocoder.*``, ``vocoder.bwe_generator.*``, ``vocoder.mel_stft.*``);
* video VAE files (Kijai ``LTX2_video_vae_bf16`` / ``LTX23_video_vae_bf16``, unsloth
  ``ltx-2.3-22b-dev_video_vae``): bare ``encoder.*`` / ``decoder.*`` / ``per_channel_statistics.*``
  (or with the bundle's ``vae.`` prefix), maybe without any header config;
* audio files (Kijai ``LTX2_audio_vae_bf16`` / ``LTX23_audio_vae_bf16``, unsloth
  ``..._audio_vae``): ``audio_vae.*`` + ``vocoder.*``, or bare keys: the audio VAE's
  ``encoder.*`` / ``decoder.*`` (told from the video VAE's by their 2D convolutions) and the
  vocoder's ``conv_pre.*`` ... (2.0) / ``vocoder.*`` + ``bwe_generator.*`` + ``mel_stft.*`` (2.3).

``find_parts`` maps each part found to its module keys; ``where_to_get`` names the published
files that carry a part (``published_files``), for messages about what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .published_files import where_published
from .video_vae_config import video_vae_version

VAE_HALVES = ("encoder.", "decoder.", "per_channel_statistics.")
_BARE_VOCODER = ("conv_pre.", "ups.", "resblocks.", "act_post.", "conv_post.")
_BWE_ROOTS = ("bwe_generator.", "mel_stft.")
PARTS = ("video_vae", "audio_vae", "vocoder")
_WHAT = {"video_vae": "video VAE", "audio_vae": "audio VAE", "vocoder": "vocoder"}

@dataclass(frozen=True)
class Part:
    """One auxiliary part inside a file.

    ``keys`` maps module keys (what the ``ltx2`` module's state dict calls them) to file keys;
    ``version`` is the release the tensors show (``None`` when they do not tell).
    """

    name: str
    prefix: str
    keys: dict
    version: str | None

    @property
    def what(self) -> str:
        return _WHAT[self.name]


def _conv_dims(shapes: Mapping[str, tuple], prefix: str) -> int | None:
    for half in ("encoder.", "decoder."):
        shape = shapes.get(f"{prefix}{half}conv_in.conv.weight")
        if shape is not None:
            return len(shape)
    return None


def _strip(shapes: Mapping[str, tuple], prefix: str, roots: tuple[str, ...]) -> dict[str, str]:
    return {k[len(prefix) :]: k for k in shapes if k.startswith(prefix) and k[len(prefix) :].startswith(roots)}


def find_parts(shapes: Mapping[str, tuple]) -> dict[str, Part]:
    """Part name -> ``Part`` for every auxiliary part the file's keys hold."""
    out: dict[str, Part] = {}
    video = None
    if any(k.startswith(("vae.encoder.", "vae.decoder.")) for k in shapes):
        video = "vae."
    elif _conv_dims(shapes, "") == 5:
        video = ""
    if video is not None:
        keys = _strip(shapes, video, VAE_HALVES)
        version = video_vae_version({m: shapes[f] for m, f in keys.items()})
        out["video_vae"] = Part("video_vae", video, keys, version)

    audio = None
    if any(k.startswith("audio_vae.") for k in shapes):
        audio = "audio_vae."
    elif _conv_dims(shapes, "") == 4:
        audio = ""
    if audio is not None:
        out["audio_vae"] = Part("audio_vae", audio, _strip(shapes, audio, VAE_HALVES), None)

    prefix = ""
    if any(k.startswith(_BWE_ROOTS) for k in shapes):  # a bare 2.3 vocoder: vocoder.* is its base generator
        keys = _strip(shapes, "", ("vocoder.", *_BWE_ROOTS))
    elif any(k.startswith("vocoder.") for k in shapes):  # the bundle's: one "vocoder." comes off
        prefix = "vocoder."
        keys = {k[len(prefix) :]: k for k in shapes if k.startswith(prefix)}
    elif "conv_pre.weight" in shapes:
        keys = _strip(shapes, "", _BARE_VOCODER)
    else:
        keys = {}
    if keys:
        bwe = any(m.startswith(_BWE_ROOTS) for m in keys)
        out["vocoder"] = Part("vocoder", prefix, keys, "2.3" if bwe else "2.0")
    if "audio_vae" in out and "vocoder" in out:  # the audio VAE is the same in both releases
        out["audio_vae"] = Part("audio_vae", out["audio_vae"].prefix, out["audio_vae"].keys, out["vocoder"].version)
    return out


def where_to_get(part: str, version: str | None) -> str:
    """The published files that carry ``part`` ("audio_vae" also stands for the vocoder; see published_files)."""
    return where_published("audio_vae" if part == "vocoder" else part, version)


__all__ = ["PARTS", "Part", "find_parts", "where_to_get"]
