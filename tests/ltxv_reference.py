"""Lightricks' ``LTXVLoopingSampler`` (ComfyUI-LTXVideo) run on prescribed window outputs, for
the long-video parity test.

The reference's looping logic (``looping_sampler.py``, ``easy_samplers.py``'s
``LTXVExtendSampler`` and ``LinearOverlapLatentTransition``, ``latents.py``'s
``LTXVSelectLatents``, ``latent_norm.py``'s ``LTXVAdainLatent``) is executed as published.  Only
what lies outside the looping math is replaced, by recorders:

* the samplers (``SamplerCustomAdvanced`` inside a window, ``LTXVBaseSampler`` /
  ``LTXVInContextSampler`` for the first one) return a prescribed output per window
  (``window_output``), so the stitching can be compared exactly;
* the guide nodes (``LTXVAddLatentGuide``, ``LTXVAddGuide``, ``LTXVCropGuides``) record what
  each window is conditioned on: which latents, at which latent / pixel frame, how strongly.

The input latent carries its own frame index in channel 0 (``frames_latent``), so the latent
chunk a window starts from reveals the window's span.

Sources: a ComfyUI-LTXVideo checkout named by ``LTXVIDEO_SRC``, or the snapshot the repository's
tools fetch into ``/work/.mirror/Lightricks+ComfyUI-LTXVideo/repo`` (a bare git directory).
Without either, ``golden/ltxv_looping.json`` holds what this module recorded from the
reference (``python ltxv_reference.py --write-golden``) and the test compares to that.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch

TESTS_DIR = Path(__file__).resolve().parent
GOLDEN = TESTS_DIR / "golden" / "ltxv_looping.json"
MIRROR = Path("/work/.mirror/Lightricks+ComfyUI-LTXVideo/repo")
SOURCES = ("looping_sampler.py", "easy_samplers.py", "latents.py", "latent_norm.py")
PACKAGE = "_ltxv_reference"
MISSING_IN_HOST = ("comfy.ldm.lightricks.av_model", "comfy.ldm.lightricks.vae.audio_vae")

# The cases compared: latent frames, window / overlap in pixel frames (the reference's inputs),
# overlap strength, AdaIN factor, keyframe pixel indices, IC-LoRA guiding latents or not.
CASES = [
    {"frames": 16, "window_px": 56, "overlap_px": 24, "strength": 0.5, "adain": 0.0, "keyframes": [], "guide": False},
    {"frames": 13, "window_px": 40, "overlap_px": 16, "strength": 0.8, "adain": 0.3, "keyframes": [], "guide": False},
    {"frames": 20, "window_px": 64, "overlap_px": 24, "strength": 0.5, "adain": 0.0, "keyframes": [30, 75, 120],
     "guide": False},
    {"frames": 15, "window_px": 48, "overlap_px": 16, "strength": 0.5, "adain": 0.1, "keyframes": [], "guide": True},
    {"frames": 7, "window_px": 80, "overlap_px": 24, "strength": 0.5, "adain": 0.0, "keyframes": [], "guide": False},
]  # fmt: skip
SHAPE = (1, 3, 2, 3)  # batch, channels, height, width of the test latents


def frames_latent(frames: int) -> torch.Tensor:
    """``(1, 3, frames, 2, 3)``: channel 0 = the frame index, others a smooth pattern."""
    b, c, h, w = SHAPE
    f = torch.arange(frames, dtype=torch.float32)[:, None, None]
    x = torch.zeros(b, c, frames, h, w)
    x[:, 0] = f.expand(frames, h, w)
    x[:, 1] = torch.cos(0.3 * f + torch.arange(h)[:, None] * 0.5 + torch.arange(w) * 0.2)
    x[:, 2] = 0.1 * f
    return x


def guide_latent(frames: int) -> torch.Tensor:
    """An IC-LoRA guide of the clip's length (frame index + 100 in channel 0)."""
    g = frames_latent(frames)
    g[:, 0] += 100.0
    return g


