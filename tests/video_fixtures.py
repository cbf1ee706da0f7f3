"""Small test videos written at run time (never committed): frames whose red level tells the
frame index (5 grey levels per frame), a moving green gradient (edges for canny), and an
optional stereo tone, through the pack's own mp4 writer."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import torch

LEVEL_STEP = 5  # red level of frame k is LEVEL_STEP * k / 255 (distinct for k < 52)


def pattern_frames(n: int, height: int, width: int, start: int = 0) -> torch.Tensor:
    """``(n, height, width, 3)`` in [0, 1]: red = frame level, green = moving bars, blue = y."""
    k = torch.arange(start, start + n, dtype=torch.float32)[:, None, None]
    x = torch.arange(width, dtype=torch.float32)[None, None, :]
    y = torch.linspace(0, 1, height)[None, :, None]
    red = ((LEVEL_STEP * k) % 256 / 255.0).expand(n, height, width)
    green = (((x + 2 * k) // 8) % 2).expand(n, height, width) * 0.8 + 0.1
    return torch.stack([red, green, y.expand(n, height, width)], dim=-1)


def frame_index(frame: torch.Tensor) -> int:
    """The index a decoded ``pattern_frames`` frame (H, W, 3) shows (from its mean red)."""
    return round(float(frame[..., 0].mean()) * 255.0 / LEVEL_STEP)


def tone(seconds: float, rate: int, freq: float = 440.0) -> torch.Tensor:
    t = torch.arange(int(round(seconds * rate))) / rate
    return torch.stack([0.3 * torch.sin(2 * math.pi * freq * t), 0.2 * torch.sin(2 * math.pi * 2 * freq * t)])


def write_video(path: Path, frames: int, width: int = 96, height: int = 64, fps: float = 24.0, *,
                audio_rate: int | None = 24000, crf: int = 10) -> Path:  # fmt: skip
    """An mp4 of ``pattern_frames`` (+ a tone over the same duration when ``audio_rate``)."""
    from openltx.media.mp4_writer import Mp4Writer  # the conftest alias

    path = Path(path)
    with Mp4Writer(path, width, height, Fraction(fps).limit_denominator(1001), audio_sample_rate=audio_rate,
                   crf=crf) as writer:  # fmt: skip
        if audio_rate:
            writer.write_audio(tone(frames / fps, audio_rate))
        for s in range(0, frames, 16):
            writer.write_frames(pattern_frames(min(16, frames - s), height, width, start=s))
    return path


# --- the video-input workflows in tiny mode -------------------------------------------------------
# (tests/test_workflows.py runs them end to end with the other shipped workflows' checks,
# test_workflows_video.py with their own frame / rate / size expectations, test_privacy.py behind
# the network guard and test_frontend.py through the real frontend.)

# Official file -> (ComfyUI model folder, tiny stand-in written here) beyond demo.TINY_FILES.
EXTRA_TINY = {
    "ltx-2-19b-ic-lora-canny-control.safetensors": ("loras", "ltx-2-tiny-ic-lora.safetensors"),
    "ltx-2-19b-ic-lora-pose-control.safetensors": ("loras", "ltx-2-tiny-ic-lora.safetensors"),
    "ltx-2-19b-ic-lora-detailer.safetensors": ("loras", "ltx-2-tiny-ic-lora.safetensors"),
    "ltx-2-temporal-upscaler-x2-1.0.safetensors": ("latent_upscale_models", "ltx-2-tiny-upscaler-temporal-x2.safetensors"),
    # LTX-2.3's union-control IC-LoRA: made for the tiny 2.3 transformer, reference at half size as the published one
    "ltx-2.3-22b-ic-lora-union-control-ref0.5.safetensors": ("loras", "ltx-2.3-tiny-ic-lora-ref0.5.safetensors"),
}  # fmt: skip
LONG_FRAMES = 33  # tiny long runs: 5 latent frames in windows of 3 with 2 shared -> 3 windows
TINY_WINDOW, TINY_OVERLAP = 17, 16
INPUT_FPS = 24
# The nodes that make a workflow one of these (it then takes ``tiny_video_prompt``).
VIDEO_NODES = ("OpenLTXLoadVideo", "OpenLTXLoopingSampler")


def is_video_workflow(prompt: dict) -> bool:
    return any(n["class_type"] in VIDEO_NODES for n in prompt.values())


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def tiny_video_prompt(prompt: dict) -> dict:
    """``demo.tiny_prompt`` plus what the video workflows need: links it overwrote restored, the
    extra tiny files, 64 px input videos, clips long enough for three windows, retake windows
    inside the tiny clip."""
    import json

    import demo  # tools/ is on sys.path in the tests that use this

    plain = json.loads(json.dumps(prompt))
    for node in plain.values():  # demo.tiny_prompt reads EmptyLatent's frames as a number
        if node["class_type"] == "OpenLTXEmptyLatent" and _is_link(node["inputs"].get("frames")):
            node["inputs"]["frames"] = demo.TINY_FRAMES
    out = demo.tiny_prompt(plain)
    looping = any(n["class_type"] == "OpenLTXLoopingSampler" for n in prompt.values())
    for node_id, node in out.items():
        inputs, kind = node["inputs"], node["class_type"]
        for name, value in prompt[node_id]["inputs"].items():
            if _is_link(value):
                inputs[name] = value
        for name, value in list(inputs.items()):
            if isinstance(value, str) and value in EXTRA_TINY:
                inputs[name] = EXTRA_TINY[value][1]
        if kind == "OpenLTXLoadVideo":
            inputs["frames"] = LONG_FRAMES if looping else demo.TINY_FRAMES
            inputs["width"], inputs["height"] = (64, 64) if inputs["width"] or inputs["height"] else (0, 0)
        elif kind == "OpenLTXEncodeVideo" and inputs.get("width"):
            inputs["width"], inputs["height"] = 64, 64
        elif kind == "OpenLTXEmptyLatent" and looping and not _is_link(inputs.get("frames")):
            inputs["frames"] = LONG_FRAMES
        elif kind == "OpenLTXLoopingSampler":
            inputs["window_frames"], inputs["overlap_frames"] = TINY_WINDOW, TINY_OVERLAP
        elif kind == "OpenLTXRetake":
            inputs["start_s"], inputs["end_s"] = 0.1, 0.25
    return out


def tiny_prompt_for(prompt: dict) -> dict:
    """The tiny-mode prompt of any shipped workflow: ``tiny_video_prompt`` for the video ones,
    ``demo.tiny_prompt`` for the rest."""
    import demo

    return tiny_video_prompt(prompt) if is_video_workflow(prompt) else demo.tiny_prompt(prompt)


def write_video_workflow_files(model_dirs: dict, input_dir: Path) -> None:
    """The extra tiny models (IC-LoRA, temporal upscaler; ``demo.write_tiny_models`` writes the
    rest first) and the input videos the video workflows name, made here with PyAV."""
    import demo
    from model_loaders.lora_file import write_tiny_lora
    from model_loaders.upsampler_loading import tiny_upsampler_config, write_tiny_upsampler

    def path(official):
        folder, name = EXTRA_TINY[official]
        p = Path(model_dirs[folder]) / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    ic = path("ltx-2-19b-ic-lora-detailer.safetensors")
    if not ic.exists():
        folder, name = demo.TINY_FILES["ltx-2-19b-dev.safetensors"]
        write_tiny_lora(ic, _transformer_weights(Path(model_dirs[folder]) / name), seed=2, downscale_factor=1)
    ic23 = path("ltx-2.3-22b-ic-lora-union-control-ref0.5.safetensors")
    if not ic23.exists():
        folder, name = demo.TINY_FILES["ltx-2.3-22b-dev.safetensors"]
        write_tiny_lora(ic23, _transformer_weights(Path(model_dirs[folder]) / name), seed=4, downscale_factor=2)
    temporal = path("ltx-2-temporal-upscaler-x2-1.0.safetensors")
    if not temporal.exists():
        write_tiny_upsampler(temporal, tiny_upsampler_config("temporal"), seed=3)
    input_dir = Path(input_dir)
    input_dir.mkdir(parents=True, exist_ok=True)
    if not (input_dir / "ltx2_input.mp4").exists():  # 40 frames with sound (the loader keeps 8k+1)
        write_video(input_dir / "ltx2_input.mp4", 40, 64, 64, INPUT_FPS)
    if not (input_dir / "ltx2_pose.mp4").exists():  # a control video, silent
        write_video(input_dir / "ltx2_pose.mp4", 40, 64, 64, INPUT_FPS, audio_rate=None)


def _transformer_weights(path: Path) -> dict:
    from model_loaders import read_checkpoint
    from model_loaders.layouts import TRANSFORMER_PREFIX
    from safetensors.torch import load_file

    keys = set(read_checkpoint(path).components["transformer"])
    sd = load_file(str(path))
    return {k[len(TRANSFORMER_PREFIX):]: sd[k] for k in keys if k.startswith(TRANSFORMER_PREFIX)}


def write_oversized_video(path: Path, side: int = 9000, frames: int = 1) -> Path:
    """A small H.264 mp4 (a few tens of kB) of ``side`` x ``side`` black frames: a file whose
    frames would decode to far more memory than it holds (9000^2 x 3 bytes = 243 MB per frame)."""
    import av

    path = Path(path)
    with av.open(str(path), "w", format="mp4") as c:
        stream = c.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        frame = av.VideoFrame.from_ndarray(_black_yuv420(side), format="yuv420p")
        for _ in range(frames):
            c.mux(stream.encode(frame))
        c.mux(stream.encode())
    return path


def _black_yuv420(side: int):
    """A black yuv420p frame as PyAV's ``from_ndarray`` takes it: ``(side * 3 / 2, side)`` uint8."""
    import numpy as np

    out = np.zeros((side * 3 // 2, side), dtype=np.uint8)
    out[side:] = 128  # chroma at neutral
    return out
