"""Fuzz: seeded random mutations of valid tiny files through the pack's loaders (issue 11).

For each file type a few hundred mutants of valid tiny files (``N_MUTANTS``, seed ``SEED``):
bit flips, random and "interesting" bytes (0, 0xFF, 2^31, 2^40, 2^63 ... as 4- and 8-byte
little-endian integers), inserted / deleted / duplicated runs, truncation, and edits of the JSON
numbers in safetensors headers -- two thirds aimed at the header, where the structure is.  Each
mutant goes through the loaders a user's file reaches:

* safetensors (a tiny LTX-2.3 transformer, a saved conditioning, a LoRA): ``read_header``,
  ``read_checkpoint`` + ``build_transformer`` (config from the header, strict load), the text
  loader's file view, ``read_context_file``, ``read_lora``;
* GGUF (the tiny transformer, Q8_0): ``read_checkpoint``, ``build_transformer``, the tensor reader
  and dequantization, the text loader's file view;
* audio (wav, flac, mp3, m4a, ogg): ``load_audio`` whole and over a random span;
* video (mp4 H.264 + AAC, mkv, avi MPEG-4): ``read_frames`` (own rate and resampled, resized)
  and ``read_audio`` over the clip's span, as LTX-2 Load Video reads them;
* images (PNG): decoded as core LoadImage does (what PIL refuses is core's business), then LTX-2
  Encode Image with the tiny VAE; plus NaN / inf / odd shapes in the IMAGE tensor itself.

A mutant may load (most data-region edits just change weights) or fail, but only with the pack's
own errors: ``ValueError`` subclasses defined in the pack (``CheckpointError``,
``AudioFileError``, ``ConfigError``, ...) for files, the node's ``ValueError`` for images --
never ``KeyError``, ``struct.error``, ``RecursionError``, ``MemoryError``, a plain library error.
The process' peak memory over each type's run stays within ``MEMORY_BOUND`` of its start.
"""

from __future__ import annotations

import io
import json
import math
import random
import struct
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

SEED = 11
N_MUTANTS = {"safetensors": 300, "gguf": 300, "audio": 300, "image": 200, "video": 240}
MEMORY_BOUND = 1 << 30
INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 2**31 - 1, 2**31, 2**32 - 1, 2**40, 2**62, 2**63 - 1, 2**64 - 1)
COUNTS: dict[str, Counter] = {}


# ------------------------------------------------------------------------------ mutations
def mutate(data: bytes, rng: random.Random, header: tuple[int, int]) -> tuple[str, bytes]:
    """One random mutation of ``data``; ``header`` is the byte range where the structure is."""
    b = bytearray(data)
    lo, hi = header
    aim = (lambda: rng.randrange(lo, max(lo + 1, hi))) if rng.random() < 2 / 3 else (lambda: rng.randrange(len(b)))
    kind = rng.choice(("flip", "byte", "int32", "int64", "insert", "delete", "duplicate", "truncate", "json_number"))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = aim()
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "byte":
        for _ in range(rng.randint(1, 4)):
            b[aim()] = rng.randrange(256)
    elif kind in ("int32", "int64"):
        size = 4 if kind == "int32" else 8
        i = min(aim(), len(b) - size)
        b[i : i + size] = (rng.choice(INTERESTING) % (1 << (8 * size))).to_bytes(size, "little")
    elif kind == "insert":
        i = aim()
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == "delete":
        i = aim()
        del b[i : i + rng.randint(1, 16)]
    elif kind == "duplicate":
        i = aim()
        b[i:i] = b[i : i + rng.randint(1, 64)]
    elif kind == "truncate":
        del b[rng.randrange(len(b)) :]
    else:  # json_number: a number in the header becomes a huge, negative, fractional or NaN one
        text = bytes(b[lo:hi])
        spots = [m for m in __import__("re").finditer(rb"\d+", text)]
        if spots:
            m = rng.choice(spots)
            new = rng.choice((b"1000000000000", b"-1", b"1e308", b"0.5", b"NaN", b"99999999999999999999999", b"0"))
            b[lo + m.start() : lo + m.end()] = new
    return kind, bytes(b)