def window_output(k: int, shape) -> torch.Tensor:
    """The prescribed sampler output of window ``k`` (deterministic, distinct per window)."""
    b, c, f, h, w = shape
    grid = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in (b, c, f, h, w)), indexing="ij")
    _, cc, ff, hh, ww = grid
    return torch.sin(1.3 * k + 0.7 * cc + 0.37 * ff + 0.11 * hh + 0.05 * ww) * (1 + 0.1 * k) + 0.2 * k


# ------------------------------------------------------------------------------ loading the reference
def source_dir() -> Path | None:
    """A directory holding the reference sources, or None."""
    env = os.environ.get("LTXVIDEO_SRC", "").strip()
    if env and all((Path(env) / s).is_file() for s in SOURCES):
        return Path(env)
    if not MIRROR.exists():
        return None
    out = Path(tempfile.mkdtemp(prefix="ltxv_src_"))
    for name in SOURCES:
        try:
            text = subprocess.run(["git", "--git-dir", str(MIRROR), "show", f"HEAD:{name}"], capture_output=True,
                                  check=True, timeout=60).stdout  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return None
        (out / name).write_bytes(text)
    return out


def _stub_module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    return module


def load_reference(src: Path) -> dict[str, types.ModuleType]:
    """The reference modules, loaded from ``src`` as the package ``_ltxv_reference``."""
    package = _stub_module(PACKAGE)
    package.__path__ = [str(src)]
    sys.modules[PACKAGE] = package
    sys.modules[f"{PACKAGE}.nodes_registry"] = _stub_module(f"{PACKAGE}.nodes_registry",
                                                            comfy_node=lambda *a, **k: (lambda cls: cls))  # fmt: skip
    sys.modules[f"{PACKAGE}.guide"] = _stub_module(f"{PACKAGE}.guide", blur_internal=lambda *a, **k: None)
    added = []
    for name in MISSING_IN_HOST:  # newer-ComfyUI modules the reference imports but the looping math never uses
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _stub_module(name, LTXAVModel=object, LATENT_DOWNSAMPLE_FACTOR=4)
            added.append(name)
    modules = {}
    try:
        for name in ("latent_norm", "latents", "easy_samplers", "looping_sampler"):
            spec = importlib.util.spec_from_file_location(f"{PACKAGE}.{name}", src / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            modules[name] = module
    finally:
        for name in added:
            sys.modules.pop(name, None)
    return modules


# ------------------------------------------------------------------------------ recorders
class Recorder:
    """Stand-ins for the reference's samplers and guide nodes; they write into ``log``."""

    def __init__(self) -> None:
        self.log: list[dict] = []
        self.window = 0

    def _out(self, latent: dict) -> dict:
        samples = latent["samples"]
        start = int(round(float(samples[0, 0, 0, 0, 0])))
        self.log.append({"event": "window", "index": self.window, "start": start, "frames": samples.shape[2]})
        out = {"samples": window_output(self.window, tuple(samples.shape))}
        self.window += 1
        return out

    def classes(self) -> dict:
        rec = self

        class FirstSampler:
            def sample(self, **kw):
                if kw.get("guiding_latents") is not None:
                    g = kw["guiding_latents"]["samples"]
                    rec.log.append({"event": "guide", "window": 0, "latent_idx": 0, "strength": kw["guiding_strength"],
                                    "values": g[0, 0, :, 0, 0].tolist()})  # fmt: skip
                if kw.get("optional_cond_images") is not None:
                    idx = [int(i) for i in kw["optional_cond_indices"].split(",")]
                    rec.log.append({"event": "keyframes", "window": 0, "indices": idx})
                return (rec._out(kw["optional_initialization_latents"]),)

        class SamplerCustomAdvanced:
            def sample(self, noise, guider, sampler, sigmas, latent_image):
                out = rec._out(latent_image)
                return out, out

        class SplitSigmas:
            def get_sigmas(self, sigmas, step):
                return sigmas[: step + 1], sigmas[step:]

        class AddLatentGuide:
            def generate(self, vae, positive, negative, latent, guiding_latent, latent_idx, strength):
                g = guiding_latent["samples"]
                rec.log.append({"event": "guide", "window": rec.window, "latent_idx": int(latent_idx),
                                "strength": float(strength), "values": g[0, 0, :, 0, 0].tolist(),
                                "full": g.flatten().tolist()})  # fmt: skip
                return positive, negative, latent

        class AddGuide:
            @staticmethod
            def execute(positive, negative, vae, latent, image, frame_idx, strength):
                rec.log.append({"event": "keyframe", "window": rec.window, "frame_idx": int(frame_idx)})
                return positive, negative, latent

        class CropGuides:
            @staticmethod
            def execute(positive, negative, latent):
                return positive, negative, latent

        return {"first": FirstSampler, "sca": SamplerCustomAdvanced, "split": SplitSigmas,
                "latent_guide": AddLatentGuide, "guide": AddGuide, "crop": CropGuides}  # fmt: skip


class _Guider:
    def __init__(self):
        self.original_conds = {}
        self.raw_conds = ("positive", "negative")

    def set_conds(self, positive, negative):
        self.raw_conds = (positive, negative)


class _Vae:
    downscale_index_formula = (8, 32, 32)


class _Noise:
    seed = 10


def run_case(modules: dict, case: dict) -> dict:
    """Run the reference on ``case``; returns its windows, guides, keyframes and output."""
    rec = Recorder()
    stubs = rec.classes()
    easy, looping = modules["easy_samplers"], modules["looping_sampler"]
    easy.SamplerCustomAdvanced = stubs["sca"]
    easy.SplitSigmas = stubs["split"]
    easy.LTXVAddLatentGuide = stubs["latent_guide"]
    easy.LTXVAddGuide = stubs["guide"]
    easy.LTXVCropGuides = stubs["crop"]
    looping.LTXVBaseSampler = stubs["first"]
    looping.LTXVInContextSampler = stubs["first"]
    images = None
    if case["keyframes"]:
        images = torch.rand(len(case["keyframes"]), 64, 96, 3, generator=torch.Generator().manual_seed(0))
    latents = {"samples": frames_latent(case["frames"])}
    guide = {"samples": guide_latent(case["frames"])} if case["guide"] else None
    (out,) = looping.LTXVLoopingSampler().sample(
        model=None, vae=_Vae(), noise=_Noise(), sampler=None, sigmas=torch.tensor([1.0, 0.5, 0.0]), guider=_Guider(),
        latents=latents, guiding_strength=1.0, adain_factor=case["adain"], temporal_tile_size=case["window_px"],
        temporal_overlap=case["overlap_px"], temporal_overlap_cond_strength=case["strength"], horizontal_tiles=1,
        vertical_tiles=1, spatial_overlap=1, optional_cond_images=images,
        optional_guiding_latents=guide,
        optional_cond_image_indices=",".join(str(i) for i in case["keyframes"]) if case["keyframes"] else "0",
    )  # fmt: skip
    result = out["samples"]
    return {"case": case, "log": rec.log, "output": result.flatten().tolist(), "shape": list(result.shape)}


def record_all(src: Path | None = None) -> list[dict]:
    src = src or source_dir()
    if src is None:
        raise RuntimeError("no ComfyUI-LTXVideo sources: set LTXVIDEO_SRC to a checkout")
    modules = load_reference(src)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the reference prints its progress
        return [run_case(modules, case) for case in CASES]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-golden", action="store_true", help=f"write {GOLDEN.relative_to(TESTS_DIR)}")
    args = parser.parse_args(argv)
    results = record_all()
    if args.write_golden:
        GOLDEN.parent.mkdir(exist_ok=True)
        for r in results:  # keep the file small: full guide tensors are only needed live
            for entry in r["log"]:
                entry.pop("full", None)
            r["output"] = [round(v, 6) for v in r["output"]]
        GOLDEN.write_text(json.dumps({"source": "Lightricks/ComfyUI-LTXVideo looping_sampler.py", "results": results},
                                     indent=None, separators=(",", ":")) + "\n", encoding="utf-8")  # fmt: skip
        print(GOLDEN, GOLDEN.stat().st_size, "bytes")
    else:
        print(json.dumps([{k: v for k, v in r.items() if k != "output"} for r in results])[:4000])
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(TESTS_DIR))
    import conftest  # noqa: F401  (the ComfyUI host on sys.path, --cpu)

    sys.exit(main())