def is_pack_error(err: BaseException) -> bool:
    """A ``ValueError`` subclass defined in the pack (its module lives under ``openltx.``)."""
    return isinstance(err, ValueError) and any(
        c.__module__.startswith("openltx.") and issubclass(c, ValueError) for c in type(err).__mro__
    )


class PeakMemory:
    """This process' peak RSS over a block (``VmHWM`` after a ``clear_refs`` reset; sampled RSS
    where the reset is not allowed)."""

    @staticmethod
    def _status() -> dict[str, int]:
        with open("/proc/self/status", encoding="ascii") as fh:
            return {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in fh) if v.strip().endswith("kB")}

    def __enter__(self):
        self.start = self._status()["VmRSS"]
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
            self.exact = True
        except OSError:
            self.exact = False
        return self

    def __exit__(self, *exc):
        s = self._status()
        self.above = (s["VmHWM"] if self.exact else s["VmRSS"]) - self.start


def run_fuzz(kind: str, bases: list[tuple[str, bytes, tuple[int, int]]], load, tmp_path: Path, suffix=None) -> Counter:
    """Mutate ``bases`` N_MUTANTS[kind] times in total and ``load(path, name, rng)`` each mutant
    (it returns ``None`` or a label for an outcome that is not an exception)."""
    rng = random.Random(f"{SEED}-{kind}")
    outcome: Counter = Counter()
    bad = []
    with PeakMemory() as peak:
        for i in range(N_MUTANTS[kind]):
            name, data, header = bases[i % len(bases)]
            how, mutant = mutate(data, rng, header)
            path = tmp_path / f"mutant{(suffix or Path(name).suffix)}"
            path.write_bytes(mutant)
            try:
                outcome[load(path, name, rng) or "loaded"] += 1
            except Exception as err:  # noqa: BLE001 - judged right here
                if is_pack_error(err):
                    outcome[type(err).__name__] += 1
                else:
                    bad.append(f"#{i} {name} ({how}): {type(err).__module__}.{type(err).__name__}: {str(err)[:300]}")
    COUNTS[kind] = outcome
    print(f"\nfuzz {kind}: {N_MUTANTS[kind]} mutants, {dict(outcome)}, peak {peak.above / 2**20:.0f} MiB above start")
    assert not bad, f"{len(bad)} mutant(s) raised errors that are not the pack's own:\n" + "\n".join(bad[:20])
    assert peak.above < MEMORY_BOUND, f"{kind}: peak memory {peak.above / 2**20:.0f} MiB above the start"
    return outcome


# ------------------------------------------------------------------------------ safetensors
def _st_header_range(data: bytes) -> tuple[int, int]:
    return 0, 8 + struct.unpack("<Q", data[:8])[0]


def test_fuzz_safetensors(openltx_pack, tmp_path):
    from safetensors.torch import save_file

    from openltx.host.prompt_cache import read_context_file
    from openltx.model_loaders import build_transformer, read_checkpoint
    from openltx.model_loaders.lora_file import read_lora
    from openltx.model_loaders.safetensors_file import load_tensors, read_header
    from openltx.model_loaders.text_files import read_text_file
    from openltx.model_loaders.tiny_layouts import write_tiny_checkpoint

    write_tiny_checkpoint(tmp_path / "transformer.safetensors", "2.3", "transformer", seed=0, dtype=torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    save_file({"video_context": torch.randn(1, 16, 32, generator=g), "audio_context": torch.randn(1, 16, 16, generator=g)},
              str(tmp_path / "conditioning.safetensors"), metadata={"format": "openltx-conditioning-1", "frame_rate": "24.0"})
    save_file({"diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.randn(4, 32, generator=g),
               "diffusion_model.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.randn(32, 4, generator=g)},
              str(tmp_path / "lora.safetensors"), metadata={"reference_downscale_factor": "2"})  # fmt: skip
    bases = []
    for name in ("transformer.safetensors", "conditioning.safetensors", "lora.safetensors"):
        data = (tmp_path / name).read_bytes()
        bases.append((name, data, _st_header_range(data)))

    def load(path, name, rng):
        header = read_header(path)
        if name == "transformer.safetensors":
            build_transformer(read_checkpoint(path))
            read_text_file(path)
        elif name == "conditioning.safetensors":
            read_context_file(path, "LTX-2 Save Conditioning")
        else:
            read_lora(path)
        load_tensors(path, list(header.tensors))

    run_fuzz("safetensors", bases, load, tmp_path, ".safetensors")


# ------------------------------------------------------------------------------ GGUF
def test_fuzz_gguf(openltx_pack, tmp_path):
    from openltx.model_loaders import build_transformer, read_checkpoint
    from openltx.model_loaders.quant import gguf_format
    from openltx.model_loaders.text_files import read_text_file
    from openltx.model_loaders.tiny_layouts import write_tiny_gguf

    write_tiny_gguf(tmp_path / "transformer.gguf", "2.3", qtype="Q8_0")
    data = (tmp_path / "transformer.gguf").read_bytes()
    reader = gguf_format.open_reader(tmp_path / "transformer.gguf")
    header = (0, int(reader.data_offset))
    del reader

    def load(path, name, rng):
        info = read_checkpoint(path)
        read_text_file(path)
        for t in gguf_format.read_gguf_tensors(path).values():
            t.dequantize()
        build_transformer(info)

    run_fuzz("gguf", [("transformer.gguf", data, header)], load, tmp_path)


# ------------------------------------------------------------------------------ audio
def _audio_files(tmp_path: Path) -> list[tuple[str, bytes, tuple[int, int]]]:
    import av

    rate, seconds = 16000, 0.25
    t = np.arange(int(rate * seconds)) / rate
    wave = (0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)])).astype(np.float32)
    out = []
    for name, codec, fmt, sample_fmt in (("a.wav", "pcm_s16le", "wav", "s16"), ("a.flac", "flac", "flac", "s16"),
                                         ("a.mp3", "libmp3lame", "mp3", "fltp"), ("a.m4a", "aac", "mp4", "fltp"),
                                         ("a.ogg", "libopus", "ogg", "flt")):  # fmt: skip
        path = tmp_path / name
        with av.open(str(path), "w", format=fmt) as c:
            s = c.add_stream(codec, rate=48000 if codec == "libopus" else rate, layout="stereo")
            frame_size = s.codec_context.frame_size or 1024
            src = wave if codec != "libopus" else np.repeat(wave, 3, axis=1)
            for start in range(0, src.shape[1], frame_size):
                chunk = src[:, start : start + frame_size]
                if sample_fmt == "s16":
                    arr = (chunk.T.reshape(1, -1) * 32767).astype(np.int16)
                elif sample_fmt == "flt":
                    arr = np.ascontiguousarray(chunk.T.reshape(1, -1))
                else:
                    arr = np.ascontiguousarray(chunk)
                frame = av.AudioFrame.from_ndarray(arr, format=sample_fmt, layout="stereo")
                frame.sample_rate = s.codec_context.sample_rate
                frame.pts = start
                c.mux(s.encode(frame))
            c.mux(s.encode())
        data = path.read_bytes()
        out.append((name, data, (0, min(len(data), 512))))
    return out


def test_fuzz_audio(openltx_pack, tmp_path):
    from openltx.media.audio_file import load_audio

    bases = _audio_files(tmp_path)
    for name, _, _ in bases:  # the bases themselves load
        wave, _ = load_audio(tmp_path / name)
        assert wave.shape[0] == 2 and wave.shape[1] > 1000, name

    def load(path, name, rng):
        wave, rate = load_audio(path)
        assert wave.ndim == 2 and rate > 0 and wave.dtype == torch.float32
        start = rng.uniform(0, 0.3)
        try:
            load_audio(path, start_s=start, duration_s=rng.uniform(0.01, 0.2))
        except ValueError as err:
            if "past the end" not in str(err) or not is_pack_error(err):
                raise

    run_fuzz("audio", bases, load, tmp_path, None)


# ------------------------------------------------------------------------------ video
def _video_files(tmp_path: Path) -> list[tuple[str, bytes, tuple[int, int]]]:
    from video_fixtures import write_video

    out = [("v.mp4", write_video(tmp_path / "v.mp4", 9, 32, 32, 24.0).read_bytes())]
    import av

    for name, fmt, codec in (("v.mkv", "matroska", "libx264"), ("v.avi", "avi", "mpeg4")):
        path = tmp_path / name
        with av.open(str(path), "w", format=fmt) as c:
            s = c.add_stream(codec, rate=24)
            s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
            for k in range(9):
                img = np.full((32, 32, 3), 20 * k, dtype=np.uint8)
                c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            c.mux(s.encode())
        out.append((name, path.read_bytes()))
    # the structure is spread over the file (mp4's moov is at its end): aim anywhere
    return [(name, data, (0, len(data))) for name, data in out]


def test_fuzz_video(openltx_pack, tmp_path):
    from openltx.media.video_file import read_audio, read_frames

    bases = _video_files(tmp_path)
    for name, _, _ in bases:  # the bases themselves load
        clip = read_frames(tmp_path / name, frames=9)
        assert clip.frames.shape == (9, 32, 32, 3), name

    def load(path, name, rng):
        fps = rng.choice((0.0, 12.0, 30.0))
        clip = read_frames(path, start_s=rng.choice((0.0, 0.1)), frames=9, fps=fps, width=rng.choice((0, 16)))
        assert clip.frames.ndim == 4 and clip.frames.dtype == torch.float32 and clip.fps > 0
        sound = read_audio(path, clip.start_s, clip.frames.shape[0] / clip.fps)
        assert sound is None or (sound[0].ndim == 2 and sound[1] > 0)

    run_fuzz("video", bases, load, tmp_path, None)


# ------------------------------------------------------------------------------ images
@pytest.fixture(scope="module")
def tiny_video_vae(openltx_pack, tmp_path_factory):
    from openltx.host import aux_models
    from openltx.model_loaders.tiny_layouts import write_tiny_checkpoint

    path = tmp_path_factory.mktemp("vae") / "tiny.safetensors"
    write_tiny_checkpoint(path, "2.0", "all", seed=0)
    return aux_models.load_vae_file(str(path), "fp32")[0]


def _load_image_like_core(path: Path) -> torch.Tensor:
    """What core LoadImage does with a file (PIL, EXIF rotation, RGB, [0, 1]); its errors are core's."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


def test_fuzz_images(tiny_video_vae, tmp_path):
    from PIL import Image

    from openltx.nodes.decode import OpenLTXEncodeImage

    rng_np = np.random.default_rng(SEED)
    base = tmp_path / "base.png"
    Image.fromarray(rng_np.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(base)
    data = base.read_bytes()
    host_refused = Counter()

    def load(path, name, rng):
        if rng.random() < 0.25:  # the IMAGE tensor itself: values and shapes no file gives
            h, w = rng.choice(((64, 64), (1, 1), (33, 65), (64, 128), (0, 64))), rng.choice((3, 4, 1))
            image = torch.rand(1, h[0], h[1], w)
            special = rng.choice((math.nan, math.inf, -math.inf, -5.0, 1e30, None))
            if special is not None and image.numel():
                image.view(-1)[rng.randrange(image.numel())] = special
        else:
            try:
                image = _load_image_like_core(path)
            except Exception as err:  # noqa: BLE001 - PIL's refusal: core LoadImage reports it, not the pack
                host_refused[type(err).__name__] += 1
                return "refused by PIL (core LoadImage)"
        crf = rng.choice((0, 33))
        try:
            OpenLTXEncodeImage.execute(image, tiny_video_vae, 0, 0, crf)
        except ValueError as err:  # the node's own refusal names it; anything else is a failure
            if type(err) is not ValueError or not str(err).startswith("LTX-2 Encode Image:"):
                raise
            return "refused by LTX-2 Encode Image"
        return None

    run_fuzz("image", [("base.png", data, (0, min(len(data), 200)))], load, tmp_path)
    print(f"fuzz image: PIL's errors: {dict(host_refused)}")
